"""Lambda SnapStart, opted into with -c snapStart=true: every function publishes a
version with SnapStart, and everything that invokes a function (stream, queues,
EventBridge rules, the schedule, asynchronous retries) invokes the version's
alias, so no event is handled by an unpublished $LATEST that skips the snapshot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from tests.infra.conftest import cfn_lint, synth, template_of

HANDLERS = {
    f"functions.handlers.{name}.handler"
    for name in ("sync", "trust_guard", "reconcile", "webhook_push")
}


@pytest.fixture(scope="module")
def snap(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return synth(tmp_path_factory.mktemp("snap"), snapStart="true")


def referenced(value: Any) -> str:
    """The logical id a Ref or Fn::GetAtt points to."""
    if "Ref" in value:
        return str(value["Ref"])
    return str(value["Fn::GetAtt"][0])


def invokes_alias(value: Any, aliases: set[str]) -> bool:
    """A Ref to an alias, or a function name qualified with it (`<name>:live`)."""
    if "Ref" in value:
        return value["Ref"] in aliases
    if "Fn::Join" in value:
        return bool(value["Fn::Join"][1][-1] == ":live")
    return False


def test_every_function_publishes_a_snapstart_version_behind_one_alias(
    snap: dict[str, Any],
) -> None:
    template = template_of(snap)
    functions = template.find_resources("AWS::Lambda::Function")
    ours = {k: f for k, f in functions.items() if f["Properties"].get("Handler") in HANDLERS}
    assert {f["Properties"]["Handler"] for f in ours.values()} == HANDLERS
    for function in ours.values():
        assert function["Properties"]["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    versions = template.find_resources("AWS::Lambda::Version")
    assert sorted(referenced(v["Properties"]["FunctionName"]) for v in versions.values()) == sorted(
        ours
    )
    aliases = template.find_resources("AWS::Lambda::Alias")
    assert len(aliases) == len(ours)
    for alias in aliases.values():
        assert alias["Properties"]["Name"] == "live"
        assert referenced(alias["Properties"]["FunctionVersion"]) in versions


def test_everything_that_invokes_a_function_invokes_its_alias(snap: dict[str, Any]) -> None:
    template = template_of(snap)
    aliases = set(template.find_resources("AWS::Lambda::Alias"))
    functions = set(template.find_resources("AWS::Lambda::Function"))
    # the stream and both queues
    mappings = template.find_resources("AWS::Lambda::EventSourceMapping")
    assert len(mappings) == 3
    for mapping in mappings.values():
        assert invokes_alias(mapping["Properties"]["FunctionName"], aliases)
    # the CloudTrail rules and the schedule, and the permission each one needs
    rules = template.find_resources("AWS::Events::Rule")
    lambda_targets = [
        target
        for rule in rules.values()
        for target in rule["Properties"].get("Targets", [])
        if "Ref" in target["Arn"] or "Fn::GetAtt" in target["Arn"]
        if referenced(target["Arn"]) in aliases | functions
    ]
    assert len(lambda_targets) == 4
    assert all(invokes_alias(t["Arn"], aliases) for t in lambda_targets)
    permissions = template.find_resources(
        "AWS::Lambda::Permission", {"Properties": {"Principal": "events.amazonaws.com"}}
    )
    assert permissions
    for permission in permissions.values():
        assert invokes_alias(permission["Properties"]["FunctionName"], aliases)
    # events that failed after Lambda's retries are kept for the alias too
    configs = template.find_resources("AWS::Lambda::EventInvokeConfig")
    assert len(configs) == 2
    for config in configs.values():
        # the alias's own qualifier: the 8th field of its ARN
        select = config["Properties"]["Qualifier"]["Fn::Select"]
        assert select[0] == 7
        assert select[1]["Fn::Split"][1]["Ref"] in aliases


def test_without_the_choice_nothing_is_published(template: Template) -> None:
    assert template.find_resources("AWS::Lambda::Alias") == {}
    for function in template.find_resources("AWS::Lambda::Function").values():
        assert "SnapStart" not in function["Properties"]


def test_cfn_lint_finds_nothing_with_snapstart(snap: dict[str, Any]) -> None:
    # (cdk-nag ran in the fixture's synth, which raises on a violation)
    assert snap["report"]["pluginReports"] == []
    for stack in snap["stacks"].values():
        assert cfn_lint(stack.template_full_path) == ""


@pytest.mark.parametrize("value", ["yes", "1", "on"])
def test_only_true_or_false_is_a_choice(tmp_path: Path, value: str) -> None:
    with pytest.raises(Exception, match="snapStart must be true or false"):
        synth(tmp_path, snapStart=value)
