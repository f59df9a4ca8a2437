"""All configuration, from environment variables, parsed once at cold start so a
bad deployment fails loudly before it touches anything.

A plain pydantic model that reads its fields' variables itself: pydantic-settings
loads asyncio, dotenv and its cloud secret providers at import (about 50 ms of
a cold start) for a job of a few lines here."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from functions.core.arns import check_account_id
from functions.core.fleet import Scope
from functions.core.models import Mode, WebhookTarget
from functions.core.spokes import (
    check_external_id,
    check_organization_id,
    check_spoke_role_template,
)
from functions.core.trust.analysis import DEFAULT_MAX_TRUST_POLICY_CHARS


class Settings(BaseModel):
    """Each field comes from the environment variable of its name in any case
    (TABLE_NAME, ...); a value given as an argument wins."""

    model_config = ConfigDict(frozen=True)

    table_name: str = Field(min_length=3)
    push_queue_url: str | None = None
    reconcile_queue_url: str | None = None
    dead_letter_queue_url: str | None = None
    # the queues' redrive maxReceiveCount: the last delivery parks with the reason
    max_receive_count: int = Field(default=5, ge=1)
    mode: Mode = Mode.AUDIT
    owner: str = Field(default="podid", min_length=1, max_length=64)
    event_bus_name: str = "default"
    findings_topic_arn: str | None = None
    # Roles whose own CloudTrail events the guard ignores (it never reacts to itself).
    self_role_arns: tuple[str, ...] = ()
    repair_limit: int = Field(default=3, ge=1)
    repair_window_seconds: int = Field(default=3600, ge=60)
    # Enforce mode repairs breakage of roles tagged <tag>=true and also writes
    # hardening for <tag>=harden; "" = breakage of any role, hardening never.
    repairable_role_tag: str = "pod-identity/managed-trust"
    findings_retention_days: int = Field(default=90, ge=1)
    scope_session_tags: bool = True
    max_trust_policy_chars: int = Field(default=DEFAULT_MAX_TRUST_POLICY_CHARS, ge=512)
    webhook_namespace: str = WebhookTarget().namespace
    webhook_configmap: str = WebhookTarget().name
    # e.g. "http://127.0.0.1:8001/{cluster}" for local API servers or proxies.
    kube_endpoint_template: str | None = None
    kube_token_seconds: int = Field(default=60, ge=1, le=900)
    aws_region: str = "us-east-1"
    # the hub's own account (set by the stack; else asked of STS once)
    account_id: Annotated[str, AfterValidator(check_account_id)] | None = None
    # the role scope: podid binds, reads and repairs only roles under this IAM
    # path (mirrored in IAM); others are never asked for
    role_path: str = "/"
    # accounts a declaration's targetRoleArn may be in, besides the cluster's own
    target_role_accounts: tuple[str, ...] = ()
    # does a declaration naming a cluster enrol it? (else: fleet tag or `podid cluster enroll`)
    enroll_named_clusters: bool = False
    # hub and spokes: the role the spoke stacks create, "{region}" filled per region
    # (infra spoke_role_template); None = this account and region only
    spoke_role_name: str | None = None
    # sts:ExternalId the spoke roles require, if they do
    spoke_external_id: str | None = None
    organization_id: str | None = None
    # the spokes' heartbeat rule name (event_patterns.heartbeat_rule_name); None: no spokes
    spoke_heartbeat_rule: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_environment(cls, given: Any) -> Any:
        if not isinstance(given, dict):
            return given
        environment = {name.lower(): value for name, value in os.environ.items()}
        found = {name: environment[name] for name in cls.model_fields if name in environment}
        return {**found, **given}

    @field_validator("role_path")
    @classmethod
    def _path_shape(cls, value: str) -> str:
        if not (value.startswith("/") and value.endswith("/")):
            raise ValueError("ROLE_PATH must start and end with '/' (e.g. /pod-identity/)")
        return value

    @field_validator(
        "spoke_role_name",
        "spoke_external_id",
        "organization_id",
        "spoke_heartbeat_rule",
        mode="before",
    )
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        # an empty variable is how a stack says "not configured"
        return None if value == "" else value

    @field_validator("spoke_role_name")
    @classmethod
    def _spoke_role(cls, value: str | None) -> str | None:
        return None if value is None else check_spoke_role_template(value)

    @field_validator("spoke_external_id")
    @classmethod
    def _external_id(cls, value: str | None) -> str | None:
        return None if value is None else check_external_id(value)

    @field_validator("organization_id")
    @classmethod
    def _organization(cls, value: str | None) -> str | None:
        return None if value is None else check_organization_id(value)

    @field_validator("self_role_arns", "target_role_accounts", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @classmethod
    def from_environment(cls, environment: Mapping[str, str]) -> Settings:
        """Settings from these variables (named as in the environment), which win
        over the process's own: the CLI connects without editing os.environ."""
        given = {name.lower(): value for name, value in environment.items()}
        values: dict[str, Any] = {name: given[name] for name in cls.model_fields if name in given}
        return cls(**values)

    @property
    def scope(self) -> Scope:
        return Scope(
            role_path=self.role_path,
            target_accounts=frozenset(self.target_role_accounts),
            enroll_named=self.enroll_named_clusters,
        )

    @property
    def webhook_target(self) -> WebhookTarget:
        return WebhookTarget(namespace=self.webhook_namespace, name=self.webhook_configmap)


@cache
def get_settings() -> Settings:
    return Settings.model_validate({})  # every value from the environment
