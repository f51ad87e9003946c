// kernels_avx2.c: the AVX2 kernel variant (with FMA and F16C; chosen at run time on CPUs that have them
// but not the AVX-512 set): activation quantizers, vec_dot for every weight type, and gemm tiles.
//
// Each type's dot product is written once as "one weight row against C activation rows": vec_dot is C = 1
// and gemm runs C = 4, so every decoded weight block (nibbles unpacked, scales expanded) serves four
// columns. Integer products use vpmaddubsw (unsigned x signed bytes into 16-bit pair sums, which cannot
// saturate here: at most 2 * 128 * 127) and vpmaddwd; signed weights take the sign trick (|w| against x
// with w's sign). Quantizers are byte-identical to the references (cvtps2dq rounds half to even under the
// default MXCSR, as inf_nearest_int does).
//
// Deliberately left out: the lane-per-row repacked tiles of the AVX-512 variant (16 registers are too few
// for them to pay off without VNNI), non-default MXCSR rounding modes.
#include "backend/cpu/cpu_internal.h"

#include <immintrin.h>
#include <string.h>

#define INF_INLINE static inline __attribute__((always_inline))

enum { AVX2_COLS = 4 }; // activation columns per gemm tile

// Full unrolling turns chunk indices into immediates (shift counts, shuffle constants). Not under sanitizers
// or -O0, where gcc warns that it ignores the annotation.
#if defined(__OPTIMIZE__) && !defined(__SANITIZE_ADDRESS__)
#define INF_UNROLL _Pragma("GCC unroll 8")
#else
#define INF_UNROLL
#endif

INF_INLINE float fp16_f32(uint16_t h) { return _cvtsh_ss(h); }

INF_INLINE uint32_t load_u32(const void *p) {
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

INF_INLINE float hsum_ps(__m256 v) {
    __m128 t = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    t = _mm_add_ps(t, _mm_movehl_ps(t, t));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

INF_INLINE int hsum_epi32(__m256i v) {
    __m128i t = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4e));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xb1));
    return _mm_cvtsi128_si32(t);
}

INF_INLINE float hmax_ps(__m256 v) {
    __m128 t = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    t = _mm_max_ps(t, _mm_movehl_ps(t, t));
    return _mm_cvtss_f32(_mm_max_ss(t, _mm_movehdup_ps(t)));
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

static void quantize_row_f16_avx2(const float *src, void *dst, int64_t n) {
    uint16_t *h = dst;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm_storeu_si128((__m128i *)(h + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; i++) {
        h[i] = (uint16_t)_cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT);
    }
}

// Round half to even on the bits, NaN kept quiet: inf_fp32_to_bf16 eight at a time.
static void quantize_row_bf16_avx2(const float *src, void *dst, int64_t n) {
    uint16_t *h = dst;
    int64_t i = 0;
    const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7fff);
    const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    for (; i + 8 <= n; i += 8) {
        __m256i u = _mm256_loadu_si256((const __m256i *)(src + i));
        __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), one);
        __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, bias), lsb), 16);
        __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs_mask), inf);
        __m256i q = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
        r = _mm256_blendv_epi8(r, q, nan);
        __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);
        _mm_storeu_si128((__m128i *)(h + i), _mm256_castsi256_si128(p));
    }
    for (; i < n; i++) {
        h[i] = inf_fp32_to_bf16(src[i]);
    }
}

// 32 int32 (four registers, elements in order) to 32 saturated bytes in order.
INF_INLINE __m256i pack_i32x32_i8(__m256i a, __m256i b, __m256i c, __m256i d) {
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// One Q8_0/Q8_1 block: quants into qs, returns d (fp32) and the sum of the quants.
INF_INLINE float q8_block_avx2(const float *src, int8_t *qs, int *sum) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 v0 = _mm256_loadu_ps(src), v1 = _mm256_loadu_ps(src + 8), v2 = _mm256_loadu_ps(src + 16),
           v3 = _mm256_loadu_ps(src + 24);
    __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                             _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
    float amax = hmax_ps(m);
    float d = amax / 127.0f;
    float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    __m256 vid = _mm256_set1_ps(id);
    __m256i q0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, vid)), q1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, vid));
    __m256i q2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, vid)), q3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, vid));
    *sum = hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(q0, q1), _mm256_add_epi32(q2, q3)));
    _mm256_storeu_si256((__m256i *)qs, pack_i32x32_i8(q0, q1, q2, q3));
    return d;
}

static void quantize_row_q8_0_avx2(const float *src, void *dst, int64_t n) {
    block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / QK8_0; i++, src += QK8_0) {
        int sum;
        float d = q8_block_avx2(src, b[i].qs, &sum);
        b[i].d = (uint16_t)_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    }
}

static void quantize_row_q8_1_avx2(const float *src, void *dst, int64_t n) {
    block_q8_1 *b = dst;
    for (int64_t i = 0; i < n / QK8_1; i++, src += QK8_1) {
        int sum;
        float d = q8_block_avx2(src, b[i].qs, &sum);
        b[i].d = (uint16_t)_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        b[i].s = (uint16_t)_cvtss_sh(d * (float)sum, _MM_FROUND_TO_NEAREST_INT);
    }
}

static void quantize_row_q8_K_avx2(const float *src, void *dst, int64_t n) {
    block_q8_K *b = dst;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < QK_K; j += 8) {
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(src + j)));
        }
        float amax = hmax_ps(m);
        if (amax == 0.0f) {
            memset(&b[i], 0, sizeof(b[i]));
            continue;
        }
        // The reference keeps the first element of largest magnitude (strict >), with its sign.
        __m256 va = _mm256_set1_ps(amax);
        int first = 0;
        for (int j = 0; j < QK_K; j += 8) {
            int k = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(src + j)), va, _CMP_EQ_OQ));
            if (k) {
                first = j + __builtin_ctz((unsigned)k);
                break;
            }
        }
        float iscale = -127.0f / src[first];
        __m256 vs = _mm256_set1_ps(iscale);
        const __m256i top = _mm256_set1_epi32(127);
        for (int j = 0; j < QK_K; j += 32) {
            __m256i q[4];
            for (int k = 0; k < 4; k++) {
                q[k] = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(vs, _mm256_loadu_ps(src + j + 8 * k))), top);
            }
            _mm256_storeu_si256((__m256i *)(b[i].qs + j), pack_i32x32_i8(q[0], q[1], q[2], q[3]));
            b[i].bsums[j / 16] = (int16_t)hsum_epi32(_mm256_add_epi32(q[0], q[1]));
            b[i].bsums[j / 16 + 1] = (int16_t)hsum_epi32(_mm256_add_epi32(q[2], q[3]));
        }
        b[i].d = 1.0f / iscale;
    }
}

// ---- float dot products: one row against C columns ----

INF_INLINE __m256 f16x8(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
INF_INLINE __m256 bf16x8(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

INF_INLINE __m256 float_load8(int kind, const void *p, int64_t i) {
    return kind == 0 ? _mm256_loadu_ps((const float *)p + i)
           : kind == 1 ? f16x8((const uint16_t *)p + i)
                       : bf16x8((const uint16_t *)p + i);
}

// kind: 0 F32, 1 F16, 2 BF16. Two accumulators per column for the FMA latency; the tail (n % 8) is scalar.
INF_INLINE void dot_float_cols(int kind, int64_t n, const void *w, const uint8_t *x, size_t xs, int C, float *out) {
    __m256 acc0[AVX2_COLS], acc1[AVX2_COLS];
    INF_UNROLL for (int c = 0; c < C; c++) {
        acc0[c] = acc1[c] = _mm256_setzero_ps();
    }
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        prefetch_ahead((const uint8_t *)w + i * (kind == 0 ? 4 : 2), 16 * (kind == 0 ? 4 : 2));
        __m256 w0 = float_load8(kind, w, i), w1 = float_load8(kind, w, i + 8);
        INF_UNROLL for (int c = 0; c < C; c++) {
            const uint8_t *xc = x + (size_t)c * xs;
            acc0[c] = _mm256_fmadd_ps(w0, float_load8(kind, xc, i), acc0[c]);
            acc1[c] = _mm256_fmadd_ps(w1, float_load8(kind, xc, i + 8), acc1[c]);
        }
    }
    for (; i + 8 <= n; i += 8) {
        __m256 w0 = float_load8(kind, w, i);
        INF_UNROLL for (int c = 0; c < C; c++) {
            acc0[c] = _mm256_fmadd_ps(w0, float_load8(kind, x + (size_t)c * xs, i), acc0[c]);
        }
    }
    for (int c = 0; c < C; c++) {
        const uint8_t *xc = x + (size_t)c * xs;
        float s = hsum_ps(_mm256_add_ps(acc0[c], acc1[c]));
        for (int64_t j = i; j < n; j++) {
            if (kind == 0) {
                s += ((const float *)w)[j] * ((const float *)xc)[j];
            } else if (kind == 1) {
                s += fp16_f32(((const uint16_t *)w)[j]) * fp16_f32(((const uint16_t *)xc)[j]);
            } else {
                s += inf_bf16_to_fp32(((const uint16_t *)w)[j]) * inf_bf16_to_fp32(((const uint16_t *)xc)[j]);
            }
        }
        out[c] = s;
    }
}

INF_INLINE void dot_f32_cols(int64_t n, const void *w, const uint8_t *x, size_t xs, int C, float *out) {
    dot_float_cols(0, n, w, x, xs, C, out);
}
INF_INLINE void dot_f16_cols(int64_t n, const void *w, const uint8_t *x, size_t xs, int C, float *out) {
    dot_float_cols(1, n, w, x, xs, C, out);
}
INF_INLINE void dot_bf16_cols(int64_t n, const void *w, const uint8_t *x, size_t xs, int C, float *out) {
    dot_float_cols(2, n, w, x, xs, C, out);
}

// ---- 32-element blocks ----

// [lo nibbles | hi nibbles] of 16 bytes: the 32 elements of a Q4/Q5 block in order.
INF_INLINE __m256i nibbles32(const uint8_t *p) {
    __m128i q = _mm_loadu_si128((const __m128i *)p);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0F));
}

// Byte j = 0x10 where bit j of the 32-bit qh is set (the 5th bit of Q5_0/Q5_1 element j).
INF_INLINE __m256i qh_bits32(const uint8_t *qh) {
    __m256i v = _mm256_set1_epi32((int)load_u32(qh));
    v = _mm256_shuffle_epi8(v, _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0));
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit), _mm256_set1_epi8(0x10));
}

INF_INLINE __m256i sum_pairs(__m256i p16) { return _mm256_madd_epi16(p16, _mm256_set1_epi16(1)); }

// Signed weights (value with offset removed): |w| against x with w's sign.
INF_INLINE __m256i dot_s8(__m256i aw, __m256i w, __m256i x) {
    return sum_pairs(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(x, w)));
}

// The Q8_0-activation types share one body: decode gives the signed weights of block i.
#define DOT_B32_SIGNED(name, wtype, decode)                                                                    \
    INF_INLINE void dot_##name##_cols(int64_t n, const void *w, const uint8_t *x, size_t xs, int C, float *out) { \
        const wtype *a = w;                                                                                    \
        __m256 acc[AVX2_COLS];                                                                                 \
        for (int c = 0; c < C; c++) {                                                                          \
            acc[c] = _mm256_setzero_ps();                                                                      \
        }                                                                                                      \
        for (int64_t i = 0; i < n / 32; i++) {                                                                 \
            prefetch_ahead(&a[i], sizeof(a[i]));                                                               \
            __m256i wq = decode(&a[i]);                                                                        \
            __m256i aw = _mm256_sign_epi8(wq, wq);                                                             \
            float dw = fp16_f32(a[i].d);                                                                       \
            for (int c = 0; c < C; c++) {                                                                      \
                const block_q8_0 *b = (const block_q8_0 *)(x + (size_t)c * xs) + i;                           \
                __m256i p = dot_s8(aw, wq, _mm256_loadu_si256((const __m256i *)b->qs));                        \
                acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * fp16_f32(b->d)), acc[c]);   \
            }                                                                                                  \
        }                                                                                                      \
        for (int c = 0; c < C; c++) {                                                                          \
            out[c] = hsum_ps(acc[c]);                                                                          \
        }                                                                                                      \
    }

INF_INLINE __m256i q4_0_signed(const block_q4_0 *b) { return _mm256_sub_epi8(nibbles32(b->qs), _mm256_set1_epi8(8)); }
INF_INLINE __m256i q5_0_signed(const block_q5_0 *b) {
    return _mm256_sub_epi8(_mm256_or_si256(nibbles32(b->qs), qh_bits32(b->qh)), _mm256_set1_epi8(16));
}
INF_INLINE __m256i q8_0_signed(const block_q8_0 *b) { return _mm256_loadu_si256((const __m256i *)b->qs); }

DOT_B32_SIGNED(q4_0, block_q4_0, q4_0_signed)
DOT_B32_SIGNED(q5_0, block_q5_0, q5_0_signed)
DOT_B32_SIGNED(q8_0, block_q8_0, q8_0_signed)

// Q4_1/Q5_1 against Q8_1: unsigned weights, plus min * s per block.
#define DOT_B32_MIN(name, wtype, decode)                                                                       \
    INF_INLINE void dot_##name##_cols(int64_t n, const void *w, const uint8_t *x, size_t xs, int C, float *out) { \
        const wtype *a = w;                                                                                    \
        __m256 acc[AVX2_COLS];                                                                                 \
        float msum[AVX2_COLS];                                                                                 \
        for (int c = 0; c < C; c++) {                                                                          \
            acc[c] = _mm256_setzero_ps();                                                                      \
            msum[c] = 0.0f;                                                                                    \
        }                                                                                                      \
        for (int64_t i = 0; i < n / 32; i++) {                                                                 \
            prefetch_ahead(&a[i], sizeof(a[i]));                                                               \
            __m256i wq = decode(&a[i]);                                                                        \
            float dw = fp16_f32(a[i].d), mw = fp16_f32(a[i].m);                                                \
            for (int c = 0; c < C; c++) {                                                                      \
                const block_q8_1 *b = (const block_q8_1 *)(x + (size_t)c * xs) + i;                           \
                __m256i p = sum_pairs(_mm256_maddubs_epi16(wq, _mm256_loadu_si256((const __m256i *)b->qs)));   \
                acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * fp16_f32(b->d)), acc[c]);   \
                msum[c] += mw * fp16_f32(b->s);                                                                \
            }                                                                                                  \
        }                                                                                                      \
        for (int c = 0; c < C; c++) {                                                                          \
            out[c] = hsum_ps(acc[c]) + msum[c];                                                                \
        }                                                                                                      \
    }

INF_INLINE __m256i q4_1_unsigned(const block_q4_1 *b) { return nibbles32(b->qs); }
INF_INLINE __m256i q5_1_unsigned(const block_q5_1 *b) { return _mm256_or_si256(nibbles32(b->qs), qh_bits32(b->qh)); }

DOT_B32_MIN(q4_1, block_q4_1, q4_1_unsigned)
DOT_B32_MIN(q5_1, block_q5_1, q5_1_unsigned)

// ---- K-quants ----
//
// Per 32-element chunk: vpmaddubsw of the unsigned weights against the Q8_K bytes, then vpmaddwd against
// the 16-bit scale of each lane (16-bit lanes 0-7 cover elements 0-15, lanes 8-15 elements 16-31, so
// scales per 16 or per 32 elements both fit). Mins and offsets come out through the Q8_K bsums.

// Q4_K/Q5_K 6-bit scales and mins: sc[0..7], m[0..7] as bytes of a 64-bit word each.
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

// From 16-bit scales s16 (16 lanes, one per 16-element group, the same 16 in both 128-bit halves: see
// scales_bcast), the vector for chunk j: lanes 0-7 group 2j, lanes 8-15 group 2j+1.
INF_INLINE __m256i k16_scale_chunk(__m256i s16x2, int j) {
    int lo = 2 * j, hi = 2 * j + 1;
    __m256i idx = _mm256_set_m128i(_mm_set1_epi16((short)(((2 * (hi % 8) + 1) << 8) | (2 * (hi % 8)))),
                                   _mm_set1_epi16((short)(((2 * (lo % 8) + 1) << 8) | (2 * (lo % 8)))));
    return _mm256_shuffle_epi8(s16x2, idx);
}

// The 16-bit scales of groups 8h..8h+7 in both 128-bit halves (h = 0 for chunks 0-3, 1 for 4-7).
INF_INLINE __m256i scales_half(__m256i s16, int h) {
    return h ? _mm256_permute2x128_si256(s16, s16, 0x11) : _mm256_permute2x128_si256(s16, s16, 0x00);
}

INF_INLINE __m256i bsums_dot(__m256i m16, const block_q8_K *b) {
    return _mm256_madd_epi16(m16, _mm256_loadu_si256((const __m256i *)b->bsums));
}

// Shared tail of the K-quant bodies: after a super-block, for column c, fold the integer sum isum (with the
// offset already taken out) and the mins sum msum into the column's accumulator.
INF_INLINE __m256 kq_fold(__m256 acc, __m256i isum, float d, __m256i msum, float dmin, float xd) {
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(d * xd), acc);
    return _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_set1_ps(dmin * xd), acc);
}

// Chunk decoders: 32 weights of chunk j (elements 32j..32j+31) as unsigned bytes.
// Q4_K/Q5_K low 4 bits: 32 bytes of qs per 64 elements, low nibbles first.
INF_INLINE __m256i k4_nibbles(const uint8_t *qs, int j) {
    __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * (j / 2)));
    return _mm256_and_si256(j % 2 ? _mm256_srli_epi16(q, 4) : q, _mm256_set1_epi8(0x0F));
}

INF_INLINE __m256i q4_K_chunk(const block_q4_K *b, int j) { return k4_nibbles(b->qs, j); }

// The 5th bit of element 32j + l is bit j of qh[l].
INF_INLINE __m256i q5_K_chunk(const block_q5_K *b, __m256i qh, int j) {
    __m256i hb = _mm256_and_si256(_mm256_srli_epi16(qh, j), _mm256_set1_epi8(1));
    return _mm256_or_si256(k4_nibbles(b->qs, j), _mm256_slli_epi16(hb, 4));
}

// Q6_K chunk j of half h = j/4: low nibble from ql[0..31] (j%4 = 0, 2 take low/high nibbles) or
// ql[32..63] (1, 3), high bits from qh[0..31] >> 2(j%4).
INF_INLINE __m256i q6_K_chunk(const block_q6_K *b, int j) {
    int h = j / 4, k = j % 4;
    __m256i ql = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h + 32 * (k % 2)));
    __m256i qh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
    __m256i lo = _mm256_and_si256(k >= 2 ? _mm256_srli_epi16(ql, 4) : ql, _mm256_set1_epi8(0x0F));
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), _mm256_set1_epi8(3));
    return _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
}

// Q3_K/Q2_K chunk j: half j/4, shift s = j%4: low 2 bits at bits 2s of qs[32h + l]; Q3_K's high bit of
// element 32j + l is bit j of hmask[l].
INF_INLINE __m256i k2_chunk(const uint8_t *qs, int j) {
    __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * (j / 4)));
    return _mm256_and_si256(_mm256_srli_epi16(q, 2 * (j % 4)), _mm256_set1_epi8(3));
}

INF_INLINE __m256i q3_K_chunk(const block_q3_K *b, __m256i hm, int j) {
    __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, j), _mm256_set1_epi8(1));
    return _mm256_or_si256(k2_chunk(b->qs, j), _mm256_slli_epi16(hb, 2));
}

INF_INLINE __m256i q8_K_chunk(const uint8_t *x, size_t xs, int c, int64_t i, int j) {
    const block_q8_K *b = (const block_q8_K *)(x + (size_t)c * xs) + i;
    return _mm256_loadu_si256((const __m256i *)(b->qs + 32 * j));
}

INF_INLINE const block_q8_K *q8_K_block(const uint8_t *x, size_t xs, int c, int64_t i) {
    return (const block_q8_K *)(x + (size_t)c * xs) + i;
}

INF_INLINE void dot_q4_K_cols(int64_t n, const void *w, const uint8_t *x, size_t xs, int C, float *out) {
    const block_q4_K *a = w;
    __m256 acc[AVX2_COLS];
    for (int c = 0; c < C; c++) {
        acc[c] = _mm256_setzero_ps();
    }
    for (int64_t i = 0; i < n / QK_K; i++) {
        prefetch_ahead(&a[i], sizeof(a[i]));
        uint64_t sc8, m8;
        k4_scales_unpack(a[i].scales, &sc8, &m8);
        __m128i s16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc8));
        __m128i mb = _mm_cvtsi64_si128((long long)m8);
        __m256i m16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mb, mb)); // m_j at groups 2j, 2j+1
        // Scales per 32: the 16-bit scale j for both lanes of chunk j.
        __m256i s16x2 = _mm256_set_m128i(s16, s16);
        __m256i isum[AVX2_COLS];
        for (int c = 0; c < C; c++) {
            isum[c] = _mm256_setzero_si256();
        }
        INF_UNROLL for (int j = 0; j < 8; j++) {
            __m256i wq = q4_K_chunk(&a[i], j);
            __m256i sc = _mm256_shuffle_epi8(s16x2, _mm256_set1_epi16((short)(((2 * j + 1) << 8) | (2 * j))));
            INF_UNROLL for (int c = 0; c < C; c++) {
                __m256i p = _mm256_maddubs_epi16(wq, q8_K_chunk(x, xs, c, i, j));
                isum[c] = _mm256_add_epi32(isum[c], _mm256_madd_epi16(p, sc));
            }
        }
        float d = fp16_f32(a[i].d), dmin = fp16_f32(a[i].dmin);
        for (int c = 0; c < C; c++) {
            const block_q8_K *b = q8_K_block(x, xs, c, i);
            acc[c] = kq_fold(acc[c], isum[c], d, bsums_dot(m16, b), dmin, b->d);
        }
    }
    for (int c = 0; c < C; c++) {
        out[c] = hsum_ps(acc[c]);
    }
}

INF_INLINE void dot_q5_K_cols(int64_t n, const void *w, const uint8_t *x, size_t xs, int C, float *out) {
    const block_q5_K *a = w;
    __m256 acc[AVX2_COLS];
    for (int c = 0; c < C; c++) {
        acc[c] = _mm256_setzero_ps();
    }
    for (int64_t i = 0; i < n / QK_K; i++) {
        prefetch_ahead(&a[i], sizeof(a[i]));
        uint64_t sc8, m8;
        k4_scales_unpack(a[i].scales, &sc8, &m8);
        __m128i s16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc8));
        __m128i mb = _mm_cvtsi64_si128((long long)m8);
        __m256i m16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mb, mb));
        __m256i s16x2 = _mm256_set_m128i(s16, s16);
        __m256i qh = _mm256_loadu_si256((const __m256i *)a[i].qh);
        __m256i isum[AVX2_COLS];
        for (int c = 0; c < C; c++) {
            isum[c] = _mm256_setzero_si256();
        }
        INF_UNROLL for (int j = 0; j < 8; j++) {
            __m256i wq = q5_K_chunk(&a[i], qh, j);
            __m256i sc = _mm256_shuffle_epi8(s16x2, _mm256_set1_epi16((short)(((2 * j + 1) << 8) | (2 * j))));
            INF_UNROLL for (int c = 0; c < C; c++) {
                __m256i p = _mm256_maddubs_epi16(wq, q8_K_chunk(x, xs, c, i, j));
                isum[c] = _mm256_add_epi32(isum[c], _mm256_madd_epi16(p, sc));
            }
        }
        float d = fp16_f32(a[i].d), dmin = fp16_f32(a[i].dmin);
        for (int c = 0; c < C; c++) {
            const block_q8_K *b = q8_K_block(x, xs, c, i);
            acc[c] = kq_fold(acc[c], isum[c], d, bsums_dot(m16, b), dmin, b->d);
        }
    }
    for (int c = 0; c < C; c++) {
        out[c] = hsum_ps(acc[c]);
    }
}

// Q6_K, Q3_K, Q2_K: 16 scales per super-block (one per 16 elements). Q6_K and Q3_K subtract an offset
// (32, 4) folded in as off * sum_g(sc_g * bsum_g); Q2_K has mins with their own factor dmin.
INF_INLINE void dot_k16_cols(int type, int64_t n, const void *w, const uint8_t *x, size_t xs, int C, float *out) {
    __m256 acc[AVX2_COLS];
    for (int c = 0; c < C; c++) {
        acc[c] = _mm256_setzero_ps();
    }
    size_t bsize = type == INF_TYPE_Q6_K ? sizeof(block_q6_K) : type == INF_TYPE_Q3_K ? sizeof(block_q3_K)
                                                                                      : sizeof(block_q2_K);
    for (int64_t i = 0; i < n / QK_K; i++) {
        prefetch_ahead((const uint8_t *)w + (size_t)i * bsize, bsize);
        __m256i s16, m16 = _mm256_setzero_si256(), hm = _mm256_setzero_si256();
        float d, dmin = 0.0f;
        int shift = 0;
        const void *blk;
        if (type == INF_TYPE_Q6_K) {
            const block_q6_K *b = (const block_q6_K *)w + i;
            s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
            d = fp16_f32(b->d);
            shift = 5;
            blk = b;
        } else if (type == INF_TYPE_Q3_K) {
            const block_q3_K *b = (const block_q3_K *)w + i;
            s16 = _mm256_cvtepi8_epi16(_mm_sub_epi8(k3_scales_unpack(b->scales), _mm_set1_epi8(32)));
            hm = _mm256_loadu_si256((const __m256i *)b->hmask);
            d = fp16_f32(b->d);
            shift = 2;
            blk = b;
        } else {
            const block_q2_K *b = (const block_q2_K *)w + i;
            __m128i s8 = _mm_loadu_si128((const __m128i *)b->scales);
            s16 = _mm256_cvtepu8_epi16(_mm_and_si128(s8, _mm_set1_epi8(0x0F)));
            m16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s8, 4), _mm_set1_epi8(0x0F)));
            d = fp16_f32(b->d);
            dmin = fp16_f32(b->dmin);
            blk = b;
        }
        __m256i isum[AVX2_COLS];
        for (int c = 0; c < C; c++) {
            isum[c] = _mm256_setzero_si256();
        }
        INF_UNROLL for (int h = 0; h < 2; h++) {
            __m256i sh = scales_half(s16, h);
            INF_UNROLL for (int j = 4 * h; j < 4 * h + 4; j++) {
                __m256i wq = type == INF_TYPE_Q6_K   ? q6_K_chunk(blk, j)
                             : type == INF_TYPE_Q3_K ? q3_K_chunk(blk, hm, j)
                                                     : k2_chunk(((const block_q2_K *)blk)->qs, j);
                __m256i sc = k16_scale_chunk(sh, j);
                INF_UNROLL for (int c = 0; c < C; c++) {
                    __m256i p = _mm256_maddubs_epi16(wq, q8_K_chunk(x, xs, c, i, j));
                    isum[c] = _mm256_add_epi32(isum[c], _mm256_madd_epi16(p, sc));
                }
            }
        }
        for (int c = 0; c < C; c++) {
            const block_q8_K *b = q8_K_block(x, xs, c, i);
            if (type == INF_TYPE_Q2_K) {
                acc[c] = kq_fold(acc[c], isum[c], d, bsums_dot(m16, b), dmin, b->d);
            } else {
                __m256i corr = _mm256_slli_epi32(bsums_dot(s16, b), shift);
                acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(isum[c], corr)),
                                         _mm256_set1_ps(d * b->d), acc[c]);
            }
        }
    }
    for (int c = 0; c < C; c++) {
        out[c] = hsum_ps(acc[c]);
    }
}

INF_INLINE void dot_q6_K_cols(int64_t n, const void *w, const uint8_t *x, size_t xs, int C, float *out) {
    dot_k16_cols(INF_TYPE_Q6_K, n, w, x, xs, C, out);
}
INF_INLINE void dot_q3_K_cols(int64_t n, const void *w, const uint8_t *x, size_t xs, int C, float *out) {
    dot_k16_cols(INF_TYPE_Q3_K, n, w, x, xs, C, out);
}
INF_INLINE void dot_q2_K_cols(int64_t n, const void *w, const uint8_t *x, size_t xs, int C, float *out) {
    dot_k16_cols(INF_TYPE_Q2_K, n, w, x, xs, C, out);
}

// ---- vec_dot and gemm from the column bodies ----

#define AVX2_KERNELS(name)                                                                                     \
    static float vec_dot_##name##_avx2(int64_t n, const void *w, const void *x) {                             \
        float r;                                                                                               \
        dot_##name##_cols(n, w, x, 0, 1, &r);                                                                  \
        return r;                                                                                              \
    }                                                                                                          \
    static void dot_##name##_c4(int64_t n, const void *w, const uint8_t *x, size_t xs, float *out) {          \
        dot_##name##_cols(n, w, x, xs, AVX2_COLS, out);                                                        \
    }                                                                                                          \
    static void gemm_##name##_avx2(int64_t n, const void *w, size_t ws, int nrows, const void *x, size_t xs,    \
                                   int ncols, float *y, size_t ys) {                                          \
        const uint8_t *wb = w, *xb = x;                                                                        \
        for (int r = 0; r < nrows; r++) {                                                                      \
            const uint8_t *wr = wb + (size_t)r * ws;                                                           \
            int c = 0;                                                                                         \
            for (; c + AVX2_COLS <= ncols; c += AVX2_COLS) {                                                   \
                float out[AVX2_COLS];                                                                          \
                dot_##name##_c4(n, wr, xb + (size_t)c * xs, xs, out);                                          \
                for (int k = 0; k < AVX2_COLS; k++) {                                                          \
                    y[(size_t)(c + k) * ys + (size_t)r] = out[k];                                              \
                }                                                                                              \
            }                                                                                                  \
            for (; c < ncols; c++) {                                                                           \
                y[(size_t)c * ys + (size_t)r] = vec_dot_##name##_avx2(n, wr, xb + (size_t)c * xs);             \
            }                                                                                                  \
        }                                                                                                      \
    }

AVX2_KERNELS(f32)
AVX2_KERNELS(f16)
AVX2_KERNELS(bf16)
AVX2_KERNELS(q4_0)
AVX2_KERNELS(q4_1)
AVX2_KERNELS(q5_0)
AVX2_KERNELS(q5_1)
AVX2_KERNELS(q8_0)
AVX2_KERNELS(q2_K)
AVX2_KERNELS(q3_K)
AVX2_KERNELS(q4_K)
AVX2_KERNELS(q5_K)
AVX2_KERNELS(q6_K)

void inf_cpu_kernels_fill_avx2(inf_cpu_kernels *k, const inf_cpu_features *f) {
    (void)f;
    k->quantize[INF_TYPE_F16] = quantize_row_f16_avx2;
    k->quantize[INF_TYPE_BF16] = quantize_row_bf16_avx2;
    k->quantize[INF_TYPE_Q8_0] = quantize_row_q8_0_avx2;
    k->quantize[INF_TYPE_Q8_1] = quantize_row_q8_1_avx2;
    k->quantize[INF_TYPE_Q8_K] = quantize_row_q8_K_avx2;

#define SET(T, name)                                                                                           \
    k->vec_dot[T] = vec_dot_##name##_avx2;                                                                     \
    k->gemm[T] = gemm_##name##_avx2;
    SET(INF_TYPE_F32, f32)
    SET(INF_TYPE_F16, f16)
    SET(INF_TYPE_BF16, bf16)
    SET(INF_TYPE_Q4_0, q4_0)
    SET(INF_TYPE_Q4_1, q4_1)
    SET(INF_TYPE_Q5_0, q5_0)
    SET(INF_TYPE_Q5_1, q5_1)
    SET(INF_TYPE_Q8_0, q8_0)
    SET(INF_TYPE_Q2_K, q2_K)
    SET(INF_TYPE_Q3_K, q3_K)
    SET(INF_TYPE_Q4_K, q4_K)
    SET(INF_TYPE_Q5_K, q5_K)
    SET(INF_TYPE_Q6_K, q6_K)
#undef SET
}
