"""The real amazon-eks-pod-identity-webhook binary (built by `make tools`), run
out of cluster in its own network namespace (it binds `:port` on every
interface; there it has loopback only), reached through unix-socket bridges.

`RealWebhook.start(...)` serves TLS at `https://127.0.0.1:<port>/mutate` on this
host's loopback (for the API server's MutatingWebhookConfiguration and for
direct AdmissionReviews) and reaches the API server, if one is given, at
its host port. Never imports the product's code.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.localkube.tls import CertificateAuthority
from tests.realwebhook.bridge import Bridges

REPO = Path(__file__).resolve().parents[2]
WEBHOOK_BINARY = "amazon-eks-pod-identity-webhook"
IN_NAMESPACE_PORT = 8443  # the webhook's port inside its namespace
IN_NAMESPACE_API_PORT = 6443  # where the webhook's kubeconfig points inside the namespace


def tools_bin() -> Path:
    """The built tools; missing ones are built (never a skip)."""
    binary = REPO / ".tools" / "bin" / WEBHOOK_BINARY
    if not binary.exists():
        subprocess.run(["bash", str(REPO / "tools" / "build.sh")], check=True)  # noqa: S607
    return binary.parent


@dataclass
class TlsFiles:
    ca: Path
    cert: Path
    key: Path

    @property
    def ca_pem(self) -> bytes:
        return self.ca.read_bytes()


def make_tls(directory: Path) -> TlsFiles:
    """A CA and a loopback serving certificate (what a cert-manager Issuer or the
    documented openssl step makes for the in-cluster Service)."""
    authority = CertificateAuthority(
        "podid webhook test CA", lifetime=dt.timedelta(days=1), directory=directory
    )
    serving = authority.issue("127.0.0.1", server=True).write(directory, "tls")
    return TlsFiles(authority.ca_file, serving.cert, serving.key)


def _kubeconfig(path: Path, server: str, ca: Path | None, token: str | None) -> None:
    cluster: dict[str, Any] = {"server": server}
    if ca is not None:
        cluster["certificate-authority"] = str(ca)
    else:
        cluster["insecure-skip-tls-verify"] = True
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": {"token": token} if token else {}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    }
    path.write_text(json.dumps(config))


@dataclass
class RealWebhook:
    process: subprocess.Popen[bytes]
    port: int  # on this host's 127.0.0.1
    tls: TlsFiles
    workdir: Path
    log: Path
    bridges: Bridges
    _context: ssl.SSLContext = field(init=False)

    def __post_init__(self) -> None:
        self._context = ssl.create_default_context(cafile=str(self.tls.ca))

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/mutate"

    @classmethod
    def start(
        cls,
        watch_path: Path,
        *,
        api_port: int | None = None,
        api_ca: Path | None = None,
        api_token: str | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> RealWebhook:
        binary = tools_bin() / WEBHOOK_BINARY
        workdir = Path(tempfile.mkdtemp(prefix="podid-webhook-"))
        tls = make_tls(workdir)
        bridges = Bridges()
        to_webhook = str(workdir / "webhook.sock")
        to_api = str(workdir / "api.sock")
        # the API server as the namespace sees it (nothing answers when none is given)
        _kubeconfig(
            workdir / "kubeconfig",
            f"https://127.0.0.1:{IN_NAMESPACE_API_PORT}",
            api_ca,
            api_token,
        )
        # a network namespace needs root, or a user namespace mapping us to root in it
        userns = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
        command = [
            "unshare",
            *userns,
            "--net",
            "--",
            sys.executable,
            "-m",
            "tests.realwebhook.bridge",
            f"--unix-to-tcp={to_webhook}={IN_NAMESPACE_PORT}",
        ]
        if api_port is not None:
            bridges.unix_to_tcp(to_api, api_port)
            command.append(f"--tcp-to-unix={IN_NAMESPACE_API_PORT}={to_api}")
        command += [
            "--",
            str(binary),
            "--in-cluster=false",
            f"--kubeconfig={workdir / 'kubeconfig'}",
            f"--tls-cert={tls.cert}",
            f"--tls-key={tls.key}",
            f"--port={IN_NAMESPACE_PORT}",
            f"--watch-container-credentials-config={watch_path}",
            "--logtostderr",
            "-v=3",
            *extra_args,
        ]
        log = workdir / "webhook.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(command, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not Path(to_webhook).exists():
            if process.poll() is not None or time.monotonic() > deadline:
                bridges.close()
                raise RuntimeError(f"the webhook did not start: {log.read_text()[-3000:]}")
            time.sleep(0.05)
        port = bridges.tcp_to_unix(to_webhook)
        webhook = cls(process, port, tls, workdir, log, bridges)
        webhook.wait_serving()
        return webhook

    def wait_serving(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.mutate(pod("probe", "default", "default"))
                return
            except OSError as error:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the webhook is not serving ({error}): {self.log.read_text()[-3000:]}"
                    ) from error
                time.sleep(0.1)

    def mutate(self, pod_object: dict[str, Any]) -> list[dict[str, Any]]:
        """POST an AdmissionReview (the version v0.6.17 speaks) for a pod
        CREATE; returns the JSON patch the webhook answers (empty: no change)."""
        review = {
            "apiVersion": "admission.k8s.io/v1beta1",
            "kind": "AdmissionReview",
            "request": {
                "uid": str(uuid.uuid4()),
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": pod_object["metadata"]["namespace"],
                "operation": "CREATE",
                "userInfo": {"username": "test"},
                "object": pod_object,
            },
        }
        request = urllib.request.Request(
            self.url,
            data=json.dumps(review).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, context=self._context, timeout=5) as answer:
            response = json.load(answer)["response"]
        if not response.get("patch"):
            return []
        patch: list[dict[str, Any]] = json.loads(base64.b64decode(response["patch"]))
        return patch

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.bridges.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def pod(name: str, namespace: str, service_account: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "serviceAccountName": service_account,
            "containers": [{"name": "app", "image": "busybox"}],
        },
    }


def injected_env(patch: list[dict[str, Any]]) -> dict[str, str]:
    """The environment of the first container after the patch (v0.6.17 replaces
    /spec/containers as a whole)."""
    for operation in patch:
        if operation.get("path") == "/spec/containers":
            env = operation["value"][0].get("env") or []
            return {item["name"]: item.get("value", "") for item in env}
    return {}


def injected_volumes(patch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for operation in patch:
        if operation.get("path") == "/spec/volumes":
            found += operation["value"]
        elif str(operation.get("path", "")).startswith("/spec/volumes/"):
            found.append(operation["value"])
    return found
