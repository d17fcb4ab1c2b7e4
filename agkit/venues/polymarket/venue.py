"""The live Polymarket venue of `agkit exec --venue polymarket` (agkit/exec/venue.py).

Without `--live` (the default) every order is validated, signed and printed on stderr
as the exact POST /order body, and reported `order_rejected` with reason "dry run":
nothing is sent, nothing is pretended to rest. With `--live`:

- start: derive API credentials if none are configured (L1), then reconcile with the
  journal (agkit/exec/journal.py: what this bot sent and reported before a restart):
  open orders this run did not place are reported `Restored` (id = the venue's order id,
  the fields from the journal or the venue's payload); the trades of journaled orders
  that were never reported are reported `Filled`, and journaled orders gone from the
  venue `Canceled`/`Expired`. Open orders the journal does not know (placed by another
  tool) are restored with the size already matched; their earlier trades are not ours.
- submit: the local gate (tick, lot, minimum, expiry, post-only) rejects with the
  venue's wording before signing; a market order (`amount`, FOK/FAK) gets its worst
  price from the latest book exec has seen, as the official SDKs compute it (FOK
  without the depth: "no match", nothing is sent), never worse than the record's price; orders arriving together go out as one POST /orders
  (≤ 15). The order hash is known before sending, so a lost reply is resolved by looking
  the order up, never by sending a second order (client.py). Fills that arrive on the
  user channel before the HTTP answer wait for the acceptance.
- user channel: trade events become `Filled` (pending) and then `Settled` confirmed or
  failed (the OMS reverses a failed fill in the portfolio and says so); CANCELLATION
  events become `Canceled`. After every reconnect the channel reconciles over REST
  before any new order leaves.
- heartbeat: POST /v1/heartbeats every 5 s while orders rest (the venue cancels them
  all if we die). 503 modes: post-only / cancel-only are remembered for their
  Retry-After and refused locally meanwhile.
- stop: in-flight requests finish; resting orders are left to the heartbeat switch
  (or cancelled with AGKIT_CANCEL_ON_EXIT=1).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar

from agkit.errors import ConfigError
from agkit.exec.journal import (
    Journal,
    JournaledOrder,
    default_path,
    done_entry,
    fill_entry,
    order_entry,
)
from agkit.exec.venue import (
    Accepted,
    Canceled,
    CancelRejected,
    Expired,
    Filled,
    OpenOrder,
    OrderRequest,
    Rejected,
    Restored,
    Settled,
    Venue,
    VenueEvent,
)
from agkit.venues.polymarket import amounts as am
from agkit.venues.polymarket.wire import MAX_BATCH, norm_status, order_payload

if TYPE_CHECKING:
    from agkit.venues.polymarket.client import ClobClient
    from agkit.venues.polymarket.credentials import VenueConfig
    from agkit.venues.polymarket.orders import OrderBuilder
    from agkit.venues.polymarket.signing import SignedOrder
    from agkit.venues.polymarket.user_ws import UserChannel

_TIFS: dict[str, Any] = {"GTC": "GTC", "GTD": "GTD", "FOK": "FOK", "FAK": "FAK"}
GTD_MIN_SECONDS = 60  # the venue's "security threshold"
_FINAL = {"CONFIRMED": "confirmed", "FAILED": "failed"}
TRADES_SLACK_S = 120  # read trades from a little before our oldest order (clock skew)
DRY_RUN_REASON = "dry run: order signed, not sent (run with --live to send)"


@dataclass
class _Entry:
    req: OrderRequest
    signed: SignedOrder | None = None
    acked: bool = False
    terminal: bool = False  # rejected, canceled, filled completely
    cancel_requested: bool = False
    filled: Decimal = Decimal(0)
    held: list[VenueEvent] = field(default_factory=list)  # fills that beat the acceptance
    done: asyncio.Future[None] | None = None  # resolved once Accepted/Rejected was reported
    restored_id: str | None = None  # the venue's id of an order found by reconciliation
    trades: set[str] | None = None  # a matched market BUY's trades: it ends once all are reported
    sent: bool = False  # handed to the HTTP client
    since: int = 0  # unix s when sent or restored: its trades are not older

    @property
    def hash(self) -> str | None:
        return self.signed.order_hash if self.signed else self.restored_id


def _ts_us(value: Any, default: int) -> int:
    """A venue timestamp (ms or s, number or text) as µs."""
    try:
        v = int(float(value))
    except (TypeError, ValueError):
        return default
    if v <= 0:
        return default
    if v < 10**11:  # seconds
        return v * 1_000_000
    if v < 10**14:  # milliseconds
        return v * 1000
    return v


class PolymarketVenue(Venue):
    name: ClassVar[str] = "polymarket"
    live: ClassVar[bool] = True  # a real venue; this instance sends only with live=True
    amount_orders: ClassVar[bool] = True

    def __init__(
        self,
        live: bool = False,
        *,
        config: VenueConfig | None = None,
        host: str | None = None,
        ws_url: str | None = None,
        client: ClobClient | None = None,
        tier: str | None = "standard",
        heartbeat_interval: float = 5.0,
        dry_run_out: IO[str] | None = None,
        cancel_on_stop: bool | None = None,
        stop_timeout: float = 10.0,
        ws_backoff: float = 0.5,
        journal: Path | str | None = None,
    ) -> None:
        from agkit.venues.polymarket import credentials

        self.sending = live
        self.config = config or credentials.load(host, ws_url)
        self.tier = tier
        self.heartbeat_interval = heartbeat_interval
        self.dry_run_out = dry_run_out
        self.cancel_on_stop = (
            os.environ.get("AGKIT_CANCEL_ON_EXIT", "") not in ("", "0") if cancel_on_stop is None else cancel_on_stop
        )
        self.stop_timeout = stop_timeout
        self.ws_backoff = ws_backoff
        self.journal_path = journal  # "auto": one per host and funder under the XDG state dir
        self.journal: Journal | None = None
        self._client = client
        self.builder: OrderBuilder | None = None
        self.channel: UserChannel | None = None
        self._orders: dict[str, _Entry] = {}
        self._by_hash: dict[str, str] = {}
        self._fills: dict[tuple[str, str], str] = {}  # (client id, trade id) -> settlement reported
        self._ignored: set[tuple[str, str]] = set()  # fills from before a restored order was ours
        self._prior: set[tuple[str, str]] = set()  # fills reported before a restart (from the journal)
        self._ticks: dict[str, Any] = {}
        self._mins: dict[str, Any] = {}
        self._neg: dict[str, bool] = {}
        self._books: dict[str, dict[str, Any]] = {}  # asset -> latest book record (market orders)
        self._lookups: dict[tuple[str, str], asyncio.Future[Any]] = {}
        self._mode: tuple[str, str, float] | None = None  # (mode, venue message, until monotonic)
        self._queue: list[_Entry] = []
        self._flush_scheduled = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ready: asyncio.Event | None = None
        self._hb_id = ""
        self.heartbeats = 0
        self.reconciliations = 0

    def __repr__(self) -> str:
        return f"PolymarketVenue(live={self.sending}, host={self.config.host!r})"

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> Awaitable[None]:
        return self._start()

    async def _start(self) -> None:
        from agkit.venues.polymarket.client import ClobClient, RateLimiter
        from agkit.venues.polymarket.orders import OrderBuilder

        self._ready = asyncio.Event()
        cfg = self.config
        signer = cfg.signer()
        try:
            self.builder = OrderBuilder(signer, cfg.chain_id, cfg.signature_type, cfg.funder)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if self._client is None:
            self._client = ClobClient(
                cfg.host, signer=signer, creds=cfg.creds, chain_id=cfg.chain_id, limiter=RateLimiter(tier=self.tier), log=self.log
            )
        if not self.sending:
            self.log(f"agkit exec: polymarket DRY RUN as {signer.address}: orders are signed and printed, never sent (--live sends)")
            self._ready.set()
            return
        if self._client.creds is None:
            self.log("agkit exec: no API credentials configured; deriving them with the L1 signature")
            self._client.creds = await self._client.create_or_derive_api_key()
        if self.journal_path is not None:
            path = Path(self.journal_path)
            if self.journal_path == "auto":
                path = default_path(self.name, cfg.host, cfg.funder or signer.address)
            self.journal = Journal(path, self.log)
            self.log(f"agkit exec: journal {path} ({len(self.journal.orders)} order(s) to reconcile)")
        await self._reconcile(first=True)
        self._ready.set()
        self.log(f"agkit exec: polymarket LIVE as {signer.address} on {cfg.host}")

    def run(self) -> Awaitable[None] | None:
        if not self.sending:
            return None
        return self._run()

    async def _run(self) -> None:
        from agkit.venues.polymarket.user_ws import UserChannel

        client = self._require_client()
        assert client.creds is not None
        self.channel = UserChannel(
            self.config.ws_url,
            client.creds,
            self._on_ws_event,
            on_connect=self._on_ws_connect,
            on_disconnect=self._on_ws_disconnect,
            log=self.log,
            backoff_base=self.ws_backoff,
        )
        await asyncio.gather(self.channel.run(), self._heartbeat_loop())

    def stop(self) -> Awaitable[None]:
        return self._stop()

    async def _stop(self) -> None:
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=self.stop_timeout)
        for e in list(self._orders.values()):
            if e.done is not None and not e.done.done():  # never answered: say so, once
                if e.sent:
                    self._reject(e, "outcome unknown when exec stopped (the venue did not answer); `agkit orders` shows it if it rests")
                else:
                    self._reject(e, "not sent: exec stopped while the order waited (user channel down or market parameters unknown)")
        for task in self._tasks:
            task.cancel()
        client = self._client
        if client is not None and self.sending and self._ready is not None:
            # fills that matched but whose events have not arrived yet: read them over REST
            after = self._trades_after()
            try:
                for t in await client.trades(after=after) if after is not None else []:
                    self._on_trade(t)
            except Exception as exc:
                self.log(f"agkit exec: final trade check failed: {exc}")
        if client is not None and self.sending and self.cancel_on_stop and self._resting():
            try:
                res = await client.cancel_all()
                await self._apply_cancel_result(res)
            except Exception as exc:
                self.log(f"agkit exec: cancel-all at exit failed: {exc}")
        if self.channel is not None:
            await self.channel.close()
        if client is not None:
            await client.aclose()
        if self.journal is not None:
            self.journal.close()
        resting = self._resting()
        if resting and self.sending:
            self.log(f"agkit exec: {len(resting)} order(s) left resting at the venue (AGKIT_CANCEL_ON_EXIT=1 cancels them)")

    # --- market data ------------------------------------------------------------------------

    def on_market(self, rec: dict[str, Any]) -> None:
        rtype = rec.get("type")
        asset = rec.get("asset")
        if not isinstance(asset, str):
            return
        if rtype == "book":
            self._books[asset] = rec
            if rec.get("tick_size"):
                self._ticks[asset] = rec["tick_size"]
            if rec.get("min_size") is not None:
                self._mins[asset] = rec["min_size"]
            if isinstance(rec.get("neg_risk"), bool):
                self._neg[asset] = rec["neg_risk"]
        elif rtype == "tick_size_changed" and rec.get("new_tick_size"):
            self._ticks[asset] = rec["new_tick_size"]

    # --- orders -----------------------------------------------------------------------------

    def submit(self, order: OrderRequest) -> None:
        loop = asyncio.get_running_loop()
        entry = _Entry(order, done=loop.create_future())
        self._orders[order.id] = entry
        self._spawn(self._prepare(entry))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log(f"agkit exec: polymarket venue task failed: {task.exception()!r}")

    def _now(self) -> int:
        return self.clock.now_us()

    def _emit(self, ev: VenueEvent) -> None:
        if self.journal is not None:  # on disk before the record leaves: a restart never repeats it
            if isinstance(ev, Accepted):
                # only a hint (the order itself is on disk since before the POST): written, and
                # synced with the next entry rather than costing an fsync per acceptance
                self.journal.append(self._journal_entries(ev))
            else:
                self.journal.write(self._journal_entries(ev))
        self.report(ev)

    def _journal_entries(self, ev: VenueEvent) -> list[dict[str, Any]]:
        assert self.journal is not None
        e = self._orders.get(ev.order.id if isinstance(ev, Restored) else ev.id)
        vid = e.hash if e is not None else None
        if e is None or vid is None or vid not in self.journal.orders:
            return []
        if isinstance(ev, Accepted):
            return [{"k": "ack", "v": vid}]
        if isinstance(ev, Filled):
            entries = [fill_entry(vid, ev.trade_id, am.dec(ev.size), ev.settlement)]
            return [*entries, done_entry(vid)] if e.terminal else entries
        if isinstance(ev, Settled):
            size = self.journal.orders[vid].fills.get(ev.trade_id, (Decimal(0), ""))[0]
            return [fill_entry(vid, ev.trade_id, size, ev.settlement)]
        if isinstance(ev, Canceled | Expired | Rejected):
            return [done_entry(vid)]
        return []

    def _reject(self, entry: _Entry, reason: str) -> None:
        if entry.terminal and entry.done is not None and entry.done.done():
            return
        entry.terminal = True
        self._emit(Rejected(entry.req.id, reason, self._now(), entry.hash))
        if entry.done is not None and not entry.done.done():
            entry.done.set_result(None)

    def _accept(self, entry: _Entry) -> None:
        if entry.acked:
            return
        assert entry.hash is not None
        entry.acked = True
        self._emit(Accepted(entry.req.id, entry.hash, self._now()))
        if entry.done is not None and not entry.done.done():
            entry.done.set_result(None)
        held, entry.held = entry.held, []
        for ev in held:
            self._emit_fill_event(entry, ev)

    async def _market_params(self, req: OrderRequest) -> tuple[Any, bool, Any]:
        client = self._require_client()
        tick = req.extra.get("tick_size") or self._ticks.get(req.asset)
        if tick is None:
            tick = await self._lookup("tick", req.asset, client.tick_size)
            self._ticks.setdefault(req.asset, tick)
        neg = req.neg_risk if req.neg_risk is not None else self._neg.get(req.asset)
        if neg is None:
            neg = await self._lookup("neg", req.asset, client.neg_risk)
            self._neg[req.asset] = bool(neg)
        min_size = req.extra.get("min_size", self._mins.get(req.asset))
        return tick, bool(neg), min_size

    async def _lookup(self, kind: str, asset: str, fetch: Any) -> Any:
        """One request per (kind, asset) however many orders wait for it."""
        key = (kind, asset)
        fut = self._lookups.get(key)
        if fut is None:
            fut = self._lookups[key] = asyncio.ensure_future(fetch(asset))
            fut.add_done_callback(lambda _f: self._lookups.pop(key, None))
        return await asyncio.shield(fut)

    async def _prepare(self, entry: _Entry) -> None:
        req = entry.req
        assert self._ready is not None and self.builder is not None
        await self._ready.wait()  # reconciliation first, after start and every reconnect
        try:
            tick, neg, min_size = await self._market_params(req)
        except Exception as exc:
            self._reject(entry, f"market parameters unknown for asset {req.asset} (tick size / neg-risk): {exc}")
            return
        if req.post_only and req.tif in ("FOK", "FAK"):
            self._reject(entry, "INVALID_POST_ONLY_ORDER_TYPE: post-only is allowed for GTC and GTD orders only")
            return
        expiration = 0
        if req.tif == "GTD":
            if req.expire_at is None:
                self._reject(entry, "invalid expiration: a GTD order needs expire_at")
                return
            expiration = req.expire_at // 1_000_000
            if expiration < time.time() + GTD_MIN_SECONDS:
                self._reject(entry, f"invalid expiration: a GTD order must expire at least {GTD_MIN_SECONDS} s from now")
                return
        blocked = self._mode_blocks(req)
        if blocked:
            self._reject(entry, blocked)
            return
        # Protocol V2 markets (Gamma version "v2") trade on ExchangeV3, domain "3"
        domain = "3" if str(req.extra.get("market_version", "")).lower() == "v2" else None
        try:
            if req.amount is not None:
                entry.signed = self._build_market(req, tick, neg, min_size, domain)
            else:
                entry.signed = self.builder.build(
                    req.asset, req.side.upper(), req.price, req.size, tick,
                    neg_risk=neg, min_size=min_size, expiration=expiration, domain_version=domain,
                )
        except am.AmountError as exc:
            self._reject(entry, str(exc))
            return
        self._by_hash[entry.signed.order_hash] = req.id
        if not self.sending:
            self._print_dry_run(entry)
            self._reject(entry, DRY_RUN_REASON)
            return
        self._queue.append(entry)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _build_market(self, req: OrderRequest, tick: Any, neg: bool, min_size: Any, domain: str | None) -> SignedOrder:
        """A market order, its worst price from the latest book as the official SDKs compute
        it (walk the other side until `amount` is covered; FAK short of depth: the worst
        level), never worse than the record's price."""
        assert self.builder is not None and req.amount is not None
        buy = req.side == "buy"
        book = self._books.get(req.asset)
        levels = (book.get("asks") if buy else book.get("bids")) if book else None
        try:
            worst = am.market_price("BUY" if buy else "SELL", levels or [], req.amount, req.tif)
        except (am.AmountError, TypeError, IndexError, KeyError) as exc:
            raise am.AmountError(f"market order not built: {exc}") from None
        price = min(worst, req.price) if buy else max(worst, req.price)
        return self.builder.build_market(
            req.asset, req.side.upper(), req.amount, price, tick,
            max_shares=req.size if buy else None, neg_risk=neg, min_size=min_size, domain_version=domain,
        )

    def _print_dry_run(self, entry: _Entry) -> None:
        assert entry.signed is not None
        client = self._client
        owner = "<POLYMARKET_API_KEY>" if client is None or client.creds is None else client.creds.api_key[:8] + "…"
        body = order_payload(entry.signed, owner, entry.req.tif, post_only=entry.req.post_only)
        line = json.dumps({"dry_run": True, "id": entry.req.id, "method": "POST", "path": "/order", "orderID": entry.signed.order_hash, "body": body}, separators=(",", ":"))
        out = self.dry_run_out or sys.stderr
        out.write(f"agkit exec: dry run: {line}\n")
        out.flush()

    def _mode_blocks(self, req: OrderRequest) -> str | None:
        if self._mode is None:
            return None
        mode, message, until = self._mode
        if time.monotonic() >= until:
            self._mode = None
            return None
        if mode == "post_only" and req.post_only:
            return None
        return message

    def _flush(self) -> None:
        self._flush_scheduled = False
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            now = int(time.time())
            for e in batch:
                e.sent = True
                e.since = now
            synced: asyncio.Future[None] | None = None
            if self.journal is not None:
                # written before the POST (a killed exec leaves it in the file); the fsync runs
                # beside the POST, and the answer waits for it before any record leaves
                self.journal.append([order_entry(e.hash or "", e.req.id, _req_fields(e.req), now) for e in batch])
                synced = asyncio.get_running_loop().run_in_executor(None, self.journal.sync)
            self._spawn(self._send(batch, synced))

    async def _post(self, batch: list[_Entry]) -> list[dict[str, Any]]:
        client = self._require_client()
        if len(batch) == 1:
            e = batch[0]
            assert e.signed is not None
            return [await client.post_order(e.signed, e.req.tif, post_only=e.req.post_only)]
        return await client.post_orders([(e.signed, e.req.tif, e.req.post_only) for e in batch if e.signed is not None])

    async def _send(self, batch: list[_Entry], synced: asyncio.Future[None] | None) -> None:
        from agkit.venues.polymarket.client import ClobError, ClobUnavailable, ResponseLost

        try:
            if synced is None:
                results = await self._post(batch)
            else:
                results, _ = await asyncio.gather(self._post(batch), synced)
        except ClobUnavailable as exc:
            self._enter_mode(exc)
            for e in batch:
                self._reject(e, exc.message)
            return
        except ResponseLost as exc:
            for e in batch:
                self._spawn(self._resolve_unknown(e, str(exc)))
            return
        except ClobError as exc:
            for e in batch:
                self._reject(e, exc.message)
            return
        for e, res in zip(batch, results, strict=True):
            self._apply_post_result(e, res)

    def _enter_mode(self, exc: Any) -> None:
        wait = exc.retry_after if exc.retry_after is not None else 60.0
        self._mode = (exc.mode, exc.message, time.monotonic() + float(wait))
        self.log(f"agkit exec: the venue is in {exc.mode.replace('_', '-')} mode for {wait:g} s: {exc.message}")

    def _apply_post_result(self, e: _Entry, res: dict[str, Any]) -> None:
        if res.get("lost"):
            self._spawn(self._resolve_unknown(e, str(res.get("errorMsg"))))
            return
        if not res.get("success"):
            msg = str(res.get("errorMsg") or res.get("error") or "rejected by the venue")
            if "post-only mode" in msg or "cancel-only" in msg:
                self._mode = ("post_only" if "post-only" in msg else "cancel_only", msg, time.monotonic() + 60.0)
            self._reject(e, msg)
            return
        got = str(res.get("orderID") or "")
        if e.hash and got and got.lower() != e.hash.lower():
            self.log(f"agkit exec: venue orderID {got} differs from the signed hash {e.hash}")
        self._accept(e)
        status = norm_status(res.get("status"))
        if status == "UNMATCHED" and e.req.tif in ("FAK", "FOK") and not e.terminal:
            e.terminal = True
            self._emit(Canceled(e.req.id, self._now(), "unmatched: no liquidity within the limit price"))
        elif status == "MATCHED" and e.req.amount is not None and e.req.side == "buy":
            # its shares are not known in advance (the venue spends the amount): the
            # answer's trade ids say when every fill is in
            e.trades = {str(t) for t in res.get("tradeIDs") or []}
            self._end_spent(e)

    def _end_spent(self, e: _Entry) -> None:
        if e.trades is None or e.terminal or not e.acked:
            return
        if all((e.req.id, t) in self._fills for t in e.trades):
            e.terminal = True
            self._emit(Canceled(e.req.id, self._now(), "market order: amount spent"))

    async def _resolve_unknown(self, e: _Entry, why: str) -> None:
        """The venue may or may not have the order: look it up until we know."""
        client = self._require_client()
        assert e.hash is not None
        for attempt in range(8):
            await asyncio.sleep(min(0.25 * 2**attempt, 10.0))
            try:
                found = await client.get_order(e.hash)
            except Exception:
                continue
            if found is not None:
                self._accept(e)
                if e.req.amount is not None and e.req.side == "buy" and norm_status(found.get("status")) == "MATCHED":
                    e.trades = {str(t) for t in found.get("associate_trades") or []}
                    self._end_spent(e)
                return
            self._reject(e, f"not received by the venue ({why})")
            return
        self._reject(e, f"outcome unknown after repeated lookups ({why}); reconciliation will restore it if it exists")

    # --- cancels ------------------------------------------------------------------------------

    def cancel(self, order: OpenOrder) -> None:
        self.cancel_many([order])

    def cancel_many(self, orders: Sequence[OpenOrder]) -> None:
        entries = []
        for o in orders:
            e = self._orders.get(o.request.id)
            if e is None:
                self._emit(CancelRejected(o.request.id, "Order not found", self._now()))
                continue
            e.cancel_requested = True
            entries.append(e)
        if entries:
            self._spawn(self._cancel(entries))

    async def _cancel(self, entries: list[_Entry]) -> None:
        client = self._require_client()
        for e in entries:
            if e.done is not None and not e.done.done():
                await e.done  # the answer to the submit first: the hash must be at the venue
        ids: dict[str, _Entry] = {}
        for e in entries:
            if e.terminal or not e.acked or e.hash is None:
                if not e.terminal:
                    self._emit(CancelRejected(e.req.id, "order is not open at the venue", self._now()))
                continue
            ids[e.hash] = e
        if not ids:
            return
        try:
            if len(ids) == 1:
                res = await client.cancel(next(iter(ids)))
            else:
                res = await client.cancel_orders(list(ids))
        except Exception as exc:
            for e in ids.values():
                if not e.terminal:
                    self._emit(CancelRejected(e.req.id, f"cancel failed: {exc}", self._now()))
            return
        await self._apply_cancel_result(res)

    async def _apply_cancel_result(self, res: dict[str, Any]) -> None:
        for h in res.get("canceled") or []:
            cid = self._by_hash.get(str(h))
            if cid is not None:
                self._mark_canceled(self._orders[cid], None)
        for h, reason in (res.get("not_canceled") or {}).items():
            cid = self._by_hash.get(str(h))
            if cid is None or self._orders[cid].terminal:
                continue
            e = self._orders[cid]
            if "cancel" in str(reason).lower():
                # "already canceled or matched": after a lost reply our own first attempt
                # may have done it; the order's state at the venue decides
                try:
                    found = await self._require_client().get_order(str(h))
                except Exception:
                    found = None
                status = norm_status((found or {}).get("status"))
                if status == "CANCELED":
                    self._mark_canceled(e, "canceled at the venue")
                    continue
                if status == "MATCHED":
                    reason = "order already filled"
            if not e.terminal:
                self._emit(CancelRejected(cid, str(reason), self._now()))

    def _mark_canceled(self, e: _Entry, reason: str | None, ts: int | None = None) -> None:
        if e.terminal or not e.acked:
            return
        e.terminal = True
        self._emit(Canceled(e.req.id, ts or self._now(), None if e.cancel_requested else reason))

    # --- user channel ----------------------------------------------------------------------------

    def _on_ws_disconnect(self, reason: str) -> None:
        if self._ready is not None:
            self._ready.clear()  # no new order until reconciled

    async def _on_ws_connect(self) -> None:
        # every (re)connect, the first one included (it closes the gap since start):
        # read open orders and recent trades over REST before any new order leaves
        await self._reconcile(first=False)
        if self._ready is not None:
            self._ready.set()

    def _on_ws_event(self, ev: dict[str, Any]) -> None:
        kind = ev.get("event_type") or ("trade" if ev.get("type") == "TRADE" else "order" if ev.get("type") in ("PLACEMENT", "UPDATE", "CANCELLATION") else None)
        if kind == "trade":
            self._on_trade(ev)
        elif kind == "order":
            self._on_order_event(ev)

    def _on_order_event(self, ev: dict[str, Any]) -> None:
        cid = self._by_hash.get(str(ev.get("id")))
        if cid is None:
            return
        e = self._orders[cid]
        status_raw = str(ev.get("status") or "")
        if ev.get("type") == "CANCELLATION" or norm_status(status_raw) == "CANCELED":
            reason = status_raw.split("_", 1)[1] if status_raw.upper().startswith("CANCELED_") else "canceled by the venue"
            ts = _ts_us(ev.get("timestamp"), self._now())
            if not e.acked:
                # beat the HTTP answer (a FAK remainder): kept until the acceptance is out
                if not any(isinstance(x, Canceled) for x in e.held):
                    e.held.append(Canceled(e.req.id, ts, None if e.cancel_requested else reason))
                return
            exp = e.signed.order.expiration if e.signed else 0
            if e.req.tif == "GTD" and exp and not e.cancel_requested and time.time() >= exp - 1 and not e.terminal:
                e.terminal = True
                self._emit(Expired(e.req.id, ts, "GTD expiration reached"))
                return
            self._mark_canceled(e, reason, ts)

    def _on_trade(self, ev: dict[str, Any]) -> None:
        status = norm_status(ev.get("status"))
        ts = _ts_us(ev.get("timestamp") or ev.get("last_update") or ev.get("match_time") or ev.get("matchtime"), self._now())
        trade_id = str(ev.get("id") or "")
        if not trade_id:
            return
        rate = _bps(ev.get("fee_rate_bps"))
        taker = self._by_hash.get(str(ev.get("taker_order_id")))
        if taker is not None:
            self._fill(taker, trade_id, status, ev.get("price"), ev.get("size"), "taker", rate, ts)
        for m in ev.get("maker_orders") or []:
            cid = self._by_hash.get(str(m.get("order_id")))
            if cid is not None:
                self._fill(cid, trade_id, status, m.get("price"), m.get("matched_amount"), "maker", 0.0, ts)
        if self.journal is not None and status in _FINAL:
            for h in _order_ids(ev):
                if h not in self._by_hash:  # an order that ended before the restart
                    self._settle_prior(h, trade_id, _FINAL[status])

    def _settle_prior(self, h: str, trade_id: str, settlement: str) -> None:
        """A fill whose pending order_filled went out before the restart settled: this OMS
        does not know that fill, so the settlement is journaled and said, not re-emitted."""
        jo = self.journal.orders.get(h) if self.journal is not None else None
        if jo is None or jo.fills.get(trade_id, (Decimal(0), ""))[1] != "pending":
            return
        self.log(f"agkit exec: trade {trade_id} of order {jo.client_id} (reported before the restart) is now {settlement}")
        assert self.journal is not None
        self.journal.write([fill_entry(h, trade_id, jo.fills[trade_id][0], settlement)])

    def _fill(self, cid: str, trade_id: str, status: str, price: Any, size: Any, liquidity: str, rate: float, ts: int) -> None:
        key = (cid, trade_id)
        if key in self._ignored:
            return
        e = self._orders[cid]
        reported = self._fills.get(key)
        settlement = _FINAL.get(status, "pending")
        if reported is None:
            if settlement == "failed":
                self.log(f"agkit exec: trade {trade_id} of order {cid} failed before we saw it matched; nothing to reverse")
                self._fills[key] = "failed"
                return
            try:
                p, s = float(am.dec(price)), float(am.dec(size))
            except am.AmountError:
                self.log(f"agkit exec: trade {trade_id}: unreadable price/size {price!r}/{size!r}")
                return
            if s <= 0:
                return
            from agkit.portfolio import taker_fee

            fee = taker_fee(s, p, rate) if liquidity == "taker" else 0.0
            fill = Filled(cid, e.hash or "", trade_id, p, s, fee, liquidity, ts, settlement)  # type: ignore[arg-type]
            self._fills[key] = settlement
            if not e.acked:
                e.held.append(fill)
                return
            self._emit_fill_event(e, fill)
            self._end_spent(e)
            return
        if reported == "pending" and settlement != "pending":
            self._fills[key] = settlement
            if key in self._prior:
                self._settle_prior(e.hash or "", trade_id, settlement)
                return
            ev = Settled(cid, trade_id, settlement, ts)  # type: ignore[arg-type]
            if not e.acked:
                e.held.append(ev)
            else:
                self._emit(ev)

    def _emit_fill_event(self, e: _Entry, ev: VenueEvent) -> None:
        if isinstance(ev, Canceled):
            if e.terminal:
                return
            e.terminal = True
        if isinstance(ev, Filled):
            e.filled += am.dec(ev.size)
            if e.filled >= e.req.size:
                e.terminal = True
        self._emit(ev)

    # --- reconciliation ----------------------------------------------------------------------------

    async def _reconcile(self, first: bool) -> None:
        client = self._require_client()
        opened = await client.open_orders()
        open_ids = {str(o.get("id")) for o in opened}
        after = self._trades_after()
        trades = await client.trades(after=after) if after is not None else []
        trades.sort(key=lambda t: _ts_us(t.get("match_time") or t.get("last_update"), 0))
        if first and self.journal is not None:
            # what this bot sent before a restart and has not seen end: open or gone
            payloads = {str(o.get("id")): o for o in opened}
            for jo in list(self.journal.orders.values()):
                if not jo.done and jo.venue_order_id not in self._by_hash:
                    await self._restore_journaled(jo, payloads.get(jo.venue_order_id), trades)
        for o in opened:
            h = str(o.get("id"))
            if h not in self._by_hash:
                self._restore_foreign(o, trades)
        for t in trades:
            self._on_trade(t)
        for e in list(self._orders.values()):
            if e.acked and not e.terminal and e.hash and e.hash not in open_ids:
                found = await client.get_order(e.hash)
                status = norm_status((found or {}).get("status"))
                if found is None or status in ("CANCELED", "INVALID"):
                    self._end_gone(e)
        self.reconciliations += 1

    def _trades_after(self) -> int | None:
        """Trades from before our oldest order that may still trade are not ours to read."""
        since = [e.since for e in self._orders.values() if e.since and not e.terminal]
        if self.journal is not None:
            since += [jo.ts for jo in self.journal.orders.values() if not (jo.done and jo.settled())]
        return max(0, min(since) - TRADES_SLACK_S) if since else None

    def _track(self, req: OrderRequest, h: str, filled: Decimal, since: int) -> _Entry:
        e = _Entry(req, acked=True, filled=filled, restored_id=h, since=since)
        self._orders[h] = e
        self._by_hash[h] = h
        return e

    async def _restore_journaled(self, jo: JournaledOrder, payload: dict[str, Any] | None, trades: list[dict[str, Any]]) -> None:
        """An order sent before a restart: restored under its venue id with the size already
        reported, so the trades never reported become fills and nothing is counted twice."""
        h = jo.venue_order_id
        if payload is None and not jo.acked and not any(h in _order_ids(t) for t in trades):
            # gone without a trade and never reported accepted: only the venue can say whether it was there
            found = await self._require_client().get_order(h)
            if found is None:
                self.log(f"agkit exec: order {jo.client_id} ({h}) never reached the venue before the restart")
                assert self.journal is not None
                self.journal.write([done_entry(h)])
                return
        req = _request_from_journal(h, jo.req)
        e = self._track(req, h, jo.reported, jo.ts)
        for tid, (_size, settlement) in jo.fills.items():
            self._fills[(h, tid)] = settlement
            self._prior.add((h, tid))
        created = _ts_us((payload or {}).get("created_at"), jo.ts * 1_000_000)
        self.log(f"agkit exec: order {jo.client_id} restored as {h} ({jo.reported} of {req.size} reported before the restart)")
        self._emit(Restored(req, h, e.filled, created))

    def _restore_foreign(self, o: dict[str, Any], trades: list[dict[str, Any]]) -> None:
        """An open order this bot has no record of: ours from now on; what it matched
        before (size_matched, its trades) was never ours to report."""
        h = str(o.get("id"))
        req = OrderRequest(
            id=h,
            strategy="restored",
            venue="polymarket",
            market=str(o.get("market", "")),
            asset=str(o.get("asset_id", "")),
            side="buy" if str(o.get("side", "")).upper() == "BUY" else "sell",
            price=am.dec(o.get("price", "0")),
            size=am.dec(o.get("original_size", "0")),
            tif=_TIFS.get(str(o.get("order_type")), "GTC"),
        )
        filled = am.dec(o.get("size_matched") or "0")
        now = int(time.time())
        e = self._track(req, h, filled, now)
        earlier = {str(t) for t in o.get("associate_trades") or []} | {str(t.get("id")) for t in trades if h in _order_ids(t)}
        for tid in earlier:
            self._ignored.add((h, tid))
        if self.journal is not None:
            self.journal.write([order_entry(h, h, _req_fields(req), now, filled), {"k": "ack", "v": h}]
                               + [fill_entry(h, tid, Decimal(0), "ignored") for tid in sorted(earlier)])
        self._emit(Restored(req, h, e.filled, _ts_us(o.get("created_at"), self._now())))

    def _end_gone(self, e: _Entry) -> None:
        """An open order the venue no longer has, and no trade of ours filled it: it ended unseen."""
        if e.req.tif == "GTD" and e.req.expire_at is not None and self._now() >= e.req.expire_at and not e.terminal:
            e.terminal = True
            self._emit(Expired(e.req.id, self._now(), "GTD expiration reached while exec was away"))
            return
        self._mark_canceled(e, "canceled at the venue while exec was away (user channel down or exec stopped)")

    # --- heartbeat -----------------------------------------------------------------------------------

    def _resting(self) -> list[_Entry]:
        return [e for e in self._orders.values() if e.acked and not e.terminal]

    async def _heartbeat_loop(self) -> None:
        client = self._require_client()
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            if not self._resting() and not self._hb_id:
                continue  # not armed yet; once armed, beat for the whole session (a lapse
                # may cancel orders placed right after it, and the venue's arming rules are unverified)
            try:
                self._hb_id = await client.heartbeat(self._hb_id)
                self.heartbeats += 1
            except Exception as exc:
                self.log(f"agkit exec: heartbeat failed ({exc}); the venue cancels resting orders if this persists")

    def _require_client(self) -> ClobClient:
        if self._client is None:
            raise ConfigError("the polymarket venue was not started")
        return self._client


def _order_ids(trade: dict[str, Any]) -> list[str]:
    """The venue order ids a trade matched: the taker's and every maker's."""
    return [str(trade.get("taker_order_id"))] + [str(m.get("order_id")) for m in trade.get("maker_orders") or []]


def _req_fields(r: OrderRequest) -> dict[str, Any]:
    """An order's fields as the journal keeps them (exact decimals as text)."""
    d: dict[str, Any] = {
        "strategy": r.strategy, "market": r.market, "asset": r.asset, "side": r.side,
        "price": str(r.price), "size": str(r.size), "tif": r.tif,
    }
    if r.post_only:
        d["post_only"] = True
    if r.expire_at is not None:
        d["expire_at"] = r.expire_at
    if r.amount is not None:
        d["amount"] = str(r.amount)
    return d


def _request_from_journal(h: str, d: dict[str, Any]) -> OrderRequest:
    return OrderRequest(
        id=h,
        strategy=str(d.get("strategy") or "restored"),
        venue="polymarket",
        market=str(d["market"]),
        asset=str(d["asset"]),
        side="buy" if d["side"] == "buy" else "sell",
        price=Decimal(d["price"]),
        size=Decimal(d["size"]),
        tif=_TIFS.get(str(d.get("tif")), "GTC"),
        post_only=bool(d.get("post_only")),
        expire_at=d.get("expire_at"),
        amount=Decimal(d["amount"]) if d.get("amount") is not None else None,
    )


def _bps(value: Any) -> float:
    with contextlib.suppress(TypeError, ValueError):
        return float(value) / 10_000
    return 0.0
