"""Input models of the events the functions receive (pydantic v2). CloudTrail
records arrive wrapped by EventBridge. The envelope is ours, not Powertools'
parser models: importing those builds every model of every AWS event source
at cold start (about 150 modules), for the two this module needs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from functions.core.arns import check_cluster_name
from functions.core.places import ClusterRef, Place, is_full_ref, named_by
from functions.core.spokes import is_spoke_role


class _Lenient(BaseModel):
    # CloudTrail adds fields over time: keep what we use, ignore the rest.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class SessionIssuer(_Lenient):
    type: str | None = None
    arn: str | None = None
    user_name: str | None = Field(default=None, alias="userName")


class SessionContext(_Lenient):
    session_issuer: SessionIssuer | None = Field(default=None, alias="sessionIssuer")


class UserIdentity(_Lenient):
    type: str | None = None
    arn: str | None = None
    account_id: str | None = Field(default=None, alias="accountId")
    invoked_by: str | None = Field(default=None, alias="invokedBy")
    session_context: SessionContext | None = Field(default=None, alias="sessionContext")

    @property
    def role_arn(self) -> str | None:
        """The IAM role behind an assumed-role session (or the principal itself)."""
        issuer = self.session_context.session_issuer if self.session_context else None
        if self.type == "AssumedRole" and issuer and issuer.arn:
            return issuer.arn
        return self.arn


class CloudTrailDetail(_Lenient):
    event_name: str = Field(alias="eventName")
    event_source: str = Field(alias="eventSource")
    event_id: str = Field(alias="eventID")
    event_time: datetime = Field(alias="eventTime")
    aws_region: str = Field(alias="awsRegion")
    user_identity: UserIdentity = Field(alias="userIdentity")
    request_parameters: dict[str, Any] | None = Field(default=None, alias="requestParameters")
    response_elements: dict[str, Any] | None = Field(default=None, alias="responseElements")
    error_code: str | None = Field(default=None, alias="errorCode")
    recipient_account_id: str | None = Field(default=None, alias="recipientAccountId")

    def place(self, home: Place) -> Place:
        """Where the call was made (a spoke's events reach the hub's bus too)."""
        account = self.recipient_account_id or self.user_identity.account_id or home.account
        return Place(account, self.aws_region)

    def request(self, name: str) -> Any:
        return (self.request_parameters or {}).get(name)

    def caused_by(self, role_arns: tuple[str, ...], spoke_role: str | None = None) -> bool:
        """Made by podid itself: one of its function roles, or (in a spoke) the
        spoke role it acts as there (`spoke_role`: the role name template)."""
        made_as = self.user_identity.role_arn
        return made_as in role_arns or is_spoke_role(made_as, spoke_role)


class EventBridgeEvent(BaseModel):
    """The envelope EventBridge puts around every event it delivers."""

    model_config = ConfigDict(populate_by_name=True)

    version: str
    id: str
    source: str
    account: str
    time: datetime
    region: str
    resources: list[str]
    detail_type: str = Field(alias="detail-type")
    detail: Any
    replay_name: str | None = Field(default=None, alias="replay-name")


class CloudTrailEvent(EventBridgeEvent):
    detail: CloudTrailDetail


class ScheduledEvent(EventBridgeEvent):
    detail: dict[str, Any] = Field(default_factory=dict)


class ClusterMessage(BaseModel):
    """Body of a per-cluster SQS message (reconcile and push queues)."""

    model_config = ConfigDict(extra="forbid")

    # "account/region/name" (also its FIFO message group: one writer per cluster);
    # a bare name, as earlier versions sent, means the hub's own account and region
    cluster: str = Field(min_length=1, max_length=128)
    reason: str = "unspecified"
    deep: bool = False
    suspects: tuple[str, ...] = ()  # association ids an event named: describe them afresh
    # declarations that just changed: read from the table itself, since the
    # index that lists declarations may not show them yet
    declarations: tuple[str, ...] = ()
    # set by whoever waits for this reconcile (the CLI): a receipt is recorded under it
    request_id: str | None = Field(default=None, max_length=64)

    @field_validator("cluster")
    @classmethod
    def _cluster_shape(cls, value: str) -> str:
        if is_full_ref(value):
            ClusterRef.parse(value)
        else:
            check_cluster_name(value)
        return value

    def ref(self, home: Place) -> ClusterRef:
        (ref,) = named_by(self.cluster, [home])
        return ref
