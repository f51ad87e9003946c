// test_session.c: sessions over several sequences: the three greedy prompts of stories260K decoded
// together in one batch, then continued together one token each per step, must give llama.cpp's golden
// tokens for every sequence (the batch interface computes exactly what single-sequence runs compute);
// batch validation, context-full behaviour, truncation and clearing of sequences; decode logits that agree
// across thread counts.
#include "test.h"

#include "inferno.h"

#include <json-c/json.h>
#include <math.h>

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

static void test_multi_sequence(inf_model *m, json_object *golden) {
    json_object *greedy, *runs;
    json_object_object_get_ex(golden, "greedy", &greedy);
    json_object_object_get_ex(greedy, "runs", &runs);
    int n_seq = (int)json_object_array_length(runs);
    CHECK_EQ_INT(n_seq, 3);
    inf_token prompt[3][64], gold[3][64], gen[3][64];
    int n_prompt[3], n_gold[3];
    for (int s = 0; s < n_seq; s++) {
        json_object *run = json_object_array_get_idx(runs, s), *pt, *gt;
        json_object_object_get_ex(run, "prompt_tokens", &pt);
        json_object_object_get_ex(run, "generated_tokens", &gt);
        n_prompt[s] = (int)json_object_array_length(pt);
        n_gold[s] = (int)json_object_array_length(gt);
        for (int i = 0; i < n_prompt[s]; i++) prompt[s][i] = json_object_get_int(json_object_array_get_idx(pt, i));
        for (int i = 0; i < n_gold[s]; i++) gold[s][i] = json_object_get_int(json_object_array_get_idx(gt, i));
    }
    // Three threads, so the pool's split of rows, tokens and heads is exercised.
    inf_session_params sp = {.n_ctx = 256, .n_batch = 64, .n_seq_max = 3, .n_threads = 3};
    inf_session *sess = NULL;
    CHECK(inf_session_init(m, &sp, &sess) == INF_OK);
    if (!sess) return;

    // All prompts in one batch, interleaved token by token, logits for each sequence's last token.
    inf_token toks[192];
    int32_t pos[192], seq[192];
    int8_t want[192];
    int n = 0, last[3] = {-1, -1, -1};
    for (int i = 0; i < 64; i++)
        for (int s = 0; s < n_seq; s++) {
            if (i >= n_prompt[s]) continue;
            toks[n] = prompt[s][i];
            pos[n] = i;
            seq[n] = s;
            want[n] = i == n_prompt[s] - 1;
            if (want[n]) last[s] = n;
            n++;
        }
    inf_batch b = {.n_tokens = n, .tokens = toks, .pos = pos, .seq_id = seq, .want_logits = want};
    CHECK(inf_session_decode(sess, &b) == INF_OK);
    int n_vocab = 512;
    for (int s = 0; s < n_seq; s++) gen[s][0] = argmax(inf_session_logits(sess, last[s]), n_vocab);
    // Then one token per sequence per step, all sequences in one batch.
    for (int step = 1; step < 32; step++) {
        for (int s = 0; s < n_seq; s++) {
            toks[s] = gen[s][step - 1];
            pos[s] = n_prompt[s] + step - 1;
            seq[s] = s;
            want[s] = 1;
        }
        inf_batch bs = {.n_tokens = n_seq, .tokens = toks, .pos = pos, .seq_id = seq, .want_logits = want};
        CHECK(inf_session_decode(sess, &bs) == INF_OK);
        for (int s = 0; s < n_seq; s++) gen[s][step] = argmax(inf_session_logits(sess, s), n_vocab);
    }
    for (int s = 0; s < n_seq; s++) {
        CHECK_MSG(memcmp(gen[s], gold[s], 32 * sizeof(inf_token)) == 0, "sequence %d differs from golden", s);
        CHECK_EQ_INT(inf_session_seq_len(sess, s), n_prompt[s] + 31);
    }
    CHECK_EQ_INT(inf_session_cells_used(sess), n_prompt[0] + n_prompt[1] + n_prompt[2] + 3 * 31);

    // Truncate sequence 1 back to its prompt and regenerate: the same tokens come again.
    inf_session_seq_truncate(sess, 1, n_prompt[1]);
    CHECK_EQ_INT(inf_session_seq_len(sess, 1), n_prompt[1]);
    inf_token t = prompt[1][n_prompt[1] - 1];
    inf_session_seq_truncate(sess, 1, n_prompt[1] - 1);
    int32_t p = n_prompt[1] - 1, sq = 1;
    inf_batch one = {.n_tokens = 1, .tokens = &t, .pos = &p, .seq_id = &sq};
    CHECK(inf_session_decode(sess, &one) == INF_OK);
    CHECK_EQ_INT(argmax(inf_session_logits(sess, 0), n_vocab), gold[1][0]);
    CHECK(inf_session_logits(sess, 1) == NULL);
    CHECK(inf_session_logits(sess, -1) == inf_session_logits(sess, 0));

    // Clearing frees every cell of a sequence.
    int used = inf_session_cells_used(sess);
    inf_session_seq_clear(sess, 0);
    CHECK_EQ_INT(inf_session_cells_used(sess), used - (n_prompt[0] + 31));
    CHECK_EQ_INT(inf_session_seq_len(sess, 0), 0);
    inf_session_free(sess);
}

static void test_batch_errors(inf_model *m) {
    inf_session_params sp = {.n_ctx = 8, .n_batch = 4, .n_seq_max = 2};
    inf_session *s = NULL;
    CHECK(inf_session_init(m, &sp, &s) == INF_OK);
    if (!s) return;
    inf_token toks[8] = {1, 403, 407, 261, 378, 432, 383, 286};
    int32_t pos[8] = {0, 1, 2, 3, 4, 5, 6, 7}, seq[8] = {0};
    inf_batch b = {.n_tokens = 5, .tokens = toks, .pos = pos, .seq_id = seq};
    CHECK(inf_session_decode(s, &b) == INF_ERR_INVALID_ARG); // larger than n_batch
    CHECK(strstr(inf_last_error(), "batch size") != NULL);
    b.n_tokens = 2;
    int32_t badpos[2] = {1, 2};
    b.pos = badpos;
    CHECK(inf_session_decode(s, &b) == INF_ERR_INVALID_ARG); // positions must start at 0
    CHECK(strstr(inf_last_error(), "expects position 0") != NULL);
    b.pos = pos;
    inf_token bad_tok[2] = {1, 9999};
    b.tokens = bad_tok;
    CHECK(inf_session_decode(s, &b) == INF_ERR_INVALID_ARG);
    CHECK(strstr(inf_last_error(), "outside the vocabulary") != NULL);
    b.tokens = toks;
    int32_t bad_seq[2] = {0, 2};
    b.seq_id = bad_seq;
    CHECK(inf_session_decode(s, &b) == INF_ERR_INVALID_ARG);
    b.seq_id = seq;
    CHECK_EQ_INT(inf_session_cells_used(s), 0); // failed batches change nothing
    // Fill the context: 4 + 4 tokens fit, a 9th does not, and the failure changes nothing.
    b.n_tokens = 4;
    CHECK(inf_session_decode(s, &b) == INF_OK);
    b.tokens = toks + 4;
    b.pos = pos + 4;
    CHECK(inf_session_decode(s, &b) == INF_OK);
    CHECK_EQ_INT(inf_session_cells_used(s), 8);
    int32_t p8 = 8;
    inf_batch more = {.n_tokens = 1, .tokens = toks, .pos = &p8, .seq_id = seq};
    CHECK(inf_session_decode(s, &more) == INF_ERR_CONTEXT_FULL);
    CHECK(strstr(inf_last_error(), "context full") != NULL);
    CHECK_EQ_INT(inf_session_seq_len(s, 0), 8);
    inf_session_free(s);

    sp.n_batch = 0;
    CHECK(inf_session_init(m, &sp, &s) == INF_ERR_INVALID_ARG);
}

// The logits of a prompt and 8 greedy single-token steps with 1, 2 and 3 threads: the same up to rounding
// (the prompt's batch kernels may group rows differently by thread count; the single-token path computes
// each row with the same kernel). A thread's cached input layout going stale when other threads rewrite a
// shared input showed up exactly here, as differences of the logits' own size.
static void test_threads_agree(const char *file) {
    char path[1024];
    snprintf(path, sizeof path, "%s/models/synthetic/%s", test_shared_dir(), file);
    inf_model_params mp = inf_model_default_params();
    mp.gpu_enabled = false;
    mp.n_gpu_layers = 0;
    inf_model *m = NULL;
    if (inf_model_load(path, &mp, &m) != INF_OK) {
        fprintf(stderr, "%s: %s\n", file, inf_last_error());
        CHECK(false);
        return;
    }
    enum { P = 6, STEPS = 8, V = 512 };
    static float out[3][(STEPS + 1) * V];
    const inf_token prompt[P] = {1, 403, 261, 457, 17, 290};
    for (int k = 0; k < 3; k++) {
        inf_session_params sp = {.n_ctx = 64, .n_batch = 16, .n_seq_max = 1, .n_threads = k + 1};
        inf_session *s = NULL;
        CHECK(inf_session_init(m, &sp, &s) == INF_OK);
        if (!s) continue;
        int32_t pos[P], seq[P] = {0};
        for (int i = 0; i < P; i++) pos[i] = i;
        inf_batch b = {.n_tokens = P, .tokens = prompt, .pos = pos, .seq_id = seq};
        CHECK(inf_session_decode(s, &b) == INF_OK);
        memcpy(out[k], inf_session_logits(s, -1), sizeof(float) * V);
        for (int t = 0; t < STEPS; t++) {
            inf_token tok = (inf_token)argmax(out[k] + (size_t)t * V, V);
            int32_t p1 = P + t, s1 = 0;
            inf_batch b1 = {.n_tokens = 1, .tokens = &tok, .pos = &p1, .seq_id = &s1};
            CHECK(inf_session_decode(s, &b1) == INF_OK);
            memcpy(out[k] + (size_t)(t + 1) * V, inf_session_logits(s, -1), sizeof(float) * V);
        }
        inf_session_free(s);
    }
    double lo = INFINITY, hi = -INFINITY, d2 = 0.0, d3 = 0.0;
    for (int i = 0; i < (STEPS + 1) * V; i++) {
        lo = fmin(lo, out[0][i]), hi = fmax(hi, out[0][i]);
        d2 = fmax(d2, fabs((double)out[1][i] - out[0][i]));
        d3 = fmax(d3, fabs((double)out[2][i] - out[0][i]));
        if (!isfinite(out[1][i]) || !isfinite(out[2][i])) d2 = d3 = INFINITY;
    }
    printf("%s: max |logit - 1 thread's| / logit range: %.2e (2 threads), %.2e (3 threads)\n", file,
           d2 / (hi - lo), d3 / (hi - lo));
    CHECK(d2 <= 1e-4 * (hi - lo));
    CHECK(d3 <= 1e-4 * (hi - lo));
    inf_model_free(m);
}

int main(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/models/stories260K.gguf", test_shared_dir());
    inf_log_set_level(INF_LOG_WARN);
    inf_model *m = NULL;
    FILE *probe = fopen(path, "rb");
    if (!probe) TEST_SKIP("shared material not found at %s", test_shared_dir());
    fclose(probe);
    if (inf_model_load(path, NULL, &m) != INF_OK) {
        fprintf(stderr, "%s\n", inf_last_error());
        return 1;
    }
    snprintf(path, sizeof path, "%s/golden/stories260K.json", test_shared_dir());
    json_object *golden = json_object_from_file(path);
    CHECK(golden != NULL);
    if (golden) test_multi_sequence(m, golden);
    test_batch_errors(m);
    test_threads_agree("micro-Q4_0.gguf");
    test_threads_agree("micro-Q4_K_M-mix.gguf");
    test_threads_agree("micro-Q8_0.gguf");
    json_object_put(golden);
    inf_model_free(m);
    return test_summary();
}
