"""boto3 clients, one per service per container, with adaptive retries."""

from __future__ import annotations

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


@cache
def client(service: str, region: str | None = None) -> Any:
    session: Any = boto3.session.Session()
    return session.client(service, region_name=region, config=RETRIES)


@cache
def table(name: str, region: str | None = None) -> Any:
    return (
        boto3.session.Session().resource("dynamodb", region_name=region, config=RETRIES).Table(name)
    )


def reset() -> None:
    """Forget cached clients (tests switch endpoints between cases)."""
    client.cache_clear()
    table.cache_clear()
