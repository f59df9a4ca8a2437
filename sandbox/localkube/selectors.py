"""Label and field selectors of list requests, with the apiserver's syntax:
`a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`; fields
metadata.name and metadata.namespace."""

from __future__ import annotations

import re
from typing import Any

from sandbox.localkube.errors import bad_request

_SET = re.compile(r"^\s*(?P<key>[^\s!=(),]+)\s+(?P<op>in|notin)\s+\((?P<values>[^)]*)\)\s*$")
_FIELDS = ("metadata.name", "metadata.namespace")


def _split(selector: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def _requirement_matches(requirement: str, labels: dict[str, str]) -> bool:
    found = _SET.match(requirement)
    if found:
        values = {v.strip() for v in found["values"].split(",") if v.strip()}
        key = found["key"]
        return (labels.get(key) in values) if found["op"] == "in" else labels.get(key) not in values
    for op in ("!=", "==", "="):
        if op in requirement:
            key, _, value = (p.strip() for p in requirement.partition(op))
            if not key:
                break
            return labels.get(key) != value if op == "!=" else labels.get(key) == value
    else:
        if requirement.startswith("!"):
            return requirement[1:].strip() not in labels
        if re.fullmatch(r"[^\s!=(),]+", requirement):
            return requirement in labels
    raise bad_request(f"unable to parse requirement: {requirement!r}")


def label_matches(selector: str, obj: dict[str, Any]) -> bool:
    labels = obj["metadata"].get("labels") or {}
    return all(_requirement_matches(r, labels) for r in _split(selector))


def field_matches(selector: str, obj: dict[str, Any]) -> bool:
    for requirement in _split(selector):
        negate = "!=" in requirement
        key, _, value = requirement.replace("==", "=").replace("!=", "=").partition("=")
        key, value = key.strip(), value.strip()
        if key not in _FIELDS:
            raise bad_request(f'"{key}" is not a known field selector: only "metadata.name", '
                              '"metadata.namespace"')  # fmt: skip
        actual = obj["metadata"].get(key.split(".", 1)[1], "")
        if (actual == value) == negate:
            return False
    return True
