"""boto3 clients, one per service per container, with adaptive retries. Typed by
boto3-stubs when type checking only: the Lambda packages do not carry the stubs."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING

import boto3
from botocore.client import BaseClient
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table
    from mypy_boto3_eks import EKSClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_resourcegroupstaggingapi import ResourceGroupsTaggingAPIClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sts import STSClient

RETRIES = Config(
    retries={"mode": "adaptive"},  # attempts: AWS_MAX_ATTEMPTS (set per function by the stack)
    connect_timeout=5,
    read_timeout=20,
    user_agent_extra="podid-control-plane",
)


def _session() -> boto3.session.Session:
    return boto3.session.Session()


@cache
def eks(region: str | None = None) -> EKSClient:
    return _session().client("eks", region_name=region, config=RETRIES)


@cache
def iam(region: str | None = None) -> IAMClient:
    return _session().client("iam", region_name=region, config=RETRIES)


@cache
def sqs(region: str | None = None) -> SQSClient:
    return _session().client("sqs", region_name=region, config=RETRIES)


@cache
def events(region: str | None = None) -> EventBridgeClient:
    return _session().client("events", region_name=region, config=RETRIES)


@cache
def sns(region: str | None = None) -> SNSClient:
    return _session().client("sns", region_name=region, config=RETRIES)


@cache
def sts(region: str | None = None) -> STSClient:
    return _session().client("sts", region_name=region, config=RETRIES)


@cache
def tagging(region: str | None = None) -> ResourceGroupsTaggingAPIClient:
    return _session().client("resourcegroupstaggingapi", region_name=region, config=RETRIES)


@cache
def table(name: str, region: str | None = None) -> Table:
    return _session().resource("dynamodb", region_name=region, config=RETRIES).Table(name)


_BY_NAME: dict[str, Callable[[str | None], BaseClient]] = {
    "eks": eks,
    "iam": iam,
    "sqs": sqs,
    "events": events,
    "sns": sns,
    "sts": sts,
    "resourcegroupstaggingapi": tagging,
}


def client(service: str, region: str | None = None) -> BaseClient:
    """The cached client of a service the flows use, by name (tests and benchmarks
    attach event hooks to the very client the flows call)."""
    try:
        factory = _BY_NAME[service]
    except KeyError:
        raise ValueError(f"no client for {service!r}: one of {sorted(_BY_NAME)}") from None
    return factory(region)


def reset() -> None:
    """Forget cached clients (tests switch endpoints between cases)."""
    for factory in (eks, iam, sqs, events, sns, sts, tagging, table):
        factory.cache_clear()
