"""The sandbox's spoke (sandbox/spokes.py, written by hand) and the CDK spoke stack
(infra/spoke.py) make the same role: same name, session limit, trust policy and
permissions, for the same inputs. Either side changing alone turns this red."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from app import cdk_json_context
from infra.config import SpokeConfig
from infra.functions import FUNCTIONS, function_name
from infra.spoke import PodidSpokeStack
from sandbox.spokes import MAX_SESSION_SECONDS, SpokeSpec
from tests.infra.iam_eval import resolve
from tests.infra.test_spoke import of_type, policy_statements, spoke_role

SPOKE = "444455556666"
HUB = "111122223333"
HUB_STACK = "podid-hub"
CASES = {
    "audit, external id and organization": {
        "region": "eu-west-1",
        "mode": "audit",
        "externalId": "podid-hub-7Qx2",
        "organizationId": "o-abcdefghij",
    },
    "enforce, external id only": {
        "region": "us-east-1",
        "mode": "enforce",
        "externalId": "podid-hub-7Qx2",
    },
    "plan, organization only": {
        "region": "eu-west-1",
        "mode": "plan",
        "organizationId": "o-abcdefghij",
    },
}


def synthesized(case: dict[str, Any]) -> dict[str, Any]:
    inputs = {k: v for k, v in case.items() if k != "region"}
    config = SpokeConfig.model_validate(
        {
            "hubAccount": HUB,
            "hubStackName": HUB_STACK,
            "hubEventBusArn": f"arn:aws:events:{case['region']}:{HUB}:event-bus/default",
            "rolePath": "/pod-identity/",
            **inputs,
        }
    )
    app = cdk.App(context=cdk_json_context())  # feature flags as `cdk synth` has them
    stack = PodidSpokeStack(
        app, "PodidSpoke", config, env=cdk.Environment(account=SPOKE, region=case["region"])
    )
    template: dict[str, Any] = dict(Template.from_stack(stack).to_json())
    return template


def sandbox_spec(case: dict[str, Any]) -> SpokeSpec:
    return SpokeSpec(
        account=SPOKE,
        region=case["region"],
        hub_account=HUB,
        hub_stack_name=HUB_STACK,
        function_role_names=tuple(function_name(HUB_STACK, f) for f in FUNCTIONS),
        external_id=case.get("externalId"),
        organization_id=case.get("organizationId"),
        mode=case["mode"],
        role_path="/pod-identity/",
    )


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def atoms(statements: list[dict[str, Any]]) -> set[str]:
    """A policy as the set of (effect, principal, action, resource, condition) it
    states, one value of each: how IAM reads it, whether a synthesizer merged
    statements or listed one value alone or in a list."""
    found = set()
    for statement in statements:
        condition = {
            operator: {key: sorted(as_list(values)) for key, values in block.items()}
            for operator, block in statement.get("Condition", {}).items()
        }
        principals = [
            (kind, name)
            for kind, names in statement.get("Principal", {"-": "-"}).items()
            for name in as_list(names)
        ]
        for principal in principals:
            for action in as_list(statement["Action"]):
                for resource in as_list(statement.get("Resource", "-")):
                    atom = [statement["Effect"], principal, action, resource, condition]
                    found.add(json.dumps(atom, sort_keys=True))
    return found


@pytest.fixture(scope="module", params=sorted(CASES))
def pair(request: pytest.FixtureRequest) -> tuple[dict[str, Any], SpokeSpec]:
    case = CASES[request.param]
    return synthesized(case), sandbox_spec(case)


def test_the_role_name_and_session_limit_are_the_stacks(
    pair: tuple[dict[str, Any], SpokeSpec],
) -> None:
    template, spec = pair
    _, role = spoke_role(template)
    assert role["Properties"]["RoleName"] == spec.role_name
    assert role["Properties"]["MaxSessionDuration"] == MAX_SESSION_SECONDS


def test_the_trust_policy_is_the_stacks(pair: tuple[dict[str, Any], SpokeSpec]) -> None:
    template, spec = pair
    _, role = spoke_role(template)
    synthesized_trust = resolve(role["Properties"]["AssumeRolePolicyDocument"], SPOKE, {})
    sandbox_trust = spec.trust_policy()
    assert synthesized_trust["Version"] == sandbox_trust["Version"]
    assert atoms(synthesized_trust["Statement"]) == atoms(sandbox_trust["Statement"])


def test_the_permissions_are_the_stacks(pair: tuple[dict[str, Any], SpokeSpec]) -> None:
    template, spec = pair
    logical, _ = spoke_role(template)
    granted = resolve(policy_statements(template, logical), SPOKE, {})
    assert atoms(granted) == atoms(spec.permissions()["Statement"])
    # the same statement ids, so a reader finds each grant on both sides
    assert sorted(g["Sid"] for g in granted) == sorted(
        p["Sid"] for p in spec.permissions()["Statement"]
    )
    # and nothing else is attached to the role (managed policies, other inline ones)
    _, role = spoke_role(template)
    assert "ManagedPolicyArns" not in role["Properties"]
    assert "Policies" not in role["Properties"]
    attached = [
        p
        for p in of_type(template, "AWS::IAM::Policy").values()
        if {"Ref": logical} in p["Properties"]["Roles"]
    ]
    assert len(attached) == 1
