"""Positions, PnL and fees: one model shared by risk-check, exec, strategies and backtest.

Average-cost accounting per asset (token). A position's size is signed: positive is
long shares of that token. Realized PnL is booked when a fill reduces a position;
fees are tracked separately and included in `net_pnl`. When a market resolves,
the winning token pays 1 and every other token 0, and the positions close there.
A fill whose on-chain settlement fails is removed and the asset is recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def taker_fee(size: float, price: float, rate: float, exponent: float = 1.0) -> float:
    """Polymarket's taker fee in USDC for a fill: shares × rate × (p(1−p))^exponent.

    Makers pay none. `rate` and `exponent` come from the market's fee parameters."""
    return float(size * rate * (price * (1.0 - price)) ** exponent)


@dataclass
class Fill:
    trade_id: str
    side: str  # "buy" | "sell"
    price: float
    size: float
    fee: float


@dataclass
class PositionState:
    market: str
    asset: str
    size: float = 0.0
    avg_price: float = 0.0
    realized_pnl: float = 0.0
    fees: float = 0.0
    mark: float | None = None
    fills: list[Fill] = field(default_factory=list, repr=False)

    def apply(self, side: str, price: float, size: float, fee: float) -> None:
        signed = size if side == "buy" else -size
        self.fees += fee
        old = self.size
        if old == 0 or (old > 0) == (signed > 0):  # opening or adding
            new = old + signed
            self.avg_price = (self.avg_price * abs(old) + price * size) / abs(new)
            self.size = new
            return
        closing = min(abs(signed), abs(old))
        direction = 1.0 if old > 0 else -1.0
        self.realized_pnl += (price - self.avg_price) * closing * direction
        new = old + signed
        if abs(new) < 1e-12:
            self.size, self.avg_price = 0.0, 0.0
        elif (new > 0) != (old > 0):  # flipped through zero: the rest opens at this price
            self.size, self.avg_price = new, price
        else:
            self.size = new

    @property
    def unrealized_pnl(self) -> float:
        if self.mark is None or self.size == 0:
            return 0.0
        return (self.mark - self.avg_price) * self.size

    @property
    def net_pnl(self) -> float:
        return self.realized_pnl + self.unrealized_pnl - self.fees

    @property
    def worst_case_value(self) -> float:
        """Value if the market resolves against the position (a share goes to 0 or 1)."""
        return 0.0 if self.size >= 0 else self.size  # short: owes 1 per share

    def as_record(self, ts_event: int, ts_init: int) -> dict[str, Any]:
        return {
            "type": "position",
            "ts_event": ts_event,
            "ts_init": ts_init,
            "market": self.market,
            "asset": self.asset,
            "size": self.size,
            "avg_price": self.avg_price,
            "realized_pnl": self.realized_pnl,
            "fees": self.fees,
        }


class Portfolio:
    """Positions per asset plus cash, from fills, marks and resolutions."""

    def __init__(self, cash: float = 0.0) -> None:
        self.cash = cash
        self.positions: dict[str, PositionState] = {}

    def position(self, market: str, asset: str) -> PositionState:
        pos = self.positions.get(asset)
        if pos is None:
            pos = self.positions[asset] = PositionState(market, asset)
        return pos

    def size(self, asset: str) -> float:
        pos = self.positions.get(asset)
        return pos.size if pos else 0.0

    def apply_fill(
        self,
        market: str,
        asset: str,
        side: str,
        price: float,
        size: float,
        fee: float = 0.0,
        trade_id: str = "",
    ) -> PositionState:
        pos = self.position(market, asset)
        pos.apply(side, price, size, fee)
        pos.fills.append(Fill(trade_id, side, price, size, fee))
        self.cash += (-price * size if side == "buy" else price * size) - fee
        return pos

    def apply_fill_record(self, rec: dict[str, Any]) -> PositionState:
        return self.apply_fill(
            rec["market"],
            rec["asset"],
            rec["side"],
            rec["price"],
            rec["size"],
            rec.get("fee", 0.0),
            rec.get("trade_id", ""),
        )

    def reverse_fill(self, asset: str, trade_id: str) -> PositionState | None:
        """Undo a fill whose settlement failed: recompute the asset without it."""
        pos = self.positions.get(asset)
        if pos is None:
            return None
        keep = [f for f in pos.fills if f.trade_id != trade_id]
        if len(keep) == len(pos.fills):
            return None
        for f in pos.fills:
            if f.trade_id == trade_id:
                self.cash -= (-f.price * f.size if f.side == "buy" else f.price * f.size) - f.fee
        fresh = PositionState(pos.market, asset, mark=pos.mark)
        for f in keep:
            fresh.apply(f.side, f.price, f.size, f.fee)
        fresh.fills = keep
        self.positions[asset] = fresh
        return fresh

    def mark(self, asset: str, price: float) -> None:
        pos = self.positions.get(asset)
        if pos is not None:
            pos.mark = price

    def resolve(self, market: str, winning_asset: str) -> list[PositionState]:
        """Settle every position of a resolved market: the winner at 1, the rest at 0."""
        closed = []
        for pos in self.positions.values():
            if pos.market != market or pos.size == 0:
                continue
            payout = 1.0 if pos.asset == winning_asset else 0.0
            self.cash += payout * pos.size
            pos.realized_pnl += (payout - pos.avg_price) * pos.size
            pos.size, pos.avg_price, pos.mark = 0.0, 0.0, payout
            closed.append(pos)
        return closed

    @property
    def realized_pnl(self) -> float:
        return sum(p.realized_pnl for p in self.positions.values())

    @property
    def unrealized_pnl(self) -> float:
        return sum(p.unrealized_pnl for p in self.positions.values())

    @property
    def fees(self) -> float:
        return sum(p.fees for p in self.positions.values())

    def equity(self) -> float:
        """Cash plus positions at their marks (at cost where unmarked)."""
        value = 0.0
        for p in self.positions.values():
            price = p.mark if p.mark is not None else p.avg_price
            value += p.size * price
        return self.cash + value
