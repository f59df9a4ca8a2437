"""Fault injection for tests: make the next N calls of an operation fail
(throttling, 5xx) or take longer."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass

from sandbox.eks_emulation.errors import EmulatedError


@dataclass
class _Fault:
    code: str
    status: int
    remaining: int
    message: str


class FaultInjector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, list[_Fault]] = defaultdict(list)
        self._delays: dict[str, list[float]] = defaultdict(list)
        # how many injected faults each operation raised: a fault test asserts it fired
        self.fired: dict[str, int] = defaultdict(int)

    def inject(
        self,
        operation: str,
        code: str = "ThrottlingException",
        *,
        status: int = 429,
        times: int = 1,
        message: str = "Rate exceeded",
    ) -> None:
        with self._lock:
            self._faults[operation].append(_Fault(code, status, times, message))

    def slow_down(self, operation: str, seconds: float, *, times: int = 1) -> None:
        """Make the next N calls of an operation take `seconds` longer (latency)."""
        with self._lock:
            self._delays[operation].extend([seconds] * times)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._delays.clear()
            self.fired.clear()

    def check(self, operation: str) -> None:
        """Delay and fail this call as injected when it arrived: a slowed call still
        sleeping when the next test clears and injects faults does not take them."""
        with self._lock:
            delays = self._delays.get(operation)
            delay = delays.pop(0) if delays else 0.0
            fault = self._take(operation)
        if delay:
            time.sleep(delay)
        if fault is not None:
            raise EmulatedError(fault.code, fault.status, fault.message)

    def _take(self, operation: str) -> _Fault | None:
        queue = self._faults.get(operation)
        if not queue:
            return None
        fault = queue[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            queue.pop(0)
        self.fired[operation] += 1
        return fault


FAULTS = FaultInjector()
