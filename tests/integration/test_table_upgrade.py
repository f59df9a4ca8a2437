"""A table written by the version before clusters had an account and region
is upgraded without loss: the previous release's own code (checked out from
git) writes it, today's code moves it and carries on.

What must survive: which associations podid owns (by recorded id: losing it
would turn podid's own associations into foreign ones, Blocked), the pushed
map's generation, each declaration's per-cluster problems, and a reconcile
message queued before the upgrade."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
from io import BytesIO
from pathlib import Path

import pytest

from tests.integration.conftest import ACCOUNT, REGION, World, cluster_pk, fixture_event

REPOSITORY = Path(__file__).resolve().parents[2]
GIT = shutil.which("git") or "git"
# the last commit before clusters were named by account, region and name
PREVIOUS_RELEASE = "8a29169026fc4afc2d33fec3cefd4a7a33a951f8"

WRITE_AS_BEFORE = textwrap.dedent(
    """
    import json, sys
    from datetime import UTC, datetime
    from functions.core.models import DeclarationState, DeclarationStatus, PushedMap
    from functions.flows.reconcile import scheduled_pass
    from functions.flows.services import services

    svc = services()
    now = datetime.now(UTC)
    for declaration_id in sys.argv[1:]:
        svc.repo.save_declaration_status(
            DeclarationStatus(
                declaration_id=declaration_id, state=DeclarationState.ACCEPTED, observed_at=now
            )
        )
    summary = scheduled_pass(svc)
    svc.repo.record_push(PushedMap(cluster="blue", sha256="ab" * 32, generation=7, pushed_at=now))
    print(json.dumps({"clusters": summary.clusters}))
    """
)


@pytest.fixture(scope="module")
def previous_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The previous release's functions package, from this repository's history."""
    archive = subprocess.run(
        [GIT, "-C", str(REPOSITORY), "archive", PREVIOUS_RELEASE, "functions"],
        capture_output=True,
        check=False,
    )
    assert archive.returncode == 0, (
        f"git archive {PREVIOUS_RELEASE} failed ({archive.stderr.decode().strip()}): the "
        "upgrade test needs the repository's history (not a shallow clone)"
    )
    where = tmp_path_factory.mktemp("previous-release")
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(where, filter="data")
    return where


def write_with_previous_release(where: Path, *declaration_ids: str) -> dict[str, object]:
    """Run the previous release against the same moto server and table, with no
    queues: it reconciles in its own process, as a single local process does."""
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in {"RECONCILE_QUEUE_URL", "PUSH_QUEUE_URL", "PYTHONPATH"}
    }
    done = subprocess.run(
        [sys.executable, "-c", WRITE_AS_BEFORE, *declaration_ids],
        cwd=where,
        env={**environment, "PYTHONPATH": str(where)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    written: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return written


def test_a_table_written_before_the_upgrade_is_moved_without_loss(
    world: World, previous_release: Path
) -> None:
    # Given clusters, a role, a hand-made association podid must leave alone,
    world.create_role("payments-api")
    for name in ("blue", "green"):
        world.create_cluster(name)
    role = f"arn:aws:iam::{ACCOUNT}:role/payments-api"
    world.client("eks").create_pod_identity_association(
        clusterName="blue", namespace="legacy", serviceAccount="app", roleArn=role
    )
    # declarations (one asking for the hand-made one's key: Blocked there),
    world.declare_in_payments("payments-api", "api")
    world.declare(
        "legacy-app",
        namespace="legacy",
        serviceAccount="app",
        roleArn=role,
        target={"fleet": "prod"},
    )
    # and the table as the previous release wrote it.
    written = write_with_previous_release(previous_release, "payments-api", "legacy-app")
    assert written == {"clusters": ["blue", "green"]}
    old_status = world.record("CLUSTER#blue", "ASSOC#payments#api")
    assert old_status["owned"] is True
    assert old_status["state"] == "InSync"
    assert world.record("CLUSTER#blue", "ASSOC#legacy#app")["state"] == "Blocked"
    problems = world.record("DECL#legacy-app", "STATUS")["clusters"]
    assert set(problems) == {"blue"}  # named by name alone, as before
    ids_before = {
        cluster: {k: a["associationId"] for k, a in world.associations(cluster).items()}
        for cluster in ("blue", "green")
    }
    # and a reconcile queued before the upgrade, naming its cluster by name alone.
    world.client("sqs").send_message(
        QueueUrl=world.urls["reconcile"],
        MessageBody=json.dumps({"cluster": "green", "reason": "queued before the upgrade"}),
        MessageGroupId="green",
        MessageDeduplicationId="before-upgrade",
    )

    # When today's code handles that message, then runs its scheduled pass
    assert world.run_reconcile_queue() == 1
    world.reconcile_event(fixture_event("scheduled_event"))

    # Then nothing is left under the old keys
    for name in ("blue", "green"):
        old = world.table.query(
            KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": f"CLUSTER#{name}"}
        )["Items"]
        assert old == [], name
    # and every record is under the cluster's account, region and name, with nothing lost:
    status = world.record(cluster_pk("blue"), "ASSOC#payments#api")
    assert status["key"]["cluster"] == f"{ACCOUNT}/{REGION}/blue"
    assert status["owned"] is True
    assert status["state"] == "InSync"
    assert status["associationId"] == old_status["associationId"]
    assert world.record(cluster_pk("blue"), "ASSOC#legacy#app")["state"] == "Blocked"
    assert world.record(cluster_pk("green"), "ASSOC#payments#api")["owned"] is True
    assert world.record(cluster_pk("blue"), "MAP")["generation"] >= 7
    problems = world.record("DECL#legacy-app", "STATUS")["clusters"]
    assert set(problems) == {f"{ACCOUNT}/{REGION}/blue"}
    # and EKS still has exactly the associations it had: none recreated, none taken over.
    ids_after = {
        cluster: {k: a["associationId"] for k, a in world.associations(cluster).items()}
        for cluster in ("blue", "green")
    }
    assert ids_after == ids_before
    assert world.dead_letters() == []
