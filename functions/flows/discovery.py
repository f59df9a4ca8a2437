"""Cluster enrollment: which EKS clusters the control plane manages.

A cluster is enrolled when it carries the fleet tag, when a declaration names
it, or when an operator enrolled it by CLI. Deleted clusters are forgotten.
Each pass lists every cluster's tags in one paged Tagging API call, so a
fleet tag changed without its TagResource/UntagResource event reaching us is
seen by the next ordinary pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

from functions.aws.eks import error_code
from functions.core.enrollment import clusters_to_describe, is_named
from functions.core.models import Cluster, Declaration, Spoke, SpokeState
from functions.core.places import ClusterRef, Place, Unreachable
from functions.dal.repository import StaleWrite
from functions.flows.services import Services
from functions.observability import logger


@dataclass
class Discovery:
    enrolled: list[ClusterRef] = field(default_factory=list)
    updated: list[ClusterRef] = field(default_factory=list)
    forgotten: list[ClusterRef] = field(default_factory=list)
    # places podid could not act in this pass (their clusters are kept as recorded)
    unreachable: dict[Place, str] = field(default_factory=dict)


def named_clusters(svc: Services, declarations: Iterable[Declaration]) -> set[str]:
    """Clusters a declaration's naming enrols (names or account/region/name): none
    unless the deployment allows it (a table writer must not be able to pull any
    cluster under podid)."""
    if not svc.settings.enroll_named_clusters:
        return set()
    return {name for d in declarations for name in d.target.clusters}


def refresh_cluster(
    svc: Services,
    ref: ClusterRef,
    named: set[str],
    existing: Cluster | None,
    found: Discovery,
    *,
    by_cli: bool = False,
) -> Cluster | None:
    """`by_cli`: an operator enrolls it now (`podid cluster enroll`); that sticks."""
    info = svc.eks_in(ref.place).describe_cluster(ref)
    if info is None:
        if existing is not None:
            forget(svc, ref, found)
        return None
    by_cli = by_cli or (existing is not None and existing.enrolled_by == "cli")
    reason = (
        "cli"
        if by_cli
        else "tag"
        if info.fleet
        else "declaration"
        if is_named(ref, named)
        else "none"
    )
    cluster = Cluster(
        name=info.name,
        arn=info.arn,
        fleet=info.fleet,
        endpoint=info.endpoint,
        certificate_authority=info.certificate_authority,
        webhook=existing.webhook if existing else svc.settings.webhook_target,
        enrolled=reason != "none",
        enrolled_by=reason if reason != "none" else "tag",
        organizational_units=ou_path(svc, ref.account),
        version=existing.version if existing else 0,
    )
    if cluster.ref != ref:
        raise ValueError(f"EKS in {ref.place} described cluster {ref} as {cluster.arn}")
    if existing is not None and existing == cluster:
        return existing
    saved = svc.repo.save_cluster(cluster)
    if existing is None or existing.enrolled != saved.enrolled:
        if saved.enrolled:
            found.enrolled.append(ref)
            logger.info(
                "cluster enrolled", cluster=str(ref), by=saved.enrolled_by, fleet=saved.fleet
            )
    else:
        found.updated.append(ref)
    return saved


def ou_path(svc: Services, account: str) -> tuple[str, ...]:
    """The account's OU path (nearest first, up to the root); () when unknown."""
    return svc.organizations.ou_path(account) if svc.organizations is not None else ()


def with_current_ou(svc: Services, cluster: Cluster, found: Discovery) -> Cluster:
    """The cluster with its account's OU path as Organizations says now (cached
    for an hour per container), saved when it moved."""
    path = ou_path(svc, cluster.account)
    if path == cluster.organizational_units:
        return cluster
    try:
        saved = svc.repo.save_cluster(cluster.model_copy(update={"organizational_units": path}))
    except StaleWrite:
        return cluster  # written meanwhile: the next pass looks again
    found.updated.append(cluster.ref)
    logger.info("cluster's OU path changed", cluster=str(cluster.ref), path=list(path))
    return saved


def forget(svc: Services, ref: ClusterRef, found: Discovery) -> None:
    removed = svc.repo.forget_cluster(ref)
    found.forgotten.append(ref)
    logger.info("cluster forgotten", cluster=str(ref), items_removed=removed)


def cluster_tags(svc: Services, place: Place) -> Mapping[ClusterRef, Mapping[str, str]] | None:
    """Every cluster's tags there, or None when the Tagging API is unavailable (the
    pass then works as before it was used: tag changes wait for their events)."""
    tagging = svc.tagging_in(place)
    if tagging is None:
        return None
    try:
        return tagging.cluster_tags()
    except ClientError as error:
        reason = error_code(error) or str(error)
    except BotoCoreError as error:
        reason = str(error)
    logger.warning(
        "cannot list cluster tags (tag:GetResources); fleet tag changes wait for their events",
        place=str(place),
        reason=reason,
    )
    return None


def places(
    svc: Services, recorded: Iterable[Cluster], spokes: Iterable[Spoke] | None = None
) -> list[Place]:
    """Where to look: here, every spoke that announced itself, and wherever a
    recorded cluster is (a spoke that went quiet is still checked, and reported)."""
    announced = svc.repo.list_spokes() if spokes is None else spokes
    return sorted({svc.home, *(s.place for s in announced), *(c.place for c in recorded)})


def record_spoke_states(svc: Services, spokes: Iterable[Spoke], found: Discovery) -> None:
    """A spoke's state follows whether this pass could act there."""
    now = svc.clock()
    for spoke in spokes:
        reason = found.unreachable.get(spoke.place)
        state = SpokeState.JOINED if reason is None else SpokeState.UNREACHABLE
        if spoke.state is state and spoke.reason == reason:
            continue
        logger.info("spoke state changed", place=str(spoke.place), state=state, reason=reason)
        try:
            svc.repo.save_spoke(
                spoke.model_copy(update={"state": state, "reason": reason, "checked_at": now})
            )
        except StaleWrite:
            continue  # a heartbeat was recorded meanwhile: the next pass decides again


def discover(
    svc: Services,
    declarations: Iterable[Declaration],
    *,
    deep: bool = False,
    only: Place | None = None,
    record_spokes: bool = True,
) -> tuple[list[Cluster], Discovery]:
    """Reconcile the cluster records with EKS in each place (or `only` there):
    describe unknown clusters and those whose fleet tag changed (all when deep)."""
    found = Discovery()
    named = named_clusters(svc, declarations)
    recorded = svc.repo.list_clusters()
    # self-managed clusters are not in EKS: enrolled by hand, never refreshed or forgotten here
    self_managed = [c for c in recorded if c.self_managed]
    in_eks = [c for c in recorded if not c.self_managed]
    spokes = svc.repo.list_spokes()
    clusters: list[Cluster] = []
    for place in places(svc, in_eks, spokes):
        if only is not None and place != only:
            clusters += [c for c in in_eks if c.place == place]
            continue
        known = {c.ref: c for c in in_eks if c.place == place}
        try:
            clusters += _discover_in(svc, place, known, named, self_managed, found, deep=deep)
        except Unreachable as error:
            found.unreachable[place] = error.reason
            clusters += known.values()  # kept as recorded: nothing is forgotten blindly
            logger.warning(
                "cannot reach a spoke: its clusters are kept and reported",
                place=str(place),
                clusters=len(known),
                reason=error.reason,
            )
    if record_spokes:  # the functions' view; a person's credentials may reach less
        record_spoke_states(svc, spokes, found)
    self_managed = [with_current_ou(svc, c, found) for c in self_managed]
    return sorted(clusters + self_managed, key=lambda c: c.ref), found


def _discover_in(  # noqa: PLR0917 - one place's share of discover()
    svc: Services,
    place: Place,
    known: dict[ClusterRef, Cluster],
    named: set[str],
    self_managed: list[Cluster],
    found: Discovery,
    *,
    deep: bool,
) -> list[Cluster]:
    live = set(svc.eks_in(place).list_clusters()) - {c.ref for c in self_managed}
    # Tags only choose whom to describe; what is recorded comes from DescribeCluster.
    tags = None if deep else cluster_tags(svc, place)
    stale = clusters_to_describe(live, known, named, tags, deep=deep)
    clusters: list[Cluster] = []
    for ref in sorted(live):
        current = known.get(ref)
        refreshed = refresh_cluster(svc, ref, named, current, found) if ref in stale else current
        if refreshed is not None:
            clusters.append(with_current_ou(svc, refreshed, found))
    for ref in sorted(set(known) - live):
        forget(svc, ref, found)
    return clusters
