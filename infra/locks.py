"""Lock files with hashes, one per deployable, and how to tell a stale one.

Each lock is resolved by uv from a dependency set of pyproject.toml for the
deployable's platform and Python, with every distribution's sha256. Its first
line records a hash of its inputs (the set's requirement strings, the Python
version, the platform): when pyproject changes, the recorded hash no longer
matches and `make test` says to run `make lock`. Re-resolving offline is not
possible, so "stale" means exactly that: the inputs changed since the lock was
written. Run as `python -m infra.locks` (what `make lock` does).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCKS = ROOT / "locks"
# The Lambda functions run on arm64 (Graviton) with the runtime's Python; keep
# in step with infra/functions.py (a test checks they agree).
LAMBDA_PYTHON = "3.13"
LAMBDA_PLATFORM = "aarch64-manylinux2014"
# The agent image's base (node_agent/Dockerfile: python:3.13-slim, amd64 or arm64),
# for both its targets (the agent, the webhook's map-sync sidecar)
AGENT_PYTHON = "3.13"
# The CLI installs wherever an operator runs it: the project's oldest Python
CLI_PYTHON = "3.11"
HEADER = "# inputs-sha256: "
REFRESH = "make lock"


@dataclass(frozen=True)
class Lock:
    name: str
    # pyproject sets: "dependencies" or the name of an extra
    sets: tuple[str, ...]
    python: str
    # None: one universal resolution (markers kept), for any OS and machine
    platform: str | None
    # dependencies a package declares but no code path of ours imports: left out
    # of the resolution (a test proves the deployable imports without them)
    excludes: tuple[str, ...] = ()

    @property
    def path(self) -> Path:
        return LOCKS / f"{self.name}.txt"


LOCKS_BY_NAME = {
    lock.name: lock
    for lock in (
        # sync, reconcile, trust_guard: no Kubernetes client
        Lock("lambda", ("dependencies",), LAMBDA_PYTHON, LAMBDA_PLATFORM),
        # webhook_push: the same plus the Kubernetes client
        Lock(
            "lambda-push",
            ("dependencies", "push"),
            LAMBDA_PYTHON,
            LAMBDA_PLATFORM,
            # for kubernetes.aio only; the push uses the synchronous client
            excludes=("aiohttp", "aiohttp-retry"),
        ),
        Lock("agent", ("agent",), AGENT_PYTHON, None),
        # the webhook's map-sync sidecar: the agent image's Python, its own image target
        Lock("map-sync", ("map-sync",), AGENT_PYTHON, None, excludes=("aiohttp", "aiohttp-retry")),
        Lock("cli", ("dependencies", "push", "cli"), CLI_PYTHON, None),
    )
}


def requirements(lock: Lock, pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    found: list[str] = []
    for name in lock.sets:
        found += (
            project["dependencies"]
            if name == "dependencies"
            else project["optional-dependencies"][name]
        )
    # an extra naming the project itself (podid-control-plane[...]) is expanded above
    return sorted({r for r in found if not r.startswith(project["name"])})


def inputs_hash(lock: Lock, pyproject: Path = ROOT / "pyproject.toml") -> str:
    inputs = {
        "requirements": requirements(lock, pyproject),
        "python": lock.python,
        "platform": lock.platform,
        "excludes": sorted(lock.excludes),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def recorded_hash(path: Path) -> str | None:
    if not path.exists():
        return None
    first = path.read_text().splitlines()[:1]
    return first[0].removeprefix(HEADER) if first and first[0].startswith(HEADER) else None


def stale(lock: Lock) -> str | None:
    """Why `lock` no longer describes pyproject, or None when it does."""
    recorded = recorded_hash(lock.path)
    if recorded is None:
        return f"{lock.path.relative_to(ROOT)} is missing or has no inputs header: run `{REFRESH}`"
    if recorded != inputs_hash(lock):
        return (
            f"{lock.path.relative_to(ROOT)} was resolved from other requirements than "
            f"pyproject.toml's {' + '.join(lock.sets)} now lists: run `{REFRESH}`"
        )
    return None


PINNED = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)")


def pins(path: Path) -> dict[str, str]:
    """name -> version of every package a lock pins."""
    found = {}
    for line in path.read_text().splitlines():
        match = PINNED.match(line)
        if match:
            found[match.group(1).lower().replace("_", "-")] = match.group(2)
    return found


def compile_lock(lock: Lock) -> None:
    command = [
        sys.executable,
        "-m",
        "uv",
        "pip",
        "compile",
        "-",
        "--quiet",
        "--generate-hashes",
        "--no-header",
        "--python-version",
        lock.python,
        "--output-file",
        str(lock.path),
    ]
    command += ["--python-platform", lock.platform] if lock.platform else ["--universal"]
    with tempfile.TemporaryDirectory() as tmp:
        if lock.excludes:
            excludes = Path(tmp) / "excludes.txt"
            excludes.write_text("\n".join(lock.excludes) + "\n")
            command += ["--excludes", str(excludes)]
        subprocess.run(  # noqa: S603 - fixed argv, our own requirement strings
            command, input="\n".join(requirements(lock)) + "\n", text=True, check=True
        )
    body = lock.path.read_text()
    lock.path.write_text(
        f"{HEADER}{inputs_hash(lock)}\n"
        f"# {lock.name}: {' + '.join(lock.sets)} of pyproject.toml, Python {lock.python}, "
        f"{lock.platform or 'any platform'}"
        + (f", without {', '.join(lock.excludes)}" if lock.excludes else "")
        + f". Written by `{REFRESH}`; do not edit.\n"
        + body
    )


def main(names: list[str]) -> None:
    """Re-resolve the named locks, or every lock."""
    unknown = set(names) - set(LOCKS_BY_NAME)
    if unknown:
        raise SystemExit(f"no such lock: {', '.join(sorted(unknown))} ({', '.join(LOCKS_BY_NAME)})")
    LOCKS.mkdir(exist_ok=True)
    for lock in (LOCKS_BY_NAME[n] for n in names or LOCKS_BY_NAME):
        compile_lock(lock)
        print(f"{lock.path.relative_to(ROOT)}: {len(pins(lock.path))} packages")


if __name__ == "__main__":
    main(sys.argv[1:])
