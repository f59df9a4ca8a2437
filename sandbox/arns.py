"""ARNs for the sandbox's emulations: one reader of their six parts and the
partition of a region from AWS's own partition data (botocore ships it). The
emulations never use podid's parser (an oracle must not share its mistakes)."""

from __future__ import annotations

from functools import cache
from typing import Any, NamedTuple

from botocore.loaders import create_loader
from botocore.regions import EndpointResolver


class Arn(NamedTuple):
    partition: str
    service: str
    region: str
    account: str
    resource: str

    @property
    def resource_name(self) -> str:
        """The last path segment of the resource (a cluster's or role's name)."""
        return self.resource.rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return ":".join(("arn", *self))


def parse(value: str) -> Arn:
    """The six parts of an ARN (ARN reference: arn:partition:service:region:account:resource)."""
    parts = value.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or not parts[1] or not parts[2] or not parts[5]:
        raise ValueError(
            f"{value!r} is not an ARN (expected arn:<partition>:<service>:<region>:"
            "<account>:<resource>)"
        )
    return Arn(*parts[1:])


def account_of(arn: str) -> str:
    return parse(arn).account


def role_arn(partition: str, account: str, name: str, path: str = "/") -> str:
    return f"arn:{partition}:iam::{account}:role{path}{name}"


def session_of(assumed_role_arn: str) -> tuple[str, str]:
    """(role name, session name) of an STS assumed-role ARN."""
    arn = parse(assumed_role_arn)
    kind, _, rest = arn.resource.partition("/")
    role, _, session = rest.partition("/")
    if arn.service != "sts" or kind != "assumed-role" or not role or not session:
        raise ValueError(f"{assumed_role_arn!r} is not an STS assumed-role ARN")
    return role, session


@cache
def _endpoints() -> dict[str, Any]:
    data: dict[str, Any] = create_loader().load_data("endpoints")
    return data


def partitions() -> tuple[str, ...]:
    """Every partition botocore knows (aws, aws-cn, aws-us-gov, aws-iso, ...)."""
    return tuple(str(entry["partition"]) for entry in _endpoints()["partitions"])


def partition_of(region: str) -> str:
    """The partition a region belongs to (us-east-1: aws, cn-north-1: aws-cn, ...)."""
    found = EndpointResolver(_endpoints()).get_partition_for_region(region)
    return str(found)


def global_region(service: str, partition: str) -> str:
    """Where a global service (IAM) is signed and its CloudTrail events recorded in
    a partition: the credential scope of its partition endpoint."""
    for entry in _endpoints()["partitions"]:
        if entry["partition"] != partition:
            continue
        info = entry["services"].get(service, {})
        endpoint = info.get("endpoints", {}).get(info.get("partitionEndpoint", ""), {})
        region = endpoint.get("credentialScope", {}).get("region")
        if region:
            return str(region)
        raise ValueError(f"{service} is not a global service in partition {partition}")
    raise ValueError(f"unknown partition {partition!r}")
