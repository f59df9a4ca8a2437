"""The two Kubernetes API servers the contract suite runs against, behind one
small interface: the real kube-apiserver (tests.realkube, one per session, a
fresh namespace per test) and the light local API (sandbox.kube_api, a fresh
cluster per test). In both, the principal PUSHER signs EKS tokens with the
access key AKIDPUSH and has an access entry as user `pusher`, with no rights
until a test grants them."""

from __future__ import annotations

import base64
import itertools
import time
from typing import Any, Protocol

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from sandbox.cluster_identity import ClusterIdentity
from sandbox.eks_token_verifier import AwsCredential
from sandbox.kube_api import ClusterAPI, LocalKubernetes
from tests.realkube import RealKube

PUSHER = "arn:aws:iam::111122223333:role/push"
PUSHER_KEY, PUSHER_SECRET = "AKIDPUSH", "s3cr3t"
USER = "pusher"
_GROUPS = {"configmaps": "", "namespaces": "", "tokenreviews": "authentication.k8s.io"}
_fresh = itertools.count(1)


class Backend(Protocol):
    kind: str
    cluster_name: str  # what the pusher's EKS tokens must name
    url: str
    namespace: str  # an existing namespace holding no ConfigMaps yet

    @property
    def certificate_authority(self) -> str | None:
        """Base64 PEM, as EKS DescribeCluster returns it."""

    def grant(
        self,
        verbs: list[str],
        resource: str,
        namespace: str | None = None,
        resource_names: list[str] | None = None,
    ) -> None: ...

    def put_configmap(self, namespace: str, name: str, data: dict[str, str]) -> None: ...

    def revoke_access_entry(self) -> None: ...

    def restore_access_entry(self) -> None: ...

    def service_account_token(
        self, namespace: str, service_account: str, pod: str, audience: str
    ) -> str: ...

    def delete_pod(self, namespace: str, pod: str) -> None: ...

    def close(self) -> None: ...


class LightBackend:
    kind = "light"
    cluster_name = "blue"

    def __init__(self, server: LocalKubernetes) -> None:
        self._server = server
        self._identity = ClusterIdentity.create("arn:aws:eks:eu-west-1:111122223333:cluster/blue")
        self.api: ClusterAPI = server.add_cluster(
            self.cluster_name,
            aws_credentials={PUSHER_KEY: AwsCredential(PUSHER_SECRET, PUSHER)},
            identity=self._identity,
        )
        self.api.add_access_entry(PUSHER, USER)
        self.url = self.api.url
        self.certificate_authority = server.ca_data  # the light API's CA, verified
        self.namespace = "kube-system"

    def grant(
        self,
        verbs: list[str],
        resource: str,
        namespace: str | None = None,
        resource_names: list[str] | None = None,
    ) -> None:
        self.api.grant(USER, verbs, resource, namespace, resource_names=resource_names)

    def put_configmap(self, namespace: str, name: str, data: dict[str, str]) -> None:
        self.api.put_configmap_directly(namespace, name, data)

    def revoke_access_entry(self) -> None:
        self.api.access_entries.clear()

    def restore_access_entry(self) -> None:
        self.api.add_access_entry(PUSHER, USER)

    def service_account_token(
        self, namespace: str, service_account: str, pod: str, audience: str
    ) -> str:
        return self._identity.issue(namespace, service_account, pod_name=pod, audience=audience)

    def delete_pod(self, namespace: str, pod: str) -> None:
        # the light API serves no Pod objects; its issuer tracks the pods its tokens name
        self._identity.delete_pod(namespace, pod)

    def close(self) -> None:
        self._server.remove_cluster(self.cluster_name)


class RealBackend:
    kind = "real"

    def __init__(self, kube: RealKube) -> None:
        self._kube = kube
        self.cluster_name = kube.cluster_name
        self.url = kube.url
        self.certificate_authority = base64.b64encode(kube.ca_file.read_bytes()).decode()
        self._admin = kube.admin_api()
        self._core = k8s.CoreV1Api(self._admin)
        self._rbac = k8s.RbacAuthorizationV1Api(self._admin)
        self._suffix = f"contract-{next(_fresh)}"
        self.namespace = self._suffix
        self._core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=self.namespace)))
        self._granted: list[tuple[str, str | None]] = []
        kube.add_aws_credential(PUSHER_KEY, PUSHER_SECRET, PUSHER)
        self.restore_access_entry()

    def grant(
        self,
        verbs: list[str],
        resource: str,
        namespace: str | None = None,
        resource_names: list[str] | None = None,
    ) -> None:
        name = f"{self._suffix}-{len(self._granted)}"
        rule = k8s.V1PolicyRule(
            api_groups=[_GROUPS[resource]],
            resources=[resource],
            verbs=verbs,
            resource_names=resource_names,
        )
        subject = k8s.RbacV1Subject(kind="User", name=USER, api_group="rbac.authorization.k8s.io")
        meta = k8s.V1ObjectMeta(name=name, namespace=namespace)
        if namespace is None:  # every namespace, and cluster-scoped resources
            self._rbac.create_cluster_role(k8s.V1ClusterRole(metadata=meta, rules=[rule]))
            ref = k8s.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=name
            )
            self._rbac.create_cluster_role_binding(
                k8s.V1ClusterRoleBinding(metadata=meta, role_ref=ref, subjects=[subject])
            )
        else:
            self._rbac.create_namespaced_role(namespace, k8s.V1Role(metadata=meta, rules=[rule]))
            ref = k8s.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name=name)
            self._rbac.create_namespaced_role_binding(
                namespace, k8s.V1RoleBinding(metadata=meta, role_ref=ref, subjects=[subject])
            )
        self._granted.append((name, namespace))
        self._wait_until_allowed(verbs[0], resource, namespace, resource_names)

    def _wait_until_allowed(
        self, verb: str, resource: str, namespace: str | None, names: list[str] | None
    ) -> None:
        """RBAC authorizes from an informer cache: a binding just created may not be
        seen for a moment (seconds on a loaded machine). Ask the same authorizer."""
        authz = k8s.AuthorizationV1Api(self._admin)
        attributes = k8s.V1ResourceAttributes(
            group=_GROUPS[resource],
            resource=resource,
            verb=verb,
            namespace=namespace,
            name=names[0] if names else None,
        )
        review = k8s.V1SubjectAccessReview(
            spec=k8s.V1SubjectAccessReviewSpec(user=USER, resource_attributes=attributes)
        )
        deadline = time.monotonic() + 15
        while True:
            status = authz.create_subject_access_review(review).status
            if status is not None and status.allowed:
                return
            assert time.monotonic() < deadline, f"{USER} still may not {verb} {resource}"
            time.sleep(0.05)

    def put_configmap(self, namespace: str, name: str, data: dict[str, str]) -> None:
        body = k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name=name), data=data)
        try:
            self._core.create_namespaced_config_map(namespace, body)
        except ApiException as error:
            if error.status != 409:
                raise
            self._core.replace_namespaced_config_map(name, namespace, body)

    def revoke_access_entry(self) -> None:
        self._kube.unmap_iam_principal(PUSHER)

    def restore_access_entry(self) -> None:
        self._kube.map_iam_principal(PUSHER, USER, [])

    def service_account_token(
        self, namespace: str, service_account: str, pod: str, audience: str
    ) -> str:
        account = k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name=service_account))
        _ignore_exists(lambda: self._core.create_namespaced_service_account(namespace, account))
        spec = k8s.V1PodSpec(
            service_account_name=service_account,
            containers=[k8s.V1Container(name="app", image="example.invalid/app:1")],
        )
        body = k8s.V1Pod(metadata=k8s.V1ObjectMeta(name=pod), spec=spec)
        _ignore_exists(lambda: self._core.create_namespaced_pod(namespace, body))
        return self._kube.service_account_token(
            namespace, service_account, [audience], 600, pod=pod
        )

    def delete_pod(self, namespace: str, pod: str) -> None:
        self._core.delete_namespaced_pod(pod, namespace, grace_period_seconds=0)

    def close(self) -> None:
        for name, namespace in self._granted:
            if namespace is None:
                self._rbac.delete_cluster_role_binding(name)
                self._rbac.delete_cluster_role(name)
            else:
                self._rbac.delete_namespaced_role_binding(name, namespace)
                self._rbac.delete_namespaced_role(name, namespace)
        self._kube.unmap_iam_principal(PUSHER)
        self._admin.close()


def _ignore_exists(call: Any) -> None:
    try:
        call()
    except ApiException as error:
        if error.status != 409:
            raise
