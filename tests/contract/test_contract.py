"""The contract every stage command honours (DESIGN.md §2), run as real subprocesses."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import orjson
import pytest

from tests.contract.commands import COMMANDS, STAGES, Spec
from tests.helpers import ROOT, agkit_argv, agkit_env, parse_ndjson, popen_agkit, run_agkit

FILTERS = {name: spec for name, spec in STAGES.items() if spec.kind == "filter"}
SOURCES = {name: spec for name, spec in STAGES.items() if spec.kind == "source"}

UNKNOWN_A = b'{"type":"zz_unknown","ts_event":1,"ts_init":2,"nested":{"k":[1,2.5,"x"]},"big":123456789012345678901234567890}'
UNKNOWN_B = b'{"type":"zz_unknown","ts_event":3,"ts_init":4, "spacing" : "kept as is"}'
NOT_UTF8 = b'{"type":"zz_unknown\xe2\x82","ts_event":5,"ts_init":6}'  # a character cut short


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_help_works(argv: tuple[str, ...]) -> None:
    proc = run_agkit(*argv, "--help")
    assert proc.returncode == 0, proc.stderr
    assert b"Usage:" in proc.stdout
    assert proc.stderr == b""


@pytest.mark.parametrize("name", FILTERS)
def test_empty_input_exits_zero(name: str) -> None:
    proc = run_agkit(*FILTERS[name].argv, input=b"")
    assert proc.returncode == 0, proc.stderr
    for rec in parse_ndjson(proc.stdout):  # a stage may emit final metrics, nothing else
        assert rec["type"] == "metric"


@pytest.mark.parametrize("name", FILTERS)
def test_unknown_type_passes_through_unchanged(name: str) -> None:
    proc = run_agkit(*FILTERS[name].argv, input=UNKNOWN_A + b"\n" + UNKNOWN_B + b"\n")
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if b'"zz_unknown"' in line]
    assert lines == [UNKNOWN_A, UNKNOWN_B]


@pytest.mark.parametrize("name", FILTERS)
def test_malformed_line_skip(name: str) -> None:
    proc = run_agkit(
        *FILTERS[name].argv,
        "--on-error",
        "skip",
        input=UNKNOWN_A + b"\n{not json\n" + NOT_UTF8 + b"\n" + UNKNOWN_B + b"\n",
    )
    assert proc.returncode == 0, proc.stderr
    assert [ln for ln in proc.stdout.splitlines() if b"zz_unknown" in ln] == [UNKNOWN_A, UNKNOWN_B]
    assert b"line 2" in proc.stderr
    assert b"line 3: invalid JSON: not UTF-8" in proc.stderr
    assert b"Traceback" not in proc.stderr


@pytest.mark.parametrize("name", FILTERS)
def test_malformed_line_emit(name: str) -> None:
    proc = run_agkit(
        *FILTERS[name].argv,
        "--on-error",
        "emit",
        input=UNKNOWN_A + b"\n[1,2]\n" + UNKNOWN_B + b"\n",
    )
    assert proc.returncode == 0, proc.stderr
    recs = [r for r in parse_ndjson(proc.stdout) if r["type"] in ("zz_unknown", "error")]
    assert [r["type"] for r in recs] == ["zz_unknown", "error", "zz_unknown"]
    assert recs[1]["line"] == 2 and recs[1]["raw"] == "[1,2]"


@pytest.mark.parametrize("name", FILTERS)
def test_malformed_line_fail(name: str) -> None:
    proc = run_agkit(
        *FILTERS[name].argv,
        "--on-error",
        "fail",
        input=UNKNOWN_A + b"\n\xff\xfe garbage\n" + UNKNOWN_B + b"\n",
    )
    assert proc.returncode == 3
    assert b"line 2" in proc.stderr
    assert UNKNOWN_A in proc.stdout.splitlines()  # what came before the bad line was flushed
    assert UNKNOWN_B not in proc.stdout
    assert b"Traceback" not in proc.stderr


@pytest.mark.parametrize("name", FILTERS)
def test_head_ends_quietly(name: str, tmp_path: Path) -> None:
    data = tmp_path / "in.ndjson"
    data.write_bytes((UNKNOWN_A + b"\n") * 200_000)
    argv = " ".join(agkit_argv(*FILTERS[name].argv))
    script = f"{argv} < {data} | head -n 1"
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", script],
        capture_output=True,
        env=agkit_env(),
        cwd=ROOT,
        timeout=60,
    )
    assert proc.stdout.strip() == UNKNOWN_A
    assert proc.stderr == b"", proc.stderr
    assert proc.returncode == 0


@pytest.mark.parametrize("name", FILTERS)
def test_sigterm_flushes_and_exits_zero(name: str) -> None:
    proc = popen_agkit(
        *FILTERS[name].argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(UNKNOWN_A + b"\n" + UNKNOWN_B + b"\n")
    proc.stdin.flush()
    # idle input: records leave at once, without waiting for EOF
    got = [proc.stdout.readline().rstrip() for _ in range(2)]
    assert UNKNOWN_A in got and UNKNOWN_B in got
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert all(rec["type"] == "metric" for rec in parse_ndjson(out))
    assert proc.returncode == 0, err
    assert b"Traceback" not in err


@pytest.mark.parametrize("name", SOURCES)
def test_source_output_is_valid_and_head_quiet(name: str) -> None:
    argv = " ".join(agkit_argv(*SOURCES[name].argv))
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"{argv} | head -n 1"],
        capture_output=True,
        env=agkit_env(),
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    rec = orjson.loads(proc.stdout)
    assert isinstance(rec["type"], str) and isinstance(rec["ts_event"], int)


def test_every_stage_is_a_documented_command() -> None:
    assert {spec.argv[: len(spec.argv)] for spec in STAGES.values()}  # non-empty registry
    for spec in STAGES.values():
        assert any(tuple(spec.argv[: len(c)]) == c for c in COMMANDS), spec


def test_spec_kinds_are_known() -> None:
    assert {s.kind for s in STAGES.values()} <= {"filter", "source", "sink"}
    assert all(isinstance(s, Spec) for s in STAGES.values())
