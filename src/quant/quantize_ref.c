// quantize_ref.c: reference WEIGHT quantizers, reproducing the blocks llama.cpp's llama-quantize writes
// when it runs without an importance matrix (ggml's quantize_row_<type>_ref algorithms).
//
// Being bit-exact with those files means following the same float arithmetic step by step: the same
// operand order in every sum and product, the same nearest-int rounding (ties to even), the same fp16
// rounding of scales, and the same quirks (values left from the search step when a sub-block's scale
// rounds to zero, unsigned wrap of a negative 6-bit scale before clamping). FMA contraction would change
// results, so it is turned off for this file. Left out: importance-matrix variants, the IQ types, and
// speed (these run once per tensor in tests and tools).
#include "quant/quant.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif
// (gcc in ISO C mode, as this project builds, does not contract a*b+c.)

// Groups whose largest magnitude is below this are treated as all zero (as ggml does).
#define QUANT_GROUP_MAX_EPS 1e-15f

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }
static inline int iclamp(int v, int lo, int hi) { return imax(lo, imin(hi, v)); }

// ---- the simple 32-element types ----

// Q4_0: d = (signed extreme) / -8, so the extreme maps to -8 exactly; the others are truncated after
// adding 8.5, i.e. rounded half up, then clamped to 15.
void quantize_row_q4_0_ref(const float *src, void *dst, int64_t n) {
    assert(n % QK4_0 == 0);
    block_q4_0 *y = dst;
    for (int64_t i = 0; i < n / QK4_0; i++, src += QK4_0) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK4_0; j++) {
            if (amax < fabsf(src[j])) {
                amax = fabsf(src[j]);
                max = src[j];
            }
        }
        float d = max / -8;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = inf_fp32_to_fp16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            int lo = imin(15, (int)(src[j] * id + 8.5f));
            int hi = imin(15, (int)(src[j + QK4_0 / 2] * id + 8.5f));
            y[i].qs[j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

// Q4_1: d = (max - min) / 15, m = min.
void quantize_row_q4_1_ref(const float *src, void *dst, int64_t n) {
    assert(n % QK4_1 == 0);
    block_q4_1 *y = dst;
    for (int64_t i = 0; i < n / QK4_1; i++, src += QK4_1) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < QK4_1; j++) {
            min = src[j] < min ? src[j] : min;
            max = src[j] > max ? src[j] : max;
        }
        float d = (max - min) / 15;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = inf_fp32_to_fp16(d);
        y[i].m = inf_fp32_to_fp16(min);
        for (int j = 0; j < QK4_1 / 2; j++) {
            int lo = imin(15, (int)((src[j] - min) * id + 0.5f));
            int hi = imin(15, (int)((src[j + QK4_1 / 2] - min) * id + 0.5f));
            y[i].qs[j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

static void store_qh32(uint8_t qh[4], uint32_t v) {
    for (int k = 0; k < 4; k++) {
        qh[k] = (uint8_t)(v >> (8 * k));
    }
}

// Q5_0: as Q4_0 with d = extreme / -16, offset 16.5, clamp 31; bit 4 of element j goes to bit j of qh.
void quantize_row_q5_0_ref(const float *src, void *dst, int64_t n) {
    assert(n % QK5_0 == 0);
    block_q5_0 *y = dst;
    for (int64_t i = 0; i < n / QK5_0; i++, src += QK5_0) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK5_0; j++) {
            if (amax < fabsf(src[j])) {
                amax = fabsf(src[j]);
                max = src[j];
            }
        }
        float d = max / -16;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = inf_fp32_to_fp16(d);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_0 / 2; j++) {
            int lo = imin(31, (int)(src[j] * id + 16.5f));
            int hi = imin(31, (int)(src[j + QK5_0 / 2] * id + 16.5f));
            y[i].qs[j] = (uint8_t)((lo & 0xF) | ((hi & 0xF) << 4));
            qh |= (uint32_t)((lo >> 4) & 1) << j;
            qh |= (uint32_t)((hi >> 4) & 1) << (j + QK5_0 / 2);
        }
        store_qh32(y[i].qh, qh);
    }
}

// Q5_1: d = (max - min) / 31, m = min; no clamp is needed since (x - min) * id <= 31 up to rounding.
void quantize_row_q5_1_ref(const float *src, void *dst, int64_t n) {
    assert(n % QK5_1 == 0);
    block_q5_1 *y = dst;
    for (int64_t i = 0; i < n / QK5_1; i++, src += QK5_1) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < QK5_1; j++) {
            min = src[j] < min ? src[j] : min;
            max = src[j] > max ? src[j] : max;
        }
        float d = (max - min) / 31;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = inf_fp32_to_fp16(d);
        y[i].m = inf_fp32_to_fp16(min);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_1 / 2; j++) {
            int lo = (uint8_t)(int)((src[j] - min) * id + 0.5f);
            int hi = (uint8_t)(int)((src[j + QK5_1 / 2] - min) * id + 0.5f);
            y[i].qs[j] = (uint8_t)((lo & 0xF) | ((hi & 0xF) << 4));
            qh |= (uint32_t)((lo >> 4) & 1) << j;
            qh |= (uint32_t)((hi >> 4) & 1) << (j + QK5_1 / 2);
        }
        store_qh32(y[i].qh, qh);
    }
}

// Q8_0 for model files: like the activation quantizer but rounding half away from zero (roundf) and
// with id = 1/d rather than 127/amax.
void quantize_row_q8_0_weights_ref(const float *src, void *dst, int64_t n) {
    assert(n % QK8_0 == 0);
    block_q8_0 *y = dst;
    for (int64_t i = 0; i < n / QK8_0; i++, src += QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) {
            amax = fmaxf(amax, fabsf(src[j]));
        }
        float d = amax / 127;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = inf_fp32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++) {
            y[i].qs[j] = (int8_t)roundf(src[j] * id);
        }
    }
}

// ---- scale searches of the K-quants ----

// Symmetric levels -nmax..nmax-1 with weights x^2: starts from the scale that maps the signed extreme to
// -nmax, then tries 18 nearby scales and keeps the one with the best weighted least-squares fit. Returns
// the scale; L gets the levels offset by nmax.
static float search_symmetric(int n, int nmax, const float *x, int8_t *L) {
    float max = 0.0f, amax = 0.0f;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < QUANT_GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = (float)-nmax / max;
    float sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < n; i++) {
        int l = iclamp(inf_nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) {
            continue;
        }
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0.0f;
        for (int i = 0; i < n; i++) {
            int l = iclamp(inf_nearest_int(iscale * x[i]), -nmax, nmax - 1);
            float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0.0f && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) {
                L[i] = (int8_t)(nmax + iclamp(inf_nearest_int(iscale * x[i]), -nmax, nmax - 1));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

// Q3_K's search: symmetric levels with weights x^2, then up to 5 passes of coordinate descent that move
// one level at a time when that improves the fit. L gets levels offset by nmax.
static float search_symmetric_refine(int n, int nmax, const float *x, int8_t *L) {
    float max = 0.0f, amax = 0.0f;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < QUANT_GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = (float)-nmax / max;
    float sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < n; i++) {
        int l = iclamp(inf_nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    for (int pass = 0; pass < 5; pass++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * (float)L[i];
            if (slx > 0.0f) {
                float sl2 = suml2 - w * (float)L[i] * (float)L[i];
                int l = iclamp(inf_nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (l != L[i]) {
                    slx += w * x[i] * (float)l;
                    sl2 += w * (float)l * (float)l;
                    if (sl2 > 0.0f && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)l;
                        sumlx = slx;
                        suml2 = sl2;
                        changed++;
                    }
                }
            }
        }
        if (changed == 0) {
            break;
        }
    }
    for (int i = 0; i < n; i++) {
        L[i] = (int8_t)(L[i] + nmax);
    }
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Asymmetric levels 0..nmax with x ~ scale * l - min (min >= 0 returned through *the_min): starts from
// the min/max grid, then tries nstep+1 grid widths (nmax + rmin + rdelta*k), fitting scale and min by
// weighted least squares for each, and keeps the one with the smallest weighted error (absolute error
// if use_mad, squared otherwise). Laux is scratch of n entries.
static float search_affine(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min,
                           uint8_t *Laux, float rmin, float rdelta, int nstep, bool use_mad) {
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        min = x[i] < min ? x[i] : min;
        max = x[i] > max ? x[i] : max;
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0.0f) {
        min = 0.0f;
    }
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.0f;
    }
    float iscale = (float)nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0.0f;
    for (int i = 0; i < n; i++) {
        int l = iclamp(inf_nearest_int(iscale * (x[i] - min)), 0, nmax);
        L[i] = (uint8_t)l;
        float diff = scale * (float)l + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
        float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f;
        for (int i = 0; i < n; i++) {
            int l = iclamp(inf_nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * (float)l;
            sum_l2 += w * (float)l * (float)l;
            sum_xl += w * (float)l * x[i];
        }
        float det = sum_w * sum_l2 - sum_l * sum_l;
        if (det > 0.0f) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if (this_min > 0.0f) {
                this_min = 0.0f;
                this_scale = sum_xl / sum_l2;
            }
            float err = 0.0f;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * (float)Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                err += weights[i] * diff;
            }
            if (err < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = err;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

// Packs 2-bit levels of 256 elements the way Q2_K/Q3_K store them: per 128, byte l holds elements l,
// l+32, l+64, l+96 in bits 0-1, 2-3, 4-5, 6-7.
static void pack_2bit(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < QK_K; j += 128) {
        for (int l = 0; l < 32; l++) {
            qs[j / 4 + l] =
                (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
        }
    }
}

// Packs 8 pairs of 6-bit (scale, min) into the 12-byte Q4_K/Q5_K layout (see k4_scale_min in
// quant_ref.c).
static void pack_k4_scales(const uint8_t ls[8], const uint8_t lm[8], uint8_t out[K_SCALE_SIZE]) {
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            out[j] = ls[j];
            out[j + 4] = lm[j];
        } else {
            out[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
            out[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            out[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

static void unpack_k4_scale(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

// ---- K-quants ----

// Q2_K: per 16 elements an affine fit with 2-bit levels (weights |x|, absolute error); the 16 scales and
// 16 mins are quantized to 4 bits against their maxima; then every element is re-rounded with the final
// scale and min.
void quantize_row_q2_K_ref(const float *src, void *dst, int64_t n) {
    assert(n % QK_K == 0);
    block_q2_K *y = dst;
    uint8_t L[QK_K], Laux[16];
    float weights[16], mins[QK_K / 16], scales[QK_K / 16];
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        float max_scale = 0.0f, max_min = 0.0f;
        for (int j = 0; j < QK_K / 16; j++) {
            for (int l = 0; l < 16; l++) {
                weights[l] = fabsf(src[16 * j + l]);
            }
            scales[j] = search_affine(16, 3, src + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15,
                                      true);
            max_scale = scales[j] > max_scale ? scales[j] : max_scale;
            max_min = mins[j] > max_min ? mins[j] : max_min;
        }
        if (max_scale > 0.0f) {
            float iscale = 15.0f / max_scale;
            for (int j = 0; j < QK_K / 16; j++) {
                y[i].scales[j] = (uint8_t)inf_nearest_int(iscale * scales[j]);
            }
            y[i].d = inf_fp32_to_fp16(max_scale / 15.0f);
        } else {
            memset(y[i].scales, 0, sizeof(y[i].scales));
            y[i].d = inf_fp32_to_fp16(0.0f);
        }
        if (max_min > 0.0f) {
            float iscale = 15.0f / max_min;
            for (int j = 0; j < QK_K / 16; j++) {
                y[i].scales[j] |= (uint8_t)(inf_nearest_int(iscale * mins[j]) << 4);
            }
            y[i].dmin = inf_fp32_to_fp16(max_min / 15.0f);
        } else {
            y[i].dmin = inf_fp32_to_fp16(0.0f);
        }
        for (int j = 0; j < QK_K / 16; j++) {
            float d = inf_fp16_to_fp32(y[i].d) * (float)(y[i].scales[j] & 0xF);
            if (d == 0.0f) {
                continue; // keeps the levels of the search
            }
            float dm = inf_fp16_to_fp32(y[i].dmin) * (float)(y[i].scales[j] >> 4);
            for (int l = 0; l < 16; l++) {
                L[16 * j + l] = (uint8_t)iclamp(inf_nearest_int((src[16 * j + l] + dm) / d), 0, 3);
            }
        }
        pack_2bit(L, y[i].qs);
    }
}

// Q3_K: per 16 elements a symmetric 3-bit fit (levels -4..3); the 16 signed scales are quantized to 6
// bits against the signed extreme (mapped to -32); elements are re-rounded with the final scales, and
// the third bit goes to hmask (element j: bit j/32 of hmask[j%32]).
void quantize_row_q3_K_ref(const float *src, void *dst, int64_t n) {
    assert(n % QK_K == 0);
    block_q3_K *y = dst;
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        float max_scale = 0.0f, amax = 0.0f;
        for (int j = 0; j < QK_K / 16; j++) {
            scales[j] = search_symmetric_refine(16, 4, src + 16 * j, L + 16 * j);
            float a = fabsf(scales[j]);
            if (a > amax) {
                amax = a;
                max_scale = scales[j];
            }
        }
        memset(y[i].scales, 0, sizeof(y[i].scales));
        if (max_scale != 0.0f) {
            float iscale = -32.0f / max_scale;
            for (int j = 0; j < QK_K / 16; j++) {
                int l = (int8_t)inf_nearest_int(iscale * scales[j]);
                l = iclamp(l, -32, 31) + 32;
                if (j < 8) {
                    y[i].scales[j] = (uint8_t)(l & 0xF);
                } else {
                    y[i].scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
                }
                y[i].scales[j % 4 + 8] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
            }
            y[i].d = inf_fp32_to_fp16(1 / iscale);
        } else {
            y[i].d = inf_fp32_to_fp16(0.0f);
        }
        for (int j = 0; j < QK_K / 16; j++) {
            int lo = j < 8 ? (y[i].scales[j] & 0xF) : (y[i].scales[j - 8] >> 4);
            int sc = (lo | (((y[i].scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
            float d = inf_fp16_to_fp32(y[i].d) * (float)sc;
            if (d == 0.0f) {
                continue;
            }
            for (int l = 0; l < 16; l++) {
                L[16 * j + l] = (int8_t)(iclamp(inf_nearest_int(src[16 * j + l] / d), -4, 3) + 4);
            }
        }
        memset(y[i].hmask, 0, sizeof(y[i].hmask));
        uint8_t L2[QK_K];
        for (int j = 0; j < QK_K; j++) {
            int l = L[j];
            if (l > 3) {
                y[i].hmask[j % 32] |= (uint8_t)(1u << (j / 32));
                l -= 4;
            }
            L2[j] = (uint8_t)l;
        }
        pack_2bit(L2, y[i].qs);
    }
}

// Shared by Q4_K (nmax 15) and Q5_K (nmax 31): per 32 elements an affine fit with weights
// rms(x) + |x| and squared error; scales and mins quantized to 6 bits against their maxima; elements
// re-rounded with the final values. Returns the levels in L (0..nmax).
static void quantize_k4_block(const float *x, int nmax, float rmin, int nstep, uint16_t *d_out,
                              uint16_t *dmin_out, uint8_t packed[K_SCALE_SIZE], uint8_t L[QK_K]) {
    uint8_t Laux[32], ls[8], lm[8];
    float weights[32], mins[QK_K / 32], scales[QK_K / 32];
    float max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < QK_K / 32; j++) {
        float sum_x2 = 0.0f;
        for (int l = 0; l < 32; l++) {
            sum_x2 += x[32 * j + l] * x[32 * j + l];
        }
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) {
            weights[l] = av_x + fabsf(x[32 * j + l]);
        }
        scales[j] = search_affine(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep,
                                  false);
        max_scale = scales[j] > max_scale ? scales[j] : max_scale;
        max_min = mins[j] > max_min ? mins[j] : max_min;
    }
    float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
    float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
    for (int j = 0; j < QK_K / 32; j++) {
        // A negative fit wraps as an unsigned byte before the clamp, as in ggml.
        uint8_t s = (uint8_t)inf_nearest_int(inv_scale * scales[j]);
        uint8_t m = (uint8_t)inf_nearest_int(inv_min * mins[j]);
        ls[j] = s < 63 ? s : 63;
        lm[j] = m < 63 ? m : 63;
    }
    memset(packed, 0, K_SCALE_SIZE);
    pack_k4_scales(ls, lm, packed);
    *d_out = inf_fp32_to_fp16(max_scale / 63.0f);
    *dmin_out = inf_fp32_to_fp16(max_min / 63.0f);
    for (int j = 0; j < QK_K / 32; j++) {
        uint8_t sc, m;
        unpack_k4_scale(j, packed, &sc, &m);
        float d = inf_fp16_to_fp32(*d_out) * (float)sc;
        if (d == 0.0f) {
            continue;
        }
        float dm = inf_fp16_to_fp32(*dmin_out) * (float)m;
        for (int l = 0; l < 32; l++) {
            L[32 * j + l] = (uint8_t)iclamp(inf_nearest_int((x[32 * j + l] + dm) / d), 0, nmax);
        }
    }
}

void quantize_row_q4_K_ref(const float *src, void *dst, int64_t n) {
    assert(n % QK_K == 0);
    block_q4_K *y = dst;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        quantize_k4_block(src, 15, -1.0f, 20, &y[i].d, &y[i].dmin, y[i].scales, L);
        uint8_t *q = y[i].qs;
        for (int j = 0; j < QK_K; j += 64, q += 32) {
            for (int l = 0; l < 32; l++) {
                q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
            }
        }
    }
}

void quantize_row_q5_K_ref(const float *src, void *dst, int64_t n) {
    assert(n % QK_K == 0);
    block_q5_K *y = dst;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        quantize_k4_block(src, 31, -0.5f, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
        memset(y[i].qh, 0, sizeof(y[i].qh));
        uint8_t *ql = y[i].qs;
        for (int j = 0; j < QK_K / 64; j++, ql += 32) {
            for (int l = 0; l < 32; l++) {
                int l1 = L[64 * j + l], l2 = L[64 * j + l + 32];
                if (l1 > 15) {
                    l1 -= 16;
                    y[i].qh[l] |= (uint8_t)(1u << (2 * j));
                }
                if (l2 > 15) {
                    l2 -= 16;
                    y[i].qh[l] |= (uint8_t)(1u << (2 * j + 1));
                }
                ql[l] = (uint8_t)(l1 | (l2 << 4));
            }
        }
    }
}

// Q6_K: per 16 elements a symmetric 6-bit fit (levels -32..31); the 16 scales become int8 against the
// signed extreme (mapped to -128, clamped to 127); elements re-rounded with the final scales.
void quantize_row_q6_K_ref(const float *src, void *dst, int64_t n) {
    assert(n % QK_K == 0);
    block_q6_K *y = dst;
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        float max_scale = 0.0f, max_abs = 0.0f;
        for (int j = 0; j < QK_K / 16; j++) {
            scales[j] = search_symmetric(16, 32, src + 16 * j, L + 16 * j);
            if (fabsf(scales[j]) > max_abs) {
                max_abs = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        if (max_abs < QUANT_GROUP_MAX_EPS) {
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        float iscale = -128.0f / max_scale;
        y[i].d = inf_fp32_to_fp16(1 / iscale);
        for (int j = 0; j < QK_K / 16; j++) {
            y[i].scales[j] = (int8_t)imin(127, inf_nearest_int(iscale * scales[j]));
        }
        for (int j = 0; j < QK_K / 16; j++) {
            float d = inf_fp16_to_fp32(y[i].d) * (float)y[i].scales[j];
            if (d == 0.0f) {
                continue;
            }
            for (int l = 0; l < 16; l++) {
                L[16 * j + l] = (int8_t)(iclamp(inf_nearest_int(src[16 * j + l] / d), -32, 31) + 32);
            }
        }
        uint8_t *ql = y[i].ql, *qh = y[i].qh;
        for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; l++) {
                int q1 = L[j + l], q2 = L[j + l + 32], q3 = L[j + l + 64], q4 = L[j + l + 96];
                ql[l] = (uint8_t)((q1 & 0xF) | ((q3 & 0xF) << 4));
                ql[l + 32] = (uint8_t)((q2 & 0xF) | ((q4 & 0xF) << 4));
                qh[l] = (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
            }
        }
    }
}

inf_quantize_fn inf_type_weight_quantizer(uint32_t type) {
    if (type == INF_TYPE_Q8_0) {
        return quantize_row_q8_0_weights_ref;
    }
    if (type == INF_TYPE_Q8_1 || type == INF_TYPE_Q8_K) {
        return NULL; // activation-only types
    }
    const inf_type_traits *t = inf_type_get(type);
    return t ? t->quantize : NULL;
}
