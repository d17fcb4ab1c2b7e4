from __future__ import annotations

import os

import pytest


def postgres_url() -> str:
    return os.environ.get("AGKIT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The real PostgreSQL; skipped with a clear message where none runs, never in CI."""
    url = postgres_url()
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("select 1")
    except Exception as exc:  # no server here
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but PostgreSQL at {url} is unreachable: {exc}")
        pytest.skip(f"no PostgreSQL at {url} ({exc}); these tests run in CI")
    return url
