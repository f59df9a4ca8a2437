"""Repair never widens: checked against an IAM trust-policy evaluator written here
from AWS's documented evaluation logic. It shares no code with functions.core.trust
(an oracle built from the product agrees with the product's bugs)."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.core.trust import Code, TrustContext, Usage, repair
from tests.builders import ACCOUNT, OTHER_ACCOUNT, cluster_arn, role_arn

POD = "pods.eks.amazonaws.com"
ROLE = role_arn("app")

# --- the evaluator ------------------------------------------------------------------


@dataclass(frozen=True)
class Pod:
    """One pod asking EKS Auth for the role's credentials."""

    cluster_arn: str
    namespace: str
    service_account: str
    tagged: bool = True  # False: the association disables session tags

    @property
    def account(self) -> str:
        return self.cluster_arn.split(":")[4]

    def usage(self) -> Usage:
        name = self.cluster_arn.rsplit("/", 1)[1]
        return Usage(name, self.cluster_arn, self.namespace, self.service_account, not self.tagged)


def request_context(pod: Pod, *, sends_source_arn: bool) -> dict[str, list[str]]:
    """The keys of the sts:AssumeRole request EKS Auth makes (names lower-cased:
    IAM compares condition keys case-insensitively)."""
    context = {"aws:sourceaccount": [pod.account]}
    if sends_source_arn:  # undocumented for this principal: both readings are checked
        context["aws:sourcearn"] = [pod.cluster_arn]
    if pod.tagged:
        tags = {
            "eks-cluster-arn": pod.cluster_arn,
            "eks-cluster-name": pod.cluster_arn.rsplit("/", 1)[1],
            "kubernetes-namespace": pod.namespace,
            "kubernetes-service-account": pod.service_account,
            "kubernetes-pod-name": f"{pod.service_account}-7d4b9",
            "kubernetes-pod-uid": "0b7e7a4c-4d5e-4f6a-8b9c-0d1e2f3a4b5c",
        }
        context |= {f"aws:requesttag/{key}": [value] for key, value in tags.items()}
        context["aws:tagkeys"] = list(tags)
    return context


def _glob(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL | (re.IGNORECASE if ignore_case else 0)) is not None


def _arn_like(pattern: str, value: str) -> bool:
    # each of the six colon-separated ARN components is matched on its own
    wanted, found = pattern.split(":", 5), value.split(":", 5)
    return len(wanted) == len(found) == 6 and all(map(_glob, wanted, found))


_MATCHERS = {
    "StringEquals": (lambda p, v: p == v, False),
    "StringNotEquals": (lambda p, v: p == v, True),
    "StringEqualsIgnoreCase": (lambda p, v: p.lower() == v.lower(), False),
    "StringNotEqualsIgnoreCase": (lambda p, v: p.lower() == v.lower(), True),
    "StringLike": (_glob, False),
    "StringNotLike": (_glob, True),
    "ArnEquals": (_arn_like, False),
    "ArnLike": (_arn_like, False),
    "ArnNotEquals": (_arn_like, True),
    "ArnNotLike": (_arn_like, True),
}


def _values(raw: Any) -> list[str]:
    items = raw if isinstance(raw, list) else [raw]
    return [str(v).lower() if isinstance(v, bool) else str(v) for v in items]


def condition_holds(operator: str, key: str, raw: Any, context: dict[str, list[str]]) -> bool:
    qualifier, _, base = operator.rpartition(":")
    present = context.get(key.lower())
    if base == "Null":  # "true": the key must be absent
        return (present is None) == (_values(raw)[0].lower() == "true")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    match, negated = _MATCHERS[base]
    if present is None:
        # absent key: no match, so a negated operator holds; IfExists and
        # ForAllValues hold vacuously, ForAnyValue does not
        if if_exists or qualifier == "ForAllValues":
            return True
        return negated if not qualifier else False

    def one(value: str) -> bool:
        return any(match(p, value) for p in _values(raw)) != negated

    if qualifier == "ForAllValues":
        return all(one(v) for v in present)
    return any(one(v) for v in present)


def _names(principal: Any) -> bool:
    """Whether a Principal element designates the EKS pod service principal."""
    if principal == "*":
        return True
    values = {
        kind: value if isinstance(value, list) else [value] for kind, value in principal.items()
    }
    return "*" in values.get("AWS", []) or POD in values.get("Service", [])


def _applies(statement: dict[str, Any], action: str, context: dict[str, list[str]]) -> bool:
    if "NotPrincipal" in statement:
        principal_ok = not _names(statement["NotPrincipal"])
    else:
        principal_ok = _names(statement["Principal"])
    patterns = statement.get("Action", statement.get("NotAction"))
    listed = any(
        _glob(p, action, ignore_case=True)
        for p in (patterns if isinstance(patterns, list) else [patterns])
    )
    action_ok = listed if "Action" in statement else not listed
    return (
        principal_ok
        and action_ok
        and all(
            condition_holds(operator, key, raw, context)
            for operator, block in statement.get("Condition", {}).items()
            for key, raw in block.items()
        )
    )


def _statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    found = policy["Statement"]
    return [found] if isinstance(found, dict) else found


def decision(policy: dict[str, Any], action: str, context: dict[str, list[str]]) -> str:
    """An explicit Deny wins, then an Allow, else the implicit deny."""
    applying = [s for s in _statements(policy) if _applies(s, action, context)]
    if any(s["Effect"] == "Deny" for s in applying):
        return "Deny"
    return "Allow" if applying else "ImplicitDeny"


def required_actions(pod: Pod) -> list[str]:
    # a session with tags needs sts:TagSession as well
    return ["sts:AssumeRole", "sts:TagSession"] if pod.tagged else ["sts:AssumeRole"]


def admits(policy: dict[str, Any], pod: Pod, *, sends_source_arn: bool = False) -> bool:
    context = request_context(pod, sends_source_arn=sends_source_arn)
    return all(decision(policy, a, context) == "Allow" for a in required_actions(pod))


def owner_left_open(policy: dict[str, Any], pod: Pod, *, sends_source_arn: bool) -> bool:
    """For every action the pod needs, the policy either allows it already or has
    no statement naming the pod principal about it: nothing the role owner wrote
    says no. Only then may a repair add the pod."""
    context = request_context(pod, sends_source_arn=sends_source_arn)
    for action in required_actions(pod):
        naming = [
            s
            for s in _statements(policy)
            if s["Effect"] == "Allow"
            and "Principal" in s
            and s["Principal"] != "*"
            and POD in _as_list(s["Principal"].get("Service"))
            and _applies({**s, "Condition": {}}, action, context)
        ]
        if naming and not any(_applies(s, action, context) for s in naming):
            return False
    return True


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


# --- the evaluator agrees with AWS's documentation --------------------------------------

BLUE = cluster_arn("blue")
PAYMENTS_API = Pod(BLUE, "payments", "api")


def allow(condition: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    statement = {
        "Effect": "Allow",
        "Principal": {"Service": POD},
        "Action": ["sts:AssumeRole", "sts:TagSession"],
        **fields,
    }
    if condition:
        statement["Condition"] = condition
    return statement


def document(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


@pytest.mark.parametrize(
    ("policy", "pod", "expected"),
    [
        (document(allow()), PAYMENTS_API, True),
        # a tagged session needs sts:TagSession too
        (document(allow(Action="sts:AssumeRole")), PAYMENTS_API, False),
        (document(allow(Action="sts:AssumeRole")), Pod(BLUE, "payments", "api", False), True),
        # an explicit Deny wins over any Allow
        (document(allow(), {**allow(), "Effect": "Deny"}), PAYMENTS_API, False),
        # NotPrincipal naming the pod principal excludes it; naming someone else includes it
        (
            document({**allow(), "NotPrincipal": {"Service": POD}, "Principal": None}),
            PAYMENTS_API,
            False,
        ),
        (
            document(
                {
                    **allow(),
                    "NotPrincipal": {"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"},
                    "Principal": None,
                }
            ),
            PAYMENTS_API,
            True,
        ),
        (document(allow(Principal="*")), PAYMENTS_API, True),
        (document(allow(Action="sts:*")), PAYMENTS_API, True),
        (document(allow(NotAction="s3:*", Action=None)), PAYMENTS_API, True),
        # a missing key fails a positive operator and satisfies a negated one: a
        # session without tags needs no sts:TagSession and passes the deny-list
        (
            document(allow({"StringNotLike": {"aws:RequestTag/kubernetes-namespace": "tenant-*"}})),
            Pod(BLUE, "tenant-a", "api", False),
            True,
        ),
        (
            document(allow({"StringNotLike": {"aws:RequestTag/kubernetes-namespace": "tenant-*"}})),
            Pod(BLUE, "tenant-a", "api"),
            False,
        ),
        (
            document(
                allow(
                    {"ForAllValues:StringEquals": {"aws:TagKeys": ["x"]}}, Action="sts:AssumeRole"
                )
            ),
            Pod(BLUE, "payments", "api", False),
            True,  # ForAllValues over a missing key holds
        ),
        (
            document(
                allow({"ForAnyValue:StringEquals": {"aws:TagKeys": ["kubernetes-namespace"]}})
            ),
            PAYMENTS_API,
            True,
        ),
        (
            document(allow({"StringEqualsIfExists": {"aws:RequestTag/eks-cluster-name": "green"}})),
            PAYMENTS_API,
            False,
        ),
        (
            document(allow({"Null": {"aws:RequestTag/eks-cluster-arn": "false"}})),
            PAYMENTS_API,
            True,
        ),
        (document(allow({"ArnLike": {"aws:SourceArn": cluster_arn("*")}})), PAYMENTS_API, False),
    ],
)
def test_the_evaluator_follows_the_documented_iam_logic(policy, pod, expected):
    for statement in policy["Statement"]:
        for key in [k for k, v in statement.items() if v is None]:
            del statement[key]
    assert admits(policy, pod) is expected


def test_source_arn_is_evaluated_only_when_eks_sends_it():
    policy = document(allow({"ArnLike": {"aws:SourceArn": cluster_arn("*")}}))
    assert admits(policy, PAYMENTS_API, sends_source_arn=True)
    assert not admits(policy, PAYMENTS_API, sends_source_arn=False)


# --- the properties --------------------------------------------------------------------

CLUSTERS = [cluster_arn("blue"), cluster_arn("green"), cluster_arn("red", OTHER_ACCOUNT)]
EVERY_POD = [
    Pod(c, ns, sa, tagged)
    for c in CLUSTERS
    for ns in ("payments", "orders", "tenant-a")
    for sa in ("api", "worker")
    for tagged in (True, False)
]
PRINCIPALS = [
    {"Principal": {"Service": POD}},
    {"Principal": {"Service": POD}},
    {"Principal": {"Service": ["ec2.amazonaws.com", POD]}},
    {"Principal": {"Service": "ec2.amazonaws.com"}},
    {"Principal": {"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"}},
    {"Principal": "*"},
    {"Principal": {"AWS": "*"}},
    {"NotPrincipal": {"Service": POD}},
    {"NotPrincipal": {"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"}},
]
ACTIONS = [
    {"Action": "sts:AssumeRole"},
    {"Action": ["sts:AssumeRole", "sts:TagSession"]},
    {"Action": "sts:TagSession"},
    {"Action": "sts:*"},
    {"Action": "sts:Tag*"},
    {"Action": ["s3:GetObject"]},
    {"NotAction": "s3:*"},
    {"NotAction": "sts:TagSession"},
]
CONDITIONS = [
    ("StringEquals", "aws:SourceAccount", ACCOUNT),
    ("StringEquals", "aws:SourceAccount", OTHER_ACCOUNT),
    ("StringEquals", "aws:SourceAccount", [ACCOUNT, OTHER_ACCOUNT]),
    ("ArnLike", "aws:SourceArn", cluster_arn("*")),
    ("ArnEquals", "aws:SourceArn", cluster_arn("green")),
    ("StringEquals", "aws:RequestTag/kubernetes-namespace", ["orders"]),
    ("StringEquals", "aws:RequestTag/kubernetes-namespace", ["payments", "orders"]),
    ("StringLike", "aws:RequestTag/kubernetes-namespace", "pay*"),
    ("StringNotLike", "aws:RequestTag/kubernetes-namespace", ["tenant-*", "kube-*"]),
    ("StringNotEquals", "aws:RequestTag/kubernetes-namespace", "payments"),
    ("StringEquals", "aws:RequestTag/kubernetes-service-account", "api"),
    ("StringLike", "aws:RequestTag/kubernetes-service-account", "w*"),
    ("StringEquals", "aws:RequestTag/eks-cluster-arn", cluster_arn("blue")),
    ("StringEqualsIfExists", "aws:RequestTag/eks-cluster-name", "green"),
    ("Null", "aws:RequestTag/eks-cluster-arn", "false"),
    ("Null", "aws:RequestTag/eks-cluster-arn", "true"),
    ("ForAllValues:StringEquals", "aws:TagKeys", ["kubernetes-namespace"]),
    ("ForAnyValue:StringLike", "aws:TagKeys", ["kubernetes-*"]),
    ("ForAnyValue:StringEquals", "aws:RequestTag/kubernetes-namespace", ["orders", "payments"]),
]


@st.composite
def statements(draw: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": draw(st.sampled_from(["Allow", "Allow", "Allow", "Deny"])),
        **copy.deepcopy(draw(st.sampled_from(PRINCIPALS))),
        **copy.deepcopy(draw(st.sampled_from(ACTIONS))),
    }
    if draw(st.booleans()):
        statement = {"Sid": draw(st.sampled_from(["A", "B", "EksPodIdentity"])), **statement}
    condition: dict[str, dict[str, Any]] = {}
    for operator, key, value in draw(st.lists(st.sampled_from(CONDITIONS), max_size=3)):
        condition.setdefault(operator, {})[key] = copy.deepcopy(value)
    if condition:
        statement["Condition"] = condition
    return statement


policies = st.lists(statements(), min_size=1, max_size=4).map(lambda s: document(*s))
declared = st.lists(st.sampled_from(EVERY_POD), min_size=1, max_size=4, unique=True)


@dataclass(frozen=True)
class Case:
    policy: dict[str, Any]
    pods: tuple[Pod, ...]
    sends_source_arn: bool

    @property
    def context(self) -> TrustContext:
        return TrustContext(ROLE, tuple(p.usage() for p in self.pods))

    def may_add(self, pod: Pod) -> bool:
        """A declared pod with session tags (IAM can tell it apart from every
        other pod only by them) that nothing the owner wrote excludes."""
        return (
            pod in self.pods
            and pod.tagged
            and owner_left_open(self.policy, pod, sends_source_arn=self.sends_source_arn)
        )


cases = st.builds(Case, policies, declared.map(tuple), st.booleans())


def admitted(policy: dict[str, Any], case: Case) -> set[Pod]:
    return {p for p in EVERY_POD if admits(policy, p, sends_source_arn=case.sends_source_arn)}


@settings(max_examples=400, deadline=None)
@given(cases)
def test_repair_admits_what_the_policy_admitted_plus_only_declared_pods_it_may_add(case):
    result = repair(case.policy, case.context)
    before, after = admitted(case.policy, case), admitted(result.policy, case)
    assert before <= after, f"repair of breakage locked out {sorted(map(str, before - after))}"
    widened = {p for p in after - before if not case.may_add(p)}
    assert not widened, f"repair admitted {widened} in {json.dumps(result.policy)}"
    # and it does add every declared pod it may, unless it said why not
    codes = {f.code for f in result.remaining}
    if not codes & {Code.CONDITION_UNVERIFIABLE, Code.POLICY_TOO_LARGE}:
        missing = {
            p
            for p in case.pods
            if case.may_add(p)
            and p not in after
            and "Deny"
            not in {
                decision(case.policy, a, request_context(p, sends_source_arn=case.sends_source_arn))
                for a in required_actions(p)
            }
        }
        assert not missing, f"declared pods left out: {missing}"


@settings(max_examples=300, deadline=None)
@given(cases)
def test_hardening_only_narrows_and_never_locks_out_a_declared_pod(case):
    result = repair(case.policy, case.context, harden=True)
    before, after = admitted(case.policy, case), admitted(result.policy, case)
    widened = {p for p in after - before if not case.may_add(p)}
    assert not widened, f"hardening admitted {widened} in {json.dumps(result.policy)}"
    lost = {p for p in case.pods if p in before and p not in after}
    assert not lost, f"hardening locked out declared {lost} in {json.dumps(result.policy)}"


def _conditions(policy: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (operator, key, json.dumps(raw))
        for s in _statements(policy)
        for operator, block in s.get("Condition", {}).items()
        for key, raw in block.items()
    ]


@settings(max_examples=200, deadline=None)
@given(cases, st.booleans())
def test_no_pattern_deny_list_principal_or_statement_is_removed_or_edited(case, harden):
    result = repair(case.policy, case.context, harden=harden)
    kept = set(_conditions(result.policy))
    assert set(_conditions(case.policy)) <= kept, "a condition the owner wrote was edited"
    denies = [s for s in _statements(case.policy) if s["Effect"] == "Deny"]
    assert all(d in _statements(result.policy) for d in denies)
    assert len(_statements(result.policy)) >= len(_statements(case.policy))
    again = repair(result.policy, case.context, harden=harden)
    assert again.policy == result.policy
    assert not again.changed
