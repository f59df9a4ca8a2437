"""The CloudTrail events each function reacts to and the EventBridge patterns
that subscribe to them: one source of truth for the deployed rules
(infra/events.py), the sandbox's local router and the flows. Constants only:
it imports nothing of ours, so synth never loads boto3, Powertools or the
Kubernetes client through it."""

from __future__ import annotations

from typing import Any

# IAM changes that can alter what a declared role's trust allows
WATCHED_EVENTS = frozenset(
    {
        "CreateRole",
        "UpdateAssumeRolePolicy",
        "DeleteRole",
        "UpdateRole",
        "PutRolePermissionsBoundary",
        "DeleteRolePermissionsBoundary",
        "TagRole",
        "UntagRole",
    }
)
# hand-made association changes: drift to heal or report
ASSOCIATION_EVENTS = frozenset(
    {
        "CreatePodIdentityAssociation",
        "UpdatePodIdentityAssociation",
        "DeletePodIdentityAssociation",
    }
)
# fleet membership: clusters appear, go, or change their fleet tag
CLUSTER_EVENTS = frozenset({"CreateCluster", "DeleteCluster", "TagResource", "UntagResource"})

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

# Hub and spokes: each spoke's scheduled rule puts a "Scheduled Event" on the hub's
# bus; its rule name (in the event's resources) tells it from any other schedule.
SCHEDULED = "Scheduled Event"
SCHEDULER = "aws.events"
HEARTBEAT_SUFFIX = "-spoke-heartbeat"


def heartbeat_rule_name(hub_stack_name: str) -> str:
    """The spoke's heartbeat rule (at most 56 of EventBridge's 64 characters)."""
    return f"{hub_stack_name[:40]}{HEARTBEAT_SUFFIX}"


def spoke_heartbeats(hub_stack_name: str) -> dict[str, Any]:
    """The hub's pattern for its spokes' heartbeats, from any account and region
    its bus admits: the rule ARN ends in ":rule/<name>" (default bus)."""
    return {
        "source": [SCHEDULER],
        "detail-type": [SCHEDULED],
        "resources": [{"suffix": f":rule/{heartbeat_rule_name(hub_stack_name)}"}],
    }
