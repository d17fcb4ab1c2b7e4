"""The backend interface every store implements (SQLite, PostgreSQL), and the logic the
backends share: batching rows with a global sequence, export in time order, read-only
queries, stats and retention plans. SQL here uses `?` placeholders and no `%`, so the
PostgreSQL backend can translate it to psycopg's `%s` mechanically."""

from __future__ import annotations

import contextlib
import heapq
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import orjson

from agkit.errors import InvalidRecord
from agkit.store.schema import RECORD_TABLES, TABLE_OF_TYPE, TABLES, Row, Table, batch_row, line_row
from agkit.stream import decode_line

DAY_US = 86_400_000_000


@dataclass
class Batch:
    """Rows waiting for one transaction, per table. Each row starts with its place in the
    batch (`ord`), which becomes its global sequence number once written (base + ord).
    A `flat` batch keeps each table's rows laid end to end in one list of values (what
    SQLite's multi-row INSERT binds), other batches a tuple per row (what COPY takes)."""

    rows: dict[str, list[Any]] = field(default_factory=dict)
    n: int = 0
    flat: bool = False

    def add(self, rec: dict[str, Any], raw: str | None = None) -> None:
        """Validate and add one record (`raw`: its JSON line); InvalidRecord adds nothing."""
        self._append(*batch_row(rec, self.n, raw))

    def add_line(self, line: bytes) -> bool:
        """Validate and add one input line, stored as it came (as its compact encoding if
        whitespace surrounds the object). False for a blank line; InvalidRecord (with the
        reason) for a line that is not a storable record."""
        raw = _as_text(line) if line[:1] == b"{" and line[-1:] == b"}" else None  # else re-encoded
        got = line_row(line, raw, self.n) if raw is not None else None
        if got is None:
            rec = _record(line)
            if rec is None:  # the careful decoder says what is wrong
                rec, reason = decode_line(line)
                if rec is None:
                    if not line.strip():
                        return False
                    raise InvalidRecord(reason or "not a record")
            got = batch_row(rec, self.n, raw)
        self._append(*got)
        return True

    def _append(self, table: str, row: Row) -> None:
        rows = self.rows.get(table)
        if rows is None:
            rows = self.rows[table] = []
        if self.flat:
            rows += row
        else:
            rows.append(row)
        self.n += 1

    def values(self) -> dict[str, list[Any]]:
        """Each table's rows laid end to end."""
        if self.flat:
            return self.rows
        return {table: list(chain.from_iterable(rows)) for table, rows in self.rows.items()}


def _as_text(line: bytes) -> str | None:
    """The line as text; None if it is not UTF-8 (the careful decoder says so)."""
    try:
        return line.decode()
    except UnicodeDecodeError:
        return None


def _record(line: bytes) -> dict[str, Any] | None:
    """A JSON object with a string `type` (and no feedback tag, which the careful decoder
    checks), in one decode; None for anything else."""
    try:
        rec = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return rec if type(rec) is dict and type(rec.get("type")) is str and "_fb" not in rec else None


@dataclass
class Filters:
    """Selection for export and named queries (all optional; bound, never interpolated)."""

    since: int | None = None  # ts_event >= since (µs)
    until: int | None = None  # ts_event < until (µs)
    types: Sequence[str] = ()
    market: str | None = None
    asset: str | None = None
    strategy: str | None = None


@dataclass
class TableStats:
    table: str
    rows: int
    bytes: int | None
    ts_min: int | None
    ts_max: int | None


class Store:
    """One database. Subclasses: SqliteStore, PostgresStore."""

    backend: str = "?"
    url: str
    # write_batch may run in a writer thread while the stage decodes the next batch
    # (worth it only where the write mostly waits without holding the GIL).
    overlapped_writes: bool = False

    def log(self, message: str) -> None:
        """A line for people on stderr (IngestStage routes it through its context)."""
        sys.stderr.write(message + "\n")
        sys.stderr.flush()

    # -- backend primitives ---------------------------------------------------------------

    def migrate(self) -> list[int]:
        """Apply missing migrations (safe when several processes start at once)."""
        raise NotImplementedError

    def version(self) -> int:
        raise NotImplementedError

    def write_batch(self, batch: Batch) -> int:
        """Insert a batch in one transaction; returns the number of new rows."""
        raise NotImplementedError

    def tx(self) -> AbstractContextManager[None]:
        """A write transaction."""
        raise NotImplementedError

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement (`?` placeholders); returns the row count."""
        raise NotImplementedError

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        raise NotImplementedError

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        raise NotImplementedError

    def temp_table(self, name: str, columns: str) -> None:
        """Create (or empty) a connection-local scratch table."""
        raise NotImplementedError

    def analyze(self, name: str, added: int | None = None) -> None:
        """Refresh planner statistics of a table (where the backend needs it); with
        `added`, the rows just written, only when they change its size by more than 10%."""

    def refresh_stats(self, table: str, progress: Callable[[str], None]) -> None:
        """Before a rollup reads a table (where the backend needs it): ANALYZE the parts
        whose planner statistics are missing or stale, naming each on `progress`, and
        summarize new BRIN ranges."""

    @contextlib.contextmanager
    def bulk_session(self) -> Iterator[None]:
        """Session settings for large set-based statements (rollups), undone afterwards."""
        yield

    def rollup_lock(self, wait: bool) -> AbstractContextManager[bool]:
        """An exclusive lock across processes for rollup; yields False if not acquired."""
        raise NotImplementedError

    def read_only(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> tuple[list[str], Iterator[Row]]:
        """Run SQL on a read-only connection; (column names, rows)."""
        raise NotImplementedError

    def ordered(self, table: str, where: str, params: Sequence[Any]) -> Iterator[tuple[int, int, str]]:
        """(ts_event, seq, raw) of a record table in time order, streamed."""
        raise NotImplementedError

    def table_bytes(self) -> dict[str, int]:
        raise NotImplementedError

    def json_field(self, column: str, key: str) -> str:
        """SQL text extracting a top-level string field of a JSON text column."""
        raise NotImplementedError

    def delete_before(self, table: str, cutoff: int, progress: Any) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- shared ---------------------------------------------------------------------------

    def meta(self, key: str) -> int:
        got = self.rows("SELECT value FROM agkit_meta WHERE key = ?", (key,))
        return int(got[0][0]) if got else 0

    def set_meta(self, key: str, value: int) -> None:
        self.execute(
            "INSERT INTO agkit_meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def export(self, filters: Filters) -> Iterator[str]:
        """Stored records as their JSON lines, in (ts_event, ingest order)."""
        streams = []
        for table in export_tables(filters.types):
            clause = self._export_where(table, filters)
            if clause is None:
                continue
            where, params = clause
            streams.append(self.ordered(table.name, where, params))
        for _, _, raw in heapq.merge(*streams):
            yield raw

    def _export_where(self, table: Table, f: Filters) -> tuple[str, list[Any]] | None:
        conds: list[str] = []
        params: list[Any] = []
        if f.since is not None:
            conds.append("ts_event >= ?")
            params.append(f.since)
        if f.until is not None:
            conds.append("ts_event < ?")
            params.append(f.until)
        if f.types and table.name in ("order_events", "records"):
            wanted = [t for t in f.types if TABLE_OF_TYPE.get(t, "records") == table.name]
            conds.append("type IN (" + ",".join("?" * len(wanted)) + ")")
            params += wanted
        for col, value in (("market", f.market), ("asset", f.asset)):
            if value is None:
                continue
            if table.name == "order_events":
                conds.append(
                    f"({col} = ? OR id IN (SELECT id FROM order_events s "
                    f"WHERE s.type = 'submit_order' AND s.{col} = ?))"
                )
                params += [value, value]
            elif table.name == "records":
                conds.append(f"{self.json_field('raw', col)} = ?")
                params.append(value)
            elif col in table.names:
                conds.append(f"{col} = ?")
                params.append(value)
            else:
                return None  # this table has no such column: nothing of it matches
        return (" AND ".join(conds) or "TRUE"), params

    def stats(self) -> list[TableStats]:
        sizes = self.table_bytes()
        out = []
        for table in TABLES.values():
            ts = "ts_event" if table.raw else ("day" if table.name == "pnl_daily" else "bucket")
            (n, lo, hi), = self.rows(f"SELECT count(*), min({ts}), max({ts}) FROM {table.name}")
            out.append(TableStats(table.name, int(n), sizes.get(table.name), lo, hi))
        return out

    def retention_plan(self, keep: dict[str, int | None], now_us: int) -> list[tuple[str, int, int]]:
        """(table, cutoff µs, rows older than the cutoff) for every table with a limit."""
        plan = []
        for name, days in keep.items():
            if days is None:
                continue
            table = TABLES[name]
            ts = "ts_event" if table.raw else ("day" if name == "pnl_daily" else "bucket")
            cutoff = now_us - days * DAY_US
            (n,), = self.rows(f"SELECT count(*) FROM {name} WHERE {ts} < ?", (cutoff,))
            plan.append((name, cutoff, int(n)))
        return plan


def export_tables(types: Sequence[str]) -> list[Table]:
    if not types:
        return list(RECORD_TABLES)
    names = {TABLE_OF_TYPE.get(t, "records") for t in types}
    return [t for t in RECORD_TABLES if t.name in names]


class Progress:
    """Progress lines on stderr for long work, at most one every `every` seconds."""

    def __init__(self, log: Any, what: str, enabled: bool, every: float = 2.0) -> None:
        self.log = log
        self.what = what
        self.enabled = enabled
        self.every = every
        self.last = time.monotonic()

    def __call__(self, message: str, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if force or now - self.last >= self.every:
            self.last = now
            self.log(f"agkit store {self.what}: {message}")


_NAMED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|(?<!:):([A-Za-z_][A-Za-z0-9_]*)")


def named_to_pyformat(sql: str) -> str:
    """`:name` placeholders -> psycopg `%(name)s` (outside quotes; `::casts` kept; % doubled)."""
    sql = sql.replace("%", "%%")

    def sub(m: re.Match[str]) -> str:
        return m.group(0) if m.group(1) is None else f"%({m.group(1)})s"

    return _NAMED.sub(sub, sql)
