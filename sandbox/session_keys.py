"""The access keys a cluster's authenticator can verify for one role: its
sessions' keys as STS (moto) issued them, looked up when a token arrives, so
a role session that starts after the cluster was set up is known too. Only
sessions of that role: a token signed by any other session is unknown, as
STS would answer GetCallerIdentity with another principal that has no access
entry."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime

from moto.iam.models import get_account_id_from
from moto.sts.models import sts_backends

from sandbox import arns
from sandbox.eks_token_verifier import AwsCredential


class RoleSessionKeys(Mapping[str, AwsCredential]):
    def __init__(self, role_arn: str, fixed: Mapping[str, AwsCredential]) -> None:
        self.role_arn = role_arn
        self.partition = arns.parse(role_arn).partition
        self.fixed = dict(fixed)

    def __getitem__(self, access_key: str) -> AwsCredential:
        if access_key in self.fixed:
            return self.fixed[access_key]
        account = get_account_id_from(access_key)
        session = sts_backends[account][self.partition].get_assumed_role_from_access_key(access_key)
        # an expired session's key is as unknown as a key never issued
        if (
            session is None
            or session.role_arn != self.role_arn
            or session.expiration.replace(tzinfo=UTC) <= datetime.now(UTC)
        ):
            raise KeyError(access_key)
        return AwsCredential(session.secret_access_key, self.role_arn)

    def __iter__(self) -> Iterator[str]:
        return iter(self.fixed)  # issued sessions are looked up, never listed

    def __len__(self) -> int:
        return len(self.fixed)
