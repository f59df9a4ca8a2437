"""Schedule, EKS CloudTrail events (EventBridge) and per-cluster SQS messages
-> heal drift, enroll fleet members, forget deleted clusters."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from functions.core.places import Place
from functions.events import CloudTrailEvent, ClusterMessage, ScheduledEvent
from functions.flows.reconcile import on_eks_event, reconcile_cluster, scheduled_pass
from functions.flows.services import services
from functions.flows.spokes import on_heartbeat
from functions.handlers.batch import SqsRecord, process
from functions.handlers.common import park, run_or_park
from functions.observability import logger, metrics


def _reconcile_message(record: SqsRecord) -> None:
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
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "Records" in event:
        records = event["Records"]
        is_fifo = bool(records) and records[0].get("eventSourceARN", "").endswith(".fifo")
        # FIFO grouped by cluster: a failed message holds back only its own cluster's later ones
        return process(event, SqsRecord, _reconcile_message, skip_failed_groups=is_fifo)
    svc = services()
    try:
        if event.get("detail-type") == "Scheduled Event":
            scheduled = ScheduledEvent.model_validate(event)
            place = Place(scheduled.account, scheduled.region)
            if place != svc.home:
                # a spoke's heartbeat (the hub's own schedule runs here, at home)
                found = on_heartbeat(svc, place, scheduled.time)
                return {
                    "status": "heartbeat",
                    "spoke": str(place),
                    "enrolled": [str(c) for c in found.enrolled] if found else [],
                }
            summary = scheduled_pass(svc, deep=bool(scheduled.detail.get("deep", False)))
            return {
                "status": "scheduled",
                "clusters": [str(c) for c in summary.clusters],
                "fannedOut": summary.fanned_out,
            }
        parsed = CloudTrailEvent.model_validate(event)
    except ValidationError as error:
        park(svc, event, f"not a schedule nor a CloudTrail event: {error}", "reconcile")
        return {"status": "parked"}
    handled = on_eks_event(svc, parsed.detail)
    return {"status": "handled" if handled else "ignored"}
