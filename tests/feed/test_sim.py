"""`agkit feed sim`: determinism, schema validity, book invariants, bounds, options."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from agkit.feed.sim import SimConfig, Simulator
from tests.helpers import parse_ndjson, popen_agkit, run_agkit


def sim_records(**kw: Any) -> list[dict[str, Any]]:
    return list(Simulator(SimConfig(**kw)).records())


def test_same_seed_same_bytes_different_seed_differs() -> None:
    a = run_agkit("feed", "sim", "--seed", "42", "--max-records", "3000")
    b = run_agkit("feed", "sim", "--seed", "42", "--max-records", "3000")
    c = run_agkit("feed", "sim", "--seed", "43", "--max-records", "3000")
    assert a.returncode == b.returncode == c.returncode == 0, a.stderr
    assert a.stdout == b.stdout
    assert a.stdout != c.stdout
    assert len(a.stdout.splitlines()) == 3000
    assert a.stderr == b""


def test_library_stream_equals_command_stream() -> None:
    proc = run_agkit("feed", "sim", "--seed", "5", "--markets", "2", "--max-records", "500")
    lib = sim_records(seed=5, markets=2, max_records=500)
    assert parse_ndjson(proc.stdout) == lib


def test_output_validates() -> None:
    sim = run_agkit("feed", "sim", "--seed", "3", "--max-records", "20000")
    assert sim.returncode == 0
    val = run_agkit("validate", "--strict", input=sim.stdout)
    assert val.returncode == 0, val.stderr
    summary = orjson.loads(val.stdout)
    assert summary["invalid"] == 0 and summary["valid"] == 20000
    assert {"book", "trade", "feed_status", "metric"} <= set(summary["per_type"])


def on_grid(price: float, tick: float) -> bool:
    q = Decimal(repr(price)) / Decimal(repr(tick))
    return q == q.to_integral_value()


def check_book(rec: dict[str, Any]) -> None:
    tick, min_size = rec["tick_size"], rec["min_size"]
    bids, asks = rec["bids"], rec["asks"]
    assert 0 < len(bids) <= 10 and 0 < len(asks) <= 10
    for price, size in bids + asks:
        assert on_grid(price, tick), (price, tick)
        assert tick <= price <= 1 - tick
        assert size >= min_size
        assert round(size, 2) == size
    assert [p for p, _ in bids] == sorted((p for p, _ in bids), reverse=True)
    assert [p for p, _ in asks] == sorted(p for p, _ in asks)
    assert len({p for p, _ in bids}) == len(bids)
    assert bids[0][0] < asks[0][0]


def test_book_invariants_and_yes_no_mirror() -> None:
    recs = sim_records(seed=11, markets=3, expiry_s=1800, event_rate=5)
    books = [r for r in recs if r["type"] == "book"]
    assert len(books) > 1000
    for rec in books:
        check_book(rec)
    # books come in (YES, NO) pairs at the same instant; NO = 1 - YES, sides swapped
    for yes, no in zip(books[::2], books[1::2], strict=True):
        assert yes["market"] == no["market"] and yes["ts_event"] == no["ts_event"]
        assert yes["asset"] != no["asset"]
        assert [[round(1 - p, 3), s] for p, s in yes["asks"]] == no["bids"]
        assert [[round(1 - p, 3), s] for p, s in yes["bids"]] == no["asks"]
        assert yes["tick_size"] == no["tick_size"]


def test_ticks_change_near_the_extremes_and_markets_resolve() -> None:
    recs = sim_records(seed=2, markets=4, expiry_s=3600, event_rate=3)
    changes = [r for r in recs if r["type"] == "tick_size_changed"]
    assert changes, "expected a tick size change as markets approach 0 or 1"
    tick: dict[str, float] = {}
    for r in recs:
        if r["type"] == "tick_size_changed":
            assert {r["old_tick_size"], r["new_tick_size"]} == {0.01, 0.001}
            assert tick.get(r["asset"], 0.01) == r["old_tick_size"]
            tick[r["asset"]] = r["new_tick_size"]
        elif r["type"] == "book":
            assert r["tick_size"] == tick.get(r["asset"], 0.01)
            if r["tick_size"] == 0.001:  # the fine tick only near the ends
                mid = (r["bids"][0][0] + r["asks"][0][0]) / 2
                assert mid < 0.1 or mid > 0.9
    resolved = [r for r in recs if r["type"] == "market_resolved"]
    assert len(resolved) == 4
    assert len({r["market"] for r in resolved}) == 4
    for r in resolved:
        assert r["winning_asset"] in r["assets"] and len(r["assets"]) == 2
        later = [x for x in recs if x.get("market") == r["market"] and x["ts_event"] > r["ts_event"]]
        assert later == []  # a resolved market is silent
    assert recs[-1]["type"] in ("market_resolved", "metric")
    ts = [r["ts_event"] for r in recs]
    assert ts == sorted(ts)


def test_trades_hit_the_previous_book() -> None:
    recs = sim_records(seed=9, markets=2, max_records=20000)
    last: dict[str, dict[str, Any]] = {}
    kinds = Counter()
    for r in recs:
        if r["type"] == "book":
            last[r["asset"]] = r
        elif r["type"] == "trade":
            book = last[r["asset"]]
            side = book["asks"] if r["side"] == "buy" else book["bids"]
            levels = {p: s for p, s in side}
            assert r["price"] in levels, (r, side)
            assert 0 < r["size"] <= levels[r["price"]]
            assert on_grid(r["price"], book["tick_size"])
            kinds[r["side"]] += 1
    assert kinds["buy"] > 100 and kinds["sell"] > 100
    assert len({r["trade_id"] for r in recs if r["type"] == "trade"}) == sum(kinds.values())


def test_duration_bound_and_metrics() -> None:
    recs = sim_records(seed=1, duration_s=60, metrics_every_s=10)
    assert recs[-1]["ts_event"] <= 1_767_225_600_000_000 + 60_000_000
    metrics = [r for r in recs if r["type"] == "metric"]
    names = {r["name"] for r in metrics}
    assert {"feed.sim.messages_received", "feed.sim.msgs_per_second", "feed.sim.book_levels"} <= names
    counters = [r["value"] for r in metrics if r["name"] == "feed.sim.messages_received"]
    assert len(counters) == 6 and counters == sorted(counters)
    assert sim_records(seed=1, duration_s=60, metrics_every_s=0)[-1]["type"] != "metric"


def test_realtime_pacing_gives_the_same_stream() -> None:
    args = ("feed", "sim", "--seed", "4", "--max-records", "300", "--start", "2026-03-01T00:00:00Z")
    fast = run_agkit(*args)
    paced = run_agkit(*args, "--realtime", "--speed", "100000")
    assert fast.returncode == paced.returncode == 0, paced.stderr
    assert fast.stdout == paced.stdout
    assert parse_ndjson(fast.stdout)[0]["ts_event"] == 1_772_323_200_000_000


def test_record_file_equals_stdout(tmp_path: Path) -> None:
    out = tmp_path / "rec.ndjson"
    proc = run_agkit("feed", "sim", "--max-records", "2000", "--record", str(out))
    assert proc.returncode == 0
    assert out.read_bytes() == proc.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--markets", "0"), b"--markets"),
        (("--depth", "0"), b"--depth"),
        (("--max-records", "-1"), b"negative"),
        (("--start", "yesterday"), b"--start"),
        (("--realtime", "--speed", "0"), b"--speed"),
    ],
)
def test_bad_options_exit_2(args: tuple[str, ...], needle: bytes) -> None:
    proc = run_agkit("feed", "sim", *args)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr
    assert proc.stdout == b""
    assert b"Traceback" not in proc.stderr


def test_merge_fifo_records_join_the_stream(tmp_path: Path) -> None:
    fifo = tmp_path / "fb"
    os.mkfifo(fifo)
    proc = popen_agkit(
        "feed", "sim", "--realtime", "--metrics-every", "0", "--merge", str(fifo),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert b'"feed_status"' in proc.stdout.readline()  # running, FIFO open for reading
    line = b'{"type":"order_filled_test","ts_event":1,"ts_init":2,"x":1}'
    fd = os.open(fifo, os.O_WRONLY)
    os.write(fd, line + b"\n")
    os.close(fd)
    for _ in range(100000):
        got = proc.stdout.readline()
        assert got, "stream ended before the merged record arrived"
        if got.rstrip() == line:
            break
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


@pytest.mark.parametrize(
    "kw",
    [
        {"seed": 5, "depth": 1, "max_records": 20000},
        {"seed": 6, "depth": 2, "markets": 5, "max_records": 20000},
        {"seed": 2, "markets": 4, "expiry_s": 3600, "event_rate": 3},  # tick changes, resolutions
        {"seed": 9, "markets": 1, "expiry_s": 900, "depth": 3, "venue": 'v"x', "min_size": 1.5},
        {"seed": 11, "duration_s": 100, "metrics_every_s": 2, "max_records": 2049},
    ],
)
def test_encoded_blocks_are_the_records_as_orjson_writes_them(kw: dict[str, Any]) -> None:
    """The command writes `blocks()` (book lines joined from cached level bytes); the library
    gives `records()`. Same simulation, so the bytes must be orjson's encoding of the records."""
    expected = [orjson.dumps(r) for r in sim_records(**kw)]
    lines = [line for block in Simulator(SimConfig(**kw)).blocks() for line in block]
    assert lines == expected
    assert len(lines) == kw.get("max_records", len(lines))
