"""Feed benchmarks: every figure beside a baseline measured in the same run.

Run from the repo root: ``python bench/bench_feed.py`` (about a minute).

1. `price_change` frames normalised into book records (agkit.feed.polymarket.Normalizer),
   levels/s on one core, beside plain `orjson.loads` of the same frames. Target ≥ 100k/s.
2. A local WebSocket server → `agkit feed polymarket` → a reader: messages/s flat out,
   and p99 frame-sent → record-read latency at 10k msgs/s (target ≤ 1 ms), beside a
   minimal websockets client that relays each frame unparsed (the transport floor).
3. `agkit feed sim` records/s (target ≥ 200k/s) beside `agkit pass` forwarding the same
   records; `agkit feed replay --max` records/s beside `cat` of the same file. Each also
   per CPU second of the process (`cpu_records_per_s`), steadier on a shared machine.
"""

from __future__ import annotations

import asyncio
import os
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

from agkit.feed.polymarket import Normalizer  # noqa: E402
from bench.common import best_of, percentiles, report  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "AGKIT_CONFIG": "/nonexistent"}
AGKIT = [sys.executable, "-m", "agkit"]
YES, NO = "1" * 77, "2" * 77
MARKET = "0x" + "ab" * 32


def snapshot(asset: str) -> dict[str, Any]:
    return {
        "event_type": "book", "asset_id": asset, "market": MARKET, "timestamp": "1757908892000", "hash": "s",
        "bids": [{"price": f"0.{i:02d}", "size": "100"} for i in range(1, 50)],
        "asks": [{"price": f"0.{i:02d}", "size": "100"} for i in range(51, 99)],
    }


def price_change(i: int, levels: int = 4) -> dict[str, Any]:
    changes = []
    for k in range(levels):
        asset = YES if (i + k) % 2 else NO
        side = "BUY" if k % 2 else "SELL"
        price = f"0.{(2 + (i * 7 + k * 13) % 47) + (0 if side == 'BUY' else 50):02d}"
        changes.append({"asset_id": asset, "price": price, "side": side, "size": str((i + k) % 500),
                        "hash": f"h{i}", "best_bid": "0.49", "best_ask": "0.51"})
    return {"event_type": "price_change", "market": MARKET, "timestamp": str(1757908893000 + i),
            "price_changes": changes}


# -- 1. normaliser ---------------------------------------------------------------------------


def bench_normaliser() -> None:
    n = 30_000
    frames = [orjson.dumps(price_change(i)) for i in range(n)]
    levels = n * 4
    snaps = [orjson.dumps(snapshot(YES)), orjson.dumps(snapshot(NO))]

    def run_norm() -> None:
        norm = Normalizer(depth=10, clock=lambda: 0)
        for s in snaps:
            norm.frame(s, 0)
        for f in frames:
            norm.frame(f, 0)

    def run_loads() -> None:
        loads = orjson.loads
        for f in frames:
            loads(f)

    t = best_of(run_norm, 3)
    base = best_of(run_loads, 3)
    report("feed polymarket: price_change levels -> book records", levels / t, "levels/s",
           "orjson.loads of the same frames", levels / base)


# -- 2. WebSocket → feed ---------------------------------------------------------------------


SERVER_LIMIT_S = 120  # a server left behind by a failed run exits by itself


async def serve(frames: int, rate: float) -> None:
    """The venue, run in its own process (`bench_feed.py serve FRAMES RATE`) so that it
    shares no interpreter (GIL) with the reader: prints its port, sends the snapshots,
    then `frames` price_change frames at `rate` per second (0 = flat out), then prints
    {"sent": [monotonic send time per frame], "late_ms": [how late each left]}.

    Pacing sleeps on the event loop (1 ms timer resolution), so at 10k/s the frames
    leave in bursts of about ten, as a venue's do; a spinning server would take a whole
    core of the two the client runs on."""
    from websockets.asyncio.server import serve as ws_serve

    payloads = [orjson.dumps(price_change(i, 2)).decode() for i in range(frames)]
    sent = [0.0] * frames
    late = [0.0] * frames
    done = asyncio.Event()

    async def handle(ws: Any) -> None:
        await ws.recv()
        await ws.send(orjson.dumps([snapshot(YES), snapshot(NO)]).decode())
        await asyncio.sleep(0.5)
        t0 = time.monotonic()
        for i, text in enumerate(payloads):
            if rate:
                due = t0 + i / rate
                ahead = due - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
                sent[i] = time.monotonic()
                late[i] = (sent[i] - due) * 1000
            else:
                sent[i] = time.monotonic()
            await ws.send(text)
        done.set()
        await asyncio.sleep(SERVER_LIMIT_S)

    async with ws_serve(handle, "127.0.0.1", 0, ping_interval=None) as server:
        print(next(iter(server.sockets)).getsockname()[1], flush=True)
        await asyncio.wait_for(done.wait(), SERVER_LIMIT_S)
        sys.stdout.buffer.write(orjson.dumps({"sent": sent, "late_ms": late}) + b"\n")
        sys.stdout.flush()


RELAY = """
import asyncio, sys
from websockets.asyncio.client import connect
async def main():
    async with connect(sys.argv[1], ping_interval=None, max_size=1 << 24, compression=None) as ws:
        await ws.send('{"assets_ids":["x"],"type":"market"}')
        out = sys.stdout.buffer
        async for msg in ws:
            out.write(msg.encode() + b"\\n"); out.flush()
asyncio.run(main())
"""


def cpu_seconds(pid: int) -> float:
    """user + system CPU time of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def through(argv: list[str], frames: int, rate: float) -> tuple[float, list[float], list[float], float]:
    """(msgs/s, latencies in ms, server lateness in ms, client CPU µs per frame) of frames
    through a subprocess that prints one line per frame. Latency: frame sent (server
    process) -> line read (here), both on the system's monotonic clock. CPU: the client's
    user + system time from its first frame's line to its last, so start-up (imports,
    connecting, the snapshots) is not spread over the frames."""
    server = subprocess.Popen([sys.executable, __file__, "serve", str(frames), str(rate)],
                              stdout=subprocess.PIPE, env=ENV)
    assert server.stdout is not None
    url = f"ws://127.0.0.1:{int(server.stdout.readline())}/ws/market"
    proc = subprocess.Popen([a.replace("{url}", url) for a in argv], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=ENV)
    assert proc.stdout is not None
    got: dict[int, float] = {}
    first = last = cpu0 = 0.0
    for line in proc.stdout:
        now = time.monotonic()
        i = line.find(b'"hash":"h')
        if i < 0:
            continue
        n = int(line[i + 9 : line.index(b'"', i + 9)])
        got.setdefault(n, now)
        if n == 0:
            first = now
            cpu0 = cpu_seconds(proc.pid)
        if n == frames - 1:
            last = now
            break
    cpu = cpu_seconds(proc.pid) - cpu0
    proc.kill()
    proc.wait()
    result = orjson.loads(server.stdout.readline())
    server.kill()
    server.wait()
    sent = result["sent"]
    lat = [(t - sent[n]) * 1000 for n, t in got.items()]
    return (frames - 1) / max(last - first, 1e-9), lat, result["late_ms"], cpu * 1e6 / (frames - 1)


def bench_websocket() -> None:
    feed = [*AGKIT, "feed", "polymarket", "--url", "{url}", "--gamma-url", "", "--asset", YES, "--asset", NO,
            "--metrics-every", "0", "--no-conflate"]
    relay = [sys.executable, "-c", RELAY, "{url}"]
    rate_feed, _, _, cpu_feed = through(feed, 40_000, 0)
    rate_relay, _, _, cpu_relay = through(relay, 40_000, 0)
    report("feed polymarket: WebSocket frames -> records, flat out", rate_feed, "msgs/s",
           "websockets client relaying raw frames", rate_relay,
           client_cpu_us_per_frame=cpu_feed, baseline_cpu_us_per_frame=cpu_relay)
    for frames, rate in ((20_000, 10_000), (6_000, 2_000)):
        _, lat_feed, late, cpu_feed = through(feed, frames, rate)
        _, lat_relay, _, cpu_relay = through(relay, frames, rate)
        p99, p50 = percentiles(lat_feed, 99, 50)
        b99, _ = percentiles(lat_relay, 99, 50)
        (late99,) = percentiles(late, 99)
        report(f"feed polymarket: p99 frame-sent -> record-read latency at {rate / 1000:g}k msgs/s", p99, "ms",
               "websockets client relaying raw frames, p99", b99, higher_is_better=False, p50_ms=p50,
               server_late_p99_ms=late99, client_cpu_us_per_frame=cpu_feed,
               baseline_cpu_us_per_frame=cpu_relay)


# -- 3. sim and replay ------------------------------------------------------------------------


def timed(cmd: list[str], stdin: Any = None, stdout: Any = subprocess.DEVNULL) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of cmd; CPU is the child's user + system time, which
    others' load on the machine disturbs far less than the wall clock."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, stdin=stdin, stdout=stdout, check=True, env=ENV)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def best(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """The least disturbed wall and CPU times of several runs."""
    return min(w for w, _ in runs), min(c for _, c in runs)


def bench_sim_replay() -> None:
    n = 300_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sim.ndjson"
        sim = [*AGKIT, "feed", "sim", "--max-records", str(n)]
        with path.open("wb") as f:
            runs = [timed(sim, stdout=f)]
        runs += [timed(sim) for _ in range(2)]
        t_sim, cpu_sim = best(runs)

        def pass_through() -> tuple[float, float]:
            with path.open("rb") as f:
                return timed([*AGKIT, "pass"], stdin=f)

        t_pass, cpu_pass = best([pass_through() for _ in range(2)])
        report("feed sim: records/s (to /dev/null)", n / t_sim, "records/s",
               "agkit pass forwarding the same records", n / t_pass,
               cpu_records_per_s=n / cpu_sim, baseline_cpu_records_per_s=n / cpu_pass)
        t_replay, cpu_replay = best([timed([*AGKIT, "feed", "replay", str(path), "--max"]) for _ in range(2)])
        t_cat, cpu_cat = best([timed(["cat", str(path)]) for _ in range(3)])
        report("feed replay --max: records/s (to /dev/null)", n / t_replay, "records/s",
               "cat of the same file", n / t_cat,
               cpu_records_per_s=n / cpu_replay, baseline_cpu_records_per_s=n / max(cpu_cat, 1e-3))


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        asyncio.run(serve(int(sys.argv[2]), float(sys.argv[3])))
        sys.exit(0)
    parts = sys.argv[1:] or ["normaliser", "sim", "websocket"]  # e.g. `bench_feed.py websocket`
    if "normaliser" in parts:
        bench_normaliser()
    if "sim" in parts:
        bench_sim_replay()
    if "websocket" in parts:
        bench_websocket()
