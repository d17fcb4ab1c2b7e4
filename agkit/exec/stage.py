"""`agkit exec`: the execution stage (OMS + a venue) as a library object.

    stage = ExecStage(PaperVenue(latency_us=5_000, fee_rate=0.02))
    Chain([strategy, risk, stage], feedback_from=2).process(records)

It consumes `submit_order`, `cancel_order` and `cancel_all`, and observes the market
records (`book`, `trade`, `tick_size_changed`, `market_resolved`, `feed_status`): all
of them are forwarded unchanged, and exec's own events (`order_accepted`,
`order_rejected`, `order_canceled`, `order_expired`, `order_filled`, `cancel_rejected`,
`position`, `metric`) follow the record that caused them. Everything else passes
through untouched. Event time is the largest `ts_event` seen; before each record the
venue fires what was due until then (latency, expiry).

An `order_denied` from risk-check ends an order exec never saw. Exec sends it on as its
own record, so with `--feedback` (or in a Chain) it goes around the loop like exec's
order events and the strategy learns that the order is not working; downstream still
sees it once.

Reports an asynchronous venue makes outside `on_record` (HTTP answers, WebSocket
fills) are emitted at once with `ctx.emit`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable
from typing import Any

from agkit.clock import MAX_TS_US
from agkit.errors import InvalidRecord
from agkit.exec.oms import Oms
from agkit.exec.venue import Venue, VenueEvent
from agkit.portfolio import Portfolio
from agkit.stage import Context, Out, Rec, Stage, Timer

COMMANDS = frozenset({"submit_order", "cancel_order", "cancel_all"})
MARKET = frozenset({"book", "trade", "tick_size_changed", "market_resolved", "feed_status"})


class ExecStage(Stage):
    name = "exec"
    consumes = COMMANDS | MARKET | {"order_denied"}

    def __init__(self, venue: Venue, portfolio: Portfolio | None = None) -> None:
        self.venue = venue
        self.portfolio = portfolio or Portfolio()
        self._sync = True  # inside a call whose return value carries the records

    # --- Stage -------------------------------------------------------------------------

    def start(self, ctx: Context) -> Out:
        self.ctx = ctx
        self.oms = Oms(self.venue, ctx.clock, ctx.log, self.portfolio)
        self.venue.bind(self._report, ctx.clock, ctx.log)
        self._advance = self.venue.advance
        self._on_market = self.venue.on_market
        res = self.venue.start()
        if inspect.isawaitable(res):
            return self._finish_async(res)  # type: ignore[return-value]  # PipeRunner awaits it
        self._sync = False
        return self._take()

    async def _finish_async(self, res: Awaitable[None]) -> Out:
        self._sync = True
        try:
            await res
        finally:
            self._sync = False
        return self._take()

    def on_record(self, rec: dict[str, Any]) -> Out:
        if rec["type"] == "order_denied":
            return (dict(rec),)  # a copy is exec's own record: it goes around the loop
        ts = rec.get("ts_event")
        oms = self.oms
        self._sync = True
        try:
            if type(ts) is int and ts <= MAX_TS_US:  # past it, not a time: moves nothing
                if ts > oms.now:
                    oms.now = ts
                self._advance(ts)
            rtype = rec["type"]
            if rtype in MARKET:
                if rtype == "market_resolved":
                    oms.observe(rec)
                try:
                    self._on_market(rec)
                except (KeyError, TypeError, IndexError, ValueError) as exc:
                    raise InvalidRecord(f"malformed {rtype} record: {exc!r}") from None
            elif rtype == "submit_order":
                oms.submit(rec)
            elif rtype == "cancel_order":
                oms.cancel(rec)
            else:
                oms.cancel_all(rec)
        finally:
            self._sync = False
        out = oms.out
        if not out:
            return (rec,)
        oms.out = []
        return [rec, *out]

    def timers(self) -> list[Timer]:
        return self.venue.timers()

    def run(self, ctx: Context) -> Awaitable[None] | None:
        return self.venue.run()

    def stop(self) -> Out:
        self._sync = True
        res = self.venue.stop()
        if inspect.isawaitable(res):
            return self._stop_async(res)  # type: ignore[return-value]  # PipeRunner awaits it
        self._sync = False
        return [*self._take(), *self.oms.metrics()]

    async def _stop_async(self, res: Awaitable[None]) -> Out:
        try:
            await res
        finally:
            self._sync = False
        return [*self._take(), *self.oms.metrics()]

    # --- venue reports -------------------------------------------------------------------

    def _report(self, ev: VenueEvent) -> None:
        self.oms.on_event(ev)
        if not self._sync:  # an asynchronous report: out now, with ctx.emit
            for r in self._take():
                self.ctx.emit(r)

    def _take(self) -> list[Rec]:
        out: list[Rec] = list(self.oms.out)
        self.oms.out = []
        return out
