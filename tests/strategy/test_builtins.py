"""mm, bands and arb on hand-made books (and through the paper venue)."""

from __future__ import annotations

from typing import Any

import pytest

from agkit.exec.paper import PaperVenue
from agkit.exec.stage import ExecStage
from agkit.strategy.arb import Arbitrage
from agkit.strategy.bands import Bands, parse_bands
from agkit.strategy.mm import MarketMaker
from tests.strategy.util import (
    MKT,
    NO,
    T0,
    YES,
    book,
    chain_run,
    event,
    feed,
    fill,
    orders,
    pair,
    started,
)

MS = 1000


def on_grid(price: float, tick: float) -> bool:
    return abs(price / tick - round(price / tick)) < 1e-6


# -- mm -----------------------------------------------------------------------------


def test_mm_quotes_on_grid_inside_the_book_and_as_no_buy() -> None:
    s = started(MarketMaker(quote_size=10))
    out = feed(s, pair(0.40, 0.46))
    subs = orders(out)
    assert len(subs) == 2
    bid = next(o for o in subs if o["asset"] == YES)
    ask = next(o for o in subs if o["asset"] == NO)
    assert bid["side"] == "buy" and ask["side"] == "buy"  # YES sell expressed as a NO buy
    assert 0.01 <= bid["price"] < 0.46 and on_grid(bid["price"], 0.01)
    assert on_grid(ask["price"], 0.01) and 1 - ask["price"] > 0.40  # NO bid at 1 - YES ask
    assert bid["price"] < 1 - ask["price"]
    assert all(o["post_only"] and o["size"] == 10 for o in subs)


def test_mm_sells_yes_it_holds_and_skews_with_inventory() -> None:
    s = started(MarketMaker(quote_size=10, max_position=100, gamma=1.0, min_quote_interval_ms=0))
    flat = orders(feed(s, pair(0.30, 0.70)))
    flat_bid = next(o["price"] for o in flat if o["asset"] == YES)
    feed(s, [fill("mm-1", YES, "buy", flat_bid, 10.0, T0 + 1)])
    out = feed(s, pair(0.30, 0.70, T0 + 2))
    subs = orders(out)
    sell = [o for o in subs if o["asset"] == YES and o["side"] == "sell"]
    assert sell and sell[0]["size"] == 10.0  # holds YES: sells it
    long_bid = [o["price"] for o in subs if o["asset"] == YES and o["side"] == "buy"]
    # long inventory: the bid moves down (or stays) and the ask down: a skew, never up
    assert not long_bid or long_bid[0] <= flat_bid


def test_mm_respects_bounds_and_max_position() -> None:
    s = started(MarketMaker(quote_size=10, max_position=10))
    out = orders(feed(s, pair(0.005, 0.02, tick=0.001)))
    for o in out:
        assert 0.001 <= o["price"] <= 0.999
    feed(s, [fill("mm-1", YES, "buy", 0.004, 10.0, T0 + 1)])
    out = orders(feed(s, pair(0.005, 0.02, T0 + 10**6, tick=0.001)))
    assert not [o for o in out if o["asset"] == YES and o["side"] == "buy"]  # at max long


def test_mm_requotes_only_on_a_tick_move_and_throttles_in_event_time() -> None:
    s = started(MarketMaker(quote_size=10, min_quote_interval_ms=100))
    first = orders(feed(s, pair(0.40, 0.46)))
    assert len(first) == 2
    # the same book 200 ms later: targets unchanged, nothing sent
    assert feed(s, pair(0.40, 0.46, T0 + 200 * MS)) == []
    out = feed(s, pair(0.42, 0.48, T0 + 400 * MS))
    assert len(orders(out)) == 2  # a 2-tick move: replaced
    # another move 10 ms later: throttled (100 ms of event time)
    assert feed(s, pair(0.44, 0.50, T0 + 410 * MS)) == []
    # past the throttle: cancel + new for both sides
    out = feed(s, pair(0.44, 0.50, T0 + 600 * MS))
    kinds = sorted(r["type"] for r in out)
    assert kinds == ["cancel_order", "cancel_order", "submit_order", "submit_order"]


def test_mm_fills_in_a_chain_with_the_paper_venue() -> None:
    recs: list[dict[str, Any]] = []
    for i in range(20):
        recs += pair(0.40, 0.46, T0 + i * 1000 * MS)
        recs.append({"type": "trade", "ts_event": T0 + i * 1000 * MS + 1, "ts_init": 0, "venue": "sim",
                     "market": MKT, "asset": YES, "price": 0.40, "size": 500.0, "side": "sell",
                     "trade_id": f"x{i}"})
    out = chain_run([MarketMaker(quote_size=10), ExecStage(PaperVenue())], recs, feedback_from=1)
    fills = [r for r in out if r["type"] == "order_filled"]
    assert fills, "a sell through our bid fills it"
    assert all(f["liquidity"] == "maker" for f in fills)


class _AlwaysRequote(MarketMaker):
    """mm without its shortcut: the quotes are recomputed on every book."""

    def on_book(self, book: dict[str, Any]) -> None:
        for st in self._state.values():
            st.key = None
            st.live_version = -1
        super().on_book(book)


def test_mm_shortcut_sends_what_a_requote_on_every_book_sends() -> None:
    """Skipping the requote when book, volatility, orders and positions are unchanged
    (ctx.versions) must not change a single order, through the paper venue with latency.
    (The earlier shortcut, keyed on the mid but not the volatility, failed this.)"""
    from agkit.feed.sim import SimConfig, Simulator

    recs = list(Simulator(SimConfig(seed=11, markets=3, max_records=10000, metrics_every_s=0)).records())

    def run(strategy: MarketMaker) -> list[dict[str, Any]]:
        out = chain_run([strategy, ExecStage(PaperVenue(latency_us=50_000, seed=1))], recs, feedback_from=1)
        return [r for r in out if r["type"] in ("submit_order", "cancel_order", "order_filled")]

    fast = run(MarketMaker(quote_size=100))
    slow = run(_AlwaysRequote(quote_size=100))
    assert len([r for r in fast if r["type"] == "order_filled"]) > 5
    assert fast == slow


def test_ctx_versions_move_with_working_orders_and_positions() -> None:
    s = started(MarketMaker(quote_size=10))
    feed(s, pair(0.40, 0.46))
    ctx = s.ctx  # type: ignore[attr-defined]
    (oid, *_) = list(ctx.orders)
    v = ctx.versions[MKT]
    feed(s, [event("order_accepted", oid)])
    assert ctx.versions[MKT] == v  # acknowledged: still working, nothing to requote for
    feed(s, [fill(oid, YES, "buy", 0.40, 5.0)])
    assert ctx.versions[MKT] > v
    v = ctx.versions[MKT]
    s.cancel(oid)  # type: ignore[attr-defined]
    assert ctx.versions[MKT] > v
    v = ctx.versions[MKT]
    feed(s, [event("order_canceled", oid)])
    assert ctx.versions[MKT] == v and oid not in ctx.orders  # it had stopped working at the cancel


# -- bands --------------------------------------------------------------------------


BANDS = '[{"minMargin":0.01,"avgMargin":0.02,"maxMargin":0.03,"minAmount":20,"avgAmount":30,"maxAmount":40}]'


def test_bands_parse_and_validate() -> None:
    assert parse_bands(BANDS)[0].avg_amount == 30
    assert len(parse_bands('{"bands": ' + BANDS + "}")) == 1
    with pytest.raises(ValueError, match="overlap"):
        parse_bands('[{"minMargin":0.01,"avgMargin":0.02,"maxMargin":0.05,"minAmount":1,"avgAmount":2,"maxAmount":3},'
                    '{"minMargin":0.03,"avgMargin":0.04,"maxMargin":0.06,"minAmount":1,"avgAmount":2,"maxAmount":3}]')


def test_bands_top_up_cancel_excess_and_outside() -> None:
    s = started(Bands(bands=BANDS, min_quote_interval_ms=0))
    subs = orders(feed(s, pair(0.49, 0.51)))
    assert {(o["asset"], o["side"], o["price"], o["size"]) for o in subs} == {
        (YES, "buy", 0.48, 30.0),
        (NO, "buy", 0.48, 30.0),
    }
    # an extra order in the band beyond maxAmount is canceled
    extra = s.quote(YES, "buy", 0.485, 20.0)
    s._take()
    out = feed(s, pair(0.49, 0.51, T0 + 1))
    cancels = [r["id"] for r in out if r["type"] == "cancel_order"]
    assert cancels == [extra]
    # the market moves up 5 cents: the old orders fall outside the band, new ones come
    out = feed(s, pair(0.54, 0.56, T0 + 2))
    assert len([r for r in out if r["type"] == "cancel_order"]) == 2
    assert {(o["asset"], o["price"]) for o in orders(out)} == {(YES, 0.53), (NO, 0.43)}


def test_bands_sell_what_they_hold() -> None:
    s = started(Bands(bands=BANDS, min_quote_interval_ms=0))
    feed(s, pair(0.49, 0.51))
    feed(s, [fill("bands-1", YES, "buy", 0.48, 30.0, T0 + 1)])
    out = feed(s, pair(0.49, 0.51, T0 + 2))
    assert ("cancel_order", "bands-2") in {(r["type"], r["id"]) for r in out}  # the NO buy goes
    assert {(o["asset"], o["side"], o["price"]) for o in orders(out)} == {(YES, "buy", 0.48), (YES, "sell", 0.52)}


# -- arb ----------------------------------------------------------------------------


def test_arb_buys_both_when_asks_sum_below_one() -> None:
    s = started(Arbitrage(size=50))
    out = feed(s, [book(YES, 0.40, 0.45, size=80), book(NO, 0.50, 0.53, size=30)])
    subs = orders(out)
    assert {(o["asset"], o["side"], o["price"], o["size"], o["tif"]) for o in subs} == {
        (YES, "buy", 0.45, 30.0, "FAK"),
        (NO, "buy", 0.53, 30.0, "FAK"),
    }
    # cooldown and the working basket: no second attempt
    assert orders(feed(s, [book(NO, 0.50, 0.53, T0 + 1, size=30)])) == []


def test_arb_fees_remove_the_edge() -> None:
    s = started(Arbitrage(size=50, fee_rate=0.25))
    assert orders(feed(s, [book(YES, 0.40, 0.47), book(NO, 0.50, 0.51)])) == []
    s = started(Arbitrage(size=50))
    assert orders(feed(s, [book(YES, 0.40, 0.47), book(NO, 0.50, 0.53)])) == []  # sum = 1


def test_arb_unwinds_an_unmatched_leg() -> None:
    s = started(Arbitrage(size=20))
    subs = orders(feed(s, [book(YES, 0.40, 0.45), book(NO, 0.50, 0.53)]))
    ids = {o["asset"]: o["id"] for o in subs}
    feed(s, [fill(ids[YES], YES, "buy", 0.45, 20.0, T0 + 1)])
    out = feed(s, [event("order_canceled", ids[NO], T0 + 2)])  # the NO leg found nothing
    hedge = orders(out)
    assert [(o["asset"], o["side"], o["price"], o["size"], o["tif"]) for o in hedge] == [
        (YES, "sell", 0.40, 20.0, "FAK")
    ]


def test_arb_neg_risk_group_buys_every_outcome() -> None:
    s = started(Arbitrage(size=10, binary=False, groups="m1,m2,m3"))
    recs = [book(f"y{i}", 0.25, 0.30, market=f"m{i}", outcome="Yes") for i in (1, 2, 3)]
    subs = orders(feed(s, recs))
    assert sorted(o["asset"] for o in subs) == ["y1", "y2", "y3"]
    s = started(Arbitrage(size=10, binary=False))  # grouped by the books' event_markets
    members = ["m1", "m2", "m3"]
    recs = [book(f"y{i}", 0.25, 0.34, market=f"m{i}", event_markets=members) for i in (1, 2, 3)]
    assert orders(feed(s, recs)) == []  # 1.02: no edge, and never fired on 2 of 3 outcomes
    s = started(Arbitrage(size=10, binary=False))
    recs = [book(f"y{i}", 0.25, 0.32, market=f"m{i}", event_markets=members) for i in (1, 2, 3)]
    assert len(orders(feed(s, recs))) == 3
