"""The spoke as a service-managed StackSet: every account of the chosen OUs, in the
chosen regions, now and as accounts join (auto deployment).

The spoke template is inlined as TemplateBody. The spoke has no file assets, so its
synthesized template is complete on its own; a template asset would instead need the
CDK bootstrap bucket readable by StackSets and bootstrapped target accounts. The spoke
is synthesized region- and account-agnostic with no bootstrap-version check, so one
template fits every account and region (its IAM rule carries a region condition)."""

from __future__ import annotations

import json
import tempfile
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_cloudformation as cloudformation
from cdk_nag import AwsSolutionsChecks
from constructs import Construct

from infra.config import SpokeConfig, StackSetConfig
from infra.spoke import PodidSpokeStack

TEMPLATE_BODY_LIMIT = 51_200  # bytes: CloudFormation's TemplateBody maximum
# feature flags the spoke must be synthesized with, as the app is (cdk.json)
FLAGS = ("@aws-cdk/aws-iam:minimizePolicies", "@aws-cdk/core:target-partitions")


def spoke_template(config: SpokeConfig, flags: dict[str, Any]) -> dict[str, Any]:
    """The spoke stack's template, synthesized in its own app with cdk-nag enforced."""
    with tempfile.TemporaryDirectory(prefix="podid-spoke-") as outdir:
        app = cdk.App(outdir=outdir, context=flags, analytics_reporting=False)
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
        stack = PodidSpokeStack(
            app, "PodidSpoke", config, synthesizer=cdk.BootstraplessSynthesizer()
        )
        template: dict[str, Any] = app.synth().get_stack_by_name(stack.stack_name).template
    return template


class PodidSpokeStackSetStack(cdk.Stack):
    """Deploy from the management account (or a delegated administrator, stackSetCallAs)."""

    def __init__(
        self, scope: Construct, construct_id: str, config: StackSetConfig, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        flags = {flag: self.node.try_get_context(flag) for flag in FLAGS}
        body = json.dumps(
            spoke_template(config, {k: v for k, v in flags.items() if v is not None}),
            separators=(",", ":"),
            sort_keys=True,
        )
        if len(body.encode()) > TEMPLATE_BODY_LIMIT:
            raise ValueError(
                f"the spoke template is {len(body.encode())} bytes, over CloudFormation's "
                f"TemplateBody limit of {TEMPLATE_BODY_LIMIT}"
            )
        self.stack_set = cloudformation.CfnStackSet(
            self,
            "Spokes",
            stack_set_name=f"{config.hub_stack_name[:100]}-spokes",
            description=f"podid spokes for hub {config.hub_stack_name} ({config.hub_account})",
            permission_model="SERVICE_MANAGED",
            call_as=config.call_as,
            auto_deployment=cloudformation.CfnStackSet.AutoDeploymentProperty(
                enabled=True, retain_stacks_on_account_removal=False
            ),
            # the spoke names its role (the hub finds it by name in each account)
            capabilities=["CAPABILITY_NAMED_IAM"],
            managed_execution={"Active": True},
            operation_preferences=cloudformation.CfnStackSet.OperationPreferencesProperty(
                failure_tolerance_percentage=10,
                max_concurrent_percentage=25,
                region_concurrency_type="PARALLEL",
            ),
            stack_instances_group=[
                cloudformation.CfnStackSet.StackInstancesProperty(
                    deployment_targets=cloudformation.CfnStackSet.DeploymentTargetsProperty(
                        organizational_unit_ids=list(config.organizational_units)
                    ),
                    regions=list(config.regions),
                )
            ],
            template_body=body,
        )
