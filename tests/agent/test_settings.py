"""Agent settings: flags over PODID_AGENT_* variables, each value converted to its
field's type, and a bad value refused with the name the user wrote it under."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from node_agent import settings
from node_agent.settings import AgentSettings, SettingsError, parse_args

# sets PODID_AGENT_<NAME> for each name=value given
SetEnv = Callable[..., None]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> SetEnv:
    for name in list(__import__("os").environ):
        if name.startswith(settings.ENV_PREFIX):
            monkeypatch.delenv(name)

    def set_(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(settings.ENV_PREFIX + name.upper(), value)

    return set_


def refusal(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        parse_args(argv)
    assert exited.value.code == 2
    return capsys.readouterr().err


def test_every_type_is_read_from_the_environment(env: SetEnv) -> None:
    env(
        cluster_name="blue",
        binds="127.0.0.1:8080, [::1]:8080",
        cache_size="500",
        upstream_budget_seconds="1.25",
        local_validation="yes",
        region="eu-west-1",
    )
    found = parse_args([])
    assert found.cluster_name == "blue"
    assert found.binds == ("127.0.0.1:8080", "[::1]:8080")
    assert found.cache_size == 500
    assert found.upstream_budget_seconds == 1.25
    assert found.local_validation is True
    assert found.region == "eu-west-1"


def test_flags_override_the_environment(env: SetEnv) -> None:
    env(cluster_name="blue", cache_size="500", binds="127.0.0.1:1")
    found = parse_args(["--cluster-name=green", "--cache-size=7", "--bind=127.0.0.1:2"])
    assert (found.cluster_name, found.cache_size, found.binds) == ("green", 7, ("127.0.0.1:2",))


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("cache_size", "lots", "PODID_AGENT_CACHE_SIZE: 'lots' is not a whole number"),
        ("cache_size", "2.5", "PODID_AGENT_CACHE_SIZE: '2.5' is not a whole number"),
        ("drain_seconds", "soon", "PODID_AGENT_DRAIN_SECONDS: 'soon' is not a number"),
        # NaN compares false with every bound, so no range check would catch it
        (
            "new_identities_per_second",
            "nan",
            "PODID_AGENT_NEW_IDENTITIES_PER_SECOND: 'nan' is not a finite number",
        ),
        # a typo must not silently turn the feature off
        ("local_validation", "ture", "PODID_AGENT_LOCAL_VALIDATION: 'ture' is not a boolean"),
        ("log_level", "LOUD", "log_level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ],
)
def test_a_bad_value_names_its_variable(
    env: SetEnv, capsys: pytest.CaptureFixture[str], name: str, value: str, says: str
) -> None:
    env(cluster_name="blue", **{name: value})
    assert says in refusal(capsys, [])


def test_a_bad_flag_is_refused_by_its_flag_name(
    env: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "--cache-size: invalid int value: 'x'" in refusal(
        capsys, ["--cluster-name=blue", "--cache-size=x"]
    )
    assert "'nope' is not host:port" in refusal(capsys, ["--cluster-name=blue", "--bind=nope"])


def test_typed_values_from_code_are_kept_and_wrong_types_refused() -> None:
    found = AgentSettings.create(cluster_name="blue", drain_seconds=2, region=None, binds=["a:1"])
    assert (found.drain_seconds, found.region, found.binds) == (2.0, None, ("a:1",))
    with pytest.raises(SettingsError, match="cache_size: True is not a whole number"):
        AgentSettings.create(cluster_name="blue", cache_size=True)
    with pytest.raises(SettingsError, match="unknown settings: colour"):
        AgentSettings.create(cluster_name="blue", colour="red")


def test_every_field_has_a_converter_and_a_variable() -> None:
    names = {f.name for f in dataclasses.fields(AgentSettings)}
    assert set(settings._CONVERTERS) == names
    environ = {settings.env_name(n): "x" for n in names}
    assert set(settings.from_environment(environ)) == names
