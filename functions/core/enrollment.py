"""Which clusters a discovery pass must describe (DescribeCluster) again."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from functions.core.models import FLEET_TAG, Cluster


def clusters_to_describe(
    live: Iterable[str],
    known: Mapping[str, Cluster],
    named: set[str],
    tags: Mapping[str, Mapping[str, str]] | None,
    *,
    deep: bool = False,
) -> set[str]:
    """Unknown clusters, named ones not yet enrolled, and those whose fleet tag
    differs from the record; every cluster when deep.

    `tags` is every cluster's tags (a cluster absent has none), or None when
    they could not be listed: then tag changes wait for their events.
    """

    def stale(name: str) -> bool:
        current = known.get(name)
        if deep or current is None or (name in named and not current.enrolled):
            return True
        return tags is not None and tags.get(name, {}).get(FLEET_TAG) != current.fleet

    return {name for name in live if stale(name)}
