"""Which roles podid may bind is a deployment decision, stated in so many words,
and the IAM policies say the same thing as the functions' settings."""

import json
from typing import Any

import pytest

from app import build_app
from infra.config import DeployConfig
from tests.infra.conftest import template_of
from tests.infra.test_stack import as_list, statements


def test_synth_refuses_the_whole_account_as_role_scope_unless_opted_into() -> None:
    # Given no role path, or "/" without the opt-in
    for context in ({}, {"rolePath": "/"}, {"rolePath": "/", "allowAnyRolePath": False}):
        # Then synth stops before building anything, saying how to choose
        with pytest.raises(ValueError, match=r"-c rolePath=/pod-identity/.*allowAnyRolePath=true"):
            build_app({"homeRegion": "eu-west-1", **context})
    # a vague yes is not an opt-in
    with pytest.raises(ValueError, match="allowAnyRolePath must be true or false"):
        build_app({"homeRegion": "eu-west-1", "rolePath": "/", "allowAnyRolePath": "yes"})
    # When the operator says so in so many words, "/" is accepted
    for opt_in in (True, "true"):
        config = DeployConfig.model_validate({"rolePath": "/", "allowAnyRolePath": opt_in})
        assert config.role_path == "/"
    assert DeployConfig.model_validate({"rolePath": "/pod-identity/"}).role_path == "/pod-identity/"


def test_every_role_permission_and_the_functions_settings_carry_the_role_path(
    audit: dict[str, Any], enforce: dict[str, Any]
) -> None:
    for synthesized in (audit, enforce):
        template = template_of(synthesized)
        by_action: dict[str, list[str]] = {}
        for statement in statements(template):
            for action in as_list(statement["Action"]):
                if action.startswith("iam:"):
                    by_action.setdefault(action, []).append(json.dumps(statement["Resource"]))
        expected = {"iam:PassRole", "iam:GetRole", "iam:ListRoleTags"}
        if synthesized is enforce:
            expected.add("iam:UpdateAssumeRolePolicy")
        assert set(by_action) == expected
        for action, resources in by_action.items():
            for resource in resources:
                assert resource.endswith(':role/pod-identity/*"]]}'), (action, resource)
        functions = template.find_resources("AWS::Lambda::Function").values()
        for function in functions:
            assert function["Properties"]["Environment"]["Variables"]["ROLE_PATH"] == (
                "/pod-identity/"
            )


def test_the_functions_read_the_role_path_they_are_given(monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.settings import Settings

    monkeypatch.setenv("ROLE_PATH", "/pod-identity/")
    assert Settings(table_name="podid").role_path == "/pod-identity/"
