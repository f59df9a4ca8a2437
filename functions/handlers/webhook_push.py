"""Per-cluster SQS messages -> push the association map to the cluster."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from functions.events import ClusterMessage
from functions.flows.push import push_map
from functions.flows.services import services
from functions.handlers.batch import SqsRecord, process
from functions.handlers.common import park, run_or_park
from functions.kube.configmap import KubeSetupError
from functions.observability import logger, metrics


def _push(record: SqsRecord) -> None:
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
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = event.get("Records", [])
    is_fifo = bool(records) and records[0].get("eventSourceARN", "").endswith(".fifo")
    # FIFO: a failed cluster holds back only its own later messages
    return process(event, SqsRecord, _push, skip_failed_groups=is_fifo)
