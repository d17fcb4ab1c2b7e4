"""The paper venue: a matching simulator that does not flatter.

It matches orders against the `book` and `trade` records flowing through `agkit exec`,
in event time (the records' `ts_event`), deterministically for a given seed:

* **Latency.** An order reaches the venue `latency_us` (+ a seeded jitter) after its
  submit_order's ts_event, a cancel `cancel_latency_us` after its cancel_order (never
  before the order it cancels). Until then nothing happens to it; market records with
  an earlier ts_event go by without it.
* **Validation** as the venue does it, with its wording: price on the tick and inside
  [tick, 1 − tick], size ≥ the market's min_size, at most 2 decimals of size.
* **Marketable orders** walk the opposite side of the latest book level by level, best
  first, up to their limit (partial fills at each level's price). The feed does not
  know about paper fills, so size our fills took from a level stays taken in later
  books as long as the level shows at least that much (a level showing more offers
  the extra; one showing less, or gone, releases the difference). FOK fills entirely
  or is rejected; FAK fills what it can and the rest is canceled; GTC/GTD rest the
  remainder. A post-only order that would cross is rejected.
* **Market orders** (`amount`, FOK/FAK): a BUY spends `amount` pUSD (in whole lots, at
  most `size` shares), a SELL sells `amount` shares. When the order is built (at submit,
  before latency) its protective price is computed from the latest book as the official
  SDKs do (`agkit.venues.polymarket.amounts.market_price`; FOK without the depth is not
  built), capped by the record's price; it then walks the book like any marketable order.
* **Resting orders** join the queue behind the size displayed at their price on their
  side of the book (and behind our own earlier orders there). They fill (as makers)
  only when
  - a trade at their price, aggressor on the other side, is larger than the queue
    still ahead of them (the queue shrinks by each such trade), or
  - a trade prints *through* their price (a sell below our bid): the level was swept,
    they fill up to that trade's size, or
  - a book shows the other side at or through their price: they fill up to the size
    displayed there (less what our fills already took), at their own price.
  A book showing less size at their level than the queue ahead means orders ahead
  were canceled: the queue ahead shrinks to the displayed size.
* **Fees**: takers pay `agkit.portfolio.taker_fee(shares, price, rate, exponent)`
  (Polymarket: shares × rate × (p(1−p))^exponent), rounded to 6 decimals (USDC units);
  makers pay nothing.
* GTD orders expire at `expire_at` (event time); `market_resolved` cancels the open
  orders of that market.

Sizes are exact Decimals in lots of 0.01 share; queue arithmetic uses floats.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Sequence
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from agkit.exec.venue import (
    Accepted,
    Canceled,
    CancelRejected,
    Expired,
    Filled,
    OpenOrder,
    OrderRequest,
    Rejected,
    Venue,
    to_decimal,
)
from agkit.portfolio import taker_fee
from agkit.records import MAX_SIZE, MIN_TICK
from agkit.venues.polymarket.amounts import market_price

LOT = Decimal("0.01")
_ZERO = Decimal(0)
_NOTHING_TAKEN: dict[float, float] = {}  # read-only stand-in for an asset with nothing taken

# heap entry kinds
_ARRIVE, _CANCEL, _EXPIRE = 0, 1, 2


def lots(x: float) -> Decimal:
    """Whole lots of 0.01 share in x (rounded down), as an exact Decimal; ValueError for
    a size no book holds (over MAX_SIZE, or NaN)."""
    if x <= 0:
        return _ZERO
    if x > MAX_SIZE:
        raise ValueError(f"a size of {x!r} shares (over {MAX_SIZE:g})")
    return Decimal(math.floor(x * 100 + 1e-7)).scaleb(-2)


def _tick(tick: Any) -> Decimal:
    """A book's tick size as a Decimal; ValueError if it is not a number in [MIN_TICK, 1)."""
    if type(tick) not in (float, int) or not MIN_TICK <= tick < 1:
        raise ValueError(f"tick size {tick!r} is not a number in [{MIN_TICK:g}, 1)")
    return to_decimal(tick)


class PaperOrder:
    """An order inside the paper venue."""

    __slots__ = (
        "ahead",
        "asset",
        "buy",
        "canceled",
        "id",
        "live",
        "market",
        "price",
        "remaining",
        "request",
        "seq",
        "venue_order_id",
    )

    def __init__(self, request: OrderRequest, seq: int, venue_order_id: str) -> None:
        self.request = request
        self.id = request.id
        self.asset = request.asset
        self.market = request.market
        self.buy = request.side == "buy"
        self.price = float(request.price)
        self.remaining = request.size
        self.seq = seq
        self.venue_order_id = venue_order_id
        self.ahead = 0.0  # market size queued ahead of us at our price
        self.live = False  # arrived and resting
        self.canceled = False  # a cancel is on its way (or done)


class PaperVenue(Venue):
    """Fills against the book and trade records flowing through exec (see module doc)."""

    name = "paper"
    live = False
    amount_orders = True

    def __init__(
        self,
        *,
        latency_us: int = 0,
        cancel_latency_us: int | None = None,
        jitter_us: int = 0,
        fee_rate: float = 0.0,
        fee_exponent: float = 1.0,
        seed: int = 0,
    ) -> None:
        if latency_us < 0 or jitter_us < 0 or (cancel_latency_us or 0) < 0:
            raise ValueError("latencies must not be negative")
        self.latency_us = latency_us
        self.cancel_latency_us = latency_us if cancel_latency_us is None else cancel_latency_us
        self.jitter_us = jitter_us
        self.fee_rate = fee_rate
        self.fee_exponent = fee_exponent
        self.rng = random.Random(seed)
        self.books: dict[str, dict[str, Any]] = {}  # asset -> latest book record
        self.ticks: dict[str, Decimal] = {}  # asset -> tick size (from book / tick_size_changed)
        self._tick_f: dict[str, float] = {}  # the float behind ticks[asset]
        self.min_sizes: dict[str, float] = {}
        # liquidity our fills took from displayed levels: asset -> price -> size, per side
        # (an asset is listed only while something is taken: most books skip the check)
        self.taken_bids: dict[str, dict[float, float]] = {}
        self.taken_asks: dict[str, dict[float, float]] = {}
        self.orders: dict[str, PaperOrder] = {}  # not yet done (pending or resting)
        self.resting: dict[str, list[PaperOrder]] = {}  # asset -> live orders, by seq
        self.heap: list[tuple[int, int, int, str]] = []  # (due, seq, kind, order id)
        self.now = 0
        self._seq = 0
        self._trades = 0

    # --- interface ------------------------------------------------------------------------

    def submit(self, order: OrderRequest) -> None:
        self._seq += 1
        voi = f"0x{self.rng.getrandbits(256):064x}"
        po = PaperOrder(order, self._seq, voi)
        delay = self.latency_us + (self.rng.randint(0, self.jitter_us) if self.jitter_us else 0)
        t = max(order.ts_event, self.now)
        if order.amount is not None:
            refused = self._protect(po)
            if refused is not None:
                self.report(Rejected(order.id, refused, t))
                return
        self.orders[order.id] = po
        if delay == 0:
            self._arrive(po, t)
        else:
            heapq.heappush(self.heap, (t + delay, po.seq, _ARRIVE, order.id))

    def cancel(self, order: OpenOrder) -> None:
        oid = order.request.id
        po = self.orders.get(oid)
        t = self.now
        if po is None:  # done meanwhile (filled): the venue no longer knows it
            self.report(CancelRejected(oid, "order already done", t))
            return
        if self.cancel_latency_us == 0 and po.live:
            self._cancel_now(po, t)
            return
        self._seq += 1
        heapq.heappush(self.heap, (t + self.cancel_latency_us, self._seq, _CANCEL, oid))

    def cancel_many(self, orders: Sequence[OpenOrder]) -> None:
        for order in orders:
            self.cancel(order)

    def advance(self, ts_us: int) -> None:
        heap = self.heap
        while heap and heap[0][0] <= ts_us:
            due, _, kind, oid = heapq.heappop(heap)
            if due > self.now:
                self.now = due
            po = self.orders.get(oid)
            if po is None:
                if kind == _CANCEL:
                    self.report(CancelRejected(oid, "order already done", due))
                continue
            if kind == _ARRIVE:
                self._arrive(po, due)
            elif kind == _CANCEL:
                if po.live:
                    self._cancel_now(po, due)
                else:  # the order itself is still in flight: the cancel waits for it
                    self._seq += 1
                    arrive = next(d for d, _, k, o in heap if k == _ARRIVE and o == oid)
                    heapq.heappush(heap, (max(arrive, due), self._seq, _CANCEL, oid))
            elif po.live:  # _EXPIRE
                self._remove(po)
                self.report(Expired(oid, due, "GTD order reached expire_at"))
        if ts_us > self.now:
            self.now = ts_us

    def on_market(self, rec: dict[str, Any]) -> None:
        rtype = rec["type"]
        if rtype == "book":  # the hot path, inline: remember the book, release taken size
            asset = rec["asset"]
            bids, asks = rec["bids"], rec["asks"]
            if type(bids) is not list or type(asks) is not list:
                raise TypeError("bids and asks must be lists of [price, size]")
            tick, ms = rec.get("tick_size"), rec.get("min_size")
            # checked first: a book refused here changes nothing
            if ms is not None and (type(ms) not in (float, int) or not 0 <= ms <= MAX_SIZE):
                raise ValueError(f"min_size {ms!r} is not a size")
            if tick is not None and tick != self._tick_f.get(asset):
                self.ticks[asset] = _tick(tick)
                self._tick_f[asset] = tick
            self.books[asset] = rec
            used = self.taken_bids.get(asset)
            if used is not None and not _forget_replenished(used, bids):
                del self.taken_bids[asset]
            used = self.taken_asks.get(asset)
            if used is not None and not _forget_replenished(used, asks):
                del self.taken_asks[asset]
            if ms is not None:
                self.min_sizes[asset] = ms
            resting = self.resting.get(asset)
            if resting:
                self._book_vs_resting(resting, bids, asks)
        elif rtype == "trade":
            if rec["asset"] in self.resting:  # else no order of ours can fill
                self._on_trade(rec)
        elif rtype == "tick_size_changed":
            asset, tick = rec.get("asset"), rec.get("new_tick_size")
            if isinstance(asset, str) and isinstance(tick, int | float):
                self.ticks[asset] = _tick(tick)
                self._tick_f[asset] = tick
        elif rtype == "market_resolved":
            market = rec.get("market")
            for po in [p for p in self.orders.values() if p.market == market]:
                self._remove(po)
                self.report(Canceled(po.id, self.now, "market resolved"))

    def _protect(self, po: PaperOrder) -> str | None:
        """A market order's protective price, from the latest book as the official SDKs
        compute it when they build the order (walk the other side until `amount` is
        covered; FAK without the depth: the worst level), never worse than the record's
        price. None, or why the SDK refuses to build it (FOK without the depth)."""
        r = po.request
        book = self.books.get(po.asset)
        levels = (book["asks"] if po.buy else book["bids"]) if book else []
        try:
            worst = float(market_price("BUY" if po.buy else "SELL", levels, r.amount, r.tif))
        except (ValueError, TypeError, IndexError) as exc:  # AmountError is a ValueError
            return f"market order not built: {exc}"
        po.price = min(po.price, worst) if po.buy else max(po.price, worst)
        return None

    # --- arrival: validation, crossing, resting ---------------------------------------------

    def _arrive(self, po: PaperOrder, t: int) -> None:
        r = po.request
        reason = self._invalid(r, t)
        if reason is not None:
            del self.orders[po.id]
            self.report(Rejected(po.id, reason, t))
            return
        book = self.books.get(po.asset)
        levels: list[list[float]] = (book["asks"] if po.buy else book["bids"]) if book else []
        taken_side = self.taken_asks if po.buy else self.taken_bids
        used = taken_side.get(po.asset, _NOTHING_TAKEN)
        limit = po.price
        crossing: list[tuple[float, Decimal]] = []
        try:
            for level in levels:
                price = float(level[0])
                if (price > limit) if po.buy else (price < limit):
                    break
                avail = lots(level[1] - used.get(price, 0.0))
                if avail > 0:
                    crossing.append((price, avail))
        except (TypeError, IndexError, ValueError):  # the stored book had garbage levels
            self.log(f"agkit exec: the last book of asset {po.asset} is malformed; ignored")
            del self.books[po.asset]
            book, crossing = None, []
        if r.post_only and crossing:
            del self.orders[po.id]
            self.report(Rejected(po.id, "invalid post-only order: order crosses book", t))
            return
        plan, complete = _plan(crossing, po.remaining, r.amount if po.buy else None)
        if r.tif == "FOK" and not complete:
            del self.orders[po.id]
            self.report(
                Rejected(
                    po.id,
                    "order couldn't be fully filled. FOK orders are fully filled or killed.",
                    t,
                )
            )
            return
        self.report(Accepted(po.id, po.venue_order_id, t))
        for price, take in plan:
            taken = taken_side.setdefault(po.asset, {})
            taken[price] = taken.get(price, 0.0) + float(take)
            self._fill(po, take, price, "taker", t)
        if po.remaining <= 0:
            return
        if r.tif in ("FOK", "FAK"):
            del self.orders[po.id]
            reason = (
                "market order: amount spent"
                if complete
                else f"{r.tif} order: unfilled remainder canceled"
            )
            self.report(Canceled(po.id, t, reason))
            return
        # rest: behind the size displayed at our price on our side, and behind our own
        po.live = True
        try:
            po.ahead = _level_size(book["bids"] if po.buy else book["asks"], limit) if book else 0.0
        except (TypeError, IndexError, ValueError):  # garbage on our own side of the stored book
            self.log(f"agkit exec: the last book of asset {po.asset} is malformed; ignored")
            del self.books[po.asset]
            po.ahead = 0.0
        self.resting.setdefault(po.asset, []).append(po)
        if r.tif == "GTD" and r.expire_at is not None:
            heapq.heappush(self.heap, (r.expire_at, po.seq, _EXPIRE, po.id))

    def _invalid(self, r: OrderRequest, t: int) -> str | None:
        if r.tif == "GTD" and r.expire_at is not None and r.expire_at <= t:
            return f"invalid expiration: the order reached the venue at {t}, after its expire_at {r.expire_at}"
        exp = r.size.as_tuple().exponent
        if isinstance(exp, int) and exp < -2:
            size_dp = -r.size.normalize().as_tuple().exponent  # type: ignore[operator]
            if size_dp > 2:
                return f"Size {r.size} has {size_dp} decimal places. Maximum lot size is 2"
        tick = self.ticks.get(r.asset)
        if tick is not None:
            if r.price % tick != 0:
                return f"order {r.id} is invalid. Price ({r.price}) breaks minimum tick size rule: {tick}"
            if not tick <= r.price <= 1 - tick:
                return f"price ({r.price}), min: {tick} - max: {1 - tick}"
        min_size = self.min_sizes.get(r.asset)
        if min_size is not None and r.size < min_size:
            return f"Size ({r.size}) lower than the minimum: {min_size:g}"
        return None

    # --- market data ----------------------------------------------------------------------------

    def _book_vs_resting(
        self, resting: list[PaperOrder], bids: list[list[float]], asks: list[list[float]]
    ) -> None:
        """A new book where we have resting orders: the queue ahead, and fills through."""
        best_bid = bids[0][0] if bids else -1.0
        best_ask = asks[0][0] if asks else 2.0
        crossed = False
        for po in resting:
            if po.buy:
                if best_ask <= po.price:
                    crossed = True
                if po.ahead > 0:  # cancels ahead of us: the queue is at most what is shown
                    shown = _bid_size(bids, po.price)
                    if shown < po.ahead:
                        po.ahead = shown
            else:
                if best_bid >= po.price:
                    crossed = True
                if po.ahead > 0:
                    shown = _ask_size(asks, po.price)
                    if shown < po.ahead:
                        po.ahead = shown
        if not crossed:
            return
        # the book moved through resting orders: fill them from the crossing size, best first
        t = self.now
        crossed_buys = [po for po in resting if po.buy and best_ask <= po.price]
        crossed_sells = [po for po in resting if not po.buy and best_bid >= po.price]
        if crossed_buys:
            crossed_buys.sort(key=_buy_priority)
            self._fill_through(crossed_buys, asks, t, buy=True)
        if crossed_sells:
            crossed_sells.sort(key=_sell_priority)
            self._fill_through(crossed_sells, bids, t, buy=False)

    def _fill_through(
        self, orders: list[PaperOrder], levels: list[list[float]], t: int, buy: bool
    ) -> None:
        """Resting orders the other side now crosses: each fills, at its own price, from
        the crossing size our fills have not taken yet (which they then take)."""
        used = (self.taken_asks if buy else self.taken_bids).setdefault(orders[0].asset, {})
        for po in orders:
            total = _ZERO
            for level in levels:
                price = level[0]
                if (price > po.price) if buy else (price < po.price):
                    break
                take = min(lots(level[1] - used.get(price, 0.0)), po.remaining - total)
                if take > 0:
                    used[price] = used.get(price, 0.0) + float(take)
                    total += take
                    if total >= po.remaining:
                        break
            if total > 0:
                self._fill(po, total, po.price, "maker", t)

    def _on_trade(self, rec: dict[str, Any]) -> None:
        resting = self.resting.get(rec["asset"])
        if not resting:
            return
        q = rec["price"]
        size = rec["size"]
        # a str or None raises TypeError; a price of -0.5 would sweep every bid we rest
        if not (0.0 <= q <= 1.0 and 0.0 <= size <= MAX_SIZE):
            raise ValueError(f"trade at price {q!r} of size {size!r}: not a price in [0, 1] and a size")
        hits_bids = rec["side"] == "sell"  # a sell aggressor trades against bids
        # our orders on the side the aggressor hit, at or through the trade price, by priority
        if hits_bids:
            mine = [p for p in resting if p.buy and p.price >= q]
            if not mine:
                return
            if len(mine) > 1:
                mine.sort(key=_buy_priority)
        else:
            mine = [p for p in resting if not p.buy and p.price <= q]
            if not mine:
                return
            if len(mine) > 1:
                mine.sort(key=_sell_priority)
        t = self.now
        pool = size
        own_ahead = _ZERO
        for po in mine:
            if po.price != q:  # through our price: the level was swept
                take = min(lots(pool), po.remaining)
                if take > 0:
                    pool -= float(take)
                    self._fill(po, take, po.price, "maker", t)
                continue
            # at our level: the trade eats the queue ahead (market, then our earlier orders)
            before = po.remaining
            take = min(lots(pool - po.ahead - float(own_ahead)), po.remaining)
            po.ahead = max(0.0, po.ahead - pool)
            own_ahead += before
            if take > 0:
                self._fill(po, take, po.price, "maker", t)

    # --- helpers ---------------------------------------------------------------------------------

    def _fill(self, po: PaperOrder, take: Decimal, price: float, liquidity: str, t: int) -> None:
        po.remaining -= take
        self._trades += 1
        shares = float(take)
        fee = (
            round(taker_fee(shares, price, self.fee_rate, self.fee_exponent), 6)
            if liquidity == "taker"
            else 0.0
        )
        if po.remaining <= 0:
            self._remove(po)
        self.report(
            Filled(
                po.id,
                po.venue_order_id,
                f"paper-{self._trades}",
                price,
                shares,
                fee,
                "taker" if liquidity == "taker" else "maker",
                t,
                "confirmed",
            )
        )

    def _cancel_now(self, po: PaperOrder, t: int) -> None:
        self._remove(po)
        self.report(Canceled(po.id, t))

    def _remove(self, po: PaperOrder) -> None:
        self.orders.pop(po.id, None)
        if po.live:
            po.live = False
            lst = self.resting.get(po.asset)
            if lst is not None:
                lst.remove(po)
                if not lst:
                    del self.resting[po.asset]


def _plan(
    crossing: list[tuple[float, Decimal]], size: Decimal, budget: Decimal | None
) -> tuple[list[tuple[float, Decimal]], bool]:
    """What a marketable order takes from the crossing levels (best first): (price, shares)
    per level, and whether that completes it: its size taken, or, for a market BUY, its
    pUSD `budget` spent (less than one lot's worth left at the levels within its limit)."""
    plan: list[tuple[float, Decimal]] = []
    left = size
    for price, avail in crossing:
        take = min(avail, left)
        if budget is not None:
            px = to_decimal(price)
            take = min(take, (budget / px).quantize(LOT, rounding=ROUND_FLOOR))
            if take <= 0:
                return plan, True
            budget -= take * px
        plan.append((price, take))
        left -= take
        if left <= 0 or (budget is not None and budget < LOT * px):
            return plan, True
    return plan, False


def _buy_priority(po: PaperOrder) -> tuple[float, int]:
    return (-po.price, po.seq)


def _sell_priority(po: PaperOrder) -> tuple[float, int]:
    return (po.price, po.seq)


def _forget_replenished(used: dict[float, float], levels: list[list[float]]) -> int:
    """A new book: what we took from a level stays taken while the level still shows it
    (the feed does not know about our paper fills); a level showing less (others traded
    or canceled it) or gone releases the difference. Returns how many prices stay taken.

    One pass over the levels (best first, prices unique), stopping once every price we
    took from was seen: those sit near the top of the book."""
    left = len(used)
    taken_at = used.get
    for level in levels:
        price = level[0]
        taken = taken_at(price)
        if taken is not None:
            shown = float(level[1])
            if shown <= 0:
                del used[price]
            elif shown < taken:
                used[price] = shown
            left -= 1
            if not left:
                return len(used)
    if left:  # some prices are no longer shown at all
        shown_prices = {level[0] for level in levels}
        for price in [p for p in used if p not in shown_prices]:
            del used[price]
    return len(used)


def _bid_size(levels: list[list[float]], price: float) -> float:
    """Size shown at price on a bid side (best, i.e. highest, first)."""
    for level in levels:
        p = level[0]
        if p == price:
            return float(level[1])
        if p < price:
            break
    return 0.0


def _ask_size(levels: list[list[float]], price: float) -> float:
    """Size shown at price on an ask side (best, i.e. lowest, first)."""
    for level in levels:
        p = level[0]
        if p == price:
            return float(level[1])
        if p > price:
            break
    return 0.0


def _level_size(levels: list[list[float]], price: float) -> float:
    for level in levels:
        if level[0] == price:
            return float(level[1])
    return 0.0
