"""`agkit feed rtds` against a real, strict WebSocket server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.feed.fakes import FakeWS, check_rtds_subscription
from tests.feed.wsutil import Feed, j
from tests.helpers import run_agkit

pytestmark = pytest.mark.timeout(120)

WS = Path(__file__).resolve().parents[1] / "fixtures" / "samples" / "ws"


def sample(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads((WS / name).read_bytes())
    return doc


def sentinel(v: float = 4242.5) -> dict[str, Any]:
    return {"topic": "crypto_prices", "type": "update", "timestamp": 1780730270000,
            "payload": {"symbol": "sentinel", "timestamp": 1780730270000, "value": v}}


def is_sentinel(rec: dict[str, Any], v: float = 4242.5) -> bool:
    return rec["type"] == "reference_price" and rec["value"] == v


def fake(scripts: list[list[Any]]) -> FakeWS:
    return FakeWS(scripts, check=check_rtds_subscription)


def args(url: str, *extra: str) -> tuple[str, ...]:
    return ("feed", "rtds", "--url", url, "--metrics-every", "0", "--backoff", "0.05", "--backoff-max", "0.2", *extra)


def test_malformed_frames_are_skipped() -> None:
    script = [
        ("send", "garbage {"),
        ("send", "PONG"),
        ("send", j({"no": "topic"})),
        ("send", j({"topic": "crypto_prices", "type": "update", "payload": {"value": 1}})),
        ("send", j({"topic": "crypto_prices", "type": "update", "payload": {"symbol": "x", "value": "abc"}})),
        ("send", j([1, 2])),
        ("send", j(sentinel())),
    ]
    with fake([script]) as ws:
        feed = Feed(*args(ws.url, "--topic", "crypto_prices"))
        feed.until(is_sentinel)
        code, err = feed.stop()
    assert code == 0, err
    assert "not JSON" in err and "no topic/type" in err and "without a symbol" in err and "bad value" in err
    assert "Traceback" not in err
    assert [r["type"] for r in feed.records] == ["feed_status", "reference_price"]


def test_prices_snapshots_and_pass_through_topics(tmp_path: Path) -> None:
    frames = [
        sample("rtds_crypto_prices_snapshot.json"),
        sample("rtds_crypto_prices_update.json"),
        sample("rtds_chainlink_update_docs.json"),
        sample("rtds_equity_prices_update.json"),
        sample("rtds_comment_created_docs.json"),
    ]
    rec_file = tmp_path / "rtds.ndjson"
    with fake([[("send", j(f)) for f in frames] + [("send", j(sentinel()))]]) as ws:
        feed = Feed(*args(ws.url, "--topic", "crypto_prices", "--type", "update", "--filter", '{"symbol": "btcusdt"}',
                          "--topic", "crypto_prices_chainlink", "--topic", "comments", "--record", str(rec_file)))
        feed.until(is_sentinel)
        code, err = feed.stop()
    assert code == 0, err
    assert err == ""
    # one subscribe message per subscription, filters compact (the fake refuses anything else)
    assert ws.violations == []
    subs = [s["subscriptions"] for s in ws.subscriptions]
    assert subs == [
        [{"topic": "crypto_prices", "type": "update", "filters": '{"symbol":"btcusdt"}'}],
        [{"topic": "crypto_prices_chainlink", "type": "*"}],
        [{"topic": "comments", "type": "*"}],
    ]
    recs = feed.records
    assert recs[0]["type"] == "feed_status" and recs[0]["state"] == "live"
    prices = [(r["source"], r["symbol"], r["value"], r["ts_event"]) for r in recs if r["type"] == "reference_price"]
    assert prices[:6] == [
        ("crypto_prices", "btcusdt", 61164.12, 1780726209000000),
        ("crypto_prices", "btcusdt", 61161.07, 1780726210000000),
        ("crypto_prices", "btcusdt", 61150.89, 1780726211000000),
        ("crypto_prices", "btcusdt", 61035.86, 1780730269000000),
        ("crypto_prices_chainlink", "eth/usd", 3456.78, 1753314064213000),
        ("equity_prices", "aapl", 198.45, 1711382400000000),
    ]
    (comment,) = [r for r in recs if r["type"] == "rtds_event"]
    assert comment["topic"] == "comments" and comment["event"] == "comment_created"
    assert comment["payload"]["id"] == "1763355" and comment["ts_event"] == 1753454975808000
    assert rec_file.read_bytes() == b"".join(orjson.dumps(r) + b"\n" for r in recs)
    val = run_agkit("validate", "--strict", str(rec_file))
    assert val.returncode == 0, val.stderr


def test_ping_and_reconnect_after_a_drop() -> None:
    scripts = [
        [("wait_ping",), ("send", j(sample("rtds_crypto_prices_update.json"))), ("drop",)],
        [("send", j(sentinel()))],
    ]
    with fake(scripts) as ws:
        feed = Feed(*args(ws.url, "--topic", "crypto_prices", "--ping-every", "0.2"))
        feed.until(is_sentinel)
        code, err = feed.stop()
    assert code == 0, err
    assert ws.pings >= 1
    states = [r["state"] for r in feed.records if r["type"] == "feed_status"]
    assert states == ["live", "reconnecting", "live"]
    assert len(ws.subscriptions) == 2  # resubscribed


def test_silent_socket_triggers_the_watchdog() -> None:
    scripts = [[("send", j(sample("rtds_crypto_prices_update.json"))), ("silent",)], [("send", j(sentinel()))]]
    with fake(scripts) as ws:
        feed = Feed(*args(ws.url, "--topic", "crypto_prices", "--silence-timeout", "1"))
        feed.until(is_sentinel)
        code, err = feed.stop()
    assert code == 0, err
    states = [r["state"] for r in feed.records if r["type"] == "feed_status"]
    assert states == ["live", "stale", "reconnecting", "live"]
    assert ws.connections == 2


REFUSAL = {"body": {"message": "topic nope not found"}, "statusCode": 401}


def test_refused_subscription_exits_4() -> None:
    with fake([[("send", j(REFUSAL)), ("sleep", 30)]]) as ws:
        feed = Feed(*args(ws.url, "--topic", "nope", "--max-retries", "1"))
        code, err = feed.wait(60)
    assert code == 4, err
    assert "refused" in err and "not found" in err and "Traceback" not in err
    assert ws.connections == 2
    assert [r["state"] for r in feed.records] == ["reconnecting", "stale"]


def test_one_refused_topic_does_not_stop_the_others() -> None:
    with fake([[("send", j(REFUSAL)), ("send", j(sentinel()))]]) as ws:
        feed = Feed(*args(ws.url, "--topic", "nope", "--topic", "crypto_prices"))
        feed.until(is_sentinel)
        code, err = feed.stop()
    assert code == 0, err
    assert "refused" in err
    assert ws.connections == 1


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ((), b"--topic"),
        (("--topic", "a", "--type", "x", "--type", "y"), b"pair up"),
        (("--topic", "a", "--filter", "{bad json"), b"not valid JSON"),
    ],
)
def test_bad_options_exit_2(extra: tuple[str, ...], needle: bytes) -> None:
    proc = run_agkit("feed", "rtds", "--url", "ws://127.0.0.1:9/", *extra)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and proc.stdout == b""
