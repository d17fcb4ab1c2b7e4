"""The terminal dashboard driven in tmux: keys in, the screen a person sees out."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.helpers import ROOT, agkit_argv, agkit_env
from tests.monitor.conftest import require_tool


class Pane:
    def __init__(self, tmux: str, sock: str, name: str) -> None:
        self.tmux, self.sock, self.name = tmux, sock, name

    def cmd(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run([self.tmux, "-L", self.sock, *args], capture_output=True, timeout=30, check=check)
        return proc.stdout.decode("utf-8", "replace")

    def screen(self, escapes: bool = False) -> str:
        return self.cmd("capture-pane", "-p", *(["-e"] if escapes else []), "-t", self.name)

    def keys(self, *keys: str) -> None:
        self.cmd("send-keys", "-t", self.name, *keys)

    def alive(self) -> bool:
        return subprocess.run([self.tmux, "-L", self.sock, "has-session", "-t", self.name], capture_output=True).returncode == 0

    def wait(self, *texts: str, absent: str | None = None, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if all(t in screen for t in texts) and (absent is None or absent not in screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"never saw {texts} on the screen:\n{screen}")
            time.sleep(0.1)


def rec(type_: str, ts: int, **fields: Any) -> dict[str, Any]:
    return {"type": type_, "ts_event": ts, "ts_init": ts, **fields}


def records(t: int) -> list[dict[str, Any]]:
    out = []
    for i in range(30):
        ts = t + i * 100_000
        out.append(rec("book", ts, venue="sim", market="0xmarket1", asset="tokA", bids=[[0.48, 100 + i]], asks=[[0.52, 80]], tick_size=0.01, min_size=5))
        out.append(rec("feed_status", ts, source="sim", state="live", lag_ms=20 + i % 5))
        out.append(rec("metric", ts, name="polymarket.rtds.msgs_per_second", kind="gauge", value=100 + i, labels={"stage": "feed"}))
    out += [
        rec("trade", t, venue="sim", market="0xmarket1", asset="tokA", price=0.51, size=12, side="buy", trade_id="T1"),
        rec("submit_order", t, id="ord-1", strategy="mm", venue="sim", market="0xmarket1", asset="tokA", side="buy", price=0.49, size=10),
        rec("submit_order", t, id="ord-2", strategy="mm", venue="sim", market="0xmarket1", asset="tokA", side="sell", price=0.53, size=10),
        {**rec("order_accepted", t, id="ord-1", venue_order_id="v1"), "ts_init": t + 1500},
        rec("order_filled", t, id="ord-1", venue_order_id="v1", trade_id="T2", market="0xmarket1", asset="tokA", side="buy", price=0.49, size=4, fee=0.01, liquidity="maker"),
        rec("position", t, market="0xmarket1", asset="tokA", size=4, avg_price=0.49, realized_pnl=0.0, fees=0.01),
        rec("order_denied", t, id="ord-3", policy="max_position", reason="position limit 100 exceeded"),
    ]
    return out


@pytest.fixture
def pane(tmp_path: Path) -> Iterator[tuple[Pane, Path]]:
    tmux = require_tool("tmux", "terminal for the --tui test")
    sock = f"agkit-monitor-test-{os.getpid()}"
    feed = tmp_path / "in.ndjson"
    feed.write_bytes(b"")
    cmd = (
        f"cd {shlex.quote(str(ROOT))} && tail -n +1 -f {shlex.quote(str(feed))} | "
        f"{shlex.join(agkit_argv('monitor', '--tui', '--tee'))} > {shlex.quote(str(tmp_path / 'out.ndjson'))} "
        f"2> {shlex.quote(str(tmp_path / 'err.txt'))}"
    )
    env = agkit_env()
    env.pop("TMUX", None)
    subprocess.run([tmux, "-L", sock, "-f", "/dev/null", "new-session", "-d", "-s", "mon", "-x", "150", "-y", "45", cmd],
                   check=True, env=env, timeout=30)
    p = Pane(tmux, sock, "mon")
    try:
        yield p, tmp_path
    finally:
        subprocess.run([tmux, "-L", sock, "kill-server"], capture_output=True)


def append(path: Path, recs: list[dict[str, Any]]) -> None:
    with path.open("ab") as f:
        f.write(b"".join(orjson.dumps(r) + b"\n" for r in recs))


def test_tui_views_keys_pause_resize_quit(pane: tuple[Pane, Path]) -> None:
    p, tmp = pane
    feed = tmp / "in.ndjson"
    t = time.time_ns() // 1000
    append(feed, records(t))

    # overview: book top and last trade, positions and PnL, risk, charts, stage health
    screen = p.wait("Markets: book top and last trade", "0xmarket1", "DENIED", "Stage health", "records 97")
    market = next(line for line in screen.splitlines() if line.lstrip().startswith("0xmarket1") and "0.48" in line)
    assert "0.52" in market and "0.51" in market and "buy" in market  # bid, ask, last trade
    assert "Positions and PnL" in screen and "TOTAL" in screen
    assert "position limit 100 exceeded" in screen
    assert "feed lag ms: 24.0" in screen and "msgs/s: 129.0" in screen
    assert "█" in screen  # the charts drew bars
    assert "feed:sim" in screen and "strategy:mm" in screen
    assert "kill switch off" in screen

    # the kill switch engages: highlighted in red on the header and the risk panel
    append(feed, [rec("kill_switch", t + 5_000_000, engaged=True, reason="drawdown 5%")])
    p.wait("KILL SWITCH ENGAGED: drawdown 5%")
    colored = [line for line in p.screen(escapes=True).splitlines() if "KILL SWITCH ENGAGED" in line]
    assert colored and all("41m" in line or ";41;" in line or "[41" in line for line in colored), colored

    # view 2: open orders and the fills tape
    p.keys("2")
    screen = p.wait("Open orders (2)", "Fills tape (1)")
    assert "ord-2" in screen and "submitted" in screen and "partial" in screen and "maker" in screen

    # pause freezes the picture; resume shows what arrived meanwhile
    p.keys("p")
    p.wait("PAUSED")
    append(feed, [rec("submit_order", t, id="ord-late", strategy="mm", venue="sim", market="0xmarket1", asset="tokA", side="buy", price=0.4, size=5)])
    time.sleep(1.0)
    assert "ord-late" not in p.screen()
    p.keys("p")
    p.wait("ord-late", "Open orders (3)", absent="PAUSED")

    # view 4: every series; Tab cycles back to the overview
    p.keys("4")
    p.wait("Series (", "polymarket.rtds.msgs_per_second{stage=feed}", "fills.count")
    p.keys("Tab")
    p.wait("Markets: book top and last trade")

    # resizing redraws for the new size
    p.cmd("resize-window", "-t", "mon", "-x", "90", "-y", "30")
    screen = p.wait("agkit monitor", "q quit", "Markets")
    assert max(len(line) for line in screen.splitlines()) <= 90

    # q quits; stdout (a pipe) carried exactly the records, not one byte of screen
    p.keys("q")
    deadline = time.monotonic() + 30
    while p.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not p.alive(), p.screen()
    assert (tmp / "out.ndjson").read_bytes() == feed.read_bytes()
    assert b"Traceback" not in (tmp / "err.txt").read_bytes()
