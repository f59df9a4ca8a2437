"""The event sources Lambda provides in AWS, done locally with the same shapes.

* `StreamTailer`: reads a DynamoDB stream shard by shard with iterators, as
  the event source mapping does, and hands out `{"Records": [...]}` events in
  the Lambda shape; a partial batch failure re-delivers from the first failed
  record, up to a retry limit, then the batch goes to `on_failure`.
* `SqsPoller`: receives messages and hands them out as Lambda SQS events,
  deleting only the ones the handler did not report as failed; a failed
  message stays invisible for the queue's visibility timeout, as in SQS, and
  its redrive policy moves it to the dead-letter queue after maxReceiveCount.
* `eventbridge_event` / `cloudtrail_event` / `scheduled_event`: the envelopes
  EventBridge delivers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sandbox import arns

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_dynamodbstreams.literals import ShardIteratorTypeType
    from mypy_boto3_dynamodbstreams.type_defs import RecordTypeDef
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType
    from mypy_boto3_sqs.type_defs import DeleteMessageBatchRequestEntryTypeDef

Handler = Callable[[dict[str, Any], Any], Any]
logger = logging.getLogger(__name__)


@dataclass
class LambdaContext:
    """What the Lambda runtime passes as `context` (the fields Powertools reads)."""

    function_name: str = "podid-local"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:podid-local"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/podid-local"
    log_stream_name: str = "local"
    deadline_ms: int = 900_000

    def get_remaining_time_in_millis(self) -> int:
        return self.deadline_ms


def _epoch(value: Any) -> Any:
    return value.timestamp() if isinstance(value, datetime) else value


@dataclass
class StreamTailer:
    streams: DynamoDBStreamsClient
    stream_arn: str
    region: str
    start: ShardIteratorTypeType = "TRIM_HORIZON"
    batch_size: int = 100
    max_retries: int = 3
    _iterators: dict[str, str | None] = field(default_factory=dict)
    _pending: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _attempts: dict[str, int] = field(default_factory=dict)

    def _shards(self) -> list[str]:
        description = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        return [s["ShardId"] for s in description["Shards"]]

    def _iterator(self, shard: str) -> str | None:
        if shard not in self._iterators:
            self._iterators[shard] = self.streams.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=shard, ShardIteratorType=self.start
            )["ShardIterator"]
        return self._iterators[shard]

    def _read(self, shard: str) -> list[dict[str, Any]]:
        pending = self._pending.get(shard)
        if pending:
            return pending
        iterator = self._iterator(shard)
        if iterator is None:
            return []
        page = self.streams.get_records(ShardIterator=iterator, Limit=self.batch_size)
        self._iterators[shard] = page.get("NextShardIterator")
        records = [self._lambda_record(r) for r in page.get("Records", [])]
        self._pending[shard] = records
        return records

    def _lambda_record(self, record: RecordTypeDef) -> dict[str, Any]:
        dynamodb = dict(record["dynamodb"])
        if "ApproximateCreationDateTime" in dynamodb:
            dynamodb["ApproximateCreationDateTime"] = _epoch(
                dynamodb["ApproximateCreationDateTime"]
            )
        return {
            "eventID": record["eventID"],
            "eventName": record["eventName"],
            "eventVersion": record.get("eventVersion", "1.1"),
            "eventSource": "aws:dynamodb",
            "awsRegion": self.region,
            "dynamodb": dynamodb,
            "eventSourceARN": self.stream_arn,
        }

    def deliver(
        self, handler: Handler, on_failure: Callable[[dict[str, Any], str], None] | None = None
    ) -> int:
        """One poll of every shard; returns how many records were handed over."""
        delivered = 0
        for shard in self._shards():
            records = self._read(shard)
            if not records:
                continue
            delivered += len(records)
            failures = _failed_items(handler, records, lambda r: r["dynamodb"]["SequenceNumber"])
            if not failures:
                self._pending[shard], self._attempts[shard] = [], 0
                continue
            first = min(failures)  # sequence numbers: retry from the earliest failure
            self._attempts[shard] = self._attempts.get(shard, 0) + 1
            retry = [r for r in records if r["dynamodb"]["SequenceNumber"] >= first]
            if self._attempts[shard] > self.max_retries:
                if on_failure:
                    on_failure({"Records": retry}, f"retries exhausted at sequence {first}")
                self._pending[shard], self._attempts[shard] = [], 0
            else:
                self._pending[shard] = retry
        return delivered

    def drain(self, handler: Handler, *, rounds: int = 20) -> int:
        return _drain(lambda: self.deliver(handler), rounds)


@dataclass
class SqsPoller:
    sqs: SQSClient
    queue_url: str
    region: str
    batch_size: int = 10

    @property
    def queue_arn(self) -> str:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
        )
        return str(attributes["Attributes"]["QueueArn"])

    def deliver(self, handler: Handler) -> int:
        received = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        if not received:
            return 0
        arn = self.queue_arn
        records: list[dict[str, Any]] = [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m.get("MD5OfBody", hashlib.md5(m["Body"].encode()).hexdigest()),  # noqa: S324
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": self.region,
            }
            for m in received
        ]
        failed = set(_failed_items(handler, records, lambda r: r["messageId"]))
        done: list[DeleteMessageBatchRequestEntryTypeDef] = [
            {"Id": str(i), "ReceiptHandle": r["receiptHandle"]}
            for i, r in enumerate(records)
            if r["messageId"] not in failed
        ]
        if done:
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=done)
        return len(records)

    def in_flight(self) -> int:
        """Messages queued, delayed or received and not yet deleted (at least once each).

        moto counts each attribute at its own instant, so one call asking for the
        visible and the invisible counts can miss a message whose visibility timeout
        ends in between. With no other consumer a message only leaves the delayed
        and invisible states, never enters them: ask for those first, then in a
        second call for the visible ones, and every message is seen."""
        leaving = self._counts(
            "ApproximateNumberOfMessagesDelayed", "ApproximateNumberOfMessagesNotVisible"
        )
        return leaving + self._counts("ApproximateNumberOfMessages")

    def _counts(self, *names: QueueAttributeNameType) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=list(names)
        )["Attributes"]
        return sum(int(attributes.get(name) or 0) for name in names)

    def drain(self, handler: Handler, *, rounds: int = 50) -> int:
        return _drain(lambda: self.deliver(handler), rounds)


def _drain(deliver: Callable[[], int], rounds: int) -> int:
    """Deliver until a round finds nothing (bounded): what a poller does all day."""
    total = 0
    for _ in range(rounds):
        delivered = deliver()
        total += delivered
        if not delivered:
            break
    return total


def _failed_items(
    handler: Handler, records: list[dict[str, Any]], identify: Callable[[dict[str, Any]], str]
) -> list[str]:
    """Invoke like Lambda: a raised error fails the whole batch, otherwise the
    reported batchItemFailures fail."""
    try:
        response = handler({"Records": records}, LambdaContext()) or {}
    except Exception:  # the runtime turns any error into a failed batch
        logger.exception("handler failed the whole batch")
        return [identify(r) for r in records]
    return [f["itemIdentifier"] for f in response.get("batchItemFailures", [])]


def eventbridge_event(
    source: str, detail_type: str, detail: dict[str, Any], *, account: str, region: str
) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [],
        "detail": detail,
    }


def cloudtrail_event(
    service: str,
    event_name: str,
    *,
    request_parameters: dict[str, Any] | None,
    response_elements: dict[str, Any] | None,
    caller_arn: str,
    account: str,
    region: str,
    error_code: str | None = None,
) -> dict[str, Any]:
    """A CloudTrail management event as EventBridge delivers it
    (detail-type "AWS API Call via CloudTrail")."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    identity: dict[str, Any] = {"accountId": account, "arn": caller_arn}
    caller = arns.parse(caller_arn)
    # IAM is global: its events are recorded in the partition's IAM signing region
    recorded_in = arns.global_region("iam", caller.partition) if service == "iam" else region
    if caller.resource.startswith("assumed-role/"):
        role_name, session = arns.session_of(caller_arn)
        role_arn = arns.role_arn(caller.partition, account, role_name)
        identity |= {
            "type": "AssumedRole",
            "principalId": f"{_role_id(role_arn)}:{session}",
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "arn": role_arn,
                    "accountId": account,
                    "userName": role_name,
                },
                "attributes": {"creationDate": now, "mfaAuthenticated": "false"},
            },
        }
    else:
        identity |= {
            "type": "IAMUser",
            "principalId": "AIDA" + "0" * 16,
            "userName": caller.resource_name,
        }
    detail: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": identity,
        "eventTime": now,
        "eventSource": f"{service}.amazonaws.com",
        "eventName": event_name,
        "awsRegion": recorded_in,
        "sourceIPAddress": "203.0.113.10",
        "userAgent": "podid-sandbox",
        "requestParameters": request_parameters,
        "responseElements": response_elements,
        "requestID": str(uuid.uuid4()),
        "eventID": str(uuid.uuid4()),
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
    }
    if error_code:
        detail["errorCode"] = error_code
        detail["errorMessage"] = error_code
    return eventbridge_event(
        f"aws.{service}",
        "AWS API Call via CloudTrail",
        json.loads(json.dumps(detail, default=str)),
        account=account,
        region=recorded_in,
    )


def _role_id(role_arn: str) -> str:
    """A stable AROA... id for a role, shaped like IAM's."""
    return "AROA" + hashlib.sha256(role_arn.encode()).hexdigest()[:16].upper()


def scheduled_event(
    rule_arn: str, *, account: str, region: str, deep: bool = False
) -> dict[str, Any]:
    event = eventbridge_event(
        "aws.events",
        "Scheduled Event",
        {"deep": deep} if deep else {},
        account=account,
        region=region,
    )
    event["resources"] = [rule_arn]
    return event
