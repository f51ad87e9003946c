// cpu_internal.h: what the per-ISA kernel files share with the dispatcher in cpu.c: the fill functions
// that override entries of a table copied from the scalar one, and a macro that builds a gemm tile out of
// any vec_dot for types that have no tiled kernel yet. Not for use outside src/backend/cpu.
#ifndef INFERNO_CPU_INTERNAL_H
#define INFERNO_CPU_INTERNAL_H

#include "backend/cpu/cpu_kernels.h"

// Each fill function receives a table already holding the scalar entries (so nothing is ever NULL) and
// replaces those its ISA does better. Only called when inf_cpu_features_get() reports the ISA; the
// features are passed so optional extensions (AVX512-BF16) are used only where present.
void inf_cpu_kernels_fill_avx2(inf_cpu_kernels *k, const inf_cpu_features *f);
void inf_cpu_kernels_fill_avx512(inf_cpu_kernels *k, const inf_cpu_features *f);

// A gemm tile that calls a vec_dot for each (row, column) pair: correct for every type, reuses nothing.
#define INF_GEMM_FROM_VEC_DOT(name, dot)                                                                    \
    static void name(int64_t n, const void *w, size_t w_stride, int n_rows, const void *x, size_t x_stride, \
                     int n_cols, float *y, size_t y_stride) {                                               \
        for (int c = 0; c < n_cols; c++) {                                                                  \
            const void *xc = (const char *)x + (size_t)c * x_stride;                                        \
            for (int r = 0; r < n_rows; r++) {                                                              \
                y[(size_t)c * y_stride + (size_t)r] = dot(n, (const char *)w + (size_t)r * w_stride, xc);   \
            }                                                                                               \
        }                                                                                                   \
    }

#endif // INFERNO_CPU_INTERNAL_H
