"""Trust-policy analysis and repair for EKS Pod Identity roles."""

from functions.core.trust.analysis import (
    Code,
    TrustContext,
    analyse,
    iam_failure_findings,
    outside_scope_findings,
    role_missing_findings,
)
from functions.core.trust.conditions import Usage
from functions.core.trust.consent import HARDEN_VALUE, REPAIR_VALUE, Consent, consent_of
from functions.core.trust.document import POD_PRINCIPAL, parse_policy
from functions.core.trust.repair import RepairResult, repair, review

__all__ = [
    "HARDEN_VALUE",
    "POD_PRINCIPAL",
    "REPAIR_VALUE",
    "Code",
    "Consent",
    "RepairResult",
    "TrustContext",
    "Usage",
    "analyse",
    "consent_of",
    "iam_failure_findings",
    "outside_scope_findings",
    "parse_policy",
    "repair",
    "review",
    "role_missing_findings",
]
