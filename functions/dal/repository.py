"""Every read and write of the control-plane table. Nothing else touches it.

Writes are optimistic: an item carries `version`; an update names the version
it read and fails with StaleWrite if someone wrote in between. Every listing
follows LastEvaluatedKey to the end.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

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
    ReconcileReceipt,
    Spoke,
)
from functions.core.places import ClusterRef, Place
from functions.dal import migration

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

_BATCH_GET = 100  # BatchGetItem's limit
_BATCH_GET_ATTEMPTS = 8
_STALE_ATTEMPTS = 5  # read-merge-write of an item many writers share


class StaleWrite(Exception):
    """The item changed since it was read; read again and redo the decision."""


@dataclass(slots=True)
class DeclarationSet:
    valid: list[Declaration] = field(default_factory=list)
    invalid: dict[str, list[str]] = field(default_factory=dict)  # id -> problems

    def replacing(self, ids: Iterable[str], fresh: DeclarationSet) -> DeclarationSet:
        """This set with the declarations `ids` as `fresh` has them (or gone)."""
        dropped = set(ids)
        valid = [d for d in self.valid if d.id not in dropped] + fresh.valid
        invalid = {k: v for k, v in self.invalid.items() if k not in dropped} | fresh.invalid
        return DeclarationSet(sorted(valid, key=lambda d: d.id), invalid)


def parse_declaration(item: dict[str, Any]) -> Declaration | list[str]:
    """The declaration, or the exact problems that make it unusable."""
    try:
        return records.declaration_from_item(item)
    except ValidationError as error:
        return describe_validation_error(error)
    except ValueError as error:
        return [f"id: {error}"]


class Repository:
    def __init__(self, table: Table) -> None:
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
        """Every declaration, each read consistently from the table."""
        return self._collect(self._kind(records.DECLARATION_SK))

    def declarations_by_id(self, declaration_ids: Iterable[str]) -> DeclarationSet:
        """These declarations as the table holds them now (consistent reads)."""
        keys = [
            {records.PK: records.declaration_pk(i), records.SK: records.DECLARATION_SK}
            for i in sorted(set(declaration_ids))
        ]
        return self._collect(self._batch_get(keys))

    def _kind(self, sort_key: str) -> Iterator[dict[str, Any]]:
        """Items of one kind: keys from the keys-only index (it may lag), the
        items themselves from the table with consistent reads."""
        keys = [
            records.item_key(item)
            for item in self._query(
                IndexName=records.KIND_INDEX,
                KeyConditionExpression=Key(records.SK).eq(sort_key),
            )
        ]
        return self._batch_get(keys)

    def _batch_get(self, keys: list[dict[str, str]]) -> Iterator[dict[str, Any]]:
        name = self._table.name
        client = self._table.meta.client  # the resource's client: plain Python values
        for start in range(0, len(keys), _BATCH_GET):
            request: dict[str, Any] = {
                name: {"Keys": keys[start : start + _BATCH_GET], "ConsistentRead": True}
            }
            for attempt in range(_BATCH_GET_ATTEMPTS):
                page = client.batch_get_item(RequestItems=request)
                yield from page["Responses"].get(name, [])
                request = page.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))
            else:
                raise RuntimeError(f"DynamoDB left {len(request[name]['Keys'])} keys unread")

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
            },
            ConsistentRead=True,
        ).get("Item")
        return records.declaration_status_from_item(found) if found else None

    def declaration_statuses(self, declaration_ids: Iterable[str]) -> dict[str, DeclarationStatus]:
        """The recorded statuses of these declarations (consistent reads, batched)."""
        keys = [
            {records.PK: records.declaration_pk(i), records.SK: records.DECLARATION_STATUS_SK}
            for i in sorted(set(declaration_ids))
        ]
        found = (records.declaration_status_from_item(i) for i in self._batch_get(keys))
        return {status.declaration_id: status for status in found}

    def save_declaration_status(self, status: DeclarationStatus) -> bool:
        """Write unless the stored status says the same; True when written.

        Per-cluster problems are kept: the cluster syncs own them."""
        for _ in range(_STALE_ATTEMPTS):
            current = self.get_declaration_status(status.declaration_id)
            merged = status.model_copy(update={"clusters": current.clusters if current else {}})
            if current is not None and current.same_as(merged):
                return False
            try:
                self._put_versioned(
                    records.declaration_status_to_item(merged), current.version if current else 0
                )
            except StaleWrite:
                continue
            return True
        raise StaleWrite(f"declaration status {status.declaration_id} keeps changing")

    def note_cluster_problem(
        self, declaration_id: str, ref: ClusterRef, problem: str | None, *, now: datetime
    ) -> bool:
        """Record (or clear, with None) why the declaration is not in sync on one
        cluster; nothing is written for a declaration without a status."""
        cluster = str(ref)  # "account/region/name"
        for _ in range(_STALE_ATTEMPTS):
            current = self.get_declaration_status(declaration_id)
            if current is None or current.clusters.get(cluster) == problem:
                return False
            clusters = {k: v for k, v in current.clusters.items() if k != cluster}
            if problem is not None:
                clusters[cluster] = problem
            updated = current.model_copy(update={"clusters": clusters, "observed_at": now})
            try:
                self._put_versioned(records.declaration_status_to_item(updated), current.version)
            except StaleWrite:
                continue
            return True
        raise StaleWrite(f"declaration status {declaration_id} keeps changing")

    def delete_declaration_status(self, declaration_id: str) -> None:
        self._table.delete_item(
            Key={
                records.PK: records.declaration_pk(declaration_id),
                records.SK: records.DECLARATION_STATUS_SK,
            }
        )

    # --- clusters ------------------------------------------------------------------
    def list_clusters(self) -> list[Cluster]:
        items = self._kind(records.CLUSTER_SK)
        return sorted((records.cluster_from_item(i) for i in items), key=lambda c: c.ref)

    def migrate_legacy_clusters(self) -> migration.Migrated:
        """Move items earlier versions keyed by cluster name alone (dal/migration.py)."""
        return migration.migrate(self._table)

    def has_legacy_cluster(self, name: str) -> bool:
        found = self._table.get_item(
            Key={records.PK: f"{records.CLUSTER_PREFIX}{name}", records.SK: records.CLUSTER_SK},
            ConsistentRead=True,
        ).get("Item")
        return found is not None

    def get_cluster(self, cluster: ClusterRef) -> Cluster | None:
        found = self._table.get_item(
            Key={records.PK: records.cluster_pk(cluster), records.SK: records.CLUSTER_SK},
            ConsistentRead=True,
        ).get("Item")
        return records.cluster_from_item(found) if found else None

    def save_cluster(self, cluster: Cluster) -> Cluster:
        version = self._put_versioned(records.cluster_to_item(cluster), cluster.version)
        return cluster.model_copy(update={"version": version})

    def forget_cluster(self, cluster: ClusterRef) -> int:
        """Delete the cluster and everything recorded under it; returns items removed."""
        keys = [
            records.item_key(item)
            for item in self._query(
                KeyConditionExpression=Key(records.PK).eq(records.cluster_pk(cluster)),
                ProjectionExpression="#pk, #sk",
                ExpressionAttributeNames={"#pk": records.PK, "#sk": records.SK},
            )
        ]
        with self._table.batch_writer() as batch:
            for key in keys:
                batch.delete_item(Key=key)
        return len(keys)

    # --- spokes ------------------------------------------------------------------
    def list_spokes(self) -> list[Spoke]:
        items = self._kind(records.SPOKE_SK)
        return sorted((records.spoke_from_item(i) for i in items), key=lambda s: s.place)

    def get_spoke(self, place: Place) -> Spoke | None:
        found = self._table.get_item(
            Key={records.PK: records.spoke_pk(place), records.SK: records.SPOKE_SK},
            ConsistentRead=True,
        ).get("Item")
        return records.spoke_from_item(found) if found else None

    def save_spoke(self, spoke: Spoke) -> Spoke:
        version = self._put_versioned(records.spoke_to_item(spoke), spoke.version)
        return spoke.model_copy(update={"version": version})

    # --- association status ----------------------------------------------------------
    def association_statuses(self, cluster: ClusterRef) -> dict[AssociationKey, AssociationStatus]:
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
    def pushed_map(self, cluster: ClusterRef) -> PushedMap | None:
        found = self._table.get_item(
            Key={records.PK: records.cluster_pk(cluster), records.SK: records.MAP_SK},
            ConsistentRead=True,
        ).get("Item")
        return records.pushed_map_from_item(found) if found else None

    def record_push(self, pushed: PushedMap) -> PushedMap:
        version = self._put_versioned(records.pushed_map_to_item(pushed), pushed.version)
        return pushed.model_copy(update={"version": version})

    # --- reconcile receipts ---------------------------------------------------------
    def record_receipt(self, receipt: ReconcileReceipt, *, retention: timedelta) -> None:
        self._table.put_item(
            Item=records.receipt_to_item(receipt, retain_until=receipt.finished_at + retention)
        )

    def receipt(self, cluster: ClusterRef, request_id: str) -> ReconcileReceipt | None:
        found = self._table.get_item(
            Key={
                records.PK: records.cluster_pk(cluster),
                records.SK: f"{records.RECEIPT_PREFIX}{request_id}",
            },
            ConsistentRead=True,
        ).get("Item")
        return records.receipt_from_item(found) if found else None

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
