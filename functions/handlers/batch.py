"""Partial batch responses (ReportBatchItemFailures) for SQS queues, standard
and FIFO, and DynamoDB streams: Lambda retries only the records a response
names.

Our own few lines instead of Powertools' batch utility, which loads every
event source's data classes, its parser models and asyncio at cold start
(about 100 ms, more than anything else a handler imports after boto3 and
pydantic) for the three record shapes used here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from boto3.dynamodb.types import TypeDeserializer

from functions.observability import logger

_deserializer = TypeDeserializer()


class BatchFailed(Exception):
    """Every record failed: the invocation fails and Lambda retries the batch."""


@dataclass(frozen=True)
class SqsRecord:
    message_id: str
    body: str
    # how many times the queue has delivered this message, this time included
    receive_count: int
    group_id: str | None  # FIFO queues only

    @classmethod
    def from_event(cls, raw: dict[str, Any]) -> SqsRecord:
        attributes = raw.get("attributes") or {}
        return cls(
            message_id=raw["messageId"],
            body=raw.get("body") or "",
            receive_count=int(attributes.get("ApproximateReceiveCount") or 1),
            group_id=attributes.get("MessageGroupId"),
        )


@dataclass(frozen=True)
class StreamRecord:
    """A DynamoDB stream record, its images as Python values (numbers as Decimal)."""

    sequence_number: str
    keys: dict[str, Any]
    new_image: dict[str, Any]  # {} when the item was removed
    old_image: dict[str, Any]  # {} when the item is new

    @classmethod
    def from_event(cls, raw: dict[str, Any]) -> StreamRecord:
        change = raw["dynamodb"]

        def image(name: str) -> dict[str, Any]:
            return {k: _deserializer.deserialize(v) for k, v in (change.get(name) or {}).items()}

        return cls(change["SequenceNumber"], image("Keys"), image("NewImage"), image("OldImage"))


R = TypeVar("R", SqsRecord, StreamRecord)


def _identity(raw: dict[str, Any]) -> str:
    return str(raw.get("messageId") or (raw.get("dynamodb") or {}).get("SequenceNumber"))


def process(
    event: dict[str, Any],
    kind: type[R],
    work: Callable[[R], object],
    *,
    skip_failed_groups: bool = False,
) -> dict[str, Any]:
    """Run `work` on each record in order and name the ones that failed.

    With `skip_failed_groups` (FIFO queues), a record whose message group has
    already failed in this batch is not run but reported failed, so its group
    keeps its order; other groups go on."""
    records: list[dict[str, Any]] = list(event.get("Records") or [])
    failed: list[str] = []
    failed_groups: set[str] = set()
    for raw in records:
        group = (raw.get("attributes") or {}).get("MessageGroupId")
        if skip_failed_groups and group in failed_groups:
            failed.append(_identity(raw))
            continue
        try:
            work(kind.from_event(raw))
        except Exception:
            logger.exception("record failed", record=_identity(raw))
            failed.append(_identity(raw))
            if group is not None:
                failed_groups.add(group)
    if records and len(failed) == len(records):
        raise BatchFailed(f"all {len(records)} records failed processing")
    return {"batchItemFailures": [{"itemIdentifier": item} for item in failed]}
