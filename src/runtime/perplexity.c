// perplexity.c: llama.cpp-compatible perplexity over a text (see inf_perplexity in inferno.h for the method).
// The figures compare with llama-perplexity's "[i]ppl" lines and "Final estimate" for the same settings.
#include "runtime/session.h"

#include <math.h>
#include <string.h>

// log p(token) under softmax(logits), in double as llama.cpp's perplexity tool sums it.
static double log_prob(const float *logits, int n_vocab, int token) {
    float mx = logits[0];
    for (int i = 1; i < n_vocab; i++) mx = INF_MAX(mx, logits[i]);
    double sum = 0.0;
    for (int i = 0; i < n_vocab; i++) sum += (double)expf(logits[i] - mx);
    return (double)(logits[token] - mx) - log(sum);
}

inf_status inf_perplexity(inf_model *m, const char *text, size_t len, int n_ctx, int n_batch, int n_threads,
                          inf_perplexity_chunk_fn chunk_fn, void *user, inf_perplexity_result *out) {
    memset(out, 0, sizeof *out);
    if (n_ctx < 4 || n_ctx > (1 << 20)) return inf_fail(INF_ERR_INVALID_ARG, "perplexity context %d out of range", n_ctx);
    if (n_batch <= 0) n_batch = n_ctx;
    n_batch = INF_MIN(n_batch, n_ctx);
    double t0 = inf_time_now();
    int n_tok = 0;
    inf_status st = inf_tokenize(m, text, len, true, false, NULL, 0, &n_tok);
    if (st != INF_OK) return st;
    inf_token *tokens = inf_malloc_array((size_t)n_tok, sizeof *tokens);
    if (!tokens) return inf_fail(INF_ERR_NOMEM, "out of memory for %d tokens", n_tok);
    if ((st = inf_tokenize(m, text, len, true, false, tokens, n_tok, &n_tok)) != INF_OK) goto done;
    out->n_tokens = n_tok;
    if (n_tok < 2 * n_ctx) {
        st = inf_fail(INF_ERR_INVALID_ARG, "the text has %d tokens; perplexity with context %d needs at least %d",
                      n_tok, n_ctx, 2 * n_ctx);
        goto done;
    }
    inf_session_params sp = {.n_ctx = n_ctx, .n_batch = n_batch, .n_seq_max = 1, .n_threads = n_threads};
    inf_session *s = NULL;
    if ((st = inf_session_init(m, &sp, &s)) != INF_OK) goto done;
    int32_t *pos = inf_malloc_array((size_t)n_batch, sizeof(int32_t));
    int32_t *seq = inf_calloc((size_t)n_batch, sizeof(int32_t));
    int8_t *want = inf_malloc((size_t)n_batch);
    if (!pos || !seq || !want) {
        st = inf_fail(INF_ERR_NOMEM, "out of memory");
        goto chunks_done;
    }
    memset(want, 1, (size_t)n_batch);
    int n_chunks = n_tok / n_ctx, first = n_ctx / 2, bos = inf_token_bos(m);
    int n_vocab = m->hp.n_vocab;
    double nll = 0.0, nll2 = 0.0;
    int count = 0;
    for (int c = 0; c < n_chunks; c++) {
        inf_session_seq_clear(s, 0);
        const inf_token *chunk = tokens + (size_t)c * (size_t)n_ctx;
        for (int b0 = 0; b0 < n_ctx; b0 += n_batch) {
            int nb = INF_MIN(n_batch, n_ctx - b0);
            inf_token saved = chunk[b0];
            if (b0 == 0 && bos >= 0) tokens[(size_t)c * (size_t)n_ctx] = bos;
            for (int i = 0; i < nb; i++) pos[i] = b0 + i;
            inf_batch b = {.n_tokens = nb, .tokens = chunk + b0, .pos = pos, .seq_id = seq, .want_logits = want};
            st = inf_session_decode(s, &b);
            tokens[(size_t)c * (size_t)n_ctx + (size_t)b0] = saved;
            if (st != INF_OK) goto chunks_done;
            // Score the predictions of positions first .. n_ctx-2 that fall in this batch.
            for (int i = 0; i < nb; i++) {
                int p = b0 + i;
                if (p < first || p >= n_ctx - 1) continue;
                double lp = log_prob(inf_session_logits(s, i), n_vocab, chunk[p + 1]);
                nll -= lp;
                nll2 += lp * lp;
                count++;
            }
        }
        if (chunk_fn) chunk_fn(c, n_chunks, exp(nll / count), user);
    }
    double mean = nll / count, mean2 = nll2 / count;
    out->ppl = exp(mean);
    double var = mean2 - mean * mean;
    out->ppl_stderr = var > 0 && count > 1 ? sqrt(var / (count - 1)) * out->ppl : 0.0;
    out->n_chunks = n_chunks;
    out->n_scored = count;
    out->seconds = inf_time_now() - t0;
chunks_done:
    free(pos);
    free(seq);
    free(want);
    inf_session_free(s);
done:
    free(tokens);
    return st;
}
