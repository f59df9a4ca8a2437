"""Commands on clusters: reconcile, cluster enroll, cluster list.

The CLI never changes a cluster's associations itself: it queues a reconcile
on the per-cluster FIFO queue, whose consumer is the one writer per cluster."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from cli import output, views
from cli.connection import connect
from cli.output import Format, OutputOption, TableOption
from functions.core.models import AssociationStatus, SyncState

if TYPE_CHECKING:
    from functions.flows.services import Services

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
# Approximate queue counts can read 0 for a moment while a message is still
# there: the queue counts as drained only after this many zero reads in a row.
_DRAINED_READS = 2


def queue_reconciles(svc: Services, names: list[str], *, reason: str, deep: bool = False) -> int:
    from functions.events import ClusterMessage
    from functions.flows.reconcile import request_reconcile

    if not svc.settings.reconcile_queue_url:
        # request_reconcile would run them here: a second writer per cluster
        output.fail(_NO_QUEUE, 2)
    return request_reconcile(
        svc, [ClusterMessage(cluster=name, reason=reason, deep=deep) for name in names]
    )


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
        clusters, found = discover(svc, declarations.valid, deep=deep)
    names = [c.name for c in clusters if c.enrolled and cluster in (None, c.name)]
    if cluster and not names:
        enrolled = ", ".join(c.name for c in clusters if c.enrolled) or "none"
        output.fail(f"cluster {cluster!r} is not enrolled (enrolled: {enrolled})", 2)
    output.say(
        f"discovery: enrolled {', '.join(found.enrolled) or 'none'}, "
        f"forgotten {', '.join(found.forgotten) or 'none'}"
    )
    if not names:
        output.say("no enrolled cluster: nothing to reconcile")
        return
    requested_at = datetime.now(UTC)
    queue_reconciles(svc, names, reason="cli", deep=deep)
    output.say(f"queued a reconcile of {', '.join(names)}")
    if not wait:
        output.say("`podid status` shows the results once they have run (or use --wait)")
        return
    wait_for_reconciles(svc, names, requested_at, timeout=timeout, interval=interval)


def wait_for_reconciles(
    svc: Services, names: list[str], requested_at: datetime, *, timeout: float, interval: float
) -> None:
    """A cluster is done when each of its association statuses was synced after
    the request. A reconcile that changes nothing rewrites no status, so once
    the queue has drained (every message taken and deleted) the rest are done
    too. Exit 3 on timeout, 1 when an association ended in Error."""
    deadline = time.monotonic() + timeout
    pending, done = set(names), {}
    zero_reads = 0
    with output.console.status(f"waiting for the reconcile of {', '.join(names)}"):
        while pending:
            for name in sorted(pending):
                statuses = list(svc.repo.association_statuses(name).values())
                if statuses and all(s.last_synced_at >= requested_at for s in statuses):
                    done[name] = statuses
                    pending.discard(name)
            zero_reads = zero_reads + 1 if pending and _queue_is_empty(svc) else 0
            if zero_reads >= _DRAINED_READS:
                for name in pending:
                    done[name] = list(svc.repo.association_statuses(name).values())
                pending.clear()
            if not pending:
                break
            if time.monotonic() >= deadline:
                output.fail(
                    f"timed out after {timeout:.0f} s: the reconcile of "
                    f"{', '.join(sorted(pending))} has not run yet (queued or retrying); "
                    "`podid status` shows the last results",
                    3,
                )
            time.sleep(interval)
    failed = False
    for name in names:
        output.say(f"{name}: {_summary(done[name], requested_at)}")
        for current in done[name]:
            if current.state is SyncState.ERROR:
                failed = True
                output.errors.print(
                    f"  [red]{current.key.namespace}/{current.key.service_account}[/red]:",
                    Text(current.reason or "error"),
                )
    if failed:
        raise typer.Exit(1)


def _summary(statuses: list[AssociationStatus], requested_at: datetime) -> str:
    if not statuses:
        return "reconciled, no association"
    counts: dict[str, int] = {}
    for current in statuses:
        counts[current.state.value] = counts.get(current.state.value, 0) + 1
    changed = sum(1 for s in statuses if s.last_synced_at >= requested_at)
    states = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    return f"reconciled, {changed} of {len(statuses)} association(s) changed; {states}"


def _queue_is_empty(svc: Services) -> bool:
    from functions.aws import clients

    queue = svc.settings.reconcile_queue_url
    attributes = clients.client("sqs", svc.settings.aws_region).get_queue_attributes(
        QueueUrl=queue,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return not any(int(value) for value in attributes.values())


def enroll(
    name: Annotated[str, typer.Argument(help="the EKS cluster's name")],
    queue_url: QueueOption = None,
    table: TableOption = None,
) -> None:
    """Enroll an EKS cluster by hand (it stays enrolled whatever its tags), then
    queue its reconcile."""
    from functions.dal.repository import StaleWrite
    from functions.flows.discovery import Discovery, named_clusters, refresh_cluster

    svc = connect(table, queue_url=queue_url)
    if svc.eks.describe_cluster(name) is None:
        output.fail(
            f"cluster {name!r} does not exist in EKS (DescribeCluster in "
            f"{svc.settings.aws_region} found none): check the name and the region",
            2,
        )
    existing = svc.repo.get_cluster(name)
    if existing is not None and existing.enrolled and existing.enrolled_by == "cli":
        output.say(f"cluster {name} is already enrolled (by cli)")
        return
    named = named_clusters(svc.repo.load_declarations().valid)
    try:
        saved = refresh_cluster(svc, name, named, existing, Discovery(), by_cli=True)
    except StaleWrite:
        output.fail(
            f"cluster {name!r} was being recorded by a reconcile too; run the command again"
        )
    if saved is None:
        output.fail(f"cluster {name!r} was deleted while being enrolled", 2)
    output.say(f"enrolled {saved.name} (by cli, fleet {saved.fleet or '-'})")
    if not svc.settings.reconcile_queue_url:
        output.say(
            "its declarations apply on the next scheduled reconcile; pass --queue-url (stack "
            "output ReconcileQueueUrl) to queue one now"
        )
        return
    queue_reconciles(svc, [saved.name], reason="cli enroll")
    output.say(
        f"queued a reconcile of {saved.name}; `podid status --cluster {saved.name}` shows it"
    )


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
