"""Annualising a few minutes of returns must not crash: the figure is None, not inf."""

from __future__ import annotations

import numpy as np

from agkit.backtest.metrics import calmar
from agkit.risk.perf import _annualised, metrics


def test_annualised_overflow_is_none() -> None:
    assert _annualised(0.5, 1e6) is None  # 1.5 ** 1e6 overflows a double
    one_year = _annualised(0.1, 1.0)
    assert one_year is not None and abs(one_year - 0.1) < 1e-12
    assert _annualised(-1.0, 5.0) == -1.0


def test_perf_on_a_short_explosive_series() -> None:
    r = np.array([0.2, -0.05, 0.3, 0.1] * 5)
    out = metrics(r, periods_per_year=525_600 * 60)  # per-second periods over 20 seconds
    assert out["cagr"] is None and out["calmar"] is None


def test_backtest_calmar_over_days_does_not_overflow() -> None:
    equity = np.array([1.0, 1e6, 5e5, 2e12])
    value = calmar(equity, span_s=2 * 86400)  # must not raise OverflowError
    assert value == float("inf") or value >= 0
