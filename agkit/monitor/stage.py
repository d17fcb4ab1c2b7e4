"""The `monitor` stage: records in (stdin and WebSocket ingest), dashboards out.

`Monitor` is an ordinary `agkit.stage.Stage`: as a sink it consumes everything; with
`tee=True` it forwards every record unchanged (it can sit mid-pipe). Its displays
(terminal dashboard, web server) and the optional push to another monitor hang off the
same `MonitorState`; `run_monitor` wires it under a `PipeRunner`.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agkit.monitor.series import DEFAULT_CAPACITY, DEFAULT_MAX_SERIES, SeriesStore
from agkit.monitor.state import MonitorState
from agkit.runner import PipeRunner
from agkit.stage import Context, Out, Stage, Timer
from agkit.stream import OnError

if TYPE_CHECKING:
    from agkit.monitor.push import MetricsPusher
    from agkit.monitor.tui import Tui
    from agkit.monitor.web import WebServer


@dataclass
class MonitorOptions:
    tee: bool = False
    tui: bool = False
    web: str | None = None  # HOST:PORT
    token: str | None = None
    capacity: int = DEFAULT_CAPACITY
    max_series: int = DEFAULT_MAX_SERIES
    backfill_s: float = 300.0
    linger: bool | None = None  # keep the dashboards up after stdin ends
    metrics_url: str | None = None  # forward metrics to another monitor
    summary: bool | None = None  # series table on stderr at the end
    refresh_s: float = 0.25  # terminal redraw interval


class Monitor(Stage):
    """Sink (or tee) that feeds a MonitorState and its displays."""

    name = "monitor"
    consumes = None

    def __init__(self, opts: MonitorOptions | None = None, state: MonitorState | None = None) -> None:
        self.opts = opts or MonitorOptions()
        self.state = state or MonitorState(SeriesStore(self.opts.capacity, self.opts.max_series))
        self.web: WebServer | None = None
        self.tui: Tui | None = None
        self.pusher: MetricsPusher | None = None
        self._quit: asyncio.Event | None = None
        take = self.state.on_record
        tee = self.opts.tee
        if self.opts.metrics_url:
            # forward the metric records read on stdin (never what was pushed to this
            # monitor over WebSocket, so a shared AGKIT_METRICS_URL cannot make a loop)
            def on_record(rec: dict[str, Any]) -> Out:
                take(rec)
                if self.pusher is not None and rec.get("type") == "metric":
                    self.pusher.push(rec)
                return (rec,) if tee else None

            self.on_record = on_record  # type: ignore[method-assign]
        elif tee:

            def on_record(rec: dict[str, Any]) -> Out:
                take(rec)
                return (rec,)

            self.on_record = on_record  # type: ignore[method-assign]
        else:  # a sink: the state's own method (returns None) is the whole per-record work
            self.on_record = take  # type: ignore[method-assign]

    def log(self, message: str) -> None:
        """Lines for people: on stderr, or into the dashboard while it owns the terminal."""
        if self.tui is not None and self.tui.active:
            self.state.errors.append(message)
        else:
            sys.stderr.write(message + "\n")
            sys.stderr.flush()

    async def start(self, ctx: Context) -> Out:
        self.ctx = ctx
        self._quit = asyncio.Event()
        opts = self.opts
        if opts.web is not None:
            from agkit.monitor.web import WebServer

            self.web = WebServer(self.state, opts.web, token=opts.token, backfill_s=opts.backfill_s, log=self.log)
            await self.web.start()
            url = self.web.url
            self.log(f"agkit monitor: dashboard on {url}{'?token=…' if opts.token else ''} (ingest ws://{url[7:]}metrics)")
        if opts.metrics_url:
            from agkit.monitor.push import MetricsPusher

            self.pusher = MetricsPusher(opts.metrics_url, stage="monitor", log=self.log)
        if opts.tui:
            from agkit.monitor.tui import Tui

            self.tui = Tui(self.state, quit=self.quit, web_url=self.web.url if self.web else None)
            self.tui.start()
        return None

    def quit(self) -> None:
        """Asked to end (the terminal dashboard's q): the same path as SIGTERM."""
        import signal

        os.kill(os.getpid(), signal.SIGTERM)

    def timers(self) -> list[Timer]:
        timers = [Timer(1_000_000, self._tick)]
        if self.opts.tui:
            timers.append(Timer(int(self.opts.refresh_s * 1e6), self._draw))
        return timers

    def _tick(self) -> Out:
        self.state.tick()
        if self.web is not None:
            self.web.tick()
        return None

    def _draw(self) -> Out:
        if self.tui is not None:
            self.tui.draw()
        return None

    def run(self, ctx: Context) -> Any:
        if self.opts.tui or self.opts.web is not None:
            return self._serve()
        return None

    async def _serve(self) -> None:
        assert self._quit is not None
        await self._quit.wait()

    async def stop(self) -> Out:
        if self.tui is not None:
            self.tui.stop()
        if self.web is not None:
            await self.web.stop()
        if self.pusher is not None:
            self.pusher.close()
        if self.opts.summary:
            sys.stderr.write(summary_table(self.state))
            sys.stderr.flush()
        return None


def summary_table(state: MonitorState) -> str:
    """Series table for people: name{labels} kind count last min mean max."""
    rows = [f"agkit monitor: {state.records} records, {len(state.store)} series, {state.rejected} rejected"]
    for s in state.store:
        if not s.count:
            continue
        ring = s.ring
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        name = f"{s.name}{{{labels}}}" if labels else s.name
        rows.append(
            f"  {name:<48} {s.kind:<9} n={s.count:<8} last={s.last:<12.6g} "
            f"min={ring.min():<12.6g} mean={ring.mean():<12.6g} max={ring.max():.6g}"
        )
    return "\n".join(rows) + "\n"


class _Runner(PipeRunner):
    """A PipeRunner whose stdin EOF can leave the dashboards up (until q or a signal)."""

    linger = False

    def _on_eof(self, src: Any) -> None:
        if src.primary and self.linger:
            src.primary = False  # the runner then only flushes; SIGTERM/SIGINT/q end it
        super()._on_eof(src)


def run_monitor(opts: MonitorOptions, on_error: OnError = OnError.SKIP, log: Callable[[str], None] | None = None) -> int:
    """Run the monitor on this process's stdin/stdout; returns the exit status."""
    displays = opts.tui or opts.web is not None
    if opts.summary is None:
        opts.summary = not displays and not opts.tee
    linger = opts.linger if opts.linger is not None else (displays and not opts.tee)
    stage = Monitor(opts)
    # a terminal on stdin is the keyboard, not a record stream
    read_input = not os.isatty(0)
    if not read_input and not displays:
        from agkit.errors import UsageError

        raise UsageError("stdin is a terminal: pipe records in, or use --tui / --web to watch pushed metrics")
    runner = _Runner(stage, on_error=on_error, read_input=read_input)
    runner.linger = linger
    return runner.run()
