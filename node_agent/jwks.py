"""Local validation of service-account tokens with the cluster's public keys.

Every new token is checked before it may cost an upstream call (a forged one
is refused at once, spending no rate-limit token); and, like the reference
agent, when a pod presents a newer token (the kubelet rotates them), a
credential already cached for the same pod is served without a call to EKS
Auth, once the new token's signature, audience, expiry and subject check out
against the cluster's JWKS (fetched from the API server's /openid/v1/jwks and
cached)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import jwt

from node_agent.tokens import AUDIENCE


class JwksVerifier:
    def __init__(self, fetch: Callable[[], dict[str, Any]], ttl_seconds: float = 300) -> None:
        self._fetch = fetch
        self._ttl = ttl_seconds
        self._lock = threading.Lock()
        self._keys: jwt.PyJWKSet | None = None
        self._fetched = 0.0
        self.validations = 0
        self.failures = 0

    def _keyset(self, refresh: bool = False) -> jwt.PyJWKSet:
        with self._lock:
            if refresh or self._keys is None or time.monotonic() - self._fetched > self._ttl:
                self._keys = jwt.PyJWKSet.from_dict(self._fetch())
                self._fetched = time.monotonic()
            return self._keys

    def check(self, token: str, now: float | None = None) -> tuple[bool | None, dict[str, Any]]:
        """(True, claims) when genuine, (False, {}) when forged or expired, (None, {}) when
        the keys could not be read (callers then let upstream decide). Never raises."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            self.failures += 1
            return False, {}
        try:
            keys = self._keyset()
            matching = [k for k in keys.keys if k.key_id == kid] or [
                k for k in self._keyset(refresh=True).keys if k.key_id == kid
            ]
        except (jwt.PyJWTError, ValueError, KeyError, json.JSONDecodeError, OSError):
            return None, {}
        if not matching:
            self.failures += 1
            return False, {}
        try:
            options: Any = {"require": ["exp", "sub", "aud"], "verify_exp": now is None}
            claims: dict[str, Any] = jwt.decode(
                token,
                matching[0].key,
                algorithms=["RS256", "ES256"],
                audience=AUDIENCE,
                options=options,
            )
            if now is not None and float(claims["exp"]) <= now:
                raise ValueError("expired")
        except (jwt.PyJWTError, ValueError, KeyError, TypeError):
            self.failures += 1
            return False, {}
        self.validations += 1
        return True, claims
