"""Named queries (positions, pnl, fills, bars, orders) and raw read-only SQL.

Every value a user gives (market ids, labels, parameters) is bound as a parameter,
never pasted into SQL text; every query runs on a read-only connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from agkit.errors import UsageError
from agkit.store.base import Filters, Store

NAMED = ("positions", "pnl", "fills", "bars", "orders")

STRATEGY_OF_FILL = (
    "COALESCE(fills.strategy, (SELECT o.strategy FROM order_events o WHERE o.id = fills.id "
    "AND o.type = 'submit_order' ORDER BY o.ts_event LIMIT 1), '')"
)


def _where(conds: list[str]) -> str:
    return (" WHERE " + " AND ".join(conds)) if conds else ""


def named_query(
    store: Store,
    name: str,
    f: Filters,
    *,
    limit: int | None = None,
    period: str = "1m",
    source: str = "trade",
) -> Iterator[dict[str, Any]]:
    """Rows of a named query as dicts (records where the row is one: position, order_filled)."""
    conds: list[str] = []
    params: list[Any] = []

    def eq(col: str, value: Any) -> None:
        if value is not None:
            conds.append(f"{col} = ?")
            params.append(value)

    def between(col: str) -> None:
        if f.since is not None:
            conds.append(f"{col} >= ?")
            params.append(f.since)
        if f.until is not None:
            conds.append(f"{col} < ?")
            params.append(f.until)

    if name == "positions":
        eq("market", f.market)
        eq("asset", f.asset)
        sql = (
            "SELECT market, asset, size, avg_price, realized_pnl, fees, ts_event FROM latest_positions"
            + _where(conds)
            + " ORDER BY market, asset"
        )
    elif name == "pnl":
        eq("market", f.market)
        eq("strategy", f.strategy)
        between("day")
        sql = (
            "SELECT day, strategy, market, fills, volume, notional, fees, realized_pnl, net_pnl "
            "FROM pnl_daily" + _where(conds) + " ORDER BY day, strategy, market"
        )
    elif name == "fills":
        eq("market", f.market)
        eq("asset", f.asset)
        eq(STRATEGY_OF_FILL, f.strategy)
        between("ts_event")
        sql = "SELECT raw FROM fills" + _where(conds) + " ORDER BY ts_event, seq"
    elif name == "bars":
        if period not in ("1m", "1h", "1d"):
            raise UsageError(f"--period must be 1m, 1h or 1d, not {period!r}")
        if source not in ("trade", "mid"):
            raise UsageError(f"--source must be trade or mid, not {source!r}")
        eq("period", period)
        eq("source", source)
        eq("market", f.market)
        eq("asset", f.asset)
        between("bucket")
        sql = (
            "SELECT source, period, asset, market, bucket, open, high, low, close, volume, notional, n "
            "FROM bars" + _where(conds) + " ORDER BY asset, bucket"
        )
    elif name == "orders":
        eq("market", f.market)
        eq("asset", f.asset)
        eq("strategy", f.strategy)
        between("submitted_at")
        sql = "SELECT * FROM orders" + _where(conds) + " ORDER BY submitted_at, id"
    else:
        raise UsageError(f"unknown query {name!r}; named queries: {', '.join(NAMED)} (or --sql)")
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    names, rows = store.read_only(sql, params)
    return _shape(name, names, rows)


def _shape(name: str, names: list[str], rows: Iterator[tuple[Any, ...]]) -> Iterator[dict[str, Any]]:
    if name == "fills":
        for (raw,) in rows:
            yield orjson.loads(raw)
        return
    for row in rows:
        d = dict(zip(names, row, strict=True))
        if name == "positions":
            ts = d.pop("ts_event")
            yield {"type": "position", "ts_event": ts, "ts_init": ts, **d}
        elif name == "bars":
            yield {"type": "bar", "ts_event": d["bucket"], **d}
        elif name == "pnl":
            yield {"type": "pnl_daily", "ts_event": d["day"], **d}
        else:
            yield d


def raw_query(store: Store, sql: str, params: dict[str, str]) -> tuple[list[str], Iterator[tuple[Any, ...]]]:
    """Read-only SQL with `:name` parameters bound from --param name=value."""
    return store.read_only(sql, params)
