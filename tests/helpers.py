"""Running agkit as a real subprocess from the tests (the working tree's code)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest

ROOT = Path(__file__).resolve().parent.parent


def agkit_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "agkit", *args]


def agkit_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("AGKIT_ON_ERROR", None)
    env.setdefault("AGKIT_CONFIG", "/nonexistent/agkit-config.yaml")  # no user config in tests
    env.update(extra)
    return env


def run_agkit(*args: str, input: bytes = b"", timeout: float = 60, **env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        agkit_argv(*args), input=input, capture_output=True, timeout=timeout, env=agkit_env(**env), cwd=ROOT
    )


def sim_file(path: Path, seed: int, records: int, markets: int = 2) -> Path:
    """`agkit feed sim` data written to `path` (the data of the backtest tests)."""
    proc = run_agkit("feed", "sim", "--seed", str(seed), "--markets", str(markets), "--max-records", str(records))
    assert proc.returncode == 0, proc.stderr
    path.write_bytes(proc.stdout)
    return path


def popen_agkit(*args: str, **kwargs: Any) -> subprocess.Popen[bytes]:
    kwargs.setdefault("env", agkit_env())
    kwargs.setdefault("cwd", ROOT)
    return subprocess.Popen(agkit_argv(*args), **kwargs)


def ndjson(records: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def parse_ndjson(data: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in data.splitlines() if line.strip()]


def pg_schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote('-csearch_path=' + schema)}"


@contextlib.contextmanager
def fresh_store(request: pytest.FixtureRequest, backend: str, sqlite_path: Path) -> Iterator[str]:
    """An empty store URL: an SQLite file, or a unique schema on the real PostgreSQL
    (dropped afterwards; `pg_url` is the session fixture that finds the server)."""
    if backend == "sqlite":
        yield f"sqlite:///{sqlite_path}"
        return
    import psycopg

    base = request.getfixturevalue("pg_url")
    schema = f"agkit_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield pg_schema_url(base, schema)
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
