"""The monitor's server as a real subprocess: WebSocket ingest, /metrics, /health, tokens."""

from __future__ import annotations

import subprocess
import time

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from agkit.monitor.push import MetricsPusher
from tests.helpers import ndjson, parse_ndjson, run_agkit
from tests.monitor.conftest import Monitor, metric, original, start_monitor


def prom(mon: Monitor) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, body, headers = mon.get("/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    out = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_ingest_both_forms_and_metrics_page(monitor: Monitor) -> None:
    now = time.time_ns() // 1000
    with connect(monitor.ws + "/metrics", proxy=None) as ws:
        ws.send(orjson.dumps(metric("polymarket.rtds.lag_ms", 42.0, now, topic="crypto_prices")).decode())
        ws.send(orjson.dumps(original("polymarket.rtds.messages_received", 1, now // 1000, kind="counter", topic="t")).decode())
        ws.send(orjson.dumps(original("polymarket.rtds.messages_received", 1, now // 1000 + 1, kind="counter", topic="t")).decode())
        # several records in one frame, newline-separated (what the push client sends)
        ws.send(b"\n".join(orjson.dumps(metric("exec.latency_ms", float(v), now + v, kind="histogram")) for v in range(1, 5)), text=True)
    monitor.wait_for(lambda h: h["records"] >= 7)
    got = prom(monitor)
    assert got[("polymarket_rtds_lag_ms", (("topic", "crypto_prices"),))] == 42.0
    assert got[("polymarket_rtds_messages_received_total", (("topic", "t"),))] == 2.0
    assert got[("exec_latency_ms_count", ())] == 4
    assert got[("agkit_monitor_rejected_total", ())] == 0


def test_malformed_messages_rejected_good_ones_kept(monitor: Monitor) -> None:
    now = time.time_ns() // 1000
    with connect(monitor.ws + "/metrics", proxy=None) as ws:
        ws.send(orjson.dumps(metric("good.one", 1.0, now)).decode())
        ws.send("{not json")
        frame = b"\n".join([
            orjson.dumps(metric("good.two", 2.0, now)),
            b"[1, 2]",
            orjson.dumps({**metric("bad.value", 0, now), "value": "high"}),
            orjson.dumps(original("good.three", 3.0, now // 1000)),
        ])
        ws.send(frame, text=True)
        errors = [orjson.loads(ws.recv(timeout=10)) for _ in range(3)]
        ws.send(orjson.dumps(metric("good.four", 4.0, now)).decode())  # the connection still works
        monitor.wait_for(lambda h: h["records"] >= 4)
    assert [(e["message"], e["line"]) for e in errors] == [(2, 1), (3, 2), (3, 3)]
    assert errors[0]["type"] == "error" and "invalid JSON" in errors[0]["reason"]
    assert "not a JSON object" in errors[1]["reason"]
    assert "bad.value: value must be a number" in errors[2]["reason"]
    got = prom(monitor)
    for name, v in [("good_one", 1), ("good_two", 2), ("good_three", 3), ("good_four", 4)]:
        assert got[(name, ())] == v
    assert ("bad_value", ()) not in got
    assert got[("agkit_monitor_rejected_total", ())] == 3
    _, err = monitor.stop()
    assert b"message 2 line 1: invalid JSON" in err and b"Traceback" not in err


def test_health_and_dashboard_backfill(monitor: Monitor) -> None:
    now = time.time_ns() // 1000
    with connect(monitor.ws + "/metrics", proxy=None) as ws:
        ws.send(b"\n".join(orjson.dumps(metric("polymarket.rtds.lag_ms", float(i), now - 1_000_000 * (50 - i))) for i in range(50)), text=True)
    monitor.wait_for(lambda h: h["records"] >= 50)
    with connect(monitor.ws + "/dashboard", proxy=None) as browser:
        first = orjson.loads(browser.recv(timeout=10))
        assert first["t"] == "backfill"
        sid = next(d["id"] for d in first["defs"] if d["name"] == "polymarket.rtds.lag_ms")
        points = next(p for p in first["p"] if p[0] == sid)
        assert points[2] == [float(i) for i in range(50)]  # the last minutes, oldest first
        with connect(monitor.ws + "/metrics", proxy=None) as ws:
            ws.send(orjson.dumps(metric("polymarket.rtds.lag_ms", 99.0, now + 1)).decode())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = orjson.loads(browser.recv(timeout=30))
            if msg["t"] == "points" and any(p[0] == sid and 99.0 in p[2] for p in msg["p"]):
                break
        else:
            raise AssertionError("the browser never got the new point")
    h = monitor.health()
    assert h["status"] == "ok" and h["series"] >= 1


def test_slow_browser_does_not_slow_ingest(monitor: Monitor) -> None:
    """A dashboard client that never reads: ingest carries on, /health stays responsive."""
    now = time.time_ns() // 1000
    with connect(monitor.ws + "/dashboard", proxy=None, max_queue=1) as stuck:
        stuck.recv(timeout=10)  # the backfill; after this it never reads again
        with connect(monitor.ws + "/metrics", proxy=None) as ws:
            for batch in range(40):
                ws.send(b"\n".join(orjson.dumps(metric(f"load.s{i % 50}", float(i), now + batch * 10_000 + i)) for i in range(5000)), text=True)
        h = monitor.wait_for(lambda h: h["records"] >= 200_000, timeout=120)
        assert h["browsers"] == 1


def test_push_client_end_to_end(monitor: Monitor) -> None:
    pusher = MetricsPusher(monitor.ws + "/metrics", stage="strategy-mm")
    for i in range(1000):
        pusher.metric("strategy.pnl_usd", float(i), labels={"strategy": "mm"})
    pusher.push({"type": "metric", "ts_event": 1, "ts_init": 1, "name": "bad", "kind": "nope", "value": 1})
    assert pusher.flush(30)
    monitor.wait_for(lambda h: h["records"] >= 1000 and h["rejected"] >= 1)
    deadline = time.monotonic() + 30
    while pusher.errors < 1 and time.monotonic() < deadline:
        pusher.metric("strategy.pnl_usd", 0.0, labels={"strategy": "mm"})  # gives the thread a reason to read
        pusher.flush(5)
        time.sleep(0.05)
    pusher.close()
    assert pusher.errors >= 1 and pusher.dropped == 0
    assert prom(monitor)[("strategy_pnl_usd", (("strategy", "mm"),))] in (999.0, 0.0)


def test_push_client_survives_a_missing_monitor() -> None:
    logs: list[str] = []
    pusher = MetricsPusher("ws://127.0.0.1:9/metrics", log=logs.append)
    pusher.metric("x", 1.0)
    assert not pusher.flush(0.5)
    pusher.close(0.5)
    assert logs and "retrying" in logs[0]


def test_token_required_off_loopback() -> None:
    proc = run_agkit("monitor", "--web", "0.0.0.0:0", timeout=30)
    assert proc.returncode == 2
    assert b"needs a token" in proc.stderr and b"Traceback" not in proc.stderr


def test_token_enforced() -> None:
    mon = start_monitor("--token", "s3cret")
    try:
        assert mon.get("/metrics")[0] == 401
        assert mon.get("/api/series")[0] == 401
        assert mon.get("/")[0] == 200  # the page holds no data; it passes ?token= on
        assert mon.get("/health")[0] == 200  # liveness probes need no token
        assert mon.get("/metrics?token=s3cret")[0] == 200
        assert mon.get("/metrics", {"Authorization": "Bearer s3cret"})[0] == 200
        with pytest.raises(Exception, match="401"):
            connect(mon.ws + "/metrics", proxy=None).close()
        with connect(mon.ws + "/metrics?token=s3cret", proxy=None) as ws:
            ws.send(orjson.dumps(metric("ok", 1.0, 1)).decode())
        mon.wait_for(lambda h: h["records"] >= 1)
    finally:
        mon.stop()


def test_cross_origin_websocket_refused(monitor: Monitor) -> None:
    with pytest.raises(Exception, match="403"):
        connect(monitor.ws + "/metrics", proxy=None, origin="http://evil.example").close()  # type: ignore[arg-type]


def test_stdin_tee_with_web_forwards_unchanged() -> None:
    now = time.time_ns() // 1000
    lines = ndjson([
        metric("polymarket.position.size", 5.0, now, market_id="m1"),
        {"type": "zz_unknown", "ts_event": 1, "ts_init": 1, "x": [1, 2]},
        {"type": "kill_switch", "ts_event": now, "ts_init": now, "engaged": True, "reason": "test"},
    ])
    mon = start_monitor("--tee", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert mon.proc.stdin is not None and mon.proc.stdout is not None
    mon.proc.stdin.write(lines)
    mon.proc.stdin.flush()
    out = b"".join(mon.proc.stdout.readline() for _ in range(3))
    assert out == lines
    mon.wait_for(lambda h: h["kill_switch"])
    got = prom(mon)
    assert got[("polymarket_position_size", (("market_id", "m1"),))] == 5.0
    assert got[("agkit_monitor_kill_switch", ())] == 1.0
    mon.proc.stdin.close()  # --tee ends with its input
    assert mon.proc.wait(timeout=30) == 0


def test_sink_summary_and_bad_lines() -> None:
    now = time.time_ns() // 1000
    data = ndjson([metric("lag", 1.0, now), metric("lag", 3.0, now + 1)]) + b'{"type":"metric","name":"x"}\n'
    proc = run_agkit("monitor", input=data)
    assert proc.returncode == 0
    assert proc.stdout == b""
    assert b"line 3: metric ts_event" in proc.stderr
    assert b"lag" in proc.stderr and b"mean=2" in proc.stderr
    tee = run_agkit("monitor", "--tee", input=data[: data.rindex(b"{")])
    assert [r["value"] for r in parse_ndjson(tee.stdout)] == [1.0, 3.0] and tee.stderr == b""


def test_metrics_url_forwards_to_another_monitor(monitor: Monitor) -> None:
    """A mid-pipe `monitor --tee --metrics-url` feeds a central monitor's dashboard."""
    now = time.time_ns() // 1000
    data = ndjson([metric("exec.orders_placed", float(v), now + v, kind="counter", venue="paper") for v in (1, 2, 5)]
                  + [metric("polymarket.rtds.lag_ms", 12.0, now + 9)])
    proc = run_agkit("monitor", "--tee", "--metrics-url", monitor.ws + "/metrics", input=data)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == data
    monitor.wait_for(lambda h: h["records"] >= 4)
    got = prom(monitor)
    assert got[("exec_orders_placed_total", (("venue", "paper"),))] == 5.0
    assert got[("polymarket_rtds_lag_ms", ())] == 12.0
    assert any(s["name"] == "exec.orders_placed" for s in orjson.loads(monitor.get("/api/series")[1]))
