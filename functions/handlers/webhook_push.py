"""Per-cluster SQS messages -> push the association map to the cluster."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    SqsFifoPartialProcessor,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.parser import ValidationError
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.events import ClusterMessage
from functions.flows.push import push_map
from functions.flows.services import services
from functions.handlers.common import park, run_or_park
from functions.kube.configmap import KubeSetupError
from functions.observability import logger, metrics, tracer

standard = BatchProcessor(event_type=EventType.SQS)
# FIFO: a failed cluster holds back only its own later messages.
fifo = SqsFifoPartialProcessor(skip_group_on_error=True)


def _push(record: SQSRecord) -> None:
    svc = services()
    try:
        message = ClusterMessage.model_validate_json(record.body)
    except ValidationError as error:
        park(svc, record.body, f"malformed push message: {error}", "webhook_push")
        return
    try:
        run_or_park(svc, record, lambda: push_map(svc, message), "webhook_push")
    except KubeSetupError as error:
        # retrying cannot fix access or a missing ConfigMap; the next change re-enqueues
        park(svc, record.body, str(error), "webhook_push")


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = event.get("Records", [])
    is_fifo = bool(records) and records[0].get("eventSourceARN", "").endswith(".fifo")
    return dict(
        process_partial_response(
            event=event,
            record_handler=_push,
            processor=fifo if is_fifo else standard,
            context=context,
        )
    )
