"""risk-check as a real subprocess in a pipe: pass-through bytes, signals, kill file."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson

from tests.helpers import ROOT, agkit_argv, agkit_env, ndjson, parse_ndjson, popen_agkit, run_agkit
from tests.risk.builders import book, order


def now_us() -> int:
    return time.time_ns() // 1000


def test_pipeline_between_two_stages_forwards_approved_bytes(tmp_path: Path) -> None:
    ts = 1_790_000_000_000_000
    lines = [
        orjson.dumps(book(ts=ts)),
        # odd spacing: an approved order must leave byte-for-byte as it came
        b'{"type":"submit_order", "ts_event":%d,"ts_init":%d,"id":"o1","strategy":"s","venue":"sim","market":"m1","asset":"a1","side":"buy","price":0.5,"size":10}' % (ts, ts),
        orjson.dumps(order("o2", price=0.9, ts=ts)),
        orjson.dumps(order("o3", size=5000, ts=ts)),
    ]
    data = tmp_path / "in.ndjson"
    data.write_bytes(b"\n".join(lines) + b"\n")
    a = " ".join(agkit_argv("pass"))
    r = " ".join(agkit_argv("risk-check", "-p", "policies/default.yaml", "--clock", "event"))
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"{a} < {data} | {r} | {a}"], capture_output=True, env=agkit_env(), cwd=ROOT, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0] == lines[0] and out[1] == lines[1]
    recs = [orjson.loads(x) for x in out]
    denied = {r["id"]: r for r in recs if r["type"] == "order_denied"}
    assert denied["o2"]["policy"] == "PriceBand" and denied["o3"]["policy"] == "PositionLimit"
    assert all(r["type"] == "metric" for r in recs[4:])


def test_wall_clock_stale_guard_denies_old_books() -> None:
    old = now_us() - 60_000_000
    proc = run_agkit("risk-check", "-p", "policies/default.yaml", input=ndjson([book(ts=old), order("o", ts=old)]))
    assert proc.returncode == 0
    recs = parse_ndjson(proc.stdout)
    assert next(r for r in recs if r["type"] == "order_denied")["policy"] == "StaleData"


def _read_until(proc: subprocess.Popen[bytes], pred: Any, limit: int = 200) -> list[dict[str, Any]]:
    assert proc.stdout is not None
    got = []
    for _ in range(limit):
        line = proc.stdout.readline()
        if not line:
            break
        rec = orjson.loads(line)
        got.append(rec)
        if pred(rec):
            return got
    raise AssertionError(f"not seen; got {got}")


def _send(proc: subprocess.Popen[bytes], *recs: dict[str, Any]) -> None:
    assert proc.stdin is not None
    proc.stdin.write(ndjson(list(recs)))
    proc.stdin.flush()


def _is(type_: str, **fields: Any) -> Any:
    return lambda r: r["type"] == type_ and all(r.get(k) == v for k, v in fields.items())


def test_sigusr1_engages_sigusr2_disengages() -> None:
    proc = popen_agkit(
        "risk-check", "-p", "policies/default.yaml", "--metrics-interval-ms", "0",
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        t = now_us()
        _send(proc, book(ts=t), order("a", ts=t))
        _read_until(proc, _is("submit_order", id="a"))
        proc.send_signal(signal.SIGUSR1)
        got = _read_until(proc, _is("cancel_all"))
        assert got[-2]["type"] == "kill_switch" and got[-2]["engaged"] is True
        t = now_us()
        _send(proc, book(ts=t), order("b", ts=t))
        assert _read_until(proc, _is("order_denied", id="b"))[-1]["policy"] == "KillSwitch"
        proc.send_signal(signal.SIGUSR2)
        assert _read_until(proc, _is("kill_switch"))[-1]["engaged"] is False
        t = now_us()
        _send(proc, book(ts=t), order("c", ts=t))
        _read_until(proc, _is("submit_order", id="c"))
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert b"ENGAGED" in err and b"disengaged" in err


def test_kill_file_appearing_engages(tmp_path: Path) -> None:
    kill = tmp_path / "KILL"
    proc = popen_agkit(
        "risk-check", "-p", "policies/default.yaml", "--kill-file", str(kill), "--kill-file-interval-ms", "20",
        "--metrics-interval-ms", "0",
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        kill.write_text("")
        got = _read_until(proc, _is("cancel_all"))
        assert got[-2]["type"] == "kill_switch" and "kill file" in got[-2]["reason"]
        proc.send_signal(signal.SIGUSR2)  # refused: the file is still there
        time.sleep(0.2)
        t = now_us()
        _send(proc, book(ts=t), order("x", ts=t))
        assert _read_until(proc, _is("order_denied", id="x"))[-1]["policy"] == "KillSwitch"
        os.unlink(kill)
        proc.send_signal(signal.SIGUSR2)
        assert _read_until(proc, _is("kill_switch"))[-1]["engaged"] is False
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert b"still exists" in err


def test_kill_file_present_at_start(tmp_path: Path) -> None:
    kill = tmp_path / "KILL"
    kill.write_text("")
    t = now_us()
    proc = run_agkit("risk-check", "-p", "policies/default.yaml", "--kill-file", str(kill), input=ndjson([book(ts=t), order("o", ts=t)]))
    recs = parse_ndjson(proc.stdout)
    assert [r["type"] for r in recs[:2]] == ["kill_switch", "cancel_all"]
    assert next(r for r in recs if r["type"] == "order_denied")["policy"] == "KillSwitch"
