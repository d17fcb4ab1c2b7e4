"""Times on the command line: µs integers, ISO 8601 dates/times (UTC unless an offset
is given), or an age such as `90d`, `12h`, `30m`, `45s` (that long before now)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from agkit.errors import UsageError

_AGE = re.compile(r"^(\d+(?:\.\d+)?)(w|d|h|m|s)$")
_UNIT_US = {"w": 604_800e6, "d": 86_400e6, "h": 3_600e6, "m": 60e6, "s": 1e6}


def parse_duration_us(text: str) -> int:
    m = _AGE.match(text.strip())
    if not m:
        raise UsageError(f"bad duration {text!r} (examples: 90d, 12h, 30m)")
    return int(float(m.group(1)) * _UNIT_US[m.group(2)])


def parse_time_us(text: str, now_us: int) -> int:
    text = text.strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if _AGE.match(text):
        return now_us - parse_duration_us(text)
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"bad time {text!r}: use µs since the epoch, an ISO date such as 2026-05-01T12:00, or an age such as 7d"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1_000_000)
