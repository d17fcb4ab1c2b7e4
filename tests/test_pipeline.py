"""`agkit run` (one process and --processes) and `make demo`'s script, end to end."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from agkit.errors import UsageError
from agkit.pipeline import load_pipeline, split_pipeline
from tests.helpers import ROOT, agkit_env, parse_ndjson, run_agkit

PIPE = "feed sim --seed 3 --markets 2 --max-records 4000 | strategy mm | risk-check -p policies/default.yaml | exec"


def test_split_pipeline_respects_quotes_and_prefixes() -> None:
    assert split_pipeline("agkit feed sim | strategy mm -P 'a=b|c'") == [
        ["feed", "sim"],
        ["strategy", "mm", "-P", "a=b|c"],
    ]
    with pytest.raises(UsageError):
        split_pipeline("feed sim | | exec")


def test_yaml_pipeline_file(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("stages:\n  - feed sim --seed 1\n  - [strategy, mm]\n")
    assert load_pipeline(str(f)) == [["feed", "sim", "--seed", "1"], ["strategy", "mm"]]
    f.write_text("nothing: here\n")
    with pytest.raises(UsageError):
        load_pipeline(str(f))


def test_run_in_one_process_trades_and_is_deterministic() -> None:
    a = run_agkit("run", PIPE, timeout=120)
    assert a.returncode == 0, a.stderr
    recs = parse_ndjson(a.stdout)
    kinds = Counter(r["type"] for r in recs)
    assert kinds["submit_order"] > 0 and kinds["order_accepted"] > 0 and kinds["order_filled"] > 0
    # every order exec accepted was first submitted upstream, and fills follow their order
    submitted = {r["id"] for r in recs if r["type"] == "submit_order"}
    assert {r["id"] for r in recs if r["type"] == "order_filled"} <= submitted
    b = run_agkit("run", PIPE, timeout=120)

    def stable(out: bytes) -> list[dict[str, object]]:
        return [
            {k: v for k, v in r.items() if k != "ts_init"}
            for r in parse_ndjson(out)
            if r["type"] != "metric"
        ]

    assert stable(a.stdout) == stable(b.stdout)


def test_run_as_processes_wires_the_feedback_fifo() -> None:
    # separate processes see simulated time only if risk-check reads the event clock
    proc = run_agkit(
        "run",
        "--processes",
        PIPE.replace("default.yaml", "default.yaml --clock event"),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    recs = parse_ndjson(proc.stdout)
    fills = [r for r in recs if r["type"] == "order_filled"]
    assert fills and len({(f["id"], f["trade_id"]) for f in fills}) == len(
        fills
    )  # none repeated by the loop
    assert all(
        "_fb" not in r for r in recs if r["type"].startswith("order_")
    )  # loop copies stay in the loop


def test_run_refuses_what_is_not_a_pipeline() -> None:
    assert run_agkit("run", "schema | exec").returncode == 2
    bad = run_agkit("run", "feed sim | strategy mm --no-such-flag")
    assert bad.returncode == 2 and b"strategy mm --no-such-flag" in bad.stderr
    assert run_agkit("run", "strategy mm | feed sim").returncode == 2  # a source only at the head


def test_minibot_example_runs(tmp_path: Path) -> None:
    text = (ROOT / "examples/minibot/minibot.yaml").read_text()
    text = text.replace("--duration 1800", "--duration 120").replace(
        "minibot.db", str(tmp_path / "m.db")
    )
    f = tmp_path / "minibot.yaml"
    f.write_text(text)
    proc = run_agkit("run", str(f), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert any(r["type"] == "order_accepted" for r in parse_ndjson(proc.stdout))
    assert (tmp_path / "m.db").stat().st_size > 0


def test_demo_script_without_a_terminal(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    proc = subprocess.run(
        [sys.executable, "examples/demo.py", "--db", str(db), "--sim-seconds", "300"],
        capture_output=True,
        cwd=ROOT,
        env=agkit_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert f"The data is in {db}" in out
    stats = [
        r
        for r in parse_ndjson(
            b"\n".join(ln for ln in proc.stdout.splitlines() if ln.startswith(b'{"table"'))
        )
    ]
    rows = {r["table"]: r["rows"] for r in stats}
    assert rows["books"] > 0 and rows["order_events"] > 0
