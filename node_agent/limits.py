"""Token buckets: bound how fast new identities and renewals hit upstream.

New identities are limited per source (the pod's address) and overall, so one
pod flooding the agent exhausts only its own bucket, never another pod's first
request. A token is spent only after the request passed every local check."""

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
        max_sources: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.overall = TokenBucket(rate, burst, clock)
        self._per_source = (per_source_rate, per_source_burst)
        self._sources: OrderedDict[str, TokenBucket] = OrderedDict()
        self._max_sources = max_sources
        self._clock = clock
        self.refused = {"source": 0, "overall": 0}

    def admit(self, source: str) -> str | None:
        """None when admitted, else which limit refused ("source" or "overall")."""
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
        return None
