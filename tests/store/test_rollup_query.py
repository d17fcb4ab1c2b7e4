"""Rollups (bars, PnL, metric aggregates), named and raw queries, retention, injection attempts."""

from __future__ import annotations

import math
import subprocess
from collections import defaultdict
from typing import Any

import orjson
import pytest

from agkit.records import now_us
from agkit.store import open_store
from agkit.store.migrations import migrations
from agkit.store.schema import RECORD_TABLES
from tests.helpers import ndjson, parse_ndjson, popen_agkit, run_agkit
from tests.store.data import DAY, HOUR, MIN, T0, mixed

PERIODS = {"1m": MIN, "1h": HOUR, "1d": DAY}


def ingest(db: str, recs: list[dict[str, Any]]) -> None:
    proc = run_agkit("store", "ingest", "--db", db, input=ndjson(recs), timeout=240)
    assert proc.returncode == 0, proc.stderr


def rollup(db: str, *args: str) -> dict[str, Any]:
    proc = run_agkit("store", "rollup", "--db", db, *args, timeout=240)
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = orjson.loads(proc.stdout)
    return report


def query(db: str, *args: str) -> list[dict[str, Any]]:
    proc = run_agkit("store", "query", "--db", db, *args, "--format", "ndjson")
    assert proc.returncode == 0, proc.stderr
    return parse_ndjson(proc.stdout)


def expected_bars(recs: list[dict[str, Any]], source: str, period: str) -> dict[tuple[str, int], tuple[Any, ...]]:
    width = PERIODS[period]
    groups: dict[tuple[str, int], list[tuple[float, float | None]]] = defaultdict(list)
    for r in sorted(recs, key=lambda r: r["ts_event"]):  # stable: ties keep arrival order
        if source == "trade" and r["type"] == "trade":
            groups[(r["asset"], r["ts_event"] // width * width)].append((r["price"], r["size"]))
        elif source == "mid" and r["type"] == "book" and r["bids"] and r["asks"]:
            mid = (r["bids"][0][0] + r["asks"][0][0]) / 2
            groups[(r["asset"], r["ts_event"] // width * width)].append((mid, None))
    out = {}
    for key, pts in groups.items():
        prices = [p for p, _ in pts]
        vol = sum(s for _, s in pts if s is not None) if source == "trade" else None
        notional = sum(p * s for p, s in pts if s is not None) if source == "trade" else None
        out[key] = (prices[0], max(prices), min(prices), prices[-1], vol, notional, len(pts))
    return out


def stored_bars(db: str, source: str, period: str) -> dict[tuple[str, int], tuple[Any, ...]]:
    rows = query(db, "bars", "--source", source, "--period", period)
    return {(b["asset"], b["bucket"]): (b["open"], b["high"], b["low"], b["close"], b["volume"], b["notional"], b["n"])
            for b in rows}


def assert_bars_equal(got: dict[Any, tuple[Any, ...]], want: dict[Any, tuple[Any, ...]]) -> None:
    assert got.keys() == want.keys()
    for key, w in want.items():
        g = got[key]
        assert g[:4] == pytest.approx(w[:4]) and g[6] == w[6], key
        for a, b in zip(g[4:6], w[4:6], strict=True):
            assert (a is None and b is None) or math.isclose(a, b, rel_tol=1e-9), key


def test_rollup_bars_equal_direct_aggregation_incrementally(db: str) -> None:
    recs = mixed(6000, step_us=40_000_000)  # ~1.4 days of data
    first, second = recs[:3500], recs[3500:]
    late = [dict(r, trade_id=r["trade_id"] + "-late", ts_init=r["ts_init"] + 1) for r in first[100:130] if r["type"] == "trade"]
    ingest(db, first)
    report = rollup(db)
    assert report["bars_trade"] > 0
    ingest(db, second + late)
    rollup(db)
    everything = first + second + late
    for source in ("trade", "mid"):
        for period in PERIODS:
            assert_bars_equal(stored_bars(db, source, period), expected_bars(everything, source, period))
    # idempotent: a rerun reads nothing new and changes nothing; a full rebuild gives the same bars
    before = {p: stored_bars(db, "trade", p) for p in PERIODS}
    again = rollup(db)
    assert again["bars_trade"] == 0 and again["pnl"] == 0
    rollup(db, "--full")
    assert {p: stored_bars(db, "trade", p) for p in PERIODS} == before


def assert_bars_are_a_group_by(db: str, period: str, width_us: int) -> None:
    """The stored trade bars of `period` equal one GROUP BY over the trades, run as raw SQL."""
    direct = query(db, "--sql",
        f"SELECT asset, (ts_event / {width_us}) * {width_us} AS bucket, count(*) AS n, sum(size) AS volume, "
        f"min(price) AS low, max(price) AS high FROM trades GROUP BY asset, (ts_event / {width_us}) * {width_us} "
        "ORDER BY asset, bucket")
    bars = query(db, "bars", "--period", period)
    assert [(b["asset"], b["bucket"], b["n"], b["low"], b["high"]) for b in bars] == [
        (d["asset"], d["bucket"], d["n"], d["low"], d["high"]) for d in direct
    ]
    assert [b["volume"] for b in bars] == pytest.approx([d["volume"] for d in direct])


def test_rollup_equals_direct_sql(db: str) -> None:
    ingest(db, mixed(3000, step_us=30_000_000))
    rollup(db)
    assert_bars_are_a_group_by(db, "1h", 3_600_000_000)


def test_two_concurrent_rollups_equal_one(db: str, db2: str) -> None:
    recs = mixed(8000, step_us=20_000_000)
    ingest(db, recs)
    ingest(db2, recs)
    procs = [popen_agkit("store", "rollup", "--db", db, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outs]
    reports = [orjson.loads(o[0]) for o in outs]
    assert sorted(r["bars_trade"] > 0 for r in reports) == [False, True]  # one did the work
    rollup(db2)
    for table, order in (("bars", "source, period, asset, bucket"), ("metric_aggs", "period, name, labels, bucket"),
                         ("pnl_daily", "day, strategy, market")):
        sql = f"SELECT * FROM {table} ORDER BY {order}"
        assert query(db, "--sql", sql) == query(db2, "--sql", sql), table
    skipped = run_agkit("store", "rollup", "--db", db, "--skip-if-locked")
    assert skipped.returncode == 0


def _fill(ts: int, oid: str, trade_id: str, side: str, price: float, size: float, fee: float,
          settlement: str = "confirmed", market: str = "0xm", **extra: Any) -> dict[str, Any]:
    return {"type": "order_filled", "ts_event": ts, "ts_init": ts, "id": oid, "venue_order_id": "v" + oid,
            "trade_id": trade_id, "market": market, "asset": "yes", "side": side, "price": price, "size": size,
            "fee": fee, "liquidity": "taker", "settlement": settlement, **extra}


def test_daily_pnl_and_fees_per_strategy_and_market(db: str) -> None:
    sub = {"type": "submit_order", "ts_event": T0, "ts_init": T0, "id": "o1", "strategy": "mm", "venue": "paper",
           "market": "0xm", "asset": "yes", "side": "buy", "price": 0.4, "size": 10.0}
    recs = [
        sub,
        _fill(T0 + 1, "o1", "t1", "buy", 0.4, 10.0, 0.1, settlement="pending"),
        _fill(T0 + 2, "o1", "t1", "buy", 0.4, 10.0, 0.1, settlement="confirmed"),  # same fill, settled
        _fill(T0 + 3, "o2", "t2", "sell", 0.5, 4.0, 0.05, strategy="mm"),
        _fill(T0 + 4, "o3", "t3", "sell", 0.9, 100.0, 1.0, strategy="mm", settlement="pending"),
        _fill(T0 + 5, "o3", "t3", "sell", 0.9, 100.0, 1.0, strategy="mm", settlement="failed"),  # never happened
        _fill(T0 + DAY + 1, "o4", "t4", "sell", 0.3, 6.0, 0.02, strategy="mm"),
        _fill(T0 + 9, "b1", "t9", "buy", 0.2, 1.0, 0.0, strategy="bands", market="0xother"),
    ]
    ingest(db, recs)
    rollup(db)
    pnl = query(db, "pnl", "--strategy", "mm")
    assert [(p["day"], p["market"], p["fills"]) for p in pnl] == [(T0, "0xm", 2), (T0 + DAY, "0xm", 1)]
    assert pnl[0]["realized_pnl"] == pytest.approx(0.4)  # (0.5 - 0.4) * 4
    assert pnl[0]["fees"] == pytest.approx(0.15)
    assert pnl[0]["net_pnl"] == pytest.approx(0.25)
    assert pnl[1]["realized_pnl"] == pytest.approx(-0.6)  # (0.3 - 0.4) * 6
    assert query(db, "pnl", "--market", "0xother")[0]["strategy"] == "bands"
    orders = query(db, "orders")
    assert orders[0]["id"] == "o1" and orders[0]["status"] == "filled" and orders[0]["filled_size"] == 10.0
    fills = query(db, "fills", "--strategy", "mm", "--market", "0xm")
    assert [f["trade_id"] for f in fills] == ["t1", "t1", "t2", "t3", "t3", "t4"]


def test_metric_aggregates_min_max_avg_last(db: str) -> None:
    recs = []
    for i in range(200):
        ts = T0 + i * 45_000_000  # 2.5 hours
        recs.append({"type": "metric", "ts_event": ts, "ts_init": ts, "name": "lag_ms", "kind": "gauge",
                     "value": float((i * 37) % 101), "labels": {"feed": "a" if i % 2 else "b"}})
    ingest(db, recs)
    rollup(db)
    aggs = query(db, "--sql", "SELECT period, labels, bucket, n, min, max, avg, last FROM metric_aggs "
                              "WHERE name = :name ORDER BY period, labels, bucket", "--param", "name=lag_ms")
    want = []
    for period, width in (("1d", DAY), ("1h", HOUR)):
        groups: dict[tuple[str, int], list[float]] = defaultdict(list)
        for r in recs:
            groups[(orjson.dumps(r["labels"]).decode(), r["ts_event"] // width * width)].append(r["value"])
        for (labels, bucket), vals in sorted(groups.items()):
            want.append((period, labels, bucket, len(vals), min(vals), max(vals), sum(vals) / len(vals), vals[-1]))
    got = [(a["period"], a["labels"], a["bucket"], a["n"], a["min"], a["max"], a["avg"], a["last"]) for a in aggs]
    assert [(*g[:6], g[7]) for g in got] == [(*w[:6], w[7]) for w in want]
    assert [g[6] for g in got] == pytest.approx([w[6] for w in want])


EVIL = "x'); DROP TABLE trades; --"
EVIL_LABEL = "a'\"; DELETE FROM metrics; --"


def test_sql_injection_through_ids_labels_and_params_is_inert(db: str) -> None:
    recs = mixed(200)
    evil = [
        {"type": "trade", "ts_event": T0 + 5, "ts_init": T0 + 5, "venue": "polymarket", "market": EVIL, "asset": EVIL,
         "price": 0.5, "size": 1.0, "side": "buy", "trade_id": "' OR 1=1 --"},
        {"type": "position", "ts_event": T0 + 6, "ts_init": T0 + 6, "market": EVIL, "asset": EVIL, "size": 1.0,
         "avg_price": 0.5, "realized_pnl": 0.0, "fees": 0.0},
        {"type": "metric", "ts_event": T0 + 7, "ts_init": T0 + 7, "name": "m'; DROP TABLE bars; --", "kind": "counter",
         "value": 1.0, "labels": {EVIL_LABEL: EVIL_LABEL}},
    ]
    ingest(db, recs + evil)
    rollup(db)
    with open_store(db) as store:
        before = {s.table: s.rows for s in store.stats()}
    assert query(db, "positions", "--market", EVIL) == [
        {"type": "position", "ts_event": T0 + 6, "ts_init": T0 + 6, "market": EVIL, "asset": EVIL, "size": 1.0,
         "avg_price": 0.5, "realized_pnl": 0.0, "fees": 0.0}
    ]
    assert [b["asset"] for b in query(db, "bars", "--asset", EVIL)] == [EVIL]
    assert query(db, "bars", "--market", "' OR '1'='1") == []
    assert query(db, "fills", "--strategy", "x' OR '1'='1") == []
    exported = parse_ndjson(run_agkit("store", "export", "--db", db, "--market", EVIL).stdout)
    assert [r["market"] for r in exported] == [EVIL, EVIL]
    got = query(db, "--sql", "SELECT name, labels FROM metrics WHERE labels = :l", "--param",
                "l=" + orjson.dumps({EVIL_LABEL: EVIL_LABEL}).decode())
    assert got == [{"name": "m'; DROP TABLE bars; --", "labels": orjson.dumps({EVIL_LABEL: EVIL_LABEL}).decode()}]
    assert query(db, "--sql", "SELECT count(*) AS n FROM trades WHERE market = :m", "--param", "m=1; DROP TABLE trades") == [{"n": 0}]
    for attempt in ("DROP TABLE trades", "DELETE FROM trades", "SELECT 1; DROP TABLE trades",
                    "WITH d AS (DELETE FROM trades RETURNING 1) SELECT * FROM d", "UPDATE bars SET n = 0"):
        proc = run_agkit("store", "query", "--db", db, "--sql", attempt)
        assert proc.returncode != 0 and b"Traceback" not in proc.stderr, attempt
    with open_store(db) as store:
        assert {s.table: s.rows for s in store.stats()} == before


def test_positions_query_and_table_output(db: str) -> None:
    recs = [
        {"type": "position", "ts_event": T0 + i, "ts_init": T0 + i, "market": "0xm", "asset": a, "size": float(i),
         "avg_price": 0.5, "realized_pnl": 0.0, "fees": 0.0}
        for i, a in enumerate(["yes", "no", "yes", "no", "yes"])
    ]
    ingest(db, recs)
    pos = query(db, "positions")
    assert [(p["asset"], p["size"]) for p in pos] == [("no", 3.0), ("yes", 4.0)]
    table = run_agkit("store", "query", "positions", "--db", db, "--format", "table")
    assert table.returncode == 0 and b"avg_price" in table.stdout.splitlines()[0]
    bad = run_agkit("store", "query", "nonsense", "--db", db)
    assert bad.returncode == 2 and b"named queries" in bad.stderr


def test_retention_dry_run_then_apply(db: str) -> None:
    now = now_us()
    old, recent = now - 200 * DAY, now - DAY
    recs = []
    for i, ts in enumerate([old, old + 1, recent]):
        recs.append({"type": "trade", "ts_event": ts, "ts_init": ts, "venue": "v", "market": "m", "asset": "a",
                     "price": 0.5, "size": 1.0, "side": "buy", "trade_id": f"t{i}"})
        recs.append(_fill(ts, f"o{i}", f"t{i}", "buy", 0.5, 1.0, 0.0, strategy="mm"))
    ingest(db, recs)
    rollup(db)
    proc = run_agkit("store", "retention", "--db", db, "--keep", "trades=100d", "--format", "ndjson")
    assert proc.returncode == 0, proc.stderr
    plan = {r["table"]: r for r in parse_ndjson(proc.stdout)}
    assert plan["trades"]["rows"] == 2 and plan["trades"]["deleted"] == 0
    assert plan["fills"]["rows"] == 0  # 365 days by default
    assert plan["bars"]["keep_days"] is None  # rollups are kept
    assert len(query(db, "--sql", "SELECT * FROM trades")) == 3  # dry run deleted nothing
    proc = run_agkit("store", "retention", "--db", db, "--keep", "trades=100d", "--keep", "fills=30d", "--apply",
                     "--format", "ndjson")
    assert proc.returncode == 0, proc.stderr
    done = {r["table"]: r for r in parse_ndjson(proc.stdout)}
    assert done["trades"]["deleted"] == 2 and done["fills"]["deleted"] == 2
    assert [r["trade_id"] for r in parse_ndjson(run_agkit("store", "export", "--db", db, "--type", "trade").stdout)] == ["t2"]
    assert len(query(db, "bars", "--period", "1d")) == 2  # rollups survive
    # ingest still works after partitions were dropped
    ingest(db, recs[:2])  # the old trade and its fill, again
    assert sorted(r["trade_id"] for r in query(db, "--sql", "SELECT trade_id FROM trades")) == ["t0", "t2"]
    bad = run_agkit("store", "retention", "--db", db, "--keep", "nosuchtable=1d")
    assert bad.returncode == 2


def test_stats_lists_every_table(db: str) -> None:
    ingest(db, mixed(100))
    proc = run_agkit("store", "stats", "--db", db, "--format", "ndjson")
    assert proc.returncode == 0, proc.stderr
    rows = {r["table"]: r for r in parse_ndjson(proc.stdout)}
    assert rows["trades"]["rows"] == sum(1 for r in mixed(100) if r["type"] == "trade")
    assert rows["trades"]["ts_min"] <= rows["trades"]["ts_max"]
    assert set(rows) >= {"books", "trades", "order_events", "fills", "positions", "metrics", "records", "bars",
                         "pnl_daily", "metric_aggs"}


def test_rollup_failure_exits_non_zero_with_a_message(tmp_path: Any) -> None:
    path = tmp_path / "broken.db"
    ingest(f"sqlite:///{path}", mixed(50))
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE bars")
    conn.commit()
    conn.close()
    proc = run_agkit("store", "rollup", "--db", str(path))
    assert proc.returncode == 1
    assert b"rollup failed" in proc.stderr and b"Traceback" not in proc.stderr


@pytest.mark.postgres
def test_plain_postgres_without_timescaledb_gets_partitions_and_brin(pg_pair: tuple[str, str]) -> None:
    """This server has no timescaledb in pg_available_extensions: the store says so and is
    built from partitioned tables with BRIN indexes (the path TimescaleDB would replace)."""
    db, _ = pg_pair
    with open_store(db) as store:
        (available,) = store.rows("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'")[0]
        assert available == 0
        assert store.hypertables() is False  # type: ignore[attr-defined]
        partitioned = {r[0] for r in store.rows(
            "SELECT c.relname FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
            "WHERE c.relnamespace = current_schema()::regnamespace")}
        assert partitioned == {t.name for t in RECORD_TABLES}
        brin = store.rows("SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() "
                          "AND indexdef LIKE '%USING brin%'")[0][0]
        assert brin == 2 * len(RECORD_TABLES)
        assert store.version() == migrations("postgresql")[-1][0]


@pytest.mark.postgres
def test_rollup_analyzes_a_fresh_ingest_before_reading_it(pg_pair: tuple[str, str]) -> None:
    """Right after a bulk ingest the partitions have no planner statistics (autovacuum has
    not been there yet; here it is switched off for them so it never will): the rollup
    analyzes what it reads, says so on stderr, and its bars equal a direct aggregation."""
    from agkit.store.base import Batch
    from agkit.store.postgres import partition_name

    db, _ = pg_pair
    recs = mixed(6000, step_us=60_000_000)  # ~2 days: several day partitions per table
    with open_store(db) as store:
        days = Batch()
        for r in recs:
            days.add(r)
        store._ensure_partitions(days)  # type: ignore[attr-defined]
        for name, _lo, _hi in store.partitions("trades"):  # type: ignore[attr-defined]
            store.execute(f"ALTER TABLE {name} SET (autovacuum_enabled = false)")
    ingest(db, recs)
    filled = sorted({partition_name("trades", r["ts_event"] // DAY) for r in recs if r["type"] == "trade"})
    parts = len(filled)
    stats = ("SELECT count(*), count(*) FILTER (WHERE s.last_analyze IS NOT NULL), "
             "count(*) FILTER (WHERE EXISTS (SELECT 1 FROM pg_stats p WHERE p.schemaname = current_schema() "
             "AND p.tablename = s.relname)) FROM pg_stat_user_tables s "
             "WHERE s.schemaname = current_schema() AND s.relname = ANY(?)")
    with open_store(db) as store:
        assert store.rows(stats, (filled,))[0] == (parts, 0, 0) and parts >= 2

    proc = run_agkit("store", "rollup", "--db", db, timeout=240)
    assert proc.returncode == 0, proc.stderr
    said = [line for line in proc.stderr.decode().splitlines() if "analyzed trades_" in line]
    assert len(said) >= parts
    with open_store(db) as store:
        assert store.rows(stats, (filled,))[0] == (parts, parts, parts)
    assert_bars_are_a_group_by(db, "1m", 60_000_000)
    assert_bars_equal(stored_bars(db, "trade", "1d"), expected_bars(recs, "trade", "1d"))
    # statistics now fresh: a rerun analyzes nothing
    again = run_agkit("store", "rollup", "--db", db, timeout=240)
    assert again.returncode == 0 and b"analyzed" not in again.stderr, again.stderr
