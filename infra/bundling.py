"""Build the Lambda code asset on this machine, without Docker.

Dependencies are the project's runtime dependencies (pyproject.toml), as
wheels for the Lambda platform (arm64, the stack's Python), installed once
into a cache keyed by what they are; the `functions` package is copied next
to them. CDK calls `try_bundle` during synth.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".build"
PLATFORM = "manylinux2014_aarch64"


def runtime_requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return sorted(project["dependencies"])


@jsii.implements(ILocalBundling)
class LocalPythonBundler:
    def __init__(self, python_version: str, packages: tuple[str, ...] = ("functions",)) -> None:
        self.python_version = python_version
        self.packages = packages

    def dependencies_dir(self) -> Path:
        requirements = runtime_requirements()
        key = hashlib.sha256(
            "\n".join([PLATFORM, self.python_version, *requirements]).encode()
        ).hexdigest()[:16]
        target = CACHE / f"lambda-deps-{key}"
        if target.exists():
            return target
        staging = CACHE / f"lambda-deps-{key}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        result = subprocess.run(  # noqa: S603 - fixed argv, our own requirements
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-compile",
                "--target",
                str(staging),
                "--platform",
                PLATFORM,
                "--implementation",
                "cp",
                "--python-version",
                self.python_version,
                "--only-binary=:all:",
                *requirements,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"pip could not build the Lambda dependencies:\n{result.stderr}")
        staging.rename(target)
        return target

    def try_bundle(self, output_dir: str, *_: Any, **__: Any) -> bool:
        shutil.copytree(self.dependencies_dir(), output_dir, dirs_exist_ok=True)
        for package in self.packages:
            shutil.copytree(
                ROOT / package,
                Path(output_dir) / package,
                dirs_exist_ok=True,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )
        return True


def function_code(runtime: lambda_.Runtime) -> lambda_.Code:
    version = runtime.name.removeprefix("python")
    return lambda_.Code.from_asset(
        str(ROOT / "functions"),
        bundling=BundlingOptions(
            # never used: local bundling always succeeds or raises
            image=DockerImage.from_registry("public.ecr.aws/sam/build-python" + version),
            local=LocalPythonBundler(version),
        ),
        # the asset changes when our code or the dependency list changes
        asset_hash=_source_hash(version),
    )


def _source_hash(python_version: str) -> str:
    digest = hashlib.sha256("\n".join([PLATFORM, python_version, *runtime_requirements()]).encode())
    for path in sorted((ROOT / "functions").rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
