"""Incremental trading signals: one `update(value)` per observation, O(1) each.

| signal | value | ready after |
|---|---|---|
| `SMA(n)` | mean of the last n values (ring buffer) | n values |
| `EMA(n)` | α = 2/(n+1), seeded with the SMA of the first n values | n values |
| `RSI(n)` | Wilder's RSI: first averages are simple means of n changes, then (prev·(n−1)+x)/n | n+1 values |
| `Bollinger(n, k)` | middle SMA, bands ± k·σ, σ the population std (÷n) of the window | n values |
| `MACD(fast, slow, signal)` | EMA(fast) − EMA(slow); signal = EMA(signal) of the MACD line; histogram | slow+signal−1 values |
| `imbalance(bids, asks, depth)` | (Σbid size − Σask size)/(Σbid + Σask) over the top `depth` levels | – |
| `microprice(bid, bid_size, ask, ask_size)` | (bid·ask_size + ask·bid_size)/(bid_size + ask_size) | – |
| `spread(bid, ask)`, `spread_bps(bid, ask)` | ask − bid; relative to the mid in basis points | – |

`update` returns the current value, or None while warming up (`ready` tells which).
Windows use `agkit.ring.RingBuffer` (C, O(1) rolling sums, exact eviction). Each signal
is checked against a direct batch numpy computation in tests/strategy/test_signals.py.

RSI edge cases: with no losses in the window RSI is 100, with no gains 0, with neither
(a flat series) 50.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from agkit.ring import RingBuffer


class SMA:
    """Simple moving average over the last `period` values."""

    __slots__ = ("_n", "_ring", "period", "value")

    def __init__(self, period: int) -> None:
        if period < 1:
            raise ValueError("period must be >= 1")
        self.period = period
        self._ring = RingBuffer(period)
        self._n = 0
        self.value: float | None = None

    @property
    def ready(self) -> bool:
        return self._n >= self.period

    def update(self, x: float) -> float | None:
        self._n += 1
        self._ring.push(self._n, x)
        if self._n >= self.period:
            self.value = self._ring.mean()
        return self.value


class EMA:
    """Exponential moving average, α = 2/(period+1), seeded with the SMA of the first `period`."""

    __slots__ = ("_n", "_sum", "alpha", "period", "value")

    def __init__(self, period: int) -> None:
        if period < 1:
            raise ValueError("period must be >= 1")
        self.period = period
        self.alpha = 2.0 / (period + 1)
        self._n = 0
        self._sum = 0.0
        self.value: float | None = None

    @property
    def ready(self) -> bool:
        return self.value is not None

    def update(self, x: float) -> float | None:
        if self.value is not None:
            self.value += self.alpha * (x - self.value)
            return self.value
        self._n += 1
        self._sum += x
        if self._n == self.period:
            self.value = self._sum / self.period
        return self.value


class RSI:
    """Wilder's relative strength index (0..100)."""

    __slots__ = ("_gain", "_loss", "_n", "_prev", "period", "value")

    def __init__(self, period: int = 14) -> None:
        if period < 1:
            raise ValueError("period must be >= 1")
        self.period = period
        self._prev: float | None = None
        self._n = 0
        self._gain = 0.0
        self._loss = 0.0
        self.value: float | None = None

    @property
    def ready(self) -> bool:
        return self.value is not None

    def update(self, x: float) -> float | None:
        prev, self._prev = self._prev, x
        if prev is None:
            return None
        change = x - prev
        gain = change if change > 0 else 0.0
        loss = -change if change < 0 else 0.0
        n = self.period
        if self._n < n:
            self._n += 1
            self._gain += gain
            self._loss += loss
            if self._n < n:
                return None
            self._gain /= n
            self._loss /= n
        else:
            self._gain = (self._gain * (n - 1) + gain) / n
            self._loss = (self._loss * (n - 1) + loss) / n
        self.value = rsi_from(self._gain, self._loss)
        return self.value


def rsi_from(avg_gain: float, avg_loss: float) -> float:
    if avg_loss <= 0.0:
        return 50.0 if avg_gain <= 0.0 else 100.0
    return 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)


class Bollinger:
    """Bollinger bands: (lower, middle, upper) with population σ over `period` values."""

    __slots__ = ("_n", "_ring", "k", "lower", "middle", "period", "upper")

    def __init__(self, period: int = 20, k: float = 2.0) -> None:
        if period < 1:
            raise ValueError("period must be >= 1")
        self.period = period
        self.k = k
        self._ring = RingBuffer(period)
        self._n = 0
        self.lower: float | None = None
        self.middle: float | None = None
        self.upper: float | None = None

    @property
    def ready(self) -> bool:
        return self.middle is not None

    def update(self, x: float) -> tuple[float, float, float] | None:
        self._n += 1
        self._ring.push(self._n, x)
        if self._n < self.period:
            return None
        mid = self._ring.mean()
        sd = self._ring.std(ddof=0) if self.period > 1 else 0.0
        self.middle, self.lower, self.upper = mid, mid - self.k * sd, mid + self.k * sd
        return (self.lower, mid, self.upper)

    def percent_b(self, x: float) -> float | None:
        """Where x sits between the bands (0 at the lower, 1 at the upper)."""
        if self.lower is None or self.upper is None or self.upper == self.lower:
            return None
        return (x - self.lower) / (self.upper - self.lower)


class MACD:
    """MACD line, signal line and histogram from SMA-seeded EMAs."""

    __slots__ = ("_fast", "_signal", "_slow", "histogram", "macd", "signal")

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        if not 1 <= fast < slow:
            raise ValueError("need 1 <= fast < slow")
        self._fast = EMA(fast)
        self._slow = EMA(slow)
        self._signal = EMA(signal)
        self.macd: float | None = None
        self.signal: float | None = None
        self.histogram: float | None = None

    @property
    def ready(self) -> bool:
        return self.signal is not None

    def update(self, x: float) -> tuple[float, float, float] | None:
        f = self._fast.update(x)
        s = self._slow.update(x)
        if f is None or s is None:
            return None
        self.macd = f - s
        sig = self._signal.update(self.macd)
        if sig is None:
            return None
        self.signal = sig
        self.histogram = self.macd - sig
        return (self.macd, sig, self.histogram)


def imbalance(bids: Sequence[Sequence[float]], asks: Sequence[Sequence[float]], depth: int = 1) -> float:
    """Order-book imbalance in [−1, 1] over the top `depth` levels (0 for an empty book)."""
    b = sum(level[1] for level in bids[:depth])
    a = sum(level[1] for level in asks[:depth])
    total = b + a
    return 0.0 if total <= 0 else (b - a) / total


def microprice(bid: float, bid_size: float, ask: float, ask_size: float) -> float:
    """Size-weighted mid: leans towards the side with less size (where the price is going)."""
    total = bid_size + ask_size
    if total <= 0:
        return (bid + ask) / 2.0
    return (bid * ask_size + ask * bid_size) / total


def spread(bid: float, ask: float) -> float:
    return ask - bid


def spread_bps(bid: float, ask: float) -> float:
    mid = (bid + ask) / 2.0
    return math.inf if mid <= 0 else (ask - bid) / mid * 1e4


def book_signals(book: dict[str, Any], depth: int = 1) -> dict[str, float] | None:
    """Imbalance, microprice, spread and mid of a `book` record (None if a side is empty)."""
    bids, asks = book["bids"], book["asks"]
    if not bids or not asks:
        return None
    bid, bsz = bids[0][0], bids[0][1]
    ask, asz = asks[0][0], asks[0][1]
    return {
        "mid": (bid + ask) / 2.0,
        "spread": ask - bid,
        "microprice": microprice(bid, bsz, ask, asz),
        "imbalance": imbalance(bids, asks, depth),
    }


__all__ = [
    "EMA",
    "MACD",
    "RSI",
    "SMA",
    "Bollinger",
    "book_signals",
    "imbalance",
    "microprice",
    "rsi_from",
    "spread",
    "spread_bps",
]
