"""Bearer token for an EKS cluster's Kubernetes API, as aws-iam-authenticator
and `aws eks get-token` build it: a presigned STS GetCallerIdentity URL that
also signs the x-k8s-aws-id header (the cluster name), base64url-encoded."""

from __future__ import annotations

import base64
import contextvars
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from functions.core.arns import parse_arn

if TYPE_CHECKING:
    from mypy_boto3_sts import STSClient

TOKEN_PREFIX = "k8s-aws-v1."  # noqa: S105 - a format prefix, not a secret
CLUSTER_HEADER = "x-k8s-aws-id"

_cluster_name: contextvars.ContextVar[str] = contextvars.ContextVar("eks_token_cluster")


def _add_cluster_header(request: Any, **_: Any) -> None:
    name = _cluster_name.get(None)
    if name is not None:  # a token being built, not a plain GetCallerIdentity call
        request.headers[CLUSTER_HEADER] = name


@dataclass(frozen=True, slots=True)
class CallerIdentity:
    account: str
    partition: str


class EksTokenBuilder:
    def __init__(self, sts_client: STSClient) -> None:
        self._sts = sts_client
        self._sts.meta.events.register(
            "before-sign.sts.GetCallerIdentity", _add_cluster_header, unique_id="podid-eks-token"
        )

    def caller_identity(self) -> CallerIdentity:
        """Whose credentials sign the tokens (the account a self-managed cluster is recorded in)."""
        found = self._sts.get_caller_identity()
        return CallerIdentity(account=found["Account"], partition=parse_arn(found["Arn"]).partition)

    def token(self, cluster_name: str, expires_in: int = 60) -> str:
        marker = _cluster_name.set(cluster_name)
        try:
            url = self._sts.generate_presigned_url(
                "get_caller_identity", Params={}, ExpiresIn=expires_in, HttpMethod="GET"
            )
        finally:
            _cluster_name.reset(marker)
        encoded = base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
        return TOKEN_PREFIX + encoded


def decode_token(token: str) -> str:
    """The presigned URL inside a token (for verifiers and tests)."""
    if not token.startswith(TOKEN_PREFIX):
        raise ValueError("not an EKS token: missing k8s-aws-v1. prefix")
    body = token[len(TOKEN_PREFIX) :]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
