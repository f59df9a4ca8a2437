"""A declaration with a target role (targetRoleArn): reconcile creates the
association, EKS gives it an externalId, and the trust guard checks the target
role's trust against it (PI070 / PI071) — reporting, never editing. The
emulated EKS Auth (which decides the chained AssumeRole with the sandbox's own
IAM evaluator, not podid's analysis) is the oracle for what pods really get."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from sandbox.cluster_identity import REGISTRY
from sandbox.shapes import target_trust
from tests.builders import OPT_IN
from tests.integration.conftest import ACCOUNT, REGION, World, fixture_event

ASSOCIATION_ROLE = f"arn:aws:iam::{ACCOUNT}:role/payments-api"
TARGET_NAME = "data-reader"
TARGET = f"arn:aws:iam::{ACCOUNT}:role/{TARGET_NAME}"


def trust_for_association(external_id: str | None) -> dict[str, Any]:
    return target_trust(ASSOCIATION_ROLE, external_id)


def sweep(world: World, run: int) -> None:
    event = fixture_event("scheduled_event")
    event["id"] = f"{event['id'][:-4]}{run:04d}"
    world.guard_event(event)


def target_codes(world: World) -> list[str]:
    latest = world.item(f"ROLE#{TARGET}", "FINDING#LATEST")
    assert latest is not None, "the target role was never checked"
    return sorted(f["code"] for f in latest["findings"])


def pods_get_credentials(world: World, cluster_arn: str) -> bool:
    """Ask the (emulated) EKS Auth as a pod of payments/api would."""
    token = REGISTRY.for_cluster(cluster_arn).issue("payments", "api")
    try:
        boto3.client("eks-auth", region_name=REGION).assume_role_for_pod_identity(
            clusterName="blue", token=token
        )
    except ClientError as error:
        if error.response["Error"]["Code"] != "AccessDeniedException":
            raise
        return False
    return True


@pytest.fixture
def chained(world: World) -> dict[str, Any]:
    # Given enforce mode, an opted-in target role that trusts the association role
    # with no externalId condition, and payments/api declared with it
    world.configure(mode="enforce")
    world.create_role(TARGET_NAME, trust=trust_for_association(None), tags=OPT_IN)
    world.given_payments_api("blue")
    world.declare_in_payments("payments-api", "api", targetRoleArn=TARGET)
    world.settle()
    ((_, association),) = world.associations("blue").items()
    assert association["targetRoleArn"] == TARGET
    cluster_arn = world.client("eks").describe_cluster(name="blue")["cluster"]["arn"]
    return {"external_id": association["externalId"], "cluster_arn": cluster_arn}


def test_a_target_role_without_the_external_id_condition_is_reported_never_edited(
    world: World, chained: dict[str, Any]
) -> None:
    sweep(world, 1)
    assert target_codes(world) == ["PI071"]
    (finding,) = world.record(f"ROLE#{TARGET}", "FINDING#LATEST")["findings"]
    assert chained["external_id"] in finding["message"]
    # the owner's trust is untouched, even in enforce mode with the opt-in tag
    assert world.trust_policy(TARGET_NAME) == trust_for_association(None)
    # and it does work for the pods (which is the danger: so would anyone else's)
    assert pods_get_credentials(world, chained["cluster_arn"])


def test_the_owner_adding_the_external_id_clears_the_finding(
    world: World, chained: dict[str, Any]
) -> None:
    sweep(world, 1)
    world.client("iam").update_assume_role_policy(
        RoleName=TARGET_NAME,
        PolicyDocument=json.dumps(trust_for_association(chained["external_id"])),
    )
    world.guard_event(
        fixture_event("iam_update_assume_role_policy", ROLE_NAME=TARGET_NAME, CALLER_ROLE="Admin")
    )
    assert target_codes(world) == []
    assert pods_get_credentials(world, chained["cluster_arn"])


def test_another_external_id_is_reported_as_pods_getting_nothing(
    world: World, chained: dict[str, Any]
) -> None:
    world.client("iam").update_assume_role_policy(
        RoleName=TARGET_NAME,
        PolicyDocument=json.dumps(trust_for_association("some-other-association")),
    )
    world.guard_event(
        fixture_event("iam_update_assume_role_policy", ROLE_NAME=TARGET_NAME, CALLER_ROLE="Admin")
    )
    assert target_codes(world) == ["PI070"]
    assert not pods_get_credentials(world, chained["cluster_arn"])
    assert world.trust_policy(TARGET_NAME) == trust_for_association("some-other-association")


def test_a_target_role_in_another_account_is_not_read_here(world: World) -> None:
    # Given a target role in a central account, and a namesake role in this one
    central = "arn:aws:iam::444455556666:role/data-reader"
    world.configure(target_role_accounts="444455556666")
    world.create_role(TARGET_NAME, trust=trust_for_association(None))
    world.given_payments_api("blue")
    world.declare_in_payments("payments-api", "api", targetRoleArn=central)
    world.settle()
    sweep(world, 1)
    # Then the central role is reported as not checked, and the namesake never read for it
    latest = world.item(f"ROLE#{central}", "FINDING#LATEST")
    assert latest is not None
    assert [f["code"] for f in latest["findings"]] == ["PI072"]
    assert world.item(f"ROLE#{TARGET}", "FINDING#LATEST") is None


def test_a_target_role_declared_under_another_path_is_never_given_pod_trust(world: World) -> None:
    # Given enforce mode and an opted-in role data-reader whose real path is /teams/,
    # declared as a target role without that path
    world.configure(mode="enforce")
    trust = trust_for_association(None)
    world.client("iam").create_role(
        RoleName=TARGET_NAME,
        Path="/teams/",
        AssumeRolePolicyDocument=json.dumps(trust),
        Tags=[{"Key": k, "Value": v} for k, v in OPT_IN.items()],
    )
    world.given_payments_api("blue")
    world.declare_in_payments("payments-api", "api", targetRoleArn=TARGET)
    world.settle()
    sweep(world, 1)
    # Then the target role is judged as a target role only: nothing is written to it,
    # and no pod principal is asked of it
    assert world.trust_policy(TARGET_NAME) == trust
    checked = world.record(
        f"ROLE#arn:aws:iam::{ACCOUNT}:role/teams/{TARGET_NAME}", "FINDING#LATEST"
    )
    assert checked["action"] == "reported"
    assert "PI010" not in {f["code"] for f in checked["findings"]}
