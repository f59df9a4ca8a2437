"""Each Lambda package imports its handlers under the runtime's own Python.

The tests run on 3.11 and the functions on python3.13, so this is the check
that the shipped code and its locked dependencies work there: each package is
built as infra/bundling.py builds it (its lock, our sources, bytecode compiled
by a 3.13 interpreter), from the host's wheels of the same pinned versions
(the shipped arm64 wheels cannot load on this machine), and each handler is
imported by a fresh 3.13 interpreter that sees only the package and Lambda's
environment, from bytecode alone."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from benchmarks.package_cold_start import HOST_PLATFORM, PACKAGES, lambda_env, package
from infra.bundling import ROOT, lambda_python
from infra.locks import LOCKS_BY_NAME

PROBE = """
import importlib, importlib.util, json, os, sys
root, handler = sys.argv[1:3]
importlib.import_module(handler)
from functions.flows.services import services
services()  # what a first invocation builds before its first AWS call
loaded = [getattr(m, "__file__", None) or "" for m in list(sys.modules.values())]
ours = [f for f in loaded if f.startswith(root)]
print(json.dumps({
    "version": "%d.%d" % sys.version_info[:2],
    "loaded": len(ours),
    "no_bytecode": [
        f for f in ours
        if f.endswith(".py") and not os.path.exists(importlib.util.cache_from_source(f))
    ],
    "kubernetes": "kubernetes" in sys.modules,
}))
"""


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    built = {}
    for lock_name in sorted(set(PACKAGES.values())):
        target = tmp_path_factory.mktemp(lock_name)
        package(LOCKS_BY_NAME[lock_name], ROOT / "functions", target, HOST_PLATFORM)
        built[lock_name] = target
    return built


@pytest.mark.parametrize(("function", "lock_name"), sorted(PACKAGES.items()))
def test_each_handler_imports_under_the_runtimes_python_from_bytecode(
    packages: dict[str, Path], function: str, lock_name: str, tmp_path: Path
) -> None:
    version = LOCKS_BY_NAME[lock_name].python
    root = packages[lock_name]
    done = subprocess.run(
        [lambda_python(version), "-s", "-c", PROBE, str(root), f"functions.handlers.{function}"],
        cwd=tmp_path,  # an empty directory: only the package is importable
        env=lambda_env(root),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["version"] == version
    assert found["loaded"] > 100
    assert found["no_bytecode"] == []
    # only the push's package holds (and loads) the Kubernetes client
    assert found["kubernetes"] is (function == "webhook_push")
