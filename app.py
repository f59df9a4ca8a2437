#!/usr/bin/env python3
"""CDK entry point: `cdk synth` / `cdk deploy`, or `python app.py` offline."""

from __future__ import annotations

import os

import aws_cdk as cdk

from infra.stack import ControlPlaneStack


def build_app() -> cdk.App:
    app = cdk.App()
    env = cdk.Environment(
        account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")
    )
    ControlPlaneStack(
        app, app.node.try_get_context("stackName") or "PodIdentityControlPlane", env=env
    )
    return app


if __name__ == "__main__":
    build_app().synth()
