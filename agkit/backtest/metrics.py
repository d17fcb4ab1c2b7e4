"""The backtest's performance figures (definitions in docs/strategy.md).

Drawdowns are measured on the whole equity path: `PathDrawdown` sees equity after every
mark, fill and payout, so a fall and its recovery between two samples of the curve
count. Sharpe, Sortino, CAGR, volatility and profit factor come from the sampled curve
through the risk analytics (`agkit.risk.perf`, the code of `agkit risk perf`), so a
backtest and `agkit risk perf` on the same curve agree. A figure with nothing to
measure (no losing period for Sortino, no drawdown for Calmar, fewer than two returns)
is None, never 0: a 0 would read as a result.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy is imported when the figures are computed, not at start-up
    import numpy as np
    import numpy.typing as npt

YEAR_S = 365.0 * 86400.0
MIN_ANNUALISED_S = 86400.0
# below a previous peak by more than this (USDC), equity is under water: float noise
# from marking and unmarking a position must not start a drawdown
UNDER = 1e-9


class PathDrawdown:
    """The deepest fall of equity below its running peak and the longest time under a
    peak, updated at every change of equity; also the deepest point of each interval
    between two samples (for the chart)."""

    __slots__ = ("longest_under_us", "low", "max_fall", "max_fall_pct", "peak", "under_since")

    def __init__(self, equity: float) -> None:
        self.peak = equity
        self.max_fall = 0.0
        self.max_fall_pct = 0.0
        self.under_since: int | None = None
        self.longest_under_us = 0
        self.low = 0.0  # deepest equity − peak since the last sample (≤ 0)

    def move(self, equity: float, ts: int) -> None:
        peak = self.peak
        if equity >= peak - UNDER:
            if self.under_since is not None:  # recovered
                self.longest_under_us = max(self.longest_under_us, ts - self.under_since)
                self.under_since = None
            if equity > peak:
                self.peak = equity
            return
        if self.under_since is None:
            self.under_since = ts
        fall = peak - equity
        if fall > self.max_fall:
            self.max_fall = fall
        if peak > 0 and fall / peak > self.max_fall_pct:
            self.max_fall_pct = fall / peak
        if -fall < self.low:
            self.low = -fall

    def sample(self, equity: float) -> float:
        """The deepest point since the last sample; the next interval starts at `equity`."""
        low = min(self.low, equity - self.peak)
        self.low = min(0.0, equity - self.peak)
        return low

    def finish(self, ts: int) -> None:
        """A drawdown still open at the end lasts until the end."""
        if self.under_since is not None:
            self.longest_under_us = max(self.longest_under_us, ts - self.under_since)
            self.under_since = None


def summary(equity: npt.NDArray[np.float64], span_s: float, sample_s: float, path: PathDrawdown) -> dict[str, Any]:
    """Sharpe, Sortino, Calmar, max drawdown and the rest of the report's statistics;
    `span_s`: the time the data covers."""
    ppy = YEAR_S / sample_s if sample_s > 0 else 0.0
    stats = _risk_perf(equity, ppy) or {}
    # an annual growth rate compounded from less than a day is not a measurement (an
    # hour's 1% compounds to 7e37 times the capital): None, as where it overflows a double
    cagr = _clean(stats.get("cagr")) if span_s >= MIN_ANNUALISED_S else None
    pct = path.max_fall_pct
    return {
        "sharpe": _clean(stats.get("sharpe")),
        "sortino": _clean(stats.get("sortino")),
        "calmar": _clean(cagr / pct) if cagr is not None and pct > 1e-15 else None,
        "max_drawdown": _clean(path.max_fall),
        "max_drawdown_pct": _clean(pct),
        "max_drawdown_duration_s": path.longest_under_us / 1e6,
        "volatility": _clean(stats.get("volatility")),
        "cagr": cagr,
        "profit_factor": _clean(stats.get("profit_factor")),
    }


def _risk_perf(equity: npt.NDArray[np.float64], ppy: float) -> dict[str, Any] | None:
    """`agkit risk perf`'s statistics of the curve; None with fewer than two returns or
    an equity that reached 0 (returns are undefined from there)."""
    import numpy as np

    if equity.size < 3 or ppy <= 0 or bool(np.any(equity[:-1] <= 0)):
        return None
    from agkit.risk import perf

    stats: dict[str, Any] = perf.metrics(perf.returns_from_equity(equity), periods_per_year=ppy)
    return stats


def _clean(x: float | None) -> float | None:
    return round(x, 10) if x is not None and math.isfinite(x) else None
