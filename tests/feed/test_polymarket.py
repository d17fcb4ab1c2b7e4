"""`agkit feed polymarket` against a real WebSocket server on 127.0.0.1.

Bad input first: malformed frames, unknown events, dropped connections, a silent
server, a refused subscription; then books rebuilt independently from the same frames.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.feed.fakes import FakeWS
from tests.feed.wsutil import (
    MARKET,
    NO,
    YES,
    Feed,
    Model,
    book_frame,
    j,
    price_change,
    trade,
    ws_args,
)

pytestmark = pytest.mark.timeout(120)

SNAP_YES = book_frame(YES, [("0.48", "30"), ("0.49", "20"), ("0.50", "15")], [("0.52", "25"), ("0.53", "60"), ("0.54", "10")])
SNAP_NO = book_frame(NO, [("0.46", "25"), ("0.47", "60")], [("0.50", "15"), ("0.51", "20"), ("0.52", "30")], best_last=False)


def sentinel(n: int = 1) -> dict[str, Any]:
    return trade(YES, "0.99", f"{1000 + n}")


def is_sentinel(rec: dict[str, Any], n: int = 1) -> bool:
    return rec["type"] == "trade" and rec["size"] == 1000 + n


def books_of(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in recs if r["type"] == "book"]


def expected_books(frames: list[Any]) -> list[tuple[str, Any]]:
    """(asset, (bids, asks)) after every event that changes a known book, in order."""
    model = Model()
    out: list[tuple[str, Any]] = []
    for frame in frames:
        for ev in frame if isinstance(frame, list) else [frame]:
            model.apply(ev)
            kind = ev.get("event_type")
            if kind == "book":
                out.append((ev["asset_id"], model.top(ev["asset_id"])))
            elif kind == "price_change":
                if "price_changes" in ev:
                    assets = list(dict.fromkeys(c["asset_id"] for c in ev["price_changes"]))
                else:
                    assets = [ev["asset_id"]]
                out += [(a, model.top(a)) for a in assets if a in model.books]
    return out


# -- bad input ---------------------------------------------------------------------------


def test_malformed_frames_and_unknown_events_are_skipped() -> None:
    good = [
        [SNAP_YES, SNAP_NO],
        price_change([(YES, "BUY", "0.50", "0"), (YES, "BUY", "0.51", "7")]),
        price_change([(NO, "SELL", "0.50", "99")]),
    ]
    bad = [
        "this is not json",
        "[1, 2]",
        j({"event_type": "brand_new_event", "asset_id": YES}),
        j({"no_event_type": True}),
        j({**SNAP_YES, "bids": [{"price": "abc", "size": "1"}]}),  # bad number: the whole snapshot is refused
        j(price_change([(YES, "BUY", "0.47", "5"), (YES, "MIDDLE", "0.46", "5")])),  # one bad entry: none applied
        j(price_change([(YES, "BUY", "NaN", "5")])),
        j(price_change([(YES, "SELL", "0.6", "-3")])),
        j({"event_type": "price_change", "market": MARKET, "timestamp": "1"}),
        j({"event_type": "last_trade_price", "asset_id": YES, "price": "0.5"}),
        j(price_change([("999", "BUY", "0.3", "1")])),  # an asset we have no book for
        j({"event_type": "best_bid_ask", "asset_id": YES, "market": MARKET, "best_bid": "0.5", "best_ask": "0.52"}),
        # values no market holds (fuzzing found each passed or crashed the feed)
        j(price_change([(YES, "BUY", "1.5", "5")])),
        j(price_change([(YES, "BUY", "0.47", "1e300")])),
        j({"event_type": "last_trade_price", "asset_id": YES, "price": "1e308", "size": "1", "side": "BUY"}),
        j({**SNAP_YES, "timestamp": "99999999999999999999"}),
        j({"event_type": ["book"], "asset_id": YES}),
    ]
    script = [("send", j(good[0])), *[("send", b) for b in bad], ("send", j(good[1])), ("send", j(good[2])),
              ("send", j(sentinel()))]
    with FakeWS([script]) as ws:
        feed = Feed(*ws_args(ws.url, YES, NO))
        feed.until(is_sentinel)
        code, err = feed.stop()
    assert code == 0, err
    assert "Traceback" not in err
    assert "not JSON" in err and "brand_new_event" in err and "MIDDLE" in err and "NaN" in err
    assert "price out of range: '1.5'" in err and "after 2100" in err and "event_type is not a string" in err
    assert not any(r["type"] == "trade" and r["price"] > 1 for r in feed.records)
    got = [(b["asset"], (b["bids"], b["asks"])) for b in books_of(feed.records)]
    assert got == expected_books(good)
    assert ws.violations == []


def test_dropped_connection_reseeds_from_the_new_snapshot() -> None:
    first = [[SNAP_YES, SNAP_NO], price_change([(YES, "BUY", "0.45", "11"), (NO, "SELL", "0.55", "12")])]
    snap2_yes = book_frame(YES, [("0.30", "1"), ("0.31", "2")], [("0.70", "3")], ts=1757909000000)
    snap2_no = book_frame(NO, [("0.29", "3")], [("0.69", "2"), ("0.70", "1")], ts=1757909000000)
    stale_delta = price_change([(YES, "BUY", "0.44", "9")], ts=1757908999000)  # before the snapshot: no book
    scripts = [
        [("send", j(first[0])), ("send", j(first[1])), ("sleep", 0.2), ("drop",)],
        [("send", j(stale_delta)), ("send", j([snap2_yes, snap2_no])), ("send", j(sentinel()))],
    ]
    with FakeWS(scripts) as ws:
        feed = Feed(*ws_args(ws.url, YES, NO))
        feed.until(is_sentinel)
        code, err = feed.stop()
    assert code == 0, err
    recs = feed.records
    states = [r["state"] for r in recs if r["type"] == "feed_status"]
    assert states[:3] == ["live", "reconnecting", "live"]
    i_rec = next(i for i, r in enumerate(recs) if r.get("state") == "reconnecting")
    i_live = next(i for i, r in enumerate(recs) if r.get("state") == "live" and i > i_rec)
    between = recs[i_rec + 1 : i_live]
    assert [r["type"] for r in between] == ["book", "book"]  # only the fresh snapshots
    after = {b["asset"]: b for b in between}
    assert after[YES]["bids"] == [[0.31, 2.0], [0.3, 1.0]] and after[YES]["asks"] == [[0.7, 3.0]]
    assert after[NO]["bids"] == [[0.29, 3.0]] and after[NO]["asks"] == [[0.69, 2.0], [0.7, 1.0]]
    assert ws.subscriptions[0]["assets_ids"] == ws.subscriptions[1]["assets_ids"] == [YES, NO]
    assert "reconnecting" in err


def test_silent_server_is_detected_by_the_watchdog() -> None:
    snap2 = book_frame(YES, [("0.20", "5")], [("0.80", "5")], ts=1757909100000)
    scripts = [
        [("send", j(SNAP_YES)), ("wait_ping",), ("silent",)],
        [("send", j(snap2)), ("send", j(sentinel()))],
    ]
    with FakeWS(scripts) as ws:
        feed = Feed(*ws_args(ws.url, YES, extra=("--silence-timeout", "1.5", "--ping-every", "0.3")))
        feed.until(is_sentinel)
        code, err = feed.stop()
    assert code == 0, err
    assert ws.pings >= 1  # the text keep-alive reached the server
    states = [r["state"] for r in feed.records if r["type"] == "feed_status"]
    assert states[:4] == ["live", "stale", "reconnecting", "live"]
    last_yes = [b for b in books_of(feed.records) if b["asset"] == YES][-1]
    assert last_yes["bids"] == [[0.2, 5.0]] and last_yes["asks"] == [[0.8, 5.0]]
    assert "watchdog" in err


def test_refused_subscription_gives_up_after_max_retries() -> None:
    with FakeWS([[("refuse",)]]) as ws:
        feed = Feed(*ws_args(ws.url, YES, extra=("--max-retries", "2")))
        code, err = feed.wait(60)
    assert code == 4, err
    assert "refused" in err and "Traceback" not in err
    assert ws.connections == 3
    states = [r["state"] for r in feed.records if r["type"] == "feed_status"]
    assert states == ["reconnecting", "reconnecting", "stale"]  # stale: nothing live any more
    assert all(r["type"] == "feed_status" for r in feed.records)


def test_unreachable_venue_exits_4() -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    feed = Feed(*ws_args(f"ws://127.0.0.1:{port}/ws/market", YES, extra=("--max-retries", "1")))
    code, err = feed.wait(60)
    assert code == 4
    assert "unreachable" in err and "Traceback" not in err


def test_server_rejects_a_bad_subscription_strictly() -> None:
    """The fake is strict: a subscription without assets is refused, not served."""
    with FakeWS([[("send", j(SNAP_YES))]]) as ws:
        feed = Feed(*ws_args(ws.url, YES, extra=("--max-records", "2")))
        feed.until(lambda r: r["type"] == "book")
        code, err = feed.wait(60)
    assert code == 0, err
    assert ws.violations == []
    assert ws.subscriptions == [{"assets_ids": [YES], "type": "market", "custom_feature_enabled": True}]


# -- books ----------------------------------------------------------------------------------


def test_books_equal_an_independent_rebuild(tmp_path: Path) -> None:
    legacy_changes = {
        "event_type": "price_change",
        "asset_id": YES,
        "market": MARKET,
        "timestamp": "1757908895000",
        "hash": "legacy-1",
        "changes": [{"price": ".51", "side": "SELL", "size": "44"}, {"price": "0.52", "side": "SELL", "size": "0"}],
    }
    legacy_single = {
        "event_type": "price_change",
        "asset_id": NO,
        "market": MARKET,
        "timestamp": "1757908896000",
        "hash": "legacy-2",
        "price": "0.45",
        "side": "BUY",
        "size": "8.5",
    }
    frames: list[Any] = [
        [SNAP_YES, SNAP_NO],
        price_change([(YES, "BUY", "0.50", "0"), (YES, "BUY", "0.505", "3"), (NO, "SELL", "0.50", "1")]),
        price_change([(YES, "SELL", "0.520", "26.5"), (YES, "SELL", "0.55", "1"), (YES, "SELL", "0.54", "0")]),
        legacy_changes,
        legacy_single,
        book_frame(NO, [("0.4", "1"), ("0.41", "2")], [("0.6", "1")], ts=1757908897000),  # a fresh snapshot replaces all
        price_change([(NO, "BUY", "0.41", "0"), (NO, "BUY", "0.42", "4")]),
        [price_change([(YES, "BUY", str(round(0.30 + i / 100, 2)), str(i + 1)) for i in range(12)])],
    ]
    frames += [trade(YES, "0.52", "10", "BUY"), {"event_type": "tick_size_change", "asset_id": YES, "market": MARKET,
                                                  "old_tick_size": "0.01", "new_tick_size": "0.001", "timestamp": "1757908898000"}]
    resolved = orjson.loads((Path(__file__).resolve().parents[1] / "fixtures" / "samples" / "ws" / "market_market_resolved.json").read_bytes())
    frames.append(resolved)
    rec_file = tmp_path / "rec.ndjson"
    with FakeWS([[("send", j(f)) for f in frames] + [("send", j(sentinel()))]]) as ws:
        feed = Feed(*ws_args(ws.url, YES, NO, extra=("--record", str(rec_file))))
        feed.until(is_sentinel)
        code, err = feed.stop()
    assert code == 0, err
    assert err == ""
    recs = feed.records
    books = books_of(recs)
    # the tick change re-emits the book with the new tick
    want = expected_books(frames)
    want.insert(len(want), (YES, want[-1][1] if want[-1][0] == YES else None))
    got = [(b["asset"], (b["bids"], b["asks"])) for b in books]
    assert got[:-1] == want[:-1]
    assert books[-1]["tick_size"] == 0.001 and books[0]["tick_size"] == 0.01
    assert books[0]["ts_event"] == 1757908892000 * 1000 and books[0]["market"] == MARKET
    for b in books:
        assert b["bids"] == sorted(b["bids"], reverse=True) and b["asks"] == sorted(b["asks"])
        assert len(b["bids"]) <= 10 and len(b["asks"]) <= 10
    trades = [r for r in recs if r["type"] == "trade"]
    assert trades[0]["price"] == 0.52 and trades[0]["side"] == "buy" and trades[0]["size"] == 10
    ticks = [r for r in recs if r["type"] == "tick_size_changed"]
    assert ticks == [{**ticks[0], "old_tick_size": 0.01, "new_tick_size": 0.001, "asset": YES}]
    res = [r for r in recs if r["type"] == "market_resolved"]
    assert res[0]["winning_asset"] == resolved["winning_asset_id"] and res[0]["winning_outcome"] == "Yes"
    assert rec_file.read_bytes() == b"".join(orjson.dumps(r) + b"\n" for r in recs)
    from tests.helpers import run_agkit

    val = run_agkit("validate", "--strict", str(rec_file))
    assert val.returncode == 0, val.stderr


def test_sharding_above_shard_size() -> None:
    assets = [str(10**70 + i) for i in range(450)]
    args = ["feed", "polymarket", "--url", "", "--gamma-url", "", "--metrics-every", "0"]
    with FakeWS([[("sleep", 60)]]) as ws:
        args[3] = ws.url
        argv: list[str] = list(args)
        for a in assets:
            argv += ["--asset", a]
        feed = Feed(*argv, "--shard-size", "200")
        deadline = time.monotonic() + 60
        while len(ws.subscriptions) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        code, err = feed.stop()
    assert code == 0, err
    sizes = sorted(len(s["assets_ids"]) for s in ws.subscriptions)
    assert sizes == [50, 200, 200]
    assert sorted(a for s in ws.subscriptions for a in s["assets_ids"]) == sorted(assets)
    assert ws.violations == []


def test_back_pressure_conflates_books_but_keeps_every_trade() -> None:
    n = 4000
    deep_yes = book_frame(YES, [(f"0.{i:02d}", "100") for i in range(10, 45)], [(f"0.{i:02d}", "100") for i in range(55, 90)])
    deep_no = book_frame(NO, [(f"0.{i:02d}", "100") for i in range(10, 45)], [(f"0.{i:02d}", "100") for i in range(55, 90)])
    frames: list[Any] = [[deep_yes, deep_no]]
    for i in range(n):
        asset = YES if i % 2 else NO
        frames.append(price_change([(asset, "BUY", f"0.{10 + i % 35:02d}", str(i + 1))], ts=1757908893000 + i))
        if i % 20 == 0:
            frames.append(trade(asset, "0.55", str(i + 1), "BUY", ts=1757908893000 + i))
    with FakeWS([[("sendmany", [j(f) for f in frames]), ("send", j(sentinel()))]]) as ws:
        feed = Feed(*ws_args(ws.url, YES, NO, extra=("--depth", "35")), pump=False)
        deadline = time.monotonic() + 60
        while ws.finished < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # let the feed take every frame while nobody reads its stdout
        feed.start_pump()
        feed.until(is_sentinel)
        code, err = feed.stop()
    assert code == 0, err
    recs = feed.records
    trades = [r for r in recs if r["type"] == "trade"]
    assert len(trades) == n // 20 + 1  # every trade, in order
    assert [t["size"] for t in trades[:-1]] == [float(i + 1) for i in range(0, n, 20)]
    books = books_of(recs)
    assert len(books) < n  # conflated
    model = Model()
    for f in frames:
        for ev in f if isinstance(f, list) else [f]:
            model.apply(ev)
    for asset in (YES, NO):
        last = [b for b in books if b["asset"] == asset][-1]
        assert (last["bids"], last["asks"]) == model.top(asset, 35)


def test_metrics_and_heartbeat() -> None:
    with FakeWS([[("send", j([SNAP_YES, SNAP_NO])), ("send", j(trade(YES, "0.5", "3")))]]) as ws:
        argv = [a if a != "0" else "0.3" for a in ws_args(ws.url, YES, NO)]  # --metrics-every 0.3
        feed = Feed(*argv)
        feed.until(lambda r: r["type"] == "metric" and r["name"] == "polymarket.clob.book_levels")
        code, err = feed.stop()
    assert code == 0, err
    metrics = {r["name"]: r for r in feed.records if r["type"] == "metric"}
    assert metrics["polymarket.clob.messages_received"]["value"] >= 2
    assert metrics["polymarket.clob.connection_status"]["value"] == 1
    assert metrics["polymarket.clob.reconnects"]["value"] == 0
    assert "polymarket.clob.lag_ms" in metrics
    levels = {r["labels"]["asset"]: r["value"] for r in feed.records if r.get("name") == "polymarket.clob.book_levels"}
    assert levels == {YES: 6, NO: 5}
    beats = [r for r in feed.records if r["type"] == "feed_status" and r.get("detail") == "heartbeat"]
    assert beats and beats[0]["state"] == "live"
