"""The backtest report does not flatter: drawdowns are measured on the whole equity path,
and a figure with nothing to measure is null, not 0."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

import agkit.backtest.engine as eng
from agkit.backtest.engine import BacktestConfig, Curve, run_backtest
from agkit.backtest.sweep import sort_results
from agkit.portfolio import Portfolio
from agkit.strategy.api import Strategy
from tests.helpers import ROOT, parse_ndjson, run_agkit, sim_file
from tests.strategy.util import T0, YES, pair

S = 1_000_000  # a second in µs


class BuyOnce(Strategy):
    """Takes 10 YES at the first YES ask, then does nothing."""

    name = "buyonce"

    def on_book(self, book: dict[str, Any]) -> None:
        if book["asset"] == YES and self.ctx.counters.submitted == 0:
            self.quote(YES, "buy", book["asks"][0][0], 10.0, tif="FAK")


def buy_once(recs: list[dict[str, Any]], **cfg: Any) -> tuple[dict[str, Any], Curve, list[dict[str, Any]]]:
    """A backtest of `recs` with BuyOnce as the strategy and 100 USDC: (result, the
    equity curve, every output record)."""
    orig = eng.build_stages

    def stages(c: BacktestConfig) -> Any:
        st, i = orig(c)
        st[0] = BuyOnce()
        return st, i

    out: list[dict[str, Any]] = []
    eng.build_stages = stages  # type: ignore[assignment]
    try:
        res, curve = run_backtest(BacktestConfig(data=(), strategy="noop", initial_cash=100.0, **cfg),
                                  records=recs, sink=out.append)
    finally:
        eng.build_stages = orig  # type: ignore[assignment]
    return res, curve, out


def path_drawdown(out: list[dict[str, Any]], cash: float) -> tuple[float, float, float]:
    """Brute force over the output: equity after every record, its deepest fall below a
    running peak (USDC and fraction) and the longest time under a peak (seconds)."""
    pf = Portfolio(cash=cash)
    peak, worst, worst_pct, under, longest = cash, 0.0, 0.0, None, 0
    for rec in out:
        if rec["type"] == "book" and rec["bids"] and rec["asks"]:
            pf.mark(rec["asset"], (rec["bids"][0][0] + rec["asks"][0][0]) / 2)
        elif rec["type"] == "order_filled":
            pf.apply_fill_record(rec)
        else:
            continue
        eq, ts = pf.equity(), rec["ts_event"]
        if eq >= peak - 1e-9:
            if under is not None:
                longest = max(longest, ts - under)
            peak, under = max(peak, eq), None
        else:
            under = ts if under is None else under
            worst, worst_pct = max(worst, peak - eq), max(worst_pct, (peak - eq) / peak)
    if under is not None:
        longest = max(longest, out[-1]["ts_event"] - under)
    return worst, worst_pct, longest / S


def test_a_fall_and_recovery_between_two_equity_samples_is_the_max_drawdown() -> None:
    # bought at 0.30; 10 s later the mid is 0.20, 10 s after that 0.31: all inside one
    # 60 s sample interval, so the sampled curve sees only the start and the end
    recs = [*pair(0.28, 0.30), *pair(0.19, 0.21, T0 + 10 * S), *pair(0.30, 0.32, T0 + 20 * S)]
    res, curve, out = buy_once(recs)
    assert res["fills"] == 1
    assert curve.equity == [100.0, pytest.approx(100.1)]  # the samples: no fall to see
    worst, worst_pct, longest = path_drawdown(out, 100.0)
    assert worst == pytest.approx(10 * (0.30 - 0.20))  # peak 100 (at cost) to 97 + 10 × 0.20
    assert res["max_drawdown"] == pytest.approx(worst)
    assert res["max_drawdown_pct"] == pytest.approx(worst_pct) and worst_pct == pytest.approx(0.01)
    assert res["max_drawdown_duration_s"] == longest == 10.0
    # the chart's drawdown panel shows the deepest point of each interval, not the sample's
    assert min(curve.drawdown) == pytest.approx(-worst)


def test_a_drawdown_never_recovered_lasts_until_the_end() -> None:
    recs = [*pair(0.28, 0.30), *pair(0.24, 0.26, T0 + 5 * S), *pair(0.20, 0.22, T0 + 125 * S)]
    res, _, out = buy_once(recs)
    worst, _, longest = path_drawdown(out, 100.0)
    assert res["max_drawdown"] == pytest.approx(worst) == pytest.approx(10 * (0.30 - 0.21))
    assert res["max_drawdown_duration_s"] == longest == 120.0


def test_the_path_drawdown_of_a_market_maker_run_is_the_brute_force_one(tmp_path: Path) -> None:
    data = sim_file(tmp_path / "d.ndjson", seed=4, records=6000)
    out: list[dict[str, Any]] = []
    cfg = BacktestConfig(data=(str(data),), strategy="mm", latency_us=20_000, seed=2,
                         policy=str(ROOT / "policies" / "market-maker.yaml"))
    res, curve = run_backtest(cfg, sink=out.append)
    assert res["fills"] > 20
    worst, worst_pct, longest = path_drawdown(out, cfg.initial_cash)
    sampled = max(p - e for p, e in zip(_running_max(curve.equity), curve.equity, strict=True))
    assert worst > sampled  # the samples alone would have flattered this run
    assert res["max_drawdown"] == pytest.approx(worst, rel=1e-9)
    assert res["max_drawdown_pct"] == pytest.approx(worst_pct, rel=1e-6)
    assert res["max_drawdown_duration_s"] == pytest.approx(longest)
    assert min(curve.drawdown) == pytest.approx(-worst, rel=1e-9)


def _running_max(xs: list[float]) -> list[float]:
    out, top = [], float("-inf")
    for x in xs:
        top = max(top, x)
        out.append(top)
    return out


UNDEFINED_WITHOUT_TRADES = ("sharpe", "sortino", "calmar", "profit_factor", "win_rate",
                            "fill_ratio", "order_fill_ratio", "avg_trade_pnl")


def test_figures_with_nothing_to_measure_are_null_not_zero(tmp_path: Path) -> None:
    # five minutes of books and no order: no return, no trade, nothing to divide by
    recs = [r for i in range(6) for r in pair(0.40, 0.42, T0 + i * 60 * S)]
    data = tmp_path / "quiet.ndjson"
    data.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs))
    res, _ = run_backtest(BacktestConfig(data=(str(data),), strategy="noop"))
    for key in UNDEFINED_WITHOUT_TRADES:
        assert res[key] is None, key
    # measured, and nothing happened: 0
    assert res["max_drawdown"] == 0.0 and res["max_drawdown_duration_s"] == 0.0
    assert res["volatility"] == 0.0 and res["cagr"] is None  # five minutes: no annual rate
    assert res["net_pnl"] == 0.0 and res["fills"] == 0
    proc = run_agkit("backtest", "--data", str(data), "-s", "noop")
    assert proc.returncode == 0, proc.stderr
    (line,) = parse_ndjson(proc.stdout)
    assert line["sortino"] is None and line["profit_factor"] is None


def test_a_run_without_losses_has_no_sortino_or_profit_factor() -> None:
    # the mid only rises after the buy: every sampled return is >= 0
    recs = [r for i in range(5) for r in pair(0.28 + 0.02 * i, 0.30 + 0.02 * i, T0 + i * 60 * S)]
    res, curve, _ = buy_once(recs)
    assert len(curve.equity) >= 4 and curve.equity == sorted(curve.equity)
    assert res["sharpe"] is not None and res["sharpe"] > 0
    assert res["sortino"] is None and res["profit_factor"] is None
    assert res["max_drawdown"] == 0.0 and res["calmar"] is None


def test_an_annual_growth_rate_needs_a_day_of_data() -> None:
    from agkit.risk import perf

    hour = 3600 * S
    # bought at 0.30, then the mid drifts up and down hour by hour for two days
    recs = [r for h in range(49) for r in pair(0.28 + 0.01 * (h % 5), 0.30 + 0.01 * (h % 5), T0 + h * hour)]
    two_days, curve, _ = buy_once(recs, sample_s=3600.0)
    a_day_less_an_hour, _, _ = buy_once([r for r in recs if r["ts_event"] < T0 + 24 * hour], sample_s=3600.0)
    expected = perf.metrics(perf.returns_from_equity(curve.equity), periods_per_year=8760.0)["cagr"]
    assert two_days["cagr"] == pytest.approx(expected) and two_days["cagr"] is not None
    assert two_days["calmar"] == pytest.approx(expected / two_days["max_drawdown_pct"])
    assert a_day_less_an_hour["cagr"] is None and a_day_less_an_hour["calmar"] is None
    assert a_day_less_an_hour["sharpe"] is not None  # the other figures are there


def test_a_sweep_ranks_null_figures_last() -> None:
    rows = [{"params": {"a": i}, "sortino": v} for i, v in enumerate((None, 1.5, None, 3.0))]
    assert [r["params"]["a"] for r in sort_results(rows, "sortino")] == [3, 1, 0, 2]
    rows = [{"params": {"a": i}, "max_drawdown_duration_s": v} for i, v in enumerate((None, 9.0, 2.0))]
    assert [r["params"]["a"] for r in sort_results(rows, "max_drawdown_duration_s")] == [2, 1, 0]


def test_the_table_shows_a_null_figure_as_a_dash() -> None:
    from agkit.cli.backtest import _table

    text = _table([("sortino", None), ("sharpe", 1.25), ("fills", 0)])
    assert text.splitlines() == ["sortino  –", "sharpe   1.25", "fills    0"]
