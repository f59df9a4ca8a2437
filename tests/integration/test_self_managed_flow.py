"""Self-managed clusters through the handlers: reconciled as map entries with
no EKS association call, never forgotten by discovery, their record never
able to redirect an EKS cluster's token, and their roles checked against the
node role. (The push to a real API server: tests/realkube_e2e.)"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from functions.aws import clients
from functions.core.self_managed import self_managed_cluster
from functions.dal.repository import Repository
from tests.builders import OPT_IN
from tests.integration.conftest import ACCOUNT, REGION, World, cluster_pk, fixture_event
from tests.realwebhook.webhook import make_tls

NODE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/lab-nodes"


class Trap:
    """A loopback listener that counts who connects (a token sent here is lost)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def trap() -> Iterator[Trap]:
    found = Trap()
    yield found
    found.close()


def enrol(world: World, tmp_path: Path, name: str, port: int, fleet: str = "prod") -> None:
    """What `podid cluster enroll --self-managed` writes."""
    tls = make_tls(tmp_path)
    cluster = self_managed_cluster(
        name=name,
        endpoint=f"https://127.0.0.1:{port}",
        ca_pem=tls.ca_pem,
        node_role_arn=NODE_ROLE,
        account=ACCOUNT,
        region=REGION,
        fleet=fleet,
    )
    existing = world.item(cluster_pk(name), "CLUSTER")
    version = int(existing["version"]) if existing else 0
    Repository(world.table).save_cluster(cluster.model_copy(update={"version": version}))


def eks_calls(world: World) -> list[str]:
    seen: list[str] = []

    def record(model: Any, **_: Any) -> None:
        seen.append(model.name)

    clients.client("eks", REGION).meta.events.register("before-call.eks", record)
    return seen


def test_a_self_managed_cluster_is_reconciled_as_map_entries_without_any_eks_association_call(
    world: World, tmp_path: Path, trap: Trap
) -> None:
    # Given a self-managed cluster of fleet prod and a fleet-wide declaration
    world.create_role("payments-api")
    enrol(world, tmp_path, "lab-1", trap.port)
    calls = eks_calls(world)
    world.declare_in_payments("payments-api", "api")
    # When the stream, the schedule and the reconciles they queue run (pushes held back)
    world.run_sync()
    world.reconcile_event(fixture_event("scheduled_event"), settle=False)
    world.run_sync()
    world.run_reconcile_queue()
    # Then the association is an entry of the map, in sync, with no EKS association call
    status = world.item(cluster_pk("lab-1"), "ASSOC#payments#api")
    assert status is not None
    assert (status["state"], status["associationId"], status["owned"]) == (
        "InSync",
        "map:payments/api",
        True,
    )
    assert not [c for c in calls if "PodIdentityAssociation" in c]
    assert set(calls) <= {"ListClusters", "DescribeCluster"}
    # discovery keeps the record (it is not in EKS) and a push of its map is queued
    assert world.record(cluster_pk("lab-1"), "CLUSTER")["kind"] == "self-managed"
    queued = world.client("sqs").receive_message(QueueUrl=world.urls["push"]).get("Messages", [])
    assert [m["Body"] for m in queued if "lab-1" in m["Body"]]
    assert trap.connections == 0  # nothing pushed yet


def test_a_self_managed_record_under_a_name_eks_has_never_receives_the_token(
    world: World, tmp_path: Path, trap: Trap
) -> None:
    # Given an EKS cluster, and a record rewritten to call it self-managed at a listener
    world.given_payments_api("blue")
    enrol(world, tmp_path, "blue", trap.port)
    # When a change is pushed
    world.declare_in_payments("worker", "worker")
    world.settle()
    # Then no connection reached the recorded endpoint, and the push says why it refused
    assert trap.connections == 0
    reasons = [m["reason"] for m in world.dead_letters() if m["source"] == "webhook_push"]
    assert reasons
    assert all("recorded as self-managed but EKS has a cluster of that name" in r for r in reasons)


def test_a_role_used_on_a_self_managed_cluster_must_trust_its_node_role_and_is_repaired_so(
    world: World, tmp_path: Path, trap: Trap
) -> None:
    # Given a role that trusts pods only, opted into repairs, used on a self-managed cluster
    world.configure(mode="enforce")
    world.create_role("payments-api", tags=OPT_IN)
    enrol(world, tmp_path, "lab-1", trap.port)
    world.declare_in_payments("payments-api", "api")
    world.run_sync()
    # When the guard's schedule checks it
    world.guard_event(fixture_event("scheduled_event"))
    # Then it was repaired with a statement for the node role, scoped to the usage
    latest = world.item(f"ROLE#arn:aws:iam::{ACCOUNT}:role/payments-api", "FINDING#LATEST")
    assert latest is not None
    assert latest["action"] == "repaired"
    assert "trusting the node role" in latest["detail"]
    statements = world.trust_policy("payments-api")["Statement"]
    grant = next(s for s in statements if s.get("Principal") == {"AWS": NODE_ROLE})
    assert grant["Condition"]["StringEquals"] == {
        "aws:RequestTag/eks-cluster-arn": f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/lab-1",
        "aws:RequestTag/kubernetes-namespace": "payments",
        "aws:RequestTag/kubernetes-service-account": "api",
    }
