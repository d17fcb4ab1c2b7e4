"""Shared helpers for the benchmark scripts.

Every figure is reported beside a baseline measured in the same invocation, as one
JSON line on stdout: {"figure", "value", "unit", "baseline", "baseline_value", "ratio",
"higher_is_better"}. `bench/run.py` runs every `bench_*.py` and prints one table.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson


def report(
    figure: str,
    value: float,
    unit: str,
    baseline: str | None = None,
    baseline_value: float | None = None,
    higher_is_better: bool = True,
    **extra: Any,
) -> None:
    """Print one benchmark row; ratio = value / baseline_value."""
    ratio = None
    if baseline_value:
        ratio = value / baseline_value
    row = {
        "figure": figure,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "baseline_value": baseline_value,
        "ratio": ratio,
        "higher_is_better": higher_is_better,
        **extra,
    }
    sys.stdout.buffer.write(orjson.dumps(row) + b"\n")
    sys.stdout.flush()


def best_of(fn: Callable[[], object], repeat: int = 5) -> float:
    """Smallest wall time of `repeat` calls, in seconds (least disturbed by the machine)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def percentiles(samples: list[float], *qs: float) -> list[float]:
    """Quantiles (0..100) of samples, interpolated."""
    cuts = statistics.quantiles(samples, n=1000, method="inclusive")
    return [cuts[min(998, max(0, round(q * 10) - 1))] for q in qs]
