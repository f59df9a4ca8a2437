"""Deploy and remove a spoke in the sandbox: the role the hub's functions
assume in one account and region, as the spoke stack (infra/spoke.py) makes it.

Written by hand from what the spoke stack promises (trust only the hub's
function roles, under sts:ExternalId and/or aws:PrincipalOrgID; what the hub
may do there), not by importing the CDK code: tests/infra/
test_sandbox_spoke_matches_cdk.py synthesizes the stack with the same inputs
and compares both documents, so the two cannot drift apart silently.
The forwarding rules of the stack are the sandbox router's job, not here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import boto3

from sandbox import arns
from sandbox.accounts import admin_access

MODES = ("plan", "audit", "enforce")
MAX_SESSION_SECONDS = 3600
MANAGED_BY_TAG = "pod-identity/managed-by"
REPAIRABLE_ROLE_TAG = "pod-identity/managed-trust"
REPAIR_VALUES = ("true", "harden")  # repair, and repair + hardening
POLICY_NAME = "podid-hub"
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")


@dataclass(frozen=True)
class SpokeSpec:
    """The spoke stack's inputs that shape its role."""

    account: str
    region: str
    hub_account: str
    hub_stack_name: str
    function_role_names: tuple[str, ...]
    external_id: str | None = None
    organization_id: str | None = None
    mode: str = "audit"
    role_path: str = "/pod-identity/"
    owner: str | None = None
    repairable_role_tag: str = REPAIRABLE_ROLE_TAG

    def __post_init__(self) -> None:
        for name in ("account", "hub_account"):
            if not re.fullmatch(r"\d{12}", getattr(self, name)):
                raise ValueError(f"{name} {getattr(self, name)!r} is not a 12-digit account id")
        if not _REGION.match(self.region):
            raise ValueError(f"region {self.region!r} is not an AWS region name")
        if not self.function_role_names:
            raise ValueError("function_role_names: the spoke role must trust the hub's roles")
        if not (self.external_id or self.organization_id):
            raise ValueError(
                "the spoke role needs external_id and/or organization_id besides the "
                "hub's role names (as the spoke stack does)"
            )
        if self.mode not in MODES:
            raise ValueError(f"mode {self.mode!r} is not one of {MODES}")
        if not (self.role_path.startswith("/") and self.role_path.endswith("/")):
            raise ValueError(f"role_path {self.role_path!r} must start and end with '/'")

    @property
    def partition(self) -> str:
        return arns.partition_of(self.region)

    @property
    def role_name(self) -> str:
        # IAM names are per account: one role per region
        return f"{self.hub_stack_name[:40]}-spoke-{self.region}"

    @property
    def role_arn(self) -> str:
        return arns.role_arn(self.partition, self.account, self.role_name)

    def trust_policy(self) -> dict[str, Any]:
        trusted = [
            arns.role_arn(self.partition, self.hub_account, name)
            for name in self.function_role_names
        ]
        statement: dict[str, Any] = {
            "Effect": "Allow",
            "Principal": {"AWS": trusted},
            "Action": "sts:AssumeRole",  # no sts:TagSession: the hub sets no session tags
        }
        equals = {}
        if self.organization_id:
            equals["aws:PrincipalOrgID"] = self.organization_id
        if self.external_id:
            equals["sts:ExternalId"] = self.external_id
        statement["Condition"] = {"StringEquals": equals}
        return {"Version": "2012-10-17", "Statement": [statement]}

    def permissions(self) -> dict[str, Any]:
        """What the hub may do here; plan writes nothing, repair only in enforce."""
        p, region, account = self.partition, self.region, self.account
        clusters = f"arn:{p}:eks:{region}:{account}:cluster/*"
        associations = f"arn:{p}:eks:{region}:{account}:podidentityassociation/*"
        roles = f"arn:{p}:iam::{account}:role{self.role_path}*"
        owner = self.owner or self.hub_stack_name[:64]
        statements = [
            _allow(
                "ReadClusters",
                ["eks:DescribeCluster", "eks:ListPodIdentityAssociations"],
                clusters,
            ),
            _allow("DescribeAssociations", ["eks:DescribePodIdentityAssociation"], associations),
            _allow("ListClusters", ["eks:ListClusters", "tag:GetResources"], "*"),
            _allow("ReadRoles", ["iam:GetRole", "iam:ListRoleTags"], roles),
        ]
        if self.mode != "plan":
            statements += [
                _allow("CreateAssociations", ["eks:CreatePodIdentityAssociation"], clusters),
                _allow(
                    "ChangeOwnAssociations",
                    [
                        "eks:UpdatePodIdentityAssociation",
                        "eks:DeletePodIdentityAssociation",
                        "eks:TagResource",
                        "eks:UntagResource",
                    ],
                    associations,
                    {"StringEquals": {f"aws:ResourceTag/{MANAGED_BY_TAG}": owner}},
                ),
                _allow(
                    "TagAssociationsAsOwn",
                    ["eks:TagResource"],
                    associations,
                    {"StringEquals": {f"aws:RequestTag/{MANAGED_BY_TAG}": owner}},
                ),
                _allow(
                    "PassRolesToPodIdentity",
                    ["iam:PassRole"],
                    roles,
                    {"StringEquals": {"iam:PassedToService": "pods.eks.amazonaws.com"}},
                ),
            ]
        if self.mode == "enforce":
            statements.append(
                _allow(
                    "RepairOptedInRoles",
                    ["iam:UpdateAssumeRolePolicy"],
                    roles,
                    {
                        "StringEquals": {
                            f"iam:ResourceTag/{self.repairable_role_tag}": list(REPAIR_VALUES)
                        }
                    },
                )
            )
        return {"Version": "2012-10-17", "Statement": statements}


def _allow(
    sid: str, actions: list[str], resource: str, condition: dict[str, Any] | None = None
) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Allow",
        "Action": actions,
        "Resource": resource,
    }
    if condition:
        statement["Condition"] = condition
    return statement


def deploy_spoke(
    endpoint: str,
    account: str,
    region: str,
    *,
    hub_account: str,
    hub_stack_name: str,
    function_role_names: Sequence[str],
    external_id: str | None = None,
    organization_id: str | None = None,
    mode: str = "audit",
    role_path: str = "/pod-identity/",
    operator: boto3.session.Session | None = None,
) -> str:
    """Create (or update) the spoke role in `account` for `region`; its ARN."""
    spec = SpokeSpec(
        account=account,
        region=region,
        hub_account=hub_account,
        hub_stack_name=hub_stack_name,
        function_role_names=tuple(function_role_names),
        external_id=external_id,
        organization_id=organization_id,
        mode=mode,
        role_path=role_path,
    )
    iam = admin_access(endpoint, account, operator=operator, region=region).client(
        "iam", endpoint_url=endpoint
    )
    trust = json.dumps(spec.trust_policy())
    try:
        iam.create_role(
            RoleName=spec.role_name,
            AssumeRolePolicyDocument=trust,
            Description=f"podid hub {hub_stack_name} ({hub_account}) manages here",
            MaxSessionDuration=MAX_SESSION_SECONDS,
        )
    except iam.exceptions.EntityAlreadyExistsException:
        iam.update_assume_role_policy(RoleName=spec.role_name, PolicyDocument=trust)
    iam.put_role_policy(
        RoleName=spec.role_name,
        PolicyName=POLICY_NAME,
        PolicyDocument=json.dumps(spec.permissions()),
    )
    return spec.role_arn


def remove_spoke(
    endpoint: str,
    account: str,
    region: str,
    *,
    hub_stack_name: str,
    operator: boto3.session.Session | None = None,
) -> None:
    """Delete the spoke role (as deleting the spoke stack does): the hub's
    AssumeRole into `account` for `region` is denied from then on."""
    if not _REGION.match(region):
        raise ValueError(f"region {region!r} is not an AWS region name")
    name = f"{hub_stack_name[:40]}-spoke-{region}"
    iam = admin_access(endpoint, account, operator=operator, region=region).client(
        "iam", endpoint_url=endpoint
    )
    try:
        for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            iam.delete_role_policy(RoleName=name, PolicyName=policy)
        iam.delete_role(RoleName=name)
    except iam.exceptions.NoSuchEntityException:
        return  # already gone: removing twice is removing once
