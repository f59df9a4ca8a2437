"""Discovery as clients expect it: /version, the legacy /api and /apis lists,
one APIResourceList per group version, and OpenAPI v3 (an index at
/openapi/v3 and one document per group version with the served paths, their
parameters, patch types and the kinds' schemas). OpenAPI v2 is only served as
protobuf by real servers and kubectl falls back from it to v3, so v2 is absent."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from typing import Any

from sandbox.localkube.patches import JSON_PATCH, MERGE, STRATEGIC
from sandbox.localkube.resources import GROUP_VERSIONS, RESOURCES, SCHEMAS, Resource

# the Kubernetes minor this API follows (kubectl's version skew check reads it)
KUBE_MAJOR, KUBE_MINOR = "1", "34"
VERSION = {
    "major": KUBE_MAJOR,
    "minor": KUBE_MINOR,
    "gitVersion": f"v{KUBE_MAJOR}.{KUBE_MINOR}.4-podid-local",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "1970-01-01T00:00:00Z",
    "goVersion": "none: a light local API in Python",
    "compiler": "none",
    "platform": "linux/amd64",
}
_LOCAL_ADDRESS = [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]


def api_versions() -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": _LOCAL_ADDRESS,
    }


def api_groups() -> dict[str, Any]:
    groups = []
    for group in dict.fromkeys(g for g, _ in GROUP_VERSIONS if g):
        versions = [
            {"groupVersion": f"{group}/{v}", "version": v} for g, v in GROUP_VERSIONS if g == group
        ]
        groups.append({"name": group, "versions": versions, "preferredVersion": versions[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(group: str) -> dict[str, Any] | None:
    for entry in api_groups()["groups"]:
        if entry["name"] == group:
            return {"kind": "APIGroup", "apiVersion": "v1", **entry}
    return None


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    if (group, version) not in GROUP_VERSIONS:
        return None
    resources = []
    for r in RESOURCES:
        if (r.group, r.version) != (group, version):
            continue
        entry: dict[str, Any] = {
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": list(r.verbs),
        }
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        resources.append(entry)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


# --- OpenAPI v3 ------------------------------------------------------------------------------
def _query(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "description": description,
        "schema": {"type": "string", "uniqueItems": True},
    }


_DRY_RUN = _query("dryRun", "When present, modifications are not persisted. Valid value: All")
_FIELD_MANAGER = _query("fieldManager", "A name associated with the actor making the changes.")
_FIELD_VALIDATION = _query(
    "fieldValidation", "How the server treats unknown and duplicate fields: Ignore, Warn, Strict"
)
_WRITE_PARAMETERS = [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION]


def _path_parameter(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _operation(resource: Resource, action: str, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{resource.schema}"}
    operation: dict[str, Any] = {
        "operationId": f"{action}{resource.kind}",
        "parameters": parameters,
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": ref}}},
            "401": {"description": "Unauthorized"},
        },
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {
            "group": resource.group,
            "version": resource.version,
            "kind": resource.kind,
        },
    }
    if action in ("post", "put"):
        operation["requestBody"] = {"content": {"*/*": {"schema": ref}}, "required": True}
    if action == "patch":
        patch_schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        operation["requestBody"] = {
            "content": {t: {"schema": patch_schema} for t in (JSON_PATCH, MERGE, STRATEGIC)},
            "required": True,
        }
    return operation


def _paths(resource: Resource) -> dict[str, Any]:
    base = "/" + resource.group_version_path
    scope = [_path_parameter("namespace")] if resource.namespaced else []
    collection = (
        f"{base}/namespaces/{{namespace}}/{resource.plural}"
        if resource.namespaced
        else f"{base}/{resource.plural}"
    )
    if resource.verbs == ("create",):
        return {collection: {"post": _operation(resource, "post", _WRITE_PARAMETERS)}}
    named = [*scope, _path_parameter("name")]
    paths: dict[str, Any] = {
        collection: {
            "parameters": scope,
            "get": _operation(resource, "list", []),
            "post": _operation(resource, "post", _WRITE_PARAMETERS),
        },
        f"{collection}/{{name}}": {
            "parameters": named,
            "get": _operation(resource, "get", []),
            "put": _operation(resource, "put", _WRITE_PARAMETERS),
            "patch": _operation(resource, "patch", [*_WRITE_PARAMETERS, _query("force", "")]),
            "delete": _operation(resource, "delete", [_DRY_RUN]),
        },
    }
    if resource.namespaced:
        paths[f"{base}/{resource.plural}"] = {"get": _operation(resource, "list", [])}
    return paths


@cache
def openapi_document(group_version_path: str) -> bytes | None:
    served = [r for r in RESOURCES if r.group_version_path == group_version_path]
    if not served:
        return None
    paths: dict[str, Any] = {}
    for resource in served:
        paths.update(_paths(resource))
    document = {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": SCHEMAS},
    }
    return json.dumps(document, sort_keys=True).encode()


def openapi_index() -> dict[str, Any]:
    paths = {}
    for resource in RESOURCES:
        path = resource.group_version_path
        digest = hashlib.sha512(openapi_document(path) or b"").hexdigest()[:64].upper()
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}
