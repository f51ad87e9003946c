// synth.c: `inferno synth` on the library side: writes a llama-architecture GGUF of a named shape with
// random weights and a real tokenizer, for benchmarks that need a model of a given size without a download.
//
// Weights: every 2-D tensor is N(0, 0.02^2), every norm weight 1.0, generated row by row and quantized on
// the fly by the shared converter (quantize_int.h), so the model never exists whole as F32 in memory.
// Random numbers, fixed so that a seed always gives the same file whatever the thread count: row r of
// tensor t (tensor index in file order) reads a SplitMix64 sequence whose state starts at
//     mix(mix(seed ^ (t + 1) * G) ^ (r + 1) * H),   G = 0x9E3779B97F4A7C15, H = 0xD1B54A32D192ED03,
// where mix is SplitMix64's finalizer; each step adds G to the state and returns d = mix(state). Each draw
// gives two normals by Box-Muller in float: u1 = ((d >> 40) + 1) / 2^24 in (0, 1], u2 = ((d >> 8) & 0xffffff)
// / 2^24, r = 0.02 sqrt(-2 ln u1), weights r cos(2 pi u2) and r sin(2 pi u2) for elements 2k and 2k + 1
// (|z| <= 5.8). Float and one draw per pair keep generation cheap next to quantizing (about 8 ns a
// weight). Bit-identical files across platforms need the same libm (logf, sinf, cosf).
//
// Metadata is what llama.cpp's converter writes for a llama model (general.*, llama.* hyperparameters,
// general.file_type, general.quantization_version), plus every tokenizer.* key of the vocabulary file in
// its order. Tensors follow the converter's order: token_embd, per layer attn_norm, attn_q, attn_k, attn_v,
// attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down, then output_norm and output (untied).
//
// Left out: architectures other than llama, tied embeddings, RoPE scaling, and any attempt to reproduce
// the exact weights of shared/models/synthetic (those came from numpy's generator).
#include "model/quantize_int.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define SYNTH_STD         0.02
#define SYNTH_GOLDEN      0x9E3779B97F4A7C15ull
#define SYNTH_ROW_MUL     0xD1B54A32D192ED03ull
#define SYNTH_MAX_TENSORS (3 + 9 * 128) // token_embd, output_norm, output, 9 per layer

typedef struct {
    const char *name, *description;
    int n_vocab; // the shape's vocabulary (the vocabulary file decides the actual one)
    int n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx;
    float rope_freq_base, rms_eps;
} synth_shape;

static const synth_shape synth_shapes[] = {
    {"micro", "shared/models/synthetic micro: 3.4M params, 4 layers, n_embd 256, GQA 8/4", 512, 256, 4, 8, 4,
     768, 512, 10000.0f, 1e-5f},
    {"tinyllama-1.1b", "TinyLlama 1.1B: 22 layers, n_embd 2048, GQA 32/4, n_ff 5632", 32000, 2048, 22, 32, 4,
     5632, 2048, 10000.0f, 1e-5f},
    {"llama-2-7b", "Llama 2 7B: 32 layers, n_embd 4096, 32 heads, n_ff 11008", 32000, 4096, 32, 32, 32, 11008,
     4096, 10000.0f, 1e-5f},
    {"mistral-7b", "Mistral 7B v0.2: 32 layers, n_embd 4096, head size 128, GQA 32/8, n_ff 14336", 32000, 4096, 32,
     32, 8, 14336, 32768, 1000000.0f, 1e-5f},
    {"micro-hd128", "tests: 2 layers, n_embd 512, head size 128 (GQA 4/1, as Llama 3 8B), n_ff 2304", 512, 512, 2, 4,
     1, 2304, 2048, 10000.0f, 1e-5f},
};

bool inf_synth_shape_at(int i, const char **name, const char **description) {
    if (i < 0 || i >= (int)INF_ARRAY_LEN(synth_shapes)) return false;
    if (name) *name = synth_shapes[i].name;
    if (description) *description = synth_shapes[i].description;
    return true;
}

static uint64_t synth_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t synth_next(uint64_t *state) {
    *state += SYNTH_GOLDEN;
    return synth_mix(*state);
}

typedef struct {
    const quant_tensor *t; // the tensors, in file order
    uint64_t seed;
} synth_source;

// Fills rows of tensor i: ones for 1-D tensors (the norms), normals for the rest.
static const float *synth_rows(void *user, int64_t i, int64_t row0, int64_t nrows, float *scratch) {
    const synth_source *s = user;
    const quant_tensor *t = &s->t[i];
    int64_t ne0 = t->ne[0];
    if (t->n_dims == 1) {
        for (int64_t e = 0; e < nrows * ne0; e++) scratch[e] = 1.0f;
        return scratch;
    }
    const float two_pi = 6.28318530718f, std = (float)SYNTH_STD;
    for (int64_t r = 0; r < nrows; r++) {
        uint64_t state = synth_mix(synth_mix(s->seed ^ ((uint64_t)i + 1) * SYNTH_GOLDEN) ^
                                   ((uint64_t)(row0 + r) + 1) * SYNTH_ROW_MUL);
        float *x = scratch + r * ne0;
        for (int64_t e = 0; e < ne0; e += 2) {
            uint64_t d = synth_next(&state);
            float u1 = (float)((d >> 40) + 1) * 0x1p-24f;
            float u2 = (float)((d >> 8) & 0xffffffu) * 0x1p-24f;
            float rad = std * sqrtf(-2.0f * logf(u1));
            x[e] = rad * cosf(two_pi * u2);
            if (e + 1 < ne0) x[e + 1] = rad * sinf(two_pi * u2);
        }
    }
    return scratch;
}

static void synth_add(quant_tensor *ts, int *n, char (*names)[64], const char *name, int64_t ne0,
                      int64_t ne1) {
    assert(*n < SYNTH_MAX_TENSORS);
    snprintf(names[*n], 64, "%s", name);
    ts[*n] = (quant_tensor){.name = names[*n],
                            .n_dims = ne1 > 0 ? 2 : 1,
                            .ne = {ne0, ne1 > 0 ? ne1 : 1, 1, 1},
                            .type = INF_TYPE_F32};
    (*n)++;
}

static inf_status synth_metadata(gguf_writer *w, const synth_shape *sh, const gguf_file *vocab, int n_vocab,
                                 const quant_ftype *ft, uint64_t seed) {
    char desc[160];
    snprintf(desc, sizeof desc, "inferno synth: random weights N(0, 0.02^2), seed %" PRIu64 ", shape %s",
             seed, sh->name);
    char name[96];
    snprintf(name, sizeof name, "synth-%s", sh->name);
    int head_dim = sh->n_embd / sh->n_head;
    inf_status st;
    if ((st = gguf_writer_set_str(w, "general.architecture", "llama")) ||
        (st = gguf_writer_set_str(w, "general.type", "model")) ||
        (st = gguf_writer_set_str(w, "general.name", name)) ||
        (st = gguf_writer_set_str(w, "general.description", desc)) ||
        (st = gguf_writer_set_u32(w, "llama.block_count", (uint32_t)sh->n_layer)) ||
        (st = gguf_writer_set_u32(w, "llama.context_length", (uint32_t)sh->n_ctx)) ||
        (st = gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)sh->n_embd)) ||
        (st = gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)sh->n_ff)) ||
        (st = gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)sh->n_head)) ||
        (st = gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)sh->n_head_kv)) ||
        (st = gguf_writer_set_f32(w, "llama.rope.freq_base", sh->rope_freq_base)) ||
        (st = gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", sh->rms_eps)) ||
        (st = gguf_writer_set_u32(w, "general.file_type", ft->ftype)) ||
        (st = gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)n_vocab)) ||
        (st = gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)head_dim)))
        return st;
    for (int64_t i = 0; i < gguf_n_kv(vocab); i++) {
        const gguf_kv *kv = gguf_kv_at(vocab, i);
        if (!strncmp(kv->key, "tokenizer.", 10) && (st = gguf_writer_copy_kv(w, kv))) return st;
    }
    return gguf_writer_set_u32(w, "general.quantization_version", 2);
}

inf_status inf_synth_model(const char *shape, const char *vocab_path, const char *out, const char *type,
                           uint64_t seed) {
    const synth_shape *sh = NULL;
    for (size_t i = 0; shape && i < INF_ARRAY_LEN(synth_shapes); i++)
        if (!strcmp(shape, synth_shapes[i].name)) sh = &synth_shapes[i];
    if (!sh) {
        char known[256] = "";
        for (size_t i = 0; i < INF_ARRAY_LEN(synth_shapes); i++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                     synth_shapes[i].name);
        return inf_fail(INF_ERR_INVALID_ARG, "synth: unknown shape '%s' (known: %s)",
                        shape ? shape : "(null)", known);
    }
    const quant_ftype *ft = quant_ftype_find(type ? type : "F16");
    if (!ft)
        return inf_fail(INF_ERR_INVALID_ARG, "synth: unknown type '%s' (known: %s)", type,
                        quant_ftype_list());
    if (!vocab_path || !*vocab_path)
        return inf_fail(INF_ERR_INVALID_ARG, "synth: a vocabulary GGUF is required");
    if (!out || !*out) return inf_fail(INF_ERR_INVALID_ARG, "synth: an output path is required");
    assert(sh->n_layer <= 128 && sh->n_embd % sh->n_head == 0);

    double t_start = inf_time_now();
    gguf_file *vocab = NULL;
    inf_status st = gguf_open(vocab_path, &vocab);
    if (st) return st;
    gguf_writer *w = NULL;
    const gguf_kv *tokens = NULL;
    if ((st = gguf_get_arr(vocab, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &tokens, NULL))) goto done;
    if (!tokens || tokens->arr_n == 0 || tokens->arr_n > (1u << 22)) {
        st = inf_fail(INF_ERR_FORMAT, "%s: no usable tokenizer.ggml.tokens array (not a vocabulary GGUF?)",
                      vocab_path);
        goto done;
    }
    int n_vocab = (int)tokens->arr_n;
    if (n_vocab != sh->n_vocab)
        inf_log(INF_LOG_INFO,
                "synth: %s has %d tokens; the model gets %d rows of token_embd and output (shape %s "
                "has %d)",
                vocab_path, n_vocab, n_vocab, sh->name, sh->n_vocab);

    quant_tensor ts[SYNTH_MAX_TENSORS];
    inf_type types[SYNTH_MAX_TENSORS];
    char(*nm)[64] = inf_malloc_array(SYNTH_MAX_TENSORS, 64); // tensor names, borrowed by ts
    if (!nm) {
        st = inf_fail(INF_ERR_NOMEM, "synth: out of memory");
        goto done;
    }
    int n = 0, head_dim = sh->n_embd / sh->n_head;
    synth_add(ts, &n, nm, "token_embd.weight", sh->n_embd, n_vocab);
    for (int l = 0; l < sh->n_layer; l++) {
        char b[64];
#define SYNTH_LAYER(suffix, ne0, ne1)                                                                        \
    do {                                                                                                     \
        snprintf(b, sizeof b, "blk.%d.%s", l, suffix);                                                       \
        synth_add(ts, &n, nm, b, ne0, ne1);                                                                  \
    } while (0)
        SYNTH_LAYER("attn_norm.weight", sh->n_embd, 0);
        SYNTH_LAYER("attn_q.weight", sh->n_embd, sh->n_head * head_dim);
        SYNTH_LAYER("attn_k.weight", sh->n_embd, sh->n_head_kv * head_dim);
        SYNTH_LAYER("attn_v.weight", sh->n_embd, sh->n_head_kv * head_dim);
        SYNTH_LAYER("attn_output.weight", sh->n_head * head_dim, sh->n_embd);
        SYNTH_LAYER("ffn_norm.weight", sh->n_embd, 0);
        SYNTH_LAYER("ffn_gate.weight", sh->n_embd, sh->n_ff);
        SYNTH_LAYER("ffn_up.weight", sh->n_embd, sh->n_ff);
        SYNTH_LAYER("ffn_down.weight", sh->n_ff, sh->n_embd);
#undef SYNTH_LAYER
    }
    synth_add(ts, &n, nm, "output_norm.weight", sh->n_embd, 0);
    synth_add(ts, &n, nm, "output.weight", sh->n_embd, n_vocab);

    quant_hparams hp = {
        .arch = "llama", .n_layer = sh->n_layer, .n_head = sh->n_head, .n_head_kv = sh->n_head_kv};
    if ((st = quant_choose_types(ft, false, &hp, ts, n, types))) {
        inf_error_prefix("synth %s", sh->name);
        goto done_nm;
    }
    if ((st = gguf_writer_open(out, &w)) || (st = synth_metadata(w, sh, vocab, n_vocab, ft, seed)))
        goto done_nm;

    synth_source user = {.t = ts, .seed = seed};
    char label[96];
    snprintf(label, sizeof label, "synth %s", sh->name);
    quant_source src = {
        .rows = synth_rows, .user = &user, .raw = NULL, .n_threads = quant_thread_count(0), .label = label};
    quant_stats stats;
    if ((st = quant_write_tensors(w, ts, types, n, &src, &stats))) goto done_nm;
    st = gguf_writer_finish(w);
    w = NULL;
    if (!st)
        inf_log(INF_LOG_INFO,
                "synth: %s %s (%d tokens, seed %" PRIu64 ") -> %s: %.2f MiB in %.2f s (%d threads)", sh->name,
                ft->name, n_vocab, seed, out, (double)stats.bytes_out / 1048576.0, inf_time_now() - t_start,
                src.n_threads);
done_nm:
    free(nm);
done:
    gguf_writer_free(w);
    gguf_close(vocab);
    return st;
}
