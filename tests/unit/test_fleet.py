from functions.core.fleet import expand
from functions.core.models import AssociationKey
from tests.builders import OTHER_ACCOUNT, OWNER, cluster, declaration, ref, role_arn


def test_fleet_declaration_expands_to_every_matching_cluster() -> None:
    clusters = [cluster("blue"), cluster("green"), cluster("dev", fleet="dev")]
    state = expand([declaration()], clusters, managed_by=OWNER)
    assert sorted(state.for_cluster(ref("blue"))) == [
        AssociationKey(ref("blue"), "payments", "api")
    ]
    assert sorted(state.for_cluster(ref("green"))) == [
        AssociationKey(ref("green"), "payments", "api")
    ]
    assert state.for_cluster(ref("dev")) == {}
    assert not state.conflicts
    assert not state.rejections


def test_explicit_clusters_and_fleet_combine() -> None:
    clusters = [cluster("blue"), cluster("lab", fleet=None)]
    state = expand(
        [declaration(target={"clusters": ["lab"], "fleet": "prod"})], clusters, managed_by=OWNER
    )
    assert set(state.by_cluster) == {ref("blue"), ref("lab")}
    assert all(len(v) == 1 for v in state.by_cluster.values())


def test_conflicting_roles_hold_the_key_and_name_both_declarations() -> None:
    # Given two declarations asking different roles for one service account on "blue"
    first = declaration(id="team-a")
    second = declaration(id="team-b", roleArn=role_arn("other"), target={"clusters": ["blue"]})
    # When they are expanded together with an unrelated declaration
    unrelated = declaration(id="team-c", serviceAccount="worker")
    state = expand(
        [second, first, unrelated], [cluster("blue"), cluster("green")], managed_by=OWNER
    )
    # Then the conflicting key is applied by neither, and everything else proceeds
    key = AssociationKey(ref("blue"), "payments", "api")
    (conflict,) = state.conflicts
    assert conflict.key == key
    assert conflict.declaration_ids == ("team-a", "team-b")
    assert "'team-a' asks arn:aws:iam::111122223333:role/app" in conflict.message
    assert "'team-b' asks arn:aws:iam::111122223333:role/other" in conflict.message
    assert key not in state.for_cluster(ref("blue"))
    assert state.held_keys(ref("blue")) == {key}
    assert AssociationKey(ref("green"), "payments", "api") in state.for_cluster(ref("green"))
    assert AssociationKey(ref("blue"), "payments", "worker") in state.for_cluster(ref("blue"))


def test_same_role_different_settings_is_a_conflict_with_its_own_message() -> None:
    a = declaration(id="a")
    b = declaration(id="b", disableSessionTags=True)
    (conflict,) = expand([a, b], [cluster("blue")], managed_by=OWNER).conflicts
    assert "different settings" in conflict.message


def test_identical_asks_are_not_a_conflict_and_the_lowest_id_owns_it() -> None:
    state = expand([declaration(id="z"), declaration(id="a")], [cluster("blue")], managed_by=OWNER)
    assert not state.conflicts
    (desired,) = state.for_cluster(ref("blue")).values()
    assert desired.declaration_id == "a"


def test_unknown_cluster_and_foreign_account_are_rejected_per_declaration() -> None:
    decl = declaration(target={"clusters": ["ghost", "blue"]})
    state = expand([decl], [cluster("blue", account=OTHER_ACCOUNT)], managed_by=OWNER)
    reasons = [r.reason for r in state.rejections]
    assert any("cluster 'ghost' is not enrolled" in r for r in reasons)
    assert any(
        "roleArn is in account 111122223333 but cluster 444455556666/eu-west-1/blue is in account "
        "444455556666" in r
        for r in reasons
    )
    assert state.for_cluster(ref("blue")) == {}


def test_capacity_limit_rejects_the_overflow_deterministically() -> None:
    decls = [declaration(id=f"d{i:05d}", serviceAccount=f"sa{i:05d}") for i in range(5002)]
    state = expand(decls, [cluster("blue")], managed_by=OWNER)
    assert len(state.for_cluster(ref("blue"))) == 5000
    assert sorted(r.key.service_account for r in state.rejections if r.key) == [
        "sa05000",
        "sa05001",
    ]
