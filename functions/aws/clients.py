"""boto3 clients, one per service per container, with adaptive retries."""

from __future__ import annotations

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
        return boto3.session.Session(
            aws_access_key_id=self.access_key_id, aws_secret_access_key=self.secret_access_key
        )


def client(service: str, region: str | None = None, access: Access | None = None) -> Any:
    return _client(service, region, access or Access())


def table(name: str, region: str | None = None, access: Access | None = None) -> Any:
    return _table(name, region, access or Access())


# one per (service, region, access): None and Access() are the same process environment
@cache
def _client(service: str, region: str | None, access: Access) -> Any:
    return access.session().client(
        service, region_name=region, config=RETRIES, endpoint_url=access.endpoint_url
    )


@cache
def _table(name: str, region: str | None, access: Access) -> Any:
    resource = access.session().resource(
        "dynamodb", region_name=region, config=RETRIES, endpoint_url=access.endpoint_url
    )
    return resource.Table(name)


def reset() -> None:
    """Forget cached clients (tests switch endpoints between cases)."""
    _client.cache_clear()
    _table.cache_clear()
