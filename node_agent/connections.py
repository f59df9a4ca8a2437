"""Every open credentials connection: caps, timeouts, and a metric and a log line
whenever one bites, so no client can hold the agent's sockets or starve others.

* per peer address: at most `max_per_peer` connections; one more is answered
  503 and closed (a pod, not the node, is refused);
* overall: at most `max_total` (kept below the process's fd limit); one more
  closes the oldest connection that is not waiting on upstream, so an idle
  flood costs its own oldest sockets, never a new client's;
* timeouts, checked once a second with a tick counter (no clock read and no
  timer per request on the hot path): a request head (and a fresh
  connection's first request) must arrive within `head_timeout`, a keep-alive
  connection is closed after `idle_timeout` without a request.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

log = logging.getLogger("podid.agent")
REASONS = ("peer_cap", "total_cap", "head_timeout", "idle_timeout", "head_too_large")
LOG_EVERY_SECONDS = 10.0


class Connection(Protocol):
    peer: str
    busy: bool  # waiting on upstream: never timed out nor evicted
    last_tick: int  # when it last received bytes or finished an answer
    head_tick: int  # when its unfinished request head started, -1 when none
    answered: int

    def close_for(self, reason: str) -> None: ...


class Connections:
    def __init__(
        self, *, max_total: int, max_per_peer: int, head_timeout: float, idle_timeout: float
    ) -> None:
        self.max_total = max_total
        self.max_per_peer = max_per_peer
        self.head_timeout = head_timeout
        self.idle_timeout = idle_timeout
        self.tick = 0
        self._open: dict[Connection, None] = {}  # insertion order: oldest first
        self._per_peer: dict[str, int] = {}
        self.closed = dict.fromkeys(REASONS, 0)
        self._unlogged = dict.fromkeys(REASONS, 0)
        self._logged_at = dict.fromkeys(REASONS, 0.0)

    def __len__(self) -> int:
        return len(self._open)

    def admit(self, connection: Connection) -> bool:
        """Register a new connection; False when it must be refused (its peer is over cap)."""
        count = self._per_peer.get(connection.peer, 0)
        if count >= self.max_per_peer:
            self.bit("peer_cap")
            return False
        if len(self._open) >= self.max_total:
            victim = next((c for c in self._open if not c.busy), None)
            if victim is None:
                self.bit("total_cap")
                return False
            self.bit("total_cap")
            victim.close_for("total_cap")  # calls release()
        self._open[connection] = None
        self._per_peer[connection.peer] = self._per_peer.get(connection.peer, 0) + 1
        return True

    def release(self, connection: Connection) -> None:
        if connection in self._open:
            del self._open[connection]
            left = self._per_peer[connection.peer] - 1
            if left:
                self._per_peer[connection.peer] = left
            else:
                del self._per_peer[connection.peer]

    def sweep(self) -> None:
        """Called once a second: close connections past their timeout."""
        self.tick += 1
        head_limit, idle_limit, tick = self.head_timeout, self.idle_timeout, self.tick
        expired: list[tuple[Connection, str]] = []
        for connection in self._open:
            if connection.busy:
                continue
            if connection.head_tick >= 0:
                if tick - connection.head_tick > head_limit:
                    expired.append((connection, "head_timeout"))
            elif connection.answered == 0:
                if tick - connection.last_tick > head_limit:
                    expired.append((connection, "head_timeout"))
            elif tick - connection.last_tick > idle_limit:
                expired.append((connection, "idle_timeout"))
        for connection, reason in expired:
            self.bit(reason)
            connection.close_for(reason)

    def close_all(self) -> None:
        for connection in list(self._open):
            if not connection.busy:
                connection.close_for("idle_timeout")

    def bit(self, reason: str) -> None:
        """Count a limit that bit; log it, at most once per reason every 10 s."""
        self.closed[reason] += 1
        self._unlogged[reason] += 1
        now = time.monotonic()
        if now - self._logged_at[reason] >= LOG_EVERY_SECONDS:
            level = logging.INFO if reason == "idle_timeout" else logging.WARNING
            log.log(
                level,
                "connection limit applied",
                extra={"reason": reason, "count": self._unlogged[reason], "open": len(self)},
            )
            self._logged_at[reason], self._unlogged[reason] = now, 0
