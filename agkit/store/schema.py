"""Tables of the store, their keys, and how each record type becomes a row.

Every stored record keeps its JSON line (`raw`: the line ingest received, or the compact
encoding agkit writes for a record handed over in-process) beside typed columns for
querying, so `store export` gives back the same records. Every table has a natural or
derived key that includes `ts_event` (the
partitioning column, so the same key works for TimescaleDB hypertables and
partitioned PostgreSQL tables), which makes ingest idempotent: replaying a file or
re-running after a crash never duplicates a row. `seq` is a global ingest sequence
(one counter per database) that orders records with equal `ts_event` and drives
incremental rollups.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import msgspec
import orjson

from agkit.errors import InvalidRecord

TEXT, INT, REAL = "text", "int", "real"

Row = tuple[Any, ...]


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool = False


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]  # without seq (first) — the row tuple order
    key: tuple[str, ...]
    kind: str  # "market" | "execution" | "metrics" | "rollup" | "generic"
    indexes: tuple[tuple[str, ...], ...] = ()
    raw: bool = True  # a record table (seq, raw); False for rollup outputs
    record_types: tuple[str, ...] = field(default=())

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


def _c(spec: str) -> tuple[Column, ...]:
    """'name:type[?]' list -> columns (`?` = nullable)."""
    out = []
    for item in spec.split():
        name, _, typ = item.partition(":")
        nullable = typ.endswith("?")
        out.append(Column(name, typ.rstrip("?"), nullable))
    return tuple(out)


ORDER_EVENT_TYPES = (
    "submit_order",
    "cancel_order",
    "order_denied",
    "order_accepted",
    "order_rejected",
    "order_canceled",
    "order_expired",
)

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "books",
            _c(
                "ts_event:int ts_init:int venue:text market:text asset:text key:text "
                "best_bid:real? best_bid_size:real? best_ask:real? best_ask_size:real? mid:real? "
                "depth_bids:int depth_asks:int raw:text"
            ),
            key=("asset", "ts_event", "key"),
            kind="market",
            record_types=("book",),
        ),
        Table(
            "trades",
            _c(
                "ts_event:int ts_init:int venue:text market:text asset:text trade_id:text "
                "price:real size:real side:text raw:text"
            ),
            key=("asset", "ts_event", "venue", "trade_id"),  # prefix serves asset+time ranges
            kind="market",
            record_types=("trade",),
        ),
        Table(
            "order_events",
            _c(
                "ts_event:int ts_init:int id:text type:text strategy:text? venue:text? market:text? "
                "asset:text? side:text? price:real? size:real? venue_order_id:text? reason:text? raw:text"
            ),
            key=("id", "type", "ts_event"),
            kind="execution",
            record_types=ORDER_EVENT_TYPES,
        ),
        Table(
            "fills",
            _c(
                "ts_event:int ts_init:int id:text trade_id:text venue_order_id:text market:text "
                "asset:text side:text price:real size:real fee:real liquidity:text settlement:text "
                "strategy:text? raw:text"
            ),
            key=("trade_id", "id", "settlement", "ts_event"),
            kind="execution",
            indexes=(("market", "ts_event"),),
            record_types=("order_filled",),
        ),
        Table(
            "positions",
            _c(
                "ts_event:int ts_init:int market:text asset:text size:real avg_price:real "
                "realized_pnl:real fees:real raw:text"
            ),
            # The state is part of the key: two fills in one microsecond give two positions
            # at one ts_event, and the second must not be dropped as a duplicate.
            key=("market", "asset", "ts_event", "size", "avg_price", "realized_pnl", "fees"),
            kind="execution",
            record_types=("position",),
        ),
        Table(
            "metrics",
            _c("ts_event:int ts_init:int name:text labels:text kind:text value:real raw:text"),
            key=("name", "labels", "ts_event", "kind", "value"),  # successive values in one µs are kept
            kind="metrics",
            record_types=("metric",),
        ),
        Table(
            "records",
            _c("ts_event:int ts_init:int type:text key:text raw:text"),
            key=("key", "ts_event"),
            kind="generic",
            indexes=(("type", "ts_event"),),
        ),
        # --- rollup outputs -------------------------------------------------------------
        Table(
            "bars",
            _c(
                "source:text period:text asset:text market:text bucket:int open:real high:real "
                "low:real close:real volume:real? notional:real? n:int"
            ),
            key=("source", "period", "asset", "bucket"),
            kind="rollup",
            raw=False,
        ),
        Table(
            "pnl_daily",
            _c(
                "day:int strategy:text market:text fills:int volume:real notional:real fees:real "
                "realized_pnl:real net_pnl:real"
            ),
            key=("day", "strategy", "market"),
            kind="rollup",
            raw=False,
        ),
        Table(
            "metric_aggs",
            _c(
                "period:text name:text labels:text bucket:int n:int total:real min:real max:real "
                "avg:real last:real last_ts:int"
            ),
            key=("period", "name", "labels", "bucket"),
            kind="rollup",
            raw=False,
        ),
    )
}

RECORD_TABLES = [t for t in TABLES.values() if t.raw]
ROLLUP_TABLES = [t for t in TABLES.values() if not t.raw]
TABLE_OF_TYPE: dict[str, str] = {rt: t.name for t in RECORD_TABLES for rt in t.record_types}
_TABLE_OF_TYPE_GET = TABLE_OF_TYPE.get

# Retention defaults in days (None: kept). Raw market data 90 d, execution 365 d.
RETENTION_DAYS: dict[str, int | None] = {
    "books": 90,
    "trades": 90,
    "records": 90,
    "metrics": 90,
    "order_events": 365,
    "fills": 365,
    "positions": 365,
    "bars": None,
    "pnl_daily": None,
    "metric_aggs": None,
}

# --- record -> row -------------------------------------------------------------------

_dumps = orjson.dumps
_SORT = orjson.OPT_SORT_KEYS


def digest(raw: bytes) -> str:
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def _bad(rec: dict[str, Any], name: str, want: str) -> InvalidRecord:
    if name not in rec:
        return InvalidRecord(f"{rec.get('type')}: missing field {name!r}")
    return InvalidRecord(f"{rec.get('type')}: field {name!r} must be {want}, not {rec[name]!r}")


def _s(rec: dict[str, Any], name: str) -> str:
    v = rec.get(name)
    if type(v) is not str:
        raise _bad(rec, name, "a string")
    return v


def _so(rec: dict[str, Any], name: str) -> str | None:
    v = rec.get(name)
    if v is None or type(v) is str:
        return v
    raise _bad(rec, name, "a string or null")


def _f(rec: dict[str, Any], name: str) -> float:
    v = rec.get(name)
    t = type(v)
    if t is float:
        return v  # type: ignore[return-value]
    if t is int:
        return float(v)  # type: ignore[arg-type]
    raise _bad(rec, name, "a number")


def _fo(rec: dict[str, Any], name: str) -> float | None:
    v = rec.get(name)
    if v is None:
        return None
    return _f(rec, name)


_LO, _HI = -(1 << 62), 1 << 62  # timestamps outside are refused (no overflow in any backend)


def _ts(rec: dict[str, Any]) -> tuple[int, int]:
    a = rec.get("ts_event")
    b = rec.get("ts_init")
    if type(a) is not int:
        raise _bad(rec, "ts_event", "an integer (µs)")
    if type(b) is not int:
        raise _bad(rec, "ts_init", "an integer (µs)")
    if not _LO < a < _HI or not _LO < b < _HI:
        raise InvalidRecord(f"{rec.get('type')}: timestamp out of range")
    return a, b


def _level(rec: dict[str, Any], side: str) -> tuple[float | None, float | None, int]:
    levels = rec.get(side)
    if type(levels) is not list:
        raise _bad(rec, side, "a list of [price, size]")
    if not levels:
        return None, None, 0
    top = levels[0]
    if type(top) is not list or len(top) != 2 or type(top[0]) not in (int, float) or type(top[1]) not in (int, float):
        raise InvalidRecord(f"book: {side}[0] must be [price, size], not {top!r}")
    return float(top[0]), float(top[1]), len(levels)


def _book_checked(rec: dict[str, Any], raw: str, o: int) -> Row:
    a, b = _ts(rec)
    bid, bid_size, nb = _level(rec, "bids")
    ask, ask_size, na = _level(rec, "asks")
    mid = (bid + ask) / 2 if bid is not None and ask is not None else None
    h = rec.get("hash")
    # Without a venue hash, the key is a digest of the snapshot without ts_init, so the same
    # book recorded again (a rerun after a crash stamps a new ts_init) is not a second row.
    key = h if type(h) is str and h else digest(_dumps({k: v for k, v in rec.items() if k != "ts_init"}, option=_SORT))
    return (o, a, b, _s(rec, "venue"), _s(rec, "market"), _s(rec, "asset"), key, bid, bid_size, ask, ask_size, mid, nb, na, raw)


def _book(rec: dict[str, Any], raw: str, o: int) -> Row:
    # The fast path: a well-formed book with a venue hash and both sides, checked in one
    # expression; anything else (and every error message) takes _book_checked.
    try:
        a = rec["ts_event"]
        b = rec["ts_init"]
        venue, market, asset, h = rec["venue"], rec["market"], rec["asset"], rec["hash"]
        bids, asks = rec["bids"], rec["asks"]
        top_bid, top_ask = bids[0], asks[0]
        bid, bid_size = top_bid
        ask, ask_size = top_ask
    except (KeyError, IndexError, TypeError, ValueError):
        return _book_checked(rec, raw, o)
    if (
        type(a) is int and type(b) is int and _LO < a < _HI and _LO < b < _HI
        and type(venue) is str and type(market) is str and type(asset) is str and type(h) is str and h
        and type(bids) is list and type(asks) is list and type(top_bid) is list and type(top_ask) is list
        and type(bid) is float and type(bid_size) is float and type(ask) is float and type(ask_size) is float
    ):  # fmt: skip
        return (o, a, b, venue, market, asset, h, bid, bid_size, ask, ask_size, (bid + ask) / 2, len(bids), len(asks), raw)
    return _book_checked(rec, raw, o)


def _trade_checked(rec: dict[str, Any], raw: str, o: int) -> Row:
    a, b = _ts(rec)
    side = rec.get("side")
    if side != "buy" and side != "sell":
        raise _bad(rec, "side", "'buy' or 'sell'")
    return (
        o, a, b, _s(rec, "venue"), _s(rec, "market"), _s(rec, "asset"), _s(rec, "trade_id"),
        _f(rec, "price"), _f(rec, "size"), side, raw,
    )  # fmt: skip


def _trade(rec: dict[str, Any], raw: str, o: int) -> Row:
    try:
        a, b, side = rec["ts_event"], rec["ts_init"], rec["side"]
        venue, market, asset, trade_id = rec["venue"], rec["market"], rec["asset"], rec["trade_id"]
        price, size = rec["price"], rec["size"]
    except KeyError:
        return _trade_checked(rec, raw, o)
    if (
        type(a) is int and type(b) is int and _LO < a < _HI and _LO < b < _HI
        and (side == "buy" or side == "sell") and type(venue) is str and type(market) is str
        and type(asset) is str and type(trade_id) is str and type(price) is float and type(size) is float
    ):  # fmt: skip
        return (o, a, b, venue, market, asset, trade_id, price, size, side, raw)
    return _trade_checked(rec, raw, o)


def _order_event(rec: dict[str, Any], raw: str, o: int) -> Row:
    a, b = _ts(rec)
    return (
        o, a, b, _s(rec, "id"), rec["type"], _so(rec, "strategy"), _so(rec, "venue"), _so(rec, "market"),
        _so(rec, "asset"), _so(rec, "side"), _fo(rec, "price"), _fo(rec, "size"),
        _so(rec, "venue_order_id"), _so(rec, "reason"), raw,
    )  # fmt: skip


def _fill(rec: dict[str, Any], raw: str, o: int) -> Row:
    a, b = _ts(rec)
    side = rec.get("side")
    if side != "buy" and side != "sell":
        raise _bad(rec, "side", "'buy' or 'sell'")
    settlement = rec.get("settlement", "pending")
    if type(settlement) is not str:
        raise _bad(rec, "settlement", "a string")
    return (
        o, a, b, _s(rec, "id"), _s(rec, "trade_id"), _s(rec, "venue_order_id"), _s(rec, "market"),
        _s(rec, "asset"), side, _f(rec, "price"), _f(rec, "size"), _f(rec, "fee"),
        _s(rec, "liquidity"), settlement, _so(rec, "strategy"), raw,
    )  # fmt: skip


def _position(rec: dict[str, Any], raw: str, o: int) -> Row:
    a, b = _ts(rec)
    return (
        o, a, b, _s(rec, "market"), _s(rec, "asset"), _f(rec, "size"), _f(rec, "avg_price"),
        _f(rec, "realized_pnl"), _f(rec, "fees"), raw,
    )  # fmt: skip


def canonical_labels(labels: Any) -> str:
    """Labels as sorted compact JSON: the form stored, keyed and filtered on."""
    if labels is None:
        return "{}"
    if type(labels) is not dict:
        raise InvalidRecord(f"metric: labels must be an object, not {labels!r}")
    return _dumps(labels, option=_SORT).decode()


def _metric(rec: dict[str, Any], raw: str, o: int) -> Row:
    a, b = _ts(rec)
    return (
        o, a, b, _s(rec, "name"), canonical_labels(rec.get("labels")), _s(rec, "kind"),
        _f(rec, "value"), raw,
    )  # fmt: skip


def _generic(rec: dict[str, Any], raw: str, o: int) -> Row:
    a, b = _ts(rec)
    # The key leaves ts_init out: a stage rerun after a crash re-creates the same event
    # (e.g. exec's cancel_rejected) with a new ts_init, and it must not become a second row.
    key = digest(_dumps({k: v for k, v in rec.items() if k != "ts_init"}, option=_SORT))
    return (o, a, b, rec["type"], key, raw)


ROW_MAKERS: dict[str, Callable[[dict[str, Any], str, int], Row]] = {
    "books": _book,
    "trades": _trade,
    "order_events": _order_event,
    "fills": _fill,
    "positions": _position,
    "metrics": _metric,
    "records": _generic,
}


# --- line -> row, for well-formed books and trades ------------------------------------
# One typed msgspec pass over the line checks and extracts what the dict path above
# checks and extracts (a book with a venue hash and both sides, a trade), without
# building the record dict. Anything it refuses takes the dict path, which decides
# and words every error; a test checks both paths give the same rows.

_Ts = Annotated[int, msgspec.Meta(gt=_LO, lt=_HI)]


class _BookLine(msgspec.Struct, tag="book", tag_field="type"):
    ts_event: _Ts
    ts_init: _Ts
    venue: str
    market: str
    asset: str
    hash: Annotated[str, msgspec.Meta(min_length=1)]
    bids: Annotated[list[tuple[float, float]], msgspec.Meta(min_length=1)]
    asks: Annotated[list[tuple[float, float]], msgspec.Meta(min_length=1)]
    fb: str | None = msgspec.field(name="_fb", default=None)  # checked as the runner checks it


class _TradeLine(msgspec.Struct, tag="trade", tag_field="type"):
    ts_event: _Ts
    ts_init: _Ts
    venue: str
    market: str
    asset: str
    trade_id: str
    price: float
    size: float
    side: Literal["buy", "sell"]
    fb: str | None = msgspec.field(name="_fb", default=None)


_decode_line = msgspec.json.Decoder(_BookLine | _TradeLine).decode
_intern = sys.intern


def line_row(line: bytes, raw: str, o: int) -> tuple[str, Row] | None:
    """(table, row) of a well-formed book or trade line; None for any other line."""
    try:
        r = _decode_line(line)
    except msgspec.DecodeError:  # another type, or not well-formed: the dict path decides
        return None
    # Venue, market and asset repeat on every row: one shared (interned) string each lets
    # the batch travel to the writer process with back-references (a third cheaper to load).
    venue, market, asset = _intern(r.venue), _intern(r.market), _intern(r.asset)
    if type(r) is _TradeLine:
        return "trades", (o, r.ts_event, r.ts_init, venue, market, asset, r.trade_id, r.price, r.size, r.side, raw)
    assert type(r) is _BookLine
    bids, asks = r.bids, r.asks
    bid, bid_size = bids[0]
    ask, ask_size = asks[0]
    return "books", (
        o, r.ts_event, r.ts_init, venue, market, asset, r.hash,
        bid, bid_size, ask, ask_size, (bid + ask) / 2, len(bids), len(asks), raw,
    )  # fmt: skip


def batch_row(rec: dict[str, Any], ord: int, raw: str | None = None) -> tuple[str, Row]:
    """(table, row) for a decoded record; raises InvalidRecord for one we cannot store.

    row[0] is `ord`, the record's place in its batch (stored as seq = batch base + ord),
    then the table's columns in order. `raw` is the JSON line the record was decoded
    from, stored as it is; without it the record is encoded compactly."""
    table = _TABLE_OF_TYPE_GET(rec["type"], "records")
    return table, ROW_MAKERS[table](rec, _dumps(rec).decode() if raw is None else raw, ord)


def to_row(rec: dict[str, Any]) -> tuple[str, Row]:
    """(table, the table's columns in order) for a decoded record; InvalidRecord if unstorable."""
    table, row = batch_row(rec, 0)
    return table, row[1:]


def ddl_type(typ: str, backend: str) -> str:
    if backend == "sqlite":
        return {TEXT: "TEXT", INT: "INTEGER", REAL: "REAL"}[typ]
    return {TEXT: "text", INT: "bigint", REAL: "double precision"}[typ]
