"""SQS, EventBridge and SNS: where the control plane tells others something."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from functions.core.association_map import canonical_json

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

_SQS_BATCH = 10


class Messenger:
    def __init__(self, sqs: SQSClient, events: EventBridgeClient, sns: SNSClient) -> None:
        self._sqs, self._events, self._sns = sqs, events, sns

    def enqueue_per_cluster(self, queue_url: str, messages: Iterable[dict[str, Any]]) -> int:
        """One message per cluster; FIFO queues group by cluster.

        Each message is its own intent: its de-duplication id is new, so two
        changes with the same body minutes apart are both delivered (SQS FIFO
        drops a repeated id for 5 minutes); an SDK retry of this very send
        reuses it and is de-duplicated, as it should be."""
        fifo = queue_url.endswith(".fifo")
        entries: list[SendMessageBatchRequestEntryTypeDef] = []
        for index, message in enumerate(messages):
            body = canonical_json(message)
            entry: SendMessageBatchRequestEntryTypeDef = {"Id": str(index), "MessageBody": body}
            if fifo:
                entry["MessageGroupId"] = message["cluster"]
                entry["MessageDeduplicationId"] = uuid.uuid4().hex
            entries.append(entry)
        for start in range(0, len(entries), _SQS_BATCH):
            response = self._sqs.send_message_batch(
                QueueUrl=queue_url, Entries=entries[start : start + _SQS_BATCH]
            )
            if response.get("Failed"):
                failed = ", ".join(
                    f"{f['Id']}: {f.get('Message', f['Code'])}" for f in response["Failed"]
                )
                raise RuntimeError(f"SQS refused messages: {failed}")
        return len(entries)

    def dead_letter(self, queue_url: str, payload: Any, reason: str, source: str) -> None:
        """A failure that retrying cannot fix: park it with the reason."""
        body = json.dumps({"reason": reason, "source": source, "payload": payload}, default=str)
        params: dict[str, Any] = {
            "QueueUrl": queue_url,
            "MessageBody": body,
            "MessageAttributes": {
                "reason": {"DataType": "String", "StringValue": reason[:1024]},
                "source": {"DataType": "String", "StringValue": source},
            },
        }
        if queue_url.endswith(".fifo"):
            params["MessageGroupId"] = source
            params["MessageDeduplicationId"] = uuid.uuid4().hex
        self._sqs.send_message(**params)

    def publish_event(
        self, bus: str, source: str, detail_type: str, detail: dict[str, Any]
    ) -> None:
        entries: list[PutEventsRequestEntryTypeDef] = [
            {
                "Source": source,
                "DetailType": detail_type,
                "Detail": json.dumps(detail, default=str),
                "EventBusName": bus,
            }
        ]
        response = self._events.put_events(Entries=entries)
        if response.get("FailedEntryCount"):
            raise RuntimeError(f"EventBridge refused the event: {response['Entries']}")

    def notify(self, topic_arn: str, subject: str, message: dict[str, Any]) -> None:
        self._sns.publish(
            TopicArn=topic_arn, Subject=subject[:100], Message=json.dumps(message, default=str)
        )
