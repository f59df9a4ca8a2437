"""Admin kubeconfigs for the sandbox user: one per cluster, its server the
cluster's path on the local API, its CA the sandbox CA (verified, never
skipped), and a client certificate the sandbox CA issued (CN sandbox-admin, O
system:masters): only this sandbox accepts it, and it dies with the sandbox."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import yaml

from sandbox.localkube.authn import MASTERS
from sandbox.localkube.server import LocalKubernetes

ADMIN_USER = "sandbox-admin"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def render(kube: LocalKubernetes, cluster: str) -> str:
    pair = kube.admin_credentials(ADMIN_USER, (MASTERS,))
    context = f"podid-sandbox-{cluster}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": context,
                "cluster": {
                    "server": f"{kube.url}/{cluster}",
                    "certificate-authority-data": kube.ca_data,
                },
            }
        ],
        "users": [
            {
                "name": f"{context}-admin",
                "user": {
                    "client-certificate-data": _b64(pair.certificate_pem),
                    "client-key-data": _b64(pair.key_pem),
                },
            }
        ],
        "contexts": [
            {
                "name": context,
                "context": {"cluster": context, "user": f"{context}-admin"},
            }
        ],
        "current-context": context,
        "preferences": {},
    }
    return yaml.safe_dump(config, sort_keys=False)


def write(kube: LocalKubernetes, cluster: str, directory: Path) -> Path:
    """<directory>/<cluster>.kubeconfig, readable by its owner only (it holds a key)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{cluster}.kubeconfig"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(render(kube, cluster))
    return path
