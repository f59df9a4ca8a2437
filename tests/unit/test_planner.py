from hypothesis import given
from hypothesis import strategies as st

from functions.core.models import (
    ActualAssociation,
    AssociationKey,
    AssociationSpec,
    DesiredAssociation,
)
from functions.core.planner import OpKind, apply_plan, plan
from tests.builders import OWNER, actual, role_arn

KEYS = [AssociationKey("blue", ns, sa) for ns in ("a", "b") for sa in ("x", "y", "z")]
ROLES = [role_arn(n) for n in ("r1", "r2", "r3")]

# builds() on the class would also fill the camelCase aliases; go through kwargs only
specs = st.builds(
    lambda **fields: AssociationSpec(**fields),  # noqa: PLW0108
    role_arn=st.sampled_from(ROLES),
    target_role_arn=st.none() | st.sampled_from(ROLES),
    disable_session_tags=st.booleans(),
    tags=st.dictionaries(
        st.sampled_from(["team", "env"]), st.sampled_from(["a", "b"]), max_size=2
    ).map(lambda t: {**t, "pod-identity/managed-by": OWNER}),
)
desired_states = st.dictionaries(st.sampled_from(KEYS), specs).map(
    lambda d: {k: DesiredAssociation(key=k, spec=s, declaration_id="d") for k, s in d.items()}
)
actual_states = st.dictionaries(
    st.sampled_from(KEYS),
    st.tuples(specs, st.booleans()),
).map(
    lambda d: {
        k: ActualAssociation(
            key=k,
            association_id=f"id-{i}",
            spec=s if managed else s.model_copy(update={"tags": {}}),
        )
        for i, (k, (s, managed)) in enumerate(d.items())
    }
)


def desired(key, role, **tags):
    spec = AssociationSpec(role_arn=role, tags={**tags, "pod-identity/managed-by": OWNER})
    return DesiredAssociation(key=key, spec=spec, declaration_id="d")


@given(desired_states, actual_states, st.sets(st.sampled_from(KEYS), max_size=2))
def test_applying_the_plan_converges_and_a_second_plan_is_empty(want, have, hold):
    operations = plan(want, have, owner=OWNER, hold=hold)
    after = apply_plan(have, operations)
    for key, wanted in want.items():
        if key in hold:
            assert after.get(key) == have.get(key)
        else:
            assert after[key].spec == wanted.spec
    for key, association in after.items():
        if key not in want:
            # only unowned or held associations survive undeclared
            assert key in hold or not association.managed_by(OWNER)
    assert plan(want, after, owner=OWNER, hold=hold) == []


@given(desired_states, actual_states)
def test_never_delete_then_create_where_update_suffices(want, have):
    operations = plan(want, have, owner=OWNER)
    touched = [op.key for op in operations]
    assert len(touched) == len(set(touched))
    kinds = [op.kind for op in operations]
    assert kinds == sorted(kinds, key=[OpKind.DELETE, OpKind.UPDATE, OpKind.CREATE].index)


@given(desired_states)
def test_an_empty_diff_yields_no_operations(want):
    have = {k: ActualAssociation(key=k, association_id="id", spec=d.spec) for k, d in want.items()}
    assert plan(want, have, owner=OWNER) == []


def test_role_change_is_an_in_place_update_with_the_changed_fields():
    key = KEYS[0]
    (op,) = plan(
        {key: desired(key, ROLES[1])},
        {key: actual(key, ROLES[0], association_id="a-1")},
        owner=OWNER,
    )
    assert op.kind is OpKind.UPDATE
    assert op.association_id == "a-1"
    assert op.changes == ("role_arn",)
    assert op.updates_association


def test_tag_only_change_needs_no_association_update():
    key = KEYS[0]
    (op,) = plan({key: desired(key, ROLES[0], team="a")}, {key: actual(key, ROLES[0])}, owner=OWNER)
    assert op.changes == ("tags",)
    assert not op.updates_association
    assert op.tags_to_set == {"team": "a"}
    assert op.tags_to_remove == []


def test_unowned_association_on_a_declared_key_is_adopted_not_recreated():
    key = KEYS[0]
    (op,) = plan(
        {key: desired(key, ROLES[0])}, {key: actual(key, ROLES[0], managed=False)}, owner=OWNER
    )
    assert op.kind is OpKind.UPDATE
    assert op.tags_to_set == {"pod-identity/managed-by": OWNER}


def test_unowned_undeclared_association_is_left_alone_and_owned_one_deleted():
    mine, theirs = KEYS[0], KEYS[1]
    have = {mine: actual(mine, ROLES[0]), theirs: actual(theirs, ROLES[0], managed=False)}
    (op,) = plan({}, have, owner=OWNER)
    assert (op.kind, op.key) == (OpKind.DELETE, mine)
    assert op.describe() == "delete blue/a/x"
