"""`mm`: inventory-aware market making for binary markets (Avellaneda–Stoikov on (0, 1)).

For each market the strategy quotes its *primary* token (the `asset` parameter, or the
first token of the market seen in a book record: the YES token of `feed sim` and
`feed polymarket`). Per book update of that token, in event time:

    s   = mid (or microprice with use_microprice)
    σ²  = EWMA of squared mid changes / EWMA of the time between them (price²/s)
    q   = (exposure − inventory_target) / quote_size      exposure = YES − NO shares
    r   = s − q·γ·σ²·τ                                     reservation price
    δ   = γ·σ²·τ/2 + ln(1 + γ/κ)/γ                         half spread (A–S)
    δ  ≥ max(s·target_spread_bps/2e4, min_spread_ticks·tick/2)
    δ  ·= 1 + skew_factor·|exposure − target|/max_position (the original's widening)
    bid = r − δ (down to the tick grid), ask = r + δ (up to the grid), both inside
    [tick, 1 − tick], and with post_only they never cross the opposite best price.

Polymarket has no short selling, and buying YES is the same exposure as selling NO: the
ask is a sell of YES shares while the strategy holds them, otherwise a buy of the NO
token at 1 − ask. Sizes are `quote_size`, cut so |exposure| stays within
`max_position`, and a side below the market's min size is not quoted.

A working quote is replaced (cancel + new) only when its target price moved by at least
one tick; requotes are throttled to one per `min_quote_interval_ms` of event time.
Defaults follow the original ag-botkit MarketMakerConfig (20 bps, size 100, max 1000,
skew 0.5, 100 ms).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from agkit.strategy.api import EPS, OrderState, Strategy, snap
from agkit.strategy.params import param


@dataclass(frozen=True)
class MMParams:
    quote_size: float = param(100.0, "shares per quote")
    max_position: float = param(1000.0, "largest |exposure| in shares (YES − NO)")
    inventory_target: float = param(0.0, "exposure the quotes skew towards")
    target_spread_bps: float = param(20.0, "minimum quoted spread relative to the mid, bps")
    min_spread_ticks: float = param(1.0, "minimum quoted spread in ticks")
    skew_factor: float = param(0.5, "extra widening per unit of |inventory|/max_position")
    gamma: float = param(0.1, "risk aversion γ of Avellaneda–Stoikov")
    kappa: float = param(150.0, "order-arrival decay κ (per price unit)")
    horizon_s: float = param(3600.0, "inventory horizon τ in seconds")
    vol_window: int = param(50, "EWMA span of the volatility estimate (book updates)")
    min_quote_interval_ms: float = param(100.0, "throttle: at most one requote per this, event time")
    post_only: bool = param(True, "quotes never cross the book (maker only)")
    use_microprice: bool = param(False, "centre on the microprice instead of the mid")
    asset: str = param("", "token to quote (default: the first token seen per market)")

    def __post_init__(self) -> None:
        if self.quote_size <= 0 or self.max_position <= 0:
            raise ValueError("quote_size and max_position must be positive")
        if self.gamma <= 0 or self.kappa <= 0 or self.horizon_s < 0:
            raise ValueError("gamma and kappa must be positive, horizon_s >= 0")
        if self.vol_window < 1:
            raise ValueError("vol_window must be >= 1")


class _Book:
    __slots__ = ("dm2", "dt", "key", "last_mid", "last_quote", "last_ts", "live", "live_version")

    def __init__(self) -> None:
        self.last_mid: float | None = None
        self.last_ts = 0
        self.dm2 = 0.0  # EWMA of squared mid changes
        self.dt = 0.0  # EWMA of seconds between changes
        self.last_quote = -(1 << 62)
        self.key: tuple[Any, ...] | None = None  # inputs of the last requote
        self.live: list[OrderState] = []  # the market's working orders at ctx.versions[market] live_version
        self.live_version = -1


class MarketMaker(Strategy):
    """Inventory-aware Avellaneda–Stoikov market maker for binary markets."""

    name = "mm"
    description = "inventory-aware market making (Avellaneda–Stoikov on (0,1)), YES-buy = NO-sell"
    Params = MMParams
    params: MMParams

    def on_start(self) -> None:
        self._state: dict[str, _Book] = {}  # by market
        self._primary: dict[str, str] = {}  # market -> the token quoted, once known
        self._alpha = 2.0 / (self.params.vol_window + 1)
        self._throttle_us = int(self.params.min_quote_interval_ms * 1000)
        self._arrival_half = math.log1p(self.params.gamma / self.params.kappa) / self.params.gamma

    def primary(self, market: str) -> str | None:
        p = self.params.asset
        assets = self.ctx.assets_of.get(market)
        if not assets:
            return None
        if p:
            return p if p in assets else None
        return assets[0]

    def on_book(self, book: dict[str, Any]) -> None:
        market = book["market"]
        ctx = self.ctx
        asset = self._primary.get(market)
        if asset is None:
            asset = self.primary(market)
            if asset is None:
                return
            self._primary[market] = asset
        m = ctx.markets.get(asset)
        if m is None:
            return
        bid, ask = m.best_bid, m.best_ask
        if bid is None or ask is None:
            return
        mid = (bid + ask) / 2.0
        if self.params.use_microprice:  # MarketState.microprice (lean towards the thin side)
            total = m.best_bid_size + m.best_ask_size
            if total > 0:
                mid = (bid * m.best_ask_size + ask * m.best_bid_size) / total
        st = self._state.get(market)
        if st is None:
            st = self._state[market] = _Book()
        now = ctx.clock.now_us()
        if book["asset"] != asset:  # the complement's book: quotes may change, not the mid
            pass
        elif st.last_mid is not None and mid != st.last_mid:
            a = self._alpha
            dt = max(now - st.last_ts, 1) / 1e6
            st.dm2 += a * ((mid - st.last_mid) ** 2 - st.dm2)
            st.dt += a * (dt - st.dt)
            st.last_mid, st.last_ts = mid, now
        elif st.last_mid is None:
            st.last_mid, st.last_ts = mid, now
        version = ctx.versions.get(market, 0)
        if st.live_version != version:  # orders or positions moved since we last looked
            st.live = [o for o in ctx.orders.values() if o.market == market and o.status != "canceling"]
            st.live_version = version
        live = st.live
        throttled = bool(live) and now - st.last_quote < self._throttle_us
        if throttled and len(live) >= 2:
            return  # both sides working and no requote allowed yet: nothing to compute
        key = (mid, m.best_bid, m.best_ask, m.tick, st.dm2, st.dt, version, throttled)
        if key == st.key:
            return  # same book, volatility, orders and positions: the same quotes again
        if self._requote(market, asset, mid, st, live, throttled):
            st.last_quote = now
        st.key = key

    def quotes(self, market: str, asset: str, mid: float, st: _Book) -> tuple[float, float, float, float]:
        """(bid, bid size, ask, ask size) in YES terms; a size of 0 means no quote."""
        p = self.params
        ctx = self.ctx
        m = ctx.markets[asset]
        tick = m.tick
        exposure = ctx.exposure(asset)
        inv = exposure - p.inventory_target
        q = inv / p.quote_size
        var = st.dm2 / st.dt if st.dt > 0 else 0.0
        tau = p.horizon_s
        r = mid - q * p.gamma * var * tau
        half = p.gamma * var * tau / 2.0 + self._arrival_half
        half = max(half, mid * p.target_spread_bps / 2e4, p.min_spread_ticks * tick / 2.0)
        half *= 1.0 + p.skew_factor * min(1.0, abs(inv) / p.max_position)
        bid = snap(r - half, tick, "down")
        ask = snap(r + half, tick, "up")
        if p.post_only:
            if m.best_ask is not None:
                bid = min(bid, snap(m.best_ask - tick, tick))
            if m.best_bid is not None:
                ask = max(ask, snap(m.best_bid + tick, tick))
        bid = max(bid, tick)
        ask = min(ask, snap(1.0 - tick, tick))
        bid_size = min(p.quote_size, p.max_position - exposure)
        ask_size = min(p.quote_size, p.max_position + exposure)
        floor = max(m.min_size, EPS)
        if bid >= ask or bid_size < floor:
            bid_size = 0.0
        if bid >= ask or ask_size < floor:
            ask_size = 0.0
        return bid, max(bid_size, 0.0), ask, max(ask_size, 0.0)

    def _requote(
        self, market: str, asset: str, mid: float, st: _Book, live: list[OrderState], throttled: bool
    ) -> bool:
        """Bring the working quotes to the targets; while throttled only add a missing side."""
        ctx = self.ctx
        m = ctx.markets[asset]
        bid, bid_size, ask, ask_size = self.quotes(market, asset, mid, st)
        want: dict[str, tuple[str, str, float, float] | None] = {"bid": None, "ask": None}
        if bid_size > 0:
            want["bid"] = (asset, "buy", bid, bid_size)
        if ask_size > 0:
            held = ctx.portfolio.size(asset)
            no = ctx.complement(asset)
            if held >= m.min_size:
                want["ask"] = (asset, "sell", ask, min(ask_size, held))
            elif no is not None and no in ctx.markets:
                want["ask"] = (no, "buy", snap(1.0 - ask, m.tick), ask_size)
        changed = False
        by_tag: dict[str, list[OrderState]] = {"bid": [], "ask": []}
        for o in live:
            by_tag.setdefault(o.tag, []).append(o)
        for tag, target in want.items():
            orders = by_tag.get(tag, [])
            if throttled and orders:
                continue
            keep = None
            if target is not None:
                t_asset, t_side, t_price, t_size = target
                tick = ctx.markets[t_asset].tick
                for o in orders:
                    if (
                        o.asset == t_asset
                        and o.side == t_side
                        and abs(o.price - t_price) < tick - EPS
                        and o.remaining >= ctx.markets[t_asset].min_size
                    ):
                        keep = o
                        break
            for o in orders:
                if o is not keep:
                    changed |= self.cancel(o.id, "requote")
            if target is not None and keep is None:
                t_asset, t_side, t_price, t_size = target
                oid = self.quote(t_asset, t_side, t_price, t_size, post_only=self.params.post_only, tag=tag)
                changed |= oid is not None
        for tag, orders in by_tag.items():
            if tag not in want and not throttled:
                for o in orders:
                    changed |= self.cancel(o.id, "stray")
        return changed

    def on_fill(self, fill: dict[str, Any], order: OrderState | None) -> None:
        ctx = self.ctx
        asset = fill["asset"]
        self.metric("strategy.orders_filled", ctx.counters.fills, "counter", market=fill["market"])
        pos = ctx.portfolio.positions.get(asset)
        if pos is not None:
            self.metric("strategy.position_size", pos.size, market=fill["market"], asset=asset)
        self.metric("strategy.pnl_usd", ctx.portfolio.realized_pnl + ctx.portfolio.unrealized_pnl - ctx.portfolio.fees)
