// kernels_avx512.c: the AVX-512 kernel variant (F, BW, VL, DQ and VNNI; compiled with those flags by
// CMake and chosen at run time only on CPUs that have them): activation quantizers, vec_dot for every
// weight type, and gemm tiles that repack 16 weight rows into lane-per-row form for prefill.
//
// Equality with the scalar references: quantizers are byte-identical (same float operations, rounding
// by cvtps2dq, which is round-half-even under the default MXCSR, as inf_nearest_int); dot products keep
// the reference's integer sums and differ only in the order of float accumulation.
//
// Deliberately left out: AVX512-BF16 dot products (the machine this was tuned on lacks them, so they
// could not be tested), non-default MXCSR rounding modes, and n that is not a multiple of the block size.
#include "backend/cpu/cpu_internal.h"

#include <immintrin.h>
#include <string.h>

#define INF_INLINE static inline __attribute__((always_inline))

INF_INLINE float fp16_f32(uint16_t h) { return _cvtsh_ss(h); }

INF_INLINE uint32_t load_u32(const void *p) {
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

// ---- activation quantizers ----

static void quantize_row_f16_avx512(const float *src, void *dst, int64_t n) {
    uint16_t *h = dst;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i v = _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm256_storeu_si256((__m256i *)(h + i), v);
    }
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        __m256i v = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(k, src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm256_mask_storeu_epi16(h + i, k, v);
    }
}

// Integer round-half-even on the bits, as inf_fp32_to_bf16 (the BF16 instructions, where present, treat
// subnormals as zero, which the reference does not).
INF_INLINE __m256i bf16_from_f32x16(__m512i u) {
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb), 16);
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                            _mm512_set1_epi32(0x7f800000));
    r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
    return _mm512_cvtepi32_epi16(r);
}

static void quantize_row_bf16_avx512(const float *src, void *dst, int64_t n) {
    uint16_t *h = dst;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        _mm256_storeu_si256((__m256i *)(h + i), bf16_from_f32x16(_mm512_loadu_si512(src + i)));
    }
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        _mm256_mask_storeu_epi16(h + i, k, bf16_from_f32x16(_mm512_maskz_loadu_epi32(k, src + i)));
    }
}

static void quantize_row_q8_0_avx512(const float *src, void *dst, int64_t n) {
    block_q8_0 *b = dst;
    const __m512 sign = _mm512_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / QK8_0; i++, src += QK8_0) {
        __m512 v0 = _mm512_loadu_ps(src), v1 = _mm512_loadu_ps(src + 16);
        __m512 m = _mm512_max_ps(_mm512_andnot_ps(sign, v0), _mm512_andnot_ps(sign, v1));
        float amax = _mm512_reduce_max_ps(m);
        float d = amax / 127.0f;
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        b[i].d = (uint16_t)_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        __m512 vid = _mm512_set1_ps(id);
        __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, vid));
        __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, vid));
        _mm_storeu_si128((__m128i *)b[i].qs, _mm512_cvtsepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(b[i].qs + 16), _mm512_cvtsepi32_epi8(q1));
    }
}

static void quantize_row_q8_1_avx512(const float *src, void *dst, int64_t n) {
    block_q8_1 *b = dst;
    const __m512 sign = _mm512_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / QK8_1; i++, src += QK8_1) {
        __m512 v0 = _mm512_loadu_ps(src), v1 = _mm512_loadu_ps(src + 16);
        __m512 m = _mm512_max_ps(_mm512_andnot_ps(sign, v0), _mm512_andnot_ps(sign, v1));
        float amax = _mm512_reduce_max_ps(m);
        float d = amax / 127.0f;
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        __m512 vid = _mm512_set1_ps(id);
        __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, vid));
        __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, vid));
        int sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
        _mm_storeu_si128((__m128i *)b[i].qs, _mm512_cvtsepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(b[i].qs + 16), _mm512_cvtsepi32_epi8(q1));
        b[i].d = (uint16_t)_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        b[i].s = (uint16_t)_cvtss_sh(d * (float)sum, _MM_FROUND_TO_NEAREST_INT);
    }
}

static void quantize_row_q8_K_avx512(const float *src, void *dst, int64_t n) {
    block_q8_K *b = dst;
    const __m512 sign = _mm512_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        __m512 m = _mm512_setzero_ps();
        for (int j = 0; j < QK_K; j += 16) {
            m = _mm512_max_ps(m, _mm512_andnot_ps(sign, _mm512_loadu_ps(src + j)));
        }
        float amax = _mm512_reduce_max_ps(m);
        if (amax == 0.0f) {
            memset(&b[i], 0, sizeof(b[i]));
            continue;
        }
        // The reference keeps the first element of largest magnitude (strict >), with its sign.
        __m512 va = _mm512_set1_ps(amax);
        int first = 0;
        for (int j = 0; j < QK_K; j += 16) {
            __mmask16 k = _mm512_cmp_ps_mask(_mm512_andnot_ps(sign, _mm512_loadu_ps(src + j)), va, _CMP_EQ_OQ);
            if (k) {
                first = j + __builtin_ctz(k);
                break;
            }
        }
        float iscale = -127.0f / src[first];
        __m512 vs = _mm512_set1_ps(iscale);
        for (int j = 0; j < QK_K; j += 16) {
            __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(vs, _mm512_loadu_ps(src + j)));
            q = _mm512_min_epi32(q, _mm512_set1_epi32(127));
            _mm_storeu_si128((__m128i *)(b[i].qs + j), _mm512_cvtsepi32_epi8(q));
            b[i].bsums[j / 16] = (int16_t)_mm512_reduce_add_epi32(q);
        }
        b[i].d = 1.0f / iscale;
    }
}

// ---- float dot products ----

static float vec_dot_f32_avx512(int64_t n, const void *w, const void *x) {
    const float *a = w, *b = x;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps(),
           acc3 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
        acc2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), acc2);
        acc3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), acc3);
    }
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    }
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        acc1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, a + i), _mm512_maskz_loadu_ps(k, b + i), acc1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
}

INF_INLINE __m512 f16x16_load(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }

INF_INLINE __m512 f16x16_load_partial(const uint16_t *p, __mmask16 k) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, p));
}

static float vec_dot_f16_avx512(int64_t n, const void *w, const void *x) {
    const uint16_t *a = w, *b = x;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps(),
           acc3 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        acc0 = _mm512_fmadd_ps(f16x16_load(a + i), f16x16_load(b + i), acc0);
        acc1 = _mm512_fmadd_ps(f16x16_load(a + i + 16), f16x16_load(b + i + 16), acc1);
        acc2 = _mm512_fmadd_ps(f16x16_load(a + i + 32), f16x16_load(b + i + 32), acc2);
        acc3 = _mm512_fmadd_ps(f16x16_load(a + i + 48), f16x16_load(b + i + 48), acc3);
    }
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm512_fmadd_ps(f16x16_load(a + i), f16x16_load(b + i), acc0);
    }
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        acc1 = _mm512_fmadd_ps(f16x16_load_partial(a + i, k), f16x16_load_partial(b + i, k), acc1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
}

INF_INLINE __m512 bf16x16_widen(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }

INF_INLINE __m512 bf16x16_load(const uint16_t *p) { return bf16x16_widen(_mm256_loadu_si256((const __m256i *)p)); }

static float vec_dot_bf16_avx512(int64_t n, const void *w, const void *x) {
    const uint16_t *a = w, *b = x;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps(),
           acc3 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        acc0 = _mm512_fmadd_ps(bf16x16_load(a + i), bf16x16_load(b + i), acc0);
        acc1 = _mm512_fmadd_ps(bf16x16_load(a + i + 16), bf16x16_load(b + i + 16), acc1);
        acc2 = _mm512_fmadd_ps(bf16x16_load(a + i + 32), bf16x16_load(b + i + 32), acc2);
        acc3 = _mm512_fmadd_ps(bf16x16_load(a + i + 48), bf16x16_load(b + i + 48), acc3);
    }
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm512_fmadd_ps(bf16x16_load(a + i), bf16x16_load(b + i), acc0);
    }
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        acc1 = _mm512_fmadd_ps(bf16x16_widen(_mm256_maskz_loadu_epi16(k, a + i)),
                               bf16x16_widen(_mm256_maskz_loadu_epi16(k, b + i)), acc1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
}

// ---- 32-element blocks: two blocks per 512-bit register ----
//
// Weights become 64 unsigned bytes (block i in bytes 0-31, block i+1 in 32-63, element order), dotted with
// the signed activation bytes by vpdpbusd; a constant offset (Q4_0's 8, Q5_0's 16) is taken back out with
// a second vpdpbusd of the offset against the activations. Each int32 lane holds part of one block, so the
// per-block scale is a vector with one value in lanes 0-7 and another in lanes 8-15.

// Nibbles of two 16-byte qs arrays: [lo(p0) | hi(p0) | lo(p1) | hi(p1)], 16 bytes each.
INF_INLINE __m512i nibbles_x2(const uint8_t *p0, const uint8_t *p1) {
    __m256i q = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)p0)),
                                        _mm_loadu_si128((const __m128i *)p1), 1);
    __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(q), _mm256_srli_epi16(q, 4), 1);
    z = _mm512_permutexvar_epi64(_mm512_set_epi64(7, 6, 3, 2, 5, 4, 1, 0), z);
    return _mm512_and_si512(z, _mm512_set1_epi8(0x0F));
}

// Q5 5th bits: bit j of a block's 32-bit qh goes to byte j of that block's half.
INF_INLINE __m512i add_qh_x2(__m512i v, const uint8_t *qh0, const uint8_t *qh1) {
    __mmask64 k = (__mmask64)load_u32(qh0) | ((__mmask64)load_u32(qh1) << 32);
    return _mm512_mask_add_epi8(v, k, v, _mm512_set1_epi8(16));
}

INF_INLINE __m512i s8_x2(const int8_t *p0, const int8_t *p1) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)p0)),
                              _mm256_loadu_si256((const __m256i *)p1), 1);
}

INF_INLINE __m512 scale_x2(float s0, float s1) {
    return _mm512_insertf32x8(_mm512_set1_ps(s0), _mm256_set1_ps(s1), 1);
}

// One block with 256-bit registers, for an odd block count.
INF_INLINE __m256i nibbles_x1(const uint8_t *p) {
    __m128i q = _mm_loadu_si128((const __m128i *)p);
    __m256i z = _mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1);
    return _mm256_and_si256(z, _mm256_set1_epi8(0x0F));
}

INF_INLINE float hsum_i32x8_f(__m256i v, float s) {
    __m128i t = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4e));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xb1));
    return (float)_mm_cvtsi128_si32(t) * s;
}

static float vec_dot_q4_0_avx512(int64_t n, const void *w, const void *x) {
    const block_q4_0 *a = w;
    const block_q8_0 *b = x;
    int64_t nb = n / QK8_0, i = 0;
    const __m512i zero = _mm512_setzero_si512(), off = _mm512_set1_epi8(8);
    __m512 acc = _mm512_setzero_ps();
    for (; i + 2 <= nb; i += 2) {
        __m512i wq = nibbles_x2(a[i].qs, a[i + 1].qs);
        __m512i xq = s8_x2(b[i].qs, b[i + 1].qs);
        __m512i p = _mm512_sub_epi32(_mm512_dpbusd_epi32(zero, wq, xq), _mm512_dpbusd_epi32(zero, off, xq));
        __m512 s = scale_x2(fp16_f32(a[i].d) * fp16_f32(b[i].d), fp16_f32(a[i + 1].d) * fp16_f32(b[i + 1].d));
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), s, acc);
    }
    float sum = _mm512_reduce_add_ps(acc);
    for (; i < nb; i++) {
        __m256i xq = _mm256_loadu_si256((const __m256i *)b[i].qs), z = _mm256_setzero_si256();
        __m256i p = _mm256_sub_epi32(_mm256_dpbusd_epi32(z, nibbles_x1(a[i].qs), xq),
                                     _mm256_dpbusd_epi32(z, _mm256_set1_epi8(8), xq));
        sum += hsum_i32x8_f(p, fp16_f32(a[i].d) * fp16_f32(b[i].d));
    }
    return sum;
}

static float vec_dot_q4_1_avx512(int64_t n, const void *w, const void *x) {
    const block_q4_1 *a = w;
    const block_q8_1 *b = x;
    int64_t nb = n / QK8_1, i = 0;
    const __m512i zero = _mm512_setzero_si512();
    __m512 acc = _mm512_setzero_ps();
    float msum = 0.0f;
    for (; i + 2 <= nb; i += 2) {
        __m512i p = _mm512_dpbusd_epi32(zero, nibbles_x2(a[i].qs, a[i + 1].qs), s8_x2(b[i].qs, b[i + 1].qs));
        __m512 s = scale_x2(fp16_f32(a[i].d) * fp16_f32(b[i].d), fp16_f32(a[i + 1].d) * fp16_f32(b[i + 1].d));
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), s, acc);
        msum += fp16_f32(a[i].m) * fp16_f32(b[i].s) + fp16_f32(a[i + 1].m) * fp16_f32(b[i + 1].s);
    }
    float sum = _mm512_reduce_add_ps(acc) + msum;
    for (; i < nb; i++) {
        __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), nibbles_x1(a[i].qs),
                                        _mm256_loadu_si256((const __m256i *)b[i].qs));
        sum += hsum_i32x8_f(p, fp16_f32(a[i].d) * fp16_f32(b[i].d)) + fp16_f32(a[i].m) * fp16_f32(b[i].s);
    }
    return sum;
}

static float vec_dot_q5_0_avx512(int64_t n, const void *w, const void *x) {
    const block_q5_0 *a = w;
    const block_q8_0 *b = x;
    int64_t nb = n / QK8_0, i = 0;
    const __m512i zero = _mm512_setzero_si512(), off = _mm512_set1_epi8(16);
    __m512 acc = _mm512_setzero_ps();
    for (; i + 2 <= nb; i += 2) {
        __m512i wq = add_qh_x2(nibbles_x2(a[i].qs, a[i + 1].qs), a[i].qh, a[i + 1].qh);
        __m512i xq = s8_x2(b[i].qs, b[i + 1].qs);
        __m512i p = _mm512_sub_epi32(_mm512_dpbusd_epi32(zero, wq, xq), _mm512_dpbusd_epi32(zero, off, xq));
        __m512 s = scale_x2(fp16_f32(a[i].d) * fp16_f32(b[i].d), fp16_f32(a[i + 1].d) * fp16_f32(b[i + 1].d));
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), s, acc);
    }
    float sum = _mm512_reduce_add_ps(acc);
    for (; i < nb; i++) {
        __m256i wq = _mm256_mask_add_epi8(nibbles_x1(a[i].qs), load_u32(a[i].qh), nibbles_x1(a[i].qs),
                                          _mm256_set1_epi8(16));
        __m256i xq = _mm256_loadu_si256((const __m256i *)b[i].qs), z = _mm256_setzero_si256();
        __m256i p = _mm256_sub_epi32(_mm256_dpbusd_epi32(z, wq, xq), _mm256_dpbusd_epi32(z, _mm256_set1_epi8(16), xq));
        sum += hsum_i32x8_f(p, fp16_f32(a[i].d) * fp16_f32(b[i].d));
    }
    return sum;
}

static float vec_dot_q5_1_avx512(int64_t n, const void *w, const void *x) {
    const block_q5_1 *a = w;
    const block_q8_1 *b = x;
    int64_t nb = n / QK8_1, i = 0;
    const __m512i zero = _mm512_setzero_si512();
    __m512 acc = _mm512_setzero_ps();
    float msum = 0.0f;
    for (; i + 2 <= nb; i += 2) {
        __m512i wq = add_qh_x2(nibbles_x2(a[i].qs, a[i + 1].qs), a[i].qh, a[i + 1].qh);
        __m512i p = _mm512_dpbusd_epi32(zero, wq, s8_x2(b[i].qs, b[i + 1].qs));
        __m512 s = scale_x2(fp16_f32(a[i].d) * fp16_f32(b[i].d), fp16_f32(a[i + 1].d) * fp16_f32(b[i + 1].d));
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), s, acc);
        msum += fp16_f32(a[i].m) * fp16_f32(b[i].s) + fp16_f32(a[i + 1].m) * fp16_f32(b[i + 1].s);
    }
    float sum = _mm512_reduce_add_ps(acc) + msum;
    for (; i < nb; i++) {
        __m256i wq = _mm256_mask_add_epi8(nibbles_x1(a[i].qs), load_u32(a[i].qh), nibbles_x1(a[i].qs),
                                          _mm256_set1_epi8(16));
        __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), wq, _mm256_loadu_si256((const __m256i *)b[i].qs));
        sum += hsum_i32x8_f(p, fp16_f32(a[i].d) * fp16_f32(b[i].d)) + fp16_f32(a[i].m) * fp16_f32(b[i].s);
    }
    return sum;
}

// Q8_0 weights are signed: vpdpbusd takes |w| as the unsigned operand and x with w's sign.
static float vec_dot_q8_0_avx512(int64_t n, const void *w, const void *x) {
    const block_q8_0 *a = w;
    const block_q8_0 *b = x;
    int64_t nb = n / QK8_0, i = 0;
    const __m512i zero = _mm512_setzero_si512();
    __m512 acc = _mm512_setzero_ps();
    for (; i + 2 <= nb; i += 2) {
        __m512i wq = s8_x2(a[i].qs, a[i + 1].qs), xq = s8_x2(b[i].qs, b[i + 1].qs);
        __m512i xs = _mm512_mask_sub_epi8(xq, _mm512_movepi8_mask(wq), zero, xq);
        __m512i p = _mm512_dpbusd_epi32(zero, _mm512_abs_epi8(wq), xs);
        __m512 s = scale_x2(fp16_f32(a[i].d) * fp16_f32(b[i].d), fp16_f32(a[i + 1].d) * fp16_f32(b[i + 1].d));
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), s, acc);
    }
    float sum = _mm512_reduce_add_ps(acc);
    for (; i < nb; i++) {
        __m256i wq = _mm256_loadu_si256((const __m256i *)a[i].qs), xq = _mm256_loadu_si256((const __m256i *)b[i].qs);
        __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(wq), _mm256_sign_epi8(xq, wq));
        sum += hsum_i32x8_f(p, fp16_f32(a[i].d) * fp16_f32(b[i].d));
    }
    return sum;
}

// ---- K-quants: 64 elements per 512-bit register, natural element order ----
//
// Weights become unsigned bytes; vpmaddubsw against the Q8_K bytes gives 16-bit pair sums (no overflow:
// at most 2 * 63 * 128), and vpdpwssd multiplies them by the sub-block scale, one 16-bit scale per lane,
// into int32 lanes. Offsets (Q3_K's 4, Q6_K's 32) and mins come out through the Q8_K bsums.

// Q4_K/Q5_K 6-bit scales and mins: sc[0..7] and m[0..7] as bytes of a 64-bit word each.
INF_INLINE void k4_scales_unpack(const uint8_t *s, uint64_t *sc, uint64_t *m) {
    uint32_t w0 = load_u32(s), w1 = load_u32(s + 4), w2 = load_u32(s + 8);
    uint32_t sc_lo = w0 & 0x3f3f3f3fu, m_lo = w1 & 0x3f3f3f3fu;
    uint32_t sc_hi = (w2 & 0x0f0f0f0fu) | ((w0 >> 2) & 0x30303030u);
    uint32_t m_hi = ((w2 >> 4) & 0x0f0f0f0fu) | ((w1 >> 2) & 0x30303030u);
    *sc = (uint64_t)sc_lo | ((uint64_t)sc_hi << 32);
    *m = (uint64_t)m_lo | ((uint64_t)m_hi << 32);
}

// Q3_K's 16 6-bit scales (biased by 32) as 16 bytes, still biased.
INF_INLINE __m128i k3_scales_unpack(const uint8_t *s) {
    uint32_t w0 = load_u32(s), w1 = load_u32(s + 4), w2 = load_u32(s + 8);
    uint32_t s0 = (w0 & 0x0f0f0f0fu) | ((w2 << 4) & 0x30303030u);
    uint32_t s1 = (w1 & 0x0f0f0f0fu) | ((w2 << 2) & 0x30303030u);
    uint32_t s2 = ((w0 >> 4) & 0x0f0f0f0fu) | (w2 & 0x30303030u);
    uint32_t s3 = ((w1 >> 4) & 0x0f0f0f0fu) | ((w2 >> 2) & 0x30303030u);
    return _mm_set_epi32((int)s3, (int)s2, (int)s1, (int)s0);
}

// Scale vector for 64-element chunk k of 32-element sub-blocks: 16-bit lanes 0-15 get scale 2k, lanes 16-31
// scale 2k+1, from the 8 scales as 16-bit values in a 128-bit register broadcast to all four lanes.
INF_INLINE __m512i k32_scale_chunk(__m512i sc16x4, int k) {
    short lo = (short)(((4 * k + 1) << 8) | (4 * k)), hi = (short)(((4 * k + 3) << 8) | (4 * k + 2));
    __m512i idx = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16(lo)), _mm256_set1_epi16(hi), 1);
    return _mm512_shuffle_epi8(sc16x4, idx);
}

// Scale vector for chunk k of 16-element groups: 16-bit lanes 8j..8j+7 get scale 4k+j (j = 0..3), from
// the 16 scales as 16-bit values in the low 256 bits.
INF_INLINE __m512i k16_scale_chunk(__m512i sc16, int k) {
    const __m512i idx = _mm512_set_epi16(
        (short)(4 * k + 3), (short)(4 * k + 3), (short)(4 * k + 3), (short)(4 * k + 3), (short)(4 * k + 3),
        (short)(4 * k + 3), (short)(4 * k + 3), (short)(4 * k + 3), (short)(4 * k + 2), (short)(4 * k + 2),
        (short)(4 * k + 2), (short)(4 * k + 2), (short)(4 * k + 2), (short)(4 * k + 2), (short)(4 * k + 2),
        (short)(4 * k + 2), (short)(4 * k + 1), (short)(4 * k + 1), (short)(4 * k + 1), (short)(4 * k + 1),
        (short)(4 * k + 1), (short)(4 * k + 1), (short)(4 * k + 1), (short)(4 * k + 1), (short)(4 * k),
        (short)(4 * k), (short)(4 * k), (short)(4 * k), (short)(4 * k), (short)(4 * k), (short)(4 * k),
        (short)(4 * k));
    return _mm512_permutexvar_epi16(idx, sc16);
}

// [v | v] from 32 bytes.
INF_INLINE __m512i bcast256(const void *p) { return _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)p)); }

// Two 16-lane values per 512 bits: lanes 0-15 a, lanes 16-31 b (16-bit lanes).
INF_INLINE __m512i set_halves_epi16(short a, short b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16(a)), _mm256_set1_epi16(b), 1);
}

INF_INLINE __m512i set_halves_epi8(char a, char b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi8(a)), _mm256_set1_epi8(b), 1);
}

INF_INLINE float hsum_ps256(__m256 v) {
    __m128 t = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    t = _mm_add_ps(t, _mm_movehl_ps(t, t));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

static float vec_dot_q4_K_avx512(int64_t n, const void *w, const void *x) {
    const block_q4_K *a = w;
    const block_q8_K *b = x;
    const __m512i lo4 = _mm512_set1_epi8(0x0F);
    __m512 acc = _mm512_setzero_ps();
    __m256 accm = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint64_t sc8, m8;
        k4_scales_unpack(a[i].scales, &sc8, &m8);
        __m512i sc = _mm512_broadcast_i32x4(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc8)));
        __m128i mb = _mm_cvtsi64_si128((long long)m8);
        __m256i m16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mb, mb)); // m_j at 16-element groups 2j, 2j+1
        __m256i msum = _mm256_madd_epi16(m16, _mm256_loadu_si256((const __m256i *)b[i].bsums));
        __m512i isum = _mm512_setzero_si512();
        for (int k = 0; k < 4; k++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * k));
            __m512i wq = _mm512_and_si512(
                _mm512_inserti64x4(_mm512_castsi256_si512(q), _mm256_srli_epi16(q, 4), 1), lo4);
            __m512i p = _mm512_maddubs_epi16(wq, _mm512_loadu_si512(b[i].qs + 64 * k));
            isum = _mm512_dpwssd_epi32(isum, p, k32_scale_chunk(sc, k));
        }
        float xd = b[i].d;
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(fp16_f32(a[i].d) * xd), acc);
        accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_set1_ps(fp16_f32(a[i].dmin) * xd), accm);
    }
    return _mm512_reduce_add_ps(acc) - hsum_ps256(accm);
}

static float vec_dot_q5_K_avx512(int64_t n, const void *w, const void *x) {
    const block_q5_K *a = w;
    const block_q8_K *b = x;
    const __m512i lo4 = _mm512_set1_epi8(0x0F), b16 = _mm512_set1_epi8(16);
    __m512 acc = _mm512_setzero_ps();
    __m256 accm = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint64_t sc8, m8;
        k4_scales_unpack(a[i].scales, &sc8, &m8);
        __m512i sc = _mm512_broadcast_i32x4(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc8)));
        __m128i mb = _mm_cvtsi64_si128((long long)m8);
        __m256i m16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mb, mb));
        __m256i msum = _mm256_madd_epi16(m16, _mm256_loadu_si256((const __m256i *)b[i].bsums));
        __m512i qh = bcast256(a[i].qh);
        __m512i isum = _mm512_setzero_si512();
        for (int k = 0; k < 4; k++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * k));
            __m512i wq = _mm512_and_si512(
                _mm512_inserti64x4(_mm512_castsi256_si512(q), _mm256_srli_epi16(q, 4), 1), lo4);
            // Sub-block 2k takes its 5th bit from bit 2k of qh[l], sub-block 2k+1 from bit 2k+1.
            __mmask64 hk = _mm512_test_epi8_mask(qh, set_halves_epi8((char)(1 << (2 * k)), (char)(1 << (2 * k + 1))));
            wq = _mm512_mask_add_epi8(wq, hk, wq, b16);
            __m512i p = _mm512_maddubs_epi16(wq, _mm512_loadu_si512(b[i].qs + 64 * k));
            isum = _mm512_dpwssd_epi32(isum, p, k32_scale_chunk(sc, k));
        }
        float xd = b[i].d;
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(fp16_f32(a[i].d) * xd), acc);
        accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_set1_ps(fp16_f32(a[i].dmin) * xd), accm);
    }
    return _mm512_reduce_add_ps(acc) - hsum_ps256(accm);
}

// Q6_K: per 128 elements, 64 bytes of ql (low 4 bits) and 32 of qh (2 high bits each); see quant_ref.c.
static float vec_dot_q6_K_avx512(int64_t n, const void *w, const void *x) {
    const block_q6_K *a = w;
    const block_q8_K *b = x;
    const __m512i lo4 = _mm512_set1_epi8(0x0F), hi2 = _mm512_set1_epi8(0x30);
    const __m512i shl = set_halves_epi16(4, 2), shr = set_halves_epi16(0, 2);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)a[i].scales));
        // The -32 offset: sum(sc * (q - 32) * x) = sum(sc * q * x) - 32 * sum_g(sc_g * bsum_g).
        __m256i corr = _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)b[i].bsums));
        __m512i scz = _mm512_castsi256_si512(sc16);
        __m512i isum = _mm512_setzero_si512();
        for (int h = 0; h < 2; h++) {
            __m512i ql = _mm512_loadu_si512(a[i].ql + 64 * h);
            __m512i qh = bcast256(a[i].qh + 32 * h);
            // Imm 0xF8 is A | (B & C): the low nibble with the two high bits masked into place.
            __m512i w0 = _mm512_ternarylogic_epi32(_mm512_and_si512(ql, lo4), _mm512_sllv_epi16(qh, shl), hi2, 0xF8);
            __m512i w1 = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(ql, 4), lo4),
                                                   _mm512_srlv_epi16(qh, shr), hi2, 0xF8);
            __m512i p0 = _mm512_maddubs_epi16(w0, _mm512_loadu_si512(b[i].qs + 128 * h));
            __m512i p1 = _mm512_maddubs_epi16(w1, _mm512_loadu_si512(b[i].qs + 128 * h + 64));
            isum = _mm512_dpwssd_epi32(isum, p0, k16_scale_chunk(scz, 2 * h));
            isum = _mm512_dpwssd_epi32(isum, p1, k16_scale_chunk(scz, 2 * h + 1));
        }
        isum = _mm512_sub_epi32(isum, _mm512_zextsi256_si512(_mm256_slli_epi32(corr, 5)));
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(fp16_f32(a[i].d) * b[i].d), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

// Q3_K and Q2_K: 2 low bits of element 128h + 32s + l at bits 2s..2s+1 of qs[32h + l]. A 64-element chunk k
// is half k/2, shifts 2(k%2) (low 32 bytes) and 2(k%2)+1 (high 32 bytes).
INF_INLINE __m512i k2_low_bits(__m512i qs2, int k) {
    int s0 = 2 * (k % 2);
    __m512i sh = set_halves_epi16((short)(2 * s0), (short)(2 * s0 + 2));
    return _mm512_and_si512(_mm512_srlv_epi16(qs2, sh), _mm512_set1_epi8(3));
}

static float vec_dot_q3_K_avx512(int64_t n, const void *w, const void *x) {
    const block_q3_K *a = w;
    const block_q8_K *b = x;
    const __m512i four = _mm512_set1_epi8(4);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        __m128i sc8 = _mm_sub_epi8(k3_scales_unpack(a[i].scales), _mm_set1_epi8(32));
        __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
        // Stored as lo + 4*hi with value lo + 4*hi - 4: the offset 4 comes out through bsums.
        __m256i corr = _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)b[i].bsums));
        __m512i scz = _mm512_castsi256_si512(sc16);
        __m512i hm = bcast256(a[i].hmask);
        __m512i isum = _mm512_setzero_si512();
        for (int k = 0; k < 4; k++) {
            int h = k / 2, s0 = 2 * (k % 2);
            __m512i wq = k2_low_bits(bcast256(a[i].qs + 32 * h), k);
            __mmask64 hk = _mm512_test_epi8_mask(hm, set_halves_epi8((char)(1 << (4 * h + s0)),
                                                                     (char)(1 << (4 * h + s0 + 1))));
            wq = _mm512_mask_add_epi8(wq, hk, wq, four);
            __m512i p = _mm512_maddubs_epi16(wq, _mm512_loadu_si512(b[i].qs + 64 * k));
            isum = _mm512_dpwssd_epi32(isum, p, k16_scale_chunk(scz, k));
        }
        isum = _mm512_sub_epi32(isum, _mm512_zextsi256_si512(_mm256_slli_epi32(corr, 2)));
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(fp16_f32(a[i].d) * b[i].d), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

static float vec_dot_q2_K_avx512(int64_t n, const void *w, const void *x) {
    const block_q2_K *a = w;
    const block_q8_K *b = x;
    __m512 acc = _mm512_setzero_ps();
    __m256 accm = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        __m128i s8 = _mm_loadu_si128((const __m128i *)a[i].scales);
        __m256i sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(s8, _mm_set1_epi8(0x0F)));
        __m256i m16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s8, 4), _mm_set1_epi8(0x0F)));
        __m256i msum = _mm256_madd_epi16(m16, _mm256_loadu_si256((const __m256i *)b[i].bsums));
        __m512i scz = _mm512_castsi256_si512(sc16);
        __m512i isum = _mm512_setzero_si512();
        for (int k = 0; k < 4; k++) {
            __m512i wq = k2_low_bits(bcast256(a[i].qs + 32 * (k / 2)), k);
            __m512i p = _mm512_maddubs_epi16(wq, _mm512_loadu_si512(b[i].qs + 64 * k));
            isum = _mm512_dpwssd_epi32(isum, p, k16_scale_chunk(scz, k));
        }
        float xd = b[i].d;
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(fp16_f32(a[i].d) * xd), acc);
        accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_set1_ps(fp16_f32(a[i].dmin) * xd), accm);
    }
    return _mm512_reduce_add_ps(acc) - hsum_ps256(accm);
}

// ---- the table ----

void inf_cpu_kernels_fill_avx512(inf_cpu_kernels *k, const inf_cpu_features *f) {
    (void)f;
    k->quantize[INF_TYPE_F16] = quantize_row_f16_avx512;
    k->quantize[INF_TYPE_BF16] = quantize_row_bf16_avx512;
    k->quantize[INF_TYPE_Q8_0] = quantize_row_q8_0_avx512;
    k->quantize[INF_TYPE_Q8_1] = quantize_row_q8_1_avx512;
    k->quantize[INF_TYPE_Q8_K] = quantize_row_q8_K_avx512;

    k->vec_dot[INF_TYPE_F32] = vec_dot_f32_avx512;
    k->vec_dot[INF_TYPE_F16] = vec_dot_f16_avx512;
    k->vec_dot[INF_TYPE_BF16] = vec_dot_bf16_avx512;
    k->vec_dot[INF_TYPE_Q4_0] = vec_dot_q4_0_avx512;
    k->vec_dot[INF_TYPE_Q4_1] = vec_dot_q4_1_avx512;
    k->vec_dot[INF_TYPE_Q5_0] = vec_dot_q5_0_avx512;
    k->vec_dot[INF_TYPE_Q5_1] = vec_dot_q5_1_avx512;
    k->vec_dot[INF_TYPE_Q8_0] = vec_dot_q8_0_avx512;
    k->vec_dot[INF_TYPE_Q2_K] = vec_dot_q2_K_avx512;
    k->vec_dot[INF_TYPE_Q3_K] = vec_dot_q3_K_avx512;
    k->vec_dot[INF_TYPE_Q4_K] = vec_dot_q4_K_avx512;
    k->vec_dot[INF_TYPE_Q5_K] = vec_dot_q5_K_avx512;
    k->vec_dot[INF_TYPE_Q6_K] = vec_dot_q6_K_avx512;
}
