"""One hub, an organization of three accounts in two regions (issue 16).

The hub's functions run in the hub account (eu-west-1). Spokes are deployed as
the spoke stack would (sandbox.spokes: the role the hub assumes, its trust
decided by the sandbox's STS gate) in the hub account's us-east-1 and in two
member accounts. Each place has a cluster of the fleet; the spokes announce
themselves by heartbeat, and a declaration naming a role per account reaches
every cluster. A spoke removed mid-run is reported on each of its clusters and
nothing is deleted; deployed again, it rejoins."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from functions.core.models import FLEET_TAG
from functions.core.places import Place
from functions.event_patterns import heartbeat_rule_name
from sandbox.accounts import admin_access
from sandbox.shapes import described_associations
from sandbox.spokes import deploy_spoke, remove_spoke
from sandbox.stack import POD_TRUST
from sandbox.sts_gate import PRINCIPALS, Principal
from tests.builders import EC2_ONLY
from tests.integration.conftest import (
    ACCOUNT,
    REGION,
    World,
    cluster_id,
    cluster_pk,
    fixture_event,
)

HUB_STACK = "podid-test"
FUNCTION_ROLES = tuple(f"{HUB_STACK}-{name}" for name in ("sync", "reconcile", "trust-guard"))
EXTERNAL_ID = "podid-hub-7Qx2"
OTHER_REGION = "us-east-1"


@dataclass
class Fleet:
    world: World
    operator: boto3.session.Session
    members: tuple[str, str]
    organization_id: str
    spokes: list[Place] = field(default_factory=list)
    clusters: dict[Place, str] = field(default_factory=dict)

    @property
    def places(self) -> list[Place]:
        return [Place(ACCOUNT, REGION), *self.spokes]

    def admin(self, place: Place) -> boto3.session.Session:
        return admin_access(
            self.world.endpoint, place.account, operator=self.operator, region=place.region
        )

    def eks(self, place: Place) -> Any:
        return self.admin(place).client(
            "eks", endpoint_url=self.world.endpoint, region_name=place.region
        )

    def deploy(self, place: Place, mode: str = "audit") -> None:
        deploy_spoke(
            self.world.endpoint,
            place.account,
            place.region,
            hub_account=ACCOUNT,
            hub_stack_name=HUB_STACK,
            function_role_names=FUNCTION_ROLES,
            external_id=EXTERNAL_ID,
            organization_id=self.organization_id,
            role_path="/",
            operator=self.operator,
            mode=mode,
        )

    def heartbeat(self, place: Place) -> Any:
        event = fixture_event(
            "spoke_heartbeat",
            ACCOUNT=place.account,
            REGION=place.region,
            RULE_NAME=heartbeat_rule_name(HUB_STACK),
            EVENT_ID=str(uuid.uuid4()),
        )
        return self.world.reconcile_event(event)

    def associations(self, place: Place) -> dict[tuple[str, str], dict[str, Any]]:
        return described_associations(self.eks(place), self.clusters[place])

    def status(self, place: Place) -> dict[str, Any]:
        name = self.clusters[place]
        return self.world.record(
            cluster_pk(name, place.account, place.region), "ASSOC#payments#api"
        )


def assume_role_calls() -> dict[Place, int]:
    from functions.flows.services import services

    spokes = services().spokes
    assert spokes is not None
    return dict(spokes.assume_calls)


@pytest.fixture
def fleet(world: World) -> Iterator[Fleet]:
    # the functions sign as the hub's reconcile role (which the spokes trust)
    PRINCIPALS.register(
        "testing",
        Principal.session(f"arn:aws:iam::{ACCOUNT}:role/{HUB_STACK}-reconcile", "podid"),
    )
    operator = boto3.session.Session(region_name=REGION)
    organizations = operator.client("organizations", endpoint_url=world.endpoint)
    organization = organizations.create_organization(FeatureSet="ALL")["Organization"]
    members = tuple(
        organizations.create_account(AccountName=name, Email=f"{name}@example.com")[
            "CreateAccountStatus"
        ]["AccountId"]
        for name in ("payments-prod", "data-prod")
    )
    built = Fleet(world, operator, (members[0], members[1]), organization_id=organization["Id"])
    built.spokes = [
        Place(ACCOUNT, OTHER_REGION),
        Place(members[0], REGION),
        Place(members[0], OTHER_REGION),
        Place(members[1], OTHER_REGION),
    ]
    world.configure(
        ACCOUNT_ID=ACCOUNT,
        SPOKE_ROLE_NAME=f"{HUB_STACK}-spoke-{{region}}",
        SPOKE_EXTERNAL_ID=EXTERNAL_ID,
        ORGANIZATION_ID=organization["Id"],
        SPOKE_HEARTBEAT_RULE=heartbeat_rule_name(HUB_STACK),
        # the sandbox maps no spoke role into a cluster's API: maps are not pushed here
        PUSH_QUEUE_URL="",
    )
    for index, place in enumerate(built.places):
        name = f"prod-{index}"
        built.clusters[place] = name
        if place == Place(ACCOUNT, REGION):
            world.create_cluster(name)
        else:
            built.eks(place).create_cluster(
                name=name,
                roleArn=f"arn:aws:iam::{place.account}:role/eks",
                resourcesVpcConfig={"subnetIds": ["subnet-1"]},
                tags={FLEET_TAG: "prod"},
            )
    for account in {p.account for p in built.places}:
        built.admin(Place(account, REGION)).client("iam", endpoint_url=world.endpoint).create_role(
            RoleName="payments-api", AssumeRolePolicyDocument=json.dumps(POD_TRUST)
        )
    yield built
    PRINCIPALS.forget("testing")
    world.restore_environment()


def join_and_declare(fleet: Fleet) -> None:
    world = fleet.world
    world.reconcile_event(fixture_event("scheduled_event"))  # the hub's own place
    for place in fleet.spokes:
        fleet.deploy(place)
        response = fleet.heartbeat(place)
        assert response["status"] == "heartbeat", response
        assert response["enrolled"] == [cluster_id(fleet.clusters[place], *place)]
    world.declare(
        "payments-api",
        namespace="payments",
        serviceAccount="api",
        roleName="payments-api",
        target={"fleet": "prod"},
    )
    world.settle()


def test_spokes_join_by_heartbeat_and_each_account_gets_its_own_role(fleet: Fleet) -> None:
    # Given an organization of three accounts in two regions, with a spoke in each
    # place but the hub's own, when the spokes announce themselves and a declaration
    # names a role per account
    join_and_declare(fleet)

    # Then each cluster, in every account and region, has the association, bound to
    # the role of that name in the cluster's own account
    for place in fleet.places:
        association = fleet.associations(place)[("payments", "api")]
        assert association["roleArn"] == f"arn:aws:iam::{place.account}:role/payments-api"
        assert association["tags"]["pod-identity/managed-by"] == "podid"
        status = fleet.status(place)
        assert status["state"] == "InSync", (place, status)
        assert status["key"]["cluster"] == cluster_id(fleet.clusters[place], *place)
    # and one AssumeRole per spoke place served every call made there
    assert assume_role_calls() == dict.fromkeys(fleet.spokes, 1)
    assert fleet.world.dead_letters() == []


def test_a_spoke_removed_mid_run_is_reported_per_cluster_and_nothing_is_deleted(
    fleet: Fleet,
) -> None:
    join_and_declare(fleet)
    gone = Place(fleet.members[0], REGION)
    association = fleet.associations(gone)[("payments", "api")]

    # When the spoke stack is removed from one place and the next pass runs (a new
    # Lambda container: no credentials cached from before)
    remove_spoke(
        fleet.world.endpoint,
        gone.account,
        gone.region,
        hub_stack_name=HUB_STACK,
        operator=fleet.operator,
    )
    fleet.world.configure()  # services built afresh, as in a new container
    fleet.world.reconcile_event(fixture_event("scheduled_event"))

    # Then that place's cluster is reported, its association untouched and recorded
    status = fleet.status(gone)
    assert status["state"] == "Error"
    assert f"cannot reach account {gone.account} region {gone.region}" in status["reason"]
    assert status["associationId"] == association["associationId"]
    assert status["owned"] is True
    spoke = fleet.world.record(f"SPOKE#{gone.account}#{gone.region}", "SPOKE")
    assert spoke["state"] == "Unreachable"
    assert "AccessDenied" in spoke["reason"]
    assert fleet.world.item(cluster_pk(fleet.clusters[gone], *gone), "CLUSTER") is not None
    assert (
        fleet.associations(gone)[("payments", "api")]["associationId"]
        == (association["associationId"])
    )
    # while every other place carries on
    for place in fleet.places:
        if place != gone:
            assert fleet.status(place)["state"] == "InSync", place
    assert fleet.world.dead_letters() == []

    # When the spoke is deployed again and announces itself, it rejoins
    fleet.deploy(gone)
    fleet.heartbeat(gone)
    fleet.world.settle()
    assert fleet.status(gone)["state"] == "InSync"
    assert fleet.world.record(f"SPOKE#{gone.account}#{gone.region}", "SPOKE")["state"] == ("Joined")


def test_a_scheduled_event_from_another_account_that_is_no_heartbeat_is_parked(
    fleet: Fleet,
) -> None:
    other = Place(fleet.members[1], OTHER_REGION)
    event = fixture_event("scheduled_event", ACCOUNT=other.account, REGION=other.region)
    assert fleet.world.reconcile_event(event)["status"] == "parked"
    assert fleet.world.item(f"SPOKE#{other.account}#{other.region}", "SPOKE") is None


def test_the_trust_guard_repairs_a_spoke_accounts_role_through_its_spoke_and_ignores_it(
    fleet: Fleet,
) -> None:
    # Given the fleet in enforce mode (spokes allowed to repair), the role in a
    # member account opted in to repair
    fleet.world.configure(MODE="enforce")
    member = Place(fleet.members[1], OTHER_REGION)
    join_and_declare(fleet)
    for place in fleet.spokes:
        fleet.deploy(place, mode="enforce")  # the spokes redeployed to allow repairs
    iam = fleet.admin(member).client("iam", endpoint_url=fleet.world.endpoint)
    iam.tag_role(
        RoleName="payments-api", Tags=[{"Key": "pod-identity/managed-trust", "Value": "true"}]
    )
    # When someone there removes the pod principal from its trust policy
    iam.update_assume_role_policy(RoleName="payments-api", PolicyDocument=json.dumps(EC2_ONLY))
    event = fixture_event(
        "iam_update_assume_role_policy",
        ACCOUNT=member.account,
        ROLE_NAME="payments-api",
        CALLER_ROLE="platform-admin",
    )
    response = fleet.world.guard_event(event)

    # Then the guard read and repaired that account's role (not the hub's namesake)
    role_arn = f"arn:aws:iam::{member.account}:role/payments-api"
    assert response["action"] == "repaired", response
    document = iam.get_role(RoleName="payments-api")["Role"]["AssumeRolePolicyDocument"]
    policy: dict[str, Any] = json.loads(
        document if isinstance(document, str) else json.dumps(document)
    )
    pods = [
        s
        for s in policy["Statement"]
        if s.get("Principal") == {"Service": "pods.eks.amazonaws.com"}
    ]
    assert pods, policy
    assert pods[0]["Condition"]["StringEquals"]["aws:SourceAccount"] == member.account
    assert fleet.world.record(f"ROLE#{role_arn}", "FINDING#LATEST")["action"] == "repaired"
    hub_role = fleet.world.client("iam").get_role(RoleName="payments-api")["Role"]
    hub_policy = hub_role["AssumeRolePolicyDocument"]
    assert "ec2.amazonaws.com" not in json.dumps(hub_policy)  # the namesake at home untouched
    # and CloudTrail's report of that repair, made as the spoke role, is the guard's own
    own = fixture_event(
        "iam_update_assume_role_policy",
        ACCOUNT=member.account,
        ROLE_NAME="payments-api",
        CALLER_ROLE=f"{HUB_STACK}-spoke-{OTHER_REGION}",
    )
    assert fleet.world.guard_event(own) == {"status": "ignored"}
