"""Domain models (pydantic v2). Field names are camelCase on the wire and in
DynamoDB, snake_case in Python, so records written by hand read naturally."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, NamedTuple

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)
from pydantic.alias_generators import to_camel

from functions.core.arns import (
    check_account_id,
    check_cluster_name,
    check_namespace,
    check_region,
    check_service_account,
    parse_cluster_arn,
    parse_role_arn,
    parse_role_name,
    role_arn_of,
)
from functions.core.endpoints import check_certificate_authority, check_self_managed_endpoint
from functions.core.places import SEPARATOR, ClusterRef, Place, is_full_ref

# EKS and IAM limits that declarations must respect.
MAX_SESSION_POLICY_CHARS = 2048
MAX_TAGS = 50
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
RESERVED_TAG_PREFIXES = ("aws:", "pod-identity/")
FLEET_TAG = "pod-identity/fleet"
MANAGED_BY_TAG = "pod-identity/managed-by"
DECLARATION_TAG = "pod-identity/declaration"
MAX_ASSOCIATIONS_PER_CLUSTER = 5000

_DECLARATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", re.ASCII)
# Characters IAM / EKS accept in tag keys and values.
_TAG_TEXT = re.compile(r"^[\w\s.:/=+\-@]*$")
_CONFIGMAP_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", re.ASCII)
# Organizations ids: an OU, and the root every OU path ends at
_OU_ID = re.compile(r"^ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}$", re.ASCII)
_ROOT_ID = re.compile(r"^r-[0-9a-z]{4,32}$", re.ASCII)


def _role_arn(value: str) -> str:
    parse_role_arn(value)
    return value


def _cluster_arn(value: str) -> str:
    parse_cluster_arn(value)
    return value


def _declaration_id(value: str) -> str:
    if not _DECLARATION_ID.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid declaration id (1-128 letters, digits, '.', '_' or "
            "'-', starting with a letter or digit)"
        )
    return value


def _fleet(value: str) -> str:
    if not 1 <= len(value) <= MAX_TAG_VALUE or not _TAG_TEXT.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid fleet name (1-256 letters, digits, spaces or "
            f"_ . : / = + - @; the value of the cluster tag {FLEET_TAG})"
        )
    return value


def _configmap_name(value: str) -> str:
    if len(value) > 253 or not _CONFIGMAP_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid ConfigMap name (DNS-1123 subdomain)")
    return value


def _role_name(value: str) -> str:
    parse_role_name(value)
    return value


def _organizational_unit(value: str) -> str:
    if not _OU_ID.fullmatch(value) and not _ROOT_ID.fullmatch(value):
        raise ValueError(
            f"{value!r} is not an AWS Organizations OU id (ou-<4-32 of a-z0-9>-<8-32 of "
            "a-z0-9>, e.g. ou-ab12-cd34ef56) nor a root id (r-<4-32 of a-z0-9>)"
        )
    return value


def _cluster_ref(value: object) -> object:
    return ClusterRef.parse(value) if isinstance(value, str) else value


RoleArnStr = Annotated[str, AfterValidator(_role_arn)]
# "[path/]name": the role of that name and path in each cluster's account
RoleNameStr = Annotated[str, AfterValidator(_role_name)]
AccountId = Annotated[str, AfterValidator(check_account_id)]
RegionName = Annotated[str, AfterValidator(check_region)]
OrganizationalUnitId = Annotated[str, AfterValidator(_organizational_unit)]
# a cluster's identity, "account/region/name" on the wire and in the table
ClusterId = Annotated[
    ClusterRef, BeforeValidator(_cluster_ref), PlainSerializer(str, return_type=str)
]
ClusterArnStr = Annotated[str, AfterValidator(_cluster_arn)]
ClusterName = Annotated[str, AfterValidator(check_cluster_name)]
Namespace = Annotated[str, AfterValidator(check_namespace)]
ServiceAccountName = Annotated[str, AfterValidator(check_service_account)]
DeclarationId = Annotated[str, AfterValidator(_declaration_id)]
FleetName = Annotated[str, AfterValidator(_fleet)]
ConfigMapName = Annotated[str, AfterValidator(_configmap_name)]


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="forbid",
        str_strip_whitespace=False,
    )

    def to_wire(self) -> dict[str, Any]:
        """camelCase JSON-compatible dict without unset optionals."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Mode(StrEnum):
    PLAN = "plan"  # zero writes to EKS and IAM: every intended change reported
    AUDIT = "audit"  # declarations applied to what podid owns; drift reported; no IAM writes
    ENFORCE = "enforce"  # also heals drift on what podid owns and repairs breakage


_WRITES = {Mode.PLAN: 0, Mode.AUDIT: 1, Mode.ENFORCE: 2}


def least_writing(deployment: Mode, *asked: Mode | None) -> Mode:
    """The deployment's mode, or less where a declaration asks for less: a
    table writer can never raise what podid may write."""
    return min([deployment, *(m for m in asked if m is not None)], key=_WRITES.__getitem__)


def _cluster_selector(value: str) -> str:
    if is_full_ref(value):
        return str(ClusterRef.parse(value))
    return check_cluster_name(value)


# a cluster name (that name in every account and region the target covers) or
# "account/region/name" (that one cluster)
ClusterSelector = Annotated[str, AfterValidator(_cluster_selector)]


_NARROWING = ("accounts", "regions", "organizationalUnits")


class Target(_Model):
    """Where a declaration applies: named clusters, a fleet, or both; narrowed,
    when given, to clusters in one of `accounts`, one of `regions` and under one
    of `organizational_units` (an OU covers the OUs below it)."""

    clusters: tuple[ClusterSelector, ...] = ()
    fleet: FleetName | None = None
    accounts: tuple[AccountId, ...] | None = None
    regions: tuple[RegionName, ...] | None = None
    organizational_units: tuple[OrganizationalUnitId, ...] | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Target:
        if not self.clusters and self.fleet is None:
            raise ValueError(
                "target is empty: name at least one cluster in target.clusters or a fleet in "
                f"target.fleet (matched against the cluster tag {FLEET_TAG}); accounts, "
                "regions and organizationalUnits only narrow those"
            )
        for field_name, values in zip(_NARROWING, self._narrowing(), strict=True):
            if values is None:
                continue
            if not values:
                raise ValueError(
                    f"target.{field_name} is empty, which would match no cluster: omit it "
                    "to allow every one"
                )
            if len(set(values)) != len(values):
                raise ValueError(f"target.{field_name} lists a value more than once")
        if len(set(self.clusters)) != len(self.clusters):
            raise ValueError("target.clusters lists a cluster more than once")
        for selector in self.clusters:
            if SEPARATOR in selector:
                self._named_outside(ClusterRef.parse(selector))
        return self

    def _narrowing(self) -> tuple[tuple[str, ...] | None, ...]:
        return (self.accounts, self.regions, self.organizational_units)

    def _named_outside(self, ref: ClusterRef) -> None:
        """A cluster named by account and region that the narrowing excludes is a
        contradiction in the record, not something to discover later."""
        if self.accounts is not None and ref.account not in self.accounts:
            raise ValueError(
                f"target.clusters names {ref} but target.accounts does not include "
                f"{ref.account}: add the account or remove the cluster"
            )
        if self.regions is not None and ref.region not in self.regions:
            raise ValueError(
                f"target.clusters names {ref} but target.regions does not include "
                f"{ref.region}: add the region or remove the cluster"
            )

    def names(self, cluster: Cluster) -> bool:
        return cluster.name in self.clusters or str(cluster.ref) in self.clusters

    def selects(self, cluster: Cluster) -> bool:
        """Named, or in the fleet, before any narrowing."""
        return self.names(cluster) or (self.fleet is not None and cluster.fleet == self.fleet)

    def outside(self, cluster: Cluster) -> str | None:
        """Why the narrowing (accounts, regions, OUs) excludes the cluster, if it does."""
        if self.accounts is not None and cluster.account not in self.accounts:
            return f"its account {cluster.account} is not in target.accounts"
        if self.regions is not None and cluster.place.region not in self.regions:
            return f"its region {cluster.place.region} is not in target.regions"
        if self.organizational_units is None:
            return None
        if not cluster.organizational_units:
            return (
                f"the OU of its account {cluster.account} is unknown (the hub could not read "
                "AWS Organizations: organizations:ListParents), so target.organizationalUnits "
                "cannot match it"
            )
        if not set(self.organizational_units) & set(cluster.organizational_units):
            return (
                f"its account {cluster.account} is not under any of target.organizationalUnits"
                f" (its OU path: {' < '.join(cluster.organizational_units)})"
            )
        return None

    def matches(self, cluster: Cluster) -> bool:
        return self.selects(cluster) and self.outside(cluster) is None

    def unmatched(self, clusters: Iterable[Cluster]) -> list[str]:
        """Named clusters none of these is."""
        return unmatched(self.clusters, clusters)


def unmatched(selectors: Iterable[str], clusters: Iterable[Cluster]) -> list[str]:
    """The cluster names and full references (target.clusters) none of these is."""
    known = list(clusters)
    seen = {c.name for c in known} | {str(c.ref) for c in known}
    return sorted(set(selectors) - seen)


def validate_tags(tags: dict[str, str]) -> dict[str, str]:
    if len(tags) > MAX_TAGS:
        raise ValueError(f"{len(tags)} tags given, EKS allows at most {MAX_TAGS}")
    for key, value in tags.items():
        if not 1 <= len(key) <= MAX_TAG_KEY or not _TAG_TEXT.fullmatch(key):
            raise ValueError(
                f"tag key {key!r} must be 1-{MAX_TAG_KEY} letters, digits, spaces "
                "or _ . : / = + - @"
            )
        if key.lower().startswith(RESERVED_TAG_PREFIXES):
            raise ValueError(
                f"tag key {key!r} uses a reserved prefix ({', '.join(RESERVED_TAG_PREFIXES)})"
            )
        if len(value) > MAX_TAG_VALUE or not _TAG_TEXT.fullmatch(value):
            raise ValueError(
                f"tag {key!r} value must be at most {MAX_TAG_VALUE} letters, digits, spaces "
                "or _ . : / = + - @"
            )
    return tags


def validate_session_policy(policy: str) -> str:
    if len(policy) > MAX_SESSION_POLICY_CHARS:
        raise ValueError(
            f"session policy has {len(policy)} characters, EKS allows at most "
            f"{MAX_SESSION_POLICY_CHARS}"
        )
    try:
        document = json.loads(policy)
    except json.JSONDecodeError as exc:
        raise ValueError(f"session policy is not valid JSON: {exc.msg} at char {exc.pos}") from exc
    if not isinstance(document, dict) or "Statement" not in document:
        raise ValueError("session policy must be a JSON object with a Statement")
    return policy


class Declaration(_Model):
    """ "Service account S in namespace N of clusters C gets role R".

    The role is `role_arn` (one role, which must be in the cluster's account) or
    `role_name` (the role of that path and name in each target cluster's
    account and partition): exactly one of them."""

    # `podid schema`: a record names its role exactly one way
    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["roleArn"]}, {"required": ["roleName"]}]}
    )

    id: DeclarationId
    namespace: Namespace
    service_account: ServiceAccountName
    role_arn: RoleArnStr | None = None
    role_name: RoleNameStr | None = None
    target_role_arn: RoleArnStr | None = None
    disable_session_tags: bool = False
    policy: Annotated[str, AfterValidator(validate_session_policy)] | None = None
    tags: Annotated[dict[str, str], AfterValidator(validate_tags)] = Field(default_factory=dict)
    target: Target
    mode: Mode | None = None
    # take over an association made outside podid on this key (never implicit)
    adopt: bool = False
    version: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Declaration:
        if (self.role_arn is None) == (self.role_name is None):
            raise ValueError(
                ("roleArn and roleName are both set" if self.role_arn else "no role is given")
                + ": give exactly one of roleArn (one role, in the cluster's account) or "
                "roleName ([<path>/]<name>: the role of that path and name in each target "
                "cluster's account)"
            )
        if self.policy is not None and not self.disable_session_tags:
            raise ValueError(
                "policy is set but disableSessionTags is false: EKS accepts a session policy "
                "only when session tags are disabled (set disableSessionTags: true)"
            )
        if self.target_role_arn is not None and self.role_arn is not None:
            role = parse_role_arn(self.role_arn)
            target = parse_role_arn(self.target_role_arn)
            if target.partition != role.partition:
                raise ValueError(
                    f"targetRoleArn is in partition {target.partition!r} but roleArn is in "
                    f"{role.partition!r}: role chaining cannot cross partitions"
                )
            if self.target_role_arn == self.role_arn:
                raise ValueError("targetRoleArn equals roleArn: omit targetRoleArn instead")
        return self

    @property
    def role_account(self) -> str | None:
        """The account of roleArn; None for roleName (each cluster's own account)."""
        return parse_role_arn(self.role_arn).account if self.role_arn else None

    @property
    def role_label(self) -> str:
        """The role as declared: an ARN, or a name resolved per account."""
        return self.role_arn or f"roleName {self.role_name}"

    @property
    def role_path_and_name(self) -> tuple[str, str]:
        """(IAM path, role name) of the association role, however it is declared."""
        if self.role_arn is not None:
            parsed = parse_role_arn(self.role_arn)
            return parsed.path, parsed.name
        return parse_role_name(str(self.role_name))

    def role_for(self, cluster: Cluster) -> str:
        """The association role's ARN on this cluster: roleArn as given, or roleName
        resolved in the cluster's account and partition."""
        if self.role_arn is not None:
            return self.role_arn
        path, name = self.role_path_and_name
        return role_arn_of(cluster.partition, cluster.account, path, name)

    def role_in_account_of(self, cluster: Cluster) -> bool:
        """Whether the association role is in the cluster's account, as EKS needs
        (always for roleName)."""
        return self.role_arn is None or self.role_account == cluster.account

    def spec(self, managed_by: str, cluster: Cluster) -> AssociationSpec:
        tags = {**self.tags, MANAGED_BY_TAG: managed_by, DECLARATION_TAG: self.id}
        return AssociationSpec(
            role_arn=self.role_for(cluster),
            target_role_arn=self.target_role_arn,
            disable_session_tags=self.disable_session_tags,
            policy=self.policy,
            tags=tags,
        )


class WebhookTarget(_Model):
    """The ConfigMap the in-cluster pod identity webhook reads."""

    namespace: Namespace = "kube-system"
    name: ConfigMapName = "pod-identity-associations"


class ClusterKind(StrEnum):
    EKS = "eks"  # where it is comes from EKS DescribeCluster, at push time
    # not EKS: the record a cluster enroller wrote (endpoint, CA, node role) is the truth
    SELF_MANAGED = "self-managed"


class Cluster(_Model):
    name: ClusterName
    arn: ClusterArnStr
    kind: ClusterKind = ClusterKind.EKS
    fleet: FleetName | None = None
    endpoint: str | None = None
    certificate_authority: str | None = None
    # self-managed: the role the node agent's sts backend runs as (what roles must trust)
    node_role_arn: RoleArnStr | None = None
    webhook: WebhookTarget = Field(default_factory=WebhookTarget)
    enrolled: bool = True
    enrolled_by: str = "tag"  # tag | declaration | cli
    # the account's OU path in AWS Organizations, nearest first, ending at the root;
    # empty when unknown (Organizations not readable)
    organizational_units: tuple[OrganizationalUnitId, ...] = ()
    version: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _arn_names_cluster(self) -> Cluster:
        if parse_cluster_arn(self.arn).name != self.name:
            raise ValueError(f"arn {self.arn!r} does not name cluster {self.name!r}")
        if self.kind is ClusterKind.SELF_MANAGED:
            check_self_managed_endpoint(self.endpoint)
            check_certificate_authority(self.certificate_authority)
            if self.node_role_arn is None:
                raise ValueError(
                    "nodeRoleArn is required for a self-managed cluster: the role its node "
                    "agents run as, which the associated roles must trust"
                )
        elif self.node_role_arn is not None:
            raise ValueError(
                "nodeRoleArn is only for self-managed clusters (EKS pods use EKS Auth)"
            )
        return self

    @property
    def self_managed(self) -> bool:
        return self.kind is ClusterKind.SELF_MANAGED

    @property
    def account(self) -> str:
        return parse_cluster_arn(self.arn).account

    @property
    def partition(self) -> str:
        return parse_cluster_arn(self.arn).partition

    @property
    def ref(self) -> ClusterRef:
        return ClusterRef.of_arn(self.arn)

    @property
    def place(self) -> Place:
        return self.ref.place


class AssociationKey(NamedTuple):
    cluster: ClusterRef
    namespace: str
    service_account: str

    def __str__(self) -> str:
        return f"{self.cluster}/{self.namespace}/{self.service_account}"


class AssociationSpec(_Model):
    """The mutable part of an association: what UpdatePodIdentityAssociation and
    TagResource can change in place."""

    role_arn: str
    target_role_arn: str | None = None
    disable_session_tags: bool = False
    policy: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class DesiredAssociation(_Model):
    key: AssociationKey
    spec: AssociationSpec
    declaration_id: str


class ActualAssociation(_Model):
    key: AssociationKey
    association_id: str
    association_arn: str | None = None
    spec: AssociationSpec
    # for sts:ExternalId in a cross-account target role's trust (set by EKS)
    external_id: str | None = None

    def managed_by(self, owner: str) -> bool:
        return self.spec.tags.get(MANAGED_BY_TAG) == owner


class SyncState(StrEnum):
    IN_SYNC = "InSync"
    PENDING = "Pending"
    DRIFTED = "Drifted"
    ERROR = "Error"
    CONFLICT = "Conflict"
    BLOCKED = "Blocked"  # an association podid did not create holds the key


class AssociationStatus(_Model):
    """What the control plane last saw and did for one association key."""

    key: AssociationKey
    declaration_id: str | None = None
    association_id: str | None = None
    association_arn: str | None = None
    observed: AssociationSpec | None = None
    state: SyncState
    reason: str | None = None
    last_synced_at: datetime
    effective_at: datetime | None = None
    external_id: str | None = None
    # association_id is one podid created (or adopted on request): only those
    # does it ever update or delete
    owned: bool = False
    # clientRequestToken of the last write podid made here: a new write gets a
    # new token because recording this one moves the status version. While
    # state is Pending it is the create podid is about to make (write-ahead).
    last_write: str | None = None
    version: int = 0

    @property
    def observed_role_arn(self) -> str | None:
        return self.observed.role_arn if self.observed else None

    def same_as(self, other: AssociationStatus) -> bool:
        """Equal in everything but bookkeeping (timestamps, version)."""
        ignore = {"last_synced_at", "effective_at", "version"}
        return self.model_dump(exclude=ignore) == other.model_dump(exclude=ignore)


class DeclarationState(StrEnum):
    ACCEPTED = "Accepted"
    INVALID = "Invalid"
    CONFLICT = "Conflict"


class DeclarationStatus(_Model):
    declaration_id: str
    state: DeclarationState
    errors: tuple[str, ...] = ()  # why the record is Invalid
    warnings: tuple[str, ...] = ()  # conflicts, clusters it cannot apply to
    # cluster -> why the association there is not in sync (Error / Conflict)
    clusters: dict[str, str] = Field(default_factory=dict)
    observed_at: datetime
    version: int = 0

    def same_as(self, other: DeclarationStatus) -> bool:
        """Equal in everything but bookkeeping (timestamp, version)."""
        ignore = {"observed_at", "version"}
        return self.model_dump(exclude=ignore) == other.model_dump(exclude=ignore)


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Finding(_Model):
    code: str
    severity: Severity
    message: str
    repairable: bool = False
    statement: int | None = None
    # the exact trust policy (JSON) a proposal would write
    proposed_policy: str | None = None


class FindingAction(StrEnum):
    REPORTED = "reported"
    REPAIRED = "repaired"
    REPAIR_FAILED = "repair-failed"
    REPAIR_SKIPPED = "repair-skipped"


class FindingRecord(_Model):
    role_arn: str
    findings: tuple[Finding, ...]
    action: FindingAction
    mode: Mode
    event_id: str | None = None
    event_name: str | None = None
    observed_at: datetime
    detail: str | None = None

    @property
    def has_errors(self) -> bool:
        return any(f.severity is Severity.ERROR for f in self.findings)


class PushedMap(_Model):
    cluster: ClusterId
    sha256: str
    generation: int = Field(ge=0)
    pushed_at: datetime
    version: int = 0


class ReconcileReceipt(_Model):
    """A requested reconcile ran (`podid reconcile --wait` waits for it)."""

    cluster: ClusterId
    request_id: str
    finished_at: datetime
    applied: int = 0
    failed: dict[str, str] = Field(default_factory=dict)  # association key -> reason


class SpokeState(StrEnum):
    JOINED = "Joined"  # its spoke role answers: its tagged clusters are managed
    UNREACHABLE = "Unreachable"  # spoke removed or AssumeRole denied: reported, nothing deleted


class Spoke(_Model):
    """An account and region that announced a spoke (its heartbeat reached the hub)."""

    account: Annotated[str, AfterValidator(check_account_id)]
    region: Annotated[str, AfterValidator(check_region)]
    state: SpokeState = SpokeState.JOINED
    reason: str | None = None  # why it is unreachable
    seen_at: datetime  # its last heartbeat
    checked_at: datetime | None = None  # the hub last acted there (or failed to)
    version: int = 0

    @property
    def place(self) -> Place:
        return Place(self.account, self.region)
