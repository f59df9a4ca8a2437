"""The one place where table items and domain models meet.

Single-table layout (pk, sk):
  DECL#<id>          DECL                  Declaration (GSI byRole: roleArn)
  DECL#<id>          STATUS                DeclarationStatus (Accepted / Invalid + reasons)
  CLUSTER#<c>        CLUSTER               Cluster
  CLUSTER#<c>        ASSOC#<ns>#<sa>       AssociationStatus
  CLUSTER#<c>        MAP                   PushedMap (hash + generation of the last push)
  CLUSTER#<c>        RECONCILED#<request>  ReconcileReceipt of a requested reconcile (expires)
  SPOKE#<acct>#<rgn> SPOKE                 Spoke (a spoke account and region; byKind lists them)
  ROLE#<roleArn>     FINDING#<ts>#<event>  FindingRecord history (expires via TTL)
  ROLE#<roleArn>     FINDING#LATEST        latest FindingRecord
  ROLE#<roleArn>     REPAIRS#<window>      repair budget count (expires)
  IDEMPOTENCY#trust_guard  <event hash>    Powertools idempotency record (expires)
<c> is <account>#<region>#<name>: a cluster's name is unique only in its
account and region. Items of earlier versions, keyed CLUSTER#<name>, are moved
by functions/dal/migration.py.
Each function's IAM and the table's resource policy are keyed on these pk
prefixes (infra/functions.py, infra/table.py): a new kind of item needs them too.
A keys-only GSI on the sort key (byKind: sk, pk) lists every declaration
(sk DECL) and every cluster (sk CLUSTER) by query instead of a table scan,
with no attribute a hand-written record must remember to set; the items
themselves are then read from the base table with consistent reads, so a
lagging index never hands out an old version.

Items here are plain Python values (as boto3's resource layer and the
Powertools stream deserializer produce them), so numbers may be Decimal.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

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

PK, SK = "pk", "sk"
# Written by earlier versions to a now-removed index; still ignored when read.
ENTITY = "entity"
ROLE_INDEX, ROLE_INDEX_KEY = "byRole", "roleArn"
KIND_INDEX = "byKind"
TTL_ATTRIBUTE = "expiresAt"
VERSION = "version"
KEY_ATTRIBUTES = frozenset({PK, SK, ENTITY, TTL_ATTRIBUTE})

DECLARATION_SK = "DECL"
DECLARATION_STATUS_SK = "STATUS"
CLUSTER_SK = "CLUSTER"
MAP_SK = "MAP"
ASSOC_PREFIX = "ASSOC#"
FINDING_PREFIX = "FINDING#"
RECEIPT_PREFIX = "RECONCILED#"
LATEST_FINDING_SK = "FINDING#LATEST"
DECLARATION_PREFIX, CLUSTER_PREFIX, ROLE_PREFIX = "DECL#", "CLUSTER#", "ROLE#"
SPOKE_PREFIX = SPOKE_SK = "SPOKE"
TRUST_GUARD_IDEMPOTENCY_PK = "IDEMPOTENCY#trust_guard"


def declaration_pk(declaration_id: str) -> str:
    return f"DECL#{declaration_id}"


def cluster_pk(cluster: ClusterRef) -> str:
    return f"{CLUSTER_PREFIX}{cluster.account}#{cluster.region}#{cluster.name}"


def legacy_cluster_name(pk: str) -> str | None:
    """The cluster name of an item keyed as before clusters had an account and
    region (CLUSTER#<name>), else None."""
    if not pk.startswith(CLUSTER_PREFIX):
        return None
    rest = pk.removeprefix(CLUSTER_PREFIX)
    return None if "#" in rest else rest


def moved_cluster_item(item: Mapping[str, Any], ref: ClusterRef) -> dict[str, Any]:
    """An item of a cluster keyed by name alone, as today's code keys it."""
    moved = {**item, PK: cluster_pk(ref)}
    if isinstance(moved.get("key"), Mapping):  # an association status names its cluster
        moved["key"] = {**moved["key"], "cluster": str(ref)}
    if moved[SK] == MAP_SK or str(moved[SK]).startswith(RECEIPT_PREFIX):
        moved["cluster"] = str(ref)
    return moved


def renamed_problems(
    item: Mapping[str, Any], renamed: Mapping[str, ClusterRef]
) -> dict[str, Any] | None:
    """A declaration status whose per-cluster problems name clusters by name
    alone, with them named in full; None when none does."""
    problems = item.get("clusters")
    if not isinstance(problems, Mapping) or not any(name in renamed for name in problems):
        return None
    return {
        **item,
        "clusters": {
            str(renamed[name]) if name in renamed else name: why for name, why in problems.items()
        },
    }


def spoke_pk(place: Place) -> str:
    return f"{SPOKE_PREFIX}#{place.account}#{place.region}"


def spoke_to_item(spoke: Spoke) -> dict[str, Any]:
    return {PK: spoke_pk(spoke.place), SK: SPOKE_SK, **spoke.to_wire()}


def spoke_from_item(item: Mapping[str, Any]) -> Spoke:
    return Spoke.model_validate(body(item))


def role_pk(role_arn: str) -> str:
    return f"ROLE#{role_arn}"


def association_sk(namespace: str, service_account: str) -> str:
    return f"{ASSOC_PREFIX}{namespace}#{service_account}"


def item_key(item: Mapping[str, Any]) -> dict[str, str]:
    return {PK: item[PK], SK: item[SK]}


def is_declaration(item: Mapping[str, Any]) -> bool:
    return str(item.get(PK, "")).startswith("DECL#") and item.get(SK) == DECLARATION_SK


def declaration_id_of(item: Mapping[str, Any]) -> str | None:
    """The id a declaration item is stored under (even when its body is invalid)."""
    pk = str(item.get(PK, ""))
    return pk.removeprefix("DECL#") if pk.startswith("DECL#") else None


def body(item: Mapping[str, Any]) -> dict[str, Any]:
    """The record without its table bookkeeping, numbers as Python ints."""
    return {k: _plain(v) for k, v in item.items() if k not in KEY_ATTRIBUTES}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if type(value).__name__ == "Decimal":
        return int(value) if value == int(value) else float(value)
    return value


def declaration_to_item(declaration: Declaration) -> dict[str, Any]:
    return {
        PK: declaration_pk(declaration.id),
        SK: DECLARATION_SK,
        **declaration.to_wire(),
    }


def declaration_from_item(item: Mapping[str, Any]) -> Declaration:
    """Raises pydantic.ValidationError; `id` defaults to the one in the key."""
    fields = body(item)
    fields.setdefault("id", declaration_id_of(item))
    declaration = Declaration.model_validate(fields)
    stored_under = declaration_id_of(item)
    if stored_under is not None and stored_under != declaration.id:
        raise ValueError(
            f"id {declaration.id!r} differs from the key it is stored under "
            f"({declaration_pk(stored_under)!r})"
        )
    return declaration


def declaration_status_to_item(status: DeclarationStatus) -> dict[str, Any]:
    return {
        PK: declaration_pk(status.declaration_id),
        SK: DECLARATION_STATUS_SK,
        **status.to_wire(),
    }


def declaration_status_from_item(item: Mapping[str, Any]) -> DeclarationStatus:
    return DeclarationStatus.model_validate(body(item))


def cluster_to_item(cluster: Cluster) -> dict[str, Any]:
    return {PK: cluster_pk(cluster.ref), SK: CLUSTER_SK, **cluster.to_wire()}


def cluster_from_item(item: Mapping[str, Any]) -> Cluster:
    return Cluster.model_validate(body(item))


def association_status_to_item(status: AssociationStatus) -> dict[str, Any]:
    key = status.key
    wire = status.to_wire()
    wire["key"] = {
        "cluster": str(key.cluster),
        "namespace": key.namespace,
        "serviceAccount": key.service_account,
    }
    return {
        PK: cluster_pk(key.cluster),
        SK: association_sk(key.namespace, key.service_account),
        **wire,
    }


def association_status_from_item(item: Mapping[str, Any]) -> AssociationStatus:
    fields = body(item)
    raw_key = fields.pop("key")
    fields["key"] = AssociationKey(
        ClusterRef.parse(raw_key["cluster"]), raw_key["namespace"], raw_key["serviceAccount"]
    )
    return AssociationStatus.model_validate(fields)


def pushed_map_to_item(pushed: PushedMap) -> dict[str, Any]:
    return {PK: cluster_pk(pushed.cluster), SK: MAP_SK, **pushed.to_wire()}


def pushed_map_from_item(item: Mapping[str, Any]) -> PushedMap:
    return PushedMap.model_validate(body(item))


def finding_items(record: FindingRecord, *, retain_until: datetime) -> list[dict[str, Any]]:
    """History entry (expires) and the latest-finding pointer (kept)."""
    wire = record.to_wire()
    stamp = record.observed_at.isoformat()
    history = {
        PK: role_pk(record.role_arn),
        SK: f"{FINDING_PREFIX}{stamp}#{record.event_id or '-'}",
        TTL_ATTRIBUTE: int(retain_until.timestamp()),
        **wire,
    }
    latest = {PK: role_pk(record.role_arn), SK: LATEST_FINDING_SK, **wire}
    return [history, latest]


def finding_from_item(item: Mapping[str, Any]) -> FindingRecord:
    return FindingRecord.model_validate(body(item))


def receipt_to_item(receipt: ReconcileReceipt, *, retain_until: datetime) -> dict[str, Any]:
    return {
        PK: cluster_pk(receipt.cluster),
        SK: f"{RECEIPT_PREFIX}{receipt.request_id}",
        TTL_ATTRIBUTE: int(retain_until.timestamp()),
        **receipt.to_wire(),
    }


def receipt_from_item(item: Mapping[str, Any]) -> ReconcileReceipt:
    return ReconcileReceipt.model_validate(body(item))
