"""Drift, fleet membership and the schedule (EKS CloudTrail events, SQS fan-out)."""

from typing import Any, NoReturn

import pytest

from tests.integration.conftest import ACCOUNT, World, cluster_id, cluster_pk, fixture_event

ROLE = f"arn:aws:iam::{ACCOUNT}:role/payments-api"


def delete_by_hand(world: World, cluster: str) -> dict[str, Any]:
    (association,) = world.associations(cluster).values()
    world.client("eks").delete_pod_identity_association(
        clusterName=cluster, associationId=association["associationId"]
    )
    return fixture_event(
        "eks_delete_pod_identity_association",
        CLUSTER=cluster,
        ASSOCIATION_ID=association["associationId"],
        CALLER_ROLE="Admin",
    )


def test_enforce_heals_an_association_deleted_by_hand(world: World) -> None:
    world.configure(mode="enforce")
    world.given_payments_api("blue")
    event = delete_by_hand(world, "blue")
    assert world.associations("blue") == {}
    world.reconcile_event(event)
    world.settle()
    (healed,) = world.associations("blue").values()
    assert healed["roleArn"] == ROLE
    assert world.record(cluster_pk("blue"), "ASSOC#payments#api")["state"] == "InSync"


def test_audit_reports_drift_and_leaves_it(world: World) -> None:
    world.given_payments_api("blue")
    world.reconcile_event(delete_by_hand(world, "blue"))
    world.settle()
    assert world.associations("blue") == {}
    status = world.record(cluster_pk("blue"), "ASSOC#payments#api")
    assert status["state"] == "Drifted"
    assert status["reason"] == (
        f"drift reported (audit mode): create {cluster_id('blue')}/payments/api"
    )


def test_role_changed_by_hand_is_found_through_the_event_and_reverted(world: World) -> None:
    world.configure(mode="enforce")
    world.given_payments_api("blue")
    world.create_role("intruder")
    (association,) = world.associations("blue").values()
    world.client("eks").update_pod_identity_association(
        clusterName="blue",
        associationId=association["associationId"],
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/intruder",
    )
    event = fixture_event(
        "eks_delete_pod_identity_association",
        CLUSTER="blue",
        ASSOCIATION_ID=association["associationId"],
        CALLER_ROLE="Admin",
    )
    event["detail"]["eventName"] = "UpdatePodIdentityAssociation"
    world.reconcile_event(event)
    (reverted,) = world.associations("blue").values()
    assert reverted["roleArn"] == ROLE
    assert reverted["associationId"] == association["associationId"]


def test_a_new_fleet_cluster_is_enrolled_with_zero_edits(world: World) -> None:
    world.given_payments_api("blue")
    # When a green cluster of the same fleet is created (blue/green migration)
    world.create_cluster("green", fleet="prod")
    world.reconcile_event(
        fixture_event("eks_create_cluster", CLUSTER="green", FLEET="prod", CALLER_ROLE="terraform")
    )
    world.settle()
    # Then it gets the fleet's associations and its map, without any declaration edit
    assert list(world.associations("green")) == [("payments", "api")]
    assert world.apis["green"].configmap("kube-system", "pod-identity-associations") is not None
    assert world.record(cluster_pk("green"), "CLUSTER")["enrolledBy"] == "tag"


def test_the_schedule_fans_out_one_message_per_cluster_and_catches_missed_events(
    world: World,
) -> None:
    world.given_payments_api("blue")
    world.create_cluster("green", fleet="prod")  # its CreateCluster event was missed
    response = world.reconcile_event(fixture_event("scheduled_event"))
    assert response["clusters"] == [cluster_id("blue"), cluster_id("green")]
    assert response["fannedOut"] == 2
    world.settle()
    assert list(world.associations("green")) == [("payments", "api")]


def test_a_deleted_cluster_is_forgotten(world: World) -> None:
    world.given_payments_api("blue", "green")
    world.client("eks").delete_cluster(name="green")
    world.reconcile_event(fixture_event("scheduled_event"))
    assert world.item(cluster_pk("green"), "CLUSTER") is None
    assert world.item(cluster_pk("green"), "ASSOC#payments#api") is None
    assert world.item(cluster_pk("blue"), "CLUSTER") is not None


def test_a_cluster_leaving_the_fleet_is_released(world: World) -> None:
    world.given_payments_api("blue", "green")
    world.client("eks").untag_resource(
        resourceArn=f"arn:aws:eks:eu-west-1:{ACCOUNT}:cluster/green", tagKeys=["pod-identity/fleet"]
    )
    world.reconcile_event(fixture_event("eks_untag_resource", CLUSTER="green"))
    assert world.associations("green") == {}
    assert world.record(cluster_pk("green"), "CLUSTER")["enrolled"] is False
    assert list(world.associations("blue")) == [("payments", "api")]


def test_an_association_made_by_hand_is_left_alone_unless_its_declaration_adopts_it(
    world: World,
) -> None:
    world.configure(mode="enforce")
    world.create_cluster("blue", fleet="prod")
    world.create_role("payments-api")
    world.create_role("other")
    world.reconcile_event(fixture_event("scheduled_event"))
    other = f"arn:aws:iam::{ACCOUNT}:role/other"
    handmade = world.client("eks").create_pod_identity_association(
        clusterName="blue",
        namespace="payments",
        serviceAccount="api",
        roleArn=other,
        tags={"pod-identity/managed-by": "podid"},  # a tag anyone can set proves nothing
    )["association"]
    world.declare_in_payments("payments-api", "api")
    world.settle()
    (kept,) = world.associations("blue").values()
    assert (kept["associationId"], kept["roleArn"]) == (handmade["associationId"], other)
    status = world.record(cluster_pk("blue"), "ASSOC#payments#api")
    assert status["state"] == "Blocked"
    assert "not created by podid" in status["reason"]
    assert "Blocked" in world.record("DECL#payments-api", "STATUS")["clusters"][cluster_id("blue")]
    # the declaration opts in: adopted in place, not duplicated
    world.declare_in_payments("payments-api", "api", adopt=True)
    world.settle()
    (adopted,) = world.associations("blue").values()
    assert (adopted["associationId"], adopted["roleArn"]) == (handmade["associationId"], ROLE)
    status = world.record(cluster_pk("blue"), "ASSOC#payments#api")
    assert (status["state"], status["owned"]) == ("InSync", True)
    assert "blue" not in world.record("DECL#payments-api", "STATUS").get("clusters", {})


def test_own_eks_changes_and_failed_calls_are_ignored(world: World) -> None:
    world.given_payments_api("blue")
    (association,) = world.associations("blue").values()
    own = fixture_event(
        "eks_delete_pod_identity_association",
        CLUSTER="blue",
        ASSOCIATION_ID=association["associationId"],
        CALLER_ROLE="podid-webhook-push",
    )
    assert world.reconcile_event(own) == {"status": "ignored"}
    own["detail"]["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] = (
        f"arn:aws:iam::{ACCOUNT}:role/Admin"
    )
    own["detail"]["errorCode"] = "ResourceNotFoundException"
    assert world.reconcile_event(own) == {"status": "ignored"}


def test_a_second_pass_over_an_unchanged_world_writes_nothing(world: World) -> None:
    from benchmarks.call_counter import CallCounter
    from functions.aws import clients
    from tests.integration.conftest import REGION, TABLE

    for name in ("blue", "green", "red"):
        world.create_cluster(name, fleet="prod")
    world.create_role("payments-api")
    for i in range(15):
        world.declare(
            f"svc-{i}",
            namespace="apps",
            serviceAccount=f"svc-{i}",
            roleArn=ROLE,
            target={"fleet": "prod"},
        )
    world.reconcile_event(fixture_event("scheduled_event"))
    world.settle()
    assert len(world.associations("red")) == 15
    counter = CallCounter()
    for service in ("eks", "sqs", "resourcegroupstaggingapi"):
        counter.attach(clients.client(service, REGION))
    counter.attach(clients.table(TABLE, REGION).meta.client)
    # When the schedule runs again over the same world
    world.reconcile_event(fixture_event("scheduled_event"))
    world.run_reconcile_queue()
    calls = counter.reset()
    # Then the only writes are the schedule's own fan-out messages; EKS is only listed
    writes = CallCounter.writes(calls)
    assert writes == {"sqs:SendMessageBatch": 1}
    assert CallCounter.reads(calls, "eks") == {
        "eks:ListClusters": 1,
        "eks:ListPodIdentityAssociations": 3,
    }
    assert CallCounter.reads(calls, "resourcegroupstaggingapi") == {
        "resourcegroupstaggingapi:GetResources": 1
    }
    assert world.run_push() == 0


def cluster_arn(name: str) -> str:
    return f"arn:aws:eks:eu-west-1:{ACCOUNT}:cluster/{name}"


def test_fleet_tag_changes_whose_events_were_missed_are_healed_by_the_next_schedule(
    world: World,
) -> None:
    from benchmarks.call_counter import CallCounter
    from functions.aws import clients
    from tests.integration.conftest import REGION

    # Given blue, green and red in fleet prod, lab known but untagged, and a staging declaration
    world.given_payments_api("blue", "green", "red")
    world.enroll("lab", fleet=None)
    world.declare(
        "checkout-api",
        namespace="checkout",
        serviceAccount="api",
        roleArn=ROLE,
        target={"fleet": "staging"},
    )
    world.settle()
    assert world.record(cluster_pk("lab"), "CLUSTER")["enrolled"] is False
    # When the fleet tag is changed, removed and added, and no Tag/UntagResource event arrives
    eks = world.client("eks")
    eks.tag_resource(resourceArn=cluster_arn("green"), tags={"pod-identity/fleet": "staging"})
    eks.untag_resource(resourceArn=cluster_arn("red"), tagKeys=["pod-identity/fleet"])
    eks.tag_resource(resourceArn=cluster_arn("lab"), tags={"pod-identity/fleet": "prod"})
    counter = CallCounter()
    for service in ("eks", "resourcegroupstaggingapi"):
        counter.attach(clients.client(service, REGION))
    # the pass alone: the pushes it causes ask EKS where their clusters are, at push time
    world.reconcile_event(fixture_event("scheduled_event"), settle=False)
    calls = counter.reset()
    world.settle()
    # Then the ordinary schedule moves each cluster to its new fleet, or releases it
    assert list(world.associations("green")) == [("checkout", "api")]
    assert world.record(cluster_pk("green"), "CLUSTER")["fleet"] == "staging"
    assert world.associations("red") == {}
    assert world.record(cluster_pk("red"), "CLUSTER")["enrolled"] is False
    assert world.item(cluster_pk("red"), "ASSOC#payments#api") is None
    assert list(world.associations("lab")) == [("payments", "api")]
    assert world.record(cluster_pk("lab"), "CLUSTER")["enrolled"] is True
    assert list(world.associations("blue")) == [("payments", "api")]
    # and cheaply: one tag listing, DescribeCluster only for the three that changed
    assert calls["resourcegroupstaggingapi:GetResources"] == 1
    assert calls["eks:DescribeCluster"] == 3


def test_the_schedule_falls_back_to_describing_new_clusters_when_tags_cannot_be_listed(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    from functions.aws.tagging import TaggingAdapter
    from functions.observability import logger

    def denied(self: TaggingAdapter) -> NoReturn:
        raise ClientError(
            {"Error": {"Code": "AccessDeniedException", "Message": "not authorized"}},
            "GetResources",
        )

    warnings: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(TaggingAdapter, "cluster_tags", denied)
    monkeypatch.setattr(logger, "warning", lambda msg, **kw: warnings.append((msg, kw)))
    world.given_payments_api("blue")
    # When the Tagging API is denied and a new fleet cluster appears
    world.create_cluster("green", fleet="prod")
    response = world.reconcile_event(fixture_event("scheduled_event"))
    world.settle()
    # Then the pass still enrols it (as before the Tagging API was used) and says why it fell back
    assert response["clusters"] == [cluster_id("blue"), cluster_id("green")]
    assert list(world.associations("green")) == [("payments", "api")]
    assert any("AccessDeniedException" in str(kw) for _, kw in warnings), warnings


def test_a_release_that_fails_is_retried_by_the_next_schedule(world: World) -> None:
    from sandbox import eks_emulation

    world.given_payments_api("blue")
    world.client("eks").untag_resource(
        resourceArn=cluster_arn("blue"), tagKeys=["pod-identity/fleet"]
    )
    # When EKS refuses the deletes for the whole pass (every retry attempt)
    eks_emulation.FAULTS.inject(
        "DeletePodIdentityAssociation", "ServiceUnavailableException", status=503, times=10
    )
    world.reconcile_event(fixture_event("scheduled_event"), settle=False)
    assert list(world.associations("blue")) == [("payments", "api")]
    # Then the next pass, with EKS back, still releases it (the failure was not forgotten)
    eks_emulation.FAULTS.clear()
    world.reconcile_event(fixture_event("scheduled_event"))
    world.settle()
    assert world.associations("blue") == {}
    assert world.record(cluster_pk("blue"), "CLUSTER")["enrolled"] is False
    assert world.item(cluster_pk("blue"), "ASSOC#payments#api") is None
