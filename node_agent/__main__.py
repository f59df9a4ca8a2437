"""`python -m node_agent`: serve pod credentials until SIGTERM, then drain."""

from __future__ import annotations

import logging
import signal
import sys
import threading

import boto3
import uvloop
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from node_agent.backends import Backend
from node_agent.backends.eks_auth import EksAuthBackend, client_config
from node_agent.backends.sts import StsBackend
from node_agent.runtime import Agent
from node_agent.settings import AgentSettings, parse_args


def build_backend(settings: AgentSettings) -> Backend:
    config = client_config(settings.upstream_timeout_seconds)
    session = boto3.session.Session(region_name=settings.region)
    if settings.backend == "eks-auth":
        return EksAuthBackend(session.client("eks-auth", config=config), settings.cluster_name)
    return StsBackend.from_settings(settings, session.client("sts", config=config))


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(LambdaPowertoolsFormatter(service="podid-node-agent"))
    logging.basicConfig(level=settings.log_level, handlers=[handler], force=True)
    agent = Agent(settings, build_backend(settings))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: agent.stop())
    uvloop.run(agent.run(threading.Event()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
