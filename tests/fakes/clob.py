"""A strict fake Polymarket CLOB V2: a real HTTP + WebSocket server on 127.0.0.1 (aiohttp).

It checks what the real venue checks: every L2 header (API key, passphrase, address,
HMAC over timestamp + method + path + exact body), the L1 ClobAuth signature, the
EIP-712 V2 signature of every order (recovering the signer under the market's exchange
domain, standard or neg-risk, all four signature types), the owner, tick, lot precision,
minimum size, the FOK/FAK amount precision (maker ≤ 2 decimals, taker ≤ 4, protocol §3.4),
post-only crossing, FOK fillability, duplicates, the documented query
parameters of the REST lists (unix-second `after`/`before`), and answers REST with the
prefixed statuses (`ORDER_STATUS_LIVE`, `TRADE_STATUS_CONFIRMED`). It matches orders against
resting liquidity, streams user-channel `order`/`trade` events, settles trades MATCHED ->
CONFIRMED / FAILED (a FOK/FAK BUY spends its makerAmount: at better prices it gets more
shares than its takerAmount, as the venue does), runs the heartbeat dead-man switch, and injects faults: 425, 429,
500 (before or after processing), 503 modes, dropped responses and WebSocket disconnects.

Use it from a running event loop:

    fake = FakeClob(); await fake.start(); ...; await fake.stop()
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from aiohttp import WSMsgType, web

from agkit.venues.polymarket import signing as sg

TEST_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
TEST_ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
SCALE = Decimal(1_000_000)
BASE_UNIT = Decimal("0.000001")
PAGE = 2  # small pages so the client's pagination is exercised
# the documented query parameters of the REST lists (protocol §5.3); anything else is a client bug
ORDERS_QUERY = frozenset({"id", "market", "asset_id", "next_cursor"})
TRADES_QUERY = frozenset({"id", "maker_address", "market", "asset_id", "before", "after", "next_cursor"})


@dataclass
class Market:
    condition_id: str
    token_id: str
    tick: Decimal = Decimal("0.01")
    min_size: Decimal = Decimal("5")
    neg_risk: bool = False


@dataclass
class Account:
    address: str
    api_key: str
    secret: str
    passphrase: str


@dataclass
class Order:
    id: str
    owner: str  # api key ("lp" for the fake's own liquidity)
    maker_address: str
    market: str
    asset_id: str
    side: str
    price: Decimal
    original_size: Decimal
    order_type: str
    expiration: int = 0
    size_matched: Decimal = Decimal(0)
    status: str = "LIVE"
    created_at: int = field(default_factory=lambda: int(time.time()))
    associate_trades: list[str] = field(default_factory=list)
    spend: Decimal | None = None  # a FOK/FAK BUY: the pUSD it spends (its makerAmount)
    spent: Decimal = Decimal(0)

    @property
    def remaining(self) -> Decimal:
        return self.original_size - self.size_matched

    @property
    def unfilled(self) -> bool:
        if self.spend is None:
            return self.remaining > 0
        return self.spend - self.spent >= self.price * BASE_UNIT  # what is left buys a base unit

    def take(self, maker: Order) -> Decimal:
        """Shares this taker takes from `maker`: BUYs that spend stop when the pUSD is out."""
        if self.spend is None:
            return min(maker.remaining, self.remaining)
        affordable = ((self.spend - self.spent) / maker.price).quantize(BASE_UNIT, rounding=ROUND_FLOOR)
        return min(maker.remaining, _plain(affordable))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "owner": self.owner,
            "maker_address": self.maker_address,
            "market": self.market,
            "asset_id": self.asset_id,
            "side": self.side,
            "original_size": str(self.original_size),
            "size_matched": str(self.size_matched),
            "price": str(self.price),
            "outcome": "Yes",
            "expiration": str(self.expiration),
            "order_type": self.order_type,
            "associate_trades": list(self.associate_trades),
            "created_at": self.created_at,
        }


def _plain(x: Decimal) -> Decimal:
    """Without trailing zeros, never in exponent form (30.000000 -> 30, 26.4150940 -> 26.415094)."""
    return x.quantize(Decimal(1)) if x == x.to_integral_value() else x.normalize()


def _d(text: str) -> Decimal:
    return Decimal(text)


class FakeClob:
    def __init__(self, chain_id: int = 137, *, auto_confirm: bool = False, heartbeat_timeout: float = 10.0) -> None:
        self.chain_id = chain_id
        self.auto_confirm = auto_confirm
        self.heartbeat_timeout = heartbeat_timeout
        self.markets: dict[str, Market] = {}
        self.accounts: dict[str, Account] = {}  # api key -> account
        self.orders: dict[str, Order] = {}
        self.trades: dict[str, dict[str, Any]] = {}
        self.faults: list[tuple[str, str, str]] = []  # (method, path, kind)
        self.mode: str | None = None  # None | "post_only" | "cancel_only" | "disabled"
        self.mode_retry_after = 1
        self.ws_clients: list[tuple[web.WebSocketResponse, str]] = []
        self._queues: dict[int, asyncio.Queue[str]] = {}
        self.ws_connects = 0
        self.post_attempts: Counter[str] = Counter()  # order hash -> POSTs seen
        self.requests: list[tuple[str, str]] = []
        self.auth_failures: list[str] = []
        self.heartbeat_ids: dict[str, str] = {}
        self.heartbeat_deadline: dict[str, float] = {}
        self.heartbeats = 0
        self.balances: dict[str, dict[str, Any]] = {}
        self.ratelimit_warning = False
        self.retry_after_429 = "0"
        self.ws_arrays = False  # frame events as JSON arrays
        self.post_delay = 0.0  # hold POST /order answers back (user-channel events win the race)
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self.url = ""
        self.ws_url = ""

    # -- setup ------------------------------------------------------------------------------

    def add_market(self, condition_id: str, token_id: str, tick: str = "0.01", min_size: str = "5", neg_risk: bool = False) -> Market:
        m = Market(condition_id, token_id, Decimal(tick), Decimal(min_size), neg_risk)
        self.markets[token_id] = m
        return m

    def add_account(self, private_key: str = TEST_KEY, nonce: int = 0) -> Account:
        address = sg.Signer(private_key).address
        return self._account_for(address, nonce)

    def _account_for(self, address: str, nonce: int) -> Account:
        for acc in self.accounts.values():
            if acc.address == address and acc.api_key.endswith(f"{nonce:012d}"):
                return acc
        seed = sg.keccak(f"{address}:{nonce}".encode())
        api_key = str(uuid.UUID(bytes=seed[:16]))[:-12] + f"{nonce:012d}"
        secret = base64.urlsafe_b64encode(seed).decode()
        acc = Account(address, api_key, secret, seed[16:].hex())
        self.accounts[api_key] = acc
        return acc

    def add_liquidity(self, token_id: str, side: str, price: str, size: str) -> Order:
        """A resting order of another trader (owner "lp")."""
        m = self.markets[token_id]
        o = Order("0x" + uuid.uuid4().hex + uuid.uuid4().hex, "lp", "0x" + "77" * 20, m.condition_id, token_id, side, _d(price), _d(size), "GTC")
        self.orders[o.id] = o
        return o

    def inject(self, method: str, path: str, kind: str, times: int = 1) -> None:
        """kind: 425, 429, 500 (not processed), 500_after (processed, then 500), 503,
        drop (processed, reply lost), drop_before (connection cut, nothing processed)."""
        for _ in range(times):
            self.faults.append((method, path, kind))

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_get("/time", self.h_time)
        r.add_get("/tick-size", self.h_tick)
        r.add_get("/neg-risk", self.h_negrisk)
        r.add_get("/auth/derive-api-key", self.h_derive)
        r.add_post("/auth/api-key", self.h_create)
        r.add_post("/order", self.h_post_order)
        r.add_post("/orders", self.h_post_orders)
        r.add_delete("/order", self.h_cancel)
        r.add_delete("/orders", self.h_cancel_many)
        r.add_delete("/cancel-all", self.h_cancel_all)
        r.add_delete("/cancel-market-orders", self.h_cancel_market)
        r.add_get("/data/order/{id}", self.h_get_order)
        r.add_get("/data/orders", self.h_open_orders)
        r.add_get("/data/trades", self.h_trades)
        r.add_get("/balance-allowance", self.h_balance)
        r.add_get("/balance-allowance/update", self.h_balance_update)
        r.add_post("/v1/heartbeats", self.h_heartbeat)
        r.add_get("/ws/user", self.h_ws)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/ws/user"
        self._tasks.append(asyncio.create_task(self._heartbeat_watch()))
        return self.url

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for ws, _k in list(self.ws_clients):
            await ws.close()
        if self._runner:
            await self._runner.cleanup()

    # -- plumbing -------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        path = request.path
        route = "/data/order" if path.startswith("/data/order/") else path
        self.requests.append((request.method, route))
        fault = None
        for i, (m, p, kind) in enumerate(self.faults):
            if m == request.method and p == route:
                fault = kind
                del self.faults[i]
                break
        if fault == "drop_before":
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError
        if fault in ("425", "500"):
            return web.json_response({"error": "Too Early" if fault == "425" else "there are no matching orders"}, status=int(fault))
        if fault == "429":
            return web.json_response({"error": "Too Many Requests"}, status=429, headers={"Retry-After": self.retry_after_429})
        if fault == "503":
            return web.json_response(
                {"error": "Trading is currently cancel-only. Please try again later.", "code": "cancel_only"}, status=503, headers={"Retry-After": "0"}
            )
        resp = await handler(request)
        if self.ratelimit_warning:
            resp.headers["Poly-RateLimit-Warning"] = "true"
        if fault == "500_after":
            return web.json_response({"error": "internal error"}, status=500)
        if fault == "drop":
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError
        return resp  # type: ignore[no-any-return]

    @staticmethod
    def _err(status: int, message: str, **extra: Any) -> web.Response:
        return web.json_response({"error": message, **extra}, status=status)

    async def _l2(self, request: web.Request) -> tuple[Account, bytes]:
        """Verify the five L2 headers; raise 401 otherwise."""
        body = await request.read()
        h = request.headers
        names = ("POLY_ADDRESS", "POLY_SIGNATURE", "POLY_TIMESTAMP", "POLY_API_KEY", "POLY_PASSPHRASE")
        missing = [n for n in names if not h.get(n)]
        if missing:
            self.auth_failures.append(f"missing {missing}")
            raise web.HTTPUnauthorized(text=json.dumps({"error": "Unauthorized/Invalid api key"}), content_type="application/json")
        acc = self.accounts.get(h["POLY_API_KEY"])
        problem = None
        if acc is None:
            problem = "unknown api key"
        elif not hmac.compare_digest(h["POLY_PASSPHRASE"], acc.passphrase):
            problem = "bad passphrase"
        elif h["POLY_ADDRESS"] != acc.address:
            problem = "address is not the key's owner"
        else:
            ts = h["POLY_TIMESTAMP"]
            if not ts.isdigit() or abs(int(ts) - time.time()) > 60:
                problem = "timestamp outside the window"
            else:
                want = sg.hmac_signature(acc.secret, ts, request.method, request.path, body or None)
                if not hmac.compare_digest(want, h["POLY_SIGNATURE"]):
                    problem = "bad HMAC"
        if problem:
            self.auth_failures.append(problem)
            raise web.HTTPUnauthorized(text=json.dumps({"error": "Unauthorized/Invalid api key"}), content_type="application/json")
        assert acc is not None
        return acc, body

    def _l1(self, request: web.Request) -> tuple[str, int]:
        h = request.headers
        try:
            address, ts, nonce = h["POLY_ADDRESS"], h["POLY_TIMESTAMP"], int(h.get("POLY_NONCE", "0"))
            digest = sg.clob_auth_digest(address, ts, nonce, self.chain_id)
            got = sg.recover_address(digest, sg.hexbytes(h["POLY_SIGNATURE"]))
        except Exception:
            got, address, nonce = "", "?", 0
        if got != address:
            self.auth_failures.append("bad L1 signature")
            raise web.HTTPUnauthorized(text=json.dumps({"error": "Invalid L1 Request headers"}), content_type="application/json")
        return address, nonce

    # -- public ---------------------------------------------------------------------------------------

    async def h_time(self, _r: web.Request) -> web.Response:
        return web.json_response(int(time.time()))

    async def h_tick(self, r: web.Request) -> web.Response:
        m = self.markets.get(r.query.get("token_id", ""))
        if m is None:
            return self._err(404, "market not found")
        return web.json_response({"minimum_tick_size": float(m.tick)})

    async def h_negrisk(self, r: web.Request) -> web.Response:
        m = self.markets.get(r.query.get("token_id", ""))
        if m is None:
            return self._err(404, "market not found")
        return web.json_response({"neg_risk": m.neg_risk})

    # -- L1 -------------------------------------------------------------------------------------------

    async def h_derive(self, r: web.Request) -> web.Response:
        address, nonce = self._l1(r)
        acc = next((a for a in self.accounts.values() if a.address == address and a.api_key.endswith(f"{nonce:012d}")), None)
        if acc is None:
            return self._err(400, "Could not derive api key!")
        return web.json_response({"apiKey": acc.api_key, "secret": acc.secret, "passphrase": acc.passphrase})

    async def h_create(self, r: web.Request) -> web.Response:
        address, nonce = self._l1(r)
        acc = self._account_for(address, nonce)
        return web.json_response({"apiKey": acc.api_key, "secret": acc.secret, "passphrase": acc.passphrase})

    # -- orders ---------------------------------------------------------------------------------------

    def _check_order(self, acc: Account, item: Any) -> tuple[Order | None, dict[str, Any] | None, int]:
        """(order, None, 0) when valid; (None, error body, http status) when not."""
        if not isinstance(item, dict) or not isinstance(item.get("order"), dict):
            return None, {"error": "Invalid order payload"}, 400
        o = item["order"]
        if item.get("owner") != acc.api_key:
            return None, {"error": "owner/signer mismatch"}, 400
        try:
            if not isinstance(o["salt"], int) or not isinstance(o["signatureType"], int):
                raise ValueError("salt and signatureType must be JSON numbers")
            for k in ("tokenId", "makerAmount", "takerAmount", "expiration", "timestamp"):
                if not isinstance(o[k], str) or not o[k].isdigit():
                    raise ValueError(f"{k} must be a decimal string")
            if o["side"] not in ("BUY", "SELL"):
                raise ValueError("side")
            order_type = item.get("orderType", "GTC")
            if order_type not in ("GTC", "GTD", "FOK", "FAK"):
                raise ValueError("orderType")
            if not isinstance(item.get("postOnly", False), bool) or not isinstance(item.get("deferExec", False), bool):
                raise ValueError("postOnly/deferExec")
        except (KeyError, ValueError):
            return None, {"error": "Invalid order payload"}, 400
        m = self.markets.get(o["tokenId"])
        if m is None:
            return None, {"error": "market not found"}, 400
        domain = sg.exchange_domain(self.chain_id, m.neg_risk, "2")
        try:
            signed_order = sg.OrderV2.from_message(o)
            recovered = sg.verify_order_signature(o, domain, self.chain_id)
        except Exception:
            recovered = ""
        st = int(o["signatureType"])
        ok = recovered == acc.address
        if st == 0:
            ok = ok and o["signer"] == o["maker"] == acc.address
        elif st in (1, 2):
            ok = ok and o["signer"] == acc.address
        elif st == 3:
            ok = ok and o["signer"] == o["maker"]
        else:
            ok = False
        order_hash = "0x" + signed_order.digest(domain).hex() if recovered else ""
        if not ok:
            return None, {"error": f"invalid signature for order {order_hash}"}, 400
        maker_amt, taker_amt = Decimal(o["makerAmount"]), Decimal(o["takerAmount"])
        if maker_amt <= 0 or taker_amt <= 0:
            return None, {"error": "Invalid order payload"}, 400
        if o["side"] == "BUY":
            shares, notional = taker_amt / SCALE, maker_amt / SCALE
        else:
            shares, notional = maker_amt / SCALE, taker_amt / SCALE
        price = notional / shares
        if order_type in ("FOK", "FAK") and (maker_amt % 10_000 or taker_amt % 100):
            return None, {"error": f"invalid amounts, the market {o['side'].lower()} orders maker amount supports a max accuracy of 2 decimals, taker amount a max of 4 decimals"}, 400
        if order_type in ("GTC", "GTD"):
            if shares != shares.quantize(Decimal("0.01")):
                return None, {"error": f"order {order_hash} is invalid. Size ({shares.normalize()}) has more than 2 decimals"}, 400
            if price % m.tick != 0 or price < m.tick or price > 1 - m.tick:
                return None, {"error": f"order {order_hash} is invalid. Price ({price.normalize()}) breaks minimum tick size rule: {m.tick}"}, 400
        if shares < m.min_size:
            return None, {"error": f"Size ({shares.normalize()}) lower than the minimum: {m.min_size}"}, 400
        if order_hash in self.orders:
            return None, {"error": "Duplicated."}, 400
        exp = int(o["expiration"])
        if order_type == "GTD" and exp < time.time() + 60:
            return None, {"error": "invalid expiration"}, 400
        if order_type != "GTD" and exp != 0:
            return None, {"error": "invalid expiration"}, 400
        post_only = bool(item.get("postOnly", False))
        if post_only and order_type in ("FOK", "FAK"):
            return None, {"error": "INVALID_POST_ONLY_ORDER_TYPE"}, 400
        order = Order(order_hash, acc.api_key, o["maker"], m.condition_id, m.token_id, o["side"], price, shares, order_type, exp)
        if order_type in ("FOK", "FAK") and o["side"] == "BUY":
            order.spend = notional
        crossing = self._crossing(order)
        if post_only and crossing:
            return None, {"error": "invalid post-only order: order crosses book"}, 400
        if order.spend is not None:
            short = sum(x.remaining * x.price for x in crossing) < order.spend
        else:
            short = sum(x.remaining for x in crossing) < shares
        if order_type == "FOK" and short:
            return None, {"error": "order couldn't be fully filled. FOK orders are fully filled or killed."}, 400
        return order, None, 0

    def _crossing(self, order: Order) -> list[Order]:
        other = "SELL" if order.side == "BUY" else "BUY"
        book = [
            x for x in self.orders.values()
            if x.asset_id == order.asset_id and x.side == other and x.status == "LIVE" and x.owner != order.owner
            and (x.price <= order.price if order.side == "BUY" else x.price >= order.price)
        ]
        book.sort(key=lambda x: (x.price if order.side == "BUY" else -x.price, x.created_at))
        return book

    def _place(self, acc: Account, order: Order) -> dict[str, Any]:
        self.orders[order.id] = order
        trade_ids = self._match(order)
        if order.unfilled and order.order_type in ("FAK", "FOK"):
            order.status = "CANCELED"
            self._order_event(order, "CANCELLATION")
        elif order.remaining > 0:
            if not trade_ids:
                self._order_event(order, "PLACEMENT")
        else:
            order.status = "MATCHED"
        status = "matched" if trade_ids else ("live" if order.status == "LIVE" else "unmatched")
        return {
            "success": True,
            "errorMsg": "",
            "orderID": order.id,
            "status": status,
            "makingAmount": "",
            "takingAmount": "",
            "tradeIDs": trade_ids,
        }

    def _match(self, taker: Order) -> list[str]:
        ids = []
        for maker in self._crossing(taker):
            qty = taker.take(maker)
            if qty <= 0:
                break
            maker.size_matched += qty
            taker.size_matched += qty
            if taker.spend is not None:
                taker.spent += qty * maker.price
            if maker.remaining == 0:
                maker.status = "MATCHED"
            tid = str(uuid.uuid4())
            trade = {
                "id": tid,
                "taker_order_id": taker.id,
                "market": taker.market,
                "asset_id": taker.asset_id,
                "side": taker.side,
                "size": str(qty),
                "fee_rate_bps": "0",
                "price": str(maker.price),
                "status": "MATCHED",
                "match_time": str(int(time.time())),
                "last_update": str(int(time.time())),
                "outcome": "Yes",
                "bucket_index": 0,
                "owner": taker.owner,
                "maker_address": taker.maker_address,
                "transaction_hash": "",
                "maker_orders": [
                    {
                        "order_id": maker.id,
                        "owner": maker.owner,
                        "maker_address": maker.maker_address,
                        "matched_amount": str(qty),
                        "price": str(maker.price),
                        "fee_rate_bps": "0",
                        "asset_id": maker.asset_id,
                        "outcome": "Yes",
                        "side": maker.side,
                    }
                ],
            }
            self.trades[tid] = trade
            taker.associate_trades.append(tid)
            maker.associate_trades.append(tid)
            ids.append(tid)
            self._trade_event(trade)
            if maker.owner != "lp":
                self._order_event(maker, "UPDATE")
            if self.auto_confirm:
                asyncio.get_running_loop().call_later(0.01, self.settle, tid, "CONFIRMED")
        if ids and taker.owner != "lp":
            self._order_event(taker, "UPDATE")
        return ids

    def settle(self, trade_id: str, status: str) -> None:
        """Move a trade on: MINED, CONFIRMED, RETRYING or FAILED (streamed to its parties)."""
        trade = self.trades[trade_id]
        trade["status"] = status
        trade["last_update"] = str(int(time.time()))
        if status == "CONFIRMED":
            trade["transaction_hash"] = "0x" + uuid.uuid4().hex * 2
        self._trade_event(trade)

    def external_take(self, token_id: str, side: str, price: str, size: str) -> list[str]:
        """Another trader's marketable order hits the book (our resting orders fill as maker)."""
        m = self.markets[token_id]
        o = Order("0x" + uuid.uuid4().hex * 2, "lp", "0x" + "77" * 20, m.condition_id, token_id, side, _d(price), _d(size), "FAK")
        self.orders[o.id] = o
        ids = self._match(o)
        # a FAK: never rests; fully matched it is MATCHED (a LIVE husk would "cross" later post-only orders)
        o.status = "CANCELED" if o.remaining > 0 else "MATCHED"
        return ids

    async def h_post_order(self, r: web.Request) -> web.Response:
        acc, body = await self._l2(r)
        try:
            item = json.loads(body)
        except ValueError:
            return self._err(400, "Invalid order payload")
        if isinstance(item, dict) and isinstance(item.get("order"), dict):
            try:
                h = "0x" + sg.OrderV2.from_message(item["order"]).digest(
                    sg.exchange_domain(self.chain_id, self.markets[item["order"]["tokenId"]].neg_risk)
                ).hex()
                self.post_attempts[h] += 1
            except Exception:
                pass
        blocked = self._mode_blocks(item)
        if blocked is not None:
            return blocked
        order, err, status = self._check_order(acc, item)
        if order is None:
            return web.json_response(err, status=status)
        placed = self._place(acc, order)
        if self.post_delay:
            await asyncio.sleep(self.post_delay)
        return web.json_response(placed)

    def _mode_blocks(self, item: Any) -> web.Response | None:
        if self.mode is None:
            return None
        if self.mode == "post_only" and isinstance(item, dict) and item.get("postOnly"):
            return None
        messages = {
            "post_only": ("post-only mode: only post-only orders and cancels are allowed", "post_only_mode"),
            "cancel_only": ("Trading is currently cancel-only. Please try again later.", "cancel_only"),
            "disabled": ("Trading is currently disabled. Check polymarket.com for updates.", "trading_disabled"),
        }
        msg, code = messages[self.mode]
        return web.json_response(
            {"error": msg, "code": code, "retry_after_seconds": self.mode_retry_after},
            status=503,
            headers={"Retry-After": str(self.mode_retry_after)},
        )

    async def h_post_orders(self, r: web.Request) -> web.Response:
        acc, body = await self._l2(r)
        try:
            items = json.loads(body)
        except ValueError:
            return self._err(400, "Invalid order payload")
        if not isinstance(items, list):
            return self._err(400, "Invalid order payload")
        if len(items) > 15:
            return self._err(400, f"Too many orders in payload: {len(items)}, max allowed: 15")
        out = []
        for item in items:
            try:
                o = item["order"]
                h = "0x" + sg.OrderV2.from_message(o).digest(sg.exchange_domain(self.chain_id, self.markets[o["tokenId"]].neg_risk)).hex()
                self.post_attempts[h] += 1
            except Exception:
                pass
            blocked = self._mode_blocks(item)
            if blocked is not None:
                out.append({"success": False, "orderID": "", "errorMsg": json.loads(blocked.body)["error"]})  # type: ignore[arg-type]
                continue
            order, err, _status = self._check_order(acc, item)
            if order is None:
                assert err is not None
                out.append({"success": False, "orderID": "", "errorMsg": err["error"]})
            else:
                out.append(self._place(acc, order))
        return web.json_response(out)

    def _cancel_ids(self, acc: Account, ids: list[str]) -> dict[str, Any]:
        canceled, not_canceled = [], {}
        for oid in ids:
            o = self.orders.get(oid)
            if o is None or o.owner != acc.api_key:
                not_canceled[oid] = "Order not found"
            elif o.status != "LIVE":
                not_canceled[oid] = "already canceled or matched"
            else:
                o.status = "CANCELED"
                canceled.append(oid)
                self._order_event(o, "CANCELLATION")
        return {"canceled": canceled, "not_canceled": not_canceled}

    async def h_cancel(self, r: web.Request) -> web.Response:
        acc, body = await self._l2(r)
        data = json.loads(body)
        return web.json_response(self._cancel_ids(acc, [data["orderID"]]))

    async def h_cancel_many(self, r: web.Request) -> web.Response:
        acc, body = await self._l2(r)
        ids = json.loads(body)
        if len(ids) > 1000:
            return self._err(400, "too many ids")
        return web.json_response(self._cancel_ids(acc, ids))

    async def h_cancel_all(self, r: web.Request) -> web.Response:
        acc, _ = await self._l2(r)
        ids = [o.id for o in self.orders.values() if o.owner == acc.api_key and o.status == "LIVE"]
        return web.json_response(self._cancel_ids(acc, ids))

    async def h_cancel_market(self, r: web.Request) -> web.Response:
        acc, body = await self._l2(r)
        data = json.loads(body or b"{}")
        ids = [
            o.id for o in self.orders.values()
            if o.owner == acc.api_key and o.status == "LIVE"
            and (not data.get("market") or o.market == data["market"])
            and (not data.get("asset_id") or o.asset_id == data["asset_id"])
        ]
        return web.json_response(self._cancel_ids(acc, ids))

    async def h_get_order(self, r: web.Request) -> web.Response:
        acc, _ = await self._l2(r)
        o = self.orders.get(r.match_info["id"])
        if o is None or o.owner != acc.api_key:
            return self._err(404, "order not found")
        return web.json_response(self._rest(o.to_json(), "ORDER_STATUS_"))

    @staticmethod
    def _page(items: list[dict[str, Any]], cursor: str) -> dict[str, Any]:
        start = int(base64.b64decode(cursor).decode()) if cursor and cursor not in ("MA==", "LTE=") else 0
        chunk = items[start : start + PAGE]
        nxt = start + PAGE
        return {
            "limit": PAGE,
            "count": len(chunk),
            "next_cursor": base64.b64encode(str(nxt).encode()).decode() if nxt < len(items) else "LTE=",
            "data": chunk,
        }

    @staticmethod
    def _bad_query(q: Any, allowed: frozenset[str]) -> web.Response | None:
        unknown = sorted(set(q) - allowed)
        if unknown:
            return FakeClob._err(400, f"invalid query parameter(s): {', '.join(unknown)}")
        for name in ("before", "after"):  # unix seconds, integers
            if name in q and not q[name].isdigit():
                return FakeClob._err(400, f"invalid {name}: {q[name]!r} (unix seconds)")
        return None

    @staticmethod
    def _rest(item: dict[str, Any], prefix: str) -> dict[str, Any]:
        """REST spells statuses with a prefix (ORDER_STATUS_LIVE, TRADE_STATUS_CONFIRMED); WS does not."""
        return dict(item, status=prefix + str(item["status"]))

    async def h_open_orders(self, r: web.Request) -> web.Response:
        acc, _ = await self._l2(r)
        q = r.query
        bad = self._bad_query(q, ORDERS_QUERY)
        if bad is not None:
            return bad
        items = [
            self._rest(o.to_json(), "ORDER_STATUS_") for o in self.orders.values()
            if o.owner == acc.api_key and o.status == "LIVE"
            and (not q.get("id") or o.id == q["id"])
            and (not q.get("market") or o.market == q["market"])
            and (not q.get("asset_id") or o.asset_id == q["asset_id"])
        ]
        return web.json_response(self._page(items, q.get("next_cursor", "")))

    def _mine(self, acc: Account, trade: dict[str, Any]) -> bool:
        return trade["owner"] == acc.api_key or any(m["owner"] == acc.api_key for m in trade["maker_orders"])

    async def h_trades(self, r: web.Request) -> web.Response:
        acc, _ = await self._l2(r)
        q = r.query
        bad = self._bad_query(q, TRADES_QUERY)
        if bad is not None:
            return bad
        items = []
        for t in self.trades.values():
            if not self._mine(acc, t):
                continue
            makers = {m["maker_address"].lower() for m in t["maker_orders"]} | {t["maker_address"].lower()}
            if (
                (q.get("id") and t["id"] != q["id"])
                or (q.get("market") and t["market"] != q["market"])
                or (q.get("asset_id") and t["asset_id"] != q["asset_id"])
                or (q.get("maker_address") and q["maker_address"].lower() not in makers)
                or (q.get("after") and int(t["match_time"]) < int(q["after"]))
                or (q.get("before") and int(t["match_time"]) > int(q["before"]))
            ):
                continue
            item = self._rest(t, "TRADE_STATUS_")
            item["trader_side"] = "TAKER" if t["owner"] == acc.api_key else "MAKER"
            items.append(item)
        return web.json_response(self._page(items, q.get("next_cursor", "")))

    async def h_balance(self, r: web.Request) -> web.Response:
        await self._l2(r)
        asset = r.query.get("asset_type", "COLLATERAL")
        key = f"{asset}:{r.query.get('token_id', '')}"
        data = self.balances.get(key) or self.balances.get(asset) or {"balance": "0", "allowances": {}}
        return web.json_response(data)

    async def h_balance_update(self, r: web.Request) -> web.Response:
        await self._l2(r)
        return web.json_response("")

    async def h_heartbeat(self, r: web.Request) -> web.Response:
        acc, body = await self._l2(r)
        data = json.loads(body or b"{}")
        current = self.heartbeat_ids.get(acc.api_key, "")
        if data.get("heartbeat_id", "") != current:
            return web.json_response({"error": "Invalid Heartbeat ID", "heartbeat_id": current}, status=400)
        new = str(uuid.uuid4())
        self.heartbeat_ids[acc.api_key] = new
        self.heartbeat_deadline[acc.api_key] = time.monotonic() + self.heartbeat_timeout
        self.heartbeats += 1
        return web.json_response({"heartbeat_id": new})

    async def _heartbeat_watch(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            now = time.monotonic()
            for key, deadline in list(self.heartbeat_deadline.items()):
                if now > deadline:
                    del self.heartbeat_deadline[key]
                    self.heartbeat_ids.pop(key, None)
                    acc = self.accounts[key]
                    self._cancel_ids(acc, [o.id for o in self.orders.values() if o.owner == key and o.status == "LIVE"])

    # -- user channel ------------------------------------------------------------------------------------

    async def h_ws(self, r: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(r)
        api_key = None
        sender: asyncio.Task[None] | None = None
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                if msg.data == "PING":
                    await ws.send_str("PONG")
                    continue
                data = json.loads(msg.data)
                if api_key is None:
                    auth = data.get("auth") or {}
                    acc = self.accounts.get(auth.get("apiKey", ""))
                    if data.get("type") != "user" or acc is None or auth.get("secret") != acc.secret or auth.get("passphrase") != acc.passphrase:
                        self.auth_failures.append("ws auth")
                        await ws.close(code=4001, message=b"unauthorized")
                        break
                    api_key = acc.api_key
                    self.ws_clients.append((ws, api_key))
                    self.ws_connects += 1
                    queue: asyncio.Queue[str] = asyncio.Queue()
                    self._queues[id(ws)] = queue
                    sender = asyncio.create_task(self._sender(ws, queue))
        finally:
            self.ws_clients = [(w, k) for w, k in self.ws_clients if w is not ws]
            self._queues.pop(id(ws), None)
            if sender is not None:
                sender.cancel()
        return ws

    @staticmethod
    async def _sender(ws: web.WebSocketResponse, queue: asyncio.Queue[str]) -> None:
        # one writer per socket keeps events in order (MATCHED before CONFIRMED)
        while True:
            text = await queue.get()
            if ws.closed:
                return
            await ws.send_str(text)

    async def drop_ws(self) -> None:
        """Cut every user-channel connection (the client must reconnect and reconcile)."""
        for ws, _k in list(self.ws_clients):
            await ws.close(code=1011, message=b"going away")
        self.ws_clients = []

    def _send(self, api_key: str, event: dict[str, Any]) -> None:
        text = json.dumps([event] if self.ws_arrays else event)  # the venue sends both shapes
        for ws, key in list(self.ws_clients):
            queue = self._queues.get(id(ws))
            if key == api_key and not ws.closed and queue is not None:
                queue.put_nowait(text)

    def _order_event(self, o: Order, kind: str) -> None:
        if o.owner == "lp":
            return
        ev = o.to_json()
        ev.update({"event_type": "order", "type": kind, "order_owner": o.owner, "timestamp": str(int(time.time() * 1000))})
        ev["created_at"] = str(o.created_at)
        self._send(o.owner, ev)

    def _trade_event(self, trade: dict[str, Any]) -> None:
        parties = {trade["owner"]} | {m["owner"] for m in trade["maker_orders"]}
        for key in parties - {"lp"}:
            ev = dict(trade)
            ev.update({
                "event_type": "trade",
                "type": "TRADE",
                "trade_owner": key,
                "trader_side": "TAKER" if trade["owner"] == key else "MAKER",
                "timestamp": str(int(time.time() * 1000)),
            })
            self._send(key, ev)

    # -- assertions helpers ----------------------------------------------------------------------------------

    def orders_of(self, api_key: str) -> list[Order]:
        return [o for o in self.orders.values() if o.owner == api_key]

    def by_status(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for o in self.orders.values():
            out[o.status] += 1
        return dict(out)
