"""deploy/self-managed/ as a user applies it, with kubectl against the real
API server: every object passes server-side validation (a dry-run), RBAC,
ServiceAccounts, the Service and the webhook registration are applied for
real, and the permissions they grant are exactly what the parts need."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.realkube.server import RealKube
from tests.realwebhook.webhook import REPO

SELF_MANAGED = REPO / "deploy" / "self-managed"
WEBHOOK_SA = "system:serviceaccount:kube-system:podid-pod-identity-webhook"
AGENT_SA = "system:serviceaccount:kube-system:podid-node-agent"


def can(kube: RealKube, user: str, *args: str) -> bool:
    found = kube.kubectl("auth", "can-i", *args, f"--as={user}", check=False)
    return found.stdout.strip() == "yes"


def test_every_manifest_passes_the_api_servers_validation_and_rbac_is_least_privilege(
    real_kube: RealKube,
) -> None:
    kube = real_kube
    kube.kubectl("apply", "-f", str(REPO / "deploy" / "webhook-push-rbac.yaml"))
    # every object, the Deployment with its native sidecar and the DaemonSet included
    dry = kube.kubectl("apply", "--dry-run=server", "-f", str(SELF_MANAGED))
    assert "deployment.apps/podid-pod-identity-webhook created (server dry run)" in dry.stdout
    assert "daemonset.apps/podid-node-agent created (server dry run)" in dry.stdout
    assert "mutatingwebhookconfiguration" in dry.stdout
    # applied for real (no controller runs here, so nothing starts)
    applied = kube.kubectl("apply", "-f", str(SELF_MANAGED))
    try:
        assert "clusterrolebinding.rbac.authorization.k8s.io/podid-node-agent-tokenreview" in (
            applied.stdout
        )
        assert kube.kubectl("apply", "-f", str(SELF_MANAGED)).stdout.count("unchanged") >= 10
        # the webhook: its service-account informer, and (map-sync) the one map ConfigMap
        assert can(kube, WEBHOOK_SA, "list", "serviceaccounts", "--all-namespaces")
        assert can(kube, WEBHOOK_SA, "watch", "serviceaccounts", "--all-namespaces")
        for verb in ("get", "list", "watch"):
            assert can(
                kube, WEBHOOK_SA, verb, "configmaps/pod-identity-associations", "-n", "kube-system"
            )
        assert not can(kube, WEBHOOK_SA, "get", "configmaps/aws-auth", "-n", "kube-system")
        assert not can(
            kube, WEBHOOK_SA, "update", "configmaps/pod-identity-associations", "-n", "kube-system"
        )
        assert not can(kube, WEBHOOK_SA, "get", "secrets", "-n", "kube-system")
        # the node agent: TokenReview, and reading the map; nothing else
        assert can(kube, AGENT_SA, "create", "tokenreviews.authentication.k8s.io")
        assert can(
            kube, AGENT_SA, "get", "configmaps/pod-identity-associations", "-n", "kube-system"
        )
        assert not can(kube, AGENT_SA, "get", "configmaps/aws-auth", "-n", "kube-system")
        assert not can(kube, AGENT_SA, "list", "pods", "--all-namespaces")
        assert not can(kube, AGENT_SA, "get", "secrets", "-n", "kube-system")
        registered = kube.kubectl(
            "get", "mutatingwebhookconfiguration", "podid-pod-identity-webhook", "-o", "yaml"
        )
        webhook = yaml.safe_load(registered.stdout)["webhooks"][0]
        assert webhook["admissionReviewVersions"] == ["v1beta1"]
        assert webhook["failurePolicy"] == "Ignore"
    finally:
        # the registration names a Service nothing serves: never leave it for other tests
        kube.kubectl(
            "delete", "-f", str(SELF_MANAGED / "mutatingwebhook.yaml"), "--ignore-not-found"
        )


def test_make_certs_issues_a_serving_certificate_for_the_webhook_service(tmp_path: Path) -> None:
    found = subprocess.run(
        ["bash", str(SELF_MANAGED / "make-certs.sh"), "--dry-run"],  # noqa: S607
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert ": OK" in found.stdout  # openssl verify of the certificate against its CA
    assert "create secret tls podid-pod-identity-webhook-cert" in found.stdout
    assert '"path":"/webhooks/0/clientConfig/caBundle"' in found.stdout


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((SELF_MANAGED / name).read_text()) if d]


def test_map_sync_writes_exactly_the_file_the_webhook_watches_and_the_agent_flags_parse() -> None:
    from functions.kube.webhook_sync import parse_args as sync_args
    from node_agent.settings import parse_args as agent_args

    deployment = next(d for d in documents("webhook.yaml") if d["kind"] == "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    (sidecar,) = spec["initContainers"]
    (webhook,) = spec["containers"]
    assert sidecar["restartPolicy"] == "Always"  # a native sidecar: the webhook starts after it
    synced = sync_args(sidecar["command"][3:])
    watched = next(
        a.split("=", 1)[1]
        for a in webhook["command"]
        if a.startswith("--watch-container-credentials-config=")
    )
    # the webhook reloads only on an event named exactly like its path
    assert synced.path == watched
    assert synced.configmap == "pod-identity-associations"
    mounts = {m["name"]: m["mountPath"] for m in sidecar["volumeMounts"]}
    assert Path(watched).parent == Path(mounts["map"])
    assert {m["name"]: m["mountPath"] for m in webhook["volumeMounts"]}["map"] == mounts["map"]
    assert sidecar["startupProbe"]["exec"]["command"][-1] == synced.ready_file
    daemonset = next(d for d in documents("node-agent.yaml") if d["kind"] == "DaemonSet")
    (agent,) = daemonset["spec"]["template"]["spec"]["containers"]
    args = [a.replace("CHANGE-ME", "lab-1") for a in agent["args"]]
    settings = agent_args(args)
    assert (settings.backend, settings.cluster_name) == ("sts", "lab-1")
    volume = {m["name"]: m["mountPath"] for m in agent["volumeMounts"]}["map"]
    assert settings.association_map == f"{volume}/associations.json"
    assert daemonset["spec"]["template"]["spec"]["serviceAccountName"] == "podid-node-agent"
