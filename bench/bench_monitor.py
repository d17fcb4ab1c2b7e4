"""Monitor benchmarks.

    python bench/bench_monitor.py            # 500k records from stdin, 4 x 250k pushed, 10 s latency run
    python bench/bench_monitor.py --quick    # smaller sizes

1. stdin ingest: `agkit monitor --tui --exit-on-eof < FILE` of metric records (50 series),
   with the terminal dashboard rendering on a pseudo-terminal the whole time, beside
   `agkit pass < FILE` on the same file (start-up included in both). CPU-time figures are
   given too (`cpu_*`), because wall time on a shared machine is noisy.
2. WebSocket ingest: 4 concurrent pusher processes each send their share of metric records
   (1 000 per frame) to `agkit monitor --web`; records/s until /health counts them all,
   beside the same pushers into a receive-and-discard websockets server (the transport's
   ceiling).
3. ingest-to-browser latency: one pusher sends 1 000 metric updates/s, one record per
   frame, stamped with the send time; a WebSocket client subscribed to /dashboard exactly
   as the page is (a real browser is impractical to time to the millisecond here) takes
   the difference on arrival; p50/p99 in ms, against the issue's 100 ms target.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import re
import resource
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import percentiles, report  # noqa: E402

NAMES = ["polymarket.rtds.lag_ms", "polymarket.rtds.msgs_per_second", "exec.latency_ms", "strategy.pnl_usd",
         "polymarket.position.size"]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e["AGKIT_CONFIG"] = "/nonexistent/agkit-config.yaml"
    return e


def agkit(*args: str) -> list[str]:
    return [sys.executable, "-m", "agkit", *args]


def metric_lines(n: int, t0: int, offset: int = 0) -> list[bytes]:
    return [
        orjson.dumps({"type": "metric", "ts_event": t0 + i, "ts_init": t0 + i, "name": NAMES[i % 5], "kind": "gauge",
                      "value": float(i % 1000), "labels": {"market": f"m{(i // 5) % 10}"}})
        for i in range(offset, offset + n)
    ]


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def timed(argv: list[str], stdin_path: Path, tty: bool = False) -> tuple[float, float, int]:
    """(wall s, cpu s, bytes drawn on the terminal) of one run."""
    cpu0 = children_cpu()
    drawn = 0
    t0 = time.perf_counter()
    with stdin_path.open("rb") as f:
        if not tty:
            proc = subprocess.run(argv, stdin=f, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env())
            if proc.returncode != 0:
                raise RuntimeError(proc.stderr.decode())
        else:
            master, slave = pty.openpty()
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))

            def controlling_tty() -> None:
                os.setsid()
                fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

            proc2 = subprocess.Popen(argv, stdin=f, stdout=subprocess.DEVNULL, stderr=slave, env=env(),
                                     preexec_fn=controlling_tty, pass_fds=(slave,))
            os.close(slave)
            counted = [0]

            def drain() -> None:
                while True:
                    try:
                        chunk = os.read(master, 1 << 16)
                    except OSError:
                        return
                    if not chunk:
                        return
                    counted[0] += len(chunk)

            th = threading.Thread(target=drain, daemon=True)
            th.start()
            rc = proc2.wait()
            th.join(5)
            os.close(master)
            drawn = counted[0]
            if rc != 0:
                raise RuntimeError(f"monitor --tui exited {rc}")
    return time.perf_counter() - t0, children_cpu() - cpu0, drawn


def bench_stdin(n: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory(prefix="agkit-bench-monitor-") as tmp:
        path = Path(tmp) / "metrics.ndjson"
        path.write_bytes(b"\n".join(metric_lines(n, 1_767_225_600_000_000)) + b"\n")
        base = [timed(agkit("pass"), path) for _ in range(repeat)]
        mon = [timed(agkit("monitor", "--tui", "--exit-on-eof"), path, tty=True) for _ in range(repeat)]
    bw = min(b[0] for b in base)
    bc = min(b[1] for b in base)
    mw = min(m[0] for m in mon)
    mc = min(m[1] for m in mon)
    report("monitor stdin ingest, TUI rendering", n / mw, "records/s", "agkit pass (same file)", n / bw,
           records=n, cpu_records_per_s=n / mc, cpu_baseline_records_per_s=n / bc,
           tui_bytes_drawn=min(m[2] for m in mon), target=300_000)


def start_monitor(*args: str) -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen(agkit("monitor", "--web", "127.0.0.1:0", *args), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env())
    assert proc.stderr is not None
    line = proc.stderr.readline().decode()
    m = re.search(r":(\d+)/", line)
    if not m:
        raise RuntimeError(f"monitor did not start: {line}")
    return proc, int(m.group(1))


def health(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=30) as resp:
        out: dict[str, Any] = orjson.loads(resp.read())
        return out


def pushers(url: str, n_each: int, k: int = 4, batch: int = 1000) -> tuple[list[subprocess.Popen[bytes]], float]:
    """Start k pusher processes, wait until all are connected and primed, then say go."""
    procs = [
        subprocess.Popen([sys.executable, __file__, "--pusher", url, str(n_each), str(batch), str(i)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env())
        for i in range(k)
    ]
    for p in procs:
        assert p.stdout is not None
        if p.stdout.readline().strip() != b"ready":
            raise RuntimeError("pusher failed")
    t0 = time.perf_counter()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(b"go\n")
        p.stdin.flush()
    return procs, t0


def pusher_main(url: str, n: int, batch: int, index: int) -> None:
    from websockets.sync.client import connect

    lines = metric_lines(n, 1_767_225_600_000_000 + index * 10_000_000_000)
    frames = [b"\n".join(lines[i : i + batch]) for i in range(0, n, batch)]
    with connect(url, compression=None, proxy=None, max_size=None) as ws:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        sys.stdin.readline()
        for fr in frames:
            ws.send(fr, text=True)
    sys.stdout.write("done\n")
    sys.stdout.flush()


def sink_main() -> None:
    import asyncio

    from websockets.asyncio.server import serve

    async def handler(ws: Any) -> None:
        async for _msg in ws:
            pass

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0, compression=None, max_size=16 << 20) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            sys.stdout.write(f"port {port}\n")
            sys.stdout.flush()
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    asyncio.run(main())


def bench_ws_ingest(n_each: int) -> None:
    k = 4
    # baseline: the same pushers into a receive-and-discard server
    sink = subprocess.Popen([sys.executable, __file__, "--sink"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env())
    assert sink.stdout is not None and sink.stdin is not None
    port = int(sink.stdout.readline().split()[1])
    procs, t0 = pushers(f"ws://127.0.0.1:{port}/", n_each, k)
    for p in procs:
        p.communicate(timeout=600)
    base = k * n_each / (time.perf_counter() - t0)
    sink.stdin.close()
    sink.wait(30)

    mon, port = start_monitor()
    try:
        procs, t0 = pushers(f"ws://127.0.0.1:{port}/metrics", n_each, k)
        while health(port)["records"] < k * n_each:
            time.sleep(0.01)
        elapsed = time.perf_counter() - t0
        for p in procs:
            p.communicate(timeout=600)
    finally:
        mon.terminate()
        mon.communicate(timeout=30)
    report("monitor WebSocket ingest, 4 pushers", k * n_each / elapsed, "records/s",
           "same pushers, receive-and-discard websockets server", base, records=k * n_each, batch=1000)


def latency_pusher_main(url: str, rate: float, seconds: float) -> None:
    from websockets.sync.client import connect

    n = int(rate * seconds)
    with connect(url, compression=None, proxy=None) as ws:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        sys.stdin.readline()
        start = time.perf_counter()
        for i in range(n):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            now = time.time_ns() // 1000
            ws.send(orjson.dumps({"type": "metric", "ts_event": now, "ts_init": now, "name": "bench.latency",
                                  "kind": "gauge", "value": float(i), "labels": {}}).decode())
        achieved = n / (time.perf_counter() - start)
    sys.stdout.write(f"done {achieved}\n")
    sys.stdout.flush()


def bench_latency(rate: float, seconds: float) -> None:
    from websockets.sync.client import connect

    mon, port = start_monitor()
    lat: list[float] = []
    try:
        with connect(f"ws://127.0.0.1:{port}/dashboard", proxy=None, max_size=None) as browser:
            first = orjson.loads(browser.recv(timeout=30))
            assert first["t"] == "backfill"
            sid = None
            p = subprocess.Popen([sys.executable, __file__, "--latency-pusher", f"ws://127.0.0.1:{port}/metrics",
                                  str(rate), str(seconds)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env())
            assert p.stdin is not None and p.stdout is not None
            assert p.stdout.readline().strip() == b"ready"
            p.stdin.write(b"go\n")
            p.stdin.flush()
            expected = int(rate * seconds)
            deadline = time.monotonic() + seconds * 3 + 30
            while len(lat) < expected and time.monotonic() < deadline:
                try:
                    raw = browser.recv(timeout=5)
                except TimeoutError:
                    continue
                now = time.time_ns() // 1000
                msg = orjson.loads(raw)
                for d in msg.get("defs", []):
                    if d["name"] == "bench.latency":
                        sid = d["id"]
                for s, ts, _vs in msg.get("p", []):
                    if s == sid:
                        lat += [(now - t) / 1000 for t in ts]
            out, _ = p.communicate(timeout=60)
            achieved = float(out.split()[-1])
    finally:
        mon.terminate()
        mon.communicate(timeout=30)
    p50, p99 = percentiles(lat, 50, 99)
    report("monitor ingest-to-browser latency p99 (WebSocket client as browser)", p99, "ms",
           "target (issue #8)", 100.0, higher_is_better=False, p50_ms=p50, updates_per_s=achieved,
           samples=len(lat), max_ms=max(lat))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--pusher":
        pusher_main(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--sink":
        sink_main()
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--latency-pusher":
        latency_pusher_main(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description="monitor benchmarks")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        bench_stdin(100_000, 2)
        bench_ws_ingest(50_000)
        bench_latency(1000, 3)
    else:
        bench_stdin(500_000, 3)
        bench_ws_ingest(250_000)
        bench_latency(1000, 10)


if __name__ == "__main__":
    main()
