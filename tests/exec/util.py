"""Record builders and an in-process runner for the exec tests."""

from __future__ import annotations

from typing import Any

from agkit.exec.paper import PaperVenue
from agkit.exec.stage import ExecStage
from agkit.runner import Chain

M, A = "0xmarket", "111"


def book(
    ts: int, bids: list[list[float]], asks: list[list[float]], asset: str = A, **kw: Any
) -> dict[str, Any]:
    rec = {
        "type": "book",
        "ts_event": ts,
        "ts_init": ts,
        "venue": "polymarket",
        "market": M,
        "asset": asset,
        "bids": bids,
        "asks": asks,
        "tick_size": 0.01,
        "min_size": 5,
    }
    rec.update(kw)
    return rec


def trade(ts: int, price: float, size: float, side: str, asset: str = A) -> dict[str, Any]:
    return {
        "type": "trade",
        "ts_event": ts,
        "ts_init": ts,
        "venue": "polymarket",
        "market": M,
        "asset": asset,
        "price": price,
        "size": size,
        "side": side,
        "trade_id": f"t{ts}",
    }


def submit(
    ts: int, oid: str, side: str, price: float, size: float, asset: str = A, **kw: Any
) -> dict[str, Any]:
    rec = {
        "type": "submit_order",
        "ts_event": ts,
        "ts_init": ts,
        "id": oid,
        "strategy": kw.pop("strategy", "s1"),
        "venue": "polymarket",
        "market": kw.pop("market", M),
        "asset": asset,
        "side": side,
        "price": price,
        "size": size,
    }
    rec.update(kw)
    return rec


def cancel(ts: int, oid: str) -> dict[str, Any]:
    return {"type": "cancel_order", "ts_event": ts, "ts_init": ts, "id": oid}


def cancel_all(ts: int, **scope: Any) -> dict[str, Any]:
    return {"type": "cancel_all", "ts_event": ts, "ts_init": ts, **scope}


def tick(ts: int) -> dict[str, Any]:
    """A quiet record that only moves event time."""
    return {"type": "feed_status", "ts_event": ts, "ts_init": ts, "source": "test", "state": "live"}


def run(records: list[dict[str, Any]], **venue_kw: Any) -> list[dict[str, Any]]:
    """Records through one paper exec stage, in process (event time, deterministic)."""
    stage = ExecStage(PaperVenue(**venue_kw))
    out: list[dict[str, Any]] = list(Chain([stage]).process(records))  # type: ignore[arg-type]
    while out and out[-1]["type"] == "metric":  # the counters emitted at the end
        out.pop()
    return out


def events(out: list[dict[str, Any]], *types: str) -> list[dict[str, Any]]:
    return [r for r in out if r["type"] in types]


def fills(out: list[dict[str, Any]], oid: str | None = None) -> list[tuple[float, float, str]]:
    """(price, size, liquidity) of each fill (of one order)."""
    return [
        (r["price"], r["size"], r["liquidity"])
        for r in out
        if r["type"] == "order_filled" and (oid is None or r["id"] == oid)
    ]
