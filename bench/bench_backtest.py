"""Backtest benchmarks: throughput of `agkit backtest` and grid-sweep scaling.

python bench/bench_backtest.py [--records N] [--grid-records N]

Data: `feed sim` (seed 11, 3 markets) written to a temporary NDJSON file, so the figures
include reading and decoding the file as a real backtest does. Measured in-process with
`agkit.backtest.engine.run_backtest`:

* market records/s of mm → risk-check (policies/market-maker.yaml) → paper exec with the
  queue model and 50 ms order latency, beside the same chain with the do-nothing `noop`
  strategy (the cost of the data path, risk-check and exec alone); best of 3 runs, by
  wall time (`value`) and by the process's CPU time (`cpu_records_s`, steadier when
  others share the machine);
* the floor under any backtest, in CPU time: the data file read and decoded
  (`engine._file_records`) and pushed through a `Chain` of three stages that only forward,
  beside the reading and decoding alone;
* a 4-point `--grid` sweep on 1 process vs 2 processes (wall time; the machine is
  shared, so the CPU seconds of the run are reported beside).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agkit.backtest.engine import BacktestConfig, BadInput, _file_records, run_backtest  # noqa: E402
from agkit.backtest.sweep import run_grid  # noqa: E402
from agkit.clock import EventClock  # noqa: E402
from agkit.feed.sim import SimConfig, Simulator  # noqa: E402
from agkit.runner import Chain  # noqa: E402
from agkit.stage import Stage  # noqa: E402
from agkit.stream import OnError  # noqa: E402
from bench.common import report  # noqa: E402

POLICY = str(ROOT / "policies" / "market-maker.yaml")


def make_data(path: Path, n: int) -> int:
    sim = Simulator(SimConfig(seed=11, markets=3, max_records=n, metrics_every_s=0))
    count = 0
    with open(path, "wb") as fh:
        for rec in sim.records():
            fh.write(orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE))
            count += 1
    return count


def cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime + ch.ru_utime + ch.ru_stime


def rate(cfg: BacktestConfig, n: int, repeat: int) -> tuple[float, float, int]:
    """(records/s of wall time, records/s of this process's CPU time, fills): the best
    of `repeat` runs each. On a shared machine the CPU figure is the steadier one."""
    best = best_cpu = float("inf")
    fills = 0
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        res, _ = run_backtest(cfg)
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
        fills = res["fills"]
    return n / best, n / best_cpu, fills


class Forward(Stage):
    name = "forward"

    def on_record(self, rec: dict[str, Any]) -> tuple[dict[str, Any]]:
        return (rec,)


def best_cpu_rate(fn: Callable[[], None], n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        c0 = time.process_time()
        fn()
        best = min(best, time.process_time() - c0)
    return n / best


def floor(path: Path, n: int, repeat: int) -> None:
    """What a backtest costs before any strategy, risk or venue work: read + decode, and
    the same through a Chain of three forwarding stages with exec's feedback loop."""

    def read() -> None:
        for _ in _file_records(str(path), BadInput(OnError.SKIP), None):
            pass

    def chained() -> None:
        chain = Chain([Forward(), Forward(), Forward()], feedback_from=2, clock=EventClock(0))
        for _ in chain.process(_file_records(str(path), BadInput(OnError.SKIP), None)):
            pass

    report(
        f"backtest floor: data read + decoded + 3 forwarding stages in a Chain, {n} sim records",
        best_cpu_rate(chained, n, repeat),
        "records/cpu-s",
        "data read + decoded alone",
        best_cpu_rate(read, n, repeat),
        target_of_full_backtest=300_000,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--grid-records", type=int, default=30_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "day.ndjson"
        n = make_data(data, args.records)
        common = dict(data=(str(data),), policy=POLICY, latency_us=50_000, seed=1)
        mm_rate, mm_cpu, fills = rate(BacktestConfig(strategy="mm", **common), n, args.repeat)  # type: ignore[arg-type]
        noop_rate, noop_cpu, _ = rate(BacktestConfig(strategy="noop", **common), n, args.repeat)  # type: ignore[arg-type]
        report(
            f"backtest mm+risk+paper exec (queue, 50 ms latency), {n} sim records",
            mm_rate,
            "records/s",
            "same chain, do-nothing strategy",
            noop_rate,
            fills=fills,
            target=300_000,
            cpu_records_s=round(mm_cpu),
            cpu_records_s_baseline=round(noop_cpu),
        )
        floor(data, n, args.repeat)
        small = Path(tmp) / "grid.ndjson"
        g = make_data(small, args.grid_records)
        base = BacktestConfig(data=(str(small),), strategy="mm", policy=POLICY, latency_us=50_000)
        grid = {"quote_size": ["20", "50"], "gamma": ["0.05", "0.5"]}
        times = {}
        cpus = {}
        for jobs in (1, 2):
            c0, t0 = cpu(), time.perf_counter()
            run_grid(base, grid, "net_pnl", jobs)
            times[jobs] = time.perf_counter() - t0
            cpus[jobs] = cpu() - c0
        report(
            f"grid sweep, 4 points x {g} records, 2 processes",
            4 / times[2],
            "backtests/s",
            "1 process",
            4 / times[1],
            cpu_s_1=round(cpus[1], 2),
            cpu_s_2=round(cpus[2], 2),
        )


if __name__ == "__main__":
    main()
