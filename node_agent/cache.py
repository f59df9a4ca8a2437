"""Credential cache: hashed-token keys, LRU bound, single flight, refresh ahead,
stale-if-error.

* N concurrent requests for one token make one upstream call: the first
  creates a future, the others await it and wake the instant it resolves.
* A hit inside the refresh window is served at once and starts one background
  refresh with the token of that request (tokens are never stored), so only
  identities that are still used get renewed.
* If a refresh fails transiently (throttling, 5xx, timeout), the cached
  credential keeps being served while it is valid; nothing is served with less
  than `min_remaining` seconds left, nor after the token that obtained it
  expires. If upstream answers that the identity is no longer entitled (the
  association was deleted, the role's trust refuses, the token is invalid),
  the cached credential is dropped at once: revocation is never served stale.
* Every upstream call (all its attempts) ends within the retry budget, well
  inside the SDKs' 2 s per attempt, so a client never retries over a call still
  running; a client that retries anyway joins the call in flight.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, KeysView
from dataclasses import dataclass
from datetime import UTC, datetime

from node_agent.credentials import Credentials
from node_agent.errors import AgentError
from node_agent.limits import TokenBucket
from node_agent.tokens import TokenClaims

log = logging.getLogger("podid.agent")
Fetch = Callable[[], Awaitable[Credentials]]


class Entry:
    __slots__ = (
        "namespace",
        "pod_uid",
        "refresh_at",
        "refreshing",
        "response",
        "service_account",
        "usable_until",
    )

    def __init__(
        self,
        response: bytes,
        usable_until: float,
        refresh_at: float,
        credentials: Credentials,
        pod_uid: str | None = None,
    ) -> None:
        self.response = response
        self.usable_until = usable_until
        self.refresh_at = refresh_at
        self.refreshing = False
        # interned: thousands of entries share a few namespaces and service accounts
        self.namespace = _interned(credentials.namespace)
        self.service_account = _interned(credentials.service_account)
        self.pod_uid = pod_uid


def _interned(text: str | None) -> str | None:
    return None if text is None else sys.intern(text)


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    coalesced: int = 0
    refreshes: int = 0
    refreshed: int = 0
    refresh_failures: int = 0
    reused_for_new_token: int = 0
    rate_limited: int = 0
    revocations: int = 0
    evictions: int = 0
    upstream_calls: int = 0
    upstream_errors: int = 0


# upstream answers meaning "this identity is not entitled (any more)": never served stale
REVOKED = frozenset({"AccessDenied", "ResourceNotFound", "InvalidToken", "ExpiredToken"})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    base_delay: float = 0.05
    max_delay: float = 0.4
    budget: float = 1.5  # every attempt ends by then: well inside the SDKs' 2 s
    attempt_timeout: float = 1.0  # how long one attempt may take (the backend's timeout)

    def delay(self, attempt: int) -> float:
        # full jitter: spreads a burst of throttled callers
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))  # noqa: S311


class CredentialCache:
    def __init__(
        self,
        *,
        max_entries: int,
        render: Callable[[Credentials], bytes],
        refresh_ahead: float = 1800.0,
        renew_after: float = 3 * 3600.0,
        min_remaining: float = 15.0,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        renewals: TokenBucket | None = None,
    ) -> None:
        # bound on upstream load from background renewals (first fetches: the caller's admit)
        self.renewals = renewals or TokenBucket(rate=3, burst=10)
        self._entries: OrderedDict[bytes, Entry] = OrderedDict()
        self._by_pod: dict[str, bytes] = {}  # pod uid -> key of its latest entry
        self._inflight: dict[bytes, asyncio.Future[Entry]] = {}
        self._render = render
        self.max_entries = max_entries
        self.refresh_ahead = refresh_ahead
        # renewed at least this often even if still valid: bounds how long a revoked
        # association is served from here (the first refresh that learns it drops it)
        self.renew_after = renew_after
        self.min_remaining = min_remaining
        self.retry = retry or RetryPolicy()
        self.clock = clock
        self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self._entries)

    # --- the hot path -------------------------------------------------------------
    def lookup(self, key: bytes) -> tuple[Entry | None, bool]:
        """A usable entry (moved to the LRU's fresh end) and whether it is due for a
        refresh, from one clock read; (None, False) on a miss."""
        entry = self._entries.get(key)
        if entry is None:
            return None, False
        now = self.clock()
        if entry.usable_until <= now:
            self._drop(key)
            return None, False
        self._entries.move_to_end(key)
        self.stats.hits += 1
        return entry, not entry.refreshing and entry.refresh_at <= now

    def _drop(self, key: bytes) -> None:
        entry = self._entries.pop(key)
        if entry.pod_uid and self._by_pod.get(entry.pod_uid) == key:
            del self._by_pod[entry.pod_uid]

    # --- misses and refreshes ------------------------------------------------------------
    def reuse_for_pod(
        self, key: bytes, claims: TokenClaims, token_expires_at: float
    ) -> Entry | None:
        """A newer (locally verified) token of a pod whose credential is cached."""
        pod_uid = claims.pod_uid or ""
        previous = self._by_pod.get(pod_uid)
        entry = self._entries.get(previous) if previous is not None else None
        if entry is None or entry.usable_until <= self.clock():
            return None
        if (entry.namespace, entry.service_account) != (claims.namespace, claims.service_account):
            return None
        alias = Entry(
            entry.response,
            min(entry.usable_until, token_expires_at),
            entry.refresh_at,
            _NO_CREDENTIALS,
            pod_uid,
        )
        alias.namespace, alias.service_account = entry.namespace, entry.service_account
        self._insert(key, alias)
        self.stats.reused_for_new_token += 1
        return alias

    @property
    def inflight_keys(self) -> KeysView[bytes]:
        return self._inflight.keys()

    def join(self, key: bytes) -> asyncio.Future[Entry] | None:
        """The upstream call already in flight for this token, if any (never cancel it:
        await it through asyncio.shield, or add a done callback)."""
        pending = self._inflight.get(key)
        if pending is None:
            return None
        self.stats.coalesced += 1
        return pending

    async def get(
        self,
        key: bytes,
        fetch: Fetch,
        token_expires_at: float,
        pod_uid: str | None = None,
        admit: Callable[[], Callable[[], None]] | None = None,
    ) -> Entry:
        """The cached entry, the call in flight, or a new call once `admit` (which
        raises to refuse, e.g. a rate limit) lets it start; what admit returns is
        called when the call ends."""
        entry, _ = self.lookup(key)
        if entry is not None:
            return entry
        pending = self.join(key)
        if pending is not None:
            return await asyncio.shield(pending)
        release = None
        if admit is not None:
            try:
                release = admit()
            except AgentError:
                self.stats.rate_limited += 1
                raise
        self.stats.misses += 1
        future: asyncio.Future[Entry] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            entry = self._store(key, await self._call(fetch), token_expires_at, pod_uid)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # consumed here: waiters re-raise it
            raise
        else:
            future.set_result(entry)
            return entry
        finally:
            del self._inflight[key]
            if release is not None:
                release()

    def refresh(self, key: bytes, entry: Entry, fetch: Fetch, token_expires_at: float) -> None:
        if not self.renewals.take():
            return  # over the renewal rate: a later hit will try again
        entry.refreshing = True
        self.stats.refreshes += 1
        asyncio.get_running_loop().create_task(self._refresh(key, entry, fetch, token_expires_at))

    async def _refresh(
        self, key: bytes, entry: Entry, fetch: Fetch, token_expires_at: float
    ) -> None:
        try:
            self._store(key, await self._call(fetch), token_expires_at, entry.pod_uid)
            self.stats.refreshed += 1
        except AgentError as error:
            self.stats.refresh_failures += 1
            if error.code in REVOKED:
                self._revoke(key, entry, error.code)
                return
            # stale-if-error (transient failures only): keep serving the current credential
            # while it is valid, and try again a minute later (with jitter), not on every hit
            entry.refresh_at = self.clock() + 60 + random.uniform(0, 60)  # noqa: S311
        finally:
            entry.refreshing = False

    def _revoke(self, key: bytes, entry: Entry, code: str) -> None:
        """Drop what upstream no longer grants: the whole service account when the
        association or the role's trust refuses it, the pod's entries when its token does."""
        if code in ("AccessDenied", "ResourceNotFound") and entry.namespace is not None:
            identity = (entry.namespace, entry.service_account)
            dropped = self.invalidate(lambda e: (e.namespace, e.service_account) == identity)
        else:
            pod = entry.pod_uid
            dropped = self.invalidate(
                lambda e: e is entry or (pod is not None and e.pod_uid == pod)
            )
        self.stats.revocations += 1
        log.warning("upstream revoked a cached identity", extra={"code": code, "dropped": dropped})

    async def _call(self, fetch: Fetch) -> Credentials:
        """One upstream call: jittered retries of transient errors, every attempt over by
        the budget (an attempt that could not finish in time is not started)."""
        deadline = time.monotonic() + self.retry.budget
        attempt = 0
        while True:
            self.stats.upstream_calls += 1
            try:
                return await asyncio.wait_for(fetch(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                self.stats.upstream_errors += 1
                raise AgentError(
                    504, "UpstreamTimeout", "the credentials backend did not answer in time"
                ) from None
            except AgentError as error:
                self.stats.upstream_errors += 1
                attempt += 1
                delay = self.retry.delay(attempt)
                late = time.monotonic() + delay + self.retry.attempt_timeout > deadline
                if not error.retryable or attempt >= self.retry.attempts or late:
                    raise
                await asyncio.sleep(delay)

    def _store(
        self,
        key: bytes,
        credentials: Credentials,
        token_expires_at: float,
        pod_uid: str | None = None,
    ) -> Entry:
        usable_until = min(credentials.expires_at - self.min_remaining, token_expires_at)
        if usable_until <= self.clock():
            raise AgentError(
                502, "CredentialsTooShort", "upstream returned credentials that expire too soon"
            )
        now = self.clock()
        refresh_at = max(
            now, min(credentials.expires_at - self.refresh_ahead, now + self.renew_after)
        )
        entry = Entry(self._render(credentials), usable_until, refresh_at, credentials, pod_uid)
        self._insert(key, entry)
        return entry

    def _insert(self, key: bytes, entry: Entry) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        if entry.pod_uid:
            self._by_pod[entry.pod_uid] = key
        while len(self._entries) > self.max_entries:
            evicted_key, evicted = self._entries.popitem(last=False)
            if evicted.pod_uid and self._by_pod.get(evicted.pod_uid) == evicted_key:
                del self._by_pod[evicted.pod_uid]
            self.stats.evictions += 1

    # --- invalidation ----------------------------------------------------------------------
    def invalidate(self, predicate: Callable[[Entry], bool]) -> int:
        doomed = [key for key, entry in self._entries.items() if predicate(entry)]
        for key in doomed:
            self._drop(key)
        return len(doomed)


_NO_CREDENTIALS = Credentials("", "", "", "", datetime.fromtimestamp(0, UTC))
