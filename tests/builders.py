"""Small builders for domain objects used across test layers."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

import boto3

if TYPE_CHECKING:
    from mypy_boto3_sts import STSClient

from functions.core.models import (
    ActualAssociation,
    AssociationKey,
    AssociationSpec,
    Cluster,
    Declaration,
)
from functions.core.places import ClusterRef

ACCOUNT = "111122223333"
OTHER_ACCOUNT = "444455556666"
REGION = "eu-west-1"
OWNER = "podid"
# a role tagged so enforce mode may repair its breakage
OPT_IN = {"pod-identity/managed-trust": "true"}


def sts_as(key_id: str, secret: str, token: str) -> STSClient:
    """STS signing with these temporary credentials (whoever they were issued to)."""
    return boto3.client(
        "sts",
        region_name=REGION,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        aws_session_token=token,
    )


# a pod identity role's trust policy broken by hand: only EC2 may assume it
EC2_ONLY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}

# any well-formed certificate will do where only its PEM shape is checked
PEM = (
    b"-----BEGIN CERTIFICATE-----\n"
    + base64.encodebytes(b"\x30\x82" + bytes(64))
    + b"-----END CERTIFICATE-----\n"
)


def role_arn(name: str = "app", account: str = ACCOUNT) -> str:
    return f"arn:aws:iam::{account}:role/{name}"


def ref(name: str = "blue", account: str = ACCOUNT, region: str = REGION) -> ClusterRef:
    """A cluster's identity in the builders' account and region by default."""
    return ClusterRef(account, region, name)


def cluster_arn(name: str, account: str = ACCOUNT, region: str = REGION) -> str:
    return f"arn:aws:eks:{region}:{account}:cluster/{name}"


def cluster(
    name: str = "blue",
    fleet: str | None = "prod",
    account: str = ACCOUNT,
    *,
    region: str = REGION,
    ous: tuple[str, ...] = (),
) -> Cluster:
    return Cluster(
        name=name, arn=cluster_arn(name, account, region), fleet=fleet, organizational_units=ous
    )


def declaration(**overrides: Any) -> Declaration:
    fields: dict[str, Any] = {
        "id": "app",
        "namespace": "payments",
        "serviceAccount": "api",
        "roleArn": role_arn(),
        "target": {"fleet": "prod"},
    }
    fields.update(overrides)
    return Declaration.model_validate(fields)


def by_role_name(**overrides: Any) -> Declaration:
    """A declaration naming a role per account (roleName) instead of one roleArn."""
    fields: dict[str, Any] = {
        "id": "app",
        "namespace": "payments",
        "serviceAccount": "api",
        "roleName": "pod-identity/app-reader",
        "target": {"fleet": "prod"},
    }
    fields.update(overrides)
    return Declaration.model_validate(fields)


def actual(
    key: AssociationKey, role: str, *, managed: bool = True, association_id: str | None = None
) -> ActualAssociation:
    tags = {"pod-identity/managed-by": OWNER} if managed else {}
    return ActualAssociation(
        key=key,
        association_id=association_id or f"a-{abs(hash(key)) % 10**8:08d}",
        spec=AssociationSpec(role_arn=role, tags=tags),
    )
