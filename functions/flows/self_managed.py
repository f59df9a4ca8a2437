"""Reconcile a self-managed cluster: no EKS call at all (EKS Pod Identity does
not exist there). Its associations are the entries of the map podid pushes;
this records their statuses and says whether the map must be pushed."""

from __future__ import annotations

from functions.core.fleet import DesiredState
from functions.core.models import Cluster, Mode
from functions.core.planner import OpKind
from functions.core.self_managed import decide_self_managed
from functions.dal.repository import StaleWrite
from functions.flows.recording import (
    REPLAN_ATTEMPTS,
    ClusterResult,
    StatusKeptChanging,
    write_statuses,
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
            logger.info("status changed under the sync, re-planning", cluster=str(cluster.ref))
    raise StatusKeptChanging(f"cluster {cluster.ref}: statuses kept changing during the sync")


def _sync_once(svc: Services, cluster: Cluster, desired_state: DesiredState) -> ClusterResult:
    now = svc.clock()
    operations, decision = decide_self_managed(
        cluster.ref,
        desired=desired_state.for_cluster(cluster.ref) if cluster.enrolled else {},
        desired_state=desired_state,
        statuses=svc.repo.association_statuses(cluster.ref),
        mode=svc.settings.mode,
        now=now,
    )
    result = ClusterResult(cluster.ref)
    if svc.settings.mode is Mode.PLAN:
        result.planned = operations
    else:
        result.applied = operations
    write_statuses(svc, cluster, decision, result, now=now)
    logger.info(
        "self-managed cluster reconciled (map entries only, no EKS call)",
        cluster=str(cluster.ref),
        creates=sum(op.kind is OpKind.CREATE for op in operations),
        updates=sum(op.kind is OpKind.UPDATE for op in operations),
        deletes=sum(op.kind is OpKind.DELETE for op in operations),
    )
    return result
