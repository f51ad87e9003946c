// model.h: a loaded model: the GGUF mapping, hyperparameters, the vocabulary and the weights bound as views
// into the mapping. The forward pass (llama.c) and the session (runtime/) read these; nothing else does.
#ifndef INFERNO_MODEL_H
#define INFERNO_MODEL_H

#include "core/core.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

typedef enum { INF_ROPE_NORMAL, INF_ROPE_NEOX } inf_rope_mode;
typedef enum { INF_ROPE_SCALING_NONE, INF_ROPE_SCALING_LINEAR, INF_ROPE_SCALING_YARN } inf_rope_scaling;

typedef struct {
    int n_vocab;     // rows of token_embd
    int n_ctx_train; // {arch}.context_length
    int n_embd;      // width of the residual stream
    int n_layer;
    int n_head;      // query heads
    int n_head_kv;   // key/value heads (grouped-query attention when < n_head)
    int head_dim;    // per head (key_length; n_embd / n_head by default)
    int n_ff;        // feed-forward hidden width
    int n_rot;       // rotated dimensions per head (<= head_dim)
    float rms_eps;
    float rope_freq_base;
    float rope_freq_scale; // 1 / scaling factor (1 = none)
    inf_rope_mode rope_mode;
    inf_rope_scaling rope_scaling;
    int rope_n_ctx_orig;   // YaRN: the original training context
    float yarn_ext_factor, yarn_attn_factor, yarn_beta_fast, yarn_beta_slow;
} inf_hparams;

typedef struct {
    const float *attn_norm;          // (n_embd) dequantized copy, owned by the model
    const gguf_tensor *wq;           // (n_head*head_dim rows, n_embd cols)
    const gguf_tensor *wk;           // (n_head_kv*head_dim, n_embd)
    const gguf_tensor *wv;           // (n_head_kv*head_dim, n_embd)
    const gguf_tensor *wo;           // (n_embd, n_head*head_dim)
    const float *bq, *bk, *bv;       // optional biases (n_head*head_dim / n_head_kv*head_dim), or NULL
    const float *ffn_norm;           // (n_embd)
    const gguf_tensor *ffn_gate;     // (n_ff, n_embd)
    const gguf_tensor *ffn_up;       // (n_ff, n_embd)
    const gguf_tensor *ffn_down;     // (n_embd, n_ff)
} inf_layer;

struct inf_model {
    char *path;
    gguf_file *gguf;
    inf_vocab *vocab;
    inf_hparams hp;
    char *arch;                     // general.architecture
    const gguf_tensor *token_embd;  // (n_vocab rows, n_embd cols)
    const gguf_tensor *output;      // (n_vocab, n_embd); == token_embd when tied
    const float *output_norm;       // (n_embd)
    const float *rope_freqs;        // (n_rot/2) optional frequency factors, or NULL
    inf_layer *layers;              // (n_layer)
    float *owned_floats;            // backing store of the dequantized 1-D tensors above
    gguf_tensor **converted;        // legacy flat-block tensors dequantized to F32 at load (owned, with data)
    int n_converted;
    bool tied_output;
    int n_threads;
    struct inf_gpu_state *gpu;      // GPU placement (runtime/session.h), NULL when all layers run on the CPU
    // The CPU layers' matrices (and the output head when it runs on the CPU), copied at load into one
    // anonymous mapping advised for transparent huge pages: decode streams every weight once per token and
    // 4 KiB pages cost it a TLB miss every 4 KiB (bench/NOTES.md, "CPU end-to-end"). The layers point at the
    // views in cpu_tensors; the gguf tensors (and the GPU's copies) are untouched. NULL when not made.
    void *cpu_weights;
    size_t cpu_weights_bytes;
    gguf_tensor *cpu_tensors;
    int n_cpu_tensors;
    uint64_t n_params, weights_bytes;
    const char *file_type;
};

#endif // INFERNO_MODEL_H
