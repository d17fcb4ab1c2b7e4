"""The paper venue against hand-computed cases: book walk, TIFs, post-only, the queue
model, latency, expiry and fees."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agkit.portfolio import taker_fee
from tests.exec.util import A, book, cancel, events, fills, run, submit, tick, trade

BOOK = book(1000, bids=[[0.50, 100], [0.49, 200]], asks=[[0.52, 50], [0.53, 100]])


# --- marketable orders walk the book ---------------------------------------------------------


def test_marketable_buy_walks_levels() -> None:
    out = run([BOOK, submit(1001, "o1", "buy", 0.53, 80)])
    assert fills(out, "o1") == [(0.52, 50.0, "taker"), (0.53, 30.0, "taker")]
    assert [r["type"] for r in out[2:]] == [
        "order_accepted",
        "order_filled",
        "position",
        "order_filled",
        "position",
    ]


def test_marketable_sell_walks_bids() -> None:
    out = run([BOOK, submit(1001, "o1", "sell", 0.49, 150)])
    assert fills(out, "o1") == [(0.50, 100.0, "taker"), (0.49, 50.0, "taker")]


def test_size_taken_stays_taken_while_the_feed_still_shows_it() -> None:
    out = run(
        [
            BOOK,
            submit(1001, "o1", "buy", 0.53, 80),  # takes 50 @ .52 and 30 @ .53
            submit(1002, "o2", "buy", 0.53, 100),  # only 70 left at .53; 30 rest at .53
            book(1003, bids=[[0.50, 100]], asks=[[0.52, 50], [0.53, 100]]),  # feed unaware of us
            submit(1004, "o3", "buy", 0.52, 10),  # nothing left at .52: rests
            book(1005, bids=[[0.50, 100]], asks=[[0.52, 80], [0.53, 100]]),  # 30 new at .52
        ]
    )
    assert fills(out, "o1") == [(0.52, 50.0, "taker"), (0.53, 30.0, "taker")]
    assert fills(out, "o2") == [(0.53, 70.0, "taker"), (0.53, 30.0, "maker")]  # new 30 crossed it
    assert fills(out, "o3") == []  # o2 (better price) took the new size
    assert not events(out, "order_canceled")


def test_level_showing_less_releases_what_we_took() -> None:
    out = run(
        [
            BOOK,
            submit(1001, "o1", "buy", 0.52, 50),  # takes all 50 @ .52
            book(
                1002, bids=[[0.50, 100]], asks=[[0.52, 20], [0.53, 100]]
            ),  # now shows 20: taken := 20
            book(1003, bids=[[0.50, 100]], asks=[[0.52, 35], [0.53, 100]]),  # 15 more than taken
            submit(1004, "o2", "buy", 0.52, 40),
        ]
    )
    assert fills(out, "o2") == [(0.52, 15.0, "taker")]


def test_limit_stops_the_walk_and_rest_rests_at_limit() -> None:
    out = run([BOOK, submit(1001, "o1", "buy", 0.52, 80), trade(1002, 0.52, 10, "sell")])
    # 50 taken at 0.52; 30 rest at 0.52 with nobody ahead: the next sell at 0.52 fills us
    assert fills(out, "o1") == [(0.52, 50.0, "taker"), (0.52, 10.0, "maker")]


def test_fok_all_or_nothing() -> None:
    out = run(
        [
            BOOK,
            submit(1001, "f1", "buy", 0.52, 60, tif="FOK"),
            submit(1002, "f2", "buy", 0.53, 60, tif="FOK"),
        ]
    )
    rej = events(out, "order_rejected")
    assert [r["id"] for r in rej] == ["f1"] and "FOK" in rej[0]["reason"]
    assert not fills(out, "f1")
    assert fills(out, "f2") == [(0.52, 50.0, "taker"), (0.53, 10.0, "taker")]


def test_fak_fills_what_it_can_and_cancels_the_rest() -> None:
    out = run([BOOK, submit(1001, "k1", "buy", 0.52, 60, tif="FAK")])
    assert fills(out, "k1") == [(0.52, 50.0, "taker")]
    (canceled,) = events(out, "order_canceled")
    assert canceled["id"] == "k1" and "FAK" in canceled["reason"]


def test_fak_nothing_to_take_is_canceled() -> None:
    out = run([BOOK, submit(1001, "k1", "buy", 0.51, 10, tif="FAK")])
    assert [r["type"] for r in out[2:]] == ["order_accepted", "order_canceled"]


def test_post_only_crossing_is_rejected() -> None:
    out = run(
        [
            BOOK,
            submit(1001, "p1", "buy", 0.52, 10, post_only=True),
            submit(1002, "p2", "buy", 0.51, 10, post_only=True),
        ]
    )
    (rej,) = events(out, "order_rejected")
    assert rej["id"] == "p1" and rej["reason"] == "invalid post-only order: order crosses book"
    assert [r["id"] for r in events(out, "order_accepted")] == ["p2"]
    assert not fills(out)


# --- the queue model (hand-computed) ------------------------------------------------------------


def test_queue_trades_at_level_consume_the_queue_ahead() -> None:
    # join behind 100 displayed at 0.50; trades of 60, 50 and 25 sell into the bid
    out = run(
        [
            BOOK,
            submit(1001, "q", "buy", 0.50, 30),
            trade(1002, 0.50, 60, "sell"),  # ahead 100 -> 40, no fill
            trade(1003, 0.50, 50, "sell"),  # 40 ahead consumed, 10 reach us
            trade(1004, 0.50, 25, "sell"),  # 20 remaining filled
            trade(1005, 0.50, 25, "sell"),  # done: nothing more
        ]
    )
    assert fills(out, "q") == [(0.50, 10.0, "maker"), (0.50, 20.0, "maker")]
    assert [f["ts_event"] for f in events(out, "order_filled")] == [1003, 1004]


def test_queue_ignores_trades_of_the_wrong_side_and_other_prices() -> None:
    out = run(
        [
            BOOK,
            submit(1001, "q", "buy", 0.50, 30),
            trade(1002, 0.50, 500, "buy"),  # a buyer lifting asks does not touch our bid
            trade(1003, 0.51, 500, "sell"),  # a sale above our bid does not reach it
        ]
    )
    assert fills(out, "q") == []


def test_queue_cancellations_ahead_shrink_the_queue() -> None:
    out = run(
        [
            BOOK,
            submit(1001, "q", "buy", 0.50, 30),  # ahead 100
            book(1002, bids=[[0.50, 40]], asks=[[0.52, 50]]),  # 60 canceled: ahead 40
            book(1003, bids=[[0.50, 300]], asks=[[0.52, 50]]),  # joiners behind us: still 40
            trade(1004, 0.50, 50, "sell"),  # 10 past the queue
        ]
    )
    assert fills(out, "q") == [(0.50, 10.0, "maker")]


def test_queue_level_gone_puts_us_first() -> None:
    out = run(
        [
            BOOK,
            submit(1001, "q", "buy", 0.50, 30),
            book(1002, bids=[[0.49, 200]], asks=[[0.52, 50]]),  # level 0.50 emptied by cancels
            trade(1003, 0.50, 7, "sell"),
        ]
    )
    assert fills(out, "q") == [(0.50, 7.0, "maker")]


def test_trade_through_our_price_fills_up_to_its_size() -> None:
    out = run(
        [
            BOOK,
            submit(1001, "q", "buy", 0.50, 30),
            trade(1002, 0.49, 15, "sell"),
            trade(1003, 0.48, 40, "sell"),
        ]
    )
    assert fills(out, "q") == [(0.50, 15.0, "maker"), (0.50, 15.0, "maker")]


def test_book_through_our_price_fills_from_the_crossing_size() -> None:
    out = run(
        [
            BOOK,
            submit(1001, "q", "sell", 0.53, 30),  # rests on the ask side behind 100 @ 0.53
            book(1002, bids=[[0.53, 10], [0.52, 5], [0.51, 100]], asks=[[0.54, 10]]),
        ]
    )
    # bids at or above our 0.53 show 10: we sell 10 at our price, as maker
    assert fills(out, "q") == [(0.53, 10.0, "maker")]


def test_book_through_does_not_fill_twice_from_the_same_size() -> None:
    crossed = book(1002, bids=[[0.53, 10], [0.51, 100]], asks=[[0.54, 10]])
    out = run(
        [
            BOOK,
            submit(1001, "q", "sell", 0.53, 30),
            crossed,
            {**crossed, "ts_event": 1003},  # the feed repeats itself: nothing new crossed
            book(1004, bids=[[0.54, 5], [0.53, 10]], asks=[[0.55, 10]]),  # 5 more through us
        ]
    )
    assert fills(out, "q") == [(0.53, 10.0, "maker"), (0.53, 5.0, "maker")]


def test_two_own_orders_share_one_queue_in_time_priority() -> None:
    out = run(
        [
            BOOK,
            submit(1001, "a", "buy", 0.50, 10),  # behind 100
            submit(1002, "b", "buy", 0.50, 10),  # behind 100 + our a
            trade(1003, 0.50, 105, "sell"),  # a: 5; b: nothing (5 short of a's 10)
            trade(1004, 0.50, 10, "sell"),  # a: its last 5; b: 5
        ]
    )
    assert fills(out, "a") == [(0.50, 5.0, "maker"), (0.50, 5.0, "maker")]
    assert fills(out, "b") == [(0.50, 5.0, "maker")]


def test_through_trade_is_shared_by_price_priority() -> None:
    out = run(
        [
            BOOK,
            submit(1001, "lo", "buy", 0.50, 10),
            submit(1002, "hi", "buy", 0.51, 10),  # better price: first in line
            trade(1003, 0.48, 15, "sell"),
        ]
    )
    assert fills(out, "hi") == [(0.51, 10.0, "maker")]
    assert fills(out, "lo") == [(0.50, 5.0, "maker")]


def test_fill_sizes_are_whole_lots() -> None:
    out = run([BOOK, submit(1001, "q", "buy", 0.50, 10), trade(1002, 0.50, 100.0567, "sell")])
    assert fills(out, "q") == [(0.50, 0.05, "maker")]


# --- latency ---------------------------------------------------------------------------------------


def test_order_latency_the_book_moved_away() -> None:
    recs = [
        BOOK,
        submit(1001, "o", "buy", 0.52, 10),
        book(1050, bids=[[0.50, 100]], asks=[[0.55, 50]]),
        tick(1200),
    ]
    assert fills(run(recs), "o") == [(0.52, 10.0, "taker")]  # no latency: instant
    out = run(recs, latency_us=100)
    assert fills(out, "o") == []
    (acc,) = events(out, "order_accepted")
    assert acc["ts_event"] == 1101  # arrived at 1001 + 100, against the 1050 book
    types = [r["type"] for r in out]
    assert types.index("order_accepted") > types.index(
        "feed_status"
    )  # emitted after the record that revealed it


def test_cancel_latency_fills_can_happen_meanwhile() -> None:
    out = run(
        [
            BOOK,
            submit(1001, "q", "buy", 0.50, 30),
            trade(1002, 0.50, 100, "sell"),  # queue ahead gone
            cancel(2000, "q"),
            trade(2010, 0.50, 12, "sell"),  # the cancel is still on its way
            tick(2100),
            trade(2110, 0.50, 12, "sell"),
        ],
        cancel_latency_us=50,
    )
    assert fills(out, "q") == [(0.50, 12.0, "maker")]
    (c,) = events(out, "order_canceled")
    assert c["ts_event"] == 2050


def test_cancel_cannot_overtake_its_order() -> None:
    out = run(
        [BOOK, submit(1000, "q", "buy", 0.40, 10), cancel(1005, "q"), tick(2000)],
        latency_us=100,
        cancel_latency_us=10,
    )
    acc, can = events(out, "order_accepted", "order_canceled")
    assert (acc["ts_event"], can["ts_event"]) == (1100, 1100)


def test_cancel_after_fill_is_rejected() -> None:
    out = run([BOOK, submit(1001, "o", "buy", 0.52, 10), cancel(1002, "o")])
    (cr,) = events(out, "cancel_rejected")
    assert cr["id"] == "o" and "filled" in cr["reason"]


def test_latency_jitter_is_seeded() -> None:
    recs = [BOOK, *[submit(1001 + i, f"o{i}", "buy", 0.40, 10) for i in range(5)], tick(10_000)]
    a = run(recs, latency_us=100, jitter_us=1000, seed=7)
    b = run(recs, latency_us=100, jitter_us=1000, seed=7)
    c = run(recs, latency_us=100, jitter_us=1000, seed=8)
    ts = lambda out: [r["ts_event"] for r in events(out, "order_accepted")]  # noqa: E731
    assert a == b
    assert ts(a) != ts(c)
    assert all(1101 <= t <= 2105 for t in ts(a))


# --- expiry ------------------------------------------------------------------------------------------


def test_gtd_expires_in_event_time_before_a_later_trade() -> None:
    out = run(
        [
            BOOK,
            submit(1001, "g", "buy", 0.50, 30, tif="GTD", expire_at=5000),
            book(4999, bids=[[0.50, 0]], asks=[[0.52, 50]]),
            trade(5000, 0.50, 100, "sell"),  # too late: expired at 5000
        ]
    )
    assert fills(out, "g") == []
    (exp,) = events(out, "order_expired")
    assert exp["ts_event"] == 5000


def test_gtd_in_the_past_is_rejected() -> None:
    out = run([BOOK, submit(1001, "g", "buy", 0.50, 30, tif="GTD", expire_at=1000)])
    (rej,) = events(out, "order_rejected")
    assert "expiration" in rej["reason"]


def test_gtd_arriving_after_expiry_is_rejected() -> None:
    out = run(
        [BOOK, submit(1001, "g", "buy", 0.50, 30, tif="GTD", expire_at=1050), tick(2000)],
        latency_us=100,
    )
    (rej,) = events(out, "order_rejected")
    assert "expiration" in rej["reason"] and rej["ts_event"] == 1101


# --- venue rules ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "size", "words"),
    [
        (0.505, 10, "breaks minimum tick size rule: 0.01"),
        (0.50, 3, "lower than the minimum: 5"),
        (0.50, 10.123, "Maximum lot size is 2"),
    ],
)
def test_venue_rules(price: float, size: float, words: str) -> None:
    out = run([BOOK, submit(1001, "x", "buy", price, size)])
    (rej,) = events(out, "order_rejected")
    assert words in rej["reason"]


def test_tick_size_change_applies() -> None:
    change = {
        "type": "tick_size_changed",
        "ts_event": 1001,
        "ts_init": 1001,
        "venue": "polymarket",
        "market": "m",
        "asset": A,
        "old_tick_size": 0.01,
        "new_tick_size": 0.001,
    }
    out = run([BOOK, change, submit(1002, "x", "buy", 0.405, 10)])
    assert events(out, "order_accepted")


def test_market_resolved_cancels_open_orders_and_settles() -> None:
    resolved = {
        "type": "market_resolved",
        "ts_event": 3000,
        "ts_init": 3000,
        "venue": "polymarket",
        "market": "0xmarket",
        "winning_asset": A,
    }
    out = run(
        [BOOK, submit(1001, "t", "buy", 0.52, 10), submit(1002, "r", "buy", 0.40, 10), resolved]
    )
    (c,) = events(out, "order_canceled")
    assert c["id"] == "r" and c["reason"] == "market resolved"
    last = events(out, "position")[-1]
    assert last["size"] == 0 and last["realized_pnl"] == pytest.approx(10 * (1 - 0.52))


# --- fees -------------------------------------------------------------------------------------------------


def test_taker_fee_formula_and_makers_pay_none() -> None:
    out = run(
        [
            BOOK,
            submit(1001, "t", "buy", 0.53, 80),
            submit(1002, "m", "sell", 0.60, 10),
            trade(1003, 0.61, 10, "buy"),
        ],
        fee_rate=0.02,
    )
    taker = events(out, "order_filled")[:2]
    assert [f["fee"] for f in taker] == [
        round(50 * 0.02 * 0.52 * 0.48, 6),
        round(30 * 0.02 * 0.53 * 0.47, 6),
    ]
    assert taker[0]["fee"] == pytest.approx(taker_fee(50, 0.52, 0.02))
    (maker,) = [f for f in events(out, "order_filled") if f["id"] == "m"]
    assert maker["liquidity"] == "maker" and maker["fee"] == 0.0
    pos = events(out, "position")[-1]
    assert pos["fees"] == pytest.approx(sum(f["fee"] for f in events(out, "order_filled")))


def test_fee_exponent() -> None:
    out = run([BOOK, submit(1001, "t", "buy", 0.52, 10)], fee_rate=0.25, fee_exponent=2)
    (f,) = events(out, "order_filled")
    assert f["fee"] == round(10 * 0.25 * (0.52 * 0.48) ** 2, 6)


def test_values_no_market_holds_are_refused_and_change_nothing() -> None:
    """A price outside [0, 1], a size of 1e308, a tick that is not a number: refused
    (--on-error applies), never a crash, and a resting order is not filled by them."""
    from agkit.clock import EventClock
    from agkit.errors import InvalidRecord
    from agkit.exec.paper import PaperVenue
    from agkit.exec.stage import ExecStage
    from agkit.stage import Context

    stage = ExecStage(PaperVenue())
    stage.start(Context(EventClock(0), lambda r: None, print))
    stage.on_record(BOOK)
    stage.on_record(submit(1001, "q", "buy", 0.50, 10))  # rests behind 100 at 0.50
    for bad, words in (
        ({**trade(1002, 0.50, 10, "sell"), "price": -0.5}, "not a price"),  # would sweep q
        ({**trade(1002, 0.50, 10, "sell"), "size": 1e308}, "not a price in [0, 1] and a size"),
        ({**BOOK, "ts_event": 1002, "tick_size": "x"}, "tick size 'x'"),
        ({**BOOK, "ts_event": 1002, "min_size": [5]}, "min_size"),
        ({**BOOK, "ts_event": 1002, "asks": [[0.50, 1e308]]}, "1e+308"),  # crosses q
    ):
        with pytest.raises(InvalidRecord, match="malformed") as err:
            stage.on_record(bad)
        assert words in str(err.value)
    assert stage.venue.ticks[A] == Decimal("0.01") and stage.venue.min_sizes[A] == 5
    # q is still resting, untouched: a real sell of 110 at 0.50 fills it after the queue
    out = list(stage.on_record(trade(1003, 0.50, 110, "sell")) or ())
    assert [(r["id"], r["size"]) for r in out if r["type"] == "order_filled"] == [("q", 10.0)]


def test_malformed_market_records_are_bad_input_not_crashes() -> None:
    from agkit.clock import EventClock
    from agkit.errors import InvalidRecord
    from agkit.exec.paper import PaperVenue
    from agkit.exec.stage import ExecStage
    from agkit.stage import Context

    logs: list[str] = []
    stage = ExecStage(PaperVenue())
    stage.start(Context(EventClock(0), lambda r: None, logs.append))
    stage.on_record(BOOK)
    stage.on_record(submit(1001, "q", "buy", 0.50, 10))
    for bad in (
        {**BOOK, "bids": "nope"},
        {k: v for k, v in BOOK.items() if k != "asks"},
        {**trade(1002, 0.50, 10, "sell"), "price": "x"},
        {k: v for k, v in trade(1002, 0.50, 10, "sell").items() if k != "side"},
    ):
        with pytest.raises(InvalidRecord, match="malformed"):
            stage.on_record(bad)
    # garbage inside the levels of a stored book: an arriving order ignores that book
    with pytest.raises(InvalidRecord, match="malformed"):  # q rests: its checks trip on it
        stage.on_record({**BOOK, "ts_event": 1003, "asks": [["x"]]})
    out = list(stage.on_record(submit(1004, "o", "buy", 0.52, 10)) or ())
    assert [r["type"] for r in out] == ["submit_order", "order_accepted"]  # rests: no book
    assert any("malformed" in line for line in logs)
    out = list(stage.on_record(trade(1005, 0.50, 200, "sell")) or ())
    # both orders still work: o (0.52) is swept through, q (0.50) fills past its queue
    assert sorted(r["id"] for r in out if r["type"] == "order_filled") == ["o", "q"]
