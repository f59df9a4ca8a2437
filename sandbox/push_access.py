"""The push's access to a cluster exactly as a deployment grants it:
deploy/webhook-push-rbac.yaml applied (its ConfigMap, Role and RoleBinding,
stored and enforced by the cluster's RBAC) and an EKS access entry mapping the
push role to the group that manifest binds. Used by the sandbox and the
integration tests alike, so both run with the shipped least privilege, not a
broader grant of their own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sandbox.kube_api import ClusterAPI

MANIFEST = Path(__file__).resolve().parent.parent / "deploy" / "webhook-push-rbac.yaml"
PUSH_USER = "podid-push"


def grant_push_access(api: ClusterAPI, role_arn: str, manifest: Path = MANIFEST) -> str:
    """Returns the Kubernetes user the push role authenticates as."""
    documents: list[dict[str, Any]] = [d for d in yaml.safe_load_all(manifest.read_text()) if d]
    (binding,) = [d for d in documents if d["kind"] == "RoleBinding"]
    groups = [s["name"] for s in binding["subjects"] if s["kind"] == "Group"]
    for document in documents:  # kubectl apply -f deploy/webhook-push-rbac.yaml
        api.put(document)
    # the access entry's kubernetes groups are the binding's subjects
    return api.add_access_entry(role_arn, PUSH_USER, groups)
