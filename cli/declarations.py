"""Commands on declarations: declare, delete, list, import, schema."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli import checks, output, views
from cli.connection import connect
from cli.output import Format, OutputOption, TableOption

if TYPE_CHECKING:
    from functions.core.fleet import DesiredState
    from functions.core.models import (
        AssociationStatus,
        Cluster,
        Declaration,
        FindingRecord,
    )
    from functions.flows.services import Services

ExistingFile: dict[str, Any] = {"exists": True, "dir_okay": False, "readable": True}


def load_records(path: Path) -> list[dict[str, Any]]:
    """The records of a YAML (one per document, or lists) or JSON file."""
    import yaml

    text = path.read_text()
    try:
        documents = (
            list(yaml.safe_load_all(text))
            if path.suffix in (".yaml", ".yml")
            else [json.loads(text)]
        )
    except (yaml.YAMLError, json.JSONDecodeError) as error:
        output.fail(
            f"{path} is not valid {'YAML' if path.suffix != '.json' else 'JSON'}: {error}", 2
        )
    found: list[Any] = []
    for document in documents:
        found += document if isinstance(document, list) else [document]
    for index, record in enumerate(found):
        if not isinstance(record, dict):
            output.fail(
                f"{path}: record {index + 1} is a {type(record).__name__}, not a mapping of "
                "declaration fields (see `podid schema`)",
                2,
            )
    return found


def validated(raw_records: list[dict[str, Any]]) -> list[Declaration]:
    from pydantic import ValidationError

    from functions.core.errors import describe_validation_error
    from functions.core.models import Declaration

    declarations = []
    for index, record in enumerate(raw_records):
        try:
            declarations.append(Declaration.model_validate(record))
        except ValidationError as error:
            where = record.get("id") or f"record {index + 1}"
            output.fail(
                f"{where} is invalid:\n  " + "\n  ".join(describe_validation_error(error)), 2
            )
    ids = [d.id for d in declarations]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        output.fail(f"id {repeated[0]!r} is declared more than once in this input", 2)
    return declarations


def declare(  # noqa: PLR0917 - one parameter per command-line option
    declaration_id: Annotated[str | None, typer.Argument(help="declaration id")] = None,
    namespace: Annotated[str | None, typer.Option()] = None,
    service_account: Annotated[str | None, typer.Option("--service-account")] = None,
    role_arn: Annotated[str | None, typer.Option("--role-arn")] = None,
    role_name: Annotated[
        str | None,
        typer.Option("--role-name", help="[path/]name: that role in each cluster's account"),
    ] = None,
    target_role_arn: Annotated[str | None, typer.Option("--target-role-arn")] = None,
    cluster: Annotated[list[str] | None, typer.Option("--cluster", help="repeatable")] = None,
    fleet: Annotated[str | None, typer.Option()] = None,
    account: Annotated[
        list[str] | None, typer.Option("--account", help="narrow the target, repeatable")
    ] = None,
    region: Annotated[
        list[str] | None, typer.Option("--region", help="narrow the target, repeatable")
    ] = None,
    ou: Annotated[
        list[str] | None,
        typer.Option("--ou", help="narrow to an OU and the OUs below it, repeatable"),
    ] = None,
    disable_session_tags: Annotated[bool, typer.Option("--disable-session-tags")] = False,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="key=value, repeatable")] = None,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="session policy JSON file", **ExistingFile)
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="YAML or JSON records", **ExistingFile)
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
    table: TableOption = None,
) -> None:
    """Declare (create or replace) associations, validated before anything is
    written; warns when it conflicts with another declaration."""
    from functions.core import records

    if file is not None:
        raw_records = load_records(file)
    else:
        record: dict[str, Any] = {
            "id": declaration_id,
            "namespace": namespace,
            "serviceAccount": service_account,
            "roleArn": role_arn,
            "roleName": role_name,
            "target": {
                "clusters": cluster or [],
                **({"fleet": fleet} if fleet else {}),
                **({"accounts": account} if account else {}),
                **({"regions": region} if region else {}),
                **({"organizationalUnits": ou} if ou else {}),
            },
        }
        if target_role_arn:
            record["targetRoleArn"] = target_role_arn
        if disable_session_tags:
            record["disableSessionTags"] = True
        if tag:
            malformed = [t for t in tag if "=" not in t]
            if malformed:
                output.fail(f"--tag takes key=value, got {malformed[0]!r}", 2)
            record["tags"] = dict(t.split("=", 1) for t in tag)
        if policy is not None:
            record["policy"] = policy.read_text()
        raw_records = [{k: v for k, v in record.items() if v is not None}]
    declarations = validated(raw_records)
    if dry_run:
        for declaration in declarations:
            output.print_json(declaration.to_wire())
        output.console.print(
            f"[yellow]dry run[/yellow]: {len(declarations)} declaration(s) valid, nothing written"
        )
        return
    svc = connect(table)
    # said before writing; written anyway: the table records the conflict as state
    warnings = checks.warnings_for(svc, declarations)
    for warning in warnings:
        output.warn(warning)
    for declaration in declarations:
        saved = _save(svc, declaration)
        output.say(
            f"declared {saved.id} (version {saved.version}) as {records.declaration_pk(saved.id)}"
        )
    if warnings:
        output.say("`podid list` shows each declaration's state once the table has processed it")


def _save(svc: Services, declaration: Declaration) -> Declaration:
    from functions.dal.repository import StaleWrite

    current = svc.repo.get_declaration_item(declaration.id)
    version = int(current.get("version", 0)) if current else 0
    try:
        return svc.repo.put_declaration(declaration.model_copy(update={"version": version}))
    except StaleWrite:
        output.fail(
            f"declaration {declaration.id!r} changed while it was being written (version "
            f"{version} was read); run the command again",
        )


def delete(
    declaration_id: Annotated[str, typer.Argument(help="declaration id")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="show what would be removed, write nothing")
    ] = False,
    table: TableOption = None,
) -> None:
    """Undeclare: remove a declaration. Its associations are deleted on every
    cluster, except where another declaration asks for the same one."""
    from functions.core import records
    from functions.core.models import Declaration
    from functions.dal.repository import StaleWrite, parse_declaration

    svc = connect(table)
    item = svc.repo.get_declaration_item(declaration_id)
    if item is None:
        output.fail(
            f"no declaration {declaration_id!r} (no item "
            f"pk={records.declaration_pk(declaration_id)}, sk={records.DECLARATION_SK} "
            f"in table {svc.settings.table_name}); "
            "`podid list` shows the declared ids",
            2,
        )
    parsed = parse_declaration(item)
    what = (
        f"{parsed.namespace}/{parsed.service_account} -> {parsed.role_label}, target "
        f"{views.target_label(parsed.target.to_wire()).replace(chr(10), ' + ')}"
        if isinstance(parsed, Declaration)
        else "an invalid record: " + "; ".join(parsed)
    )
    output.say(f"declaration {declaration_id}: {what}")
    rows = removal(svc, declaration_id)
    if rows:
        output.console.print(views.removal_table(rows))
    else:
        output.say("no association is recorded for it")
    if dry_run:
        output.console.print("[yellow]dry run[/yellow]: nothing written")
        return
    try:
        expected = item.get("version")
        svc.repo.delete_declaration(declaration_id, int(expected) if expected else None)
    except StaleWrite:
        output.fail(
            f"declaration {declaration_id!r} changed since it was read; look again "
            f"(`podid delete {declaration_id} --dry-run`) and run the command again"
        )
    clusters = sorted({r["cluster"] for r in rows})
    deleted = [r for r in rows if r["outcome"] == "deleted"]
    output.say(
        f"deleted declaration {declaration_id} ({records.declaration_pk(declaration_id)}). "
        + (
            f"The table's stream now queues a reconcile of {', '.join(clusters)}, which "
            f"deletes {len(deleted)} association(s) and keeps {len(rows) - len(deleted)}; "
            "`podid status` shows when it is done."
            if clusters
            else "No association depended on it."
        )
    )


def removal(svc: Services, declaration_id: str) -> list[dict[str, Any]]:
    """Per association recorded for the declaration: what its removal does."""
    from functions.core.fleet import expand

    fleet = checks.fleet_with(svc)
    others = [d for d in fleet.declarations.valid if d.id != declaration_id]
    after = expand(others, fleet.enrolled, managed_by=svc.settings.owner, scope=svc.settings.scope)
    rows = []
    for cluster in fleet.clusters:
        for key, status in sorted(svc.repo.association_statuses(cluster.ref).items()):
            if status.declaration_id != declaration_id:
                continue
            rows.append(
                {
                    "cluster": str(key.cluster),
                    "namespace": key.namespace,
                    "serviceAccount": key.service_account,
                    "role": status.observed_role_arn or "-",
                    "associationId": status.association_id,
                    "outcome": _outcome(svc, status, after, cluster.enrolled),
                }
            )
    return rows


def _outcome(svc: Services, status: AssociationStatus, after: DesiredState, enrolled: bool) -> str:
    key = status.key
    wanted = after.for_cluster(key.cluster).get(key) if enrolled else None
    if wanted is not None:
        changes = (
            f", role becomes {wanted.spec.role_arn}"
            if status.observed_role_arn not in (None, wanted.spec.role_arn)
            else ""
        )
        return f"kept: {wanted.declaration_id!r} asks for it{changes}"
    if enrolled and key in after.held_keys(key.cluster):
        return "kept: the remaining declarations conflict on it (held until they agree)"
    if status.association_id is None or status.observed is None:
        return "nothing to delete: no association exists"
    if not status.owned:
        return "kept: not created by podid (only associations it created are deleted)"
    return "deleted"


def list_declarations(
    output_format: OutputOption = Format.TABLE, table: TableOption = None
) -> None:
    """Declarations with their state (Accepted / Invalid / Conflict), target,
    role, and the errors and warnings the control plane recorded."""
    svc = connect(table)
    rows = declaration_rows(svc)
    if output_format is Format.JSON:
        output.print_json(rows)
        return
    if not rows:
        output.say("no declarations: `podid declare` writes one")
        return
    output.console.print(views.declarations_table(rows))
    problems = views.problems_table(rows)
    if problems is not None:
        output.console.print(problems)


def declaration_rows(svc: Services) -> list[dict[str, Any]]:
    """The table's declarations, each with its recorded status. A record whose
    validity differs from its status (changed, not processed yet) is Pending."""
    from functions.core import records
    from functions.core.models import DeclarationState

    declarations = svc.repo.load_declarations()
    statuses = svc.repo.declaration_statuses(
        [d.id for d in declarations.valid] + list(declarations.invalid)
    )
    enrolled = [c for c in svc.repo.list_clusters() if c.enrolled]
    roles = {d.id: resolved_roles(d, enrolled) for d in declarations.valid}
    # a roleArn is checked even before it has a cluster; a roleName once it resolves
    relied = {
        d.id: {*roles[d.id].values(), *filter(None, [d.role_arn])} for d in declarations.valid
    }
    latest = {arn: svc.repo.latest_finding(arn) for arns in relied.values() for arn in arns}
    rows = []
    for declaration in declarations.valid:
        status = statuses.get(declaration.id)
        role_arns = sorted(relied[declaration.id])
        invalid = status is None or status.state is DeclarationState.INVALID
        state = "Pending" if invalid or status is None else status.state.value
        rows.append(
            {
                "id": declaration.id,
                "state": state,
                "namespace": declaration.namespace,
                "serviceAccount": declaration.service_account,
                "roleArn": declaration.role_arn,
                "roleName": declaration.role_name,
                # cluster -> the association role there (a roleName, resolved per account)
                "roles": roles[declaration.id],
                "target": declaration.target.to_wire(),
                "errors": [],
                "warnings": list(status.warnings) if status and state != "Pending" else [],
                "clusters": dict(status.clusters) if status else {},
                # what the role's trust policy still lacks or forbids: its owner's to fix
                "trust": [e for arn in role_arns for e in trust_errors(latest.get(arn))],
                "observedAt": status.observed_at.isoformat() if status else None,
            }
        )
    for declaration_id, problems in declarations.invalid.items():
        item = svc.repo.get_declaration_item(declaration_id) or {}
        status = statuses.get(declaration_id)
        rows.append(
            {
                "id": declaration_id,
                "state": "Invalid",  # whether or not the stream has processed it yet
                "namespace": item.get("namespace"),
                "serviceAccount": item.get("serviceAccount"),
                "roleArn": item.get("roleArn"),
                "roleName": item.get("roleName"),
                "roles": {},
                "target": records.body(item).get("target"),
                "errors": problems,  # as the record is now, not as last processed
                "warnings": [],
                "clusters": dict(status.clusters) if status else {},
                "trust": [],
                "observedAt": status.observed_at.isoformat() if status else None,
            }
        )
    return sorted(rows, key=lambda r: r["id"])


def resolved_roles(declaration: Declaration, enrolled: list[Cluster]) -> dict[str, str]:
    """Cluster -> the association role the declaration asks there."""
    from functions.core.fleet import targets_of

    return {str(c.ref): declaration.role_for(c) for c in targets_of(declaration, enrolled)}


def trust_errors(record: FindingRecord | None) -> list[str]:
    """The role's error findings still standing after its latest check."""
    from functions.core.models import FindingAction, Severity

    if record is None or record.action is FindingAction.REPAIRED:
        return []
    return [f"{f.code}: {f.message}" for f in record.findings if f.severity is Severity.ERROR]


def import_(
    cluster: str,
    dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
    table: TableOption = None,
) -> None:
    """Adopt the existing associations of a cluster as declarations."""
    from pydantic import ValidationError

    from cli.clusters import resolve
    from functions.aws.eks import ClusterNotFound
    from functions.core.errors import describe_validation_error
    from functions.core.models import Declaration
    from functions.dal.repository import StaleWrite

    svc = connect(table)
    ref = resolve(svc, cluster)
    eks = svc.eks_in(ref.place)
    try:
        summaries = eks.list_associations(ref)
    except ClusterNotFound:
        output.fail(
            f"cluster {cluster!r} does not exist in EKS (account {ref.account} region "
            f"{ref.region})",
            2,
        )
    declarations = []
    for summary in summaries:
        association = eks.describe_association(ref, summary.association_id)
        if association is None:
            continue  # deleted since it was listed
        spec = association.spec
        identifier = re.sub(
            r"[^A-Za-z0-9._-]",
            "-",
            f"{cluster}.{summary.key.namespace}.{summary.key.service_account}",
        )[:128]
        record: dict[str, Any] = {
            "id": identifier,
            "namespace": summary.key.namespace,
            "serviceAccount": summary.key.service_account,
            "roleArn": spec.role_arn,
            "disableSessionTags": spec.disable_session_tags,
            "target": {"clusters": [cluster]},
            # importing is the explicit opt-in to take these associations over
            "adopt": True,
            "tags": {
                k: v for k, v in spec.tags.items() if not k.startswith(("aws:", "pod-identity/"))
            },
        }
        if spec.target_role_arn:
            record["targetRoleArn"] = spec.target_role_arn
        if spec.policy:
            record["policy"] = spec.policy
        try:
            declarations.append(Declaration.model_validate(record))
        except ValidationError as error:
            output.warn(
                f"{summary.key} cannot be imported as written: "
                + "; ".join(describe_validation_error(error))
            )
    if not dry_run:
        for warning in checks.warnings_for(svc, declarations):
            output.warn(warning)
    imported = 0
    for declaration in declarations:
        if dry_run:
            output.print_json(declaration.to_wire())
            continue
        try:
            svc.repo.put_declaration(declaration)
        except StaleWrite:
            output.warn(f"{declaration.id} is already declared: left as it is")
            continue
        imported += 1
        output.say(f"imported {declaration.id}")
    output.say(
        f"{len(declarations) if dry_run else imported} association(s) of {cluster} "
        f"{'would be' if dry_run else 'were'} imported"
    )


def schema() -> None:
    """The JSON Schema of a declaration record, for writing records directly."""
    from functions.core.models import Declaration

    output.print_json(Declaration.model_json_schema(by_alias=True))
