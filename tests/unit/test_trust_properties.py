"""Repair never widens: checked against the sandbox's IAM trust-policy evaluator
(sandbox.iam_policy, written from AWS's documented evaluation logic) over the
requests EKS Auth makes for a pod (sandbox.eks_emulation.pod_request). Neither
shares code with functions.core.trust (an oracle built from the product agrees
with the product's bugs)."""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.core.trust import Code, TrustContext, Usage, repair
from sandbox import iam_policy
from sandbox.eks_emulation.pod_request import session_tags, sts_requests
from tests.builders import ACCOUNT, OTHER_ACCOUNT, cluster_arn, role_arn

POD = "pods.eks.amazonaws.com"
ROLE = role_arn("app")

# --- the pod's requests, decided by the sandbox's evaluator ---------------------------


@dataclass(frozen=True)
class Pod:
    """One pod asking EKS Auth for the role's credentials."""

    cluster_arn: str
    namespace: str
    service_account: str
    tagged: bool = True  # False: the association disables session tags

    def usage(self) -> Usage:
        name = self.cluster_arn.rsplit("/", 1)[1]
        return Usage(name, self.cluster_arn, self.namespace, self.service_account, not self.tagged)


def requests(pod: Pod, *, sends_source_arn: bool) -> list[iam_policy.Request]:
    """sts:AssumeRole (and sts:TagSession for a tagged session) as EKS Auth asks STS."""
    tags = session_tags(
        pod.cluster_arn,
        pod.namespace,
        pod.service_account,
        f"{pod.service_account}-7d4b9",
        "0b7e7a4c-4d5e-4f6a-8b9c-0d1e2f3a4b5c",
    )
    found = sts_requests(pod.cluster_arn, tags if pod.tagged else None)
    if sends_source_arn:  # undocumented for this principal: both readings are checked
        return found
    return [
        dataclasses.replace(r, context={k: v for k, v in r.context.items() if k != "aws:SourceArn"})
        for r in found
    ]


def decision(policy: dict[str, Any], request: iam_policy.Request) -> str:
    """Allow, ExplicitDeny or ImplicitDeny."""
    return iam_policy.decide(iam_policy.load(policy), request).effect


def admits(policy: dict[str, Any], pod: Pod, *, sends_source_arn: bool = False) -> bool:
    return all(
        decision(policy, r) == "Allow" for r in requests(pod, sends_source_arn=sends_source_arn)
    )


def _statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    found = policy["Statement"]
    return [found] if isinstance(found, dict) else found


def owner_left_open(policy: dict[str, Any], pod: Pod, *, sends_source_arn: bool) -> bool:
    """For every action the pod needs, the policy either allows it already or has
    no statement naming the pod principal about it: nothing the role owner wrote
    says no. Only then may a repair add the pod."""
    for request in requests(pod, sends_source_arn=sends_source_arn):
        naming = [
            s
            for s in _statements(policy)
            if s["Effect"] == "Allow"
            and "Principal" in s
            and s["Principal"] != "*"
            and POD in _as_list(s["Principal"].get("Service"))
            and decision(document(_unconditional(s)), request) == "Allow"
        ]
        if naming and not any(decision(document(s), request) == "Allow" for s in naming):
            return False
    return True


def _unconditional(statement: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in statement.items() if k != "Condition"}


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
def test_the_evaluator_follows_the_documented_iam_logic(
    policy: dict[str, Any], pod: Pod, expected: bool
) -> None:
    for statement in policy["Statement"]:
        for key in [k for k, v in statement.items() if v is None]:
            del statement[key]
    assert admits(policy, pod) is expected


def test_not_principal_is_no_role_trust_policy() -> None:
    # IAM refuses NotPrincipal in a role's trust policy, so no role has one to repair
    policy = document({**allow(), "NotPrincipal": {"Service": POD}})
    del policy["Statement"][0]["Principal"]
    with pytest.raises(iam_policy.PolicyInvalid, match="NotPrincipal cannot be used"):
        admits(policy, PAYMENTS_API)


def test_source_arn_is_evaluated_only_when_eks_sends_it() -> None:
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
def test_repair_admits_what_the_policy_admitted_plus_only_declared_pods_it_may_add(
    case: Case,
) -> None:
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
            and "ExplicitDeny"
            not in {
                decision(case.policy, r)
                for r in requests(p, sends_source_arn=case.sends_source_arn)
            }
        }
        assert not missing, f"declared pods left out: {missing}"


@settings(max_examples=300, deadline=None)
@given(cases)
def test_hardening_only_narrows_and_never_locks_out_a_declared_pod(case: Case) -> None:
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
def test_no_pattern_deny_list_principal_or_statement_is_removed_or_edited(
    case: Case, harden: bool
) -> None:
    result = repair(case.policy, case.context, harden=harden)
    kept = set(_conditions(result.policy))
    assert set(_conditions(case.policy)) <= kept, "a condition the owner wrote was edited"
    denies = [s for s in _statements(case.policy) if s["Effect"] == "Deny"]
    assert all(d in _statements(result.policy) for d in denies)
    assert len(_statements(result.policy)) >= len(_statements(case.policy))
    again = repair(result.policy, case.context, harden=harden)
    assert again.policy == result.policy
    assert not again.changed
