"""An IAM role trust policy read the way IAM's policy grammar describes it.

Written from the IAM User Guide ("IAM JSON policy element reference",
"Policy grammar"), not from podid's own analysis. What IAM would refuse to
store as a role trust policy is refused here too (PolicyInvalid), so no
decision is ever made on a document real IAM could not hold: NotPrincipal
(not allowed in a role trust policy), Resource/NotResource (prohibited in a
trust policy), a wildcard inside a principal name, an unknown Version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

VERSIONS = ("2008-10-17", "2012-10-17")
PRINCIPAL_KINDS = ("AWS", "Service", "Federated", "CanonicalUser")
_ALLOWED = {"Sid", "Effect", "Principal", "Action", "NotAction", "Condition"}


class PolicyInvalid(ValueError):
    """IAM would not accept this document as a role trust policy."""


@dataclass(frozen=True, slots=True)
class Statement:
    index: int
    effect: str  # "Allow" | "Deny"
    principals: tuple[tuple[str, str], ...]  # (kind, name); ("*", "*") is everyone
    actions: tuple[str, ...]
    not_action: bool
    # operator -> ((key as written, values as strings), ...)
    condition: tuple[tuple[str, tuple[tuple[str, tuple[str, ...]], ...]], ...]


@dataclass(frozen=True, slots=True)
class TrustPolicy:
    version: str | None
    statements: tuple[Statement, ...]

    @property
    def variables_enabled(self) -> bool:
        # policy variables exist only from version 2012-10-17; before, "${" is plain text
        return self.version == "2012-10-17"


def load(document: str | Mapping[str, Any]) -> TrustPolicy:
    """Parse a trust policy as IAM returns it (JSON, or URL-encoded JSON)."""
    raw: Any = document
    if isinstance(document, str):
        raw = _json(document)
    if not isinstance(raw, Mapping):
        raise PolicyInvalid("a policy is a JSON object")
    unknown = set(raw) - {"Version", "Id", "Statement"}
    if unknown:
        raise PolicyInvalid(f"unknown top-level element(s) {sorted(unknown)}")
    version = raw.get("Version")
    if version is not None and version not in VERSIONS:
        raise PolicyInvalid(f"Version must be one of {VERSIONS}, got {version!r}")
    found = raw.get("Statement")
    items = [found] if isinstance(found, Mapping) else found
    if not isinstance(items, list) or not items:
        raise PolicyInvalid("Statement must be an object or a non-empty list")
    return TrustPolicy(version, tuple(_statement(i, s) for i, s in enumerate(items)))


def _json(text: str) -> Any:
    for candidate in (text, unquote(text)):
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            continue
    raise PolicyInvalid("the policy is not JSON (nor URL-encoded JSON)")


def _statement(index: int, raw: Any) -> Statement:
    where = f"Statement[{index}]"
    if not isinstance(raw, Mapping):
        raise PolicyInvalid(f"{where} must be an object")
    if "NotPrincipal" in raw:
        raise PolicyInvalid(f"{where}: NotPrincipal cannot be used in a role trust policy")
    if "Resource" in raw or "NotResource" in raw:
        raise PolicyInvalid(f"{where}: a trust policy has no Resource element")
    unknown = set(raw) - _ALLOWED
    if unknown:
        raise PolicyInvalid(f"{where}: unknown element(s) {sorted(unknown)}")
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise PolicyInvalid(f"{where}.Effect must be Allow or Deny")
    if "Principal" not in raw:
        raise PolicyInvalid(f"{where} needs a Principal")
    if ("Action" in raw) == ("NotAction" in raw):
        raise PolicyInvalid(f"{where} needs exactly one of Action or NotAction")
    actions = _strings(raw.get("Action", raw.get("NotAction")), f"{where}.Action")
    return Statement(
        index=index,
        effect=effect,
        principals=_principals(raw["Principal"], where),
        actions=actions,
        not_action="NotAction" in raw,
        condition=_condition(raw.get("Condition", {}), where),
    )


def _strings(value: Any, where: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str) and v for v in items):
        raise PolicyInvalid(f"{where} must be a non-empty string or list of strings")
    return tuple(items)


def _principals(raw: Any, where: str) -> tuple[tuple[str, str], ...]:
    if raw == "*":
        return (("*", "*"),)
    if not isinstance(raw, Mapping) or not raw:
        raise PolicyInvalid(f"{where}.Principal must be '*' or an object of principal types")
    found = []
    for kind, values in raw.items():
        if kind not in PRINCIPAL_KINDS:
            raise PolicyInvalid(f"{where}.Principal has unknown type {kind!r}")
        for name in _strings(values, f"{where}.Principal.{kind}"):
            # "*" alone means everyone; a wildcard inside a name is not allowed
            if name != "*" and ("*" in name or "?" in name):
                raise PolicyInvalid(f"{where}.Principal.{kind} {name!r}: no wildcards in names")
            found.append((kind, name))
    return tuple(found)


def _condition(
    raw: Any, where: str
) -> tuple[tuple[str, tuple[tuple[str, tuple[str, ...]], ...]], ...]:
    if not isinstance(raw, Mapping):
        raise PolicyInvalid(f"{where}.Condition must be an object")
    blocks = []
    for operator, block in raw.items():
        if not isinstance(block, Mapping) or not block:
            raise PolicyInvalid(f"{where}.Condition.{operator} must be a non-empty object")
        keys = []
        for key, values in block.items():
            keys.append((key, _condition_values(values, f"{where}.Condition.{operator}.{key}")))
        blocks.append((operator, tuple(keys)))
    return tuple(blocks)


def _condition_values(raw: Any, where: str) -> tuple[str, ...]:
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise PolicyInvalid(f"{where} has no value")
    values = []
    for item in items:
        if isinstance(item, bool):  # JSON true/false are compared as "true"/"false"
            values.append("true" if item else "false")
        elif isinstance(item, str | int | float):
            values.append(str(item))
        else:
            raise PolicyInvalid(f"{where}: values are strings, numbers or booleans")
    return tuple(values)
