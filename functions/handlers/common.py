"""What every handler shares: parking unfixable input with its reason."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from functions.flows.services import Services
from functions.handlers.batch import SqsRecord
from functions.observability import logger, metrics


def park(svc: Services, payload: Any, reason: str, source: str) -> None:
    """Input that retrying can never fix goes to the dead-letter queue, with why.

    Without a dead-letter queue configured it is logged and counted, never lost
    silently."""
    logger.error("parked unprocessable input", reason=reason, source=source)
    metrics.add_metric(name="Parked", unit="Count", value=1)
    queue = svc.settings.dead_letter_queue_url
    if queue:
        svc.messenger.dead_letter(queue, payload, reason, source)


def final_attempt(svc: Services, record: SqsRecord) -> bool:
    """This delivery is the queue's last before its redrive moves the message
    to the dead-letter queue (which carries no reason)."""
    return record.receive_count >= svc.settings.max_receive_count


def run_or_park(svc: Services, record: SqsRecord, work: Callable[[], object], source: str) -> None:
    """Run the work; a failure is retried by the queue, and the last failure
    is parked with its reason instead of landing in the DLQ without one."""
    try:
        work()
    except Exception as error:
        if not final_attempt(svc, record):
            raise
        park(
            svc,
            record.body,
            f"gave up after {svc.settings.max_receive_count} attempts: "
            f"{type(error).__name__}: {error}",
            source,
        )
