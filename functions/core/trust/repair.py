"""Repair a trust policy with the smallest change that makes every declared
usage work and hardens the pod identity statements.

Rules: unrelated statements keep their content and order; no principal is
ever removed (a statement shared with other principals is split, the pod
principal moving to its own statement right after it); Deny statements,
wildcard and foreign principals are reported, never edited; the result is a
fixed point: repair(repair(p)) == repair(p).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from functions.core.models import Finding, Severity
from functions.core.trust.analysis import (
    Code,
    TrustContext,
    analyse,
    condition_repairable,
    has_source_protection,
    has_tag_scoping,
    verdicts,
)
from functions.core.trust.conditions import (
    TAG_NAMESPACE,
    TAG_SERVICE_ACCOUNT,
    Tri,
    Usage,
    evaluate,
    lookup,
    parse_operator,
    request_context,
    value_matches,
)
from functions.core.trust.document import (
    POD_PRINCIPAL,
    StatementView,
    as_list,
    compact_size,
    parse_policy,
    views,
)

NEW_STATEMENT_SID = "EksPodIdentity"
_CANONICAL_KEYS = {
    TAG_NAMESPACE: "aws:RequestTag/kubernetes-namespace",
    TAG_SERVICE_ACCOUNT: "aws:RequestTag/kubernetes-service-account",
}


@dataclass(frozen=True, slots=True)
class RepairResult:
    policy: dict[str, Any]
    changed: bool
    changes: tuple[str, ...]
    remaining: tuple[Finding, ...]

    @property
    def still_broken(self) -> bool:
        return any(f.severity is Severity.ERROR for f in self.remaining)


@dataclass
class _Work:
    policy: dict[str, Any]
    context: TrustContext
    scope_tags: bool
    changes: list[str] = field(default_factory=list)

    @property
    def statements(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.policy["Statement"]  # a list once _run starts
        return found

    def index_of(self, statement: dict[str, Any]) -> int:
        return next(i for i, s in enumerate(self.statements) if s is statement)

    def views(self) -> list[StatementView]:
        return views(self.policy)


def repair(document: str | Mapping[str, Any], context: TrustContext) -> RepairResult:
    """Raises MalformedPolicy when the document cannot be read at all."""
    original = parse_policy(document)
    work = _run(original, context, scope_tags=context.wants_tag_scoping)
    if compact_size(work.policy) > context.max_policy_chars and work.scope_tags:
        work = _run(original, context, scope_tags=False)
    if compact_size(work.policy) > context.max_policy_chars:
        too_large = Finding(
            code=Code.POLICY_TOO_LARGE,
            severity=Severity.ERROR,
            message=f"the repaired policy would have {compact_size(work.policy)} characters, over "
            f"the trust policy quota of {context.max_policy_chars}; repair it by hand or raise "
            "the IAM quota",
        )
        return RepairResult(original, False, (), (*analyse(original, context), too_large))
    changed = work.policy != original
    return RepairResult(
        work.policy, changed, tuple(work.changes), tuple(analyse(work.policy, context))
    )


def _run(original: dict[str, Any], context: TrustContext, *, scope_tags: bool) -> _Work:
    work = _Work(copy.deepcopy(original), context, scope_tags)
    if not context.usages:
        return work  # nothing is declared for this role: nothing to enforce
    if isinstance(work.policy["Statement"], dict):
        work.policy["Statement"] = [work.policy["Statement"]]
    broken = _broken_usages(work)
    _split_shared_statements(work, split_all=bool(broken))
    for usage in broken:
        _grant(work, usage)
    for view in work.views():
        if view.allows and view.is_pods_only:
            _harden(work, view)
    return work


def _broken_usages(work: _Work) -> list[Usage]:
    current = work.views()
    return [
        usage
        for usage in work.context.usages
        if any(v.allowed is Tri.FALSE for v in verdicts(current, usage))
    ]


def _needs_hardening(work: _Work, view: StatementView) -> bool:
    scoping = work.scope_tags and not has_tag_scoping(view)
    return not has_source_protection(view) or scoping


def _split_shared_statements(work: _Work, *, split_all: bool) -> None:
    """Give the pod principal its own statement wherever that statement must change."""
    shared = [
        v
        for v in work.views()
        if v.allows and v.names_pod_principal and not v.is_pods_only and "Action" in v.raw
    ]
    for view in reversed(shared):  # back to front keeps earlier indices valid
        if split_all or _needs_hardening(work, view):
            _split(work, view)


def _candidates(work: _Work) -> list[StatementView]:
    return [v for v in work.views() if v.allows and v.is_pods_only and "Action" in v.raw]


def _split(work: _Work, view: StatementView) -> None:
    shared = view.raw
    services = [s for s in as_list(shared["Principal"]["Service"]) if s != POD_PRINCIPAL]
    if services:
        shared["Principal"]["Service"] = services if len(services) > 1 else services[0]
    else:
        del shared["Principal"]["Service"]
    pods = {k: copy.deepcopy(v) for k, v in shared.items() if k not in ("Sid", "Principal")}
    pods["Principal"] = {"Service": POD_PRINCIPAL}
    if "Sid" in shared:
        pods = {"Sid": _unique_sid(work, f"{shared['Sid']}PodIdentity"), **pods}
    work.statements.insert(view.index + 1, pods)
    work.changes.append(
        f"moved {POD_PRINCIPAL} from Statement[{view.index}] into its own statement "
        f"Statement[{view.index + 1}] so it can be hardened without touching other principals"
    )


def _unique_sid(work: _Work, wanted: str) -> str:
    taken = {s.get("Sid") for s in work.statements}
    candidate, n = wanted, 2
    while candidate in taken:
        candidate, n = f"{wanted}{n}", n + 1
    return candidate


def _new_statement(work: _Work) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": _unique_sid(work, NEW_STATEMENT_SID),
        "Effect": "Allow",
        "Principal": {"Service": POD_PRINCIPAL},
        "Action": [],
    }
    work.statements.append(statement)
    work.changes.append(f"added statement {statement['Sid']} trusting {POD_PRINCIPAL}")
    return statement


def _grant(work: _Work, usage: Usage) -> None:
    """Make `usage` allowed with the smallest edit of a pod statement.

    A statement that already grants the action but whose conditions cannot be
    widened (session tags on a tag-less association, Null, unsupported
    operators) is a deliberate restriction: it is never bypassed, the usage
    stays reported. A missing action goes to the first statement whose
    conditions admit the usage, or to a new statement.
    """
    context = request_context(usage)
    for verdict in verdicts(work.views(), usage):
        if verdict.allowed is not Tri.FALSE:
            continue
        candidates = _candidates(work)
        covering = [c for c in candidates if c.covers(verdict.action)]
        target = _first_widenable(covering or candidates, usage, context)
        if target is None:
            if covering:
                continue
            target = StatementView(len(work.statements), _new_statement(work))
        if not target.covers(verdict.action):
            target.raw["Action"] = [*as_list(target.raw["Action"]), verdict.action]
            work.changes.append(f"allowed {verdict.action} in Statement[{target.index}]")
        _widen_conditions(work, target, usage)


def _first_widenable(
    views: list[StatementView], usage: Usage, context: Mapping[str, Any]
) -> StatementView | None:
    for view in views:
        failing = evaluate(view.condition(), context).failing
        if all(condition_repairable(op, key, usage) for op, key in failing):
            return view
    return None


def _widen_conditions(work: _Work, view: StatementView, usage: Usage) -> None:
    context = request_context(usage)
    result = evaluate(view.condition(), context)
    if not all(condition_repairable(op, key, usage) for op, key in result.failing):
        return
    for operator, key in result.failing:
        _widen(view.raw, operator, key, context)
        work.changes.append(
            f"widened Statement[{view.index}] condition {operator} {key} to admit {usage}"
        )


def _widen(
    statement: dict[str, Any], raw_operator: str, key: str, context: Mapping[str, Any]
) -> None:
    operator = parse_operator(raw_operator)
    wanted = lookup(context, key)
    if not isinstance(wanted, list):  # condition_repairable rules this out
        raise TypeError(f"cannot widen {key}: no value in the request")
    block = statement["Condition"][raw_operator]
    current = [str(v) for v in as_list(block[key])]
    if operator.negated:
        kept = [p for p in current if not any(value_matches(operator, p, v) for v in wanted)]
        if kept:
            block[key] = kept if len(kept) > 1 else kept[0]
            return
        del block[key]
        if not block:
            del statement["Condition"][raw_operator]
        if not statement["Condition"]:
            del statement["Condition"]
        return
    additions = [v for v in wanted if not any(value_matches(operator, p, v) for p in current)]
    if operator.qualifier == "ForAnyValue":
        additions = additions[:1]
    block[key] = current + additions


def _harden(work: _Work, view: StatementView) -> None:
    condition = view.raw.setdefault("Condition", {})
    equals = condition.get("StringEquals", {})
    if not has_source_protection(view):
        accounts = work.context.accounts
        equals["aws:SourceAccount"] = accounts[0] if len(accounts) == 1 else accounts
        work.changes.append(f"added aws:SourceAccount condition to Statement[{view.index}]")
    if work.scope_tags:
        keys = view.condition_keys()
        for context_key, values in (
            (TAG_NAMESPACE, sorted({u.namespace for u in work.context.usages})),
            (TAG_SERVICE_ACCOUNT, sorted({u.service_account for u in work.context.usages})),
        ):
            if context_key not in keys:
                equals[_CANONICAL_KEYS[context_key]] = values[0] if len(values) == 1 else values
                work.changes.append(
                    f"scoped Statement[{view.index}] to declared {_CANONICAL_KEYS[context_key]}"
                )
    if equals:
        condition["StringEquals"] = equals
    if not condition:
        del view.raw["Condition"]
