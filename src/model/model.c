// model.c: loading a llama-family model from GGUF: hyperparameters from {arch}.* keys, tensors bound by name
// and checked against the shapes those hyperparameters imply, the vocabulary, and the public getters and
// tokenizer entry points. Leaves out the forward pass (llama.c) and sessions (runtime/session.c).
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

inf_model_params inf_model_default_params(void) {
    inf_model_params p = {.n_threads = 0, .verbose = false, .gpu_enabled = true, .n_gpu_layers = 0};
    return p;
}

// Architectures whose tensors and keys follow llama's layout. Mistral, TinyLlama, SmolLM and Llama 2/3
// files all say "llama".
static bool arch_is_supported(const char *arch) { return strcmp(arch, "llama") == 0; }

static inf_status get_u32_key(inf_model *m, const char *suffix, bool required, uint32_t *out) {
    char key[256];
    snprintf(key, sizeof key, "%s.%s", m->arch, suffix);
    bool found = false;
    inf_status st = gguf_get_u32(m->gguf, key, out, &found);
    if (st != INF_OK) return st;
    if (!found && required) return inf_fail(INF_ERR_FORMAT, "missing required hyperparameter '%s'", key);
    return INF_OK;
}

static inf_status get_f32_key(inf_model *m, const char *suffix, bool required, float *out) {
    char key[256];
    snprintf(key, sizeof key, "%s.%s", m->arch, suffix);
    bool found = false;
    inf_status st = gguf_get_f32(m->gguf, key, out, &found);
    if (st != INF_OK) return st;
    if (!found && required) return inf_fail(INF_ERR_FORMAT, "missing required hyperparameter '%s'", key);
    return INF_OK;
}

static inf_status load_hparams(inf_model *m) {
    inf_hparams *hp = &m->hp;
    uint32_t ctx = 0, embd = 0, layers = 0, ff = 0, heads = 0, heads_kv = 0, key_len = 0, rot = 0, orig = 0;
    inf_status st;
    if ((st = get_u32_key(m, "context_length", true, &ctx)) || (st = get_u32_key(m, "embedding_length", true, &embd)) ||
        (st = get_u32_key(m, "block_count", true, &layers)) ||
        (st = get_u32_key(m, "feed_forward_length", true, &ff)) ||
        (st = get_u32_key(m, "attention.head_count", true, &heads)))
        return st;
    heads_kv = heads;
    if ((st = get_u32_key(m, "attention.head_count_kv", false, &heads_kv))) return st;
    if (embd == 0 || embd > (1u << 16)) return inf_fail(INF_ERR_FORMAT, "%s.embedding_length %u out of range", m->arch, embd);
    if (layers == 0 || layers > 1024) return inf_fail(INF_ERR_FORMAT, "%s.block_count %u out of range", m->arch, layers);
    if (ff == 0 || ff > (1u << 20)) return inf_fail(INF_ERR_FORMAT, "%s.feed_forward_length %u out of range", m->arch, ff);
    if (heads == 0 || heads > embd) return inf_fail(INF_ERR_FORMAT, "%s.attention.head_count %u out of range", m->arch, heads);
    if (heads_kv == 0 || heads % heads_kv != 0)
        return inf_fail(INF_ERR_FORMAT, "%s.attention.head_count_kv %u does not divide head_count %u", m->arch,
                        heads_kv, heads);
    key_len = embd / heads;
    if ((st = get_u32_key(m, "attention.key_length", false, &key_len))) return st;
    if (key_len == 0 || key_len > 4096 || key_len % 2)
        return inf_fail(INF_ERR_FORMAT, "%s.attention.key_length %u out of range", m->arch, key_len);
    uint32_t val_len = key_len;
    if ((st = get_u32_key(m, "attention.value_length", false, &val_len))) return st;
    if (val_len != key_len)
        return inf_fail(INF_ERR_UNSUPPORTED, "%s.attention.value_length %u differs from key_length %u", m->arch,
                        val_len, key_len);
    rot = key_len;
    if ((st = get_u32_key(m, "rope.dimension_count", false, &rot))) return st;
    if (rot == 0 || rot > key_len || rot % 2)
        return inf_fail(INF_ERR_FORMAT, "%s.rope.dimension_count %u out of range (head size %u)", m->arch, rot, key_len);
    if (ctx == 0) return inf_fail(INF_ERR_FORMAT, "%s.context_length is 0", m->arch);

    hp->n_ctx_train = (int)INF_MIN(ctx, 1u << 24);
    hp->n_embd = (int)embd;
    hp->n_layer = (int)layers;
    hp->n_ff = (int)ff;
    hp->n_head = (int)heads;
    hp->n_head_kv = (int)heads_kv;
    hp->head_dim = (int)key_len;
    hp->n_rot = (int)rot;
    hp->rms_eps = 1e-5f;
    if ((st = get_f32_key(m, "attention.layer_norm_rms_epsilon", true, &hp->rms_eps))) return st;
    if (!(hp->rms_eps > 0.0f && hp->rms_eps < 1.0f))
        return inf_fail(INF_ERR_FORMAT, "%s.attention.layer_norm_rms_epsilon %g out of range", m->arch, hp->rms_eps);
    hp->rope_freq_base = 10000.0f;
    if ((st = get_f32_key(m, "rope.freq_base", false, &hp->rope_freq_base))) return st;
    if (!(hp->rope_freq_base > 0.0f && isfinite(hp->rope_freq_base)))
        return inf_fail(INF_ERR_FORMAT, "%s.rope.freq_base %g out of range", m->arch, hp->rope_freq_base);
    hp->rope_mode = INF_ROPE_NORMAL;

    // RoPE scaling: {arch}.rope.scaling.type ("none", "linear", "yarn") with .factor, or the older
    // {arch}.rope.scale_linear.
    float factor = 0.0f;
    hp->rope_scaling = INF_ROPE_SCALING_NONE;
    if ((st = get_f32_key(m, "rope.scale_linear", false, &factor))) return st;
    if (factor > 0.0f) hp->rope_scaling = INF_ROPE_SCALING_LINEAR;
    char key[256];
    snprintf(key, sizeof key, "%s.rope.scaling.type", m->arch);
    const char *type = NULL;
    bool found = false;
    if ((st = gguf_get_str(m->gguf, key, &type, &found))) return st;
    if (found) {
        if (!strcmp(type, "none")) hp->rope_scaling = INF_ROPE_SCALING_NONE;
        else if (!strcmp(type, "linear")) hp->rope_scaling = INF_ROPE_SCALING_LINEAR;
        else if (!strcmp(type, "yarn")) hp->rope_scaling = INF_ROPE_SCALING_YARN;
        else return inf_fail(INF_ERR_UNSUPPORTED, "%s: rope scaling '%s' is not supported", key, type);
        if ((st = get_f32_key(m, "rope.scaling.factor", false, &factor))) return st;
    }
    if (hp->rope_scaling == INF_ROPE_SCALING_NONE || factor == 0.0f) factor = 1.0f;
    if (!(factor >= 1.0f / 1024 && factor <= 1024.0f))
        return inf_fail(INF_ERR_FORMAT, "%s.rope.scaling.factor %g out of range", m->arch, factor);
    hp->rope_freq_scale = 1.0f / factor;
    orig = ctx;
    if ((st = get_u32_key(m, "rope.scaling.original_context_length", false, &orig))) return st;
    hp->rope_n_ctx_orig = (int)INF_MIN(orig ? orig : ctx, 1u << 24);
    hp->yarn_ext_factor = hp->rope_scaling == INF_ROPE_SCALING_YARN ? 1.0f : 0.0f;
    hp->yarn_attn_factor = 1.0f;
    hp->yarn_beta_fast = 32.0f;
    hp->yarn_beta_slow = 1.0f;
    return INF_OK;
}

// Looks up a tensor and checks its type is supported and its shape is (ne0, ne1) (ne1 = 0 for 1-D).
static inf_status bind_tensor(inf_model *m, const char *name, int64_t ne0, int64_t ne1, bool required,
                              const gguf_tensor **out) {
    const gguf_tensor *t = gguf_find_tensor(m->gguf, name);
    *out = NULL;
    if (!t) return required ? inf_fail(INF_ERR_FORMAT, "missing required tensor '%s'", name) : INF_OK;
    bool ok = ne1 == 0 ? (t->n_dims == 1 && t->ne[0] == ne0)
                       : (t->n_dims == 2 && t->ne[0] == ne0 && t->ne[1] == ne1);
    if (!ok)
        return inf_fail(INF_ERR_FORMAT, "tensor '%s' has shape [%lld, %lld], expected [%lld, %lld]", name,
                        (long long)t->ne[0], (long long)(t->n_dims > 1 ? t->ne[1] : 0), (long long)ne0,
                        (long long)ne1);
    if (t->flat_blocks) {
        // A legacy tensor quantized as one flat run of blocks: dequantize it whole into an F32 tensor.
        gguf_tensor **grown = realloc(m->converted, sizeof *grown * (size_t)(m->n_converted + 1));
        gguf_tensor *ct = grown ? inf_malloc(sizeof *ct) : NULL;
        float *data = ct ? inf_malloc_array((size_t)t->n_elements, sizeof(float)) : NULL;
        if (grown) m->converted = grown;
        if (!data) {
            free(ct);
            return inf_fail(INF_ERR_NOMEM, "out of memory converting tensor '%s'", name);
        }
        *ct = *t;
        ct->name = NULL;
        ct->type = INF_TYPE_F32;
        ct->flat_blocks = false;
        ct->n_bytes = t->n_elements * sizeof(float);
        inf_type_get(t->type)->dequantize(t->data, data, (int64_t)t->n_elements);
        ct->data = data;
        m->converted[m->n_converted++] = ct;
        inf_log(INF_LOG_DEBUG, "tensor '%s': legacy flat %s blocks, dequantized to F32", name, inf_type_name(t->type));
        t = ct;
    }
    const inf_type_traits *tr = inf_type_get(t->type);
    if (!tr || !tr->dequantize || (ne1 != 0 && !tr->vec_dot))
        return inf_fail(INF_ERR_UNSUPPORTED, "tensor '%s' has type %s, which this build cannot run", name,
                        inf_type_name(t->type));
    *out = t;
    return INF_OK;
}

// Binds a 1-D tensor and dequantizes it into the model's float store at *cursor.
static inf_status bind_vector(inf_model *m, const char *name, int64_t n, bool required, float **cursor,
                              const float **out) {
    const gguf_tensor *t;
    inf_status st = bind_tensor(m, name, n, 0, required, &t);
    *out = NULL;
    if (st != INF_OK || !t) return st;
    inf_type_get(t->type)->dequantize(t->data, *cursor, n);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite((*cursor)[i])) return inf_fail(INF_ERR_FORMAT, "tensor '%s' holds a non-finite value", name);
    *out = *cursor;
    *cursor += n;
    return INF_OK;
}

static inf_status bind_weights(inf_model *m) {
    const inf_hparams *hp = &m->hp;
    int64_t E = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim, KV = (int64_t)hp->n_head_kv * hp->head_dim;
    inf_status st;
    m->layers = inf_calloc((size_t)hp->n_layer, sizeof *m->layers);
    // norms (2 per layer + output) + optional biases (Q + 2 KV per layer) + rope factors
    size_t floats = (size_t)E * (2 * (size_t)hp->n_layer + 1) + (size_t)(Q + 2 * KV) * (size_t)hp->n_layer +
                    (size_t)hp->n_rot;
    m->owned_floats = inf_malloc_array(floats, sizeof(float));
    if (!m->layers || !m->owned_floats) return inf_fail(INF_ERR_NOMEM, "out of memory binding weights");
    float *cur = m->owned_floats;

    const gguf_tensor *embd = gguf_find_tensor(m->gguf, "token_embd.weight");
    if (!embd) return inf_fail(INF_ERR_FORMAT, "missing required tensor 'token_embd.weight'");
    if (embd->n_dims != 2) return inf_fail(INF_ERR_FORMAT, "tensor 'token_embd.weight' is not 2-D");
    int64_t n_vocab = embd->ne[1];
    if (n_vocab != vocab_n_tokens(m->vocab))
        return inf_fail(INF_ERR_FORMAT, "token_embd.weight has %lld rows but the vocabulary has %d tokens",
                        (long long)n_vocab, vocab_n_tokens(m->vocab));
    m->hp.n_vocab = (int)n_vocab;
    if ((st = bind_tensor(m, "token_embd.weight", E, n_vocab, true, &m->token_embd))) return st;
    if ((st = bind_tensor(m, "output.weight", E, n_vocab, false, &m->output))) return st;
    m->tied_output = m->output == NULL;
    if (m->tied_output) m->output = m->token_embd;
    if ((st = bind_vector(m, "output_norm.weight", E, true, &cur, &m->output_norm))) return st;
    if ((st = bind_vector(m, "rope_freqs.weight", hp->n_rot / 2, false, &cur, &m->rope_freqs))) return st;

    for (int l = 0; l < hp->n_layer; l++) {
        inf_layer *L = &m->layers[l];
        char name[128];
#define NAME(s) (snprintf(name, sizeof name, "blk.%d.%s", l, s), name)
        if ((st = bind_vector(m, NAME("attn_norm.weight"), E, true, &cur, &L->attn_norm)) ||
            (st = bind_tensor(m, NAME("attn_q.weight"), E, Q, true, &L->wq)) ||
            (st = bind_tensor(m, NAME("attn_k.weight"), E, KV, true, &L->wk)) ||
            (st = bind_tensor(m, NAME("attn_v.weight"), E, KV, true, &L->wv)) ||
            (st = bind_tensor(m, NAME("attn_output.weight"), Q, E, true, &L->wo)) ||
            (st = bind_vector(m, NAME("attn_q.bias"), Q, false, &cur, &L->bq)) ||
            (st = bind_vector(m, NAME("attn_k.bias"), KV, false, &cur, &L->bk)) ||
            (st = bind_vector(m, NAME("attn_v.bias"), KV, false, &cur, &L->bv)) ||
            (st = bind_vector(m, NAME("ffn_norm.weight"), E, true, &cur, &L->ffn_norm)) ||
            (st = bind_tensor(m, NAME("ffn_gate.weight"), E, hp->n_ff, true, &L->ffn_gate)) ||
            (st = bind_tensor(m, NAME("ffn_up.weight"), E, hp->n_ff, true, &L->ffn_up)) ||
            (st = bind_tensor(m, NAME("ffn_down.weight"), hp->n_ff, E, true, &L->ffn_down)))
            return st;
#undef NAME
    }
    assert((size_t)(cur - m->owned_floats) <= floats);
    return INF_OK;
}

static void model_count(inf_model *m) {
    uint64_t counts[INF_TYPE_COUNT] = {0};
    m->n_params = 0;
    m->weights_bytes = 0;
    for (int64_t i = 0; i < gguf_n_tensors(m->gguf); i++) {
        const gguf_tensor *t = gguf_tensor_at(m->gguf, i);
        m->n_params += t->n_elements;
        m->weights_bytes += t->n_bytes;
        if (t->n_dims >= 2 && (uint32_t)t->type < INF_TYPE_COUNT) counts[t->type] += t->n_elements;
    }
    uint32_t best = INF_TYPE_F32;
    for (uint32_t t = 0; t < INF_TYPE_COUNT; t++)
        if (counts[t] > counts[best]) best = t;
    m->file_type = inf_type_name(best);
}

// ==== GPU placement (CUDA backend) =======================================================================
// Which layers go to the GPU, the memory plan, the upload, and the registry that lets sessions find a
// model's GPU state (model.h has no field for it yet). Everything the CUDA backend needs crosses the seam
// in backend/cuda/cuda_backend.h; without INFERNO_CUDA only the "not built" message remains.
#include "runtime/session.h"

#define GPU_PLAN_CTX 4096              // auto plans KV room for min(n_ctx_train, this) tokens
#define GPU_PLAN_BATCH 512
#define GPU_RESERVE (512ull << 20)     // VRAM left free by auto: CUDA context, allocator slack

static const inf_gpu_state gpu_none;

const inf_gpu_state *model_gpu(const inf_model *m) { return m->gpu ? m->gpu : &gpu_none; }

static void gpu_unregister(inf_model *m) {
    inf_gpu_state *st = m->gpu;
    m->gpu = NULL;
    if (!st) return;
#ifdef INFERNO_CUDA
    cuda_model_free(st->model);
#endif
    free(st);
}

#ifdef INFERNO_CUDA
// A weight as the GPU takes it: native types as they are, others (and gate/up pairs of different types)
// as F16. With owned NULL only the type and shape are filled (planning); otherwise a converted copy is
// made in *owned (caller frees) and data points at it.
static bool gpu_matrix(const gguf_tensor *t, bool force_f16, cuda_matrix *out, void **owned) {
    bool native = cuda_type_native((int)t->type) && !(force_f16 && t->type != INF_TYPE_F16);
    *out = (cuda_matrix){.type = native ? (int)t->type : INF_TYPE_F16, .n_in = t->ne[0], .n_out = t->ne[1]};
    if (native) {
        out->data = t->data;
        out->row_bytes = inf_row_size(t->type, t->ne[0]);
        return true;
    }
    out->row_bytes = (size_t)t->ne[0] * 2;
    if (!owned) return true;
    uint16_t *h = inf_malloc_array((size_t)t->n_elements, 2);
    float *row = inf_malloc_array((size_t)t->ne[0], sizeof(float));
    if (!h || !row) {
        free(h);
        free(row);
        return false;
    }
    const inf_type_traits *tr = inf_type_get(t->type);
    size_t src_row = inf_row_size(t->type, t->ne[0]);
    for (int64_t r = 0; r < t->ne[1]; r++) {
        tr->dequantize((const char *)t->data + (size_t)r * src_row, row, t->ne[0]);
        for (int64_t i = 0; i < t->ne[0]; i++) h[(size_t)r * (size_t)t->ne[0] + (size_t)i] = inf_fp32_to_fp16(row[i]);
    }
    free(row);
    *owned = h;
    out->data = h;
    return true;
}

// Describes layers [layer0, n_layer) and the output head into d (layers has room for n_layer entries).
// owned (room for 7 per layer + 1) gets the converted copies, or is NULL when planning.
static bool gpu_describe(const inf_model *m, int layer0, cuda_model_desc *d, cuda_layer_desc *layers, void **owned,
                         int *n_owned) {
    const inf_hparams *hp = &m->hp;
    *d = (cuda_model_desc){.n_embd = hp->n_embd, .n_layer = hp->n_layer, .n_head = hp->n_head,
                           .n_head_kv = hp->n_head_kv, .head_dim = hp->head_dim, .n_ff = hp->n_ff,
                           .n_rot = hp->n_rot, .n_vocab = hp->n_vocab, .rms_eps = hp->rms_eps,
                           .rope_neox = hp->rope_mode == INF_ROPE_NEOX, .layer0 = layer0, .layers = layers,
                           .output_norm = m->output_norm};
#define GPU_MAT(t, f16, out) gpu_matrix(t, f16, out, owned ? &owned[(*n_owned)++] : NULL)
    for (int l = layer0; l < hp->n_layer; l++) {
        const inf_layer *L = &m->layers[l];
        cuda_layer_desc *D = &layers[l - layer0];
        bool pair_f16 = L->ffn_gate->type != L->ffn_up->type;
        *D = (cuda_layer_desc){.attn_norm = L->attn_norm, .ffn_norm = L->ffn_norm, .bq = L->bq, .bk = L->bk,
                               .bv = L->bv};
        if (!GPU_MAT(L->wq, false, &D->wq) || !GPU_MAT(L->wk, false, &D->wk) || !GPU_MAT(L->wv, false, &D->wv) ||
            !GPU_MAT(L->wo, false, &D->wo) || !GPU_MAT(L->ffn_gate, pair_f16, &D->gate) ||
            !GPU_MAT(L->ffn_up, pair_f16, &D->up) || !GPU_MAT(L->ffn_down, false, &D->down))
            return false;
    }
    return GPU_MAT(m->output, false, &d->output);
#undef GPU_MAT
}

static double mib(uint64_t b) { return (double)b / (1024.0 * 1024.0); }
#endif

// Places the model per params->gpu_enabled / n_gpu_layers. Never fails the load: when the GPU cannot be
// used the log says why (WARN) and the model runs on the CPU.
static void gpu_place(inf_model *m, const inf_model_params *p, inf_log_level lvl) {
    if (!p->gpu_enabled || p->n_gpu_layers == 0) {
        inf_log(lvl, "GPU enabled: %s, GPU layers: 0 (CPU only)", p->gpu_enabled ? "true" : "false");
        return;
    }
    char req[16];
    if (p->n_gpu_layers < 0) snprintf(req, sizeof req, "auto");
    else snprintf(req, sizeof req, "%d", p->n_gpu_layers);
    inf_log(lvl, "GPU enabled: true, GPU layers: %s", req);
    inf_gpu_state *st = inf_calloc(1, sizeof *st);
    if (!st) return;
    st->log_level = lvl;
    m->gpu = st;
#ifndef INFERNO_CUDA
    snprintf(st->desc, sizeof st->desc, "not used: this build has no CUDA backend (nvcc was not found)");
    inf_log(p->n_gpu_layers < 0 ? lvl : INF_LOG_WARN,
            "GPU: this build has no CUDA backend (nvcc was not found when it was built); running all %d layers "
            "on the CPU", m->hp.n_layer);
#else
    const inf_hparams *hp = &m->hp;
    cuda_device_info dev;
    char err[256];
    if (!cuda_device_probe(&dev, err, sizeof err)) {
        snprintf(st->desc, sizeof st->desc, "not used: %s", err);
        if (dev.driver_version == 0) // the usual case on a machine without an NVIDIA GPU
            inf_log(INF_LOG_WARN, "GPU: no NVIDIA driver found (%s); running all %d layers on the CPU", err,
                    hp->n_layer);
        else
            inf_log(INF_LOG_WARN, "GPU: CUDA could not start: %s (driver API %d.%d, runtime %d.%d); running all %d "
                    "layers on the CPU", err, dev.driver_version / 1000, dev.driver_version % 1000 / 10,
                    dev.runtime_version / 1000, dev.runtime_version % 1000 / 10, hp->n_layer);
        return;
    }
    inf_log(lvl, "GPU: CUDA0: %s, compute capability %d.%d, VRAM %.0f MiB (%.0f MiB free), driver %d.%d, "
            "runtime %d.%d", dev.name, dev.cc_major, dev.cc_minor, mib(dev.vram_total), mib(dev.vram_free),
            dev.driver_version / 1000, dev.driver_version % 1000 / 10, dev.runtime_version / 1000,
            dev.runtime_version % 1000 / 10);
    cuda_layer_desc *layers = inf_calloc((size_t)hp->n_layer, sizeof *layers);
    void **owned = inf_calloc((size_t)hp->n_layer * 7 + 1, sizeof *owned);
    int n_owned = 0, n = 0;
    cuda_model_desc d;
    if (!layers || !owned) {
        inf_log(INF_LOG_WARN, "GPU: out of host memory planning the upload; running on the CPU");
        goto done;
    }
    // The plan: exact device bytes for k GPU layers (the last k), from the same walk the upload makes.
    int plan_ctx = INF_MIN(hp->n_ctx_train, GPU_PLAN_CTX);
    if (p->n_gpu_layers > 0) n = INF_MIN(p->n_gpu_layers, hp->n_layer);
    for (int k = p->n_gpu_layers < 0 ? hp->n_layer : n; k >= 1; k--) {
        gpu_describe(m, hp->n_layer - k, &d, layers, NULL, NULL);
        uint64_t kv, compute, weights = cuda_model_bytes(&d);
        cuda_session_bytes(&d, plan_ctx, GPU_PLAN_BATCH, 1, &kv, &compute);
        uint64_t need = weights + kv + compute;
        if (p->n_gpu_layers > 0 || need + GPU_RESERVE <= dev.vram_free) {
            n = k;
            inf_log(lvl, "GPU plan: %d layers: model buffer %.2f MiB + KV cache %.2f MiB + compute %.2f MiB (for "
                    "%d tokens, batch %d) = %.2f MiB of %.2f MiB free", k, mib(weights), mib(kv), mib(compute),
                    plan_ctx, GPU_PLAN_BATCH, mib(need), mib(dev.vram_free));
            break;
        }
        n = 0;
    }
    if (n == 0) {
        snprintf(st->desc, sizeof st->desc, "not used: not one layer fits in %.0f MiB of free VRAM",
                 mib(dev.vram_free));
        inf_log(INF_LOG_WARN, "GPU: not one layer fits in %.0f MiB of free VRAM; running on the CPU",
                mib(dev.vram_free));
        goto done;
    }
    if (!gpu_describe(m, hp->n_layer - n, &d, layers, owned, &n_owned)) {
        inf_log(INF_LOG_WARN, "GPU: out of host memory converting weights; running on the CPU");
        goto done;
    }
    double t0 = inf_time_now();
    if (!cuda_model_upload(&d, &st->model, err, sizeof err)) {
        snprintf(st->desc, sizeof st->desc, "not used: %s", err);
        inf_log(INF_LOG_WARN, "GPU: upload failed: %s; running all %d layers on the CPU", err, hp->n_layer);
        st->model = NULL;
        goto done;
    }
    st->layer0 = hp->n_layer - n;
    st->n_gpu_layers = n;
    st->dims = d;
    st->dims.layers = NULL;
    st->dims.output_norm = NULL;
    st->dims.output = (cuda_matrix){0};
    snprintf(st->desc, sizeof st->desc, "CUDA0: %s (cc %d.%d, %.0f MiB)", dev.name, dev.cc_major, dev.cc_minor,
             mib(dev.vram_total));
    uint64_t cpu_bytes = m->token_embd->n_bytes;
    for (int l = 0; l < st->layer0; l++) {
        const inf_layer *L = &m->layers[l];
        cpu_bytes += L->wq->n_bytes + L->wk->n_bytes + L->wv->n_bytes + L->wo->n_bytes + L->ffn_gate->n_bytes +
                     L->ffn_up->n_bytes + L->ffn_down->n_bytes;
    }
    int n_converted = 0;
    for (int i = 0; i < n_owned; i++) n_converted += owned[i] != NULL;
    inf_log(lvl, "offloaded %d/%d layers to GPU (layers %d..%d; output head on GPU; %d weights converted to F16); "
            "uploaded in %.1f ms", n, hp->n_layer, st->layer0, hp->n_layer - 1, n_converted,
            (inf_time_now() - t0) * 1e3);
    inf_log(lvl, "model buffer: CPU %.2f MiB (mapped), CUDA0 %.2f MiB", mib(cpu_bytes), mib(cuda_model_bytes(&d)));
done:
    for (int i = 0; owned && i < n_owned; i++) free(owned[i]);
    free(owned);
    free(layers);
#endif
}

// Copies the matrices the CPU runs (the layers below the GPU's, and the output head unless the GPU has it)
// into one anonymous mapping advised for transparent huge pages, and points the layers at the copies. Decode
// reads every weight once per token: with the file's 4 KiB pages that is a TLB miss (a two-level walk under
// a hypervisor) every 4 KiB, which cost 5-9% of the read rate on the development VM. The mmap'd pages are
// dropped after copying (they stay in the page cache, not in this process), so memory does not double.
// Best effort: without huge pages, or without memory for the copy, the weights stay where they are.
// INFERNO_WEIGHT_COPY=0 in the environment turns it off (for comparisons).
// Reads n bytes at file offset off into dst with pread (the kernel copies from its page cache: no page fault
// per 4 KiB of the file's mapping, as a memcpy from the mapping takes). False on any error or short file.
static bool read_exact(int fd, void *dst, size_t n, uint64_t off) {
    uint8_t *p = dst;
    while (n > 0) {
        ssize_t got = pread(fd, p, n, (off_t)off);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return false;
        p += got, n -= (size_t)got, off += (uint64_t)got;
    }
    return true;
}

static void cpu_weights_copy(inf_model *m) {
    const char *env = getenv("INFERNO_WEIGHT_COPY");
    if (env && strcmp(env, "0") == 0) return;
    const inf_gpu_state *g = model_gpu(m);
    int n_cpu = g->n_gpu_layers > 0 ? g->layer0 : m->hp.n_layer;
    bool output = g->n_gpu_layers == 0;
    enum { PER_LAYER = 7, ALIGN = 64 };
    // the layer fields to repoint
    const gguf_tensor ***slot = inf_malloc_array((size_t)n_cpu * PER_LAYER + 1, sizeof *slot);
    if (!slot) return;
    int n = 0;
    for (int l = 0; l < n_cpu; l++) {
        inf_layer *L = &m->layers[l];
        const gguf_tensor **f[PER_LAYER] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->ffn_gate, &L->ffn_up, &L->ffn_down};
        for (int i = 0; i < PER_LAYER; i++) slot[n++] = f[i];
    }
    if (output) slot[n++] = &m->output;
    size_t bytes = 0;
    for (int i = 0; i < n; i++) bytes += ((size_t)(*slot[i])->n_bytes + ALIGN - 1) / ALIGN * ALIGN;
    size_t huge = (size_t)2 << 20;
    bytes = (bytes + huge - 1) / huge * huge;
    gguf_tensor *views = NULL;
    // Only where the copy fits comfortably in free memory: a model larger than that is better left to
    // stream from the page cache (or the disk) than pushed out of memory by its own copy.
    long page = sysconf(_SC_PAGESIZE), avail = sysconf(_SC_AVPHYS_PAGES);
    if (n == 0 || bytes == 0 || page <= 0 || avail <= 0 || bytes > (size_t)avail / 2 * (size_t)page) {
        inf_log(INF_LOG_DEBUG, "weights: no huge-page copy (%zu bytes, %ld pages free)", bytes, avail);
        goto done;
    }
    views = inf_calloc((size_t)n, sizeof *views);
    // One huge page of slack so the copy can start on a 2 MiB boundary.
    void *map = views ? mmap(NULL, bytes + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                      : MAP_FAILED;
    if (map == MAP_FAILED) {
        free(views);
        inf_log(INF_LOG_DEBUG, "weights: no memory for a huge-page copy (%zu bytes); using the mapping", bytes);
        goto done;
    }
    uint8_t *base = (uint8_t *)(((uintptr_t)map + huge - 1) / huge * huge);
    madvise(base, bytes, MADV_HUGEPAGE);
    size_t off = 0;
    // Tensors in the file's mapping are read from the file (pread), the others (converted at load) copied.
    int fd = open(m->path, O_RDONLY | O_CLOEXEC);
    const uint8_t *map0 = gguf_base(m->gguf), *map1 = map0 + gguf_file_size(m->gguf);
    for (int i = 0; i < n; i++) {
        const gguf_tensor *t = *slot[i];
        const bool in_map = (const uint8_t *)t->data >= map0 && (const uint8_t *)t->data + t->n_bytes <= map1;
        views[i] = *t;
        if (!(fd >= 0 && in_map &&
              read_exact(fd, base + off, (size_t)t->n_bytes, (uint64_t)((const uint8_t *)t->data - map0))))
            memcpy(base + off, t->data, (size_t)t->n_bytes);
        views[i].data = base + off;
        if (t != m->token_embd && in_map) {
            // Whole pages inside the tensor, in the file's mapping (not a converted tensor on the heap):
            // nothing reads them from there any more.
            uintptr_t a = ((uintptr_t)t->data + (uintptr_t)page - 1) / (uintptr_t)page * (uintptr_t)page;
            uintptr_t e = ((uintptr_t)t->data + (uintptr_t)t->n_bytes) / (uintptr_t)page * (uintptr_t)page;
            if (e > a) madvise((void *)a, e - a, MADV_DONTNEED);
        }
        *slot[i] = &views[i];
        off += ((size_t)t->n_bytes + ALIGN - 1) / ALIGN * ALIGN;
    }
    if (fd >= 0) close(fd);
    mprotect(map, bytes + huge, PROT_READ);
    m->cpu_weights = map;
    m->cpu_weights_bytes = bytes + huge;
    m->cpu_tensors = views;
    m->n_cpu_tensors = n;
    inf_log(INF_LOG_DEBUG, "weights: %d CPU matrices copied into huge pages (%.1f MiB)", n,
            (double)off / (1024.0 * 1024.0));
done:
    free(slot);
}

inf_status inf_model_load(const char *path, const inf_model_params *params, inf_model **out) {
    *out = NULL;
    inf_model_params defaults = inf_model_default_params();
    if (!params) params = &defaults;
    if (!path || !*path) return inf_fail(INF_ERR_INVALID_ARG, "no model path given");
    double t0 = inf_time_now();
    inf_model *m = inf_calloc(1, sizeof *m);
    if (!m || !(m->path = inf_strdup(path))) {
        free(m);
        return inf_fail(INF_ERR_NOMEM, "out of memory");
    }
    inf_status st = gguf_open(path, &m->gguf);
    if (st != INF_OK) goto fail; // the reader's message already names the file
    const char *arch = NULL;
    bool found = false;
    if ((st = gguf_get_str(m->gguf, "general.architecture", &arch, &found))) goto fail_named;
    if (!found) {
        st = inf_fail(INF_ERR_FORMAT, "missing required key 'general.architecture'");
        goto fail_named;
    }
    if (!arch_is_supported(arch)) {
        st = inf_fail(INF_ERR_UNSUPPORTED, "architecture '%s' is not supported (supported: llama)", arch);
        goto fail_named;
    }
    m->arch = inf_strdup(arch);
    if (!m->arch) {
        st = inf_fail(INF_ERR_NOMEM, "out of memory");
        goto fail_named;
    }
    if ((st = load_hparams(m)) || (st = vocab_load(m->gguf, &m->vocab)) || (st = bind_weights(m))) goto fail_named;
    model_count(m);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    m->n_threads = params->n_threads > 0 ? params->n_threads : (int)(cores > 0 ? cores : 1);

    inf_log_level lvl = params->verbose ? INF_LOG_INFO : INF_LOG_DEBUG;
    const inf_hparams *hp = &m->hp;
    inf_log(lvl, "model: %s (GGUF v%u, %s, %.2f MiB, %llu params, %s)", path, gguf_version(m->gguf), m->arch,
            (double)gguf_file_size(m->gguf) / (1024.0 * 1024.0), (unsigned long long)m->n_params, m->file_type);
    inf_log(lvl, "model: n_vocab %d, n_ctx_train %d, n_embd %d, n_layer %d, n_head %d, n_head_kv %d, head_dim %d, "
                 "n_ff %d, n_rot %d, rope base %g scale %g, rms eps %g, output %s",
            hp->n_vocab, hp->n_ctx_train, hp->n_embd, hp->n_layer, hp->n_head, hp->n_head_kv, hp->head_dim,
            hp->n_ff, hp->n_rot, hp->rope_freq_base, hp->rope_freq_scale, hp->rms_eps,
            m->tied_output ? "tied to token_embd" : "separate");
    inf_log(lvl, "model: tokenizer %s (pre %s), %d tokens; loaded in %.1f ms", vocab_model_name(m->vocab),
            vocab_pre_name(m->vocab), vocab_n_tokens(m->vocab), (inf_time_now() - t0) * 1e3);
    gpu_place(m, params, lvl); // GPU hand-over: placement and upload (logs why when the GPU is not used)
    cpu_weights_copy(m);
    *out = m;
    return INF_OK;
fail_named:
    inf_error_prefix("%s", path);
fail:
    inf_model_free(m);
    return st;
}

void inf_model_free(inf_model *m) {
    if (!m) return;
    gpu_unregister(m); // GPU hand-over
    vocab_free(m->vocab);
    gguf_close(m->gguf);
    if (m->cpu_weights) munmap(m->cpu_weights, m->cpu_weights_bytes);
    free(m->cpu_tensors);
    free(m->layers);
    free(m->owned_floats);
    for (int i = 0; i < m->n_converted; i++) {
        free((void *)m->converted[i]->data);
        free(m->converted[i]);
    }
    free(m->converted);
    free(m->arch);
    free(m->path);
    free(m);
}

void inf_model_get_info(const inf_model *m, inf_model_info *info) {
    const inf_hparams *hp = &m->hp;
    const char *name = NULL;
    bool found = false;
    if (gguf_get_str(m->gguf, "general.name", &name, &found) != INF_OK || !found) name = "";
    *info = (inf_model_info){
        .arch = m->arch,
        .name = name,
        .tokenizer = vocab_model_name(m->vocab),
        .tokenizer_pre = vocab_pre_name(m->vocab),
        .gguf_version = gguf_version(m->gguf),
        .n_vocab = hp->n_vocab,
        .n_ctx_train = hp->n_ctx_train,
        .n_embd = hp->n_embd,
        .n_layer = hp->n_layer,
        .n_head = hp->n_head,
        .n_head_kv = hp->n_head_kv,
        .head_dim = hp->head_dim,
        .n_ff = hp->n_ff,
        .n_rot = hp->n_rot,
        .rope_freq_base = hp->rope_freq_base,
        .rope_freq_scale = hp->rope_freq_scale,
        .rms_eps = hp->rms_eps,
        .tied_output = m->tied_output,
        .n_params = m->n_params,
        .file_size = gguf_file_size(m->gguf),
        .weights_bytes = m->weights_bytes,
        .file_type = m->file_type,
        .bos = vocab_bos(m->vocab),
        .eos = vocab_eos(m->vocab),
        .add_bos = vocab_add_bos(m->vocab),
        .n_gpu_layers = model_gpu(m)->n_gpu_layers, // GPU hand-over
        .gpu = model_gpu(m)->desc,
    };
}

int inf_model_type_histogram(const inf_model *m, const char **names, int *counts, int cap) {
    int n = 0;
    for (uint32_t t = 0; t < INF_TYPE_COUNT; t++) {
        int c = 0;
        for (int64_t i = 0; i < gguf_n_tensors(m->gguf); i++)
            if ((uint32_t)gguf_tensor_at(m->gguf, i)->type == t) c++;
        if (!c) continue;
        if (n < cap) {
            names[n] = inf_type_name(t);
            counts[n] = c;
        }
        n++;
    }
    return n;
}

bool inf_model_meta_at(const inf_model *m, int i, const char **key, char *value, size_t cap) {
    if (i < 0 || i >= gguf_n_kv(m->gguf)) return false;
    const gguf_kv *kv = gguf_kv_at(m->gguf, i);
    *key = kv->key;
    if (cap == 0) return true;
    switch (kv->type) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_UINT16: case GGUF_TYPE_UINT32: case GGUF_TYPE_UINT64:
        snprintf(value, cap, "%llu", (unsigned long long)kv->v.u64);
        break;
    case GGUF_TYPE_BOOL: snprintf(value, cap, "%s", kv->v.u64 ? "true" : "false"); break;
    case GGUF_TYPE_INT8: case GGUF_TYPE_INT16: case GGUF_TYPE_INT32: case GGUF_TYPE_INT64:
        snprintf(value, cap, "%lld", (long long)kv->v.i64);
        break;
    case GGUF_TYPE_FLOAT32: case GGUF_TYPE_FLOAT64: snprintf(value, cap, "%g", kv->v.f64); break;
    case GGUF_TYPE_STRING: {
        size_t n = (size_t)INF_MIN(kv->v.str.len, (uint64_t)cap - 1);
        memcpy(value, kv->v.str.ptr, n);
        value[n] = '\0';
        for (size_t j = 0; j < n; j++)
            if ((unsigned char)value[j] < 0x20) value[j] = ' ';
        break;
    }
    case GGUF_TYPE_ARRAY:
        snprintf(value, cap, "[%s x %llu]", gguf_type_name(kv->arr_type), (unsigned long long)kv->arr_n);
        break;
    default: snprintf(value, cap, "?"); break;
    }
    return true;
}

// ---- tokenizer entry points ----
inf_status inf_tokenize(const inf_model *m, const char *text, size_t len, bool add_special, bool parse_special,
                        inf_token *out, int cap, int *n_out) {
    return vocab_tokenize(m->vocab, text, len, add_special, parse_special, out, cap, n_out);
}

int inf_token_to_piece(const inf_model *m, inf_token t, bool render_special, char *buf, int cap) {
    return vocab_token_to_piece(m->vocab, t, render_special, buf, cap);
}

int inf_detokenize(const inf_model *m, const inf_token *tokens, int n, bool remove_leading_space,
                   bool render_special, char *buf, int cap) {
    return vocab_detokenize(m->vocab, tokens, n, remove_leading_space, render_special, buf, cap);
}

bool inf_token_is_eog(const inf_model *m, inf_token t) { return vocab_is_eog(m->vocab, t); }
int inf_token_bos(const inf_model *m) { return vocab_bos(m->vocab); }
int inf_token_eos(const inf_model *m) { return vocab_eos(m->vocab); }
const char *inf_token_text(const inf_model *m, inf_token t) { return vocab_token_text(m->vocab, t); }
