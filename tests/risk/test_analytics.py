"""Greeks, perf, portfolio and stress statistics against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from agkit.errors import UsageError
from agkit.risk import greeks, perf, portfolio_risk, stress

# --- greeks ----------------------------------------------------------------------------


def test_vanilla_textbook_values() -> None:
    # S = K = 100, sigma 20%, r 5%, T = 1 (the original's test inputs; Hull-style values)
    c = greeks.vanilla(100, 100, 1, 0.2, 0.05, "call")
    assert c["price"] == pytest.approx(10.4506, abs=1e-4)
    assert c["delta"] == pytest.approx(0.6368, abs=1e-4)
    assert c["gamma"] == pytest.approx(0.018762, abs=1e-6)
    assert c["vega_pct"] == pytest.approx(0.37524, abs=1e-5)
    assert c["theta_day"] == pytest.approx(-0.017573, abs=1e-6)
    assert c["rho_pct"] == pytest.approx(0.53232, abs=1e-5)
    p = greeks.vanilla(100, 100, 1, 0.2, 0.05, "put")
    assert p["price"] == pytest.approx(5.5735, abs=1e-4)
    assert c["price"] - p["price"] == pytest.approx(100 - 100 * math.exp(-0.05))  # parity


def _fd(fn: str, S: float, K: float, T: float, s: float, r: float, right: str) -> dict[str, float]:
    f = getattr(greeks, fn)

    def price(**kw: float) -> float:
        args = {"S": S, "K": K, "T": T, "sigma": s, "r": r} | kw
        return float(f(args["S"], args["K"], args["T"], args["sigma"], args["r"], right)["price"])

    hS, hv, hT, hr = S * 1e-4, 1e-5, 1e-6, 1e-6
    return {
        "delta": (price(S=S + hS) - price(S=S - hS)) / (2 * hS),
        "gamma": (price(S=S + hS) - 2 * price() + price(S=S - hS)) / hS**2,
        "vega": (price(sigma=s + hv) - price(sigma=s - hv)) / (2 * hv),
        "theta": -(price(T=T + hT) - price(T=T - hT)) / (2 * hT),
        "rho": (price(r=r + hr) - price(r=r - hr)) / (2 * hr),
    }


@pytest.mark.parametrize("right", ["call", "put"])
@pytest.mark.parametrize("kind", ["binary", "vanilla"])
@pytest.mark.parametrize(("S", "K", "T", "s", "r"), [(100, 100, 1, 0.2, 0.05), (90, 100, 0.25, 0.5, 0.01), (97000, 100000, 30 / 365, 0.6, 0.04)])
def test_greeks_match_finite_differences(kind: str, right: str, S: float, K: float, T: float, s: float, r: float) -> None:
    g = getattr(greeks, kind)(S, K, T, s, r, right)
    fd = _fd(kind, S, K, T, s, r, right)
    for k in ("delta", "vega", "theta", "rho"):
        assert g[k] == pytest.approx(fd[k], rel=1e-4, abs=1e-9), k
    assert g["gamma"] == pytest.approx(fd["gamma"], rel=1e-2, abs=1e-8)


def test_binary_call_is_minus_strike_derivative_of_vanilla() -> None:
    S, K, T, s, r, h = 100, 105, 0.5, 0.3, 0.03, 1e-4
    dC_dK = (greeks.vanilla(S, K + h, T, s, r)["price"] - greeks.vanilla(S, K - h, T, s, r)["price"]) / (2 * h)
    assert greeks.binary(S, K, T, s, r)["price"] == pytest.approx(-dC_dK, rel=1e-6)


def test_binary_parity() -> None:
    c = greeks.binary(90, 100, 0.5, 0.3, 0.02, "call")["price"]
    p = greeks.binary(90, 100, 0.5, 0.3, 0.02, "put")["price"]
    assert c + p == pytest.approx(math.exp(-0.01))


@settings(max_examples=150, deadline=None)
@given(st.floats(50, 150), st.floats(0.05, 2.0), st.floats(0.02, 2.0), st.floats(0, 0.08), st.sampled_from(["call", "put"]), st.sampled_from(["binary", "vanilla"]))
def test_implied_vol_round_trip(S: float, sigma: float, T: float, r: float, right: str, kind: str) -> None:
    K = 100.0
    price = getattr(greeks, kind)(S, K, T, sigma, r, right)["price"]
    if kind == "binary" and not 1e-6 < price < math.exp(-r * T) - 1e-6:
        return  # numerically at a bound: no information about sigma
    if kind == "vanilla" and getattr(greeks, kind)(S, K, T, sigma, r, right)["vega"] < 1e-3:
        return
    m = math.log(S / K) + r * T
    if kind == "binary" and m < 0 and sigma > math.sqrt(-2 * m / T):
        return  # upper branch of a non-monotone binary: the lower root is returned instead
    iv = greeks.implied_vol(price, S, K, T, r, right, kind)
    assert iv == pytest.approx(sigma, rel=1e-5, abs=1e-6)


def test_implied_vol_unattainable_price() -> None:
    with pytest.raises(UsageError):
        greeks.implied_vol(0.9, 80, 100, 0.1, 0.0, "call")  # far OTM binary never reaches 0.9
    with pytest.raises(UsageError):
        greeks.implied_vol(1.2, 100, 100, 1, 0.0)


def test_portfolio_greeks_scale_by_quantity() -> None:
    res = greeks.portfolio(
        [
            {"spot": 100, "strike": 100, "expiry_years": 1, "vol": 0.2, "quantity": 10, "underlying": "BTC"},
            {"spot": 100, "strike": 110, "expiry_years": 1, "price": 0.8, "quantity": -5, "right": "put", "underlying": "BTC"},
        ]
    )
    one = greeks.binary(100, 100, 1, 0.2)
    two = res["positions"][1]
    assert res["total"]["delta"] == pytest.approx(10 * one["delta"] - 5 * two["delta"])
    assert two["price"] == pytest.approx(0.8)
    assert res["by_underlying"]["BTC"]["value"] == pytest.approx(res["total"]["value"])


# --- perf -------------------------------------------------------------------------------


R = [0.01, -0.02, 0.015, 0.0, -0.005, 0.03, -0.01, 0.02, -0.025, 0.005]


def test_perf_against_manual_computation() -> None:
    P, rf = 252.0, 0.02
    m = perf.metrics(R, P, rf, 0.0)
    ex = [x - rf / P for x in R]
    mean = sum(ex) / len(ex)
    sd = math.sqrt(sum((x - mean) ** 2 for x in ex) / (len(ex) - 1))
    assert m["sharpe"] == pytest.approx(mean / sd * math.sqrt(P))
    dd = math.sqrt(sum(min(x, 0) ** 2 for x in R) / len(R))
    assert m["sortino"] == pytest.approx(sum(R) / len(R) / dd * math.sqrt(P))
    assert m["win_rate"] == pytest.approx(5 / 9)  # 5 gains among 9 non-zero returns
    gains = sum(x for x in R if x > 0)
    losses = -sum(x for x in R if x < 0)
    assert m["profit_factor"] == pytest.approx(gains / losses)
    total = math.prod(1 + x for x in R) - 1
    assert m["total_return"] == pytest.approx(total)
    assert m["calmar"] == pytest.approx(((1 + total) ** (P / len(R)) - 1) / m["max_drawdown"])


def brute_drawdown(rs: list[float]) -> tuple[float, int]:
    w, peak, mdd, run, longest = 1.0, 1.0, 0.0, 0, 0
    for x in rs:
        w *= 1 + x
        peak = max(peak, w)
        dd = 1 - w / peak
        if dd > 1e-15:  # underwater (beyond rounding), as perf.max_drawdown counts it
            run += 1
            longest = max(longest, run)
        else:
            run = 0
        mdd = max(mdd, dd)
    return mdd, longest


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-0.3, 0.3), min_size=1, max_size=100))
def test_max_drawdown_brute_force(rs: list[float]) -> None:
    mdd, dur = perf.max_drawdown(rs)
    bm, bd = brute_drawdown(rs)
    assert mdd == pytest.approx(bm, abs=1e-12)
    assert dur == bd


def test_beta_alpha_tracking_error() -> None:
    rng = np.random.default_rng(3)
    b = rng.normal(0.0005, 0.01, 500)
    r = 0.0002 + 1.3 * b + rng.normal(0, 0.004, 500)
    m = perf.metrics(r, 252, 0.0, 0.0, b)
    lr = stats.linregress(b, r)
    assert m["beta"] == pytest.approx(lr.slope)
    assert m["alpha"] == pytest.approx(lr.intercept * 252)
    assert m["tracking_error"] == pytest.approx(np.std(r - b, ddof=1) * math.sqrt(252))


def test_perf_edge_cases() -> None:
    m = perf.metrics([0.01, 0.02, 0.03], 252)
    assert m["profit_factor"] is None and m["max_drawdown"] == 0 and m["calmar"] is None
    with pytest.raises(UsageError):
        perf.metrics([0.01])
    assert list(perf.returns_from_equity([100, 110, 99])) == pytest.approx([0.1, -0.1])


# --- portfolio --------------------------------------------------------------------------


def test_portfolio_decomposition() -> None:
    rng = np.random.default_rng(1)
    rets = rng.multivariate_normal([0, 0, 0], [[1e-4, 5e-5, 0], [5e-5, 4e-4, -2e-5], [0, -2e-5, 9e-4]], 500)
    w = np.array([1000.0, 500.0, -200.0])
    cov = portfolio_risk.covariance(rets)
    manual = (rets - rets.mean(0)).T @ (rets - rets.mean(0)) / (len(rets) - 1)
    assert np.allclose(cov, manual)
    d = portfolio_risk.decompose(w, cov, 0.99)
    sp = math.sqrt(w @ manual @ w)
    assert d["volatility_usd"] == pytest.approx(sp)
    assert d["component"].sum() == pytest.approx(sp)  # Euler allocation
    assert d["component_var_usd"].sum() == pytest.approx(d["var_usd"])
    assert d["var_usd"] == pytest.approx(stats.norm.ppf(0.99) * sp)
    # marginal = d sigma_p / d w_i by finite differences
    for i in range(3):
        h = 1e-3
        wp = w.copy()
        wp[i] += h
        assert d["marginal"][i] == pytest.approx((math.sqrt(wp @ manual @ wp) - sp) / h, rel=1e-4)
    vols = np.sqrt(np.diag(manual))
    assert d["diversification_ratio"] == pytest.approx(np.abs(w) @ vols / sp)
    assert d["hhi"] == pytest.approx(sum((abs(x) / 1700) ** 2 for x in w))
    corr = portfolio_risk.correlation(cov)
    assert np.allclose(corr, np.corrcoef(rets, rowvar=False))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 1000), min_size=2, max_size=5))
def test_diversification_ratio_at_least_one_long_only(ws: list[float]) -> None:
    rng = np.random.default_rng(len(ws))
    rets = rng.normal(0, 0.01, (60, len(ws)))
    d = portfolio_risk.decompose(ws, portfolio_risk.covariance(rets))
    if d["diversification_ratio"] is not None:
        assert d["diversification_ratio"] >= 1 - 1e-9
        # sigma of the sum <= sum of sigmas (sub-additivity of volatility)
        assert d["volatility_usd"] <= float(np.abs(ws) @ d["asset_volatility"]) + 1e-9


def test_yes_no_netting() -> None:
    net = portfolio_risk.net_complements(
        [
            {"market": "m", "asset": "yes", "size": 100, "price": 0.6, "outcome": "yes"},
            {"market": "m", "asset": "no", "size": 30, "price": 0.4, "outcome": "no"},
            {"market": "k", "asset": "x", "size": 10, "price": 0.5},
        ]
    )
    m = net[0]
    assert m["locked_sets"] == 30 and m["net_asset"] == "yes" and m["net_size"] == 70
    assert m["net_value_usd"] == pytest.approx(42.0)
    assert net[1]["locked_sets"] == 0


# --- stress -----------------------------------------------------------------------------


def test_named_scenarios_are_the_originals() -> None:
    by = {s.name: s for s in stress.NAMED}
    assert len(by) == 5
    assert by["2008 Financial Crisis"].shocks == {"SPY": -0.38, "QQQ": -0.42, "IWM": -0.34, "TLT": 0.14}
    assert by["2020 COVID Crash"].volatility_shocks == {"SPY": 3.0}
    assert by["Flash Crash"].correlation_shock == 0.98
    assert by["Mild Correction"].shocks["IWM"] == -0.07


def test_stress_mapped_shock_and_clipping() -> None:
    pos = [stress.StressPosition("m1", "a", 100, 0.5), stress.StressPosition("m2", "b", -50, 0.9), stress.StressPosition("m3", "c", 10, 0.3)]
    amap = {"a": ("SPY", 1.0), "b": ("QQQ", -1.0)}
    r = stress.apply(pos, stress.NAMED[0], amap)
    # a: 0.5 * (1 - 0.38) = 0.31 -> 100 * -0.19; b: 0.9 * (1 + 0.42) clipped to 1 -> -50 * 0.1
    assert r["position_impacts"] == pytest.approx({"a": -19.0, "b": -5.0, "c": 0.0})
    assert r["impact_usd"] == pytest.approx(-24.0)
    assert r["worst_position"] == "a"


def test_prediction_market_scenarios_worst_case() -> None:
    pos = [
        stress.StressPosition("m1", "yes1", 100, 0.6, "yes"),
        stress.StressPosition("m1", "no1", 20, 0.4, "no"),
        stress.StressPosition("m2", "yes2", 50, 0.2, "yes"),
    ]
    scen = stress.prediction_market_scenarios(pos, {"ev": ["m1", "m2"]})
    results = {r["scenario"]: r["impact_usd"] for r in stress.run(pos, scen)}
    assert results["m1 resolves to yes1"] == pytest.approx(100 * 0.4 - 20 * 0.4)
    assert results["m1 resolves to no1"] == pytest.approx(-100 * 0.6 + 20 * 0.6)
    assert results["m2 resolves against yes2"] == pytest.approx(-10.0)
    assert results["all prices gap to 0"] == pytest.approx(-(60 + 8 + 10))
    assert results["event ev resolves to m2"] == pytest.approx(-60 + 12 + 40)
    rep = stress.report(stress.run(pos, scen))
    assert rep["max_loss_usd"] == pytest.approx(78.0) and rep["worst_scenario"] == "all prices gap to 0"


def test_traffic_light() -> None:
    assert [stress.traffic_light(x) for x in (5, -5, -15, -25, -35)] == ["green", "green", "yellow", "orange", "red"]
