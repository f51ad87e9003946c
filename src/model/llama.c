// llama.c: the llama forward pass over a batch of tokens that may belong to several sequences at different
// positions. Read top to bottom, it is the whole model: embedding lookup, then per layer RMSNorm, Q/K/V
// projections, RoPE, KV-cache write, grouped-query causal attention, output projection and residual,
// RMSNorm, SwiGLU feed-forward and residual; then the final norm and the output head for the tokens that
// asked for logits.
//
// Numerics follow llama.cpp's CPU backend so that logits agree with it: every matmul quantizes its input
// activations to the weight type's vec_dot_type (Q8_0, Q8_1, Q8_K, F16, BF16 or F32) once per token, then
// takes dot products per weight row; norms sum in double; RoPE angles follow ggml's recurrence; attention is
// the kernel table's (an online softmax in the SIMD variants).
//
// Threading: every thread of the session's pool runs forward_worker, taking its share of each step, with a
// barrier where a step needs what other threads wrote. Steps are fused to keep barriers few, since on a
// shared machine every barrier waits for the slowest (or a preempted) thread:
// - Each thread owns whole KV heads (when their count divides evenly): it projects Q, K and V for them, ropes
//   them, writes the cache and runs their attention, with no barrier in between.
// - Gate and up rows go to the thread that applies SwiGLU to them.
// - The wo and down projections add into the residual stream directly.
// - A single token (decode): every thread computes the norm and quantization of the step input itself into a
//   private buffer rather than waiting for one thread to do it, and quantizes its own part of the attention
//   and SwiGLU outputs for the next projection. Four barriers per layer.
// - Batches (prefill): norms and quantizations are per token, shared out, with barriers (their count matters
//   little against the matmuls).
// - The big matmul steps (wo, gate/up, down, output) hand out rows in chunks from a counter, so a preempted
//   thread's rows go to the others; the rest is shared out statically.
// INFERNO_PROFILE=1 prints where thread 0's time went (by step kind) when the session is freed.
// Leaves out: other architectures, overlapping independent steps (no task graph).
#include "runtime/session.h"

#include <math.h>
#include <stdatomic.h>
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

// A single token's normed input, private to each thread (decode). Sized for n_embd up to PRIV_MAX_EMBD; the
// quantized copy fits every activation type (F16/BF16 are the widest at 2 bytes per element).
enum { PRIV_MAX_EMBD = 8192 };
typedef struct {
    float x[PRIV_MAX_EMBD];
    _Alignas(64) uint8_t xq[2 * PRIV_MAX_EMBD];
    inf_type xq_type; // what xq holds (F32: nothing)
    // the single-row kernels' layout of a matmul input (vec_prep), reused by the matmuls that share it
    _Alignas(64) uint8_t prep[INF_PREP_BYTES];
    const void *prep_src; // the input it was made from, NULL when none (or stale)
    inf_type prep_type;   // the weight type it was made for
} priv_input;

// One thread's view of a forward pass.
typedef struct {
    inf_session *s;
    const inf_batch *b;
    int ith, nth, T;
    bool one;          // single token with private inputs
    bool split_kv;     // nth divides n_head_kv: threads own whole KV heads
    priv_input *pv;    // private input (when one) and the single-row kernels' layout (any single token)
    // what s->xq holds: the quantization of x in type xq_type (x NULL: nothing reusable)
    const float *xq_x;
    inf_type xq_type;
    bool xq_reading;   // this step read s->xq: another thread may still be reading it until the next barrier
    int slot;          // the pool's next dynamic work counter
    // profile: time since the last mark goes to the next mark's kind (thread 0 of a profiled pool only)
    bool prof;
    int prof_group;
    uint64_t prof_t;
} fwd;

static inline void prof_mark(fwd *f, prof_kind k) {
    if (!f->prof) return;
    uint64_t now = inf_pool_now_ns();
    inf_pool_profile_add(f->s->pool, f->prof_group, (int)k, now - f->prof_t);
    f->prof_t = now;
}

// Every write to s->xq or the private inputs goes through here first: the prepared layout may be of them.
static inline void inputs_changed(fwd *f, const void *buf) {
    if (f->pv->prep_src == buf) f->pv->prep_src = NULL;
}

static void step_barrier(fwd *f) {
    inf_pool_barrier(f->s->pool);
    f->xq_reading = false;
    // Past a barrier the shared inputs (s->xq, s->xb, ...) may hold what other threads wrote, which
    // inputs_changed() on this thread never saw: the prepared layout is stale.
    f->pv->prep_src = NULL;
    prof_mark(f, P_BARRIER);
}

static inf_type vdt_of(const gguf_tensor *w) { return inf_type_get(w->type)->vec_dot_type; }

// Elements per block of an activation type (1 for float types).
static int64_t block_of(inf_type t) { return inf_type_get(t)->block_size; }

// ---- matmul inputs ----
// The vec_dot_type rows a matmul by w reads for the T float rows x (row length w->ne[0]): x itself for F32,
// else a quantization in s->xq (shared: each thread quantizes its tokens, between barriers, unless s->xq
// already holds x in that type) or, for the private single-token input, in f->pv->xq.
static const void *matmul_input(fwd *f, const gguf_tensor *w, const float *x) {
    inf_session *s = f->s;
    inf_type vdt = vdt_of(w);
    int64_t n = w->ne[0];
    if (vdt == INF_TYPE_F32) return x;
    if (f->one && x == f->pv->x) {
        if (f->pv->xq_type != vdt) {
            inputs_changed(f, f->pv->xq);
            s->kern->quantize[vdt](x, f->pv->xq, n);
            f->pv->xq_type = vdt;
            prof_mark(f, P_QUANT);
        }
        return f->pv->xq;
    }
    // Every thread calls this for every matmul and marks s->xq as read here, whether or not it then gets rows
    // of the matmul (dynamic chunks can leave a thread none): the barriers that depend on xq_reading must be
    // taken by all threads or by none.
    if (f->xq_x == x && f->xq_type == vdt) {
        f->xq_reading = true;
        return s->xq;
    }
    if (f->xq_reading) step_barrier(f); // nobody may still read the old contents
    inputs_changed(f, s->xq);
    size_t x_row = inf_row_size(vdt, n);
    int64_t t0, t1;
    inf_pool_share(f->T, f->ith, f->nth, 1, &t0, &t1);
    for (int64_t t = t0; t < t1; t++) s->kern->quantize[vdt](x + t * n, (char *)s->xq + (size_t)t * x_row, n);
    prof_mark(f, P_QUANT);
    step_barrier(f);
    f->xq_x = x;
    f->xq_type = vdt;
    f->xq_reading = true;
    return s->xq;
}

// Quantizes elements [e0, e1) of each of the T rows of x (row length n) into s->xq for w's vec_dot_type,
// where e0 and e1 are block boundaries: this thread's part of the next matmul's input, written by the thread
// that computed those elements (no barrier between producing and quantizing them).
static void quantize_part(fwd *f, const gguf_tensor *w, const float *x, int64_t n, int64_t e0, int64_t e1) {
    inf_session *s = f->s;
    inf_type vdt = vdt_of(w);
    size_t x_row = inf_row_size(vdt, n), off = inf_row_size(vdt, e0);
    inputs_changed(f, s->xq);
    for (int t = 0; t < f->T; t++)
        if (e1 > e0) s->kern->quantize[vdt](x + (size_t)t * n + e0, (char *)s->xq + (size_t)t * x_row + off, e1 - e0);
    prof_mark(f, P_QUANT);
}

// The dot product for one input row against w's rows, and what it reads: the single-row kernel's own layout
// of `in` where the kernel table has one (made once and kept while the input is unchanged), else vec_dot.
static inf_vec_dot_fn row_dot(fwd *f, const gguf_tensor *w, const void *in, const void **xr) {
    const inf_cpu_kernels *k = f->s->kern;
    priv_input *pv = f->pv;
    *xr = in;
    if (!k->vec_prep[w->type]) return k->vec_dot[w->type];
    if (pv->prep_src != in || pv->prep_type != w->type) {
        if (!k->vec_prep[w->type](w->ne[0], in, pv->prep, sizeof pv->prep)) return k->vec_dot[w->type];
        pv->prep_src = in;
        pv->prep_type = w->type;
    }
    *xr = pv->prep;
    return k->vec_dot_prep[w->type];
}

// ---- matmul: rows [r0, r1) of y (T, ys) = x . W^T ----
// W holds its rows of w->ne[0] elements in its block format, `in` the T input rows from matmul_input. One
// token uses the dot-product kernel; more use the GEMM tiles, which reuse each weight block across tokens.
static void matmul_range(fwd *f, const gguf_tensor *w, const void *in, float *y, size_t ys, int64_t r0, int64_t r1) {
    inf_session *s = f->s;
    inf_type vdt = vdt_of(w);
    int64_t n_in = w->ne[0];
    size_t w_row = inf_row_size(w->type, n_in), x_row = inf_row_size(vdt, n_in);
    const char *wd = w->data, *xq = in;
    if (in == s->xq) f->xq_reading = true;
    if (f->T == 1) {
        const void *xr;
        inf_vec_dot_fn dot = row_dot(f, w, in, &xr);
        // The single-row kernels' range form where there is one (several rows per step, one call per range).
        if (xr == f->pv->prep && s->kern->vec_dot_rows[w->type]) {
            s->kern->vec_dot_rows[w->type](n_in, wd + (size_t)r0 * w_row, w_row, r1 - r0, xr, y + r0);
            return;
        }
        for (int64_t r = r0; r < r1; r++) y[r] = dot(n_in, wd + (size_t)r * w_row, xr);
        return;
    }
    // A block of MM_ROWS weight rows stays in L2 while all the activation rows stream past it; the kernel
    // blocks the columns itself and reuses each decoded weight tile across them.
    enum { MM_ROWS = 64 };
    inf_gemm_fn gemm = s->kern->gemm[w->type];
    for (int64_t r = r0; r < r1; r += MM_ROWS) {
        int nr = (int)INF_MIN(MM_ROWS, r1 - r);
        gemm(n_in, wd + (size_t)r * w_row, w_row, nr, xq, x_row, f->T, y + r, ys);
    }
}

// ---- dynamic row shares ----
// The big matmul steps hand out rows in chunks to whichever thread asks, so a thread that was preempted (the
// machine is shared) or runs slower leaves its rows to the others instead of making them wait at the next
// barrier. About 8 chunks per thread (each start costs the prefetcher a few KiB of lead), rounded down to the
// alignment rather than up: 22 chunks of 256 rows share out evenly over 2 threads, 11 of 512 do not.
typedef struct {
    fwd *f;
    int slot;             // the pool's counter, or INF_POOL_SLOTS and up: static share
    int64_t n, chunk, align;
    bool started;
} chunker;

static chunker chunks_begin(fwd *f, int64_t n, int64_t align) {
    int64_t per = (n + 8 * f->nth - 1) / (8 * f->nth);
    chunker c = {f, f->slot++, n, INF_MAX(align, per / align * align), align, false};
    return c;
}

// The next [c0, c1) of rows for this thread, false when none is left.
static bool chunks_next(chunker *c, int64_t *c0, int64_t *c1) {
    if (c->slot >= INF_POOL_SLOTS) {
        if (c->started) return false;
        c->started = true;
        inf_pool_share(c->n, c->f->ith, c->f->nth, c->align, c0, c1);
        return *c0 < *c1;
    }
    *c0 = inf_pool_next(c->f->s->pool, c->slot, c->chunk);
    *c1 = INF_MIN(*c0 + c->chunk, c->n);
    return *c0 < c->n;
}

// This thread's row share of w (n_out rows), aligned to `align` rows.
static void row_share(const fwd *f, const gguf_tensor *w, int64_t align, int64_t *r0, int64_t *r1) {
    inf_pool_share(w->ne[1], f->ith, f->nth, align, r0, r1);
}

// x (T, E) += in . W^T over this thread's rows of w: the residual add of the wo and down projections, in the
// same float operations as a separate add (x + dot). Batches go through s->xb2.
static void matmul_residual(fwd *f, const gguf_tensor *w, const void *in, prof_kind kind) {
    inf_session *s = f->s;
    int64_t E = w->ne[1], r0, r1;
    chunker ch = chunks_begin(f, E, 16);
    if (f->T == 1) {
        const void *xr;
        inf_vec_dot_fn dot = row_dot(f, w, in, &xr);
        size_t w_row = inf_row_size(w->type, w->ne[0]);
        if (in == s->xq) f->xq_reading = true;
        inf_vec_dot_rows_fn rows = xr == f->pv->prep ? s->kern->vec_dot_rows[w->type] : NULL;
        while (chunks_next(&ch, &r0, &r1)) {
            if (!rows) {
                for (int64_t r = r0; r < r1; r++)
                    s->x[r] += dot(w->ne[0], (const char *)w->data + (size_t)r * w_row, xr);
                continue;
            }
            // The range form of the single-row kernel, through a small buffer (same float add as above).
            enum { PIECE = 256 };
            float y[PIECE];
            for (int64_t p = r0; p < r1; p += PIECE) {
                int64_t np = INF_MIN((int64_t)PIECE, r1 - p);
                rows(w->ne[0], (const char *)w->data + (size_t)p * w_row, w_row, np, xr, y);
                for (int64_t i = 0; i < np; i++) s->x[p + i] += y[i];
            }
        }
        prof_mark(f, kind);
        return;
    }
    while (chunks_next(&ch, &r0, &r1)) {
        matmul_range(f, w, in, s->xb2, (size_t)E, r0, r1);
        prof_mark(f, kind);
        for (int t = 0; t < f->T; t++)
            for (int64_t r = r0; r < r1; r++) s->x[t * E + r] += s->xb2[t * E + r];
        prof_mark(f, P_NORM);
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

// Embedding rows (dequantized from token_embd) and the RoPE table of each position, tokens [t0, t1).
static void embed_rows(inf_session *s, const inf_batch *b, int64_t t0, int64_t t1) {
    const inf_model *m = s->model;
    const int64_t E = m->hp.n_embd;
    const inf_type_traits *et = inf_type_get(m->token_embd->type);
    size_t embd_row = inf_row_size(m->token_embd->type, E);
    for (int64_t t = t0; t < t1; t++) {
        et->dequantize((const char *)m->token_embd->data + (size_t)b->tokens[t] * embd_row, s->x + t * E, E);
        rope_table(m, b->pos[t], s->rope + (size_t)t * (size_t)m->hp.n_rot);
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

// ---- attention ----

// Biases, RoPE and the KV-cache write of token t for KV heads [g0, g1) and their query heads.
static void rope_kv(fwd *f, int l, int t, int g0, int g1) {
    inf_session *s = f->s;
    const inf_hparams *hp = &s->model->hp;
    const inf_layer *L = &s->model->layers[l];
    const int hd = hp->head_dim, grp = hp->n_head / hp->n_head_kv, Q = hp->n_head * hd, KV = s->kv_dim;
    const int q0 = g0 * grp * hd, nq = (g1 - g0) * grp * hd, k0 = g0 * hd, nk = (g1 - g0) * hd;
    float *q = s->q + (size_t)t * Q + q0, *k = s->k + (size_t)t * KV + k0, *v = s->v + (size_t)t * KV + k0;
    if (L->bq) for (int i = 0; i < nq; i++) q[i] += L->bq[q0 + i];
    if (L->bk) for (int i = 0; i < nk; i++) k[i] += L->bk[k0 + i];
    if (L->bv) for (int i = 0; i < nk; i++) v[i] += L->bv[k0 + i];
    const float *cs = s->rope + (size_t)t * (size_t)hp->n_rot;
    rope_apply(hp, q, (g1 - g0) * grp, cs);
    rope_apply(hp, k, g1 - g0, cs);
    size_t row = ((size_t)l * (size_t)s->n_ctx + (size_t)s->cells[t]) * (size_t)KV + (size_t)k0;
    memcpy(s->k_cache + row, k, (size_t)nk * sizeof(float));
    memcpy(s->v_cache + row, v, (size_t)nk * sizeof(float));
}

// Causal attention of token t's query heads of KV head g over its sequence's cached positions 0..pos, into
// s->xb (row length n_head * head_dim).
static void attend(fwd *f, int l, int t, int g) {
    inf_session *s = f->s;
    const inf_hparams *hp = &s->model->hp;
    const int hd = hp->head_dim, grp = hp->n_head / hp->n_head_kv, Q = hp->n_head * hd, KV = s->kv_dim;
    size_t layer_off = (size_t)l * (size_t)s->n_ctx * (size_t)KV + (size_t)g * (size_t)hd;
    size_t qo = (size_t)t * (size_t)Q + (size_t)g * (size_t)grp * (size_t)hd;
    const int32_t *cells = s->seq_cells + (size_t)f->b->seq_id[t] * (size_t)s->n_ctx;
    s->kern->attn(hd, grp, s->q + qo, s->k_cache + layer_off, s->v_cache + layer_off, (size_t)KV, cells,
                  f->b->pos[t] + 1, 1.0f / sqrtf((float)hd), s->xb + qo);
}

// attend() for the run of tokens from t on that continue one sequence position by position (a prompt), up to
// 64 of them: the kernel reads each key block once for all of them. Returns how many it took.
static int attend_run(fwd *f, int l, int t, int g) {
    const inf_batch *b = f->b;
    int n = 1;
    while (t + n < f->T && n < 64 && b->seq_id[t + n] == b->seq_id[t] && b->pos[t + n] == b->pos[t] + n) n++;
    if (n == 1) {
        attend(f, l, t, g);
        return 1;
    }
    inf_session *s = f->s;
    const inf_hparams *hp = &s->model->hp;
    const int hd = hp->head_dim, grp = hp->n_head / hp->n_head_kv, Q = hp->n_head * hd, KV = s->kv_dim;
    size_t layer_off = (size_t)l * (size_t)s->n_ctx * (size_t)KV + (size_t)g * (size_t)hd;
    size_t qo = (size_t)t * (size_t)Q + (size_t)g * (size_t)grp * (size_t)hd;
    const int32_t *cells = s->seq_cells + (size_t)b->seq_id[t] * (size_t)s->n_ctx;
    s->kern->attn_tile(hd, grp, n, s->q + qo, (size_t)Q, s->k_cache + layer_off, s->v_cache + layer_off, (size_t)KV,
                       cells, b->pos[t] + 1, 1.0f / sqrtf((float)hd), s->xb + qo);
    return n;
}

// ---- norms ----

// The RMSNorm of the residual stream with `weight`, as the input of a matmul by w: for a single token every
// thread writes it to its private buffer (no barrier); for a batch each thread norms its tokens into s->xb and
// quantizes them for w, then all meet at a barrier.
static const float *norm_input(fwd *f, const float *weight, const gguf_tensor *w) {
    inf_session *s = f->s;
    const inf_hparams *hp = &s->model->hp;
    const int E = hp->n_embd;
    if (f->one) {
        inputs_changed(f, f->pv->x);
        rmsnorm(f->pv->x, s->x, weight, E, hp->rms_eps);
        f->pv->xq_type = INF_TYPE_F32;
        prof_mark(f, P_NORM);
        return f->pv->x;
    }
    if (f->xq_reading) step_barrier(f);
    int64_t t0, t1;
    inf_pool_share(f->T, f->ith, f->nth, 1, &t0, &t1);
    for (int64_t t = t0; t < t1; t++) rmsnorm(s->xb + t * E, s->x + t * E, weight, E, hp->rms_eps);
    prof_mark(f, P_NORM);
    inf_type vdt = vdt_of(w);
    if (vdt != INF_TYPE_F32) {
        inputs_changed(f, s->xq);
        size_t x_row = inf_row_size(vdt, E);
        for (int64_t t = t0; t < t1; t++) s->kern->quantize[vdt](s->xb + t * E, (char *)s->xq + (size_t)t * x_row, E);
        f->xq_x = s->xb;
        f->xq_type = vdt;
        prof_mark(f, P_QUANT);
    }
    step_barrier(f);
    return s->xb;
}

// ---- feed-forward ----

// Rows [r0, r1) of the feed-forward hidden state for every token: gate (unless in_g is NULL: already in
// s->hb) and up projections, SwiGLU into s->hb and, for a single token, the quantization of those rows for
// the down projection.
static void ffn_rows(fwd *f, const inf_layer *L, const void *in_g, const void *in_u, int64_t r0, int64_t r1) {
    inf_session *s = f->s;
    const int64_t F = L->ffn_gate->ne[1];
    if (in_g) {
        matmul_range(f, L->ffn_gate, in_g, s->hb, (size_t)F, r0, r1);
        prof_mark(f, P_MM_GATE);
    }
    matmul_range(f, L->ffn_up, in_u, s->hb2, (size_t)F, r0, r1);
    prof_mark(f, P_MM_UP);
    for (int t = 0; t < f->T; t++) s->kern->swiglu(s->hb + (size_t)t * F + r0, s->hb2 + (size_t)t * F + r0, r1 - r0);
    prof_mark(f, P_SWIGLU);
    if (f->one && vdt_of(L->ffn_down) != INF_TYPE_F32) quantize_part(f, L->ffn_down, s->hb, F, r0, r1);
}

typedef struct {
    inf_session *s;
    const inf_batch *b;
} forward_ctx;

// The whole forward pass, run by every thread of the pool at once; each step takes this thread's share and
// the barriers order dependent steps. Every thread follows the same path, so the fwd states agree.
static void forward_worker(void *arg, int ith, int nth) {
    forward_ctx *fc = arg;
    inf_session *s = fc->s;
    const inf_batch *b = fc->b;
    const inf_model *m = s->model;
    const inf_hparams *hp = &m->hp;
    const int T = b->n_tokens, E = hp->n_embd, F = hp->n_ff;
    const int hd = hp->head_dim, Q = hp->n_head * hd, KV = s->kv_dim, n_kv = hp->n_head_kv;
    const int grp = hp->n_head / n_kv;
    priv_input pv; // ~76 KiB of this thread's stack
    pv.xq_type = INF_TYPE_F32;
    pv.prep_src = NULL;
    fwd f = {.s = s, .b = b, .ith = ith, .nth = nth, .T = T, .one = T == 1 && E <= PRIV_MAX_EMBD,
             .split_kv = n_kv % nth == 0, .pv = &pv, .xq_x = NULL, .xq_type = INF_TYPE_F32};
    f.prof = ith == 0 && inf_pool_profiling(s->pool);
    f.prof_group = T > 1;
    if (f.prof) f.prof_t = inf_pool_now_ns();
    int64_t t0, t1;
    inf_pool_share(T, ith, nth, 1, &t0, &t1);

    embed_rows(s, b, t0, t1);
    prof_mark(&f, P_EMBED);
    step_barrier(&f);

    // GPU hand-over: layers [gpu_layer0, n_layer) and the output head run on the GPU (llama_forward).
    const int n_cpu_layers = s->gpu ? s->gpu_layer0 : hp->n_layer;
    for (int l = 0; l < n_cpu_layers; l++) {
        const inf_layer *L = &m->layers[l];
        // ---- attention block ----
        const float *in_x = norm_input(&f, L->attn_norm, L->wq);
        inf_type vq = vdt_of(L->wq);
        if (f.split_kv && vq == vdt_of(L->wk) && vq == vdt_of(L->wv) && (f.one || vq != INF_TYPE_F32)) {
            // This thread's KV heads, start to end; batches read the input from s->xq, so s->xb is free
            // for the attention output.
            int64_t g0, g1;
            inf_pool_share(n_kv, ith, nth, 1, &g0, &g1);
            const void *in = matmul_input(&f, L->wq, in_x);
            matmul_range(&f, L->wq, in, s->q, (size_t)Q, g0 * grp * hd, g1 * grp * hd);
            prof_mark(&f, P_MM_Q);
            matmul_range(&f, L->wk, in, s->k, (size_t)KV, g0 * hd, g1 * hd);
            prof_mark(&f, P_MM_K);
            matmul_range(&f, L->wv, in, s->v, (size_t)KV, g0 * hd, g1 * hd);
            prof_mark(&f, P_MM_V);
            for (int t = 0; t < T; t++) rope_kv(&f, l, t, (int)g0, (int)g1);
            prof_mark(&f, P_ROPE);
            for (int g = (int)g0; g < g1; g++)
                for (int t = 0; t < T;) t += attend_run(&f, l, t, g);
            prof_mark(&f, P_ATTN);
            f.xq_x = NULL; // s->xb now holds the attention output
            inf_type vo = vdt_of(L->wo);
            if (f.one && vo != INF_TYPE_F32 && (grp * hd) % block_of(vo) == 0) {
                quantize_part(&f, L->wo, s->xb, Q, g0 * grp * hd, g1 * grp * hd);
                f.xq_x = s->xb;
                f.xq_type = vo;
            }
        } else {
            int64_t r0, r1;
            const gguf_tensor *proj[3] = {L->wq, L->wk, L->wv};
            float *outs[3] = {s->q, s->k, s->v};
            for (int i = 0; i < 3; i++) {
                const void *in = matmul_input(&f, proj[i], in_x);
                row_share(&f, proj[i], 16, &r0, &r1);
                matmul_range(&f, proj[i], in, outs[i], (size_t)proj[i]->ne[1], r0, r1);
                prof_mark(&f, (prof_kind)(P_MM_Q + i));
            }
            step_barrier(&f);
            for (int64_t t = t0; t < t1; t++) rope_kv(&f, l, (int)t, 0, n_kv);
            prof_mark(&f, P_ROPE);
            step_barrier(&f);
            // (KV head, token) pairs, head-major, so each thread's share spans early and late positions alike
            int64_t p0, p1;
            inf_pool_share((int64_t)T * n_kv, ith, nth, 1, &p0, &p1);
            for (int64_t p = p0; p < p1; p++) attend(&f, l, (int)(p % T), (int)(p / T));
            prof_mark(&f, P_ATTN);
            f.xq_x = NULL;
        }
        step_barrier(&f);
        matmul_residual(&f, L->wo, matmul_input(&f, L->wo, s->xb), P_MM_O);
        step_barrier(&f);

        // ---- feed-forward block: down(silu(gate(x)) * up(x)) ----
        in_x = norm_input(&f, L->ffn_norm, L->ffn_gate);
        // Gate and up rows in chunks; for a single token aligned to the blocks of down's input, so the thread
        // can quantize its own part of it.
        // (One input for both when their types agree, as they do in every llama.cpp mix; otherwise one
        // static share, each matmul after its own input.)
        int64_t r0, r1, align = f.one ? INF_MAX(16, block_of(vdt_of(L->ffn_down))) : 16;
        inf_type vd = vdt_of(L->ffn_down);
        const void *in_g = matmul_input(&f, L->ffn_gate, in_x);
        if (vdt_of(L->ffn_gate) == vdt_of(L->ffn_up)) {
            chunker ch = chunks_begin(&f, F, align);
            while (chunks_next(&ch, &r0, &r1)) ffn_rows(&f, L, in_g, in_g, r0, r1);
        } else {
            inf_pool_share(F, ith, nth, align, &r0, &r1);
            matmul_range(&f, L->ffn_gate, in_g, s->hb, (size_t)F, r0, r1);
            ffn_rows(&f, L, NULL, matmul_input(&f, L->ffn_up, in_x), r0, r1);
        }
        f.xq_x = NULL;
        if (f.one && vd != INF_TYPE_F32) {
            f.xq_x = s->hb;
            f.xq_type = vd;
        }
        step_barrier(&f);
        matmul_residual(&f, L->ffn_down, matmul_input(&f, L->ffn_down, s->hb), P_MM_DOWN);
        step_barrier(&f);
    }
    if (s->gpu) return; // GPU hand-over: s->x holds the residual stream entering layer gpu_layer0

    // The output norm of the tokens that asked for logits, packed in output-row order, and the output head.
    const int n_vocab = hp->n_vocab;
    int64_t r0, r1;
    chunker ch = chunks_begin(&f, n_vocab, 16);
    f.xq_x = NULL;
    if (f.one) {
        if (s->out_row[0] < 0) return;
        inputs_changed(&f, pv.x);
        rmsnorm(pv.x, s->x, m->output_norm, E, hp->rms_eps);
        pv.xq_type = INF_TYPE_F32;
        prof_mark(&f, P_NORM);
        if (s->embeddings && ith == 0) memcpy(s->embd, pv.x, (size_t)E * sizeof(float));
        const void *in = matmul_input(&f, m->output, pv.x);
        while (chunks_next(&ch, &r0, &r1)) matmul_range(&f, m->output, in, s->logits, (size_t)n_vocab, r0, r1);
        prof_mark(&f, P_MM_OUT);
        return;
    }
    for (int64_t t = t0; t < t1; t++)
        if (s->out_row[t] >= 0)
            rmsnorm(s->xb + (size_t)s->out_row[t] * E, s->x + t * E, m->output_norm, E, hp->rms_eps);
    int n_out = 0;
    for (int t = 0; t < T; t++) n_out += s->out_row[t] >= 0;
    prof_mark(&f, P_NORM);
    step_barrier(&f);
    if (!n_out) return;
    if (s->embeddings && ith == 0) memcpy(s->embd, s->xb, (size_t)n_out * (size_t)E * sizeof(float));
    f.T = n_out;
    const void *in = matmul_input(&f, m->output, s->xb);
    while (chunks_next(&ch, &r0, &r1)) matmul_range(&f, m->output, in, s->logits, (size_t)n_vocab, r0, r1);
    prof_mark(&f, P_MM_OUT);
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
    // With every layer on the GPU a short batch needs only its embedding rows from the CPU: this thread
    // makes them (a few microseconds) instead of waking the pool for them.
    bool inline_embed = false;
#ifdef INFERNO_CUDA
    inline_embed = s->gpu && s->gpu_layer0 == 0 && b->n_tokens <= 64 && !t_run;
#endif
    if (inline_embed) embed_rows(s, b, 0, b->n_tokens);
    else inf_pool_run(s->pool, forward_worker, &fc);
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
        if (!cuda_forward(s->gpu, &cb, s->logits, &s->logits_row, s->embeddings ? s->embd : NULL, err, sizeof err))
            return inf_fail(INF_ERR_INTERNAL, "GPU forward step: %s", err);
        // The first large batch makes the model's F16 weight copies or declines them: say what they took, once
        // (and stop asking once it is decided either way).
        inf_gpu_state *g = s->model->gpu;
        uint64_t f16 = 0;
        if (b->n_tokens >= 16 && g && g->model && !g->f16_logged && cuda_model_f16_bytes(g->model, &f16) &&
            !atomic_exchange(&g->f16_logged, 1) && f16)
            inf_log(g->log_level, "GPU: F16 copies of the quantized weights for batches of 16+ tokens: %.2f MiB "
                    "(INFERNO_CUDA_F16_CACHE=0: none)", (double)f16 / (1024.0 * 1024.0));
    }
#endif
    return INF_OK;
}
