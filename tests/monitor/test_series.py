"""Series store and metric validation (library level)."""

from __future__ import annotations

import math

import pytest

from agkit.errors import InvalidRecord
from agkit.monitor.series import SeriesStore, check_metric
from agkit.monitor.state import MonitorState
from agkit.ring import RingBuffer
from tests.monitor.conftest import metric, original


def test_series_keyed_by_name_and_labels() -> None:
    store = SeriesStore(capacity=100)
    store.add_metric(metric("polymarket.position.size", 5, 1, market_id="a"))
    store.add_metric(metric("polymarket.position.size", 7, 2, market_id="b"))
    store.add_metric(metric("polymarket.position.size", 6, 3, market_id="a"))
    assert len(store) == 2  # the original collapsed these into one series
    a = store.get("polymarket.position.size", {"market_id": "a"})
    b = store.get("polymarket.position.size", {"market_id": "b"})
    assert a is not None and b is not None
    assert list(a.ring) == [(1, 5.0), (3, 6.0)]
    assert list(b.ring) == [(2, 7.0)]


def test_label_order_does_not_split_a_series() -> None:
    store = SeriesStore()
    store.add_metric({**metric("m", 1, 1), "labels": {"a": "1", "b": "2"}})
    store.add_metric({**metric("m", 2, 2), "labels": {"b": "2", "a": "1"}})
    assert len(store) == 1
    s = store.get("m", {"a": "1", "b": "2"})
    assert s is not None and s.count == 2


def test_ring_buffers_bound_memory() -> None:
    store = SeriesStore(capacity=10)
    for i in range(1000):
        store.add_metric(metric("lag", float(i), i))
    s = store.get("lag")
    assert s is not None
    assert isinstance(s.ring, RingBuffer)
    assert len(s.ring) == 10 and s.count == 1000
    assert s.ring.values().tolist() == [float(v) for v in range(990, 1000)]


def test_series_cap_counts_dropped_points() -> None:
    store = SeriesStore(capacity=4, max_series=3)
    for i in range(5):
        store.add_metric(metric("m", 1, i, k=str(i)))
    assert len(store) == 3
    assert store.dropped_series == 2


def test_counters_cumulative_and_original_increments() -> None:
    store = SeriesStore()
    for ts, v in enumerate([3, 5, 9, 2, 4]):  # cumulative totals, the emitter restarts after 9
        store.add_metric(metric("orders", v, ts, kind="counter"))
    s = store.get("orders")
    assert s is not None and s.total == 9 + 4  # 9, then a reset to 2 which grew to 4
    st = MonitorState(store)
    for i in range(4):  # the original sent 1 per message
        st.on_record(original("polymarket.rtds.messages_received", 1, 1000 + i, kind="counter"))
    r = store.get("polymarket.rtds.messages_received")
    assert r is not None and r.last == 4.0
    assert r.ring.timestamps().tolist() == [1_000_000, 1_001_000, 1_002_000, 1_003_000]  # ms -> µs


@pytest.mark.parametrize(
    ("rec", "reason"),
    [
        ({"type": "metric", "ts_event": 1, "ts_init": 1, "kind": "gauge", "value": 1}, "name"),
        ({**metric("m", 1, 1), "kind": "meter"}, "kind"),
        ({**metric("m", 1, 1), "value": "1"}, "value must be a number"),
        ({**metric("m", 1, 1), "value": True}, "value must be a number"),
        ({**metric("m", 1, 1), "value": math.inf}, "finite"),
        ({**metric("m", 1, 1), "ts_event": 1.5}, "ts_event"),
        ({**metric("m", 1, 1), "labels": ["a"]}, "labels"),
        ({**metric("m", 1, 1), "labels": {"a": {"b": 1}}}, "label 'a'"),
        ({**original("m", 1, 1), "timestamp": "now"}, "timestamp"),
        ({**metric("m", 1, 1), "kind": ["gauge"]}, "kind"),  # unhashable: was a crash
    ],
)
def test_bad_metrics_are_refused_with_a_reason(rec: dict[str, object], reason: str) -> None:
    with pytest.raises(InvalidRecord, match=reason):
        check_metric(rec)


def test_state_builds_the_trading_picture() -> None:
    st = MonitorState()
    base = {"ts_event": 10, "ts_init": 10}
    st.on_record({"type": "book", **base, "venue": "sim", "market": "M", "asset": "A",
                  "bids": [[0.48, 10]], "asks": [[0.52, 7]], "tick_size": 0.01, "min_size": 5})
    st.on_record({"type": "trade", **base, "venue": "sim", "market": "M", "asset": "A", "price": 0.5,
                  "size": 3, "side": "buy", "trade_id": "t1"})
    st.on_record({"type": "submit_order", **base, "id": "o1", "strategy": "mm", "venue": "sim", "market": "M",
                  "asset": "A", "side": "buy", "price": 0.49, "size": 10})
    st.on_record({"type": "order_accepted", "ts_event": 20, "ts_init": 2010, "id": "o1", "venue_order_id": "v1"})
    st.on_record({"type": "order_filled", **base, "id": "o1", "venue_order_id": "v1", "trade_id": "t2",
                  "market": "M", "asset": "A", "side": "buy", "price": 0.49, "size": 4, "fee": 0, "liquidity": "maker"})
    st.on_record({"type": "position", **base, "market": "M", "asset": "A", "size": 4, "avg_price": 0.49,
                  "realized_pnl": 0, "fees": 0})
    st.on_record({"type": "order_denied", **base, "id": "o2", "policy": "max_position", "reason": "too big"})
    st.on_record({"type": "kill_switch", **base, "engaged": True, "reason": "drawdown"})
    m = st.markets[("M", "A")]
    assert (m.bid, m.ask, m.last_price) == (0.48, 0.52, 0.5)
    assert st.orders["o1"]["status"] == "partial" and st.orders["o1"]["filled"] == 4
    assert len(st.fills) == 1 and st.denied == 1 and st.accepted == 1
    assert st.kill_engaged and st.kill_reason == "drawdown"
    realized, unrealized, inventory = st.pnl()
    assert realized == 0 and math.isclose(unrealized, (0.50 - 0.49) * 4) and math.isclose(inventory, 2.0)
    lat = st.store.get("exec.ack_latency_ms")
    assert lat is not None and lat.last == 2.0
    ks = st.store.get("risk.kill_switch")
    assert ks is not None and ks.last == 1.0
    with pytest.raises(InvalidRecord, match="bad book record"):
        st.on_record({"type": "book", **base})
    # were crashes: a level without its price, a time that is not integer µs (it broke
    # the summary at the end)
    book = {"type": "book", **base, "venue": "sim", "market": "M", "asset": "A", "bids": [[]], "asks": []}
    with pytest.raises(InvalidRecord, match="IndexError"):
        st.on_record(book)
    with pytest.raises(InvalidRecord, match="ts_event must be integer"):
        st.on_record({**book, "bids": [[0.4, 1]], "ts_event": 1.5})
    assert st.markets[("M", "A")].book_ts == 10


def test_a_position_too_large_for_the_ring_buffer_does_not_end_the_monitor() -> None:
    from tests.helpers import ndjson, run_agkit

    base = {"ts_event": 10, "ts_init": 10, "market": "M", "asset": "A", "avg_price": 0.5, "realized_pnl": 0,
            "fees": 0}
    proc = run_agkit("monitor", input=ndjson([{"type": "position", **base, "size": -1e308},
                                               {"type": "position", **base, "size": 4}]))
    assert proc.returncode == 0, proc.stderr  # was: "while stopping: InvalidValueError: push_many"
    assert b"position.size{asset=A,market=M}" in proc.stderr and b"last=4" in proc.stderr


def test_stage_health_from_metric_names_and_stage_labels() -> None:
    from agkit.monitor.series import stage_of

    assert stage_of("feed.sim.msgs_per_second", {}) == "feed"
    assert stage_of("exec_fills", {"venue": "paper"}) == "exec"
    assert stage_of("risk.decisions", {}) == "risk-check"
    assert stage_of("anything", {"stage": "my-bot"}) == "my-bot"
    assert stage_of("feed.lag_ms", {"source": "sim"}) == ""  # derived by the monitor itself
    st = MonitorState()
    st.on_record(metric("exec_fills", 3, 1, kind="counter", venue="paper"))
    st.on_record(metric("custom.thing", 1, 2, stage="my-bot"))
    st.tick()
    assert st.stages["exec"].records == 1 and st.stages["my-bot"].records == 1
