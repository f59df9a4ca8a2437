"""Synthesize the app once per configuration, with cdk-nag running as in `cdk synth`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# before jsii starts: this machine's Node 20 works for synth but is past its end of life
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

from aws_cdk.assertions import Template

from app import build_app

ACCOUNT = "111122223333"
DECLARATION_WRITER = f"arn:aws:iam::{ACCOUNT}:role/platform-admin"
CLUSTER_ENROLLER = f"arn:aws:iam::{ACCOUNT}:role/platform-ops"
# the deployment choices every synth here makes explicitly (as cdk.json does)
CHOICES = {
    "homeRegion": "eu-west-1",
    "rolePath": "/pod-identity/",
    "declarationWriters": [DECLARATION_WRITER],
    "clusterEnrollers": [CLUSTER_ENROLLER],
}


def synth(tmp: Path, **context: Any) -> dict[str, Any]:
    os.environ["CDK_DEFAULT_ACCOUNT"] = ACCOUNT
    app = build_app({**CHOICES, **context})
    assembly = app.synth()  # fails here if cdk-nag finds an unacknowledged violation
    stacks = {s.stack_name: s for s in assembly.stacks}
    report = json.loads(Path(assembly.directory, "validation-report.json").read_text())
    return {"app": app, "stacks": stacks, "report": report, "dir": assembly.directory}


@pytest.fixture(scope="session")
def audit(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return synth(tmp_path_factory.mktemp("audit"))


@pytest.fixture(scope="session")
def enforce(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return synth(tmp_path_factory.mktemp("enforce"), mode="enforce")


def cfn_lint(path: str | Path) -> str:
    """cfn-lint's findings on a template ("" when none). W3005 is left out: CDK
    states some dependencies both as DependsOn and through a GetAtt."""
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "cfn-lint"),
            "--ignore-checks",
            "W3005",
            "--",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    return "" if result.returncode == 0 else result.stdout + result.stderr


def template_of(synthesized: dict[str, Any], name: str = "PodIdentityControlPlane") -> Template:
    return Template.from_json(synthesized["stacks"][name].template)


@pytest.fixture(scope="session")
def template(audit: dict[str, Any]) -> Template:
    return template_of(audit)
