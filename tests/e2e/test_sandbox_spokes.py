"""The sandbox as the hub of an organization: a spoke in a member account and
another region joins by heartbeat, its cluster's events reach the hub only
once the spoke forwards them, and its map is pushed signed as the spoke role,
which the cluster's authenticator knows by its sessions' keys (no other's).

Runs in its own process, as test_demo does: the sandbox owns the environment."""

import json
import subprocess
import sys

import pytest

from functions.core.models import Declaration
from functions.core.places import Place
from sandbox.stack import POD_TRUST, ROLE_PATH, Sandbox

MAP = ("kube-system", "pod-identity-associations")
REGION = "us-west-2"


def scenario() -> None:
    from functions.flows.services import services
    from sandbox.accounts import admin_access
    from sandbox.session_keys import RoleSessionKeys

    with Sandbox(mode="enforce") as box:
        # Given a member account whose owner made a prod cluster and a role of the
        # declared name before any spoke was deployed there, and the hub's namesake
        place = Place(box.member_account("payments-prod"), REGION)
        box.add_cluster("amber", fleet="prod", place=place)
        (created,) = [e for e in box.events if e["detail"]["eventName"] == "CreateCluster"]
        assert Place(created["account"], created["region"]) == place, created
        theirs = box.client_in(place, "iam").create_role(
            RoleName="ledger-writer", Path=ROLE_PATH, AssumeRolePolicyDocument=json.dumps(POD_TRUST)
        )["Role"]["Arn"]
        box.add_cluster("blue", fleet="prod")
        ours = box.add_role("ledger-writer")
        services().repo.put_declaration(
            Declaration.model_validate(
                {
                    "id": "ledger-writer",
                    "namespace": "ledger",
                    "serviceAccount": "writer",
                    "roleName": "pod-identity/ledger-writer",
                    "target": {"fleet": "prod"},
                }
            )
        )
        box.pump()
        box.schedule()
        box.pump()
        # Then nothing of that account reached the hub: its bus forwards nothing yet
        assert [c.name for c in services().repo.list_clusters()] == ["blue"]
        assert services().repo.get_spoke(place) is None

        # When the spoke is deployed there (its heartbeat goes through the router)
        assert box.add_spoke("payments-prod", REGION) == place
        box.pump()

        # Then amber is enrolled and bound to its own account's role, checked there
        (amber,) = [c for c in services().repo.list_clusters() if c.name == "amber"]
        assert amber.enrolled
        assert amber.place == place
        assert ("reconcile", "Scheduled Event") in box.handled
        eks = box.client_in(place, "eks")
        (summary,) = eks.list_pod_identity_associations(clusterName="amber")["associations"]
        assert summary["namespace"] == "ledger"
        described = eks.describe_pod_identity_association(
            clusterName="amber", associationId=summary["associationId"]
        )["association"]
        assert described["roleArn"] == theirs != ours
        # and its map was pushed by a session of the spoke role, the only role it knows
        api = box.apis["amber"]
        configmap = api.configmap(*MAP)
        assert configmap is not None
        assert "data" in configmap, f"no map pushed to amber: {api.requests}"
        assert json.loads(configmap["data"]["identities.json"])["identities"] == [
            {"namespace": "ledger", "serviceAccount": "writer"}
        ]
        keys = api.authn.aws_credentials
        assert isinstance(keys, RoleSessionKeys)
        assert keys.role_arn == box.spoke_role_arn(place)
        session = admin_access(box.endpoint, place.account, operator=box.operator(), region=REGION)
        credentials = session.get_credentials()
        assert credentials is not None
        admin = credentials.access_key
        with pytest.raises(KeyError):
            keys[admin]  # a session of another role (the account's admin)
        blue = box.apis["blue"].authn.aws_credentials
        assert isinstance(blue, RoleSessionKeys)
        assert blue.role_arn == box.role_arn("webhook_push")

        # A heartbeat from a place with no spoke never reaches the hub's bus
        stray = Place(place.account, "eu-central-1")
        box.heartbeat(stray)  # a rule ticking where no spoke was deployed
        box.pump()
        assert services().repo.get_spoke(stray) is None


def test_a_spoke_joins_the_sandbox_hub_and_its_cluster_gets_the_map() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from tests.e2e.test_sandbox_spokes import scenario; scenario()"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
