"""Foundation benchmarks: pass-through throughput, pipe latency, stage start-up.

python bench/bench_stream.py [--records N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import percentiles, report  # noqa: E402
from bench.data import mixed_file  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "AGKIT_CONFIG": "/nonexistent"}
AGKIT = [sys.executable, "-m", "agkit"]


def wall(cmd: list[str], stdin_path: Path) -> float:
    with open(stdin_path, "rb") as src:
        t0 = time.perf_counter()
        subprocess.run(cmd, stdin=src, stdout=subprocess.DEVNULL, check=True, env=ENV)
        return time.perf_counter() - t0


def throughput(n: int, data: Path) -> None:
    best = {name: min(wall(cmd, data) for _ in range(3)) for name, cmd in {
        "agkit pass": [*AGKIT, "pass"],
        "cat": ["cat"],
    }.items()}
    rate = n / best["agkit pass"]
    report("pass-through stage, 1M mixed records", rate, "records/s", "cat", n / best["cat"])
    if shutil.which("jq"):
        jq = min(wall(["jq", "-c", "."], data) for _ in range(1))
        report("pass-through stage vs jq -c .", rate, "records/s", "jq -c .", n / jq)


def latency(samples: int = 2000) -> None:
    """One record at a time through three idle stages: write, then wait for it at the end."""

    def measure(cmds: list[list[str]]) -> list[float]:
        procs: list[subprocess.Popen[bytes]] = []
        stdin = subprocess.PIPE
        for cmd in cmds:
            p = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, env=ENV)
            procs.append(p)
            stdin = p.stdout  # type: ignore[assignment]
        head, tail = procs[0], procs[-1]
        assert head.stdin and tail.stdout
        fd_in, fd_out = head.stdin.fileno(), tail.stdout.fileno()
        out = []
        line = b'{"type":"probe","ts_event":1,"ts_init":1,"n":0}\n'
        for i in range(samples + 50):
            t0 = time.perf_counter()
            os.write(fd_in, line)
            got = b""
            while not got.endswith(b"\n"):
                got += os.read(fd_out, 65536)
            if i >= 50:  # warm-up
                out.append(time.perf_counter() - t0)
        head.stdin.close()
        for p in procs:
            p.wait()
        return out

    agkit = measure([[*AGKIT, "pass"]] * 3)
    cat = measure([["cat"]] * 3)
    p50, p99 = percentiles(agkit, 50, 99)
    c50, c99 = percentiles(cat, 50, 99)
    report("3-stage idle pipe latency p50", p50 * 1e6, "µs", "cat|cat|cat", c50 * 1e6, higher_is_better=False)
    report("3-stage idle pipe latency p99", p99 * 1e6, "µs", "cat|cat|cat", c99 * 1e6, higher_is_better=False)


def startup(runs: int = 15) -> None:
    def median(cmd: list[str]) -> float:
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True, env=ENV)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    base = median([sys.executable, "-c", "pass"])
    stage = median([*AGKIT, "pass"])
    report("stage start-up on empty input (median)", stage * 1e3, "ms", "python3 -c pass", base * 1e3, higher_is_better=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    args = ap.parse_args()
    data = mixed_file(Path(tempfile.gettempdir()) / f"agkit-bench-mixed-{args.records}.ndjson", args.records)
    throughput(args.records, data)
    latency()
    startup()


if __name__ == "__main__":
    main()
