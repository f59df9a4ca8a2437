"""The sandbox's IAM trust-policy evaluator, one documented rule per case.

Sources (IAM User Guide): "Policy evaluation logic" (PEL), "IAM JSON policy
elements: Principal / NotPrincipal / Action / NotAction / Condition" (PRN, NPR,
ACT, CND), "Condition operators" (OPS), "Single-valued vs. multivalued context
keys" (MVK), "Policy variables" (VAR); EKS User Guide "Create IAM role with
trust policy required by EKS Pod Identity" (EKS).
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from sandbox import iam_policy
from sandbox.iam_policy import Caller, NotEvaluable, PolicyInvalid, Request

POD = Caller.service("pods.eks.amazonaws.com")
ACCOUNT = "111122223333"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/app"
SESSION = Caller.aws(f"arn:aws:sts::{ACCOUNT}:assumed-role/app/s1", role_arn=ROLE)
CLUSTER = f"arn:aws:eks:eu-west-1:{ACCOUNT}:cluster/blue"
TAGS: dict[str, str | tuple[str, ...]] = {
    "aws:RequestTag/eks-cluster-arn": CLUSTER,
    "aws:RequestTag/kubernetes-namespace": "payments",
    "aws:RequestTag/kubernetes-service-account": "api",
    "aws:TagKeys": ("eks-cluster-arn", "kubernetes-namespace", "kubernetes-service-account"),
    "aws:SourceAccount": ACCOUNT,
    "aws:SourceArn": CLUSTER,
}


def statement(**fields: Any) -> dict[str, Any]:
    found = {
        "Effect": "Allow",
        "Principal": {"Service": "pods.eks.amazonaws.com"},
        "Action": ["sts:AssumeRole", "sts:TagSession"],
    } | fields
    if "NotAction" in fields:
        found.pop("Action")
    return found


def effect(
    *statements: dict[str, Any],
    action: str = "sts:AssumeRole",
    caller: Caller = POD,
    context: dict[str, Any] | None = None,
    version: str | None = "2012-10-17",
) -> str:
    document: dict[str, Any] = {"Statement": list(statements)}
    if version:
        document["Version"] = version
    policy = iam_policy.load(json.dumps(document))
    return iam_policy.decide(policy, Request(caller, action, context or TAGS)).effect


def when(operator: str, key: str, value: Any, **kw: Any) -> str:
    return effect(statement(Condition={operator: {key: value}}), **kw)


# --- evaluation logic (PEL) -------------------------------------------------------


def test_the_documented_eks_trust_policy_allows_both_actions() -> None:
    # EKS: Principal pods.eks.amazonaws.com with sts:AssumeRole and sts:TagSession
    assert effect(statement()) == "Allow"
    assert effect(statement(), action="sts:TagSession") == "Allow"


def test_without_an_applying_allow_the_request_is_implicitly_denied() -> None:
    # PEL: the default is deny; an Allow must apply
    assert effect(statement(Action="sts:TagSession")) == "ImplicitDeny"


def test_an_explicit_deny_wins_over_any_allow() -> None:
    # PEL: an explicit deny in any statement overrides an allow
    deny = statement(Effect="Deny", Action="sts:AssumeRole")
    assert effect(statement(), deny) == "ExplicitDeny"
    assert effect(deny, statement()) == "ExplicitDeny"


def test_a_deny_whose_condition_does_not_hold_does_not_apply() -> None:
    deny = statement(
        Effect="Deny",
        Condition={"StringEquals": {"aws:RequestTag/kubernetes-namespace": "other"}},
    )
    assert effect(statement(), deny) == "Allow"


def test_the_decision_names_the_statements_that_made_it() -> None:
    policy = iam_policy.load(
        {"Statement": [statement(Action="sts:TagSession"), statement(), statement()]}
    )
    decision = iam_policy.decide(policy, Request(POD, "sts:AssumeRole", TAGS))
    assert decision.statements == (1, 2)
    assert "Statement[1, 2]" in str(decision)


# --- Principal (PRN) ---------------------------------------------------------------


def test_a_service_principal_names_only_that_service() -> None:
    assert effect(statement(Principal={"Service": "ec2.amazonaws.com"})) == "ImplicitDeny"
    both = {"Service": ["ec2.amazonaws.com", "pods.eks.amazonaws.com"]}
    assert effect(statement(Principal=both)) == "Allow"


@pytest.mark.parametrize("everyone", ["*", {"AWS": "*"}])
def test_star_in_either_spelling_is_every_principal(everyone: Any) -> None:
    # PRN: "Principal": "*" and {"AWS": "*"} both specify all principals
    assert effect(statement(Principal=everyone)) == "Allow"
    assert effect(statement(Principal=everyone), caller=SESSION) == "Allow"


@pytest.mark.parametrize("account", [ACCOUNT, f"arn:aws:iam::{ACCOUNT}:root"])
def test_an_account_principal_is_every_iam_principal_of_it_but_no_service(account: str) -> None:
    # PRN: an account principal delegates to the account's IAM identities
    assert effect(statement(Principal={"AWS": account}), caller=SESSION) == "Allow"
    assert effect(statement(Principal={"AWS": account})) == "ImplicitDeny"
    other = Caller.aws("arn:aws:sts::444455556666:assumed-role/app/s1")
    assert effect(statement(Principal={"AWS": account}), caller=other) == "ImplicitDeny"


def test_a_role_principal_names_its_sessions_only() -> None:
    # PRN: a role ARN as principal matches sessions of that role
    assert effect(statement(Principal={"AWS": ROLE}), caller=SESSION) == "Allow"
    other = Caller.aws(
        f"arn:aws:sts::{ACCOUNT}:assumed-role/ops/s1", role_arn=f"arn:aws:iam::{ACCOUNT}:role/ops"
    )
    assert effect(statement(Principal={"AWS": ROLE}), caller=other) == "ImplicitDeny"


@pytest.mark.parametrize("kind", ["Federated", "CanonicalUser"])
def test_federated_and_canonical_user_principals_never_name_a_service(kind: str) -> None:
    assert effect(statement(Principal={kind: "cognito-identity.amazonaws.com"})) == "ImplicitDeny"


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"NotPrincipal": {"AWS": ROLE}}, "NotPrincipal"),  # NPR: not in a role trust policy
        ({"Resource": "*"}, "Resource"),  # a trust policy has no Resource
        ({"Principal": {"AWS": "arn:aws:iam::*:root"}}, "wildcards"),  # PRN: only "*" alone
        ({"Principal": {"Group": "x"}}, "unknown type"),
        ({"Effect": "Maybe"}, "Effect"),
        ({"Action": []}, "Action"),
        ({"Condition": {"StringEquals": {}}}, "non-empty"),
        ({"Condition": {"StringEqual": {"aws:SourceAccount": ACCOUNT}}}, "unknown condition"),
        ({"Condition": {"NullIfExists": {"aws:SourceArn": "true"}}}, "Null takes"),
        ({"Condition": {"ForEveryValue:StringLike": {"aws:TagKeys": "*"}}}, "set operator"),
    ],
)
def test_documents_iam_would_not_store_are_refused(fields: dict[str, Any], why: str) -> None:
    raw = statement(**fields)
    if "NotPrincipal" in fields:
        raw.pop("Principal")
    with pytest.raises(PolicyInvalid, match=why):
        effect(raw)


def test_a_policy_version_iam_does_not_know_is_refused() -> None:
    with pytest.raises(PolicyInvalid, match="Version"):
        effect(statement(), version="2020-01-01")


def test_url_encoded_policy_documents_are_read() -> None:
    # IAM's GetRole returns the trust policy URL-encoded
    from urllib.parse import quote

    policy = iam_policy.load(quote(json.dumps({"Statement": statement()})))
    assert iam_policy.decide(policy, Request(POD, "sts:AssumeRole")).allowed


# --- Action / NotAction (ACT) ----------------------------------------------------------


@pytest.mark.parametrize(
    "written", ["sts:AssumeRole", "STS:assumerole", "sts:Assume*", "sts:*", "*"]
)
def test_actions_match_case_insensitively_with_wildcards(written: str) -> None:
    assert effect(statement(Action=written)) == "Allow"


@pytest.mark.parametrize("written", ["sts:AssumeRole?", "sts:AssumeRoleWith*", "iam:*"])
def test_actions_that_do_not_cover_assume_role(written: str) -> None:
    assert effect(statement(Action=written)) == "ImplicitDeny"


def test_not_action_covers_every_action_it_does_not_list() -> None:
    assert effect(statement(NotAction="sts:TagSession")) == "Allow"
    assert effect(statement(NotAction="sts:TagSession"), action="sts:TagSession") == "ImplicitDeny"
    deny_rest = statement(Effect="Deny", NotAction="sts:AssumeRole")
    assert effect(statement(), deny_rest, action="sts:TagSession") == "ExplicitDeny"


# --- string operators (OPS) -------------------------------------------------------------


def test_condition_key_names_are_case_insensitive_values_are_not() -> None:
    # CND: key names are not case-sensitive; StringEquals is case-sensitive
    assert when("StringEquals", "AWS:requestTAG/Kubernetes-Namespace", "payments") == "Allow"
    assert when("StringEquals", "aws:RequestTag/kubernetes-namespace", "Payments") == "ImplicitDeny"
    assert (
        when("StringEqualsIgnoreCase", "aws:RequestTag/kubernetes-namespace", "PAYMENTS") == "Allow"
    )


def test_values_of_one_key_are_alternatives_and_keys_must_all_hold() -> None:
    # CND: several values for one key are ORed; several keys and operators are ANDed
    assert when("StringEquals", "aws:RequestTag/kubernetes-namespace", ["x", "payments"]) == "Allow"
    both = {
        "StringEquals": {
            "aws:RequestTag/kubernetes-namespace": "payments",
            "aws:RequestTag/kubernetes-service-account": "worker",
        }
    }
    assert effect(statement(Condition=both)) == "ImplicitDeny"
    across = {
        "StringEquals": {"aws:RequestTag/kubernetes-namespace": "payments"},
        "StringLike": {"aws:RequestTag/kubernetes-service-account": "w*"},
    }
    assert effect(statement(Condition=across)) == "ImplicitDeny"


def test_string_like_wildcards_star_and_question_mark() -> None:
    key = "aws:RequestTag/kubernetes-namespace"
    assert when("StringLike", key, "pay*") == "Allow"
    assert when("StringLike", key, "pa?ments") == "Allow"
    assert when("StringLike", key, "pa?") == "ImplicitDeny"
    assert when("StringLike", key, "PAY*") == "ImplicitDeny"  # case-sensitive
    assert when("StringEquals", key, "pay*") == "ImplicitDeny"  # no wildcards in Equals


def test_negated_operators_hold_when_no_listed_value_matches() -> None:
    key = "aws:RequestTag/kubernetes-namespace"
    assert when("StringNotEquals", key, ["a", "b"]) == "Allow"
    assert when("StringNotEquals", key, ["a", "payments"]) == "ImplicitDeny"
    assert when("StringNotLike", key, "pay*") == "ImplicitDeny"
    assert when("StringNotEqualsIgnoreCase", key, "PAYMENTS") == "ImplicitDeny"


def test_a_missing_key_fails_positive_operators_and_satisfies_negated_ones() -> None:
    # OPS: absent key -> no match -> false; a "not" operator -> true
    assert when("StringEquals", "aws:RequestTag/team", "x") == "ImplicitDeny"
    assert when("StringNotEquals", "aws:RequestTag/team", "x") == "Allow"
    assert when("ArnNotLike", "aws:PrincipalArn", ROLE) == "Allow"


def test_if_exists_holds_for_a_missing_key_and_checks_a_present_one() -> None:
    # OPS ...IfExists: absent key -> true; present -> the base operator
    assert when("StringEqualsIfExists", "aws:RequestTag/team", "x") == "Allow"
    key = "aws:RequestTag/kubernetes-namespace"
    assert when("StringEqualsIfExists", key, "other") == "ImplicitDeny"
    assert when("StringNotEqualsIfExists", key, "payments") == "ImplicitDeny"


def test_null_tests_presence() -> None:
    # OPS Null: "true" -> the key is absent, "false" -> present
    assert when("Null", "aws:RequestTag/team", "true") == "Allow"
    assert when("Null", "aws:RequestTag/team", True) == "Allow"  # JSON true reads "true"
    assert when("Null", "aws:RequestTag/kubernetes-namespace", "true") == "ImplicitDeny"
    assert when("Null", "aws:RequestTag/kubernetes-namespace", "false") == "Allow"
    assert when("Null", "aws:RequestTag/team", ["true", "false"]) == "Allow"  # ORed values


# --- ARN operators (OPS) -----------------------------------------------------------------


def test_arn_like_matches_each_of_the_six_parts_on_its_own() -> None:
    # OPS ArnLike: each colon-delimited part is checked separately
    assert when("ArnLike", "aws:SourceArn", "arn:aws:eks:*:*:cluster/*") == "Allow"
    assert when("ArnEquals", "aws:SourceArn", CLUSTER) == "Allow"
    assert (
        when("ArnLike", "aws:SourceArn", "arn:aws:eks:eu-west-?:111122223333:cluster/b*") == "Allow"
    )
    # a wildcard never spans a colon: fewer than six parts never match
    assert when("ArnLike", "aws:SourceArn", "arn:aws:eks:*") == "ImplicitDeny"
    assert when("ArnLike", "aws:SourceArn", "arn:*") == "ImplicitDeny"
    assert when("ArnLike", "aws:SourceArn", "ARN:aws:eks:*:*:cluster/*") == "ImplicitDeny"
    assert when("ArnNotLike", "aws:SourceArn", "arn:aws:eks:*:*:cluster/green") == "Allow"


def test_arn_resource_part_keeps_its_colons() -> None:
    arn = f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:app:*"
    assert (
        when(
            "ArnLike",
            "aws:SourceArn",
            "arn:aws:logs:*:*:log-group:*",
            context={"aws:SourceArn": arn},
        )
        == "Allow"
    )


# --- multivalued keys and set operators (MVK) -------------------------------------------


def test_for_all_values_each_request_value_must_match_one_listed() -> None:
    keys = ["eks-cluster-arn", "kubernetes-namespace", "kubernetes-service-account"]
    assert when("ForAllValues:StringEquals", "aws:TagKeys", keys) == "Allow"
    assert when("ForAllValues:StringEquals", "aws:TagKeys", keys[:2]) == "ImplicitDeny"
    assert when("ForAllValues:StringLike", "aws:TagKeys", ["eks-*", "kubernetes-*"]) == "Allow"


def test_for_any_value_one_request_value_must_match() -> None:
    assert when("ForAnyValue:StringEquals", "aws:TagKeys", "kubernetes-namespace") == "Allow"
    assert when("ForAnyValue:StringEquals", "aws:TagKeys", "team") == "ImplicitDeny"


def test_set_operators_on_a_missing_key() -> None:
    # MVK: ForAllValues holds when the key is absent; ForAnyValue does not
    untagged = {"aws:SourceAccount": ACCOUNT}
    assert when("ForAllValues:StringEquals", "aws:TagKeys", "x", context=untagged) == "Allow"
    assert when("ForAnyValue:StringEquals", "aws:TagKeys", "x", context=untagged) == "ImplicitDeny"


def test_negated_set_operators_test_each_value_against_all_listed() -> None:
    # ForAnyValue:StringNotEquals -> some request value is none of the listed ones
    assert when("ForAnyValue:StringNotEquals", "aws:TagKeys", "kubernetes-namespace") == "Allow"
    keys = ["eks-cluster-arn", "kubernetes-namespace", "kubernetes-service-account"]
    assert when("ForAnyValue:StringNotEquals", "aws:TagKeys", keys) == "ImplicitDeny"
    assert when("ForAllValues:StringNotLike", "aws:TagKeys", "team*") == "Allow"


def test_a_set_operator_on_a_single_valued_key_treats_it_as_a_set_of_one() -> None:
    key = "aws:RequestTag/kubernetes-namespace"
    assert when("ForAnyValue:StringEquals", key, "payments") == "Allow"


def test_a_single_valued_operator_on_a_multivalued_key_is_refused() -> None:
    # MVK: multivalued keys require a set operator; IAM documents nothing else
    with pytest.raises(NotEvaluable, match="multivalued"):
        when("StringEquals", "aws:TagKeys", "kubernetes-namespace")


# --- other operator families (OPS) ----------------------------------------------------------


def test_bool_numeric_and_date_operators() -> None:
    context = {
        "aws:PrincipalIsAWSService": "true",
        "aws:EpochTime": "1767225600",
        "aws:CurrentTime": "2026-01-01T00:00:00Z",
    }
    assert when("Bool", "aws:PrincipalIsAWSService", True, context=context) == "Allow"
    assert when("Bool", "aws:PrincipalIsAWSService", "false", context=context) == "ImplicitDeny"
    assert when("NumericLessThan", "aws:EpochTime", 1767225601, context=context) == "Allow"
    assert (
        when("NumericGreaterThanEquals", "aws:EpochTime", "1767225601", context=context)
        == "ImplicitDeny"
    )
    assert (
        when("DateLessThan", "aws:CurrentTime", "2026-06-01T00:00:00Z", context=context) == "Allow"
    )
    assert (
        when("DateGreaterThan", "aws:CurrentTime", "2026-06-01T00:00:00Z", context=context)
        == "ImplicitDeny"
    )
    assert when("DateEquals", "aws:CurrentTime", "1767225600", context=context) == "Allow"


def test_ip_operators_on_a_request_without_a_source_ip() -> None:
    # a service principal's call carries no aws:SourceIp: absent key rules apply
    assert when("IpAddress", "aws:SourceIp", "10.0.0.0/8") == "ImplicitDeny"
    assert when("NotIpAddress", "aws:SourceIp", "10.0.0.0/8") == "Allow"
    assert (
        when("IpAddress", "aws:SourceIp", "10.0.0.0/8", context={"aws:SourceIp": "10.1.2.3"})
        == "Allow"
    )


def test_malformed_numbers_and_dates_in_a_policy_are_refused() -> None:
    with pytest.raises(PolicyInvalid):
        when("NumericEquals", "aws:EpochTime", "soon", context={"aws:EpochTime": "1"})
    with pytest.raises(PolicyInvalid):
        when("DateEquals", "aws:CurrentTime", "tomorrow", context={"aws:CurrentTime": "1"})


# --- policy variables (VAR) ------------------------------------------------------------------


def test_policy_variables_take_the_request_value() -> None:
    own = "arn:aws:eks:*:${aws:SourceAccount}:cluster/*"
    assert when("ArnLike", "aws:RequestTag/eks-cluster-arn", own) == "Allow"
    foreign = {**TAGS, "aws:SourceAccount": "444455556666"}
    assert when("ArnLike", "aws:RequestTag/eks-cluster-arn", own, context=foreign) == "ImplicitDeny"


def test_policy_variables_are_plain_text_before_version_2012_10_17() -> None:
    key = "aws:RequestTag/kubernetes-namespace"
    context = {**TAGS, key: "${aws:SourceAccount}"}
    assert (
        when("StringEquals", key, "${aws:SourceAccount}", context=context, version=None) == "Allow"
    )
    assert when("StringEquals", key, "${aws:SourceAccount}", context=context) == "ImplicitDeny"


def test_policy_variable_defaults_and_escapes() -> None:
    key = "aws:RequestTag/kubernetes-namespace"
    assert when("StringEquals", key, "${aws:RequestTag/team, 'payments'}") == "Allow"
    star = {**TAGS, key: "a*"}
    assert when("StringLike", key, "a${*}", context=star) == "Allow"
    assert when("StringLike", key, "a${*}") == "ImplicitDeny"  # ${*} is a literal star
    assert when("StringEquals", key, "it''s", context={key: "it''s"}) == "Allow"
    quoted = {key: "it's"}
    assert when("StringEquals", key, "${aws:RequestTag/x, 'it''s'}", context=quoted) == "Allow"


def test_a_variable_without_value_or_default_is_refused_not_guessed() -> None:
    # VAR: an unresolvable variable "might" invalidate the statement: undocumented
    with pytest.raises(NotEvaluable, match="not in the request"):
        when("StringEquals", "aws:RequestTag/kubernetes-namespace", "${aws:RequestTag/team}")
    with pytest.raises(NotEvaluable, match="multivalued"):
        when("StringEquals", "aws:RequestTag/kubernetes-namespace", "${aws:TagKeys}")


def test_an_unevaluable_allow_does_not_hide_an_applying_deny() -> None:
    unknown = statement(Condition={"StringEquals": {"aws:TagKeys": "x"}})
    assert effect(unknown, statement(Effect="Deny")) == "ExplicitDeny"
    assert effect(statement(), unknown) == "Allow"
    with pytest.raises(NotEvaluable):
        effect(statement(), {**unknown, "Effect": "Deny"})


# --- independence ----------------------------------------------------------------------------


def test_the_sandbox_evaluators_import_nothing_of_the_product() -> None:
    sandbox = Path(__file__).resolve().parents[2] / "sandbox"
    for path in [
        *sandbox.joinpath("iam_policy").glob("*.py"),
        *sandbox.joinpath("eks_emulation").glob("*.py"),
    ]:
        for node in ast.walk(ast.parse(path.read_text())):
            modules = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(m.split(".")[0] in ("functions", "tests") for m in modules), path
