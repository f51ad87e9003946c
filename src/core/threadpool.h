// threadpool.h: a persistent pool of worker threads that run one function on every thread at once, with a
// spinning barrier for the phases inside it. The forward pass runs on it: every thread walks the same
// sequence of operations, each taking its share (rows, tokens, heads), with a barrier between dependent
// steps, or chunks claimed from a counter. Nothing is created or allocated per run. An opt-in profile lets thread 0 charge its time to named
// step kinds and prints the table when the pool is freed. Leaves out: task queues and work stealing.
#ifndef INFERNO_THREADPOOL_H
#define INFERNO_THREADPOOL_H

#include "core/core.h"

typedef struct inf_pool inf_pool;
typedef void (*inf_pool_fn)(void *ctx, int ith, int nth);

// Starts n_threads - 1 workers (the caller of inf_pool_run is thread 0). n_threads in [1, 1024].
inf_status inf_pool_init(int n_threads, inf_pool **out);
void inf_pool_free(inf_pool *p);
int inf_pool_size(const inf_pool *p);
// Runs fn(ctx, ith, nth) on all threads and returns when every one has returned. Not reentrant: one run at
// a time per pool.
void inf_pool_run(inf_pool *p, inf_pool_fn fn, void *ctx);
// Inside fn: returns when all threads of the run have called it (memory written before is visible after).
void inf_pool_barrier(inf_pool *p);

// The [begin, end) share of thread ith out of nth for n items, in chunks aligned to `align` items.
static inline void inf_pool_share(int64_t n, int ith, int nth, int64_t align, int64_t *begin, int64_t *end) {
    int64_t chunks = (n + align - 1) / align;
    int64_t per = chunks / nth, extra = chunks % nth;
    int64_t c0 = ith * per + (ith < extra ? ith : extra);
    int64_t c1 = c0 + per + (ith < extra ? 1 : 0);
    *begin = INF_MIN(c0 * align, n);
    *end = INF_MIN(c1 * align, n);
}

// ---- dynamic work sharing ----
// A step whose items may go to whichever thread is free takes them in chunks from a counter slot:
// inf_pool_next returns the first item of the next unclaimed chunk (>= the item count when none is left).
// Slots are zeroed at the start of each run; every step of a run uses its own slot, numbered the same way by
// every thread (they all walk the same steps). Steps past INF_POOL_SLOTS must share out work statically.
enum { INF_POOL_SLOTS = 1024 };
int64_t inf_pool_next(inf_pool *p, int slot, int64_t chunk);

// ---- opt-in step profile ----
// Thread 0 of a run charges wall time to step kinds (names given once, kept by pointer: static strings) in
// groups (e.g. single-token and batch runs), and records each run's total; inf_pool_free prints one table per
// group through inf_log at INFO. Off until inf_pool_profile_enable; callers test inf_pool_profiling once per
// run, so an unprofiled pool pays one branch per step. Thread 0 only: no locking.
enum { INF_POOL_PROF_GROUPS = 4, INF_POOL_PROF_KINDS = 32 };
// Fails (false) when the counts exceed the limits above; enabling twice keeps the first names.
bool inf_pool_profile_enable(inf_pool *p, const char *title, int n_groups, const char *const *group_names,
                             int n_kinds, const char *const *kind_names);
bool inf_pool_profiling(const inf_pool *p);
void inf_pool_profile_add(inf_pool *p, int group, int kind, uint64_t ns);
// One run of the group took ns (thread 0's wall time) over `items` work items (tokens).
void inf_pool_profile_run(inf_pool *p, int group, uint64_t ns, int64_t items);
// Monotonic clock in nanoseconds.
uint64_t inf_pool_now_ns(void);

#endif // INFERNO_THREADPOOL_H
