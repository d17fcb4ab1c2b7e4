"""The PostgreSQL backend (psycopg 3).

Ingest: each batch is one transaction. New data is COPYed straight into the tables
(inside a savepoint); when a key is already stored (a replay, a rerun after a crash) the
savepoint is undone and the batch is COPYed into session-local staging tables, then moved
with `INSERT ... SELECT ... ON CONFLICT DO NOTHING` (idempotent either way).
Record tables are range-partitioned by `ts_event` (one partition per UTC day, created
on demand under an advisory lock) with BRIN indexes on time and sequence; when the
`timescaledb` extension is available on the server when the store is created, they are
hypertables instead, with compression and retention policies.
Migrations run under a transaction-level advisory lock, so two processes starting at
once apply them exactly once. Everything is scoped to the connection's current schema
(`?options=-csearch_path%3Dmyschema` selects one).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agkit.errors import AgkitError, ConfigError
from agkit.store.base import DAY_US, Batch, Filters, Store, named_to_pyformat
from agkit.store.migrations import META_DDL, migrations
from agkit.store.schema import RECORD_TABLES, TABLES, Row, ddl_type

if TYPE_CHECKING:
    import psycopg

_SCHEMA_KEY = "coalesce(current_schema(), '')"
# A lost connection during ingest: retry with backoff (0.5 s doubling to 10 s) for 10 minutes.
RECONNECT_FIRST_S = 0.5
RECONNECT_MAX_S = 10.0
RECONNECT_FOR_S = 600.0
_BOUND = re.compile(r"FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)")


def _q(sql: str) -> str:
    return sql.replace("?", "%s")


class PostgresStore(Store):
    backend = "postgresql"
    overlapped_writes = True

    def __init__(self, url: str) -> None:
        import psycopg

        self.url = url
        try:
            self.conn: psycopg.Connection[Any] = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise ConfigError(f"cannot connect to PostgreSQL: {_redact(str(exc))}") from None
        self._ro: psycopg.Connection[Any] | None = None
        self._parts: set[tuple[str, int]] = set()
        self._staging = False
        self._hyper: bool | None = None
        self._insert: dict[str, str] = {}
        self._copy: dict[str, str] = {}
        self._copy_direct: dict[str, str] = {}
        self._types: dict[str, list[str]] = {}
        for table in RECORD_TABLES:
            cols = ", ".join(table.names)
            # binary COPY: the server parses no text (floats above all)
            self._copy[table.name] = f"COPY agkit_stage_{table.name} (ord, {cols}) FROM STDIN (FORMAT BINARY)"
            self._copy_direct[table.name] = f"COPY {table.name} (seq, {cols}) FROM STDIN (FORMAT BINARY)"
            self._types[table.name] = ["int8", *(ddl_type(c.type, "postgresql") for c in table.columns)]
            self._insert[table.name] = (
                f"INSERT INTO {table.name} (seq, {cols}) SELECT %s + ord, {cols} "
                f"FROM agkit_stage_{table.name} ORDER BY ord ON CONFLICT DO NOTHING"
            )

    # -- plain statements -------------------------------------------------------------------

    @contextlib.contextmanager
    def tx(self) -> Iterator[None]:
        with self.conn.transaction():
            yield

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.conn.execute(_q(sql), params or None).rowcount

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self.conn.execute(_q(sql), params or None).fetchall()

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(_q(sql), rows)

    def temp_table(self, name: str, columns: str) -> None:
        self.conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {name} ({columns})")
        self.conn.execute(f"TRUNCATE {name}")

    def analyze(self, name: str, added: int | None = None) -> None:
        if added is not None:
            # Rows written in this transaction are not in pg_stat yet: compare with the
            # row count of the last ANALYZE (-1: never analyzed). Same rule as below.
            (known,) = self.conn.execute(
                "SELECT reltuples FROM pg_class WHERE oid = %s::regclass", (name,)
            ).fetchone() or (-1,)
            if known >= 0 and added <= 50 + 0.1 * known:
                return
        self.conn.execute(f"ANALYZE {name}")

    def refresh_stats(self, table: str, progress: Callable[[str], None]) -> None:
        # Right after a bulk ingest autovacuum may not have analyzed the new data yet, and
        # without statistics the planner picks plans that take minutes per rollup chunk.
        # Autovacuum's own rule, applied now, to the table or its partitions/chunks:
        # never analyzed, or changed rows > 50 + 10% of the live rows.
        stale = self.conn.execute(
            "SELECT s.relid::regclass::text, s.n_mod_since_analyze, "
            "s.last_analyze IS NULL AND s.last_autoanalyze IS NULL FROM pg_stat_user_tables s "
            "JOIN pg_class c ON c.oid = s.relid WHERE c.relkind = 'r' AND (s.relid = %s::regclass "
            "OR s.relid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = %s::regclass)) "
            "AND ((s.last_analyze IS NULL AND s.last_autoanalyze IS NULL) "
            "OR s.n_mod_since_analyze > 50 + 0.1 * s.n_live_tup) ORDER BY 1",
            (table, table),
        ).fetchall()
        for name, changed, never in stale:
            t0 = time.perf_counter()
            self.conn.execute(f"ANALYZE {name}")
            why = "no statistics yet" if never else f"{changed} rows changed since its statistics"
            progress(f"analyzed {name} ({why}; {time.perf_counter() - t0:.1f} s)")
        # BRIN ranges written since the last VACUUM are unsummarized, and a scan must read
        # them all: the rollup's `seq > watermark` would read every partition whole.
        self.conn.execute(
            "SELECT brin_summarize_new_values(i.indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
            "JOIN pg_stat_user_tables s ON s.relid = i.indrelid WHERE a.amname = 'brin' AND c.relkind = 'i' "
            "AND (s.n_ins_since_vacuum > 0 OR (s.last_vacuum IS NULL AND s.last_autovacuum IS NULL)) "
            "AND (i.indrelid = %s::regclass "
            "OR i.indrelid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = %s::regclass))",
            (table, table),
        )

    # -- schema ------------------------------------------------------------------------------------

    def version(self) -> int:
        (exists,) = self.conn.execute("SELECT to_regclass('agkit_schema') IS NOT NULL").fetchone() or (False,)
        if not exists:
            return 0
        (v,) = self.conn.execute("SELECT coalesce(max(version), 0) FROM agkit_schema").fetchone() or (0,)
        return int(v)

    def hypertables(self) -> bool:
        """Whether the record tables are (in a new store: will be) TimescaleDB hypertables.

        A new store uses TimescaleDB when the server has the extension available
        (pg_available_extensions); an existing one keeps what it was created as."""
        if self._hyper is None:
            if self.version() == 0:
                got = self.conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
                self._hyper = got is not None
            else:
                (partitioned,) = self.conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'trades'::regclass)"
                ).fetchone() or (True,)
                self._hyper = not partitioned
        return self._hyper

    def migrate(self) -> list[int]:
        if self.version() >= migrations("postgresql")[-1][0]:
            return []
        applied = []
        with self.conn.transaction():
            (schema,) = self.conn.execute("SELECT current_schema()").fetchone() or (None,)
            if schema is None:
                raise ConfigError("no current schema: the search_path names no existing schema")
            self.conn.execute(f"SELECT pg_advisory_xact_lock(hashtext({_SCHEMA_KEY} || ':agkit-migrate'))")
            for stmt in META_DDL:
                self.conn.execute(stmt.replace("INTEGER PRIMARY KEY", "integer PRIMARY KEY"))
            current = self.version()
            self._hyper = None  # decided under the lock, from what is there now
            hyper = self.hypertables()
            if hyper:
                self.conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            for version, name, statements in migrations("postgresql", hypertables=hyper):
                if version <= current:
                    continue
                for stmt in statements:
                    self.conn.execute(stmt)
                self.conn.execute(
                    "INSERT INTO agkit_schema (version, name, applied_at) VALUES (%s, %s, %s)",
                    (version, name, time.time_ns() // 1000),
                )
                applied.append(version)
        return applied

    # -- ingest ------------------------------------------------------------------------------------

    def _ensure_staging(self) -> None:
        if self._staging:
            return
        for table in RECORD_TABLES:
            cols = ", ".join(f"{c.name} {ddl_type(c.type, 'postgresql')}" for c in table.columns)
            self.conn.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS agkit_stage_{table.name} (ord bigint, {cols}) "
                "ON COMMIT DELETE ROWS"
            )
        self._staging = True

    def _ensure_partitions(self, batch: Batch) -> None:
        if self.hypertables():
            return
        missing: set[tuple[str, int]] = set()
        for table, rows in batch.rows.items():
            days = {r[1] // DAY_US for r in rows}
            missing |= {(table, d) for d in days if (table, d) not in self._parts}
        if not missing:
            return
        with self.conn.transaction():
            self.conn.execute(f"SELECT pg_advisory_xact_lock(hashtext({_SCHEMA_KEY} || ':agkit-partition'))")
            for table, day in sorted(missing):
                self.conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {partition_name(table, day)} PARTITION OF {table} "
                    f"FOR VALUES FROM ({day * DAY_US}) TO ({(day + 1) * DAY_US})"
                )
        self._parts |= missing

    def write_batch(self, batch: Batch) -> int:
        """One transaction; a lost connection (server restart, terminated backend) is
        re-opened with backoff and the batch retried: the keys make the retry safe."""
        if not batch.n:
            return 0
        import psycopg

        delay = RECONNECT_FIRST_S
        deadline = time.monotonic() + RECONNECT_FOR_S
        while True:
            try:
                if self.conn.broken or self.conn.closed:
                    self._reconnect()
                return self._write_once(batch)
            except psycopg.Error as exc:
                self._parts.clear()  # a partition may have been dropped meanwhile (retention)
                lost = isinstance(exc, psycopg.OperationalError) and (self.conn.broken or self.conn.closed)
                if not lost or time.monotonic() + delay > deadline:
                    raise AgkitError(f"PostgreSQL write failed: {_redact(str(exc).strip())}") from None
                self.log(
                    f"agkit store: PostgreSQL connection lost ({_redact(str(exc).strip())}); "
                    f"reconnecting in {delay:.1f} s, then retrying the batch of {batch.n} records"
                )
                time.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)

    def _reconnect(self) -> None:
        import psycopg

        with contextlib.suppress(Exception):
            self.conn.close()
        self.conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        self._staging = False  # temp tables went with the old session
        self.log("agkit store: PostgreSQL connection re-established")

    def _write_once(self, batch: Batch) -> int:
        import psycopg

        self._ensure_partitions(batch)
        conn = self.conn
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("UPDATE agkit_meta SET value = value + %s WHERE key = 'seq' RETURNING value", (batch.n,))
            (top,) = cur.fetchone() or (0,)
            base = top - batch.n + 1
            # New data (the usual case): COPY straight into the tables. A key already
            # stored (a replay, a rerun after a crash) undoes that savepoint, and the batch
            # goes through the staging tables and ON CONFLICT DO NOTHING instead.
            try:
                with conn.transaction():
                    for table, rows in batch.rows.items():
                        with cur.copy(self._copy_direct[table]) as copy:
                            copy.set_types(self._types[table])
                            write = copy.write_row
                            for row in rows:
                                write((base + row[0], *row[1:]))
                return batch.n
            except psycopg.errors.UniqueViolation:
                pass
            self._ensure_staging()
            new = 0
            for table, rows in batch.rows.items():
                with cur.copy(self._copy[table]) as copy:
                    copy.set_types(self._types[table])
                    write = copy.write_row
                    for row in rows:
                        write(row)
            for table in batch.rows:
                cur.execute(self._insert[table], (base,))
                new += cur.rowcount
        return new

    # -- reading ------------------------------------------------------------------------------------

    def export(self, filters: Filters) -> Iterator[str]:
        with self.conn.transaction():
            self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield from super().export(filters)

    def ordered(self, table: str, where: str, params: Sequence[Any]) -> Iterator[tuple[int, int, str]]:
        with self.conn.cursor(name=f"agkit_export_{table}") as cur:
            cur.itersize = 10_000
            cur.execute(
                _q(f"SELECT ts_event, seq, raw FROM {table} WHERE {where} ORDER BY ts_event, seq"),
                params or None,
            )
            yield from cur

    def read_only(
        self, sql: str, params: Sequence[Any] | dict[str, Any]
    ) -> tuple[list[str], Iterator[Row]]:
        import psycopg

        if self._ro is None:
            from psycopg.conninfo import conninfo_to_dict, make_conninfo

            info = conninfo_to_dict(self.url)
            info["options"] = f"{info.get('options') or ''} -c default_transaction_read_only=on".strip()
            info["connect_timeout"] = 10
            self._ro = psycopg.connect(make_conninfo("", **info), autocommit=False)
            self._ro.read_only = True
        conn = self._ro
        query = named_to_pyformat(sql) if isinstance(params, dict) else _q(sql)
        cur = conn.cursor()
        try:
            cur.execute(query, params, prepare=True)  # prepared: exactly one statement
        except psycopg.Error as exc:
            conn.rollback()
            raise AgkitError(f"query failed: {str(exc).strip()}") from None
        except KeyError as exc:
            conn.rollback()
            raise AgkitError(f"query needs --param {exc.args[0]}=VALUE") from None
        if cur.description is None:  # a statement without a result (SET, SHOW-less commands)
            conn.rollback()
            return [], iter(())
        names = [d.name for d in cur.description]

        def it() -> Iterator[Row]:
            try:
                while True:
                    chunk = cur.fetchmany(5000)
                    if not chunk:
                        return
                    yield from chunk
            finally:
                conn.rollback()

        return names, it()

    def json_field(self, column: str, key: str) -> str:
        return f"({column}::jsonb ->> '{key}')"

    def table_bytes(self) -> dict[str, int]:
        out = {}
        for name in TABLES:
            (size,) = self.conn.execute(
                "SELECT coalesce(sum(pg_total_relation_size(relid)), 0) FROM pg_partition_tree(%s::regclass)",
                (name,),
            ).fetchone() or (0,)
            out[name] = int(size)
        return out

    def partitions(self, table: str) -> list[tuple[str, int, int]]:
        """(name, from, to) of a partitioned table's partitions."""
        got = self.conn.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
            (table,),
        ).fetchall()
        out = []
        for name, bound in got:
            m = _BOUND.search(bound or "")
            if m:
                out.append((name, int(m.group(1)), int(m.group(2))))
        return out

    def delete_before(self, table: str, cutoff: int, progress: Any) -> int:
        spec = TABLES[table]
        ts = "ts_event" if spec.raw else ("day" if table == "pnl_daily" else "bucket")
        total = 0
        if spec.raw and not self.hypertables():
            for name, _lo, hi in sorted(self.partitions(table), key=lambda p: p[1]):
                if hi > cutoff:
                    continue
                with self.conn.transaction():
                    (n,) = self.conn.execute(f"SELECT count(*) FROM {name}").fetchone() or (0,)
                    self.conn.execute(f"DROP TABLE {name}")
                total += int(n)
                progress(f"{table}: dropped partition {name} ({n} rows)")
            self._parts.clear()
        elif spec.raw:
            self.conn.execute(
                "SELECT drop_chunks(%s::regclass, older_than => %s::bigint)", (table, cutoff)
            )
        with self.conn.transaction():
            total += self.conn.execute(f"DELETE FROM {table} WHERE {ts} < %s", (cutoff,)).rowcount
        progress(f"{table}: {total} rows deleted")
        return total

    @contextlib.contextmanager
    def bulk_session(self) -> Iterator[None]:
        # The planner overestimates rollup joins by orders of magnitude, so JIT would spend
        # ~0.6 s compiling each statement; sorts of a 500k-row chunk fit in 64 MB, not 4.
        self.conn.execute("SET jit = off")
        self.conn.execute("SET work_mem = '64MB'")
        try:
            yield
        finally:
            if not (self.conn.broken or self.conn.closed):
                self.conn.execute("RESET jit")
                self.conn.execute("RESET work_mem")

    # -- locks ------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def rollup_lock(self, wait: bool) -> Iterator[bool]:
        key = f"hashtext({_SCHEMA_KEY} || ':agkit-rollup')"
        if wait:
            self.conn.execute(f"SELECT pg_advisory_lock({key})")
        else:
            (got,) = self.conn.execute(f"SELECT pg_try_advisory_lock({key})").fetchone() or (False,)
            if not got:
                yield False
                return
        try:
            yield True
        finally:
            with contextlib.suppress(Exception):
                self.conn.execute(f"SELECT pg_advisory_unlock({key})")

    def close(self) -> None:
        for conn in (self._ro, self.conn):
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()


def partition_name(table: str, day: int) -> str:
    try:
        stamp = datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y%m%d")
    except (OverflowError, OSError, ValueError):
        stamp = f"d{day}" if day >= 0 else f"m{-day}"
    return f"{table}_{stamp}"


def _redact(text: str) -> str:
    return re.sub(r"password=\S+", "password=***", re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", text))
