"""The record vocabulary of the stream contract (DESIGN.md §2), defined once.

Each record type is a frozen msgspec Struct tagged by its `type` field; the JSON
Schema printed by `agkit schema` and the checks of `agkit validate` are generated
from these same classes. On the hot path stages read records as plain dicts (fast
to parse, forwarded byte-for-byte); they build their own output with these classes
or with dicts of the same shape.

Conventions: timestamps are integer microseconds since the epoch (UTC); token and
condition ids are strings; prices and sizes are JSON numbers; events are past tense,
commands imperative. Unknown extra fields are allowed (forward compatibility).
"""

from __future__ import annotations

import time
from typing import Any, Literal

import msgspec

Side = Literal["buy", "sell"]
Level = tuple[float, float]  # [price, size]
# a size of shares above this is garbage, not liquidity (more shares than USDC exists):
# stages refuse it, which keeps their arithmetic finite
MAX_SIZE = 1e15
MIN_TICK = 1e-6  # the finest tick taken (Polymarket's is 0.0001); finer overflows a price grid


def error_record(ts: int, line: int | None, reason: str, raw: bytes, source: str) -> dict[str, Any]:
    """An `error` record (Error's wire shape) for a bad line or a refused record under
    --on-error emit; `raw`: its text, cut to RAW_KEEP bytes."""
    from agkit.stream import RAW_KEEP

    text = raw[:RAW_KEEP].decode("utf-8", "replace")
    return {"type": "error", "ts_event": ts, "ts_init": ts, "line": line, "reason": reason, "raw": text,
            "source": source}


def metric_record(
    ts_event: int,
    name: str,
    value: float,
    kind: str = "gauge",
    labels: dict[str, str] | None = None,
    ts_init: int | None = None,
) -> dict[str, Any]:
    """A `metric` record as a plain dict (Metric's wire shape): cheap where stages emit
    metrics often. ts_init defaults to ts_event."""
    return {
        "type": "metric",
        "ts_event": ts_event,
        "ts_init": ts_event if ts_init is None else ts_init,
        "name": name,
        "kind": kind,
        "value": value,
        "labels": {} if labels is None else labels,
    }


def now_us() -> int:
    """Wall-clock time in integer microseconds since the epoch."""
    return time.time_ns() // 1000


class Record(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Fields every record carries."""

    ts_event: int  # when it happened at its source (e.g. the venue's timestamp), µs
    ts_init: int  # when this process created the record, µs


# --- market data (feed) -------------------------------------------------------


class Book(Record, frozen=True, kw_only=True, tag="book"):
    venue: str
    market: str  # condition id
    asset: str  # token id
    bids: list[Level]  # best (highest) first
    asks: list[Level]  # best (lowest) first
    tick_size: float
    min_size: float
    hash: str | None = None


class Trade(Record, frozen=True, kw_only=True, tag="trade"):
    venue: str
    market: str
    asset: str
    price: float
    size: float
    side: Side  # aggressor side
    trade_id: str
    fee_rate_bps: float | None = None


class TickSizeChanged(Record, frozen=True, kw_only=True, tag="tick_size_changed"):
    venue: str
    market: str
    asset: str
    old_tick_size: float
    new_tick_size: float


class MarketResolved(Record, frozen=True, kw_only=True, tag="market_resolved"):
    venue: str
    market: str
    winning_asset: str  # the token that pays 1
    winning_outcome: str | None = None
    assets: list[str] = []


class ReferencePrice(Record, frozen=True, kw_only=True, tag="reference_price"):
    source: str  # e.g. crypto_prices, crypto_prices_chainlink
    symbol: str
    value: float


class RtdsEvent(Record, frozen=True, kw_only=True, tag="rtds_event"):
    """A live-data (RTDS) message of a topic without its own record type (comments, activity, ...)."""

    topic: str
    event: str  # the RTDS message type, e.g. comment_created
    payload: Any = None
    connection_id: str | None = None


class FeedStatus(Record, frozen=True, kw_only=True, tag="feed_status"):
    source: str
    state: Literal["live", "stale", "reconnecting"]
    lag_ms: float | None = None
    detail: str | None = None


class MarketInfo(Record, frozen=True, kw_only=True, tag="market_info"):
    """A market's static description (`agkit markets`, from the Gamma API)."""

    venue: str
    market: str  # condition id
    slug: str
    question: str
    assets: list[str]  # token ids, in outcome order
    outcomes: list[str]
    tick_size: float | None = None
    min_size: float | None = None
    neg_risk: bool = False
    end_date: str | None = None
    active: bool | None = None
    closed: bool | None = None
    accepting_orders: bool | None = None


# --- commands (strategy, risk-check) --------------------------------------------


class SubmitOrder(Record, frozen=True, kw_only=True, tag="submit_order"):
    id: str  # client order id, unique per run
    strategy: str
    venue: str
    market: str
    asset: str
    side: Side
    price: float
    size: float  # shares
    tif: Literal["GTC", "GTD", "FOK", "FAK"] = "GTC"
    post_only: bool = False
    expire_at: int | None = None  # µs, GTD only
    neg_risk: bool | None = None
    # a market order (FOK/FAK): BUY spends this much pUSD, SELL sells this many shares (=
    # size); price is then the worst price accepted and size, for a BUY, the most shares
    amount: float | None = None


class CancelOrder(Record, frozen=True, kw_only=True, tag="cancel_order"):
    id: str  # client order id to cancel
    reason: str | None = None


class CancelAll(Record, frozen=True, kw_only=True, tag="cancel_all"):
    market: str | None = None  # scope: all three None means every open order
    asset: str | None = None
    strategy: str | None = None
    reason: str | None = None


# --- events (risk-check, exec) ----------------------------------------------------


class OrderDenied(Record, frozen=True, kw_only=True, tag="order_denied"):
    id: str
    policy: str
    reason: str


class OrderAccepted(Record, frozen=True, kw_only=True, tag="order_accepted"):
    id: str
    venue_order_id: str


class OrderRejected(Record, frozen=True, kw_only=True, tag="order_rejected"):
    id: str
    reason: str
    venue_order_id: str | None = None


class OrderCanceled(Record, frozen=True, kw_only=True, tag="order_canceled"):
    id: str
    venue_order_id: str | None = None
    reason: str | None = None


class CancelRejected(Record, frozen=True, kw_only=True, tag="cancel_rejected"):
    """A cancel_order (or part of a cancel_all) the OMS or the venue refused."""

    id: str
    reason: str
    venue_order_id: str | None = None


class OrderExpired(Record, frozen=True, kw_only=True, tag="order_expired"):
    id: str
    venue_order_id: str | None = None
    reason: str | None = None


class OrderFilled(Record, frozen=True, kw_only=True, tag="order_filled"):
    id: str
    venue_order_id: str
    trade_id: str
    market: str
    asset: str
    side: Side
    price: float
    size: float
    fee: float
    liquidity: Literal["maker", "taker"]
    settlement: Literal["pending", "confirmed", "failed"] = "pending"
    strategy: str | None = None


class Position(Record, frozen=True, kw_only=True, tag="position"):
    market: str
    asset: str
    size: float
    avg_price: float
    realized_pnl: float
    fees: float


class KillSwitch(Record, frozen=True, kw_only=True, tag="kill_switch"):
    engaged: bool
    reason: str


# --- observability --------------------------------------------------------------------


class Metric(Record, frozen=True, kw_only=True, tag="metric"):
    name: str
    kind: Literal["counter", "gauge", "histogram"]
    value: float
    labels: dict[str, str] = {}


class Error(Record, frozen=True, kw_only=True, tag="error"):
    line: int | None
    reason: str
    raw: str
    source: str | None = None  # the stage that found it


RECORD_TYPES: dict[str, type[Record]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in (
        Book,
        Trade,
        TickSizeChanged,
        MarketResolved,
        ReferencePrice,
        FeedStatus,
        MarketInfo,
        RtdsEvent,
        SubmitOrder,
        CancelOrder,
        CancelAll,
        OrderDenied,
        OrderAccepted,
        OrderRejected,
        OrderCanceled,
        CancelRejected,
        OrderExpired,
        OrderFilled,
        Position,
        KillSwitch,
        Metric,
        Error,
    )
}


def register(cls: type[Record]) -> type[Record]:
    """Add a record type defined elsewhere (a plug-in) to the vocabulary."""
    RECORD_TYPES[cls.__struct_config__.tag] = cls  # type: ignore[index]
    return cls


def to_builtins(record: Record) -> dict[str, Any]:
    """A record as a plain dict with its `type` tag, as it appears on the wire."""
    out: dict[str, Any] = msgspec.to_builtins(record)
    return out


def parse(obj: dict[str, Any]) -> Record:
    """Validate a decoded record against its type; raises ValueError naming the problem."""
    rtype = obj.get("type")
    cls = RECORD_TYPES.get(rtype) if isinstance(rtype, str) else None
    if cls is None:
        raise ValueError(f"unknown record type {rtype!r}")
    try:
        return msgspec.convert(obj, cls)
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc)) from None


def json_schema(type_name: str | None = None) -> dict[str, Any]:
    """JSON Schema (2020-12) of one record type, or of the whole vocabulary."""
    if type_name is not None:
        if type_name not in RECORD_TYPES:
            raise KeyError(type_name)
        types: tuple[Any, ...] = (RECORD_TYPES[type_name],)
    else:
        types = tuple(RECORD_TYPES.values())
    (schemas, components) = msgspec.json.schema_components(types, ref_template="#/$defs/{name}")
    doc: dict[str, Any] = {"$schema": "https://json-schema.org/draft/2020-12/schema"}
    if type_name is not None:
        doc.update(schemas[0])
    else:
        doc["title"] = "agkit record"
        doc["anyOf"] = list(schemas)
    doc["$defs"] = components
    return doc
