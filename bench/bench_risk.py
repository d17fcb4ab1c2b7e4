"""Risk benchmarks: the risk-check stage through a pipe and in process, and VaR.

python bench/bench_risk.py [--orders N]

- risk-check orders/s through a real pipe with every policy type on (all orders
  approved, so each is checked by every policy), beside `agkit pass` on the same file.
  The stream is a quoting bot's: each order is later canceled by exec (order_canceled,
  also consumed by risk-check), a book per asset every 100 orders.
- in-process per-order cost p50 of RiskCheck.on_record, beside a trivial stage.
- historical VaR on 1,000 returns and Monte Carlo VaR with 100k paths, beside plain Python.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from bench.common import best_of, percentiles, report  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "AGKIT_CONFIG": "/nonexistent"}
AGKIT = [sys.executable, "-m", "agkit"]
T0 = 1_790_000_000_000_000
OPEN_DEPTH = 20

# every policy type on, limits generous enough that the stream's orders all pass
POLICY = """\
name: bench
events:
  ev: [m0, m1]
policies:
  - type: KillSwitch
    enabled: false
  - type: PositionLimit
    max_size: 1.0e12
    include_open_orders: false
  - type: PositionLimit
    name: MarketPositionLimit
    scope: market
    max_size: 1.0e12
    include_open_orders: false
  - type: PositionLimit
    name: EventPositionLimit
    event: ev
    max_size: 1.0e12
    include_open_orders: false
  - type: InventoryLimit
    max_value_usd: 1.0e12
  - type: InventoryLimit
    name: WorstCaseLimit
    basis: worst_case
    max_value_usd: 1.0e12
  - type: OrderLimit
    max_size: 1000
    max_notional_usd: 1000
    min_size: 1
  - type: PriceBand
    max_deviation: 0.1
  - type: OpenOrderLimit
    max_orders: 100000000
    max_per_asset: 100000000
  - type: RateLimit
    max_orders: 100000000
    window_ms: 1000
  - type: LossLimit
    max_daily_loss_usd: 1.0e9
    max_drawdown_usd: 1.0e9
  - type: StaleData
    max_age_ms: 60000
  - type: ReduceOnly
    enabled: true
    market_id: not-traded
"""


def stream(n: int) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for i in range(n):
        ts = T0 + i
        if i % 100 == 0:
            for k in range(4):
                out.append(
                    {"type": "book", "ts_event": ts, "ts_init": ts, "venue": "sim", "market": f"m{k % 2}",
                     "asset": f"a{k}", "bids": [[0.48, 100.0]], "asks": [[0.52, 100.0]], "tick_size": 0.01,
                     "min_size": 5.0}
                )
        out.append(
            {"type": "submit_order", "ts_event": ts, "ts_init": ts, "id": f"o{i}", "strategy": "bench",
             "venue": "sim", "market": f"m{i % 2}", "asset": f"a{i % 4}", "side": "buy" if i % 2 else "sell",
             "price": 0.5, "size": 10.0, "tif": "GTC", "post_only": False, "expire_at": None}
        )
        if i >= OPEN_DEPTH:  # exec's acknowledgement: a quoting bot keeps ~20 orders open
            out.append({"type": "order_canceled", "ts_event": ts, "ts_init": ts, "id": f"o{i - OPEN_DEPTH}",
                        "venue_order_id": f"v{i - OPEN_DEPTH}", "reason": "requote"})
    return out


def timed(cmd: list[str], stdin_path: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds user+sys) of one run: CPU time is what a busy machine
    disturbs least."""
    with open(stdin_path, "rb") as src:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=src, stdout=subprocess.DEVNULL, env=ENV)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - t0
    assert os.waitstatus_to_exitcode(status) == 0, cmd
    return elapsed, usage.ru_utime + usage.ru_stime


def pipe(n: int, tmp: Path, policy: Path) -> None:
    data = tmp / "orders.ndjson"
    recs = stream(n)
    data.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs))
    cmd = [*AGKIT, "risk-check", "-p", str(policy), "--clock", "event", "--metrics-interval-ms", "0"]
    with open(data, "rb") as src:
        check = subprocess.run(cmd, stdin=src, capture_output=True, env=ENV, check=True)
    assert b"order_denied" not in check.stdout, check.stdout[:2000]  # every order took the full path
    runs = [timed(cmd, data) for _ in range(3)]
    base = [timed([*AGKIT, "pass"], data) for _ in range(3)]
    risk, risk_cpu = min(w for w, _ in runs), min(c for _, c in runs)
    report(
        f"risk-check stage, all policies, {n // 1000}k orders via pipe", n / risk, "orders/s", "agkit pass",
        n / min(w for w, _ in base), records_per_s=len(recs) / risk, orders_per_cpu_s=n / risk_cpu,
        baseline_orders_per_cpu_s=n / min(c for _, c in base),
    )


def in_process(n: int, policy: Path) -> None:
    from agkit.clock import EventClock
    from agkit.risk.policy import load_policy
    from agkit.risk.stage import RiskCheck
    from agkit.stage import Context

    clock = EventClock(T0)
    st = RiskCheck(load_policy(policy), metrics_interval_ms=0, signals=False, advance_clock=True)
    st.start(Context(clock, lambda r: None, lambda m: None))
    recs = stream(n)
    pc = time.perf_counter_ns
    on = st.on_record
    samples: list[float] = []
    for rec in recs:
        if rec["type"] == "submit_order":
            t = pc()
            res = on(rec)
            samples.append(pc() - t)
            assert res is not None and next(iter(res)) is rec
        else:
            on(rec)

    def trivial(rec: dict[str, object]) -> tuple[dict[str, object]]:
        return (rec,)

    base: list[float] = []
    for rec in recs:
        t = pc()
        trivial(rec)
        base.append(pc() - t)
    (p50,) = percentiles(samples, 50)
    (b50,) = percentiles(base, 50)
    report("risk-check in-process per-order cost p50, all policies", p50 / 1000, "µs", "trivial on_record", b50 / 1000, higher_is_better=False)


def var_bench() -> None:
    import numpy as np

    from agkit.risk.var import historical_var, monte_carlo_var

    rng = np.random.default_rng(1)
    rets = rng.normal(0.0005, 0.01, 1000)
    as_list = rets.tolist()

    def py_hist() -> float:
        s = sorted(as_list)
        h = (len(s) - 1) * 0.01
        lo = math.floor(h)
        return -(s[lo] + (h - lo) * (s[lo + 1] - s[lo]))

    reps = 200
    t = best_of(lambda: [historical_var(rets, 0.99) for _ in range(reps)], 5) / reps
    tb = best_of(lambda: [py_hist() for _ in range(reps)], 5) / reps
    report("historical VaR, 1,000 returns", t * 1e6, "µs", "plain Python sort + interpolate", tb * 1e6, higher_is_better=False)

    def py_mc() -> float:
        lr = [math.log1p(x) for x in as_list]
        m = sum(lr) / len(lr)
        s = math.sqrt(sum((x - m) ** 2 for x in lr) / (len(lr) - 1))
        g = random.Random(0).gauss
        sims = sorted(math.expm1(m + s * g(0.0, 1.0)) for _ in range(100_000))
        return -sims[int(0.01 * len(sims))]

    t = best_of(lambda: monte_carlo_var(rets, 0.99, paths=100_000, seed=0), 5)
    tb = best_of(py_mc, 2)
    report("Monte Carlo VaR, 100k paths", t * 1e3, "ms", "plain Python random.gauss loop", tb * 1e3, higher_is_better=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=300_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        policy = tmp / "bench-policy.yaml"
        policy.write_text(POLICY)
        pipe(args.orders, tmp, policy)
        in_process(min(args.orders, 200_000), policy)
    var_bench()


if __name__ == "__main__":
    main()
