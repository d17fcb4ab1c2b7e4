"""Async REST client of the CLOB (httpx), with the venue's limits and faults handled (§5, §7).

- Every private call carries fresh L2 HMAC headers over the exact bytes sent.
- Client-side token buckets per route match the published limits (§7.1), plus the
  per-signer trading buckets (tier configurable), so the client throttles itself
  instead of collecting 429s.
- 425 (engine restarting): back off 1 s doubling to 30 s and retry. 429: wait Retry-After.
  500 and lost responses: idempotent calls retry; an order post never blindly does —
  the order's hash (its orderID) is looked up first and only an order the venue does not
  know is sent again (the same signed bytes, so even then it cannot become two orders).
  503: `ClobUnavailable` with the mode (post-only / cancel-only / disabled) and how long.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agkit.errors import VenueError
from agkit.venues.polymarket.signing import (
    CHAIN_POLYGON,
    ApiCreds,
    Secret,
    SignedOrder,
    Signer,
    l1_headers,
    l2_headers,
)
from agkit.venues.polymarket.wire import MAX_BATCH, MAX_CANCEL_IDS, dumps, order_payload

if TYPE_CHECKING:
    import httpx

DEFAULT_HOST = "https://clob.polymarket.com"
END_CURSOR = "LTE="


class ClobError(VenueError):
    """The CLOB answered with an error (status, the venue's message, code, retry hint)."""

    def __init__(self, status: int, message: str, code: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(f"CLOB {status}: {message}" if status else message)
        self.status = status
        self.message = message
        self.code = code
        self.retry_after = retry_after


class ClobUnavailable(ClobError):
    """503: trading disabled, cancel-only or post-only mode (`mode`), for `retry_after` s."""

    @property
    def mode(self) -> str:
        text = f"{self.code or ''} {self.message}".lower()
        if "post_only" in text or "post-only" in text:
            return "post_only"
        if "cancel-only" in text or "cancel_only" in text:
            return "cancel_only"
        return "disabled"


class ResponseLost(ClobError):
    """The request may or may not have reached the venue (timeout, reset, dropped reply)."""


# --- rate limits ----------------------------------------------------------------------------


class TokenBucket:
    """`capacity` tokens refilled at `rate`/s; `acquire(cost)` waits until they are there."""

    def __init__(self, capacity: float, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(capacity)
        self.rate = float(rate)
        self.tokens = float(capacity)
        self._clock = clock
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate)
        self._last = now

    def wait_time(self, cost: float) -> float:
        if cost > self.capacity:
            raise ClobError(0, f"request cost {cost} exceeds the bucket's burst {self.capacity:g}: it can never succeed")
        self._refill()
        deficit = cost - self.tokens
        return 0.0 if deficit <= 1e-9 * max(1.0, cost) else deficit / self.rate  # float dust is no wait

    def take(self, cost: float) -> None:
        self._refill()
        self.tokens -= cost


# (method, route) -> [(limit, window seconds), ...]  (docs rate-limits, June 2026)
PUBLISHED_LIMITS: dict[tuple[str, str], list[tuple[int, float]]] = {
    ("*", "*"): [(9000, 10)],
    ("POST", "/order"): [(5000, 10), (120000, 600)],
    ("DELETE", "/order"): [(5000, 10), (120000, 600)],
    ("POST", "/orders"): [(2000, 10), (21000, 600)],
    ("DELETE", "/orders"): [(2000, 10), (15000, 600)],
    ("DELETE", "/cancel-all"): [(250, 10), (6000, 600)],
    ("DELETE", "/cancel-market-orders"): [(1500, 10), (21000, 600)],
    ("GET", "/balance-allowance"): [(200, 10)],
    ("GET", "/balance-allowance/update"): [(50, 10)],
    ("GET", "/data/orders"): [(500, 10)],
    ("GET", "/data/trades"): [(500, 10)],
    ("GET", "/data/order"): [(900, 10)],
    ("GET", "/auth/derive-api-key"): [(100, 10)],
    ("POST", "/auth/api-key"): [(100, 10)],
    ("GET", "/tick-size"): [(200, 10)],
    ("GET", "/book"): [(1500, 10)],
}

# per-signer trading buckets (order rate/burst, cancel rate/burst per second)
TIERS: dict[str, tuple[int, int, int, int]] = {
    "standard": (40, 60, 80, 120),
    "copper": (60, 90, 120, 180),
    "bronze": (80, 120, 160, 240),
    "silver": (200, 300, 400, 600),
    "gold": (400, 600, 800, 1200),
    "platinum": (450, 675, 900, 1350),
    "diamond": (525, 787, 1050, 1575),
    "elite": (600, 900, 1200, 1800),
}
ORDER_ROUTES = {("POST", "/order"), ("POST", "/orders")}
CANCEL_ROUTES = {("DELETE", "/order"), ("DELETE", "/orders"), ("DELETE", "/cancel-all"), ("DELETE", "/cancel-market-orders")}


class RateLimiter:
    """Client-side buckets: the published per-route windows and the per-signer tier."""

    def __init__(
        self,
        limits: dict[tuple[str, str], list[tuple[int, float]]] | None = None,
        tier: str | None = "standard",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.sleep = sleep
        self.waited = 0.0  # seconds spent throttled (observability)
        self.buckets: dict[tuple[str, str], list[TokenBucket]] = {
            key: [TokenBucket(n, n / window, clock) for n, window in windows]
            for key, windows in (PUBLISHED_LIMITS if limits is None else limits).items()
        }
        self.order_bucket: TokenBucket | None = None
        self.cancel_bucket: TokenBucket | None = None
        if tier:
            o_rate, o_burst, c_rate, c_burst = TIERS[tier.lower()]
            self.order_bucket = TokenBucket(o_burst, o_rate, clock)
            self.cancel_bucket = TokenBucket(c_burst, c_rate, clock)

    def _for(self, method: str, route: str, cost: float) -> list[tuple[TokenBucket, float]]:
        out = [(b, 1.0) for b in self.buckets.get(("*", "*"), [])]
        out += [(b, 1.0) for b in self.buckets.get((method, route), [])]
        if (method, route) in ORDER_ROUTES and self.order_bucket:
            out.append((self.order_bucket, cost))
        if (method, route) in CANCEL_ROUTES and self.cancel_bucket:
            out.append((self.cancel_bucket, cost))
        return out

    async def acquire(self, method: str, route: str, cost: float = 1.0) -> None:
        buckets = self._for(method, route, cost)
        while True:
            wait = max((b.wait_time(c) for b, c in buckets), default=0.0)
            if wait <= 0:
                for b, c in buckets:
                    b.take(c)
                return
            self.waited += wait
            await self.sleep(wait)


def unlimited() -> RateLimiter:
    return RateLimiter(limits={}, tier=None)


# --- the client -----------------------------------------------------------------------------------


@dataclass
class RetryPolicy:
    attempts: int = 6
    backoff_base: float = 1.0  # 425: 1 s doubling ...
    backoff_max: float = 30.0  # ... to 30 s
    retry_after_default: float = 1.0
    retry_after_cap: float = 60.0


@dataclass
class ClientStats:
    requests: int = 0
    retries: int = 0
    lost: int = 0
    recovered_by_lookup: int = 0
    resent: int = 0
    status: dict[int, int] = field(default_factory=dict)


def _route(path: str) -> str:
    if path.startswith("/data/order/"):
        return "/data/order"
    return path


class ClobClient:
    """One account's CLOB session. `signer` (the EOA) for L1 and order signing, `creds`
    (API key) for L2; either may be absent for the calls that do not need it."""

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        *,
        signer: Signer | None = None,
        creds: ApiCreds | None = None,
        chain_id: int = CHAIN_POLYGON,
        timeout: float = 10.0,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        log: Callable[[str], None] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        import httpx

        self.sleep = sleep  # injectable: tests record the backoff instead of waiting
        self.host = host.rstrip("/")
        self.signer = signer
        self.creds = creds
        self.chain_id = chain_id
        self.limiter = limiter or RateLimiter()
        self.retry = retry or RetryPolicy()
        self.stats = ClientStats()
        self._log = log or (lambda _m: None)
        self._warned = False
        self._http = httpx.AsyncClient(
            base_url=self.host,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": "agkit", "Accept": "application/json"},
        )

    def __repr__(self) -> str:
        return f"ClobClient(host={self.host!r}, address={self.address})"

    @property
    def address(self) -> str | None:
        return self.signer.address if self.signer else None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> ClobClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- transport -------------------------------------------------------------------------

    def _headers(self, auth: str | None, method: str, path: str, body: bytes | None) -> dict[str, str]:
        headers: dict[str, str] = {}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if auth == "l2":
            if self.creds is None or self.signer is None:
                from agkit.errors import ConfigError

                raise ConfigError(
                    "API credentials are missing: set POLYMARKET_API_KEY, POLYMARKET_API_SECRET and "
                    "POLYMARKET_API_PASSPHRASE (or run `agkit auth derive`) and POLYMARKET_PRIVATE_KEY"
                )
            headers.update(l2_headers(self.signer.address, self.creds, method, path, body))
        elif auth == "l1":
            if self.signer is None:
                from agkit.errors import ConfigError

                raise ConfigError("POLYMARKET_PRIVATE_KEY is not set")
            headers.update(l1_headers(self.signer, self.chain_id, self._l1_nonce))
        return headers

    _l1_nonce = 0

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: bytes | None = None,
        auth: str | None = "l2",
        idempotent: bool = True,
        cost: float = 1.0,
    ) -> Any:
        """One API call with the retry policy of §7.2; returns the decoded JSON."""
        import httpx

        route = _route(path)
        delay = self.retry.backoff_base
        last: ClobError | None = None
        for attempt in range(self.retry.attempts):
            if attempt:
                self.stats.retries += 1
            await self.limiter.acquire(method, route, cost)
            headers = self._headers(auth, method, path, body)
            self.stats.requests += 1
            try:
                resp = await self._http.request(method, path, params=params, content=body, headers=headers)
            except httpx.TransportError as exc:
                self.stats.lost += 1
                last = ResponseLost(0, f"{method} {path}: no response ({type(exc).__name__}: {exc})")
                if not idempotent:
                    raise last from None
                await self.sleep(delay)
                delay = min(delay * 2, self.retry.backoff_max)
                continue
            status = resp.status_code
            self.stats.status[status] = self.stats.status.get(status, 0) + 1
            if resp.headers.get("Poly-RateLimit-Warning", "").lower() == "true" and not self._warned:
                self._warned = True
                self._log("polymarket: the venue warns that this account is over its trading rate limit")
            if status < 400:
                if not resp.content:
                    return None
                try:
                    return resp.json()
                except ValueError:
                    return resp.text
            err = self._error(resp)
            last = err
            if status == 425:
                await self.sleep(delay)
                delay = min(delay * 2, self.retry.backoff_max)
                continue
            if status == 429:
                wait = err.retry_after if err.retry_after is not None else self.retry.retry_after_default
                await self.sleep(min(wait, self.retry.retry_after_cap))
                continue
            if status >= 500 and status != 503 and idempotent:
                await self.sleep(delay)
                delay = min(delay * 2, self.retry.backoff_max)
                continue
            raise err
        assert last is not None
        raise last

    @staticmethod
    def _error(resp: httpx.Response) -> ClobError:
        message, code, retry_after = resp.reason_phrase or "error", None, None
        try:
            data = resp.json()
        except ValueError:
            data = resp.text
        if isinstance(data, dict):
            message = str(data.get("error") or data.get("errorMsg") or data.get("error_msg") or message)
            code = data.get("code")
            if data.get("retry_after_seconds") is not None:
                retry_after = float(data["retry_after_seconds"])
        elif isinstance(data, str) and data:
            message = data
        header = resp.headers.get("Retry-After")
        if header:
            with contextlib.suppress(ValueError):
                retry_after = float(header)
        cls = ClobUnavailable if resp.status_code == 503 else ClobError
        err = cls(resp.status_code, message, code, retry_after)
        err.body = data  # type: ignore[attr-defined]
        return err

    # -- public ----------------------------------------------------------------------------------

    async def server_time(self) -> int:
        return int(await self.request("GET", "/time", auth=None))

    async def tick_size(self, token_id: str) -> Any:
        data = await self.request("GET", "/tick-size", params={"token_id": token_id}, auth=None)
        return data["minimum_tick_size"]

    async def neg_risk(self, token_id: str) -> bool:
        data = await self.request("GET", "/neg-risk", params={"token_id": token_id}, auth=None)
        return bool(data["neg_risk"])

    # -- L1: API keys ------------------------------------------------------------------------------

    async def create_or_derive_api_key(self, nonce: int = 0) -> ApiCreds:
        """Derive the key bound to `nonce`; create it when there is none (§2.1)."""
        self._l1_nonce = nonce
        try:
            data = await self.request("GET", "/auth/derive-api-key", auth="l1")
        except ClobError as exc:
            if exc.status not in (400, 404):
                raise
            data = await self.request("POST", "/auth/api-key", auth="l1", idempotent=False)
        return ApiCreds(str(data["apiKey"]), Secret(str(data["secret"])), Secret(str(data["passphrase"])))

    # -- L2: orders -----------------------------------------------------------------------------------

    async def get_order(self, order_id: str) -> dict[str, Any] | None:
        """The order by its hash, or None when the venue does not know it."""
        try:
            data = await self.request("GET", f"/data/order/{order_id}")
        except ClobError as exc:
            if exc.status in (400, 404):
                return None
            raise
        if not data or not isinstance(data, dict) or not data.get("id"):
            return None
        return data

    async def post_order(self, signed: SignedOrder, order_type: str = "GTC", *, post_only: bool = False) -> dict[str, Any]:
        """POST /order. Never becomes two orders: after a lost reply or a 500 the hash is
        looked up, and the same signed order is sent again only if the venue lacks it."""
        assert self.creds is not None
        body = dumps(order_payload(signed, self.creds.api_key, order_type, post_only=post_only))
        for attempt in range(self.retry.attempts):
            try:
                data = await self.request("POST", "/order", body=body, idempotent=False)
            except (ResponseLost, ClobError) as exc:
                if exc.status == 400 and "uplicated" in exc.message:
                    # an earlier attempt did arrive: the venue has this very order
                    return _recovered(signed.order_hash, await self.get_order(signed.order_hash))
                if not isinstance(exc, ResponseLost) and exc.status < 500:
                    raise
                if isinstance(exc, ClobUnavailable):
                    raise
                found = await self._lookup_after_loss(signed.order_hash, attempt)
                if found is not None:
                    return found
                self.stats.resent += 1
                continue
            if isinstance(data, dict) and _is_duplicate(data):
                found = await self.get_order(signed.order_hash)
                return _recovered(signed.order_hash, found)
            return data  # type: ignore[no-any-return]
        raise ResponseLost(0, f"order {signed.order_hash}: no answer after {self.retry.attempts} attempts")

    async def _lookup_after_loss(self, order_hash: str, attempt: int) -> dict[str, Any] | None:
        await self.sleep(min(self.retry.backoff_base * (2**attempt), self.retry.backoff_max))
        found = await self.get_order(order_hash)
        if found is not None:
            self.stats.recovered_by_lookup += 1
            return _recovered(order_hash, found)
        return None

    async def post_orders(self, orders: Sequence[tuple[SignedOrder, str, bool]]) -> list[dict[str, Any]]:
        """POST /orders in chunks of ≤ 15; one result per order, in order. Same loss rule."""
        assert self.creds is not None
        results: list[dict[str, Any]] = []
        for i in range(0, len(orders), MAX_BATCH):
            chunk = list(orders[i : i + MAX_BATCH])
            results.extend(await self._post_chunk(chunk))
        return results

    async def _post_chunk(self, chunk: list[tuple[SignedOrder, str, bool]]) -> list[dict[str, Any]]:
        assert self.creds is not None
        owner = self.creds.api_key
        done: dict[str, dict[str, Any]] = {}
        pending = chunk
        for attempt in range(self.retry.attempts):
            body = dumps([order_payload(s, owner, t, post_only=p) for s, t, p in pending])
            try:
                data = await self.request("POST", "/orders", body=body, idempotent=False, cost=len(pending))
            except (ResponseLost, ClobError) as exc:
                if isinstance(exc, ClobUnavailable) or (not isinstance(exc, ResponseLost) and exc.status < 500):
                    raise
                await self.sleep(min(self.retry.backoff_base * (2**attempt), self.retry.backoff_max))
                still = []
                for s, t, p in pending:
                    found = await self.get_order(s.order_hash)
                    if found is not None:
                        self.stats.recovered_by_lookup += 1
                        done[s.order_hash] = _recovered(s.order_hash, found)
                    else:
                        still.append((s, t, p))
                pending = still
                if not pending:
                    break
                self.stats.resent += 1
                continue
            if not isinstance(data, list) or len(data) != len(pending):
                raise ClobError(0, f"POST /orders answered {len(data) if isinstance(data, list) else 'no list'} results for {len(pending)} orders")
            for (s, _t, _p), res in zip(pending, data, strict=True):
                if isinstance(res, dict) and _is_duplicate(res):
                    res = _recovered(s.order_hash, await self.get_order(s.order_hash))
                done[s.order_hash] = res
            pending = []
            break
        for s, _t, _p in pending:
            done[s.order_hash] = {"success": False, "orderID": "", "errorMsg": "no answer from the venue", "lost": True}
        return [done[s.order_hash] for s, _t, _p in chunk]

    async def cancel(self, order_id: str) -> dict[str, Any]:
        return await self._cancel("DELETE", "/order", dumps({"orderID": order_id}), 1)  # type: ignore[no-any-return]

    async def cancel_orders(self, order_ids: Iterable[str]) -> dict[str, Any]:
        ids = list(order_ids)
        out: dict[str, Any] = {"canceled": [], "not_canceled": {}}
        for i in range(0, len(ids), MAX_CANCEL_IDS):
            part = ids[i : i + MAX_CANCEL_IDS]
            res = await self._cancel("DELETE", "/orders", dumps(part), len(part))
            out["canceled"] += list(res.get("canceled") or [])
            out["not_canceled"].update(res.get("not_canceled") or {})
        return out

    async def cancel_all(self) -> dict[str, Any]:
        return await self._cancel("DELETE", "/cancel-all", None, 1)  # type: ignore[no-any-return]

    async def cancel_market(self, market: str | None = None, asset_id: str | None = None) -> dict[str, Any]:
        payload: dict[str, str] = {}
        if market:
            payload["market"] = market
        if asset_id:
            payload["asset_id"] = asset_id
        return await self._cancel("DELETE", "/cancel-market-orders", dumps(payload), 1)  # type: ignore[no-any-return]

    async def _cancel(self, method: str, path: str, body: bytes | None, cost: int) -> Any:
        # cancels are idempotent: a repeat answers "already canceled" in not_canceled
        data = await self.request(method, path, body=body, cost=cost)
        return data if isinstance(data, dict) else {"canceled": [], "not_canceled": {}}

    async def _paged(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor = ""
        for _ in range(10_000):
            q = {k: v for k, v in params.items() if v is not None}
            if cursor:
                q["next_cursor"] = cursor
            data = await self.request("GET", path, params=q)
            if isinstance(data, list):  # some deployments answer a bare list
                out.extend(data)
                break
            out.extend(data.get("data") or [])
            cursor = data.get("next_cursor") or END_CURSOR
            if cursor == END_CURSOR:
                break
        return out

    async def open_orders(self, market: str | None = None, asset_id: str | None = None) -> list[dict[str, Any]]:
        return await self._paged("/data/orders", {"market": market, "asset_id": asset_id})

    async def trades(
        self, market: str | None = None, asset_id: str | None = None, after: int | None = None, maker_address: str | None = None
    ) -> list[dict[str, Any]]:
        return await self._paged(
            "/data/trades", {"market": market, "asset_id": asset_id, "after": after, "maker_address": maker_address}
        )

    async def balance_allowance(self, asset_type: str = "COLLATERAL", token_id: str | None = None, signature_type: int = 0) -> dict[str, Any]:
        params: dict[str, Any] = {"asset_type": asset_type, "signature_type": signature_type}
        if token_id:
            params["token_id"] = token_id
        data = await self.request("GET", "/balance-allowance", params=params)
        return data if isinstance(data, dict) else {}

    async def update_balance_allowance(self, asset_type: str = "COLLATERAL", token_id: str | None = None, signature_type: int = 0) -> None:
        params: dict[str, Any] = {"asset_type": asset_type, "signature_type": signature_type}
        if token_id:
            params["token_id"] = token_id
        await self.request("GET", "/balance-allowance/update", params=params)

    async def heartbeat(self, heartbeat_id: str = "") -> str:
        """POST /v1/heartbeats; a 400 carrying the right id is retried once with it (§3.9)."""
        for _ in range(2):
            try:
                data = await self.request("POST", "/v1/heartbeats", body=dumps({"heartbeat_id": heartbeat_id}))
            except ClobError as exc:
                body = getattr(exc, "body", None)
                if exc.status == 400 and isinstance(body, dict) and body.get("heartbeat_id") is not None:
                    heartbeat_id = str(body["heartbeat_id"])
                    continue
                raise
            if isinstance(data, dict):
                return str(data.get("heartbeat_id", heartbeat_id))
            return heartbeat_id
        return heartbeat_id


def _is_duplicate(res: dict[str, Any]) -> bool:
    msg = str(res.get("errorMsg") or res.get("error") or "")
    return not res.get("success") and ("Duplicated" in msg or "DUPLICATED" in msg)


def _recovered(order_hash: str, found: dict[str, Any] | None) -> dict[str, Any]:
    status = str((found or {}).get("status") or "live").lower().removeprefix("order_status_")
    return {"success": True, "orderID": order_hash, "status": status, "errorMsg": "", "recovered": True, "order": found}


async def gather_limited(coros: Iterable[Awaitable[Any]], limit: int = 8) -> list[Any]:
    sem = asyncio.Semaphore(limit)

    async def one(c: Awaitable[Any]) -> Any:
        async with sem:
            return await c

    return list(await asyncio.gather(*(one(c) for c in coros)))


def loads(data: bytes | str) -> Any:
    return json.loads(data)
