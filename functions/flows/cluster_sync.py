"""Bring one cluster's pod identity associations to the declared state.

Level-triggered: read desired (declarations) and actual (EKS), plan, apply,
record status. Running it twice changes nothing. Every path that changes a
cluster's associations runs here through one FIFO message group per cluster,
so there is one writer per cluster; a status that moved under us anyway
(StaleWrite) means re-read and re-plan, never overwrite.

Each write names one intent with its clientRequestToken (the association,
what it was, what it should be, and the status version that recording the
previous write moved): a retry after a crash reuses it, a new heal gets a new
one. Each response is compared with what was asked. Only associations whose
key podid declares or has recorded are described, so hand-made associations
elsewhere on the cluster cost one list page entry, not a call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from botocore.exceptions import ClientError

from functions.aws.eks import AssociationExists, AssociationSummary, request_token
from functions.core.association_map import canonical_json
from functions.core.fleet import DesiredState
from functions.core.models import (
    DECLARATION_TAG,
    ActualAssociation,
    AssociationKey,
    AssociationSpec,
    AssociationStatus,
    Cluster,
    DesiredAssociation,
    Mode,
    SyncState,
)
from functions.core.places import ClusterRef
from functions.core.planner import Operation, OpKind, foreign, plan, spec_changes
from functions.core.self_managed import decide_self_managed
from functions.core.status import Outcome, decide_statuses
from functions.core.sync_plan import (
    adoptable_keys,
    owned_ids,
    same_spec,
    triage,
)
from functions.dal.repository import DeclarationSet, StaleWrite
from functions.flows.recording import (
    REPLAN_ATTEMPTS,
    ClusterResult,
    StatusKeptChanging,
    write_statuses,
)
from functions.flows.services import Services
from functions.observability import logger, metrics


def observe(
    svc: Services,
    cluster: ClusterRef,
    statuses: dict[AssociationKey, AssociationStatus],
    *,
    relevant: Iterable[AssociationKey],
    deep: bool = False,
    suspects: Iterable[str] = (),
) -> dict[AssociationKey, ActualAssociation]:
    """Actual associations on the keys podid declares or has recorded: list
    pages, then describe only what is not known (new ids, suspects named by an
    event, or every relevant one when deep)."""
    suspect_ids = set(suspects)
    wanted = set(relevant) | set(statuses)
    actual: dict[AssociationKey, ActualAssociation] = {}
    for summary in svc.eks_in(cluster.place).list_associations(cluster):
        if summary.key not in wanted:
            continue  # neither declared nor ours: not our business
        known = _known(summary, statuses.get(summary.key))
        if known is not None and not deep and summary.association_id not in suspect_ids:
            actual[summary.key] = known
            continue
        described = svc.eks_in(cluster.place).describe_association(cluster, summary.association_id)
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
        external_id=status.external_id,
    )


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
    suspect_ids = set(suspects)
    applied: list[Operation] = []
    for _ in range(REPLAN_ATTEMPTS):
        try:
            result = _sync_once(
                svc, cluster, declarations, desired_state, heal_drift, deep, suspect_ids
            )
        except _Replan as replan:
            # describe what we just wrote afresh: the statuses do not show it
            applied += replan.result.applied
            suspect_ids |= {op.association_id for op in replan.result.applied if op.association_id}
            suspect_ids |= replan.written_ids
            logger.info("status changed under the sync, re-planning", cluster=str(cluster.ref))
            continue
        result.applied = applied + result.applied
        _count(result)
        return result
    raise StatusKeptChanging(f"cluster {cluster.ref}: statuses kept changing during the sync")


class _Replan(Exception):
    def __init__(self, result: ClusterResult, written_ids: set[str]) -> None:
        super().__init__(result.cluster)
        self.result, self.written_ids = result, written_ids


def _sync_once(  # noqa: PLR0917 - sync_cluster's arguments, passed through
    svc: Services,
    cluster: Cluster,
    declarations: DeclarationSet,
    desired_state: DesiredState,
    heal_drift: bool | None,
    deep: bool,
    suspects: set[str],
) -> ClusterResult:
    result = ClusterResult(cluster.ref)
    statuses = svc.repo.association_statuses(cluster.ref)
    desired = desired_state.for_cluster(cluster.ref)
    hold = set(desired_state.held_keys(cluster.ref))
    actual = observe(
        svc, cluster.ref, statuses, relevant=set(desired) | hold, deep=deep, suspects=suspects
    )
    by_id = {d.id: d for d in declarations.valid}
    # An invalid record keeps what it had: a typo never removes live credentials.
    hold |= {
        key
        for key, association in actual.items()
        if association.spec.tags.get(DECLARATION_TAG) in declarations.invalid
    }
    mode = svc.settings.mode
    owned = owned_ids(statuses)
    if mode is not Mode.PLAN:
        owned |= _claim_lost_creates(svc, statuses, desired, actual)
    adoptable = adoptable_keys(desired, by_id, heal_drift, mode)
    result.blocked = foreign(desired, actual, owned=owned, adoptable=adoptable)
    final: dict[AssociationKey, ActualAssociation | None] = dict(actual)
    tokens: dict[AssociationKey, str] = {}
    operations = plan(desired, actual, owned=owned, adoptable=adoptable, hold=hold)
    decided = triage(operations, statuses, by_id, heal_drift=heal_drift, mode=mode)
    result.planned, result.drifted = decided.planned, decided.drifted
    for op in decided.planned:
        logger.info("plan mode: change not made", operation=op.describe())
    for op in decided.apply:
        status = statuses.get(op.key)
        token = intent_token(op, status)
        try:
            if op.kind is OpKind.CREATE:
                try:
                    statuses[op.key] = _write_ahead(svc, op, token, status)
                except StaleWrite as stale:
                    raise _Replan(result, set()) from stale
            final[op.key] = _apply(svc, op, token, adopt=op.key in adoptable)
            result.applied.append(op)
            tokens[op.key] = token
            if final[op.key] is not None:
                owned.add(final[op.key].association_id)  # type: ignore[union-attr]
        except (ClientError, ValueError) as error:
            reason = _reason(error)
            logger.warning("apply failed", operation=op.describe(), reason=reason)
            result.failed[op.key] = reason
    try:
        _record(
            svc,
            cluster,
            result,
            desired=desired,
            desired_state=desired_state,
            statuses=statuses,
            final=final,
            hold=hold,
            tokens=tokens,
            owned=frozenset(owned),
        )
    except StaleWrite as stale:
        written = {a.association_id for a in final.values() if a is not None}
        raise _Replan(result, written) from stale
    return result


def preview(
    svc: Services, cluster: ClusterRef, declarations: DeclarationSet, desired_state: DesiredState
) -> tuple[list[Operation], dict[AssociationKey, str]]:
    """What a sync would do now, and the declared keys held by others; reads only."""
    statuses = svc.repo.association_statuses(cluster)
    desired = desired_state.for_cluster(cluster)
    record = svc.repo.get_cluster(cluster)
    if record is not None and record.self_managed:
        # map entries only: nothing in EKS to observe, and nobody else's to hold a key
        operations, _ = decide_self_managed(
            cluster,
            desired=desired,
            desired_state=desired_state,
            statuses=statuses,
            mode=Mode.PLAN,
            now=svc.clock(),
        )
        return operations, {}
    hold = set(desired_state.held_keys(cluster))
    actual = observe(svc, cluster, statuses, relevant=set(desired) | hold)
    owned = owned_ids(statuses)
    by_id = {d.id: d for d in declarations.valid}
    adoptable = adoptable_keys(desired, by_id, None, svc.settings.mode)
    operations = plan(desired, actual, owned=owned, adoptable=adoptable, hold=hold)
    return operations, foreign(desired, actual, owned=owned, adoptable=adoptable)


def _write_ahead(
    svc: Services, op: Operation, token: str, status: AssociationStatus | None
) -> AssociationStatus:
    """Record the create before making it: if the run dies after EKS created
    the association, the next run can prove it is podid's by replaying the
    same token (EKS answers a replay with the association it created)."""
    pending = AssociationStatus(
        key=op.key,
        declaration_id=op.declaration_id,
        observed=status.observed if status else None,
        state=SyncState.PENDING,
        reason=f"creating ({op.describe()})",
        last_synced_at=svc.clock(),
        effective_at=status.effective_at if status else None,
        last_write=token,
        version=status.version if status else 0,
    )
    return svc.repo.save_association_status(pending)


def _claim_lost_creates(
    svc: Services,
    statuses: Mapping[AssociationKey, AssociationStatus],
    desired: Mapping[AssociationKey, DesiredAssociation],
    actual: Mapping[AssociationKey, ActualAssociation],
) -> set[str]:
    """Associations podid created but could not record (a crash after the
    call): a pending create whose token, replayed, answers with that very id."""
    claimed: set[str] = set()
    for key, status in statuses.items():
        found, wanted = actual.get(key), desired.get(key)
        if (
            status.state is not SyncState.PENDING
            or status.association_id
            or not status.last_write
            or found is None
            or wanted is None
        ):
            continue
        try:
            replayed = svc.eks_in(key.cluster.place).create_association(
                key, wanted.spec, status.last_write
            )
        except (AssociationExists, ClientError):
            continue  # not our token's association: someone else's
        if replayed.association_id == found.association_id:
            claimed.add(found.association_id)
    return claimed


def intent_token(op: Operation, status: AssociationStatus | None) -> str:
    """One intended call: what is there, what it should become, and the status
    version (which recording the previous write moved)."""
    return request_token(
        op.kind,
        op.key,
        op.association_id or "",
        canonical_json(op.current.model_dump()) if op.current else "",
        canonical_json(op.spec.model_dump()) if op.spec else "",
        status.version if status else 0,
    )


class WriteMismatch(ValueError):
    """EKS answered a write with something other than what was asked."""


def _apply(
    svc: Services, op: Operation, token: str, *, adopt: bool = False
) -> ActualAssociation | None:
    if op.kind is OpKind.DELETE:
        if op.association_id:
            svc.eks_in(op.key.cluster.place).delete_association(op.key.cluster, op.association_id)
        return None
    if op.spec is None:
        raise ValueError(f"{op.describe()} has no desired spec")
    if op.kind is OpKind.CREATE:
        return _create_or_adopt(svc, op.key, op.spec, token, adopt=adopt)
    if op.association_id is None:
        raise ValueError(f"{op.describe()} has no association id")
    if op.tags_to_set or op.tags_to_remove:
        # tags first: IAM lets podid update only associations carrying its owner tag
        arn = _arn_of(svc, op)
        svc.eks_in(op.key.cluster.place).set_tags(arn, op.tags_to_set, op.tags_to_remove)
    if op.updates_association:
        answer = svc.eks_in(op.key.cluster.place).update_association(
            op.key, op.association_id, op.spec, token
        )
        if answer is None:  # deleted meanwhile: create it again
            return _create_or_adopt(svc, op.key, op.spec, token + "-recreate", adopt=adopt)
        _check(op, answer.spec, tags=True)
    else:
        answer = svc.eks_in(op.key.cluster.place).describe_association(
            op.key.cluster, op.association_id
        )
        if answer is None:
            raise ValueError(f"association {op.association_id} of {op.key} disappeared")
        _check(op, answer.spec, tags=True)
    return answer


def _check(op: Operation, answered: AssociationSpec, *, tags: bool) -> None:
    """The write's response must show what was asked (a reused token returns
    an earlier call's result instead)."""
    if op.spec is None:
        raise ValueError(f"{op.describe()} has no desired spec")
    asked = op.spec if tags else op.spec.model_copy(update={"tags": answered.tags})
    if not same_spec(asked, answered):
        differ = ", ".join(
            f"{name} {getattr(answered, name)!r} (asked {getattr(asked, name)!r})"
            for name in type(asked).model_fields
            if getattr(asked, name) != getattr(answered, name)
        )
        raise WriteMismatch(f"EKS answered {op.describe()} with {differ}")


def _arn_of(svc: Services, op: Operation) -> str:
    found = svc.eks_in(op.key.cluster.place).describe_association(
        op.key.cluster, op.association_id or ""
    )
    if found is None or found.association_arn is None:
        raise ValueError(f"association {op.association_id} of {op.key} disappeared")
    return found.association_arn


def _create_or_adopt(
    svc: Services, key: AssociationKey, spec: AssociationSpec, token: str, *, adopt: bool
) -> ActualAssociation:
    try:
        created = svc.eks_in(key.cluster.place).create_association(key, spec, token)
    except AssociationExists:
        # Someone created one on this key meanwhile: adopt it only when asked to.
        existing = svc.eks_in(key.cluster.place).find_association(key)
        if existing is None:
            raise
        if not adopt:
            raise ValueError(
                f"association {existing.association_id} appeared on {key}, made outside podid; "
                "it is left alone (set adopt: true on the declaration to take it over)"
            ) from None
        if same_spec(existing.spec, spec):
            return existing
        adopt_op = Operation(
            OpKind.UPDATE,
            key,
            spec=spec,
            current=existing.spec,
            association_id=existing.association_id,
            changes=spec_changes(existing.spec, spec),
        )
        updated = _apply(svc, adopt_op, token + "-adopt", adopt=True)
        if updated is None:
            raise ValueError(f"could not adopt the existing association for {key}") from None
        return updated
    _check(Operation(OpKind.CREATE, key, spec=spec), created.spec, tags=True)
    return created


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
    tokens: Mapping[AssociationKey, str],
    owned: frozenset[str],
) -> None:
    """Raises StaleWrite when a status moved since it was read: the caller re-plans."""
    now = svc.clock()
    decision = decide_statuses(
        cluster.ref,
        desired=desired,
        desired_state=desired_state,
        statuses=statuses,
        final=final,
        hold=hold,
        outcome=Outcome(
            applied={op.key: op for op in result.applied},
            drifted={op.key: op for op in result.drifted},
            failed=result.failed,
            tokens=tokens,
            owned=owned,
            planned={op.key: op for op in result.planned},
            blocked=result.blocked,
        ),
        now=now,
    )
    write_statuses(svc, cluster, decision, result, now=now)


def _count(result: ClusterResult) -> None:
    for kind in OpKind:
        done = sum(1 for op in result.applied if op.kind is kind)
        if done:
            metrics.add_metric(name=f"Associations{kind.value.title()}d", unit="Count", value=done)
    if result.drifted:
        metrics.add_metric(name="DriftReported", unit="Count", value=len(result.drifted))
    if result.failed:
        metrics.add_metric(name="AssociationErrors", unit="Count", value=len(result.failed))
