"""The README says `pip install -e ".[sandbox]"` is what the sandbox needs:
in a virtualenv holding that extra and nothing else (no dev or infra
dependencies), `podid sandbox up` serves the tour's commands and stops."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.test_cli_sandbox import DECLARATION
from tests.kubectl import ROOT

UV = Path(sys.executable).with_name("uv")
# what the dev environment has and the sandbox extra must not need
NOT_IN_THE_EXTRA = ("pytest", "hypothesis", "aws_cdk", "cdk_nag", "mypy", "ruff")


def _run(*command: str, env: dict[str, str], timeout: float = 600) -> str:
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{command}: {done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_sandbox_runs_from_the_extra_the_readme_names(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "TABLE_NAME", "MOTO", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(PODID_HOME=str(tmp_path / "home"), COLUMNS="200")
    venv = tmp_path / "venv"
    # Given a fresh virtualenv with only the sandbox extra (uv: from its cache when warm)
    _run(str(UV), "venv", "--quiet", "--python", sys.executable, str(venv), env=env)
    _run(
        str(UV), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
        "-e", f"{ROOT}[sandbox]", env=env,
    )  # fmt: skip
    python = str(venv / "bin" / "python")
    for module in NOT_IN_THE_EXTRA:
        probe = subprocess.run([python, "-c", f"import {module}"], capture_output=True, check=False)
        assert probe.returncode != 0, f"{module} is installed: the check would prove nothing"
    podid = str(venv / "bin" / "podid")
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"

    # When the tour starts the sandbox with that venv's `podid`
    up = subprocess.Popen(
        [podid, "sandbox", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        state = Path(env["PODID_HOME"]) / "sandbox.json"
        deadline = time.monotonic() + 120
        while not state.exists():
            assert up.poll() is None, up.communicate()[0]
            assert time.monotonic() < deadline, "sandbox did not come up"
            time.sleep(0.2)
        # Then a declaration lands on the fleet's clusters, in sync
        declaration = tmp_path / "payments.yaml"
        declaration.write_text(DECLARATION)
        _run(podid, "declare", "--file", str(declaration), env=env, timeout=120)
        waited = _run(podid, "wait", "payments-api", "--timeout", "90", env=env, timeout=150)
        assert "blue: InSync" in waited
        assert "green: InSync" in waited
        # And `sandbox down` stops it cleanly
        _run(podid, "sandbox", "down", env=env, timeout=60)
        output, _ = up.communicate(timeout=60)
        assert up.returncode == 0, output
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        shutil.rmtree(venv, ignore_errors=True)
