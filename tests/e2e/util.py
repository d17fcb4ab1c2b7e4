"""Helpers for the end-to-end tests: the `agkit` command on PATH (the working tree's code),
bounded subprocesses in their own process group, and peak-RSS sampling from /proc."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.helpers import ROOT, agkit_env


def agkit_bin(tmp: Path) -> Path:
    """A directory holding an `agkit` executable that runs this working tree."""
    bindir = tmp / "bin"
    bindir.mkdir(exist_ok=True)
    shim = bindir / "agkit"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m agkit "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return bindir


def shell_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = agkit_env(**extra)
    env["PATH"] = f"{agkit_bin(tmp)}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_bounded(argv: list[str], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    """Run argv in its own process group; on timeout kill the whole group (nothing can hang)."""
    proc = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"{argv} did not finish in {timeout}s; stderr: {err.decode(errors='replace')[-2000:]}") from None
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def kill_group(proc: subprocess.Popen[Any]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def vm_hwm_kb(pid: int) -> int | None:
    """Peak resident set size (VmHWM) of a live process, in kB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def table_counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        names = [r[0] for r in conn.execute("select name from sqlite_master where type='table' and name not like 'sqlite_%'")]
        return {n: conn.execute(f'select count(*) from "{n}"').fetchone()[0] for n in names}


__all__ = ["ROOT", "agkit_bin", "kill_group", "run_bounded", "shell_env", "table_counts", "vm_hwm_kb"]
