"""VaR/CVaR/Kupiec against independent computations, plus properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from agkit.errors import UsageError
from agkit.risk import var


def brute_quantile(xs: list[float], p: float) -> float:
    """Hyndman-Fan type 7 by hand."""
    s = sorted(xs)
    h = (len(s) - 1) * p
    lo = math.floor(h)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (h - lo) * (s[hi] - s[lo])


SMALL = [0.01, -0.02, 0.03, -0.05, 0.0, 0.02, -0.01, 0.04, -0.03, 0.015]


def test_historical_matches_brute_force_on_small_case() -> None:
    for c in (0.8, 0.9, 0.95):
        q = brute_quantile(SMALL, 1 - c)
        assert var.historical_var(SMALL, c, value=1000, horizon=4) == pytest.approx(-q * 1000 * 2)
        tail = [x for x in SMALL if x <= q]
        assert var.historical_cvar(SMALL, c, value=1000) == pytest.approx(-sum(tail) / len(tail) * 1000)


def test_historical_interpolates_between_order_statistics() -> None:
    # 10 points, p = 0.05: h = 0.45 between the two worst returns
    s = sorted(SMALL)
    expected = -(s[0] + 0.45 * (s[1] - s[0]))
    assert var.historical_var(SMALL, 0.95) == pytest.approx(expected)


def test_parametric_against_scipy_normal() -> None:
    mu, sigma, c, h, v = 0.001, 0.02, 0.99, 10, 5000.0
    expected = -stats.norm.ppf(1 - c, loc=mu * h, scale=sigma * math.sqrt(h)) * v
    assert var.parametric_var(mu, sigma, c, v, h) == pytest.approx(expected)


def test_parametric_cvar_by_numerical_integration() -> None:
    mu, sigma, c = 0.0005, 0.015, 0.975
    dist = stats.norm(mu, sigma)
    q = dist.ppf(1 - c)
    tail_mean, _ = integrate.quad(lambda x: x * dist.pdf(x), -np.inf, q)
    assert var.parametric_cvar(mu, sigma, c) == pytest.approx(-tail_mean / (1 - c), rel=1e-7)


def test_parametric_keeps_the_mean() -> None:
    assert var.parametric_var(0.01, 0.02, 0.95) < var.parametric_var(0.0, 0.02, 0.95)


def test_monte_carlo_converges_to_lognormal_quantile_and_is_seeded() -> None:
    rng = np.random.default_rng(7)
    r = np.expm1(rng.normal(0.0003, 0.012, 2000))
    lr = np.log1p(r)
    m, s = lr.mean(), lr.std(ddof=1)
    h, c = 5, 0.99
    analytic = -np.expm1(m * h + s * math.sqrt(h) * stats.norm.ppf(1 - c))
    v1, cv1 = var.monte_carlo_var(r, c, 1.0, h, paths=400_000, seed=3)
    assert v1 == pytest.approx(analytic, rel=0.02)
    assert cv1 > v1
    assert var.monte_carlo_var(r, c, 1.0, h, paths=1000, seed=3) == var.monte_carlo_var(r, c, 1.0, h, paths=1000, seed=3)


def test_methods_agree_in_units_on_normal_data() -> None:
    # the original's Monte Carlo treated sigma as annual: here all three agree on the same data
    rng = np.random.default_rng(11)
    r = rng.normal(0.0, 0.01, 20_000)
    res = {x.method: x.var for x in var.compute(r, confidences=[0.99], paths=200_000)}
    assert res["historical"] == pytest.approx(res["parametric"], rel=0.05)
    assert res["montecarlo"] == pytest.approx(res["parametric"], rel=0.05)


def test_kupiec_against_binomial_likelihoods() -> None:
    n, x, c = 250, 8, 0.99
    lr = 2 * (stats.binom.logpmf(x, n, x / n) - stats.binom.logpmf(x, n, 1 - c))
    k = var.kupiec(x, n, c)
    assert k.lr == pytest.approx(lr)
    assert k.p_value == pytest.approx(stats.chi2.sf(lr, 1))
    assert k.reject  # 8 exceptions in 250 at 99% is the Basel "yellow zone": rejected at 5%
    assert not var.kupiec(3, 250, 0.99).reject


def test_kupiec_edge_cases() -> None:
    k0 = var.kupiec(0, 250, 0.99)
    assert k0.lr == pytest.approx(-2 * 250 * math.log(0.99))
    assert var.kupiec(250, 250, 0.5).reject
    with pytest.raises(UsageError):
        var.kupiec(5, 4, 0.99)


def test_rolling_var_matches_sliding_windows() -> None:
    rng = np.random.default_rng(5)
    r = rng.normal(0, 0.01, 120)
    ts = np.arange(120) * 1000
    t_out, v = var.rolling_historical_var(ts, r, 50, 0.95, value=10.0)
    assert list(t_out) == list(ts[50:])
    for i in range(50, 120):
        assert v[i - 50] == pytest.approx(-np.quantile(r[i - 50 : i], 0.05) * 10.0)


def test_backtest_counts_exceptions_without_lookahead() -> None:
    rng = np.random.default_rng(9)
    r = rng.normal(0, 0.01, 300)
    ts = np.arange(300)
    k = var.backtest(ts, r, 100, 0.95)
    manual = sum(r[i] < np.quantile(r[i - 100 : i], 0.05) for i in range(100, 300))
    assert k.exceptions == manual and k.n == 200


def test_input_validation() -> None:
    with pytest.raises(UsageError):
        var.historical_var([0.1], 0.95)
    with pytest.raises(UsageError):
        var.historical_var(SMALL, 1.0)
    with pytest.raises(UsageError):
        var.historical_var(SMALL, 0.95, horizon=0)
    with pytest.raises(UsageError):
        var.historical_var([0.1, float("nan")], 0.95)


returns_lists = st.lists(st.floats(-0.5, 0.5, allow_nan=False), min_size=5, max_size=200)


@settings(max_examples=200, deadline=None)
@given(returns_lists, st.floats(0.5, 0.99), st.floats(0.5, 0.99))
def test_var_monotone_in_confidence(rs: list[float], c1: float, c2: float) -> None:
    lo, hi = sorted((c1, c2))
    assert var.historical_var(rs, lo) <= var.historical_var(rs, hi) + 1e-12
    mu, sd = float(np.mean(rs)), float(np.std(rs, ddof=1))
    assert var.parametric_var(mu, sd, lo) <= var.parametric_var(mu, sd, hi) + 1e-12


@settings(max_examples=200, deadline=None)
@given(returns_lists, st.floats(0.5, 0.999))
def test_cvar_at_least_var(rs: list[float], c: float) -> None:
    assert var.historical_cvar(rs, c) >= var.historical_var(rs, c) - 1e-12
    mu, sd = float(np.mean(rs)), float(np.std(rs, ddof=1))
    assert var.parametric_cvar(mu, sd, c) >= var.parametric_var(mu, sd, c) - 1e-12


@settings(max_examples=100, deadline=None)
@given(st.floats(0.0, 0.05), st.floats(0.0, 0.05), st.floats(-1, 1), st.floats(0.9, 0.999))
def test_parametric_var_subadditive(s1: float, s2: float, rho: float, c: float) -> None:
    # zero-mean normal VaR is proportional to sigma, and sigma(a + b) <= sigma(a) + sigma(b)
    sp = math.sqrt(max(0.0, s1 * s1 + s2 * s2 + 2 * rho * s1 * s2))
    assert var.parametric_var(0, sp, c) <= var.parametric_var(0, s1, c) + var.parametric_var(0, s2, c) + 1e-12


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(-0.2, 0.2), st.floats(-0.2, 0.2)), min_size=20, max_size=100), st.floats(0.8, 0.99))
def test_historical_cvar_subadditive_on_scenarios(pairs: list[tuple[float, float]], c: float) -> None:
    # expected shortfall is coherent: on equally likely scenarios with k = n(1-c) an integer
    # tail, CVaR(a + b) <= CVaR(a) + CVaR(b). Use the exact k-worst-average definition.
    n = len(pairs)
    k = max(1, int(n * (1 - c)))

    def es(xs: list[float]) -> float:
        return -sum(sorted(xs)[:k]) / k

    a = [p[0] for p in pairs]
    b = [p[1] for p in pairs]
    assert es([x + y for x, y in pairs]) <= es(a) + es(b) + 1e-12
