"""`podid sandbox up` in one process, the operator's commands in others, as in
the README's tour: the state file connects them, `sandbox down` stops it."""

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.kubectl import ROOT, kubectl

# the environment the CLI runs in, the `podid sandbox up` process, its state file
Running = tuple[dict[str, str], subprocess.Popen[str], Path]

MANIFEST = ROOT / "deploy" / "webhook-push-rbac.yaml"
PODID = [sys.executable, "-c", "from cli.main import main; main()"]
DECLARATION = """\
id: payments-api
namespace: payments
serviceAccount: api
roleArn: arn:aws:iam::123456789012:role/pod-identity/payments-api
target: {fleet: prod}
"""


def podid(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PODID, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Running]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TABLE_NAME", "MOTO"))}
    env.update(PODID_HOME=str(tmp_path), COLUMNS="200")
    up = subprocess.Popen(
        [*PODID, "sandbox", "up", "--schedule-seconds", "5"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    state = tmp_path / "sandbox.json"
    deadline = time.monotonic() + 90
    while not state.exists():
        assert up.poll() is None, up.communicate()[0]
        assert time.monotonic() < deadline, "sandbox did not come up"
        time.sleep(0.2)
    yield env, up, state
    if up.poll() is None:
        up.kill()
        up.wait()


def test_sandbox_up_serves_the_cli_from_other_processes_and_down_stops_it(
    sandbox: Running, tmp_path: Path
) -> None:
    env, up, state = sandbox
    # Given the sandbox is up with its seeded clusters and roles
    code_file = tmp_path / "payments.yaml"
    code_file.write_text(DECLARATION)

    # When an operator declares from a file in another process and waits for it
    declared = podid("declare", "--file", str(code_file), env=env)
    assert declared.returncode == 0, declared.stderr
    waited = podid("wait", "payments-api", "--timeout", "60", "--interval", "0.5", env=env)

    # Then the fleet's clusters carry the association, in sync
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert "blue: InSync" in waited.stdout
    assert "green: InSync" in waited.stdout
    status = podid("status", "--output", "json", env=env)
    rows = json.loads(status.stdout)
    assert sorted((r["cluster"], r["state"]) for r in rows) == [
        ("blue", "InSync"),
        ("green", "InSync"),
    ]

    # When someone in yet another process (boto3, as the aws CLI would) drops
    # sts:TagSession from the role's trust policy
    aws = json.loads(state.read_text())["environment"]
    iam = boto3.client(
        "iam",
        endpoint_url=aws["AWS_ENDPOINT_URL"],
        region_name=aws["AWS_REGION"],
        aws_access_key_id="someone",
        aws_secret_access_key="someone",
    )
    iam.update_assume_role_policy(
        RoleName="payments-api",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "pods.eks.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )

    # Then the sandbox's CloudTrail brings it to the trust guard, which repairs it
    # (the 5 s trust sweep may already have recorded a clean check: wait past it)
    deadline = time.monotonic() + 60
    while True:
        found = json.loads(podid("findings", "--output", "json", env=env).stdout)
        if [f["action"] for f in found] == ["repaired"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert [f["action"] for f in found] == ["repaired"], found
    assert "PI012" in [f["code"] for f in found[0]["findings"]]
    policy = iam.get_role(RoleName="payments-api")["Role"]["AssumeRolePolicyDocument"]
    assert "sts:TagSession" in json.dumps(policy)

    # And a second `up` is refused while one runs
    again = podid("sandbox", "up", env=env)
    assert again.returncode == 1
    assert "podid sandbox down" in again.stderr

    # When the operator stops it, the process ends cleanly and forgets its state
    assert podid("sandbox", "down", env=env).returncode == 0
    output, _ = up.communicate(timeout=30)
    assert up.returncode == 0, output
    assert "sandbox down" in output
    assert not state.exists()
    gone = podid("status", env=env)
    assert gone.returncode == 1
    assert "podid sandbox up" in gone.stderr


def test_sandbox_up_writes_a_kubeconfig_per_cluster_that_kubectl_uses(
    sandbox: Running, tmp_path: Path
) -> None:
    env, up, _ = sandbox
    # Given the sandbox is up: one admin kubeconfig per cluster, readable by its owner only
    configs = {p.name.removesuffix(".kubeconfig"): p for p in (tmp_path / "kubeconfig").iterdir()}
    assert set(configs) == {"blue", "green", "dev"}
    for name, config in configs.items():
        assert config.stat().st_mode & 0o777 == 0o600
        # Then kubectl reaches that cluster over verified TLS, reads and dry-runs the manifest
        version = json.loads(kubectl(config, "get", "--raw", "/version").stdout)
        assert version["gitVersion"].startswith("v1.34.")
        assert "namespace/kube-system" in kubectl(config, "get", "ns", "-o", "name").stdout
        listed = kubectl(config, "get", "configmap", "-A").stdout
        assert "pod-identity-associations" in listed, name
        dry = kubectl(config, "apply", "--dry-run=server", "-f", str(MANIFEST)).stdout
        assert len(dry.splitlines()) == 3
        assert all(line.endswith("(server dry run)") for line in dry.splitlines()), dry

    # When payments/api is declared for the prod fleet and synced
    code_file = tmp_path / "payments.yaml"
    code_file.write_text(DECLARATION)
    assert podid("declare", "--file", str(code_file), env=env).returncode == 0
    waited = podid("wait", "payments-api", "--timeout", "60", "--interval", "0.5", env=env)
    assert waited.returncode == 0, waited.stdout + waited.stderr

    # Then kubectl shows the map the push wrote on a prod cluster, and none on dev
    def configmap(cluster: str) -> dict[str, Any]:
        shown = kubectl(
            configs[cluster], "get", "configmap", "-n", "kube-system",
            "pod-identity-associations", "-o", "json",
        )  # fmt: skip
        return dict(json.loads(shown.stdout))

    identities = json.loads(configmap("blue")["data"]["identities.json"])["identities"]
    assert identities == [{"namespace": "payments", "serviceAccount": "api"}]
    assert "payments" not in json.dumps(configmap("dev").get("data", {}))

    # And `down` takes the kubeconfigs (their CA and key) with the sandbox
    assert podid("sandbox", "down", env=env).returncode == 0
    output, _ = up.communicate(timeout=30)
    assert str(configs["blue"]) in output.replace("\n", "")
    assert not any(path.exists() for path in configs.values())
