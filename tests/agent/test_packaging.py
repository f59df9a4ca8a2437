"""The image and the DaemonSet a user applies, checked against the Kubernetes models."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kube_models import as_model

ROOT = Path(__file__).parents[2]


def load(kind_to_model: dict[str, str]) -> dict[str, Any]:
    documents = list(
        yaml.safe_load_all((ROOT / "node_agent" / "deploy" / "daemonset.yaml").read_text())
    )
    return {d["kind"]: as_model(d, kind_to_model[d["kind"]]) for d in documents}


def test_daemonset_is_valid_and_least_privileged() -> None:
    objects = load({"ServiceAccount": "V1ServiceAccount", "DaemonSet": "V1DaemonSet"})
    daemonset = objects["DaemonSet"]
    pod = daemonset.spec.template.spec
    assert daemonset.spec.selector.match_labels == daemonset.spec.template.metadata.labels
    assert pod.host_network is True
    assert pod.automount_service_account_token is False
    (agent,) = pod.containers
    security = agent.security_context
    assert security.run_as_non_root is True
    assert security.run_as_user == 65532
    assert security.read_only_root_filesystem is True
    assert security.capabilities.drop == ["ALL"]
    assert security.capabilities.add == ["NET_BIND_SERVICE"]
    assert security.seccomp_profile.type == "RuntimeDefault"
    assert agent.liveness_probe.http_get.path == "/healthz"
    assert agent.readiness_probe.http_get.path == "/readyz"
    assert agent.resources.limits["memory"] == "128Mi"
    assert "--bind=169.254.170.23:80" in agent.args
    assert "--bind=[fd00:ec2::23]:80" in agent.args
    (init,) = pod.init_containers
    assert init.security_context.capabilities.add == ["NET_ADMIN"]
    assert "169.254.170.23/32" in init.command[-1]


def test_the_agent_flags_in_the_daemonset_parse() -> None:
    from node_agent.settings import parse_args

    daemonset = load({"ServiceAccount": "V1ServiceAccount", "DaemonSet": "V1DaemonSet"})[
        "DaemonSet"
    ]
    settings = parse_args(daemonset.spec.template.spec.containers[0].args)
    assert settings.binds == ("169.254.170.23:80", "[fd00:ec2::23]:80")
    assert settings.ops_bind == "127.0.0.1:2703"


def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck() -> None:
    text = (ROOT / "node_agent" / "Dockerfile").read_text()
    assert text.count("\nFROM ") >= 2  # build stage, then a slim runtime stage
    assert "USER 65532:65532" in text
    assert "HEALTHCHECK" in text
    assert "cap_net_bind_service=+ep" in text
    assert 'ENTRYPOINT ["python", "-m", "node_agent"]' in text


AGENT_DAEMONSETS = ["node_agent/deploy/daemonset.yaml", "deploy/self-managed/node-agent.yaml"]


def _documents(path: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((ROOT / path).read_text()) if d]


def _version() -> str:
    import tomllib

    version: str = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    return version


@pytest.mark.parametrize("path", AGENT_DAEMONSETS)
def test_every_privilege_is_reduced_or_explained_in_the_manifest(path: str) -> None:
    """Issue 14, item 7: no `latest`, seccomp everywhere, and each privilege that
    stays (root + NET_ADMIN in the init container, privilege escalation for the
    file capability) carries its reason next to it; in every DaemonSet that runs
    the agent (EKS and self-managed)."""
    text = (ROOT / path).read_text()
    (document,) = [d for d in _documents(path) if d["kind"] == "DaemonSet"]
    daemonset = as_model(document, "V1DaemonSet")
    pod = daemonset.spec.template.spec
    version = _version()
    for container in (*pod.init_containers, *pod.containers):
        assert not container.image.endswith(":latest")
        assert ":" in container.image
        assert container.image.rsplit(":", 1)[1] == version, container.image
        assert container.security_context.capabilities.drop == ["ALL"]
        assert container.security_context.seccomp_profile.type == "RuntimeDefault"
    assert pod.security_context.seccomp_profile.type == "RuntimeDefault"
    (init,) = pod.init_containers
    assert init.security_context.allow_privilege_escalation is False
    assert init.security_context.read_only_root_filesystem is True
    # the reasons, written where the privilege is granted
    before_init = text[: text.index("- name: link-local-addresses")]
    assert "Why root:" in before_init[-800:]
    before_escalation = text[: text.index("allowPrivilegeEscalation: true")]
    assert "Why true:" in before_escalation[-900:]


def test_the_webhooks_map_sync_runs_the_released_map_sync_image_unprivileged() -> None:
    (document,) = [
        d for d in _documents("deploy/self-managed/webhook.yaml") if d["kind"] == "Deployment"
    ]
    deployment = as_model(document, "V1Deployment")
    pod = deployment.spec.template.spec
    assert pod.security_context.seccomp_profile.type == "RuntimeDefault"
    assert pod.security_context.run_as_non_root is True
    (sync,) = [c for c in pod.init_containers if c.name == "map-sync"]
    # the Dockerfile's map-sync target (with the Kubernetes client), not the agent image
    assert sync.image == f"podid-map-sync:{_version()}"
    assert sync.security_context.allow_privilege_escalation is False
    assert sync.security_context.capabilities.drop == ["ALL"]
    for container in (*pod.init_containers, *pod.containers):
        assert not container.image.endswith(":latest"), container.image


def test_the_image_strips_setuid_and_takes_its_base_by_digest() -> None:
    dockerfile = (ROOT / "node_agent" / "Dockerfile").read_text()
    # what escalation could gain is bounded to the one file capability
    assert "-perm /6000 -exec chmod ug-s" in dockerfile
    # base images: by digest, or by a build argument documented to carry the digest
    stages: list[str] = []
    for line in dockerfile.splitlines():
        if line.startswith("FROM "):
            image = line.split()[1]
            # or a stage of this file, itself built on the pinned base
            assert "@sha256:" in image or image == "${PYTHON_IMAGE}" or image in stages, line
            stages.append(line.split()[-1])
    assert "PYTHON_IMAGE=public.ecr.aws/docker/library/python:3.13-slim@sha256:<digest>" in (
        dockerfile
    )


# image name in the manifests -> the node_agent/Dockerfile target it is built from
IMAGE_TARGETS = {"podid-node-agent": "agent", "podid-map-sync": "map-sync"}


@pytest.mark.parametrize(
    "path", [*AGENT_DAEMONSETS, "deploy/self-managed/webhook.yaml"], ids=lambda p: p
)
def test_each_container_runs_the_image_target_that_holds_its_program(path: str) -> None:
    from tests.agent.image import Dockerfile

    dockerfile = Dockerfile.parse()
    containers = [
        container
        for document in _documents(path)
        if document["kind"] in ("DaemonSet", "Deployment")
        for kind in ("initContainers", "containers")
        for container in document["spec"]["template"]["spec"].get(kind, [])
        if container["image"].rsplit(":", 1)[0] in IMAGE_TARGETS
    ]
    assert containers
    for container in containers:
        target = IMAGE_TARGETS[container["image"].rsplit(":", 1)[0]]
        program = container.get("command") or dockerfile.entrypoint(target)
        if "functions.kube.webhook_sync" in program:
            assert target == "map-sync", container["name"]
        elif program == ["python", "-m", "node_agent"]:
            assert target == "agent", container["name"]
        else:  # the link-local address setup: `ip`, which only the agent target installs
            assert target == "agent", container["name"]
            assert "ip addr" in program[-1] or "ip -6 addr" in program[-1]
            (apt,) = [r for r in dockerfile.stages["agent"].all("RUN") if "apt-get install" in r]
            assert "iproute2" in apt
