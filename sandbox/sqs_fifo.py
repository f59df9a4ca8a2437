"""SQS FIFO de-duplication as real SQS does it, for moto.

Real SQS drops a FIFO message whose MessageDeduplicationId was already seen
in the last 5 minutes, whether or not that message is still in the queue;
moto only compares with the messages it still holds. The sandbox is the
contract the functions are tested against, so it keeps the 5-minute window.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from moto.sqs import models

WINDOW_SECONDS = 5 * 60
_seen: dict[tuple[str, str], float] = {}  # (queue arn, dedup id) -> first seen (monotonic)
_lock = threading.Lock()
_installed: list[bool] = []
DROPPED: list[tuple[str, str]] = []  # what the window dropped, for tests to see


def _first_in_window(queue: Any, dedup_id: str) -> bool:
    now = time.monotonic()
    key = (queue.queue_arn, dedup_id)
    with _lock:
        for old in [k for k, at in _seen.items() if now - at >= WINDOW_SECONDS]:
            del _seen[old]
        if key in _seen:
            DROPPED.append(key)
            return False
        _seen[key] = now
        return True


def install() -> None:
    if _installed:
        return
    original = models.Queue.add_message

    def add_message(self: Any, message: Any) -> None:
        if self.fifo_queue:
            dedup_id = message.deduplication_id
            if dedup_id and not _first_in_window(self, dedup_id):
                return
        original(self, message)

    models.Queue.add_message = add_message  # type: ignore[method-assign]
    _installed.append(True)


def reset() -> None:
    with _lock:
        _seen.clear()
        DROPPED.clear()
