"""Runners: `PipeRunner` drives one stage from stdin to stdout; `Chain` links stages in
one process with feedback delivered before the next input record (DESIGN.md §3).

PipeRunner rules (DESIGN.md §2):
- Flush when all input already available has been consumed, and after every timer or
  socket-driven record; under load, write in large batches.
- Back-pressure: when stdout cannot keep up, stop reading stdin (never grow without
  bound), but keep draining `--merge` FIFOs so a feedback loop cannot deadlock.
- Feedback: with `feedback`, every record the stage itself emits is also written to
  that FIFO, and the identical line is dropped when it comes back around on stdin.
- EOF, SIGTERM and SIGINT end the stage after `stop()` and a full flush; a closed
  stdout (`| head`) ends it quietly.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
import stat
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any

import orjson

from agkit.clock import MAX_TS_US, Clock, EventClock, resume_after_gap
from agkit.errors import AgkitError, InvalidRecord
from agkit.exit_codes import ExitCode
from agkit.records import Record, error_record, now_us, to_builtins
from agkit.stage import Context, MaybeAsync, Out, Rec, Stage, Timer
from agkit.stream import (
    HEAD_ERRORS,
    LineSplitter,
    OnError,
    Output,
    encode_into,
    head_error,
    is_broken_pipe,
    is_pollable,
    read_head,
    set_nonblocking,
    silence_fd,
)

READ_SIZE = 1 << 20
HIGH_WATER = 4 << 20  # output backlog that pauses input
LOW_WATER = 1 << 20  # backlog at which input resumes
BATCH_BYTES = 1 << 20  # flush at least this often under sustained load
REPORT_FIRST = 20  # bad lines reported one by one; after that, a count at the end
OUTCOME = {
    OnError.SKIP: "skipped",
    OnError.EMIT: "forwarded as an error record",
    OnError.FAIL: "stopped",
}


def log(message: str) -> None:
    """One line for people, on stderr."""
    try:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


_captured: list[PipeRunner] | None = None


@contextlib.contextmanager
def capture_runners() -> Iterator[list[PipeRunner]]:
    """Within this block, PipeRunner.run() records the runner instead of running it.

    This is how `agkit run` turns each command line of a pipeline into its stage
    object, with exactly the flags the separate command would take."""
    global _captured
    previous, _captured = _captured, []
    try:
        yield _captured
    finally:
        _captured = previous


class _Stop(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def open_fifo_for_reading(path: str) -> int:
    """Open (creating if needed) a FIFO for non-blocking reads that never sees EOF.

    Keeping a write end open ourselves means the loop keeps working while the writer
    (exec) starts, restarts or has not opened it yet."""
    ensure_fifo(path)
    rfd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    if stat.S_ISFIFO(os.fstat(rfd).st_mode):
        os.open(path, os.O_WRONLY | os.O_NONBLOCK)  # held for the life of the process
    return rfd


def ensure_fifo(path: str) -> None:
    if not os.path.exists(path):
        with contextlib.suppress(FileExistsError):
            os.mkfifo(path, 0o600)


async def open_fifo_for_writing(path: str) -> int:
    """Open a FIFO for writing once a reader (the head stage) has it open."""
    ensure_fifo(path)
    while True:
        try:
            return os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != 6:  # ENXIO: no reader yet
                raise
        await asyncio.sleep(0.05)


class _Source:
    """One input file descriptor (stdin or a merged FIFO) and its line state."""

    def __init__(self, fd: int, name: str, primary: bool) -> None:
        self.fd = fd
        self.lines = LineSplitter(name)
        self.primary = primary  # stdin: its EOF ends the stage
        self.pollable = is_pollable(fd)
        self.tty = os.isatty(fd)
        if self.pollable and not self.tty:
            set_nonblocking(fd, True)
        self.eof = False
        self.watching = False


class PipeRunner:
    """Drive one stage from stdin (plus merged FIFOs) to stdout."""

    def __init__(
        self,
        stage: Stage,
        *,
        on_error: OnError = OnError.SKIP,
        merge: Iterable[str] = (),
        feedback: str | None = None,
        infd: int = 0,
        outfd: int = 1,
        clock: Clock | None = None,
        read_input: bool | None = None,
    ) -> None:
        self.stage = stage
        self.on_error = on_error
        self.merge_paths = list(merge)
        self.feedback_path = feedback  # records tagged with it are ours: dropped on input
        self.infd = infd
        self.outfd = outfd
        self.clock = clock or Clock()
        self.read_input = stage.reads_input if read_input is None else read_input
        self.bad_lines = 0
        consumes = stage.consumes
        self._consumed_types = None if consumes is None else {t.encode(): t for t in consumes}
        # Our records travel the loop with this tag, so we know them when they come back.
        self._fb_tag = orjson.dumps(feedback) if feedback else b""
        self._fb: Output | None = None
        self._fb_buf = bytearray()
        self._stop_code: int | None = None
        self._done: asyncio.Future[int] | None = None
        self._sources: list[_Source] = []
        self._paused = False
        self._flush_scheduled = False

    # -- entry point ---------------------------------------------------------------

    def run(self) -> int:
        """Run to completion; returns the exit status."""
        if _captured is not None:  # `agkit run` is building stages, not running them
            _captured.append(self)
            return int(ExitCode.OK)
        return asyncio.run(self.main())

    async def main(self) -> int:
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.out = Output(self.outfd)
        self._done = loop.create_future()
        self.ctx = Context(
            self.clock,
            self._emit_async,
            log,
            emit_raw=self._emit_raw_async,
            backlog=lambda: self.out.backlog,
            flush=self._flush,
        )
        loop.add_signal_handler(signal.SIGTERM, self._request_stop, int(ExitCode.OK))
        loop.add_signal_handler(signal.SIGINT, self._request_stop, int(ExitCode.INTERRUPTED))
        tasks: list[asyncio.Task[Any]] = []
        code = int(ExitCode.OK)
        try:
            await self._call(self.stage.start(self.ctx))
            self._flush()
            if self.feedback_path:
                tasks.append(loop.create_task(self._open_feedback(self.feedback_path)))
            for timer in self.stage.timers():
                tasks.append(loop.create_task(self._timer(timer)))
            if self.read_input:
                self._add_source(_Source(self.infd, "stdin", primary=True))
            for path in self.merge_paths:
                self._add_source(_Source(open_fifo_for_reading(path), path, primary=False))
            source = self.stage.run(self.ctx)
            if source is not None:
                task = loop.create_task(_as_coro(source))
                task.add_done_callback(self._source_done)
                tasks.append(task)
            elif not self.read_input:
                self._finish(ExitCode.OK)
            code = await self._done
        except _Stop as stop:
            code = stop.code
        except AgkitError as exc:
            log(f"agkit {self.stage.name}: {exc}")
            code = exc.exit_code
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            for src in self._sources:
                self._unwatch(src)
            code = await self._shutdown(code)
        return int(code)

    # -- input -----------------------------------------------------------------------

    def _add_source(self, src: _Source) -> None:
        self._sources.append(src)
        self._watch(src)

    def _watch(self, src: _Source) -> None:
        if src.watching or src.eof:
            return
        src.watching = True
        if src.pollable:
            self.loop.add_reader(src.fd, self._on_readable, src)
        else:  # a regular file is always ready: read it in slices between other work
            self.loop.call_soon(self._on_readable, src)

    def _unwatch(self, src: _Source) -> None:
        if src.watching and src.pollable:
            self.loop.remove_reader(src.fd)
        src.watching = False

    def _on_readable(self, src: _Source) -> None:
        if not src.watching:
            return
        try:
            self._read_available(src)
        except _Stop as stop:
            self._finish(stop.code)
            return
        except Exception as exc:  # a bug in a stage: end cleanly, report once
            self._fail(exc)
            return
        if not src.pollable and src.watching and not src.eof:
            self.loop.call_soon(self._on_readable, src)

    def _read_available(self, src: _Source) -> None:
        """Consume what is available now (bounded), then flush per the flush rule."""
        budget = 8
        while budget:
            budget -= 1
            try:
                chunk = os.read(src.fd, READ_SIZE)
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            if not chunk:
                self._on_eof(src)
                return
            self._process_chunk(src, chunk)
            if self._paused or not src.pollable or src.tty:
                break
        self._flush()

    def _on_eof(self, src: _Source) -> None:
        self._unwatch(src)
        src.eof = True
        last = src.lines.finish()
        if last is not None:
            self._process_lines(src, [last])
        if src.primary:
            self._finish(ExitCode.OK)
        else:
            self._flush()

    def _process_chunk(self, src: _Source, chunk: bytes) -> None:
        lines, dropped = src.lines.split(chunk)
        if lines:
            self._process_lines(src, lines)
        if dropped:
            src.lines.lineno += 1
            self._bad(
                src.lines.name,
                src.lines.lineno,
                b"",
                f"line longer than {len(chunk)}+ bytes, discarded",
            )

    def _process_lines(self, src: _Source, lines: list[bytes]) -> None:
        """The hot loop: check each line, forward it or hand it to the stage.

        A record the stage consumes is decoded once (`_decode_consumed`); any other
        line gets a light msgspec pass that validates the JSON and reads `type`
        without building a dict. Consecutive forwarded lines are copied out in one
        join."""
        if self.stage.takes_lines:
            self._hand_lines(src, lines)
            return
        on_record = self.stage.on_record
        consumes = self.stage.consumes
        consumed = self._consumed_types
        sniff = consumed is None or bool(consumed)  # `agkit pass` consumes nothing
        out = self.out
        fb_tag = self.feedback_path
        base = src.lines.lineno
        name = src.lines.name
        run = 0  # index of the first line of the current run of forwarded lines
        for i, line in enumerate(lines):
            rec = _decode_consumed(line, consumed, fb_tag) if sniff else None
            if rec is None:
                try:
                    head = read_head(line)
                    if (
                        consumes is not None
                        and head.type not in consumes
                        and (fb_tag is None or head.fb != fb_tag)
                    ):
                        continue  # forwarded unchanged, as part of the run
                except HEAD_ERRORS as exc:
                    head = None
                    reason = head_error(exc)
            if run < i:
                out.buf += b"\n".join(lines[run:i])
                out.buf += b"\n"
            run = i + 1
            if rec is None:
                if head is None:
                    if line and not line.isspace():
                        src.lines.lineno = base + i + 1
                        self._bad(name, base + i + 1, line, reason)
                    continue
                if fb_tag is not None and head.fb == fb_tag:
                    continue  # our own record, back around the feedback loop: already sent on
                try:
                    rec = orjson.loads(line)
                except orjson.JSONDecodeError as exc:  # e.g. a string outside `type` not UTF-8
                    src.lines.lineno = base + i + 1
                    self._bad(name, base + i + 1, line, f"invalid JSON: {exc}")
                    continue
            try:
                result = on_record(rec)
            except InvalidRecord as exc:
                src.lines.lineno = base + i + 1
                self._bad(name, base + i + 1, line, str(exc))
                continue
            if result:
                for r in result:
                    if r is rec:
                        out.buf += line
                        out.buf += b"\n"
                    else:
                        self._emit_new(r)
            if len(out.buf) > BATCH_BYTES:
                src.lines.lineno = base + i + 1
                self._flush()
        if run < len(lines):
            out.buf += b"\n".join(lines[run:])
            out.buf += b"\n"
        src.lines.lineno = base + len(lines)

    def _hand_lines(self, src: _Source, lines: list[bytes]) -> None:
        """The loop for a stage that takes lines undecoded: the lines it says go on are
        forwarded byte for byte, the ones it refuses follow --on-error."""
        on_line = self.stage.on_line
        out = self.out
        base = src.lines.lineno
        for i, line in enumerate(lines):
            try:
                forward = on_line(line)
            except InvalidRecord as exc:
                src.lines.lineno = base + i + 1
                self._bad(src.lines.name, base + i + 1, line, str(exc))
                continue
            if forward:
                out.buf += line
                out.buf += b"\n"
                if len(out.buf) > BATCH_BYTES:
                    src.lines.lineno = base + i + 1
                    self._flush()
        src.lines.lineno = base + len(lines)

    def _bad(self, name: str, lineno: int, raw: bytes, reason: str) -> None:
        self.bad_lines += 1
        where = f"{name} line {lineno}"
        if self.on_error is OnError.FAIL:
            log(f"agkit {self.stage.name}: {where}: {reason} (--on-error=fail)")
            raise _Stop(int(ExitCode.BAD_INPUT))
        if self.bad_lines <= REPORT_FIRST:
            log(f"agkit {self.stage.name}: {where}: {reason} ({OUTCOME[self.on_error]})")
        if self.on_error is OnError.EMIT:
            self._emit_new(error_record(now_us(), lineno, reason, raw, self.stage.name))

    # -- output ----------------------------------------------------------------------

    def _emit_new(self, rec: Rec) -> None:
        """A record the stage created: to stdout, and around the feedback loop."""
        buf = self.out.buf
        start = len(buf)
        encode_into(rec, buf)
        if self._fb_tag:
            # the loop's copy carries {"_fb": PATH}, so we know it when it comes back
            self._fb_buf += b'{"_fb":' + self._fb_tag + b"," + buf[start + 1 :]

    def _emit_async(self, rec: Rec) -> None:
        """ctx.emit: from a socket, timer or source loop; flushed promptly."""
        self._emit_new(rec)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _emit_raw_async(self, line: bytes) -> None:
        """ctx.emit_raw: a recorded line forwarded exactly (sources replaying files)."""
        self.out.buf += line
        self.out.buf += b"\n"
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        try:
            done = self.out.try_flush()
        except OSError as exc:
            if is_broken_pipe(exc):
                self._finish(-1)  # downstream is gone: end quietly
                return
            raise
        if self._fb_buf and self._fb is not None:
            self._fb.buf += self._fb_buf
            self._fb_buf.clear()
            self._flush_feedback()
        if not done:
            if not self._paused and self.out.backlog > HIGH_WATER:
                self._pause_input()
            self.loop.add_writer(self.out.fd, self._on_writable)

    def _on_writable(self) -> None:
        try:
            done = self.out.try_flush()
        except OSError as exc:
            self.loop.remove_writer(self.out.fd)
            if is_broken_pipe(exc):
                self._finish(-1)
                return
            raise
        if done:
            self.loop.remove_writer(self.out.fd)
        if self._paused and self.out.backlog < LOW_WATER:
            self._resume_input()

    def _pause_input(self) -> None:
        self._paused = True
        for src in self._sources:
            if src.primary:  # merged FIFOs keep draining: the feedback loop must not stall
                self._unwatch(src)

    def _resume_input(self) -> None:
        self._paused = False
        for src in self._sources:
            self._watch(src)

    def _flush_feedback(self) -> None:
        fb = self._fb
        if fb is None:
            return
        try:
            done = fb.try_flush()
        except OSError as exc:
            if is_broken_pipe(exc):
                # The reader is the pipeline's head stage: it exits at the normal end of
                # input (and if it dies, so does the pipe, which the shell reports). What
                # was not yet read has nowhere to go; stop feeding back, quietly.
                self._fb = None
                self._fb_tag = b""  # lines already sent may still come around: keep feedback_path
                return
            raise
        if not done:
            self.loop.call_later(0.001, self._flush_feedback)

    async def _open_feedback(self, path: str) -> None:
        fd = await open_fifo_for_writing(path)
        self._fb = Output(fd)
        if self._fb_buf:
            self._fb.buf += self._fb_buf
            self._fb_buf.clear()
            self._flush_feedback()

    # -- timers, sources, stopping -------------------------------------------------------

    async def _timer(self, timer: Timer) -> None:
        interval = timer.interval_us / 1e6
        while True:
            await asyncio.sleep(interval)
            try:
                out = timer.fn()
                if out:
                    for r in out:
                        self._emit_new(r)
                self._flush()
            except Exception as exc:
                self._fail(exc)
                return

    def _source_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            if not self.read_input:
                self._finish(ExitCode.OK)
        else:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if isinstance(exc, _Stop):
            self._finish(exc.code)
        elif isinstance(exc, AgkitError):
            log(f"agkit {self.stage.name}: {exc}")
            self._finish(int(exc.exit_code))
        elif is_broken_pipe(exc):
            self._finish(-1)
        else:
            log(f"agkit {self.stage.name}: internal error: {type(exc).__name__}: {exc}")
            if os.environ.get("AGKIT_TRACEBACK"):
                import traceback

                traceback.print_exception(exc)
            self._finish(int(ExitCode.ERROR))

    def _request_stop(self, code: int) -> None:
        self._finish(code)

    def _finish(self, code: int) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result(code)

    async def _shutdown(self, code: int) -> int:
        """stop(), then flush everything; a closed stdout (code -1) ends quietly with 0."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.remove_signal_handler(sig)
        try:
            await self._call(self.stage.stop())
        except Exception as exc:
            log(f"agkit {self.stage.name}: while stopping: {type(exc).__name__}: {exc}")
            if code == ExitCode.OK:
                code = int(getattr(exc, "exit_code", ExitCode.ERROR))
        with contextlib.suppress(ValueError, OSError):
            self.loop.remove_writer(self.out.fd)
        if code != -1:
            try:
                self.out.flush_blocking()
            except OSError as exc:
                if not is_broken_pipe(exc):
                    raise
                code = -1
        if self._fb is not None:
            self._fb.buf += self._fb_buf
            try:
                self._fb.flush_blocking()
                os.close(self._fb.fd)
            except OSError:
                pass
        self.out.restore()
        if self.bad_lines > REPORT_FIRST:
            log(
                f"agkit {self.stage.name}: {self.bad_lines} bad input lines in all ({OUTCOME[self.on_error]})"
            )
        if code == -1:
            silence_fd(self.outfd)
            return int(ExitCode.OK)
        return code

    async def _call(self, result: Out | Awaitable[Out]) -> None:
        """Run a start/stop hook, which may be async, and emit what it returns."""
        if inspect.isawaitable(result):
            result = await result
        if result:
            for r in result:
                self._emit_new(r)


_TYPE_FIRST = b'{"type":"'


def _decode_consumed(
    line: bytes, consumed: dict[bytes, str] | None, fb_tag: str | None
) -> dict[str, Any] | None:
    """The fast path for a record the stage consumes, written as every agkit stage
    writes it (`type` first): one strict orjson decode instead of a head pass and
    then a full decode. Anything else (None) takes the careful path in the caller,
    which validates, reports and classifies it."""
    if not line.startswith(_TYPE_FIRST):
        return None
    if consumed is None:  # every type: any string will do
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            return None
        if type(rec) is not dict or type(rec.get("type")) is not str:
            return None
    else:
        name = consumed.get(line[9 : line.find(b'"', 9)])
        if name is None:
            return None
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            return None
        if type(rec) is not dict or rec.get("type") != name:
            return None  # e.g. a repeated "type" key: let the careful path decide
    if fb_tag is not None and "_fb" in rec:
        return None
    return rec


def _as_coro(aw: Awaitable[None]) -> Any:
    async def wrap() -> None:
        await aw

    return wrap()


# past every timestamp that is a time: a record beyond it takes the slow path, where it
# moves no clock (see MAX_TS_US)
_NEVER = MAX_TS_US + 1
# a stage's on_record, its consumes, whether it is the chain's feedback stage, its index
_Call = tuple[Callable[[dict[str, Any]], Out], frozenset[str] | None, bool, int]
# what a Chain does with a record stage `index` refused: the records to send on instead
OnInvalid = Callable[[int, dict[str, Any], InvalidRecord], list[Rec]]


class Chain(Stage):
    """Several stages in one process: each stage's output is the next one's input.

    Records emitted by stage `feedback_from` (exec) are delivered back to the first
    stage before the next input record, so strategy and risk see fills in order; the
    feedback stage drops its own records when they come around (by identity).
    Timers fire on the chain's clock (event time under an EventClock), so a run is
    deterministic. A Chain is itself a Stage, so `PipeRunner(Chain(...))` is `agkit run`.

    A record a stage refuses (InvalidRecord) goes no further; `on_invalid(index, rec,
    exc)` reports it and gives what goes on instead (nothing, or an `error` record), or
    raises to stop. Without it the refusal reaches the caller, and whatever else that
    input record caused in the chain is dropped with it.
    """

    name = "run"

    def __init__(
        self,
        stages: list[Stage],
        feedback_from: int | None = None,
        clock: Clock | None = None,
        on_invalid: OnInvalid | None = None,
    ):
        if not stages:
            raise ValueError("a chain needs at least one stage")
        self.stages = stages
        self.feedback_from = feedback_from
        self.on_invalid = on_invalid
        self.input: dict[str, Any] | None = None  # the record from outside being handled
        self.clock = clock or EventClock()
        self.reads_input = stages[0].reads_input  # type: ignore[misc]
        self._own: dict[int, dict[str, Any]] = {}  # feedback records in flight, kept alive by id
        self._pending: deque[dict[str, Any]] = deque()
        self._timers: list[tuple[int, int, Timer]] = []  # (due, stage index, timer)
        self._next_due = _NEVER  # the earliest due time among _timers
        self._event_clock = self.clock if isinstance(self.clock, EventClock) else None
        self._out: list[Rec] = []
        self._sync_only = False  # set by process(), which has no event loop
        self._started = False  # has a timestamped record arrived yet
        # per start index: (on_record, consumes, is the feedback stage) of the stages from
        # there on, bound once the stages have started (_bind)
        self._calls: list[list[_Call]] = []
        self._bind()

    # Stage interface ----------------------------------------------------------------

    def start(self, ctx: Context) -> MaybeAsync:
        self.ctx = ctx
        self._ctxs = [
            Context(self.clock, self._emitter(i), ctx.log) for i in range(len(self.stages))
        ]
        results = self._collect(
            [stage.start(c) for stage, c in zip(self.stages, self._ctxs, strict=True)]
        )
        self._bind()
        now = self.clock.now_us()
        for i, stage in enumerate(self.stages):
            self._timers += [(now + t.interval_us, i, t) for t in stage.timers()]
        self._reschedule()
        if any(inspect.isawaitable(r) for r in results):
            return self._settle(results)  # a live venue reconciles before trading
        return self._emitted_all(results)

    def on_record(self, rec: dict[str, Any]) -> Out:
        return self._ingest(rec)

    def run(self, ctx: Context) -> Awaitable[None] | None:
        return self.stages[0].run(self._ctxs[0])

    def timers(self) -> list[Timer]:
        if self._event_clock is not None or not self._timers:
            return []
        # on a wall clock, stage timers also fire while the market is quiet
        return [Timer(min(t.interval_us for _, _, t in self._timers), self._tick)]

    def stop(self) -> MaybeAsync:
        results = self._collect([stage.stop() for stage in self.stages])
        if any(inspect.isawaitable(r) for r in results):
            return self._settle(results)
        return self._emitted_all(results)

    def process(self, records: Iterable[dict[str, Any]]) -> Iterable[Rec]:
        """Push a whole stream through the chain, start and stop included."""
        self._sync_only = True
        yield from self._sync(self.start(Context(self.clock, self._out.append, log)))
        ingest = self._ingest
        for rec in records:
            yield from ingest(rec)
            if self._out:
                yield from self._take_out()
        yield from self._sync(self.stop())
        yield from self._take_out()

    def _sync(self, result: MaybeAsync) -> Iterable[Rec]:
        assert not inspect.isawaitable(result)  # _collect refused async stages already
        return result or ()

    def _collect(self, results: list[MaybeAsync]) -> list[MaybeAsync]:
        """Under process() there is no event loop: refuse async stages cleanly."""
        if self._sync_only and any(inspect.isawaitable(r) for r in results):
            for r in results:
                if inspect.iscoroutine(r):
                    r.close()
            raise TypeError(
                "an async stage cannot run in Chain.process; run the chain under PipeRunner"
            )
        return results

    # internals ------------------------------------------------------------------------

    def _take_out(self) -> list[Rec]:
        out, self._out = self._out, []
        return out

    async def _settle(self, results: Sequence[MaybeAsync]) -> Out:
        done = [await r if inspect.isawaitable(r) else r for r in results]
        self._bind()  # an async start may have set up what on_record uses
        return self._emitted_all(done)

    def _bind(self) -> None:
        """Look up each stage's on_record and consumes once, not per record."""
        calls: list[_Call] = [
            (stage.on_record, stage.consumes, i == self.feedback_from, i)
            for i, stage in enumerate(self.stages)
        ]
        self._calls = [calls[i:] for i in range(len(calls) + 1)]

    def _emitted_all(self, results: Sequence[MaybeAsync]) -> list[Rec]:
        out: list[Rec] = []
        for i, res in enumerate(results):
            if inspect.isawaitable(res):
                raise TypeError(
                    f"stage {self.stages[i].name} is async; run the chain under PipeRunner"
                )
            out += self._emitted(i, res)
        return out

    def _advance(self, rec: dict[str, Any]) -> list[Rec]:
        """Fire the timers due by this record's ts_event, then move the event clock to it."""
        ts = rec.get("ts_event")
        if type(ts) is not int or ts > MAX_TS_US:  # no time, or not a time: the clock stays
            return []
        if not self._started:
            self._started = True
            if self._event_clock is not None:
                # intervals that elapsed before the first record are skipped: a clock at
                # 0 would otherwise fire every timer for every interval since 1970
                self._timers = [
                    (due + -(-(ts - due) // t.interval_us) * t.interval_us if due < ts else due, i, t)
                    for due, i, t in self._timers
                ]
                self._reschedule()
        out = self._fire_timers(ts) if ts >= self._next_due else []
        if self._event_clock is not None:
            self._event_clock.advance(ts)
        return out

    def _ingest(self, rec: dict[str, Any]) -> list[Rec]:
        """A record entering the chain from outside, and all it causes."""
        self.input = rec
        ts = rec.get("ts_event")
        if type(ts) is int and self._started and ts < self._next_due:
            # no timer due (the usual case): only the event clock moves
            if self._event_clock is not None:
                self._event_clock.advance(ts)
            out = self._through(0, [rec])
        else:
            out = self._advance(rec)
            out += self._through(0, [rec])
        if self._pending:
            out += self._drain_feedback()
        return out

    def _tick(self) -> Out:
        return self._fire_timers(self.clock.now_us())

    def _emitter(self, index: int) -> Callable[[Rec], None]:
        source = index == 0 and not self.stages[0].reads_input

        def emit(rec: Rec) -> None:
            d = rec if type(rec) is dict else to_builtins(rec)  # type: ignore[arg-type]
            # a source's record is its output: it moves event time, then enters stage 1
            out = (self._advance(d) if source else []) + self._emitted(index, (d,))
            for r in out:
                self.ctx.emit(r)

        return emit

    def _emitted(self, index: int, res: Out) -> list[Rec]:
        """Records stage `index` created outside on_record: on through the rest, and around."""
        if not res:
            return []
        recs = [r if type(r) is dict else to_builtins(r) for r in res]  # type: ignore[arg-type]
        if index == self.feedback_from:
            for d in recs:
                self._own[id(d)] = d
                self._pending.append(d)
        return self._through(index + 1, [*recs]) + self._drain_feedback()

    def _through(self, start: int, recs: list[Rec]) -> list[Rec]:
        """`recs` (a list the caller gives away) through the stages from `start` on."""
        own = self._own
        for on_record, consumes, feedback, index in self._calls[start]:
            if len(recs) == 1:  # the usual case, a record on its own: no list per stage
                rec: Any = recs[0]
                if feedback and own and own.pop(id(rec), None) is rec:
                    return []  # our own record, back around the loop
                if consumes is not None and rec["type"] not in consumes:
                    continue
                try:
                    res = on_record(rec)
                except InvalidRecord as exc:
                    recs = self._refused(index, rec, exc)
                    continue
                if type(res) is tuple and len(res) == 1 and res[0] is rec:
                    continue  # forwarded, nothing added
                recs = self._outputs(rec, res, feedback, []) if res else []
                continue
            if not recs:
                return recs
            nxt: list[Rec] = []
            for rec in recs:
                if feedback and own and own.pop(id(rec), None) is rec:
                    continue
                if consumes is not None and rec["type"] not in consumes:
                    nxt.append(rec)
                    continue
                try:
                    res = on_record(rec)
                except InvalidRecord as exc:
                    nxt += self._refused(index, rec, exc)
                    continue
                if type(res) is tuple and len(res) == 1 and res[0] is rec:
                    nxt.append(rec)
                elif res:
                    self._outputs(rec, res, feedback, nxt)
            recs = nxt
        return recs

    def _refused(self, index: int, rec: dict[str, Any], exc: InvalidRecord) -> list[Rec]:
        if self.on_invalid is None:
            raise exc
        return self.on_invalid(index, rec, exc)

    def _outputs(self, rec: Rec, res: Iterable[Rec], feedback: bool, nxt: list[Rec]) -> list[Rec]:
        """Append what a stage returned for `rec` to `nxt`; the feedback stage's own
        records also go around the loop."""
        for r in res:
            if r is rec:
                nxt.append(rec)
                continue
            d = r if type(r) is dict else to_builtins(r)  # type: ignore[arg-type]
            if feedback:
                self._own[id(d)] = d
                self._pending.append(d)
            nxt.append(d)
        return nxt

    def _drain_feedback(self) -> list[Rec]:
        out: list[Rec] = []
        pending = self._pending
        while pending:
            out += self._through(0, [pending.popleft()])
        self._own.clear()  # whatever did not come back was consumed on the way
        return out

    def _reschedule(self) -> None:
        self._next_due = min(due for due, _, _ in self._timers) if self._timers else _NEVER

    def _fire_timers(self, until: int) -> list[Rec]:
        out: list[Rec] = []
        self._timers = [(resume_after_gap(due, t.interval_us, until), i, t) for due, i, t in self._timers]
        while True:
            due, index, timer = min(self._timers, key=lambda t: (t[0], t[1]))
            if due > until:
                self._reschedule()
                return out
            self._timers.remove((due, index, timer))
            self._timers.append((due + timer.interval_us, index, timer))
            if self._event_clock is not None:
                self._event_clock.advance(due)
            out += self._emitted(index, timer.fn())


def run_stage(stage: Stage, **kwargs: Any) -> int:
    """Run a stage under PipeRunner on this process's stdin/stdout."""
    return PipeRunner(stage, **kwargs).run()


__all__ = ["Chain", "PipeRunner", "Record", "run_stage"]
