"""The demo scenario, as `make demo` runs it (its own process: the sandbox
owns the environment, as on a laptop)."""

import subprocess
import sys


def test_the_demo_runs_every_step_and_checks_it() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sandbox.demo"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = " ".join((result.stdout + result.stderr).split())  # rich wraps lines
    assert result.returncode == 0, output
    assert "All checks passed." in output
    for outcome in (
        "associations on blue and green",
        "maps pushed to both clusters",
        "outside the role scope /pod-identity/) -> refused",
        "repaired (ec2 principal kept)",
        "healed as a-",
        "zero edits",
        "assumed-role/payments-api/eks-teal-api-demo",
        "amber enrolled, zero edits in the hub",
        "bound to each account's own role",
        "map pushed through the spoke role",
        "no externalId -> PI071, wrong externalId -> PI070 (EKS Auth refuses the pod)",
        "from podid status -> no finding, pod gets central-ledger",
    ):
        assert outcome in output, outcome
