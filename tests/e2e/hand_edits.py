"""Run by test_hand_edits in its own process (the sandbox owns the
environment, and the functions keep the endpoints they first saw).

Hand edits of one association in the sandbox, one after another: each is
healed within one event delivery (CloudTrail event -> reconcile queue ->
the cluster's one writer), and `podid status` / `podid plan` agree with EKS
after every step. The sandbox is the contract: its CloudTrail is made on the
server side from the API calls, as in AWS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from functions.core.fleet import expand
from functions.core.models import Declaration
from functions.core.places import ClusterRef
from functions.flows.cluster_sync import preview
from functions.flows.services import services
from sandbox.stack import ACCOUNT, Sandbox

ROLE = f"arn:aws:iam::{ACCOUNT}:role/pod-identity/payments-api"
OTHER = f"arn:aws:iam::{ACCOUNT}:role/pod-identity/orders-worker"
DENY_ALL = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}
)


@contextmanager
def sandbox_with_one_declaration() -> Iterator[Sandbox]:
    from moto.moto_api._internal.models import moto_api_backend

    moto_api_backend.reset()  # moto's state is per process: start from an empty account
    with Sandbox(mode="enforce") as sandbox:
        sandbox.add_cluster("blue", fleet="prod")
        sandbox.add_role("payments-api")
        sandbox.add_role("orders-worker")
        sandbox.pump()
        sandbox.schedule()
        sandbox.pump()
        services().repo.put_declaration(
            Declaration.model_validate(
                {
                    "id": "payments-api",
                    "namespace": "payments",
                    "serviceAccount": "api",
                    "roleArn": ROLE,
                    "target": {"fleet": "prod"},
                    "tags": {"team": "payments"},
                    # opt in to taking over an association recreated by hand (edit 4)
                    "adopt": True,
                }
            )
        )
        sandbox.pump()
        yield sandbox


def association(box: Sandbox) -> dict[str, Any]:
    eks = box.client("eks")
    (summary,) = eks.list_pod_identity_associations(clusterName="blue")["associations"]
    found: dict[str, Any] = eks.describe_pod_identity_association(
        clusterName="blue", associationId=summary["associationId"]
    )["association"]
    return found


def assert_healed_and_agreed(box: Sandbox, step: str) -> None:
    actual = association(box)
    assert actual["roleArn"] == ROLE, step
    assert (actual["disableSessionTags"], actual.get("policy")) == (False, None), step
    assert actual["tags"]["team"] == "payments", step
    assert actual["tags"]["pod-identity/managed-by"] == "podid", step
    svc = services()
    # podid status: what it records is what EKS has
    blue = ClusterRef.at(svc.home, "blue")
    (status,) = svc.repo.association_statuses(blue).values()
    assert status.state.value == "InSync", step
    assert status.association_id == actual["associationId"], step
    assert status.observed is not None, step
    assert status.observed.role_arn == actual["roleArn"], step
    assert status.observed.tags == actual["tags"], step
    assert status.owned, step
    # podid plan: nothing left to change, looking at EKS afresh
    cluster = svc.repo.get_cluster(blue)
    assert cluster is not None
    declarations = svc.repo.load_declarations()
    desired = expand(declarations.valid, [cluster], managed_by="podid")
    assert preview(svc, blue, declarations, desired) == ([], {}), step


def main() -> None:
    with sandbox_with_one_declaration() as box:
        five_hand_edits(box)
    print("all hand edits healed")


def five_hand_edits(box: Sandbox) -> None:
    eks = box.client("eks")
    assert_healed_and_agreed(box, "declared")

    for again in ("", " again"):  # the very same edit twice: a new heal each time
        eks.update_pod_identity_association(
            clusterName="blue", associationId=association(box)["associationId"], roleArn=OTHER
        )
        box.pump()
        assert_healed_and_agreed(box, f"1. role changed{again}")

    eks.update_pod_identity_association(
        clusterName="blue",
        associationId=association(box)["associationId"],
        disableSessionTags=True,
        policy=DENY_ALL,
    )
    box.pump()
    assert_healed_and_agreed(box, "2. session tags disabled + a session policy")

    eks.delete_pod_identity_association(
        clusterName="blue", associationId=association(box)["associationId"]
    )
    box.pump()
    assert_healed_and_agreed(box, "3. deleted")

    eks.delete_pod_identity_association(
        clusterName="blue", associationId=association(box)["associationId"]
    )
    eks.create_pod_identity_association(
        clusterName="blue", namespace="payments", serviceAccount="api", roleArn=OTHER
    )
    box.pump()
    assert_healed_and_agreed(box, "4. recreated by hand with another role")

    arn = association(box)["associationArn"]
    eks.untag_resource(resourceArn=arn, tagKeys=["team"])
    eks.tag_resource(resourceArn=arn, tags={"owner": "someone"})
    box.pump()
    assert_healed_and_agreed(box, "5. tags edited")


if __name__ == "__main__":
    main()
