"""What every handler shares: parking unfixable input with its reason."""

from __future__ import annotations

from typing import Any

from functions.flows.services import Services
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
