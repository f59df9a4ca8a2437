"""Agent configuration: flags override environment (PODID_AGENT_*), one model.

A frozen dataclass validated in __post_init__, with one explicit converter per
field type, rather than pydantic(-settings): the eks-auth agent must stay small
(pydantic would cost ~8.5 MiB of resident memory on every node).
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_type_hints

ENV_PREFIX = "PODID_AGENT_"
DEFAULT_BINDS = ("169.254.170.23:80", "[fd00:ec2::23]:80")
BACKENDS = ("eks-auth", "sts")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class AgentSettings:
    cluster_name: str
    binds: tuple[str, ...] = DEFAULT_BINDS
    ops_bind: str = "127.0.0.1:2703"
    backend: str = "eks-auth"
    region: str | None = None
    cache_size: int = 20_000
    refresh_ahead_seconds: float = 1800
    # renew a used identity at least this often: the longest a revoked one is served
    renew_after_seconds: float = 3 * 3600
    min_remaining_seconds: float = 15
    upstream_timeout_seconds: float = 1.0  # one EKS Auth attempt
    # every attempt of one upstream call ends by then: SDKs give up after 2 s per attempt
    upstream_budget_seconds: float = 1.5
    upstream_concurrency: int = 16
    # new identities (first requests) per second: per source address, and overall
    new_identities_per_second: float = 200
    new_identity_burst: float = 400
    new_identities_per_source_per_second: float = 10
    new_identity_burst_per_source: float = 40
    upstream_calls_per_source: int = 4  # running at once: a pod cannot hold every thread
    # connections: caps (global is also kept below the fd limit) and timeouts
    max_connections: int = 4096
    max_connections_per_peer: int = 256
    head_timeout_seconds: float = 5  # to send a whole request head (and a first request)
    idle_timeout_seconds: float = 30  # a keep-alive connection between requests
    drain_seconds: float = 5
    log_level: str = "INFO"
    # serve a pod's rotated token from cache after checking it against the cluster's JWKS
    local_validation: bool = False
    map_poll_seconds: float = 5.0
    # self-managed clusters (backend "sts")
    association_map: str | None = None  # mounted ConfigMap key with the full map
    kube_api: str = "https://kubernetes.default.svc"
    kube_token_file: str = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105
    kube_ca_file: str | None = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"

    def __post_init__(self) -> None:
        problems = []
        if not self.cluster_name:
            problems.append("cluster_name is required (--cluster-name or PODID_AGENT_CLUSTER_NAME)")
        if self.backend not in BACKENDS:
            problems.append(f"backend must be one of {', '.join(BACKENDS)}, not {self.backend!r}")
        if not self.binds:
            problems.append("at least one bind address is needed")
        for bind in (*self.binds, self.ops_bind):
            try:
                split_bind(bind)
            except ValueError:
                problems.append(f"{bind!r} is not host:port")
        if self.cache_size < 1 or self.upstream_concurrency < 1:
            problems.append("cache_size and upstream_concurrency must be at least 1")
        if not 0 < self.upstream_timeout_seconds <= self.upstream_budget_seconds <= 1.8:
            problems.append(
                "need 0 < upstream_timeout_seconds <= upstream_budget_seconds <= 1.8: "
                "SDKs give up after 2 s"
            )
        if (
            min(self.max_connections, self.max_connections_per_peer, self.upstream_calls_per_source)
            < 1
        ):
            problems.append(
                "max_connections, max_connections_per_peer and upstream_calls_per_source: >= 1"
            )
        if min(self.head_timeout_seconds, self.idle_timeout_seconds) < 1:
            problems.append("head_timeout_seconds and idle_timeout_seconds must be at least 1")
        rates = (
            self.new_identities_per_second,
            self.new_identity_burst,
            self.new_identities_per_source_per_second,
            self.new_identity_burst_per_source,
        )
        if min(rates) <= 0 or min(self.new_identity_burst, self.new_identity_burst_per_source) < 1:
            problems.append("new identity rates must be positive and bursts at least 1")
        if self.refresh_ahead_seconds < 60 or self.min_remaining_seconds < 0:
            problems.append("refresh_ahead_seconds >= 60 and min_remaining_seconds >= 0")
        if self.renew_after_seconds < 60:
            problems.append("renew_after_seconds must be at least 60")
        if self.log_level not in LOG_LEVELS:
            problems.append(
                f"log_level must be one of {', '.join(LOG_LEVELS)}, not {self.log_level!r}"
            )
        if self.backend == "sts" and not self.association_map:
            problems.append("the sts backend needs --association-map (the mounted full map)")
        if problems:
            raise SettingsError("; ".join(problems))

    @classmethod
    def create(cls, **values: Any) -> AgentSettings:
        """Settings from values of any origin (strings from the environment, typed
        values from code), each converted to its field's type."""
        return cls(**typed(values, origin=lambda name: name))


def typed(values: dict[str, Any], origin: Callable[[str], str]) -> dict[str, Any]:
    """`values` converted to the fields' types; an error names the value's origin
    (the environment variable or flag it came from)."""
    unknown = set(values) - set(_CONVERTERS)
    if unknown:
        raise SettingsError(f"unknown settings: {', '.join(sorted(unknown))}")
    converted: dict[str, Any] = {}
    for name, value in values.items():
        try:
            converted[name] = _CONVERTERS[name](value)
        except (TypeError, ValueError) as error:
            raise SettingsError(f"{origin(name)}: {value!r} {error}") from None
    return converted


def _boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("is not a boolean: use true or false")


def _integer(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value)
    raise ValueError("is not a whole number")


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("is not a number")
    try:
        number = float(value)
    except ValueError:
        raise ValueError("is not a number") from None
    if not math.isfinite(number):
        raise ValueError("is not a finite number")
    return number


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("is not text")
    return value


def _optional_text(value: object) -> str | None:
    return None if value is None else _text(value)


def _addresses(value: object) -> tuple[str, ...]:
    """host:port list: comma-separated text (the environment) or a sequence (flags)."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list | tuple) and all(isinstance(part, str) for part in value):
        return tuple(value)
    raise TypeError("is not a list of host:port addresses")


# by each field's resolved type: a field of a new type fails at import until it has one
_BY_TYPE: dict[object, Callable[[Any], Any]] = {
    str: _text,
    str | None: _optional_text,
    int: _integer,
    float: _number,
    bool: _boolean,
    tuple[str, ...]: _addresses,
}
_CONVERTERS = {name: _BY_TYPE[kind] for name, kind in get_type_hints(AgentSettings).items()}


def from_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    source = os.environ if environ is None else environ
    return {n: source[env_name(n)] for n in _CONVERTERS if env_name(n) in source}


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def parse_args(argv: list[str] | None = None) -> AgentSettings:
    parser = argparse.ArgumentParser(prog="podid-agent", description=__doc__)
    parser.add_argument("--bind", action="append", dest="binds", help="host:port (repeatable)")
    parser.add_argument("--ops-bind", help="host:port for /healthz, /readyz and /metrics")
    parser.add_argument("--backend", choices=BACKENDS)
    parser.add_argument("--cluster-name")
    parser.add_argument("--region")
    parser.add_argument("--cache-size", type=int)
    parser.add_argument("--association-map")
    parser.add_argument("--kube-api")
    parser.add_argument("--log-level")
    parser.add_argument("--local-validation", action="store_true", default=None)
    given = {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}
    flags = {"binds": "--bind"}
    try:
        environment = typed(from_environment(), origin=env_name)
        typed_flags = typed(
            given, origin=lambda name: flags.get(name, "--" + name.replace("_", "-"))
        )
        return AgentSettings(**{**environment, **typed_flags})
    except SettingsError as error:
        parser.error(str(error))
        raise  # unreachable: parser.error exits


def split_bind(bind: str) -> tuple[str, int]:
    host, sep, port = bind.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(bind)
    return host.strip("[]"), int(port)
