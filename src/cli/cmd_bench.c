// cmd_bench.c: `inferno bench`: prompt-processing (ppN), generation (tgN) and combined (ppN+tgM) speed tests
// measured as llama.cpp's llama-bench measures them, so the figures compare line for line:
// - each test gets a fresh session (n_ctx = n_prompt + n_gen unless --ctx-size), one untimed warm-up, then
//   r timed repetitions, each on an empty cache;
// - pp: n_prompt token ids drawn at random (BOS first when the model adds one), decoded in batches of -b
//   with logits for the last token only;
// - tg: n_gen single-token decode steps starting from an empty cache, the first token being BOS (the
//   "1-token start") and the rest random;
// - -d N (llama-bench's depth): every test starts with N random tokens already in the cache, decoded untimed
//   before each repetition (and the warm-up); the test then runs from position N ("tg128 @ d4096");
// - tok/s per repetition, then the mean and the sample standard deviation (n - 1) over repetitions.
// Output: a Markdown table (default), a JSON array or CSV, with llama-bench's field names. Every test also
// carries the house fingerprint: for tg, the weight bytes read per second (weights_bytes x tok/s) and its
// share of a measured bandwidth (--bandwidth), and a hash of the last logits (same tokens every repetition,
// so a differing hash flags nondeterminism or a broken kernel).
//
// -np N (llama-batched-bench's parallel sequences): N sequences at once, each with its own random tokens and
// the same depth, prompt and generation lengths; pp decodes the N prompts back to back in batches of -b (a
// batch then spans sequences, as a busy server's does), tg decodes one token of every sequence a step (one
// batch of N tokens). t/s counts every sequence's tokens; the tg GB/s figure counts the weights once a step.
// The test's name gets " xN" ("tg128 x8 @ d512"); JSON and CSV carry n_parallel.
// -ngl N loads the model with N layers on the GPU (CUDA builds; 999 = all), once per -ngl value; the row
// records the layers actually placed (info.n_gpu_layers: 0 when no device was usable) and backend "CUDA".
// Deliberately left out: llama-bench's KV types, split modes, tensor splits, SQL output and ranges in lists
// ("1-8+1"); per-tensor byte counts (the public API gives only weights_bytes, so the tg GB/s figure counts
// token_embd in full although a step reads one row of it).
// Uses only include/inferno.h.
#include "cli.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BENCH_MAX_LIST 64           // values per list flag (-p, -n, -d, -t, -ngl, -pg, -m)
#define BENCH_MAX_REPS 1000
#define BENCH_MAX_TOKENS (1L << 20) // largest -p / -n
#define BENCH_MAX_PARALLEL 256      // largest -np
#define BENCH_SEED 0x5eed1234abcdull

#ifdef INFERNO_GIT_COMMIT
#define BENCH_BUILD_COMMIT INFERNO_GIT_COMMIT
#else
#define BENCH_BUILD_COMMIT "unknown"
#endif

typedef enum { BENCH_OUT_MD, BENCH_OUT_JSON, BENCH_OUT_CSV } bench_output;

#define BENCH_GPU_THREADS 4 // default CPU threads for models with every layer on the GPU

typedef struct {
    int v[BENCH_MAX_LIST];
    int n;
} bench_ints;

typedef struct {
    char *models[BENCH_MAX_LIST]; // malloc'd copies, freed by bench_opts_free
    int n_models;
    bench_ints n_prompt, n_gen, depth, threads, ngl, n_par;
    int pg[BENCH_MAX_LIST][2]; // -pg pairs (n_prompt, n_gen)
    int n_pg;
    long reps, batch, ctx;
    bool ctx_set, batch_set, ngl_set, verbose;
    bool threads_auto; // no -t and no configured count: every core, or BENCH_GPU_THREADS for all-GPU models
    double bandwidth; // GB/s, 0 = not given
    bench_output output;
} bench_opts;

// One finished test: what llama-bench reports, plus the fingerprint.
typedef struct {
    const char *model_filename; // borrowed from bench_opts
    char model[128];            // file base name and dominant type, the table's model column
    char model_type[96];        // "llama 1.10B Q4_K"
    char backend[48];
    char test[48];              // "pp512", "tg128", "pp512+tg128", "tg128 @ d4096", "tg128 x8"
    char test_time[32];         // ISO 8601, UTC
    uint64_t model_size, model_n_params;
    int n_batch, n_threads, n_gpu_layers, n_prompt, n_gen, n_depth, n_par, reps; // n_par: sequences at once
    double *samples_ns; // reps entries
    double avg_ns, stddev_ns, avg_ts, stddev_ts;
    double weights_gbps; // tg only: weight bytes read per second / 1e9; < 0 when not a tg test
    double load_avg;     // 1-minute load average when the test started (-1 if unknown)
    uint64_t logits_hash;
} bench_result;

static void bench_usage(FILE *out) {
    fprintf(out,
            "usage: inferno bench -m FILE[,FILE...] [options]\n\n"
            "Measures prompt processing (ppN) and generation (tgN) speed as llama-bench does: a warm-up, then\n"
            "r repetitions on a fresh cache; reports the mean and standard deviation of tok/s.\n"
            "List flags take comma-separated values and may be repeated; every combination is run.\n\n"
            "  -m, --model FILE[,...]    GGUF models (required)\n"
            "  -p, --n-prompt N[,...]    prompt sizes for pp tests (default 512; 0 = none)\n"
            "  -n, --n-gen N[,...]       generation lengths for tg tests (default 128; 0 = none)\n"
            "  -pg PP,TG                 a combined test: prompt of PP tokens then TG generated (repeatable)\n"
            "  -d, --n-depth N[,...]     tokens already in the cache when each test starts (default 0)\n"
            "  -np, --n-parallel N[,...] sequences decoded at once, each with its own tokens (default 1);\n"
            "                            t/s counts all of them\n"
            "  -r, --repetitions N       timed repetitions per test (default 5)\n"
            "  -t, --threads N[,...]     CPU threads (default: config threads; 0 = all cores, or 4 when\n"
            "                            every layer is on the GPU and neither -t nor the config sets it)\n"
            "  -b, --batch-size N        prompt tokens per forward pass (default: config batch_size, 512)\n"
            "  -ngl, --n-gpu-layers N[,...]  layers on the GPU (default 0 = CPU; 999 = all; CUDA builds)\n"
            "  -c, --ctx-size N          session context (default: n_prompt + n_gen of each test)\n"
            "      --bandwidth GBPS      measured memory read bandwidth; tg rows then show %% of it\n"
            "  -o, --output md|json|csv  output format (default md)\n"
            "  -v, --verbose             load log, system info and every repetition on stderr\n"
            "  -h, --help                this help\n");
}

static void bench_opts_free(bench_opts *o) {
    for (int i = 0; i < o->n_models; i++) free(o->models[i]);
    o->n_models = 0;
}

// Appends the comma-separated integers of s to list, each in [min, max]; errors name the flag.
static bool bench_parse_list(const char *flag, const char *s, long min, long max, bench_ints *list) {
    char item[64];
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len >= sizeof item) {
            fprintf(stderr, "inferno bench: %s: '%.*s' is not an integer\n", flag, (int)len, p);
            return false;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        long v;
        if (!cli_parse_int("bench", flag, item, min, max, &v)) return false;
        if (list->n == BENCH_MAX_LIST) {
            fprintf(stderr, "inferno bench: %s: at most %d values\n", flag, BENCH_MAX_LIST);
            return false;
        }
        list->v[list->n++] = (int)v;
        if (!comma) return true;
        p = comma + 1;
    }
}

static bool bench_parse_models(const char *flag, const char *s, bench_opts *o) {
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0) {
            fprintf(stderr, "inferno bench: %s: empty model path in '%s'\n", flag, s);
            return false;
        }
        if (o->n_models == BENCH_MAX_LIST) {
            fprintf(stderr, "inferno bench: %s: at most %d models\n", flag, BENCH_MAX_LIST);
            return false;
        }
        char *m = malloc(len + 1);
        if (!m) {
            fprintf(stderr, "inferno bench: out of memory\n");
            return false;
        }
        memcpy(m, p, len);
        m[len] = '\0';
        o->models[o->n_models++] = m;
        if (!comma) return true;
        p = comma + 1;
    }
}

static bool bench_parse(int argc, char **argv, inf_config *cfg, bench_opts *o, bool *help) {
    const char *cmd = "bench";
    *help = false;
    o->reps = 5;
    o->batch = inf_config_get_int(cfg, "backend_config.batch_size");
    long cfg_threads = inf_config_get_int(cfg, "backend_config.threads");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
#define VALUE() if (!(v = cli_flag_value(cmd, argc, argv, &i))) return false
#define IS(s1, s2) (!strcmp(a, s1) || !strcmp(a, s2))
        if (IS("-h", "--help")) {
            *help = true;
            return true;
        } else if (IS("-m", "--model")) {
            VALUE();
            if (!bench_parse_models(a, v, o)) return false;
        } else if (IS("-p", "--n-prompt")) {
            VALUE();
            if (!bench_parse_list(a, v, 0, BENCH_MAX_TOKENS, &o->n_prompt)) return false;
        } else if (IS("-n", "--n-gen")) {
            VALUE();
            if (!bench_parse_list(a, v, 0, BENCH_MAX_TOKENS, &o->n_gen)) return false;
        } else if (IS("-d", "--n-depth")) {
            VALUE();
            if (!bench_parse_list(a, v, 0, BENCH_MAX_TOKENS, &o->depth)) return false;
        } else if (IS("-np", "--n-parallel")) {
            VALUE();
            if (!bench_parse_list(a, v, 1, BENCH_MAX_PARALLEL, &o->n_par)) return false;
        } else if (IS("-pg", "--pg")) {
            VALUE();
            bench_ints pair = {.n = 0};
            if (!bench_parse_list(a, v, 1, BENCH_MAX_TOKENS, &pair)) return false;
            if (pair.n != 2) {
                fprintf(stderr, "inferno bench: %s: '%s' is not a pair PP,TG\n", a, v);
                return false;
            }
            if (o->n_pg == BENCH_MAX_LIST) {
                fprintf(stderr, "inferno bench: %s: at most %d pairs\n", a, BENCH_MAX_LIST);
                return false;
            }
            o->pg[o->n_pg][0] = pair.v[0];
            o->pg[o->n_pg][1] = pair.v[1];
            o->n_pg++;
        } else if (IS("-r", "--repetitions")) {
            VALUE();
            if (!cli_parse_int(cmd, a, v, 1, BENCH_MAX_REPS, &o->reps)) return false;
        } else if (IS("-t", "--threads")) {
            VALUE();
            if (!bench_parse_list(a, v, 0, 4096, &o->threads)) return false;
        } else if (IS("-b", "--batch-size")) {
            VALUE();
            if (!cli_parse_int(cmd, a, v, 1, 1L << 16, &o->batch)) return false;
            o->batch_set = true;
        } else if (IS("-ngl", "--n-gpu-layers")) {
            VALUE();
            if (!bench_parse_list(a, v, 0, 999, &o->ngl)) return false;
            o->ngl_set = true;
        } else if (IS("-c", "--ctx-size")) {
            VALUE();
            if (!cli_parse_int(cmd, a, v, 1, 1L << 22, &o->ctx)) return false;
            o->ctx_set = true;
        } else if (!strcmp(a, "--bandwidth")) {
            VALUE();
            if (!cli_parse_float(cmd, a, v, 0.001, 1e6, &o->bandwidth)) return false;
        } else if (IS("-o", "--output")) {
            VALUE();
            if (!strcmp(v, "md")) o->output = BENCH_OUT_MD;
            else if (!strcmp(v, "json")) o->output = BENCH_OUT_JSON;
            else if (!strcmp(v, "csv")) o->output = BENCH_OUT_CSV;
            else {
                fprintf(stderr, "inferno bench: %s: '%s' is not one of md, json, csv\n", a, v);
                return false;
            }
        } else if (IS("-v", "--verbose")) {
            o->verbose = true;
        } else {
            fprintf(stderr, "inferno bench: unknown option '%s' (see 'inferno bench --help')\n", a);
            return false;
        }
#undef VALUE
#undef IS
    }
    if (o->n_models == 0) {
        fprintf(stderr, "inferno bench: -m is required (see 'inferno bench --help')\n");
        return false;
    }
    if (o->n_prompt.n == 0) o->n_prompt.v[o->n_prompt.n++] = 512;
    if (o->n_gen.n == 0) o->n_gen.v[o->n_gen.n++] = 128;
    if (o->depth.n == 0) o->depth.v[o->depth.n++] = 0;
    if (o->n_par.n == 0) o->n_par.v[o->n_par.n++] = 1;
    if (o->threads.n == 0) {
        o->threads.v[o->threads.n++] = (int)cfg_threads;
        o->threads_auto = cfg_threads == 0;
    }
    if (o->ngl.n == 0) o->ngl.v[o->ngl.n++] = 0;
    // Thread count 0 means every online core; the table shows the resolved number.
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    for (int i = 0; i < o->threads.n; i++)
        if (o->threads.v[i] == 0) o->threads.v[i] = (int)(cores > 0 ? cores : 1);

    int n_tests = o->n_pg;
    for (int i = 0; i < o->n_prompt.n; i++) n_tests += o->n_prompt.v[i] > 0;
    for (int i = 0; i < o->n_gen.n; i++) n_tests += o->n_gen.v[i] > 0;
    if (n_tests == 0) {
        fprintf(stderr, "inferno bench: nothing to run: every -p and -n value is 0 and no -pg was given\n");
        return false;
    }
    if (o->ctx_set) {
        // Every test must fit in the context asked for; name the first that does not.
        long need = 0;
        for (int i = 0; i < o->n_prompt.n; i++) need = o->n_prompt.v[i] > need ? o->n_prompt.v[i] : need;
        for (int i = 0; i < o->n_gen.n; i++) need = o->n_gen.v[i] > need ? o->n_gen.v[i] : need;
        for (int i = 0; i < o->n_pg; i++)
            need = (long)o->pg[i][0] + o->pg[i][1] > need ? (long)o->pg[i][0] + o->pg[i][1] : need;
        long depth = 0, par = 1;
        for (int i = 0; i < o->depth.n; i++) depth = o->depth.v[i] > depth ? o->depth.v[i] : depth;
        for (int i = 0; i < o->n_par.n; i++) par = o->n_par.v[i] > par ? o->n_par.v[i] : par;
        if ((need + depth) * par > o->ctx) { // the cache's cells are shared by the sequences
            fprintf(stderr, "inferno bench: --ctx-size %ld is smaller than the largest test (%ld tokens%s%s)\n",
                    o->ctx, (need + depth) * par, depth ? ", with the largest depth" : "",
                    par > 1 ? ", over the most parallel sequences" : "");
            return false;
        }
    }
    return true;
}

// xorshift64*: the random prompt tokens. Reseeded every repetition so each one decodes the same ids.
static uint64_t bench_rand(uint64_t *state) {
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

// FNV-1a over the bytes of the logits: a fingerprint to compare runs, not a checksum of record.
static uint64_t bench_hash_logits(const float *logits, int n) {
    uint64_t h = 0xcbf29ce484222325ull;
    if (!logits) return 0;
    const unsigned char *b = (const unsigned char *)logits;
    for (size_t i = 0; i < (size_t)n * sizeof(float); i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

// The ISA word of inf_system_info()'s "CPU: <isa> ..." part, or "" when the line has none.
static void bench_backend_name(char *out, size_t cap) {
    const char *info = inf_system_info();
    const char *cpu = strstr(info, "CPU: ");
    if (!cpu) {
        snprintf(out, cap, "CPU");
        return;
    }
    cpu += 5;
    size_t len = strcspn(cpu, " |,;()");
    snprintf(out, cap, "CPU %.*s", (int)(len < 24 ? len : 24), cpu);
}

static const char *bench_base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

// "1.10B", "3.41M", "292.80K": the parameter count as model types are usually named.
static void bench_params_label(uint64_t n, char *out, size_t cap) {
    if (n >= 1000000000ull) snprintf(out, cap, "%.2fB", (double)n / 1e9);
    else if (n >= 1000000ull) snprintf(out, cap, "%.2fM", (double)n / 1e6);
    else snprintf(out, cap, "%.2fK", (double)n / 1e3);
}

// Decodes n_prompt random tokens into each of sequences 0..n_seq-1 starting at position pos0: the sequences'
// prompts back to back, in batches of n_batch (a batch may span sequences); logits for the last token of each
// batch only (the default of a NULL want_logits). first is each sequence's first token id (BOS) when >= 0.
static bool bench_run_prompt(inf_session *s, int n_seq, int n_prompt, int pos0, int n_batch, int n_vocab,
                             inf_token first, uint64_t *rng, inf_token *toks, int32_t *pos, int32_t *seq) {
    const long total = (long)n_seq * n_prompt;
    for (long done = 0; done < total;) {
        int nb = total - done < n_batch ? (int)(total - done) : n_batch;
        for (int i = 0; i < nb; i++) {
            const int k = (int)((done + i) % n_prompt);
            toks[i] = k == 0 && first >= 0 ? first : (inf_token)(bench_rand(rng) % (uint64_t)n_vocab);
            pos[i] = pos0 + k;
            seq[i] = (int32_t)((done + i) / n_prompt);
        }
        inf_batch b = {.n_tokens = nb, .tokens = toks, .pos = pos, .seq_id = seq};
        if (inf_session_decode(s, &b) != INF_OK) {
            fprintf(stderr, "inferno bench: prompt decode: %s\n", inf_last_error());
            return false;
        }
        done += nb;
    }
    return true;
}

// n_gen steps from position pos0, each a token of every sequence 0..n_seq-1 (one batch of n_seq tokens, with
// the logits of every token, as a server samples each sequence's); the first step's tokens are first (BOS after
// an empty cache, else random), the others random, as llama-bench feeds them (no sampling: the logits are not
// looked at).
static bool bench_run_gen(inf_session *s, int n_seq, int n_gen, int pos0, int n_vocab, inf_token first,
                          uint64_t *rng, inf_token *toks, int32_t *pos, int32_t *seq, int8_t *want) {
    for (int i = 0; i < n_gen; i++) {
        for (int q = 0; q < n_seq; q++) {
            toks[q] = i == 0 && first >= 0 ? first : (inf_token)(bench_rand(rng) % (uint64_t)n_vocab);
            pos[q] = pos0 + i;
            seq[q] = q;
            want[q] = 1;
        }
        inf_batch b = {.n_tokens = n_seq, .tokens = toks, .pos = pos, .seq_id = seq, .want_logits = want};
        if (inf_session_decode(s, &b) != INF_OK) {
            fprintf(stderr, "inferno bench: generation decode: %s\n", inf_last_error());
            return false;
        }
    }
    return true;
}

// Tokens a repetition decodes (timed): every sequence's.
static long bench_tokens(const bench_result *r) { return (long)r->n_par * (r->n_prompt + r->n_gen); }

static void bench_stats(const double *x, int n, double *mean, double *sd) {
    double m = 0;
    for (int i = 0; i < n; i++) m += x[i];
    m /= n;
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (x[i] - m) * (x[i] - m);
    *mean = m;
    *sd = n > 1 ? sqrt(ss / (n - 1)) : 0.0;
}

// Runs one test: fresh session, warm-up, reps timed repetitions. Fills the timing fields of r.
static bool bench_run_test(inf_model *model, const inf_model_info *info, const bench_opts *o, bench_result *r) {
    const int np = r->n_par;
    int n_ctx = o->ctx_set ? (int)o->ctx : (r->n_depth + r->n_prompt + r->n_gen) * np;
    // A generation step is one batch of np tokens, whatever -b says.
    inf_session_params sp = {.n_ctx = n_ctx, .n_batch = r->n_batch > np ? r->n_batch : np, .n_seq_max = np,
                             .n_threads = r->n_threads};
    inf_session *s = NULL;
    if (inf_session_init(model, &sp, &s) != INF_OK) {
        fprintf(stderr, "inferno bench: %s: %s: %s\n", r->model_filename, r->test, inf_last_error());
        return false;
    }
    int n_batch = r->n_batch < n_ctx ? r->n_batch : n_ctx;
    const size_t cap = (size_t)(n_batch > np ? n_batch : np);
    inf_token *toks = malloc(sizeof *toks * cap);
    int32_t *pos = malloc(sizeof *pos * cap), *seq = malloc(sizeof *seq * cap);
    int8_t *want = malloc(cap);
    double *ts = malloc(sizeof *ts * (size_t)r->reps);
    r->samples_ns = malloc(sizeof *r->samples_ns * (size_t)r->reps);
    bool ok = toks && pos && seq && want && ts && r->samples_ns;
    if (!ok) fprintf(stderr, "inferno bench: out of memory\n");
    inf_token bos = info->add_bos && info->bos >= 0 ? info->bos : -1;

    // Warm-up, untimed: the first batch of the prompt (it touches every weight and sizes the scratch as a
    // timed batch will), or one generation step; after the depth's tokens when there are any.
    const int d = r->n_depth;
    uint64_t rng = BENCH_SEED;
    if (ok && r->n_prompt > 0) {
        if (d > 0) ok = bench_run_prompt(s, np, d, 0, n_batch, info->n_vocab, bos, &rng, toks, pos, seq);
        if (ok)
            ok = bench_run_prompt(s, 1, r->n_prompt < n_batch ? r->n_prompt : n_batch, d, n_batch, info->n_vocab,
                                  d ? -1 : bos, &rng, toks, pos, seq);
    }
    if (ok && r->n_gen > 0) {
        for (int q = 0; q < np; q++) inf_session_seq_clear(s, q);
        rng = BENCH_SEED;
        if (d > 0) ok = bench_run_prompt(s, np, d, 0, n_batch, info->n_vocab, bos, &rng, toks, pos, seq);
        if (ok) ok = bench_run_gen(s, np, 1, d, info->n_vocab, d ? -1 : bos, &rng, toks, pos, seq, want);
    }
    r->load_avg = -1;
    double la[1];
    if (getloadavg(la, 1) == 1) r->load_avg = la[0];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(r->test_time, sizeof r->test_time, "%Y-%m-%dT%H:%M:%SZ", &tm);

    int n_differ = 0, first_differ = 0; // repetitions whose last logits differ from the first's
    uint64_t differ_hash = 0;
    for (int rep = 0; ok && rep < r->reps; rep++) {
        for (int q = 0; q < np; q++) inf_session_seq_clear(s, q);
        rng = BENCH_SEED;
        // The depth's tokens, untimed (the same ids every repetition).
        if (d > 0) ok = bench_run_prompt(s, np, d, 0, n_batch, info->n_vocab, bos, &rng, toks, pos, seq);
        double t0 = inf_time_now();
        if (ok && r->n_prompt > 0)
            ok = bench_run_prompt(s, np, r->n_prompt, d, n_batch, info->n_vocab, d ? -1 : bos, &rng, toks, pos,
                                  seq);
        // In a pp+tg test (or after a depth) the generation continues the cache: its first token is random,
        // not BOS.
        if (ok && r->n_gen > 0)
            ok = bench_run_gen(s, np, r->n_gen, d + r->n_prompt, info->n_vocab, d + r->n_prompt > 0 ? -1 : bos,
                               &rng, toks, pos, seq, want);
        double dt = inf_time_now() - t0;
        if (!ok) break;
        uint64_t h = bench_hash_logits(inf_session_logits(s, -1), info->n_vocab);
        if (rep > 0 && h != r->logits_hash) {
            if (n_differ++ == 0) first_differ = rep + 1, differ_hash = h;
        }
        r->logits_hash = rep == 0 ? h : r->logits_hash;
        r->samples_ns[rep] = dt * 1e9;
        ts[rep] = dt > 0 ? (double)bench_tokens(r) / dt : 0.0;
        if (o->verbose)
            fprintf(stderr, "  %s %s t=%d rep %d: %.3f s, %.2f tok/s\n", r->model, r->test, r->n_threads,
                    rep + 1, dt, ts[rep]);
    }
    // One line a test, not one a repetition. The GPU's split-K decoding adds its partial sums in arrival order,
    // so there the last bits move from run to run by design.
    if (n_differ > 0)
        fprintf(stderr, "inferno bench: warning: %s %s: %d of %d repetitions gave other logits than the first "
                        "(same tokens; repetition %d: hash %016llx, the first %016llx): the forward pass is not "
                        "deterministic%s\n",
                r->model_filename, r->test, n_differ, r->reps, first_differ, (unsigned long long)differ_hash,
                (unsigned long long)r->logits_hash,
                r->n_gpu_layers > 0 && r->n_gen > 0
                    ? " (CUDA split-K decoding; INFERNO_CUDA_PD_SPLITK=0 makes it bit-reproducible)"
                    : "");
    if (ok) {
        bench_stats(r->samples_ns, r->reps, &r->avg_ns, &r->stddev_ns);
        bench_stats(ts, r->reps, &r->avg_ts, &r->stddev_ts);
        // A tg step reads the weights once for all np sequences' tokens.
        r->weights_gbps = r->n_prompt == 0 ? (double)info->weights_bytes * r->avg_ts / np / 1e9 : -1.0;
    }
    free(toks);
    free(pos);
    free(seq);
    free(want);
    free(ts);
    inf_session_free(s);
    return ok;
}

// ---- output ------------------------------------------------------------------------------------------------

static void bench_json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

static void bench_csv_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const char *p = s; *p; p++) {
        if (*p == '"') fputc('"', f);
        fputc(*p, f);
    }
    fputc('"', f);
}

// The fields of a result in output order, shared by JSON and CSV. A null field is JSON null / empty CSV.
typedef struct {
    const char *name;
    bool is_str, null;
    char val[160];
} bench_field;

enum { BENCH_N_FIELDS = 29 };

typedef struct {
    bench_field f[BENCH_N_FIELDS];
    int n;
} bench_fields;

static bench_field *bench_field_add(bench_fields *fs, const char *name, bool is_str, bool null) {
    assert(fs->n < BENCH_N_FIELDS);
    bench_field *f = &fs->f[fs->n++];
    *f = (bench_field){.name = name, .is_str = is_str, .null = null};
    return f;
}

static void bench_field_str(bench_fields *fs, const char *name, const char *v) {
    bench_field *f = bench_field_add(fs, name, true, false);
    snprintf(f->val, sizeof f->val, "%s", v);
}

// A number, or null when v is negative (the figure does not apply to this test).
static void bench_field_num(bench_fields *fs, const char *name, const char *fmt, double v) {
    bench_field *f = bench_field_add(fs, name, false, v < 0);
    if (v >= 0) snprintf(f->val, sizeof f->val, fmt, v);
}

static void bench_field_int(bench_fields *fs, const char *name, uint64_t v) {
    bench_field *f = bench_field_add(fs, name, false, false);
    snprintf(f->val, sizeof f->val, "%llu", (unsigned long long)v);
}

static void bench_fields_fill(const bench_result *r, const bench_opts *o, bench_fields *fs) {
    fs->n = 0;
    bench_field_str(fs, "build_commit", BENCH_BUILD_COMMIT);
    bench_field_str(fs, "cpu_info", inf_system_info());
    bench_field_str(fs, "backend", r->backend);
    bench_field_str(fs, "model", r->model);
    bench_field_str(fs, "model_filename", r->model_filename);
    bench_field_str(fs, "model_type", r->model_type);
    bench_field_int(fs, "model_size", r->model_size);
    bench_field_int(fs, "model_n_params", r->model_n_params);
    bench_field_int(fs, "n_batch", (uint64_t)r->n_batch);
    bench_field_int(fs, "n_threads", (uint64_t)r->n_threads);
    bench_field_int(fs, "threads", (uint64_t)r->n_threads);
    bench_field_int(fs, "n_gpu_layers", (uint64_t)r->n_gpu_layers);
    bench_field_int(fs, "n_prompt", (uint64_t)r->n_prompt);
    bench_field_int(fs, "n_gen", (uint64_t)r->n_gen);
    bench_field_int(fs, "n_depth", (uint64_t)r->n_depth);
    bench_field_str(fs, "test", r->test);
    bench_field_str(fs, "test_time", r->test_time);
    bench_field_int(fs, "repetitions", (uint64_t)r->reps);
    bench_field_num(fs, "avg_ns", "%.0f", r->avg_ns);
    bench_field_num(fs, "stddev_ns", "%.0f", r->stddev_ns);
    bench_field_num(fs, "avg_ts", "%.6f", r->avg_ts);
    bench_field_num(fs, "stddev_ts", "%.6f", r->stddev_ts);
    bench_field_num(fs, "ms_per_token", "%.4f", r->avg_ns / 1e6 / (double)bench_tokens(r));
    bench_field_num(fs, "weights_gbps", "%.4f", r->weights_gbps);
    bench_field_num(fs, "bandwidth_pct", "%.2f",
                    r->weights_gbps >= 0 && o->bandwidth > 0 ? 100.0 * r->weights_gbps / o->bandwidth : -1.0);
    bench_field_num(fs, "load_avg", "%.2f", r->load_avg);
    bench_field_num(fs, "bandwidth_gbps", "%.3f", o->bandwidth > 0 ? o->bandwidth : -1.0);
    char hash[24];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)r->logits_hash);
    bench_field_str(fs, "logits_hash", hash);
    bench_field_int(fs, "n_parallel", (uint64_t)r->n_par);
    assert(fs->n == BENCH_N_FIELDS);
}

// Markdown columns: llama-bench's (model, size, params, backend, [ngl], threads, [n_batch], test, t/s), then
// the fingerprint (GB/s of weights read in tg tests, [% of --bandwidth]).
typedef struct {
    int model_w, test_w; // test_w: 13, 8 more with a depth (the "@ dN" suffix), 5 more with -np above 1 (" xN")
    bool show_ngl, show_batch, show_pct;
} bench_md;

static void bench_md_header(FILE *f, const bench_md *md) {
    fprintf(f, "| %-*s | %10s | %10s | %-12s |", md->model_w, "model", "size", "params", "backend");
    if (md->show_ngl) fprintf(f, " %3s |", "ngl");
    fprintf(f, " %7s |", "threads");
    if (md->show_batch) fprintf(f, " %7s |", "n_batch");
    fprintf(f, " %*s | %20s | %8s |", md->test_w, "test", "t/s", "GB/s");
    if (md->show_pct) fprintf(f, " %6s |", "% bw");
    static const char dashes[] = "----------------------------------------------------------------------------";
    fprintf(f, "\n| %.*s |", md->model_w, dashes);
    fprintf(f, " ---------: | ---------: | ------------ |");
    if (md->show_ngl) fprintf(f, " --: |");
    fprintf(f, " ------: |");
    if (md->show_batch) fprintf(f, " ------: |");
    fprintf(f, " %.*s: | -------------------: | -------: |", md->test_w - 1, dashes);
    if (md->show_pct) fprintf(f, " -----: |");
    fprintf(f, "\n");
}

static void bench_md_row(FILE *f, const bench_md *md, const bench_result *r, const bench_opts *o) {
    char size[32], params[32], tps[64], gbps[32] = "-", pct[32] = "-";
    double gib = (double)r->model_size / (1024.0 * 1024.0 * 1024.0);
    if (gib < 1.0) snprintf(size, sizeof size, "%.2f MiB", gib * 1024.0);
    else snprintf(size, sizeof size, "%.2f GiB", gib);
    double np = (double)r->model_n_params;
    if (np < 1e9) snprintf(params, sizeof params, "%.2f M", np / 1e6);
    else snprintf(params, sizeof params, "%.2f B", np / 1e9);
    snprintf(tps, sizeof tps, "%.2f +- %.2f", r->avg_ts, r->stddev_ts);
    if (r->weights_gbps >= 0) {
        snprintf(gbps, sizeof gbps, "%.2f", r->weights_gbps);
        if (o->bandwidth > 0) snprintf(pct, sizeof pct, "%.1f%%", 100.0 * r->weights_gbps / o->bandwidth);
    }
    fprintf(f, "| %-*s | %10s | %10s | %-12s |", md->model_w, r->model, size, params, r->backend);
    if (md->show_ngl) fprintf(f, " %3d |", r->n_gpu_layers);
    fprintf(f, " %7d |", r->n_threads);
    if (md->show_batch) fprintf(f, " %7d |", r->n_batch);
    fprintf(f, " %*s | %20s | %8s |", md->test_w, r->test, tps, gbps);
    if (md->show_pct) fprintf(f, " %6s |", pct);
    fprintf(f, "\n");
    fflush(f);
}

static void bench_print_result(FILE *f, const bench_opts *o, const bench_md *md, const bench_result *r,
                               bool first) {
    if (o->output == BENCH_OUT_MD) {
        bench_md_row(f, md, r, o);
        return;
    }
    bench_fields fs;
    bench_fields_fill(r, o, &fs);
    const bench_field *fields = fs.f;
    if (o->output == BENCH_OUT_JSON) {
        fprintf(f, "%s  {\n", first ? "" : ",\n");
        for (int i = 0; i < BENCH_N_FIELDS; i++) {
            fprintf(f, "    \"%s\": ", fields[i].name);
            if (fields[i].null) fputs("null", f);
            else if (fields[i].is_str) bench_json_str(f, fields[i].val);
            else fputs(fields[i].val, f);
            fputs(",\n", f);
        }
        fputs("    \"samples_ns\": [", f);
        for (int i = 0; i < r->reps; i++) fprintf(f, "%s%.0f", i ? ", " : "", r->samples_ns[i]);
        fputs("],\n    \"samples_ts\": [", f);
        for (int i = 0; i < r->reps; i++)
            fprintf(f, "%s%.6f", i ? ", " : "", (double)bench_tokens(r) / (r->samples_ns[i] / 1e9));
        fputs("]\n  }", f);
    } else {
        if (first) {
            for (int i = 0; i < BENCH_N_FIELDS; i++) fprintf(f, "%s,", fields[i].name);
            fputs("samples_ns,samples_ts\n", f);
        }
        for (int i = 0; i < BENCH_N_FIELDS; i++) {
            if (fields[i].is_str) bench_csv_str(f, fields[i].val);
            else fputs(fields[i].val, f);
            fputc(',', f);
        }
        fputc('"', f);
        for (int i = 0; i < r->reps; i++) fprintf(f, "%s%.0f", i ? ";" : "", r->samples_ns[i]);
        fputs("\",\"", f);
        for (int i = 0; i < r->reps; i++)
            fprintf(f, "%s%.6f", i ? ";" : "", (double)bench_tokens(r) / (r->samples_ns[i] / 1e9));
        fputs("\"\n", f);
    }
    fflush(f);
}

// ---- the command -------------------------------------------------------------------------------------------

// Runs every test of one loaded model; prints each result as it finishes. *first tracks the output's first row.
static bool bench_model(inf_model *model, const char *path, const bench_opts *o, const bench_md *md,
                        bool *first) {
    inf_model_info info;
    inf_model_get_info(model, &info);
    bench_result r = {.model_filename = path};
    char base[96], plabel[32];
    snprintf(base, sizeof base, "%s", bench_base_name(path));
    size_t bl = strlen(base);
    if (bl > 5 && !strcmp(base + bl - 5, ".gguf")) base[bl - 5] = '\0';
    snprintf(r.model, sizeof r.model, "%s %s", base, info.file_type);
    bench_params_label(info.n_params, plabel, sizeof plabel);
    snprintf(r.model_type, sizeof r.model_type, "%s %s %s", info.arch, plabel, info.file_type);
    bench_backend_name(r.backend, sizeof r.backend);
    if (info.n_gpu_layers > 0) snprintf(r.backend, sizeof r.backend, "CUDA");
    r.model_size = info.weights_bytes;
    r.model_n_params = info.n_params;
    r.n_batch = (int)o->batch;
    r.reps = (int)o->reps;

    r.n_gpu_layers = info.n_gpu_layers;
    // Test order as llama-bench: per thread count and depth (and parallel sequences), the pp tests, then tg,
    // then pp+tg.
    int n_tests = o->n_prompt.n + o->n_gen.n + o->n_pg, n_dp = o->depth.n * o->n_par.n;
    for (int t = 0; t < o->threads.n * n_dp; t++) {
        r.n_par = o->n_par.v[t % o->n_par.n];
        r.n_depth = o->depth.v[t % n_dp / o->n_par.n];
        r.n_threads = o->threads.v[t / n_dp];
        // Every layer on the GPU: the CPU embeds rows and feeds the GPU; a pool spinning on every core
        // competes with the thread that launches the work (pp512 on an H100 swung between 37,000 and 77,000
        // t/s with 16 threads, held within 2% with 4; bench/NOTES.md), as the server's default avoids too.
        if (o->threads_auto && info.n_layer > 0 && info.n_gpu_layers >= info.n_layer && r.n_threads > BENCH_GPU_THREADS)
            r.n_threads = BENCH_GPU_THREADS;
        for (int k = 0; k < n_tests; k++) {
            if (k < o->n_prompt.n) {
                r.n_prompt = o->n_prompt.v[k];
                r.n_gen = 0;
                if (!r.n_prompt) continue;
                snprintf(r.test, sizeof r.test, "pp%d", r.n_prompt);
            } else if (k < o->n_prompt.n + o->n_gen.n) {
                r.n_prompt = 0;
                r.n_gen = o->n_gen.v[k - o->n_prompt.n];
                if (!r.n_gen) continue;
                snprintf(r.test, sizeof r.test, "tg%d", r.n_gen);
            } else {
                const int *pg = o->pg[k - o->n_prompt.n - o->n_gen.n];
                r.n_prompt = pg[0];
                r.n_gen = pg[1];
                snprintf(r.test, sizeof r.test, "pp%d+tg%d", r.n_prompt, r.n_gen);
            }
            if (r.n_par > 1) {
                const size_t tl = strlen(r.test);
                snprintf(r.test + tl, sizeof r.test - tl, " x%d", r.n_par);
            }
            if (r.n_depth > 0) {
                const size_t tl = strlen(r.test);
                snprintf(r.test + tl, sizeof r.test - tl, " @ d%d", r.n_depth);
            }
            r.samples_ns = NULL;
            r.logits_hash = 0;
            bool ok = bench_run_test(model, &info, o, &r);
            if (ok) bench_print_result(stdout, o, md, &r, *first);
            free(r.samples_ns);
            if (!ok) return false;
            *first = false;
        }
    }
    return true;
}

int cmd_bench(int argc, char **argv) {
    inf_config *cfg = cli_config_load("bench");
    if (!cfg) return 1;
    bench_opts o = {.n_models = 0};
    bool help = false;
    bool parsed = bench_parse(argc, argv, cfg, &o, &help);
    inf_config_free(cfg);
    if (help) {
        bench_usage(stdout);
        bench_opts_free(&o);
        return 0;
    }
    if (!parsed) {
        bench_opts_free(&o);
        return 2;
    }
    inf_log_set_level(o.verbose ? INF_LOG_DEBUG : INF_LOG_WARN);
#if !defined(__OPTIMIZE__)
    fprintf(stderr, "inferno bench: warning: debug build, the figures are not representative\n");
#endif
    if (o.verbose) fprintf(stderr, "%s\n", inf_system_info());

    bool depth = false;
    for (int i = 0; i < o.depth.n; i++) depth = depth || o.depth.v[i] > 0;
    bool par = false;
    for (int i = 0; i < o.n_par.n; i++) par = par || o.n_par.v[i] > 1;
    bench_md md = {.model_w = 30, .test_w = 13 + (depth ? 8 : 0) + (par ? 5 : 0), .show_ngl = o.ngl_set, .show_batch = o.batch_set,
                   .show_pct = o.bandwidth > 0};
    for (int i = 0; i < o.n_models; i++) {
        // The model column is the base name plus a type of at most ~10 characters.
        int w = (int)strlen(bench_base_name(o.models[i])) + 8;
        md.model_w = w > md.model_w ? (w < 72 ? w : 72) : md.model_w; // within the separator's dashes
    }
    double load0[3] = {-1, -1, -1}, load1[3] = {-1, -1, -1};
    getloadavg(load0, 3);
    if (o.output == BENCH_OUT_MD) bench_md_header(stdout, &md);
    else if (o.output == BENCH_OUT_JSON) fputs("[\n", stdout);
    fflush(stdout);

    int rc = 0;
    bool first = true;
    for (int i = 0; i < o.n_models && rc == 0; i++)
        for (int g = 0; g < o.ngl.n && rc == 0; g++) {
            int ngl = o.ngl.v[g];
            inf_model_params mp = inf_model_default_params();
            mp.verbose = o.verbose;
            mp.gpu_enabled = ngl != 0;
            mp.n_gpu_layers = ngl;
            inf_model *model = NULL;
            if (inf_model_load(o.models[i], &mp, &model) != INF_OK) {
                fprintf(stderr, "inferno bench: %s\n", inf_last_error());
                rc = 1;
                break;
            }
            if (!bench_model(model, o.models[i], &o, &md, &first)) rc = 1;
            inf_model_free(model);
        }

    getloadavg(load1, 3);
    if (o.output == BENCH_OUT_JSON) fputs(first ? "]\n" : "\n]\n", stdout);
    else if (o.output == BENCH_OUT_MD && rc == 0)
        printf("\nbuild: %s | %s | load average %.2f %.2f %.2f before, %.2f %.2f %.2f after\n",
               BENCH_BUILD_COMMIT, inf_system_info(), load0[0], load0[1], load0[2], load1[0], load1[1],
               load1[2]);
    fflush(stdout);
    bench_opts_free(&o);
    return rc;
}
