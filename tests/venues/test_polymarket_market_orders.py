"""Market orders by amount (protocol §3.4) on the Polymarket venue, inside the real exec
stage: the worst price from the latest book the stage has seen (as the official SDKs
compute it), the SDK's amounts within the server's FOK/FAK precision, signed; against the
strict fake CLOB a BUY spends its amount and the position equals the fills."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agkit.venues.polymarket import amounts as am
from agkit.venues.polymarket import signing as sg
from tests.fakes.clob import TEST_ADDRESS, FakeClob
from tests.venues.test_polymarket_venue import COND, TOKEN, Harness, scenario

VECTORS = json.loads((Path(__file__).parents[1] / "fixtures" / "polymarket-vectors.json").read_text())
AMOUNTS_MARKET = [c for c in VECTORS["cases"] if c["category"] == "amounts_market"]
ASKS = [["0.52", "50"], ["0.53", "100"]]  # 26.00 + 53.00 pUSD of depth


def book(asks: list[list[Any]], bids: list[list[Any]] | None = None, tick: str = "0.01") -> dict[str, Any]:
    return {"type": "book", "ts_event": 1, "ts_init": 1, "venue": "polymarket", "market": COND, "asset": TOKEN,
            "bids": [[float(p), float(s)] for p, s in bids or []], "asks": [[float(p), float(s)] for p, s in asks],
            "tick_size": float(tick), "min_size": 5, "neg_risk": False}


def market(h: Harness, side: str, amount: float, tif: str = "FOK", **kw: Any) -> str:
    price = kw.pop("price", 0.99 if side == "buy" else 0.01)
    size = kw.pop("size", 100_000.0 if side == "buy" else amount)
    return h.submit(side, price, size, tif, amount=amount, **kw)


def dry_bodies(h: Harness) -> list[dict[str, Any]]:
    lines = [line.split("dry run: ", 1)[1] for line in h.dry.getvalue().splitlines()]
    return [json.loads(line) for line in lines]


@pytest.mark.parametrize("case", AMOUNTS_MARKET, ids=[c["id"] for c in AMOUNTS_MARKET])
def test_dry_run_signs_the_vectors_amounts(case: dict[str, Any]) -> None:
    """The book's only level is the vector's worst price: the signed order recovers to our
    key and carries the SDK's amounts, the taker rounded down to the server's 4 decimals."""
    inp, exp = case["inputs"], case["expected"]

    async def body(fake: FakeClob, h: Harness) -> None:
        fake.markets[TOKEN].tick = Decimal(inp["tickSize"])
        level = [[inp["price"], "1000000"]]
        buy = inp["side"] == "BUY"
        h.send(book(level if buy else [], [] if buy else level, tick=inp["tickSize"]))
        loosest = 1 - Decimal(inp["tickSize"]) if buy else Decimal(inp["tickSize"])  # the record caps nothing
        cid = market(h, "buy" if buy else "sell", float(inp["amount"]), price=float(loosest))
        await h.until(lambda: len(h.of("order_rejected", cid)) == 1)
        (sent,) = dry_bodies(h)
        order = sent["body"]["order"]
        domain = sg.exchange_domain(137, False, "2")
        assert sg.verify_order_signature(order, domain, 137) == TEST_ADDRESS
        assert sent["orderID"] == "0x" + sg.OrderV2.from_message(order).digest(domain).hex()
        assert (order["side"], sent["body"]["orderType"]) == (inp["side"], "FOK")
        unit = 10 ** (am.TOKEN_DECIMALS - am.MARKET_TAKER_DECIMALS)
        assert order["makerAmount"] == exp["makerAmount"]
        assert int(order["takerAmount"]) == int(exp["takerAmount"]) // unit * unit
        assert sum(fake.post_attempts.values()) == 0

    scenario(body, live=False)


def test_dry_run_worst_price_is_the_books_walk_capped_by_the_record() -> None:
    async def body(fake: FakeClob, h: Harness) -> None:
        h.send(book(ASKS, bids=[["0.50", "100"], ["0.49", "200"]]))
        walk = market(h, "buy", 40)  # 26.00 at .52, the rest at .53: worst .53
        capped = market(h, "buy", 40, price=0.52)  # the strategy accepts .52 at most
        sell = market(h, "sell", 150, tif="FAK")  # 100 at .50, the rest at .49
        await h.until(lambda: len(h.of("order_rejected")) == 3)
        got = {b["id"]: b["body"]["order"] for b in dry_bodies(h)}
        assert (got[walk]["makerAmount"], got[walk]["takerAmount"]) == tuple(str(x) for x in am.market_order_amounts("BUY", 40, "0.53", "0.01"))
        assert (got[capped]["makerAmount"], got[capped]["takerAmount"]) == tuple(str(x) for x in am.market_order_amounts("BUY", 40, "0.52", "0.01"))
        assert (got[sell]["makerAmount"], got[sell]["takerAmount"]) == tuple(str(x) for x in am.market_order_amounts("SELL", 150, "0.49", "0.01"))

    scenario(body, live=False)


def test_live_fok_buy_by_amount_fills_and_the_position_equals_the_fills() -> None:
    async def body(fake: FakeClob, h: Harness) -> None:
        await h.until(lambda: fake.ws_connects == 1)
        for price, size in ASKS:
            fake.add_liquidity(TOKEN, "SELL", price, size)
        h.send(book(ASKS))
        cid = market(h, "buy", 40)
        await h.until(lambda: len(h.of("order_canceled", cid)) == 1)
        assert len(h.of("order_accepted", cid)) == 1
        assert h.of("order_canceled", cid)[0]["reason"] == "market order: amount spent"
        fills = h.of("order_filled", cid)
        # the venue spends the amount: 50 at .52, then all 14.00 left buys at .53
        (mine,) = fake.orders_of(next(iter(fake.accounts)))
        assert mine.order_type == "FOK" and mine.status == "MATCHED"
        trades = [fake.trades[t] for t in mine.associate_trades]
        assert sorted((f["price"], f["size"]) for f in fills) == sorted((float(t["price"]), float(t["size"])) for t in trades)
        spent = sum(Decimal(t["price"]) * Decimal(t["size"]) for t in trades)
        assert Decimal(40) - Decimal("0.53") * Decimal("0.000001") < spent <= Decimal(40)
        shares = sum(Decimal(t["size"]) for t in trades)
        assert shares > Decimal(mine.original_size)  # more than the takerAmount: the price improved
        assert Decimal(repr(h.of("position")[-1]["size"])) == shares
        assert sum(fake.post_attempts.values()) == 1

    scenario(body)


def test_fok_buy_without_the_depth_is_refused_locally_and_nothing_is_sent() -> None:
    async def body(fake: FakeClob, h: Harness) -> None:
        await h.until(lambda: fake.ws_connects == 1)
        for price, size in ASKS:
            fake.add_liquidity(TOKEN, "SELL", price, size)
        h.send(book(ASKS))
        cid = market(h, "buy", 100)  # the asks hold 79.00
        # an asset exec has seen no book of: nothing to walk
        unseen = market(h, "buy", 10, asset="1" + TOKEN[1:], tick_size=0.01, neg_risk=False)
        await h.until(lambda: len(h.of("order_rejected")) == 2)
        for oid in (cid, unseen):
            assert h.of("order_rejected", oid)[0]["reason"] == "market order not built: no match"
        assert not h.of("order_accepted")
        assert sum(fake.post_attempts.values()) == 0
        assert ("POST", "/order") not in fake.requests and ("POST", "/orders") not in fake.requests

    scenario(body)


def test_the_fake_refuses_the_sdks_five_decimal_taker_and_takes_the_rounded_one() -> None:
    """Tick 0.001: the SDK's taker (1785.71428 shares) breaks the server's 4 decimals; the
    venue's rounding down to 1785.7142 passes the same check."""
    async def body(fake: FakeClob, h: Harness) -> None:
        from agkit.venues.polymarket.client import ClobError

        await h.until(lambda: fake.ws_connects == 1)
        fake.markets[TOKEN].tick = Decimal("0.001")
        fake.add_liquidity(TOKEN, "SELL", "0.056", "2000")
        b, client = h.venue.builder, h.venue._client
        assert b is not None and client is not None
        sdk = am.market_amounts("BUY", 100, "0.056", "0.001")
        ours = am.market_order_amounts("BUY", 100, "0.056", "0.001")
        assert sdk != ours
        with pytest.raises(ClobError, match="taker amount a max of 4 decimals"):
            await client.post_order(b._sign(TOKEN, "BUY", *sdk, False, 0, None, None, None), "FOK")
        res = await client.post_order(b._sign(TOKEN, "BUY", *ours, False, 0, None, None, None), "FOK")
        assert res["success"] and res["status"] == "matched"

    scenario(body)
