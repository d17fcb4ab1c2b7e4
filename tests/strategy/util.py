"""Small record builders for the strategy tests."""

from __future__ import annotations

from typing import Any

from agkit.clock import EventClock
from agkit.runner import Chain
from agkit.stage import Context, Stage

T0 = 1_767_225_600_000_000
MKT = "0xmarket"
YES = "111"
NO = "222"


def book(
    asset: str,
    bid: float | None,
    ask: float | None,
    ts: int = T0,
    *,
    market: str = MKT,
    size: float = 100.0,
    tick: float = 0.01,
    min_size: float = 5.0,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "type": "book",
        "ts_event": ts,
        "ts_init": ts,
        "venue": "sim",
        "market": market,
        "asset": asset,
        "bids": [[bid, size]] if bid is not None else [],
        "asks": [[ask, size]] if ask is not None else [],
        "tick_size": tick,
        "min_size": min_size,
        **extra,
    }


def pair(bid: float, ask: float, ts: int = T0, **kw: Any) -> list[dict[str, Any]]:
    """The YES book and its mirrored NO book."""
    return [book(YES, bid, ask, ts, **kw), book(NO, round(1 - ask, 6), round(1 - bid, 6), ts, **kw)]


def fill(oid: str, asset: str, side: str, price: float, size: float, ts: int = T0, market: str = MKT) -> dict[str, Any]:
    return {
        "type": "order_filled",
        "ts_event": ts,
        "ts_init": ts,
        "id": oid,
        "venue_order_id": "v" + oid,
        "trade_id": "t" + oid + str(ts),
        "market": market,
        "asset": asset,
        "side": side,
        "price": price,
        "size": size,
        "fee": 0.0,
        "liquidity": "maker",
    }


def event(rtype: str, oid: str, ts: int = T0) -> dict[str, Any]:
    return {"type": rtype, "ts_event": ts, "ts_init": ts, "id": oid, "venue_order_id": "v" + oid, "reason": "x"}


def started(stage: Stage) -> Stage:
    stage.start(Context(EventClock(T0), lambda r: None, lambda m: None))
    return stage


def feed(stage: Stage, recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records the stage emits (beyond forwarding), in order."""
    out: list[dict[str, Any]] = []
    for rec in recs:
        res = stage.on_record(rec) or ()
        out += [r for r in res if r is not rec]  # type: ignore[misc]
    return out


def orders(out: list[dict[str, Any]], rtype: str = "submit_order") -> list[dict[str, Any]]:
    return [r for r in out if r["type"] == rtype]


def chain_run(stages: list[Stage], recs: list[dict[str, Any]], feedback_from: int) -> list[dict[str, Any]]:
    chain = Chain(stages, feedback_from=feedback_from, clock=EventClock(recs[0]["ts_event"]))
    return [r for r in chain.process(recs)]  # type: ignore[misc]
