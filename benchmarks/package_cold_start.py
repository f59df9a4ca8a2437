"""Per Lambda function: package size, modules imported and cold import time,
as a ratio to `import boto3` measured the same way in the same run.

Method: each package is built as infra/bundling.py builds it (its lock, its
bytecode). The shipped package holds manylinux aarch64 wheels, which cannot
load on this x86_64 machine, so imports are timed on its twin: the same lock
(same versions, same hashes) installed with the host's wheels, the same
sources and bytecode, run by an interpreter of the runtime's exact Python.
Each sample is a fresh interpreter (`-s -E`, cwd an empty directory, only the
package on sys.path, Lambda's environment variables) timing one `import` with
perf_counter; the median of --runs samples is printed. `--before` also builds
main's layout (one package with every dependency, no bytecode, the sources of
git revision --rev) to put side by side.

    .venv/bin/python benchmarks/package_cold_start.py [--runs 7] [--before]
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infra.bundling import (
    ROOT,
    LocalPythonBundler,
    build_dependencies,
    compile_tree,
    lambda_python,
)
from infra.locks import LOCKS_BY_NAME

HOST_PLATFORM = "manylinux2014_x86_64"
PACKAGES = {
    "sync": "lambda",
    "reconcile": "lambda",
    "trust_guard": "lambda",
    "webhook_push": "lambda-push",
}
CHILD = (
    "import sys, time, json; before = len(sys.modules); t = time.perf_counter(); "
    "__import__(sys.argv[1]); ms = (time.perf_counter() - t) * 1000; "
    "print(json.dumps({'ms': ms, 'modules': len(sys.modules) - before}))"
)


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
    }


def sample(python: str, package: Path, module: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as empty:
        out = subprocess.run(
            [python, "-s", "-c", CHILD, module],
            cwd=empty,
            env=lambda_env(package),
            capture_output=True,
            text=True,
            check=True,
        )
    found = json.loads(out.stdout.strip().splitlines()[-1])
    return {str(key): float(value) for key, value in found.items()}


def measure(
    python: str, package: Path, modules: list[str], runs: int
) -> dict[str, tuple[float, int]]:
    samples: dict[str, list[dict[str, float]]] = {m: [] for m in modules}
    for _ in range(runs):  # interleaved, so load on the machine hits all alike
        for module in modules:
            samples[module].append(sample(python, package, module))
    return {
        m: (statistics.median(s["ms"] for s in got), int(got[0]["modules"]))
        for m, got in samples.items()
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


def twin(lock_name: str, functions_dir: Path, target: Path) -> None:
    """The shipped package's host-platform twin, without bytecode yet."""
    build_dependencies(LOCKS_BY_NAME[lock_name], target, platform=HOST_PLATFORM)
    shutil.copytree(
        functions_dir, target / "functions", ignore=shutil.ignore_patterns("__pycache__")
    )


def run(args: argparse.Namespace) -> None:
    version = LOCKS_BY_NAME["lambda"].python
    python = lambda_python(version)
    print(f"interpreter: {python} (Python {version}); median of {args.runs} fresh interpreters")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shipped_sizes = {}
        for lock_name in sorted(set(PACKAGES.values())):
            out = work / f"shipped-{lock_name}"
            LocalPythonBundler(LOCKS_BY_NAME[lock_name]).try_bundle(str(out))
            unzipped, zipped = size_mb(out)
            shipped_sizes[lock_name] = f"{unzipped:>12.1f}{zipped:>10.1f}"
        rows = []
        for lock_name in sorted(set(PACKAGES.values())):
            package = work / f"twin-{lock_name}"
            twin(lock_name, ROOT / "functions", package)
            names = [n for n, lock in PACKAGES.items() if lock == lock_name]
            modules = ["boto3", *(f"functions.handlers.{n}" for n in names)]
            cold = measure(python, package, modules, args.runs)
            compile_tree(package, version)
            warm = measure(python, package, modules, args.runs)
            for name in names:
                rows.append((name, lock_name, cold[f"functions.handlers.{name}"], cold["boto3"][0]))
                rows.append(
                    (name + "+pyc", lock_name, warm[f"functions.handlers.{name}"], warm["boto3"][0])
                )
            print(
                f"{lock_name}: import boto3 {cold['boto3'][0]:.0f} ms without bytecode, "
                f"{warm['boto3'][0]:.0f} ms with"
            )
        print(
            f"\n{'function':<20}{'package':<13}{'unzip/zip MB':>22}{'modules':>9}{'import ms':>11}{'x boto3*':>10}"
        )
        for name, lock_name, (ms, count), boto3_ms in rows:
            print(
                f"{name:<20}{lock_name:<13}{shipped_sizes[lock_name]:>22}{count:>9}{ms:>11.0f}{ms / boto3_ms:>10.2f}"
            )
        print("* `import boto3` from the same package, same bytecode state, same run")
        if args.before:
            before(work, python, version, args)


def before(work: Path, python: str, version: str, args: argparse.Namespace) -> None:
    """main's layout: one package with every dependency, no bytecode."""
    source = work / "before-src"
    source.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", args.rev, "functions"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    package = work / "before"
    twin("lambda-push", source / "functions", package)
    modules = ["boto3", *(f"functions.handlers.{n}" for n in PACKAGES)]
    got = measure(python, package, modules, args.runs)
    # today's lock for all four (main resolved ranges at synth time instead)
    print(
        f"\nbefore ({args.rev}'s sources, one package with every dependency, no bytecode): "
        f"import boto3 {got['boto3'][0]:.0f} ms"
    )
    for name in PACKAGES:
        ms, count = got[f"functions.handlers.{name}"]
        print(f"  {name:<14}{count:>6} modules{ms:>8.0f} ms{ms / got['boto3'][0]:>7.2f} x boto3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--before", action="store_true", help="also measure main's layout")
    parser.add_argument("--rev", default="main", help="the revision --before takes sources from")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
