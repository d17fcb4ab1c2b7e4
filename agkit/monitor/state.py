"""What the monitor knows: the series store plus the trading picture built from records.

`MonitorState.on_record(rec)` takes any record (stdin or WebSocket ingest) and updates
- the series store (every `metric` record, in agkit or original form),
- per market: book top and last trade; positions and PnL marked at the book mid;
  open orders (submitted until filled, canceled, expired, rejected or denied); a fills
  tape; risk decisions and the kill switch; feed status and lag; stage health,
- derived series so the charts work without any stage pushing metrics:
  `feed.lag_ms{source}`, `position.size{market,asset}`, `risk.decision` (0 denied,
  1 accepted), `risk.kill_switch`, `fills.count`, `fills.notional_usd`,
  `exec.ack_latency_ms`, and once a second `monitor.records_per_second`,
  `monitor.records_received`, `portfolio.*_pnl_usd`, `portfolio.inventory_value_usd`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agkit.errors import InvalidRecord
from agkit.monitor.series import Series, SeriesStore, check_metric
from agkit.records import now_us
from agkit.ring import MAX_ABS_VALUE

FILLS_KEPT = 500
DECISIONS_KEPT = 200
STALE_AFTER_US = 5_000_000


@dataclass
class MarketView:
    market: str
    asset: str
    venue: str = ""
    bid: float | None = None
    bid_size: float | None = None
    ask: float | None = None
    ask_size: float | None = None
    last_price: float | None = None
    last_size: float | None = None
    last_side: str | None = None
    book_ts: int = 0
    trade_ts: int = 0

    @property
    def mid(self) -> float | None:
        if self.bid is not None and self.ask is not None:
            return (self.bid + self.ask) / 2
        return self.last_price


@dataclass
class PositionView:
    market: str
    asset: str
    size: float = 0.0
    avg_price: float = 0.0
    realized_pnl: float = 0.0
    fees: float = 0.0
    ts: int = 0


@dataclass
class StageHealth:
    name: str
    last_seen: int = 0
    records: int = 0
    errors: int = 0
    detail: str = ""

    def status(self, now: int) -> str:
        if self.errors and self.detail.startswith("error"):
            return "error"
        return "stale" if now - self.last_seen > STALE_AFTER_US else "ok"


@dataclass
class MonitorState:
    store: SeriesStore = field(default_factory=SeriesStore)
    markets: dict[tuple[str, str], MarketView] = field(default_factory=dict)
    positions: dict[tuple[str, str], PositionView] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    fills: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=FILLS_KEPT))
    decisions: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=DECISIONS_KEPT))
    denied: int = 0
    accepted: int = 0
    kill_engaged: bool = False
    kill_reason: str = ""
    kill_ts: int = 0
    feeds: dict[str, dict[str, Any]] = field(default_factory=dict)
    stages: dict[str, StageHealth] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    other: int = 0  # records other than hot-path metrics
    metrics: int = 0  # metric records taken on the hot path
    rejected: int = 0  # malformed ingest messages
    rate: float = 0.0  # records per second over the last tick
    errors: deque[str] = field(default_factory=lambda: deque(maxlen=50))
    _last_tick_records: int = 0
    _last_tick_us: int = 0
    _handlers: dict[str, Callable[[dict[str, Any]], None]] = field(default_factory=dict)
    _hot: dict[tuple[Any, Any, Any], Series] = field(default_factory=dict)

    @property
    def records(self) -> int:
        """Records taken (stdin and ingest), malformed ones excluded."""
        return self.other + self.metrics

    def __post_init__(self) -> None:
        self._hot = self.store._hot
        self._handlers = {
            "metric": self._metric,
            "book": self._book,
            "trade": self._trade,
            "feed_status": self._feed_status,
            "position": self._position,
            "submit_order": self._submit,
            "order_accepted": self._accepted,
            "order_denied": self._denied,
            "order_rejected": self._closed,
            "order_canceled": self._closed,
            "order_expired": self._closed,
            "order_filled": self._filled,
            "kill_switch": self._kill,
            "error": self._error,
        }
        self._last_tick_us = now_us()

    # -- ingest ---------------------------------------------------------------------

    def on_record(self, rec: dict[str, Any]) -> None:
        """Take one decoded record; InvalidRecord if a record the monitor reads is malformed."""
        rtype = rec.get("type")
        if rtype == "metric":
            # the hot path: a series seen before, a plain value (see SeriesStore.add_metric)
            labels = rec.get("labels")
            try:
                s = self._hot.get((rec.get("name"), rec.get("kind"), tuple(labels.items()) if labels else None))
            except (TypeError, AttributeError):
                s = None
            if s is not None and s.kind == "gauge":
                value: Any = rec.get("value")
                ts: Any = rec.get("ts_event")
                vt = type(value)
                if (vt is float or vt is int) and type(ts) is int and -MAX_ABS_VALUE <= value <= MAX_ABS_VALUE:
                    pts = s.pts
                    pts.append(ts)
                    s.pvs.append(value)
                    if len(pts) >= s.cap:
                        s.sync()
                    s.count += 1
                    s.last_ts = ts
                    s.last = value
                    listeners = self.store.listeners
                    if listeners:
                        for fn in listeners:
                            fn(s, ts, value)
                    self.metrics += 1
                    return
            self.store.add_metric(rec)
            self.metrics += 1
            return
        if rtype is None and "metric_name" in rec:
            rtype = "metric"
        if type(rtype) is not str:
            raise InvalidRecord("no string `type` field (and not an original metric)")
        counts = self.counts
        counts[rtype] = counts.get(rtype, 0) + 1
        handler = self._handlers.get(rtype)
        if handler is not None:
            # every handler but the metrics' (they check their own time, ms in the
            # original's form) keeps ts_event as a time
            if rtype != "metric" and type(rec.get("ts_event")) is not int:
                raise InvalidRecord(f"{rtype}: ts_event must be integer microseconds, got {rec.get('ts_event')!r}")
            try:
                handler(rec)
            except InvalidRecord:
                raise
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                raise InvalidRecord(f"bad {rtype} record: {type(exc).__name__}: {exc}") from None
        self.other += 1

    def _metric(self, rec: dict[str, Any]) -> None:
        name, kind, value, labels, ts, inc = check_metric(rec)
        self.store.add(name, kind, value, labels, ts, inc)

    def seen(self, stage: str, records: int = 1, error: str | None = None) -> None:
        h = self.stages.get(stage)
        if h is None:
            h = self.stages[stage] = StageHealth(stage)
        h.last_seen = now_us()
        h.records += records
        if error is not None:
            h.errors += 1
            h.detail = error

    def _gauge(self, name: str, value: float, labels: dict[str, str], ts: int) -> None:
        if -MAX_ABS_VALUE <= value <= MAX_ABS_VALUE:  # what the ring buffer holds; NaN fails
            self.store.add(name, "gauge", value, labels, ts)

    def _book(self, rec: dict[str, Any]) -> None:
        key = (rec["market"], rec["asset"])
        m = self.markets.get(key)
        if m is None:
            m = self.markets[key] = MarketView(key[0], key[1], rec.get("venue", ""))
        bids, asks = rec["bids"], rec["asks"]
        if bids:
            m.bid, m.bid_size = float(bids[0][0]), float(bids[0][1])
        else:
            m.bid = m.bid_size = None
        if asks:
            m.ask, m.ask_size = float(asks[0][0]), float(asks[0][1])
        else:
            m.ask = m.ask_size = None
        m.book_ts = rec["ts_event"]

    def _trade(self, rec: dict[str, Any]) -> None:
        key = (rec["market"], rec["asset"])
        m = self.markets.get(key)
        if m is None:
            m = self.markets[key] = MarketView(key[0], key[1], rec.get("venue", ""))
        m.last_price, m.last_size, m.last_side = float(rec["price"]), float(rec["size"]), rec["side"]
        m.trade_ts = rec["ts_event"]

    def _feed_status(self, rec: dict[str, Any]) -> None:
        source = str(rec["source"])
        self.feeds[source] = {"state": rec["state"], "lag_ms": rec.get("lag_ms"), "ts": rec["ts_event"]}
        lag = rec.get("lag_ms")
        if isinstance(lag, int | float) and not isinstance(lag, bool):
            self._gauge("feed.lag_ms", float(lag), {"source": source}, rec["ts_event"])
        self.seen(f"feed:{source}", error="error: " + rec["state"] if rec["state"] != "live" else None)
        if rec["state"] == "live":
            self.stages[f"feed:{source}"].detail = "live"

    def _position(self, rec: dict[str, Any]) -> None:
        key = (rec["market"], rec["asset"])
        p = self.positions.get(key)
        if p is None:
            p = self.positions[key] = PositionView(key[0], key[1])
        p.size, p.avg_price = float(rec["size"]), float(rec["avg_price"])
        p.realized_pnl, p.fees, p.ts = float(rec["realized_pnl"]), float(rec["fees"]), rec["ts_event"]
        labels = {"market": key[0], "asset": key[1]}
        self._gauge("position.size", p.size, labels, p.ts)

    def _submit(self, rec: dict[str, Any]) -> None:
        oid = str(rec["id"])
        self.orders[oid] = {
            "id": oid,
            "strategy": rec.get("strategy", ""),
            "market": rec.get("market", ""),
            "asset": rec.get("asset", ""),
            "side": rec["side"],
            "price": float(rec["price"]),
            "size": float(rec["size"]),
            "filled": 0.0,
            "status": "submitted",
            "ts": rec["ts_event"],
            "ts_init": rec.get("ts_init", rec["ts_event"]),
        }
        if len(self.orders) > 10_000:  # never grow without bound on a lossy stream
            del self.orders[next(iter(self.orders))]
        if rec.get("strategy"):
            self.seen(f"strategy:{rec['strategy']}")

    def _decision(self, allowed: bool, rec: dict[str, Any], reason: str) -> None:
        self.decisions.append(
            {"ts": rec["ts_event"], "id": rec.get("id"), "allowed": allowed, "reason": reason}
        )
        self._gauge("risk.decision", 1.0 if allowed else 0.0, {}, rec["ts_event"])

    def _accepted(self, rec: dict[str, Any]) -> None:
        self.accepted += 1
        order = self.orders.get(str(rec["id"]))
        if order is not None:
            order["status"] = "open"
            latency = (rec.get("ts_init", rec["ts_event"]) - order["ts_init"]) / 1000
            if latency >= 0:
                self._gauge("exec.ack_latency_ms", latency, {}, rec["ts_event"])
        self._decision(True, rec, "accepted")

    def _denied(self, rec: dict[str, Any]) -> None:
        self.denied += 1
        self.orders.pop(str(rec["id"]), None)
        self._decision(False, rec, f"{rec.get('policy', '')}: {rec.get('reason', '')}")
        self.seen("risk-check")

    def _closed(self, rec: dict[str, Any]) -> None:
        self.orders.pop(str(rec["id"]), None)

    def _filled(self, rec: dict[str, Any]) -> None:
        price, size = float(rec["price"]), float(rec["size"])
        fill = {
            "ts": rec["ts_event"],
            "id": rec["id"],
            "market": rec["market"],
            "asset": rec["asset"],
            "side": rec["side"],
            "price": price,
            "size": size,
            "fee": float(rec.get("fee", 0.0)),
            "liquidity": rec.get("liquidity", ""),
        }
        self.fills.append(fill)
        order = self.orders.get(str(rec["id"]))
        if order is not None:
            order["filled"] += size
            order["status"] = "partial"
            if order["filled"] >= order["size"] - 1e-9:
                del self.orders[order["id"]]
        ts = rec["ts_event"]
        store = self.store
        store.add("fills.count", "counter", 1.0, {}, ts, increment=True)
        store.add("fills.notional_usd", "counter", price * size, {}, ts, increment=True)
        self.seen("exec")

    def _kill(self, rec: dict[str, Any]) -> None:
        self.kill_engaged = bool(rec["engaged"])
        self.kill_reason = str(rec.get("reason", ""))
        self.kill_ts = rec["ts_event"]
        self._gauge("risk.kill_switch", 1.0 if self.kill_engaged else 0.0, {}, rec["ts_event"])

    def _error(self, rec: dict[str, Any]) -> None:
        source = str(rec.get("source") or "unknown")
        reason = str(rec.get("reason", ""))
        self.errors.append(f"{source}: line {rec.get('line')}: {reason}")
        self.seen(source, error="error: " + reason)

    def reject(self, message: str) -> None:
        """A malformed ingest message: counted and remembered for the dashboards."""
        self.rejected += 1
        self.errors.append(message)

    # -- periodic -------------------------------------------------------------------

    def pnl(self) -> tuple[float, float, float]:
        """(realized, unrealized at the book mid, inventory value at the mid)."""
        realized = unrealized = inventory = 0.0
        for key, p in self.positions.items():
            realized += p.realized_pnl - p.fees
            m = self.markets.get(key)
            mark = m.mid if m is not None else None
            if mark is None:
                mark = p.avg_price
            unrealized += (mark - p.avg_price) * p.size
            inventory += mark * p.size
        return realized, unrealized, inventory

    def tick(self) -> None:
        """Once a second: message rate and portfolio series."""
        now = now_us()
        dt = (now - self._last_tick_us) / 1e6
        if dt > 0:
            self.rate = (self.records - self._last_tick_records) / dt
        self._last_tick_records = self.records
        self._last_tick_us = now
        store = self.store
        if self.metrics:
            self.counts["metric"] = self.metrics
        for s in store.staged:  # stage health from the metrics each stage emits
            if s.count != s.seen_count:
                self.seen(s.stage, s.count - s.seen_count)
                s.seen_count = s.count
        store.add("monitor.records_per_second", "gauge", self.rate, {}, now)
        store.add("monitor.records_received", "counter", float(self.records), {}, now)
        if self.positions:
            realized, unrealized, inventory = self.pnl()
            self._gauge("portfolio.realized_pnl_usd", realized, {}, now)
            self._gauge("portfolio.unrealized_pnl_usd", unrealized, {}, now)
            self._gauge("portfolio.pnl_usd", realized + unrealized, {}, now)
            self._gauge("portfolio.inventory_value_usd", inventory, {}, now)
