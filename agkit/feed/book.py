"""A full L2 order book for one token, maintained from snapshots and level updates.

Levels are keyed by price (float of the venue's decimal string, so "0.5", "0.50" and
".5" are one level). Each side keeps a sorted list of its prices beside a dict of sizes,
so an update costs a dict write plus, for a new or removed level, a bisect; the top N
levels, best first, are a slice. The venue's array order is never trusted.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable
from typing import Any


class L2Book:
    __slots__ = ("ask_px", "asks", "bid_px", "bids", "hash", "ts_us")

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.bid_px: list[float] = []  # ascending; best bid last
        self.ask_px: list[float] = []  # ascending; best ask first
        self.hash: str | None = None
        self.ts_us = 0

    def snapshot(self, bids: Iterable[tuple[float, float]], asks: Iterable[tuple[float, float]]) -> None:
        """Replace the whole book (levels of size 0 are ignored)."""
        self.bids = {p: s for p, s in bids if s > 0}
        self.asks = {p: s for p, s in asks if s > 0}
        self.bid_px = sorted(self.bids)
        self.ask_px = sorted(self.asks)

    def set(self, is_bid: bool, price: float, size: float) -> None:
        """Set one level to its new total size; 0 removes it."""
        side, px = (self.bids, self.bid_px) if is_bid else (self.asks, self.ask_px)
        if size > 0:
            if price not in side:
                insort(px, price)
            side[price] = size
        elif price in side:
            del side[price]
            i = bisect_left(px, price)
            if i < len(px) and px[i] == price:
                del px[i]

    def clear(self) -> None:
        self.snapshot((), ())
        self.hash = None

    def top(self, depth: int) -> tuple[list[list[float]], list[list[float]]]:
        """(bids, asks), best first, at most `depth` levels each, as [price, size] pairs."""
        bids, asks = self.bids, self.asks
        top_bids = [[p, bids[p]] for p in reversed(self.bid_px[-depth:])]
        top_asks = [[p, asks[p]] for p in self.ask_px[:depth]]
        return top_bids, top_asks

    @property
    def levels(self) -> int:
        return len(self.bids) + len(self.asks)

    def best_bid(self) -> float | None:
        return self.bid_px[-1] if self.bid_px else None

    def best_ask(self) -> float | None:
        return self.ask_px[0] if self.ask_px else None

    def as_dict(self) -> dict[str, Any]:
        return {"bids": sorted(self.bids.items(), reverse=True), "asks": sorted(self.asks.items())}
