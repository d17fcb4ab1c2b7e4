"""Helpers for the WebSocket feed tests: frame builders, an independent book model,
and a line reader with a deadline over a real subprocess."""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from tests.helpers import popen_agkit

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "samples"
MARKET = "0x5f65177b394277fd294cd75650044e32ba009a95022d88a0c1d565897d72f8f1"
YES = "52114319501245915516055106046884209969926127482827954674443846427813813222426"
NO = "71321045679252212594626385532706912750332728571942532289631379312455583992563"


def j(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def book_frame(asset: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]], ts: int = 1757908892000,
               market: str = MARKET, best_last: bool = True, **extra: Any) -> dict[str, Any]:
    """A `book` snapshot; by default in the captured order (best price LAST)."""
    b = sorted(bids, key=lambda lv: float(lv[0]), reverse=not best_last)
    a = sorted(asks, key=lambda lv: float(lv[0]), reverse=best_last)
    return {
        "event_type": "book",
        "asset_id": asset,
        "market": market,
        "bids": [{"price": p, "size": s} for p, s in b],
        "asks": [{"price": p, "size": s} for p, s in a],
        "timestamp": str(ts),
        "hash": f"snap-{ts}",
        **extra,
    }


def price_change(changes: list[tuple[str, str, str, str]], ts: int = 1757908893000,
                 market: str = MARKET) -> dict[str, Any]:
    """Current schema: changes are (asset, side BUY|SELL, price, new size)."""
    return {
        "event_type": "price_change",
        "market": market,
        "timestamp": str(ts),
        "price_changes": [
            {"asset_id": a, "side": side, "price": p, "size": s, "hash": f"h{ts}-{i}", "best_bid": "0", "best_ask": "1"}
            for i, (a, side, p, s) in enumerate(changes)
        ],
    }


def trade(asset: str, price: str, size: str, side: str = "BUY", ts: int = 1757908894000) -> dict[str, Any]:
    return {
        "event_type": "last_trade_price",
        "asset_id": asset,
        "market": MARKET,
        "price": price,
        "side": side,
        "size": size,
        "fee_rate_bps": "0",
        "timestamp": str(ts),
    }


class Model:
    """An independent book model: the expected state, rebuilt from the same frames."""

    def __init__(self) -> None:
        self.books: dict[str, tuple[dict[float, float], dict[float, float]]] = {}

    def apply(self, ev: dict[str, Any]) -> None:
        kind = ev.get("event_type")
        if kind == "book":
            self.books[ev["asset_id"]] = (
                {float(x["price"]): float(x["size"]) for x in ev["bids"] if float(x["size"]) > 0},
                {float(x["price"]): float(x["size"]) for x in ev["asks"] if float(x["size"]) > 0},
            )
        elif kind == "price_change":
            if "price_changes" in ev:
                items = [(c["asset_id"], c["side"], c["price"], c["size"]) for c in ev["price_changes"]]
            elif "changes" in ev:
                items = [(ev["asset_id"], c["side"], c["price"], c["size"]) for c in ev["changes"]]
            else:
                items = [(ev["asset_id"], ev["side"], ev["price"], ev["size"])]
            for asset, side, price, size in items:
                if asset not in self.books:
                    continue
                levels = self.books[asset][0 if side == "BUY" else 1]
                if float(size) == 0:
                    levels.pop(float(price), None)
                else:
                    levels[float(price)] = float(size)

    def top(self, asset: str, depth: int = 10) -> tuple[list[list[float]], list[list[float]]]:
        bids, asks = self.books[asset]
        return (
            [[p, bids[p]] for p in sorted(bids, reverse=True)[:depth]],
            [[p, asks[p]] for p in sorted(asks)[:depth]],
        )


class Feed:
    """`agkit feed ...` as a subprocess, its stdout lines read with a deadline."""

    def __init__(self, *args: str, pump: bool = True) -> None:
        self.proc = popen_agkit(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: queue.Queue[bytes] = queue.Queue()
        self.records: list[dict[str, Any]] = []
        self._pumping = False
        if pump:
            self.start_pump()

    def start_pump(self) -> None:
        if not self._pumping:
            self._pumping = True
            threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(b"")

    def next(self, timeout: float = 60) -> dict[str, Any] | None:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no record from the feed in time") from None
        if not line:
            return None
        rec: dict[str, Any] = orjson.loads(line)
        self.records.append(rec)
        return rec

    def until(self, pred: Any, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            rec = self.next(max(deadline - time.monotonic(), 0.01))
            if rec is None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise AssertionError(f"feed ended before the expected record; stderr: {err}")
            if pred(rec):
                return rec

    def stop(self) -> tuple[int, str]:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(30)
        while True:
            rec = self.next(30)
            if rec is None:
                break
        err = self.proc.stderr.read().decode() if self.proc.stderr else ""
        return code, err

    def wait(self, timeout: float = 60) -> tuple[int, str]:
        code = self.proc.wait(timeout)
        while self.next(30) is not None:
            pass
        err = self.proc.stderr.read().decode() if self.proc.stderr else ""
        return code, err


def ws_args(url: str, *assets: str, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    args: list[str] = ["feed", "polymarket", "--url", url, "--gamma-url", "", "--metrics-every", "0",
                       "--backoff", "0.05", "--backoff-max", "0.2"]
    for a in assets:
        args += ["--asset", a]
    return (*args, *extra)
