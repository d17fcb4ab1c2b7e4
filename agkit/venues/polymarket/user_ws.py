"""The CLOB user channel (§6.2): our order and trade events over a WebSocket.

`UserChannel.run()` connects, authenticates with the raw L2 credentials, keeps the
socket alive with text PINGs, hands every event (frames may be an object or an array)
to `on_event`, and on any disconnect or silence reconnects with backoff. After each
(re)connect it awaits `on_connect()` — the venue reconciles open orders and recent
trades over REST there — before it reads further events, and the venue holds new
orders until that has finished.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from agkit.venues.polymarket.signing import ApiCreds

DEFAULT_WS_URL = "wss://ws-subscriptions-clob.polymarket.com/ws/user"
PING_INTERVAL = 10.0
STALE_AFTER = 30.0


class UserChannel:
    def __init__(
        self,
        url: str,
        creds: ApiCreds,
        on_event: Callable[[dict[str, Any]], None],
        *,
        on_connect: Callable[[], Awaitable[None]] | None = None,
        on_disconnect: Callable[[str], None] | None = None,
        markets: list[str] | None = None,
        log: Callable[[str], None] | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        ping_interval: float = PING_INTERVAL,
        stale_after: float = STALE_AFTER,
    ) -> None:
        self.url = url
        self.creds = creds
        self.on_event = on_event
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self.markets = list(markets or [])
        self.log = log or (lambda _m: None)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.ping_interval = ping_interval
        self.stale_after = stale_after
        self.connects = 0
        self.events = 0
        self.connected = asyncio.Event()
        self._closing = False

    def __repr__(self) -> str:
        return f"UserChannel(url={self.url!r}, connects={self.connects})"

    def subscribe_message(self) -> str:
        return json.dumps(
            {
                "auth": {
                    "apiKey": self.creds.api_key,
                    "secret": self.creds.secret.reveal(),
                    "passphrase": self.creds.passphrase.reveal(),
                },
                "markets": self.markets,
                "type": "user",
            }
        )

    async def run(self) -> None:
        """Connect, read, reconnect — until `close()`."""
        import websockets

        delay = self.backoff_base
        while not self._closing:
            reason = "closed"
            try:
                async with websockets.connect(self.url, ping_interval=None, open_timeout=10, max_size=None) as ws:
                    await ws.send(self.subscribe_message())
                    self.connects += 1
                    if self.on_connect is not None:
                        await self.on_connect()
                    self.connected.set()
                    delay = self.backoff_base
                    reason = await self._read(ws)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # network errors, handshake refused, ...
                reason = f"{type(exc).__name__}: {exc}"
            self.connected.clear()
            if self._closing:
                return
            if self.on_disconnect is not None:
                self.on_disconnect(reason)
            self.log(f"polymarket user channel: disconnected ({reason}); reconnecting in {delay:.1f} s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max)

    async def _read(self, ws: Any) -> str:
        loop = asyncio.get_running_loop()
        last = loop.time()
        next_ping = last + self.ping_interval
        while True:
            timeout = max(0.0, min(next_ping, last + self.stale_after) - loop.time())
            try:
                frame = await asyncio.wait_for(ws.recv(), timeout=timeout)
            except TimeoutError:
                now = loop.time()
                if now - last >= self.stale_after:
                    return f"no frame for {self.stale_after:.0f} s"
                await ws.send("PING")
                next_ping = now + self.ping_interval
                continue
            except Exception as exc:
                return f"{type(exc).__name__}: {exc}"
            last = loop.time()
            if not isinstance(frame, str) or frame in ("PONG", "PING", ""):
                continue
            try:
                data = json.loads(frame)
            except ValueError:
                self.log(f"polymarket user channel: not JSON, ignored: {frame[:120]!r}")
                continue
            for ev in data if isinstance(data, list) else [data]:
                if isinstance(ev, dict):
                    self.events += 1
                    self.on_event(ev)

    async def close(self) -> None:
        self._closing = True
