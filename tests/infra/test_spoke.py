"""The spoke stack (issue 16, item 2): what the hub may do in a spoke account, the
events a spoke forwards, its StackSet form, and the hub bus's organization policy."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Template
from moto.events.models import EventPattern

from app import build_app, cdk_json_context
from tests.infra.conftest import ACCOUNT as HUB
from tests.infra.conftest import cfn_lint, template_of
from tests.infra.iam_eval import Request, decide, resolve
from tests.infra.test_stack import acknowledgements, as_list, matches
from tests.integration.conftest import fixture_event

SPOKE = "444455556666"
ORG = "o-abcdefghij"
EXTERNAL_ID = "podid-hub-7Qx2"
BUS = f"arn:aws:events:eu-west-1:{HUB}:event-bus/default"
HANDLERS = ("reconcile", "sync", "trust-guard", "webhook-push")
HUB_ROLES = [f"arn:aws:iam::{HUB}:role/PodIdentityControlPlane-{h}" for h in HANDLERS]
SPOKE_CONTEXT = {
    "rolePath": "/pod-identity/",
    "hubAccount": HUB,
    "hubEventBusArn": BUS,
    "organizationId": ORG,
    "externalId": EXTERNAL_ID,
}
STACK_SET_CONTEXT = {
    "spokeStackSet": "true",
    "spokeOrganizationalUnits": "ou-ab12-cdefgh34",
    "spokeRegions": "us-east-1,eu-west-1",
}


def synth_spoke(region: str | None, **context: Any) -> dict[str, Any]:
    """`cdk synth -c spoke=true ...` in a spoke account (region None: env-agnostic)."""
    saved = {k: os.environ.get(k) for k in ("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION")}
    os.environ["CDK_DEFAULT_ACCOUNT"] = SPOKE
    if region is None:
        os.environ.pop("CDK_DEFAULT_REGION", None)
    else:
        os.environ["CDK_DEFAULT_REGION"] = region
    try:
        app = build_app({**cdk_json_context(), "spoke": "true", **SPOKE_CONTEXT, **context})
        assembly = app.synth()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    report = json.loads(Path(assembly.directory, "validation-report.json").read_text())
    stacks = {s.stack_name: s for s in assembly.stacks}
    return {"app": app, "stacks": stacks, "report": report}


def spoke_template(synthesized: dict[str, Any]) -> dict[str, Any]:
    template: dict[str, Any] = synthesized["stacks"]["PodidSpoke"].template
    return template


@pytest.fixture(scope="module")
def audit_spoke() -> dict[str, Any]:
    return synth_spoke("eu-west-1")


@pytest.fixture(scope="module")
def enforce_spoke() -> dict[str, Any]:
    return synth_spoke("us-east-1", mode="enforce")


@pytest.fixture(scope="module")
def plan_spoke() -> dict[str, Any]:
    return synth_spoke("eu-west-1", mode="plan")


@pytest.fixture(scope="module")
def stack_set() -> dict[str, Any]:
    synthesized = synth_spoke("eu-west-1", spoke="false", **STACK_SET_CONTEXT)
    (resource,) = synthesized["stacks"]["PodidSpokeStackSet"].template["Resources"].values()
    synthesized["resource"] = resource
    synthesized["body"] = json.loads(resource["Properties"]["TemplateBody"])
    return synthesized


def of_type(template: Mapping[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def spoke_role(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (logical, role)
        for logical, role in of_type(template, "AWS::IAM::Role").items()
        if "spoke" in json.dumps(role["Properties"].get("RoleName", ""))
    ]
    return found


def policy_statements(template: dict[str, Any], role_logical: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for policy in of_type(template, "AWS::IAM::Policy").values():
        if {"Ref": role_logical} in policy["Properties"]["Roles"]:
            found += policy["Properties"]["PolicyDocument"]["Statement"]
    return found


def spoke_grants(template: dict[str, Any]) -> list[dict[str, Any]]:
    logical, _ = spoke_role(template)
    resolved: list[dict[str, Any]] = resolve(policy_statements(template, logical), SPOKE, {})
    return resolved


def actions(statements: list[dict[str, Any]]) -> set[str]:
    return {a for s in statements for a in as_list(s["Action"])}


def test_the_spoke_role_trusts_only_the_hub_function_roles_with_external_id_and_org(
    audit_spoke: dict[str, Any],
) -> None:
    _, role = spoke_role(spoke_template(audit_spoke))
    assert role["Properties"]["RoleName"] == "PodIdentityControlPlane-spoke-eu-west-1"
    assert role["Properties"]["MaxSessionDuration"] == 3600
    assert role["Properties"]["AssumeRolePolicyDocument"] == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Action": "sts:AssumeRole",  # no sts:TagSession: the hub sets no session tags
                "Effect": "Allow",
                "Principal": {"AWS": HUB_ROLES},
                "Condition": {
                    "StringEquals": {"aws:PrincipalOrgID": ORG, "sts:ExternalId": EXTERNAL_ID}
                },
            }
        ],
    }


def test_the_trusted_roles_are_the_ones_the_hub_stack_creates(
    audit_spoke: dict[str, Any], audit: dict[str, Any]
) -> None:
    hub = template_of(audit).to_json()
    created = {
        f"arn:aws:iam::{HUB}:role/{role['Properties']['RoleName']}"
        for role in of_type(hub, "AWS::IAM::Role").values()
        if "RoleName" in role["Properties"]
    }
    _, role = spoke_role(spoke_template(audit_spoke))
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert set(statement["Principal"]["AWS"]) == created


def test_only_the_hub_role_with_the_external_id_and_org_may_assume_it(
    audit_spoke: dict[str, Any],
) -> None:
    _, role = spoke_role(spoke_template(audit_spoke))
    trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    spoke_role_arn = f"arn:aws:iam::{SPOKE}:role/PodIdentityControlPlane-spoke-eu-west-1"
    good = {"sts:ExternalId": EXTERNAL_ID, "aws:PrincipalOrgID": ORG}

    def assume(principal: str, context: dict[str, str]) -> bool:
        request = Request("sts:AssumeRole", spoke_role_arn, principal, context)
        return decide(request, [], trust)

    for hub_role in HUB_ROLES:
        assert assume(hub_role, good)
    assert not assume(f"arn:aws:iam::{HUB}:role/Admin", good)  # another hub principal
    assert not assume(f"arn:aws:iam::{SPOKE}:role/PodIdentityControlPlane-reconcile", good)
    assert not assume(HUB_ROLES[0], {**good, "sts:ExternalId": "guessed"})
    assert not assume(HUB_ROLES[0], {"aws:PrincipalOrgID": ORG})  # no external id sent
    assert not assume(HUB_ROLES[0], {**good, "aws:PrincipalOrgID": "o-otherorgxyz"})
    actions_allowed = {
        a
        for a in ("sts:TagSession", "sts:AssumeRole")
        if decide(Request(a, spoke_role_arn, HUB_ROLES[0], good), [], trust)
    }
    assert actions_allowed == {"sts:AssumeRole"}


def test_the_spoke_role_touches_only_associations_podid_owns_and_roles_on_the_path(
    audit_spoke: dict[str, Any],
) -> None:
    grants = spoke_grants(spoke_template(audit_spoke))
    principal = f"arn:aws:iam::{SPOKE}:role/PodIdentityControlPlane-spoke-eu-west-1"
    association = f"arn:aws:eks:eu-west-1:{SPOKE}:podidentityassociation/blue/a-1"
    owned = {"aws:ResourceTag/pod-identity/managed-by": "PodIdentityControlPlane"}
    foreign = {"aws:ResourceTag/pod-identity/managed-by": "someone-else"}

    def may(action: str, resource: str, context: dict[str, str] | None = None) -> bool:
        return decide(Request(action, resource, principal, context or {}), grants)

    for action in ("eks:DeletePodIdentityAssociation", "eks:UpdatePodIdentityAssociation"):
        assert may(action, association, owned)
        assert not may(action, association, foreign)
        assert not may(action, association)  # untagged: made by hand
        # another region's associations are another spoke's business
        assert not may(action, association.replace("eu-west-1", "us-west-2"), owned)
    # tagging: only to keep or set this hub's owner tag
    assert may("eks:TagResource", association, owned)
    assert not may("eks:TagResource", association, foreign)
    claim = {**foreign, "aws:RequestTag/pod-identity/managed-by": "PodIdentityControlPlane"}
    assert may("eks:TagResource", association, claim)
    role = f"arn:aws:iam::{SPOKE}:role/pod-identity/payments"
    to_pods = {"iam:PassedToService": "pods.eks.amazonaws.com"}
    assert may("iam:PassRole", role, to_pods)
    assert not may("iam:PassRole", role, {"iam:PassedToService": "lambda.amazonaws.com"})
    assert not may("iam:PassRole", f"arn:aws:iam::{SPOKE}:role/Admin", to_pods)
    assert may("iam:GetRole", role)
    assert not may("iam:GetRole", f"arn:aws:iam::{SPOKE}:role/Admin")
    opted_in = {"iam:ResourceTag/pod-identity/managed-trust": "true"}
    assert not may("iam:UpdateAssumeRolePolicy", role, opted_in)  # audit: no IAM writes


def test_no_wildcard_resource_where_one_can_be_named(
    audit_spoke: dict[str, Any], enforce_spoke: dict[str, Any], stack_set: dict[str, Any]
) -> None:
    no_resource_level = {"eks:ListClusters", "tag:GetResources"}
    for template in (
        spoke_template(audit_spoke),
        spoke_template(enforce_spoke),
        stack_set["body"],
    ):
        for policy in of_type(template, "AWS::IAM::Policy").values():
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                if "*" in as_list(statement["Resource"]):
                    assert set(as_list(statement["Action"])) <= no_resource_level, statement


def test_repair_is_granted_in_enforce_only_and_plan_may_write_nothing(
    audit_spoke: dict[str, Any], enforce_spoke: dict[str, Any], plan_spoke: dict[str, Any]
) -> None:
    reads = {
        "eks:DescribeCluster",
        "eks:ListPodIdentityAssociations",
        "eks:DescribePodIdentityAssociation",
        "eks:ListClusters",
        "tag:GetResources",
        "iam:GetRole",
        "iam:ListRoleTags",
    }
    writes = {
        "eks:CreatePodIdentityAssociation",
        "eks:UpdatePodIdentityAssociation",
        "eks:DeletePodIdentityAssociation",
        "eks:TagResource",
        "eks:UntagResource",
        "iam:PassRole",
    }
    assert actions(spoke_grants(spoke_template(plan_spoke))) == reads
    assert actions(spoke_grants(spoke_template(audit_spoke))) == reads | writes
    enforce = spoke_grants(spoke_template(enforce_spoke))
    assert actions(enforce) == reads | writes | {"iam:UpdateAssumeRolePolicy"}
    (repair,) = [s for s in enforce if "iam:UpdateAssumeRolePolicy" in as_list(s["Action"])]
    assert as_list(repair["Action"]) == ["iam:UpdateAssumeRolePolicy"]
    assert repair["Condition"] == {
        "StringEquals": {"iam:ResourceTag/pod-identity/managed-trust": ["true", "harden"]}
    }
    assert repair["Resource"] == f"arn:aws:iam::{SPOKE}:role/pod-identity/*"


def forwarded(template: dict[str, Any]) -> dict[str, str]:
    """source of each forwarding rule's pattern ("schedule" for the heartbeat) -> its
    CloudFormation condition, if any."""
    found = {}
    for rule in of_type(template, "AWS::Events::Rule").values():
        pattern = rule["Properties"].get("EventPattern")
        found[pattern["source"][0] if pattern else "schedule"] = rule.get("Condition", "")
    return found


def test_iam_events_are_forwarded_from_us_east_1_only(
    audit_spoke: dict[str, Any], enforce_spoke: dict[str, Any], stack_set: dict[str, Any]
) -> None:
    # eu-west-1
    assert forwarded(spoke_template(audit_spoke)) == {"aws.eks": "", "schedule": ""}
    assert forwarded(spoke_template(enforce_spoke)) == {
        "aws.eks": "",
        "aws.iam": "",
        "schedule": "",
    }
    # the StackSet's one template decides per region: the IAM rule, its queue and the
    # queue's policy (which names the rule) exist only where the region is us-east-1
    body = stack_set["body"]
    rules = forwarded(body)
    assert rules["aws.eks"] == rules["schedule"] == ""
    condition = rules["aws.iam"]
    assert body["Conditions"][condition] == {"Fn::Equals": [{"Ref": "AWS::Region"}, "us-east-1"]}
    (iam_rule,) = [
        logical
        for logical, r in of_type(body, "AWS::Events::Rule").items()
        if r.get("Condition") == condition
    ]
    for logical, resource in body["Resources"].items():
        if logical != iam_rule and iam_rule in json.dumps(resource):
            assert resource.get("Condition") == condition, logical


def test_every_forwarding_target_has_an_encrypted_dead_letter_queue_and_puts_only_to_the_hub(
    audit_spoke: dict[str, Any], enforce_spoke: dict[str, Any], stack_set: dict[str, Any]
) -> None:
    for template in (spoke_template(audit_spoke), spoke_template(enforce_spoke), stack_set["body"]):
        queues = of_type(template, "AWS::SQS::Queue")
        rules = of_type(template, "AWS::Events::Rule")
        dead_letter_queues = set()
        for rule in rules.values():
            (target,) = rule["Properties"]["Targets"]
            assert target["Arn"] == BUS
            assert target["RetryPolicy"] == {
                "MaximumRetryAttempts": 8,
                # a CloudTrail event is kept 2 hours; a heartbeat until the next one
                "MaximumEventAgeInSeconds": 600
                if "ScheduleExpression" in rule["Properties"]
                else 7200,
            }
            (queue,) = [
                q for q in queues if target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0] == q
            ]
            assert queues[queue]["Properties"]["SqsManagedSseEnabled"] is True
            dead_letter_queues.add(queue)
            role = target["RoleArn"]["Fn::GetAtt"][0]
            assert policy_statements(template, role) == [
                {"Action": "events:PutEvents", "Effect": "Allow", "Resource": BUS}
            ]
            (trust,) = template["Resources"][role]["Properties"]["AssumeRolePolicyDocument"][
                "Statement"
            ]
            assert trust["Principal"] == {"Service": "events.amazonaws.com"}
            assert "aws:SourceAccount" in trust["Condition"]["StringEquals"]
        assert len(dead_letter_queues) == len(rules)  # one per target
        # every queue refuses plain HTTP
        for policy in of_type(template, "AWS::SQS::QueuePolicy").values():
            (deny,) = [
                s
                for s in policy["Properties"]["PolicyDocument"]["Statement"]
                if s["Effect"] == "Deny"
            ]
            assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert len(of_type(template, "AWS::SQS::QueuePolicy")) == len(queues)


def test_the_forwarding_rules_use_the_hubs_patterns_for_this_accounts_events(
    enforce_spoke: dict[str, Any],
) -> None:
    from functions.event_patterns import EKS_CHANGES, IAM_CHANGES

    patterns: dict[str, dict[str, Any]] = {}
    for rule in of_type(spoke_template(enforce_spoke), "AWS::Events::Rule").values():
        if "EventPattern" not in rule["Properties"]:
            continue  # the heartbeat (test_spoke_heartbeat.py)
        pattern = rule["Properties"]["EventPattern"]
        patterns[pattern["source"][0]] = pattern
        assert pattern["account"] == [SPOKE]
    for expected in (EKS_CHANGES, IAM_CHANGES):
        assert {k: v for k, v in patterns[expected["source"][0]].items() if k != "account"} == (
            expected
        )
    eks = EventPattern.load(json.dumps(patterns["aws.eks"]))
    iam = EventPattern.load(json.dumps(patterns["aws.iam"]))
    assert matches(
        eks,
        fixture_event(
            "eks_delete_pod_identity_association",
            CLUSTER="c",
            ASSOCIATION_ID="a-1",
            CALLER_ROLE="Admin",
            ACCOUNT=SPOKE,
        ),
    )
    assert matches(iam, fixture_event("iam_delete_role", ROLE_NAME="r", ACCOUNT=SPOKE))
    # another account's event, even if some bus let it in, is not forwarded
    assert not matches(iam, fixture_event("iam_delete_role", ROLE_NAME="r", ACCOUNT=HUB))


def test_the_stack_set_deploys_the_spoke_to_the_ou_in_every_region_and_new_accounts(
    stack_set: dict[str, Any],
) -> None:
    properties = stack_set["resource"]["Properties"]
    assert stack_set["resource"]["Type"] == "AWS::CloudFormation::StackSet"
    assert properties["PermissionModel"] == "SERVICE_MANAGED"
    assert properties["AutoDeployment"] == {"Enabled": True, "RetainStacksOnAccountRemoval": False}
    assert properties["StackInstancesGroup"] == [
        {
            "DeploymentTargets": {"OrganizationalUnitIds": ["ou-ab12-cdefgh34"]},
            "Regions": ["us-east-1", "eu-west-1"],
        }
    ]
    assert properties["Capabilities"] == ["CAPABILITY_NAMED_IAM"]
    body = stack_set["body"]
    # no bootstrap needed in target accounts, and one role per account and region
    assert "BootstrapVersion" not in body.get("Parameters", {})
    assert "Rules" not in body
    _, role = spoke_role(body)
    assert role["Properties"]["RoleName"] == {
        "Fn::Join": ["", ["PodIdentityControlPlane-spoke-", {"Ref": "AWS::Region"}]]
    }
    assert len(properties["TemplateBody"].encode()) <= 51_200


def test_bad_spoke_input_is_refused_with_what_to_do() -> None:
    with pytest.raises(ValueError, match=r"-c externalId=.*organizationId"):
        synth_spoke("eu-west-1", organizationId="", externalId="")
    with pytest.raises(ValueError, match="events must go to the hub's own bus"):
        synth_spoke("eu-west-1", hubEventBusArn=BUS.replace(HUB, SPOKE))
    with pytest.raises(ValueError, match="organizationId"):
        synth_spoke("eu-west-1", organizationId="my-org")
    with pytest.raises(ValueError, match="rolePath is '/'"):
        synth_spoke("eu-west-1", rolePath="/")
    stack_set = {**STACK_SET_CONTEXT, "spoke": "false"}
    with pytest.raises(ValueError, match="spokeRegions must include us-east-1"):
        synth_spoke("eu-west-1", **{**stack_set, "spokeRegions": "eu-west-1"})
    with pytest.raises(ValueError, match="not an OU id"):
        synth_spoke("eu-west-1", **{**stack_set, "spokeOrganizationalUnits": "prod"})


def test_cdk_nag_passes_on_the_spoke_with_written_reasons_and_really_runs(
    audit_spoke: dict[str, Any], stack_set: dict[str, Any]
) -> None:
    for synthesized in (audit_spoke, stack_set):
        assert synthesized["report"]["pluginReports"] == []
    found = acknowledgements(audit_spoke["app"])
    assert found
    for path, rule, reason in found:
        assert rule.startswith("AwsSolutions-"), path
        assert len(reason) >= 20, (path, rule)
    # a careless resource in the spoke still fails synth
    app = build_app({**cdk_json_context(), "spoke": "true", **SPOKE_CONTEXT})
    spoke = app.node.find_child("PodidSpoke")
    assert isinstance(spoke, cdk.Stack)
    sqs.Queue(spoke, "Careless")
    with pytest.raises(RuntimeError, match="AwsSolutions-SQS3"):
        app.synth()


def test_cfn_lint_finds_nothing_in_the_spoke_and_stack_set_templates(
    audit_spoke: dict[str, Any],
    enforce_spoke: dict[str, Any],
    stack_set: dict[str, Any],
    tmp_path: Path,
) -> None:
    paths = [
        Path(s["stacks"][name].template_full_path)
        for s, name in (
            (audit_spoke, "PodidSpoke"),
            (enforce_spoke, "PodidSpoke"),
            (stack_set, "PodidSpokeStackSet"),
        )
    ]
    body = tmp_path / "stack-set-body.json"
    body.write_text(json.dumps(stack_set["body"]))
    for path in (*paths, body):
        assert cfn_lint(path) == ""


def test_the_hub_bus_admits_only_the_organizations_accounts(
    audit: dict[str, Any], template: Template, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from tests.infra.conftest import synth

    # without an organization id the hub is as before: no bus policy, no spoke stacks
    assert template.find_resources("AWS::Events::EventBusPolicy") == {}
    assert "HubEventBusArn" not in template.to_json()["Outputs"]
    assert set(audit["stacks"]) == {"PodIdentityControlPlane", "PodIdentityControlPlane-IamEvents"}
    hub = template_of(synth(tmp_path_factory.mktemp("org"), organizationId=ORG))
    assert resolve(hub.to_json()["Outputs"]["HubEventBusArn"]["Value"], HUB, {}) == BUS
    (policy,) = hub.find_resources("AWS::Events::EventBusPolicy").values()
    statement = resolve(policy["Properties"]["Statement"], HUB, {})
    assert policy["Properties"]["EventBusName"] == "default"
    assert statement["Action"] == "events:PutEvents"
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": ORG}}
    assert statement["Resource"] == BUS
    put = Request("events:PutEvents", BUS, f"arn:aws:iam::{SPOKE}:role/forwarder")
    put_from_org = Request(put.action, put.resource, put.principal, {"aws:PrincipalOrgID": ORG})
    assert decide(put_from_org, [], [statement])
    assert not decide(put, [], [statement])
    assert not decide(
        Request(put.action, put.resource, put.principal, {"aws:PrincipalOrgID": "o-zzzzzzzzzz"}),
        [],
        [statement],
    )


@pytest.mark.parametrize("key", ["spoke", "spokeStackSet"])
def test_a_stack_switch_that_is_not_true_or_false_is_refused(key: str) -> None:
    from app import build_app

    with pytest.raises(ValueError, match=f"{key} must be true or false"):
        build_app({key: "yes"})
