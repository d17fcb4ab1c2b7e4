"""The REST client against the strict fake CLOB: auth, orders, faults, limits."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from agkit.venues.polymarket import amounts as am
from agkit.venues.polymarket import signing as sg
from agkit.venues.polymarket.client import (
    ClobClient,
    ClobError,
    ClobUnavailable,
    RateLimiter,
    RetryPolicy,
    TokenBucket,
    unlimited,
)
from agkit.venues.polymarket.orders import OrderBuilder
from tests.fakes.clob import TEST_KEY, FakeClob

TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
TOKEN_NR = "52114319501245915516055106046884209969926127482827954674443846427813813222426"
COND = "0xdd22472e552920b8438158ea7238bfadfa4f736aa4cee91a6b86c39ead110917"
COND_NR = "0x" + "ab" * 32
FAST = RetryPolicy(attempts=6, backoff_base=0.001, backoff_max=0.01, retry_after_cap=0.01)


def run(fn: Callable[[FakeClob, ClobClient, OrderBuilder], Awaitable[None]], **fake_kw: Any) -> FakeClob:
    async def main() -> FakeClob:
        fake = FakeClob(**fake_kw)
        await fake.start()
        fake.add_market(COND, TOKEN)
        fake.add_market(COND_NR, TOKEN_NR, tick="0.005", neg_risk=True)
        acc = fake.add_account()
        signer = sg.Signer(TEST_KEY)
        creds = sg.ApiCreds(acc.api_key, sg.Secret(acc.secret), sg.Secret(acc.passphrase))
        client = ClobClient(fake.url, signer=signer, creds=creds, limiter=unlimited(), retry=FAST)
        try:
            await fn(fake, client, OrderBuilder(signer))
        finally:
            await client.aclose()
            await fake.stop()
        return fake

    return asyncio.run(main())


def test_derive_api_key_with_l1_signature() -> None:
    async def body(fake: FakeClob, client: ClobClient, _b: OrderBuilder) -> None:
        creds = await client.create_or_derive_api_key(0)
        assert creds.api_key == next(iter(fake.accounts))
        assert "****" in repr(creds) and creds.secret.reveal() not in repr(creds)
        fresh = ClobClient(fake.url, signer=sg.Signer(TEST_KEY), limiter=unlimited(), retry=FAST)
        try:
            new = await fresh.create_or_derive_api_key(7)  # none yet for nonce 7: created
            assert new.api_key != creds.api_key
        finally:
            await fresh.aclose()

    fake = run(body)
    assert not fake.auth_failures


def test_bad_l2_credentials_are_refused() -> None:
    async def body(fake: FakeClob, client: ClobClient, _b: OrderBuilder) -> None:
        assert client.creds is not None
        client.creds = sg.ApiCreds(client.creds.api_key, sg.Secret("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="), client.creds.passphrase)
        with pytest.raises(ClobError) as info:
            await client.open_orders()
        assert info.value.status == 401

    fake = run(body)
    assert fake.auth_failures == ["bad HMAC"]


def test_post_order_standard_and_neg_risk_and_cancel() -> None:
    async def body(fake: FakeClob, client: ClobClient, b: OrderBuilder) -> None:
        s1 = b.build(TOKEN, "BUY", "0.56", "21.04", "0.01")
        r1 = await client.post_order(s1)
        assert r1["success"] and r1["orderID"] == s1.order_hash and r1["status"] == "live"
        s2 = b.build(TOKEN_NR, "SELL", 0.995, 10, 0.005, neg_risk=True)
        r2 = await client.post_order(s2, post_only=True)
        assert r2["orderID"] == s2.order_hash
        opened = await client.open_orders()
        assert {o["id"] for o in opened} == {s1.order_hash, s2.order_hash}
        got = await client.get_order(s1.order_hash)
        assert got is not None and got["price"] == "0.56"
        res = await client.cancel(s1.order_hash)
        assert res["canceled"] == [s1.order_hash]
        res = await client.cancel(s1.order_hash)
        assert s1.order_hash in res["not_canceled"]
        res = await client.cancel_market(market=COND_NR)
        assert res["canceled"] == [s2.order_hash]
        assert await client.open_orders() == []

    fake = run(body)
    assert not fake.auth_failures


def test_wrong_exchange_domain_is_refused() -> None:
    async def body(fake: FakeClob, client: ClobClient, b: OrderBuilder) -> None:
        bad = b.build(TOKEN_NR, "BUY", "0.5", "10", "0.005", neg_risk=False)  # neg-risk market, standard domain
        with pytest.raises(ClobError) as info:
            await client.post_order(bad)
        assert info.value.status == 400 and "invalid signature" in info.value.message

    run(body)


def test_local_gate_uses_the_venue_wording() -> None:
    b = OrderBuilder(sg.Signer(TEST_KEY))
    with pytest.raises(am.AmountError, match=r"Price \(0.565\) breaks minimum tick size rule: 0.01|Price 0.565 has 3 decimal places"):
        b.build(TOKEN, "BUY", "0.565", "10", "0.01")
    with pytest.raises(am.AmountError, match=r"breaks minimum tick size rule: 0.005"):
        b.build(TOKEN, "BUY", "0.507", "10", "0.005")
    with pytest.raises(am.AmountError, match=r"breaks minimum tick size rule: 0.0025"):
        b.build(TOKEN, "BUY", "0.5010", "10", "0.0025")
    assert b.build(TOKEN, "BUY", "0.5025", "10", "0.0025").order.maker_amount == 5_025_000
    assert b.build(TOKEN, "SELL", 0.505, 10, 0.005).order.taker_amount == 5_050_000
    with pytest.raises(am.AmountError, match=r"Size 12.8205 has 4 decimal places. Maximum lot size is 2"):
        b.build(TOKEN, "BUY", "0.78", "12.8205", "0.01")
    with pytest.raises(am.AmountError, match=r"Size \(4\) lower than the minimum: 5"):
        b.build(TOKEN, "BUY", "0.78", 4, "0.01", min_size=5)
    with pytest.raises(am.AmountError, match=r"price \(1\), min: 0.01 - max: 0.99"):
        b.build(TOKEN, "BUY", "1.00", 5, "0.01")
    # a float from JSON is its shortest repr, never the binary expansion
    assert am.dec(0.1 + 0.2) == am.dec("0.30000000000000004")
    with pytest.raises(am.AmountError):
        b.build(TOKEN, "BUY", 0.1 + 0.2, 5, "0.01")


def test_server_enforces_rules_too() -> None:
    """Orders that skip the local gate are refused by the fake with the venue's words."""

    async def body(fake: FakeClob, client: ClobClient, b: OrderBuilder) -> None:
        order = sg.OrderV2(1, b.maker, b.maker, TOKEN, 2_825_000, 5_000_000, "BUY", 0, sg.now_ms())  # price 0.565
        signed = sg.sign_order(order, b.signer, b.domain(False))
        with pytest.raises(ClobError, match=r"breaks minimum tick size rule: 0.01"):
            await client.post_order(signed)
        small = sg.sign_order(sg.OrderV2(2, b.maker, b.maker, TOKEN, 2_000_000, 4_000_000, "BUY", 0, sg.now_ms()), b.signer, b.domain(False))
        with pytest.raises(ClobError, match=r"Size \(4\) lower than the minimum: 5"):
            await client.post_order(small)

    run(body)


@pytest.mark.parametrize("fault", ["425", "429", "500", "500_after", "drop", "drop_before"])
def test_post_order_faults_never_lose_or_duplicate(fault: str) -> None:
    async def body(fake: FakeClob, client: ClobClient, b: OrderBuilder) -> None:
        fake.inject("POST", "/order", fault, times=2)
        signed = b.build(TOKEN, "BUY", "0.40", "10", "0.01")
        res = await client.post_order(signed)
        assert res["success"] and res["orderID"] == signed.order_hash
        mine = fake.orders_of(client.creds.api_key)  # type: ignore[union-attr]
        assert [o.id for o in mine] == [signed.order_hash]
        if fault in ("500_after", "drop"):
            # the first attempt was processed: the client found it by hash, did not resend
            assert fake.post_attempts[signed.order_hash] == 1
            assert client.stats.recovered_by_lookup == 1

    run(body)


def test_batch_of_twenty_splits_and_survives_a_dropped_reply() -> None:
    async def body(fake: FakeClob, client: ClobClient, b: OrderBuilder) -> None:
        fake.inject("POST", "/orders", "drop")
        signed = [b.build(TOKEN, "BUY", f"0.{10 + i}", "5", "0.01") for i in range(20)]
        results = await client.post_orders([(s, "GTC", False) for s in signed])
        assert [r["orderID"] for r in results] == [s.order_hash for s in signed]
        assert all(r["success"] for r in results)
        assert len(fake.orders_of(client.creds.api_key)) == 20  # type: ignore[union-attr]
        assert max(fake.post_attempts.values()) == 1
        assert [m for m, p in fake.requests if p == "/orders"].count("POST") == 2  # 15 + 5
        res = await client.cancel_orders([s.order_hash for s in signed[:3]])
        assert len(res["canceled"]) == 3
        res = await client.cancel_all()
        assert len(res["canceled"]) == 17

    run(body)


def test_503_modes() -> None:
    async def body(fake: FakeClob, client: ClobClient, b: OrderBuilder) -> None:
        fake.mode = "post_only"
        with pytest.raises(ClobUnavailable) as info:
            await client.post_order(b.build(TOKEN, "BUY", "0.40", "10", "0.01"))
        assert info.value.mode == "post_only" and info.value.retry_after == 1
        assert "post-only mode" in info.value.message
        ok = await client.post_order(b.build(TOKEN, "BUY", "0.41", "10", "0.01"), post_only=True)
        assert ok["success"]
        fake.mode = "cancel_only"
        with pytest.raises(ClobUnavailable) as info:
            await client.post_order(b.build(TOKEN, "BUY", "0.42", "10", "0.01"), post_only=True)
        assert info.value.mode == "cancel_only"
        assert (await client.cancel_all())["canceled"] == [ok["orderID"]]

    run(body)


def test_matching_trades_and_heartbeat_and_balance() -> None:
    async def body(fake: FakeClob, client: ClobClient, b: OrderBuilder) -> None:
        fake.add_liquidity(TOKEN, "SELL", "0.50", "100")
        res = await client.post_order(b.build(TOKEN, "BUY", "0.50", "30", "0.01"), "FAK")
        assert res["status"] == "matched" and len(res["tradeIDs"]) == 1
        trades = await client.trades()
        assert trades[0]["size"] == "30" and trades[0]["trader_side"] == "TAKER"
        with pytest.raises(ClobError, match="FOK orders are fully filled or killed"):
            await client.post_order(b.build(TOKEN, "BUY", "0.50", "100", "0.01"), "FOK")
        with pytest.raises(ClobError, match="order crosses book"):
            await client.post_order(b.build(TOKEN, "BUY", "0.50", "10", "0.01"), post_only=True)
        hb = await client.heartbeat("")
        hb2 = await client.heartbeat("stale-id")  # 400 carries the right id: retried with it
        assert hb and hb2 and hb2 != hb
        fake.balances["COLLATERAL"] = {"balance": "1000000", "allowances": {"0xE111180000d2663C0091e4f400237545B87B996B": "0"}}
        bal = await client.balance_allowance()
        assert bal["balance"] == "1000000"

    run(body)


def test_token_bucket_math_without_sleeping() -> None:
    now = [0.0]
    bucket = TokenBucket(60, 40, clock=lambda: now[0])
    assert bucket.wait_time(60) == 0
    bucket.take(60)
    assert bucket.wait_time(1) == pytest.approx(1 / 40)
    now[0] += 0.5
    assert bucket.wait_time(20) == 0
    with pytest.raises(ClobError, match="can never succeed"):
        bucket.wait_time(61)
    limiter = RateLimiter(tier="standard", clock=lambda: now[0])
    kinds = {b.capacity for b, _ in limiter._for("POST", "/orders", 15)}
    assert {9000.0, 2000.0, 21000.0, 60.0} <= kinds
    assert {b.capacity for b, _ in limiter._for("DELETE", "/cancel-all", 1)} >= {250.0, 6000.0, 120.0}


def test_protocol_v2_markets_sign_for_exchange_v3() -> None:
    b = OrderBuilder(sg.Signer(TEST_KEY))
    v3 = b.build(TOKEN, "BUY", "0.5", "10", "0.01", domain_version="3")
    v2 = b.build(TOKEN, "BUY", "0.5", "10", "0.01", salt=v3.order.salt, timestamp_ms=v3.order.timestamp)
    assert v3.order == v2.order and v3.signature != v2.signature
    assert sg.verify_order_signature(v3, sg.exchange_domain(137, False, "3"), 137) == b.signer.address
    assert sg.verify_order_signature(v3, sg.exchange_domain(137, False, "2"), 137) != b.signer.address


def test_signature_types_and_funder_rules() -> None:
    signer = sg.Signer(TEST_KEY)
    proxy = "0x1111111111111111111111111111111111111111"
    for st in (1, 2):
        signed = OrderBuilder(signer, signature_type=st, funder=proxy).build(TOKEN, "SELL", "0.5", "10", "0.01")
        assert signed.order.maker == proxy and signed.order.signer == signer.address
        assert sg.verify_order_signature(signed, sg.exchange_domain(), 137) == signer.address
    deposit = OrderBuilder(signer, signature_type=3, funder=proxy).build(TOKEN, "BUY", "0.5", "10", "0.01")
    assert deposit.order.maker == deposit.order.signer == proxy and len(deposit.signature) == 636
    assert sg.verify_order_signature(deposit, sg.exchange_domain(), 137) == signer.address
    with pytest.raises(ValueError, match="needs POLYMARKET_FUNDER"):
        OrderBuilder(signer, signature_type=1)
    with pytest.raises(ValueError, match="EOA"):
        OrderBuilder(signer, signature_type=0, funder=proxy)


@pytest.mark.parametrize("sig_type", [1, 2, 3])
def test_fake_accepts_proxy_safe_and_deposit_wallet_orders(sig_type: int) -> None:
    async def body(fake: FakeClob, client: ClobClient, b: OrderBuilder) -> None:
        wallet = "0x2222222222222222222222222222222222222222"
        builder = OrderBuilder(b.signer, signature_type=sig_type, funder=wallet)
        signed = builder.build(TOKEN_NR, "BUY", "0.505", "10", "0.005", neg_risk=True)
        res = await client.post_order(signed)
        assert res["success"] and res["orderID"] == signed.order_hash
        forged = OrderBuilder(sg.Signer("0x" + "11" * 32), signature_type=sig_type, funder=wallet)
        with pytest.raises(ClobError, match="invalid signature"):
            await client.post_order(forged.build(TOKEN_NR, "BUY", "0.5", "10", "0.005", neg_risk=True))

    run(body)


def test_backoff_schedule_and_retry_after_are_honoured() -> None:
    slept: list[float] = []

    async def fake_sleep(d: float) -> None:
        slept.append(d)

    async def body(fake: FakeClob, client: ClobClient, b: OrderBuilder) -> None:
        client.sleep = fake_sleep
        client.retry = RetryPolicy(attempts=8, backoff_base=1.0, backoff_max=30.0, retry_after_cap=60.0)
        fake.inject("POST", "/order", "425", times=3)
        res = await client.post_order(b.build(TOKEN, "BUY", "0.40", "10", "0.01"))
        assert res["success"]
        assert slept == [1.0, 2.0, 4.0]  # 1 s doubling (to 30 s)
        slept.clear()
        fake.retry_after_429 = "7"
        fake.inject("GET", "/data/orders", "429")
        await client.open_orders()
        assert slept == [7.0]  # exactly what Retry-After said
        slept.clear()
        fake.inject("GET", "/data/orders", "425", times=7)
        await client.open_orders()
        assert slept == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]

    run(body)


def test_client_throttles_itself_to_the_tier() -> None:
    now = [0.0]
    slept: list[float] = []

    async def fake_sleep(d: float) -> None:
        slept.append(d)
        now[0] += d

    async def body(fake: FakeClob, client: ClobClient, b: OrderBuilder) -> None:
        client.limiter = RateLimiter(tier="standard", clock=lambda: now[0], sleep=fake_sleep)
        signed = [b.build(TOKEN, "BUY", f"0.{10 + i % 80:02d}", "5", "0.01") for i in range(100)]
        for s in signed:
            assert (await client.post_order(s))["success"]
        # burst 60, then 40 orders/s: the last 40 orders wait about a second in total
        assert 0.9 < sum(slept) < 1.1 and client.limiter.waited == sum(slept)
        assert fake.requests.count(("POST", "/order")) == 100  # throttled, never refused

    run(body)
