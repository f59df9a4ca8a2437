"""ARN and name rules from the IAM, EKS and Kubernetes documentation."""

from __future__ import annotations

import re
from dataclasses import dataclass

PARTITIONS = ("aws", "aws-cn", "aws-us-gov")
_PARTITION = "|".join(re.escape(p) for p in PARTITIONS)

# IAM: path is "/" or "/segment/.../" (max 512), role name [\w+=,.@-]{1,64}.
_ROLE_ARN = re.compile(
    rf"^arn:(?P<partition>{_PARTITION}):iam::(?P<account>\d{{12}}):role"
    r"(?P<path>/(?:[\x21-\x7e]+/)?)(?P<name>[\w+=,.@-]{1,64})$",
    re.ASCII,
)
_CLUSTER_ARN = re.compile(
    rf"^arn:(?P<partition>{_PARTITION}):eks:(?P<region>[a-z]{{2}}(?:-[a-z]+)+-\d):"
    r"(?P<account>\d{12}):cluster/(?P<name>[0-9A-Za-z][A-Za-z0-9_-]{0,99})$",
    re.ASCII,
)
_ASSOCIATION_ARN = re.compile(
    rf"^arn:(?P<partition>{_PARTITION}):eks:(?P<region>[a-z]{{2}}(?:-[a-z]+)+-\d):"
    r"(?P<account>\d{12}):podidentityassociation/(?P<cluster>[0-9A-Za-z][A-Za-z0-9_-]{0,99})"
    r"/(?P<id>[A-Za-z0-9-]{1,64})$",
    re.ASCII,
)
# Kubernetes: namespaces are DNS-1123 labels, service accounts DNS-1123 subdomains.
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", re.ASCII)
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", re.ASCII
)
# EKS CreateCluster: 1-100 chars, starts alphanumeric.
_CLUSTER_NAME = re.compile(r"^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$", re.ASCII)
_ACCOUNT_ID = re.compile(r"^\d{12}$", re.ASCII)

ROLE_ARN_SHAPE = "arn:<aws|aws-cn|aws-us-gov>:iam::<12-digit account>:role/[<path>/]<name>"


@dataclass(frozen=True, slots=True)
class RoleArn:
    partition: str
    account: str
    path: str
    name: str

    def __str__(self) -> str:
        return f"arn:{self.partition}:iam::{self.account}:role{self.path}{self.name}"


@dataclass(frozen=True, slots=True)
class ClusterArn:
    partition: str
    region: str
    account: str
    name: str

    def __str__(self) -> str:
        return f"arn:{self.partition}:eks:{self.region}:{self.account}:cluster/{self.name}"


def parse_role_arn(value: str) -> RoleArn:
    """Parse an IAM role ARN or raise ValueError saying what shape was expected."""
    match = _ROLE_ARN.fullmatch(value) if isinstance(value, str) else None
    if match is None or len(match["path"]) > 512:
        raise ValueError(f"{value!r} is not an IAM role ARN (expected {ROLE_ARN_SHAPE})")
    return RoleArn(match["partition"], match["account"], match["path"], match["name"])


def parse_cluster_arn(value: str) -> ClusterArn:
    match = _CLUSTER_ARN.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(
            f"{value!r} is not an EKS cluster ARN "
            "(expected arn:<partition>:eks:<region>:<12-digit account>:cluster/<name>)"
        )
    return ClusterArn(match["partition"], match["region"], match["account"], match["name"])


@dataclass(frozen=True, slots=True)
class AssociationArn:
    cluster: ClusterArn
    association_id: str


def parse_association_arn(value: str) -> AssociationArn:
    match = _ASSOCIATION_ARN.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(
            f"{value!r} is not a pod identity association ARN (expected arn:<partition>:eks:"
            "<region>:<12-digit account>:podidentityassociation/<cluster>/<association id>)"
        )
    cluster = ClusterArn(match["partition"], match["region"], match["account"], match["cluster"])
    return AssociationArn(cluster, match["id"])


def check_namespace(value: str) -> str:
    if len(value) > 63 or not _DNS1123_LABEL.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid Kubernetes namespace (DNS-1123 label: at most 63 "
            "lowercase letters, digits or '-', starting and ending with a letter or digit)"
        )
    return value


def check_service_account(value: str) -> str:
    if len(value) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid Kubernetes service account name (DNS-1123 subdomain: "
            "at most 253 lowercase letters, digits, '-' or '.', each part starting and "
            "ending with a letter or digit)"
        )
    return value


def check_cluster_name(value: str) -> str:
    if not _CLUSTER_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid EKS cluster name (1-100 letters, digits, '-' or '_', "
            "starting with a letter or digit)"
        )
    return value


def check_account_id(value: str) -> str:
    if not _ACCOUNT_ID.fullmatch(value):
        raise ValueError(f"{value!r} is not an AWS account id (12 digits)")
    return value


def cluster_arn(partition: str, region: str, account: str, name: str) -> str:
    return str(ClusterArn(partition, region, account, name))
