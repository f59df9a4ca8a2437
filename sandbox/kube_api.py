"""A local Kubernetes API server for exactly what the control plane uses.

No kube-apiserver can be installed here, and kmock's emulator (0.8) has no
resourceVersion, no PUT and turns 404/409 into 500 (see the functions issue
note), so this is a small, strict emulation of the subset used, over real
HTTP, with Kubernetes API conventions:

* namespaces (cluster-scoped list/get/create), ConfigMaps (namespaced and
  all-namespaces list, get, create, replace, merge patch, delete);
* one global, monotonically increasing resourceVersion; replace with a stale
  resourceVersion -> 409 Conflict, create of an existing name -> 409
  AlreadyExists, missing objects -> 404 NotFound, all as `Status` objects;
* TokenReview for service-account tokens issued by the cluster's signing key;
* authentication like EKS: an EKS bearer token (presigned STS
  GetCallerIdentity) is verified by recomputing its SigV4 signature with the
  known secret, its expiry and the x-k8s-aws-id header (this cluster's name);
  the principal needs an access entry (else 401), then RBAC grants per verb,
  resource, namespace and resourceNames (else 403 with the apiserver's
  wording); as in RBAC, a rule with resourceNames never allows create or
  list, whose requests carry no object name for the authorizer;
* fault injection for tests (e.g. a 409 or 503 on the next PUT).

Used by the integration tests and by the sandbox alike.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from sandbox.cluster_identity import POD_IDENTITY_AUDIENCE, ClusterIdentity, TokenRejected
from sandbox.eks_token_verifier import AwsCredential, EksTokenVerifier, TokenInvalid

MAX_CONFIGMAP_BYTES = 1024 * 1024
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_DATA_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def _not_found(kind: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{kind} "{name}" not found', name=name, kind=kind)


# --- the server -------------------------------------------------------------------


@dataclass
class _Fault:
    code: int
    reason: str
    method: str | None
    path_contains: str | None
    remaining: int


@dataclass
class _Grant:
    verbs: frozenset[str]
    resource: str
    namespace: str | None  # None: every namespace / cluster-scoped
    resource_names: frozenset[str] | None = None  # None: any object


# Requests the RBAC authorizer sees without an object name (so resourceNames never match).
_NAMELESS_VERBS = frozenset({"create", "list", "watch", "deletecollection"})


@dataclass
class ClusterState:
    namespaces: dict[str, dict[str, Any]] = field(default_factory=dict)
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    resource_version: int = 1000


class ClusterAPI:
    """One cluster's API: state, authentication, authorization and routes."""

    def __init__(
        self,
        cluster_name: str,
        *,
        aws_credentials: dict[str, AwsCredential] | None = None,
        identity: ClusterIdentity | None = None,
        sts_hosts: Iterable[str] = (),
    ) -> None:
        self.cluster_name = cluster_name
        self.identity = identity
        self.verifier = EksTokenVerifier(cluster_name, aws_credentials or {}, extra_hosts=sts_hosts)
        self.access_entries: dict[str, str] = {}  # principal ARN -> username
        self.static_tokens: dict[str, str] = {}  # bearer token -> username
        self.grants: dict[str, list[_Grant]] = {}
        self.requests: list[tuple[str, str, int]] = []
        self._faults: list[_Fault] = []
        self.faults_fired = 0  # a fault test asserts its fault fired
        self._lock = threading.RLock()
        self.state = ClusterState()
        self.url = ""  # set by the server hosting it
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self._create_namespace(name)

    # configuration -------------------------------------------------------------------
    def add_access_entry(self, principal_arn: str, username: str | None = None) -> str:
        user = username or principal_arn
        self.access_entries[principal_arn] = user
        return user

    def grant(
        self,
        username: str,
        verbs: Iterable[str],
        resource: str,
        namespace: str | None = None,
        *,
        resource_names: Iterable[str] | None = None,
    ) -> None:
        names = frozenset(resource_names) if resource_names else None
        self.grants.setdefault(username, []).append(
            _Grant(frozenset(verbs), resource, namespace, names)
        )

    def add_static_token(self, token: str, username: str) -> None:
        self.static_tokens[token] = username

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

    def configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            found = self.state.objects.get(("configmaps", namespace, name))
            return json.loads(json.dumps(found)) if found else None

    def put_configmap_directly(
        self,
        namespace: str,
        name: str,
        data: dict[str, str] | None,
        labels: dict[str, str] | None = None,
    ) -> None:
        """Someone else (an admin, kubectl apply) creates or edits the ConfigMap."""
        with self._lock:
            key = ("configmaps", namespace, name)
            obj = self.state.objects.get(key)
            if obj is None:
                obj = {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": self._new_metadata(name, namespace),
                }
                self.state.objects[key] = obj
            else:
                obj["metadata"]["resourceVersion"] = self._next_version()
            if data is None:
                obj.pop("data", None)
            else:
                obj["data"] = dict(data)
            if labels:
                obj["metadata"]["labels"] = dict(labels)

    # internals -----------------------------------------------------------------------
    def _next_version(self) -> str:
        self.state.resource_version += 1
        return str(self.state.resource_version)

    def _create_namespace(self, name: str) -> dict[str, Any]:
        namespace = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": self._new_metadata(name, None),
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }
        self.state.namespaces[name] = namespace
        return namespace

    def _new_metadata(self, name: str, namespace: str | None) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "name": name,
            "uid": str(uuid.uuid4()),
            "resourceVersion": self._next_version(),
            "creationTimestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if namespace is not None:
            metadata["namespace"] = namespace
        return metadata

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

    def authenticate(self, authorization: str | None) -> str:
        if not authorization or not authorization.startswith("Bearer "):
            raise ApiError(401, "Unauthorized", "Unauthorized")
        token = authorization.removeprefix("Bearer ").strip()
        if token in self.static_tokens:
            return self.static_tokens[token]
        try:
            principal = self.verifier.principal(token)
        except TokenInvalid as exc:
            raise ApiError(401, "Unauthorized", "Unauthorized") from exc
        user = self.access_entries.get(principal)
        if user is None:  # EKS: an IAM principal without an access entry is not a user
            raise ApiError(401, "Unauthorized", "Unauthorized")
        return user

    def authorize(
        self, user: str, verb: str, resource: str, namespace: str | None, name: str | None
    ) -> None:
        named = None if verb in _NAMELESS_VERBS else name
        for grant in self.grants.get(user, []):
            if (
                verb in grant.verbs
                and grant.resource == resource
                and grant.namespace in (None, namespace)
                and (grant.resource_names is None or named in grant.resource_names)
            ):
                return
        what = f'{resource} "{named}"' if named else resource
        scope = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
        raise ApiError(
            403,
            "Forbidden",
            f'{what} is forbidden: User "{user}" cannot {verb} resource "{resource}" in API '
            f'group ""{scope}',
            name=named or "",
            kind=resource,
        )

    # routing --------------------------------------------------------------------------
    def route(
        self,
        method: str,
        raw_path: str,
        body: Any,
        authorization: str | None,
        content_type: str,
    ) -> tuple[int, dict[str, Any]]:
        path = urlsplit(raw_path).path.rstrip("/")
        if path == "/version":
            return 200, {"major": "1", "minor": "31", "gitVersion": "v1.31.0-podid-local"}
        user = self.authenticate(authorization)
        handlers: list[tuple[str, str, Callable[[], tuple[int, dict[str, Any]]]]] = [
            ("GET", r"/api", lambda: (200, {"kind": "APIVersions", "versions": ["v1"]})),
            ("GET", r"/api/v1/namespaces", lambda: self._list_namespaces(user)),
            ("POST", r"/api/v1/namespaces", lambda: self._post_namespace(user, body)),
            ("GET", r"/api/v1/configmaps", lambda: self._list_configmaps(user, None)),
            (
                "POST",
                r"/apis/authentication\.k8s\.io/v1/tokenreviews",
                lambda: self._token_review(user, body),
            ),
        ]
        for verb, pattern, handler in handlers:
            if method == verb and re.fullmatch(pattern, path):
                return handler()
        match = re.fullmatch(r"/api/v1/namespaces/(?P<ns>[^/]+)", path)
        if match and method == "GET":
            return self._get_namespace(user, match["ns"])
        match = re.fullmatch(r"/api/v1/namespaces/(?P<ns>[^/]+)/configmaps", path)
        if match:
            if method == "GET":
                return self._list_configmaps(user, match["ns"])
            if method == "POST":
                return self._create_configmap(user, match["ns"], body)
        match = re.fullmatch(r"/api/v1/namespaces/(?P<ns>[^/]+)/configmaps/(?P<name>[^/]+)", path)
        if match:
            ns, name = match["ns"], match["name"]
            if method == "GET":
                return self._get_configmap(user, ns, name)
            if method == "PUT":
                return self._replace_configmap(user, ns, name, body)
            if method == "PATCH":
                return self._patch_configmap(user, ns, name, body, content_type)
            if method == "DELETE":
                return self._delete_configmap(user, ns, name, body)
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    # namespaces
    def _list_namespaces(self, user: str) -> tuple[int, dict[str, Any]]:
        self.authorize(user, "list", "namespaces", None, None)
        with self._lock:
            items = [self.state.namespaces[n] for n in sorted(self.state.namespaces)]
            return 200, {
                "kind": "NamespaceList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": str(self.state.resource_version)},
                "items": items,
            }

    def _get_namespace(self, user: str, name: str) -> tuple[int, dict[str, Any]]:
        self.authorize(user, "get", "namespaces", None, name)
        with self._lock:
            if name not in self.state.namespaces:
                raise _not_found("namespaces", name)
            return 200, self.state.namespaces[name]

    def _post_namespace(self, user: str, body: Any) -> tuple[int, dict[str, Any]]:
        name = _object_name(body)
        self.authorize(user, "create", "namespaces", None, name)
        with self._lock:
            if name in self.state.namespaces:
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'namespaces "{name}" already exists',
                    name=name,
                    kind="namespaces",
                )
            return 201, self._create_namespace(name)

    # configmaps
    def _require_namespace(self, namespace: str) -> None:
        if namespace not in self.state.namespaces:
            raise _not_found("namespaces", namespace)

    def _list_configmaps(self, user: str, namespace: str | None) -> tuple[int, dict[str, Any]]:
        self.authorize(user, "list", "configmaps", namespace, None)
        with self._lock:
            items = [
                obj
                for (kind, ns, _), obj in sorted(self.state.objects.items())
                if kind == "configmaps" and namespace in (None, ns)
            ]
            return 200, {
                "kind": "ConfigMapList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": str(self.state.resource_version)},
                "items": items,
            }

    def _get_configmap(self, user: str, namespace: str, name: str) -> tuple[int, dict[str, Any]]:
        self.authorize(user, "get", "configmaps", namespace, name)
        with self._lock:
            found = self.state.objects.get(("configmaps", namespace, name))
            if found is None:
                raise _not_found("configmaps", name)
            return 200, found

    def _create_configmap(self, user: str, namespace: str, body: Any) -> tuple[int, dict[str, Any]]:
        name = _object_name(body)
        self.authorize(user, "create", "configmaps", namespace, name)
        if body.get("metadata", {}).get("resourceVersion"):
            raise ApiError(
                500, "InternalError", "resourceVersion should not be set on objects to be created"
            )
        data = _validated_data(name, body)
        with self._lock:
            self._require_namespace(namespace)
            key = ("configmaps", namespace, name)
            if key in self.state.objects:
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'configmaps "{name}" already exists',
                    name=name,
                    kind="configmaps",
                )
            obj = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    **_user_metadata(body),
                    **self._new_metadata(name, namespace),
                },
                "data": data,
            }
            self.state.objects[key] = obj
            return 201, obj

    def _replace_configmap(
        self, user: str, namespace: str, name: str, body: Any
    ) -> tuple[int, dict[str, Any]]:
        self.authorize(user, "update", "configmaps", namespace, name)
        if _object_name(body) != name:
            raise ApiError(
                400,
                "BadRequest",
                f"the name of the object ({_object_name(body)}) does not match the "
                f"name on the URL ({name})",
            )
        data = _validated_data(name, body)
        with self._lock:
            key = ("configmaps", namespace, name)
            current = self._current_for_write(key, body)
            metadata = {**current["metadata"], **_user_metadata(body)}
            metadata["resourceVersion"] = self._next_version()
            replaced = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}
            self.state.objects[key] = replaced
            return 200, replaced

    def _current_for_write(self, key: tuple[str, str, str], body: dict[str, Any]) -> Any:
        """The stored object a write applies to: 404 if absent, 409 if the body
        names a resourceVersion that is no longer current (optimistic locking)."""
        current = self.state.objects.get(key)
        if current is None:
            raise _not_found(key[0], key[2])
        wanted_version = body.get("metadata", {}).get("resourceVersion")
        if wanted_version and wanted_version != current["metadata"]["resourceVersion"]:
            raise _conflict(key[2])
        return current

    def _patch_configmap(
        self, user: str, namespace: str, name: str, body: Any, content_type: str
    ) -> tuple[int, dict[str, Any]]:
        self.authorize(user, "patch", "configmaps", namespace, name)
        media = content_type.split(";", maxsplit=1)[0].strip()
        if media not in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: "
                "application/merge-patch+json, application/strategic-merge-patch+json",
            )
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "patch body must be a JSON object")
        with self._lock:
            key = ("configmaps", namespace, name)
            current = self._current_for_write(key, body)
            merged = _merge_patch(json.loads(json.dumps(current)), body)
            merged["metadata"]["name"], merged["metadata"]["namespace"] = name, namespace
            merged["data"] = _validated_data(name, merged)
            merged["metadata"]["resourceVersion"] = self._next_version()
            self.state.objects[key] = merged
            return 200, merged

    def _delete_configmap(
        self, user: str, namespace: str, name: str, body: Any
    ) -> tuple[int, dict[str, Any]]:
        self.authorize(user, "delete", "configmaps", namespace, name)
        with self._lock:
            key = ("configmaps", namespace, name)
            current = self.state.objects.get(key)
            if current is None:
                raise _not_found("configmaps", name)
            precondition = ((body or {}).get("preconditions") or {}).get("resourceVersion")
            if precondition and precondition != current["metadata"]["resourceVersion"]:
                raise _conflict(name)
            del self.state.objects[key]
            return 200, {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {"name": name, "kind": "configmaps", "uid": current["metadata"]["uid"]},
            }

    # token reviews
    def _token_review(self, user: str, body: Any) -> tuple[int, dict[str, Any]]:
        self.authorize(user, "create", "tokenreviews", None, None)
        spec = (body or {}).get("spec") or {}
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
                status = {
                    "authenticated": True,
                    "audiences": list(found.audiences),
                    "user": {
                        "username": _service_account_user(found.namespace, found.service_account),
                        "groups": [
                            "system:serviceaccounts",
                            f"system:serviceaccounts:{found.namespace}",
                            "system:authenticated",
                        ],
                        "extra": {
                            "authentication.kubernetes.io/pod-name": [found.pod_name],
                            "authentication.kubernetes.io/pod-uid": [found.pod_uid],
                        },
                    },
                }
        return 201, {
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": spec,
            "status": status,
        }


def _service_account_user(namespace: str, service_account: str) -> str:
    return f"system:serviceaccount:{namespace}:{service_account}"


def _conflict(name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on configmaps "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        name=name,
        kind="configmaps",
    )


def _object_name(body: Any) -> str:
    if not isinstance(body, dict):
        raise ApiError(400, "BadRequest", "request body must be a JSON object")
    name = (body.get("metadata") or {}).get("name") or ""
    if not name or len(name) > 253 or not _NAME.fullmatch(name):
        raise ApiError(
            422,
            "Invalid",
            f'metadata.name: Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist '
            "of lower case alphanumeric characters, '-' or '.'",
        )
    return str(name)


def _user_metadata(body: dict[str, Any]) -> dict[str, Any]:
    metadata = body.get("metadata") or {}
    return {k: metadata[k] for k in ("labels", "annotations") if metadata.get(k)}


def _validated_data(name: str, body: dict[str, Any]) -> dict[str, str]:
    data = body.get("data") or {}
    if not isinstance(data, dict):
        raise ApiError(422, "Invalid", f'ConfigMap "{name}" is invalid: data: must be an object')
    size = 0
    for key, value in data.items():
        if not _DATA_KEY.fullmatch(key) or not isinstance(value, str):
            raise ApiError(
                422, "Invalid", f'ConfigMap "{name}" is invalid: data[{key}]: Invalid value'
            )
        size += len(key) + len(value.encode())
    if size > MAX_CONFIGMAP_BYTES:
        raise ApiError(
            422,
            "Invalid",
            f'ConfigMap "{name}" is invalid: []: Too long: must have at most '
            f"{MAX_CONFIGMAP_BYTES} bytes",
        )
    return dict(data)


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = target if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


class LocalKubernetes:
    """An HTTP server hosting one API per cluster under /<cluster>/..., so a
    single endpoint template (http://127.0.0.1:PORT/{cluster}) reaches all."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.clusters: dict[str, ClusterAPI] = {}
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def endpoint_template(self) -> str:
        return self.url + "/{cluster}"

    def add_cluster(self, name: str, **options: Any) -> ClusterAPI:
        api = ClusterAPI(name, **options)
        api.url = f"{self.url}/{name}"
        self.clusters[name] = api
        return api

    def remove_cluster(self, name: str) -> None:
        self.clusters.pop(name, None)

    def start(self) -> LocalKubernetes:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="local-kubernetes", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> LocalKubernetes:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:  # quiet: tests read `api.requests`
                return

            def _respond(self, api: ClusterAPI | None, code: int, body: dict[str, Any]) -> None:
                payload = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                if api is not None:
                    api.requests.append((self.command, self.path, code))

            def _body(self) -> Any:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if not raw:
                    return None
                try:
                    return json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise ApiError(400, "BadRequest", f"invalid JSON body: {exc.msg}") from exc

            def _serve(self) -> None:
                name, _, rest = self.path.lstrip("/").partition("/")
                api = server.clusters.get(name)
                try:
                    if api is None:
                        raise ApiError(404, "NotFound", f"no cluster {name!r} here")
                    body = self._body()
                    fault = api._take_fault(self.command, "/" + rest)
                    if fault is not None:
                        raise ApiError(fault.code, fault.reason, f"injected fault {fault.code}")
                    code, result = api.route(
                        self.command,
                        "/" + rest,
                        body,
                        self.headers.get("Authorization"),
                        self.headers.get("Content-Type", ""),
                    )
                    self._respond(api, code, result)
                except ApiError as error:
                    self._respond(api, error.code, error.status())

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        return Handler
