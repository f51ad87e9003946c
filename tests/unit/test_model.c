// test_model.c: model-level hostile input. A tiny valid llama GGUF is built in memory (8-token vocabulary,
// one layer, F32 weights) and then broken one way per table row: a missing tensor or hyperparameter, a
// wrong shape, an impossible head count, an unsupported architecture or tensor type, a vocabulary that does
// not match the embedding, a non-finite norm weight. Each must fail to load with the expected status and a
// message naming the problem; the valid file must load and run a forward pass with finite logits.
#include "test.h"

#include "gguf_build.h"
#include "inferno.h"

#include <unistd.h>

enum defect {
    D_NONE,
    D_NO_ARCH,
    D_ARCH_GPT2,
    D_NO_EMBD_LEN,
    D_NO_BLOCK_COUNT,
    D_NO_RMS_EPS,
    D_KV_HEADS_3,
    D_NO_ATTN_Q,
    D_NO_FFN_DOWN,
    D_NO_OUTPUT_NORM,
    D_Q_SHAPE,
    D_VOCAB_MISMATCH,
    D_NAN_NORM,
    D_EMBD_LEN_TYPE,
    D_ROPE_DIMS_ODD,
    D_NO_TOKENS,
};

#define N_VOCAB 8
#define N_EMBD 8
#define N_FF 16

typedef struct {
    const char *name;
    int64_t ne0, ne1; // ne1 = 0: 1-D
} tdesc;

static const tdesc tensors[] = {
    {"token_embd.weight", N_EMBD, N_VOCAB},  {"output_norm.weight", N_EMBD, 0},
    {"output.weight", N_EMBD, N_VOCAB},      {"blk.0.attn_norm.weight", N_EMBD, 0},
    {"blk.0.attn_q.weight", N_EMBD, N_EMBD}, {"blk.0.attn_k.weight", N_EMBD, 4},
    {"blk.0.attn_v.weight", N_EMBD, 4},      {"blk.0.attn_output.weight", N_EMBD, N_EMBD},
    {"blk.0.ffn_norm.weight", N_EMBD, 0},    {"blk.0.ffn_gate.weight", N_EMBD, N_FF},
    {"blk.0.ffn_up.weight", N_EMBD, N_FF},   {"blk.0.ffn_down.weight", N_FF, N_EMBD},
};

// Writes the model with one defect to path.
static void build_model(const char *path, enum defect d) {
    gguf_build b;
    gb_init(&b, 3);
    const char *toks[N_VOCAB] = {"<unk>", "<s>", "</s>", "\342\226\201a", "b", "c", "\342\226\201", "a"};
    float scores[N_VOCAB] = {0, 0, 0, -1, -2, -3, -4, -5};
    int32_t types[N_VOCAB] = {2, 3, 3, 1, 1, 1, 1, 1};
    int n_t = 0;
    for (size_t i = 0; i < sizeof tensors / sizeof tensors[0]; i++) {
        if ((d == D_NO_ATTN_Q && i == 4) || (d == D_NO_FFN_DOWN && i == 11) || (d == D_NO_OUTPUT_NORM && i == 1))
            continue;
        n_t++;
    }
    int n_kv = 13;
    if (d == D_NO_ARCH || d == D_NO_EMBD_LEN || d == D_NO_BLOCK_COUNT || d == D_NO_RMS_EPS || d == D_NO_TOKENS) n_kv--;
    gb_header(&b, (uint64_t)n_t, (uint64_t)n_kv);
    if (d != D_NO_ARCH) gb_kv_str(&b, "general.architecture", d == D_ARCH_GPT2 ? "gpt2" : "llama");
    gb_kv_u32(&b, "llama.context_length", 64);
    if (d == D_EMBD_LEN_TYPE) gb_kv_str(&b, "llama.embedding_length", "eight");
    else if (d != D_NO_EMBD_LEN) gb_kv_u32(&b, "llama.embedding_length", N_EMBD);
    if (d != D_NO_BLOCK_COUNT) gb_kv_u32(&b, "llama.block_count", 1);
    gb_kv_u32(&b, "llama.feed_forward_length", N_FF);
    gb_kv_u32(&b, "llama.attention.head_count", 2);
    gb_kv_u32(&b, "llama.attention.head_count_kv", d == D_KV_HEADS_3 ? 3 : 1);
    gb_kv_u32(&b, "llama.rope.dimension_count", d == D_ROPE_DIMS_ODD ? 3 : 4);
    if (d != D_NO_RMS_EPS) gb_kv_f32(&b, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gb_kv_str(&b, "tokenizer.ggml.model", "llama");
    if (d != D_NO_TOKENS) gb_kv_arr_str(&b, "tokenizer.ggml.tokens", toks, d == D_VOCAB_MISMATCH ? 7 : N_VOCAB);
    gb_kv_arr_f32(&b, "tokenizer.ggml.scores", scores, d == D_VOCAB_MISMATCH ? 7 : N_VOCAB);
    gb_kv_arr_i32(&b, "tokenizer.ggml.token_type", types, d == D_VOCAB_MISMATCH ? 7 : N_VOCAB);
    uint64_t off = 0;
    size_t bytes[16];
    int n = 0;
    for (size_t i = 0; i < sizeof tensors / sizeof tensors[0]; i++) {
        if ((d == D_NO_ATTN_Q && i == 4) || (d == D_NO_FFN_DOWN && i == 11) || (d == D_NO_OUTPUT_NORM && i == 1))
            continue;
        int64_t ne[2] = {tensors[i].ne0, tensors[i].ne1};
        if (d == D_Q_SHAPE && i == 4) ne[1] = 6;
        uint32_t nd = tensors[i].ne1 ? 2 : 1;
        gb_tensor_info(&b, tensors[i].name, nd, ne, 0, off);
        size_t nb = (size_t)ne[0] * (size_t)(nd == 2 ? ne[1] : 1) * 4;
        bytes[n++] = nb;
        off += (nb + 31) / 32 * 32;
    }
    gb_pad(&b, 32);
    uint32_t seed = 12345;
    for (int i = 0; i < n; i++) {
        size_t start = b.len;
        for (size_t j = 0; j < bytes[i] / 4; j++) {
            seed = seed * 1664525u + 1013904223u;
            float v = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 0.2f;
            gb_f32(&b, v);
        }
        gb_pad(&b, 32);
        (void)start;
    }
    if (d == D_NAN_NORM) { // the first 1-D tensor after token_embd is output_norm: poison its first value
        float nan = NAN;
        size_t data_start = b.len - (size_t)off;
        gb_patch(&b, data_start + (size_t)((bytes[0] + 31) / 32 * 32), &nan, 4);
    }
    FILE *f = fopen(path, "wb");
    fwrite(b.data, 1, b.len, f);
    fclose(f);
    gb_free(&b);
}

static const struct {
    enum defect d;
    inf_status st;
    const char *msg;
} rows[] = {
    {D_NO_ARCH, INF_ERR_FORMAT, "missing required key 'general.architecture'"},
    {D_ARCH_GPT2, INF_ERR_UNSUPPORTED, "architecture 'gpt2' is not supported"},
    {D_NO_EMBD_LEN, INF_ERR_FORMAT, "missing required hyperparameter 'llama.embedding_length'"},
    {D_NO_BLOCK_COUNT, INF_ERR_FORMAT, "missing required hyperparameter 'llama.block_count'"},
    {D_NO_RMS_EPS, INF_ERR_FORMAT, "missing required hyperparameter 'llama.attention.layer_norm_rms_epsilon'"},
    {D_KV_HEADS_3, INF_ERR_FORMAT, "head_count_kv 3 does not divide head_count 2"},
    {D_NO_ATTN_Q, INF_ERR_FORMAT, "missing required tensor 'blk.0.attn_q.weight'"},
    {D_NO_FFN_DOWN, INF_ERR_FORMAT, "missing required tensor 'blk.0.ffn_down.weight'"},
    {D_NO_OUTPUT_NORM, INF_ERR_FORMAT, "missing required tensor 'output_norm.weight'"},
    {D_Q_SHAPE, INF_ERR_FORMAT, "tensor 'blk.0.attn_q.weight' has shape [8, 6], expected [8, 8]"},
    {D_VOCAB_MISMATCH, INF_ERR_FORMAT, "token_embd.weight has 8 rows but the vocabulary has 7 tokens"},
    {D_NAN_NORM, INF_ERR_FORMAT, "tensor 'output_norm.weight' holds a non-finite value"},
    {D_EMBD_LEN_TYPE, INF_ERR_FORMAT, "llama.embedding_length"},
    {D_ROPE_DIMS_ODD, INF_ERR_FORMAT, "rope.dimension_count 3 out of range"},
    {D_NO_TOKENS, INF_ERR_FORMAT, "tokenizer.ggml.tokens"},
};

int main(void) {
    char path[256];
    snprintf(path, sizeof path, "/tmp/inferno_test_model_%d.gguf", (int)getpid());
    inf_log_set_level(INF_LOG_NONE);

    build_model(path, D_NONE);
    inf_model *m = NULL;
    inf_status st = inf_model_load(path, NULL, &m);
    CHECK_MSG(st == INF_OK, "valid model: %s", inf_last_error());
    if (m) {
        inf_session *s = NULL;
        CHECK(inf_session_init(m, NULL, &s) == INF_OK);
        inf_token toks[3] = {1, 3, 4};
        int32_t pos[3] = {0, 1, 2}, seq[3] = {0, 0, 0};
        inf_batch b = {.n_tokens = 3, .tokens = toks, .pos = pos, .seq_id = seq};
        CHECK(s && inf_session_decode(s, &b) == INF_OK);
        const float *lg = s ? inf_session_logits(s, -1) : NULL;
        bool finite = lg != NULL;
        for (int i = 0; lg && i < N_VOCAB; i++) finite = finite && isfinite(lg[i]);
        CHECK(finite);
        inf_session_free(s);
        inf_model_free(m);
    }
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        build_model(path, rows[i].d);
        m = NULL;
        st = inf_model_load(path, NULL, &m);
        CHECK_MSG(st == rows[i].st, "row %zu: status %s, want %s (%s)", i, inf_status_str(st),
                  inf_status_str(rows[i].st), inf_last_error());
        CHECK_MSG(strstr(inf_last_error(), rows[i].msg) != NULL, "row %zu: message '%s' lacks '%s'", i,
                  inf_last_error(), rows[i].msg);
        CHECK_MSG(strstr(inf_last_error(), path) != NULL, "row %zu: message '%s' does not name the file", i,
                  inf_last_error());
        CHECK(m == NULL);
        inf_model_free(m);
    }
    // A missing file and a directory.
    CHECK(inf_model_load("/nonexistent/model.gguf", NULL, &m) == INF_ERR_IO);
    CHECK(strstr(inf_last_error(), "/nonexistent/model.gguf") != NULL);
    CHECK(inf_model_load("/tmp", NULL, &m) != INF_OK);
    unlink(path);
    return test_summary();
}
