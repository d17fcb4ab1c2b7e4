"""`agkit feed polymarket`: the CLOB market WebSocket into book/trade/... records.

`Normalizer` turns venue frames into records (library form, no I/O): a full L2 book
per asset from `book` snapshots and `price_change` updates (the current
`price_changes[]` schema, and both legacy forms), `trade` from `last_trade_price`,
`tick_size_changed`, `market_resolved`. Frames may be JSON objects or arrays of them;
unknown event types are counted and reported once; malformed events are counted,
reported and skipped (an event is validated whole before it touches a book). With
`encoded=True` a book record comes out already encoded, as `(asset, line)`: the bytes
`orjson.dumps` gives for the record, joined from the book's cached level JSON.

`PolymarketFeed` is the stage: one WebSocket per shard of at most `shard_size`
assets; a text `PING` every `ping_every` seconds; a silence watchdog; reconnection
with exponential backoff and full jitter; on every (re)connection the shard's books
are dropped and reseeded from the fresh snapshots, bracketed by `feed_status`
`reconnecting` → `live` so nothing downstream trades on a stale book. Under
downstream back-pressure book records are conflated per asset (the latest book
wins); trades, resolutions and status records are never dropped.
"""

from __future__ import annotations

import asyncio
import gc
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson

from agkit.clock import MAX_TS_US
from agkit.feed.base import Attempt, FeedMetrics, LiveFeed, Silent
from agkit.feed.book import L2Book
from agkit.records import MAX_SIZE, metric_record, now_us
from agkit.stage import Context

WS_URL = "wss://ws-subscriptions-clob.polymarket.com/ws/market"
DEFAULT_TICK = 0.01
DEFAULT_MIN_SIZE = 5.0
IGNORED_EVENTS = frozenset({"best_bid_ask", "new_market"})
REPORT_FIRST = 20
RELEASE_EVERY = 0.005  # s between looks at a lagging reader while books are held back
_SIDES = {"BUY": True, "buy": True, "Buy": True, "SELL": False, "sell": False, "Sell": False}
_INF = math.inf


@dataclass
class AssetMeta:
    """What the book record needs beyond the frames: from Gamma, or the book snapshot."""

    market: str = ""
    tick_size: float = DEFAULT_TICK
    min_size: float = DEFAULT_MIN_SIZE
    neg_risk: bool | None = None
    outcome: str | None = None


BookLine = tuple[str, bytes]  # (asset, the encoded book record without its newline)
Out = dict[str, Any] | BookLine


class BadEvent(ValueError):
    pass


class _Change(msgspec.Struct):
    asset_id: str
    side: str
    price: float  # from the venue's decimal string, converted by msgspec (strict=False)
    size: float
    hash: str | None = None


class _PriceChange(msgspec.Struct):
    """The common frame: one `price_change` object in the current schema."""

    event_type: str  # a plain field: a struct's tag may be absent when it is not in a union
    price_changes: list[_Change]
    market: str | None = None
    timestamp: Any = None


_decode_price_change = msgspec.json.Decoder(_PriceChange, strict=False).decode


def _num(value: Any, what: str, hi: float = _INF) -> float:
    """A JSON number or numeric string in [0, hi] (finite)."""
    kind = type(value)  # exact types, as JSON gives them (a bool is not a number)
    if kind is not str and kind is not float and kind is not int:
        raise BadEvent(f"{what} is not a number: {value!r}")
    try:
        x = float(value)
    except (ValueError, OverflowError):
        raise BadEvent(f"{what} is not a number: {value!r}") from None
    if 0 <= x <= hi and x < _INF:  # NaN fails this too
        return x
    raise BadEvent(f"{what} out of range: {value!r}")


def _price(value: Any, what: str = "price") -> float:
    return _num(value, what, 1.0)


def _size(value: Any, what: str = "size") -> float:
    return _num(value, what, MAX_SIZE)


def _str(ev: dict[str, Any], key: str) -> str:
    value = ev.get(key)
    if not isinstance(value, str) or not value:
        raise BadEvent(f"missing or empty {key!r}")
    return value


def _levels(raw: Any, what: str) -> list[tuple[float, float]]:
    if not isinstance(raw, list):
        raise BadEvent(f"{what} is not a list")
    out = []
    for lv in raw:
        if isinstance(lv, dict):
            out.append((_price(lv.get("price"), f"{what} price"), _size(lv.get("size"), f"{what} size")))
        elif isinstance(lv, list) and len(lv) == 2:
            out.append((_price(lv[0], f"{what} price"), _size(lv[1], f"{what} size")))
        else:
            raise BadEvent(f"bad {what} level {lv!r}")
    return out


def _side(value: Any) -> bool:
    """True for a bid level (BUY), False for an ask level (SELL)."""
    is_bid = _SIDES.get(value) if type(value) is str else None
    if is_bid is None:
        raise BadEvent(f"bad side {value!r}")
    return is_bid


class Normalizer:
    """Venue frames in, records out; keeps the books. No I/O."""

    def __init__(
        self,
        *,
        venue: str = "polymarket",
        depth: int = 10,
        meta: dict[str, AssetMeta] | None = None,
        log: Callable[[str], None] | None = None,
        clock: Callable[[], int] = now_us,
        encoded: bool = False,
    ) -> None:
        self.venue = venue
        self.depth = depth
        self.encoded = encoded
        self._venue_json = orjson.dumps(venue)
        # asset -> ((market, tick, min size), b'"venue":...,"bids":[', b'],"tick_size":...,"min_size":...')
        self._framing: dict[str, tuple[tuple[str, float, float], bytes, bytes]] = {}
        self._stamp_ts = self._stamp_now = -1
        self._stamp = b""
        self.meta: dict[str, AssetMeta] = meta if meta is not None else {}
        self.books: dict[str, L2Book] = {}
        self.log = log or (lambda _m: None)
        self.clock = clock
        self.frames = 0
        self.events = 0
        self.bad = 0
        self.unknown = 0
        self.ignored = 0
        self.dropped_deltas = 0  # updates for an asset with no snapshot since (re)connect
        self.last_lag_ms: float | None = None
        self.trade_seq = 0
        self._unknown_seen: set[str] = set()
        # hooks for the stage
        self.on_snapshot: Callable[[str], None] | None = None

    # -- frames ----------------------------------------------------------------------

    def frame(self, data: str | bytes, recv_us: int | None = None) -> list[Out]:
        """Records for one WebSocket message (an object or an array of objects)."""
        self.frames += 1
        now = self.clock() if recv_us is None else recv_us
        fast = self._fast_price_change(data, now)
        if fast is not None:
            return fast
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            text = data if isinstance(data, str) else data.decode("utf-8", "replace")
            self._bad(f"not JSON: {text[:120]!r}")
            return []
        items = obj if isinstance(obj, list) else [obj]
        out: list[Out] = []
        for ev in items:
            out += self.event(ev, now)
        return out

    def _fast_price_change(self, data: str | bytes, now: int) -> list[Out] | None:
        """The records of a frame that is one valid current-schema `price_change`, decoded
        and typed by msgspec in one pass; None sends the frame down the general path
        (anything else, and anything to reject: that path says why)."""
        try:
            ev = _decode_price_change(data)
        except msgspec.DecodeError:
            return None
        if ev.event_type != "price_change":
            return None
        changes = []
        for ch in ev.price_changes:
            is_bid = _SIDES.get(ch.side)
            price, size = ch.price, ch.size
            if is_bid is None or not ch.asset_id or not (0 <= price <= 1.0 and 0 <= size <= MAX_SIZE):
                return None
            changes.append((ch.asset_id, is_bid, price, size, ch.hash))
        try:
            ts = self._ts_of(ev.timestamp, now)
        except BadEvent:
            return None
        self.events += 1
        return self._apply(changes, ev.market, ts, now)

    def event(self, ev: Any, now: int) -> list[Out]:
        if not isinstance(ev, dict):
            self._bad(f"event is not an object: {str(ev)[:120]}")
            return []
        self.events += 1
        kind = ev.get("event_type")
        if kind is not None and type(kind) is not str:  # a list is not even hashable
            self._bad(f"event_type is not a string: {str(kind)[:60]}")
            return []
        try:
            ts = self._ts(ev, now)
            if kind == "book":
                return self._book(ev, ts, now)
            if kind == "price_change":
                return self._price_change(ev, ts, now)
            if kind == "last_trade_price":
                return self._trade(ev, ts, now)
            if kind == "tick_size_change":
                return self._tick(ev, ts, now)
            if kind == "market_resolved":
                return self._resolved(ev, ts, now)
        except BadEvent as exc:
            self._bad(f"{kind}: {exc}")
            return []
        if kind in IGNORED_EVENTS:
            self.ignored += 1
            return []
        self.unknown += 1
        label = str(kind)[:60]
        if label not in self._unknown_seen:
            self._unknown_seen.add(label)
            self.log(f"unknown event type {label!r} ignored: {orjson.dumps(ev)[:160].decode('utf-8', 'replace')}")
        return []

    def _bad(self, reason: str) -> None:
        self.bad += 1
        if self.bad <= REPORT_FIRST:
            self.log(f"bad frame skipped: {reason}")

    def _ts(self, ev: dict[str, Any], now: int) -> int:
        return self._ts_of(ev.get("timestamp"), now)

    def _ts_of(self, raw: Any, now: int) -> int:
        if raw is None:
            return now
        ms = _num(raw, "timestamp")
        if ms < 1e11:  # seconds (docs examples), not ms
            ms *= 1000
        if ms * 1000 > MAX_TS_US:
            raise BadEvent(f"timestamp {raw!r} is after 2100")
        ts = int(ms * 1000)
        self.last_lag_ms = (now - ts) / 1000
        return ts

    def _meta(self, asset: str, market: str | None) -> AssetMeta:
        m = self.meta.get(asset)
        if m is None:
            m = self.meta[asset] = AssetMeta(market=market or "")
        elif market and not m.market:
            m.market = market
        return m

    def book_record(self, asset: str, ts: int, now: int) -> dict[str, Any]:
        book = self.books[asset]
        meta = self.meta[asset]
        bids, asks = book.top(self.depth)
        rec: dict[str, Any] = {
            "type": "book",
            "ts_event": ts,
            "ts_init": now,
            "venue": self.venue,
            "market": meta.market,
            "asset": asset,
            "bids": bids,
            "asks": asks,
            "tick_size": meta.tick_size,
            "min_size": meta.min_size,
        }
        if book.hash:
            rec["hash"] = book.hash
        return rec

    def book_line(self, asset: str, ts: int, now: int) -> bytes:
        """`orjson.dumps(self.book_record(asset, ts, now))`, mostly from cached bytes."""
        meta = self.meta[asset]
        key = (meta.market, meta.tick_size, meta.min_size)
        framing = self._framing.get(asset)
        if framing is None or framing[0] != key:
            framing = self._framing[asset] = (
                key,
                b'"venue":%b,"market":%b,"asset":%b,"bids":['
                % (self._venue_json, orjson.dumps(meta.market), orjson.dumps(asset)),
                b'],"tick_size":%b,"min_size":%b' % (orjson.dumps(meta.tick_size), orjson.dumps(meta.min_size)),
            )
        if ts != self._stamp_ts or now != self._stamp_now:  # the books of one event share it
            self._stamp_ts, self._stamp_now = ts, now
            self._stamp = b'{"type":"book","ts_event":%d,"ts_init":%d,' % (ts, now)
        book = self.books[asset]
        bids, asks = book.top_json()
        h = book.hash
        if h:
            return b"".join(
                (self._stamp, framing[1], bids, b'],"asks":[', asks, framing[2], b',"hash":', orjson.dumps(h), b"}")
            )
        return b"".join((self._stamp, framing[1], bids, b'],"asks":[', asks, framing[2], b"}"))

    def _book_out(self, asset: str, ts: int, now: int) -> Out:
        if self.encoded:
            return (asset, self.book_line(asset, ts, now))
        return self.book_record(asset, ts, now)

    # -- events ------------------------------------------------------------------------

    def _book(self, ev: dict[str, Any], ts: int, now: int) -> list[Out]:
        asset = _str(ev, "asset_id")
        market = ev.get("market") if isinstance(ev.get("market"), str) else None
        bids = _levels(ev.get("bids", ev.get("buys")), "bids")
        asks = _levels(ev.get("asks", ev.get("sells")), "asks")
        tick = ev.get("tick_size")
        min_size = ev.get("min_order_size")
        meta = self._meta(asset, market)
        if tick is not None:
            meta.tick_size = _price(tick, "tick_size")
        if min_size is not None:
            meta.min_size = _size(min_size, "min_order_size")
        book = self.books.get(asset)
        if book is None:
            book = self.books[asset] = L2Book(self.depth)
        book.snapshot(bids, asks)
        book.hash = ev.get("hash") if isinstance(ev.get("hash"), str) else None
        book.ts_us = ts
        if self.on_snapshot is not None:
            self.on_snapshot(asset)
        return [self._book_out(asset, ts, now)]

    def _price_change(self, ev: dict[str, Any], ts: int, now: int) -> list[Out]:
        market = ev.get("market") if isinstance(ev.get("market"), str) else None
        changes: list[tuple[str, bool, float, float, str | None]] = []
        if "price_changes" in ev:  # current schema
            raw = ev["price_changes"]
            if not isinstance(raw, list):
                raise BadEvent("price_changes is not a list")
            for ch in raw:
                if not isinstance(ch, dict):
                    raise BadEvent(f"bad price change {ch!r}")
                h = ch.get("hash")
                changes.append(
                    (
                        _str(ch, "asset_id"),
                        _side(ch.get("side")),
                        _price(ch.get("price")),
                        _size(ch.get("size")),
                        h if isinstance(h, str) else None,
                    )
                )
        elif "changes" in ev:  # legacy: one asset, changes[]
            asset = _str(ev, "asset_id")
            h = ev.get("hash") if isinstance(ev.get("hash"), str) else None
            raw = ev["changes"]
            if not isinstance(raw, list):
                raise BadEvent("changes is not a list")
            for ch in raw:
                if not isinstance(ch, dict):
                    raise BadEvent(f"bad change {ch!r}")
                changes.append(
                    (asset, _side(ch.get("side")), _price(ch.get("price")), _size(ch.get("size")), h)
                )
        elif "price" in ev:  # legacy single level
            h = ev.get("hash") if isinstance(ev.get("hash"), str) else None
            changes.append(
                (_str(ev, "asset_id"), _side(ev.get("side")), _price(ev["price"]), _size(ev.get("size")), h)
            )
        else:
            raise BadEvent("no price_changes, changes or price")
        return self._apply(changes, market, ts, now)

    def _apply(
        self, changes: list[tuple[str, bool, float, float, str | None]], market: str | None, ts: int, now: int
    ) -> list[Out]:
        """Apply a validated event's level changes; the touched books' records."""
        touched: dict[str, None] = {}
        books = self.books
        for asset, is_bid, price, size, h in changes:
            book = books.get(asset)
            if book is None:
                self.dropped_deltas += 1
                continue
            book.set(is_bid, price, size)
            if h is not None:
                book.hash = h
            book.ts_us = ts
            touched[asset] = None
        if market:
            metas = self.meta
            for a in touched:
                if not metas[a].market:  # a book's asset has its meta
                    self._meta(a, market)
        return [self._book_out(a, ts, now) for a in touched]

    def _trade(self, ev: dict[str, Any], ts: int, now: int) -> list[Out]:
        asset = _str(ev, "asset_id")
        price = _price(ev.get("price"))
        size = _size(ev.get("size"))
        side = "buy" if _side(ev.get("side")) else "sell"
        market = ev.get("market") if isinstance(ev.get("market"), str) else None
        meta = self._meta(asset, market)
        self.trade_seq += 1
        tx = ev.get("transaction_hash")
        trade_id = f"{tx}:{asset[-12:]}" if isinstance(tx, str) and tx else f"{ts}-{asset[-12:]}-{self.trade_seq}"
        rec: dict[str, Any] = {
            "type": "trade",
            "ts_event": ts,
            "ts_init": now,
            "venue": self.venue,
            "market": market or meta.market,
            "asset": asset,
            "price": price,
            "size": size,
            "side": side,
            "trade_id": trade_id,
        }
        fee = ev.get("fee_rate_bps")
        if fee is not None and fee != "":
            rec["fee_rate_bps"] = _num(fee, "fee_rate_bps")
        return [rec]

    def _tick(self, ev: dict[str, Any], ts: int, now: int) -> list[Out]:
        asset = _str(ev, "asset_id")
        new = _price(ev.get("new_tick_size"), "new_tick_size")
        market = ev.get("market") if isinstance(ev.get("market"), str) else None
        meta = self._meta(asset, market)
        old_raw = ev.get("old_tick_size")
        old = _price(old_raw, "old_tick_size") if old_raw is not None else meta.tick_size
        if new <= 0:
            raise BadEvent("new_tick_size must be positive")
        meta.tick_size = new
        out: list[Out] = [
            {
                "type": "tick_size_changed",
                "ts_event": ts,
                "ts_init": now,
                "venue": self.venue,
                "market": market or meta.market,
                "asset": asset,
                "old_tick_size": old,
                "new_tick_size": new,
            }
        ]
        if asset in self.books:
            out.append(self._book_out(asset, ts, now))
        return out

    def _resolved(self, ev: dict[str, Any], ts: int, now: int) -> list[Out]:
        market = _str(ev, "market")
        winner = _str(ev, "winning_asset_id")
        assets = ev.get("assets_ids") or []
        if not isinstance(assets, list) or not all(isinstance(a, str) for a in assets):
            raise BadEvent("assets_ids is not a list of strings")
        rec: dict[str, Any] = {
            "type": "market_resolved",
            "ts_event": ts,
            "ts_init": now,
            "venue": self.venue,
            "market": market,
            "winning_asset": winner,
            "assets": assets,
        }
        outcome = ev.get("winning_outcome")
        if isinstance(outcome, str):
            rec["winning_outcome"] = outcome
        return [rec]


class PolymarketFeed(LiveFeed):
    """The `feed polymarket` stage."""

    name = "feed polymarket"
    source = "polymarket"

    def __init__(
        self,
        assets: list[str],
        *,
        url: str = WS_URL,
        depth: int = 10,
        meta: dict[str, AssetMeta] | None = None,
        shard_size: int = 200,
        ping_every: float = 10.0,
        silence: float = 30.0,
        conflate: bool = True,
        venue: str = "polymarket",
        **options: Any,  # LiveFeed's: backoff, max_retries, metrics_every, max_records, duration, record, seed ...
    ) -> None:
        super().__init__(
            url=url,
            metrics=FeedMetrics("polymarket.clob", {"source": "polymarket"}),
            ping_every=ping_every,
            silence=silence,
            **options,
        )
        if not assets:
            raise ValueError("no assets to subscribe to")
        if shard_size < 1 or depth < 1:
            raise ValueError("--shard-size and --depth must be at least 1")
        self.assets = list(dict.fromkeys(assets))
        self.depth = depth
        self.meta = meta if meta is not None else {}
        self.shard_size = shard_size
        self.conflate = conflate
        self.venue = venue
        self.conflated = 0
        self._held: dict[str, dict[str, Any] | bytes] = {}  # asset -> its latest book, held back
        self._release_timer: asyncio.TimerHandle | None = None
        self._shard_state: dict[int, str] = {}
        self._awaiting: dict[int, set[str]] = {}
        self._shard_of: dict[str, int] = {}
        self._live_pending: set[int] = set()

    # -- output ---------------------------------------------------------------------

    def _out(self, rec: Out) -> None:
        if self._finished is not None and self._finished.is_set():
            return
        book: dict[str, Any] | bytes
        if isinstance(rec, tuple):  # a book, encoded
            asset, book = rec
        elif rec["type"] == "book":
            asset, book = rec["asset"], rec
        else:
            self._put(rec)
            return
        if self.conflate and (self._held or self.backlogged()):
            self._hold(asset, book)
            return
        self._put_book(book)

    def _hold(self, asset: str, book: dict[str, Any] | bytes) -> None:
        if asset in self._held:
            self.conflated += 1
        self._held[asset] = book
        if self._release_timer is None:
            self._release_timer = asyncio.get_running_loop().call_later(RELEASE_EVERY, self._release_tick)

    def _out_frame(self, recs: list[Out]) -> None:
        """`_out` of one frame's records. When they are all encoded books and nothing holds
        them back (conflation, --max-records, the end), they go out as one block."""
        if (
            self.raw_output
            and not self.max_records
            and not self._held
            and not (self.conflate and self.backlogged())
            and (self._finished is None or not self._finished.is_set())
        ):
            lines = []
            for rec in recs:
                if not isinstance(rec, tuple):
                    break
                lines.append(rec[1])
            else:
                if lines:
                    self.emit_lines(lines)
                    self.emitted += len(lines)
                return
        for rec in recs:
            self._out(rec)

    def _put_book(self, book: dict[str, Any] | bytes) -> None:
        if isinstance(book, bytes):
            self._put_line(book)
        else:
            self._put(book)

    def _release_held(self) -> None:
        if self._held and not self.backlogged():
            held, self._held = self._held, {}
            for rec in held.values():
                self._put_book(rec)

    def _release_tick(self) -> None:
        """While books are held, look every RELEASE_EVERY s whether the reader caught up
        (no timer otherwise: an idle or flowing feed is not woken for nothing)."""
        self._release_timer = None
        self._release_held()
        if self._held:
            self._release_timer = asyncio.get_running_loop().call_later(RELEASE_EVERY, self._release_tick)

    def _status(self, state: str, detail: str) -> None:
        self._release_held()  # a status is ordered after the books it concerns
        super()._status(state, detail)

    def last_lag_ms(self) -> float | None:
        return self.norm.last_lag_ms

    # -- running --------------------------------------------------------------------------

    def start(self, ctx: Context) -> None:
        super().start(ctx)
        self.norm = Normalizer(
            venue=self.venue,
            depth=self.depth,
            meta=self.meta,
            log=lambda m: ctx.log(f"agkit {self.name}: {m}"),
            encoded=self.raw_output,  # books as bytes when they are written as they are
        )
        self.norm.on_snapshot = self._snapshot_arrived

    async def run(self, ctx: Context) -> None:
        # Everything imported so far lives as long as the process: move it out of the
        # collector's reach, or each full collection walks it and stalls the feed (ms).
        gc.freeze()
        await super().run(ctx)

    def connections(self) -> list[Coroutine[Any, Any, None]]:
        shards = [self.assets[i : i + self.shard_size] for i in range(0, len(self.assets), self.shard_size)]
        for i, s in enumerate(shards):
            for a in s:
                self._shard_of[a] = i
        return [self._shard(i, s) for i, s in enumerate(shards)]

    def finish(self) -> None:
        if self._release_timer is not None:
            self._release_timer.cancel()
            self._release_timer = None
        held, self._held = self._held, {}
        for rec in held.values():
            self._put_book(rec)

    def _snapshot_arrived(self, asset: str) -> None:
        sid = self._shard_of.get(asset)
        if sid is None:
            return
        waiting = self._awaiting.get(sid)
        if waiting is not None and asset in waiting:
            waiting.discard(asset)
            if not waiting and self._shard_state.get(sid) != "live":
                self._shard_state[sid] = "live"
                self._live_pending.add(sid)

    def metric_records(self, now: int) -> list[dict[str, Any]]:
        levels = {a: b.levels for a, b in self.norm.books.items()}
        states = set(self._shard_state.values())
        state = "live" if states == {"live"} else ("stale" if "stale" in states else "reconnecting")
        self._status(state, "heartbeat")
        out = self.metrics.records(now, live=True, book_levels=levels)
        if self.conflated:
            out.append(
                metric_record(now, "polymarket.clob.books_conflated", self.conflated, "counter", {"source": "polymarket"})
            )
        return out

    async def _shard(self, sid: int, assets: list[str]) -> None:
        sub = orjson.dumps({"assets_ids": assets, "type": "market", "custom_feature_enabled": True}).decode()
        label = f"shard {sid}" if len(self.assets) > self.shard_size else "connection"

        async def session(ws: Any, attempt: Attempt) -> str:
            self._shard_state[sid] = "reconnecting"
            self._awaiting[sid] = set(assets)
            await ws.send(sub)
            loop = asyncio.get_running_loop()
            silence = self.silence
            frame, message, out = self.norm.frame, self.metrics.message, self._out_frame
            try:
                async with asyncio.timeout(silence) as watchdog:
                    armed = loop.time()
                    while True:
                        msg = await ws.recv(decode=False)
                        t = loop.time()
                        if t - armed > 0.25:  # re-arm the silence watchdog (cheaply)
                            watchdog.reschedule(t + silence)
                            armed = t
                        if msg == b"PONG" or msg == b"pong":
                            continue
                        recs = frame(msg, now_us())
                        message(self.norm.last_lag_ms)
                        out(recs)
                        if self._live_pending and sid in self._live_pending:
                            self._live_pending.discard(sid)
                            self._status("live", f"{label}: {len(assets)} assets subscribed, books seeded")
                            attempt.healthy = True
            except TimeoutError:
                raise Silent() from None

        def gap() -> None:
            for a in assets:  # never keep a book across a gap
                self.norm.books.pop(a, None)
            self._held = {a: r for a, r in self._held.items() if a not in assets}
            self._shard_state[sid] = "reconnecting"
            self._live_pending.discard(sid)

        await self.keep_connected(
            session,
            label=label,
            on_gap=gap,
            open_timeout=max(self.silence, 1.0),
            max_queue=1024,
            compression=None,  # permessage-deflate costs more CPU per frame than the parsing
        )
