"""The real API server fixture: kubectl with the admin kubeconfig, EKS tokens
authenticated like EKS does (strictly: a valid signature without an access
entry is still 401), service-account tokens, Pods, and mutating webhooks."""

from __future__ import annotations

import base64
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from functions.aws.eks_token import EksTokenBuilder, decode_token
from tests.builders import sts_as
from tests.integration.conftest import ACCOUNT, REGION
from tests.kube_models import meta
from tests.realkube import RealKube

if TYPE_CHECKING:
    from mypy_boto3_sts.type_defs import CredentialsTypeDef

ROLE = f"arn:aws:iam::{ACCOUNT}:role/realkube-reader"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}],
}


@pytest.fixture
def role_session(moto_endpoint: str) -> Iterator[CredentialsTypeDef]:
    """Credentials of a session of ROLE, issued by the local AWS."""
    iam = boto3.client("iam", region_name=REGION)
    iam.create_role(RoleName="realkube-reader", AssumeRolePolicyDocument=json.dumps(TRUST))
    credentials = boto3.client("sts", region_name=REGION).assume_role(
        RoleArn=ROLE, RoleSessionName="reader-session"
    )["Credentials"]
    yield credentials
    iam.delete_role(RoleName="realkube-reader")


def eks_token(credentials: CredentialsTypeDef, cluster: str, **overrides: str) -> str:
    sts = sts_as(
        overrides.get("key", credentials["AccessKeyId"]),
        overrides.get("secret", credentials["SecretAccessKey"]),
        overrides.get("session", credentials["SessionToken"]),
    )
    return EksTokenBuilder(sts).token(cluster, int(overrides.get("expires", "60")))


def whoami(real_kube: RealKube, token: str) -> Any:
    review = k8s.AuthenticationV1Api(real_kube.token_api(token)).create_self_subject_review(
        k8s.V1SelfSubjectReview()
    )
    assert review.status is not None
    return review.status.user_info


def status_of(call: Any) -> int:
    with pytest.raises(ApiException) as caught:
        call()
    return int(caught.value.status)


def test_kubectl_works_with_the_admin_kubeconfig(real_kube: RealKube) -> None:
    version = json.loads(real_kube.kubectl("get", "--raw", "/version").stdout)
    assert version["gitVersion"] == "v1.34.4"
    namespaces = real_kube.kubectl("get", "namespaces", "-o", "name").stdout.split()
    assert {"namespace/default", "namespace/kube-system"} <= set(namespaces)
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: probe, namespace: default}\n"
    dry = real_kube.kubectl("apply", "--dry-run=server", "-f", "-", input=manifest)
    assert "configmap/probe created (server dry run)" in dry.stdout
    assert real_kube.kubectl("get", "configmap", "probe", check=False).returncode != 0


def test_an_eks_token_authenticates_only_with_an_access_entry(
    real_kube: RealKube, role_session: CredentialsTypeDef
) -> None:
    token = eks_token(role_session, real_kube.cluster_name)
    # Given a valid token whose role has no access entry: 401, as EKS
    assert status_of(lambda: whoami(real_kube, token)) == 401
    # When the role is mapped like an access entry
    real_kube.map_iam_principal(ROLE, "reader:{{SessionName}}", ["readers"])
    try:
        user = whoami(real_kube, token)
        # Then the session authenticates as the entry's user, in its groups
        assert user.username == "reader:reader-session"
        assert set(user.groups) == {"readers", "system:authenticated"}
        assert user.extra["canonicalArn"] == [ROLE]
        # And kubectl authenticates with the token too (TLS, bearer)
        kubeconfig = real_kube.kubeconfig_for_token(token)
        shown = real_kube.kubectl("auth", "whoami", "-o", "json", kubeconfig=kubeconfig)
        assert json.loads(shown.stdout)["status"]["userInfo"]["username"] == "reader:reader-session"
        # But not for another cluster, nor with a wrong secret or a foreign session token
        for bad in (
            eks_token(role_session, "another-cluster"),
            eks_token(role_session, real_kube.cluster_name, secret="not-the-secret"),
            eks_token(role_session, real_kube.cluster_name, session="someone-elses-session"),
            eks_token(role_session, real_kube.cluster_name, key="AKIAUNKNOWNKEY000000"),
            token[:-4] + "AAAA",
            "k8s-aws-v1." + base64.urlsafe_b64encode(b"https://example.com/?a=b").decode(),
        ):
            assert status_of(lambda bad=bad: whoami(real_kube, bad)) == 401
    finally:
        real_kube.unmap_iam_principal(ROLE)
    # the API server caches a success for 10 s per token: a new token sees the removal
    fresh = eks_token(role_session, real_kube.cluster_name, expires="120")
    assert status_of(lambda: whoami(real_kube, fresh)) == 401


def test_a_token_carrying_extra_query_parameters_is_rejected(
    real_kube: RealKube, role_session: CredentialsTypeDef
) -> None:
    real_kube.map_iam_principal(ROLE, "reader", ["readers"])
    try:
        url = decode_token(eks_token(role_session, real_kube.cluster_name))
        tampered = url + "&Action=ListUsers"
        token = "k8s-aws-v1." + base64.urlsafe_b64encode(tampered.encode()).decode().rstrip("=")
        assert status_of(lambda: whoami(real_kube, token)) == 401
        assert real_kube.authenticator.reviews[-1] == (False, "unexpected query parameters")
    finally:
        real_kube.unmap_iam_principal(ROLE)


def test_a_pod_bound_service_account_token_is_reviewed(real_kube: RealKube) -> None:
    real_kube.ensure_namespace("realkube-tokens")
    core = k8s.CoreV1Api(real_kube.admin_api())
    core.create_namespaced_service_account(
        "realkube-tokens", k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name="api"))
    )
    pod = core.create_namespaced_pod(
        "realkube-tokens",
        k8s.V1Pod(
            metadata=k8s.V1ObjectMeta(name="api-1"),
            spec=k8s.V1PodSpec(
                service_account_name="api",
                containers=[k8s.V1Container(name="app", image="example.invalid/app:1")],
            ),
        ),
    )
    # nothing schedules it: it stays Pending, which is all a test needs
    assert pod.status is not None
    assert pod.status.phase == "Pending"
    token = real_kube.service_account_token(
        "realkube-tokens", "api", ["pods.eks.amazonaws.com"], 600, pod="api-1"
    )
    authn = k8s.AuthenticationV1Api(real_kube.admin_api())

    def review(audience: str) -> Any:
        body = k8s.V1TokenReview(spec=k8s.V1TokenReviewSpec(token=token, audiences=[audience]))
        return authn.create_token_review(body).status

    found = review("pods.eks.amazonaws.com")
    assert found.authenticated
    assert found.user.username == "system:serviceaccount:realkube-tokens:api"
    assert found.user.extra["authentication.kubernetes.io/pod-name"] == ["api-1"]
    assert found.user.extra["authentication.kubernetes.io/pod-uid"] == [meta(pod).uid]
    assert not review("sts.amazonaws.com").authenticated


class _LabelWebhook(BaseHTTPRequestHandler):
    """Admission webhook adding one label to every pod it is asked about."""

    def log_message(self, *_: Any) -> None:
        pass

    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        patch = [{"op": "add", "path": "/metadata/labels", "value": {"mutated-by": "webhook"}}]
        answer = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {
                "uid": review["request"]["uid"],
                "allowed": True,
                "patchType": "JSONPatch",
                "patch": base64.b64encode(json.dumps(patch).encode()).decode(),
            },
        }
        payload = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def test_a_mutating_webhook_at_a_loopback_url_mutates_pods(real_kube: RealKube) -> None:
    certificate = real_kube.serving_certificate("label-webhook")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate.cert, certificate.key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LabelWebhook)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    real_kube.ensure_namespace("realkube-webhook")
    configuration = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "realkube-label"},
        "webhooks": [
            {
                "name": "label.realkube.podid.dev",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": "realkube-webhook"}
                },
                "clientConfig": {
                    "url": f"https://127.0.0.1:{server.server_address[1]}/mutate",
                    "caBundle": base64.b64encode(real_kube.ca_file.read_bytes()).decode(),
                },
                "rules": [
                    {
                        "operations": ["CREATE"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                    }
                ],
            }
        ],
    }
    real_kube.kubectl("apply", "-f", "-", input=json.dumps(configuration))
    try:
        core = k8s.CoreV1Api(real_kube.admin_api())
        core.create_namespaced_service_account(
            "realkube-webhook", k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name="default"))
        )
        pod = core.create_namespaced_pod(
            "realkube-webhook",
            k8s.V1Pod(
                metadata=k8s.V1ObjectMeta(name="p"),
                spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="c", image="x.invalid/c")]),
            ),
        )
        assert meta(pod).labels == {"mutated-by": "webhook"}
    finally:
        real_kube.kubectl("delete", "mutatingwebhookconfiguration", "realkube-label")
        server.shutdown()
        server.server_close()
