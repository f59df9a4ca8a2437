"""The patch types the apiserver accepts, over plain JSON values:

* JSON merge patch (RFC 7386);
* strategic merge patch for the kinds served here: none of their lists carries a
  merge strategy in the published schema, so lists are replaced and maps merge
  as in a merge patch, plus the directives kubectl sends ($patch, $retainKeys,
  $setElementOrder, $deleteFromPrimitiveList);
* JSON patch (RFC 6902)."""

from __future__ import annotations

import copy
from typing import Any

from sandbox.localkube.errors import ApiError, bad_request

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE, STRATEGIC)


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    body = {k: v for k, v in patch.items() if k != "$patch"}
    if directive == "replace":
        return {k: v for k, v in body.items() if not k.startswith("$")}
    if directive not in (None, "merge"):
        raise bad_request(f"Unknown patch type: {directive}")
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    retain = body.pop("$retainKeys", None)
    for key, value in body.items():
        if key.startswith("$setElementOrder/"):
            continue  # ordering of merge-keyed lists; these kinds have none
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [v for v in result.get(field) or [] if v not in (value or [])]
            continue
        if key.startswith("$"):
            raise bad_request(f"Unknown patch directive: {key}")
        if value is None:
            result.pop(key, None)
            continue
        merged = strategic_merge_patch(result.get(key), value)
        if merged is None:
            result.pop(key, None)
        else:
            result[key] = merged
    if retain is not None:
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"JSON pointer {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(document: Any, parts: list[str], path: str) -> Any:
    node = document
    for part in parts[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise ApiError(422, "Invalid", f"the server rejected our request due to an error in "
                           f"our request: doc is missing path: {path!r}")  # fmt: skip
    return node


def _get(document: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        return document
    parent, last = _parent(document, parts, path), parts[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent[int(last)]
    raise ApiError(422, "Invalid", f"doc is missing key: {path!r}")


def _remove(document: Any, path: str) -> Any:
    parts = _pointer(path)
    parent, last = _parent(document, parts, path), parts[-1]
    _get(document, path)
    return parent.pop(int(last) if isinstance(parent, list) else last)


def _add(document: Any, path: str, value: Any) -> Any:
    parts = _pointer(path)
    if not parts:
        return copy.deepcopy(value)
    parent, last = _parent(document, parts, path), parts[-1]
    if isinstance(parent, dict):
        parent[last] = copy.deepcopy(value)
    elif isinstance(parent, list):
        index = len(parent) if last == "-" else int(last) if last.isdigit() else -1
        if not 0 <= index <= len(parent):
            raise ApiError(422, "Invalid", f"index out of range in {path!r}")
        parent.insert(index, copy.deepcopy(value))
    else:
        raise ApiError(422, "Invalid", f"cannot add at {path!r}")
    return document


def json_patch(target: Any, operations: Any) -> Any:
    if not isinstance(operations, list):
        raise bad_request("a JSON patch must be a list of operations")
    document = copy.deepcopy(target)
    for operation in operations:
        if not isinstance(operation, dict) or "path" not in operation:
            raise bad_request(f"invalid JSON patch operation: {operation!r}")
        op, path = operation.get("op"), operation["path"]
        if op == "add":
            document = _add(document, path, operation.get("value"))
        elif op == "remove":
            _remove(document, path)
        elif op == "replace":
            _get(document, path)
            _remove(document, path) if _pointer(path) else None
            document = _add(document, path, operation.get("value"))
        elif op == "move":
            value = _remove(document, operation.get("from", ""))
            document = _add(document, path, value)
        elif op == "copy":
            document = _add(document, path, _get(document, operation.get("from", "")))
        elif op == "test":
            if _get(document, path) != operation.get("value"):
                raise ApiError(422, "Invalid", f"testing value {path} failed")
        else:
            raise bad_request(f"Unexpected kind: {op}")
    return document
