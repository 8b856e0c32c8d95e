"""The injected clock. Core modules never call `time.time()` or `datetime.now()` themselves, so tests
can run a day of a site in milliseconds and a property test can replay any ordering of events."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """UTC epoch seconds."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards; for deadlines and durations only."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._mono = 0.0

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("FakeClock only moves forward; use set() to model a clock jump")
        self._now += seconds
        self._mono += seconds

    def set(self, epoch_s: float) -> None:
        """Jump the wall clock (NTP step, RTC reset) without touching the monotonic one."""
        self._now = epoch_s
