"""What each entry point loads, measured in a fresh interpreter (the way a
Lambda cold start or `cdk synth` meets it): a package that never imports the
Kubernetes client can ship without it, and synth needs no AWS SDK."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("kubernetes", "boto3", "botocore", "aws_lambda_powertools")
PROBE = (
    "import importlib, json, sys; importlib.import_module(sys.argv[1]); "
    "print(json.dumps(sorted(sys.modules)))"
)


def loaded_by(module: str) -> set[str]:
    """The top-level packages importing `module` cold loads."""
    return {m.split(".")[0] for m in modules_loaded_by(module)}


def modules_loaded_by(module: str) -> set[str]:
    """Every module importing `module` cold loads, by full name."""
    env = {
        **os.environ,
        "TABLE_NAME": "podid-test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE, module],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return set(json.loads(result.stdout))


@pytest.mark.parametrize("name", ["sync", "reconcile", "trust_guard"])
def test_handlers_without_kubernetes_never_load_it(name: str) -> None:
    # Given a handler that never talks to a cluster
    # When it is imported cold
    top_level = loaded_by(f"functions.handlers.{name}")
    # Then the Kubernetes client stays out (its package does not hold it)
    assert "kubernetes" not in top_level


# what a cold start once paid for and no handler uses (README, "Lambda packages
# and cold starts"): the X-Ray SDK behind Powertools' Tracer (Powertools itself
# imports the Tracer class, which loads the SDK only when made), pydantic-settings,
# Powertools' parser models and batch utility (every event source's data classes)
NOT_AT_COLD_START = (
    "aws_xray_sdk",
    "pydantic_settings",
    "aws_lambda_powertools.utilities.parser",
    "aws_lambda_powertools.utilities.batch",
    "aws_lambda_powertools.utilities.data_classes",
)


@pytest.mark.parametrize("name", ["sync", "reconcile", "trust_guard", "webhook_push"])
def test_handlers_load_nothing_they_do_not_use(name: str) -> None:
    loaded = modules_loaded_by(f"functions.handlers.{name}")
    found = sorted(
        m for m in loaded if any(m == p or m.startswith(p + ".") for p in NOT_AT_COLD_START)
    )
    assert found == [], found


def test_webhook_push_loads_the_synchronous_kubernetes_client_only() -> None:
    # the push does use it: loading it at import keeps the cost in the init phase
    full = modules_loaded_by("functions.handlers.webhook_push")
    assert "kubernetes" in full
    # its package leaves out kubernetes.aio and aiohttp (infra/bundling.py PRUNE,
    # infra/locks.py excludes): nothing may come to need them
    assert not any(m == "aiohttp" or m.startswith("aiohttp.") for m in full)
    assert not any(m.startswith("kubernetes.aio") for m in full)


def test_event_patterns_are_constants_only() -> None:
    # Given the patterns the deployed rules are synthesised from
    top_level = loaded_by("functions.event_patterns")
    # Then importing them loads no SDK, Powertools or Kubernetes client
    assert not top_level & set(HEAVY), top_level & set(HEAVY)


def test_synth_loads_no_aws_sdk_nor_kubernetes() -> None:
    top_level = loaded_by("infra.stack")
    assert not top_level & {"kubernetes", "boto3", "aws_lambda_powertools"}


def test_cli_help_loads_only_what_it_shows() -> None:
    # Given `podid --help` in a fresh interpreter
    probe = (
        "import json, sys; sys.argv = ['podid', '--help']\n"
        "from cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(result.stdout.strip().splitlines()[-1]))
    # Then no AWS SDK, no validation library, no YAML parser, no domain models, no flows:
    # each command loads those when it runs
    assert not loaded & {
        "botocore",
        "boto3",
        "pydantic",
        "yaml",
        "functions.core.models",
        "functions.flows.services",
    }
