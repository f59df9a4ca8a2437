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
from functions.core.enrollment import clusters_to_describe
from functions.core.models import Cluster, Declaration
from functions.flows.services import Services
from functions.observability import logger


@dataclass
class Discovery:
    enrolled: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)


def named_clusters(svc: Services, declarations: Iterable[Declaration]) -> set[str]:
    """Clusters a declaration's naming enrols: none unless the deployment allows
    it (a table writer must not be able to pull any cluster under podid)."""
    if not svc.settings.enroll_named_clusters:
        return set()
    return {name for d in declarations for name in d.target.clusters}


def refresh_cluster(
    svc: Services,
    name: str,
    named: set[str],
    existing: Cluster | None,
    found: Discovery,
    *,
    by_cli: bool = False,
) -> Cluster | None:
    """`by_cli`: an operator enrolls it now (`podid cluster enroll`); that sticks."""
    info = svc.eks.describe_cluster(name)
    if info is None:
        if existing is not None:
            forget(svc, name, found)
        return None
    by_cli = by_cli or (existing is not None and existing.enrolled_by == "cli")
    reason = (
        "cli" if by_cli else "tag" if info.fleet else "declaration" if name in named else "none"
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
        version=existing.version if existing else 0,
    )
    if existing is not None and existing == cluster:
        return existing
    saved = svc.repo.save_cluster(cluster)
    if existing is None or existing.enrolled != saved.enrolled:
        if saved.enrolled:
            found.enrolled.append(name)
            logger.info("cluster enrolled", cluster=name, by=saved.enrolled_by, fleet=saved.fleet)
    else:
        found.updated.append(name)
    return saved


def forget(svc: Services, name: str, found: Discovery) -> None:
    removed = svc.repo.forget_cluster(name)
    found.forgotten.append(name)
    logger.info("cluster forgotten", cluster=name, items_removed=removed)


def cluster_tags(svc: Services) -> Mapping[str, Mapping[str, str]] | None:
    """Every cluster's tags, or None when the Tagging API is unavailable (the
    pass then works as before it was used: tag changes wait for their events)."""
    if svc.tagging is None:
        return None
    try:
        return svc.tagging.cluster_tags()
    except ClientError as error:
        reason = error_code(error) or str(error)
    except BotoCoreError as error:
        reason = str(error)
    logger.warning(
        "cannot list cluster tags (tag:GetResources); fleet tag changes wait for their events",
        reason=reason,
    )
    return None


def discover(
    svc: Services, declarations: Iterable[Declaration], *, deep: bool = False
) -> tuple[list[Cluster], Discovery]:
    """Reconcile the cluster records with EKS: describe unknown clusters and
    those whose fleet tag changed (all when deep)."""
    found = Discovery()
    named = named_clusters(svc, declarations)
    recorded = svc.repo.list_clusters()
    # self-managed clusters are not in EKS: enrolled by hand, never refreshed or forgotten here
    self_managed = [c for c in recorded if c.self_managed]
    known = {c.name: c for c in recorded if not c.self_managed}
    live = set(svc.eks.list_clusters()) - {c.name for c in self_managed}
    # Tags only choose whom to describe; what is recorded comes from DescribeCluster.
    tags = None if deep else cluster_tags(svc)
    stale = clusters_to_describe(live, known, named, tags, deep=deep)
    clusters: list[Cluster] = []
    for name in sorted(live):
        current = known.get(name)
        refreshed = refresh_cluster(svc, name, named, current, found) if name in stale else current
        if refreshed is not None:
            clusters.append(refreshed)
    for name in sorted(set(known) - live):
        forget(svc, name, found)
    return sorted(clusters + self_managed, key=lambda c: c.name), found
