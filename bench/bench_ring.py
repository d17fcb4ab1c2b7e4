"""Ring buffer benchmarks: every figure beside a baseline measured in the same run.

Run from the repo root: ``python bench/bench_ring.py`` (about 15 s).
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agkit.ring import RingBuffer
from bench.common import best_of, report

SMALL, LARGE = 1_000, 1_000_000


def filled(capacity: int, rng: np.random.Generator) -> RingBuffer:
    rb = RingBuffer(capacity)
    rb.push_many(np.arange(capacity, dtype=np.int64), 1e6 + rng.standard_normal(capacity))
    return rb


# Many short repeats, keep the best: the least disturbed by other work on the machine.
REPEAT = 15


def per_call_ns(fn: Callable[[], object], calls: int = 50_000) -> float:
    """Best time of one call, loop overhead included (the same for both sides)."""

    def loop() -> None:
        for _ in range(calls):
            fn()

    return best_of(loop, REPEAT) / calls * 1e9


def bench_push_many(rng: np.random.Generator) -> None:
    # Steady state: chunks smaller than the capacity into a full buffer, so every point is
    # written, evicts one, and goes through the statistics and min/max deques.
    chunk, chunks = 100_000, 20
    ts = np.arange(chunk * chunks, dtype=np.int64)
    vals = 1e6 + rng.standard_normal(chunk * chunks)
    rb = filled(LARGE, rng)

    def push_all() -> None:
        for i in range(chunks):
            rb.push_many(ts[i * chunk : (i + 1) * chunk], vals[i * chunk : (i + 1) * chunk])

    dst_ts = np.empty(chunk, np.int64)
    dst_vals = np.empty(chunk, np.float64)

    def copy_all() -> None:
        for i in range(chunks):
            np.copyto(dst_ts, ts[i * chunk : (i + 1) * chunk])
            np.copyto(dst_vals, vals[i * chunk : (i + 1) * chunk])

    n = chunk * chunks
    report(
        "ring push_many (100k chunks into a full 1M ring)",
        n / best_of(push_all, REPEAT),
        "points/s",
        "numpy copy of the same ts+values",
        n / best_of(copy_all, REPEAT),
        higher_is_better=True,
    )


def bench_push_one() -> None:
    n = 100_000
    rb = RingBuffer(SMALL)
    push = rb.push
    dq: deque[tuple[int, float]] = deque(maxlen=SMALL)
    append = dq.append

    def ring_loop() -> None:
        for i in range(n):
            push(i, 1.5)

    def deque_loop() -> None:
        for i in range(n):
            append((i, 1.5))

    report(
        "ring push (one point via cffi)",
        best_of(ring_loop, REPEAT) / n * 1e9,
        "ns/op",
        "collections.deque(maxlen).append",
        best_of(deque_loop, REPEAT) / n * 1e9,
        higher_is_better=False,
    )


def bench_queries(rng: np.random.Generator) -> None:
    # O(1) queries: the same call at capacity 1M and 1k should cost the same.
    small, large = filled(SMALL, rng), filled(LARGE, rng)
    for name in ("mean", "std", "min", "max"):
        report(
            f"ring {name}() query at capacity 1M",
            per_call_ns(getattr(large, name)),
            "ns/query",
            f"{name}() at capacity 1k",
            per_call_ns(getattr(small, name)),
            higher_is_better=False,
        )
    view = large.values()
    report(
        "ring mean+std+min+max at capacity 1M",
        per_call_ns(lambda: (large.mean(), large.std(), large.min(), large.max())),
        "ns/query",
        "numpy mean/std/min/max over the 1M view",
        per_call_ns(lambda: (view.mean(), view.std(ddof=1), view.min(), view.max()), calls=5),
        higher_is_better=False,
    )


def main() -> None:
    t0 = time.perf_counter()
    rng = np.random.default_rng(7)
    bench_push_many(rng)
    bench_push_one()
    bench_queries(rng)
    print(f"bench_ring: {time.perf_counter() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
