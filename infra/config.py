"""Deployment choices, from CDK context (cdk.json or `-c key=value`)."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, Self

from constructs import Construct
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from functions.core.arns import PARTITION_PATTERN
from functions.core.models import Mode

_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
# a role or user of one named account; wildcards only in the name (an account root,
# or a wildcard account, would name every principal of some account)
_PRINCIPAL = re.compile(rf"^arn:(?:{PARTITION_PATTERN}):iam::\d{{12}}:(role|user)/[\w+=,.@/*?-]+$")
ORGANIZATION_ID = r"^o-[a-z0-9]{10,32}$"
# what the hub passes as sts:ExternalId when it assumes a spoke role (STS's limits)
ExternalId = Annotated[
    str | None, Field(min_length=2, max_length=1224, pattern=r"^[A-Za-z0-9+=,.@:/_-]+$")
]


def context_list(value: object) -> object:
    # `-c key=...` arrives as a string: a JSON list or comma-separated
    if isinstance(value, str):
        text = value.strip()
        return json.loads(text) if text.startswith("[") else [p for p in text.split(",") if p]
    return value


def true_or_false(value: object, key: str) -> bool:
    """A context switch: only true itself opts in ("yes", 1 or "on" are not a
    decision written down)."""
    if value in (True, "true"):
        return True
    if value in (False, "false"):
        return False
    raise ValueError(f"{key} must be true or false")


class RoleScope(BaseModel):
    """What podid may do to roles and associations: the hub and each spoke grant the same."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    mode: Mode = Mode.AUDIT
    # value of the pod-identity/managed-by tag; default: the hub stack's name (unique per stack)
    owner: str | None = Field(default=None, min_length=1, max_length=64)
    # Roles the control plane may pass to EKS, read and repair: an IAM path prefix.
    # "/" (every role in the account) needs allowAnyRolePath: true as well.
    role_path: str = Field(default="/", alias="rolePath")
    allow_any_role_path: bool = Field(default=False, alias="allowAnyRolePath")
    repairable_role_tag: str = Field(
        default="pod-identity/managed-trust", alias="repairableRoleTag"
    )

    @field_validator("role_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not (value.startswith("/") and value.endswith("/")):
            raise ValueError("rolePath must start and end with '/' (e.g. /pod-identity/)")
        return value

    @field_validator("allow_any_role_path", mode="before")
    @classmethod
    def _in_so_many_words(cls, value: object) -> object:
        return true_or_false(value, "allowAnyRolePath")

    @model_validator(mode="after")
    def _role_scope_is_chosen(self) -> RoleScope:
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
    def from_context(cls, scope: Construct) -> Self:
        values: dict[str, Any] = {}
        for field_name, field in cls.model_fields.items():
            key = field.alias or field_name
            found = scope.node.try_get_context(key)
            if found not in (None, ""):
                values[key] = found
        return cls.model_validate(values)


class DeployConfig(RoleScope):
    schedule_minutes: int = Field(default=15, ge=1, le=1440, alias="scheduleMinutes")
    home_region: str | None = Field(default=None, alias="homeRegion")
    webhook_namespace: str = Field(default="kube-system", alias="webhookNamespace")
    webhook_configmap: str = Field(default="pod-identity-associations", alias="webhookConfigMap")
    alarm_email: str | None = Field(
        default=None, alias="alarmEmail", pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
    )
    # Who may write declarations (DECL# items): the table's resource policy names them.
    # None named: nobody outside the control plane writes a declaration.
    declaration_writers: tuple[str, ...] = Field(default=(), alias="declarationWriters")
    # Who may record clusters by hand (`podid cluster enroll` / `discover`: CLUSTER# items).
    cluster_enrollers: tuple[str, ...] = Field(default=(), alias="clusterEnrollers")
    repair_limit: int = Field(default=3, ge=1, alias="repairLimit")
    # accounts a declaration's targetRoleArn may be in besides the cluster's (a central one)
    target_role_accounts: tuple[str, ...] = Field(default=(), alias="targetRoleAccounts")
    # Hub and spokes: the default bus then admits events from this organization's accounts.
    organization_id: str | None = Field(
        default=None, alias="organizationId", pattern=ORGANIZATION_ID
    )
    # hub and spokes: the sts:ExternalId the spokes' roles require (-c externalId on both)
    external_id: ExternalId = Field(default=None, alias="externalId")
    log_retention_days: Literal[7, 30, 90, 180, 365, 731] = Field(
        default=90, alias="logRetentionDays"
    )
    # Lambda SnapStart: every function publishes a version and is invoked through
    # its alias (README: "What a handler loads at a cold start").
    snap_start: bool = Field(default=False, alias="snapStart")

    @field_validator("snap_start", mode="before")
    @classmethod
    def _snap_start_in_so_many_words(cls, value: object) -> object:
        return true_or_false(value, "snapStart")

    @model_validator(mode="after")
    def _external_id_is_for_spokes(self) -> DeployConfig:
        if self.external_id and not self.organization_id:
            raise ValueError(
                "externalId is what the hub sends to its spokes' roles: give the organization "
                "too (-c organizationId=o-...) to run as a hub, or drop -c externalId"
            )
        return self

    @field_validator(
        "declaration_writers", "cluster_enrollers", "target_role_accounts", mode="before"
    )
    @classmethod
    def _principal_list(cls, value: object) -> object:
        return context_list(value)

    @field_validator("target_role_accounts")
    @classmethod
    def _accounts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for account in value:
            if not account.isascii() or not account.isdigit() or len(account) != 12:
                raise ValueError(f"targetRoleAccounts: {account!r} is not a 12-digit account id")
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


class SpokeConfig(RoleScope):
    """One spoke account and region: what the hub may do there, and where events go.

    Shares the hub's role scope (rolePath, mode, owner tag, repair tag): a spoke never
    grants the hub more than the hub grants itself in its own account."""

    hub_account: str = Field(alias="hubAccount", pattern=r"^\d{12}$")
    # the hub's stack name: its function roles are named after it (infra/functions.py)
    hub_stack_name: str = Field(
        default="PodIdentityControlPlane",
        alias="hubStackName",
        pattern=r"^[A-Za-z][A-Za-z0-9-]{0,127}$",
    )
    hub_event_bus_arn: str = Field(
        alias="hubEventBusArn",
        pattern=r"^arn:aws(-cn|-us-gov)?:events:[a-z0-9-]+:\d{12}:event-bus/[\w.\-/]+$",
    )
    organization_id: str | None = Field(
        default=None, alias="organizationId", pattern=ORGANIZATION_ID
    )
    # what the hub passes as sts:ExternalId when it assumes the spoke role
    external_id: ExternalId = Field(default=None, alias="externalId")
    # how often the spoke tells the hub it is there (its clusters then enrol)
    heartbeat_minutes: int = Field(default=10, ge=1, le=60, alias="spokeHeartbeatMinutes")

    @model_validator(mode="after")
    def _spoke_is_pinned(self) -> SpokeConfig:
        bus_account = self.hub_event_bus_arn.split(":")[4]
        if bus_account != self.hub_account:
            raise ValueError(
                f"hubEventBusArn is in account {bus_account}, hubAccount is {self.hub_account}: "
                "events must go to the hub's own bus"
            )
        if not (self.external_id or self.organization_id):
            raise ValueError(
                "the spoke role needs -c externalId=<secret the hub sends> and/or "
                "-c organizationId=o-... (aws:PrincipalOrgID) besides the hub's role names"
            )
        return self

    @property
    def partition(self) -> str:
        return self.hub_event_bus_arn.split(":")[1]

    @property
    def owner_tag_value(self) -> str:
        # the hub's default owner is its stack name (infra/functions.py)
        return self.owner or self.hub_stack_name[:64]


_ORGANIZATIONAL_UNIT = re.compile(r"^(ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}|r-[a-z0-9]{4,32})$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")


class StackSetConfig(SpokeConfig):
    """The spoke as a service-managed StackSet over Organizations OUs."""

    organizational_units: tuple[str, ...] = Field(alias="spokeOrganizationalUnits", min_length=1)
    regions: tuple[str, ...] = Field(alias="spokeRegions", min_length=1)
    # SELF from the management account, DELEGATED_ADMIN from a delegated administrator
    call_as: Literal["SELF", "DELEGATED_ADMIN"] = Field(default="SELF", alias="stackSetCallAs")

    @field_validator("organizational_units", "regions", mode="before")
    @classmethod
    def _list(cls, value: object) -> object:
        return context_list(value)

    @field_validator("organizational_units")
    @classmethod
    def _units(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for unit in value:
            if not _ORGANIZATIONAL_UNIT.match(unit):
                raise ValueError(f"{unit!r} is not an OU id (ou-xxxx-xxxxxxxx) nor a root (r-xxxx)")
        return value

    @field_validator("regions")
    @classmethod
    def _regions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for region in value:
            if not _REGION.match(region):
                raise ValueError(f"{region!r} is not a region name (e.g. eu-west-1)")
        if "us-east-1" not in value:
            raise ValueError(
                "spokeRegions must include us-east-1: IAM CloudTrail events are delivered "
                "there only, so without it trust changes in spoke accounts go unseen"
            )
        return value
