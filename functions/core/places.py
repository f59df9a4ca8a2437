"""Where things are: an account and region (a place), and a cluster in one.

A cluster's name is unique only within its account and region, so a cluster is
(account, region, name) everywhere: keys, statuses, maps, findings, metrics and
output. Pure values; ARNs are read by functions.core.arns."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from functions.core.arns import (
    check_account_id,
    check_cluster_name,
    check_region,
    cluster_arn,
    parse_cluster_arn,
)

SEPARATOR = "/"


class Unreachable(RuntimeError):
    """podid cannot act in this account and region now (no spoke there, the
    spoke removed, AssumeRole denied). Its clusters are reported, never forgotten."""

    def __init__(self, place: Place, reason: str) -> None:
        super().__init__(f"cannot act in account {place.account} region {place.region}: {reason}")
        self.place = place
        self.reason = reason


class Place(NamedTuple):
    """One account in one region: where a spoke (or the hub itself) is."""

    account: str
    region: str

    def __str__(self) -> str:
        return f"{self.account}{SEPARATOR}{self.region}"

    @classmethod
    def checked(cls, account: str, region: str) -> Place:
        return cls(check_account_id(account), check_region(region))


class ClusterRef(NamedTuple):
    """A cluster's identity. str() is "account/region/name", the form the CLI
    prints and accepts."""

    account: str
    region: str
    name: str

    def __str__(self) -> str:
        return SEPARATOR.join(self)

    @property
    def place(self) -> Place:
        return Place(self.account, self.region)

    def arn(self, partition: str) -> str:
        return cluster_arn(partition, self.region, self.account, self.name)

    @classmethod
    def of_arn(cls, arn: str) -> ClusterRef:
        parsed = parse_cluster_arn(arn)
        return cls(parsed.account, parsed.region, parsed.name)

    @classmethod
    def parse(cls, text: str) -> ClusterRef:
        """Parse "account/region/name" or a cluster ARN; raises ValueError saying which
        shape is expected."""
        if text.startswith("arn:"):
            return cls.of_arn(text)
        parts = text.split(SEPARATOR)
        if len(parts) != 3:
            raise ValueError(
                f"{text!r} is not a cluster: expected <12-digit account>/<region>/<name> "
                "or a cluster ARN"
            )
        account, region, name = parts
        return cls(check_account_id(account), check_region(region), check_cluster_name(name))

    @classmethod
    def at(cls, place: Place, name: str) -> ClusterRef:
        return cls(place.account, place.region, name)


def is_full_ref(text: str) -> bool:
    """Whether a cluster is named in full (account/region/name or its ARN), not
    by its name alone."""
    return SEPARATOR in text or text.startswith("arn:")


def named_by(selector: str, places: Iterable[Place]) -> list[ClusterRef]:
    """The clusters a name or a full reference can mean: the one named in full,
    or a cluster of that name in each of these places."""
    if is_full_ref(selector):
        return [ClusterRef.parse(selector)]
    return [ClusterRef.at(place, selector) for place in places]
