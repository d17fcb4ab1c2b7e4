"""Persistence for everything the pipe carries: SQLite by default, PostgreSQL (and
TimescaleDB when installed) for larger deployments. Same tables, same commands.

    from agkit.store import open_store
    with open_store("sqlite:///tmp/day.db") as store:
        store.migrate()
        for line in store.export(Filters(types=["trade"])): ...

`agkit store ...` is a thin layer over this package (see docs/store.md).
"""

from __future__ import annotations

import os

from agkit.store.base import Batch, Filters, Store, TableStats

__all__ = ["Batch", "Filters", "Store", "TableStats", "default_db", "open_store", "resolve_db"]


def default_db() -> str:
    """AGKIT_DB, else an SQLite file under the XDG data directory."""
    from agkit.config import data_dir

    return os.environ.get("AGKIT_DB") or str(data_dir() / "agkit.db")


def resolve_db(db: str | None) -> str:
    return db or default_db()


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://"))


def sqlite_path(url: str) -> str:
    """`sqlite:///abs`, `sqlite://rel`, `sqlite:rel` or a plain path -> a file path."""
    if url.startswith("sqlite:///"):
        return "/" + url[len("sqlite:///") :].lstrip("/")
    for prefix in ("sqlite://", "sqlite:"):
        if url.startswith(prefix):
            return url[len(prefix) :]
    return url


def open_store(db: str | None = None, *, migrate: bool = True, create: bool = True) -> Store:
    """Open (and by default migrate) the store at a URL or path."""
    url = resolve_db(db)
    store: Store
    if is_postgres(url):
        from agkit.store.postgres import PostgresStore

        store = PostgresStore(url.replace("postgresql+psycopg://", "postgresql://"))
    else:
        from agkit.store.sqlite import SqliteStore

        store = SqliteStore(sqlite_path(url), create=create)
    if migrate:
        try:
            store.migrate()
        except BaseException:
            store.close()
            raise
    return store
