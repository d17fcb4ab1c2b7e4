"""A full L2 order book for one token, maintained from snapshots and level updates.

Levels are keyed by price (float of the venue's decimal string, so "0.5", "0.50" and
".5" are one level). Each side keeps a sorted list of its prices beside a dict of sizes,
so an update costs a dict write plus, for a new or removed level, a bisect; the top N
levels, best first, are a slice. The venue's array order is never trusted.

`top_json()` gives the top `depth` levels of each side as the JSON `orjson` writes for
them, from bytes cached per level and per side: an update outside a side's top levels
(most of them) leaves its cached bytes valid, so a book line is mostly joined, not encoded.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable
from typing import Any

import orjson

_dumps = orjson.dumps


class L2Book:
    __slots__ = ("_ask_top", "_bid_top", "ask_json", "ask_px", "asks", "bid_json", "bid_px", "bids", "depth", "hash",
                 "ts_us")

    def __init__(self, depth: int = 10) -> None:
        self.depth = depth  # levels per side in top_json()
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.bid_px: list[float] = []  # ascending; best bid last
        self.ask_px: list[float] = []  # ascending; best ask first
        self.bid_json: dict[float, bytes] = {}  # price -> b"[price,size]", while the level is unchanged
        self.ask_json: dict[float, bytes] = {}
        self._bid_top: bytes | None = None  # the top levels, comma-joined, until one of them changes
        self._ask_top: bytes | None = None
        self.hash: str | None = None
        self.ts_us = 0

    def snapshot(self, bids: Iterable[tuple[float, float]], asks: Iterable[tuple[float, float]]) -> None:
        """Replace the whole book (levels of size 0 are ignored)."""
        self.bids = {p: s for p, s in bids if s > 0}
        self.asks = {p: s for p, s in asks if s > 0}
        self.bid_px = sorted(self.bids)
        self.ask_px = sorted(self.asks)
        self.bid_json = {}
        self.ask_json = {}
        self._bid_top = self._ask_top = None

    def set(self, is_bid: bool, price: float, size: float) -> None:
        """Set one level to its new total size; 0 removes it."""
        depth = self.depth
        if is_bid:
            side, px, js = self.bids, self.bid_px, self.bid_json
            in_top = len(px) < depth or price >= px[-depth]
        else:
            side, px, js = self.asks, self.ask_px, self.ask_json
            in_top = len(px) < depth or price <= px[depth - 1]
        if size > 0:
            if price not in side:
                insort(px, price)
            side[price] = size
            js.pop(price, None)
        elif price in side:
            del side[price]
            js.pop(price, None)
            i = bisect_left(px, price)
            if i < len(px) and px[i] == price:
                del px[i]
        else:
            return  # removing a level that is not there changes nothing
        if in_top:
            if is_bid:
                self._bid_top = None
            else:
                self._ask_top = None

    def clear(self) -> None:
        self.snapshot((), ())
        self.hash = None

    def top(self, depth: int) -> tuple[list[list[float]], list[list[float]]]:
        """(bids, asks), best first, at most `depth` levels each, as [price, size] pairs."""
        bids, asks = self.bids, self.asks
        top_bids = [[p, bids[p]] for p in reversed(self.bid_px[-depth:])]
        top_asks = [[p, asks[p]] for p in self.ask_px[:depth]]
        return top_bids, top_asks

    def top_json(self) -> tuple[bytes, bytes]:
        """`top(self.depth)` as JSON array contents: b"[p,s],[p,s]..." for bids, for asks."""
        bids = self._bid_top
        if bids is None:
            bids = self._bid_top = _joined(self.bids, self.bid_json, reversed(self.bid_px[-self.depth :]))
        asks = self._ask_top
        if asks is None:
            asks = self._ask_top = _joined(self.asks, self.ask_json, self.ask_px[: self.depth])
        return bids, asks

    @property
    def levels(self) -> int:
        return len(self.bids) + len(self.asks)

    def best_bid(self) -> float | None:
        return self.bid_px[-1] if self.bid_px else None

    def best_ask(self) -> float | None:
        return self.ask_px[0] if self.ask_px else None

    def as_dict(self) -> dict[str, Any]:
        return {"bids": sorted(self.bids.items(), reverse=True), "asks": sorted(self.asks.items())}


def _joined(sizes: dict[float, float], cache: dict[float, bytes], prices: Iterable[float]) -> bytes:
    out = []
    for p in prices:
        level = cache.get(p)
        if level is None:
            level = cache[p] = _dumps((p, sizes[p]))
        out.append(level)
    return b",".join(out)
