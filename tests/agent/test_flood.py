"""Issue 14: the agent on a hostile node. Its own process, with the fd limit of
1,024 from the issue, under unterminated lines, slow senders, 1,100 idle
connections and forged tokens (tests/agent/flood.py, another process), while a
well-behaved pod asks for credentials: every one of its requests is answered
200, its p99 stays low, and the agent's memory stays bounded."""

import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.conftest import Setup
from tests.integration.conftest import REGION

ROOT = Path(__file__).parents[2]
FLOOD_SECONDS = 8.0


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def bound_ports(process: subprocess.Popen[bytes], log: Path) -> tuple[int, int]:
    """The credentials and ops ports the agent bound (it was given port 0: a port picked
    here and bound later could be taken meanwhile by another socket)."""
    deadline = time.monotonic() + 30
    while True:
        for line in log.read_text().splitlines():
            if '"serving credentials"' in line:
                serving = json.loads(line)
                return int(serving["ports"][0]), int(serving["ops_port"])
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"the agent did not start: {log.read_text()}"
        time.sleep(0.1)


@pytest.fixture
def agent_process(
    setup: Setup, moto_endpoint: str, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    def fd_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))

    # its log goes to a file: a pipe nobody reads during the flood would fill and block it
    log = tmp_path / "agent.log"
    env = {**os.environ, "PODID_AGENT_LOG_LEVEL": "INFO", "AWS_ENDPOINT_URL": moto_endpoint}
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "node_agent", "--cluster-name", "blue", "--region", REGION),
                *("--bind", "127.0.0.1:0", "--ops-bind", "127.0.0.1:0"),
            ],
            env=env,
            cwd=ROOT,
            preexec_fn=fd_limit,  # noqa: PLW1509 - only setrlimit, before exec
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        port, _ = bound_ports(process, log)
        yield process, port
    finally:
        process.terminate()
        process.wait(10)


def ask(port: int, token: str) -> tuple[int, float]:
    """One request as a pod's SDK makes it (its own connection, 2 s timeout)."""
    started = time.perf_counter()
    try:
        with socket.create_connection(
            ("127.0.0.1", port), timeout=2, source_address=("127.0.0.2", 0)
        ) as conn:
            conn.sendall(
                f"GET /v1/credentials HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
        status = int(data.split(b" ", 2)[1]) if data else 0
    except OSError:
        status = 0
    return status, time.perf_counter() - started


def test_a_pod_is_served_beside_a_hostile_flood_with_bounded_memory(
    setup: Setup, agent_process: tuple[subprocess.Popen[bytes], int]
) -> None:
    process, port = agent_process
    cached = setup.pod(pod_name="good-0").token
    assert ask(port, cached)[0] == 200
    baseline = rss_mib(process.pid)
    # Given the flood running in its own process
    flood = subprocess.Popen(
        [
            *(sys.executable, "-m", "tests.agent.flood", str(port)),
            *(setup.identity.cluster_arn, str(FLOOD_SECONDS)),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    peak = [baseline]

    def sample() -> None:
        while flood.poll() is None:
            peak[0] = max(peak[0], rss_mib(process.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    time.sleep(1.5)  # let the idle connections pile up past the fd limit
    # When a well-behaved pod asks every 50 ms, a new pod every tenth time
    results = []
    index = 0
    until = time.time() + FLOOD_SECONDS - 2.5
    while time.time() < until:
        index += 1
        token = setup.pod(pod_name=f"good-{index}").token if index % 10 == 0 else cached
        results.append(ask(port, token))
        time.sleep(0.05)
    counts = json.loads(flood.communicate(timeout=30)[0].decode().strip().splitlines()[-1])
    sampler.join()
    latencies = sorted(took for _, took in results)
    p50 = statistics.median(latencies)
    p99 = latencies[int(0.99 * (len(latencies) - 1))]
    print(
        f"\nwell-behaved pod: {len(results)} requests, p50 {1000 * p50:.1f} ms, "
        f"p99 {1000 * p99:.1f} ms; agent RSS {baseline:.1f} -> peak {peak[0]:.1f} MiB; "
        f"flood: {counts}"
    )
    # Then it was never starved, and the agent's memory stayed bounded
    assert [status for status, _ in results] == [200] * len(results)
    assert p99 < 1.0
    assert peak[0] - baseline < 64
    # and the flood did run: the agent cut its endless lines and its idle sockets
    assert counts["unterminated_cut"] >= 1
    assert counts["idle_closed_by_agent"] >= 1
    assert counts.get("forged_401", 0) + counts.get("forged_429", 0) >= 10
