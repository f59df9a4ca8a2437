"""Resource Groups Tagging API adapter: every EKS cluster's tags in a few paged calls."""

from __future__ import annotations

from typing import TYPE_CHECKING

from functions.core.places import ClusterRef

if TYPE_CHECKING:
    from mypy_boto3_resourcegroupstaggingapi import ResourceGroupsTaggingAPIClient

CLUSTER_TYPE = "eks:cluster"


class TaggingAdapter:
    def __init__(self, tagging_client: ResourceGroupsTaggingAPIClient) -> None:
        self._tagging = tagging_client

    def cluster_tags(self) -> dict[ClusterRef, dict[str, str]]:
        """Cluster -> tags, for the clusters of this account and region that
        carry or once carried a tag; a cluster never tagged is absent."""
        found: dict[ClusterRef, dict[str, str]] = {}
        pages = self._tagging.get_paginator("get_resources").paginate(
            ResourceTypeFilters=[CLUSTER_TYPE],
            PaginationConfig={"PageSize": 100},  # ResourcesPerPage: the API's maximum
        )
        for page in pages:
            for mapping in page["ResourceTagMappingList"]:
                try:
                    ref = ClusterRef.of_arn(mapping["ResourceARN"])
                except ValueError:
                    continue  # not a cluster ARN (the filter asks for clusters only)
                found[ref] = {t["Key"]: t["Value"] for t in mapping["Tags"]}
        return found
