"""Incremental rollups, meant for cron: OHLCV bars, daily PnL, metric aggregates.

Watermarks are ingest sequence numbers (`seq`), kept per rollup in `agkit_meta`. A run
reads only rows ingested after the watermark, finds the buckets they touch, and
recomputes those buckets whole from the raw rows (1m bars from trades or book mids,
1h from 1m, 1d from 1h; metric hours from metrics, days from hours; daily PnL by
replaying the fills of the touched strategy/market). So a rerun is idempotent, late
data lands in the right bucket, and a crash midway loses nothing: each step commits
its output together with its watermark. A lock (a file lock on SQLite, an advisory
lock on PostgreSQL) keeps overlapping runs apart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agkit.errors import AgkitError
from agkit.portfolio import PositionState
from agkit.records import now_us
from agkit.store.base import DAY_US, Store
from agkit.store.queries import STRATEGY_OF_FILL

MINUTE_US = 60_000_000
HOUR_US = 3_600_000_000
PERIODS = (("1m", MINUTE_US), ("1h", HOUR_US), ("1d", DAY_US))
CHUNK = 500_000  # sequence numbers per transaction (bounds lock time and memory)

STEPS = ("bars_trade", "bars_mid", "metrics", "pnl")
SOURCE = {"bars_trade": "trades", "bars_mid": "books", "metrics": "metrics", "pnl": "fills"}


def run_rollup(
    store: Store, *, wait: bool = True, full: bool = False, progress: Callable[..., None] | None = None
) -> dict[str, Any] | None:
    """Bring every rollup up to date; None when another run holds the lock and wait=False."""
    show = progress or (lambda *a, **k: None)
    try:
        with store.rollup_lock(wait) as got, store.bulk_session():
            if not got:
                return None
            if full:
                with store.tx():
                    for table in ("bars", "pnl_daily", "metric_aggs"):
                        store.execute(f"DELETE FROM {table}")
                    for step in STEPS:
                        store.set_meta(f"rollup:{step}", 0)
            hi = store.meta("seq")
            report: dict[str, Any] = {"type": "store_rollup", "ts_event": 0, "ts_init": 0, "watermark": hi}
            for step in STEPS:
                key = f"rollup:{step}"
                lo = store.meta(key)
                touched = 0
                if lo < hi:  # PostgreSQL: fresh planner statistics of what is about to be read
                    store.refresh_stats(SOURCE[step], lambda m: store.log(f"agkit store rollup: {m}"))
                while lo < hi:
                    top = min(hi, lo + CHUNK)
                    with store.tx():
                        touched += _STEP[step](store, lo, top)
                        store.set_meta(key, top)
                    show(f"{step}: up to seq {top} of {hi}")
                    lo = top
                report[step] = touched
            now = now_us()
            report["ts_event"] = report["ts_init"] = now
            return report
    except AgkitError:
        raise
    except Exception as exc:
        raise AgkitError(f"rollup failed: {type(exc).__name__}: {str(exc).strip()}") from None


# --- bars --------------------------------------------------------------------------------------


def _bars(store: Store, lo: int, hi: int, source: str) -> int:
    if source == "trade":
        table, price, size, cond = "trades", "t.price", "t.size", ""
    else:
        table, price, size, cond = "books", "t.mid", "CAST(NULL AS DOUBLE PRECISION)", " AND t.mid IS NOT NULL"
    store.temp_table("agkit_aff", "period TEXT NOT NULL, asset TEXT NOT NULL, bucket BIGINT NOT NULL")
    store.execute(
        f"INSERT INTO agkit_aff (period, asset, bucket) SELECT DISTINCT '1m', t.asset, "
        f"(t.ts_event / {MINUTE_US}) * {MINUTE_US} FROM {table} t WHERE t.seq > ? AND t.seq <= ?{cond}",
        (lo, hi),
    )
    for (period, width), (prev, prev_width) in zip(PERIODS[1:], PERIODS[:-1], strict=True):
        del prev_width
        store.execute(
            f"INSERT INTO agkit_aff (period, asset, bucket) SELECT DISTINCT '{period}', asset, "
            f"(bucket / {width}) * {width} FROM agkit_aff WHERE period = '{prev}'"
        )
    store.analyze("agkit_aff")
    (n, first, last), = store.rows("SELECT count(*), min(bucket), max(bucket) FROM agkit_aff WHERE period = '1m'")
    if not n:
        return 0
    # The rows of the touched 1m buckets. PostgreSQL: one scan of the time range (constant
    # bounds, so only the partitions in range), filtered by a hash of the buckets, beats an
    # index probe per bucket. SQLite: the probes along the key (asset, ts_event, ...) beat
    # the scan, and constant bounds would steer its planner to the ts_event index (100x slower).
    if store.backend == "postgresql":
        bucket = f"(t.ts_event / {MINUTE_US}) * {MINUTE_US}"
        touched = (
            f"FROM {table} t WHERE t.ts_event >= ? AND t.ts_event < ? AND (t.asset, {bucket}) IN "
            "(SELECT a.asset, a.bucket FROM agkit_aff a WHERE a.period = '1m')"
        )
        bounds: tuple[int, ...] = (first, last + MINUTE_US)
    else:
        bucket = "a.bucket"
        touched = (
            f"FROM agkit_aff a JOIN {table} t ON t.asset = a.asset AND t.ts_event >= a.bucket "
            f"AND t.ts_event < a.bucket + {MINUTE_US} WHERE a.period = '1m'"
        )
        bounds = ()
    for period, width in PERIODS:
        store.execute(
            "DELETE FROM bars WHERE source = ? AND period = ? AND (asset, bucket) IN "
            "(SELECT a.asset, a.bucket FROM agkit_aff a WHERE a.period = ?)",
            (source, period, period),
        )
        if period == "1m":
            added = store.execute(
                "INSERT INTO bars (source, period, asset, market, bucket, open, high, low, close, volume, notional, n) "
                "SELECT ?, '1m', asset, max(market), bucket, max(first), "
                "max(price), min(price), max(last), sum(size), sum(price * size), count(*) "
                f"FROM (SELECT t.asset, t.market, {bucket} AS bucket, {price} AS price, {size} AS size, "
                f"first_value({price}) OVER w AS first, last_value({price}) OVER w AS last "
                f"{touched}{cond} "
                # one window, one sort: first and last price of the bucket by (time, arrival)
                f"WINDOW w AS (PARTITION BY t.asset, {bucket} ORDER BY t.ts_event, t.seq "
                "ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)) x "
                "GROUP BY asset, bucket",
                (source, *bounds),
            )
            store.analyze("bars", added)  # the coarser periods join against these rows
            continue
        prev = {"1h": "1m", "1d": "1h"}[period]
        added = store.execute(
            "INSERT INTO bars (source, period, asset, market, bucket, open, high, low, close, volume, notional, n) "
            f"SELECT ?, '{period}', asset, max(market), hb, max(first), max(high), "
            "min(low), max(last), sum(volume), sum(notional), sum(n) "
            "FROM (SELECT b.asset, b.market, a.bucket AS hb, b.high, b.low, b.volume, b.notional, b.n, "
            "first_value(b.open) OVER w AS first, last_value(b.close) OVER w AS last "
            f"FROM agkit_aff a JOIN bars b ON b.source = ? AND b.period = '{prev}' AND b.asset = a.asset "
            f"AND b.bucket >= a.bucket AND b.bucket < a.bucket + {width} WHERE a.period = '{period}' "
            "WINDOW w AS (PARTITION BY b.asset, a.bucket ORDER BY b.bucket "
            "ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)) x "
            "GROUP BY asset, hb",
            (source, source),
        )
        store.analyze("bars", added)
    return int(n)


# --- metrics -----------------------------------------------------------------------------------


def _metrics(store: Store, lo: int, hi: int) -> int:
    store.temp_table(
        "agkit_maff", "period TEXT NOT NULL, name TEXT NOT NULL, labels TEXT NOT NULL, bucket BIGINT NOT NULL"
    )
    store.execute(
        f"INSERT INTO agkit_maff (period, name, labels, bucket) SELECT DISTINCT '1h', name, labels, "
        f"(ts_event / {HOUR_US}) * {HOUR_US} FROM metrics WHERE seq > ? AND seq <= ?",
        (lo, hi),
    )
    store.execute(
        f"INSERT INTO agkit_maff (period, name, labels, bucket) SELECT DISTINCT '1d', name, labels, "
        f"(bucket / {DAY_US}) * {DAY_US} FROM agkit_maff WHERE period = '1h'"
    )
    store.analyze("agkit_maff")
    (n,), = store.rows("SELECT count(*) FROM agkit_maff WHERE period = '1h'")
    if not n:
        return 0
    store.execute(
        "DELETE FROM metric_aggs WHERE (period, name, labels, bucket) IN "
        "(SELECT a.period, a.name, a.labels, a.bucket FROM agkit_maff a)"
    )
    added = store.execute(
        "INSERT INTO metric_aggs (period, name, labels, bucket, n, total, min, max, avg, last, last_ts) "
        "SELECT '1h', name, labels, bucket, count(*), sum(value), min(value), max(value), avg(value), "
        "max(CASE WHEN rl = 1 THEN value END), max(ts_event) "
        "FROM (SELECT m.name, m.labels, a.bucket, m.value, m.ts_event, "
        "row_number() OVER (PARTITION BY m.name, m.labels, a.bucket ORDER BY m.ts_event DESC, m.seq DESC) AS rl "
        "FROM agkit_maff a JOIN metrics m ON m.name = a.name AND m.labels = a.labels "
        f"AND m.ts_event >= a.bucket AND m.ts_event < a.bucket + {HOUR_US} WHERE a.period = '1h') x "
        "GROUP BY name, labels, bucket"
    )
    store.analyze("metric_aggs", added)
    store.execute(
        "INSERT INTO metric_aggs (period, name, labels, bucket, n, total, min, max, avg, last, last_ts) "
        "SELECT '1d', name, labels, db, sum(n), sum(total), min(min), max(max), sum(total) / sum(n), "
        "max(CASE WHEN rl = 1 THEN last END), max(last_ts) "
        "FROM (SELECT h.name, h.labels, a.bucket AS db, h.n, h.total, h.min, h.max, h.last, h.last_ts, "
        "row_number() OVER (PARTITION BY h.name, h.labels, a.bucket ORDER BY h.bucket DESC) AS rl "
        "FROM agkit_maff a JOIN metric_aggs h ON h.period = '1h' AND h.name = a.name AND h.labels = a.labels "
        f"AND h.bucket >= a.bucket AND h.bucket < a.bucket + {DAY_US} WHERE a.period = '1d') x "
        "GROUP BY name, labels, db"
    )
    return int(n)


# --- PnL ---------------------------------------------------------------------------------------


def _pnl(store: Store, lo: int, hi: int) -> int:
    groups = store.rows(
        f"SELECT DISTINCT market, {STRATEGY_OF_FILL} FROM fills WHERE seq > ? AND seq <= ?", (lo, hi)
    )
    for market, strategy in groups:
        rows = store.rows(
            "SELECT id, trade_id, ts_event, asset, side, price, size, fee, settlement "
            f"FROM fills WHERE market = ? AND {STRATEGY_OF_FILL} = ? ORDER BY ts_event, seq",
            (market, strategy),
        )
        store.execute("DELETE FROM pnl_daily WHERE strategy = ? AND market = ?", (strategy, market))
        store.executemany(
            "INSERT INTO pnl_daily (day, strategy, market, fills, volume, notional, fees, realized_pnl, net_pnl) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(day, strategy, market, *vals) for day, vals in daily_pnl(rows).items()],
        )
    return len(groups)


def daily_pnl(rows: list[tuple[Any, ...]]) -> dict[int, tuple[int, float, float, float, float, float]]:
    """Average-cost PnL per UTC day from fill rows in time order.

    A fill is (id, trade_id); later records of the same fill update its settlement (and
    fee); a fill whose latest settlement is `failed` never happened. Returns
    {day: (fills, volume, notional, fees, realized_pnl, net_pnl)}.
    """
    fills: dict[tuple[str, str], list[Any]] = {}
    for oid, trade_id, ts, asset, side, price, size, fee, settlement in rows:
        key = (oid, trade_id)
        if key in fills:
            fills[key][5] = fee
            fills[key][6] = settlement
        else:
            fills[key] = [ts, asset, side, price, size, fee, settlement]
    positions: dict[str, PositionState] = {}
    days: dict[int, list[float]] = {}
    for ts, asset, side, price, size, fee, settlement in fills.values():
        if settlement == "failed":
            continue
        pos = positions.get(asset)
        if pos is None:
            pos = positions[asset] = PositionState(market="", asset=asset)
        before = pos.realized_pnl
        pos.apply(side, price, size, fee)
        day = (ts // DAY_US) * DAY_US
        acc = days.setdefault(day, [0, 0.0, 0.0, 0.0, 0.0])
        acc[0] += 1
        acc[1] += size
        acc[2] += price * size
        acc[3] += fee
        acc[4] += pos.realized_pnl - before
    return {
        day: (int(a[0]), a[1], a[2], a[3], a[4], a[4] - a[3]) for day, a in sorted(days.items())
    }


_STEP: dict[str, Callable[[Store, int, int], int]] = {
    "bars_trade": lambda s, lo, hi: _bars(s, lo, hi, "trade"),
    "bars_mid": lambda s, lo, hi: _bars(s, lo, hi, "mid"),
    "metrics": _metrics,
    "pnl": _pnl,
}
