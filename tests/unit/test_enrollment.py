from functions.core.enrollment import clusters_to_describe
from functions.core.models import FLEET_TAG
from tests.builders import cluster

KNOWN = {
    "blue": cluster("blue"),
    "lab": cluster("lab", fleet=None).model_copy(update={"enrolled": False}),
}


def test_only_unknown_clusters_and_changed_fleet_tags_are_described() -> None:
    tags = {"blue": {FLEET_TAG: "prod", "team": "a"}, "new": {FLEET_TAG: "prod"}}
    assert clusters_to_describe(["blue", "lab", "new"], KNOWN, set(), tags) == {"new"}


def test_a_fleet_tag_changed_removed_or_added_is_described() -> None:
    changed = {"blue": {FLEET_TAG: "staging"}}
    assert clusters_to_describe(["blue", "lab"], KNOWN, set(), changed) == {"blue"}
    # a cluster absent from the listing carries no tags at all
    assert clusters_to_describe(["blue", "lab"], KNOWN, set(), {}) == {"blue"}
    added = {"blue": {FLEET_TAG: "prod"}, "lab": {FLEET_TAG: "prod"}}
    assert clusters_to_describe(["blue", "lab"], KNOWN, set(), added) == {"lab"}


def test_without_tags_only_unknown_and_newly_named_clusters_are_described() -> None:
    assert clusters_to_describe(["blue", "lab", "new"], KNOWN, {"lab"}, None) == {"lab", "new"}


def test_deep_describes_every_live_cluster() -> None:
    assert clusters_to_describe(["blue", "lab"], KNOWN, set(), {}, deep=True) == {"blue", "lab"}
