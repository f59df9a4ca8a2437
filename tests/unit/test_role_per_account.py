"""A role per account (roleName) and fleet selectors narrowed by account,
region and OU: validation, and how a declaration resolves on each cluster."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from functions.core.arns import parse_role_arn, parse_role_name, role_arn_of
from functions.core.errors import describe_validation_error
from functions.core.models import Cluster, Declaration, Target
from tests.builders import ACCOUNT, OTHER_ACCOUNT, by_role_name, cluster, declaration, role_arn

THIRD_ACCOUNT = "777788889999"
OU_TEAM = "ou-ab12-cd34ef56"
OU_PROD = "ou-ab12-prod0001"  # under OU_TEAM
ROOT = "r-ab12"


def problems(**overrides: Any) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        declaration(**overrides)
    return describe_validation_error(caught.value)


by_name = by_role_name


def by_name_problems(**overrides: Any) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        by_name(**overrides)
    return describe_validation_error(caught.value)


# --- roleName -------------------------------------------------------------------------------
def test_role_name_resolves_in_each_clusters_account_and_partition() -> None:
    decl = by_name()
    assert decl.role_arn is None
    assert decl.role_account is None
    assert decl.role_path_and_name == ("/pod-identity/", "app-reader")
    assert decl.role_for(cluster("blue")) == f"arn:aws:iam::{ACCOUNT}:role/pod-identity/app-reader"
    assert (
        decl.role_for(cluster("blue", account=OTHER_ACCOUNT))
        == f"arn:aws:iam::{OTHER_ACCOUNT}:role/pod-identity/app-reader"
    )
    china = Cluster(name="cn", arn=f"arn:aws-cn:eks:cn-north-1:{ACCOUNT}:cluster/cn")
    assert decl.role_for(china) == f"arn:aws-cn:iam::{ACCOUNT}:role/pod-identity/app-reader"
    assert decl.spec("podid", china).role_arn == decl.role_for(china)


def test_role_name_without_path_and_with_a_leading_slash() -> None:
    assert by_name(roleName="app").role_for(cluster()) == role_arn("app")
    assert by_name(roleName="/a/b/app").role_path_and_name == ("/a/b/", "app")


def test_role_arn_is_used_as_given_on_every_cluster() -> None:
    decl = declaration()
    assert decl.role_for(cluster("x", account=OTHER_ACCOUNT)) == role_arn()
    assert decl.role_in_account_of(cluster("x"))
    assert not decl.role_in_account_of(cluster("x", account=OTHER_ACCOUNT))
    assert by_name().role_in_account_of(cluster("x", account=OTHER_ACCOUNT))


def test_exactly_one_of_role_arn_and_role_name() -> None:
    (both,) = problems(roleName="app")
    assert both.startswith("record: roleArn and roleName are both set")
    assert "give exactly one of roleArn" in both
    with pytest.raises(ValidationError) as caught:
        Declaration.model_validate(
            {"id": "x", "namespace": "a", "serviceAccount": "b", "target": {"fleet": "f"}}
        )
    (neither,) = describe_validation_error(caught.value)
    assert neither.startswith("record: no role is given: give exactly one of roleArn")


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("", "is not an IAM role name"),
        (
            f"arn:aws:iam::{ACCOUNT}:role/app",
            "is an ARN, not a role name: put a full ARN in roleArn",
        ),
        ("team/", "does not end in a valid IAM role name"),
        ("a" * 65, "must be 1-64 letters"),
        ("team/app reader", "does not end in a valid IAM role name"),
        ("team//app", "invalid IAM path segment ''"),
        ("te am/app", "invalid IAM path segment 'te am'"),
        ("/".join(["p" * 100] * 6) + "/app", "IAM allows 512"),
    ],
)
def test_bad_role_names_name_the_rule(value: str, says: str) -> None:
    (line,) = by_name_problems(roleName=value)
    assert line.startswith(f"roleName: {value!r}"), line
    assert says in line


def test_target_role_partition_and_self_chaining_are_not_checked_before_a_cluster() -> None:
    # the partition of a roleName is the cluster's: fleet.expand judges it per cluster
    decl = by_name(targetRoleArn="arn:aws-cn:iam::444455556666:role/x")
    assert decl.target_role_arn is not None


# --- target narrowing -----------------------------------------------------------------------
def test_narrowing_by_account_region_and_ou() -> None:
    target = Target(
        fleet="prod",
        accounts=(ACCOUNT, OTHER_ACCOUNT),
        regions=("eu-west-1",),
        organizational_units=(OU_TEAM,),
    )
    under = (OU_PROD, OU_TEAM, ROOT)
    assert target.matches(cluster("a", ous=under))
    assert target.matches(cluster("a", account=OTHER_ACCOUNT, ous=(OU_TEAM, ROOT)))
    assert not target.matches(cluster("a", account=THIRD_ACCOUNT, ous=under))
    assert not target.matches(cluster("a", region="us-east-1", ous=under))
    assert not target.matches(cluster("a", ous=("ou-ab12-other001", ROOT)))
    assert not target.matches(cluster("a", fleet="dev", ous=under))


def test_an_ou_matches_the_accounts_of_every_ou_below_it() -> None:
    deep = (OU_PROD, OU_TEAM, ROOT)  # nearest first
    assert Target(fleet="prod", organizational_units=(OU_TEAM,)).matches(cluster(ous=deep))
    assert Target(fleet="prod", organizational_units=(OU_PROD,)).matches(cluster(ous=deep))
    # but not upwards: an account directly under OU_TEAM is not in OU_PROD
    shallow = (OU_TEAM, ROOT)
    assert not Target(fleet="prod", organizational_units=(OU_PROD,)).matches(cluster(ous=shallow))


def test_an_unknown_ou_path_matches_no_ou_and_says_why() -> None:
    target = Target(fleet="prod", organizational_units=(OU_TEAM,))
    unknown = cluster("a")
    assert not target.matches(unknown)
    reason = target.outside(unknown)
    assert reason is not None
    assert "OU of its account 111122223333 is unknown" in reason
    assert "organizations:ListParents" in reason
    # without organizationalUnits the OU path does not matter
    assert Target(fleet="prod").matches(unknown)


def test_narrowing_also_applies_to_named_clusters() -> None:
    target = Target(clusters=("blue",), regions=("us-east-1",))
    assert target.matches(cluster("blue", fleet=None, region="us-east-1"))
    assert not target.matches(cluster("blue", fleet=None))


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ({"accounts": [ACCOUNT]}, "target is empty"),
        ({"fleet": "prod", "accounts": ["1234"]}, "'1234' is not an AWS account id"),
        ({"fleet": "prod", "regions": ["eu-west"]}, "'eu-west' is not an AWS region"),
        (
            {"fleet": "prod", "organizationalUnits": ["ou-1"]},
            "'ou-1' is not an AWS Organizations OU",
        ),
        (
            {"fleet": "prod", "accounts": []},
            "target.accounts is empty, which would match no cluster",
        ),
        ({"fleet": "prod", "regions": []}, "target.regions is empty"),
        ({"fleet": "prod", "organizationalUnits": []}, "target.organizationalUnits is empty"),
        ({"fleet": "prod", "accounts": [ACCOUNT, ACCOUNT]}, "target.accounts lists a value more"),
        (
            {"clusters": [f"{ACCOUNT}/eu-west-1/blue"], "accounts": [OTHER_ACCOUNT]},
            f"target.clusters names {ACCOUNT}/eu-west-1/blue but target.accounts does not",
        ),
        (
            {"clusters": [f"{ACCOUNT}/eu-west-1/blue"], "regions": ["us-east-1"]},
            "but target.regions does not include eu-west-1",
        ),
    ],
)
def test_bad_targets_name_the_field_and_rule(target: dict[str, Any], says: str) -> None:
    lines = problems(target=target)
    assert any(line.startswith("target") and says in line for line in lines), lines


def test_cluster_ou_ids_are_validated() -> None:
    with pytest.raises(ValidationError, match="is not an AWS Organizations OU id"):
        cluster(ous=("team",))
    assert cluster(ous=(OU_TEAM, ROOT)).organizational_units == (OU_TEAM, ROOT)


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7F), max_size=80))
def test_any_role_name_is_refused_or_resolves_to_an_arn_iam_would_accept(value: str) -> None:
    try:
        path, name = parse_role_name(value)
    except ValueError as error:
        problem = str(error)
    else:
        problem = ""
    if problem:
        assert repr(value) in problem  # the message names the value
        return
    parsed = parse_role_arn(role_arn_of("aws", ACCOUNT, path, name))
    assert (parsed.path, parsed.name) == (path, name)
    assert value.removeprefix("/") == (path + name).removeprefix("/")
