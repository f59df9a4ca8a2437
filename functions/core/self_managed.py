"""Self-managed (non-EKS) clusters: enrolment record and what a reconcile decides.

EKS Pod Identity does not exist there, so an association is an entry of the
map podid pushes into the cluster (served by the node agent's sts backend),
never an EKS call. Every entry is podid's own; its id says where it lives
(`map:<namespace>/<serviceAccount>`), and the planner's create / update /
delete of those entries is what the next push writes.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime

from functions.core.arns import cluster_arn
from functions.core.endpoints import certificate_pem
from functions.core.fleet import DesiredState
from functions.core.models import (
    ActualAssociation,
    AssociationKey,
    AssociationStatus,
    Cluster,
    ClusterKind,
    DesiredAssociation,
    Mode,
)
from functions.core.places import ClusterRef
from functions.core.planner import Operation, OpKind, plan
from functions.core.status import Outcome, StatusDecision, decide_statuses

MAP_ENTRY_PREFIX = "map:"


def map_entry_id(key: AssociationKey) -> str:
    return f"{MAP_ENTRY_PREFIX}{key.namespace}/{key.service_account}"


def self_managed_cluster(
    *,
    name: str,
    endpoint: str,
    ca_pem: bytes,
    node_role_arn: str,
    account: str,
    region: str,
    partition: str = "aws",
    fleet: str | None = None,
) -> Cluster:
    """The record `podid cluster enroll --self-managed` writes. Its ARN has EKS's
    shape in the deployment's account and region (the node agent sets it as the
    eks-cluster-arn session tag, so trust policies scope both kinds alike).
    Raises pydantic.ValidationError / ValueError naming the field and the rule."""
    encoded = base64.b64encode(ca_pem).decode()
    certificate_pem(encoded)  # a clear error before the model's
    return Cluster(
        name=name,
        arn=cluster_arn(partition, region, account, name),
        kind=ClusterKind.SELF_MANAGED,
        fleet=fleet,
        endpoint=endpoint,
        certificate_authority=encoded,
        node_role_arn=node_role_arn,
        enrolled=True,
        enrolled_by="cli",
    )


def in_map(
    statuses: Mapping[AssociationKey, AssociationStatus],
) -> dict[AssociationKey, ActualAssociation]:
    """The map entries as podid last recorded them."""
    return {
        key: ActualAssociation(key=key, association_id=s.association_id, spec=s.observed)
        for key, s in statuses.items()
        if s.observed is not None and s.association_id
    }


def decide_self_managed(
    cluster: ClusterRef,
    *,
    desired: Mapping[AssociationKey, DesiredAssociation],
    desired_state: DesiredState,
    statuses: Mapping[AssociationKey, AssociationStatus],
    mode: Mode,
    now: datetime,
) -> tuple[list[Operation], StatusDecision]:
    """The map entries to add, change and drop, and the statuses that follow.
    Plan mode records each as Pending ("would ..."); otherwise they are made by
    the push this reconcile queues (only the map holds them)."""
    actual = in_map(statuses)
    owned = frozenset(a.association_id for a in actual.values())
    hold = set(desired_state.held_keys(cluster))
    operations = plan(desired, actual, owned=owned, hold=hold)
    final: dict[AssociationKey, ActualAssociation | None] = dict(actual)
    planning = mode is Mode.PLAN
    if not planning:
        for op in operations:
            if op.kind is OpKind.DELETE or op.spec is None:
                final[op.key] = None
            else:
                final[op.key] = ActualAssociation(
                    key=op.key, association_id=map_entry_id(op.key), spec=op.spec
                )
    entries = {a.association_id for a in final.values() if a is not None}
    outcome = Outcome(
        applied={} if planning else {op.key: op for op in operations},
        drifted={},
        failed={},
        tokens={},
        owned=frozenset(entries),
        planned={op.key: op for op in operations} if planning else {},
    )
    decision = decide_statuses(
        cluster,
        desired=desired,
        desired_state=desired_state,
        statuses=statuses,
        final=final,
        hold=hold,
        outcome=outcome,
        now=now,
    )
    return operations, decision
