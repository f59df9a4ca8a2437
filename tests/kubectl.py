"""kubectl as users run it: the v1.34 binary `make tools` builds into .tools/bin
(built here when missing, never skipped), against a kubeconfig."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tools_bin() -> Path:
    return Path(os.environ.get("PODID_TOOLS_BIN") or ROOT / ".tools" / "bin")


def kubectl_binary() -> Path:
    binary = tools_bin() / "kubectl"
    if not binary.exists():  # the first run on a fresh clone builds it (minutes, cached after)
        subprocess.run(["/bin/bash", str(ROOT / "tools" / "build.sh")], cwd=ROOT, check=True)
    return binary


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
        [str(kubectl_binary()), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stdout}{done.stderr}")
    return done
