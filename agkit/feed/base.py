"""What every feed source shares: output with back-pressure, `--record FILE`, metrics.

A feed is a `Stage` with `reads_input = False` whose `async run(ctx)` emits records.
Sources can produce far faster than a pipe drains, so a feed must not grow its output
buffer without bound: `SourceStage.wait_writable()` waits while the runner's stdout
backlog is above the high-water mark, and `backlogged()` tells a live feed to conflate.
Everything goes through the stage Context (emit, emit_raw, backlog, flush). Under a
runner with an output buffer (PipeRunner) encoded lines are written as they are, several
per call; under one without (Chain) they are decoded one by one.
"""

from __future__ import annotations

import asyncio
import gzip
from typing import IO, Any


from agkit.records import Record
from agkit.stage import Context, Out, Rec, Stage
from agkit.stream import encode

HIGH_WATER = 4 << 20  # bytes waiting for stdout above which a source waits
CONFLATE_WATER = 256 << 10  # bytes waiting above which a live feed conflates books


def open_record_file(path: str) -> IO[bytes]:
    """The `--record FILE` writer (`.gz` compresses)."""
    if path.endswith(".gz"):
        return gzip.open(path, "wb", compresslevel=5)  # type: ignore[return-value]
    return open(path, "wb", buffering=1 << 16)


class SourceStage(Stage):
    """Base of the feed stages: emit, emit raw lines, record, back-pressure."""

    reads_input = False

    def __init__(self, record: str | None = None) -> None:
        self.record_path = record
        self._rec_file: IO[bytes] | None = None
        self.raw_output = False

    def start(self, ctx: Context) -> Out:
        self.ctx = ctx
        # Context gives no public way to ask whether emit_raw writes bytes or decodes them
        self.raw_output = getattr(ctx, "_emit_raw", None) is not None
        if self.record_path:
            self._rec_file = open_record_file(self.record_path)
        return None

    # -- output -------------------------------------------------------------------

    def emit(self, rec: Rec) -> None:
        self.ctx.emit(rec)
        if self._rec_file is not None:
            self._rec_file.write(encode(rec))

    def emit_raw(self, line: bytes) -> None:
        """Forward a line exactly as it was recorded (no newline in `line`)."""
        self.ctx.emit_raw(line)
        if self._rec_file is not None:
            self._rec_file.write(line + b"\n")

    def emit_lines(self, lines: list[bytes]) -> None:
        """Forward several encoded lines (no newlines in them) at the cost of one."""
        if self.raw_output:
            self.emit_raw(b"\n".join(lines))
        else:
            for line in lines:
                self.emit_raw(line)

    def backlog(self) -> int:
        """Bytes emitted but not yet taken by stdout's reader."""
        return self.ctx.backlog()

    def backlogged(self) -> bool:
        return self.backlog() > CONFLATE_WATER

    def flush_now(self) -> None:
        """Write what stdout accepts now (used before sleeping)."""
        self.ctx.flush()

    async def wait_writable(self) -> None:
        """Let the loop run; while the downstream reader lags, wait for it (bounded memory)."""
        await asyncio.sleep(0)
        while self.backlog() > HIGH_WATER:
            await asyncio.sleep(0.002)

    def flush_record(self) -> None:
        if self._rec_file is not None:
            self._rec_file.flush()

    def stop(self) -> Out:
        if self._rec_file is not None:
            self._rec_file.close()
            self._rec_file = None
        return None


class FeedMetrics:
    """Counters behind the `metric` records a feed emits every `--metrics-every` seconds.

    Names: `<prefix>.messages_received` (counter), `<prefix>.msgs_per_second` (gauge),
    `<prefix>.lag_ms` (gauge, mean venue-to-us lag over the window), `<prefix>.reconnects`
    (counter), `<prefix>.connection_status` (gauge 1/0), `<prefix>.book_levels` (gauge per asset).
    """

    def __init__(self, prefix: str, labels: dict[str, str] | None = None) -> None:
        self.prefix = prefix
        self.labels = labels or {}
        self.messages = 0
        self.reconnects = 0
        self.connected = False
        self._window_messages = 0
        self._lag_sum = 0.0
        self._lag_n = 0
        self._last_us: int | None = None

    def message(self, lag_ms: float | None = None) -> None:
        self.messages += 1
        self._window_messages += 1
        if lag_ms is not None:
            self._lag_sum += lag_ms
            self._lag_n += 1

    def records(
        self,
        now_us: int,
        *,
        live: bool = False,
        book_levels: dict[str, int] | None = None,
    ) -> list[dict[str, Any]]:
        """The metric records for the window ending now (then a new window starts)."""
        p = self.prefix
        out: list[dict[str, Any]] = []

        def m(name: str, kind: str, value: float, extra: dict[str, str] | None = None) -> None:
            labels = dict(self.labels)
            if extra:
                labels.update(extra)
            out.append(
                {
                    "type": "metric",
                    "ts_event": now_us,
                    "ts_init": now_us,
                    "name": f"{p}.{name}",
                    "kind": kind,
                    "value": value,
                    "labels": labels,
                }
            )

        m("messages_received", "counter", self.messages)
        if self._last_us is not None and now_us > self._last_us:
            rate = self._window_messages * 1e6 / (now_us - self._last_us)
            m("msgs_per_second", "gauge", round(rate, 3))
        if live:
            m("connection_status", "gauge", 1 if self.connected else 0)
            m("reconnects", "counter", self.reconnects)
            if self._lag_n:
                m("lag_ms", "gauge", round(self._lag_sum / self._lag_n, 3))
        for asset, n in (book_levels or {}).items():
            m("book_levels", "gauge", n, {"asset": asset})
        self._last_us = now_us
        self._window_messages = 0
        self._lag_sum = 0.0
        self._lag_n = 0
        return out


def as_dict(rec: Rec) -> dict[str, Any]:
    if isinstance(rec, Record):
        from agkit.records import to_builtins

        return to_builtins(rec)
    return rec
