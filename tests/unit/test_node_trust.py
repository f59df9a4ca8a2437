"""Trust analysis and repair for roles used on self-managed clusters: the role
must trust the node role (sts:AssumeRole + sts:TagSession), not the pod
service principal, and repairs never widen what the owner restricted."""

from __future__ import annotations

import json
from typing import Any

from functions.core.trust import TrustContext, analyse, repair
from functions.core.trust.conditions import Usage
from functions.core.trust.document import POD_PRINCIPAL
from functions.core.trust.node_trust import NodeUsage
from tests.builders import ACCOUNT, REGION, role_arn

ROLE = role_arn("payments-api")
NODES = role_arn("lab-nodes")
LAB = f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/lab-1"
BLUE = f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/blue"


def on_lab(namespace: str = "payments", service_account: str = "api", **kw: Any) -> NodeUsage:
    return NodeUsage(Usage("lab-1", LAB, namespace, service_account, **kw), NODES)


def context(*node_usages: NodeUsage, pods: tuple[Usage, ...] = ()) -> TrustContext:
    return TrustContext(ROLE, pods, node_usages=node_usages)


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def trusting(principal: dict[str, Any], actions: list[str], **condition: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": principal, "Action": actions}
    if condition:
        statement["Condition"] = condition
    return statement


NODE_BOTH = trusting({"AWS": NODES}, ["sts:AssumeRole", "sts:TagSession"])
PODS_BOTH = trusting({"Service": POD_PRINCIPAL}, ["sts:AssumeRole", "sts:TagSession"])


def codes(document: dict[str, Any], ctx: TrustContext) -> list[str]:
    return sorted(f.code for f in analyse(document, ctx))


def test_a_role_trusting_the_node_role_with_both_actions_has_no_finding() -> None:
    assert codes(policy(NODE_BOTH), context(on_lab())) == []


def test_trusting_only_the_pod_principal_does_not_serve_a_self_managed_cluster() -> None:
    findings = analyse(policy(PODS_BOTH), context(on_lab()))
    assert [f.code for f in findings] == ["PI013"]
    assert NODES in findings[0].message
    assert "pods.eks.amazonaws.com does not exist there" in findings[0].message
    assert findings[0].repairable


def test_a_missing_tag_session_is_named_and_not_needed_without_session_tags() -> None:
    assume_only = trusting({"AWS": NODES}, ["sts:AssumeRole"])
    assert codes(policy(assume_only), context(on_lab())) == ["PI012"]
    assert codes(policy(assume_only), context(on_lab(disable_session_tags=True))) == []


def test_an_owner_condition_excluding_the_namespace_is_reported_never_widened() -> None:
    only_orders = trusting(
        {"AWS": NODES},
        ["sts:AssumeRole", "sts:TagSession"],
        StringEquals={"aws:RequestTag/kubernetes-namespace": "orders"},
    )
    document = policy(only_orders)
    ctx = context(on_lab())
    assert set(codes(document, ctx)) == {"PI040"}
    result = repair(document, ctx)
    assert not result.changed
    assert result.policy == document


def test_a_deny_on_the_node_role_is_reported_and_kept() -> None:
    deny = {"Effect": "Deny", "Principal": {"AWS": NODES}, "Action": "sts:AssumeRole"}
    document = policy(NODE_BOTH, deny)
    assert "PI050" in codes(document, context(on_lab()))
    assert not repair(document, context(on_lab())).changed


def test_a_source_account_condition_cannot_be_met_by_a_role_and_is_not_fixed() -> None:
    with_source = trusting(
        {"AWS": NODES},
        ["sts:AssumeRole", "sts:TagSession"],
        StringEquals={"aws:SourceAccount": ACCOUNT},
    )
    found = analyse(policy(with_source), context(on_lab()))
    assert {f.code for f in found} == {"PI042"}
    assert "carries no aws:SourceAccount" in found[0].message


def test_repair_adds_one_scoped_statement_for_the_node_role_keeping_everything_else() -> None:
    document = policy(PODS_BOTH)
    ctx = context(on_lab(), on_lab("orders", "worker"))
    result = repair(document, ctx)
    assert result.changed
    assert result.policy["Statement"][0] == PODS_BOTH  # the owner's statement as it was
    grants = result.policy["Statement"][1:]
    assert len(grants) == 2  # one per (namespace, service account): never a cross product
    for grant, (namespace, service_account) in zip(
        grants, [("payments", "api"), ("orders", "worker")], strict=True
    ):
        assert grant["Principal"] == {"AWS": NODES}
        assert grant["Action"] == ["sts:AssumeRole", "sts:TagSession"]
        assert grant["Condition"] == {
            "StringEquals": {
                "aws:RequestTag/eks-cluster-arn": LAB,
                "aws:RequestTag/kubernetes-namespace": namespace,
                "aws:RequestTag/kubernetes-service-account": service_account,
            }
        }
    assert codes(result.policy, ctx) == []
    # idempotent, and a second self-managed cluster with the same node role joins the grant
    assert repair(result.policy, ctx).policy == result.policy
    other = NodeUsage(Usage("lab-2", LAB.replace("lab-1", "lab-2"), "payments", "api"), NODES)
    again = repair(result.policy, context(on_lab(), on_lab("orders", "worker"), other))
    arns = again.policy["Statement"][1]["Condition"]["StringEquals"][
        "aws:RequestTag/eks-cluster-arn"
    ]
    assert arns == [LAB, LAB.replace("lab-1", "lab-2")]
    assert len(again.policy["Statement"]) == 3


def test_a_usage_without_session_tags_is_never_granted() -> None:
    ctx = context(on_lab(disable_session_tags=True))
    found = analyse(policy(PODS_BOTH), ctx)
    assert [(f.code, f.repairable) for f in found] == [("PI013", False)]
    assert not repair(policy(PODS_BOTH), ctx).changed


def test_a_role_used_on_eks_and_self_managed_clusters_needs_both_principals() -> None:
    pods = (Usage("blue", BLUE, "payments", "api"),)
    ctx = context(on_lab(), pods=pods)
    assert codes(policy(PODS_BOTH, NODE_BOTH), ctx) == ["PI030", "PI031"]  # hardening only
    assert "PI013" in codes(policy(PODS_BOTH), ctx)
    assert "PI010" in codes(policy(NODE_BOTH), ctx)
    # the node role is declared, so it is not a foreign principal of the pod statement
    shared = trusting(
        {"Service": POD_PRINCIPAL, "AWS": NODES}, ["sts:AssumeRole", "sts:TagSession"]
    )
    assert "PI021" not in codes(policy(shared), ctx)
    ec2 = trusting({"Service": "ec2.amazonaws.com"}, ["sts:AssumeRole"])
    repaired = repair(policy(ec2), ctx)
    principals = [json.dumps(s["Principal"]) for s in repaired.policy["Statement"]]
    assert principals == [
        json.dumps({"Service": "ec2.amazonaws.com"}),
        json.dumps({"Service": POD_PRINCIPAL}),
        json.dumps({"AWS": NODES}),
    ]
