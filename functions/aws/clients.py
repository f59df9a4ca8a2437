"""boto3 clients, one per service per container, with adaptive retries.

Clients of one Access share one session: a session keeps what botocore loads
from its data files (endpoint rules, partitions, service models), so each
further client costs a fraction of the first. A session per client reloaded
all of it: about four times the CPU for the eight clients a first invocation
builds (benchmarks/package_cold_start.py, services() column).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

RETRIES = Config(
    retries={"mode": "adaptive"},  # attempts: AWS_MAX_ATTEMPTS (set per function by the stack)
    connect_timeout=5,
    read_timeout=20,
    user_agent_extra="podid-control-plane",
)


@dataclass(frozen=True)
class Access:
    """Where and as whom to call AWS when not as the process environment says
    (the CLI on a sandbox): given to the clients, so nothing edits os.environ.
    An explicit endpoint also keeps botocore off account-ID endpoints."""

    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)

    def session(self) -> Any:
        return _session(self)


@cache
def _session(access: Access) -> Any:
    return boto3.session.Session(
        aws_access_key_id=access.access_key_id, aws_secret_access_key=access.secret_access_key
    )


# a session is not thread-safe: clients are made one at a time
_making = threading.Lock()


def client(service: str, region: str | None = None, access: Access | None = None) -> Any:
    return _client(service, region, access or Access())


def table(name: str, region: str | None = None, access: Access | None = None) -> Any:
    return _table(name, region, access or Access())


# one per (service, region, access): None and Access() are the same process environment
@cache
def _client(service: str, region: str | None, access: Access) -> Any:
    with _making:
        return access.session().client(
            service, region_name=region, config=RETRIES, endpoint_url=access.endpoint_url
        )


@cache
def _table(name: str, region: str | None, access: Access) -> Any:
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
