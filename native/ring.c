/* ring.c: see ring.h for the contract and the numerical argument. */
#include "ring.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define RING_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define RING_ALWAYS_INLINE static inline
#endif

/* x86 builds carry an AVX2+FMA copy of the batch push, chosen at load time
 * (-DRING_NO_DISPATCH builds the portable path only). */
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__)) && \
    !defined(RING_NO_DISPATCH)
#define RING_X86_DISPATCH 1
#else
#define RING_X86_DISPATCH 0
#endif

#if defined(FP_FAST_FMA)
#define RING_NATIVE_FMA 1
#else
#define RING_NATIVE_FMA 0
#endif

/* Unevaluated double-double: value = hi + lo, |lo| <= ulp(hi)/2 after dd_renorm(). */
typedef struct {
    double hi, lo;
} dd_t;

/* Monotonic deque of slot indices, circular over `cap` entries. For the max deque the values
 * at those slots strictly decrease front to back (the min deque mirrors it), so the front is
 * the extreme and every slot is pushed and popped at most once. */
typedef struct {
    size_t *slot;
    size_t head, len;
} deque_t;

struct ring {
    size_t cap;
    size_t head; /* slot of the oldest point */
    size_t size;
    uint64_t total;
    size_t inversions; /* adjacent window pairs with ts[i] > ts[i + 1] */
    int owned;         /* allocated by ring_create() */
    double shift;      /* K: first value after a clear, keeps the sums small */
    dd_t s1, s2;       /* sum(x - K), sum((x - K)^2) over the window */
    int64_t *ts;       /* 2 * cap, mirrored */
    double *val;       /* 2 * cap, mirrored */
    deque_t qmax, qmin;
};

/* ---- error-free transformations (Knuth TwoSum, Dekker TwoProduct) ---- */

static inline void two_sum(double a, double b, double *s, double *e) {
    double x = a + b;
    double bv = x - a;
    double av = x - bv;
    *s = x;
    *e = (a - av) + (b - bv);
}

static inline void two_prod(double a, double b, double *p, double *e) {
#if defined(FP_FAST_FMA)
    *p = a * b;
    *e = fma(a, b, -*p);
#else
    /* Veltkamp split into 26-bit halves whose products are exact. */
    const double split = 134217729.0; /* 2^27 + 1 */
    double ca = split * a, cb = split * b;
    double ah = ca - (ca - a), al = a - ah;
    double bh = cb - (cb - b), bl = b - bh;
    *p = a * b;
    *e = ((ah * bh - *p) + ah * bl + al * bh) + al * bl;
#endif
}

static inline void dd_add(dd_t *d, double x) {
    double s, e;
    two_sum(d->hi, x, &s, &e);
    d->hi = s;
    d->lo += e;
}

static inline void dd_renorm(dd_t *d) {
    double s, e;
    two_sum(d->hi, d->lo, &s, &e);
    d->hi = s;
    d->lo = e;
}

/* Add (sign = +1) or remove (sign = -1) the terms of one value. Removal recomputes the very
 * same t and t^2 that were added, so nothing is left behind but TwoSum-captured rounding. */
static inline void stats_term(ring_t *r, double x, double sign) {
    double t = x - r->shift;
    double p, e;
    two_prod(t, t, &p, &e);
    dd_add(&r->s1, sign * t);
    dd_add(&r->s2, sign * p);
    r->s2.lo += sign * e;
}

static inline int value_ok(double v) {
    return fabs(v) <= RING_MAX_ABS_VALUE; /* false for NaN too */
}

/* ---- deques ---- */

static inline size_t wrap(size_t i, size_t cap) {
    return i >= cap ? i - cap : i;
}

static inline size_t deque_back(const deque_t *q, size_t cap) {
    return q->slot[wrap(q->head + q->len - 1, cap)];
}

static inline void deque_pop_front(deque_t *q, size_t cap) {
    q->head = wrap(q->head + 1, cap);
    q->len--;
}

/* sign = +1 for the max deque, -1 for the min deque (negation is exact). */
static inline void deque_push(deque_t *q, const double *val, size_t cap, size_t slot, double x,
                              double sign) {
    while (q->len && sign * val[deque_back(q, cap)] <= sign * x) q->len--;
    q->slot[wrap(q->head + q->len, cap)] = slot;
    q->len++;
}

/* Drop entries among the `e` oldest window points (slots head .. head+e-1, cyclically). */
static inline void deque_evict(deque_t *q, size_t cap, size_t head, size_t e) {
    while (q->len) {
        size_t s = q->slot[q->head];
        size_t age = s >= head ? s - head : s + cap - head;
        if (age >= e) break;
        deque_pop_front(q, cap);
    }
}

/* ---- lifecycle ---- */

static size_t header_size(void) {
    return (sizeof(struct ring) + 63) & ~(size_t)63;
}

size_t ring_mem_size(size_t capacity) {
    if (capacity == 0 || capacity > RING_MAX_CAPACITY) return 0;
    return header_size() + capacity * (2 * sizeof(int64_t) + 2 * sizeof(double)) +
           capacity * 2 * sizeof(size_t);
}

void ring_clear(ring_t *r) {
    if (!r) return;
    r->head = 0;
    r->size = 0;
    r->total = 0;
    r->inversions = 0;
    r->shift = 0.0;
    r->s1.hi = r->s1.lo = r->s2.hi = r->s2.lo = 0.0;
    r->qmax.head = r->qmax.len = 0;
    r->qmin.head = r->qmin.len = 0;
}

ring_t *ring_init(void *mem, size_t mem_size, size_t capacity) {
    size_t need = ring_mem_size(capacity);
    if (!mem || need == 0 || mem_size < need || ((uintptr_t)mem % 8) != 0) return NULL;
    unsigned char *base = mem;
    ring_t *r = mem;
    size_t off = header_size();
    r->cap = capacity;
    r->owned = 0;
    r->ts = (int64_t *)(void *)(base + off);
    off += 2 * capacity * sizeof(int64_t);
    r->val = (double *)(void *)(base + off);
    off += 2 * capacity * sizeof(double);
    r->qmax.slot = (size_t *)(void *)(base + off);
    off += capacity * sizeof(size_t);
    r->qmin.slot = (size_t *)(void *)(base + off);
    ring_clear(r);
    return r;
}

ring_t *ring_create(size_t capacity) {
    size_t need = ring_mem_size(capacity);
    if (need == 0) return NULL;
    void *mem = malloc(need);
    if (!mem) return NULL;
    ring_t *r = ring_init(mem, need, capacity);
    if (!r) {
        free(mem);
        return NULL;
    }
    r->owned = 1;
    return r;
}

void ring_destroy(ring_t *r) {
    if (r && r->owned) free(r);
}

size_t ring_size(const ring_t *r) { return r ? r->size : 0; }
size_t ring_capacity(const ring_t *r) { return r ? r->cap : 0; }
uint64_t ring_total_pushed(const ring_t *r) { return r ? r->total : 0; }
int ring_is_ordered(const ring_t *r) { return r ? r->inversions == 0 : 1; }
size_t ring_window_start(const ring_t *r) { return r ? r->head : 0; }
const int64_t *ring_timestamps(const ring_t *r) { return r ? r->ts : NULL; }
const double *ring_values(const ring_t *r) { return r ? r->val : NULL; }

/* ---- pushes ---- */

int ring_push(ring_t *r, int64_t ts, double value) {
    if (!r) return RING_ERR_INVALID_ARG;
    if (!value_ok(value)) return RING_ERR_VALUE;
    size_t cap = r->cap, slot;
    if (r->size == 0) {
        r->shift = value;
        r->s1.hi = r->s1.lo = r->s2.hi = r->s2.lo = 0.0;
    }
    if (r->size == cap) {
        /* Full: the new point takes the oldest point's slot. */
        slot = r->head;
        stats_term(r, r->val[slot], -1.0);
        if (cap > 1 && r->ts[slot] > r->ts[slot + 1]) r->inversions--;
        deque_evict(&r->qmax, cap, slot, 1);
        deque_evict(&r->qmin, cap, slot, 1);
        r->head = wrap(slot + 1, cap);
        r->size--;
    } else {
        slot = wrap(r->head + r->size, cap);
    }
    if (r->size && r->ts[r->head + r->size - 1] > ts) r->inversions++;
    deque_push(&r->qmax, r->val, cap, slot, value, 1.0);
    deque_push(&r->qmin, r->val, cap, slot, value, -1.0);
    r->ts[slot] = r->ts[slot + cap] = ts;
    r->val[slot] = r->val[slot + cap] = value;
    stats_term(r, value, 1.0);
    dd_renorm(&r->s1);
    dd_renorm(&r->s2);
    r->size++;
    r->total++;
    return RING_OK;
}

/* Copy n items into slots p, p+1, ... (cyclic) and their mirrors; n <= cap. */
static void write_slots(void *dst, const void *src, size_t item, size_t p, size_t n, size_t cap) {
    unsigned char *d = dst;
    const unsigned char *s = src;
    size_t first = n < cap - p ? n : cap - p;
    for (int m = 0; m < 2; m++) {
        unsigned char *half = d + (size_t)m * cap * item;
        memcpy(half + p * item, s, first * item);
        memcpy(half, s + first * item, (n - first) * item);
    }
}

/* Append survivors of the batch (backwards: a point survives if it beats every later one). */
static void deque_append_batch(deque_t *q, const double *vals, size_t n, size_t p0, size_t cap,
                               size_t count, double sign) {
    size_t pos = q->len + count;
    double best = -INFINITY;
    for (size_t j = n; j-- > 0;) {
        double x = sign * vals[j];
        if (x > best) {
            best = x;
            pos--;
            q->slot[wrap(q->head + pos, cap)] = wrap(p0 + j, cap);
        }
    }
    q->len += count;
}

/* Sums of t = x - k and t^2 over x[0..n) as double-doubles. Four independent lanes keep the
 * loop free of one serial dependency so it vectorises; the merge order is fixed and the
 * square's error is exact either way (FMA or Dekker; outside underflow), so the baseline and
 * AVX2 builds give the same bits. */
RING_ALWAYS_INLINE void sum_terms(const double *x, size_t n, double k, dd_t *o1, dd_t *o2,
                                  int use_fma) {
    enum { LANES = 4 };
    double h1[LANES] = {0.0}, l1[LANES] = {0.0}, h2[LANES] = {0.0}, l2[LANES] = {0.0};
    size_t i = 0;
    for (; i < n; i += LANES) {
        int lanes = n - i < LANES ? (int)(n - i) : LANES;
        for (int j = 0; j < lanes; j++) {
            double t = x[i + j] - k;
            double p = t * t, e;
            if (use_fma) {
                e = fma(t, t, -p);
            } else {
                double c = 134217729.0 * t;
                double th = c - (c - t), tl = t - th;
                e = ((th * th - p) + 2.0 * th * tl) + tl * tl;
            }
            double s = h1[j] + t, bv = s - h1[j], av = s - bv;
            l1[j] += (h1[j] - av) + (t - bv);
            h1[j] = s;
            s = h2[j] + p;
            bv = s - h2[j];
            av = s - bv;
            l2[j] += ((h2[j] - av) + (p - bv)) + e;
            h2[j] = s;
        }
    }
    for (int j = 0; j < LANES; j++) {
        dd_add(o1, h1[j]);
        o1->lo += l1[j];
        dd_add(o2, h2[j]);
        o2->lo += l2[j];
    }
}

/* The whole batch push, inlined twice: a baseline build and, on x86, an AVX2+FMA build picked
 * at load time. */
RING_ALWAYS_INLINE int push_many_body(ring_t *r, const int64_t *ts, const double *values,
                                      size_t n, int use_fma) {
    if (!r || (n && (!ts || !values))) return RING_ERR_INVALID_ARG;
    int ok = 1;
    for (size_t i = 0; i < n; i++) ok &= value_ok(values[i]);
    if (!ok) return RING_ERR_VALUE;
    if (n == 0) return RING_OK;

    size_t cap = r->cap;
    if (n >= cap) {
        /* Everything in the window is overwritten: start over with the last `cap` points. */
        uint64_t total = r->total + (n - cap);
        ring_clear(r);
        r->total = total;
        ts += n - cap;
        values += n - cap;
        n = cap;
    }

    size_t old = r->size, head = r->head;
    size_t e = old + n > cap ? old + n - cap : 0; /* evicted oldest points, e <= old */
    if (old == 0) {
        r->shift = values[0];
        r->s1.hi = r->s1.lo = r->s2.hi = r->s2.lo = 0.0;
    }

    /* Statistics: added and evicted terms summed separately (the evicted values are
     * contiguous thanks to the mirror), then merged once. */
    dd_t a1 = {0.0, 0.0}, a2 = {0.0, 0.0}, d1 = {0.0, 0.0}, d2 = {0.0, 0.0};
    sum_terms(values, n, r->shift, &a1, &a2, use_fma);
    sum_terms(r->val + head, e, r->shift, &d1, &d2, use_fma);
    dd_add(&r->s1, a1.hi);
    dd_add(&r->s1, -d1.hi);
    r->s1.lo += a1.lo - d1.lo;
    dd_renorm(&r->s1);
    dd_add(&r->s2, a2.hi);
    dd_add(&r->s2, -d2.hi);
    r->s2.lo += a2.lo - d2.lo;
    dd_renorm(&r->s2);

    /* Order tracking: drop the pairs that leave, add the boundary and the batch's own. */
    const int64_t *ots = r->ts + head;
    size_t inv = r->inversions;
    size_t leaving = old == 0 ? 0 : (e < old ? e : old - 1);
    for (size_t i = 0; i < leaving; i++) inv -= ots[i] > ots[i + 1];
    if (e < old) inv += ots[old - 1] > ts[0];
    for (size_t i = 0; i + 1 < n; i++) inv += ts[i] > ts[i + 1];
    r->inversions = inv;

    /* Min/max: evict, pop everything the batch extreme dominates, append batch survivors. */
    size_t cmax = 0, cmin = 0;
    double bmax = -INFINITY, bmin = INFINITY;
    for (size_t j = n; j-- > 0;) {
        double x = values[j];
        if (x > bmax) {
            bmax = x;
            cmax++;
        }
        if (x < bmin) {
            bmin = x;
            cmin++;
        }
    }
    deque_evict(&r->qmax, cap, head, e);
    deque_evict(&r->qmin, cap, head, e);
    while (r->qmax.len && r->val[deque_back(&r->qmax, cap)] <= bmax) r->qmax.len--;
    while (r->qmin.len && r->val[deque_back(&r->qmin, cap)] >= bmin) r->qmin.len--;
    size_t p0 = wrap(head + old, cap);
    deque_append_batch(&r->qmax, values, n, p0, cap, cmax, 1.0);
    deque_append_batch(&r->qmin, values, n, p0, cap, cmin, -1.0);

    write_slots(r->ts, ts, sizeof(int64_t), p0, n, cap);
    write_slots(r->val, values, sizeof(double), p0, n, cap);
    r->head = wrap(head + e, cap);
    r->size = old + n - e;
    r->total += n;
    return RING_OK;
}

static int push_many_baseline(ring_t *r, const int64_t *ts, const double *values, size_t n) {
    return push_many_body(r, ts, values, n, RING_NATIVE_FMA);
}

#if RING_X86_DISPATCH
__attribute__((target("avx2,fma"))) static int push_many_avx2(ring_t *r, const int64_t *ts,
                                                              const double *values, size_t n) {
    return push_many_body(r, ts, values, n, 1);
}

static int cpu_has_avx2_fma;

/* Once, at load time, so no call ever races on the flag. */
__attribute__((constructor)) static void detect_cpu(void) {
    __builtin_cpu_init();
    cpu_has_avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

int ring_push_many(ring_t *r, const int64_t *ts, const double *values, size_t n) {
#if RING_X86_DISPATCH
    if (cpu_has_avx2_fma) return push_many_avx2(r, ts, values, n);
#endif
    return push_many_baseline(r, ts, values, n);
}

/* ---- reads ---- */

int ring_get(const ring_t *r, int64_t index, int64_t *ts, double *value) {
    if (!r || !ts || !value) return RING_ERR_INVALID_ARG;
    int64_t n = (int64_t)r->size;
    if (index < 0) index += n;
    if (index < 0 || index >= n) return RING_ERR_INDEX;
    size_t i = r->head + (size_t)index;
    *ts = r->ts[i];
    *value = r->val[i];
    return RING_OK;
}

size_t ring_last(const ring_t *r, size_t max, int64_t *out_ts, double *out_values) {
    if (!r || !out_ts || !out_values) return 0;
    size_t n = max < r->size ? max : r->size;
    size_t newest = r->head + r->size - 1;
    for (size_t i = 0; i < n; i++) {
        out_ts[i] = r->ts[newest - i];
        out_values[i] = r->val[newest - i];
    }
    return n;
}

/* First index in a[0..n) with a[i] >= key (strict: a[i] > key), for sorted a. */
static size_t bound(const int64_t *a, size_t n, int64_t key, int strict) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int before = strict ? a[mid] <= key : a[mid] < key;
        if (before)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Sorted window: the matches are one contiguous run [*first, *first + count). */
static size_t sorted_range(const ring_t *r, int64_t start, int64_t end, size_t *first) {
    const int64_t *w = r->ts + r->head;
    size_t lo = bound(w, r->size, start, 0);
    size_t hi = bound(w, r->size, end, 1);
    *first = lo;
    return hi > lo ? hi - lo : 0;
}

size_t ring_range_count(const ring_t *r, int64_t start, int64_t end) {
    if (!r || start > end) return 0;
    size_t first;
    if (r->inversions == 0) return sorted_range(r, start, end, &first);
    const int64_t *w = r->ts + r->head;
    size_t count = 0;
    for (size_t i = 0; i < r->size; i++) count += w[i] >= start && w[i] <= end;
    return count;
}

size_t ring_range(const ring_t *r, int64_t start, int64_t end, size_t max, int64_t *out_ts,
                  double *out_values) {
    if (!r || !out_ts || !out_values || start > end || max == 0) return 0;
    const int64_t *w = r->ts + r->head;
    const double *v = r->val + r->head;
    size_t count = 0;
    if (r->inversions == 0) {
        size_t first;
        count = sorted_range(r, start, end, &first);
        if (count > max) count = max;
        memcpy(out_ts, w + first, count * sizeof(int64_t));
        memcpy(out_values, v + first, count * sizeof(double));
        return count;
    }
    for (size_t i = 0; i < r->size && count < max; i++) {
        if (w[i] >= start && w[i] <= end) {
            out_ts[count] = w[i];
            out_values[count] = v[i];
            count++;
        }
    }
    return count;
}

/* ---- statistics ---- */

double ring_sum(const ring_t *r) {
    if (!r || r->size == 0) return 0.0;
    double p, e, s, t;
    two_prod((double)r->size, r->shift, &p, &e); /* n * K, exactly */
    two_sum(p, r->s1.hi, &s, &t);
    return s + (t + e + r->s1.lo);
}

static inline double window_min(const ring_t *r) { return r->val[r->qmin.slot[r->qmin.head]]; }
static inline double window_max(const ring_t *r) { return r->val[r->qmax.slot[r->qmax.head]]; }

int ring_mean(const ring_t *r, double *out) {
    if (!r || !out) return RING_ERR_INVALID_ARG;
    if (r->size == 0) return RING_ERR_EMPTY;
    double m = r->shift + (r->s1.hi + r->s1.lo) / (double)r->size;
    /* The last rounding may step past an extreme; a constant window gets its value exactly. */
    double lo = window_min(r), hi = window_max(r);
    *out = m < lo ? lo : (m > hi ? hi : m);
    return RING_OK;
}

int ring_variance(const ring_t *r, unsigned ddof, double *out) {
    if (!r || !out) return RING_ERR_INVALID_ARG;
    if (r->size <= ddof) return RING_ERR_EMPTY;
    if (window_min(r) == window_max(r)) {
        *out = 0.0; /* constant window: exactly zero, not a residue of past rounding */
        return RING_OK;
    }
    /* n * sum(t^2) - (sum t)^2 in double-double: both sides agree to many digits when the
     * spread is small next to |mean - K|, and their difference must survive that. */
    double n = (double)r->size;
    double p, e, q, f, s, t;
    two_prod(n, r->s2.hi, &p, &e);
    e += n * r->s2.lo;
    two_prod(r->s1.hi, r->s1.hi, &q, &f);
    f += 2.0 * r->s1.hi * r->s1.lo;
    two_sum(p, -q, &s, &t);
    double m2n = s + (t + (e - f));
    if (m2n < 0.0) m2n = 0.0; /* residue of rounding when the spread is ~0 */
    *out = m2n / n / (n - (double)ddof);
    return RING_OK;
}

int ring_min(const ring_t *r, double *out) {
    if (!r || !out) return RING_ERR_INVALID_ARG;
    if (r->size == 0) return RING_ERR_EMPTY;
    *out = window_min(r);
    return RING_OK;
}

int ring_max(const ring_t *r, double *out) {
    if (!r || !out) return RING_ERR_INVALID_ARG;
    if (r->size == 0) return RING_ERR_EMPTY;
    *out = window_max(r);
    return RING_OK;
}
