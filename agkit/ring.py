"""Fixed-capacity time-series ring buffer backed by the C core in ``native/ring.c``.

``RingBuffer`` holds up to ``capacity`` (int64 timestamp, float value) points; a push into a
full buffer overwrites the oldest point. Timestamps are opaque integers (agkit uses
microseconds) and need not be ordered, although ``range()`` is faster while they are.

Reading
    ``timestamps()`` / ``values()`` / ``arrays()`` are zero-copy, read-only numpy views of the
    window, oldest first. They stay readable for as long as you hold them (they keep the
    storage alive) but their contents are only meaningful until the next ``push``,
    ``push_many`` or ``clear``: copy them (``.copy()``) to keep a snapshot.
    ``last(n)`` returns copies of the newest ``n`` points **newest first**, the exact semantics
    of the original ``ag_timeseries_query_last``; ``range()`` returns copies, oldest first.

Statistics
    ``count``, ``sum``, ``mean``, ``variance``/``std`` (``ddof=1``, the sample variance, by
    default; ``ddof=0`` gives the population variance) are O(1) over the whole window, ``min``
    and ``max`` are O(1) queries over amortised O(1) pushes (monotonic deques). The sums are
    kept in double-double arithmetic around a shift, with evicted values subtracted exactly,
    so they do not drift however many points are pushed and no periodic recomputation is
    needed (see ``native/ring.h``). ``mean``, ``variance``, ``std``, ``min`` and ``max`` of a
    buffer with too few points raise ``InsufficientDataError`` (a ``ValueError``) rather than
    returning NaN; ``sum`` of an empty buffer is 0.0.

Values must be finite with ``abs(value) <= MAX_ABS_VALUE`` (1e100); anything else raises
``InvalidValueError`` and leaves the buffer unchanged (``push_many`` is all-or-nothing).

Not thread-safe: the C core takes no locks. Share a buffer between threads only behind a
lock, including readers (a view read during a push can mix old and new points).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterator
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from agkit._ring import ffi, lib
from agkit.errors import AgkitError

__all__ = [
    "MAX_ABS_VALUE",
    "MAX_CAPACITY",
    "InsufficientDataError",
    "InvalidValueError",
    "RingBuffer",
    "RingError",
    "RingIndexError",
    "ensure",
]

Int64Array = npt.NDArray[np.int64]
Float64Array = npt.NDArray[np.float64]

MAX_ABS_VALUE: Final[float] = float(lib.RING_MAX_ABS_VALUE)
MAX_CAPACITY: Final[int] = int(lib.RING_MAX_CAPACITY)


class RingError(AgkitError):
    """Base of the errors raised by the ring buffer."""


class InsufficientDataError(RingError, ValueError):
    """The buffer holds too few points for the statistic (e.g. mean of an empty buffer)."""


class InvalidValueError(RingError, ValueError):
    """A value is NaN, infinite or beyond ``MAX_ABS_VALUE``."""


class RingIndexError(RingError, IndexError):
    """An index outside the current window."""


_ERR_EMPTY: Final[int] = int(lib.RING_ERR_EMPTY)
_REASONS: Final[dict[int, tuple[type[Exception], str]]] = {
    int(lib.RING_ERR_EMPTY): (InsufficientDataError, "the buffer is empty"),
    int(lib.RING_ERR_VALUE): (
        InvalidValueError,
        f"values must be finite with magnitude <= {MAX_ABS_VALUE:g}",
    ),
    int(lib.RING_ERR_INDEX): (RingIndexError, "index out of range"),
    int(lib.RING_ERR_INVALID_ARG): (RingError, "invalid argument passed to the C core"),
    int(lib.RING_ERR_NOMEM): (MemoryError, "out of memory"),
}


def ensure(rc: int, context: str) -> None:
    """Turn a C status code into the matching Python exception; RING_OK passes through."""
    if rc == lib.RING_OK:
        return
    exc_type, reason = _REASONS.get(rc, (RingError, f"unexpected status {rc}"))
    raise exc_type(f"{context}: {reason}")


# The ring lives in Python-owned memory so numpy views can keep it alive; no need to zero it,
# nothing outside the window is ever read.
_alloc = ffi.new_allocator(should_clear_after_alloc=False)
# The per-call paths bind their C functions once (a global is cheaper than lib.<attr>) and
# give them types, so mypy checks the callers.
_ring_push: Callable[[Any, int, float], int] = lib.ring_push
_ring_size: Callable[[Any], int] = lib.ring_size
_ring_window_start: Callable[[Any], int] = lib.ring_window_start
_ring_mean: Callable[[Any, Any], int] = lib.ring_mean
_ring_min: Callable[[Any, Any], int] = lib.ring_min
_ring_max: Callable[[Any, Any], int] = lib.ring_max
_ring_variance: Callable[[Any, int, Any], int] = lib.ring_variance


def _index(n: object, name: str) -> int:
    try:
        value = operator.index(n)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(n).__name__}") from None
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def _as_1d(data: npt.ArrayLike, dtype: type[np.generic], name: str) -> Any:
    arr = np.asarray(data)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        return np.empty(0, dtype)
    if arr.dtype.kind == "u" and arr.dtype.itemsize == 8 and int(arr.max()) > 2**63 - 1:
        raise ValueError(f"{name}: {int(arr.max())} does not fit in int64")
    if arr.dtype != dtype:
        # same_kind: ints widen to float values, but float timestamps are refused rather
        # than silently truncated.
        try:
            arr = arr.astype(dtype, casting="same_kind")
        except TypeError:
            raise TypeError(
                f"{name}: cannot convert dtype {arr.dtype} to {np.dtype(dtype)}"
            ) from None
    return np.ascontiguousarray(arr)


class RingBuffer:
    """Fixed-capacity ring of (timestamp, value) points with O(1) rolling statistics.

    Not thread-safe. See the module docstring for view lifetimes, numerics and errors.
    """

    __slots__ = ("_cap", "_mem", "_out_ts", "_out_val", "_r", "_ts_all", "_val_all")

    def __init__(self, capacity: int) -> None:
        try:
            cap = operator.index(capacity)
        except TypeError:
            raise TypeError(f"capacity must be an integer, got {type(capacity).__name__}") from None
        if cap < 1:
            raise ValueError(f"capacity must be at least 1, got {cap}")
        if cap > MAX_CAPACITY:
            raise ValueError(f"capacity must be at most {MAX_CAPACITY}, got {cap}")
        nbytes = int(lib.ring_mem_size(cap))
        self._mem = _alloc("uint64_t[]", (nbytes + 7) // 8)
        self._r = lib.ring_init(self._mem, nbytes, cap)
        if self._r == ffi.NULL:
            raise RingError("ring_init refused the buffer memory")
        self._cap = cap
        # Read-only views over the whole mirrored storage; windows are slices of these. The
        # memoryview chain keeps self._mem alive for as long as any slice exists.
        raw = memoryview(ffi.buffer(self._mem)).toreadonly()
        base = int(ffi.cast("uintptr_t", self._mem))
        ts_off = int(ffi.cast("uintptr_t", lib.ring_timestamps(self._r))) - base
        val_off = int(ffi.cast("uintptr_t", lib.ring_values(self._r))) - base
        self._ts_all: Int64Array = np.frombuffer(raw, np.int64, 2 * cap, ts_off)
        self._val_all: Float64Array = np.frombuffer(raw, np.float64, 2 * cap, val_off)
        self._out_ts = ffi.new("int64_t *")
        self._out_val = ffi.new("double *")

    # ---- size ----

    @property
    def capacity(self) -> int:
        """Maximum number of points held."""
        return self._cap

    @property
    def total_pushed(self) -> int:
        """Points pushed since creation or the last clear(), overwritten ones included."""
        return int(lib.ring_total_pushed(self._r))

    @property
    def ordered(self) -> bool:
        """True while the window's timestamps are non-decreasing (range() bisects then)."""
        return bool(lib.ring_is_ordered(self._r))

    def __len__(self) -> int:
        return _ring_size(self._r)

    def __repr__(self) -> str:
        return f"RingBuffer(capacity={self._cap}, size={len(self)})"

    def clear(self) -> None:
        """Drop every point (capacity is kept)."""
        lib.ring_clear(self._r)

    # ---- writes ----

    def push(self, ts: int, value: float) -> None:
        """Append one point, overwriting the oldest when full. O(1)."""
        rc = _ring_push(self._r, ts, value)
        if rc:
            ensure(rc, f"push({ts!r}, {value!r})")

    def push_many(self, ts: npt.ArrayLike, values: npt.ArrayLike) -> None:
        """Append points in order in one C call; only the last ``capacity`` remain.

        ``ts`` converts to int64 and ``values`` to float64 (any array-like). Lengths must
        match. All values are checked before anything is written.
        """
        t = _as_1d(ts, np.int64, "ts")
        v = _as_1d(values, np.float64, "values")
        n = t.shape[0]
        if n != v.shape[0]:
            raise ValueError(f"ts and values differ in length: {n} != {v.shape[0]}")
        if n == 0:
            return
        # Our own views as input (rb.push_many(*rb.arrays())) would be overwritten while
        # being read: take a copy first.
        if np.may_share_memory(t, self._ts_all):
            t = t.copy()
        if np.may_share_memory(v, self._val_all):
            v = v.copy()
        rc = lib.ring_push_many(
            self._r, ffi.from_buffer("int64_t[]", t), ffi.from_buffer("double[]", v), n
        )
        if rc:
            bad = np.flatnonzero(~(np.abs(v) <= MAX_ABS_VALUE))
            where = f" (first bad value {float(v[bad[0]])!r} at index {bad[0]})" if bad.size else ""
            ensure(rc, f"push_many{where}")

    # ---- reads ----

    def timestamps(self) -> Int64Array:
        """Read-only int64 view of the window, oldest first; valid until the next write."""
        start = _ring_window_start(self._r)
        return self._ts_all[start : start + _ring_size(self._r)]

    def values(self) -> Float64Array:
        """Read-only float64 view of the window, oldest first; valid until the next write."""
        start = _ring_window_start(self._r)
        return self._val_all[start : start + _ring_size(self._r)]

    def arrays(self) -> tuple[Int64Array, Float64Array]:
        """``(timestamps(), values())``: both zero-copy views, oldest first."""
        start = _ring_window_start(self._r)
        stop = start + _ring_size(self._r)
        return self._ts_all[start:stop], self._val_all[start:stop]

    def __getitem__(self, index: int) -> tuple[int, float]:
        """Point ``index`` of the window: 0 is the oldest, -1 the newest."""
        i = operator.index(index)
        if not -(2**63) <= i < 2**63:
            raise RingIndexError(f"index {i} out of range for {len(self)} points")
        rc = lib.ring_get(self._r, i, self._out_ts, self._out_val)
        if rc:
            ensure(rc, f"index {i} for {len(self)} points")
        return int(self._out_ts[0]), float(self._out_val[0])

    def __iter__(self) -> Iterator[tuple[int, float]]:
        """Iterate over a snapshot of the points, oldest first."""
        ts, vals = self.arrays()
        return zip(ts.tolist(), vals.tolist(), strict=True)

    def last(self, n: int) -> tuple[Int64Array, Float64Array]:
        """Copies of the newest ``n`` points (fewer if the buffer holds fewer), NEWEST FIRST.

        Kept with the original ``ag_timeseries_query_last`` order; for time order use
        ``timestamps()[-n:]`` / ``values()[-n:]``.
        """
        k = min(_index(n, "n"), len(self))
        out_ts = np.empty(k, np.int64)
        out_vals = np.empty(k, np.float64)
        if k:
            lib.ring_last(
                self._r,
                k,
                ffi.from_buffer("int64_t[]", out_ts),
                ffi.from_buffer("double[]", out_vals),
            )
        return out_ts, out_vals

    def range(
        self, start_ts: int, end_ts: int, max_points: int | None = None
    ) -> tuple[Int64Array, Float64Array]:
        """Copies of the points with ``start_ts <= ts <= end_ts``, oldest first.

        ``max_points`` keeps the first matches in time order. ``start_ts > end_ts`` gives
        empty arrays. O(log n + k) while ``ordered``, a scan of the window otherwise.
        """
        lo, hi = operator.index(start_ts), operator.index(end_ts)
        # Bounds outside int64 cannot exclude anything beyond what int64 bounds do.
        lo = max(lo, -(2**63))
        hi = min(hi, 2**63 - 1)
        limit = None if max_points is None else _index(max_points, "max_points")
        k = int(lib.ring_range_count(self._r, lo, hi)) if lo <= hi else 0
        if limit is not None:
            k = min(k, limit)
        out_ts = np.empty(k, np.int64)
        out_vals = np.empty(k, np.float64)
        if k:
            got = lib.ring_range(
                self._r,
                lo,
                hi,
                k,
                ffi.from_buffer("int64_t[]", out_ts),
                ffi.from_buffer("double[]", out_vals),
            )
            if got != k:  # cannot happen without a concurrent writer
                raise RingError(f"range: expected {k} points, got {got}")
        return out_ts, out_vals

    # ---- rolling statistics, O(1) ----

    def count(self) -> int:
        """Number of points in the window (same as len())."""
        return len(self)

    def sum(self) -> float:
        """Sum of the window's values; 0.0 when empty."""
        return float(lib.ring_sum(self._r))

    def mean(self) -> float:
        """Arithmetic mean; InsufficientDataError when empty."""
        rc = _ring_mean(self._r, self._out_val)
        if rc:
            ensure(rc, "mean()")
        return float(self._out_val[0])

    def variance(self, ddof: int = 1) -> float:
        """Sum of squared deviations / (n - ddof): sample variance by default, ``ddof=0``
        for the population variance. InsufficientDataError unless n > ddof."""
        if type(ddof) is not int or not 0 <= ddof < 2**32:
            ddof = _index(ddof, "ddof")
        rc = _ring_variance(self._r, ddof, self._out_val) if ddof < 2**32 else _ERR_EMPTY
        if rc == _ERR_EMPTY:
            raise InsufficientDataError(
                f"variance(ddof={ddof}) needs at least {ddof + 1} points, the buffer holds {len(self)}"
            )
        if rc:
            ensure(rc, f"variance(ddof={ddof})")
        return float(self._out_val[0])

    def std(self, ddof: int = 1) -> float:
        """Square root of ``variance(ddof)``."""
        return math.sqrt(self.variance(ddof))

    def min(self) -> float:
        """Smallest value in the window; InsufficientDataError when empty."""
        rc = _ring_min(self._r, self._out_val)
        if rc:
            ensure(rc, "min()")
        return float(self._out_val[0])

    def max(self) -> float:
        """Largest value in the window; InsufficientDataError when empty."""
        rc = _ring_max(self._r, self._out_val)
        if rc:
            ensure(rc, "max()")
        return float(self._out_val[0])
