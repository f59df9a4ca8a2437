from functions.core.enrollment import clusters_to_describe
from functions.core.models import FLEET_TAG
from tests.builders import cluster, ref

BLUE, LAB, NEW = ref("blue"), ref("lab"), ref("new")
KNOWN = {
    BLUE: cluster("blue"),
    LAB: cluster("lab", fleet=None).model_copy(update={"enrolled": False}),
}


def test_only_unknown_clusters_and_changed_fleet_tags_are_described() -> None:
    tags = {BLUE: {FLEET_TAG: "prod", "team": "a"}, NEW: {FLEET_TAG: "prod"}}
    assert clusters_to_describe([BLUE, LAB, NEW], KNOWN, set(), tags) == {NEW}


def test_a_fleet_tag_changed_removed_or_added_is_described() -> None:
    changed = {BLUE: {FLEET_TAG: "staging"}}
    assert clusters_to_describe([BLUE, LAB], KNOWN, set(), changed) == {BLUE}
    # a cluster absent from the listing carries no tags at all
    assert clusters_to_describe([BLUE, LAB], KNOWN, set(), {}) == {BLUE}
    added = {BLUE: {FLEET_TAG: "prod"}, LAB: {FLEET_TAG: "prod"}}
    assert clusters_to_describe([BLUE, LAB], KNOWN, set(), added) == {LAB}


def test_without_tags_only_unknown_and_newly_named_clusters_are_described() -> None:
    assert clusters_to_describe([BLUE, LAB, NEW], KNOWN, {"lab"}, None) == {LAB, NEW}


def test_deep_describes_every_live_cluster() -> None:
    assert clusters_to_describe([BLUE, LAB], KNOWN, set(), {}, deep=True) == {BLUE, LAB}
