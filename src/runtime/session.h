// session.h: the session's internals: KV cache cells, per-sequence position tables, scratch buffers.
// The forward pass (model/llama.c) fills the cache and the logits; session.c owns the bookkeeping.
//
// KV cache: n_ctx cells shared by all sequences. A cell holds one position of one sequence for every layer:
// k_cache/v_cache are (n_layer, n_ctx, n_head_kv*head_dim) F32. seq_cells[s*n_ctx + p] is the cell holding
// position p of sequence s; positions of a sequence are contiguous from 0 (seq_len[s] of them).
#ifndef INFERNO_SESSION_H
#define INFERNO_SESSION_H

#include "backend/cpu/cpu_kernels.h"
#include "backend/cuda/cuda_backend.h"
#include "core/threadpool.h"
#include "model/model.h"

struct inf_session {
    inf_model *model;
    int n_ctx, n_batch, n_seq_max, n_threads;
    int kv_dim; // n_head_kv * head_dim

    float *k_cache;     // (n_layer, n_ctx, kv_dim)
    float *v_cache;     // (n_layer, n_ctx, kv_dim)
    int32_t *free_cells; // stack of free cell ids
    int n_free;
    int32_t *seq_cells;  // (n_seq_max, n_ctx)
    int32_t *seq_len;    // (n_seq_max)

    // scratch for one forward pass of at most n_batch tokens
    float *x;      // (n_batch, n_embd) residual stream
    float *xb;     // (n_batch, max(n_embd, q_dim)) normed input / attention output
    float *xb2;    // (n_batch, n_embd) block output
    float *q;      // (n_batch, n_head*head_dim)
    float *k;      // (n_batch, kv_dim)
    float *v;      // (n_batch, kv_dim)
    float *hb;     // (n_batch, n_ff)
    float *hb2;    // (n_batch, n_ff)
    float *scores; // (n_threads, n_ctx) attention weights of one head, per thread
    float *rope;   // (n_batch, n_rot) cos/sin pairs per token
    void *xq;      // (n_batch, row bytes of the widest quantized activation)
    size_t xq_row_bytes;
    int32_t *cells; // (n_batch) cell assigned to each token of the batch

    float *logits;      // (n_outputs, n_vocab)
    size_t logits_rows; // capacity in rows
    const float *logits_row; // the last step's one row of logits where the GPU left it (pinned), else NULL
    int32_t *out_row;   // (n_batch) output row of each batch token, -1 when none
    bool embeddings;    // keep the final-norm hidden states of output rows
    float *embd;        // (n_outputs, n_embd) when embeddings is on
    size_t embd_rows;   // capacity in rows
    int n_last;         // tokens in the last batch
    inf_pool *pool;     // n_threads workers that run the forward pass together
    const inf_cpu_kernels *kern;
    // ---- GPU hand-over (CUDA backend) ----
    struct cuda_session *gpu; // NULL: every layer on the CPU
    int gpu_layer0;           // layers [gpu_layer0, n_layer) run on the GPU; the CPU KV cache holds the others
};

// Runs the model over batch (already validated; cells[] assigned) and writes logits for requested tokens.
// Fails (INF_ERR_INTERNAL, message from the GPU) only when a GPU step fails.
inf_status llama_forward(inf_session *s, const inf_batch *b);

// ---- GPU hand-over (CUDA backend) ----
// A model's GPU placement, made at load (model.c, owned by the model as m->gpu) and read by sessions;
// model_gpu never returns NULL (a model without GPU layers gets a state with model NULL).
typedef struct inf_gpu_state {
    struct cuda_model *model; // NULL: CPU only
    int layer0;               // first GPU layer
    int n_gpu_layers;
    char desc[320];           // for inf_model_info.gpu
    cuda_model_desc dims;     // sizes for session planning (layers, output: unset)
    inf_log_level log_level;  // the model's load-log level (INFO when verbose), for the session's table
    _Atomic int f16_logged;   // the F16 weight copies were decided and, if made, logged (once per model)
    _Atomic int col_logged;   // the decode kernel's column copies were decided and logged (once per model)
} inf_gpu_state;
const inf_gpu_state *model_gpu(const inf_model *m);

#endif // INFERNO_SESSION_H
