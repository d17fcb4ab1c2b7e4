"""The strategy API: params, helpers, order tracking, positions, pass-through."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agkit.errors import UsageError
from agkit.strategy import Strategy, build, load, param, parse_params, snap
from agkit.strategy.params import load_params_file, parse_assignments
from tests.strategy.util import NO, T0, YES, book, event, feed, fill, pair, started


@dataclass(frozen=True)
class P:
    size: float = param(10.0, "shares")
    n: int = param(3, "count")
    on: bool = param(True, "flag")
    mode: str = param("a", "mode")


class Probe(Strategy):
    name = "probe"
    Params = P

    def on_start(self) -> None:
        self.seen: list[str] = []

    def on_book(self, book: dict[str, Any]) -> None:
        self.seen.append("book")
        if not self.ctx.open_orders(book["asset"]):
            self.quote(book["asset"], "buy", 0.4049, self.params.size)

    def on_fill(self, fill: dict[str, Any], order: Any) -> None:
        self.seen.append("fill")

    def on_order_event(self, event: dict[str, Any], order: Any) -> None:
        self.seen.append(event["type"])


def test_params_convert_and_refuse() -> None:
    p = parse_params(P, {"size": "2.5", "n": "7", "on": "false", "mode": "b"})
    assert (p.size, p.n, p.on, p.mode) == (2.5, 7, False, "b")
    with pytest.raises(UsageError, match="unknown parameter nope; known: size, n, on, mode"):
        parse_params(P, {"nope": 1})
    with pytest.raises(UsageError, match=r"n: '1\.5' is not an int"):
        parse_params(P, {"n": "1.5"})
    with pytest.raises(UsageError, match="is not a bool"):
        parse_params(P, {"on": "maybe"})
    with pytest.raises(UsageError, match="not a finite number"):
        parse_params(P, {"size": "nan"})
    with pytest.raises(UsageError, match="key=value"):
        parse_assignments(["size"])


def test_params_file(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("size: 4\nquote-size: 3\n")
    assert load_params_file(str(f)) == {"size": 4, "quote_size": 3}
    f.write_text("- 1\n")
    with pytest.raises(UsageError, match="mapping"):
        load_params_file(str(f))


def test_builtins_load_and_bad_values_are_usage_errors() -> None:
    for name in ("mm", "bands", "arb", "noop"):
        assert issubclass(load(name), Strategy)
    with pytest.raises(UsageError, match="unknown strategy"):
        load("nope")
    with pytest.raises(UsageError, match="invalid parameters"):
        build("mm", {"quote_size": "-1"})
    with pytest.raises(UsageError, match="bands"):
        build("bands", {"bands": "[]"})


def test_snap() -> None:
    assert snap(0.4049, 0.01, "down") == 0.40
    assert snap(0.4001, 0.01, "up") == 0.41
    assert snap(0.40, 0.01, "up") == 0.40
    assert snap(0.0449, 0.001) == 0.045
    assert snap(0.7, 0.1, "down") == 0.7


@pytest.mark.parametrize("tick", [0.1, 0.01, 0.001, 0.0001, 0.05, 0.025, 0.0125])
def test_snap_is_the_rounded_decimal_of_the_grid_point(tick: float) -> None:
    """The integer-division shortcut gives exactly round(k·tick, decimals) (the clean
    decimal), ticks that are not whole in those decimals included."""
    decimals = max(0, -math.floor(math.log10(tick)) + 1)
    rnd = random.Random(tick)
    for _ in range(20_000):
        price = rnd.uniform(-0.1, 1.1)
        k = math.floor(price / tick + 1e-9)
        assert snap(price, tick, "down") == round(k * tick, decimals)
        k = math.ceil(price / tick - 1e-9)
        assert snap(price, tick, "up") == round(k * tick, decimals)


def test_quote_tracks_orders_fills_and_events() -> None:
    s = started(Probe(size=10))
    rec = book(YES, 0.40, 0.42)
    res = list(s.on_record(rec) or ())
    assert res[0] is rec  # pass-through first
    sub = res[1]
    assert sub["type"] == "submit_order" and sub["id"] == "probe-1" and sub["price"] == 0.40
    assert sub["ts_event"] == T0 and sub["strategy"] == "probe" and sub["market"] == "0xmarket"
    assert s.ctx.orders["probe-1"].status == "pending"
    feed(s, [event("order_accepted", "probe-1", T0 + 1)])
    assert s.ctx.orders["probe-1"].status == "open"
    feed(s, [fill("probe-1", YES, "buy", 0.40, 4.0, T0 + 2)])
    assert s.ctx.position(YES) == 4.0 and s.ctx.orders["probe-1"].remaining == 6.0
    feed(s, [fill("probe-1", YES, "buy", 0.40, 6.0, T0 + 3)])
    assert "probe-1" not in s.ctx.orders and s.ctx.position(YES) == 10.0
    assert s.ctx.clock.now_us() == T0 + 3
    assert s.seen == ["book", "order_accepted", "fill", "fill"]
    # others' events are ignored, unknown records pass through
    feed(s, [fill("other-1", YES, "buy", 0.4, 1.0)])
    assert s.ctx.position(YES) == 10.0
    odd = {"type": "zz", "ts_event": T0, "ts_init": T0}
    assert list(s.on_record(odd) or ()) == [odd]


def test_cancel_replace_and_stop() -> None:
    s = started(Probe())
    feed(s, [book(YES, 0.40, 0.42)])
    out: list[dict[str, Any]] = []
    new = s.replace("probe-1", 0.39)
    out += s._take()
    assert [r["type"] for r in out] == ["cancel_order", "submit_order"]
    assert out[0]["id"] == "probe-1" and new == "probe-2" and out[1]["price"] == 0.39
    assert not s.cancel("probe-1")  # already canceling
    feed(s, [event("order_canceled", "probe-1")])
    assert set(s.ctx.orders) == {"probe-2"}
    stop = list(s.stop() or ())
    assert [(r["type"], r["id"]) for r in stop] == [("cancel_order", "probe-2")]


def test_quote_refuses_off_range_and_small() -> None:
    s = started(Probe())
    feed(s, [book(YES, 0.40, 0.42)])
    s._take()
    assert s.quote(YES, "buy", 0.001, 10) is None  # below one tick
    assert s.quote(YES, "sell", 0.999, 10) is None  # above 1 - tick
    assert s.quote(YES, "buy", 0.5, 4.0) is None  # below min size 5
    assert s.quote("unknown", "buy", 0.5, 10) is None
    assert s.ctx.counters.skipped == 4
    assert s.quote(YES, "buy", 0.5, 5.555) == "probe-2"
    assert s._take()[0]["size"] == 5.55


def test_complement_exposure_and_resolution() -> None:
    s = started(Probe())
    feed(s, pair(0.40, 0.42))
    assert s.ctx.complement(YES) == NO and s.ctx.complement(NO) == YES
    feed(s, [fill("probe-1", YES, "buy", 0.40, 10.0), fill("probe-2", NO, "buy", 0.58, 4.0)])
    assert s.ctx.exposure(YES) == 6.0 and s.ctx.exposure(NO) == -6.0
    res = {"type": "market_resolved", "ts_event": T0 + 9, "ts_init": T0 + 9, "venue": "sim",
           "market": "0xmarket", "winning_asset": YES}
    feed(s, [res])
    pf = s.ctx.portfolio
    assert pf.size(YES) == 0 and pf.size(NO) == 0
    assert pf.realized_pnl == pytest.approx(10 * 0.6 - 4 * 0.58)
    assert s.ctx.orders == {}
    assert s.quote(YES, "buy", 0.5, 10) is None  # resolved market


def test_unacked_orders_are_forgotten_after_timeout() -> None:
    s = started(Probe())
    feed(s, [book(YES, 0.40, 0.42)])
    assert "probe-1" in s.ctx.orders
    feed(s, [book(YES, 0.40, 0.42, T0 + Probe.ack_timeout_us + 1)])
    assert "probe-1" not in s.ctx.orders  # a denial that never came back


def test_bad_record_is_invalid_record() -> None:
    from agkit.errors import InvalidRecord

    s = started(Probe())
    with pytest.raises(InvalidRecord, match="bad book record"):
        s.on_record({"type": "book", "ts_event": T0, "ts_init": T0, "asset": YES})


def test_cancel_rejected() -> None:
    s = started(Probe())
    feed(s, [book(YES, 0.40, 0.42)])
    s.cancel("probe-1")
    feed(s, [dict(event("cancel_rejected", "probe-1"), reason="venue busy")])
    assert s.ctx.orders["probe-1"].status == "open"  # still working
    s.cancel("probe-1")
    feed(s, [dict(event("cancel_rejected", "probe-1"), reason="order already done")])
    assert "probe-1" not in s.ctx.orders
    assert s.seen[-2:] == ["cancel_rejected", "cancel_rejected"]


def test_emitted_records_match_the_schema() -> None:
    from agkit.records import CancelOrder, SubmitOrder, parse

    s = started(Probe())
    out = feed(s, [book(YES, 0.40, 0.42)])
    s.cancel("probe-1", "test")
    out += s._take()
    kinds = [type(parse(r)) for r in out]
    assert kinds == [SubmitOrder, CancelOrder]
