"""sts:AssumeRole decided for real in the sandbox (sandbox.sts_gate), and spokes
deployed and removed there (sandbox.spokes): the hub's function roles reach a
spoke role only through its trust (external id, organization), a removed or
missing spoke is denied, and the credentials act in the spoke's account."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from sandbox import sts_gate
from sandbox.accounts import ADMIN_ROLE, admin_access
from sandbox.spokes import deploy_spoke, remove_spoke
from sandbox.sts_gate import PRINCIPALS, Principal
from tests.integration.conftest import ACCOUNT as HUB
from tests.integration.conftest import REGION

OTHER_REGION = "us-west-2"
HUB_STACK = "podid-hub"
FUNCTIONS = ("sync", "trust-guard", "reconcile", "webhook-push")
FUNCTION_ROLES = tuple(f"{HUB_STACK}-{f}" for f in FUNCTIONS)
EXTERNAL_ID = "hub-secret-7Qx2"
OUTSIDER = "999988887777"  # an account in no organization
LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def spoke_role(account: str, region: str = REGION) -> str:
    return f"arn:aws:iam::{account}:role/{HUB_STACK}-spoke-{region}"


def denial(caller: str, role: str) -> str:
    return f"User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role}"


@dataclass
class Org:
    endpoint: str
    operator: boto3.session.Session
    organization_id: str
    spokes: tuple[str, str]  # two member accounts

    def function(self, name: str, account: str = HUB) -> Any:
        """STS signed as a session of the hub function role `name` (the Lambda
        runtime's credentials: a key the gate knows as that role's session)."""
        role = f"arn:aws:iam::{account}:role/{HUB_STACK}-{name}"
        key = f"lambda-{account}-{name}"
        PRINCIPALS.register(key, Principal.session(role, f"{HUB_STACK}-{name}"))
        return boto3.client(
            "sts",
            region_name=REGION,
            endpoint_url=self.endpoint,
            aws_access_key_id=key,
            aws_secret_access_key=key,
        )

    def deploy(self, account: str, region: str = REGION, **options: Any) -> str:
        inputs: dict[str, Any] = {
            "hub_account": HUB,
            "hub_stack_name": HUB_STACK,
            "function_role_names": FUNCTION_ROLES,
            "external_id": EXTERNAL_ID,
            "organization_id": self.organization_id,
            "operator": self.operator,
        }
        return deploy_spoke(self.endpoint, account, region, **(inputs | options))

    def admin(self, account: str, region: str = REGION) -> boto3.session.Session:
        return admin_access(self.endpoint, account, operator=self.operator, region=region)


def expect_error(call: Any, code: str, status: int) -> str:
    with pytest.raises(ClientError) as raised:
        call()
    error: dict[str, Any] = dict(raised.value.response["Error"])
    status_code = raised.value.response["ResponseMetadata"]["HTTPStatusCode"]
    assert (error["Code"], error["Type"], status_code) == (code, "Sender", status)
    return str(error["Message"])


@pytest.fixture
def org(moto_endpoint: str) -> Iterator[Org]:
    """The hub's account manages an organization with two member accounts."""
    reset = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(reset).read()  # the loopback moto server
    operator = boto3.session.Session(region_name=REGION)  # the environment's key: the console
    organizations = operator.client("organizations", endpoint_url=moto_endpoint)
    organization = organizations.create_organization(FeatureSet="ALL")["Organization"]
    members = tuple(
        organizations.create_account(AccountName=name, Email=f"{name}@example.com")[
            "CreateAccountStatus"
        ]["AccountId"]
        for name in ("spoke-a", "spoke-b")
    )
    assert not {HUB, OUTSIDER} & set(members)
    yield Org(moto_endpoint, operator, organization["Id"], (members[0], members[1]))
    for name in FUNCTIONS:
        for account in (HUB, OUTSIDER):
            PRINCIPALS.forget(f"lambda-{account}-{name}")


def test_a_hub_function_role_assumes_the_spoke_role_and_acts_in_the_spoke_account(
    org: Org,
) -> None:
    # Given a spoke deployed in member account A, and a cluster in A and in the hub
    spoke = org.spokes[0]
    role = org.deploy(spoke)
    org.admin(spoke).client("eks", endpoint_url=org.endpoint).create_cluster(
        name="spoke-blue",
        roleArn=f"arn:aws:iam::{spoke}:role/eks",
        resourcesVpcConfig={"subnetIds": ["subnet-1"]},
    )
    org.operator.client("eks", endpoint_url=org.endpoint).create_cluster(
        name="hub-blue",
        roleArn=f"arn:aws:iam::{HUB}:role/eks",
        resourcesVpcConfig={"subnetIds": ["subnet-1"]},
    )
    # When the hub's sync function assumes the spoke role with the external id
    assumed = org.function("sync").assume_role(
        RoleArn=role, RoleSessionName="podid-sync", ExternalId=EXTERNAL_ID
    )
    # Then the credentials are a session of the spoke role, in account A
    credentials = assumed["Credentials"]
    session = boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=REGION,
    )
    identity = session.client("sts", endpoint_url=org.endpoint).get_caller_identity()
    expected = f"arn:aws:sts::{spoke}:assumed-role/{HUB_STACK}-spoke-{REGION}/podid-sync"
    assert (identity["Account"], identity["Arn"]) == (spoke, expected)
    assert assumed["AssumedRoleUser"]["Arn"] == expected
    # and EKS with them sees A's clusters in this region only
    eks = session.client("eks", endpoint_url=org.endpoint)
    assert eks.list_clusters()["clusters"] == ["spoke-blue"]
    other = session.client("eks", endpoint_url=org.endpoint, region_name=OTHER_REGION)
    assert other.list_clusters()["clusters"] == []
    caller = f"arn:aws:sts::{HUB}:assumed-role/{HUB_STACK}-sync/{HUB_STACK}-sync"
    assert sts_gate.DECISIONS[-1] == (caller, role, "Allow")


def test_without_or_with_a_wrong_external_id_the_spoke_role_is_denied(org: Org) -> None:
    role = org.deploy(org.spokes[0])
    sync = org.function("sync")
    caller = f"arn:aws:sts::{HUB}:assumed-role/{HUB_STACK}-sync/{HUB_STACK}-sync"
    for extra in ({}, {"ExternalId": "not-the-secret"}):
        message = expect_error(
            lambda extra=extra: sync.assume_role(RoleArn=role, RoleSessionName="s1", **extra),
            "AccessDenied",
            403,
        )
        assert message == denial(caller, role)
    # the right one is admitted (the denial above was the external id, nothing else)
    sync.assume_role(RoleArn=role, RoleSessionName="s1", ExternalId=EXTERNAL_ID)


def test_a_role_outside_the_organization_is_denied_when_the_trust_requires_it(
    org: Org,
) -> None:
    # Given two spokes trusting the same-named function roles of a hub, under the
    # organization condition only: one names the hub, the other an outside account
    inside = org.deploy(org.spokes[0], external_id=None)
    outside = org.deploy(org.spokes[1], hub_account=OUTSIDER, external_id=None)
    # Then the hub (in the organization) gets in; the outsider's role does not
    org.function("reconcile").assume_role(RoleArn=inside, RoleSessionName="s1")
    caller = f"arn:aws:sts::{OUTSIDER}:assumed-role/{HUB_STACK}-reconcile/{HUB_STACK}-reconcile"
    message = expect_error(
        lambda: org.function("reconcile", OUTSIDER).assume_role(
            RoleArn=outside, RoleSessionName="s1"
        ),
        "AccessDenied",
        403,
    )
    assert message == denial(caller, outside)


def test_principal_arn_is_the_callers_role_and_principal_account_its_account(org: Org) -> None:
    # roles any principal may assume, under a condition on who calls
    iam = org.admin(org.spokes[0]).client("iam", endpoint_url=org.endpoint)
    sync_role = f"arn:aws:iam::{HUB}:role/{HUB_STACK}-sync"

    def role(name: str, condition: dict[str, Any]) -> str:
        statement = {
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": "sts:AssumeRole",
            "Condition": condition,
        }
        trust = {"Version": "2012-10-17", "Statement": [statement]}
        created = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
        return str(created["Role"]["Arn"])

    only_sync = role("only-sync", {"ArnEquals": {"aws:PrincipalArn": sync_role}})
    only_hub = role("only-hub", {"StringEquals": {"aws:PrincipalAccount": HUB}})
    # the sync role's session is its role (not the session ARN), in the hub's account
    org.function("sync").assume_role(RoleArn=only_sync, RoleSessionName="s1")
    org.function("sync").assume_role(RoleArn=only_hub, RoleSessionName="s1")
    refused = [
        (org.function("reconcile"), only_sync),
        (org.function("sync", OUTSIDER), only_hub),
    ]
    for sts, arn in refused:
        expect_error(
            lambda sts=sts, arn=arn: sts.assume_role(RoleArn=arn, RoleSessionName="s1"),
            "AccessDenied",
            403,
        )


def test_a_role_that_does_not_exist_is_denied_like_a_refused_one(org: Org) -> None:
    # no spoke deployed in B (nor any role of that name anywhere)
    missing = spoke_role(org.spokes[1])
    caller = f"arn:aws:sts::{HUB}:assumed-role/{HUB_STACK}-sync/{HUB_STACK}-sync"
    message = expect_error(
        lambda: org.function("sync").assume_role(
            RoleArn=missing, RoleSessionName="s1", ExternalId=EXTERNAL_ID
        ),
        "AccessDenied",
        403,
    )
    assert message == denial(caller, missing)
    # nor did moto mint anything for it
    assert (caller, missing, "AccessDenied") == sts_gate.DECISIONS[-1]


def test_an_explicit_deny_wins_over_the_allow(org: Org) -> None:
    spoke = org.spokes[0]
    role = org.deploy(spoke)
    trust = json.loads(
        json.dumps(
            org.admin(spoke)
            .client("iam", endpoint_url=org.endpoint)
            .get_role(RoleName=role.rsplit("/", 1)[-1])["Role"]["AssumeRolePolicyDocument"]
        )
    )
    trust["Statement"].append(
        {
            "Effect": "Deny",
            "Principal": {"AWS": f"arn:aws:iam::{HUB}:role/{HUB_STACK}-webhook-push"},
            "Action": "sts:AssumeRole",
        }
    )
    org.admin(spoke).client("iam", endpoint_url=org.endpoint).update_assume_role_policy(
        RoleName=role.rsplit("/", 1)[-1], PolicyDocument=json.dumps(trust)
    )
    expect_error(
        lambda: org.function("webhook-push").assume_role(
            RoleArn=role, RoleSessionName="s1", ExternalId=EXTERNAL_ID
        ),
        "AccessDenied",
        403,
    )
    # the Allow still admits the others: it was the Deny
    org.function("sync").assume_role(RoleArn=role, RoleSessionName="s1", ExternalId=EXTERNAL_ID)


def test_a_removed_spoke_is_denied_and_removing_again_is_harmless(org: Org) -> None:
    spoke = org.spokes[0]
    role = org.deploy(spoke)
    sync = org.function("sync")
    sync.assume_role(RoleArn=role, RoleSessionName="s1", ExternalId=EXTERNAL_ID)
    remove_spoke(org.endpoint, spoke, REGION, hub_stack_name=HUB_STACK, operator=org.operator)
    expect_error(
        lambda: sync.assume_role(RoleArn=role, RoleSessionName="s1", ExternalId=EXTERNAL_ID),
        "AccessDenied",
        403,
    )
    remove_spoke(org.endpoint, spoke, REGION, hub_stack_name=HUB_STACK, operator=org.operator)


def test_spokes_are_per_region_one_removed_leaves_the_other(org: Org) -> None:
    spoke = org.spokes[0]
    here, there = org.deploy(spoke), org.deploy(spoke, OTHER_REGION)
    remove_spoke(org.endpoint, spoke, REGION, hub_stack_name=HUB_STACK, operator=org.operator)
    sync = org.function("sync")
    sync.assume_role(RoleArn=there, RoleSessionName="s1", ExternalId=EXTERNAL_ID)
    expect_error(
        lambda: sync.assume_role(RoleArn=here, RoleSessionName="s1", ExternalId=EXTERNAL_ID),
        "AccessDenied",
        403,
    )


def test_a_duration_beyond_the_roles_maximum_is_a_validation_error(org: Org) -> None:
    role = org.deploy(org.spokes[0])  # MaxSessionDuration 1 h, as the spoke stack's
    message = expect_error(
        lambda: org.function("sync").assume_role(
            RoleArn=role, RoleSessionName="s1", ExternalId=EXTERNAL_ID, DurationSeconds=3601
        ),
        "ValidationError",
        400,
    )
    assert message == (
        "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
    )
    org.function("sync").assume_role(
        RoleArn=role, RoleSessionName="s1", ExternalId=EXTERNAL_ID, DurationSeconds=3600
    )


def test_role_chaining_is_limited_to_one_hour(org: Org) -> None:
    # a role allowing 12 h sessions, assumed by a role session (chaining)
    iam = org.operator.client("iam", endpoint_url=org.endpoint)
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": HUB}, "Action": "sts:AssumeRole"}],
    }
    arn = iam.create_role(
        RoleName="long", AssumeRolePolicyDocument=json.dumps(trust), MaxSessionDuration=43200
    )["Role"]["Arn"]
    org.operator.client("sts", endpoint_url=org.endpoint).assume_role(
        RoleArn=arn, RoleSessionName="s1", DurationSeconds=43200
    )
    message = expect_error(
        lambda: org.function("sync").assume_role(
            RoleArn=arn, RoleSessionName="s1", DurationSeconds=7200
        ),
        "ValidationError",
        400,
    )
    assert "role chaining" in message


def test_admin_access_is_the_operators_only_and_acts_in_that_account(org: Org) -> None:
    spoke = org.spokes[1]
    session = org.admin(spoke)
    identity = session.client("sts", endpoint_url=org.endpoint).get_caller_identity()
    assert identity["Arn"] == f"arn:aws:sts::{spoke}:assumed-role/{ADMIN_ROLE}/sandbox-operator"
    # a principal of another account (here: account A's admin session) is refused
    admin_a = org.admin(org.spokes[0]).client("sts", endpoint_url=org.endpoint)
    caller = f"arn:aws:sts::{org.spokes[0]}:assumed-role/{ADMIN_ROLE}/sandbox-operator"
    target = f"arn:aws:iam::{spoke}:role/{ADMIN_ROLE}"
    message = expect_error(
        lambda: admin_a.assume_role(RoleArn=target, RoleSessionName="s1"), "AccessDenied", 403
    )
    assert message == denial(caller, target)


def test_bad_spoke_inputs_are_refused_before_anything_is_created(org: Org) -> None:
    with pytest.raises(ValueError, match="external_id and/or organization_id"):
        org.deploy(org.spokes[0], external_id=None, organization_id=None)
    with pytest.raises(ValueError, match="12-digit"):
        org.deploy("12345")
    iam = org.admin(org.spokes[0]).client("iam", endpoint_url=org.endpoint)
    assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == [ADMIN_ROLE]


def test_pod_identity_associations_of_one_account_are_invisible_from_another(org: Org) -> None:
    # Given a cluster "blue" in account B with an association, and a "blue" in the hub
    spoke = org.spokes[1]
    eks_b = org.admin(spoke).client("eks", endpoint_url=org.endpoint)
    eks_hub = org.operator.client("eks", endpoint_url=org.endpoint)
    for eks, account in ((eks_b, spoke), (eks_hub, HUB)):
        eks.create_cluster(
            name="blue",
            roleArn=f"arn:aws:iam::{account}:role/eks",
            resourcesVpcConfig={"subnetIds": ["subnet-1"]},
        )
    org.admin(spoke).client("iam", endpoint_url=org.endpoint).create_role(
        RoleName="app",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "pods.eks.amazonaws.com"},
                        "Action": ["sts:AssumeRole", "sts:TagSession"],
                    }
                ],
            }
        ),
    )
    created = eks_b.create_pod_identity_association(
        clusterName="blue",
        namespace="payments",
        serviceAccount="api",
        roleArn=f"arn:aws:iam::{spoke}:role/app",
    )["association"]
    assert created["associationArn"].split(":")[4] == spoke
    # Then the hub's "blue" has none, and B's association id is unknown there
    assert eks_hub.list_pod_identity_associations(clusterName="blue")["associations"] == []
    with pytest.raises(ClientError) as raised:
        eks_hub.describe_pod_identity_association(
            clusterName="blue", associationId=created["associationId"]
        )
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"
    listed = eks_b.list_pod_identity_associations(clusterName="blue")["associations"]
    assert [a["associationId"] for a in listed] == [created["associationId"]]


def test_the_aws_cli_reads_the_gates_denial(org: Org) -> None:
    """An independent client of the error shape: the AWS CLI's own parser."""
    aws = shutil.which("aws")
    if (
        aws is None
        or subprocess.run([aws, "--version"], check=False, capture_output=True).returncode
    ):
        pytest.fail("the aws CLI is needed for this test (pip install awscli)")
    role = org.deploy(org.spokes[0])
    environment = {
        **os.environ,
        "AWS_ENDPOINT_URL": org.endpoint,
        "AWS_ACCESS_KEY_ID": "cli",
        "AWS_SECRET_ACCESS_KEY": "cli",
        "AWS_DEFAULT_REGION": REGION,
    }
    environment.pop("AWS_SESSION_TOKEN", None)
    done = subprocess.run(
        [aws, "sts", "assume-role", "--role-arn", role, "--role-session-name", "cli"],
        check=False,
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
    )
    assert done.returncode != 0
    caller = f"arn:aws:iam::{HUB}:user/moto"
    assert (
        "An error occurred (AccessDenied) when calling the AssumeRole operation: "
        + denial(caller, role)
    ) in done.stderr
