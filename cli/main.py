"""`podid`: the operator CLI. It works against the local sandbox when one is
running (`podid sandbox up`), else against the account of the standard AWS
environment or profile, with the stack's table (`--table` or TABLE_NAME)."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from functions.core import records
from functions.core.errors import describe_validation_error
from functions.core.fleet import expand
from functions.core.models import Declaration, SyncState
from functions.core.planner import plan as make_plan
from functions.flows.cluster_sync import observe
from functions.flows.services import Services

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
sandbox_app = typer.Typer(help="The embedded local stack (no AWS account needed).")
app.add_typer(sandbox_app, name="sandbox")
console = Console()
errors = Console(stderr=True)
STATE = Path(os.environ.get("PODID_HOME", Path.home() / ".podid")) / "sandbox.json"
TableOption = Annotated[
    str | None, typer.Option("--table", help="the stack's table (TableName output)")
]
OutputOption = Annotated[str, typer.Option("--output", "-o", help="table or json")]


def fail(message: str, code: int = 1) -> NoReturn:
    errors.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def connect(table: str | None) -> Services:
    """Point the functions' settings at the sandbox or the given table."""
    from functions.flows import services as services_module

    if STATE.exists() and not table:
        state = json.loads(STATE.read_text())
        os.environ.update(state["environment"])
    if table:
        os.environ["TABLE_NAME"] = table
    if not os.environ.get("TABLE_NAME"):
        fail(
            "no table: start `podid sandbox up`, or pass --table / set TABLE_NAME to the stack's TableName"
        )
    services_module.reset()
    return services_module.services()


def load_records(path: Path) -> list[dict[str, Any]]:
    text = path.read_text()
    documents = (
        list(yaml.safe_load_all(text)) if path.suffix in (".yaml", ".yml") else [json.loads(text)]
    )
    found: list[dict[str, Any]] = []
    for document in documents:
        found += document if isinstance(document, list) else [document]
    return found


@app.command()
def declare(  # noqa: PLR0917 - one parameter per command-line option
    declaration_id: Annotated[str | None, typer.Argument(help="declaration id")] = None,
    namespace: Annotated[str | None, typer.Option()] = None,
    service_account: Annotated[str | None, typer.Option("--service-account")] = None,
    role_arn: Annotated[str | None, typer.Option("--role-arn")] = None,
    target_role_arn: Annotated[str | None, typer.Option("--target-role-arn")] = None,
    cluster: Annotated[list[str] | None, typer.Option("--cluster", help="repeatable")] = None,
    fleet: Annotated[str | None, typer.Option()] = None,
    disable_session_tags: Annotated[bool, typer.Option("--disable-session-tags")] = False,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="key=value, repeatable")] = None,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="session policy JSON file")
    ] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="YAML or JSON records")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
    table: TableOption = None,
) -> None:
    """Declare (create or replace) associations, validated before anything is written."""
    if file is not None:
        raw_records = load_records(file)
    else:
        record: dict[str, Any] = {
            "id": declaration_id,
            "namespace": namespace,
            "serviceAccount": service_account,
            "roleArn": role_arn,
            "target": {"clusters": cluster or [], **({"fleet": fleet} if fleet else {})},
        }
        if target_role_arn:
            record["targetRoleArn"] = target_role_arn
        if disable_session_tags:
            record["disableSessionTags"] = True
        if tag:
            malformed = [t for t in tag if "=" not in t]
            if malformed:
                fail(f"--tag takes key=value, got {malformed[0]!r}", 2)
            record["tags"] = dict(t.split("=", 1) for t in tag)
        if policy is not None:
            record["policy"] = policy.read_text()
        raw_records = [{k: v for k, v in record.items() if v is not None}]
    declarations = []
    for index, record in enumerate(raw_records):
        try:
            declarations.append(Declaration.model_validate(record))
        except ValidationError as error:
            where = record.get("id") or f"record {index + 1}"
            fail(f"{where} is invalid:\n  " + "\n  ".join(describe_validation_error(error)), 2)
    if dry_run:
        for declaration in declarations:
            console.print_json(json.dumps(declaration.to_wire()))
        console.print(
            f"[yellow]dry run[/yellow]: {len(declarations)} declaration(s) valid, nothing written"
        )
        return
    svc = connect(table)
    for declaration in declarations:
        current = svc.repo.get_declaration_item(declaration.id)
        version = int(current.get("version", 0)) if current else 0
        saved = svc.repo.put_declaration(declaration.model_copy(update={"version": version}))
        console.print(
            f"declared [bold]{saved.id}[/bold] (version {saved.version}) as {records.declaration_pk(saved.id)}"
        )


@app.command()
def plan(
    cluster: Annotated[str | None, typer.Option(help="only this cluster")] = None,
    table: TableOption = None,
) -> None:
    """What a reconcile would change, per cluster (nothing is written)."""
    svc = connect(table)
    declarations = svc.repo.load_declarations()
    clusters = [c for c in svc.repo.list_clusters() if c.enrolled and cluster in (None, c.name)]
    if cluster and not clusters:
        fail(f"cluster {cluster!r} is not enrolled")
    desired = expand(declarations.valid, clusters, managed_by=svc.settings.owner)
    view = Table(title="plan")
    for column in ("cluster", "operation", "namespace/service account", "changes"):
        view.add_column(column)
    count = 0
    for found in clusters:
        wanted = set(desired.for_cluster(found.name)) | desired.held_keys(found.name)
        actual = observe(
            svc, found.name, svc.repo.association_statuses(found.name), relevant=wanted
        )
        for op in make_plan(
            desired.for_cluster(found.name),
            actual,
            owner=svc.settings.owner,
            hold=desired.held_keys(found.name),
        ):
            view.add_row(
                found.name,
                op.kind.value,
                f"{op.key.namespace}/{op.key.service_account}",
                ", ".join(op.changes),
            )
            count += 1
    console.print(view if count else "nothing to change: every cluster matches its declarations")
    for conflict in desired.conflicts:
        errors.print(f"[yellow]conflict[/yellow]: {conflict.message}")


@app.command()
def status(
    cluster: Annotated[str | None, typer.Option()] = None,
    namespace: Annotated[str | None, typer.Option()] = None,
    state: Annotated[
        str | None, typer.Option(help="InSync, Pending, Drifted, Error, Conflict")
    ] = None,
    output: OutputOption = "table",
    table: TableOption = None,
) -> None:
    """Associations and their state on every enrolled cluster."""
    if state and state not in {s.value for s in SyncState}:
        fail(f"unknown state {state!r}: use one of {', '.join(s.value for s in SyncState)}", 2)
    svc = connect(table)
    rows = []
    for found in svc.repo.list_clusters():
        if cluster not in (None, found.name):
            continue
        for key, item in sorted(svc.repo.association_statuses(found.name).items()):
            if namespace not in (None, key.namespace) or state not in (None, item.state.value):
                continue
            rows.append(
                {
                    "cluster": key.cluster,
                    "namespace": key.namespace,
                    "serviceAccount": key.service_account,
                    "role": item.observed_role_arn,
                    "state": item.state.value,
                    "reason": item.reason,
                    "lastSyncedAt": item.last_synced_at.isoformat(),
                    "effectiveAt": item.effective_at.isoformat() if item.effective_at else None,
                    "declaration": item.declaration_id,
                }
            )
    if output == "json":
        console.print_json(json.dumps(rows))
        return
    view = Table(title="associations")
    for column in ("cluster", "namespace", "service account", "role", "state", "last sync"):
        view.add_column(column)
    for row in rows:
        colour = (
            "green"
            if row["state"] == "InSync"
            else "yellow"
            if row["state"] == "Drifted"
            else "red"
        )
        view.add_row(
            row["cluster"],
            row["namespace"],
            row["serviceAccount"],
            row["role"] or "-",
            f"[{colour}]{row['state']}[/{colour}]",
            str(row["lastSyncedAt"])[:19],
        )
    console.print(view)


@app.command()
def reconcile(
    cluster: Annotated[str | None, typer.Option()] = None,
    deep: Annotated[bool, typer.Option("--deep", help="describe every association")] = False,
    table: TableOption = None,
) -> None:
    """Run a reconcile pass now (what the schedule does), with progress."""
    from functions.events import ClusterMessage
    from functions.flows.discovery import discover
    from functions.flows.reconcile import reconcile_cluster

    svc = connect(table)
    declarations = svc.repo.load_declarations()
    with console.status("discovering clusters"):
        clusters, found = discover(svc, declarations.valid, deep=deep)
    names = [c.name for c in clusters if c.enrolled and cluster in (None, c.name)]
    failed = 0
    for name in names:
        with console.status(f"reconciling {name}"):
            result = reconcile_cluster(
                svc,
                ClusterMessage(cluster=name, reason="cli", deep=deep),
                declarations=declarations,
            )
        applied = len(result.applied) if result else 0
        problems = result.failed if result else {}
        failed += len(problems)
        console.print(
            f"{name}: {applied} change(s)"
            + (f", [red]{len(problems)} failed[/red]" if problems else "")
        )
    console.print(f"enrolled {found.enrolled or 'none'}, forgotten {found.forgotten or 'none'}")
    if failed:
        raise typer.Exit(1)


@app.command()
def wait(
    declaration_id: str,
    timeout: Annotated[float, typer.Option(help="seconds")] = 300,
    interval: Annotated[float, typer.Option(help="seconds between checks")] = 2,
    table: TableOption = None,
) -> None:
    """Block until a declaration is in sync on every target cluster; says when
    its credentials are effective."""
    svc = connect(table)
    deadline = time.monotonic() + timeout
    while True:
        item = svc.repo.get_declaration_item(declaration_id)
        if item is None:
            fail(f"no declaration {declaration_id!r}")
            return
        declaration = records.declaration_from_item(item)
        targets = [
            c for c in svc.repo.list_clusters() if c.enrolled and declaration.target.matches(c)
        ]
        states = {}
        for found in targets:
            key = (found.name, declaration.namespace, declaration.service_account)
            current = svc.repo.association_statuses(found.name).get(key)  # type: ignore[call-overload]
            states[found.name] = current
        ready = targets and all(
            s is not None and s.state is SyncState.IN_SYNC for s in states.values()
        )
        if ready:
            for name, current in states.items():
                console.print(
                    f"{name}: InSync, effective at {current.effective_at.isoformat() if current and current.effective_at else 'now'}"
                )
            return
        if time.monotonic() >= deadline:
            pending = {n: (s.state.value if s else "no status yet") for n, s in states.items()} or {
                "(no target cluster)": "-"
            }
            fail(
                f"timed out after {timeout:.0f} s: "
                + ", ".join(f"{n}={v}" for n, v in pending.items()),
                3,
            )
        time.sleep(interval)


@app.command()
def findings(
    role: Annotated[str | None, typer.Option(help="a role ARN")] = None,
    output: OutputOption = "table",
    table: TableOption = None,
) -> None:
    """The latest trust-policy findings per role."""
    svc = connect(table)
    roles = [role] if role else svc.repo.roles_with_findings()
    latest = [r for r in (svc.repo.latest_finding(arn) for arn in roles) if r is not None]
    if output == "json":
        console.print_json(json.dumps([r.to_wire() for r in latest]))
        return
    view = Table(title="trust findings")
    for column in ("role", "action", "code", "severity", "message"):
        view.add_column(column)
    if not latest:
        console.print("no findings: no declared role's trust policy has been analysed yet")
        return
    for record in latest:
        for finding in record.findings or ():
            view.add_row(
                record.role_arn,
                record.action.value,
                finding.code,
                finding.severity.value,
                finding.message,
            )
        if not record.findings:
            view.add_row(record.role_arn, record.action.value, "-", "-", "no findings")
    console.print(view)


@app.command(name="import")
def import_(
    cluster: str,
    dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
    table: TableOption = None,
) -> None:
    """Adopt the existing associations of a cluster as declarations."""
    svc = connect(table)
    declarations = []
    for summary in svc.eks.list_associations(cluster):
        association = svc.eks.describe_association(cluster, summary.association_id)
        if association is None:
            continue
        spec = association.spec
        identifier = re.sub(
            r"[^A-Za-z0-9._-]",
            "-",
            f"{cluster}.{summary.key.namespace}.{summary.key.service_account}",
        )[:128]
        record = {
            "id": identifier,
            "namespace": summary.key.namespace,
            "serviceAccount": summary.key.service_account,
            "roleArn": spec.role_arn,
            "disableSessionTags": spec.disable_session_tags,
            "target": {"clusters": [cluster]},
            "tags": {
                k: v for k, v in spec.tags.items() if not k.startswith(("aws:", "pod-identity/"))
            },
        }
        if spec.target_role_arn:
            record["targetRoleArn"] = spec.target_role_arn
        if spec.policy:
            record["policy"] = spec.policy
        declarations.append(Declaration.model_validate(record))
    for declaration in declarations:
        if dry_run:
            console.print_json(json.dumps(declaration.to_wire()))
        else:
            svc.repo.put_declaration(declaration)
            console.print(f"imported {declaration.id}")
    console.print(
        f"{len(declarations)} association(s) of {cluster} {'would be' if dry_run else 'were'} imported"
    )


@app.command()
def schema() -> None:
    """The JSON Schema of a declaration record, for writing records directly."""
    console.print_json(json.dumps(Declaration.model_json_schema(by_alias=True)))


@sandbox_app.command("up")
def sandbox_up(
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

    quiet(functions=not verbose)

    if STATE.exists():
        fail(f"a sandbox seems to be running ({STATE}); `podid sandbox down` first")
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    with Sandbox(mode=mode) as box:
        keys = (
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
        )
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
        console.print(world)
        STATE.parent.mkdir(parents=True, exist_ok=True)
        STATE.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    # other shells act as a person at the console, not as the functions
                    "environment": {k: os.environ[k] for k in keys if k in os.environ}
                    | {"AWS_ACCESS_KEY_ID": OPERATOR_KEY, "AWS_SECRET_ACCESS_KEY": OPERATOR_KEY},
                }
            )
        )
        console.print(
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
            STATE.unlink(missing_ok=True)
    console.print("sandbox down")


@sandbox_app.command("down")
def sandbox_down() -> None:
    """Stop the sandbox started by `podid sandbox up`."""
    if not STATE.exists():
        fail("no sandbox is running")
    pid = int(json.loads(STATE.read_text())["pid"])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        STATE.unlink(missing_ok=True)
        fail("the sandbox process was gone; state cleaned up")
    console.print(f"asked sandbox process {pid} to stop")


def main() -> None:  # console script entry point
    app()


if __name__ == "__main__":
    main()
