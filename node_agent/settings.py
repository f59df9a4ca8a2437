"""Agent configuration: flags override environment (PODID_AGENT_*), one model."""

from __future__ import annotations

import argparse
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_BINDS = ("169.254.170.23:80", "[fd00:ec2::23]:80")


class AgentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PODID_AGENT_", frozen=True)

    binds: tuple[str, ...] = DEFAULT_BINDS
    ops_bind: str = "127.0.0.1:2703"
    backend: Literal["eks-auth", "sts"] = "eks-auth"
    cluster_name: str = Field(min_length=1)
    region: str | None = None
    cache_size: int = Field(default=20_000, ge=1)
    refresh_ahead_seconds: float = Field(default=1800, ge=60)
    min_remaining_seconds: float = Field(default=15, ge=0)
    upstream_timeout_seconds: float = Field(default=1.0, gt=0, le=1.8)
    upstream_concurrency: int = Field(default=16, ge=1)
    drain_seconds: float = Field(default=5, ge=0)
    log_level: str = "INFO"
    # self-managed clusters (backend "sts")
    association_map: str | None = None  # mounted ConfigMap key with the full map
    kube_api: str = "https://kubernetes.default.svc"
    kube_token_file: str = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105
    kube_ca_file: str | None = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"


def parse_args(argv: list[str] | None = None) -> AgentSettings:
    parser = argparse.ArgumentParser(prog="podid-agent", description=__doc__)
    parser.add_argument("--bind", action="append", dest="binds", help="host:port (repeatable)")
    parser.add_argument("--ops-bind", help="host:port for /healthz, /readyz and /metrics")
    parser.add_argument("--backend", choices=["eks-auth", "sts"])
    parser.add_argument("--cluster-name")
    parser.add_argument("--region")
    parser.add_argument("--cache-size", type=int)
    parser.add_argument("--association-map")
    parser.add_argument("--kube-api")
    parser.add_argument("--log-level")
    given = {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}
    return AgentSettings(**given)


def split_bind(bind: str) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    return host.strip("[]"), int(port)
