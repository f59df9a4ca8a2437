"""Count AWS API calls per service and operation through botocore's events."""

from __future__ import annotations

from collections import Counter
from typing import Any

WRITE_PREFIXES = (
    "Create",
    "Update",
    "Delete",
    "Put",
    "Tag",
    "Untag",
    "BatchWrite",
    "Send",
    "Publish",
)


class CallCounter:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def attach(self, client: Any) -> None:
        service = client.meta.service_model.service_name
        client.meta.events.register(
            f"before-call.{client.meta.service_model.service_id.hyphenize()}",
            lambda model, **_: self.calls.update([f"{service}:{model.name}"]),
        )

    def reset(self) -> Counter[str]:
        snapshot = Counter(self.calls)
        self.calls.clear()
        return snapshot

    @staticmethod
    def writes(calls: Counter[str]) -> Counter[str]:
        return Counter(
            {k: v for k, v in calls.items() if k.split(":", 1)[1].startswith(WRITE_PREFIXES)}
        )

    @staticmethod
    def reads(calls: Counter[str], service: str) -> Counter[str]:
        return Counter(
            {
                k: v
                for k, v in calls.items()
                if k.startswith(service + ":") and k not in CallCounter.writes(calls)
            }
        )
