"""Every incremental signal against a direct batch numpy computation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agkit.signals import (
    EMA,
    MACD,
    RSI,
    SMA,
    Bollinger,
    book_signals,
    imbalance,
    microprice,
    spread,
    spread_bps,
)

prices = st.lists(st.floats(min_value=0.01, max_value=0.99, allow_nan=False), min_size=1, max_size=120)


def batch_sma(x: np.ndarray, n: int) -> list[float | None]:
    return [None if i + 1 < n else float(np.mean(x[i + 1 - n : i + 1])) for i in range(len(x))]


def batch_ema(x: np.ndarray, n: int) -> list[float | None]:
    out: list[float | None] = []
    a = 2.0 / (n + 1)
    v = None
    for i in range(len(x)):
        if i + 1 < n:
            out.append(None)
            continue
        v = float(np.mean(x[:n])) if i + 1 == n else v + a * (x[i] - v)  # type: ignore[operator]
        out.append(v)
    return out


def batch_rsi(x: np.ndarray, n: int) -> list[float | None]:
    d = np.diff(x)
    gains, losses = np.maximum(d, 0.0), np.maximum(-d, 0.0)
    out: list[float | None] = [None] * min(len(x), n)
    if len(d) < n:
        return out[: len(x)]
    g, lo = float(np.mean(gains[:n])), float(np.mean(losses[:n]))

    def rsi(g: float, lo: float) -> float:
        if lo <= 0:
            return 50.0 if g <= 0 else 100.0
        return 100 - 100 / (1 + g / lo)

    out.append(rsi(g, lo))
    for i in range(n, len(d)):
        g = (g * (n - 1) + gains[i]) / n
        lo = (lo * (n - 1) + losses[i]) / n
        out.append(rsi(g, lo))
    return out


def close(a: list[float | None], b: list[float | None]) -> None:
    assert len(a) == len(b)
    for u, v in zip(a, b, strict=True):
        if v is None:
            assert u is None
        else:
            assert u == pytest.approx(v, rel=1e-9, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(prices, st.integers(1, 30))
def test_sma_matches_batch(xs: list[float], n: int) -> None:
    s = SMA(n)
    close([s.update(x) for x in xs], batch_sma(np.array(xs), n))


@settings(max_examples=60, deadline=None)
@given(prices, st.integers(1, 30))
def test_ema_is_sma_seeded_and_matches_batch(xs: list[float], n: int) -> None:
    e = EMA(n)
    close([e.update(x) for x in xs], batch_ema(np.array(xs), n))


@settings(max_examples=60, deadline=None)
@given(prices, st.integers(1, 20))
def test_rsi_wilder_matches_batch(xs: list[float], n: int) -> None:
    r = RSI(n)
    close([r.update(x) for x in xs], batch_rsi(np.array(xs), n))


def test_rsi_edges() -> None:
    r = RSI(3)
    assert [r.update(x) for x in (1, 2, 3, 4)][-1] == 100.0
    r = RSI(3)
    assert [r.update(x) for x in (4, 3, 2, 1)][-1] == 0.0
    r = RSI(3)
    assert [r.update(x) for x in (1, 1, 1, 1)][-1] == 50.0


@settings(max_examples=60, deadline=None)
@given(prices, st.integers(1, 30), st.floats(0.5, 3.0))
def test_bollinger_matches_batch(xs: list[float], n: int, k: float) -> None:
    b = Bollinger(n, k)
    arr = np.array(xs)
    for i, x in enumerate(xs):
        got = b.update(x)
        if i + 1 < n:
            assert got is None
            continue
        w = arr[i + 1 - n : i + 1]
        mid, sd = float(np.mean(w)), float(np.std(w))  # population sigma
        assert got is not None
        assert got[1] == pytest.approx(mid, rel=1e-9)
        assert got[0] == pytest.approx(mid - k * sd, rel=1e-7, abs=1e-9)
        assert got[2] == pytest.approx(mid + k * sd, rel=1e-7, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.01, 0.99), min_size=1, max_size=80))
def test_macd_matches_batch(xs: list[float]) -> None:
    m = MACD(3, 7, 4)
    arr = np.array(xs)
    fast, slow = batch_ema(arr, 3), batch_ema(arr, 7)
    line = [f - s for f, s in zip(fast, slow, strict=True) if f is not None and s is not None]
    sig = batch_ema(np.array(line), 4) if line else []
    got = [m.update(x) for x in xs]
    ready = [g for g in got if g is not None]
    expected = [(ln, s, ln - s) for ln, s in zip(line, sig, strict=True) if s is not None]
    assert len(ready) == len(expected)
    for g, e in zip(ready, expected, strict=True):
        assert g == pytest.approx(e, rel=1e-9, abs=1e-12)


def test_macd_needs_fast_below_slow() -> None:
    with pytest.raises(ValueError):
        MACD(26, 12)


def test_book_signals() -> None:
    bids, asks = [[0.40, 300.0], [0.39, 100.0]], [[0.42, 100.0], [0.43, 100.0]]
    assert imbalance(bids, asks) == pytest.approx((300 - 100) / 400)
    assert imbalance(bids, asks, depth=2) == pytest.approx((400 - 200) / 600)
    assert imbalance([], []) == 0.0
    assert microprice(0.40, 300, 0.42, 100) == pytest.approx((0.40 * 100 + 0.42 * 300) / 400)
    assert microprice(0.40, 0, 0.42, 0) == pytest.approx(0.41)
    assert spread(0.40, 0.42) == pytest.approx(0.02)
    assert spread_bps(0.40, 0.42) == pytest.approx(0.02 / 0.41 * 1e4)
    sig = book_signals({"bids": bids, "asks": asks})
    assert sig is not None and sig["mid"] == pytest.approx(0.41)
    assert book_signals({"bids": [], "asks": asks}) is None
