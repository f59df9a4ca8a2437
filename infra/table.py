"""The single DynamoDB table: declarations, clusters, status, findings, and
the resource policy naming who may write which items."""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import Annotations, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from functions.core import records

ITEM_WRITES = [
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
]
# PartiQL writes: nothing here uses them, so nobody may
PARTIQL_WRITES = ["dynamodb:PartiQLInsert", "dynamodb:PartiQLUpdate", "dynamodb:PartiQLDelete"]


def deny_item_writes(
    sid: str, leading_keys: dict[str, dict[str, list[str]]], except_principals: list[str]
) -> iam.PolicyStatement:
    """Item writes on these keys are denied to everyone but the named principals."""
    return iam.PolicyStatement(
        sid=sid,
        effect=iam.Effect.DENY,
        principals=[iam.AnyPrincipal()],
        actions=ITEM_WRITES,
        resources=["*"],
        conditions={**leading_keys, "ArnNotLike": {"aws:PrincipalArn": except_principals}},
    )


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

    def name_writers(
        self,
        *,
        declaration_writers: Iterable[str],
        cluster_enrollers: Iterable[str],
        functions: dict[str, str],
        declaration_functions: Iterable[str],
    ) -> None:
        """The resource policy: only the named writers (and the functions that
        record a declaration's status) write DECL# items; only the functions (and
        the named enrollers, for CLUSTER#) write anything else. The Denies hold
        against any identity policy in the account, AdministratorAccess included.

        `functions`: handler -> role ARN, built from role names (no reference to
        the roles themselves, which already depend on the table)."""
        writers, enrollers = list(declaration_writers), list(cluster_enrollers)
        control_plane = list(functions.values())
        anyone = iam.AnyPrincipal()
        decl, cluster = records.DECLARATION_PREFIX + "*", records.CLUSTER_PREFIX + "*"
        statements = []
        if writers:
            statements.append(
                iam.PolicyStatement(
                    sid="NamedWritersWriteDeclarations",
                    principals=[anyone],
                    actions=["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
                    resources=["*"],
                    conditions={
                        "ArnLike": {"aws:PrincipalArn": writers},
                        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": [decl]},
                    },
                )
            )
        else:
            Annotations.of(self).add_warning_v2(
                "podid:no-declaration-writers",
                "declarationWriters names nobody: no one outside the control plane can write "
                "declarations until it names the roles that may (cdk.json or -c)",
            )
        writing_declarations = writers + [functions[f] for f in declaration_functions]
        statements += [
            deny_item_writes(
                "OnlyNamedWritersWriteDeclarations",
                {"ForAnyValue:StringLike": {"dynamodb:LeadingKeys": [decl]}},
                writing_declarations,
            ),
            deny_item_writes(
                "OnlyControlPlaneAndEnrollersWriteClusters",
                {"ForAnyValue:StringLike": {"dynamodb:LeadingKeys": [cluster]}},
                control_plane + enrollers,
            ),
            # ownership records, findings, repair budgets, idempotency: the functions' alone
            deny_item_writes(
                "OnlyControlPlaneWritesItsState",
                {"ForAnyValue:StringNotLike": {"dynamodb:LeadingKeys": [decl, cluster]}},
                control_plane,
            ),
            iam.PolicyStatement(
                sid="NoPartiQLWrites",
                effect=iam.Effect.DENY,
                principals=[anyone],
                actions=PARTIQL_WRITES,
                resources=["*"],
            ),
        ]
        for statement in statements:
            self.table.add_to_resource_policy(statement)
