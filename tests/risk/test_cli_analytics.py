"""The `agkit risk ...` commands as subprocesses: inputs, outputs, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agkit.exit_codes import ExitCode
from agkit.risk import var
from tests.helpers import ndjson, parse_ndjson, run_agkit
from tests.risk.builders import T0, book, fill

DAY = 86_400_000_000


def _returns(n: int = 300, seed: int = 1, series: str | None = None, asset: str | None = None) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    out = []
    for i, r in enumerate(rng.normal(0.0005, 0.01, n)):
        rec: dict[str, object] = {"type": "return", "ts_event": T0 + i * DAY, "ts_init": T0, "value": float(r)}
        if series:
            rec["series"] = series
        if asset:
            rec["asset"] = asset
        out.append(rec)
    return out


def test_var_command(tmp_path: Path) -> None:
    recs = _returns()
    proc = run_agkit("risk", "var", "-c", "0.99", "-m", "historical", "--value", "1000", "--horizon", "4", input=ndjson(recs))
    assert proc.returncode == 0, proc.stderr
    (out,) = parse_ndjson(proc.stdout)
    rets = [r["value"] for r in recs]
    assert out["type"] == "risk_var" and out["var"] == pytest.approx(var.historical_var(rets, 0.99, 1000, 4))
    assert out["cvar"] >= out["var"] and out["n"] == 300


def test_var_from_equity_uses_last_value_and_backtest() -> None:
    eq = [{"type": "equity", "ts_event": T0 + i * DAY, "ts_init": T0, "value": 1000 * 1.001**i} for i in range(80)]
    proc = run_agkit("risk", "var", "-m", "parametric", "--window", "30", "--backtest", input=ndjson(eq))
    assert proc.returncode == 0, proc.stderr
    recs = parse_ndjson(proc.stdout)
    types = [r["type"] for r in recs]
    assert types.count("risk_var") == 2 and types.count("risk_var_backtest") == 2
    assert types.count("risk_var_rolling") == 2 * (79 - 30)
    assert recs[0]["value"] == pytest.approx(1000 * 1.001**79)


def test_var_several_series_needs_choice() -> None:
    data = ndjson(_returns(50, 1, series="a") + _returns(50, 2, series="b"))
    proc = run_agkit("risk", "var", input=data)
    assert proc.returncode == ExitCode.USAGE and b"--series" in proc.stderr
    assert run_agkit("risk", "var", "--series", "b", input=data).returncode == 0


def test_var_skips_bad_lines_with_line_number() -> None:
    data = ndjson(_returns(40)) + b"{oops\n"
    proc = run_agkit("risk", "var", input=data)
    assert proc.returncode == 0 and b"line 41" in proc.stderr
    assert run_agkit("risk", "var", "--on-error", "fail", input=data).returncode == ExitCode.BAD_INPUT


def test_perf_command_with_benchmark() -> None:
    data = ndjson(_returns(100, 1, series="bot") + _returns(100, 2, series="btc"))
    proc = run_agkit("risk", "perf", "--benchmark", "btc", "--periods-per-year", "365", input=data)
    assert proc.returncode == 0, proc.stderr
    (rec,) = parse_ndjson(proc.stdout)
    assert rec["series"] == "bot" and rec["periods_per_year"] == 365
    for k in ("sharpe", "sortino", "calmar", "max_drawdown", "max_drawdown_duration", "win_rate", "profit_factor", "beta", "alpha", "tracking_error"):
        assert k in rec


def test_portfolio_command_with_fills_and_netting() -> None:
    data = _returns(60, 1, asset="yes1") + _returns(60, 2, asset="b")
    data += [
        fill("f1", asset="yes1", size=100, price=0.6),
        fill("f2", asset="no1", size=40, price=0.4),
        fill("f3", asset="b", market="m2", size=50, price=0.2),
        book(asset="yes1", bid=0.6, ask=0.6),
    ]
    proc = run_agkit("risk", "portfolio", input=ndjson(data))
    assert proc.returncode == 0, proc.stderr
    recs = parse_ndjson(proc.stdout)
    top = recs[0]
    assert top["type"] == "risk_portfolio" and top["assets"] == ["b", "yes1"]
    contrib = {r["asset"]: r for r in recs if r["type"] == "risk_contribution"}
    assert contrib["yes1"]["value_usd"] == pytest.approx(60.0) and contrib["b"]["value_usd"] == pytest.approx(10.0)
    assert sum(c["component"] for c in contrib.values()) == pytest.approx(top["volatility_usd"])
    netting = {r["market"]: r for r in recs if r["type"] == "risk_netting"}
    assert netting["m1"]["locked_sets"] == 40


def test_stress_command(tmp_path: Path) -> None:
    scen = tmp_path / "s.yaml"
    scen.write_text(
        "scenarios:\n  - name: half\n    shocks: {BTC: -0.5}\nasset_map:\n  a1: {factor: BTC, beta: 1}\nevents:\n  ev: [m1, m2]\n"
    )
    positions = [
        {"type": "position", "ts_event": T0, "ts_init": T0, "market": "m1", "asset": "a1", "size": 100, "avg_price": 0.5, "realized_pnl": 0, "fees": 0, "mark": 0.6, "outcome": "yes"},
        {"type": "position", "ts_event": T0, "ts_init": T0, "market": "m2", "asset": "a2", "size": 10, "avg_price": 0.5, "realized_pnl": 0, "fees": 0, "outcome": "yes"},
    ]
    proc = run_agkit("risk", "stress", "--scenarios", str(scen), "--map", "a2=SPY:2", input=ndjson(positions))
    assert proc.returncode == 0, proc.stderr
    recs = parse_ndjson(proc.stdout)
    by = {r["scenario"]: r for r in recs if r["type"] == "risk_stress"}
    assert by["half"]["impact_usd"] == pytest.approx(-30.0)
    assert by["2008 Financial Crisis"]["position_impacts"]["a2"] == pytest.approx(10 * (0.5 * (1 - 0.76) - 0.5))
    assert by["event ev resolves to m1"]["impact_usd"] == pytest.approx(100 * 0.4 - 10 * 0.5)
    assert recs[-1]["type"] == "risk_stress_report" and recs[-1]["max_loss_usd"] > 0


def test_stress_without_positions_is_a_usage_error() -> None:
    proc = run_agkit("risk", "stress", input=b"")
    assert proc.returncode == ExitCode.USAGE and b"no positions" in proc.stderr


def test_stress_bad_scenario_file_is_config_error(tmp_path: Path) -> None:
    scen = tmp_path / "s.yaml"
    scen.write_text("scenarios:\n  - name: x\n    shock: {BTC: -0.5}\n")
    pos = [{"type": "position", "ts_event": T0, "ts_init": T0, "market": "m", "asset": "a", "size": 1, "avg_price": 0.5, "realized_pnl": 0, "fees": 0}]
    proc = run_agkit("risk", "stress", "--scenarios", str(scen), input=ndjson(pos))
    assert proc.returncode == ExitCode.CONFIG and b"shock" in proc.stderr


def test_greeks_command_implied_vol() -> None:
    proc = run_agkit("risk", "greeks", "--spot", "97000", "--strike", "100000", "--expiry-days", "30", "--price", "0.35", "--rate", "0.04")
    assert proc.returncode == 0, proc.stderr
    (rec,) = parse_ndjson(proc.stdout)
    assert rec["price"] == pytest.approx(0.35) and 0 < rec["vol"] < 2 and rec["delta"] > 0


def test_greeks_from_option_records() -> None:
    opts = [
        {"type": "option", "ts_event": T0, "ts_init": T0, "spot": 100, "strike": 100, "expiry_years": 1, "vol": 0.2, "rate": 0.05, "kind": "vanilla", "quantity": 2},
        {"type": "option", "ts_event": T0, "ts_init": T0, "spot": 100, "strike": 100, "expiry_years": 1, "vol": 0.2, "rate": 0.05, "kind": "vanilla", "right": "put", "quantity": 2},
    ]
    proc = run_agkit("risk", "greeks", input=ndjson(opts))
    assert proc.returncode == 0, proc.stderr
    recs = parse_ndjson(proc.stdout)
    assert recs[-1]["type"] == "risk_greeks_total"
    assert recs[-1]["delta"] == pytest.approx(2 * (0.63683 + 0.63683 - 1), abs=1e-4)


def test_greeks_usage_errors() -> None:
    assert run_agkit("risk", "greeks", "--spot", "100", "--strike", "100", "--vol", "0.2").returncode == ExitCode.USAGE
    assert run_agkit("risk", "greeks", "--spot", "-1", "--strike", "100", "--vol", "0.2", "--expiry-days", "3").returncode == ExitCode.USAGE
