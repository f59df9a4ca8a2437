"""The statements podid writes, and how it recognises them later.

A grant (Sid `PodidGrant…`) admits one declared (namespace, service account)
from the listed cluster ARNs, nothing else: IAM cannot correlate two keys of
one condition block across statements, so each pair gets its own statement
(a namespace list and a service-account list in one block would admit their
cross product). A scoped copy (Sid `PodidScoped…`) is a statement the role's
owner wrote, narrowed by hardening to one such pair.

The conditions podid added to its own statements are the only ones it may
treat as not the owner's: a usage failing only those is missing, not excluded.
Renaming a Sid makes the statement the owner's.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable
from typing import Any

from functions.core.trust.conditions import (
    SOURCE_ACCOUNT,
    TAG_CLUSTER_ARN,
    TAG_NAMESPACE,
    TAG_SERVICE_ACCOUNT,
    Tri,
    Usage,
    evaluate,
    request_context,
)
from functions.core.trust.document import (
    ASSUME_ROLE,
    POD_PRINCIPAL,
    TAG_SESSION,
    StatementView,
    as_list,
)

GRANT_SID = "PodidGrant"
SCOPED_SID = "PodidScoped"
EQUALS = "StringEquals"
CANONICAL = {
    SOURCE_ACCOUNT: "aws:SourceAccount",
    TAG_CLUSTER_ARN: "aws:RequestTag/eks-cluster-arn",
    TAG_NAMESPACE: "aws:RequestTag/kubernetes-namespace",
    TAG_SERVICE_ACCOUNT: "aws:RequestTag/kubernetes-service-account",
}
SCOPING_KEYS = frozenset({TAG_CLUSTER_ARN, TAG_NAMESPACE, TAG_SERVICE_ACCOUNT})
_GRANT_KEYS = frozenset({(EQUALS, k) for k in (SOURCE_ACCOUNT, *SCOPING_KEYS)})
_SCOPED_KEYS = frozenset({(EQUALS, k) for k in SCOPING_KEYS})

Pair = tuple[str, str]  # (namespace, service account)


def _sid(prefix: str, namespace: str, service_account: str) -> str:
    digest = hashlib.sha256(f"{namespace}/{service_account}".encode()).hexdigest()
    return f"{prefix}{digest[:10]}"


def grant_sid(usage: Usage) -> str:
    return _sid(GRANT_SID, usage.namespace, usage.service_account)


def scoped_sid(pair: Pair) -> str:
    return _sid(SCOPED_SID, *pair)


def podid_keys(view: StatementView) -> frozenset[tuple[str, str]]:
    """(operator, lower-cased key) of the conditions podid wrote in this statement."""
    sid = str(view.raw.get("Sid", ""))
    if not (view.allows and view.is_pods_only):
        return frozenset()
    if sid.startswith(GRANT_SID):
        return _GRANT_KEYS
    return _SCOPED_KEYS if sid.startswith(SCOPED_SID) else frozenset()


def is_podid(view: StatementView) -> bool:
    return bool(podid_keys(view))


def only_podid_conditions_fail(view: StatementView, failing: Iterable[tuple[str, str]]) -> bool:
    keys = podid_keys(view)
    return bool(keys) and all((op, key.lower()) in keys for op, key in failing)


def _one_or_list(values: list[str]) -> str | list[str]:
    return values[0] if len(values) == 1 else values


def grant_statement(sid: str, usage: Usage) -> dict[str, Any]:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"Service": POD_PRINCIPAL},
        "Action": [ASSUME_ROLE, TAG_SESSION],
        "Condition": {
            EQUALS: {
                CANONICAL[SOURCE_ACCOUNT]: usage.account,
                CANONICAL[TAG_CLUSTER_ARN]: usage.cluster_arn,
                CANONICAL[TAG_NAMESPACE]: usage.namespace,
                CANONICAL[TAG_SERVICE_ACCOUNT]: usage.service_account,
            }
        },
    }


def find_grant(statements: list[dict[str, Any]], usage: Usage) -> dict[str, Any] | None:
    """podid's grant for the usage's account, namespace and service account, as podid
    wrote it (a grant someone edited is not extended: a new one is added)."""
    for statement in statements:
        if not str(statement.get("Sid", "")).startswith(GRANT_SID):
            continue
        if statement.get("Effect") != "Allow" or statement.get("Principal") != {
            "Service": POD_PRINCIPAL
        }:
            continue
        if statement.get("Action") != [ASSUME_ROLE, TAG_SESSION]:
            continue
        condition = statement.get("Condition", {})
        equals = condition.get(EQUALS, {}) if set(condition) == {EQUALS} else {}
        if set(equals) != set(CANONICAL.values()):
            continue
        if (
            equals[CANONICAL[SOURCE_ACCOUNT]],
            equals[CANONICAL[TAG_NAMESPACE]],
            equals[CANONICAL[TAG_SERVICE_ACCOUNT]],
        ) == (usage.account, usage.namespace, usage.service_account):
            return statement
    return None


def add_cluster(grant: dict[str, Any], cluster_arn: str) -> bool:
    equals = grant["Condition"][EQUALS]
    clusters = [str(c) for c in as_list(equals[CANONICAL[TAG_CLUSTER_ARN]])]
    if cluster_arn in clusters:
        return False
    equals[CANONICAL[TAG_CLUSTER_ARN]] = sorted([*clusters, cluster_arn])
    return True


def scope_groups(view: StatementView, usages: Iterable[Usage]) -> dict[Pair, list[str]] | None:
    """The declared (namespace, service account) pairs this owner statement admits,
    each with its cluster ARNs; None when it cannot be scoped by podid: it already
    conditions a session tag the owner chose, or a declared usage's outcome
    cannot be decided offline (narrowing it could lock that usage out)."""
    if view.condition_keys() & SCOPING_KEYS:
        return None
    groups: dict[Pair, set[str]] = {}
    for usage in usages:
        outcome = evaluate(view.condition(), request_context(usage)).outcome
        if outcome is Tri.UNKNOWN:
            return None
        if outcome is Tri.TRUE:
            groups.setdefault((usage.namespace, usage.service_account), set()).add(
                usage.cluster_arn
            )
    return {pair: sorted(clusters) for pair, clusters in sorted(groups.items())} or None


def scoped_copy(
    statement: dict[str, Any], sid: str, pair: Pair, clusters: list[str]
) -> dict[str, Any]:
    """The owner's statement, every element kept, narrowed to one pair."""
    narrowed = copy.deepcopy({k: v for k, v in statement.items() if k != "Sid"})
    condition = narrowed.pop("Condition", {})
    equals = condition.setdefault(EQUALS, {})
    equals[CANONICAL[TAG_CLUSTER_ARN]] = _one_or_list(clusters)
    equals[CANONICAL[TAG_NAMESPACE]] = pair[0]
    equals[CANONICAL[TAG_SERVICE_ACCOUNT]] = pair[1]
    return {"Sid": sid, **narrowed, "Condition": condition}
