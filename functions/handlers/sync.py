"""DynamoDB stream of the table -> sync declarations onto their clusters."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.flows.services import services
from functions.flows.sync import SyncBatch
from functions.observability import logger, metrics, tracer

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    batch = SyncBatch(services())

    def record_handler(record: DynamoDBRecord) -> None:
        image = record.dynamodb
        if image is None:
            return
        batch.handle(image.keys or {}, image.new_image, image.old_image)

    return dict(
        process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    )
