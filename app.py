#!/usr/bin/env python3
"""CDK entry point: `cdk synth` / `cdk deploy`, or `python app.py` offline.

cdk-nag's AwsSolutions checks run as a policy-validation plugin: synth fails on
any violation that is not acknowledged with a written reason.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.config import DeployConfig
from infra.stack import IAM_EVENTS_REGION, ControlPlaneStack, IamEventForwarderStack


def build_app(context: dict[str, object] | None = None) -> cdk.App:
    app = cdk.App(context=context)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    config = DeployConfig.from_context(app)
    account = os.environ.get("CDK_DEFAULT_ACCOUNT")
    region = config.home_region or os.environ.get("CDK_DEFAULT_REGION")
    name = str(app.node.try_get_context("stackName") or "PodIdentityControlPlane")
    ControlPlaneStack(app, name, config, env=cdk.Environment(account=account, region=region))
    if region and region != IAM_EVENTS_REGION:
        IamEventForwarderStack(
            app,
            f"{name}-IamEvents",
            home_region=region,
            env=cdk.Environment(account=account, region=IAM_EVENTS_REGION),
        )
    return app


def cdk_json_context() -> dict[str, Any]:
    """cdk.json's context, for `python app.py` without the CDK CLI; under the CLI
    its own context (cdk.json plus -c) still wins over these."""
    found: dict[str, Any] = json.loads((Path(__file__).parent / "cdk.json").read_text())["context"]
    return found


if __name__ == "__main__":
    build_app(cdk_json_context()).synth()
