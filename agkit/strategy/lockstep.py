"""Lockstep: a pipe that gives the same fills as `agkit backtest` (docs/strategy.md).

In a pipe, exec's events come back to the strategy through the feedback FIFO *some time*
after the market record that caused them; by then the strategy may have read more
market records, so fills land at other moments than in a backtest. `agkit strategy
--lockstep --merge FIFO` removes that freedom with a barrier handshake:

1. read one input record, hand it to the strategy, write the record and the strategy's
   orders downstream, then a barrier: a `cancel_order` for the id `lockstep-sync-N`,
   which no order has, with `ts_event` 0 so that it moves no clock;
2. risk-check passes it on (it does not consume cancels); exec answers it, in order,
   with `cancel_rejected` ("unknown order id"), which its `--feedback FIFO` sends
   around: so by the time that answer comes back, exec has processed everything
   written before the barrier and its events for those records are in the FIFO, in
   order, ahead of the answer (the runner intercepts the answer; it goes no further);
3. feed those events to the strategy, write them (and any new orders) downstream; if
   the strategy sent new orders, send another barrier and wait again (exec may fill
   them at once), until a round brings nothing new;
4. only then read the next input record.

That is exactly the order in which `agkit.runner.Chain` (`backtest`, `run`) delivers
feedback: before the next input record, breadth-first. Timers fire in event time, as
in a Chain. The runner is synchronous: one process, blocking reads, no asyncio.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import select
import signal
import time
from typing import Any

from agkit.clock import MAX_TS_US, EventClock, resume_after_gap
from agkit.errors import AgkitError, InvalidRecord
from agkit.exit_codes import ExitCode
from agkit.records import now_us
from agkit.runner import log, open_fifo_for_reading
from agkit.stage import Context, MaybeAsync, Rec, Stage, Timer
from agkit.stream import (
    RAW_KEEP,
    LineSplitter,
    OnError,
    decode_line,
    encode_into,
    is_broken_pipe,
    silence_fd,
)

BARRIER_PREFIX = "lockstep-sync-"
ACK_TYPES = frozenset({"cancel_rejected", "order_canceled"})


def barrier(seq: int) -> dict[str, Any]:
    """The barrier record: a cancel for an id no order has, that moves no clock."""
    return {
        "type": "cancel_order",
        "ts_event": 0,
        "ts_init": 0,
        "id": f"{BARRIER_PREFIX}{seq}",
        "reason": "lockstep barrier",
    }

READ_SIZE = 1 << 16


class LockstepError(AgkitError):
    pass


class _Term(Exception):
    pass


class LockstepRunner:
    """Drive a head stage record by record, waiting for exec's barrier echo each time."""

    def __init__(
        self,
        stage: Stage,
        merge: str,
        *,
        on_error: OnError = OnError.SKIP,
        timeout_s: float = 30.0,
        infd: int = 0,
        outfd: int = 1,
    ) -> None:
        self.stage = stage
        self.merge = merge
        self.on_error = on_error
        self.timeout_s = timeout_s
        self.infd = infd
        self.outfd = outfd
        self.clock = EventClock()
        self.buf = bytearray()
        self.seq = 0
        self.bad = 0
        self.rounds = 0
        self._fifo = -1
        self._fb_lines = LineSplitter(merge)
        self._fb_pending: list[bytes] = []
        self._timers: list[tuple[int, Timer]] = []
        self._emitted = False

    # -- entry -------------------------------------------------------------------------

    def run(self) -> int:
        old = signal.signal(signal.SIGTERM, self._on_term)
        code = int(ExitCode.OK)
        try:
            self._fifo = open_fifo_for_reading(self.merge)
            ctx = Context(self.clock, self._ctx_emit, log)
            self._new(self.stage.start(ctx))
            now = self.clock.now_us()
            self._timers = [(now + t.interval_us, t) for t in self.stage.timers()]
            self._settle()
            self._main_loop()
            self._new(self.stage.stop())
            self._settle()
        except _Term:
            with contextlib.suppress(Exception):
                self._new(self.stage.stop())
                self._write()
        except KeyboardInterrupt:
            code = int(ExitCode.INTERRUPTED)
        except _BadStop:
            code = int(ExitCode.BAD_INPUT)
        except AgkitError as exc:
            log(f"agkit {self.stage.name}: {exc}")
            code = int(exc.exit_code)
        except OSError as exc:
            if not is_broken_pipe(exc):
                raise
            silence_fd(self.outfd)
            return int(ExitCode.OK)
        finally:
            signal.signal(signal.SIGTERM, old)
        try:
            self._write()
        except OSError as exc:
            if not is_broken_pipe(exc):
                raise
            silence_fd(self.outfd)
        return code

    def _on_term(self, signum: int, frame: Any) -> None:
        raise _Term()

    # -- input ---------------------------------------------------------------------------

    def _main_loop(self) -> None:
        lines = LineSplitter("stdin")
        while True:
            chunk = os.read(self.infd, READ_SIZE)
            if not chunk:
                last = lines.finish()
                if last is not None:
                    lines.lineno += 1
                    self._input_line(last, lines.lineno)
                return
            batch, dropped = lines.split(chunk)
            base = lines.lineno
            for i, line in enumerate(batch, 1):
                self._input_line(line, base + i)
            lines.lineno = base + len(batch)
            if dropped:
                lines.lineno += 1
                self._bad(lines.lineno, b"", "line too long, discarded")

    def _input_line(self, line: bytes, lineno: int) -> None:
        if not line or line.isspace():
            return
        rec, reason = decode_line(line)
        if rec is None:
            self._bad(lineno, line, reason or "bad record")
            return
        ts = rec.get("ts_event")
        if type(ts) is int and ts <= MAX_TS_US:  # as Chain: past it, not a time
            if self._timers:
                self._fire_timers(ts)
            self.clock.advance(ts)
        try:
            self._handle(rec, line)
        except InvalidRecord as exc:
            self._bad(lineno, line, str(exc))
            return
        self._settle(force=True)

    def _handle(self, rec: dict[str, Any], line: bytes) -> None:
        stage = self.stage
        consumes = stage.consumes
        if consumes is not None and rec["type"] not in consumes:
            self.buf += line
            self.buf += b"\n"
            return
        res = stage.on_record(rec)
        if res:
            for r in res:
                if r is rec:
                    self.buf += line
                    self.buf += b"\n"
                else:
                    encode_into(r, self.buf)
                    self._emitted = True

    def _new(self, res: MaybeAsync) -> None:
        if inspect.isawaitable(res):
            raise LockstepError(f"stage {self.stage.name} has an async start/stop; it cannot run in lockstep")
        if res:
            for r in res:
                encode_into(r, self.buf)
                self._emitted = True

    def _ctx_emit(self, rec: Rec) -> None:
        encode_into(rec, self.buf)
        self._emitted = True

    def _fire_timers(self, until: int) -> None:
        self._timers = [(resume_after_gap(due, t.interval_us, until), t) for due, t in self._timers]
        while True:
            due, timer = min(self._timers, key=lambda t: t[0])
            if due > until:
                return
            i = self._timers.index((due, timer))
            self._timers[i] = (due + timer.interval_us, timer)
            self.clock.advance(due)
            self._new(timer.fn())

    def _bad(self, lineno: int, raw: bytes, reason: str) -> None:
        self.bad += 1
        if self.on_error is OnError.FAIL:
            log(f"agkit {self.stage.name}: stdin line {lineno}: {reason} (--on-error=fail)")
            raise _BadStop()
        if self.bad <= 20:
            log(f"agkit {self.stage.name}: stdin line {lineno}: {reason} ({self.on_error.value})")
        if self.on_error is OnError.EMIT:
            now = now_us()
            encode_into(
                {
                    "type": "error",
                    "ts_event": now,
                    "ts_init": now,
                    "line": lineno,
                    "reason": reason,
                    "raw": raw[:RAW_KEEP].decode("utf-8", "replace"),
                    "source": self.stage.name,
                },
                self.buf,
            )

    # -- the handshake -----------------------------------------------------------------------

    def _settle(self, force: bool = False) -> None:
        """Barrier rounds until a round brings no new record from the stage."""
        send = force or self._emitted
        while send:
            self._emitted = False
            self.seq += 1
            self.rounds += 1
            encode_into(barrier(self.seq), self.buf)
            self._write()
            self._await_barrier(self.seq)
            send = self._emitted
        self._write()

    def _await_barrier(self, seq: int) -> None:
        deadline = time.monotonic() + self.timeout_s
        while True:
            while self._fb_pending:
                line = self._fb_pending.pop(0)
                rec, reason = decode_line(line)
                if rec is None:
                    log(f"agkit {self.stage.name}: {self.merge}: {reason}")
                    continue
                rid = rec.get("id")
                if rec["type"] in ACK_TYPES and isinstance(rid, str) and rid.startswith(BARRIER_PREFIX):
                    if rid == f"{BARRIER_PREFIX}{seq}":
                        return
                    continue  # a stale barrier (from an earlier run on the same FIFO)
                try:
                    self._handle(rec, line)
                except InvalidRecord as exc:
                    log(f"agkit {self.stage.name}: {self.merge}: {exc}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise LockstepError(
                    f"no barrier came back through {self.merge} within {self.timeout_s:g}s: "
                    f"is `agkit exec --feedback {self.merge}` at the end of the pipe?"
                )
            ready, _, _ = select.select([self._fifo], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(self._fifo, READ_SIZE)
            except BlockingIOError:
                continue
            if chunk:
                lines, _ = self._fb_lines.split(chunk)
                self._fb_pending += lines

    def _write(self) -> None:
        buf = self.buf
        fd = self.outfd
        while buf:
            n = os.write(fd, buf)
            del buf[:n]


class _BadStop(Exception):
    pass
