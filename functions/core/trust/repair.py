"""Repair a trust policy: the essential fix always, hardening only when asked.

The essential fix makes each declared usage that cannot work admissible, and
nothing else: a usage the owner's statements leave out (analysis.Standing
EXCLUDED), a Deny, or a condition that cannot be evaluated stops it. Each
declared (namespace, service account) gets one statement of podid's own (see
grants) naming the pod principal with sts:AssumeRole and sts:TagSession,
scoped to the declared cluster ARNs and the account. Nothing the owner wrote
is edited.

Hardening narrows the owner's pod statements: aws:SourceAccount, then one copy
per declared (namespace, service account) the statement admits. Tried whole,
then without scoping, then not at all, whichever first fits the quota; every
tier refused is a PI060 finding. Without consent it is a PI032 finding
carrying the exact policy.

Always: unrelated statements keep content and order; no principal, statement,
pattern or deny-list is removed or edited (conditions only gain keys; a shared
statement hands the pod principal to its own copy); repair(repair(p)) ==
repair(p).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from functions.core.errors import MalformedPolicy
from functions.core.models import Finding, Severity
from functions.core.trust.analysis import (
    Code,
    TrustContext,
    analyse,
    has_source_protection,
    has_tag_scoping,
    review_usage,
)
from functions.core.trust.conditions import SOURCE_ACCOUNT, Usage
from functions.core.trust.document import (
    POD_PRINCIPAL,
    StatementView,
    as_list,
    compact_size,
    parse_policy,
    views,
)
from functions.core.trust.grants import (
    CANONICAL,
    EQUALS,
    add_cluster,
    find_grant,
    grant_sid,
    grant_statement,
    is_podid,
    scope_groups,
    scoped_copy,
    scoped_sid,
)
from functions.core.trust.node_trust import add_node_grant, review_node_usage


@dataclass(frozen=True, slots=True)
class RepairResult:
    policy: dict[str, Any]
    changed: bool
    changes: tuple[str, ...]
    remaining: tuple[Finding, ...]  # the written policy's findings, refusals, proposal
    refusals: tuple[Finding, ...] = ()  # PI060: what did not fit, and what was written instead

    @property
    def still_broken(self) -> bool:
        return any(f.severity is Severity.ERROR for f in self.remaining)


@dataclass
class _Work:
    policy: dict[str, Any]
    context: TrustContext
    changes: list[str] = field(default_factory=list)

    @property
    def statements(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.policy["Statement"]  # a list once work starts
        return found

    def views(self) -> list[StatementView]:
        return views(self.policy)

    def fork(self) -> _Work:
        return _Work(copy.deepcopy(self.policy), self.context, list(self.changes))

    @property
    def size(self) -> int:
        return compact_size(self.policy)


def repair(
    document: str | Mapping[str, Any], context: TrustContext, *, harden: bool = False
) -> RepairResult:
    """Raises MalformedPolicy when the document cannot be read at all."""
    original = parse_policy(document)
    essential = _essential(original, context)
    chosen, refusals = _fitting(original, essential, _hardened(essential) if harden else [])
    written = chosen.policy if chosen else original
    remaining = [*analyse(written, context), *refusals]
    if not harden and chosen is not None:
        remaining += _proposal(chosen)
    return RepairResult(
        written,
        written != original,
        tuple(chosen.changes) if chosen else (),
        tuple(_unique(remaining)),
        tuple(refusals),
    )


def review(document: str | Mapping[str, Any], context: TrustContext) -> list[Finding]:
    """The findings of the policy as it is, and the hardening podid would propose."""
    findings = analyse(document, context)
    try:
        original = parse_policy(document)
    except MalformedPolicy:
        return findings
    return _unique([*findings, *_proposal(_essential(original, context))])


def _essential(original: dict[str, Any], context: TrustContext) -> _Work:
    work = _Work(copy.deepcopy(original), context)
    if isinstance(work.policy["Statement"], dict):
        work.policy["Statement"] = [work.policy["Statement"]]
    owners = views(original)  # judged on what the owner wrote, not on podid's additions
    for usage in context.usages:
        if review_usage(owners, usage).grantable:
            _grant(work, usage)
    for node_usage in context.node_usages:
        if review_node_usage(owners, node_usage).grantable:
            change = add_node_grant(work.statements, node_usage)
            if change:
                work.changes.append(change)
    return work


def _grant(work: _Work, usage: Usage) -> None:
    existing = find_grant(work.statements, usage)
    if existing is None:
        statement = grant_statement(_unique_sid(work, grant_sid(usage)), usage)
        work.statements.append(statement)
        work.changes.append(
            f"added statement {statement['Sid']} trusting {POD_PRINCIPAL} for "
            f"{usage.namespace}/{usage.service_account} from {usage.cluster_arn} only"
        )
    elif add_cluster(existing, usage.cluster_arn):
        work.changes.append(
            f"admitted {usage.cluster_arn} in statement {existing['Sid']} "
            f"({usage.namespace}/{usage.service_account})"
        )


def _hardened(essential: _Work) -> list[_Work]:
    """Hardening tiers, best first: whole, then aws:SourceAccount alone."""
    tiers: list[_Work] = []
    for scope in (essential.context.wants_tag_scoping, False):
        work = essential.fork()
        _harden(work, scope=scope)
        if work.policy != essential.policy and all(t.policy != work.policy for t in tiers):
            tiers.append(work)
    return tiers


def _harden(work: _Work, *, scope: bool) -> None:
    usages = work.context.usages
    for view in reversed(work.views()):  # back to front keeps earlier indices valid
        shared = view.allows and view.names_pod_principal and not view.is_pods_only
        if shared and "Action" in view.raw and _hardenable(view, usages, scope=scope):
            _split(work, view)
    for view in work.views():
        if view.allows and view.is_pods_only and not is_podid(view):
            _add_source_account(work, view)
    if scope:
        for view in reversed(work.views()):
            if view.allows and view.is_pods_only and not is_podid(view):
                _scope(work, view)


def _hardenable(view: StatementView, usages: tuple[Usage, ...], *, scope: bool) -> bool:
    scopable = scope and not has_tag_scoping(view) and scope_groups(view, usages) is not None
    return not has_source_protection(view) or scopable


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


def _add_source_account(work: _Work, view: StatementView) -> None:
    if has_source_protection(view):
        return
    accounts = work.context.accounts
    condition = view.raw.setdefault("Condition", {})
    condition.setdefault(EQUALS, {})[CANONICAL[SOURCE_ACCOUNT]] = (
        accounts[0] if len(accounts) == 1 else accounts
    )
    work.changes.append(f"added aws:SourceAccount condition to Statement[{view.index}]")


def _scope(work: _Work, view: StatementView) -> None:
    if has_tag_scoping(view):
        return
    groups = scope_groups(view, work.context.usages)
    if groups is None:
        return
    copies = [
        scoped_copy(view.raw, _unique_sid(work, scoped_sid(pair)), pair, clusters)
        for pair, clusters in groups.items()
    ]
    work.statements[view.index : view.index + 1] = copies
    pairs = ", ".join(f"{ns}/{sa}" for ns, sa in groups)
    work.changes.append(
        f"scoped Statement[{view.index}] to its declared usages, one statement per namespace "
        f"and service account ({pairs}), each with its cluster ARNs"
    )


def _unique_sid(work: _Work, wanted: str) -> str:
    taken = {s.get("Sid") for s in work.statements}
    candidate, n = wanted, 2
    while candidate in taken:
        candidate, n = f"{wanted}{n}", n + 1
    return candidate


def _fitting(
    original: dict[str, Any], essential: _Work, tiers: list[_Work]
) -> tuple[_Work | None, list[Finding]]:
    """The first candidate that fits the quota (an unchanged policy always does),
    and a finding for every tier that did not."""
    quota = essential.context.max_policy_chars
    candidates = [*tiers, essential]
    chosen = next(
        (c for c in candidates if c.policy == original or c.size <= quota),
        None,
    )
    refused = candidates[: candidates.index(chosen)] if chosen else candidates
    refusals = []
    hardening = [t for t in refused if t is not essential]
    if hardening:
        sizes = " / ".join(str(t.size) for t in hardening)
        instead = (
            "wrote aws:SourceAccount without per-usage scoping"
            if chosen is not None and chosen is not essential
            else "wrote the essential fix only"
            if chosen is not None and chosen.policy != original
            else "wrote no hardening"
        )
        refusals.append(
            Finding(
                code=Code.POLICY_TOO_LARGE,
                severity=Severity.WARNING,
                message=f"hardening would make the trust policy {sizes} characters long, over "
                f"the trust policy quota of {quota}: {instead}; harden it by hand or raise the "
                "IAM quota (and MAX_TRUST_POLICY_CHARS)",
            )
        )
    if essential in refused:
        refusals.append(
            Finding(
                code=Code.POLICY_TOO_LARGE,
                severity=Severity.ERROR,
                message=f"the essential fix (the pod principal and actions for each declared "
                f"usage) would make the trust policy {essential.size} characters long, over the "
                f"trust policy quota of {quota}: nothing was written; repair it by hand or raise "
                "the IAM quota (and MAX_TRUST_POLICY_CHARS)",
            )
        )
    return chosen, refusals


def _proposal(essential: _Work) -> list[Finding]:
    """Hardening as a finding carrying the exact policy it would write."""
    tiers = _hardened(essential)
    if not tiers:
        return []
    chosen, refusals = _fitting(essential.policy, essential, tiers)
    if chosen is None or chosen is essential:
        return refusals
    context = essential.context
    done = chosen.changes[len(essential.changes) :]
    return [
        *refusals,
        Finding(
            code=Code.HARDENING_PROPOSED,
            severity=Severity.INFO,
            message=f"hardening proposed ({'; '.join(done)}); written only for "
            f"{context.harden_opt_in}, proposedPolicy is the exact trust policy it would "
            "write (apply it by hand, or opt in)",
            proposed_policy=json.dumps(chosen.policy, separators=(",", ":")),
        ),
    ]


def _unique(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, str]] = set()
    result = []
    for finding in findings:
        if (finding.code, finding.message) not in seen:
            seen.add((finding.code, finding.message))
            result.append(finding)
    return result
