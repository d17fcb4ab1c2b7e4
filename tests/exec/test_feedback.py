"""Fills come around to the strategy (DESIGN.md §3), and exec does not repeat its own
events: a real subprocess pipe with the loop-back FIFO, and the in-process Chain."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import orjson

from agkit.exec.paper import PaperVenue
from agkit.exec.stage import ExecStage
from agkit.runner import Chain
from agkit.stage import Out, Stage
from tests.exec.util import book, submit
from tests.helpers import ROOT, agkit_argv, agkit_env, ndjson

STRATEGY = r"""
import sys, orjson
out = sys.stdout.buffer
seen = set()
while True:
    line = sys.stdin.buffer.readline()
    if not line:
        break
    rec = orjson.loads(line)
    out.write(line)  # forward byte for byte, like every agkit stage
    if rec["type"] == "book":
        ts = rec["ts_event"]
        order = {"type": "submit_order", "ts_event": ts, "ts_init": ts, "id": f"o{ts}",
                 "strategy": "loop", "venue": "polymarket", "market": rec["market"],
                 "asset": rec["asset"], "side": "buy", "price": rec["asks"][0][0], "size": 10}
        out.write(orjson.dumps(order) + b"\n")
    elif rec["type"] == "order_filled":
        key = (rec["id"], rec["trade_id"])
        mark = {"type": "zz_saw_fill", "ts_event": rec["ts_event"], "ts_init": rec["ts_init"],
                "id": rec["id"], "trade_id": rec["trade_id"], "again": key in seen}
        seen.add(key)
        out.write(orjson.dumps(mark) + b"\n")
    out.flush()
"""


def _reader(stream: Any, lines: queue.Queue[bytes | None]) -> None:
    for line in iter(stream.readline, b""):
        lines.put(line)
    lines.put(None)


def test_pipe_with_feedback_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "fb"
    strat = tmp_path / "strategy.py"
    strat.write_text(STRATEGY)
    head = " ".join(agkit_argv("pass", "--merge", str(fifo)))
    tail = " ".join(agkit_argv("exec", "--feedback", str(fifo), "--fee-rate", "0.02"))
    proc = subprocess.Popen(
        ["bash", "-c", f"{head} | {sys.executable} {strat} | {tail}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=agkit_env(),
        cwd=ROOT,
    )
    assert proc.stdin is not None and proc.stdout is not None
    lines: queue.Queue[bytes | None] = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
    books = [book(1000 + i, bids=[[0.50, 100]], asks=[[0.52 + i / 100, 50]]) for i in range(3)]
    got: list[dict[str, Any]] = []
    try:
        for b in books:
            proc.stdin.write(ndjson([b]))
            proc.stdin.flush()
            # wait (no clock involved: the queue blocks) until the strategy saw this fill
            while True:
                line = lines.get(timeout=60)
                assert line is not None, proc.stderr.read() if proc.stderr else b""
                rec = orjson.loads(line)
                got.append(rec)
                if rec["type"] == "zz_saw_fill" and rec["id"] == f"o{b['ts_event']}":
                    break
    finally:
        proc.stdin.close()
    while (line := lines.get(timeout=60)) is not None:
        got.append(orjson.loads(line))
    assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else b""
    types = [r["type"] for r in got]
    # each order accepted and filled once downstream: exec did not repeat what came around
    assert types.count("order_accepted") == 3
    assert types.count("order_filled") == 3
    assert types.count("position") == 3
    assert types.count("book") == 3 and types.count("submit_order") == 3
    saw = [r for r in got if r["type"] == "zz_saw_fill"]
    assert [r["id"] for r in saw] == ["o1000", "o1001", "o1002"]
    assert not any(r["again"] for r in saw)  # the strategy saw each fill once too
    fills = [r for r in got if r["type"] == "order_filled"]
    assert [(f["price"], f["size"]) for f in fills] == [(0.52, 10.0), (0.53, 10.0), (0.54, 10.0)]
    assert [f["trade_id"] for f in fills] == [s["trade_id"] for s in saw]
    last = max(i for i, t in enumerate(types) if t == "zz_saw_fill")
    assert {r["type"] for r in got[last + 1 :]} == {"metric"}  # the counters at the end
    assert b"Traceback" not in (proc.stderr.read() if proc.stderr else b"")


class LoopStrategy(Stage):
    """Buys at the best ask on every book; remembers the fills that come back."""

    name = "loop"
    consumes = frozenset({"book", "order_filled", "position"})

    def __init__(self) -> None:
        self.fills: list[dict[str, Any]] = []
        self.positions: list[dict[str, Any]] = []

    def on_record(self, rec: dict[str, Any]) -> Out:
        if rec["type"] == "order_filled":
            self.fills.append(rec)
            return (rec,)
        if rec["type"] == "position":
            self.positions.append(rec)
            return (rec,)
        ts = rec["ts_event"]
        # the fills of the previous book's order are already here (feedback first)
        expect = ts - 1000
        assert len(self.fills) == expect, (ts, self.fills)
        return (rec, submit(ts, f"o{ts}", "buy", rec["asks"][0][0], 10))


def test_chain_feedback_in_process() -> None:
    strategy = LoopStrategy()
    chain = Chain([strategy, ExecStage(PaperVenue(fee_rate=0.02))], feedback_from=1)
    books = [book(1000 + i, bids=[[0.50, 100]], asks=[[0.52 + i / 100, 50]]) for i in range(3)]
    out: list[dict[str, Any]] = list(chain.process(books))  # type: ignore[arg-type]
    types = [r["type"] for r in out]
    assert types.count("order_filled") == 3 and types.count("order_accepted") == 3
    assert [f["id"] for f in strategy.fills] == ["o1000", "o1001", "o1002"]
    assert strategy.positions[-1]["size"] == 30
    # pipes and the chain give the same fills
    assert [(f["price"], f["size"], f["fee"]) for f in strategy.fills] == [
        (0.52, 10.0, round(10 * 0.02 * 0.52 * 0.48, 6)),
        (0.53, 10.0, round(10 * 0.02 * 0.53 * 0.47, 6)),
        (0.54, 10.0, round(10 * 0.02 * 0.54 * 0.46, 6)),
    ]
