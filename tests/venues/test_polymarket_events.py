"""User-channel payloads (captured and documented samples, copied into tests/fixtures)
through the venue's event handling: fills, settlement, cancels, replays, ordering."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from agkit.clock import Clock
from agkit.exec.venue import Accepted, Canceled, Filled, OrderRequest, Settled, VenueEvent
from agkit.venues.polymarket import signing as sg
from agkit.venues.polymarket.credentials import VenueConfig
from agkit.venues.polymarket.venue import PolymarketVenue, _Entry, _ts_us
from agkit.venues.polymarket.wire import norm_status

SAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "polymarket-samples"
KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    return data


def venue() -> tuple[PolymarketVenue, list[VenueEvent]]:
    cfg = VenueConfig(sg.Secret(KEY), None, None, 0, 137, "http://127.0.0.1:9", "ws://127.0.0.1:9")
    v = PolymarketVenue(False, config=cfg)
    got: list[VenueEvent] = []
    v.bind(got.append, Clock(), lambda _m: None)
    return v, got


def own(v: PolymarketVenue, order_hash: str, size: str = "100", acked: bool = True) -> str:
    cid = "c-" + order_hash[2:8]
    req = OrderRequest(cid, "t", "polymarket", "m", "a", "buy", Decimal("0.5"), Decimal(size))
    v._orders[cid] = _Entry(req, acked=acked, restored_id=order_hash)
    v._by_hash[order_hash] = cid
    return cid


def test_taker_fill_then_confirmed_then_replayed() -> None:
    v, got = venue()
    ev = sample("user_trade_matched_captured_2024.json")
    cid = own(v, ev["taker_order_id"])
    v._on_ws_event(ev)
    assert len(got) == 1 and isinstance(got[0], Filled)
    f = got[0]
    assert (f.id, f.price, f.size, f.liquidity, f.settlement) == (cid, 0.52, 5.0, "taker", "pending")
    assert f.ts_event == 1725958682125 * 1000
    v._on_ws_event(ev)  # replay (reconnect): nothing new
    assert len(got) == 1
    v._on_ws_event({**ev, "status": "MINED"})
    v._on_ws_event({**ev, "status": "CONFIRMED"})
    v._on_ws_event({**ev, "status": "CONFIRMED"})
    assert [type(e) for e in got] == [Filled, Settled]
    s = got[1]
    assert isinstance(s, Settled) and s.settlement == "confirmed" and s.trade_id == ev["id"]


def test_maker_entries_of_ours_in_a_multi_maker_trade() -> None:
    v, got = venue()
    ev = sample("user_trade_maker_multi_fill_captured_2025.json")
    ours = [m for m in ev["maker_orders"] if m["owner"] == ev["maker_orders"][0]["owner"]]
    cids = {own(v, m["order_id"]): m for m in ours}
    v._on_ws_event(ev)
    fills = [e for e in got if isinstance(e, Filled)]
    assert {f.id for f in fills} == set(cids)
    for f in fills:
        m = cids[f.id]
        assert f.liquidity == "maker" and f.fee == 0.0
        assert f.price == float(m["price"]) and f.size == float(m["matched_amount"])
        assert f.settlement == {"CONFIRMED": "confirmed"}.get(ev["status"], "pending")


def test_rest_shaped_trade_first_seen_confirmed() -> None:
    v, got = venue()
    ev = sample("user_trade_no_event_type_captured_2024.json")
    assert "event_type" not in ev
    own(v, ev["taker_order_id"])
    v._on_trade(ev)
    assert len(got) == 1 and isinstance(got[0], Filled) and got[0].settlement == "confirmed"


def test_failed_before_matched_is_not_a_fill() -> None:
    v, got = venue()
    ev = sample("user_trade_matched_captured_2024.json")
    own(v, ev["taker_order_id"])
    v._on_ws_event({**ev, "status": "FAILED"})
    assert got == []


def test_matched_then_failed() -> None:
    v, got = venue()
    ev = sample("user_trade_matched_captured_2024.json")
    own(v, ev["taker_order_id"])
    v._on_ws_event(ev)
    v._on_ws_event({**ev, "status": "RETRYING"})
    v._on_ws_event({**ev, "status": "FAILED"})
    assert [type(e) for e in got] == [Filled, Settled]
    assert isinstance(got[1], Settled) and got[1].settlement == "failed"


def test_fok_kill_and_cancellation_events() -> None:
    v, got = venue()
    kill = sample("user_order_fok_killed_synthetic.json")
    cid = own(v, kill["id"])
    v._on_ws_event(kill)
    v._on_ws_event(kill)  # once only
    assert len(got) == 1 and isinstance(got[0], Canceled)
    assert got[0].id == cid and got[0].reason == "order couldn't be fully filled. FOK orders are fully filled or killed."
    cancel = sample("user_order_cancellation_captured_2024.json")
    cid2 = own(v, cancel["id"])
    v._orders[cid2].cancel_requested = True
    v._on_ws_event(cancel)
    assert isinstance(got[1], Canceled) and got[1].reason is None  # we asked for it


def test_fill_before_acceptance_waits_for_it() -> None:
    async def main() -> None:
        v, got = venue()
        ev = sample("user_trade_matched_captured_2024.json")
        cid = own(v, ev["taker_order_id"], acked=False)
        entry = v._orders[cid]
        entry.done = asyncio.get_running_loop().create_future()
        v._on_ws_event(ev)
        v._on_ws_event({**ev, "status": "CONFIRMED"})
        assert got == []
        v._accept(entry)
        assert [type(e) for e in got] == [Accepted, Filled, Settled]

    asyncio.run(main())


def test_status_and_timestamp_normalisation() -> None:
    assert norm_status("ORDER_STATUS_LIVE") == "LIVE"
    assert norm_status("TRADE_STATUS_CONFIRMED") == "CONFIRMED"
    assert norm_status("CANCELED_order couldn't be fully filled") == "CANCELED"
    assert norm_status("live") == "LIVE"
    assert _ts_us("1725958682125", 0) == 1725958682125000
    assert _ts_us("1762776436", 0) == 1762776436000000
    assert _ts_us("", 7) == 7 and _ts_us(None, 7) == 7


class StubClient:
    """Answers reconciliation reads with the REST samples."""

    async def open_orders(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = sample("clob_get_open_orders_page_synthetic.json")["data"]
        return data

    async def trades(self, **_query: Any) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = sample("clob_get_trades_page_synthetic.json")["data"]
        return data

    async def get_order(self, _h: str) -> None:
        return None


def test_reconcile_restores_open_orders_from_rest_samples() -> None:
    from agkit.exec.venue import Restored

    async def main() -> None:
        v, got = venue()
        v._client = StubClient()  # type: ignore[assignment]
        await v._reconcile(first=True)
        restored = [e for e in got if isinstance(e, Restored)]
        assert [r.venue_order_id for r in restored] == [o["id"] for o in sample("clob_get_open_orders_page_synthetic.json")["data"]]
        second = restored[1]
        assert second.order.side == "sell" and second.order.price == Decimal("0.4000") and second.order.tif == "GTD"
        assert second.filled == Decimal("50") and second.order.size == Decimal("150")
        # the trade sample belongs to no order of ours: nothing else reported
        assert len(got) == 2
        await v._reconcile(first=False)  # again: nothing new, nothing twice
        assert len(got) == 2

    asyncio.run(main())


def test_balance_shapes() -> None:
    from agkit.cli.venue import _units

    assert _units(sample("clob_balance_allowance_no_allowance_synthetic.json")["balance"]) == 250.5
    single = sample("clob_balance_allowance_single_allowance_synthetic.json")
    assert _units(single["balance"]) == 1000.0 and _units(single["allowance"]) == 999999999.0
