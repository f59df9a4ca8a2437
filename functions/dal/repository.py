"""Every read and write of the control-plane table. Nothing else touches it.

Writes are optimistic: an item carries `version`; an update names the version
it read and fails with StaleWrite if someone wrote in between. Every listing
follows LastEvaluatedKey to the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from boto3.dynamodb.conditions import Attr, ConditionBase, Key
from botocore.exceptions import ClientError
from pydantic import ValidationError

from functions.core import records
from functions.core.errors import describe_validation_error
from functions.core.models import (
    AssociationKey,
    AssociationStatus,
    Cluster,
    Declaration,
    DeclarationStatus,
    FindingRecord,
    PushedMap,
)


class StaleWrite(Exception):
    """The item changed since it was read; read again and redo the decision."""


@dataclass(slots=True)
class DeclarationSet:
    valid: list[Declaration] = field(default_factory=list)
    invalid: dict[str, list[str]] = field(default_factory=dict)  # id -> problems


def parse_declaration(item: dict[str, Any]) -> Declaration | list[str]:
    """The declaration, or the exact problems that make it unusable."""
    try:
        return records.declaration_from_item(item)
    except ValidationError as error:
        return describe_validation_error(error)
    except ValueError as error:
        return [f"id: {error}"]


class Repository:
    def __init__(self, table: Any) -> None:
        self._table = table

    # --- low level --------------------------------------------------------------
    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        while True:
            page = self._table.query(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _put_versioned(self, item: dict[str, Any], expected_version: int) -> int:
        condition: ConditionBase
        if expected_version == 0:
            condition = Attr(records.PK).not_exists() | Attr(records.VERSION).not_exists()
        else:
            condition = Attr(records.VERSION).eq(expected_version)
        new_version = expected_version + 1
        try:
            self._table.put_item(
                Item={**item, records.VERSION: new_version}, ConditionExpression=condition
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise StaleWrite(f"{item[records.PK]} {item[records.SK]}") from error
            raise
        return new_version

    def _delete_versioned(self, key: dict[str, str], expected_version: int | None) -> None:
        kwargs: dict[str, Any] = {"Key": key}
        if expected_version is not None:
            kwargs["ConditionExpression"] = Attr(records.VERSION).eq(expected_version)
        try:
            self._table.delete_item(**kwargs)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise StaleWrite(f"{key}") from error
            raise

    # --- declarations --------------------------------------------------------------
    def put_declaration(self, declaration: Declaration) -> Declaration:
        version = self._put_versioned(records.declaration_to_item(declaration), declaration.version)
        return declaration.model_copy(update={"version": version})

    def get_declaration_item(self, declaration_id: str) -> dict[str, Any] | None:
        found = self._table.get_item(
            Key={
                records.PK: records.declaration_pk(declaration_id),
                records.SK: records.DECLARATION_SK,
            },
            ConsistentRead=True,
        )
        item: dict[str, Any] | None = found.get("Item")
        return item

    def delete_declaration(self, declaration_id: str, expected_version: int | None = None) -> None:
        self._delete_versioned(
            {
                records.PK: records.declaration_pk(declaration_id),
                records.SK: records.DECLARATION_SK,
            },
            expected_version,
        )

    def load_declarations(self) -> DeclarationSet:
        return self._collect(
            self._query(
                IndexName=records.ENTITY_INDEX,
                KeyConditionExpression=Key(records.ENTITY).eq("Declaration"),
            )
        )

    def declarations_for_role(self, role_arn: str) -> DeclarationSet:
        return self._collect(
            self._query(
                IndexName=records.ROLE_INDEX,
                KeyConditionExpression=Key(records.ROLE_INDEX_KEY).eq(role_arn),
            )
        )

    @staticmethod
    def _collect(items: Iterator[dict[str, Any]]) -> DeclarationSet:
        found = DeclarationSet()
        for item in items:
            if not records.is_declaration(item):
                continue
            parsed = parse_declaration(item)
            if isinstance(parsed, Declaration):
                found.valid.append(parsed)
            else:
                found.invalid[records.declaration_id_of(item) or "?"] = parsed
        found.valid.sort(key=lambda d: d.id)
        return found

    def get_declaration_status(self, declaration_id: str) -> DeclarationStatus | None:
        found = self._table.get_item(
            Key={
                records.PK: records.declaration_pk(declaration_id),
                records.SK: records.DECLARATION_STATUS_SK,
            }
        ).get("Item")
        return records.declaration_status_from_item(found) if found else None

    def save_declaration_status(self, status: DeclarationStatus) -> bool:
        """Write unless the stored status says the same; True when written."""
        current = self.get_declaration_status(status.declaration_id)
        if current is not None and (current.state, current.errors) == (status.state, status.errors):
            return False
        expected = current.version if current else 0
        self._put_versioned(records.declaration_status_to_item(status), expected)
        return True

    def delete_declaration_status(self, declaration_id: str) -> None:
        self._table.delete_item(
            Key={
                records.PK: records.declaration_pk(declaration_id),
                records.SK: records.DECLARATION_STATUS_SK,
            }
        )

    # --- clusters ------------------------------------------------------------------
    def list_clusters(self) -> list[Cluster]:
        items = self._query(
            IndexName=records.ENTITY_INDEX, KeyConditionExpression=Key(records.ENTITY).eq("Cluster")
        )
        return sorted((records.cluster_from_item(i) for i in items), key=lambda c: c.name)

    def get_cluster(self, name: str) -> Cluster | None:
        found = self._table.get_item(
            Key={records.PK: records.cluster_pk(name), records.SK: records.CLUSTER_SK},
            ConsistentRead=True,
        ).get("Item")
        return records.cluster_from_item(found) if found else None

    def save_cluster(self, cluster: Cluster) -> Cluster:
        version = self._put_versioned(records.cluster_to_item(cluster), cluster.version)
        return cluster.model_copy(update={"version": version})

    def forget_cluster(self, name: str) -> int:
        """Delete the cluster and everything recorded under it; returns items removed."""
        keys = [
            records.item_key(item)
            for item in self._query(
                KeyConditionExpression=Key(records.PK).eq(records.cluster_pk(name)),
                ProjectionExpression="#pk, #sk",
                ExpressionAttributeNames={"#pk": records.PK, "#sk": records.SK},
            )
        ]
        with self._table.batch_writer() as batch:
            for key in keys:
                batch.delete_item(Key=key)
        return len(keys)

    # --- association status ----------------------------------------------------------
    def association_statuses(self, cluster: str) -> dict[AssociationKey, AssociationStatus]:
        items = self._query(
            KeyConditionExpression=Key(records.PK).eq(records.cluster_pk(cluster))
            & Key(records.SK).begins_with(records.ASSOC_PREFIX),
            ConsistentRead=True,
        )
        statuses = (records.association_status_from_item(i) for i in items)
        return {s.key: s for s in statuses}

    def save_association_status(self, status: AssociationStatus) -> AssociationStatus:
        """`status.version` is the version read; the write fails if it moved."""
        version = self._put_versioned(records.association_status_to_item(status), status.version)
        return status.model_copy(update={"version": version})

    def delete_association_status(self, key: AssociationKey, expected_version: int | None) -> None:
        self._delete_versioned(
            {
                records.PK: records.cluster_pk(key.cluster),
                records.SK: records.association_sk(key.namespace, key.service_account),
            },
            expected_version,
        )

    # --- pushed maps -------------------------------------------------------------
    def pushed_map(self, cluster: str) -> PushedMap | None:
        found = self._table.get_item(
            Key={records.PK: records.cluster_pk(cluster), records.SK: records.MAP_SK},
            ConsistentRead=True,
        ).get("Item")
        return records.pushed_map_from_item(found) if found else None

    def record_push(self, pushed: PushedMap) -> PushedMap:
        version = self._put_versioned(records.pushed_map_to_item(pushed), pushed.version)
        return pushed.model_copy(update={"version": version})

    # --- findings ------------------------------------------------------------------
    def save_finding(self, record: FindingRecord, *, retention: timedelta) -> None:
        history, latest = records.finding_items(record, retain_until=record.observed_at + retention)
        with self._table.batch_writer() as batch:
            batch.put_item(Item=history)
            batch.put_item(Item=latest)

    def latest_finding(self, role_arn: str) -> FindingRecord | None:
        found = self._table.get_item(
            Key={records.PK: records.role_pk(role_arn), records.SK: records.LATEST_FINDING_SK}
        ).get("Item")
        return records.finding_from_item(found) if found else None

    def finding_history(self, role_arn: str, limit: int = 50) -> list[FindingRecord]:
        page = self._table.query(
            KeyConditionExpression=Key(records.PK).eq(records.role_pk(role_arn))
            & Key(records.SK).begins_with(records.FINDING_PREFIX),
            ScanIndexForward=False,
            Limit=limit + 1,
        )
        items = [i for i in page.get("Items", []) if i[records.SK] != records.LATEST_FINDING_SK]
        return [records.finding_from_item(i) for i in items[:limit]]

    def roles_with_findings(self) -> list[str]:
        """Roles that have a latest finding (for the CLI); a bounded scan of pointers."""
        roles: list[str] = []
        kwargs: dict[str, Any] = {
            "FilterExpression": Attr(records.SK).eq(records.LATEST_FINDING_SK),
            "ProjectionExpression": "#pk",
            "ExpressionAttributeNames": {"#pk": records.PK},
        }
        while True:
            page = self._table.scan(**kwargs)
            roles += [str(i[records.PK]).removeprefix("ROLE#") for i in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return sorted(roles)
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def take_repair_budget(
        self, role_arn: str, *, now: datetime, window_seconds: int, limit: int
    ) -> bool:
        """Atomically count one repair in the role's current window; False when spent."""
        window = int(now.timestamp()) // window_seconds
        try:
            self._table.update_item(
                Key={records.PK: records.role_pk(role_arn), records.SK: f"REPAIRS#{window}"},
                UpdateExpression="ADD #count :one SET #ttl = :ttl",
                ConditionExpression=Attr("count").not_exists() | Attr("count").lt(limit),
                ExpressionAttributeNames={"#count": "count", "#ttl": records.TTL_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":one": 1,
                    ":ttl": (window + 2) * window_seconds,
                },
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True
