"""Polymarket venue benchmarks: order signing, L2 headers, submit -> accepted round trip.

Run from the repo root: ``python bench/bench_polymarket.py`` (about 20 s).

- sign one V2 order (EIP-712 struct hash + digest + secp256k1 via coincurve), p50/p99,
  beside eth-account's `sign_typed_data` of the same order (if installed) as baseline;
- build the five L2 headers (HMAC-SHA256 over the exact body), p50, beside a bare
  `hmac.new(...).digest()` of the same message;
- `submit_order` -> `order_accepted` through the real exec stage and the live venue
  against the local fake CLOB (which recovers every signature), p50/p99, beside a bare
  GET /time round trip on the same HTTP client.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agkit.venues.polymarket import signing as sg
from bench.common import percentiles, report

KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
COND = "0xdd22472e552920b8438158ea7238bfadfa4f736aa4cee91a6b86c39ead110917"


def timed(fn: Any, n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t0)
    return out


def least_disturbed(fn: Any, rounds: int, n: int) -> tuple[float, float]:
    import gc

    best: tuple[float, float] | None = None
    gc.disable()
    try:
        for _ in range(rounds):
            p50, p99 = percentiles(timed(fn, n), 50, 99)
            if best is None or p99 < best[1]:
                best = (p50, p99)
    finally:
        gc.enable()
    assert best is not None
    return best


def bench_sign() -> None:
    signer = sg.Signer(KEY)
    domain = sg.exchange_domain(137, False)

    def ours(i: int) -> None:
        o = sg.OrderV2(i + 1, signer.address, signer.address, TOKEN, 100_000_000, 50_000_000, "BUY", 0, 1713398400000 + i)
        sg.sign_order(o, signer, domain)

    timed(ours, 200)  # warm-up
    # 2 cores shared with other work: several rounds, GC off, the least disturbed round's
    # quantiles (the same rule as bench.common.best_of)
    p50, p99 = least_disturbed(ours, rounds=30, n=500)
    base50 = base99 = None
    try:
        from eth_account import Account

        acct = Account.from_key(KEY)
        types = {
            "Order": [
                {"name": n, "type": t}
                for n, t in [
                    ("salt", "uint256"), ("maker", "address"), ("signer", "address"), ("tokenId", "uint256"),
                    ("makerAmount", "uint256"), ("takerAmount", "uint256"), ("side", "uint8"),
                    ("signatureType", "uint8"), ("timestamp", "uint256"), ("metadata", "bytes32"), ("builder", "bytes32"),
                ]
            ]
        }
        dom = {"name": sg.EXCHANGE_NAME, "version": "2", "chainId": 137, "verifyingContract": sg.EXCHANGES[(137, False, "2")]}

        def theirs(i: int) -> None:
            msg = {
                "salt": i + 1, "maker": signer.address, "signer": signer.address, "tokenId": int(TOKEN),
                "makerAmount": 100_000_000, "takerAmount": 50_000_000, "side": 0, "signatureType": 0,
                "timestamp": 1713398400000 + i, "metadata": b"\x00" * 32, "builder": b"\x00" * 32,
            }
            acct.sign_typed_data(dom, types, msg)

        # same bytes as ours (checked once), then timed
        o = sg.OrderV2(1, signer.address, signer.address, TOKEN, 100_000_000, 50_000_000, "BUY", 0, 1713398400000)
        mine = sg.sign_order(o, signer, domain).signature
        msg0 = {
            "salt": 1, "maker": signer.address, "signer": signer.address, "tokenId": int(TOKEN),
            "makerAmount": 100_000_000, "takerAmount": 50_000_000, "side": 0, "signatureType": 0,
            "timestamp": 1713398400000, "metadata": b"\x00" * 32, "builder": b"\x00" * 32,
        }
        assert "0x" + acct.sign_typed_data(dom, types, msg0).signature.hex().removeprefix("0x") == mine
        timed(theirs, 20)
        base50, base99 = least_disturbed(theirs, rounds=5, n=300)
    except ImportError:
        pass
    report("sign V2 order p50", p50 * 1e6, "µs", "eth-account sign_typed_data p50" if base50 else None,
           base50 * 1e6 if base50 else None, higher_is_better=False)
    report("sign V2 order p99", p99 * 1e6, "µs", "eth-account sign_typed_data p99" if base99 else None,
           base99 * 1e6 if base99 else None, higher_is_better=False, target_us=500)


def bench_l2() -> None:
    creds = sg.ApiCreds("00000000-0000-0000-0000-000000000000", sg.Secret("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="), sg.Secret("p" * 64))
    body = b'{"order":{"salt":1},"owner":"x","orderType":"GTC","deferExec":false,"postOnly":false}' * 8
    addr = sg.Signer(KEY).address

    def ours(_i: int) -> None:
        sg.l2_headers(addr, creds, "POST", "/order", body)

    key = bytes(32)
    msg = b"1713398400POST/order" + body

    def bare(_i: int) -> None:
        hmac.new(key, msg, hashlib.sha256).digest()

    timed(ours, 500)
    p50 = percentiles(timed(ours, 20000), 50)[0]
    b50 = percentiles(timed(bare, 20000), 50)[0]
    report("L2 headers build p50", p50 * 1e6, "µs", "bare hmac-sha256 p50", b50 * 1e6, higher_is_better=False)


async def bench_round_trip() -> None:
    from agkit.clock import Clock
    from agkit.exec.stage import ExecStage
    from agkit.stage import Context
    from agkit.venues.polymarket.client import ClobClient, unlimited
    from agkit.venues.polymarket.credentials import VenueConfig
    from agkit.venues.polymarket.venue import PolymarketVenue
    from tests.fakes.clob import FakeClob

    fake = FakeClob()
    await fake.start()
    fake.add_market(COND, TOKEN)
    acc = fake.add_account(KEY)
    creds = sg.ApiCreds(acc.api_key, sg.Secret(acc.secret), sg.Secret(acc.passphrase))
    client = ClobClient(fake.url, signer=sg.Signer(KEY), creds=creds, limiter=unlimited())
    venue = PolymarketVenue(True, config=VenueConfig(sg.Secret(KEY), creds, None, 0, 137, fake.url, fake.ws_url), client=client)
    stage = ExecStage(venue)
    got: dict[str, float] = {}
    waiter: dict[str, asyncio.Future[None]] = {}

    def emit(rec: Any) -> None:
        if isinstance(rec, dict) and rec.get("type") in ("order_accepted", "order_rejected"):
            got[rec["id"]] = time.perf_counter()
            fut = waiter.pop(rec["id"], None)
            if fut and not fut.done():
                fut.set_result(None)

    ctx = Context(Clock(), emit, lambda _m: None)
    res = stage.start(ctx)
    if asyncio.iscoroutine(res):
        await res
    run_task = asyncio.ensure_future(stage.run(ctx))  # type: ignore[arg-type]
    while fake.ws_connects < 1:
        await asyncio.sleep(0.01)
    book = {"type": "book", "ts_event": 1, "ts_init": 1, "venue": "polymarket", "market": COND, "asset": TOKEN,
            "bids": [], "asks": [], "tick_size": 0.01, "min_size": 5}
    stage.on_record(book)
    samples = []
    n = 400
    for i in range(n + 20):
        cid = f"o{i}"
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter[cid] = fut
        rec = {"type": "submit_order", "ts_event": 2, "ts_init": 2, "id": cid, "strategy": "b", "venue": "polymarket",
               "market": COND, "asset": TOKEN, "side": "buy", "price": 0.01 + (i % 40) / 100, "size": 5, "neg_risk": False}
        t0 = time.perf_counter()
        for out in stage.on_record(rec) or ():
            emit(out)
        await fut
        if i >= 20:
            samples.append(got[cid] - t0)
    base = []
    for _ in range(n):
        t0 = time.perf_counter()
        await client.server_time()
        base.append(time.perf_counter() - t0)
    p50, p99 = percentiles(samples, 50, 99)
    b50, b99 = percentiles(base, 50, 99)
    report("submit -> order_accepted vs fake CLOB p50", p50 * 1e3, "ms", "GET /time round trip p50", b50 * 1e3, higher_is_better=False)
    report("submit -> order_accepted vs fake CLOB p99", p99 * 1e3, "ms", "GET /time round trip p99", b99 * 1e3, higher_is_better=False)
    run_task.cancel()
    await asyncio.gather(run_task, return_exceptions=True)
    res = stage.stop()
    if asyncio.iscoroutine(res):
        await res
    await fake.stop()


def main() -> None:
    bench_sign()
    bench_l2()
    asyncio.run(bench_round_trip())


if __name__ == "__main__":
    main()
