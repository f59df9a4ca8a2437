"""Build the Lambda code assets on this machine, without Docker.

Each asset installs exactly its lock file (locks/<name>.txt: pinned versions
with sha256 hashes, manylinux arm64 wheels for the runtime's Python), copies
the `functions` package next to them and compiles every module to bytecode
with an interpreter of the runtime's exact version. The Lambda task root is
read-only, so without shipped bytecode every cold start compiles each module
again; `unchecked-hash` pycs are used as they are, whatever mtimes the zip
gives the sources. The asset hash comes from the lock's bytes, the bytecode
format and our sources, never from requirement strings. CDK calls
`try_bundle` during synth.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

from infra.locks import LAMBDA_PLATFORM, LOCKS_BY_NAME, Lock

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".build"
# pip's name for the platform uv resolved the Lambda locks for
PIP_PLATFORM = LAMBDA_PLATFORM.replace("aarch64-manylinux", "manylinux") + "_aarch64"
TASK_ROOT = "/var/task"
PYTHON_ENV = "PODID_LAMBDA_PYTHON"
# Parts of a wheel no code path of ours imports (tests/infra/test_import_graph.py
# proves it): the asyncio client is 64 MB of the 119 MB kubernetes wheel.
PRUNE = {"lambda-push": ("kubernetes/aio",)}


@cache
def lambda_python(version: str) -> str:
    """An interpreter of exactly `version`: bytecode is only valid for the
    minor version that wrote it."""
    candidates = [
        os.environ.get(PYTHON_ENV, ""),
        sys.executable,
        shutil.which(f"python{version}") or "",
        *sorted(
            glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}"))
        ),
        f"/usr/bin/python{version}",
    ]
    for candidate in filter(None, candidates):
        probe = subprocess.run(  # noqa: S603 - probing an interpreter's version
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    raise RuntimeError(
        f"no Python {version} interpreter found to compile the Lambda bytecode: install one "
        f"(pyenv, apt python{version}) or point {PYTHON_ENV} at it"
    )


def bytecode_tag(version: str) -> str:
    """The interpreter's bytecode format (magic number): part of the asset hash."""
    out = subprocess.run(  # noqa: S603 - a fixed probe
        [lambda_python(version), "-c", "import importlib.util as u; print(u.MAGIC_NUMBER.hex())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def compile_tree(directory: Path, version: str, root: Path | None = None) -> None:
    """Bytecode for every module under `directory`, which Lambda unpacks from
    `root` into the task root."""
    subprocess.run(  # noqa: S603 - fixed argv
        [
            lambda_python(version),
            "-m",
            "compileall",
            "-q",
            "-j0",
            "--invalidation-mode",
            "unchecked-hash",
            # tracebacks name the files where Lambda unpacks them
            "-s",
            str(root or directory),
            "-p",
            TASK_ROOT,
            str(directory),
        ],
        check=True,
        capture_output=True,
    )


def install_lock(lock: Lock, target: Path, platform: str = PIP_PLATFORM) -> None:
    result = subprocess.run(  # noqa: S603 - fixed argv, our own lock file
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-compile",
            "--no-deps",
            "--require-hashes",
            "--only-binary=:all:",
            "--target",
            str(target),
            "--platform",
            platform,
            "--implementation",
            "cp",
            "--python-version",
            lock.python,
            "-r",
            str(lock.path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"pip could not install {lock.path.name}:\n{result.stderr}")


def build_dependencies(lock: Lock, target: Path, platform: str = PIP_PLATFORM) -> None:
    """The lock's wheels for `platform`, less what PRUNE names; no bytecode yet."""
    install_lock(lock, target, platform)
    for part in PRUNE.get(lock.name, ()):
        shutil.rmtree(target / part)


@jsii.implements(ILocalBundling)
class LocalPythonBundler:
    def __init__(self, lock: Lock, packages: tuple[str, ...] = ("functions",)) -> None:
        self.lock = lock
        self.packages = packages

    def dependencies_dir(self) -> Path:
        key = asset_hash(self.lock, sources=False)[:16]
        target = CACHE / f"{self.lock.name}-{key}"
        if target.exists():
            return target
        staging = CACHE / f"{self.lock.name}-{key}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        build_dependencies(self.lock, staging)
        compile_tree(staging, self.lock.python)
        staging.rename(target)
        return target

    def try_bundle(self, output_dir: str, *_: Any, **__: Any) -> bool:
        shutil.copytree(self.dependencies_dir(), output_dir, dirs_exist_ok=True)
        for package in self.packages:
            destination = Path(output_dir) / package
            shutil.copytree(
                ROOT / package,
                destination,
                dirs_exist_ok=True,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )
            compile_tree(destination, self.lock.python, root=Path(output_dir))
        return True


def asset_hash(lock: Lock, sources: bool = True) -> str:
    """What the asset is made of: the resolved lock (its exact bytes), where it
    runs, the bytecode format, and (for the asset) our sources."""
    digest = hashlib.sha256()
    for part in (PIP_PLATFORM, lock.python, bytecode_tag(lock.python), *PRUNE.get(lock.name, ())):
        digest.update(part.encode() + b"\0")
    digest.update(lock.path.read_bytes())
    if sources:
        for path in sorted((ROOT / "functions").rglob("*.py")):
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()


def function_code(runtime: lambda_.Runtime, lock_name: str) -> lambda_.Code:
    lock = LOCKS_BY_NAME[lock_name]
    version = runtime.name.removeprefix("python")
    if version != lock.python:
        raise ValueError(
            f"runtime {runtime.name} but {lock.path.name} is resolved for Python {lock.python}: "
            "set LAMBDA_PYTHON in infra/locks.py and run `make lock`"
        )
    return lambda_.Code.from_asset(
        str(ROOT / "functions"),
        bundling=BundlingOptions(
            # never used: local bundling always succeeds or raises
            image=DockerImage.from_registry("public.ecr.aws/sam/build-python" + version),
            local=LocalPythonBundler(lock),
        ),
        asset_hash=asset_hash(lock),
    )
