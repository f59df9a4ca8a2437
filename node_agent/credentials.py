"""The container-credentials answer, serialized once per credential."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str
    account_id: str
    expiration: datetime
    # who they are for: lets a map change invalidate exactly the affected entries
    namespace: str | None = None
    service_account: str | None = None

    @property
    def expires_at(self) -> float:
        return self.expiration.timestamp()

    def body(self) -> bytes:
        """The JSON the AWS SDKs' container credential providers read."""
        return json.dumps(
            {
                "AccessKeyId": self.access_key_id,
                "SecretAccessKey": self.secret_access_key,
                "Token": self.session_token,
                "AccountId": self.account_id,
                "Expiration": self.expiration.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            separators=(",", ":"),
        ).encode()
