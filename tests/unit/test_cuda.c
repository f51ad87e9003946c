// test_cuda.c: the CUDA backend against the CPU backend. For every micro model type: the logits of a
// 40-token prompt (one batch, every position: the GEMM path with flash attention), of the same prompt in
// batches of 10 (the dp4a matrix-vector path, 8 + 2 tokens a launch) and of 8 single-token decode steps (the
// persistent decode kernel, in a CUDA graph), as normalized MSE against the CPU's logits under a per-type
// bound; llama.cpp's greedy tokens for stories260K (every step) with all layers on the GPU and with a partial
// offload; partial offload close to full offload; a 1,592-token prompt in a context of 2,048 (micro model,
// 4 batches) and 8 decode steps after it against the CPU; two sequences in one batch; the opt-in decode
// fusions (INFERNO_CUDA_FUSE=1) and the per-op decode kernels (INFERNO_CUDA_PERSIST=0) on two types each;
// the persistent kernel's opt-in prefetch and KV-head counters on one type; its opt-in weight ring
// (INFERNO_CUDA_PD_RING=1) on five types, the long prompt and a small ring; the persistent kernel on F16
// weights with the ring, also over the long prompt (its attention merge past 128 positions); its split-K wo
// and down (the default for every quantized type and F16 above) over the long prompt of a quantized and the
// F16 model, and the same by rows (INFERNO_CUDA_PD_SPLITK=0), with timelines that must say which ran; F16
// through the per-op kernels (INFERNO_CUDA_PERSIST=0); a 65,536-token batch of two sequences with either
// attention kernel.
// Skips (77) with the reason when the build has no CUDA backend or no device is found.
//
// Normalized MSE = sum((gpu - cpu)^2) / sum((cpu - mean(cpu))^2) over the compared logits: 0 is identical,
// 1 is as far off as the logits' own spread. The CPU quantizes activations to 8 bits for quantized weights
// and keeps an F32 KV cache; the GPU keeps activations in F32 and an F16 cache, so the bounds are loose
// where the CPU rounds more.
#include "test.h"

#include "inferno.h"

#include <json-c/json.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    const char *file; // under models/synthetic
    double bound;     // normalized MSE bound against the CPU
} type_case;

// Bounds: about 10x the figures measured on an H100 (bench/NOTES.md, CUDA section); the CPU's 8-bit
// activations dominate the quantized types' figures (Q8_0 1.1e-4, Q4_K 2.7e-4).
static const type_case cases[] = {
    {"micro-F32.gguf", 1e-6},    {"micro-F16.gguf", 3e-6},    {"micro-BF16.gguf", 1.5e-4},
    {"micro-Q8_0.gguf", 1.5e-3}, {"micro-Q4_0.gguf", 2e-3},   {"micro-Q4_1.gguf", 2e-3},
    {"micro-Q5_0.gguf", 2e-3},   {"micro-Q5_1.gguf", 2e-3},   {"micro-Q2_K.gguf", 3e-3},
    {"micro-Q3_K_M.gguf", 3e-3}, {"micro-Q4_K_M.gguf", 3e-3}, {"micro-Q5_K_M.gguf", 3e-3},
    {"micro-Q6_K.gguf", 3e-3},   {"micro-Q4_K_M-mix.gguf", 3e-3},
};

// The persistent kernel's report (INFERNO_CUDA_PROFILE=3), captured from the log.
static char profile_line[4096];
// INFERNO_CUDA_PROFILE=1's GEMM figures, the largest any session of a check reported, and its attention kernel.
static long gemm_products, gemm_sides;
static char attention_kind[64];
// The multi-token step graphs a session reported when it ended (the largest of a check's sessions).
static long mg_captured, mg_replayed;

static void capture_profile(inf_log_level level, const char *msg, void *user) {
    (void)level, (void)user;
    if (strstr(msg, "persistent kernel")) snprintf(profile_line, sizeof profile_line, "%s", msg);
    const char *g = strstr(msg, "GEMM path: ");
    long p = 0, f = 0;
    if (g && sscanf(g, "GEMM path: %ld products, %ld of them", &p, &f) == 2) {
        if (p > gemm_products) gemm_products = p;
        if (f > gemm_sides) gemm_sides = f;
    }
    long c = 0, r = 0;
    const char *m = strstr(msg, "GPU multi-token steps: ");
    if (m && sscanf(m, "GPU multi-token steps: %ld replayed from %ld graphs", &r, &c) == 2 && c > mg_captured)
        mg_captured = c, mg_replayed = r;
    const char *a = strstr(msg, "GEMM-path attention: ");
    if (a) snprintf(attention_kind, sizeof attention_kind, "%s", a + strlen("GEMM-path attention: "));
}

// The timeline's count of decode steps that took the long form (past 128 cached positions), and of all
// steps; false when the line is missing.
static bool long_form_steps(const char *msg, long *n_long, long *n_steps) {
    static const char key[] = "steps of the long form (past 128 positions): ";
    const char *p = strstr(msg, key);
    return p && sscanf(p + strlen(key), "%ld of %ld", n_long, n_steps) == 2;
}

// The per-block timeline (INFERNO_CUDA_PROFILE=4): a header, then per point "name min median max own_median
// own_max" in us. Every block passes its points in order, so each order statistic over the blocks (and their
// averages over layers and steps) cannot decrease from one point to the next; a timeline written to the
// wrong slots, or not at all, breaks that or the counts.
static void check_timeline(const char *msg) {
    int blocks = 0, n_layers = 0;
    long steps = 0;
    CHECK_MSG(sscanf(msg, "persistent kernel timeline, %d blocks, %ld steps x %d layers", &blocks, &steps,
                     &n_layers) == 3,
              "no timeline in '%.200s'", msg);
    CHECK(blocks > 0 && steps > 0 && n_layers > 0);
    static const char *const points[] = {"start",      "qkv staged", "qkv arrive", "qkv release", "att arrive",
                                         "att release", "wo staged", "wo arrive",  "wo release",  "gu staged",
                                         "gu arrive",  "gu release", "down staged", "down arrive", "down release"};
    double prev[3] = {0.0, 0.0, 0.0};
    for (size_t i = 0; i < sizeof points / sizeof points[0]; i++) {
        char key[32];
        snprintf(key, sizeof key, "\n  %s ", points[i]);
        const char *p = strstr(msg, key);
        CHECK_MSG(p != NULL, "timeline point '%s' missing", points[i]);
        if (!p) return;
        double v[5];
        CHECK_MSG(sscanf(p + strlen(key), "%lf %lf %lf %lf %lf", &v[0], &v[1], &v[2], &v[3], &v[4]) == 5,
                  "timeline point '%s' unreadable", points[i]);
        CHECK_MSG(v[0] <= v[1] && v[1] <= v[2] && v[3] <= v[4] && v[3] >= 0.0, "timeline point '%s' disordered",
                  points[i]);
        for (int k = 0; k < 3; k++) {
            CHECK_MSG(v[k] + 1e-3 >= prev[k], "timeline '%s' before the point ahead of it (%.3f < %.3f)", points[i],
                      v[k], prev[k]);
            prev[k] = v[k];
        }
    }
    CHECK_MSG(prev[1] > 0.0 && prev[1] < 1e5, "a layer of %.3f us", prev[1]);
    CHECK(strstr(msg, "posting an arrival") != NULL && strstr(msg, "head: staged") != NULL);
}

static inf_model *load(const char *path, int n_gpu_layers) {
    inf_model_params mp = inf_model_default_params();
    mp.n_threads = 4;
    mp.gpu_enabled = n_gpu_layers != 0;
    mp.n_gpu_layers = n_gpu_layers;
    inf_model *m = NULL;
    if (inf_model_load(path, &mp, &m) != INF_OK) fprintf(stderr, "load %s: %s\n", path, inf_last_error());
    return m;
}

// The CPU's and the GPU's (all layers) model of models/synthetic/<file>; a failed load fails the test.
static void load_pair(const char *dir, const char *file, inf_model **cpu, inf_model **gpu) {
    char path[1024];
    if (file[0] == '/') snprintf(path, sizeof path, "%s", file); // a model the test wrote
    else snprintf(path, sizeof path, "%s/models/synthetic/%s", dir, file);
    *cpu = load(path, 0), *gpu = load(path, 999);
    CHECK(*cpu && *gpu);
}

static inf_session *session(inf_model *m, int n_ctx, int n_batch, int n_seq) {
    inf_session_params sp = {.n_ctx = n_ctx, .n_batch = n_batch, .n_seq_max = n_seq, .n_threads = 4};
    inf_session *s = NULL;
    if (inf_session_init(m, &sp, &s) != INF_OK) fprintf(stderr, "session: %s\n", inf_last_error());
    return s;
}

// Deterministic token ids in [3, n_vocab) (not BOS/EOS/UNK), after a BOS.
static void make_tokens(inf_token *t, int n, int n_vocab, uint32_t seed) {
    t[0] = 1;
    for (int i = 1; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        t[i] = 3 + (inf_token)((seed >> 8) % (uint32_t)(n_vocab - 3));
    }
}

// Runs toks[0..n) through s as sequence 0 in batches of n_batch, keeping the logits of the positions where
// keep[i] (NULL: all) into out (rows in position order). Then greedy-free decode steps: steps more tokens
// from extra[], one per step, each row appended. Returns rows written, -1 on failure.
static int run_logits(inf_session *s, const inf_token *toks, int n, int n_batch, const int8_t *keep,
                      const inf_token *extra, int steps, int n_vocab, float *out) {
    int rows = 0;
    int32_t pos[512], seq[512] = {0};
    int8_t want[512];
    for (int b0 = 0; b0 < n; b0 += n_batch) {
        int nb = n - b0 < n_batch ? n - b0 : n_batch;
        for (int i = 0; i < nb; i++) {
            pos[i] = b0 + i;
            want[i] = keep ? keep[b0 + i] : 1;
        }
        inf_batch b = {.n_tokens = nb, .tokens = toks + b0, .pos = pos, .seq_id = seq, .want_logits = want};
        if (inf_session_decode(s, &b) != INF_OK) {
            fprintf(stderr, "decode: %s\n", inf_last_error());
            return -1;
        }
        for (int i = 0; i < nb; i++)
            if (want[i]) memcpy(out + (size_t)rows++ * n_vocab, inf_session_logits(s, i), sizeof(float) * n_vocab);
    }
    for (int k = 0; k < steps; k++) {
        int32_t p = n + k, sq = 0;
        inf_batch b = {.n_tokens = 1, .tokens = &extra[k], .pos = &p, .seq_id = &sq};
        if (inf_session_decode(s, &b) != INF_OK) {
            fprintf(stderr, "decode step: %s\n", inf_last_error());
            return -1;
        }
        memcpy(out + (size_t)rows++ * n_vocab, inf_session_logits(s, -1), sizeof(float) * n_vocab);
    }
    return rows;
}

// Frees a CPU and a GPU session and their models (any may be NULL).
static void release(inf_session *sc, inf_session *sg, inf_model *cpu, inf_model *gpu) {
    inf_session_free(sc);
    inf_session_free(sg);
    inf_model_free(cpu);
    inf_model_free(gpu);
}

static double nmse(const float *a, const float *ref, size_t n) {
    double mean = 0, num = 0, den = 0;
    for (size_t i = 0; i < n; i++) mean += ref[i];
    mean /= (double)n;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - ref[i], c = ref[i] - mean;
        if (!isfinite(a[i])) return INFINITY;
        num += d * d;
        den += c * c;
    }
    return den > 0 ? num / den : num;
}

// CPU vs GPU on one micro model: a 120-token prompt, then 16 decode steps across the 128 cached positions where
// the persistent kernel's session moves to its LONG form (its other graph; up to INFERNO_CUDA_PD_TC_FUSE
// positions, 384 by default, each block's head attention on tensor cores, past them the attention by (KV head,
// key split)).
static void check_cross(const char *dir, const type_case *tc) {
    inf_model *cpu, *gpu;
    load_pair(dir, tc->file, &cpu, &gpu);
    if (!cpu || !gpu) goto out;
    inf_model_info info;
    inf_model_get_info(gpu, &info);
    enum { N = 120, STEPS = 16 };
    inf_token toks[N + STEPS];
    make_tokens(toks, N + STEPS, info.n_vocab, 5);
    size_t cells = (size_t)(N + STEPS) * (size_t)info.n_vocab;
    float *lc = malloc(cells * sizeof(float)), *lg = malloc(cells * sizeof(float));
    for (size_t i = 0; i < cells; i++) lg[i] = NAN;
    inf_session *sc = session(cpu, 256, 128, 1), *sg = session(gpu, 256, 128, 1);
    CHECK(sc && sg && lc && lg);
    if (sc && sg && lc && lg) {
        int rc = run_logits(sc, toks, N, 128, NULL, toks + N, STEPS, info.n_vocab, lc);
        int rg = run_logits(sg, toks, N, 128, NULL, toks + N, STEPS, info.n_vocab, lg);
        CHECK_EQ_INT(rc, N + STEPS);
        CHECK_EQ_INT(rg, N + STEPS);
        if (rc == N + STEPS && rg == N + STEPS) {
            // Steps at positions 120..127 (short form) and 128..135 (long form).
            const size_t half = (size_t)(STEPS / 2) * info.n_vocab;
            double e_short = nmse(lg + (size_t)N * info.n_vocab, lc + (size_t)N * info.n_vocab, half);
            double e_long = nmse(lg + (size_t)N * info.n_vocab + half, lc + (size_t)N * info.n_vocab + half, half);
            printf("%-22s decode across 128 positions: nmse %.3e before, %.3e after (bound %.0e)\n", tc->file,
                   e_short, e_long, tc->bound);
            CHECK_MSG(e_short <= tc->bound && e_long <= tc->bound, "%s: decode across 128 positions nmse %.3e / %.3e",
                      tc->file, e_short, e_long);
        }
    }
    inf_session_free(sc);
    inf_session_free(sg);
    free(lc);
    free(lg);
out:
    inf_model_free(cpu);
    inf_model_free(gpu);
}

// CPU vs GPU (all layers) on one micro model: a 40-token batch and 8 decode steps.
static void check_type(const char *dir, const type_case *tc) {
    inf_model *cpu, *gpu;
    load_pair(dir, tc->file, &cpu, &gpu);
    if (!cpu || !gpu) goto out;
    inf_model_info info;
    inf_model_get_info(gpu, &info);
    CHECK_EQ_INT(info.n_gpu_layers, info.n_layer);
    enum { N = 40, STEPS = 8 };
    inf_token toks[N + STEPS];
    make_tokens(toks, N + STEPS, info.n_vocab, 7);
    size_t cells = (size_t)(N + STEPS) * (size_t)info.n_vocab;
    float *lc = malloc(cells * sizeof(float)), *lg = malloc(cells * sizeof(float)),
          *ls = malloc(cells * sizeof(float));
    for (size_t i = 0; i < cells; i++) lg[i] = ls[i] = NAN;
    inf_session *sc = session(cpu, 256, 64, 1), *sg = session(gpu, 256, 64, 1), *ss = session(gpu, 256, 10, 1);
    CHECK(sc && sg && ss);
    if (sc && sg && ss) {
        int rc = run_logits(sc, toks, N, 64, NULL, toks + N, STEPS, info.n_vocab, lc);
        int rg = run_logits(sg, toks, N, 64, NULL, toks + N, STEPS, info.n_vocab, lg);
        int rs = run_logits(ss, toks, N, 10, NULL, NULL, 0, info.n_vocab, ls);
        CHECK_EQ_INT(rc, N + STEPS);
        CHECK_EQ_INT(rg, N + STEPS);
        CHECK_EQ_INT(rs, N);
        if (rc == N + STEPS && rg == N + STEPS && rs == N) {
            double e_batch = nmse(lg, lc, (size_t)N * info.n_vocab);
            double e_small = nmse(ls, lc, (size_t)N * info.n_vocab);
            double e_step = nmse(lg + (size_t)N * info.n_vocab, lc + (size_t)N * info.n_vocab,
                                 (size_t)STEPS * info.n_vocab);
            printf("%-22s nmse batch %.3e, batches of 10 %.3e, decode steps %.3e (bound %.0e)\n", tc->file, e_batch,
                   e_small, e_step, tc->bound);
            CHECK_MSG(e_batch <= tc->bound, "%s: batch logits nmse %.3e > %.0e", tc->file, e_batch, tc->bound);
            CHECK_MSG(e_small <= tc->bound, "%s: batches-of-10 logits nmse %.3e > %.0e", tc->file, e_small, tc->bound);
            CHECK_MSG(e_step <= tc->bound, "%s: decode logits nmse %.3e > %.0e", tc->file, e_step, tc->bound);
        }
    }
    inf_session_free(sc);
    inf_session_free(sg);
    inf_session_free(ss);
    free(lc);
    free(lg);
    free(ls);
out:
    inf_model_free(cpu);
    inf_model_free(gpu);
}

// Greedy continuation of llama.cpp's runs on stories260K, token for token (margins >= 0.13).
static void check_greedy(const char *dir, int n_gpu_layers) {
    char path[1024];
    snprintf(path, sizeof path, "%s/golden/stories260K.json", dir);
    json_object *root = json_object_from_file(path);
    CHECK(root != NULL);
    if (!root) return;
    snprintf(path, sizeof path, "%s/models/stories260K.gguf", dir);
    inf_model *m = load(path, n_gpu_layers);
    CHECK(m != NULL);
    json_object *greedy = NULL, *runs = NULL;
    json_object_object_get_ex(root, "greedy", &greedy);
    json_object_object_get_ex(greedy, "runs", &runs);
    CHECK(runs != NULL);
    for (size_t r = 0; m && runs && r < json_object_array_length(runs); r++) {
        json_object *run = json_object_array_get_idx(runs, r), *pt = NULL, *gt = NULL;
        json_object_object_get_ex(run, "prompt_tokens", &pt);
        json_object_object_get_ex(run, "generated_tokens", &gt);
        int np = (int)json_object_array_length(pt), ng = (int)json_object_array_length(gt);
        inf_token toks[256];
        for (int i = 0; i < np && i < 200; i++) toks[i] = json_object_get_int(json_object_array_get_idx(pt, i));
        inf_session *s = session(m, 256, 64, 1);
        CHECK(s != NULL);
        if (!s) continue;
        int32_t pos[200], seq[200] = {0};
        for (int i = 0; i < np; i++) pos[i] = i;
        inf_batch b = {.n_tokens = np, .tokens = toks, .pos = pos, .seq_id = seq};
        bool ok = inf_session_decode(s, &b) == INF_OK;
        int same = 0;
        for (int k = 0; ok && k < ng; k++) {
            const float *lg = inf_session_logits(s, -1);
            inf_token best = 0;
            for (int v = 1; v < 512; v++)
                if (lg[v] > lg[best]) best = v;
            inf_token want = json_object_get_int(json_object_array_get_idx(gt, k));
            same += best == want;
            if (best != want) break;
            int32_t p = np + k, sq = 0;
            inf_batch st = {.n_tokens = 1, .tokens = &best, .pos = &p, .seq_id = &sq};
            ok = inf_session_decode(s, &st) == INF_OK;
        }
        CHECK(ok);
        printf("stories260K ngl %3d   greedy run %zu: %d/%d tokens equal to llama.cpp\n", n_gpu_layers, r, same, ng);
        CHECK_EQ_INT(same, ng);
        inf_session_free(s);
    }
    inf_model_free(m);
    json_object_put(root);
}

// Partial offload (first layers on the CPU) against full offload, on a micro model.
static void check_partial(const char *dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/models/synthetic/micro-Q8_0.gguf", dir);
    inf_model *full = load(path, 999), *part = load(path, 2);
    CHECK(full && part);
    if (!full || !part) goto out;
    inf_model_info info;
    inf_model_get_info(part, &info);
    CHECK_EQ_INT(info.n_gpu_layers, 2);
    enum { N = 32, STEPS = 4 };
    inf_token toks[N + STEPS];
    make_tokens(toks, N + STEPS, info.n_vocab, 11);
    size_t cells = (size_t)(N + STEPS) * (size_t)info.n_vocab;
    float *lf = malloc(cells * sizeof(float)), *lp = malloc(cells * sizeof(float));
    inf_session *sf = session(full, 128, 16, 1), *sp = session(part, 128, 16, 1);
    if (sf && sp) {
        int rf = run_logits(sf, toks, N, 16, NULL, toks + N, STEPS, info.n_vocab, lf);
        int rp = run_logits(sp, toks, N, 16, NULL, toks + N, STEPS, info.n_vocab, lp);
        CHECK(rf == N + STEPS && rp == N + STEPS);
        double e = nmse(lp, lf, cells);
        printf("partial offload 2/4 vs full offload (micro-Q8_0): nmse %.3e (bound 4e-4)\n", e);
        CHECK(e <= 4e-4);
    } else {
        CHECK(false);
    }
    inf_session_free(sf);
    inf_session_free(sp);
    free(lf);
    free(lp);
out:
    inf_model_free(full);
    inf_model_free(part);
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ')) n--; // a log line's trailing newline
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

// check_type with INFERNO_CUDA_PROFILE=level, the persistent kernel's report (logged when a session ends)
// captured into profile_line.
static void run_profiled(void (*check)(const char *, const type_case *), const char *dir, const type_case *tc,
                         const char *level) {
    setenv("INFERNO_CUDA_PROFILE", level, 1);
    profile_line[0] = 0;
    gemm_products = gemm_sides = 0;
    attention_kind[0] = 0;
    inf_log_set_level(INF_LOG_INFO);
    inf_log_set_callback(capture_profile, NULL);
    check(dir, tc);
    inf_log_set_callback(NULL, NULL);
    inf_log_set_level(INF_LOG_WARN);
    unsetenv("INFERNO_CUDA_PROFILE");
}

static void check_type_profiled(const char *dir, const type_case *tc, const char *level) {
    run_profiled(check_type, dir, tc, level);
}

// A 1,600-token prompt (4 batches of 512 with the last one short) in a context of 2,048 against the CPU:
// logits of every 100th position and of the last one.
static void check_long(const char *dir, const type_case *tc) {
    inf_model *cpu, *gpu;
    load_pair(dir, tc->file, &cpu, &gpu);
    // A 1,592-token prompt, then 8 decode steps over the long cache (the persistent kernel's most key splits).
    enum { N = 1600, STEPS = 8, P = N - STEPS };
    static inf_token toks[N];
    static int8_t keep[P];
    make_tokens(toks, N, 512, 3);
    int n_keep = 0;
    for (int i = 0; i < P; i++) n_keep += keep[i] = (i % 100 == 99) || i == P - 1;
    const int rows = n_keep + STEPS;
    float *lc = malloc((size_t)rows * 512 * sizeof(float)), *lg = malloc((size_t)rows * 512 * sizeof(float));
    inf_session *sc = cpu ? session(cpu, 2048, 512, 1) : NULL, *sg = gpu ? session(gpu, 2048, 512, 1) : NULL;
    if (sc && sg) {
        int rc = run_logits(sc, toks, P, 512, keep, toks + P, STEPS, 512, lc);
        int rg = run_logits(sg, toks, P, 512, keep, toks + P, STEPS, 512, lg);
        CHECK(rc == rows && rg == rows);
        double e_all = nmse(lg, lc, (size_t)rows * 512);
        double e_prompt = nmse(lg + (size_t)(n_keep - 1) * 512, lc + (size_t)(n_keep - 1) * 512, 512);
        double e_steps = nmse(lg + (size_t)n_keep * 512, lc + (size_t)n_keep * 512, (size_t)STEPS * 512);
        printf("long prompt %d tokens + %d steps (%s, n_ctx 2048): nmse %.3e, last prompt position %.3e, "
               "steps %.3e (bound %.0e)\n", P, STEPS, tc->file, e_all, e_prompt, e_steps, tc->bound);
        CHECK(e_all <= tc->bound && e_prompt <= tc->bound && e_steps <= tc->bound);
    } else {
        CHECK(false);
    }
    inf_session_free(sc);
    inf_session_free(sg);
    free(lc);
    free(lg);
    inf_model_free(cpu);
    inf_model_free(gpu);
}

// Head size 128 (Llama 3 8B, Mistral 7B): a Q8_0 model of the synth shape micro-hd128 (GQA 4/1), written to a
// temporary file, over the long prompt: the long form built for head size 128 (its decode steps must take it,
// the attention on tensor cores by (KV head, key split), not fused with wo by default; again with the timeline,
// whose kernel is built for every type), fused with wo up to any length, and on CUDA cores
// (INFERNO_CUDA_PD_GQA=0).
static void check_hd128(const char *dir) {
    char vocab[1024], path[1024];
    snprintf(vocab, sizeof vocab, "%s/models/stories260K.gguf", dir);
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/inferno-test-cuda-hd128-%ld.gguf", tmp && tmp[0] == '/' ? tmp : "/tmp",
             (long)getpid());
    if (inf_synth_model("micro-hd128", vocab, path, "Q8_0", 3) != INF_OK) {
        CHECK_MSG(false, "synth micro-hd128: %s", inf_last_error());
        return;
    }
    const type_case tc = {path, 2e-3};
    printf("head size 128:\n");
    check_long(dir, &tc);
    printf("head size 128, with the timeline:\n");
    run_profiled(check_long, dir, &tc, "4");
    check_timeline(profile_line);
    long n_long = -1, n_steps = -1;
    CHECK_MSG(long_form_steps(profile_line, &n_long, &n_steps) && n_long > 0,
              "head size 128: decode steps not in the long form: '%.900s'", profile_line);
    CHECK_MSG(strstr(profile_line, "past 128 positions the attention on tensor cores a block per (KV head, key split), "
                                   "head size 128 a pair of warps a tile, wo split-K a head;") != NULL,
              "head size 128: the long form's attention not on tensor cores, or fused: '%.900s'", profile_line);
    setenv("INFERNO_CUDA_PD_TC_FUSE", "100000", 1);
    printf("head size 128 with INFERNO_CUDA_PD_TC_FUSE=100000:\n");
    check_long(dir, &tc);
    unsetenv("INFERNO_CUDA_PD_TC_FUSE");
    setenv("INFERNO_CUDA_PD_GQA", "0", 1);
    printf("head size 128 with INFERNO_CUDA_PD_GQA=0:\n");
    check_long(dir, &tc);
    unsetenv("INFERNO_CUDA_PD_GQA");
    remove(path);
}

// The GEMM path with the model's F16 weight copies (made at the first large batch) against the per-batch
// dequantization into scratch (INFERNO_CUDA_F16_CACHE=0): the same kernel makes both, so the logits of a
// 40-token batch must be bit-identical.
static void check_f16_cache(const char *dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/models/synthetic/micro-Q4_K_M-mix.gguf", dir);
    enum { N = 40 };
    inf_token toks[N];
    make_tokens(toks, N, 512, 11);
    static float out[2][N * 512];
    int rows[2] = {-1, -1};
    for (int k = 0; k < 2; k++) {
        if (k == 0) setenv("INFERNO_CUDA_F16_CACHE", "0", 1);
        inf_model *gpu = load(path, 999);
        inf_session *sg = gpu ? session(gpu, 128, 64, 1) : NULL;
        // Two batches: the first makes the copies (or declines), the second reads them.
        if (sg) rows[k] = run_logits(sg, toks, N, 64, NULL, NULL, 0, 512, out[k]);
        if (sg) inf_session_seq_clear(sg, 0);
        if (sg) rows[k] = run_logits(sg, toks, N, 64, NULL, NULL, 0, 512, out[k]);
        inf_session_free(sg);
        inf_model_free(gpu);
        unsetenv("INFERNO_CUDA_F16_CACHE");
    }
    CHECK_EQ_INT(rows[0], N);
    CHECK_EQ_INT(rows[1], N);
    int diff = 0;
    for (int i = 0; i < N * 512; i++) diff += memcmp(&out[0][i], &out[1][i], sizeof(float)) != 0;
    printf("F16 weight copies vs per-batch dequantization (micro-Q4_K_M-mix, 40-token batch): %d of %d logits "
           "differ\n", diff, N * 512);
    CHECK_EQ_INT(diff, 0);
}

// Two sequences interleaved in one batch, then one decode step each in one batch: GPU against CPU.
static void check_two_sequences(const char *dir) {
    inf_model *cpu, *gpu;
    load_pair(dir, "micro-Q4_K_M.gguf", &cpu, &gpu);
    inf_session *sc = cpu ? session(cpu, 128, 32, 2) : NULL, *sg = gpu ? session(gpu, 128, 32, 2) : NULL;
    float lc[4][512], lg[4][512];
    if (sc && sg) {
        inf_token a[10], bt[10];
        make_tokens(a, 10, 512, 21);
        make_tokens(bt, 10, 512, 22);
        inf_token toks[18];
        int32_t pos[18], seq[18];
        int8_t want[18] = {0};
        for (int i = 0; i < 9; i++) {
            toks[2 * i] = a[i], pos[2 * i] = i, seq[2 * i] = 0;
            toks[2 * i + 1] = bt[i], pos[2 * i + 1] = i, seq[2 * i + 1] = 1;
        }
        want[16] = want[17] = 1;
        inf_batch b = {.n_tokens = 18, .tokens = toks, .pos = pos, .seq_id = seq, .want_logits = want};
        inf_token t2[2] = {a[9], bt[9]};
        int32_t p2[2] = {9, 9}, s2[2] = {0, 1};
        inf_batch b2 = {.n_tokens = 2, .tokens = t2, .pos = p2, .seq_id = s2};
        int8_t w2[2] = {1, 1};
        b2.want_logits = w2;
        inf_session *ss[2] = {sc, sg};
        float(*out[2])[512] = {lc, lg};
        for (int k = 0; k < 2; k++) {
            CHECK(inf_session_decode(ss[k], &b) == INF_OK);
            memcpy(out[k][0], inf_session_logits(ss[k], 16), sizeof lc[0]);
            memcpy(out[k][1], inf_session_logits(ss[k], 17), sizeof lc[0]);
            CHECK(inf_session_decode(ss[k], &b2) == INF_OK);
            memcpy(out[k][2], inf_session_logits(ss[k], 0), sizeof lc[0]);
            memcpy(out[k][3], inf_session_logits(ss[k], 1), sizeof lc[0]);
        }
        double e = nmse(&lg[0][0], &lc[0][0], 4 * 512);
        printf("two sequences in one batch (micro-Q4_K_M): nmse %.3e (bound 3e-3)\n", e);
        CHECK(e <= 3e-3);
    } else {
        CHECK(false);
    }
    release(sc, sg, cpu, gpu);
}

// Parallel decoding, as a server steps its running requests: three sequences with prompts of 5, 9 and 2
// tokens, then 14 steps of one token each, every row's logits kept: 3 sequences (6 steps), 2 (seq 1 paused,
// 3 steps), 3 again (5 steps). On the GPU these steps of several tokens replay a CUDA graph per shape from
// its second step on: against the CPU, and bit for bit against the same steps launched directly
// (INFERNO_CUDA_GRAPH=0), which also shows the replays read each step's positions and cells, not the
// captured ones. Q4_K_M-mix: Q4_K and Q6_K rows. With gemm_min 2 (INFERNO_CUDA_GEMM_MIN=2) the same steps take the
// GEMM path (cuBLAS over the F16 weight copies, the tensor-core attention over runs of one token).
enum { PAR_ROWS = 3 * 6 + 2 * 3 + 3 * 5 };

static bool run_parallel(inf_session *s, float (*out)[512]) {
    static const int plen[3] = {5, 9, 2};
    inf_token toks[3][32];
    for (int q = 0; q < 3; q++) make_tokens(toks[q], 32, 512, 40u + (uint32_t)q);
    int32_t pos[16], seq[16];
    int len[3];
    for (int q = 0; q < 3; q++) {
        for (int i = 0; i < plen[q]; i++) pos[i] = i, seq[i] = q;
        inf_batch b = {.n_tokens = plen[q], .tokens = toks[q], .pos = pos, .seq_id = seq};
        if (inf_session_decode(s, &b) != INF_OK) return false;
        len[q] = plen[q];
    }
    int rows = 0;
    for (int k = 0; k < 14; k++) {
        inf_token t[3];
        int8_t want[3] = {1, 1, 1};
        int n = 0;
        for (int q = 0; q < 3; q++) {
            if (q == 1 && k >= 6 && k < 9) continue;
            t[n] = toks[q][len[q]], pos[n] = len[q], seq[n] = q, len[q]++, n++;
        }
        inf_batch b = {.n_tokens = n, .tokens = t, .pos = pos, .seq_id = seq, .want_logits = want};
        if (inf_session_decode(s, &b) != INF_OK) {
            fprintf(stderr, "parallel step %d: %s\n", k, inf_last_error());
            return false;
        }
        for (int i = 0; i < n; i++) memcpy(out[rows++], inf_session_logits(s, i), sizeof out[0]);
    }
    return rows == PAR_ROWS;
}

static void check_parallel(const char *dir, const char *path) {
    static float lc[PAR_ROWS][512], lg[2][PAR_ROWS][512];
    inf_model *cpu, *gpu;
    load_pair(dir, "micro-Q4_K_M-mix.gguf", &cpu, &gpu);
    inf_session *sc = cpu ? session(cpu, 128, 16, 3) : NULL;
    CHECK(sc && run_parallel(sc, lc));
    for (int k = 0; k < 2 && gpu; k++) {
        if (k == 1) setenv("INFERNO_CUDA_GRAPH", "0", 1);
        mg_captured = mg_replayed = 0;
        inf_log_set_level(INF_LOG_INFO);
        inf_log_set_callback(capture_profile, NULL);
        inf_session *sg = session(gpu, 128, 16, 3);
        CHECK(sg && run_parallel(sg, lg[k]));
        inf_session_free(sg);
        inf_log_set_callback(NULL, NULL);
        inf_log_set_level(INF_LOG_WARN);
        unsetenv("INFERNO_CUDA_GRAPH");
        if (k == 0) {
            // Shapes (3, 3, several), (2, 2, several): captured at their second step, replayed from then on.
            printf("parallel decoding (micro-Q4_K_M-mix, %s): %ld steps replayed from %ld graphs\n", path,
                   mg_replayed, mg_captured);
            CHECK_EQ_INT(mg_captured, 2);
            CHECK_EQ_INT(mg_replayed, 14 - 2);
        } else {
            CHECK_EQ_INT(mg_captured, 0);
        }
    }
    double e = nmse(&lg[0][0][0], &lc[0][0], (size_t)PAR_ROWS * 512);
    int diff = 0;
    for (int r = 0; r < PAR_ROWS; r++) diff += memcmp(lg[0][r], lg[1][r], sizeof lg[0][r]) != 0;
    printf("parallel decoding against the CPU: nmse %.3e (bound 3e-3); graph against direct launches: %d of %d "
           "rows differ\n", e, diff, PAR_ROWS);
    CHECK(e <= 3e-3);
    CHECK_EQ_INT(diff, 0);
    inf_session_free(sc);
    inf_model_free(cpu);
    inf_model_free(gpu);
}

// Batches of 8 to 15 tokens take the GEMM path once the model's F16 weight copies exist: a 20-token batch (which
// makes them), then one of 8 (micro-Q4_K_M-mix, one sequence). With the profile on, the GEMM products a session
// made (INFERNO_CUDA_PROFILE=1): the 8-token batch doubles them, unless INFERNO_CUDA_GEMM_MIN=16 sets the
// threshold by hand (then the matrix-vector kernels take it). Every row's logits against the CPU.
static void check_gemm_from_8(const char *dir) {
    static float lc[28][512], lg[3][28][512];
    inf_model *cpu, *gpu;
    load_pair(dir, "micro-Q4_K_M-mix.gguf", &cpu, &gpu);
    inf_token toks[28];
    make_tokens(toks, 28, 512, 77);
    inf_session *sc = cpu ? session(cpu, 64, 20, 1) : NULL;
    CHECK(sc && run_logits(sc, toks, 28, 20, NULL, NULL, 0, 512, &lc[0][0]) == 28);
    long prod[3] = {0, 0, 0};
    for (int k = 0; k < 3 && gpu; k++) {
        if (k == 2) setenv("INFERNO_CUDA_GEMM_MIN", "16", 1);
        setenv("INFERNO_CUDA_PROFILE", "1", 1);
        gemm_products = gemm_sides = 0;
        inf_log_set_level(INF_LOG_INFO);
        inf_log_set_callback(capture_profile, NULL);
        inf_session *sg = session(gpu, 64, 20, 1);
        const int n = k == 0 ? 20 : 28;
        CHECK(sg && run_logits(sg, toks, n, 20, NULL, NULL, 0, 512, &lg[k][0][0]) == n);
        inf_session_free(sg);
        inf_log_set_callback(NULL, NULL);
        inf_log_set_level(INF_LOG_WARN);
        unsetenv("INFERNO_CUDA_PROFILE");
        unsetenv("INFERNO_CUDA_GEMM_MIN");
        prod[k] = gemm_products;
    }
    const double e1 = nmse(&lg[1][0][0], &lc[0][0], 28 * 512), e2 = nmse(&lg[2][0][0], &lc[0][0], 28 * 512);
    printf("a batch of 8 after the F16 copies (micro-Q4_K_M-mix): GEMM products %ld for 20 tokens, %ld for 20 + 8, "
           "%ld with INFERNO_CUDA_GEMM_MIN=16; nmse %.3e and %.3e (bound 3e-3)\n", prod[0], prod[1], prod[2], e1, e2);
    CHECK(prod[0] > 0);
    CHECK_EQ_INT(prod[1], 2 * prod[0]);
    CHECK_EQ_INT(prod[2], prod[0]);
    CHECK(e1 <= 3e-3 && e2 <= 3e-3);
    inf_session_free(sc);
    inf_model_free(cpu);
    inf_model_free(gpu);
}

// Batches of several sequences through the GEMM path's attention, where the tensor-core kernel takes each
// sequence's run of consecutive tokens in blocks of at most 64: runs of 64, 80 (64 + 16) and 6 tokens of three
// sequences, then a batch that continues them in runs of 5, 5, 5, 5 and 1 (sequences 0 and 1 twice each, the
// second run attending to the first one's keys). Every row's logits against the CPU (micro-F16: tight bound).
static void check_runs(const char *dir) {
    inf_model *cpu, *gpu;
    load_pair(dir, "micro-F16.gguf", &cpu, &gpu);
    inf_session *sc = cpu ? session(cpu, 256, 160, 3) : NULL, *sg = gpu ? session(gpu, 256, 160, 3) : NULL;
    enum { N1 = 64 + 80 + 6, N2 = 21, V = 512 };
    static float lc[N1 + N2][V], lg[N1 + N2][V];
    if (sc && sg) {
        static const int len1[3] = {64, 80, 6};
        static const int seq2[5] = {0, 1, 0, 1, 2}, len2[5] = {5, 5, 5, 5, 1};
        inf_token src[3][96], toks[N1];
        int32_t pos[N1], seq[N1], next[3] = {0, 0, 0};
        int8_t want[N1];
        for (int k = 0; k < 3; k++) make_tokens(src[k], 96, V, 31 + (uint32_t)k);
        int n = 0;
        for (int k = 0; k < 3; k++)
            for (int i = 0; i < len1[k]; i++, n++) toks[n] = src[k][next[k]], pos[n] = next[k]++, seq[n] = k, want[n] = 1;
        inf_batch b1 = {.n_tokens = N1, .tokens = toks, .pos = pos, .seq_id = seq, .want_logits = want};
        inf_token t2[N2];
        int32_t p2[N2], s2[N2];
        int8_t w2[N2];
        n = 0;
        for (int r = 0; r < 5; r++)
            for (int i = 0; i < len2[r]; i++, n++) {
                const int k = seq2[r];
                t2[n] = src[k][next[k]], p2[n] = next[k]++, s2[n] = k, w2[n] = 1;
            }
        inf_batch b2 = {.n_tokens = N2, .tokens = t2, .pos = p2, .seq_id = s2, .want_logits = w2};
        inf_session *ss[2] = {sc, sg};
        float(*out[2])[V] = {lc, lg};
        for (int k = 0; k < 2; k++) {
            CHECK(inf_session_decode(ss[k], &b1) == INF_OK);
            for (int i = 0; i < N1; i++) memcpy(out[k][i], inf_session_logits(ss[k], i), sizeof lc[0]);
            CHECK(inf_session_decode(ss[k], &b2) == INF_OK);
            for (int i = 0; i < N2; i++) memcpy(out[k][N1 + i], inf_session_logits(ss[k], i), sizeof lc[0]);
        }
        double e1 = nmse(&lg[0][0], &lc[0][0], (size_t)N1 * V), e2 = nmse(&lg[N1][0], &lc[N1][0], (size_t)N2 * V);
        printf("three sequences in runs (micro-F16): nmse %.3e (runs of 64, 80, 6), %.3e (runs of 5, 5, 5, 5, 1) "
               "(bound 3e-6)\n", e1, e2);
        CHECK(e1 <= 3e-6 && e2 <= 3e-6);
    } else {
        CHECK(false);
    }
    release(sc, sg, cpu, gpu);
}

// A batch of 65,536 tokens (the most a session takes), two sequences: 65,000 tokens of sequence 0, then 536
// of sequence 1, whose tokens lie past index 65,535 of the batch (a grid with the batch's tokens in y would
// exceed the limit there). Sequence 1's last 8 rows against the CPU running it alone. row0: sequence 0's last
// row, written by the first run (saved false) and compared by a later one with another attention kernel.
static void check_huge_batch(const char *dir, float *row0, bool saved) {
    enum { N = 65536, N1 = 536, N0 = N - N1, V = 512, K = 8 };
    inf_model *cpu, *gpu;
    load_pair(dir, "micro-F16.gguf", &cpu, &gpu);
    inf_session *sc = cpu ? session(cpu, 1024, N1, 1) : NULL, *sg = gpu ? session(gpu, N, N, 2) : NULL;
    static inf_token toks[N];
    static int32_t pos[N], seq[N];
    static int8_t want[N];
    static float lc[K][V], lg[K][V];
    make_tokens(toks, N0, V, 41);
    make_tokens(toks + N0, N1, V, 43);
    for (int i = 0; i < N; i++) {
        seq[i] = i >= N0;
        pos[i] = i < N0 ? i : i - N0;
        want[i] = i == N0 - 1 || i >= N - K;
    }
    if (sc && sg) {
        inf_batch b1 = {.n_tokens = N1, .tokens = toks + N0, .pos = pos + N0, .seq_id = seq /* zeros */,
                        .want_logits = want + N0};
        CHECK(inf_session_decode(sc, &b1) == INF_OK);
        for (int i = 0; i < K; i++) memcpy(lc[i], inf_session_logits(sc, N1 - K + i), sizeof lc[0]);
        inf_batch b = {.n_tokens = N, .tokens = toks, .pos = pos, .seq_id = seq, .want_logits = want};
        const inf_status st = inf_session_decode(sg, &b);
        CHECK_MSG(st == INF_OK, "a batch of %d tokens: %s", N, inf_last_error());
        if (st == INF_OK) {
            for (int i = 0; i < K; i++) memcpy(lg[i], inf_session_logits(sg, N - K + i), sizeof lg[0]);
            const double e1 = nmse(&lg[0][0], &lc[0][0], (size_t)K * V);
            const double e0 = saved ? nmse(inf_session_logits(sg, N0 - 1), row0, V) : 0.0;
            printf("a batch of %d tokens, two sequences (micro-F16): sequence 1 against the CPU nmse %.3e", N, e1);
            if (saved) printf(", sequence 0's last row against the first run's %.3e", e0);
            printf(" (bound 3e-6)\n");
            CHECK(e1 <= 3e-6 && e0 <= 3e-6);
            if (!saved) memcpy(row0, inf_session_logits(sg, N0 - 1), sizeof lg[0]);
        }
    } else {
        CHECK(false);
    }
    release(sc, sg, cpu, gpu);
}

int main(void) {
#ifndef INFERNO_CUDA
    TEST_SKIP("this build has no CUDA backend (nvcc was not found at configure time)");
#endif
    const char *dir = test_shared_dir();
    char path[1024];
    snprintf(path, sizeof path, "%s/models/stories260K.gguf", dir);
    inf_log_set_level(INF_LOG_WARN);
    inf_model *probe = load(path, 999);
    if (!probe) TEST_SKIP("%s not loadable", path);
    inf_model_info info;
    inf_model_get_info(probe, &info);
    if (info.n_gpu_layers == 0) {
        printf("SKIP: no usable CUDA device: %s\n", info.gpu);
        inf_model_free(probe);
        return 77;
    }
    printf("device: %s\n", info.gpu);
    inf_model_free(probe);

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_type(dir, &cases[i]);
    // The opt-in decode fusions (norms and attention combine in the last block of the kernel before them).
    setenv("INFERNO_CUDA_FUSE", "1", 1);
    printf("with INFERNO_CUDA_FUSE=1:\n");
    check_type(dir, &cases[10]); // micro-Q4_K_M
    check_type(dir, &cases[1]);  // micro-F16
    unsetenv("INFERNO_CUDA_FUSE");
    // Single-token steps through the per-op kernels instead of the persistent one (the default).
    setenv("INFERNO_CUDA_PERSIST", "0", 1);
    printf("with INFERNO_CUDA_PERSIST=0:\n");
    check_type(dir, &cases[13]); // micro-Q4_K_M-mix
    check_type(dir, &cases[4]);  // micro-Q4_0
    unsetenv("INFERNO_CUDA_PERSIST");
    // The persistent kernel's per-block timeline: results unchanged with it on, and a well-formed report.
    printf("with INFERNO_CUDA_PROFILE=4:\n");
    check_type_profiled(dir, &cases[13], "4"); // micro-Q4_K_M-mix
    check_timeline(profile_line);
    CHECK_MSG(strstr(profile_line, "wo and down: split-K") != NULL, "split-K not used: '%.300s'", profile_line);
    // The kernel built for the model's two types (its smallest instantiation), and for Q8_0's.
    CHECK_MSG(ends_with(profile_line, "kernel built for: Q4_K Q6_K"), "not the Q4_K/Q6_K kernel: '%.900s'", profile_line);
    check_type_profiled(dir, &cases[3], "4"); // micro-Q8_0
    CHECK_MSG(ends_with(profile_line, "kernel built for: Q8_0"), "not the Q8_0 kernel: '%.900s'", profile_line);
    CHECK_MSG(strstr(profile_line, "L2 prefetch of wo: by the blocks without an attention item") != NULL,
              "Q8_0's wo copy not prefetched: '%.900s'", profile_line);
    CHECK_MSG(strstr(profile_line, "L2 prefetch of the attention's cached K/V by the qkv phase's idle warps and each "
                                   "warp's first gate/up rows at the wo barrier, after the norm weights") != NULL,
              "the default K/V and gate/up prefetches not on: '%.900s'", profile_line);
    check_type_profiled(dir, &cases[13], "4"); // micro-Q4_K_M-mix: its gate/up rows at the barrier's start
    CHECK_MSG(strstr(profile_line, "first gate/up rows at the wo barrier; the gate/up norm weights copied by the qkv "
                                   "phase's idle warps\n") != NULL,
              "Q4_K_M's gate/up rows not prefetched at the barrier's start, or its norm weights not copied early: "
              "'%.900s'", profile_line);
    // Past 128 cached positions (the default, split-K): the attention on tensor cores a block per (KV head, key
    // split), each wo block merging its head's splits; across the switch; then with the per-head key splits
    // (INFERNO_CUDA_PD_GQA=0); then wo and down by rows after grid barriers (the attention merge by every block).
    CHECK_MSG(strstr(profile_line, "past 128 positions the attention on tensor cores") != NULL,
              "the long form's attention not on tensor cores: '%.900s'", profile_line);
    check_long(dir, &cases[13]); // micro-Q4_K_M-mix
    check_long(dir, &cases[3]);  // micro-Q8_0
    run_profiled(check_cross, dir, &cases[13], "4"); // with the timeline: the steps past 128 took the long form
    check_timeline(profile_line);
    {
        long n_long = -1, n_steps = -1;
        CHECK_MSG(long_form_steps(profile_line, &n_long, &n_steps) && n_long > 0 && n_long < n_steps,
                  "the steps past 128 positions not in the long form: '%.900s'", profile_line);
        printf("decode across 128 positions: %ld of %ld steps in the long form\n", n_long, n_steps);
    }
    check_cross(dir, &cases[1]); // micro-F16
    // The long form's fused attention and wo (one block a head, on tensor cores) up to any length, and off.
    setenv("INFERNO_CUDA_PD_TC_FUSE", "100000", 1);
    printf("with INFERNO_CUDA_PD_TC_FUSE=100000:\n");
    check_long(dir, &cases[13]);
    check_cross(dir, &cases[1]);
    setenv("INFERNO_CUDA_PD_TC_FUSE", "0", 1);
    printf("with INFERNO_CUDA_PD_TC_FUSE=0:\n");
    check_cross(dir, &cases[13]);
    unsetenv("INFERNO_CUDA_PD_TC_FUSE");
    check_hd128(dir);
    setenv("INFERNO_CUDA_PD_GQA", "0", 1);
    printf("with INFERNO_CUDA_PD_GQA=0:\n");
    check_long(dir, &cases[13]);
    check_cross(dir, &cases[3]);
    unsetenv("INFERNO_CUDA_PD_GQA");
    setenv("INFERNO_CUDA_PD_SPLITK", "0", 1);
    printf("with INFERNO_CUDA_PD_SPLITK=0:\n");
    check_type_profiled(dir, &cases[13], "4"); // micro-Q4_K_M-mix
    check_timeline(profile_line);
    CHECK_MSG(strstr(profile_line, "wo and down: by rows") != NULL, "split-K not off: '%.300s'", profile_line);
    check_type(dir, &cases[12]); // micro-Q6_K
    check_long(dir, &cases[13]);
    unsetenv("INFERNO_CUDA_PD_SPLITK");
    // Split-K's L2 prefetches: all off; wo by the blocks without an item and each attention item its own slice;
    // every one (the K/V and gate/up ones, on by default, the latter also after the norm weights' copy), without
    // and with the gate/up norm weights copied by the qkv phase's idle warps (128, on by default).
    static const char *const skpf[] = {"0", "9", "121", "249"}; // 121: every bit but 128; 249: every bit
    for (int k = 0; k < 4; k++) {
        setenv("INFERNO_CUDA_PD_SKPF", skpf[k], 1);
        printf("with INFERNO_CUDA_PD_SKPF=%s:\n", skpf[k]);
        check_type(dir, &cases[13]); // micro-Q4_K_M-mix
        check_type(dir, &cases[3]);  // micro-Q8_0
    }
    unsetenv("INFERNO_CUDA_PD_SKPF");
    // The persistent kernel's opt-in variants of its by-rows form: L2 prefetch by idle warps, per-KV-head
    // counters after qkv.
    setenv("INFERNO_CUDA_PD_SPLITK", "0", 1);
    setenv("INFERNO_CUDA_PD_PREFETCH", "1", 1);
    setenv("INFERNO_CUDA_PD_FLAGS", "1", 1);
    printf("with INFERNO_CUDA_PD_SPLITK=0 INFERNO_CUDA_PD_PREFETCH=1 INFERNO_CUDA_PD_FLAGS=1:\n");
    check_type(dir, &cases[13]); // micro-Q4_K_M-mix
    unsetenv("INFERNO_CUDA_PD_PREFETCH");
    unsetenv("INFERNO_CUDA_PD_FLAGS");
    unsetenv("INFERNO_CUDA_PD_SPLITK");
    // The persistent kernel's opt-in weight ring (sm_90: bulk copies into shared memory; elsewhere the
    // kernel runs without it), over every weight type it reads, the long prompt (the attention merge past
    // 128 positions), then with a 16 KiB ring: many small jobs, wraps, jobs issued within a phase.
    setenv("INFERNO_CUDA_PD_RING", "1", 1);
    printf("with INFERNO_CUDA_PD_RING=1:\n");
    // The first run with the kernel's trace on: its report (logged when the session ends) must show the
    // ring, so that a ring quietly left off fails here.
    check_type_profiled(dir, &cases[13], "3"); // micro-Q4_K_M-mix
    CHECK_MSG(strstr(profile_line, "weight ring") != NULL, "the ring was not used: '%s'", profile_line);
    check_type(dir, &cases[4]);  // micro-Q4_0
    check_type(dir, &cases[3]);  // micro-Q8_0
    check_type(dir, &cases[12]); // micro-Q6_K
    setenv("INFERNO_CUDA_PERSIST", "1", 1); // F16 weights through the kernel; the long prompt is micro-F16
    check_type(dir, &cases[1]);  // micro-F16
    check_long(dir, &cases[1]);
    unsetenv("INFERNO_CUDA_PERSIST");
    setenv("INFERNO_CUDA_PD_RING_KB", "16", 1);
    printf("with INFERNO_CUDA_PD_RING=1 INFERNO_CUDA_PD_RING_KB=16:\n");
    check_type(dir, &cases[13]); // micro-Q4_K_M-mix
    check_type(dir, &cases[3]);  // micro-Q8_0
    unsetenv("INFERNO_CUDA_PD_RING_KB");
    unsetenv("INFERNO_CUDA_PD_RING");
    // F16 weights: the persistent kernel with split-K wo and down over F16 column copies by default (the
    // timeline must say so), by rows, and the per-op kernels.
    printf("micro-F16 with INFERNO_CUDA_PROFILE=4:\n");
    check_type_profiled(dir, &cases[1], "4");
    check_timeline(profile_line);
    CHECK_MSG(strstr(profile_line, "wo and down: split-K") != NULL, "F16 split-K not used: '%.300s'", profile_line);
    CHECK_MSG(ends_with(profile_line, "kernel built for: Q6_K F16"), "not the F16 kernel: '%.900s'", profile_line);
    setenv("INFERNO_CUDA_PD_SPLITK", "0", 1);
    printf("with INFERNO_CUDA_PD_SPLITK=0:\n");
    check_type(dir, &cases[1]); // micro-F16
    unsetenv("INFERNO_CUDA_PD_SPLITK");
    setenv("INFERNO_CUDA_PERSIST", "0", 1);
    printf("with INFERNO_CUDA_PERSIST=0:\n");
    check_type(dir, &cases[1]); // micro-F16
    check_long(dir, &cases[1]);
    unsetenv("INFERNO_CUDA_PERSIST");
    // The GEMM path's q|k|v and gate|up as one product each (the upload and the F16 copies lay their rows
    // out side by side; check_type's 40-token batch takes the path), then as separate products.
    for (int k = 0; k < 2; k++) {
        if (k) setenv("INFERNO_CUDA_GEMM_SIDE", "0", 1);
        printf("with INFERNO_CUDA_PROFILE=1%s:\n", k ? " INFERNO_CUDA_GEMM_SIDE=0" : "");
        const type_case *gc[2] = {&cases[13], &cases[1]}; // micro-Q4_K_M-mix (F16 copies), micro-F16
        for (int i = 0; i < 2; i++) {
            check_type_profiled(dir, gc[i], "1");
            printf("  %s: GEMM products %ld, over side-by-side matrices %ld\n", gc[i]->file, gemm_products,
                   gemm_sides);
            CHECK_MSG(gemm_products > 0, "%s: no GEMM product reported", gc[i]->file);
            // (head size 32, an sm_80 or later card: the tensor-core flash attention)
            CHECK_MSG(strstr(attention_kind, "flash on tensor cores") == attention_kind, "%s: attention '%s'",
                      gc[i]->file, attention_kind);
            // A batch: 4 products a layer (q|k|v, wo, gate|up, down), 2 of them side by side, and the head
            // (< 3 products a side-by-side one); 7 a layer with any pair apart (>= 5 a side-by-side one).
            CHECK_MSG(k ? gemm_sides == 0 : gemm_sides > 0 && gemm_products < 3 * gemm_sides,
                      "%s: %ld of %ld products side by side", gc[i]->file, gemm_sides, gemm_products);
        }
        unsetenv("INFERNO_CUDA_GEMM_SIDE");
    }
    // A 65,536-token batch of two sequences through the tensor-core attention, then through the F32 split kernel.
    static float huge_row0[512];
    check_huge_batch(dir, huge_row0, false);
    // The F32 flash kernel (head sizes the tensor-core one does not take, cards before sm_80) on a batch and
    // on the long prompt.
    setenv("INFERNO_CUDA_FLASH_TC", "0", 1);
    printf("with INFERNO_CUDA_FLASH_TC=0:\n");
    check_type_profiled(dir, &cases[13], "1"); // micro-Q4_K_M-mix
    CHECK_MSG(strstr(attention_kind, "flash (F32;") == attention_kind, "attention '%s'", attention_kind);
    check_long(dir, &cases[1]); // micro-F16
    check_runs(dir);            // (the split kernel for batches of several sequences)
    check_huge_batch(dir, huge_row0, true);
    unsetenv("INFERNO_CUDA_FLASH_TC");
    check_greedy(dir, 999);
    check_greedy(dir, 3);
    check_partial(dir);
    check_two_sequences(dir);
    check_parallel(dir, "matrix-vector path");
    setenv("INFERNO_CUDA_GEMM_MIN", "2", 1);
    check_parallel(dir, "GEMM path");
    unsetenv("INFERNO_CUDA_GEMM_MIN");
    check_gemm_from_8(dir);
    check_runs(dir);
    check_f16_cache(dir);
    check_long(dir, &cases[1]);
    return test_summary();
}
