"""Partial batch responses: which records Lambda is told to retry."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from functions.handlers.batch import BatchFailed, SqsRecord, StreamRecord, process


def sqs(
    message_id: str, body: str, group: str | None = None, received: str = "1"
) -> dict[str, Any]:
    attributes = {"ApproximateReceiveCount": received}
    if group is not None:
        attributes["MessageGroupId"] = group
    return {"messageId": message_id, "body": body, "attributes": attributes}


def failing_on(*bodies: str) -> tuple[list[str], Any]:
    ran: list[str] = []

    def work(record: SqsRecord) -> None:
        ran.append(record.body)
        if record.body in bodies:
            raise RuntimeError(f"boom {record.body}")

    return ran, work


def test_a_standard_queue_retries_only_the_failed_record() -> None:
    # Given three messages, the middle one failing
    ran, work = failing_on("b")
    event = {"Records": [sqs("1", "a"), sqs("2", "b"), sqs("3", "c")]}
    # When the batch is processed
    response = process(event, SqsRecord, work)
    # Then every record ran and only the failed one is named
    assert ran == ["a", "b", "c"]
    assert response == {"batchItemFailures": [{"itemIdentifier": "2"}]}


def test_a_fifo_failure_holds_back_only_its_own_group() -> None:
    # Given a FIFO batch where the first message of group x fails
    ran, work = failing_on("x1")
    event = {
        "Records": [
            sqs("1", "x1", group="x"),
            sqs("2", "y1", group="y"),
            sqs("3", "x2", group="x"),
            sqs("4", "y2", group="y"),
        ]
    }
    # When it is processed skipping failed groups
    response = process(event, SqsRecord, work, skip_failed_groups=True)
    # Then x's later message never ran (its order holds) and is retried; y went on
    assert ran == ["x1", "y1", "y2"]
    assert response == {"batchItemFailures": [{"itemIdentifier": "1"}, {"itemIdentifier": "3"}]}


def test_without_group_skipping_later_messages_of_a_group_still_run() -> None:
    ran, work = failing_on("x1")
    event = {"Records": [sqs("1", "x1", group="x"), sqs("2", "x2", group="x")]}
    response = process(event, SqsRecord, work)
    assert ran == ["x1", "x2"]
    assert response == {"batchItemFailures": [{"itemIdentifier": "1"}]}


def test_a_batch_where_every_record_failed_fails_the_invocation() -> None:
    # Given a FIFO batch whose first failure skips the rest of its group
    _, work = failing_on("x1")
    event = {"Records": [sqs("1", "x1", group="x"), sqs("2", "x2", group="x")]}
    # Then Lambda is told the whole batch failed (it retries it as a whole)
    with pytest.raises(BatchFailed, match="all 2 records"):
        process(event, SqsRecord, work, skip_failed_groups=True)


def test_an_empty_batch_reports_nothing() -> None:
    assert process({"Records": []}, SqsRecord, lambda _: None) == {"batchItemFailures": []}
    assert process({}, SqsRecord, lambda _: None) == {"batchItemFailures": []}


def test_an_sqs_record_carries_its_receive_count_and_group() -> None:
    record = SqsRecord.from_event(sqs("m", "{}", group="c1", received="4"))
    assert (record.message_id, record.body, record.receive_count, record.group_id) == (
        "m",
        "{}",
        4,
        "c1",
    )
    assert SqsRecord.from_event({"messageId": "m", "body": "x"}).receive_count == 1


def stream(
    sequence: str,
    keys: dict[str, Any],
    new: dict[str, Any] | None = None,
    old: dict[str, Any] | None = None,
) -> dict[str, Any]:
    change: dict[str, Any] = {"SequenceNumber": sequence, "Keys": keys}
    if new is not None:
        change["NewImage"] = new
    if old is not None:
        change["OldImage"] = old
    return {"eventName": "MODIFY", "dynamodb": change}


def test_stream_images_arrive_as_python_values() -> None:
    # Given a stream record in DynamoDB's JSON, one image missing (a new item)
    raw = stream(
        "100",
        {"pk": {"S": "DECL#a"}, "sk": {"S": "DECL"}},
        new={
            "version": {"N": "3"},
            "tags": {"M": {"team": {"S": "payments"}}},
            "clusters": {"L": [{"S": "c1"}, {"S": "c2"}]},
            "disableSessionTags": {"BOOL": True},
            "gone": {"NULL": True},
        },
    )
    record = StreamRecord.from_event(raw)
    # Then the images are plain Python, numbers as Decimal, the missing one empty
    assert record.sequence_number == "100"
    assert record.keys == {"pk": "DECL#a", "sk": "DECL"}
    assert record.new_image == {
        "version": Decimal(3),
        "tags": {"team": "payments"},
        "clusters": ["c1", "c2"],
        "disableSessionTags": True,
        "gone": None,
    }
    assert record.old_image == {}


def test_a_failed_stream_record_is_named_by_its_sequence_number() -> None:
    seen: list[str] = []

    def work(record: StreamRecord) -> None:
        seen.append(record.keys["pk"])
        if record.keys["pk"] == "b":
            raise ValueError("bad item")

    event = {"Records": [stream("1", {"pk": {"S": "a"}}), stream("2", {"pk": {"S": "b"}})]}
    assert process(event, StreamRecord, work) == {"batchItemFailures": [{"itemIdentifier": "2"}]}
    assert seen == ["a", "b"]
