"""Commands on associations: status, plan, wait."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli import checks, output, views
from cli.connection import connect
from cli.output import Format, OutputOption, TableOption

if TYPE_CHECKING:
    from functions.core.models import AssociationStatus, Declaration
    from functions.flows.services import Services


def status(  # noqa: PLR0917 - one parameter per command-line option
    cluster: Annotated[
        str | None, typer.Option(help="a cluster name, or account/region/name")
    ] = None,
    namespace: Annotated[str | None, typer.Option()] = None,
    account: Annotated[str | None, typer.Option(help="only clusters in this account")] = None,
    region: Annotated[str | None, typer.Option(help="only clusters in this region")] = None,
    state: Annotated[
        str | None, typer.Option(help="InSync, Pending, Drifted, Error, Conflict")
    ] = None,
    output_format: OutputOption = Format.TABLE,
    table: TableOption = None,
) -> None:
    """Associations and their state on every enrolled cluster, with the reason
    of any that is not in sync."""
    from functions.core.models import SyncState

    if state and state not in {s.value for s in SyncState}:
        output.fail(
            f"unknown state {state!r}: use one of {', '.join(s.value for s in SyncState)}", 2
        )
    svc = connect(table)
    rows = []
    for found in svc.repo.list_clusters():  # sorted by account, region, name
        if cluster not in (None, found.name, str(found.ref)):
            continue
        if account not in (None, found.account) or region not in (None, found.place.region):
            continue
        for key, item in sorted(svc.repo.association_statuses(found.ref).items()):
            if namespace not in (None, key.namespace) or state not in (None, item.state.value):
                continue
            rows.append(
                {
                    "cluster": key.cluster.name,
                    "account": key.cluster.account,
                    "region": key.cluster.region,
                    "namespace": key.namespace,
                    "serviceAccount": key.service_account,
                    "role": item.observed_role_arn,
                    "state": item.state.value,
                    "reason": item.reason,
                    "lastSyncedAt": item.last_synced_at.isoformat(),
                    "effectiveAt": item.effective_at.isoformat() if item.effective_at else None,
                    "declaration": item.declaration_id,
                    "associationId": item.association_id,
                    "ownedByPodid": item.owned,
                    # what a cross-account target role's trust must require (sts:ExternalId)
                    "targetRoleArn": item.observed.target_role_arn if item.observed else None,
                    "externalId": item.external_id,
                }
            )
    if output_format is Format.JSON:
        output.print_json(rows)
        return
    if not rows:
        filtered = cluster or namespace or state or account or region
        output.say("no associations recorded" + (" that match the filters" if filtered else ""))
        return
    output.console.print(views.associations_table(rows))


def plan(
    cluster: Annotated[str | None, typer.Option(help="only this cluster")] = None,
    table: TableOption = None,
) -> None:
    """What a reconcile would change, per cluster (nothing is written)."""
    from functions.flows.cluster_sync import preview

    svc = connect(table)
    fleet = checks.fleet_with(svc)
    clusters = [c for c in fleet.enrolled if cluster in (None, c.name, str(c.ref))]
    if cluster and not clusters:
        output.fail(f"cluster {cluster!r} is not enrolled (`podid cluster list` shows them)", 2)
    desired = fleet.desired
    rows = []
    for found in clusters:
        operations, blocked = preview(svc, found.ref, fleet.declarations, desired)
        for key, association_id in sorted(blocked.items()):
            output.warn(
                f"{key}: association {association_id} was not created by podid and is left "
                "alone (adopt: true on the declaration takes it over, in enforce mode)"
            )
        for op in operations:
            rows.append(
                {
                    "cluster": str(found.ref),
                    "operation": op.kind.value,
                    "serviceAccount": f"{op.key.namespace}/{op.key.service_account}",
                    "changes": list(op.changes),
                }
            )
    if rows:
        output.console.print(views.plan_table(rows))
    else:
        output.say("nothing to change: every cluster matches its declarations")
    for message in checks.conflict_messages(
        desired.conflicts, {d.id for d in fleet.declarations.valid}
    ):
        output.warn(message)


def wait(
    declaration_id: str,
    timeout: Annotated[float, typer.Option(help="seconds")] = 300,
    interval: Annotated[float, typer.Option(help="seconds between checks")] = 2,
    table: TableOption = None,
) -> None:
    """Block until a declaration is in sync on every target cluster; says when
    its credentials are effective. Exits 2 at once when it could never be, 3 on timeout."""
    from functions.core.models import SyncState

    svc = connect(table)
    declaration = _waitable(svc, declaration_id)
    deadline = time.monotonic() + timeout
    while True:
        states = _states(svc, declaration)
        if states and all(s is not None and s.state is SyncState.IN_SYNC for s in states.values()):
            for name, current in states.items():
                effective = current.effective_at if current else None
                output.say(
                    f"{name}: InSync, effective at {effective.isoformat() if effective else 'now'}"
                )
            return
        if time.monotonic() >= deadline:
            pending = {
                name: (
                    f"{s.state.value}" + (f" ({s.reason})" if s.reason else "")
                    if s
                    else "no status yet"
                )
                for name, s in states.items()
            } or {"(no target cluster)": "-"}
            output.fail(
                f"timed out after {timeout:.0f} s: "
                + ", ".join(f"{name}={value}" for name, value in pending.items()),
                3,
            )
        time.sleep(interval)


def _waitable(svc: Services, declaration_id: str) -> Declaration:
    """The declaration, or exit 2 with why waiting for it could never end."""
    from functions.core.models import Declaration
    from functions.dal.repository import parse_declaration

    item = svc.repo.get_declaration_item(declaration_id)
    if item is None:
        output.fail(f"no declaration {declaration_id!r}: `podid list` shows the declared ids", 2)
    parsed = parse_declaration(item)
    if not isinstance(parsed, Declaration):
        output.fail(
            f"declaration {declaration_id!r} is invalid, so it is never applied:\n  "
            + "\n  ".join(parsed),
            2,
        )
    fleet = checks.fleet_with(svc)
    for name in checks.missing_clusters(svc, parsed, fleet):
        output.fail(checks.missing_cluster_message(svc, parsed, name), 2)
    if checks.fleet_is_empty(parsed, fleet):
        if not parsed.target.clusters:
            output.fail(checks.empty_fleet_message(parsed), 2)
        output.warn(checks.empty_fleet_message(parsed))
    conflicts = checks.conflict_messages(fleet.desired.conflicts, [declaration_id])
    if conflicts:
        output.fail(
            f"{declaration_id!r} is never in sync while it conflicts: " + "; ".join(conflicts), 2
        )
    return parsed


def _states(svc: Services, declaration: Declaration) -> dict[str, AssociationStatus | None]:
    """Each target cluster's status for the declaration's key; named clusters
    count before they are enrolled (the declaration enrolls them)."""
    from functions.core.models import AssociationKey
    from functions.core.places import named_by

    recorded = svc.repo.list_clusters()
    enrolled = [c.ref for c in recorded if c.enrolled and declaration.target.matches(c)]
    # a named cluster not enrolled yet: where its name is recorded, else here
    pending = [
        ref
        for s in declaration.target.unmatched([c for c in recorded if c.enrolled])
        for ref in named_by(s, [svc.home])
    ]
    found: dict[str, Any] = {}
    for ref in sorted(set(enrolled) | set(pending)):
        key = AssociationKey(ref, declaration.namespace, declaration.service_account)
        found[str(ref)] = svc.repo.association_statuses(ref).get(key)
    return found
