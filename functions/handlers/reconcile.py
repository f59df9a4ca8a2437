"""Schedule, EKS CloudTrail events (EventBridge) and per-cluster SQS messages
-> heal drift, enroll fleet members, forget deleted clusters."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.parser import ValidationError, parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.events import CloudTrailEvent, ClusterMessage, ScheduledEvent
from functions.flows.reconcile import on_eks_event, reconcile_cluster, scheduled_pass
from functions.flows.services import services
from functions.handlers.common import park
from functions.observability import logger, metrics, tracer

processor = BatchProcessor(event_type=EventType.SQS)


def _reconcile_message(record: SQSRecord) -> None:
    svc = services()
    try:
        message = ClusterMessage.model_validate_json(record.body)
    except ValidationError as error:
        park(svc, record.body, f"malformed reconcile message: {error}", "reconcile")
        return
    result = reconcile_cluster(svc, message)
    if result is not None and not result.ok:
        raise RuntimeError(f"cluster {message.cluster}: {result.failed}")


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "Records" in event:
        return dict(
            process_partial_response(
                event=event, record_handler=_reconcile_message, processor=processor, context=context
            )
        )
    svc = services()
    try:
        if event.get("detail-type") == "Scheduled Event":
            scheduled = parse(event=event, model=ScheduledEvent)
            summary = scheduled_pass(svc, deep=bool(scheduled.detail.get("deep", False)))
            return {
                "status": "scheduled",
                "clusters": summary.clusters,
                "fannedOut": summary.fanned_out,
            }
        parsed = parse(event=event, model=CloudTrailEvent)
    except ValidationError as error:
        park(svc, event, f"not a schedule nor a CloudTrail event: {error}", "reconcile")
        return {"status": "parked"}
    outcome = on_eks_event(svc, parsed.detail)
    return {"status": "handled" if outcome is not None else "ignored"}
