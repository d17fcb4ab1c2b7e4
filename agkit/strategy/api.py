"""The strategy API: a `Strategy` is a `Stage` with trading hooks and helpers.

    from dataclasses import dataclass
    from agkit.strategy import Strategy, param

    class Momentum(Strategy):
        name = "momentum"

        @dataclass(frozen=True)
        class Params:
            size: float = param(10.0, "shares per order")

        def on_book(self, book):
            m = self.ctx.market(book["asset"])
            if m.mid is not None and not self.ctx.open_orders(m.asset):
                self.quote(m.asset, "buy", m.best_bid, self.params.size)

The same object runs in a pipe (`agkit strategy --file my.py:Momentum`), inside a
`Chain` under `agkit run`, and in `agkit backtest`. Hooks return nothing; the helpers
(`quote`, `cancel`, `cancel_all`, `replace`) queue `submit_order` / `cancel_order`
records, which the stage emits right after the record that caused them (pass-through
rule: every input record is forwarded unchanged first).

Hooks: `on_start`, `on_book`, `on_trade`, `on_fill`, `on_order_event` (accepted,
rejected, canceled, expired, denied), `on_resolved`, `on_timer`, `on_stop`.

`self.ctx` (a `StrategyContext`) gives the event clock (`ctx.clock.now_us()`: the
`ts_event` of the newest record, never the wall clock), positions (`ctx.portfolio`, an
`agkit.portfolio.Portfolio` fed with this strategy's own fills), this strategy's open
orders, and per-asset market state (best levels, tick size, min size, the complementary
token of a binary market), and `ctx.versions[market]`, a counter that moves whenever
that market's working orders or positions change (for caching what a strategy derives
from them). Client order ids are `<prefix><n>` from a counter, so a run is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from agkit.clock import MAX_TS_US, EventClock
from agkit.errors import InvalidRecord
from agkit.portfolio import Portfolio
from agkit.records import MAX_SIZE, MIN_TICK, metric_record
from agkit.stage import Context, Out, Rec, Stage, Timer
from agkit.strategy.params import NoParams, parse_params

ORDER_EVENTS = frozenset(
    {
        "order_accepted",
        "order_rejected",
        "order_canceled",
        "order_expired",
        "order_denied",
        "cancel_rejected",
    }
)
TERMINAL_EVENTS = frozenset({"order_rejected", "order_canceled", "order_expired", "order_denied"})
MARKET_TYPES = frozenset({"book", "trade", "market_resolved", "tick_size_changed"})
EPS = 1e-9


def snap(price: float, tick: float, mode: str = "nearest") -> float:
    """`price` on the tick grid: mode nearest, down (bids) or up (asks); clean decimals."""
    n = price / tick
    if mode == "down":
        k = math.floor(n + 1e-9)
    elif mode == "up":
        k = math.ceil(n - 1e-9)
    else:
        k = round(n)
    grid = _GRID.get(tick)
    if grid is None:
        grid = _GRID[tick] = _grid(tick)
    units, scale, decimals = grid
    if units:  # an exact integer division: the same double as round(), without its cost
        return k * units / scale
    return round(k * tick, decimals)


def _best(levels: list[Any]) -> tuple[float | None, float]:
    """(price, size) of a side's best level, (None, 0.0) for an empty side; InvalidRecord
    if it is not a price in [0, 1] and a size in [0, MAX_SIZE]."""
    if not levels:
        return None, 0.0
    price, size = levels[0][0], levels[0][1]
    # a str or None raises TypeError (a bad record); NaN fails the comparisons
    if not 0.0 <= price <= 1.0:
        raise InvalidRecord(f"book: a price outside [0, 1] ({price!r})")
    if not 0.0 <= size <= MAX_SIZE:
        raise InvalidRecord(f"book: a size that is negative or over {MAX_SIZE:g} ({size!r})")
    return price, size


def _grid(tick: float) -> tuple[int, int, int]:
    """(tick in units of 10^-decimals or 0 when it is not whole, 10^decimals, decimals)."""
    decimals = max(0, -math.floor(math.log10(tick)) + 1)
    scale = 10**decimals
    units = round(tick * scale)
    return (units if abs(units - tick * scale) < 1e-6 else 0), scale, decimals


_GRID: dict[float, tuple[int, int, int]] = {}
_NEVER = 1 << 62


class MarketState:
    """What the strategy knows of one token: its book top, tick size and min size."""

    __slots__ = (
        "asks",
        "asset",
        "best_ask",
        "best_ask_size",
        "best_bid",
        "best_bid_size",
        "bids",
        "extra",
        "last_trade",
        "market",
        "min_size",
        "resolved",
        "tick",
        "ts",
        "venue",
    )

    def __init__(self, market: str, asset: str, venue: str = "polymarket") -> None:
        self.market = market
        self.asset = asset
        self.venue = venue
        self.bids: list[Any] = []
        self.asks: list[Any] = []
        self.best_bid: float | None = None
        self.best_bid_size = 0.0
        self.best_ask: float | None = None
        self.best_ask_size = 0.0
        self.tick = 0.01
        self.min_size = 0.0
        self.ts = 0
        self.last_trade: float | None = None
        self.resolved = False
        self.extra: dict[str, Any] = {}

    def update(self, book: dict[str, Any]) -> None:
        """Take a new book; InvalidRecord (nothing changed) if what strategies read of it,
        the best levels, the tick, the minimum size and the time, is not usable."""
        bids = book["bids"]
        asks = book["asks"]
        bid, bid_size = _best(bids)
        ask, ask_size = _best(asks)
        tick, min_size, ts = book["tick_size"], book["min_size"], book["ts_event"]
        # a str or None raises TypeError; a tick below MIN_TICK would overflow the grid
        if not (MIN_TICK <= tick < 1.0 and 0.0 <= min_size <= MAX_SIZE):
            raise InvalidRecord(f"book: tick {tick!r} or min_size {min_size!r} out of range")
        if type(ts) is not int or ts > MAX_TS_US:
            raise InvalidRecord(f"book: ts_event must be an integer of µs before 2100, not {ts!r}")
        self.bids = bids
        self.asks = asks
        self.best_bid, self.best_bid_size = bid, bid_size
        self.best_ask, self.best_ask_size = ask, ask_size
        self.tick = tick
        self.min_size = min_size
        self.ts = ts
        self.venue = book.get("venue", self.venue)

    @property
    def mid(self) -> float | None:
        if self.best_bid is not None and self.best_ask is not None:
            return (self.best_bid + self.best_ask) / 2.0
        return None

    @property
    def spread(self) -> float | None:
        if self.best_bid is not None and self.best_ask is not None:
            return self.best_ask - self.best_bid
        return None

    @property
    def microprice(self) -> float | None:
        if self.best_bid is None or self.best_ask is None:
            return None
        total = self.best_bid_size + self.best_ask_size
        if total <= 0:
            return (self.best_bid + self.best_ask) / 2.0
        return (self.best_bid * self.best_ask_size + self.best_ask * self.best_bid_size) / total


@dataclass
class OrderState:
    """One of this strategy's orders, from submission to its terminal event."""

    id: str
    market: str
    asset: str
    side: str
    price: float
    size: float
    tif: str
    ts_submit: int
    filled: float = 0.0
    status: str = "pending"  # pending -> open -> (canceling) -> gone
    venue_order_id: str | None = None
    tag: str = ""  # free for the strategy (e.g. "bid", "arb-3")

    @property
    def remaining(self) -> float:
        return max(0.0, self.size - self.filled)

    @property
    def live(self) -> bool:
        """Working (or about to be): not being canceled."""
        return self.status in ("pending", "open")


@dataclass
class Counters:
    submitted: int = 0
    canceled: int = 0
    fills: int = 0
    rejected: int = 0
    denied: int = 0
    volume: float = 0.0
    skipped: int = 0  # quotes refused by the helpers (off grid range, below min size)
    extra: dict[str, int] = field(default_factory=dict)


class StrategyContext(Context):
    """The strategy's view: event clock, positions, open orders, markets."""

    def __init__(self, base: Context, clock: EventClock) -> None:
        super().__init__(clock, base.emit, base.log)
        self.clock: EventClock = clock
        self.portfolio = Portfolio()
        self.orders: dict[str, OrderState] = {}
        self.markets: dict[str, MarketState] = {}  # by asset (token id)
        self.assets_of: dict[str, list[str]] = {}  # market (condition id) -> assets seen
        self.counters = Counters()
        # by market: bumped whenever its working orders (pending or open: which, and how
        # much is filled) or positions change, so a strategy can cache what it derives
        # from them until they move; an acknowledgement or a canceled order's end does not
        self.versions: dict[str, int] = {}

    def now(self) -> int:
        return self.clock.now_us()

    def changed(self, market: str) -> None:
        """Note a change of the market's working orders or positions (see `versions`)."""
        self.versions[market] = self.versions.get(market, 0) + 1

    def market(self, asset: str) -> MarketState:
        m = self.markets.get(asset)
        if m is None:
            raise KeyError(f"no book seen yet for asset {asset}")
        return m

    def tick(self, asset: str) -> float:
        return self.market(asset).tick

    def min_size(self, asset: str) -> float:
        return self.market(asset).min_size

    def position(self, asset: str) -> float:
        return self.portfolio.size(asset)

    def complement(self, asset: str) -> str | None:
        """The other token of a binary market (seen in book records), or None."""
        m = self.markets.get(asset)
        if m is None:
            return None
        assets = self.assets_of.get(m.market, ())
        if len(assets) != 2:
            return None
        return assets[1] if assets[0] == asset else assets[0]

    def exposure(self, asset: str) -> float:
        """Net exposure to `asset` paying 1: its shares minus the complement's shares.

        Buying YES and selling NO (or buying NO and selling YES) are the same exposure."""
        other = self.complement(asset)
        size = self.portfolio.size(asset)
        return size - self.portfolio.size(other) if other is not None else size

    def open_orders(self, asset: str | None = None, side: str | None = None) -> list[OrderState]:
        return [
            o
            for o in self.orders.values()
            if (asset is None or o.asset == asset) and (side is None or o.side == side)
        ]


class Strategy(Stage):
    """Base class of every strategy. Subclasses set `name`, `Params` and override hooks."""

    name: ClassVar[str] = "strategy"
    description: ClassVar[str] = ""
    Params: ClassVar[type[Any]] = NoParams
    consumes: ClassVar[frozenset[str] | None] = MARKET_TYPES | ORDER_EVENTS | {"order_filled"}
    # call on_timer every this many µs of event time (0: no timer)
    timer_interval_us: ClassVar[int] = 0
    # an order with no venue acknowledgement after this long (event time) is forgotten:
    # covers orders a risk check denied where the denial does not come back around
    ack_timeout_us: ClassVar[int] = 5_000_000

    ctx: StrategyContext

    def __init__(
        self,
        params: Any = None,
        *,
        id_prefix: str | None = None,
        cancel_on_stop: bool = True,
        **overrides: Any,
    ) -> None:
        if params is None:
            params = parse_params(self.Params, overrides)
        elif overrides:
            raise TypeError("give either a Params instance or keyword overrides, not both")
        self.params = params
        self.id_prefix = id_prefix if id_prefix is not None else f"{self.name}-"
        self.cancel_on_stop = cancel_on_stop
        self._seq = 0
        self._out: list[Rec] = []
        self._ack_due = _NEVER  # no pending order can be older than ack_timeout_us before this
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "book": self._book,
            "trade": self._trade,
            "order_filled": self._filled,
            "market_resolved": self._resolved,
            "tick_size_changed": self._tick_changed,
        }
        for t in ORDER_EVENTS:
            self._handlers[t] = self._order_event

    # -- the Stage protocol ----------------------------------------------------------

    def start(self, ctx: Context) -> Out:
        clock = ctx.clock if isinstance(ctx.clock, EventClock) else EventClock()
        self.ctx = StrategyContext(ctx, clock)
        self.on_start()
        return self._take()

    def on_record(self, rec: dict[str, Any]) -> Out:
        ts = rec.get("ts_event")
        if type(ts) is int and ts <= MAX_TS_US:  # past it, not a time: the clock stays
            self.ctx.clock.advance(ts)
        handler = self._handlers.get(rec["type"])
        if handler is not None:
            try:
                handler(rec)
            except (KeyError, TypeError, IndexError) as exc:
                self._out.clear()
                raise InvalidRecord(f"bad {rec['type']} record: {type(exc).__name__}: {exc}") from None
        if self._out:
            out: list[Rec] = [rec, *self._out]
            self._out.clear()
            return out
        return (rec,)

    def timers(self) -> list[Timer]:
        if self.timer_interval_us > 0:
            return [Timer(self.timer_interval_us, self._timer)]
        return []

    def stop(self) -> Out:
        self.on_stop()
        if self.cancel_on_stop:
            self.cancel_all()
        return self._take()

    # -- hooks (override) ------------------------------------------------------------------

    def on_start(self) -> None:
        """Before the first record."""

    def on_book(self, book: dict[str, Any]) -> None:
        """A `book` record; `self.ctx.market(book["asset"])` is already updated."""

    def on_trade(self, trade: dict[str, Any]) -> None:
        """A public `trade` record."""

    def on_fill(self, fill: dict[str, Any], order: OrderState | None) -> None:
        """One of our orders filled (positions already updated)."""

    def on_order_event(self, event: dict[str, Any], order: OrderState | None) -> None:
        """order_accepted / rejected / canceled / expired / denied, or cancel_rejected
        (exec could not cancel: the order is gone, or it still works), for our orders."""

    def on_resolved(self, event: dict[str, Any]) -> None:
        """A market resolved; positions were settled at 1 (winner) and 0."""

    def on_timer(self) -> None:
        """Every `timer_interval_us` of event time."""

    def on_stop(self) -> None:
        """At end of input; open orders are canceled afterwards unless cancel_on_stop=False."""

    # -- helpers ---------------------------------------------------------------------------

    def next_id(self) -> str:
        self._seq += 1
        return f"{self.id_prefix}{self._seq}"

    def quote(
        self,
        asset: str,
        side: str,
        price: float,
        size: float,
        *,
        tif: str = "GTC",
        post_only: bool = False,
        expire_at: int | None = None,
        tag: str = "",
    ) -> str | None:
        """Queue a limit order; returns its client id, or None when it cannot be valid.

        The price is put on the tick grid (bids down, asks up) and must lie in
        [tick, 1 − tick]; the size must reach the market's min size."""
        ctx = self.ctx
        m = ctx.markets.get(asset)
        if m is None or m.resolved:
            ctx.counters.skipped += 1
            return None
        tick = m.tick
        price = snap(price, tick, "down" if side == "buy" else "up")
        size = math.floor(size * 100 + 1e-6) / 100  # whole lots of 0.01 share
        if price < tick - EPS or price > 1.0 - tick + EPS or size < m.min_size - EPS or size <= 0:
            ctx.counters.skipped += 1
            return None
        oid = self.next_id()
        now = ctx.clock.now_us()
        rec: dict[str, Any] = {
            "type": "submit_order",
            "ts_event": now,
            "ts_init": now,
            "id": oid,
            "strategy": self.name,
            "venue": m.venue,
            "market": m.market,
            "asset": asset,
            "side": side,
            "price": price,
            "size": size,
            "tif": tif,
            "post_only": post_only,
        }
        if expire_at is not None:
            rec["expire_at"] = expire_at
        self._out.append(rec)
        ctx.orders[oid] = OrderState(oid, m.market, asset, side, price, size, tif, now, tag=tag)
        ctx.changed(m.market)
        if now + self.ack_timeout_us < self._ack_due:
            self._ack_due = now + self.ack_timeout_us
        ctx.counters.submitted += 1
        return oid

    def cancel(self, order_id: str, reason: str | None = None) -> bool:
        """Queue a cancel for one of our orders; False when it is unknown or already canceling."""
        o = self.ctx.orders.get(order_id)
        if o is None or o.status == "canceling":
            return False
        o.status = "canceling"
        self.ctx.changed(o.market)
        now = self.ctx.clock.now_us()
        rec: dict[str, Any] = {"type": "cancel_order", "ts_event": now, "ts_init": now, "id": order_id}
        if reason:
            rec["reason"] = reason
        self._out.append(rec)
        self.ctx.counters.canceled += 1
        return True

    def cancel_all(self, asset: str | None = None, reason: str | None = None) -> int:
        """Cancel every live order (of one asset); returns how many cancels were queued."""
        n = 0
        for o in list(self.ctx.orders.values()):
            if (asset is None or o.asset == asset) and self.cancel(o.id, reason):
                n += 1
        return n

    def replace(self, order_id: str, price: float, size: float | None = None, **kw: Any) -> str | None:
        """Cancel an order and submit a new one in its place (Polymarket has no amend)."""
        o = self.ctx.orders.get(order_id)
        if o is None:
            return None
        self.cancel(order_id, "replace")
        kw.setdefault("tif", o.tif)
        kw.setdefault("tag", o.tag)
        return self.quote(o.asset, o.side, price, o.remaining if size is None else size, **kw)

    def emit(self, rec: Rec) -> None:
        """Emit any other record (e.g. a metric) after the current input record."""
        self._out.append(rec)

    def metric(self, name: str, value: float, kind: str = "gauge", **labels: str) -> None:
        self._out.append(
            metric_record(self.ctx.clock.now_us(), name, value, kind, {"strategy": self.name, **labels})
        )

    # -- internals ---------------------------------------------------------------------------

    def _take(self) -> list[Rec]:
        out, self._out = self._out, []
        return out

    def _timer(self) -> Out:
        self.on_timer()
        return self._take()

    def _book(self, rec: dict[str, Any]) -> None:
        ctx = self.ctx
        asset = rec["asset"]
        m = ctx.markets.get(asset)
        if m is None:
            m = ctx.markets[asset] = MarketState(rec["market"], asset, rec.get("venue", "polymarket"))
            assets = ctx.assets_of.setdefault(rec["market"], [])
            if asset not in assets:
                assets.append(asset)
        m.update(rec)
        if m.best_bid is not None and m.best_ask is not None:
            pos = ctx.portfolio.positions.get(asset)
            if pos is not None:
                pos.mark = (m.best_bid + m.best_ask) / 2.0
        if self.ack_timeout_us and ctx.clock.now_us() > self._ack_due:
            self._expire_unacked()
        self.on_book(rec)

    def _expire_unacked(self) -> None:
        """Forget pending orders older than ack_timeout_us; note when the next one can be."""
        limit = self.ctx.clock.now_us() - self.ack_timeout_us
        orders = self.ctx.orders
        oldest = _NEVER
        for o in list(orders.values()):
            if o.status == "pending":
                if o.ts_submit < limit:
                    del orders[o.id]
                    self.ctx.changed(o.market)
                elif o.ts_submit < oldest:
                    oldest = o.ts_submit
        self._ack_due = oldest + self.ack_timeout_us if oldest < _NEVER else _NEVER

    def _trade(self, rec: dict[str, Any]) -> None:
        m = self.ctx.markets.get(rec["asset"])
        if m is not None:
            m.last_trade = rec["price"]
        self.on_trade(rec)

    def _tick_changed(self, rec: dict[str, Any]) -> None:
        m = self.ctx.markets.get(rec["asset"])
        tick = rec["new_tick_size"]
        if not MIN_TICK <= tick < 1.0:  # as a book's tick; a str or None raises TypeError
            raise InvalidRecord(f"tick_size_changed: new_tick_size {tick!r} out of range")
        if m is not None:
            m.tick = tick

    def _resolved(self, rec: dict[str, Any]) -> None:
        ctx = self.ctx
        market, winner = rec["market"], rec["winning_asset"]
        if type(market) is not str or type(winner) is not str:  # None would settle every token at 0
            raise InvalidRecord("market_resolved: market and winning_asset must be strings")
        ctx.portfolio.resolve(market, winner)
        ctx.changed(market)
        for asset in ctx.assets_of.get(market, ()):
            ctx.markets[asset].resolved = True
        for oid in [o.id for o in ctx.orders.values() if o.market == market]:
            del ctx.orders[oid]
        self.on_resolved(rec)

    def _mine(self, oid: Any) -> bool:
        return isinstance(oid, str) and oid.startswith(self.id_prefix)

    def _filled(self, rec: dict[str, Any]) -> None:
        oid = rec["id"]
        ctx = self.ctx
        o = ctx.orders.get(oid)
        if o is None and not self._mine(oid):
            return
        ctx.changed(o.market if o is not None else rec.get("market", ""))
        if rec.get("settlement") == "failed":
            ctx.portfolio.reverse_fill(rec["asset"], rec["trade_id"])
            return
        ctx.portfolio.apply_fill_record(rec)
        ctx.counters.fills += 1
        ctx.counters.volume += rec["size"] * rec["price"]
        if o is not None:
            o.filled += rec["size"]
            if o.status == "pending":
                o.status = "open"
            if o.remaining <= EPS:
                del ctx.orders[oid]
        self.on_fill(rec, o)

    def _order_event(self, rec: dict[str, Any]) -> None:
        oid = rec["id"]
        ctx = self.ctx
        o = ctx.orders.get(oid)
        if o is None and not self._mine(oid):
            return
        t = rec["type"]
        if o is not None:
            was_live = o.live
            if t == "order_accepted":
                o.venue_order_id = rec.get("venue_order_id")
                if o.status == "pending":
                    o.status = "open"
            elif t in TERMINAL_EVENTS:
                del ctx.orders[oid]
            elif t == "cancel_rejected":
                reason = str(rec.get("reason", ""))
                if reason.startswith(("unknown order", "order is", "order already done")):
                    del ctx.orders[oid]  # nothing left to cancel: the order is gone
                elif o.status == "canceling" and "pending" not in reason:
                    o.status = "open"  # the cancel failed; the order still works
            if was_live != (o.live and oid in ctx.orders):
                ctx.changed(o.market)
        if t == "order_rejected":
            ctx.counters.rejected += 1
        elif t == "order_denied":
            ctx.counters.denied += 1
        self.on_order_event(rec, o)


class Noop(Strategy):
    """Does nothing but track state: the baseline of the backtest benchmarks."""

    name = "noop"
    description = "forwards everything, never trades"

