// threadpool.c: persistent workers, a generation counter to start runs, and a sense-reversing spin
// barrier. Workers spin briefly after a run (decode issues a run per token, so the next one usually comes
// soon) and then sleep on a condition variable, so an idle process uses no CPU.
#include "core/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

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

void inf_pool_free(inf_pool *p) {
    if (!p) return;
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

void inf_pool_run(inf_pool *p, inf_pool_fn fn, void *ctx) {
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
