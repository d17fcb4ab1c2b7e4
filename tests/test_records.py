"""The record model, its JSON Schema, and `agkit schema` / `agkit validate`."""

from __future__ import annotations

import gzip
from pathlib import Path

import msgspec
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agkit.records import (
    RECORD_TYPES,
    Book,
    Metric,
    OrderFilled,
    SubmitOrder,
    json_schema,
    metric_record,
    parse,
    to_builtins,
)
from agkit.stream import decode_line, encode
from tests.helpers import ndjson, run_agkit

TRADE = {
    "type": "trade",
    "ts_event": 1_700_000_000_000_000,
    "ts_init": 1_700_000_000_000_100,
    "venue": "polymarket",
    "market": "0xabc",
    "asset": "71321045679252212594626385532706912750332728571942532289631379312455583992563",
    "price": 0.52,
    "size": 10,
    "side": "buy",
    "trade_id": "t1",
}


def test_every_type_is_snake_case_and_has_timestamps() -> None:
    for name, cls in RECORD_TYPES.items():
        assert name == name.lower() and " " not in name
        assert {"ts_event", "ts_init"} <= set(cls.__struct_fields__)


def test_events_are_past_tense_commands_imperative() -> None:
    commands = {"submit_order", "cancel_order", "cancel_all"}
    for name in RECORD_TYPES:
        if name.startswith("order_") and name not in commands:
            assert name.split("_")[-1].endswith("ed"), name


def test_parse_accepts_valid_and_names_the_problem() -> None:
    rec = parse(TRADE)
    assert rec.price == 0.52 and rec.size == 10.0  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="side"):
        parse({**TRADE, "side": "up"})
    with pytest.raises(ValueError, match="ts_init"):
        parse({k: v for k, v in TRADE.items() if k != "ts_init"})
    with pytest.raises(ValueError, match="unknown record type"):
        parse({"type": "nope"})


def test_token_ids_stay_strings_and_round_trip() -> None:
    rec = parse(TRADE)
    line = encode(rec)
    assert orjson.loads(line) == {**TRADE, "size": 10.0, "fee_rate_bps": None}
    with pytest.raises(ValueError):
        parse(
            {
                **TRADE,
                "asset": 71321045679252212594626385532706912750332728571942532289631379312455583992563,
            }
        )


def test_struct_and_dict_encode_identically() -> None:
    order = SubmitOrder(
        ts_event=1,
        ts_init=2,
        id="c1",
        strategy="mm",
        venue="paper",
        market="m",
        asset="a",
        side="buy",
        price=0.41,
        size=5.0,
    )
    assert orjson.loads(encode(order)) == orjson.loads(encode(to_builtins(order)))
    assert encode(order).endswith(b"\n") and encode(order).count(b"\n") == 1


@given(st.floats(min_value=0.0001, max_value=0.9999), st.floats(min_value=0.01, max_value=1e6))
def test_prices_survive_the_wire_exactly(price: float, size: float) -> None:
    fill = OrderFilled(
        ts_event=1,
        ts_init=1,
        id="a",
        venue_order_id="v",
        trade_id="t",
        market="m",
        asset="x",
        side="sell",
        price=price,
        size=size,
        fee=0.0,
        liquidity="maker",
    )
    back, _ = decode_line(encode(fill).rstrip(b"\n"))
    assert back is not None and back["price"] == price and back["size"] == size


def test_schema_is_generated_from_the_definitions() -> None:
    book = json_schema("book")
    props = book["$defs"]["Book"]["properties"]
    assert set(props) == {"type"} | set(Book.__struct_fields__)
    assert props["type"] == {"enum": ["book"]}
    everything = json_schema()
    assert len(everything["anyOf"]) == len(RECORD_TYPES)
    with pytest.raises(KeyError):
        json_schema("nope")


def test_schema_command() -> None:
    proc = run_agkit("schema", "order_denied")
    assert proc.returncode == 0
    doc = orjson.loads(proc.stdout)
    assert doc["$defs"]["OrderDenied"]["required"] == [
        "type",
        "ts_event",
        "ts_init",
        "id",
        "policy",
        "reason",
    ]
    bad = run_agkit("schema", "nope")
    assert bad.returncode == 2 and b"unknown record type" in bad.stderr


def test_validate_counts_and_reports_line_numbers(tmp_path: Path) -> None:
    good = ndjson([TRADE, TRADE, {"type": "custom_thing", "ts_event": 1, "ts_init": 1}])
    proc = run_agkit("validate", input=good)
    assert proc.returncode == 0, proc.stderr
    summary = orjson.loads(proc.stdout)
    assert summary["per_type"] == {"custom_thing": 1, "trade": 2}
    assert summary["valid"] == 2 and summary["unknown_type"] == 1

    bad = good + b"not json\n" + ndjson([{**TRADE, "price": "high"}])
    proc = run_agkit("validate", input=bad)
    assert proc.returncode == 3
    assert b"line 4: invalid JSON" in proc.stderr
    assert b"line 5: trade:" in proc.stderr and b"price" in proc.stderr
    assert orjson.loads(proc.stdout)["invalid"] == 2

    strict = run_agkit("validate", "--strict", input=good)
    assert strict.returncode == 3 and b"unknown record type 'custom_thing'" in strict.stderr

    gz = tmp_path / "s.ndjson.gz"
    gz.write_bytes(gzip.compress(good))
    assert run_agkit("validate", str(gz)).returncode == 0


def test_metric_record_is_a_valid_metric() -> None:
    rec = metric_record(5, "x.count", 3, "counter", {"venue": "paper"}, ts_init=7)
    m = msgspec.convert(rec, Metric)
    assert (m.ts_event, m.ts_init, m.name, m.kind, m.value, m.labels) == (5, 7, "x.count", "counter", 3, {"venue": "paper"})
    assert metric_record(9, "g", 1.5)["ts_init"] == 9 and metric_record(9, "g", 1.5)["labels"] == {}
