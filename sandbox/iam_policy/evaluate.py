"""Decide one request against a role trust policy, from the IAM User Guide
("Policy evaluation logic", "Principal", "Action", "NotAction").

A statement applies when its Principal names the caller, its Action (or
NotAction) covers the action and every condition holds. An applying Deny
wins; otherwise an applying Allow allows; otherwise the request is implicitly
denied. A statement whose condition cannot be evaluated (NotEvaluable) only
blocks an answer it could change: an applying Deny still denies, and an
applying Allow still allows unless an unevaluable Deny might apply.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from sandbox import arns
from sandbox.iam_policy.conditions import holds
from sandbox.iam_policy.document import Statement, TrustPolicy
from sandbox.iam_policy.matching import ContextValue, NotEvaluable, action_matches

_ACCOUNT = re.compile(r"^\d{12}$")
_ROOT = re.compile(r"^arn:[a-z-]+:iam::(\d{12}):root$")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks STS: a service principal, or an IAM principal (by ARN)."""

    kind: Literal["Service", "AWS"]
    name: str  # service principal name, or the principal's ARN
    account: str = ""  # for AWS callers
    role_arn: str = ""  # the role behind an assumed-role session, if any

    @classmethod
    def service(cls, name: str) -> Caller:
        return cls("Service", name)

    @classmethod
    def aws(cls, arn: str, *, role_arn: str = "") -> Caller:
        return cls("AWS", arn, account=arns.account_of(arn), role_arn=role_arn)


@dataclass(frozen=True, slots=True)
class Request:
    caller: Caller
    action: str
    # condition keys as IAM names them; a tuple is a multivalued key
    context: Mapping[str, ContextValue] = field(default_factory=dict)

    def keys(self) -> dict[str, ContextValue]:
        return {key.lower(): value for key, value in self.context.items()}


Effect = Literal["Allow", "ExplicitDeny", "ImplicitDeny"]


@dataclass(frozen=True, slots=True)
class Decision:
    action: str
    effect: Effect
    statements: tuple[int, ...] = ()  # the statements that decided it

    @property
    def allowed(self) -> bool:
        return self.effect == "Allow"

    def __str__(self) -> str:
        where = f" by Statement{list(self.statements)}" if self.statements else ""
        return f"{self.action}: {self.effect}{where}"


def names(statement: Statement, caller: Caller) -> bool:
    return any(_names(kind, value, caller) for kind, value in statement.principals)


def _names(kind: str, value: str, caller: Caller) -> bool:
    if kind == "*" or (kind == "AWS" and value == "*"):
        return True  # both spellings mean every principal
    if kind == "Service":
        return caller.kind == "Service" and value == caller.name
    if kind != "AWS" or caller.kind != "AWS":
        return False  # Federated / CanonicalUser never name these callers
    root = _ROOT.match(value)
    if _ACCOUNT.match(value) or root:
        # an account principal stands for every IAM principal of that account
        return caller.account == (root.group(1) if root else value)
    return value in (caller.name, caller.role_arn)


def covers(statement: Statement, action: str) -> bool:
    listed = any(action_matches(written, action) for written in statement.actions)
    return listed != statement.not_action


def _conditions_hold(
    statement: Statement, context: Mapping[str, ContextValue], *, variables: bool
) -> bool:
    return all(
        holds(operator, key, values, context, variables=variables)
        for operator, block in statement.condition
        for key, values in block
    )


def decide(policy: TrustPolicy, request: Request) -> Decision:
    context = request.keys()
    applying: dict[str, list[int]] = {"Allow": [], "Deny": []}
    unknown: dict[str, list[NotEvaluable]] = {"Allow": [], "Deny": []}
    for statement in policy.statements:
        if not (names(statement, request.caller) and covers(statement, request.action)):
            continue
        try:
            if _conditions_hold(statement, context, variables=policy.variables_enabled):
                applying[statement.effect].append(statement.index)
        except NotEvaluable as exc:
            unknown[statement.effect].append(exc)
    if applying["Deny"]:
        return Decision(request.action, "ExplicitDeny", tuple(applying["Deny"]))
    if unknown["Deny"]:
        raise unknown["Deny"][0]
    if applying["Allow"]:
        return Decision(request.action, "Allow", tuple(applying["Allow"]))
    if unknown["Allow"]:
        raise unknown["Allow"][0]
    return Decision(request.action, "ImplicitDeny")


def decide_all(policy: TrustPolicy, requests: Iterable[Request]) -> list[Decision]:
    """One decision per request (STS authorizes each action of one call on its own)."""
    return [decide(policy, request) for request in requests]
