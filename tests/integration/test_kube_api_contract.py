"""The local Kubernetes API against the official client and API conventions."""

import json
import time

import boto3
import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from functions.aws.eks_token import EksTokenBuilder
from functions.kube.configmap import ClusterEndpoint, api_client
from sandbox.cluster_identity import ClusterIdentity
from sandbox.eks_token_verifier import AwsCredential, TokenInvalid
from sandbox.kube_api import LocalKubernetes

PUSHER = "arn:aws:iam::111122223333:role/push"


CA: list[str] = []  # the server's CA, as EKS DescribeCluster gives it


@pytest.fixture(scope="module")
def server():
    with LocalKubernetes() as local:
        CA[:] = [local.ca_data]
        yield local


@pytest.fixture
def cluster(server):
    identity = ClusterIdentity.create("arn:aws:eks:eu-west-1:111122223333:cluster/blue")
    api = server.add_cluster(
        "blue", aws_credentials={"AKIDPUSH": AwsCredential("s3cr3t", PUSHER)}, identity=identity
    )
    user = api.add_access_entry(PUSHER, "pusher")
    api.grant(
        user, ["get", "list", "create", "update", "patch", "delete"], "configmaps", "kube-system"
    )
    api.grant(user, ["list"], "namespaces")
    api.grant(user, ["create"], "tokenreviews")
    yield api
    server.remove_cluster("blue")


def sts(secret="s3cr3t", key="AKIDPUSH"):
    # the real regional STS host, whatever AWS_ENDPOINT_URL other tests set
    return boto3.client(
        "sts",
        region_name="eu-west-1",
        endpoint_url="https://sts.eu-west-1.amazonaws.com",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
    )


def core(cluster, token=None) -> k8s.CoreV1Api:
    token = token or EksTokenBuilder(sts()).token("blue")
    return k8s.CoreV1Api(api_client(ClusterEndpoint("blue", cluster.url, CA[0]), token))


def configmap(name, data, resource_version=None):
    return k8s.V1ConfigMap(
        metadata=k8s.V1ObjectMeta(name=name, resource_version=resource_version), data=data
    )


def status_of(call):
    with pytest.raises(ApiException) as caught:
        call()
    return caught.value.status


def test_create_read_replace_with_resource_version_semantics(cluster):
    api = core(cluster)
    created = api.create_namespaced_config_map("kube-system", configmap("m", {"a": "1"}))
    assert created.metadata.uid
    first_version = created.metadata.resource_version
    replaced = api.replace_namespaced_config_map(
        "m", "kube-system", configmap("m", {"a": "2"}, first_version)
    )
    assert int(replaced.metadata.resource_version) > int(first_version)
    # a replace carrying the old resourceVersion is a 409 Conflict
    assert (
        status_of(
            lambda: api.replace_namespaced_config_map(
                "m", "kube-system", configmap("m", {"a": "3"}, first_version)
            )
        )
        == 409
    )
    assert api.read_namespaced_config_map("m", "kube-system").data == {"a": "2"}
    # create of an existing name: 409 AlreadyExists; read of a missing one: 404
    assert (
        status_of(lambda: api.create_namespaced_config_map("kube-system", configmap("m", {})))
        == 409
    )
    assert status_of(lambda: api.read_namespaced_config_map("absent", "kube-system")) == 404
    assert (
        status_of(
            lambda: api.replace_namespaced_config_map(
                "absent", "kube-system", configmap("absent", {})
            )
        )
        == 404
    )


def test_patch_delete_and_lists(cluster):
    api = core(cluster)
    api.create_namespaced_config_map("kube-system", configmap("m", {"a": "1", "b": "2"}))
    patched = api.patch_namespaced_config_map("m", "kube-system", {"data": {"b": None, "c": "3"}})
    assert patched.data == {"a": "1", "c": "3"}
    assert [i.metadata.name for i in api.list_namespaced_config_map("kube-system").items] == ["m"]
    namespaces = [n.metadata.name for n in api.list_namespace().items]  # cluster-scoped list
    assert {"default", "kube-system"} <= set(namespaces)
    api.delete_namespaced_config_map("m", "kube-system")
    assert status_of(lambda: api.read_namespaced_config_map("m", "kube-system")) == 404
    assert status_of(lambda: api.delete_namespaced_config_map("m", "kube-system")) == 404


def test_validation_rejects_what_the_apiserver_rejects(cluster):
    api = core(cluster)
    assert (
        status_of(
            lambda: api.create_namespaced_config_map("kube-system", configmap("Bad_Name", {}))
        )
        == 422
    )
    assert (
        status_of(
            lambda: api.create_namespaced_config_map(
                # the apiserver counts values only: one byte over 1 MiB (exactly 1 MiB is stored)
                "kube-system",
                configmap("big", {"x": "a" * (1024 * 1024 + 1)}),
            )
        )
        == 422
    )
    assert (
        status_of(lambda: api.create_namespaced_config_map("no-such-namespace", configmap("m", {})))
        == 403
    )
    cluster.grant("pusher", ["create"], "configmaps")  # cluster-wide: a Role needs its namespace
    assert (
        status_of(lambda: api.create_namespaced_config_map("no-such-namespace", configmap("m", {})))
        == 404
    )


def test_authentication_like_eks(cluster):
    # a token for another cluster name, a wrong secret, an unknown key, garbage: 401
    for token in (
        EksTokenBuilder(sts()).token("green"),
        EksTokenBuilder(sts(secret="wrong")).token("blue"),
        EksTokenBuilder(sts(key="AKIDOTHER")).token("blue"),
        "k8s-aws-v1.bm90LWEtdXJs",
        "plainly-wrong",
    ):
        assert (
            status_of(
                lambda token=token: core(cluster, token).read_namespaced_config_map(
                    "m", "kube-system"
                )
            )
            == 401
        )
    # an expired token (issued 20 minutes ago with a 60 s lifetime): 401
    good = EksTokenBuilder(sts()).token("blue")
    from functions.aws.eks_token import decode_token

    url = decode_token(good)
    assert cluster.verifier.principal(good) == PUSHER
    with pytest.raises(TokenInvalid):
        cluster.verifier.principal(good, now=time.time() + 20 * 60)
    assert "x-k8s-aws-id" in url
    # a principal without an access entry: 401; with one but no RBAC: 403, apiserver wording
    cluster.access_entries.clear()
    assert status_of(lambda: core(cluster).read_namespaced_config_map("m", "kube-system")) == 401
    cluster.add_access_entry(PUSHER, "pusher")
    with pytest.raises(ApiException) as caught:
        core(cluster).read_namespaced_config_map("m", "default")
    assert caught.value.status == 403
    status = json.loads(caught.value.body)
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "Forbidden", 403)
    assert status["message"] == (
        'configmaps "m" is forbidden: User "pusher" cannot get resource "configmaps" in API group "" '
        'in the namespace "default"'
    )


def test_token_review_verifies_service_account_tokens(cluster):
    authn = k8s.AuthenticationV1Api(
        api_client(
            ClusterEndpoint("blue", cluster.url, CA[0]), EksTokenBuilder(sts()).token("blue")
        )
    )

    def review(token, audience="pods.eks.amazonaws.com"):
        body = k8s.V1TokenReview(spec=k8s.V1TokenReviewSpec(token=token, audiences=[audience]))
        return authn.create_token_review(body).status

    good = review(cluster.identity.issue("payments", "api", pod_name="api-1"))
    assert good.authenticated
    assert good.user.username == "system:serviceaccount:payments:api"
    assert good.user.extra["authentication.kubernetes.io/pod-name"] == ["api-1"]
    assert not review(cluster.identity.issue("payments", "api", audience="other")).authenticated
    assert not review("garbage").authenticated


def test_rbac_resource_names_limit_a_rule_to_those_objects_and_never_allow_create(server):
    # Given a user whose only rule is get/update on one named ConfigMap (as the push's Role)
    api = server.add_cluster("green", aws_credentials={"AKIDPUSH": AwsCredential("s3cr3t", PUSHER)})
    try:
        user = api.add_access_entry(PUSHER, "pusher")
        api.grant(
            user, ["get", "update", "create"], "configmaps", "kube-system", resource_names=["map"]
        )
        api.put_configmap_directly("kube-system", "map", {})
        api.put_configmap_directly("kube-system", "aws-auth", {"mapRoles": "[]"})
        token = EksTokenBuilder(sts()).token("green")
        v1 = k8s.CoreV1Api(api_client(ClusterEndpoint("green", api.url, server.ca_data), token))
        # Then that one object may be read and replaced
        current = v1.read_namespaced_config_map("map", "kube-system")
        body = configmap("map", {"a": "1"}, current.metadata.resource_version)
        v1.replace_namespaced_config_map("map", "kube-system", body)
        # And nothing else, and no create at all: the authorizer sees no name on a create
        with pytest.raises(ApiException) as denied:
            v1.read_namespaced_config_map("aws-auth", "kube-system")
        assert denied.value.status == 403
        with pytest.raises(ApiException) as denied:
            v1.create_namespaced_config_map("kube-system", configmap("map", {}))
        assert denied.value.status == 403
        with pytest.raises(ApiException) as denied:
            v1.list_namespaced_config_map("kube-system")
        assert denied.value.status == 403
    finally:
        server.remove_cluster("green")
