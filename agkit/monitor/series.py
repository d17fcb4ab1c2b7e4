"""Series store: metric points keyed by name + labels, each in a bounded ring buffer.

A series is one (name, labels) pair. Its points live in an `agkit.ring.RingBuffer` of
fixed capacity (10 000 points by default, the original dashboard's figure), so memory is
bounded by `capacity x max_series` whatever the ingest rate.

Counter semantics (see docs/monitor.md): an agkit `metric` record with kind `counter`
carries the emitter's cumulative total (Prometheus convention; a drop is a reset, after
which the running total keeps growing from the new value). The original ag-botkit form
(`metric_type: counter`) carried increments (1 per message) and is accumulated here, so
both forms end up as a monotonic running total in the store and in `/metrics`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from agkit.errors import InvalidRecord
from agkit.records import now_us
from agkit.ring import MAX_ABS_VALUE, RingBuffer

KINDS = frozenset({"counter", "gauge", "histogram"})
DEFAULT_CAPACITY = 10_000
DEFAULT_MAX_SERIES = 1_000

LabelKey = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, LabelKey]


class Series:
    """One metric series: identity, its ring of (ts µs, value) points and running figures.

    New points are appended to two short Python lists and moved into the C ring buffer in
    one `push_many` call when `ring` is read or `capacity` points are pending, so the hot
    ingest path never crosses into C per point. Memory stays bounded by 2 x capacity.
    """

    __slots__ = ("_ring", "cap", "count", "id", "kind", "labels", "last", "last_raw", "last_ts", "name",
                 "pts", "pvs", "seen_count", "stage", "sum", "total")

    def __init__(self, id: int, name: str, labels: dict[str, str], kind: str, ring: RingBuffer) -> None:
        self.id = id
        self.name = name
        self.labels = labels
        self.kind = kind
        self._ring = ring
        self.cap = ring.capacity
        self.pts: list[int] = []  # points not yet in the ring
        self.pvs: list[float] = []
        self.total = 0.0  # counters: the running total (what the ring holds)
        self.last_raw: float | None = None  # counters: last cumulative value the emitter reported
        self.count = 0  # points ever received
        self.sum = 0.0  # histograms: sum of all observations ever
        self.last_ts = 0
        self.last = math.nan
        self.seen_count = 0  # count at the last stage-health sweep
        self.stage = stage_of(name, labels)  # the stage that emits it, for the health table

    @property
    def ring(self) -> RingBuffer:
        """The ring buffer, with every point received so far in it."""
        if self.pts:
            self.sync()
        return self._ring

    def sync(self) -> None:
        """Move the pending points into the ring (one C call)."""
        self._ring.push_many(self.pts, self.pvs)
        self.pts = []
        self.pvs = []

    def append(self, ts: int, value: float) -> None:
        self.pts.append(ts)
        self.pvs.append(value)
        if len(self.pts) >= self.cap:
            self.sync()
        self.count += 1
        self.last_ts = ts
        self.last = value

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "labels": self.labels, "kind": self.kind}


@dataclass
class SeriesStore:
    """All series, with a hard cap on how many exist (memory stays bounded)."""

    capacity: int = DEFAULT_CAPACITY
    max_series: int = DEFAULT_MAX_SERIES
    series: dict[SeriesKey, Series] = field(default_factory=dict)
    by_id: list[Series] = field(default_factory=list)
    dropped_series: int = 0  # points refused because the series cap was reached
    # called with (series, ts, value) after every point; the web hub listens here
    listeners: list[Callable[[Series, int, float], None]] = field(default_factory=list)
    _fast: dict[tuple[str, Any], Series | None] = field(default_factory=dict)
    # validated (name, kind, labels as written) -> series: the hot path skips re-validation
    _hot: dict[tuple[Any, Any, Any], Series] = field(default_factory=dict)
    staged: list[Series] = field(default_factory=list)  # series whose emitting stage is known

    def __post_init__(self) -> None:
        if self.capacity < 1:
            raise ValueError("capacity must be at least 1")
        if self.max_series < 1:
            raise ValueError("max_series must be at least 1")

    def __len__(self) -> int:
        return len(self.by_id)

    def __iter__(self) -> Iterator[Series]:
        return iter(self.by_id)

    def get(self, name: str, labels: dict[str, str] | None = None) -> Series | None:
        return self.series.get((name, _label_key(labels or {})))

    def find(self, name: str) -> list[Series]:
        return [s for s in self.by_id if s.name == name]

    def _lookup(self, name: str, kind: str, labels: dict[str, str]) -> Series | None:
        # fast path: the labels in the order the emitter wrote them
        fast_key = (name, tuple(labels.items())) if labels else (name, None)
        s = self._fast.get(fast_key)
        if s is not None:
            return s
        key = (name, _label_key(labels))
        s = self.series.get(key)
        if s is None:
            if len(self.by_id) >= self.max_series:
                self.dropped_series += 1
                return None
            s = Series(len(self.by_id), name, dict(labels), kind, RingBuffer(self.capacity))
            self.series[key] = s
            self.by_id.append(s)
            if s.stage:
                self.staged.append(s)
        if len(self._fast) < 8 * self.max_series:
            self._fast[fast_key] = s
        return s

    def add(
        self,
        name: str,
        kind: str,
        value: float,
        labels: dict[str, str],
        ts: int,
        increment: bool = False,
    ) -> Series | None:
        """Record one point (already validated). `increment`: a counter delta, not a total."""
        s = self._lookup(name, kind, labels)
        if s is None:
            return None
        if kind == "counter":
            if increment:
                s.total += value
            else:
                last = s.last_raw
                if last is None or value < last:  # first report, or the emitter restarted
                    s.total += value
                else:
                    s.total += value - last
                s.last_raw = value
            value = s.total
            if abs(value) > MAX_ABS_VALUE:
                s.total = value = math.copysign(MAX_ABS_VALUE, value)
        elif kind == "histogram":
            s.sum += value
        s.append(ts, value)
        for fn in self.listeners:
            fn(s, ts, value)
        return s

    def add_metric(self, rec: dict[str, Any]) -> Series | None:
        """Validate and store an agkit `metric` record; raises InvalidRecord naming the problem.

        Hot path: a record whose (name, kind, labels) were validated before only has its
        value and timestamp checked (about a microsecond per record)."""
        labels = rec.get("labels")
        try:
            hot_key = (rec.get("name"), rec.get("kind"), tuple(labels.items()) if labels else None)
            s = self._hot.get(hot_key)
        except (TypeError, AttributeError):  # unhashable or not a dict: the slow path says why
            s = None
        if s is not None and "metric_name" not in rec:
            value: Any = rec.get("value")
            ts: Any = rec.get("ts_event")
            vt = type(value)
            if (vt is float or vt is int) and type(ts) is int and -MAX_ABS_VALUE <= value <= MAX_ABS_VALUE:
                if s.kind == "counter":
                    return self.add(s.name, "counter", float(value), s.labels, ts)
                s.append(ts, value)
                if s.kind == "histogram":
                    s.sum += value
                for fn in self.listeners:
                    fn(s, ts, value)
                return s
        name, kind, value, labels_ok, ts, inc = check_metric(rec)
        s = self.add(name, kind, value, labels_ok, ts, inc)
        if s is not None and not inc and s.kind == kind and len(self._hot) < 8 * self.max_series:
            with contextlib.suppress(TypeError, AttributeError):
                self._hot[(name, kind, tuple(labels.items()) if labels else None)] = s
        return s


# Names the monitor derives itself (state.py): they say nothing about a stage's health.
DERIVED = frozenset({"feed.lag_ms", "position.size", "risk.decision", "fills.count", "fills.notional_usd",
                     "exec.ack_latency_ms"})
# First word of a metric name -> the stage that emits it (when there is no `stage` label).
STAGE_PREFIXES = {"feed": "feed", "polymarket": "feed", "risk": "risk-check", "exec": "exec",
                  "strategy": "strategy", "store": "store", "backtest": "backtest"}


def stage_of(name: str, labels: dict[str, str]) -> str:
    """The emitting stage: the `stage` label, else the metric name's first word."""
    stage = labels.get("stage")
    if stage:
        return stage
    if name in DERIVED:
        return ""
    first = name.replace("_", ".", 1).split(".", 1)[0]
    return STAGE_PREFIXES.get(first, "")


def _label_key(labels: dict[str, str]) -> LabelKey:
    return tuple(sorted(labels.items()))


def _labels(raw: object) -> dict[str, str]:
    if raw is None:
        return {}
    if type(raw) is not dict:
        raise InvalidRecord(f"metric labels must be an object of strings, got {type(raw).__name__}")
    out: dict[str, str] | None = None
    for k, v in raw.items():
        if type(v) is not str:
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise InvalidRecord(f"metric label {k!r} must be a string, got {type(v).__name__}")
            if out is None:
                out = dict(raw)
            out[k] = str(v)
    return raw if out is None else out


def check_metric(rec: dict[str, Any]) -> tuple[str, str, float, dict[str, str], int, bool]:
    """(name, kind, value, labels, ts µs, is_increment) of a metric in either wire form.

    agkit form: {"type":"metric","ts_event":µs,"ts_init":µs,"name","kind","value","labels"}.
    Original form: {"timestamp": ms, "metric_type", "metric_name", "value", "labels"}.
    """
    if "metric_name" in rec and rec.get("type") in (None, "metric"):
        name = rec.get("metric_name")
        kind = rec.get("metric_type", "gauge")
        ts_raw = rec.get("timestamp")
        if ts_raw is None:
            ts = now_us()
        elif type(ts_raw) is int or type(ts_raw) is float:
            ts = int(ts_raw * 1000)  # milliseconds in the original's protocol
        else:
            raise InvalidRecord(f"timestamp must be integer milliseconds, got {ts_raw!r}")
        increment = True
    else:
        name = rec.get("name")
        kind = rec.get("kind")
        ts_raw = rec.get("ts_event")
        if type(ts_raw) is not int:
            raise InvalidRecord(f"metric ts_event must be integer microseconds, got {ts_raw!r}")
        ts = ts_raw
        increment = False
    if type(name) is not str or not name:
        raise InvalidRecord(f"metric name must be a non-empty string, got {name!r}")
    if type(kind) is not str or kind not in KINDS:  # a list is not even hashable
        raise InvalidRecord(
            f"metric {name}: kind must be counter, gauge or histogram, got {kind!r}"
        )
    value = rec.get("value")
    if type(value) is not float and type(value) is not int:
        raise InvalidRecord(f"metric {name}: value must be a number, got {value!r}")
    if not -MAX_ABS_VALUE <= value <= MAX_ABS_VALUE:  # NaN fails both comparisons
        raise InvalidRecord(f"metric {name}: value must be finite, got {value!r}")
    return name, kind, float(value), _labels(rec.get("labels")), ts, increment
