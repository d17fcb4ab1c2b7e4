"""`bands`: the band ladder of Polymarket's reference market maker (poly-market-maker).

A band is `{minMargin, avgMargin, maxMargin, minAmount, avgAmount, maxAmount}`, margins
in absolute price units from the target price, amounts in shares. Two ladders per
market, with the target p the mid of the primary token (YES):
- the bid side adds YES exposure: it sells NO the strategy holds above 1 − p, or else
  buys YES below p;
- the ask side removes YES exposure: it sells YES held above p, or else buys NO below
  1 − p (the same exposure as selling YES: Polymarket has no short selling).
Selling what is held first keeps complete YES+NO sets from piling up (they tie up
capital until resolution and count twice in gross position limits).

On every update of the primary token's book (throttled in event time), per side:
1. orders whose margin lies in no band are canceled;
2. in a band holding more than `maxAmount`, orders are canceled, farthest from the
   band's `avgMargin` first (the newest among equals), until it holds at most `maxAmount` (cancel excess);
3. a band holding less than `minAmount` gets one new order of `avgAmount − held`
   shares at `target − avgMargin` (top up to min), when that reaches the market's
   min size and lies inside [tick, 1 − tick].

The target price is the mid of the primary token's book. Bands are given as JSON (or
YAML) text in the `bands` parameter, a list or `{"bands": [...]}`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from agkit.strategy.api import EPS, OrderState, Strategy, snap
from agkit.strategy.params import param

DEFAULT_BANDS = (
    '[{"minMargin":0.01,"avgMargin":0.02,"maxMargin":0.03,"minAmount":20,"avgAmount":30,"maxAmount":40},'
    '{"minMargin":0.03,"avgMargin":0.04,"maxMargin":0.05,"minAmount":40,"avgAmount":60,"maxAmount":80}]'
)


@dataclass(frozen=True)
class Band:
    min_margin: float
    avg_margin: float
    max_margin: float
    min_amount: float
    avg_amount: float
    max_amount: float

    def contains(self, margin: float) -> bool:
        return self.min_margin - EPS <= margin < self.max_margin - EPS


def parse_bands(text: str) -> list[Band]:
    import yaml

    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"bands are not valid JSON/YAML: {exc}") from None
    if isinstance(data, dict):
        data = data.get("bands", data.get("buyBands"))
    if not isinstance(data, list) or not data:
        raise ValueError("bands must be a non-empty list of band objects")
    out = []
    keys = ("minMargin", "avgMargin", "maxMargin", "minAmount", "avgAmount", "maxAmount")
    for i, b in enumerate(data):
        if not isinstance(b, dict) or any(k not in b for k in keys):
            raise ValueError(f"band {i} needs {', '.join(keys)}")
        band = Band(*(float(b[k]) for k in keys))
        if not band.min_margin <= band.avg_margin <= band.max_margin:
            raise ValueError(f"band {i}: need minMargin <= avgMargin <= maxMargin")
        if not 0 <= band.min_amount <= band.avg_amount <= band.max_amount:
            raise ValueError(f"band {i}: need 0 <= minAmount <= avgAmount <= maxAmount")
        out.append(band)
    out.sort(key=lambda b: b.min_margin)
    for a, b in itertools.pairwise(out):
        if b.min_margin < a.max_margin - EPS:
            raise ValueError("bands overlap")
    return out


@dataclass(frozen=True)
class BandsParams:
    bands: str = param(DEFAULT_BANDS, "JSON/YAML list of bands (poly-market-maker bands.json form)")
    min_quote_interval_ms: float = param(1000.0, "throttle between ladder refreshes, event time")
    max_position: float = param(1000.0, "largest |exposure| in shares (YES − NO)")
    asset: str = param("", "token whose mid is the target (default: first token per market)")

    def __post_init__(self) -> None:
        parse_bands(self.bands)


class Bands(Strategy):
    """Polymarket reference market maker: band ladder with cancel-excess and top-up."""

    name = "bands"
    description = "the band ladder of Polymarket's reference market maker"
    Params = BandsParams
    params: BandsParams

    def on_start(self) -> None:
        self.bands = parse_bands(self.params.bands)
        self._last: dict[str, int] = {}
        self._throttle_us = int(self.params.min_quote_interval_ms * 1000)

    def on_book(self, book: dict[str, Any]) -> None:
        market = book["market"]
        assets = self.ctx.assets_of.get(market, [])
        primary = self.params.asset or (assets[0] if assets else "")
        if primary not in self.ctx.markets:
            return
        now = self.ctx.clock.now_us()
        if now - self._last.get(market, -(1 << 62)) < self._throttle_us:
            return
        m = self.ctx.markets[primary]
        if m.mid is None:
            return
        self._last[market] = now
        p = m.mid
        ctx = self.ctx
        limit = self.params.max_position
        exposure = ctx.exposure(primary)
        other = ctx.complement(primary)
        if other is not None and other not in ctx.markets:
            other = None
        held_yes = ctx.portfolio.size(primary)
        held_no = ctx.portfolio.size(other) if other is not None else 0.0
        # the bid side (more YES exposure): sell NO held, else buy YES
        if other is not None and held_no >= ctx.markets[other].min_size:
            self._clear(primary, "buy")
            self._ladder(other, "sell", 1.0 - p, held_no)
        else:
            if other is not None:
                self._clear(other, "sell")
            self._ladder(primary, "buy", p, limit - exposure)
        # the ask side (less YES exposure): sell YES held, else buy NO
        if held_yes >= m.min_size or other is None:
            if other is not None:
                self._clear(other, "buy")
            self._ladder(primary, "sell", p, held_yes)
        else:
            self._clear(primary, "sell")
            self._ladder(other, "buy", 1.0 - p, limit + exposure)

    def _clear(self, asset: str, side: str) -> None:
        for o in list(self.ctx.orders.values()):
            if o.asset == asset and o.side == side and o.live:
                self.cancel(o.id, "bands side switch")

    def _margin(self, o: OrderState, target: float) -> float:
        return target - o.price if o.side == "buy" else o.price - target

    def _ladder(self, asset: str, side: str, target: float, room: float) -> None:
        m = self.ctx.markets[asset]
        mine = [o for o in self.ctx.orders.values() if o.asset == asset and o.side == side and o.live]
        in_band: list[list[OrderState]] = [[] for _ in self.bands]
        for o in mine:
            margin = self._margin(o, target)
            for i, band in enumerate(self.bands):
                if band.contains(margin):
                    in_band[i].append(o)
                    break
            else:
                self.cancel(o.id, "outside bands")
        for band, orders in zip(self.bands, in_band, strict=True):
            total = sum(o.remaining for o in orders)
            if total > band.max_amount + EPS:
                # farthest from avgMargin first; among equals the newest (keep queue priority)
                orders = sorted(reversed(orders), key=lambda o: -abs(self._margin(o, target) - band.avg_margin))
                for o in orders:
                    if total <= band.max_amount + EPS:
                        break
                    self.cancel(o.id, "band excess")
                    total -= o.remaining
            room -= total
            if total < band.min_amount - EPS:
                size = min(band.avg_amount - total, room)
                if size < max(m.min_size, EPS):
                    continue
                raw = target - band.avg_margin if side == "buy" else target + band.avg_margin
                price = snap(raw, m.tick, "down" if side == "buy" else "up")
                if self.quote(asset, side, price, size, tag="band") is not None:
                    room -= size
