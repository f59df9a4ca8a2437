"""The push on a real API server, set up exactly as the README tells users:
`kubectl apply -f deploy/webhook-push-rbac.yaml`, then the push role mapped
to the manifest's group like an EKS access entry. The push runs as a session
of that role from the local AWS, finds the API server and its CA through EKS
DescribeCluster, and signs an EKS token the server's authenticator verifies.

Covered: the manifest creates the ConfigMap (the push never does), the push
updates it (keeping the manifest's labels and kubectl's annotation), a real
409 is retried by the writer, 401 (no access entry), 403 (no RBAC), 404 (no
ConfigMap) and 422 (a map over 1 MiB) are parked with what to do, and least privilege: the push's token can get and
update that one ConfigMap and nothing else, by `kubectl auth can-i --list`
and by real requests."""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from functions.aws.eks_token import EksTokenBuilder
from functions.core.association_map import FULL_MAP_KEY, parse_full_map
from functions.core.models import FLEET_TAG
from functions.kube.configmap import ClusterEndpoint, ConfigMapWriter, KubeSetupError, api_client
from sandbox import sts_gate
from tests.builders import sts_as
from tests.integration.conftest import ACCOUNT, PUSH_ROLE, REGION, World, cluster_pk, fixture_event
from tests.kube_models import meta
from tests.realkube import RealKube

MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "webhook-push-rbac.yaml"
NAMESPACE, NAME = "kube-system", "pod-identity-associations"
# an EKS access entry's default username for a role
PUSH_USER = f"arn:aws:sts::{ACCOUNT}:assumed-role/podid-webhook-push/{{{{SessionName}}}}"
SESSION = "webhook-push"
LAMBDA_SERVICE = "lambda.amazonaws.com"
LAMBDA_KEY = "lambda-service"
LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": LAMBDA_SERVICE},
            "Action": "sts:AssumeRole",
        }
    ],
}


def lambda_service_sts() -> Any:
    """STS as the Lambda service calls it for a function (the trust names only it)."""
    sts_gate.PRINCIPALS.register(LAMBDA_KEY, sts_gate.Principal.of_service(LAMBDA_SERVICE))
    return boto3.client(
        "sts", region_name=REGION, aws_access_key_id=LAMBDA_KEY, aws_secret_access_key=LAMBDA_KEY
    )


def manifest_group() -> str:
    documents = {d["kind"]: d for d in yaml.safe_load_all(MANIFEST.read_text())}
    (group,) = [s["name"] for s in documents["RoleBinding"]["subjects"] if s["kind"] == "Group"]
    return str(group)


class RealCluster:
    """The real API server as one EKS cluster of the local account."""

    def __init__(self, world: World, kube: RealKube) -> None:
        self.world, self.kube = world, kube
        self.name = kube.cluster_name
        self.admin = k8s.CoreV1Api(kube.admin_api())
        self.credentials: dict[str, str] = {}

    def reset(self) -> None:
        """The session's server outlives a test: start from a cluster without podid."""
        self.kube.kubectl("delete", "-f", str(MANIFEST), "--ignore-not-found", "--wait=false")
        self.kube.unmap_iam_principal(PUSH_ROLE)

    def apply_manifest(self) -> None:
        self.kube.kubectl("apply", "-f", str(MANIFEST))

    def grant_access_entry(self, groups: list[str] | None = None) -> None:
        groups = [manifest_group()] if groups is None else groups
        self.kube.map_iam_principal(PUSH_ROLE, PUSH_USER, groups)

    def run_as_push_role(self) -> None:
        """The functions run with a session of the push role, as in Lambda."""
        iam = self.world.client("iam")
        iam.create_role(
            RoleName="podid-webhook-push", AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST)
        )
        self.credentials = lambda_service_sts().assume_role(
            RoleArn=PUSH_ROLE, RoleSessionName=SESSION
        )["Credentials"]
        os.environ.pop("KUBE_ENDPOINT_TEMPLATE", None)  # where the API server is: ask EKS
        self.world.configure(
            aws_access_key_id=self.credentials["AccessKeyId"],
            aws_secret_access_key=self.credentials["SecretAccessKey"],
            aws_session_token=self.credentials["SessionToken"],
        )

    def create_in_eks(self) -> None:
        from moto.eks.models import eks_backends

        self.world.client("eks").create_cluster(
            name=self.name,
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks-cluster",
            resourcesVpcConfig={"subnetIds": ["subnet-1"]},
            tags={FLEET_TAG: "prod"},
        )
        cluster = eks_backends[ACCOUNT][REGION].clusters[self.name]
        cluster.endpoint = self.kube.url
        cluster.certificate_authority = {
            "data": base64.b64encode(self.kube.ca_file.read_bytes()).decode()
        }

    def push_token(self) -> str:
        credentials = self.credentials
        client = sts_as(
            credentials["AccessKeyId"], credentials["SecretAccessKey"], credentials["SessionToken"]
        )
        return EksTokenBuilder(client).token(self.name, 900)

    def push_api(self) -> k8s.CoreV1Api:
        return k8s.CoreV1Api(self.kube.token_api(self.push_token()))

    def configmap(self, name: str = NAME) -> Any:
        return self.admin.read_namespaced_config_map(name, NAMESPACE)

    def identities(self) -> list[str]:
        document = json.loads(self.configmap().data["identities.json"])
        return [f"{i['namespace']}/{i['serviceAccount']}" for i in document["identities"]]


@pytest.fixture
def real(world: World, real_kube: RealKube) -> Iterator[RealCluster]:
    cluster = RealCluster(world, real_kube)
    cluster.reset()
    cluster.run_as_push_role()
    cluster.create_in_eks()
    world.create_role("payments-api")
    yield cluster
    cluster.reset()


def enroll_and_declare(world: World) -> None:
    world.reconcile_event(fixture_event("scheduled_event"))
    world.declare_in_payments("payments-api", "api")
    world.settle()


def test_the_push_updates_the_configmap_the_manifest_created(real: RealCluster) -> None:
    # Given the cluster set up as the README says
    real.apply_manifest()
    created = real.configmap()
    real.grant_access_entry()
    # When podid enrols it and a declaration is synced
    enroll_and_declare(real.world)
    # Then the push wrote the map into that object (same uid: updated, never re-created)
    pushed = real.configmap()
    assert pushed.metadata.uid == created.metadata.uid
    assert real.identities() == ["payments/api"]
    document = parse_full_map(pushed.data[FULL_MAP_KEY])
    assert document["cluster"] == real.name
    assert pushed.metadata.annotations["podid.io/association-map-sha256"] == document["sha256"]
    # keeping the manifest's labels and kubectl's own annotation
    assert pushed.metadata.labels["app.kubernetes.io/component"] == "association-map"
    assert pushed.metadata.labels["app.kubernetes.io/managed-by"] == "podid"
    assert "kubectl.kubernetes.io/last-applied-configuration" in pushed.metadata.annotations
    assert real.world.record(cluster_pk(real.name), "MAP")["sha256"] == document["sha256"]
    # by the push role's session, authenticated by the EKS token webhook
    authenticated = [who for ok, who in real.kube.authenticator.reviews if ok]
    assert f"arn:aws:sts::{ACCOUNT}:assumed-role/podid-webhook-push/{SESSION}" in authenticated
    # And re-applying the manifest (an upgrade) leaves the pushed map alone
    real.apply_manifest()
    assert real.identities() == ["payments/api"]
    assert real.world.dead_letters() == []


def record_failed_deliveries(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Push deliveries the handler failed (the queue would deliver them again)."""
    from functions.handlers import webhook_push

    failed: list[Any] = []
    handler = webhook_push.handler

    def recording(event: dict[str, Any], context: Any) -> Any:
        try:
            answer = handler(event, context)
        except Exception:  # a batch whose every record failed
            failed.extend(event["Records"])
            raise
        failed.extend(answer.get("batchItemFailures") or [])
        return answer

    monkeypatch.setattr(webhook_push, "handler", recording)
    return failed


def test_a_real_conflict_is_retried_with_the_new_resource_version(
    real: RealCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    real.apply_manifest()
    real.grant_access_entry()
    enroll_and_declare(real.world)
    # Given someone else writes the ConfigMap between the push's read and its replace
    read, replace = (
        k8s.CoreV1Api.read_namespaced_config_map,
        k8s.CoreV1Api.replace_namespaced_config_map,
    )
    interleaved: list[str] = []
    answers: list[int] = []

    def read_then_interfere(api: k8s.CoreV1Api, name: str, namespace: str, **kw: Any) -> Any:
        current = read(api, name, namespace, **kw)
        if not interleaved:
            edited = real.admin.patch_namespaced_config_map(
                name, namespace, {"metadata": {"annotations": {"someone": "else"}}}
            )
            version = meta(edited).resource_version
            assert version is not None
            interleaved.append(version)
        return current

    def replace_and_record(api: k8s.CoreV1Api, *args: Any, **kw: Any) -> Any:
        try:
            replaced = replace(api, *args, **kw)
        except ApiException as error:
            answers.append(error.status)
            raise
        answers.append(200)
        return replaced

    monkeypatch.setattr(k8s.CoreV1Api, "read_namespaced_config_map", read_then_interfere)
    monkeypatch.setattr(k8s.CoreV1Api, "replace_namespaced_config_map", replace_and_record)
    failed_deliveries = record_failed_deliveries(monkeypatch)
    # When a change is pushed
    real.world.declare_in_payments("worker", "worker")
    real.world.settle()
    # Then the real server refused the stale write once, and the retry landed
    assert interleaved, "the interfering write did not happen"
    assert answers == [409, 200]
    assert failed_deliveries == []  # retried by the writer, not by redelivering the message
    assert real.identities() == ["payments/api", "payments/worker"]
    assert real.configmap().metadata.annotations["someone"] == "else"
    assert real.world.dead_letters() == []


def test_without_an_access_entry_the_push_is_parked_as_401(real: RealCluster) -> None:
    real.apply_manifest()
    enroll_and_declare(real.world)
    parked = real.world.dead_letters()
    assert parked
    for message in parked:
        assert message["source"] == "webhook_push"
        assert "rejected the credentials (401)" in message["reason"]
        assert "has no EKS access entry" in message["reason"]
    assert real.configmap().data is None
    assert real.world.item(cluster_pk(real.name), "MAP") is None


def test_without_rbac_the_push_is_parked_as_403_with_the_servers_reason(
    real: RealCluster,
) -> None:
    real.apply_manifest()
    real.grant_access_entry(groups=["some-other-group"])
    enroll_and_declare(real.world)
    parked = real.world.dead_letters()
    assert parked
    user = PUSH_USER.replace("{{SessionName}}", SESSION)
    for message in parked:
        assert "forbids the push (403) in namespace kube-system" in message["reason"]
        assert (
            f'configmaps "{NAME}" is forbidden: User "{user}" cannot get resource "configmaps" '
            'in API group "" in the namespace "kube-system"'
        ) in message["reason"]
    assert real.configmap().data is None


def test_without_the_configmap_the_push_is_parked_and_creates_nothing(real: RealCluster) -> None:
    real.apply_manifest()
    real.grant_access_entry()
    real.kube.kubectl("delete", "configmap", NAME, "-n", NAMESPACE)
    enroll_and_declare(real.world)
    parked = real.world.dead_letters()
    assert parked
    for message in parked:
        assert f"{NAMESPACE}/{NAME} does not exist on {real.name}" in message["reason"]
    assert status_of(real.configmap) == 404


def status_of(call: Any) -> int:
    with pytest.raises(ApiException) as caught:
        call()
    return int(caught.value.status)


# What every authenticated user may do (RBAC's default system:basic-user,
# system:discovery and system:public-info-viewer), as `kubectl auth can-i --list` shows it.
DEFAULT_RULES = {
    ("selfsubjectreviews.authentication.k8s.io", "", "create"),
    ("selfsubjectaccessreviews.authorization.k8s.io", "", "create"),
    ("selfsubjectrulesreviews.authorization.k8s.io", "", "create"),
}


def can_i_list(kube: RealKube, namespace: str, kubeconfig: Path | None, *extra: str) -> set[Any]:
    """(resource, resourceName, verb) rows of `kubectl auth can-i --list`."""
    shown = kube.kubectl(
        "auth", "can-i", "--list", "--no-headers", "-n", namespace, *extra, kubeconfig=kubeconfig
    )
    rules = set()
    for line in shown.stdout.splitlines():
        columns = re.split(r"\s{2,}", line.strip())
        if line.startswith(" ") or len(columns) != 4:
            continue  # a non-resource URL row
        resource, _, names, verbs = columns
        for name in names.strip("[]").split() or [""]:
            for verb in verbs.strip("[]").split():
                rules.add((resource, name, verb))
    return rules


def rules_review(api: k8s.ApiClient, namespace: str) -> set[Any]:
    """The same through SelfSubjectRulesReview, with the push's own token."""
    review = k8s.AuthorizationV1Api(api).create_self_subject_rules_review(
        k8s.V1SelfSubjectRulesReview(spec=k8s.V1SelfSubjectRulesReviewSpec(namespace=namespace))
    )
    rules: set[tuple[str, str, str]] = set()
    assert review.status is not None
    for rule in review.status.resource_rules:
        for group in rule.api_groups or [""]:
            for resource in rule.resources or []:
                name = f"{resource}.{group}" if group else resource
                for named in rule.resource_names or [""]:
                    rules.update((name, named, verb) for verb in rule.verbs)
    return rules


def test_the_push_may_get_and_update_its_configmap_and_nothing_else(real: RealCluster) -> None:
    real.apply_manifest()
    real.grant_access_entry()
    token_config = real.kube.kubeconfig_for_token(real.push_token())
    own = {("configmaps", NAME, "get"), ("configmaps", NAME, "update")}
    # What RBAC grants, as the API server computes it for the push's own token
    assert can_i_list(real.kube, NAMESPACE, token_config) == own | DEFAULT_RULES
    push_client = real.kube.token_api(real.push_token())
    assert rules_review(push_client, NAMESPACE) == own | DEFAULT_RULES
    for namespace in ("default", "kube-public", "payments"):
        assert can_i_list(real.kube, namespace, token_config) == DEFAULT_RULES
        assert rules_review(push_client, namespace) == DEFAULT_RULES
    # and the same by impersonation (the user and groups an access entry gives)
    user = PUSH_USER.replace("{{SessionName}}", SESSION)
    impersonated = (
        "--as",
        user,
        "--as-group",
        manifest_group(),
        "--as-group",
        "system:authenticated",
    )
    assert can_i_list(real.kube, NAMESPACE, None, *impersonated) == own | DEFAULT_RULES
    # Real requests with the push's token: its ConfigMap may be read and replaced
    api = real.push_api()
    current = api.read_namespaced_config_map(NAME, NAMESPACE)
    current.data = {"probe": "1"}
    api.replace_namespaced_config_map(NAME, NAMESPACE, current)
    # but not patched, deleted or watched; no other ConfigMap or object may be
    # read, listed, created or changed, not even a ConfigMap of the map's name
    real.kube.kubectl("create", "configmap", "aws-auth", "-n", NAMESPACE, "--from-literal=a=b")
    body = k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="aws-auth"), data={"mapRoles": "x"})
    mine = k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name=NAME), data={})
    denied = {
        "patch own": lambda: api.patch_namespaced_config_map(NAME, NAMESPACE, {"data": {}}),
        "delete own": lambda: api.delete_namespaced_config_map(NAME, NAMESPACE),
        "watch own": lambda: api.list_namespaced_config_map(
            NAMESPACE, field_selector=f"metadata.name={NAME}", watch=False
        ),
        "get other": lambda: api.read_namespaced_config_map("aws-auth", NAMESPACE),
        "update other": lambda: api.replace_namespaced_config_map("aws-auth", NAMESPACE, body),
        "create other": lambda: api.create_namespaced_config_map(NAMESPACE, body),
        "create own name elsewhere": lambda: api.create_namespaced_config_map("default", mine),
        "get own name elsewhere": lambda: api.read_namespaced_config_map(NAME, "default"),
        "list configmaps": lambda: api.list_namespaced_config_map(NAMESPACE),
        "list all configmaps": api.list_config_map_for_all_namespaces,
        "list secrets": lambda: api.list_namespaced_secret(NAMESPACE),
        "list namespaces": api.list_namespace,
        "list pods": api.list_pod_for_all_namespaces,
    }
    answers = {what: status_of(call) for what, call in denied.items()}
    assert answers == dict.fromkeys(denied, 403)
    real.kube.kubectl("delete", "configmap", "aws-auth", "-n", NAMESPACE)


def test_a_map_the_server_rejects_as_invalid_is_a_setup_error_not_retried(
    real: RealCluster,
) -> None:
    # Given the push set up, and a map over the 1 MiB a ConfigMap may hold (about what
    # 5,000 associations with session policies weigh)
    real.apply_manifest()
    real.grant_access_entry()
    endpoint = ClusterEndpoint(
        real.name, real.kube.url, base64.b64encode(real.kube.ca_file.read_bytes()).decode()
    )
    writer = ConfigMapWriter(api_client(endpoint, real.push_token()), endpoint)
    too_big = {FULL_MAP_KEY: "x" * (1024 * 1024 + 1)}
    # When it is written, the real server answers 422 Invalid, and retrying the same
    # map cannot help: the push parks it at once with the server's reason
    with pytest.raises(KubeSetupError) as rejected:
        writer.apply(NAMESPACE, NAME, too_big, {})
    assert f"{real.name} rejected ConfigMap {NAMESPACE}/{NAME} as invalid (422)" in str(
        rejected.value
    )
    assert "Too long: may not be more than 1048576 bytes" in str(rejected.value)
    assert real.configmap().data is None
