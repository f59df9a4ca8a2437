"""Trust-policy analysis for EKS Pod Identity roles: stable finding codes.

A role is checked against every declared usage (cluster, namespace, service
account, session tags on/off). Errors mean a declared usage cannot work or the
role is open to more than declared; warnings and infos are hardening.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

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
)
from functions.core.trust.document import (
    ASSUME_ROLE,
    POD_PRINCIPAL,
    TAG_SESSION,
    StatementView,
    parse_policy,
    views,
)

DEFAULT_MAX_TRUST_POLICY_CHARS = 2048


class Code:
    MALFORMED = "PI001"
    ROLE_MISSING = "PI002"
    PRINCIPAL_MISSING = "PI010"
    ASSUME_ROLE_MISSING = "PI011"
    TAG_SESSION_MISSING = "PI012"
    WILDCARD_PRINCIPAL = "PI020"
    FOREIGN_PRINCIPAL = "PI021"
    SOURCE_ACCOUNT_MISSING = "PI030"
    TAG_SCOPING_MISSING = "PI031"
    CONDITION_EXCLUDES = "PI040"
    TAG_CONDITION_UNMATCHABLE = "PI041"
    CONDITION_UNVERIFIABLE = "PI042"
    EXPLICIT_DENY = "PI050"
    POLICY_TOO_LARGE = "PI060"


@dataclass(frozen=True, slots=True)
class TrustContext:
    role_arn: str
    usages: tuple[Usage, ...]
    scope_session_tags: bool = True
    max_policy_chars: int = DEFAULT_MAX_TRUST_POLICY_CHARS

    @property
    def accounts(self) -> list[str]:
        found = {u.account for u in self.usages} or {self.role_arn.split(":")[4]}
        return sorted(found)

    @property
    def tags_everywhere(self) -> bool:
        return bool(self.usages) and not any(u.disable_session_tags for u in self.usages)

    @property
    def wants_tag_scoping(self) -> bool:
        return self.scope_session_tags and self.tags_everywhere


def required_actions(usage: Usage) -> tuple[str, ...]:
    return (ASSUME_ROLE,) if usage.disable_session_tags else (ASSUME_ROLE, TAG_SESSION)


@dataclass(frozen=True, slots=True)
class ActionVerdict:
    usage: Usage
    action: str
    allow: tuple[tuple[StatementView, ConditionResult], ...]
    deny: tuple[tuple[StatementView, ConditionResult], ...]

    @property
    def allowed(self) -> Tri:
        outcomes = {result.outcome for _, result in self.allow}
        if Tri.TRUE in outcomes:
            return Tri.TRUE
        return Tri.UNKNOWN if Tri.UNKNOWN in outcomes else Tri.FALSE

    @property
    def denied(self) -> Tri:
        outcomes = {result.outcome for _, result in self.deny}
        if Tri.TRUE in outcomes:
            return Tri.TRUE
        return Tri.UNKNOWN if Tri.UNKNOWN in outcomes else Tri.FALSE


def verdicts(statements: list[StatementView], usage: Usage) -> list[ActionVerdict]:
    context = request_context(usage)
    reaching = [v for v in statements if v.reaches_pod_principal]
    result = []
    for action in required_actions(usage):
        covering = [v for v in reaching if v.covers(action)]
        result.append(
            ActionVerdict(
                usage,
                action,
                tuple((v, evaluate(v.condition(), context)) for v in covering if v.allows),
                tuple((v, evaluate(v.condition(), context)) for v in covering if not v.allows),
            )
        )
    return result


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


def condition_repairable(operator: str, key: str, usage: Usage) -> bool:
    parsed = parse_operator(operator)
    if not parsed.supported or parsed.base == "Null":
        return False
    found = lookup(request_context(usage), key)
    return isinstance(found, list)


def analyse(document: str | Mapping[str, Any], context: TrustContext) -> list[Finding]:
    try:
        policy = parse_policy(document)
    except MalformedPolicy as exc:
        return [Finding(code=Code.MALFORMED, severity=Severity.ERROR, message=str(exc))]
    statements = views(policy)
    findings: list[Finding] = []
    findings += _principal_findings(statements, context)
    if any(v.allows and v.reaches_pod_principal for v in statements):
        for usage in context.usages:
            for verdict in verdicts(statements, usage):
                findings += _verdict_findings(verdict)
    findings += _hardening_findings(statements, context)
    return _unique(findings)


def _principal_findings(statements: list[StatementView], context: TrustContext) -> list[Finding]:
    found = []
    if not any(v.allows and v.reaches_pod_principal for v in statements):
        found.append(
            Finding(
                code=Code.PRINCIPAL_MISSING,
                severity=Severity.ERROR,
                message=f"no statement allows the service principal {POD_PRINCIPAL}, so no "
                f"pod can assume {context.role_arn}",
                repairable=True,
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
                    "NotPrincipal): anyone able to call STS may assume the role; narrow it by hand",
                    statement=view.index,
                )
            )
        elif view.other_principals():
            found.append(
                Finding(
                    code=Code.FOREIGN_PRINCIPAL,
                    severity=Severity.WARNING,
                    message=f"Statement[{view.index}] also trusts "
                    f"{', '.join(view.other_principals())}: the role is broader than its pod "
                    "identity declarations; left as is because another consumer may rely on it",
                    statement=view.index,
                )
            )
    return found


def _verdict_findings(verdict: ActionVerdict) -> list[Finding]:
    usage, action = verdict.usage, verdict.action
    found = []
    if not verdict.allow:
        missing_code = (
            Code.ASSUME_ROLE_MISSING if action == ASSUME_ROLE else Code.TAG_SESSION_MISSING
        )
        found.append(
            Finding(
                code=missing_code,
                severity=Severity.ERROR,
                message=f"no statement for {POD_PRINCIPAL} allows {action}"
                + ("" if action == ASSUME_ROLE else " (EKS tags every session it opens)"),
                repairable=True,
            )
        )
    elif verdict.allowed is Tri.FALSE:
        view, result = _most_fixable(verdict)
        conditions = ", ".join(f"{op} {key}" for op, key in result.failing)
        repairable = all(condition_repairable(op, key, usage) for op, key in result.failing)
        if not repairable and failing_is_unmatchable_tag(usage, result.failing):
            found.append(
                Finding(
                    code=Code.TAG_CONDITION_UNMATCHABLE,
                    severity=Severity.ERROR,
                    message=f"Statement[{view.index}] requires session tags ({conditions}) but "
                    f"the association {usage} disables session tags, so {action} can never "
                    "match: remove the condition or enable session tags on the declaration",
                    statement=view.index,
                )
            )
        else:
            found.append(
                Finding(
                    code=Code.CONDITION_EXCLUDES,
                    severity=Severity.ERROR,
                    message=f"Statement[{view.index}] condition {conditions} excludes the declared "
                    f"association {usage}",
                    repairable=repairable and view.names_pod_principal,
                    statement=view.index,
                )
            )
    elif verdict.allowed is Tri.UNKNOWN:
        found += _unverifiable(verdict.allow)
    if verdict.denied is Tri.TRUE:
        view = next(v for v, r in verdict.deny if r.outcome is Tri.TRUE)
        found.append(
            Finding(
                code=Code.EXPLICIT_DENY,
                severity=Severity.ERROR,
                message=f"Statement[{view.index}] explicitly denies {action} to {usage}; a Deny "
                "is deliberate, so it is reported and never removed automatically",
                statement=view.index,
            )
        )
    elif verdict.denied is Tri.UNKNOWN:
        found += _unverifiable(verdict.deny)
    return found


def _most_fixable(verdict: ActionVerdict) -> tuple[StatementView, ConditionResult]:
    """The statement repair would widen: the first naming the pod principal whose
    failing conditions can all be widened; else the first that applies."""
    for view, result in verdict.allow:
        if view.names_pod_principal and all(
            condition_repairable(op, key, verdict.usage) for op, key in result.failing
        ):
            return view, result
    return verdict.allow[0]


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
                    "aws:SourceAccount condition (confused-deputy protection): add "
                    f"StringEquals aws:SourceAccount {', '.join(context.accounts)}",
                    repairable=True,
                    statement=view.index,
                )
            )
        if context.wants_tag_scoping and not has_tag_scoping(view):
            found.append(
                Finding(
                    code=Code.TAG_SCOPING_MISSING,
                    severity=Severity.INFO,
                    message=f"Statement[{view.index}] does not scope the role to its declared "
                    "namespaces and service accounts (aws:RequestTag/kubernetes-namespace, "
                    "aws:RequestTag/kubernetes-service-account)",
                    repairable=True,
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


def _unique(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, str]] = set()
    result = []
    for finding in findings:
        marker = (finding.code, finding.message)
        if marker not in seen:
            seen.add(marker)
            result.append(finding)
    return result
