"""/metrics text, checked by an independent parser (prometheus_client)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from agkit.monitor.prom import exposition
from agkit.monitor.series import SeriesStore
from tests.monitor.conftest import metric


def families(text: str) -> dict[str, tuple[str, list[tuple[str, dict[str, str], float]]]]:
    return {f.name: (f.type, [(s.name, s.labels, s.value) for s in f.samples]) for f in text_string_to_metric_families(text)}


def test_exposition_parses_with_awkward_names_and_labels() -> None:
    store = SeriesStore()
    store.add_metric(metric("polymarket.rtds.lag_ms", 12.5, 1, topic="crypto_prices"))
    store.add_metric(metric("polymarket.rtds.lag_ms", 3, 2, topic='we"ird\\one\nx'))
    store.add_metric(metric("exec.orders_placed", 4, 3, kind="counter", **{"venue-name": "paper"}))
    store.add_metric(metric("9lives", 1, 4))
    for i, v in enumerate([1.0, 2.0, 3.0, 4.0]):
        store.add_metric(metric("exec.latency_ms", v, 10 + i, kind="histogram", venue="paper"))
    fams = families(exposition(store, [("agkit_monitor_series", "gauge", "series held", 5.0)]))
    assert fams["polymarket_rtds_lag_ms"][0] == "gauge"
    samples = {s[1]["topic"]: s[2] for s in fams["polymarket_rtds_lag_ms"][1]}
    assert samples == {"crypto_prices": 12.5, 'we"ird\\one\nx': 3.0}
    counter = fams["exec_orders_placed"]
    assert counter[0] == "counter"
    assert counter[1] == [("exec_orders_placed_total", {"venue_name": "paper"}, 4.0)]
    assert fams["_9lives"][1][0][2] == 1.0
    hist = fams["exec_latency_ms"]
    assert hist[0] == "summary"
    by = {(n, lab.get("quantile")): v for n, lab, v in hist[1]}
    assert by[("exec_latency_ms_count", None)] == 4 and by[("exec_latency_ms_sum", None)] == 10
    assert by[("exec_latency_ms", "0.5")] == 2.5
    assert fams["agkit_monitor_series"][1][0][2] == 5.0
