"""Malformed records in the data: reported with their line, then --on-error decides
(skip by default); one bad book never ends a backtest, `agkit run` or a strategy."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.helpers import ROOT, parse_ndjson, run_agkit, sim_file

POLICY = str(ROOT / "policies" / "market-maker.yaml")

# what a broken recorder or a hand edit can leave in a book (the first YES book of the
# data, changed in one field), and the words the refusal must contain
BAD_BOOKS: list[tuple[dict[str, Any], str]] = [
    ({"bids": "x"}, "bad book record"),
    ({"bids": [["0.5", "10"]]}, "bad book record"),
    ({"asks": [[None, 1]]}, "bad book record"),
    ({"bids": [[0.5]]}, "bad book record"),
    ({"tick_size": "0.01"}, "bad book record"),
    ({"ts_event": "soon"}, "ts_event"),
    ({"bids": [[1e308, 1e308]]}, "outside [0, 1]"),
    ({"asks": [[0.6, 1e300]]}, "size"),
    ({"tick_size": 5e-324}, "tick 5e-324"),  # in (0, 1), but the price grid overflowed
]


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sim_file(tmp_path_factory.mktemp("data") / "clean.ndjson", seed=9, records=3000)


def with_bad_books(clean: Path, tmp_path: Path) -> tuple[Path, list[int]]:
    """The clean data with each bad book inserted after line 1000 + 100·i (copies of the
    book just before it, so a run that skips them sees exactly the clean data)."""
    lines = clean.read_bytes().splitlines()
    out: list[bytes] = []
    where: list[int] = []
    for i, line in enumerate(lines):
        out.append(line)
        k = (i + 1 - 1000) // 100
        if i + 1 >= 1000 and (i + 1 - 1000) % 100 == 0 and k < len(BAD_BOOKS):
            book = next(orjson.loads(x) for x in reversed(lines[: i + 1]) if b'"type":"book"' in x)
            book.update(BAD_BOOKS[k][0])
            out.append(orjson.dumps(book))
            where.append(len(out))
    path = tmp_path / "bad.ndjson"
    path.write_bytes(b"\n".join(out) + b"\n")
    return path, where


def test_bad_books_are_skipped_and_the_backtest_is_the_clean_one(clean: Path, tmp_path: Path) -> None:
    bad, where = with_bad_books(clean, tmp_path)
    assert len(where) == len(BAD_BOOKS)
    args = ("-s", "mm", "-p", POLICY, "--latency-us", "20000", "--seed", "4")
    dirty = run_agkit("backtest", "--data", str(bad), *args)
    assert dirty.returncode == 0, dirty.stderr
    assert b"Traceback" not in dirty.stderr and b"internal error" not in dirty.stderr
    messages = dirty.stderr.decode().splitlines()
    for lineno, (_, words) in zip(where, BAD_BOOKS, strict=True):
        (said,) = [m for m in messages if f"bad.ndjson line {lineno}:" in m]
        assert words in said and said.endswith("(skipped)"), said
    plain = run_agkit("backtest", "--data", str(clean), *args)
    (a,), (b,) = parse_ndjson(dirty.stdout), parse_ndjson(plain.stdout)
    assert a["fills"] > 0 and a == b


def test_on_error_fail_stops_at_the_first_bad_book(clean: Path, tmp_path: Path) -> None:
    bad, where = with_bad_books(clean, tmp_path)
    proc = run_agkit("backtest", "--data", str(bad), "-s", "mm", "--on-error", "fail")
    assert proc.returncode == 3, proc.stderr
    assert f"line {where[0]}:".encode() in proc.stderr and proc.stdout == b""


def test_on_error_emit_puts_error_records_in_the_output(clean: Path, tmp_path: Path) -> None:
    bad, where = with_bad_books(clean, tmp_path)
    out = tmp_path / "out.ndjson"
    proc = run_agkit("backtest", "--data", str(bad), "-s", "mm", "--on-error", "emit", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    errors = [r for r in parse_ndjson(out.read_bytes()) if r["type"] == "error"]
    assert [e["line"] for e in errors] == where
    assert all(e["source"] == "backtest" and type(e["ts_event"]) is int for e in errors)


def test_a_line_that_is_not_json_is_an_error_record_under_emit(clean: Path, tmp_path: Path) -> None:
    lines = clean.read_bytes().splitlines()
    data = tmp_path / "d.ndjson"
    data.write_bytes(b"\n".join([*lines[:10], b"not json", *lines[10:]]) + b"\n")
    out = tmp_path / "out.ndjson"
    proc = run_agkit("backtest", "--data", str(data), "-s", "noop", "--on-error", "emit", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert b"d.ndjson line 11:" in proc.stderr
    (error,) = [r for r in parse_ndjson(out.read_bytes()) if r["type"] == "error"]
    assert error["line"] == 11 and error["raw"] == "not json"


def test_agkit_run_and_the_strategy_stage_skip_bad_books_too(clean: Path, tmp_path: Path) -> None:
    bad, where = with_bad_books(clean, tmp_path)
    data = bad.read_bytes()
    strategy = run_agkit("strategy", "mm", input=data)
    assert strategy.returncode == 0, strategy.stderr
    for lineno in where:
        assert f"line {lineno}:".encode() in strategy.stderr
    run = run_agkit("run", f"strategy mm | risk-check -p {POLICY} | exec", input=data, timeout=120)
    assert run.returncode == 0, run.stderr
    assert b"internal error" not in run.stderr
    for lineno in where:
        assert f"line {lineno}:".encode() in run.stderr
    assert any(r["type"] == "order_filled" for r in parse_ndjson(run.stdout))


def test_agkit_run_applies_each_stage_s_own_on_error(clean: Path) -> None:
    """In one process as in a pipe, the stage that refuses a record decides what happens."""
    lines = clean.read_bytes().splitlines()
    book = next(orjson.loads(x) for x in lines[400:] if b'"type":"book"' in x)
    resolved = {"type": "market_resolved", "ts_event": book["ts_event"], "ts_init": book["ts_event"],
                "market": book["market"], "winning_asset": None}
    data = b"\n".join([*lines[:500], orjson.dumps(resolved), *lines[500:1000]]) + b"\n"
    skip = run_agkit("run", f"pass | risk-check -p {POLICY} | exec", input=data)
    assert skip.returncode == 0, skip.stderr
    said = skip.stderr.decode()
    assert f"agkit risk-check: a market_resolved record at ts_event {book['ts_event']}:" in said
    assert "(skipped)" in said
    kinds = Counter(r["type"] for r in parse_ndjson(skip.stdout) if r["type"] != "metric")
    assert kinds == Counter(r["type"] for r in parse_ndjson(b"\n".join(lines[:1000])) if r["type"] != "metric")
    fail = run_agkit("run", f"pass | risk-check -p {POLICY} --on-error fail | exec", input=data)
    assert fail.returncode == 3, fail.stderr
    assert b"risk-check: a market_resolved record" in fail.stderr


def test_a_gap_of_days_in_the_data_does_not_replay_every_timer_tick(clean: Path, tmp_path: Path) -> None:
    """Two recordings ten days apart: the timers (risk metrics, strategy) resume on the far
    side of the gap; they do not fire 864,000 times each (that took 2.5 GB and 12 s)."""
    from agkit.clock import MAX_CATCH_UP

    recs = parse_ndjson(clean.read_bytes())
    shift = 10 * 86_400_000_000
    later = [{**r, "ts_event": r["ts_event"] + shift, "ts_init": r["ts_init"] + shift} for r in recs]
    data = tmp_path / "gap.ndjson"
    data.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs + later))
    out = tmp_path / "out.ndjson"
    proc = run_agkit("backtest", "--data", str(data), "-s", "mm", "-p", POLICY, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    (res,) = parse_ndjson(proc.stdout)
    assert res["to_us"] == later[-1]["ts_event"] and res["fills"] > 0
    end, start = recs[-1]["ts_event"], later[0]["ts_event"]
    in_gap = [r for r in parse_ndjson(out.read_bytes()) if end < r["ts_event"] < start]
    series = {(r["name"], orjson.dumps(r["labels"])) for r in in_gap if r["type"] == "metric"}
    assert in_gap and len(in_gap) <= MAX_CATCH_UP * len(series)  # one point a series a tick


def test_a_timestamp_past_2100_moves_no_clock(clean: Path, tmp_path: Path) -> None:
    lines = clean.read_bytes().splitlines()
    recs = [orjson.loads(x) for x in lines]
    trade = next(r for r in recs[1000:] if r["type"] == "trade")
    book = next(r for r in recs[1000:] if r["type"] == "book")
    bogus = (1 << 53) + 1  # a year-2255 time in µs
    data = tmp_path / "d.ndjson"
    data.write_bytes(b"\n".join([*lines[:1500], orjson.dumps({**trade, "ts_event": bogus}),
                                 orjson.dumps({**book, "ts_event": bogus}), *lines[1500:]]) + b"\n")
    proc = run_agkit("backtest", "--data", str(data), "-s", "mm", "-p", POLICY, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert b"line 1502: mm refused it: book: ts_event must be an integer of \xc2\xb5s before 2100" in proc.stderr
    (res,) = parse_ndjson(proc.stdout)
    assert res["to_us"] == recs[-1]["ts_event"]  # the clock never went to 2255
