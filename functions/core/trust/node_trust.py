"""Trust for roles used on self-managed clusters.

There EKS Pod Identity does not exist: the node agent's sts backend assumes
the role with the node's own credentials (its instance profile role), setting
the six session tags EKS would. So the role must trust the node role (an AWS
principal) with sts:AssumeRole, and sts:TagSession unless the association
disables session tags; pods.eks.amazonaws.com does nothing there. The same
rules as for pods: a usage is repairable only when nothing the owner wrote
speaks against it; a condition the owner wrote that leaves it out is reported
(PI040), never widened; a Deny is never touched. podid's own statement for a
usage (Sid `PodidNodeGrant…`) names the node role and is scoped by the
session tags to the declared cluster ARNs, namespace and service account
(only as honest as the node, which sets those tags itself: see SECURITY.md).
The request carries no aws:SourceAccount (a role, not a service, calls STS).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from functions.core.arns import parse_role_arn
from functions.core.models import Finding, Severity
from functions.core.trust.conditions import (
    SOURCE_ACCOUNT,
    TAG_CLUSTER_ARN,
    TAG_NAMESPACE,
    TAG_SERVICE_ACCOUNT,
    ContextValue,
    Tri,
    Usage,
    evaluate,
    request_context,
)
from functions.core.trust.document import (
    ASSUME_ROLE,
    TAG_SESSION,
    StatementView,
    as_list,
)

NODE_GRANT_SID = "PodidNodeGrant"
NODE_ROLE_MISSING = "PI013"
EQUALS = "StringEquals"
_GRANT_KEYS = {
    TAG_CLUSTER_ARN: "aws:RequestTag/eks-cluster-arn",
    TAG_NAMESPACE: "aws:RequestTag/kubernetes-namespace",
    TAG_SERVICE_ACCOUNT: "aws:RequestTag/kubernetes-service-account",
}


@dataclass(frozen=True, slots=True)
class NodeUsage:
    """A declared usage on a self-managed cluster, and the role its nodes run as."""

    usage: Usage
    node_role_arn: str

    def __str__(self) -> str:
        return str(self.usage)


def role_context(usage: Usage) -> dict[str, ContextValue]:
    """The request a role (not a service) makes for this usage."""
    context = request_context(usage)
    context.pop(SOURCE_ACCOUNT, None)  # set for service principals only, never for a role
    return context


def actions_for(usage: Usage) -> tuple[str, ...]:
    return (ASSUME_ROLE,) if usage.disable_session_tags else (ASSUME_ROLE, TAG_SESSION)


def _aws_principals(view: StatementView) -> list[str]:
    return view.principals().get("AWS", [])


def names_role(view: StatementView, role_arn: str) -> bool:
    return not view.has_not_principal and role_arn in _aws_principals(view)


def reaches_role(view: StatementView, role_arn: str) -> bool:
    """Would this statement apply to a request signed by that role?"""
    if view.has_not_principal:
        return role_arn not in _aws_principals(view)
    account_root = parse_role_arn(role_arn).account_root
    found = _aws_principals(view)
    return view.is_wildcard or role_arn in found or account_root in found


def _is_podid(view: StatementView) -> bool:
    return str(view.raw.get("Sid", "")).startswith(NODE_GRANT_SID)


@dataclass(frozen=True, slots=True)
class NodeReview:
    node_usage: NodeUsage
    missing: tuple[str, ...]  # actions no statement of the owner's speaks to
    excluded: tuple[tuple[str, StatementView, tuple[tuple[str, str], ...]], ...]
    unknown: tuple[tuple[str, StatementView], ...]
    denied: tuple[tuple[str, StatementView], ...]
    admitted: tuple[str, ...]

    @property
    def grantable(self) -> bool:
        """podid may add it: only missing (nothing excludes, denies or may), with session tags."""
        return (
            bool(self.missing)
            and not (self.excluded or self.unknown or self.denied)
            and not self.node_usage.usage.disable_session_tags
        )


def review_node_usage(
    statements: list[StatementView],
    node_usage: NodeUsage,
    context: dict[str, ContextValue] | None = None,
) -> NodeReview:
    """How the trust answers a role (the node role; or, with the request's
    `context`, a target role's association role) assuming it for a usage."""
    usage, role = node_usage.usage, node_usage.node_role_arn
    context = role_context(usage) if context is None else context
    missing, admitted = [], []
    excluded: list[tuple[str, StatementView, tuple[tuple[str, str], ...]]] = []
    unknown: list[tuple[str, StatementView]] = []
    denied: list[tuple[str, StatementView]] = []
    for action in actions_for(usage):
        naming = [v for v in statements if v.allows and names_role(v, role) and v.covers(action)]
        results = [(v, evaluate(v.condition(), context)) for v in naming]
        denied += [
            (action, view)
            for view in statements
            if not view.allows
            and reaches_role(view, role)
            and view.covers(action)
            and evaluate(view.condition(), context).outcome is not Tri.FALSE
        ]
        if any(r.outcome is Tri.TRUE for _, r in results):
            admitted.append(action)
            continue
        maybe = [(action, v) for v, r in results if r.outcome is Tri.UNKNOWN]
        against = [
            (action, v, r.failing)
            for v, r in results
            if r.outcome is Tri.FALSE and not _is_podid(v)
        ]
        if maybe:
            unknown += maybe
        elif against:
            excluded += against
        else:
            missing.append(action)
    return NodeReview(
        node_usage, tuple(missing), tuple(excluded), tuple(unknown), tuple(denied), tuple(admitted)
    )


def node_findings(
    statements: list[StatementView], node_usages: tuple[NodeUsage, ...]
) -> list[Finding]:
    found: list[Finding] = []
    for node_usage in node_usages:
        review = review_node_usage(statements, node_usage)
        usage, role = node_usage.usage, node_usage.node_role_arn
        named = any(v.allows and names_role(v, role) for v in statements)
        if review.missing and not review.excluded and not review.unknown:
            code = (
                NODE_ROLE_MISSING
                if not named
                else ("PI011" if ASSUME_ROLE in review.missing else "PI012")
            )
            what = (
                f"no statement trusts the node role {role}"
                if not named
                else f"{', '.join(review.missing)} is not allowed to the node role {role}"
            )
            found.append(
                Finding(
                    code=code,
                    severity=Severity.ERROR,
                    message=f"{what}: {usage} is on a self-managed cluster, where the node agent "
                    "assumes the role with the node's credentials (pods.eks.amazonaws.com does "
                    "not exist there), so its pods get no credentials"
                    + (
                        ""
                        if review.grantable
                        else "; add it by hand (session tags disabled: a grant could not be "
                        "scoped to this usage)"
                        if usage.disable_session_tags
                        else ""
                    ),
                    repairable=review.grantable,
                )
            )
        for action, view, failing in review.excluded:
            keys = ", ".join(f"{op} {key}" for op, key in failing)
            found.append(
                Finding(
                    code="PI040",
                    severity=Severity.ERROR,
                    message=f"Statement[{view.index}] trusts the node role {role} for {action} "
                    f"but its condition ({keys}) leaves out {usage}: the role owner wrote that "
                    "restriction, so podid never widens it; the role owner must widen it",
                    statement=view.index,
                )
            )
        for action, view in review.unknown:
            found.append(
                Finding(
                    code="PI042",
                    severity=Severity.INFO,
                    message=f"Statement[{view.index}] trusts the node role {role} for {action} "
                    f"under a condition that cannot be checked offline for {usage} (a request "
                    "from a role carries no aws:SourceAccount)",
                    statement=view.index,
                )
            )
        for action, view in review.denied:
            found.append(
                Finding(
                    code="PI050",
                    severity=Severity.ERROR,
                    message=f"Statement[{view.index}] denies {action} to the node role {role} "
                    f"for {usage}; a Deny is deliberate, so it is reported and never removed",
                    statement=view.index,
                )
            )
    return found


def node_grant_sid(usage: Usage, node_role_arn: str) -> str:
    digest = hashlib.sha256(
        f"{node_role_arn}|{usage.namespace}|{usage.service_account}".encode()
    ).hexdigest()[:12]
    return f"{NODE_GRANT_SID}{digest}"


def node_grant(sid: str, node_usage: NodeUsage) -> dict[str, Any]:
    usage = node_usage.usage
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"AWS": node_usage.node_role_arn},
        "Action": [ASSUME_ROLE, TAG_SESSION],
        "Condition": {
            EQUALS: {
                _GRANT_KEYS[TAG_CLUSTER_ARN]: usage.cluster_arn,
                _GRANT_KEYS[TAG_NAMESPACE]: usage.namespace,
                _GRANT_KEYS[TAG_SERVICE_ACCOUNT]: usage.service_account,
            }
        },
    }


def add_node_grant(statements: list[dict[str, Any]], node_usage: NodeUsage) -> str | None:
    """Admit one usage in podid's statement for its node role, namespace and
    service account (added, or the cluster ARN added to it); the change made."""
    usage = node_usage.usage
    sid = node_grant_sid(usage, node_usage.node_role_arn)
    for statement in statements:
        if statement.get("Sid") != sid:
            continue
        equals = statement.setdefault("Condition", {}).setdefault(EQUALS, {})
        arns = as_list(equals.get(_GRANT_KEYS[TAG_CLUSTER_ARN], []))
        if usage.cluster_arn in arns:
            return None
        equals[_GRANT_KEYS[TAG_CLUSTER_ARN]] = [*arns, usage.cluster_arn]
        pair = f"{usage.namespace}/{usage.service_account}"
        return f"admitted {usage.cluster_arn} in statement {sid} ({pair})"
    statements.append(node_grant(sid, node_usage))
    return (
        f"added statement {sid} trusting the node role {node_usage.node_role_arn} for "
        f"{usage.namespace}/{usage.service_account} from {usage.cluster_arn} only"
    )
