"""boto3 clients, one per service per container, with adaptive retries.

They share one session: a session keeps what botocore loads from its data
files (endpoint rules, partitions, service models), so each further client
costs a fraction of the first. A session per client reloaded all of it: about
1 s of CPU for the eight clients a first invocation builds, against 0.2 s.
"""

from __future__ import annotations

import threading
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


# a session is not thread-safe: clients are made one at a time
_making = threading.Lock()


@cache
def session() -> Any:
    return boto3.session.Session()


@cache
def client(service: str, region: str | None = None) -> Any:
    with _making:
        return session().client(service, region_name=region, config=RETRIES)


@cache
def table(name: str, region: str | None = None) -> Any:
    with _making:
        return session().resource("dynamodb", region_name=region, config=RETRIES).Table(name)


def reset() -> None:
    """Forget cached clients (tests switch endpoints between cases)."""
    client.cache_clear()
    table.cache_clear()
    session.cache_clear()
