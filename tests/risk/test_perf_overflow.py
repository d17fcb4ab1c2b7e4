"""Annualising a few minutes of returns must not crash: the figure is None, not inf."""

from __future__ import annotations

import numpy as np

from agkit.backtest.metrics import PathDrawdown, summary
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


def test_backtest_figures_of_an_explosive_curve_do_not_overflow() -> None:
    equity = np.array([1.0, 1e6, 5e5, 2e12])
    path = PathDrawdown(1.0)
    for i, e in enumerate(equity):
        path.move(float(e), i)
    out = summary(equity, span_s=3 * 86400.0, sample_s=86400.0, path=path)  # must not raise OverflowError
    assert out["cagr"] is None and out["calmar"] is None  # too large for a double: no figure
    assert out["max_drawdown"] == 5e5 and out["max_drawdown_pct"] == 0.5
