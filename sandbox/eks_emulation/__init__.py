"""EKS Pod Identity emulation for moto: the association APIs and EKS Auth.

moto (5.2.x) implements EKS clusters but not Create/Describe/List/Update/
DeletePodIdentityAssociation, nor the `eks-auth` service. This package adds
exactly those, faithful to botocore's service models and EKS's documentation:
request and response shapes, error codes and HTTP statuses, documented limits
and name rules (limits, validation), clientRequestToken idempotency,
pagination (store), tagging (tagging). EKS Auth (auth) verifies the projected
service-account token with the cluster's signing key (sandbox.cluster_identity),
decides the role's trust policy with the sandbox's own IAM evaluator
(sandbox.iam_policy; never podid's analysis) and mints credentials through
moto STS with the six session tags EKS sets.

Call `install()` once before starting `mock_aws` or a moto server; it is
idempotent. Faults (throttling, 5xx) are injected with `FAULTS.inject(...)`.
"""

from __future__ import annotations

import re
import sys
import threading
import types

from moto import backend_index
from moto.eks import urls as eks_urls
from moto.eks.models import EKSBackend
from moto.eks.responses import EKSResponse

from sandbox import eks_cluster_tagging
from sandbox.eks_emulation import limits, tagging, wire
from sandbox.eks_emulation.errors import EmulatedError
from sandbox.eks_emulation.faults import FAULTS, FaultInjector
from sandbox.eks_emulation.store import Association, associations_of
from sandbox.eks_emulation.wire import service_model

__all__ = [
    "FAULTS",
    "Association",
    "EmulatedError",
    "FaultInjector",
    "associations_of",
    "install",
    "limits",
    "service_model",
]

_install_lock = threading.Lock()
_installed: list[bool] = []


def install() -> None:
    """Register the emulation into moto (in-process mock_aws and moto server)."""
    with _install_lock:
        if _installed:
            return
        eks_urls.url_paths.update(wire.EKS_URL_PATHS)
        for name, method in wire.EKS_METHODS.items():
            setattr(EKSResponse, name, method)
        tagging.wrap(EKSBackend)
        eks_cluster_tagging.install()
        # moto resolves a service "eks-auth" to the module moto.eksauth.
        module = types.ModuleType("moto.eksauth")
        module.eksauth_backends = wire.eksauth_backends  # type: ignore[attr-defined]
        sys.modules["moto.eksauth"] = module
        for base in wire.EKS_AUTH_URL_BASES:
            backend_index.backend_url_patterns.append(("eks-auth", re.compile(base)))
        _installed.append(True)
