"""Where the CLI writes: results on stdout, errors and warnings on stderr.

Commands use `output.console` and `output.errors` through this module (not
`from ... import console`), so tests can swap in consoles of a fixed width."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

console = Console()
errors = Console(stderr=True)


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"


OutputOption = Annotated[Format, typer.Option("--output", "-o", help="table or json")]
TableOption = Annotated[
    str | None, typer.Option("--table", help="the stack's table (stack output TableName)")
]


def error(message: str) -> None:
    errors.print(f"[red]error:[/red] {escape(message)}")


def fail(message: str, code: int = 1) -> NoReturn:
    error(message)
    raise typer.Exit(code)


def warn(message: str) -> None:
    errors.print(f"[yellow]warning:[/yellow] {escape(message)}")


def say(message: str) -> None:
    """Plain text that may contain brackets (ids, ARNs), never read as markup."""
    console.print(escape(message))


def print_json(data: Any) -> None:
    console.print_json(json.dumps(data))
