"""The same run two ways: a lockstep pipe with exec's feedback FIFO, and `agkit backtest`."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.helpers import ROOT, agkit_argv, agkit_env, run_agkit


def pipe_and_backtest(data: Path, policy: str | Path, knobs: list[str], tmp: Path) -> tuple[bytes, bytes]:
    """(the pipe's output, the backtest's --output) for mm on `data` with `policy` and
    the exec/backtest `knobs`: feed replay | strategy mm --lockstep --merge FIFO |
    risk-check --clock event | exec --feedback FIFO, beside agkit backtest."""
    fifo = tmp / "fb"
    py = " ".join(agkit_argv())
    script = (
        f"{py} feed replay {data} --max"
        f" | {py} strategy mm --lockstep --merge {fifo}"
        f" | {py} risk-check -p {policy} --clock event"
        f" | {py} exec --feedback {fifo} {' '.join(knobs)}"
    )
    pipe = subprocess.run(["bash", "-o", "pipefail", "-c", script], capture_output=True,
                          env=agkit_env(), cwd=ROOT, timeout=600)
    assert pipe.returncode == 0, pipe.stderr
    bt_out = tmp / "bt.ndjson"
    bt = run_agkit("backtest", "--data", str(data), "-s", "mm", "-p", str(policy), *knobs, "-o", str(bt_out))
    assert bt.returncode == 0, bt.stderr
    return pipe.stdout, bt_out.read_bytes()
