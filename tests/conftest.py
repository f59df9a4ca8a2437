"""Fixtures shared by every test layer that needs the local account or the
real Kubernetes API server."""

from tests.integration.conftest import kube, moto_endpoint, world  # noqa: F401
from tests.realkube.fixtures import pytest_runtest_makereport, real_kube  # noqa: F401
