"""The images as node_agent/Dockerfile builds them, without a Docker engine: its
own install steps and COPYs (tests/agent/image.py) with the base image's Python,
then the result imported, started and asked for a credential."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra import locks
from infra.bundling import lambda_python
from sandbox.kube_api import LocalKubernetes
from sandbox.localkube import kubeconfig
from tests.agent.conftest import Setup, get_credentials
from tests.agent.image import Dockerfile, ImageBuild, inside
from tests.integration.conftest import ACCOUNT

DOCKERFILE = Dockerfile.parse()
BASE_PYTHON = DOCKERFILE.args["PYTHON_IMAGE"].rsplit(":", 1)[1].split("-")[0]
# what neither image may hold, and what only map-sync may
LAMBDA_ONLY = {"aws-lambda-powertools", "aws-xray-sdk", "boto3"}
PROBE = """
import importlib, importlib.metadata, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps({
    "modules": sorted({name.split(".")[0] for name in sys.modules}),
    "files": sorted({m.__file__ for m in list(sys.modules.values()) if getattr(m, "__file__", None)}),
    "dists": sorted({d.metadata["Name"].lower().replace("_", "-")
                     for d in importlib.metadata.distributions()}),
}))
"""


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> ImageBuild:
    python = lambda_python(BASE_PYTHON)
    build = ImageBuild(DOCKERFILE, tmp_path_factory.mktemp("images"), python)
    for target in ("agent", "map-sync"):
        build.build(target)
    return build


def image_env(target: str, root: Path, **extra: str) -> dict[str, str]:
    """The image's ENV, its paths inside `root`; nothing of this checkout or its venv."""
    image = DOCKERFILE.env(target)
    env = {
        "PATH": f"{inside(root, '/opt/venv/bin')}:/usr/bin:/bin",
        "PYTHONPATH": str(inside(root, image["PYTHONPATH"])),
        "PYTHONNOUSERSITE": "1",
        **{k: v for k, v in image.items() if k not in ("PATH", "PYTHONPATH")},
    }
    return {**env, **extra}


def run_in(
    images: ImageBuild, target: str, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    root = images.built[target]
    assert DOCKERFILE.entrypoint(target)[0] == "python"  # the venv's, first on the image's PATH
    return subprocess.run(
        [str(inside(root, "/opt/venv/bin/python")), *args],
        env=image_env(target, root, **env),
        cwd=root,  # not the checkout: only what the image holds is importable
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def probe(images: ImageBuild, target: str, *modules: str) -> dict[str, list[str]]:
    done = run_in(images, target, "-c", PROBE, *modules)
    assert done.returncode == 0, done.stderr
    found: dict[str, list[str]] = json.loads(done.stdout)
    return found


def copied_code(images: ImageBuild, target: str) -> set[str]:
    code = inside(images.built[target], DOCKERFILE.env(target)["PYTHONPATH"])
    return {str(path) for path in code.rglob("*.py")}


def test_the_base_python_is_the_locks_python() -> None:
    assert locks.AGENT_PYTHON == BASE_PYTHON
    assert DOCKERFILE.default_target == "agent"


@pytest.mark.parametrize(("target", "lock"), [("agent", "agent"), ("map-sync", "map-sync")])
def test_each_target_installs_its_lock_by_hash_from_wheels_only(
    images: ImageBuild, target: str, lock: str
) -> None:
    root = images.built[target]
    (install,) = [c for t, c in images.commands if t == f"{target}-deps" and "install" in c]
    for option in ("--no-deps", "--require-hashes", "--only-binary=:all:"):
        assert option in install
    lock_file = locks.LOCKS_BY_NAME[lock].path
    assert Path(install[install.index("-r") + 1]).read_text() == lock_file.read_text()
    # Then the venv holds exactly the lock's pins (all apply on Linux), and no installer
    dists = set(probe(images, target)["dists"])
    assert dists == set(locks.pins(lock_file))
    assert "pip" not in dists
    assert not inside(root, "/opt/venv/bin/pip").exists()


def test_the_agent_image_holds_and_imports_only_the_agent(images: ImageBuild) -> None:
    # When the agent is imported as the image runs it, with both backends
    found = probe(
        images,
        "agent",
        "node_agent.__main__",
        "node_agent.backends.sts",
        "node_agent.jwks",
    )
    # Then no Lambda toolkit and no Kubernetes client is in the image, nor loaded
    assert not set(found["dists"]) & (LAMBDA_ONLY | {"kubernetes"})
    assert not set(found["modules"]) & {
        "aws_lambda_powertools",
        "aws_xray_sdk",
        "kubernetes",
        "boto3",
    }
    # And every file copied into the image is code the agent imports
    imported = {f for f in found["files"] if f.startswith(str(images.built["agent"]))}
    assert copied_code(images, "agent") <= imported
    help_text = run_in(images, "agent", "-m", "node_agent", "--help")
    assert help_text.returncode == 0, help_text.stderr
    assert "--cluster-name" in help_text.stdout


BYTECODE_PROBE = """
import importlib, importlib.util, json, sys
for name in sys.argv[2:]:
    importlib.import_module(name)
root = sys.argv[1]
report = {}
for module in list(sys.modules.values()):
    source = getattr(module, "__file__", None) or ""
    if source.startswith(root) and source.endswith(".py"):
        try:
            with open(importlib.util.cache_from_source(source), "rb") as pyc:
                header = pyc.read(8)
        except FileNotFoundError:
            report[source] = "missing"
            continue
        # PEP 552 flags: 0b01 hash-based, 0b10 checked against the source
        flags = int.from_bytes(header[4:8], "little")
        report[source] = "unchecked-hash" if flags == 1 else f"flags={flags}"
print(json.dumps(report))
"""


@pytest.mark.parametrize(
    ("target", "modules"),
    [
        ("agent", ("node_agent.__main__", "node_agent.backends.sts", "node_agent.jwks")),
        ("map-sync", ("functions.kube.webhook_sync",)),
    ],
)
def test_each_image_ships_the_bytecode_its_python_loads(
    images: ImageBuild, target: str, modules: tuple[str, ...]
) -> None:
    # The image runs read-only with PYTHONDONTWRITEBYTECODE: a module without bytecode
    # compiled at build is compiled again at every start
    root = images.built[target]
    done = run_in(images, target, "-c", BYTECODE_PROBE, str(root), *modules)
    assert done.returncode == 0, done.stderr
    loaded: dict[str, str] = json.loads(done.stdout)
    assert len(loaded) > 50
    assert {source: kind for source, kind in loaded.items() if kind != "unchecked-hash"} == {}
    # And tracebacks name the image's paths, not the build directory's
    any_pyc = Path(next(iter(loaded))).parent / "__pycache__"
    assert str(root).encode() not in next(any_pyc.glob("*.pyc")).read_bytes()


def free_port() -> int:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port: int = probe_socket.getsockname()[1]
        return port


@pytest.fixture
def image_agent(images: ImageBuild, setup: Setup) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    root = images.built["agent"]
    port, ops = free_port(), free_port()
    _, *entry = DOCKERFILE.entrypoint("agent")
    aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}  # the moto endpoint
    process = subprocess.Popen(
        [
            str(inside(root, "/opt/venv/bin/python")),
            *entry,
            f"--bind=127.0.0.1:{port}",
            f"--ops-bind=127.0.0.1:{ops}",
            "--cluster-name=blue",
        ],
        env=image_env("agent", root, PODID_AGENT_DRAIN_SECONDS="1", **aws),
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.communicate()[0]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ops}/readyz", timeout=1) as ready:
                    if ready.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            assert time.monotonic() < deadline, "the image's agent never became ready"
            time.sleep(0.1)
        yield port, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_the_agent_image_serves_a_pod_its_credentials(
    image_agent: tuple[int, subprocess.Popen[str]], setup: Setup
) -> None:
    port, process = image_agent
    token = setup.pod().token
    # When a pod asks the agent the image runs
    status, body = get_credentials(port, token)
    # Then it gets its role's credentials from EKS Auth
    assert status == 200, body
    assert body["AccountId"] == ACCOUNT
    assert body["AccessKeyId"]
    assert body["Token"]
    # And on SIGTERM it drains and exits cleanly, its log one JSON object a line, no token
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=15)
    assert process.returncode == 0, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines
    for line in lines:
        record = json.loads(line)
        assert record["service"] == "podid-node-agent"
        assert record["level"]
    assert token not in output


def test_the_map_sync_image_syncs_the_map_from_the_api_server(
    images: ImageBuild, kube: LocalKubernetes, tmp_path: Path
) -> None:
    found = probe(images, "map-sync", "functions.kube.webhook_sync", "kubernetes.config")
    assert "kubernetes" in found["modules"]
    assert not set(found["dists"]) & LAMBDA_ONLY
    assert not {"aws_lambda_powertools", "aws_xray_sdk", "boto3", "botocore"} & set(
        found["modules"]
    )
    imported = {f for f in found["files"] if f.startswith(str(images.built["map-sync"]))}
    assert copied_code(images, "map-sync") <= imported
    # Given a cluster holding the pushed map
    kube.clusters.clear()
    api = kube.add_cluster("lab")
    identities = json.dumps({"identities": [{"namespace": "payments", "serviceAccount": "api"}]})
    api.put_configmap_directly(
        "kube-system", "pod-identity-associations", {"identities.json": identities}
    )
    config = kubeconfig.write(kube, "lab", tmp_path)
    watched = tmp_path / "run" / "identities.json"
    watched.parent.mkdir()
    # When the image's map-sync runs once
    _, *entry = DOCKERFILE.entrypoint("map-sync")
    done = run_in(
        images,
        "map-sync",
        *entry,
        f"--kubeconfig={config}",
        f"--path={watched}",
        f"--ready-file={tmp_path / 'run' / '.synced'}",
        "--once",
    )
    # Then the webhook's file holds the map's identities
    assert done.returncode == 0, done.stderr
    assert json.loads(watched.read_text()) == json.loads(identities)
    assert (tmp_path / "run" / ".synced").exists()
