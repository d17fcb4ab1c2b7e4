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
import math
from collections.abc import Coroutine
from typing import Any

import orjson

from agkit.errors import UsageError
from agkit.feed.base import Attempt, FeedMetrics, LiveFeed, Silent
from agkit.records import metric_record, now_us
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


class RtdsFeed(LiveFeed):
    name = "feed rtds"
    source = "rtds"

    def __init__(
        self,
        subs: list[dict[str, Any]],
        *,
        url: str = RTDS_URL,
        ping_every: float = 5.0,
        silence: float = 60.0,
        **options: Any,  # LiveFeed's: backoff, max_retries, metrics_every, max_records, duration, record, seed ...
    ) -> None:
        super().__init__(
            url=url,
            metrics=FeedMetrics("polymarket.rtds", {"source": "rtds"}),
            ping_every=ping_every,
            silence=silence,
            **options,
        )
        self.subs = subs

    def start(self, ctx: Context) -> None:
        super().start(ctx)
        self.norm = RtdsNormalizer(log=lambda m: ctx.log(f"agkit {self.name}: {m}"))

    def last_lag_ms(self) -> float | None:
        return self.norm.last_lag_ms

    def _put(self, rec: dict[str, Any]) -> None:
        if self._finished is not None and self._finished.is_set():
            return
        super()._put(rec)

    def connections(self) -> list[Coroutine[Any, Any, None]]:
        return [self._connection()]

    def metric_records(self, now: int) -> list[dict[str, Any]]:
        out = self.metrics.records(now, live=True)
        for (topic, kind), n in sorted(self.norm.by_topic.items()):
            labels = {"source": "rtds", "topic": topic, "message_type": kind}
            out.append(metric_record(now, "polymarket.rtds.messages_by_topic", n, "counter", labels))
        return out

    async def _connection(self) -> None:
        messages = [orjson.dumps({"action": "subscribe", "subscriptions": [s]}).decode() for s in self.subs]

        async def session(ws: Any, attempt: Attempt) -> str:
            self.norm.refusals.clear()
            for m in messages:
                await ws.send(m)
            while True:
                try:
                    async with asyncio.timeout(self.silence if self.silence > 0 else None):
                        msg = await ws.recv()
                except TimeoutError:
                    raise Silent() from None
                now = now_us()
                recs = self.norm.frame(msg, now)
                if len(self.norm.refusals) >= len(messages):
                    return "every subscription refused: " + "; ".join(self.norm.refusals)
                if not recs:
                    continue
                if not attempt.healthy:
                    attempt.healthy = True
                    self._status("live", f"{len(self.subs)} subscriptions")
                for rec in recs:
                    self.metrics.message(self.norm.last_lag_ms)
                    self._put(rec)

        await self.keep_connected(session, open_timeout=max(min(self.silence, 30.0), 5.0))
