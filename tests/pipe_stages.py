"""Tiny stages the runner tests run as real processes: `python -m tests.pipe_stages NAME [args]`."""

from __future__ import annotations

import sys
from typing import Any

from agkit.runner import run_stage
from agkit.stage import Out, Stage, Timer


class Strategy(Stage):
    """Orders one share per `tick`; counts the fills that come back around."""

    name = "test-strategy"
    consumes = frozenset({"tick", "order_filled"})

    def __init__(self) -> None:
        self.fills = 0
        self.n = 0

    def on_record(self, rec: dict[str, Any]) -> Out:
        if rec["type"] == "order_filled":
            self.fills += 1
            return (rec,)
        self.n += 1
        order = {
            "type": "submit_order",
            "ts_event": rec["ts_event"],
            "ts_init": rec["ts_event"],
            "id": f"o{self.n}",
        }
        return (rec, order)

    def stop(self) -> Out:
        return (
            {
                "type": "metric",
                "ts_event": 0,
                "ts_init": 0,
                "name": "fills_seen",
                "kind": "counter",
                "value": self.fills,
                "labels": {},
            },
        )


class Exec(Stage):
    """Fills every order at once: an accepted and a filled event per submit_order."""

    name = "test-exec"
    consumes = frozenset({"submit_order"})

    def on_record(self, rec: dict[str, Any]) -> Out:
        ts = rec["ts_event"]
        return (
            {
                "type": "order_accepted",
                "ts_event": ts,
                "ts_init": ts,
                "id": rec["id"],
                "venue_order_id": "v" + rec["id"],
            },
            {
                "type": "order_filled",
                "ts_event": ts,
                "ts_init": ts,
                "id": rec["id"],
                "trade_id": "t" + rec["id"],
            },
        )


class Ticker(Stage):
    """A source: `count` heartbeat records from a timer, then it ends."""

    name = "test-ticker"
    reads_input = False

    def __init__(self, count: int, kind: str = "heartbeat") -> None:
        self.left = count
        self.kind = kind

    def timers(self) -> list[Timer]:
        return [Timer(2000, self.tick)]

    def tick(self) -> Out:
        if self.left <= 0:
            return None
        self.left -= 1
        return ({"type": self.kind, "ts_event": 100 - self.left, "ts_init": 0},)

    async def run(self, ctx: Any) -> None:
        import asyncio

        while self.left > 0:
            await asyncio.sleep(0.005)


def main() -> int:
    name, args = sys.argv[1], sys.argv[2:]
    kwargs: dict[str, Any] = {}
    if "--merge" in args:
        kwargs["merge"] = [args[args.index("--merge") + 1]]
    if "--feedback" in args:
        kwargs["feedback"] = args[args.index("--feedback") + 1]
    if name == "ticker":
        stage: Stage = Ticker(int(args[0]))
    elif name == "chain":  # the same stages in one process, fed by a source with a timer
        from agkit.clock import Clock
        from agkit.runner import Chain

        stage = Chain(
            [Ticker(int(args[0]), "tick"), Strategy(), Exec()], feedback_from=2, clock=Clock()
        )
    else:
        stage = {"strategy": Strategy, "exec": Exec}[name]()
    return run_stage(stage, **kwargs)


if __name__ == "__main__":
    sys.exit(main())
