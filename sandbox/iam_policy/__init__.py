"""An IAM trust-policy evaluator for the sandbox's emulations, written from the
IAM User Guide alone. It imports nothing from podid's product code: it is the
oracle the product's own trust analysis is checked against, so it must not
share that analysis' mistakes."""

from sandbox.iam_policy.document import PolicyInvalid, TrustPolicy, load
from sandbox.iam_policy.evaluate import Caller, Decision, Request, decide, decide_all
from sandbox.iam_policy.matching import NotEvaluable

__all__ = [
    "Caller",
    "Decision",
    "NotEvaluable",
    "PolicyInvalid",
    "Request",
    "TrustPolicy",
    "decide",
    "decide_all",
    "load",
]
