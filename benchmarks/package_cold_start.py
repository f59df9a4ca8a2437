"""Per Lambda function: package size, modules imported and cold import time,
as a ratio to `import boto3` measured the same way in the same run.

Method: each package is built as infra/bundling.py builds it (its lock, its
bytecode). The shipped package holds manylinux aarch64 wheels, which cannot
load on this x86_64 machine, so imports are timed on its twin: the same lock
(same versions, same hashes) installed with the host's wheels, the same
sources, compiled to bytecode as shipped, run by an interpreter of the
runtime's exact Python. Each sample is a fresh interpreter (`-s`, cwd an empty
directory, only the package on sys.path, only Lambda's environment
variables) timing one `import` with perf_counter; the median of --runs
samples is printed, as wall time (perf_counter) and as the process's CPU
time (process_time), which other load on a shared machine moves much less.
A last column times what a first invocation builds before its first AWS call
(`services()`: the boto3 clients). `--before`
builds git revision --rev's packages (its locks, its sources) the same way
and samples them interleaved with today's, so load on the machine hits both.

    .venv/bin/python benchmarks/package_cold_start.py [--runs 7] [--before] [--rev main]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infra.bundling import (
    PIP_PLATFORM,
    ROOT,
    build_dependencies,
    compile_tree,
    lambda_python,
)
from infra.locks import LOCKS_BY_NAME, Lock

HOST_PLATFORM = "manylinux2014_x86_64"
PACKAGES = {
    "sync": "lambda",
    "reconcile": "lambda",
    "trust_guard": "lambda",
    "webhook_push": "lambda-push",
}
IMPORT = (
    "import sys, time, json; before = len(sys.modules); "
    "t, c = time.perf_counter(), time.process_time(); __import__(sys.argv[1]); "
    "ms, cpu = (time.perf_counter() - t) * 1000, (time.process_time() - c) * 1000; "
    "print(json.dumps({'ms': ms, 'cpu': cpu, 'modules': len(sys.modules) - before}))"
)
# after the import (not timed): the clients a first invocation builds
SETUP = (
    "import sys, time, json; __import__(sys.argv[1]); "
    "from functions.flows.services import services; c = time.process_time(); services(); "
    "print(json.dumps({'ms': 0, 'cpu': (time.process_time() - c) * 1000, 'modules': 0}))"
)


@dataclass(frozen=True)
class LockAt(Lock):
    """A lock read from another file (a revision's copy)."""

    at: Path = Path()

    @property
    def path(self) -> Path:
        return self.at


def lambda_env(package: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin"),
        "PYTHONPATH": str(package),
        "PYTHONDONTWRITEBYTECODE": "1",  # the task root is read-only in Lambda
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": "podid-bench",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python",
        "LAMBDA_TASK_ROOT": str(package),
        "TABLE_NAME": "podid-bench",
        "POWERTOOLS_SERVICE_NAME": "podid",
        "POWERTOOLS_METRICS_NAMESPACE": "PodIdentityControlPlane",
        # Lambda's credentials (never used: no call is made)
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_SESSION_TOKEN": "bench",
    }


def sample(python: str, package: Path, code: str, module: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as empty:
        out = subprocess.run(
            [python, "-s", "-c", code, module],
            cwd=empty,
            env=lambda_env(package),
            capture_output=True,
            text=True,
            check=True,
        )
    found = json.loads(out.stdout.strip().splitlines()[-1])
    return {str(key): float(value) for key, value in found.items()}


def measure(
    python: str, jobs: list[tuple[str, Path, str, str]], runs: int
) -> dict[str, tuple[float, float, int]]:
    """jobs: (key, package, code, module); interleaved, so load hits all alike."""
    samples: dict[str, list[dict[str, float]]] = {key: [] for key, *_ in jobs}
    for _ in range(runs):
        for key, package, code, module in jobs:
            samples[key].append(sample(python, package, code, module))
    return {
        key: (
            statistics.median(s["ms"] for s in got),
            statistics.median(s["cpu"] for s in got),
            int(got[0]["modules"]),
        )
        for key, got in samples.items()
    }


def size_mb(directory: Path) -> tuple[float, float]:
    files = [p for p in directory.rglob("*") if p.is_file()]
    unzipped = sum(p.stat().st_size for p in files) / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "asset.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in files:
                zf.write(path, path.relative_to(directory))
        return unzipped, archive.stat().st_size / 1e6


def package(lock: Lock, functions_dir: Path, target: Path, platform: str) -> None:
    """What infra/bundling.py ships: the lock's wheels, our sources, bytecode."""
    build_dependencies(lock, target, platform=platform)
    shutil.copytree(
        functions_dir, target / "functions", ignore=shutil.ignore_patterns("__pycache__")
    )
    compile_tree(target, lock.python)


@dataclass(frozen=True)
class Variant:
    label: str
    functions_dir: Path
    locks: Mapping[str, Lock]


def revision(work: Path, rev: str) -> Variant:
    """`rev`'s sources and locks, unpacked from git."""
    source = work / "rev-src"
    source.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "functions", "locks"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", rev],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    locks = {
        name: LockAt(
            lock.name,
            lock.sets,
            lock.python,
            lock.platform,
            lock.excludes,
            at=source / "locks" / f"{name}.txt",
        )
        for name, lock in LOCKS_BY_NAME.items()
    }
    return Variant(f"before ({rev} {commit})", source / "functions", locks)


def run(args: argparse.Namespace) -> None:
    version = LOCKS_BY_NAME["lambda"].python
    python = lambda_python(version)
    print(f"interpreter: {python} (Python {version}); median of {args.runs} fresh interpreters")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        variants = [Variant("after (this tree)", ROOT / "functions", LOCKS_BY_NAME)]
        if args.before:
            variants.insert(0, revision(work, args.rev))
        sizes: dict[tuple[str, str], str] = {}
        jobs: list[tuple[str, Path, str, str]] = []
        for v, variant in enumerate(variants):
            for lock_name in sorted(set(PACKAGES.values())):
                lock = variant.locks[lock_name]
                shipped = work / f"shipped-{v}-{lock_name}"
                package(lock, variant.functions_dir, shipped, PIP_PLATFORM)
                unzipped, zipped = size_mb(shipped)
                sizes[variant.label, lock_name] = f"{unzipped:.1f}/{zipped:.1f}"
                shutil.rmtree(shipped)
                twin = work / f"twin-{v}-{lock_name}"
                package(lock, variant.functions_dir, twin, HOST_PLATFORM)
                jobs.append((f"{v}:{lock_name}:boto3", twin, IMPORT, "boto3"))
                for name in (n for n, ln in PACKAGES.items() if ln == lock_name):
                    handler = f"functions.handlers.{name}"
                    jobs.append((f"{v}:{name}", twin, IMPORT, handler))
                    jobs.append((f"{v}:{name}:setup", twin, SETUP, handler))
        got = measure(python, jobs, args.runs)
        for v, variant in enumerate(variants):
            print(f"\n{variant.label}")
            print(
                f"{'function':<14}{'package':<13}{'unzip/zip MB':>14}{'modules':>9}"
                f"{'wall ms':>9}{'x boto3':>9}{'CPU ms':>8}{'x boto3':>9}{'services() CPU ms':>19}"
            )
            for name, lock_name in PACKAGES.items():
                boto3_ms, boto3_cpu, _ = got[f"{v}:{lock_name}:boto3"]
                ms, cpu, count = got[f"{v}:{name}"]
                setup_cpu = got[f"{v}:{name}:setup"][1]
                print(
                    f"{name:<14}{lock_name:<13}{sizes[variant.label, lock_name]:>14}{count:>9}"
                    f"{ms:>9.0f}{ms / boto3_ms:>9.2f}{cpu:>8.0f}{cpu / boto3_cpu:>9.2f}"
                    f"{setup_cpu:>19.0f}"
                )
            print(
                "  import boto3: "
                + ", ".join(
                    f"{ln} {got[f'{v}:{ln}:boto3'][0]:.0f} ms wall, "
                    f"{got[f'{v}:{ln}:boto3'][1]:.0f} ms CPU"
                    for ln in sorted(set(PACKAGES.values()))
                )
            )
        print(
            "x boto3: to `import boto3` from the same package, with bytecode, same run, same "
            "clock (wall: perf_counter; CPU: process_time, less moved by other load on the "
            "machine); services(): the boto3 clients a first invocation builds, after the import"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--before", action="store_true", help="also measure --rev's packages, interleaved"
    )
    parser.add_argument("--rev", default="main", help="the revision --before builds")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
