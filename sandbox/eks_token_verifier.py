"""Verify EKS bearer tokens (`k8s-aws-v1.` presigned STS GetCallerIdentity) the
way the cluster's authenticator relies on STS to: here by recomputing the
SigV4 query signature with the known secret of the signing access key, and
checking expiry (at most 15 minutes), the signed x-k8s-aws-id header (this
cluster's name), the action and the STS host. Written from the token format,
not with the product's token code, so it can disagree with a product bug."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote, urlsplit

TOKEN_PREFIX = "k8s-aws-v1."  # noqa: S105 - a format prefix, not a secret
CLUSTER_HEADER = "x-k8s-aws-id"
MAX_TOKEN_SECONDS = 15 * 60
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class TokenInvalid(Exception):
    """Deliberately without detail: an authenticator says only 'Unauthorized'."""


@dataclass(frozen=True, slots=True)
class AwsCredential:
    secret_access_key: str
    principal_arn: str  # what STS GetCallerIdentity would answer (role ARN for roles)


class EksTokenVerifier:
    """Verifies `k8s-aws-v1.` tokens the way aws-iam-authenticator relies on STS to."""

    def __init__(
        self,
        cluster_name: str,
        credentials: Mapping[str, AwsCredential],
        *,
        extra_hosts: Iterable[str] = (),
    ) -> None:
        self.cluster_name = cluster_name
        self.credentials = credentials
        # a local STS (moto) signs for its own host:port instead of sts.amazonaws.com
        self.extra_hosts = frozenset(extra_hosts)

    def principal(self, token: str, now: float | None = None) -> str:
        try:
            url = urlsplit(presigned_url(token))
        except (ValueError, UnicodeDecodeError) as exc:
            raise TokenInvalid() from exc
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        sts_host = re.fullmatch(r"sts(\.[a-z0-9-]+)?\.amazonaws\.com(\.cn)?(:\d+)?", url.netloc)
        if not sts_host and url.netloc not in self.extra_hosts:
            raise TokenInvalid()
        if (
            query.get("Action") != "GetCallerIdentity"
            or query.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256"
        ):
            raise TokenInvalid()
        signed_headers = query.get("X-Amz-SignedHeaders", "").split(";")
        if CLUSTER_HEADER not in signed_headers:
            raise TokenInvalid()
        try:
            access_key, date, region, service, _ = query["X-Amz-Credential"].split("/")
            issued = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            expires = int(query["X-Amz-Expires"])
        except (KeyError, ValueError) as exc:
            raise TokenInvalid() from exc
        current = now if now is not None else time.time()
        if expires > MAX_TOKEN_SECONDS or issued.timestamp() + expires < current:
            raise TokenInvalid()
        credential = self.credentials.get(access_key)
        if credential is None:
            raise TokenInvalid()
        headers = {"host": url.netloc, CLUSTER_HEADER: self.cluster_name}
        expected = {
            _signature(
                credential.secret_access_key,
                date=date,
                region=region,
                service=service,
                query=query,
                headers=headers,
                signed_headers=signed_headers,
                path=url.path or "/",
                payload_hash=payload_hash,
            )
            for payload_hash in (_EMPTY_SHA256, "UNSIGNED-PAYLOAD")
        }
        if query.get("X-Amz-Signature") not in expected:
            raise TokenInvalid()
        return credential.principal_arn


def presigned_url(token: str) -> str:
    """The presigned URL a token carries: base64url without padding after the prefix."""
    if not token.startswith(TOKEN_PREFIX):
        raise ValueError("not an EKS token")
    body = token[len(TOKEN_PREFIX) :]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()


def _uri_encode(value: str) -> str:
    return quote(value, safe="-_.~")


def _signature(
    secret: str,
    *,
    date: str,
    region: str,
    service: str,
    query: dict[str, str],
    headers: dict[str, str],
    signed_headers: list[str],
    path: str,
    payload_hash: str,
) -> str:
    canonical_query = "&".join(
        f"{_uri_encode(k)}={_uri_encode(v)}"
        for k, v in sorted(query.items())
        if k != "X-Amz-Signature"
    )
    canonical_headers = "".join(f"{h}:{headers.get(h, '').strip()}\n" for h in signed_headers)
    canonical_request = "\n".join(
        ["GET", path, canonical_query, canonical_headers, ";".join(signed_headers), payload_hash]
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            query["X-Amz-Date"],
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
