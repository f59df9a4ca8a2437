"""The podid CLI against the local account: exit codes, JSON output, messages."""

import json

import pytest
from typer.testing import CliRunner

from cli import main as cli
from tests.integration.conftest import ACCOUNT, World

runner = CliRunner()
ROLE = f"arn:aws:iam::{ACCOUNT}:role/payments-api"
DECLARE_PAYMENTS_API = (
    *("declare", "payments-api", "--namespace", "payments", "--service-account", "api"),
    *("--role-arn", ROLE, "--fleet", "prod"),
)


@pytest.fixture
def account(world: World, tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "STATE", tmp_path / "no-sandbox.json")
    world.create_role("payments-api")
    world.enroll("blue", "green")
    return world


def run(*args):
    result = runner.invoke(cli.app, list(args))
    return result.exit_code, result.output


def test_declare_from_flags_then_status_and_wait(account):
    code, output = run(*DECLARE_PAYMENTS_API)
    assert code == 0, output
    assert "declared payments-api (version 1)" in output
    account.settle()
    code, output = run("status", "--output", "json")
    assert code == 0, output
    rows = json.loads(output)
    assert sorted((r["cluster"], r["state"]) for r in rows) == [
        ("blue", "InSync"),
        ("green", "InSync"),
    ]
    code, output = run("wait", "payments-api", "--timeout", "5", "--interval", "0.1")
    assert code == 0, output
    assert "blue: InSync, effective at" in output
    # declaring again replaces it (optimistic version)
    code, output = run(
        "declare",
        "payments-api",
        "--namespace",
        "payments",
        "--service-account",
        "api",
        "--role-arn",
        ROLE,
        "--cluster",
        "blue",
    )
    assert "(version 2)" in output


def test_bad_input_is_rejected_with_field_value_and_rule_and_nothing_written(account):
    code, output = run(
        "declare",
        "x",
        "--namespace",
        "Bad_NS",
        "--service-account",
        "api",
        "--role-arn",
        "arn:aws:iam::1:role/x",
        "--fleet",
        "prod",
    )
    assert code == 2
    assert "namespace: 'Bad_NS' is not a valid Kubernetes namespace" in output
    assert "roleArn: 'arn:aws:iam::1:role/x' is not an IAM role ARN" in output
    assert account.item("DECL#x", "DECL") is None
    code, output = run("status", "--state", "Happy")
    assert code == 2
    assert "unknown state 'Happy'" in output


def test_declare_from_a_yaml_file_with_dry_run(account, tmp_path):
    path = tmp_path / "declarations.yaml"
    path.write_text(
        "id: a\nnamespace: payments\nserviceAccount: api\nroleArn: "
        + ROLE
        + "\ntarget: {fleet: prod}\n"
        "---\nid: b\nnamespace: payments\nserviceAccount: worker\nroleArn: "
        + ROLE
        + "\ntarget: {clusters: [blue]}\n"
    )
    code, output = run("declare", "--file", str(path), "--dry-run")
    assert code == 0, output
    assert "2 declaration(s) valid, nothing written" in output
    assert account.item("DECL#a", "DECL") is None


def test_declare_tags_and_session_policy_from_flags(account, tmp_path):
    base = ["declare", "scoped", "--namespace", "payments", "--service-account", "api"]
    base += ["--role-arn", ROLE, "--fleet", "prod", "--tag", "team=payments", "--tag", "tier=1"]
    policy = tmp_path / "session-policy.json"
    policy.write_text('{"Version": "2012-10-17", "Statement": []}')
    # a session policy needs session tags disabled, as EKS requires
    code, output = run(*base, "--policy", str(policy))
    assert code == 2
    assert "disableSessionTags" in output
    code, output = run(*base, "--tag", "oops")
    assert code == 2
    assert "--tag takes key=value, got 'oops'" in output
    assert account.item("DECL#scoped", "DECL") is None

    code, output = run(*base, "--policy", str(policy), "--disable-session-tags")
    assert code == 0, output
    stored = account.item("DECL#scoped", "DECL")
    assert stored["tags"] == {"team": "payments", "tier": "1"}
    assert stored["disableSessionTags"] is True
    assert json.loads(stored["policy"]) == {"Version": "2012-10-17", "Statement": []}


def test_plan_shows_what_would_change_and_writes_nothing(account):
    run(*DECLARE_PAYMENTS_API)
    code, output = run("plan")
    assert code == 0, output
    assert output.count("create") == 2
    assert account.associations("blue") == {}


def test_wait_times_out_with_the_pending_states(account):
    run(*DECLARE_PAYMENTS_API)
    code, output = run("wait", "payments-api", "--timeout", "0.2", "--interval", "0.1")
    assert code == 3
    assert "timed out" in output
    assert "blue=no status yet" in output


def test_reconcile_import_findings_and_schema(account):
    account.client("eks").create_pod_identity_association(
        clusterName="blue", namespace="legacy", serviceAccount="app", roleArn=ROLE
    )
    code, output = run("import", "blue")
    assert code == 0, output
    assert "1 association(s) of blue were imported" in output
    assert account.item("DECL#blue.legacy.app", "DECL")["target"] == {"clusters": ["blue"]}
    code, output = run("reconcile")
    assert code == 0, output
    assert "blue: 1 change(s)" in output  # the adopted association gets its ownership tags
    code, output = run("findings", "--output", "json")
    assert code == 0
    assert json.loads(output) == []
    code, output = run("schema")
    schema = json.loads(output)
    assert {"namespace", "serviceAccount", "roleArn", "target"} <= set(schema["required"])


def test_without_a_sandbox_or_table_it_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(cli, "STATE", tmp_path / "none.json")
    monkeypatch.delenv("TABLE_NAME", raising=False)
    code, output = run("status")
    assert code == 1
    assert "podid sandbox up" in output
