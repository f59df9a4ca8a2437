"""The sandbox's queue poller decides when the queues are idle (the tests'
`settle`, waiting for a retried message): it must never call a queue empty
while a message is still in it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from sandbox.transport import SqsPoller

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


@dataclass
class AttributesCountedOneByOne:
    """SQS as moto serves GetQueueAttributes: each requested attribute is
    counted at its own instant (here one tick apart). One message was received
    and its visibility timeout ends at tick 1."""

    visible_from_tick: int = 1
    tick: int = 0
    calls: list[list[str]] = field(default_factory=list)

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict[str, Any]:
        self.calls.append(list(AttributeNames))
        counted = {}
        for name in AttributeNames:
            visible = self.tick >= self.visible_from_tick
            counted[name] = str(
                {
                    "ApproximateNumberOfMessages": int(visible),
                    "ApproximateNumberOfMessagesNotVisible": int(not visible),
                    "ApproximateNumberOfMessagesDelayed": 0,
                }[name]
            )
            self.tick += 1
        return {"Attributes": counted}


def as_sqs(fake: AttributesCountedOneByOne) -> SQSClient:
    """The fake has the one call the poller makes, not the whole client."""
    return cast("SQSClient", fake)


def test_a_message_whose_visibility_ends_while_counting_is_still_in_flight() -> None:
    sqs = AttributesCountedOneByOne()
    assert SqsPoller(as_sqs(sqs), "https://queue", "eu-west-1").in_flight() >= 1
    assert len(sqs.calls) == 2  # the states a message leaves first, then the visible ones


def test_a_message_visible_all_along_or_invisible_all_along_is_counted() -> None:
    for visible_from_tick in (0, 10):
        sqs = AttributesCountedOneByOne(visible_from_tick=visible_from_tick)
        assert SqsPoller(as_sqs(sqs), "https://queue", "eu-west-1").in_flight() == 1
