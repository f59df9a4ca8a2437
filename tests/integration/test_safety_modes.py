"""Modes mean what they say, counted on the wire: every write call the
functions' EKS and IAM clients make, and every write to the cluster's API.

* plan: zero writes to EKS, IAM and the clusters; every intended change is
  recorded (Pending, "plan mode: would ...").
* audit: no IAM write; EKS writes only to associations podid created for its
  own declarations: no heal, adoption, retag or delete of anything else.
"""

from __future__ import annotations

from typing import Any

import pytest

from functions.aws import clients
from sandbox.eks_emulation import FAULTS
from tests.builders import EC2_ONLY, OPT_IN
from tests.integration.conftest import ACCOUNT, REGION, World, cluster_id, cluster_pk, fixture_event

ROLE = f"arn:aws:iam::{ACCOUNT}:role/payments-api"
WRITES = ("Create", "Update", "Delete", "Put", "Tag", "Untag", "Attach", "Detach")


def watch_writes(world: World) -> list[tuple[str, str]]:
    """(operation, request path) of each write the functions' clients send."""
    seen: list[tuple[str, str]] = []
    for service in ("eks", "iam"):
        client = clients.client(service, REGION)

        def record(model: Any, params: Any, **_: Any) -> None:
            if model.name.startswith(WRITES):
                seen.append((model.name, str(params.get("url_path", ""))))

        client.meta.events.register(
            f"before-call.{client.meta.service_model.service_id.hyphenize()}", record
        )
    return seen


def cluster_writes(world: World, cluster: str) -> list[tuple[str, str, int]]:
    return [r for r in world.apis[cluster].requests if r[0] in ("POST", "PUT", "PATCH", "DELETE")]


def handmade(world: World, namespace: str, service_account: str, **extra: Any) -> str:
    return str(
        world.client("eks").create_pod_identity_association(
            clusterName="blue",
            namespace=namespace,
            serviceAccount=service_account,
            roleArn=ROLE,
            **extra,
        )["association"]["associationId"]
    )


def test_plan_mode_writes_nothing_to_eks_iam_or_clusters_and_reports_every_change(
    world: World,
) -> None:
    world.configure(mode="plan")
    world.create_role("payments-api", trust=EC2_ONLY, tags=OPT_IN)
    writes = watch_writes(world)
    world.enroll("blue")
    handmade(world, "legacy", "app", tags={"pod-identity/managed-by": "podid"})
    world.declare_in_payments("payments-api", "api", mode="enforce")  # asks for more: ignored
    world.declare_in_payments("legacy", "app", adopt=True)
    world.settle()
    world.guard_event(
        fixture_event(
            "iam_update_assume_role_policy", ROLE_NAME="payments-api", CALLER_ROLE="Admin"
        )
    )
    world.reconcile_event(fixture_event("scheduled_event"))
    world.guard_event(fixture_event("scheduled_event"))
    assert writes == []
    assert cluster_writes(world, "blue") == []
    assert list(world.associations("blue")) == [("legacy", "app")]  # only the hand-made one
    status = world.record(cluster_pk("blue"), "ASSOC#payments#api")
    assert (status["state"], status["reason"]) == (
        "Pending",
        f"plan mode: would create {cluster_id('blue')}/payments/api",
    )
    assert world.record("ROLE#" + ROLE, "FINDING#LATEST")["action"] == "reported"
    assert world.trust_policy("payments-api") == EC2_ONLY  # the role is untouched


@pytest.mark.parametrize("faults", [False, True], ids=["calm", "under-faults"])
def test_audit_mode_writes_only_associations_podid_created_and_never_iam(
    world: World, faults: bool
) -> None:
    world.create_role("payments-api", trust=EC2_ONLY, tags=OPT_IN)
    world.enroll("blue")
    stray = handmade(world, "stray", "app", tags={"pod-identity/managed-by": "podid"})
    blocked = handmade(world, "payments", "worker")
    writes = watch_writes(world)
    if faults:
        # every SDK attempt of the first create and list fails: the reconcile
        # message fails and comes back after the visibility timeout
        FAULTS.inject("CreatePodIdentityAssociation", "ServerException", status=500, times=3)
        FAULTS.inject("ListPodIdentityAssociations", "ThrottlingException", status=429, times=2)
    world.declare_in_payments("payments-api", "api", mode="enforce")  # cannot escalate
    world.declare_in_payments("worker", "worker", adopt=True)  # adoption: never in audit
    world.settle()
    ours = world.associations("blue")[("payments", "api")]["associationId"]
    # a hand edit of podid's own association: reported, not healed
    world.client("eks").update_pod_identity_association(
        clusterName="blue", associationId=ours, disableSessionTags=True
    )
    event = fixture_event(
        "eks_delete_pod_identity_association",
        CLUSTER="blue",
        ASSOCIATION_ID=ours,
        CALLER_ROLE="Admin",
    )
    event["detail"]["eventName"] = "UpdatePodIdentityAssociation"
    world.reconcile_event(event)
    assert world.record(cluster_pk("blue"), "ASSOC#payments#api")["state"] == "Drifted"
    # a trust policy broken by hand: reported, no IAM write
    world.guard_event(
        fixture_event(
            "iam_update_assume_role_policy", ROLE_NAME="payments-api", CALLER_ROLE="Admin"
        )
    )
    # its declaration removed: podid deletes what it created, and only that
    world.undeclare("payments-api")
    world.settle()
    if faults:
        assert FAULTS.fired == {
            "CreatePodIdentityAssociation": 3,
            "ListPodIdentityAssociations": 2,
        }
    names = [name for name, _ in writes]
    retried = ["CreatePodIdentityAssociation"] if faults else []  # the failed message's try
    assert names == [*retried, "CreatePodIdentityAssociation", "DeletePodIdentityAssociation"]
    assert writes[-1][1].endswith(f"/{ours}")
    assert {stray, blocked} <= {a["associationId"] for a in world.associations("blue").values()}
    assert world.record(cluster_pk("blue"), "ASSOC#payments#worker")["state"] == "Blocked"
    assert world.trust_policy("payments-api") == EC2_ONLY
