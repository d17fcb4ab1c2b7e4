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
    "exec": Spec(("exec",)),
}

# Every command of the CLI (for --help and man page checks), including non-stages.
COMMANDS: list[tuple[str, ...]] = [
    ("schema",),
    ("validate",),
    ("pass",),
    ("exec",),
]
