"""What to record after a cluster sync: one status per association key.

Pure: given what was wanted, what was there, what was done and what failed,
say which statuses to write, which to delete, and what each declaration's
per-cluster problem now is. The flow applies the decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from functions.core.fleet import DesiredState
from functions.core.models import (
    ActualAssociation,
    AssociationKey,
    AssociationStatus,
    DesiredAssociation,
    SyncState,
)
from functions.core.places import ClusterRef
from functions.core.planner import Operation, OpKind

# Running pods keep the credentials they hold until the SDK refreshes them:
# EKS Auth issues 6-hour credentials, so a role change reaches them by then.
CREDENTIAL_LIFETIME = timedelta(hours=6)
# Conflicts are the declarations' own state (sync records it on every side);
# what a cluster adds is why applying failed there.
_PROBLEM_STATES = (SyncState.ERROR, SyncState.BLOCKED)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one sync pass did on a cluster."""

    applied: Mapping[AssociationKey, Operation]
    drifted: Mapping[AssociationKey, Operation]
    failed: Mapping[AssociationKey, str]
    tokens: Mapping[AssociationKey, str]  # clientRequestToken of each applied write
    owned: frozenset[str] = frozenset()  # association ids podid owns after the pass
    planned: Mapping[AssociationKey, Operation] = field(default_factory=dict)  # plan mode
    blocked: Mapping[AssociationKey, str] = field(default_factory=dict)  # foreign id per key


@dataclass(slots=True)
class StatusDecision:
    save: list[AssociationStatus] = field(default_factory=list)  # version = the one read
    delete: list[AssociationStatus] = field(default_factory=list)
    after: dict[AssociationKey, AssociationStatus] = field(default_factory=dict)
    # declaration id -> its problem on this cluster now (None: cleared)
    problems: dict[str, str | None] = field(default_factory=dict)


def decide_statuses(
    cluster: ClusterRef,
    *,
    desired: Mapping[AssociationKey, DesiredAssociation],
    desired_state: DesiredState,
    statuses: Mapping[AssociationKey, AssociationStatus],
    final: Mapping[AssociationKey, ActualAssociation | None],
    hold: set[AssociationKey],
    outcome: Outcome,
    now: datetime,
) -> StatusDecision:
    conflicts = {c.key: c.message for c in desired_state.conflicts if c.key.cluster == cluster}
    rejected = {
        r.key: r.reason for r in desired_state.rejections if r.key and r.key.cluster == cluster
    }
    decision = StatusDecision(after=dict(statuses))
    for key in sorted(set(desired) | set(conflicts) | set(rejected) | set(statuses)):
        association = final.get(key)
        previous = statuses.get(key)
        wanted = desired.get(key)
        planned_delete = key in outcome.planned and wanted is None
        if wanted is None and key not in conflicts and key not in rejected and not planned_delete:
            if key in hold and previous is not None:
                continue  # held (invalid declaration): keep its last status
            if previous is not None and association is None:
                decision.delete.append(previous)
                del decision.after[key]
                _note(decision, previous, None)
            continue
        if key in conflicts:
            state, reason = SyncState.CONFLICT, conflicts[key]
        elif key in rejected:
            state, reason = SyncState.ERROR, rejected[key]
        elif key in outcome.failed:
            state, reason = SyncState.ERROR, outcome.failed[key]
        elif key in outcome.planned:
            state = SyncState.PENDING
            reason = f"plan mode: would {outcome.planned[key].describe()}"
        elif key in outcome.blocked:
            state = SyncState.BLOCKED
            reason = (
                f"association {outcome.blocked[key]} was not created by podid, which leaves it "
                "alone: delete it, or set adopt: true on the declaration (enforce mode) to take "
                "it over"
            )
        elif key in outcome.drifted:
            state = SyncState.DRIFTED
            reason = f"drift reported (audit mode): {outcome.drifted[key].describe()}"
        else:
            state, reason = SyncState.IN_SYNC, None
        status = AssociationStatus(
            key=key,
            declaration_id=(wanted.declaration_id if wanted else None)
            or (previous.declaration_id if previous else None),
            association_id=association.association_id if association else None,
            association_arn=association.association_arn if association else None,
            observed=association.spec if association else None,
            external_id=association.external_id if association else None,
            owned=association is not None and association.association_id in outcome.owned,
            state=state,
            reason=reason,
            last_synced_at=now,
            effective_at=_effective_at(outcome.applied.get(key), previous, now),
            last_write=outcome.tokens.get(key, previous.last_write if previous else None),
            version=previous.version if previous else 0,
        )
        decision.after[key] = status
        if previous is not None and previous.same_as(status):
            continue
        decision.save.append(status)
        _note(decision, previous, status)
    return decision


def _note(
    decision: StatusDecision, previous: AssociationStatus | None, now: AssociationStatus | None
) -> None:
    """A declaration's per-cluster problem changes when its status enters,
    leaves or changes an Error or Blocked (a declaration has one key per cluster)."""
    subject = now or previous
    if subject is None or not subject.declaration_id:
        return
    if now is not None and now.state in _PROBLEM_STATES:
        key = now.key
        decision.problems[subject.declaration_id] = (
            f"{key.namespace}/{key.service_account}: {now.state.value}: {now.reason}"
        )
    elif previous is not None and previous.state in _PROBLEM_STATES:
        decision.problems[subject.declaration_id] = None


def _effective_at(
    op: Operation | None, previous: AssociationStatus | None, now: datetime
) -> datetime | None:
    if op is None:
        return previous.effective_at if previous else now
    if op.kind is OpKind.CREATE or not op.updates_association:
        return now  # new pods get it at once (pods started earlier need a restart)
    return now + CREDENTIAL_LIFETIME
