"""Self-managed clusters: the enrolment record and what a reconcile decides
(map entries only; no EKS association exists there)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from functions.core.fleet import expand
from functions.core.models import (
    AssociationKey,
    AssociationStatus,
    Cluster,
    ClusterKind,
    Declaration,
    Mode,
    SyncState,
)
from functions.core.planner import Operation, OpKind
from functions.core.self_managed import decide_self_managed, map_entry_id, self_managed_cluster
from functions.core.status import StatusDecision
from tests.builders import ACCOUNT, OWNER, PEM, REGION, declaration, ref, role_arn

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
NODE_ROLE = role_arn("lab-nodes")


def lab(**overrides: Any) -> Cluster:
    fields: dict[str, Any] = {
        "name": "lab-1",
        "endpoint": "https://10.0.0.10:6443",
        "ca_pem": PEM,
        "node_role_arn": NODE_ROLE,
        "account": ACCOUNT,
        "region": REGION,
        "fleet": "prod",
    }
    fields.update(overrides)
    return self_managed_cluster(**fields)


def test_a_self_managed_cluster_is_recorded_with_its_endpoint_ca_and_node_role() -> None:
    cluster = lab()
    assert cluster.kind is ClusterKind.SELF_MANAGED
    assert cluster.arn == f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/lab-1"
    assert base64.b64decode(cluster.certificate_authority or "") == PEM
    assert (cluster.node_role_arn, cluster.enrolled, cluster.enrolled_by) == (
        NODE_ROLE,
        True,
        "cli",
    )
    assert cluster.to_wire()["kind"] == "self-managed"
    # an EKS record stays as it was: kind eks by default
    assert (
        Cluster.model_validate({"name": "blue", "arn": cluster.arn.replace("lab-1", "blue")}).kind
        == "eks"
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"endpoint": "http://10.0.0.10:6443"}, "must be https://<host>[:<port>]"),
        ({"endpoint": "https://:6443"}, "must be https://<host>[:<port>]"),
        ({"endpoint": "https://user:pw@10.0.0.10"}, "must not carry user info"),
        ({"endpoint": "https://10.0.0.10:99999"}, "is not a URL"),
        ({"ca_pem": b"not a certificate"}, "holds no PEM certificate"),
        ({"node_role_arn": "arn:aws:iam::111122223333:user/nodes"}, "is not an IAM role ARN"),
        ({"name": "lab.1"}, "is not a valid EKS cluster name"),
    ],
)
def test_bad_enrolment_input_is_refused_naming_the_rule(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(
        (ValueError, ValidationError), match=message.replace("[", r"\[").replace("]", r"\]")
    ):
        lab(**overrides)


def test_a_record_cannot_be_self_managed_without_endpoint_ca_and_node_role_nor_eks_with_a_node_role() -> (
    None
):
    arn = f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/lab-1"
    with pytest.raises(ValidationError, match="endpoint is required"):
        Cluster.model_validate({"name": "lab-1", "arn": arn, "kind": "self-managed"})
    with pytest.raises(ValidationError, match="nodeRoleArn is only for self-managed"):
        Cluster.model_validate({"name": "lab-1", "arn": arn, "nodeRoleArn": NODE_ROLE})
    good = lab().to_wire()
    with pytest.raises(ValidationError, match="nodeRoleArn is required"):
        Cluster.model_validate({**good, "nodeRoleArn": None})
    with pytest.raises(ValidationError, match="certificateAuthority must be the base64"):
        Cluster.model_validate({**good, "certificateAuthority": "%%%"})


def decide(
    mode: Mode = Mode.AUDIT,
    statuses: Mapping[AssociationKey, AssociationStatus] | None = None,
    declarations: list[Declaration] | None = None,
    now: datetime = NOW,
) -> tuple[list[Operation], StatusDecision]:
    cluster = lab()
    wanted = declarations if declarations is not None else [declaration()]
    state = expand(wanted, [cluster], managed_by=OWNER)
    return decide_self_managed(
        cluster.ref,
        desired=state.for_cluster(cluster.ref),
        desired_state=state,
        statuses=statuses or {},
        mode=mode,
        now=now,
    )


KEY = AssociationKey(ref("lab-1"), "payments", "api")


def test_a_declared_service_account_becomes_a_map_entry_in_sync_without_eks() -> None:
    operations, decision = decide()
    assert [op.kind for op in operations] == [OpKind.CREATE]
    status = decision.after[KEY]
    assert (status.state, status.association_id, status.owned) == (
        SyncState.IN_SYNC,
        "map:payments/api",
        True,
    )
    assert status.observed is not None
    assert status.observed.role_arn == role_arn()
    assert status.effective_at == NOW
    assert map_entry_id(KEY) == "map:payments/api"


def test_reconciling_again_changes_nothing_and_a_role_change_is_effective_when_credentials_expire() -> (
    None
):
    _, first = decide()
    operations, again = decide(statuses=first.after)
    assert operations == []
    assert again.save == []
    assert again.delete == []
    later = NOW + timedelta(minutes=5)
    changed = [declaration(roleArn=role_arn("other"))]
    operations, decision = decide(statuses=first.after, declarations=changed, now=later)
    assert [op.kind for op in operations] == [OpKind.UPDATE]
    assert decision.after[KEY].effective_at == later + timedelta(hours=6)


def test_an_undeclared_entry_leaves_the_map_and_its_status() -> None:
    _, first = decide()
    operations, decision = decide(statuses=first.after, declarations=[])
    assert [op.kind for op in operations] == [OpKind.DELETE]
    assert [s.key for s in decision.delete] == [KEY]
    assert KEY not in decision.after


def test_plan_mode_records_what_it_would_put_in_the_map_and_puts_nothing() -> None:
    _, decision = decide(mode=Mode.PLAN)
    status = decision.after[KEY]
    assert (status.state, status.association_id) == (SyncState.PENDING, None)
    assert status.reason == "plan mode: would create 111122223333/eu-west-1/lab-1/payments/api"


def test_conflicting_declarations_are_a_conflict_on_a_self_managed_cluster_too() -> None:
    _, decision = decide(
        declarations=[declaration(), declaration(id="other", roleArn=role_arn("other"))]
    )
    status = decision.after[KEY]
    assert status.state is SyncState.CONFLICT
    assert status.association_id is None
