"""Schedule, EKS CloudTrail events (EventBridge) and per-cluster SQS messages
-> heal drift, enroll fleet members, forget deleted clusters."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    SqsFifoPartialProcessor,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.parser import ValidationError, parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.events import CloudTrailEvent, ClusterMessage, ScheduledEvent
from functions.flows.reconcile import on_eks_event, reconcile_cluster, scheduled_pass
from functions.flows.services import services
from functions.handlers.common import park, run_or_park
from functions.observability import logger, metrics, tracer

standard = BatchProcessor(event_type=EventType.SQS)
# FIFO grouped by cluster: a failed message holds back only its own cluster's later ones.
fifo = SqsFifoPartialProcessor(skip_group_on_error=True)


def _reconcile_message(record: SQSRecord) -> None:
    svc = services()
    try:
        message = ClusterMessage.model_validate_json(record.body)
    except ValidationError as error:
        park(svc, record.body, f"malformed reconcile message: {error}", "reconcile")
        return

    def work() -> None:
        result = reconcile_cluster(svc, message)
        if result is not None and not result.ok:
            failed = "; ".join(f"{key}: {why}" for key, why in sorted(result.failed.items()))
            raise RuntimeError(f"cluster {message.cluster}: {failed}")

    run_or_park(svc, record, work, "reconcile")


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "Records" in event:
        records = event["Records"]
        is_fifo = bool(records) and records[0].get("eventSourceARN", "").endswith(".fifo")
        return dict(
            process_partial_response(
                event=event,
                record_handler=_reconcile_message,
                processor=fifo if is_fifo else standard,
                context=context,
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
    handled = on_eks_event(svc, parsed.detail)
    return {"status": "handled" if handled else "ignored"}
