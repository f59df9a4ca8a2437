"""fleet.expand over clusters in several accounts and regions: a role per
account (roleName), selectors narrowed by account, region and OU."""

from __future__ import annotations

from typing import Any

from functions.core.fleet import Scope, expand
from functions.core.models import AssociationKey, Cluster, Declaration
from tests.builders import (
    ACCOUNT,
    OTHER_ACCOUNT,
    OWNER,
    by_role_name,
    cluster,
    declaration,
    ref,
    role_arn,
)

THIRD = "777788889999"
ACCOUNTS = (ACCOUNT, OTHER_ACCOUNT, THIRD)
REGIONS = ("eu-west-1", "us-east-1")
OU = "ou-ab12-cd34ef56"
ROOT = "r-ab12"


def by_name(**overrides: Any) -> Declaration:
    return by_role_name(**{"id": "reader", **overrides})  # after "by-arn" in id order


def fleet() -> list[Cluster]:
    """3 accounts x 2 regions, one prod cluster each; the third account is outside OU."""
    return [
        cluster("blue", account=a, region=r, ous=(OU, ROOT) if a != THIRD else (ROOT,))
        for a in ACCOUNTS
        for r in REGIONS
    ]


def reader_arn(account: str) -> str:
    return f"arn:aws:iam::{account}:role/pod-identity/app-reader"


def test_a_role_name_gives_each_cluster_the_role_of_its_own_account() -> None:
    state = expand([by_name()], fleet(), managed_by=OWNER)
    assert not state.rejections
    assert not state.conflicts
    roles = {
        key.cluster: desired.spec.role_arn
        for by_key in state.by_cluster.values()
        for key, desired in by_key.items()
    }
    assert roles == {
        ref("blue", account=a, region=r): reader_arn(a) for a in ACCOUNTS for r in REGIONS
    }


def test_a_role_arn_applies_only_in_its_own_account_and_says_why_elsewhere() -> None:
    state = expand([declaration()], fleet(), managed_by=OWNER)
    applied = sorted(c for c, by_key in state.by_cluster.items() if by_key)
    assert applied == [ref("blue", account=ACCOUNT, region=r) for r in sorted(REGIONS)]
    refused = [r for r in state.rejections if r.key is not None]
    assert len(refused) == 4
    assert all("use roleName for a role per account" in r.reason for r in refused)


def test_accounts_regions_and_ous_narrow_the_fleet() -> None:
    narrowed = by_name(
        target={"fleet": "prod", "accounts": [ACCOUNT, THIRD], "regions": ["us-east-1"]}
    )
    state = expand([narrowed], fleet(), managed_by=OWNER)
    applied = sorted(c for c, by_key in state.by_cluster.items() if by_key)
    assert applied == [
        ref("blue", account=ACCOUNT, region="us-east-1"),
        ref("blue", THIRD, "us-east-1"),
    ]
    # fleet clusters left out as asked are not warnings
    assert not state.rejections

    in_ou = by_name(target={"fleet": "prod", "organizationalUnits": [OU]})
    state = expand([in_ou], fleet(), managed_by=OWNER)
    assert {c.account for c, by_key in state.by_cluster.items() if by_key} == {
        ACCOUNT,
        OTHER_ACCOUNT,
    }
    assert not state.rejections


def test_an_unknown_ou_matches_nothing_there_and_the_status_says_why() -> None:
    clusters = [cluster("blue"), cluster("green", ous=(OU, ROOT))]
    state = expand(
        [by_name(target={"fleet": "prod", "organizationalUnits": [OU]})], clusters, managed_by=OWNER
    )
    assert state.for_cluster(ref("blue")) == {}
    assert list(state.for_cluster(ref("green"))) == [
        AssociationKey(ref("green"), "payments", "api")
    ]
    (why,) = state.rejections
    assert why.key is None
    assert why.reason.startswith(f"cluster {ref('blue')} is not a target: the OU of its account")


def test_a_named_cluster_outside_the_narrowing_is_reported() -> None:
    clusters = [cluster("blue", fleet=None), cluster("blue", fleet=None, account=OTHER_ACCOUNT)]
    only_other = by_name(target={"clusters": ["blue"], "accounts": [THIRD]})
    (why,) = expand([only_other], clusters, managed_by=OWNER).rejections
    assert "cluster name 'blue' is in target.clusters but every cluster of that name" in why.reason
    # a plain name matching in one account: the other account's namesake is left out quietly
    one = by_name(target={"clusters": ["blue"], "accounts": [OTHER_ACCOUNT]})
    state = expand([one], clusters, managed_by=OWNER)
    assert not state.rejections
    assert state.for_cluster(ref("blue", account=OTHER_ACCOUNT))


def test_role_name_and_role_arn_naming_the_same_role_do_not_conflict() -> None:
    same = declaration(id="by-arn", roleArn=reader_arn(ACCOUNT))
    state = expand([by_name(), same], fleet(), managed_by=OWNER)
    assert not state.conflicts
    (desired,) = state.for_cluster(ref("blue")).values()
    assert desired.declaration_id == "by-arn"  # identical asks: the lowest id owns it
    assert desired.spec.role_arn == reader_arn(ACCOUNT)


def test_role_name_and_role_arn_naming_different_roles_conflict_with_the_resolved_arns() -> None:
    other = declaration(id="by-arn", roleArn=role_arn("other"))
    state = expand([by_name(), other], [cluster("blue")], managed_by=OWNER)
    (conflict,) = state.conflicts
    assert conflict.role_arns == (role_arn("other"), reader_arn(ACCOUNT))
    assert f"'reader' asks {reader_arn(ACCOUNT)}" in conflict.message
    assert state.for_cluster(ref("blue")) == {}


def test_the_role_scope_applies_to_a_role_names_path() -> None:
    state = expand([by_name()], fleet(), managed_by=OWNER, scope=Scope(role_path="/apps/"))
    (refused,) = state.rejections
    assert refused.reason.startswith(
        "roleName pod-identity/app-reader (IAM path /pod-identity/) is outside this "
        "deployment's role scope (IAM path /apps/)"
    )
    assert all(not by_key for by_key in state.by_cluster.values())


def test_a_target_role_is_judged_per_cluster_for_a_role_name() -> None:
    central = f"arn:aws:iam::{THIRD}:role/pod-identity/app-reader"
    chained = by_name(targetRoleArn=central)
    state = expand(
        [chained], fleet(), managed_by=OWNER, scope=Scope(target_accounts=frozenset({THIRD}))
    )
    refused = {r.key.cluster for r in state.rejections if r.key is not None}
    # in the central account itself the roleName resolves to the target role
    assert refused == {ref("blue", THIRD, r) for r in REGIONS}
    assert all("resolves to targetRoleArn itself" in r.reason for r in state.rejections)
    for account in (ACCOUNT, OTHER_ACCOUNT):
        (desired,) = state.for_cluster(ref("blue", account)).values()
        assert desired.spec.role_arn == reader_arn(account)
        assert desired.spec.target_role_arn == central


def test_a_target_role_in_another_partition_is_refused_for_a_role_name() -> None:
    chained = by_name(targetRoleArn=f"arn:aws-cn:iam::{OTHER_ACCOUNT}:role/x")
    state = expand(
        [chained],
        [cluster("blue")],
        managed_by=OWNER,
        scope=Scope(target_accounts=frozenset({OTHER_ACCOUNT})),
    )
    (refused,) = state.rejections
    assert "role chaining cannot cross partitions" in refused.reason
