"""ingest -> export round trip, idempotency, crash safety, stage behaviour (real DBs, real processes)."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from agkit.store import open_store
from agkit.store.migrations import migrations
from agkit.store.schema import RECORD_TABLES
from tests.helpers import ndjson, parse_ndjson, popen_agkit, run_agkit
from tests.store.data import T0, mixed


def ingest(db: str, data: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
    proc = run_agkit("store", "ingest", "--db", db, *args, input=data, timeout=240)
    assert proc.returncode == 0, proc.stderr
    return proc


def table_contents(db: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every record table without `seq` (which differs between runs), sorted."""
    out = {}
    with open_store(db) as store:
        for table in RECORD_TABLES:
            cols = ", ".join(table.names)
            out[table.name] = sorted(store.rows(f"SELECT {cols} FROM {table.name}"), key=repr)
    return out


def counts(db: str) -> dict[str, int]:
    with open_store(db) as store:
        return {s.table: s.rows for s in store.stats()}


def test_round_trip_gives_back_the_same_records(db: str) -> None:
    recs = mixed(3000)
    data = ndjson(recs)
    ingest(db, data, "--batch-size", "257")
    out = run_agkit("store", "export", "--db", db)
    assert out.returncode == 0, out.stderr
    assert out.stdout == data  # byte for byte, in time order with ties in arrival order
    per_table = counts(db)
    assert sum(per_table[t.name] for t in RECORD_TABLES) == len(recs)
    assert per_table["records"] == sum(
        r["type"] in ("feed_status", "zz_custom", "market_resolved") for r in recs
    )


def test_lines_are_stored_as_received_and_padded_ones_compactly(db: str) -> None:
    """The pipe stores each line as it came (no second encoding); a line with whitespace
    around the object is stored as its compact encoding; either way export gives back
    records equal to the input, and ingesting the other form adds no row."""
    as_sent = (
        b'{"type":"trade","price":0.50,"ts_event":1767225600000000,"ts_init":1767225600000001,'
        b'"venue":"polymarket","market":"0xm","asset":"tok","size":10.0,"side":"buy","trade_id":"t1"}'
    )
    padded = {"type": "feed_status", "ts_event": T0 + 1, "ts_init": T0 + 2, "source": "polymarket", "state": "live"}
    ingest(db, as_sent + b"\n  " + orjson.dumps(padded) + b"  \r\n")
    out = run_agkit("store", "export", "--db", db).stdout
    assert out == as_sent + b"\n" + orjson.dumps(padded) + b"\n"
    assert parse_ndjson(out) == [orjson.loads(as_sent), padded]
    ingest(db, orjson.dumps(orjson.loads(as_sent)) + b"\n")  # the same trade, encoded by agkit
    assert counts(db)["trades"] == 1


def test_in_process_stage_encodes_records_itself(tmp_path: Path) -> None:
    """Chain and library callers hand on_record a dict: the stored line is its compact encoding."""
    from agkit.clock import Clock
    from agkit.stage import Context
    from agkit.store.ingest import IngestStage

    recs = mixed(50)
    path = tmp_path / "lib.db"
    stage = IngestStage(str(path))
    stage.start(Context(Clock(), lambda r: None, lambda m: None))
    for rec in recs:
        stage.on_record(rec)
    stage.stop()
    assert run_agkit("store", "export", "--db", str(path)).stdout == ndjson(recs)


@pytest.mark.parametrize("per_insert", [1, 7, 500])
def test_sqlite_multi_row_inserts_store_what_tuples_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, per_insert: int
) -> None:
    """SQLite binds a flat batch several rows per INSERT (whole chunks, then the rest one
    by one): the tables equal a batch of tuples written one row per INSERT, the count of
    new rows is right when part of a batch is stored already."""
    from agkit.store import sqlite as sqlite_backend
    from agkit.store.base import Batch

    recs = mixed(400)
    monkeypatch.setattr(sqlite_backend, "ROWS_PER_INSERT", per_insert)
    written = []
    for flat in (True, False):
        path = tmp_path / f"flat{flat}.db"
        with open_store(str(path)) as store:
            assert isinstance(store, sqlite_backend.SqliteStore)
            assert store._insert["books"][1] == per_insert
            first, second = Batch(flat=flat), Batch(flat=flat)
            for rec in recs[:150]:
                first.add(rec)
            for rec in recs[100:]:  # 50 records stored already
                second.add(rec)
            assert store.write_batch(first) == 150
            assert store.write_batch(second) == 250
        written.append(table_contents(f"sqlite:///{path}"))
    assert written[0] == written[1]
    assert sum(len(rows) for rows in written[0].values()) == 400


def test_positions_and_metrics_of_one_microsecond_are_all_kept_and_migration_3_keeps_rows(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two fills in one microsecond give two positions (and metric values) with one
    ts_event: keyed by time alone (schema 2) the second was dropped as a replay. Migration
    3 keys them by their state too, keeps every stored row, and a replay still adds nothing."""
    from agkit.store import postgres, sqlite
    from agkit.store.base import Batch

    def batch(*recs: dict[str, Any]) -> Batch:
        b = Batch()
        for rec in recs:
            b.add(rec)
        return b

    pos1 = {"type": "position", "ts_event": T0, "ts_init": T0 + 1, "market": "0xm", "asset": "tok",
            "size": 10.0, "avg_price": 0.5, "realized_pnl": 0.0, "fees": 0.1}
    pos2 = {**pos1, "size": 25.0, "avg_price": 0.52, "fees": 0.25}
    met1 = {"type": "metric", "ts_event": T0, "ts_init": T0, "name": "strategy.orders_filled", "kind": "counter",
            "value": 1.0, "labels": {"strategy": "mm"}}
    met2 = {**met1, "value": 2.0}
    for module in (sqlite, postgres):  # a store as schema 2 left it
        monkeypatch.setattr(module, "migrations", lambda backend, hypertables=False: migrations(backend, hypertables)[:2])
    with open_store(db) as store:
        assert store.version() == 2
        assert store.write_batch(batch(pos1, met1)) == 2
        assert store.write_batch(batch(pos2, met2)) == 0  # the old keys drop the second state
    monkeypatch.undo()
    with open_store(db) as store:
        assert store.version() == 3
        assert store.rows("SELECT size FROM positions") == [(10.0,)]
        assert store.write_batch(batch(pos2, met2)) == 2
        assert store.write_batch(batch(pos1, pos2, met1, met2)) == 0  # a replay adds nothing
        assert store.rows("SELECT size, fees FROM latest_positions") == [(25.0, 0.25)]
        assert sorted(store.rows("SELECT value FROM metrics")) == [(1.0,), (2.0,)]


def test_reingest_never_duplicates(db: str) -> None:
    data = ndjson(mixed(1500))
    ingest(db, data)
    first = table_contents(db)
    proc = ingest(db, data + data, "--progress")  # twice more, in one stream
    assert b"0 new rows" in proc.stderr
    assert table_contents(db) == first
    assert run_agkit("store", "export", "--db", db).stdout == data


def test_export_filters(db: str) -> None:
    recs = mixed(1200)
    ingest(db, ndjson(recs))
    trades = parse_ndjson(run_agkit("store", "export", "--db", db, "--type", "trade").stdout)
    assert trades == [r for r in recs if r["type"] == "trade"]
    mid = recs[600]["ts_event"]
    late = parse_ndjson(run_agkit("store", "export", "--db", db, "--since", str(mid)).stdout)
    assert late == [r for r in recs if r["ts_event"] >= mid]
    one = parse_ndjson(run_agkit("store", "export", "--db", db, "--market", "0xmkt1", "--type", "book",
                                 "--type", "submit_order", "--type", "order_accepted").stdout)
    submitted = {r["id"] for r in recs if r["type"] == "submit_order" and r["market"] == "0xmkt1"}
    assert one == [
        r for r in recs
        if (r["type"] == "book" and r["market"] == "0xmkt1")
        or (r["type"] == "submit_order" and r["market"] == "0xmkt1")
        or (r["type"] == "order_accepted" and r["id"] in submitted)
    ]
    resolved = parse_ndjson(run_agkit("store", "export", "--db", db, "--market", "0xmkt0",
                                      "--type", "market_resolved").stdout)
    assert resolved == [r for r in recs if r["type"] == "market_resolved" and r["market"] == "0xmkt0"]


def test_kill_9_mid_stream_then_rerun_equals_one_clean_run(db: str, db2: str, tmp_path: Path) -> None:
    data = ndjson(mixed(40_000))
    path = tmp_path / "in.ndjson"
    path.write_bytes(data)
    # the crashing run: small batches, killed once some batches are committed
    proc = popen_agkit("store", "ingest", "--db", db, "--batch-size", "500", stdin=subprocess.PIPE,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(data[: len(data) // 2])
    proc.stdin.flush()
    deadline = time.monotonic() + 120
    while True:
        try:
            if counts(db)["trades"] > 0:
                break
        except Exception:
            pass  # schema not created yet
        assert time.monotonic() < deadline, "no batch was ever committed"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    partial = sum(counts(db)[t.name] for t in RECORD_TABLES)
    assert 0 < partial < 40_000
    # rerun on the same input, and a clean single run elsewhere
    ingest(db, data)
    ingest(db2, data)
    assert table_contents(db) == table_contents(db2)
    assert run_agkit("store", "export", "--db", db).stdout == data


def test_postgres_connection_killed_mid_ingest_is_reopened_and_nothing_is_lost(
    pg_pair: tuple[str, str], pg_url: str
) -> None:
    """pg_terminate_backend on the ingest's own session, twice: the ingest says so on stderr,
    reconnects, retries the batch and carries on; the table equals one clean run."""
    import uuid

    import psycopg

    db, clean = pg_pair
    recs = mixed(24_000)
    data = ndjson(recs)
    thirds = [ndjson(recs[:8000]), ndjson(recs[8000:16000]), ndjson(recs[16000:])]
    app = f"agkit_cut_{uuid.uuid4().hex[:8]}"
    proc = popen_agkit("store", "ingest", "--db", f"{db}&application_name={app}", "--batch-size", "500",
                       "--flush-ms", "50", stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stderr is not None
    try:
        stored = 0
        for part in thirds[:2]:
            proc.stdin.write(part)
            proc.stdin.flush()
            deadline = time.monotonic() + 120
            while (n := sum(counts(db)[t.name] for t in RECORD_TABLES)) <= stored:
                assert time.monotonic() < deadline and proc.poll() is None, "ingest stalled or exited"
                time.sleep(0.05)
            stored = n
            with psycopg.connect(pg_url, autocommit=True) as conn:
                killed = conn.execute("select pg_terminate_backend(pid) from pg_stat_activity "
                                      "where application_name = %s", (app,)).fetchall()
            assert killed and all(k[0] for k in killed)
            time.sleep(0.2)
            assert proc.poll() is None, "the ingest exited on a lost connection"
        proc.stdin.write(thirds[2])
        proc.stdin.close()
        assert proc.wait(timeout=180) == 0
        err = proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert err.count("PostgreSQL connection lost") >= 2, err
    assert "re-established" in err and "Traceback" not in err, err
    ingest(clean, data)
    assert table_contents(db) == table_contents(clean)
    assert run_agkit("store", "export", "--db", db).stdout == data


def test_tee_forwards_every_record_unchanged_and_stores_it(db: str) -> None:
    data = ndjson(mixed(500)) + b'{"type":"zz_x","ts_event":1,"ts_init":2, "spaced" : true}\n'
    proc = ingest(db, data, "--tee")
    assert proc.stdout == data
    assert sum(counts(db)[t.name] for t in RECORD_TABLES) == 501


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)], ids=["TERM", "INT"])
def test_signal_commits_what_was_received(db: str, sig: int, status: int) -> None:
    recs = mixed(300)
    proc = popen_agkit("store", "ingest", "--tee", "--db", db, "--flush-ms", "3600000", "--batch-size", "100000",
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(ndjson(recs))
    proc.stdin.flush()
    for _ in recs:  # forwarded means consumed by the stage
        assert proc.stdout.readline()
    proc.send_signal(sig)
    proc.wait(timeout=60)  # stdin stays open: the signal, not EOF, ends the stage
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert b"Traceback" not in err
    assert sum(counts(db)[t.name] for t in RECORD_TABLES) == 300


def test_writer_process_survives_a_ctrl_c_to_the_group(db: str) -> None:
    """Full batches go to a writer child process; SIGINT to the whole process group (a
    Ctrl-C in a terminal) ends the stage, which still commits everything it received.
    The child's command line does not carry the database URL (`ps` would show a password)."""
    recs = mixed(2000)
    proc = popen_agkit("store", "ingest", "--tee", "--db", db, "--flush-ms", "3600000", "--batch-size", "150",
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       start_new_session=True)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(ndjson(recs))
    proc.stdin.flush()
    for _ in recs:
        assert proc.stdout.readline()
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert len(children) == 1, "no writer process after full batches"
    cmdline = Path(f"/proc/{children[0]}/cmdline").read_bytes().replace(b"\0", b" ")
    assert b"agkit.store.writer" in cmdline and db.split("/")[-1].encode() not in cmdline
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=60)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err
    assert sum(counts(db)[t.name] for t in RECORD_TABLES) == 2000
    assert run_agkit("store", "export", "--db", db).stdout == ndjson(recs)


@contextlib.contextmanager
def write_lock(db: str) -> Iterator[Callable[[], int]]:
    """Another session holding the tables' write lock, so that every write of an ingest
    waits; it yields a count of the stored rows read through that same session (another
    session's read could queue behind the ingest's waiting DDL)."""
    tables = [t.name for t in RECORD_TABLES]
    if db.startswith("sqlite:///"):
        conn = sqlite3.connect(db[len("sqlite:///"):], isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        try:
            yield lambda: sum(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables)
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    import psycopg

    with psycopg.connect(db) as pg:  # one transaction until the block ends
        pg.execute(f"LOCK TABLE {', '.join(tables)} IN EXCLUSIVE MODE")  # writes wait, reads do not
        yield lambda: sum(pg.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables)  # type: ignore[index]
        pg.rollback()


def test_a_stalled_database_stops_the_reading_instead_of_growing_memory(db: str) -> None:
    """Bounded memory under any input rate: while the database takes nothing, ingest holds
    only its batch and the batches in flight to the writer, then stops reading stdin
    (back-pressure); when the database comes back, everything offered is stored."""
    with open_store(db):
        pass  # the schema exists before the lock is taken
    data = ndjson(mixed(60_000))
    offered = 0
    proc = popen_agkit("store", "ingest", "--db", db, "--batch-size", "1000", "--no-progress",
                       stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stdin is not None

    def feed() -> None:
        nonlocal offered
        assert proc.stdin is not None
        view = memoryview(data)
        for start in range(0, len(data), 4096):
            proc.stdin.write(view[start:start + 4096])
            proc.stdin.flush()
            offered = start + 4096

    try:
        with write_lock(db) as stored:
            writer = threading.Thread(target=feed, daemon=True)
            writer.start()
            # wait until the stage stops taking input: `offered` stands still for a second
            last, still_since = -1, time.monotonic()
            deadline = time.monotonic() + 60
            while time.monotonic() - still_since < 1.0:
                assert time.monotonic() < deadline, "ingest never stopped reading"
                assert writer.is_alive(), "ingest read the whole input while the database took nothing"
                if offered != last:
                    last, still_since = offered, time.monotonic()
                time.sleep(0.05)
            # one batch filling, two in flight to the writer, and what the pipes hold between
            assert offered < len(data) // 4, (offered, len(data))
            assert stored() == 0
        writer.join(timeout=120)
        assert not writer.is_alive()
        proc.stdin.close()
        assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
    assert run_agkit("store", "export", "--db", db).stdout == data


def test_time_flush_commits_while_input_is_idle(db: str) -> None:
    proc = popen_agkit("store", "ingest", "--db", db, "--flush-ms", "50", "--batch-size", "100000",
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    try:
        proc.stdin.write(ndjson(mixed(50)))
        proc.stdin.flush()
        deadline = time.monotonic() + 120
        while True:  # stdin stays open: only the timer can commit these
            try:
                if sum(counts(db)[t.name] for t in RECORD_TABLES) == 50:
                    break
            except Exception:
                pass
            assert time.monotonic() < deadline, "the time flush never committed"
            time.sleep(0.05)
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    assert proc.returncode == 0


def test_invalid_records_are_reported_with_line_numbers(db: str) -> None:
    good = mixed(3)
    bad = {"type": "trade", "ts_event": T0, "ts_init": T0, "venue": "v", "market": "m", "asset": "a",
           "price": "abc", "size": 1.0, "side": "buy", "trade_id": "x"}
    not_utf8 = b'{"type":"trade\xff"}\n'
    data = ndjson(good[:1]) + ndjson([bad]) + b"{nope\n" + not_utf8 + ndjson(good[1:])
    proc = ingest(db, data)
    assert b"line 2" in proc.stderr and b"price" in proc.stderr
    assert b"line 3" in proc.stderr
    assert b"line 4" in proc.stderr and b"UTF-8" in proc.stderr
    assert sum(counts(db)[t.name] for t in RECORD_TABLES) == 3
    failed = run_agkit("store", "ingest", "--db", db, "--on-error", "fail", input=data)
    assert failed.returncode == 3
    assert b"Traceback" not in failed.stderr


def test_two_processes_migrating_at_once(db: str) -> None:
    procs = [popen_agkit("store", "migrate", "--db", db, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1] for o in outs]
    reports = [orjson.loads(o[0]) for o in outs]
    every = [version for version, _, _ in migrations("sqlite")]
    assert all(r["version"] == every[-1] for r in reports)
    assert sorted(r["applied"] for r in reports) == [[], [], every]  # applied exactly once


def test_library_stage_and_default_db(tmp_path: Path) -> None:
    """The default store is an SQLite file under the XDG data dir; AGKIT_DB overrides it."""
    data = ndjson(mixed(20))
    proc = run_agkit("store", "ingest", input=data, XDG_DATA_HOME=str(tmp_path / "xdg"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "xdg" / "agkit" / "agkit.db").exists()
    other = tmp_path / "env.db"
    proc = run_agkit("store", "ingest", input=data, AGKIT_DB=str(other))
    assert proc.returncode == 0 and other.exists()
    assert run_agkit("store", "export", AGKIT_DB=str(other)).stdout == data


def test_export_of_a_missing_sqlite_db_is_a_clear_error(tmp_path: Path) -> None:
    proc = run_agkit("store", "export", "--db", str(tmp_path / "nope.db"))
    assert proc.returncode == 5
    assert b"no database" in proc.stderr and b"Traceback" not in proc.stderr


@pytest.mark.parametrize("bad", ["postgresql://nobody@127.0.0.1:1/none"])
def test_unreachable_postgres_is_a_clear_error(bad: str) -> None:
    proc = run_agkit("store", "stats", "--db", bad)
    assert proc.returncode == 5
    assert b"cannot connect" in proc.stderr and b"Traceback" not in proc.stderr
