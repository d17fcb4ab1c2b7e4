/* Declarations handed to cffi's ffi.cdef() by build_ring.py: the subset of ring.h the Python
 * wrapper uses, in the syntax pycparser accepts. "..." makes cffi read each value from ring.h
 * when it compiles, so the numbers live in one place. */

#define RING_OK ...
#define RING_ERR_INVALID_ARG ...
#define RING_ERR_NOMEM ...
#define RING_ERR_EMPTY ...
#define RING_ERR_VALUE ...
#define RING_ERR_INDEX ...
#define RING_MAX_CAPACITY ...
static const double RING_MAX_ABS_VALUE;

typedef struct ring ring_t;

size_t ring_mem_size(size_t capacity);
ring_t *ring_init(void *mem, size_t mem_size, size_t capacity);

void ring_clear(ring_t *r);
size_t ring_size(const ring_t *r);
size_t ring_capacity(const ring_t *r);
uint64_t ring_total_pushed(const ring_t *r);
int ring_is_ordered(const ring_t *r);

int ring_push(ring_t *r, int64_t ts, double value);
int ring_push_many(ring_t *r, const int64_t *ts, const double *values, size_t n);

int ring_get(const ring_t *r, int64_t index, int64_t *ts, double *value);
size_t ring_last(const ring_t *r, size_t max, int64_t *out_ts, double *out_values);
size_t ring_range_count(const ring_t *r, int64_t start, int64_t end);
size_t ring_range(const ring_t *r, int64_t start, int64_t end, size_t max, int64_t *out_ts,
                  double *out_values);

size_t ring_window_start(const ring_t *r);
const int64_t *ring_timestamps(const ring_t *r);
const double *ring_values(const ring_t *r);

double ring_sum(const ring_t *r);
int ring_mean(const ring_t *r, double *out);
int ring_variance(const ring_t *r, unsigned ddof, double *out);
int ring_min(const ring_t *r, double *out);
int ring_max(const ring_t *r, double *out);
