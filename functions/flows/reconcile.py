"""Drift and fleet membership: scheduled passes and EKS CloudTrail events.

The schedule discovers clusters (enroll new fleet members, forget deleted
ones) and fans out one message per enrolled cluster; each message syncs one
cluster. EKS events done by someone else (an association edited by hand, a
cluster created, deleted or re-tagged) reconcile just what they touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from functions.core.fleet import expand
from functions.dal.repository import DeclarationSet
from functions.events import CloudTrailDetail, ClusterMessage
from functions.flows.cluster_sync import ClusterResult, sync_cluster
from functions.flows.discovery import Discovery, discover, forget, named_clusters, refresh_cluster
from functions.flows.services import Services
from functions.observability import logger, metrics

ASSOCIATION_EVENTS = {
    "CreatePodIdentityAssociation",
    "UpdatePodIdentityAssociation",
    "DeletePodIdentityAssociation",
}
CLUSTER_EVENTS = {"CreateCluster", "DeleteCluster", "TagResource", "UntagResource"}


@dataclass
class PassSummary:
    discovery: Discovery
    clusters: list[str] = field(default_factory=list)
    fanned_out: int = 0


def scheduled_pass(svc: Services, *, deep: bool = False) -> PassSummary:
    declarations = svc.repo.load_declarations()
    clusters, found = discover(svc, declarations.valid, deep=deep)
    summary = PassSummary(found, [c.name for c in clusters if c.enrolled])
    messages = [
        ClusterMessage(cluster=name, reason="schedule", deep=deep).model_dump(mode="json")
        for name in summary.clusters
    ]
    queue = svc.settings.reconcile_queue_url
    if queue:
        summary.fanned_out = svc.messenger.enqueue_per_cluster(queue, messages)
    else:
        for name in summary.clusters:
            message = ClusterMessage(cluster=name, reason="schedule", deep=deep)
            reconcile_cluster(svc, message, declarations=declarations)
    metrics.add_metric(name="ClustersEnrolled", unit="Count", value=len(found.enrolled))
    metrics.add_metric(name="ClustersForgotten", unit="Count", value=len(found.forgotten))
    return summary


def reconcile_cluster(
    svc: Services, message: ClusterMessage, *, declarations: DeclarationSet | None = None
) -> ClusterResult | None:
    cluster = svc.repo.get_cluster(message.cluster)
    if cluster is None or not cluster.enrolled:
        logger.info("cluster not enrolled, nothing to reconcile", cluster=message.cluster)
        return None
    if declarations is None:
        declarations = svc.repo.load_declarations()
    # Conflicts and capacity are per cluster, so expanding onto this cluster alone is exact.
    desired = expand(declarations.valid, [cluster], managed_by=svc.settings.owner)
    result = sync_cluster(
        svc, cluster, declarations, desired, deep=message.deep, suspects=message.suspects
    )
    if result.push_needed and svc.settings.push_queue_url:
        svc.messenger.enqueue_per_cluster(
            svc.settings.push_queue_url, [{"cluster": cluster.name, "reason": message.reason}]
        )
    return result


def on_eks_event(svc: Services, detail: CloudTrailDetail) -> ClusterResult | Discovery | None:
    if detail.error_code:
        return None  # the call failed: nothing changed
    if detail.caused_by(svc.settings.self_role_arns):
        return None  # our own write, already recorded
    name = detail.event_name
    if name in ASSOCIATION_EVENTS:
        cluster = detail.request("clusterName")
        association = (detail.response_elements or {}).get("association") or {}
        suspect = detail.request("associationId") or association.get("associationId")
        logger.info("association changed outside the control plane", cluster=cluster, event=name)
        return reconcile_cluster(
            svc,
            ClusterMessage(cluster=cluster, reason=name, suspects=(suspect,) if suspect else ()),
        )
    if name in CLUSTER_EVENTS:
        return _cluster_changed(svc, detail)
    return None


def _cluster_changed(svc: Services, detail: CloudTrailDetail) -> ClusterResult | Discovery | None:
    if detail.event_name in ("CreateCluster", "DeleteCluster"):
        cluster_name = detail.request("name") or (
            (detail.response_elements or {}).get("cluster") or {}
        ).get("name")
    else:
        arn = detail.request("resourceArn") or ""
        if ":cluster/" not in arn:
            return None  # tags on an association or node group: not membership
        cluster_name = arn.rsplit("/", 1)[1]
    if not cluster_name:
        return None
    found = Discovery()
    if detail.event_name == "DeleteCluster":
        if svc.repo.get_cluster(cluster_name) is not None:
            forget(svc, cluster_name, found)
        return found
    declarations = svc.repo.load_declarations()
    existing = svc.repo.get_cluster(cluster_name)
    named = named_clusters(declarations.valid)
    cluster = refresh_cluster(svc, cluster_name, named, existing, found)
    if cluster is None:
        return found
    if not cluster.enrolled:
        if existing is None or not existing.enrolled:
            return found
        # left the fleet: remove what we created there, keep nothing of it
        logger.info("cluster left the fleet, releasing it", cluster=cluster_name)
        nothing = expand(declarations.valid, [], managed_by=svc.settings.owner)
        return sync_cluster(svc, cluster, declarations, nothing, heal_drift=True)
    # enrolled, re-tagged or left the fleet: the plan follows membership either way
    return reconcile_cluster(svc, ClusterMessage(cluster=cluster_name, reason=detail.event_name))
