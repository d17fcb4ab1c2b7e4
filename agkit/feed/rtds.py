"""`agkit feed rtds`: Polymarket's real-time data socket (RTDS) into records.

Price topics (`crypto_prices`, `crypto_prices_chainlink`, `equity_prices`, the
`crypto_prices_twap_*` ones) become `reference_price` records (a snapshot frame's
`data[]` backfill gives one record per point); every other topic (`comments`,
`activity`, ...) is passed on as an `rtds_event` record carrying the payload.

Each subscription goes out in its own `subscribe` message, so one unknown topic
(which makes the venue refuse the whole message with
`{"statusCode": 401, "body": {"message": "... not found"}}`) does not take the others
down. JSON filters are re-encoded compactly (the venue silently ignores
`{"symbol": "x"}` with a space). Keep-alive: the text `PING` every 5 s; PONG is
not required. Reconnects with exponential backoff and jitter and resubscribes;
`feed_status` reconnecting → live marks every gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from typing import Any

import orjson

from agkit.errors import UsageError, VenueError
from agkit.feed.base import FeedMetrics, SourceStage
from agkit.records import now_us
from agkit.stage import Context

RTDS_URL = "wss://ws-live-data.polymarket.com"
PRICE_TOPICS = frozenset(
    {
        "crypto_prices",
        "crypto_prices_chainlink",
        "equity_prices",
        "crypto_prices_twap_thirty",
        "crypto_prices_twap_sixty",
    }
)
REPORT_FIRST = 20


def subscriptions(
    topics: list[str], types: list[str], filters: list[str]
) -> list[dict[str, Any]]:
    """--topic/--type/--filter, paired by position (type defaults to `*`)."""
    if not topics:
        raise UsageError("name at least one --topic (e.g. crypto_prices)")
    if len(types) > len(topics) or len(filters) > len(topics):
        raise UsageError("more --type or --filter than --topic: they pair up by position")
    out = []
    for i, topic in enumerate(topics):
        sub: dict[str, Any] = {"topic": topic, "type": types[i] if i < len(types) else "*"}
        if i < len(filters) and filters[i] != "":
            f = filters[i].strip()
            if f.startswith(("{", "[")):
                try:
                    f = orjson.dumps(orjson.loads(f)).decode()  # compact, or the venue ignores it
                except orjson.JSONDecodeError:
                    raise UsageError(f"--filter {filters[i]!r} is not valid JSON") from None
            sub["filters"] = f
        out.append(sub)
    return out


def _ts_us(value: Any, default: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return default
    try:
        x = float(value)
    except ValueError:
        return default
    if not math.isfinite(x) or x <= 0:
        return default
    if x < 1e11:  # seconds
        return int(x * 1_000_000)
    if x < 1e14:  # milliseconds
        return int(x * 1000)
    return int(x)


class RtdsNormalizer:
    """RTDS messages in, records out. No I/O."""

    def __init__(self, log: Any = None) -> None:
        self.log = log or (lambda _m: None)
        self.bad = 0
        self.refusals: list[str] = []
        self.last_lag_ms: float | None = None
        self.by_topic: dict[tuple[str, str], int] = {}

    def _bad(self, reason: str) -> None:
        self.bad += 1
        if self.bad <= REPORT_FIRST:
            self.log(f"bad frame skipped: {reason}")

    def frame(self, data: str | bytes, now: int) -> list[dict[str, Any]]:
        text = data if isinstance(data, str) else data.decode("utf-8", "replace")
        if text.strip().upper() in ("PONG", "PING", ""):
            return []
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            self._bad(f"not JSON: {text[:120]!r}")
            return []
        items = obj if isinstance(obj, list) else [obj]
        out: list[dict[str, Any]] = []
        for msg in items:
            out += self.message(msg, now)
        return out

    def message(self, msg: Any, now: int) -> list[dict[str, Any]]:
        if not isinstance(msg, dict):
            self._bad(f"message is not an object: {str(msg)[:120]}")
            return []
        if "statusCode" in msg and "topic" not in msg:  # the venue refusing a subscription
            body = msg.get("body")
            why = body.get("message") if isinstance(body, dict) else body
            text = f"{msg.get('statusCode')} {why}"
            self.refusals.append(text)
            self.log(f"subscription refused: {text}")
            return []
        topic, kind = msg.get("topic"), msg.get("type")
        if not isinstance(topic, str) or not isinstance(kind, str):
            self._bad(f"no topic/type: {orjson.dumps(msg)[:120].decode('utf-8', 'replace')}")
            return []
        key = (topic, kind)
        self.by_topic[key] = self.by_topic.get(key, 0) + 1
        ts = _ts_us(msg.get("timestamp"), now)
        self.last_lag_ms = (now - ts) / 1000
        payload = msg.get("payload")
        if topic in PRICE_TOPICS:
            return self._prices(topic, payload, ts, now)
        rec: dict[str, Any] = {
            "type": "rtds_event",
            "ts_event": ts,
            "ts_init": now,
            "topic": topic,
            "event": kind,
            "payload": payload,
        }
        if isinstance(msg.get("connection_id"), str):
            rec["connection_id"] = msg["connection_id"]
        return [rec]

    def _prices(self, topic: str, payload: Any, ts: int, now: int) -> list[dict[str, Any]]:
        if not isinstance(payload, dict) or not isinstance(payload.get("symbol"), str):
            self._bad(f"{topic}: payload without a symbol")
            return []
        symbol = payload["symbol"]
        data = payload.get("data")
        points: list[Any] = data if isinstance(data, list) else [payload]
        out = []
        for p in points:
            if not isinstance(p, dict):
                self._bad(f"{topic}: bad data point {p!r}")
                continue
            value = p.get("value")
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    value = None
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                self._bad(f"{topic} {symbol}: bad value {p.get('value')!r}")
                continue
            out.append(
                {
                    "type": "reference_price",
                    "ts_event": _ts_us(p.get("timestamp"), ts),
                    "ts_init": now,
                    "source": topic,
                    "symbol": symbol,
                    "value": float(value),
                }
            )
        return out


class _Silent(Exception):
    pass


class RtdsFeed(SourceStage):
    name = "feed rtds"

    def __init__(
        self,
        subs: list[dict[str, Any]],
        *,
        url: str = RTDS_URL,
        ping_every: float = 5.0,
        silence: float = 60.0,
        backoff: float = 0.5,
        backoff_max: float = 30.0,
        max_retries: int = 0,
        metrics_every: float = 10.0,
        max_records: int = 0,
        duration: float = 0.0,
        record: str | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(record)
        self.subs = subs
        self.url = url
        self.ping_every = ping_every
        self.silence = silence
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.max_retries = max_retries
        self.metrics_every = metrics_every
        self.max_records = max_records
        self.duration = duration
        self.rng = random.Random(seed)
        self.metrics = FeedMetrics("polymarket.rtds", {"source": "rtds"})
        self.emitted = 0
        self._finished: asyncio.Event | None = None

    def start(self, ctx: Context) -> None:
        super().start(ctx)
        self.norm = RtdsNormalizer(log=lambda m: ctx.log(f"agkit {self.name}: {m}"))

    def _put(self, rec: dict[str, Any]) -> None:
        if self._finished is not None and self._finished.is_set():
            return
        self.emit(rec)
        self.emitted += 1
        if self.max_records and self.emitted >= self.max_records and self._finished is not None:
            self._finished.set()

    def _status(self, state: str, detail: str) -> None:
        now = now_us()
        rec: dict[str, Any] = {"type": "feed_status", "ts_event": now, "ts_init": now, "source": "rtds",
                               "state": state, "detail": detail}
        if self.norm.last_lag_ms is not None:
            rec["lag_ms"] = round(self.norm.last_lag_ms, 3)
        self._put(rec)

    async def run(self, ctx: Context) -> None:
        self._finished = asyncio.Event()
        conn = asyncio.create_task(self._connection())
        helpers = []
        if self.metrics_every > 0:
            helpers.append(asyncio.create_task(self._metrics_loop()))
        finished = asyncio.create_task(self._finished.wait())
        waiters: list[asyncio.Task[Any]] = [conn, finished]
        if self.duration > 0:
            waiters.append(asyncio.create_task(asyncio.sleep(self.duration)))
        try:
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if conn in done and conn.exception() is not None:
                raise conn.exception()  # type: ignore[misc]
        finally:
            for t in waiters + helpers:
                t.cancel()
            for t in waiters + helpers:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t

    async def _metrics_loop(self) -> None:
        while True:
            await asyncio.sleep(self.metrics_every)
            now = now_us()
            for rec in self.metrics.records(now, live=True):
                self._put(rec)
            for (topic, kind), n in sorted(self.norm.by_topic.items()):
                self._put({"type": "metric", "ts_event": now, "ts_init": now,
                           "name": "polymarket.rtds.messages_by_topic", "kind": "counter", "value": n,
                           "labels": {"source": "rtds", "topic": topic, "message_type": kind}})
            self.flush_record()

    async def _ping(self, ws: Any) -> None:
        while True:
            await asyncio.sleep(self.ping_every)
            await ws.send("PING")

    async def _connection(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

        messages = [orjson.dumps({"action": "subscribe", "subscriptions": [s]}).decode() for s in self.subs]
        failures = 0
        ever_connected = False
        while True:
            reason = "closed"
            healthy = False
            try:
                async with connect(self.url, ping_interval=None, open_timeout=max(min(self.silence, 30.0), 5.0),
                                   close_timeout=1.0, max_size=1 << 24) as ws:
                    ever_connected = True
                    self.metrics.connected = True
                    self.norm.refusals.clear()
                    for m in messages:
                        await ws.send(m)
                    pinger = asyncio.create_task(self._ping(ws))
                    live = False
                    try:
                        while True:
                            try:
                                async with asyncio.timeout(self.silence if self.silence > 0 else None):
                                    msg = await ws.recv()
                            except TimeoutError:
                                raise _Silent() from None
                            now = now_us()
                            recs = self.norm.frame(msg, now)
                            if len(self.norm.refusals) >= len(messages):
                                reason = "every subscription refused: " + "; ".join(self.norm.refusals)
                                break
                            if not recs:
                                continue
                            if not live:
                                live = healthy = True
                                self._status("live", f"{len(self.subs)} subscriptions")
                            for rec in recs:
                                self.metrics.message(self.norm.last_lag_ms)
                                self._put(rec)
                    finally:
                        pinger.cancel()
            except _Silent:
                reason = f"no frame for {self.silence:g} s (watchdog)"
                self._status("stale", reason)
            except ConnectionClosed as exc:
                rcv = exc.rcvd
                reason = f"connection closed ({rcv.code} {rcv.reason})".rstrip() if rcv else "connection dropped"
            except InvalidURI as exc:
                raise VenueError(f"bad WebSocket URL {self.url}: {exc}") from None
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                reason = f"cannot connect to {self.url}: {exc or type(exc).__name__}"
            self.metrics.connected = False
            failures = 1 if healthy else failures + 1
            if self.max_retries and failures > self.max_retries:
                what = "refused or dropped every subscription" if ever_connected else "unreachable"
                self._status("stale", f"gave up after {self.max_retries} retries: {reason}")
                raise VenueError(f"{self.url} {what} ({self.max_retries} retries); last: {reason}")
            delay = min(self.backoff_max, self.backoff * 2 ** (failures - 1)) * self.rng.uniform(0.5, 1.0)
            self._status("reconnecting", f"{reason}; retry in {delay:.2f} s")
            self.ctx.log(f"agkit {self.name}: {reason}; reconnecting in {delay:.2f} s")
            await asyncio.sleep(delay)
            self.metrics.reconnects += 1
