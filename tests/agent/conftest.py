"""The node agent over real sockets, in front of the EKS Auth emulation in moto."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import boto3
import pytest

from node_agent.backends.eks_auth import EksAuthBackend, client_config
from node_agent.jwks import JwksVerifier
from node_agent.runtime import Agent
from node_agent.settings import AgentSettings
from sandbox.cluster_identity import REGISTRY, ClusterIdentity
from tests.integration.conftest import ACCOUNT, REGION, World

ROLE_NAME = "app"


@dataclass
class Pod:
    namespace: str
    service_account: str
    token: str


@dataclass
class Setup:
    world: World
    identity: ClusterIdentity
    role_arn: str
    clock_offset: list[float] = field(default_factory=lambda: [0.0])

    def pod(
        self, service_account: str = "api", namespace: str = "payments", pod_name: str | None = None
    ) -> Pod:
        token = self.identity.issue(namespace, service_account, pod_name=pod_name)
        return Pod(namespace, service_account, token)

    def associate(self, service_account: str = "api", namespace: str = "payments") -> None:
        self.world.client("eks").create_pod_identity_association(
            clusterName="blue",
            namespace=namespace,
            serviceAccount=service_account,
            roleArn=self.role_arn,
        )

    def clock(self) -> float:
        return time.time() + self.clock_offset[0]


@pytest.fixture
def setup(world: World) -> Setup:
    world.create_cluster("blue")
    arn = world.create_role(ROLE_NAME)
    cluster_arn = f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/blue"
    found = Setup(world, REGISTRY.for_cluster(cluster_arn), arn)
    found.associate()
    return found


class StartAgent(Protocol):
    """The start_agent fixture: an agent in a thread with these settings overrides."""

    def __call__(self, verifier: JwksVerifier | None = None, **overrides: object) -> Agent: ...


@pytest.fixture
def start_agent(setup: Setup) -> Iterator[StartAgent]:
    started: list[Agent] = []

    def start(verifier: JwksVerifier | None = None, **overrides: object) -> Agent:
        settings = AgentSettings.create(
            binds=("127.0.0.1:0",),
            ops_bind="127.0.0.1:0",
            cluster_name="blue",
            region=REGION,
            drain_seconds=2,
            **overrides,
        )
        timeout = settings.upstream_timeout_seconds
        client = boto3.client("eks-auth", region_name=REGION, config=client_config(timeout))
        backend = EksAuthBackend(client, "blue")
        agent = Agent(settings, backend, clock=setup.clock, verifier=verifier).start_in_thread()
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop_thread()


def request(port: int, raw: bytes, timeout: float = 5) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read one HTTP response (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(raw)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        return status, headers, body


def get_credentials(
    port: int, token: str | None, path: str = "/v1/credentials"
) -> tuple[int, dict[str, Any]]:
    auth = f"Authorization: {token}\r\n" if token is not None else ""
    status, _, body = request(
        port, f"GET {path} HTTP/1.1\r\nHost: 169.254.170.23\r\n{auth}\r\n".encode()
    )
    return status, json.loads(body) if body else {}
