"""Commands on clusters: reconcile, cluster enroll, cluster list.

The CLI never changes a cluster's associations itself: it queues a reconcile
on the per-cluster FIFO queue, whose consumer is the one writer per cluster."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from cli import output, views
from cli.connection import connect
from cli.output import Format, OutputOption, TableOption

if TYPE_CHECKING:
    from functions.core.models import AssociationStatus, Cluster, ReconcileReceipt
    from functions.core.places import ClusterRef
    from functions.flows.services import Services

MAX_CA_FILE_BYTES = 64 * 1024
QueueOption = Annotated[
    str | None,
    typer.Option(
        "--queue-url",
        help="the reconcile queue (stack output ReconcileQueueUrl; default RECONCILE_QUEUE_URL)",
    ),
]
_NO_QUEUE = (
    "no reconcile queue: pass --queue-url or set RECONCILE_QUEUE_URL to the stack output "
    "ReconcileQueueUrl (`podid sandbox up` provides it)"
)


def resolve(svc: Services, text: str) -> ClusterRef:
    """A cluster the user named: "account/region/name", a cluster ARN, or a name
    (the recorded cluster of that name, else this account and region's)."""
    from functions.core.places import ClusterRef, is_full_ref

    if is_full_ref(text):
        try:
            return ClusterRef.parse(text)
        except ValueError as error:
            output.fail(str(error), 2)
    matches = sorted(c.ref for c in svc.repo.list_clusters() if c.name == text)
    if len(matches) > 1:
        output.fail(
            f"cluster name {text!r} is in several accounts or regions "
            f"({', '.join(map(str, matches))}): name one as account/region/name",
            2,
        )
    return matches[0] if matches else ClusterRef.at(svc.home, text)


def queue_reconciles(
    svc: Services, names: list[ClusterRef], *, reason: str, deep: bool = False
) -> str:
    """Queue a reconcile of each cluster; returns the request id its receipts carry."""
    from functions.events import ClusterMessage
    from functions.flows.reconcile import request_reconcile

    if not svc.settings.reconcile_queue_url:
        # request_reconcile would run them here: a second writer per cluster
        output.fail(_NO_QUEUE, 2)
    request_id = uuid.uuid4().hex
    request_reconcile(
        svc,
        [
            ClusterMessage(cluster=str(name), reason=reason, deep=deep, request_id=request_id)
            for name in names
        ],
    )
    return request_id


def reconcile(  # noqa: PLR0917 - one parameter per command-line option
    cluster: Annotated[str | None, typer.Option(help="only this cluster")] = None,
    deep: Annotated[bool, typer.Option("--deep", help="describe every association")] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="wait until the queued reconciles have run")
    ] = False,
    timeout: Annotated[float, typer.Option(help="seconds, with --wait")] = 300,
    interval: Annotated[float, typer.Option(help="seconds between checks, with --wait")] = 2,
    queue_url: QueueOption = None,
    table: TableOption = None,
) -> None:
    """Run discovery now (enroll tagged clusters, forget deleted ones) and queue
    a reconcile of each enrolled cluster, as the schedule does."""
    from functions.flows.discovery import discover

    svc = connect(table, queue_url=queue_url)
    if not svc.settings.reconcile_queue_url:
        output.fail(_NO_QUEUE, 2)
    declarations = svc.repo.load_declarations()
    with output.console.status("discovering clusters"):
        clusters, found = discover(svc, declarations.valid, deep=deep, record_spokes=False)
    names = [c.ref for c in clusters if c.enrolled and cluster in (None, c.name, str(c.ref))]
    if cluster and not names:
        enrolled = ", ".join(str(c.ref) for c in clusters if c.enrolled) or "none"
        output.fail(f"cluster {cluster!r} is not enrolled (enrolled: {enrolled})", 2)
    output.say(
        f"discovery: enrolled {', '.join(map(str, found.enrolled)) or 'none'}, "
        f"forgotten {', '.join(map(str, found.forgotten)) or 'none'}"
    )
    for place, reason in sorted(found.unreachable.items()):
        output.errors.print(
            f"[yellow]not reached with these credentials[/yellow] {place}:", Text(reason)
        )
    if not names:
        output.say("no enrolled cluster: nothing to reconcile")
        return
    request_id = queue_reconciles(svc, names, reason="cli", deep=deep)
    output.say(f"queued a reconcile of {', '.join(map(str, names))}")
    if not wait:
        output.say("`podid status` shows the results once they have run (or use --wait)")
        return
    wait_for_reconciles(svc, names, request_id, timeout=timeout, interval=interval)


def wait_for_reconciles(
    svc: Services, names: list[ClusterRef], request_id: str, *, timeout: float, interval: float
) -> None:
    """Each queued reconcile records a receipt when it has run. Exit 3 on
    timeout, 1 when an association ended in Error."""
    deadline = time.monotonic() + timeout
    pending: set[ClusterRef] = set(names)
    done: dict[ClusterRef, ReconcileReceipt] = {}
    with output.console.status(f"waiting for the reconcile of {', '.join(map(str, names))}"):
        while pending:
            for name in sorted(pending):
                receipt = svc.repo.receipt(name, request_id)
                if receipt is not None:
                    done[name] = receipt
                    pending.discard(name)
            if not pending:
                break
            if time.monotonic() >= deadline:
                output.fail(
                    f"timed out after {timeout:.0f} s: the reconcile of "
                    f"{', '.join(map(str, sorted(pending)))} has not run yet (queued or retrying); "
                    "`podid status` shows the last results",
                    3,
                )
            time.sleep(interval)
    failed = False
    for name in names:
        receipt = done[name]
        states = _states(list(svc.repo.association_statuses(name).values()))
        output.say(f"{name}: reconciled, {receipt.applied} change(s); {states}")
        for key, reason in sorted(receipt.failed.items()):
            failed = True
            output.errors.print(f"  [red]{key}[/red]:", Text(reason))
    if failed:
        raise typer.Exit(1)


def _states(statuses: list[AssociationStatus]) -> str:
    if not statuses:
        return "no association"
    counts: dict[str, int] = {}
    for current in statuses:
        counts[current.state.value] = counts.get(current.state.value, 0) + 1
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))


def enroll(  # noqa: PLR0917 - one parameter per command-line option
    name: Annotated[str, typer.Argument(help="the cluster's name (EKS, or self-managed)")],
    self_managed: Annotated[
        bool,
        typer.Option(
            "--self-managed",
            help="a Kubernetes cluster that is not EKS: give --endpoint, --ca-file and "
            "--node-role-arn",
        ),
    ] = False,
    endpoint: Annotated[
        str | None, typer.Option(help="self-managed: the API server URL (https://host[:port])")
    ] = None,
    ca_file: Annotated[
        Path | None,
        typer.Option("--ca-file", help="self-managed: PEM CA bundle of the API server"),
    ] = None,
    node_role_arn: Annotated[
        str | None,
        typer.Option(
            "--node-role-arn",
            help="self-managed: the IAM role the node agents run as (what the associated "
            "roles must trust)",
        ),
    ] = None,
    fleet: Annotated[
        str | None, typer.Option(help="self-managed: the fleet it joins (no EKS tag to read)")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="validate and show the record, write nothing")
    ] = False,
    queue_url: QueueOption = None,
    table: TableOption = None,
) -> None:
    """Enroll an EKS cluster by hand (it stays enrolled whatever its tags), or a
    self-managed cluster (--self-managed), then queue its reconcile."""
    if self_managed:
        saved = _enroll_self_managed(
            name,
            endpoint,
            ca_file,
            node_role_arn,
            fleet,
            dry_run=dry_run,
            table=table,
            queue_url=queue_url,
        )
    else:
        given = [
            flag
            for flag, value in (
                ("--endpoint", endpoint),
                ("--ca-file", ca_file),
                ("--node-role-arn", node_role_arn),
                ("--fleet", fleet),
                ("--dry-run", dry_run or None),
            )
            if value is not None
        ]
        if given:
            output.fail(
                f"{', '.join(given)} only go with --self-managed: an EKS cluster's endpoint, CA "
                "and fleet tag come from EKS itself",
                2,
            )
        saved = _enroll_eks(name, table=table, queue_url=queue_url)
    if saved is None:
        return
    svc = connect(table, queue_url=queue_url)
    if not svc.settings.reconcile_queue_url:
        output.say(
            "its declarations apply on the next scheduled reconcile; pass --queue-url (stack "
            "output ReconcileQueueUrl) to queue one now"
        )
        return
    queue_reconciles(svc, [saved.ref], reason="cli enroll")
    output.say(f"queued a reconcile of {saved.ref}; `podid status --cluster {saved.ref}` shows it")


def _enroll_eks(name: str, *, table: str | None, queue_url: str | None) -> Cluster | None:
    from functions.core.places import Unreachable
    from functions.dal.repository import StaleWrite
    from functions.flows.discovery import Discovery, named_clusters, refresh_cluster

    svc = connect(table, queue_url=queue_url)
    ref = resolve(svc, name)
    try:
        described = svc.eks_in(ref.place).describe_cluster(ref)
    except Unreachable as error:
        output.fail(str(error), 2)
    if described is None:
        output.fail(
            f"cluster {name!r} does not exist in EKS (DescribeCluster in account "
            f"{ref.account} region {ref.region} found none): check the name and the region, "
            "or enrol a cluster that is not EKS with --self-managed",
            2,
        )
    existing = svc.repo.get_cluster(ref)
    if existing is not None and existing.self_managed:
        output.fail(
            f"cluster {name!r} is recorded as self-managed, but EKS has a cluster of that name: "
            "the push refuses it until the record is removed",
            2,
        )
    if existing is not None and existing.enrolled and existing.enrolled_by == "cli":
        output.say(f"cluster {name} is already enrolled (by cli)")
        return None
    named = named_clusters(svc, svc.repo.load_declarations().valid)
    try:
        saved = refresh_cluster(svc, ref, named, existing, Discovery(), by_cli=True)
    except StaleWrite:
        output.fail(
            f"cluster {name!r} was being recorded by a reconcile too; run the command again"
        )
    if saved is None:
        output.fail(f"cluster {name!r} was deleted while being enrolled", 2)
    output.say(f"enrolled {saved.name} (by cli, fleet {saved.fleet or '-'})")
    return saved


def _enroll_self_managed(
    name: str,
    endpoint: str | None,
    ca_file: Path | None,
    node_role_arn: str | None,
    fleet: str | None,
    *,
    dry_run: bool,
    table: str | None,
    queue_url: str | None,
) -> Cluster | None:
    from pydantic import ValidationError

    from functions.core.errors import describe_validation_error
    from functions.core.self_managed import self_managed_cluster
    from functions.dal.repository import StaleWrite

    missing = [
        flag
        for flag, value in (
            ("--endpoint", endpoint),
            ("--ca-file", ca_file),
            ("--node-role-arn", node_role_arn),
        )
        if not value
    ]
    if missing or ca_file is None or endpoint is None or node_role_arn is None:
        output.fail(f"--self-managed needs {', '.join(missing)}", 2)
    try:
        ca_pem = ca_file.read_bytes()[: MAX_CA_FILE_BYTES + 1]
    except OSError as error:
        output.fail(f"--ca-file {ca_file}: {error.strerror or error}", 2)
    if len(ca_pem) > MAX_CA_FILE_BYTES:
        output.fail(f"--ca-file {ca_file} is larger than {MAX_CA_FILE_BYTES} bytes", 2)
    svc = connect(table, queue_url=queue_url)
    identity = svc.tokens.caller_identity()
    try:
        cluster = self_managed_cluster(
            name=name,
            endpoint=endpoint,
            ca_pem=ca_pem,
            node_role_arn=node_role_arn,
            account=identity.account,
            partition=identity.partition,
            region=svc.settings.aws_region,
            fleet=fleet,
        )
    except ValidationError as error:
        output.fail(
            f"cluster {name} is invalid:\n  " + "\n  ".join(describe_validation_error(error)), 2
        )
    except ValueError as error:
        output.fail(f"cluster {name} is invalid: {error}", 2)
    found = svc.eks.describe_cluster(cluster.ref)
    if found is not None:
        output.fail(
            f"EKS has a cluster named {name!r} ({found.arn}): a self-managed cluster needs a "
            "name EKS does not use in this account and region (the push would refuse it)",
            2,
        )
    existing = svc.repo.get_cluster(cluster.ref)
    if existing is not None and not existing.self_managed:
        output.fail(f"cluster {name!r} is already recorded as an EKS cluster", 2)
    record = cluster.model_copy(update={"version": existing.version if existing else 0})
    if dry_run:
        output.print_json(record.to_wire())
        output.say("dry run: nothing written")
        return None
    if existing is not None and existing.model_copy(update={"version": 0}) == record.model_copy(
        update={"version": 0}
    ):
        output.say(f"cluster {name} is already enrolled (self-managed, {record.endpoint})")
        return None
    try:
        saved = svc.repo.save_cluster(record)
    except StaleWrite:
        output.fail(f"cluster {name!r} changed while being enrolled; run the command again")
    output.say(
        f"enrolled {saved.name} (self-managed, {saved.endpoint}, node role "
        f"{saved.node_role_arn}, fleet {saved.fleet or '-'})"
    )
    return saved


def list_clusters(output_format: OutputOption = Format.TABLE, table: TableOption = None) -> None:
    """The clusters the control plane knows, enrolled or not, and why."""
    svc = connect(table)
    rows = [c.to_wire() for c in svc.repo.list_clusters()]
    if output_format is Format.JSON:
        output.print_json(rows)
    elif rows:
        output.console.print(views.clusters_table(rows))
    else:
        output.say("no cluster known yet: `podid reconcile` runs discovery")
