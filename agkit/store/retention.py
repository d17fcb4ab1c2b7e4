"""Per-table retention: a dry run by default, deletion with apply=True.

Defaults (schema.RETENTION_DAYS): raw market data (books, trades, generic records,
metrics) 90 days, execution data (order events, fills, positions) 365 days, rollups
kept. PostgreSQL drops whole partitions that lie before the cutoff and deletes the rest
row-wise; SQLite deletes in bounded batches so writers are never blocked for long.
"""

from __future__ import annotations

from typing import Any

from agkit.errors import UsageError
from agkit.store.base import Store
from agkit.store.schema import RETENTION_DAYS, TABLES
from agkit.store.timeparse import parse_duration_us

DAY_US = 86_400_000_000
FOREVER = ("forever", "keep", "none", "0")


def parse_keep(items: list[str]) -> dict[str, int | None]:
    """`TABLE=AGE` overrides on top of the defaults -> {table: days or None (kept)}."""
    policy: dict[str, int | None] = dict(RETENTION_DAYS)
    for item in items:
        table, sep, age = item.partition("=")
        table = table.strip()
        if not sep or table not in TABLES:
            raise UsageError(f"--keep wants TABLE=AGE with TABLE one of {', '.join(TABLES)}; got {item!r}")
        if age.strip().lower() in FOREVER:
            policy[table] = None
            continue
        us = parse_duration_us(age)
        policy[table] = max(1, -(-us // DAY_US)) if us % DAY_US else us // DAY_US
        if policy[table] == 0:
            raise UsageError(f"--keep {item}: keep at least one day (or 'forever')")
    return policy


def run_retention(
    store: Store, policy: dict[str, int | None], now_us: int, *, apply: bool, progress: Any
) -> list[dict[str, Any]]:
    """One report row per table: what would go (dry run) or what went (apply)."""
    rows: list[dict[str, Any]] = []
    plan = {name: (cutoff, n) for name, cutoff, n in store.retention_plan(policy, now_us)}
    for name in TABLES:
        days = policy.get(name)
        if days is None:
            rows.append({"table": name, "keep_days": None, "cutoff": None, "rows": 0, "deleted": 0})
            continue
        cutoff, n = plan[name]
        deleted = 0
        if apply and n:
            progress(f"{name}: deleting {n} rows older than {days} days")
            deleted = store.delete_before(name, cutoff, progress)
        rows.append(
            {"table": name, "keep_days": days, "cutoff": cutoff, "rows": n, "deleted": deleted if apply else 0}
        )
    return rows
