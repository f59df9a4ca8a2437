"""The cache's one lookup path (the fast path and the slow path share it) and the
agent's JSON log lines, without sockets."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from datetime import UTC, datetime

from node_agent.cache import CredentialCache
from node_agent.credentials import Credentials
from node_agent.logs import JsonFormatter

NOW = 1_000_000.0


def cache_at(clock: list[float]) -> CredentialCache:
    return CredentialCache(
        max_entries=10,
        render=lambda c: c.body(),
        refresh_ahead=1800,
        renew_after=3 * 3600,
        min_remaining=15,
        clock=lambda: clock[0],
    )


def stored(cache: CredentialCache, key: bytes, expires_in: float) -> None:
    credentials = Credentials(
        "AKID", "secret", "session", "123456789012", datetime.fromtimestamp(NOW + expires_in, UTC)
    )

    async def fetch() -> Credentials:
        return credentials

    asyncio.run(cache.get(key, fetch, token_expires_at=NOW + 86400))


def test_lookup_says_when_an_entry_is_due_and_drops_it_once_unusable() -> None:
    clock = [NOW]
    cache = cache_at(clock)
    assert cache.lookup(b"k") == (None, False)
    stored(cache, b"k", expires_in=3600)  # refresh due at 3600 - 1800 s
    entry, due = cache.lookup(b"k")
    assert (entry is not None, due) == (True, False)
    clock[0] = NOW + 1800
    entry, due = cache.lookup(b"k")
    assert (entry is not None, due) == (True, True)
    # a refresh under way: served, not due again
    assert entry is not None
    entry.refreshing = True
    assert cache.lookup(b"k") == (entry, False)
    # past usable (expiry minus min_remaining): a miss, and the entry is gone
    clock[0] = NOW + 3600 - 15
    assert cache.lookup(b"k") == (None, False)
    assert len(cache) == 0
    assert cache.stats.hits == 3


def test_log_lines_are_json_with_their_extra_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(service="podid-node-agent"))
    log = logging.getLogger("podid.test.json")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("upstream revoked %s", "it", extra={"code": "AccessDenied", "dropped": 2})
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "upstream revoked it"
    assert (first["level"], first["service"]) == ("WARNING", "podid-node-agent")
    assert (first["code"], first["dropped"]) == ("AccessDenied", 2)
    assert first["timestamp"].endswith("Z")
    assert second["exception_name"] == "ValueError"
    assert "boom" in second["exception"]
