"""Push a cluster's association map to the ConfigMap the webhook reads.

Built from recorded status (what exists in EKS), deterministic, skipped when
its hash equals the last pushed one, written with resourceVersion concurrency,
and recorded with an optimistic version so two pushes never both count. Where
an EKS cluster's map goes (API endpoint and CA) comes from EKS DescribeCluster
at push time, and which ConfigMap from the deployment's settings: nothing in
the table can send an EKS cluster's token or the push's writes elsewhere. A
self-managed cluster is where its enrolment record says (only a cluster
enroller writes it), unless EKS has a cluster of that name.
"""

from __future__ import annotations

from dataclasses import dataclass

from functions.core.association_map import build_association_map
from functions.core.models import Mode, PushedMap
from functions.core.places import ClusterRef
from functions.core.sync_plan import live_associations
from functions.dal.repository import StaleWrite
from functions.events import ClusterMessage
from functions.flows.services import Services
from functions.kube.configmap import PushOutcome
from functions.observability import logger, metrics

HASH_ANNOTATION = "podid.io/association-map-sha256"
GENERATION_ANNOTATION = "podid.io/generation"


class LegacyItems(RuntimeError):
    """The table still holds this cluster under an earlier version's key."""


@dataclass(frozen=True)
class PushResult:
    cluster: ClusterRef
    outcome: PushOutcome | None  # None: skipped (hash unchanged, or the cluster is gone)
    sha256: str
    generation: int


def push_map(svc: Services, message: ClusterMessage) -> PushResult | None:
    """None when the cluster is gone (deleted clusters have no map to keep) or
    in plan mode (no write to any cluster)."""
    if svc.settings.mode is Mode.PLAN:
        logger.info("plan mode: map not pushed", cluster=message.cluster)
        return None
    ref = message.ref(svc.home)
    cluster = svc.repo.get_cluster(ref)
    if cluster is None and svc.repo.has_legacy_cluster(ref.name):
        # an empty map pushed now would drop every pod's role: wait for the move
        raise LegacyItems(
            f"cluster {ref} is still keyed as before the upgrade; the reconcile function "
            "moves it (retried)"
        )
    if cluster is None:
        logger.info("push dropped: the cluster was deleted", cluster=message.cluster)
        metrics.add_metric(name="MapPushesDropped", unit="Count", value=1)
        return None
    built = build_association_map(
        cluster, live_associations(svc.repo.association_statuses(cluster.ref).values())
    )
    pushed = svc.repo.pushed_map(cluster.ref)
    if pushed is not None and pushed.sha256 == built.sha256:
        metrics.add_metric(name="MapPushesSkipped", unit="Count", value=1)
        return PushResult(cluster.ref, None, built.sha256, pushed.generation)
    generation = (pushed.generation if pushed else 0) + 1
    endpoint = svc.endpoint(cluster)
    if endpoint is None:  # an EKS cluster only: a self-managed one is not in EKS
        logger.info("push dropped: EKS has no such cluster any more", cluster=str(cluster.ref))
        metrics.add_metric(name="MapPushesDropped", unit="Count", value=1)
        return None
    # The deployment's ConfigMap, not the record's: the table cannot choose what is written.
    target = svc.settings.webhook_target
    outcome, resource_version = svc.configmap_writer(endpoint).apply(
        target.namespace,
        target.name,
        built.configmap_data(generation),
        {HASH_ANNOTATION: built.sha256, GENERATION_ANNOTATION: str(generation)},
    )
    record = PushedMap(
        cluster=cluster.ref,
        sha256=built.sha256,
        generation=generation,
        pushed_at=svc.clock(),
        version=pushed.version if pushed else 0,
    )
    try:
        svc.repo.record_push(record)
    except StaleWrite:
        # Another push recorded first; the ConfigMap holds the newest content anyway.
        logger.info("concurrent push recorded first", cluster=str(cluster.ref))
    metrics.add_metric(name="MapPushes", unit="Count", value=1)
    logger.info(
        "association map pushed",
        cluster=str(cluster.ref),
        outcome=outcome.value,
        generation=generation,
        resource_version=resource_version,
        entries=len(built.associations),
    )
    return PushResult(cluster.ref, outcome, built.sha256, generation)
