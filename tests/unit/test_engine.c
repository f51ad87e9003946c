// test_engine.c: the continuous-batching engine on stories260K against llama.cpp's greedy goldens.
//
// A lone greedy request must give the golden tokens and text; 16 concurrent requests (the three golden
// prompts repeated) must each give exactly what a lone request gives, with n_seq_max 16, with queueing
// (n_seq_max 4) and with a batch smaller than the running set and than a prompt (chunked prefill mixed with
// decode), in far fewer forward steps than the lone runs together. A seeded sampling request gives the same
// tokens alone and among others. End-of-generation runs on a tiny model built in the test. Also: cancel
// (queued and running) frees cells and reports CANCELLED, a full queue answers INF_ERR_BUSY, timeouts
// (running and queued), stop strings (within and across tokens, held text flushed at the end), max_tokens,
// the context limit (one sequence and several competing for a small pool), bad requests, log-probabilities
// against a plain session, embeddings against a manual mean-pool of a plain session's hidden states, and
// freeing the engine with requests in flight.
//
// Callbacks run on the engine's thread: they only record into collectors under g_mu; every CHECK runs on
// the main thread.
#include "test.h"

#include "gguf_build.h"
#include "inferno.h"
#include "runtime/engine_int.h"

#include <json-c/json.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#define MAX_GEN    512
#define N_EMBD_MAX 256

typedef struct {
    inf_token prompt[64];
    int n_prompt;
    inf_token gold[64];
    int n_gold;
    char text[1024]; // golden generated text (exact bytes)
} golden_run;

static golden_run g_runs[3];
static int g_n_runs;

// What one request's callbacks saw.
typedef struct {
    int sleep_us; // slows on_token down, so that cancels and timeouts land mid-generation
    inf_token toks[MAX_GEN];
    float lp[MAX_GEN];
    int n_toks;
    char text[4096];
    size_t n_text;
    int n_flush; // on_token calls with token -1
    int bad_top; // token calls whose alternatives were not sorted or did not match the chosen token
    int n_done;  // on_done calls
    int tokens_after_done;
    inf_request_result res;
    float emb[N_EMBD_MAX];
} collector;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;

static void on_token(void *user, inf_token tok, const char *text, size_t len, float lp,
                     const inf_token *top_ids, const float *top_lp, int n_top) {
    collector *c = user;
    pthread_mutex_lock(&g_mu);
    if (c->n_done) c->tokens_after_done++;
    if (tok < 0) {
        c->n_flush++;
    } else if (c->n_toks < MAX_GEN) {
        c->lp[c->n_toks] = lp;
        c->toks[c->n_toks++] = tok;
    }
    if (len > 0 && c->n_text + len < sizeof c->text) {
        memcpy(c->text + c->n_text, text, len);
        c->n_text += len;
        c->text[c->n_text] = 0;
    }
    // Greedy requests in these tests pick the best raw logit, so the first alternative is the chosen token.
    for (int i = 0; i < n_top; i++)
        if (i > 0 && top_lp[i] > top_lp[i - 1]) c->bad_top++;
    if (n_top > 0 && (top_ids[0] != tok || top_lp[0] != lp || lp > 0)) c->bad_top++;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
    if (c->sleep_us) usleep((useconds_t)c->sleep_us);
}

static void on_done(void *user, const inf_request_result *res) {
    collector *c = user;
    pthread_mutex_lock(&g_mu);
    c->n_done++;
    c->res = *res;
    c->res.embedding = NULL;
    if (res->embedding && res->n_embd <= N_EMBD_MAX) {
        memcpy(c->emb, res->embedding, (size_t)res->n_embd * sizeof(float));
        c->res.embedding = c->emb;
    }
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void deadline_in(struct timespec *ts, double seconds) {
    clock_gettime(CLOCK_REALTIME, ts);
    double ns = (double)ts->tv_nsec + seconds * 1e9;
    ts->tv_sec += (time_t)(ns / 1e9);
    ts->tv_nsec = (long)(ns - (double)(time_t)(ns / 1e9) * 1e9);
}

// Waits until every collector has its on_done (false after 60 s).
static bool wait_done(collector *cs, int n) {
    struct timespec dl;
    deadline_in(&dl, 60.0);
    pthread_mutex_lock(&g_mu);
    bool ok = true;
    for (int i = 0; i < n && ok; i++)
        while (cs[i].n_done == 0 && ok) ok = pthread_cond_timedwait(&g_cv, &g_mu, &dl) == 0;
    pthread_mutex_unlock(&g_mu);
    return ok;
}

// Waits until c has seen at least k tokens.
static bool wait_tokens(collector *c, int k) {
    struct timespec dl;
    deadline_in(&dl, 60.0);
    pthread_mutex_lock(&g_mu);
    bool ok = true;
    while (c->n_toks < k && c->n_done == 0 && ok) ok = pthread_cond_timedwait(&g_cv, &g_mu, &dl) == 0;
    ok = ok && c->n_toks >= k;
    pthread_mutex_unlock(&g_mu);
    return ok;
}

static inf_request greedy_request(const golden_run *g, int max_tokens, collector *c) {
    inf_request r;
    memset(&r, 0, sizeof r);
    r.prompt = g->prompt;
    r.n_prompt = g->n_prompt;
    r.sampling = inf_sampler_default_params();
    r.sampling.temperature = 0.0f;
    r.max_tokens = max_tokens;
    r.ignore_eos = true;
    r.on_token = on_token;
    r.on_done = on_done;
    r.user = c;
    return r;
}

static inf_engine *engine_new(inf_model *m, int n_ctx, int n_batch, int n_seq_max, int max_queue) {
    inf_engine_params p = inf_engine_default_params();
    p.n_ctx = n_ctx;
    p.n_batch = n_batch;
    p.n_seq_max = n_seq_max;
    p.max_queue = max_queue;
    inf_engine *e = NULL;
    inf_status st = inf_engine_init(m, &p, &e);
    CHECK_MSG(st == INF_OK, "engine init: %s", inf_last_error());
    return e;
}

static uint64_t submit(inf_engine *e, const inf_request *r) {
    uint64_t id = 0;
    inf_status st = inf_engine_submit(e, r, &id);
    CHECK_MSG(st == INF_OK, "submit: %s", inf_last_error());
    return id;
}

// Tokens equal to the first n golden tokens of run g.
static bool is_golden_prefix(const collector *c, const golden_run *g) {
    return c->n_toks <= g->n_gold && memcmp(c->toks, g->gold, (size_t)c->n_toks * sizeof(inf_token)) == 0;
}

// The tokens agree with run g as far as both go (for runs that may outlast the 32 golden tokens).
static bool agrees_with_golden(const collector *c, const golden_run *g) {
    int n = c->n_toks < g->n_gold ? c->n_toks : g->n_gold;
    return memcmp(c->toks, g->gold, (size_t)n * sizeof(inf_token)) == 0;
}

static void check_idle(inf_engine *e) {
    inf_engine_stats st;
    inf_engine_get_stats(e, &st);
    CHECK_EQ_INT(st.cells_used, 0);
    CHECK_EQ_INT(st.running, 0);
    CHECK_EQ_INT(st.queued, 0);
}

// ---------------------------------------------------------------------------------------------------------

// Each golden prompt alone: tokens, text, finish and timings; returns the steps each took.
static void test_lone_greedy(inf_model *m, uint64_t steps_lone[3]) {
    inf_engine *e = engine_new(m, 256, 64, 1, 4);
    if (!e) return;
    CHECK(inf_engine_model(e) == m);
    for (int r = 0; r < g_n_runs; r++) {
        collector c = {0};
        inf_engine_stats before, after;
        inf_engine_get_stats(e, &before);
        double t0 = now_seconds();
        inf_request req = greedy_request(&g_runs[r], 32, &c);
        submit(e, &req);
        CHECK(wait_done(&c, 1));
        inf_engine_get_stats(e, &after);
        double wall = now_seconds() - t0;
        // The scheduler's time by part: every part moves forward (the forward pass and sampling surely
        // take time), and together they fit in the wall time the request took.
        double d_fwd = after.forward_seconds - before.forward_seconds;
        double d_smp = after.sample_seconds - before.sample_seconds;
        double d_out = after.output_seconds - before.output_seconds;
        double d_oth = after.other_seconds - before.other_seconds;
        CHECK(d_fwd > 0 && d_smp > 0 && d_out >= 0 && d_oth >= 0);
        CHECK_MSG(d_fwd + d_smp + d_out + d_oth <= wall + 1e-3, "parts %g + %g + %g + %g > wall %g", d_fwd,
                  d_smp, d_out, d_oth, wall);
        CHECK_EQ_INT(c.n_done, 1);
        CHECK_EQ_INT(c.res.finish, INF_FINISH_LENGTH);
        CHECK_EQ_INT(c.res.n_generated, 32);
        CHECK_EQ_INT(c.res.n_prompt, g_runs[r].n_prompt);
        CHECK_EQ_INT(c.n_toks, 32);
        CHECK_MSG(memcmp(c.toks, g_runs[r].gold, 32 * sizeof(inf_token)) == 0,
                  "lone run %d differs from golden", r);
        CHECK_STR(c.text, g_runs[r].text);
        CHECK_EQ_INT(c.n_flush, 0);
        CHECK(c.res.queue_seconds >= 0 && c.res.queue_seconds <= c.res.ttft_seconds);
        CHECK(c.res.ttft_seconds > 0 && c.res.ttft_seconds <= c.res.total_seconds);
        CHECK(c.res.embedding == NULL);
        steps_lone[r] = after.steps - before.steps;
        // Prompt in one step, then one step per generated token but the last (it is never decoded).
        CHECK_EQ_INT(steps_lone[r], 32);
        CHECK_EQ_INT(after.generated_tokens - before.generated_tokens, 32);
        CHECK_EQ_INT(after.prompt_tokens - before.prompt_tokens, g_runs[r].n_prompt);
        CHECK_EQ_INT(after.requests_done - before.requests_done, 1);
        CHECK_EQ_INT(after.cells_total, 256);
        check_idle(e);
    }
    inf_engine_free(e);
}

// Log-probabilities and top alternatives against a plain session's logits for the first token.
static void test_logprobs(inf_model *m) {
    const golden_run *g = &g_runs[0];
    inf_session_params sp = {.n_ctx = 64, .n_batch = 64, .n_seq_max = 1};
    inf_session *s = NULL;
    CHECK(inf_session_init(m, &sp, &s) == INF_OK);
    if (!s) return;
    int32_t pos[64], seq[64] = {0};
    for (int i = 0; i < g->n_prompt; i++) pos[i] = i;
    inf_batch b = {.n_tokens = g->n_prompt, .tokens = g->prompt, .pos = pos, .seq_id = seq};
    CHECK(inf_session_decode(s, &b) == INF_OK);
    const float *lg = inf_session_logits(s, -1);
    double mx = lg[0], sum = 0;
    for (int i = 1; i < 512; i++) mx = lg[i] > mx ? lg[i] : mx;
    for (int i = 0; i < 512; i++) sum += exp(lg[i] - mx);
    double want = lg[g->gold[0]] - (mx + log(sum));
    inf_session_free(s);

    inf_engine *e = engine_new(m, 128, 64, 2, 4);
    if (!e) return;
    collector c = {0};
    inf_request req = greedy_request(g, 8, &c);
    req.n_top_logprobs = 5;
    submit(e, &req);
    CHECK(wait_done(&c, 1));
    CHECK_EQ_INT(c.n_toks, 8);
    CHECK_NEAR(c.lp[0], want, 1e-5);
    CHECK_EQ_INT(c.bad_top, 0);
    for (int i = 0; i < c.n_toks; i++) CHECK(c.lp[i] <= 0 && c.lp[i] > -30);
    // logprobs alone (no alternatives) gives the same value; without it the engine skips the work (NaN).
    collector c2 = {0};
    req = greedy_request(g, 8, &c2);
    req.logprobs = true;
    submit(e, &req);
    CHECK(wait_done(&c2, 1));
    CHECK_NEAR(c2.lp[0], want, 1e-5);
    collector c3 = {0};
    req = greedy_request(g, 8, &c3);
    submit(e, &req);
    CHECK(wait_done(&c3, 1));
    CHECK(isnan(c3.lp[0]));
    inf_engine_free(e);
}

// 16 requests at once (prompts 0,1,2,0,1,2,...) plus one seeded sampling request; each must get what it gets
// alone. steps_lone_sum: what the 16 took one by one; the concurrent run must take at least min_gain times
// fewer steps (0: not checked).
static void test_concurrent(inf_model *m, int n_seq_max, int n_batch, uint64_t steps_lone_sum, int min_gain) {
    // The sampling request alone first.
    collector solo = {0};
    inf_request sreq = greedy_request(&g_runs[0], 24, &solo);
    sreq.sampling.temperature = 0.9f;
    sreq.sampling.seed = 1234;
    sreq.ignore_eos = false; // may stop on EOS: the concurrent run must then stop at the same place
    {
        inf_engine *e1 = engine_new(m, 1024, n_batch, n_seq_max, 32);
        if (!e1) return;
        submit(e1, &sreq);
        CHECK(wait_done(&solo, 1));
        inf_engine_free(e1);
    }

    enum { N = 16 };
    collector cs[N + 1];
    memset(cs, 0, sizeof cs);
    inf_engine *e = engine_new(m, 1024, n_batch, n_seq_max, 32); // room for all 17 (about 700 cells)
    if (!e) return;
    inf_engine_stats before, after;
    inf_engine_get_stats(e, &before);
    int prompt_sum = 0;
    for (int i = 0; i < N; i++) {
        inf_request r = greedy_request(&g_runs[i % 3], 32, &cs[i]);
        prompt_sum += g_runs[i % 3].n_prompt;
        submit(e, &r);
    }
    sreq.user = &cs[N];
    submit(e, &sreq);
    CHECK(wait_done(cs, N + 1));
    inf_engine_get_stats(e, &after);
    int wrong = 0;
    for (int i = 0; i < N; i++) {
        bool ok = cs[i].n_done == 1 && cs[i].res.finish == INF_FINISH_LENGTH && cs[i].n_toks == 32 &&
                  memcmp(cs[i].toks, g_runs[i % 3].gold, 32 * sizeof(inf_token)) == 0 &&
                  strcmp(cs[i].text, g_runs[i % 3].text) == 0;
        wrong += !ok;
        if (!ok) {
            fprintf(stderr, "req %d: done %d finish %d n_toks %d:", i, cs[i].n_done, cs[i].res.finish,
                    cs[i].n_toks);
            for (int k = 0; k < cs[i].n_toks; k++) fprintf(stderr, " %d", cs[i].toks[k]);
            fprintf(stderr, "\n");
        }
    }
    CHECK_MSG(wrong == 0, "n_seq_max %d, n_batch %d: %d of %d requests differ from the lone run", n_seq_max,
              n_batch, wrong, N);
    CHECK_EQ_INT(cs[N].n_toks, solo.n_toks);
    CHECK_EQ_INT(cs[N].res.finish, solo.res.finish);
    CHECK(memcmp(cs[N].toks, solo.toks, (size_t)solo.n_toks * sizeof(inf_token)) == 0);
    CHECK_STR(cs[N].text, solo.text);
    uint64_t steps = after.steps - before.steps;
    printf("n_seq_max %2d, n_batch %3d: 17 concurrent requests in %3llu steps (16 lone greedy runs: %llu)\n",
           n_seq_max, n_batch, (unsigned long long)steps, (unsigned long long)steps_lone_sum);
    if (min_gain)
        CHECK_MSG(steps * (uint64_t)min_gain <= steps_lone_sum, "%llu steps", (unsigned long long)steps);
    CHECK_EQ_INT(after.generated_tokens - before.generated_tokens, N * 32 + solo.n_toks);
    CHECK_EQ_INT(after.prompt_tokens - before.prompt_tokens, prompt_sum + g_runs[0].n_prompt);
    CHECK_EQ_INT(after.requests_done - before.requests_done, N + 1);
    check_idle(e);
    inf_engine_free(e);
}

// Cancel while queued and while running; a full queue; cells come back.
static void test_cancel_and_busy(inf_model *m) {
    inf_engine *e = engine_new(m, 1024, 64, 2, 1);
    if (!e) return;
    collector c[4];
    memset(c, 0, sizeof c);
    inf_request ra = greedy_request(&g_runs[0], -1, &c[0]);
    inf_request rb = greedy_request(&g_runs[1], -1, &c[1]);
    inf_request rc = greedy_request(&g_runs[2], -1, &c[2]);
    inf_request rd = greedy_request(&g_runs[2], -1, &c[3]);
    c[0].sleep_us = c[1].sleep_us = 2000;
    uint64_t ia = submit(e, &ra), ib = submit(e, &rb), ic = submit(e, &rc), id = 77;
    CHECK(ia != 0 && ib != 0 && ic != 0 && ia != ib && ib != ic);
    // 2 slots + 1 queue place are taken, whether or not the scheduler has started a or b yet.
    CHECK_EQ_INT(inf_engine_submit(e, &rd, &id), INF_ERR_BUSY);
    CHECK_EQ_INT(id, 0);
    CHECK(strstr(inf_last_error(), "busy") != NULL);
    inf_engine_cancel(e, ic);
    CHECK(wait_done(&c[2], 1));
    CHECK_EQ_INT(c[2].res.finish, INF_FINISH_CANCELLED);
    CHECK_EQ_INT(c[2].n_toks, 0);
    CHECK_NEAR(c[2].res.queue_seconds, c[2].res.total_seconds, 1e-9);
    CHECK(wait_tokens(&c[0], 3) && wait_tokens(&c[1], 3));
    inf_engine_stats st;
    inf_engine_get_stats(e, &st);
    CHECK_EQ_INT(st.running, 2);
    CHECK(st.cells_used > g_runs[0].n_prompt + g_runs[1].n_prompt);
    inf_engine_cancel(e, ia);
    inf_engine_cancel(e, 999999); // unknown: no-op
    CHECK(wait_done(&c[0], 1));
    CHECK_EQ_INT(c[0].res.finish, INF_FINISH_CANCELLED);
    CHECK(agrees_with_golden(&c[0], &g_runs[0]));
    CHECK(c[0].res.ttft_seconds > 0);
    inf_engine_get_stats(e, &st);
    CHECK_EQ_INT(st.running, 1); // b goes on
    inf_engine_cancel(e, ib);
    CHECK(wait_done(&c[1], 1));
    CHECK_EQ_INT(c[1].res.finish, INF_FINISH_CANCELLED);
    inf_engine_cancel(e, ib); // finished: no-op
    check_idle(e);
    // Room again: the refused request goes through now.
    rd.max_tokens = 4;
    submit(e, &rd);
    CHECK(wait_done(&c[3], 1));
    CHECK_EQ_INT(c[3].res.finish, INF_FINISH_LENGTH);
    CHECK(is_golden_prefix(&c[3], &g_runs[2]) && c[3].n_toks == 4);
    for (int i = 0; i < 4; i++) CHECK_EQ_INT(c[i].n_done, 1);
    for (int i = 0; i < 4; i++) CHECK_EQ_INT(c[i].tokens_after_done, 0);
    inf_engine_free(e);

    // No queue at all: one running request, the next is refused.
    e = engine_new(m, 256, 64, 1, 0);
    if (!e) return;
    collector d[2];
    memset(d, 0, sizeof d);
    inf_request r0 = greedy_request(&g_runs[0], 8, &d[0]), r1 = greedy_request(&g_runs[1], 8, &d[1]);
    submit(e, &r0);
    CHECK_EQ_INT(inf_engine_submit(e, &r1, NULL), INF_ERR_BUSY);
    CHECK(wait_done(&d[0], 1));
    submit(e, &r1);
    CHECK(wait_done(&d[1], 1));
    CHECK(is_golden_prefix(&d[1], &g_runs[1]) && d[1].n_toks == 8);
    inf_engine_free(e);
}

static void test_timeouts(inf_model *m) {
    inf_engine *e = engine_new(m, 1024, 64, 1, 4);
    if (!e) return;
    collector c[2];
    memset(c, 0, sizeof c);
    inf_request ra = greedy_request(&g_runs[0], -1, &c[0]);
    ra.timeout_seconds = 0.15;
    c[0].sleep_us = 3000;
    inf_request rb = greedy_request(&g_runs[1], 8, &c[1]);
    rb.timeout_seconds = 0.05; // waits behind a for longer than that
    submit(e, &ra);
    submit(e, &rb);
    CHECK(wait_done(c, 2));
    CHECK_EQ_INT(c[0].res.finish, INF_FINISH_TIMEOUT);
    CHECK(c[0].n_toks > 0 && c[0].n_toks < 1000 - g_runs[0].n_prompt);
    CHECK(agrees_with_golden(&c[0], &g_runs[0]));
    CHECK(c[0].res.total_seconds >= 0.15 && c[0].res.total_seconds < 5.0);
    CHECK_EQ_INT(c[1].res.finish, INF_FINISH_TIMEOUT);
    CHECK_EQ_INT(c[1].n_toks, 0);
    CHECK(c[1].res.total_seconds >= 0.05);
    CHECK_NEAR(c[1].res.queue_seconds, c[1].res.total_seconds, 1e-9);
    check_idle(e);
    inf_engine_free(e);
}

// Golden text of run 0: ", there was a little girl named Lily. She loved to play outside in the park. One
// day, she saw".
static void test_stops_and_length(inf_model *m) {
    inf_engine *e = engine_new(m, 256, 64, 4, 8);
    if (!e) return;
    const char *stop_a[] = {"Lily"};
    const char *stop_b[] = {"zebra", "girl na"}; // "girl na" spans the tokens "girl" and " named"
    const char *stop_c[] = {"saw a cat"};        // the text ends with "saw": held back, then flushed
    collector c[5];
    memset(c, 0, sizeof c);
    inf_request r[5];
    for (int i = 0; i < 5; i++) r[i] = greedy_request(&g_runs[0], 32, &c[i]);
    r[0].stops = stop_a;
    r[0].n_stops = 1;
    r[1].stops = stop_b;
    r[1].n_stops = 2;
    r[2].stops = stop_c;
    r[2].n_stops = 1;
    r[3].max_tokens = 5;
    r[4].max_tokens = 0;
    for (int i = 0; i < 5; i++) submit(e, &r[i]);
    CHECK(wait_done(c, 5));
    const char *gt = g_runs[0].text;
    CHECK_EQ_INT(c[0].res.finish, INF_FINISH_STOP);
    CHECK_STR(c[0].text, ", there was a little girl named ");
    CHECK(strstr(gt, "Lily") != NULL);
    CHECK(is_golden_prefix(&c[0], &g_runs[0]) && c[0].n_toks < 32);
    CHECK_EQ_INT(c[0].res.n_generated, c[0].n_toks);
    CHECK_EQ_INT(c[0].n_flush, 0);
    CHECK_EQ_INT(c[1].res.finish, INF_FINISH_STOP);
    CHECK_STR(c[1].text, ", there was a little ");
    CHECK_EQ_INT(c[2].res.finish, INF_FINISH_LENGTH);
    CHECK_STR(c[2].text, gt);
    CHECK_EQ_INT(c[2].n_flush, 1);
    CHECK_EQ_INT(c[3].res.finish, INF_FINISH_LENGTH);
    CHECK(is_golden_prefix(&c[3], &g_runs[0]) && c[3].n_toks == 5 && c[3].res.n_generated == 5);
    CHECK_EQ_INT(c[4].res.finish, INF_FINISH_LENGTH);
    CHECK_EQ_INT(c[4].n_toks, 0);
    CHECK_STR(inf_finish_reason_str(INF_FINISH_STOP), "stop");
    CHECK_STR(inf_finish_reason_str(INF_FINISH_LENGTH), "length");
    CHECK_STR(inf_finish_reason_str(INF_FINISH_CANCELLED), "cancelled");
    CHECK_STR(inf_finish_reason_str(INF_FINISH_TIMEOUT), "timeout");
    CHECK_STR(inf_finish_reason_str(INF_FINISH_ERROR), "error");
    check_idle(e);
    inf_engine_free(e);
}

// stories260K never ends a greedy story with EOS (it separates stories with BOS), so the end-of-generation
// path runs on a tiny model built here whose every step prefers EOS: token embeddings are all ones, every
// layer weight is zero (the residual stream stays all ones), and the output head gives EOS (id 2) the logit
// 8, token 3 ("\u2581a", text " a") 4 and the rest 0. Greedy without ignore_eos must stop at once with no
// token; with ignore_eos it must give token 3 until max_tokens. Its training context (64) also checks the
// per-sequence limit in a larger pool.
#define EOS_VOCAB 8
#define EOS_EMBD  8
#define EOS_FF    16

static bool build_eos_model(const char *path) {
    static const struct {
        const char *name;
        int64_t ne0, ne1; // ne1 = 0: 1-D
    } ts[] = {
        {"token_embd.weight", EOS_EMBD, EOS_VOCAB},  {"output_norm.weight", EOS_EMBD, 0},
        {"output.weight", EOS_EMBD, EOS_VOCAB},      {"blk.0.attn_norm.weight", EOS_EMBD, 0},
        {"blk.0.attn_q.weight", EOS_EMBD, EOS_EMBD}, {"blk.0.attn_k.weight", EOS_EMBD, 4},
        {"blk.0.attn_v.weight", EOS_EMBD, 4},        {"blk.0.attn_output.weight", EOS_EMBD, EOS_EMBD},
        {"blk.0.ffn_norm.weight", EOS_EMBD, 0},      {"blk.0.ffn_gate.weight", EOS_EMBD, EOS_FF},
        {"blk.0.ffn_up.weight", EOS_EMBD, EOS_FF},   {"blk.0.ffn_down.weight", EOS_FF, EOS_EMBD},
    };
    enum { N_T = sizeof ts / sizeof ts[0] };
    const char *toks[EOS_VOCAB] = {"<unk>", "<s>", "</s>", "\342\226\201a", "b", "c", "\342\226\201", "d"};
    float scores[EOS_VOCAB] = {0, 0, 0, -1, -2, -3, -4, -5};
    int32_t types[EOS_VOCAB] = {2, 3, 3, 1, 1, 1, 1, 1};
    gguf_build b;
    gb_init(&b, 3);
    gb_header(&b, N_T, 15);
    gb_kv_str(&b, "general.architecture", "llama");
    gb_kv_u32(&b, "llama.context_length", 64);
    gb_kv_u32(&b, "llama.embedding_length", EOS_EMBD);
    gb_kv_u32(&b, "llama.block_count", 1);
    gb_kv_u32(&b, "llama.feed_forward_length", EOS_FF);
    gb_kv_u32(&b, "llama.attention.head_count", 2);
    gb_kv_u32(&b, "llama.attention.head_count_kv", 1);
    gb_kv_u32(&b, "llama.rope.dimension_count", 4);
    gb_kv_f32(&b, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gb_kv_str(&b, "tokenizer.ggml.model", "llama");
    gb_kv_arr_str(&b, "tokenizer.ggml.tokens", toks, EOS_VOCAB);
    gb_kv_arr_f32(&b, "tokenizer.ggml.scores", scores, EOS_VOCAB);
    gb_kv_arr_i32(&b, "tokenizer.ggml.token_type", types, EOS_VOCAB);
    gb_kv_u32(&b, "tokenizer.ggml.bos_token_id", 1);
    gb_kv_u32(&b, "tokenizer.ggml.eos_token_id", 2);
    uint64_t off = 0;
    for (int i = 0; i < N_T; i++) {
        int64_t ne[2] = {ts[i].ne0, ts[i].ne1};
        uint32_t nd = ts[i].ne1 ? 2 : 1;
        gb_tensor_info(&b, ts[i].name, nd, ne, 0, off);
        off += ((uint64_t)ne[0] * (uint64_t)(nd == 2 ? ne[1] : 1) * 4 + 31) / 32 * 32;
    }
    gb_pad(&b, 32);
    for (int i = 0; i < N_T; i++) {
        int64_t rows = ts[i].ne1 ? ts[i].ne1 : 1;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < ts[i].ne0; c++) {
                float v = 0.0f;
                if (strstr(ts[i].name, "norm") || i == 0) v = 1.0f;
                if (i == 2) v = r == 2 ? 1.0f : r == 3 ? 0.5f : 0.0f;
                gb_f32(&b, v);
            }
        gb_pad(&b, 32);
    }
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(b.data, 1, b.len, f) == b.len;
    if (f) ok = fclose(f) == 0 && ok;
    gb_free(&b);
    return ok;
}

static void test_eos(void) {
    char path[] = "/tmp/inferno_test_engine_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) return;
    close(fd);
    CHECK(build_eos_model(path));
    inf_model *m = NULL;
    inf_status st = inf_model_load(path, NULL, &m);
    unlink(path);
    CHECK_MSG(st == INF_OK, "%s", inf_last_error());
    if (!m) return;
    CHECK(inf_token_is_eog(m, 2));
    inf_engine *e = engine_new(m, 64, 16, 2, 4);
    if (e) {
        collector c[2];
        memset(c, 0, sizeof c);
        golden_run g = {.prompt = {1, 3, 4}, .n_prompt = 3};
        inf_request r0 = greedy_request(&g, 10, &c[0]);
        r0.ignore_eos = false;
        inf_request r1 = greedy_request(&g, 10, &c[1]);
        submit(e, &r0);
        submit(e, &r1);
        CHECK(wait_done(c, 2));
        CHECK_EQ_INT(c[0].res.finish, INF_FINISH_STOP);
        CHECK_EQ_INT(c[0].n_toks, 0);
        CHECK_EQ_INT(c[0].res.n_generated, 0);
        CHECK(c[0].res.ttft_seconds > 0);
        CHECK_EQ_INT(c[1].res.finish, INF_FINISH_LENGTH);
        CHECK_EQ_INT(c[1].n_toks, 10);
        int n3 = 0;
        for (int i = 0; i < c[1].n_toks; i++) n3 += c[1].toks[i] == 3;
        CHECK_EQ_INT(n3, 10);
        CHECK_STR(c[1].text, " a a a a a a a a a a");
        check_idle(e);
        inf_engine_free(e);
    }
    // The model's training context (64) bounds each sequence even in a larger pool (256 cells).
    e = engine_new(m, 256, 16, 2, 4);
    if (e) {
        collector c = {0};
        golden_run g = {.prompt = {1, 3, 4}, .n_prompt = 3};
        inf_request r = greedy_request(&g, -1, &c);
        submit(e, &r);
        CHECK(wait_done(&c, 1));
        CHECK_EQ_INT(c.res.finish, INF_FINISH_LENGTH);
        CHECK_EQ_INT(c.n_toks, 64 - 3 + 1);
        check_idle(e);
        inf_token longp[65] = {1};
        r.prompt = longp;
        r.n_prompt = 65;
        CHECK_EQ_INT(inf_engine_submit(e, &r, NULL), INF_ERR_CONTEXT_FULL);
        CHECK(strstr(inf_last_error(), "65") && strstr(inf_last_error(), "context of 64"));
        inf_engine_free(e);
    }
    inf_model_free(m);
}

static void test_context_limit(inf_model *m) {
    // One sequence in 16 cells: 5 prompt tokens, then tokens until the one that finds no cell.
    inf_engine *e = engine_new(m, 16, 64, 1, 4);
    if (!e) return;
    collector c = {0};
    inf_request r = greedy_request(&g_runs[0], -1, &c);
    submit(e, &r);
    CHECK(wait_done(&c, 1));
    CHECK_EQ_INT(c.res.finish, INF_FINISH_LENGTH);
    CHECK_EQ_INT(c.n_toks, 16 - g_runs[0].n_prompt + 1);
    CHECK(is_golden_prefix(&c, &g_runs[0]));
    check_idle(e);
    // A prompt longer than the context is refused, naming both sizes.
    inf_engine_free(e);
    e = engine_new(m, 8, 64, 1, 4);
    if (!e) return;
    inf_request big = greedy_request(&g_runs[2], 4, &c);
    CHECK_EQ_INT(inf_engine_submit(e, &big, NULL), INF_ERR_CONTEXT_FULL);
    CHECK(strstr(inf_last_error(), "14") && strstr(inf_last_error(), "context of 8"));
    inf_engine_free(e);

    // Three sequences (5, 5 and 14 prompt tokens) sharing 40 cells, each generating until it runs out:
    // every one ends with LENGTH, no deadlock, and all cells come back.
    e = engine_new(m, 40, 8, 3, 4);
    if (!e) return;
    collector cs[3];
    memset(cs, 0, sizeof cs);
    for (int i = 0; i < 3; i++) {
        inf_request ri = greedy_request(&g_runs[i], -1, &cs[i]);
        submit(e, &ri);
    }
    CHECK(wait_done(cs, 3));
    int total = 0;
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(cs[i].res.finish, INF_FINISH_LENGTH);
        CHECK(agrees_with_golden(&cs[i], &g_runs[i]));
        CHECK(cs[i].n_toks >= 1);
        total += g_runs[i].n_prompt + cs[i].n_toks - 1; // the cells each held at its end
    }
    CHECK(total >= 40); // someone ran the pool dry
    check_idle(e);
    inf_engine_free(e);
}

static void test_bad_requests(inf_model *m) {
    inf_engine *e = engine_new(m, 64, 16, 1, 1);
    if (!e) return;
    collector c = {0};
    inf_request base = greedy_request(&g_runs[0], 4, &c), r;
    inf_token bad_tok[2] = {1, 512};
    const char *stops[ENGINE_MAX_STOPS + 1];
    for (int i = 0; i <= ENGINE_MAX_STOPS; i++) stops[i] = "x";
    r = base, r.n_prompt = 0;
    CHECK_EQ_INT(inf_engine_submit(e, &r, NULL), INF_ERR_INVALID_ARG);
    r = base, r.prompt = bad_tok, r.n_prompt = 2;
    CHECK_EQ_INT(inf_engine_submit(e, &r, NULL), INF_ERR_INVALID_ARG);
    CHECK(strstr(inf_last_error(), "vocabulary") != NULL);
    r = base, r.n_top_logprobs = ENGINE_MAX_TOP_LOGPROBS + 1;
    CHECK_EQ_INT(inf_engine_submit(e, &r, NULL), INF_ERR_INVALID_ARG);
    r = base, r.stops = stops, r.n_stops = ENGINE_MAX_STOPS + 1;
    CHECK_EQ_INT(inf_engine_submit(e, &r, NULL), INF_ERR_INVALID_ARG);
    r = base, r.max_tokens = -2;
    CHECK_EQ_INT(inf_engine_submit(e, &r, NULL), INF_ERR_INVALID_ARG);
    r = base, r.timeout_seconds = NAN;
    CHECK_EQ_INT(inf_engine_submit(e, &r, NULL), INF_ERR_INVALID_ARG);
    const char *empty_stop[] = {""};
    r = base, r.stops = empty_stop, r.n_stops = 1;
    CHECK_EQ_INT(inf_engine_submit(e, &r, NULL), INF_ERR_INVALID_ARG);
    CHECK(strstr(inf_last_error(), "request") != NULL);
    CHECK_EQ_INT(inf_engine_submit(e, NULL, NULL), INF_ERR_INVALID_ARG);
    inf_engine_stats st;
    inf_engine_get_stats(e, &st);
    CHECK_EQ_INT(st.queued + st.running, 0);
    CHECK_EQ_INT(c.n_done, 0);
    inf_engine_free(e);

    inf_engine_params p = inf_engine_default_params();
    inf_engine *bad = NULL;
    p.n_seq_max = 0;
    CHECK_EQ_INT(inf_engine_init(m, &p, &bad), INF_ERR_INVALID_ARG);
    p = inf_engine_default_params(), p.max_queue = -1;
    CHECK_EQ_INT(inf_engine_init(m, &p, &bad), INF_ERR_INVALID_ARG);
    p = inf_engine_default_params(), p.n_batch = 0;
    CHECK_EQ_INT(inf_engine_init(m, &p, &bad), INF_ERR_INVALID_ARG);
    CHECK(bad == NULL);
    // Default context: n_seq_max x the training context (2048), capped at 8192.
    p = inf_engine_default_params();
    CHECK_EQ_INT(inf_engine_init(m, &p, &bad), INF_OK);
    inf_engine_get_stats(bad, &st);
    CHECK_EQ_INT(st.cells_total, 8192);
    inf_engine_free(bad);
    inf_engine_free(NULL);
}

// Mean of the final-norm hidden states of prompt g, L2-normalized, from a plain session.
static void manual_embedding(inf_model *m, const golden_run *g, float *out, int n_embd) {
    inf_session_params sp = {.n_ctx = 64, .n_batch = 64, .n_seq_max = 1};
    inf_session *s = NULL;
    CHECK(inf_session_init(m, &sp, &s) == INF_OK);
    if (!s) return;
    inf_session_set_embeddings(s, true);
    int32_t pos[64], seq[64] = {0};
    int8_t want[64];
    for (int i = 0; i < g->n_prompt; i++) pos[i] = i, want[i] = 1;
    inf_batch b = {
        .n_tokens = g->n_prompt, .tokens = g->prompt, .pos = pos, .seq_id = seq, .want_logits = want};
    CHECK(inf_session_decode(s, &b) == INF_OK);
    double acc[N_EMBD_MAX] = {0}, norm = 0;
    for (int i = 0; i < g->n_prompt; i++) {
        const float *h = inf_session_embedding(s, i);
        CHECK(h != NULL);
        if (!h) break;
        for (int j = 0; j < n_embd; j++) acc[j] += h[j];
    }
    for (int j = 0; j < n_embd; j++) norm += (acc[j] / g->n_prompt) * (acc[j] / g->n_prompt);
    for (int j = 0; j < n_embd; j++) out[j] = (float)(acc[j] / g->n_prompt / sqrt(norm));
    inf_session_free(s);
}

static void test_embeddings(inf_model *m) {
    inf_model_info info;
    inf_model_get_info(m, &info);
    int E = info.n_embd;
    CHECK(E <= N_EMBD_MAX);
    // n_batch 4: prompt 2 (14 tokens) is pooled over four chunks, mixed with a generation request's decode.
    inf_engine *e = engine_new(m, 128, 4, 5, 4);
    if (!e) return;
    collector c[5];
    memset(c, 0, sizeof c);
    int which[4] = {0, 0, 1, 2};
    for (int i = 0; i < 4; i++) {
        inf_request r = greedy_request(&g_runs[which[i]], 32, &c[i]);
        r.embeddings = true;
        submit(e, &r);
    }
    inf_request gen = greedy_request(&g_runs[2], 32, &c[4]);
    submit(e, &gen);
    CHECK(wait_done(c, 5));
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_INT(c[i].res.finish, INF_FINISH_STOP);
        CHECK_EQ_INT(c[i].res.n_embd, E);
        CHECK(c[i].res.embedding != NULL);
        CHECK_EQ_INT(c[i].n_toks, 0);
        CHECK_EQ_INT(c[i].res.n_generated, 0);
        double norm = 0;
        for (int j = 0; j < E; j++) norm += (double)c[i].emb[j] * c[i].emb[j];
        CHECK_NEAR(norm, 1.0, 1e-5);
    }
    // The same prompt twice: the same embedding, up to rounding. Not bit for bit: when the two are admitted
    // in different steps their prompts are cut into different chunks, and the CPU kernels round a run of
    // positions of one sequence (attention tiles, batched matmuls) differently from a shorter one.
    double same = 0;
    for (int j = 0; j < E; j++) same = fmax(same, fabs(c[0].emb[j] - c[1].emb[j]));
    CHECK_MSG(same < 1e-5, "two embeddings of one prompt differ by %g", same);
    double diff = 0;
    for (int j = 0; j < E; j++) diff = fmax(diff, fabs(c[0].emb[j] - c[2].emb[j]));
    CHECK(diff > 1e-2);
    for (int k = 1; k < 4; k++) {
        float ref[N_EMBD_MAX];
        manual_embedding(m, &g_runs[which[k]], ref, E);
        double d = 0;
        for (int j = 0; j < E; j++) d = fmax(d, fabs(ref[j] - c[k].emb[j]));
        CHECK_MSG(d < 1e-5, "embedding of prompt %d: max difference %g from the manual mean-pool", which[k],
                  d);
    }
    CHECK(memcmp(c[4].toks, g_runs[2].gold, 32 * sizeof(inf_token)) == 0 && c[4].n_toks == 32);
    check_idle(e);
    inf_engine_free(e);
}

// Freeing with requests running and queued: each gets exactly one on_done, CANCELLED.
static void test_free_in_flight(inf_model *m) {
    enum { N = 6 };
    collector c[N];
    memset(c, 0, sizeof c);
    inf_engine *e = engine_new(m, 2048, 16, 2, 8);
    if (!e) return;
    for (int i = 0; i < N; i++) {
        inf_request r = greedy_request(&g_runs[i % 3], -1, &c[i]);
        c[i].sleep_us = 1000;
        submit(e, &r);
    }
    CHECK(wait_tokens(&c[0], 2));
    inf_engine_free(e);
    for (int i = 0; i < N; i++) {
        CHECK_EQ_INT(c[i].n_done, 1);
        CHECK_EQ_INT(c[i].res.finish, INF_FINISH_CANCELLED);
        CHECK_EQ_INT(c[i].tokens_after_done, 0);
    }
    CHECK(c[0].n_toks >= 2);
    CHECK_EQ_INT(c[5].n_toks, 0); // still queued
}

static int read_tokens(json_object *arr, inf_token *out, int cap) {
    int n = (int)json_object_array_length(arr);
    if (n > cap) n = cap;
    for (int i = 0; i < n; i++) out[i] = json_object_get_int(json_object_array_get_idx(arr, i));
    return n;
}

static bool load_golden(json_object *root) {
    json_object *greedy, *runs;
    if (!json_object_object_get_ex(root, "greedy", &greedy) ||
        !json_object_object_get_ex(greedy, "runs", &runs))
        return false;
    g_n_runs = (int)json_object_array_length(runs);
    if (g_n_runs != 3) return false;
    for (int r = 0; r < g_n_runs; r++) {
        json_object *run = json_object_array_get_idx(runs, r), *pt, *gt, *hex;
        if (!json_object_object_get_ex(run, "prompt_tokens", &pt) ||
            !json_object_object_get_ex(run, "generated_tokens", &gt) ||
            !json_object_object_get_ex(run, "generated_text_hex", &hex))
            return false;
        g_runs[r].n_prompt = read_tokens(pt, g_runs[r].prompt, 64);
        g_runs[r].n_gold = read_tokens(gt, g_runs[r].gold, 64);
        const char *h = json_object_get_string(hex);
        size_t n = strlen(h) / 2;
        if (n >= sizeof g_runs[r].text) return false;
        for (size_t i = 0; i < n; i++) {
            unsigned v = 0;
            sscanf(h + 2 * i, "%2x", &v);
            g_runs[r].text[i] = (char)v;
        }
        g_runs[r].text[n] = 0;
    }
    return true;
}

int main(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/models/stories260K.gguf", test_shared_dir());
    inf_log_set_level(INF_LOG_WARN);
    FILE *probe = fopen(path, "rb");
    if (!probe) TEST_SKIP("shared material not found at %s", test_shared_dir());
    fclose(probe);
    inf_model_params mp = inf_model_default_params();
    mp.n_threads = 1;
    inf_model *m = NULL;
    if (inf_model_load(path, &mp, &m) != INF_OK) {
        fprintf(stderr, "%s\n", inf_last_error());
        return 1;
    }
    snprintf(path, sizeof path, "%s/golden/stories260K.json", test_shared_dir());
    json_object *golden = json_object_from_file(path);
    bool ok = golden && load_golden(golden);
    CHECK(ok);
    json_object_put(golden);
    if (ok) {
        uint64_t steps_lone[3] = {0};
        test_lone_greedy(m, steps_lone);
        uint64_t lone_sum = 0;
        for (int i = 0; i < 16; i++) lone_sum += steps_lone[i % 3];
        test_logprobs(m);
        test_concurrent(m, 16, 512, lone_sum, 6);
        test_concurrent(m, 4, 512, lone_sum, 3);
        test_concurrent(m, 16, 4, lone_sum, 0);
        test_concurrent(m, 3, 6, lone_sum, 0);
        test_cancel_and_busy(m);
        test_timeouts(m);
        test_stops_and_length(m);
        test_eos();
        test_context_limit(m);
        test_embeddings(m);
        test_free_in_flight(m);
    }
    test_bad_requests(m);
    inf_model_free(m);
    return test_summary();
}
