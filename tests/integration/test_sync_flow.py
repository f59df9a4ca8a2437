"""Declarations written to the table reach every target cluster (stream -> sync)."""

import json
from typing import Any

from tests.integration.conftest import ACCOUNT, World, cluster_id, cluster_pk

ROLE = f"arn:aws:iam::{ACCOUNT}:role/payments-api"


def declare_payments(world: World, **overrides: Any) -> dict[str, Any]:
    fields = {
        "namespace": "payments",
        "serviceAccount": "api",
        "roleArn": ROLE,
        "target": {"fleet": "prod"},
        **overrides,
    }
    return world.declare("payments-api", **fields)


def test_fleet_declaration_creates_associations_on_every_fleet_cluster_and_pushes_maps(
    world: World,
) -> None:
    # Given two prod clusters and one dev cluster
    for name in ("blue", "green"):
        world.create_cluster(name, fleet="prod")
    world.create_cluster("dev", fleet="dev")
    world.create_role("payments-api")
    world.reconcile_event(
        {
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "version": "0",
            "id": "1",
            "account": ACCOUNT,
            "time": "2026-11-25T00:00:00Z",
            "region": "eu-west-1",
            "resources": [],
            "detail": {},
        }
    )
    world.settle()
    # When a fleet-wide declaration is written straight into the table
    declare_payments(world, tags={"team": "payments"})
    world.settle()
    # Then each prod cluster has exactly that association, owned by the control plane
    for name in ("blue", "green"):
        (association,) = world.associations(name).values()
        assert association["roleArn"] == ROLE
        assert association["tags"] == {
            "team": "payments",
            "pod-identity/managed-by": "podid",
            "pod-identity/declaration": "payments-api",
        }
        status = world.record(cluster_pk(name), "ASSOC#payments#api")
        assert status["state"] == "InSync"
        assert status["associationId"] == association["associationId"]
        configmap = world.configmap(name, "kube-system", "pod-identity-associations")
        assert json.loads(configmap["data"]["identities.json"]) == {
            "identities": [{"namespace": "payments", "serviceAccount": "api"}]
        }
    assert world.associations("dev") == {}
    assert world.record("DECL#payments-api", "STATUS")["state"] == "Accepted"


def enroll(world: World, *clusters: str) -> None:
    world.enroll(*clusters)


def schedule() -> dict[str, Any]:
    from tests.integration.conftest import fixture_event

    return fixture_event("scheduled_event")


def test_invalid_record_gets_an_exact_reason_is_not_retried_and_fixing_it_clears_it(
    world: World,
) -> None:
    enroll(world, "blue")
    # Given a record with a bad role ARN written by hand
    declare_payments(world, roleArn="arn:aws:iam::123:role/payments-api")
    # When the stream delivers it
    from functions.handlers import sync

    responses: list[dict[str, Any]] = []

    def deliver(event: dict[str, Any], context: Any) -> dict[str, Any]:
        responses.append(sync.handler(event, context))
        return responses[-1]

    assert world.stream is not None
    world.stream.drain(deliver)
    # Then it is not reported as failed (so never retried) and gets Invalid naming field, value and rule
    assert responses
    assert all(r["batchItemFailures"] == [] for r in responses)
    status = world.record("DECL#payments-api", "STATUS")
    assert status["state"] == "Invalid"
    assert status["errors"] == [
        "roleArn: 'arn:aws:iam::123:role/payments-api' is not an IAM role ARN (expected "
        "arn:<partition>:iam::<12-digit account>:role/[<path>/]<name>)"
    ]
    assert world.associations("blue") == {}
    # When the record is fixed
    world.create_role("payments-api")
    declare_payments(world)
    world.settle()
    # Then the status clears and the association exists
    status = world.record("DECL#payments-api", "STATUS")
    assert (status["state"], status.get("errors", [])) == ("Accepted", [])
    assert list(world.associations("blue")) == [("payments", "api")]


def test_a_live_declaration_turned_invalid_keeps_its_association(world: World) -> None:
    enroll(world, "blue")
    world.create_role("payments-api")
    declare_payments(world)
    world.settle()
    (before,) = world.associations("blue").values()
    # When someone breaks the record (a typo in the namespace)
    declare_payments(world, namespace="Payments_")
    world.settle()
    # Then the association (the pods' credentials) stays exactly as it was
    (after,) = world.associations("blue").values()
    assert after["associationId"] == before["associationId"]
    assert world.record("DECL#payments-api", "STATUS")["state"] == "Invalid"


def test_conflicting_declarations_apply_neither_and_say_why_on_both(world: World) -> None:
    enroll(world, "blue")
    world.create_role("payments-api")
    world.create_role("other")
    declare_payments(world)
    world.declare(
        "intruder",
        namespace="payments",
        serviceAccount="api",
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/other",
        target={"clusters": ["blue"]},
    )
    world.declare_in_payments("worker", "worker")
    world.settle()
    # the unrelated declaration proceeds, the conflicting key gets nothing
    assert list(world.associations("blue")) == [("payments", "worker")]
    status = world.record(cluster_pk("blue"), "ASSOC#payments#api")
    assert status["state"] == "Conflict"
    assert "'intruder' asks" in status["reason"]
    assert "'payments-api' asks" in status["reason"]
    for declaration_id in ("payments-api", "intruder"):
        warnings = world.record(f"DECL#{declaration_id}", "STATUS")["warnings"]
        assert any(f"conflict on {cluster_id('blue')}/payments/api" in w for w in warnings)


def test_role_change_updates_in_place_and_removal_deletes_and_empties_the_map(world: World) -> None:
    enroll(world, "blue")
    world.create_role("payments-api")
    world.create_role("payments-api-v2")
    declare_payments(world)
    world.settle()
    (first,) = world.associations("blue").values()
    # When the role changes
    declare_payments(world, roleArn=f"arn:aws:iam::{ACCOUNT}:role/payments-api-v2")
    world.settle()
    (second,) = world.associations("blue").values()
    assert second["associationId"] == first["associationId"]
    assert second["roleArn"].endswith("/payments-api-v2")
    status = world.record(cluster_pk("blue"), "ASSOC#payments#api")
    assert (
        status["effectiveAt"] > status["lastSyncedAt"]
    )  # running pods: after their credentials expire
    # When the declaration is removed
    world.undeclare("payments-api")
    world.settle()
    assert world.associations("blue") == {}
    assert world.item(cluster_pk("blue"), "ASSOC#payments#api") is None
    assert world.item("DECL#payments-api", "STATUS") is None
    configmap = world.configmap("blue", "kube-system", "pod-identity-associations")
    assert json.loads(configmap["data"]["identities.json"]) == {"identities": []}


def test_naming_a_cluster_does_not_enrol_it_unless_the_deployment_allows(world: World) -> None:
    world.create_cluster("lab", fleet=None)
    world.create_role("payments-api")
    declare_payments(world, target={"clusters": ["lab"]})
    world.settle()
    assert world.associations("lab") == {}
    assert world.item(cluster_pk("lab"), "CLUSTER") is None
    (warning,) = world.record("DECL#payments-api", "STATUS")["warnings"]
    assert "does not enrol clusters because a declaration names them" in warning
    assert "podid cluster enroll lab" in warning


def test_naming_an_existing_cluster_enrolls_it_and_an_unknown_one_is_reported(world: World) -> None:
    world.configure(enroll_named_clusters="true")
    world.create_cluster("lab", fleet=None)
    world.create_role("payments-api")
    declare_payments(world, target={"clusters": ["lab", "ghost"]})
    world.settle()
    assert list(world.associations("lab")) == [("payments", "api")]
    assert world.record(cluster_pk("lab"), "CLUSTER")["enrolledBy"] == "declaration"
    (warning,) = world.record("DECL#payments-api", "STATUS")["warnings"]
    assert "cluster 'ghost' is not enrolled" in warning


def test_deleting_an_invalid_record_releases_what_it_held(world: World) -> None:
    enroll(world, "blue")
    world.create_role("payments-api")
    declare_payments(world)
    world.settle()
    declare_payments(world, namespace="Payments_")  # broken: the association is held
    world.settle()
    assert list(world.associations("blue")) == [("payments", "api")]
    world.undeclare("payments-api")
    world.settle()
    assert world.associations("blue") == {}
    assert world.item(cluster_pk("blue"), "ASSOC#payments#api") is None


def test_a_conflict_begun_or_ended_by_one_side_restates_the_other(world: World) -> None:
    enroll(world, "blue")
    world.create_role("payments-api")
    world.create_role("other")
    declare_payments(world)
    world.settle()
    assert world.record("DECL#payments-api", "STATUS")["state"] == "Accepted"
    # When a later declaration asks another role for the same key
    world.declare(
        "intruder",
        namespace="payments",
        serviceAccount="api",
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/other",
        target={"clusters": ["blue"]},
    )
    world.settle()
    # Then both sides are in Conflict, not only the one that changed
    for declaration_id in ("payments-api", "intruder"):
        assert world.record(f"DECL#{declaration_id}", "STATUS")["state"] == "Conflict"
    # And when it is withdrawn, the other side is Accepted again
    world.undeclare("intruder")
    world.settle()
    accepted = world.record("DECL#payments-api", "STATUS")
    assert (accepted["state"], accepted.get("warnings", [])) == ("Accepted", [])
    assert list(world.associations("blue")) == [("payments", "api")]
