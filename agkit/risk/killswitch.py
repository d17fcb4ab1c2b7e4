"""The kill switch: a latch engaged by policy, a loss stop, a kill file or SIGUSR1.

Engaging emits `kill_switch` (engaged=true) and `cancel_all`; from then on the
risk-check stage denies every order that does not reduce exposure. Disengaging is
explicit: SIGUSR2 (or `KillSwitchState.disengage()` from the library). It is refused
while the kill file still exists, so removing the file is a precondition, not a
trigger: an operator removes the file *and* sends SIGUSR2.
"""

from __future__ import annotations

import os
from typing import Any


class KillSwitchState:
    """Engaged flag, why, and since when; builds the records a change emits."""

    __slots__ = ("engaged", "kill_file", "reason", "since", "source")

    def __init__(self, kill_file: str | None = None) -> None:
        self.engaged = False
        self.reason = ""
        self.source = ""
        self.since = 0
        self.kill_file = kill_file

    def engage(self, source: str, reason: str, now: int) -> list[dict[str, Any]]:
        """Engage (no-op when already engaged); returns kill_switch + cancel_all records."""
        if self.engaged:
            return []
        self.engaged = True
        self.source = source
        self.reason = reason
        self.since = now
        return [
            {
                "type": "kill_switch",
                "ts_event": now,
                "ts_init": now,
                "engaged": True,
                "reason": reason,
                "source": source,
            },
            {
                "type": "cancel_all",
                "ts_event": now,
                "ts_init": now,
                "market": None,
                "asset": None,
                "strategy": None,
                "reason": f"kill switch: {reason}",
            },
        ]

    def disengage(self, source: str, now: int) -> tuple[list[dict[str, Any]], str | None]:
        """Disengage; returns (records, None) or ([], why it was refused)."""
        if not self.engaged:
            return [], "the kill switch is not engaged"
        if self.kill_file and os.path.exists(self.kill_file):
            return [], f"the kill file {self.kill_file} still exists; remove it first"
        self.engaged = False
        was = self.reason
        self.reason = ""
        self.source = ""
        return [
            {
                "type": "kill_switch",
                "ts_event": now,
                "ts_init": now,
                "engaged": False,
                "reason": f"disengaged by {source} (was: {was})",
                "source": source,
            }
        ], None

    def kill_file_present(self) -> bool:
        return bool(self.kill_file) and os.path.exists(self.kill_file)  # type: ignore[arg-type]
