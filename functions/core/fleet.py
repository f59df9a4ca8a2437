"""Fleet expansion: declarations x clusters -> desired associations per cluster.

Conflicts (two declarations wanting different things for one association key)
hold that key: neither is applied, and the planner leaves whatever exists there
untouched, while every other key proceeds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from functions.core.arns import parse_role_arn
from functions.core.models import (
    FLEET_TAG,
    MAX_ASSOCIATIONS_PER_CLUSTER,
    AssociationKey,
    Cluster,
    Declaration,
    DesiredAssociation,
)
from functions.core.places import ClusterRef


@dataclass(frozen=True, slots=True)
class Conflict:
    key: AssociationKey
    declaration_ids: tuple[str, ...]
    role_arns: tuple[str, ...]

    @property
    def message(self) -> str:
        if len(set(self.role_arns)) == 1:
            return (
                f"conflict on {self.key}: declarations {', '.join(map(repr, self.declaration_ids))}"
                f" ask {self.role_arns[0]} with different settings (targetRoleArn, "
                "disableSessionTags, policy or tags); none is applied until they agree"
            )
        asks = ", ".join(
            f"{decl!r} asks {role}"
            for decl, role in zip(self.declaration_ids, self.role_arns, strict=True)
        )
        return (
            f"conflict on {self.key}: {asks}; one association per (cluster, namespace, service "
            "account) is allowed, so none is applied until the declarations agree"
        )


@dataclass(frozen=True, slots=True)
class Rejection:
    """A declaration that cannot apply to one cluster (or to any, when key is None)."""

    declaration_id: str
    reason: str
    key: AssociationKey | None = None


@dataclass(slots=True)
class DesiredState:
    by_cluster: dict[ClusterRef, dict[AssociationKey, DesiredAssociation]] = field(
        default_factory=dict
    )
    conflicts: list[Conflict] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    def held_keys(self, cluster: ClusterRef) -> frozenset[AssociationKey]:
        """Keys the planner must not touch on this cluster (conflicted)."""
        return frozenset(c.key for c in self.conflicts if c.key.cluster == cluster)

    def for_cluster(self, cluster: ClusterRef) -> dict[AssociationKey, DesiredAssociation]:
        return self.by_cluster.get(cluster, {})


@dataclass(frozen=True, slots=True)
class Scope:
    """What this deployment lets a declaration ask for (the operator decides,
    not the table writer)."""

    role_path: str = "/"  # roles podid may bind: this IAM path and below
    target_accounts: frozenset[str] = frozenset()  # targetRoleArn accounts beyond the cluster's
    enroll_named: bool = False  # does naming a cluster in a declaration enrol it?


def out_of_scope(declaration: Declaration, scope: Scope) -> str | None:
    """Why the declaration asks for a role this deployment may not bind, if it does
    (a roleName is under the same path in every account)."""
    path, _ = declaration.role_path_and_name
    if not path.startswith(scope.role_path):
        how = (
            f"roleArn {declaration.role_arn}"
            if declaration.role_arn
            else f"roleName {declaration.role_name} (IAM path {path})"
        )
        return (
            f"{how} is outside this deployment's role scope (IAM path "
            f"{scope.role_path}): podid binds only roles under that path; use such a role or "
            "ask the operator to widen rolePath"
        )
    return None


def targets_of(declaration: Declaration, clusters: Iterable[Cluster]) -> list[Cluster]:
    return [cluster for cluster in clusters if declaration.target.matches(cluster)]


def narrowed_out(declaration: Declaration, clusters: Iterable[Cluster]) -> list[str]:
    """Why a cluster the declaration names, or one of its fleet whose OU is
    unknown, is left out by the narrowing: what its status must say. A fleet
    cluster outside the listed accounts, regions or OUs is left out as asked,
    silently."""
    target = declaration.target
    reasons = []
    selected = [c for c in clusters if target.selects(c)]
    for cluster in selected:
        why = target.outside(cluster)
        unknown_ou = target.organizational_units is not None and not cluster.organizational_units
        if why is not None and (str(cluster.ref) in target.clusters or unknown_ou):
            reasons.append(f"cluster {cluster.ref} is not a target: {why}")
    for name in target.clusters:
        namesakes = [c for c in selected if c.name == name]
        if namesakes and not any(target.matches(c) for c in namesakes):
            reasons.append(
                f"cluster name {name!r} is in target.clusters but every cluster of that name "
                "is outside target.accounts, target.regions or target.organizationalUnits"
            )
    return reasons


def _role_problem(declaration: Declaration, cluster: Cluster, scope: Scope) -> str | None:
    """Why the declaration's roles cannot be used on this cluster, if they cannot."""
    target = parse_role_arn(declaration.target_role_arn) if declaration.target_role_arn else None
    if target is not None and target.account not in (cluster.account, *scope.target_accounts):
        return (
            f"targetRoleArn is in account {target.account}, which this deployment "
            "does not allow (TARGET_ROLE_ACCOUNTS lists the accounts a target role "
            "may be in)"
        )
    if not declaration.role_in_account_of(cluster):
        return (
            f"roleArn is in account {declaration.role_account} but cluster "
            f"{cluster.ref} is in account {cluster.account}; EKS needs the role "
            "in the cluster's account (use roleName for a role per account, or "
            "targetRoleArn to reach another account)"
        )
    if target is not None and declaration.role_name is not None:
        if target.partition != cluster.partition:
            return (
                f"targetRoleArn is in partition {target.partition!r} but cluster "
                f"{cluster.ref} (where roleName {declaration.role_name} resolves) is in "
                f"{cluster.partition!r}: role chaining cannot cross partitions"
            )
        if declaration.role_for(cluster) == declaration.target_role_arn:
            return (
                f"roleName {declaration.role_name} resolves to targetRoleArn itself on "
                f"cluster {cluster.ref}: a role cannot chain to itself"
            )
    return None


def expand(
    declarations: Iterable[Declaration],
    clusters: Iterable[Cluster],
    *,
    managed_by: str,
    scope: Scope = Scope(),
) -> DesiredState:
    cluster_list = sorted(clusters, key=lambda c: c.ref)
    state = DesiredState(by_cluster={c.ref: {} for c in cluster_list})
    candidates: dict[AssociationKey, list[Declaration]] = defaultdict(list)

    for declaration in sorted(declarations, key=lambda d: d.id):
        refused = out_of_scope(declaration, scope)
        if refused is not None:
            state.rejections.append(Rejection(declaration.id, refused))
            continue
        for missing in declaration.target.unmatched(cluster_list):
            how = (
                "a named cluster is enrolled once EKS has it (check the name and the region)"
                if scope.enroll_named
                else "this deployment does not enrol clusters because a declaration names "
                f"them: tag it {FLEET_TAG}=<fleet>"
            )
            state.rejections.append(
                Rejection(
                    declaration.id,
                    f"cluster {missing!r} is not enrolled: {how}, or enrol it by hand (podid "
                    f"cluster enroll {missing}); the declaration applies there once it is",
                )
            )
        state.rejections += [
            Rejection(declaration.id, reason) for reason in narrowed_out(declaration, cluster_list)
        ]
        for cluster in targets_of(declaration, cluster_list):
            key = AssociationKey(cluster.ref, declaration.namespace, declaration.service_account)
            problem = _role_problem(declaration, cluster, scope)
            if problem is not None:
                state.rejections.append(Rejection(declaration.id, problem, key))
                continue
            candidates[key].append(declaration)

    by_ref = {c.ref: c for c in cluster_list}
    for key in sorted(candidates):
        wanting, cluster = candidates[key], by_ref[key.cluster]
        # a roleName and a roleArn naming the same role on this cluster ask the same
        if len({_settings(d, cluster) for d in wanting}) > 1:
            state.conflicts.append(
                Conflict(
                    key, tuple(d.id for d in wanting), tuple(d.role_for(cluster) for d in wanting)
                )
            )
            continue
        owner = wanting[0]  # identical asks: the lowest id owns the association
        state.by_cluster[key.cluster][key] = DesiredAssociation(
            key=key, spec=owner.spec(managed_by, cluster), declaration_id=owner.id
        )

    _enforce_capacity(state)
    return state


def _settings(d: Declaration, cluster: Cluster) -> tuple[object, ...]:
    """Everything that lands on the association, except which declaration owns it."""
    tags = tuple(sorted(d.tags.items()))
    return (d.role_for(cluster), d.target_role_arn, d.disable_session_tags, d.policy, tags)


def _enforce_capacity(state: DesiredState) -> None:
    for cluster, desired in state.by_cluster.items():
        if len(desired) <= MAX_ASSOCIATIONS_PER_CLUSTER:
            continue
        for key in sorted(desired)[MAX_ASSOCIATIONS_PER_CLUSTER:]:
            state.rejections.append(
                Rejection(
                    desired.pop(key).declaration_id,
                    f"cluster {cluster} would exceed the EKS limit of "
                    f"{MAX_ASSOCIATIONS_PER_CLUSTER} pod identity associations",
                    key,
                )
            )
