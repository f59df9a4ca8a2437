from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from functions.core import records
from functions.core.models import (
    AssociationKey,
    AssociationSpec,
    AssociationStatus,
    DeclarationState,
    DeclarationStatus,
    Finding,
    FindingAction,
    FindingRecord,
    Mode,
    PushedMap,
    Severity,
    SyncState,
)
from tests.builders import cluster, declaration, ref, role_arn

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_declaration_round_trips_through_its_item_with_gsi_attributes() -> None:
    decl = declaration(tags={"team": "a"}, version=3)
    item = records.declaration_to_item(decl)
    assert item["pk"] == "DECL#app"
    assert item["sk"] == "DECL"
    assert "entity" not in item  # no attribute beyond what the README shows
    assert item[records.ROLE_INDEX_KEY] == role_arn()
    # numbers come back from DynamoDB as Decimal
    assert records.declaration_from_item({**item, "version": Decimal(3)}) == decl
    assert records.is_declaration(item)


def test_hand_written_item_may_omit_id_but_not_contradict_its_key() -> None:
    item = {k: v for k, v in records.declaration_to_item(declaration()).items() if k != "id"}
    assert records.declaration_from_item(item).id == "app"
    with pytest.raises(ValueError, match="differs from the key"):
        records.declaration_from_item({**item, "id": "other"})


def test_invalid_declaration_item_raises_validation_error_naming_the_field() -> None:
    item = {**records.declaration_to_item(declaration()), "namespace": "Bad_NS"}
    with pytest.raises(ValidationError, match="namespace"):
        records.declaration_from_item(item)
    assert records.declaration_id_of(item) == "app"


def test_other_items_round_trip() -> None:
    blue = cluster("blue")
    assert records.cluster_from_item(records.cluster_to_item(blue)) == blue
    status = AssociationStatus(
        key=AssociationKey(ref("blue"), "payments", "api"),
        declaration_id="app",
        association_id="a-1",
        observed=AssociationSpec(role_arn=role_arn(), tags={"team": "a"}),
        state=SyncState.IN_SYNC,
        last_synced_at=NOW,
    )
    item = records.association_status_to_item(status)
    assert (item["pk"], item["sk"]) == ("CLUSTER#111122223333#eu-west-1#blue", "ASSOC#payments#api")
    assert records.association_status_from_item(item) == status
    assert status.observed_role_arn == role_arn()
    decl_status = DeclarationStatus(
        declaration_id="app",
        state=DeclarationState.INVALID,
        errors=("namespace: bad",),
        observed_at=NOW,
    )
    assert (
        records.declaration_status_from_item(records.declaration_status_to_item(decl_status))
        == decl_status
    )
    pushed = PushedMap(cluster=ref("blue"), sha256="ab" * 32, generation=2, pushed_at=NOW)
    item = records.pushed_map_to_item(pushed)
    assert (item["pk"], item["cluster"]) == ("CLUSTER#111122223333#eu-west-1#blue", str(ref()))
    assert records.pushed_map_from_item(item) == pushed


def test_an_item_keyed_by_name_alone_is_read_as_earlier_versions_wrote_it() -> None:
    assert records.legacy_cluster_name("CLUSTER#blue") == "blue"
    assert records.legacy_cluster_name("CLUSTER#111122223333#eu-west-1#blue") is None
    assert records.legacy_cluster_name("DECL#blue") is None
    old_status = {
        "pk": "CLUSTER#blue",
        "sk": "ASSOC#payments#api",
        "key": {"cluster": "blue", "namespace": "payments", "serviceAccount": "api"},
        "state": "InSync",
        "lastSyncedAt": NOW.isoformat(),
        "version": 3,
    }
    moved = records.moved_cluster_item(old_status, ref("blue"))
    assert moved["pk"] == "CLUSTER#111122223333#eu-west-1#blue"
    assert records.association_status_from_item(moved).key == AssociationKey(
        ref("blue"), "payments", "api"
    )
    assert moved["version"] == 3  # the same record, moved: its version goes with it
    old_map = {
        "pk": "CLUSTER#blue",
        "sk": "MAP",
        "cluster": "blue",
        "sha256": "ab" * 32,
        "generation": 4,
        "pushedAt": NOW.isoformat(),
        "version": 4,
    }
    assert records.pushed_map_from_item(records.moved_cluster_item(old_map, ref())).cluster == ref()
    problems = {"pk": "DECL#d", "sk": "STATUS", "clusters": {"blue": "why", "lab": "other"}}
    renamed = records.renamed_problems(problems, {"blue": ref("blue")})
    assert renamed is not None
    assert renamed["clusters"] == {str(ref("blue")): "why", "lab": "other"}
    assert records.renamed_problems(renamed, {"blue": ref("blue")}) is None


def test_finding_history_expires_and_latest_pointer_does_not() -> None:
    record = FindingRecord(
        role_arn=role_arn(),
        findings=(Finding(code="PI030", severity=Severity.WARNING, message="m", repairable=True),),
        action=FindingAction.REPAIRED,
        mode=Mode.ENFORCE,
        event_id="e-1",
        observed_at=NOW,
    )
    history, latest = records.finding_items(record, retain_until=NOW + timedelta(days=90))
    assert history["sk"].startswith("FINDING#2026-11-25T12:00:00+00:00#e-1")
    assert history["expiresAt"] == int((NOW + timedelta(days=90)).timestamp())
    assert latest["sk"] == "FINDING#LATEST"
    assert "expiresAt" not in latest
    assert records.finding_from_item(latest) == record
