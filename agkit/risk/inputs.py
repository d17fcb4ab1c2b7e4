"""Reading the analytics' NDJSON inputs (the forms are documented in docs/risk.md).

- `return`   {value, series?|asset?}: a per-period simple return (fraction)
- `equity`   {value, series?}: an equity (account value) point; returns are derived
- `position` {market, asset, size, avg_price, mark?|price?, outcome?}: a holding
- `order_filled` (exec's events): positions rebuilt with agkit.portfolio
- `book`: marks (mid) for the positions; `market_resolved`: positions settled
- `option`   {spot, strike, expiry_years, vol|price, rate?, right?, kind?, quantity?}
Records of other types are ignored. Records are ordered by ts_event within a series.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agkit.errors import BadInputError, UsageError
from agkit.portfolio import Portfolio
from agkit.stream import OnError, iter_records, open_input


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


def read(paths: Iterable[str], on_error: OnError = OnError.SKIP) -> Inputs:
    """Read every file (`-` = stdin) into Inputs."""
    inp = Inputs()
    pf = Portfolio()
    marks: dict[str, float] = {}
    explicit: dict[str, dict[str, Any]] = {}
    outcomes: dict[str, str] = {}
    bad = 0
    for path in paths:
        with open_input(path) as stream:
            for lineno, rec, _raw, reason in iter_records(stream, on_error, path):
                if rec is None:
                    bad += 1
                    if bad <= 20:
                        sys.stderr.write(f"agkit risk: {path} line {lineno}: {reason} (skipped)\n")
                    continue
                try:
                    _take(rec, inp, pf, marks, explicit, outcomes)
                except (KeyError, TypeError, ValueError) as exc:
                    msg = f"{path} line {lineno}: invalid {rec.get('type')} record: {exc}"
                    if on_error is OnError.FAIL:
                        raise BadInputError(msg) from None
                    bad += 1
                    if bad <= 20:
                        sys.stderr.write(f"agkit risk: {msg} (skipped)\n")
    for asset, pos in pf.positions.items():
        if asset in explicit or pos.size == 0:
            continue
        price = marks.get(asset, pos.mark if pos.mark is not None else pos.avg_price)
        inp.positions[asset] = {
            "market": pos.market,
            "asset": asset,
            "size": pos.size,
            "avg_price": pos.avg_price,
            "price": price,
            "outcome": outcomes.get(asset),
        }
    for asset, p in explicit.items():
        if p.get("price") is None:
            p["price"] = marks.get(asset, p["avg_price"])
        inp.positions[asset] = p
    return inp


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
