"""Delivery of the map to the real pod identity webhook (v0.6.17 binary).

The webhook reloads its container-credentials file only on a file event named
exactly like the configured path. These tests reproduce the kubelet's
ConfigMap volume layout and its update (a new timestamped directory, a
`..data_tmp` symlink renamed onto `..data`, the old directory removed) to show
that a mounted map change is never seen, and show that the shipped map-sync
(rename onto the exact path) is.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from functions.kube.webhook_sync import MapFileSync, write_atomically
from tests.realwebhook.webhook import RealWebhook, injected_env, injected_volumes, pod

FULL_URI = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
TOKEN_FILE = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"
# the webhook reloads within milliseconds of an event it acts on; this is ample
RELOAD_WAIT = 3.0


def identities(*pairs: tuple[str, str]) -> str:
    return json.dumps({"identities": [{"namespace": n, "serviceAccount": s} for n, s in pairs]})


def kubelet_mount(volume: Path, files: dict[str, str]) -> None:
    """A ConfigMap volume as the kubelet's atomic writer lays it out."""
    volume.mkdir(parents=True)
    kubelet_update(volume, files)
    for name in files:
        os.symlink(f"..data/{name}", volume / name)


def kubelet_update(volume: Path, files: dict[str, str]) -> None:
    """The kubelet's update: write a new timestamped directory, point a
    `..data_tmp` symlink at it, rename that onto `..data`, drop the old one."""
    stamp = datetime.now(UTC).strftime("..%Y_%m_%d_%H_%M_%S.%f")
    fresh = volume / stamp
    fresh.mkdir()
    for name, content in files.items():
        (fresh / name).write_text(content)
    old = os.readlink(volume / "..data") if (volume / "..data").is_symlink() else None
    os.symlink(stamp, volume / "..data_tmp")
    os.rename(volume / "..data_tmp", volume / "..data")
    if old:
        shutil.rmtree(volume / old)


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> float:
    """Seconds until `check` held; AssertionError on timeout."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.02)
    return time.monotonic() - start


def injects(webhook: RealWebhook, namespace: str, service_account: str) -> bool:
    return FULL_URI in injected_env(webhook.mutate(pod("p", namespace, service_account)))


@pytest.fixture
def start_webhook() -> Iterator[Callable[[Path], RealWebhook]]:
    started: list[RealWebhook] = []

    def start(path: Path) -> RealWebhook:
        webhook = RealWebhook.start(path)
        started.append(webhook)
        return webhook

    yield start
    for webhook in started:
        webhook.stop()


def test_a_mounted_configmap_update_is_never_seen_by_the_webhook(
    tmp_path: Path, start_webhook: Callable[[Path], RealWebhook]
) -> None:
    # Given the map mounted as a ConfigMap volume, read by the webhook at start
    volume = tmp_path / "map"
    kubelet_mount(volume, {"identities.json": identities(("payments", "api"))})
    webhook = start_webhook(volume / "identities.json")
    wait_for(lambda: injects(webhook, "payments", "api"))

    # When the kubelet swaps in a map that adds orders/worker
    kubelet_update(
        volume, {"identities.json": identities(("payments", "api"), ("orders", "worker"))}
    )
    assert "worker" in (volume / "identities.json").read_text()  # the file system shows it

    # Then the webhook never sees it: no event carries the file's name
    time.sleep(RELOAD_WAIT)
    assert not injects(webhook, "orders", "worker")
    assert injects(webhook, "payments", "api")

    # while a rename onto the exact path (what map-sync does) is seen at once
    renamed = identities(("payments", "api"), ("orders", "worker"), ("orders", "batch"))
    assert write_atomically(str(volume / "identities.json"), renamed)
    wait_for(lambda: injects(webhook, "orders", "batch"), timeout=RELOAD_WAIT)
    assert injects(webhook, "orders", "worker")


def test_map_sync_renames_each_pushed_map_onto_the_watched_file_and_the_webhook_reloads(
    tmp_path: Path, start_webhook: Callable[[Path], RealWebhook]
) -> None:
    # Given the webhook watching the file map-sync writes, with nothing pushed yet
    shared = tmp_path / "run"
    shared.mkdir()
    path = shared / "identities.json"
    sync = MapFileSync(core=None, namespace="kube-system", name="m", path=str(path))
    sync.apply(SimpleNamespace(data=None))  # the ConfigMap exists, the push has not run
    assert path.read_text() == ""
    webhook = start_webhook(path)
    assert not injects(webhook, "payments", "api")

    # When a push adds payments/api
    sync.apply(SimpleNamespace(data={"identities.json": identities(("payments", "api"))}))

    # Then new pods of that service account get the credentials, with the token
    # volume for audience pods.eks.amazonaws.com
    seconds = wait_for(lambda: injects(webhook, "payments", "api"), timeout=RELOAD_WAIT)
    patch = webhook.mutate(pod("p", "payments", "api"))
    env = injected_env(patch)
    assert env[FULL_URI] == "http://169.254.170.23/v1/credentials"
    assert env[TOKEN_FILE] == (
        "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token"
    )
    volume = next(v for v in injected_volumes(patch) if v["name"] == "eks-pod-identity-token")
    token = volume["projected"]["sources"][0]["serviceAccountToken"]
    assert token["audience"] == "pods.eks.amazonaws.com"
    print(f"map-sync: the webhook served a pushed identity {seconds * 1000:.0f} ms after the write")

    # When a push removes it again
    sync.apply(SimpleNamespace(data={"identities.json": identities(("orders", "worker"))}))
    wait_for(lambda: not injects(webhook, "payments", "api"), timeout=RELOAD_WAIT)
    assert injects(webhook, "orders", "worker")

    # A document the webhook would refuse is never written: the last good one stays
    writes = sync.writes
    sync.apply(SimpleNamespace(data={"identities.json": '{"identities": "all"}'}))
    assert sync.writes == writes
    assert "worker" in path.read_text()
    assert injects(webhook, "orders", "worker")
    # and an unchanged map is not rewritten (no needless reload)
    sync.apply(SimpleNamespace(data={"identities.json": identities(("orders", "worker"))}))
    assert sync.writes == writes
    assert not [p for p in shared.iterdir() if p.name.startswith(".podid-sync-")]
