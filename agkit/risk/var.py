"""Value at Risk and expected shortfall, with a Kupiec backtest.

Conventions (docs/risk.md):
- Returns are simple per-period returns (e.g. daily), as fractions; VaR and CVaR are
  reported as positive losses in the units of `value` (the portfolio value; 1.0 gives
  a fraction of it). A negative VaR means even the tail quantile is a gain.
- Historical: q = the (1 − c) quantile of the returns, linearly interpolated between
  order statistics (numpy's "linear", Hyndman–Fan type 7); VaR = −q·value·√h.
  CVaR = −mean(returns ≤ q)·value·√h, so CVaR ≥ VaR always.
- Parametric (normal, the mean kept): VaR = −(μ·h + z₁₋c·σ·√h)·value,
  CVaR = −(μ·h − σ·√h·φ(z₁₋c)/(1 − c))·value. μ, σ: sample mean and std (ddof=1).
- Monte Carlo: log returns ~ N(m, s²) per period, m and s estimated from log(1 + r) of
  the same data (so the units match the other two methods); the h-period log return
  is N(m·h, s²·h) (exact for geometric Brownian motion), the simulated return is
  exp(x) − 1; VaR and CVaR as in the historical method over the simulated returns.
  Seeded (numpy PCG64), so a run is reproducible.
- Horizon h in periods: √h scaling for historical VaR/CVaR (the square-root-of-time
  rule, exact only for i.i.d. zero-mean returns), μ·h + σ·√h for parametric.
- Kupiec (1995) proportion-of-failures test: LR = −2·ln[(1−p)^(n−x)·p^x] +
  2·ln[(1−x/n)^(n−x)·(x/n)^x], χ²(1) under H0 (exception rate p = 1 − c).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from agkit.errors import UsageError

MIN_OBSERVATIONS = 2


def _scipy_stats() -> Any:
    import scipy.stats  # type: ignore[import-untyped]

    return scipy.stats


def _check(confidence: float, horizon: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise UsageError(f"confidence must be in (0, 1), got {confidence}")
    if horizon <= 0:
        raise UsageError(f"horizon must be positive, got {horizon}")


def _array(returns: Sequence[float] | Any, minimum: int = MIN_OBSERVATIONS) -> Any:
    import numpy as np

    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 1:
        raise UsageError("returns must be one-dimensional")
    if r.size < minimum:
        raise UsageError(f"need at least {minimum} returns, got {r.size}")
    if not np.all(np.isfinite(r)):
        raise UsageError("returns contain NaN or infinite values")
    return r


def _quantile(r: Any, p: float) -> float:
    """Type-7 (linear) quantile via a partial sort: np.quantile's result, less overhead."""
    import numpy as np

    n = int(r.size)
    h = (n - 1) * p
    lo = int(h)
    if lo >= n - 1:
        return float(np.max(r))
    part = np.partition(r, (lo, lo + 1))
    a = float(part[lo])
    return a + (h - lo) * (float(part[lo + 1]) - a)


def historical_var(returns: Sequence[float] | Any, confidence: float = 0.95, value: float = 1.0, horizon: float = 1.0) -> float:
    """Historical VaR with an interpolated quantile (positive = loss)."""

    _check(confidence, horizon)
    r = _array(returns)
    q = _quantile(r, 1.0 - confidence)
    return -q * value * math.sqrt(horizon)


def historical_cvar(returns: Sequence[float] | Any, confidence: float = 0.95, value: float = 1.0, horizon: float = 1.0) -> float:
    """Historical expected shortfall: the mean of the returns at or below the VaR quantile."""

    _check(confidence, horizon)
    r = _array(returns)
    q = _quantile(r, 1.0 - confidence)
    tail = r[r <= q]
    return -float(tail.mean()) * value * math.sqrt(horizon)


def parametric_var(mu: float, sigma: float, confidence: float = 0.95, value: float = 1.0, horizon: float = 1.0) -> float:
    """Normal VaR with the mean: −(μh + z₁₋c σ √h)·value."""
    norm = _scipy_stats().norm

    _check(confidence, horizon)
    if sigma < 0:
        raise UsageError(f"sigma must not be negative, got {sigma}")
    z = float(norm.ppf(1.0 - confidence))
    return -(mu * horizon + z * sigma * math.sqrt(horizon)) * value


def parametric_cvar(mu: float, sigma: float, confidence: float = 0.95, value: float = 1.0, horizon: float = 1.0) -> float:
    """Normal expected shortfall: −(μh − σ√h φ(z)/(1 − c))·value."""
    norm = _scipy_stats().norm

    _check(confidence, horizon)
    z = float(norm.ppf(1.0 - confidence))
    return -(mu * horizon - sigma * math.sqrt(horizon) * float(norm.pdf(z)) / (1.0 - confidence)) * value


def monte_carlo_returns(log_mu: float, log_sigma: float, horizon: float = 1.0, paths: int = 100_000, seed: int | None = 0) -> Any:
    """Simulated h-period simple returns under GBM with per-period log drift and vol."""
    import numpy as np

    if paths < 1:
        raise UsageError(f"paths must be at least 1, got {paths}")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(paths)
    x *= log_sigma * math.sqrt(horizon)
    x += log_mu * horizon
    return np.expm1(x)


def monte_carlo_var(
    returns: Sequence[float] | Any,
    confidence: float = 0.95,
    value: float = 1.0,
    horizon: float = 1.0,
    paths: int = 100_000,
    seed: int | None = 0,
) -> tuple[float, float]:
    """(VaR, CVaR) by Monte Carlo, parameters estimated from the returns' logs."""
    import numpy as np

    _check(confidence, horizon)
    r = _array(returns)
    if np.any(r <= -1.0):
        raise UsageError("Monte Carlo VaR needs returns > -100% (it models log returns)")
    lr = np.log1p(r)
    sim = monte_carlo_returns(float(lr.mean()), float(lr.std(ddof=1)), horizon, paths, seed)
    q = _quantile(sim, 1.0 - confidence)
    tail = sim[sim <= q]
    return -q * value, -float(tail.mean()) * value


@dataclass
class VarResult:
    method: str
    confidence: float
    horizon: float
    value: float
    var: float
    cvar: float
    n: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def compute(
    returns: Sequence[float] | Any,
    methods: Sequence[str] = ("historical", "parametric", "montecarlo"),
    confidences: Sequence[float] = (0.95, 0.99),
    value: float = 1.0,
    horizon: float = 1.0,
    paths: int = 100_000,
    seed: int | None = 0,
) -> list[VarResult]:
    """Every requested method at every confidence level."""
    r = _array(returns)
    n = int(r.size)
    mu = float(r.mean())
    sigma = float(r.std(ddof=1))
    out = []
    for c in confidences:
        for m in methods:
            if m == "historical":
                v, cv = historical_var(r, c, value, horizon), historical_cvar(r, c, value, horizon)
            elif m == "parametric":
                v, cv = parametric_var(mu, sigma, c, value, horizon), parametric_cvar(mu, sigma, c, value, horizon)
            elif m == "montecarlo":
                v, cv = monte_carlo_var(r, c, value, horizon, paths, seed)
            else:
                raise UsageError(f"unknown VaR method {m!r} (historical, parametric, montecarlo)")
            out.append(VarResult(m, c, horizon, value, v, cv, n))
    return out


@dataclass
class KupiecResult:
    n: int
    exceptions: int
    rate: float
    expected_rate: float
    lr: float
    p_value: float
    reject: bool  # reject "the model is right" at the test's significance

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def kupiec(exceptions: int, n: int, confidence: float, significance: float = 0.05) -> KupiecResult:
    """Kupiec's proportion-of-failures likelihood-ratio test."""
    chi2 = _scipy_stats().chi2

    if n <= 0 or not 0 <= exceptions <= n:
        raise UsageError(f"need 0 <= exceptions <= n and n > 0, got {exceptions} of {n}")
    p = 1.0 - confidence
    x = exceptions
    rate = x / n

    def loglik(prob: float) -> float:
        total = 0.0
        if n - x:
            total += (n - x) * math.log1p(-prob) if prob < 1 else -math.inf
        if x:
            total += x * math.log(prob) if prob > 0 else -math.inf
        return total

    lr = max(0.0, -2.0 * (loglik(p) - loglik(rate)))
    pv = float(chi2.sf(lr, 1))
    return KupiecResult(n, x, rate, p, lr, pv, pv < significance)


def rolling_historical_var(
    ts: Sequence[int] | Any, returns: Sequence[float] | Any, window: int, confidence: float = 0.95, value: float = 1.0
) -> tuple[Any, Any]:
    """VaR over a rolling window kept in a RingBuffer, forecast for the next period.

    Returns (timestamps, var) where var[i] is the VaR estimated from the `window`
    returns before ts[i] (so it can be compared with returns[i] without look-ahead)."""
    import numpy as np

    from agkit.ring import RingBuffer

    _check(confidence, 1.0)
    r = _array(returns, 1)
    t = np.asarray(ts, dtype=np.int64)
    if window < 2:
        raise UsageError(f"window must be at least 2, got {window}")
    if r.size <= window:
        raise UsageError(f"need more than window={window} returns, got {r.size}")
    ring = RingBuffer(window)
    ring.push_many(t[:window], r[:window])
    out = np.empty(r.size - window)
    p = 1.0 - confidence
    for i in range(window, r.size):
        out[i - window] = -_quantile(ring.values(), p) * value
        ring.push(int(t[i]), float(r[i]))
    return t[window:], out


def backtest(ts: Sequence[int] | Any, returns: Sequence[float] | Any, window: int, confidence: float = 0.95, significance: float = 0.05) -> KupiecResult:
    """Rolling historical VaR backtest: count returns below −VaR, then the Kupiec test."""
    import numpy as np

    r = _array(returns, 1)
    _t, v = rolling_historical_var(ts, r, window, confidence)
    realised = r[window:]
    x = int(np.count_nonzero(realised < -v))
    return kupiec(x, int(realised.size), confidence, significance)
