// kernels_avx512.c: the AVX-512 kernel variant (F, BW, VL, DQ and VNNI; compiled with those flags by
// CMake and chosen at run time only on CPUs that have them): activation quantizers, vec_dot for every
// weight type, gemm tiles that repack 16 weight rows into lane-per-row form for prefill, a single-row Q4_0
// path for decode (functions compiled for AVX512-VBMI alone, used only where CPUID reports it), attention
// and SwiGLU.
//
// Equality with the scalar references: quantizers are byte-identical (same float operations, rounding
// by cvtps2dq, which is round-half-even under the default MXCSR, as inf_nearest_int); dot products keep
// the reference's integer sums and differ only in the order of float accumulation; attention and SwiGLU
// use a polynomial exp (relative error below 1e-7) and agree with the references to float rounding.
//
// Deliberately left out: AVX512-BF16 dot products (the machine this was tuned on lacks them, so they
// could not be tested), non-default MXCSR rounding modes, and n that is not a multiple of the block size.
#include "backend/cpu/cpu_internal.h"

#include <immintrin.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#define INF_INLINE static inline __attribute__((always_inline))

INF_INLINE float fp16_f32(uint16_t h) { return _cvtsh_ss(h); }

// The fp16 value at byte offset off of p.
INF_INLINE float fp16_at(const void *p, size_t off) {
    uint16_t h;
    memcpy(&h, (const uint8_t *)p + off, sizeof(h));
    return _cvtsh_ss(h);
}

INF_INLINE uint32_t load_u32(const void *p) {
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

// Decode streams every weight from DRAM once per token. On the VM these kernels were tuned on, the hardware
// prefetchers alone left a single thread at ~55% of the read bandwidth; a software prefetch into L1 4 KiB
// ahead reached ~80%, limited by the L1 fill buffers it holds while a line comes from DRAM; adding a prefetch
// into L2 8 KiB ahead reaches ~92%: the L1 prefetch then finds its line in L2 and frees its buffer quickly
// (bench/NOTES.md, "CPU end-to-end").
enum { PREFETCH_L1_AHEAD = 4096, PREFETCH_L2_AHEAD = 8192 };

INF_INLINE void prefetch_ahead(const void *p, size_t bytes) {
    const char *c1 = (const char *)p + PREFETCH_L1_AHEAD, *c2 = (const char *)p + PREFETCH_L2_AHEAD;
    for (size_t o = 0; o < bytes; o += 64) {
        _mm_prefetch(c1 + o, _MM_HINT_T0);
        _mm_prefetch(c2 + o, _MM_HINT_T2);
    }
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
        prefetch_ahead(a + i, 64 * sizeof(float));
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
        prefetch_ahead(a + i, 64 * sizeof(uint16_t));
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
        prefetch_ahead(a + i, 64 * sizeof(uint16_t));
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

// CPUs with AVX512-BF16 (chosen at start-up, as the table below says): VDPBF16PS multiplies 32 BF16 pairs a
// step straight from the loads, no widening; products are exact in F32, the two adds per lane round to
// nearest even. Denormal inputs count as zero (the weights and activations of real models have none that
// matter; the reference keeps them, which the test's relative tolerance covers).
static float vec_dot_bf16_avx512bf16(int64_t n, const void *w, const void *x) {
    const uint16_t *a = w, *b = x;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        prefetch_ahead(a + i, 64 * sizeof(uint16_t));
        acc0 = _mm512_dpbf16_ps(acc0, (__m512bh)_mm512_loadu_si512(a + i), (__m512bh)_mm512_loadu_si512(b + i));
        acc1 = _mm512_dpbf16_ps(acc1, (__m512bh)_mm512_loadu_si512(a + i + 32),
                                (__m512bh)_mm512_loadu_si512(b + i + 32));
    }
    for (; i + 32 <= n; i += 32)
        acc0 = _mm512_dpbf16_ps(acc0, (__m512bh)_mm512_loadu_si512(a + i), (__m512bh)_mm512_loadu_si512(b + i));
    if (i < n) { // masked-off pairs load as +0.0 and add nothing
        __mmask32 k = (__mmask32)((1ull << (n - i)) - 1);
        acc1 = _mm512_dpbf16_ps(acc1, (__m512bh)_mm512_maskz_loadu_epi16(k, a + i),
                                (__m512bh)_mm512_maskz_loadu_epi16(k, b + i));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

// ---- 32-element blocks: two blocks per 512-bit register ----
//
// Weights become 64 unsigned bytes (block i in bytes 0-31, block i+1 in 32-63, element order), dotted with
// the signed activation bytes by vpdpbusd; a constant offset (Q4_0's 8, Q5_0's 16) is taken back out with
// a second vpdpbusd of the offset against the activations; Q8_0's signed weights use |w| and x with w's
// sign. Each int32 lane holds part of one block. The fp16 block scales of 16 blocks are gathered at once
// and their products spread to the lanes of each block pair by a permute.

// 16 copies of p's 16 bytes in the low 256 bits and of q's in the high 256 bits (loads and one blend).
INF_INLINE __m512i halves_x2(const void *p, const void *q) {
    return _mm512_mask_blend_epi64(0xF0, _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)p)),
                                   _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)q)));
}

// Nibbles of two 16-byte qs arrays: [lo(p0) | hi(p0) | lo(p1) | hi(p1)], 16 bytes each.
INF_INLINE __m512i nibbles_x2(const uint8_t *p0, const uint8_t *p1) {
    __m512i z = _mm512_mask_blend_epi32(0xFF00, _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)p0)),
                                        _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)p1)));
    // 128-bit lanes 1 and 3 take the high nibbles.
    const __m512i sh = _mm512_set_epi64(0x0004000400040004, 0x0004000400040004, 0, 0, 0x0004000400040004,
                                        0x0004000400040004, 0, 0);
    return _mm512_and_si512(_mm512_srlv_epi16(z, sh), _mm512_set1_epi8(0x0F));
}

// Q5 5th bits: bit j of a block's 32-bit qh goes to byte j of that block's half.
INF_INLINE __m512i add_qh_x2(__m512i v, const uint8_t *qh0, const uint8_t *qh1) {
    __mmask64 k = (__mmask64)load_u32(qh0) | ((__mmask64)load_u32(qh1) << 32);
    return _mm512_mask_add_epi8(v, k, v, _mm512_set1_epi8(16));
}

INF_INLINE __m512i s8_x2(const int8_t *p0, const int8_t *p1) { return halves_x2(p0, p1); }

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

// The 32-bit words at the start of 16 consecutive blocks of `stride` bytes: fp16 d in the low half, and
// for Q4_1/Q5_1/Q8_1 the fp16 m or s in the high half.
INF_INLINE __m512i block_heads16(const void *p, int stride) {
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32(stride));
    return _mm512_i32gather_epi32(idx, p, 1);
}

INF_INLINE __m512 fp16_lo16(__m512i v) { return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v)); }
INF_INLINE __m512 fp16_hi16(__m512i v) { return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(v, 16))); }

// Lanes 0-7 get s[2k], lanes 8-15 s[2k+1].
INF_INLINE __m512 scale_pair(__m512 s, int k) {
    const __m512i idx = _mm512_set_epi32(2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k + 1,
                                         2 * k + 1, 2 * k, 2 * k, 2 * k, 2 * k, 2 * k, 2 * k, 2 * k, 2 * k);
    return _mm512_permutexvar_ps(idx, s);
}

INF_INLINE __m512 scale_x2(float s0, float s1) {
    return _mm512_insertf32x8(_mm512_set1_ps(s0), _mm256_set1_ps(s1), 1);
}

// Integer dot of blocks i and i+1 (int32 lanes 0-7 and 8-15), per weight type.
INF_INLINE __m512i dot2_q4_0(const block_q4_0 *a, const block_q8_0 *b) {
    const __m512i zero = _mm512_setzero_si512();
    __m512i xq = s8_x2(b[0].qs, b[1].qs);
    return _mm512_sub_epi32(_mm512_dpbusd_epi32(zero, nibbles_x2(a[0].qs, a[1].qs), xq),
                            _mm512_dpbusd_epi32(zero, _mm512_set1_epi8(8), xq));
}

INF_INLINE __m512i dot2_q5_0(const block_q5_0 *a, const block_q8_0 *b) {
    const __m512i zero = _mm512_setzero_si512();
    __m512i xq = s8_x2(b[0].qs, b[1].qs);
    __m512i wq = add_qh_x2(nibbles_x2(a[0].qs, a[1].qs), a[0].qh, a[1].qh);
    return _mm512_sub_epi32(_mm512_dpbusd_epi32(zero, wq, xq), _mm512_dpbusd_epi32(zero, _mm512_set1_epi8(16), xq));
}

INF_INLINE __m512i dot2_q8_0(const block_q8_0 *a, const block_q8_0 *b) {
    const __m512i zero = _mm512_setzero_si512();
    __m512i wq = s8_x2(a[0].qs, a[1].qs), xq = s8_x2(b[0].qs, b[1].qs);
    __m512i xs = _mm512_mask_sub_epi8(xq, _mm512_movepi8_mask(wq), zero, xq);
    return _mm512_dpbusd_epi32(zero, _mm512_abs_epi8(wq), xs);
}

INF_INLINE __m512i dot2_q4_1(const block_q4_1 *a, const block_q8_1 *b) {
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), nibbles_x2(a[0].qs, a[1].qs), s8_x2(b[0].qs, b[1].qs));
}

INF_INLINE __m512i dot2_q5_1(const block_q5_1 *a, const block_q8_1 *b) {
    __m512i wq = add_qh_x2(nibbles_x2(a[0].qs, a[1].qs), a[0].qh, a[1].qh);
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq, s8_x2(b[0].qs, b[1].qs));
}

// One block with 256-bit registers (odd block counts).
INF_INLINE __m256i dot1_q4_0(const block_q4_0 *a, const block_q8_0 *b) {
    __m256i xq = _mm256_loadu_si256((const __m256i *)b->qs), z = _mm256_setzero_si256();
    return _mm256_sub_epi32(_mm256_dpbusd_epi32(z, nibbles_x1(a->qs), xq), _mm256_dpbusd_epi32(z, _mm256_set1_epi8(8), xq));
}

INF_INLINE __m256i dot1_q5_0(const block_q5_0 *a, const block_q8_0 *b) {
    __m256i q = nibbles_x1(a->qs), xq = _mm256_loadu_si256((const __m256i *)b->qs), z = _mm256_setzero_si256();
    q = _mm256_mask_add_epi8(q, load_u32(a->qh), q, _mm256_set1_epi8(16));
    return _mm256_sub_epi32(_mm256_dpbusd_epi32(z, q, xq), _mm256_dpbusd_epi32(z, _mm256_set1_epi8(16), xq));
}

INF_INLINE __m256i dot1_q8_0(const block_q8_0 *a, const block_q8_0 *b) {
    __m256i wq = _mm256_loadu_si256((const __m256i *)a->qs), xq = _mm256_loadu_si256((const __m256i *)b->qs);
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(wq), _mm256_sign_epi8(xq, wq));
}

INF_INLINE __m256i dot1_q4_1(const block_q4_1 *a, const block_q8_1 *b) {
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), nibbles_x1(a->qs), _mm256_loadu_si256((const __m256i *)b->qs));
}

INF_INLINE __m256i dot1_q5_1(const block_q5_1 *a, const block_q8_1 *b) {
    __m256i q = nibbles_x1(a->qs);
    q = _mm256_mask_add_epi8(q, load_u32(a->qh), q, _mm256_set1_epi8(16));
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), q, _mm256_loadu_si256((const __m256i *)b->qs));
}

// with_min: Q4_1/Q5_1 against Q8_1, adding m * s per block.
#define VEC_DOT_B32(name, wtype, xtype, with_min)                                                             \
    static float vec_dot_##name##_avx512(int64_t n, const void *w, const void *x) {                           \
        const wtype *a = w;                                                                                    \
        const xtype *b = x;                                                                                    \
        int64_t nb = n / 32, i = 0;                                                                            \
        __m512 acc = _mm512_setzero_ps(), macc = _mm512_setzero_ps();                                          \
        for (; i + 16 <= nb; i += 16) {                                                                        \
            prefetch_ahead(a + i, 16 * sizeof(wtype));                                                         \
            __m512i hw = block_heads16(a + i, (int)sizeof(wtype)), hx = block_heads16(b + i, (int)sizeof(xtype)); \
            __m512 s = _mm512_mul_ps(fp16_lo16(hw), fp16_lo16(hx));                                            \
            if (with_min) {                                                                                    \
                macc = _mm512_fmadd_ps(fp16_hi16(hw), fp16_hi16(hx), macc);                                    \
            }                                                                                                  \
            for (int k = 0; k < 8; k++) {                                                                      \
                __m512i p = dot2_##name(a + i + 2 * k, b + i + 2 * k);                                         \
                acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), scale_pair(s, k), acc);                           \
            }                                                                                                  \
        }                                                                                                      \
        for (; i + 2 <= nb; i += 2) {                                                                          \
            __m512 s = scale_x2(fp16_f32(a[i].d) * fp16_f32(b[i].d), fp16_f32(a[i + 1].d) * fp16_f32(b[i + 1].d)); \
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot2_##name(a + i, b + i)), s, acc);                     \
        }                                                                                                      \
        float sum = _mm512_reduce_add_ps(acc) + _mm512_reduce_add_ps(macc);                                    \
        for (; i < nb; i++) {                                                                                  \
            sum += hsum_i32x8_f(dot1_##name(a + i, b + i), fp16_f32(a[i].d) * fp16_f32(b[i].d));              \
        }                                                                                                      \
        if (with_min) {                                                                                        \
            for (int64_t j = nb - nb % 16; j < nb; j++) {                                                      \
                sum += fp16_at(a + j, 2) * fp16_at(b + j, 2); /* m (Q4_1/Q5_1) times s (Q8_1) */               \
            }                                                                                                  \
        }                                                                                                      \
        return sum;                                                                                            \
    }

VEC_DOT_B32(q4_0, block_q4_0, block_q8_0, 0)
VEC_DOT_B32(q5_0, block_q5_0, block_q8_0, 0)
VEC_DOT_B32(q8_0, block_q8_0, block_q8_0, 0)
VEC_DOT_B32(q4_1, block_q4_1, block_q8_1, 1)
VEC_DOT_B32(q5_1, block_q5_1, block_q8_1, 1)

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

// Chunk decoders: 64 weights of a super-block (chunk k = elements 64k..64k+63) as unsigned bytes in
// element order. Shared by vec_dot and the gemm repacking.

// [low nibbles | high nibbles] of 32 bytes: the broadcast is a plain load, the per-half shift one op.
INF_INLINE __m512i k4_nibbles(const uint8_t *qs) {
    __m512i z = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)qs));
    return _mm512_and_si512(_mm512_srlv_epi16(z, set_halves_epi16(0, 4)), _mm512_set1_epi8(0x0F));
}

INF_INLINE __m512i q4_K_chunk(const block_q4_K *b, int k) { return k4_nibbles(b->qs + 32 * k); }

// qh2 = [qh | qh]: sub-block 2k takes its 5th bit from bit 2k of qh[l], sub-block 2k+1 from bit 2k+1.
INF_INLINE __m512i q5_K_chunk(const block_q5_K *b, __m512i qh2, int k) {
    __m512i z = k4_nibbles(b->qs + 32 * k);
    __mmask64 hk = _mm512_test_epi8_mask(qh2, set_halves_epi8((char)(1 << (2 * k)), (char)(1 << (2 * k + 1))));
    return _mm512_mask_add_epi8(z, hk, z, _mm512_set1_epi8(16));
}

// Q6_K, per 128 elements (half h): 64 bytes of ql and 32 of qh. Chunk 2h takes ql's low nibbles and qh
// bits 0-1 (first 32) and 2-3 (next 32); chunk 2h+1 the high nibbles and qh bits 4-5 and 6-7. Values 0..63,
// offset 32. Imm 0xF8 is A | (B & C).
INF_INLINE __m512i q6_K_chunk(const block_q6_K *b, int k) {
    int h = k / 2;
    __m512i ql = _mm512_loadu_si512(b->ql + 64 * h);
    __m512i qh = bcast256(b->qh + 32 * h);
    const __m512i lo4 = _mm512_set1_epi8(0x0F), hi2 = _mm512_set1_epi8(0x30);
    if (k % 2 == 0) {
        return _mm512_ternarylogic_epi32(_mm512_and_si512(ql, lo4), _mm512_sllv_epi16(qh, set_halves_epi16(4, 2)),
                                         hi2, 0xF8);
    }
    return _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(ql, 4), lo4),
                                     _mm512_srlv_epi16(qh, set_halves_epi16(0, 2)), hi2, 0xF8);
}

// Q3_K and Q2_K: the 2 low bits of element 128h + 32s + l are bits 2s..2s+1 of qs[32h + l]; chunk k is half
// k/2 with shifts 2(k%2) (first 32) and 2(k%2)+1 (next 32).
INF_INLINE __m512i k2_low_bits(const uint8_t *qs, int k) {
    int s0 = 2 * (k % 2);
    __m512i q = bcast256(qs + 32 * (k / 2));
    __m512i sh = set_halves_epi16((short)(2 * s0), (short)(2 * s0 + 2));
    return _mm512_and_si512(_mm512_srlv_epi16(q, sh), _mm512_set1_epi8(3));
}

// Q3_K: value lo + 4*hi - 4, stored as lo + 4*hi (0..7) with offset 4; the high bit of element 32m + l
// (m = 0..7) is bit m of hmask[l]. hm2 = [hmask | hmask].
INF_INLINE __m512i q3_K_chunk(const block_q3_K *b, __m512i hm2, int k) {
    int m0 = 4 * (k / 2) + 2 * (k % 2);
    __m512i lo = k2_low_bits(b->qs, k);
    __mmask64 hk = _mm512_test_epi8_mask(hm2, set_halves_epi8((char)(1 << m0), (char)(1 << (m0 + 1))));
    return _mm512_mask_add_epi8(lo, hk, lo, _mm512_set1_epi8(4));
}

INF_INLINE __m512i q2_K_chunk(const block_q2_K *b, int k) { return k2_low_bits(b->qs, k); }

// Q8_K quants of chunk k.
INF_INLINE __m512i q8_K_chunk(const block_q8_K *b, int k) { return _mm512_loadu_si512(b->qs + 64 * k); }

// Sum over 16-element groups of m16[g] * bsums[g] as 8 int32 lanes.
INF_INLINE __m256i bsums_dot(__m256i m16, const block_q8_K *b) {
    return _mm256_madd_epi16(m16, _mm256_loadu_si256((const __m256i *)b->bsums));
}

// Q4_K/Q5_K scales as 16-bit values broadcast to the four 128-bit lanes, mins duplicated per 16-group.
INF_INLINE void k4_scales_vec(const uint8_t *scales, __m512i *sc, __m256i *m16) {
    uint64_t sc8, m8;
    k4_scales_unpack(scales, &sc8, &m8);
    *sc = _mm512_broadcast_i32x4(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc8)));
    __m128i mb = _mm_cvtsi64_si128((long long)m8);
    *m16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mb, mb));
}

static float vec_dot_q4_K_avx512(int64_t n, const void *w, const void *x) {
    const block_q4_K *a = w;
    const block_q8_K *b = x;
    __m512 acc = _mm512_setzero_ps();
    __m256 accm = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        prefetch_ahead(&a[i], sizeof(a[i]));
        __m512i sc;
        __m256i m16;
        k4_scales_vec(a[i].scales, &sc, &m16);
        __m512i isum = _mm512_setzero_si512();
        for (int k = 0; k < 4; k++) {
            __m512i p = _mm512_maddubs_epi16(q4_K_chunk(&a[i], k), q8_K_chunk(&b[i], k));
            isum = _mm512_dpwssd_epi32(isum, p, k32_scale_chunk(sc, k));
        }
        float xd = b[i].d;
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(fp16_f32(a[i].d) * xd), acc);
        accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(bsums_dot(m16, &b[i])), _mm256_set1_ps(fp16_f32(a[i].dmin) * xd),
                               accm);
    }
    return _mm512_reduce_add_ps(acc) - hsum_ps256(accm);
}

static float vec_dot_q5_K_avx512(int64_t n, const void *w, const void *x) {
    const block_q5_K *a = w;
    const block_q8_K *b = x;
    __m512 acc = _mm512_setzero_ps();
    __m256 accm = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        prefetch_ahead(&a[i], sizeof(a[i]));
        __m512i sc;
        __m256i m16;
        k4_scales_vec(a[i].scales, &sc, &m16);
        __m512i qh2 = bcast256(a[i].qh);
        __m512i isum = _mm512_setzero_si512();
        for (int k = 0; k < 4; k++) {
            __m512i p = _mm512_maddubs_epi16(q5_K_chunk(&a[i], qh2, k), q8_K_chunk(&b[i], k));
            isum = _mm512_dpwssd_epi32(isum, p, k32_scale_chunk(sc, k));
        }
        float xd = b[i].d;
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(fp16_f32(a[i].d) * xd), acc);
        accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(bsums_dot(m16, &b[i])), _mm256_set1_ps(fp16_f32(a[i].dmin) * xd),
                               accm);
    }
    return _mm512_reduce_add_ps(acc) - hsum_ps256(accm);
}

// The offset of Q6_K (32) and Q3_K (4): sum(sc * (q - off) * x) = sum(sc * q * x) - off * sum_g(sc_g * bsum_g).
static float vec_dot_q6_K_avx512(int64_t n, const void *w, const void *x) {
    const block_q6_K *a = w;
    const block_q8_K *b = x;
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        prefetch_ahead(&a[i], sizeof(a[i]));
        __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)a[i].scales));
        __m512i scz = _mm512_castsi256_si512(sc16);
        __m512i isum = _mm512_setzero_si512();
        for (int k = 0; k < 4; k++) {
            __m512i p = _mm512_maddubs_epi16(q6_K_chunk(&a[i], k), q8_K_chunk(&b[i], k));
            isum = _mm512_dpwssd_epi32(isum, p, k16_scale_chunk(scz, k));
        }
        isum = _mm512_sub_epi32(isum, _mm512_zextsi256_si512(_mm256_slli_epi32(bsums_dot(sc16, &b[i]), 5)));
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(fp16_f32(a[i].d) * b[i].d), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

INF_INLINE __m256i q3_K_scales16(const block_q3_K *b) {
    return _mm256_cvtepi8_epi16(_mm_sub_epi8(k3_scales_unpack(b->scales), _mm_set1_epi8(32)));
}

static float vec_dot_q3_K_avx512(int64_t n, const void *w, const void *x) {
    const block_q3_K *a = w;
    const block_q8_K *b = x;
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        prefetch_ahead(&a[i], sizeof(a[i]));
        __m256i sc16 = q3_K_scales16(&a[i]);
        __m512i scz = _mm512_castsi256_si512(sc16);
        __m512i hm2 = bcast256(a[i].hmask);
        __m512i isum = _mm512_setzero_si512();
        for (int k = 0; k < 4; k++) {
            __m512i p = _mm512_maddubs_epi16(q3_K_chunk(&a[i], hm2, k), q8_K_chunk(&b[i], k));
            isum = _mm512_dpwssd_epi32(isum, p, k16_scale_chunk(scz, k));
        }
        isum = _mm512_sub_epi32(isum, _mm512_zextsi256_si512(_mm256_slli_epi32(bsums_dot(sc16, &b[i]), 2)));
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(fp16_f32(a[i].d) * b[i].d), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

INF_INLINE void q2_K_scales16(const block_q2_K *b, __m256i *sc16, __m256i *m16) {
    __m128i s8 = _mm_loadu_si128((const __m128i *)b->scales);
    *sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(s8, _mm_set1_epi8(0x0F)));
    *m16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s8, 4), _mm_set1_epi8(0x0F)));
}

static float vec_dot_q2_K_avx512(int64_t n, const void *w, const void *x) {
    const block_q2_K *a = w;
    const block_q8_K *b = x;
    __m512 acc = _mm512_setzero_ps();
    __m256 accm = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        prefetch_ahead(&a[i], sizeof(a[i]));
        __m256i sc16, m16;
        q2_K_scales16(&a[i], &sc16, &m16);
        __m512i scz = _mm512_castsi256_si512(sc16);
        __m512i isum = _mm512_setzero_si512();
        for (int k = 0; k < 4; k++) {
            __m512i p = _mm512_maddubs_epi16(q2_K_chunk(&a[i], k), q8_K_chunk(&b[i], k));
            isum = _mm512_dpwssd_epi32(isum, p, k16_scale_chunk(scz, k));
        }
        float xd = b[i].d;
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(fp16_f32(a[i].d) * xd), acc);
        accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(bsums_dot(m16, &b[i])), _mm256_set1_ps(fp16_f32(a[i].dmin) * xd),
                               accm);
    }
    return _mm512_reduce_add_ps(acc) - hsum_ps256(accm);
}

// ---- gemm: 16 weight rows repacked one row per lane ----
//
// Prefill multiplies the same weights by many activation rows, so each tile of 16 weight rows is decoded
// once per segment of K into bytes laid out one row per 32-bit lane: w[t] holds elements 4t..4t+3 of all
// 16 rows. For each activation column, vpdpbusd(w[t], the column's 4 bytes broadcast) then advances 16 dot
// products by 4 elements each: 64 multiply-adds per instruction, the broadcast folded into the instruction
// as a memory operand, no horizontal sums. Per-row scales are vectors applied in float once per scale group.
// A group of columns shares each loaded w[t] from a register. Small column counts do not pay for the
// repacking and go through vec_dot instead.

// Full unrolling keeps the per-column accumulators in registers. Not under sanitizers or -O0, where gcc
// warns that it ignores the annotation (and speed does not matter).
#if defined(__OPTIMIZE__) && !defined(__SANITIZE_ADDRESS__)
#define INF_UNROLL _Pragma("GCC unroll 16")
#else
#define INF_UNROLL
#endif

enum { GEMM_TILE = 16, GEMM_MIN_COLS = 4 };

// acc + dot of the 16 lanes' 4 unsigned bytes of a with the 4 signed bytes at p, broadcast. Written as asm
// so the broadcast is the instruction's {1to16} memory operand (compilers emit a separate vpbroadcastd,
// which doubles the front-end uops of the inner loop).
INF_INLINE __m512i dpbusd_bcast(__m512i acc, __m512i a, const void *p) {
    __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(a), "m"(*(const uint32_t *)p));
    return acc;
}

// Likewise for vpdpwssd: 16-bit pairs of a times the 16-bit pair at p.
INF_INLINE __m512i dpwssd_bcast(__m512i acc, __m512i a, const void *p) {
    __asm__("vpdpwssd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(a), "m"(*(const uint32_t *)p));
    return acc;
}

// Transpose of a 16x16 matrix of 32-bit elements (row i at src + i * stride bytes): out[j] lane i = row i,
// element j.
INF_INLINE void transpose16x16_regs(__m512i r[16], __m512i out[16]) {
    __m512i t[16];
    INF_UNROLL for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    // r[4j+k], 128-bit lane L: rows 4j..4j+3, element 4L+k.
    INF_UNROLL for (int j = 0; j < 4; j++) {
        r[4 * j] = _mm512_unpacklo_epi64(t[4 * j], t[4 * j + 2]);
        r[4 * j + 1] = _mm512_unpackhi_epi64(t[4 * j], t[4 * j + 2]);
        r[4 * j + 2] = _mm512_unpacklo_epi64(t[4 * j + 1], t[4 * j + 3]);
        r[4 * j + 3] = _mm512_unpackhi_epi64(t[4 * j + 1], t[4 * j + 3]);
    }
    INF_UNROLL for (int k = 0; k < 4; k++) {
        __m512i ab_lo = _mm512_shuffle_i32x4(r[k], r[4 + k], 0x44), ab_hi = _mm512_shuffle_i32x4(r[k], r[4 + k], 0xEE);
        __m512i cd_lo = _mm512_shuffle_i32x4(r[8 + k], r[12 + k], 0x44);
        __m512i cd_hi = _mm512_shuffle_i32x4(r[8 + k], r[12 + k], 0xEE);
        out[k] = _mm512_shuffle_i32x4(ab_lo, cd_lo, 0x88);
        out[4 + k] = _mm512_shuffle_i32x4(ab_lo, cd_lo, 0xDD);
        out[8 + k] = _mm512_shuffle_i32x4(ab_hi, cd_hi, 0x88);
        out[12 + k] = _mm512_shuffle_i32x4(ab_hi, cd_hi, 0xDD);
    }
}

INF_INLINE void transpose16x16(const void *src, size_t stride, __m512i out[16]) {
    __m512i r[16];
    INF_UNROLL for (int i = 0; i < 16; i++) {
        r[i] = _mm512_loadu_si512((const uint8_t *)src + (size_t)i * stride);
    }
    transpose16x16_regs(r, out);
}

// Writes (first segment) or adds (later segments) 16 rows of column results; lanes past the tile's rows
// are masked off.
INF_INLINE void gemm_store(float *y, __mmask16 km, __m512 v, bool first) {
    if (!first) {
        v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(km, y));
    }
    _mm512_mask_storeu_ps(y, km, v);
}

// ---- K-quants against Q8_K ----
//
// Per row and 16-element group g: d*sc_g; per super-block the correction sum_g m_g * bsum_g (mins of
// Q2_K/Q4_K/Q5_K with factor dmin, or the offsets 4*sc_g of Q3_K and 32*sc_g of Q6_K with factor d) is one
// vpdpwssd per pair of groups against the Q8_K bsums, broadcast from memory like the quants.

enum { KQ_SEG = 4 }; // super-blocks per repacked segment: 4 x 5.7 KB, L1-resident

typedef struct {
    __m512i w[QK_K / 4]; // unsigned quants, lane r = row r
    __m512 scale[16];    // d * sc per 16-element group
    __m512i mins[8];     // int16 pairs (m[2p], m[2p+1]) per row
    __m512 dmin;         // float factor of the mins
} kq_pack;

typedef struct {
    uint8_t q[GEMM_TILE][QK_K];
    float scale[GEMM_TILE][16];
    int32_t mins[GEMM_TILE][16]; // 8 used; 16 so the transpose can read a full row
    float dmin[GEMM_TILE];
} kq_rows;

typedef void (*kq_decode_fn)(const void *block, kq_rows *o, int r);

static void kq_decode_q4_K(const void *blk, kq_rows *o, int r) {
    const block_q4_K *b = blk;
    for (int k = 0; k < 4; k++) {
        _mm512_storeu_si512(o->q[r] + 64 * k, q4_K_chunk(b, k));
    }
    uint64_t sc8, m8;
    k4_scales_unpack(b->scales, &sc8, &m8);
    float d = fp16_f32(b->d);
    for (int j = 0; j < 8; j++) {
        uint32_t m = (uint32_t)(m8 >> (8 * j)) & 0xFF;
        o->scale[r][2 * j] = o->scale[r][2 * j + 1] = d * (float)((sc8 >> (8 * j)) & 0xFF);
        o->mins[r][j] = (int32_t)(m | (m << 16));
    }
    o->dmin[r] = fp16_f32(b->dmin);
}

static void kq_decode_q5_K(const void *blk, kq_rows *o, int r) {
    const block_q5_K *b = blk;
    __m512i qh2 = bcast256(b->qh);
    for (int k = 0; k < 4; k++) {
        _mm512_storeu_si512(o->q[r] + 64 * k, q5_K_chunk(b, qh2, k));
    }
    uint64_t sc8, m8;
    k4_scales_unpack(b->scales, &sc8, &m8);
    float d = fp16_f32(b->d);
    for (int j = 0; j < 8; j++) {
        uint32_t m = (uint32_t)(m8 >> (8 * j)) & 0xFF;
        o->scale[r][2 * j] = o->scale[r][2 * j + 1] = d * (float)((sc8 >> (8 * j)) & 0xFF);
        o->mins[r][j] = (int32_t)(m | (m << 16));
    }
    o->dmin[r] = fp16_f32(b->dmin);
}

// Signed scales sc[16] with offset off: scale d*sc, correction pairs off*sc against the bsums, factor d.
INF_INLINE void kq_signed_scales(const int8_t *sc, int off, float d, kq_rows *o, int r) {
    for (int g = 0; g < 16; g++) {
        o->scale[r][g] = d * (float)sc[g];
    }
    for (int p = 0; p < 8; p++) {
        uint32_t lo = (uint16_t)(int16_t)(off * sc[2 * p]), hi = (uint16_t)(int16_t)(off * sc[2 * p + 1]);
        o->mins[r][p] = (int32_t)(lo | (hi << 16));
    }
    o->dmin[r] = d;
}

static void kq_decode_q6_K(const void *blk, kq_rows *o, int r) {
    const block_q6_K *b = blk;
    for (int k = 0; k < 4; k++) {
        _mm512_storeu_si512(o->q[r] + 64 * k, q6_K_chunk(b, k));
    }
    kq_signed_scales(b->scales, 32, fp16_f32(b->d), o, r);
}

static void kq_decode_q3_K(const void *blk, kq_rows *o, int r) {
    const block_q3_K *b = blk;
    __m512i hm2 = bcast256(b->hmask);
    for (int k = 0; k < 4; k++) {
        _mm512_storeu_si512(o->q[r] + 64 * k, q3_K_chunk(b, hm2, k));
    }
    int8_t sc[16];
    _mm_storeu_si128((__m128i *)sc, _mm_sub_epi8(k3_scales_unpack(b->scales), _mm_set1_epi8(32)));
    kq_signed_scales(sc, 4, fp16_f32(b->d), o, r);
}

static void kq_decode_q2_K(const void *blk, kq_rows *o, int r) {
    const block_q2_K *b = blk;
    for (int k = 0; k < 4; k++) {
        _mm512_storeu_si512(o->q[r] + 64 * k, q2_K_chunk(b, k));
    }
    float d = fp16_f32(b->d);
    for (int g = 0; g < 16; g++) {
        o->scale[r][g] = d * (float)(b->scales[g] & 0xF);
    }
    for (int p = 0; p < 8; p++) {
        o->mins[r][p] = (int32_t)((uint32_t)(b->scales[2 * p] >> 4) | ((uint32_t)(b->scales[2 * p + 1] >> 4) << 16));
    }
    o->dmin[r] = fp16_f32(b->dmin);
}

static void kq_pack_rows(const kq_rows *o, kq_pack *p) {
    for (int t0 = 0; t0 < QK_K / 4; t0 += 16) {
        transpose16x16(o->q[0] + 4 * t0, QK_K, p->w + t0);
    }
    __m512i t[16];
    transpose16x16(o->scale, sizeof(o->scale[0]), t);
    for (int g = 0; g < 16; g++) {
        p->scale[g] = _mm512_castsi512_ps(t[g]);
    }
    transpose16x16(o->mins, sizeof(o->mins[0]), t);
    for (int i = 0; i < 8; i++) {
        p->mins[i] = t[i];
    }
    p->dmin = _mm512_loadu_ps(o->dmin);
}

// C activation columns (x at stride xs, positioned at the segment's first super-block) against ns packed
// super-blocks; scale groups of G elements (32 for Q4_K/Q5_K, 16 for the others).
INF_INLINE void kq_cols(const kq_pack *pk, int ns, const uint8_t *x, size_t xs, int C, int G, float *y, size_t ys,
                        __mmask16 km, bool first) {
    __m512 acc[8];
    INF_UNROLL for (int c = 0; c < C; c++) {
        acc[c] = _mm512_setzero_ps();
    }
    for (int s = 0; s < ns; s++) {
        const kq_pack *p = pk + s;
        const block_q8_K *xb[8];
        __m512 sb[8];
        INF_UNROLL for (int c = 0; c < C; c++) {
            xb[c] = (const block_q8_K *)(x + (size_t)c * xs) + s;
            sb[c] = _mm512_setzero_ps();
        }
        for (int g = 0; g < QK_K / G; g++) {
            __m512i isum[8];
            INF_UNROLL for (int c = 0; c < C; c++) {
                isum[c] = _mm512_setzero_si512();
            }
            INF_UNROLL for (int t = 0; t < G / 4; t++) {
                __m512i wv = p->w[g * (G / 4) + t];
                INF_UNROLL for (int c = 0; c < C; c++) {
                    isum[c] = dpbusd_bcast(isum[c], wv, xb[c]->qs + g * G + 4 * t);
                }
            }
            __m512 sc = p->scale[g * (G / 16)];
            INF_UNROLL for (int c = 0; c < C; c++) {
                sb[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c]), sc, sb[c]);
            }
        }
        INF_UNROLL for (int c = 0; c < C; c++) {
            __m512i m = _mm512_setzero_si512();
            INF_UNROLL for (int i = 0; i < 8; i++) {
                m = dpwssd_bcast(m, p->mins[i], &xb[c]->bsums[2 * i]);
            }
            sb[c] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(m), p->dmin, sb[c]);
            acc[c] = _mm512_fmadd_ps(sb[c], _mm512_set1_ps(xb[c]->d), acc[c]);
        }
    }
    INF_UNROLL for (int c = 0; c < C; c++) {
        gemm_store(y + (size_t)c * ys, km, acc[c], first);
    }
}

typedef void (*kq_cols_fn)(const kq_pack *pk, int ns, const uint8_t *x, size_t xs, float *y, size_t ys,
                           __mmask16 km, bool first);

#define KQ_COLS(G, C)                                                                                        \
    static void kq_cols_g##G##_c##C(const kq_pack *pk, int ns, const uint8_t *x, size_t xs, float *y, size_t ys, \
                                    __mmask16 km, bool first) {                                              \
        kq_cols(pk, ns, x, xs, C, G, y, ys, km, first);                                                      \
    }
KQ_COLS(32, 8)
KQ_COLS(32, 4)
KQ_COLS(32, 2)
KQ_COLS(32, 1)
KQ_COLS(16, 8)
KQ_COLS(16, 4)
KQ_COLS(16, 2)
KQ_COLS(16, 1)

static void gemm_kq(int64_t n, const uint8_t *w, size_t ws, int nrows, const uint8_t *x, size_t xs, int ncols,
                    float *y, size_t ys, kq_decode_fn decode, size_t bsize, int G) {
    static const kq_cols_fn g32[4] = {kq_cols_g32_c8, kq_cols_g32_c4, kq_cols_g32_c2, kq_cols_g32_c1};
    static const kq_cols_fn g16[4] = {kq_cols_g16_c8, kq_cols_g16_c4, kq_cols_g16_c2, kq_cols_g16_c1};
    const kq_cols_fn *cols = G == 32 ? g32 : g16;
    _Alignas(64) kq_pack pk[KQ_SEG];
    _Alignas(64) kq_rows rows;
    int64_t nsb = n / QK_K;
    for (int r0 = 0; r0 < nrows; r0 += GEMM_TILE) {
        int nr = nrows - r0 < GEMM_TILE ? nrows - r0 : GEMM_TILE;
        __mmask16 km = (__mmask16)((1u << nr) - 1);
        if (nr < GEMM_TILE) {
            memset(&rows, 0, sizeof(rows)); // padding rows decode as zeros
        }
        for (int64_t s0 = 0; s0 < nsb; s0 += KQ_SEG) {
            int ns = nsb - s0 < KQ_SEG ? (int)(nsb - s0) : KQ_SEG;
            for (int s = 0; s < ns; s++) {
                for (int r = 0; r < nr; r++) {
                    decode(w + (size_t)(r0 + r) * ws + (size_t)(s0 + s) * bsize, &rows, r);
                }
                kq_pack_rows(&rows, &pk[s]);
            }
            const uint8_t *xs0 = x + (size_t)s0 * sizeof(block_q8_K);
            int c0 = 0;
            for (int v = 0, width = 8; v < 4; v++, width /= 2) {
                for (; c0 + width <= ncols; c0 += width) {
                    cols[v](pk, ns, xs0 + (size_t)c0 * xs, xs, y + (size_t)c0 * ys + r0, ys, km, s0 == 0);
                }
            }
        }
    }
}

// Few columns: the repacking would not pay for itself.
INF_INLINE void gemm_by_vec_dot(inf_vec_dot_fn dot, int64_t n, const uint8_t *w, size_t ws, int nrows,
                                const uint8_t *x, size_t xs, int ncols, float *y, size_t ys) {
    for (int r = 0; r < nrows; r++) { // rows outer: a weight row is read from memory once, then from L1
        for (int c = 0; c < ncols; c++) {
            y[(size_t)c * ys + (size_t)r] = dot(n, w + (size_t)r * ws, x + (size_t)c * xs);
        }
    }
}

#define GEMM_KQ(type, G)                                                                                      \
    static void gemm_##type##_avx512(int64_t n, const void *w, size_t ws, int nrows, const void *x, size_t xs,  \
                                     int ncols, float *y, size_t ys) {                                        \
        if (ncols < GEMM_MIN_COLS) {                                                                          \
            gemm_by_vec_dot(vec_dot_##type##_avx512, n, w, ws, nrows, x, xs, ncols, y, ys);                    \
        } else {                                                                                              \
            gemm_kq(n, w, ws, nrows, x, xs, ncols, y, ys, kq_decode_##type, sizeof(block_##type), G);          \
        }                                                                                                     \
    }
GEMM_KQ(q2_K, 16)
GEMM_KQ(q3_K, 16)
GEMM_KQ(q4_K, 32)
GEMM_KQ(q5_K, 32)
GEMM_KQ(q6_K, 16)

// ---- 32-element blocks against Q8_0 / Q8_1 ----
//
// Weights are unsigned here (Q4_0/Q5_0 quants as stored, Q8_0 + 128) so the activation bytes can be the
// broadcast memory operand as for the K-quants. The offset (8, 16, 128) is taken back out by starting each
// block's sum at -offset * sum(x), a value per activation block that does not depend on the row: the sums
// (and the fp16 scales as floats) are computed once per row group, segment and column group.

enum { B32_SEG = 16, B32_TILES = 4 }; // blocks per segment; 16-row tiles sharing one activation pass

typedef struct {
    __m512i w[8]; // unsigned quants, lane r = row r
    __m512 d;     // weight scale per row
    __m512 m;     // weight min per row (Q4_1, Q5_1)
} b32_pack;

typedef struct {
    uint8_t q[GEMM_TILE][B32_SEG * 32];
    float d[GEMM_TILE][B32_SEG];
    float m[GEMM_TILE][B32_SEG];
} b32_rows;

// Decodes block b of a row into o->q[r] + 32b (unsigned bytes), o->d, o->m.
typedef void (*b32_decode_fn)(const void *block, b32_rows *o, int r, int b);

INF_INLINE void b32_put(b32_rows *o, int r, int b, __m256i q, float d, float m) {
    _mm256_storeu_si256((__m256i *)(o->q[r] + 32 * b), q);
    o->d[r][b] = d;
    o->m[r][b] = m;
}

static void b32_decode_q4_0(const void *blk, b32_rows *o, int r, int b) {
    const block_q4_0 *p = blk;
    b32_put(o, r, b, nibbles_x1(p->qs), fp16_f32(p->d), 0.0f);
}

static void b32_decode_q4_1(const void *blk, b32_rows *o, int r, int b) {
    const block_q4_1 *p = blk;
    b32_put(o, r, b, nibbles_x1(p->qs), fp16_f32(p->d), fp16_f32(p->m));
}

static void b32_decode_q5_0(const void *blk, b32_rows *o, int r, int b) {
    const block_q5_0 *p = blk;
    __m256i q = nibbles_x1(p->qs);
    b32_put(o, r, b, _mm256_mask_add_epi8(q, load_u32(p->qh), q, _mm256_set1_epi8(16)), fp16_f32(p->d), 0.0f);
}

static void b32_decode_q5_1(const void *blk, b32_rows *o, int r, int b) {
    const block_q5_1 *p = blk;
    __m256i q = nibbles_x1(p->qs);
    b32_put(o, r, b, _mm256_mask_add_epi8(q, load_u32(p->qh), q, _mm256_set1_epi8(16)), fp16_f32(p->d),
            fp16_f32(p->m));
}

static void b32_decode_q8_0(const void *blk, b32_rows *o, int r, int b) {
    const block_q8_0 *p = blk;
    __m256i q = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)p->qs), _mm256_set1_epi8((char)0x80));
    b32_put(o, r, b, q, fp16_f32(p->d), 0.0f);
}

// Packs nb blocks (rounded up to even: the rows buffer holds zeros past the segment).
static void b32_pack_rows(const b32_rows *o, int nb, b32_pack *p) {
    __m512i t[16];
    for (int b = 0; b < nb; b += 2) {
        transpose16x16(o->q[0] + 32 * b, sizeof(o->q[0]), t);
        for (int i = 0; i < 8; i++) {
            p[b].w[i] = t[i];
            p[b + 1].w[i] = t[8 + i];
        }
    }
    transpose16x16(o->d, sizeof(o->d[0]), t);
    for (int b = 0; b < nb; b++) {
        p[b].d = _mm512_castsi512_ps(t[b]);
    }
    transpose16x16(o->m, sizeof(o->m[0]), t);
    for (int b = 0; b < nb; b++) {
        p[b].m = _mm512_castsi512_ps(t[b]);
    }
}

typedef struct {
    int32_t init[8][B32_SEG]; // -offset * sum(x)
    float d[8][B32_SEG];
    float s[8][B32_SEG]; // Q8_1's s = d * sum(x)
} b32_xinfo;

// Activation block layout: d (fp16) at 0, Q8_1's s at 2, the quants at qs_off.
INF_INLINE void b32_x_info(const uint8_t *x, size_t xs, int C, int nb, size_t xbsize, size_t qs_off, int off,
                           b32_xinfo *o) {
    for (int c = 0; c < C; c++) {
        const uint8_t *xc = x + (size_t)c * xs;
        for (int b = 0; b < nb; b++) {
            const uint8_t *blk = xc + (size_t)b * xbsize;
            uint16_t h[2];
            memcpy(h, blk, sizeof(h));
            o->d[c][b] = fp16_f32(h[0]);
            o->s[c][b] = fp16_f32(h[1]);
            if (off != 0) {
                // sum of the signed bytes: sad of (x + 128) against zero, less 32 * 128.
                __m256i q = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(blk + qs_off)),
                                             _mm256_set1_epi8((char)0x80));
                __m256i sad = _mm256_sad_epu8(q, _mm256_setzero_si256());
                __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(sad), _mm256_extracti128_si256(sad, 1));
                int sum = (int)(_mm_cvtsi128_si64(s2) + _mm_extract_epi64(s2, 1)) - 32 * 128;
                o->init[c][b] = -off * sum;
            } else {
                o->init[c][b] = 0;
            }
        }
    }
}

INF_INLINE void b32_cols(const b32_pack *pk, int nb, const uint8_t *xq, size_t xs, size_t xbsize,
                         const b32_xinfo *xi, int C, bool with_min, float *y, size_t ys, __mmask16 km, bool first) {
    __m512 acc[8];
    INF_UNROLL for (int c = 0; c < C; c++) {
        acc[c] = _mm512_setzero_ps();
    }
    for (int b = 0; b < nb; b++) {
        const b32_pack *p = pk + b;
        __m512i isum[8];
        INF_UNROLL for (int c = 0; c < C; c++) {
            isum[c] = _mm512_set1_epi32(xi->init[c][b]);
        }
        INF_UNROLL for (int t = 0; t < 8; t++) {
            __m512i wv = p->w[t];
            INF_UNROLL for (int c = 0; c < C; c++) {
                isum[c] = dpbusd_bcast(isum[c], wv, xq + (size_t)c * xs + (size_t)b * xbsize + 4 * t);
            }
        }
        INF_UNROLL for (int c = 0; c < C; c++) {
            __m512 s = _mm512_mul_ps(p->d, _mm512_set1_ps(xi->d[c][b]));
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c]), s, acc[c]);
            if (with_min) {
                acc[c] = _mm512_fmadd_ps(p->m, _mm512_set1_ps(xi->s[c][b]), acc[c]);
            }
        }
    }
    INF_UNROLL for (int c = 0; c < C; c++) {
        gemm_store(y + (size_t)c * ys, km, acc[c], first);
    }
}

typedef void (*b32_cols_fn)(const b32_pack *pk, int nb, const uint8_t *xq, size_t xs, size_t xbsize,
                            const b32_xinfo *xi, float *y, size_t ys, __mmask16 km, bool first);

#define B32_COLS(M, C)                                                                                        \
    static void b32_cols_m##M##_c##C(const b32_pack *pk, int nb, const uint8_t *xq, size_t xs, size_t xbsize,   \
                                     const b32_xinfo *xi, float *y, size_t ys, __mmask16 km, bool first) {      \
        b32_cols(pk, nb, xq, xs, xbsize, xi, C, M, y, ys, km, first);                                         \
    }
B32_COLS(0, 8)
B32_COLS(0, 4)
B32_COLS(0, 2)
B32_COLS(0, 1)
B32_COLS(1, 8)
B32_COLS(1, 4)
B32_COLS(1, 2)
B32_COLS(1, 1)

static void gemm_b32(int64_t n, const uint8_t *w, size_t ws, int nrows, const uint8_t *x, size_t xs, int ncols,
                     float *y, size_t ys, b32_decode_fn decode, size_t bsize, int off, bool with_min) {
    static const b32_cols_fn m0[4] = {b32_cols_m0_c8, b32_cols_m0_c4, b32_cols_m0_c2, b32_cols_m0_c1};
    static const b32_cols_fn m1[4] = {b32_cols_m1_c8, b32_cols_m1_c4, b32_cols_m1_c2, b32_cols_m1_c1};
    const b32_cols_fn *cols = with_min ? m1 : m0;
    size_t xbsize = with_min ? sizeof(block_q8_1) : sizeof(block_q8_0);
    size_t qs_off = with_min ? offsetof(block_q8_1, qs) : offsetof(block_q8_0, qs);
    _Alignas(64) b32_pack pk[B32_TILES][B32_SEG];
    _Alignas(64) b32_rows rows;
    _Alignas(64) b32_xinfo xi;
    int64_t nblk = n / 32;
    for (int r0 = 0; r0 < nrows; r0 += GEMM_TILE * B32_TILES) {
        int ntiles = (nrows - r0 + GEMM_TILE - 1) / GEMM_TILE;
        ntiles = ntiles < B32_TILES ? ntiles : B32_TILES;
        for (int64_t b0 = 0; b0 < nblk; b0 += B32_SEG) {
            int nb = nblk - b0 < B32_SEG ? (int)(nblk - b0) : B32_SEG;
            for (int tile = 0; tile < ntiles; tile++) {
                int rt = r0 + GEMM_TILE * tile, nr = nrows - rt < GEMM_TILE ? nrows - rt : GEMM_TILE;
                memset(&rows, 0, sizeof(rows));
                for (int r = 0; r < nr; r++) {
                    const uint8_t *wr = w + (size_t)(rt + r) * ws + (size_t)b0 * bsize;
                    for (int b = 0; b < nb; b++) {
                        decode(wr + (size_t)b * bsize, &rows, r, b);
                    }
                }
                b32_pack_rows(&rows, (nb + 1) & ~1, pk[tile]);
            }
            int c0 = 0;
            for (int v = 0, width = 8; v < 4; v++, width /= 2) {
                for (; c0 + width <= ncols; c0 += width) {
                    const uint8_t *xc = x + (size_t)c0 * xs + (size_t)b0 * xbsize;
                    b32_x_info(xc, xs, width, nb, xbsize, qs_off, off, &xi);
                    for (int tile = 0; tile < ntiles; tile++) {
                        int rt = r0 + GEMM_TILE * tile, nr = nrows - rt < GEMM_TILE ? nrows - rt : GEMM_TILE;
                        cols[v](pk[tile], nb, xc + qs_off, xs, xbsize, &xi, y + (size_t)c0 * ys + rt, ys,
                                (__mmask16)((1u << nr) - 1), b0 == 0);
                    }
                }
            }
        }
    }
}

#define GEMM_B32(type, off, with_min)                                                                         \
    static void gemm_##type##_avx512(int64_t n, const void *w, size_t ws, int nrows, const void *x, size_t xs,  \
                                     int ncols, float *y, size_t ys) {                                        \
        if (ncols < GEMM_MIN_COLS) {                                                                          \
            gemm_by_vec_dot(vec_dot_##type##_avx512, n, w, ws, nrows, x, xs, ncols, y, ys);                    \
        } else {                                                                                              \
            gemm_b32(n, w, ws, nrows, x, xs, ncols, y, ys, b32_decode_##type, sizeof(block_##type), off,       \
                     with_min);                                                                               \
        }                                                                                                     \
    }
GEMM_B32(q4_0, 8, false)
GEMM_B32(q4_1, 0, true)
GEMM_B32(q5_0, 16, false)
GEMM_B32(q5_1, 0, true)
GEMM_B32(q8_0, 128, false)

// ---- float weights: 4 rows x 4 columns of 16-lane accumulators ----

typedef __m512 (*f_load_fn)(const void *p, int64_t i, __mmask16 k);

INF_INLINE __m512 fload_f32(const void *p, int64_t i, __mmask16 k) { return _mm512_maskz_loadu_ps(k, (const float *)p + i); }
INF_INLINE __m512 fload_f16(const void *p, int64_t i, __mmask16 k) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, (const uint16_t *)p + i));
}
INF_INLINE __m512 fload_bf16(const void *p, int64_t i, __mmask16 k) {
    return bf16x16_widen(_mm256_maskz_loadu_epi16(k, (const uint16_t *)p + i));
}

INF_INLINE void gemm_float_tile(int64_t n, const uint8_t *w, size_t ws, int R, const uint8_t *x, size_t xs, int C,
                                float *y, size_t ys, int kind) {
    __m512 acc[4][4];
    INF_UNROLL for (int r = 0; r < R; r++) {
        INF_UNROLL for (int c = 0; c < C; c++) {
            acc[r][c] = _mm512_setzero_ps();
        }
    }
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 xv[4];
        INF_UNROLL for (int c = 0; c < C; c++) {
            const uint8_t *xc = x + (size_t)c * xs;
            xv[c] = kind == 0 ? fload_f32(xc, i, k) : kind == 1 ? fload_f16(xc, i, k) : fload_bf16(xc, i, k);
        }
        INF_UNROLL for (int r = 0; r < R; r++) {
            const uint8_t *wr = w + (size_t)r * ws;
            __m512 wv = kind == 0 ? fload_f32(wr, i, k) : kind == 1 ? fload_f16(wr, i, k) : fload_bf16(wr, i, k);
            INF_UNROLL for (int c = 0; c < C; c++) {
                acc[r][c] = _mm512_fmadd_ps(wv, xv[c], acc[r][c]);
            }
        }
    }
    INF_UNROLL for (int r = 0; r < R; r++) {
        INF_UNROLL for (int c = 0; c < C; c++) {
            y[(size_t)c * ys + (size_t)r] = _mm512_reduce_add_ps(acc[r][c]);
        }
    }
}

#define GEMM_FLOAT(type, kind)                                                                                \
    static void gemm_##type##_tile4x4(int64_t n, const uint8_t *w, size_t ws, const uint8_t *x, size_t xs,       \
                                      float *y, size_t ys) {                                                  \
        gemm_float_tile(n, w, ws, 4, x, xs, 4, y, ys, kind);                                                  \
    }                                                                                                         \
    static void gemm_##type##_avx512(int64_t n, const void *w, size_t ws, int nrows, const void *x, size_t xs,  \
                                     int ncols, float *y, size_t ys) {                                        \
        const uint8_t *wb = w, *xb = x;                                                                       \
        int r0 = 0;                                                                                           \
        for (; r0 + 4 <= nrows; r0 += 4) {                                                                    \
            int c0 = 0;                                                                                       \
            for (; c0 + 4 <= ncols; c0 += 4) {                                                                \
                gemm_##type##_tile4x4(n, wb + (size_t)r0 * ws, ws, xb + (size_t)c0 * xs, xs,                  \
                                      y + (size_t)c0 * ys + r0, ys);                                          \
            }                                                                                                 \
            gemm_by_vec_dot(vec_dot_##type##_avx512, n, wb + (size_t)r0 * ws, ws, 4, xb + (size_t)c0 * xs, xs,  \
                            ncols - c0, y + (size_t)c0 * ys + r0, ys);                                        \
        }                                                                                                     \
        gemm_by_vec_dot(vec_dot_##type##_avx512, n, wb + (size_t)r0 * ws, ws, nrows - r0, xb, xs, ncols,       \
                        y + r0, ys);                                                                          \
    }
GEMM_FLOAT(f32, 0)
GEMM_FLOAT(f16, 1)
GEMM_FLOAT(bf16, 2)

// ---- single-row fast path (decode): Q4_0 against an activation row laid out for it ----
//
// vec_dot_q4_0 above spends most of its instructions on the 18- and 34-byte block strides (broadcasts,
// blends, gathers of the scales). Decode takes every weight row against one activation row, so the row is
// re-laid once per matmul: per group of 8 blocks (256 elements), the activation bytes in the order the weight
// nibbles come out of a byte permute, the offset -8 * sum(x) spread over the int32 lanes that vpdpbusd fills,
// and the activation scales per lane. A weight group (144 bytes, three loads) then takes two permutes for the
// quants, one for the 8 fp16 scales, four vpdpbusd and a short lane reduction. Needs AVX512-VBMI (vpermt2b).

typedef struct {
    int8_t x[2][2][64];  // [half h: blocks 4h..4h+3][low, high nibbles]: block 4h+q's bytes 16q..16q+15
    int32_t off[2][16];  // [h] lane 4q+i: -8 * (its 8 bytes of block 4h+q, low and high)
    float dx[16];        // lane 4L: d of block L, lane 4L+1: d of block 4+L, lanes 4L+2, 4L+3: 0
} q4_0_prep_group;
_Static_assert(sizeof(q4_0_prep_group) == 448, "prep group size is INF_PREP_BYTES' 448 per 256 elements");

__attribute__((target("avx512vbmi"))) static bool vec_prep_q4_0_avx512(int64_t n, const void *x, void *buf,
                                                                         size_t bytes) {
    if (n % 256 != 0 || (size_t)(n / 256) * sizeof(q4_0_prep_group) > bytes || ((uintptr_t)buf & 63) != 0) {
        return false;
    }
    const block_q8_0 *xb = x;
    q4_0_prep_group *g = buf;
    const __m512i ones = _mm512_set1_epi8(1);
    for (int64_t i = 0; i < n / 256; i++, xb += 8) {
        for (int h = 0; h < 2; h++) {
            for (int q = 0; q < 4; q++) {
                memcpy(g[i].x[h][0] + 16 * q, xb[4 * h + q].qs, 16);
                memcpy(g[i].x[h][1] + 16 * q, xb[4 * h + q].qs + 16, 16);
            }
            __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, _mm512_load_si512(g[i].x[h][0]));
            s = _mm512_dpbusd_epi32(s, ones, _mm512_load_si512(g[i].x[h][1]));
            _mm512_store_si512(g[i].off[h], _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(s, 3)));
        }
        memset(g[i].dx, 0, sizeof(g[i].dx));
        for (int l = 0; l < 4; l++) {
            g[i].dx[4 * l] = fp16_f32(xb[l].d);
            g[i].dx[4 * l + 1] = fp16_f32(xb[4 + l].d);
        }
    }
    return true;
}

// Permute indices. Byte k of half h's quants: block 4h + k/16, byte k%16 of its qs, in the group's bytes
// (block b at 18b, qs at +2): half 0 indexes bytes 0..127 (w0, w1), half 1 bytes 64..191 (w1, w2). The
// scales: fp16 word 4L is block L's d, word 4L+1 block 4+L's (bytes 0..127; the other words are masked).
static const _Alignas(64) uint8_t q4_0_prep_iq0[64] = {
    2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
    20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35,
    38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53,
    56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71,
};
static const _Alignas(64) uint8_t q4_0_prep_iq1[64] = {
    10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
    28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43,
    46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61,
    64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79,
};
static const _Alignas(64) uint8_t q4_0_prep_id[64] = {
    0, 1, 72, 73, 0, 0, 0, 0, 18, 19, 90, 91, 0, 0, 0, 0,
    36, 37, 108, 109, 0, 0, 0, 0, 54, 55, 126, 127, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

__attribute__((target("avx512vbmi"))) static float vec_dot_prep_q4_0_avx512(int64_t n, const void *w,
                                                                             const void *xp) {
    const uint8_t *a = w;
    const q4_0_prep_group *g = xp;
    const __m512i vq0 = _mm512_load_si512(q4_0_prep_iq0), vq1 = _mm512_load_si512(q4_0_prep_iq1);
    const __m512i vd = _mm512_load_si512(q4_0_prep_id);
    const __mmask64 kd = 0x0F0F0F0F; // words 4L and 4L+1 of the low 256 bits
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    for (int64_t i = 0; i < n / 256; i++, a += 144) {
        prefetch_ahead(a, 144);
        __m512i w0 = _mm512_loadu_si512(a), w1 = _mm512_loadu_si512(a + 64);
        __m512i w2 = _mm512_zextsi128_si512(_mm_loadu_si128((const __m128i *)(a + 128)));
        __m512i q0 = _mm512_permutex2var_epi8(w0, vq0, w1), q1 = _mm512_permutex2var_epi8(w1, vq1, w2);
        __m512i p = _mm512_load_si512(g[i].off[0]), r = _mm512_load_si512(g[i].off[1]);
        p = _mm512_dpbusd_epi32(p, _mm512_and_si512(q0, m4), _mm512_load_si512(g[i].x[0][0]));
        p = _mm512_dpbusd_epi32(p, _mm512_and_si512(_mm512_srli_epi16(q0, 4), m4), _mm512_load_si512(g[i].x[0][1]));
        r = _mm512_dpbusd_epi32(r, _mm512_and_si512(q1, m4), _mm512_load_si512(g[i].x[1][0]));
        r = _mm512_dpbusd_epi32(r, _mm512_and_si512(_mm512_srli_epi16(q1, 4), m4), _mm512_load_si512(g[i].x[1][1]));
        // Lanes 4L..4L+3 of p hold block L, of r block 4+L: sum each 128-bit lane into lanes 4L (p), 4L+1 (r).
        __m512i t = _mm512_add_epi32(_mm512_unpacklo_epi32(p, r), _mm512_unpackhi_epi32(p, r));
        t = _mm512_add_epi32(t, _mm512_shuffle_epi32(t, _MM_PERM_BADC));
        __m512 dw = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_maskz_permutex2var_epi8(kd, w0, vd, w1)));
        __m512 sc = _mm512_mul_ps(dw, _mm512_load_ps(g[i].dx));
        if (i & 1) {
            acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), sc, acc1);
        } else {
            acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), sc, acc0);
        }
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

// Two rows per step (vec_dot_rows): the activation loads are shared, and the two rows' block sums go through
// one reduction and one scale multiply. pA/rA (row A, blocks 0-3 / 4-7, lanes 4L..4L+3 of block L) and pB/rB
// fold to [A: L, A: 4+L, B: L, B: 4+L] in the four lanes of 128-bit lane L, against the scales laid out the
// same way: 9 ops where two single-row reductions take 10, and one cvt, multiply and FMA instead of two.
// Word 4L+2 of the fp16 scales is block L's d of row B, word 4L+3 block 4+L's (the same bytes as
// q4_0_prep_id's words 4L, 4L+1, moved up two words; masked to those words).
static const _Alignas(64) uint8_t q4_0_prep_id2[64] = {
    0, 0, 0, 0, 0, 1, 72, 73, 0, 0, 0, 0, 18, 19, 90, 91,
    0, 0, 0, 0, 36, 37, 108, 109, 0, 0, 0, 0, 54, 55, 126, 127,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

// Integer sums of the 8 blocks of one row's group: p (blocks 0-3), r (blocks 4-7), lanes as above.
INF_INLINE __attribute__((target("avx512vbmi"))) void q4_0_prep_sums(const uint8_t *a, const q4_0_prep_group *g,
                                                                      __m512i x00, __m512i x01, __m512i x10,
                                                                      __m512i x11, __m512i *p, __m512i *r,
                                                                      __m512i *w0, __m512i *w1) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    *w0 = _mm512_loadu_si512(a);
    *w1 = _mm512_loadu_si512(a + 64);
    __m512i w2 = _mm512_zextsi128_si512(_mm_loadu_si128((const __m128i *)(a + 128)));
    __m512i q0 = _mm512_permutex2var_epi8(*w0, _mm512_load_si512(q4_0_prep_iq0), *w1);
    __m512i q1 = _mm512_permutex2var_epi8(*w1, _mm512_load_si512(q4_0_prep_iq1), w2);
    __m512i pp = _mm512_load_si512(g->off[0]), rr = _mm512_load_si512(g->off[1]);
    pp = _mm512_dpbusd_epi32(pp, _mm512_and_si512(q0, m4), x00);
    pp = _mm512_dpbusd_epi32(pp, _mm512_and_si512(_mm512_srli_epi16(q0, 4), m4), x01);
    rr = _mm512_dpbusd_epi32(rr, _mm512_and_si512(q1, m4), x10);
    rr = _mm512_dpbusd_epi32(rr, _mm512_and_si512(_mm512_srli_epi16(q1, 4), m4), x11);
    *p = pp;
    *r = rr;
}

__attribute__((target("avx512vbmi"))) static void vec_dot_rows_q4_0_avx512(int64_t n, const void *w, size_t ws,
                                                                            int64_t n_rows, const void *xp,
                                                                            float *y) {
    const q4_0_prep_group *g = xp;
    const int64_t ng = n / 256;
    const __m512i vd = _mm512_load_si512(q4_0_prep_id), vd2 = _mm512_load_si512(q4_0_prep_id2);
    int64_t r = 0;
    for (; r + 2 <= n_rows; r += 2) {
        const uint8_t *a = (const uint8_t *)w + (size_t)r * ws, *b = a + ws;
        __m512 acc = _mm512_setzero_ps();
        for (int64_t i = 0; i < ng; i++, a += 144, b += 144) {
            prefetch_ahead(a, 144);
            prefetch_ahead(b, 144);
            __m512i x00 = _mm512_load_si512(g[i].x[0][0]), x01 = _mm512_load_si512(g[i].x[0][1]);
            __m512i x10 = _mm512_load_si512(g[i].x[1][0]), x11 = _mm512_load_si512(g[i].x[1][1]);
            __m512i pA, rA, pB, rB, a0, a1, b0, b1;
            q4_0_prep_sums(a, &g[i], x00, x01, x10, x11, &pA, &rA, &a0, &a1);
            q4_0_prep_sums(b, &g[i], x00, x01, x10, x11, &pB, &rB, &b0, &b1);
            __m512i tA = _mm512_add_epi32(_mm512_unpacklo_epi32(pA, rA), _mm512_unpackhi_epi32(pA, rA));
            __m512i tB = _mm512_add_epi32(_mm512_unpacklo_epi32(pB, rB), _mm512_unpackhi_epi32(pB, rB));
            __m512i t = _mm512_add_epi32(_mm512_unpacklo_epi64(tA, tB), _mm512_unpackhi_epi64(tA, tB));
            __m512i d16 = _mm512_or_si512(_mm512_maskz_permutex2var_epi8(0x0F0F0F0F, a0, vd, a1),
                                          _mm512_maskz_permutex2var_epi8(0xF0F0F0F0, b0, vd2, b1));
            __m512 dx = _mm512_permute_ps(_mm512_load_ps(g[i].dx), 0x44); // [dL, d4+L, dL, d4+L]
            __m512 sc = _mm512_mul_ps(_mm512_cvtph_ps(_mm512_castsi512_si256(d16)), dx);
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), sc, acc);
        }
        y[r] = _mm512_mask_reduce_add_ps(0x3333, acc);
        y[r + 1] = _mm512_mask_reduce_add_ps(0xCCCC, acc);
    }
    if (r < n_rows) y[r] = vec_dot_prep_q4_0_avx512(n, (const uint8_t *)w + (size_t)r * ws, xp);
}

// ---- single-row fast path (decode): Q4_K against a Q8_K row laid out for it ----
//
// vec_dot_q4_K takes the 64 weights of each chunk from a 256-bit broadcast and a per-half shift. With the
// activation bytes re-laid once per matmul in the order the nibbles come out of plain 64-byte loads, a
// super-block's 128 quant bytes are two loads: the low nibbles of bytes 0-63 are sub-blocks 0 and 2, the
// high nibbles sub-blocks 1 and 3, and likewise 4-7 from bytes 64-127. The mins need the activation sums
// per 32-element sub-block, also made once. vec_dot_rows takes two rows per step sharing the activation loads.

typedef struct {
    int8_t x[4][64];  // [v]: sub-blocks (4(v/2) + v%2) and (4(v/2) + v%2 + 2) of the Q8_K quants, 32 bytes each
    int16_t bs[8];    // sum of the quants of sub-block j (32 elements)
    float d;          // the Q8_K scale
    uint8_t pad[44];
} q4_K_prep_sb;
_Static_assert(sizeof(q4_K_prep_sb) == 320 && sizeof(q4_K_prep_sb) <= 448,
               "a 64-byte multiple within INF_PREP_BYTES' 448 per 256 elements");

static bool vec_prep_q4_K_avx512(int64_t n, const void *x, void *buf, size_t bytes) {
    if (n % QK_K != 0 || (size_t)(n / QK_K) * sizeof(q4_K_prep_sb) > bytes || ((uintptr_t)buf & 63) != 0) {
        return false;
    }
    const block_q8_K *b = x;
    q4_K_prep_sb *p = buf;
    for (int64_t i = 0; i < n / QK_K; i++) {
        for (int v = 0; v < 4; v++) {
            int s0 = 4 * (v / 2) + v % 2;
            memcpy(p[i].x[v], b[i].qs + 32 * s0, 32);
            memcpy(p[i].x[v] + 32, b[i].qs + 32 * (s0 + 2), 32);
        }
        for (int j = 0; j < 8; j++) {
            p[i].bs[j] = (int16_t)(b[i].bsums[2 * j] + b[i].bsums[2 * j + 1]); // |sum| <= 32 * 128
        }
        p[i].d = b[i].d;
        memset(p[i].pad, 0, sizeof(p[i].pad));
    }
    return true;
}

// 16-bit lanes 0-15 get scale a, lanes 16-31 scale b, from the 8 scales as 16-bit words in every 128-bit lane.
INF_INLINE __m512i k4_scale_pair(__m512i sc16x4, int a, int b) {
    return _mm512_shuffle_epi8(sc16x4, set_halves_epi16((short)(((2 * a + 1) << 8) | (2 * a)),
                                                        (short)(((2 * b + 1) << 8) | (2 * b))));
}

INF_INLINE void q4_K_prep_sb_dot(const block_q4_K *a, const q4_K_prep_sb *x, __m512 *acc, __m128 *accm) {
    uint64_t sc8, m8;
    k4_scales_unpack(a->scales, &sc8, &m8);
    __m512i sc = _mm512_broadcast_i32x4(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc8)));
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    __m512i q0 = _mm512_loadu_si512(a->qs), q1 = _mm512_loadu_si512(a->qs + 64);
    __m512i v0 = _mm512_and_si512(q0, m4), v1 = _mm512_and_si512(_mm512_srli_epi16(q0, 4), m4);
    __m512i v2 = _mm512_and_si512(q1, m4), v3 = _mm512_and_si512(_mm512_srli_epi16(q1, 4), m4);
    // Two chains of two, so the vpdpwssd latencies overlap.
    __m512i s0 = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_maddubs_epi16(v0, _mm512_load_si512(x->x[0])),
                                     k4_scale_pair(sc, 0, 2));
    __m512i s1 = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_maddubs_epi16(v1, _mm512_load_si512(x->x[1])),
                                     k4_scale_pair(sc, 1, 3));
    s0 = _mm512_dpwssd_epi32(s0, _mm512_maddubs_epi16(v2, _mm512_load_si512(x->x[2])), k4_scale_pair(sc, 4, 6));
    s1 = _mm512_dpwssd_epi32(s1, _mm512_maddubs_epi16(v3, _mm512_load_si512(x->x[3])), k4_scale_pair(sc, 5, 7));
    float xd = x->d;
    *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), _mm512_set1_ps(fp16_f32(a->d) * xd), *acc);
    __m128i mins = _mm_madd_epi16(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)m8)),
                                  _mm_load_si128((const __m128i *)x->bs));
    *accm = _mm_fmadd_ps(_mm_cvtepi32_ps(mins), _mm_set1_ps(fp16_f32(a->dmin) * xd), *accm);
}

INF_INLINE float hsum_ps128(__m128 t) {
    t = _mm_add_ps(t, _mm_movehl_ps(t, t));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

static float vec_dot_prep_q4_K_avx512(int64_t n, const void *w, const void *xp) {
    const block_q4_K *a = w;
    const q4_K_prep_sb *x = xp;
    __m512 acc = _mm512_setzero_ps();
    __m128 accm = _mm_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        prefetch_ahead(&a[i], sizeof(a[i]));
        q4_K_prep_sb_dot(&a[i], &x[i], &acc, &accm);
    }
    return _mm512_reduce_add_ps(acc) - hsum_ps128(accm);
}

static void vec_dot_rows_q4_K_avx512(int64_t n, const void *w, size_t ws, int64_t n_rows, const void *xp,
                                     float *y) {
    const q4_K_prep_sb *x = xp;
    int64_t r = 0;
    for (; r + 2 <= n_rows; r += 2) {
        const block_q4_K *a = (const void *)((const uint8_t *)w + (size_t)r * ws);
        const block_q4_K *b = (const void *)((const uint8_t *)a + ws);
        __m512 acc_a = _mm512_setzero_ps(), acc_b = _mm512_setzero_ps();
        __m128 m_a = _mm_setzero_ps(), m_b = _mm_setzero_ps();
        for (int64_t i = 0; i < n / QK_K; i++) {
            prefetch_ahead(&a[i], sizeof(a[i]));
            prefetch_ahead(&b[i], sizeof(b[i]));
            q4_K_prep_sb_dot(&a[i], &x[i], &acc_a, &m_a);
            q4_K_prep_sb_dot(&b[i], &x[i], &acc_b, &m_b);
        }
        y[r] = _mm512_reduce_add_ps(acc_a) - hsum_ps128(m_a);
        y[r + 1] = _mm512_reduce_add_ps(acc_b) - hsum_ps128(m_b);
    }
    if (r < n_rows) y[r] = vec_dot_prep_q4_K_avx512(n, (const uint8_t *)w + (size_t)r * ws, xp);
}

// ---- attention: key blocks of 16, online softmax ----
//
// For a block of 16 keys, each query's 16 scores come from hd/16 FMAs per key and one transposing reduction
// of the 16 partial vectors; the block's keys and values stay in L1 while every query of the group uses them.
// The running maximum, sum and output of each query are rescaled when a block raises the maximum.

// e^x: 2^n * e^r with r = x - n ln 2 in [-ln2/2, ln2/2], Taylor to degree 7 (relative error below 1e-8
// before rounding). x is clamped to [-104, 88.7]: below, 0 or a subnormal (-inf gives 0); above, ~3.3e38
// rather than inf.
INF_INLINE __m512 exp_ps(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(88.7f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

// Lane i of the result = the sum of the 16 lanes of v[i].
INF_INLINE __m512 hsum16_ps(const __m512 v[16]) {
    __m512 t[8], u[4];
    INF_UNROLL for (int i = 0; i < 8; i++) {
        t[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
    }
    // t[i], per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3] of v[2i] = a, v[2i+1] = b.
    INF_UNROLL for (int i = 0; i < 4; i++) {
        __m512d a = _mm512_castps_pd(t[2 * i]), b = _mm512_castps_pd(t[2 * i + 1]);
        u[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
    }
    // u[i], 128-bit lane L: partial sums over lane L's four floats of v[4i..4i+3].
    __m512 w01 = _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], 0x88), _mm512_shuffle_f32x4(u[0], u[1], 0xDD));
    __m512 w23 = _mm512_add_ps(_mm512_shuffle_f32x4(u[2], u[3], 0x88), _mm512_shuffle_f32x4(u[2], u[3], 0xDD));
    return _mm512_add_ps(_mm512_shuffle_f32x4(w01, w23, 0x88), _mm512_shuffle_f32x4(w01, w23, 0xDD));
}

enum { ATT_KB = 16, ATT_QMAX = 8, ATT_HDMAX = 256 };

// One key block of the online softmax for one query row: sc holds the block's scaled scores (-inf outside
// valid); updates the row's running maximum *mx and per-lane sum *sum, and adds the block's probabilities
// (written to pj) times the value rows vr[0..n) into acc (hd = 16 * HC floats). The running state is
// rescaled only when the block raises the maximum (after the first blocks, rarely): corr = e^(old - new), 0
// on the first block (old = -inf).
INF_INLINE void attn_block_update(__m512 sc, __mmask16 valid, int n, int HC, const float *const *vr, float *mx,
                                  __m512 *sum, float *pj, float *acc) {
    float bm = _mm512_reduce_max_ps(sc), corr = 1.0f;
    if (bm > *mx) {
        corr = expf(*mx - bm);
        *mx = bm;
    }
    __m512 p = _mm512_maskz_mov_ps(valid, exp_ps(_mm512_sub_ps(sc, _mm512_set1_ps(*mx))));
    *sum = corr == 1.0f ? _mm512_add_ps(*sum, p) : _mm512_fmadd_ps(*sum, _mm512_set1_ps(corr), p);
    _mm512_store_ps(pj, p);
    // Two independent FMA chains per 16 output lanes (even and odd keys), so the adds do not wait on each
    // other's latency.
    __m512 vc = _mm512_set1_ps(corr);
    for (int c0 = 0; c0 < HC; c0 += 4) {
        int nc = HC - c0 < 4 ? HC - c0 : 4;
        __m512 o[4], e[4];
        for (int c = 0; c < nc; c++) {
            o[c] = _mm512_load_ps(acc + 16 * (c0 + c));
            if (corr != 1.0f) o[c] = _mm512_mul_ps(o[c], vc);
            e[c] = _mm512_setzero_ps();
        }
        int jj = 0;
        for (; jj + 2 <= n; jj += 2) {
            __m512 p0 = _mm512_set1_ps(pj[jj]), p1 = _mm512_set1_ps(pj[jj + 1]);
            for (int c = 0; c < nc; c++) {
                o[c] = _mm512_fmadd_ps(p0, _mm512_loadu_ps(vr[jj] + 16 * (c0 + c)), o[c]);
                e[c] = _mm512_fmadd_ps(p1, _mm512_loadu_ps(vr[jj + 1] + 16 * (c0 + c)), e[c]);
            }
        }
        if (jj < n) {
            __m512 p0 = _mm512_set1_ps(pj[jj]);
            for (int c = 0; c < nc; c++) o[c] = _mm512_fmadd_ps(p0, _mm512_loadu_ps(vr[jj] + 16 * (c0 + c)), o[c]);
        }
        for (int c = 0; c < nc; c++) _mm512_store_ps(acc + 16 * (c0 + c), _mm512_add_ps(o[c], e[c]));
    }
}

// Up to ATT_QMAX queries of hd = 16 * HC floats.
INF_INLINE void attn_group(int HC, int G, const float *q, const float *k, const float *v, size_t kvs,
                           const int32_t *cells, int n, float scale, float *out) {
    _Alignas(64) float acc[ATT_QMAX][ATT_HDMAX];
    _Alignas(64) float pj[ATT_KB];
    float mx[ATT_QMAX];
    __m512 sum[ATT_QMAX]; // per lane; summed at the end
    const int hd = 16 * HC;
    for (int g = 0; g < G; g++) {
        mx[g] = -INFINITY;
        sum[g] = _mm512_setzero_ps();
        for (int c = 0; c < HC; c++) _mm512_store_ps(acc[g] + 16 * c, _mm512_setzero_ps());
    }
    for (int j0 = 0; j0 < n; j0 += ATT_KB) {
        int nb = n - j0 < ATT_KB ? n - j0 : ATT_KB;
        const float *kr[ATT_KB], *vr[ATT_KB];
        for (int jj = 0; jj < ATT_KB; jj++) { // rows past n repeat the last one: computed, then masked off
            int32_t cell = cells[j0 + (jj < nb ? jj : nb - 1)];
            kr[jj] = k + (size_t)cell * kvs;
            vr[jj] = v + (size_t)cell * kvs;
        }
        __mmask16 valid = (__mmask16)(nb == 16 ? 0xFFFF : (1u << nb) - 1);
        for (int g = 0; g < G; g++) {
            const float *qg = q + (size_t)g * (size_t)hd;
            __m512 part[ATT_KB];
            INF_UNROLL for (int jj = 0; jj < ATT_KB; jj++) {
                __m512 a = _mm512_mul_ps(_mm512_loadu_ps(qg), _mm512_loadu_ps(kr[jj]));
                for (int c = 1; c < HC; c++) {
                    a = _mm512_fmadd_ps(_mm512_loadu_ps(qg + 16 * c), _mm512_loadu_ps(kr[jj] + 16 * c), a);
                }
                part[jj] = a;
            }
            __m512 sc = _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), valid,
                                           _mm512_mul_ps(hsum16_ps(part), _mm512_set1_ps(scale)));
            attn_block_update(sc, valid, nb, HC, vr, &mx[g], &sum[g], pj, acc[g]);
        }
    }
    for (int g = 0; g < G; g++) {
        __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum[g]));
        for (int c = 0; c < HC; c++) {
            _mm512_storeu_ps(out + (size_t)g * (size_t)hd + 16 * c, _mm512_mul_ps(_mm512_load_ps(acc[g] + 16 * c), inv));
        }
    }
}

static void attn_f32_avx512(int hd, int G, const float *q, const float *k, const float *v, size_t kv_stride,
                            const int32_t *cells, int n, float scale, float *out) {
    if (hd % 16 != 0 || hd > ATT_HDMAX) {
        inf_attn_f32_ref(hd, G, q, k, v, kv_stride, cells, n, scale, out);
        return;
    }
    for (int g0 = 0; g0 < G; g0 += ATT_QMAX) {
        int ng = G - g0 < ATT_QMAX ? G - g0 : ATT_QMAX;
        const float *qg = q + (size_t)g0 * (size_t)hd;
        float *og = out + (size_t)g0 * (size_t)hd;
        switch (hd / 16) { // the common head sizes get unrolled bodies
        case 4: attn_group(4, ng, qg, k, v, kv_stride, cells, n, scale, og); break;
        case 8: attn_group(8, ng, qg, k, v, kv_stride, cells, n, scale, og); break;
        default: attn_group(hd / 16, ng, qg, k, v, kv_stride, cells, n, scale, og); break;
        }
    }
}

// ---- attention over a tile of positions (prefill) ----
//
// Tq consecutive positions of one sequence with G query heads each: up to ATT_TROWS query rows share every
// key block. The block's keys are transposed once (16 keys per vector), so a row's 16 scores are hd FMAs
// with the query element broadcast from memory and no reduction; rows past their causal limit skip the
// block or mask its tail.

enum { ATT_TROWS = 32 };

INF_INLINE void attn_tile_rows(int HC, int G, int Tq, const float *q, size_t qs, const float *k, const float *v,
                               size_t kvs, const int32_t *cells, int n0, float scale, float *out) {
    _Alignas(64) float acc[ATT_TROWS][ATT_HDMAX];
    _Alignas(64) float kt[ATT_HDMAX][ATT_KB];
    _Alignas(64) float pj[ATT_KB];
    float mx[ATT_TROWS];
    __m512 sum[ATT_TROWS];
    const int hd = 16 * HC, R = Tq * G, n_max = n0 + Tq - 1;
    for (int r = 0; r < R; r++) {
        mx[r] = -INFINITY;
        sum[r] = _mm512_setzero_ps();
        for (int c = 0; c < HC; c++) _mm512_store_ps(acc[r] + 16 * c, _mm512_setzero_ps());
    }
    for (int j0 = 0; j0 < n_max; j0 += ATT_KB) {
        int nb = n_max - j0 < ATT_KB ? n_max - j0 : ATT_KB;
        const float *kr[ATT_KB], *vr[ATT_KB];
        for (int jj = 0; jj < ATT_KB; jj++) { // rows past the block's keys repeat the last one, then are masked
            int32_t cell = cells[j0 + (jj < nb ? jj : nb - 1)];
            kr[jj] = k + (size_t)cell * kvs;
            vr[jj] = v + (size_t)cell * kvs;
        }
        for (int c = 0; c < HC; c++) {
            __m512i rows[16], cols[16];
            for (int jj = 0; jj < ATT_KB; jj++) rows[jj] = _mm512_loadu_si512(kr[jj] + 16 * c);
            transpose16x16_regs(rows, cols);
            for (int i = 0; i < 16; i++) _mm512_store_si512(kt[16 * c + i], cols[i]);
        }
        for (int r = 0; r < R; r++) {
            int lim = n0 + r / G - j0; // keys of this block the row may see
            if (lim <= 0) continue;
            lim = lim < nb ? lim : nb;
            __mmask16 valid = (__mmask16)(lim == 16 ? 0xFFFF : (1u << lim) - 1);
            const float *qr = q + (size_t)(r / G) * qs + (size_t)(r % G) * (size_t)hd;
            __m512 s8[8];
            for (int a = 0; a < 8; a++) s8[a] = _mm512_setzero_ps();
            for (int i = 0; i < hd; i += 8) {
                INF_UNROLL for (int a = 0; a < 8; a++) {
                    s8[a] = _mm512_fmadd_ps(_mm512_set1_ps(qr[i + a]), _mm512_load_ps(kt[i + a]), s8[a]);
                }
            }
            __m512 sc = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s8[0], s8[1]), _mm512_add_ps(s8[2], s8[3])),
                                      _mm512_add_ps(_mm512_add_ps(s8[4], s8[5]), _mm512_add_ps(s8[6], s8[7])));
            sc = _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), valid, _mm512_mul_ps(sc, _mm512_set1_ps(scale)));
            attn_block_update(sc, valid, lim, HC, vr, &mx[r], &sum[r], pj, acc[r]);
        }
    }
    for (int r = 0; r < R; r++) {
        __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum[r]));
        float *o = out + (size_t)(r / G) * qs + (size_t)(r % G) * (size_t)hd;
        for (int c = 0; c < HC; c++) _mm512_storeu_ps(o + 16 * c, _mm512_mul_ps(_mm512_load_ps(acc[r] + 16 * c), inv));
    }
}

static void attn_tile_f32_avx512(int hd, int G, int Tq, const float *q, size_t q_stride, const float *k,
                                 const float *v, size_t kv_stride, const int32_t *cells, int n0, float scale,
                                 float *out) {
    if (hd % 16 != 0 || hd > ATT_HDMAX || G > ATT_TROWS) {
        inf_attn_tile_f32_ref(hd, G, Tq, q, q_stride, k, v, kv_stride, cells, n0, scale, out);
        return;
    }
    int per = ATT_TROWS / G; // positions per pass
    for (int j = 0; j < Tq; j += per) {
        int tq = Tq - j < per ? Tq - j : per;
        const float *qj = q + (size_t)j * q_stride;
        float *oj = out + (size_t)j * q_stride;
        switch (hd / 16) {
        case 4: attn_tile_rows(4, G, tq, qj, q_stride, k, v, kv_stride, cells, n0 + j, scale, oj); break;
        case 8: attn_tile_rows(8, G, tq, qj, q_stride, k, v, kv_stride, cells, n0 + j, scale, oj); break;
        default: attn_tile_rows(hd / 16, G, tq, qj, q_stride, k, v, kv_stride, cells, n0 + j, scale, oj); break;
        }
    }
}

// ---- SwiGLU ----

static void swiglu_f32_avx512(float *h, const float *u, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 g = _mm512_maskz_loadu_ps(k, h + i);
        __m512 e = exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), g));
        _mm512_mask_storeu_ps(h + i, k, _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), _mm512_maskz_loadu_ps(k, u + i)));
    }
}

// ---- the table ----

void inf_cpu_kernels_fill_avx512(inf_cpu_kernels *k, const inf_cpu_features *f) {
    k->quantize[INF_TYPE_F16] = quantize_row_f16_avx512;
    k->quantize[INF_TYPE_BF16] = quantize_row_bf16_avx512;
    k->quantize[INF_TYPE_Q8_0] = quantize_row_q8_0_avx512;
    k->quantize[INF_TYPE_Q8_1] = quantize_row_q8_1_avx512;
    k->quantize[INF_TYPE_Q8_K] = quantize_row_q8_K_avx512;

    k->vec_dot[INF_TYPE_F32] = vec_dot_f32_avx512;
    k->vec_dot[INF_TYPE_F16] = vec_dot_f16_avx512;
    k->vec_dot[INF_TYPE_BF16] = f->avx512bf16 ? vec_dot_bf16_avx512bf16 : vec_dot_bf16_avx512;
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

    k->gemm[INF_TYPE_F32] = gemm_f32_avx512;
    k->gemm[INF_TYPE_F16] = gemm_f16_avx512;
    k->gemm[INF_TYPE_BF16] = gemm_bf16_avx512;
    k->gemm[INF_TYPE_Q4_0] = gemm_q4_0_avx512;
    k->gemm[INF_TYPE_Q4_1] = gemm_q4_1_avx512;
    k->gemm[INF_TYPE_Q5_0] = gemm_q5_0_avx512;
    k->gemm[INF_TYPE_Q5_1] = gemm_q5_1_avx512;
    k->gemm[INF_TYPE_Q8_0] = gemm_q8_0_avx512;
    k->gemm[INF_TYPE_Q2_K] = gemm_q2_K_avx512;
    k->gemm[INF_TYPE_Q3_K] = gemm_q3_K_avx512;
    k->gemm[INF_TYPE_Q4_K] = gemm_q4_K_avx512;
    k->gemm[INF_TYPE_Q5_K] = gemm_q5_K_avx512;
    k->gemm[INF_TYPE_Q6_K] = gemm_q6_K_avx512;
    k->attn = attn_f32_avx512;
    k->attn_tile = attn_tile_f32_avx512;
    k->swiglu = swiglu_f32_avx512;
    k->vec_prep[INF_TYPE_Q4_K] = vec_prep_q4_K_avx512;
    k->vec_dot_prep[INF_TYPE_Q4_K] = vec_dot_prep_q4_K_avx512;
    k->vec_dot_rows[INF_TYPE_Q4_K] = vec_dot_rows_q4_K_avx512;
    if (f->avx512vbmi) {
        k->vec_prep[INF_TYPE_Q4_0] = vec_prep_q4_0_avx512;
        k->vec_dot_prep[INF_TYPE_Q4_0] = vec_dot_prep_q4_0_avx512;
        k->vec_dot_rows[INF_TYPE_Q4_0] = vec_dot_rows_q4_0_avx512;
    }
}
