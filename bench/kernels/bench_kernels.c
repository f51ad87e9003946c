// bench_kernels.c: times the CPU kernel table per weight type and ISA variant on a TinyLlama-sized matrix
// (5632 rows of 2048 by default, the FFN up/gate shape) and prints, for each, ns per row, GB/s of weight
// bytes read, GOP/s (2 per multiply-add) and the share of the machine's read bandwidth, which it measures
// with a stream-like read kernel on the same number of threads (once up front, and after each decode
// repetition: %BW is the median ratio of the pairs, since on a shared machine the bandwidth drifts).
//
// decode:  y = W x for one activation row through vec_dot, on enough copies of W (-s MiB in all) that the
//          weights come from DRAM rather than the last-level cache, as in token generation.
// prefill: Y = W X for -c activation rows through gemm, one copy of W (cache-resident, compute bound).
// Rows are split evenly over -T threads, as the engine's pool does. Leaves out: attention, the
// activation quantizers (O(n) per row, negligible), any check of results (tests/unit/test_cpu_kernels.c
// does that; the printed sum of outputs is only a fingerprint).
#include "backend/cpu/cpu_kernels.h"

#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 40) / 8388608.0 - 1.0);
}

// ---- threads ----

typedef void (*job_fn)(void *ctx, int ith, int nth);
typedef struct {
    job_fn fn;
    void *ctx;
    int ith, nth;
    double cpu; // thread CPU seconds the job took
} job;

static double thread_cpu_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void *job_main(void *p) {
    job *j = p;
    double c0 = thread_cpu_s();
    j->fn(j->ctx, j->ith, j->nth);
    j->cpu = thread_cpu_s() - c0;
    return NULL;
}

// CPU seconds summed over the threads of the last run_threads: on a machine shared with other processes,
// ops / cpu is the per-core rate the kernel achieves while it runs, whatever the time slicing.
static double last_cpu_s;

// Runs fn on nth threads (the caller is thread 0) and returns the wall time.
static double run_threads(int nth, job_fn fn, void *ctx) {
    pthread_t th[64];
    job jobs[64];
    double t0 = now_s();
    for (int i = 1; i < nth; i++) {
        jobs[i] = (job){fn, ctx, i, nth, 0.0};
        pthread_create(&th[i], NULL, job_main, &jobs[i]);
    }
    jobs[0] = (job){fn, ctx, 0, nth, 0.0};
    job_main(&jobs[0]);
    last_cpu_s = jobs[0].cpu;
    for (int i = 1; i < nth; i++) {
        pthread_join(th[i], NULL);
        last_cpu_s += jobs[i].cpu;
    }
    return now_s() - t0;
}

static void share(int64_t n, int ith, int nth, int64_t *b, int64_t *e) {
    *b = n * ith / nth;
    *e = n * (ith + 1) / nth;
}

// ---- read bandwidth ----

typedef struct {
    const uint8_t *buf;
    size_t bytes;
    double sink[64];
} stream_ctx;

__attribute__((target("avx2"))) static void stream_read(void *p, int ith, int nth) {
    stream_ctx *c = p;
    int64_t b, e;
    share((int64_t)(c->bytes / 256), ith, nth, &b, &e);
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = b; i < e; i++) {
        const __m256i *q = (const __m256i *)(c->buf + i * 256);
        // The same software prefetch distance as the kernels: without it this VM reads ~40% slower.
        for (int o = 0; o < 256; o += 64) {
            _mm_prefetch((const char *)q + 4096 + o, _MM_HINT_T0);
        }
        a0 = _mm256_add_epi64(a0, _mm256_add_epi64(_mm256_load_si256(q + 0), _mm256_load_si256(q + 1)));
        a1 = _mm256_add_epi64(a1, _mm256_add_epi64(_mm256_load_si256(q + 2), _mm256_load_si256(q + 3)));
        a2 = _mm256_add_epi64(a2, _mm256_add_epi64(_mm256_load_si256(q + 4), _mm256_load_si256(q + 5)));
        a3 = _mm256_add_epi64(a3, _mm256_add_epi64(_mm256_load_si256(q + 6), _mm256_load_si256(q + 7)));
    }
    __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
    c->sink[ith] = (double)_mm256_extract_epi64(s, 0);
}

static double measure_bandwidth(const uint8_t *buf, size_t bytes, int nth, int reps) {
    stream_ctx c = {.buf = buf, .bytes = bytes};
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t = run_threads(nth, stream_read, &c);
        best = t < best ? t : best;
    }
    return (double)bytes / best / 1e9;
}

// ---- kernels ----

typedef struct {
    const inf_cpu_kernels *k;
    inf_type type;
    int64_t n, rows, cols;
    size_t row_bytes, mat_bytes;
    int copies;
    const uint8_t *w;
    const uint8_t *x;
    size_t x_stride;
    const void *xp; // x laid out by vec_prep (decode), NULL where the variant has no single-row path
    bool use_rows;  // decode through vec_dot_rows where the variant has it
    float *y;
} mm_ctx;

static void decode_job(void *p, int ith, int nth) {
    mm_ctx *c = p;
    int64_t b, e;
    share(c->rows, ith, nth, &b, &e);
    inf_vec_dot_fn dot = c->xp ? c->k->vec_dot_prep[c->type] : c->k->vec_dot[c->type];
    const void *x = c->xp ? c->xp : c->x;
    for (int m = 0; m < c->copies; m++) {
        const uint8_t *w = c->w + (size_t)m * c->mat_bytes;
        if (c->xp && c->use_rows && c->k->vec_dot_rows[c->type]) {
            c->k->vec_dot_rows[c->type](c->n, w + (size_t)b * c->row_bytes, c->row_bytes, e - b, x, c->y + b);
            continue;
        }
        for (int64_t r = b; r < e; r++) {
            c->y[r] = dot(c->n, w + (size_t)r * c->row_bytes, x);
        }
    }
}

static void prefill_job(void *p, int ith, int nth) {
    mm_ctx *c = p;
    int64_t b, e;
    share(c->rows, ith, nth, &b, &e);
    c->k->gemm[c->type](c->n, c->w + (size_t)b * c->row_bytes, c->row_bytes, (int)(e - b), c->x, c->x_stride,
                        (int)c->cols, c->y + b, (size_t)c->rows);
}

static double sum_of(const float *y, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) {
        s += y[i];
    }
    return s;
}

static void usage(void) {
    printf("usage: bench_kernels [-t TYPES] [-v VARIANTS] [-m decode|prefill|both] [-r ROWS] [-n K] [-c COLS]\n"
           "                     [-s MIB] [-T THREADS] [-R REPS] [-P 0|1|2] [-H 0|1]\n"
           "  -P: decode through 0 vec_dot, 1 vec_dot_prep per row, 2 vec_dot_rows (default; each falls back\n"
           "      to the one before where the variant lacks it)\n"
           "  -H 1: weights in transparent huge pages (madvise), as a load-time copy of the weights could be\n"
           "  TYPES, VARIANTS: comma lists (default Q4_K,Q6_K,Q4_0,Q8_0,F16 and every variant this CPU has)\n");
}

static bool in_list(const char *list, const char *name) {
    size_t len = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t l = comma ? (size_t)(comma - p) : strlen(p);
        if (l == len && strncmp(p, name, l) == 0) {
            return true;
        }
        p = comma ? comma + 1 : NULL;
    }
    return false;
}

int main(int argc, char **argv) {
    const char *types = "Q4_K,Q6_K,Q4_0,Q8_0,F16", *variants = "scalar,avx2,avx512", *mode = "both";
    int64_t rows = 5632, n = 2048, cols = 256;
    int mib = 512, nth = 2, reps = 5, use_prep = 2, huge = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || v == NULL) {
            usage();
            return strcmp(a, "-h") == 0 ? 0 : 2;
        }
        i++;
        if (strcmp(a, "-t") == 0) types = v;
        else if (strcmp(a, "-v") == 0) variants = v;
        else if (strcmp(a, "-m") == 0) mode = v;
        else if (strcmp(a, "-r") == 0) rows = atoll(v);
        else if (strcmp(a, "-n") == 0) n = atoll(v);
        else if (strcmp(a, "-c") == 0) cols = atoll(v);
        else if (strcmp(a, "-s") == 0) mib = atoi(v);
        else if (strcmp(a, "-T") == 0) nth = atoi(v);
        else if (strcmp(a, "-R") == 0) reps = atoi(v);
        else if (strcmp(a, "-P") == 0) use_prep = atoi(v);
        else if (strcmp(a, "-H") == 0) huge = atoi(v);
        else {
            usage();
            return 2;
        }
    }
    if (rows < 1 || n < 256 || n % 256 != 0 || cols < 1 || nth < 1 || nth > 64 || mib < 1 || reps < 1) {
        fprintf(stderr, "bad arguments (n must be a multiple of 256)\n");
        return 2;
    }
    bool do_decode = strcmp(mode, "prefill") != 0, do_prefill = strcmp(mode, "decode") != 0;

    size_t buf_bytes = (size_t)mib << 20;
    uint8_t *buf = aligned_alloc(2u << 20, buf_bytes);
    if (buf == NULL) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    if (huge && madvise(buf, buf_bytes, MADV_HUGEPAGE) != 0) {
        perror("madvise(MADV_HUGEPAGE)");
    }
    memset(buf, 1, buf_bytes);
    double load[3] = {0, 0, 0};
    if (getloadavg(load, 3) == 3) {
        printf("load average before: %.2f %.2f %.2f (other processes share these cores)\n", load[0], load[1], load[2]);
    }
    double bw = measure_bandwidth(buf, buf_bytes, nth, 5);
    double bw1 = measure_bandwidth(buf, buf_bytes, 1, 3);
    printf("read bandwidth: %.1f GB/s on %d threads, %.1f GB/s on 1 (stream-like sum over %d MiB)\n", bw, nth,
           bw1, mib);
    printf("matrix %lld x %lld, %d threads; prefill with %lld activation rows\n", (long long)rows, (long long)n,
           nth, (long long)cols);
    printf("ns/row: wall time per weight row (prefill: per row and activation row); GOP/s/core: ops over the\n"
           "threads' CPU time (the rate while running, unaffected by other processes sharing the cores)\n");
    printf("%-5s %-7s %-7s %10s %8s %8s %9s %7s  %s\n", "type", "isa", "mode", "ns/row", "GB/s", "GOP/s",
           "GOP/s/core", "%BW", "sum(y)");

    static const inf_type all[] = {INF_TYPE_F32,  INF_TYPE_F16,  INF_TYPE_BF16, INF_TYPE_Q4_0, INF_TYPE_Q4_1,
                                   INF_TYPE_Q5_0, INF_TYPE_Q5_1, INF_TYPE_Q8_0, INF_TYPE_Q2_K, INF_TYPE_Q3_K,
                                   INF_TYPE_Q4_K, INF_TYPE_Q5_K, INF_TYPE_Q6_K};
    static const char *const vnames[] = {"scalar", "avx2", "avx512"};
    float *src = malloc(sizeof(float) * (size_t)n);
    static _Alignas(64) uint8_t prep_buf[INF_PREP_BYTES];
    void *prep = prep_buf;
    float *y = malloc(sizeof(float) * (size_t)(rows * cols));
    for (size_t ti = 0; ti < sizeof(all) / sizeof(all[0]); ti++) {
        const inf_type_traits *tr = inf_type_get(all[ti]);
        if (!in_list(types, tr->name)) {
            continue;
        }
        const inf_type_traits *xtr = inf_type_get(tr->vec_dot_type);
        size_t row_bytes = inf_row_size(all[ti], n), mat_bytes = row_bytes * (size_t)rows;
        int copies = (int)(buf_bytes / mat_bytes);
        if (copies < 1) {
            fprintf(stderr, "%s: matrix larger than -s\n", tr->name);
            continue;
        }
        // One matrix from the reference quantizer, copied so decode streams from DRAM.
        inf_quantize_fn wq = inf_type_weight_quantizer(all[ti]);
        for (int64_t r = 0; r < rows; r++) {
            for (int64_t i = 0; i < n; i++) {
                src[i] = rnd();
            }
            wq(src, buf + (size_t)r * row_bytes, n);
        }
        for (int m = 1; m < copies; m++) {
            memcpy(buf + (size_t)m * mat_bytes, buf, mat_bytes);
        }
        size_t x_stride = inf_row_size(tr->vec_dot_type, n);
        uint8_t *x = malloc(x_stride * (size_t)cols);
        for (int64_t c = 0; c < cols; c++) {
            for (int64_t i = 0; i < n; i++) {
                src[i] = rnd();
            }
            xtr->quantize(src, x + (size_t)c * x_stride, n);
        }
        for (size_t vi = 0; vi < 3; vi++) {
            const inf_cpu_kernels *k = inf_cpu_kernels_variant(vnames[vi]);
            if (k == NULL || !in_list(variants, vnames[vi])) {
                continue;
            }
            mm_ctx c = {.k = k, .type = all[ti], .n = n, .rows = rows, .cols = cols, .row_bytes = row_bytes,
                        .mat_bytes = mat_bytes, .copies = copies, .w = buf, .x = x, .x_stride = x_stride, .y = y};
            if (use_prep && k->vec_prep[all[ti]] && k->vec_prep[all[ti]](n, x, prep, sizeof(prep_buf))) {
                c.xp = prep;
                c.use_rows = use_prep >= 2;
            }
            bool slow = strcmp(vnames[vi], "scalar") == 0;
            if (do_decode) {
                // The scalar kernels are far from bandwidth bound: one pass over fewer copies is enough.
                c.copies = slow ? (copies < 4 ? copies : 4) : copies;
                // Each repetition is paired with a bandwidth probe right after it; %BW is the median of the
                // pairs' ratios, which holds up when other processes make the bandwidth drift.
                double best = 1e30, cpu = 1e30, ratio[64];
                int nrep = slow ? 1 : (reps < 64 ? reps : 64);
                for (int r = 0; r < nrep; r++) {
                    double t = run_threads(nth, decode_job, &c) / c.copies;
                    best = t < best ? t : best;
                    cpu = last_cpu_s / c.copies < cpu ? last_cpu_s / c.copies : cpu;
                    ratio[r] = (double)mat_bytes / t / 1e9 / measure_bandwidth(buf, buf_bytes, nth, 1);
                }
                for (int a = 1; a < nrep; a++) { // insertion sort for the median
                    for (int b2 = a; b2 > 0 && ratio[b2] < ratio[b2 - 1]; b2--) {
                        double tmp = ratio[b2];
                        ratio[b2] = ratio[b2 - 1];
                        ratio[b2 - 1] = tmp;
                    }
                }
                double ops = 2.0 * (double)rows * (double)n;
                printf("%-5s %-7s %-7s %10.2f %8.2f %8.1f %9.1f %6.1f%%  %.6g\n", tr->name, vnames[vi], "decode",
                       best * 1e9 / (double)rows, (double)mat_bytes / best / 1e9, ops / best / 1e9, ops / cpu / 1e9,
                       100.0 * ratio[nrep / 2], sum_of(y, rows));
            }
            if (do_prefill) {
                c.copies = 1;
                int64_t keep = c.cols;
                c.cols = slow ? (cols < 8 ? cols : 8) : cols;
                double best = 1e30, cpu = 1e30;
                for (int r = 0; r < (slow ? 1 : reps); r++) {
                    double t = run_threads(nth, prefill_job, &c);
                    best = t < best ? t : best;
                    cpu = last_cpu_s < cpu ? last_cpu_s : cpu;
                }
                double ops = 2.0 * (double)rows * (double)n * (double)c.cols;
                printf("%-5s %-7s %-7s %10.2f %8s %8.1f %9.1f %7s  %.6g\n", tr->name, vnames[vi], "prefill",
                       best * 1e9 / ((double)rows * (double)c.cols), "-", ops / best / 1e9, ops / cpu / 1e9, "-",
                       sum_of(y, rows * c.cols));
                c.cols = keep;
            }
        }
        free(x);
    }
    if (getloadavg(load, 3) == 3) {
        printf("load average after: %.2f %.2f %.2f\n", load[0], load[1], load[2]);
    }
    free(src);
    free(y);
    free(buf);
    return 0;
}
