"""IAM adapter: read a role's trust policy and tags, write the trust policy."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from functions.aws.eks import error_code


@dataclass(frozen=True, slots=True)
class RoleInfo:
    arn: str
    name: str
    trust_policy: dict[str, Any]
    tags: dict[str, str] = field(default_factory=dict)


class IamAdapter:
    def __init__(self, iam_client: Any) -> None:
        self._iam = iam_client

    def get_role(self, name: str) -> RoleInfo | None:
        try:
            raw = self._iam.get_role(RoleName=name)["Role"]
        except ClientError as error:
            if error_code(error) == "NoSuchEntity":
                return None
            raise
        document = raw["AssumeRolePolicyDocument"]
        # boto3 decodes the URL-encoded document; some callers hand back a string.
        policy = json.loads(document) if isinstance(document, str) else document
        tags = {t["Key"]: t["Value"] for t in raw.get("Tags", [])}
        if not tags:
            tags = self.role_tags(name)
        return RoleInfo(arn=raw["Arn"], name=raw["RoleName"], trust_policy=policy, tags=tags)

    def role_tags(self, name: str) -> dict[str, str]:
        tags: dict[str, str] = {}
        for page in self._iam.get_paginator("list_role_tags").paginate(RoleName=name):
            tags.update({t["Key"]: t["Value"] for t in page["Tags"]})
        return tags

    def update_trust_policy(self, name: str, policy: dict[str, Any]) -> None:
        self._iam.update_assume_role_policy(
            RoleName=name, PolicyDocument=json.dumps(policy, separators=(",", ":"))
        )
