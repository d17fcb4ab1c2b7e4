"""Portfolio risk decomposition (definitions in docs/risk.md).

R: a T×N matrix of per-period returns of N assets (rows aligned in time); w: the
positions' USD values (not weights: the original took caller-supplied, unnormalised
weights and passed a correlation matrix where a covariance was needed).

- Σ = sample covariance (ddof=1) + ridge·I; corr = D⁻¹ΣD⁻¹ (D = diag √Σᵢᵢ)
- σ_p = √(wᵀΣw) (USD per period)
- marginal_i = (Σw)_i / σ_p; component_i = w_i·marginal_i (Σ component_i = σ_p, Euler);
  pct_i = component_i / σ_p
- component VaR_i = z_c·√h·component_i (parametric, zero mean; sums to the portfolio VaR)
- diversification ratio = Σ|w_i|σ_i / σ_p (≥ 1 for long-only books)
- HHI = Σ (|w_i| / Σ|w|)² (1/N for equal, 1 for a single position)

YES/NO netting: in a binary market, holding y YES and n NO shares locks min(y, n)
complete sets worth exactly 1 each at resolution; only |y − n| shares of one side carry
risk. `net_complements` returns the netted exposure per market.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from agkit.errors import UsageError


def covariance(returns: Any, ridge: float = 0.0) -> Any:
    import numpy as np

    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] < 2:
        raise UsageError("need a T×N return matrix with T >= 2")
    cov = np.cov(r, rowvar=False, ddof=1).reshape(r.shape[1], r.shape[1])
    if ridge:
        cov = cov + ridge * np.eye(r.shape[1])
    return cov


def correlation(cov: Any) -> Any:
    import numpy as np

    sd = np.sqrt(np.diag(cov))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(sd, sd)
    return np.where(np.isfinite(corr), corr, 0.0)


def decompose(values: Sequence[float] | Any, cov: Any, confidence: float = 0.95, horizon: float = 1.0) -> dict[str, Any]:
    """Volatility, marginal and component contributions, component VaR, DR, HHI."""
    import numpy as np
    from scipy.stats import norm  # type: ignore[import-untyped]

    w = np.asarray(values, dtype=np.float64)
    c = np.asarray(cov, dtype=np.float64)
    if c.shape != (w.size, w.size):
        raise UsageError(f"covariance is {c.shape}, positions {w.size}")
    sw = c @ w
    var_p = float(w @ sw)
    sigma_p = math.sqrt(max(var_p, 0.0))
    marginal = sw / sigma_p if sigma_p > 0 else np.zeros_like(w)
    component = w * marginal
    z = float(norm.ppf(confidence)) * math.sqrt(horizon)
    vols = np.sqrt(np.maximum(np.diag(c), 0.0))
    gross = float(np.abs(w).sum())
    return {
        "volatility_usd": sigma_p,
        "var_usd": z * sigma_p,
        "marginal": marginal,
        "component": component,
        "pct": component / sigma_p if sigma_p > 0 else np.zeros_like(w),
        "component_var_usd": z * component,
        "asset_volatility": vols,
        "diversification_ratio": float(np.abs(w) @ vols) / sigma_p if sigma_p > 0 else None,
        "hhi": float(((np.abs(w) / gross) ** 2).sum()) if gross > 0 else None,
    }


def net_complements(positions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per market: locked complete sets and the net directional exposure.

    positions: dicts with market, asset, size (shares), price and optional outcome
    (yes/no). A market with exactly two held assets is treated as a YES/NO pair (the
    one marked `outcome: no`, or else the second seen, is the NO side)."""
    by_market: dict[str, list[dict[str, Any]]] = {}
    for p in positions:
        by_market.setdefault(p["market"], []).append(p)
    out = []
    for market, ps in by_market.items():
        gross = sum(abs(p["size"]) * p["price"] for p in ps)
        if len(ps) != 2:
            out.append({"market": market, "locked_sets": 0.0, "net_asset": None, "net_size": None, "gross_value_usd": gross, "net_value_usd": gross})
            continue
        yes, no = ps
        if yes.get("outcome") == "no" or no.get("outcome") == "yes":
            yes, no = no, yes
        locked = max(0.0, min(yes["size"], no["size"]))
        net = yes["size"] - no["size"]
        side = yes if net >= 0 else no
        net_value = abs(net) * side["price"]
        out.append(
            {
                "market": market,
                "locked_sets": locked,
                "locked_value_usd": locked * 1.0,
                "net_asset": side["asset"],
                "net_size": abs(net),
                "gross_value_usd": gross,
                "net_value_usd": net_value,
            }
        )
    return out


def align(series: dict[str, dict[int, float]]) -> tuple[list[str], list[int], Any]:
    """Assets' return series keyed by timestamp -> (assets, common timestamps, T×N matrix)."""
    import numpy as np

    assets = sorted(series)
    if not assets:
        raise UsageError("no return series")
    common = set(series[assets[0]])
    for a in assets[1:]:
        common &= set(series[a])
    ts = sorted(common)
    m = np.array([[series[a][t] for a in assets] for t in ts], dtype=np.float64).reshape(len(ts), len(assets))
    return assets, ts, m
