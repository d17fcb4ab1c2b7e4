"""agkit backtest and agkit strategy end to end, as real subprocesses."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from agkit.backtest.engine import BacktestConfig, run_backtest
from tests.backtest.pipes import pipe_and_backtest
from tests.helpers import ROOT, agkit_argv, agkit_env, ndjson, parse_ndjson, run_agkit, sim_file
from tests.strategy.util import MKT, NO, T0, YES, pair

POLICY = str(ROOT / "policies" / "market-maker.yaml")


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sim_file(tmp_path_factory.mktemp("data") / "day.ndjson", seed=5, records=4000)


def fills_of(data: bytes) -> list[dict[str, Any]]:
    out = []
    for rec in parse_ndjson(data):
        if rec["type"] == "order_filled":
            rec.pop("ts_init", None)
            rec.pop("_fb", None)
            out.append(rec)
    return out


def test_backtest_is_byte_identical_and_complete(day: Path, tmp_path: Path) -> None:
    args = ("backtest", "--data", str(day), "-s", "mm", "-p", POLICY, "--latency-us", "20000",
            "--seed", "3", "--jitter-us", "5000")
    a = run_agkit(*args, "-o", str(tmp_path / "a.ndjson"), "--chart", str(tmp_path / "c.html"))
    b = run_agkit(*args, "-o", str(tmp_path / "b.ndjson"))
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout
    assert (tmp_path / "a.ndjson").read_bytes() == (tmp_path / "b.ndjson").read_bytes()
    (res,) = parse_ndjson(a.stdout)
    assert res["type"] == "backtest_result" and res["strategy"] == "mm"
    for key in ("realized_pnl", "unrealized_pnl", "fees", "volume", "fill_ratio", "inventory",
                "sharpe", "sortino", "calmar", "max_drawdown", "win_rate", "pnl_by_day"):
        assert key in res
    assert res["fills"] > 0 and 0 < res["fill_ratio"] <= 1
    assert res["final_equity"] == pytest.approx(res["initial_cash"] + res["net_pnl"], abs=1e-6)
    html = (tmp_path / "c.html").read_text()
    assert "<svg" in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<script" not in html


def test_backtest_fees_and_resolution_payout() -> None:
    """A taker buy of YES at 0.30 with fees, then YES wins: cash + shares × 1."""
    from agkit.strategy.api import Strategy

    class BuyOnce(Strategy):
        name = "buyonce"

        def on_book(self, book: dict[str, Any]) -> None:
            if book["asset"] == YES and self.ctx.counters.submitted == 0:
                self.quote(YES, "buy", 0.30, 10.0, tif="FAK")

    import agkit.backtest.engine as eng

    recs = pair(0.28, 0.30)
    recs.append({"type": "market_resolved", "ts_event": T0 + 10, "ts_init": T0 + 10, "venue": "sim",
                 "market": MKT, "winning_asset": YES, "assets": [YES, NO]})
    cfg = BacktestConfig(data=(), strategy="noop", fee_rate=0.1, initial_cash=100.0)
    orig = eng.build_stages

    def stages(c: BacktestConfig) -> Any:
        st, i = orig(c)
        st[0] = BuyOnce()
        return st, i

    eng.build_stages = stages  # type: ignore[assignment]
    try:
        res, _ = run_backtest(cfg, records=recs)
    finally:
        eng.build_stages = orig  # type: ignore[assignment]
    fee = round(10 * 0.1 * 0.3 * 0.7, 6)
    assert res["fills"] == 1 and res["fees"] == pytest.approx(fee)
    assert res["final_equity"] == pytest.approx(100 - 3.0 - fee + 10.0)
    assert res["realized_pnl"] == pytest.approx(7.0) and res["inventory"] == {}
    assert res["resolutions"] == 1 and res["win_rate"] == 1.0


def test_grid_sorted_and_walk_forward(day: Path) -> None:
    proc = run_agkit("backtest", "--data", str(day), "-s", "mm", "--grid", "quote_size=10,50",
                     "--grid", "gamma=0.05,0.5", "--metric", "net_pnl", "-j", "2")
    assert proc.returncode == 0, proc.stderr
    rows = parse_ndjson(proc.stdout)
    assert len(rows) == 4 and [r["rank"] for r in rows] == [1, 2, 3, 4]
    pnl = [r["net_pnl"] for r in rows]
    assert pnl == sorted(pnl, reverse=True)
    assert {(r["params"]["quote_size"], r["params"]["gamma"]) for r in rows} == {
        (10.0, 0.05), (10.0, 0.5), (50.0, 0.05), (50.0, 0.5)}
    one = run_agkit("backtest", "--data", str(day), "-s", "mm", "-P", "quote_size=10", "-P", "gamma=0.5")
    (single,) = parse_ndjson(one.stdout)
    match = next(r for r in rows if r["params"] == {"gamma": 0.5, "quote_size": 10.0})
    match.pop("rank")
    assert match == single  # a grid point is exactly the single run
    wf = run_agkit("backtest", "--data", str(day), "-s", "mm", "--grid", "quote_size=10,50",
                   "--walk-forward", "2", "-j", "1")
    assert wf.returncode == 0, wf.stderr
    folds = parse_ndjson(wf.stdout)
    assert [f["fold"] for f in folds] == [1, 2]
    assert folds[0]["test_from_us"] == folds[0]["train_to_us"]
    assert folds[0]["test"]["from_us"] >= folds[0]["test_from_us"]


def test_backtest_usage_errors(day: Path) -> None:
    for args, msg in (
        (("-P", "nope=1"), b"unknown parameter nope"),
        (("-P", "quote_size=abc"), b"quote_size: 'abc' is not a number"),
        (("-s", "zzz"), b"unknown strategy"),
    ):
        proc = run_agkit("backtest", "--data", str(day), *args)
        assert proc.returncode == 2, proc.stderr
        assert msg in proc.stderr and b"Traceback" not in proc.stderr
    proc = run_agkit("backtest", "--data", "/nonexistent.ndjson")
    assert proc.returncode == 2 and b"no such file" in proc.stderr


def test_strategy_cli_params_help_and_plugins(tmp_path: Path) -> None:
    proc = run_agkit("strategy", "mm", "--help")
    assert proc.returncode == 0 and b"quote_size=100.0" in proc.stdout and b"kappa" in proc.stdout
    proc = run_agkit("strategy", "--list-params", "arb")
    assert b"min_edge=0.001" in proc.stdout
    proc = run_agkit("strategy", "mm", "-P", "bogus=1")
    assert proc.returncode == 2 and b"unknown parameter bogus" in proc.stderr
    yaml = tmp_path / "p.yaml"
    yaml.write_text("quote_size: 7\n")
    data = ndjson(pair(0.40, 0.46))
    proc = run_agkit("strategy", "mm", "--params", str(yaml), input=data)
    subs = [r for r in parse_ndjson(proc.stdout) if r["type"] == "submit_order"]
    assert subs and all(r["size"] == 7.0 for r in subs)
    # the example plug-in, from its file
    example = ROOT / "examples" / "strategies" / "mean_reversion.py"
    proc = run_agkit("strategy", "--file", f"{example}:MeanReversion", "--list-params")
    assert proc.returncode == 0 and b"period=50" in proc.stdout
    # an installed plug-in through the agkit.strategies entry point group
    site = tmp_path / "site"
    (site / "myplug").mkdir(parents=True)
    (site / "myplug" / "__init__.py").write_text(
        "from agkit.strategy import Strategy\n"
        "class Hello(Strategy):\n"
        "    name = 'hello'\n"
        "    def on_book(self, book):\n"
        "        if not self.ctx.orders:\n"
        "            self.quote(book['asset'], 'buy', 0.1, 5)\n"
    )
    dist = site / "myplug-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myplug\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[agkit.strategies]\nhello = myplug:Hello\n")
    env = agkit_env()
    env["PYTHONPATH"] = str(site) + os.pathsep + env["PYTHONPATH"]
    proc = subprocess.run(agkit_argv("strategy", "hello"), input=ndjson(pair(0.4, 0.46)),
                          capture_output=True, env=env, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    subs = [r for r in parse_ndjson(proc.stdout) if r["type"] == "submit_order"]
    assert subs[0]["id"] == "hello-1" and subs[0]["price"] == 0.1
    listing = subprocess.run(agkit_argv("strategy", "--list"), capture_output=True, env=env, cwd=ROOT)
    assert b"hello\tmyplug:Hello" in listing.stdout


@pytest.mark.slow
def test_pipe_in_lockstep_gives_the_backtest_fills(day: Path, tmp_path: Path) -> None:
    """feed replay | strategy mm --lockstep --merge FIFO | risk-check | exec --feedback FIFO
    gives exactly the fills of `agkit backtest` on the same data and seed."""
    knobs = ["--latency-us", "20000", "--seed", "7", "--jitter-us", "3000", "--fee-rate", "0.02"]
    pipe_out, bt_out = pipe_and_backtest(day, POLICY, knobs, tmp_path)
    pipe_fills = fills_of(pipe_out)
    bt_fills = fills_of(bt_out)
    assert len(bt_fills) > 10
    assert pipe_fills == bt_fills
    # the orders too, in the same order
    pipe_orders = [r for r in parse_ndjson(pipe_out) if r["type"] == "submit_order"]
    bt_orders = [r for r in parse_ndjson(bt_out) if r["type"] == "submit_order"]
    assert pipe_orders == bt_orders


def test_lockstep_without_exec_feedback_times_out_clearly(tmp_path: Path) -> None:
    proc = run_agkit("strategy", "mm", "--lockstep", "--merge", str(tmp_path / "fb"),
                     "--lockstep-timeout", "0.5", input=ndjson(pair(0.40, 0.46)))
    assert proc.returncode == 1
    assert b"is `agkit exec --feedback" in proc.stderr and b"Traceback" not in proc.stderr
    proc = run_agkit("strategy", "mm", "--lockstep", input=b"")
    assert proc.returncode == 2 and b"exactly one --merge" in proc.stderr


def test_backtest_library_matches_cli(day: Path) -> None:
    res, curve = run_backtest(BacktestConfig(data=(str(day),), strategy="mm"))
    proc = run_agkit("backtest", "--data", str(day), "-s", "mm")
    assert orjson.loads(proc.stdout) == res
    assert len(curve.times) == len(curve.equity) >= 2
