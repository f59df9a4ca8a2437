"""What a cluster sync does with each planned operation, and when the map must
be pushed: decided in core, from statuses and declarations alone."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from functions.core.association_map import build_association_map
from functions.core.models import (
    AssociationKey,
    AssociationSpec,
    AssociationStatus,
    Declaration,
    DesiredAssociation,
    Mode,
    PushedMap,
    SyncState,
)
from functions.core.planner import Operation, OpKind
from functions.core.sync_plan import (
    adoptable_keys,
    effective_mode,
    is_drift,
    live_associations,
    map_push_needed,
    owned_ids,
    triage,
)
from tests.builders import OWNER, cluster, declaration, ref, role_arn

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
KEY = AssociationKey(ref("blue"), "payments", "api")
OLD = AssociationSpec(role_arn=role_arn("old"), tags={"pod-identity/managed-by": OWNER})
NEW = AssociationSpec(role_arn=role_arn("new"), tags={"pod-identity/managed-by": OWNER})
KEYS = [AssociationKey(ref("blue"), ns, sa) for ns in ("a", "b") for sa in ("x", "y")]


def status(
    key: AssociationKey = KEY,
    *,
    state: SyncState = SyncState.IN_SYNC,
    observed: AssociationSpec | None = NEW,
    association_id: str | None = "a-1",
    owned: bool = True,
) -> AssociationStatus:
    return AssociationStatus(
        key=key,
        declaration_id="app",
        association_id=association_id,
        observed=observed,
        state=state,
        last_synced_at=NOW,
        owned=owned,
    )


def update(key: AssociationKey = KEY, declaration_id: str = "app") -> Operation:
    """Put the declared spec back over a hand edit (NEW declared, OLD found)."""
    return Operation(
        OpKind.UPDATE,
        key,
        spec=NEW,
        current=OLD,
        association_id="a-1",
        declaration_id=declaration_id,
        changes=("role_arn",),
    )


def test_an_update_back_to_what_was_recorded_in_sync_is_drift() -> None:
    assert is_drift(update(), status())
    assert is_drift(update(), status(state=SyncState.DRIFTED))


def test_recreating_an_association_deleted_by_hand_is_drift() -> None:
    create = Operation(OpKind.CREATE, KEY, spec=NEW, declaration_id="app")
    assert is_drift(create, status())
    assert not is_drift(create, None)  # never recorded: a new declaration


def test_a_declaration_change_a_delete_or_a_key_not_in_sync_is_not_drift() -> None:
    # Given the declaration moved on: what was recorded is not what is asked now
    assert not is_drift(update(), status(observed=OLD))
    assert not is_drift(update(), status(observed=None))
    assert not is_drift(update(), None)
    for state in (SyncState.PENDING, SyncState.ERROR, SyncState.BLOCKED, SyncState.CONFLICT):
        assert not is_drift(update(), status(state=state))
    delete = Operation(OpKind.DELETE, KEY, current=NEW, association_id="a-1")
    assert not is_drift(delete, status())


def test_drift_is_reported_in_audit_and_healed_in_enforce() -> None:
    by_id = {"app": declaration()}
    ops, statuses = [update()], {KEY: status()}
    audit = triage(ops, statuses, by_id, heal_drift=None, mode=Mode.AUDIT)
    assert (audit.drifted, audit.apply, audit.planned) == (ops, [], [])
    enforce = triage(ops, statuses, by_id, heal_drift=None, mode=Mode.ENFORCE)
    assert (enforce.drifted, enforce.apply, enforce.planned) == ([], ops, [])


def test_a_declaration_can_lower_the_mode_never_raise_it() -> None:
    ops, statuses = [update()], {KEY: status()}
    lowered = {"app": declaration(mode="audit")}
    assert triage(ops, statuses, lowered, heal_drift=None, mode=Mode.ENFORCE).drifted == ops
    raised = {"app": declaration(mode="enforce")}
    assert triage(ops, statuses, raised, heal_drift=None, mode=Mode.AUDIT).drifted == ops
    assert effective_mode(raised["app"], Mode.AUDIT) is Mode.AUDIT
    assert effective_mode(None, Mode.ENFORCE) is Mode.ENFORCE


def test_an_explicit_heal_drift_wins_over_the_modes() -> None:
    ops, statuses, by_id = [update()], {KEY: status()}, {"app": declaration()}
    assert triage(ops, statuses, by_id, heal_drift=True, mode=Mode.AUDIT).apply == ops
    assert triage(ops, statuses, by_id, heal_drift=False, mode=Mode.ENFORCE).drifted == ops


modes = st.sampled_from(list(Mode))
states = st.sampled_from(list(SyncState))
operations = st.lists(
    st.builds(
        lambda key, kind: Operation(
            kind,
            key,
            spec=None if kind is OpKind.DELETE else NEW,
            current=None if kind is OpKind.CREATE else OLD,
            association_id=None if kind is OpKind.CREATE else "a-1",
            declaration_id="app",
        ),
        st.sampled_from(KEYS),
        st.sampled_from(list(OpKind)),
    ),
    max_size=4,
    unique_by=lambda op: op.key,
)
status_maps = st.dictionaries(
    st.sampled_from(KEYS),
    st.builds(
        lambda state, observed: (state, observed),
        states,
        st.sampled_from([OLD, NEW, None]),
    ),
).map(
    lambda found: {
        key: status(key, state=state, observed=observed) for key, (state, observed) in found.items()
    }
)


@given(operations, status_maps, modes, st.none() | st.booleans(), st.none() | modes)
def test_every_operation_is_planned_drifted_or_made_once_in_plan_order(
    ops: list[Operation],
    statuses: dict[AssociationKey, AssociationStatus],
    mode: Mode,
    heal_drift: bool | None,
    asked: Mode | None,
) -> None:
    by_id = {"app": declaration(mode=asked.value if asked else None)}
    decided = triage(ops, statuses, by_id, heal_drift=heal_drift, mode=mode)
    for part in (decided.planned, decided.drifted, decided.apply):
        assert part == [op for op in ops if op in part]  # plan order kept
    assert sorted(map(id, decided.planned + decided.drifted + decided.apply)) == sorted(
        map(id, ops)
    )
    if mode is Mode.PLAN:
        assert decided.planned == ops  # plan mode makes nothing
    if heal_drift is True and mode is not Mode.PLAN:
        assert decided.apply == ops
    if heal_drift is None and Mode.AUDIT in (mode, asked):
        # an audit deployment, or a declaration asking for audit, never heals drift
        assert not any(is_drift(op, statuses.get(op.key)) for op in decided.apply)


def test_only_recorded_ids_are_owned() -> None:
    statuses = {
        KEYS[0]: status(KEYS[0], association_id="mine"),
        KEYS[1]: status(KEYS[1], association_id="theirs", owned=False),
        KEYS[2]: status(KEYS[2], association_id=None),
    }
    assert owned_ids(statuses) == {"mine"}


def test_adoption_needs_the_declaration_to_ask_and_podid_to_heal() -> None:
    def wanted(declaration_id: str) -> DesiredAssociation:
        return DesiredAssociation(key=KEY, spec=NEW, declaration_id=declaration_id)

    adopting: dict[str, Declaration] = {"app": declaration(adopt=True)}
    plain: dict[str, Declaration] = {"app": declaration()}
    desired = {KEY: wanted("app")}
    assert adoptable_keys(desired, adopting, None, Mode.ENFORCE) == {KEY}
    assert adoptable_keys(desired, adopting, None, Mode.AUDIT) == set()
    assert adoptable_keys(desired, adopting, False, Mode.ENFORCE) == set()
    assert adoptable_keys(desired, plain, None, Mode.ENFORCE) == set()
    assert adoptable_keys({KEY: wanted("gone")}, adopting, None, Mode.ENFORCE) == set()


def pushed(sha256: str) -> PushedMap:
    return PushedMap(cluster=ref("blue"), sha256=sha256, generation=1, pushed_at=NOW)


def test_the_map_lists_only_associations_known_to_exist() -> None:
    statuses = [
        status(KEYS[0]),
        status(KEYS[1], observed=None),
        status(KEYS[2], association_id=None),
    ]
    assert [a.key for a in live_associations(statuses)] == [KEYS[0]]


def test_the_map_is_pushed_when_it_differs_from_the_last_push() -> None:
    blue = cluster("blue")
    statuses = [status(KEYS[0]), status(KEYS[1], observed=OLD)]
    built = build_association_map(blue, live_associations(statuses))
    assert not map_push_needed(blue, statuses, pushed(built.sha256))
    assert map_push_needed(blue, statuses, pushed("0" * 64))
    assert map_push_needed(blue, statuses[:1], pushed(built.sha256))


def test_a_cluster_never_pushed_gets_a_map_only_when_enrolled() -> None:
    blue = cluster("blue")
    assert map_push_needed(blue, [], None)  # an empty map still tells the webhook: nothing
    assert not map_push_needed(blue.model_copy(update={"enrolled": False}), [status()], None)
