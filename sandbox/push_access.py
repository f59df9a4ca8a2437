"""The push's access to a cluster exactly as a deployment grants it: an EKS
access entry mapping the push role to the group that deploy/webhook-push-rbac.yaml
binds, and that manifest applied (its ConfigMap created, its Role's rules
granted). Used by the sandbox and the integration tests alike, so both run with
the shipped least privilege, not a broader grant of their own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sandbox.kube_api import ClusterAPI

MANIFEST = Path(__file__).resolve().parent.parent / "deploy" / "webhook-push-rbac.yaml"
PUSH_USER = "podid-push"


def grant_push_access(api: ClusterAPI, role_arn: str, manifest: Path = MANIFEST) -> str:
    """Returns the Kubernetes user the push role authenticates as."""
    documents: dict[str, dict[str, Any]] = {
        d["kind"]: d for d in yaml.safe_load_all(manifest.read_text())
    }
    role, binding = documents["Role"], documents["RoleBinding"]
    (group,) = [s["name"] for s in binding["subjects"] if s["kind"] == "Group"]
    if binding["roleRef"]["name"] != role["metadata"]["name"]:
        raise ValueError(f"{manifest}: the RoleBinding does not bind its Role")
    # the access entry's kubernetes group is the binding's subject
    user = api.add_access_entry(role_arn, f"{PUSH_USER} (group {group})")
    namespace = role["metadata"]["namespace"]
    for rule in role["rules"]:
        for resource in rule["resources"]:
            api.grant(
                user, rule["verbs"], resource, namespace, resource_names=rule.get("resourceNames")
            )
    configmap = documents["ConfigMap"]["metadata"]
    api.put_configmap_directly(
        configmap["namespace"],
        configmap["name"],
        documents["ConfigMap"].get("data"),
        labels=configmap.get("labels"),
    )
    return user
