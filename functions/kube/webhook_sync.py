"""Deliver the pushed map to the pod identity webhook: a sidecar that watches
the one map ConfigMap through the API and writes its `identities.json` key
onto the exact file the webhook watches, by atomic rename.

Why not mount the ConfigMap: the webhook (pkg/filesystem/file_watcher.go)
reloads only on a file event whose name is the configured path, and the
kubelet updates a ConfigMap volume by swapping the `..data` symlink, which
raises no such event, so a mounted map is read once and never again. A rename
onto the path raises exactly that event.

    python -m functions.kube.webhook_sync --namespace kube-system \\
        --configmap pod-identity-associations --path /var/run/podid/identities.json

Keeps the last good file when the API is unreachable, the ConfigMap is deleted
or its content is not a valid identities document (the webhook would refuse
it too). Writes only when the content changed. `--ready-file` is created after
the first sync (a startup probe), `--once` syncs and exits (an init container).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from functions.core.association_map import WEBHOOK_KEY

log = logging.getLogger("podid.webhook_sync")
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
WATCH_SECONDS = 240  # server-side watch timeout: re-list after, as informers do
MAX_BACKOFF_SECONDS = 30.0
MAX_DOCUMENT_BYTES = 1024 * 1024  # a ConfigMap holds at most 1 MiB


class InvalidDocument(ValueError):
    pass


def check_identities(text: str) -> str:
    """The webhook's container-credentials document (identities: namespace, serviceAccount)."""
    if len(text.encode()) > MAX_DOCUMENT_BYTES:
        raise InvalidDocument(f"{WEBHOOK_KEY} is larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidDocument(f"{WEBHOOK_KEY} is not JSON: {error.msg}") from None
    identities = document.get("identities") if isinstance(document, dict) else None
    if not isinstance(identities, list) or not all(
        isinstance(i, dict)
        and isinstance(i.get("namespace"), str)
        and isinstance(i.get("serviceAccount"), str)
        for i in identities
    ):
        raise InvalidDocument(
            f'{WEBHOOK_KEY} must be {{"identities": [{{"namespace": ..., "serviceAccount": ...}}]}}'
        )
    return text


def write_atomically(path: str, content: str) -> bool:
    """Rename a complete file onto `path` (one event named `path`); False when unchanged."""
    try:
        with open(path, encoding="utf-8") as handle:
            if handle.read() == content:
                return False
    except FileNotFoundError:
        pass
    directory = os.path.dirname(path) or "."
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".podid-sync-")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return True


@dataclass
class MapFileSync:
    core: Any  # kubernetes CoreV1Api
    namespace: str
    name: str
    path: str
    key: str = WEBHOOK_KEY
    ready_file: str | None = None
    writes: int = 0
    synced: bool = False

    def apply(self, configmap: Any) -> None:
        data = (configmap.data or {}) if configmap is not None else {}
        text = data.get(self.key)
        if text is None:
            if os.path.exists(self.path):
                log.warning("map ConfigMap has no %s: keeping the last file", self.key)
                self._mark_synced()
                return
            text = ""  # nothing pushed yet: an empty file is the webhook's "no identities"
        else:
            try:
                check_identities(text)
            except InvalidDocument as error:
                log.error("map ConfigMap refused, keeping the last file: %s", error)
                self._mark_synced()
                return
        if write_atomically(self.path, text):
            self.writes += 1
            log.info("wrote %s (%d bytes)", self.path, len(text))
        self._mark_synced()

    def _mark_synced(self) -> None:
        if not self.synced and self.ready_file:
            with open(self.ready_file, "w", encoding="utf-8") as handle:
                handle.write("synced\n")
        self.synced = True

    def list_once(self) -> str:
        """Read the ConfigMap now and write the file; returns the list's resourceVersion."""
        found = self.core.list_namespaced_config_map(
            self.namespace, field_selector=f"metadata.name={self.name}", _request_timeout=10
        )
        items = found.items or []
        if items:
            self.apply(items[0])
        else:
            log.warning("map ConfigMap %s/%s does not exist yet", self.namespace, self.name)
            self.apply(None)
        return str(found.metadata.resource_version)

    def run(self, stop: threading.Event, *, sleep: Callable[[float], None] = time.sleep) -> None:
        backoff = 1.0
        while not stop.is_set():
            try:
                version = self.list_once()
                backoff = 1.0
                self._watch(version, stop)
            except ApiException as error:
                if error.status != 410:  # 410 Gone: the version expired, list again at once
                    log.warning("API error %s, retrying in %.0f s", error.status, backoff)
                    sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            except Exception as error:
                log.warning("sync failed (%s), retrying in %.0f s", type(error).__name__, backoff)
                sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    def _watch(self, version: str, stop: threading.Event) -> None:
        stream: Any = watch.Watch()  # type: ignore[no-untyped-call]
        for event in stream.stream(
            self.core.list_namespaced_config_map,
            self.namespace,
            field_selector=f"metadata.name={self.name}",
            resource_version=version,
            timeout_seconds=WATCH_SECONDS,
            _request_timeout=WATCH_SECONDS + 30,
        ):
            if stop.is_set():
                stream.stop()
                return
            kind = event.get("type")
            if kind in ("ADDED", "MODIFIED"):
                self.apply(event["object"])
            elif kind == "DELETED":
                log.warning("map ConfigMap deleted: keeping the last file")
            elif kind == "ERROR":
                raise ApiException(status=int((event.get("raw_object") or {}).get("code", 500)))


def api_from(args: argparse.Namespace) -> Any:
    configuration = k8s.Configuration()
    if args.kubeconfig:
        from kubernetes import config  # noqa: PLC0415 - only outside a cluster

        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=args.kubeconfig, client_configuration=configuration
        )
    else:
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise SystemExit("not in a cluster (KUBERNETES_SERVICE_HOST unset): pass --kubeconfig")
        configuration.host = f"https://{host}:{port}"
        configuration.ssl_ca_cert = os.path.join(SERVICE_ACCOUNT_DIR, "ca.crt")
        # the projected token rotates: read it for every request
        token_file = os.path.join(SERVICE_ACCOUNT_DIR, "token")

        def refresh(conf: Any) -> None:
            with open(token_file, encoding="utf-8") as handle:
                conf.api_key["authorization"] = handle.read().strip()

        configuration.api_key_prefix = {"authorization": "Bearer"}
        configuration.refresh_api_key_hook = refresh  # type: ignore[assignment]
        configuration.api_key = {"authorization": ""}
    return k8s.CoreV1Api(k8s.ApiClient(configuration))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="podid-webhook-sync", description=__doc__)
    parser.add_argument("--namespace", default="kube-system")
    parser.add_argument("--configmap", default="pod-identity-associations")
    parser.add_argument("--key", default=WEBHOOK_KEY)
    parser.add_argument("--path", required=True, help="the webhook's watched file")
    parser.add_argument("--ready-file", help="created after the first sync")
    parser.add_argument("--kubeconfig", help="outside a cluster")
    parser.add_argument("--once", action="store_true", help="sync once and exit")
    args = parser.parse_args(argv)
    if not os.path.isabs(args.path) or os.path.normpath(args.path) != args.path:
        parser.error(
            f"--path {args.path!r} must be absolute and normalised: the webhook compares event "
            "names with the exact path it was given"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    sync = MapFileSync(
        api_from(args), args.namespace, args.configmap, args.path, args.key, args.ready_file
    )
    if args.once:
        sync.list_once()
        return 0
    # SIGTERM ends the process where it is: every write is a rename, never half a file
    sync.run(threading.Event())
    return 0


if __name__ == "__main__":
    sys.exit(main())
