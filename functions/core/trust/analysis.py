"""Trust-policy analysis for EKS Pod Identity roles: stable finding codes.

A role is checked against every declared usage (cluster, namespace, service
account, session tags on/off). Errors mean a declared usage cannot work or the
role is open to more than declared; warnings and infos are hardening.

Who decides: the role's owner. A usage is repairable breakage only when
nothing the owner wrote speaks against it (the principal or an action is just
missing); a condition the owner wrote that leaves it out is the owner's
restriction, reported and never widened. Principal "*" and NotPrincipal never
count as trusting pods.eks.amazonaws.com.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from functions.core.arns import parse_role_arn
from functions.core.errors import MalformedPolicy
from functions.core.models import Finding, Severity
from functions.core.trust.conditions import (
    SOURCE_ACCOUNT,
    SOURCE_ARN,
    TAG_NAMESPACE,
    TAG_SERVICE_ACCOUNT,
    ConditionResult,
    Tri,
    Usage,
    evaluate,
    lookup,
    parse_operator,
    request_context,
    value_matches,
)
from functions.core.trust.consent import HARDEN_VALUE
from functions.core.trust.document import (
    ASSUME_ROLE,
    POD_PRINCIPAL,
    TAG_SESSION,
    StatementView,
    as_list,
    parse_policy,
    views,
)
from functions.core.trust.grants import only_podid_conditions_fail, scope_groups
from functions.core.trust.node_trust import NodeUsage, node_findings
from functions.core.trust.target_trust import TargetUsage, target_findings

DEFAULT_MAX_TRUST_POLICY_CHARS = 2048


class Code:
    MALFORMED = "PI001"
    ROLE_MISSING = "PI002"
    ROLE_OUTSIDE_SCOPE = "PI003"
    IAM_CALL_FAILED = "PI004"
    PRINCIPAL_MISSING = "PI010"
    ASSUME_ROLE_MISSING = "PI011"
    TAG_SESSION_MISSING = "PI012"
    WILDCARD_PRINCIPAL = "PI020"
    FOREIGN_PRINCIPAL = "PI021"
    SOURCE_ACCOUNT_MISSING = "PI030"
    TAG_SCOPING_MISSING = "PI031"
    HARDENING_PROPOSED = "PI032"
    CONDITION_EXCLUDES = "PI040"
    TAG_CONDITION_UNMATCHABLE = "PI041"
    CONDITION_UNVERIFIABLE = "PI042"
    SOURCE_UNDECLARED = "PI043"
    EXPLICIT_DENY = "PI050"
    POLICY_TOO_LARGE = "PI060"


@dataclass(frozen=True, slots=True)
class TrustContext:
    role_arn: str
    usages: tuple[Usage, ...]
    scope_session_tags: bool = True
    max_policy_chars: int = DEFAULT_MAX_TRUST_POLICY_CHARS
    opt_in_tag: str = "pod-identity/managed-trust"  # named in messages
    # usages on self-managed clusters: the role must trust their node role instead
    node_usages: tuple[NodeUsage, ...] = ()
    # usages whose target role this is: it must trust their association role
    target_usages: tuple[TargetUsage, ...] = ()

    @property
    def accounts(self) -> list[str]:
        found = {u.account for u in self.usages} or {parse_role_arn(self.role_arn).account}
        return sorted(found)

    @property
    def tags_everywhere(self) -> bool:
        return bool(self.usages) and not any(u.disable_session_tags for u in self.usages)

    @property
    def wants_tag_scoping(self) -> bool:
        return self.scope_session_tags and self.tags_everywhere

    @property
    def harden_opt_in(self) -> str:
        if not self.opt_in_tag:
            return "no opt-in tag is configured (REPAIRABLE_ROLE_TAG is empty), so never"
        return f"roles tagged {self.opt_in_tag}={HARDEN_VALUE}"


def required_actions(usage: Usage) -> tuple[str, ...]:
    return (ASSUME_ROLE,) if usage.disable_session_tags else (ASSUME_ROLE, TAG_SESSION)


def _any(outcomes: Iterable[Tri]) -> Tri:
    found = set(outcomes)
    if Tri.TRUE in found:
        return Tri.TRUE
    return Tri.UNKNOWN if Tri.UNKNOWN in found else Tri.FALSE


class Standing(IntEnum):
    """Where a usage stands, worst last."""

    ADMITTED = 0
    MISSING = 1  # nothing the owner wrote speaks to it: podid may add it
    UNVERIFIABLE = 2  # a condition cannot be evaluated offline
    EXCLUDED = 3  # a condition the owner wrote leaves it out
    DENIED = 4


@dataclass(frozen=True, slots=True)
class ActionReview:
    action: str
    standing: Standing  # of the Allow side
    excluding: tuple[tuple[StatementView, ConditionResult], ...]
    unknown: tuple[tuple[StatementView, ConditionResult], ...]
    deny: tuple[tuple[StatementView, ConditionResult], ...]  # applying or maybe applying

    @property
    def denied(self) -> Tri:
        return _any(result.outcome for _, result in self.deny)


@dataclass(frozen=True, slots=True)
class UsageReview:
    usage: Usage
    actions: tuple[ActionReview, ...]

    @property
    def standing(self) -> Standing:
        worst = max(a.standing for a in self.actions)
        denied = _any(a.denied for a in self.actions)
        if denied is Tri.TRUE:
            return Standing.DENIED
        return max(worst, Standing.UNVERIFIABLE) if denied is Tri.UNKNOWN else worst

    @property
    def grantable(self) -> bool:
        """podid may add this usage: only the principal or actions are missing,
        and it has session tags (without them IAM cannot tell one pod session of
        the account from another, so a grant would admit them all)."""
        return self.standing is Standing.MISSING and not self.usage.disable_session_tags


def review_usage(statements: list[StatementView], usage: Usage) -> UsageReview:
    context = request_context(usage)
    actions = []
    for action in required_actions(usage):
        naming = [v for v in statements if v.allows and v.names_pod_principal and v.covers(action)]
        results = [(v, evaluate(v.condition(), context)) for v in naming]
        unknown = tuple((v, r) for v, r in results if r.outcome is Tri.UNKNOWN)
        excluding = tuple(
            (v, r)
            for v, r in results
            if r.outcome is Tri.FALSE and not only_podid_conditions_fail(v, r.failing)
        )
        if any(r.outcome is Tri.TRUE for _, r in results):
            standing = Standing.ADMITTED
        elif unknown:  # it may be allowed already: nothing to add, and no one to blame
            standing = Standing.UNVERIFIABLE
        else:
            standing = Standing.EXCLUDED if excluding else Standing.MISSING
        deny = tuple(
            (v, r)
            for v in statements
            if not v.allows and v.reaches_pod_principal and v.covers(action)
            for r in [evaluate(v.condition(), context)]
            if r.outcome is not Tri.FALSE
        )
        actions.append(ActionReview(action, standing, excluding, unknown, deny))
    return UsageReview(usage, tuple(actions))


def has_source_protection(view: StatementView) -> bool:
    return bool(view.condition_keys() & {SOURCE_ACCOUNT, SOURCE_ARN})


def has_tag_scoping(view: StatementView) -> bool:
    return {TAG_NAMESPACE, TAG_SERVICE_ACCOUNT} <= view.condition_keys()


def failing_is_unmatchable_tag(usage: Usage, failing: Iterable[tuple[str, str]]) -> bool:
    """Failing only because session tags are disabled: no edit can make it match."""
    context = request_context(usage)
    return usage.disable_session_tags and all(
        key.lower().startswith("aws:requesttag/") and lookup(context, key) is None
        for _, key in failing
    )


def analyse(document: str | Mapping[str, Any], context: TrustContext) -> list[Finding]:
    try:
        policy = parse_policy(document)
    except MalformedPolicy as exc:
        return [Finding(code=Code.MALFORMED, severity=Severity.ERROR, message=str(exc))]
    statements = views(policy)
    findings: list[Finding] = []
    if context.usages or not (context.node_usages or context.target_usages):
        named = any(v.allows and v.names_pod_principal for v in statements)
        reviews = [review_usage(statements, usage) for usage in context.usages]
        findings += _principal_findings(statements, context, reviews, named=named)
        for review in reviews:
            findings += _usage_findings(review, named=named)
        findings += _hardening_findings(statements, context)
        findings += _source_findings(statements, context)
    else:
        findings += _wildcards(statements)
    findings += node_findings(statements, context.node_usages)
    findings += target_findings(statements, context.target_usages, context.role_arn)
    return _unique(findings)


def _wildcards(statements: list[StatementView]) -> list[Finding]:
    return [
        Finding(
            code=Code.WILDCARD_PRINCIPAL,
            severity=Severity.ERROR,
            message=f"Statement[{view.index}] trusts every principal ('*' or NotPrincipal): "
            "anyone able to call STS may assume the role; narrow it by hand",
            statement=view.index,
        )
        for view in statements
        if view.allows and view.covers_assume() and view.is_wildcard
    ]


def _principal_findings(
    statements: list[StatementView],
    context: TrustContext,
    reviews: list[UsageReview],
    *,
    named: bool,
) -> list[Finding]:
    found = []
    # declared, not foreign
    node_roles = {u.node_role_arn for u in context.node_usages} | {
        u.association_role_arn for u in context.target_usages
    }
    if not named:
        found.append(
            Finding(
                code=Code.PRINCIPAL_MISSING,
                severity=Severity.ERROR,
                message=f"no statement names the service principal {POD_PRINCIPAL} (Principal "
                f"'*' and NotPrincipal do not count), so no pod can assume {context.role_arn}",
                repairable=any(r.grantable for r in reviews),
            )
        )
    for view in statements:
        if not (view.allows and view.covers_assume()):
            continue
        if view.is_wildcard:
            found.append(
                Finding(
                    code=Code.WILDCARD_PRINCIPAL,
                    severity=Severity.ERROR,
                    message=f"Statement[{view.index}] trusts every principal ('*' or "
                    "NotPrincipal): anyone able to call STS may assume the role, and it does "
                    f"not count as trusting {POD_PRINCIPAL}; narrow it by hand",
                    statement=view.index,
                )
            )
        elif others := [
            p for p in view.other_principals() if p.removeprefix("AWS:") not in node_roles
        ]:
            found.append(
                Finding(
                    code=Code.FOREIGN_PRINCIPAL,
                    severity=Severity.WARNING,
                    message=f"Statement[{view.index}] also trusts "
                    f"{', '.join(others)}: the role is broader than its pod "
                    "identity declarations; left as is because another consumer may rely on it",
                    statement=view.index,
                )
            )
    return found


def _usage_findings(review: UsageReview, *, named: bool) -> list[Finding]:
    usage = review.usage
    found = []
    for action in review.actions:
        if action.standing is Standing.MISSING:
            # with no pod statement at all, PI010 speaks for the usages podid may add
            if named or (review.standing is Standing.MISSING and not review.grantable):
                found.append(_missing(review, action.action))
        elif action.standing is Standing.EXCLUDED:
            found.append(_excluded(usage, action.action, *action.excluding[0]))
        elif action.standing is Standing.UNVERIFIABLE:
            found += _unverifiable(action.unknown)
        if action.denied is Tri.TRUE:
            view = next(v for v, r in action.deny if r.outcome is Tri.TRUE)
            found.append(
                Finding(
                    code=Code.EXPLICIT_DENY,
                    severity=Severity.ERROR,
                    message=f"Statement[{view.index}] explicitly denies {action.action} to "
                    f"{usage}; a Deny is deliberate, so it is reported and never removed "
                    "automatically",
                    statement=view.index,
                )
            )
        elif action.denied is Tri.UNKNOWN:
            found += _unverifiable(action.deny)
    return found


def _missing(review: UsageReview, action: str) -> Finding:
    usage = review.usage
    message = f"no statement allows {POD_PRINCIPAL} {action} for {usage}"
    if action == TAG_SESSION:
        message += " (EKS tags every session it opens)"
    if review.standing is Standing.MISSING and not review.grantable:
        message += (
            f"; podid does not add it: the association disables session tags, so IAM could "
            f"not tell {usage} from any other untagged pod session of account {usage.account}; "
            "the role owner must add it, or the declaration must enable session tags"
        )
    return Finding(
        code=Code.ASSUME_ROLE_MISSING if action == ASSUME_ROLE else Code.TAG_SESSION_MISSING,
        severity=Severity.ERROR,
        message=message,
        repairable=review.grantable,
    )


def _excluded(usage: Usage, action: str, view: StatementView, result: ConditionResult) -> Finding:
    conditions = "; ".join(_describe(view, op, key) for op, key in result.failing)
    if failing_is_unmatchable_tag(usage, result.failing):
        return Finding(
            code=Code.TAG_CONDITION_UNMATCHABLE,
            severity=Severity.ERROR,
            message=f"Statement[{view.index}] requires session tags ({conditions}) but "
            f"the association {usage} disables session tags, so {action} can never "
            "match: remove the condition or enable session tags on the declaration",
            statement=view.index,
        )
    context = request_context(usage)
    carried = ", ".join(
        f"{key}={_show(lookup(context, key))}"
        for key in dict.fromkeys(k for _, k in result.failing)
    )
    return Finding(
        code=Code.CONDITION_EXCLUDES,
        severity=Severity.ERROR,
        message=f"Statement[{view.index}] condition {conditions} excludes the declared "
        f"association {usage} (its request carries {carried}); podid never widens a "
        "restriction the role's owner wrote: the role owner must widen it, or the declaration "
        "must change",
        statement=view.index,
    )


def _describe(view: StatementView, operator: str, key: str) -> str:
    return f"{operator} {key} {json.dumps(view.condition()[operator][key])}"


def _show(value: Any) -> str:
    if value is None:
        return "(absent)"
    return ",".join(value) if isinstance(value, list) else "(unknown)"


def _unverifiable(results: Iterable[tuple[StatementView, ConditionResult]]) -> list[Finding]:
    return [
        Finding(
            code=Code.CONDITION_UNVERIFIABLE,
            severity=Severity.INFO,
            message=f"Statement[{view.index}] condition {op} {key} cannot be checked offline "
            "(its value for EKS Pod Identity requests is not documented); verify it by hand",
            statement=view.index,
        )
        for view, result in results
        for op, key in result.unknown
    ]


def _hardening_findings(statements: list[StatementView], context: TrustContext) -> list[Finding]:
    found = []
    for view in statements:
        if not (view.allows and view.names_pod_principal):
            continue
        if not has_source_protection(view):
            found.append(
                Finding(
                    code=Code.SOURCE_ACCOUNT_MISSING,
                    severity=Severity.WARNING,
                    message=f"Statement[{view.index}] trusts {POD_PRINCIPAL} without an "
                    "aws:SourceAccount condition (confused-deputy protection): hardening adds "
                    f"StringEquals aws:SourceAccount {', '.join(context.accounts)}, written "
                    f"only for {context.harden_opt_in} (PI032 holds the exact policy)",
                    statement=view.index,
                )
            )
        if context.wants_tag_scoping and not has_tag_scoping(view):
            how = (
                f"hardening narrows it to one statement per declared namespace and service "
                f"account, written only for {context.harden_opt_in} (PI032 holds the exact "
                "policy)"
                if scope_groups(view, context.usages) is not None
                else "it conditions session tags already, or cannot be evaluated offline, so "
                "the role owner scopes it by hand"
            )
            found.append(
                Finding(
                    code=Code.TAG_SCOPING_MISSING,
                    severity=Severity.INFO,
                    message=f"Statement[{view.index}] does not scope the role to its declared "
                    "usages (aws:RequestTag/eks-cluster-arn, kubernetes-namespace and "
                    f"kubernetes-service-account together): {how}",
                    statement=view.index,
                )
            )
    return found


def _source_findings(statements: list[StatementView], context: TrustContext) -> list[Finding]:
    """aws:SourceAccount / aws:SourceArn values that name no declared account or cluster."""
    if not context.usages:
        return []
    declared = {
        SOURCE_ACCOUNT: sorted({u.account for u in context.usages}),
        SOURCE_ARN: sorted({u.cluster_arn for u in context.usages}),
    }
    found = []
    for view in statements:
        if not (view.allows and view.names_pod_principal):
            continue
        for raw_operator, block in view.condition().items():
            operator = parse_operator(raw_operator)
            if not operator.supported or operator.negated or operator.base == "Null":
                continue
            for key, values in block.items():
                known = declared.get(key.lower())
                if known is None:
                    continue
                undeclared = [
                    str(v)
                    for v in as_list(values)
                    if not any(value_matches(operator, str(v), d) for d in known)
                ]
                if undeclared:
                    found.append(
                        Finding(
                            code=Code.SOURCE_UNDECLARED,
                            severity=Severity.WARNING,
                            message=f"Statement[{view.index}] condition {raw_operator} {key} "
                            f"names {', '.join(undeclared)}, which no declaration of this role "
                            f"uses (declared: {', '.join(known)}); reported, never changed: "
                            "whom the role trusts is its owner's decision",
                            statement=view.index,
                        )
                    )
    return found


def role_missing_findings(
    context: TrustContext, *, deleted: bool, declaration_ids: Iterable[str] = ()
) -> list[Finding]:
    """`declaration_ids`: declarations of the role with no usage yet (no enrolled
    target cluster) still rely on it."""
    users = sorted(
        {u.declaration_id for u in context.usages if u.declaration_id} | set(declaration_ids)
    )
    how = "was deleted" if deleted else "does not exist"
    who = f"declarations rely on it ({', '.join(users)})" if users else "declarations rely on it"
    return [
        Finding(
            code=Code.ROLE_MISSING,
            severity=Severity.ERROR,
            message=f"role {context.role_arn} {how} but {who}; pods of those service accounts "
            "cannot get credentials",
        )
    ]


def outside_scope_findings(
    role_arn: str, role_path: str, declaration_ids: Iterable[str]
) -> list[Finding]:
    return [
        Finding(
            code=Code.ROLE_OUTSIDE_SCOPE,
            severity=Severity.ERROR,
            message=f"roleArn {role_arn} is outside this deployment's role scope (rolePath "
            f"{role_path}): podid neither reads nor repairs its trust policy; declarations "
            f"{', '.join(sorted(declaration_ids))} must name a role under {role_path}, or the "
            "deployment must widen rolePath",
        )
    ]


def iam_failure_findings(role_arn: str, operation: str, code: str, message: str) -> list[Finding]:
    return [
        Finding(
            code=Code.IAM_CALL_FAILED,
            severity=Severity.ERROR,
            message=f"IAM {operation} for {role_arn} failed with {code} ({message}): its trust "
            "policy was not checked; the next sweep tries again",
        )
    ]


def _unique(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, str]] = set()
    result = []
    for finding in findings:
        marker = (finding.code, finding.message)
        if marker not in seen:
            seen.add(marker)
            result.append(finding)
    return result
