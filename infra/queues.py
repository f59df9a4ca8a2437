"""Queues: per-cluster work (push, reconcile) and where failures land."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.nag import acknowledge

RETENTION = Duration.days(14)
# The functions park a message's last failure with its reason (MAX_RECEIVE_COUNT).
MAX_RECEIVE_COUNT = 5


def _queue(scope: Construct, name: str, **options: object) -> sqs.Queue:
    return sqs.Queue(
        scope,
        name,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=RETENTION,
        **options,  # type: ignore[arg-type]
    )


class ControlPlaneQueues(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        # Failures that retrying cannot fix, parked by the functions with the reason.
        self.parked = _queue(self, "Parked")
        # The stream's on-failure destination (batch metadata after retries).
        self.stream_failures = _queue(self, "StreamFailures")
        # EventBridge targets that could not be invoked, and events whose handling still
        # failed after Lambda's asynchronous retries.
        self.event_failures = _queue(self, "EventFailures")
        self.push_dlq = _queue(self, "PushDlq", fifo=True)
        self.reconcile_dlq = _queue(self, "ReconcileDlq", fifo=True)
        # FIFO grouped by cluster: one push at a time per cluster, in order.
        self.push = _queue(
            self,
            "Push",
            fifo=True,
            content_based_deduplication=False,
            visibility_timeout=Duration.minutes(6),
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=MAX_RECEIVE_COUNT, queue=self.push_dlq
            ),
        )
        # Every change to a cluster's associations goes through here, FIFO grouped
        # by cluster: one writer per cluster, in order.
        self.reconcile = _queue(
            self,
            "Reconcile",
            fifo=True,
            content_based_deduplication=False,
            visibility_timeout=Duration.minutes(6),
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=MAX_RECEIVE_COUNT, queue=self.reconcile_dlq
            ),
        )
        for queue in (self.parked, self.stream_failures, self.event_failures):
            acknowledge(
                queue,
                "AwsSolutions-SQS3",
                "This queue is itself a dead-letter destination (failures land here).",
            )

    @property
    def dead_letter_queues(self) -> list[sqs.Queue]:
        return [
            self.parked,
            self.stream_failures,
            self.event_failures,
            self.push_dlq,
            self.reconcile_dlq,
        ]
