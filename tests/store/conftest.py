from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import fresh_store


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store on each backend."""
    with fresh_store(request, request.param, tmp_path / "store.db") as url:
        yield url


@pytest.fixture
def db2(request: pytest.FixtureRequest, db: str, tmp_path: Path) -> Iterator[str]:
    """A second empty store on the same backend as `db`."""
    backend = "sqlite" if db.startswith("sqlite") else "postgres"
    with fresh_store(request, backend, tmp_path / "store2.db") as url:
        yield url


@pytest.fixture
def pg_pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two empty stores on the real PostgreSQL (for PostgreSQL-only behaviour)."""
    with fresh_store(request, "postgres", tmp_path / "a.db") as a, fresh_store(
        request, "postgres", tmp_path / "b.db"
    ) as b:
        yield a, b
