"""Dashboard and alarms: what an on-call engineer looks at first."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from functions.service_names import NAMESPACE, SERVICE
from infra.functions import ControlPlaneFunctions
from infra.queues import ControlPlaneQueues


def _metric(name: str, statistic: str = "Sum") -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=NAMESPACE,
        metric_name=name,
        dimensions_map={"service": SERVICE},
        statistic=statistic,
        period=Duration.minutes(5),
    )


class Observability(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: ControlPlaneFunctions,
        queues: ControlPlaneQueues,
        key: kms.IKey,
        alarm_email: str | None,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self._prefix = f"{stack.stack_name}-"
        self.topic = sns.Topic(
            self, "Alarms", display_name="podid alarms", master_key=key, enforce_ssl=True
        )
        # CloudWatch may use the key for this stack's alarms only (confused deputy)
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsOfThisStack",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{stack.partition}:cloudwatch:{stack.region}:"
                        f"{stack.account}:alarm:{self._prefix}*"
                    },
                },
            )
        )
        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        notify = actions.SnsAction(self.topic)
        self.alarms: list[cloudwatch.Alarm] = []
        for queue in queues.dead_letter_queues:
            self._alarm(
                f"{queue.node.id}Depth",
                queue.metric_approximate_number_of_messages_visible(period=Duration.minutes(5)),
                f"messages waiting in {queue.node.id}: something could not be processed",
                notify,
            )
        for function in functions.all:
            name = function.node.id
            self._alarm(f"{name}Errors", function.metric_errors(), f"{name} errors", notify)
            self._alarm(
                f"{name}Throttles", function.metric_throttles(), f"{name} throttled", notify
            )
        self._alarm(
            "AssociationErrors", _metric("AssociationErrors"), "associations failing", notify
        )
        self._alarm("RepairsThrottled", _metric("RepairsThrottled"), "repair cap hit", notify)

        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=None)
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Associations",
                left=[
                    _metric("AssociationsCreated"),
                    _metric("AssociationsUpdated"),
                    _metric("AssociationsDeleted"),
                    _metric("DriftReported"),
                    _metric("AssociationErrors"),
                ],
            ),
            cloudwatch.GraphWidget(
                title="Trust policies",
                left=[
                    _metric("TrustFindingErrors"),
                    _metric("TrustPoliciesRepaired"),
                    _metric("RepairsThrottled"),
                ],
            ),
            cloudwatch.GraphWidget(
                title="Map pushes",
                left=[_metric("MapPushes"), _metric("MapPushesSkipped"), _metric("Parked")],
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Dead-letter queues",
                left=[
                    q.metric_approximate_number_of_messages_visible()
                    for q in queues.dead_letter_queues
                ],
            ),
            cloudwatch.GraphWidget(title="Errors", left=[f.metric_errors() for f in functions.all]),
            cloudwatch.GraphWidget(
                title="Duration p99",
                left=[f.metric_duration(statistic="p99") for f in functions.all],
            ),
        )

    def _alarm(
        self, name: str, metric: cloudwatch.IMetric, description: str, notify: actions.SnsAction
    ) -> None:
        alarm = cloudwatch.Alarm(
            self,
            name,
            alarm_name=f"{self._prefix}{name}",  # the key's SourceArn condition names these
            metric=metric,
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(notify)
        self.alarms.append(alarm)
