// engine_step.c: the serving engine's per-step overhead. Runs S concurrent generation requests through one
// inf_engine (S = 1, 8, 32 by default), all submitted at once, each generating exactly N tokens, and prints
// where the scheduler thread's time went, per forward step: the forward pass, choosing tokens (sampler,
// log-probabilities), output (detokenizing, stop strings, callbacks) and the rest (admission, batch
// building, locking), from the engine's own counters (inf_engine_stats). With a tiny model of a real
// vocabulary the forward pass is cheap and the per-token work shows:
//
//   build/inferno synth --shape micro --vocab ../shared/models/vocab/ggml-vocab-llama-spm.gguf
//       --out /tmp/eng-micro.gguf --type Q4_0                                        (one command line)
//   cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude bench/engine_step.c build/libinferno.a -lpcre2-8 -lpthread
//       -lm -o build/engine_step       (one line; a CUDA build also needs build/libinferno_cuda.a
//       build/libinferno.a -L/usr/local/cuda/lib64 -lcudart -lcublas -lstdc++ after the first library)
//   build/engine_step -m /tmp/eng-micro.gguf -s 1,8,32 -n 128
//
// The callbacks do what the server's do (src/server/task.c): on_token takes the request's mutex, appends
// the text to a buffer and signals a condition variable. Every level prints an FNV-1a hash of all tokens
// generated (in request order), so runs of two builds can be checked for identical output.
//
// -p N makes every prompt N tokens (the text, then deterministic token ids): the first steps then prefill
// several sequences' chunks in one batch, as a busy server does.
//
// Left out: HTTP and SSE (bench/loadgen.mjs measures the whole server) and any statistics over repetitions
// (run it twice).
#include "inferno.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_MAX_STREAMS 256
#define BENCH_MAX_LEVELS 8
#define BENCH_MAX_TOKENS 4096

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    inf_token toks[BENCH_MAX_TOKENS];
    int n_toks;
    char text[1 << 16];
    size_t n_text;
    bool done;
    inf_request_result res;
} bench_stream;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_n_done;

static void bench_on_token(void *user, inf_token tok, const char *text, size_t len, float lp,
                           const inf_token *top_ids, const float *top_lp, int n_top) {
    (void)lp, (void)top_ids, (void)top_lp, (void)n_top;
    bench_stream *s = user;
    pthread_mutex_lock(&s->mu);
    if (tok >= 0 && s->n_toks < BENCH_MAX_TOKENS) s->toks[s->n_toks++] = tok;
    if (len > 0 && s->n_text + len <= sizeof s->text) {
        memcpy(s->text + s->n_text, text, len);
        s->n_text += len;
    }
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

// The S requests are submitted from the on_done of a one-token "starter" request, that is on the scheduler
// thread between two steps, so that the next step admits all of them at once: with submits racing the
// scheduler from the main thread, the first steps would take whichever prompts had arrived, the batches
// would differ from run to run, and so would the tokens (the forward pass's rounding depends on the batch).
static inf_engine *g_engine;
static inf_request g_reqs[BENCH_MAX_STREAMS];
static int g_n_reqs, g_n_submit_failed;
static inf_engine_stats g_before; // the engine's counters before the S requests

static void bench_starter_done(void *user, const inf_request_result *res) {
    (void)user, (void)res;
    inf_engine_get_stats(g_engine, &g_before);
    for (int i = 0; i < g_n_reqs; i++) {
        if (inf_engine_submit(g_engine, &g_reqs[i], NULL) != INF_OK) {
            fprintf(stderr, "engine_step: submit: %s\n", inf_last_error());
            pthread_mutex_lock(&g_mu);
            g_n_submit_failed++;
            pthread_cond_signal(&g_cv);
            pthread_mutex_unlock(&g_mu);
        }
    }
}

static void bench_on_done(void *user, const inf_request_result *res) {
    bench_stream *s = user;
    pthread_mutex_lock(&s->mu);
    s->res = *res;
    s->done = true;
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_lock(&g_mu);
    g_n_done++;
    pthread_cond_signal(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

static int bench_parse_list(const char *s, int *out, int cap) {
    int n = 0;
    while (*s && n < cap) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > BENCH_MAX_STREAMS) return -1;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return n;
}

static void bench_usage(void) {
    fprintf(stderr, "usage: engine_step -m MODEL [-s 1,8,32] [-n TOKENS] [-p PROMPT_TOKENS] [-t THREADS] [--temp T]\n"
                    "         [--top-k K] [--top-p P] [--min-p P] [--repeat-penalty R] [--presence P]\n"
                    "         [--seed S] [--logprobs N] [--stop STR] [-ngl N]\n"
                    "defaults: 128 tokens, a ~20-token prompt, 1 thread, temperature 0 (greedy); with --temp\n"
                    "the sampler's other settings are llama.cpp's defaults (top-k 40, top-p 0.95, min-p 0.05)\n"
                    "unless given\n");
}

int main(int argc, char **argv) {
    const char *path = NULL, *stop = NULL;
    int levels[BENCH_MAX_LEVELS] = {1, 8, 32}, n_levels = 3, n_gen = 128, n_threads = 1, n_top = -1, ngl = 0;
    int n_prompt_want = 0; // -p: 0 = the text alone
    inf_sampler_params sp = inf_sampler_default_params();
    sp.temperature = 0.0f;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            bench_usage();
            return 2;
        }
        i++;
        if (!strcmp(a, "-m")) path = v;
        else if (!strcmp(a, "-s")) n_levels = bench_parse_list(v, levels, BENCH_MAX_LEVELS);
        else if (!strcmp(a, "-n")) n_gen = atoi(v);
        else if (!strcmp(a, "-p")) n_prompt_want = atoi(v);
        else if (!strcmp(a, "-t")) n_threads = atoi(v);
        else if (!strcmp(a, "-ngl")) ngl = atoi(v);
        else if (!strcmp(a, "--temp")) sp.temperature = strtof(v, NULL);
        else if (!strcmp(a, "--top-k")) sp.top_k = atoi(v);
        else if (!strcmp(a, "--top-p")) sp.top_p = strtof(v, NULL);
        else if (!strcmp(a, "--min-p")) sp.min_p = strtof(v, NULL);
        else if (!strcmp(a, "--repeat-penalty")) sp.repeat_penalty = strtof(v, NULL);
        else if (!strcmp(a, "--presence")) sp.presence_penalty = strtof(v, NULL);
        else if (!strcmp(a, "--seed")) sp.seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--logprobs")) n_top = atoi(v);
        else if (!strcmp(a, "--stop")) stop = v;
        else {
            bench_usage();
            return 2;
        }
    }
    if (!path || n_levels < 1 || n_gen < 1 || n_gen > BENCH_MAX_TOKENS || n_threads < 0 || n_prompt_want < 0 ||
        n_prompt_want > BENCH_MAX_TOKENS) {
        bench_usage();
        return 2;
    }
    inf_log_set_level(INF_LOG_WARN);
    inf_model_params mp = inf_model_default_params();
    mp.n_threads = n_threads;
    mp.n_gpu_layers = ngl;
    inf_model *model = NULL;
    if (inf_model_load(path, &mp, &model) != INF_OK) {
        fprintf(stderr, "engine_step: %s\n", inf_last_error());
        return 1;
    }
    inf_model_info info;
    inf_model_get_info(model, &info);
    const int cap_prompt = n_prompt_want > 64 ? n_prompt_want : 64;
    char prompt_desc[16] = "~20";
    if (n_prompt_want) snprintf(prompt_desc, sizeof prompt_desc, "%d", n_prompt_want);
    printf("model %s: n_vocab %d, n_embd %d, n_layer %d, %s; prompts of %s tokens, %d tokens a request, "
           "temperature %g, top_k %d, top_p %g, min_p %g, repeat_penalty %g, presence %g, logprobs %d, stop %s\n",
           path, info.n_vocab, info.n_embd, info.n_layer, info.file_type, prompt_desc, n_gen, (double)sp.temperature,
           sp.top_k, (double)sp.top_p, (double)sp.min_p, (double)sp.repeat_penalty, (double)sp.presence_penalty, n_top,
           stop ? stop : "(none)");
    printf("| streams | steps | tokens | forward us/step | sample us/step | output us/step | other us/step | "
           "non-forward us/step | non-forward us/token | tokens hash |\n"
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");

    static bench_stream streams[BENCH_MAX_STREAMS];
    int rc = 0;
    for (int l = 0; l < n_levels && rc == 0; l++) {
        int S = levels[l];
        inf_engine_params ep = inf_engine_default_params();
        ep.n_seq_max = S;
        ep.max_queue = S;
        ep.n_batch = 512;
        ep.n_ctx = S * (cap_prompt + n_gen);
        ep.n_threads = n_threads;
        inf_engine *e = NULL;
        if (inf_engine_init(model, &ep, &e) != INF_OK) {
            fprintf(stderr, "engine_step: %s\n", inf_last_error());
            rc = 1;
            break;
        }
        g_n_done = 0;
        g_n_submit_failed = 0;
        g_engine = e;
        g_n_reqs = S;
        const char *stops[1] = {stop};
        static inf_token prompts[BENCH_MAX_STREAMS][BENCH_MAX_TOKENS];
        for (int i = 0; i < S && rc == 0; i++) {
            bench_stream *s = &streams[i];
            memset(s, 0, sizeof *s);
            pthread_mutex_init(&s->mu, NULL);
            pthread_cond_init(&s->cv, NULL);
            char text[128];
            snprintf(text, sizeof text, "[%d] Once upon a time, in a small village by the sea, there lived", i);
            inf_token *prompt = prompts[i];
            int n_prompt = 0;
            if (inf_tokenize(model, text, strlen(text), true, false, prompt, 64, &n_prompt) != INF_OK ||
                n_prompt > 64) {
                fprintf(stderr, "engine_step: cannot tokenize the prompt\n");
                rc = 1;
                break;
            }
            for (uint32_t seed = 7u + (uint32_t)i; n_prompt < n_prompt_want; n_prompt++) {
                seed = seed * 1664525u + 1013904223u;
                prompt[n_prompt] = 3 + (inf_token)((seed >> 8) % (uint32_t)(info.n_vocab - 3));
            }
            inf_request r;
            memset(&r, 0, sizeof r);
            r.prompt = prompt;
            r.n_prompt = n_prompt;
            r.sampling = sp;
            r.sampling.seed = sp.seed + (uint64_t)i;
            r.max_tokens = n_gen;
            r.ignore_eos = true;
            r.stops = stop ? stops : NULL;
            r.n_stops = stop ? 1 : 0;
            r.logprobs = n_top >= 0;
            r.n_top_logprobs = n_top > 0 ? n_top : 0;
            r.on_token = bench_on_token;
            r.on_done = bench_on_done;
            r.user = s;
            g_reqs[i] = r;
        }
        if (rc == 0) {
            inf_request starter = g_reqs[0];
            starter.max_tokens = 1;
            starter.n_stops = 0;
            starter.logprobs = false;
            starter.n_top_logprobs = 0;
            starter.on_token = NULL;
            starter.on_done = bench_starter_done;
            starter.user = NULL;
            if (inf_engine_submit(e, &starter, NULL) != INF_OK) {
                fprintf(stderr, "engine_step: submit: %s\n", inf_last_error());
                rc = 1;
            }
        }
        pthread_mutex_lock(&g_mu);
        while (rc == 0 && g_n_done + g_n_submit_failed < S) pthread_cond_wait(&g_cv, &g_mu);
        if (g_n_submit_failed) rc = 1;
        pthread_mutex_unlock(&g_mu);
        inf_engine_stats st;
        inf_engine_get_stats(e, &st);
        inf_engine_free(e); // after every on_done, so the stats are complete (the engine is idle)
        if (rc != 0) break;
        // Only the S requests' part.
        st.steps -= g_before.steps;
        st.generated_tokens -= g_before.generated_tokens;
        st.forward_seconds -= g_before.forward_seconds;
        st.sample_seconds -= g_before.sample_seconds;
        st.output_seconds -= g_before.output_seconds;
        st.other_seconds -= g_before.other_seconds;
        uint64_t h = 1469598103934665603ull; // FNV-1a over every token, request by request
        for (int i = 0; i < S; i++) {
            for (int k = 0; k < streams[i].n_toks; k++) {
                h ^= (uint64_t)(uint32_t)streams[i].toks[k];
                h *= 1099511628211ull;
            }
            pthread_mutex_destroy(&streams[i].mu);
            pthread_cond_destroy(&streams[i].cv);
        }
        double steps = (double)(st.steps ? st.steps : 1);
        double nonfwd = st.sample_seconds + st.output_seconds + st.other_seconds;
        printf("| %d | %llu | %llu | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f | %016llx |\n", S,
               (unsigned long long)st.steps, (unsigned long long)st.generated_tokens,
               1e6 * st.forward_seconds / steps, 1e6 * st.sample_seconds / steps, 1e6 * st.output_seconds / steps, 1e6 * st.other_seconds / steps,
               1e6 * nonfwd / steps, 1e6 * nonfwd / (double)(st.generated_tokens ? st.generated_tokens : 1),
               (unsigned long long)h);
        fflush(stdout);
    }
    inf_model_free(model);
    return rc;
}
