"""A role per account and OU selectors through the handlers, against moto in
server mode: Organizations (ListParents) read by the adapter, the OU path
recorded by discovery, a roleName declaration applied in the hub's own
account, and the trust guard checking the role it resolves to."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from functions.aws.organizations import OrganizationsAdapter
from sandbox.stack import POD_TRUST
from tests.builders import EC2_ONLY
from tests.integration.conftest import ACCOUNT, REGION, World, cluster_pk, fixture_event

ROLE_NAME = "pod-identity/app-reader"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}"


@dataclass
class Org:
    root: str
    team: str  # under the root
    prod: str  # under team


def organization(client: Any) -> Org:
    """An organization whose management account is moto's (the hub's), with
    OUs root > team > prod."""
    client.create_organization(FeatureSet="ALL")
    root = client.list_roots()["Roots"][0]["Id"]
    team = client.create_organizational_unit(ParentId=root, Name="team")["OrganizationalUnit"]["Id"]
    prod = client.create_organizational_unit(ParentId=team, Name="prod")["OrganizationalUnit"]["Id"]
    return Org(root, team, prod)


class Calls:
    """ListParents calls the adapter's client makes (a botocore event hook)."""

    def __init__(self, client: Any) -> None:
        self.count = 0
        client.meta.events.register("before-call.organizations.ListParents", self._seen)

    def _seen(self, **_: Any) -> None:
        self.count += 1


@pytest.fixture
def orgs(world: World) -> Any:
    """Organizations in the world's moto (reset with it)."""
    return boto3.client("organizations", region_name=REGION)


def test_the_adapter_walks_up_to_the_root_and_caches_each_step_for_an_hour(orgs: Any) -> None:
    # Given the account in prod, under team, under the root
    org = organization(orgs)
    orgs.move_account(AccountId=ACCOUNT, SourceParentId=org.root, DestinationParentId=org.prod)
    other = orgs.create_account(AccountName="b", Email="b@example.com")["CreateAccountStatus"]
    orgs.move_account(
        AccountId=other["AccountId"], SourceParentId=org.root, DestinationParentId=org.team
    )
    now = [0.0]
    calls = Calls(orgs)
    adapter = OrganizationsAdapter(orgs, clock=lambda: now[0])
    # When the path is asked: nearest first, up to the root, one call per step
    assert adapter.ou_path(ACCOUNT) == (org.prod, org.team, org.root)
    assert calls.count == 3
    # Then a second account under team reuses team's step; asking again costs nothing
    assert adapter.ou_path(other["AccountId"]) == (org.team, org.root)
    assert calls.count == 4
    assert adapter.ou_path(ACCOUNT) == (org.prod, org.team, org.root)
    assert calls.count == 4
    # And a move is seen once the hour is over, not before
    orgs.move_account(AccountId=ACCOUNT, SourceParentId=org.prod, DestinationParentId=org.team)
    now[0] = 3599.0
    assert adapter.ou_path(ACCOUNT) == (org.prod, org.team, org.root)
    now[0] = 3601.0
    assert adapter.ou_path(ACCOUNT) == (org.team, org.root)


def test_without_an_organization_the_path_is_unknown_and_not_asked_again_soon(
    orgs: Any,
) -> None:
    now = [0.0]
    calls = Calls(orgs)
    adapter = OrganizationsAdapter(orgs, clock=lambda: now[0])
    assert adapter.ou_path(ACCOUNT) == ()
    assert calls.count == 1  # the call was made and failed (no organization)
    assert adapter.ou_path(ACCOUNT) == ()
    assert calls.count == 1
    now[0] = 3601.0
    organization(orgs)
    assert adapter.ou_path(ACCOUNT)[-1].startswith("r-")


def declare_reader(world: World, declaration_id: str, **target: Any) -> None:
    world.declare(
        declaration_id,
        namespace="payments",
        serviceAccount=declaration_id,
        roleName=ROLE_NAME,
        target={"fleet": "prod", **target},
    )


def test_a_role_name_declaration_narrowed_by_ou_applies_in_the_hubs_account(
    world: World, orgs: Any
) -> None:
    # Given the hub's account in OU prod (under team), a prod cluster, the role by path
    org = organization(orgs)
    orgs.move_account(AccountId=ACCOUNT, SourceParentId=org.root, DestinationParentId=org.prod)
    world.client("iam").create_role(
        RoleName="app-reader", Path="/pod-identity/", AssumeRolePolicyDocument=json.dumps(POD_TRUST)
    )
    world.enroll("blue")
    # Then discovery recorded the account's OU path on the cluster
    recorded = world.record(cluster_pk("blue"), "CLUSTER")
    assert recorded["organizationalUnits"] == [org.prod, org.team, org.root]
    # When one declaration selects the team OU (an ancestor) and another an unrelated OU
    elsewhere = orgs.create_organizational_unit(ParentId=org.root, Name="lab")
    declare_reader(world, "reader", organizationalUnits=[org.team], accounts=[ACCOUNT])
    declare_reader(world, "lab", organizationalUnits=[elsewhere["OrganizationalUnit"]["Id"]])
    world.settle()
    # Then the first gets the role of that name in the cluster's account
    associations = world.associations("blue")
    assert set(associations) == {("payments", "reader")}
    assert associations[("payments", "reader")]["roleArn"] == ROLE
    assert world.record(cluster_pk("blue"), "ASSOC#payments#reader")["state"] == "InSync"
    assert world.record("DECL#reader", "STATUS")["state"] == "Accepted"
    assert world.record("DECL#lab", "STATUS")["warnings"] == []


def test_an_unknown_ou_path_is_said_in_the_declaration_status(world: World) -> None:
    # Given no organization: the hub cannot read any OU path
    world.client("iam").create_role(
        RoleName="app-reader", Path="/pod-identity/", AssumeRolePolicyDocument=json.dumps(POD_TRUST)
    )
    world.enroll("blue")
    assert world.record(cluster_pk("blue"), "CLUSTER").get("organizationalUnits", []) == []
    # When a declaration is narrowed by OU
    declare_reader(world, "reader", organizationalUnits=["ou-ab12-cd34ef56"])
    world.settle()
    # Then nothing is applied, and the status says why
    assert world.associations("blue") == {}
    (warning,) = world.record("DECL#reader", "STATUS")["warnings"]
    assert warning.startswith(f"cluster {ACCOUNT}/{REGION}/blue is not a target: the OU of its")
    assert "organizations:ListParents" in warning


def test_the_trust_guard_checks_the_role_a_role_name_resolves_to(world: World) -> None:
    # Given a roleName declaration applied on a prod cluster of the hub's account
    world.client("iam").create_role(
        RoleName="app-reader", Path="/pod-identity/", AssumeRolePolicyDocument=json.dumps(POD_TRUST)
    )
    world.enroll("blue")
    declare_reader(world, "reader")
    world.settle()
    assert world.associations("blue")[("payments", "reader")]["roleArn"] == ROLE
    # When its trust policy is broken by hand and IAM says so
    world.client("iam").update_assume_role_policy(
        RoleName="app-reader", PolicyDocument=json.dumps(EC2_ONLY)
    )
    outcome = world.guard_event(
        fixture_event("iam_update_assume_role_policy", ROLE_NAME="app-reader", CALLER_ROLE="Admin")
    )
    # Then the check is of the resolved role (by its path), for the declared usage
    assert (outcome["status"], outcome["role"]) == ("checked", ROLE)
    assert outcome["findings"]
    latest = world.record(f"ROLE#{ROLE}", "FINDING#LATEST")
    (missing,) = [f for f in latest["findings"] if "pods.eks.amazonaws.com" in f["message"]]
    # repairable only because the usage on blue was found (the declaration relies on it)
    assert missing["repairable"] is True
