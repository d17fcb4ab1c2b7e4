"""A mean-reversion strategy on Bollinger bands: an example agkit strategy plug-in.

Run it as a pipe stage or in a backtest, with no installation:

    agkit strategy --file examples/strategies/mean_reversion.py:MeanReversion --list-params
    agkit feed sim --max-records 20000 > day.ndjson
    agkit backtest --data day.ndjson --strategy examples/strategies/mean_reversion.py:MeanReversion \
        -P period=50 -P k=2.5

How it works, per book update of each market's first token (YES):
- the mid goes into a Bollinger band (`agkit.signals.Bollinger`, population σ);
- below the lower band (the price has fallen unusually far) and with room under
  `max_position`, it buys `size` shares at the best bid (a passive, maker order);
- above the upper band with shares in hand, it sells them at the best ask;
- an order that has not filled after `order_ttl_s` of event time is canceled.

Everything a strategy needs comes from `self.ctx`: the event clock, the market state
(`ctx.market(asset)`: best bid/ask, tick, min size), positions (`ctx.position`), this
strategy's open orders (`ctx.open_orders`). Orders are queued with `self.quote` and
`self.cancel`; they leave right after the record being handled.

To ship it in a package instead, declare an entry point:

    [project.entry-points."agkit.strategies"]
    meanrev = "mypackage.mean_reversion:MeanReversion"

and run `agkit strategy meanrev`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agkit.signals import Bollinger
from agkit.strategy import Strategy, param


@dataclass(frozen=True)
class MeanReversionParams:
    period: int = param(50, "book updates in the Bollinger window")
    k: float = param(2.0, "band width in standard deviations")
    size: float = param(20.0, "shares per order")
    max_position: float = param(200.0, "largest position in the token, shares")
    order_ttl_s: float = param(30.0, "cancel an unfilled order after this, event time")


class MeanReversion(Strategy):
    """Buy below the lower Bollinger band, sell above the upper one."""

    name = "meanrev"
    description = "Bollinger-band mean reversion on the mid (example plug-in)"
    Params = MeanReversionParams
    params: MeanReversionParams

    def on_start(self) -> None:
        self.bands: dict[str, Bollinger] = {}

    def on_book(self, book: dict[str, Any]) -> None:
        asset = book["asset"]
        if self.ctx.assets_of[book["market"]][0] != asset:
            return  # trade each market's first (YES) token only
        m = self.ctx.market(asset)
        mid = m.mid
        if mid is None:
            return
        band = self.bands.setdefault(asset, Bollinger(self.params.period, self.params.k))
        if band.update(mid) is None:
            return
        now = self.ctx.clock.now_us()
        ttl = int(self.params.order_ttl_s * 1e6)
        for order in self.ctx.open_orders(asset):
            if order.live and now - order.ts_submit > ttl:
                self.cancel(order.id, "ttl")
        if any(o.live for o in self.ctx.open_orders(asset)):
            return
        position = self.ctx.position(asset)
        assert band.lower is not None and band.upper is not None
        if mid < band.lower and position + self.params.size <= self.params.max_position:
            if m.best_bid is not None:
                self.quote(asset, "buy", m.best_bid, self.params.size)
        elif mid > band.upper and position >= m.min_size and m.best_ask is not None:
            self.quote(asset, "sell", m.best_ask, min(position, self.params.size))
