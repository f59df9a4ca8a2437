"""boto3 clients, one per service, region and access per container, with
adaptive retries. Typed by boto3-stubs when type checking only: the Lambda
packages do not carry the stubs.

Clients of one Access share one session: a session keeps what botocore loads
from its data files (endpoint rules, partitions, service models), so each
further client costs a fraction of the first. A session per client reloaded
all of it: 3-4 times the CPU for the clients a first invocation builds
(benchmarks/package_cold_start.py, services() column)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, cast

import boto3
from botocore.client import BaseClient
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.service_resource import Table
    from mypy_boto3_eks import EKSClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_organizations import OrganizationsClient
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
SERVICES = (
    "eks",
    "iam",
    "sqs",
    "events",
    "sns",
    "sts",
    "resourcegroupstaggingapi",
    "dynamodb",
    "organizations",
)


@dataclass(frozen=True)
class Access:
    """Where and as whom to call AWS when not as the process environment says
    (the CLI on a sandbox): given to the clients, so nothing edits os.environ.
    An explicit endpoint also keeps botocore off account-ID endpoints."""

    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)

    def session(self) -> boto3.session.Session:
        return _session(self)


@cache
def _session(access: Access) -> boto3.session.Session:
    return boto3.session.Session(
        aws_access_key_id=access.access_key_id, aws_secret_access_key=access.secret_access_key
    )


# a session is not thread-safe: clients are made one at a time
_making = threading.Lock()


def client(service: str, region: str | None = None, access: Access | None = None) -> BaseClient:
    """The cached client of a service the flows use, by name (tests and benchmarks
    attach event hooks to the very client the flows call)."""
    if service not in SERVICES:
        raise ValueError(f"no client for {service!r}: one of {sorted(SERVICES)}")
    return _client(service, region, access or Access())


def eks(region: str | None = None, access: Access | None = None) -> EKSClient:
    return cast("EKSClient", client("eks", region, access))


def iam(region: str | None = None, access: Access | None = None) -> IAMClient:
    return cast("IAMClient", client("iam", region, access))


def sqs(region: str | None = None, access: Access | None = None) -> SQSClient:
    return cast("SQSClient", client("sqs", region, access))


def events(region: str | None = None, access: Access | None = None) -> EventBridgeClient:
    return cast("EventBridgeClient", client("events", region, access))


def sns(region: str | None = None, access: Access | None = None) -> SNSClient:
    return cast("SNSClient", client("sns", region, access))


def sts(region: str | None = None, access: Access | None = None) -> STSClient:
    return cast("STSClient", client("sts", region, access))


def tagging(
    region: str | None = None, access: Access | None = None
) -> ResourceGroupsTaggingAPIClient:
    return cast(
        "ResourceGroupsTaggingAPIClient", client("resourcegroupstaggingapi", region, access)
    )


def organizations(region: str | None = None, access: Access | None = None) -> OrganizationsClient:
    return cast("OrganizationsClient", client("organizations", region, access))


def dynamodb(region: str | None = None, access: Access | None = None) -> DynamoDBClient:
    """A plain client (the table's own client serializes values itself)."""
    return cast("DynamoDBClient", client("dynamodb", region, access))


def table(name: str, region: str | None = None, access: Access | None = None) -> Table:
    return _table(name, region, access or Access())


# one per (service, region, access): None and Access() are the same process environment
@cache
def _client(service: str, region: str | None, access: Access) -> BaseClient:
    session: Any = access.session()  # the stubs type client() per literal service name only
    with _making:
        made: BaseClient = session.client(
            service, region_name=region, config=RETRIES, endpoint_url=access.endpoint_url
        )
    return made


@cache
def _table(name: str, region: str | None, access: Access) -> Table:
    with _making:
        resource = access.session().resource(
            "dynamodb", region_name=region, config=RETRIES, endpoint_url=access.endpoint_url
        )
        return resource.Table(name)


def reset() -> None:
    """Forget cached clients (tests switch endpoints between cases)."""
    _client.cache_clear()
    _table.cache_clear()
    _session.cache_clear()
