"""Clocks. Stages read time from one of these, never from `time` directly."""

from __future__ import annotations

import time


class Clock:
    """Wall clock in integer microseconds."""

    def now_us(self) -> int:
        return time.time_ns() // 1000


class EventClock(Clock):
    """Time as the stream tells it: advanced by the runner to each record's ts_event."""

    def __init__(self, start_us: int = 0) -> None:
        self._now = start_us

    def now_us(self) -> int:
        return self._now

    def advance(self, ts_us: int) -> None:
        if ts_us > self._now:
            self._now = ts_us
