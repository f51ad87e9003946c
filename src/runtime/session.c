// session.c: sessions: KV cache allocation, batch validation, cell assignment, sequence bookkeeping and the
// public decode entry point. Leaves out the arithmetic (model/llama.c) and paging/prefix reuse (the server
// scheduler builds on seq_truncate and the cell pool).
#include "runtime/session.h"

#include <stdatomic.h>
#include <string.h>

inf_session_params inf_session_default_params(void) {
    inf_session_params p = {.n_ctx = 0, .n_batch = 512, .n_seq_max = 1, .n_threads = 0};
    return p;
}

// Bytes of every buffer inf_session_init allocates for these sizes (the memory planner's figure).
static uint64_t session_bytes(const inf_hparams *hp, int n_ctx, int n_batch, int n_seq, int n_threads,
                              size_t xq_row, int n_kv_layers) {
    uint64_t kv_dim = (uint64_t)hp->n_head_kv * hp->head_dim, q_dim = (uint64_t)hp->n_head * hp->head_dim;
    uint64_t b = (uint64_t)n_batch, f = sizeof(float);
    uint64_t kv = 2ull * (uint64_t)n_kv_layers * (uint64_t)n_ctx * kv_dim * f; // CPU layers only
    uint64_t tables = (uint64_t)n_ctx * 4 + (uint64_t)n_seq * ((uint64_t)n_ctx + 1) * 4;
    uint64_t scratch = b * f * (2 * (uint64_t)hp->n_embd + INF_MAX((uint64_t)hp->n_embd, q_dim) + q_dim +
                                2 * kv_dim + 2 * (uint64_t)hp->n_ff + (uint64_t)hp->n_rot) +
                       (uint64_t)n_ctx * f * (uint64_t)n_threads + b * xq_row + b * 8;
    return kv + tables + scratch;
}

// Widest activation row any matmul of the model quantizes (bytes per token).
static size_t widest_activation_row(const inf_model *m) {
    const inf_hparams *hp = &m->hp;
    size_t w = 0;
    const gguf_tensor *mats[8];
    for (int l = 0; l < hp->n_layer; l++) {
        const inf_layer *L = &m->layers[l];
        const gguf_tensor *all[] = {L->wq, L->wk, L->wv, L->wo, L->ffn_gate, L->ffn_up, L->ffn_down, m->output};
        memcpy(mats, all, sizeof mats);
        for (size_t i = 0; i < INF_ARRAY_LEN(mats); i++) {
            const inf_type_traits *tr = inf_type_get(mats[i]->type);
            w = INF_MAX(w, inf_row_size(tr->vec_dot_type, mats[i]->ne[0]));
        }
    }
    return w;
}

uint64_t inf_model_session_bytes(const inf_model *m, int n_ctx, int n_batch, int n_seq) {
    if (n_ctx <= 0) n_ctx = m->hp.n_ctx_train;
    if (n_batch <= 0) n_batch = 512;
    if (n_seq <= 0) n_seq = 1;
    n_batch = INF_MIN(n_batch, n_ctx);
    return session_bytes(&m->hp, n_ctx, n_batch, n_seq, m->n_threads, widest_activation_row(m),
                         model_gpu(m)->model ? INF_MAX(model_gpu(m)->layer0, 1) : m->hp.n_layer);
}

inf_status inf_session_init(inf_model *m, const inf_session_params *params, inf_session **out) {
    *out = NULL;
    inf_session_params p = params ? *params : inf_session_default_params();
    const inf_hparams *hp = &m->hp;
    if (p.n_ctx < 0 || p.n_ctx > (1 << 22)) return inf_fail(INF_ERR_INVALID_ARG, "context size %d out of range", p.n_ctx);
    if (p.n_ctx == 0) p.n_ctx = hp->n_ctx_train;
    if (p.n_batch <= 0 || p.n_batch > (1 << 16))
        return inf_fail(INF_ERR_INVALID_ARG, "batch size %d out of range [1, 65536]", p.n_batch);
    if (p.n_seq_max <= 0 || p.n_seq_max > 4096)
        return inf_fail(INF_ERR_INVALID_ARG, "n_seq_max %d out of range [1, 4096]", p.n_seq_max);
    p.n_batch = INF_MIN(p.n_batch, p.n_ctx);
    // The pool is shared by n_seq_max sequences; warn when one sequence could outgrow the training context.
    if (p.n_ctx / p.n_seq_max > hp->n_ctx_train)
        inf_log(INF_LOG_WARN, "context size %d per sequence exceeds the model's training context %d",
                p.n_ctx / p.n_seq_max, hp->n_ctx_train);

    inf_session *s = inf_calloc(1, sizeof *s);
    if (!s) return inf_fail(INF_ERR_NOMEM, "out of memory");
    s->model = m;
    s->n_ctx = p.n_ctx;
    s->n_batch = p.n_batch;
    s->n_seq_max = p.n_seq_max;
    s->n_threads = INF_MIN(p.n_threads > 0 ? p.n_threads : m->n_threads, 1024);
    s->kv_dim = hp->n_head_kv * hp->head_dim;
    s->xq_row_bytes = widest_activation_row(m);
    const inf_gpu_state *gpu = model_gpu(m); // GPU hand-over: the CPU KV cache holds the CPU layers only
    int cpu_layers = gpu->model ? INF_MAX(gpu->layer0, 1) : hp->n_layer; // >= 1 keeps the allocations non-empty
    uint64_t bytes = session_bytes(hp, s->n_ctx, s->n_batch, s->n_seq_max, s->n_threads, s->xq_row_bytes, cpu_layers);
    if (bytes > SIZE_MAX / 2) {
        free(s);
        return inf_fail(INF_ERR_NOMEM, "a session of %d tokens would need %llu bytes", p.n_ctx, (unsigned long long)bytes);
    }
    size_t kv_elems = (size_t)cpu_layers * (size_t)s->n_ctx * (size_t)s->kv_dim;
    size_t B = (size_t)s->n_batch, q_dim = (size_t)hp->n_head * hp->head_dim;
    s->k_cache = inf_malloc_array(kv_elems, sizeof(float));
    s->v_cache = inf_malloc_array(kv_elems, sizeof(float));
    s->free_cells = inf_malloc_array((size_t)s->n_ctx, sizeof(int32_t));
    s->seq_cells = inf_malloc_array((size_t)s->n_seq_max * (size_t)s->n_ctx, sizeof(int32_t));
    s->seq_len = inf_calloc((size_t)s->n_seq_max, sizeof(int32_t));
    s->x = inf_malloc_array(B * (size_t)hp->n_embd, sizeof(float));
    s->xb = inf_malloc_array(B * INF_MAX((size_t)hp->n_embd, q_dim), sizeof(float));
    s->xb2 = inf_malloc_array(B * (size_t)hp->n_embd, sizeof(float));
    s->q = inf_malloc_array(B * q_dim, sizeof(float));
    s->k = inf_malloc_array(B * (size_t)s->kv_dim, sizeof(float));
    s->v = inf_malloc_array(B * (size_t)s->kv_dim, sizeof(float));
    s->hb = inf_malloc_array(B * (size_t)hp->n_ff, sizeof(float));
    s->hb2 = inf_malloc_array(B * (size_t)hp->n_ff, sizeof(float));
    s->scores = inf_malloc_array((size_t)s->n_ctx * (size_t)s->n_threads, sizeof(float));
    s->kern = inf_cpu_kernels_get();
    s->rope = inf_malloc_array(B * (size_t)hp->n_rot, sizeof(float));
    s->xq = inf_aligned_alloc(64, B * s->xq_row_bytes);
    s->cells = inf_malloc_array(B, sizeof(int32_t));
    s->out_row = inf_malloc_array(B, sizeof(int32_t));
    if (!s->k_cache || !s->v_cache || !s->free_cells || !s->seq_cells || !s->seq_len || !s->x || !s->xb ||
        !s->xb2 || !s->q || !s->k || !s->v || !s->hb || !s->hb2 || !s->scores || !s->rope || !s->xq || !s->cells ||
        !s->out_row || inf_pool_init(s->n_threads, &s->pool) != INF_OK) {
        inf_session_free(s);
        return inf_fail(INF_ERR_NOMEM, "out of memory allocating a session of %d tokens (%.1f MiB)", p.n_ctx,
                        (double)bytes / (1024.0 * 1024.0));
    }
    // ---- GPU hand-over: the GPU layers' KV cache and compute buffers ----
    if (gpu->model) {
#ifdef INFERNO_CUDA
        char err[256];
        uint64_t g_kv = 0, g_compute = 0;
        cuda_session_bytes(&gpu->dims, s->n_ctx, s->n_batch, s->n_seq_max, &g_kv, &g_compute);
        if (!cuda_session_init(gpu->model, s->n_ctx, s->n_batch, s->n_seq_max, &s->gpu, err, sizeof err)) {
            inf_session_free(s);
            return inf_fail(INF_ERR_NOMEM, "GPU session of %d tokens: %s", p.n_ctx, err);
        }
        s->gpu_layer0 = gpu->layer0;
        uint64_t c_kv = 2 * kv_elems * sizeof(float);
        double M = 1024.0 * 1024.0;
        // The decode kernel's column copies are made or declined with the model's first GPU session: say so once.
        uint64_t col = 0;
        if (cuda_model_col_bytes(gpu->model, &col) && !atomic_exchange(&m->gpu->col_logged, 1))
            inf_log(gpu->log_level, "GPU: column copies of attn_output and ffn_down for the decode kernel: %.2f MiB%s",
                    (double)col / M, col ? "" : " (declined: a weight type it does not take, or not enough free VRAM)");
        inf_log(gpu->log_level, "session buffers: KV cache CPU %.2f MiB, CUDA0 %.2f MiB (F16); compute CPU %.2f MiB, "
                "CUDA0 %.2f MiB; total CPU %.2f MiB, CUDA0 %.2f MiB", (double)c_kv / M, (double)g_kv / M,
                (double)(bytes - c_kv) / M, (double)g_compute / M, (double)bytes / M, (double)(g_kv + g_compute) / M);
#endif
    }
    // Free cells are popped from the end: push them in reverse so the cache fills from cell 0.
    for (int i = 0; i < s->n_ctx; i++) s->free_cells[i] = s->n_ctx - 1 - i;
    s->n_free = s->n_ctx;
    inf_log(INF_LOG_DEBUG, "session: n_ctx %d, n_batch %d, n_seq_max %d, threads %d, %.2f MiB (KV cache %.2f MiB)",
            s->n_ctx, s->n_batch, s->n_seq_max, s->n_threads, (double)bytes / (1024.0 * 1024.0),
            (double)(2 * kv_elems * sizeof(float)) / (1024.0 * 1024.0));
    *out = s;
    return INF_OK;
}

void inf_session_free(inf_session *s) {
    if (!s) return;
#ifdef INFERNO_CUDA
    char prof[4096]; // GPU hand-over: the per-op profile (INFERNO_CUDA_PROFILE=1), then the GPU buffers
    if (cuda_session_profile(s->gpu, prof, sizeof prof)) inf_log(INF_LOG_INFO, "%s", prof);
    long captured = 0, replayed = 0;
    if (s->gpu) cuda_session_graph_stats(s->gpu, &captured, &replayed);
    if (captured > 0)
        inf_log(INF_LOG_INFO, "GPU multi-token steps: %ld replayed from %ld graphs", replayed, captured);
    cuda_session_free(s->gpu);
#endif
    free(s->k_cache);
    free(s->v_cache);
    free(s->free_cells);
    free(s->seq_cells);
    free(s->seq_len);
    free(s->x);
    free(s->xb);
    free(s->xb2);
    free(s->q);
    free(s->k);
    free(s->v);
    free(s->hb);
    free(s->hb2);
    free(s->scores);
    free(s->rope);
    inf_aligned_free(s->xq);
    free(s->cells);
    free(s->out_row);
    free(s->logits);
    free(s->embd);
    inf_pool_free(s->pool);
    free(s);
}

// Checks a batch without changing anything: ids in range, each sequence's positions contiguous after what
// is cached, enough free cells, and logits room.
static inf_status batch_validate(inf_session *s, const inf_batch *b, int *n_outputs) {
    if (!b || b->n_tokens <= 0 || !b->tokens || !b->pos || !b->seq_id)
        return inf_fail(INF_ERR_INVALID_ARG, "empty or incomplete batch");
    if (b->n_tokens > s->n_batch)
        return inf_fail(INF_ERR_INVALID_ARG, "batch of %d tokens exceeds the session's batch size %d", b->n_tokens,
                        s->n_batch);
    if (b->n_tokens > s->n_free)
        return inf_fail(INF_ERR_CONTEXT_FULL, "context full: %d tokens do not fit in the %d free of %d cells",
                        b->n_tokens, s->n_free, s->n_ctx);
    int n_vocab = s->model->hp.n_vocab;
    int outputs = 0;
    for (int i = 0; i < b->n_tokens; i++) {
        int seq = b->seq_id[i];
        if (b->tokens[i] < 0 || b->tokens[i] >= n_vocab)
            return inf_fail(INF_ERR_INVALID_ARG, "token %d at batch index %d is outside the vocabulary (%d)",
                            b->tokens[i], i, n_vocab);
        if (seq < 0 || seq >= s->n_seq_max)
            return inf_fail(INF_ERR_INVALID_ARG, "sequence id %d out of range [0, %d)", seq, s->n_seq_max);
        // The expected position is the cached length plus the earlier tokens of this sequence in the batch.
        int expect = s->seq_len[seq];
        for (int j = 0; j < i; j++) expect += b->seq_id[j] == seq;
        if (b->pos[i] != expect)
            return inf_fail(INF_ERR_INVALID_ARG, "batch index %d: sequence %d expects position %d, got %d", i, seq,
                            expect, b->pos[i]);
        if (b->want_logits ? b->want_logits[i] != 0 : i == b->n_tokens - 1) outputs++;
    }
    *n_outputs = outputs;
    return INF_OK;
}

inf_status inf_session_decode(inf_session *s, const inf_batch *b) {
    int n_outputs = 0;
    inf_status st = batch_validate(s, b, &n_outputs);
    if (st != INF_OK) return st;
    size_t n_vocab = (size_t)s->model->hp.n_vocab;
    if ((size_t)n_outputs > s->logits_rows) {
        float *nl = realloc(s->logits, (size_t)n_outputs * n_vocab * sizeof(float));
        if (!nl) return inf_fail(INF_ERR_NOMEM, "out of memory for %d rows of logits", n_outputs);
        s->logits = nl;
        s->logits_rows = (size_t)n_outputs;
    }
    if (s->embeddings && (size_t)n_outputs > s->embd_rows) {
        float *ne = realloc(s->embd, (size_t)n_outputs * (size_t)s->model->hp.n_embd * sizeof(float));
        if (!ne) return inf_fail(INF_ERR_NOMEM, "out of memory for %d rows of embeddings", n_outputs);
        s->embd = ne;
        s->embd_rows = (size_t)n_outputs;
    }
    int row = 0;
    for (int i = 0; i < b->n_tokens; i++) {
        int seq = b->seq_id[i];
        int cell = s->free_cells[--s->n_free];
        s->cells[i] = cell;
        s->seq_cells[(size_t)seq * (size_t)s->n_ctx + (size_t)b->pos[i]] = cell;
        s->seq_len[seq]++;
        bool want = b->want_logits ? b->want_logits[i] != 0 : i == b->n_tokens - 1;
        s->out_row[i] = want ? row++ : -1;
    }
    s->n_last = b->n_tokens;
    s->logits_row = NULL;
    return llama_forward(s, b);
}

// The output row of batch index i (i < 0: the last token with one), or -1.
static int output_row(const inf_session *s, int i) {
    if (i < 0) {
        for (int j = s->n_last - 1; j >= 0; j--)
            if (s->out_row[j] >= 0) return s->out_row[j];
        return -1;
    }
    return i < s->n_last ? s->out_row[i] : -1;
}

const float *inf_session_logits(const inf_session *s, int i) {
    int row = output_row(s, i);
    if (row < 0) return NULL;
    if (s->logits_row) return s->logits_row; // a step of one output row on the GPU
    return s->logits + (size_t)row * (size_t)s->model->hp.n_vocab;
}

void inf_session_set_embeddings(inf_session *s, bool on) { s->embeddings = on; }

const float *inf_session_embedding(const inf_session *s, int i) {
    if (!s->embeddings || !s->embd) return NULL;
    int row = output_row(s, i);
    if (row < 0) return NULL;
    return s->embd + (size_t)row * (size_t)s->model->hp.n_embd;
}

int inf_model_n_embd(const inf_model *m) { return m->hp.n_embd; }

int inf_session_n_ctx(const inf_session *s) { return s->n_ctx; }
int inf_session_cells_used(const inf_session *s) { return s->n_ctx - s->n_free; }

int inf_session_seq_len(const inf_session *s, int seq) {
    return seq >= 0 && seq < s->n_seq_max ? s->seq_len[seq] : 0;
}

void inf_session_seq_truncate(inf_session *s, int seq, int pos) {
    if (seq < 0 || seq >= s->n_seq_max) return;
    if (pos < 0) pos = 0;
    while (s->seq_len[seq] > pos) {
        int p = --s->seq_len[seq];
        s->free_cells[s->n_free++] = s->seq_cells[(size_t)seq * (size_t)s->n_ctx + (size_t)p];
    }
}

void inf_session_seq_clear(inf_session *s, int seq) { inf_session_seq_truncate(s, seq, 0); }
