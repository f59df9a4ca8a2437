"""Request bodies in the apiserver's protobuf encoding, which kubectl's typed
clients send (`kubectl create namespace`, `create configmap`, `create role`):
the `k8s\\x00` magic, a runtime.Unknown envelope (typeMeta, raw), and the
object's message, decoded here into the same JSON shape a JSON body has, for the
kinds this API serves. Field numbers are those of the published generated.proto
files; an unknown field number is skipped, as protobuf readers do."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from sandbox.localkube.errors import bad_request

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

# a field: (name, type); types: "string", "int", "bool", "bytes", "time", "fields" (FieldsV1),
# a message name, ("map", value type) or ("list", item type)
Field = tuple[str, Any]
_STRINGS = ("list", "string")
MESSAGES: dict[str, dict[int, Field]] = {
    "TypeMeta": {1: ("apiVersion", "string"), 2: ("kind", "string")},
    "ObjectMeta": {
        1: ("name", "string"), 2: ("generateName", "string"), 3: ("namespace", "string"),
        4: ("selfLink", "string"), 5: ("uid", "string"), 6: ("resourceVersion", "string"),
        7: ("generation", "int"), 8: ("creationTimestamp", "time"),
        9: ("deletionTimestamp", "time"), 10: ("deletionGracePeriodSeconds", "int"),
        11: ("labels", ("map", "string")), 12: ("annotations", ("map", "string")),
        13: ("ownerReferences", ("list", "OwnerReference")), 14: ("finalizers", _STRINGS),
        17: ("managedFields", ("list", "ManagedFieldsEntry")),
    },
    "OwnerReference": {5: ("apiVersion", "string"), 1: ("kind", "string"), 3: ("name", "string"),
                       4: ("uid", "string"), 6: ("controller", "bool"),
                       7: ("blockOwnerDeletion", "bool")},
    "ManagedFieldsEntry": {1: ("manager", "string"), 2: ("operation", "string"),
                           3: ("apiVersion", "string"), 4: ("time", "time"),
                           6: ("fieldsType", "string"), 7: ("fieldsV1", "fields"),
                           8: ("subresource", "string")},
    "ConfigMap": {1: ("metadata", "ObjectMeta"), 2: ("data", ("map", "string")),
                  3: ("binaryData", ("map", "bytes")), 4: ("immutable", "bool")},
    "Namespace": {1: ("metadata", "ObjectMeta"), 2: ("spec", "NamespaceSpec"),
                  3: ("status", "NamespaceStatus")},
    "NamespaceSpec": {1: ("finalizers", _STRINGS)},
    "NamespaceStatus": {1: ("phase", "string")},
    "PolicyRule": {1: ("verbs", _STRINGS), 2: ("apiGroups", _STRINGS), 3: ("resources", _STRINGS),
                   4: ("resourceNames", _STRINGS), 5: ("nonResourceURLs", _STRINGS)},
    "RoleRef": {1: ("apiGroup", "string"), 2: ("kind", "string"), 3: ("name", "string")},
    "Subject": {1: ("kind", "string"), 2: ("apiGroup", "string"), 3: ("name", "string"),
                4: ("namespace", "string")},
    "LabelSelector": {1: ("matchLabels", ("map", "string")),
                      2: ("matchExpressions", ("list", "LabelSelectorRequirement"))},
    "LabelSelectorRequirement": {1: ("key", "string"), 2: ("operator", "string"),
                                 3: ("values", _STRINGS)},
    "AggregationRule": {1: ("clusterRoleSelectors", ("list", "LabelSelector"))},
    "Role": {1: ("metadata", "ObjectMeta"), 2: ("rules", ("list", "PolicyRule"))},
    "ClusterRole": {1: ("metadata", "ObjectMeta"), 2: ("rules", ("list", "PolicyRule")),
                    3: ("aggregationRule", "AggregationRule")},
    "RoleBinding": {1: ("metadata", "ObjectMeta"), 2: ("subjects", ("list", "Subject")),
                    3: ("roleRef", "RoleRef")},
    "ClusterRoleBinding": {1: ("metadata", "ObjectMeta"), 2: ("subjects", ("list", "Subject")),
                           3: ("roleRef", "RoleRef")},
    "TokenReview": {1: ("metadata", "ObjectMeta"), 2: ("spec", "TokenReviewSpec")},
    "TokenReviewSpec": {1: ("token", "string"), 2: ("audiences", _STRINGS)},
    "DeleteOptions": {1: ("gracePeriodSeconds", "int"), 2: ("preconditions", "Preconditions"),
                      3: ("orphanDependents", "bool"), 4: ("propagationPolicy", "string"),
                      5: ("dryRun", _STRINGS)},
    "Preconditions": {1: ("uid", "string"), 2: ("resourceVersion", "string")},
    "Time": {1: ("seconds", "int"), 2: ("nanos", "int")},
}  # fmt: skip
MAX_DEPTH = 16
_ZERO_TIME = "1970-01-01T00:00:00Z"  # a zero metav1.Time is sent as an empty Time message
_OBJECT_KINDS = frozenset(
    {"ConfigMap", "Namespace", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding",
     "TokenReview", "DeleteOptions"}
)  # fmt: skip


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value): an int for varints, bytes for length-delimited fields."""
    found: list[tuple[int, int | bytes]] = []
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
            found.append((number, value))
        elif wire == 2:
            length, at = _varint(data, at)
            if at + length > len(data):
                raise ValueError("truncated field")
            found.append((number, data[at : at + length]))
            at += length
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return found


def _scalar(kind: str, raw: int | bytes, depth: int) -> Any:
    if kind == "int":
        return raw if isinstance(raw, int) else 0
    if kind == "bool":
        return bool(raw)
    if not isinstance(raw, bytes):
        raise ValueError(f"expected a length-delimited {kind}")
    if kind == "string":
        return raw.decode()
    if kind == "bytes":
        return base64.b64encode(raw).decode()
    if kind == "fields":
        inner = dict(_fields(raw))
        raw_json = inner.get(1)
        return json.loads(raw_json if isinstance(raw_json, bytes) and raw_json else b"{}")
    if kind == "time":
        seconds = _message("Time", raw, depth).get("seconds", 0)
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return _message(kind, raw, depth)


def _message(name: str, data: bytes, depth: int = 0) -> dict[str, Any]:
    if depth > MAX_DEPTH:
        raise ValueError("message nested too deeply")
    schema = MESSAGES[name]
    result: dict[str, Any] = {}
    for number, raw in _fields(data):
        if number not in schema:
            continue
        field, kind = schema[number]
        if isinstance(kind, tuple) and kind[0] == "list":
            result.setdefault(field, []).append(_scalar(kind[1], raw, depth + 1))
        elif isinstance(kind, tuple):  # a map entry: key 1, value 2
            if not isinstance(raw, bytes):
                raise ValueError("expected a map entry")
            entry = dict(_fields(raw))
            key = entry.get(1, b"")
            value = entry.get(2, b"")
            result.setdefault(field, {})[key.decode() if isinstance(key, bytes) else str(key)] = (
                _scalar(kind[1], value, depth + 1)
            )
        else:
            value = _scalar(kind, raw, depth + 1)
            if value not in ("", 0, False, None, _ZERO_TIME):  # Go writes zero values too
                result[field] = value
    return result


def decode(body: bytes) -> dict[str, Any]:
    """A protobuf request body as the JSON object it encodes."""
    if not body.startswith(MAGIC):
        raise bad_request("the protobuf body does not start with the k8s magic number")
    try:
        envelope = dict(_fields(body[len(MAGIC) :]))  # runtime.Unknown
        type_meta_raw, raw = envelope.get(1, b""), envelope.get(2, b"")
        if not isinstance(type_meta_raw, bytes) or not isinstance(raw, bytes):
            raise ValueError("malformed envelope")
        type_meta = _message("TypeMeta", type_meta_raw)
        kind = type_meta.get("kind", "")
        if kind not in _OBJECT_KINDS:
            raise bad_request(f"no protobuf decoding for kind {kind!r} here; send JSON")
        obj = _message(kind, raw)
    except (ValueError, UnicodeDecodeError, OverflowError, OSError) as exc:
        raise bad_request(f"the protobuf body could not be decoded: {exc}") from exc
    return {"apiVersion": type_meta.get("apiVersion", ""), "kind": kind, **obj}
