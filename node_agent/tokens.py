"""Service-account tokens: hashed for cache keys, read (not verified) for expiry.

Verification is the backend's job (EKS Auth, or TokenReview) or the JWKS
verifier's; here a token is only read: its structure, `exp` and `aud` are the
local checks every request passes before it may cost an upstream call, and
`exp` bounds how long a credential obtained with it may be served."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from node_agent.errors import bad_request

MAX_TOKEN_BYTES = 16 * 1024
AUDIENCE = "pods.eks.amazonaws.com"  # what the projected token must be for


def token_key(token: bytes) -> bytes:
    """Cache key: never the token itself (no raw token in memory dumps or metrics)."""
    return hashlib.blake2b(token, digest_size=32).digest()


@dataclass(frozen=True, slots=True)
class TokenClaims:
    expires_at: float
    subject: str
    namespace: str | None
    service_account: str | None
    pod_name: str | None
    pod_uid: str | None
    audiences: tuple[str, ...] = ()


def _segment(part: bytes) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4)))


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def read_claims(token: bytes) -> TokenClaims:
    if not token or len(token) > MAX_TOKEN_BYTES:
        raise bad_request("service account token is empty or too large")
    parts = token.split(b".")
    if len(parts) != 3:
        raise bad_request("service account token is not a JWT")
    try:
        claims = _segment(parts[1])
        expires_at = float(claims["exp"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise bad_request("service account token cannot be parsed") from exc
    if not isinstance(claims, dict):
        raise bad_request("service account token cannot be parsed")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    kube = _object(claims.get("kubernetes.io"))
    pod, account = _object(kube.get("pod")), _object(kube.get("serviceaccount"))
    return TokenClaims(
        expires_at=expires_at,
        subject=str(claims.get("sub", "")),
        namespace=kube.get("namespace"),
        service_account=account.get("name"),
        pod_name=pod.get("name"),
        pod_uid=pod.get("uid"),
        audiences=tuple(a for a in audiences if isinstance(a, str)),
    )
