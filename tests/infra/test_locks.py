"""Each deployable installs from a lock with hashes that matches pyproject."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from infra import functions, locks
from infra.bundling import PIP_PLATFORM, asset_hash


@pytest.mark.parametrize("name", sorted(locks.LOCKS_BY_NAME))
def test_lock_matches_pyproject(name: str) -> None:
    problem = locks.stale(locks.LOCKS_BY_NAME[name])
    assert problem is None, problem


@pytest.mark.parametrize("name", sorted(locks.LOCKS_BY_NAME))
def test_every_pin_carries_a_hash(name: str) -> None:
    text = locks.LOCKS_BY_NAME[name].path.read_text()
    entries = [e for e in text.replace("\\\n", " ").splitlines() if "==" in e]
    assert entries
    assert all("--hash=sha256:" in entry for entry in entries)


def test_a_changed_range_makes_the_lock_stale(tmp_path: Path) -> None:
    # Given pyproject with one range narrowed after the lock was written
    pyproject = tmp_path / "pyproject.toml"
    original = (locks.ROOT / "pyproject.toml").read_text()
    pyproject.write_text(original.replace('"boto3>=1.35,<2"', '"boto3>=1.36,<2"'))
    lock = locks.LOCKS_BY_NAME["lambda"]
    # Then the inputs no longer hash to what the lock recorded
    assert locks.inputs_hash(lock, pyproject) != locks.recorded_hash(lock.path)
    assert locks.inputs_hash(lock, locks.ROOT / "pyproject.toml") == locks.recorded_hash(lock.path)


def test_stale_names_the_refresh_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lock = locks.LOCKS_BY_NAME["lambda"]
    copy = tmp_path / "lambda.txt"
    shutil.copy(lock.path, copy)
    copy.write_text(copy.read_text().replace(locks.HEADER, locks.HEADER + "0", 1))
    monkeypatch.setattr(locks, "LOCKS", tmp_path)
    monkeypatch.setattr(locks, "ROOT", tmp_path)
    problem = locks.stale(lock)
    assert problem is not None
    assert "make lock" in problem


def test_only_the_push_lock_holds_kubernetes() -> None:
    assert "kubernetes" in locks.pins(locks.LOCKS_BY_NAME["lambda-push"].path)
    for name in ("lambda", "agent"):
        assert "kubernetes" not in locks.pins(locks.LOCKS_BY_NAME[name].path)


def test_agent_lock_has_no_tracer_nor_boto3() -> None:
    pinned = locks.pins(locks.LOCKS_BY_NAME["agent"].path)
    assert "aws-xray-sdk" not in pinned
    assert "boto3" not in pinned


def test_agent_lock_holds_no_lambda_toolkit_nor_kubernetes_client() -> None:
    pinned = locks.pins(locks.LOCKS_BY_NAME["agent"].path)
    assert not {"aws-lambda-powertools", "aws-xray-sdk", "kubernetes", "boto3"} & set(pinned)


def test_map_sync_lock_holds_the_kubernetes_client_without_its_asyncio_part() -> None:
    pinned = locks.pins(locks.LOCKS_BY_NAME["map-sync"].path)
    assert "kubernetes" in pinned
    assert not {"aiohttp", "aiohttp-retry", "aws-lambda-powertools", "boto3"} & set(pinned)


def test_the_lock_command_refreshes_only_the_named_locks(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[str] = []
    monkeypatch.setattr(locks, "compile_lock", lambda lock: compiled.append(lock.name))
    monkeypatch.setattr(locks, "pins", lambda _path: {})
    locks.main(["map-sync"])
    assert compiled == ["map-sync"]
    with pytest.raises(SystemExit, match="no such lock: nope"):
        locks.main(["nope"])


def test_lambda_locks_are_for_the_deployed_runtime() -> None:
    runtime_python = functions.RUNTIME.name.removeprefix("python")
    assert runtime_python == locks.LAMBDA_PYTHON
    assert PIP_PLATFORM == "manylinux2014_aarch64"


def test_asset_hash_follows_the_resolved_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the same requirement strings but a different resolution (one pin moved)
    lock = locks.LOCKS_BY_NAME["lambda"]
    before = asset_hash(lock)
    moved = tmp_path / "lambda.txt"
    moved.write_text(lock.path.read_text().replace("boto3==", "boto3===", 1))
    monkeypatch.setattr(locks.Lock, "path", property(lambda _self: moved))
    # Then the asset is a different one and CDK uploads it
    assert asset_hash(lock) != before
