// cuda_backend.h: the C seam of the NVIDIA GPU backend. Everything else in src/backend/cuda/ is static.
//
// The C side (model.c, session.c, llama.c) describes the weights and each batch in plain structs; the
// backend owns the device buffers and runs the layers placed on the GPU, the final norm and the output head.
// The backend never calls back into the library (no inf_log, no inf_fail): every entry point that can fail
// returns false and writes a one-line message into err (what was tried, the CUDA error), and the caller
// logs or reports it. Leaves out: multi-GPU, the CPU layers, tokenization and sampling.
//
// Weight types the GPU runs natively: F32, F16, Q4_0, Q8_0, Q4_K, Q6_K (ggml ids, block layouts as in
// quant/quant.h). The C side converts every other type to F16 before upload (cuda_type_native).
#ifndef INFERNO_CUDA_BACKEND_H
#define INFERNO_CUDA_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cuda_model cuda_model;
typedef struct cuda_session cuda_session;

typedef struct {
    char name[256];
    int cc_major, cc_minor;
    uint64_t vram_total, vram_free; // bytes
    int driver_version, runtime_version; // as cudaDriverGetVersion / cudaRuntimeGetVersion (13000 = 13.0)
} cuda_device_info;

// Initializes device 0 and reads its properties. False (with the CUDA call and its error in err) when the
// runtime, the driver or a device is missing.
bool cuda_device_probe(cuda_device_info *info, char *err, size_t cap);

bool cuda_type_native(int type); // F32, F16, Q4_0, Q8_0, Q4_K, Q6_K
// Bytes a (n_out rows x n_in cols) matrix of a native type takes on the device: rows padded to 16 bytes;
// Q4_0, Q8_0 and Q6_K are repacked (quants in one plane, the f16 block scales in a second one) so that
// every row of quants starts on 16 bytes.
uint64_t cuda_matrix_bytes(int type, int64_t n_in, int64_t n_out);

// A weight matrix in host memory, already in a native type: n_out rows of n_in elements, row_bytes apart.
typedef struct {
    int type;
    int64_t n_in, n_out;
    const void *data;
    size_t row_bytes;
} cuda_matrix;

typedef struct {
    const float *attn_norm, *ffn_norm;  // (n_embd)
    const float *bq, *bk, *bv;          // optional biases or NULL
    cuda_matrix wq, wk, wv, wo, gate, up, down;
} cuda_layer_desc;

typedef struct {
    int n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_rot, n_vocab;
    float rms_eps;
    bool rope_neox;
    int layer0;                   // first layer on the GPU; layers [layer0, n_layer) are described
    const cuda_layer_desc *layers; // (n_layer - layer0)
    const float *output_norm;     // (n_embd)
    cuda_matrix output;           // (n_vocab rows, n_embd cols)
} cuda_model_desc;

// Device bytes of the model buffer for this description (weights, norms, biases; exact, before upload).
uint64_t cuda_model_bytes(const cuda_model_desc *d);
// Device bytes of a session: KV cache (F16, layers [layer0, n_layer)) and compute buffers (activations, the
// 8-bit activation copies of the matrix-vector path, and the F16 scratch that batches of >= 16 tokens
// dequantize each weight matrix into for the tensor-core GEMM).
void cuda_session_bytes(const cuda_model_desc *d, int n_ctx, int n_batch, int n_seq, uint64_t *kv_bytes,
                        uint64_t *compute_bytes);

// Uploads the described weights (the description's pointers are read during the call only).
bool cuda_model_upload(const cuda_model_desc *d, cuda_model **out, char *err, size_t cap);
void cuda_model_free(cuda_model *m);
// Whether the model's F16 copies of its quantized matrices are decided yet (they are made or declined at the
// first batch of >= 16 tokens, by free VRAM): false before; true with *bytes their device size, 0 if declined.
bool cuda_model_f16_bytes(cuda_model *m, uint64_t *bytes);
// Whether the column copies of wo and ffn_down for the persistent decode kernel's split-K products are decided
// yet (made or declined at the first session that takes the kernel, by free VRAM; INFERNO_CUDA_PD_SPLITK=0:
// none): false before; true with *bytes their device size, 0 if declined.
bool cuda_model_col_bytes(cuda_model *m, uint64_t *bytes);

bool cuda_session_init(cuda_model *m, int n_ctx, int n_batch, int n_seq, cuda_session **out, char *err,
                       size_t cap);
void cuda_session_free(cuda_session *s);

// One forward step of the GPU layers. x: (n_tokens, n_embd) residual stream entering layer layer0; rope:
// (n_tokens, n_rot) cos/sin pairs; pos/seq/cell: each token's position, sequence and KV cell; out_row: its
// output row or -1. Writes n_out rows of logits (n_vocab floats each) and, when embd is not NULL, the
// final-norm hidden states (n_out rows of n_embd). Tokens of a sequence must follow its cached positions.
// With row not NULL, a step of one output row leaves logits alone and points *row at the session's pinned copy
// of it instead (valid until the session's next step or its end); else *row is set to NULL.
typedef struct {
    int n_tokens, n_out;
    const float *x, *rope;
    const int32_t *pos, *seq, *cell, *out_row;
} cuda_batch;
bool cuda_forward(cuda_session *s, const cuda_batch *b, float *logits, const float **row, float *embd, char *err,
                  size_t cap);

// With INFERNO_CUDA_PROFILE=1 in the environment (graphs then off), each op of each step is timed with
// events; this writes the per-op totals as one line. False when profiling is off or nothing ran.
// Other switches, read at session start (for bisecting and measuring; the defaults are the fast paths):
// INFERNO_CUDA_GRAPH=0 (no step graphs), INFERNO_CUDA_GEMM_MIN=N (batches of >= N tokens take the GEMM
// path; default 16, or 8 once the model's F16 weight copies exist; 0 = never), INFERNO_CUDA_MMVQ_NT=8 (the
// matrix-vector kernel built for 8 tokens for every batch of several, instead of the one for 2, 4 or 8),
// INFERNO_CUDA_GEMM_SIDE=0 (the GEMM path's q, k, v and gate, up as one product
// each instead of one over their contiguous F16 rows), INFERNO_CUDA_FLASH_TC=0 (one-sequence batches' attention
// by the F32 flash kernel instead of the tensor-core one), INFERNO_CUDA_MMVQ=0 (the F32-activation matvec instead of 8-bit dp4a),
// INFERNO_CUDA_PDL=0 (no programmatic dependent launch), INFERNO_CUDA_FUSE=1 (norms and attention combine
// in the last block of the preceding kernel), INFERNO_CUDA_PROFILE=2 (GPU time of each decode graph replay
// and the host's share of it), INFERNO_CUDA_PERSIST=0 (single-token steps through the per-op kernels instead
// of the persistent kernel; =1 takes it also for models with F32 layer weights, which otherwise use the per-op
// kernels),
// INFERNO_CUDA_PD_BLOCKS=N (the persistent kernel's blocks per SM, at most what fits; default 1),
// INFERNO_CUDA_PD_PREFETCH=1 (idle warps prefetch the next phase's weights into L2), INFERNO_CUDA_PD_FLAGS=1
// (by rows only, with INFERNO_CUDA_PD_SPLITK=0: attention waits on per-KV-head counters instead of a grid
// barrier after qkv),
// INFERNO_CUDA_PD_SPLITK=0 (the persistent kernel's wo and down by rows, after grid barriers, instead of
// split-K products over column copies), INFERNO_CUDA_PD_NW=0 (its stages read their norm weights from global
// memory instead of a copy made in shared memory during the barrier before), INFERNO_CUDA_PD_SKPF=N (split-K's
// L2 prefetches, bits: 1 wo by the blocks without an attention item, 8 also each item its own slice, 16 the
// attention's cached K/V by the qkv phase's idle warps, 64 each warp's first gate/up rows at the wo barrier, 32
// the same after the barrier's copy of the norm weights, 128 the qkv phase's warps without a pair copy the
// gate/up norm weights into shared memory instead of the wo barrier's wait; 0 off; by default 1 where the copy
// is small enough, 16, 32 for Q8_0 gate/up else 64, and 128), INFERNO_CUDA_PD_SKPF_XOR=N (flips those bits of
// the default),
// INFERNO_CUDA_PD_GQA=0 (past 128 cached positions, the attention by (query head, key split) on CUDA cores
// instead of by (KV head, key split) on tensor cores), INFERNO_CUDA_PD_TC_FUSE=N (up to N cached positions,
// default 384 (0 for head size 128), the attention and wo fused as for short caches, one block a head on
// tensor cores; 0 off),
// INFERNO_CUDA_PROFILE=3 (the persistent kernel's phase times, as
// block 0 sees them).
bool cuda_session_profile(const cuda_session *s, char *buf, size_t cap);
// Steps of several sequences' tokens, up to 64 (a server's decode steps: a token of each running sequence), run
// as CUDA graphs, one per shape (tokens, output rows, the attention's runs, F16 weight copies or not), captured
// the second time a shape comes (INFERNO_CUDA_GRAPH=0: never): how many were captured and replayed.
void cuda_session_graph_stats(const cuda_session *s, long *captured, long *replayed);

#ifdef __cplusplus
}
#endif
#endif // INFERNO_CUDA_BACKEND_H
