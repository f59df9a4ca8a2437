"""Where credentials come from: EKS Auth (EKS) or STS (self-managed clusters)."""

from __future__ import annotations

from typing import Protocol

from node_agent.credentials import Credentials
from node_agent.tokens import TokenClaims


class Backend(Protocol):
    name: str

    def fetch(self, token: str, claims: TokenClaims) -> Credentials:
        """Blocking call (run in a worker thread); raises AgentError."""
        ...
