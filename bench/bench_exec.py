"""Exec benchmarks: the paper venue through the `agkit exec` stage, queue model on.

python bench/bench_exec.py [--records N]   (about a minute)

The stream is one market's books (10 levels a side) and trades, with a market maker
that keeps two post-only orders at the best bid and ask (so resting orders sit in the
queue model all the time), cancels and re-quotes them whenever the mid moves, and an
occasional marketable FAK order that walks the book. The machine is shared, so beside
the wall-clock figures the CPU seconds of the measured process are reported too.
Baselines run in the same invocation on the same data: `agkit pass` for the pipe,
a pass-through stage for the in-process per-record cost.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agkit.clock import EventClock  # noqa: E402
from agkit.exec.paper import PaperVenue  # noqa: E402
from agkit.exec.stage import ExecStage  # noqa: E402
from agkit.stage import Context, Stage  # noqa: E402
from bench.common import report  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "AGKIT_CONFIG": "/nonexistent"}
AGKIT = [sys.executable, "-m", "agkit"]
ASSET = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
MARKET = "0x5f65177b394277fd294cd75650044e32ba009a95022d88a0c1d565897d72f8f1"


def records(n: int, seed: int = 11) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    ts = 1_767_225_600_000_000
    mid = 50
    live: list[str] = []
    quoted = None
    for i in range(n):
        ts += rng.randint(50, 5000)
        roll = rng.random()
        base = {"ts_event": ts, "ts_init": ts + 40}
        if quoted != mid:  # the market maker re-quotes: cancel both, join best bid and ask
            quoted = mid
            for oid in live:
                out.append({"type": "cancel_order", **base, "id": oid})
            live = [f"b{i}", f"a{i}"]
            for oid, side, px in ((live[0], "buy", mid - 1), (live[1], "sell", mid + 1)):
                out.append(
                    {
                        "type": "submit_order",
                        **base,
                        "id": oid,
                        "strategy": "mm",
                        "venue": "polymarket",
                        "market": MARKET,
                        "asset": ASSET,
                        "side": side,
                        "price": px / 100,
                        "size": 20.0,
                        "tif": "GTC",
                        "post_only": True,
                    }
                )
        elif i % 997 == 0:  # a taker walking the book
            out.append(
                {
                    "type": "submit_order",
                    **base,
                    "id": f"t{i}",
                    "strategy": "taker",
                    "venue": "polymarket",
                    "market": MARKET,
                    "asset": ASSET,
                    "side": "buy",
                    "price": (mid + 3) / 100,
                    "size": 300.0,
                    "tif": "FAK",
                }
            )
        elif roll < 0.6:
            if rng.random() < 0.01:
                mid = min(90, max(10, mid + rng.choice([-1, 1])))
            out.append(
                {
                    "type": "book",
                    **base,
                    "venue": "polymarket",
                    "market": MARKET,
                    "asset": ASSET,
                    "bids": [[(mid - k) / 100, float(rng.randint(5, 900))] for k in range(1, 11)],
                    "asks": [[(mid + k) / 100, float(rng.randint(5, 900))] for k in range(1, 11)],
                    "tick_size": 0.01,
                    "min_size": 5,
                }
            )
        else:
            side = rng.choice(["buy", "sell"])
            px = mid + 1 if side == "buy" else mid - 1
            out.append(
                {
                    "type": "trade",
                    **base,
                    "venue": "polymarket",
                    "market": MARKET,
                    "asset": ASSET,
                    "price": px / 100,
                    "size": float(rng.randint(1, 300)),
                    "side": side,
                    "trade_id": f"x{i}",
                }
            )
    return out


def wall(cmd: list[str], data: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) of one run with stdin from data."""
    with open(data, "rb") as src:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, stdin=src, stdout=subprocess.DEVNULL, check=True, env=ENV)
        elapsed = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def best(cmd: list[str], data: Path, repeat: int = 3) -> tuple[float, float]:
    runs = [wall(cmd, data) for _ in range(repeat)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


class Pass(Stage):
    name = "pass"

    def on_record(self, rec: dict[str, Any]) -> tuple[dict[str, Any]]:
        return (rec,)


def in_process(recs: list[dict[str, Any]]) -> tuple[float, float, dict[str, int]]:
    """Best-of-3 seconds for ExecStage.on_record over decoded records, and for a pass stage."""

    def once(stage: Stage) -> tuple[float, int]:
        stage.start(Context(EventClock(0), lambda r: None, lambda m: None))
        on_record = stage.on_record
        emitted = 0
        t0 = time.process_time()  # CPU time: the machine is shared
        for rec in recs:
            out = on_record(rec)
            if out:
                emitted += len(out)  # type: ignore[arg-type]
        return time.process_time() - t0, emitted

    exec_best = min(once(ExecStage(PaperVenue(fee_rate=0.02)))[0] for _ in range(3))
    pass_best = min(once(Pass())[0] for _ in range(3))
    stage = ExecStage(PaperVenue(fee_rate=0.02))
    once(stage)
    counts = dict(stage.oms.counts)
    return exec_best, pass_best, counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=300_000)
    args = parser.parse_args()
    recs = records(args.records)
    n = len(recs)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "exec.ndjson"
        data.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs))
        exec_s, exec_cpu = best([*AGKIT, "exec", "--fee-rate", "0.02"], data)
        pass_s, pass_cpu = best([*AGKIT, "pass"], data)
        with open(data, "rb") as src:
            out = subprocess.run(
                [*AGKIT, "exec", "--fee-rate", "0.02"],
                stdin=src,
                capture_output=True,
                env=ENV,
                check=True,
            ).stdout
    fills = out.count(b'"type":"order_filled"')
    report(
        f"agkit exec --venue paper (queue model on), {n} records through a pipe, wall clock",
        n / exec_s,
        "records/s",
        "agkit pass",
        n / pass_s,
        fills=fills,
    )
    report(
        f"agkit exec --venue paper (queue model on), {n} records through a pipe, per CPU second",
        n / exec_cpu,
        "records/cpu-s",
        "agkit pass",
        n / pass_cpu,
    )
    exec_t, pass_t, counts = in_process(recs)
    report(
        "exec stage in process: CPU cost per record (ExecStage.on_record)",
        exec_t / n * 1e6,
        "µs/record",
        "pass-through stage on_record",
        pass_t / n * 1e6,
        higher_is_better=False,
        **counts,
    )


if __name__ == "__main__":
    main()
