"""Performance metrics of an equity curve (vectorised with numpy).

Definitions (documented in docs/strategy.md): returns are simple returns of equity
between samples; Sharpe = mean/std (ddof=1) · √(periods per year); Sortino uses the
downside deviation √mean(min(r, 0)²); max drawdown is the largest fall from a running
peak (absolute and relative to that peak); Calmar = annualised return / relative max
drawdown. Periods per year follow from the sampling interval (365-day year).

When the risk analytics (`agkit.risk.perf`, the code behind `agkit risk perf`) are
installed, Sharpe, Sortino, Calmar (CAGR / max drawdown) and the relative max drawdown
come from there, with its volatility, CAGR, profit factor and drawdown duration, so a
backtest and `agkit risk perf` on the same equity curve agree; the functions below are
the fallback and give the same Sharpe and Sortino.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

YEAR_S = 365.0 * 86400.0

F64 = npt.NDArray[np.float64]


def returns(equity: F64) -> F64:
    if equity.size < 2:
        return np.zeros(0)
    prev = equity[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(prev != 0, np.diff(equity) / np.abs(prev), 0.0)
    out: F64 = r.astype(np.float64)
    return out


def sharpe(r: F64, periods_per_year: float) -> float:
    if r.size < 2:
        return 0.0
    sd = float(np.std(r, ddof=1))
    if sd <= 0 or not math.isfinite(sd):
        return 0.0
    return float(np.mean(r)) / sd * math.sqrt(periods_per_year)


def sortino(r: F64, periods_per_year: float) -> float:
    if r.size < 2:
        return 0.0
    dd = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    if dd <= 0:
        return 0.0
    return float(np.mean(r)) / dd * math.sqrt(periods_per_year)


def max_drawdown(equity: F64) -> tuple[float, float]:
    """(largest absolute fall from a running peak, the same relative to that peak)."""
    if equity.size == 0:
        return 0.0, 0.0
    peak = np.maximum.accumulate(equity)
    dd = peak - equity
    i = int(np.argmax(dd))
    absolute = float(dd[i])
    rel = absolute / float(peak[i]) if peak[i] > 0 else 0.0
    return absolute, rel


def drawdown_curve(equity: F64) -> F64:
    if equity.size == 0:
        return np.zeros(0)
    out: F64 = (np.maximum.accumulate(equity) - equity).astype(np.float64)
    return out


def calmar(equity: F64, span_s: float) -> float:
    if equity.size < 2 or span_s <= 0 or equity[0] <= 0:
        return 0.0
    _, rel = max_drawdown(equity)
    total = float(equity[-1] / equity[0])
    if total <= 0:
        return 0.0
    if span_s >= 86400:
        x = math.log(total) * YEAR_S / span_s
        annual = math.expm1(x) if x < 700.0 else math.inf  # _clean() turns inf into 0
    else:
        annual = (total - 1.0) * YEAR_S / span_s
    if rel <= 0:
        return 0.0
    return annual / rel


def summary(equity: F64, times_us: npt.NDArray[np.int64], sample_s: float) -> dict[str, Any]:
    """Sharpe, Sortino, Calmar, max drawdown (and more from the risk analytics)."""
    r = returns(equity)
    ppy = YEAR_S / sample_s if sample_s > 0 else 0.0
    span_s = float(times_us[-1] - times_us[0]) / 1e6 if times_us.size > 1 else 0.0
    mdd, mdd_pct = max_drawdown(equity)
    out: dict[str, Any] = {
        "sharpe": _clean(sharpe(r, ppy)),
        "sortino": _clean(sortino(r, ppy)),
        "calmar": _clean(calmar(equity, span_s)),
        "max_drawdown": _clean(mdd),
        "max_drawdown_pct": _clean(mdd_pct),
    }
    perf = _risk_perf(equity, ppy)
    if perf is not None:
        for key in ("sharpe", "sortino", "calmar"):
            out[key] = _clean(perf.get(key) or 0.0)
        out["max_drawdown_pct"] = _clean(perf["max_drawdown"])
        out["max_drawdown_duration"] = int(perf["max_drawdown_duration"])
        out["volatility"] = _clean(perf["volatility"])
        out["cagr"] = None if perf["cagr"] is None else _clean(perf["cagr"])  # None: too short to annualise
        out["profit_factor"] = _clean(perf["profit_factor"] or 0.0)
    return out


def _risk_perf(equity: F64, ppy: float) -> dict[str, Any] | None:
    """`agkit risk perf`'s statistics of the same curve, when the analytics are there."""
    if equity.size < 3 or ppy <= 0 or bool(np.any(equity[:-1] <= 0)):
        return None
    try:
        from agkit.risk import perf
    except ImportError:
        return None
    stats: dict[str, Any] = perf.metrics(perf.returns_from_equity(equity), periods_per_year=ppy)
    return stats


def _clean(x: float) -> float:
    return round(x, 10) if math.isfinite(x) else 0.0
