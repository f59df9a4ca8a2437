"""One cluster's API: its objects, who may do what, and the routes: discovery,
the served resources (namespaced and cluster-scoped paths) and TokenReview."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.cluster_identity import POD_IDENTITY_AUDIENCE, ClusterIdentity, TokenRejected
from sandbox.eks_token_verifier import AwsCredential, EksTokenVerifier
from sandbox.localkube import discovery
from sandbox.localkube.authn import MASTERS, Authenticator, User
from sandbox.localkube.errors import ApiError, no_route
from sandbox.localkube.objects import Objects, namespace_defaults
from sandbox.localkube.rbac import Authorizer
from sandbox.localkube.requests import Request, Response, accepts_json
from sandbox.localkube.resources import RBAC_GROUP, Resource, by_kind, by_plural, find
from sandbox.localkube.store import Store
from sandbox.localkube.validation import decode, validate

# what the apiserver's bootstrap policy and namespaces give every new cluster
_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_CLUSTER_ADMIN = [
    {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
    {"nonResourceURLs": ["*"], "verbs": ["*"]},
]
_ADMIN = User("system:admin", (MASTERS,))
_UNAUTHENTICATED_PATHS = ("/version", "/healthz", "/livez", "/readyz")
_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


@dataclass
class _Fault:
    code: int
    reason: str
    method: str | None
    path_contains: str | None
    remaining: int


class ClusterAPI:
    def __init__(
        self,
        cluster_name: str,
        *,
        aws_credentials: Mapping[str, AwsCredential] | None = None,
        identity: ClusterIdentity | None = None,
        sts_hosts: Iterable[str] = (),
    ) -> None:
        self.cluster_name = cluster_name
        self.identity = identity
        self.store = Store()
        self.authn = Authenticator(
            cluster_name, {} if aws_credentials is None else aws_credentials, tuple(sts_hosts)
        )
        self.authorizer = Authorizer(self.store)
        self.objects = Objects(self.store, self.authorizer)
        self.requests: list[tuple[str, str, int]] = []
        self._faults: list[_Fault] = []
        self.faults_fired = 0  # a fault test asserts its fault fired
        self._lock = threading.Lock()
        self._grants = 0
        self.url = ""  # set by the server hosting it
        for name in _NAMESPACES:
            self.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        for kind, body in (
            ("ClusterRole", {"rules": _CLUSTER_ADMIN}),
            ("ClusterRoleBinding", {
                "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": MASTERS}],
            }),
        ):  # fmt: skip
            self.put({"apiVersion": f"{RBAC_GROUP}/v1", "kind": kind,
                      "metadata": {"name": "cluster-admin"}, **body})  # fmt: skip

    # --- configuration (what an operator of the cluster does) --------------------------------
    @property
    def verifier(self) -> EksTokenVerifier:
        return self.authn.verifier

    @property
    def access_entries(self) -> dict[str, User]:
        return self.authn.access_entries

    def add_access_entry(
        self, principal_arn: str, username: str | None = None, groups: Iterable[str] = ()
    ) -> str:
        """An EKS access entry: the IAM principal becomes this user in these groups."""
        user = username or principal_arn
        self.authn.access_entries[principal_arn] = User(user, tuple(groups))
        return user

    def add_static_token(self, token: str, username: str, groups: Iterable[str] = ()) -> None:
        self.authn.static_tokens[token] = User(username, tuple(groups))

    def grant(
        self,
        username: str,
        verbs: Iterable[str],
        resource: str,
        namespace: str | None = None,
        *,
        resource_names: Iterable[str] | None = None,
    ) -> None:
        """RBAC for one user: a Role and RoleBinding in the namespace, or a ClusterRole
        and ClusterRoleBinding when namespace is None."""
        self._grants += 1
        name = f"podid-grant-{self._grants}"
        rule: dict[str, Any] = {
            "apiGroups": [by_plural(resource).group],
            "resources": [resource],
            "verbs": sorted(verbs),
        }
        if resource_names:
            rule["resourceNames"] = sorted(resource_names)
        prefix = "" if namespace else "Cluster"
        metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
        api_version = f"{RBAC_GROUP}/v1"
        self.put({"apiVersion": api_version, "kind": f"{prefix}Role", "metadata": metadata,
                  "rules": [rule]})  # fmt: skip
        self.put({
            "apiVersion": api_version,
            "kind": f"{prefix}RoleBinding",
            "metadata": dict(metadata),
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": f"{prefix}Role", "name": name},
            "subjects": [{"apiGroup": RBAC_GROUP, "kind": "User", "name": username}],
        })  # fmt: skip

    def put(self, document: dict[str, Any]) -> dict[str, Any]:
        """Create or replace an object as the cluster's admin (kubectl apply of a manifest),
        with every validation a client's write gets."""
        resource = by_kind(document.get("apiVersion", ""), document.get("kind", ""))
        if resource is None:
            raise ValueError(f"{document.get('apiVersion')}/{document.get('kind')} is not served")
        obj, _ = decode(resource, copy.deepcopy(document), "Strict")
        metadata = obj.setdefault("metadata", {})
        namespace = metadata.get("namespace") if resource.namespaced else None
        if resource.namespaced and not namespace:
            metadata["namespace"] = namespace = "default"
        if resource.kind == "Namespace":
            namespace_defaults(obj)
        validate(resource, obj)
        with self.store.lock:
            if namespace is not None:  # as for any client: the namespace must exist
                self.store.get(by_plural("namespaces"), None, namespace)
            current = self.store.find(resource, namespace, metadata["name"])
            if current is None:
                return self.store.create(resource, obj, dry_run=False)
            return self.store.replace(resource, current, obj, dry_run=False)

    def remove(self, plural: str, namespace: str | None, name: str) -> None:
        """Delete an object as the cluster's admin (absent is fine)."""
        resource = by_plural(plural)
        with self.store.lock:
            if self.store.find(resource, namespace, name) is not None:
                self.store.delete(resource, namespace, name, dry_run=False)

    def find(self, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored object (a copy), or None."""
        return self.store.find(by_plural(plural), namespace, name)

    def configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.find("configmaps", namespace, name)

    def put_configmap_directly(
        self,
        namespace: str,
        name: str,
        data: dict[str, str] | None,
        labels: dict[str, str] | None = None,
    ) -> None:
        """Someone else (an admin, kubectl apply) creates or edits the ConfigMap."""
        current = self.configmap(namespace, name) or {}
        metadata = {**current.get("metadata", {}), "name": name, "namespace": namespace}
        if labels:
            metadata["labels"] = dict(labels)
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}
        if data is not None:
            body["data"] = dict(data)
        self.put(body)

    def inject(
        self,
        code: int,
        *,
        reason: str = "InternalError",
        method: str | None = None,
        path_contains: str | None = None,
        times: int = 1,
    ) -> None:
        with self._lock:
            self._faults.append(_Fault(code, reason, method, path_contains, times))

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method not in (None, method):
                    continue
                if fault.path_contains and fault.path_contains not in path:
                    continue
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                self.faults_fired += 1
                return fault
        return None

    # --- serving --------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        try:
            if request.method not in _METHODS:
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")
            if not accepts_json(request.header("accept")):
                raise ApiError(
                    406,
                    "NotAcceptable",
                    "only the following media types are accepted: application/json, "
                    "application/json;as=Table;v=v1;g=meta.k8s.io",
                )
            fault = self._take_fault(request.method, request.target)
            if fault is not None:
                raise ApiError(fault.code, fault.reason, f"injected fault {fault.code}")
            response = self._route(request)
        except ApiError as error:
            response = Response(error.code, error.status())
        self.requests.append((request.method, request.target, response.code))
        return response

    def _route(self, request: Request) -> Response:
        path = request.path
        if path in _UNAUTHENTICATED_PATHS and request.method == "GET":
            return (
                Response(200, discovery.VERSION)
                if path == "/version"
                else Response(200, b"ok", content_type="text/plain")
            )
        user = self.authn.authenticate(request.header("authorization"), request.peer_certificate)
        parts = path.strip("/").split("/")
        group: str | None
        if parts[0] == "api":
            group, version, rest = "", (parts[1] if len(parts) > 1 else None), parts[2:]
        elif parts[0] == "apis":
            group = parts[1] if len(parts) > 1 else None
            version, rest = (parts[2] if len(parts) > 2 else None), parts[3:]
        elif parts[0] == "openapi":
            return self._openapi(user, request, parts[1:])
        else:
            self.authorizer.authorize_path(user, request.method.lower(), path)
            raise no_route()
        if version is None or not rest:
            return self._discovery(user, request, group, version)
        return self._resource(user, request, group or "", version, rest)

    def _discovery(
        self, user: User, request: Request, group: str | None, version: str | None
    ) -> Response:
        self.authorizer.authorize_path(user, "get", request.path)
        if request.method != "GET":
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        if group == "" and version is None:
            return Response(200, discovery.api_versions())
        if group is None:
            return Response(200, discovery.api_groups())
        body = (
            discovery.api_group(group)
            if version is None
            else discovery.resource_list(group, version)
        )
        if body is None:
            raise no_route()
        return Response(200, body)

    def _openapi(self, user: User, request: Request, parts: list[str]) -> Response:
        self.authorizer.authorize_path(user, "get", request.path)
        if parts[:1] != ["v3"]:
            raise no_route()  # v2 is protobuf on real servers; clients fall back to v3
        if len(parts) == 1:
            return Response(200, discovery.openapi_index())
        document = discovery.openapi_document("/".join(parts[1:]))
        if document is None:
            raise no_route()
        return Response(200, document)

    def _resource(
        self, user: User, request: Request, group: str, version: str, rest: list[str]
    ) -> Response:
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        resource = find(group, version, rest[0])
        name = rest[1] if len(rest) == 2 else None
        if resource is None or len(rest) > 2:
            raise no_route()
        if namespace is not None and not resource.namespaced:
            raise no_route()
        if namespace is None and resource.namespaced and (name or request.method != "GET"):
            raise no_route()  # only listing across namespaces has no namespace in the path
        method = request.method
        if not resource.persisted:
            if method != "POST" or name is not None:
                raise ApiError(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                )
            return self._token_review(user, resource, request)
        if name is None:
            if method == "GET":
                return self.objects.list_objects(user, resource, namespace, request)
            if method == "POST":
                return self.objects.create(user, resource, namespace, request)
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        handler = {
            "GET": self.objects.get,
            "PUT": self.objects.update,
            "PATCH": self.objects.patch,
            "DELETE": self.objects.delete,
        }.get(method)
        if handler is None:
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        return handler(user, resource, namespace, name, request)

    def _token_review(self, user: User, resource: Resource, request: Request) -> Response:
        self.authorizer.authorize(user, "create", resource.group, resource.plural, None, None)
        body, _ = decode(resource, request.body(), request.query.get("fieldValidation") or "Warn")
        spec = body.get("spec") or {}
        token, audiences = spec.get("token", ""), spec.get("audiences") or []
        status: dict[str, Any] = {"authenticated": False}
        if self.identity is None:
            status["error"] = "this cluster issues no service account tokens"
        else:
            try:
                audience = audiences[0] if audiences else POD_IDENTITY_AUDIENCE
                found = self.identity.verify(token, audience=audience)
            except TokenRejected as exc:
                status["error"] = str(exc)
            else:
                namespace, account = found.namespace, found.service_account
                status = {
                    "authenticated": True,
                    "audiences": list(found.audiences),
                    "user": {
                        "username": f"system:serviceaccount:{namespace}:{account}",
                        "groups": [
                            "system:serviceaccounts",
                            f"system:serviceaccounts:{namespace}",
                            "system:authenticated",
                        ],
                        "extra": {
                            "authentication.kubernetes.io/pod-name": [found.pod_name],
                            "authentication.kubernetes.io/pod-uid": [found.pod_uid],
                        },
                    },
                }
        return Response(
            201,
            {
                "kind": "TokenReview",
                "apiVersion": resource.api_version,
                "metadata": {"creationTimestamp": None},
                "spec": spec,
                "status": status,
            },
        )
