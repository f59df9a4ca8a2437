"""Fixtures shared by every test layer that needs the local account."""

from tests.integration.conftest import kube, moto_endpoint, world  # noqa: F401
