"""A real Kubernetes API server for tests: etcd + kube-apiserver (built by
`make tools` from the Go module proxy) on random loopback ports, TLS with a CA
made for the session, the Node and RBAC authorizers, service-account tokens
(TokenRequest / TokenReview), the default admission plugins (Pods can be
created: nothing schedules them, they stay Pending; mutating webhooks are
called, also at `url:` endpoints on 127.0.0.1), and EKS-token authentication
through a webhook answering as EKS's authenticator (tests.realkube.authenticator).

Processes run in their own process group and die with this process; logs stay
in the session's directory and are shown when a test using them fails."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from kubernetes import client as k8s

from sandbox.localkube.tls import CertificateAuthority, KeyFiles, private_key_pem, write_private
from tests.realkube.authenticator import EksAuthenticator

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_NAME = "realkube"
ADMIN_USER = "podid-admin"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc"
SERVICE_CIDR = "10.96.0.0/16"
TOOLS = ("etcd", "kube-apiserver", "kubectl")
START_TIMEOUT = 180.0  # two shared cores; a warm start takes ~10-20 s
_LOG_TAIL_LINES = 60


class RealKubeError(RuntimeError):
    """The real API server could not be built or started; the message says why."""


def tools_bin() -> Path:
    configured = os.environ.get("PODID_TOOLS_BIN")
    return Path(configured).resolve() if configured else ROOT / ".tools" / "bin"


def ensure_tools(out: IO[str] | None = None) -> Path:
    """`bash tools/build.sh`: builds what is missing or stale (instant when built);
    without Go, binaries already built are used as they are."""
    directory = tools_bin()
    have_all = all((directory / name).is_file() for name in TOOLS)
    if shutil.which("go") is None and have_all:
        return directory
    command = ["bash", str(ROOT / "tools" / "build.sh")]
    started = time.monotonic()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RealKubeError(
            f"building the Kubernetes tools failed (run `make tools` to see it):\n"
            f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    if out is not None and "building" in result.stdout:
        out.write(f"realkube: tools built in {time.monotonic() - started:.0f} s\n")
    return directory


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _kubeconfig(server: str, ca_file: Path, user: dict[str, Any], name: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": name, "cluster": {"server": server, "certificate-authority": str(ca_file)}}
            ],
            "users": [{"name": name, "user": user}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
        }
    )


class RealKube:
    """One running API server; see the module docstring. Start with `start()`,
    always `stop()` (the pytest fixture does both)."""

    def __init__(self, directory: Path, cluster_name: str = CLUSTER_NAME) -> None:
        self.directory = directory
        self.cluster_name = cluster_name
        self.tools_bin = tools_bin()
        self.startup_seconds = 0.0
        self._processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._pki = directory / "pki"
        self._pki.mkdir(parents=True, exist_ok=True)
        self._kubeconfigs = directory / "kubeconfigs"
        self._kubeconfigs.mkdir(exist_ok=True)
        self.logs = directory / "logs"
        self.logs.mkdir(exist_ok=True)
        # a session, with room for a slow machine
        self._ca = CertificateAuthority(
            "podid-realkube-ca", lifetime=datetime.timedelta(days=2), directory=self._pki
        )
        self.ca_file = self._ca.ca_file
        self._admin = self._ca.issue_files("admin", ADMIN_USER, ("system:masters",), client=True)
        self.authenticator = EksAuthenticator(
            cluster_name,
            self._ca.issue_files("authenticator", "127.0.0.1", server=True),
            self.ca_file,
        )
        self.port = 0
        self.url = ""
        self.admin_kubeconfig = self._kubeconfigs / "admin.kubeconfig"

    # --- lifecycle --------------------------------------------------------------------
    def start(self) -> RealKube:
        started = time.monotonic()
        self.authenticator.start()
        for attempt in range(3):  # a port taken between probe and bind: try new ones
            try:
                self._start_processes()
                break
            except RealKubeError as error:
                self._stop_processes()
                if "address already in use" not in str(error) or attempt == 2:
                    raise
        self.startup_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        self._stop_processes()
        with contextlib.suppress(OSError):
            self.authenticator.stop()

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        # own process group (stopped as a whole), and killed if this process dies first
        launcher = ["setpriv", "--pdeathsig", "KILL", "--"] if shutil.which("setpriv") else []
        process = subprocess.Popen(
            [*launcher, *command],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self._processes.append((name, process))
        return process

    def _stop_processes(self) -> None:
        for _, process in reversed(self._processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for _, process in reversed(self._processes):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        self._processes.clear()

    def _start_processes(self) -> None:
        etcd_port, peer_port, self.port = free_port(), free_port(), free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        data = self.directory / "etcd"
        shutil.rmtree(data, ignore_errors=True)
        peer = f"http://127.0.0.1:{peer_port}"
        self._spawn(
            "etcd",
            [
                str(self.tools_bin / "etcd"),
                "--name=realkube",
                f"--data-dir={data}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=realkube={peer}",
                "--unsafe-no-fsync",  # throwaway data: no fsync on a shared, slow disk
                "--log-level=warn",
            ],
        )
        self._wait("etcd", lambda: self._etcd_healthy(etcd_url), timeout=60)
        serving = self._ca.issue_files("apiserver", "kube-apiserver", server=True)
        webhook_client = self._ca.issue_files(
            "apiserver-webhook-client", "kube-apiserver", client=True
        )
        self._write_webhook_kubeconfig(webhook_client)
        sa_keys = service_account_keys(self._pki)
        self._spawn("kube-apiserver", self._apiserver_command(etcd_url, serving, sa_keys))
        self.admin_kubeconfig.write_text(
            _kubeconfig(
                self.url,
                self.ca_file,
                {"client-certificate": str(self._admin.cert), "client-key": str(self._admin.key)},
                self.cluster_name,
            )
        )
        self.admin_kubeconfig.chmod(0o600)
        self._wait("kube-apiserver", self._ready, timeout=START_TIMEOUT)

    def _apiserver_command(self, etcd_url: str, serving: KeyFiles, sa_keys: KeyFiles) -> list[str]:
        return [
            str(self.tools_bin / "kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--tls-cert-file={serving.cert}",
            f"--tls-private-key-file={serving.key}",
            f"--client-ca-file={self.ca_file}",
            "--authorization-mode=Node,RBAC",
            f"--authentication-token-webhook-config-file={self.directory / 'authn-webhook.yaml'}",
            "--authentication-token-webhook-version=v1",
            # no cache: an access entry removed in a test takes effect at once
            "--authentication-token-webhook-cache-ttl=0s",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={sa_keys.cert}",
            f"--service-account-signing-key-file={sa_keys.key}",
            f"--api-audiences={SERVICE_ACCOUNT_ISSUER}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # the `kubernetes` Service cannot list a loopback endpoint: do not try
            "--endpoint-reconciler-type=none",
            # the defaults (NamespaceLifecycle, ServiceAccount, MutatingAdmissionWebhook,
            # ValidatingAdmissionWebhook, PodSecurity, ...) plus what an EKS cluster adds
            "--enable-admission-plugins=NodeRestriction",
            "--profiling=false",
            f"--cert-dir={self._pki}",
            "--v=1",
        ]

    def _write_webhook_kubeconfig(self, client: KeyFiles) -> None:
        (self.directory / "authn-webhook.yaml").write_text(
            _kubeconfig(
                self.authenticator.url,
                self.ca_file,
                {"client-certificate": str(client.cert), "client-key": str(client.key)},
                "eks-authenticator",
            )
        )

    def _wait(self, name: str, probe: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        process = dict(self._processes)[name]
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RealKubeError(f"{name} exited with {process.returncode}\n{self.log_tail()}")
            if probe():
                return
            time.sleep(0.25)
        raise RealKubeError(f"{name} not ready after {timeout:.0f} s\n{self.log_tail()}")

    @staticmethod
    def _etcd_healthy(url: str) -> bool:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                return b'"health":"true"' in answer.read()
        except (OSError, urllib.error.URLError):
            return False

    def _admin_ssl(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(self._admin.cert, self._admin.key)
        return context

    def _ready(self) -> bool:
        """/readyz (etcd, RBAC bootstrap roles, ...) and the system namespaces exist."""
        context = self._admin_ssl()
        try:
            for path in ("/readyz", "/api/v1/namespaces/default", "/api/v1/namespaces/kube-system"):
                with urllib.request.urlopen(
                    f"{self.url}{path}", context=context, timeout=5
                ) as answer:
                    if answer.status != 200:
                        return False
        except (OSError, urllib.error.URLError):
            return False
        return True

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        parts = [f"logs in {self.logs}"]
        for log in sorted(self.logs.glob("*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log.name} (last {len(text)} lines) ---\n" + "\n".join(text))
        return "\n".join(parts)

    # --- clients ----------------------------------------------------------------------
    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        kubeconfig: Path | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        command = [
            str(self.tools_bin / "kubectl"),
            f"--kubeconfig={kubeconfig or self.admin_kubeconfig}",
            "--request-timeout=30s",
            *args,
        ]
        result = subprocess.run(
            command, input=input, capture_output=True, text=True, timeout=90, check=False
        )
        if check and result.returncode != 0:
            raise RealKubeError(
                f"kubectl {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout}{result.stderr}"
            )
        return result

    def admin_api(self) -> k8s.ApiClient:
        configuration = k8s.Configuration()
        configuration.host = self.url
        configuration.ssl_ca_cert = str(self.ca_file)
        configuration.cert_file = str(self._admin.cert)
        configuration.key_file = str(self._admin.key)
        return k8s.ApiClient(configuration)

    def token_api(self, token: str) -> k8s.ApiClient:
        """A client that authenticates with a bearer token (an EKS or service-account token)."""
        configuration = k8s.Configuration()
        configuration.host = self.url
        configuration.ssl_ca_cert = str(self.ca_file)
        configuration.api_key = {"authorization": token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        return k8s.ApiClient(configuration)

    def kubeconfig_for_token(self, token: str) -> Path:
        path = self._kubeconfigs / f"token-{hashlib.sha256(token.encode()).hexdigest()[:16]}"
        path.write_text(_kubeconfig(self.url, self.ca_file, {"token": token}, self.cluster_name))
        path.chmod(0o600)
        return path

    def serving_certificate(self, name: str) -> KeyFiles:
        """A TLS serving certificate for 127.0.0.1/localhost from the session's CA
        (whose PEM, `ca_file`, is the caBundle of a webhook configuration)."""
        return self._ca.issue_files(f"serving-{name}", name, server=True)

    # --- identities -------------------------------------------------------------------
    def map_iam_principal(self, arn: str, username: str, groups: list[str]) -> None:
        """Like an EKS access entry: tokens signed by this IAM principal (a role's
        sessions included) authenticate as `username` in `groups`; `{{SessionName}}`
        in the username is replaced as EKS does."""
        self.authenticator.map(arn, username, groups)

    def unmap_iam_principal(self, arn: str) -> None:
        self.authenticator.unmap(arn)

    def add_aws_credential(self, access_key: str, secret: str, principal_arn: str) -> None:
        """An access key the local AWS (moto) does not hold, with the principal it signs as."""
        self.authenticator.add_aws_credential(access_key, secret, principal_arn)

    def service_account_token(
        self,
        namespace: str,
        name: str,
        audiences: list[str],
        seconds: int = 3600,
        *,
        pod: str | None = None,
    ) -> str:
        """TokenRequest through the API server (the ServiceAccount must exist; with
        `pod`, the token is bound to that Pod, as the kubelet's projected tokens are)."""
        bound = None
        if pod is not None:
            found: Any = k8s.CoreV1Api(self.admin_api()).read_namespaced_pod(pod, namespace)
            bound = k8s.V1BoundObjectReference(
                api_version="v1", kind="Pod", name=pod, uid=found.metadata.uid
            )
        request = k8s.AuthenticationV1TokenRequest(
            spec=k8s.V1TokenRequestSpec(
                audiences=audiences, expiration_seconds=seconds, bound_object_ref=bound
            )
        )
        with self.admin_api() as api:
            answer: Any = k8s.CoreV1Api(api).create_namespaced_service_account_token(
                name, namespace, request
            )
        return str(answer.status.token)

    def ensure_namespace(self, name: str) -> None:
        manifest = self.kubectl("create", "namespace", name, "--dry-run=client", "-o", "yaml")
        self.kubectl("apply", "-f", "-", input=manifest.stdout)


def service_account_keys(directory: Path) -> KeyFiles:
    """The key pair the API server signs service-account tokens with (RS256)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    files = KeyFiles(directory / "sa.pub", directory / "sa.key")
    write_private(
        files.cert,
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    write_private(files.key, private_key_pem(key))
    return files
