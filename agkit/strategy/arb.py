"""`arb`: complete-set arbitrage on Polymarket.

* **Binary markets**: when best ask(YES) + best ask(NO) + taker fees per share is below
  1 − `min_edge`, buy both at their asks; a complete set pays exactly 1 at resolution.
* **Neg-risk events**: when the YES asks of every outcome market of one event sum (with
  fees) below 1 − `min_edge`, buy all of them. Events are given by the `groups`
  parameter (`cond1,cond2,cond3;cond4,cond5`) or by an `event_markets` field on book
  records (the condition ids of every outcome market of the event): a set is only
  complete with every outcome, so a group is never guessed from the markets seen so
  far. The YES token of a market is the token whose book says `"outcome": "Yes"`, else
  the first token of the market seen.

Size is `size` shares, cut to the smallest visible ask size of the legs and to keep each
leg's position within `max_position`. Legs are sent together as `tif` (FAK by default:
fill what is there, cancel the rest). **Leg risk**: once every leg is done (filled or
canceled, or canceled by us after `leg_timeout_ms`), legs that filled more than the
least-filled one leave an unhedged position; `leg_hedge=unwind` sells the excess at the
best bid (FAK), `complete` buys the missing shares of the short legs at their asks when
that keeps the set's total cost within 1 + `max_hedge_loss`, `none` keeps it. After an
attempt the market or event cools down for `cooldown_ms` of event time.

Fees: `fee_rate` and `fee_exponent` of Polymarket's taker fee, per share
rate·(p(1−p))^exponent (agkit.portfolio.taker_fee). Defaults follow the original
CrossMarketArbConfig: size 50, max position 500, 10 bps minimum edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from agkit.portfolio import taker_fee
from agkit.strategy.api import EPS, OrderState, Strategy, snap
from agkit.strategy.params import param


@dataclass(frozen=True)
class ArbParams:
    size: float = param(50.0, "shares per leg per attempt")
    max_position: float = param(500.0, "largest position in any one token, shares")
    min_edge: float = param(0.001, "required profit per share after fees (0.001 = 10 bps of 1)")
    fee_rate: float = param(0.0, "taker fee rate of the markets")
    fee_exponent: float = param(1.0, "taker fee exponent of the markets")
    tif: Literal["FAK", "FOK", "GTC"] = param("FAK", "time in force of the legs")
    cooldown_ms: float = param(1000.0, "quiet time after an attempt, per market/event, event time")
    leg_timeout_ms: float = param(2000.0, "legs still working after this are canceled")
    leg_hedge: Literal["unwind", "complete", "none"] = param("unwind", "what to do with a leg left unmatched")
    max_hedge_loss: float = param(0.02, "complete: largest loss per share accepted to finish the set")
    groups: str = param("", "neg-risk events: cond,cond,...;cond,cond,...")
    binary: bool = param(True, "arbitrage YES+NO of binary markets")

    def __post_init__(self) -> None:
        if self.size <= 0 or self.max_position <= 0:
            raise ValueError("size and max_position must be positive")


@dataclass
class Basket:
    key: str
    legs: dict[str, str]  # order id -> asset
    size: float
    cost: float  # price paid per set (asks + fees) when sent
    ts: int
    filled: dict[str, float] = field(default_factory=dict)  # asset -> shares
    hedging: bool = False


class Arbitrage(Strategy):
    """YES+NO (and neg-risk all-outcome) complete-set arbitrage with leg-risk handling."""

    name = "arb"
    description = "complete-set arbitrage: YES+NO asks < 1 after fees; neg-risk all-outcome asks < 1"
    Params = ArbParams
    params: ArbParams

    def on_start(self) -> None:
        p = self.params
        self.groups: dict[str, list[str]] = {}  # event key -> condition ids
        self.group_of: dict[str, str] = {}  # condition id -> event key
        for i, grp in enumerate(g for g in p.groups.split(";") if g.strip()):
            key = f"group{i}"
            conds = [c.strip() for c in grp.split(",") if c.strip()]
            self.groups[key] = conds
            for c in conds:
                self.group_of[c] = key
        self.yes: dict[str, str] = {}  # condition id -> YES token
        self.baskets: dict[str, Basket] = {}  # key -> working basket
        self.leg_of: dict[str, Basket] = {}  # order id -> basket
        self.cool_until: dict[str, int] = {}
        self.attempts = 0
        self.hedges = 0

    # -- detection --------------------------------------------------------------------

    def _fee(self, price: float) -> float:
        p = self.params
        return taker_fee(1.0, price, p.fee_rate, p.fee_exponent) if p.fee_rate else 0.0

    def on_book(self, book: dict[str, Any]) -> None:
        market = book["market"]
        if market not in self.yes:
            outcome = book.get("outcome")
            if outcome is None or str(outcome).lower() == "yes":
                self.yes[market] = book["asset"]
        members = book.get("event_markets")
        if market not in self.group_of and isinstance(members, list) and len(members) > 1:
            conds = sorted(str(c) for c in members)
            key = "event:" + ",".join(conds)
            self.groups[key] = conds
            for c in conds:
                self.group_of.setdefault(c, key)
        now = self.ctx.clock.now_us()
        if self.leg_of:
            self._timeouts(now)
        if self.params.binary:
            self._check_binary(market, now)
        group = self.group_of.get(market)
        if group is not None:
            self._check_group(group, now)

    def _ready(self, key: str, now: int) -> bool:
        return (
            key not in self.baskets
            and key + ":hedge" not in self.baskets
            and now >= self.cool_until.get(key, -(1 << 62))
        )

    def _check_binary(self, market: str, now: int) -> None:
        assets = self.ctx.assets_of.get(market)
        if not assets or len(assets) != 2 or not self._ready(market, now):
            return
        self._try(market, assets, now)

    def _check_group(self, key: str, now: int) -> None:
        conds = self.groups[key]
        if len(conds) < 2 or not self._ready(key, now):
            return
        legs = []
        for c in conds:
            a = self.yes.get(c)
            if a is None or a not in self.ctx.markets:
                return
            legs.append(a)
        self._try(key, legs, now)

    def _try(self, key: str, assets: list[str], now: int) -> None:
        ctx = self.ctx
        p = self.params
        cost = 0.0
        size = p.size
        for a in assets:
            m = ctx.markets[a]
            if m.best_ask is None or m.resolved:
                return
            cost += m.best_ask + self._fee(m.best_ask)
            size = min(size, m.best_ask_size, p.max_position - ctx.portfolio.size(a))
        if cost > 1.0 - p.min_edge - EPS:
            return
        size = float(int(size * 100) / 100)
        if any(size < max(ctx.markets[a].min_size, EPS) for a in assets):
            return
        legs: dict[str, str] = {}
        for a in assets:
            m = ctx.markets[a]
            oid = self.quote(a, "buy", m.best_ask or 0.0, size, tif=p.tif, tag=f"arb:{key}")
            if oid is None:  # cannot send every leg: cancel what was queued
                for leg in legs:
                    self.cancel(leg, "arb leg not sendable")
                return
            legs[oid] = a
        self.attempts += 1
        basket = Basket(key, legs, size, cost, now)
        self.baskets[key] = basket
        for oid in legs:
            self.leg_of[oid] = basket
        self.cool_until[key] = now + int(p.cooldown_ms * 1000)
        self.metric("strategy.arb_edge", 1.0 - cost, key=key)

    # -- legs ---------------------------------------------------------------------------

    def _timeouts(self, now: int) -> None:
        limit = int(self.params.leg_timeout_ms * 1000)
        for basket in list(self.baskets.values()):
            if now - basket.ts >= limit:
                for oid in basket.legs:
                    if oid in self.ctx.orders:
                        self.cancel(oid, "arb leg timeout")

    def on_fill(self, fill: dict[str, Any], order: OrderState | None) -> None:
        basket = self.leg_of.get(fill["id"])
        if basket is not None:
            basket.filled[fill["asset"]] = basket.filled.get(fill["asset"], 0.0) + fill["size"]
            self._maybe_done(fill["id"], basket)

    def on_order_event(self, event: dict[str, Any], order: OrderState | None) -> None:
        basket = self.leg_of.get(event["id"])
        if basket is not None and event["type"] != "order_accepted":
            self._maybe_done(event["id"], basket)

    def _maybe_done(self, oid: str, basket: Basket) -> None:
        if oid in self.ctx.orders:
            return  # still working
        self.leg_of.pop(oid, None)
        if any(leg in self.leg_of for leg in basket.legs):
            return
        self.baskets.pop(basket.key, None)
        if basket.hedging:
            return
        self._hedge(basket)

    def _hedge(self, basket: Basket) -> None:
        p = self.params
        filled = {a: basket.filled.get(a, 0.0) for a in basket.legs.values()}
        matched = min(filled.values())
        excess = {a: f - matched for a, f in filled.items() if f - matched > EPS}
        if not excess or p.leg_hedge == "none":
            return
        ctx = self.ctx
        legs: dict[str, str] = {}
        if p.leg_hedge == "unwind":
            for a, extra in excess.items():
                m = ctx.markets[a]
                if m.best_bid is None:
                    continue
                size = min(extra, ctx.portfolio.size(a))
                oid = self.quote(a, "sell", m.best_bid, size, tif="FAK", tag="arb:hedge")
                if oid is not None:
                    legs[oid] = a
        else:  # complete the set on the legs that are short, within max_hedge_loss
            short = {a: max(filled.values()) - f for a, f in filled.items() if max(filled.values()) - f > EPS}
            paid = sum(ctx.markets[a].best_ask or 1.0 for a in filled) + sum(
                self._fee(ctx.markets[a].best_ask or 1.0) for a in filled
            )
            if paid > 1.0 + p.max_hedge_loss:
                return
            for a, missing in short.items():
                m = ctx.markets[a]
                if m.best_ask is None:
                    continue
                oid = self.quote(a, "buy", snap(m.best_ask, m.tick, "up"), missing, tif="FAK", tag="arb:hedge")
                if oid is not None:
                    legs[oid] = a
        if legs:
            self.hedges += 1
            hedge = Basket(basket.key + ":hedge", legs, 0.0, 0.0, ctx.clock.now_us(), hedging=True)
            self.baskets[hedge.key] = hedge
            for oid in legs:
                self.leg_of[oid] = hedge
            self.metric("strategy.arb_hedges", self.hedges, "counter", key=basket.key)
