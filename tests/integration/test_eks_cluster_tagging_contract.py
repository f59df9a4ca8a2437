"""EKS clusters in the Resource Groups Tagging API (sandbox.eks_cluster_tagging)
against botocore's service model and AWS's documented GetResources behaviour,
in process (mock_aws) and through the moto server the other tests use."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
import botocore.session
import pytest
from moto import mock_aws

from sandbox import eks_emulation
from tests.integration.test_eks_emulation_contract import conforms, strip_metadata

if TYPE_CHECKING:
    from mypy_boto3_eks import EKSClient
    from mypy_boto3_resourcegroupstaggingapi import ResourceGroupsTaggingAPIClient

REGION = "eu-west-1"
ACCOUNT = "123456789012"
TAGGING_MODEL = botocore.session.get_session().get_service_model("resourcegroupstaggingapi")


@dataclass
class Clients:
    eks: EKSClient
    tagging: ResourceGroupsTaggingAPIClient


def make_clients() -> Clients:
    return Clients(
        boto3.client("eks", region_name=REGION),
        boto3.client("resourcegroupstaggingapi", region_name=REGION),
    )


@pytest.fixture(params=["in-process", "server"])
def clients(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Clients]:
    eks_emulation.install()
    if request.param == "server":
        endpoint = request.getfixturevalue("moto_endpoint")
        reset = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(reset).read()
        yield make_clients()
        return
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield make_clients()


def create(eks: EKSClient, name: str, tags: dict[str, str] | None = None) -> str:
    return eks.create_cluster(
        name=name,
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks",
        resourcesVpcConfig={},
        tags=tags or {},
    )["cluster"]["arn"]


def listed(tagging: ResourceGroupsTaggingAPIClient, **params: Any) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for page in tagging.get_paginator("get_resources").paginate(**params):
        conforms(strip_metadata(page), TAGGING_MODEL.operation_model("GetResources").output_shape)
        for mapping in page["ResourceTagMappingList"]:
            found[mapping["ResourceARN"]] = mapping["Tags"]
    return found


def test_get_resources_lists_tagged_clusters_in_the_modelled_shape(clients: Clients) -> None:
    eks, tagging = clients.eks, clients.tagging
    blue = create(eks, "blue", {"pod-identity/fleet": "prod", "team": "a"})
    create(eks, "never-tagged")
    response = tagging.get_resources(ResourceTypeFilters=["eks:cluster"])
    conforms(strip_metadata(response), TAGGING_MODEL.operation_model("GetResources").output_shape)
    assert response["ResourceTagMappingList"] == [
        {
            "ResourceARN": blue,
            "Tags": [
                {"Key": "pod-identity/fleet", "Value": "prod"},
                {"Key": "team", "Value": "a"},
            ],
        }
    ]
    # the service name alone matches every EKS resource type
    assert listed(tagging, ResourceTypeFilters=["eks"]) == listed(
        tagging, ResourceTypeFilters=["eks:cluster"]
    )
    assert listed(tagging, ResourceTypeFilters=["ec2:instance"]) == {}


def test_tag_changes_show_and_previously_tagged_clusters_stay_listed(clients: Clients) -> None:
    eks, tagging = clients.eks, clients.tagging
    blue = create(eks, "blue", {"pod-identity/fleet": "prod"})
    lab = create(eks, "lab")
    eks.tag_resource(resourceArn=lab, tags={"pod-identity/fleet": "dev"})
    eks.untag_resource(resourceArn=blue, tagKeys=["pod-identity/fleet"])
    assert listed(tagging, ResourceTypeFilters=["eks:cluster"]) == {
        blue: [],  # "tagged or previously tagged": listed with no tags
        lab: [{"Key": "pod-identity/fleet", "Value": "dev"}],
    }
    assert listed(
        tagging,
        ResourceTypeFilters=["eks:cluster"],
        TagFilters=[{"Key": "pod-identity/fleet", "Values": ["dev"]}],
    ) == {lab: [{"Key": "pod-identity/fleet", "Value": "dev"}]}
    eks.delete_cluster(name="lab")
    assert listed(tagging, ResourceTypeFilters=["eks:cluster"]) == {blue: []}


def test_pages_follow_the_pagination_token(clients: Clients) -> None:
    eks, tagging = clients.eks, clients.tagging
    arns = {create(eks, f"c{i}", {"pod-identity/fleet": "prod"}) for i in range(5)}
    first = tagging.get_resources(ResourceTypeFilters=["eks:cluster"], ResourcesPerPage=2)
    assert len(first["ResourceTagMappingList"]) == 2
    assert first["PaginationToken"]
    assert set(listed(tagging, ResourceTypeFilters=["eks:cluster"], ResourcesPerPage=2)) == arns
