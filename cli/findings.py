"""`podid findings`: the trust guard's latest findings per role."""

from __future__ import annotations

from typing import Annotated

import typer

from cli import output, views
from cli.connection import connect
from cli.output import Format, OutputOption, TableOption


def findings(
    role: Annotated[str | None, typer.Option(help="a role ARN")] = None,
    output_format: OutputOption = Format.TABLE,
    table: TableOption = None,
) -> None:
    """The latest trust-policy findings per role."""
    svc = connect(table)
    roles = [role] if role else svc.repo.roles_with_findings()
    latest = [r.to_wire() for r in (svc.repo.latest_finding(arn) for arn in roles) if r]
    if output_format is Format.JSON:
        output.print_json(latest)
    elif latest:
        output.console.print(views.findings_table(latest))
    else:
        output.say("no findings: no declared role's trust policy has been analysed yet")
