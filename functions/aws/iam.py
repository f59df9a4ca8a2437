"""IAM adapter: read a role's trust policy and tags, write the trust policy."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from functions.aws.eks import error_code

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient


@dataclass(frozen=True, slots=True)
class RoleInfo:
    arn: str
    name: str
    trust_policy: dict[str, Any]
    tags: dict[str, str] = field(default_factory=dict)


def _policy_document(document: object) -> dict[str, Any]:
    """boto3 decodes IAM's URL-encoded JSON into a dict; some callers hand back a string."""
    loaded = json.loads(document) if isinstance(document, str) else document
    if not isinstance(loaded, dict):
        raise ValueError(f"IAM returned a trust policy that is not a JSON object: {loaded!r}")
    return loaded


class IamAdapter:
    def __init__(self, iam_client: IAMClient) -> None:
        self._iam = iam_client

    def get_role(self, name: str) -> RoleInfo | None:
        try:
            raw = self._iam.get_role(RoleName=name)["Role"]
        except ClientError as error:
            if error_code(error) == "NoSuchEntity":
                return None
            raise
        policy = _policy_document(raw["AssumeRolePolicyDocument"])
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
