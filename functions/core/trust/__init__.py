"""Trust-policy analysis and repair for EKS Pod Identity roles."""

from functions.core.trust.analysis import (
    Code,
    TrustContext,
    analyse,
    role_missing_findings,
)
from functions.core.trust.conditions import Usage
from functions.core.trust.document import POD_PRINCIPAL, parse_policy
from functions.core.trust.repair import RepairResult, repair

__all__ = [
    "POD_PRINCIPAL",
    "Code",
    "RepairResult",
    "TrustContext",
    "Usage",
    "analyse",
    "parse_policy",
    "repair",
    "role_missing_findings",
]
