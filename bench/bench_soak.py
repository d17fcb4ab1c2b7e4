"""Soak: a recorded simulated session through the whole bot as separate processes,

    feed replay day.ndjson --max --merge FB | strategy mm | risk-check --clock event
        | exec --feedback FB | store ingest (SQLite)

with the feedback FIFO wired as a real bot has it. While it runs, every stage's peak
resident memory (VmHWM in /proc/PID/status) and the rows the store has committed (its
ingest sequence, read-only once a second) are sampled; throughput is reported per time
window to show it is steady, and memory at half-time vs at the end to show it is bounded.

    python bench/bench_soak.py                 # 1,000,000 records (a few minutes)
    python bench/bench_soak.py --records 200000

Baselines, measured in the same invocation: the same file through five `cat` processes
(throughput), and the peak RSS of `agkit pass` on the same file (an idle-ish stage).
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import report  # noqa: E402

STAGES = ("feed replay", "strategy mm", "risk-check", "exec", "store ingest")


def _status_kb(pid: int, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _stored_seq(db: Path) -> int | None:
    """Rows the store has committed so far (its global ingest sequence), read-only."""
    import sqlite3

    if not db.exists():
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.5) as conn:
            row = conn.execute("select value from agkit_meta where key = 'seq'").fetchone()
        return int(row[0]) if row else None
    except sqlite3.Error:
        return None


def _rchar(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                if line.startswith("rchar:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class SoakResult:
    records: int
    seconds: float
    exit_codes: list[int]
    peak_rss_kb: dict[str, int]
    rss_half_kb: dict[str, int]
    rss_end_kb: dict[str, int]
    windows: list[float] = field(default_factory=list)  # rows stored per second, per window
    stored: int = 0
    stderr: dict[str, str] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return self.records / self.seconds


def agkit(*args: str) -> list[str]:
    return [sys.executable, "-m", "agkit", *args]


def make_day(path: Path, records: int, seed: int = 1) -> None:
    with open(path, "wb") as out:
        subprocess.run(agkit("feed", "sim", "--seed", str(seed), "--markets", "4", "--max-records", str(records)),
                       stdout=out, check=True, timeout=1800, env=_env(), cwd=ROOT)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("AGKIT_ON_ERROR", None)
    env.setdefault("AGKIT_CONFIG", "/nonexistent/agkit-config.yaml")
    return env


def run_soak(day: Path, workdir: Path, records: int, window_s: float = 5.0, timeout: float = 1800) -> SoakResult:
    """Run the pipe on `day` (holding `records` lines), sampling /proc until every stage ended."""
    fb = workdir / "soak-feedback.fifo"
    db = workdir / "soak.db"
    argvs = [
        agkit("feed", "replay", str(day), "--max", "--merge", str(fb)),
        agkit("strategy", "mm"),
        agkit("risk-check", "-p", str(ROOT / "policies/default.yaml"), "--clock", "event"),
        agkit("exec", "--feedback", str(fb), "--latency-us", "50000"),
        agkit("store", "ingest", "--db", str(db)),
    ]
    size = day.stat().st_size
    procs: list[subprocess.Popen[bytes]] = []
    errs = [open(workdir / f"stage{i}.err", "w+b") for i in range(len(argvs))]  # noqa: SIM115
    stdin = None
    t0 = time.perf_counter()
    try:
        for i, argv in enumerate(argvs):
            last = i == len(argvs) - 1
            p = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.DEVNULL if last else subprocess.PIPE,
                                 stderr=errs[i], env=_env(), cwd=ROOT)
            if stdin is not None:
                stdin.close()
            stdin = p.stdout
            procs.append(p)
        peak = dict.fromkeys(STAGES, 0)
        half: dict[str, int] = {}
        end = dict.fromkeys(STAGES, 0)
        progress: list[tuple[float, int]] = []  # (seconds, bytes of the file read by the head)
        head_pid = procs[0].pid
        base_rchar = None
        stored_at: list[tuple[float, int]] = []  # (seconds, rows committed by the store)
        last_seq_t = -1.0
        deadline = time.monotonic() + timeout
        while any(p.poll() is None for p in procs):
            if time.monotonic() > deadline:
                raise TimeoutError(f"soak did not finish in {timeout}s")
            now = time.perf_counter() - t0
            for name, p in zip(STAGES, procs, strict=True):
                hwm, rss = _status_kb(p.pid, "VmHWM"), _status_kb(p.pid, "VmRSS")
                if hwm is not None:
                    peak[name] = max(peak[name], hwm)
                if rss is not None:
                    end[name] = rss
            if now - last_seq_t >= 1.0:
                last_seq_t = now
                seq = _stored_seq(db)
                if seq is not None:
                    stored_at.append((now, seq))
            r = _rchar(head_pid)
            if r is not None:
                if base_rchar is None:
                    base_rchar = r
                progress.append((now, min(r - base_rchar, size)))
                if not half and r - base_rchar >= size // 2:
                    half = dict(end)
            time.sleep(0.2)
        seconds = time.perf_counter() - t0
        codes = [p.wait(60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    stderr = {}
    for name, f in zip(STAGES, errs, strict=True):
        f.seek(0)
        stderr[name] = f.read().decode(errors="replace")
        f.close()
    # throughput per window: rows the store committed (its ingest sequence), sampled every second
    windows = []
    i = 0
    while stored_at:
        j = next((k for k in range(i, len(stored_at)) if stored_at[k][0] >= stored_at[i][0] + window_s), None)
        if j is None:  # the last, partial window is left out
            break
        windows.append((stored_at[j][1] - stored_at[i][1]) / (stored_at[j][0] - stored_at[i][0]))
        i = j
    import sqlite3

    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type='table' and name not like 'agkit_%'")]
        stored = sum(conn.execute(f'select count(*) from "{t}"').fetchone()[0] for t in tables)
    return SoakResult(records, seconds, codes, peak, half or dict(end), end, windows, stored, stderr)


def cat_baseline(day: Path) -> float:
    """Seconds for the file through five `cat` processes (the pipe's floor)."""
    t0 = time.perf_counter()
    q = shlex.quote(str(day))
    subprocess.run(["bash", "-c", f"cat {q} | cat | cat | cat | cat > /dev/null"], check=True, timeout=600)
    return time.perf_counter() - t0


def pass_rss_kb(day: Path) -> int:
    """Peak RSS of `agkit pass` reading the same file: the plumbing alone."""
    proc = subprocess.Popen(agkit("pass"), stdin=open(day, "rb"), stdout=subprocess.DEVNULL, env=_env(), cwd=ROOT)  # noqa: SIM115
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _status_kb(proc.pid, "VmHWM") or 0)
        time.sleep(0.05)
    return peak


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--window", type=float, default=10.0, help="seconds per throughput window")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="agkit-soak-") as tmp:
        work = Path(tmp)
        day = work / "day.ndjson"
        make_day(day, args.records)
        base_s = cat_baseline(day)
        base_rss = pass_rss_kb(day)
        res = run_soak(day, work, args.records, window_s=args.window)
        if any(c != 0 for c in res.exit_codes):
            for name, err in res.stderr.items():
                sys.stderr.write(f"--- {name}\n{err[-2000:]}\n")
            raise SystemExit(f"soak pipe failed: exit codes {res.exit_codes}")
        n = args.records
        report(f"soak {n:,} records, 5 processes: throughput", res.throughput, "records/s",
               "5x cat", n / base_s, windows=len(res.windows), seconds=round(res.seconds, 1), stored_rows=res.stored)
        steady = res.windows[1:]  # the first window fills the pipes' buffers (warm-up)
        if steady:
            med = statistics.median(steady)
            report(f"soak: slowest {args.window:g}s window / median (stored rows/s)", min(steady) / med, "ratio",
                   median_rows_per_s=round(med), windows=[round(w) for w in res.windows])
            report(f"soak: fastest {args.window:g}s window / median (stored rows/s)", max(steady) / med, "ratio")
        for name in STAGES:
            report(f"soak: peak RSS {name}", res.peak_rss_kb[name] / 1024, "MiB", "agkit pass peak RSS",
                   base_rss / 1024, higher_is_better=False,
                   rss_half_mib=round(res.rss_half_kb.get(name, 0) / 1024, 1),
                   rss_end_mib=round(res.rss_end_kb.get(name, 0) / 1024, 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
