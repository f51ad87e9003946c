// quant_ref.c: scalar reference kernels for the block types: dequantizers, the activation quantizers
// (Q8_0, Q8_1, Q8_K) and the dot products of each weight type with its activation type.
//
// Layouts and arithmetic follow ggml (ggml-common.h, ggml-quants.c, ggml-cpu's generic quants) so that
// results agree with llama.cpp: dot products take integer sums within a block and scale them by the
// block's fp16 scales, accumulating in float. These are the always-compiled baselines SIMD kernels are
// tested against; they favour clarity over speed. Weight quantizers (the algorithms that produce model
// files) live in quantize_ref.c. Multi-byte fields are read as host-endian: like ggml, this assumes a
// little-endian host.
#include "quant/quant.h"

#include <assert.h>
#include <math.h>
#include <string.h>

static inline float fp16(uint16_t h) { return inf_fp16_to_fp32(h); }

// The 5th bits of Q5_0/Q5_1: bit j of the little-endian 32-bit qh belongs to element j of the block.
static inline uint32_t load_qh32(const uint8_t qh[4]) {
    return (uint32_t)qh[0] | ((uint32_t)qh[1] << 8) | ((uint32_t)qh[2] << 16) | ((uint32_t)qh[3] << 24);
}

// Q4_K/Q5_K pack 8 (scale, min) pairs of 6 bits into 12 bytes: pairs 0-3 sit in the low 6 bits of bytes
// 0-3 (scale) and 4-7 (min); pairs 4-7 take their low 4 bits from the nibbles of bytes 8-11 and their top
// 2 bits from the spare top bits of bytes 0-3 (scale) and 4-7 (min).
static inline void k4_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

// Q3_K packs 16 6-bit scales (stored with +32 bias) into 12 bytes: the low 4 bits of scale i are the
// low nibble of byte i (i < 8) or the high nibble of byte i-8 (i >= 8); the top 2 bits are bits
// 2*(i/4)..2*(i/4)+1 of byte 8 + i%4. Returns the signed scale.
static inline int q3k_scale(const uint8_t *s, int i) {
    int lo = i < 8 ? (s[i] & 0xF) : (s[i - 8] >> 4);
    int hi = (s[8 + (i % 4)] >> (2 * (i / 4))) & 3;
    return (lo | (hi << 4)) - 32;
}

// ---- dequantization ----

void dequantize_row_q4_0_ref(const void *src, float *dst, int64_t n) {
    assert(n % QK4_0 == 0);
    const block_q4_0 *b = src;
    for (int64_t i = 0; i < n / QK4_0; i++, dst += QK4_0) {
        float d = fp16(b[i].d);
        // Byte j holds element j in its low nibble and element j+16 in its high nibble.
        for (int j = 0; j < QK4_0 / 2; j++) {
            dst[j] = (float)((b[i].qs[j] & 0xF) - 8) * d;
            dst[j + QK4_0 / 2] = (float)((b[i].qs[j] >> 4) - 8) * d;
        }
    }
}

void dequantize_row_q4_1_ref(const void *src, float *dst, int64_t n) {
    assert(n % QK4_1 == 0);
    const block_q4_1 *b = src;
    for (int64_t i = 0; i < n / QK4_1; i++, dst += QK4_1) {
        float d = fp16(b[i].d), m = fp16(b[i].m);
        for (int j = 0; j < QK4_1 / 2; j++) {
            dst[j] = (float)(b[i].qs[j] & 0xF) * d + m;
            dst[j + QK4_1 / 2] = (float)(b[i].qs[j] >> 4) * d + m;
        }
    }
}

void dequantize_row_q5_0_ref(const void *src, float *dst, int64_t n) {
    assert(n % QK5_0 == 0);
    const block_q5_0 *b = src;
    for (int64_t i = 0; i < n / QK5_0; i++, dst += QK5_0) {
        float d = fp16(b[i].d);
        uint32_t qh = load_qh32(b[i].qh);
        for (int j = 0; j < QK5_0 / 2; j++) {
            int h0 = (int)((qh >> j) & 1) << 4;
            int h1 = (int)((qh >> (j + 16)) & 1) << 4;
            dst[j] = (float)(((b[i].qs[j] & 0xF) | h0) - 16) * d;
            dst[j + QK5_0 / 2] = (float)(((b[i].qs[j] >> 4) | h1) - 16) * d;
        }
    }
}

void dequantize_row_q5_1_ref(const void *src, float *dst, int64_t n) {
    assert(n % QK5_1 == 0);
    const block_q5_1 *b = src;
    for (int64_t i = 0; i < n / QK5_1; i++, dst += QK5_1) {
        float d = fp16(b[i].d), m = fp16(b[i].m);
        uint32_t qh = load_qh32(b[i].qh);
        for (int j = 0; j < QK5_1 / 2; j++) {
            int h0 = (int)((qh >> j) & 1) << 4;
            int h1 = (int)((qh >> (j + 16)) & 1) << 4;
            dst[j] = (float)((b[i].qs[j] & 0xF) | h0) * d + m;
            dst[j + QK5_1 / 2] = (float)((b[i].qs[j] >> 4) | h1) * d + m;
        }
    }
}

void dequantize_row_q8_0_ref(const void *src, float *dst, int64_t n) {
    assert(n % QK8_0 == 0);
    const block_q8_0 *b = src;
    for (int64_t i = 0; i < n / QK8_0; i++, dst += QK8_0) {
        float d = fp16(b[i].d);
        for (int j = 0; j < QK8_0; j++) {
            dst[j] = (float)b[i].qs[j] * d;
        }
    }
}

void dequantize_row_q8_1_ref(const void *src, float *dst, int64_t n) {
    assert(n % QK8_1 == 0);
    const block_q8_1 *b = src;
    for (int64_t i = 0; i < n / QK8_1; i++, dst += QK8_1) {
        float d = fp16(b[i].d);
        for (int j = 0; j < QK8_1; j++) {
            dst[j] = (float)b[i].qs[j] * d;
        }
    }
}

void dequantize_row_q8_K_ref(const void *src, float *dst, int64_t n) {
    assert(n % QK_K == 0);
    const block_q8_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        for (int j = 0; j < QK_K; j++) {
            dst[j] = (float)b[i].qs[j] * b[i].d;
        }
    }
}

// Q2_K: 16 sub-blocks of 16 with a 4-bit scale (low nibble) and 4-bit min (high nibble). Each 128-element
// half uses 32 bytes of qs: element 32*s + l (shift s = 0..3) is bits 2s..2s+1 of byte l.
void dequantize_row_q2_K_ref(const void *src, float *dst, int64_t n) {
    assert(n % QK_K == 0);
    const block_q2_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        float d = fp16(b[i].d), dmin = fp16(b[i].dmin);
        const uint8_t *q = b[i].qs;
        int is = 0;
        for (int half = 0; half < QK_K / 128; half++, q += 32) {
            for (int s = 0; s < 4; s++) {
                for (int k = 0; k < 2; k++, is++) {
                    float dl = d * (float)(b[i].scales[is] & 0xF);
                    float ml = dmin * (float)(b[i].scales[is] >> 4);
                    for (int l = 0; l < 16; l++) {
                        *dst++ = dl * (float)((q[16 * k + l] >> (2 * s)) & 3) - ml;
                    }
                }
            }
        }
    }
}

// Q3_K: 2 low bits in qs (arranged as Q2_K), the high bit in hmask: element 32*m + l of the block (m =
// 0..7 over both halves) has its high bit at bit m of hmask[l]; a clear bit means subtract 4.
void dequantize_row_q3_K_ref(const void *src, float *dst, int64_t n) {
    assert(n % QK_K == 0);
    const block_q3_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        float d = fp16(b[i].d);
        const uint8_t *q = b[i].qs;
        int is = 0, m = 0;
        for (int half = 0; half < QK_K / 128; half++, q += 32) {
            for (int s = 0; s < 4; s++, m++) {
                for (int k = 0; k < 2; k++, is++) {
                    float dl = d * (float)q3k_scale(b[i].scales, is);
                    for (int l = 0; l < 16; l++) {
                        int lo = (q[16 * k + l] >> (2 * s)) & 3;
                        int hi = (b[i].hmask[16 * k + l] >> m) & 1;
                        *dst++ = dl * (float)(lo - (hi ? 0 : 4));
                    }
                }
            }
        }
    }
}

// Q4_K: 8 sub-blocks of 32 with 6-bit scale and min. Each 64 elements use 32 bytes of qs: low nibbles
// are the first 32 elements, high nibbles the next 32.
void dequantize_row_q4_K_ref(const void *src, float *dst, int64_t n) {
    assert(n % QK_K == 0);
    const block_q4_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        float d = fp16(b[i].d), dmin = fp16(b[i].dmin);
        const uint8_t *q = b[i].qs;
        for (int j = 0; j < QK_K / 64; j++, q += 32) {
            uint8_t sc, m;
            k4_scale_min(2 * j, b[i].scales, &sc, &m);
            float d1 = d * sc, m1 = dmin * m;
            k4_scale_min(2 * j + 1, b[i].scales, &sc, &m);
            float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++) {
                *dst++ = d1 * (float)(q[l] & 0xF) - m1;
            }
            for (int l = 0; l < 32; l++) {
                *dst++ = d2 * (float)(q[l] >> 4) - m2;
            }
        }
    }
}

// Q5_K: Q4_K plus a 5th bit: element 32*s + l (s = 0..7) has it at bit s of qh[l].
void dequantize_row_q5_K_ref(const void *src, float *dst, int64_t n) {
    assert(n % QK_K == 0);
    const block_q5_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        float d = fp16(b[i].d), dmin = fp16(b[i].dmin);
        const uint8_t *q = b[i].qs;
        for (int j = 0; j < QK_K / 64; j++, q += 32) {
            uint8_t sc, m;
            k4_scale_min(2 * j, b[i].scales, &sc, &m);
            float d1 = d * sc, m1 = dmin * m;
            k4_scale_min(2 * j + 1, b[i].scales, &sc, &m);
            float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++) {
                int v = (q[l] & 0xF) | (((b[i].qh[l] >> (2 * j)) & 1) << 4);
                *dst++ = d1 * (float)v - m1;
            }
            for (int l = 0; l < 32; l++) {
                int v = (q[l] >> 4) | (((b[i].qh[l] >> (2 * j + 1)) & 1) << 4);
                *dst++ = d2 * (float)v - m2;
            }
        }
    }
}

// Q6_K: 16 sub-blocks of 16 with signed 8-bit scales. Per 128 elements: 64 bytes of ql and 32 of qh.
// Element l (0..31) + 32*k takes its low 4 bits from ql[l] (k=0), ql[l+32] (k=1), ql[l]>>4 (k=2),
// ql[l+32]>>4 (k=3), and its high 2 bits from bits 2k..2k+1 of qh[l]; values are biased by 32.
void dequantize_row_q6_K_ref(const void *src, float *dst, int64_t n) {
    assert(n % QK_K == 0);
    const block_q6_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        float d = fp16(b[i].d);
        const uint8_t *ql = b[i].ql, *qh = b[i].qh;
        const int8_t *sc = b[i].scales;
        for (int half = 0; half < QK_K / 128; half++, ql += 64, qh += 32, sc += 8, dst += 128) {
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                dst[l] = d * (float)sc[is + 0] * (float)q1;
                dst[l + 32] = d * (float)sc[is + 2] * (float)q2;
                dst[l + 64] = d * (float)sc[is + 4] * (float)q3;
                dst[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        }
    }
}

// ---- activation quantizers ----

// Q8_0 as ggml's AVX2 path quantizes activations: d = amax/127 stored as fp16, the values multiplied by
// the fp32 127/amax and rounded half to even (ggml's scalar _ref uses roundf; x86 llama.cpp does not).
void quantize_row_q8_0_ref(const float *src, void *dst, int64_t n) {
    assert(n % QK8_0 == 0);
    block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / QK8_0; i++, src += QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) {
            amax = fmaxf(amax, fabsf(src[j]));
        }
        float d = amax / 127.0f;
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        b[i].d = inf_fp32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++) {
            b[i].qs[j] = (int8_t)inf_nearest_int(src[j] * id);
        }
    }
}

// Q8_1 likewise, plus s = d * sum(qs) with the fp32 d, stored as fp16 (used by Q4_1/Q5_1 for the min).
void quantize_row_q8_1_ref(const float *src, void *dst, int64_t n) {
    assert(n % QK8_1 == 0);
    block_q8_1 *b = dst;
    for (int64_t i = 0; i < n / QK8_1; i++, src += QK8_1) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_1; j++) {
            amax = fmaxf(amax, fabsf(src[j]));
        }
        float d = amax / 127.0f;
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        int sum = 0;
        for (int j = 0; j < QK8_1; j++) {
            int q = inf_nearest_int(src[j] * id);
            b[i].qs[j] = (int8_t)q;
            sum += q;
        }
        b[i].d = inf_fp32_to_fp16(d);
        b[i].s = inf_fp32_to_fp16(d * (float)sum);
    }
}

// Q8_K as ggml's quantize_row_q8_K_ref (also what x86 llama.cpp runs): the scale comes from the signed
// value of largest magnitude, iscale = -127/max, so that value maps to -127 exactly; d = 1/iscale kept in
// fp32; bsums hold the sums of each 16 quants for the K-quant min terms.
void quantize_row_q8_K_ref(const float *src, void *dst, int64_t n) {
    assert(n % QK_K == 0);
    block_q8_K *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        float max = 0.0f, amax = 0.0f;
        for (int j = 0; j < QK_K; j++) {
            float ax = fabsf(src[j]);
            if (ax > amax) {
                amax = ax;
                max = src[j];
            }
        }
        if (amax == 0.0f) {
            memset(&b[i], 0, sizeof(b[i]));
            continue;
        }
        float iscale = -127.0f / max;
        for (int j = 0; j < QK_K; j++) {
            int v = inf_nearest_int(iscale * src[j]);
            b[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < QK_K / 16; j++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) {
                sum += b[i].qs[16 * j + l];
            }
            b[i].bsums[j] = (int16_t)sum;
        }
        b[i].d = 1.0f / iscale;
    }
}

// ---- dot products ----

float vec_dot_f32_ref(int64_t n, const void *w, const void *x) {
    const float *a = w, *b = x;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        sum += (double)(a[i] * b[i]);
    }
    return (float)sum;
}

float vec_dot_f16_ref(int64_t n, const void *w, const void *x) {
    const uint16_t *a = w, *b = x;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        sum += (double)(fp16(a[i]) * fp16(b[i]));
    }
    return (float)sum;
}

float vec_dot_bf16_ref(int64_t n, const void *w, const void *x) {
    const uint16_t *a = w, *b = x;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        sum += (double)(inf_bf16_to_fp32(a[i]) * inf_bf16_to_fp32(b[i]));
    }
    return (float)sum;
}

float vec_dot_q4_0_q8_0_ref(int64_t n, const void *w, const void *x) {
    assert(n % QK8_0 == 0);
    const block_q4_0 *a = w;
    const block_q8_0 *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int isum = 0;
        for (int j = 0; j < QK8_0 / 2; j++) {
            isum += ((a[i].qs[j] & 0xF) - 8) * b[i].qs[j];
            isum += ((a[i].qs[j] >> 4) - 8) * b[i].qs[j + QK8_0 / 2];
        }
        sum += (float)isum * (fp16(a[i].d) * fp16(b[i].d));
    }
    return sum;
}

// sum((q*dw + m) * dx*qx) = dw*dx*sum(q*qx) + m * (dx*sum(qx)) = ... + m * s.
float vec_dot_q4_1_q8_1_ref(int64_t n, const void *w, const void *x) {
    assert(n % QK8_1 == 0);
    const block_q4_1 *a = w;
    const block_q8_1 *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        int isum = 0;
        for (int j = 0; j < QK8_1 / 2; j++) {
            isum += (a[i].qs[j] & 0xF) * b[i].qs[j];
            isum += (a[i].qs[j] >> 4) * b[i].qs[j + QK8_1 / 2];
        }
        sum += (fp16(a[i].d) * fp16(b[i].d)) * (float)isum + fp16(a[i].m) * fp16(b[i].s);
    }
    return sum;
}

float vec_dot_q5_0_q8_0_ref(int64_t n, const void *w, const void *x) {
    assert(n % QK8_0 == 0);
    const block_q5_0 *a = w;
    const block_q8_0 *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        uint32_t qh = load_qh32(a[i].qh);
        int isum = 0;
        for (int j = 0; j < QK8_0 / 2; j++) {
            int v0 = ((a[i].qs[j] & 0xF) | (int)(((qh >> j) & 1) << 4)) - 16;
            int v1 = ((a[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4)) - 16;
            isum += v0 * b[i].qs[j] + v1 * b[i].qs[j + QK8_0 / 2];
        }
        sum += (float)isum * (fp16(a[i].d) * fp16(b[i].d));
    }
    return sum;
}

float vec_dot_q5_1_q8_1_ref(int64_t n, const void *w, const void *x) {
    assert(n % QK8_1 == 0);
    const block_q5_1 *a = w;
    const block_q8_1 *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        uint32_t qh = load_qh32(a[i].qh);
        int isum = 0;
        for (int j = 0; j < QK8_1 / 2; j++) {
            int v0 = (a[i].qs[j] & 0xF) | (int)(((qh >> j) & 1) << 4);
            int v1 = (a[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            isum += v0 * b[i].qs[j] + v1 * b[i].qs[j + QK8_1 / 2];
        }
        sum += (fp16(a[i].d) * fp16(b[i].d)) * (float)isum + fp16(a[i].m) * fp16(b[i].s);
    }
    return sum;
}

float vec_dot_q8_0_q8_0_ref(int64_t n, const void *w, const void *x) {
    assert(n % QK8_0 == 0);
    const block_q8_0 *a = w;
    const block_q8_0 *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int isum = 0;
        for (int j = 0; j < QK8_0; j++) {
            isum += a[i].qs[j] * b[i].qs[j];
        }
        sum += (float)isum * (fp16(a[i].d) * fp16(b[i].d));
    }
    return sum;
}

// K-quants with a min: sum((d*sc*q - dmin*m) * dx*qx) = d*dx*sum(sc*q*qx) - dmin*dx*sum(m * bsum), where
// the Q8_K bsums give the per-16 sums of qx without touching the quants again.
float vec_dot_q2_K_q8_K_ref(int64_t n, const void *w, const void *x) {
    assert(n % QK_K == 0);
    const block_q2_K *a = w;
    const block_q8_K *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *q = a[i].qs;
        const int8_t *q8 = b[i].qs;
        int summs = 0;
        for (int j = 0; j < QK_K / 16; j++) {
            summs += b[i].bsums[j] * (a[i].scales[j] >> 4);
        }
        int isum = 0, is = 0;
        for (int half = 0; half < QK_K / 128; half++, q += 32) {
            for (int s = 0; s < 4; s++) {
                for (int k = 0; k < 2; k++, is++, q8 += 16) {
                    int sub = 0;
                    for (int l = 0; l < 16; l++) {
                        sub += q8[l] * ((q[16 * k + l] >> (2 * s)) & 3);
                    }
                    isum += (a[i].scales[is] & 0xF) * sub;
                }
            }
        }
        float dall = b[i].d * fp16(a[i].d);
        float dmin = b[i].d * fp16(a[i].dmin);
        sum += dall * (float)isum - dmin * (float)summs;
    }
    return sum;
}

float vec_dot_q3_K_q8_K_ref(int64_t n, const void *w, const void *x) {
    assert(n % QK_K == 0);
    const block_q3_K *a = w;
    const block_q8_K *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *q = a[i].qs;
        const int8_t *q8 = b[i].qs;
        int isum = 0, is = 0, m = 0;
        for (int half = 0; half < QK_K / 128; half++, q += 32) {
            for (int s = 0; s < 4; s++, m++) {
                for (int k = 0; k < 2; k++, is++, q8 += 16) {
                    int sub = 0;
                    for (int l = 0; l < 16; l++) {
                        int lo = (q[16 * k + l] >> (2 * s)) & 3;
                        int hi = (a[i].hmask[16 * k + l] >> m) & 1;
                        sub += q8[l] * (lo - (hi ? 0 : 4));
                    }
                    isum += q3k_scale(a[i].scales, is) * sub;
                }
            }
        }
        sum += (fp16(a[i].d) * b[i].d) * (float)isum;
    }
    return sum;
}

float vec_dot_q4_K_q8_K_ref(int64_t n, const void *w, const void *x) {
    assert(n % QK_K == 0);
    const block_q4_K *a = w;
    const block_q8_K *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *q = a[i].qs;
        const int8_t *q8 = b[i].qs;
        int isum = 0, summs = 0;
        for (int j = 0; j < QK_K / 64; j++, q += 32) {
            for (int k = 0; k < 2; k++) {
                uint8_t sc, m;
                k4_scale_min(2 * j + k, a[i].scales, &sc, &m);
                summs += m * (b[i].bsums[2 * (2 * j + k)] + b[i].bsums[2 * (2 * j + k) + 1]);
                int sub = 0;
                for (int l = 0; l < 32; l++) {
                    sub += q8[l] * (k == 0 ? (q[l] & 0xF) : (q[l] >> 4));
                }
                isum += sc * sub;
                q8 += 32;
            }
        }
        sum += (fp16(a[i].d) * b[i].d) * (float)isum - (fp16(a[i].dmin) * b[i].d) * (float)summs;
    }
    return sum;
}

float vec_dot_q5_K_q8_K_ref(int64_t n, const void *w, const void *x) {
    assert(n % QK_K == 0);
    const block_q5_K *a = w;
    const block_q8_K *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *q = a[i].qs;
        const int8_t *q8 = b[i].qs;
        int isum = 0, summs = 0;
        for (int j = 0; j < QK_K / 64; j++, q += 32) {
            for (int k = 0; k < 2; k++) {
                int sb = 2 * j + k;
                uint8_t sc, m;
                k4_scale_min(sb, a[i].scales, &sc, &m);
                summs += m * (b[i].bsums[2 * sb] + b[i].bsums[2 * sb + 1]);
                int sub = 0;
                for (int l = 0; l < 32; l++) {
                    int v = (k == 0 ? (q[l] & 0xF) : (q[l] >> 4)) | (((a[i].qh[l] >> sb) & 1) << 4);
                    sub += q8[l] * v;
                }
                isum += sc * sub;
                q8 += 32;
            }
        }
        sum += (fp16(a[i].d) * b[i].d) * (float)isum - (fp16(a[i].dmin) * b[i].d) * (float)summs;
    }
    return sum;
}

float vec_dot_q6_K_q8_K_ref(int64_t n, const void *w, const void *x) {
    assert(n % QK_K == 0);
    const block_q6_K *a = w;
    const block_q8_K *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *ql = a[i].ql, *qh = a[i].qh;
        const int8_t *sc = a[i].scales;
        const int8_t *q8 = b[i].qs;
        int isum = 0;
        for (int half = 0; half < QK_K / 128; half++, ql += 64, qh += 32, sc += 8, q8 += 128) {
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                isum += sc[is + 0] * q1 * q8[l] + sc[is + 2] * q2 * q8[l + 32];
                isum += sc[is + 4] * q3 * q8[l + 64] + sc[is + 6] * q4 * q8[l + 96];
            }
        }
        sum += (fp16(a[i].d) * b[i].d) * (float)isum;
    }
    return sum;
}
