"""Evaluate IAM condition blocks against the request EKS makes for one usage.

Only keys whose value EKS Auth sets predictably are evaluated. Anything else
(aws:SourceArn, whose semantics for this principal are not documented, pod
name/uid tags, numeric/date operators, policy variables) is UNKNOWN: reported
as unverifiable, never "fixed".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from functions.core.arns import arn_parts, parse_cluster_arn
from functions.core.trust.document import as_list


class Tri(Enum):
    TRUE = "true"
    FALSE = "false"
    UNKNOWN = "unknown"


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN_VALUE = _Unknown()
# the request's values for a key; UNKNOWN: not knowable offline; None: certainly not sent
ContextValue = list[str] | _Unknown | None

SOURCE_ACCOUNT = "aws:sourceaccount"
SOURCE_ARN = "aws:sourcearn"
EXTERNAL_ID = "sts:externalid"
TAG_KEYS = "aws:tagkeys"
TAG_CLUSTER_ARN = "aws:requesttag/eks-cluster-arn"
TAG_CLUSTER_NAME = "aws:requesttag/eks-cluster-name"
TAG_NAMESPACE = "aws:requesttag/kubernetes-namespace"
TAG_SERVICE_ACCOUNT = "aws:requesttag/kubernetes-service-account"
TAG_POD_NAME = "aws:requesttag/kubernetes-pod-name"
TAG_POD_UID = "aws:requesttag/kubernetes-pod-uid"
SESSION_TAG_KEYS = (
    "eks-cluster-arn",
    "eks-cluster-name",
    "kubernetes-namespace",
    "kubernetes-service-account",
    "kubernetes-pod-name",
    "kubernetes-pod-uid",
)
_TAG_CONTEXT_KEYS = frozenset(
    {TAG_KEYS, TAG_CLUSTER_ARN, TAG_CLUSTER_NAME, TAG_NAMESPACE, TAG_SERVICE_ACCOUNT}
    | {TAG_POD_NAME, TAG_POD_UID}
)
_BASES = {
    "StringEquals": ("equals", False),
    "StringNotEquals": ("equals", True),
    "StringEqualsIgnoreCase": ("iequals", False),
    "StringNotEqualsIgnoreCase": ("iequals", True),
    "StringLike": ("like", False),
    "StringNotLike": ("like", True),
    "ArnEquals": ("arn", False),
    "ArnLike": ("arn", False),
    "ArnNotEquals": ("arn", True),
    "ArnNotLike": ("arn", True),
}


@dataclass(frozen=True, slots=True)
class Operator:
    raw: str
    base: str
    qualifier: str | None  # "ForAnyValue" | "ForAllValues"
    if_exists: bool

    @property
    def supported(self) -> bool:
        return self.base in _BASES or self.base == "Null"

    @property
    def negated(self) -> bool:
        return self.base in _BASES and _BASES[self.base][1]


def parse_operator(raw: str) -> Operator:
    qualifier = None
    rest = raw
    for prefix in ("ForAnyValue:", "ForAllValues:"):
        if raw.startswith(prefix):
            qualifier, rest = prefix[:-1], raw[len(prefix) :]
    if_exists = rest.endswith("IfExists") and rest != "IfExists"
    base = rest.removesuffix("IfExists") if if_exists else rest
    return Operator(raw, base, qualifier, if_exists)


def _like(pattern: str, value: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


def _arn_like(pattern: str, value: str) -> bool:
    """IAM matches each of an ARN's six colon-separated parts on its own, so a
    wildcard never spans a colon (the resource part keeps any further colons)."""
    wanted, found = arn_parts(pattern), arn_parts(value)
    return wanted is not None and found is not None and all(map(_like, wanted, found))


def value_matches(operator: Operator, pattern: str, value: str) -> bool:
    kind = _BASES[operator.base][0]
    if kind == "equals":
        return pattern == value
    if kind == "iequals":
        return pattern.lower() == value.lower()
    if kind == "arn":
        return _arn_like(pattern, value)
    return _like(pattern, value)


@dataclass(frozen=True, slots=True)
class Usage:
    """One declared association that relies on a role."""

    cluster_name: str
    cluster_arn: str
    namespace: str
    service_account: str
    disable_session_tags: bool = False
    declaration_id: str = ""

    @property
    def account(self) -> str:
        return parse_cluster_arn(self.cluster_arn).account

    def __str__(self) -> str:
        arn = parse_cluster_arn(self.cluster_arn)  # the cluster as (account, region, name)
        return f"{arn.account}/{arn.region}/{arn.name}/{self.namespace}/{self.service_account}"


def request_context(usage: Usage) -> dict[str, ContextValue]:
    context: dict[str, ContextValue] = {SOURCE_ACCOUNT: [usage.account]}
    if not usage.disable_session_tags:
        context |= {
            TAG_CLUSTER_ARN: [usage.cluster_arn],
            TAG_CLUSTER_NAME: [usage.cluster_name],
            TAG_NAMESPACE: [usage.namespace],
            TAG_SERVICE_ACCOUNT: [usage.service_account],
            TAG_POD_NAME: UNKNOWN_VALUE,
            TAG_POD_UID: UNKNOWN_VALUE,
            TAG_KEYS: list(SESSION_TAG_KEYS),
        }
    return context


def lookup(context: Mapping[str, ContextValue], key: str) -> ContextValue | None:
    """Context value, None when EKS certainly omits the key, UNKNOWN otherwise."""
    lowered = key.lower()
    if lowered in context:
        return context[lowered]
    if lowered in _TAG_CONTEXT_KEYS or lowered.startswith("aws:requesttag/"):
        return None  # session tags disabled, or a tag EKS never sets
    return UNKNOWN_VALUE


def evaluate_key(
    operator: Operator, key: str, expected: Any, context: Mapping[str, ContextValue]
) -> Tri:
    if not operator.supported:
        return Tri.UNKNOWN
    patterns = [str(v).lower() if isinstance(v, bool) else str(v) for v in as_list(expected)]
    if any("${" in p for p in patterns):
        return Tri.UNKNOWN
    found = lookup(context, key)
    if isinstance(found, _Unknown):
        return Tri.UNKNOWN
    if operator.base == "Null":
        # like every condition, the listed values are alternatives
        return _tri(any((p.lower() == "true") == (found is None) for p in patterns))
    if found is None:
        if operator.qualifier == "ForAllValues" or operator.if_exists:
            return Tri.TRUE
        if operator.qualifier == "ForAnyValue":
            return Tri.FALSE
        return _tri(operator.negated)

    def hit(value: str) -> bool:
        return any(value_matches(operator, p, value) for p in patterns)

    outcomes = [hit(v) != operator.negated for v in found]
    if operator.qualifier == "ForAllValues":
        return _tri(all(outcomes))
    if operator.qualifier == "ForAnyValue":
        return _tri(any(outcomes))
    return _tri(outcomes[0])


def _tri(value: bool) -> Tri:
    return Tri.TRUE if value else Tri.FALSE


@dataclass(frozen=True, slots=True)
class ConditionResult:
    outcome: Tri
    failing: tuple[tuple[str, str], ...] = ()  # (operator, key)
    unknown: tuple[tuple[str, str], ...] = ()


def evaluate(
    condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, ContextValue]
) -> ConditionResult:
    failing: list[tuple[str, str]] = []
    unknown: list[tuple[str, str]] = []
    for raw_operator, block in condition.items():
        operator = parse_operator(raw_operator)
        for key, expected in block.items():
            outcome = evaluate_key(operator, key, expected, context)
            if outcome is Tri.FALSE:
                failing.append((raw_operator, key))
            elif outcome is Tri.UNKNOWN:
                unknown.append((raw_operator, key))
    if failing:
        return ConditionResult(Tri.FALSE, tuple(failing), tuple(unknown))
    return ConditionResult(Tri.UNKNOWN if unknown else Tri.TRUE, (), tuple(unknown))
