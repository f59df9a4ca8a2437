"""What EKS refuses in Create/UpdatePodIdentityAssociation, and how EKS Auth
decides a role's trust, through boto3 against moto in server mode (the same
wire an SDK or the AWS CLI uses). A refusal is InvalidParameterException 400,
names the rule, and changes nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from sandbox.cluster_identity import REGISTRY
from sandbox.stack import POD_TRUST
from tests.integration.conftest import ACCOUNT, REGION


@pytest.fixture
def eks_world(moto_endpoint: str) -> Iterator[dict[str, Any]]:
    eks = boto3.client("eks", region_name=REGION)
    iam = boto3.client("iam", region_name=REGION)
    name = f"v-{uuid.uuid4().hex[:8]}"
    cluster = eks.create_cluster(
        name=name, roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks", resourcesVpcConfig={}
    )["cluster"]
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(POD_TRUST))["Role"]
    yield {
        "eks": eks,
        "iam": iam,
        "auth": boto3.client("eks-auth", region_name=REGION, endpoint_url=moto_endpoint),
        "cluster": cluster,
        "role": role,
    }
    eks.delete_cluster(name=name)
    iam.delete_role(RoleName=name)


def refusal(call: Callable[[], Any]) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response
    return (
        error["Error"]["Code"],
        error["ResponseMetadata"]["HTTPStatusCode"],
        error["Error"]["Message"],
    )


def create(world: dict[str, Any], **overrides: Any) -> Any:
    params = {
        "clusterName": world["cluster"]["name"],
        "namespace": "payments",
        "serviceAccount": "api",
        "roleArn": world["role"]["Arn"],
    } | overrides
    return lambda: world["eks"].create_pod_identity_association(**params)


def associations(world: dict[str, Any]) -> list[dict[str, Any]]:
    found = world["eks"].list_pod_identity_associations(clusterName=world["cluster"]["name"])
    return list(found["associations"])


LONG_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [], "Id": "x" * 2100})


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"roleArn": f"arn:aws:iam::{ACCOUNT}:role/never-created"}, "does not exist"),
        ({"namespace": "Bad_NS"}, "not a valid Kubernetes name"),
        ({"namespace": "n" * 64}, "at most 63"),
        ({"namespace": "-payments"}, "not a valid Kubernetes name"),
        ({"serviceAccount": "Bad SA"}, "not a valid Kubernetes name"),
        ({"serviceAccount": "a" * 254}, "at most 253"),
        ({"serviceAccount": "api."}, "not a valid Kubernetes name"),
        ({"roleArn": "arn:aws:iam::1:role/x"}, "not an IAM role ARN"),
        ({"roleArn": "arn:aws:iam::444455556666:role/x"}, "same account as the cluster"),
        ({"targetRoleArn": "arn:aws:s3:::bucket"}, "not an IAM role ARN"),
        ({"tags": {f"k{i}": "v" for i in range(51)}}, "at most 50"),
        ({"tags": {"k" * 129: "v"}}, "1 to 128"),
        ({"tags": {"k": "v" * 257}}, "at most 256"),
        ({"tags": {"aws:team": "x"}}, "reserved"),
        ({"policy": "{}"}, "requires disableSessionTags"),
        ({"policy": LONG_POLICY, "disableSessionTags": True}, "at most 2048"),
        ({"policy": "not json", "disableSessionTags": True}, "not valid JSON"),
    ],
)
def test_create_refuses_what_eks_documents_and_changes_nothing(
    eks_world: dict[str, Any], overrides: dict[str, Any], says: str
) -> None:
    code, status, message = refusal(create(eks_world, **overrides))
    assert (code, status) == ("InvalidParameterException", 400)
    assert says in message
    assert associations(eks_world) == []


def test_a_missing_role_is_refused_with_eks_own_words(eks_world: dict[str, Any]) -> None:
    # the message real EKS sends (seen by SDK users retrying on IAM propagation)
    missing = f"arn:aws:iam::{ACCOUNT}:role/never-created"
    assert refusal(create(eks_world, roleArn=missing)) == (
        "InvalidParameterException",
        400,
        "Role provided in the request does not exist",
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {"namespace": "n" * 63, "serviceAccount": "a" * 253},
        {"namespace": "kube-system", "serviceAccount": "system.controller-1"},
        {"tags": {f"k{i}": "v" for i in range(50)}},
        {
            "policy": json.dumps({"Version": "2012-10-17", "Statement": []}),
            "disableSessionTags": True,
        },
        {"targetRoleArn": "arn:aws:iam::444455556666:role/path/data"},
    ],
)
def test_create_accepts_the_edges_eks_allows(
    eks_world: dict[str, Any], overrides: dict[str, Any]
) -> None:
    create(eks_world, **overrides)()
    assert len(associations(eks_world)) == 1


def test_update_checks_the_role_and_session_policy_rules(eks_world: dict[str, Any]) -> None:
    eks, name = eks_world["eks"], eks_world["cluster"]["name"]
    created = create(eks_world)()["association"]

    def update(**changes: Any) -> Callable[[], Any]:
        return lambda: eks.update_pod_identity_association(
            clusterName=name, associationId=created["associationId"], **changes
        )

    missing = f"arn:aws:iam::{ACCOUNT}:role/never-created"
    assert refusal(update(roleArn=missing))[2] == "Role provided in the request does not exist"
    assert "requires disableSessionTags" in refusal(update(policy="{}"))[2]
    assert "not an IAM role ARN" in refusal(update(targetRoleArn="nope"))[2]
    unchanged = eks.describe_pod_identity_association(
        clusterName=name, associationId=created["associationId"]
    )["association"]
    assert unchanged["roleArn"] == created["roleArn"]
    assert "policy" not in unchanged
    policy = json.dumps({"Version": "2012-10-17", "Statement": []})
    updated = update(disableSessionTags=True, policy=policy)()["association"]
    assert (updated["disableSessionTags"], updated["policy"]) == (True, policy)


# --- EKS Auth decides trust with the sandbox's IAM evaluator -----------------------------


def _assume(world: dict[str, Any], namespace: str = "payments", sa: str = "api") -> Any:
    token = REGISTRY.for_cluster(world["cluster"]["arn"]).issue(namespace, sa)
    return lambda: world["auth"].assume_role_for_pod_identity(
        clusterName=world["cluster"]["name"], token=token
    )


def _trust(world: dict[str, Any], *statements: dict[str, Any]) -> None:
    world["iam"].update_assume_role_policy(
        RoleName=world["role"]["RoleName"],
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": list(statements)}),
    )


POD_ALLOW = {
    "Effect": "Allow",
    "Principal": {"Service": "pods.eks.amazonaws.com"},
    "Action": ["sts:AssumeRole", "sts:TagSession"],
}


def test_eks_auth_applies_session_tag_conditions_and_explicit_denies(
    eks_world: dict[str, Any],
) -> None:
    create(eks_world)()
    create(eks_world, serviceAccount="worker")()
    scoped = POD_ALLOW | {
        "Condition": {
            "StringEquals": {"aws:RequestTag/kubernetes-service-account": "api"},
            "ArnLike": {"aws:SourceArn": "arn:aws:eks:*:*:cluster/*"},
        }
    }
    _trust(eks_world, scoped)
    assert _assume(eks_world)()["subject"]["serviceAccount"] == "api"
    code, _, message = refusal(_assume(eks_world, sa="worker"))
    assert code == "AccessDeniedException"
    assert "sts:AssumeRole: ImplicitDeny" in message
    deny = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "sts:TagSession",
        "Condition": {"StringLike": {"aws:RequestTag/kubernetes-pod-name": "api*"}},
    }
    _trust(eks_world, POD_ALLOW, deny)
    code, _, message = refusal(_assume(eks_world))
    assert code == "AccessDeniedException"
    assert "sts:TagSession: ExplicitDeny by Statement[1]" in message


def test_eks_auth_needs_tag_session_only_when_tags_are_sent(eks_world: dict[str, Any]) -> None:
    create(eks_world)()
    create(eks_world, serviceAccount="untagged", disableSessionTags=True)()
    _trust(eks_world, POD_ALLOW | {"Action": "sts:AssumeRole"})
    assert "sts:TagSession: ImplicitDeny" in refusal(_assume(eks_world))[2]
    assert _assume(eks_world, sa="untagged")()["subject"]["serviceAccount"] == "untagged"


def test_eks_auth_refuses_to_guess_what_iam_does_not_document(eks_world: dict[str, Any]) -> None:
    create(eks_world)()
    _trust(eks_world, POD_ALLOW | {"Condition": {"StringEquals": {"aws:TagKeys": "x"}}})
    code, status, message = refusal(_assume(eks_world))
    assert (code, status) == ("EmulationCannotDecide", 501)
    assert "multivalued" in message
