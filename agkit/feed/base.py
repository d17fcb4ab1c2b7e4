"""What every feed source shares: output with back-pressure, `--record FILE`, metrics;
and what the WebSocket feeds share (`LiveFeed`): the connection loop and its gaps.

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
import contextlib
import gzip
import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import IO, Any

from agkit.errors import VenueError
from agkit.records import Record, metric_record, now_us
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
        self.raw_output = ctx.writes_raw
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


class Silent(Exception):
    """Raised by a session when nothing arrived for `silence` seconds (the watchdog)."""


class Attempt:
    """One connection attempt; its session marks it healthy once events flow."""

    healthy = False


class LiveFeed(SourceStage):
    """Base of the WebSocket feeds (`polymarket`, `rtds`): the run/stop orchestration,
    the text keep-alive PING, metric records every `metrics_every` s, `max_records` /
    `duration` bounds, and `keep_connected`: connect, run a session, and on any end
    reconnect with exponential backoff and full jitter, marking the gap with
    `feed_status` (stale → reconnecting), until `max_retries` failures in a row.

    Subclasses give `connections()` (one coroutine per socket), the `last_lag_ms` of
    their normaliser, and the metric records; hooks: `helpers()`, `finish()`."""

    source = "live"  # the `source` of feed_status records

    def __init__(
        self,
        *,
        url: str,
        metrics: FeedMetrics,
        ping_every: float,
        silence: float,
        backoff: float = 0.5,
        backoff_max: float = 30.0,
        max_retries: int = 0,
        metrics_every: float = 10.0,
        max_records: int = 0,
        duration: float = 0.0,
        record: str | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(record)
        self.url = url
        self.metrics = metrics
        self.ping_every = ping_every
        self.silence = silence
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.max_retries = max_retries
        self.metrics_every = metrics_every
        self.max_records = max_records
        self.duration = duration
        self.rng = random.Random(seed)
        self.emitted = 0
        self._finished: asyncio.Event | None = None

    # -- what a subclass gives --------------------------------------------------------

    def connections(self) -> list[Coroutine[Any, Any, None]]:
        raise NotImplementedError

    def last_lag_ms(self) -> float | None:
        return None

    def metric_records(self, now: int) -> list[dict[str, Any]]:
        return self.metrics.records(now, live=True)

    def helpers(self) -> list[Coroutine[Any, Any, None]]:
        """Background loops that run beside the connections."""
        return []

    def finish(self) -> None:
        """Called once when the run ends (release what is held back)."""

    # -- output -------------------------------------------------------------------------

    def _put(self, rec: dict[str, Any]) -> None:
        if self.max_records and self.emitted >= self.max_records:
            if self._finished is not None:
                self._finished.set()
            return
        self.emit(rec)
        self.emitted += 1
        if self.max_records and self.emitted >= self.max_records and self._finished is not None:
            self._finished.set()

    def _put_line(self, line: bytes) -> None:
        """`_put` of a record already encoded (no newline in `line`)."""
        if self.max_records and self.emitted >= self.max_records:
            if self._finished is not None:
                self._finished.set()
            return
        self.emit_raw(line)
        self.emitted += 1
        if self.max_records and self.emitted >= self.max_records and self._finished is not None:
            self._finished.set()

    def _status(self, state: str, detail: str) -> None:
        now = now_us()
        rec: dict[str, Any] = {
            "type": "feed_status",
            "ts_event": now,
            "ts_init": now,
            "source": self.source,
            "state": state,
            "detail": detail,
        }
        lag = self.last_lag_ms()
        if lag is not None:
            rec["lag_ms"] = round(lag, 3)
        self._put(rec)

    # -- running --------------------------------------------------------------------------

    async def run(self, ctx: Context) -> None:
        self._finished = asyncio.Event()
        tasks = [asyncio.create_task(c) for c in self.connections()]
        helpers = [asyncio.create_task(h) for h in self.helpers()]
        if self.metrics_every > 0:
            helpers.append(asyncio.create_task(self._metrics_loop()))
        finished = asyncio.create_task(self._finished.wait())
        waiters: list[asyncio.Task[Any]] = [*tasks, finished]
        if self.duration > 0:
            waiters.append(asyncio.create_task(asyncio.sleep(self.duration)))
        try:
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t in tasks and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
        finally:
            for t in waiters + helpers:
                t.cancel()
            for t in waiters + helpers:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            self.finish()

    async def _metrics_loop(self) -> None:
        while True:
            await asyncio.sleep(self.metrics_every)
            for rec in self.metric_records(now_us()):
                self._put(rec)
            self.flush_record()

    async def _ping(self, ws: Any) -> None:
        while True:
            await asyncio.sleep(self.ping_every)
            await ws.send("PING")

    async def keep_connected(
        self,
        session: Callable[[Any, Attempt], Awaitable[str]],
        *,
        label: str = "",
        on_gap: Callable[[], None] | None = None,
        **connect_options: Any,
    ) -> None:
        """Run `session(ws, attempt)` on a fresh connection, again and again, pinging beside
        it. A session returns the reason it ended, or raises (`Silent`, a closed connection);
        `on_gap` runs after every connection ends, before the `reconnecting` status."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

        prefix = f"{label}: " if label else ""
        failures = 0
        ever_connected = False
        while True:
            attempt = Attempt()
            reason = "closed"
            try:
                async with connect(
                    self.url, ping_interval=None, close_timeout=1.0, max_size=1 << 24, **connect_options
                ) as ws:
                    ever_connected = True
                    self.metrics.connected = True
                    pinger = asyncio.create_task(self._ping(ws))
                    try:
                        reason = await session(ws, attempt)
                    finally:
                        pinger.cancel()
            except Silent:
                reason = f"no frame for {self.silence:g} s (watchdog)"
                self._status("stale", prefix + reason)
            except ConnectionClosed as exc:
                rcv = exc.rcvd
                reason = f"connection closed ({rcv.code} {rcv.reason})".rstrip() if rcv else "connection dropped"
            except InvalidURI as exc:
                raise VenueError(f"bad WebSocket URL {self.url}: {exc}") from None
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                reason = f"cannot connect to {self.url}: {exc or type(exc).__name__}"
            self.metrics.connected = False
            if on_gap is not None:
                on_gap()
            failures = 1 if attempt.healthy else failures + 1
            if self.max_retries and failures > self.max_retries:
                what = "refused or dropped every subscription" if ever_connected else "unreachable"
                self._status("stale", f"{prefix}gave up after {self.max_retries} retries: {reason}")
                raise VenueError(f"{self.url} {what} ({self.max_retries} retries); last: {reason}")
            delay = min(self.backoff_max, self.backoff * 2 ** (failures - 1)) * self.rng.uniform(0.5, 1.0)
            self._status("reconnecting", f"{prefix}{reason}; retry in {delay:.2f} s")
            self.ctx.log(f"agkit {self.name}: {prefix}{reason}; reconnecting in {delay:.2f} s")
            await asyncio.sleep(delay)
            self.metrics.reconnects += 1


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
            out.append(metric_record(now_us, f"{p}.{name}", value, kind, labels))

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
