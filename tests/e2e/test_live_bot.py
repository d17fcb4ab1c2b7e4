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
    """Wait for the market maker's two quotes to rest: a YES bid and a NO bid (the YES ask),
    both reported `order_accepted` in the bot's output (exec journals an acceptance before
    the record leaves, so the record can trail the venue's state)."""

    def got() -> list[dict[str, Any]]:
        live = venue.live()
        if {(o["asset_id"], o["side"]) for o in live} != {(YES, "BUY"), (NO, "BUY")}:
            return []
        accepted = {r["venue_order_id"] for r in of(bot.records(), "order_accepted")}
        return live if {o["id"] for o in live} <= accepted else []

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

    assert venue.fake.ws_connects >= 1  # exec's user channel (the fill came that way, live)

    # the store holds exactly the records that came out of the pipe
    rows = stored(db)
    assert rows == expected_rows(recs)
    assert Counter(t for t, _ in rows)["fills"] == 2 and Counter(t for t, _ in rows)["books"] > 0


CANCEL_ROUTES = {("DELETE", "/order"), ("DELETE", "/orders"), ("DELETE", "/cancel-all"), ("DELETE", "/cancel-market-orders")}
POST_ROUTES = {("POST", "/order"), ("POST", "/orders")}


@pytest.mark.parametrize("how", ["kill_file", "sigusr1"])
def test_kill_switch_drill(venue: FakePolymarket, tmp_path: Path, bots: list[Bot], how: str) -> None:
    import os
    import signal

    db = tmp_path / "bot.db"
    bot = launch(venue, tmp_path, bots, "run", "kill-", db)
    quotes = two_quotes(venue, bot)
    before = len(venue.requests())
    if how == "kill_file":
        (tmp_path / "KILL").touch()
    else:
        os.kill(bot.pid("risk-check"), signal.SIGUSR1)

    # the cancel-all reaches the venue: nothing of ours rests any more
    wait_for(lambda: not venue.live(), "the venue's open orders of the account to reach zero", bots=(bot,))
    kills = wait_for(lambda: of(bot.records(), "kill_switch"), "the kill_switch record", bots=(bot,))
    assert kills[0]["engaged"] is True and kills[0]["source"] == ("kill_file" if how == "kill_file" else "signal")
    requests = venue.requests()
    cut = next(i for i in range(before, len(requests)) if requests[i] in CANCEL_ROUTES)
    # the strategy keeps quoting (its quotes are gone); every new order is denied by the
    # kill switch. Two rounds of denials: the second comes after the strategy gave up
    # waiting for an answer to the first (ack_timeout), on fresh books.
    wait_for(lambda: len(of(bot.records(), "order_denied", policy="KillSwitch")) >= 4,
             "two rounds of orders denied by the kill switch", timeout=120, bots=(bot,))
    codes = bot.stop()
    assert codes == [0, 0, 0, 0, 0], bot.stderr()
    recs = bot.records()

    # no order reached the venue after the cancel: no POST, no new order, none resting
    requests = venue.requests()
    assert not [r for r in requests[cut:] if r in POST_ROUTES], requests[cut:]
    assert {o["id"] for o in venue.ours()} == {q["id"] for q in quotes}
    assert all(o["status"] == "CANCELED" for o in venue.ours())
    # the stream tells the same story in order: kill_switch, cancel_all, both quotes canceled,
    # and after it no submit_order gets past the risk check and nothing is accepted
    types = [r["type"] for r in recs]
    k = types.index("kill_switch")
    assert types[k + 1] == "cancel_all"
    after = recs[k:]
    assert not of(after, "order_accepted") and not of(after, "submit_order")
    canceled = {r["venue_order_id"] for r in of(after, "order_canceled")}
    assert canceled == {q["id"] for q in quotes}
    assert {r["policy"] for r in of(after, "order_denied")} == {"KillSwitch"}
    assert_no_duplicates_at_venue(venue, recs)
    assert stored(db) == expected_rows(recs)


EXECUTION = ("order_events", "fills", "positions")


def test_restart_drill(venue: FakePolymarket, tmp_path: Path, bots: list[Bot]) -> None:
    import subprocess

    from tests.helpers import agkit_argv, agkit_env

    db = tmp_path / "bot.db"
    # --- run 1: quotes, a fill, the strategy's reaction; then every stage SIGKILLed --------
    run1 = launch(venue, tmp_path, bots, "run1", "r1-", db)
    bid = next(o for o in two_quotes(venue, run1) if o["asset_id"] == YES)
    t1 = venue.take(YES, "SELL", bid["price"], str(QUOTE_SIZE))
    wait_for(lambda: {(o["asset_id"], o["side"]) for o in venue.live()} == {(YES, "BUY"), (YES, "SELL")},
             "run 1 requoting after its fill (YES bid and YES ask)", bots=(run1,))

    def execution_stored() -> bool:
        recs = run1.records()
        want = {k for k in expected_rows(recs) if k[0] in EXECUTION}
        have = stored(db)
        # the orders resting at the venue were reported accepted (a kill between the venue's
        # answer and the record would leave them to run 2's reconciliation, a different drill)
        accepted = {r["venue_order_id"] for r in of(recs, "order_accepted")}
        resting_known = {o["id"] for o in venue.live()} <= accepted
        return bool(of(recs, "order_filled", settlement="confirmed")) and resting_known and want <= set(have)

    wait_for(execution_stored, "run 1's order events and fills in the store", bots=(run1,))
    run1.kill()  # SIGKILL, every stage, while books keep flowing
    assert not run1.alive()
    resting = {o["id"] for o in venue.live()}
    assert len(resting) == 2
    out1 = run1.records()

    # --- run 2: the same pipeline, a fresh client id prefix; exec reconciles at start ------
    run2 = launch(venue, tmp_path, bots, "run2", "r2-", db)
    wait_for(lambda: len([r for r in of(run2.records(), "order_accepted") if not r["id"].startswith("r2-")]) == 2,
             "both of run 1's resting orders restored", bots=(run2,))
    restored = [r for r in of(run2.records(), "order_accepted") if not r["id"].startswith("r2-")]
    assert {r["venue_order_id"] for r in restored} == resting == {r["id"] for r in restored}
    wait_for(lambda: len([o for o in venue.live() if o["id"] not in resting]) == 2,
             "run 2's own two quotes resting", bots=(run2,))
    # a seller takes both bids at 0.49: run 1's restored bid first (time priority), then run 2's
    t2 = venue.take(YES, "SELL", bid["price"], str(2 * QUOTE_SIZE))
    assert len(t2) == 2
    wait_for(lambda: {f["trade_id"] for f in of(run2.records(), "order_filled", settlement="confirmed")} == set(t2),
             "both fills confirmed in run 2", bots=(run2,))
    codes = run2.stop()
    assert codes == [0, 0, 0, 0, 0], run2.stderr()
    out2 = run2.records()

    # --- the venue: no order lost or sent twice ------------------------------------------------
    attempts = venue.post_attempts()
    assert attempts and set(attempts.values()) == {1}, attempts  # every signed order posted once
    ours = {o["id"]: o for o in venue.ours()}
    assert set(ours) == set(attempts)
    rows = stored(db)
    accepted = [r for (t, _), r in rows.items() if t == "order_events" and r["type"] == "order_accepted"]
    placed = Counter(r["venue_order_id"] for r in accepted if r["id"].startswith(("r1-", "r2-")))
    assert set(placed) == set(ours) and set(placed.values()) == {1}  # each venue order: one client id
    client_ids = Counter(r["id"] for r in accepted)
    assert set(client_ids.values()) == {1}
    assert {r["venue_order_id"] for r in accepted if not r["id"].startswith(("r1-", "r2-"))} == resting

    # --- fills: every trade of ours at the venue, once per settlement state ------------------
    trades = venue.our_trades()
    assert set(trades) == {*t1, *t2}
    fills = [r for (t, _), r in rows.items() if t == "fills"]
    per = Counter((f["trade_id"], f["settlement"]) for f in fills)
    assert per == Counter({(tid, s): 1 for tid in trades for s in ("pending", "confirmed")}), per
    for f in fills:
        assert f["venue_order_id"] in ours and f["size"] == QUOTE_SIZE
    assert not [r for r in out2 if r.get("type") == "order_filled" and r["trade_id"] in t1]  # run 1's fill not replayed

    # --- the store: every stored row is a record of the pipe; nothing of the execution lost --
    want = expected_rows(out1 + out2)
    assert set(rows) <= set(want)
    assert all(rows[k] == want[k] for k in rows)
    assert {k for k in want if k[0] in EXECUTION} <= set(rows)
    assert set(expected_rows(out2)) <= set(rows)
    # re-ingesting both runs' output fills in what the kill cut off (books in flight) and
    # duplicates nothing: ingest is idempotent by natural keys
    data = b"".join(p.read_bytes()[: p.read_bytes().rfind(b"\n") + 1] for p in (run1.out, run2.out))
    proc = subprocess.run(agkit_argv("store", "ingest", "--db", f"sqlite:///{db}"), input=data, capture_output=True,
                          timeout=120, env=agkit_env())
    assert proc.returncode == 0, proc.stderr
    assert stored(db) == want


def our_fills_at_venue(venue: FakePolymarket, trade_ids: set[str]) -> dict[str, tuple[str, str, float]]:
    """trade id -> (our venue order id, asset, matched size), from the venue's own trade records."""
    ours = {o["id"] for o in venue.ours()}
    return {
        tid: (m["order_id"], m["asset_id"], float(m["matched_amount"]))
        for tid, t in venue.our_trades().items() if tid in trade_ids
        for m in t["maker_orders"] if m["order_id"] in ours
    }


def stored_fill_trades(db: Path) -> Counter[str]:
    return Counter(r["trade_id"] for (t, _), r in stored(db).items() if t == "fills")


def first_run_quoting(venue: FakePolymarket, tmp_path: Path, bots: list[Bot], db: Path) -> tuple[Bot, list[dict[str, Any]]]:
    """Run 1, once its two quotes rest at the venue and their acceptances are stored."""
    run1 = launch(venue, tmp_path, bots, "run1", "r1-", db)
    quotes = two_quotes(venue, run1)
    wait_for(lambda: len([r for (t, _), r in stored(db).items() if t == "order_events" and r["type"] == "order_accepted"]) == 2,
             "run 1's acceptances in the store", bots=(run1,))
    return run1, quotes


def test_restart_drill_fill_while_down(venue: FakePolymarket, tmp_path: Path, bots: list[Bot]) -> None:
    """Quotes filled while every stage is dead: the restarted bot reports exactly those fills
    (from the venue's trades and exec's journal), the orders they belong to, and positions."""
    db = tmp_path / "bot.db"
    run1, quotes = first_run_quoting(venue, tmp_path, bots, db)
    run1.kill()
    bid = next(o for o in quotes if o["asset_id"] == YES)
    no_bid = next(o for o in quotes if o["asset_id"] == NO)
    # while the bot is down: the YES bid is filled in full, the NO bid in part
    down = venue.take(YES, "SELL", bid["price"], str(QUOTE_SIZE)) + venue.take(NO, "SELL", no_bid["price"], "5")
    assert len(down) == 2
    run2 = launch(venue, tmp_path, bots, "run2", "r2-", db)
    wait_for(lambda: {f["trade_id"] for f in of(run2.records(), "order_filled")} >= set(down),
             "run 2 reporting the fills made while it was down", bots=(run2,))
    wait_for(lambda: len([o for o in venue.live() if o["id"] not in {q["id"] for q in quotes}]) >= 1,
             "run 2 quoting", bots=(run2,))
    assert run2.stop() == [0, 0, 0, 0, 0], run2.stderr()
    out2 = run2.records()
    assert "illegal" not in run2.stderr()

    # each fill once, on the order the venue matched, with the venue's size
    want = our_fills_at_venue(venue, set(down))
    fills = of(out2, "order_filled")
    assert Counter(f["trade_id"] for f in fills) == Counter(set(down))  # settled while down: one record each
    assert {f["trade_id"]: (f["venue_order_id"], f["asset"], f["size"]) for f in fills} == want
    # the orders behind them come back accepted, with what they are (the journal kept it)
    restored = {r["id"]: r for r in of(out2, "order_accepted") if not r["id"].startswith("r2-")}
    assert set(restored) == {bid["id"], no_bid["id"]}
    for q in (bid, no_bid):
        r = restored[q["id"]]
        assert (r["venue_order_id"], r["market"], r["asset"], r["side"], r["price"], r["size"], r["strategy"]) == (
            q["id"], q["market"], q["asset_id"], q["side"].lower(), float(q["price"]), float(q["original_size"]), "mm")
    # positions equal the fills
    held: dict[str, float] = {}
    for _oid, asset, size in want.values():
        held[asset] = held.get(asset, 0.0) + size
    assert {p["asset"]: p["size"] for p in of(out2, "position")} == dict(held)
    # the partly filled NO bid still rests, the YES bid ended filled
    assert no_bid["id"] in {o["id"] for o in venue.live()} and bid["id"] not in {o["id"] for o in venue.live()}
    assert stored_fill_trades(db) == Counter(set(down))


def test_restart_twice_reports_each_fill_once(venue: FakePolymarket, tmp_path: Path, bots: list[Bot]) -> None:
    """Killed, filled, restarted, killed again, filled again, restarted: every fill reaches the
    store once, and no run repeats a fill an earlier run reported."""
    db = tmp_path / "bot.db"
    run1, quotes = first_run_quoting(venue, tmp_path, bots, db)
    run1.kill()
    no_bid = next(o for o in quotes if o["asset_id"] == NO)
    down1 = venue.take(NO, "SELL", no_bid["price"], "5")  # half of run 1's NO bid
    assert len(down1) == 1

    run2 = launch(venue, tmp_path, bots, "run2", "r2-", db)
    wait_for(lambda: stored_fill_trades(db) == Counter(down1), "run 2's report of the first fill in the store", bots=(run2,))
    run2.kill()  # SIGKILL again: no clean stop
    # the other half of the same order (time priority: it is older than anything run 2 quoted)
    down2 = venue.take(NO, "SELL", no_bid["price"], "5")
    assert len(down2) == 1
    assert our_fills_at_venue(venue, set(down2))[down2[0]][0] == no_bid["id"]

    run3 = launch(venue, tmp_path, bots, "run3", "r3-", db)
    wait_for(lambda: stored_fill_trades(db) == Counter(down1 + down2), "run 3's report of the second fill in the store",
             bots=(run3,))
    wait_for(lambda: [o for o in venue.live() if o["id"] not in {q["id"] for q in quotes}], "run 3 quoting", bots=(run3,))
    assert run3.stop() == [0, 0, 0, 0, 0], run3.stderr()
    assert "illegal" not in run3.stderr()

    out2, out3 = run2.records(), run3.records()
    assert [f["trade_id"] for f in of(out2, "order_filled")] == down1
    assert [f["trade_id"] for f in of(out3, "order_filled")] == down2  # run 2's fill not repeated
    (last,) = of(out3, "order_filled")
    assert (last["venue_order_id"], last["size"]) == (no_bid["id"], 5.0)
    assert no_bid["id"] not in {o["id"] for o in venue.live()}  # filled in full across two restarts
    assert stored_fill_trades(db) == Counter(down1 + down2)
