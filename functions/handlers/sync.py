"""DynamoDB stream of the table -> sync declarations onto their clusters."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.flows.services import services
from functions.flows.sync import SyncBatch
from functions.handlers.batch import StreamRecord, process
from functions.observability import logger, metrics


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    batch = SyncBatch(services())

    def record_handler(record: StreamRecord) -> None:
        batch.handle(record.keys, record.new_image, record.old_image)

    return process(event, StreamRecord, record_handler)
