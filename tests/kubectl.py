"""kubectl as users run it: the v1.34 binary `make tools` builds into .tools/bin
(built here when missing, never skipped), against a kubeconfig."""

from __future__ import annotations

import os
import subprocess
from functools import cache
from pathlib import Path

from tests.realkube.server import ROOT, ensure_tools

__all__ = ["ROOT", "kubectl"]


@cache
def _tools() -> Path:
    return ensure_tools()


def kubectl(
    kubeconfig: Path, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    # a private cache dir: discovery and OpenAPI are fetched from this server, not a stale copy
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(kubeconfig.parent),
        "KUBECONFIG": str(kubeconfig),
        "KUBECACHEDIR": str(kubeconfig.parent / ".kube-cache"),
    }
    done = subprocess.run(
        [str(_tools() / "kubectl"), "--request-timeout=30s", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stdout}{done.stderr}")
    return done
