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

typedef struct {
    const char *isa;                           // "scalar", "avx2", "avx512", "avx512-vnni"
    inf_vec_dot_fn vec_dot[INF_TYPE_COUNT];    // by weight type; same contract as inf_type_traits.vec_dot
    inf_quantize_fn quantize[INF_TYPE_COUNT];  // by activation type (F16, BF16, Q8_0, Q8_1, Q8_K)
    inf_gemm_fn gemm[INF_TYPE_COUNT];          // by weight type
} inf_cpu_kernels;

// The table for this CPU (initialized once, thread-safe). INFERNO_ISA=scalar|avx2|avx512 in the environment
// caps the choice (for tests and benchmarks).
const inf_cpu_kernels *inf_cpu_kernels_get(void);
// A specific variant, or NULL when this CPU or build lacks it: "scalar", "avx2", "avx512".
const inf_cpu_kernels *inf_cpu_kernels_variant(const char *isa);

// CPU features found by CPUID (and enabled by the OS, XGETBV).
typedef struct {
    bool avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512vnni, avx512bf16, avx_vnni;
    bool avx512dq; // the AVX-512 kernels are compiled with -mavx512dq, so the variant requires it
} inf_cpu_features;
const inf_cpu_features *inf_cpu_features_get(void);

#endif // INFERNO_CPU_KERNELS_H
