"""A small IAM evaluator for the synthesized template, written from the IAM
policy evaluation rules (not from infra/), for the condition operators the
stack uses: an explicit Deny in either policy wins; otherwise an Allow in the
identity policy or in the table's resource policy allows (same account).

Condition semantics kept exactly: ForAllValues over an empty set is true,
ForAnyValue over an empty set is false, a missing single-valued key makes a
positive operator false and a negated one true."""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "eu-west-1", "AWS::URLSuffix": "amazonaws.com"}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def resolve(value: Any, account: str, arns: dict[str, str]) -> Any:
    """CloudFormation intrinsics -> strings (Ref/GetAtt of resources via `arns`)."""
    if isinstance(value, list):
        return [resolve(v, account, arns) for v in value]
    if not isinstance(value, dict):
        return value
    if "Ref" in value:
        name = value["Ref"]
        return account if name == "AWS::AccountId" else PSEUDO.get(name, arns.get(name, name))
    if "Fn::GetAtt" in value:
        return arns.get(value["Fn::GetAtt"][0], value["Fn::GetAtt"][0])
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(str(resolve(p, account, arns)) for p in parts)
    return {k: resolve(v, account, arns) for k, v in value.items()}


def _like(pattern: str, value: str) -> bool:
    return fnmatchcase(value, pattern)


_POSITIVE = {
    "StringEquals": lambda w, v: w == v,
    "StringLike": _like,
    "ArnEquals": lambda w, v: w == v,
    "ArnLike": _like,
}
_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}


def _value_matches(operator: str, wanted: list[str], value: str) -> bool:
    if operator in _NEGATED:
        return not any(_POSITIVE[_NEGATED[operator]](w, value) for w in wanted)
    if operator not in _POSITIVE:
        raise NotImplementedError(f"condition operator {operator}")
    return any(_POSITIVE[operator](w, value) for w in wanted)


def condition_holds(condition: dict[str, Any], context: dict[str, Any]) -> bool:
    for qualified, entries in condition.items():
        qualifier, _, operator = qualified.rpartition(":")
        for key, expected in entries.items():
            present = context.get(key)
            wanted = [str(w) for w in as_list(expected)]
            if qualifier == "ForAllValues":
                values = as_list(present) if present is not None else []
                holds = all(_value_matches(operator, wanted, v) for v in values)
            elif qualifier == "ForAnyValue":
                values = as_list(present) if present is not None else []
                holds = any(_value_matches(operator, wanted, v) for v in values)
            elif present is None:
                holds = operator in _NEGATED
            else:
                holds = _value_matches(operator, wanted, present)
            if not holds:
                return False
    return True


def _matches_any(patterns: Any, value: str) -> bool:
    return any(fnmatchcase(value, str(p)) for p in as_list(patterns))


@dataclass
class Request:
    action: str
    resource: str
    principal: str
    context: dict[str, Any] = field(default_factory=dict)

    def full_context(self) -> dict[str, Any]:
        return {"aws:PrincipalArn": self.principal, **self.context}


def _applies(statement: dict[str, Any], request: Request, *, resource_policy: bool) -> bool:
    if not _matches_any(statement.get("Action", []), request.action):
        return False
    if not _matches_any(statement.get("Resource", "*"), request.resource):
        return False
    if resource_policy:
        principal = statement.get("Principal")
        names = as_list(principal.get("AWS", [])) if isinstance(principal, dict) else [principal]
        if "*" not in names and request.principal not in names:
            return False
    return condition_holds(statement.get("Condition", {}), request.full_context())


def decide(
    request: Request,
    identity: list[dict[str, Any]],
    resource_policy: list[dict[str, Any]] | None = None,
) -> bool:
    """Same-account evaluation: explicit deny wins, then any allow."""
    resource_policy = resource_policy or []
    for statements, is_resource in ((identity, False), (resource_policy, True)):
        for statement in statements:
            if statement["Effect"] == "Deny" and _applies(
                statement, request, resource_policy=is_resource
            ):
                return False
    return any(
        s["Effect"] == "Allow" and _applies(s, request, resource_policy=is_resource)
        for statements, is_resource in ((identity, False), (resource_policy, True))
        for s in statements
    )


ADMIN = [{"Effect": "Allow", "Action": "*", "Resource": "*"}]  # AdministratorAccess
