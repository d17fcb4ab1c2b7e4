"""Option prices and sensitivities.

Binary (cash-or-nothing, pays 1) options model prediction-market outcome shares on an
underlying (e.g. "BTC above K at T": the YES share is a binary call, the NO share a
binary put). Vanilla Black–Scholes (no dividends) is kept for parity with the original.

Units: S, K in the underlying's units; T in years; sigma and r annual (decimal).
Sensitivities are per unit: delta = ∂V/∂S, gamma = ∂²V/∂S², vega = ∂V/∂σ per 1.00 of
vol (`vega_pct` = per vol point, /100), theta = ∂V/∂t per year of calendar time
(`theta_day` = /365), rho = ∂V/∂r (`rho_pct` = /100).

Binary call: V = e^(−rT)·N(d2), d2 = [ln(S/K) + (r − σ²/2)T]/(σ√T), d1 = d2 + σ√T:
  delta = e^(−rT)φ(d2)/(Sσ√T); gamma = −e^(−rT)φ(d2)·d1/(S²σ²T);
  vega = −e^(−rT)φ(d2)·d1/σ; theta = −∂V/∂T = r·V − e^(−rT)φ(d2)·∂d2/∂T with
  ∂d2/∂T = (r − σ²/2)/(σ√T) − d2/(2T); rho = −T·V + e^(−rT)φ(d2)·√T/σ.
Binary put = e^(−rT) − binary call (so every Greek is the negative of the call's,
except theta and rho which also carry the e^(−rT) term).
"""

from __future__ import annotations

import math
from typing import Any

from agkit.errors import UsageError


def _validate(S: float, K: float, T: float, sigma: float) -> None:
    if S <= 0 or K <= 0:
        raise UsageError(f"spot and strike must be positive (S={S}, K={K})")
    if T <= 0:
        raise UsageError(f"time to expiry must be positive, got {T}")
    if sigma <= 0:
        raise UsageError(f"volatility must be positive, got {sigma}")


def _d(S: float, K: float, T: float, sigma: float, r: float) -> tuple[float, float]:
    sq = sigma * math.sqrt(T)
    d1 = (math.log(S / K) + (r + 0.5 * sigma * sigma) * T) / sq
    return d1, d1 - sq


def _pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def _cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def binary(S: float, K: float, T: float, sigma: float, r: float = 0.0, right: str = "call") -> dict[str, float]:
    """Price and Greeks of a cash-or-nothing binary paying 1."""
    _validate(S, K, T, sigma)
    d1, d2 = _d(S, K, T, sigma, r)
    disc = math.exp(-r * T)
    n2 = _pdf(d2)
    sqT = math.sqrt(T)
    price = disc * _cdf(d2)
    delta = disc * n2 / (S * sigma * sqT)
    gamma = -disc * n2 * d1 / (S * S * sigma * sigma * T)
    vega = -disc * n2 * d1 / sigma
    dd2_dT = (r - 0.5 * sigma * sigma) / (sigma * sqT) - d2 / (2.0 * T)
    theta = r * price - disc * n2 * dd2_dT
    rho = -T * price + disc * n2 * sqT / sigma
    if right == "put":
        price = disc - price
        delta, gamma, vega = -delta, -gamma, -vega
        theta = r * disc - theta
        rho = -T * disc - rho
    elif right != "call":
        raise UsageError(f"right must be call or put, got {right!r}")
    return _pack(price, delta, gamma, vega, theta, rho, d1, d2)


def vanilla(S: float, K: float, T: float, sigma: float, r: float = 0.0, right: str = "call") -> dict[str, float]:
    """Black–Scholes price and Greeks of a European call or put (no dividends)."""
    _validate(S, K, T, sigma)
    d1, d2 = _d(S, K, T, sigma, r)
    disc = math.exp(-r * T)
    sqT = math.sqrt(T)
    n1 = _pdf(d1)
    gamma = n1 / (S * sigma * sqT)
    vega = S * n1 * sqT
    if right == "call":
        price = S * _cdf(d1) - K * disc * _cdf(d2)
        delta = _cdf(d1)
        theta = -S * n1 * sigma / (2 * sqT) - r * K * disc * _cdf(d2)
        rho = K * T * disc * _cdf(d2)
    elif right == "put":
        price = K * disc * _cdf(-d2) - S * _cdf(-d1)
        delta = _cdf(d1) - 1.0
        theta = -S * n1 * sigma / (2 * sqT) + r * K * disc * _cdf(-d2)
        rho = -K * T * disc * _cdf(-d2)
    else:
        raise UsageError(f"right must be call or put, got {right!r}")
    return _pack(price, delta, gamma, vega, theta, rho, d1, d2)


def _pack(price: float, delta: float, gamma: float, vega: float, theta: float, rho: float, d1: float, d2: float) -> dict[str, float]:
    return {
        "price": price,
        "delta": delta,
        "gamma": gamma,
        "vega": vega,
        "vega_pct": vega / 100.0,
        "theta": theta,
        "theta_day": theta / 365.0,
        "rho": rho,
        "rho_pct": rho / 100.0,
        "d1": d1,
        "d2": d2,
    }


def implied_vol(
    price: float, S: float, K: float, T: float, r: float = 0.0, right: str = "call", kind: str = "binary"
) -> float:
    """The volatility at which the model price equals `price`.

    Vanilla prices are increasing in σ: the root is unique. A binary's price is not
    monotone in σ: in the money (forward) it falls from e^(−rT) towards 0 as σ grows
    (unique root); out of the money it rises to a maximum at σ* = √(−2(ln(S/K) + rT)/T)
    (where d1 = 0) and then falls, so there are two roots; the lower one (on the rising
    branch) is returned, and a price above the maximum has no solution. The put mirrors
    the call (put = e^(−rT) − call)."""
    from scipy.optimize import brentq  # type: ignore[import-untyped]

    if S <= 0 or K <= 0 or T <= 0:
        raise UsageError("spot, strike and expiry must be positive")
    fn = binary if kind == "binary" else vanilla
    lo, hi = 1e-6, 10.0

    def f(s: float) -> float:
        return fn(S, K, T, s, r, right)["price"] - price

    if kind == "binary":
        disc = math.exp(-r * T)
        if not 0.0 < price < disc:
            raise UsageError(f"a binary's price must be in (0, {disc:.6f}), got {price}")
        m = math.log(S / K) + r * T
        if m < 0:  # not monotone: the lower root lies in (0, σ*], σ* where d1 = 0
            hi = math.sqrt(-2.0 * m / T)
            if f(lo) * f(hi) > 0:
                extreme = f(hi) + price
                raise UsageError(
                    f"price {price} is not attainable below the binary's turning point "
                    f"(price {extreme:.6f} at vol {hi:.4f}); no implied vol"
                )
        else:
            hi = 50.0
    flo, fhi = f(lo), f(hi)
    if flo * fhi > 0:
        raise UsageError(f"no implied volatility in [{lo}, {hi}] matches price {price}")
    return float(brentq(f, lo, hi, xtol=1e-12, rtol=1e-12, maxiter=200))


def portfolio(positions: list[dict[str, Any]]) -> dict[str, Any]:
    """Quantity-weighted Greeks per position and in total (and per underlying).

    Each position: spot, strike, expiry_years, rate, right, kind (binary|vanilla),
    quantity, contract_size (default 1), and vol or price (then vol is implied)."""
    totals = {k: 0.0 for k in ("value", "delta", "gamma", "vega", "theta", "rho")}
    by_underlying: dict[str, dict[str, float]] = {}
    rows = []
    for p in positions:
        kind = p.get("kind", "binary")
        right = p.get("right", "call")
        S, K, T, r = float(p["spot"]), float(p["strike"]), float(p["expiry_years"]), float(p.get("rate", 0.0))
        vol = p.get("vol")
        if vol is None:
            if p.get("price") is None:
                raise UsageError("an option needs vol or price")
            vol = implied_vol(float(p["price"]), S, K, T, r, right, kind)
        g = (binary if kind == "binary" else vanilla)(S, K, T, float(vol), r, right)
        q = float(p.get("quantity", 1.0)) * float(p.get("contract_size", 1.0))
        row = {"underlying": p.get("underlying"), "asset": p.get("asset"), "kind": kind, "right": right, "vol": float(vol), "quantity": q, **g}
        rows.append(row)
        u = by_underlying.setdefault(str(p.get("underlying") or "-"), dict.fromkeys(totals, 0.0))
        for k in totals:
            add = q * (g["price"] if k == "value" else g[k])
            totals[k] += add
            u[k] += add
    return {"positions": rows, "total": totals, "by_underlying": by_underlying}
