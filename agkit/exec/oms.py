"""The order management system of `agkit exec`: one state table, idempotent client
ids, local validation, positions through agkit.portfolio, and the records exec emits.

The OMS is venue-agnostic. It validates a `submit_order`, hands it to the venue once,
and turns what the venue reports (agkit/exec/venue.py events) into state transitions
and records. Every transition goes through `TRANSITIONS`; a report that does not fit
the table (a fill after a cancel was confirmed, a second accept, an overfill) is an
*illegal transition*: logged on stderr, counted (`exec_illegal_transitions`, emitted
as a `metric` record at once) and never applied.

Records are built as plain dicts (the wire shape of agkit.records types) and appended
to `self.out`; the exec stage takes them after each input record, or emits them with
ctx.emit when an asynchronous venue reported outside on_record.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from agkit.clock import Clock
from agkit.errors import InvalidRecord
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
    to_decimal,
)
from agkit.portfolio import Portfolio
from agkit.records import metric_record, parse


class OrderState(enum.StrEnum):
    INITIALIZED = "initialized"  # validated locally, not yet given to the venue
    SUBMITTED = "submitted"  # given to the venue, no answer yet
    ACCEPTED = "accepted"  # live at the venue
    PARTIALLY_FILLED = "partially_filled"
    PENDING_CANCEL = "pending_cancel"  # cancel sent, no answer yet
    FILLED = "filled"  # terminal
    CANCELED = "canceled"  # terminal
    REJECTED = "rejected"  # terminal
    EXPIRED = "expired"  # terminal


S = OrderState
TERMINAL = frozenset({S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED})
OPEN = frozenset({S.SUBMITTED, S.ACCEPTED, S.PARTIALLY_FILLED})  # cancelable

# (state, event) -> next state. Anything not listed is an illegal transition.
# Events: submit, accept, reject, fill (leaves size open), fill_complete, cancel_request,
# cancel (venue confirms / cancels on its own), cancel_reject_unacked / cancel_reject /
# cancel_reject_partial (venue refused the cancel; back to where the order was), expire.
TRANSITIONS: dict[tuple[OrderState, str], OrderState] = {
    (S.INITIALIZED, "submit"): S.SUBMITTED,
    (S.INITIALIZED, "reject"): S.REJECTED,
    (S.SUBMITTED, "accept"): S.ACCEPTED,
    (S.SUBMITTED, "reject"): S.REJECTED,
    (S.SUBMITTED, "cancel_request"): S.PENDING_CANCEL,
    (S.SUBMITTED, "cancel"): S.CANCELED,
    (S.SUBMITTED, "expire"): S.EXPIRED,
    (S.ACCEPTED, "fill"): S.PARTIALLY_FILLED,
    (S.ACCEPTED, "fill_complete"): S.FILLED,
    (S.ACCEPTED, "cancel_request"): S.PENDING_CANCEL,
    (S.ACCEPTED, "cancel"): S.CANCELED,
    (S.ACCEPTED, "expire"): S.EXPIRED,
    (S.PARTIALLY_FILLED, "fill"): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, "fill_complete"): S.FILLED,
    (S.PARTIALLY_FILLED, "cancel_request"): S.PENDING_CANCEL,
    (S.PARTIALLY_FILLED, "cancel"): S.CANCELED,
    (S.PARTIALLY_FILLED, "expire"): S.EXPIRED,
    (S.PENDING_CANCEL, "accept"): S.PENDING_CANCEL,  # the ack overtaken by our cancel
    (S.PENDING_CANCEL, "reject"): S.REJECTED,
    (S.PENDING_CANCEL, "fill"): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, "fill_complete"): S.FILLED,
    (S.PENDING_CANCEL, "cancel"): S.CANCELED,
    (S.PENDING_CANCEL, "cancel_reject_unacked"): S.SUBMITTED,
    (S.PENDING_CANCEL, "cancel_reject"): S.ACCEPTED,
    (S.PENDING_CANCEL, "cancel_reject_partial"): S.PARTIALLY_FILLED,
    (S.PENDING_CANCEL, "expire"): S.EXPIRED,
}

_TIFS = ("GTC", "GTD", "FOK", "FAK")
IMMEDIATE = frozenset({"FOK", "FAK"})
_ENDINGS: dict[type, tuple[str, str, str]] = {
    Canceled: ("cancel", "canceled", "order_canceled"),
    Rejected: ("reject", "rejected", "order_rejected"),
    Expired: ("expire", "expired", "order_expired"),
}


class Order:
    """One order's state in the OMS."""

    __slots__ = ("acked", "filled", "fills", "request", "state", "venue_order_id")

    def __init__(self, request: OrderRequest) -> None:
        self.request = request
        self.state = S.INITIALIZED
        self.venue_order_id: str | None = None
        self.acked = False
        self.filled = Decimal(0)
        self.fills: dict[str, dict[str, Any]] = {}  # trade_id -> the order_filled record

    @property
    def remaining(self) -> Decimal:
        return self.request.size - self.filled

    def open_view(self) -> OpenOrder:
        return OpenOrder(self.request, self.venue_order_id, self.filled)


class IllegalTransition(Exception):
    pass


class Oms:
    """Orders, positions and exec's records, driven by commands and venue reports."""

    def __init__(
        self,
        venue: Venue,
        clock: Clock,
        log: Callable[[str], None],
        portfolio: Portfolio | None = None,
        emit_positions: bool = True,
    ) -> None:
        self.venue = venue
        self.clock = clock
        self.log = log
        self.portfolio = portfolio or Portfolio()
        self.emit_positions = emit_positions
        self.orders: dict[str, Order] = {}
        self.out: list[dict[str, Any]] = []
        self.now = 0  # event time: the largest ts_event seen, µs
        self.illegal = 0
        self.counts: dict[str, int] = {}

    # --- commands ---------------------------------------------------------------------

    def submit(self, rec: dict[str, Any]) -> None:
        """A `submit_order`: refuse it (order_rejected) or hand it to the venue once."""
        oid = rec.get("id")
        if not isinstance(oid, str) or not oid:
            raise InvalidRecord("submit_order without a string `id`")
        ts = self._ts(rec)
        if oid in self.orders:
            self._count("duplicate_id")
            self._record(
                "order_rejected",
                ts,
                id=oid,
                reason=f"duplicate client order id {oid!r}: refused, the first order stands",
            )
            return
        try:
            request = self._request(rec, ts)
        except ValueError as exc:
            # remember the id all the same: a resend of the same bad order is a duplicate
            order = Order(_placeholder(oid, rec, ts))
            self.orders[oid] = order
            self._apply(order, "reject")
            self._count("rejected")
            self._record("order_rejected", ts, id=oid, reason=str(exc))
            return
        order = Order(request)
        self.orders[oid] = order
        self._apply(order, "submit")
        self._count("submitted")
        self.venue.submit(request)

    def cancel(self, rec: dict[str, Any]) -> None:
        """A `cancel_order`: ask the venue, or answer cancel_rejected."""
        oid = rec.get("id")
        if not isinstance(oid, str) or not oid:
            raise InvalidRecord("cancel_order without a string `id`")
        ts = self._ts(rec)
        order = self.orders.get(oid)
        if order is None:
            self._record("cancel_rejected", ts, id=oid, reason="unknown order id")
            return
        if order.state not in OPEN:
            reason = (
                "cancel already pending"
                if order.state is S.PENDING_CANCEL
                else f"order is {order.state.value}"
            )
            self._record(
                "cancel_rejected", ts, id=oid, reason=reason, venue_order_id=order.venue_order_id
            )
            return
        self._apply(order, "cancel_request")
        self.venue.cancel(order.open_view())

    def cancel_all(self, rec: dict[str, Any]) -> None:
        """A `cancel_all`: every open order in scope (market, asset, strategy; None = any)."""
        self._ts(rec)
        market, asset, strategy = rec.get("market"), rec.get("asset"), rec.get("strategy")
        chosen: list[Order] = []
        for order in self.orders.values():
            if order.state not in OPEN:
                continue
            r = order.request
            if market is not None and r.market != market:
                continue
            if asset is not None and r.asset != asset:
                continue
            if strategy is not None and r.strategy != strategy:
                continue
            chosen.append(order)
        for order in chosen:
            self._apply(order, "cancel_request")
        if chosen:
            self.venue.cancel_many([o.open_view() for o in chosen])

    def observe(self, rec: dict[str, Any]) -> None:
        """A market record: event time, and resolutions settle positions."""
        ts = rec.get("ts_event")
        if type(ts) is int and ts > self.now:
            self.now = ts
        if rec.get("type") == "market_resolved":
            market, winner = rec.get("market"), rec.get("winning_asset")
            if isinstance(market, str) and isinstance(winner, str):
                for pos in self.portfolio.resolve(market, winner):
                    if self.emit_positions:
                        self.out.append(pos.as_record(self.now, self.clock.now_us()))

    # --- venue reports ------------------------------------------------------------------

    def on_event(self, ev: VenueEvent) -> None:
        """The venue's `report` callback."""
        try:
            if isinstance(ev, Filled):
                self._on_fill(ev)
            elif isinstance(ev, Accepted):
                self._on_accepted(ev)
            elif isinstance(ev, Canceled | Rejected | Expired):
                # the three ways an order ends without a fill: (transition, counter, record type)
                event, counter, rtype = _ENDINGS[type(ev)]
                order = self._known(ev.id, event)
                self._apply(order, event)
                if isinstance(ev, Rejected) and ev.venue_order_id:
                    order.venue_order_id = ev.venue_order_id
                self._count(counter)
                self._record(
                    rtype,
                    ev.ts_event,
                    id=ev.id,
                    venue_order_id=order.venue_order_id,
                    reason=ev.reason,
                )
            elif isinstance(ev, CancelRejected):
                order = self._known(ev.id, "cancel_reject")
                if order.state is S.PENDING_CANCEL:
                    if not order.acked:
                        self._apply(order, "cancel_reject_unacked")
                    elif order.filled > 0:
                        self._apply(order, "cancel_reject_partial")
                    else:
                        self._apply(order, "cancel_reject")
                # else: the order ended meanwhile (filled): the refusal is just news
                self._record(
                    "cancel_rejected",
                    ev.ts_event,
                    id=ev.id,
                    reason=ev.reason,
                    venue_order_id=order.venue_order_id,
                )
            elif isinstance(ev, Settled):
                self._on_settled(ev)
            elif isinstance(ev, Restored):
                self._on_restored(ev)
            else:  # pragma: no cover - the union is closed
                raise IllegalTransition(f"unknown venue event {ev!r}")
        except IllegalTransition as exc:
            self._illegal(str(exc), ev)

    def _on_accepted(self, ev: Accepted) -> None:
        order = self._known(ev.id, "accept")
        if order.acked:
            raise IllegalTransition(f"order {ev.id!r} accepted twice")
        self._apply(order, "accept")
        order.acked = True
        order.venue_order_id = ev.venue_order_id
        self._count("accepted")
        self._record("order_accepted", ev.ts_event, id=ev.id, venue_order_id=ev.venue_order_id)

    def _on_fill(self, ev: Filled) -> None:
        order = self._known(ev.id, "fill")
        if ev.trade_id in order.fills:
            self._count("duplicate_fill")  # a venue repeating itself (reconnect): idempotent
            return
        if not (ev.size > 0 and math.isfinite(ev.size) and math.isfinite(ev.price)):
            raise IllegalTransition(f"order {ev.id!r}: fill of size {ev.size!r}")
        if not order.acked:
            raise IllegalTransition(f"order {ev.id!r} filled before it was accepted")
        r = order.request
        filled = order.filled + to_decimal(ev.size)
        if filled > r.size:
            if not (r.side == "buy" and r.tif in IMMEDIATE):
                raise IllegalTransition(f"order {ev.id!r} overfilled: {filled} of {r.size}")
            # the venue spends a FOK/FAK BUY's pUSD: better prices buy more shares than
            # the order's size. Those shares are ours; losing the fill would be worse.
            self._count("overfilled_buys")
        if order.state is not S.FILLED:
            self._apply(order, "fill_complete" if filled >= r.size else "fill")
        order.filled = filled
        now = self.clock.now_us()
        rec = {
            "type": "order_filled",
            "ts_event": ev.ts_event,
            "ts_init": now,
            "id": ev.id,
            "venue_order_id": ev.venue_order_id or order.venue_order_id or "",
            "trade_id": ev.trade_id,
            "market": r.market,
            "asset": r.asset,
            "side": r.side,
            "price": ev.price,
            "size": ev.size,
            "fee": ev.fee,
            "liquidity": ev.liquidity,
            "settlement": ev.settlement,
            "strategy": r.strategy,
        }
        self.out.append(rec)
        order.fills[ev.trade_id] = rec
        self.counts["fills"] = self.counts.get("fills", 0) + 1
        pos = self.portfolio.apply_fill(
            r.market, r.asset, r.side, ev.price, ev.size, ev.fee, ev.trade_id
        )
        if self.emit_positions:
            self.out.append(pos.as_record(ev.ts_event, now))

    def _on_settled(self, ev: Settled) -> None:
        order = self._known(ev.id, "settle")
        fill = order.fills.get(ev.trade_id)
        if fill is None:
            raise IllegalTransition(f"order {ev.id!r}: settlement of unknown trade {ev.trade_id!r}")
        if fill["settlement"] == ev.settlement:
            return
        if fill["settlement"] != "pending":
            raise IllegalTransition(
                f"order {ev.id!r} trade {ev.trade_id!r}: settlement {fill['settlement']} -> {ev.settlement}"
            )
        update = dict(
            fill, settlement=ev.settlement, ts_event=ev.ts_event, ts_init=self.clock.now_us()
        )
        order.fills[ev.trade_id] = update
        self.out.append(update)
        if ev.settlement == "failed":
            self._count("failed_fills")
            self.log(
                f"agkit exec: fill {ev.trade_id} of order {ev.id} FAILED to settle; position reversed"
            )
            pos = self.portfolio.reverse_fill(order.request.asset, ev.trade_id)
            if pos is not None and self.emit_positions:
                self.out.append(pos.as_record(ev.ts_event, self.clock.now_us()))

    def _on_restored(self, ev: Restored) -> None:
        oid = ev.order.id
        if oid in self.orders:
            raise IllegalTransition(f"restored order {oid!r} is already known")
        order = Order(ev.order)
        self.orders[oid] = order
        self._apply(order, "submit")
        self._apply(order, "accept")
        order.acked = True
        order.venue_order_id = ev.venue_order_id
        if ev.filled > 0:
            self._apply(order, "fill")
            order.filled = ev.filled
        self._count("restored")
        r = ev.order  # a restored order is new to the stream: say what it is
        self._record(
            "order_accepted",
            ev.ts_event,
            id=oid,
            venue_order_id=ev.venue_order_id,
            strategy=r.strategy,
            venue=r.venue,
            market=r.market,
            asset=r.asset,
            side=r.side,
            price=float(r.price),
            size=float(r.size),
        )

    # --- helpers -----------------------------------------------------------------------------

    def _known(self, oid: str, event: str) -> Order:
        order = self.orders.get(oid)
        if order is None:
            raise IllegalTransition(f"{event} for unknown order {oid!r}")
        return order

    def _apply(self, order: Order, event: str) -> None:
        nxt = TRANSITIONS.get((order.state, event))
        if nxt is None:
            raise IllegalTransition(
                f"order {order.request.id!r}: {event} is illegal in state {order.state.value}"
            )
        order.state = nxt

    def _illegal(self, message: str, ev: VenueEvent) -> None:
        self.illegal += 1
        self.log(f"agkit exec: illegal transition (not applied): {message}")
        now = self.clock.now_us()
        self.out.append(
            metric_record(
                max(self.now, getattr(ev, "ts_event", 0)),
                "exec_illegal_transitions",
                self.illegal,
                "counter",
                {"event": type(ev).__name__.lower()},
                ts_init=now,
            )
        )

    def _count(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1

    def _ts(self, rec: dict[str, Any]) -> int:
        ts = rec.get("ts_event")
        if type(ts) is int and ts > self.now:
            self.now = ts
        return self.now

    def _record(self, rtype: str, ts_event: int, **fields: Any) -> dict[str, Any]:
        rec: dict[str, Any] = {"type": rtype, "ts_event": ts_event, "ts_init": self.clock.now_us()}
        for k, v in fields.items():
            if v is not None:
                rec[k] = v
        self.out.append(rec)
        return rec

    def _request(self, rec: dict[str, Any], ts: int) -> OrderRequest:
        """Validate a submit_order (venue-independent rules); ValueError names the problem."""
        parse(rec)  # types and required fields, from the one record definition
        side, tif = rec["side"], rec.get("tif", "GTC")
        price, size = rec["price"], rec["size"]
        if isinstance(price, bool) or not math.isfinite(price) or not 0 < price < 1:
            raise ValueError(f"price {price!r} is outside (0, 1)")
        if isinstance(size, bool) or not math.isfinite(size) or size <= 0:
            raise ValueError(f"size {size!r} is not positive")
        if tif not in _TIFS:
            raise ValueError(f"unknown tif {tif!r}")
        post_only = bool(rec.get("post_only", False))
        if post_only and tif not in ("GTC", "GTD"):
            raise ValueError(f"post_only is only for GTC/GTD orders, not {tif}")
        expire_at = rec.get("expire_at")
        if tif == "GTD":
            if expire_at is None:
                raise ValueError("a GTD order needs expire_at (µs)")
            if expire_at <= ts:
                raise ValueError(f"invalid expiration: expire_at {expire_at} is not after {ts}")
        elif expire_at is not None:
            raise ValueError(f"expire_at is only for GTD orders, not {tif}")
        amount = rec.get("amount")
        if amount is not None:  # a market order: pUSD to spend (BUY) / shares to sell (SELL)
            if isinstance(amount, bool) or not math.isfinite(amount) or amount <= 0:
                raise ValueError(f"amount {amount!r} is not positive")
            if tif not in IMMEDIATE:
                raise ValueError(f"amount (a market order) is only for FOK/FAK orders, not {tif}")
            if not self.venue.amount_orders:  # never send it as a plain order of `size`
                raise ValueError(f"venue {self.venue.name} does not take market orders by amount")
            if side == "sell" and amount != size:
                raise ValueError(
                    f"a market SELL sells `amount` shares: size {size!r} must equal amount {amount!r}"
                )
        known = _SUBMIT_FIELDS
        # (the usual record has no other field: a set test, not a comprehension)
        extra = {} if known.issuperset(rec) else {k: v for k, v in rec.items() if k not in known}
        return OrderRequest(
            id=rec["id"],
            strategy=rec["strategy"],
            venue=rec["venue"],
            market=rec["market"],
            asset=rec["asset"],
            side=side,
            price=to_decimal(price),
            size=to_decimal(size),
            tif=tif,
            post_only=post_only,
            expire_at=expire_at,
            neg_risk=rec.get("neg_risk"),
            ts_event=ts,
            amount=None if amount is None else to_decimal(amount),
            extra=extra,
        )

    # --- reporting ------------------------------------------------------------------------------

    def open_orders(self) -> Iterable[Order]:
        return (o for o in self.orders.values() if o.state not in TERMINAL)

    def metrics(self) -> list[dict[str, Any]]:
        """Counters as metric records (emitted when the stage stops)."""
        now = self.clock.now_us()
        names = (
            "submitted",
            "accepted",
            "rejected",
            "canceled",
            "expired",
            "fills",
            "duplicate_id",
        )
        labels = {"venue": self.venue.name}
        out = [
            metric_record(self.now, f"exec_{name}", self.counts.get(name, 0), "counter", dict(labels), ts_init=now)
            for name in names
        ]
        out.append(metric_record(self.now, "exec_illegal_transitions", self.illegal, "counter", labels, ts_init=now))
        return out


_SUBMIT_FIELDS = frozenset(
    {
        "type",
        "ts_event",
        "ts_init",
        "id",
        "strategy",
        "venue",
        "market",
        "asset",
        "side",
        "price",
        "size",
        "tif",
        "post_only",
        "expire_at",
        "neg_risk",
        "amount",
    }
)


def _placeholder(oid: str, rec: dict[str, Any], ts: int) -> OrderRequest:
    """A stand-in request for an order refused before it was valid (keeps its id taken)."""

    def text(key: str) -> str:
        v = rec.get(key)
        return v if isinstance(v, str) else ""

    return OrderRequest(
        id=oid,
        strategy=text("strategy"),
        venue=text("venue"),
        market=text("market"),
        asset=text("asset"),
        side="buy",
        price=Decimal(0),
        size=Decimal(0),
        ts_event=ts,
    )
