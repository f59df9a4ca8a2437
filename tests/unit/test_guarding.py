"""The trust guard's pure decisions about one role: whose it is, what it is used
for, how much the guard may write, and whether a check is news."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from functions.core.models import (
    Cluster,
    Declaration,
    Finding,
    FindingAction,
    FindingRecord,
    Mode,
    Severity,
)
from functions.core.self_managed import self_managed_cluster
from functions.core.trust.guarding import (
    declarations_of_role,
    in_role_scope,
    is_news,
    node_usages,
    relied_on_arn,
    relied_on_roles,
    role_mode,
    target_usages,
    usages,
)
from tests.builders import (
    ACCOUNT,
    OTHER_ACCOUNT,
    PEM,
    REGION,
    by_role_name,
    cluster,
    declaration,
    role_arn,
)

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
NODE_ROLE = role_arn("lab-nodes")
ROLE = role_arn("app")


def lab(fleet: str = "prod") -> Cluster:
    return self_managed_cluster(
        name="lab-1",
        endpoint="https://10.0.0.10:6443",
        ca_pem=PEM,
        node_role_arn=NODE_ROLE,
        account=ACCOUNT,
        region=REGION,
        fleet=fleet,
    )


def test_a_declaration_lowers_the_roles_mode_and_never_raises_it() -> None:
    asks = [declaration(mode="enforce"), declaration(id="b", mode="audit")]
    assert role_mode(asks, Mode.ENFORCE) is Mode.AUDIT
    assert role_mode([declaration(mode="enforce")], Mode.AUDIT) is Mode.AUDIT
    assert role_mode([declaration()], Mode.ENFORCE) is Mode.ENFORCE
    assert role_mode([declaration(mode="enforce")], Mode.PLAN) is Mode.PLAN


def test_usages_split_eks_and_self_managed_clusters_in_the_roles_account() -> None:
    clusters = [
        cluster("blue"),
        cluster("elsewhere", account=OTHER_ACCOUNT),
        cluster("dev", fleet="dev"),
        lab(),
    ]
    declared = [declaration()]
    assert [
        (u.cluster_name, u.namespace, u.service_account)
        for u in usages(declared, clusters, ACCOUNT)
    ] == [("blue", "payments", "api")]
    on_nodes = node_usages(declared, clusters, ACCOUNT)
    assert [(n.usage.cluster_name, n.node_role_arn) for n in on_nodes] == [("lab-1", NODE_ROLE)]


def test_a_role_is_found_by_name_within_its_account_whatever_its_path() -> None:
    pathed = declaration(id="pathed", roleArn=f"arn:aws:iam::{ACCOUNT}:role/team/app")
    other = declaration(id="other", roleArn=role_arn("app", OTHER_ACCOUNT))
    named = declarations_of_role(
        [declaration(), pathed, other, declaration(id="x", roleArn=role_arn("x"))],
        "app",
        ACCOUNT,
        [],
    )
    assert [d.id for d in named] == ["app", "pathed"]


def test_the_role_scope_is_the_iam_path() -> None:
    assert in_role_scope(ROLE, "/")
    assert in_role_scope(f"arn:aws:iam::{ACCOUNT}:role/pod-identity/app", "/pod-identity/")
    assert not in_role_scope(ROLE, "/pod-identity/")
    assert not in_role_scope(f"arn:aws:iam::{ACCOUNT}:role/pod-identity-x/app", "/pod-identity/")


BROKEN = Finding(code="PI001", severity=Severity.ERROR, message="broken", repairable=True)
ADVICE = Finding(code="PI030", severity=Severity.WARNING, message="advice")


def record(action: FindingAction, *findings: Finding, detail: str | None = None) -> FindingRecord:
    return FindingRecord(
        role_arn=ROLE,
        findings=findings,
        action=action,
        mode=Mode.ENFORCE,
        observed_at=NOW,
        detail=detail,
    )


def test_a_first_check_and_every_repair_are_news() -> None:
    assert is_news(None, record(FindingAction.REPORTED))
    repaired = record(FindingAction.REPAIRED, BROKEN, detail="added the pod principal")
    assert is_news(repaired, repaired)


def test_a_repeat_is_not_news_and_a_change_is() -> None:
    reported = record(FindingAction.REPORTED, BROKEN)
    assert not is_news(reported, reported.model_copy(update={"observed_at": NOW.replace(hour=13)}))
    assert is_news(reported, record(FindingAction.REPORTED))  # resolved
    assert is_news(reported, record(FindingAction.REPAIR_SKIPPED, BROKEN, detail="no consent"))


def test_the_check_after_a_repair_that_finds_only_what_it_reported_is_not_news() -> None:
    repaired = record(FindingAction.REPAIRED, BROKEN, ADVICE, detail="fixed")
    assert not is_news(repaired, record(FindingAction.REPORTED, ADVICE))
    assert not is_news(repaired, record(FindingAction.REPORTED))
    # a finding the repair did not report, or breakage again, is news
    other = Finding(code="PI031", severity=Severity.WARNING, message="other")
    assert is_news(repaired, record(FindingAction.REPORTED, other))
    assert is_news(repaired, record(FindingAction.REPORTED, BROKEN))


actions = st.sampled_from(list(FindingAction))
finding_sets = st.lists(st.sampled_from([BROKEN, ADVICE]), unique=True, max_size=2).map(tuple)


@given(actions, finding_sets, st.none() | st.just("d"))
def test_news_is_never_the_same_record_twice_unless_a_repair(
    action: FindingAction, findings: tuple[Finding, ...], detail: str | None
) -> None:
    once = record(action, *findings, detail=detail)
    assert is_news(once, once) is (action is FindingAction.REPAIRED)
    assert is_news(None, once)


def _reader(**overrides: object) -> Declaration:
    return by_role_name(**{"id": "reader", "roleName": "team/reader", **overrides})


READER_HERE = f"arn:aws:iam::{ACCOUNT}:role/team/reader"
READER_THERE = f"arn:aws:iam::{OTHER_ACCOUNT}:role/team/reader"
NOWHERE = "777788889999"


def test_a_role_name_relies_on_the_role_of_that_name_where_it_has_a_target_cluster() -> None:
    # a dev cluster (not a target) in a third account
    clusters = [
        cluster("blue"),
        cluster("green", account=OTHER_ACCOUNT),
        cluster("x", fleet="dev", account=NOWHERE),
    ]
    reader = _reader()
    assert relied_on_roles([reader], clusters) == {(ACCOUNT, "reader"), (OTHER_ACCOUNT, "reader")}
    assert declarations_of_role([reader], "reader", OTHER_ACCOUNT, clusters) == [reader]
    # no target cluster in that account: a namesake there is not podid's business
    assert declarations_of_role([reader], "reader", NOWHERE, clusters) == []
    assert relied_on_arn(reader, "reader", OTHER_ACCOUNT, clusters) == READER_THERE
    assert relied_on_arn(reader, "reader", ACCOUNT, clusters) == READER_HERE


def test_a_role_names_usages_are_those_of_the_checked_accounts_clusters() -> None:
    clusters = [cluster("blue"), cluster("green", account=OTHER_ACCOUNT), lab()]
    reader = _reader()
    assert [u.cluster_name for u in usages([reader], clusters, ACCOUNT)] == ["blue"]
    assert [u.cluster_name for u in usages([reader], clusters, OTHER_ACCOUNT)] == ["green"]
    assert [n.usage.cluster_name for n in node_usages([reader], clusters, ACCOUNT)] == ["lab-1"]
    assert node_usages([reader], clusters, OTHER_ACCOUNT) == ()


def test_a_target_role_is_trusted_by_each_accounts_resolved_association_role() -> None:
    central = role_arn("central", NOWHERE)
    clusters = [cluster("blue"), cluster("green", account=OTHER_ACCOUNT)]
    found = target_usages([_reader(targetRoleArn=central)], clusters, {})
    assert sorted((t.usage.cluster_name, t.association_role_arn) for t in found) == [
        ("blue", READER_HERE),
        ("green", READER_THERE),
    ]
    # the central role is relied on once, by its own account
    assert (NOWHERE, "central") in relied_on_roles([_reader(targetRoleArn=central)], clusters)
