"""The EventBridge patterns each function subscribes to: one source of truth
for the deployed rules (infra/events.py) and the sandbox's local router."""

from __future__ import annotations

from typing import Any

from functions.flows.reconcile import ASSOCIATION_EVENTS, CLUSTER_EVENTS
from functions.flows.trust_guard import WATCHED_EVENTS

CLOUDTRAIL = "AWS API Call via CloudTrail"

IAM_CHANGES: dict[str, Any] = {
    "source": ["aws.iam"],
    "detail-type": [CLOUDTRAIL],
    "detail": {"eventSource": ["iam.amazonaws.com"], "eventName": sorted(WATCHED_EVENTS)},
}
EKS_CHANGES: dict[str, Any] = {
    "source": ["aws.eks"],
    "detail-type": [CLOUDTRAIL],
    "detail": {
        "eventSource": ["eks.amazonaws.com"],
        "eventName": sorted(ASSOCIATION_EVENTS | CLUSTER_EVENTS),
    },
}
