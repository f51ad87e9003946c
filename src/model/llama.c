// llama.c: the llama forward pass over a batch of tokens that may belong to several sequences at different
// positions. Read top to bottom, it is the whole model: embedding lookup, then per layer RMSNorm, Q/K/V
// projections, RoPE, KV-cache write, grouped-query causal attention, output projection and residual,
// RMSNorm, SwiGLU feed-forward and residual; then the final norm and the output head for the tokens that
// asked for logits.
//
// Numerics follow llama.cpp's CPU backend so that logits agree with it: every matmul quantizes its input
// activations to the weight type's vec_dot_type (Q8_0, Q8_1, Q8_K, F16, BF16 or F32) once per token, then
// takes dot products per weight row; norms and softmax sum in double; RoPE angles follow ggml's recurrence.
// Leaves out: threading and SIMD (the CPU backend's kernels replace matmul and attention), other
// architectures.
#include "runtime/session.h"

#include <math.h>
#include <string.h>

// ---- opt-in step profile (INFERNO_PROFILE=1): thread 0's time per step kind, printed at session free ----
typedef enum {
    P_EMBED, P_NORM, P_QUANT, P_MM_Q, P_MM_K, P_MM_V, P_MM_O, P_MM_GATE, P_MM_UP, P_MM_DOWN, P_MM_OUT, P_ROPE,
    P_ATTN, P_SWIGLU, P_BARRIER, P_KINDS
} prof_kind;
static const char *const prof_kind_names[P_KINDS] = {
    "embed+rope table", "residual+norm", "quantize", "matmul attn_q", "matmul attn_k", "matmul attn_v",
    "matmul attn_output", "matmul ffn_gate", "matmul ffn_up", "matmul ffn_down", "matmul output",
    "rope+kv write", "attention", "swiglu", "barrier wait"};
static const char *const prof_group_names[2] = {"decode (1 token)", "batch (>1 token)"};

// Charges the time since the last mark to a kind; a no-op unless this is thread 0 of a profiled pool.
typedef struct {
    inf_pool *pool;
    bool on;
    int group;
    uint64_t t;
} prof_clock;

static inline void prof_mark(prof_clock *pc, prof_kind k) {
    if (!pc->on) return;
    uint64_t now = inf_pool_now_ns();
    inf_pool_profile_add(pc->pool, pc->group, (int)k, now - pc->t);
    pc->t = now;
}

static void step_barrier(inf_session *s, prof_clock *pc) {
    inf_pool_barrier(s->pool);
    prof_mark(pc, P_BARRIER);
}

// ---- matmul in two phases, both split across the pool's threads ----
// quantize_input: x (T, n_in) -> s->xq in the vec_dot_type of w (skipped when xq already holds x in that
// type), then a barrier. matmul_rows: this thread's share of y (T, n_out) = x · W^T, W stored as n_out rows
// of n_in elements in its block format. One token uses the dot-product kernel; more use GEMM tiles that
// reuse each weight block across all tokens.
typedef struct {
    const float *x; // what xq currently holds, or NULL
    inf_type type;
} xq_state;

static void quantize_input(inf_session *s, xq_state *qs, const gguf_tensor *w, const float *x, int T, int ith,
                           int nth, prof_clock *pc) {
    inf_type vdt = inf_type_get(w->type)->vec_dot_type;
    if (vdt == INF_TYPE_F32 || (qs->x == x && qs->type == vdt)) return;
    int64_t n_in = w->ne[0];
    size_t x_row = inf_row_size(vdt, n_in);
    int64_t t0, t1;
    inf_pool_share(T, ith, nth, 1, &t0, &t1);
    for (int64_t t = t0; t < t1; t++) s->kern->quantize[vdt](x + t * n_in, (char *)s->xq + (size_t)t * x_row, n_in);
    qs->x = x;
    qs->type = vdt;
    prof_mark(pc, P_QUANT);
    step_barrier(s, pc);
}

static void matmul_rows(inf_session *s, const gguf_tensor *w, const float *x, int T, float *y, int ith, int nth) {
    inf_type vdt = inf_type_get(w->type)->vec_dot_type;
    int64_t n_in = w->ne[0], n_out = w->ne[1];
    size_t w_row = inf_row_size(w->type, n_in), x_row = inf_row_size(vdt, n_in);
    const char *xq = vdt == INF_TYPE_F32 ? (const char *)x : (const char *)s->xq;
    const char *wd = w->data;
    int64_t r0, r1;
    inf_pool_share(n_out, ith, nth, 16, &r0, &r1);
    if (T == 1) {
        inf_vec_dot_fn dot = s->kern->vec_dot[w->type];
        for (int64_t r = r0; r < r1; r++) y[r] = dot(n_in, wd + (size_t)r * w_row, xq);
        return;
    }
    // Cache blocking: a block of MM_ROWS weight rows stays in L2 while all the activation rows stream past
    // it; the kernel blocks the columns itself and reuses each decoded weight tile across them.
    enum { MM_ROWS = 64 };
    inf_gemm_fn gemm = s->kern->gemm[w->type];
    for (int64_t r = r0; r < r1; r += MM_ROWS) {
        int nr = (int)INF_MIN(MM_ROWS, r1 - r);
        gemm(n_in, wd + (size_t)r * w_row, w_row, nr, xq, x_row, T, y + r, (size_t)n_out);
    }
}

// out = x / sqrt(mean(x^2) + eps) * weight, as ggml's rms_norm followed by mul.
static void rmsnorm(float *out, const float *x, const float *weight, int n, float eps) {
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += (double)(x[i] * x[i]);
    float scale = 1.0f / sqrtf((float)(sum / n) + eps);
    for (int i = 0; i < n; i++) out[i] = (x[i] * scale) * weight[i];
}

static float rope_yarn_ramp(float low, float high, int i0) {
    float y = ((float)(i0 / 2) - low) / INF_MAX(0.001f, high - low);
    return 1.0f - INF_MIN(1.0f, INF_MAX(0.0f, y));
}

static float rope_corr_dim(int n_dims, int n_ctx_orig, float n_rot, float base) {
    return (float)n_dims * logf((float)n_ctx_orig / (n_rot * 2.0f * (float)M_PI)) / (2.0f * logf(base));
}

// cos/sin pairs for position pos over the rotated dimensions, as ggml's rope cache computes them: the angle
// advances by a float multiplication per pair, then linear or YaRN scaling and optional frequency factors.
static void rope_table(const inf_model *m, int pos, float *cs) {
    const inf_hparams *hp = &m->hp;
    float theta_scale = powf(hp->rope_freq_base, -2.0f / (float)hp->n_rot);
    float corr[2] = {0.0f, 0.0f};
    if (hp->yarn_ext_factor != 0.0f) {
        float lo = floorf(rope_corr_dim(hp->n_rot, hp->rope_n_ctx_orig, hp->yarn_beta_fast, hp->rope_freq_base));
        float hi = ceilf(rope_corr_dim(hp->n_rot, hp->rope_n_ctx_orig, hp->yarn_beta_slow, hp->rope_freq_base));
        corr[0] = INF_MAX(0.0f, lo);
        corr[1] = INF_MIN((float)(hp->n_rot - 1), hi);
    }
    float theta = (float)pos;
    for (int i0 = 0; i0 < hp->n_rot; i0 += 2) {
        float ff = m->rope_freqs ? m->rope_freqs[i0 / 2] : 1.0f;
        float theta_extrap = theta / ff;
        float theta_interp = hp->rope_freq_scale * theta_extrap;
        float th = theta_interp, mscale = hp->yarn_attn_factor;
        if (hp->yarn_ext_factor != 0.0f) {
            float mix = rope_yarn_ramp(corr[0], corr[1], i0) * hp->yarn_ext_factor;
            th = theta_interp * (1.0f - mix) + theta_extrap * mix;
            mscale *= 1.0f + 0.1f * logf(1.0f / hp->rope_freq_scale);
        }
        cs[i0] = cosf(th) * mscale;
        cs[i0 + 1] = sinf(th) * mscale;
        theta *= theta_scale;
    }
}

// Rotates each head of x (n_heads heads of head_dim) with the table cs.
static void rope_apply(const inf_hparams *hp, float *x, int n_heads, const float *cs) {
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * (size_t)hp->head_dim;
        for (int i0 = 0; i0 < hp->n_rot; i0 += 2) {
            int a = hp->rope_mode == INF_ROPE_NORMAL ? i0 : i0 / 2;
            int b = hp->rope_mode == INF_ROPE_NORMAL ? i0 + 1 : i0 / 2 + hp->n_rot / 2;
            float c = cs[i0], sn = cs[i0 + 1], x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * sn;
            v[b] = x0 * sn + x1 * c;
        }
    }
}

// Dot product and axpy with 8 independent accumulators, so the compiler vectorizes them.
static float dot_f32(const float *a, const float *b, int n) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
    float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++) sum += a[i] * b[i];
    return sum;
}

static void axpy_f32(float *y, float a, const float *x, int n) {
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

// Causal grouped-query attention of one query head of token t (sequence seq, position pos) over the cached
// positions 0..pos of its sequence; writes head_dim values to out. scores has room for n_ctx floats.
static void attention_head(inf_session *s, int layer, const float *qh, int h, int seq, int pos, float *scores,
                           float *out) {
    const inf_hparams *hp = &s->model->hp;
    int hd = hp->head_dim, group = hp->n_head / hp->n_head_kv;
    float scale = 1.0f / sqrtf((float)hd);
    size_t layer_off = (size_t)layer * (size_t)s->n_ctx * (size_t)s->kv_dim;
    size_t kv_off = (size_t)(h / group) * (size_t)hd;
    const int32_t *cells = s->seq_cells + (size_t)seq * (size_t)s->n_ctx;
    float mx = -INFINITY;
    for (int j = 0; j <= pos; j++) {
        const float *kj = s->k_cache + layer_off + (size_t)cells[j] * (size_t)s->kv_dim + kv_off;
        scores[j] = dot_f32(qh, kj, hd) * scale;
        mx = INF_MAX(mx, scores[j]);
    }
    double sum = 0.0;
    for (int j = 0; j <= pos; j++) {
        float e = expf(scores[j] - mx);
        scores[j] = e;
        sum += (double)e;
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < hd; i++) out[i] = 0.0f;
    for (int j = 0; j <= pos; j++) {
        const float *vj = s->v_cache + layer_off + (size_t)cells[j] * (size_t)s->kv_dim + kv_off;
        axpy_f32(out, scores[j] * inv, vj, hd);
    }
}

typedef struct {
    inf_session *s;
    const inf_batch *b;
} forward_ctx;

// The whole forward pass, run by every thread of the pool at once; each step takes this thread's share and
// the barriers order dependent steps. Every thread follows the same path, so the xq_state copies agree.
static void forward_worker(void *arg, int ith, int nth) {
    forward_ctx *fc = arg;
    inf_session *s = fc->s;
    const inf_batch *b = fc->b;
    const inf_model *m = s->model;
    const inf_hparams *hp = &m->hp;
    const int T = b->n_tokens, E = hp->n_embd, F = hp->n_ff;
    const int Q = hp->n_head * hp->head_dim, KV = s->kv_dim;
    xq_state qs = {NULL, INF_TYPE_F32};
    prof_clock pc = {s->pool, ith == 0 && inf_pool_profiling(s->pool), T > 1, 0};
    if (pc.on) pc.t = inf_pool_now_ns();
    int64_t t0, t1;
    inf_pool_share(T, ith, nth, 1, &t0, &t1);

    // Embedding rows (dequantized from token_embd), the RoPE table of each token's position, and the first
    // layer's attention norm.
    const inf_type_traits *et = inf_type_get(m->token_embd->type);
    size_t embd_row = inf_row_size(m->token_embd->type, E);
    for (int64_t t = t0; t < t1; t++) {
        et->dequantize((const char *)m->token_embd->data + (size_t)b->tokens[t] * embd_row, s->x + t * E, E);
        rope_table(m, b->pos[t], s->rope + (size_t)t * (size_t)hp->n_rot);
        rmsnorm(s->xb + t * E, s->x + t * E, m->layers[0].attn_norm, E, hp->rms_eps);
    }
    prof_mark(&pc, P_EMBED);
    step_barrier(s, &pc);

    // GPU hand-over: layers [gpu_layer0, n_layer) and the output head run on the GPU (llama_forward).
    const int n_cpu_layers = s->gpu ? s->gpu_layer0 : hp->n_layer;
    for (int l = 0; l < n_cpu_layers; l++) {
        const inf_layer *L = &m->layers[l];
        // attention block: Q, K, V projections (one quantization of the normed input when their types agree)
        quantize_input(s, &qs, L->wq, s->xb, T, ith, nth, &pc);
        matmul_rows(s, L->wq, s->xb, T, s->q, ith, nth);
        prof_mark(&pc, P_MM_Q);
        quantize_input(s, &qs, L->wk, s->xb, T, ith, nth, &pc);
        matmul_rows(s, L->wk, s->xb, T, s->k, ith, nth);
        prof_mark(&pc, P_MM_K);
        quantize_input(s, &qs, L->wv, s->xb, T, ith, nth, &pc);
        matmul_rows(s, L->wv, s->xb, T, s->v, ith, nth);
        prof_mark(&pc, P_MM_V);
        step_barrier(s, &pc);
        // biases, RoPE and the KV-cache write, per token
        size_t layer_off = (size_t)l * (size_t)s->n_ctx * (size_t)KV;
        for (int64_t t = t0; t < t1; t++) {
            float *q = s->q + t * Q, *k = s->k + t * KV, *v = s->v + t * KV;
            const float *cs = s->rope + (size_t)t * (size_t)hp->n_rot;
            if (L->bq) for (int i = 0; i < Q; i++) q[i] += L->bq[i];
            if (L->bk) for (int i = 0; i < KV; i++) k[i] += L->bk[i];
            if (L->bv) for (int i = 0; i < KV; i++) v[i] += L->bv[i];
            rope_apply(hp, q, hp->n_head, cs);
            rope_apply(hp, k, hp->n_head_kv, cs);
            memcpy(s->k_cache + layer_off + (size_t)s->cells[t] * KV, k, (size_t)KV * sizeof(float));
            memcpy(s->v_cache + layer_off + (size_t)s->cells[t] * KV, v, (size_t)KV * sizeof(float));
        }
        prof_mark(&pc, P_ROPE);
        step_barrier(s, &pc);
        // attention, one (token, head) pair at a time
        int64_t p0, p1;
        inf_pool_share((int64_t)T * hp->n_head, ith, nth, 1, &p0, &p1);
        float *scores = s->scores + (size_t)ith * (size_t)s->n_ctx;
        for (int64_t p = p0; p < p1; p++) {
            int t = (int)(p / hp->n_head), h = (int)(p % hp->n_head);
            attention_head(s, l, s->q + (size_t)t * Q + (size_t)h * hp->head_dim, h, b->seq_id[t], b->pos[t], scores,
                           s->xb + (size_t)t * Q + (size_t)h * hp->head_dim);
        }
        qs.x = NULL; // xb now holds the attention output
        prof_mark(&pc, P_ATTN);
        step_barrier(s, &pc);
        quantize_input(s, &qs, L->wo, s->xb, T, ith, nth, &pc);
        matmul_rows(s, L->wo, s->xb, T, s->xb2, ith, nth);
        prof_mark(&pc, P_MM_O);
        step_barrier(s, &pc);
        // residual, then the feed-forward norm
        for (int64_t t = t0; t < t1; t++) {
            for (int i = 0; i < E; i++) s->x[t * E + i] += s->xb2[t * E + i];
            rmsnorm(s->xb + t * E, s->x + t * E, L->ffn_norm, E, hp->rms_eps);
        }
        qs.x = NULL; // xb now holds the feed-forward input
        prof_mark(&pc, P_NORM);
        step_barrier(s, &pc);
        // feed-forward block: down(silu(gate(x)) * up(x))
        quantize_input(s, &qs, L->ffn_gate, s->xb, T, ith, nth, &pc);
        matmul_rows(s, L->ffn_gate, s->xb, T, s->hb, ith, nth);
        prof_mark(&pc, P_MM_GATE);
        quantize_input(s, &qs, L->ffn_up, s->xb, T, ith, nth, &pc);
        matmul_rows(s, L->ffn_up, s->xb, T, s->hb2, ith, nth);
        prof_mark(&pc, P_MM_UP);
        step_barrier(s, &pc);
        for (int64_t t = t0; t < t1; t++)
            for (int i = 0; i < F; i++) {
                float g = s->hb[t * F + i];
                s->hb[t * F + i] = g / (1.0f + expf(-g)) * s->hb2[t * F + i];
            }
        prof_mark(&pc, P_SWIGLU);
        step_barrier(s, &pc);
        quantize_input(s, &qs, L->ffn_down, s->hb, T, ith, nth, &pc);
        matmul_rows(s, L->ffn_down, s->hb, T, s->xb2, ith, nth);
        prof_mark(&pc, P_MM_DOWN);
        step_barrier(s, &pc);
        // residual, then the next layer's attention norm (or, after the last layer, the output norm of the
        // tokens that asked for logits, packed in output-row order)
        for (int64_t t = t0; t < t1; t++) {
            for (int i = 0; i < E; i++) s->x[t * E + i] += s->xb2[t * E + i];
            if (l + 1 < hp->n_layer) rmsnorm(s->xb + t * E, s->x + t * E, m->layers[l + 1].attn_norm, E, hp->rms_eps);
        }
        qs.x = NULL; // xb is rewritten
        prof_mark(&pc, P_NORM);
        step_barrier(s, &pc);
    }
    if (s->gpu) return; // GPU hand-over: s->x holds the residual stream entering layer gpu_layer0

    for (int64_t t = t0; t < t1; t++)
        if (s->out_row[t] >= 0)
            rmsnorm(s->xb + (size_t)s->out_row[t] * E, s->x + t * E, m->output_norm, E, hp->rms_eps);
    int n_out = 0;
    for (int t = 0; t < T; t++) n_out += s->out_row[t] >= 0;
    prof_mark(&pc, P_NORM);
    step_barrier(s, &pc);
    if (!n_out) return;
    if (s->embeddings && ith == 0) memcpy(s->embd, s->xb, (size_t)n_out * (size_t)E * sizeof(float));
    quantize_input(s, &qs, m->output, s->xb, n_out, ith, nth, &pc);
    matmul_rows(s, m->output, s->xb, n_out, s->logits, ith, nth);
        prof_mark(&pc, P_MM_OUT);
}

// INFERNO_PROFILE=1 in the environment (read once per process) turns the step profile on for every session.
static bool profile_requested(void) {
    static _Atomic int state; // 0 unread, 1 off, 2 on
    int st = state;
    if (!st) {
        const char *e = getenv("INFERNO_PROFILE");
        st = e && *e && strcmp(e, "0") != 0 ? 2 : 1;
        state = st;
    }
    return st == 2;
}

inf_status llama_forward(inf_session *s, const inf_batch *b) {
    forward_ctx fc = {s, b};
    if (profile_requested() && !inf_pool_profiling(s->pool))
        inf_pool_profile_enable(s->pool, "cpu profile", 2, prof_group_names, P_KINDS, prof_kind_names);
    uint64_t t_run = inf_pool_profiling(s->pool) ? inf_pool_now_ns() : 0;
    inf_pool_run(s->pool, forward_worker, &fc);
    if (t_run) inf_pool_profile_run(s->pool, b->n_tokens > 1, inf_pool_now_ns() - t_run, b->n_tokens);
#ifdef INFERNO_CUDA
    // ---- GPU hand-over: one upload of the hidden state (with the RoPE table and the cells), one download of
    // the logits ----
    if (s->gpu) {
        int n_out = 0;
        for (int t = 0; t < b->n_tokens; t++) n_out += s->out_row[t] >= 0;
        cuda_batch cb = {.n_tokens = b->n_tokens, .n_out = n_out, .x = s->x, .rope = s->rope, .pos = b->pos,
                         .seq = b->seq_id, .cell = s->cells, .out_row = s->out_row};
        char err[256];
        if (!cuda_forward(s->gpu, &cb, s->logits, s->embeddings ? s->embd : NULL, err, sizeof err))
            return inf_fail(INF_ERR_INTERNAL, "GPU forward step: %s", err);
    }
#endif
    return INF_OK;
}
