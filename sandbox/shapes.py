"""What the sandbox, the demo and the tests write and read alike: a target
role's trust as its owner writes it, and a cluster's associations as EKS
describes them (one EKS client of the account the cluster is in)."""

from __future__ import annotations

from typing import Any


def target_trust(association_role: str, external_id: str | None) -> dict[str, Any]:
    """A target role's trust: the association role may assume it with session
    tags, under sts:ExternalId when one is given."""
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"AWS": association_role},
        "Action": ["sts:AssumeRole", "sts:TagSession"],
    }
    if external_id is not None:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return {"Version": "2012-10-17", "Statement": [statement]}


def described_associations(eks: Any, cluster: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(namespace, service account) -> the association, described."""
    found = {}
    for summary in eks.list_pod_identity_associations(clusterName=cluster)["associations"]:
        association = eks.describe_pod_identity_association(
            clusterName=cluster, associationId=summary["associationId"]
        )["association"]
        found[(association["namespace"], association["serviceAccount"])] = association
    return found
