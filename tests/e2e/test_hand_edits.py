"""Five kinds of hand edit in the sandbox, each healed within one delivery
(the scenario is tests/e2e/hand_edits.py, run in its own process)."""

import subprocess
import sys


def test_five_hand_edits_are_each_healed_within_one_delivery() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.e2e.hand_edits"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all hand edits healed" in result.stdout
