"""Trust policy documents: parsing (dict, JSON or URL-encoded JSON, as IAM and
CloudTrail hand them out) and read-only views of statements."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from functions.core.errors import MalformedPolicy

POD_PRINCIPAL = "pods.eks.amazonaws.com"
ASSUME_ROLE = "sts:AssumeRole"
TAG_SESSION = "sts:TagSession"
_EFFECTS = ("Allow", "Deny")
_PRINCIPAL_TYPES = ("AWS", "Service", "Federated", "CanonicalUser")


def parse_policy(document: str | Mapping[str, Any]) -> dict[str, Any]:
    """Return a private, validated copy of the policy or raise MalformedPolicy."""
    if isinstance(document, Mapping):
        policy: Any = copy.deepcopy(dict(document))
    elif isinstance(document, str):
        policy = _load_json(document)
    else:
        raise MalformedPolicy(
            f"policy must be a JSON object or string, got {type(document).__name__}"
        )
    _validate(policy)
    return dict(policy)


def _load_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    decoded = unquote(text)
    try:
        return json.loads(decoded)
    except json.JSONDecodeError as exc:
        raise MalformedPolicy(
            f"policy is not valid JSON (nor URL-encoded JSON): {exc.msg} at char {exc.pos}"
        ) from exc


def _validate(policy: Any) -> None:
    if not isinstance(policy, dict):
        raise MalformedPolicy("policy must be a JSON object")
    statements = policy.get("Statement")
    if statements is None:
        raise MalformedPolicy("policy has no Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise MalformedPolicy("Statement must be a non-empty list of statements")
    for index, statement in enumerate(statements):
        _validate_statement(index, statement)


def _validate_statement(index: int, statement: Any) -> None:
    where = f"Statement[{index}]"
    if not isinstance(statement, dict):
        raise MalformedPolicy(f"{where} must be an object")
    if statement.get("Effect") not in _EFFECTS:
        raise MalformedPolicy(f"{where}.Effect must be 'Allow' or 'Deny'")
    if ("Principal" in statement) == ("NotPrincipal" in statement):
        raise MalformedPolicy(f"{where} needs exactly one of Principal or NotPrincipal")
    if ("Action" in statement) == ("NotAction" in statement):
        raise MalformedPolicy(f"{where} needs exactly one of Action or NotAction")
    principal = statement.get("Principal", statement.get("NotPrincipal"))
    if principal != "*":
        if not isinstance(principal, dict) or not principal:
            raise MalformedPolicy(f"{where}.Principal must be '*' or an object of principal types")
        for kind, values in principal.items():
            if kind not in _PRINCIPAL_TYPES:
                raise MalformedPolicy(f"{where}.Principal has unknown type {kind!r}")
            if not _is_str_or_str_list(values):
                raise MalformedPolicy(
                    f"{where}.Principal.{kind} must be a string or list of strings"
                )
    if not _is_str_or_str_list(statement.get("Action", statement.get("NotAction"))):
        raise MalformedPolicy(f"{where}.Action must be a string or list of strings")
    condition = statement.get("Condition", {})
    if not isinstance(condition, dict):
        raise MalformedPolicy(f"{where}.Condition must be an object")
    for operator, block in condition.items():
        if not isinstance(block, dict):
            raise MalformedPolicy(f"{where}.Condition.{operator} must be an object")
        for key, values in block.items():
            if not _is_scalar_or_list(values):
                raise MalformedPolicy(f"{where}.Condition.{operator}.{key} has an invalid value")


def _is_str_or_str_list(value: Any) -> bool:
    if isinstance(value, str):
        return True
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def _is_scalar_or_list(value: Any) -> bool:
    scalar = (str, bool, int, float)
    if isinstance(value, scalar):
        return True
    return isinstance(value, list) and all(isinstance(v, scalar) for v in value)


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def statements(policy: Mapping[str, Any]) -> list[dict[str, Any]]:
    raw = policy["Statement"]
    return [raw] if isinstance(raw, dict) else list(raw)


def _wildcard_regex(pattern: str) -> re.Pattern[str]:
    parts = (".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def action_matches(pattern: str, action: str) -> bool:
    return _wildcard_regex(pattern).fullmatch(action) is not None


@dataclass(frozen=True, slots=True)
class StatementView:
    index: int
    raw: dict[str, Any]

    @property
    def allows(self) -> bool:
        return bool(self.raw["Effect"] == "Allow")

    @property
    def has_not_principal(self) -> bool:
        return "NotPrincipal" in self.raw

    def _principal(self) -> Any:
        return self.raw["NotPrincipal"] if self.has_not_principal else self.raw["Principal"]

    def principals(self) -> dict[str, list[str]]:
        principal = self._principal()
        if principal == "*":
            return {"*": ["*"]}
        return {kind: as_list(values) for kind, values in principal.items()}

    @property
    def is_wildcard(self) -> bool:
        if self.has_not_principal:
            return True  # NotPrincipal in a statement reaches everyone not listed
        found = self.principals()
        return "*" in found or "*" in found.get("AWS", [])

    @property
    def names_pod_principal(self) -> bool:
        return not self.has_not_principal and POD_PRINCIPAL in self.principals().get("Service", [])

    @property
    def reaches_pod_principal(self) -> bool:
        """Would this statement apply to a request from pods.eks.amazonaws.com?"""
        if self.has_not_principal:
            return POD_PRINCIPAL not in self.principals().get("Service", [])
        return self.names_pod_principal or self.is_wildcard

    @property
    def is_pods_only(self) -> bool:
        return self.principals() == {"Service": [POD_PRINCIPAL]} and not self.has_not_principal

    def other_principals(self) -> list[str]:
        return sorted(
            f"{kind}:{value}"
            for kind, values in self.principals().items()
            for value in values
            if not (kind == "Service" and value == POD_PRINCIPAL)
        )

    def covers(self, action: str) -> bool:
        if "NotAction" in self.raw:
            return not any(action_matches(p, action) for p in as_list(self.raw["NotAction"]))
        return any(action_matches(p, action) for p in as_list(self.raw["Action"]))

    def covers_assume(self) -> bool:
        return any(
            self.covers(a)
            for a in (ASSUME_ROLE, "sts:AssumeRoleWithWebIdentity", "sts:AssumeRoleWithSAML")
        )

    def condition(self) -> dict[str, dict[str, Any]]:
        condition: dict[str, dict[str, Any]] = self.raw.get("Condition", {})
        return condition

    def condition_keys(self) -> set[str]:
        return {key.lower() for block in self.condition().values() for key in block}


def views(policy: Mapping[str, Any]) -> list[StatementView]:
    return [StatementView(index, raw) for index, raw in enumerate(statements(policy))]


def compact_size(policy: Mapping[str, Any]) -> int:
    """Characters IAM counts against the trust policy quota (whitespace excluded)."""
    return len(json.dumps(policy, separators=(",", ":")))
