"""What the apiserver checks on every write, from the API conventions:

* decoding against the kind's schema: a wrong JSON type is a 400; unknown or
  duplicate fields are dropped, and with `fieldValidation=Strict` (kubectl's
  default) they are a 400, with `Warn` a warning header;
* object validation (422 Invalid with one cause per field): names, labels,
  annotations, ConfigMap keys and size, RBAC rules, role references, subjects."""

from __future__ import annotations

import base64
import re
from typing import Any

from sandbox.localkube.errors import ApiError, bad_request, invalid
from sandbox.localkube.resources import RBAC_GROUP, SCHEMAS, Resource, resolve

MAX_CONFIGMAP_BYTES = 1024 * 1024
MAX_ANNOTATION_BYTES = 256 * 1024
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
FIELD_VALIDATION = ("Ignore", "Warn", "Strict")

Cause = tuple[str, str, str]  # field, reason, message


# --- decoding ------------------------------------------------------------------------------
_JSON_TYPES = {
    "string": (str,),
    "integer": (int,),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def _json_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _decode(value: Any, schema: dict[str, Any], path: str, unknown: list[str]) -> Any:
    schema = resolve(schema)
    expected = schema.get("type")
    if expected is not None:
        types = _JSON_TYPES[expected]
        if not isinstance(value, types) or (expected == "integer" and isinstance(value, bool)):
            raise _TypeMismatch(path, _json_name(value), expected)
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return value
    if expected == "array":
        return [
            _decode(item, schema["items"], f"{path}[{i}]", unknown) for i, item in enumerate(value)
        ]
    if expected != "object":
        return value
    if "additionalProperties" in schema:
        return {
            key: _decode(item, schema["additionalProperties"], f"{path}.{key}", unknown)
            for key, item in value.items()
            if item is not None
        }
    decoded: dict[str, Any] = {}
    for key, item in value.items():
        where = f"{path}.{key}" if path else key
        if key not in schema.get("properties", {}):
            unknown.append(where)
        elif item is not None:
            decoded[key] = _decode(item, schema["properties"][key], where, unknown)
    return decoded


class _TypeMismatch(Exception):
    def __init__(self, path: str, got: str, expected: str) -> None:
        super().__init__(path)
        self.path, self.got, self.expected = path, got, expected


def decode(
    resource: Resource, body: Any, field_validation: str, *, patch: bool = False
) -> tuple[dict[str, Any], list[str]]:
    """The body as the kind's schema reads it, and the warnings to send.
    Raises a 400 as the apiserver's decoder does."""
    kind = resource.kind
    prefix = f'{kind} in version "{resource.version}" cannot be handled as a {kind}'
    if not isinstance(body, dict):
        raise bad_request(f"{prefix}: the body must be a JSON object")
    if field_validation not in FIELD_VALIDATION:
        raise bad_request(
            f'fieldValidation: Unsupported value: "{field_validation}": supported values: '
            '"Ignore", "Warn", "Strict"'
        )
    if not patch:
        for key, want in (("apiVersion", resource.api_version), ("kind", kind)):
            got = body.get(key)
            if got not in (None, "", want):
                raise bad_request(
                    f"{prefix}: {key} {got!r} does not match the expected {want!r}"
                    if key == "kind"
                    else f"the API version in the data ({got}) does not match the expected API "
                    f"version ({want})"
                )
    unknown: list[str] = []
    try:
        decoded = _decode(body, SCHEMAS[resource.schema], "", unknown)
    except _TypeMismatch as error:
        raise bad_request(
            f"{prefix}: json: cannot unmarshal {error.got} into Go struct field "
            f"{kind}.{error.path} of type {error.expected}"
        ) from None
    messages = [f'unknown field "{field}"' for field in unknown]
    if messages and field_validation == "Strict":
        raise bad_request(f"{prefix}: strict decoding error: {', '.join(messages)}")
    return decoded, messages if field_validation == "Warn" else []


# --- object validation ----------------------------------------------------------------------
def _required(field: str, detail: str = "") -> Cause:
    return (field, "FieldValueRequired", "Required value" + (f": {detail}" if detail else ""))


def _invalid_value(field: str, value: Any, detail: str) -> Cause:
    shown = f'"{value}"' if isinstance(value, str) else str(value)
    return (field, "FieldValueInvalid", f"Invalid value: {shown}: {detail}")


def _subdomain(field: str, value: str) -> list[Cause]:
    if len(value) > 253:
        return [_invalid_value(field, value, "must be no more than 253 characters")]
    if not _DNS_SUBDOMAIN.fullmatch(value):
        return [
            _invalid_value(
                field,
                value,
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                "characters, '-' or '.', and must start and end with an alphanumeric character "
                "(e.g. 'example.com', regex used for validation is "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            )
        ]
    return []


def _label(field: str, value: str) -> list[Cause]:
    if len(value) > 63:
        return [_invalid_value(field, value, "must be no more than 63 characters")]
    if not _DNS_LABEL.fullmatch(value):
        return [
            _invalid_value(
                field,
                value,
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
                "or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  "
                "or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            )
        ]
    return []


def _path_segment(field: str, value: str) -> list[Cause]:
    if value in (".", ".."):
        return [_invalid_value(field, value, f'may not be "{value}"')]
    for bad in ("/", "%"):
        if bad in value:
            return [_invalid_value(field, value, f"may not contain '{bad}'")]
    return []


def _qualified_key(field: str, key: str) -> list[Cause]:
    prefix, _, name = key.rpartition("/")
    causes = _subdomain(field, prefix) if prefix else []
    if not name or len(name) > 63 or not _QUALIFIED_NAME.fullmatch(name):
        causes.append(
            _invalid_value(
                field,
                key,
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must "
                "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
                "'123-abc', regex used for validation is "
                "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') and be at most 63 characters",
            )
        )
    return causes


def _metadata(resource: Resource, metadata: dict[str, Any]) -> list[Cause]:
    name = metadata.get("name", "")
    causes: list[Cause] = []
    if not name:
        causes.append(_required("metadata.name", "name or generateName is required"))
    elif resource.plural == "namespaces":
        causes += _label("metadata.name", name)
    elif resource.group == RBAC_GROUP:
        causes += _path_segment("metadata.name", name)
    else:
        causes += _subdomain("metadata.name", name)
    for key, value in (metadata.get("labels") or {}).items():
        causes += _qualified_key("metadata.labels", key)
        if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
            causes.append(
                _invalid_value(
                    "metadata.labels",
                    value,
                    "a valid label must be an empty string or consist of alphanumeric characters, "
                    "'-', '_' or '.', and must start and end with an alphanumeric character and "
                    "be at most 63 characters",
                )
            )
    annotations = metadata.get("annotations") or {}
    for key in annotations:
        causes += _qualified_key("metadata.annotations", key.lower())
    if sum(len(k) + len(v) for k, v in annotations.items()) > MAX_ANNOTATION_BYTES:
        causes.append(
            ("metadata.annotations", "FieldValueTooLong",
             f"Too long: may not be more than {MAX_ANNOTATION_BYTES} bytes")
        )  # fmt: skip
    return causes


def _configmap(obj: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    data, binary = obj.get("data") or {}, obj.get("binaryData") or {}
    for section, values in (("data", data), ("binaryData", binary)):
        for key in values:
            if len(key) > 253 or not _CONFIG_KEY.fullmatch(key):
                causes.append(
                    _invalid_value(
                        f"{section}[{key}]",
                        key,
                        "a valid config key must consist of alphanumeric characters, '-', '_' "
                        "or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for "
                        "validation is '[-._a-zA-Z0-9]+')",
                    )
                )
            if section == "binaryData" and key in data:
                causes.append(
                    _invalid_value(f"binaryData[{key}]", key, "duplicate of key present in data")
                )
    # the apiserver counts the values only (binaryData decoded), not the keys
    size = sum(len(v.encode()) for v in data.values())
    for key, value in binary.items():
        try:
            size += len(base64.b64decode(value, validate=True))
        except ValueError:
            raise bad_request(
                f'ConfigMap in version "v1" cannot be handled as a ConfigMap: binaryData[{key}]: '
                "illegal base64 data"
            ) from None
    if size > MAX_CONFIGMAP_BYTES:
        causes.append(
            ("", "FieldValueTooLong", f"Too long: must have at most {MAX_CONFIGMAP_BYTES} bytes")
        )
    return causes


def _rules(obj: dict[str, Any], namespaced: bool) -> list[Cause]:
    causes: list[Cause] = []
    for index, rule in enumerate(obj.get("rules") or []):
        at = f"rules[{index}]"
        if not rule.get("verbs"):
            causes.append(_required(f"{at}.verbs", "verbs must contain at least one value"))
        if rule.get("nonResourceURLs"):
            if namespaced:
                causes.append(
                    _invalid_value(
                        f"{at}.nonResourceURLs",
                        rule["nonResourceURLs"],
                        "namespaced rules cannot apply to non-resource URLs",
                    )
                )
            if rule.get("apiGroups") or rule.get("resources"):
                causes.append(
                    _invalid_value(
                        f"{at}.nonResourceURLs",
                        rule["nonResourceURLs"],
                        "rules cannot apply to both regular resources and non-resource URLs",
                    )
                )
            continue
        if not rule.get("apiGroups"):
            causes.append(
                _required(f"{at}.apiGroups", "resource rules must supply at least one api group")
            )
        if not rule.get("resources"):
            causes.append(
                _required(f"{at}.resources", "resource rules must supply at least one resource")
            )
    return causes


def _binding(obj: dict[str, Any], namespaced: bool) -> list[Cause]:
    causes: list[Cause] = []
    ref = obj.get("roleRef") or {}
    kinds = ("Role", "ClusterRole") if namespaced else ("ClusterRole",)
    if ref.get("apiGroup") != RBAC_GROUP:
        causes.append(
            ("roleRef.apiGroup", "FieldValueNotSupported",
             f'Unsupported value: "{ref.get("apiGroup", "")}": supported values: "{RBAC_GROUP}"')
        )  # fmt: skip
    if ref.get("kind") not in kinds:
        supported = ", ".join(f'"{k}"' for k in kinds)
        causes.append(
            ("roleRef.kind", "FieldValueNotSupported",
             f'Unsupported value: "{ref.get("kind", "")}": supported values: {supported}')
        )  # fmt: skip
    if not ref.get("name"):
        causes.append(_required("roleRef.name"))
    else:
        causes += _path_segment("roleRef.name", ref["name"])
    for index, subject in enumerate(obj.get("subjects") or []):
        at = f"subjects[{index}]"
        kind, group = subject.get("kind"), subject.get("apiGroup", "")
        if not subject.get("name"):
            causes.append(_required(f"{at}.name"))
        if kind == "ServiceAccount":
            if group:
                causes.append(
                    (f"{at}.apiGroup", "FieldValueNotSupported",
                     f'Unsupported value: "{group}": supported values: ""')
                )  # fmt: skip
            if not namespaced and not subject.get("namespace"):
                causes.append(_required(f"{at}.namespace"))
        elif kind in ("User", "Group"):
            if group != RBAC_GROUP:
                causes.append(
                    (f"{at}.apiGroup", "FieldValueNotSupported",
                     f'Unsupported value: "{group}": supported values: "{RBAC_GROUP}"')
                )  # fmt: skip
        else:
            causes.append(
                (f"{at}.kind", "FieldValueNotSupported",
                 f'Unsupported value: "{kind}": supported values: "ServiceAccount", "User", '
                 '"Group"')
            )  # fmt: skip
    return causes


def validate(resource: Resource, obj: dict[str, Any], old: dict[str, Any] | None = None) -> None:
    """Raise 422 Invalid with every problem of the object (create, or update of `old`)."""
    causes = _metadata(resource, obj.get("metadata") or {})
    if resource.kind == "ConfigMap":
        causes += _configmap(obj)
        if (
            old is not None
            and old.get("immutable")
            and (
                obj.get("data") != old.get("data") or obj.get("binaryData") != old.get("binaryData")
            )
        ):
            causes.append(
                (
                    "data",
                    "FieldValueForbidden",
                    "Forbidden: field is immutable when `immutable` is set",
                )
            )
    elif resource.kind in ("Role", "ClusterRole"):
        causes += _rules(obj, resource.namespaced)
    elif resource.kind in ("RoleBinding", "ClusterRoleBinding"):
        causes += _binding(obj, resource.namespaced)
        if old is not None and old.get("roleRef") != obj.get("roleRef"):
            causes.append(_invalid_value("roleRef", obj.get("roleRef"), "cannot change roleRef"))
    if causes:
        name = (obj.get("metadata") or {}).get("name", "")
        raise invalid(resource.kind, resource.group, name, causes)


def must_be_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "BadRequest", "the body of the request must be a JSON object")
    return body
