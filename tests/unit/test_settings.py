import pytest
from pydantic import ValidationError

from functions.core.models import Mode
from functions.settings import Settings


def test_settings_parse_lists_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TABLE_NAME", "podid")
    monkeypatch.setenv("SELF_ROLE_ARNS", "arn:aws:iam::1:role/a, arn:aws:iam::1:role/b,")
    settings = Settings.model_validate({})
    assert settings.self_role_arns == ("arn:aws:iam::1:role/a", "arn:aws:iam::1:role/b")
    assert settings.mode is Mode.AUDIT
    assert settings.webhook_target.name == "pod-identity-associations"


@pytest.mark.parametrize(
    ("name", "value"),
    [("MODE", "repair-everything"), ("REPAIR_LIMIT", "0"), ("TABLE_NAME", "")],
)
def test_a_bad_deployment_fails_at_cold_start(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv("TABLE_NAME", "podid")
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings.model_validate({})


def test_settings_read_their_variables_in_any_case_and_arguments_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the deployment's variables, one in lower case, and an unrelated one
    monkeypatch.setenv("TABLE_NAME", "podid")
    monkeypatch.setenv("repair_limit", "7")
    monkeypatch.setenv("ENROLL_NAMED_CLUSTERS", "true")
    monkeypatch.setenv("PODID_SOMETHING_ELSE", "ignored")
    # When settings are read from the environment, or given one value explicitly
    from_environment = Settings.model_validate({})
    given = Settings(table_name="other", repair_limit=2)
    # Then each field takes its variable, and an argument wins over it
    assert (from_environment.table_name, from_environment.repair_limit) == ("podid", 7)
    assert from_environment.enroll_named_clusters is True
    assert (given.table_name, given.repair_limit) == ("other", 2)
    assert given.enroll_named_clusters is True
