"""Enrolment with zero hub edits (issue 16, item 4): each spoke tells the hub's bus
it is there, the hub routes that to reconcile, takes its spokes' CloudTrail events
like its own, and its functions may assume exactly this hub's spoke roles in the
organization."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aws_cdk.assertions import Template
from moto.events.models import EventPattern
from pydantic import ValidationError

from functions.core.heartbeats import spoke_heartbeat
from functions.core.places import Place
from functions.event_patterns import spoke_heartbeats
from infra.config import DeployConfig, SpokeConfig
from tests.infra.conftest import ACCOUNT as HUB
from tests.infra.conftest import CHOICES, cfn_lint, synth, template_of
from tests.infra.iam_eval import Request, decide, resolve
from tests.infra.test_spoke import (
    BUS,
    EXTERNAL_ID,
    ORG,
    SPOKE,
    SPOKE_CONTEXT,
    STACK_SET_CONTEXT,
    of_type,
    policy_statements,
    spoke_role,
    spoke_template,
    synth_spoke,
)
from tests.infra.test_stack import acknowledgements, as_list, matches
from tests.integration.conftest import fixture_event

HEARTBEAT_RULE = "PodIdentityControlPlane-spoke-heartbeat"
HANDLERS = ("sync", "reconcile", "trust_guard", "webhook_push")
SPOKE_ENVIRONMENT = (
    "ORGANIZATION_ID",
    "SPOKE_ROLE_NAME",
    "SPOKE_EXTERNAL_ID",
    "SPOKE_HEARTBEAT_RULE",
)


@pytest.fixture(scope="module")
def spoke() -> dict[str, Any]:
    return spoke_template(synth_spoke("eu-west-1"))


@pytest.fixture(scope="module")
def stack_set_body() -> dict[str, Any]:
    synthesized = synth_spoke("eu-west-1", spoke="false", **STACK_SET_CONTEXT)
    (resource,) = synthesized["stacks"]["PodidSpokeStackSet"].template["Resources"].values()
    body: dict[str, Any] = json.loads(resource["Properties"]["TemplateBody"])
    return body


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The hub of an organization, with the external id its spokes require."""
    return synth(tmp_path_factory.mktemp("hub"), organizationId=ORG, externalId=EXTERNAL_ID)


def heartbeat_rules(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        logical: rule
        for logical, rule in of_type(template, "AWS::Events::Rule").items()
        if "ScheduleExpression" in rule["Properties"]
    }


def hub_rule(template: Template, description_start: str) -> dict[str, Any]:
    (rule,) = [
        r
        for r in template.find_resources("AWS::Events::Rule").values()
        if r["Properties"].get("Description", "").startswith(description_start)
    ]
    return dict(rule)


def function_logical(template: Template, handler: str) -> str:
    (logical,) = [
        logical
        for logical, f in template.find_resources("AWS::Lambda::Function").items()
        if f["Properties"]["Handler"] == f"functions.handlers.{handler}.handler"
    ]
    return str(logical)


def function_statements(template: Template, handler: str) -> list[dict[str, Any]]:
    function = template.to_json()["Resources"][function_logical(template, handler)]
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = policy_statements(dict(template.to_json()), role)
    found: list[dict[str, Any]] = resolve(statements, HUB, {})
    return found


def environment(template: Template, handler: str) -> dict[str, str]:
    function = template.to_json()["Resources"][function_logical(template, handler)]
    found: dict[str, str] = function["Properties"]["Environment"]["Variables"]
    return found


# --- the spoke's heartbeat ----------------------------------------------------------


def test_each_spoke_puts_a_heartbeat_on_the_hub_bus_with_a_dead_letter_queue(
    spoke: dict[str, Any], stack_set_body: dict[str, Any]
) -> None:
    for template in (spoke, stack_set_body):
        ((logical, rule),) = heartbeat_rules(template).items()
        assert "Condition" not in rule  # every region, the StackSet's template included
        properties = rule["Properties"]
        # named so the hub's rule can tell it from every other schedule
        assert properties["Name"] == HEARTBEAT_RULE
        assert properties["ScheduleExpression"] == "rate(10 minutes)"
        assert properties["State"] == "ENABLED"
        (target,) = properties["Targets"]
        assert target["Arn"] == BUS
        # a heartbeat late by one period says nothing the next one will not
        assert target["RetryPolicy"] == {"MaximumRetryAttempts": 8, "MaximumEventAgeInSeconds": 600}
        (queue,) = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][:1]
        assert template["Resources"][queue]["Properties"]["SqsManagedSseEnabled"] is True
        role = target["RoleArn"]["Fn::GetAtt"][0]
        # the role may put events on the hub's bus and do nothing else
        assert policy_statements(template, role) == [
            {"Action": "events:PutEvents", "Effect": "Allow", "Resource": BUS}
        ]
        (trust,) = template["Resources"][role]["Properties"]["AssumeRolePolicyDocument"][
            "Statement"
        ]
        assert trust["Principal"] == {"Service": "events.amazonaws.com"}
        assert logical.startswith("ForwardingHeartbeat")


def test_the_heartbeat_rate_comes_from_context_within_one_to_sixty_minutes() -> None:
    (rule,) = heartbeat_rules(
        spoke_template(synth_spoke("eu-west-1", spokeHeartbeatMinutes="1"))
    ).values()
    assert rule["Properties"]["ScheduleExpression"] == "rate(1 minute)"
    assert rule["Properties"]["Targets"][0]["RetryPolicy"]["MaximumEventAgeInSeconds"] == 60
    for wrong in ("0", "61", "often"):
        with pytest.raises(ValidationError, match="spokeHeartbeatMinutes"):
            SpokeConfig.model_validate({**SPOKE_CONTEXT, "spokeHeartbeatMinutes": wrong})


# --- the hub: heartbeats and spokes' CloudTrail events --------------------------------


def sample_heartbeat(spoke: dict[str, Any], place: Place) -> dict[str, Any]:
    # the rule name the spoke template really gives its heartbeat
    (rule,) = heartbeat_rules(spoke).values()
    return fixture_event(
        "spoke_heartbeat",
        ACCOUNT=place.account,
        REGION=place.region,
        RULE_NAME=rule["Properties"]["Name"],
    )


def test_the_hub_routes_its_spokes_heartbeats_to_reconcile_and_nothing_else(
    hub: dict[str, Any], spoke: dict[str, Any]
) -> None:
    template = template_of(hub)
    rule = hub_rule(template, "Spoke heartbeats")
    properties = rule["Properties"]
    assert properties["EventPattern"] == spoke_heartbeats("PodIdentityControlPlane")
    (target,) = properties["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [function_logical(template, "reconcile"), "Arn"]}
    # as the hub's other rules: retried, then kept in the event failures queue
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 7200, "MaximumRetryAttempts": 4}
    assert "DeadLetterConfig" in target
    pattern = EventPattern.load(json.dumps(properties["EventPattern"]))
    for place in (Place(SPOKE, "eu-west-1"), Place("777788889999", "ap-south-1")):
        event = sample_heartbeat(spoke, place)
        assert matches(pattern, event)
        # the handler's predicate reads the same place the rule let through
        assert spoke_heartbeat(
            event, environment(template, "reconcile")["SPOKE_HEARTBEAT_RULE"]
        ) == (place)
    # the hub's own schedule is not a heartbeat
    local = fixture_event("scheduled_event", ACCOUNT=HUB)
    own_schedule = hub_rule(template, "Full reconcile pass")
    assert "Name" not in own_schedule["Properties"]  # CloudFormation names it after the stack
    local["resources"] = [f"arn:aws:events:eu-west-1:{HUB}:rule/PodIdentityControlPlane-Schedule1"]
    assert not matches(pattern, local)
    assert not matches(pattern, fixture_event("scheduled_event", ACCOUNT=HUB))


def test_without_an_organization_the_hub_has_no_heartbeat_rule(template: Template) -> None:
    descriptions = [
        r["Properties"].get("Description", "")
        for r in template.find_resources("AWS::Events::Rule").values()
    ]
    assert not [d for d in descriptions if d.startswith("Spoke heartbeats")]


def eks_event(account: str) -> dict[str, Any]:
    return fixture_event(
        "eks_delete_pod_identity_association",
        CLUSTER="c",
        ASSOCIATION_ID="a-1",
        CALLER_ROLE="Admin",
        ACCOUNT=account,
    )


def test_a_hub_takes_its_spokes_cloudtrail_events_like_its_own(
    hub: dict[str, Any], template: Template
) -> None:
    organization = template_of(hub)
    eks = EventPattern.load(
        json.dumps(hub_rule(organization, "CloudTrail EKS")["Properties"]["EventPattern"])
    )
    iam = EventPattern.load(
        json.dumps(hub_rule(organization, "CloudTrail IAM")["Properties"]["EventPattern"])
    )
    for account in (HUB, SPOKE):
        assert matches(eks, eks_event(account))
        assert matches(iam, fixture_event("iam_delete_role", ROLE_NAME="r", ACCOUNT=account))
    # to the same functions as local events
    for description, handler in (
        ("CloudTrail EKS", "reconcile"),
        ("CloudTrail IAM", "trust_guard"),
    ):
        (target,) = hub_rule(organization, description)["Properties"]["Targets"]
        assert target["Arn"]["Fn::GetAtt"][0] == function_logical(organization, handler)
    # a hub of one account still takes only its own account's events
    alone = EventPattern.load(
        json.dumps(hub_rule(template, "CloudTrail EKS")["Properties"]["EventPattern"])
    )
    assert matches(alone, eks_event(HUB))
    assert not matches(alone, eks_event(SPOKE))


# --- the hub functions may assume this hub's spoke roles -------------------------------

SPOKE_ROLES = "arn:aws:iam::*:role/PodIdentityControlPlane-spoke-*"


@pytest.mark.parametrize("handler", HANDLERS)
def test_each_hub_function_may_assume_only_this_hubs_spoke_roles_in_the_organization(
    hub: dict[str, Any], template: Template, handler: str
) -> None:
    statements = function_statements(template_of(hub), handler)
    sts = [s for s in statements if any(a.startswith("sts:") for a in as_list(s["Action"]))]
    assert sts == [
        {
            "Sid": "AssumeSpokeRoles",
            "Action": "sts:AssumeRole",  # no sts:TagSession: the hub sets no session tags
            "Effect": "Allow",
            "Resource": SPOKE_ROLES,
            "Condition": {"StringEquals": {"aws:ResourceOrgID": ORG}},
        }
    ]
    principal = f"arn:aws:iam::{HUB}:role/PodIdentityControlPlane-{handler.replace('_', '-')}"
    in_org = {"aws:ResourceOrgID": ORG}

    def may(action: str, resource: str, context: dict[str, str]) -> bool:
        return decide(Request(action, resource, principal, context), statements)

    for region in ("eu-west-1", "us-east-1"):
        role = f"arn:aws:iam::{SPOKE}:role/PodIdentityControlPlane-spoke-{region}"
        assert may("sts:AssumeRole", role, in_org)
        assert not may("sts:AssumeRole", role, {"aws:ResourceOrgID": "o-otherorgxyz"})
        assert not may("sts:AssumeRole", role, {})
        assert not may("sts:TagSession", role, in_org)
    for other in ("Admin", "OtherHub-spoke-eu-west-1", "PodIdentityControlPlane-reconcile"):
        assert not may("sts:AssumeRole", f"arn:aws:iam::{SPOKE}:role/{other}", in_org)
    # a hub of one account assumes nothing
    alone = function_statements(template, handler)
    assert not [s for s in alone if any(a.startswith("sts:") for a in as_list(s["Action"]))]


@pytest.mark.parametrize("handler", HANDLERS)
def test_the_functions_know_how_to_reach_the_spokes(
    hub: dict[str, Any], spoke: dict[str, Any], template: Template, handler: str
) -> None:
    found = environment(template_of(hub), handler)
    assert {k: found[k] for k in SPOKE_ENVIRONMENT} == {
        "ORGANIZATION_ID": ORG,
        "SPOKE_ROLE_NAME": "PodIdentityControlPlane-spoke-{region}",
        "SPOKE_EXTERNAL_ID": EXTERNAL_ID,
        "SPOKE_HEARTBEAT_RULE": HEARTBEAT_RULE,
    }
    # the name the hub will ask for is the one the spoke gives its role
    _, role = spoke_role(spoke)
    assert found["SPOKE_ROLE_NAME"].format(region="eu-west-1") == role["Properties"]["RoleName"]
    assert not set(SPOKE_ENVIRONMENT) & set(environment(template, handler))
    # the hub's own account, so no cold start asks STS where it is
    assert json.dumps(found["ACCOUNT_ID"]) == json.dumps({"Ref": "AWS::AccountId"})


def test_discovery_may_read_the_ou_of_the_organizations_accounts_only(
    hub: dict[str, Any],
) -> None:
    allowed = {}
    for resource in template_of(hub).to_json()["Resources"].values():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            if "organizations:ListParents" in json.dumps(statement["Action"]):
                roles = json.dumps(resource["Properties"]["Roles"])
                allowed[roles] = statement
    assert len(allowed) == 2  # sync and reconcile: the functions that run discovery
    for statement in allowed.values():
        assert statement["Action"] == "organizations:ListParents"
        resources = json.dumps(statement["Resource"])
        assert f"account/{ORG}/*" in resources
        assert f"ou/{ORG}/*" in resources


def test_the_hub_takes_an_external_id_only_as_a_hub_and_checks_it() -> None:
    with pytest.raises(ValidationError, match="organizationId"):
        DeployConfig.model_validate({**CHOICES, "externalId": EXTERNAL_ID})
    with pytest.raises(ValidationError, match="externalId"):
        DeployConfig.model_validate({**CHOICES, "organizationId": ORG, "externalId": "no spaces"})
    config = DeployConfig.model_validate({**CHOICES, "organizationId": ORG})
    assert config.external_id is None  # the spokes may rely on the organization alone


def test_cdk_nag_and_cfn_lint_pass_on_the_hub_with_a_reason_for_the_spoke_accounts(
    hub: dict[str, Any],
) -> None:
    assert hub["report"]["pluginReports"] == []
    reasons = {
        rule: reason for _, rule, reason in acknowledgements(hub["app"]) if "spoke-*" in rule
    }
    assert list(reasons) == [
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::*:role/PodIdentityControlPlane-spoke-*]"
    ]
    assert re.search(r"aws:ResourceOrgID", next(iter(reasons.values())))
    for stack in hub["stacks"].values():
        assert cfn_lint(stack.template_full_path) == ""
