// cpu_kernels.h: the CPU backend's kernel table: dot products, activation quantizers and small GEMM tiles
// for every tensor type, in the best variant this CPU supports (scalar reference, AVX2, AVX-512 with
// VNNI/BF16), chosen once at start-up by CPUID. Every variant is tested against the scalar reference in
// src/quant/ and must give the same activation bytes (quantizers) and the same dot products to rounding.
#ifndef INFERNO_CPU_KERNELS_H
#define INFERNO_CPU_KERNELS_H

#include "quant/quant.h"

// Y tile: for r < n_rows and c < n_cols,
//   y[c * y_stride + r] = dot(n, w + r * w_stride bytes, x + c * x_stride bytes)
// w rows are of the weight type, x rows of its vec_dot_type (already quantized). Implementations reuse each
// loaded weight block across the n_cols activation rows (prefill) and each activation across rows.
//
// Every kernel is a pure function (no global state, no allocation, no threads), safe to call from any number
// of threads on disjoint outputs. The AVX-512 gemm repacks weight rows into a buffer on the caller's stack
// (at most 64 KiB) and does its own cache blocking over K and over columns, so callers should pass all the
// activation rows they have (n_cols of 256 or more): with 64 columns per call the repacking costs ~10%,
// with 16 about half; below 4 columns it falls back to vec_dot, reading each weight row once.
typedef void (*inf_gemm_fn)(int64_t n, const void *w, size_t w_stride, int n_rows, const void *x, size_t x_stride,
                            int n_cols, float *y, size_t y_stride);

// Attention of G query rows that share one key/value head (grouped-query attention) over n cached positions:
//   out[g] = sum_{j<n} softmax_j(scale * q[g] . k_j) v_j,   g < G,
// q and out: G rows of hd floats each, contiguous; key j at k + cells[j] * kv_stride floats, value j likewise
// at v. n >= 1. The SIMD variants read each key/value row once for all G queries and keep a running
// (online) softmax, so they agree with the reference to float rounding, not bit for bit.
typedef void (*inf_attn_fn)(int hd, int G, const float *q, const float *k, const float *v, size_t kv_stride,
                            const int32_t *cells, int n, float scale, float *out);

// The same over Tq consecutive positions of one sequence (a prefill tile): query row (j, g), j < Tq, g < G,
// at q + j * q_stride + g * hd floats, attends to keys 0 .. n0 + j - 1 (n0 >= 1); out likewise.
typedef void (*inf_attn_tile_fn)(int hd, int G, int Tq, const float *q, size_t q_stride, const float *k,
                                 const float *v, size_t kv_stride, const int32_t *cells, int n0, float scale,
                                 float *out);

// y[r] = dot of weight row r (at w + r * w_stride bytes) with an activation row laid out by vec_prep, for
// r < n_rows (see vec_dot_rows below).
typedef void (*inf_vec_dot_rows_fn)(int64_t n, const void *w, size_t w_stride, int64_t n_rows, const void *xp,
                                    float *y);

typedef struct {
    const char *isa;                           // "scalar", "avx2", "avx512", "avx512-vnni"
    inf_vec_dot_fn vec_dot[INF_TYPE_COUNT];    // by weight type; same contract as inf_type_traits.vec_dot
    inf_quantize_fn quantize[INF_TYPE_COUNT];  // by activation type (F16, BF16, Q8_0, Q8_1, Q8_K)
    inf_gemm_fn gemm[INF_TYPE_COUNT];          // by weight type
    inf_attn_fn attn;                          // F32 keys and values
    inf_attn_tile_fn attn_tile;                // likewise, several positions sharing each key block
    void (*swiglu)(float *h, const float *u, int64_t n); // h[i] = silu(h[i]) * u[i] = h / (1 + e^-h) * u
    // Single-row fast path (decode), by weight type, NULL where a variant has none: vec_prep lays out one
    // activation row (n elements of the vec_dot_type, as vec_dot takes it) in buf, 64-byte aligned, and
    // returns false when it cannot (n not a multiple of its group, or more than `bytes` needed); then
    // vec_dot_prep(n, w_row, buf) gives vec_dot(n, w_row, x) for any weight row, to float rounding. A caller
    // preps once per matmul and streams the weight rows.
    bool (*vec_prep[INF_TYPE_COUNT])(int64_t n, const void *x, void *buf, size_t bytes);
    inf_vec_dot_fn vec_dot_prep[INF_TYPE_COUNT];
    // The same over a run of rows: y[r] = vec_dot_prep(n, w + r * w_stride bytes, xp) for r < n_rows, to float
    // rounding. NULL where a variant has none (then callers loop over vec_dot_prep). One call per range lets
    // the kernel take several rows per step (sharing the activation loads) and keep one prefetch stream.
    inf_vec_dot_rows_fn vec_dot_rows[INF_TYPE_COUNT];
} inf_cpu_kernels;

// Bytes of vec_prep's buffer that cover every row length up to INF_PREP_MAX_N elements.
enum { INF_PREP_MAX_N = 16384, INF_PREP_BYTES = INF_PREP_MAX_N / 256 * 448 };

// The scalar references of attention (two passes: the maximum score, then exp, sum in double and the weighted
// values) and SwiGLU (expf), which the SIMD variants are tested against.
void inf_swiglu_f32_ref(float *h, const float *u, int64_t n);
void inf_attn_f32_ref(int hd, int G, const float *q, const float *k, const float *v, size_t kv_stride,
                      const int32_t *cells, int n, float scale, float *out);
void inf_attn_tile_f32_ref(int hd, int G, int Tq, const float *q, size_t q_stride, const float *k, const float *v,
                           size_t kv_stride, const int32_t *cells, int n0, float scale, float *out);

// The table for this CPU (initialized once, thread-safe). INFERNO_ISA=scalar|avx2|avx512 in the environment
// caps the choice (for tests and benchmarks).
const inf_cpu_kernels *inf_cpu_kernels_get(void);
// A specific variant, or NULL when this CPU or build lacks it: "scalar", "avx2", "avx512".
const inf_cpu_kernels *inf_cpu_kernels_variant(const char *isa);

// CPU features found by CPUID (and enabled by the OS, XGETBV).
typedef struct {
    bool avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512vnni, avx512bf16, avx_vnni;
    bool avx512dq; // the AVX-512 kernels are compiled with -mavx512dq, so the variant requires it
    bool avx512vbmi; // byte permutes: optional, used by a few functions compiled for it alone
} inf_cpu_features;
const inf_cpu_features *inf_cpu_features_get(void);

#endif // INFERNO_CPU_KERNELS_H
