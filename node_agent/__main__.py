"""`python -m node_agent`: serve pod credentials until SIGTERM, then drain."""

from __future__ import annotations

import json
import logging
import signal
import ssl
import sys
import threading
import urllib.request
from typing import TYPE_CHECKING

import botocore.session
import uvloop

from node_agent.backends import Backend
from node_agent.backends.eks_auth import EksAuthBackend, client_config
from node_agent.logs import JsonFormatter
from node_agent.runtime import Agent
from node_agent.settings import AgentSettings, parse_args

if TYPE_CHECKING:
    from node_agent.jwks import JwksVerifier


def build_backend(settings: AgentSettings) -> Backend:
    config = client_config(settings.upstream_timeout_seconds)
    session = botocore.session.get_session()  # boto3 would add ~2 MiB for nothing here
    if settings.backend == "eks-auth":
        client = session.create_client("eks-auth", region_name=settings.region, config=config)
        return EksAuthBackend(client, settings.cluster_name)
    # imported only when used: the Kubernetes client costs ~18 MiB of memory
    from node_agent.backends.sts import StsBackend  # noqa: PLC0415

    sts = session.create_client("sts", region_name=settings.region, config=config)
    return StsBackend.from_settings(settings, sts)


def cluster_jwks(settings: AgentSettings) -> JwksVerifier:
    """The API server's /openid/v1/jwks, read with the agent's service-account token."""
    # imported only when used: PyJWT with cryptography costs ~9 MiB of memory
    from node_agent.jwks import JwksVerifier  # noqa: PLC0415

    def fetch() -> dict[str, object]:
        with open(settings.kube_token_file, encoding="utf-8") as handle:
            token = handle.read().strip()
        context = ssl.create_default_context(cafile=settings.kube_ca_file)
        request = urllib.request.Request(  # noqa: S310 - the configured https API server
            settings.kube_api.rstrip("/") + "/openid/v1/jwks",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request, timeout=2, context=context) as response:  # noqa: S310
            document: dict[str, object] = json.load(response)
        return document

    return JwksVerifier(fetch)


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service="podid-node-agent"))
    logging.basicConfig(level=settings.log_level, handlers=[handler], force=True)
    verifier = cluster_jwks(settings) if settings.local_validation else None
    agent = Agent(settings, build_backend(settings), verifier=verifier)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: agent.stop())
    uvloop.run(agent.run(threading.Event()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
