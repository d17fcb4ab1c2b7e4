"""`store ingest` as a stage: a sink, or a pass-through with --tee.

Rows are batched by size and by time (a Timer flushes a partial batch), one
transaction per batch. The database writes one batch while the stage decodes the next,
in a child process started at the first full batch (agkit.store.writer: SQLite binds and
psycopg encodes COPY rows holding the GIL, so a thread would not overlap); before that,
and for a store handed in by the caller, PostgreSQL writes in a thread and SQLite in the
stage itself. The child holds at most two batches (one being written, one read ahead)
and a flush waits for room, so at most three batches exist: while the database is busy
the runner stops reading stdin (back-pressure, never unbounded memory). `stop()` (EOF, SIGTERM,
SIGINT, a closed stdout) commits what was received.
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agkit.errors import AgkitError
from agkit.stage import Context, Out, Stage, Timer
from agkit.store.base import Batch, Store
from agkit.store.sqlite import SqliteStore
from agkit.store.writer import ChildWriter

CHILD_IN_FLIGHT = 2  # one batch being written by the child, one read ahead


class IngestStage(Stage):
    name = "store ingest"
    consumes = None
    takes_lines = True

    def __init__(
        self,
        db: str | None = None,
        *,
        batch_size: int = 50_000,
        flush_ms: int = 500,
        tee: bool = False,
        progress: bool = False,
        store: Store | None = None,
    ) -> None:
        self.db = db
        self.batch_size = max(1, batch_size)
        self.flush_ms = max(1, flush_ms)
        self.tee = tee
        self.progress = progress
        self.store = store
        self.batch = Batch()
        self.records = 0
        self.new_rows = 0
        self.batches = 0
        self._started = time.monotonic()
        self._last_report = self._started
        self._own_store = store is None
        self._writer: ThreadPoolExecutor | None = None
        self._child: ChildWriter | None = None
        self._use_child = False
        self._pending: deque[Callable[[], int]] = deque()  # results of the writes in flight, oldest first

    def start(self, ctx: Context) -> Out:
        self.ctx = ctx
        if self.store is None:
            from agkit.store import open_store

            self.store = open_store(self.db)
        self.store.log = ctx.log  # type: ignore[method-assign]
        if self.store.overlapped_writes:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="store-writer")
        store = self.store
        self._use_child = self._own_store and not (isinstance(store, SqliteStore) and store.path == ":memory:")
        self.batch.flat = isinstance(store, SqliteStore)  # the form SQLite's INSERTs bind
        return None

    def on_record(self, rec: dict[str, Any]) -> Out:
        self.batch.add(rec)  # InvalidRecord -> the runner's --on-error policy
        self._added()
        return (rec,) if self.tee else None

    def on_line(self, line: bytes) -> bool:
        # Lines are decoded here, not by the runner: books and trades in one typed pass
        # straight to their rows, and every line is stored as it came.
        if not self.batch.add_line(line):  # InvalidRecord -> the runner's --on-error policy
            return False
        self._added()
        return self.tee

    def _added(self) -> None:
        self.records += 1
        if self.batch.n >= self.batch_size:
            self.flush()

    def timers(self) -> list[Timer]:
        return [Timer(self.flush_ms * 1000, self._tick)]

    def _tick(self) -> Out:
        if self.batch.n:
            self.flush()
        return None

    def flush(self) -> None:
        """Hand the batch to the writer: the child takes it while one earlier batch is
        still being written; a thread or the stage itself after the previous write."""
        store = self.store
        if not self.batch.n or store is None:
            return
        batch, self.batch = self.batch, Batch(flat=self.batch.flat)
        if self._child is None and self._use_child and batch.n >= self.batch_size:
            self.wait()  # what was written in-process so far, first
            self._child = ChildWriter(store.url)  # a full batch: a stream worth a second process
        if self._child is not None:
            while len(self._pending) >= CHILD_IN_FLIGHT:
                self._collect()
            self._child.send(batch)
            self._pending.append(self._child.result)
        else:
            self.wait()
            if self._writer is not None:
                self._pending.append(self._writer.submit(store.write_batch, batch).result)
            else:
                self._pending.append(functools.partial(store.write_batch, batch))
                self.wait()
        self._report()

    def _report(self) -> None:
        if self.progress:
            now = time.monotonic()
            if now - self._last_report >= 2.0:
                self._last_report = now
                self.ctx.log(f"agkit store ingest: {self.records} records, {self.new_rows} new rows")

    def wait(self) -> None:
        """Wait for every batch being written."""
        while self._pending:
            self._collect()

    def _collect(self) -> None:
        """The result of the oldest write; its failure is ours (a clear message, exit 1)."""
        pending = self._pending.popleft()
        try:
            self.new_rows += pending()
        except AgkitError:
            raise
        except Exception as exc:  # the database refused the batch
            raise AgkitError(f"cannot write to the store: {type(exc).__name__}: {exc}") from None
        self.batches += 1

    def stop(self) -> Out:
        try:
            self.flush()
            self.wait()
        finally:
            if self._writer is not None:
                self._writer.shutdown()
            if self._child is not None:
                self._child.close()
            if self.store is not None and self._own_store:
                self.store.close()
        if self.progress:
            secs = max(time.monotonic() - self._started, 1e-9)
            self.ctx.log(
                f"agkit store ingest: {self.records} records, {self.new_rows} new rows, "
                f"{self.records - self.new_rows} already stored, {self.batches} batches, "
                f"{self.records / secs:,.0f} records/s"
            )
        return None
