import copy
import json
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.core.errors import MalformedPolicy
from functions.core.models import Severity
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

ROLE = role_arn("app")
USAGE = Usage("blue", cluster_arn("blue"), "payments", "api", declaration_id="app")
CONTEXT = TrustContext(ROLE, (USAGE,))


def pods_statement(actions=("sts:AssumeRole", "sts:TagSession"), condition=None, **extra):
    statement = {
        "Effect": "Allow",
        "Principal": {"Service": POD_PRINCIPAL},
        "Action": list(actions),
        **extra,
    }
    if condition:
        statement["Condition"] = condition
    return statement


def policy(*statements):
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


def codes(findings):
    return sorted(f.code for f in findings)


def test_a_hardened_policy_has_no_findings_and_repair_changes_nothing():
    assert analyse(HARDENED, CONTEXT) == []
    result = repair(HARDENED, CONTEXT)
    assert not result.changed
    assert result.policy == HARDENED
    assert result.changes == ()


def test_the_documented_minimal_policy_is_valid_but_gets_hardened():
    minimal = policy(pods_statement())
    findings = analyse(minimal, CONTEXT)
    assert codes(findings) == [Code.SOURCE_ACCOUNT_MISSING, Code.TAG_SCOPING_MISSING]
    assert not any(f.severity is Severity.ERROR for f in findings)
    result = repair(minimal, CONTEXT)
    assert result.changed
    assert result.policy == HARDENED
    assert result.remaining == ()


def test_missing_tag_session_is_an_error_and_is_added():
    broken = policy(pods_statement(actions=["sts:AssumeRole"]))
    (error,) = [f for f in analyse(broken, CONTEXT) if f.severity is Severity.ERROR]
    assert error.code == Code.TAG_SESSION_MISSING
    assert error.repairable
    fixed = repair(broken, CONTEXT).policy
    assert fixed["Statement"][0]["Action"] == ["sts:AssumeRole", "sts:TagSession"]


def test_tag_session_is_not_required_when_every_association_disables_tags():
    usage = Usage("blue", cluster_arn("blue"), "payments", "api", disable_session_tags=True)
    no_tags = policy(
        pods_statement(
            actions=["sts:AssumeRole"], condition={"StringEquals": {"aws:SourceAccount": ACCOUNT}}
        )
    )
    assert analyse(no_tags, TrustContext(ROLE, (usage,))) == []


def test_wildcard_actions_count_as_covering():
    assert Code.TAG_SESSION_MISSING not in codes(
        analyse(policy(pods_statement(actions=["sts:*"])), CONTEXT)
    )


def test_missing_pod_principal_gets_its_own_statement_and_others_stay_first():
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
    assert added["Sid"] == "EksPodIdentity"
    assert added["Principal"] == {"Service": POD_PRINCIPAL}
    assert added["Action"] == ["sts:AssumeRole", "sts:TagSession"]
    assert added["Condition"]["StringEquals"]["aws:SourceAccount"] == ACCOUNT
    assert not result.still_broken


def test_shared_statement_is_split_so_other_principals_are_untouched():
    shared = {
        "Sid": "Shared",
        "Effect": "Allow",
        "Principal": {"Service": ["ec2.amazonaws.com", POD_PRINCIPAL]},
        "Action": ["sts:AssumeRole", "sts:TagSession"],
    }
    result = repair(policy(shared), CONTEXT)
    first, second = result.policy["Statement"]
    assert first == {**shared, "Principal": {"Service": "ec2.amazonaws.com"}}
    assert second["Sid"] == "SharedPodIdentity"
    assert second["Principal"] == {"Service": POD_PRINCIPAL}
    assert "aws:SourceAccount" in second["Condition"]["StringEquals"]
    assert any("moved pods.eks.amazonaws.com" in c for c in result.changes)


def test_condition_that_excludes_a_declared_namespace_is_widened_exactly():
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
    assert finding.code == Code.CONDITION_EXCLUDES
    assert "blue/payments/api" in finding.message
    assert finding.repairable
    fixed = repair(narrow, CONTEXT).policy
    assert fixed["Statement"][0]["Condition"]["StringEquals"][
        "aws:RequestTag/kubernetes-namespace"
    ] == ["orders", "payments"]


def test_negated_condition_drops_only_the_excluding_value():
    narrow = policy(
        pods_statement(
            condition={
                "StringEquals": {"aws:SourceAccount": ACCOUNT},
                "StringNotLike": {"aws:RequestTag/kubernetes-namespace": ["pay*", "kube-*"]},
            }
        )
    )
    assert Code.CONDITION_EXCLUDES in codes(analyse(narrow, CONTEXT))
    fixed = repair(narrow, CONTEXT).policy
    assert fixed["Statement"][0]["Condition"]["StringNotLike"] == {
        "aws:RequestTag/kubernetes-namespace": "kube-*"
    }


def test_source_account_of_another_account_is_an_error():
    foreign = policy(
        pods_statement(condition={"StringEquals": {"aws:SourceAccount": OTHER_ACCOUNT}})
    )
    assert Code.CONDITION_EXCLUDES in codes(analyse(foreign, CONTEXT))
    fixed = repair(foreign, CONTEXT).policy
    assert fixed["Statement"][0]["Condition"]["StringEquals"]["aws:SourceAccount"] == [
        OTHER_ACCOUNT,
        ACCOUNT,
    ]


def test_tag_conditions_on_a_role_whose_association_disables_tags_can_never_match():
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


def test_explicit_deny_is_reported_and_never_removed():
    deny = {"Effect": "Deny", "Principal": {"Service": POD_PRINCIPAL}, "Action": "sts:AssumeRole"}
    document = policy(HARDENED["Statement"][0], deny)
    assert Code.EXPLICIT_DENY in codes(analyse(document, CONTEXT))
    result = repair(document, CONTEXT)
    assert result.policy["Statement"][1] == deny
    assert result.still_broken


def test_wildcard_and_foreign_principals_are_flagged_but_kept():
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


def test_source_arn_counts_as_protection_but_is_reported_unverifiable():
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
def test_malformed_policies_are_one_clear_finding_and_repair_refuses(document, message):
    (finding,) = analyse(document, CONTEXT)
    assert finding.code == Code.MALFORMED
    assert message in finding.message
    with pytest.raises(MalformedPolicy, match=message):
        repair(document, CONTEXT)


def test_json_and_url_encoded_strings_are_accepted_as_iam_returns_them():
    text = json.dumps(HARDENED)
    assert analyse(text, CONTEXT) == []
    assert analyse(quote(text), CONTEXT) == []


def test_scoping_is_dropped_when_it_would_overflow_the_quota():
    usages = tuple(
        Usage("blue", cluster_arn("blue"), f"namespace-{i:03d}", "api") for i in range(120)
    )
    context = TrustContext(ROLE, usages)
    result = repair(policy(pods_statement()), context)
    condition = result.policy["Statement"][0]["Condition"]["StringEquals"]
    assert condition == {"aws:SourceAccount": ACCOUNT}
    tiny = TrustContext(ROLE, (USAGE,), max_policy_chars=60)
    too_large = repair(policy(pods_statement()), tiny)
    assert not too_large.changed
    assert Code.POLICY_TOO_LARGE in codes(too_large.remaining)


def test_role_missing_names_the_declarations_relying_on_it():
    (finding,) = role_missing_findings(CONTEXT, deleted=True)
    assert finding.code == Code.ROLE_MISSING
    assert "was deleted" in finding.message
    assert "(app)" in finding.message


def test_role_missing_without_usages_names_the_declarations_or_no_parentheses():
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
def statements(draw):
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
    condition: dict = {}
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
def test_repair_is_idempotent_and_preserves_unrelated_statements_and_principals(stmts, context):
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
    def principal_set(p):
        found = set()
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
    if Code.POLICY_TOO_LARGE in codes(first.remaining):
        assert first.policy == original
    else:
        assert not [f for f in first.remaining if f.repairable and f.severity is Severity.ERROR]


@given(st.lists(statements(), min_size=1, max_size=4), usages)
def test_analysis_never_crashes_and_codes_are_stable(stmts, context):
    for finding in analyse(policy(*stmts), context):
        assert finding.code.startswith("PI")
        assert finding.message
