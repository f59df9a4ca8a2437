"""What a declaration will meet once written: conflicts with the others, and
target clusters EKS does not have. Read-only; shared by declare, import, delete,
plan and wait."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from functions.core.places import Unreachable

if TYPE_CHECKING:
    from functions.core.fleet import Conflict, DesiredState
    from functions.core.models import Cluster, Declaration
    from functions.dal.repository import DeclarationSet
    from functions.flows.services import Services


@dataclass
class Fleet:
    """The table's declarations (those about to be written in place of theirs),
    expanded onto the enrolled clusters."""

    declarations: DeclarationSet
    clusters: list[Cluster]
    desired: DesiredState

    @property
    def enrolled(self) -> list[Cluster]:
        return [c for c in self.clusters if c.enrolled]


def fleet_with(svc: Services, changed: Iterable[Declaration] = ()) -> Fleet:
    from functions.core.fleet import expand
    from functions.dal.repository import DeclarationSet

    new = list(changed)
    declarations = svc.repo.load_declarations().replacing(
        [d.id for d in new], DeclarationSet(valid=new)
    )
    clusters = svc.repo.list_clusters()
    desired = expand(
        declarations.valid,
        [c for c in clusters if c.enrolled],
        managed_by=svc.settings.owner,
        scope=svc.settings.scope,
    )
    return Fleet(declarations, clusters, desired)


def conflict_messages(conflicts: Iterable[Conflict], ids: Iterable[str]) -> list[str]:
    """One message per pair of disagreeing asks involving `ids`, naming every
    cluster it happens on (a fleet-wide conflict is one line, not one per cluster)."""
    wanted = set(ids)
    grouped: dict[tuple[tuple[str, ...], tuple[str, ...]], list[Conflict]] = defaultdict(list)
    for conflict in conflicts:
        if wanted & set(conflict.declaration_ids):
            grouped[(conflict.declaration_ids, conflict.role_arns)].append(conflict)
    messages = []
    for same in grouped.values():
        others = [str(c.key.cluster) for c in same[1:]]
        also = f" (the same on cluster(s) {', '.join(others)})" if others else ""
        messages.append(same[0].message + also)
    return messages


def missing_clusters(svc: Services, declaration: Declaration, fleet: Fleet) -> list[str]:
    """Clusters named in target.clusters that EKS does not have (an existing
    one that is not enrolled yet is enrolled by the declaration)."""
    from functions.core.places import named_by

    unmatched = set(declaration.target.unmatched(fleet.enrolled))

    def absent(selector: str) -> bool:
        (ref,) = named_by(selector, [svc.home])
        try:
            return svc.eks_in(ref.place).describe_cluster(ref) is None
        except Unreachable:
            return True

    return [name for name in declaration.target.clusters if name in unmatched and absent(name)]


def missing_cluster_message(svc: Services, declaration: Declaration, name: str) -> str:
    return (
        f"cluster {name!r} in target.clusters of {declaration.id!r} does not exist in EKS "
        f"(DescribeCluster in {svc.settings.aws_region} found none): fix the name or create "
        "the cluster; the declaration applies there once it exists"
    )


def empty_fleet_message(declaration: Declaration) -> str:
    from functions.core.models import FLEET_TAG

    target = declaration.target
    narrowed = (
        " within target.accounts, target.regions and target.organizationalUnits"
        if any(
            v is not None for v in (target.accounts, target.regions, target.organizational_units)
        )
        else ""
    )
    return (
        f"no enrolled cluster is in fleet {target.fleet!r}{narrowed} (target of "
        f"{declaration.id!r}): tag a cluster {FLEET_TAG}={target.fleet} and `podid reconcile` "
        "enrolls it, or fix the target"
    )


def fleet_is_empty(declaration: Declaration, fleet: Fleet) -> bool:
    target = declaration.target
    return target.fleet is not None and not any(
        c.fleet == target.fleet and target.matches(c) for c in fleet.enrolled
    )


def warnings_for(svc: Services, declarations: list[Declaration]) -> list[str]:
    """Everything a new or changed declaration will meet, before it is written."""
    from functions.core.fleet import narrowed_out

    fleet = fleet_with(svc, declarations)
    ids = {d.id for d in declarations}
    found = conflict_messages(fleet.desired.conflicts, ids)
    for declaration in declarations:
        found += [
            missing_cluster_message(svc, declaration, name)
            for name in missing_clusters(svc, declaration, fleet)
        ]
        if fleet_is_empty(declaration, fleet):
            found.append(empty_fleet_message(declaration))
    # clusters the narrowing leaves out that the declaration names, or whose OU is unknown
    found += [
        f"{d.id!r}: {reason}" for d in declarations for reason in narrowed_out(d, fleet.enrolled)
    ]
    # per-cluster refusals (role in another account, the EKS quota); the
    # not-enrolled ones (key None) are covered by missing_clusters
    found += [
        f"{r.declaration_id!r} on {r.key.cluster}: {r.reason}"
        for r in fleet.desired.rejections
        if r.declaration_id in ids and r.key is not None
    ]
    return found
