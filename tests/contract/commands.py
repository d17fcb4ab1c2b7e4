"""The commands the shared contract suite runs, and how to invoke each.

Every stage command is listed here: add yours when you add a command. A `filter`
reads records on stdin; a `source` produces them itself (bounded by `argv`).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Spec:
    argv: tuple[str, ...]
    kind: str = "filter"  # "filter" | "source" | "sink"
    # files a test needs (path relative to the repo root) — documentation only
    needs: tuple[str, ...] = field(default=())


STAGES: dict[str, Spec] = {
    "pass": Spec(("pass",)),
    "feed sim": Spec(("feed", "sim", "--max-records", "1000"), kind="source"),
    "feed replay": Spec(("feed", "replay", "tests/feed/data/sim-200.ndjson", "--max"), kind="source", needs=("tests/feed/data/sim-200.ndjson",)),
    "strategy mm": Spec(("strategy", "mm")),
    "exec": Spec(("exec",)),
    "risk-check": Spec(("risk-check", "-p", "policies/default.yaml"), needs=("policies/default.yaml",)),
    "store ingest": Spec(("store", "ingest", "--db", "/tmp/agkit-contract-store.db"), kind="sink"),
    "store ingest --tee": Spec(("store", "ingest", "--tee", "--db", "/tmp/agkit-contract-store.db")),
    "monitor": Spec(("monitor",), kind="sink"), "monitor --tee": Spec(("monitor", "--tee")),
}

# Every command of the CLI (for --help and man page checks), including non-stages.
COMMANDS: list[tuple[str, ...]] = [
    ("schema",),
    ("validate",),
    ("pass",),
    ("feed",),
    ("feed", "sim"),
    ("feed", "replay"),
    ("feed", "polymarket"),
    ("feed", "rtds"),
    ("markets",),
    ("strategy",),
    ("backtest",),
    ("exec",),
    ("risk-check",),
    ("risk",),
    ("risk", "var"),
    ("risk", "stress"),
    ("risk", "greeks"),
    ("risk", "portfolio"),
    ("risk", "perf"),
    ("store",), ("store", "ingest"), ("store", "query"), ("store", "export"), ("store", "rollup"), ("store", "retention"), ("store", "migrate"), ("store", "stats"),
    ("auth",), ("auth", "derive"), ("orders",), ("cancel",), ("balance",),
    ("monitor",),
]
