"""CloudTrail IAM events (EventBridge) and the schedule -> check, report and maybe
repair trust."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent,
)
from aws_lambda_powertools.utilities.parser import ValidationError, parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.aws.clients import RETRIES
from functions.core import records
from functions.events import CloudTrailEvent, ScheduledEvent
from functions.flows.services import services
from functions.flows.trust_guard import on_iam_event, sweep
from functions.handlers.common import park
from functions.observability import logger, metrics, tracer
from functions.settings import get_settings

# The same CloudTrail event (or scheduled event) delivered twice is handled once.
persistence = DynamoDBPersistenceLayer(
    table_name=get_settings().table_name,
    key_attr=records.PK,
    sort_key_attr=records.SK,
    static_pk_value=records.TRUST_GUARD_IDEMPOTENCY_PK,
    expiry_attr=records.TTL_ATTRIBUTE,
    boto_config=RETRIES,
)
config = IdempotencyConfig(
    event_key_jmespath="detail.eventID || id", expires_after_seconds=6 * 3600
)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@idempotent(persistence_store=persistence, config=config)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    svc = services()
    try:
        if event.get("detail-type") == "Scheduled Event":
            parse(event=event, model=ScheduledEvent)
            outcomes = sweep(svc)
            return {
                "status": "swept",
                "roles": len(outcomes),
                "changed": [o.role_arn for o in outcomes if o.skipped is None],
            }
        parsed = parse(event=event, model=CloudTrailEvent)
    except ValidationError as error:
        park(svc, event, f"not a schedule nor a CloudTrail event: {error}", "trust_guard")
        return {"status": "parked"}
    outcome = on_iam_event(svc, parsed.detail)
    if outcome is None or outcome.record is None:
        return {"status": "ignored"}
    return {
        "status": "unchanged" if outcome.skipped else "checked",
        "role": outcome.role_arn,
        "action": outcome.record.action.value,
        "findings": [f.code for f in outcome.record.findings],
    }
