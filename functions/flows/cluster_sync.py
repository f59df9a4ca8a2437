"""Bring one cluster's pod identity associations to the declared state.

Level-triggered: read desired (declarations) and actual (EKS), plan, apply,
record status. Running it twice changes nothing; a crash between apply and
status write is healed by the next run (clientRequestTokens make the retried
calls the same calls). Statuses are written only when they change, so a
no-op pass writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from botocore.exceptions import ClientError

from functions.aws.eks import AssociationExists, AssociationSummary, request_token
from functions.core.association_map import build_association_map, canonical_json
from functions.core.fleet import DesiredState
from functions.core.models import (
    DECLARATION_TAG,
    ActualAssociation,
    AssociationKey,
    AssociationSpec,
    AssociationStatus,
    Cluster,
    Declaration,
    DesiredAssociation,
    Mode,
    SyncState,
)
from functions.core.planner import Operation, OpKind, plan
from functions.dal.repository import DeclarationSet, StaleWrite
from functions.flows.services import Services
from functions.observability import logger, metrics

# Running pods keep the credentials they hold until the SDK refreshes them:
# EKS Auth issues 6-hour credentials, so a role change reaches them by then.
CREDENTIAL_LIFETIME = timedelta(hours=6)


@dataclass
class ClusterResult:
    cluster: str
    applied: list[Operation] = field(default_factory=list)
    drifted: list[Operation] = field(default_factory=list)
    failed: dict[AssociationKey, str] = field(default_factory=dict)
    statuses_written: int = 0
    push_needed: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed


def observe(
    svc: Services,
    cluster: str,
    statuses: dict[AssociationKey, AssociationStatus],
    *,
    deep: bool = False,
    suspects: Iterable[str] = (),
) -> dict[AssociationKey, ActualAssociation]:
    """Actual associations: list pages, then describe only what is not known
    (new ids, suspects named by an event, or everything when deep)."""
    suspect_ids = set(suspects)
    actual: dict[AssociationKey, ActualAssociation] = {}
    for summary in svc.eks.list_associations(cluster):
        known = _known(summary, statuses.get(summary.key))
        if known is not None and not deep and summary.association_id not in suspect_ids:
            actual[summary.key] = known
            continue
        described = svc.eks.describe_association(cluster, summary.association_id)
        if described is not None:
            actual[summary.key] = described
    return actual


def _known(
    summary: AssociationSummary, status: AssociationStatus | None
) -> ActualAssociation | None:
    if status is None or status.observed is None or status.association_id != summary.association_id:
        return None
    return ActualAssociation(
        key=summary.key,
        association_id=summary.association_id,
        association_arn=summary.association_arn,
        spec=status.observed,
    )


def effective_mode(declaration: Declaration | None, default: Mode) -> Mode:
    return declaration.mode if declaration and declaration.mode else default


def sync_cluster(
    svc: Services,
    cluster: Cluster,
    declarations: DeclarationSet,
    desired_state: DesiredState,
    *,
    heal_drift: bool | None = None,
    deep: bool = False,
    suspects: Iterable[str] = (),
) -> ClusterResult:
    """`heal_drift` None: per declaration mode (audit reports drift, enforce heals)."""
    result = ClusterResult(cluster.name)
    owner = svc.settings.owner
    statuses = svc.repo.association_statuses(cluster.name)
    actual = observe(svc, cluster.name, statuses, deep=deep, suspects=suspects)
    desired = desired_state.for_cluster(cluster.name)
    by_id = {d.id: d for d in declarations.valid}
    hold = set(desired_state.held_keys(cluster.name))
    # An invalid record keeps what it had: a typo never removes live credentials.
    hold |= {
        key
        for key, association in actual.items()
        if association.spec.tags.get(DECLARATION_TAG) in declarations.invalid
    }
    final: dict[AssociationKey, ActualAssociation | None] = dict(actual)
    for op in plan(desired, actual, owner=owner, hold=hold):
        declaration = by_id.get(op.declaration_id or "")
        if _is_drift(op, statuses.get(op.key)) and not _heals(
            heal_drift, declaration, svc.settings.mode
        ):
            result.drifted.append(op)
            continue
        try:
            final[op.key] = _apply(svc, op, statuses.get(op.key))
            result.applied.append(op)
        except (ClientError, ValueError) as error:
            reason = _reason(error)
            logger.warning("apply failed", operation=op.describe(), reason=reason)
            result.failed[op.key] = reason
    _record(
        svc,
        cluster,
        result,
        desired=desired,
        desired_state=desired_state,
        statuses=statuses,
        final=final,
        hold=hold,
    )
    _count(result)
    return result


def _is_drift(op: Operation, status: AssociationStatus | None) -> bool:
    """EKS changed under a declaration that did not: someone edited by hand."""
    if status is None or status.state not in (SyncState.IN_SYNC, SyncState.DRIFTED):
        return False
    if op.kind is OpKind.DELETE:
        return False  # only an owned, undeclared association is deleted: intent, not drift
    return status.observed is not None and op.spec is not None and _same(status.observed, op.spec)


def _same(one: AssociationSpec, other: AssociationSpec) -> bool:
    return canonical_json(one.model_dump()) == canonical_json(other.model_dump())


def _heals(heal_drift: bool | None, declaration: Declaration | None, default: Mode) -> bool:
    if heal_drift is not None:
        return heal_drift
    return effective_mode(declaration, default) is Mode.ENFORCE


def _apply(
    svc: Services, op: Operation, status: AssociationStatus | None
) -> ActualAssociation | None:
    generation = status.version if status else 0
    if op.kind is OpKind.DELETE:
        if op.association_id:
            svc.eks.delete_association(op.key.cluster, op.association_id)
        return None
    if op.spec is None:
        raise ValueError(f"{op.describe()} has no desired spec")
    token = request_token(op.kind, op.key, canonical_json(op.spec.model_dump()), generation)
    if op.kind is OpKind.CREATE:
        return _create_or_adopt(svc, op.key, op.spec, token)
    if op.association_id is None:
        raise ValueError(f"{op.describe()} has no association id")
    current = None
    if op.updates_association:
        current = svc.eks.update_association(op.key, op.association_id, op.spec, token)
        if current is None:  # deleted meanwhile: create it again
            return _create_or_adopt(svc, op.key, op.spec, token + "-recreate")
    arn = (current.association_arn if current else None) or _arn_of(svc, op)
    svc.eks.set_tags(arn, op.tags_to_set, op.tags_to_remove)
    return ActualAssociation(
        key=op.key, association_id=op.association_id, association_arn=arn, spec=op.spec
    )


def _arn_of(svc: Services, op: Operation) -> str:
    found = svc.eks.describe_association(op.key.cluster, op.association_id or "")
    if found is None or found.association_arn is None:
        raise ValueError(f"association {op.association_id} of {op.key} disappeared")
    return found.association_arn


def _create_or_adopt(
    svc: Services, key: AssociationKey, spec: AssociationSpec, token: str
) -> ActualAssociation:
    try:
        return svc.eks.create_association(key, spec, token)
    except AssociationExists:
        # Someone (or a crashed earlier run) created it: adopt instead of failing.
        existing = svc.eks.find_association(key)
        if existing is None:
            raise
        if _same(existing.spec, spec):
            return existing
        adopt = Operation(
            OpKind.UPDATE,
            key,
            spec=spec,
            current=existing.spec,
            association_id=existing.association_id,
            changes=tuple(
                f for f in spec.model_fields if getattr(spec, f) != getattr(existing.spec, f)
            ),
        )
        updated = _apply(svc, adopt, None)
        if updated is None:
            raise ValueError(f"could not adopt the existing association for {key}") from None
        return updated


def _reason(error: Exception) -> str:
    if isinstance(error, ClientError):
        detail = error.response.get("Error", {})
        return f"{detail.get('Code', 'Error')}: {detail.get('Message', str(error))}"
    return str(error)


def _record(
    svc: Services,
    cluster: Cluster,
    result: ClusterResult,
    *,
    desired: Mapping[AssociationKey, DesiredAssociation],
    desired_state: DesiredState,
    statuses: dict[AssociationKey, AssociationStatus],
    final: dict[AssociationKey, ActualAssociation | None],
    hold: set[AssociationKey],
) -> None:
    now = svc.clock()
    conflicts = {c.key: c.message for c in desired_state.conflicts if c.key.cluster == cluster.name}
    rejected = {
        r.key: r.reason for r in desired_state.rejections if r.key and r.key.cluster == cluster.name
    }
    drifted = {op.key: op for op in result.drifted}
    changed = {op.key: op for op in result.applied}
    keys = set(desired) | set(conflicts) | set(rejected) | set(statuses)
    after = dict(statuses)
    for key in sorted(keys):
        association = final.get(key)
        previous = statuses.get(key)
        wanted = desired.get(key)
        if wanted is None and key not in conflicts and key not in rejected:
            if key in hold and previous is not None:
                continue  # held (invalid declaration): keep its last status
            if previous is not None and association is None:
                _delete_status(svc, key, previous, result)
                del after[key]
            continue
        declaration_id = wanted.declaration_id if wanted else None
        if key in conflicts:
            state, reason = SyncState.CONFLICT, conflicts[key]
        elif key in rejected:
            state, reason = SyncState.ERROR, rejected[key]
        elif key in result.failed:
            state, reason = SyncState.ERROR, result.failed[key]
        elif key in drifted:
            state, reason = (
                SyncState.DRIFTED,
                f"drift reported (audit mode): {drifted[key].describe()}",
            )
        else:
            state, reason = SyncState.IN_SYNC, None
        status = AssociationStatus(
            key=key,
            declaration_id=declaration_id or (previous.declaration_id if previous else None),
            association_id=association.association_id if association else None,
            association_arn=association.association_arn if association else None,
            observed=association.spec if association else None,
            state=state,
            reason=reason,
            last_synced_at=now,
            effective_at=_effective_at(changed.get(key), previous, now),
            version=previous.version if previous else 0,
        )
        after[key] = status
        if previous is not None and previous.same_as(status):
            continue
        _save_status(svc, status, result)
    pushed = svc.repo.pushed_map(cluster.name)
    built = build_association_map(cluster, live_associations(after.values()))
    result.push_needed = pushed is None or pushed.sha256 != built.sha256


def _effective_at(
    op: Operation | None, previous: AssociationStatus | None, now: datetime
) -> datetime | None:
    if op is None:
        return previous.effective_at if previous else now
    if op.kind is OpKind.CREATE or not op.updates_association:
        return now  # new pods get it at once (pods started earlier need a restart)
    return now + CREDENTIAL_LIFETIME


def _save_status(svc: Services, status: AssociationStatus, result: ClusterResult) -> None:
    try:
        svc.repo.save_association_status(status)
    except StaleWrite:
        # A concurrent run wrote first; ours reflects what we just applied.
        fresh = svc.repo.association_statuses(status.key.cluster).get(status.key)
        svc.repo.save_association_status(
            status.model_copy(update={"version": fresh.version if fresh else 0})
        )
    result.statuses_written += 1


def _delete_status(
    svc: Services, key: AssociationKey, previous: AssociationStatus, result: ClusterResult
) -> None:
    try:
        svc.repo.delete_association_status(key, previous.version)
    except StaleWrite:
        svc.repo.delete_association_status(key, None)
    result.statuses_written += 1


def live_associations(statuses: Iterable[AssociationStatus]) -> list[ActualAssociation]:
    """Associations known to exist, as last observed: what the pushed map lists."""
    return [
        ActualAssociation(key=s.key, association_id=s.association_id, spec=s.observed)
        for s in statuses
        if s.observed is not None and s.association_id
    ]


def _count(result: ClusterResult) -> None:
    for kind in OpKind:
        done = sum(1 for op in result.applied if op.kind is kind)
        if done:
            metrics.add_metric(name=f"Associations{kind.value.title()}d", unit="Count", value=done)
    if result.drifted:
        metrics.add_metric(name="DriftReported", unit="Count", value=len(result.drifted))
    if result.failed:
        metrics.add_metric(name="AssociationErrors", unit="Count", value=len(result.failed))
