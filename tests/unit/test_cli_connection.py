"""`connect()` builds the services from settings it makes: it reads the process
environment and the sandbox's state file, and edits neither os.environ nor
what the next command sees."""

from __future__ import annotations

import builtins
import io
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer import Exit

from cli.connection import SandboxState, connect, read_state, write_state
from functions.core.models import Mode
from functions.flows.services import Services

SANDBOX_KEY = "sandbox-operator-key"


def aws_clients(svc: Services) -> list[Any]:
    """The botocore clients the services call AWS with (the adapters keep them private)."""
    return [
        svc.repo._table.meta.client,
        svc.eks._eks,
        svc.iam._iam,
        svc.tokens._sts,
        svc.messenger._sqs,
    ]


@pytest.fixture
def listening() -> Iterator[int]:
    """A port that accepts connections: the state file names a live sandbox."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


@pytest.fixture
def sandbox_state(tmp_path: Path, listening: int, monkeypatch: pytest.MonkeyPatch) -> str:
    endpoint = f"http://127.0.0.1:{listening}"
    monkeypatch.setenv("PODID_HOME", str(tmp_path))
    (tmp_path / "sandbox.json").write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "environment": {
                    "AWS_ENDPOINT_URL": endpoint,
                    "AWS_ACCESS_KEY_ID": SANDBOX_KEY,
                    "AWS_SECRET_ACCESS_KEY": SANDBOX_KEY,
                    "AWS_REGION": "eu-west-1",
                    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
                    "TABLE_NAME": "podid-sandbox",
                    "RECONCILE_QUEUE_URL": f"{endpoint}/123456789012/reconcile.fifo",
                    "MODE": "enforce",
                },
            }
        )
    )
    return endpoint


@pytest.fixture
def shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """An operator's shell with no table and its own (real) AWS keys."""
    for name in ("TABLE_NAME", "RECONCILE_QUEUE_URL", "MODE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "shell-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "shell-secret")


def test_the_sandbox_is_reached_without_editing_the_environment(
    shell: None, sandbox_state: str
) -> None:
    before = dict(os.environ)
    # When a command connects to the running sandbox
    svc = connect(None)
    # Then the environment is as it was
    assert dict(os.environ) == before
    # and the services talk to the sandbox, with its keys, as its settings say
    assert svc.settings.table_name == "podid-sandbox"
    assert svc.settings.mode is Mode.ENFORCE
    assert svc.settings.aws_region == "eu-west-1"
    assert svc.settings.reconcile_queue_url == f"{sandbox_state}/123456789012/reconcile.fifo"
    for client in aws_clients(svc):
        assert client.meta.endpoint_url == sandbox_state
        assert client.meta.region_name == "eu-west-1"
        assert client._request_signer._credentials.access_key == SANDBOX_KEY


def test_a_table_and_queue_given_override_without_editing_the_environment(
    shell: None, sandbox_state: str
) -> None:
    before = dict(os.environ)
    svc = connect("podid-prod", queue_url="https://sqs.eu-west-1.amazonaws.com/1/q.fifo")
    assert dict(os.environ) == before
    assert svc.settings.table_name == "podid-prod"
    assert svc.settings.reconcile_queue_url == "https://sqs.eu-west-1.amazonaws.com/1/q.fifo"
    # a table named: the sandbox is not used, the shell's own account is
    assert svc.settings.mode is Mode.AUDIT
    for client in aws_clients(svc):
        assert client.meta.endpoint_url != sandbox_state
        assert client._request_signer._credentials.access_key == "shell-key"


def test_a_bad_environment_names_the_variable_and_changes_nothing(
    shell: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODE", "loud")
    before = dict(os.environ)
    with pytest.raises(Exit) as exited:
        connect("podid-prod")
    assert exited.value.exit_code == 2
    assert "MODE: Input should be 'plan', 'audit' or 'enforce'" in capsys.readouterr().err
    assert dict(os.environ) == before


def test_a_command_reading_the_state_while_sandbox_up_writes_it_never_removes_it(
    tmp_path: Path, listening: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PODID_HOME", str(tmp_path))
    state = SandboxState(os.getpid(), {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{listening}"})
    seen: list[SandboxState | None] = []
    real_open = io.open

    def reading_meanwhile(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(file, mode, *args, **kwargs)
        if "w" in mode:  # another shell's command, at the worst instant of the write
            seen.append(read_state())
        return handle

    monkeypatch.setattr(io, "open", reading_meanwhile)  # pathlib opens files through io.open
    monkeypatch.setattr(builtins, "open", reading_meanwhile)
    # When `podid sandbox up` publishes its state while another command reads it
    write_state(state)
    # Then that command saw no sandbox yet (not half a file it would remove as stale),
    # and the state is there for the next one
    assert seen == [None]
    assert read_state() == state
