"""`agkit feed replay`: exact reproduction, pacing, bounds, merging, bad lines."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from tests.helpers import parse_ndjson, run_agkit

ODD = (
    b'{"type":"zz_unknown","ts_event":1767225600000000,"ts_init":2, "spacing" : "kept",'
    b'"big":123456789012345678901234567890,"f":1.10}'
)


def sim_bytes(n: int = 3000, seed: int = 1) -> bytes:
    proc = run_agkit("feed", "sim", "--seed", str(seed), "--max-records", str(n))
    assert proc.returncode == 0
    return proc.stdout


@pytest.mark.parametrize("mode", [("--max",), ("--speed", "1000000")])
def test_replay_reproduces_a_recording_exactly(tmp_path: Path, mode: tuple[str, ...]) -> None:
    data = sim_bytes() + ODD + b"\n"
    path = tmp_path / "day.ndjson"
    path.write_bytes(data)
    proc = run_agkit("feed", "replay", str(path), *mode)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == data
    assert proc.stderr == b""


def test_gz_and_record_roundtrip(tmp_path: Path) -> None:
    data = sim_bytes(1000)
    gz = tmp_path / "day.ndjson.gz"
    gz.write_bytes(gzip.compress(data))
    rec = tmp_path / "again.ndjson.gz"
    proc = run_agkit("feed", "replay", str(gz), "--max", "--record", str(rec))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == data
    assert gzip.decompress(rec.read_bytes()) == data


def test_from_to_and_limit(tmp_path: Path) -> None:
    data = sim_bytes(5000)
    path = tmp_path / "d.ndjson"
    path.write_bytes(data)
    recs = parse_ndjson(data)
    ts = sorted({r["ts_event"] for r in recs})
    lo, hi = ts[len(ts) // 4], ts[len(ts) // 2]
    proc = run_agkit("feed", "replay", str(path), "--max", "--from", str(lo), "--to", str(hi))
    assert proc.returncode == 0, proc.stderr
    want = [line for line, r in zip(data.splitlines(), recs, strict=True) if lo <= r["ts_event"] <= hi]
    assert proc.stdout.splitlines() == want
    iso = run_agkit("feed", "replay", str(path), "--max", "--from", "2026-01-01T00:00:10Z")
    assert all(r["ts_event"] >= 1_767_225_610_000_000 for r in parse_ndjson(iso.stdout))
    limited = run_agkit("feed", "replay", str(path), "--max", "--limit", "7")
    assert limited.stdout.splitlines() == data.splitlines()[:7]


def test_several_files_merge_by_ts_event(tmp_path: Path) -> None:
    a = b"".join(b'{"type":"x","ts_event":%d,"ts_init":0,"f":"a"}\n' % t for t in (1, 4, 6, 9))
    b = b"".join(b'{"type":"x","ts_event":%d,"ts_init":0,"f":"b"}\n' % t for t in (2, 4, 5, 10))
    (tmp_path / "a").write_bytes(a)
    (tmp_path / "b").write_bytes(b)
    proc = run_agkit("feed", "replay", str(tmp_path / "a"), str(tmp_path / "b"), "--max")
    got = [(r["ts_event"], r["f"]) for r in parse_ndjson(proc.stdout)]
    assert got == [(1, "a"), (2, "b"), (4, "a"), (4, "b"), (5, "b"), (6, "a"), (9, "a"), (10, "b")]


BAD = b'{"type":"x","ts_event":1,"ts_init":1}\n{not json\n[1,2]\n{"type":"x","ts_event":2,"ts_init":2}\n'


def test_bad_lines_skip(tmp_path: Path) -> None:
    (tmp_path / "bad").write_bytes(BAD)
    proc = run_agkit("feed", "replay", str(tmp_path / "bad"), "--max")
    assert proc.returncode == 0
    assert [r["ts_event"] for r in parse_ndjson(proc.stdout)] == [1, 2]
    assert b"line 2" in proc.stderr and b"line 3" in proc.stderr
    assert b"Traceback" not in proc.stderr


def test_bad_lines_emit(tmp_path: Path) -> None:
    (tmp_path / "bad").write_bytes(BAD)
    proc = run_agkit("feed", "replay", str(tmp_path / "bad"), "--max", "--on-error", "emit")
    recs = parse_ndjson(proc.stdout)
    assert [r["type"] for r in recs] == ["x", "error", "error", "x"]
    assert recs[1]["line"] == 2 and recs[2]["raw"] == "[1,2]"


def test_bad_lines_fail(tmp_path: Path) -> None:
    (tmp_path / "bad").write_bytes(BAD)
    proc = run_agkit("feed", "replay", str(tmp_path / "bad"), "--max", "--on-error", "fail")
    assert proc.returncode == 3
    assert b"line 2" in proc.stderr
    assert b'"ts_event":2' not in proc.stdout
    assert b"Traceback" not in proc.stderr


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    proc = run_agkit("feed", "replay", str(tmp_path / "nope.ndjson"))
    assert proc.returncode == 2
    assert b"nope.ndjson" in proc.stderr
    assert b"Traceback" not in proc.stderr


def test_records_without_timestamps_do_not_stall_pacing(tmp_path: Path) -> None:
    data = b'{"type":"x","ts_init":1}\n{"type":"x","ts_event":5,"ts_init":1}\n{"type":"y"}\n'
    (tmp_path / "f").write_bytes(data)
    proc = run_agkit("feed", "replay", str(tmp_path / "f"), timeout=30)
    assert proc.returncode == 0 and proc.stdout == data


def test_max_fast_path_judges_lines_like_the_general_path(tmp_path: Path) -> None:
    """--max over one unbounded file reads in blocks; --from forces the line-by-line path.
    Both must keep, drop and report the same lines with the same words."""
    data = BAD + b'{"x":1}\n{"type":5}\n\n{"type":"b","ts_event":3}\r\n{"type":"c","_fb":3}\n{"type":"d"}'
    (tmp_path / "bad").write_bytes(data)
    fast = run_agkit("feed", "replay", str(tmp_path / "bad"), "--max")
    general = run_agkit("feed", "replay", str(tmp_path / "bad"), "--max", "--from", "0")
    assert fast.returncode == general.returncode == 0
    assert fast.stdout == general.stdout
    assert fast.stderr == general.stderr
    assert [r["type"] for r in parse_ndjson(fast.stdout)] == ["x", "x", "b", "d"]
    assert fast.stderr.count(b"skipped") == 5
