from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest


def _pg_schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote('-csearch_path=' + schema)}"


@contextlib.contextmanager
def _fresh_store(request: pytest.FixtureRequest, backend: str, sqlite_path: Path) -> Iterator[str]:
    """An empty store URL: an SQLite file, or a unique schema on the real PostgreSQL."""
    if backend == "sqlite":
        yield f"sqlite:///{sqlite_path}"
        return
    import psycopg

    base = request.getfixturevalue("pg_url")
    schema = f"agkit_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield _pg_schema_url(base, schema)
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store on each backend."""
    with _fresh_store(request, request.param, tmp_path / "store.db") as url:
        yield url


@pytest.fixture
def db2(request: pytest.FixtureRequest, db: str, tmp_path: Path) -> Iterator[str]:
    """A second empty store on the same backend as `db`."""
    backend = "sqlite" if db.startswith("sqlite") else "postgres"
    with _fresh_store(request, backend, tmp_path / "store2.db") as url:
        yield url


@pytest.fixture
def pg_pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two empty stores on the real PostgreSQL (for PostgreSQL-only behaviour)."""
    with _fresh_store(request, "postgres", tmp_path / "a.db") as a, _fresh_store(
        request, "postgres", tmp_path / "b.db"
    ) as b:
        yield a, b
