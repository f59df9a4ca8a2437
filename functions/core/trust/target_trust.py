"""Trust for target roles (a declaration's targetRoleArn).

EKS Pod Identity first assumes the association role, then, with that role's
credentials, the target role: a request signed by a role (an AWS principal,
no aws:SourceAccount) that carries sts:ExternalId = the association's
externalId and, unless the association disables them, the session tags. So
the target role must trust the association role with sts:AssumeRole (and
sts:TagSession with session tags), and should require that externalId:
without the condition, anything able to act as the association role (any
other association using it, in any cluster) can reach the target role, the
confused deputy the externalId exists to stop.

Report only. A target role often lives in another account whose owner
writes its trust, and what it must say (the externalId) is chosen by EKS, so
it is never edited. Until EKS has created the association its externalId
is unknown: admission is then not judged, the missing condition still is.
"""

from __future__ import annotations

from dataclasses import dataclass

from functions.core.arns import parse_role_arn
from functions.core.models import Finding, Severity
from functions.core.trust.conditions import EXTERNAL_ID, ContextValue, Usage
from functions.core.trust.document import ASSUME_ROLE, StatementView
from functions.core.trust.node_trust import (
    NodeReview,
    NodeUsage,
    actions_for,
    review_node_usage,
    role_context,
)

TARGET_NOT_ADMITTED = "PI070"
EXTERNAL_ID_NOT_REQUIRED = "PI071"
TARGET_IN_OTHER_ACCOUNT = "PI072"


@dataclass(frozen=True, slots=True)
class TargetUsage:
    """A declared usage whose pods get the target role, through the association role."""

    usage: Usage
    association_role_arn: str
    external_id: str | None  # None until EKS has created the association

    def __str__(self) -> str:
        return str(self.usage)


def target_context(target: TargetUsage, *, external_id: bool = True) -> dict[str, ContextValue]:
    """The request EKS makes for this usage; without the externalId when asked
    what the role admits from anyone else acting as the association role."""
    context = role_context(target.usage)
    context[EXTERNAL_ID] = [target.external_id] if external_id and target.external_id else None
    return context


def _review(statements: list[StatementView], target: TargetUsage, **how: bool) -> NodeReview:
    """The association role asking, as node_trust reviews any role asking."""
    caller = NodeUsage(target.usage, target.association_role_arn)
    return review_node_usage(statements, caller, target_context(target, **how))


def _refused(review: NodeReview) -> list[str]:
    """The actions certainly refused: denied, or allowed by no statement."""
    refused = {a for a, _ in review.denied} | {a for a, _, _ in review.excluded}
    refused |= set(review.missing)
    return [a for a in actions_for(review.node_usage.usage) if a in refused]


def target_findings(
    statements: list[StatementView], targets: tuple[TargetUsage, ...], role_arn: str
) -> list[Finding]:
    found: list[Finding] = []
    for target in targets:
        role = target.association_role_arn
        if target.external_id is not None:
            refused = _refused(_review(statements, target))
            if refused:
                found.append(
                    Finding(
                        code=TARGET_NOT_ADMITTED,
                        severity=Severity.ERROR,
                        message=f"{role_arn} is the target role of {target} but does not let its "
                        f"association role {role} {' and '.join(refused)} with sts:ExternalId "
                        f"{target.external_id}, so its pods get no credentials; the target "
                        "role's owner must add a statement trusting that role with that "
                        "externalId (a target role is never edited)",
                    )
                )
                continue
        anyone = _review(statements, target, external_id=False)
        if ASSUME_ROLE in anyone.admitted and not any(a == ASSUME_ROLE for a, _ in anyone.denied):
            found.append(
                Finding(
                    code=EXTERNAL_ID_NOT_REQUIRED,
                    severity=Severity.WARNING,
                    message=f"{role_arn} trusts {role} (the association role of {target}) "
                    "without requiring sts:ExternalId: any other association or session "
                    f"using {role} can assume it too; add the condition StringEquals "
                    f"sts:ExternalId "
                    + (
                        target.external_id
                        if target.external_id
                        else "<the association's externalId, shown by podid status>"
                    ),
                )
            )
    return found


def other_account_findings(role_arn: str, own_account: str, usages: list[str]) -> list[Finding]:
    """A target role in another account: IAM is read in this account only."""
    return [
        Finding(
            code=TARGET_IN_OTHER_ACCOUNT,
            severity=Severity.INFO,
            message=f"{role_arn} (the target role of {', '.join(sorted(usages))}) is in account "
            f"{parse_role_arn(role_arn).account}, and IAM is read in account {own_account} "
            "only, so its trust was not checked: it must trust the association role with "
            "sts:AssumeRole and sts:TagSession under sts:ExternalId = the association's "
            "externalId (podid status shows it)",
        )
    ]
