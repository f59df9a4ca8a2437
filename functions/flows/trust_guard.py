"""IAM changed -> check the trust policy of every role a declaration relies on.

audit: findings are recorded and published, hardening as a proposal carrying
the exact policy. enforce: breakage of declared usages is repaired too, only
for roles whose owner consented (`<tag>=true`; `<tag>=harden` also writes the
hardening), at most `repair_limit` times per role per window, and never in
reaction to the guard's own edits (its role's CloudTrail events are ignored),
so it cannot loop. Roles outside the role scope (rolePath) are never asked
for; an IAM error on one role is a finding for that role, never a failed
batch, and the sweep goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from botocore.exceptions import BotoCoreError, ClientError

from functions.aws.iam import IamAdapter, RoleInfo
from functions.core.arns import parse_role_arn
from functions.core.errors import MalformedPolicy
from functions.core.fleet import targets_of
from functions.core.models import (
    AssociationKey,
    Cluster,
    Declaration,
    Finding,
    FindingAction,
    FindingRecord,
    Mode,
    Severity,
)
from functions.core.places import Unreachable
from functions.core.trust import (
    HARDEN_VALUE,
    REPAIR_VALUE,
    Code,
    Consent,
    TrustContext,
    consent_of,
    iam_failure_findings,
    outside_scope_findings,
    repair,
    review,
    role_missing_findings,
)
from functions.core.trust.guarding import (
    declarations_of_role,
    in_role_scope,
    is_news,
    node_usages,
    own_account,
    relied_on_arn,
    relied_on_roles,
    role_mode,
    split_by_use,
    target_usages,
    usages,
)
from functions.core.trust.target_trust import other_account_findings
from functions.event_patterns import WATCHED_EVENTS
from functions.events import CloudTrailDetail
from functions.flows.services import Services
from functions.observability import logger, metrics

FINDINGS_SOURCE = "podid.trust-guard"
FINDINGS_DETAIL_TYPE = "Pod Identity Trust Finding"


@dataclass(frozen=True)
class GuardOutcome:
    role_arn: str
    record: FindingRecord | None
    skipped: str | None = None


def on_iam_event(svc: Services, detail: CloudTrailDetail) -> GuardOutcome | None:
    if detail.event_name not in WATCHED_EVENTS or detail.error_code:
        return None
    if detail.caused_by(svc.settings.self_role_arns, svc.settings.spoke_role_name):
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
    return [
        _guard(
            svc, name, account, declarations_of_role(declared, name, account, clusters), clusters
        )
        for account, name in sorted(relied_on_roles(declared, clusters))
    ]


def check_role(
    svc: Services, role_name: str, account: str, *, event: CloudTrailDetail | None = None
) -> GuardOutcome | None:
    # by name from the table first: IAM is asked only about a declared role in scope
    clusters = _enrolled_clusters(svc)
    declared = svc.repo.load_declarations().valid
    declarations = declarations_of_role(declared, role_name, account, clusters)
    if not declarations:
        return None  # not a pod identity role we manage
    return _guard(svc, role_name, account, declarations, clusters, event)


def _guard(  # noqa: PLR0917 - one role's check: which role, who relies on it, where
    svc: Services,
    role_name: str,
    account: str,
    declarations: list[Declaration],
    clusters: list[Cluster],
    event: CloudTrailDetail | None = None,
) -> GuardOutcome:
    """Scope first, then one role's IAM calls, whose errors stay this role's."""
    scope = svc.settings.role_path
    mode = role_mode(declarations, svc.settings.mode)
    declared_arn = {d.id: relied_on_arn(d, role_name, account, clusters) for d in declarations}
    inside = [d for d in declarations if in_role_scope(declared_arn[d.id], scope)]
    if not inside:
        return _outside(svc, declared_arn[declarations[0].id], declarations, mode, event)
    own = own_account(svc.settings.self_role_arns) or svc.home.account
    arn = declared_arn[inside[0].id]
    elsewhere = own is not None and parse_role_arn(arn).account != own
    if elsewhere and svc.spokes is None:
        # never GetRole by name here: that would read a namesake in this account
        findings = other_account_findings(arn, own or "", [d.id for d in inside])
        return _finish(svc, _record(svc, arn, findings, mode, event))
    try:
        # another account's role through its spoke role (never a namesake at home)
        iam = svc.iam_in(account, [c.place for c in clusters]) if elsewhere else svc.iam
        role = iam.get_role(role_name)
    except Unreachable as error:
        findings = iam_failure_findings(arn, "AssumeRole", "SpokeUnreachable", error.reason)
        logger.warning("cannot reach a declared role's account", role=arn, reason=error.reason)
        return _finish(svc, _record(svc, arn, findings, mode, event))
    except (ClientError, BotoCoreError) as error:
        findings = iam_failure_findings(arn, *_describe(error, "GetRole"))
        logger.warning("reading a declared role failed", role=role_name, error=str(error))
        return _finish(svc, _record(svc, arn, findings, mode, event))
    if role is not None and not in_role_scope(role.arn, scope):
        return _outside(svc, role.arn, inside, mode, event)  # declared under another path
    exact = [d for d in inside if role is not None and declared_arn[d.id] == role.arn]
    relying = exact or inside
    role_arn = role.arn if role else declared_arn[relying[0].id]
    return _check(svc, iam, role, role_arn, relying, clusters, event=event)


def _outside(
    svc: Services,
    role_arn: str,
    declarations: list[Declaration],
    mode: Mode,
    event: CloudTrailDetail | None,
) -> GuardOutcome:
    findings = outside_scope_findings(
        role_arn, svc.settings.role_path, [d.id for d in declarations]
    )
    return _finish(svc, _record(svc, role_arn, findings, mode, event))


def _describe(error: Exception, operation: str) -> tuple[str, str, str]:
    """(operation, error code, message) of an AWS error, for a finding."""
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        return (
            error.operation_name or operation,
            str(details.get("Code", "ClientError")),
            str(details.get("Message", "")),
        )
    return operation, type(error).__name__, str(error)


def _check(  # noqa: PLR0917 - one role's check, and the IAM of its account
    svc: Services,
    iam: IamAdapter,
    role: RoleInfo | None,
    role_arn: str,
    declarations: list[Declaration],
    clusters: list[Cluster],
    *,
    event: CloudTrailDetail | None = None,
) -> GuardOutcome:
    # by name, as the declarations were found: a path declared differently must never
    # turn a target role into one asked to trust pods (and repaired to)
    parsed = parse_role_arn(role_arn)
    as_target, as_association = split_by_use(declarations, parsed.name)
    context = TrustContext(
        role_arn,
        usages(as_association, clusters, parsed.account),
        node_usages=node_usages(as_association, clusters, parsed.account),
        target_usages=target_usages(as_target, clusters, _external_ids(svc, as_target, clusters)),
        scope_session_tags=svc.settings.scope_session_tags,
        max_policy_chars=svc.settings.max_trust_policy_chars,
        opt_in_tag=svc.settings.repairable_role_tag,
    )
    mode = role_mode(declarations, svc.settings.mode)
    if role is None:
        deleted = event is not None and event.event_name == "DeleteRole"
        missing = role_missing_findings(
            context, deleted=deleted, declaration_ids=[d.id for d in declarations]
        )
        record = _record(svc, role_arn, missing, mode, event)
        return _finish(svc, record)
    findings = review(role.trust_policy, context)
    action, detail = FindingAction.REPORTED, None
    if mode is Mode.ENFORCE:
        action, detail, findings = _enforce(svc, iam, role, context, findings)
    return _finish(svc, _record(svc, role_arn, findings, mode, event, action=action, detail=detail))


def _external_ids(
    svc: Services, declarations: list[Declaration], clusters: list[Cluster]
) -> dict[AssociationKey, str | None]:
    """The externalId EKS gave each association of these declarations (their status)."""
    found: dict[AssociationKey, str | None] = {}
    for cluster in {c.ref for d in declarations for c in targets_of(d, clusters)}:
        for key, status in svc.repo.association_statuses(cluster).items():
            found[key] = status.external_id
    return found


def _enrolled_clusters(svc: Services) -> list[Cluster]:
    return [c for c in svc.repo.list_clusters() if c.enrolled]


def _enforce(
    svc: Services, iam: IamAdapter, role: RoleInfo, context: TrustContext, findings: list[Finding]
) -> tuple[FindingAction, str | None, list[Finding]]:
    """Write what the role's owner consented to: breakage repairs with
    `<tag>=true`, hardening too with `<tag>=harden`; every refusal is recorded."""
    tag = svc.settings.repairable_role_tag
    consent = consent_of(role.tags, tag)
    breakage = any(f.repairable for f in findings)
    proposal = any(f.code == Code.HARDENING_PROPOSED for f in findings)
    if consent is Consent.NONE:
        if not breakage:
            return FindingAction.REPORTED, None, findings
        return (
            FindingAction.REPAIR_SKIPPED,
            f"role is not tagged {tag}={REPAIR_VALUE} (repair breakage) nor "
            f"{tag}={HARDEN_VALUE} (also harden), so the guard may not edit it (audit only)",
            findings,
        )
    harden = consent is Consent.HARDEN
    if not breakage and not (harden and proposal):
        return FindingAction.REPORTED, None, findings
    try:
        result = repair(role.trust_policy, context, harden=harden)
    except MalformedPolicy as exc:
        return FindingAction.REPAIR_FAILED, str(exc), findings
    findings = [*findings, *(f for f in result.refusals if f not in findings)]
    if not result.changed:
        if result.refusals:
            reasons = "; ".join(f.message for f in result.refusals)
            return FindingAction.REPAIR_SKIPPED, reasons, findings
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
        iam.update_trust_policy(role.name, result.policy)
    except (ClientError, BotoCoreError) as error:
        return FindingAction.REPAIR_FAILED, f"UpdateAssumeRolePolicy failed: {error}", findings
    metrics.add_metric(name="TrustPoliciesRepaired", unit="Count", value=1)
    logger.info("trust policy repaired", role=role.arn, changes=list(result.changes))
    return FindingAction.REPAIRED, "; ".join(result.changes), findings


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
