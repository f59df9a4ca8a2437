"""Moving items of earlier versions to today's keys.

Before clusters had an account and region, a cluster's items were keyed
CLUSTER#<name> and named the cluster by its name alone. Each such cluster item
holds its ARN, so its account and region are known exactly: its items move to
CLUSTER#<account>#<region>#<name>, naming the cluster as "account/region/name",
and the declaration statuses' per-cluster problems follow.

Safe to run at any time and from several functions at once: an item is written
under its new key only if nothing newer is there, and the old one is deleted
only at the version that was copied. A run interrupted halfway is finished by
the next one; nothing is deleted before its copy is written."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Attr, ConditionBase, Key
from botocore.exceptions import ClientError

from functions.core import records
from functions.core.places import ClusterRef

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table


@dataclass
class Migrated:
    clusters: list[ClusterRef] = field(default_factory=list)
    items: int = 0
    declaration_statuses: int = 0


def legacy_clusters(table: Table) -> list[tuple[str, ClusterRef]]:
    """(old partition key, the cluster it holds) for each cluster item still keyed
    by name alone."""
    found = []
    for item in _query(
        table,
        IndexName=records.KIND_INDEX,
        KeyConditionExpression=Key(records.SK).eq(records.CLUSTER_SK),
    ):
        pk = str(item[records.PK])
        if records.legacy_cluster_name(pk) is None:
            continue
        stored = table.get_item(Key=records.item_key(item), ConsistentRead=True).get("Item")
        if stored is not None:
            found.append((pk, ClusterRef.of_arn(str(stored["arn"]))))
    return found


def migrate(table: Table) -> Migrated:
    done = Migrated()
    renamed: dict[str, ClusterRef] = {}
    for old_pk, ref in legacy_clusters(table):
        done.items += _move_cluster(table, old_pk, ref)
        done.clusters.append(ref)
        renamed[ref.name] = ref
    if renamed:
        done.declaration_statuses = _rename_problems(table, renamed)
    return done


def _move_cluster(table: Table, old_pk: str, ref: ClusterRef) -> int:
    moved = 0
    for item in list(
        _query(table, KeyConditionExpression=Key(records.PK).eq(old_pk), ConsistentRead=True)
    ):
        _put_unless_newer(table, records.moved_cluster_item(item, ref))
        _delete_at_version(table, item)
        moved += 1
    return moved


def _put_unless_newer(table: Table, item: dict[str, Any]) -> None:
    version = item.get(records.VERSION)
    condition: ConditionBase = Attr(records.PK).not_exists()
    if version is not None:
        condition = condition | Attr(records.VERSION).lt(version)
    try:
        table.put_item(Item=item, ConditionExpression=condition)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        # already there at the same or a newer version: a concurrent run, or today's code


def _delete_at_version(table: Table, item: dict[str, Any]) -> None:
    version = item.get(records.VERSION)
    kwargs: dict[str, Any] = {"Key": records.item_key(item)}
    if version is not None:
        kwargs["ConditionExpression"] = Attr(records.VERSION).eq(version)
    try:
        table.delete_item(**kwargs)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        # written again meanwhile by an older function still running: the next run moves it


def _rename_problems(table: Table, renamed: dict[str, ClusterRef]) -> int:
    changed = 0
    for key in list(
        _query(
            table,
            IndexName=records.KIND_INDEX,
            KeyConditionExpression=Key(records.SK).eq(records.DECLARATION_STATUS_SK),
        )
    ):
        item = table.get_item(Key=records.item_key(key), ConsistentRead=True).get("Item")
        if item is None:
            continue
        updated = records.renamed_problems(item, renamed)
        if updated is None:
            continue
        try:
            table.put_item(
                Item=updated, ConditionExpression=Attr(records.VERSION).eq(item[records.VERSION])
            )
            changed += 1
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            # rewritten meanwhile by today's code, which names clusters in full already
    return changed


def _query(table: Table, **kwargs: Any) -> Iterator[dict[str, Any]]:
    while True:
        page = table.query(**kwargs)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
