"""Fake venue servers on 127.0.0.1 for the feed tests: strict, scripted, real sockets.

`FakeWS` is a real WebSocket server (the websockets library) in a background thread.
Each accepted connection takes the next script (the last one repeats). Steps:
  ("send", text)         send one text frame
  ("sendmany", [texts])  send several frames back to back
  ("wait_ping",)         wait until the client sent the text frame PING
  ("sleep", seconds)
  ("drop",)              abort the TCP connection without a closing handshake
  ("close", code, why)   close with a closing handshake
  ("silent",)            stop sending anything (not even PONG) until the client leaves
  ("refuse",)            answer the subscription with an error text and close 1008
After the script the server keeps the connection open, answering PING with PONG.

Strictness, like the venue: the first client message must be the subscription
(JSON with the expected keys); afterwards only PING (or JSON operations) are allowed;
anything else closes the connection with 1008 and is recorded in `violations`.

`FakeHTTP` is a threaded http.server whose routes are callables
`(path, query) -> (status, headers, body)`; unknown paths answer 404 and are recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

Step = tuple[Any, ...]


def check_market_subscription(msg: Any) -> str | None:
    if not isinstance(msg, dict):
        return "subscription is not an object"
    ids = msg.get("assets_ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(a, str) and a for a in ids):
        return "assets_ids must be a non-empty list of strings"
    if msg.get("type") != "market":
        return "type must be 'market'"
    return None


def check_rtds_subscription(msg: Any) -> str | None:
    if not isinstance(msg, dict) or msg.get("action") != "subscribe":
        return "action must be 'subscribe'"
    subs = msg.get("subscriptions")
    if not isinstance(subs, list) or not subs:
        return "subscriptions must be a non-empty list"
    for sub in subs:
        if not isinstance(sub, dict) or not isinstance(sub.get("topic"), str):
            return "each subscription needs a topic"
        if not isinstance(sub.get("type"), str):
            return "each subscription needs a type"
        f = sub.get("filters")
        if f is not None:
            if not isinstance(f, str):
                return "filters must be a string"
            if f.startswith(("{", "[")) and orjson.dumps(orjson.loads(f)).decode() != f:
                return "filters JSON must be compact"
    return None


class FakeWS:
    def __init__(
        self,
        scripts: list[list[Step]],
        check: Callable[[Any], str | None] = check_market_subscription,
        ping_text: str = "PING",
        pong_text: str = "PONG",
    ) -> None:
        self.scripts = scripts
        self.check = check
        self.ping_text = ping_text
        self.pong_text = pong_text
        self.subscriptions: list[Any] = []
        self.pings = 0
        self.violations: list[str] = []
        self.connections = 0
        self.finished = 0  # scripts played to the end
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/market"

    def __enter__(self) -> FakeWS:
        self._thread.start()
        assert self._ready.wait(10), "fake WebSocket server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        from websockets.asyncio.server import serve

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self._handle, "127.0.0.1", 0, ping_interval=None, max_size=1 << 24) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop.wait()
            server.close(close_connections=True)

    async def _handle(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        index = self.connections
        self.connections += 1
        script = self.scripts[min(index, len(self.scripts) - 1)]
        silent = asyncio.Event()
        pinged = asyncio.Event()
        try:
            first = await asyncio.wait_for(ws.recv(), 10)
            try:
                msg = orjson.loads(first)
            except orjson.JSONDecodeError:
                msg = first
            problem = self.check(msg)
            if problem:
                self.violations.append(problem)
                await ws.close(1008, problem)
                return
            self.subscriptions.append(msg)

            async def reader() -> None:
                async for frame in ws:
                    if frame == self.ping_text:
                        self.pings += 1
                        pinged.set()
                        if not silent.is_set():
                            await ws.send(self.pong_text)
                        continue
                    try:
                        op = orjson.loads(frame)
                    except orjson.JSONDecodeError:
                        op = None
                    if isinstance(op, dict) and ("operation" in op or "action" in op):
                        self.subscriptions.append(op)
                        continue
                    self.violations.append(f"unexpected client frame {frame!r}")
                    await ws.close(1008, "unexpected frame")
                    return

            reading = asyncio.create_task(reader())
            try:
                for step in script:
                    kind = step[0]
                    if kind == "send":
                        await ws.send(step[1])
                    elif kind == "sendmany":
                        for text in step[1]:
                            await ws.send(text)
                    elif kind == "wait_ping":
                        await asyncio.wait_for(pinged.wait(), 30)
                    elif kind == "sleep":
                        await asyncio.sleep(step[1])
                    elif kind == "drop":
                        ws.transport.abort()
                        return
                    elif kind == "close":
                        await ws.close(step[1], step[2])
                        return
                    elif kind == "silent":
                        silent.set()
                    elif kind == "refuse":
                        await ws.send("INVALID OPERATION")
                        await ws.close(1008, "subscription refused")
                        return
                    else:
                        raise AssertionError(f"unknown step {step!r}")
                self.finished += 1
                await reading
            finally:
                reading.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reading
        except (TimeoutError, ConnectionClosed, OSError):
            return


Route = Callable[[str, dict[str, list[str]]], tuple[int, dict[str, str], bytes]]


class FakeHTTP:
    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = routes
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self.unknown: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                fake.requests.append((parts.path, query))
                route = fake.routes.get(parts.path)
                if route is None:
                    for prefix, r in fake.routes.items():
                        if prefix.endswith("*") and parts.path.startswith(prefix[:-1]):
                            route = r
                            break
                if route is None:
                    fake.unknown.append(parts.path)
                    status, headers, body = 404, {}, b'{"error":"not found"}'
                else:
                    status, headers, body = route(parts.path, query)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeHTTP:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def json_route(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Route:
    body = orjson.dumps(doc)
    return lambda _p, _q: (status, headers or {}, body)
