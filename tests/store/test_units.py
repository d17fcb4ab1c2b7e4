"""Small pure pieces of the store: URL and time parsing, row making, placeholder translation."""

from __future__ import annotations

import random

import orjson
import pytest

from agkit.errors import InvalidRecord, UsageError
from agkit.store import is_postgres, sqlite_path
from agkit.store.base import named_to_pyformat
from agkit.store.retention import parse_keep
from agkit.store.schema import RETENTION_DAYS, canonical_labels, to_row
from agkit.store.timeparse import parse_duration_us, parse_time_us


def test_db_urls() -> None:
    assert sqlite_path("sqlite:///tmp/a.db") == "/tmp/a.db"
    assert sqlite_path("sqlite:////tmp/a.db") == "/tmp/a.db"
    assert sqlite_path("sqlite:rel.db") == "rel.db"
    assert sqlite_path("/x/y.db") == "/x/y.db"
    assert is_postgres("postgresql://u@h/db") and is_postgres("postgres://h/db") and not is_postgres("/pg.db")


def test_times() -> None:
    now = 1_800_000_000_000_000
    assert parse_time_us("123", now) == 123
    assert parse_time_us("7d", now) == now - 7 * 86_400_000_000
    assert parse_time_us("2026-01-01", now) == 1_767_225_600_000_000
    assert parse_time_us("2026-01-01T01:00:00+01:00", now) == 1_767_225_600_000_000
    assert parse_duration_us("30m") == 1_800_000_000
    with pytest.raises(UsageError):
        parse_time_us("yesterday-ish", now)


def test_keep_policy() -> None:
    policy = parse_keep(["trades=30d", "bars=forever", "fills=2w"])
    assert policy["trades"] == 30 and policy["bars"] is None and policy["fills"] == 14
    assert policy["books"] == RETENTION_DAYS["books"] == 90 and policy["order_events"] == 365
    with pytest.raises(UsageError):
        parse_keep(["nosuch=1d"])
    with pytest.raises(UsageError):
        parse_keep(["trades"])


def test_named_placeholders_outside_quotes_only() -> None:
    sql = "select ':x', a::int, b from t where c = :c and d like '5%' and e = :e_2"
    assert named_to_pyformat(sql) == (
        "select ':x', a::int, b from t where c = %(c)s and d like '5%%' and e = %(e_2)s"
    )


def test_rows_and_validation() -> None:
    base = {"ts_event": 5, "ts_init": 6}
    table, row = to_row({"type": "metric", **base, "name": "n", "kind": "gauge", "value": 1,
                         "labels": {"b": "2", "a": "1"}})
    assert table == "metrics" and row[3] == '{"a":"1","b":"2"}' and row[5] == 1.0
    assert canonical_labels(None) == "{}"
    table, row = to_row({"type": "book", **base, "venue": "v", "market": "m", "asset": "a",
                         "bids": [[0.4, 10]], "asks": [], "tick_size": 0.01, "min_size": 5})
    assert table == "books" and row[10] is None  # no mid without both sides
    assert to_row({"type": "anything_else", **base})[0] == "records"
    for bad in (
        {"type": "trade", **base, "venue": "v", "market": "m", "asset": "a", "price": 1, "size": 1,
         "side": "up", "trade_id": "t"},
        {"type": "trade", "ts_event": 1.5, "ts_init": 1, "venue": "v", "market": "m", "asset": "a",
         "price": 1, "size": 1, "side": "buy", "trade_id": "t"},
        {"type": "order_filled", **base, "id": 7},
        {"type": "metric", **base, "name": "n", "kind": "gauge", "value": 1, "labels": ["x"]},
        {"type": "book", **base, "venue": "v", "market": "m", "asset": "a", "bids": [["x", 1]], "asks": []},
    ):
        with pytest.raises(InvalidRecord):
            to_row(bad)


def test_same_snapshot_with_a_new_ts_init_has_the_same_key() -> None:
    book = {"type": "book", "ts_event": 5, "ts_init": 6, "venue": "v", "market": "m", "asset": "a",
            "bids": [[0.4, 10]], "asks": [[0.5, 3]], "tick_size": 0.01, "min_size": 5}
    first = to_row(book)[1]
    again = to_row(dict(book, ts_init=99))[1]
    other = to_row(dict(book, bids=[[0.41, 10]]))[1]
    assert first[5] == again[5] != other[5]
    generic = {"type": "kill_switch", "ts_event": 5, "ts_init": 6, "engaged": True, "reason": "x"}
    assert to_row(generic)[1][3] == to_row(dict(generic, ts_init=7))[1][3]


def test_timescale_path_creates_hypertables_with_compression_and_retention_policies() -> None:
    """The TimescaleDB statements (not runnable here: no timescaledb package on this machine)."""
    from agkit.store.base import DAY_US
    from agkit.store.migrations import COMPRESS_AFTER_DAYS, STATE_KEYED, V1_KEYS, migrations
    from agkit.store.schema import RECORD_TABLES

    hyper = [stmt for _, _, stmts in migrations("postgresql", hypertables=True) for stmt in stmts]
    plain = [stmt for _, _, stmts in migrations("postgresql") for stmt in stmts]
    text = "\n".join(hyper)
    assert "PARTITION BY" not in text and "USING brin" not in text
    assert any(s.startswith("CREATE OR REPLACE FUNCTION agkit_now_us() RETURNS bigint") for s in hyper)
    for table in RECORD_TABLES:
        name = table.name
        mine = [s for s in hyper if f"'{name}'" in s or f"TABLE {name} " in s]
        create = next(i for i, s in enumerate(mine) if s.startswith("CREATE TABLE"))
        hypertable = mine.index(
            f"SELECT create_hypertable('{name}', 'ts_event', chunk_time_interval => {DAY_US}::bigint)"
        )
        now_func = mine.index(f"SELECT set_integer_now_func('{name}', 'agkit_now_us')")
        compress = [i for i, s in enumerate(mine) if s.startswith(f"ALTER TABLE {name} SET (timescaledb.compress,")]
        # every key column is a segment or order column, so the key stays enforceable
        settings = mine[compress[-1]]
        assert all(col in settings for col in table.key), settings
        add_policy = f"SELECT add_compression_policy('{name}', compress_after => {COMPRESS_AFTER_DAYS * DAY_US}::bigint)"
        policies = [i for i, s in enumerate(mine) if s == add_policy]
        assert create < hypertable < now_func < compress[0] < policies[0]
        if name in STATE_KEYED:  # migration 3: decompressed, key swapped, compressed again by the new key
            swap = mine.index(f"ALTER TABLE {name} ADD PRIMARY KEY ({', '.join(table.key)})")
            off = mine.index(f"ALTER TABLE {name} SET (timescaledb.compress = false)")
            assert policies[0] < mine.index(f"SELECT decompress_chunk(c, true) FROM show_chunks('{name}') c") < off
            assert off < mine.index(f"ALTER TABLE {name} DROP CONSTRAINT {name}_pkey") < swap < compress[1] < policies[1]
        else:
            assert len(compress) == len(policies) == 1
        retention = [s for s in mine if s.startswith("SELECT add_retention_policy")]
        days = RETENTION_DAYS[name]
        assert retention == ([] if days is None else [
            f"SELECT add_retention_policy('{name}', drop_after => {days * DAY_US}::bigint)"
        ])
    # plain PostgreSQL: partitioned tables with BRIN indexes, and no TimescaleDB call at all
    plain_text = "\n".join(plain)
    assert "timescaledb" not in plain_text and "hypertable" not in plain_text and "_policy" not in plain_text
    for table in RECORD_TABLES:
        if table.name in STATE_KEYED:
            assert f"PRIMARY KEY ({', '.join(V1_KEYS[table.name])})) PARTITION BY RANGE (ts_event)" in plain_text
            assert f"ALTER TABLE {table.name} ADD PRIMARY KEY ({', '.join(table.key)})" in plain
        else:
            assert f"PRIMARY KEY ({', '.join(table.key)})) PARTITION BY RANGE (ts_event)" in plain_text
        assert f"CREATE INDEX {table.name}_ts ON {table.name} USING brin (ts_event)" in plain


def _variants(rng: random.Random) -> list[bytes]:
    """Book and trade lines, well-formed and not: every way the typed line path could
    disagree with the dict path."""
    t = 1_767_225_600_000_000 + rng.randrange(10**9)
    book: dict[str, object] = {
        "type": "book", "ts_event": t, "ts_init": t + 5, "venue": "polymarket", "market": "0xm",
        "asset": "7" * rng.choice((3, 77)), "bids": [[0.41, 10.0], [0.4, 5.0]], "asks": [[0.43, 7.5]],
        "tick_size": 0.01, "hash": "h" + str(rng.randrange(1000)),
    }
    trade: dict[str, object] = {
        "type": "trade", "ts_event": t, "ts_init": t + 5, "venue": "polymarket", "market": "0xm",
        "asset": "tok", "price": 0.5, "size": 12.0, "side": "buy", "trade_id": "t" + str(rng.randrange(1000)),
    }
    edits: list[tuple[str, object]] = [
        ("price", 1), ("size", 3), ("price", True), ("price", "0.5"), ("side", "hold"), ("side", None),
        ("ts_event", 1 << 62), ("ts_event", -(1 << 62)), ("ts_event", 1.5), ("ts_init", "1"), ("hash", ""),
        ("hash", None), ("bids", []), ("asks", []), ("bids", [[1, 2]]), ("bids", [[0.4, 1.0], "x"]),
        ("asks", [[0.5]]), ("asks", [[0.5, 1.0, 2.0]]), ("asks", [["0.5", 1.0]]), ("venue", 3), ("asset", None),
        ("trade_id", 7), ("extra", {"nested": [1, 2]}), ("bids", [[0.4, 1e308]]),
    ]
    lines = [orjson.dumps(book), orjson.dumps(trade)]
    for base in (book, trade):
        for key, value in edits:
            lines.append(orjson.dumps({**base, key: value}))
        for key in base:
            lines.append(orjson.dumps({k: v for k, v in base.items() if k != key}))
    body = orjson.dumps(trade)[1:]
    lines += [b'{"price":0.7,' + body, b'{"type":"book",' + body, body[:-1] + b',"price":0.9}', b"{" + body]
    lines += [b"{" + body[:-1] + b',"_fb":5}', b"{" + body[:-1] + b',"_fb":"x"}', b'{"type":5}', b"[1]", b"{", b"  ", b""]
    lines += [orjson.dumps({"type": "order_accepted", "ts_event": t, "ts_init": t, "id": "o1", "venue_order_id": 3})]
    return lines


def test_line_path_gives_the_rows_of_the_dict_path() -> None:
    """Batch.add_line takes books and trades through one typed decode; for every line it
    accepts, the row must equal the dict path's, and every line it refuses must be
    refused by the dict path too, with the dict path's message."""
    from agkit.store.base import Batch
    from agkit.store.schema import batch_row, line_row
    from agkit.stream import decode_line

    rng = random.Random(5)
    typed = 0
    for _ in range(40):
        for line in _variants(rng):
            raw = line.decode()
            got = line_row(line, raw, 0)
            rec, reason = decode_line(line)  # what the runner did before handing a record over
            want: tuple[str, tuple[object, ...]] | str | None = reason
            if rec is not None:
                try:
                    want = batch_row(rec, 0, raw)
                except InvalidRecord as exc:
                    want = str(exc)
            if got is not None:
                typed += 1
                assert got == want, line
            batch = Batch()
            if not line.strip():  # blank: skipped, as the runner skips it
                assert batch.add_line(line) is False and not batch.rows
                continue
            try:
                batch.add_line(line)
                assert [(t, r) for t, rows in batch.rows.items() for r in rows] == [want], line
            except InvalidRecord as exc:
                assert str(exc) == want, line
    assert typed > 40 * 8  # the typed path did take the well-formed variants
