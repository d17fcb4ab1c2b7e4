"""Store benchmarks: ingest rows/s (SQLite, PostgreSQL) beside a naive one-INSERT-per-row
loop on the same data, and rollup time from scratch and for one incremental hour.

    python bench/bench_store.py            # short run (< 3 min): 1M records (the issue's size), 500k trades
    python bench/bench_store.py --full     # 1M mixed records, 10M trades: ~5 min here
    python bench/bench_store.py --repeat 5 --no-rollup   # the ingest figures five times over

The ingest figure is the real command, end to end (`agkit store ingest < file`,
process start-up included). The naive baseline is an in-process loop: decode a line,
one INSERT ... ON CONFLICT DO NOTHING per row in autocommit mode, on a sample of the
same data (reported per row). PostgreSQL rows are skipped when no server is reachable.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import report  # noqa: E402

T0 = 1_767_225_600_000_000
HOUR = 3_600_000_000
STEP = 360_000  # µs between generated trades: an hour is 10k trades


def mixed_lines(n: int, seed: int = 1) -> bytes:
    """n mixed records like a live pipe: books, trades, order events, fills, metrics, status."""
    rng = random.Random(seed)
    out = bytearray()
    t = T0
    for i in range(n):
        t += rng.randint(0, 400_000)
        asset = f"tok{i % 20}"
        market = f"0xmkt{i % 10}"
        k = i % 20
        if k < 8:
            bid = round(rng.uniform(0.1, 0.8), 2)
            rec = {"type": "book", "ts_event": t, "ts_init": t + 20, "venue": "polymarket", "market": market,
                   "asset": asset, "bids": [[bid, 120.0], [round(bid - 0.01, 2), 300.0]],
                   "asks": [[round(bid + 0.02, 2), 90.0], [round(bid + 0.03, 2), 150.0]],
                   "tick_size": 0.01, "min_size": 5.0, "hash": f"{i:x}"}
        elif k < 15:
            rec = {"type": "trade", "ts_event": t, "ts_init": t + 20, "venue": "polymarket", "market": market,
                   "asset": asset, "price": round(rng.uniform(0.05, 0.95), 3), "size": float(rng.randint(1, 500)),
                   "side": "buy" if i % 2 else "sell", "trade_id": f"tr{i}"}
        elif k == 15:
            rec = {"type": "submit_order", "ts_event": t, "ts_init": t, "id": f"o{i}", "strategy": "mm",
                   "venue": "paper", "market": market, "asset": asset, "side": "buy", "price": 0.5, "size": 10.0,
                   "tif": "GTC", "post_only": False}
        elif k == 16:
            rec = {"type": "order_accepted", "ts_event": t, "ts_init": t, "id": f"o{i - 1}", "venue_order_id": f"v{i}"}
        elif k == 17:
            rec = {"type": "order_filled", "ts_event": t, "ts_init": t, "id": f"o{i - 2}", "venue_order_id": f"v{i}",
                   "trade_id": f"f{i}", "market": market, "asset": asset, "side": "buy", "price": 0.5, "size": 5.0,
                   "fee": 0.01, "liquidity": "maker", "settlement": "pending", "strategy": "mm"}
        elif k == 18:
            rec = {"type": "metric", "ts_event": t, "ts_init": t, "name": "stage_latency_us", "kind": "histogram",
                   "value": rng.uniform(1, 50), "labels": {"stage": "exec"}}
        else:
            rec = {"type": "feed_status", "ts_event": t, "ts_init": t, "source": "polymarket", "state": "live",
                   "lag_ms": 3.5}
        out += orjson.dumps(rec)
        out += b"\n"
    return bytes(out)


def pg_base() -> str | None:
    url = os.environ.get("AGKIT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("select 1")
    except Exception as exc:
        print(f"bench_store: no PostgreSQL at {url} ({exc}); PostgreSQL rows skipped", file=sys.stderr)
        return None
    return url


class PgSchema:
    """A throw-away schema; the URL selects it through search_path."""

    def __init__(self, base: str) -> None:
        import psycopg

        self.base = base
        self.name = f"agkit_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {self.name}")
        sep = "&" if "?" in base else "?"
        self.url = f"{base}{sep}options={quote('-csearch_path=' + self.name)}"

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(self.base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {self.name} CASCADE")


def ingest_command(db: str, path: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the ingest process) for `agkit store ingest < path`."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), AGKIT_CONFIG="/nonexistent")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(path, "rb") as stdin:
        proc = subprocess.run([sys.executable, "-m", "agkit", "store", "ingest", "--db", db], stdin=stdin,
                              capture_output=True, env=env, cwd=ROOT)
    secs = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"ingest failed: {proc.stderr.decode()}")
    return secs, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def naive_ingest(db: str, lines: list[bytes]) -> float:
    """One INSERT per row, autocommit: the loop a first version would write."""
    from agkit.store import open_store
    from agkit.store.schema import TABLES, to_row

    with open_store(db) as store:
        inserts = {}
        for name, table in TABLES.items():
            if table.raw:
                cols = ("seq", *table.names)
                inserts[name] = (f"INSERT INTO {name} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
                                 "ON CONFLICT DO NOTHING")
        from agkit.store.base import Batch

        rows = Batch()
        for line in lines:
            rows.add(orjson.loads(line))
        ensure = getattr(store, "_ensure_partitions", None)
        if ensure is not None:  # PostgreSQL: the day partitions exist before the timed loop
            ensure(rows)
        t0 = time.perf_counter()
        for seq, line in enumerate(lines, 1):
            table, row = to_row(orjson.loads(line))
            store.execute(inserts[table], (seq, *row))
        return time.perf_counter() - t0


def bench_ingest(n: int, naive_n: int, pg: str | None, tmp: Path, repeat: int = 1) -> None:
    data = mixed_lines(n)
    path = tmp / "mixed.ndjson"
    path.write_bytes(data)
    sample = data.splitlines()[:naive_n]
    targets = [("sqlite", lambda: (f"sqlite:///{tmp / f'i{uuid.uuid4().hex}.db'}", None))]
    if pg:
        targets.append(("postgresql", lambda: (lambda s: (s.url, s))(PgSchema(pg))))
    for name, make in targets * repeat:
        db, schema = make()
        db2, schema2 = make()
        try:
            secs, cpu = ingest_command(db, path)
            t_cpu = time.process_time()
            naive = naive_ingest(db2, sample)
            naive_cpu = time.process_time() - t_cpu
        finally:
            for s in (schema, schema2):
                if s is not None:
                    s.drop()
        report(f"store ingest {name}: {n} mixed records, `agkit store ingest` end to end", n / secs, "rows/s",
               baseline=f"naive one INSERT per row, autocommit ({naive_n}-row sample)",
               baseline_value=naive_n / naive, higher_is_better=True, seconds=round(secs, 2),
               client_cpu_seconds=round(cpu, 2), rows_per_client_cpu_second=round(n / cpu),
               naive_rows_per_client_cpu_second=round(naive_n / naive_cpu), load_average=os.getloadavg()[0])


def load_trades(store: Any, n: int, start: int, tag: str) -> None:
    """n trades (over 20 assets, 10k an hour) written by one set-based
    INSERT, so loading 10M rows takes seconds, not the minutes the Python path would."""
    from agkit.store.base import DAY_US, Batch

    if store.backend == "postgresql":  # the day partitions first, as ingest would create them
        days = Batch()
        for t in range(start, start + n * STEP + DAY_US, DAY_US):
            days.add({"type": "trade", "ts_event": t, "ts_init": t, "venue": "v", "market": "m", "asset": "a",
                      "price": 0.5, "size": 1.0, "side": "buy", "trade_id": "x"})
        store._ensure_partitions(days)
        numbers = "SELECT i FROM generate_series(0, CAST(? AS bigint) - 1) AS g(i)"
    else:
        numbers = "WITH RECURSIVE g(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM g WHERE i + 1 < ?) SELECT i FROM g"
    with store.tx():
        (top,), = store.rows("SELECT value FROM agkit_meta WHERE key = 'seq'")
        def mod(x: str, k: int) -> str:  # no `%`: it would clash with psycopg's placeholders
            return f"(({x}) - (({x}) / {k}) * {k})"

        t, price = f"(? + i * {STEP})", f"(0.05 + {mod('i * 7919', 901)} / 1000.0)"
        store.execute(
            "INSERT INTO trades (seq, ts_event, ts_init, venue, market, asset, trade_id, price, size, side, raw) "
            f"SELECT ? + i + 1, {t}, {t}, 'polymarket', '0xm' || {mod('i', 10)}, 'tok' || {mod('i', 20)}, ? || i, {price}, "
            f"10.0, 'buy', '{{\"type\":\"trade\",\"ts_event\":' || {t} || ',\"asset\":\"tok' || {mod('i', 20)} || "
            f"'\",\"price\":' || {price} || '}}' FROM ({numbers}) AS numbers",
            (top, start, start, tag, start, n),
        )
        store.set_meta("seq", top + n)
    # No ANALYZE here: the rollup must cope with a load autovacuum has not seen yet.


def bench_rollup(n: int, pg: str | None, tmp: Path) -> None:
    from agkit.store import open_store
    from agkit.store.rollup import run_rollup

    targets: list[tuple[str, str, PgSchema | None]] = [("sqlite", f"sqlite:///{tmp / 'rollup.db'}", None)]
    if pg:
        s = PgSchema(pg)
        targets.append(("postgresql", s.url, s))
    for name, db, schema in targets:
        try:
            with open_store(db) as store:
                t0 = time.perf_counter()
                load_trades(store, n, T0, "a")
                load = time.perf_counter() - t0
                t0 = time.perf_counter()
                store.rows("SELECT asset, count(*), sum(size), min(price), max(price) FROM trades GROUP BY asset")
                scan = time.perf_counter() - t0
                t0 = time.perf_counter()
                run_rollup(store)
                scratch = time.perf_counter() - t0
                load_trades(store, 10_000, T0 + n * STEP, "b")  # one more hour: 10k trades
                t0 = time.perf_counter()
                run_rollup(store)
                incr = time.perf_counter() - t0
        finally:
            if schema is not None:
                schema.drop()
        report(f"store rollup {name}: {n} trades from scratch (bars 1m/1h/1d, metrics, pnl)", scratch, "s",
               baseline="one GROUP BY scan of the trades", baseline_value=scan, higher_is_better=False,
               load_seconds=round(load, 1), load_average=os.getloadavg()[0])
        report(f"store rollup {name}: incremental hour (10k new trades) after {n}", incr, "s",
               baseline="rollup from scratch", baseline_value=scratch, higher_is_better=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="10M rollup trades (instead of 500k)")
    ap.add_argument("--records", type=int, help="mixed records to ingest")
    ap.add_argument("--trades", type=int, help="trades for the rollup figures")
    ap.add_argument("--naive", type=int, default=20_000, help="rows in the naive baseline sample")
    ap.add_argument("--repeat", type=int, default=1, help="ingest runs per backend (each a row; a noisy host wants several)")
    ap.add_argument("--no-rollup", action="store_true", help="ingest figures only")
    args = ap.parse_args()
    n = args.records or 1_000_000
    trades = args.trades or (10_000_000 if args.full else 500_000)
    pg = pg_base()
    with tempfile.TemporaryDirectory(prefix="agkit-bench-store-") as tmp:
        bench_ingest(n, min(args.naive, n), pg, Path(tmp), args.repeat)
        if not args.no_rollup:
            bench_rollup(trades, pg, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
