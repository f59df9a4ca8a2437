"""Ask the cluster whether a service-account token is genuine (TokenReview).

One POST to the API server over the standard library: the Kubernetes client
would add ~18 MiB to every node's agent for this single call.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from node_agent.errors import AgentError
from node_agent.tokens import AUDIENCE

REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
MAX_REVIEW_BYTES = 64 * 1024  # a review answer is a few hundred bytes
TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True)
class Identity:
    namespace: str
    service_account: str
    pod_name: str
    pod_uid: str


class TokenReviewer:
    """`api`: the API server URL; `token_file`: the agent's own service-account token,
    read at each review so a rotated token is picked up; `ca_file`: the server's CA."""

    def __init__(
        self,
        api: str,
        token_file: str | None = None,
        ca_file: str | None = None,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self._url = api.rstrip("/") + REVIEW_PATH
        self._token_file = token_file
        self._context = ssl.create_default_context(cafile=ca_file) if ca_file else None
        self._timeout = timeout

    def review(self, token: str) -> Identity:
        return identity_from(self._post({"spec": {"token": token, "audiences": [AUDIENCE]}}))

    def _post(self, spec: dict[str, Any]) -> dict[str, Any]:
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", **spec}
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._token_file:
            with open(self._token_file, encoding="utf-8") as handle:
                headers["Authorization"] = f"Bearer {handle.read().strip()}"
        request = urllib.request.Request(  # noqa: S310 - the configured API server
            self._url, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(  # noqa: S310
                request, timeout=self._timeout, context=self._context
            ) as response:
                answer = json.loads(response.read(MAX_REVIEW_BYTES + 1)[:MAX_REVIEW_BYTES])
        except urllib.error.HTTPError as error:
            error.close()
            raise AgentError(
                503,
                "TokenReviewFailed",
                f"the cluster could not review the token ({error.code})",
                retryable=error.code >= 500,
            ) from None
        except (OSError, ValueError) as error:  # unreachable, timed out, or not JSON
            raise AgentError(
                503,
                "TokenReviewFailed",
                f"the cluster could not review the token ({type(error).__name__})",
                retryable=True,
            ) from None
        if not isinstance(answer, dict):
            raise AgentError(503, "TokenReviewFailed", "the cluster answered no TokenReview")
        return answer


def identity_from(review: dict[str, Any]) -> Identity:
    """The pod identity a TokenReview answer vouches for, or why it does not."""
    status = review.get("status") or {}
    user = status.get("user")
    if not status.get("authenticated") or not isinstance(user, dict):
        raise AgentError(
            401, "InvalidToken", "the cluster did not accept the service account token"
        )
    # an authenticator that ignores audiences answers authenticated for a token meant
    # for another audience (the API server's): only an echo of ours proves it checked
    if AUDIENCE not in (status.get("audiences") or []):
        raise AgentError(
            401, "InvalidToken", f"the cluster did not confirm the token's audience {AUDIENCE}"
        )
    parts = str(user.get("username") or "").split(":")
    if len(parts) != 4 or parts[:2] != ["system", "serviceaccount"]:
        raise AgentError(401, "InvalidToken", "the token is not a service account token")
    extra = user.get("extra") or {}
    return Identity(
        namespace=parts[2],
        service_account=parts[3],
        pod_name=_first(extra.get("authentication.kubernetes.io/pod-name")),
        pod_uid=_first(extra.get("authentication.kubernetes.io/pod-uid")),
    )


def _first(values: object) -> str:
    return str(values[0]) if isinstance(values, list) and values else ""
