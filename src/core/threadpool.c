// threadpool.c: persistent workers, a generation counter to start runs, and a sense-reversing spin
// barrier. Workers spin briefly after a run (decode issues a run per token, so the next one usually comes
// soon) and then sleep on a condition variable, so an idle process uses no CPU. The step profile is plain
// counters written by thread 0 and printed at free.
#include "core/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#define POOL_SPIN_BEFORE_SLEEP 200000

struct inf_pool {
    int n;
    pthread_t *threads;
    inf_pool_fn fn;
    void *ctx;
    atomic_uint generation; // bumped to start a run
    atomic_int running;     // workers still inside the current run
    atomic_int arrived;     // barrier
    atomic_uint phase;      // barrier generation
    atomic_bool stop;
    atomic_int sleepers;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char pad0[64];                          // keeps the counters off the barrier's cache lines
    atomic_int_fast64_t next[INF_POOL_SLOTS]; // dynamic work counters, zeroed per run
    char pad1[64];
    // step profile (thread 0 only)
    bool prof_on;
    const char *prof_title;
    int prof_groups, prof_kinds;
    const char *const *prof_group_names;
    const char *const *prof_kind_names;
    uint64_t prof_ns[INF_POOL_PROF_GROUPS][INF_POOL_PROF_KINDS];
    uint64_t prof_run_ns[INF_POOL_PROF_GROUPS];
    int64_t prof_runs[INF_POOL_PROF_GROUPS], prof_items[INF_POOL_PROF_GROUPS];
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    sched_yield();
#endif
}

// Spinning wait step: pause, and after a while yield the core, so a machine with more runnable threads
// than cores (other processes, oversubscribed pools) does not starve the thread being waited for.
static inline void spin_wait(int *spins) {
    if (++*spins < 2000) cpu_relax();
    else sched_yield();
}

typedef struct {
    inf_pool *pool;
    int ith;
} worker_arg;

static void *worker_main(void *arg) {
    worker_arg *wa = arg;
    inf_pool *p = wa->pool;
    int ith = wa->ith;
    free(wa);
    unsigned seen = 0;
    for (;;) {
        unsigned gen;
        int spins = 0;
        while ((gen = atomic_load_explicit(&p->generation, memory_order_acquire)) == seen &&
               !atomic_load_explicit(&p->stop, memory_order_acquire)) {
            if (++spins < POOL_SPIN_BEFORE_SLEEP) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while (atomic_load(&p->generation) == seen && !atomic_load(&p->stop)) pthread_cond_wait(&p->cv, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
            spins = 0;
        }
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) return NULL;
        seen = gen;
        p->fn(p->ctx, ith, p->n);
        atomic_fetch_sub_explicit(&p->running, 1, memory_order_release);
    }
}

inf_status inf_pool_init(int n_threads, inf_pool **out) {
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024) return inf_fail(INF_ERR_INVALID_ARG, "thread count %d out of range [1, 1024]", n_threads);
    inf_pool *p = inf_calloc(1, sizeof *p);
    if (!p) return inf_fail(INF_ERR_NOMEM, "out of memory");
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->threads = inf_calloc((size_t)n_threads, sizeof(pthread_t));
    if (!p->threads) {
        inf_pool_free(p);
        return inf_fail(INF_ERR_NOMEM, "out of memory");
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = inf_malloc(sizeof *wa);
        if (!wa) {
            p->n = i;
            inf_pool_free(p);
            return inf_fail(INF_ERR_NOMEM, "out of memory");
        }
        wa->pool = p;
        wa->ith = i;
        if (pthread_create(&p->threads[i], NULL, worker_main, wa) != 0) {
            free(wa);
            p->n = i;
            inf_pool_free(p);
            return inf_fail(INF_ERR_INTERNAL, "cannot start worker thread %d of %d", i, n_threads);
        }
    }
    *out = p;
    return INF_OK;
}

static void pool_profile_print(const inf_pool *p);

void inf_pool_free(inf_pool *p) {
    if (!p) return;
    if (p->prof_on) pool_profile_print(p);
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, true);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++)
        if (p->threads && p->threads[i]) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
}

int inf_pool_size(const inf_pool *p) { return p->n; }

int64_t inf_pool_next(inf_pool *p, int slot, int64_t chunk) {
    assert(slot >= 0 && slot < INF_POOL_SLOTS && chunk > 0);
    return atomic_fetch_add_explicit(&p->next[slot], chunk, memory_order_relaxed);
}

void inf_pool_run(inf_pool *p, inf_pool_fn fn, void *ctx) {
    // Relaxed stores: the workers see them after the generation bump below (seq_cst), or, for one thread,
    // program order.
    for (int i = 0; i < INF_POOL_SLOTS; i++) atomic_store_explicit(&p->next[i], 0, memory_order_relaxed);
    if (p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->running, p->n - 1, memory_order_relaxed);
    atomic_fetch_add(&p->generation, 1); // seq_cst: ordered before the sleepers check below
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    fn(ctx, 0, p->n);
    int spins = 0;
    while (atomic_load_explicit(&p->running, memory_order_acquire) > 0) spin_wait(&spins);
}

void inf_pool_barrier(inf_pool *p) {
    if (p->n == 1) return;
    unsigned ph = atomic_load_explicit(&p->phase, memory_order_acquire);
    if (atomic_fetch_add_explicit(&p->arrived, 1, memory_order_acq_rel) == p->n - 1) {
        atomic_store_explicit(&p->arrived, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&p->phase, 1, memory_order_release);
        return;
    }
    int spins = 0;
    while (atomic_load_explicit(&p->phase, memory_order_acquire) == ph) spin_wait(&spins);
}

// ---- step profile ----

bool inf_pool_profile_enable(inf_pool *p, const char *title, int n_groups, const char *const *group_names,
                             int n_kinds, const char *const *kind_names) {
    if (p->prof_on) return true;
    if (n_groups < 1 || n_groups > INF_POOL_PROF_GROUPS || n_kinds < 1 || n_kinds > INF_POOL_PROF_KINDS) return false;
    p->prof_title = title;
    p->prof_groups = n_groups;
    p->prof_kinds = n_kinds;
    p->prof_group_names = group_names;
    p->prof_kind_names = kind_names;
    p->prof_on = true;
    return true;
}

bool inf_pool_profiling(const inf_pool *p) { return p->prof_on; }

void inf_pool_profile_add(inf_pool *p, int group, int kind, uint64_t ns) {
    assert(group >= 0 && group < p->prof_groups && kind >= 0 && kind < p->prof_kinds);
    p->prof_ns[group][kind] += ns;
}

void inf_pool_profile_run(inf_pool *p, int group, uint64_t ns, int64_t items) {
    assert(group >= 0 && group < p->prof_groups);
    p->prof_run_ns[group] += ns;
    p->prof_runs[group]++;
    p->prof_items[group] += items;
}

uint64_t inf_pool_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

// One table per group that ran, kinds by time taken, largest first; time not charged to any kind (the
// caller's own bookkeeping) is the last line.
static void pool_profile_print(const inf_pool *p) {
    for (int g = 0; g < p->prof_groups; g++) {
        if (!p->prof_runs[g]) continue;
        double total = (double)p->prof_run_ns[g], runs = (double)p->prof_runs[g];
        inf_log(INF_LOG_INFO, "%s, %s: %lld runs, %lld items, %d threads, %.1f ms (%.3f ms/run, %.3f ms/item)",
                p->prof_title, p->prof_group_names[g], (long long)p->prof_runs[g], (long long)p->prof_items[g], p->n,
                total * 1e-6, total * 1e-6 / runs, total * 1e-6 / (double)INF_MAX(p->prof_items[g], 1));
        inf_log(INF_LOG_INFO, "  %-22s %10s %6s %10s", "step (thread 0)", "ms", "%", "us/run");
        bool done[INF_POOL_PROF_KINDS] = {false};
        uint64_t charged = 0;
        for (int i = 0; i < p->prof_kinds; i++) {
            int best = -1;
            for (int k = 0; k < p->prof_kinds; k++)
                if (!done[k] && (best < 0 || p->prof_ns[g][k] > p->prof_ns[g][best])) best = k;
            done[best] = true;
            uint64_t ns = p->prof_ns[g][best];
            if (!ns) continue;
            charged += ns;
            inf_log(INF_LOG_INFO, "  %-22s %10.2f %6.1f %10.1f", p->prof_kind_names[best], (double)ns * 1e-6,
                    100.0 * (double)ns / total, (double)ns * 1e-3 / runs);
        }
        double rest = total - (double)charged;
        inf_log(INF_LOG_INFO, "  %-22s %10.2f %6.1f %10.1f", "(not charged)", rest * 1e-6, 100.0 * rest / total,
                rest * 1e-3 / runs);
    }
}
