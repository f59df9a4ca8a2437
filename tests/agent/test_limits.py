"""Issue 14, items 1 and 2: every limit is enforced while bytes arrive, and no
connection can be held forever or starve another client (real sockets)."""

import logging
import select
import socket
import time

import pytest

from tests.agent.conftest import Setup, StartAgent, get_credentials, request

# the documented limits (README, "Node agent"): literal here so the test also runs on old code
MAX_HEAD_BYTES, MAX_LINE_BYTES, MAX_HEADERS = 32 * 1024, 17 * 1024, 64


def connect(port: int, source: str = "127.0.0.1", timeout: float = 5) -> socket.socket:
    return socket.create_connection(
        ("127.0.0.1", port), timeout=timeout, source_address=(source, 0)
    )


def stream_until_answered(conn: socket.socket, prefix: bytes, filler: bytes, limit: int) -> int:
    """Send prefix, then filler until the agent answers or closes; the bytes sent.
    Each chunk waits 5 ms for an answer, so the count is what the agent read, not
    what the kernel's socket buffers hold."""
    sent = 0
    conn.sendall(prefix)
    while sent < limit:
        readable, _, _ = select.select([conn], [], [], 0.005)
        if readable:
            return sent
        try:
            conn.sendall(filler)
        except OSError:  # reset by the agent
            return sent
        sent += len(filler)
    readable, _, _ = select.select([conn], [], [], 1)
    return sent if readable else limit + 1


def read_all(conn: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := conn.recv(65536):
            data += chunk
    except OSError:
        pass
    return data


HEAD = b"GET /v1/credentials HTTP/1.1\r\nHost: x\r\n"


@pytest.mark.parametrize(
    ("case", "prefix", "filler"),
    [
        ("unterminated header value", HEAD + b"X-Big: ", b"a" * 4096),
        ("unfinished header name", HEAD, b"a" * 4096),
        ("unterminated request line", b"GET /v1/", b"a" * 4096),
        ("endless short headers", HEAD, b"X-A: b\r\n" * 512),
    ],
)
def test_an_endless_head_is_cut_at_its_limit_while_others_are_served(
    setup: Setup, start_agent: StartAgent, case: str, prefix: bytes, filler: bytes
) -> None:
    agent = start_agent()
    port = agent.ports[0]
    token = setup.pod().token
    assert get_credentials(port, token)[0] == 200
    with connect(port) as hostile:
        # When a client streams a head that never ends (1 MiB at most here)
        sent = stream_until_answered(hostile, prefix, filler, 1024 * 1024)
        # Then the agent answers 431 and closes once a limit is passed, not at the end
        assert sent <= MAX_HEAD_BYTES + 32 * 1024, f"{case}: {sent} bytes buffered"
        answer = read_all(hostile)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431 "), answer[:80]
    assert agent.connections.closed["head_too_large"] == 1
    started = time.perf_counter()
    assert get_credentials(port, token)[0] == 200
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    ("case", "raw"),
    [
        ("a header line over the limit", HEAD + b"X-Big: " + b"a" * MAX_LINE_BYTES + b"\r\n\r\n"),
        ("a URL over the limit", b"GET /" + b"a" * MAX_LINE_BYTES + b" HTTP/1.1\r\n\r\n"),
        ("too many headers", HEAD + b"X-A: b\r\n" * (MAX_HEADERS + 1) + b"\r\n"),
        ("a head over the limit", HEAD + (b"X-A: " + b"b" * 1000 + b"\r\n") * 33 + b"\r\n"),
    ],
)
def test_a_complete_head_over_a_limit_is_refused_in_one_read(
    setup: Setup, start_agent: StartAgent, case: str, raw: bytes
) -> None:
    agent = start_agent()
    status, headers, _ = request(agent.ports[0], raw)
    assert (status, headers.get("connection")) == (431, "close"), case


def test_a_half_sent_head_and_a_silent_connection_are_closed_after_the_head_timeout(
    setup: Setup, start_agent: StartAgent
) -> None:
    agent = start_agent()  # the default head timeout: 5 s
    port = agent.ports[0]
    with connect(port, timeout=10) as slow, connect(port, timeout=10) as silent:
        slow.sendall(HEAD + b"X-Slow: ")
        started = time.perf_counter()
        answer = read_all(slow)
        waited = time.perf_counter() - started
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:60]
        assert 4 <= waited <= 8
        assert read_all(silent) == b""  # closed too, without a word: it never asked
    assert agent.connections.closed["head_timeout"] == 2


def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(
    setup: Setup, start_agent: StartAgent
) -> None:
    agent = start_agent(idle_timeout_seconds=2)
    token = setup.pod().token
    with connect(agent.ports[0], timeout=10) as conn:
        conn.sendall(HEAD.replace(b"Host: x\r\n", f"Authorization: {token}\r\n".encode()) + b"\r\n")
        first = conn.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        started = time.perf_counter()
        assert read_all(conn) == b""
        assert 1.5 <= time.perf_counter() - started <= 5
    assert agent.connections.closed["idle_timeout"] == 1


def test_one_address_over_its_connection_cap_is_refused_and_others_still_served(
    setup: Setup, start_agent: StartAgent, caplog: pytest.LogCaptureFixture
) -> None:
    agent = start_agent(max_connections_per_peer=20)
    port = agent.ports[0]
    hostile = [connect(port, "127.0.0.3") for _ in range(20)]
    try:
        with (
            caplog.at_level(logging.WARNING, logger="podid.agent"),
            connect(port, "127.0.0.3") as one_more,
        ):
            refused = read_all(one_more)
        assert refused.startswith(b"HTTP/1.1 503 ")
        assert b"TooManyConnections" in refused
        with connect(port, "127.0.0.2") as other:
            other.sendall(
                HEAD.replace(b"Host: x", f"Authorization: {setup.pod().token}".encode())
                + b"Connection: close\r\n\r\n"
            )
            assert read_all(other).startswith(b"HTTP/1.1 200 ")
    finally:
        for conn in hostile:
            conn.close()
    assert agent.connections.closed["peer_cap"] == 1
    assert any(getattr(r, "reason", None) == "peer_cap" for r in caplog.records)
    metrics = request(agent.ports[-1], b"GET /metrics HTTP/1.1\r\n\r\n")[2].decode()
    assert 'podid_agent_connections_limited_total{reason="peer_cap"} 1.0' in metrics


def test_at_the_global_cap_the_oldest_idle_connection_makes_room(
    setup: Setup, start_agent: StartAgent
) -> None:
    agent = start_agent(max_connections=30)
    port = agent.ports[0]
    idle = [connect(port, f"127.0.0.{3 + i % 3}") for i in range(30)]
    try:
        time.sleep(0.2)
        with connect(port, "127.0.0.2") as newcomer:
            newcomer.sendall(
                HEAD.replace(b"Host: x", f"Authorization: {setup.pod().token}".encode())
                + b"Connection: close\r\n\r\n"
            )
            assert read_all(newcomer).startswith(b"HTTP/1.1 200 ")
        assert read_all(idle[0]) == b""  # the oldest was closed to make room
    finally:
        for conn in idle:
            conn.close()
    assert agent.connections.closed["total_cap"] >= 1
