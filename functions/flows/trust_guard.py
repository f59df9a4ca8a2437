"""IAM changed -> check the trust policy of every role a declaration relies on.

audit: findings are recorded and published. enforce: the smallest repair is
applied too, only to roles that opted in (tag), at most `repair_limit` times
per role per window, and never in reaction to the guard's own edits (its
role's CloudTrail events are ignored), so it cannot loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from botocore.exceptions import ClientError

from functions.aws.iam import RoleInfo
from functions.core.arns import parse_role_arn
from functions.core.errors import MalformedPolicy
from functions.core.fleet import targets_of
from functions.core.models import (
    Cluster,
    Declaration,
    Finding,
    FindingAction,
    FindingRecord,
    Mode,
    Severity,
)
from functions.core.trust import TrustContext, Usage, analyse, repair, role_missing_findings
from functions.events import CloudTrailDetail
from functions.flows.services import Services
from functions.observability import logger, metrics

WATCHED_EVENTS = {
    "CreateRole",
    "UpdateAssumeRolePolicy",
    "DeleteRole",
    "UpdateRole",
    "PutRolePermissionsBoundary",
    "DeleteRolePermissionsBoundary",
    "TagRole",
    "UntagRole",
}
FINDINGS_SOURCE = "podid.trust-guard"
FINDINGS_DETAIL_TYPE = "Pod Identity Trust Finding"


@dataclass(frozen=True)
class GuardOutcome:
    role_arn: str
    record: FindingRecord | None
    skipped: str | None = None


_WRITES = {Mode.PLAN: 0, Mode.AUDIT: 1, Mode.ENFORCE: 2}


def role_mode(declarations: list[Declaration], default: Mode) -> Mode:
    """The deployment's mode, or less where a declaration asks for less: a table
    writer can never make an audit deployment write IAM."""
    asked = [d.mode for d in declarations if d.mode is not None]
    return min([default, *asked], key=_WRITES.__getitem__)


def usages(declarations: list[Declaration], clusters: list[Cluster]) -> tuple[Usage, ...]:
    return tuple(
        Usage(c.name, c.arn, d.namespace, d.service_account, d.disable_session_tags, d.id)
        for d in declarations
        for c in targets_of(d, clusters)
        if c.account == d.role_account
    )


def on_iam_event(svc: Services, detail: CloudTrailDetail) -> GuardOutcome | None:
    if detail.event_name not in WATCHED_EVENTS or detail.error_code:
        return None
    if detail.caused_by(svc.settings.self_role_arns):
        logger.info("ignoring the guard's own change", event=detail.event_id)
        return None
    role_name = detail.request("roleName")
    if not role_name:
        return None
    account = detail.recipient_account_id or detail.user_identity.account_id or ""
    return check_role(svc, role_name, account, event=detail)


def sweep(svc: Services) -> list[GuardOutcome]:
    """The schedule's pass over every declared role: catches a role declared
    with a trust policy that was already wrong (no IAM event will come), and
    usages added since its last check. Declarations and clusters are read once
    for the whole pass, not once per role."""
    declared = svc.repo.load_declarations().valid
    clusters = _enrolled_clusters(svc)
    outcomes = []
    for role_arn in sorted({d.role_arn for d in declared}):
        arn = parse_role_arn(role_arn)
        role = svc.iam.get_role(arn.name)
        declarations = _matching(declared, role.arn if role else None, arn.name, arn.account)
        outcomes.append(_check(svc, role, declarations, clusters))
    return outcomes


def check_role(
    svc: Services, role_name: str, account: str, *, event: CloudTrailDetail | None = None
) -> GuardOutcome | None:
    role = svc.iam.get_role(role_name)
    declarations = _declarations_for(svc, role.arn if role else None, role_name, account)
    if not declarations:
        return None  # not a pod identity role we manage
    return _check(svc, role, declarations, _enrolled_clusters(svc), event)


def _check(
    svc: Services,
    role: RoleInfo | None,
    declarations: list[Declaration],
    clusters: list[Cluster],
    event: CloudTrailDetail | None = None,
) -> GuardOutcome:
    role_arn = role.arn if role else declarations[0].role_arn
    context = TrustContext(
        role_arn,
        usages(declarations, clusters),
        scope_session_tags=svc.settings.scope_session_tags,
        max_policy_chars=svc.settings.max_trust_policy_chars,
    )
    mode = role_mode(declarations, svc.settings.mode)
    if role is None:
        deleted = event is not None and event.event_name == "DeleteRole"
        missing = role_missing_findings(
            context, deleted=deleted, declaration_ids=[d.id for d in declarations]
        )
        record = _record(svc, role_arn, missing, mode, event)
        return _finish(svc, record)
    findings = analyse(role.trust_policy, context)
    action, detail = FindingAction.REPORTED, None
    if mode is Mode.ENFORCE and any(f.repairable for f in findings):
        action, detail, findings = _enforce(svc, role, context, findings)
    return _finish(svc, _record(svc, role_arn, findings, mode, event, action=action, detail=detail))


def _enrolled_clusters(svc: Services) -> list[Cluster]:
    return [c for c in svc.repo.list_clusters() if c.enrolled]


def _declarations_for(
    svc: Services, role_arn: str | None, role_name: str, account: str
) -> list[Declaration]:
    if role_arn:
        found = svc.repo.declarations_for_role(role_arn).valid
        if found:
            return found
    return _matching(svc.repo.load_declarations().valid, None, role_name, account)


def _matching(
    declarations: list[Declaration], role_arn: str | None, role_name: str, account: str
) -> list[Declaration]:
    """The declarations of a role: by its exact ARN, else by name within the
    account (DeleteRole carries no path; a name is unique within an account)."""
    exact = [d for d in declarations if role_arn is not None and d.role_arn == role_arn]
    return exact or [
        d
        for d in declarations
        if parse_role_arn(d.role_arn).name == role_name and d.role_account in (account, "")
    ]


def _enforce(
    svc: Services, role: RoleInfo, context: TrustContext, findings: list[Finding]
) -> tuple[FindingAction, str | None, list[Finding]]:
    tag = svc.settings.repairable_role_tag
    if tag and role.tags.get(tag, "").lower() != "true":
        return (
            FindingAction.REPAIR_SKIPPED,
            f"role is not tagged {tag}=true, so the guard may not edit it (audit only)",
            findings,
        )
    try:
        result = repair(role.trust_policy, context)
    except MalformedPolicy as exc:
        return FindingAction.REPAIR_FAILED, str(exc), findings
    if not result.changed:
        return FindingAction.REPORTED, None, findings
    if not svc.repo.take_repair_budget(
        role.arn,
        now=svc.clock(),
        window_seconds=svc.settings.repair_window_seconds,
        limit=svc.settings.repair_limit,
    ):
        metrics.add_metric(name="RepairsThrottled", unit="Count", value=1)
        return (
            FindingAction.REPAIR_SKIPPED,
            f"repair limit reached ({svc.settings.repair_limit} per "
            f"{svc.settings.repair_window_seconds} s): something keeps changing this role back",
            findings,
        )
    try:
        svc.iam.update_trust_policy(role.name, result.policy)
    except ClientError as error:
        return FindingAction.REPAIR_FAILED, f"UpdateAssumeRolePolicy failed: {error}", findings
    metrics.add_metric(name="TrustPoliciesRepaired", unit="Count", value=1)
    logger.info("trust policy repaired", role=role.arn, changes=list(result.changes))
    return FindingAction.REPAIRED, "; ".join(result.changes), list(findings)


def _record(
    svc: Services,
    role_arn: str,
    findings: list[Finding],
    mode: Mode,
    event: CloudTrailDetail | None,
    *,
    action: FindingAction = FindingAction.REPORTED,
    detail: str | None = None,
) -> FindingRecord:
    return FindingRecord(
        role_arn=role_arn,
        findings=tuple(findings),
        action=action,
        mode=mode,
        event_id=event.event_id if event else None,
        event_name=event.event_name if event else None,
        observed_at=svc.clock(),
        detail=detail,
    )


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


def _finish(svc: Services, record: FindingRecord) -> GuardOutcome:
    previous = svc.repo.latest_finding(record.role_arn)
    if not is_news(previous, record):
        return GuardOutcome(record.role_arn, previous, skipped="unchanged")
    svc.repo.save_finding(record, retention=timedelta(days=svc.settings.findings_retention_days))
    errors = sum(1 for f in record.findings if f.severity is Severity.ERROR)
    metrics.add_metric(name="TrustFindingErrors", unit="Count", value=errors)
    resolved = previous is not None and previous.findings and not record.findings
    if record.findings or record.action is not FindingAction.REPORTED or resolved:
        detail = record.to_wire()
        svc.messenger.publish_event(
            svc.settings.event_bus_name, FINDINGS_SOURCE, FINDINGS_DETAIL_TYPE, detail
        )
        if svc.settings.findings_topic_arn and (
            errors or record.action is not FindingAction.REPORTED
        ):
            subject = f"podid: {record.action.value} {record.role_arn.rsplit('/', 1)[-1]}"
            svc.messenger.notify(svc.settings.findings_topic_arn, subject, detail)
    return GuardOutcome(record.role_arn, record)
