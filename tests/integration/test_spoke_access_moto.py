"""The hub enters spoke accounts through moto's STS (issue 16, items 5 and 6):
moto keys its backends by account and region, and an AssumeRole into another
account's role acts as that account. Real botocore on both ends, real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from functions.aws import clients
from functions.aws.spokes import SpokeAccess
from functions.core.places import Place
from functions.settings import Settings
from sandbox.spokes import deploy_spoke
from sandbox.sts_gate import PRINCIPALS, Principal
from tests.integration.conftest import ACCOUNT, REGION

SPOKE_A = "210987654321"
SPOKE_B = "345678901234"
PLACES = [Place(SPOKE_A, REGION), Place(SPOKE_A, "us-east-1"), Place(SPOKE_B, REGION)]
CLUSTERS_PER_PLACE = 10


@pytest.fixture
def hub(moto_endpoint: str) -> Iterator[tuple[SpokeAccess, list[dict[str, Any]]]]:
    """A SpokeAccess over the hub's own STS client, and the AssumeRole requests sent."""
    # the spokes are deployed (the gate denies a role that does not exist), and the
    # environment's key signs as the reconcile function's role, which they trust
    for place in PLACES:
        deploy_spoke(
            moto_endpoint,
            place.account,
            place.region,
            hub_account=ACCOUNT,
            hub_stack_name="podid",
            function_role_names=["podid-test-reconcile"],
            external_id="podid-hub-external",
        )
    function_role = f"arn:aws:iam::{ACCOUNT}:role/podid-test-reconcile"
    PRINCIPALS.register("testing", Principal.session(function_role, "podid-test-reconcile"))
    sts = clients.sts(REGION)
    sent: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        sent.append(dict(params))

    sts.meta.events.register("before-parameter-build.sts.AssumeRole", record)
    settings = Settings(
        table_name="podid-test",
        aws_region=REGION,
        spoke_role_name="podid-spoke-{region}",
        spoke_external_id="podid-hub-external",
    )

    def home() -> Place:  # as build_services asks when ACCOUNT_ID is not set
        return Place(sts.get_caller_identity()["Account"], REGION)

    yield SpokeAccess(sts, settings, home=home, function_name="podid-test-reconcile"), sent
    sts.meta.events.unregister("before-parameter-build.sts.AssumeRole", record)
    PRINCIPALS.forget("testing")


def test_a_pass_over_three_places_makes_one_assume_role_each(
    hub: tuple[SpokeAccess, list[dict[str, Any]]],
) -> None:
    spokes, sent = hub
    # When a pass asks once per cluster: ten clusters in each of three places
    for place in PLACES:
        for _ in range(CLUSTERS_PER_PLACE):
            spokes.access(place)
    # Then STS was asked once per place, for that place's spoke role
    assert [call["RoleArn"] for call in sent] == [
        f"arn:aws:iam::{place.account}:role/podid-spoke-{place.region}" for place in PLACES
    ]
    assert {call["ExternalId"] for call in sent} == {"podid-hub-external"}
    assert spokes.assume_calls == dict.fromkeys(PLACES, 1)


def test_each_spokes_clients_act_in_that_account(
    hub: tuple[SpokeAccess, list[dict[str, Any]]],
) -> None:
    spokes, _ = hub
    home = Place(ACCOUNT, REGION)
    assert spokes.home == home
    for place in [home, *PLACES]:
        # the credentials each place gets sign as that account's spoke role
        caller = clients.sts(place.region, spokes.access(place)).get_caller_identity()
        assert caller["Account"] == place.account
        if place != home:
            assert caller["Arn"] == (
                f"arn:aws:sts::{place.account}:assumed-role/podid-spoke-{place.region}/"
                "podid-test-reconcile"
            )
    # and what a spoke's client writes lands in that account only
    iam_a = clients.iam(REGION, spokes.access(PLACES[0]))
    iam_a.create_role(RoleName="only-in-a", AssumeRolePolicyDocument="{}")
    assert iam_a.get_role(RoleName="only-in-a")["Role"]["Arn"].startswith(
        f"arn:aws:iam::{SPOKE_A}:role/"
    )
    for elsewhere in (clients.iam(REGION), clients.iam(REGION, spokes.access(PLACES[2]))):
        with pytest.raises(ClientError, match="NoSuchEntity"):
            elsewhere.get_role(RoleName="only-in-a")
