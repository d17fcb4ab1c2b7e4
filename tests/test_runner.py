"""PipeRunner and Chain: feedback loops, merge, flush rule, back-pressure, in real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from agkit.clock import EventClock
from agkit.runner import Chain
from agkit.stage import Out, Stage, Timer
from tests.helpers import ROOT, agkit_argv, agkit_env, ndjson, parse_ndjson
from tests.pipe_stages import Exec, Strategy


def _stage(name: str, *args: str, **kw: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.pipe_stages", name, *args], env=agkit_env(), cwd=ROOT, **kw
    )


def ticks(n: int) -> list[dict[str, Any]]:
    return [{"type": "tick", "ts_event": i, "ts_init": i} for i in range(1, n + 1)]


def test_feedback_loop_through_fifo_delivers_fills_once(tmp_path: Path) -> None:
    fifo = str(tmp_path / "fb")
    n = 2000
    head = subprocess.Popen(
        [*agkit_argv("pass", "--merge", fifo)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=agkit_env(),
        cwd=ROOT,
    )
    strat = _stage("strategy", stdin=head.stdout, stdout=subprocess.PIPE)
    exe = _stage("exec", "--feedback", fifo, stdin=strat.stdout, stdout=subprocess.PIPE)
    assert head.stdin and exe.stdout
    head.stdin.write(ndjson(ticks(n)))
    head.stdin.flush()
    out: list[dict[str, Any]] = []
    while (
        sum(r["type"] == "order_filled" for r in out) < n
    ):  # every fill reached the end of the pipe
        line = exe.stdout.readline()
        assert line, "pipe ended early"
        out.append(orjson.loads(line))
    time.sleep(0.5)  # let the last fills come around to the strategy
    head.stdin.close()
    rest, _ = exe.communicate(timeout=60)
    out += parse_ndjson(rest)
    for p in (head, strat):
        assert p.wait(timeout=30) == 0
    assert exe.returncode == 0
    fills = [r for r in out if r["type"] == "order_filled"]
    assert len(fills) == n  # exec did not repeat its own events when they came around
    assert len({f["id"] for f in fills}) == n
    assert sum(r["type"] == "order_accepted" for r in out) == n
    seen = [r for r in out if r.get("name") == "fills_seen"]
    assert seen and seen[0]["value"] == n  # every fill reached the strategy
    ticks_out = [r["ts_event"] for r in out if r["type"] == "tick"]
    assert ticks_out == list(range(1, n + 1))  # order kept


def test_feedback_loop_with_slow_consumer_does_not_deadlock(tmp_path: Path) -> None:
    """Heavy feedback traffic while the last reader is slow: everything still arrives."""
    fifo = str(tmp_path / "fb")
    n = 60_000
    data = tmp_path / "in.ndjson"
    data.write_bytes(ndjson(ticks(n)))
    with open(data, "rb") as src:
        head = subprocess.Popen(
            [*agkit_argv("pass", "--merge", fifo)],
            stdin=src,
            stdout=subprocess.PIPE,
            env=agkit_env(),
            cwd=ROOT,
        )
    strat = _stage("strategy", stdin=head.stdout, stdout=subprocess.PIPE)
    exe = _stage(
        "exec",
        "--feedback",
        fifo,
        stdin=strat.stdout,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert exe.stdout and exe.stderr
    got = 0
    chunks = []
    while True:
        chunk = exe.stdout.read(4096)  # a deliberately slow reader
        if not chunk:
            break
        chunks.append(chunk)
        got += 1
        if got % 50 == 0:
            time.sleep(0.001)
    assert exe.wait(timeout=120) == 0
    assert exe.stderr.read() == b""  # the head leaving first at the end is normal, not news
    out = parse_ndjson(b"".join(chunks))
    assert sum(r["type"] == "order_filled" for r in out) == n


def test_source_with_timer_flushes_each_record() -> None:
    proc = _stage("ticker", "5", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert [r["type"] for r in parse_ndjson(out)] == ["heartbeat"] * 5


def test_idle_input_is_flushed_without_eof() -> None:
    proc = subprocess.Popen(
        agkit_argv("pass"), stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=agkit_env(), cwd=ROOT
    )
    assert proc.stdin and proc.stdout
    for i in range(3):
        line = b'{"type":"x","ts_event":%d,"ts_init":0}\n' % i
        proc.stdin.write(line)
        proc.stdin.flush()
        assert proc.stdout.readline() == line  # arrives while stdin stays open
    proc.stdin.close()
    assert proc.wait(timeout=10) == 0


def test_last_line_without_newline_is_processed() -> None:
    proc = subprocess.run(
        agkit_argv("pass"),
        input=b'{"type":"a"}\n{"type":"b"}',
        capture_output=True,
        env=agkit_env(),
        cwd=ROOT,
    )
    assert proc.stdout == b'{"type":"a"}\n{"type":"b"}\n'


def test_giant_line_is_reported_and_dropped(tmp_path: Path) -> None:
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.write(b'{"type":"a"}\n')
        f.write(b'{"type":"huge","x":"' + b"y" * (17 * 1024 * 1024) + b'"}\n')
        f.write(b'{"type":"b"}\n')
    with open(big, "rb") as f:
        proc = subprocess.run(
            agkit_argv("pass"), stdin=f, capture_output=True, env=agkit_env(), cwd=ROOT, timeout=60
        )
    assert proc.returncode == 0
    assert proc.stdout == b'{"type":"a"}\n{"type":"b"}\n'
    assert b"line 2" in proc.stderr and b"longer than" in proc.stderr


def test_many_bad_lines_are_summarised(tmp_path: Path) -> None:
    data = b"".join(b"bad %d\n" % i for i in range(100)) + b'{"type":"ok"}\n'
    proc = subprocess.run(
        agkit_argv("pass"), input=data, capture_output=True, env=agkit_env(), cwd=ROOT
    )
    assert proc.stdout == b'{"type":"ok"}\n'
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 21 and "100 bad input lines" in lines[-1]


def test_text_that_is_not_utf8_is_a_bad_line_not_a_crash() -> None:
    """Bytes that are not UTF-8 in `type` (every stage reads it) or in another field of a
    record the stage consumes: the line is reported with its number and skipped, and
    the stage goes on with the next one (it used to end on an internal error)."""
    cut = b"\xe2\x82"  # a character cut short
    data = (
        b'{"type":"book' + cut + b'","ts_event":1,"ts_init":1}\n'
        b'{"type":"book","ts_event":1,"ts_init":1,"market":"m","asset":"a' + cut + b'","bids":[],"asks":[]}\n'
        b'{"type":"zz","ts_event":2,"ts_init":2}\n'
    )
    proc = subprocess.run(agkit_argv("exec"), input=data, capture_output=True, env=agkit_env(), cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert b"line 1: invalid JSON: not UTF-8" in proc.stderr
    assert b"line 2: invalid JSON: str is not valid UTF-8" in proc.stderr
    assert b'{"type":"zz","ts_event":2,"ts_init":2}' in proc.stdout.splitlines()
    assert b"Traceback" not in proc.stderr and b"internal error" not in proc.stderr


def test_consumed_records_are_checked_like_any_other(tmp_path: Path) -> None:
    """The one-decode fast path for consumed records keeps the careful path's rules:
    a broken consumed line is reported with its number, and our own record is
    recognised by its feedback tag wherever the tag sits in the object."""
    fifo = str(tmp_path / "fb")
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # keeps the FIFO open for exec
    tag = orjson.dumps(fifo).decode()
    data = (
        b'{"type":"tick","ts_event":1,"ts_init":1}\n'
        b'{"type":"tick","ts_event":2,\n'
        b'{"type":"order_filled","ts_event":3,"ts_init":3,"_fb":' + tag.encode() + b"}\n"
        b'{"type":"other","ts_event":4,"ts_init":4}\n'
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "tests.pipe_stages", "strategy", "--feedback", fifo],
            input=data,
            capture_output=True,
            env=agkit_env(),
            cwd=ROOT,
            timeout=60,
        )
    finally:
        os.close(reader)
    assert proc.returncode == 0, proc.stderr
    out = parse_ndjson(proc.stdout)
    assert [r["type"] for r in out] == ["tick", "submit_order", "other", "metric"]
    assert out[-1]["value"] == 0  # the tagged fill was ours: dropped, not counted
    assert b"line 2" in proc.stderr and b"invalid JSON" in proc.stderr


# ---- Chain (in process) ---------------------------------------------------------------


def test_chain_delivers_feedback_before_next_record() -> None:
    strategy, exe = Strategy(), Exec()
    seen_by_strategy: list[str] = []
    orig = strategy.on_record

    def spy(rec: dict[str, Any]) -> Out:
        seen_by_strategy.append(rec["type"])
        return orig(rec)

    strategy.on_record = spy  # type: ignore[method-assign]
    chain = Chain([strategy, exe], feedback_from=1, clock=EventClock())
    out = list(chain.process(ticks(3)))
    # each tick's fill reaches the strategy before the next tick
    assert seen_by_strategy == [
        "tick",
        "order_filled",
        "tick",
        "order_filled",
        "tick",
        "order_filled",
    ]
    types = [r["type"] for r in out if isinstance(r, dict)]  # type: ignore[index]
    assert types.count("order_filled") == 3  # not repeated when it came around
    assert types[:3] == ["tick", "order_accepted", "order_filled"]
    assert strategy.fills == 3


def test_chain_timers_follow_event_time() -> None:
    fired: list[int] = []

    class Timed(Stage):
        name = "timed"
        consumes = frozenset()

        def timers(self) -> list[Timer]:
            return [Timer(10, lambda: fired.append(self.ctx.clock.now_us()) or None)]

    clock = EventClock(0)
    chain = Chain([Timed()], clock=clock)
    list(chain.process([{"type": "x", "ts_event": t, "ts_init": 0} for t in (5, 25, 26, 41)]))
    assert fired == [10, 20, 30, 40]


def test_chain_is_deterministic() -> None:
    def run() -> bytes:
        chain = Chain([Strategy(), Exec()], feedback_from=1)
        return ndjson([r for r in chain.process(ticks(50)) if isinstance(r, dict)])  # type: ignore[misc]

    assert run() == run()


def test_stdout_closed_early_exits_zero_without_noise() -> None:
    r, w = os.pipe()
    os.close(r)
    proc = subprocess.run(
        agkit_argv("pass"),
        input=b'{"type":"x"}\n' * 10,
        stdout=w,
        stderr=subprocess.PIPE,
        env=agkit_env(),
        cwd=ROOT,
    )
    os.close(w)
    assert proc.returncode == 0
    assert proc.stderr == b""


def test_dev_null_in_and_out() -> None:
    with open(os.devnull, "rb") as null_in, open(os.devnull, "wb") as null_out:
        proc = subprocess.run(
            agkit_argv("pass"),
            stdin=null_in,
            stdout=null_out,
            stderr=subprocess.PIPE,
            env=agkit_env(),
            cwd=ROOT,
        )
    assert proc.returncode == 0, proc.stderr
    with open(os.devnull, "wb") as null_out:
        proc = subprocess.run(
            agkit_argv("pass"),
            input=b'{"type":"a"}\n',
            stdout=null_out,
            stderr=subprocess.PIPE,
            env=agkit_env(),
            cwd=ROOT,
        )
    assert proc.returncode == 0, proc.stderr


def test_chain_under_pipe_runner_with_a_source() -> None:
    proc = _stage("chain", "5", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    recs = parse_ndjson(out)
    assert [r["type"] for r in recs[:3]] == ["tick", "order_accepted", "order_filled"]
    assert sum(r["type"] == "order_filled" for r in recs) == 5
    assert [r["value"] for r in recs if r.get("name") == "fills_seen"] == [5]


def test_chain_awaits_async_start_and_stop() -> None:
    import asyncio

    from agkit.clock import Clock
    from agkit.stage import Context

    class Reconciling(Exec):
        async def start(self, ctx: Context) -> Out:  # type: ignore[override]
            self.ctx = ctx
            await asyncio.sleep(0)
            return ({"type": "reconciled", "ts_event": 0, "ts_init": 0},)

    strategy = Strategy()
    chain = Chain([strategy, Reconciling()], feedback_from=1, clock=Clock())
    emitted: list[Any] = []
    started = chain.start(Context(Clock(), emitted.append, print))
    assert not isinstance(started, list)
    out = asyncio.run(started)  # type: ignore[arg-type]
    assert [r["type"] for r in out] == ["reconciled"]  # type: ignore[index, union-attr]
    try:
        list(Chain([Reconciling()]).process([]))
        raise AssertionError("an async stage must be refused by Chain.process")
    except TypeError as exc:
        assert "PipeRunner" in str(exc)


class _Quoter(Stage):
    """Sends an order for every tick (before the tick itself)."""

    name = "quoter"

    def on_record(self, rec: dict[str, Any]) -> Out:
        if rec["type"] != "tick":
            return (rec,)
        return [{"type": "submit_order", "id": f"o{rec['ts_event']}", "ts_event": rec["ts_event"]}, rec]


class _Picky(Stage):
    """Refuses ticks marked bad, and takes everything else."""

    name = "picky"

    def on_record(self, rec: dict[str, Any]) -> Out:
        if rec.get("bad"):
            from agkit.errors import InvalidRecord

            raise InvalidRecord("a bad tick")
        return (rec,)


def test_a_record_refused_mid_chain_goes_no_further_and_loses_nothing_else() -> None:
    refused: list[tuple[int, str, str]] = []

    def on_invalid(index: int, rec: dict[str, Any], exc: Exception) -> list[dict[str, Any]]:
        refused.append((index, rec["type"], str(exc)))
        return [{"type": "error", "ts_event": rec["ts_event"], "reason": str(exc)}]

    chain = Chain([_Quoter(), _Picky()], clock=EventClock(0), on_invalid=on_invalid)
    recs = ticks(3)
    recs[1]["bad"] = True
    out = [r for r in chain.process(recs) if isinstance(r, dict)]
    assert refused == [(1, "tick", "a bad tick")]
    # the order the bad tick caused upstream still went on; the tick itself did not
    assert [(r["type"], r.get("id") or r.get("ts_event")) for r in out] == [
        ("submit_order", "o1"), ("tick", 1),
        ("submit_order", "o2"), ("error", 2),
        ("submit_order", "o3"), ("tick", 3),
    ]


def test_without_a_handler_a_refusal_reaches_the_caller() -> None:
    from agkit.errors import InvalidRecord

    recs = ticks(2)
    recs[0]["bad"] = True
    try:
        list(Chain([_Picky()], clock=EventClock(0)).process(recs))
        raise AssertionError("the refusal must propagate")
    except InvalidRecord as exc:
        assert "a bad tick" in str(exc)


class _Ticker(Stage):
    """A one-second timer that notes when it fires."""

    name = "ticker"

    def __init__(self) -> None:
        self.fired: list[int] = []

    def on_record(self, rec: dict[str, Any]) -> Out:
        return (rec,)

    def timers(self) -> list[Timer]:
        return [Timer(1_000_000, lambda: self.fired.append(self.ctx.clock.now_us()) or None)]

    def start(self, ctx: Any) -> Out:
        self.ctx = ctx
        return None


def test_after_a_gap_in_the_data_a_timer_fires_only_its_last_intervals() -> None:
    from agkit.clock import MAX_CATCH_UP

    s = 1_000_000
    t0 = 1_767_225_600 * s
    ticker = _Ticker()
    chain = Chain([ticker], clock=EventClock(t0))
    ten_days = 10 * 86_400 * s
    list(chain.process([{"type": "x", "ts_event": t, "ts_init": t} for t in (t0, t0 + 5 * s, t0 + ten_days)]))
    before = [t for t in ticker.fired if t <= t0 + 5 * s]
    after = [t for t in ticker.fired if t > t0 + 5 * s]
    assert before == [t0 + i * s for i in range(1, 6)]  # no gap: every interval
    # 864,000 intervals missed: the last MAX_CATCH_UP of them, on the timer's schedule
    assert after == [t0 + ten_days - i * s for i in range(MAX_CATCH_UP - 1, -1, -1)]


def test_a_timestamp_that_is_not_a_time_moves_no_clock() -> None:
    s = 1_000_000
    t0 = 1_767_225_600 * s
    ticker = _Ticker()
    chain = Chain([ticker], clock=EventClock(t0))
    recs = [{"type": "x", "ts_event": t, "ts_init": t} for t in (t0, (1 << 53) + 1, t0 + 3 * s)]
    out = [r for r in chain.process(recs) if isinstance(r, dict)]
    assert len(out) == 3  # the record goes on: stages that read time refuse it themselves
    assert ticker.fired == [t0 + s, t0 + 2 * s, t0 + 3 * s] and chain.clock.now_us() == t0 + 3 * s
