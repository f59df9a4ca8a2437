"""Agent configuration: flags override environment (PODID_AGENT_*), one model.

A frozen dataclass validated in __post_init__ rather than pydantic: the agent
must stay small (pydantic would cost ~8.5 MiB of resident memory per node).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass
from typing import Any

ENV_PREFIX = "PODID_AGENT_"
DEFAULT_BINDS = ("169.254.170.23:80", "[fd00:ec2::23]:80")
BACKENDS = ("eks-auth", "sts")


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
        if self.backend == "sts" and not self.association_map:
            problems.append("the sts backend needs --association-map (the mounted full map)")
        if problems:
            raise SettingsError("; ".join(problems))

    @classmethod
    def create(cls, **values: Any) -> AgentSettings:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(values) - set(fields)
        if unknown:
            raise SettingsError(f"unknown settings: {', '.join(sorted(unknown))}")
        typed: dict[str, Any] = {}
        for name, value in values.items():
            kind = str(fields[name].type)
            try:
                if kind.startswith("bool"):
                    typed[name] = (
                        value
                        if isinstance(value, bool)
                        else str(value).lower() in ("1", "true", "yes")
                    )
                elif kind.startswith("int"):
                    typed[name] = int(value)
                elif kind.startswith("float"):
                    typed[name] = float(value)
                elif name == "binds" and isinstance(value, str):
                    typed[name] = tuple(v.strip() for v in value.split(",") if v.strip())
                else:
                    typed[name] = tuple(value) if name == "binds" else value
            except (TypeError, ValueError) as exc:
                raise SettingsError(f"{name}: {value!r} is not a valid {kind}") from exc
        return cls(**typed)


def from_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    source = os.environ if environ is None else environ
    names = (f.name for f in dataclasses.fields(AgentSettings))
    return {n: source[ENV_PREFIX + n.upper()] for n in names if ENV_PREFIX + n.upper() in source}


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
    try:
        return AgentSettings.create(**{**from_environment(), **given})
    except (SettingsError, TypeError) as error:
        parser.error(str(error))
        raise  # unreachable: parser.error exits


def split_bind(bind: str) -> tuple[str, int]:
    host, sep, port = bind.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(bind)
    return host.strip("[]"), int(port)
