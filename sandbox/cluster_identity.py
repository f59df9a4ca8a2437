"""Per-cluster service-account token issuer, as a cluster's API server is.

Tokens are RS256 JWTs with the claims Kubernetes puts in projected service
account tokens; the EKS Auth emulation and the local Kubernetes API
(TokenReview) verify them with the same keys, as in a real cluster.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox import arns

POD_IDENTITY_AUDIENCE = "pods.eks.amazonaws.com"


class TokenRejected(Exception):
    """The token is not one this cluster issued, or no longer valid."""

    def __init__(self, reason: str, *, expired: bool = False) -> None:
        super().__init__(reason)
        self.expired = expired


@dataclass(frozen=True, slots=True)
class ServiceAccountIdentity:
    namespace: str
    service_account: str
    pod_name: str
    pod_uid: str
    audiences: tuple[str, ...]
    expires_at: int


@dataclass
class ClusterIdentity:
    cluster_arn: str
    issuer: str
    _key: rsa.RSAPrivateKey = field(repr=False)
    key_id: str = field(default_factory=lambda: secrets.token_hex(8))
    # (namespace, pod name) -> uid of the pods whose tokens it issued and that still exist:
    # like the real API server, a token bound to a deleted pod no longer authenticates
    _pods: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)
    _pods_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def create(cls, cluster_arn: str) -> ClusterIdentity:
        region = arns.parse(cluster_arn).region
        issuer = f"https://oidc.eks.{region}.amazonaws.com/id/{secrets.token_hex(16).upper()}"
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(cluster_arn, issuer, key)

    def issue(
        self,
        namespace: str,
        service_account: str,
        *,
        pod_name: str | None = None,
        audience: str = POD_IDENTITY_AUDIENCE,
        ttl_seconds: int = 86400,
        now: float | None = None,
    ) -> str:
        issued = int(now if now is not None else time.time())
        pod = pod_name or f"{service_account}-{secrets.token_hex(3)}"
        with self._pods_lock:  # a rotated token of a live pod keeps the pod's uid
            pod_uid = self._pods.setdefault((namespace, pod), str(uuid.uuid4()))
        claims: dict[str, Any] = {
            "aud": [audience],
            "iss": self.issuer,
            "sub": f"system:serviceaccount:{namespace}:{service_account}",
            "iat": issued,
            "nbf": issued,
            "exp": issued + ttl_seconds,
            "kubernetes.io": {
                "namespace": namespace,
                "pod": {"name": pod, "uid": pod_uid},
                "serviceaccount": {
                    "name": service_account,
                    "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{namespace}/{service_account}")),
                },
            },
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.key_id})

    def delete_pod(self, namespace: str, pod_name: str) -> None:
        """The pod is gone: the tokens bound to it stop authenticating."""
        with self._pods_lock:
            self._pods.pop((namespace, pod_name), None)

    def verify(
        self, token: str, *, audience: str = POD_IDENTITY_AUDIENCE
    ) -> ServiceAccountIdentity:
        try:
            claims = jwt.decode(
                token,
                self._key.public_key(),
                algorithms=["RS256"],
                audience=audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenRejected("token has expired", expired=True) from exc
        except jwt.InvalidAudienceError as exc:
            raise TokenRejected(f"token audience is not {audience}") from exc
        except jwt.PyJWTError as exc:
            raise TokenRejected(f"token is not valid for this cluster: {exc}") from exc
        info = claims.get("kubernetes.io") or {}
        try:
            subject = ServiceAccountIdentity(
                namespace=info["namespace"],
                service_account=info["serviceaccount"]["name"],
                pod_name=info["pod"]["name"],
                pod_uid=info["pod"]["uid"],
                audiences=tuple(
                    claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
                ),
                expires_at=int(claims["exp"]),
            )
        except (KeyError, TypeError) as exc:
            raise TokenRejected("token lacks the kubernetes.io service account claims") from exc
        with self._pods_lock:
            bound_pod_exists = (
                self._pods.get((subject.namespace, subject.pod_name)) == subject.pod_uid
            )
        if not bound_pod_exists:
            raise TokenRejected(
                f'the pod "{subject.pod_name}" this token is bound to no longer exists'
            )
        return subject

    def jwks(self) -> dict[str, Any]:
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        return {"keys": [{**public, "kid": self.key_id, "use": "sig", "alg": "RS256"}]}


class IdentityRegistry:
    """Cluster ARN -> its token issuer; shared by every emulated component."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clusters: dict[str, ClusterIdentity] = {}

    def for_cluster(self, cluster_arn: str) -> ClusterIdentity:
        with self._lock:
            identity = self._clusters.get(cluster_arn)
            if identity is None:
                identity = self._clusters[cluster_arn] = ClusterIdentity.create(cluster_arn)
            return identity

    def forget(self, cluster_arn: str) -> None:
        """A deleted cluster's tokens stop verifying, as with a real cluster."""
        with self._lock:
            self._clusters.pop(cluster_arn, None)

    def known(self, cluster_arn: str) -> ClusterIdentity | None:
        with self._lock:
            return self._clusters.get(cluster_arn)


REGISTRY = IdentityRegistry()
