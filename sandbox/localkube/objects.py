"""The verbs on stored objects (get, list, create, update, patch, delete), with
the apiserver's order of checks: authorize, decode and validate, then the
namespace and preconditions; `dryRun=All` runs every check and stores nothing."""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from typing import Any

from sandbox.localkube import patches, tables
from sandbox.localkube.authn import User
from sandbox.localkube.errors import ApiError, bad_request
from sandbox.localkube.rbac import Authorizer
from sandbox.localkube.requests import Request, Response
from sandbox.localkube.resources import RBAC_GROUP, Resource, by_plural
from sandbox.localkube.selectors import field_matches, label_matches
from sandbox.localkube.store import Store
from sandbox.localkube.validation import decode, validate

PROTECTED_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})
MAX_LIST_LIMIT = 10_000
_GENERATED_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the apiserver's: no vowels, no 0/1/3


def _dry_run(request: Request) -> bool:
    value = request.query.get("dryRun")
    if value in (None, ""):
        return False
    if value != "All":
        raise bad_request(f'dryRun: Unsupported value: "{value}": supported values: "All"')
    return True


def _field_validation(request: Request) -> str:
    # without the parameter the apiserver warns about unknown fields (since 1.23)
    return request.query.get("fieldValidation") or "Warn"


def namespace_defaults(obj: dict[str, Any]) -> None:
    name = obj["metadata"]["name"]
    obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    obj["status"] = {"phase": "Active"}


@dataclass
class Objects:
    store: Store
    authorizer: Authorizer

    # --- reads ---------------------------------------------------------------------------------
    def get(
        self, user: User, resource: Resource, namespace: str | None, name: str, request: Request
    ) -> Response:
        self.authorizer.authorize(user, "get", resource.group, resource.plural, namespace, name)
        obj = self.store.get(resource, namespace, name)
        if tables.wants_table(request.header("accept")):
            metadata = {"resourceVersion": obj["metadata"]["resourceVersion"]}
            include = request.query.get("includeObject", "Metadata")
            return Response(200, tables.to_table(resource.kind, [obj], metadata, include))
        return Response(200, obj)

    def list_objects(
        self, user: User, resource: Resource, namespace: str | None, request: Request
    ) -> Response:
        self.authorizer.authorize(user, "list", resource.group, resource.plural, namespace, None)
        query = request.query
        if query.get("watch") in ("1", "true"):
            raise ApiError(405, "MethodNotAllowed", "watch is not served by this local API")
        limit = _int(query.get("limit"), "limit") or MAX_LIST_LIMIT
        start = _continue_from(query.get("continue"))
        with self.store.lock:
            version = str(self.store.resource_version)
            items = [
                obj
                for obj in self.store.items(resource, namespace)
                if label_matches(query.get("labelSelector", ""), obj)
                and field_matches(query.get("fieldSelector", ""), obj)
                and _position(obj) > start
            ]
        page, rest = items[: min(limit, MAX_LIST_LIMIT)], items[min(limit, MAX_LIST_LIMIT) :]
        metadata: dict[str, Any] = {"resourceVersion": version}
        if rest:
            metadata["continue"] = _continue_token(_position(page[-1]))
            metadata["remainingItemCount"] = len(rest)
        if tables.wants_table(request.header("accept")):
            include = query.get("includeObject", "Metadata")
            return Response(200, tables.to_table(resource.kind, page, metadata, include))
        for obj in page:  # typed lists carry kind and apiVersion once, on the list
            obj.pop("kind", None)
            obj.pop("apiVersion", None)
        return Response(
            200,
            {
                "kind": f"{resource.kind}List",
                "apiVersion": resource.api_version,
                "metadata": metadata,
                "items": page,
            },
        )

    # --- writes --------------------------------------------------------------------------------
    def _decoded(
        self, resource: Resource, body: Any, request: Request, namespace: str | None
    ) -> tuple[dict[str, Any], list[str]]:
        obj, warnings = decode(resource, body, _field_validation(request))
        metadata = obj.setdefault("metadata", {})
        if resource.namespaced:
            if metadata.get("namespace") not in (None, "", namespace):
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            metadata["namespace"] = namespace
        else:
            metadata.pop("namespace", None)
        obj["apiVersion"], obj["kind"] = resource.api_version, resource.kind
        return obj, warnings

    def create(
        self, user: User, resource: Resource, namespace: str | None, request: Request
    ) -> Response:
        body = request.body()
        name = ((body or {}).get("metadata") or {}).get("name") if isinstance(body, dict) else None
        self.authorizer.authorize(user, "create", resource.group, resource.plural, namespace, name)
        dry_run = _dry_run(request)
        obj, warnings = self._decoded(resource, body, request, namespace)
        metadata = obj["metadata"]
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = metadata["generateName"] + "".join(
                secrets.choice(_GENERATED_NAME_ALPHABET) for _ in range(5)
            )
        if resource.kind == "Namespace" and metadata.get("name"):
            namespace_defaults(obj)
        with self.store.lock:
            if namespace is not None:  # admission (NamespaceLifecycle) runs before validation
                self.store.get(by_plural("namespaces"), None, namespace)
            validate(resource, obj)
            created = self.store.create(resource, obj, dry_run=dry_run)
        return Response(201, created, warnings)

    def update(
        self, user: User, resource: Resource, namespace: str | None, name: str, request: Request
    ) -> Response:
        self.authorizer.authorize(user, "update", resource.group, resource.plural, namespace, name)
        dry_run = _dry_run(request)
        obj, warnings = self._decoded(resource, request.body(), request, namespace)
        if obj["metadata"].get("name") != name:
            raise bad_request(
                f"the name of the object ({obj['metadata'].get('name', '')}) does not match the "
                f"name on the URL ({name})"
            )
        with self.store.lock:
            current = self.store.find(resource, namespace, name)
            if current is None and resource.group == RBAC_GROUP:  # RBAC allows create on update
                obj["metadata"].pop("resourceVersion", None)
                validate(resource, obj)
                return Response(201, self.store.create(resource, obj, dry_run=dry_run), warnings)
            current = self.store.current_for_write(
                resource, namespace, name, obj["metadata"].get("resourceVersion")
            )
            if resource.kind == "Namespace":  # status has its own subresource
                obj["status"] = current.get("status", {})
                obj.setdefault("spec", current.get("spec", {}))
            validate(resource, obj, current)
            return Response(
                200, self.store.replace(resource, current, obj, dry_run=dry_run), warnings
            )

    def patch(
        self, user: User, resource: Resource, namespace: str | None, name: str, request: Request
    ) -> Response:
        self.authorizer.authorize(user, "patch", resource.group, resource.plural, namespace, name)
        dry_run = _dry_run(request)
        media = request.media_type
        if media not in patches.PATCH_TYPES:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types "
                f"include: {', '.join(patches.PATCH_TYPES)}",
            )
        body = request.body()
        with self.store.lock:
            current = self.store.get(resource, namespace, name)
            if media == patches.JSON_PATCH:
                patched = patches.json_patch(current, body)
            elif not isinstance(body, dict):
                raise bad_request("the patch must be a JSON object")
            elif media == patches.MERGE:
                patched = patches.merge_patch(current, body)
            else:
                patched = patches.strategic_merge_patch(current, body)
            obj, warnings = self._decoded(resource, patched, request, namespace)
            if obj["metadata"].get("name") != name:
                raise bad_request(
                    f"the name of the object ({obj['metadata'].get('name', '')}) does not match "
                    f"the name on the URL ({name})"
                )
            wanted = obj["metadata"].get("resourceVersion")
            if wanted != current["metadata"]["resourceVersion"]:  # the patch named a version
                self.store.current_for_write(resource, namespace, name, wanted)
            if resource.kind == "Namespace":
                obj["status"] = current.get("status", {})
            validate(resource, obj, current)
            return Response(
                200, self.store.replace(resource, current, obj, dry_run=dry_run), warnings
            )

    def delete(
        self, user: User, resource: Resource, namespace: str | None, name: str, request: Request
    ) -> Response:
        self.authorizer.authorize(user, "delete", resource.group, resource.plural, namespace, name)
        dry_run = _dry_run(request)
        options = request.body() or {}
        if not isinstance(options, dict):
            raise bad_request("DeleteOptions must be a JSON object")
        if resource.kind == "Namespace" and name in PROTECTED_NAMESPACES:
            raise ApiError(
                403,
                "Forbidden",
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                name=name,
                kind="namespaces",
            )
        preconditions = options.get("preconditions") or {}
        with self.store.lock:
            current = self.store.get(resource, namespace, name)
            wanted_uid = preconditions.get("uid")
            if wanted_uid and wanted_uid != current["metadata"]["uid"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {resource.plural} "{name}": Precondition '
                    f"failed: UID in precondition: {wanted_uid}, UID in object meta: "
                    f"{current['metadata']['uid']}",
                    name=name,
                    kind=resource.plural,
                )
            self.store.current_for_write(
                resource, namespace, name, preconditions.get("resourceVersion")
            )
            deleted = self.store.delete(resource, namespace, name, dry_run=dry_run)
        if resource.kind == "Namespace":  # finalized at once: nothing runs in it
            deleted["status"] = {"phase": "Terminating"}
            return Response(200, deleted)
        details: dict[str, Any] = {
            "name": name,
            "kind": resource.plural,
            "uid": deleted["metadata"]["uid"],
        }
        if resource.group:
            details["group"] = resource.group
        return Response(
            200,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": details,
            },
        )


def _int(value: str | None, name: str) -> int:
    if value in (None, ""):
        return 0
    try:
        number = int(value)
    except ValueError:
        raise bad_request(f"{name}: Invalid value: {value!r}: must be an integer") from None
    if number < 0:
        raise bad_request(f"{name}: Invalid value: {number}: must be non-negative")
    return number


def _position(obj: dict[str, Any]) -> tuple[str, str]:
    return (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])


def _continue_token(position: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(position)).encode()).decode()


def _continue_from(token: str | None) -> tuple[str, str]:
    if not token:
        return ("", "")
    try:
        namespace, name = json.loads(base64.urlsafe_b64decode(token.encode()))
        return (str(namespace), str(name))
    except (ValueError, TypeError):
        raise bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion"
        ) from None
