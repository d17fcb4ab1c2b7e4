"""Reading the analytics' NDJSON inputs (the forms are documented in docs/risk.md).

- `return`   {value, series?|asset?}: a per-period simple return (fraction)
- `equity`   {value, series?}: an equity (account value) point; returns are derived
- `position` {market, asset, size, avg_price, mark?|price?, outcome?}: a holding
- `order_filled` (exec's events): positions rebuilt with agkit.portfolio
- `book`: marks (mid) for the positions; `market_resolved`: positions settled
- `option`   {spot, strike, expiry_years, vol|price, rate?, right?, kind?, quantity?}
Records of other types are ignored. Records are ordered by ts_event within a series.
The same records can come from the store (read_store: `agkit risk ... --db URL`).
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from agkit.errors import BadInputError, UsageError
from agkit.portfolio import Portfolio
from agkit.stream import OnError, iter_records, open_input

DAY_US = 86_400_000_000


@dataclass
class Inputs:
    returns: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    equity: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    positions: dict[str, dict[str, Any]] = field(default_factory=dict)  # asset -> position
    options: list[dict[str, Any]] = field(default_factory=list)
    last_ts: int = 0
    records: int = 0
    ignored: int = 0

    def series_names(self) -> list[str]:
        return sorted(set(self.returns) | set(self.equity))

    def series(self, name: str | None = None) -> tuple[list[int], list[float]]:
        """(timestamps, returns) of one series; the only one when name is None."""
        names = self.series_names()
        if name is None:
            if not names:
                raise UsageError("no `return` or `equity` records in the input")
            if len(names) > 1:
                raise UsageError(f"several series in the input ({', '.join(names)}); pick one with --series")
            name = names[0]
        if name in self.returns:
            pts = sorted(self.returns[name], key=lambda p: p[0])
            return [t for t, _ in pts], [v for _, v in pts]
        if name in self.equity:
            pts = sorted(self.equity[name], key=lambda p: p[0])
            out_t, out_r = [], []
            for (_t0, e0), (t1, e1) in itertools.pairwise(pts):
                if e0 == 0:
                    raise UsageError(f"series {name}: equity 0 cannot start a return period")
                out_t.append(t1)
                out_r.append(e1 / e0 - 1.0)
            return out_t, out_r
        raise UsageError(f"no series {name!r} in the input (have: {', '.join(names) or 'none'})")

    def position_list(self) -> list[dict[str, Any]]:
        return [p for p in self.positions.values() if p["size"] != 0]


def _num(rec: dict[str, Any], *keys: str) -> float | None:
    for k in keys:
        v = rec.get(k)
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
    return None


class _Collector:
    """Accumulates records (from files or the store) into Inputs."""

    def __init__(self, on_error: OnError) -> None:
        self.on_error = on_error
        self.inp = Inputs()
        self.pf = Portfolio()
        self.marks: dict[str, float] = {}
        self.explicit: dict[str, dict[str, Any]] = {}
        self.outcomes: dict[str, str] = {}
        self.bad = 0

    def skip(self, message: str) -> None:
        self.bad += 1
        if self.bad <= 20:
            sys.stderr.write(f"agkit risk: {message} (skipped)\n")

    def take(self, rec: dict[str, Any], where: str) -> None:
        try:
            _take(rec, self.inp, self.pf, self.marks, self.explicit, self.outcomes)
        except (KeyError, TypeError, ValueError) as exc:
            msg = f"{where}: invalid {rec.get('type')} record: {exc}"
            if self.on_error is OnError.FAIL:
                raise BadInputError(msg) from None
            self.skip(msg)

    def finish(self) -> Inputs:
        inp = self.inp
        for asset, pos in self.pf.positions.items():
            if asset in self.explicit or pos.size == 0:
                continue
            price = self.marks.get(asset, pos.mark if pos.mark is not None else pos.avg_price)
            inp.positions[asset] = {
                "market": pos.market,
                "asset": asset,
                "size": pos.size,
                "avg_price": pos.avg_price,
                "price": price,
                "outcome": self.outcomes.get(asset),
            }
        for asset, p in self.explicit.items():
            if p.get("price") is None:
                p["price"] = self.marks.get(asset, p["avg_price"])
            inp.positions[asset] = p
        return inp


def read(paths: Iterable[str], on_error: OnError = OnError.SKIP) -> Inputs:
    """Read every file (`-` = stdin) into Inputs."""
    col = _Collector(on_error)
    _read_files(col, paths)
    return col.finish()


def _read_files(col: _Collector, paths: Iterable[str]) -> None:
    for path in paths:
        with open_input(path) as stream:
            for lineno, rec, _raw, reason in iter_records(stream, col.on_error, path):
                if rec is None:
                    col.skip(f"{path} line {lineno}: {reason}")
                else:
                    col.take(rec, f"{path} line {lineno}")


# What `--from-store KIND` reads: stored records of these types ...
STORE_RECORDS: dict[str, tuple[str, ...]] = {
    "fills": ("order_filled", "book", "market_resolved"),  # positions rebuilt, marked at the last mid
    "positions": ("book", "market_resolved"),  # + the store's latest positions (query `positions`)
    "equity": ("equity", "return"),
    "options": ("option",),
}
STORE_KINDS = (*STORE_RECORDS, "pnl")  # ... and pnl: equity curves from the daily PnL rollup


def read_store(
    db: str | None,
    kinds: Iterable[str],
    paths: Iterable[str] = (),
    on_error: OnError = OnError.SKIP,
    capital: float | None = None,
) -> Inputs:
    """Inputs from the store at `db` (the store commands' default when None), plus files.

    `pnl` turns the `pnl` named query (daily net PnL per strategy, from `agkit store
    rollup`) into one equity series per strategy: capital at the start of its first day,
    then capital plus the cumulative net PnL at the end of each day (days without fills
    included); its returns are the daily returns."""
    from agkit.store import open_store
    from agkit.store.base import Filters
    from agkit.store.queries import named_query

    kinds = list(dict.fromkeys(kinds))
    col = _Collector(on_error)
    with open_store(db, create=False) as store:
        if "positions" in kinds:
            for rec in named_query(store, "positions", Filters()):
                col.take(rec, "store query positions")
        types = [t for k in kinds for t in STORE_RECORDS.get(k, ())]
        if types:
            for raw in store.export(Filters(types=list(dict.fromkeys(types)))):
                col.take(orjson.loads(raw), "store")
        if "pnl" in kinds:
            if capital is None or capital <= 0:
                raise UsageError("--from-store pnl needs --capital USD (> 0): the equity the daily PnL is a return on")
            days: dict[str, dict[int, float]] = {}
            for row in named_query(store, "pnl", Filters()):
                per_day = days.setdefault(str(row["strategy"] or "default"), {})
                per_day[int(row["day"])] = per_day.get(int(row["day"]), 0.0) + float(row["net_pnl"])
            if not days:
                raise UsageError("no daily PnL in the store: run `agkit store rollup` after ingesting fills")
            for strategy, per_day in days.items():
                equity = capital
                first = min(per_day)
                col.take({"type": "equity", "ts_event": first, "series": strategy, "value": equity}, "store query pnl")
                for day in range(first, max(per_day) + 1, DAY_US):  # a day without fills: no change
                    equity += per_day.get(day, 0.0)
                    col.take({"type": "equity", "ts_event": day + DAY_US, "series": strategy, "value": equity}, "store query pnl")
    _read_files(col, paths)
    return col.finish()


def _take(
    rec: dict[str, Any],
    inp: Inputs,
    pf: Portfolio,
    marks: dict[str, float],
    explicit: dict[str, dict[str, Any]],
    outcomes: dict[str, str],
) -> None:
    t = rec["type"]
    ts = rec.get("ts_event")
    if type(ts) is int and ts > inp.last_ts:
        inp.last_ts = ts
    inp.records += 1
    if t in ("return", "equity"):
        if type(ts) is not int:
            raise ValueError("ts_event must be an integer")
        v = _num(rec, "value", t)
        if v is None:
            raise ValueError("value must be a number")
        name = str(rec.get("series") or rec.get("asset") or rec.get("strategy") or "default")
        (inp.returns if t == "return" else inp.equity).setdefault(name, []).append((ts, v))
    elif t == "position":
        size = _num(rec, "size")
        if size is None:
            raise ValueError("size must be a number")
        asset = str(rec["asset"])
        explicit[asset] = {
            "market": str(rec["market"]),
            "asset": asset,
            "size": size,
            "avg_price": _num(rec, "avg_price") or 0.0,
            "price": _num(rec, "mark", "price"),
            "outcome": (str(rec["outcome"]).lower() if rec.get("outcome") else None),
        }
    elif t == "order_filled":
        if rec.get("settlement") == "failed":
            pf.reverse_fill(str(rec["asset"]), str(rec.get("trade_id", "")))
        else:
            pf.apply_fill_record(rec)
        if rec.get("outcome"):
            outcomes[str(rec["asset"])] = str(rec["outcome"]).lower()
    elif t == "book":
        bids, asks = rec.get("bids") or [], rec.get("asks") or []
        if bids and asks:
            marks[str(rec["asset"])] = (float(bids[0][0]) + float(asks[0][0])) / 2.0
        elif bids or asks:
            marks[str(rec["asset"])] = float((bids or asks)[0][0])
    elif t == "market_resolved":
        pf.resolve(str(rec["market"]), str(rec["winning_asset"]))
        for asset, p in explicit.items():
            if p["market"] == rec["market"]:
                p["price"] = 1.0 if asset == rec["winning_asset"] else 0.0
    elif t == "option":
        inp.options.append(rec)
    else:
        inp.ignored += 1
