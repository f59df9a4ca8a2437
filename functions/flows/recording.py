"""What one cluster's sync did, and how it is recorded: shared by the EKS sync
and the self-managed one (neither flow imports the other)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from functions.core.models import AssociationKey, Cluster
from functions.core.places import ClusterRef
from functions.core.planner import Operation
from functions.core.status import StatusDecision
from functions.core.sync_plan import map_push_needed
from functions.flows.services import Services

# a status that moved under the sync means re-read and re-plan, this many times
REPLAN_ATTEMPTS = 3


@dataclass
class ClusterResult:
    cluster: ClusterRef
    applied: list[Operation] = field(default_factory=list)
    drifted: list[Operation] = field(default_factory=list)
    failed: dict[AssociationKey, str] = field(default_factory=dict)
    planned: list[Operation] = field(default_factory=list)  # plan mode: reported, not made
    blocked: dict[AssociationKey, str] = field(default_factory=dict)  # declared, not ours
    statuses_written: int = 0
    # podid cannot act in the cluster's account and region now (reported on its statuses)
    unreachable: str | None = None
    push_needed: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed


class StatusKeptChanging(Exception):
    """Another writer moved this cluster's statuses on every attempt (retried later)."""


def write_statuses(
    svc: Services,
    cluster: Cluster,
    decision: StatusDecision,
    result: ClusterResult,
    *,
    now: datetime,
) -> None:
    """Records what the status decision says and whether the cluster's map must be pushed.
    Raises StaleWrite when a status moved since it was read: the caller re-plans."""
    for gone in decision.delete:
        svc.repo.delete_association_status(gone.key, gone.version)
        result.statuses_written += 1
    for status in decision.save:
        svc.repo.save_association_status(status)
        result.statuses_written += 1
    for declaration_id, problem in sorted(decision.problems.items()):
        svc.repo.note_cluster_problem(declaration_id, cluster.ref, problem, now=now)
    pushed = svc.repo.pushed_map(cluster.ref)
    result.push_needed = map_push_needed(cluster, decision.after.values(), pushed)
