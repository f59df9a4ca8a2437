"""Reconcile a self-managed cluster: no EKS call at all (EKS Pod Identity does
not exist there). Its associations are the entries of the map podid pushes;
this records their statuses and says whether the map must be pushed."""

from __future__ import annotations

from functions.core.association_map import build_association_map
from functions.core.fleet import DesiredState
from functions.core.models import Cluster, Mode
from functions.core.planner import OpKind
from functions.core.self_managed import decide_self_managed
from functions.dal.repository import StaleWrite
from functions.flows.cluster_sync import (
    REPLAN_ATTEMPTS,
    ClusterResult,
    StatusKeptChanging,
    live_associations,
)
from functions.flows.services import Services
from functions.observability import logger


def sync_self_managed(
    svc: Services, cluster: Cluster, desired_state: DesiredState
) -> ClusterResult:
    for _ in range(REPLAN_ATTEMPTS):
        try:
            return _sync_once(svc, cluster, desired_state)
        except StaleWrite:
            logger.info("status changed under the sync, re-planning", cluster=cluster.name)
    raise StatusKeptChanging(f"cluster {cluster.name}: statuses kept changing during the sync")


def _sync_once(svc: Services, cluster: Cluster, desired_state: DesiredState) -> ClusterResult:
    now = svc.clock()
    operations, decision = decide_self_managed(
        cluster.name,
        desired=desired_state.for_cluster(cluster.name) if cluster.enrolled else {},
        desired_state=desired_state,
        statuses=svc.repo.association_statuses(cluster.name),
        mode=svc.settings.mode,
        now=now,
    )
    result = ClusterResult(cluster.name)
    if svc.settings.mode is Mode.PLAN:
        result.planned = operations
    else:
        result.applied = operations
    for gone in decision.delete:
        svc.repo.delete_association_status(gone.key, gone.version)
        result.statuses_written += 1
    for status in decision.save:
        svc.repo.save_association_status(status)
        result.statuses_written += 1
    for declaration_id, problem in sorted(decision.problems.items()):
        svc.repo.note_cluster_problem(declaration_id, cluster.name, problem, now=now)
    pushed = svc.repo.pushed_map(cluster.name)
    built = build_association_map(cluster, live_associations(decision.after.values()))
    result.push_needed = pushed is None or pushed.sha256 != built.sha256
    logger.info(
        "self-managed cluster reconciled (map entries only, no EKS call)",
        cluster=cluster.name,
        creates=sum(op.kind is OpKind.CREATE for op in operations),
        updates=sum(op.kind is OpKind.UPDATE for op in operations),
        deletes=sum(op.kind is OpKind.DELETE for op in operations),
    )
    return result
