"""`agkit exec` as a command: flags reach the paper venue; usage errors are clear."""

from __future__ import annotations

import sys

import pytest

from agkit.errors import UsageError
from tests.exec.util import book, cancel, submit, tick, trade
from tests.helpers import ndjson, parse_ndjson, run_agkit

BOOK = book(1000, bids=[[0.50, 100]], asks=[[0.52, 50], [0.53, 100]])


def test_flags_reach_the_paper_venue() -> None:
    data = ndjson(
        [
            BOOK,
            submit(1001, "t", "buy", 0.53, 60),
            submit(1002, "m", "buy", 0.50, 10),
            tick(2000),
            trade(2001, 0.50, 105, "sell"),
            cancel(2002, "m"),
            tick(3000),
        ]
    )
    proc = run_agkit(
        "exec",
        "--latency-us",
        "100",
        "--cancel-latency-us",
        "50",
        "--fee-rate",
        "0.02",
        "--seed",
        "3",
        input=data,
    )
    assert proc.returncode == 0, proc.stderr
    out = parse_ndjson(proc.stdout)
    acc = [r for r in out if r["type"] == "order_accepted"]
    assert [(r["id"], r["ts_event"]) for r in acc] == [("t", 1101), ("m", 1102)]
    fills = [
        (r["id"], r["price"], r["size"], r["fee"], r["liquidity"])
        for r in out
        if r["type"] == "order_filled"
    ]
    assert fills == [
        ("t", 0.52, 50.0, round(50 * 0.02 * 0.52 * 0.48, 6), "taker"),
        ("t", 0.53, 10.0, round(10 * 0.02 * 0.53 * 0.47, 6), "taker"),
        ("m", 0.50, 5.0, 0.0, "maker"),
    ]
    (can,) = [r for r in out if r["type"] == "order_canceled"]
    assert can["ts_event"] == 2052
    assert sum(r["type"] == "metric" for r in out) == 8
    again = run_agkit(
        "exec",
        "--latency-us",
        "100",
        "--cancel-latency-us",
        "50",
        "--fee-rate",
        "0.02",
        "--seed",
        "3",
        input=data,
    )
    strip = lambda recs: [{k: v for k, v in r.items() if k != "ts_init"} for r in recs]  # noqa: E731
    assert strip(parse_ndjson(again.stdout)) == strip(out)  # seeded: the same run again


def test_live_with_paper_is_a_usage_error() -> None:
    proc = run_agkit("exec", "--live", input=b"")
    assert proc.returncode == 2
    assert b"paper venue never sends" in proc.stderr


def test_bad_submit_without_id_follows_on_error() -> None:
    rec = submit(1, "x", "buy", 0.5, 10)
    del rec["id"]
    proc = run_agkit("exec", "--on-error", "emit", input=ndjson([rec]))
    assert proc.returncode == 0
    out = parse_ndjson(proc.stdout)
    assert out[0]["type"] == "error" and "id" in out[0]["reason"]
    proc = run_agkit("exec", "--on-error", "fail", input=ndjson([rec]))
    assert proc.returncode == 3 and b"line 1" in proc.stderr


def test_polymarket_not_available_is_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    from agkit.cli.exec import polymarket_venue

    monkeypatch.setitem(sys.modules, "agkit.venues.polymarket.venue", None)
    monkeypatch.setitem(sys.modules, "agkit.venues.polymarket", None)
    with pytest.raises(UsageError, match="not available"):
        polymarket_venue(False)
