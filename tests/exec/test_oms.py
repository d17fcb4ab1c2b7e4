"""The OMS: the state table, idempotent ids, validation, venue reports, positions."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import pytest

from agkit.clock import EventClock
from agkit.errors import InvalidRecord
from agkit.exec.oms import TERMINAL, TRANSITIONS, IllegalTransition, Oms, Order, OrderState
from agkit.exec.stage import ExecStage
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
from agkit.portfolio import Portfolio
from agkit.stage import Context
from tests.exec.util import A, M, cancel, cancel_all, submit

S = OrderState
EVENTS = sorted({e for _, e in TRANSITIONS})


class RecordingVenue(Venue):
    """Does nothing by itself; the test reports for it."""

    name = "fake"

    def __init__(self) -> None:
        self.submitted: list[OrderRequest] = []
        self.canceled: list[OpenOrder] = []

    def submit(self, order: OrderRequest) -> None:
        self.submitted.append(order)

    def cancel(self, order: OpenOrder) -> None:
        self.canceled.append(order)


def make() -> tuple[Oms, RecordingVenue, list[str]]:
    venue = RecordingVenue()
    logs: list[str] = []
    clock = EventClock(0)
    oms = Oms(venue, clock, logs.append)
    venue.bind(oms.on_event, clock, logs.append)
    return oms, venue, logs


def take(oms: Oms) -> list[dict[str, Any]]:
    out, oms.out = oms.out, []
    return out


def fill(oid: str, trade: str, size: float, price: float = 0.5, ts: int = 10, **kw: Any) -> Filled:
    return Filled(
        oid,
        "v-" + oid,
        trade,
        price,
        size,
        kw.pop("fee", 0.0),
        kw.pop("liquidity", "maker"),
        ts,
        **kw,
    )


# --- the state table -----------------------------------------------------------------------------


def test_nine_states_and_terminal_states_have_no_way_out() -> None:
    assert len(OrderState) == 9
    for (state, _event), _nxt in TRANSITIONS.items():
        assert state not in TERMINAL


@pytest.mark.parametrize(("state", "event"), list(itertools.product(OrderState, EVENTS)))
def test_every_pair_of_the_table(state: OrderState, event: str) -> None:
    """Listed pairs move to their state; every other pair raises and changes nothing."""
    order = Order(OrderRequest("x", "s", "v", M, A, "buy", Decimal("0.5"), Decimal(10)))
    order.state = state
    oms, _, _ = make()
    if (state, event) in TRANSITIONS:
        oms._apply(order, event)
        assert order.state is TRANSITIONS[state, event]
    else:
        with pytest.raises(IllegalTransition):
            oms._apply(order, event)
        assert order.state is state


def test_happy_path_through_the_states() -> None:
    oms, venue, _ = make()
    oms.submit(submit(1, "o", "buy", 0.5, 10))
    order = oms.orders["o"]
    assert order.state is S.SUBMITTED and len(venue.submitted) == 1
    venue.report(Accepted("o", "v-o", 2))
    assert order.state is S.ACCEPTED
    venue.report(fill("o", "t1", 4))
    assert order.state is S.PARTIALLY_FILLED and order.filled == Decimal(4)
    oms.cancel(cancel(3, "o"))
    assert order.state is S.PENDING_CANCEL
    venue.report(fill("o", "t2", 1))  # fills still arrive while the cancel travels
    assert order.state is S.PENDING_CANCEL
    venue.report(CancelRejected("o", "busy", 4))
    assert order.state is S.PARTIALLY_FILLED
    venue.report(fill("o", "t3", 5))
    assert order.state is S.FILLED
    types = [r["type"] for r in take(oms)]
    assert types == [
        "order_accepted",
        "order_filled",
        "position",
        "order_filled",
        "position",
        "cancel_rejected",
        "order_filled",
        "position",
    ]


def test_illegal_transition_is_logged_counted_and_not_applied() -> None:
    oms, venue, logs = make()
    oms.submit(submit(1, "o", "buy", 0.5, 10))
    venue.report(Accepted("o", "v-o", 2))
    venue.report(Canceled("o", 3))
    take(oms)
    venue.report(fill("o", "late", 5))  # a fill after the cancel was confirmed
    out = take(oms)
    assert [r["type"] for r in out] == ["metric"]
    assert out[0]["name"] == "exec_illegal_transitions" and out[0]["value"] == 1
    assert oms.orders["o"].state is S.CANCELED and oms.orders["o"].filled == 0
    assert oms.portfolio.size(A) == 0
    assert len(logs) == 1 and "illegal transition" in logs[0]
    assert oms.metrics()[-1]["value"] == 1


@pytest.mark.parametrize(
    "bad",
    [
        Accepted("o", "v-o", 3),  # accepted twice
        Expired("nobody", 3),  # unknown order
        fill("o", "big", 11),  # overfill
        Settled("o", "no-such-trade", "confirmed", 3),
    ],
    ids=["double-accept", "unknown", "overfill", "unknown-trade"],
)
def test_illegal_reports(bad: VenueEvent) -> None:
    oms, venue, logs = make()
    oms.submit(submit(1, "o", "buy", 0.5, 10))
    venue.report(Accepted("o", "v-o", 2))
    take(oms)
    venue.report(bad)
    assert [r["name"] for r in take(oms)] == ["exec_illegal_transitions"]
    assert oms.illegal == 1 and oms.orders["o"].state is S.ACCEPTED
    assert logs


def test_immediate_buy_keeps_the_shares_the_venue_gave_beyond_its_size() -> None:
    """The venue spends a FOK/FAK BUY's pUSD, so better asks give more shares than the
    size: a real fill, applied and counted, never dropped as illegal."""
    oms, venue, logs = make()
    oms.submit(submit(1, "o", "buy", 0.5, 10, tif="FOK"))
    venue.report(Accepted("o", "v-o", 2))
    venue.report(fill("o", "t1", 8, price=0.48))
    venue.report(fill("o", "t2", 3, price=0.49))
    venue.report(fill("o", "t3", 0.5, price=0.49))
    out = take(oms)
    assert [r["size"] for r in out if r["type"] == "order_filled"] == [8, 3, 0.5]
    assert oms.illegal == 0 and not logs
    assert oms.orders["o"].state is S.FILLED and oms.orders["o"].filled == Decimal("11.5")
    assert oms.portfolio.positions[A].size == 11.5


def test_fill_before_accept_is_illegal() -> None:
    oms, venue, _ = make()
    oms.submit(submit(1, "o", "buy", 0.5, 10))
    venue.report(fill("o", "t", 1))
    assert oms.illegal == 1 and oms.orders["o"].filled == 0


def test_accept_after_cancel_request_keeps_pending_cancel() -> None:
    oms, venue, _ = make()
    oms.submit(submit(1, "o", "buy", 0.5, 10))
    oms.cancel(cancel(2, "o"))
    assert oms.orders["o"].state is S.PENDING_CANCEL
    venue.report(CancelRejected("o", "not yet there", 3))
    assert oms.orders["o"].state is S.SUBMITTED  # back to where it was: unacknowledged
    oms.cancel(cancel(4, "o"))
    venue.report(Accepted("o", "v-o", 5))
    assert oms.orders["o"].state is S.PENDING_CANCEL
    venue.report(Canceled("o", 6))
    assert oms.orders["o"].state is S.CANCELED and oms.illegal == 0


# --- idempotent client ids ------------------------------------------------------------------------


def test_repeated_id_is_refused_and_never_sent_twice() -> None:
    oms, venue, _ = make()
    oms.submit(submit(1, "o", "buy", 0.5, 10))
    venue.report(Accepted("o", "v-o", 2))
    take(oms)
    oms.submit(submit(3, "o", "sell", 0.6, 5))
    (rej,) = take(oms)
    assert rej["type"] == "order_rejected" and rej["id"] == "o" and "duplicate" in rej["reason"]
    assert len(venue.submitted) == 1
    assert oms.orders["o"].state is S.ACCEPTED  # the first order stands
    venue.report(Canceled("o", 4))
    oms.submit(submit(5, "o", "buy", 0.5, 10))  # even once it is over
    assert len(venue.submitted) == 1 and oms.counts["duplicate_id"] == 2


def test_id_of_an_invalid_order_stays_taken() -> None:
    oms, venue, _ = make()
    oms.submit(submit(1, "o", "buy", 1.5, 10))
    oms.submit(submit(2, "o", "buy", 0.5, 10))
    a, b = take(oms)
    assert a["type"] == b["type"] == "order_rejected"
    assert "outside (0, 1)" in a["reason"] and "duplicate" in b["reason"]
    assert venue.submitted == []


# --- local validation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"price": 0}, "outside (0, 1)"),
        ({"price": 1}, "outside (0, 1)"),
        ({"size": 0}, "not positive"),
        ({"size": -3}, "not positive"),
        ({"tif": "IOC"}, "tif"),
        ({"tif": "FOK", "post_only": True}, "post_only is only for GTC/GTD"),
        ({"tif": "FAK", "post_only": True}, "post_only is only for GTC/GTD"),
        ({"tif": "GTD"}, "needs expire_at"),
        ({"tif": "GTD", "expire_at": 5}, "invalid expiration"),
        ({"tif": "GTC", "expire_at": 5000}, "only for GTD"),
        ({"side": "hold"}, "side"),
        ({"asset": 111}, "asset"),
    ],
)
def test_invalid_submit_is_rejected_locally(fields: dict[str, Any], words: str) -> None:
    oms, venue, _ = make()
    oms.submit({**submit(10, "o", "buy", 0.5, 10), **fields})
    (rej,) = take(oms)
    assert rej["type"] == "order_rejected" and words in rej["reason"], rej
    assert venue.submitted == []
    assert oms.orders["o"].state is S.REJECTED


def test_submit_without_id_is_bad_input() -> None:
    oms, _, _ = make()
    rec = submit(1, "o", "buy", 0.5, 10)
    del rec["id"]
    with pytest.raises(InvalidRecord):
        oms.submit(rec)
    with pytest.raises(InvalidRecord):
        oms.cancel({"type": "cancel_order", "ts_event": 1, "ts_init": 1})


def test_prices_reach_the_venue_as_exact_decimals() -> None:
    oms, venue, _ = make()
    oms.submit(
        submit(1, "o", "buy", 0.57, 21.04, neg_risk=True, tif="GTD", expire_at=99, client_tag="x")
    )
    (req,) = venue.submitted
    assert req.price == Decimal("0.57") and req.size == Decimal("21.04")
    assert req.neg_risk is True and req.expire_at == 99 and req.extra == {"client_tag": "x"}


# --- cancels -----------------------------------------------------------------------------------------------


def test_cancel_unknown_and_finished_orders() -> None:
    oms, venue, _ = make()
    oms.cancel(cancel(1, "ghost"))
    oms.submit(submit(2, "o", "buy", 0.5, 10))
    venue.report(Accepted("o", "v-o", 3))
    venue.report(fill("o", "t", 10))
    oms.cancel(cancel(4, "o"))
    oms.submit(submit(5, "p", "buy", 0.5, 10))
    oms.cancel(cancel(6, "p"))
    oms.cancel(cancel(7, "p"))
    out = [r for r in take(oms) if r["type"] == "cancel_rejected"]
    assert [(r["id"], r["reason"]) for r in out] == [
        ("ghost", "unknown order id"),
        ("o", "order is filled"),
        ("p", "cancel already pending"),
    ]
    assert [o.request.id for o in venue.canceled] == ["p"]


def test_cancel_all_scopes() -> None:
    oms, venue, _ = make()
    oms.submit(submit(1, "a", "buy", 0.5, 10, strategy="mm"))
    oms.submit(submit(1, "b", "buy", 0.5, 10, strategy="arb"))
    oms.submit(submit(1, "c", "buy", 0.5, 10, asset="222", strategy="mm"))
    oms.submit(submit(1, "d", "buy", 0.5, 10, market="0xother", asset="333", strategy="mm"))
    oms.cancel_all(cancel_all(2, strategy="mm", market=M))
    assert sorted(o.request.id for o in venue.canceled) == ["a", "c"]
    oms.cancel_all(cancel_all(3, asset="111"))
    assert sorted(o.request.id for o in venue.canceled) == ["a", "b", "c"]
    oms.cancel_all(cancel_all(4))
    assert sorted(o.request.id for o in venue.canceled) == ["a", "b", "c", "d"]
    oms.cancel_all(cancel_all(5))  # nothing open any more
    assert len(venue.canceled) == 4


# --- fills, positions, settlement -------------------------------------------------------------------------


def test_duplicate_fill_report_is_idempotent() -> None:
    oms, venue, _ = make()
    oms.submit(submit(1, "o", "buy", 0.5, 10))
    venue.report(Accepted("o", "v-o", 2))
    venue.report(fill("o", "t1", 4))
    venue.report(fill("o", "t1", 4))  # the venue repeats itself after a reconnect
    assert oms.orders["o"].filled == 4 and oms.portfolio.size(A) == 4
    assert oms.illegal == 0 and oms.counts["duplicate_fill"] == 1


def test_positions_avg_price_realized_pnl_and_fees() -> None:
    oms, venue, _ = make()
    oms.submit(submit(1, "b", "buy", 0.40, 10))
    oms.submit(submit(1, "s", "sell", 0.60, 10))
    venue.report(Accepted("b", "v-b", 2))
    venue.report(Accepted("s", "v-s", 2))
    venue.report(fill("b", "t1", 6, price=0.40, fee=0.1, liquidity="taker"))
    venue.report(fill("b", "t2", 4, price=0.45, fee=0.05, liquidity="taker"))
    venue.report(fill("s", "t3", 5, price=0.60))
    pos = [r for r in take(oms) if r["type"] == "position"][-1]
    assert pos["size"] == 5
    assert pos["avg_price"] == pytest.approx(0.42)
    assert pos["realized_pnl"] == pytest.approx((0.60 - 0.42) * 5)
    assert pos["fees"] == pytest.approx(0.15)


def test_failed_settlement_reverses_the_position() -> None:
    oms, venue, logs = make()
    oms.submit(submit(1, "o", "buy", 0.5, 10))
    venue.report(Accepted("o", "v-o", 2))
    venue.report(fill("o", "t1", 4))
    venue.report(fill("o", "t2", 6))
    take(oms)
    venue.report(Settled("o", "t1", "confirmed", 5))
    venue.report(Settled("o", "t1", "confirmed", 6))  # repeated: nothing new
    venue.report(Settled("o", "t2", "failed", 7))
    out = take(oms)
    assert [(r["type"], r.get("trade_id"), r.get("settlement")) for r in out] == [
        ("order_filled", "t1", "confirmed"),
        ("order_filled", "t2", "failed"),
        ("position", None, None),
    ]
    assert out[-1]["size"] == 4 and oms.portfolio.size(A) == 4
    assert any("FAILED" in line for line in logs)
    venue.report(Settled("o", "t2", "confirmed", 8))  # failed is final
    assert oms.illegal == 1


def test_restored_orders_are_tracked_and_cancelable() -> None:
    oms, venue, _ = make()
    req = OrderRequest("0xabc", "", "polymarket", M, A, "sell", Decimal("0.6"), Decimal(20))
    venue.report(Restored(req, "0xabc", Decimal(5), 1))
    (acc,) = take(oms)
    assert acc == {
        "type": "order_accepted",
        "ts_event": 1,
        "ts_init": 0,
        "id": "0xabc",
        "venue_order_id": "0xabc",
        # a restored order is new to the stream: its acceptance says what it is
        "strategy": req.strategy,
        "venue": req.venue,
        "market": req.market,
        "asset": req.asset,
        "side": req.side,
        "price": float(req.price),
        "size": float(req.size),
    }
    assert oms.orders["0xabc"].state is S.PARTIALLY_FILLED
    oms.cancel_all(cancel_all(2))
    assert [o.request.id for o in venue.canceled] == ["0xabc"]
    venue.report(Rejected("nobody", "x", 3))
    assert oms.illegal == 1


def test_expired_and_rejected_reports() -> None:
    oms, venue, _ = make()
    oms.submit(submit(1, "g", "buy", 0.5, 10, tif="GTD", expire_at=100))
    oms.submit(submit(1, "r", "buy", 0.5, 10))
    venue.report(Accepted("g", "v-g", 2))
    venue.report(Expired("g", 100, "GTD order reached expire_at"))
    venue.report(Rejected("r", "not enough balance / allowance", 2))
    out = take(oms)
    assert [(r["type"], r["id"]) for r in out] == [
        ("order_accepted", "g"),
        ("order_expired", "g"),
        ("order_rejected", "r"),
    ]
    assert oms.orders["g"].state is S.EXPIRED and oms.orders["r"].state is S.REJECTED


# --- asynchronous venues --------------------------------------------------------------------------------------


def test_reports_outside_on_record_are_emitted_at_once() -> None:
    venue = RecordingVenue()
    emitted: list[Any] = []
    stage = ExecStage(venue, Portfolio())
    assert stage.start(Context(EventClock(0), emitted.append, lambda m: None)) == []
    rec = submit(1, "o", "buy", 0.5, 10)
    assert list(stage.on_record(rec) or ()) == [rec]  # forwarded; the venue answers later
    assert emitted == []
    venue.report(Accepted("o", "0xhash", 5))  # e.g. an HTTP answer, later
    venue.report(fill("o", "t1", 10))  # a WebSocket trade
    assert [r["type"] for r in emitted] == ["order_accepted", "order_filled", "position"]
    final = list(stage.stop() or ())
    assert all(r["type"] == "metric" for r in final)  # type: ignore[index]


def test_market_orders_by_amount_only_reach_venues_that_take_them() -> None:
    oms, venue, _ = make()
    oms.submit(submit(1, "m1", "buy", 0.6, 100.0, tif="FAK", amount=20.0))
    (rej,) = take(oms)
    assert rej["type"] == "order_rejected" and venue.submitted == []
    assert rej["reason"] == "venue fake does not take market orders by amount"
    venue.amount_orders = True  # type: ignore[misc]
    oms.submit(submit(2, "m2", "buy", 0.6, 100.0, tif="FAK", amount=20.0))
    (req,) = venue.submitted
    assert req.amount == Decimal("20.0") and req.size == Decimal("100.0") and not req.extra
