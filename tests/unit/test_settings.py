import pytest
from pydantic import ValidationError

from functions.core.models import Mode
from functions.settings import Settings


def test_settings_parse_lists_and_defaults(monkeypatch):
    monkeypatch.setenv("TABLE_NAME", "podid")
    monkeypatch.setenv("SELF_ROLE_ARNS", "arn:aws:iam::1:role/a, arn:aws:iam::1:role/b,")
    settings = Settings()
    assert settings.self_role_arns == ("arn:aws:iam::1:role/a", "arn:aws:iam::1:role/b")
    assert settings.mode is Mode.AUDIT
    assert settings.webhook_target.name == "pod-identity-associations"


@pytest.mark.parametrize(
    ("name", "value"),
    [("MODE", "repair-everything"), ("REPAIR_LIMIT", "0"), ("TABLE_NAME", "")],
)
def test_a_bad_deployment_fails_at_cold_start(monkeypatch, name, value):
    monkeypatch.setenv("TABLE_NAME", "podid")
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()
