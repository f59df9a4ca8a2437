"""Domain errors and readable validation messages."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import ValidationError

_VALUE_ERROR_PREFIX = "Value error, "
_MAX_INPUT_SHOWN = 120


class DomainError(Exception):
    """Base of every error the core raises on purpose."""


class InvalidDeclaration(DomainError):
    """A declaration record that can never be applied as written."""

    def __init__(self, declaration_id: str | None, problems: Iterable[str]) -> None:
        self.declaration_id = declaration_id
        self.problems = tuple(problems)
        who = f"declaration {declaration_id!r}" if declaration_id else "declaration"
        super().__init__(f"{who} is invalid: " + "; ".join(self.problems))


class MalformedPolicy(DomainError):
    """A trust policy document that is not valid IAM policy JSON."""


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_INPUT_SHOWN else text[: _MAX_INPUT_SHOWN - 3] + "..."


def describe_validation_error(error: ValidationError) -> list[str]:
    """One line per problem: `field: message (got value)`, in input field names."""
    lines = []
    for item in error.errors(include_url=False):
        location = ".".join(str(part) for part in item["loc"]) or "record"
        message = item["msg"].removeprefix(_VALUE_ERROR_PREFIX)
        if item["type"] == "missing":
            lines.append(f"{location}: required field is missing")
        elif item["type"] == "extra_forbidden":
            lines.append(f"{location}: unknown field (check spelling; fields are camelCase)")
        elif item["type"] == "value_error" or location == "record":
            lines.append(f"{location}: {message}")
        else:
            lines.append(f"{location}: {message} (got {_shown(item.get('input'))})")
    return lines
