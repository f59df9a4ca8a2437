"""Which account the CLI talks to: the local sandbox when its state file
names a live one, else the standard AWS environment with the stack's table."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cli import output

if TYPE_CHECKING:
    from functions.aws.clients import Access
    from functions.flows.services import Services

_PROBE_SECONDS = 1.0


def state_path() -> Path:
    """Where `podid sandbox up` writes how to reach it (read at call time: PODID_HOME)."""
    home = os.environ.get("PODID_HOME") or str(Path.home() / ".podid")
    return Path(home) / "sandbox.json"


@dataclass(frozen=True)
class SandboxState:
    pid: int
    environment: dict[str, str]

    @property
    def endpoint(self) -> str | None:
        return self.environment.get("AWS_ENDPOINT_URL")


def write_state(state: SandboxState) -> None:
    """Publish the state in one rename: a command reading it meanwhile sees no file or
    the whole file, never a half-written one that read_state would remove as stale."""
    path = state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.{os.getpid()}")
    staged.write_text(json.dumps({"pid": state.pid, "environment": state.environment}))
    os.replace(staged, path)


def read_state() -> SandboxState | None:
    """The running sandbox, or None. A state file left by a sandbox that is
    gone is removed, and the user is told."""
    path = state_path()
    if not path.exists():
        return None
    try:
        raw: Any = json.loads(path.read_text())
        state = SandboxState(
            int(raw["pid"]), {str(k): str(v) for k, v in raw["environment"].items()}
        )
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        stale = f"it is not a sandbox state file ({error!r})"
    else:
        found = why_stale(state)
        if found is None:
            return state
        stale = found
    path.unlink(missing_ok=True)
    output.warn(f"removed the stale sandbox state {path}: {stale}")
    return None


def why_stale(state: SandboxState) -> str | None:
    """Why the state names a stopped sandbox, or None when it is alive."""
    try:
        os.kill(state.pid, 0)
    except ProcessLookupError:
        return f"its process {state.pid} is gone"
    except PermissionError:
        pass  # alive, another user's: the endpoint decides
    endpoint = state.endpoint
    if endpoint is None:
        return "it names no endpoint (AWS_ENDPOINT_URL)"
    parts = urlsplit(endpoint)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or 80), timeout=_PROBE_SECONDS
        ):
            return None
    except OSError as error:
        return f"its endpoint {endpoint} refuses connections ({error.strerror or error})"


def connect(table: str | None, *, queue_url: str | None = None) -> Services:
    """The functions' services on the sandbox or the given table, from settings
    built here: the process environment is read, never edited."""
    from pydantic import ValidationError

    from functions.core.errors import describe_validation_error
    from functions.flows import services as services_module
    from functions.settings import Settings

    state = None if table else read_state()
    environment = dict(os.environ) | (state.environment if state else {})
    if table:
        environment["TABLE_NAME"] = table
    if queue_url:
        environment["RECONCILE_QUEUE_URL"] = queue_url
    if not environment.get("TABLE_NAME"):
        output.fail(
            "no table: start `podid sandbox up`, or pass --table / set TABLE_NAME to the "
            "stack output TableName"
        )
    try:
        settings = Settings.from_environment(environment)
    except ValidationError as error:
        # settings come from the environment: name the variables, not the fields
        problems = [_as_variable(problem) for problem in describe_validation_error(error)]
        output.fail("the environment is not a valid configuration:\n  " + "\n  ".join(problems), 2)
    services_module.reset()  # clients made for another endpoint or account are not reused
    return services_module.build_services(settings, _access(state) if state else None)


def _access(state: SandboxState) -> Access:
    """The sandbox's endpoint, and the operator's keys its state file names."""
    from functions.aws.clients import Access

    given = state.environment
    return Access(
        endpoint_url=given.get("AWS_ENDPOINT_URL"),
        access_key_id=given.get("AWS_ACCESS_KEY_ID"),
        secret_access_key=given.get("AWS_SECRET_ACCESS_KEY"),
    )


def _as_variable(problem: str) -> str:
    """'table_name: ...' -> 'TABLE_NAME: ...' (settings are read from these)."""
    field, _, rest = problem.partition(":")
    return f"{field.upper()}:{rest}"
