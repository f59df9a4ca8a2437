"""Which clusters a discovery pass must describe (DescribeCluster) again."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from functions.core.models import FLEET_TAG, Cluster
from functions.core.places import ClusterRef


def is_named(cluster: ClusterRef, named: set[str]) -> bool:
    """Named by a declaration: by its name (in any account and region) or in full."""
    return cluster.name in named or str(cluster) in named


def clusters_to_describe(
    live: Iterable[ClusterRef],
    known: Mapping[ClusterRef, Cluster],
    named: set[str],
    tags: Mapping[ClusterRef, Mapping[str, str]] | None,
    *,
    deep: bool = False,
) -> set[ClusterRef]:
    """Unknown clusters, named ones not yet enrolled, and those whose fleet tag
    differs from the record; every cluster when deep.

    `tags` is every cluster's tags (a cluster absent has none), or None when
    they could not be listed: then tag changes wait for their events.
    """

    def stale(ref: ClusterRef) -> bool:
        current = known.get(ref)
        if deep or current is None or (is_named(ref, named) and not current.enrolled):
            return True
        return tags is not None and tags.get(ref, {}).get(FLEET_TAG) != current.fleet

    return {ref for ref in live if stale(ref)}
