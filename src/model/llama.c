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

// y (T, n_out) = x (T, n_in) · W^T, W stored as n_out rows of n_in elements in its block format.
static void matmul(inf_session *s, const gguf_tensor *w, const float *x, int T, float *y) {
    const inf_type_traits *tr = inf_type_get(w->type);
    const inf_type_traits *vt = inf_type_get(tr->vec_dot_type);
    int64_t n_in = w->ne[0], n_out = w->ne[1];
    size_t w_row = inf_row_size(w->type, n_in);
    size_t x_row = inf_row_size(tr->vec_dot_type, n_in);
    const char *xq = (const char *)x;
    if (tr->vec_dot_type != INF_TYPE_F32) {
        for (int t = 0; t < T; t++) vt->quantize(x + (size_t)t * (size_t)n_in, (char *)s->xq + (size_t)t * x_row, n_in);
        xq = s->xq;
    }
    const char *wd = w->data;
    for (int64_t r = 0; r < n_out; r++) {
        const void *wr = wd + (size_t)r * w_row;
        for (int t = 0; t < T; t++) y[(size_t)t * (size_t)n_out + (size_t)r] = tr->vec_dot(n_in, wr, xq + (size_t)t * x_row);
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

// Causal grouped-query attention of token t (sequence seq, position pos) over the cached positions 0..pos
// of its sequence; writes n_head*head_dim values to out.
static void attention(inf_session *s, int layer, const float *q, int seq, int pos, float *out) {
    const inf_hparams *hp = &s->model->hp;
    int hd = hp->head_dim, group = hp->n_head / hp->n_head_kv;
    float scale = 1.0f / sqrtf((float)hd);
    size_t layer_off = (size_t)layer * (size_t)s->n_ctx * (size_t)s->kv_dim;
    const int32_t *cells = s->seq_cells + (size_t)seq * (size_t)s->n_ctx;
    for (int h = 0; h < hp->n_head; h++) {
        const float *qh = q + (size_t)h * (size_t)hd;
        size_t kv_off = (size_t)(h / group) * (size_t)hd;
        float mx = -INFINITY;
        for (int j = 0; j <= pos; j++) {
            const float *kj = s->k_cache + layer_off + (size_t)cells[j] * (size_t)s->kv_dim + kv_off;
            float dot = 0.0f;
            for (int i = 0; i < hd; i++) dot += qh[i] * kj[i];
            s->scores[j] = dot * scale;
            mx = INF_MAX(mx, s->scores[j]);
        }
        double sum = 0.0;
        for (int j = 0; j <= pos; j++) {
            float e = expf(s->scores[j] - mx);
            s->scores[j] = e;
            sum += (double)e;
        }
        float inv = (float)(1.0 / sum);
        float *oh = out + (size_t)h * (size_t)hd;
        for (int i = 0; i < hd; i++) oh[i] = 0.0f;
        for (int j = 0; j <= pos; j++) {
            const float *vj = s->v_cache + layer_off + (size_t)cells[j] * (size_t)s->kv_dim + kv_off;
            float p = s->scores[j] * inv;
            for (int i = 0; i < hd; i++) oh[i] += p * vj[i];
        }
    }
}

static void add_bias(float *x, const float *bias, int T, int n) {
    if (!bias) return;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < n; i++) x[(size_t)t * (size_t)n + (size_t)i] += bias[i];
}

void llama_forward(inf_session *s, const inf_batch *b) {
    const inf_model *m = s->model;
    const inf_hparams *hp = &m->hp;
    const int T = b->n_tokens, E = hp->n_embd, F = hp->n_ff;
    const int Q = hp->n_head * hp->head_dim, KV = s->kv_dim;

    // Embedding rows (dequantized from token_embd) and the RoPE table of each token's position.
    const inf_type_traits *et = inf_type_get(m->token_embd->type);
    size_t embd_row = inf_row_size(m->token_embd->type, E);
    for (int t = 0; t < T; t++) {
        et->dequantize((const char *)m->token_embd->data + (size_t)b->tokens[t] * embd_row, s->x + (size_t)t * E, E);
        rope_table(m, b->pos[t], s->rope + (size_t)t * (size_t)hp->n_rot);
    }

    for (int l = 0; l < hp->n_layer; l++) {
        const inf_layer *L = &m->layers[l];
        // attention block
        for (int t = 0; t < T; t++) rmsnorm(s->xb + (size_t)t * E, s->x + (size_t)t * E, L->attn_norm, E, hp->rms_eps);
        matmul(s, L->wq, s->xb, T, s->q);
        matmul(s, L->wk, s->xb, T, s->k);
        matmul(s, L->wv, s->xb, T, s->v);
        add_bias(s->q, L->bq, T, Q);
        add_bias(s->k, L->bk, T, KV);
        add_bias(s->v, L->bv, T, KV);
        size_t layer_off = (size_t)l * (size_t)s->n_ctx * (size_t)KV;
        for (int t = 0; t < T; t++) {
            const float *cs = s->rope + (size_t)t * (size_t)hp->n_rot;
            rope_apply(hp, s->q + (size_t)t * Q, hp->n_head, cs);
            rope_apply(hp, s->k + (size_t)t * KV, hp->n_head_kv, cs);
            memcpy(s->k_cache + layer_off + (size_t)s->cells[t] * KV, s->k + (size_t)t * KV, (size_t)KV * sizeof(float));
            memcpy(s->v_cache + layer_off + (size_t)s->cells[t] * KV, s->v + (size_t)t * KV, (size_t)KV * sizeof(float));
        }
        for (int t = 0; t < T; t++) attention(s, l, s->q + (size_t)t * Q, b->seq_id[t], b->pos[t], s->xb + (size_t)t * Q);
        matmul(s, L->wo, s->xb, T, s->xb2);
        for (size_t i = 0; i < (size_t)T * E; i++) s->x[i] += s->xb2[i];

        // feed-forward block: down(silu(gate(x)) * up(x))
        for (int t = 0; t < T; t++) rmsnorm(s->xb + (size_t)t * E, s->x + (size_t)t * E, L->ffn_norm, E, hp->rms_eps);
        matmul(s, L->ffn_gate, s->xb, T, s->hb);
        matmul(s, L->ffn_up, s->xb, T, s->hb2);
        for (size_t i = 0; i < (size_t)T * F; i++) {
            float g = s->hb[i];
            s->hb[i] = g / (1.0f + expf(-g)) * s->hb2[i];
        }
        matmul(s, L->ffn_down, s->hb, T, s->xb2);
        for (size_t i = 0; i < (size_t)T * E; i++) s->x[i] += s->xb2[i];
    }

    // Final norm and output head, only for the tokens that asked for logits (packed in output-row order).
    int n_out = 0;
    for (int t = 0; t < T; t++) {
        if (s->out_row[t] < 0) continue;
        rmsnorm(s->xb + (size_t)s->out_row[t] * E, s->x + (size_t)t * E, m->output_norm, E, hp->rms_eps);
        n_out++;
    }
    if (n_out && s->embeddings) memcpy(s->embd, s->xb, (size_t)n_out * (size_t)E * sizeof(float));
    if (n_out) matmul(s, m->output, s->xb, n_out, s->logits);
}
