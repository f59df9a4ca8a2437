"""Write a cluster's association map into the ConfigMap the pod identity
webhook reads, with the official Kubernetes client and resourceVersion
concurrency: read -> replace with the read resourceVersion; a 409 means
someone wrote in between, so read again and retry. The ConfigMap is created
by deploy/webhook-push-rbac.yaml, never by the push: its RBAC allows get and
update of that one name only (create cannot be limited to a name)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from functions.core.places import Place

MAX_CONFLICT_RETRIES = 5
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"


class PushOutcome(StrEnum):
    UPDATED = "updated"
    UNCHANGED = "unchanged"


class KubeSetupError(Exception):
    """Retrying cannot help until someone sets the cluster up for the push."""


class KubeAccessError(KubeSetupError):
    """401/403: no access entry, or no RBAC."""


class UntrustedEndpoint(KubeSetupError):
    """The record names an endpoint the push must not send a token to."""


class ConfigMapMissing(KubeSetupError):
    """404: the manifest that creates the map ConfigMap was not applied (or it was deleted)."""


class ConfigMapRejected(KubeSetupError):
    """422: the server finds the map itself invalid (e.g. over 1 MiB); the same map fails again."""


class KubeConflict(Exception):
    """Still conflicting after the retry budget."""


@dataclass(frozen=True, slots=True)
class ClusterEndpoint:
    name: str
    url: str
    certificate_authority: str | None = None  # base64 PEM, as DescribeCluster returns it
    self_managed: bool = False  # the push role is mapped by the cluster's own authenticator
    # the account and region whose credentials sign the token (None: the hub's own)
    place: Place | None = None


def _ca_file(certificate_authority: str) -> str:
    pem = base64.b64decode(certificate_authority)
    path = os.path.join(
        tempfile.gettempdir(), f"podid-ca-{hashlib.sha256(pem).hexdigest()[:16]}.pem"
    )
    if not os.path.exists(path):
        with open(path, "wb") as handle:
            handle.write(pem)
    return path


def api_client(endpoint: ClusterEndpoint, token: str, timeout: float = 10.0) -> k8s.ApiClient:
    configuration = k8s.Configuration()
    configuration.host = endpoint.url
    configuration.api_key = {"authorization": token}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    if endpoint.certificate_authority:
        configuration.ssl_ca_cert = _ca_file(endpoint.certificate_authority)
    configuration.verify_ssl = endpoint.url.startswith("https")
    configuration.retries = 2
    api = k8s.ApiClient(configuration)
    api.rest_client.pool_manager.connection_pool_kw["timeout"] = timeout
    return api


def _access_error(
    error: ApiException, endpoint: ClusterEndpoint, namespace: str
) -> KubeAccessError:
    if error.status == 401 and endpoint.self_managed:
        return KubeAccessError(
            f"cluster {endpoint.name} rejected the credentials (401): map the push function's "
            "IAM role to the group podid:webhook-push in the cluster's authenticator "
            "(aws-iam-authenticator mapRoles, cluster ID = the enrolled name; see "
            "deploy/self-managed/README.md)"
        )
    if error.status == 401:
        return KubeAccessError(
            f"cluster {endpoint.name} rejected the credentials (401): the push function's IAM role "
            "has no EKS access entry on this cluster; add one (see README: webhook push access)"
        )
    return KubeAccessError(
        f"cluster {endpoint.name} forbids the push (403) in namespace {namespace}: grant the "
        "push identity get/update on its configmap there (deploy/webhook-push-rbac.yaml); "
        f"server said: {_message(error)}"
    )


def _message(error: ApiException) -> str:
    try:
        return str(json.loads(error.body or "{}").get("message", error.reason))
    except ValueError:
        return str(error.reason)


class ConfigMapWriter:
    def __init__(self, api: k8s.ApiClient, endpoint: ClusterEndpoint) -> None:
        self._core = k8s.CoreV1Api(api)
        self._endpoint = endpoint

    def apply(
        self, namespace: str, name: str, data: dict[str, str], annotations: dict[str, str]
    ) -> tuple[PushOutcome, str]:
        """Make the ConfigMap hold `data`; returns the outcome and resourceVersion."""
        for _ in range(MAX_CONFLICT_RETRIES):
            try:
                return self._apply_once(namespace, name, data, annotations)
            except ApiException as error:
                if error.status in (401, 403):
                    raise _access_error(error, self._endpoint, namespace) from error
                if error.status == 404:
                    raise ConfigMapMissing(
                        f"ConfigMap {namespace}/{name} does not exist on {self._endpoint.name}: "
                        "the push only updates it; create it with `kubectl apply -f "
                        "deploy/webhook-push-rbac.yaml` (the cluster's next reconcile pushes again)"
                    ) from error
                if error.status == 422:
                    raise ConfigMapRejected(
                        f"cluster {self._endpoint.name} rejected ConfigMap {namespace}/{name} as "
                        f"invalid (422): {_message(error)}; the same map fails again (a ConfigMap "
                        "holds at most 1 MiB of data: if it says 'Too long', this cluster has "
                        "more associations than one map can carry)"
                    ) from error
                if error.status != 409:
                    raise
        raise KubeConflict(
            f"ConfigMap {namespace}/{name} on {self._endpoint.name} kept changing under the push "
            f"({MAX_CONFLICT_RETRIES} conflicts in a row)"
        )

    def _apply_once(
        self, namespace: str, name: str, data: dict[str, str], annotations: dict[str, str]
    ) -> tuple[PushOutcome, str]:
        current: Any = self._core.read_namespaced_config_map(name, namespace)
        if (current.data or {}) == data:
            return PushOutcome.UNCHANGED, current.metadata.resource_version
        # keep what others set (the manifest's labels, kubectl's last-applied annotation)
        metadata = k8s.V1ObjectMeta(
            name=name,
            namespace=namespace,
            labels={**(current.metadata.labels or {}), MANAGED_BY_LABEL: "podid"},
            annotations={**(current.metadata.annotations or {}), **annotations},
            resource_version=current.metadata.resource_version,
        )
        replaced: Any = self._core.replace_namespaced_config_map(
            name, namespace, k8s.V1ConfigMap(metadata=metadata, data=data)
        )
        return PushOutcome.UPDATED, replaced.metadata.resource_version
