"""The RiskCheck stage in one process (Chain, event clock): every policy passes and refuses."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from agkit.clock import EventClock
from agkit.risk.policy import parse_policy
from agkit.risk.stage import RiskCheck
from agkit.runner import Chain
from tests.risk.builders import T0, book, event, fill, order

MS = 1000


def run(policy: str, records: list[dict[str, Any]], **kw: Any) -> tuple[list[dict[str, Any]], RiskCheck]:
    kw.setdefault("metrics_interval_ms", 0)
    stage = RiskCheck(parse_policy(policy, "t.yaml"), **kw)
    # the event clock starts at the stream's first time (a Chain schedules timers from it)
    out = [r for r in Chain([stage], clock=EventClock(T0)).process(records) if isinstance(r, dict)]
    return out, stage


def verdicts(out: list[dict[str, Any]]) -> dict[str, str]:
    """order id -> 'ok' or the denying policy."""
    res = {}
    for r in out:
        if r["type"] == "submit_order":
            res[r["id"]] = "ok"
        elif r["type"] == "order_denied":
            res[r["id"]] = r["policy"]
    return res


def pol(body: str) -> str:
    return "policies:\n" + body


def test_approved_order_is_the_same_object_and_others_pass() -> None:
    o = order("o1")
    b = book()
    unknown = {"type": "zz", "ts_event": T0, "ts_init": T0}
    out, _ = run(pol("  - type: PositionLimit\n    max_size: 100\n"), [b, o, unknown])
    assert out[0] is b and out[1] is o and out[2] is unknown


def test_position_limit_pass_and_refuse() -> None:
    p = pol("  - type: PositionLimit\n    max_size: 100\n")
    out, _ = run(p, [order("o1", size=60), fill("o1", size=60), order("o2", size=40), order("o3", size=1)])
    v = verdicts(out)
    assert v == {"o1": "ok", "o2": "ok", "o3": "PositionLimit"}  # 60 filled + 40 open + 1 > 100
    denied = next(r for r in out if r["type"] == "order_denied")
    assert "new position 101.00 exceeds max 100.00" in denied["reason"]


def test_position_limit_reducing_order_is_exempt() -> None:
    p = pol("  - type: PositionLimit\n    max_size: 50\n")
    recs = [fill("x", size=80), order("sell", side="sell", size=30), order("buy", size=1)]
    assert verdicts(run(p, recs)[0]) == {"sell": "ok", "buy": "PositionLimit"}


def test_position_limit_market_id_only_applies_to_that_market() -> None:
    p = pol('  - type: PositionLimit\n    market_id: "0xabc"\n    max_size: 5\n')
    recs = [order("a", size=10, market="0xabc"), order("b", size=10, market="other", asset="a2")]
    assert verdicts(run(p, recs)[0]) == {"a": "PositionLimit", "b": "ok"}


def test_position_limit_market_scope_counts_both_outcomes() -> None:
    p = pol("  - type: PositionLimit\n    scope: market\n    max_size: 100\n")
    recs = [fill("y", size=70, asset="yes"), order("n1", size=30, asset="no"), order("n2", size=1, asset="no")]
    assert verdicts(run(p, recs)[0]) == {"n1": "ok", "n2": "PositionLimit"}


def test_position_limit_event_scope() -> None:
    p = "events:\n  election: [m1, m2]\n" + pol("  - type: PositionLimit\n    event: election\n    max_size: 100\n")
    recs = [
        fill("a", size=80, asset="a1", market="m1"),
        order("b", size=20, asset="b1", market="m2"),
        order("c", size=5, asset="b1", market="m2"),
        order("d", size=500, asset="c1", market="m3"),  # not in the event
    ]
    assert verdicts(run(p, recs)[0]) == {"b": "ok", "c": "PositionLimit", "d": "ok"}


def test_position_limit_without_open_orders() -> None:
    p = pol("  - type: PositionLimit\n    max_size: 10\n    include_open_orders: false\n")
    recs = [order("a", size=10), order("b", size=10), order("c", size=11)]
    assert verdicts(run(p, recs)[0]) == {"a": "ok", "b": "ok", "c": "PositionLimit"}


def test_inventory_limit_at_mark() -> None:
    p = pol("  - type: InventoryLimit\n    max_value_usd: 100\n")
    recs = [book(bid=0.49, ask=0.51), fill("f", size=150, price=0.5), order("ok", size=40), order("no", size=20)]
    # 150 filled + 40 open + 40 = 190 shares x 0.5 = 95 <= 100; then 230 x 0.5 = 115 > 100
    assert verdicts(run(p, recs)[0]) == {"ok": "ok", "no": "InventoryLimit"}


def test_inventory_limit_worst_case_uses_cost_basis_and_short_side() -> None:
    p = pol("  - type: InventoryLimit\n    basis: worst_case\n    max_value_usd: 10\n")
    # buying 20 at 0.4 risks 8; buying 30 at 0.4 risks 12
    assert verdicts(run(p, [order("a", price=0.4, size=20), order("b", price=0.4, size=5.1)])[0]) == {
        "a": "ok",
        "b": "InventoryLimit",
    }
    # a short of 20 at 0.6 risks 20 x (1 - 0.6) = 8; 30 risks 12
    assert verdicts(run(p, [order("s", side="sell", price=0.6, size=20)])[0]) == {"s": "ok"}
    assert verdicts(run(p, [order("s", side="sell", price=0.6, size=30)])[0]) == {"s": "InventoryLimit"}


def test_inventory_limit_reducing_order_passes_when_over_limit() -> None:
    p = pol("  - type: InventoryLimit\n    max_value_usd: 10\n")
    recs = [book(), fill("f", size=100), order("sell", side="sell", size=50), order("buy", size=1)]
    assert verdicts(run(p, recs)[0]) == {"sell": "ok", "buy": "InventoryLimit"}


def test_order_limit() -> None:
    p = pol("  - type: OrderLimit\n    max_size: 100\n    max_notional_usd: 30\n    min_size: 5\n")
    recs = [order("ok", size=50, price=0.5), order("big", size=101, price=0.1), order("notional", size=80, price=0.5), order("tiny", size=1)]
    assert verdicts(run(p, recs)[0]) == {"ok": "ok", "big": "OrderLimit", "notional": "OrderLimit", "tiny": "OrderLimit"}


def test_price_band() -> None:
    p = pol("  - type: PriceBand\n    max_deviation: 0.05\n")
    recs = [order("nobook"), book(bid=0.40, ask=0.50), order("ok", price=0.50), order("far", price=0.51)]
    out, _ = run(p, recs)
    assert verdicts(out) == {"nobook": "PriceBand", "ok": "ok", "far": "PriceBand"}


def test_order_sanity_price_outside_unit_interval() -> None:
    out, _ = run(pol("  - type: KillSwitch\n    enabled: false\n"), [order("a", price=1.2), order("b", size=0)])
    assert verdicts(out) == {"a": "OrderSanity", "b": "OrderSanity"}


def test_open_order_limit_and_release_by_exec_events() -> None:
    p = pol("  - type: OpenOrderLimit\n    max_orders: 2\n    max_per_asset: 2\n")
    recs = [
        order("a"),
        order("b"),
        order("c"),
        event("order_canceled", "a"),
        order("d"),
        fill("b"),  # fully filled: closed
        order("e"),
        event("order_rejected", "d"),
        event("order_expired", "e"),
        order("f"),
    ]
    assert verdicts(run(p, recs)[0]) == {"a": "ok", "b": "ok", "c": "OpenOrderLimit", "d": "ok", "e": "ok", "f": "ok"}


def test_open_order_limit_per_asset() -> None:
    p = pol("  - type: OpenOrderLimit\n    max_per_asset: 1\n")
    recs = [order("a"), order("b"), order("c", asset="a2")]
    assert verdicts(run(p, recs)[0]) == {"a": "ok", "b": "OpenOrderLimit", "c": "ok"}


def test_rate_limit_uses_event_time() -> None:
    p = pol("  - type: RateLimit\n    max_orders: 2\n    window_ms: 1000\n")
    recs = [
        order("a", ts=T0),
        order("b", ts=T0 + 100 * MS),
        order("c", ts=T0 + 900 * MS),
        order("d", ts=T0 + 1000 * MS),  # a left the window
        order("e", ts=T0 + 1050 * MS),
    ]
    assert verdicts(run(p, recs)[0]) == {"a": "ok", "b": "ok", "c": "RateLimit", "d": "ok", "e": "RateLimit"}


def test_rate_limit_window_holds_only_its_time_span() -> None:
    """A generous max_orders must not turn the window into a log of every order."""
    p = pol("  - type: RateLimit\n    max_orders: 1000000\n    window_ms: 100\n")
    recs = [order(f"o{i}", ts=T0 + i * MS, size=1) for i in range(3000)]
    out, stage = run(p, recs)
    assert set(verdicts(out).values()) == {"ok"}
    (window,) = stage._rate_by_spec.values()
    assert len(window) == 100  # the approvals of the last 100 ms, one per ms


def test_stale_data_uses_event_time() -> None:
    p = pol("  - type: StaleData\n    max_age_ms: 500\n")
    recs = [
        order("nobook"),
        book(ts=T0),
        order("fresh", ts=T0 + 500 * MS),
        order("stale", ts=T0 + 501 * MS),
        book(ts=T0 + 600 * MS),
        order("again", ts=T0 + 600 * MS),
    ]
    assert verdicts(run(p, recs)[0]) == {"nobook": "StaleData", "fresh": "ok", "stale": "StaleData", "again": "ok"}


def test_reduce_only() -> None:
    p = pol("  - type: ReduceOnly\n    enabled: true\n")
    recs = [order("open"), fill("f", size=10), order("sell", side="sell", size=10), order("sell2", side="sell", size=1)]
    # sell2: with 10 already being sold, one more would flip the position: not reducing
    assert verdicts(run(p, recs)[0]) == {"open": "ReduceOnly", "sell": "ok", "sell2": "ReduceOnly"}
    assert verdicts(run(pol("  - type: ReduceOnly\n    enabled: false\n"), [order("x")])[0]) == {"x": "ok"}


def test_loss_limit_trips_kill_switch_and_allows_reducing() -> None:
    p = pol("  - type: LossLimit\n    max_daily_loss_usd: 30\n")
    recs = [
        book(bid=0.49, ask=0.51),
        fill("f", size=100, price=0.5),
        order("before"),
        book(bid=0.29, ask=0.31, ts=T0 + 1),  # -20: still fine
        order("still", ts=T0 + 2),
        book(bid=0.09, ask=0.11, ts=T0 + 3),  # -40: breached
        order("after", ts=T0 + 4),
        order("reduce", side="sell", price=0.1, size=50, ts=T0 + 5),
    ]
    out, stage = run(p, recs)
    types = [r["type"] for r in out]
    i = types.index("kill_switch")
    assert types[i + 1] == "cancel_all" and out[i - 1]["type"] == "book" and out[i - 1]["ts_event"] == T0 + 3
    assert out[i]["engaged"] is True and "daily loss 40.00" in out[i]["reason"]
    assert verdicts(out) == {"before": "ok", "still": "ok", "after": "KillSwitch", "reduce": "ok"}
    assert stage.kill.engaged


def test_loss_limit_without_kill_switch_still_denies() -> None:
    p = pol("  - type: LossLimit\n    max_drawdown_usd: 10\n    kill_switch: false\n")
    recs = [book(), fill("f", size=100), book(bid=0.2, ask=0.2, ts=T0 + 1), order("x", ts=T0 + 2)]
    out, stage = run(p, recs)
    assert "kill_switch" not in [r["type"] for r in out]
    assert verdicts(out) == {"x": "LossLimit"}
    assert not stage.kill.engaged


def test_daily_loss_resets_at_utc_midnight() -> None:
    p = pol("  - type: LossLimit\n    max_daily_loss_usd: 30\n    kill_switch: false\n")
    day = 86_400_000_000
    recs = [book(), fill("f", size=100), book(bid=0.1, ask=0.1, ts=T0 + 1), order("x", ts=T0 + 2), order("y", ts=T0 + day)]
    assert verdicts(run(p, recs)[0]) == {"x": "LossLimit", "y": "ok"}


def test_drawdown_pct() -> None:
    p = pol("  - type: LossLimit\n    max_drawdown_pct: 10\n    capital_usd: 100\n    kill_switch: false\n")
    recs = [book(), fill("f", size=100), book(bid=0.41, ask=0.41, ts=T0 + 1), order("ok", ts=T0 + 2), book(bid=0.39, ask=0.39, ts=T0 + 3), order("no", ts=T0 + 4)]
    assert verdicts(run(p, recs)[0]) == {"ok": "ok", "no": "LossLimit"}


def test_kill_switch_policy_enabled_denies_all_but_reducing() -> None:
    p = pol("  - type: KillSwitch\n    enabled: true\n")
    out, stage = run(p, [fill("f", size=10), order("buy"), order("sell", side="sell", size=5)])
    assert out[0]["type"] == "kill_switch" and out[0]["engaged"] is True
    assert out[1]["type"] == "cancel_all"
    assert verdicts(out) == {"buy": "KillSwitch", "sell": "ok"}
    assert stage.engage("manual", "again") == []  # already engaged: nothing new


def test_disengage_is_explicit() -> None:
    p = pol("  - type: KillSwitch\n    enabled: true\n")
    stage = RiskCheck(parse_policy(p), metrics_interval_ms=0)
    chain = Chain([stage], clock=EventClock(T0))
    list(chain.start(_ctx(chain)) or ())
    assert verdicts(list(chain.on_record(order("a")) or ())) == {"a": "KillSwitch"}  # type: ignore[arg-type]
    recs = stage.disengage("test")
    assert recs[0]["type"] == "kill_switch" and recs[0]["engaged"] is False
    assert verdicts(list(chain.on_record(order("b")) or ())) == {"b": "ok"}  # type: ignore[arg-type]


def _ctx(chain: Chain) -> Any:
    from agkit.stage import Context

    return Context(chain.clock, lambda r: None, lambda m: None)


def test_kill_file_engages_on_timer_and_blocks_disengage(tmp_path: Path) -> None:
    kill = tmp_path / "KILL"
    p = pol("  - type: OrderLimit\n    max_size: 1000\n")
    stage = RiskCheck(parse_policy(p), kill_file=str(kill), kill_file_interval_ms=100, metrics_interval_ms=0)
    chain = Chain([stage], clock=EventClock(T0))
    out: list[Any] = list(chain.start(_ctx(chain)) or ())
    out += chain.on_record(order("a", ts=T0 + 1)) or ()
    kill.write_text("stop")
    out += chain.on_record(order("b", ts=T0 + 50 * MS)) or ()  # timer not due yet
    out += chain.on_record(order("c", ts=T0 + 250 * MS)) or ()
    types = [r["type"] for r in out]
    assert types.count("kill_switch") == 1 and "cancel_all" in types
    assert types.index("kill_switch") < [r.get("id") for r in out].index("c")
    assert verdicts(out) == {"a": "ok", "b": "ok", "c": "KillSwitch"}
    assert stage.disengage("test") == []  # refused while the file exists
    kill.unlink()
    assert stage.disengage("test")[0]["engaged"] is False


def test_fill_dedup_and_failed_settlement_reverses() -> None:
    p = pol("  - type: PositionLimit\n    max_size: 100\n    include_open_orders: false\n")
    recs = [
        fill("f", size=90, trade="t1"),
        fill("f", size=90, trade="t1", settlement="confirmed"),  # same trade: not counted twice
        order("a", size=10),
        fill("f", size=90, trade="t1", settlement="failed"),  # reversed
        order("b", size=100),
    ]
    out, stage = run(p, recs)
    assert verdicts(out) == {"a": "ok", "b": "ok"}
    assert stage.pf.size("a1") == 0.0


def test_market_resolution_closes_positions() -> None:
    p = pol("  - type: PositionLimit\n    max_size: 100\n    include_open_orders: false\n")
    resolved = {"type": "market_resolved", "ts_event": T0, "ts_init": T0, "venue": "sim", "market": "m1", "winning_asset": "a1"}
    out, stage = run(p, [fill("f", size=100), order("x", size=1), resolved, order("y", size=100)])
    assert verdicts(out) == {"x": "PositionLimit", "y": "ok"}
    assert stage.net_pnl == stage.exposure()["net_pnl_usd"] == 50.0


def test_duplicate_open_id_denied() -> None:
    out, _ = run(pol("  - type: OrderLimit\n    max_size: 100\n"), [order("a"), order("a")])
    assert [r["type"] for r in out] == ["submit_order", "order_denied"]


def test_all_violations_are_collected() -> None:
    p = pol("  - type: OrderLimit\n    max_size: 1\n  - type: PositionLimit\n    name: Tiny\n    max_size: 1\n")
    out, _ = run(p, [order("a", size=5)])
    d = out[0]
    assert d["type"] == "order_denied" and d["policy"] == "OrderLimit" and d["violations"] == ["OrderLimit", "Tiny"]
    assert "Tiny: new position 5.00" in d["reason"]


def test_metrics_records() -> None:
    p = pol("  - type: OrderLimit\n    max_size: 5\n")
    out, _ = run(p, [book(), order("a", size=1), order("b", size=9), order("c", size=1, ts=T0 + 2_000_000)], metrics_interval_ms=1000)
    metrics = [r for r in out if r["type"] == "metric"]
    names = {m["name"] for m in metrics}
    assert {"risk.decisions", "risk.exposure_usd", "risk.kill_switch", "risk.open_orders"} <= names
    last = {(m["name"], tuple(sorted(m["labels"].items()))): m["value"] for m in metrics}
    assert last[("risk.decisions", (("decision", "approved"), ("policy", "all")))] == 2
    assert last[("risk.decisions", (("decision", "denied"), ("policy", "OrderLimit")))] == 1
    assert last[("risk.kill_switch", ())] == 0


def test_invalid_order_raises_invalid_record() -> None:
    import pytest

    from agkit.errors import InvalidRecord

    stage = RiskCheck(parse_policy(pol("  - type: OrderLimit\n    max_size: 5\n")), metrics_interval_ms=0)
    chain = Chain([stage], clock=EventClock(T0))
    list(chain.start(_ctx(chain)) or ())
    bad = order("a")
    del bad["price"]
    with pytest.raises(InvalidRecord):
        chain.on_record(bad)
    bad = order("b")
    bad["side"] = "long"
    with pytest.raises(InvalidRecord):
        chain.on_record(bad)


def test_books_no_market_holds_are_refused() -> None:
    from agkit.errors import InvalidRecord

    stage = RiskCheck(parse_policy(pol("  - type: OrderLimit\n    max_size: 5\n")), metrics_interval_ms=0)
    chain = Chain([stage], clock=EventClock(T0))
    list(chain.start(_ctx(chain)) or ())
    good = book("a", 0.40, 0.42)
    for change, words in (
        ({"asset": ["a"]}, "asset must be a string"),  # unhashable: was a TypeError crash
        ({"bids": [[1e308, 5]]}, "outside [0, 1]"),
        ({"asks": [["0.5", 5]]}, "malformed"),
    ):
        with pytest.raises(InvalidRecord, match=re.escape(words)):
            chain.on_record({**good, **change})
    assert list(chain.on_record(good) or ()) == [good]


def test_incremental_gross_matches_recomputation() -> None:
    """The per-market totals kept incrementally equal a from-scratch sum."""
    import random

    p = "events:\n  ev: [m1, m2]\n" + pol(
        "  - type: PositionLimit\n    scope: market\n    max_size: 1.0e9\n"
        "  - type: PositionLimit\n    name: Ev\n    event: ev\n    max_size: 1.0e9\n    include_open_orders: false\n"
    )
    rnd = random.Random(4)
    recs: list[dict[str, Any]] = []
    live: list[str] = []
    for i in range(400):
        asset = rnd.choice(["a1", "a2", "b1", "b2"])
        market = "m1" if asset.startswith("a") else "m2"
        op = rnd.random()
        if op < 0.5 or not live:
            oid = f"o{i}"
            recs.append(order(oid, side=rnd.choice(["buy", "sell"]), size=float(rnd.randint(1, 50)), asset=asset, market=market))
            live.append(oid)
        elif op < 0.8:
            oid = rnd.choice(live)
            recs.append(event("order_canceled", oid))
            live.remove(oid)
        else:
            recs.append(fill(f"x{i}", side=rnd.choice(["buy", "sell"]), size=float(rnd.randint(1, 30)), asset=asset, market=market))
    _out, stage = run(p, recs)
    positions = stage.pf.positions
    for market, assets in stage.market_assets.items():
        held = sum(abs(positions[x].size) if x in positions else 0.0 for x in assets)
        opened = sum(stage.open_buy.get(x, 0.0) + stage.open_sell.get(x, 0.0) for x in assets)
        assert stage.mkt_excl.get(market, 0.0) == pytest.approx(held)
        assert stage.mkt_incl.get(market, 0.0) == pytest.approx(held + opened)
        # the bound the fast path tests is never below the exact gross with open orders
        assert stage.mkt_incl.get(market, 0.0) >= stage._gross_other([market], "", True) - 1e-9
        assert stage.mkt_excl.get(market, 0.0) == pytest.approx(stage._gross_other([market], "", False))


def test_market_and_event_limits_match_a_from_scratch_model() -> None:
    """Near tight market and event limits, every decision equals one computed from
    scratch (gross = this asset's new |position| + every other asset's, open orders
    counted on their worse side), through orders, cancels and partial fills."""
    import random

    from agkit.stage import Context

    markets = {"a1": "m1", "a2": "m1", "b1": "m2", "b2": "m2"}
    p = "events:\n  ev: [m1, m2]\n" + pol(
        "  - type: PositionLimit\n    name: Mkt\n    scope: market\n    max_size: 60\n"
        "  - type: PositionLimit\n    name: Ev\n    event: ev\n    max_size: 100\n    include_open_orders: false\n"
    )
    stage = RiskCheck(parse_policy(p, "t.yaml"), metrics_interval_ms=0, signals=False, advance_clock=True)
    stage.start(Context(EventClock(T0), lambda r: None, lambda m: None))
    pos = dict.fromkeys(markets, 0.0)
    buy = dict.fromkeys(markets, 0.0)
    sell = dict.fromkeys(markets, 0.0)
    live: dict[str, list[Any]] = {}  # id -> [asset, side, remaining, price]

    def gross(x: str, with_open: bool) -> float:
        return max(abs(pos[x] + buy[x]), abs(pos[x] - sell[x])) if with_open else abs(pos[x])

    def expected(a: str, side: str, size: float) -> set[str]:
        sgn = 1.0 if side == "buy" else -1.0
        same = buy[a] if side == "buy" else sell[a]
        if pos[a] * sgn < 0 and size + same <= abs(pos[a]) + 1e-9:
            return set()  # reduces exposure: never refused by a position limit
        out = set()
        mkt = abs(pos[a] + sgn * (size + same)) + sum(gross(x, True) for x in markets if markets[x] == markets[a] and x != a)
        if mkt > 60 + 1e-9:
            out.add("Mkt")
        if abs(pos[a] + sgn * size) + sum(gross(x, False) for x in markets if x != a) > 100 + 1e-9:
            out.add("Ev")
        return out

    rnd = random.Random(11)
    denied = approved = 0
    for i in range(3000):
        ts = T0 + i
        op = rnd.random()
        if op < 0.55 or not live:
            a, side, size = rnd.choice(list(markets)), rnd.choice(["buy", "sell"]), float(rnd.randint(1, 25))
            want = expected(a, side, size)
            (res,) = stage.on_record(order(f"o{i}", side, 0.5, size, a, ts, markets[a]))
            got = set() if res["type"] == "submit_order" else set(res.get("violations") or [res["policy"]])
            assert got == want, (i, a, side, size, got, want)
            if not got:
                approved += 1
                live[f"o{i}"] = [a, side, size, 0.5]
                (buy if side == "buy" else sell)[a] += size
            else:
                denied += 1
        elif op < 0.8:
            oid = rnd.choice(sorted(live))
            a, side, left, _ = live.pop(oid)
            stage.on_record(event(rnd.choice(["order_canceled", "order_expired", "order_rejected"]), oid, ts))
            (buy if side == "buy" else sell)[a] -= left
        else:
            oid = rnd.choice(sorted(live))
            a, side, left, price = live[oid]
            qty = float(rnd.randint(1, int(left)))
            stage.on_record(fill(oid, side, price, qty, a, ts, markets[a], trade=f"t{i}"))
            pos[a] += qty if side == "buy" else -qty
            (buy if side == "buy" else sell)[a] -= qty
            live[oid][2] -= qty
            if live[oid][2] <= 1e-9:
                del live[oid]
    assert approved > 300 and denied > 300  # both sides of both limits were exercised


class _EveryClosure(RiskCheck):
    prefilter = False


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_inline_pass_tests_never_let_through_what_the_policies_refuse(seed: int) -> None:
    """The generated handler skips a policy's closure when its inline test says the
    order passes. With every closure called for every order instead, a random stream of
    books, orders, cancels and fills under tight limits of every kind gets exactly the
    same output."""
    import random

    rnd = random.Random(seed)
    markets = {"a1": "m1", "a2": "m1", "b1": "m2", "b2": "m2"}
    p = "events:\n  ev: [m1, m2]\n" + pol(
        "  - type: PositionLimit\n    max_size: 40\n"
        "  - type: PositionLimit\n    name: Mkt\n    scope: market\n    max_size: 70\n"
        "  - type: PositionLimit\n    name: Ev\n    event: ev\n    max_size: 110\n"
        "  - type: InventoryLimit\n    max_value_usd: 45\n"
        "  - type: InventoryLimit\n    name: Worst\n    basis: worst_case\n    max_value_usd: 50\n"
        "  - type: OrderLimit\n    max_size: 20\n    max_notional_usd: 8\n    min_size: 2\n"
        "  - type: PriceBand\n    max_deviation: 0.05\n"
        "  - type: OpenOrderLimit\n    max_orders: 12\n    max_per_asset: 4\n"
        "  - type: RateLimit\n    max_orders: 6\n    window_ms: 50\n"
        "  - type: LossLimit\n    max_daily_loss_usd: 15\n"
        "  - type: StaleData\n    max_age_ms: 40\n"
        "  - type: ReduceOnly\n    enabled: true\n    asset: b2\n"
    )
    recs: list[dict[str, Any]] = []
    live: dict[str, tuple[str, str, float, float]] = {}
    mids = dict.fromkeys(markets, 0.5)
    for i in range(4000):
        ts = T0 + i * MS
        a = rnd.choice(list(markets))
        op = rnd.random()
        if op < 0.3:
            mids[a] = min(0.95, max(0.05, round(mids[a] + rnd.choice([-0.02, -0.01, 0.01, 0.02]), 2)))
            recs.append(book(a, round(mids[a] - 0.01, 2), round(mids[a] + 0.01, 2), ts, markets[a]))
        elif op < 0.75 or not live:
            side = rnd.choice(["buy", "sell"])
            price = round(mids[a] + rnd.choice([-0.08, -0.06, -0.05, -0.03, 0.0, 0.03, 0.05, 0.06, 0.08]), 2)
            size = float(rnd.randint(1, 25))
            recs.append(order(f"o{i}", side, price, size, a, ts, markets[a]))
            live[f"o{i}"] = (a, side, price, size)
        elif op < 0.88:
            oid = rnd.choice(sorted(live))
            del live[oid]
            recs.append(event(rnd.choice(["order_canceled", "order_expired", "order_rejected"]), oid, ts))
        else:
            oid = rnd.choice(sorted(live))
            x, side, price, size = live.pop(oid)
            fill_price = round(min(0.99, max(0.01, price + rnd.choice([-0.2, 0.0, 0.2]))), 2)
            recs.append(fill(oid, side, fill_price, size, x, ts, markets[x], trade=f"t{i}"))

    def outputs(cls: type[RiskCheck]) -> list[dict[str, Any]]:
        stage = cls(parse_policy(p, "t.yaml"), metrics_interval_ms=0)
        return [r for r in Chain([stage], clock=EventClock(T0)).process(recs) if isinstance(r, dict)]

    fast, reference = outputs(RiskCheck), outputs(_EveryClosure)
    assert fast == reference
    refused = {r["policy"] for r in fast if r["type"] == "order_denied"}
    assert len(refused) >= 8, refused  # most policies refused something
