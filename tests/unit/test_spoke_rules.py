"""The pure rules for reaching a spoke (functions.core.spokes): the role's name
per region, the session name STS accepts, and the settings that name them."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from functions.core.places import Place
from functions.core.spokes import (
    check_spoke_role_template,
    session_name,
    spoke_role_arn,
    spoke_role_name,
    spoke_role_template,
)
from functions.settings import Settings

IAM_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$", re.ASCII)


def test_the_spoke_stack_and_the_hub_name_the_same_role() -> None:
    # the spoke stack names its role from the hub's stack name; the hub is given
    # the template and fills in each region
    stack = "podid-production-control-plane-eu-central-hub"  # longer than 40
    template = check_spoke_role_template(spoke_role_template(stack))
    place = Place("444455556666", "ap-southeast-2")
    assert spoke_role_name(stack, place.region) == (
        "podid-production-control-plane-eu-centra-spoke-ap-southeast-2"
    )
    assert spoke_role_arn("aws", place, template) == (
        f"arn:aws:iam::444455556666:role/{spoke_role_name(stack, place.region)}"
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("podid-prod-reconcile", "podid-prod-reconcile"),
        ("a", "podid-a"),
        ("", "podid-"),
        ("fn name/with:odd*chars", "fn-name-with-odd-chars"),
        ("x" * 80, "x" * 64),
    ],
)
def test_session_names_are_what_sts_accepts(given: str, expected: str) -> None:
    assert session_name(given) == expected
    assert IAM_SESSION_NAME.fullmatch(session_name(given))


def test_spoke_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TABLE_NAME", "podid")
    monkeypatch.setenv("SPOKE_ROLE_NAME", "podid-spoke-{region}")
    monkeypatch.setenv("SPOKE_EXTERNAL_ID", "hub:7f3a/prod")
    monkeypatch.setenv("ORGANIZATION_ID", "o-a1b2c3d4e5")
    settings = Settings.model_validate({})
    assert settings.spoke_role_name == "podid-spoke-{region}"
    assert settings.spoke_external_id == "hub:7f3a/prod"
    assert settings.organization_id == "o-a1b2c3d4e5"


def test_empty_spoke_settings_mean_a_single_account_deployment() -> None:
    settings = Settings(
        table_name="podid", spoke_role_name="", spoke_external_id="", organization_id=""
    )
    assert (settings.spoke_role_name, settings.spoke_external_id, settings.organization_id) == (
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("spoke_role_name", "podid-spoke", "must contain {region} exactly once"),
        ("spoke_role_name", "{region}-{region}", "must contain {region} exactly once"),
        ("spoke_role_name", "podid/spoke-{region}", "not a valid IAM role name"),
        ("spoke_role_name", "podid-{account}-{region}", "not a valid IAM role name"),
        ("spoke_role_name", "p" * 50 + "-{region}", "longer than 64 characters"),
        ("spoke_external_id", "x", "2-1224 characters"),
        ("spoke_external_id", "x" * 1225, "2-1224 characters"),
        ("spoke_external_id", "has space", "2-1224 characters"),
        ("organization_id", "o-short", "not an AWS Organizations id"),
        ("organization_id", "O-A1B2C3D4E5", "not an AWS Organizations id"),
    ],
)
def test_a_bad_spoke_setting_fails_naming_the_rule(field: str, value: str, says: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(table_name="podid", **{field: value})
    problem = raised.value.errors()[0]
    assert problem["loc"] == (field,)
    assert says in problem["msg"]
