"""Tables the commands print. They fit an 80-column terminal: no vertical
rules, two facts stacked in a cell where they belong together, the long text
(reasons, messages) in the last column taking what is left and wrapping;
ARNs and ids fold rather than being cut. Cells are Text, so ids and messages
with brackets are never read as markup."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from functions.core.arns import parse_role_arn
from functions.core.places import ClusterRef

STATE_STYLES = {
    "InSync": "green",
    "Accepted": "green",
    "Pending": "cyan",
    "Drifted": "yellow",
    "Conflict": "red",
    "Error": "red",
    "Invalid": "red",
    "deleted": "red",
    "kept": "green",
}


def table(title: str, *columns: str, wide: str | None = None) -> Table:
    """A table whose `wide` column takes the remaining width and wraps."""
    view = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", title_style="bold")
    for column in columns:
        if column == wide:
            view.add_column(column, ratio=1, overflow="fold")
        else:
            view.add_column(column, overflow="fold", max_width=32)
    return view


def lines(*parts: str | Text | None, style: str = "") -> Text:
    """Stacked values in one cell; None parts are skipped."""
    text = Text(style=style)
    for part in (p for p in parts if p is not None):
        if text:
            text.append("\n")
        text.append(part)
    return text


def state(value: str | None) -> Text:
    if value is None:
        return Text("-")
    return Text(value, style=STATE_STYLES.get(value.split(":")[0], ""))


def dim(value: str) -> Text:
    return Text(value, style="dim")


def age(moment: datetime | str | None, now: datetime | None = None) -> str:
    """'12s ago', '5m ago', '3h ago', '2d ago'."""
    if moment is None:
        return "-"
    when = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    seconds = max(0, int(((now or datetime.now(UTC)) - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def role_label(role_arn: str | None, account: str | None = None) -> str:
    """The role's name (with its path) when it is in `account`, else the ARN."""
    if not role_arn:
        return "-"
    try:
        role = parse_role_arn(role_arn)
    except ValueError:
        return role_arn
    return f"{role.path.removeprefix('/')}{role.name}" if role.account == account else role_arn


def role_lines(role_arn: object) -> Text:
    """A role ARN as its name over its account: narrower than the ARN, and exact
    within one partition (JSON output keeps the ARN)."""
    try:
        role = parse_role_arn(str(role_arn))
    except ValueError:
        return Text(str(role_arn or "-"))
    return lines(f"{role.path.removeprefix('/')}{role.name}", dim(f"account {role.account}"))


def target_label(target: Mapping[str, Any] | None) -> str:
    if not isinstance(target, Mapping):
        return "-" if target is None else str(target)
    parts = []
    if target.get("fleet"):
        parts.append(f"fleet {target['fleet']}")
    if target.get("clusters"):
        parts.append(", ".join(map(str, target["clusters"])))
    for field_name, label in (
        ("accounts", "accounts"),
        ("regions", "regions"),
        ("organizationalUnits", "OUs"),
    ):
        if target.get(field_name):
            parts.append(f"{label} {', '.join(map(str, target[field_name]))}")
    return "\n".join(parts) or "-"


def declared_role_lines(row: Mapping[str, Any]) -> Text:
    """roleArn as role_lines shows it; a roleName as given, over the ARNs it
    resolves to on the declaration's clusters (one per account)."""
    if not row.get("roleName"):
        return role_lines(row.get("roleArn"))
    resolved = sorted(set((row.get("roles") or {}).values()))
    accounts = sorted({parse_role_arn(arn).account for arn in resolved})
    where = f"in accounts {', '.join(accounts)}" if accounts else "no target cluster yet"
    return lines(f"roleName {row['roleName']}", dim(where))


# --- declarations ------------------------------------------------------------------------
def declarations_table(rows: Iterable[Mapping[str, Any]]) -> Table:
    view = table("declarations", "declaration", "state", "target", "role")
    for row in rows:
        who = f"{row.get('namespace') or '?'}/{row.get('serviceAccount') or '?'}"
        view.add_row(
            lines(row["id"], dim(who)),
            state(row["state"]),
            Text(target_label(row.get("target"))),
            declared_role_lines(row),
        )
    return view


def problems_table(rows: Iterable[Mapping[str, Any]]) -> Table | None:
    """Errors, warnings and per-cluster problems, one per row; None when none."""
    view = table("problems", "declaration", "where", "problem", wide="problem")
    for row in rows:
        found = [("error", e) for e in row.get("errors", ())]
        found += [("warning", w) for w in row.get("warnings", ())]
        found += [(f"cluster {c}", p) for c, p in sorted(row.get("clusters", {}).items())]
        found += [("role trust", t) for t in row.get("trust", ())]
        for where, problem in found:
            view.add_row(Text(row["id"]), Text(where), Text(problem))
    return view if view.row_count else None


def removal_table(rows: Iterable[Mapping[str, Any]]) -> Table:
    view = table(
        "associations", "cluster", "service account\nrole", "association", "outcome", wide="outcome"
    )
    for row in rows:
        view.add_row(
            Text(row["cluster"]),
            lines(f"{row['namespace']}/{row['serviceAccount']}", role_lines(row["role"])),
            Text(row["associationId"] or "-"),
            state(row["outcome"]),
        )
    return view


# --- associations ------------------------------------------------------------------------
def associations_table(rows: Iterable[Mapping[str, Any]]) -> Table:
    """Grouped by account and region (the rows come sorted so), each cluster
    shown with where it is."""
    view = table(
        "associations",
        "cluster\naccount region",
        "service account\nrole",
        "state\nsynced",
        "reason",
        wide="reason",
    )
    now = datetime.now(UTC)
    for row in rows:
        view.add_row(
            lines(row["cluster"], dim(f"{row['account']} {row['region']}")),
            lines(
                f"{row['namespace']}/{row['serviceAccount']}",
                dim(role_label(row["role"], row["account"])),
            ),
            lines(state(row["state"]), dim(age(row["lastSyncedAt"], now))),
            Text(row["reason"] or ""),
        )
    return view


def plan_table(rows: Iterable[Mapping[str, Any]]) -> Table:
    view = table("plan", "cluster", "operation", "service account", "changes", wide="changes")
    for row in rows:
        view.add_row(
            Text(row["cluster"]),
            Text(row["operation"]),
            Text(row["serviceAccount"]),
            Text(", ".join(row["changes"])),
        )
    return view


def findings_table(records: Iterable[Mapping[str, Any]]) -> Table:
    view = table("trust findings", "role", "finding", "message", wide="message")
    for record in records:
        for finding in record.get("findings") or [{}]:
            code = finding.get("code")
            view.add_row(
                lines(role_lines(record["roleArn"]), dim(record["action"])),
                lines(code or "-", dim(finding.get("severity", "-"))),
                Text(finding.get("message", "no findings")),
            )
    return view


def clusters_table(rows: Iterable[Mapping[str, Any]]) -> Table:
    view = table(
        "clusters", "cluster", "account", "region", "kind", "fleet", "enrolled", "arn", wide="arn"
    )
    for row in rows:
        enrolled = f"yes ({row['enrolledBy']})" if row["enrolled"] else "no"
        kind = row.get("kind", "eks")
        if kind == "self-managed":
            kind = f"self-managed ({row.get('endpoint')})"
        where = ClusterRef.of_arn(row["arn"])
        view.add_row(
            Text(row["name"]),
            Text(where.account),
            Text(where.region),
            Text(kind),
            Text(row.get("fleet") or "-"),
            Text(enrolled),
            Text(row["arn"]),
        )
    return view
