"""ARN and name rules from the IAM, EKS, STS and Kubernetes documentation: the one
place the product reads an ARN (never split one by hand elsewhere)."""

from __future__ import annotations

import re
from dataclasses import dataclass

# every AWS partition (botocore's partitions data); a region belongs to exactly one
PARTITIONS = (
    "aws",
    "aws-cn",
    "aws-us-gov",
    "aws-iso",
    "aws-iso-b",
    "aws-iso-e",
    "aws-iso-f",
    "aws-eusc",
)
# longest first, so "aws" never stops a match short of "aws-cn"
PARTITION_PATTERN = "|".join(re.escape(p) for p in sorted(PARTITIONS, key=len, reverse=True))
_PARTITION = PARTITION_PATTERN
# us-east-1, cn-north-1, us-gov-west-1, us-isob-east-1, eu-isoe-west-1, eusc-de-east-1
_REGION = r"[a-z]{2,4}(?:-[a-z]+)+-\d{1,2}"
_CLUSTER = r"[0-9A-Za-z][A-Za-z0-9_-]{0,99}"
# IAM names: [\w+=,.@-] (role 64 chars, user and session names their own limits)
_IAM_NAME = r"[\w+=,.@-]"

# any ARN: arn:partition:service:region:account:resource (region and account may be
# empty, e.g. IAM has no region; the resource may hold further colons)
_ARN = re.compile(
    rf"^arn:(?P<partition>{_PARTITION}):(?P<service>[a-z0-9][a-z0-9-]{{0,62}}):"
    rf"(?P<region>(?:{_REGION})?):(?P<account>(?:\d{{12}}|aws)?):(?P<resource>[^\s]+)$",
    re.ASCII,
)
# IAM: path is "/" or "/segment/.../" (max 512), role name [\w+=,.@-]{1,64}.
_ROLE_ARN = re.compile(
    rf"^arn:(?P<partition>{_PARTITION}):iam::(?P<account>\d{{12}}):role"
    rf"(?P<path>/(?:[\x21-\x7e]+/)?)(?P<name>{_IAM_NAME}{{1,64}})$",
    re.ASCII,
)
# STS: an assumed-role session names the role (without its path) and the session.
_ASSUMED_ROLE_ARN = re.compile(
    rf"^arn:(?P<partition>{_PARTITION}):sts::(?P<account>\d{{12}}):assumed-role/"
    rf"(?P<role>{_IAM_NAME}{{1,64}})/(?P<session>{_IAM_NAME}{{2,64}})$",
    re.ASCII,
)
_CLUSTER_ARN = re.compile(
    rf"^arn:(?P<partition>{_PARTITION}):eks:(?P<region>{_REGION}):"
    rf"(?P<account>\d{{12}}):cluster/(?P<name>{_CLUSTER})$",
    re.ASCII,
)
_ASSOCIATION_ARN = re.compile(
    rf"^arn:(?P<partition>{_PARTITION}):eks:(?P<region>{_REGION}):"
    rf"(?P<account>\d{{12}}):podidentityassociation/(?P<cluster>{_CLUSTER})"
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
_REGION_NAME = re.compile(rf"^{_REGION}$", re.ASCII)

ROLE_ARN_SHAPE = "arn:<partition>:iam::<12-digit account>:role/[<path>/]<name>"
ARN_SHAPE = "arn:<partition>:<service>:<region or empty>:<account or empty>:<resource>"
PARTITION_LIST = ", ".join(PARTITIONS)


def _invalid(value: object, what: str, shape: str) -> ValueError:
    parts = value.split(":") if isinstance(value, str) else []
    if len(parts) > 2 and parts[0] == "arn" and parts[1] not in PARTITIONS:
        return ValueError(
            f"{value!r} is not {what}: unknown partition {parts[1]!r} (one of {PARTITION_LIST})"
        )
    return ValueError(f"{value!r} is not {what} (expected {shape})")


@dataclass(frozen=True, slots=True)
class Arn:
    """Any ARN, split into its six parts (the resource keeps further colons)."""

    partition: str
    service: str
    region: str
    account: str
    resource: str

    def __str__(self) -> str:
        return f"arn:{self.partition}:{self.service}:{self.region}:{self.account}:{self.resource}"


def parse_arn(value: str) -> Arn:
    """Parse any ARN of a known partition or raise ValueError naming the expected shape."""
    match = _ARN.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise _invalid(value, "an ARN", ARN_SHAPE)
    return Arn(
        match["partition"], match["service"], match["region"], match["account"], match["resource"]
    )


def arn_parts(value: str) -> tuple[str, ...] | None:
    """The six colon-separated parts IAM's ArnLike/ArnEquals compare one by one
    (patterns may hold wildcards, so no shape is checked); None without six parts."""
    parts = tuple(value.split(":", 5))
    return parts if len(parts) == 6 else None


@dataclass(frozen=True, slots=True)
class RoleArn:
    partition: str
    account: str
    path: str
    name: str

    def __str__(self) -> str:
        return f"arn:{self.partition}:iam::{self.account}:role{self.path}{self.name}"

    @property
    def account_root(self) -> str:
        """The account principal, which trust policies use for every principal of it."""
        return account_root(self.partition, self.account)


@dataclass(frozen=True, slots=True)
class AssumedRoleArn:
    """An STS session of a role: what GetCallerIdentity answers for role credentials."""

    partition: str
    account: str
    role_name: str
    session: str

    def __str__(self) -> str:
        return (
            f"arn:{self.partition}:sts::{self.account}:assumed-role/{self.role_name}/{self.session}"
        )


@dataclass(frozen=True, slots=True)
class ClusterArn:
    partition: str
    region: str
    account: str
    name: str

    def __str__(self) -> str:
        return f"arn:{self.partition}:eks:{self.region}:{self.account}:cluster/{self.name}"


@dataclass(frozen=True, slots=True)
class AssociationArn:
    cluster: ClusterArn
    association_id: str

    def __str__(self) -> str:
        c = self.cluster
        return (
            f"arn:{c.partition}:eks:{c.region}:{c.account}:podidentityassociation/"
            f"{c.name}/{self.association_id}"
        )


def parse_role_arn(value: str) -> RoleArn:
    """Parse an IAM role ARN or raise ValueError saying what shape was expected."""
    match = _ROLE_ARN.fullmatch(value) if isinstance(value, str) else None
    if match is None or len(match["path"]) > 512:
        raise _invalid(value, "an IAM role ARN", ROLE_ARN_SHAPE)
    return RoleArn(match["partition"], match["account"], match["path"], match["name"])


def parse_assumed_role_arn(value: str) -> AssumedRoleArn:
    match = _ASSUMED_ROLE_ARN.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise _invalid(
            value,
            "an STS assumed-role ARN",
            "arn:<partition>:sts::<12-digit account>:assumed-role/<role name>/<session>",
        )
    return AssumedRoleArn(match["partition"], match["account"], match["role"], match["session"])


def parse_cluster_arn(value: str) -> ClusterArn:
    match = _CLUSTER_ARN.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise _invalid(
            value,
            "an EKS cluster ARN",
            "arn:<partition>:eks:<region>:<12-digit account>:cluster/<name>",
        )
    return ClusterArn(match["partition"], match["region"], match["account"], match["name"])


def parse_association_arn(value: str) -> AssociationArn:
    match = _ASSOCIATION_ARN.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise _invalid(
            value,
            "a pod identity association ARN",
            "arn:<partition>:eks:<region>:<12-digit account>:podidentityassociation/"
            "<cluster>/<association id>",
        )
    cluster = ClusterArn(match["partition"], match["region"], match["account"], match["cluster"])
    return AssociationArn(cluster, match["id"])


def account_root(partition: str, account: str) -> str:
    return f"arn:{partition}:iam::{account}:root"


_ROLE_NAME = re.compile(rf"^{_IAM_NAME}{{1,64}}$", re.ASCII)
# one IAM path segment: printable ASCII but "/" (IAM allows \x21-\x7e between slashes)
_PATH_SEGMENT = re.compile(r"^[\x21-\x2e\x30-\x7e]+$", re.ASCII)
MAX_ROLE_PATH = 512
ROLE_NAME_SHAPE = "[<path>/]<name>, e.g. app-reader or pod-identity/app-reader"


def parse_role_name(value: str) -> tuple[str, str]:
    """(IAM path, role name) of "[/]<path>/<name>" or "<name>": a role named the
    same in every account it is resolved in. Raises ValueError naming the rule."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{value!r} is not an IAM role name (expected {ROLE_NAME_SHAPE})")
    if value.startswith("arn:"):
        raise ValueError(
            f"{value!r} is an ARN, not a role name: put a full ARN in roleArn, or give "
            f"roleName as {ROLE_NAME_SHAPE}"
        )
    *segments, name = value.removeprefix("/").split("/")
    if not _ROLE_NAME.fullmatch(name):
        raise ValueError(
            f"{value!r} does not end in a valid IAM role name: {name!r} must be 1-64 "
            "letters, digits or + = , . @ _ - (expected " + ROLE_NAME_SHAPE + ")"
        )
    bad = [s for s in segments if not _PATH_SEGMENT.fullmatch(s)]
    if bad:
        raise ValueError(
            f"{value!r} has an invalid IAM path segment {bad[0]!r}: each segment between "
            "slashes is 1 or more printable ASCII characters other than '/' and space"
        )
    path = "/" + "".join(f"{s}/" for s in segments)
    if len(path) > MAX_ROLE_PATH:
        raise ValueError(
            f"{value!r} has an IAM path of {len(path)} characters; IAM allows {MAX_ROLE_PATH}"
        )
    return path, name


def role_arn_of(partition: str, account: str, path: str, name: str) -> str:
    """The ARN of the role with this path and name in an account."""
    return str(RoleArn(partition, account, path, name))


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


def check_region(value: str) -> str:
    if not isinstance(value, str) or not _REGION_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not an AWS region (e.g. us-east-1, eu-west-2)")
    return value


def cluster_arn(partition: str, region: str, account: str, name: str) -> str:
    return str(ClusterArn(partition, region, account, name))
