"""Market orders by amount (protocol §3.4): a BUY spends `amount` pUSD, a SELL sells
`amount` shares; the protective price comes from the book as the official SDKs compute
it (vectors `market-price-*`), never worse than the record's price."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.exec.util import book, events, fills, run, submit, tick

BOOK = book(1000, bids=[[0.50, 100], [0.49, 200]], asks=[[0.52, 50], [0.53, 100]])
VECTORS = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "polymarket-vectors.json").read_text()
)
MARKET_PRICE = [c for c in VECTORS["cases"] if c["category"] == "market_price_from_book"]


def market(
    ts: int, oid: str, side: str, amount: float, tif: str = "FAK", **kw: Any
) -> dict[str, Any]:
    price = kw.pop("price", 0.99 if side == "buy" else 0.01)
    size = kw.pop("size", 1000.0 if side == "buy" else amount)
    return submit(ts, oid, side, price, size, tif=tif, amount=amount, **kw)


def test_buy_spends_the_amount_level_by_level() -> None:
    out = run([BOOK, market(1001, "m1", "buy", 40)])
    # 50 @ .52 cost 26.00; 14.00 left buys floor(14 / .53, 2 dp) = 26.41 @ .53 (13.9973)
    assert fills(out, "m1") == [(0.52, 50.0, "taker"), (0.53, 26.41, "taker")]
    spent = sum(Decimal(repr(p)) * Decimal(repr(s)) for p, s, _ in fills(out, "m1"))
    assert Decimal(40) - spent < Decimal("0.0053")  # less than one lot's worth is left
    (end,) = events(out, "order_canceled")
    assert end["reason"] == "market order: amount spent"
    assert events(out, "position")[-1]["size"] == pytest.approx(76.41)


def test_fok_buy_without_the_depth_is_not_built() -> None:
    out = run([BOOK, market(1001, "m1", "buy", 100, tif="FOK")])  # the asks hold 79.00
    (rej,) = events(out, "order_rejected")
    assert rej["reason"] == "market order not built: no match"
    assert not events(out, "order_accepted", "order_filled")


def test_fak_buy_without_the_depth_takes_all_then_cancels() -> None:
    out = run([BOOK, market(1001, "m1", "buy", 100)])
    assert fills(out, "m1") == [(0.52, 50.0, "taker"), (0.53, 100.0, "taker")]
    (end,) = events(out, "order_canceled")
    assert end["reason"] == "FAK order: unfilled remainder canceled"


def test_sell_sells_the_amount_in_shares() -> None:
    out = run([BOOK, market(1001, "m1", "sell", 150, tif="FOK")])
    assert fills(out, "m1") == [(0.50, 100.0, "taker"), (0.49, 50.0, "taker")]
    assert not events(out, "order_canceled", "order_rejected")


def test_the_record_price_caps_the_protective_price() -> None:
    # the SDK price would be .53; the strategy accepts .52 at most: 26.00 of 40 fills, FOK kills it
    out = run([BOOK, market(1001, "m1", "buy", 40, tif="FOK", price=0.52)])
    (rej,) = events(out, "order_rejected")
    assert rej["reason"].startswith("order couldn't be fully filled")
    out = run([BOOK, market(1001, "m1", "buy", 40, price=0.52)])
    assert fills(out, "m1") == [(0.52, 50.0, "taker")]


def test_the_size_bounds_the_shares_of_a_buy() -> None:
    out = run([BOOK, market(1001, "m1", "buy", 40, size=60)])
    assert fills(out, "m1") == [(0.52, 50.0, "taker"), (0.53, 10.0, "taker")]
    assert not events(out, "order_canceled")  # filled: its size reached


def test_protective_price_is_fixed_when_built_not_when_it_arrives() -> None:
    # built against BOOK (.53 covers 40); the asks move up before the order arrives
    moved = book(1500, bids=[[0.50, 100]], asks=[[0.53, 50], [0.54, 100]])
    out = run([BOOK, market(1001, "m1", "buy", 40), moved, tick(2500)], latency_us=1000)
    assert fills(out, "m1") == [(0.53, 50.0, "taker")]  # nothing at .54: beyond its price
    (end,) = events(out, "order_canceled")
    assert end["reason"] == "FAK order: unfilled remainder canceled"


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"tif": "GTC"}, "only for FOK/FAK"),
        ({"amount": 0.0}, "is not positive"),
        ({"side": "sell", "size": 10.0}, "must equal amount"),
    ],
)
def test_market_order_rules(kw: dict[str, Any], words: str) -> None:
    rec = market(
        1001, "m1", kw.pop("side", "buy"), kw.pop("amount", 20.0), tif=kw.pop("tif", "FAK"), **kw
    )
    (rej,) = events(run([BOOK, rec]), "order_rejected")
    assert words in rej["reason"]


@pytest.mark.parametrize("case", MARKET_PRICE, ids=[c["id"] for c in MARKET_PRICE])
def test_sdk_market_price_vectors_through_the_paper_venue(case: dict[str, Any]) -> None:
    """The vectors' books (best-last, as the venue sends them) through paper: a case the
    SDK refuses is rejected, otherwise no fill is worse than the SDK's price, and a
    FOK's last fill is at it."""
    inp, want = case["inputs"], case["expected"]["price"]
    levels = sorted(
        ([float(lv["price"]), float(lv["size"])] for lv in inp["bookLevels_as_returned"]),
        reverse=inp["side"] == "SELL",
    )
    buy = inp["side"] == "BUY"
    bk = book(1000, bids=[] if buy else levels, asks=levels if buy else [], min_size=1)
    out = run(
        [bk, market(1001, "m1", inp["side"].lower(), float(inp["amount"]), tif=inp["orderType"])]
    )
    if isinstance(want, str):
        (rej,) = events(out, "order_rejected")
        assert rej["reason"] == "market order not built: no match"
        return
    prices = [p for p, _, _ in fills(out, "m1")]
    assert prices
    assert max(prices) <= want if buy else min(prices) >= want
    if inp["orderType"] == "FOK":
        assert prices[-1] == want
