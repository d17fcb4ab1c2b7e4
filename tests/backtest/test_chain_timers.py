"""Chain timers on a fresh EventClock start at the first record's event time."""

from __future__ import annotations

from typing import Any

from agkit.runner import Chain
from agkit.stage import Out, Stage, Timer

T0 = 1_767_225_600_000_000


class Ticker(Stage):
    name = "ticker"

    def __init__(self) -> None:
        self.fired: list[int] = []

    def timers(self) -> list[Timer]:
        return [Timer(1000, self.tick)]

    def tick(self) -> Out:
        self.fired.append(self.ctx.clock.now_us())
        return None


def test_timers_start_at_the_first_record_not_at_zero() -> None:
    t = Ticker()
    recs: list[dict[str, Any]] = [
        {"type": "x", "ts_event": T0, "ts_init": 0},
        {"type": "x", "ts_event": T0 + 2500, "ts_init": 0},
    ]
    out = list(Chain([t]).process(recs))  # a clock at 0 used to fire ~1.8e12 times here
    assert len(out) == 2
    assert t.fired == [T0, T0 + 1000, T0 + 2000]  # on the grid of the clock, from the first record
