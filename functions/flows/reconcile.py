"""Drift and fleet membership: scheduled passes, EKS CloudTrail events, and
the per-cluster queue every cluster change goes through.

Every path that may change a cluster's associations (a declaration changed,
an EKS event, the schedule, the CLI) asks for a reconcile of that cluster by
a message in the reconcile FIFO queue, grouped by cluster: one writer per
cluster, in order. `reconcile_cluster` is that writer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from functions.core.arns import parse_association_arn, parse_cluster_arn
from functions.core.association_map import build_association_map
from functions.core.fleet import expand
from functions.core.models import Cluster, Mode, ReconcileReceipt
from functions.dal.repository import DeclarationSet
from functions.event_patterns import ASSOCIATION_EVENTS, CLUSTER_EVENTS
from functions.events import CloudTrailDetail, ClusterMessage
from functions.flows.cluster_sync import sync_cluster
from functions.flows.discovery import Discovery, discover, forget, named_clusters, refresh_cluster
from functions.flows.recording import ClusterResult
from functions.flows.self_managed import sync_self_managed
from functions.flows.services import Services
from functions.observability import logger, metrics

RECEIPT_RETENTION = timedelta(days=1)


@dataclass
class PassSummary:
    discovery: Discovery
    clusters: list[str] = field(default_factory=list)
    fanned_out: int = 0


def request_reconcile(svc: Services, messages: Iterable[ClusterMessage]) -> int:
    """Queue a reconcile per cluster (the one serialised path); without a queue
    configured (a single local process) run it here."""
    wanted = list(messages)
    queue = svc.settings.reconcile_queue_url
    if queue:
        return svc.messenger.enqueue_per_cluster(
            queue, [m.model_dump(mode="json", exclude_defaults=True) for m in wanted]
        )
    for message in wanted:
        reconcile_cluster(svc, message)
    return len(wanted)


def scheduled_pass(svc: Services, *, deep: bool = False) -> PassSummary:
    declarations = svc.repo.load_declarations()
    clusters, found = discover(svc, declarations.valid, deep=deep)
    # enrolled clusters, and those that left but still hold what podid put there
    due = [c.name for c in clusters if c.enrolled or _holds_ours(svc, c)]
    summary = PassSummary(found, due)
    summary.fanned_out = request_reconcile(
        svc, (ClusterMessage(cluster=name, reason="schedule", deep=deep) for name in due)
    )
    metrics.add_metric(name="ClustersEnrolled", unit="Count", value=len(found.enrolled))
    metrics.add_metric(name="ClustersForgotten", unit="Count", value=len(found.forgotten))
    return summary


def _holds_ours(svc: Services, cluster: Cluster) -> bool:
    """A cluster out of the fleet with statuses or a non-empty pushed map left."""
    pushed = svc.repo.pushed_map(cluster.name)
    if pushed is not None and pushed.sha256 != build_association_map(cluster, []).sha256:
        return True
    return bool(svc.repo.association_statuses(cluster.name))


def reconcile_cluster(
    svc: Services, message: ClusterMessage, *, declarations: DeclarationSet | None = None
) -> ClusterResult | None:
    cluster = svc.repo.get_cluster(message.cluster)
    if cluster is None:
        logger.info("cluster not known (deleted or never seen)", cluster=message.cluster)
        _receipt(svc, message, applied=0, failed={"cluster": "not known (deleted meanwhile?)"})
        return None
    if declarations is None:
        declarations = svc.repo.load_declarations()
    if message.declarations:
        # just changed: the listing index may not show them yet, the table does
        fresh = svc.repo.declarations_by_id(message.declarations)
        declarations = declarations.replacing(message.declarations, fresh)
    if cluster.enrolled:
        # Conflicts and capacity are per cluster, so expanding onto this cluster alone is exact.
        desired = expand(
            declarations.valid, [cluster], managed_by=svc.settings.owner, scope=svc.settings.scope
        )
        heal_drift = None
    else:
        # left the fleet: release what podid created there and empty its map
        desired = expand([], [], managed_by=svc.settings.owner, scope=svc.settings.scope)
        heal_drift = True
    if cluster.self_managed:
        # EKS Pod Identity does not exist there: the map is the associations
        result = sync_self_managed(svc, cluster, desired)
    else:
        result = sync_cluster(
            svc,
            cluster,
            declarations,
            desired,
            heal_drift=heal_drift,
            deep=message.deep,
            suspects=message.suspects,
        )
    planning = svc.settings.mode is Mode.PLAN  # no write to any cluster, maps included
    if result.push_needed and svc.settings.push_queue_url and not planning:
        svc.messenger.enqueue_per_cluster(
            svc.settings.push_queue_url, [{"cluster": cluster.name, "reason": message.reason}]
        )
    _receipt(
        svc,
        message,
        applied=len(result.applied),
        failed={str(key): reason for key, reason in result.failed.items()},
    )
    return result


def _receipt(
    svc: Services, message: ClusterMessage, *, applied: int, failed: dict[str, str]
) -> None:
    """Someone waits for this reconcile: say it ran, and how it went."""
    if not message.request_id:
        return  # the schedule's no-op passes write nothing
    svc.repo.record_receipt(
        ReconcileReceipt(
            cluster=message.cluster,
            request_id=message.request_id,
            finished_at=svc.clock(),
            applied=applied,
            failed=failed,
        ),
        retention=RECEIPT_RETENTION,
    )


def on_eks_event(svc: Services, detail: CloudTrailDetail) -> bool:
    """True when the event asked for a reconcile (or changed membership)."""
    if detail.error_code:
        return False  # the call failed: nothing changed
    if detail.caused_by(svc.settings.self_role_arns):
        return False  # our own write, already recorded
    name = detail.event_name
    if name in ASSOCIATION_EVENTS:
        cluster = detail.request("clusterName")
        association = (detail.response_elements or {}).get("association") or {}
        suspect = detail.request("associationId") or association.get("associationId")
        logger.info("association changed outside the control plane", cluster=cluster, event=name)
        return _request(svc, cluster, name, suspect)
    if name in CLUSTER_EVENTS:
        return _cluster_changed(svc, detail)
    return False


def _request(svc: Services, cluster: str | None, reason: str, suspect: str | None) -> bool:
    if not cluster:
        return False
    message = ClusterMessage(cluster=cluster, reason=reason, suspects=(suspect,) if suspect else ())
    request_reconcile(svc, [message])
    return True


def _cluster_changed(svc: Services, detail: CloudTrailDetail) -> bool:
    if detail.event_name in ("CreateCluster", "DeleteCluster"):
        cluster_name = detail.request("name") or (
            (detail.response_elements or {}).get("cluster") or {}
        ).get("name")
    else:
        arn = detail.request("resourceArn") or ""
        try:
            association = parse_association_arn(arn)
        except ValueError:
            association = None
        if association is not None:
            # an association's tags edited by hand: drift like any other edit
            return _request(
                svc, association.cluster.name, detail.event_name, association.association_id
            )
        try:
            cluster_name = parse_cluster_arn(arn).name
        except ValueError:
            return False  # tags on a node group or add-on: not membership
    if not cluster_name:
        return False
    found = Discovery()
    recorded = svc.repo.get_cluster(cluster_name)
    if recorded is not None and recorded.self_managed:
        # an EKS event cannot speak for a cluster that is not in EKS (the push refuses
        # a self-managed record whose name EKS also has)
        logger.warning("EKS event names a self-managed cluster: ignored", cluster=cluster_name)
        return False
    if detail.event_name == "DeleteCluster":
        if recorded is not None:
            forget(svc, cluster_name, found)
        return True
    declarations = svc.repo.load_declarations()
    existing = recorded
    cluster = refresh_cluster(
        svc, cluster_name, named_clusters(svc, declarations.valid), existing, found
    )
    if cluster is None:
        return True
    was_enrolled = existing is not None and existing.enrolled
    if not cluster.enrolled and not was_enrolled:
        return True  # never ours
    if not cluster.enrolled:
        logger.info("cluster left the fleet, releasing it", cluster=cluster_name)
    # enrolled, re-tagged or left: the plan follows membership either way
    return _request(svc, cluster_name, detail.event_name, None)
