"""Feed benchmarks: every figure beside a baseline measured in the same run.

Run from the repo root: ``python bench/bench_feed.py`` (about a minute).

1. `price_change` frames normalised into book records (agkit.feed.polymarket.Normalizer),
   levels/s on one core, beside plain `orjson.loads` of the same frames. Target ≥ 100k/s.
2. A local WebSocket server → `agkit feed polymarket` → a reader: messages/s flat out,
   and p99 frame-sent → record-read latency at 10k msgs/s (target ≤ 1 ms), beside a
   minimal websockets client that relays each frame unparsed (the transport floor).
3. `agkit feed sim` records/s (target ≥ 200k/s) beside `agkit pass` forwarding the same
   records; `agkit feed replay --max` records/s beside `cat` of the same file.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import threading
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


class Server:
    """Sends snapshots, then `frames` price_change frames at `rate` per second (0 = flat out)."""

    def __init__(self, frames: int, rate: float) -> None:
        self.frames, self.rate = frames, rate
        self.sent: dict[str, float] = {}
        self.port = 0
        self.ready = threading.Event()
        self.stop: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        threading.Thread(target=lambda: asyncio.run(self.main()), daemon=True).start()
        self.ready.wait(10)

    async def main(self) -> None:
        from websockets.asyncio.server import serve

        self.loop = asyncio.get_running_loop()
        self.stop = asyncio.Event()
        async with serve(self.handle, "127.0.0.1", 0, ping_interval=None) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self.ready.set()
            await self.stop.wait()

    async def handle(self, ws: Any) -> None:
        await ws.recv()
        await ws.send(orjson.dumps([snapshot(YES), snapshot(NO)]).decode())
        await asyncio.sleep(0.5)
        payloads = [orjson.dumps(price_change(i, 2)).decode() for i in range(self.frames)]
        t0 = time.perf_counter()
        for i, text in enumerate(payloads):
            if self.rate:
                due = t0 + i / self.rate
                while time.perf_counter() < due:
                    await asyncio.sleep(0)
            self.sent[f"h{i}"] = time.perf_counter()
            await ws.send(text)
        await asyncio.sleep(30)

    def close(self) -> None:
        if self.loop and self.stop:
            self.loop.call_soon_threadsafe(self.stop.set)


RELAY = """
import asyncio, sys
from websockets.asyncio.client import connect
async def main():
    async with connect(sys.argv[1], ping_interval=None, max_size=1 << 24) as ws:
        await ws.send('{"assets_ids":["x"],"type":"market"}')
        out = sys.stdout.buffer
        async for msg in ws:
            out.write(msg.encode() + b"\\n"); out.flush()
asyncio.run(main())
"""


def through(argv: list[str], frames: int, rate: float) -> tuple[float, list[float]]:
    """(msgs/s, latencies in ms) of frames through a subprocess that prints one line per frame."""
    server = Server(frames, rate)
    url = f"ws://127.0.0.1:{server.port}/ws/market"
    proc = subprocess.Popen([a.replace("{url}", url) for a in argv], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=ENV)
    assert proc.stdout is not None
    got: dict[str, float] = {}
    first = last = 0.0
    want = f"h{frames - 1}".encode()
    for line in proc.stdout:
        now = time.perf_counter()
        i = line.find(b'"hash":"h')
        if i < 0:
            continue
        h = line[i + 8 : line.index(b'"', i + 8)].decode()
        if h not in got:
            got[h] = now
        if h == "h0":
            first = now
        if h.encode() == want:
            last = now
            break
    proc.kill()
    proc.wait()
    server.close()
    lat = [(got[h] - server.sent[h]) * 1000 for h in got if h in server.sent]
    return (frames - 1) / max(last - first, 1e-9), lat


def bench_websocket() -> None:
    feed = [*AGKIT, "feed", "polymarket", "--url", "{url}", "--gamma-url", "", "--asset", YES, "--asset", NO,
            "--metrics-every", "0", "--no-conflate"]
    relay = [sys.executable, "-c", RELAY, "{url}"]
    rate_feed, _ = through(feed, 40_000, 0)
    rate_relay, _ = through(relay, 40_000, 0)
    report("feed polymarket: WebSocket frames -> records, flat out", rate_feed, "msgs/s",
           "websockets client relaying raw frames", rate_relay)
    _, lat_feed = through(feed, 20_000, 10_000)
    _, lat_relay = through(relay, 20_000, 10_000)
    p99, p50 = percentiles(lat_feed, 99, 50)
    b99, _ = percentiles(lat_relay, 99, 50)
    report("feed polymarket: p99 frame-sent -> record-read latency at 10k msgs/s", p99, "ms",
           "websockets client relaying raw frames, p99", b99, higher_is_better=False, p50_ms=p50)
    _, lat_feed = through(feed, 6_000, 2_000)
    _, lat_relay = through(relay, 6_000, 2_000)
    p99, p50 = percentiles(lat_feed, 99, 50)
    b99, _ = percentiles(lat_relay, 99, 50)
    report("feed polymarket: p99 frame-sent -> record-read latency at 2k msgs/s", p99, "ms",
           "websockets client relaying raw frames, p99", b99, higher_is_better=False, p50_ms=p50)


# -- 3. sim and replay ------------------------------------------------------------------------


def timed(cmd: list[str], stdin: Any = None, stdout: Any = subprocess.DEVNULL) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, stdin=stdin, stdout=stdout, check=True, env=ENV)
    return time.perf_counter() - t0


def bench_sim_replay() -> None:
    n = 300_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sim.ndjson"
        with path.open("wb") as f:
            t_sim = timed([*AGKIT, "feed", "sim", "--max-records", str(n)], stdout=f)
        t_sim = min(t_sim, timed([*AGKIT, "feed", "sim", "--max-records", str(n)]))

        def pass_through() -> None:
            with path.open("rb") as f:
                timed([*AGKIT, "pass"], stdin=f)

        t_pass = best_of(pass_through, 2)
        report("feed sim: records/s (to /dev/null)", n / t_sim, "records/s",
               "agkit pass forwarding the same records", n / t_pass)
        t_replay = best_of(lambda: timed([*AGKIT, "feed", "replay", str(path), "--max"]), 2)
        t_cat = best_of(lambda: timed(["cat", str(path)]), 3)
        report("feed replay --max: records/s (to /dev/null)", n / t_replay, "records/s",
               "cat of the same file", n / t_cat)


if __name__ == "__main__":
    bench_normaliser()
    bench_sim_replay()
    bench_websocket()
