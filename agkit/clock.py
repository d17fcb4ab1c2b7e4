"""Clocks. Stages read time from one of these, never from `time` directly."""

from __future__ import annotations

import time

# A ts_event past this (2100-01-01) is not a time in microseconds (nanoseconds by
# mistake, or garbage): it moves no event clock, and stages that read time refuse it.
MAX_TS_US = 4_102_444_800_000_000
# After a gap in the data, a timer fires for at most this many of the intervals it
# missed, the last ones: a weekend between two recordings must not replay 172,800
# one-second ticks of a market that did not change (it took gigabytes), nor a bogus
# timestamp billions of them.
MAX_CATCH_UP = 3600


def resume_after_gap(due: int, interval_us: int, until: int) -> int:
    """When a timer due at `due` resumes as a record at `until` ends a gap: on its own
    schedule, at most MAX_CATCH_UP intervals before `until`."""
    due_by_until = (until - due) // interval_us + 1  # times it would fire
    if due_by_until > MAX_CATCH_UP:
        due += (due_by_until - MAX_CATCH_UP) * interval_us
    return due


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
