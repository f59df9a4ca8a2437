"""What a cluster sync may do with the planner's operations, decided without I/O.

The flow reads (statuses, EKS), asks these functions, then writes: which
association ids are podid's, which declared keys may be adopted, which
operations are only reported (plan mode, drift in audit mode) and which are
made, and whether the cluster's map must be pushed afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from functions.core.association_map import build_association_map, canonical_json
from functions.core.models import (
    ActualAssociation,
    AssociationKey,
    AssociationSpec,
    AssociationStatus,
    Cluster,
    Declaration,
    DesiredAssociation,
    Mode,
    PushedMap,
    SyncState,
    least_writing,
)
from functions.core.planner import Operation, OpKind


def effective_mode(declaration: Declaration | None, default: Mode) -> Mode:
    """A declaration may ask for less than the deployment allows, never more:
    a table writer cannot turn an audit deployment into an enforcing one."""
    return least_writing(default, declaration.mode if declaration else None)


def heals(heal_drift: bool | None, declaration: Declaration | None, default: Mode) -> bool:
    """`heal_drift` None: per declaration mode (audit reports drift, enforce heals)."""
    if heal_drift is not None:
        return heal_drift
    return effective_mode(declaration, default) is Mode.ENFORCE


def owned_ids(statuses: Mapping[AssociationKey, AssociationStatus]) -> set[str]:
    """Association ids podid recorded as created by itself (a tag proves nothing)."""
    return {s.association_id for s in statuses.values() if s.owned and s.association_id}


def adoptable_keys(
    desired: Mapping[AssociationKey, DesiredAssociation],
    by_id: Mapping[str, Declaration],
    heal_drift: bool | None,
    mode: Mode,
) -> set[AssociationKey]:
    """Adoption is explicit (the declaration asks) and only where podid may heal."""
    return {
        key
        for key, wanted in desired.items()
        if (declaration := by_id.get(wanted.declaration_id)) is not None
        and declaration.adopt
        and heals(heal_drift, declaration, mode)
    }


def same_spec(one: AssociationSpec, other: AssociationSpec) -> bool:
    return canonical_json(one.model_dump()) == canonical_json(other.model_dump())


def is_drift(op: Operation, status: AssociationStatus | None) -> bool:
    """EKS changed under a declaration that did not: someone edited by hand."""
    if status is None or status.state not in (SyncState.IN_SYNC, SyncState.DRIFTED):
        return False
    if op.kind is OpKind.DELETE:
        return False  # only an owned, undeclared association is deleted: intent, not drift
    if status.observed is None or op.spec is None:
        return False
    return same_spec(status.observed, op.spec)


@dataclass(slots=True)
class Triage:
    """The planner's operations sorted by what the sync does with each, in plan order."""

    planned: list[Operation] = field(default_factory=list)  # plan mode: reported, not made
    drifted: list[Operation] = field(default_factory=list)  # drift podid may not heal
    apply: list[Operation] = field(default_factory=list)


def triage(
    operations: Iterable[Operation],
    statuses: Mapping[AssociationKey, AssociationStatus],
    by_id: Mapping[str, Declaration],
    *,
    heal_drift: bool | None,
    mode: Mode,
) -> Triage:
    """Plan mode makes nothing; drift is healed only where podid may heal it
    (`heal_drift`, else the declaration's effective mode); the rest is made."""
    result = Triage()
    for op in operations:
        if mode is Mode.PLAN:
            result.planned.append(op)
        elif is_drift(op, statuses.get(op.key)) and not heals(
            heal_drift, by_id.get(op.declaration_id or ""), mode
        ):
            result.drifted.append(op)
        else:
            result.apply.append(op)
    return result


def live_associations(statuses: Iterable[AssociationStatus]) -> list[ActualAssociation]:
    """Associations known to exist, as last observed: what the pushed map lists."""
    return [
        ActualAssociation(key=s.key, association_id=s.association_id, spec=s.observed)
        for s in statuses
        if s.observed is not None and s.association_id
    ]


def map_push_needed(
    cluster: Cluster, statuses: Iterable[AssociationStatus], pushed: PushedMap | None
) -> bool:
    """The map the statuses make differs from the one last pushed; a cluster never
    pushed to gets one only when enrolled (one that left gets its map emptied)."""
    built = build_association_map(cluster, live_associations(statuses))
    return pushed.sha256 != built.sha256 if pushed is not None else cluster.enrolled
