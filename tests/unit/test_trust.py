import copy
import json
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.core.errors import MalformedPolicy
from functions.core.models import Finding, Severity
from functions.core.trust import (
    POD_PRINCIPAL,
    Code,
    TrustContext,
    Usage,
    analyse,
    repair,
    role_missing_findings,
)
from tests.builders import ACCOUNT, OTHER_ACCOUNT, cluster_arn, role_arn
from tests.unit.test_trust_properties import Pod, admits

ROLE = role_arn("app")
USAGE = Usage("blue", cluster_arn("blue"), "payments", "api", declaration_id="app")
CONTEXT = TrustContext(ROLE, (USAGE,))


def pods_statement(
    actions: Sequence[str] = ("sts:AssumeRole", "sts:TagSession"),
    condition: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    statement = {
        "Effect": "Allow",
        "Principal": {"Service": POD_PRINCIPAL},
        "Action": list(actions),
        **extra,
    }
    if condition:
        statement["Condition"] = condition
    return statement


def policy(*statements: Any) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


HARDENED = policy(
    pods_statement(
        condition={
            "StringEquals": {
                "aws:SourceAccount": ACCOUNT,
                "aws:RequestTag/kubernetes-namespace": "payments",
                "aws:RequestTag/kubernetes-service-account": "api",
            }
        }
    )
)


def codes(findings: Iterable[Finding]) -> list[str]:
    return sorted(f.code for f in findings)


EC2_ONLY = policy(
    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
)


def admitted_by(document: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(cluster, namespace, service account) of every tagged pod the policy admits,
    as the independent evaluator of tests/unit/test_trust_properties.py sees it."""
    return {
        (name, ns, sa)
        for name in ("blue", "green")
        for ns in ("payments", "orders")
        for sa in ("api", "worker")
        if admits(document, Pod(cluster_arn(name), ns, sa))
    }


def test_a_hardened_policy_has_no_findings_and_repair_changes_nothing() -> None:
    assert analyse(HARDENED, CONTEXT) == []
    result = repair(HARDENED, CONTEXT)
    assert not result.changed
    assert result.policy == HARDENED
    assert result.changes == ()


def test_hardening_is_a_proposal_with_the_exact_policy_unless_the_owner_opted_in() -> None:
    # Given the documented minimal policy: it works, it is only not hardened
    minimal = policy(pods_statement())
    findings = analyse(minimal, CONTEXT)
    assert codes(findings) == [Code.SOURCE_ACCOUNT_MISSING, Code.TAG_SCOPING_MISSING]
    assert not any(f.repairable for f in findings)
    # When repair runs for breakage only, nothing is written
    result = repair(minimal, CONTEXT)
    assert not result.changed
    assert result.policy == minimal
    # Then the hardening is a finding carrying the exact policy it would write
    (proposal,) = [f for f in result.remaining if f.code == "PI032"]
    assert proposal.severity is Severity.INFO
    assert "pod-identity/managed-trust=harden" in proposal.message
    hardened = repair(minimal, CONTEXT, harden=True)
    assert hardened.changed
    assert proposal.proposed_policy is not None
    assert json.loads(proposal.proposed_policy) == hardened.policy
    assert hardened.policy["Statement"][0]["Condition"] == {
        "StringEquals": {
            "aws:SourceAccount": ACCOUNT,
            "aws:RequestTag/eks-cluster-arn": cluster_arn("blue"),
            "aws:RequestTag/kubernetes-namespace": "payments",
            "aws:RequestTag/kubernetes-service-account": "api",
        }
    }
    assert not [f for f in hardened.remaining if f.code == "PI032"]


def test_missing_tag_session_is_an_error_and_the_declared_usage_alone_is_added() -> None:
    broken = policy(pods_statement(actions=["sts:AssumeRole"]))
    (error,) = [f for f in analyse(broken, CONTEXT) if f.severity is Severity.ERROR]
    assert error.code == Code.TAG_SESSION_MISSING
    assert "blue/payments/api" in error.message
    assert error.repairable
    fixed = repair(broken, CONTEXT).policy
    # the owner's statement is left as written; the usage gets its own statement
    assert fixed["Statement"][0] == broken["Statement"][0]
    assert fixed["Statement"][1]["Action"] == ["sts:AssumeRole", "sts:TagSession"]
    assert fixed["Statement"][1]["Condition"] == {
        "StringEquals": {
            "aws:SourceAccount": ACCOUNT,
            "aws:RequestTag/eks-cluster-arn": cluster_arn("blue"),
            "aws:RequestTag/kubernetes-namespace": "payments",
            "aws:RequestTag/kubernetes-service-account": "api",
        }
    }


def test_tag_session_is_not_required_when_every_association_disables_tags() -> None:
    usage = Usage("blue", cluster_arn("blue"), "payments", "api", disable_session_tags=True)
    no_tags = policy(
        pods_statement(
            actions=["sts:AssumeRole"], condition={"StringEquals": {"aws:SourceAccount": ACCOUNT}}
        )
    )
    assert analyse(no_tags, TrustContext(ROLE, (usage,))) == []


def test_a_usage_without_session_tags_is_never_granted_by_podid() -> None:
    # IAM cannot tell one untagged pod session from another: a grant would admit them all
    usage = Usage("blue", cluster_arn("blue"), "payments", "api", disable_session_tags=True)
    context = TrustContext(ROLE, (usage,))
    result = repair(EC2_ONLY, context)
    assert not result.changed
    (refused,) = [f for f in result.remaining if f.code == Code.ASSUME_ROLE_MISSING]
    assert not refused.repairable
    assert "disables session tags" in refused.message
    assert "role owner" in refused.message


def test_wildcard_actions_count_as_covering() -> None:
    assert Code.TAG_SESSION_MISSING not in codes(
        analyse(policy(pods_statement(actions=["sts:*"])), CONTEXT)
    )


def test_missing_pod_principal_gets_its_own_statement_and_others_stay_first() -> None:
    ec2 = {
        "Sid": "Ec2",
        "Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }
    broken = policy(copy.deepcopy(ec2))
    assert Code.PRINCIPAL_MISSING in codes(analyse(broken, CONTEXT))
    result = repair(broken, CONTEXT)
    assert result.policy["Statement"][0] == ec2
    added = result.policy["Statement"][1]
    assert added["Sid"].startswith("PodidGrant")
    assert added["Principal"] == {"Service": POD_PRINCIPAL}
    assert added["Action"] == ["sts:AssumeRole", "sts:TagSession"]
    assert added["Condition"]["StringEquals"]["aws:SourceAccount"] == ACCOUNT
    assert not result.still_broken


def test_grants_are_per_usage_never_a_namespace_by_service_account_cross_product() -> None:
    # Given payments/api on blue and orders/worker on green, and no pod trust yet
    usages = (
        Usage("blue", cluster_arn("blue"), "payments", "api"),
        Usage("green", cluster_arn("green"), "orders", "worker"),
    )
    fixed = repair(EC2_ONLY, TrustContext(ROLE, usages)).policy
    # Then exactly those two are admitted: not payments/worker, not api from green
    assert admitted_by(fixed) == {
        ("blue", "payments", "api"),
        ("green", "orders", "worker"),
    }


def test_a_new_cluster_of_a_declared_usage_joins_its_grant() -> None:
    first = repair(EC2_ONLY, TrustContext(ROLE, (USAGE,))).policy
    both = (USAGE, Usage("green", cluster_arn("green"), "payments", "api"))
    fixed = repair(first, TrustContext(ROLE, both)).policy
    assert len(fixed["Statement"]) == 2
    grant = fixed["Statement"][1]["Condition"]["StringEquals"]
    assert grant["aws:RequestTag/eks-cluster-arn"] == [cluster_arn("blue"), cluster_arn("green")]
    assert admitted_by(fixed) == {("blue", "payments", "api"), ("green", "payments", "api")}


def test_hardening_scopes_a_shared_policy_per_usage() -> None:
    usages = (
        Usage("blue", cluster_arn("blue"), "payments", "api"),
        Usage("green", cluster_arn("green"), "orders", "worker"),
    )
    hardened = repair(policy(pods_statement()), TrustContext(ROLE, usages), harden=True).policy
    assert admitted_by(hardened) == {
        ("blue", "payments", "api"),
        ("green", "orders", "worker"),
    }


@pytest.mark.parametrize(
    "wildcard",
    [
        {"Principal": "*"},
        {"Principal": {"AWS": "*"}},
        {"NotPrincipal": {"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"}},
    ],
)
def test_not_principal_and_star_never_count_as_trusting_pods(wildcard: dict[str, Any]) -> None:
    # Given a statement open to everyone for sts:AssumeRole, and nothing naming pods
    document = policy({"Effect": "Allow", **wildcard, "Action": "sts:AssumeRole"})
    found = codes(analyse(document, CONTEXT))
    assert Code.WILDCARD_PRINCIPAL in found
    assert Code.PRINCIPAL_MISSING in found
    # Then the essential fix names the pod principal with both actions
    fixed = repair(document, CONTEXT).policy
    assert fixed["Statement"][0] == document["Statement"][0]
    added = fixed["Statement"][1]
    assert added["Principal"] == {"Service": POD_PRINCIPAL}
    assert added["Action"] == ["sts:AssumeRole", "sts:TagSession"]


def test_shared_statement_is_split_only_when_hardening_so_other_principals_are_untouched() -> None:
    shared = {
        "Sid": "Shared",
        "Effect": "Allow",
        "Principal": {"Service": ["ec2.amazonaws.com", POD_PRINCIPAL]},
        "Action": ["sts:AssumeRole", "sts:TagSession"],
    }
    assert not repair(policy(shared), CONTEXT).changed
    result = repair(policy(shared), CONTEXT, harden=True)
    first, second = result.policy["Statement"]
    assert first == {**shared, "Principal": {"Service": "ec2.amazonaws.com"}}
    assert second["Principal"] == {"Service": POD_PRINCIPAL}
    assert "aws:SourceAccount" in second["Condition"]["StringEquals"]
    assert any("moved pods.eks.amazonaws.com" in c for c in result.changes)


def test_a_condition_the_owner_wrote_that_excludes_a_declared_namespace_is_never_widened() -> None:
    # Given a role whose owner admits only namespace orders, and a declaration for payments
    narrow = policy(
        pods_statement(
            condition={
                "StringEquals": {
                    "aws:SourceAccount": ACCOUNT,
                    "aws:RequestTag/kubernetes-namespace": ["orders"],
                }
            }
        )
    )
    (finding,) = [f for f in analyse(narrow, CONTEXT) if f.severity is Severity.ERROR]
    # Then it is reported, saying who must act, and never repaired
    assert finding.code == Code.CONDITION_EXCLUDES
    assert "blue/payments/api" in finding.message
    assert "role owner must widen it" in finding.message
    assert not finding.repairable
    for harden in (False, True):
        result = repair(narrow, CONTEXT, harden=harden)
        assert result.policy["Statement"][0] == narrow["Statement"][0]
        assert not admitted_by(result.policy) & {("blue", "payments", "api")}


def test_a_deny_list_pattern_is_never_removed_or_edited() -> None:
    narrow = policy(
        pods_statement(
            condition={
                "StringEquals": {"aws:SourceAccount": ACCOUNT},
                "StringNotLike": {"aws:RequestTag/kubernetes-namespace": ["pay*", "kube-*"]},
            }
        )
    )
    assert Code.CONDITION_EXCLUDES in codes(analyse(narrow, CONTEXT))
    deny_list = {"aws:RequestTag/kubernetes-namespace": ["pay*", "kube-*"]}
    assert repair(narrow, CONTEXT).policy["Statement"][0]["Condition"]["StringNotLike"] == (
        deny_list
    )
    hardened = repair(narrow, CONTEXT, harden=True).policy
    assert hardened["Statement"][0]["Condition"]["StringNotLike"] == deny_list


def test_a_source_account_of_another_account_is_reported_never_changed() -> None:
    foreign = policy(
        pods_statement(condition={"StringEquals": {"aws:SourceAccount": OTHER_ACCOUNT}})
    )
    found = {f.code: f for f in analyse(foreign, CONTEXT)}
    assert not found[Code.CONDITION_EXCLUDES].repairable
    assert "PI043" in found
    assert OTHER_ACCOUNT in found["PI043"].message
    for harden in (False, True):
        fixed = repair(foreign, CONTEXT, harden=harden).policy
        assert fixed["Statement"][0]["Condition"]["StringEquals"]["aws:SourceAccount"] == (
            OTHER_ACCOUNT
        )


def test_a_source_arn_naming_an_undeclared_cluster_is_reported_never_changed() -> None:
    document = policy(
        pods_statement(
            condition={
                "StringEquals": {"aws:SourceAccount": ACCOUNT},
                "ArnEquals": {"aws:SourceArn": [cluster_arn("blue"), cluster_arn("legacy")]},
            }
        )
    )
    (undeclared,) = [f for f in analyse(document, CONTEXT) if f.code == "PI043"]
    assert cluster_arn("legacy") in undeclared.message
    assert cluster_arn("blue") not in undeclared.message.split("names ")[1].split(",")[0]
    assert repair(document, CONTEXT, harden=True).policy["Statement"][0] == document["Statement"][0]


def test_tag_conditions_on_a_role_whose_association_disables_tags_can_never_match() -> None:
    usage = Usage("blue", cluster_arn("blue"), "payments", "api", disable_session_tags=True)
    context = TrustContext(ROLE, (usage,))
    tagged = policy(
        pods_statement(
            condition={
                "StringEquals": {
                    "aws:SourceAccount": ACCOUNT,
                    "aws:RequestTag/kubernetes-namespace": "payments",
                }
            }
        )
    )
    (finding,) = analyse(tagged, context)
    assert finding.code == Code.TAG_CONDITION_UNMATCHABLE
    assert not finding.repairable
    result = repair(tagged, context)
    assert not result.changed
    assert result.still_broken


def test_explicit_deny_is_reported_and_never_removed() -> None:
    deny = {"Effect": "Deny", "Principal": {"Service": POD_PRINCIPAL}, "Action": "sts:AssumeRole"}
    document = policy(HARDENED["Statement"][0], deny)
    assert Code.EXPLICIT_DENY in codes(analyse(document, CONTEXT))
    result = repair(document, CONTEXT)
    assert result.policy["Statement"][1] == deny
    assert result.still_broken


def test_wildcard_and_foreign_principals_are_flagged_but_kept() -> None:
    wildcard = {"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"}
    foreign = {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"},
        "Action": "sts:AssumeRole",
    }
    document = policy(HARDENED["Statement"][0], wildcard, foreign)
    found = {f.code: f for f in analyse(document, CONTEXT)}
    assert found[Code.WILDCARD_PRINCIPAL].severity is Severity.ERROR
    assert found[Code.FOREIGN_PRINCIPAL].severity is Severity.WARNING
    assert OTHER_ACCOUNT in found[Code.FOREIGN_PRINCIPAL].message
    assert repair(document, CONTEXT).policy == document


def test_source_arn_counts_as_protection_but_is_reported_unverifiable() -> None:
    with_arn = policy(pods_statement(condition={"ArnLike": {"aws:SourceArn": cluster_arn("*")}}))
    found = analyse(with_arn, TrustContext(ROLE, (USAGE,), scope_session_tags=False))
    assert codes(found) == [Code.CONDITION_UNVERIFIABLE]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{not json", "not valid JSON"),
        ({"Version": "2012-10-17"}, "no Statement"),
        (
            policy({"Effect": "Maybe", "Principal": "*", "Action": "sts:AssumeRole"}),
            "Effect must be",
        ),
        (policy({"Effect": "Allow", "Action": "sts:AssumeRole"}), "exactly one of Principal"),
        (
            policy({"Effect": "Allow", "Principal": {"Robot": "x"}, "Action": "a"}),
            "unknown type 'Robot'",
        ),
        (policy(pods_statement(Condition=[1])), "Condition must be an object"),
    ],
)
def test_malformed_policies_are_one_clear_finding_and_repair_refuses(
    document: str | dict[str, Any], message: str
) -> None:
    (finding,) = analyse(document, CONTEXT)
    assert finding.code == Code.MALFORMED
    assert message in finding.message
    with pytest.raises(MalformedPolicy, match=message):
        repair(document, CONTEXT)


def test_json_and_url_encoded_strings_are_accepted_as_iam_returns_them() -> None:
    text = json.dumps(HARDENED)
    assert analyse(text, CONTEXT) == []
    assert analyse(quote(text), CONTEXT) == []


def test_scoping_is_dropped_when_it_would_overflow_the_quota_and_that_is_recorded() -> None:
    usages = tuple(
        Usage("blue", cluster_arn("blue"), f"namespace-{i:03d}", "api") for i in range(120)
    )
    result = repair(policy(pods_statement()), TrustContext(ROLE, usages), harden=True)
    condition = result.policy["Statement"][0]["Condition"]["StringEquals"]
    assert condition == {"aws:SourceAccount": ACCOUNT}
    (refusal,) = [f for f in result.remaining if f.code == Code.POLICY_TOO_LARGE]
    assert refusal.severity is Severity.WARNING
    assert "quota of 2048" in refusal.message


def test_when_hardening_does_not_fit_the_essential_fix_is_written_alone() -> None:
    # Given a role missing sts:TagSession, and a quota that fits only the essential fix
    broken = policy(pods_statement(actions=["sts:AssumeRole"]))
    essential = repair(broken, CONTEXT).policy
    quota = len(json.dumps(essential, separators=(",", ":")))
    result = repair(broken, TrustContext(ROLE, (USAGE,), max_policy_chars=quota), harden=True)
    # Then the essential fix is written and the hardening refusal recorded
    assert result.policy == essential
    (refusal,) = [f for f in result.remaining if f.code == Code.POLICY_TOO_LARGE]
    assert refusal.severity is Severity.WARNING
    assert f"quota of {quota}" in refusal.message
    # And when even the essential fix does not fit, nothing is written and that is said
    tiny = repair(broken, TrustContext(ROLE, (USAGE,), max_policy_chars=quota - 1), harden=True)
    assert not tiny.changed
    errors = [f for f in tiny.remaining if f.code == Code.POLICY_TOO_LARGE]
    assert Severity.ERROR in {f.severity for f in errors}


def test_role_missing_names_the_declarations_relying_on_it() -> None:
    (finding,) = role_missing_findings(CONTEXT, deleted=True)
    assert finding.code == Code.ROLE_MISSING
    assert "was deleted" in finding.message
    assert "(app)" in finding.message


def test_role_missing_without_usages_names_the_declarations_or_no_parentheses() -> None:
    # declared for clusters not enrolled yet: no usage, the declarations still rely on it
    (finding,) = role_missing_findings(
        TrustContext(ROLE, ()), deleted=False, declaration_ids=["b", "a"]
    )
    assert "declarations rely on it (a, b);" in finding.message
    (finding,) = role_missing_findings(TrustContext(ROLE, ()), deleted=False)
    assert "declarations rely on it;" in finding.message
    assert "()" not in finding.message


# --- properties ---------------------------------------------------------------

PRINCIPALS = [
    {"Service": POD_PRINCIPAL},
    {"Service": ["ec2.amazonaws.com", POD_PRINCIPAL]},
    {"Service": "ec2.amazonaws.com"},
    {"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"},
    "*",
]
CONDITION_PIECES = [
    ("StringEquals", "aws:SourceAccount", ACCOUNT),
    ("StringEquals", "aws:SourceAccount", OTHER_ACCOUNT),
    ("StringEquals", "aws:RequestTag/kubernetes-namespace", ["orders"]),
    ("StringLike", "aws:RequestTag/kubernetes-service-account", "ap*"),
    ("StringNotEquals", "aws:RequestTag/kubernetes-namespace", "payments"),
    ("ArnLike", "aws:SourceArn", "arn:aws:eks:*:*:cluster/*"),
    ("Null", "aws:RequestTag/eks-cluster-arn", "false"),
    ("ForAllValues:StringEquals", "aws:TagKeys", ["kubernetes-namespace"]),
    ("StringEqualsIfExists", "aws:RequestTag/eks-cluster-name", "green"),
]


@st.composite
def statements(draw: st.DrawFn) -> dict[str, Any]:
    statement = {
        "Effect": draw(st.sampled_from(["Allow", "Allow", "Allow", "Deny"])),
        "Principal": copy.deepcopy(draw(st.sampled_from(PRINCIPALS))),
        "Action": draw(
            st.sampled_from(
                ["sts:AssumeRole", ["sts:AssumeRole", "sts:TagSession"], "sts:*", ["s3:GetObject"]]
            )
        ),
    }
    if draw(st.booleans()):
        statement["Sid"] = draw(st.sampled_from(["A", "B", "EksPodIdentity"]))
    condition: dict[str, dict[str, Any]] = {}
    for operator, key, value in draw(st.lists(st.sampled_from(CONDITION_PIECES), max_size=3)):
        condition.setdefault(operator, {})[key] = copy.deepcopy(value)
    if condition:
        statement["Condition"] = condition
    return statement


usages = st.lists(
    st.builds(
        Usage,
        cluster_name=st.sampled_from(["blue", "green"]),
        cluster_arn=st.just(cluster_arn("blue")),
        namespace=st.sampled_from(["payments", "orders"]),
        service_account=st.sampled_from(["api", "worker"]),
        disable_session_tags=st.booleans(),
    ),
    min_size=1,
    max_size=3,
).map(lambda u: TrustContext(ROLE, tuple(u)))


@settings(max_examples=300)
@given(st.lists(statements(), min_size=1, max_size=4), usages)
def test_repair_is_idempotent_and_preserves_unrelated_statements_and_principals(
    stmts: list[dict[str, Any]], context: TrustContext
) -> None:
    original = policy(*stmts)
    snapshot = copy.deepcopy(original)
    first = repair(original, context)
    assert original == snapshot, "repair must not mutate its input"
    second = repair(first.policy, context)
    assert second.policy == first.policy
    assert not second.changed
    # unrelated statements (not reaching the pod principal) keep content and order
    unrelated = [
        s
        for s in stmts
        if s["Principal"]
        in ({"Service": "ec2.amazonaws.com"}, {"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"})
    ]
    remaining = iter(first.policy["Statement"])
    assert all(any(s == r for r in remaining) for s in unrelated), (
        "unrelated order or content changed"
    )

    # no principal disappears
    def principal_set(p: dict[str, Any]) -> set[tuple[str, Any]]:
        found: set[tuple[str, Any]] = set()
        for s in p["Statement"]:
            principal = s["Principal"]
            if principal == "*":
                found.add(("*", "*"))
                continue
            for kind, values in principal.items():
                for value in values if isinstance(values, list) else [values]:
                    found.add((kind, value))
        return found

    assert principal_set(original) <= principal_set(first.policy)
    # whatever repair claims repairable is gone afterwards, unless it could not fit the quota
    if any(
        f.code == Code.POLICY_TOO_LARGE and f.severity is Severity.ERROR for f in first.remaining
    ):
        assert first.policy == original
    else:
        assert not [f for f in first.remaining if f.repairable and f.severity is Severity.ERROR]


@given(st.lists(statements(), min_size=1, max_size=4), usages)
def test_analysis_never_crashes_and_codes_are_stable(
    stmts: list[dict[str, Any]], context: TrustContext
) -> None:
    for finding in analyse(policy(*stmts), context):
        assert finding.code.startswith("PI")
        assert finding.message
