from hypothesis import given
from hypothesis import strategies as st

from functions.core.models import (
    ActualAssociation,
    AssociationKey,
    AssociationSpec,
    DesiredAssociation,
)
from functions.core.planner import OpKind, apply_plan, foreign, plan
from tests.builders import OWNER, actual, ref, role_arn

Desired = dict[AssociationKey, DesiredAssociation]
Actual = dict[AssociationKey, ActualAssociation]

KEYS = [AssociationKey(ref("blue"), ns, sa) for ns in ("a", "b") for sa in ("x", "y", "z")]
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
# (spec, owned by podid): ownership is by recorded id, never by tag
actual_states = st.dictionaries(
    st.sampled_from(KEYS),
    st.tuples(specs, st.booleans()),
).map(
    lambda d: {
        k: ActualAssociation(key=k, association_id=f"{'mine' if owned else 'theirs'}-{i}", spec=s)
        for i, (k, (s, owned)) in enumerate(d.items())
    }
)


def owned_ids(have: Actual) -> set[str]:
    return {a.association_id for a in have.values() if a.association_id.startswith("mine")}


def desired(key: AssociationKey, role: str, **tags: str) -> DesiredAssociation:
    spec = AssociationSpec(role_arn=role, tags={**tags, "pod-identity/managed-by": OWNER})
    return DesiredAssociation(key=key, spec=spec, declaration_id="d")


@given(desired_states, actual_states, st.sets(st.sampled_from(KEYS), max_size=2))
def test_applying_the_plan_converges_and_never_touches_what_is_not_ours(
    want: Desired, have: Actual, hold: set[AssociationKey]
) -> None:
    owned = owned_ids(have)
    operations = plan(want, have, owned=owned, hold=hold)
    for op in operations:
        if op.kind is not OpKind.CREATE:
            assert op.association_id in owned  # update and delete: podid's own only
    after = apply_plan(have, operations)
    mine = owned | {
        a.association_id for a in after.values() if a.association_id.startswith("planned")
    }
    for key, wanted in want.items():
        if key in hold:
            assert after.get(key) == have.get(key)
        elif have.get(key) is not None and have[key].association_id not in owned:
            assert after[key] == have[key]  # someone else's: left exactly as it was
        else:
            assert after[key].spec == wanted.spec
    for key, association in after.items():
        if key not in want:
            # only others' or held associations survive undeclared
            assert key in hold or association.association_id not in owned
    assert plan(want, after, owned=mine, hold=hold) == []


@given(desired_states, actual_states)
def test_never_delete_then_create_where_update_suffices(want: Desired, have: Actual) -> None:
    operations = plan(want, have, owned=owned_ids(have))
    touched = [op.key for op in operations]
    assert len(touched) == len(set(touched))
    kinds = [op.kind for op in operations]
    assert kinds == sorted(kinds, key=[OpKind.DELETE, OpKind.UPDATE, OpKind.CREATE].index)


@given(desired_states)
def test_an_empty_diff_yields_no_operations(want: Desired) -> None:
    have = {k: ActualAssociation(key=k, association_id="id", spec=d.spec) for k, d in want.items()}
    assert plan(want, have, owned={"id"}) == []


def test_role_change_is_an_in_place_update_with_the_changed_fields() -> None:
    key = KEYS[0]
    (op,) = plan(
        {key: desired(key, ROLES[1])},
        {key: actual(key, ROLES[0], association_id="a-1")},
        owned={"a-1"},
    )
    assert op.kind is OpKind.UPDATE
    assert op.association_id == "a-1"
    assert op.changes == ("role_arn",)
    assert op.updates_association


def test_tag_only_change_needs_no_association_update() -> None:
    key = KEYS[0]
    have = {key: actual(key, ROLES[0], association_id="a-1")}
    (op,) = plan({key: desired(key, ROLES[0], team="a")}, have, owned={"a-1"})
    assert op.changes == ("tags",)
    assert not op.updates_association
    assert op.tags_to_set == {"team": "a"}
    assert op.tags_to_remove == []


def test_an_association_podid_did_not_create_is_left_alone_even_with_the_owner_tag() -> None:
    key = KEYS[0]
    want = {key: desired(key, ROLES[1])}
    # someone tagged their association pod-identity/managed-by=<owner>: a tag proves nothing
    have = {key: actual(key, ROLES[0], association_id="theirs")}
    assert plan(want, have, owned=set()) == []
    assert foreign(want, have, owned=set()) == {key: "theirs"}
    assert plan({}, have, owned=set()) == []  # nor deleted when undeclared


def test_an_association_is_adopted_only_when_its_declaration_asks() -> None:
    key = KEYS[0]
    have = {key: actual(key, ROLES[0], managed=False, association_id="theirs")}
    (op,) = plan({key: desired(key, ROLES[0])}, have, owned=set(), adoptable={key})
    assert op.kind is OpKind.UPDATE
    assert op.tags_to_set == {"pod-identity/managed-by": OWNER}
    assert foreign({key: desired(key, ROLES[0])}, have, owned=set(), adoptable={key}) == {}


def test_only_an_owned_undeclared_association_is_deleted() -> None:
    mine, theirs = KEYS[0], KEYS[1]
    have = {
        mine: actual(mine, ROLES[0], association_id="a-mine"),
        theirs: actual(theirs, ROLES[0], association_id="a-theirs"),
    }
    (op,) = plan({}, have, owned={"a-mine"})
    assert (op.kind, op.key) == (OpKind.DELETE, mine)
    assert op.describe() == "delete 111122223333/eu-west-1/blue/a/x"
