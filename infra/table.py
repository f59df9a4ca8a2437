"""The single DynamoDB table: declarations, clusters, status, findings."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from functions.core import records


class ControlPlaneTable(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        string = dynamodb.AttributeType.STRING
        self.table = dynamodb.TableV2(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name=records.PK, type=string),
            sort_key=dynamodb.Attribute(name=records.SK, type=string),
            billing=dynamodb.Billing.on_demand(),
            dynamo_stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
            time_to_live_attribute=records.TTL_ATTRIBUTE,
            global_secondary_indexes=[
                dynamodb.GlobalSecondaryIndexPropsV2(
                    index_name=records.ROLE_INDEX,
                    partition_key=dynamodb.Attribute(name=records.ROLE_INDEX_KEY, type=string),
                    sort_key=dynamodb.Attribute(name=records.PK, type=string),
                ),
                # Every declaration / cluster by its sort key, keys only: items are
                # then read consistently from the table (an index can lag).
                dynamodb.GlobalSecondaryIndexPropsV2(
                    index_name=records.KIND_INDEX,
                    partition_key=dynamodb.Attribute(name=records.SK, type=string),
                    sort_key=dynamodb.Attribute(name=records.PK, type=string),
                    projection_type=dynamodb.ProjectionType.KEYS_ONLY,
                ),
            ],
        )
