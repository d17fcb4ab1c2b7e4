"""Check a stream against the record schema (`agkit validate`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from agkit.records import RECORD_TYPES, parse
from agkit.stream import decode_line


@dataclass
class ValidationReport:
    lines: int = 0
    valid: int = 0
    invalid: int = 0
    unknown: int = 0  # well-formed records of a type outside the vocabulary
    per_type: Counter[str] = field(default_factory=Counter)
    errors: list[tuple[int, str]] = field(default_factory=list)  # the first few

    def ok(self, strict: bool = False) -> bool:
        return self.invalid == 0 and (not strict or self.unknown == 0)


def validate_lines(
    lines: Iterable[bytes], max_errors: int = 20, strict: bool = False
) -> ValidationReport:
    """Validate NDJSON lines; records of unknown types are counted (errors when strict)."""
    report = ValidationReport()
    for lineno, raw in enumerate(lines, 1):
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        report.lines += 1
        rec, reason = decode_line(line)
        if rec is not None:
            rtype = rec["type"]
            report.per_type[rtype] += 1
            if rtype not in RECORD_TYPES:
                report.unknown += 1
                if not strict:
                    continue
                reason = f"unknown record type {rtype!r}"
            else:
                try:
                    parse(rec)
                    report.valid += 1
                    continue
                except ValueError as exc:
                    reason = f"{rtype}: {exc}"
        report.invalid += 1
        if len(report.errors) < max_errors:
            report.errors.append((lineno, reason or "invalid"))
    return report
