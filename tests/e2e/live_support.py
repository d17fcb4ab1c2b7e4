"""Support for tests/e2e/test_live_bot.py: the fake Polymarket (the strict CLOB of
tests/fakes/clob.py plus a market WebSocket showing its book) served from a thread of the
test process, and the live bot as five real processes wired with a feedback FIFO.

The market channel publishes, every `interval` seconds, a `book` snapshot per subscribed
token built from the other traders' resting orders at the fake CLOB (owner "lp"), with
the current time as its timestamp. Our own orders are left out of it (a market maker
quoting around a book that contains its own quotes would chase itself), so the mid stays
where the test puts the liquidity and the quotes stay put: every order event in a run is
caused by the test (a fill, a kill) and can be counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import orjson
from aiohttp import WSMsgType, web

from agkit.store.schema import TABLES, to_row
from tests.fakes.clob import TEST_KEY, FakeClob
from tests.helpers import ROOT, agkit_argv, agkit_env

YES = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
NO = "52114319501245915516055106046884209969926127482827954674443846427813813222426"
COND = "0xdd22472e552920b8438158ea7238bfadfa4f736aa4cee91a6b86c39ead110917"
POLICY = ROOT / "policies" / "market-maker.yaml"
QUOTE_SIZE = 10
T = TypeVar("T")


class MarketChannel:
    """The CLOB market WebSocket: book snapshots of the fake's "lp" liquidity, PING/PONG."""

    def __init__(self, fake: FakeClob, interval: float = 0.2) -> None:
        self.fake = fake
        self.interval = interval
        self.connects = 0
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/ws/market", self._handler)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"ws://127.0.0.1:{port}/ws/market"

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def book_event(self, asset: str) -> dict[str, Any]:
        m = self.fake.markets[asset]
        bids: dict[Decimal, Decimal] = defaultdict(Decimal)
        asks: dict[Decimal, Decimal] = defaultdict(Decimal)
        for o in self.fake.orders.values():
            if o.owner == "lp" and o.status == "LIVE" and o.asset_id == asset and o.remaining > 0:
                (bids if o.side == "BUY" else asks)[o.price] += o.remaining
        return {
            "event_type": "book",
            "asset_id": asset,
            "market": m.condition_id,
            "bids": [{"price": str(p), "size": str(s)} for p, s in sorted(bids.items(), reverse=True)],
            "asks": [{"price": str(p), "size": str(s)} for p, s in sorted(asks.items())],
            "timestamp": str(int(time.time() * 1000)),
            "tick_size": str(m.tick),
            "min_order_size": str(m.min_size),
        }

    async def _pump(self, ws: web.WebSocketResponse, assets: list[str]) -> None:
        while not ws.closed:
            await ws.send_str(json.dumps([self.book_event(a) for a in assets if a in self.fake.markets]))
            await asyncio.sleep(self.interval)

    async def _handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.add(ws)
        pump: asyncio.Task[None] | None = None
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                if msg.data == "PING":
                    await ws.send_str("PONG")
                    continue
                if pump is None:
                    sub = json.loads(msg.data)
                    if sub.get("type") != "market" or not isinstance(sub.get("assets_ids"), list):
                        await ws.close(code=1008, message=b"bad subscription")
                        break
                    self.connects += 1
                    pump = asyncio.create_task(self._pump(ws, [str(a) for a in sub["assets_ids"]]))
        finally:
            self._sockets.discard(ws)
            if pump is not None:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pump
        return ws


class FakePolymarket:
    """FakeClob + MarketChannel on their own event loop thread; `do` runs code on it."""

    def __init__(self, heartbeat_timeout: float = 120.0) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        # settled on-chain soon after matching; the dead-man switch is long enough that a
        # restart under load never races it (the drill restarts at once anyway)
        self.fake = FakeClob(auto_confirm=True, heartbeat_timeout=heartbeat_timeout)
        self.market = MarketChannel(self.fake)
        self._call(self.fake.start())
        self._call(self.market.start())
        self.do(self._setup)
        self.acc = next(iter(self.fake.accounts.values()))

    def _setup(self) -> None:
        f = self.fake
        f.add_market(COND, YES)
        f.add_market(COND, NO)
        f.add_account()
        for token in (YES, NO):  # other traders: 0.45 bid / 0.55 ask on both tokens
            f.add_liquidity(token, "BUY", "0.45", "200")
            f.add_liquidity(token, "SELL", "0.55", "200")

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def do(self, fn: Callable[..., T], *args: Any) -> T:
        async def wrap() -> T:
            return fn(*args)

        return self._call(wrap())  # type: ignore[no-any-return]

    def env(self) -> dict[str, str]:
        return {
            "AGKIT_CLOB_URL": self.fake.url,
            "AGKIT_CLOB_WS_URL": self.fake.ws_url,
            "AGKIT_POLYMARKET_WS_URL": self.market.url,
            "AGKIT_ENV_FILE": "/nonexistent/.env",
            "POLYMARKET_PRIVATE_KEY": TEST_KEY,
            "POLYMARKET_API_KEY": self.acc.api_key,
            "POLYMARKET_API_SECRET": self.acc.secret,
            "POLYMARKET_API_PASSPHRASE": self.acc.passphrase,
        }

    # -- views of the venue (taken on its loop: no torn reads) ----------------------------

    def ours(self) -> list[dict[str, Any]]:
        """Our account's orders at the venue, as the venue keeps them."""
        return self.do(lambda: [o.to_json() for o in self.fake.orders_of(self.acc.api_key)])

    def live(self) -> list[dict[str, Any]]:
        return [o for o in self.ours() if o["status"] == "LIVE"]

    def our_trades(self) -> dict[str, dict[str, Any]]:
        key = self.acc.api_key

        def get() -> dict[str, dict[str, Any]]:
            return {
                tid: dict(t) for tid, t in self.fake.trades.items()
                if t["owner"] == key or any(m["owner"] == key for m in t["maker_orders"])
            }

        return self.do(get)

    def requests(self) -> list[tuple[str, str]]:
        return self.do(lambda: list(self.fake.requests))

    def post_attempts(self) -> dict[str, int]:
        return self.do(lambda: dict(self.fake.post_attempts))

    def take(self, token: str, side: str, price: str, size: str) -> list[str]:
        """Another trader's marketable order: fills our resting orders as maker."""
        return self.do(self.fake.external_take, token, side, price, size)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._call(self.market.stop())
        with contextlib.suppress(Exception):
            self._call(self.fake.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class Bot:
    """feed polymarket | strategy mm --merge F | risk-check | exec --live --feedback F | store ingest --tee,
    five processes in one process group; stdout of the last one in `out`, stderr per stage."""

    def __init__(self, venue: FakePolymarket, tmp: Path, name: str, prefix: str, db: Path, kill_file: Path) -> None:
        self.venue = venue
        self.dir = tmp / name
        self.dir.mkdir()
        self.out = self.dir / "out.ndjson"
        self.fifo = tmp / "feedback.fifo"  # shared by the runs of one test (a restart reuses it)
        self.db = db
        self.stages = [
            ["feed", "polymarket", "--asset", YES, "--asset", NO, "--gamma-url", "", "--ping-every", "2", "--metrics-every", "0"],
            ["strategy", "mm", "--merge", str(self.fifo), "--id-prefix", prefix, "-P", f"quote_size={QUOTE_SIZE}"],
            ["risk-check", "-p", str(POLICY), "--clock", "wall", "--kill-file", str(kill_file), "--kill-file-interval-ms", "50"],
            ["exec", "--venue", "polymarket", "--live", "--feedback", str(self.fifo)],
            ["store", "ingest", "--tee", "--db", f"sqlite:///{db}", "--flush-ms", "50"],
        ]
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def names(self) -> list[str]:
        return [" ".join(s[:2]) if s[0] in ("feed", "store", "strategy") else s[0] for s in self.stages]

    def start(self) -> None:
        # exec's journal (agkit/exec/journal.py) under the test's own state dir, shared by the runs of a test
        env = agkit_env(**self.venue.env(), XDG_STATE_HOME=str(self.dir.parent / "state"))
        prev: Any = subprocess.DEVNULL
        pgid = 0
        try:
            for i, args in enumerate(self.stages):
                last = i == len(self.stages) - 1
                stdout: Any = open(self.out, "wb") if last else subprocess.PIPE  # noqa: SIM115
                with open(self.dir / f"stage{i}.err", "wb") as err:
                    p = subprocess.Popen(
                        agkit_argv(*args), stdin=prev, stdout=stdout, stderr=err, env=env, cwd=ROOT, process_group=pgid
                    )
                if last:
                    stdout.close()
                if prev is not subprocess.DEVNULL:
                    prev.close()  # the child holds it now
                prev = p.stdout
                pgid = pgid or p.pid
                self.procs.append(p)
        except BaseException:
            self.kill()
            raise

    def pid(self, name: str) -> int:
        return self.procs[self.names.index(name)].pid

    def alive(self) -> list[str]:
        return [n for n, p in zip(self.names, self.procs, strict=True) if p.poll() is None]

    def stderr(self) -> str:
        parts = []
        for i, n in enumerate(self.names):
            path = self.dir / f"stage{i}.err"
            text = path.read_text(errors="replace") if path.exists() else ""
            parts.append(f"--- {n} (exit {self.procs[i].poll() if i < len(self.procs) else None}):\n{text[-3000:]}")
        return "\n".join(parts)

    def records(self) -> list[dict[str, Any]]:
        """Complete lines written so far by the last stage."""
        data = self.out.read_bytes() if self.out.exists() else b""
        data = data[: data.rfind(b"\n") + 1]
        return [orjson.loads(line) for line in data.splitlines() if line.strip()]

    def stop(self, timeout: float = 90.0) -> list[int | None]:
        """A requested stop: SIGTERM to the feed; EOF then ends every stage in turn."""
        if self.procs and self.procs[0].poll() is None:
            self.procs[0].send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                alive = self.alive()
                err = self.stderr()
                self.kill()
                raise AssertionError(f"stages {alive} did not stop within {timeout}s\n{err}") from None
        return [p.returncode for p in self.procs]

    def kill(self) -> None:
        """SIGKILL every stage (the whole process group) and reap them."""
        if self.procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.procs[0].pid, signal.SIGKILL)
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(10)


def wait_for(pred: Callable[[], T], what: str, timeout: float = 90.0, bots: tuple[Bot, ...] = ()) -> T:
    """Poll `pred` until it returns something truthy (generous timeout; no timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        dead = [(b.dir.name, n) for b in bots for n in b.names if n not in b.alive()]
        if time.monotonic() > deadline or dead:
            why = f"stages exited: {dead}" if dead else f"timed out after {timeout}s"
            raise AssertionError(f"waiting for {what}: {why}\n" + "\n".join(b.stderr() for b in bots))
        time.sleep(0.1)


# -- the store ------------------------------------------------------------------------------


def row_key(rec: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """(table, natural key) of a record, as `store ingest` keys it."""
    table, row = to_row(rec)
    t = TABLES[table]
    return table, tuple(row[t.names.index(k)] for k in t.key)


def stored(db: Path) -> dict[tuple[str, tuple[Any, ...]], dict[str, Any]]:
    """Every stored record by (table, key), decoded from its raw column."""
    out: dict[tuple[str, tuple[Any, ...]], dict[str, Any]] = {}
    if not db.exists():
        return out
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
        have = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
        for t in TABLES.values():
            if not t.raw or t.name not in have:
                continue
            cols = ", ".join(f'"{k}"' for k in t.key)
            for *key, raw in conn.execute(f'select {cols}, raw from "{t.name}"'):
                out[(t.name, tuple(key))] = orjson.loads(raw)
    return out


def expected_rows(records: list[dict[str, Any]]) -> dict[tuple[str, tuple[Any, ...]], dict[str, Any]]:
    """What the store must hold for these records: the first record of every key."""
    out: dict[tuple[str, tuple[Any, ...]], dict[str, Any]] = {}
    for rec in records:
        out.setdefault(row_key(rec), rec)
    return out


def of(records: list[dict[str, Any]], rtype: str, **match: Any) -> list[dict[str, Any]]:
    return [r for r in records if r.get("type") == rtype and all(r.get(k) == v for k, v in match.items())]


def metric(records: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [r for r in records if r.get("type") == "metric" and r.get("name") == name]
