"""Token buckets: bound how fast new identities and renewals hit upstream.

New identities are limited per source (the pod's address) and overall, so one
pod flooding the agent exhausts only its own bucket, never another pod's first
request; and a source may have only a few upstream calls running at once, so
it cannot hold the upstream threads either. A token is spent only after the
request passed every local check."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class TokenBucket:
    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate, self.burst, self._clock = rate, burst, clock
        self._tokens, self._stamp = burst, clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def give_back(self) -> None:
        self._tokens = min(self.burst, self._tokens + 1)


class SourceLimiter:
    """A bucket per source (LRU-bounded) in front of one global bucket."""

    def __init__(
        self,
        *,
        rate: float,
        burst: float,
        per_source_rate: float,
        per_source_burst: float,
        per_source_calls: int = 4,
        max_sources: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.overall = TokenBucket(rate, burst, clock)
        self._per_source = (per_source_rate, per_source_burst)
        self._sources: OrderedDict[str, TokenBucket] = OrderedDict()
        self._max_sources = max_sources
        self._clock = clock
        self._per_source_calls = per_source_calls
        self.calls: dict[str, int] = {}  # upstream calls running, per source
        self.refused = {"source": 0, "overall": 0, "source_calls": 0}

    def admit(self, source: str) -> str | None:
        """None when admitted (the caller then owes a `done(source)`), else which limit
        refused: "source_calls", "source" or "overall"."""
        running = self.calls.get(source, 0)
        if running >= self._per_source_calls:
            self.refused["source_calls"] += 1
            return "source_calls"
        bucket = self._sources.get(source)
        if bucket is None:
            bucket = TokenBucket(*self._per_source, self._clock)
            self._sources[source] = bucket
            if len(self._sources) > self._max_sources:
                self._sources.popitem(last=False)
        else:
            self._sources.move_to_end(source)
        if not bucket.take():
            self.refused["source"] += 1
            return "source"
        if not self.overall.take():
            bucket.give_back()  # the source did not get its call: keep its share
            self.refused["overall"] += 1
            return "overall"
        self.calls[source] = running + 1
        return None

    def done(self, source: str) -> None:
        left = self.calls[source] - 1
        if left:
            self.calls[source] = left
        else:
            del self.calls[source]
