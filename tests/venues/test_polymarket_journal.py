"""The exec journal (agkit/exec/journal.py) on disk, and the live venue restarting with it
against the strict fake CLOB: what happened while exec was away is reported once, and
nothing an earlier run reported is reported again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from agkit.exec.journal import Journal, default_path, done_entry, fill_entry, order_entry
from tests.fakes.clob import FakeClob
from tests.venues.test_polymarket_venue import COND, TOKEN, Harness, book

REQ = {"strategy": "s", "market": COND, "asset": TOKEN, "side": "buy", "price": "0.4", "size": "10", "tif": "GTC"}


def test_journal_survives_reopening_and_compacts(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    j = Journal(path)
    j.write([order_entry("0xa", "c1", REQ, 100), {"k": "ack", "v": "0xa"}, fill_entry("0xa", "t1", Decimal("4"), "pending")])
    j.write([order_entry("0xb", "c2", REQ, 101), fill_entry("0xb", "t2", Decimal("10"), "confirmed"), done_entry("0xb")])
    j.write([order_entry("0xc", "c3", REQ, 102), fill_entry("0xc", "t3", Decimal("10"), "pending"), done_entry("0xc")])
    j.close()
    again = Journal(path)
    # 0xb ended with every fill settled: nothing more can come of it, so it is gone
    assert set(again.orders) == {"0xa", "0xc"}
    a = again.orders["0xa"]
    assert (a.client_id, a.req, a.ts, a.acked, a.done) == ("c1", REQ, 100, True, False)
    assert a.fills == {"t1": (Decimal("4"), "pending")} and a.reported == Decimal("4")
    assert again.orders["0xc"].done and not again.orders["0xc"].settled()  # waits for its settlement
    again.write([fill_entry("0xc", "t3", Decimal("10"), "confirmed")])
    again.close()
    assert set(reopened(path)) == {"0xa"}
    assert len(path.read_text().splitlines()) == 3  # rewritten small: order, ack, fill


def test_a_torn_last_line_is_skipped_and_said(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    j = Journal(path)
    j.write([order_entry("0xa", "c1", REQ, 100)])
    j.close()
    with open(path, "ab") as f:
        f.write(b'{"k":"fill","v":"0xa","t":"t1","si')  # killed mid-write
    logs: list[str] = []
    again = Journal(path, logs.append)
    again.close()
    assert again.orders["0xa"].fills == {} and any("line 2 unreadable" in m for m in logs)


def reopened(path: Path) -> dict[str, Any]:
    j = Journal(path)
    j.close()
    return dict(j.orders)


def test_one_exec_per_journal_and_a_clear_error_where_it_cannot_be(tmp_path: Path) -> None:
    import pytest

    from agkit.errors import ConfigError

    path = tmp_path / "j.jsonl"
    first = Journal(path)
    with pytest.raises(ConfigError, match="in use by another exec"):
        Journal(path)
    first.close()
    Journal(path).close()  # free again
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="--journal PATH"):
        Journal(tmp_path / "file" / "j.jsonl")

def test_default_path_is_per_host_and_funder(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    a = default_path("polymarket", "https://clob.polymarket.com", "0xABC")
    b = default_path("polymarket", "http://127.0.0.1:8080/", "0xabc")
    assert a == tmp_path / "agkit" / "exec" / "polymarket-clob.polymarket.com-0xabc.jsonl"
    assert b.parent == a.parent and b != a


def restarts(body: Callable[[FakeClob, Callable[[], Harness], Path], Any], auto_confirm: bool = True) -> None:
    """A fake CLOB that outlives several exec runs sharing one journal."""

    async def main(tmp: Path) -> None:
        fake = FakeClob(auto_confirm=auto_confirm)
        await fake.start()
        fake.add_market(COND, TOKEN)
        fake.add_account()
        try:
            await body(fake, lambda: Harness(fake, journal=tmp / "journal.jsonl"), tmp / "journal.jsonl")
        finally:
            await fake.stop()
        assert not fake.auth_failures

    import tempfile

    with tempfile.TemporaryDirectory() as d:
        asyncio.run(main(Path(d)))


async def run_until(h: Harness, pred: Callable[[], bool]) -> None:
    await h.start()
    await h.until(lambda: h.venue.reconciliations >= 2 and pred())


def test_restart_reports_what_happened_while_away_once() -> None:
    async def body(fake: FakeClob, harness: Callable[[], Harness], _path: Path) -> None:
        h1 = harness()
        await run_until(h1, lambda: True)
        h1.send(book())
        a, b, c = h1.submit("buy", 0.40, 10), h1.submit("buy", 0.41, 10), h1.submit("buy", 0.42, 10)
        await h1.until(lambda: len(h1.of("order_accepted")) == 3)
        hashes = {r["id"]: r["venue_order_id"] for r in h1.of("order_accepted")}
        t0 = fake.external_take(TOKEN, "SELL", "0.42", "4")  # c: 4 of 10, seen live
        await h1.until(lambda: [f for f in h1.of("order_filled", c) if f["settlement"] == "confirmed"])
        await h1.stop()
        assert h1.stage.oms.illegal == 0

        # away: c fills to the end, b in part, a is canceled
        away = fake.external_take(TOKEN, "SELL", "0.41", "11")  # c: 6, b: 5
        assert len(away) == 2
        fake._cancel_ids(next(iter(fake.accounts.values())), [hashes[a]])

        h2 = harness()
        await run_until(h2, lambda: len(h2.of("order_filled")) == 2)
        await h2.stop()
        assert h2.stage.oms.illegal == 0, h2.logs
        fills = {f["trade_id"]: (f["venue_order_id"], f["size"], f["settlement"]) for f in h2.of("order_filled")}
        ours = {t: m for t in away for m in fake.trades[t]["maker_orders"] if m["order_id"] in hashes.values()}
        assert fills == {t: (m["order_id"], float(m["matched_amount"]), "confirmed") for t, m in ours.items()}
        assert t0[0] not in fills  # reported by run 1
        # every order of run 1 is restored under its venue id, with the size run 1 reported
        restored = {r["id"]: r for r in h2.of("order_accepted")}
        assert set(restored) == set(hashes.values())
        assert all((r["strategy"], r["size"]) == ("t", 10.0) for r in restored.values())
        assert [r["id"] for r in h2.of("order_canceled")] == [hashes[a]]  # gone while away
        assert {p["size"] for p in h2.of("position")} >= {11.0}  # 6 + 5 in this run's portfolio
        assert hashes[b] in {o.id for o in fake.orders.values() if o.status == "LIVE"}

        # a third run: the venue has nothing new, so nothing is reported but b's restoration
        h3 = harness()
        await run_until(h3, lambda: True)
        await h3.stop()
        assert h3.of("order_filled") == [] and h3.of("order_canceled") == []
        assert [r["id"] for r in h3.of("order_accepted")] == [hashes[b]]
        assert h3.of("order_accepted")[0]["ts_event"] == restored[hashes[b]]["ts_event"]  # same row in a store

    restarts(body)


def test_an_order_that_never_reached_the_venue_is_dropped_quietly() -> None:
    async def body(fake: FakeClob, harness: Callable[[], Harness], path: Path) -> None:
        j = Journal(path)  # exec died between journaling the order and sending it
        j.write([order_entry("0x" + "ab" * 32, "lost-1", {**REQ, "strategy": "t"}, int(time.time()))])
        j.close()
        h = harness()
        await run_until(h, lambda: True)
        await h.stop()
        assert h.out == [] or all(r["type"] == "metric" for r in h.out)
        assert any("never reached the venue" in m for m in h.logs)
        assert reopened(path) == {}  # ended: compacted away

    restarts(body)


def test_a_settlement_while_away_is_said_not_reemitted() -> None:
    async def body(fake: FakeClob, harness: Callable[[], Harness], path: Path) -> None:
        h1 = harness()
        await run_until(h1, lambda: True)
        h1.send(book())
        cid = h1.submit("buy", 0.40, 10)
        await h1.until(lambda: len(h1.of("order_accepted")) == 1)
        (tid,) = fake.external_take(TOKEN, "SELL", "0.40", "10")
        await h1.until(lambda: len(h1.of("order_filled", cid)) == 1)  # pending
        await h1.stop()
        fake.settle(tid, "CONFIRMED")  # while away
        h2 = harness()
        await run_until(h2, lambda: True)
        await h2.stop()
        assert h2.stage.oms.illegal == 0, h2.logs
        assert h2.of("order_filled") == []  # the new exec does not know the fill: nothing to update
        assert any(f"trade {tid}" in m and "now confirmed" in m for m in h2.logs)
        assert reopened(path) == {}  # filled and settled: nothing more can come of it

    restarts(body, auto_confirm=False)
