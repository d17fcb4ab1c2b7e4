"""Soak (slow): 200k recorded records through the whole bot as five processes, with the
feedback FIFO. It must complete, lose nothing the feed sent, and every stage's peak RSS must
stay under a generous bound. The 1M-record figures (throughput per window, RSS per stage)
come from `python bench/bench_soak.py` (`make bench`); nothing here is timed.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bench.bench_soak import STAGES, make_day, run_soak

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

RECORDS = 200_000
RSS_BOUND_MIB = 400  # generous: every stage stays far below it (measured 30-120 MiB)


def test_soak_200k_records_bounded_memory(tmp_path: Path) -> None:
    day = tmp_path / "day.ndjson"
    make_day(day, RECORDS, seed=5)
    lines = day.read_bytes().count(b"\n")
    assert lines == RECORDS
    res = run_soak(day, tmp_path, RECORDS, window_s=5.0, timeout=840)
    assert res.exit_codes == [0] * len(STAGES), res.stderr
    for name in STAGES:
        assert "Traceback" not in res.stderr[name] and "internal error" not in res.stderr[name], res.stderr[name]
        assert 0 < res.peak_rss_kb[name] < RSS_BOUND_MIB * 1024, (name, res.peak_rss_kb)
    # completion: every market record the feed replayed is in the store, plus the bot's own records
    with sqlite3.connect(tmp_path / "soak.db") as conn:
        books = conn.execute("select count(*) from books").fetchone()[0]
        trades = conn.execute("select count(*) from trades").fetchone()[0]
        orders = conn.execute("select count(*) from order_events").fetchone()[0]
    text = day.read_bytes()
    assert books == text.count(b'"type":"book"') and trades == text.count(b'"type":"trade"')
    assert orders > 0 and res.stored > RECORDS // 2
