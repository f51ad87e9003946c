// test_cpu_kernels.c: every CPU kernel variant this machine supports (scalar, avx2, avx512) against the
// src/quant scalar references: activation quantizers byte for byte, vec_dot and gemm tiles to float
// rounding, on random weights made by the reference weight quantizers and random activations.
//
// The tolerance is relative 1e-5 of the sum of |terms|, where a term is |x_i| * (|w_i| + |m|) with m the
// most negative weight of w_i's group of 16: the K-quants and Q4_1/Q5_1 compute the scale part and the min
// part of each block separately, so the rounding error is relative to both. gemm outputs start as NaN so
// an element a tile forgot to write (or wrote outside its rows/columns) shows. Variants the CPU lacks are
// skipped with a note. Also checks the dispatch: no NULL entries, INFERNO_ISA caps the choice.
#include "backend/cpu/cpu_kernels.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// ---- helpers ----

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

// Random values with a different magnitude per 32 elements (so block scales differ), an occasional
// all-zero group (the zero-scale paths) and occasional outliers.
static void fill_random(float *p, int64_t n) {
    for (int64_t i = 0; i < n; i += 32) {
        uint32_t kind = rng_u32() % 16;
        float scale = (float)(0.01 + 4.0 * ((double)rng_u32() / 4294967296.0));
        for (int64_t j = i; j < n && j < i + 32; j++) {
            p[j] = kind == 0 ? 0.0f : rng_unit() * scale;
            if (kind == 1 && rng_u32() % 8 == 0) {
                p[j] *= 20.0f;
            }
        }
    }
}

static const inf_type weight_types[] = {
    INF_TYPE_F32,  INF_TYPE_F16,  INF_TYPE_BF16, INF_TYPE_Q4_0, INF_TYPE_Q4_1, INF_TYPE_Q5_0, INF_TYPE_Q5_1,
    INF_TYPE_Q8_0, INF_TYPE_Q2_K, INF_TYPE_Q3_K, INF_TYPE_Q4_K, INF_TYPE_Q5_K, INF_TYPE_Q6_K,
};
static const inf_type act_types[] = {
    INF_TYPE_F32, INF_TYPE_F16, INF_TYPE_BF16, INF_TYPE_Q8_0, INF_TYPE_Q8_1, INF_TYPE_Q8_K,
};
static const char *const variant_names[] = {"scalar", "avx2", "avx512"};

// ---- dispatch ----

static void test_dispatch(const char *capped_to) {
    const inf_cpu_kernels *scalar = inf_cpu_kernels_variant("scalar");
    CHECK(scalar != NULL);
    CHECK(inf_cpu_kernels_variant("nonsense") == NULL);
    CHECK(inf_cpu_kernels_variant(NULL) == NULL);
    const inf_cpu_features *f = inf_cpu_features_get();
    printf("cpu features: avx2=%d fma=%d f16c=%d avx512f=%d bw=%d vl=%d dq=%d vnni=%d bf16=%d avx_vnni=%d\n",
           f->avx2, f->fma, f->f16c, f->avx512f, f->avx512bw, f->avx512vl, f->avx512dq, f->avx512vnni,
           f->avx512bf16, f->avx_vnni);
    if (inf_cpu_kernels_variant("avx512") != NULL) {
        CHECK(f->avx512f && f->avx512bw && f->avx512vl && f->avx512dq && f->avx512vnni);
        CHECK(inf_cpu_kernels_variant("avx2") != NULL);
    }
    if (inf_cpu_kernels_variant("avx2") != NULL) {
        CHECK(f->avx2 && f->fma && f->f16c);
    }
    // main() set INFERNO_ISA before the first call: the chosen table is the capped one when present.
    const inf_cpu_kernels *best = inf_cpu_kernels_get();
    CHECK(best != NULL);
    const inf_cpu_kernels *want = inf_cpu_kernels_variant(capped_to);
    CHECK(best == (want != NULL ? want : scalar));
    CHECK(inf_cpu_kernels_get() == best);
    for (size_t v = 0; v < ARRAY_LEN(variant_names); v++) {
        const inf_cpu_kernels *k = inf_cpu_kernels_variant(variant_names[v]);
        if (k == NULL) {
            continue;
        }
        CHECK_STR(k->isa, variant_names[v]);
        for (int t = 0; t < INF_TYPE_COUNT; t++) {
            CHECK_MSG((k->vec_dot[t] == NULL) == (scalar->vec_dot[t] == NULL), "%s vec_dot %d", k->isa, t);
            CHECK_MSG((k->quantize[t] == NULL) == (scalar->quantize[t] == NULL), "%s quantize %d", k->isa, t);
            CHECK_MSG((k->gemm[t] == NULL) == (scalar->gemm[t] == NULL), "%s gemm %d", k->isa, t);
        }
        for (size_t i = 0; i < ARRAY_LEN(weight_types); i++) {
            CHECK(k->vec_dot[weight_types[i]] != NULL && k->gemm[weight_types[i]] != NULL);
        }
        for (size_t i = 0; i < ARRAY_LEN(act_types); i++) {
            CHECK(k->quantize[act_types[i]] != NULL);
        }
    }
}

// ---- activation quantizers: byte equality ----

// Values where rounding choices show: exact .5 ties after scaling (amax 127 makes the Q8 factor exactly 1),
// +/- maxima of equal magnitude (Q8_K takes the sign of the first), an all-zero block, and for the half
// types overflow, subnormals, signed zeros, infinities, NaN and mantissa ties.
static void fill_specials(float *p, int64_t n, inf_type t) {
    if (t == INF_TYPE_F16 || t == INF_TYPE_BF16) {
        static const uint32_t bits[] = {
            0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00001u, 0x7f800001u,
            0x477fe000u, 0x477ff000u, 0x477fefffu, 0x477ff001u, 0x33000000u, 0x33000001u, 0x387fe000u,
            0x38800000u, 0x387ff000u, 0x3f801000u, 0x3f803000u, 0x3f808000u, 0x3f818000u, 0x3f808001u,
            0x00000001u, 0x807fffffu, 0x7f7fffffu, 0xff7fffffu, 0x3f7fffffu, 0x33800001u, 0xb3000000u,
        };
        for (int64_t i = 0; i < n && i < (int64_t)ARRAY_LEN(bits); i++) {
            p[i] = bits_f32(bits[i]);
        }
        return;
    }
    if (t == INF_TYPE_F32) {
        return;
    }
    int64_t bs = t == INF_TYPE_Q8_K ? 256 : 32;
    if (n >= bs) {
        // Block 0: ties. Element 3 is the first maximum (-127), element 9 the second (+127).
        for (int64_t j = 0; j < bs; j++) {
            p[j] = (float)((j % 2) ? -1 : 1) * ((float)(j % 40) + 0.5f);
        }
        p[3] = -127.0f;
        p[9] = 127.0f;
    }
    if (n >= 2 * bs) {
        memset(p + bs, 0, (size_t)bs * sizeof(float)); // block 1: all zero
    }
    if (n >= 3 * bs) {
        for (int64_t j = 2 * bs; j < 3 * bs; j++) {
            p[j] = 1e-20f * rng_unit(); // block 2: tiny but normal scale
        }
        p[2 * bs + 1] = 3e-20f;
        p[2 * bs + 2] = -3e-20f;
    }
}

static void test_quantize_variant(const inf_cpu_kernels *ref, const inf_cpu_kernels *k) {
    for (size_t ti = 0; ti < ARRAY_LEN(act_types); ti++) {
        inf_type t = act_types[ti];
        const inf_type_traits *tr = inf_type_get(t);
        int64_t bs = tr->block_size;
        const int64_t sizes[] = {bs, 3 * bs, 4 * bs, bs == 1 ? 4099 : 4096 + bs, bs == 1 ? 17 : 2 * bs};
        for (size_t si = 0; si < ARRAY_LEN(sizes); si++) {
            int64_t n = sizes[si];
            float *src = malloc((size_t)n * sizeof(float));
            size_t bytes = inf_row_size(t, n);
            uint8_t *a = malloc(bytes + 64), *b = malloc(bytes + 64);
            fill_random(src, n);
            if (si == 2 || si == 4) {
                fill_specials(src, n, t);
            }
            memset(a, 0xA5, bytes + 64);
            memset(b, 0xA5, bytes + 64);
            ref->quantize[t](src, a, n);
            k->quantize[t](src, b, n);
            size_t first = 0;
            while (first < bytes + 64 && a[first] == b[first]) {
                first++;
            }
            CHECK_MSG(first == bytes + 64, "%s quantize %s n=%lld: first differing byte %zu of %zu (%02x vs %02x)",
                      k->isa, tr->name, (long long)n, first, bytes, first < bytes + 64 ? a[first] : 0,
                      first < bytes + 64 ? b[first] : 0);
            free(src);
            free(a);
            free(b);
        }
    }
}

// ---- vec_dot and gemm: equality to rounding ----

typedef struct {
    inf_type type;
    int64_t n;
    int rows, cols;
    size_t w_stride, x_stride; // bytes, larger than a row so strides are honoured
    uint8_t *w, *x;
    double *ref; // [cols][rows] scalar vec_dot
    double *tol; // [cols][rows]
} dot_case;

static void dot_case_init(dot_case *dc, const inf_cpu_kernels *ref, inf_type t, int64_t n) {
    const inf_type_traits *tr = inf_type_get(t), *xtr = inf_type_get(tr->vec_dot_type);
    dc->type = t;
    dc->n = n;
    // 70 rows: several 16-row tiles, a partial one, and more than one 64-row group; 13 columns: every
    // column-group width the tiles use (8 + 4 + 1) and the small-count path below 4.
    dc->rows = 70;
    dc->cols = 13;
    dc->w_stride = inf_row_size(t, n) + 12;
    dc->x_stride = inf_row_size(tr->vec_dot_type, n) + 20;
    // +4: rows start 4 bytes past the allocation, so no kernel can rely on 64-byte alignment.
    dc->w = malloc(dc->w_stride * (size_t)dc->rows + 4);
    dc->x = malloc(dc->x_stride * (size_t)dc->cols + 4);
    memset(dc->w, 0x5A, dc->w_stride * (size_t)dc->rows + 4);
    memset(dc->x, 0x5A, dc->x_stride * (size_t)dc->cols + 4);
    dc->w += 4;
    dc->x += 4;
    dc->ref = malloc(sizeof(double) * (size_t)(dc->rows * dc->cols));
    dc->tol = malloc(sizeof(double) * (size_t)(dc->rows * dc->cols));
    float *tmp = malloc((size_t)n * sizeof(float));
    float *wd = malloc((size_t)n * sizeof(float) * (size_t)dc->rows);
    float *xd = malloc((size_t)n * sizeof(float) * (size_t)dc->cols);
    inf_quantize_fn wq = inf_type_weight_quantizer(t);
    for (int r = 0; r < dc->rows; r++) {
        fill_random(tmp, n);
        wq(tmp, dc->w + (size_t)r * dc->w_stride, n);
        tr->dequantize(dc->w + (size_t)r * dc->w_stride, wd + (size_t)r * (size_t)n, n);
    }
    for (int c = 0; c < dc->cols; c++) {
        fill_random(tmp, n);
        ref->quantize[tr->vec_dot_type](tmp, dc->x + (size_t)c * dc->x_stride, n);
        xtr->dequantize(dc->x + (size_t)c * dc->x_stride, xd + (size_t)c * (size_t)n, n);
    }
    for (int c = 0; c < dc->cols; c++) {
        for (int r = 0; r < dc->rows; r++) {
            const float *wr = wd + (size_t)r * (size_t)n, *xc = xd + (size_t)c * (size_t)n;
            double s = 0.0;
            for (int64_t g = 0; g < n; g += 16) {
                double m = 0.0;
                for (int64_t i = g; i < n && i < g + 16; i++) {
                    m = wr[i] < m ? wr[i] : m;
                }
                for (int64_t i = g; i < n && i < g + 16; i++) {
                    s += fabs((double)xc[i]) * (fabs((double)wr[i]) - m);
                }
            }
            dc->ref[c * dc->rows + r] =
                ref->vec_dot[t](n, dc->w + (size_t)r * dc->w_stride, dc->x + (size_t)c * dc->x_stride);
            dc->tol[c * dc->rows + r] = 1e-5 * s + 1e-30;
        }
    }
    free(tmp);
    free(wd);
    free(xd);
}

static void dot_case_free(dot_case *dc) {
    free(dc->w - 4);
    free(dc->x - 4);
    free(dc->ref);
    free(dc->tol);
}

static void test_dot_variant(const dot_case *dc, const inf_cpu_kernels *k) {
    const char *name = inf_type_get(dc->type)->name;
    int bad = 0;
    for (int c = 0; c < dc->cols; c++) {
        for (int r = 0; r < dc->rows; r++) {
            float got = k->vec_dot[dc->type](dc->n, dc->w + (size_t)r * dc->w_stride,
                                             dc->x + (size_t)c * dc->x_stride);
            double want = dc->ref[c * dc->rows + r], tol = dc->tol[c * dc->rows + r];
            if (!(fabs(got - want) <= tol) && bad++ < 3) {
                CHECK_MSG(0, "%s vec_dot %s n=%lld r=%d c=%d: %.9g vs ref %.9g (tol %g)", k->isa, name,
                          (long long)dc->n, r, c, got, want, tol);
            }
        }
    }
    CHECK_MSG(bad == 0, "%s vec_dot %s n=%lld: %d of %d differ", k->isa, name, (long long)dc->n, bad,
              dc->rows * dc->cols);

    // Sub-tiles: (first row, rows, first column, columns), odd sizes and offsets included.
    static const int tiles[][4] = {{0, 70, 0, 13}, {0, 1, 0, 1},  {0, 4, 0, 4},  {1, 3, 2, 3},  {4, 9, 0, 5},
                                   {0, 13, 4, 1},  {5, 8, 1, 4},  {2, 11, 0, 2}, {17, 50, 2, 11}, {3, 64, 0, 9},
                                   {6, 33, 1, 6},  {0, 16, 0, 8}, {1, 69, 3, 10}};
    for (size_t ti = 0; ti < ARRAY_LEN(tiles); ti++) {
        int r0 = tiles[ti][0], nr = tiles[ti][1], c0 = tiles[ti][2], nc = tiles[ti][3];
        size_t ys = (size_t)nr + 3;
        size_t ylen = ys * (size_t)nc;
        float *y = malloc(ylen * sizeof(float));
        for (size_t i = 0; i < ylen; i++) {
            y[i] = NAN;
        }
        k->gemm[dc->type](dc->n, dc->w + (size_t)r0 * dc->w_stride, dc->w_stride, nr,
                          dc->x + (size_t)c0 * dc->x_stride, dc->x_stride, nc, y, ys);
        int wrong = 0, stray = 0;
        for (int c = 0; c < nc; c++) {
            for (size_t i = 0; i < ys; i++) {
                float got = y[(size_t)c * ys + i];
                if (i >= (size_t)nr) {
                    stray += !isnan(got);
                    continue;
                }
                int idx = (c0 + c) * dc->rows + r0 + (int)i;
                if (!(fabs(got - dc->ref[idx]) <= dc->tol[idx]) && wrong++ < 2) {
                    CHECK_MSG(0, "%s gemm %s n=%lld tile %zu r=%zu c=%d: %.9g vs ref %.9g", k->isa, name,
                              (long long)dc->n, ti, i, c, got, dc->ref[idx]);
                }
            }
        }
        CHECK_MSG(wrong == 0 && stray == 0, "%s gemm %s n=%lld tile %dx%d at (%d,%d): %d wrong, %d stray writes",
                  k->isa, name, (long long)dc->n, nr, nc, r0, c0, wrong, stray);
        free(y);
    }
}

// The single-row decode path: vec_prep lays out an activation row once, then vec_dot_prep per row and
// vec_dot_rows per run of rows must agree with the reference vec_dot. vec_dot_rows writes exactly its rows
// (outputs start as NaN, one slot either side must stay NaN), for odd and even counts and offsets.
static void test_rows_variant(const dot_case *dc, const inf_cpu_kernels *k) {
    const char *name = inf_type_get(dc->type)->name;
    if (k->vec_prep[dc->type] == NULL) {
        CHECK_MSG(k->vec_dot_rows[dc->type] == NULL, "%s %s: vec_dot_rows without vec_prep", k->isa, name);
        return;
    }
    static _Alignas(64) uint8_t prep[INF_PREP_BYTES];
    int wrong = 0, stray = 0;
    for (int c = 0; c < 3; c++) {
        const uint8_t *x = dc->x + (size_t)c * dc->x_stride;
        if (!k->vec_prep[dc->type](dc->n, x, prep, sizeof prep)) {
            CHECK_MSG(dc->n % 256 != 0, "%s vec_prep %s n=%lld refused a multiple of 256", k->isa, name,
                      (long long)dc->n);
            return;
        }
        for (int r = 0; r < dc->rows; r++) {
            float got = k->vec_dot_prep[dc->type](dc->n, dc->w + (size_t)r * dc->w_stride, prep);
            int idx = c * dc->rows + r;
            if (!(fabs(got - dc->ref[idx]) <= dc->tol[idx]) && wrong++ < 3) {
                CHECK_MSG(0, "%s vec_dot_prep %s n=%lld r=%d c=%d: %.9g vs ref %.9g", k->isa, name,
                          (long long)dc->n, r, c, got, dc->ref[idx]);
            }
        }
        if (k->vec_dot_rows[dc->type] == NULL) {
            continue;
        }
        static const int ranges[][2] = {{0, 70}, {0, 1}, {1, 2}, {3, 5}, {7, 16}, {69, 1}, {10, 33}};
        for (size_t ri = 0; ri < ARRAY_LEN(ranges); ri++) {
            int r0 = ranges[ri][0], nr = ranges[ri][1];
            float y[72];
            for (size_t i = 0; i < ARRAY_LEN(y); i++) {
                y[i] = NAN;
            }
            k->vec_dot_rows[dc->type](dc->n, dc->w + (size_t)r0 * dc->w_stride, dc->w_stride, nr, prep, y + 1);
            stray += !isnan(y[0]) + !isnan(y[nr + 1]);
            for (int i = 0; i < nr; i++) {
                int idx = c * dc->rows + r0 + i;
                if (!(fabs(y[i + 1] - dc->ref[idx]) <= dc->tol[idx]) && wrong++ < 3) {
                    CHECK_MSG(0, "%s vec_dot_rows %s n=%lld rows %d+%d, row %d c=%d: %.9g vs ref %.9g", k->isa,
                              name, (long long)dc->n, r0, nr, i, c, y[i + 1], dc->ref[idx]);
                }
            }
        }
    }
    CHECK_MSG(wrong == 0 && stray == 0, "%s single-row path %s n=%lld: %d wrong, %d stray writes", k->isa, name,
              (long long)dc->n, wrong, stray);
}

int main(void) {
    rng_state = 0x2545F4914F6CDD1Dull; // this file's data sequence

    // Set before the first kernel call, which reads it once: checks that the cap is honoured.
    setenv("INFERNO_ISA", "avx2", 1);
    test_dispatch("avx2");

    const inf_cpu_kernels *ref = inf_cpu_kernels_variant("scalar");
    const inf_cpu_kernels *variants[ARRAY_LEN(variant_names)];
    for (size_t v = 0; v < ARRAY_LEN(variant_names); v++) {
        variants[v] = inf_cpu_kernels_variant(variant_names[v]);
        if (variants[v] == NULL) {
            printf("note: variant %s not supported by this CPU: skipped\n", variant_names[v]);
        }
    }
    for (size_t v = 0; v < ARRAY_LEN(variants); v++) {
        if (variants[v] != NULL) {
            test_quantize_variant(ref, variants[v]);
        }
    }
    for (size_t ti = 0; ti < ARRAY_LEN(weight_types); ti++) {
        inf_type t = weight_types[ti];
        int64_t bs = inf_type_get(t)->block_size;
        // Sizes cover one block, odd block counts, tails of the float kernels, and several gemm segments
        // (4 super-blocks or 16 blocks each).
        const int64_t sizes[] = {bs, 3 * bs, bs == 1 ? 31 : 5 * bs, bs == 1 ? 515 : bs == 32 ? 33 * bs : 9 * bs};
        for (size_t si = 0; si < ARRAY_LEN(sizes); si++) {
            dot_case dc;
            dot_case_init(&dc, ref, t, sizes[si]);
            for (size_t v = 0; v < ARRAY_LEN(variants); v++) {
                // The scalar table is the reference itself: only its gemm wrapper needs a look, once.
                if (variants[v] != NULL && (v != 0 || si == 0)) {
                    test_dot_variant(&dc, variants[v]);
                }
            }
            dot_case_free(&dc);
        }
    }
    // The single-row path for the types that have one in some variant, at multiples of 256 elements (up to
    // the 2048 and 5632 of TinyLlama's rows).
    for (size_t ti = 0; ti < ARRAY_LEN(weight_types); ti++) {
        inf_type t = weight_types[ti];
        bool any = false;
        for (size_t v = 0; v < ARRAY_LEN(variants); v++) {
            any |= variants[v] != NULL && variants[v]->vec_prep[t] != NULL;
        }
        const int64_t sizes[] = {256, 768, 2048, 5632};
        for (size_t si = 0; any && si < ARRAY_LEN(sizes); si++) {
            dot_case dc;
            dot_case_init(&dc, ref, t, sizes[si]);
            for (size_t v = 0; v < ARRAY_LEN(variants); v++) {
                if (variants[v] != NULL) {
                    test_rows_variant(&dc, variants[v]);
                }
            }
            dot_case_free(&dc);
        }
    }
    return test_summary();
}
