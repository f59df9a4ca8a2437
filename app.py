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

from infra.config import DeployConfig, SpokeConfig, StackSetConfig, true_or_false
from infra.events import IAM_EVENTS_REGION
from infra.spoke import PodidSpokeStack
from infra.spoke_stackset import PodidSpokeStackSetStack
from infra.stack import ControlPlaneStack, IamEventForwarderStack


def asked(app: cdk.App, key: str) -> bool:
    value = app.node.try_get_context(key)
    return value not in (None, "") and true_or_false(value, key)


def build_app(context: dict[str, object] | None = None) -> cdk.App:
    app = cdk.App(context=context)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    account = os.environ.get("CDK_DEFAULT_ACCOUNT")
    # a spoke account, or the StackSet's administrator, synthesizes only its own stack
    here = cdk.Environment(account=account, region=os.environ.get("CDK_DEFAULT_REGION"))
    if asked(app, "spoke"):
        PodidSpokeStack(app, "PodidSpoke", SpokeConfig.from_context(app), env=here)
        return app
    if asked(app, "spokeStackSet"):
        stack_set = StackSetConfig.from_context(app)
        PodidSpokeStackSetStack(app, "PodidSpokeStackSet", stack_set, env=here)
        return app
    config = DeployConfig.from_context(app)
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
