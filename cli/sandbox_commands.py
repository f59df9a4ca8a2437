"""`podid sandbox up / down / demo`: the embedded local stack."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cli import output
from cli.connection import SandboxState, read_state, state_path, write_state

# what another shell needs to reach the sandbox's account and queues
_SHARED_ENVIRONMENT = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ACCOUNT_ID_ENDPOINT_MODE",
    "TABLE_NAME",
    "PUSH_QUEUE_URL",
    "RECONCILE_QUEUE_URL",
    "DEAD_LETTER_QUEUE_URL",
    "KUBE_ENDPOINT_TEMPLATE",
    "SELF_ROLE_ARNS",
    "MODE",
    "ROLE_PATH",
    "TARGET_ROLE_ACCOUNTS",
    # the sandbox runs as a hub: where the spokes are, as the stack tells its functions
    "ACCOUNT_ID",
    "ORGANIZATION_ID",
    "SPOKE_ROLE_NAME",
    "SPOKE_EXTERNAL_ID",
    "SPOKE_HEARTBEAT_RULE",
)


def up(
    mode: Annotated[str, typer.Option(help="audit or enforce")] = "enforce",
    schedule_seconds: Annotated[float, typer.Option(help="schedule interval")] = 60,
    clusters: Annotated[
        str, typer.Option(help="clusters to create, name=fleet, comma-separated")
    ] = "blue=prod,green=prod,dev=staging",
    roles: Annotated[
        str, typer.Option(help="Pod Identity roles to create, comma-separated")
    ] = "payments-api,orders-worker",
    verbose: Annotated[bool, typer.Option(help="show the functions' JSON logs")] = False,
) -> None:
    """Start the sandbox and keep it running (Ctrl-C or `podid sandbox down` stops it)."""
    from sandbox.stack import OPERATOR_KEY, Sandbox, quiet

    if mode not in ("audit", "enforce"):
        output.fail(f"--mode {mode!r}: use audit or enforce", 2)
    quiet(functions=not verbose)
    state = state_path()
    if read_state() is not None:
        output.fail(f"a sandbox is running ({state}); `podid sandbox down` first")
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    kube_dir = kubeconfig_dir()
    with Sandbox(mode=mode, kubeconfig_dir=kube_dir) as box:
        world = Table(title="sandbox account 123456789012 (moto)")
        world.add_column("resource")
        world.add_column("name")
        world.add_column("detail")
        for spec in filter(None, clusters.split(",")):
            name, _, fleet = spec.partition("=")
            box.add_cluster(name.strip(), fleet=fleet.strip() or None)
            world.add_row("EKS cluster", name, f"fleet {fleet or '-'}")
        for name in filter(None, roles.split(",")):
            world.add_row("IAM role", name.strip(), box.add_role(name.strip()))
        box.pump()
        box.schedule()
        box.pump()
        output.console.print(world)
        _print_kubeconfigs(kube_dir, list(box.apis))
        write_state(
            SandboxState(
                os.getpid(),
                # other shells act as a person at the console, not as the functions
                {k: os.environ[k] for k in _SHARED_ENVIRONMENT if k in os.environ}
                | {"AWS_ACCESS_KEY_ID": OPERATOR_KEY, "AWS_SECRET_ACCESS_KEY": OPERATOR_KEY},
            )
        )
        output.console.print(
            f"sandbox up: AWS on {box.endpoint}; this shell keeps it running;"
            " run `podid status` in another shell, `podid sandbox down` or Ctrl-C stops it"
        )
        next_schedule = time.monotonic()
        try:
            while not stopping:
                if time.monotonic() >= next_schedule:
                    box.schedule()
                    next_schedule = time.monotonic() + schedule_seconds
                box.pump()
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            state.unlink(missing_ok=True)
            for name in list(box.apis):  # their CA and key die with this sandbox
                (kube_dir / f"{name}.kubeconfig").unlink(missing_ok=True)
    output.console.print("sandbox down")


def kubeconfig_dir() -> Path:
    """$PODID_HOME/kubeconfig: one admin kubeconfig per sandbox cluster."""
    return state_path().parent / "kubeconfig"


def _print_kubeconfigs(directory: Path, clusters: list[str]) -> None:
    table = Table(title="kubectl: one kubeconfig per cluster (TLS with the sandbox CA, admin)")
    table.add_column("cluster")
    table.add_column("kubeconfig")
    for name in clusters:
        table.add_row(name, str(directory / f"{name}.kubeconfig"))
    output.console.print(table)
    if clusters:
        example = directory / f"{clusters[0]}.kubeconfig"
        output.console.print(
            f"e.g. KUBECONFIG={example} kubectl get configmap -n kube-system"
            " pod-identity-associations -o yaml"
        )


def down() -> None:
    """Stop the sandbox started by `podid sandbox up`."""
    state = read_state()  # a stale one is removed and said
    if state is None:
        output.fail("no sandbox is running")
    try:
        os.kill(state.pid, signal.SIGTERM)
    except ProcessLookupError:
        state_path().unlink(missing_ok=True)
        output.fail("the sandbox process was gone; state cleaned up")
    output.say(f"asked sandbox process {state.pid} to stop")


def demo() -> None:
    """The narrated scenario of `make demo`: declare, sync, tamper, heal, credentials."""
    from sandbox import demo as scenario

    raise typer.Exit(scenario.main())
