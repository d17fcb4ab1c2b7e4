"""Performance statistics of a return series (definitions in docs/risk.md and `agkit risk perf --help`).

r: simple per-period returns; P: periods per year (252 by default, 365 for markets that
trade every day); rf: annual risk-free rate, rf/P per period; b: benchmark returns.

- total_return = Π(1 + r) − 1; cagr = (1 + total_return)^(P/n) − 1
- volatility = std(r, ddof=1)·√P
- sharpe = mean(r − rf/P) / std(r − rf/P, ddof=1) · √P
- sortino = mean(r − mar/P) / DD · √P, DD = √(mean(min(r − mar/P, 0)²)) over *all* n
  periods (Sortino & Price); mar is annual, like rf (the original divided by the count
  of losing periods and mixed an annual MAR into a daily filter)
- max_drawdown = max over t of 1 − W_t / max_{s≤t} W_s, W = Π(1 + r) (a positive
  fraction); max_drawdown_duration = the longest run of periods spent below a
  previous peak (until recovery, or until the end if never recovered)
- calmar = cagr / max_drawdown
- win_rate = #(r > 0) / #(r ≠ 0); profit_factor = Σ r⁺ / |Σ r⁻| (null when no losses)
- beta = cov(r, b) / var(b) (ddof=1); alpha = (mean(r − rf/P) − beta·mean(b − rf/P))·P
  (Jensen's alpha, annualised arithmetically)
- tracking_error = std(r − b, ddof=1)·√P; information_ratio = mean(r − b)/std(r − b)·√P
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from agkit.errors import UsageError


def _annualised(total: float, years_inv: float) -> float | None:
    """(1 + total)^(P/n) − 1, or None where it overflows a double (a few minutes of data
    annualised): such a figure means nothing, and JSON has no infinity."""
    if total <= -1.0:
        return -1.0
    x = math.log1p(total) * years_inv
    return math.expm1(x) if x < 700.0 else None


def max_drawdown(returns: Sequence[float] | Any) -> tuple[float, int]:
    """(max drawdown as a positive fraction, longest underwater duration in periods)."""
    import numpy as np

    r = np.asarray(returns, dtype=np.float64)
    if r.size == 0:
        return 0.0, 0
    wealth = np.cumprod(1.0 + r)
    wealth = np.concatenate(([1.0], wealth))
    peak = np.maximum.accumulate(wealth)
    dd = 1.0 - wealth / peak
    under = dd > 1e-15
    longest = 0
    if under.any():
        # lengths of runs of True
        padded = np.concatenate(([False], under, [False]))
        edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
        runs = edges[1::2] - edges[0::2]
        longest = int(runs.max())
    return float(dd.max()), longest


def metrics(
    returns: Sequence[float] | Any,
    periods_per_year: float = 252.0,
    risk_free: float = 0.0,
    mar: float = 0.0,
    benchmark: Sequence[float] | Any | None = None,
) -> dict[str, Any]:
    """Every statistic of the module docstring as a dict (None where undefined)."""
    import numpy as np

    r = np.asarray(returns, dtype=np.float64)
    n = int(r.size)
    if n < 2:
        raise UsageError(f"need at least 2 returns, got {n}")
    if periods_per_year <= 0:
        raise UsageError("periods per year must be positive")
    p = float(periods_per_year)
    sq = math.sqrt(p)
    excess = r - risk_free / p
    sd = float(excess.std(ddof=1))
    total = float(np.prod(1.0 + r) - 1.0)
    cagr = _annualised(total, p / n)
    down = np.minimum(r - mar / p, 0.0)
    dd_dev = math.sqrt(float(np.mean(down * down)))
    mdd, duration = max_drawdown(r)
    gains = float(r[r > 0].sum())
    losses = float(r[r < 0].sum())
    nonzero = int(np.count_nonzero(r))
    out: dict[str, Any] = {
        "n": n,
        "periods_per_year": p,
        "total_return": total,
        "cagr": cagr,
        "mean_return": float(r.mean()),
        "volatility": float(r.std(ddof=1)) * sq,
        "sharpe": float(excess.mean()) / sd * sq if sd > 1e-15 else None,
        "sortino": float((r - mar / p).mean()) / dd_dev * sq if dd_dev > 1e-15 else None,
        "max_drawdown": mdd,
        "max_drawdown_duration": duration,
        "calmar": cagr / mdd if cagr is not None and mdd > 1e-15 else None,
        "win_rate": int(np.count_nonzero(r > 0)) / nonzero if nonzero else None,
        "profit_factor": gains / -losses if losses < 0 else None,
    }
    if benchmark is not None:
        b = np.asarray(benchmark, dtype=np.float64)
        if b.shape != r.shape:
            raise UsageError(f"benchmark has {b.size} returns, the series {n}")
        vb = float(b.var(ddof=1))
        beta = float(np.cov(r, b, ddof=1)[0, 1]) / vb if vb > 1e-30 else None
        active = r - b
        te = float(active.std(ddof=1))
        out["beta"] = beta
        out["alpha"] = (float(excess.mean()) - beta * float((b - risk_free / p).mean())) * p if beta is not None else None
        out["tracking_error"] = te * sq
        out["information_ratio"] = float(active.mean()) / te * sq if te > 1e-15 else None
    return out


def returns_from_equity(equity: Sequence[float] | Any) -> Any:
    """Simple returns between consecutive equity values."""
    import numpy as np

    e = np.asarray(equity, dtype=np.float64)
    if e.size < 2:
        raise UsageError("need at least 2 equity points")
    if np.any(e[:-1] == 0):
        raise UsageError("equity of 0 cannot start a return period")
    return np.diff(e) / e[:-1]
