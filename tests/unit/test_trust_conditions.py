"""Regressions in the product's condition evaluation that the differential test
(tests/unit/test_trust_differential.py) found against the sandbox's IAM evaluator."""

import pytest

from functions.core.trust.analysis import Standing, review_usage
from functions.core.trust.conditions import Tri, Usage, evaluate, request_context
from functions.core.trust.document import views
from tests.builders import ACCOUNT, cluster_arn

BLUE = Usage("blue", cluster_arn("blue"), "payments", "api")
POD = "pods.eks.amazonaws.com"


def outcome(operator: str, key: str, values: object, usage: Usage = BLUE) -> Tri:
    return evaluate({operator: {key: values}}, request_context(usage)).outcome


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (cluster_arn("*"), Tri.TRUE),
        ("arn:aws:eks:*:*:cluster/blue", Tri.TRUE),
        # IAM matches each of the six colon-separated parts on its own: a
        # wildcard never spans a colon, so a pattern of fewer parts never matches
        ("arn:*", Tri.FALSE),
        ("arn:aws:eks:*", Tri.FALSE),
        ("*", Tri.FALSE),
        (f"arn:aws:eks:*:{ACCOUNT}", Tri.FALSE),
    ],
)
def test_arn_operators_match_each_arn_part_on_its_own(pattern: str, expected: Tri) -> None:
    assert outcome("ArnLike", "aws:RequestTag/eks-cluster-arn", pattern) is expected
    negated = Tri.FALSE if expected is Tri.TRUE else Tri.TRUE
    assert outcome("ArnNotLike", "aws:RequestTag/eks-cluster-arn", pattern) is negated


def test_an_arn_operator_on_a_value_that_is_no_arn_never_matches() -> None:
    assert outcome("ArnLike", "aws:RequestTag/kubernetes-namespace", "pay*") is Tri.FALSE


def test_null_values_are_alternatives_like_every_condition_value() -> None:
    # IAM ORs the values listed for one key: ["true", "false"] always holds
    assert outcome("Null", "aws:SourceAccount", ["true", "false"]) is Tri.TRUE
    assert outcome("Null", "aws:SourceAccount", ["false", "true"]) is Tri.TRUE
    assert outcome("Null", "aws:RequestTag/team", ["false", "true"]) is Tri.TRUE
    assert outcome("Null", "aws:SourceAccount", ["true"]) is Tri.FALSE


def test_a_deny_with_an_always_true_null_denies_the_usage() -> None:
    # shrunk by hypothesis: the product admitted what IAM denies
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": POD}, "Action": "sts:AssumeRole"},
            {
                "Effect": "Deny",
                "Principal": {"Service": POD},
                "Action": "sts:AssumeRole",
                "Condition": {"Null": {"aws:SourceAccount": ["true", "false"]}},
            },
        ],
    }
    untagged = Usage("blue", cluster_arn("blue"), "payments", "api", disable_session_tags=True)
    assert review_usage(views(policy), untagged).standing is Standing.DENIED
