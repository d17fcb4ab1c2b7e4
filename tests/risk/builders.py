"""Record builders shared by the risk tests."""

from __future__ import annotations

from typing import Any

T0 = 1_790_000_000_000_000  # µs, a fixed event time


def book(asset: str = "a1", bid: float | None = 0.48, ask: float | None = 0.52, ts: int = T0, market: str = "m1") -> dict[str, Any]:
    return {
        "type": "book",
        "ts_event": ts,
        "ts_init": ts,
        "venue": "sim",
        "market": market,
        "asset": asset,
        "bids": [] if bid is None else [[bid, 100.0]],
        "asks": [] if ask is None else [[ask, 100.0]],
        "tick_size": 0.01,
        "min_size": 5.0,
    }


def order(oid: str, side: str = "buy", price: float = 0.5, size: float = 10.0, asset: str = "a1", ts: int = T0, market: str = "m1") -> dict[str, Any]:
    return {
        "type": "submit_order",
        "ts_event": ts,
        "ts_init": ts,
        "id": oid,
        "strategy": "test",
        "venue": "sim",
        "market": market,
        "asset": asset,
        "side": side,
        "price": price,
        "size": size,
        "tif": "GTC",
        "post_only": False,
        "expire_at": None,
    }


def fill(oid: str, side: str = "buy", price: float = 0.5, size: float = 10.0, asset: str = "a1", ts: int = T0, market: str = "m1", trade: str | None = None, settlement: str = "pending") -> dict[str, Any]:
    return {
        "type": "order_filled",
        "ts_event": ts,
        "ts_init": ts,
        "id": oid,
        "venue_order_id": "v-" + oid,
        "trade_id": trade or ("t-" + oid),
        "market": market,
        "asset": asset,
        "side": side,
        "price": price,
        "size": size,
        "fee": 0.0,
        "liquidity": "maker",
        "settlement": settlement,
    }


def event(kind: str, oid: str, ts: int = T0) -> dict[str, Any]:
    return {"type": kind, "ts_event": ts, "ts_init": ts, "id": oid, "venue_order_id": "v-" + oid, "reason": "test"}
