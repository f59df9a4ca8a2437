"""Spoke heartbeats: an account joins by deploying the spoke, whose scheduled rule
tells the hub where it is. Pure: the event in, the place it announces out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core.arns import parse_arn
from functions.core.places import Place
from functions.event_patterns import SCHEDULED, SCHEDULER


def spoke_heartbeat(event: Mapping[str, Any], rule_name: str) -> Place | None:
    """The (account, region) a spoke heartbeat comes from; None for any other event
    (the hub's own schedule, a CloudTrail event, another spoke rule's schedule).

    Raises ValueError for a heartbeat whose rule ARN names another account or region
    than the event says: EventBridge never delivers one, so it is not acted on."""
    if event.get("source") != SCHEDULER or event.get("detail-type") != SCHEDULED:
        return None
    resources = event.get("resources")
    if not isinstance(resources, list):
        return None
    suffix = f":rule/{rule_name}"
    rules = [arn for arn in resources if isinstance(arn, str) and arn.endswith(suffix)]
    if not rules:
        return None
    place = Place.checked(str(event.get("account")), str(event.get("region")))
    for arn in rules:
        rule = parse_arn(arn)
        if (rule.service, rule.account, rule.region) != ("events", *place):
            raise ValueError(
                f"heartbeat rule {arn!r} is not in the event's account and region ({place}): "
                "a spoke's heartbeat names its own rule"
            )
    return place
