"""Verify EKS bearer tokens (`k8s-aws-v1.` presigned STS GetCallerIdentity) the
way the cluster's authenticator relies on STS to: botocore's SigV4 query signer
recomputes the signature with the known secret of the signing key at the time
the URL says it was signed, compared in constant time; then expiry (at most 15
minutes), the signed x-k8s-aws-id header (this cluster's name), the action and
the STS host and its region. Written from the token format, not with the
product's token code, so it can disagree with a product bug."""

from __future__ import annotations

import base64
import hmac
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from botocore.auth import SIGV4_TIMESTAMP, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

TOKEN_PREFIX = "k8s-aws-v1."  # noqa: S105 - a format prefix, not a secret
CLUSTER_HEADER = "x-k8s-aws-id"
MAX_TOKEN_SECONDS = 15 * 60
MAX_TOKEN_CHARS = 8 * 1024  # a real token is ~1.5 KB
SIGNATURE = "X-Amz-Signature"
# sts.amazonaws.com (global: signed for us-east-1) or sts.<region>.amazonaws.com[.cn]
_STS_HOST = re.compile(r"sts(?:\.(?P<region>[a-z0-9-]+))?\.amazonaws\.com(?:\.cn)?")
_GLOBAL_STS_REGION = "us-east-1"


class TokenInvalid(Exception):
    """Deliberately without detail: an authenticator says only 'Unauthorized'."""


@dataclass(frozen=True, slots=True)
class AwsCredential:
    secret_access_key: str
    principal_arn: str  # what STS GetCallerIdentity would answer (role ARN for roles)


@dataclass(frozen=True, slots=True)
class _Scope:
    access_key: str
    region: str
    service: str


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
        if len(token) > MAX_TOKEN_CHARS:
            raise TokenInvalid()
        try:
            url = urlsplit(presigned_url(token))
        except (ValueError, UnicodeDecodeError) as exc:
            raise TokenInvalid() from exc
        pairs = parse_qsl(url.query, keep_blank_values=True)
        query = dict(pairs)
        if len(query) != len(pairs):
            raise TokenInvalid()  # a repeated parameter: which one would STS read?
        if (
            query.get("Action") != "GetCallerIdentity"
            or query.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256"
            or CLUSTER_HEADER not in query.get("X-Amz-SignedHeaders", "").split(";")
        ):
            raise TokenInvalid()
        scope = self._scope(url.netloc, query)
        credential = self.credentials.get(scope.access_key)
        if credential is None:
            raise TokenInvalid()
        try:
            issued = datetime.strptime(query["X-Amz-Date"], SIGV4_TIMESTAMP).replace(tzinfo=UTC)
            expires = int(query["X-Amz-Expires"])
        except (KeyError, ValueError) as exc:
            raise TokenInvalid() from exc
        current = now if now is not None else time.time()
        if not 0 < expires <= MAX_TOKEN_SECONDS or issued.timestamp() + expires < current:
            raise TokenInvalid()
        expected = _signature(url.geturl(), query, scope, credential, self.cluster_name)
        if not hmac.compare_digest(query.get(SIGNATURE, ""), expected):
            raise TokenInvalid()
        return credential.principal_arn

    def _scope(self, host: str, query: Mapping[str, str]) -> _Scope:
        """Who signed, for which region and service; the region must be the host's."""
        try:
            access_key, _date, region, service, terminal = query["X-Amz-Credential"].split("/")
        except (KeyError, ValueError) as exc:
            raise TokenInvalid() from exc
        if service != "sts" or terminal != "aws4_request":
            raise TokenInvalid()
        if host not in self.extra_hosts:
            found = _STS_HOST.fullmatch(host)
            if found is None or region != (found["region"] or _GLOBAL_STS_REGION):
                raise TokenInvalid()
        return _Scope(access_key, region, service)


def presigned_url(token: str) -> str:
    """The presigned URL a token carries: base64url without padding after the prefix."""
    if not token.startswith(TOKEN_PREFIX):
        raise ValueError("not an EKS token")
    body = token[len(TOKEN_PREFIX) :]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()


def _signature(
    url: str, query: Mapping[str, str], scope: _Scope, credential: AwsCredential, cluster: str
) -> str:
    """botocore's SigV4 query signature of the URL as sent (all but the signature),
    at its own X-Amz-Date, over the headers the authenticator sends to STS."""
    parts = urlsplit(url)
    unsigned = "&".join(
        pair for pair in parts.query.split("&") if pair.partition("=")[0] != SIGNATURE
    )
    request = AWSRequest(
        method="GET",
        url=urlunsplit(parts._replace(query=unsigned)),
        headers={CLUSTER_HEADER: cluster},
    )
    request.context["timestamp"] = query["X-Amz-Date"]
    signer = SigV4QueryAuth(
        Credentials(scope.access_key, credential.secret_access_key),
        scope.service,
        scope.region,
        expires=int(query["X-Amz-Expires"]),
    )
    canonical = signer.canonical_request(request)
    return str(signer.signature(signer.string_to_sign(request, canonical), request))
