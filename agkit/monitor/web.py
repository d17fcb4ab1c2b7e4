"""The monitor's HTTP + WebSocket server (the `websockets` library, on the stage's loop).

Routes
    GET /                 the dashboard page (uPlot charts, vendored in static/)
    GET /static/NAME      the page's assets
    GET /health           JSON liveness and counters (never needs the token)
    GET /metrics          Prometheus text exposition of every series
    WS  /metrics          ingest, as in the original (also WS /ingest): each text frame holds
                          one or more newline-separated JSON records: agkit `metric` records,
                          the original's `{timestamp, metric_type, metric_name, value, labels}`,
                          or any other agkit record (positions, fills...) for the dashboards
    WS  /dashboard        browser feed: a backfill of the last minutes, then pushed updates
    GET /api/series       JSON: every series with its last value

A malformed ingest line is answered with an `error` frame naming the message and line,
counted, and skipped; the connection and its good lines carry on. Binding to a
non-loopback address needs a token (`Authorization: Bearer T` or `?token=T`),
then required on every data route (the page and its static assets hold no data).

Slow browsers never slow the ingest: ingest only appends to the ring buffers and to a
bounded pending batch; a timer encodes one frame per interval and hands it to each
client's own sender task. A client that falls too far behind is dropped back to a fresh
backfill instead of being queued for.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import mimetypes
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import orjson

from agkit.errors import InvalidRecord, UsageError
from agkit.monitor.prom import CONTENT_TYPE, exposition
from agkit.monitor.series import Series
from agkit.monitor.state import MonitorState

if TYPE_CHECKING:
    from websockets.asyncio.server import Server, ServerConnection
    from websockets.http11 import Request, Response

STATIC = Path(__file__).resolve().parent / "static"
DEFAULT_ADDR = "127.0.0.1:8080"
PUSH_INTERVAL = 0.02  # seconds between browser frames while data flows
MAX_QUEUED_FRAMES = 100  # a client further behind gets a fresh backfill instead
PENDING_PER_SERIES = 2_000  # points per series per frame, newest kept
BACKFILL_POINTS = 2_000  # per series in a backfill (evenly thinned)
ERROR_REPLIES = 1_000  # error frames sent back per ingest connection, then only counted


def parse_addr(addr: str) -> tuple[str, int]:
    """'HOST:PORT', ':PORT', 'PORT' or '[v6]:PORT' -> (host, port)."""
    host, _, port_s = addr.rpartition(":")
    if not _:
        host, port_s = "127.0.0.1", addr
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_s)
    except ValueError:
        raise UsageError(f"bad address {addr!r}: expected HOST:PORT") from None
    if not 0 <= port <= 65535:
        raise UsageError(f"bad port in {addr!r}")
    return host, port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Client:
    """One browser: its own queue of encoded frames and sender task."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.frames: deque[str] = deque()
        self.wake = asyncio.Event()
        self.resync = False
        self.sent = 0
        self.resyncs = 0

    def offer(self, frame: str) -> None:
        if len(self.frames) >= MAX_QUEUED_FRAMES:
            self.frames.clear()
            self.resync = True
        else:
            self.frames.append(frame)
        self.wake.set()


class WebServer:
    """Serves the dashboard, /metrics and /health, and takes WebSocket ingest."""

    def __init__(
        self,
        state: MonitorState,
        addr: str = DEFAULT_ADDR,
        token: str | None = None,
        backfill_s: float = 300.0,
        push_interval: float = PUSH_INTERVAL,
        log: Callable[[str], None] = print,
    ) -> None:
        self.state = state
        self.host, self.port = parse_addr(addr)
        if not is_loopback(self.host) and not token:
            raise UsageError(
                f"binding the monitor to {self.host} (not loopback) needs a token: "
                "--token or AGKIT_MONITOR_TOKEN"
            )
        self.token = token or None
        self.backfill_us = int(backfill_s * 1e6)
        self.push_interval = push_interval
        self.log = log
        self.clients: set[_Client] = set()
        self.pending: dict[int, tuple[list[int], list[float]]] = {}
        self.announced = len(state.store)  # series ids below this were announced to everyone
        self._flush_handle: asyncio.TimerHandle | None = None
        self.server: Server | None = None
        self.started = time.time()
        self.ingest_connections = 0
        self.ingest_records = 0
        self.logged_rejects = 0
        state.store.listeners.append(self._on_point)

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        from websockets.asyncio.server import serve

        self.loop = asyncio.get_running_loop()
        try:
            self.server = await serve(
                self._handler,
                self.host,
                self.port,
                process_request=self._process_request,
                max_size=16 << 20,
                max_queue=64,
                compression=None,
                server_header="agkit-monitor",
                ping_interval=30,
                ping_timeout=60,
            )
        except OSError as exc:
            raise UsageError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from None
        sock = next(iter(self.server.sockets))
        self.port = sock.getsockname()[1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    async def stop(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        if self.server is not None:
            self.server.close(close_connections=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 5)

    # -- HTTP -------------------------------------------------------------------------

    def _authorized(self, request: Request, query: dict[str, list[str]]) -> bool:
        if self.token is None:
            return True
        given = query.get("token", [""])[0]
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            given = auth[7:].strip()
        return hmac.compare_digest(given.encode(), self.token.encode())

    @staticmethod
    def _same_origin(request: Request) -> bool:
        """Browsers always send Origin on WebSockets; other sites may not push or read."""
        origin = request.headers.get("Origin")
        if origin is None or origin == "null":
            return origin is None
        return urlsplit(origin).netloc == request.headers.get("Host", "")

    def _response(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> Response:
        from websockets.datastructures import Headers
        from websockets.http11 import Response

        reasons = {200: "OK", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed"}
        headers = Headers()
        headers["Content-Type"] = ctype
        headers["Content-Length"] = str(len(body))
        headers["Cache-Control"] = "no-store"
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Connection"] = "close"
        for k, v in (extra or {}).items():
            headers[k] = v
        return Response(status, reasons.get(status, "Error"), headers, body)

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        path = parts.path
        query = parse_qs(parts.query)
        upgrade = "websocket" in request.headers.get("Upgrade", "").lower()
        if path == "/health":
            return self._response(200, orjson.dumps(self.health()), "application/json")
        # the page and its assets hold no data; the page passes its ?token= on to /dashboard
        if not upgrade and path in ("/", "/index.html"):
            return self._static("index.html")
        if not upgrade and path.startswith("/static/"):
            return self._static(path[len("/static/") :])
        if not self._authorized(request, query):
            return self._response(
                401, b"agkit monitor: a token is required (?token= or Authorization: Bearer)\n",
                "text/plain; charset=utf-8", {"WWW-Authenticate": "Bearer"},
            )
        if upgrade:
            if path not in ("/metrics", "/ingest", "/dashboard"):
                return self._response(404, b"no such WebSocket endpoint\n", "text/plain")
            if not self._same_origin(request):
                return self._response(403, b"cross-origin WebSocket refused\n", "text/plain")
            return None  # go on with the WebSocket handshake
        if path == "/metrics":
            return self._response(200, self.prometheus().encode(), CONTENT_TYPE)
        if path == "/api/series":
            return self._response(200, orjson.dumps(self.series_table()), "application/json")
        return self._response(404, b"not found\n", "text/plain")

    def _static(self, name: str) -> Response:
        if "/" in name or name.startswith(".") or not (STATIC / name).is_file():
            return self._response(404, b"not found\n", "text/plain")
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype.endswith("javascript"):
            ctype += "; charset=utf-8"
        return self._response(200, (STATIC / name).read_bytes(), ctype)

    def health(self) -> dict[str, Any]:
        st = self.state
        return {
            "status": "ok",
            "uptime_s": round(time.time() - self.started, 3),
            "records": st.records,
            "rejected": st.rejected,
            "series": len(st.store),
            "dropped_series_points": st.store.dropped_series,
            "browsers": len(self.clients),
            "ingest_connections": self.ingest_connections,
            "kill_switch": st.kill_engaged,
        }

    def prometheus(self) -> str:
        st = self.state
        extra = [
            ("agkit_monitor_records_total", "counter", "records taken by the monitor (stdin and ingest)", float(st.records)),
            ("agkit_monitor_rejected_total", "counter", "malformed ingest messages rejected", float(st.rejected)),
            ("agkit_monitor_series", "gauge", "series held", float(len(st.store))),
            ("agkit_monitor_dropped_points_total", "counter", "points refused: series cap reached", float(st.store.dropped_series)),
            ("agkit_monitor_browsers", "gauge", "dashboard clients connected", float(len(self.clients))),
            ("agkit_monitor_kill_switch", "gauge", "1 while a kill_switch record says engaged", 1.0 if st.kill_engaged else 0.0),
        ]
        return exposition(st.store, extra)

    def series_table(self) -> list[dict[str, Any]]:
        return [{**s.describe(), "last": s.last, "last_ts": s.last_ts, "count": s.count} for s in self.state.store]

    # -- WebSocket --------------------------------------------------------------------

    async def _handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        parts = urlsplit(ws.request.path)
        if parts.path == "/dashboard":
            await self._dashboard(ws)
        else:
            stage = parse_qs(parts.query).get("stage", [""])[0]
            await self._ingest(ws, stage)

    async def _ingest(self, ws: ServerConnection, stage: str) -> None:
        from websockets.exceptions import ConnectionClosed

        self.ingest_connections += 1
        st = self.state
        on_record = st.on_record
        peer = _peer(ws)
        replies = 0
        nmsg = 0
        try:
            async for msg in ws:
                nmsg += 1
                data = msg.encode() if isinstance(msg, str) else msg
                errors: list[dict[str, Any]] = []
                lineno = 0
                good = 0
                for line in data.split(b"\n"):
                    lineno += 1
                    if not line.strip():
                        continue
                    try:
                        rec = orjson.loads(line)
                    except orjson.JSONDecodeError as exc:
                        errors.append(self._reject(peer, nmsg, lineno, f"invalid JSON: {exc}", line))
                        continue
                    if type(rec) is not dict:
                        errors.append(self._reject(peer, nmsg, lineno, f"not a JSON object (a {type(rec).__name__})", line))
                        continue
                    try:
                        on_record(rec)
                    except InvalidRecord as exc:
                        errors.append(self._reject(peer, nmsg, lineno, str(exc), line))
                        continue
                    good += 1
                self.ingest_records += good
                if stage:
                    st.seen(f"push:{stage}", good, errors[-1]["reason"] if errors else None)
                for err in errors:
                    if replies < ERROR_REPLIES:
                        replies += 1
                        with contextlib.suppress(asyncio.TimeoutError):
                            await asyncio.wait_for(ws.send(orjson.dumps(err).decode()), 1.0)
        except ConnectionClosed:
            pass
        finally:
            self.ingest_connections -= 1

    def _reject(self, peer: str, nmsg: int, lineno: int, reason: str, raw: bytes) -> dict[str, Any]:
        message = f"ingest {peer} message {nmsg} line {lineno}: {reason}"
        self.state.reject(message)
        self.logged_rejects += 1
        if self.logged_rejects <= 20:
            self.log(f"agkit monitor: {message} (rejected)")
        now = time.time_ns() // 1000
        return {
            "type": "error",
            "ts_event": now,
            "ts_init": now,
            "message": nmsg,
            "line": lineno,
            "reason": reason,
            "raw": raw[:512].decode("utf-8", "replace"),
            "source": "monitor",
        }

    async def _dashboard(self, ws: ServerConnection) -> None:
        from websockets.exceptions import ConnectionClosed

        client = _Client(ws)
        self.clients.add(client)
        try:
            await ws.send(self.backfill())
            reader = asyncio.ensure_future(_drain(ws))
            while not reader.done():
                waiter = asyncio.ensure_future(client.wake.wait())
                await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                client.wake.clear()
                if client.resync:
                    client.resync = False
                    client.resyncs += 1
                    await ws.send(self.backfill())
                while client.frames and not client.resync:
                    await ws.send(client.frames.popleft())
                    client.sent += 1
            reader.cancel()
        except ConnectionClosed:
            pass
        finally:
            self.clients.discard(client)

    def _on_point(self, s: Series, ts: int, value: float) -> None:
        """Store listener: batch the point for the browsers (nothing to do without any)."""
        if not self.clients:
            return
        p = self.pending.get(s.id)
        if p is None:
            p = self.pending[s.id] = ([], [])
        p[0].append(ts)
        p[1].append(value)
        if len(p[0]) > PENDING_PER_SERIES:
            del p[0][: PENDING_PER_SERIES // 2]
            del p[1][: PENDING_PER_SERIES // 2]
        if self._flush_handle is None:
            self._flush_handle = self.loop.call_later(self.push_interval, self.flush)

    def _defs(self) -> list[dict[str, Any]]:
        store = self.state.store
        defs = [s.describe() for s in store.by_id[self.announced :]]
        self.announced = len(store)
        return defs

    def status(self) -> dict[str, Any]:
        st = self.state
        realized, unrealized, inventory = st.pnl()
        return {
            "records": st.records,
            "rate": round(st.rate, 1),
            "rejected": st.rejected,
            "series": len(st.store),
            "kill": st.kill_engaged,
            "kill_reason": st.kill_reason,
            "denied": st.denied,
            "accepted": st.accepted,
            "fills": len(st.fills),
            "pnl": realized + unrealized,
            "inventory": inventory,
            "now": time.time_ns() // 1000,
        }

    def flush(self) -> None:
        """Encode the pending points once and hand the frame to every browser."""
        self._flush_handle = None
        pending, self.pending = self.pending, {}
        defs = self._defs()
        if not self.clients or (not pending and not defs):
            return
        frame = orjson.dumps(
            {"t": "points", "defs": defs, "p": [[sid, ts, vs] for sid, (ts, vs) in pending.items()], "status": self.status()}
        ).decode()
        for client in self.clients:
            client.offer(frame)

    def tick(self) -> None:
        """Once a second: a status frame, so the page's header is live even when idle."""
        if self.clients:
            frame = orjson.dumps({"t": "status", "defs": self._defs(), "status": self.status()}).decode()
            for client in self.clients:
                client.offer(frame)

    def backfill(self) -> str:
        """Every series' points of the last `backfill` seconds (before its newest point)."""
        store = self.state.store
        data = []
        for s in store:
            if not s.count:
                continue
            ts, vs = s.ring.range(s.last_ts - self.backfill_us, s.last_ts)
            if len(ts) > BACKFILL_POINTS:
                step = -(-len(ts) // BACKFILL_POINTS)
                ts, vs = ts[::-step][::-1], vs[::-step][::-1]  # keep the newest point
            data.append([s.id, ts.tolist(), vs.tolist()])
        msg = {
            "t": "backfill",
            "defs": [s.describe() for s in store],
            "p": data,
            "status": self.status(),
            "backfill_s": self.backfill_us / 1e6,
        }
        return orjson.dumps(msg).decode()


async def _drain(ws: ServerConnection) -> None:
    """Read (and ignore) what a browser sends, until it closes."""
    from websockets.exceptions import ConnectionClosed

    with contextlib.suppress(ConnectionClosed):
        async for _ in ws:
            pass


def _peer(ws: ServerConnection) -> str:
    addr = ws.remote_address
    if isinstance(addr, tuple) and len(addr) >= 2:
        return f"{addr[0]}:{addr[1]}"
    return str(addr)
