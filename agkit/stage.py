"""The stage protocol: a stage is a library object that takes a record and returns
the records it emits.

    class Upper(Stage):
        name = "upper"
        consumes = frozenset({"trade"})           # other types pass through untouched

        def on_record(self, rec):                 # rec is the decoded dict
            return [rec, {"type": "metric", ...}]  # `rec` itself = forward it unchanged

The same object runs under `PipeRunner` (stdin -> stdout, one process per stage) and
under `Chain` (several stages in one process, for `agkit run` and `agkit backtest`).

Rules a stage follows:
- `on_record` returns an iterable of records (dicts or `agkit.records.Record`) or None.
  Returning the input object forwards it byte-for-byte; records it creates follow it.
- It reads time from `ctx.clock` (event time under Chain), never from the wall clock,
  so backtests are deterministic.
- It raises `agkit.errors.InvalidRecord` for a record it cannot accept; the runner
  applies the --on-error policy (fail, skip, emit) with the line number.
- Sources (feeds) implement `async run(ctx)` and emit with `ctx.emit`; stages holding
  sockets do the same. `timers()` lists periodic callbacks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from agkit.records import Record

if TYPE_CHECKING:
    from agkit.clock import Clock

Rec = dict[str, Any] | Record
Out = Iterable[Rec] | None
MaybeAsync = Out | Awaitable[Out]  # start/stop of a stage holding sockets may be async


@dataclass(frozen=True)
class Timer:
    """Call `fn` every `interval_us` microseconds of the runner's clock."""

    interval_us: int
    fn: Callable[[], Out]


class Context:
    """What a runner gives a stage: the clock, ways to emit, and a stderr logger.

    `emit_raw`, `backlog` and `flush` let a source forward recorded lines byte for byte
    and apply back-pressure (conflate, or wait) when stdout's reader lags; a runner
    without an output buffer (Chain) decodes raw lines and reports no backlog."""

    def __init__(
        self,
        clock: Clock,
        emit: Callable[[Rec], None],
        log: Callable[[str], None],
        *,
        emit_raw: Callable[[bytes], None] | None = None,
        backlog: Callable[[], int] | None = None,
        flush: Callable[[], None] | None = None,
    ):
        self.clock = clock
        self._emit = emit
        self._log = log
        self._emit_raw = emit_raw
        self._backlog = backlog
        self._flush = flush

    def emit(self, rec: Rec) -> None:
        """Emit a record outside `on_record` (from a socket, a timer, a source loop)."""
        self._emit(rec)

    def emit_raw(self, line: bytes) -> None:
        """Emit one already-encoded record line (without its newline), unchanged."""
        if self._emit_raw is not None:
            self._emit_raw(line)
        else:
            import orjson

            self._emit(orjson.loads(line))

    @property
    def writes_raw(self) -> bool:
        """Whether emit_raw writes the bytes as they are (a pipe) rather than decoding
        them (a Chain): a source that can produce either should pick accordingly."""
        return self._emit_raw is not None

    def backlog(self) -> int:
        """Bytes emitted but not yet taken by the reader of stdout."""
        return self._backlog() if self._backlog is not None else 0

    def flush(self) -> None:
        """Write what stdout accepts now."""
        if self._flush is not None:
            self._flush()

    def log(self, message: str) -> None:
        """One line for people, on stderr."""
        self._log(message)


class Stage:
    """Base class; every hook is optional."""

    name: ClassVar[str] = "stage"
    # Record types given to on_record; None means every type. Others pass through.
    consumes: ClassVar[frozenset[str] | None] = None
    # True for sources that produce records without reading stdin (feeds).
    reads_input: ClassVar[bool] = True
    # True: the pipe runner hands every input line to on_line undecoded (a sink that keeps
    # records as JSON and decodes only what it needs: store ingest). Others call on_record.
    takes_lines: ClassVar[bool] = False

    ctx: Context

    def start(self, ctx: Context) -> MaybeAsync:
        self.ctx = ctx
        return None

    def on_record(self, rec: dict[str, Any]) -> Out:
        return (rec,)

    def on_line(self, line: bytes) -> bool:
        """One input line (no newline), when `takes_lines` is set: returns whether the
        line goes on downstream unchanged; raises InvalidRecord for a line it refuses."""
        raise NotImplementedError

    def timers(self) -> list[Timer]:
        return []

    def run(self, ctx: Context) -> Awaitable[None] | None:
        """Optional source coroutine (e.g. a WebSocket loop); ends the stage when it returns."""
        return None

    def stop(self) -> MaybeAsync:
        return None
