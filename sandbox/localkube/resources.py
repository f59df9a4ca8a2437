"""The resources this local API serves, and their OpenAPI v3 schemas.

The schemas are written from the Kubernetes API reference for exactly the
fields of these kinds; the same schemas are published at /openapi/v3 (kubectl
reads them to learn that the server validates fields and how to patch) and
drive strict field validation of every write, so what kubectl is told and what
the server enforces cannot drift apart."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

META = "io.k8s.apimachinery.pkg.apis.meta.v1"
RBAC_GROUP = "rbac.authorization.k8s.io"
AUTHN_GROUP = "authentication.k8s.io"


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    verbs: tuple[str, ...]
    schema: str  # component name in the group version's OpenAPI document
    short_names: tuple[str, ...] = ()
    persisted: bool = True  # False: a review, answered and never stored

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version_path(self) -> str:
        """api/v1 or apis/<group>/<version>, as in URLs and the OpenAPI v3 index."""
        return f"apis/{self.group}/{self.version}" if self.group else f"api/{self.version}"


_CRUD = ("create", "delete", "get", "list", "patch", "update")

RESOURCES: tuple[Resource, ...] = (
    Resource("", "v1", "Namespace", "namespaces", False, _CRUD, "io.k8s.api.core.v1.Namespace",
             ("ns",)),
    Resource("", "v1", "ConfigMap", "configmaps", True, _CRUD, "io.k8s.api.core.v1.ConfigMap",
             ("cm",)),
    Resource(AUTHN_GROUP, "v1", "TokenReview", "tokenreviews", False, ("create",),
             "io.k8s.api.authentication.v1.TokenReview", persisted=False),
    Resource(RBAC_GROUP, "v1", "Role", "roles", True, _CRUD, "io.k8s.api.rbac.v1.Role"),
    Resource(RBAC_GROUP, "v1", "RoleBinding", "rolebindings", True, _CRUD,
             "io.k8s.api.rbac.v1.RoleBinding"),
    Resource(RBAC_GROUP, "v1", "ClusterRole", "clusterroles", False, _CRUD,
             "io.k8s.api.rbac.v1.ClusterRole"),
    Resource(RBAC_GROUP, "v1", "ClusterRoleBinding", "clusterrolebindings", False, _CRUD,
             "io.k8s.api.rbac.v1.ClusterRoleBinding"),
)  # fmt: skip

GROUP_VERSIONS: tuple[tuple[str, str], ...] = tuple(
    dict.fromkeys((r.group, r.version) for r in RESOURCES)
)


def find(group: str, version: str, plural: str) -> Resource | None:
    for resource in RESOURCES:
        if (resource.group, resource.version, resource.plural) == (group, version, plural):
            return resource
    return None


def by_plural(plural: str) -> Resource:
    (resource,) = [r for r in RESOURCES if r.plural == plural]
    return resource


def by_kind(api_version: str, kind: str) -> Resource | None:
    for resource in RESOURCES:
        if (resource.api_version, resource.kind) == (api_version, kind):
            return resource
    return None


# --- schemas --------------------------------------------------------------------------------
def _ref(name: str) -> dict[str, Any]:
    return {"allOf": [{"$ref": f"#/components/schemas/{name}"}]}


_STR: dict[str, Any] = {"type": "string"}
_INT: dict[str, Any] = {"type": "integer", "format": "int64"}
_BOOL: dict[str, Any] = {"type": "boolean"}
_STR_MAP: dict[str, Any] = {"type": "object", "additionalProperties": _STR}
_STR_LIST: dict[str, Any] = {"type": "array", "items": _STR}
_FREE: dict[str, Any] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def _kind(
    group: str, version: str, kind: str, properties: dict[str, Any], required: tuple[str, ...] = ()
) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "apiVersion": _STR,
            "kind": _STR,
            "metadata": _ref(f"{META}.ObjectMeta"),
            **properties,
        },
        "x-kubernetes-group-version-kind": [{"group": group, "version": version, "kind": kind}],
    }
    if required:
        schema["required"] = list(required)
    return schema


def _object(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


_OBJECT_META = _object(
    {
        "name": _STR,
        "generateName": _STR,
        "namespace": _STR,
        "selfLink": _STR,
        "uid": _STR,
        "resourceVersion": _STR,
        "generation": _INT,
        "creationTimestamp": {"type": "string", "format": "date-time"},
        "deletionTimestamp": {"type": "string", "format": "date-time"},
        "deletionGracePeriodSeconds": _INT,
        "labels": _STR_MAP,
        "annotations": _STR_MAP,
        "finalizers": _STR_LIST,
        "ownerReferences": {
            "type": "array",
            "items": _object(
                {
                    "apiVersion": _STR,
                    "kind": _STR,
                    "name": _STR,
                    "uid": _STR,
                    "controller": _BOOL,
                    "blockOwnerDeletion": _BOOL,
                },
                ("apiVersion", "kind", "name", "uid"),
            ),
        },
        "managedFields": {
            "type": "array",
            "items": _object(
                {
                    "apiVersion": _STR,
                    "fieldsType": _STR,
                    "fieldsV1": _FREE,
                    "manager": _STR,
                    "operation": _STR,
                    "subresource": _STR,
                    "time": {"type": "string", "format": "date-time"},
                }
            ),
        },
    }
)
_POLICY_RULE = _object(
    {
        "apiGroups": _STR_LIST,
        "resources": _STR_LIST,
        "resourceNames": _STR_LIST,
        "nonResourceURLs": _STR_LIST,
        "verbs": _STR_LIST,
    },
    ("verbs",),
)
_ROLE_REF = _object({"apiGroup": _STR, "kind": _STR, "name": _STR}, ("apiGroup", "kind", "name"))
_SUBJECT = _object(
    {"kind": _STR, "apiGroup": _STR, "name": _STR, "namespace": _STR}, ("kind", "name")
)
_RULES = {"type": "array", "items": _ref("io.k8s.api.rbac.v1.PolicyRule")}
_SUBJECTS = {"type": "array", "items": _ref("io.k8s.api.rbac.v1.Subject")}

SCHEMAS: dict[str, dict[str, Any]] = {
    f"{META}.ObjectMeta": _OBJECT_META,
    "io.k8s.api.core.v1.ConfigMap": _kind(
        "",
        "v1",
        "ConfigMap",
        {"data": _STR_MAP, "binaryData": {**_STR_MAP}, "immutable": _BOOL},
    ),
    "io.k8s.api.core.v1.Namespace": _kind(
        "",
        "v1",
        "Namespace",
        {
            "spec": _object({"finalizers": _STR_LIST}),
            "status": _object({"phase": _STR, "conditions": {"type": "array", "items": _FREE}}),
        },
    ),
    "io.k8s.api.authentication.v1.TokenReview": _kind(
        AUTHN_GROUP,
        "v1",
        "TokenReview",
        {
            "spec": _object({"token": _STR, "audiences": _STR_LIST}),
            "status": _FREE,
        },
        ("spec",),
    ),
    "io.k8s.api.rbac.v1.PolicyRule": _POLICY_RULE,
    "io.k8s.api.rbac.v1.RoleRef": _ROLE_REF,
    "io.k8s.api.rbac.v1.Subject": _SUBJECT,
    "io.k8s.api.rbac.v1.Role": _kind(RBAC_GROUP, "v1", "Role", {"rules": _RULES}),
    "io.k8s.api.rbac.v1.ClusterRole": _kind(
        RBAC_GROUP,
        "v1",
        "ClusterRole",
        {
            "rules": _RULES,
            "aggregationRule": _object({"clusterRoleSelectors": {"type": "array", "items": _FREE}}),
        },
    ),
    "io.k8s.api.rbac.v1.RoleBinding": _kind(
        RBAC_GROUP,
        "v1",
        "RoleBinding",
        {"roleRef": _ref("io.k8s.api.rbac.v1.RoleRef"), "subjects": _SUBJECTS},
        ("roleRef",),
    ),
    "io.k8s.api.rbac.v1.ClusterRoleBinding": _kind(
        RBAC_GROUP,
        "v1",
        "ClusterRoleBinding",
        {"roleRef": _ref("io.k8s.api.rbac.v1.RoleRef"), "subjects": _SUBJECTS},
        ("roleRef",),
    ),
}


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    """Follow an allOf/$ref wrapper to the schema it names."""
    while "allOf" in schema or "$ref" in schema:
        target = schema["allOf"][0] if "allOf" in schema else schema
        schema = SCHEMAS[target["$ref"].rsplit("/", 1)[1]]
    return schema
