"""CloudTrail IAM events (EventBridge) and the schedule -> check, report and maybe
repair trust."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from functions.aws import clients
from functions.core import records
from functions.events import CloudTrailEvent, ScheduledEvent
from functions.flows.services import services
from functions.flows.trust_guard import on_iam_event, sweep
from functions.handlers.common import park
from functions.observability import logger, metrics
from functions.settings import get_settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

config = IdempotencyConfig(
    event_key_jmespath="detail.eventID || id", expires_after_seconds=6 * 3600
)


@lru_cache(maxsize=2)
def _once(
    table_name: str, dynamodb: DynamoDBClient
) -> Callable[[dict[str, Any], LambdaContext], dict[str, Any]]:
    """The same CloudTrail event (or scheduled event) delivered twice is handled
    once. Built on the first invocation with the DynamoDB client the flows'
    clients share (not its own session at import), and again when the
    configuration or the clients change (keyed by both)."""
    persistence = DynamoDBPersistenceLayer(
        table_name=table_name,
        key_attr=records.PK,
        sort_key_attr=records.SK,
        static_pk_value=records.TRUST_GUARD_IDEMPOTENCY_PK,
        expiry_attr=records.TTL_ATTRIBUTE,
        boto3_client=dynamodb,
    )
    return idempotent(persistence_store=persistence, config=config)(_guard)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    return _once(settings.table_name, clients.dynamodb(settings.aws_region))(event, context)


def _guard(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    svc = services()
    try:
        if event.get("detail-type") == "Scheduled Event":
            ScheduledEvent.model_validate(event)
            outcomes = sweep(svc)
            return {
                "status": "swept",
                "roles": len(outcomes),
                "changed": [o.role_arn for o in outcomes if o.skipped is None],
            }
        parsed = CloudTrailEvent.model_validate(event)
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
