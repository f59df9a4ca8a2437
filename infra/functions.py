"""The four Lambda functions and the least privilege each one needs."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Aws, Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from functions.core import records
from functions.core.models import MANAGED_BY_TAG, Mode, PushedMap
from functions.core.trust.consent import HARDEN_VALUE, REPAIR_VALUE
from infra.bundling import function_code
from infra.config import DeployConfig
from infra.nag import acknowledge
from infra.queues import MAX_RECEIVE_COUNT, ControlPlaneQueues

# The newest runtime whose exact Python can compile the shipped bytecode here
# (see README, "Lambda packages and cold starts"); infra/locks.py resolves for it.
RUNTIME = lambda_.Runtime.PYTHON_3_13
ITEM_READS = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"]
ITEM_WRITES = [
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
]
DECLARATIONS = records.DECLARATION_PREFIX + "*"
CLUSTERS = records.CLUSTER_PREFIX + "*"
ROLES = records.ROLE_PREFIX + "*"
SPOKES = records.SPOKE_PREFIX + "#*"
# the attributes of the one item the push writes (CLUSTER#<name> / MAP)
PUSHED_MAP_ATTRIBUTES = [
    records.PK,
    records.SK,
    *(field.alias or name for name, field in PushedMap.model_fields.items()),
]
FUNCTIONS = ("sync", "trust_guard", "reconcile", "webhook_push")
RETENTION = {
    7: logs.RetentionDays.ONE_WEEK,
    30: logs.RetentionDays.ONE_MONTH,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    731: logs.RetentionDays.TWO_YEARS,
}


def function_name(stack_name: str, name: str) -> str:
    """A function's name, and its role's: what a spoke's trust policy names."""
    return f"{stack_name}-{name.replace('_', '-')}"[:64]


@dataclass(frozen=True)
class SpokeAccess:
    """Hub and spokes: how the functions reach the spokes of the organization."""

    organization_id: str
    # the spoke role's name with a literal "{region}" (one role per account and region)
    role_name: str
    # that name with "*" for the region: the roles the functions may assume
    role_name_pattern: str
    heartbeat_rule: str
    external_id: str | None


@dataclass(frozen=True)
class Shared:
    table: dynamodb.ITableV2
    queues: ControlPlaneQueues
    findings: sns.Topic
    findings_key: kms.Key
    config: DeployConfig
    spokes: SpokeAccess | None = None


class ControlPlaneFunctions(Construct):
    def __init__(self, scope: Construct, construct_id: str, shared: Shared) -> None:
        super().__init__(scope, construct_id)
        self._shared = shared
        # two packages, each holding what its functions import: only the push
        # carries the Kubernetes client
        code = function_code(RUNTIME, "lambda")
        push_code = function_code(RUNTIME, "lambda-push")
        stack = Stack.of(self)
        # unique per stack unless chosen: two stacks in one account never share it
        self.owner = shared.config.owner or stack.stack_name[:64]
        self.names = {name: function_name(stack.stack_name, name) for name in FUNCTIONS}
        self.role_arns = {
            name: f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/{self.names[name]}"
            for name in self.names
        }
        self.sync = self._function("sync", code, "sync: declarations -> associations")
        self.trust_guard = self._function("trust_guard", code, "trust_guard: IAM trust policies")
        self.reconcile = self._function("reconcile", code, "reconcile: drift and fleet membership")
        self.webhook_push = self._function(
            "webhook_push", push_code, "webhook_push: maps to clusters"
        )
        self._grant()
        by_name = dict(zip(FUNCTIONS, self.all, strict=True))
        self._entries: dict[str, lambda_.IFunction] = {
            name: self._entry(name, function) for name, function in by_name.items()
        }

    def entry(self, name: str) -> lambda_.IFunction:
        """What event sources and rules invoke: the function, or with SnapStart
        its published version's alias (an unpublished $LATEST never restores
        from a snapshot)."""
        return self._entries[name]

    def _entry(self, name: str, function: lambda_.Function) -> lambda_.IFunction:
        if not self._shared.config.snap_start:
            return function
        return lambda_.Alias(
            self, f"{name}-live", alias_name="live", version=function.current_version
        )

    @property
    def all(self) -> list[lambda_.Function]:
        """In the order of FUNCTIONS."""
        return [self.sync, self.trust_guard, self.reconcile, self.webhook_push]

    def _environment(self) -> dict[str, str]:
        shared, config = self._shared, self._shared.config
        return {
            "TABLE_NAME": shared.table.table_name,
            "PUSH_QUEUE_URL": shared.queues.push.queue_url,
            "RECONCILE_QUEUE_URL": shared.queues.reconcile.queue_url,
            "DEAD_LETTER_QUEUE_URL": shared.queues.parked.queue_url,
            "MAX_RECEIVE_COUNT": str(MAX_RECEIVE_COUNT),
            "MODE": config.mode.value,
            "OWNER": self.owner,
            "EVENT_BUS_NAME": "default",
            "FINDINGS_TOPIC_ARN": shared.findings.topic_arn,
            "SELF_ROLE_ARNS": ",".join(self.role_arns.values()),
            "ROLE_PATH": config.role_path,
            "REPAIR_LIMIT": str(config.repair_limit),
            "REPAIRABLE_ROLE_TAG": config.repairable_role_tag,
            "WEBHOOK_NAMESPACE": config.webhook_namespace,
            "WEBHOOK_CONFIGMAP": config.webhook_configmap,
            "AWS_MAX_ATTEMPTS": "8",
            "POWERTOOLS_SERVICE_NAME": "podid",
            "POWERTOOLS_METRICS_NAMESPACE": "PodIdentityControlPlane",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            **self._spoke_environment(),
            **(
                {"TARGET_ROLE_ACCOUNTS": ",".join(config.target_role_accounts)}
                if config.target_role_accounts
                else {}
            ),
        }

    def _spoke_environment(self) -> dict[str, str]:
        spokes = self._shared.spokes
        if spokes is None:
            return {}
        found = {
            # the hub's own place, without asking STS at each cold start
            "ACCOUNT_ID": Aws.ACCOUNT_ID,
            "ORGANIZATION_ID": spokes.organization_id,
            "SPOKE_ROLE_NAME": spokes.role_name,
            "SPOKE_HEARTBEAT_RULE": spokes.heartbeat_rule,
        }
        if spokes.external_id:
            found["SPOKE_EXTERNAL_ID"] = spokes.external_id
        return found

    def _function(self, name: str, code: lambda_.Code, description: str) -> lambda_.Function:
        role = iam.Role(
            self,
            f"{name}-role",
            role_name=self.names[name],
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"podid {name}",
        )
        log_group = logs.LogGroup(
            self,
            f"{name}-logs",
            log_group_name=f"/aws/lambda/{self.names[name]}",
            retention=RETENTION[self._shared.config.log_retention_days],
        )
        log_group.grant_write(role)
        return lambda_.Function(
            self,
            name,
            function_name=self.names[name],
            description=description,
            runtime=RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            handler=f"functions.handlers.{name}.handler",
            code=code,
            role=role,
            memory_size=512,
            timeout=Duration.minutes(5),
            environment=self._environment(),
            # the invocation segments only: the package carries no X-Ray SDK
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            # bounded blast radius; per-cluster ordering comes from the event sources
            reserved_concurrent_executions=5,
            snap_start=(
                lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS
                if self._shared.config.snap_start
                else None
            ),
        )

    # --- least privilege -------------------------------------------------------------
    def _grant(self) -> None:
        shared, config = self._shared, self._shared.config
        queues = shared.queues
        for function in self.all:
            queues.parked.grant_send_messages(function)
        self._grant_items()
        # one writer per cluster: only reconcile changes associations and asks for pushes
        queues.push.grant_send_messages(self.reconcile)
        for function in (self.sync, self.reconcile):
            queues.reconcile.grant_send_messages(function)
        region, account, partition = Aws.REGION, Aws.ACCOUNT_ID, Aws.PARTITION
        cluster_arns = f"arn:{partition}:eks:{region}:{account}:cluster/*"
        association_arns = f"arn:{partition}:eks:{region}:{account}:podidentityassociation/*"
        role_arns = f"arn:{partition}:iam::{account}:role{config.role_path}*"
        # sync describes clusters a declaration names (enrolment), nothing more
        self.sync.add_to_role_policy(
            iam.PolicyStatement(
                sid="DescribeNamedClusters",
                actions=["eks:DescribeCluster"],
                resources=[cluster_arns],
            )
        )
        # the push asks EKS where each cluster is at push time, never the table
        self.webhook_push.add_to_role_policy(
            iam.PolicyStatement(
                sid="DescribeClustersToPush",
                actions=["eks:DescribeCluster"],
                resources=[cluster_arns],
            )
        )
        function = self.reconcile  # the one writer of associations
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="ManageAssociations",
                actions=[
                    "eks:DescribeCluster",
                    "eks:ListPodIdentityAssociations",
                    "eks:CreatePodIdentityAssociation",
                ],
                resources=[cluster_arns],
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="DescribeAssociations",
                actions=["eks:DescribePodIdentityAssociation"],
                resources=[association_arns],
            )
        )
        # Defence in depth for ownership by recorded id: writes only to associations
        # carrying this stack's owner tag, and tagging only to set or keep it.
        owner_tag = f"aws:ResourceTag/{MANAGED_BY_TAG}"
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="ChangeOwnAssociations",
                actions=[
                    "eks:UpdatePodIdentityAssociation",
                    "eks:DeletePodIdentityAssociation",
                    "eks:TagResource",
                    "eks:UntagResource",
                ],
                resources=[association_arns],
                conditions={"StringEquals": {owner_tag: self.owner}},
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="TagAssociationsAsOwn",
                actions=["eks:TagResource"],
                resources=[association_arns],
                conditions={"StringEquals": {f"aws:RequestTag/{MANAGED_BY_TAG}": self.owner}},
            )
        )
        # CreatePodIdentityAssociation passes the role to EKS, for pods only.
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="PassRolesToPodIdentity",
                actions=["iam:PassRole"],
                resources=[role_arns],
                conditions={"StringEquals": {"iam:PassedToService": "pods.eks.amazonaws.com"}},
            )
        )
        self.reconcile.add_to_role_policy(
            iam.PolicyStatement(sid="ListClusters", actions=["eks:ListClusters"], resources=["*"])
        )
        # every cluster's tags in one paged call: the schedule sees missed fleet tag changes
        self.reconcile.add_to_role_policy(
            iam.PolicyStatement(
                sid="ListClusterTags", actions=["tag:GetResources"], resources=["*"]
            )
        )
        self.trust_guard.add_to_role_policy(
            iam.PolicyStatement(
                sid="ReadRoles",
                actions=["iam:GetRole", "iam:ListRoleTags"],
                resources=[role_arns],
            )
        )
        if config.mode is Mode.ENFORCE:
            self.trust_guard.add_to_role_policy(
                iam.PolicyStatement(
                    sid="RepairOptedInRoles",
                    actions=["iam:UpdateAssumeRolePolicy"],
                    resources=[role_arns],
                    conditions={
                        "StringEquals": {
                            f"iam:ResourceTag/{config.repairable_role_tag}": [
                                REPAIR_VALUE,
                                HARDEN_VALUE,
                            ]
                        }
                    },
                )
            )
        self.trust_guard.add_to_role_policy(
            iam.PolicyStatement(
                sid="PublishFindings",
                actions=["events:PutEvents"],
                resources=[f"arn:{partition}:events:{region}:{account}:event-bus/default"],
            )
        )
        shared.findings.grant_publish(self.trust_guard)
        self._grant_spokes()
        self._acknowledge()

    def _grant_spokes(self) -> None:
        """Each function does in a spoke what it does at home (sync and the push describe
        clusters, reconcile manages associations, the guard reads and repairs trust), so
        each assumes the spoke role; no session tags are set, so no sts:TagSession."""
        spokes = self._shared.spokes
        if spokes is None:
            return
        for function in self.all:
            function.add_to_role_policy(
                iam.PolicyStatement(
                    sid="AssumeSpokeRoles",
                    actions=["sts:AssumeRole"],
                    resources=[f"arn:{Aws.PARTITION}:iam::*:role/{spokes.role_name_pattern}"],
                    conditions={"StringEquals": {"aws:ResourceOrgID": spokes.organization_id}},
                )
            )
        # discovery records each spoke account's OU path (target.organizationalUnits):
        # Organizations answers the management account or a delegated administrator
        for function in (self.sync, self.reconcile):
            function.add_to_role_policy(
                iam.PolicyStatement(
                    sid="ReadOrganizationalUnits",
                    actions=["organizations:ListParents"],
                    resources=[
                        f"arn:{Aws.PARTITION}:organizations::*:account/{spokes.organization_id}/*",
                        f"arn:{Aws.PARTITION}:organizations::*:ou/{spokes.organization_id}/*",
                    ],
                )
            )

    def _items(
        self,
        function: lambda_.Function,
        sid: str,
        actions: list[str],
        leading_keys: list[str],
        attributes: list[str] | None = None,
    ) -> None:
        """Table items whose partition key matches `leading_keys`. ForAllValues
        holds for a request naming no key at all, so no statement here may allow
        an action without keys (Scan, PartiQL)."""
        conditions: dict[str, dict[str, list[str]]] = {
            "ForAllValues:StringLike": {"dynamodb:LeadingKeys": leading_keys}
        }
        if attributes is not None:
            conditions["ForAllValues:StringEquals"] = {"dynamodb:Attributes": attributes}
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid=sid,
                actions=actions,
                resources=[self._shared.table.table_arn],
                conditions=conditions,
            )
        )

    def _indexes(self, function: lambda_.Function, *names: str) -> None:
        # byKind is keys-only (items are then read by key, under _items); byRole holds
        # declarations, which only the trust guard queries it for
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="QueryIndexes",
                actions=["dynamodb:Query"],
                resources=[f"{self._shared.table.table_arn}/index/{name}" for name in names],
            )
        )

    def _grant_items(self) -> None:
        """Each function reads and writes only the item keys it uses (see
        functions/core/records.py for the layout)."""
        for function in (self.sync, self.reconcile):
            # declarations (their STATUS items are written here), cluster records and
            # the spokes where clusters are looked for
            self._items(
                function,
                "ReadDeclarationsClustersSpokes",
                ITEM_READS,
                [DECLARATIONS, CLUSTERS, SPOKES],
            )
            self._items(function, "WriteStatusAndClusters", ITEM_WRITES, [DECLARATIONS, CLUSTERS])
            self._indexes(function, records.KIND_INDEX)
        # heartbeats record spokes, discovery their state
        self._items(self.reconcile, "WriteSpokes", ITEM_WRITES, [SPOKES])
        guard = self.trust_guard
        self._items(
            guard,
            "ReadDeclarationsClustersFindingsSpokes",
            ITEM_READS,
            [DECLARATIONS, CLUSTERS, ROLES, SPOKES],
        )
        self._items(guard, "WriteFindingsAndRepairBudgets", ITEM_WRITES, [ROLES])
        self._items(
            guard,
            "Idempotency",
            ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
            [records.TRUST_GUARD_IDEMPOTENCY_PK],
        )
        self._indexes(guard, records.KIND_INDEX, records.ROLE_INDEX)
        push = self.webhook_push
        self._items(
            push, "ReadClusterAndStatuses", ["dynamodb:GetItem", "dynamodb:Query"], [CLUSTERS]
        )
        # IAM cannot name a sort key: the attributes allowed are those of the MAP item only
        self._items(
            push, "RecordPushedMap", ["dynamodb:PutItem"], [CLUSTERS], PUSHED_MAP_ATTRIBUTES
        )

    def _acknowledge(self) -> None:
        # cdk-nag names resources with pseudo parameters written as <AWS::Name>
        scope = "arn:<AWS::Partition>:{service}:<AWS::Region>:<AWS::AccountId>:{rest}"
        role_path = self._shared.config.role_path
        reasons = {
            "Resource::*": "eks:ListClusters, tag:GetResources and X-Ray PutTraceSegments/"
            "PutTelemetryRecords have no resource-level permissions.",
            "Resource::" + scope.format(service="eks", rest="cluster/*"): (
                "Clusters are enrolled at run time by fleet tag; scoped to this account and region."
            ),
            "Resource::" + scope.format(service="eks", rest="podidentityassociation/*"): (
                "Association ids are generated by EKS; scoped to this account and region."
            ),
            f"Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:role{role_path}*": (
                "Roles are declared at run time; scoped to the configured role path, PassRole only "
                "to pods.eks.amazonaws.com, trust repairs only on roles tagged for it."
            ),
            "Action::kms:GenerateDataKey*": "Publishing to the KMS-encrypted findings topic.",
            "Action::kms:ReEncrypt*": "Part of the KMS grant CDK makes for an encrypted topic.",
        }
        spokes = self._shared.spokes
        if spokes is not None:
            spoke_roles = f"arn:<AWS::Partition>:iam::*:role/{spokes.role_name_pattern}"
            reasons["Resource::" + spoke_roles] = (
                "An account joins by deploying the spoke, with no edit in the hub, so the spoke "
                "account cannot be named: aws:ResourceOrgID bounds it to the organization, the "
                "name to this hub's spoke roles, whose trust names these function roles."
            )
            for kind in ("account", "ou"):
                path = f"arn:<AWS::Partition>:organizations::*:{kind}/{spokes.organization_id}/*"
                reasons["Resource::" + path] = (
                    "Any account or OU of this organization may hold a spoke; the management "
                    "account's id is not part of the hub's configuration."
                )
        for finding, reason in reasons.items():
            acknowledge(self, f"AwsSolutions-IAM5[{finding}]", reason)
        acknowledge(
            self,
            "AwsSolutions-L1",
            f"{RUNTIME.name} is supported as long as the newest Python runtime (to June 2029) and "
            "its exact interpreter is available where we build, so the packages ship bytecode "
            "compiled for it (cold imports 2-3x faster); see README, Lambda packages.",
        )
