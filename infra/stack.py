"""The control-plane stack, and the us-east-1 IAM event forwarder."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, IgnoreMode, Stack
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from functions.core.spokes import spoke_role_name
from functions.event_patterns import heartbeat_rule_name
from infra.bundling import ROOT
from infra.config import DeployConfig
from infra.events import EventWiring, OrganizationBusPolicy, iam_event_pattern
from infra.functions import ControlPlaneFunctions, Shared, SpokeAccess
from infra.nag import acknowledge
from infra.observability import Observability
from infra.queues import ControlPlaneQueues
from infra.table import ControlPlaneTable


class ControlPlaneStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, config: DeployConfig, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        state = ControlPlaneTable(self, "State")
        self.table = state.table
        self.queues = ControlPlaneQueues(self, "Queues")
        self.key = kms.Key(
            self,
            "TopicKey",
            enable_key_rotation=True,
            description="podid findings and alarms topics",
        )
        # CloudWatch alarms publish to the encrypted alarms topic (Observability grants
        # that, for this stack's alarms only); nothing EventBridge-delivers to a topic.
        self.findings = sns.Topic(
            self,
            "Findings",
            display_name="podid trust findings",
            master_key=self.key,
            enforce_ssl=True,
        )
        shared = Shared(
            self.table, self.queues, self.findings, self.key, config, self._spoke_access(config)
        )
        self.functions = ControlPlaneFunctions(self, "Functions", shared)
        state.name_writers(
            declaration_writers=config.declaration_writers,
            cluster_enrollers=config.cluster_enrollers,
            functions=self.functions.role_arns,
            # sync records each declaration's status, reconcile its per-cluster problems
            declaration_functions=("sync", "reconcile"),
        )
        self.wiring = EventWiring(self, "Events", self.functions, shared, config)
        if config.organization_id:  # hub and spokes: the spokes forward to this bus
            bus = OrganizationBusPolicy(self, "OrganizationBus", config.organization_id)
            CfnOutput(
                self,
                "HubEventBusArn",
                value=bus.bus_arn,
                description="The spokes' hubEventBusArn (-c hubEventBusArn=...)",
            )
        self.observability = Observability(
            self,
            "Observability",
            functions=self.functions,
            queues=self.queues,
            key=self.key,
            alarm_email=config.alarm_email,
        )
        # Built and pushed by `cdk deploy` (Docker needed then, not for synth).
        self.agent_image = ecr_assets.DockerImageAsset(
            self,
            "NodeAgentImage",
            directory=str(ROOT),
            file="node_agent/Dockerfile",
            platform=ecr_assets.Platform.LINUX_ARM64,
            ignore_mode=IgnoreMode.DOCKER,
        )
        CfnOutput(self, "NodeAgentImageUri", value=self.agent_image.image_uri)
        # the webhook's map-sync sidecar on self-managed clusters: the Dockerfile's
        # map-sync target, with the Kubernetes client the agent image leaves out
        self.map_sync_image = ecr_assets.DockerImageAsset(
            self,
            "MapSyncImage",
            directory=str(ROOT),
            file="node_agent/Dockerfile",
            target="map-sync",
            platform=ecr_assets.Platform.LINUX_ARM64,
            ignore_mode=IgnoreMode.DOCKER,
        )
        CfnOutput(self, "MapSyncImageUri", value=self.map_sync_image.image_uri)
        CfnOutput(self, "TableName", value=self.table.table_name)
        CfnOutput(self, "FindingsTopicArn", value=self.findings.topic_arn)
        CfnOutput(
            self,
            "ReconcileQueueUrl",
            value=self.queues.reconcile.queue_url,
            description="`podid reconcile` and `podid cluster enroll` queue reconciles here "
            "(--queue-url or RECONCILE_QUEUE_URL)",
        )
        CfnOutput(
            self,
            "WebhookPushRoleArn",
            value=self.functions.webhook_push.role.role_arn,  # type: ignore[union-attr]
            description="Give this role an EKS access entry and configmap RBAC on each cluster",
        )

    def _spoke_access(self, config: DeployConfig) -> SpokeAccess | None:
        if not config.organization_id:
            return None  # one account and region: no spokes
        # the spokes name their roles and heartbeat rules after this stack
        return SpokeAccess(
            organization_id=config.organization_id,
            role_name=spoke_role_name(self.stack_name, "{region}"),
            role_name_pattern=spoke_role_name(self.stack_name, "*"),
            heartbeat_rule=heartbeat_rule_name(self.stack_name),
            external_id=config.external_id,
        )


class IamEventForwarderStack(Stack):
    """In us-east-1: forward IAM CloudTrail events to the home region's bus."""

    def __init__(
        self, scope: Construct, construct_id: str, home_region: str, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        home_bus = events.EventBus.from_event_bus_arn(
            self,
            "HomeBus",
            f"arn:{self.partition}:events:{home_region}:{self.account}:event-bus/default",
        )
        # what could not be delivered to the home bus after retrying, kept 14 days
        undelivered = sqs.Queue(
            self,
            "Undelivered",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(
            undelivered,
            "AwsSolutions-SQS3",
            "This queue is itself the forwarder's dead-letter destination.",
        )
        rule = events.Rule(
            self,
            "ForwardIamChanges",
            description=f"IAM role changes -> default bus in {home_region}",
            event_pattern=iam_event_pattern(self.account),
            targets=[targets.EventBus(home_bus, dead_letter_queue=undelivered)],
        )
        # the L2 event-bus target has no retry options; EventBridge supports them
        rule.node.default_child.add_property_override(  # type: ignore[union-attr]
            "Targets.0.RetryPolicy",
            {"MaximumRetryAttempts": 8, "MaximumEventAgeInSeconds": 7200},
        )
