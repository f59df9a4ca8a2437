"""The session's real API server as a pytest fixture, and its logs in the
report of any test using it that fails."""

from __future__ import annotations

import atexit
import sys
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.realkube.server import RealKube, ensure_tools

if TYPE_CHECKING:
    from pluggy import Result

_running: list[RealKube] = []


def _say(config: pytest.Config, line: str) -> None:
    """On the terminal even while pytest captures output."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print(line, file=sys.stderr)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


@pytest.fixture(scope="session")
def real_kube(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealKube]:
    """etcd + kube-apiserver, started once per session, stopped at its end."""
    ensure_tools(sys.stderr)
    kube = RealKube(tmp_path_factory.mktemp("realkube"))
    atexit.register(kube.stop)  # also when the session is interrupted
    _running.append(kube)
    try:
        kube.start()
        _say(
            request.config,
            f"\nrealkube: kube-apiserver at {kube.url} ready in {kube.startup_seconds:.1f} s "
            f"(logs: {kube.logs})",
        )
        yield kube
    finally:
        kube.stop()
        _running.remove(kube)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[Any]
) -> Generator[None, Result[pytest.TestReport], None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and _running and "real_kube" in getattr(item, "fixturenames", ()):
        report.sections.append(("real API server logs", _running[-1].log_tail()))
