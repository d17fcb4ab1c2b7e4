"""The live bot end to end, real processes only, against the strict fake Polymarket:

    agkit feed polymarket (the fake's market WebSocket)
      | agkit strategy mm --merge FIFO | agkit risk-check -p policies/market-maker.yaml --clock wall
      | agkit exec --venue polymarket --live --feedback FIFO | agkit store ingest --tee (SQLite)

The fake CLOB (tests/fakes/clob.py) verifies every L2 header and EIP-712 signature, matches
orders and streams the user channel; the test plays the other traders (tests/e2e/live_support.py).
Drills: a kill switch engaged mid-run, and every stage SIGKILLed mid-run then restarted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.live_support import (
    NO,
    QUOTE_SIZE,
    YES,
    Bot,
    FakePolymarket,
    expected_rows,
    metric,
    of,
    stored,
    wait_for,
)

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def venue() -> Iterator[FakePolymarket]:
    v = FakePolymarket()
    try:
        yield v
    finally:
        v.close()


@pytest.fixture
def bots() -> Iterator[list[Bot]]:
    started: list[Bot] = []
    try:
        yield started
    finally:
        for b in started:
            b.kill()


def launch(venue: FakePolymarket, tmp: Path, bots: list[Bot], name: str, prefix: str, db: Path) -> Bot:
    bot = Bot(venue, tmp, name, prefix, db, tmp / "KILL")
    bots.append(bot)
    bot.start()
    return bot


def two_quotes(venue: FakePolymarket, bot: Bot) -> list[dict[str, Any]]:
    """Wait for the market maker's two quotes to rest: a YES bid and a NO bid (the YES ask)."""

    def got() -> list[dict[str, Any]]:
        live = venue.live()
        return live if {(o["asset_id"], o["side"]) for o in live} == {(YES, "BUY"), (NO, "BUY")} else []

    return wait_for(got, "a YES bid and a NO bid resting at the venue", bots=(bot,))


def assert_no_duplicates_at_venue(venue: FakePolymarket, records: list[dict[str, Any]]) -> None:
    """Every order the venue holds was posted once, belongs to exactly one client id, and the
    client id is unique."""
    attempts = venue.post_attempts()
    assert attempts and set(attempts.values()) == {1}, attempts
    accepted = of(records, "order_accepted")
    ids = Counter(r["id"] for r in accepted)
    assert all(n == 1 for n in ids.values()), ids
    hashes = Counter(r["venue_order_id"] for r in accepted)
    assert all(n == 1 for n in hashes.values()), hashes
    at_venue = {o["id"] for o in venue.ours()}
    assert at_venue == set(hashes), (at_venue ^ set(hashes))
    assert at_venue == set(attempts)


def test_live_pipe_with_feedback(venue: FakePolymarket, tmp_path: Path, bots: list[Bot]) -> None:
    db = tmp_path / "bot.db"
    bot = launch(venue, tmp_path, bots, "run", "live-", db)
    quotes = two_quotes(venue, bot)
    # orders reached the venue signed (the fake recovered our address from every EIP-712
    # signature and checked every L2 HMAC) and were accepted
    assert not venue.fake.auth_failures
    bid = next(o for o in quotes if o["asset_id"] == YES)
    assert bid["maker_address"] == venue.acc.address and bid["original_size"] == str(QUOTE_SIZE)

    # another trader sells into our YES bid: the fake matches it and streams the trade
    trades = venue.take(YES, "SELL", bid["price"], str(QUOTE_SIZE))
    assert len(trades) == 1
    # the fill comes back through the user channel as order_filled (pending, then confirmed) ...
    wait_for(lambda: of(bot.records(), "order_filled", trade_id=trades[0], settlement="confirmed"),
             "the confirmed fill downstream", bots=(bot,))
    # ... and reaches the strategy through the FIFO: it reports its position, and, holding
    # YES now, quotes its ask as a sale of YES instead of a purchase of NO
    wait_for(lambda: [m for m in metric(bot.records(), "strategy.position_size") if m["value"] == QUOTE_SIZE],
             "the strategy's position after the fill", bots=(bot,))
    wait_for(lambda: [o for o in venue.live() if o["asset_id"] == YES and o["side"] == "SELL"],
             "the strategy's YES sell (it knows it holds YES)", bots=(bot,))
    # and it bids again (the venue took the new post-only bid: the sold-out taker left no husk)
    wait_for(lambda: [o for o in venue.live() if o["asset_id"] == YES and o["side"] == "BUY"],
             "the strategy's new YES bid", bots=(bot,))

    codes = bot.stop()
    assert codes == [0, 0, 0, 0, 0], bot.stderr()
    recs = bot.records()
    assert "Traceback" not in bot.stderr()

    fills = of(recs, "order_filled")
    assert [(f["trade_id"], f["settlement"]) for f in fills] == [(trades[0], "pending"), (trades[0], "confirmed")]
    f = fills[0]
    assert (f["venue_order_id"], f["asset"], f["side"], f["price"], f["size"], f["liquidity"]) == (
        bid["id"], YES, "buy", float(bid["price"]), QUOTE_SIZE, "maker")
    assert f["id"].startswith("live-")
    # exec drops its own events when they come around the loop: each appears once downstream
    assert not [r for r in recs if "_fb" in r]
    assert len(of(recs, "order_accepted")) == len({r["id"] for r in of(recs, "order_accepted")})
    # the risk check saw the fill too (it sits between strategy and exec, on the loop)
    assert [p for p in of(recs, "position") if p["asset"] == YES and p["size"] == QUOTE_SIZE]

    assert not of(recs, "order_rejected") and not of(recs, "order_denied")
    assert_no_duplicates_at_venue(venue, recs)
    assert not venue.fake.auth_failures
    # the strategy canceled its quotes at the end of input: nothing of ours rests
    assert venue.live() == []

    # the store holds exactly the records that came out of the pipe
    assert stored(db) == expected_rows(recs)
