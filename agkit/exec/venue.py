"""The venue interface of `agkit exec`: what the OMS asks of a venue, and what a venue
reports back.

The OMS (agkit/exec/oms.py) owns order state, idempotency, positions and the records
on the stream. A venue only *does* things (match, sign, send) and *reports* facts
through one callback, `self.report(event)`, with one of the event classes below. The
OMS turns every report into a state transition and into records (`order_accepted`,
`order_filled`, `position`, ...). A venue never writes records itself.

Two kinds of venue fit the same interface:

* **Synchronous** (the paper venue): it reports from inside `submit`/`cancel`/
  `on_market`, in event time. The stage returns those records right after the record
  that caused them (DESIGN.md §2 pass-through rule).
* **Asynchronous** (the Polymarket venue): `submit`/`cancel` queue work (HTTP on the
  event loop) and return at once; results arrive later from HTTP responses and the
  user WebSocket, and the venue calls `self.report(...)` then. The stage emits those
  records with `ctx.emit` (flushed promptly). `start()` may be a coroutine (connect,
  reconcile open orders and recent trades before any new order); `stop()` may be a
  coroutine too (cancel or leave orders, close sockets). `run()` may return a
  coroutine that lives as long as the stage (the WebSocket loop).

Lifecycle, called by the exec stage:

    venue.bind(report, clock, log)        # once, before start
    await/ venue.start()                  # connect, reconcile (may report Restored)
    venue.submit(order)                   # for every new, locally valid order
    venue.cancel(order)                   # for an open order (OMS state allows it)
    venue.cancel_many(orders)             # cancel_all, resolved to orders by the OMS
    venue.on_market(rec)                  # every book / trade / tick_size_changed /
                                          #   market_resolved / feed_status record, and
                                          #   called with time advancing (see advance)
    venue.advance(ts_us)                  # event time moved to ts_us (before on_market)
    await/ venue.stop()

Rules for a venue:

* Report `Accepted` (or `Rejected`) exactly once per submitted order, before any
  `Filled`/`Canceled`/`Expired` of that order. `Rejected` is terminal.
* `Filled.size` is the size of this fill only; the OMS sums fills. Report each venue
  trade once per (order id, trade_id); report settlement changes with `Settled`.
* `Canceled` may come unasked (FAK remainder, venue cancel-all, heartbeat lapse);
  `CancelRejected` answers a `cancel` that the venue refused ("already filled", ...).
* A venue must never send an order twice: the OMS guarantees it calls `submit` once
  per client id; after a lost response the venue queries the order before resending.
* Event times are integer µs (`ts_event`): the venue's timestamp for live events, the
  event time of the matching engine for paper.
* Requests and events are plain slotted dataclasses (cheap to build on the paper hot
  path); treat them as read-only values.
* `order.price`/`order.size` are exact `Decimal`s converted from the record's JSON
  numbers through their shortest repr; sign and send only those.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from agkit.clock import Clock
    from agkit.stage import Timer

Side = Literal["buy", "sell"]
Tif = Literal["GTC", "GTD", "FOK", "FAK"]
Liquidity = Literal["maker", "taker"]
Settlement = Literal["pending", "confirmed", "failed"]


def to_decimal(x: float | int | str) -> Decimal:
    """A JSON number as an exact Decimal through its shortest repr (0.1 -> Decimal('0.1'))."""
    if isinstance(x, float):
        return Decimal(repr(x))
    return Decimal(x)


@dataclass(slots=True)
class OrderRequest:
    """A validated `submit_order`, as the OMS hands it to a venue (read-only)."""

    id: str  # client order id (unique per run)
    strategy: str
    venue: str
    market: str  # condition id
    asset: str  # token id
    side: Side
    price: Decimal  # exact limit price
    size: Decimal  # shares
    tif: Tif = "GTC"
    post_only: bool = False
    expire_at: int | None = None  # µs since the epoch, GTD only
    neg_risk: bool | None = None
    ts_event: int = 0  # event time of the submit_order record, µs
    amount: Decimal | None = None  # market order: pUSD to spend (BUY) / shares to sell (SELL)
    extra: dict[str, Any] = field(default_factory=dict)  # unknown fields of the record


@dataclass(slots=True)
class OpenOrder:
    """An order the OMS believes is open, as given to `cancel`/`cancel_many`."""

    request: OrderRequest
    venue_order_id: str | None  # None while the venue has not acknowledged it
    filled: Decimal  # size filled so far


# --- what a venue reports -------------------------------------------------------------


@dataclass(slots=True)
class Accepted:
    id: str
    venue_order_id: str
    ts_event: int


@dataclass(slots=True)
class Rejected:
    id: str
    reason: str  # the venue's wording, e.g. "invalid post-only order: order crosses book"
    ts_event: int
    venue_order_id: str | None = None


@dataclass(slots=True)
class Filled:
    id: str
    venue_order_id: str
    trade_id: str
    price: float  # execution price
    size: float  # this fill's shares
    fee: float  # USDC paid (taker); 0 for maker fills
    liquidity: Liquidity
    ts_event: int
    settlement: Settlement = "pending"


@dataclass(slots=True)
class Settled:
    """A fill's on-chain settlement moved on (live venues: MATCHED -> CONFIRMED/FAILED)."""

    id: str
    trade_id: str
    settlement: Settlement  # "confirmed" or "failed" (a failed fill is reversed)
    ts_event: int


@dataclass(slots=True)
class Canceled:
    id: str
    ts_event: int
    reason: str | None = None  # None when the user asked; else why (FAK remainder, ...)


@dataclass(slots=True)
class CancelRejected:
    id: str
    reason: str  # e.g. "order already filled", "Order not found"
    ts_event: int


@dataclass(slots=True)
class Expired:
    id: str
    ts_event: int
    reason: str | None = None


@dataclass(slots=True)
class Restored:
    """An order open at the venue that this run did not submit (found by reconciliation).

    `order.id` is a client id the venue chooses (e.g. the venue order id); the OMS
    tracks it as accepted (partially filled when `filled` > 0) and emits
    `order_accepted` for it."""

    order: OrderRequest
    venue_order_id: str
    filled: Decimal
    ts_event: int


VenueEvent = Restored | Accepted | Rejected | Filled | Settled | Canceled | CancelRejected | Expired
Report = Callable[[VenueEvent], None]


class Venue:
    """Base class of exec venues. Override what you need; every hook has a default.

    `name` is the `venue` field of the records the venue handles ("paper",
    "polymarket"). `live` is False for simulations: nothing real is ever sent by one.
    """

    name: ClassVar[str] = "venue"
    live: ClassVar[bool] = False
    # takes market orders by `amount` (OrderRequest.amount); the OMS refuses them otherwise
    amount_orders: ClassVar[bool] = False

    # set by bind(): where to report, event/wall clock, one stderr line
    report: Report
    clock: Clock
    log: Callable[[str], None]

    def bind(self, report: Report, clock: Clock, log: Callable[[str], None]) -> None:
        """Called once by the exec stage before start(): where to report, the clock, stderr."""
        self.report = report
        self.clock = clock
        self.log = log

    def start(self) -> Awaitable[None] | None:
        """Connect and reconcile. May be async (PipeRunner awaits it before any input).

        Orders found open at the venue that this run did not submit are reported as
        `Restored` (the OMS then tracks them, so `cancel_all` reaches them); fills
        missed while away are reported as `Filled` of a restored order."""
        return None

    def submit(self, order: OrderRequest) -> None:
        """Place a new order (called once per client id). Report Accepted or Rejected,
        now (sync) or later (async), then fills/cancels/expiry."""
        raise NotImplementedError

    def cancel(self, order: OpenOrder) -> None:
        """Cancel one open order. Report Canceled, or CancelRejected, now or later."""
        raise NotImplementedError

    def cancel_many(self, orders: Sequence[OpenOrder]) -> None:
        """Cancel several open orders (a `cancel_all` scope the OMS resolved).

        The default cancels one by one; a live venue batches (DELETE /orders)."""
        for order in orders:
            self.cancel(order)

    def advance(self, ts_us: int) -> None:
        """Event time reached ts_us (a record with that ts_event arrived): fire what was
        due before it (paper latency, GTD expiry). Called before on_market."""

    def on_market(self, rec: dict[str, Any]) -> None:
        """A market record passing through exec (book, trade, tick_size_changed,
        market_resolved, feed_status), as the decoded dict: paper matches against it;
        a live venue may read tick sizes from it. Must not modify `rec`."""

    def timers(self) -> list[Timer]:
        """Periodic work (e.g. the heartbeat dead-man switch every 5 s)."""
        return []

    def run(self) -> Awaitable[None] | None:
        """Optional long-lived coroutine (a WebSocket loop) run beside the stage."""
        return None

    def stop(self) -> Awaitable[None] | None:
        """Shut down: close sockets. May be async. Reports made here are emitted."""
        return None


__all__ = [
    "Accepted",
    "CancelRejected",
    "Canceled",
    "Expired",
    "Filled",
    "OpenOrder",
    "OrderRequest",
    "Rejected",
    "Report",
    "Restored",
    "Settled",
    "Venue",
    "VenueEvent",
    "to_decimal",
]
