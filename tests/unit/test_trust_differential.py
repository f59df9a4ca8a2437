"""Differential: podid's trust analysis (functions.core.trust) and the sandbox's
IAM evaluator (sandbox.iam_policy, written from the IAM User Guide, sharing no
code with the product) must agree on "can this pod usage assume the role".

The product answers per usage with a standing (analysis.review_usage):
ADMITTED, DENIED, or MISSING / EXCLUDED (not admitted: podid may add it, or
the owner's condition leaves it out), or UNVERIFIABLE (a key it cannot know
offline). The evaluator answers with IAM's decision for the requests EKS Auth
makes (sandbox.eks_emulation.pod_request). One documented difference is
deliberate: the product never counts Principal "*" / {"AWS": "*"} as trusting
pods.eks.amazonaws.com (it flags them, PI020), so for MISSING / EXCLUDED the
evaluator is asked about the statements that name the pod principal only.
A disagreement is a bug in one of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st

from functions.core.trust.analysis import Standing, review_usage
from functions.core.trust.conditions import Usage
from functions.core.trust.document import parse_policy, views
from sandbox import iam_policy
from sandbox.eks_emulation.pod_request import session_tags, sts_requests

POD = "pods.eks.amazonaws.com"
ACCOUNTS = ("111122223333", "444455556666")
CLUSTERS = tuple(
    f"arn:aws:eks:eu-west-1:{account}:cluster/{name}"
    for account in ACCOUNTS
    for name in ("blue", "green")
)
NAMESPACES = ("payments", "web")
SERVICE_ACCOUNTS = ("api", "worker")
# keys whose value the product cannot know offline: UNVERIFIABLE is its honest answer
UNKNOWABLE = ("aws:sourcearn", "aws:requesttag/kubernetes-pod-name")


@dataclass(frozen=True)
class Pod:
    cluster_arn: str
    namespace: str
    service_account: str
    tagged: bool

    def usage(self) -> Usage:
        name = self.cluster_arn.rsplit("/", 1)[1]
        return Usage(name, self.cluster_arn, self.namespace, self.service_account, not self.tagged)

    def requests(self) -> list[iam_policy.Request]:
        tags = session_tags(
            self.cluster_arn, self.namespace, self.service_account, "api-7d4b9", "0b7e7a4c"
        )
        return sts_requests(self.cluster_arn, tags if self.tagged else None)


pods = st.builds(
    Pod,
    st.sampled_from(CLUSTERS),
    st.sampled_from(NAMESPACES),
    st.sampled_from(SERVICE_ACCOUNTS),
    st.booleans(),
)

_VALUES: dict[str, tuple[Any, ...]] = {
    "aws:SourceAccount": (*ACCOUNTS, "4444*", "*", int(ACCOUNTS[0])),
    "aws:RequestTag/eks-cluster-arn": (
        *CLUSTERS,
        "arn:aws:eks:*:111122223333:cluster/*",
        "arn:aws:eks:eu-west-1:111122223333:cluster/b*",
        "arn:aws:eks:*",
        "arn:*",
        "*",
    ),
    "aws:RequestTag/eks-cluster-name": ("blue", "green", "b*", "?reen"),
    "aws:RequestTag/kubernetes-namespace": (*NAMESPACES, "pay*", "PAYMENTS", "*"),
    "aws:RequestTag/kubernetes-service-account": (*SERVICE_ACCOUNTS, "w?rker", "a*"),
    "aws:RequestTag/team": ("x",),
    "aws:TagKeys": ("kubernetes-namespace", "eks-*", "kubernetes-*", "team"),
    "aws:SourceArn": (CLUSTERS[0], "arn:aws:eks:*:*:cluster/*"),
    "aws:RequestTag/kubernetes-pod-name": ("api-*",),
}
_STRING_OPERATORS = (
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
)
_ARN_OPERATORS = ("ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike")
_ARN_KEYS = ("aws:RequestTag/eks-cluster-arn", "aws:SourceArn")


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, dict[str, Any]]:
    condition: dict[str, dict[str, Any]] = {}
    for _ in range(draw(st.integers(0, 2))):
        key = draw(st.sampled_from(sorted(_VALUES)))
        spelled = draw(st.sampled_from((key, key.lower(), key.upper())))
        if draw(st.integers(0, 5)) == 0:
            operator = "Null"
            values: Any = draw(st.sampled_from(("true", "false", True, ["true", "false"])))
        else:
            operator = draw(
                st.sampled_from(_STRING_OPERATORS + (_ARN_OPERATORS if key in _ARN_KEYS else ()))
            )
            if key == "aws:TagKeys" or draw(st.integers(0, 4)) == 0:
                operator = draw(st.sampled_from(("ForAllValues:", "ForAnyValue:"))) + operator
            if draw(st.integers(0, 4)) == 0:
                operator += "IfExists"
            chosen = draw(st.lists(st.sampled_from(_VALUES[key]), min_size=1, max_size=2))
            values = chosen[0] if len(chosen) == 1 else chosen
        condition.setdefault(operator, {})[spelled] = values
    return condition


principals = st.sampled_from(
    (
        {"Service": POD},
        {"Service": POD},
        {"Service": [POD, "ec2.amazonaws.com"]},
        {"Service": "ec2.amazonaws.com"},
        "*",
        {"AWS": "*"},
        {"AWS": ACCOUNTS[0]},
        {"AWS": f"arn:aws:iam::{ACCOUNTS[0]}:root"},
        {"Service": POD, "AWS": f"arn:aws:iam::{ACCOUNTS[0]}:role/ci"},
    )
)
actions = st.sampled_from(
    (
        "sts:AssumeRole",
        "sts:TagSession",
        ["sts:AssumeRole", "sts:TagSession"],
        ["sts:AssumeRole", "sts:TagSession"],
        "sts:*",
        "sts:Assume*",
        "*",
        "STS:assumerole",
        "sts:AssumeRoleWithWebIdentity",
    )
)


@st.composite
def statements(draw: st.DrawFn) -> dict[str, Any]:
    found: dict[str, Any] = {
        "Effect": draw(st.sampled_from(("Allow", "Allow", "Allow", "Deny"))),
        "Principal": draw(principals),
        draw(st.sampled_from(("Action", "Action", "Action", "NotAction"))): draw(actions),
    }
    condition = draw(conditions())
    if condition:
        found["Condition"] = condition
    return found


policies = st.lists(statements(), min_size=1, max_size=3).map(
    lambda s: {"Version": "2012-10-17", "Statement": s}
)


def evaluator_allows(policy: dict[str, Any], pod: Pod) -> bool:
    loaded = iam_policy.load(json.dumps(policy))
    return all(d.allowed for d in iam_policy.decide_all(loaded, pod.requests()))


def product_standing(policy: dict[str, Any], pod: Pod) -> Standing:
    return review_usage(views(parse_policy(policy)), pod.usage()).standing


def naming_pods_only(policy: dict[str, Any]) -> dict[str, Any]:
    """Deny statements, and Allow statements whose Principal names the pod service."""

    def names_pod(statement: dict[str, Any]) -> bool:
        principal = statement["Principal"]
        services = principal.get("Service", []) if isinstance(principal, dict) else []
        return POD in (services if isinstance(services, list) else [services])

    kept = [s for s in policy["Statement"] if s["Effect"] == "Deny" or names_pod(s)]
    return {**policy, "Statement": kept or [{**policy["Statement"][0], "Effect": "Deny"}]}


def _mentions_unknowable(policy: dict[str, Any]) -> bool:
    return any(key in json.dumps(policy).lower() for key in UNKNOWABLE)


def _arn_condition(operator: str, pattern: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": POD},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Condition": {operator: {"aws:RequestTag/eks-cluster-arn": pattern}},
            }
        ],
    }


BLUE_PAYMENTS_API = Pod(CLUSTERS[0], "payments", "api", tagged=True)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(policy=policies, pod=pods)
# found by this test: a wildcard in an ARN pattern crossed the colons (now per part)
@example(policy=_arn_condition("ArnLike", "arn:*"), pod=BLUE_PAYMENTS_API)
@example(policy=_arn_condition("ArnNotLike", "arn:aws:eks:*"), pod=BLUE_PAYMENTS_API)
def test_product_and_sandbox_evaluator_agree_on_who_may_assume(
    policy: dict[str, Any], pod: Pod
) -> None:
    try:
        allowed = evaluator_allows(policy, pod)
    except (iam_policy.NotEvaluable, iam_policy.PolicyInvalid):
        event("evaluator refused to decide")
        assume(False)  # no documented IAM answer, or a document IAM would not store
    standing = product_standing(policy, pod)
    event(f"product {standing.name}, IAM {'allows' if allowed else 'refuses'}")
    if standing is Standing.ADMITTED:
        assert allowed, "the product admits a usage IAM would refuse"
    elif standing is Standing.DENIED:
        assert not allowed, "the product sees a Deny IAM would not apply"
    elif standing is Standing.UNVERIFIABLE:
        assert _mentions_unknowable(policy), "UNVERIFIABLE without an unknowable key"
    else:  # MISSING / EXCLUDED: not admitted by any statement naming the pod principal
        assert not evaluator_allows(naming_pods_only(policy), pod), (
            f"the product says {standing.name} but IAM allows through a statement naming {POD}"
        )
