"""Clusters created while the sandbox runs, by a client other than the sandbox
(boto3, the aws CLI, Terraform against its moto endpoint), as with
`podid sandbox up`: they get a local Kubernetes API, so their map is pushed.

The scenario runs in its own process, as test_demo does: the sandbox owns the
environment, and the handlers bind their settings (e.g. the trust guard's
idempotency table and endpoint) at import."""

import json
import subprocess
import sys
from typing import Any

import boto3

from functions.core.models import FLEET_TAG, Declaration
from sandbox.stack import ACCOUNT, OPERATOR_KEY, Sandbox

MAP = ("kube-system", "pod-identity-associations")


def identities(configmap: dict[str, Any]) -> list[dict[str, str]]:
    found: list[dict[str, str]] = json.loads(configmap["data"]["identities.json"])["identities"]
    return found


def scenario() -> None:
    from functions.flows.services import services

    with Sandbox(mode="enforce") as box:
        # Given a running sandbox with a seeded prod cluster and a fleet-wide declaration
        box.add_cluster("blue", fleet="prod")
        role = box.add_role("payments-api")
        box.pump()
        box.schedule()
        services().repo.put_declaration(
            Declaration.model_validate(
                {
                    "id": "payments-api",
                    "namespace": "payments",
                    "serviceAccount": "api",
                    "roleArn": role,
                    "target": {"fleet": "prod"},
                }
            )
        )
        box.pump()
        # When someone else creates a prod cluster with a plain boto3 client
        eks = boto3.client(
            "eks",
            region_name=box.region,
            endpoint_url=box.endpoint,
            aws_access_key_id=OPERATOR_KEY,
            aws_secret_access_key=OPERATOR_KEY,
        )
        eks.create_cluster(
            name="orange",
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks-cluster",
            resourcesVpcConfig={"subnetIds": ["subnet-1"]},
            tags={FLEET_TAG: "prod"},
        )
        box.pump()
        # Then the cluster has a local Kubernetes API and the fleet's map on it
        api = box.kube.clusters.get("orange") if box.kube else None
        assert api is not None, "no local Kubernetes API for a cluster created at run time"
        configmap = api.configmap(*MAP)
        assert configmap is not None, f"no map pushed to orange: {api.requests}"
        found = identities(configmap)
        assert found == [{"namespace": "payments", "serviceAccount": "api"}], found
        assert box.apis["orange"] is api
        # and when it is deleted, its local API goes with it
        eks.delete_cluster(name="orange")
        box.pump()
        assert box.kube is not None
        assert "orange" not in box.kube.clusters, "orange's local API outlived the cluster"
        assert "orange" not in box.apis
        assert box.apis["blue"].configmap(*MAP) is not None


def test_a_cluster_created_at_run_time_gets_a_local_api_and_its_fleet_map() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from tests.e2e.test_sandbox_runtime_clusters import scenario; scenario()",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    failure = [line for line in result.stderr.splitlines() if "Error" in line]
    assert result.returncode == 0, "\n".join(failure[-3:]) or result.stderr[-3000:]
