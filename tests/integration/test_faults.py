"""Faults mid-flight: throttling, 5xx, a crash between apply and record. After
each, the state converges and nothing is duplicated or lost."""

from typing import Any

import pytest

from functions.aws.eks import EksAdapter
from functions.core.models import (
    ActualAssociation,
    AssociationKey,
    AssociationSpec,
    AssociationStatus,
)
from functions.dal.repository import Repository
from sandbox.eks_emulation import FAULTS
from tests.integration.conftest import ACCOUNT, World, cluster_pk

ROLE = f"arn:aws:iam::{ACCOUNT}:role/payments-api"


def enrolled(world: World, *clusters: str) -> None:
    world.create_role("payments-api")
    world.enroll(*clusters)


def declare_many(world: World, count: int) -> None:
    for i in range(count):
        world.declare(
            f"svc-{i}",
            namespace="apps",
            serviceAccount=f"svc-{i}",
            roleArn=ROLE,
            target={"fleet": "prod"},
        )


def assert_converged(world: World, clusters: tuple[str, ...], count: int) -> None:
    for cluster in clusters:
        found = world.associations(cluster)
        assert sorted(found) == sorted(("apps", f"svc-{i}") for i in range(count))
        for i in range(count):
            status = world.record(cluster_pk(cluster), f"ASSOC#apps#svc-{i}")
            # the status's own reason and anything parked say why when it is not
            assert status["state"] == "InSync", (status, world.dead_letters())
            assert status["associationId"] == found[("apps", f"svc-{i}")]["associationId"]


def test_throttling_mid_batch_is_absorbed_by_client_retries(world: World) -> None:
    enrolled(world, "blue", "green")
    FAULTS.inject("CreatePodIdentityAssociation", "ThrottlingException", status=429, times=2)
    FAULTS.inject("ListPodIdentityAssociations", "ThrottlingException", status=429, times=1)
    declare_many(world, 4)
    world.settle()
    assert FAULTS.fired == {"CreatePodIdentityAssociation": 2, "ListPodIdentityAssociations": 1}
    assert_converged(world, ("blue", "green"), 4)


def test_persistent_5xx_fails_the_records_which_are_retried_until_they_converge(
    world: World,
) -> None:
    enrolled(world, "blue")
    FAULTS.inject("CreatePodIdentityAssociation", "ServerException", status=500, times=5)
    declare_many(world, 3)
    from functions.handlers import reconcile

    failed_deliveries: list[dict[str, Any]] = []

    def recording(event: dict[str, Any], context: Any) -> dict[str, Any]:
        try:
            response: dict[str, Any] = reconcile.handler(event, context)
        except Exception:  # every record failed: Lambda sees the whole batch fail
            failed_deliveries.extend(event["Records"])
            raise
        failed_deliveries.extend(response["batchItemFailures"])
        return response

    world.reconcile_handler = recording
    world.settle()
    assert FAULTS.fired["CreatePodIdentityAssociation"] == 5
    assert failed_deliveries  # the fault did surface and the message was redelivered
    assert_converged(world, ("blue",), 3)
    assert world.dead_letters() == []


def test_a_crash_between_apply_and_status_write_converges_without_duplicates(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    enrolled(world, "blue")
    original = Repository.save_association_status
    crashes = {"left": 1}

    def crash_once(self: Repository, status: AssociationStatus) -> AssociationStatus:
        # after EKS created the association, before podid recorded it
        if crashes["left"] and status.association_id:
            crashes["left"] -= 1
            raise RuntimeError("Lambda timed out after the EKS call")
        return original(self, status)

    monkeypatch.setattr(Repository, "save_association_status", crash_once)
    declare_many(world, 2)
    world.settle()
    assert crashes["left"] == 0
    assert_converged(world, ("blue",), 2)
    # and the association is podid's: proved by replaying its create token
    assert world.record(cluster_pk("blue"), "ASSOC#apps#svc-0")["owned"] is True
    world.undeclare("svc-0")
    world.settle()
    assert sorted(world.associations("blue")) == [("apps", "svc-1")]


def test_a_lost_create_response_is_the_same_call_when_retried(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:

    enrolled(world, "blue")
    original = EksAdapter.create_association
    lost = {"left": 1}

    def lose_response(
        self: EksAdapter, key: AssociationKey, spec: AssociationSpec, token: str
    ) -> ActualAssociation:
        created = original(self, key, spec, token)
        if lost["left"]:
            lost["left"] -= 1
            raise ConnectionError("connection reset after EKS created the association")
        return created

    monkeypatch.setattr(EksAdapter, "create_association", lose_response)
    declare_many(world, 1)
    world.settle()
    assert lost["left"] == 0
    assert_converged(world, ("blue",), 1)
    assert world.dead_letters() == []  # retried by the queue, not given up on


@pytest.mark.parametrize("times", [1, 3])
def test_kube_api_outage_is_retried_and_the_map_lands_once(world: World, times: int) -> None:
    enrolled(world, "blue")
    before = world.record(cluster_pk("blue"), "MAP")["generation"]  # the empty map at enrolment
    world.apis["blue"].inject(503, reason="ServiceUnavailable", times=times)
    declare_many(world, 2)
    world.settle()
    assert world.apis["blue"].faults_fired == times
    assert world.record(cluster_pk("blue"), "MAP")["generation"] == before + 1
    configmap = world.configmap("blue", "kube-system", "pod-identity-associations")
    assert "svc-1" in configmap["data"]["identities.json"]
