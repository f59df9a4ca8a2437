"""Spoke heartbeats (issue 16, item 4): the hub's pattern for them, judged by
EventBridge's pattern semantics (moto's matcher, not our code), and the handler's
predicate, which must agree with it."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from moto.events.models import EventPattern

from functions.core.heartbeats import spoke_heartbeat
from functions.core.places import Place
from functions.event_patterns import heartbeat_rule_name, spoke_heartbeats

if TYPE_CHECKING:
    from moto.events.utils import EventMessageType

EVENTS = Path(__file__).parents[1] / "fixtures" / "events"
HUB = "PodIdentityControlPlane"
RULE = heartbeat_rule_name(HUB)
SPOKE = Place("444455556666", "ap-southeast-2")


def event(name: str, **values: str) -> dict[str, Any]:
    text = (EVENTS / f"{name}.json").read_text()
    for key, value in {"EVENT_ID": str(uuid.uuid4()), **values}.items():
        text = text.replace("${" + key + "}", value)
    assert "${" not in text, f"unfilled placeholder in {name}"
    found: dict[str, Any] = json.loads(text)
    return found


def heartbeat(place: Place = SPOKE, rule: str = RULE) -> dict[str, Any]:
    return event("spoke_heartbeat", ACCOUNT=place.account, REGION=place.region, RULE_NAME=rule)


def routed(pattern: dict[str, Any], sample: dict[str, Any]) -> bool:
    matcher = EventPattern.load(json.dumps(pattern))
    return bool(matcher.matches_event(cast("EventMessageType", sample)))


def test_the_rule_name_fits_eventbridge_and_is_the_hubs() -> None:
    assert RULE == "PodIdentityControlPlane-spoke-heartbeat"
    long = heartbeat_rule_name("H" * 128)  # the longest stack name CloudFormation takes
    assert long == "H" * 40 + "-spoke-heartbeat"
    assert len(long) <= 64  # EventBridge's rule name limit


def test_a_spoke_heartbeat_is_routed_and_names_its_place() -> None:
    sample = heartbeat()
    assert routed(spoke_heartbeats(HUB), sample)
    assert spoke_heartbeat(sample, RULE) == SPOKE
    # the hub's own account may run a spoke too: its heartbeat is one like any other
    hub_spoke = heartbeat(Place("111122223333", "eu-west-1"))
    assert routed(spoke_heartbeats(HUB), hub_spoke)
    assert spoke_heartbeat(hub_spoke, RULE) == Place("111122223333", "eu-west-1")


@pytest.mark.parametrize(
    "sample",
    [
        # the hub's own schedule (and any other schedule of any account)
        event("scheduled_event", ACCOUNT="111122223333", REGION="eu-west-1"),
        # another hub's spokes, or a rule merely ending like ours
        heartbeat(rule="Staging-spoke-heartbeat"),
        heartbeat(rule="X" + RULE),
        # a rule of that name on a custom bus is not the spoke's
        heartbeat(rule=f"some-bus/{RULE}"),
        # a CloudTrail event
        event("eks_untag_resource", CLUSTER="c", ACCOUNT=SPOKE.account, REGION=SPOKE.region),
    ],
    ids=["local-schedule", "other-hub", "longer-name", "custom-bus", "cloudtrail"],
)
def test_anything_else_is_neither_routed_nor_taken_for_a_heartbeat(
    sample: dict[str, Any],
) -> None:
    assert not routed(spoke_heartbeats(HUB), sample)
    assert spoke_heartbeat(sample, RULE) is None


def test_a_heartbeat_whose_rule_is_elsewhere_than_the_event_is_refused() -> None:
    sample = heartbeat()
    sample["account"] = "999988887777"
    with pytest.raises(ValueError, match="not in the event's account and region"):
        spoke_heartbeat(sample, RULE)
    sample = heartbeat()
    sample["region"] = "not a region"
    with pytest.raises(ValueError, match="not an AWS region"):
        spoke_heartbeat(sample, RULE)


_names = st.sampled_from([RULE, "X" + RULE, RULE + "x", f"bus/{RULE}", "other", "podid-schedule"])
_sources = st.sampled_from(["aws.events", "aws.eks", "custom.events"])
_types = st.sampled_from(["Scheduled Event", "AWS API Call via CloudTrail", "scheduled event"])


@given(name=_names, source=_sources, detail_type=_types, extra=st.booleans())
def test_the_predicate_agrees_with_the_pattern(
    name: str, source: str, detail_type: str, extra: bool
) -> None:
    sample = heartbeat(rule=name)
    sample["source"], sample["detail-type"] = source, detail_type
    if extra:  # EventBridge matches when any resource matches
        sample["resources"].insert(0, "arn:aws:events:eu-west-1:444455556666:rule/other")
    assert routed(spoke_heartbeats(HUB), sample) == (spoke_heartbeat(sample, RULE) is not None)
