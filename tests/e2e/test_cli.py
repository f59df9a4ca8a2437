"""The podid CLI against the local account: exit codes, JSON output, messages."""

import json
import os
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from cli import main as cli
from cli import output
from tests.integration.conftest import ACCOUNT, TABLE, World, cluster_id, cluster_pk, fixture_event

runner = CliRunner()
ROOT = Path(__file__).parents[2]
ROLE = f"arn:aws:iam::{ACCOUNT}:role/payments-api"
DECLARE_PAYMENTS_API = (
    *("declare", "payments-api", "--namespace", "payments", "--service-account", "api"),
    *("--role-arn", ROLE, "--fleet", "prod"),
)


def use_consoles(monkeypatch: pytest.MonkeyPatch, width: int) -> None:
    """The CLI's consoles at a fixed width, writing where the runner captures."""
    monkeypatch.setattr(output, "console", Console(width=width))
    monkeypatch.setattr(output, "errors", Console(width=width, stderr=True))


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    use_consoles(monkeypatch, 200)


@pytest.fixture
def narrow(monkeypatch: pytest.MonkeyPatch) -> None:
    use_consoles(monkeypatch, 80)


@pytest.fixture
def account(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("PODID_HOME", str(tmp_path))
    monkeypatch.setenv("TABLE_NAME", TABLE)  # restored after commands that set it
    saved = dict(os.environ)
    world.create_role("payments-api")
    world.enroll("blue", "green")
    yield world
    os.environ.clear()
    os.environ.update(saved)


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(cli.app, list(args))
    return result.exit_code, result.output


def test_declare_from_flags_then_status_and_wait(account: World) -> None:
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


def test_bad_input_is_rejected_with_field_value_and_rule_and_nothing_written(
    account: World,
) -> None:
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


def test_declare_from_a_yaml_file_with_dry_run(account: World, tmp_path: Path) -> None:
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


def test_declare_tags_and_session_policy_from_flags(account: World, tmp_path: Path) -> None:
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
    stored = account.record("DECL#scoped", "DECL")
    assert stored["tags"] == {"team": "payments", "tier": "1"}
    assert stored["disableSessionTags"] is True
    assert json.loads(stored["policy"]) == {"Version": "2012-10-17", "Statement": []}


def test_plan_shows_what_would_change_and_writes_nothing(account: World) -> None:
    run(*DECLARE_PAYMENTS_API)
    code, output = run("plan")
    assert code == 0, output
    assert output.count("create") == 2
    assert account.associations("blue") == {}


def test_wait_times_out_with_the_pending_states(account: World) -> None:
    run(*DECLARE_PAYMENTS_API)
    code, output = run("wait", "payments-api", "--timeout", "0.2", "--interval", "0.1")
    assert code == 3
    assert "timed out" in output
    assert "blue=no status yet" in output


def test_reconcile_import_findings_and_schema(account: World) -> None:
    account.client("eks").create_pod_identity_association(
        clusterName="blue", namespace="legacy", serviceAccount="app", roleArn=ROLE
    )
    code, output = run("import", "blue")
    assert code == 0, output
    assert "1 association(s) of blue were imported" in output
    assert account.record("DECL#blue.legacy.app", "DECL")["target"] == {"clusters": ["blue"]}
    assert account.record("DECL#blue.legacy.app", "DECL")["adopt"] is True
    account.settle()
    # audit mode never adopts: the association is reported, untouched
    assert account.record(cluster_pk("blue"), "ASSOC#legacy#app")["state"] == "Blocked"
    assert "pod-identity/declaration" not in account.associations("blue")[("legacy", "app")].get(
        "tags", {}
    )
    account.configure(mode="enforce")
    code, output = run("reconcile")
    assert code == 0, output
    assert f"queued a reconcile of {cluster_id('blue')}, {cluster_id('green')}" in output
    account.settle()
    # enforce mode adopts what the import opted in: it gets its ownership tags
    tags = account.associations("blue")[("legacy", "app")]["tags"]
    assert tags["pod-identity/declaration"] == "blue.legacy.app"
    code, output = run("findings", "--output", "json")
    assert code == 0
    assert json.loads(output) == []
    code, output = run("schema")
    schema = json.loads(output)
    assert {"namespace", "serviceAccount", "target"} <= set(schema["required"])
    # the role: exactly one of roleArn and roleName
    assert schema["oneOf"] == [{"required": ["roleArn"]}, {"required": ["roleName"]}]


def test_without_a_sandbox_or_table_it_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PODID_HOME", str(tmp_path))
    monkeypatch.delenv("TABLE_NAME", raising=False)
    code, output = run("status")
    assert code == 1
    assert "podid sandbox up" in output


# --- the whole job ----------------------------------------------------------------------


def lines_fit(output: str, width: int = 80) -> None:
    too_long = [line for line in output.splitlines() if len(line) > width]
    assert not too_long, "\n".join(too_long)


def given_a_conflict(account: World) -> tuple[int, str]:
    """payments-api asks payments/api on the prod fleet; orders asks the same
    service account on blue with another role."""
    account.create_role("orders-worker")
    assert run(*DECLARE_PAYMENTS_API)[0] == 0
    account.settle()
    code, output = run(
        *("declare", "orders", "--namespace", "payments", "--service-account", "api"),
        *("--role-arn", f"arn:aws:iam::{ACCOUNT}:role/orders-worker", "--cluster", "blue"),
    )
    account.settle()
    return code, output


def test_delete_dry_run_shows_what_goes_and_what_stays_then_deletes(account: World) -> None:
    # Given payments-api on the fleet, and payments-api-blue asking the same on blue
    run(*DECLARE_PAYMENTS_API)
    run(
        *("declare", "payments-api-blue", "--namespace", "payments", "--service-account", "api"),
        *("--role-arn", ROLE, "--cluster", "blue"),
    )
    account.settle()
    green_id = account.associations("green")[("payments", "api")]["associationId"]
    blue_id = account.associations("blue")[("payments", "api")]["associationId"]

    # When the operator previews the removal
    code, output = run("delete", "payments-api", "--dry-run")

    # Then it names the declaration, green's association as deleted and blue's as kept
    assert code == 0, output
    assert "payments-api" in output
    assert green_id in output
    assert blue_id in output
    green_line = next(line for line in output.splitlines() if green_id in line)
    blue_line = next(line for line in output.splitlines() if blue_id in line)
    assert "deleted" in green_line
    assert "kept" in blue_line
    assert "payments-api-blue" in output
    assert "nothing written" in output
    assert account.item("DECL#payments-api", "DECL") is not None

    # An unknown id is refused and nothing is written
    code, output = run("delete", "nope")
    assert code == 2
    assert "no declaration 'nope'" in output

    # When it deletes for real, the item goes and the stream does the rest
    code, output = run("delete", "payments-api")
    assert code == 0, output
    assert account.item("DECL#payments-api", "DECL") is None
    assert "green" in output
    account.settle()
    assert account.associations("green") == {}
    assert set(account.associations("blue")) == {("payments", "api")}


def test_list_shows_state_target_role_and_problems_in_80_columns(
    account: World, narrow: None
) -> None:
    # Given a conflict, an invalid record and a declaration naming a missing cluster
    given_a_conflict(account)
    account.declare(
        "broken",
        namespace="Bad_NS",
        serviceAccount="api",
        roleArn=ROLE,
        target={"clusters": ["blue"]},
    )
    run(
        *("declare", "ghostly", "--namespace", "ops", "--service-account", "x"),
        *("--role-arn", ROLE, "--cluster", "ghost"),
    )
    account.settle()

    # When the operator lists declarations on an 80-column terminal
    code, output = run("list")

    # Then every declaration has its state, and the problems read whole
    assert code == 0, output
    lines_fit(output)
    for word in ("payments-api", "orders", "broken", "ghostly", "Conflict", "Invalid", "Accepted"):
        assert word in output, word
    assert "Bad_NS" in output

    code, output = run("list", "-o", "json")
    assert code == 0, output
    rows = {r["id"]: r for r in json.loads(output)}
    # orders made the conflict; both sides are in Conflict, each saying why
    assert rows["orders"]["state"] == "Conflict"
    assert rows["orders"]["target"] == {"clusters": ["blue"]}
    assert rows["orders"]["roleArn"].endswith(":role/orders-worker")
    assert any("'payments-api' asks" in w for w in rows["orders"]["warnings"])
    assert rows["payments-api"]["state"] == "Conflict"
    assert any("'orders' asks" in w for w in rows["payments-api"]["warnings"])
    assert rows["broken"]["state"] == "Invalid"
    assert any("namespace: 'Bad_NS'" in e for e in rows["broken"]["errors"])
    assert rows["ghostly"]["state"] == "Accepted"
    assert any("'ghost'" in w for w in rows["ghostly"]["warnings"])


def test_status_shows_the_reason_in_80_columns(account: World, narrow: None) -> None:
    given_a_conflict(account)
    code, output = run("status")
    assert code == 0, output
    lines_fit(output)
    assert "reason" in output
    assert "Conflict" in output
    # the reason names the other declaration, wrapped but whole words
    assert "'orders'" in output
    code, output = run("status", "-o", "json")
    blue = next(r for r in json.loads(output) if r["cluster"] == "blue")
    assert blue["state"] == "Conflict"
    assert "'orders' asks" in blue["reason"]


def test_declare_warns_when_it_creates_a_conflict_and_still_writes_it(account: World) -> None:
    # declaring what nobody else asks warns of nothing
    code, output = run(*DECLARE_PAYMENTS_API)
    assert code == 0, output
    assert "warning" not in output
    code, output = run(
        *("declare", "orders", "--namespace", "payments", "--service-account", "api"),
        *("--role-arn", f"arn:aws:iam::{ACCOUNT}:role/orders-worker", "--cluster", "blue"),
    )
    assert code == 0, output
    assert "warning" in output
    assert f"'orders' asks arn:aws:iam::{ACCOUNT}:role/orders-worker" in output
    assert f"'payments-api' asks {ROLE}" in output
    assert account.item("DECL#orders", "DECL") is not None


def test_wait_fails_fast_when_it_could_never_finish(account: World) -> None:
    # a named cluster EKS does not have
    run(
        *("declare", "ghostly", "--namespace", "ops", "--service-account", "x"),
        *("--role-arn", ROLE, "--cluster", "ghost"),
    )
    code, output = run("wait", "ghostly", "--timeout", "30")
    assert code == 2, output
    assert "'ghost'" in output
    assert "does not exist" in output
    # a fleet no enrolled cluster is in
    run(
        *("declare", "nowhere", "--namespace", "ops", "--service-account", "x"),
        *("--role-arn", ROLE, "--fleet", "nowhere"),
    )
    code, output = run("wait", "nowhere", "--timeout", "30")
    assert code == 2, output
    assert "fleet 'nowhere'" in output


def test_wait_on_an_invalid_or_unknown_declaration_says_why(account: World) -> None:
    # an invalid record: its errors, not a traceback
    account.declare(
        "broken", namespace="Bad_NS", serviceAccount="api", roleArn=ROLE, target={"fleet": "prod"}
    )
    result = runner.invoke(cli.app, ["wait", "broken", "--timeout", "30"])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "namespace: 'Bad_NS' is not a valid Kubernetes namespace" in result.output
    # an unknown id
    code, output = run("wait", "nope", "--timeout", "30")
    assert code == 2
    assert "no declaration 'nope'" in output


def test_a_stale_sandbox_state_is_removed_and_said(
    account: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the state file of a sandbox whose process and endpoint are gone
    gone = subprocess.Popen(["true"])  # noqa: S607
    gone.wait()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    state = tmp_path / "sandbox.json"
    state.write_text(
        json.dumps(
            {
                "pid": gone.pid,
                "environment": {
                    "AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed_port}",
                    "TABLE_NAME": "podid-sandbox",
                },
            }
        )
    )
    monkeypatch.delenv("TABLE_NAME")
    result = runner.invoke(cli.app, ["status"])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert "stale" in result.output
    assert "removed" in result.output
    assert "podid sandbox up" in result.output
    assert not state.exists()


def test_aws_errors_are_one_line_with_what_to_do(
    account: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # a table that does not exist
    with pytest.raises(SystemExit) as exited:
        cli.main(["status", "--table", "no-such-table"])
    assert exited.value.code == 1
    err = capsys.readouterr().err.strip()
    assert "ResourceNotFoundException" in err
    assert "TableName" in err
    assert "Traceback" not in err
    # an endpoint that refuses connections
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(SystemExit) as exited:
        cli.main(["status"])
    assert exited.value.code == 1
    err = capsys.readouterr().err.strip()
    assert f"127.0.0.1:{closed_port}" in err
    assert "podid sandbox up" in err
    # a real bug is not hidden
    monkeypatch.setattr(
        "functions.dal.repository.Repository.list_clusters",
        lambda self: 1 / 0,
    )
    with pytest.raises(ZeroDivisionError):
        cli.main(["status", "--table", "podid-test"])


def test_a_bad_environment_names_the_variables(
    account: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODE", "loud")
    result = runner.invoke(cli.app, ["status"])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "MODE: Input should be 'plan', 'audit' or 'enforce' (got 'loud')" in result.output


def test_cluster_enroll_and_every_command_the_product_names_exists(account: World) -> None:
    account.create_cluster("solo", fleet=None)
    code, output = run("cluster", "enroll", "solo")
    assert code == 0, output
    stored = account.record(cluster_pk("solo"), "CLUSTER")
    assert stored["enrolled"] is True
    assert stored["enrolledBy"] == "cli"
    code, output = run("cluster", "enroll", "nope")
    assert code == 2
    assert "'nope'" in output
    assert account.item(cluster_pk("nope"), "CLUSTER") is None

    # every `podid <command>` a message or the README mentions is a real command
    import typer
    from typer.core import TyperGroup

    root = typer.main.get_command(cli.app)
    mentioned: set[tuple[str, str]] = set()
    for path in [
        *ROOT.glob("functions/**/*.py"),
        *ROOT.glob("sandbox/**/*.py"),
        *ROOT.glob("cli/**/*.py"),
        ROOT / "README.md",
    ]:
        for match in re.finditer(
            r"[`(]podid ((?:[a-z][a-z-]*)(?: [a-z][a-z-]*)?)", path.read_text()
        ):
            mentioned.add((path.name, match.group(1)))
        if path.name == "README.md":
            for match in re.finditer(
                r"^podid ((?:[a-z][a-z-]*)(?: [a-z][a-z-]*)?)", path.read_text(), re.M
            ):
                mentioned.add((path.name, match.group(1)))
    assert mentioned
    for where, words in sorted(mentioned):
        command = root
        for word in words.split():
            if not isinstance(command, TyperGroup) or word not in command.commands:
                break
            command = command.commands[word]
        assert command is not root, f"{where} names `podid {words}`, which does not exist"
        if isinstance(command, TyperGroup):
            word = words.split()[-1]
            assert word in command.commands or command.name == word, (
                f"{where} names `podid {words}`, which does not exist"
            )


def test_a_missing_role_finding_names_the_declarations(account: World) -> None:
    # a declaration whose fleet has no enrolled cluster (no usage yet) and whose role is gone
    run(
        *("declare", "lonely", "--namespace", "ops", "--service-account", "x"),
        *("--role-arn", f"arn:aws:iam::{ACCOUNT}:role/gone", "--fleet", "nowhere"),
    )
    account.guard_event(fixture_event("scheduled_event"))
    code, output = run("findings", "--output", "json")
    assert code == 0, output
    (record,) = json.loads(output)
    (finding,) = record["findings"]
    assert finding["code"] == "PI002"
    assert "()" not in finding["message"]
    assert "lonely" in finding["message"]


def test_reconcile_runs_discovery_and_queues_one_message_per_cluster(
    account: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a declaration written straight into the table, not yet delivered
    account.declare_in_payments("payments-api", "api")

    # When the operator asks for a reconcile
    code, output = run("reconcile")

    # Then each enrolled cluster gets a queued reconcile, and nothing is synced inline
    assert code == 0, output
    assert "queued" in output
    assert account.associations("blue") == {}
    bodies = []
    sqs = account.client("sqs")
    while True:
        got = sqs.receive_message(QueueUrl=account.urls["reconcile"], MaxNumberOfMessages=10)
        if not got.get("Messages"):
            break
        bodies += [json.loads(m["Body"]) for m in got["Messages"]]
    assert sorted(b["cluster"] for b in bodies) == [cluster_id("blue"), cluster_id("green")]

    # Without a queue it says where to find one, and queues nothing
    monkeypatch.delenv("RECONCILE_QUEUE_URL")
    code, output = run("reconcile")
    assert code == 2, output
    assert "ReconcileQueueUrl" in output
    assert "--queue-url" in output


def test_reconcile_wait_waits_for_the_queued_clusters(account: World) -> None:
    account.declare_in_payments("payments-api", "api")
    # nobody consumes the queue: --wait times out with exit 3
    code, output = run("reconcile", "--wait", "--timeout", "1", "--interval", "0.2")
    assert code == 3, output
    assert "blue" in output
    account.settle()

    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set():
            account.run_reconcile_queue()
            account.run_push()
            stop.wait(0.1)

    consumer = threading.Thread(target=consume)
    consumer.start()
    try:
        # a reconcile that changes something: statuses synced after the request
        account.client("eks").delete_pod_identity_association(
            clusterName="blue",
            associationId=account.associations("blue")[("payments", "api")]["associationId"],
        )
        account.configure(mode="enforce")
        code, output = run("reconcile", "--wait", "--timeout", "30", "--interval", "0.2")
        assert code == 0, output
        assert "blue: reconciled, 1 change(s); 1 InSync" in output
        assert "green: reconciled, 0 change(s)" in output
        assert set(account.associations("blue")) == {("payments", "api")}
        # a reconcile that changes nothing still finishes: it leaves a receipt
        code, output = run("reconcile", "--wait", "--timeout", "30", "--interval", "0.2")
        assert code == 0, output
        assert "blue: reconciled, 0 change(s); 1 InSync" in output
    finally:
        stop.set()
        consumer.join()


def test_status_shows_the_external_id_a_target_role_must_require(account: World) -> None:
    account.create_role("central")
    target = f"arn:aws:iam::{ACCOUNT}:role/central"
    code, output = run(*DECLARE_PAYMENTS_API, "--target-role-arn", target)
    assert code == 0, output
    account.settle()
    code, output = run("status", "-o", "json", "--cluster", "blue")
    assert code == 0, output
    (row,) = json.loads(output)
    described = account.associations("blue")[("payments", "api")]
    assert row["targetRoleArn"] == target
    assert row["externalId"] == described["externalId"]
    assert row["externalId"]
    assert row["ownedByPodid"] is True


def test_list_says_when_the_roles_owner_must_widen_its_trust(account: World) -> None:
    only_orders = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "pods.eks.amazonaws.com"},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Condition": {"StringEquals": {"aws:RequestTag/kubernetes-namespace": "orders"}},
            }
        ],
    }
    account.client("iam").update_assume_role_policy(
        RoleName="payments-api", PolicyDocument=json.dumps(only_orders)
    )
    assert run(*DECLARE_PAYMENTS_API)[0] == 0
    account.settle()
    account.guard_event(fixture_event("scheduled_event"))
    code, output = run("list", "-o", "json")
    assert code == 0, output
    (row,) = json.loads(output)
    assert any(t.startswith("PI040") and "role owner must widen it" in t for t in row["trust"]), (
        row["trust"]
    )


def test_cluster_enroll_self_managed_records_it_and_refuses_bad_input_writing_nothing(
    account: World, tmp_path: Path
) -> None:
    from tests.realwebhook.webhook import make_tls

    ca = make_tls(tmp_path).ca
    node_role = f"arn:aws:iam::{ACCOUNT}:role/lab-nodes"
    good = [
        "cluster", "enroll", "lab-1", "--self-managed", "--endpoint", "https://10.0.0.10:6443",
        "--ca-file", str(ca), "--node-role-arn", node_role, "--fleet", "prod",
    ]  # fmt: skip
    # bad input: each refused with the rule, exit 2, nothing written
    for args, message in [
        (["cluster", "enroll", "lab-1", "--self-managed"], "--self-managed needs --endpoint"),
        ([*good[:5], "http://10.0.0.10:6443", *good[6:]], "must be https://<host>[:<port>]"),
        ([*good[:7], str(tmp_path / "missing.pem"), *good[8:]], "No such file"),
        ([*good[:7], str(tmp_path / "tls.key"), *good[8:]], "holds no PEM certificate"),
        ([*good[:9], f"arn:aws:iam::{ACCOUNT}:user/x", *good[10:]], "is not an IAM role ARN"),
        (["cluster", "enroll", "blue", *good[3:]], "EKS has a cluster named 'blue'"),
        (["cluster", "enroll", "solo", "--endpoint", "https://x"], "only go with --self-managed"),
    ]:
        code, output = run(*args)
        assert code == 2, (args, output)
        assert message in " ".join(output.split()), (args, output)
    assert account.item(cluster_pk("lab-1"), "CLUSTER") is None
    assert account.record(cluster_pk("blue"), "CLUSTER")["kind"] == "eks"
    # a dry run shows the record and writes nothing
    code, output = run(*good, "--dry-run")
    assert code == 0, output
    assert '"kind": "self-managed"' in output
    assert account.item(cluster_pk("lab-1"), "CLUSTER") is None
    # enrolled: recorded as the source of truth for where it is
    code, output = run(*good)
    assert code == 0, output
    assert "enrolled lab-1 (self-managed, https://10.0.0.10:6443" in output
    stored = account.record(cluster_pk("lab-1"), "CLUSTER")
    assert (stored["kind"], stored["endpoint"], stored["nodeRoleArn"], stored["fleet"]) == (
        "self-managed",
        "https://10.0.0.10:6443",
        node_role,
        "prod",
    )
    code, output = run(*good)
    assert code == 0
    assert "already enrolled" in output
    code, output = run("cluster", "list", "--output", "json")
    assert code == 0, output
    listed = {row["name"]: row for row in json.loads(output)}
    assert (listed["lab-1"]["kind"], listed["blue"]["kind"]) == ("self-managed", "eks")
    # `podid plan` previews its map entries without asking EKS about a cluster it lacks
    code, output = run(*DECLARE_PAYMENTS_API)
    assert code == 0, output
    code, output = run("plan", "--cluster", "lab-1")
    assert code == 0, output
    assert "create" in output
    assert "payments/api" in output


def test_declare_a_role_name_narrowed_by_region_and_list_it(account: World) -> None:
    # Given the role pod-identity/app-reader in the account of blue and green
    account.client("iam").create_role(
        RoleName="app-reader",
        Path="/pod-identity/",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )
    # When a declaration names the role by name, narrowed to this region
    code, output = run(
        *("declare", "reader", "--namespace", "payments", "--service-account", "reader"),
        *("--role-name", "pod-identity/app-reader", "--fleet", "prod", "--region", "eu-west-1"),
    )
    assert code == 0, output
    account.settle()
    # Then the list shows the name as given and, per cluster, the ARN it resolves to
    code, output = run("list", "-o", "json")
    assert code == 0, output
    row = {r["id"]: r for r in json.loads(output)}["reader"]
    resolved = f"arn:aws:iam::{ACCOUNT}:role/pod-identity/app-reader"
    assert (row["roleName"], row["roleArn"]) == ("pod-identity/app-reader", None)
    assert row["roles"] == {
        f"{ACCOUNT}/eu-west-1/blue": resolved,
        f"{ACCOUNT}/eu-west-1/green": resolved,
    }
    assert row["target"] == {"clusters": [], "fleet": "prod", "regions": ["eu-west-1"]}
    assert row["state"] == "Accepted"
    code, output = run("list")
    assert "roleName pod-identity/app-reader" in output
    assert f"in accounts {ACCOUNT}" in output
    assert "regions eu-west-1" in output
    assert account.associations("blue")[("payments", "reader")]["roleArn"] == resolved


def test_a_role_name_and_a_role_arn_together_are_refused_and_nothing_written(
    account: World,
) -> None:
    code, output = run(
        *DECLARE_PAYMENTS_API, *("--role-name", "payments-api", "--region", "eu-west-1")
    )
    assert code == 2, output
    assert "roleArn and roleName are both set" in output
    code, output = run(
        *("declare", "x", "--namespace", "a", "--service-account", "b", "--fleet", "prod"),
        *("--role-name", "team//app"),
    )
    assert code == 2, output
    assert "invalid IAM path segment" in output
    assert account.item("DECL#payments-api", "DECL") is None
    assert account.item("DECL#x", "DECL") is None
