"""EKS TagResource / UntagResource / ListTagsForResource on association ARNs,
and DeleteCluster removing the cluster's associations, wrapped around moto's
EKS backend (which knows only cluster and node group ARNs)."""

from __future__ import annotations

from typing import Any

from moto.eks.models import EKSBackend

from sandbox.cluster_identity import REGISTRY
from sandbox.eks_emulation import store


def wrap(backend_cls: type[EKSBackend]) -> None:
    original_tag = backend_cls.tag_resource
    original_untag = backend_cls.untag_resource
    original_list = backend_cls.list_tags_for_resource
    original_delete_cluster = backend_cls.delete_cluster

    def tag_resource(self: EKSBackend, resource_arn: str, tags: dict[str, str]) -> None:
        association = store.by_arn(self, resource_arn)
        if association is None:
            return original_tag(self, resource_arn, tags)
        association.tags.update(tags)
        return None

    def untag_resource(self: EKSBackend, resource_arn: str, tag_keys: list[str]) -> None:
        association = store.by_arn(self, resource_arn)
        if association is None:
            return original_untag(self, resource_arn, tag_keys)
        for key in tag_keys if isinstance(tag_keys, list) else [tag_keys]:
            association.tags.pop(key, None)
        return None

    def list_tags_for_resource(self: EKSBackend, resource_arn: str) -> dict[str, str]:
        association = store.by_arn(self, resource_arn)
        if association is None:
            return original_list(self, resource_arn)
        return dict(association.tags)

    def delete_cluster(self: EKSBackend, name: str) -> Any:
        deleted = original_delete_cluster(self, name)
        # EKS removes a deleted cluster's associations; its tokens stop verifying.
        store.forget_cluster(self, name)
        REGISTRY.forget(deleted.arn)
        return deleted

    backend_cls.tag_resource = tag_resource  # type: ignore[method-assign]
    backend_cls.untag_resource = untag_resource  # type: ignore[method-assign]
    backend_cls.list_tags_for_resource = list_tags_for_resource  # type: ignore[method-assign]
    backend_cls.delete_cluster = delete_cluster  # type: ignore[method-assign]
