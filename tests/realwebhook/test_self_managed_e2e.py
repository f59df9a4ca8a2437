"""A self-managed cluster end to end on real parts: the real kube-apiserver
(tests/realkube), the real pod identity webhook, kubectl, and the node agent
process with its sts backend, against the local AWS (moto).

podid enrols the cluster (`podid cluster enroll --self-managed`), pushes its
map with an EKS token mapped like an aws-iam-authenticator entry; map-sync
(`python -m functions.kube.webhook_sync`) lands it in the file the webhook
watches; pods created through the API server are mutated by the webhook; the
node agent serves a pod credentials after a TokenReview of its token.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import boto3
import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from typer.testing import CliRunner

from sandbox import sts_gate
from tests.builders import sts_as
from tests.integration.conftest import ACCOUNT, PUSH_ROLE, REGION, TABLE, World, cluster_pk
from tests.kube_models import meta
from tests.realkube.server import SERVICE_ACCOUNT_ISSUER, RealKube
from tests.realwebhook.test_delivery import kubelet_mount, kubelet_update, wait_for
from tests.realwebhook.webhook import REPO, RealWebhook

DEPLOY = REPO / "deploy"
NAMESPACE = "sm-payments"
NODE_ROLE_NAME = "sm-lab-nodes"
NODE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/{NODE_ROLE_NAME}"
MAP = ("kube-system", "pod-identity-associations")
FULL_URI = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
TOKEN_FILE = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"
AUDIENCE = "pods.eks.amazonaws.com"
ISSUER = SERVICE_ACCOUNT_ISSUER  # the API server's own audience


def node_trust() -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": NODE_ROLE},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
            }
        ],
    }


EC2, LAMBDA = "ec2.amazonaws.com", "lambda.amazonaws.com"


def service_trust(service: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
        ],
    }


def assumed(role_arn: str, name: str, *, by: str) -> dict[str, str]:
    """Credentials of the role as AWS hands them out: assumed by the service its trust
    names (EC2 for the node role, Lambda for the push function's), which the
    sandbox's STS gate holds the request to."""
    key = f"{by}-key"
    sts_gate.PRINCIPALS.register(key, sts_gate.Principal.of_service(by))
    sts = boto3.client("sts", region_name=REGION, aws_access_key_id=key, aws_secret_access_key=key)
    found = sts.assume_role(RoleArn=role_arn, RoleSessionName=name)["Credentials"]
    return {
        "AccessKeyId": found["AccessKeyId"],
        "SecretAccessKey": found["SecretAccessKey"],
        "SessionToken": found["SessionToken"],
    }


def podid(*args: str) -> str:
    from cli.main import app

    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


class Processes:
    def __init__(self) -> None:
        self.running: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
        with log.open("wb") as sink:
            process = subprocess.Popen(
                command, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, env=env
            )
        self.running.append((process, log))
        return process

    def stop(self) -> None:
        for process, _ in self.running:
            process.terminate()
        for process, _ in self.running:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def processes() -> Iterator[Processes]:
    found = Processes()
    yield found
    found.stop()


class RecordingProxy:
    """Between the node agent and the local AWS: forwards every request, and
    keeps each one's form parameters and signing key (moto drops session tags)."""

    def __init__(self, upstream: str) -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []  # (access key id, form parameters)
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                key = self.headers.get("Authorization", "").partition("Credential=")[2]
                recorder.calls.append((key.split("/")[0], dict(parse_qsl(body.decode()))))
                forwarded = urllib.request.Request(
                    upstream + self.path,
                    data=body,
                    headers={k: v for k, v in self.headers.items() if k.lower() != "host"},
                    method="POST",
                )
                try:
                    with urllib.request.urlopen(forwarded, timeout=10) as answer:
                        status, payload, kind = answer.status, answer.read(), answer.headers
                except urllib.error.HTTPError as error:
                    status, payload, kind = error.code, error.read(), error.headers
                self.send_response(status)
                self.send_header("Content-Type", kind.get("Content-Type", "text/xml"))
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def assume_role_calls(self) -> list[tuple[str, dict[str, str]]]:
        return [(key, form) for key, form in self.calls if form.get("Action") == "AssumeRole"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def session_tags(form: dict[str, str]) -> dict[str, str]:
    tags = {}
    index = 1
    while f"Tags.member.{index}.Key" in form:
        tags[form[f"Tags.member.{index}.Key"]] = form[f"Tags.member.{index}.Value"]
        index += 1
    return tags


def map_entry(core: k8s.CoreV1Api, key: str) -> str:
    """One entry of the association map's config map, which must be there."""
    data = core.read_namespaced_config_map(MAP[1], MAP[0]).data
    assert data is not None, "the association map has no data"
    return data[key]


def create_pod(core: k8s.CoreV1Api, name: str, service_account: str) -> Any:
    body = k8s.V1Pod(
        api_version="v1",
        kind="Pod",
        metadata=k8s.V1ObjectMeta(name=name, namespace=NAMESPACE),
        spec=k8s.V1PodSpec(
            service_account_name=service_account,
            containers=[k8s.V1Container(name="app", image="public.ecr.aws/docker/library/busybox")],
        ),
    )
    return core.create_namespaced_pod(NAMESPACE, body)


def env_of(pod: Any) -> dict[str, str]:
    return {e.name: e.value for e in (pod.spec.containers[0].env or [])}


def token_volume(pod: Any) -> Any:
    return next((v for v in pod.spec.volumes or [] if v.name == "eks-pod-identity-token"), None)


def fetch_credentials(port: int, token: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/credentials", headers={"Authorization": token}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_self_managed_cluster_end_to_end_on_the_real_api_server_webhook_and_node_agent(
    world: World,
    real_kube: RealKube,
    processes: Processes,
    tmp_path: Path,
    moto_endpoint: str,
) -> None:
    kube = real_kube
    admin = kube.admin_api()
    core = k8s.CoreV1Api(admin)
    wait: Callable[..., float] = wait_for

    # --- Given the cluster set up as deploy/self-managed/README.md says ----------------------
    kube.kubectl("apply", "-f", str(DEPLOY / "webhook-push-rbac.yaml"))
    kube.kubectl("apply", "-f", str(DEPLOY / "self-managed" / "webhook.yaml"))
    kube.kubectl("apply", "-f", str(DEPLOY / "self-managed" / "node-agent.yaml"))
    kube.ensure_namespace(NAMESPACE)
    for name in ("api", "other", "worker"):
        kube.kubectl("create", "serviceaccount", name, "-n", NAMESPACE)
    # the push role mapped like an aws-iam-authenticator entry; the push signs with its session
    kube.authenticator.trust_sts_endpoint(moto_endpoint)
    kube.map_iam_principal(PUSH_ROLE, "podid-webhook-push", ["podid:webhook-push"])
    # roles: the node role, and payments-api trusting it (not pods.eks.amazonaws.com)
    world.create_role(NODE_ROLE_NAME, trust=service_trust(EC2))
    role = world.create_role("sm-payments-api", trust=node_trust())

    # --- When podid enrols the cluster and a declaration targets its fleet ------------------
    out = podid(
        "cluster", "enroll", kube.cluster_name, "--self-managed",
        "--endpoint", kube.url, "--ca-file", str(kube.ca_file),
        "--node-role-arn", NODE_ROLE, "--fleet", "lab",
        "--table", TABLE, "--queue-url", world.urls["reconcile"],
    )  # fmt: skip
    assert f"enrolled {kube.cluster_name} (self-managed" in out
    # (after the CLI, which rebuilds the functions' services from the environment)
    world.create_role("podid-webhook-push", trust=service_trust(LAMBDA))
    push = assumed(PUSH_ROLE, "push", by=LAMBDA)
    from functions.aws.eks_token import EksTokenBuilder
    from functions.flows.services import services

    services().tokens = EksTokenBuilder(
        sts_as(push["AccessKeyId"], push["SecretAccessKey"], push["SessionToken"])
    )
    world.declare(
        "sm-api",
        namespace=NAMESPACE,
        serviceAccount="api",
        roleArn=role,
        target={"fleet": "lab"},
    )
    world.settle()

    # --- Then the map is in the cluster, written by the push through the real API server -----
    identities = json.loads(map_entry(core, "identities.json"))["identities"]
    assert identities == [{"namespace": NAMESPACE, "serviceAccount": "api"}]
    status = world.item(cluster_pk(kube.cluster_name), f"ASSOC#{NAMESPACE}#api")
    assert status is not None
    assert (status["state"], status["associationId"]) == ("InSync", f"map:{NAMESPACE}/api")

    # --- And map-sync (as the webhook's ServiceAccount) lands it in the webhook's file -------
    webhook_sa = kube.service_account_token(
        "kube-system", "podid-pod-identity-webhook", [ISSUER], 3600
    )
    run = tmp_path / "run"
    run.mkdir()
    watched = run / "identities.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    processes.start(
        [
            sys.executable, "-m", "functions.kube.webhook_sync",
            f"--kubeconfig={kube.kubeconfig_for_token(webhook_sa)}",
            f"--path={watched}", f"--ready-file={run / '.synced'}",
        ],
        tmp_path / "map-sync.log",
        env,
    )  # fmt: skip
    wait((run / ".synced").exists, timeout=30)
    assert json.loads(watched.read_text())["identities"] == identities

    # --- And the real webhook, registered by a MutatingWebhookConfiguration, mutates pods ----
    webhook = RealWebhook.start(
        watched, api_port=kube.port, api_ca=kube.ca_file, api_token=webhook_sa
    )
    registration = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "podid-e2e-pod-identity-webhook"},
        "webhooks": [
            {
                "name": "pod-identity-webhook.podid.io",
                "admissionReviewVersions": ["v1beta1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",  # a missed call must fail the test, not pass silently
                "timeoutSeconds": 10,
                "clientConfig": {
                    "url": webhook.url,
                    "caBundle": base64.b64encode(webhook.tls.ca_pem).decode(),
                },
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}},
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
    kube.kubectl("apply", "-f", "-", input=json.dumps(registration))
    try:
        mutated = create_pod(core, "api-1", "api")
        env_vars = env_of(mutated)
        assert env_vars[FULL_URI] == "http://169.254.170.23/v1/credentials"
        assert env_vars[TOKEN_FILE] == (
            "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token"
        )
        volume = token_volume(mutated)
        assert volume is not None
        assert volume.projected.sources[0].service_account_token.audience == AUDIENCE
        untouched = create_pod(core, "other-1", "other")
        assert FULL_URI not in env_of(untouched)
        assert token_volume(untouched) is None

        # --- When a new service account is declared, new pods get it with no hand step ------
        world.declare(
            "sm-worker",
            namespace=NAMESPACE,
            serviceAccount="worker",
            roleArn=role,
            target={"fleet": "lab"},
        )
        world.settle()
        attempt = 0

        def worker_injected() -> bool:
            nonlocal attempt
            attempt += 1
            pod = create_pod(core, f"worker-{attempt}", "worker")
            return FULL_URI in env_of(pod)

        seconds = wait(worker_injected, timeout=30)
        print(f"declared -> injected into a new pod in {seconds:.1f} s after the push settled")

        # --- Item 5: the node agent's sts backend serves the pod credentials ----------------
        full_map = map_entry(core, "associations.json")
        volume_dir = tmp_path / "agent-map"
        kubelet_mount(volume_dir, {"associations.json": full_map})
        agent_sa = kube.service_account_token("kube-system", "podid-node-agent", [ISSUER], 3600)
        (tmp_path / "agent-token").write_text(agent_sa)
        node = assumed(NODE_ROLE, "i-0123456789abcdef0", by=EC2)
        sts = RecordingProxy(moto_endpoint)
        port, ops = free_port(), free_port()
        processes.start(
            [
                sys.executable, "-m", "node_agent", "--backend", "sts",
                "--cluster-name", kube.cluster_name,
                "--association-map", str(volume_dir / "associations.json"),
                "--bind", f"127.0.0.1:{port}", "--ops-bind", f"127.0.0.1:{ops}",
                "--kube-api", kube.url, "--region", REGION,
            ],
            tmp_path / "agent.log",
            {
                **env,
                "PODID_AGENT_KUBE_TOKEN_FILE": str(tmp_path / "agent-token"),
                "PODID_AGENT_KUBE_CA_FILE": str(kube.ca_file),
                "AWS_ENDPOINT_URL": sts.url,
                "AWS_ACCESS_KEY_ID": node["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": node["SecretAccessKey"],
                "AWS_SESSION_TOKEN": node["SessionToken"],
            },
        )  # fmt: skip
        wait(lambda: _ready(ops), timeout=60)
        pod_token = kube.service_account_token(NAMESPACE, "api", [AUDIENCE], 3600, pod="api-1")
        code, answer = fetch_credentials(port, pod_token)
        assert code == 200, answer
        caller = sts_as(
            answer["AccessKeyId"], answer["SecretAccessKey"], answer["Token"]
        ).get_caller_identity()
        assert caller["Arn"].startswith(f"arn:aws:sts::{ACCOUNT}:assumed-role/sm-payments-api/")
        # sts:AssumeRole signed with the node role's credentials, with the six EKS session tags
        (signer, form), *_ = sts.assume_role_calls()
        sts.close()
        assert signer == node["AccessKeyId"]
        assert form["RoleArn"] == role
        pod_uid = meta(core.read_namespaced_pod("api-1", NAMESPACE)).uid
        assert session_tags(form) == {
            "eks-cluster-arn": f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/{kube.cluster_name}",
            "eks-cluster-name": kube.cluster_name,
            "kubernetes-namespace": NAMESPACE,
            "kubernetes-service-account": "api",
            "kubernetes-pod-name": "api-1",
            "kubernetes-pod-uid": pod_uid,
        }
        # a pod of an undeclared service account gets nothing; a token of another audience neither
        other = kube.service_account_token(NAMESPACE, "other", [AUDIENCE], 3600, pod="other-1")
        assert fetch_credentials(port, other)[0] == 404
        wrong = kube.service_account_token(NAMESPACE, "api", [ISSUER], 3600, pod="api-1")
        assert fetch_credentials(port, wrong)[0] == 401
        # the agent follows the kubelet's swap of its mounted map (it re-reads by mtime)
        world.undeclare("sm-api")
        world.settle()
        fresh = map_entry(core, "associations.json")
        kubelet_update(volume_dir, {"associations.json": fresh})
        fresh_token = kube.service_account_token(NAMESPACE, "api", [AUDIENCE], 3599, pod="api-1")
        wait(lambda: fetch_credentials(port, fresh_token)[0] == 404, timeout=15)
    finally:
        kube.kubectl("delete", "mutatingwebhookconfiguration", "podid-e2e-pod-identity-webhook")
        webhook.stop()
        for name in ("pods", "serviceaccounts"):
            kube.kubectl("delete", name, "--all", "-n", NAMESPACE, "--wait=false", check=False)
        with contextlib.suppress(ApiException):
            core.delete_namespaced_config_map(MAP[1], MAP[0])


def _ready(ops_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ops_port}/readyz", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False
