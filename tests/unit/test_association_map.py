import json
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.core.association_map import (
    FULL_MAP_KEY,
    WEBHOOK_KEY,
    build_association_map,
    parse_full_map,
)
from functions.core.models import AssociationKey, AssociationSpec, DesiredAssociation
from tests.builders import cluster, ref, role_arn

BLUE = cluster("blue")


def assoc(ns: str, sa: str, role: str = "app", **extra: Any) -> DesiredAssociation:
    spec = AssociationSpec(role_arn=role_arn(role), **extra)
    return DesiredAssociation(
        key=AssociationKey(ref("blue"), ns, sa), spec=spec, declaration_id="d"
    )


def test_webhook_key_is_exactly_the_container_credentials_config_format() -> None:
    built = build_association_map(BLUE, [assoc("b", "y"), assoc("a", "x")])
    assert json.loads(built.webhook_config) == {
        "identities": [
            {"namespace": "a", "serviceAccount": "x"},
            {"namespace": "b", "serviceAccount": "y"},
        ]
    }


def test_full_map_carries_role_settings_generation_and_a_verifiable_hash() -> None:
    policy = '{"Statement":[]}'
    built = build_association_map(
        BLUE,
        [assoc("a", "x", target_role_arn=role_arn("t"), disable_session_tags=True, policy=policy)],
    )
    data = built.configmap_data(generation=7)
    document = parse_full_map(data[FULL_MAP_KEY])
    assert document["generation"] == 7
    assert document["clusterArn"] == BLUE.arn
    assert document["associations"] == [
        {
            "namespace": "a",
            "serviceAccount": "x",
            "roleArn": role_arn("app"),
            "targetRoleArn": role_arn("t"),
            "disableSessionTags": True,
            "policy": policy,
        }
    ]
    assert data[WEBHOOK_KEY] == built.webhook_config


def test_tampered_full_map_is_refused() -> None:
    text = build_association_map(BLUE, [assoc("a", "x")]).full_map(1)
    with pytest.raises(ValueError, match="hash does not match"):
        parse_full_map(text.replace("role/app", "role/evil"))


def test_other_clusters_associations_are_ignored() -> None:
    other = DesiredAssociation(
        key=AssociationKey(ref("green"), "a", "x"),
        spec=AssociationSpec(role_arn=role_arn()),
        declaration_id="d",
    )
    assert build_association_map(BLUE, [other]).associations == ()


names = st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True)


@given(st.lists(st.tuples(names, names), unique=True, max_size=12), st.randoms())
def test_same_associations_in_any_order_give_the_same_bytes_and_hash(
    pairs: list[tuple[str, str]], rnd: random.Random
) -> None:
    items = [assoc(ns, sa) for ns, sa in pairs]
    shuffled = items[:]
    rnd.shuffle(shuffled)
    one, two = build_association_map(BLUE, items), build_association_map(BLUE, shuffled)
    assert one.webhook_config == two.webhook_config
    assert one.full_map(3) == two.full_map(3)
    assert one.sha256 == two.sha256
    if items:
        fewer = build_association_map(BLUE, items[1:])
        assert fewer.sha256 != one.sha256
