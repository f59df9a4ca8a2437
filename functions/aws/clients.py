"""boto3 clients, one per service, region and access per container, with
adaptive retries. Typed by boto3-stubs when type checking only: the Lambda
packages do not carry the stubs.

All clients share one session: a session keeps what botocore loads
from its data files (endpoint rules, partitions, service models), so each
further client costs a fraction of the first. A session per client reloaded
all of it: 3-4 times the CPU for the clients a first invocation builds
(benchmarks/package_cold_start.py, services() column). Credentials go to each
client, so a spoke's clients cost no new session either.

Clients are kept per (service, region, access); temporary credentials carry their
expiration, and the clients of expired ones are dropped whenever a client is made."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

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
    (the CLI on a sandbox, a spoke role's credentials): given to the clients, so
    nothing edits os.environ. An explicit endpoint also keeps botocore off
    account-ID endpoints. Temporary credentials carry their expiration: the
    clients made for them are dropped once it has passed."""

    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    expiration: datetime | None = None

    def expired(self, now: datetime) -> bool:
        return self.expiration is not None and self.expiration <= now

    def credentials(self) -> dict[str, str]:
        """Keyword arguments giving a client these credentials (none: the environment's)."""
        given = {
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "aws_session_token": self.session_token,
        }
        return {name: value for name, value in given.items() if value is not None}


class _Kept:
    """The one session and the clients made from it, per (service or table, region,
    access). The lock is never held while a client is made."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.session: boto3.session.Session | None = None
        self.clients: dict[_Key, BaseClient] = {}
        self.tables: dict[_Key, Table] = {}

    def shared_session(self) -> boto3.session.Session:
        with self.lock:
            if self.session is None:
                self.session = boto3.session.Session()
            return self.session

    def drop_expired(self, now: datetime) -> None:
        """Clients of expired credentials: refreshed spoke credentials come each
        hour, so without this the maps would grow for the life of the container."""
        for kept in (self.clients, self.tables):
            for key in [key for key in kept if key[2].expired(now)]:
                del kept[key]


# one per (service, region, access): None and Access() are the same process environment
_Key = tuple[str, str | None, Access]
_Made = TypeVar("_Made")
_kept = _Kept()


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


def _client(service: str, region: str | None, access: Access) -> BaseClient:
    key = (service, region, access)
    with _kept.lock:
        found = _kept.clients.get(key)
    if found is not None:
        return found
    session: Any = _kept.shared_session()  # the stubs type client() per literal service name
    with _making:
        made: BaseClient = session.client(
            service,
            region_name=region,
            config=RETRIES,
            endpoint_url=access.endpoint_url,
            **access.credentials(),
        )
    return _keep(_kept.clients, key, made)


def _table(name: str, region: str | None, access: Access) -> Table:
    key = (name, region, access)
    with _kept.lock:
        found = _kept.tables.get(key)
    if found is not None:
        return found
    session: Any = _kept.shared_session()
    with _making:
        resource = session.resource(
            "dynamodb",
            region_name=region,
            config=RETRIES,
            endpoint_url=access.endpoint_url,
            **access.credentials(),
        )
        made: Table = resource.Table(name)
    return _keep(_kept.tables, key, made)


def _keep(kept: dict[_Key, _Made], key: _Key, made: _Made) -> _Made:
    """Keep a new client (the first made wins a race) and drop those of expired
    credentials."""
    with _kept.lock:
        _kept.drop_expired(datetime.now(UTC))
        return kept.setdefault(key, made)


def cached_accesses() -> set[Access]:
    """The credentials clients are kept for (tests check expired ones are dropped)."""
    with _kept.lock:
        return {key[2] for key in (*_kept.clients, *_kept.tables)}


def reset() -> None:
    """Forget cached clients and the session (tests switch endpoints between cases)."""
    with _kept.lock:
        _kept.clients.clear()
        _kept.tables.clear()
        _kept.session = None
