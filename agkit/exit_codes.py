"""The one exit-status enum of every agkit command (documented in each man page)."""

from __future__ import annotations

import enum


@enum.unique
class ExitCode(enum.IntEnum):
    OK = 0  # success; risk denials and venue rejections are records, not failures
    ERROR = 1  # a runtime error (bug, I/O failure, unexpected state)
    USAGE = 2  # bad flags or arguments (click's own convention)
    BAD_INPUT = (
        3  # a malformed or invalid input record under --on-error=fail, or `validate` found errors
    )
    VENUE = 4  # the venue or a network peer failed (connection, auth, persistent 5xx)
    CONFIG = 5  # configuration, policy or credentials are missing or invalid
    INTERRUPTED = 130  # SIGINT (128 + 2); SIGTERM is a requested stop and exits 0

    @property
    def meaning(self) -> str:
        return _MEANINGS[self]


_MEANINGS = {
    ExitCode.OK: "success (including risk denials and venue rejections, which are records)",
    ExitCode.ERROR: "runtime error",
    ExitCode.USAGE: "usage error: bad flags or arguments",
    ExitCode.BAD_INPUT: "malformed or invalid input record (with --on-error=fail), or an invalid stream for validate",
    ExitCode.VENUE: "venue or network failure",
    ExitCode.CONFIG: "invalid configuration, policy file or credentials",
    ExitCode.INTERRUPTED: "interrupted by SIGINT, after flushing what was processed",
}
