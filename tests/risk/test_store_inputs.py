"""`agkit risk var|stress|greeks|portfolio|perf --db URL`: inputs read from a real store
(SQLite, and the real PostgreSQL) filled by `agkit store ingest`, compared with the
same records given on stdin, and daily returns from the PnL rollup against an
independent average-cost computation."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agkit.exit_codes import ExitCode
from agkit.risk import perf
from tests.helpers import fresh_store, ndjson, parse_ndjson, run_agkit
from tests.risk.builders import T0, book, fill

DAY = 86_400_000_000


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty store: an SQLite file, or a schema of its own on the real PostgreSQL."""
    with fresh_store(request, request.param, tmp_path / "risk.db") as url:
        yield url


def ingest(url: str, recs: list[dict[str, Any]]) -> None:
    proc = run_agkit("store", "ingest", "--db", url, input=ndjson(recs))
    assert proc.returncode == 0, proc.stderr


def results(proc: Any) -> list[dict[str, Any]]:
    """Output records without ts_init (the time of the run)."""
    assert proc.returncode == 0, proc.stderr
    return [{k: v for k, v in r.items() if k != "ts_init"} for r in parse_ndjson(proc.stdout)]


def trading(strategy: str = "s1") -> list[dict[str, Any]]:
    """Fills over four days (one day without any) on two markets, and marks."""
    fills = [
        fill("o1", "buy", 0.40, 100.0, "a1", T0, "m1"),
        fill("o2", "buy", 0.30, 50.0, "b1", T0 + 1, "m2"),
        fill("o3", "sell", 0.60, 40.0, "a1", T0 + DAY, "m1"),
        fill("o4", "sell", 0.20, 20.0, "b1", T0 + 3 * DAY, "m2"),
        fill("o5", "buy", 0.50, 30.0, "a1", T0 + 3 * DAY + 5, "m1"),
    ]
    for f in fills:
        f["strategy"] = strategy
    return [*fills, book("a1", 0.55, 0.57, T0 + 2, "m1"), book("b1", 0.25, 0.27, T0 + 3 * DAY + 9, "m2")]


def test_stress_from_store_fills_equals_stdin(store_url: str) -> None:
    recs = trading()
    ingest(store_url, recs)
    from_store = results(run_agkit("risk", "stress", "--db", store_url))
    assert from_store == results(run_agkit("risk", "stress", input=ndjson(recs)))
    report = from_store[-1]
    # both positions long: the worst case is every price gapping to 0
    held: dict[str, float] = {}
    for r in recs:
        if r["type"] == "order_filled":
            held[r["asset"]] = held.get(r["asset"], 0.0) + (r["size"] if r["side"] == "buy" else -r["size"])
    mids = {r["asset"]: (r["bids"][0][0] + r["asks"][0][0]) / 2 for r in recs if r["type"] == "book"}
    assert report["type"] == "risk_stress_report"
    assert report["max_loss_usd"] == pytest.approx(sum(q * mids[a] for a, q in held.items()))


def test_stress_from_store_positions(store_url: str) -> None:
    positions = [
        {"type": "position", "ts_event": T0, "ts_init": T0, "venue": "sim", "market": "m1", "asset": "a1",
         "size": 60.0, "avg_price": 0.4, "realized_pnl": 0.0, "fees": 0.0},
        {"type": "position", "ts_event": T0 + 5, "ts_init": T0 + 5, "venue": "sim", "market": "m2", "asset": "b1",
         "size": 30.0, "avg_price": 0.3, "realized_pnl": 0.0, "fees": 0.0},
    ]
    marks = [book("a1", 0.55, 0.57, T0 + 2, "m1")]
    ingest(store_url, positions + marks)
    got = results(run_agkit("risk", "stress", "--db", store_url, "--from-store", "positions", "--no-named"))
    want = results(run_agkit("risk", "stress", "--no-named", input=ndjson(positions + marks)))
    assert got == want and len(got) > 1


def test_var_and_portfolio_from_store_records_equal_stdin(store_url: str) -> None:
    rng = np.random.default_rng(7)
    rets = [
        {"type": "return", "ts_event": T0 + i * DAY, "ts_init": T0, "asset": asset, "value": float(x)}
        for asset in ("a1", "b1")
        for i, x in enumerate(rng.normal(0.0, 0.02, 120))
    ]
    equity = [{"type": "equity", "ts_event": T0 + i * DAY, "ts_init": T0, "series": "acct", "value": 1000.0 + 3 * i}
              for i in range(60)]
    everything = rets + equity + trading()
    ingest(store_url, everything)
    var_args = ["risk", "var", "--series", "acct", "-m", "historical", "-m", "parametric"]
    got = results(run_agkit(*var_args, "--db", store_url))
    assert got == results(run_agkit(*var_args, input=ndjson(everything)))
    assert got[0]["value"] == pytest.approx(1000.0 + 3 * 59)  # the last equity point
    got = results(run_agkit("risk", "portfolio", "--db", store_url, "--from-store", "equity", "--from-store", "fills"))
    want = results(run_agkit("risk", "portfolio", input=ndjson(everything)))
    assert got == want and got[0]["assets"] == ["a1", "b1"]
    assert {r["asset"] for r in got if r["type"] == "risk_contribution" and r["value_usd"] > 0} == {"a1", "b1"}


def test_greeks_from_store_options(store_url: str) -> None:
    options = [
        {"type": "option", "ts_event": T0 + i, "ts_init": T0, "spot": 97000.0, "strike": k, "expiry_years": 0.1,
         "vol": 0.5, "right": "call", "kind": "binary", "quantity": 10.0, "underlying": "BTC"}
        for i, k in enumerate([95000.0, 100000.0])
    ]
    ingest(store_url, options)
    got = results(run_agkit("risk", "greeks", "--db", store_url))
    assert got == results(run_agkit("risk", "greeks", input=ndjson(options)))
    assert [r["type"] for r in got] == ["risk_greeks", "risk_greeks", "risk_greeks_total"]


def _daily_net_pnl(recs: list[dict[str, Any]]) -> dict[int, float]:
    """Realized PnL per UTC day, average cost, written out independently of agkit."""
    size: dict[str, float] = {}
    avg: dict[str, float] = {}
    out: dict[int, float] = {}
    for r in sorted((r for r in recs if r["type"] == "order_filled"), key=lambda r: r["ts_event"]):
        a, q = r["asset"], r["size"] if r["side"] == "buy" else -r["size"]
        s, p = size.get(a, 0.0), avg.get(a, 0.0)
        day = r["ts_event"] // DAY * DAY
        if s == 0 or (s > 0) == (q > 0):  # opening or adding
            avg[a] = (abs(s) * p + abs(q) * r["price"]) / (abs(s) + abs(q))
        else:  # closing (these fills never flip a position)
            out[day] = out.get(day, 0.0) + abs(q) * (r["price"] - p) * (1 if s > 0 else -1)
        size[a] = s + q
        out.setdefault(day, 0.0)
        out[day] -= r["fee"]
    return out


def test_perf_and_var_from_daily_pnl(store_url: str) -> None:
    recs = trading()
    ingest(store_url, recs)
    proc = run_agkit("store", "rollup", "--db", store_url)
    assert proc.returncode == 0, proc.stderr
    capital = 1000.0
    daily = _daily_net_pnl(recs)
    first = min(daily)
    equity = [capital]
    for day in range(first, max(daily) + 1, DAY):
        equity.append(equity[-1] + daily.get(day, 0.0))
    want = [b / a - 1.0 for a, b in itertools.pairwise(equity)]
    assert len(want) == 4 and want[2] == 0.0  # the quiet day is a period with no change
    (got,) = results(run_agkit("risk", "perf", "--db", store_url, "--from-store", "pnl", "--capital", str(capital),
                               "--periods-per-year", "365"))
    stats = perf.metrics(want, 365.0, 0.0, 0.0, None)
    assert got["series"] is None and got["n"] == 4
    for key in ("total_return", "sharpe", "max_drawdown", "win_rate"):
        assert got[key] == pytest.approx(stats[key]), key
    (var_rec,) = results(run_agkit("risk", "var", "--db", store_url, "--from-store", "pnl", "--capital", str(capital),
                                   "-m", "historical", "-c", "0.9"))
    from agkit.risk.var import historical_var

    assert var_rec["var"] == pytest.approx(historical_var(want, 0.9, equity[-1]))


def test_store_usage_errors(store_url: str) -> None:
    ingest(store_url, trading())
    proc = run_agkit("risk", "perf", "--db", store_url, "--from-store", "pnl")
    assert proc.returncode == ExitCode.USAGE and b"--capital" in proc.stderr
    proc = run_agkit("risk", "perf", "--db", store_url, "--from-store", "pnl", "--capital", "100")
    assert proc.returncode == ExitCode.USAGE and b"agkit store rollup" in proc.stderr
