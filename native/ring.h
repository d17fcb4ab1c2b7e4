/*
 * ring.h: fixed-capacity time-series ring buffer of (int64 timestamp, double value) points.
 *
 * Successor of ag-botkit's ag_timeseries (core/): same overwrite-oldest semantics, plus
 * O(1) rolling statistics, amortised O(1) min/max and a contiguous time-ordered window.
 *
 * - Capacity N > 0 is fixed at creation; a push into a full buffer overwrites the oldest point.
 * - Timestamps are opaque int64 (agkit uses microseconds); order is not enforced. While the
 *   window is non-decreasing in time, range queries use binary search, otherwise a scan.
 * - Values must be finite with |value| <= RING_MAX_ABS_VALUE (the variance squares them).
 * - Storage is mirrored: slot s lives at index s and s + N, so the window (oldest first) is
 *   always the contiguous run [ring_window_start(), + ring_size()) of the exported arrays.
 * - Rolling sum/mean/variance are kept as double-double sums of (x - K) and (x - K)^2 where
 *   K is the first value pushed after a clear. Evictions subtract exactly the term that was
 *   added, squares are split exactly (TwoProduct) and every addition keeps its rounding error
 *   (TwoSum), so there is no drift and no periodic recomputation: after M updates the sums
 *   are off by about M * 2^-106 of their largest magnitude, and the variance is, to that
 *   accuracy, the exact variance of the data perturbed by at most half an ulp of |x - K|.
 *   A constant window has variance exactly 0 and mean exactly its value. Compile without
 *   -ffast-math and with -ffp-contract=off, or the error-free transformations stop being so.
 * - Min/max use monotonic deques of slot indices (N entries each): amortised O(1) per push,
 *   O(1) per query.
 *
 * Not thread-safe: no locks, no atomics. Guard a shared buffer with a mutex.
 * No function allocates except ring_create().
 */
#ifndef AGKIT_RING_H
#define AGKIT_RING_H

#include <stddef.h>
#include <stdint.h>

#define RING_OK 0
#define RING_ERR_INVALID_ARG (-1) /* NULL handle or output pointer, bad size */
#define RING_ERR_NOMEM (-2)       /* reserved (ag_timeseries parity); ring_create() gives NULL */
#define RING_ERR_EMPTY (-4)       /* not enough points for the statistic */
#define RING_ERR_VALUE (-5)       /* a value is NaN, infinite or beyond RING_MAX_ABS_VALUE */
#define RING_ERR_INDEX (-6)       /* ring_get() index outside the window */

#define RING_MAX_ABS_VALUE 1e100

/* Largest accepted capacity: keeps every byte count (64 per point at most) below SIZE_MAX. */
#define RING_MAX_CAPACITY ((SIZE_MAX - 4096) / 64)

typedef struct ring ring_t;

/* Bytes needed for a ring of `capacity` points (header, mirrored arrays, deques);
 * 0 if capacity is 0 or above RING_MAX_CAPACITY. */
size_t ring_mem_size(size_t capacity);

/* Build a ring inside caller-owned memory (8-byte aligned, >= ring_mem_size(capacity) bytes).
 * Returns the handle (== mem) or NULL on bad arguments. Release the memory, not the handle. */
ring_t *ring_init(void *mem, size_t mem_size, size_t capacity);

/* malloc-backed convenience: NULL if capacity is invalid or memory is short. */
ring_t *ring_create(size_t capacity);
void ring_destroy(ring_t *r); /* NULL-safe; only for rings from ring_create() */

void ring_clear(ring_t *r);
size_t ring_size(const ring_t *r);     /* 0 for NULL */
size_t ring_capacity(const ring_t *r); /* 0 for NULL */
uint64_t ring_total_pushed(const ring_t *r);
int ring_is_ordered(const ring_t *r); /* 1 if timestamps are non-decreasing oldest->newest */

/* O(1). RING_ERR_VALUE leaves the buffer unchanged. */
int ring_push(ring_t *r, int64_t ts, double value);
/* One call for n points; only the last `capacity` of them remain if n > capacity. All values
 * are validated first, so RING_ERR_VALUE leaves the buffer unchanged. The inputs must not
 * point into the ring's own storage. */
int ring_push_many(ring_t *r, const int64_t *ts, const double *values, size_t n);

/* Point at `index` of the window: 0 = oldest, -1 = newest. */
int ring_get(const ring_t *r, int64_t index, int64_t *ts, double *value);

/* Up to `max` newest points, newest first (ag_timeseries_query_last). Returns the count. */
size_t ring_last(const ring_t *r, size_t max, int64_t *out_ts, double *out_values);

/* Points with start <= ts <= end, oldest first; 0 if start > end. ring_range() keeps the
 * first `max` matches in time order (ag_timeseries_query_range) and returns the count. */
size_t ring_range_count(const ring_t *r, int64_t start, int64_t end);
size_t ring_range(const ring_t *r, int64_t start, int64_t end, size_t max, int64_t *out_ts,
                  double *out_values);

/* Zero-copy access: window index i is ring_timestamps(r)[ring_window_start(r) + i]. The
 * pointers stay valid for the ring's lifetime; the contents change with the next push. */
size_t ring_window_start(const ring_t *r);
const int64_t *ring_timestamps(const ring_t *r); /* 2 * capacity entries */
const double *ring_values(const ring_t *r);      /* 2 * capacity entries */

/* Rolling statistics over the whole window, O(1). */
double ring_sum(const ring_t *r); /* 0.0 when empty */
int ring_mean(const ring_t *r, double *out);
/* Sum of squared deviations / (n - ddof); RING_ERR_EMPTY unless n > ddof. */
int ring_variance(const ring_t *r, unsigned ddof, double *out);
int ring_min(const ring_t *r, double *out);
int ring_max(const ring_t *r, double *out);

#endif /* AGKIT_RING_H */
