"""A real Kubernetes API server for the tests (see tests.realkube.server)."""

from tests.realkube.server import CLUSTER_NAME, RealKube, RealKubeError

__all__ = ["CLUSTER_NAME", "RealKube", "RealKubeError"]
