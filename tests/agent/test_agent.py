"""The agent end to end: the real botocore container provider, every error,
coalescing, refresh ahead, stale-if-error, the size bound, ops endpoints."""

import asyncio
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from node_agent.credentials import Credentials
from node_agent.server import CredentialsProtocol
from node_agent.tokens import TokenClaims
from sandbox.eks_emulation import FAULTS
from tests.agent.conftest import Setup, StartAgent, get_credentials, request
from tests.builders import EC2_ONLY
from tests.integration.conftest import REGION

SIX_HOURS = 6 * 3600


def test_a_pod_gets_credentials_through_botocores_container_provider(
    setup: Setup, start_agent: StartAgent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = start_agent()
    token_file = tmp_path / "eks-pod-identity-token"
    token_file.write_text(setup.pod().token)
    # Given a pod environment as the webhook injects it, and no other credentials
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI", f"http://127.0.0.1:{agent.ports[0]}/v1/credentials"
    )
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(token_file))
    # When the SDK resolves credentials and calls STS
    session = boto3.Session(region_name=REGION)
    credentials = session.get_credentials()
    assert credentials is not None
    assert credentials.method == "container-role"
    caller = session.client("sts").get_caller_identity()
    # Then it is the pod's role, in the pod's account
    assert caller["Arn"].startswith(
        f"arn:aws:sts::{caller['Account']}:assumed-role/app/eks-blue-api-"
    )


def test_the_answer_has_the_container_credentials_shape(
    setup: Setup, start_agent: StartAgent
) -> None:
    agent = start_agent()
    status, body = get_credentials(agent.ports[0], setup.pod().token)
    assert status == 200
    assert set(body) == {"AccessKeyId", "SecretAccessKey", "Token", "AccountId", "Expiration"}
    assert body["AccountId"] == "123456789012"
    assert body["Expiration"].endswith("Z")


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing header", (400, "InvalidRequest")),
        ("not a jwt", (400, "InvalidRequest")),
        ("expired", (401, "ExpiredToken")),
        ("other cluster", (401, "InvalidToken")),
        ("no association", (404, "ResourceNotFound")),
        ("trust policy refuses", (403, "AccessDenied")),
        ("throttled", (429, "Throttling")),
        ("upstream down", (503, "ServiceUnavailable")),
        ("wrong path", (404, "NotFound")),
    ],
)
def test_every_failure_has_the_right_status_and_no_token_in_logs(
    setup: Setup,
    start_agent: StartAgent,
    case: str,
    expected: tuple[int, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    agent = start_agent()
    port = agent.ports[0]
    token: str | None = setup.pod().token
    path = "/v1/credentials"
    if case == "missing header":
        token = None
    elif case == "not a jwt":
        token = "hello"
    elif case == "expired":
        token = setup.identity.issue("payments", "api", ttl_seconds=60, now=time.time() - 3600)
    elif case == "other cluster":
        from sandbox.cluster_identity import ClusterIdentity

        token = ClusterIdentity.create("arn:aws:eks:eu-west-1:123456789012:cluster/red").issue(
            "payments", "api"
        )
    elif case == "no association":
        token = setup.pod("nobody").token
    elif case == "trust policy refuses":
        setup.world.client("iam").update_assume_role_policy(
            RoleName="app",
            PolicyDocument=json.dumps(EC2_ONLY),
        )
    elif case == "throttled":
        FAULTS.inject("AssumeRoleForPodIdentity", "ThrottlingException", status=429, times=10)
    elif case == "upstream down":
        FAULTS.inject(
            "AssumeRoleForPodIdentity", "ServiceUnavailableException", status=503, times=10
        )
    elif case == "wrong path":
        path = "/v1/other"
    with caplog.at_level(logging.DEBUG):
        status, body = get_credentials(port, token, path)
    assert (status, body["Code"]) == expected
    assert body["Message"]
    if token and len(token) > 20:
        assert token not in caplog.text
        assert token not in json.dumps(body)


def test_transient_upstream_errors_are_retried_with_jitter_inside_the_budget(
    setup: Setup, start_agent: StartAgent
) -> None:
    agent = start_agent()
    FAULTS.inject("AssumeRoleForPodIdentity", "ThrottlingException", status=429, times=2)
    started = time.perf_counter()
    status, _ = get_credentials(agent.ports[0], setup.pod().token)
    assert status == 200
    assert time.perf_counter() - started < 1.5
    assert agent.cache.stats.upstream_calls == 3


def test_a_thousand_concurrent_first_requests_make_one_upstream_call_and_wake_together(
    setup: Setup, start_agent: StartAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the widest upstream budget: 1,000 clients, the agent and moto share one interpreter here
    agent = start_agent(upstream_timeout_seconds=1.8, upstream_budget_seconds=1.8)
    token = setup.pod().token
    FAULTS.slow_down("AssumeRoleForPodIdentity", 0.5)
    port = agent.ports[0]
    # when the agent answers each request (the clients share this interpreter: on a loaded
    # machine their own reads spread out, whatever the agent does)
    woken: list[float] = []
    finish = CredentialsProtocol._finish

    def answered(self: CredentialsProtocol, answer: bytes | None, keep_alive: bool) -> None:
        woken.append(time.perf_counter())
        finish(self, answer, keep_alive)

    monkeypatch.setattr(CredentialsProtocol, "_finish", answered)

    async def one(index: int) -> tuple[int, float]:
        # from four pod addresses: a single one would meet the per-address connection cap
        source = (f"127.0.0.{10 + index % 4}", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=source)
        writer.write(
            f"GET /v1/credentials HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\n\r\n".encode()
        )
        await writer.drain()
        line = await reader.readline()
        done = time.perf_counter()
        writer.close()
        return int(line.split()[1]), done

    async def burst() -> list[tuple[int, float]]:
        return await asyncio.gather(*(one(index) for index in range(1000)))

    results = asyncio.run(burst())
    assert [status for status, _ in results] == [200] * 1000
    stats = agent.cache.stats
    assert stats.upstream_calls == 1
    assert stats.misses == 1
    assert stats.coalesced + stats.hits == 999
    # the waiters wake when the one call returns, together, not in polling steps
    assert len(woken) == stats.misses + stats.coalesced
    assert woken[-1] - woken[0] < 0.3


def test_refresh_ahead_serves_the_cached_credential_and_renews_it_in_the_background(
    setup: Setup, start_agent: StartAgent
) -> None:
    agent = start_agent()
    token = setup.pod().token
    _, first = get_credentials(agent.ports[0], token)
    # When the credential enters its refresh window (30 min before expiry)
    setup.clock_offset[0] = SIX_HOURS - 20 * 60
    _, served = get_credentials(agent.ports[0], token)
    # Then the cached one is served at once and one refresh runs in the background
    assert served["AccessKeyId"] == first["AccessKeyId"]
    deadline = time.monotonic() + 5
    while agent.cache.stats.refreshed < 1:
        assert time.monotonic() < deadline, "the background refresh never landed"
        time.sleep(0.02)
    assert agent.cache.stats.refreshes == 1  # one refresh, however many hits
    assert agent.cache.stats.upstream_calls == 2
    _, renewed = get_credentials(agent.ports[0], token)
    assert renewed["AccessKeyId"] != first["AccessKeyId"]


def test_stale_if_error_keeps_serving_a_valid_credential_when_upstream_fails(
    setup: Setup, start_agent: StartAgent
) -> None:
    agent = start_agent()
    token = setup.pod().token
    _, first = get_credentials(agent.ports[0], token)
    FAULTS.inject("AssumeRoleForPodIdentity", "ServiceUnavailableException", status=503, times=50)
    setup.clock_offset[0] = SIX_HOURS - 20 * 60
    for _ in range(5):
        status, body = get_credentials(agent.ports[0], token)
        assert (status, body["AccessKeyId"]) == (200, first["AccessKeyId"])
    deadline = time.time() + 5
    while agent.cache.stats.refresh_failures < 1 and time.time() < deadline:
        time.sleep(0.02)
    assert agent.cache.stats.refresh_failures == 1
    # never served with less than 15 s left: past that, it is an upstream error again
    setup.clock_offset[0] = SIX_HOURS - 10
    status, _ = get_credentials(agent.ports[0], token)
    assert status == 503


def test_a_cached_credential_never_outlives_its_token(
    setup: Setup, start_agent: StartAgent
) -> None:
    agent = start_agent()
    token = setup.identity.issue("payments", "api", ttl_seconds=120)
    assert get_credentials(agent.ports[0], token)[0] == 200
    setup.clock_offset[0] = 121
    assert get_credentials(agent.ports[0], token)[0] == 401  # expired token, not a cached answer


def test_the_cache_is_bounded(setup: Setup, start_agent: StartAgent) -> None:
    agent = start_agent(cache_size=5)
    for i in range(8):
        assert get_credentials(agent.ports[0], setup.pod(pod_name=f"api-{i}").token)[0] == 200
    assert len(agent.cache) == 5
    assert agent.cache.stats.evictions == 3


def test_keep_alive_and_pipelining_answer_in_order(setup: Setup, start_agent: StartAgent) -> None:
    agent = start_agent()
    token = setup.pod().token
    raw = (
        f"GET /v1/credentials HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\n\r\n"
        "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
        f"GET /v1/credentials HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\nConnection: close\r\n\r\n"
    ).encode()
    import socket

    with socket.create_connection(("127.0.0.1", agent.ports[0]), timeout=5) as conn:
        conn.sendall(raw)
        data = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    statuses = [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]
    assert statuses == [200, 404, 200]


def test_ops_endpoints(setup: Setup, start_agent: StartAgent) -> None:
    agent = start_agent()
    get_credentials(agent.ports[0], setup.pod().token)
    get_credentials(agent.ports[0], setup.pod().token)
    ops = agent.ports[-1]
    assert request(ops, b"GET /healthz HTTP/1.1\r\n\r\n")[0] == 200
    assert request(ops, b"GET /readyz HTTP/1.1\r\n\r\n")[0] == 200
    status, _, body = request(ops, b"GET /metrics HTTP/1.1\r\n\r\n")
    assert status == 200
    text = body.decode()
    assert 'podid_agent_requests_total{status="200"} 2.0' in text
    assert "podid_agent_cache_entries 2.0" in text
    assert "podid_agent_upstream_seconds_bucket" in text
    for line in text.splitlines():
        assert "eyJ" not in line  # no token fragment in any metric


def test_graceful_shutdown_answers_inflight_requests(setup: Setup, start_agent: StartAgent) -> None:
    import threading

    agent = start_agent()
    FAULTS.slow_down("AssumeRoleForPodIdentity", 0.5)
    outcome: dict[str, tuple[int, dict[str, Any]]] = {}
    caller = threading.Thread(
        target=lambda: outcome.update(result=get_credentials(agent.ports[0], setup.pod().token))
    )
    caller.start()
    # stop once the request is in flight (its upstream call takes 0.5 s more), not after a guess
    deadline = time.monotonic() + 5
    while agent.app.inflight == 0:
        assert time.monotonic() < deadline, "the request never reached the agent"
        time.sleep(0.01)
    agent.stop_thread()
    caller.join(5)
    assert outcome["result"][0] == 200


def test_a_rotated_token_of_the_same_pod_is_served_from_cache_after_local_validation(
    setup: Setup, start_agent: StartAgent
) -> None:
    from node_agent.jwks import JwksVerifier

    verifier = JwksVerifier(setup.identity.jwks)
    agent = start_agent(verifier=verifier)
    first_token = setup.identity.issue("payments", "api", pod_name="api-7", now=time.time() - 60)
    _, first = get_credentials(agent.ports[0], first_token)
    # When the kubelet rotates the pod's token
    rotated = setup.identity.issue("payments", "api", pod_name="api-7")
    assert rotated != first_token
    status, again = get_credentials(agent.ports[0], rotated)
    # Then the cached credential is served without asking EKS Auth again
    assert (status, again["AccessKeyId"]) == (200, first["AccessKeyId"])
    assert agent.cache.stats.upstream_calls == 1
    assert agent.cache.stats.reused_for_new_token == 1
    # A forged token claiming the same pod fails local validation and goes upstream
    from sandbox.cluster_identity import ClusterIdentity

    forged = ClusterIdentity.create("arn:aws:eks:eu-west-1:123456789012:cluster/blue").issue(
        "payments", "api", pod_name="api-7"
    )
    status, _ = get_credentials(agent.ports[0], forged)
    assert status == 401
    assert verifier.failures >= 1


def test_new_identities_are_rate_limited_with_a_retryable_answer(
    setup: Setup, start_agent: StartAgent
) -> None:
    agent = start_agent(new_identities_per_second=0.001, new_identity_burst=2)
    statuses = [
        get_credentials(agent.ports[0], setup.pod(pod_name=f"p{i}").token)[0] for i in range(3)
    ]
    assert statuses == [200, 200, 429]
    assert agent.cache.stats.rate_limited == 1
    assert agent.limiter.refused == {"source": 0, "overall": 1, "source_calls": 0}


def test_a_stopped_agent_has_no_upstream_call_left_running(
    setup: Setup, start_agent: StartAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = start_agent()
    token = setup.pod().token
    get_credentials(agent.ports[0], token)
    started: list[bool] = []
    ended: list[bool] = []
    fetch = agent.app.backend.fetch

    def starved(
        token: str, claims: TokenClaims
    ) -> Credentials:  # an upstream thread that has not sent its call yet
        started.append(True)
        time.sleep(0.3)
        try:
            return fetch(token, claims)
        finally:
            ended.append(True)

    monkeypatch.setattr(agent.app.backend, "fetch", starved)
    # Given a background refresh whose upstream call is running
    setup.clock_offset[0] = SIX_HOURS - 20 * 60
    assert get_credentials(agent.ports[0], token)[0] == 200
    deadline = time.monotonic() + 5
    while not started:
        assert time.monotonic() < deadline, "the refresh never called upstream"
        time.sleep(0.01)
    # When the agent is stopped (a test ends: the next one resets moto and injects faults)
    agent.stop_thread()
    # Then that call is over: it cannot reach the next test's world
    assert ended == [True]
