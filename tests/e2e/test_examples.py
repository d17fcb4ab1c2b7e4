"""Every shipped example runs for real: the shell pipelines (examples/pipelines/*.sh), the
crontab line (examples/cron) and the systemd units (examples/systemd).

The pipelines run offline (feed sim/replay, paper exec, SQLite in a temp dir given by
AGKIT_EXAMPLE_DIR), bounded by AGKIT_EXAMPLE_RECORDS, with the `agkit` on PATH being this
working tree. Units are checked by `systemd-analyze verify` and their ExecStart lines
are executed (with the install paths mapped onto a temp dir).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.util import ROOT, kill_group, run_bounded, shell_env, table_counts
from tests.helpers import parse_ndjson

pytestmark = pytest.mark.timeout(300)

PIPELINES = sorted((ROOT / "examples/pipelines").glob("*.sh"))
RECORDS = "6000"


def run_example(script: Path, tmp: Path) -> tuple[list[dict[str, object]], str]:
    work = tmp / "work"
    work.mkdir()
    env = shell_env(tmp, AGKIT_EXAMPLE_DIR=str(work), AGKIT_EXAMPLE_RECORDS=RECORDS)
    proc = run_bounded(["bash", str(script)], timeout=240, env=env, cwd=tmp, stdin=subprocess.DEVNULL)
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, f"{script.name} exited {proc.returncode}: {err[-3000:]}"
    assert "Traceback" not in err and "internal error" not in err, err[-3000:]
    return parse_ndjson(proc.stdout), err


def test_every_pipeline_has_a_header_and_is_listed() -> None:
    names = [p.name for p in PIPELINES]
    assert len(names) >= 5, names
    for p in PIPELINES:
        text = p.read_text()
        assert text.startswith("#!/usr/bin/env bash\n# "), p.name
        assert "set -euo pipefail" in text and "AGKIT_EXAMPLE_DIR" in text, p.name
        assert os.access(p, os.X_OK), f"{p.name} is not executable"
    assert {"01-paper-bot.sh", "02-record-replay-backtest.sh", "03-store-tee-monitor.sh",
            "04-unix-tools-between-stages.sh", "05-store-rollup-query.sh"} <= set(names)


def stats(recs: list[dict[str, object]]) -> dict[str, int]:
    return {str(r["table"]): int(r["rows"]) for r in recs if "table" in r}  # type: ignore[call-overload]


def test_01_paper_bot(tmp_path: Path) -> None:
    recs, _ = run_example(ROOT / "examples/pipelines/01-paper-bot.sh", tmp_path)
    rows = stats(recs)
    assert rows["books"] > 0 and rows["trades"] > 0 and rows["order_events"] > 0 and rows["fills"] > 0
    positions = [r for r in recs if "table" not in r]
    assert positions and all("asset" in p and "size" in p for p in positions)
    counts = table_counts(tmp_path / "work/bot.db")
    assert counts["fills"] == rows["fills"]
    assert not (tmp_path / "work/feedback.fifo").exists()  # the script cleans its FIFO up


def test_02_record_replay_backtest(tmp_path: Path) -> None:
    recs, _ = run_example(ROOT / "examples/pipelines/02-record-replay-backtest.sh", tmp_path)
    result = [r for r in recs if r.get("type") == "backtest_result"]
    assert len(result) == 1 and int(result[0]["orders"]) > 0  # type: ignore[call-overload]
    rows = stats(recs)
    assert rows["books"] > 0 and rows["order_events"] > 0
    # the replay stored exactly the recorded market data
    import gzip

    recorded = Counter(r["type"] for r in parse_ndjson(gzip.decompress((tmp_path / "work/day.ndjson.gz").read_bytes())))
    assert rows["books"] == recorded["book"] and rows["trades"] == recorded["trade"]


def test_03_store_tee_monitor(tmp_path: Path) -> None:
    recs, err = run_example(ROOT / "examples/pipelines/03-store-tee-monitor.sh", tmp_path)
    rows = stats(recs)
    assert rows["books"] > 0 and rows["fills"] > 0
    assert "exec_fills" in err  # the monitor's summary of the series, on stderr


def test_04_unix_tools_between_stages(tmp_path: Path) -> None:
    if shutil.which("jq") is None and os.environ.get("CI") != "true":
        pytest.skip("jq is not installed (apt-get install jq; .ci/run installs it)")
    recs, _ = run_example(ROOT / "examples/pipelines/04-unix-tools-between-stages.sh", tmp_path)
    assert len(recs) == 1 and recs[0]["invalid"] == 0 and int(recs[0]["valid"]) > 0  # type: ignore[call-overload]
    after_strategy = parse_ndjson((tmp_path / "work/after-strategy.ndjson").read_bytes())
    kinds = Counter(r["type"] for r in after_strategy)
    assert not any(r["type"] == "metric" and str(r.get("name", "")).startswith("feed") for r in after_strategy)  # jq
    assert kinds["book"] > 0 and kinds["submit_order"] > 0
    fills = parse_ndjson((tmp_path / "work/fills.ndjson").read_bytes())
    submitted = {r["id"] for r in after_strategy if r["type"] == "submit_order"}
    assert fills and {f["id"] for f in fills} <= submitted


def test_05_store_rollup_query(tmp_path: Path) -> None:
    recs, _ = run_example(ROOT / "examples/pipelines/05-store-rollup-query.sh", tmp_path)
    runs = [r for r in recs if r.get("type") == "store_rollup"]
    assert len(runs) == 2 and int(runs[0]["bars_trade"]) > 0  # type: ignore[call-overload]
    assert runs[1]["bars_trade"] == 0 and runs[1]["pnl"] == 0  # the rerun had nothing new to do
    bars = [r for r in recs if r.get("type") == "bar"]
    assert bars and all(float(b["low"]) <= float(b["close"]) <= float(b["high"]) for b in bars)  # type: ignore[arg-type]
    pnl = [r for r in recs if r.get("type") == "pnl_daily"]
    assert len(pnl) == runs[0]["pnl"] and all(r["strategy"] == "mm" and int(r["fills"]) > 0 for r in pnl)  # type: ignore[call-overload]
    with sqlite3.connect(tmp_path / "work/rollup.db") as conn:  # the day's fills are all in the PnL rows
        (n_fills,) = conn.execute("select count(*) from fills").fetchone()
    assert sum(int(r["fills"]) for r in pnl) == n_fills  # type: ignore[call-overload]


# -- cron ----------------------------------------------------------------------------------

CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")


def parse_crontab(text: str) -> tuple[dict[str, str], list[tuple[list[str], str]]]:
    env: dict[str, str] = {}
    jobs: list[tuple[list[str], str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$", line)
        if m:
            env[m.group(1)] = m.group(2)
            continue
        parts = line.split(None, 5)
        assert len(parts) == 6, f"not a crontab job line: {line!r}"
        jobs.append((parts[:5], parts[5]))
    return env, jobs


def seed_store(tmp: Path, db: Path) -> None:
    env = shell_env(tmp)
    sim = run_bounded(["agkit", "feed", "sim", "--seed", "4", "--markets", "2", "--max-records", "5000"], 120, env=env)
    assert sim.returncode == 0
    proc = subprocess.run(["agkit", "store", "ingest", "--db", str(db)], input=sim.stdout, env=env, capture_output=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_crontab_line_runs_rollup(tmp_path: Path) -> None:
    env_lines, jobs = parse_crontab((ROOT / "examples/cron/agkit-rollup.crontab").read_text())
    assert len(jobs) == 1
    fields, command = jobs[0]
    limits = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
    for f, (lo, hi) in zip(fields, limits, strict=True):
        assert CRON_FIELD.match(f), f
        assert all(lo <= int(n) <= hi for n in re.findall(r"\d+", f.split("/")[0])), f
    assert "%" not in command  # cron would turn it into a newline
    assert "agkit store rollup" in command and ">>" in command and "2>&1" in command
    assert env_lines["SHELL"] == "/bin/sh" and env_lines["AGKIT_DB"].startswith("sqlite:///")

    db = tmp_path / "cron.db"
    seed_store(tmp_path, db)
    home = tmp_path / "home"
    home.mkdir()
    env = shell_env(tmp_path)
    # what cron does: the crontab's variables, HOME of the user, then `SHELL -c command`
    env.update(env_lines)
    env["PATH"] = shell_env(tmp_path)["PATH"]  # this working tree's agkit first
    env["HOME"] = str(home)
    env["AGKIT_DB"] = f"sqlite:///{db}"
    log = home / ".local/state/agkit/rollup.log"
    # a run that finds the previous one still going (it holds the rollup's own file lock)
    # exits 0 at once and says so in the log: runs never pile up, no flock wrapper needed
    import fcntl

    fd = os.open(f"{db}.rollup.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        held = run_bounded([env_lines["SHELL"], "-c", command], 120, env=env, stdin=subprocess.DEVNULL)
    finally:
        os.close(fd)
    assert held.returncode == 0 and "another rollup is running; skipped" in log.read_text()
    assert table_counts(db)["bars"] == 0
    for _ in range(2):
        proc = run_bounded([env_lines["SHELL"], "-c", command], 120, env=env, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0 and proc.stdout == b"" and proc.stderr == b""  # all of it went to the log
    records = b"".join(ln for ln in log.read_bytes().splitlines(keepends=True) if ln.startswith(b"{"))
    runs = [r for r in parse_ndjson(records) if r.get("type") == "store_rollup"]
    assert len(runs) == 2 and int(runs[0]["bars_trade"]) > 0 and runs[1]["bars_trade"] == 0  # type: ignore[call-overload]
    assert table_counts(db)["bars"] > 0

    # a broken store: non-zero exit and the message lands in the log too
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"this is not an SQLite database" * 100)
    env["AGKIT_DB"] = f"sqlite:///{broken}"
    bad = run_bounded([env_lines["SHELL"], "-c", command], 120, env=env, stdin=subprocess.DEVNULL)
    assert bad.returncode != 0
    tail = log.read_text().splitlines()[-1]
    assert "cannot open SQLite database" in tail and "Traceback" not in log.read_text()


# -- systemd -------------------------------------------------------------------------------

UNITS = ["agkit-bot.service", "agkit-rollup.service", "agkit-rollup.timer"]


def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            assert line.endswith("]"), line
            current = line[1:-1]
            assert current not in sections, f"duplicate section {current}"
            sections[current] = []
            continue
        assert current is not None and "=" in line, line
        key, value = line.split("=", 1)
        sections[current].append((key.strip(), value.strip()))
    return sections


def one(sections: dict[str, list[tuple[str, str]]], section: str, key: str) -> str:
    values = [v for k, v in sections[section] if k == key]
    assert len(values) == 1, f"{section}.{key}: {values}"
    return values[0]


def test_units_verify_with_systemd_analyze() -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("systemd-analyze missing (.ci/run installs the systemd package)")
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    paths = [str(ROOT / "examples/systemd" / u) for u in UNITS]
    proc = subprocess.run([tool, "verify", *paths], capture_output=True, timeout=60, cwd=ROOT / "examples/systemd")
    # warnings (unknown keys, bad values) would only be printed: demand silence, not just exit 0
    assert proc.returncode == 0 and proc.stderr.strip() == b"", proc.stderr.decode()


def test_units_are_what_we_mean() -> None:
    bot = parse_unit(ROOT / "examples/systemd/agkit-bot.service")
    assert one(bot, "Service", "Type") == "exec"
    assert one(bot, "Service", "Restart") == "on-failure"
    assert one(bot, "Service", "KillSignal") == "SIGTERM"
    assert set(one(bot, "Service", "RestartPreventExitStatus").split()) == {"2", "5"}
    assert one(bot, "Install", "WantedBy") == "multi-user.target"
    rollup = parse_unit(ROOT / "examples/systemd/agkit-rollup.service")
    assert one(rollup, "Service", "Type") == "oneshot"
    assert "--skip-if-locked" in one(rollup, "Service", "ExecStart")
    timer = parse_unit(ROOT / "examples/systemd/agkit-rollup.timer")
    assert one(timer, "Timer", "Unit") == "agkit-rollup.service"
    assert one(timer, "Timer", "OnCalendar") == "*:0/5" and one(timer, "Timer", "Persistent") == "true"
    assert one(timer, "Install", "WantedBy") == "timers.target"


def unit_exec(unit: Path, etc: Path, var: Path, tmp: Path) -> tuple[list[str], dict[str, str], Path]:
    """ExecStart, Environment and WorkingDirectory of a unit, with /etc/agkit and /var/lib/agkit
    mapped onto temp dirs (the commands themselves are unchanged)."""
    sections = parse_unit(unit)

    def mapped(s: str) -> str:
        return s.replace("/etc/agkit", str(etc)).replace("/var/lib/agkit", str(var))

    env = shell_env(tmp)
    for k, v in sections["Service"]:
        if k == "Environment":
            name, value = v.split("=", 1)
            env[name] = mapped(value)
    env["PATH"] = shell_env(tmp)["PATH"]  # the unit's PATH would find an installed agkit; use this tree's
    import shlex

    argv = shlex.split(mapped(one(sections, "Service", "ExecStart")))
    cwd = Path(mapped(dict(sections["Service"]).get("WorkingDirectory", str(tmp))))
    return argv, env, cwd


def test_bot_unit_execstart_runs_and_stops_on_sigterm(tmp_path: Path) -> None:
    etc, var = tmp_path / "etc-agkit", tmp_path / "var-lib-agkit"
    etc.mkdir()
    var.mkdir()
    shutil.copytree(ROOT / "policies", etc / "policies")
    shutil.copy(ROOT / "examples/systemd/bot.yaml", etc / "bot.yaml")
    argv, env, cwd = unit_exec(ROOT / "examples/systemd/agkit-bot.service", etc, var, tmp_path)
    assert argv[:3] == ["/usr/bin/env", "agkit", "run"]
    db = var / "agkit.db"
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        before = 0
        while time.monotonic() < deadline and proc.poll() is None:  # a real-time bot: wait until it stored trades
            time.sleep(0.5)
            if db.exists():
                try:
                    before = table_counts(db).get("order_events", 0)
                except sqlite3.OperationalError:
                    continue
                if before > 0:
                    break
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert before > 0, "the bot stored no order events"
        proc.send_signal(signal.SIGTERM)  # what `systemctl stop` does (KillSignal=SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        kill_group(proc)
    assert proc.returncode == 0, err.decode()  # a requested stop: no restart under Restart=on-failure
    assert out == b""  # the last stage is the store: records go to the database, not the journal
    after = table_counts(db)
    assert after["order_events"] >= before and after["books"] > 0


def test_rollup_unit_execstart_runs(tmp_path: Path) -> None:
    etc, var = tmp_path / "etc-agkit", tmp_path / "var-lib-agkit"
    etc.mkdir()
    var.mkdir()
    argv, env, cwd = unit_exec(ROOT / "examples/systemd/agkit-rollup.service", etc, var, tmp_path)
    seed_store(tmp_path, var / "agkit.db")
    proc = run_bounded(argv, 120, env=env, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    runs = [r for r in parse_ndjson(proc.stdout) if r.get("type") == "store_rollup"]
    assert len(runs) == 1 and int(runs[0]["bars_trade"]) > 0  # type: ignore[call-overload]
