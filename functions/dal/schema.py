"""The table's key schema and indexes as CreateTable parameters: the sandbox
and tests create it from here; the CDK table is checked against it."""

from __future__ import annotations

from typing import Any

from functions.core import records


def create_table_params(table_name: str) -> dict[str, Any]:
    def index(name: str, partition: str, projection: str) -> dict[str, Any]:
        return {
            "IndexName": name,
            "KeySchema": [
                {"AttributeName": partition, "KeyType": "HASH"},
                {"AttributeName": records.PK, "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": projection},
        }

    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": "S"}
            for name in (records.PK, records.SK, records.ROLE_INDEX_KEY)
        ],
        "KeySchema": [
            {"AttributeName": records.PK, "KeyType": "HASH"},
            {"AttributeName": records.SK, "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [
            index(records.ROLE_INDEX, records.ROLE_INDEX_KEY, "ALL"),
            index(records.KIND_INDEX, records.SK, "KEYS_ONLY"),
        ],
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    }
