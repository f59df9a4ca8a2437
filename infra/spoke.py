"""The spoke: one account and region the hub manages (issue 16, hub and spokes).

A role the hub's functions assume, granted what the hub grants itself at home
(infra/functions.py), rules forwarding this account's EKS and IAM CloudTrail
events to the hub's bus, and a heartbeat on the hub's bus saying the spoke is here."""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, CfnCondition, CfnOutput, CfnResource, Duration, Fn, Stack, Token
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from functions.core.models import MANAGED_BY_TAG, Mode
from functions.core.spokes import SESSION_SECONDS, spoke_role_name
from functions.core.trust.consent import HARDEN_VALUE, REPAIR_VALUE
from functions.event_patterns import heartbeat_rule_name
from infra.config import SpokeConfig
from infra.events import IAM_EVENTS_REGION, eks_event_pattern, iam_event_pattern
from infra.functions import FUNCTIONS, function_name
from infra.nag import acknowledge

# the hub asks for sessions this long (functions.core.spokes)
MAX_SESSION = Duration.seconds(SESSION_SECONDS)
MAX_EVENT_AGE = Duration.hours(2)  # how long EventBridge retries a CloudTrail event


def hub_role_arns(config: SpokeConfig) -> list[str]:
    """The hub's function roles, the only principals the spoke role trusts."""
    return [
        f"arn:{config.partition}:iam::{config.hub_account}:role/"
        + function_name(config.hub_stack_name, name)
        for name in FUNCTIONS
    ]


class SpokeRole(Construct):
    """What the hub may do here: pod identity associations podid owns, roles under
    the role path, and in enforce mode trust repair of roles opted in by tag."""

    def __init__(self, scope: Construct, construct_id: str, config: SpokeConfig) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        conditions: dict[str, Any] = {}
        if config.organization_id:
            conditions["StringEquals"] = {"aws:PrincipalOrgID": config.organization_id}
        principals = [
            iam.ArnPrincipal(arn).with_conditions(conditions) for arn in hub_role_arns(config)
        ]
        self.role = iam.Role(
            self,
            "Role",
            role_name=spoke_role_name(config.hub_stack_name, stack.region),
            description=f"podid hub {config.hub_stack_name} ({config.hub_account}) manages here",
            assumed_by=iam.CompositePrincipal(*principals),
            external_ids=[config.external_id] if config.external_id else None,
            max_session_duration=MAX_SESSION,
        )
        self._grant(config, stack)

    def _allow(self, sid: str, actions: list[str], resources: list[str], **extra: Any) -> None:
        self.role.add_to_policy(
            iam.PolicyStatement(sid=sid, actions=actions, resources=resources, **extra)
        )

    def _grant(self, config: SpokeConfig, stack: Stack) -> None:
        partition, region, account = stack.partition, stack.region, stack.account
        clusters = f"arn:{partition}:eks:{region}:{account}:cluster/*"
        associations = f"arn:{partition}:eks:{region}:{account}:podidentityassociation/*"
        roles = f"arn:{partition}:iam::{account}:role{config.role_path}*"
        owner = config.owner_tag_value
        self._allow(
            "ReadClusters",
            ["eks:DescribeCluster", "eks:ListPodIdentityAssociations"],
            [clusters],
        )
        self._allow("DescribeAssociations", ["eks:DescribePodIdentityAssociation"], [associations])
        # no resource-level permissions: fleet discovery by tag
        self._allow("ListClusters", ["eks:ListClusters", "tag:GetResources"], ["*"])
        self._allow("ReadRoles", ["iam:GetRole", "iam:ListRoleTags"], [roles])
        if config.mode is Mode.PLAN:
            return  # plan writes nothing, so may write nothing
        self._allow("CreateAssociations", ["eks:CreatePodIdentityAssociation"], [clusters])
        self._allow(
            "ChangeOwnAssociations",
            [
                "eks:UpdatePodIdentityAssociation",
                "eks:DeletePodIdentityAssociation",
                "eks:TagResource",
                "eks:UntagResource",
            ],
            [associations],
            conditions={"StringEquals": {f"aws:ResourceTag/{MANAGED_BY_TAG}": owner}},
        )
        self._allow(
            "TagAssociationsAsOwn",
            ["eks:TagResource"],
            [associations],
            conditions={"StringEquals": {f"aws:RequestTag/{MANAGED_BY_TAG}": owner}},
        )
        self._allow(
            "PassRolesToPodIdentity",
            ["iam:PassRole"],
            [roles],
            conditions={"StringEquals": {"iam:PassedToService": "pods.eks.amazonaws.com"}},
        )
        if config.mode is Mode.ENFORCE:
            self._allow(
                "RepairOptedInRoles",
                ["iam:UpdateAssumeRolePolicy"],
                [roles],
                conditions={
                    "StringEquals": {
                        f"iam:ResourceTag/{config.repairable_role_tag}": [
                            REPAIR_VALUE,
                            HARDEN_VALUE,
                        ]
                    }
                },
            )


class Forwarder(Construct):
    """One rule putting events on the hub's bus, with its own dead-letter queue: a
    pattern's matches (CloudTrail) or a schedule's ticks (the heartbeat)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        description: str,
        bus: events.IEventBus,
        role: iam.IRole,
        pattern: events.EventPattern | None = None,
        schedule: events.Schedule | None = None,
        rule_name: str | None = None,
        max_event_age: Duration = MAX_EVENT_AGE,
    ) -> None:
        super().__init__(scope, construct_id)
        # what could not be delivered to the hub after retrying, kept 14 days
        self.undelivered = sqs.Queue(
            self,
            "Undelivered",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(
            self.undelivered,
            "AwsSolutions-SQS3",
            "This queue is itself the forwarding rule's dead-letter destination.",
        )
        self.rule = events.Rule(
            self,
            "Rule",
            rule_name=rule_name,
            description=description,
            event_pattern=pattern,
            schedule=schedule,
            # the target grants the role events:PutEvents on the hub's bus, nothing else
            targets=[targets.EventBus(bus, role=role, dead_letter_queue=self.undelivered)],
        )
        # the L2 event-bus target has no retry options; EventBridge supports them
        self.rule.node.default_child.add_property_override(  # type: ignore[union-attr]
            "Targets.0.RetryPolicy",
            {"MaximumRetryAttempts": 8, "MaximumEventAgeInSeconds": max_event_age.to_seconds()},
        )

    def only_if(self, condition: CfnCondition) -> None:
        # the rule, its queue and the queue's policy (which names the rule) together
        for child in self.node.find_all():
            if isinstance(child, CfnResource):
                child.cfn_options.condition = condition


class HubForwarding(Construct):
    """EKS (and, in us-east-1, IAM) CloudTrail events of this account, and a heartbeat,
    -> the hub's bus."""

    def __init__(self, scope: Construct, construct_id: str, config: SpokeConfig) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        bus = events.EventBus.from_event_bus_arn(self, "HubBus", config.hub_event_bus_arn)
        rules = f"arn:{stack.partition}:events:{stack.region}:{stack.account}:rule/*"
        self.role = iam.Role(
            self,
            "PutEventsRole",
            description="EventBridge forwards this account's CloudTrail events to the podid hub",
            assumed_by=iam.ServicePrincipal(
                "events.amazonaws.com",
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {"aws:SourceArn": rules},
                },
            ),
            max_session_duration=MAX_SESSION,
        )
        self.eks = Forwarder(
            self,
            "Eks",
            description="EKS CloudTrail changes -> the podid hub's bus",
            pattern=eks_event_pattern(stack.account),
            bus=bus,
            role=self.role,
        )
        self.iam: Forwarder | None = None
        in_iam_region = not Token.is_unresolved(stack.region) and stack.region == IAM_EVENTS_REGION
        if Token.is_unresolved(stack.region) or in_iam_region:
            self.iam = Forwarder(
                self,
                "Iam",
                description="IAM CloudTrail changes -> the podid hub's bus",
                pattern=iam_event_pattern(stack.account),
                bus=bus,
                role=self.role,
            )
        if self.iam is not None and Token.is_unresolved(stack.region):
            # one template for every region (StackSet): CloudFormation decides per region
            self.iam.only_if(
                CfnCondition(
                    self,
                    "InIamEventsRegion",
                    expression=Fn.condition_equals(Aws.REGION, IAM_EVENTS_REGION),
                )
            )
        # the hub learns of this account and region from it: no hub edit to join
        period = Duration.minutes(config.heartbeat_minutes)
        self.heartbeat = Forwarder(
            self,
            "Heartbeat",
            description="This account and region has a podid spoke -> the podid hub's bus",
            schedule=events.Schedule.rate(period),
            rule_name=heartbeat_rule_name(config.hub_stack_name),
            bus=bus,
            role=self.role,
            # a late heartbeat says nothing the next one will not
            max_event_age=period,
        )

    @property
    def forwarders(self) -> list[Forwarder]:
        return [f for f in (self.eks, self.iam, self.heartbeat) if f is not None]


class PodidSpokeStack(Stack):
    """Deploy once per account and region (or as a StackSet, infra/spoke_stackset.py)."""

    def __init__(
        self, scope: Construct, construct_id: str, config: SpokeConfig, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.spoke = SpokeRole(self, "Hub", config)
        self.forwarding = HubForwarding(self, "Forwarding", config)
        self._acknowledge()
        CfnOutput(
            self,
            "SpokeRoleArn",
            value=self.spoke.role.role_arn,
            description="The role the podid hub's functions assume in this account and region",
        )

    def _acknowledge(self) -> None:
        # cdk-nag writes a pseudo parameter as <AWS::Name>, a concrete env as itself
        region, account = (
            f"<AWS::{name}>" if Token.is_unresolved(value) else value
            for name, value in (("Region", self.region), ("AccountId", self.account))
        )
        scope = f"arn:<AWS::Partition>:eks:{region}:{account}:{{rest}}"
        reasons = {
            "Resource::*": "eks:ListClusters and tag:GetResources have no resource-level "
            "permissions; fleet clusters are found by tag at run time.",
            "Resource::" + scope.format(rest="cluster/*"): (
                "Clusters are enrolled at run time by fleet tag; scoped to this account and region."
            ),
            "Resource::" + scope.format(rest="podidentityassociation/*"): (
                "Association ids are generated by EKS; writes need the hub's owner tag."
            ),
            f"Resource::arn:<AWS::Partition>:iam::{account}:role{self.config.role_path}*": (
                "Roles are declared at run time; scoped to the configured role path, PassRole only "
                "to pods.eks.amazonaws.com, trust repairs only on roles tagged for it."
            ),
        }
        for finding, reason in reasons.items():
            acknowledge(self, f"AwsSolutions-IAM5[{finding}]", reason)
