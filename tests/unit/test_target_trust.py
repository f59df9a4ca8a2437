"""A target role (targetRoleArn) must trust its association role with the
association's externalId, and should require it; podid reports, never edits."""

from __future__ import annotations

from typing import Any

from functions.core.trust.analysis import TrustContext, analyse
from functions.core.trust.conditions import Usage
from functions.core.trust.target_trust import TargetUsage

ACCOUNT, CENTRAL = "111122223333", "444455556666"
TARGET = f"arn:aws:iam::{CENTRAL}:role/data-reader"
ASSOCIATION_ROLE = f"arn:aws:iam::{ACCOUNT}:role/pod-identity/payments-api"
CLUSTER = f"arn:aws:eks:eu-west-1:{ACCOUNT}:cluster/blue"
EXTERNAL_ID = "8c9e5b7a-5d1f-4c2e-9f0a-2b7d4e6c8a10"


def target(external_id: str | None = EXTERNAL_ID, *, tags: bool = True) -> TargetUsage:
    usage = Usage("blue", CLUSTER, "payments", "api", disable_session_tags=not tags)
    return TargetUsage(usage, ASSOCIATION_ROLE, external_id)


def trust(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(
    principal: str = ASSOCIATION_ROLE,
    actions: tuple[str, ...] = ("sts:AssumeRole", "sts:TagSession"),
    external_id: str | None = EXTERNAL_ID,
) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"AWS": principal},
        "Action": list(actions),
    }
    if external_id is not None:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return statement


def codes(document: dict[str, Any], *targets: TargetUsage) -> list[str]:
    context = TrustContext(TARGET, (), target_usages=targets or (target(),))
    return sorted(f.code for f in analyse(document, context))


def test_trusting_the_association_role_with_its_external_id_is_all_it_takes() -> None:
    assert codes(trust(allow())) == []


def test_no_statement_for_the_association_role_means_no_credentials() -> None:
    document = trust(allow(principal=f"arn:aws:iam::{ACCOUNT}:role/someone-else"))
    assert "PI070" in codes(document)


def test_another_external_id_does_not_admit_this_association() -> None:
    assert codes(trust(allow(external_id="another-association"))) == ["PI070"]


def test_tag_session_is_needed_unless_session_tags_are_disabled() -> None:
    document = trust(allow(actions=("sts:AssumeRole",)))
    assert codes(document) == ["PI070"]
    assert codes(document, target(tags=False)) == []


def test_without_the_external_id_condition_anyone_acting_as_the_role_gets_in() -> None:
    findings = analyse(
        trust(allow(external_id=None)), TrustContext(TARGET, (), target_usages=(target(),))
    )
    (finding,) = findings
    assert finding.code == "PI071"
    assert EXTERNAL_ID in finding.message
    assert not finding.repairable


def test_before_eks_created_the_association_only_the_missing_condition_is_judged() -> None:
    unknown = target(external_id=None)
    assert codes(trust(allow()), unknown) == []
    assert codes(trust(allow(external_id=None)), unknown) == ["PI071"]


def test_a_deny_for_the_association_role_wins() -> None:
    deny = {"Effect": "Deny", "Principal": {"AWS": ASSOCIATION_ROLE}, "Action": "sts:AssumeRole"}
    assert codes(trust(allow(), deny)) == ["PI070"]


def test_the_association_role_is_declared_not_a_foreign_principal() -> None:
    assert "PI021" not in codes(trust(allow()))
    assert "PI010" not in codes(trust(allow()))


def test_a_role_that_is_also_an_association_role_is_checked_for_both() -> None:
    pods = Usage("blue", CLUSTER, "payments", "api")
    context = TrustContext(TARGET, (pods,), target_usages=(target(),))
    found = {f.code for f in analyse(trust(allow()), context)}
    assert "PI010" in found  # no statement for pods.eks.amazonaws.com
