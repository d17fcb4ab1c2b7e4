"""Tests of agkit.ring (the cffi ring buffer) against pure-Python models."""

from __future__ import annotations

import gc
import itertools
import math
import os
import shutil
import subprocess
import sysconfig
from collections import deque
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from agkit.errors import AgkitError
from agkit.ring import (
    MAX_ABS_VALUE,
    MAX_CAPACITY,
    InsufficientDataError,
    InvalidValueError,
    RingBuffer,
    RingError,
    RingIndexError,
    ensure,
)

NATIVE = Path(__file__).resolve().parent.parent / "native"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def window(rb: RingBuffer) -> list[tuple[int, float]]:
    ts, vals = rb.arrays()
    return list(zip(ts.tolist(), vals.tolist(), strict=True))


def exact_mean(vals: Sequence[float]) -> float:
    return float(sum(map(Fraction, vals)) / len(vals))


def exact_var(vals: Sequence[float], ddof: int = 1) -> float:
    xs = [Fraction(v) for v in vals]
    m = sum(xs) / len(xs)
    return float(sum((x - m) ** 2 for x in xs) / (len(xs) - ddof))


def rel_err(got: float, want: float) -> float:
    return abs(got - want) / abs(want) if want else abs(got)


# ---------------------------------------------------------------------------- construction


def test_capacity_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="capacity must be at least 1"):
        RingBuffer(0)


@pytest.mark.parametrize("bad", [-1, MAX_CAPACITY + 1])
def test_capacity_out_of_range(bad: int) -> None:
    with pytest.raises(ValueError, match="capacity must be at"):
        RingBuffer(bad)


@pytest.mark.parametrize("bad", [2.0, "8", None])
def test_capacity_must_be_an_integer(bad: object) -> None:
    with pytest.raises(TypeError, match="capacity must be an integer"):
        RingBuffer(bad)  # type: ignore[arg-type]


def test_new_buffer_is_empty() -> None:
    rb = RingBuffer(5)
    assert rb.capacity == 5
    assert len(rb) == 0 and not rb
    assert rb.total_pushed == 0
    assert rb.ordered
    assert repr(rb) == "RingBuffer(capacity=5, size=0)"


def test_errors_share_a_base() -> None:
    assert issubclass(RingError, AgkitError)
    assert issubclass(InsufficientDataError, ValueError)
    assert issubclass(InvalidValueError, ValueError)
    assert issubclass(RingIndexError, IndexError)
    ensure(0, "fine")
    with pytest.raises(RingError, match="unexpected status -99"):
        ensure(-99, "ctx")


# ---------------------------------------------------------------------------- push, wraparound


def test_push_and_wraparound() -> None:
    rb = RingBuffer(3)
    for i in range(5):
        rb.push(i * 10, float(i))
    assert window(rb) == [(20, 2.0), (30, 3.0), (40, 4.0)]
    assert len(rb) == 3 and rb.total_pushed == 5
    assert rb[0] == (20, 2.0) and rb[-1] == (40, 4.0) and rb[1] == (30, 3.0)
    assert list(rb) == [(20, 2.0), (30, 3.0), (40, 4.0)]


def test_repeated_wraps_keep_the_newest() -> None:
    rb = RingBuffer(7)
    for i in range(1000):
        rb.push(i, float(i))
    assert rb.timestamps().tolist() == list(range(993, 1000))
    assert rb.values().tolist() == [float(i) for i in range(993, 1000)]


def test_capacity_one() -> None:
    rb = RingBuffer(1)
    for i in range(5):
        rb.push(-i, float(i) * 1.5)
        assert window(rb) == [(-i, i * 1.5)]
        assert rb.min() == rb.max() == rb.mean() == i * 1.5
        assert rb.variance(ddof=0) == 0.0
        assert rb.ordered
    with pytest.raises(InsufficientDataError, match="needs at least 2 points"):
        rb.variance()
    rb.push_many([1, 2, 3], [1.0, 2.0, 3.0])
    assert window(rb) == [(3, 3.0)]
    assert rb.total_pushed == 8


def test_negative_and_extreme_timestamps() -> None:
    rb = RingBuffer(4)
    pts = [(INT64_MIN, 1.0), (-5, 2.0), (0, 3.0), (INT64_MAX, 4.0)]
    for ts, v in pts:
        rb.push(ts, v)
    assert window(rb) == pts
    assert rb.ordered
    ts, vals = rb.range(INT64_MIN, -1)
    assert ts.tolist() == [INT64_MIN, -5] and vals.tolist() == [1.0, 2.0]
    assert rb.range(INT64_MAX, INT64_MAX)[0].tolist() == [INT64_MAX]
    # Bounds beyond int64 are clamped, not rejected.
    assert len(rb.range(-(2**100), 2**100)[0]) == 4


def test_timestamp_outside_int64_is_refused() -> None:
    rb = RingBuffer(2)
    with pytest.raises(OverflowError):
        rb.push(2**63, 1.0)
    with pytest.raises(TypeError):
        rb.push(1.5, 1.0)  # type: ignore[arg-type]
    assert len(rb) == 0


def test_numpy_scalars_are_accepted() -> None:
    rb = RingBuffer(2)
    rb.push(np.int64(7), np.float32(0.5))  # type: ignore[arg-type]
    rb.push(8, 3)  # an int value is a float value
    assert window(rb) == [(7, 0.5), (8, 3.0)]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 1.0000001e100, -2e100])
def test_invalid_values_leave_the_buffer_unchanged(bad: float) -> None:
    rb = RingBuffer(3)
    rb.push(1, 1.0)
    with pytest.raises(InvalidValueError, match="finite"):
        rb.push(2, bad)
    with pytest.raises(InvalidValueError, match="at index 1"):
        rb.push_many([2, 3, 4], [2.0, bad, 4.0])
    assert window(rb) == [(1, 1.0)] and rb.total_pushed == 1
    assert rb.mean() == 1.0


def test_largest_values_are_accepted() -> None:
    rb = RingBuffer(3)
    rb.push_many([1, 2, 3], [MAX_ABS_VALUE, -MAX_ABS_VALUE, MAX_ABS_VALUE])
    assert rb.max() == MAX_ABS_VALUE and rb.min() == -MAX_ABS_VALUE
    assert math.isclose(rb.mean(), MAX_ABS_VALUE / 3, rel_tol=1e-15)
    assert math.isclose(rb.variance(), exact_var([MAX_ABS_VALUE, -MAX_ABS_VALUE, MAX_ABS_VALUE]))


def test_clear() -> None:
    rb = RingBuffer(3)
    rb.push_many([5, 4, 3, 2], [1.0, 2.0, 3.0, 4.0])
    assert not rb.ordered
    rb.clear()
    assert len(rb) == 0 and rb.total_pushed == 0 and rb.ordered and rb.capacity == 3
    assert rb.sum() == 0.0
    with pytest.raises(InsufficientDataError):
        rb.mean()
    rb.push(1, 1e6)
    rb.push(2, 1e6 + 1)
    assert rb.mean() == 1e6 + 0.5 and rb.variance() == 0.5


# ---------------------------------------------------------------------------- empty buffer


def test_empty_buffer_reads_and_stats() -> None:
    rb = RingBuffer(4)
    for arr in (*rb.arrays(), rb.timestamps(), rb.values(), *rb.last(3), *rb.range(0, 9)):
        assert arr.shape == (0,)
    assert rb.timestamps().dtype == np.int64 and rb.values().dtype == np.float64
    assert list(rb) == [] and rb.count() == 0 and rb.sum() == 0.0
    for name in ("mean", "min", "max"):
        with pytest.raises(InsufficientDataError, match=rf"{name}\(\): the buffer is empty"):
            getattr(rb, name)()
    for ddof in (0, 1):
        with pytest.raises(InsufficientDataError, match="holds 0"):
            rb.variance(ddof)
        with pytest.raises(InsufficientDataError):
            rb.std(ddof)
    with pytest.raises(RingIndexError, match="index 0 for 0 points"):
        rb[0]
    with pytest.raises(IndexError):
        rb[-1]


def test_index_errors() -> None:
    rb = RingBuffer(3)
    rb.push_many([1, 2], [1.0, 2.0])
    assert rb[-2] == (1, 1.0)
    for bad in (2, -3, 2**70, -(2**70)):
        with pytest.raises(IndexError):
            rb[bad]
    with pytest.raises(TypeError):
        rb[0:1]  # type: ignore[index]


# ---------------------------------------------------------------------------- push_many


def test_push_many_longer_than_capacity_keeps_the_last() -> None:
    rb = RingBuffer(5)
    rb.push(-1, -1.0)
    ts = np.arange(100, dtype=np.int64)
    vals = np.arange(100, dtype=np.float64) ** 2
    rb.push_many(ts, vals)
    assert rb.timestamps().tolist() == list(range(95, 100))
    assert rb.values().tolist() == [float(i * i) for i in range(95, 100)]
    assert rb.total_pushed == 101
    assert rb.min() == 95.0**2 and rb.max() == 99.0**2
    assert math.isclose(rb.mean(), exact_mean(vals[-5:].tolist()), rel_tol=1e-15)


def test_push_many_exactly_capacity_and_partial_wrap() -> None:
    rb = RingBuffer(4)
    rb.push_many([1, 2, 3], [1.0, 2.0, 3.0])
    rb.push_many([4, 5, 6], [4.0, 5.0, 6.0])
    assert window(rb) == [(3, 3.0), (4, 4.0), (5, 5.0), (6, 6.0)]
    rb.push_many([7, 8, 9, 10], [7.0, 8.0, 9.0, 10.0])
    assert window(rb) == [(7, 7.0), (8, 8.0), (9, 9.0), (10, 10.0)]


def test_push_many_accepts_array_likes() -> None:
    rb = RingBuffer(8)
    rb.push_many([1, 2], [1, 2])  # lists, int values
    rb.push_many((3,), np.array([3.5], dtype=np.float32))
    rb.push_many(np.array([4, 5], dtype=np.int32), np.array([4.0, 5.0]))
    strided_ts = np.arange(12, dtype=np.int64)[::2][3:]  # non-contiguous views
    strided_vals = np.arange(12, dtype=np.float64)[::2][3:]
    rb.push_many(strided_ts, strided_vals)
    assert window(rb) == [
        (1, 1.0),
        (2, 2.0),
        (3, 3.5),
        (4, 4.0),
        (5, 5.0),
        (6, 6.0),
        (8, 8.0),
        (10, 10.0),
    ]


def test_push_many_of_its_own_views() -> None:
    rb = RingBuffer(4)
    for i in range(6):
        rb.push(i, float(i))
    rb.push_many(*rb.arrays())  # reads the storage it overwrites: must see a snapshot
    assert window(rb) == [(2, 2.0), (3, 3.0), (4, 4.0), (5, 5.0)]
    rb.push_many(rb.timestamps()[2:], rb.values()[2:])
    assert window(rb) == [(4, 4.0), (5, 5.0), (4, 4.0), (5, 5.0)]
    other = RingBuffer(3)
    other.push_many(*rb.arrays())  # read-only views of another ring are fine inputs
    assert window(other) == window(rb)[1:]


def test_push_many_uint64_timestamps() -> None:
    rb = RingBuffer(3)
    rb.push_many(np.array([1, 2], dtype=np.uint64), [1.0, 2.0])
    assert rb.timestamps().tolist() == [1, 2]
    with pytest.raises(ValueError, match="does not fit in int64"):
        rb.push_many(np.array([2**63], dtype=np.uint64), [1.0])


def test_push_many_empty_is_a_no_op() -> None:
    rb = RingBuffer(3)
    rb.push_many([], [])
    rb.push_many(np.array([], dtype=np.int64), np.array([]))
    assert len(rb) == 0 and rb.total_pushed == 0


def test_push_many_argument_errors() -> None:
    rb = RingBuffer(3)
    with pytest.raises(ValueError, match="differ in length: 2 != 1"):
        rb.push_many([1, 2], [1.0])
    with pytest.raises(ValueError, match="one-dimensional"):
        rb.push_many([[1, 2]], [[1.0, 2.0]])
    with pytest.raises(ValueError, match="one-dimensional"):
        rb.push_many(1, 1.0)
    with pytest.raises(TypeError, match="ts: cannot convert dtype float64"):
        rb.push_many([1.5, 2.0], [1.0, 2.0])
    with pytest.raises(TypeError, match="values: cannot convert"):
        rb.push_many([1], ["x"])
    assert len(rb) == 0


def test_push_many_matches_single_pushes() -> None:
    rng = np.random.default_rng(3)
    a, b = RingBuffer(50), RingBuffer(50)
    for _ in range(200):
        n = int(rng.integers(0, 120))
        ts = rng.integers(-1000, 1000, n)
        vals = rng.normal(5.0, 3.0, n).round(int(rng.integers(0, 4)))
        a.push_many(ts, vals)
        for t, v in zip(ts.tolist(), vals.tolist(), strict=True):
            b.push(t, v)
        assert window(a) == window(b)
        assert a.total_pushed == b.total_pushed and a.ordered == b.ordered
        if len(a) > 1:
            assert a.min() == b.min() and a.max() == b.max()
            assert math.isclose(a.mean(), b.mean(), rel_tol=1e-14, abs_tol=1e-14)
            assert math.isclose(a.variance(), b.variance(), rel_tol=1e-12, abs_tol=1e-14)


# ---------------------------------------------------------------------------- views


def test_views_are_read_only() -> None:
    rb = RingBuffer(4)
    rb.push_many([1, 2, 3], [1.0, 2.0, 3.0])
    for view in (rb.timestamps(), rb.values()):
        assert not view.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            view[0] = 0
        with pytest.raises(ValueError):
            view.flags.writeable = True
    assert window(rb) == [(1, 1.0), (2, 2.0), (3, 3.0)]


def test_views_are_zero_copy_and_contiguous() -> None:
    rb = RingBuffer(5)
    for i in range(13):  # wrapped: the window straddles the end of the primary copy
        rb.push(i, float(i))
    ts, vals = rb.arrays()
    assert ts.flags.c_contiguous and vals.flags.c_contiguous
    assert np.shares_memory(vals, rb.values())
    assert ts.tolist() == [8, 9, 10, 11, 12]


def test_views_reflect_writes_and_outlive_the_buffer() -> None:
    rb = RingBuffer(3)
    rb.push_many([1, 2, 3], [1.0, 2.0, 3.0])
    old = rb.values()
    rb.push(4, 4.0)  # documented: old views are stale now, fresh ones are right
    assert rb.values().tolist() == [2.0, 3.0, 4.0]
    kept = rb.values()
    del rb
    gc.collect()
    assert kept.tolist() == [2.0, 3.0, 4.0]  # the view keeps the storage alive
    assert old.shape == (3,)


# ---------------------------------------------------------------------------- last, range


def test_last_is_newest_first() -> None:
    rb = RingBuffer(4)
    rb.push_many(range(6), [float(i) for i in range(6)])
    ts, vals = rb.last(3)
    assert ts.tolist() == [5, 4, 3] and vals.tolist() == [5.0, 4.0, 3.0]
    assert rb.last(10)[0].tolist() == [5, 4, 3, 2]
    assert rb.last(0)[0].shape == (0,)
    ts[0] = 99  # a copy, writable, detached
    assert rb[-1] == (5, 5.0)
    with pytest.raises(ValueError, match="n must be >= 0"):
        rb.last(-1)


@pytest.mark.parametrize("ordered", [True, False])
def test_range(ordered: bool) -> None:
    rb = RingBuffer(6)
    ts = [10, 20, 20, 30, 40, 50] if ordered else [10, 30, 20, 20, 50, 40]
    rb.push(0, -1.0)  # evicted below: the range must not see it
    rb.push_many(ts, [float(i) for i in range(6)])
    assert rb.ordered is ordered

    def expect(lo: int, hi: int, limit: int | None = None) -> list[tuple[int, float]]:
        hits = [(t, float(i)) for i, t in enumerate(ts) if lo <= t <= hi]
        return hits if limit is None else hits[:limit]

    for lo, hi, limit in [
        (20, 40, None),
        (0, 100, None),
        (20, 20, None),
        (21, 29, None),
        (-5, 5, None),
        (51, 99, None),
        (0, 100, 2),
        (20, 50, 0),
        (40, 10, None),  # start > end
    ]:
        got_ts, got_vals = rb.range(lo, hi, limit)
        got = list(zip(got_ts.tolist(), got_vals.tolist(), strict=True))
        assert got == expect(lo, hi, limit), (lo, hi, limit)
    with pytest.raises(ValueError, match="max_points"):
        rb.range(0, 1, -1)


def test_ordered_flag_recovers_when_the_inversion_is_evicted() -> None:
    rb = RingBuffer(3)
    rb.push_many([1, 2, 3], [0.0, 0.0, 0.0])
    assert rb.ordered
    rb.push(2, 0.0)  # 3 > 2
    assert not rb.ordered
    rb.push(5, 0.0)
    assert rb.timestamps().tolist() == [3, 2, 5] and not rb.ordered
    rb.push(6, 0.0)  # the 3 leaves, and the inversion (3, 2) with it
    assert rb.timestamps().tolist() == [2, 5, 6] and rb.ordered
    rb.push_many([7, 1], [0.0, 0.0])
    assert not rb.ordered
    rb.push_many([8, 9], [0.0, 0.0])
    assert rb.timestamps().tolist() == [1, 8, 9] and rb.ordered


# ---------------------------------------------------------------------------- statistics


def test_stats_small_exact() -> None:
    rb = RingBuffer(10)
    data = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]
    rb.push_many(range(len(data)), data)
    assert rb.count() == 8 and rb.sum() == 40.0 and rb.mean() == 5.0
    assert rb.variance(ddof=0) == 4.0 and rb.std(ddof=0) == 2.0
    assert math.isclose(rb.variance(), 32.0 / 7.0, rel_tol=1e-15)
    assert rb.min() == 2.0 and rb.max() == 9.0
    with pytest.raises(ValueError, match="ddof must be >= 0"):
        rb.variance(-1)
    with pytest.raises(InsufficientDataError, match="needs at least 9 points"):
        rb.variance(8)


def test_constant_window_is_exact() -> None:
    rb = RingBuffer(100)
    rng = np.random.default_rng(11)
    rb.push_many(np.arange(1000), rng.normal(0, 1e6, 1000))  # a noisy history first
    rb.push_many(np.arange(1000, 1100), np.full(100, 0.1))
    assert rb.variance() == 0.0 and rb.std() == 0.0
    assert rb.mean() == 0.1 and rb.min() == rb.max() == 0.1
    assert rb.sum() == pytest.approx(10.0, rel=1e-15)


def test_min_max_after_many_overwrites() -> None:
    rng = np.random.default_rng(5)
    patterns = {
        "increasing": np.arange(5000, dtype=np.float64),
        "decreasing": -np.arange(5000, dtype=np.float64),
        "sawtooth": np.tile(np.arange(37, dtype=np.float64), 140),
        "random": rng.normal(size=5000),
        "ties": rng.integers(0, 3, 5000).astype(np.float64),
    }
    for name, vals in patterns.items():
        for cap in (1, 2, 7, 64):
            rb = RingBuffer(cap)
            model: deque[float] = deque(maxlen=cap)
            i = 0
            while i < len(vals):
                if rng.random() < 0.5:
                    rb.push(i, float(vals[i]))
                    model.append(float(vals[i]))
                    i += 1
                else:
                    n = min(int(rng.integers(0, 3 * cap + 2)), len(vals) - i)
                    rb.push_many(np.arange(i, i + n), vals[i : i + n])
                    model.extend(vals[i : i + n].tolist())
                    i += n
                assert rb.min() == min(model), (name, cap, i)
                assert rb.max() == max(model), (name, cap, i)


def test_variance_after_millions_of_overwrites_near_1e6() -> None:
    rng = np.random.default_rng(1)
    cap, total = 1000, 3_000_000
    vals = 1e6 + rng.normal(0.0, 1e-3, total)
    rb = RingBuffer(cap)
    chunk = 997  # not a divisor of the capacity: every wrap position gets exercised
    for start in range(0, total, chunk):
        rb.push_many(np.arange(start, min(start + chunk, total)), vals[start : start + chunk])
        if start % (chunk * 500) == 0 and len(rb) > 1:
            w = rb.values().tolist()
            assert rel_err(rb.variance(), exact_var(w)) < 1e-12
    w = vals[-cap:].tolist()
    assert rb.total_pushed == total
    assert rel_err(rb.variance(), exact_var(w)) < 1e-12
    assert rel_err(rb.variance(ddof=0), exact_var(w, 0)) < 1e-12
    assert rel_err(rb.std(), math.sqrt(exact_var(w))) < 1e-12
    assert abs(rb.mean() - exact_mean(w)) <= 2e-10  # an ulp of 1e6 is 1.16e-10
    assert rb.sum() == pytest.approx(float(sum(map(Fraction, w))), rel=1e-15)


def test_variance_after_a_million_single_pushes() -> None:
    rng = np.random.default_rng(2)
    cap, total = 500, 1_000_000
    vals = (1e6 + rng.normal(0.0, 1e-2, total)).tolist()
    rb = RingBuffer(cap)
    push = rb.push
    for i, v in enumerate(vals):
        push(i, v)
    w = vals[-cap:]
    assert rel_err(rb.variance(), exact_var(w)) < 1e-12
    assert abs(rb.mean() - exact_mean(w)) <= 2e-10


def test_variance_survives_a_jump_far_from_the_shift() -> None:
    # The shift K is the first value (~0); the window later sits at 1e6 with 1e-3 noise, so
    # naive sums of x and x^2 would lose every digit. Only the rounding of x - K remains.
    rng = np.random.default_rng(4)
    cap = 1000
    rb = RingBuffer(cap)
    rb.push_many(np.arange(5000), rng.normal(0.0, 1e-3, 5000))
    jump = 1e6 + rng.normal(0.0, 1e-3, 20_000)
    for start in range(0, len(jump), 333):
        part = jump[start : start + 333]
        rb.push_many(np.arange(start, start + len(part)), part)
    w = jump[-cap:].tolist()
    assert rel_err(rb.variance(), exact_var(w)) < 1e-6
    naive = (sum(x * x for x in w) - sum(w) ** 2 / cap) / (cap - 1)
    assert rel_err(naive, exact_var(w)) > 1e-3  # what the double-double sums avoid


def test_variance_of_a_random_walk() -> None:
    rng = np.random.default_rng(6)
    vals = np.cumsum(rng.normal(0.0, 1.0, 2_000_000)) + 50.0
    rb = RingBuffer(256)
    rb.push_many(np.arange(len(vals) // 2), vals[: len(vals) // 2])
    for start in range(len(vals) // 2, len(vals), 4099):
        part = vals[start : start + 4099]
        rb.push_many(np.arange(start, start + len(part)), part)
    w = vals[-256:].tolist()
    assert rel_err(rb.variance(), exact_var(w)) < 1e-12
    assert rb.min() == min(w) and rb.max() == max(w)


def test_large_capacity() -> None:
    rng = np.random.default_rng(8)
    cap = 1_000_000
    rb = RingBuffer(cap)
    vals = rng.normal(100.0, 5.0, 2_500_000)
    rb.push_many(np.arange(1_700_000), vals[:1_700_000])
    rb.push_many(np.arange(1_700_000, 2_500_000), vals[1_700_000:])
    w = vals[-cap:]
    assert np.array_equal(rb.values(), w)
    assert rb.min() == w.min() and rb.max() == w.max()
    assert math.isclose(rb.mean(), float(np.mean(w)), rel_tol=1e-13)
    assert math.isclose(rb.variance(), float(np.var(w, ddof=1)), rel_tol=1e-11)
    assert rb.range(2_000_000, 2_000_004)[1].tolist() == vals[2_000_000:2_000_005].tolist()


# ---------------------------------------------------------------------------- hypothesis model

VALUES = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
TIMESTAMPS = st.one_of(st.integers(-50, 50), st.integers(INT64_MIN, INT64_MAX))
# |x - K| <= 2e6, so each term is off by at most half an ulp of 2e6 (see native/ring.h).
DELTA = 2.0**-52 * 2e6


class RingMachine(RuleBasedStateMachine):
    """RingBuffer against a deque(maxlen) plus brute-force statistics with exact fractions."""

    rb: RingBuffer
    model: deque[tuple[int, float]]

    @initialize(capacity=st.sampled_from([1, 2, 3, 5, 8, 33]))
    def start(self, capacity: int) -> None:
        self.rb = RingBuffer(capacity)
        self.model = deque(maxlen=capacity)
        self.total = 0

    @rule(ts=TIMESTAMPS, value=VALUES)
    def push(self, ts: int, value: float) -> None:
        self.rb.push(ts, value)
        self.model.append((ts, value))
        self.total += 1

    @rule(points=st.lists(st.tuples(TIMESTAMPS, VALUES), max_size=80))
    def push_many(self, points: list[tuple[int, float]]) -> None:
        ts = np.array([p[0] for p in points], dtype=np.int64)
        vals = np.array([p[1] for p in points], dtype=np.float64)
        self.rb.push_many(ts, vals)
        self.model.extend(points)
        self.total += len(points)

    @rule(ts=TIMESTAMPS, bad=st.sampled_from([math.nan, math.inf, -math.inf, 1e101]))
    def push_invalid(self, ts: int, bad: float) -> None:
        with pytest.raises(InvalidValueError):
            self.rb.push(ts, bad)
        with pytest.raises(InvalidValueError):
            self.rb.push_many([ts, ts], [1.0, bad])

    @rule()
    def clear(self) -> None:
        self.rb.clear()
        self.model.clear()
        self.total = 0

    @rule(n=st.integers(0, 40))
    def last(self, n: int) -> None:
        ts, vals = self.rb.last(n)
        want = list(self.model)[::-1][:n]
        assert list(zip(ts.tolist(), vals.tolist(), strict=True)) == want

    @rule(a=TIMESTAMPS, b=TIMESTAMPS, limit=st.none() | st.integers(0, 10))
    def range(self, a: int, b: int, limit: int | None) -> None:
        ts, vals = self.rb.range(a, b, limit)
        want = [p for p in self.model if a <= p[0] <= b]
        if limit is not None:
            want = want[:limit]
        assert list(zip(ts.tolist(), vals.tolist(), strict=True)) == want

    @rule(index=st.integers(-40, 40))
    def getitem(self, index: int) -> None:
        if -len(self.model) <= index < len(self.model):
            assert self.rb[index] == self.model[index]
        else:
            with pytest.raises(IndexError):
                self.rb[index]

    @invariant()
    def contents(self) -> None:
        assert window(self.rb) == list(self.model)
        assert len(self.rb) == len(self.model)
        assert self.rb.total_pushed == self.total
        ts = [p[0] for p in self.model]
        assert self.rb.ordered == all(x <= y for x, y in itertools.pairwise(ts))

    @invariant()
    def statistics(self) -> None:
        vals = [p[1] for p in self.model]
        n = len(vals)
        assert self.rb.count() == n
        assert math.isclose(
            self.rb.sum(), float(sum(map(Fraction, vals))), rel_tol=1e-12, abs_tol=2 * n * DELTA
        )
        if n == 0:
            for stat in (self.rb.mean, self.rb.min, self.rb.max, self.rb.variance):
                with pytest.raises(InsufficientDataError):
                    stat()
            return
        assert self.rb.min() == min(vals) and self.rb.max() == max(vals)
        assert min(vals) <= self.rb.mean() <= max(vals)
        assert math.isclose(self.rb.mean(), exact_mean(vals), rel_tol=1e-12, abs_tol=2 * DELTA)
        spread = max(vals) - min(vals)
        for ddof in (0, 1):
            if n <= ddof:
                with pytest.raises(InsufficientDataError):
                    self.rb.variance(ddof)
                continue
            tol = 8 * DELTA * spread + 8 * DELTA**2 + 1e-13
            assert math.isclose(
                self.rb.variance(ddof), exact_var(vals, ddof), rel_tol=1e-12, abs_tol=tol
            )
        if spread == 0:
            assert self.rb.variance(0) == 0.0


TestRingMachine = RingMachine.TestCase
TestRingMachine.settings = settings(
    max_examples=200,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# ---------------------------------------------------------------------------- the C core itself

C_DRIVER = r"""
#include "ring.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t state = 88172645463325252ULL;
static uint64_t next(void) { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state; }
static double uniform(void) { return (double)(next() >> 11) * (1.0 / 9007199254740992.0); }

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "line %d: %s\n", __LINE__, #c); exit(1); } } while (0)

/* The model: the window is the last n points of a linear log, compacted now and then. */
static size_t cap, n, logsize, end;
static int64_t *logts;
static double *logv;
#define MTS (logts + end - n)
#define MV (logv + end - n)

static void model_push(int64_t t, double v) {
    if (end == logsize) {
        memmove(logts, logts + end - n, n * sizeof *logts);
        memmove(logv, logv + end - n, n * sizeof *logv);
        end = n;
    }
    logts[end] = t; logv[end] = v; end++;
    if (n < cap) n++;
}

static void check(const ring_t *r, int64_t *ots, double *ov) {
    const int64_t *mts = MTS;
    const double *mv = MV;
    CHECK(ring_size(r) == n);
    const int64_t *ts = ring_timestamps(r) + ring_window_start(r);
    const double *v = ring_values(r) + ring_window_start(r);
    double lo = INFINITY, hi = -INFINITY, sum = 0.0, out;
    int ordered = 1;
    for (size_t i = 0; i < n; i++) {
        CHECK(ts[i] == mts[i] && v[i] == mv[i]);
        lo = v[i] < lo ? v[i] : lo; hi = v[i] > hi ? v[i] : hi; sum += v[i];
        if (i && mts[i - 1] > mts[i]) ordered = 0;
    }
    CHECK(ring_is_ordered(r) == ordered);
    if (n == 0) {
        CHECK(ring_mean(r, &out) == RING_ERR_EMPTY && ring_min(r, &out) == RING_ERR_EMPTY);
        CHECK(ring_max(r, &out) == RING_ERR_EMPTY && ring_variance(r, 0, &out) == RING_ERR_EMPTY);
        return;
    }
    CHECK(ring_min(r, &out) == RING_OK && out == lo);
    CHECK(ring_max(r, &out) == RING_OK && out == hi);
    double mean = sum / (double)n, ss = 0.0;
    for (size_t i = 0; i < n; i++) ss += (mv[i] - mean) * (mv[i] - mean);
    CHECK(ring_mean(r, &out) == RING_OK && fabs(out - mean) <= 1e-9 * (1.0 + fabs(mean)));
    CHECK(ring_variance(r, 0, &out) == RING_OK && fabs(out - ss / (double)n) <= 1e-9 * (1.0 + ss / (double)n));
    size_t k = ring_last(r, n / 2 + 1, ots, ov);
    CHECK(k == n / 2 + 1 || k == n);
    for (size_t i = 0; i < k; i++) CHECK(ots[i] == mts[n - 1 - i] && ov[i] == mv[n - 1 - i]);
    int64_t a = (int64_t)(next() % 200) - 20, b = a + (int64_t)(next() % 60) - 10;
    size_t max = (size_t)(next() % (n + 2)), want = 0, total = 0;
    for (size_t i = 0; i < n; i++) total += mts[i] >= a && mts[i] <= b;
    CHECK(ring_range_count(r, a, b) == total);
    size_t got = ring_range(r, a, b, max, ots, ov);
    for (size_t i = 0; i < n && want < max; i++)
        if (mts[i] >= a && mts[i] <= b) { CHECK(ots[want] == mts[i] && ov[want] == mv[i]); want++; }
    CHECK(got == want);
}

int main(void) {
    static const size_t caps[] = {1, 2, 3, 7, 64, 1000};
    double digest = 0.0;
    for (size_t c = 0; c < sizeof caps / sizeof *caps; c++) {
        cap = caps[c]; n = 0; end = 0; logsize = 4 * cap + 64;
        logts = malloc(logsize * sizeof *logts); logv = malloc(logsize * sizeof *logv);
        int64_t *bts = malloc(3 * cap * sizeof *bts), *ots = malloc(cap * sizeof *ots);
        double *bv = malloc(3 * cap * sizeof *bv), *ov = malloc(cap * sizeof *ov), out;
        ring_t *r = ring_create(cap);
        CHECK(r && ring_capacity(r) == cap);
        int64_t clock = 0;
        for (int op = 0; op < 6000; op++) {
            double u = uniform();
            if (u < 0.6) {
                int64_t t = uniform() < 0.9 ? clock++ : clock - (int64_t)(next() % 5);
                double v = uniform() < 0.3 ? (double)(next() % 4) : 1e3 * (uniform() - 0.5);
                CHECK(ring_push(r, t, v) == RING_OK);
                model_push(t, v);
            } else if (u < 0.97) {
                size_t m = (size_t)(next() % (3 * cap + 1));
                for (size_t i = 0; i < m; i++) {
                    bts[i] = uniform() < 0.95 ? clock++ : clock - 3;
                    bv[i] = uniform() < 0.3 ? (double)(next() % 4) : 1e6 + uniform();
                }
                CHECK(ring_push_many(r, bts, bv, m) == RING_OK);
                for (size_t i = 0; i < m; i++) model_push(bts[i], bv[i]);
            } else if (u < 0.99) {
                CHECK(ring_push(r, 0, NAN) == RING_ERR_VALUE);
                bv[0] = 1.0; bv[1] = INFINITY; bts[0] = bts[1] = 0;
                CHECK(ring_push_many(r, bts, bv, 2) == RING_ERR_VALUE);
            } else {
                ring_clear(r); n = 0; clock = 0;
            }
            if (cap <= 64 || op % 10 == 0) check(r, ots, ov);
        }
        check(r, ots, ov);
        if (ring_variance(r, 1, &out) == RING_OK) digest += out;
        if (ring_mean(r, &out) == RING_OK) digest += out;
        digest += ring_sum(r);
        printf("%zu %a %a\n", cap, ring_sum(r), digest);
        ring_destroy(r);
        free(logts); free(logv); free(bts); free(ots); free(bv); free(ov);
    }
    /* API edges */
    double out;
    int64_t t;
    CHECK(ring_mem_size(0) == 0 && ring_create(0) == NULL);
    CHECK(ring_mem_size(RING_MAX_CAPACITY + 1) == 0);
    CHECK(ring_size(NULL) == 0 && ring_capacity(NULL) == 0 && ring_total_pushed(NULL) == 0);
    CHECK(ring_push(NULL, 0, 1.0) == RING_ERR_INVALID_ARG);
    CHECK(ring_push_many(NULL, NULL, NULL, 0) == RING_ERR_INVALID_ARG);
    CHECK(ring_mean(NULL, &out) == RING_ERR_INVALID_ARG && ring_sum(NULL) == 0.0);
    ring_destroy(NULL);
    static uint64_t mem[1024];
    CHECK(ring_init((char *)mem + 4, sizeof mem - 8, 4) == NULL); /* misaligned */
    CHECK(ring_init(mem, 16, 4) == NULL);                         /* too small */
    ring_t *r = ring_init(mem, sizeof mem, 4);
    CHECK(r != NULL);
    CHECK(ring_push_many(r, NULL, NULL, 0) == RING_OK);
    CHECK(ring_push_many(r, NULL, &out, 1) == RING_ERR_INVALID_ARG);
    CHECK(ring_push(r, 5, 2.5) == RING_OK);
    CHECK(ring_get(r, 0, &t, &out) == RING_OK && t == 5 && out == 2.5);
    CHECK(ring_get(r, -1, &t, &out) == RING_OK && ring_get(r, 1, &t, &out) == RING_ERR_INDEX);
    CHECK(ring_get(r, -2, &t, &out) == RING_ERR_INDEX);
    CHECK(ring_range(r, 9, 1, 10, &t, &out) == 0 && ring_range_count(r, 9, 1) == 0);
    CHECK(ring_variance(r, 1, &out) == RING_ERR_EMPTY && ring_variance(r, 0, &out) == RING_OK);
    ring_destroy(r); /* not from ring_create(): must not free */
    CHECK(ring_size(r) == 1);
    puts("ok");
    return 0;
}
"""


def _compile(tmp_path: Path, name: str, extra: list[str]) -> Path | None:
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    cc = cc.split()[0]
    if shutil.which(cc) is None:
        return None
    src = tmp_path / "driver.c"
    src.write_text(C_DRIVER)
    exe = tmp_path / name
    base = [cc, "-std=c99", "-O1", "-g", "-Wall", "-Wextra", "-Wpedantic", "-Werror"]
    base += ["-ffp-contract=off", f"-I{NATIVE}", str(src), str(NATIVE / "ring.c"), "-o", str(exe)]
    sanitize = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    for flags in (sanitize, []):
        proc = subprocess.run([*base, *extra, *flags, "-lm"], capture_output=True, text=True)
        if proc.returncode == 0:
            return exe
        if not flags:
            pytest.fail(f"ring.c does not compile cleanly:\n{proc.stderr}")
    return None


def test_c_core_warning_free_sanitized_and_identical_across_builds(tmp_path: Path) -> None:
    """The C core alone: -Wall -Wextra -Wpedantic -Werror, ASan/UBSan, a brute-force model,
    NULL/edge handling, and the same bits from the AVX2 and the portable batch path."""
    outputs = []
    for name, extra in (("dispatch", []), ("portable", ["-DRING_NO_DISPATCH"])):
        exe = _compile(tmp_path, name, extra)
        if exe is None:
            pytest.skip("no C compiler")
        env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=1"}
        proc = subprocess.run([str(exe)], capture_output=True, text=True, env=env, timeout=240)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.endswith("ok\n")
        outputs.append(proc.stdout)
    assert outputs[0] == outputs[1]
