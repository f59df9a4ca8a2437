"""`kubectl get` output: the apiserver answers `Accept: application/json;as=Table;
v=v1;g=meta.k8s.io` with a meta.k8s.io/v1 Table whose columns are the kind's
printer columns, each row carrying the object's metadata (or the object)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sandbox.localkube.errors import bad_request

Column = tuple[str, str, str, int, Callable[[dict[str, Any]], Any]]  # name, type, format, priority

TABLE_MEDIA = "as=Table"


def wants_table(accept: str) -> bool:
    """True when the first acceptable type is a meta.k8s.io/v1 Table."""
    for part in accept.split(","):
        params = {p.strip() for p in part.split(";")[1:]}
        if "as=Table" in params:
            if "g=meta.k8s.io" in params and ("v=v1" in params or "v=v1beta1" in params):
                return True
            continue
        return False
    return False


def human_duration(seconds: float) -> str:
    """How kubectl and the apiserver print an age: 45s, 3m20s, 5h, 12d, 2y40d."""
    if seconds < -1:
        return "<invalid>"
    s = max(int(seconds), 0)
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if s < 120:
        return f"{s}s"
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 192:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 730:
        return f"{days}d"
    years = days // 365
    if years < 8:
        return f"{years}y{days % 365}d" if days % 365 else f"{years}y"
    return f"{years}y"


def _age(obj: dict[str, Any]) -> str:
    created = obj["metadata"].get("creationTimestamp")
    if not created:
        return "<unknown>"
    when = datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return human_duration((datetime.now(UTC) - when).total_seconds())


def _subjects(kind: str) -> Callable[[dict[str, Any]], str]:
    def cell(obj: dict[str, Any]) -> str:
        names = [
            (f"{s.get('namespace', '')}/{s['name']}" if kind == "ServiceAccount" else s["name"])
            for s in obj.get("subjects") or []
            if s.get("kind") == kind
        ]
        return ", ".join(names)

    return cell


_NAME: Column = ("Name", "string", "name", 0, lambda o: o["metadata"]["name"])
_AGE: Column = ("Age", "string", "", 0, _age)
_CREATED: Column = (
    "Created At", "date", "", 0, lambda o: o["metadata"].get("creationTimestamp", "")
)  # fmt: skip
_BINDING: list[Column] = [
    _NAME,
    ("Role", "string", "", 0, lambda o: f"{o['roleRef']['kind']}/{o['roleRef']['name']}"),
    _AGE,
    ("Users", "string", "", 1, _subjects("User")),
    ("Groups", "string", "", 1, _subjects("Group")),
    ("ServiceAccounts", "string", "", 1, _subjects("ServiceAccount")),
]
COLUMNS: dict[str, list[Column]] = {
    "ConfigMap": [_NAME, ("Data", "integer", "", 0, lambda o: len(o.get("data") or {})
                          + len(o.get("binaryData") or {})), _AGE],
    "Namespace": [_NAME, ("Status", "string", "", 0, lambda o: (o.get("status") or {})
                          .get("phase", "")), _AGE],
    "RoleBinding": _BINDING,
    "ClusterRoleBinding": _BINDING,
}  # fmt: skip
_DESCRIPTIONS = {
    "Name": "Name must be unique within a namespace.",
    "Age": "CreationTimestamp is a timestamp representing the server time when this object was "
    "created.",
}


def to_table(
    kind: str, objects: list[dict[str, Any]], list_metadata: dict[str, Any], include: str
) -> dict[str, Any]:
    if include not in ("None", "Metadata", "Object"):
        raise bad_request(f'includeObject: Unsupported value: "{include}"')
    columns = COLUMNS.get(kind, [_NAME, _CREATED])
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": [column[4](obj) for column in columns]}
        if include == "Object":
            row["object"] = obj
        elif include == "Metadata":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_metadata,
        "columnDefinitions": [
            {
                "name": name,
                "type": type_,
                "format": format_,
                "description": _DESCRIPTIONS.get(name, name),
                "priority": priority,
            }
            for name, type_, format_, priority, _ in columns
        ],
        "rows": rows,
    }
