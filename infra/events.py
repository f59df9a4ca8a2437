"""Event wiring: the table's stream, CloudTrail rules, the schedule, the queues."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_lambda_event_sources as sources
from constructs import Construct

from functions.event_patterns import EKS_CHANGES, IAM_CHANGES, spoke_heartbeats
from infra.config import DeployConfig
from infra.functions import ControlPlaneFunctions, Shared

IAM_EVENTS_REGION = "us-east-1"  # IAM is global: CloudTrail emits its events there


def _resources(matchers: list[dict[str, str]]) -> list[str]:
    # the L2 pattern types resources as strings: its Match helper writes the matcher
    (matcher,) = matchers
    (kind, value), *others = matcher.items()
    if kind != "suffix" or others:
        raise ValueError(f"no CDK matcher written for resources {matchers!r}")
    return events.Match.suffix(value)


def _pattern(pattern: dict[str, Any], account: str | None) -> events.EventPattern:
    # one account's events only, whatever a bus policy ever lets in; None: every
    # account the bus admits (a hub's bus: the organization's)
    return events.EventPattern(
        account=None if account is None else [account],
        source=pattern["source"],
        detail_type=pattern["detail-type"],
        detail=pattern.get("detail"),
        resources=_resources(pattern["resources"]) if "resources" in pattern else None,
    )


def iam_event_pattern(account: str | None) -> events.EventPattern:
    return _pattern(IAM_CHANGES, account)


def eks_event_pattern(account: str | None) -> events.EventPattern:
    return _pattern(EKS_CHANGES, account)


class EventWiring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        functions: ControlPlaneFunctions,
        shared: Shared,
        config: DeployConfig,
    ) -> None:
        super().__init__(scope, construct_id)
        queues = shared.queues
        stack = Stack.of(self)
        # A hub takes its spokes' CloudTrail events too: its bus admits only the
        # organization's accounts, and no PutEvents can forge an aws.* source.
        account = None if shared.spokes else stack.account
        # Only declaration items start a sync: status and findings items also
        # flow through the stream and would only wake the function for nothing.
        functions.entry("sync").add_event_source(
            sources.DynamoEventSource(
                shared.table,
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=50,
                max_batching_window=Duration.seconds(2),
                bisect_batch_on_error=True,
                retry_attempts=5,
                max_record_age=Duration.hours(6),
                report_batch_item_failures=True,
                on_failure=sources.SqsDlq(queues.stream_failures),
                filters=[
                    lambda_.FilterCriteria.filter(
                        {"dynamodb": {"Keys": {"sk": {"S": lambda_.FilterRule.is_equal("DECL")}}}}
                    )
                ],
            )
        )
        functions.entry("webhook_push").add_event_source(
            sources.SqsEventSource(queues.push, batch_size=10, report_batch_item_failures=True)
        )
        functions.entry("reconcile").add_event_source(
            sources.SqsEventSource(queues.reconcile, batch_size=5, report_batch_item_failures=True)
        )

        def invoke(function: lambda_.IFunction) -> targets.LambdaFunction:
            return targets.LambdaFunction(
                function,
                dead_letter_queue=queues.event_failures,
                retry_attempts=4,
                max_event_age=Duration.hours(2),
            )

        # an event whose handling still fails after Lambda's own retries is kept, not dropped
        for function in (functions.entry("trust_guard"), functions.entry("reconcile")):
            function.configure_async_invoke(
                on_failure=destinations.SqsDestination(queues.event_failures),
                retry_attempts=2,
                max_event_age=Duration.hours(6),
            )
        self.iam_rule = events.Rule(
            self,
            "IamChanges",
            description="CloudTrail IAM role changes -> trust_guard",
            event_pattern=iam_event_pattern(account),
            targets=[invoke(functions.entry("trust_guard"))],
        )
        self.eks_rule = events.Rule(
            self,
            "EksChanges",
            description="CloudTrail EKS association and cluster changes -> reconcile",
            event_pattern=eks_event_pattern(account),
            targets=[invoke(functions.entry("reconcile"))],
        )
        self.schedule = events.Rule(
            self,
            "Schedule",
            description="Full reconcile pass and trust sweep of every declared role",
            schedule=events.Schedule.rate(Duration.minutes(config.schedule_minutes)),
            targets=[invoke(functions.entry("reconcile")), invoke(functions.entry("trust_guard"))],
        )
        self.heartbeats: events.Rule | None = None
        if shared.spokes:
            # a spoke's heartbeat: reconcile enrols that account and region's tagged clusters
            self.heartbeats = events.Rule(
                self,
                "SpokeHeartbeats",
                description="Spoke heartbeats (an account and region joined) -> reconcile",
                event_pattern=_pattern(spoke_heartbeats(stack.stack_name), None),
                targets=[invoke(functions.entry("reconcile"))],
            )


class OrganizationBusPolicy(Construct):
    """The hub's default bus admits events put by the organization's accounts only
    (the spokes' forwarding rules); anyone else's PutEvents stays refused."""

    def __init__(self, scope: Construct, construct_id: str, organization_id: str) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.bus_arn = (
            f"arn:{stack.partition}:events:{stack.region}:{stack.account}:event-bus/default"
        )
        # the L1: the L2 EventBusPolicy fails to resolve an AnyPrincipal statement in jsii
        self.policy = events.CfnEventBusPolicy(
            self,
            "Policy",
            event_bus_name="default",
            statement_id="podid-organization-spokes",
            statement={
                "Sid": "podid-organization-spokes",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "events:PutEvents",
                "Resource": self.bus_arn,
                "Condition": {"StringEquals": {"aws:PrincipalOrgID": organization_id}},
            },
        )
