"""Who is asking, as EKS's apiserver decides it:

* a client certificate signed by the sandbox CA: CN is the user, O the groups
  (the sandbox user's admin kubeconfig);
* a bearer token the sandbox issued (e.g. a node agent's service account);
* an EKS token (presigned STS GetCallerIdentity) verified by recomputing its
  SigV4 signature, its expiry and x-k8s-aws-id (this cluster's name); the IAM
  principal needs an access entry (its username and groups), else 401.
Every authenticated user is in system:authenticated."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sandbox.eks_token_verifier import AwsCredential, EksTokenVerifier, TokenInvalid
from sandbox.localkube.errors import ApiError

AUTHENTICATED = "system:authenticated"
MASTERS = "system:masters"


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()


def _unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


@dataclass
class Authenticator:
    cluster_name: str
    aws_credentials: Mapping[str, AwsCredential]
    sts_hosts: Iterable[str] = ()
    access_entries: dict[str, User] = field(default_factory=dict)  # principal ARN -> user
    static_tokens: dict[str, User] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.verifier = EksTokenVerifier(
            self.cluster_name, self.aws_credentials, extra_hosts=self.sts_hosts
        )

    def authenticate(self, authorization: str | None, peer: dict[str, Any] | None) -> User:
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise _unauthorized()
            return self._with_authenticated(self._token_user(token.strip()))
        if peer:  # verified against the CA by the TLS layer
            return self._with_authenticated(_certificate_user(peer))
        raise _unauthorized()

    def _token_user(self, token: str) -> User:
        if token in self.static_tokens:
            return self.static_tokens[token]
        try:
            principal = self.verifier.principal(token)
        except TokenInvalid as exc:
            raise _unauthorized() from exc
        user = self.access_entries.get(principal)
        if user is None:  # EKS: an IAM principal without an access entry is not a user
            raise _unauthorized()
        return user

    @staticmethod
    def _with_authenticated(user: User) -> User:
        return User(user.name, (*user.groups, AUTHENTICATED))


def _certificate_user(peer: dict[str, Any]) -> User:
    common, organizations = "", []
    for rdn in peer.get("subject", ()):
        for attribute, value in rdn:
            if attribute == "commonName":
                common = value
            elif attribute == "organizationName":
                organizations.append(value)
    if not common:
        raise _unauthorized()
    return User(common, tuple(organizations))
