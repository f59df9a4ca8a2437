"""Every declared change lands, every drift heals: the pipeline under the
semantics of the real services (token idempotency, FIFO de-duplication,
index lag, quotas, one writer per cluster). Each test failed on the code
before its fix."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from functions.core.models import (
    ActualAssociation,
    AssociationKey,
    AssociationSpec,
    AssociationStatus,
)
from functions.core.places import ClusterRef
from functions.dal.repository import Repository
from sandbox import eks_emulation, sqs_fifo
from tests.integration.conftest import ACCOUNT, World, cluster_id, cluster_pk, fixture_event

ROLE = f"arn:aws:iam::{ACCOUNT}:role/payments-api"
OTHER = f"arn:aws:iam::{ACCOUNT}:role/intruder"


def edited_event(world: World, cluster: str, event_name: str) -> dict[str, Any]:
    (association,) = world.associations(cluster).values()
    event = fixture_event(
        "eks_delete_pod_identity_association",
        CLUSTER=cluster,
        ASSOCIATION_ID=association["associationId"],
        CALLER_ROLE="Admin",
    )
    event["detail"]["eventName"] = event_name
    return event


def only_association(world: World, cluster: str) -> dict[str, Any]:
    (association,) = world.associations(cluster).values()
    return association


def test_drift_heals_every_time_not_only_once(world: World) -> None:
    world.configure(mode="enforce")
    world.create_role("intruder")
    world.given_payments_api("blue")
    eks = world.client("eks")
    for attempt in range(3):
        association = only_association(world, "blue")
        eks.update_pod_identity_association(
            clusterName="blue", associationId=association["associationId"], roleArn=OTHER
        )
        world.reconcile_event(edited_event(world, "blue", "UpdatePodIdentityAssociation"))
        assert only_association(world, "blue")["roleArn"] == ROLE, f"edit {attempt + 1}"
    # session tags disabled and a session policy added by hand: healed too
    policy = json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}
    )
    eks.update_pod_identity_association(
        clusterName="blue",
        associationId=only_association(world, "blue")["associationId"],
        disableSessionTags=True,
        policy=policy,
    )
    world.reconcile_event(edited_event(world, "blue", "UpdatePodIdentityAssociation"))
    healed = only_association(world, "blue")
    assert (healed["disableSessionTags"], healed.get("policy")) == (False, None)
    assert world.record(cluster_pk("blue"), "ASSOC#payments#api")["state"] == "InSync"


def test_a_write_answered_with_something_else_is_an_error_not_a_success(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.aws.eks import EksAdapter

    world.configure(mode="enforce")
    world.create_role("intruder")
    world.given_payments_api("blue")
    original = EksAdapter.update_association

    def stale_answer(
        self: EksAdapter,
        key: AssociationKey,
        association_id: str,
        spec: AssociationSpec,
        token: str,
    ) -> ActualAssociation:
        answered = original(self, key, association_id, spec, token)
        assert answered is not None
        return answered.model_copy(
            update={"spec": answered.spec.model_copy(update={"role_arn": OTHER})}
        )

    monkeypatch.setattr(EksAdapter, "update_association", stale_answer)
    association = only_association(world, "blue")
    world.client("eks").update_pod_identity_association(
        clusterName="blue", associationId=association["associationId"], roleArn=OTHER
    )
    world.reconcile_event(edited_event(world, "blue", "UpdatePodIdentityAssociation"), settle=False)
    world.run_reconcile_queue()
    status = world.record(cluster_pk("blue"), "ASSOC#payments#api")
    assert status["state"] == "Error"
    assert f"EKS answered update {cluster_id('blue')}/payments/api (role_arn)" in status["reason"]
    assert cluster_id("blue") in world.record("DECL#payments-api", "STATUS")["clusters"]


def test_a_declaration_in_the_readme_shape_is_applied(world: World) -> None:
    world.create_role("payments-api")
    world.enroll("blue")
    # exactly the README's item: no attribute beyond pk, sk and the declaration
    world.table.put_item(
        Item={
            "pk": "DECL#orders-worker",
            "sk": "DECL",
            "namespace": "orders",
            "serviceAccount": "worker",
            "roleArn": ROLE,
            "target": {"fleet": "prod"},
        }
    )
    world.settle()
    assert list(world.associations("blue")) == [("orders", "worker")]
    assert world.record("DECL#orders-worker", "STATUS")["state"] == "Accepted"


def test_a_new_declaration_lands_while_the_listing_index_lags(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.create_role("payments-api")
    world.enroll("blue")
    original = Repository._query

    def lagging(self: Repository, **kwargs: Any) -> Iterator[dict[str, Any]]:
        if kwargs.get("IndexName") == "byKind":
            # the index has not caught up with anything written in this test yet
            return iter([i for i in original(self, **kwargs) if i["pk"] != "DECL#payments-api"])
        return original(self, **kwargs)

    monkeypatch.setattr(Repository, "_query", lagging)
    world.declare_in_payments("payments-api", "api")
    world.settle()
    assert list(world.associations("blue")) == [("payments", "api")]


def test_the_stream_never_writes_to_eks_one_writer_per_cluster(world: World) -> None:
    world.create_role("payments-api")
    world.enroll("blue")
    world.declare_in_payments("payments-api", "api")
    world.run_sync()  # the stream alone
    assert world.associations("blue") == {}
    assert world.pollers()[0].in_flight() == 1  # a reconcile of blue is queued instead
    world.settle()
    assert list(world.associations("blue")) == [("payments", "api")]


def test_a_stale_status_write_is_replanned_not_overwritten(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.configure(mode="enforce")
    world.create_role("intruder")
    world.given_payments_api("blue")
    original = Repository.save_association_status
    raced = {"left": 1}
    eks = world.client("eks")

    def another_writer_first(self: Repository, status: AssociationStatus) -> AssociationStatus:
        # between our read and our write, someone changes EKS and records it
        if raced["left"]:
            raced["left"] -= 1
            eks.update_pod_identity_association(
                clusterName="blue", associationId=status.association_id, roleArn=OTHER
            )
            fresh = self.association_statuses(status.key.cluster)[status.key]
            assert fresh.observed is not None
            observed = fresh.observed.model_copy(update={"role_arn": OTHER})
            original(self, fresh.model_copy(update={"observed": observed}))
        return original(self, status)

    monkeypatch.setattr(Repository, "save_association_status", another_writer_first)
    association = only_association(world, "blue")
    eks.update_pod_identity_association(
        clusterName="blue", associationId=association["associationId"], roleArn=OTHER
    )
    world.reconcile_event(edited_event(world, "blue", "UpdatePodIdentityAssociation"))
    assert raced["left"] == 0
    # re-planned: it saw the other write and healed it; its status tells the truth
    assert only_association(world, "blue")["roleArn"] == ROLE
    status = world.record(cluster_pk("blue"), "ASSOC#payments#api")
    assert (status["state"], status["observed"]["roleArn"]) == ("InSync", ROLE)


def test_a_cluster_leaving_the_fleet_gets_an_empty_map(world: World) -> None:
    world.given_payments_api("blue")
    configmap = world.configmap("blue", "kube-system", "pod-identity-associations")
    assert "payments" in configmap["data"]["identities.json"]
    arn = world.record(cluster_pk("blue"), "CLUSTER")["arn"]
    world.client("eks").untag_resource(resourceArn=arn, tagKeys=["pod-identity/fleet"])
    world.reconcile_event(fixture_event("eks_untag_resource", CLUSTER="blue"))
    assert world.associations("blue") == {}
    configmap = world.configmap("blue", "kube-system", "pod-identity-associations")
    assert json.loads(configmap["data"]["identities.json"]) == {"identities": []}


def test_consecutive_identical_push_requests_are_all_delivered(world: World) -> None:
    """Real SQS FIFO drops a repeated de-duplication id for 5 minutes."""
    world.given_payments_api("blue")
    world.undeclare("payments-api")
    world.settle()
    world.declare_in_payments("payments-api", "api")
    world.settle()
    world.undeclare("payments-api")
    world.settle()
    assert sqs_fifo.DROPPED == []
    configmap = world.configmap("blue", "kube-system", "pod-identity-associations")
    assert json.loads(configmap["data"]["identities.json"]) == {"identities": []}


def test_the_fifo_window_drops_a_repeated_id_like_sqs(world: World) -> None:
    sqs = world.client("sqs")
    for _ in range(2):
        sqs.send_message(
            QueueUrl=world.urls["push"],
            MessageBody="{}",
            MessageGroupId="g",
            MessageDeduplicationId="same",
        )
        for message in sqs.receive_message(QueueUrl=world.urls["push"]).get("Messages", []):
            sqs.delete_message(QueueUrl=world.urls["push"], ReceiptHandle=message["ReceiptHandle"])
    assert len(sqs_fifo.DROPPED) == 1


def test_a_full_cluster_reports_the_quota_and_describes_only_its_own(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.aws.eks import EksAdapter

    monkeypatch.setattr(eks_emulation.limits, "MAX_ASSOCIATIONS_PER_CLUSTER", 20)
    world.create_role("payments-api")
    world.enroll("blue")
    eks = world.client("eks")
    for index in range(20):
        eks.create_pod_identity_association(
            clusterName="blue", namespace="handmade", serviceAccount=f"sa-{index}", roleArn=ROLE
        )
    described: list[str] = []
    original = EksAdapter.describe_association

    def counting(
        self: EksAdapter, cluster: ClusterRef, association_id: str
    ) -> ActualAssociation | None:
        described.append(association_id)
        return original(self, cluster, association_id)

    monkeypatch.setattr(EksAdapter, "describe_association", counting)
    world.declare_in_payments("payments-api", "api")
    world.settle(timeout=30)
    assert described == []  # none of the 20 hand-made ones, on any attempt
    status = world.record(cluster_pk("blue"), "ASSOC#payments#api")
    assert status["state"] == "Error"
    assert "ResourceLimitExceededException" in status["reason"]
    problem = world.record("DECL#payments-api", "STATUS")["clusters"][cluster_id("blue")]
    assert "ResourceLimitExceededException" in problem
    (parked,) = world.dead_letters()
    assert parked["source"] == "reconcile"
    assert "gave up after 5 attempts" in parked["reason"]
    assert "ResourceLimitExceededException" in parked["reason"]


def test_a_failed_message_waits_out_the_visibility_timeout(world: World) -> None:
    from functions.handlers import reconcile

    world.create_role("payments-api")
    world.enroll("blue")
    # every attempt of the SDK's retries (AWS_MAX_ATTEMPTS=3) fails once
    eks_emulation.FAULTS.inject(
        "CreatePodIdentityAssociation", "ServerException", status=500, times=3
    )
    deliveries: list[tuple[float, dict[str, str]]] = []  # (handed over at, SQS attributes)

    def recording(event: dict[str, Any], context: Any) -> Any:
        deliveries.extend((time.time(), r["attributes"]) for r in event["Records"])
        return reconcile.handler(event, context)

    world.reconcile_handler = recording
    world.declare_in_payments("payments-api", "api")
    world.run_sync()
    # When the queue is polled as Lambda polls it, however long the failing attempt took
    deadline = time.monotonic() + 30
    while len(deliveries) < 2:
        assert time.monotonic() < deadline, f"not redelivered: {deliveries}"
        world.run_reconcile_queue()
        time.sleep(0.05)
    assert eks_emulation.FAULTS.fired["CreatePodIdentityAssociation"] == 3
    (_, first), (second_at, second) = deliveries
    assert (first["ApproximateReceiveCount"], second["ApproximateReceiveCount"]) == ("1", "2")
    # Then it came back only once the queues' visibility timeout (1 s) had passed since
    # the failed receive (moto's clock is this process's): no hot loop
    failed_receive = int(second["ApproximateFirstReceiveTimestamp"]) / 1000
    assert second_at - failed_receive >= 1.0
    assert list(world.associations("blue")) == [("payments", "api")]
