"""Deployment choices, from CDK context (cdk.json or `-c key=value`)."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from constructs import Construct
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from functions.core.arns import PARTITION_PATTERN
from functions.core.models import Mode

_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
# a role or user of one named account; wildcards only in the name (an account root,
# or a wildcard account, would name every principal of some account)
_PRINCIPAL = re.compile(rf"^arn:(?:{PARTITION_PATTERN}):iam::\d{{12}}:(role|user)/[\w+=,.@/*?-]+$")


class DeployConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    mode: Mode = Mode.AUDIT
    schedule_minutes: int = Field(default=15, ge=1, le=1440, alias="scheduleMinutes")
    home_region: str | None = Field(default=None, alias="homeRegion")
    webhook_namespace: str = Field(default="kube-system", alias="webhookNamespace")
    webhook_configmap: str = Field(default="pod-identity-associations", alias="webhookConfigMap")
    alarm_email: str | None = Field(
        default=None, alias="alarmEmail", pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
    )
    # value of the pod-identity/managed-by tag; default: the stack's name (unique per stack)
    owner: str | None = Field(default=None, min_length=1, max_length=64)
    # Roles the control plane may pass to EKS, read and repair: an IAM path prefix.
    # "/" (every role in the account) needs allowAnyRolePath: true as well.
    role_path: str = Field(default="/", alias="rolePath")
    allow_any_role_path: bool = Field(default=False, alias="allowAnyRolePath")
    # Who may write declarations (DECL# items): the table's resource policy names them.
    # None named: nobody outside the control plane writes a declaration.
    declaration_writers: tuple[str, ...] = Field(default=(), alias="declarationWriters")
    # Who may record clusters by hand (`podid cluster enroll` / `discover`: CLUSTER# items).
    cluster_enrollers: tuple[str, ...] = Field(default=(), alias="clusterEnrollers")
    repairable_role_tag: str = Field(
        default="pod-identity/managed-trust", alias="repairableRoleTag"
    )
    repair_limit: int = Field(default=3, ge=1, alias="repairLimit")
    log_retention_days: Literal[7, 30, 90, 180, 365, 731] = Field(
        default=90, alias="logRetentionDays"
    )

    @field_validator("role_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not (value.startswith("/") and value.endswith("/")):
            raise ValueError("rolePath must start and end with '/' (e.g. /pod-identity/)")
        return value

    @field_validator("declaration_writers", "cluster_enrollers", mode="before")
    @classmethod
    def _principal_list(cls, value: object) -> object:
        # `-c declarationWriters=...` arrives as a string: a JSON list or comma-separated
        if isinstance(value, str):
            text = value.strip()
            return json.loads(text) if text.startswith("[") else [p for p in text.split(",") if p]
        return value

    @field_validator("declaration_writers", "cluster_enrollers")
    @classmethod
    def _principals(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for arn in value:
            if not _PRINCIPAL.match(arn):
                raise ValueError(
                    f"{arn!r} is not an IAM role or user ARN of one account (wildcards are "
                    "allowed in the name only, e.g. arn:aws:iam::111122223333:role/platform-*)"
                )
        return value

    @field_validator("allow_any_role_path", mode="before")
    @classmethod
    def _in_so_many_words(cls, value: object) -> object:
        # only true itself opts in: "yes", 1 or "on" are not a decision written down
        if value in (True, "true"):
            return True
        if value in (False, "false"):
            return False
        raise ValueError("allowAnyRolePath must be true or false")

    @model_validator(mode="after")
    def _role_scope_is_chosen(self) -> DeployConfig:
        if self.role_path == "/" and not self.allow_any_role_path:
            raise ValueError(
                "rolePath is '/': podid could then pass every role in the account to EKS, read "
                "it and (in enforce mode) rewrite its trust. Choose the IAM path of the roles "
                "podid may bind (e.g. -c rolePath=/pod-identity/, roles created with "
                "--path /pod-identity/), or opt into every role in so many words with "
                "-c allowAnyRolePath=true"
            )
        return self

    @classmethod
    def from_context(cls, scope: Construct) -> DeployConfig:
        values: dict[str, Any] = {}
        for field_name, field in cls.model_fields.items():
            key = field.alias or field_name
            found = scope.node.try_get_context(key)
            if found not in (None, ""):
                values[key] = found
        return cls.model_validate(values)
