"""The Kubernetes API contract podid relies on (the push's ConfigMap writes, EKS
token authentication, RBAC, the node agent's TokenReview), asserted with the
official client against the real kube-apiserver AND the light local API
(sandbox.kube_api) the sandbox uses: every case runs against both unless listed
below. The real server is the reference: where the light API diverged, the
test asserts the real server's behaviour.

Divergences found (the light API was wrong; the real server is the reference),
all fixed and run against both since: PUT replaces labels/annotations with the
body's (test_replace_sets_labels_and_annotations_to_the_bodys); the 1 MiB limit
counts values only (test_the_size_limit_counts_values_up_to_one_mebibyte); a
service-account token bound to a Pod stops authenticating once the Pod is
deleted, which the node agent's sts backend relies on
(test_a_pod_bound_token_dies_with_its_pod; the real server caches the last
success for up to 10 s, so the agent may serve a just-deleted pod that long).

Real-server behaviour the tests allow for: a successful authentication is
cached for 10 s per token (kube-apiserver's token cache, not configurable), so
a test that removes an access entry checks it with a new token.
"""

from __future__ import annotations

import base64
import datetime
import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.auth
import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from functions.aws.eks_token import EksTokenBuilder
from functions.kube.configmap import ClusterEndpoint, api_client
from sandbox.kube_api import LocalKubernetes
from tests.integration.kube_contract_backends import (
    PUSHER_KEY,
    PUSHER_SECRET,
    Backend,
    LightBackend,
    RealBackend,
)
from tests.kube_models import meta

BOTH = ["real", "light"]
MEBIBYTE = 1024 * 1024


@pytest.fixture(scope="module")
def light_server() -> Iterator[LocalKubernetes]:
    with LocalKubernetes() as local:
        yield local


@pytest.fixture(params=BOTH)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    chosen: Backend
    if request.param == "real":
        chosen = RealBackend(request.getfixturevalue("real_kube"))
    else:
        chosen = LightBackend(request.getfixturevalue("light_server"))
    yield chosen
    chosen.close()


def sts(secret: str = PUSHER_SECRET, key: str = PUSHER_KEY) -> Any:
    # the real regional STS host, whatever AWS_ENDPOINT_URL other tests set
    return boto3.client(
        "sts",
        region_name="eu-west-1",
        endpoint_url="https://sts.eu-west-1.amazonaws.com",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
    )


def token(backend: Backend, expires: int = 60, **signer: str) -> str:
    return EksTokenBuilder(sts(**signer)).token(backend.cluster_name, expires)


def client(backend: Backend, bearer: str | None = None) -> k8s.ApiClient:
    """The product's client, trusting the CA as EKS DescribeCluster hands it over."""
    endpoint = ClusterEndpoint(backend.cluster_name, backend.url, backend.certificate_authority)
    return api_client(endpoint, bearer or token(backend))


def core(backend: Backend, bearer: str | None = None) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(client(backend, bearer))


def configmap(
    name: str,
    data: dict[str, str],
    resource_version: str | None = None,
    **metadata: Any,
) -> k8s.V1ConfigMap:
    return k8s.V1ConfigMap(
        metadata=k8s.V1ObjectMeta(name=name, resource_version=resource_version, **metadata),
        data=data,
    )


def body_of(error: ApiException) -> dict[str, Any]:
    """The Status object an API error carries."""
    assert error.body is not None, error
    status: dict[str, Any] = json.loads(error.body)
    return status


def failure(call: Any) -> ApiException:
    with pytest.raises(ApiException) as caught:
        call()
    return caught.value


def status_of(call: Any) -> int:
    return int(failure(call).status)


def grant_configmaps(backend: Backend) -> None:
    verbs = ["get", "list", "create", "update", "patch", "delete"]
    backend.grant(verbs, "configmaps", backend.namespace)


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_create_read_replace_with_resource_version_semantics(backend: Backend) -> None:
    grant_configmaps(backend)
    api, ns = core(backend), backend.namespace
    created = api.create_namespaced_config_map(ns, configmap("m", {"a": "1"}))
    assert meta(created).uid
    first_version = meta(created).resource_version
    replaced = api.replace_namespaced_config_map("m", ns, configmap("m", {"a": "2"}, first_version))
    assert meta(replaced).resource_version != first_version
    # a replace carrying the old resourceVersion is a 409 Conflict
    stale = configmap("m", {"a": "3"}, first_version)
    conflict = failure(lambda: api.replace_namespaced_config_map("m", ns, stale))
    assert (conflict.status, body_of(conflict)["reason"]) == (409, "Conflict")
    assert api.read_namespaced_config_map("m", ns).data == {"a": "2"}
    # a replace without a resourceVersion is unconditional
    assert api.replace_namespaced_config_map("m", ns, configmap("m", {"a": "4"})).data == {"a": "4"}
    # create of an existing name: 409 AlreadyExists; read of a missing one: 404
    exists = failure(lambda: api.create_namespaced_config_map(ns, configmap("m", {})))
    assert (exists.status, body_of(exists)["reason"]) == (409, "AlreadyExists")
    missing = failure(lambda: api.read_namespaced_config_map("absent", ns))
    assert (missing.status, body_of(missing)["reason"]) == (404, "NotFound")
    absent = configmap("absent", {})
    assert status_of(lambda: api.replace_namespaced_config_map("absent", ns, absent)) == 404


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_replace_sets_labels_and_annotations_to_the_bodys(backend: Backend) -> None:
    grant_configmaps(backend)
    api, ns = core(backend), backend.namespace
    labelled = configmap("m", {"a": "1"}, labels={"keep": "me"}, annotations={"note": "x"})
    created = api.create_namespaced_config_map(ns, labelled)
    assert meta(created).labels == {"keep": "me"}
    # a replace whose body has no labels/annotations removes them: PUT is the whole object
    replaced = api.replace_namespaced_config_map("m", ns, configmap("m", {"a": "2"}))
    assert meta(replaced).labels is None
    assert meta(replaced).annotations is None


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_patch_delete_and_lists(backend: Backend) -> None:
    grant_configmaps(backend)
    backend.grant(["list"], "namespaces")
    api, ns = core(backend), backend.namespace
    api.create_namespaced_config_map(ns, configmap("m", {"a": "1", "b": "2"}))
    patched = api.patch_namespaced_config_map("m", ns, {"data": {"b": None, "c": "3"}})
    assert patched.data == {"a": "1", "c": "3"}
    assert [meta(i).name for i in api.list_namespaced_config_map(ns).items] == ["m"]
    namespaces = [meta(n).name for n in api.list_namespace().items]  # cluster-scoped list
    assert {"default", "kube-system", ns} <= set(namespaces)
    api.delete_namespaced_config_map("m", ns)
    assert status_of(lambda: api.read_namespaced_config_map("m", ns)) == 404
    assert status_of(lambda: api.delete_namespaced_config_map("m", ns)) == 404


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_validation_rejects_what_the_apiserver_rejects(backend: Backend) -> None:
    grant_configmaps(backend)
    api, ns = core(backend), backend.namespace
    for invalid in (
        configmap("Bad_Name", {}),
        configmap("bad-key", {"not a key": "x"}),
        configmap("too-big", {"x": "a" * (MEBIBYTE + 1)}),
    ):
        rejected = failure(lambda invalid=invalid: api.create_namespaced_config_map(ns, invalid))
        assert (rejected.status, body_of(rejected)["reason"]) == (422, "Invalid")
    # a namespace that does not exist: 403 while not allowed, 404 once allowed
    body = configmap("m", {})
    assert status_of(lambda: api.create_namespaced_config_map("no-such-namespace", body)) == 403
    backend.grant(["create"], "configmaps")  # in every namespace
    assert status_of(lambda: api.create_namespaced_config_map("no-such-namespace", body)) == 404


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_the_size_limit_counts_values_up_to_one_mebibyte(backend: Backend) -> None:
    grant_configmaps(backend)
    api, ns = core(backend), backend.namespace
    at_limit = configmap("at-limit", {"a-long-key-name": "a" * (MEBIBYTE - 1), "b": "b"})
    assert meta(api.create_namespaced_config_map(ns, at_limit)).uid


def expired_token(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> str:
    """Signed 20 minutes ago for 60 s."""
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=20)
    with monkeypatch.context() as clock:
        clock.setattr(botocore.auth, "get_current_datetime", lambda **_: past.replace(tzinfo=None))
        return token(backend)


def unsigned_cluster_token() -> str:
    """A presigned GetCallerIdentity without the x-k8s-aws-id header signed."""
    url = sts().generate_presigned_url(
        "get_caller_identity", Params={}, ExpiresIn=60, HttpMethod="GET"
    )
    return "k8s-aws-v1." + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_authentication_like_eks(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    grant_configmaps(backend)
    ns = backend.namespace
    backend.put_configmap(ns, "m", {})
    assert meta(core(backend).read_namespaced_config_map("m", ns)).name == "m"
    # a token for another cluster name, a wrong secret, an unknown key, expired, garbage: 401
    for bad in (
        EksTokenBuilder(sts()).token("green"),
        token(backend, secret="wrong"),
        token(backend, key="AKIDOTHER"),
        expired_token(backend, monkeypatch),
        unsigned_cluster_token(),
        "k8s-aws-v1.bm90LWEtdXJs",
        "plainly-wrong",
    ):
        rejected = failure(lambda bad=bad: core(backend, bad).read_namespaced_config_map("m", ns))
        assert rejected.status == 401
        status = body_of(rejected)
        assert (status["kind"], status["reason"], status["message"]) == (
            "Status",
            "Unauthorized",
            "Unauthorized",
        )
    # a principal without an access entry: 401 (a new token: the real server caches a
    # successful authentication for 10 s per token); with one but no RBAC: 403
    backend.revoke_access_entry()
    fresh = token(backend, expires=61)
    assert status_of(lambda: core(backend, fresh).read_namespaced_config_map("m", ns)) == 401
    backend.restore_access_entry()
    forbidden = failure(lambda: core(backend).read_namespaced_config_map("m", "default"))
    assert forbidden.status == 403
    status = body_of(forbidden)
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "Forbidden", 403)
    assert status["message"] == (
        'configmaps "m" is forbidden: User "pusher" cannot get resource "configmaps" in API group "" '
        'in the namespace "default"'
    )


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_token_review_verifies_service_account_tokens(backend: Backend) -> None:
    authn = k8s.AuthenticationV1Api(client(backend))
    ns = backend.namespace

    def review(bearer: str, audience: str = "pods.eks.amazonaws.com") -> Any:
        body = k8s.V1TokenReview(spec=k8s.V1TokenReviewSpec(token=bearer, audiences=[audience]))
        return authn.create_token_review(body).status

    issued = backend.service_account_token(ns, "api", "api-1", "pods.eks.amazonaws.com")
    # without the right to create TokenReviews: 403 (the agent answers 503, retryable)
    assert status_of(lambda: review(issued)) == 403
    backend.grant(["create"], "tokenreviews")
    good = review(issued)
    assert good.authenticated
    assert good.audiences == ["pods.eks.amazonaws.com"]
    assert good.user.username == f"system:serviceaccount:{ns}:api"
    assert {"system:serviceaccounts", f"system:serviceaccounts:{ns}"} <= set(good.user.groups)
    assert good.user.extra["authentication.kubernetes.io/pod-name"] == ["api-1"]
    assert good.user.extra["authentication.kubernetes.io/pod-uid"][0]
    other = backend.service_account_token(ns, "api", "api-1", "other")
    assert not review(other).authenticated
    assert not review("garbage").authenticated


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_pod_bound_token_dies_with_its_pod(backend: Backend) -> None:
    backend.grant(["create"], "tokenreviews")
    authn = k8s.AuthenticationV1Api(client(backend))
    issued = backend.service_account_token(
        backend.namespace, "api", "api-2", "pods.eks.amazonaws.com"
    )

    def review() -> Any:
        body = k8s.V1TokenReview(
            spec=k8s.V1TokenReviewSpec(token=issued, audiences=["pods.eks.amazonaws.com"])
        )
        return authn.create_token_review(body).status

    assert review().authenticated
    backend.delete_pod(backend.namespace, "api-2")
    # the server caches a success for 10 s per (token, audiences): wait it out
    deadline = time.monotonic() + 15
    while review().authenticated:
        assert time.monotonic() < deadline, "a deleted pod's token still authenticates"
        time.sleep(1)


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_rbac_resource_names_limit_a_rule_to_those_objects_and_never_allow_create(
    backend: Backend,
) -> None:
    # Given a user whose only rule is get/update on one named ConfigMap (as the push's Role)
    ns = backend.namespace
    backend.grant(["get", "update", "create"], "configmaps", ns, resource_names=["map"])
    backend.put_configmap(ns, "map", {})
    backend.put_configmap(ns, "aws-auth", {"mapRoles": "[]"})
    v1 = core(backend)
    # Then that one object may be read and replaced
    current = v1.read_namespaced_config_map("map", ns)
    body = configmap("map", {"a": "1"}, meta(current).resource_version)
    v1.replace_namespaced_config_map("map", ns, body)
    # And nothing else, and no create at all: the authorizer sees no name on a create
    assert status_of(lambda: v1.read_namespaced_config_map("aws-auth", ns)) == 403
    assert status_of(lambda: v1.create_namespaced_config_map(ns, configmap("map", {}))) == 403
    assert status_of(lambda: v1.list_namespaced_config_map(ns)) == 403
