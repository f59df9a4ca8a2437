"""Condition operators, from the IAM User Guide ("IAM JSON policy elements:
Condition operators" and "Single-valued vs. multivalued context keys").

- Condition key names are case-insensitive; values compare as each operator says.
- All operators of a Condition, and all keys of an operator, must hold (AND);
  the values listed for one key are alternatives (OR). A negated operator
  holds when the request value matches none of them.
- A key missing from the request: no value matches, so a positive operator is
  false and a negated one true; `...IfExists` holds; `ForAllValues:` holds and
  `ForAnyValue:` does not; `Null` tests exactly that absence.
- A multivalued key (aws:TagKeys) needs `ForAllValues:` or `ForAnyValue:`;
  what IAM does without one is not documented, so it is refused (NotEvaluable).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sandbox.iam_policy.document import PolicyInvalid
from sandbox.iam_policy.matching import (
    ContextValue,
    NotEvaluable,
    Pattern,
    arn_matches,
    pattern,
)

_STRING = {
    "StringEquals": False,
    "StringNotEquals": True,
    "StringEqualsIgnoreCase": False,
    "StringNotEqualsIgnoreCase": True,
    "StringLike": False,
    "StringNotLike": True,
}
_NUMERIC = {
    "NumericEquals": ("==", False),
    "NumericNotEquals": ("==", True),
    "NumericLessThan": ("<", False),
    "NumericLessThanEquals": ("<=", False),
    "NumericGreaterThan": (">", False),
    "NumericGreaterThanEquals": (">=", False),
}
_DATE = {name.replace("Numeric", "Date"): spec for name, spec in _NUMERIC.items()}
_ARN = {"ArnEquals": False, "ArnLike": False, "ArnNotEquals": True, "ArnNotLike": True}
_IP = {"IpAddress": False, "NotIpAddress": True}
_OTHER = {"Bool": False, "Null": False, "BinaryEquals": False}
_NEGATED = {
    name: negated for table in (_STRING, _ARN, _IP, _OTHER) for name, negated in table.items()
} | {name: spec[1] for table in (_NUMERIC, _DATE) for name, spec in table.items()}
_QUALIFIERS = ("ForAllValues", "ForAnyValue")


@dataclass(frozen=True, slots=True)
class Operator:
    base: str
    qualifier: str | None
    if_exists: bool

    @property
    def negated(self) -> bool:
        return _NEGATED[self.base]


def operator(raw: str) -> Operator:
    qualifier, _, rest = raw.rpartition(":")
    if qualifier and qualifier not in _QUALIFIERS:
        raise PolicyInvalid(f"unknown condition set operator {qualifier!r} in {raw!r}")
    if_exists = rest.endswith("IfExists")
    base = rest.removesuffix("IfExists")
    if base not in _NEGATED:
        raise PolicyInvalid(f"unknown condition operator {raw!r}")
    if base == "Null" and (if_exists or qualifier):
        raise PolicyInvalid(f"{raw!r}: Null takes neither IfExists nor a set operator")
    return Operator(base, qualifier or None, if_exists)


def holds(
    raw_operator: str,
    key: str,
    values: tuple[str, ...],
    context: Mapping[str, ContextValue],
    *,
    variables: bool,
) -> bool:
    """Whether one (operator, key) pair of a Condition holds for the request."""
    op = operator(raw_operator)
    present = context.get(key.lower())
    absent = present is None or present == ()
    if op.base == "Null":
        wanted = {v.lower() for v in values}
        if not wanted <= {"true", "false"}:
            raise PolicyInvalid(f"Null takes true or false, got {sorted(values)}")
        return ("true" in wanted and absent) or ("false" in wanted and not absent)
    if present is None or present == ():
        if op.if_exists or op.qualifier == "ForAllValues":
            return True
        return False if op.qualifier == "ForAnyValue" else op.negated
    if isinstance(present, tuple) and op.qualifier is None:
        raise NotEvaluable(
            f"{raw_operator} on the multivalued key {key}: IAM documents only "
            "ForAllValues:/ForAnyValue: for it"
        )
    items = (present,) if isinstance(present, str) else present
    match = _matcher(op.base, values, context, variables=variables)
    outcomes = [match(item) != op.negated for item in items]
    if op.qualifier == "ForAllValues":
        return all(outcomes)
    return any(outcomes)


def _matcher(
    base: str,
    values: tuple[str, ...],
    context: Mapping[str, ContextValue],
    *,
    variables: bool,
) -> Callable[[str], bool]:
    """A test 'does this request value match any value written in the policy'."""
    if base in _STRING or base in _ARN or base == "Bool":
        patterns = [pattern(v, context, variables=variables) for v in values]
        return _text_matcher(base, patterns)
    if base in _NUMERIC:
        numbers = [_number(v, strict=True) for v in values]
        compare = _COMPARE[_NUMERIC[base][0]]
        return lambda item: (
            (n := _number(item)) is not None
            and any(compare(n, w) for w in numbers if w is not None)
        )
    if base in _DATE:
        dates = [_date(v, strict=True) for v in values]
        compare = _COMPARE[_DATE[base][0]]
        return lambda item: (
            (d := _date(item)) is not None and any(compare(d, w) for w in dates if w is not None)
        )
    if base in _IP:
        networks = [_network(v) for v in values]
        return lambda item: (
            (a := _address(item)) is not None
            and any(a.version == n.version and a in n for n in networks)
        )
    raise NotEvaluable(f"{base} is not emulated (no request EKS makes carries binary values)")


def _text_matcher(base: str, patterns: list[Pattern]) -> Callable[[str], bool]:
    if base in ("StringEquals", "StringNotEquals"):
        return lambda item: any(p.literal() == item for p in patterns)
    if base in ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
        return lambda item: any(p.literal().casefold() == item.casefold() for p in patterns)
    if base in ("StringLike", "StringNotLike"):
        return lambda item: any(p.matches(item) for p in patterns)
    if base == "Bool":
        return lambda item: any(p.literal().lower() == item.lower() for p in patterns)
    return lambda item: any(arn_matches(p, item) for p in patterns)


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "==": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _number(text: str, *, strict: bool = False) -> float | None:
    try:
        return float(text)
    except ValueError:
        if strict:
            raise PolicyInvalid(f"{text!r} is not a number") from None
        return None


def _date(text: str, *, strict: bool = False) -> float | None:
    """Seconds since the epoch, from ISO 8601 or an epoch number (both documented);
    the request's time arrives as its aws:CurrentTime / aws:EpochTime values."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        if strict:
            raise PolicyInvalid(f"{text!r} is not an ISO 8601 date nor epoch seconds") from None
        return None
    return (found if found.tzinfo else found.replace(tzinfo=UTC)).timestamp()


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise PolicyInvalid(f"{text!r} is not an IP address or CIDR") from None


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
