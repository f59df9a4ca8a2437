"""EKS clusters in the Resource Groups Tagging API, for moto.

moto (5.2.x) answers GetResources only from backends that mix in its
TaggableResourcesMixin, and its EKS backend does not: GetResources with
ResourceTypeFilters=["eks:cluster"] returns an empty list, in process and in
server mode. This module adds exactly EKS clusters, as AWS documents them
(Resource Groups Tagging API reference, GetResources):

* resource type `eks:cluster`, the filter `eks` matching every EKS type;
* each ResourceTagMapping is {ResourceARN, Tags: [{Key, Value}]};
* "tagged or previously tagged" resources are returned: a cluster that never
  carried a tag is absent, one whose tags were all removed is listed with
  Tags [];
* pagination (ResourcesPerPage, TagsPerPage, PaginationToken) and TagFilters
  stay moto's own, shared by every service.

Call `install()` before starting `mock_aws` or a moto server (it is
idempotent); backends created earlier keep moto's class until moto resets.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from moto.core.resource_tagging import TaggableResourcesMixin, TaggedResource
from moto.eks import urls as eks_urls
from moto.eks.models import EKSBackend, eks_backends

RESOURCE_TYPE = "eks:cluster"
_EVER_TAGGED = "_ever_tagged"  # on moto's Cluster: it carried a tag at some point


def _mark_if_tagged(cluster: Any) -> None:
    if cluster.tags:
        cluster.__dict__[_EVER_TAGGED] = True


class TaggableEKSBackend(EKSBackend, TaggableResourcesMixin):
    """moto's EKS backend, listed by the Resource Groups Tagging API."""

    SERVICE_NAMESPACE = "eks"

    @property
    def _url_module(self) -> Any:
        # moto finds a backend's routes next to its class; these are EKS's own
        return eks_urls

    def create_cluster(self, *args: Any, **kwargs: Any) -> Any:
        cluster = super().create_cluster(*args, **kwargs)
        _mark_if_tagged(cluster)
        return cluster

    def tag_resource(self, resource_arn: str, tags: dict[str, str]) -> None:
        super().tag_resource(resource_arn, tags)
        for cluster in self.clusters.values():
            if cluster.arn == resource_arn:
                _mark_if_tagged(cluster)

    def iter_tagged_resources(self) -> Iterator[TaggedResource]:
        for cluster in list(self.clusters.values()):
            yield TaggedResource(
                arn=cluster.arn,
                tags=dict(cluster.tags),
                resource_type=RESOURCE_TYPE,
                extra={"include_untagged": bool(cluster.__dict__.get(_EVER_TAGGED))},
            )


_install_lock = threading.Lock()


def install() -> None:
    """Make moto's EKS backends (created from now on) answer GetResources."""
    with _install_lock:
        if eks_backends.backend is TaggableEKSBackend:
            return
        eks_backends.backend = TaggableEKSBackend
        for account in eks_backends.values():
            account.backend = TaggableEKSBackend
