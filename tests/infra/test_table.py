"""The table's shape is the data layer's contract: keys, indexes, stream, safety."""

from aws_cdk.assertions import Match, Template

from functions.core import records


def test_table_keys_indexes_and_stream_match_the_records_module(template: Template) -> None:
    template.has_resource_properties(
        "AWS::DynamoDB::GlobalTable",
        {
            "KeySchema": [
                {"AttributeName": records.PK, "KeyType": "HASH"},
                {"AttributeName": records.SK, "KeyType": "RANGE"},
            ],
            "StreamSpecification": {"StreamViewType": "NEW_AND_OLD_IMAGES"},
            "TimeToLiveSpecification": {"AttributeName": records.TTL_ATTRIBUTE, "Enabled": True},
            "GlobalSecondaryIndexes": Match.array_with(
                [
                    Match.object_like(
                        {
                            "IndexName": records.ROLE_INDEX,
                            "KeySchema": [
                                {"AttributeName": records.ROLE_INDEX_KEY, "KeyType": "HASH"},
                                {"AttributeName": records.PK, "KeyType": "RANGE"},
                            ],
                        }
                    ),
                    Match.object_like(
                        {
                            "IndexName": records.KIND_INDEX,
                            "KeySchema": [
                                {"AttributeName": records.SK, "KeyType": "HASH"},
                                {"AttributeName": records.PK, "KeyType": "RANGE"},
                            ],
                            "Projection": {"ProjectionType": "KEYS_ONLY"},
                        }
                    ),
                ]
            ),
        },
    )


def test_table_survives_stack_deletion_and_keeps_backups(template: Template) -> None:
    template.has_resource(
        "AWS::DynamoDB::GlobalTable", {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}
    )
    template.has_resource_properties(
        "AWS::DynamoDB::GlobalTable",
        {
            "Replicas": [
                Match.object_like(
                    {
                        "DeletionProtectionEnabled": True,
                        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                    }
                )
            ]
        },
    )


def test_the_deployed_table_matches_the_schema_the_data_layer_and_sandbox_use(
    template: Template,
) -> None:
    from functions.dal.schema import create_table_params

    wanted = create_table_params("x")
    (table,) = template.find_resources("AWS::DynamoDB::GlobalTable").values()
    properties = table["Properties"]
    assert properties["KeySchema"] == wanted["KeySchema"]
    assert sorted(properties["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == sorted(
        wanted["AttributeDefinitions"], key=lambda a: a["AttributeName"]
    )
    deployed = {i["IndexName"]: i["KeySchema"] for i in properties["GlobalSecondaryIndexes"]}
    assert deployed == {i["IndexName"]: i["KeySchema"] for i in wanted["GlobalSecondaryIndexes"]}
