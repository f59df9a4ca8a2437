"""trust_guard's duplicate-event store follows the functions' configuration: after
a redeploy changes it (services.reset()), a warm container records handled events
where the new configuration says, not through a client and table kept from before."""

from typing import Any

from functions.core import records
from functions.dal.schema import create_table_params
from tests.integration.conftest import ACCOUNT, REGION, TABLE, World


def scheduled(event_id: str) -> dict[str, Any]:
    return {
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "version": "0",
        "id": event_id,
        "account": ACCOUNT,
        "time": "2026-11-25T00:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": {},
    }


def idempotency_keys(world: World, table: str) -> list[str]:
    items = world.client("dynamodb").query(
        TableName=table,
        KeyConditionExpression="#pk = :pk",
        ExpressionAttributeNames={"#pk": records.PK},
        ExpressionAttributeValues={":pk": {"S": records.TRUST_GUARD_IDEMPOTENCY_PK}},
    )["Items"]
    return [item[records.SK]["S"] for item in items]


def test_a_changed_table_takes_the_duplicate_event_store_with_it(world: World) -> None:
    # Given a warm container that has handled one scheduled sweep
    assert world.guard_event(scheduled("sweep-1"))["status"] == "swept"
    assert len(idempotency_keys(world, TABLE)) == 1
    # When a redeploy points the functions at another table
    moved = f"{TABLE}-moved"
    world.client("dynamodb").create_table(**create_table_params(moved))
    world.configure(table_name=moved)
    assert world.guard_event(scheduled("sweep-2"))["status"] == "swept"
    # Then the next event is recorded in the new table, and nothing more in the old one
    assert len(idempotency_keys(world, moved)) == 1
    assert len(idempotency_keys(world, TABLE)) == 1
