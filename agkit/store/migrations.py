"""Versioned schema migrations, generated per backend from the table definitions.

A migration is (version, name, statements). Versions only ever get appended; an
applied migration is never edited. `agkit_schema` records what was applied and when.
"""

from __future__ import annotations

from agkit.store.base import DAY_US
from agkit.store.schema import RECORD_TABLES, RETENTION_DAYS, ROLLUP_TABLES, TABLES, Table, ddl_type

Migration = tuple[int, str, list[str]]

COMPRESS_AFTER_DAYS = 7  # chunks older than this are compressed (late data rarely reaches them)

def _filled(backend: str) -> str:
    sub = (
        "(SELECT coalesce(sum(x.size), 0) FROM (SELECT f.trade_id, max(f.size) AS size FROM fills f "
        "WHERE f.id = s.id GROUP BY f.trade_id "
        "HAVING sum(CASE WHEN f.settlement = 'failed' THEN 1 ELSE 0 END) = 0) x)"
    )
    return sub


def orders_view(backend: str) -> str:
    filled = _filled(backend)
    return f"""CREATE VIEW orders AS
SELECT id, strategy, venue, market, asset, side, price, size, submitted_at, last_event,
       updated_at, filled_size,
       CASE WHEN filled_size >= size THEN 'filled'
            WHEN last_event = 'order_canceled' THEN 'canceled'
            WHEN last_event = 'order_expired' THEN 'expired'
            WHEN last_event = 'order_rejected' THEN 'rejected'
            WHEN last_event = 'order_denied' THEN 'denied'
            WHEN filled_size > 0 THEN 'partially_filled'
            WHEN last_event = 'order_accepted' THEN 'open'
            WHEN last_event = 'cancel_order' THEN 'cancel_requested'
            ELSE 'submitted' END AS status
FROM (SELECT s.id, s.strategy, s.venue, s.market, s.asset, s.side, s.price, s.size,
             s.ts_event AS submitted_at,
             (SELECT e.type FROM order_events e WHERE e.id = s.id
              ORDER BY e.ts_event DESC, e.seq DESC LIMIT 1) AS last_event,
             (SELECT max(e.ts_event) FROM order_events e WHERE e.id = s.id) AS updated_at,
             {filled} AS filled_size
      FROM order_events s WHERE s.type = 'submit_order') o"""


def _columns(table: Table, backend: str) -> list[str]:
    cols = []
    for c in table.columns:
        null = "" if c.nullable else " NOT NULL"
        cols.append(f"{c.name} {ddl_type(c.type, backend)}{null}")
    return cols


# The keys migration 1 created where a later migration changed them (migration 1 never
# changes: a database created with it must come out of the later ones the same).
V1_KEYS = {"positions": ("market", "asset", "ts_event"), "metrics": ("name", "labels", "ts_event")}
STATE_KEYED = ("positions", "metrics")  # migration 3 widened their keys


def initial(backend: str, partitioned: bool = True, hypertables: bool = False) -> list[str]:
    """Migration 1: every table, key and index."""
    sql: list[str] = []
    for table in RECORD_TABLES:
        cols = _columns(table, backend)
        key = ", ".join(V1_KEYS.get(table.name, table.key))
        if backend == "sqlite":
            sql.append(
                f"CREATE TABLE {table.name} (seq INTEGER PRIMARY KEY, {', '.join(cols)}, UNIQUE ({key}))"
            )
            sql.append(f"CREATE INDEX {table.name}_ts ON {table.name} (ts_event)")
        else:
            part = " PARTITION BY RANGE (ts_event)" if partitioned and not hypertables else ""
            sql.append(
                f"CREATE TABLE {table.name} (seq bigint NOT NULL, {', '.join(cols)}, "
                f"PRIMARY KEY ({key})){part}"
            )
            if hypertables:
                sql.append(
                    f"SELECT create_hypertable('{table.name}', 'ts_event', "
                    f"chunk_time_interval => 86400000000::bigint)"
                )
                sql.append(f"CREATE INDEX {table.name}_seq ON {table.name} (seq)")
            else:
                sql.append(f"CREATE INDEX {table.name}_ts ON {table.name} USING brin (ts_event)")
                sql.append(f"CREATE INDEX {table.name}_seq ON {table.name} USING brin (seq)")
        for idx in table.indexes:
            sql.append(f"CREATE INDEX {table.name}_{'_'.join(idx)} ON {table.name} ({', '.join(idx)})")
    for table in ROLLUP_TABLES:
        cols = _columns(table, backend)
        sql.append(f"CREATE TABLE {table.name} ({', '.join(cols)}, PRIMARY KEY ({', '.join(table.key)}))")
    sql.append(orders_view(backend))
    sql.append(LATEST_POSITIONS_VIEW)
    sql.append("INSERT INTO agkit_meta (key, value) VALUES ('seq', 0)")
    return sql


LATEST_POSITIONS_VIEW = (
    "CREATE VIEW latest_positions AS SELECT p.market, p.asset, p.size, p.avg_price, "
    "p.realized_pnl, p.fees, p.ts_event FROM positions p WHERE p.seq = (SELECT q.seq FROM "
    "positions q WHERE q.market = p.market AND q.asset = p.asset "
    "ORDER BY q.ts_event DESC, q.seq DESC LIMIT 1)"
)


def state_keys(backend: str, hypertables: bool = False) -> list[str]:
    """Migration 3: positions and metrics keyed by their state too. Keyed by time alone,
    a second position (or metric value) in the same microsecond was taken for a replay
    of the first and dropped. SQLite cannot change a table's UNIQUE constraint, so it
    copies the two tables; PostgreSQL swaps the primary key; a hypertable is decompressed
    first and compressed again by the new key."""
    sql: list[str] = []
    for name in STATE_KEYED:
        table = TABLES[name]
        key = ", ".join(table.key)
        if backend != "sqlite":
            if hypertables:
                sql.append(f"SELECT remove_compression_policy('{name}', if_exists => true)")
                sql.append(f"SELECT decompress_chunk(c, true) FROM show_chunks('{name}') c")
                sql.append(f"ALTER TABLE {name} SET (timescaledb.compress = false)")
            sql.append(f"ALTER TABLE {name} DROP CONSTRAINT {name}_pkey")
            sql.append(f"ALTER TABLE {name} ADD PRIMARY KEY ({key})")
            if hypertables:
                sql += _compression(name, table.key)
            continue
        cols = ", ".join(table.names)
        if name == "positions":
            sql.append("DROP VIEW latest_positions")  # a view on a dropped table blocks the rename
        sql.append(f"CREATE TABLE {name}_v3 (seq INTEGER PRIMARY KEY, {', '.join(_columns(table, backend))}, UNIQUE ({key}))")
        sql.append(f"INSERT INTO {name}_v3 (seq, {cols}) SELECT seq, {cols} FROM {name}")
        sql.append(f"DROP TABLE {name}")
        sql.append(f"ALTER TABLE {name}_v3 RENAME TO {name}")
        sql.append(f"CREATE INDEX {name}_ts ON {name} (ts_event)")
        for idx in table.indexes:
            sql.append(f"CREATE INDEX {name}_{'_'.join(idx)} ON {name} ({', '.join(idx)})")
        if name == "positions":
            sql.append(LATEST_POSITIONS_VIEW)
    return sql


def timescale_policies(retention: dict[str, int | None] = RETENTION_DAYS) -> list[str]:
    """Compression and retention policies of the record hypertables (TimescaleDB only).

    `ts_event` is integer µs, so TimescaleDB needs a function giving "now" in those units
    before a policy can run; compression segments by the key's leading column and orders
    by the rest of the key (so the unique key stays enforceable on compressed chunks)."""
    sql = [
        "CREATE OR REPLACE FUNCTION agkit_now_us() RETURNS bigint LANGUAGE sql STABLE AS "
        "$$ SELECT (extract(epoch FROM now()) * 1000000)::bigint $$"
    ]
    for table in RECORD_TABLES:
        name = table.name
        sql.append(f"SELECT set_integer_now_func('{name}', 'agkit_now_us')")
        sql += _compression(name, V1_KEYS.get(name, table.key))
        days = retention.get(name)
        if days is not None:
            sql.append(f"SELECT add_retention_policy('{name}', drop_after => {days * DAY_US}::bigint)")
    return sql


def _compression(name: str, key: tuple[str, ...]) -> list[str]:
    """Compression of a hypertable with this key, and its policy."""
    segment = [c for c in key[:1] if c != "ts_event"]
    order = ["ts_event", *(c for c in key if c != "ts_event" and c not in segment)]
    opts = f"timescaledb.compress, timescaledb.compress_orderby = '{', '.join(order)}'"
    if segment:
        opts += f", timescaledb.compress_segmentby = '{segment[0]}'"
    return [
        f"ALTER TABLE {name} SET ({opts})",
        f"SELECT add_compression_policy('{name}', compress_after => {COMPRESS_AFTER_DAYS * DAY_US}::bigint)",
    ]


def migrations(backend: str, hypertables: bool = False) -> list[Migration]:
    """Every migration for a backend; `hypertables` selects the TimescaleDB variant."""
    return [
        (1, "initial schema", initial(backend, hypertables=hypertables)),
        (2, "timescaledb compression and retention policies", timescale_policies() if hypertables else []),
        (3, "positions and metrics keyed by their state", state_keys(backend, hypertables)),
    ]


META_DDL = [
    "CREATE TABLE IF NOT EXISTS agkit_schema (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
    "applied_at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS agkit_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL)",
]
