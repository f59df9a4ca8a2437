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
from functions.core.models import Cluster, Mode, ReconcileReceipt, SyncState
from functions.core.places import ClusterRef, Place, Unreachable
from functions.dal.repository import DeclarationSet, StaleWrite
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
    clusters: list[ClusterRef] = field(default_factory=list)
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


def migrate_table(svc: Services) -> None:
    """Items of earlier versions move to today's keys before anything reads them."""
    moved = svc.repo.migrate_legacy_clusters()
    if moved.clusters:
        logger.info(
            "table items moved to keys with account and region",
            clusters=[str(c) for c in moved.clusters],
            items=moved.items,
            declaration_statuses=moved.declaration_statuses,
        )


def scheduled_pass(svc: Services, *, deep: bool = False) -> PassSummary:
    migrate_table(svc)
    declarations = svc.repo.load_declarations()
    clusters, found = discover(svc, declarations.valid, deep=deep)
    # enrolled clusters, and those that left but still hold what podid put there
    due = [
        c.ref
        for c in clusters
        if c.place not in found.unreachable and (c.enrolled or _holds_ours(svc, c))
    ]
    summary = PassSummary(found, due)
    summary.fanned_out = request_reconcile(
        svc, (ClusterMessage(cluster=str(ref), reason="schedule", deep=deep) for ref in due)
    )
    for place, reason in found.unreachable.items():
        mark_unreachable(svc, [c for c in clusters if c.place == place], reason)
    metrics.add_metric(name="ClustersEnrolled", unit="Count", value=len(found.enrolled))
    metrics.add_metric(name="ClustersForgotten", unit="Count", value=len(found.forgotten))
    return summary


def _holds_ours(svc: Services, cluster: Cluster) -> bool:
    """A cluster out of the fleet with statuses or a non-empty pushed map left."""
    pushed = svc.repo.pushed_map(cluster.ref)
    if pushed is not None and pushed.sha256 != build_association_map(cluster, []).sha256:
        return True
    return bool(svc.repo.association_statuses(cluster.ref))


def reconcile_cluster(
    svc: Services, message: ClusterMessage, *, declarations: DeclarationSet | None = None
) -> ClusterResult | None:
    ref = message.ref(svc.home)
    cluster = svc.repo.get_cluster(ref)
    if cluster is None:
        migrate_table(svc)  # queued before an upgrade, keyed as earlier versions did
        cluster = svc.repo.get_cluster(ref)
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
        try:
            result = sync_cluster(
                svc,
                cluster,
                declarations,
                desired,
                heal_drift=heal_drift,
                deep=message.deep,
                suspects=message.suspects,
            )
        except Unreachable as error:
            # a departed spoke: say so on each status; retrying would not help
            mark_unreachable(svc, [cluster], error.reason)
            _receipt(svc, message, applied=0, failed={"cluster": str(error)})
            # not retried: the spoke's next heartbeat or the schedule tries again
            return ClusterResult(cluster.ref, unreachable=error.reason)
    planning = svc.settings.mode is Mode.PLAN  # no write to any cluster, maps included
    if result.push_needed and svc.settings.push_queue_url and not planning:
        svc.messenger.enqueue_per_cluster(
            svc.settings.push_queue_url, [{"cluster": str(cluster.ref), "reason": message.reason}]
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
            cluster=message.ref(svc.home),
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
    if detail.caused_by(svc.settings.self_role_arns, svc.settings.spoke_role_name):
        return False  # our own write, already recorded
    name = detail.event_name
    place = detail.place(svc.home)
    if name in ASSOCIATION_EVENTS:
        cluster_name = detail.request("clusterName")
        association = (detail.response_elements or {}).get("association") or {}
        suspect = detail.request("associationId") or association.get("associationId")
        if not cluster_name:
            return False
        cluster = ClusterRef.at(place, cluster_name)
        logger.info(
            "association changed outside the control plane", cluster=str(cluster), event=name
        )
        return _request(svc, cluster, name, suspect)
    if name in CLUSTER_EVENTS:
        try:
            return _cluster_changed(svc, detail, place)
        except Unreachable as error:
            # an event still in flight from a spoke just removed, or from no spoke
            logger.warning(
                "EKS event from a place podid cannot act in",
                place=str(place),
                event=name,
                reason=error.reason,
            )
            return False
    return False


def _request(svc: Services, cluster: ClusterRef, reason: str, suspect: str | None) -> bool:
    message = ClusterMessage(
        cluster=str(cluster), reason=reason, suspects=(suspect,) if suspect else ()
    )
    request_reconcile(svc, [message])
    return True


def _cluster_changed(svc: Services, detail: CloudTrailDetail, place: Place) -> bool:
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
            where = association.cluster
            return _request(
                svc,
                ClusterRef(where.account, where.region, where.name),
                detail.event_name,
                association.association_id,
            )
        try:
            cluster_name = parse_cluster_arn(arn).name
        except ValueError:
            return False  # tags on a node group or add-on: not membership
    if not cluster_name:
        return False
    ref = ClusterRef.at(place, cluster_name)
    found = Discovery()
    recorded = svc.repo.get_cluster(ref)
    if recorded is not None and recorded.self_managed:
        # an EKS event cannot speak for a cluster that is not in EKS (the push refuses
        # a self-managed record whose name EKS also has)
        logger.warning("EKS event names a self-managed cluster: ignored", cluster=str(ref))
        return False
    if detail.event_name == "DeleteCluster":
        if recorded is not None:
            forget(svc, ref, found)
        return True
    declarations = svc.repo.load_declarations()
    existing = recorded
    cluster = refresh_cluster(svc, ref, named_clusters(svc, declarations.valid), existing, found)
    if cluster is None:
        return True
    was_enrolled = existing is not None and existing.enrolled
    if not cluster.enrolled and not was_enrolled:
        return True  # never ours
    if not cluster.enrolled:
        logger.info("cluster left the fleet, releasing it", cluster=str(ref))
    # enrolled, re-tagged or left: the plan follows membership either way
    return _request(svc, ref, detail.event_name, None)


def mark_unreachable(svc: Services, clusters: Iterable[Cluster], reason: str) -> None:
    """Each status of these clusters says podid cannot act there now. Nothing in
    the cluster or the table is deleted: the spoke may come back."""
    now = svc.clock()
    clusters = list(clusters)
    for cluster in clusters:
        why = (
            f"cannot reach account {cluster.account} region {cluster.place.region} "
            f"({reason}); the association is left as it is until the spoke answers again"
        )
        for status in svc.repo.association_statuses(cluster.ref).values():
            if status.state is SyncState.ERROR and status.reason == why:
                continue
            try:
                svc.repo.save_association_status(
                    status.model_copy(
                        update={"state": SyncState.ERROR, "reason": why, "last_synced_at": now}
                    )
                )
            except StaleWrite:
                continue  # another writer moved it: the next pass says it again
        logger.warning("cluster unreachable", cluster=str(cluster.ref), reason=reason)
    metrics.add_metric(name="ClustersUnreachable", unit="Count", value=len(clusters))
