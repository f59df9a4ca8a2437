"""The EKS pod identity / EKS Auth emulation against botocore's service models."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import boto3
import botocore.config
import botocore.session
import pytest
from botocore.exceptions import ClientError
from botocore.model import ListShape, MapShape, StructureShape
from moto import mock_aws
from moto.eks.models import eks_backends

from sandbox import eks_emulation
from sandbox.cluster_identity import REGISTRY
from sandbox.shapes import target_trust
from sandbox.stack import POD_TRUST
from tests.builders import EC2_ONLY, sts_as

if TYPE_CHECKING:
    from botocore.model import Shape
    from mypy_boto3_eks import EKSClient
    from mypy_boto3_eks_auth import EKSAuthClient
    from mypy_boto3_iam import IAMClient

REGION = "eu-west-1"
ACCOUNT = "123456789012"
EKS_MODEL = botocore.session.get_session().get_service_model("eks")
AUTH_MODEL = botocore.session.get_session().get_service_model("eks-auth")


@dataclass
class Aws:
    """moto with the emulation installed: one cluster and one role trusting pods."""

    eks: EKSClient
    iam: IAMClient
    auth: EKSAuthClient
    role: str
    cluster: dict[str, Any]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    eks_emulation.install()
    eks_emulation.FAULTS.clear()
    with mock_aws():
        eks = boto3.client("eks", region_name=REGION)
        cluster = eks.create_cluster(
            name="blue", roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks", resourcesVpcConfig={}
        )
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(RoleName="app", AssumeRolePolicyDocument=json.dumps(POD_TRUST))[
            "Role"
        ]["Arn"]
        yield Aws(
            eks=eks,
            iam=iam,
            auth=boto3.client("eks-auth", region_name=REGION),
            role=role,
            cluster=dict(cluster["cluster"]),
        )


def conforms(value: Any, shape: Shape | None, path: str = "$") -> None:
    """Every key is a member of the shape, with the shape's type; required ones present."""
    assert shape is not None, f"{path}: the model has no shape here"
    kind = shape.type_name
    if isinstance(shape, StructureShape):
        assert isinstance(value, dict), path
        unknown = set(value) - set(shape.members)
        assert not unknown, f"{path}: {unknown} not in {shape.name}"
        missing = set(shape.required_members) - set(value)
        assert not missing, f"{path}: missing {missing}"
        for key, item in value.items():
            conforms(item, shape.members[key], f"{path}.{key}")
    elif isinstance(shape, ListShape):
        assert isinstance(value, list), path
        for index, item in enumerate(value):
            conforms(item, shape.member, f"{path}[{index}]")
    elif isinstance(shape, MapShape):
        assert isinstance(value, dict), path
        for key, item in value.items():
            conforms(item, shape.value, f"{path}[{key}]")
    elif kind == "string":
        assert isinstance(value, str), path
    elif kind == "boolean":
        assert isinstance(value, bool), path
    elif kind == "timestamp":
        assert hasattr(value, "isoformat"), path


def strip_metadata(response: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


def test_every_operation_answers_in_its_model_shape(aws: Aws) -> None:
    eks, role = aws.eks, aws.role
    created = eks.create_pod_identity_association(
        clusterName="blue",
        namespace="ns",
        serviceAccount="sa",
        roleArn=role,
        tags={"a": "b"},
        clientRequestToken="t-1",
    )
    conforms(
        strip_metadata(created),
        EKS_MODEL.operation_model("CreatePodIdentityAssociation").output_shape,
    )
    association = created["association"]
    assert association["associationId"].startswith("a-")
    assert len(association["associationId"]) == 19
    assert association["associationArn"] == (
        f"arn:aws:eks:{REGION}:{ACCOUNT}:podidentityassociation/blue/{association['associationId']}"
    )
    calls: list[tuple[str, Callable[[], Mapping[str, Any]]]] = [
        (
            "DescribePodIdentityAssociation",
            lambda: eks.describe_pod_identity_association(
                clusterName="blue", associationId=association["associationId"]
            ),
        ),
        (
            "ListPodIdentityAssociations",
            lambda: eks.list_pod_identity_associations(clusterName="blue"),
        ),
        (
            "UpdatePodIdentityAssociation",
            lambda: eks.update_pod_identity_association(
                clusterName="blue",
                associationId=association["associationId"],
                disableSessionTags=True,
                policy='{"Statement":[]}',
            ),
        ),
        (
            "DeletePodIdentityAssociation",
            lambda: eks.delete_pod_identity_association(
                clusterName="blue", associationId=association["associationId"]
            ),
        ),
    ]
    for operation, call in calls:
        conforms(strip_metadata(call()), EKS_MODEL.operation_model(operation).output_shape)


def error_code(call: Callable[[], object]) -> tuple[str, int]:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["ResponseMetadata"][
        "HTTPStatusCode"
    ]


def test_errors_are_the_modelled_ones(aws: Aws) -> None:
    eks, role = aws.eks, aws.role
    eks.create_pod_identity_association(
        clusterName="blue", namespace="ns", serviceAccount="sa", roleArn=role
    )
    declared = {
        e.name for e in EKS_MODEL.operation_model("CreatePodIdentityAssociation").error_shapes
    }
    cases = {
        "duplicate key": (
            lambda: eks.create_pod_identity_association(
                clusterName="blue", namespace="ns", serviceAccount="sa", roleArn=role
            ),
            ("ResourceInUseException", 409),
        ),
        "unknown cluster": (
            lambda: eks.create_pod_identity_association(
                clusterName="nope", namespace="ns", serviceAccount="x", roleArn=role
            ),
            ("ResourceNotFoundException", 404),
        ),
        "bad role ARN": (
            lambda: eks.create_pod_identity_association(
                clusterName="blue",
                namespace="ns",
                serviceAccount="x",
                roleArn="arn:aws:iam::1:role/x",
            ),
            ("InvalidParameterException", 400),
        ),
        "role of another account": (
            lambda: eks.create_pod_identity_association(
                clusterName="blue",
                namespace="ns",
                serviceAccount="x",
                roleArn="arn:aws:iam::444455556666:role/x",
            ),
            ("InvalidParameterException", 400),
        ),
        "policy with session tags": (
            lambda: eks.create_pod_identity_association(
                clusterName="blue", namespace="ns", serviceAccount="x", roleArn=role, policy="{}"
            ),
            ("InvalidParameterException", 400),
        ),
    }
    for name, (call, expected) in cases.items():
        got = error_code(call)
        assert got == expected, name
        assert got[0] in declared, name
    assert error_code(
        lambda: eks.describe_pod_identity_association(
            clusterName="blue", associationId="a-00000000000000000"
        )
    ) == ("ResourceNotFoundException", 404)


def test_client_request_token_makes_create_idempotent(aws: Aws) -> None:
    eks, role = aws.eks, aws.role
    first = eks.create_pod_identity_association(
        clusterName="blue",
        namespace="ns",
        serviceAccount="sa",
        roleArn=role,
        clientRequestToken="same",
    )
    again = eks.create_pod_identity_association(
        clusterName="blue",
        namespace="ns",
        serviceAccount="sa",
        roleArn=role,
        clientRequestToken="same",
    )
    assert again["association"]["associationId"] == first["association"]["associationId"]
    assert error_code(
        lambda: eks.create_pod_identity_association(
            clusterName="blue",
            namespace="ns",
            serviceAccount="other",
            roleArn=role,
            clientRequestToken="same",
        )
    ) == ("InvalidRequestException", 400)


def test_pagination_and_filters(aws: Aws) -> None:
    eks, role = aws.eks, aws.role
    for i in range(5):
        eks.create_pod_identity_association(
            clusterName="blue",
            namespace="ns" if i % 2 else "other",
            serviceAccount=f"sa{i}",
            roleArn=role,
        )
    pages = list(
        eks.get_paginator("list_pod_identity_associations").paginate(
            clusterName="blue", PaginationConfig={"PageSize": 2}
        )
    )
    assert [len(p["associations"]) for p in pages] == [2, 2, 1]
    ids = [a["associationId"] for p in pages for a in p["associations"]]
    assert len(set(ids)) == 5
    filtered = eks.list_pod_identity_associations(clusterName="blue", namespace="ns")[
        "associations"
    ]
    assert sorted(a["serviceAccount"] for a in filtered) == ["sa1", "sa3"]


def test_quota_of_associations_per_cluster(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eks_emulation.limits, "MAX_ASSOCIATIONS_PER_CLUSTER", 2)
    eks, role = aws.eks, aws.role
    for i in range(2):
        eks.create_pod_identity_association(
            clusterName="blue", namespace="ns", serviceAccount=f"sa{i}", roleArn=role
        )
    assert error_code(
        lambda: eks.create_pod_identity_association(
            clusterName="blue", namespace="ns", serviceAccount="sa9", roleArn=role
        )
    ) == ("ResourceLimitExceededException", 400)


def test_tags_on_associations_and_deleting_a_cluster_removes_its_associations(aws: Aws) -> None:
    eks, role = aws.eks, aws.role
    association = eks.create_pod_identity_association(
        clusterName="blue", namespace="ns", serviceAccount="sa", roleArn=role
    )["association"]
    eks.tag_resource(resourceArn=association["associationArn"], tags={"k": "v"})
    eks.untag_resource(resourceArn=association["associationArn"], tagKeys=["k"])
    eks.tag_resource(resourceArn=association["associationArn"], tags={"x": "y"})
    assert eks.list_tags_for_resource(resourceArn=association["associationArn"])["tags"] == {
        "x": "y"
    }
    eks.delete_cluster(name="blue")
    assert (
        eks_emulation.associations_of(
            eks_backends[ACCOUNT][REGION],
            "blue",
        )
        == {}
    )


def test_injected_faults_surface_as_the_service_would_send_them(aws: Aws) -> None:
    eks_emulation.FAULTS.inject(
        "ListPodIdentityAssociations", "ThrottlingException", status=429, times=1
    )
    eks = boto3.client(
        "eks", region_name=REGION, config=botocore.config.Config(retries={"total_max_attempts": 1})
    )
    assert error_code(lambda: eks.list_pod_identity_associations(clusterName="blue")) == (
        "ThrottlingException",
        429,
    )
    assert eks.list_pod_identity_associations(clusterName="blue")["associations"] == []


# --- EKS Auth -------------------------------------------------------------------------


def test_assume_role_for_pod_identity_mints_tagged_credentials_for_the_association(
    aws: Aws,
) -> None:
    eks, auth, role = aws.eks, aws.auth, aws.role
    association = eks.create_pod_identity_association(
        clusterName="blue", namespace="payments", serviceAccount="api", roleArn=role
    )["association"]
    token = REGISTRY.for_cluster(aws.cluster["arn"]).issue("payments", "api", pod_name="api-7d9f")
    response = auth.assume_role_for_pod_identity(clusterName="blue", token=token)
    conforms(
        strip_metadata(response),
        AUTH_MODEL.operation_model("AssumeRoleForPodIdentity").output_shape,
    )
    assert response["subject"] == {"namespace": "payments", "serviceAccount": "api"}
    assert response["audience"] == "pods.eks.amazonaws.com"
    assert response["podIdentityAssociation"]["associationId"] == association["associationId"]
    assert response["assumedRoleUser"]["arn"].startswith(
        f"arn:aws:sts::{ACCOUNT}:assumed-role/app/eks-blue-api-7d9f"
    )
    credentials = response["credentials"]
    caller = sts_as(
        credentials["accessKeyId"], credentials["secretAccessKey"], credentials["sessionToken"]
    ).get_caller_identity()
    assert caller["Arn"] == response["assumedRoleUser"]["arn"]
    from moto.sts.models import sts_backends

    (assumed,) = [
        r
        for r in sts_backends[ACCOUNT]["aws"].assumed_roles
        if r.access_key_id == credentials["accessKeyId"]
    ]
    assert vars(assumed)["session_tags"] == {
        "eks-cluster-arn": aws.cluster["arn"],
        "eks-cluster-name": "blue",
        "kubernetes-namespace": "payments",
        "kubernetes-service-account": "api",
        "kubernetes-pod-name": "api-7d9f",
        "kubernetes-pod-uid": vars(assumed)["session_tags"]["kubernetes-pod-uid"],
    }


def iam_in(account: str) -> IAMClient:
    """An IAM client acting in another account (moto keys backends by account)."""
    credentials = boto3.client("sts", region_name=REGION).assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/admin", RoleSessionName="setup"
    )["Credentials"]
    return boto3.client(
        "iam",
        region_name=REGION,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


@dataclass(frozen=True)
class Chained:
    """payments/api -> role app, chained to role data in another account."""

    iam: IAMClient  # in the target role's account
    external_id: str
    ask: Callable[[], Any]  # EKS Auth, as the pod asks it


@pytest.fixture
def chained(aws: Aws) -> Chained:
    target = "arn:aws:iam::444455556666:role/data"
    association = aws.eks.create_pod_identity_association(
        clusterName="blue",
        namespace="payments",
        serviceAccount="api",
        roleArn=aws.role,
        targetRoleArn=target,
    )["association"]
    token = REGISTRY.for_cluster(aws.cluster["arn"]).issue("payments", "api")
    return Chained(
        iam=iam_in("444455556666"),
        external_id=association["externalId"],
        ask=lambda: aws.auth.assume_role_for_pod_identity(clusterName="blue", token=token),
    )


def test_target_role_chaining_returns_the_target_roles_credentials(
    aws: Aws, chained: Chained
) -> None:
    trust = target_trust(aws.role, chained.external_id)
    chained.iam.create_role(RoleName="data", AssumeRolePolicyDocument=json.dumps(trust))
    response = chained.ask()
    assert "assumed-role/data/" in response["assumedRoleUser"]["arn"]
    assert response["assumedRoleUser"]["arn"].startswith("arn:aws:sts::444455556666:")


TrustFor = Callable[[str, str], dict[str, Any]]


@pytest.mark.parametrize(
    "trust",
    [
        pytest.param(lambda role, _: target_trust(role, "another-association"), id="other-id"),
        pytest.param(
            lambda _, external_id: target_trust(f"arn:aws:iam::{ACCOUNT}:role/other", external_id),
            id="other-role",
        ),
        pytest.param(None, id="no-target-role"),
    ],
)
def test_a_target_role_that_does_not_trust_the_association_is_refused(
    aws: Aws, chained: Chained, trust: TrustFor | None
) -> None:
    if trust is not None:
        document = trust(aws.role, chained.external_id)
        chained.iam.create_role(RoleName="data", AssumeRolePolicyDocument=json.dumps(document))
    with pytest.raises(ClientError) as refused:
        chained.ask()
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "444455556666:role/data" in refused.value.response["Error"]["Message"]


def test_eks_auth_refuses_what_eks_auth_refuses(aws: Aws) -> None:
    eks, auth, role, iam = aws.eks, aws.auth, aws.role, aws.iam
    identity = REGISTRY.for_cluster(aws.cluster["arn"])
    eks.create_pod_identity_association(
        clusterName="blue", namespace="payments", serviceAccount="api", roleArn=role
    )
    cases = {
        "garbage": ("not-a-jwt", ("InvalidTokenException", 400)),
        "wrong audience": (
            identity.issue("payments", "api", audience="sts.amazonaws.com"),
            ("InvalidTokenException", 400),
        ),
        "expired": (
            identity.issue("payments", "api", ttl_seconds=60, now=time.time() - 3600),
            ("ExpiredTokenException", 400),
        ),
        "other cluster's key": (
            REGISTRY.for_cluster(f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/other").issue(
                "payments", "api"
            ),
            ("InvalidTokenException", 400),
        ),
        "no association": (
            identity.issue("payments", "nobody"),
            ("ResourceNotFoundException", 404),
        ),
    }
    declared = {e.name for e in AUTH_MODEL.operation_model("AssumeRoleForPodIdentity").error_shapes}
    for name, (token, expected) in cases.items():
        got = error_code(
            partial(auth.assume_role_for_pod_identity, clusterName="blue", token=token)
        )
        assert got == expected, name
        assert got[0] in declared
    # a trust policy that does not let the pod principal in: AccessDenied, as STS would
    iam.update_assume_role_policy(
        RoleName="app",
        PolicyDocument=json.dumps(EC2_ONLY),
    )
    assert error_code(
        lambda: auth.assume_role_for_pod_identity(
            clusterName="blue", token=identity.issue("payments", "api")
        )
    ) == ("AccessDeniedException", 400)
    assert error_code(
        lambda: auth.assume_role_for_pod_identity(
            clusterName="nope", token=identity.issue("payments", "api")
        )
    ) == ("ResourceNotFoundException", 404)
