"""`agkit feed replay FILE...`: recorded NDJSON back into the pipe.

Lines are forwarded byte-for-byte (a replay of a recording reproduces it exactly),
paced by `ts_event`: record n leaves at start + (ts_n - ts_0) / speed; `max_speed`
replays as fast as the pipe drains. Several files are merged by `ts_event` (each file
keeps its own order; ties go to the earlier file). `from_us`/`to_us` bound the replay
by `ts_event` (records without one pass the bounds). Malformed lines follow the
--on-error policy like any stage's input.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Iterator
from typing import IO

from agkit.errors import BadInputError, UsageError
from agkit.feed.base import SourceStage
from agkit.records import now_us
from agkit.stage import Context
from agkit.stream import (
    HEAD_ERRORS,
    RAW_KEEP,
    OnError,
    decode_line,
    head_error,
    open_input,
    read_head,
)

REPORT_FIRST = 20


class ReplayFeed(SourceStage):
    name = "feed replay"

    def __init__(
        self,
        paths: list[str],
        *,
        speed: float = 1.0,
        max_speed: bool = False,
        from_us: int | None = None,
        to_us: int | None = None,
        limit: int = 0,
        on_error: OnError = OnError.SKIP,
        record: str | None = None,
    ) -> None:
        super().__init__(record)
        if not paths:
            raise UsageError("feed replay needs at least one FILE")
        if speed <= 0:
            raise UsageError("--speed must be positive")
        self.paths = paths
        self.speed = speed
        self.max_speed = max_speed
        self.from_us = from_us
        self.to_us = to_us
        self.limit = limit
        self.on_error = on_error
        self.bad = 0
        self.emitted = 0
        self._streams: list[IO[bytes]] = []

    def start(self, ctx: Context) -> None:
        super().start(ctx)
        for path in self.paths:  # fail early, before any output, on a missing file
            try:
                self._streams.append(open_input(path))
            except OSError as exc:
                raise UsageError(f"cannot open {path}: {exc.strerror or exc}") from None

    def _lines(self, index: int) -> Iterator[tuple[int, int, bytes, int | None]]:
        """(merge key, file index, raw line, ts_event or None) of one file's good lines."""
        path = self.paths[index]
        last_ts = 0
        for lineno, raw in enumerate(self._streams[index], 1):
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            rec, reason = decode_line(line)
            if rec is None:
                self._bad(path, lineno, line, reason or "bad record")
                continue
            ts = rec.get("ts_event")
            if type(ts) is int:
                last_ts = ts
            else:
                ts = None
            if ts is not None:
                if self.from_us is not None and ts < self.from_us:
                    continue
                if self.to_us is not None and ts > self.to_us:
                    return
            yield last_ts, index, line, ts

    def _bad(self, path: str, lineno: int, line: bytes, reason: str) -> None:
        self.bad += 1
        where = f"{path} line {lineno}"
        if self.on_error is OnError.FAIL:
            raise BadInputError(f"{where}: {reason}")
        if self.bad <= REPORT_FIRST:
            outcome = "forwarded as an error record" if self.on_error is OnError.EMIT else "skipped"
            self.ctx.log(f"agkit {self.name}: {where}: {reason} ({outcome})")
        if self.on_error is OnError.EMIT:
            now = now_us()
            self.emit(
                {
                    "type": "error",
                    "ts_event": now,
                    "ts_init": now,
                    "line": lineno,
                    "reason": reason,
                    "raw": line[:RAW_KEEP].decode("utf-8", "replace"),
                    "source": self.name,
                }
            )

    def _merged(self) -> Iterator[tuple[int, int, bytes, int | None]]:
        if len(self._streams) == 1:
            return self._lines(0)
        return heapq.merge(*(self._lines(i) for i in range(len(self._streams))))

    async def _fast(self) -> int:
        """--max over one file without bounds: read in blocks, check each line, copy it."""
        stream = self._streams[0]
        path = self.paths[0]
        limit = self.limit or -1
        n = lineno = 0
        partial = b""
        while True:
            chunk = stream.read(1 << 20)
            if not chunk:
                if not partial:
                    break
                chunk, partial = partial + b"\n", b""
            lines = (partial + chunk).split(b"\n")
            partial = lines.pop()
            good: list[bytes] = []
            for line in lines:
                lineno += 1
                if line[-1:] == b"\r":
                    line = line[:-1]
                if not line or line.isspace():
                    continue
                try:
                    read_head(line)  # the check decode_line makes, without building the dict
                except HEAD_ERRORS as exc:
                    self._bad(path, lineno, line, head_error(exc))
                    continue
                good.append(line)
                n += 1
                if n == limit:
                    break
            if good:
                self.emit_lines(good)
            self.flush_now()
            if n == limit:
                return n
            await self.wait_writable()
        return n

    async def run(self, ctx: Context) -> None:
        emit_raw = self.emit_raw
        limit = self.limit or -1
        n = 0
        fast = (
            self.max_speed
            and len(self._streams) == 1
            and self.from_us is None
            and self.to_us is None
            and self.raw_output
            and self.on_error is not OnError.EMIT
        )
        if fast:
            self.emitted = await self._fast()
            return
        if self.max_speed:
            for _key, _i, line, _ts in self._merged():
                emit_raw(line)
                n += 1
                if n == limit:
                    break
                if not n & 4095:
                    await self.wait_writable()
        else:
            t0: int | None = None
            w0 = 0.0
            speed = self.speed
            for _key, _i, line, ts in self._merged():
                if ts is not None and t0 is None:
                    t0, w0 = ts, time.monotonic()
                delay = 0.0 if ts is None or t0 is None else w0 + (ts - t0) / 1e6 / speed - time.monotonic()
                if delay > 0:
                    self.flush_record()
                    await asyncio.sleep(delay)
                emit_raw(line)
                n += 1
                if n == limit:
                    break
                if not n & 1023:
                    await self.wait_writable()
        self.emitted = n

    def stop(self) -> None:
        for stream in self._streams:
            stream.close()
        super().stop()
        if self.bad > REPORT_FIRST:
            self.ctx.log(f"agkit {self.name}: {self.bad} bad lines in all")
