"""String, ARN and action matching, and policy variables, as the IAM User Guide
documents them ("Condition operators", "Policy variables", "Action").

- StringLike: case-sensitive; `*` matches any run of characters, `?` one.
- ArnEquals / ArnLike: case-sensitive; each of the six colon-separated parts
  of the ARN is matched on its own (a wildcard never crosses a colon).
- Action names: case-insensitive, with the same two wildcards.
- Policy variables (`${key}`, `${key, 'default'}`, `${*}`, `${?}`, `${$}`)
  in String and ARN values of a version 2012-10-17 policy. A variable whose
  key has no single value and no default is refused (NotEvaluable): the guide
  only says such a statement "might" be invalid, so no answer is invented.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

STAR = "\x00*"  # wildcard tokens, distinct from a literal "*" (which a variable may yield)
ONE = "\x00?"
Token = str
ContextValue = str | tuple[str, ...]  # a tuple is a multivalued key


class NotEvaluable(ValueError):
    """The documentation gives no answer for this input: refuse, never guess."""


@dataclass(frozen=True, slots=True)
class Pattern:
    tokens: tuple[Token, ...]

    def literal(self) -> str:
        """The text with wildcards read as plain characters (for exact operators)."""
        return "".join("*" if t == STAR else "?" if t == ONE else t for t in self.tokens)

    def regex(self, *, ignore_case: bool = False) -> re.Pattern[str]:
        parts = (".*" if t == STAR else "." if t == ONE else re.escape(t) for t in self.tokens)
        return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))

    def matches(self, value: str, *, ignore_case: bool = False) -> bool:
        return self.regex(ignore_case=ignore_case).fullmatch(value) is not None


_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_DEFAULT = re.compile(r"^\s*([^,\s]+)\s*,\s*'((?:[^']|'')*)'\s*$")


def _wild(text: str) -> list[Token]:
    tokens: list[Token] = []
    for char in text:
        if char == "*":
            tokens.append(STAR)
        elif char == "?":
            tokens.append(ONE)
        elif tokens and tokens[-1] not in (STAR, ONE):
            tokens[-1] += char
        else:
            tokens.append(char)
    return tokens


def pattern(text: str, context: Mapping[str, ContextValue], *, variables: bool) -> Pattern:
    """Turn a policy value into match tokens, substituting policy variables."""
    if not variables:
        return Pattern(tuple(_wild(text)))
    tokens: list[Token] = []
    position = 0
    for found in _VARIABLE.finditer(text):
        tokens += _wild(text[position : found.start()])
        tokens.append(_resolve(found.group(1), context))
        position = found.end()
    tokens += _wild(text[position:])
    return Pattern(tuple(t for t in tokens if t))


def _resolve(body: str, context: Mapping[str, ContextValue]) -> str:
    if body in ("*", "?", "$"):
        return body  # the escaped character itself, never a wildcard
    default = None
    with_default = _DEFAULT.match(body)
    if with_default:
        body, default = with_default.group(1), with_default.group(2).replace("''", "'")
    key = body.strip()
    if not key or " " in key:
        raise NotEvaluable(f"malformed policy variable ${{{body}}}")
    value = context.get(key.lower())
    if isinstance(value, str):
        return value
    if default is not None:
        return default
    reason = "is multivalued" if isinstance(value, tuple) else "is not in the request"
    raise NotEvaluable(f"policy variable ${{{key}}} {reason} and has no default")


def arn_matches(wanted: Pattern, value: str) -> bool:
    """Six colon-separated parts, each matched on its own; the last keeps its colons."""
    found = value.split(":", 5)
    parts = _split_tokens(wanted.tokens)
    if len(found) != 6 or len(parts) != 6:
        return False
    return all(Pattern(p).matches(f) for p, f in zip(parts, found, strict=True))


def _split_tokens(tokens: tuple[Token, ...]) -> list[tuple[Token, ...]]:
    parts: list[list[Token]] = [[]]
    for token in tokens:
        if token in (STAR, ONE):
            parts[-1].append(token)
            continue
        pieces = token.split(":") if len(parts) < 6 else [token]
        for index, piece in enumerate(pieces):
            if index:
                if len(parts) == 6:  # the resource part keeps any further colons
                    parts[-1].append(":" + ":".join(pieces[index:]))
                    break
                parts.append([])
            if piece:
                parts[-1].append(piece)
    return [tuple(p) for p in parts]


def action_matches(written: str, action: str) -> bool:
    return Pattern(tuple(_wild(written))).matches(action, ignore_case=True)
