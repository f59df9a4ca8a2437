"""The trust guard's decisions about one role, without I/O: which declarations
rely on it, what they use it for, how much the guard may write, and whether
a check says anything the role's latest finding record does not."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from functions.core.arns import parse_role_arn
from functions.core.fleet import targets_of
from functions.core.models import (
    AssociationKey,
    Cluster,
    Declaration,
    FindingAction,
    FindingRecord,
    Mode,
    least_writing,
)
from functions.core.trust.conditions import Usage
from functions.core.trust.node_trust import NodeUsage
from functions.core.trust.target_trust import TargetUsage


def role_mode(declarations: Iterable[Declaration], default: Mode) -> Mode:
    """The deployment's mode, or less where a declaration asks for less: a table
    writer can never make an audit deployment write IAM."""
    return least_writing(default, *(d.mode for d in declarations))


def _uses_here(declaration: Declaration, cluster: Cluster, account: str) -> bool:
    """Whether the declaration's association role on this cluster is the one in
    `account` (EKS rejects a role outside the cluster's account, so no other is used)."""
    return cluster.account == account and declaration.role_in_account_of(cluster)


def _usage(declaration: Declaration, cluster: Cluster) -> Usage:
    d = declaration
    return Usage(
        cluster.name, cluster.arn, d.namespace, d.service_account, d.disable_session_tags, d.id
    )


def usages(
    declarations: Iterable[Declaration], clusters: list[Cluster], account: str
) -> tuple[Usage, ...]:
    """Usages on EKS clusters of the association role in `account`: it must trust
    pods.eks.amazonaws.com."""
    return tuple(
        _usage(d, c)
        for d in declarations
        for c in targets_of(d, clusters)
        if _uses_here(d, c, account) and not c.self_managed
    )


def node_usages(
    declarations: Iterable[Declaration], clusters: list[Cluster], account: str
) -> tuple[NodeUsage, ...]:
    """Usages on self-managed clusters of the association role in `account`: it
    must trust the cluster's node role."""
    return tuple(
        NodeUsage(_usage(d, c), c.node_role_arn)
        for d in declarations
        for c in targets_of(d, clusters)
        if _uses_here(d, c, account) and c.self_managed and c.node_role_arn
    )


def target_usages(
    declarations: Iterable[Declaration],
    clusters: list[Cluster],
    external_ids: Mapping[AssociationKey, str | None],
) -> tuple[TargetUsage, ...]:
    """Usages on EKS clusters of declarations with a target role: the target
    role must trust each cluster's association role (a roleName resolves in
    every cluster's account) with the association's externalId (known once EKS
    has created the association)."""
    return tuple(
        TargetUsage(
            _usage(d, c),
            d.role_for(c),
            external_ids.get(AssociationKey(c.ref, d.namespace, d.service_account)),
        )
        for d in declarations
        if d.target_role_arn
        for c in targets_of(d, clusters)
        if d.role_in_account_of(c) and not c.self_managed
    )


def association_roles(declaration: Declaration, clusters: list[Cluster]) -> dict[str, str]:
    """Account -> the association role the declaration relies on there: its
    roleArn, or its roleName in every account where it has a target cluster."""
    if declaration.role_arn is not None:
        return {parse_role_arn(declaration.role_arn).account: declaration.role_arn}
    return {c.account: declaration.role_for(c) for c in targets_of(declaration, clusters)}


def _names(role_arn: str | None, role_name: str, account: str | None = None) -> bool:
    """Whether `role_arn` is the role called `role_name` (in `account`, when given)."""
    if not role_arn:
        return False
    arn = parse_role_arn(role_arn)
    return arn.name == role_name and (account is None or arn.account in (account, ""))


def declarations_of_role(
    declarations: Iterable[Declaration], role_name: str, account: str, clusters: list[Cluster]
) -> list[Declaration]:
    """The declarations that rely on a role by name within the account, as their
    association role or their target role (CloudTrail names a role without its
    path; a name is unique within an account). A roleName relies on the role of
    that name in each account where it has a target cluster."""
    return [
        d
        for d in declarations
        if _names(association_roles(d, clusters).get(account), role_name, account)
        or _names(d.target_role_arn, role_name, account)
    ]


def relied_on_arn(
    declaration: Declaration, role_name: str, account: str, clusters: list[Cluster]
) -> str:
    """The ARN by which a declaration names the role called `role_name` in `account`."""
    association = association_roles(declaration, clusters).get(account)
    if _names(association, role_name):
        return str(association)
    if _names(declaration.target_role_arn, role_name):
        return str(declaration.target_role_arn)
    return association or declaration.role_label


def own_account(self_role_arns: Iterable[str]) -> str | None:
    """The account the control plane runs in (its functions' roles), if configured."""
    accounts = {parse_role_arn(arn).account for arn in self_role_arns}
    return accounts.pop() if len(accounts) == 1 else None


def split_by_use(
    declarations: Iterable[Declaration], role_name: str
) -> tuple[list[Declaration], list[Declaration]]:
    """(as its target role, as its association role): the declarations relying on
    the role called `role_name`, by what they use it for."""
    declared = list(declarations)
    return (
        [d for d in declared if _names(d.target_role_arn, role_name)],
        [d for d in declared if d.role_path_and_name[1] == role_name],
    )


def relied_on_roles(
    declarations: Iterable[Declaration], clusters: list[Cluster]
) -> set[tuple[str, str]]:
    """(account, name) of every role declarations rely on, target roles included
    (a roleName: in each account where it has a target cluster)."""
    declared = list(declarations)
    arns = [arn for d in declared for arn in association_roles(d, clusters).values()] + [
        d.target_role_arn for d in declared if d.target_role_arn
    ]
    return {(arn.account, arn.name) for arn in map(parse_role_arn, arns)}


def in_role_scope(role_arn: str, role_path: str) -> bool:
    """Under the deployment's role path: only such roles are ever asked for."""
    return parse_role_arn(role_arn).path.startswith(role_path)


def is_news(previous: FindingRecord | None, record: FindingRecord) -> bool:
    """Whether a check says something the role's latest record does not.

    A repair always is. A repeat of the latest result is not (a sweep every few
    minutes, or an IAM event that left the policy as it was). Neither is a
    check right after a repair that finds nothing the repair did not already
    report: that is the repair's own outcome, seen again.
    """
    if previous is None or record.action is FindingAction.REPAIRED:
        return True
    if (previous.action, previous.findings, previous.detail) == (
        record.action,
        record.findings,
        record.detail,
    ):
        return False
    return not (
        previous.action is FindingAction.REPAIRED
        and record.action is FindingAction.REPORTED
        and all(f in previous.findings and not f.repairable for f in record.findings)
    )
