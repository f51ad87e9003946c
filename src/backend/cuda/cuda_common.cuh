// cuda_common.cuh: what the CUDA backend's translation units share: the type ids and device layouts, the
// device matrices (dmat, cmat, dlayer) and the device helpers the per-op kernels (cuda_backend.cu) and the
// persistent decode kernel (decode_persistent.cuh, instantiated in decode_persistent_*.cu) both use.
// Everything here is a type, a macro, or an inline or static function: each unit compiles its own copy.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

// ggml type ids (quant/quant.h, which is C11 and not included here).
enum { T_F32 = 0, T_F16 = 1, T_Q4_0 = 2, T_Q8_0 = 8, T_Q4_K = 12, T_Q6_K = 14 };

// Block layouts in the file, bit-exact with quant/quant.h (ggml-common.h):
//   Q4_0 (18 B / 32): f16 d, 16 B nibbles (low nibble = element i, high = i + 16); w = (q - 8) * d
//   Q8_0 (34 B / 32): f16 d, 32 int8; w = q * d
//   Q4_K (144 B / 256): f16 d, f16 dmin, 12 B packed 6-bit scales/mins (8 of each), 128 B nibbles
//   Q6_K (210 B / 256): 128 B low nibbles, 64 B high 2-bit pairs, 16 int8 scales, f16 d
// On the device Q4_0, Q8_0 and Q6_K are repacked: a plane of quants (16, 32 and 208 bytes a block, so every
// block starts on 16 bytes) and a plane of the f16 scales d, one row of each per matrix row. Q4_K (144 B, a
// multiple of 16), F16 and F32 keep the file's rows, padded to 16 bytes.
#define BYTES_Q4_0 18
#define BYTES_Q8_0 34
#define BYTES_Q4_K 144
#define BYTES_Q6_K 210
#define QBYTES_Q6_K 208 // Q6_K quants and scales without d

#define ALIGN 256 // sub-allocation alignment inside device buffers

__host__ __device__ static inline uint64_t align_up(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

typedef struct {
    int type;
    int n_in, n_out;
    uint64_t pitch;     // bytes between rows of the quant plane
    const uint8_t *d;   // quant plane
    const __half *s;    // scale plane (Q4_0, Q8_0, Q6_K) or NULL
    int spitch;         // scales between rows of the scale plane (a multiple of 8; 0: no scale plane)
    const __half *h;    // quantized types: the model's F16 copy (n_out rows of n_in) once made, else NULL
} dmat;

// A column copy of a quantized matrix, for products split over its columns (the persistent decode kernel's wo
// and down: each block multiplies a slice of the columns and adds its part of every row atomically). Columns go
// in units of 16; the planes are unit-major, so one unit of 4 consecutive rows is one 16-byte aligned piece and a
// run of units of all rows is contiguous. Per (row, unit), q holds qb bytes:
//   Q4_0, Q4_K (qb 8): byte j = value j | value (j + 8) << 4 (values 0..15);
//   Q6_K (qb 12): the low nibbles as above, then a word whose byte i, bits 2k..2k+1, are the high bits of value
//                 4k + i (values 0..63);
//   Q8_0 (qb 16): the 16 int8 values;
//   F16 (qb 32): the 16 halves.
// sub: Q4_K the 6-bit (scale, min) pair of each 32 columns, [u / 2][row] (2 bytes); Q6_K the int8 scale of each
// unit, [u][row]; else NULL. d: Q4_K (d, dmin) of each 256 columns, [u / 16][row] (2 halves); Q6_K d of each 256,
// [u / 16][row]; Q4_0 and Q8_0 d of each 32, [u / 2][row]; F16 none. Weights: Q4_K d * sc * q - dmin * m; Q6_K
// d * sc * (q - 32); Q4_0 d * (q - 8); Q8_0 d * q (the file's values exactly).
typedef struct {
    int type, n_in, n_out; // type 0 (T_F32): no copy
    const uint8_t *q, *sub;
    const __half *d;
} cmat;

// Bytes a (row, unit) takes in a column copy's q plane.
__host__ __device__ static inline int col_qb(int t) { return t == T_F16 ? 32 : t == T_Q6_K ? 12 : t == T_Q8_0 ? 16 : 8; }
// Bytes of each plane of the column copy of an n_out x n_in matrix of type t (each 256-aligned; a copy's planes
// q, sub, d follow each other in one allocation).
__host__ __device__ static inline void col_planes(int t, int n_in, int n_out, uint64_t *q, uint64_t *sub, uint64_t *d) {
    const uint64_t U = (uint64_t)n_in / 16, R = (uint64_t)n_out;
    *q = align_up(U * R * (uint64_t)col_qb(t), ALIGN);
    *sub = t == T_Q4_K ? align_up(U / 2 * R * 2, ALIGN) : t == T_Q6_K ? align_up(U * R, ALIGN) : 0;
    *d = t == T_Q4_K ? align_up(U / 16 * R * 4, ALIGN)
         : t == T_Q6_K ? align_up(U / 16 * R * 2, ALIGN)
         : t == T_F16  ? 0
                       : align_up(U / 2 * R * 2, ALIGN);
}

typedef struct {
    const float *attn_norm, *ffn_norm, *bq, *bk, *bv;
    dmat wq, wk, wv, wo, gate, up, down;
    cmat wo_c, down_c; // column copies (col_acquire), or type 0
} dlayer;

// ---------------------------------------------------------------------------------------------------------
// Kernels: helpers
// ---------------------------------------------------------------------------------------------------------
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ int warp_sum_int(int v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ __forceinline__ float ld_half(const uint8_t *p) { return __half2float(*(const __half *)p); }

// Two F16 values packed in a word (low half first) as floats.
__device__ __forceinline__ float2 h2f(unsigned u) {
    return __half22float2(__halves2half2(__ushort_as_half((unsigned short)(u & 0xffffu)),
                                         __ushort_as_half((unsigned short)(u >> 16))));
}

// Programmatic dependent launch (sm_90): a kernel launched with the attribute may start while the one before
// it finishes; pdl_wait() blocks until that one has completed and its writes are visible (a no-op without
// the attribute, and on older cards). Every kernel of the decode path waits first, then lets its own
// dependents launch (they wait in turn), so the next kernel's blocks are resident when this one ends.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
}

// Quantizes one value per lane of a warp (32 consecutive elements) as a Q8_1-like block: q = round(v / d)
// with d = max|v| / 127, and (d, d * sum(q)) in ds.
__device__ __forceinline__ void warp_quant(float v, int8_t *q, float2 *ds, int lane) {
    float amax = warp_max(fabsf(v));
    float d = amax / 127.0f;
    int qi = __float2int_rn(v * (amax > 0.0f ? 127.0f / amax : 0.0f)); // x * (127 / amax), as the CPU quantizes
    q[lane] = (int8_t)qi;
    int sum = warp_sum_int(qi);
    if (lane == 0) *ds = make_float2(d, d * (float)sum);
}

// Sum over the block (blockDim.x a multiple of 32, <= 1024); every thread gets it.
static __device__ float block_sum(float s) {
    __shared__ float part[32];
    __syncthreads(); // part may still be read from a previous call
    s = warp_sum(s);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = s;
    __syncthreads();
    // Every warp reduces the partials with shuffles instead of a serial sum over them.
    const int nw = (int)(blockDim.x >> 5), lane = (int)(threadIdx.x & 31);
    return warp_sum(lane < nw ? part[lane] : 0.0f);
}

// Quantizes 8 consecutive values per thread, chunk c of a row, where the 4 threads of lanes 4k..4k+3 hold one
// 32-value block: q = round(v / d), d = max|v| / 127 over the block, into xq (the row's 8-bit values) and
// xds (the row's (d, d * sum(q)) per block). Every lane of the warp calls it (the shuffles); ok: whether this
// thread's chunk exists (the 4 threads of a block agree).
__device__ __forceinline__ void quant8_group(const float (&v)[8], bool ok, int c, int8_t *xq, float2 *xds) {
    float amax = 0.0f;
#pragma unroll
    for (int i = 0; i < 8; i++) amax = fmaxf(amax, fabsf(v[i]));
    amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 1));
    amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 2));
    // One division for the block (the CPU quantizes with the same reciprocal); eight were a fifth of a stage.
    const float d = amax / 127.0f, id = amax > 0.0f ? 127.0f / amax : 0.0f;
    int sum = 0;
    unsigned lo = 0, hi = 0;
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const int q = __float2int_rn(v[i] * id);
        sum += q;
        if (i < 4) lo |= (unsigned)(q & 0xff) << (8 * i);
        else hi |= (unsigned)(q & 0xff) << (8 * (i - 4));
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    if (ok) {
        ((uint2 *)xq)[c] = make_uint2(lo, hi);
        if ((c & 3) == 0) xds[c >> 2] = make_float2(d, d * (float)sum);
    }
}

// The activation operand of a matrix-vector product: token t's 8-bit values at q + t * n_in, their block
// scales at ds + t * (n_in / 32), its F32 values at f + t * n_in (F16 and F32 weights read f).
typedef struct {
    const int8_t *q;
    const float2 *ds;
    const float *f;
    int n_in;
} xop;

__device__ __forceinline__ int dot_i8(int4 a, int4 b, int s) {
    s = __dp4a(a.x, b.x, s);
    s = __dp4a(a.y, b.y, s);
    s = __dp4a(a.z, b.z, s);
    return __dp4a(a.w, b.w, s);
}

// dp4a of the nibbles (q >> shift) & 15 of 16 bytes against 16 int8.
__device__ __forceinline__ int dot_nib(uint4 q, int4 x, int shift, int s) {
    const unsigned M = 0x0F0F0F0Fu;
    s = __dp4a((int)((q.x >> shift) & M), x.x, s);
    s = __dp4a((int)((q.y >> shift) & M), x.y, s);
    s = __dp4a((int)((q.z >> shift) & M), x.z, s);
    return __dp4a((int)((q.w >> shift) & M), x.w, s);
}

// Q6_K: four bytes of group k (0..3) of a lane's 16 values as unsigned q (0..63, so also valid as signed
// bytes for dp4a), from low nibbles a (ql[l]), b (ql[l + 32]) and the 2-bit pairs h (qh[l]). The offset of 32
// is taken off the dot product once (32 times the sum of the activations) instead of from every byte.
__device__ __forceinline__ int q6_word(unsigned a, unsigned b, unsigned h, int k) {
    const unsigned M = 0x0F0F0F0Fu, H = 0x30303030u;
    return (int)(k == 0 ? (a & M) | ((h << 4) & H)
               : k == 1 ? (b & M) | ((h << 2) & H)
               : k == 2 ? ((a >> 4) & M) | (h & H)
                        : ((b >> 4) & M) | ((h >> 2) & H));
}

__device__ __forceinline__ int4 q6_group(uint4 a, uint4 b, uint4 h, int k) {
    return make_int4(q6_word(a.x, b.x, h.x, k), q6_word(a.y, b.y, h.y, k), q6_word(a.z, b.z, h.z, k),
                     q6_word(a.w, b.w, h.w, k));
}

// Partial dot products of R rows (w[r]: row start in the quant plane, s[r]: its scales) with NT tokens of x
// (T of them valid), summed per lane into acc; the caller reduces over the warp. Lanes take 16-byte pieces
// of the row: one Q4_0 block, half a Q8_0 block, a quarter of a Q4_K or Q6_K super-block (64 weights), 8
// F16 or 4 F32 values.
// Loads of the activation operand (XS) and of the weights (WS): through the read-only path from global memory,
// or plain loads when they are in shared memory (the persistent decode kernel), where __ldg would be wrong.
template <bool XS, typename V> __device__ __forceinline__ V ldx(const V *p) {
    if constexpr (XS) return *p;
    else return __ldg(p);
}

template <int TYPE, int R, int NT, bool XS = false, bool WS = false, int U = 2>
__device__ __forceinline__ void dot_rows(const uint8_t *const (&w)[R], const __half *const (&s)[R], const xop &x,
                                         int T, int lane, float (&acc)[R][NT]) {
    const int n = x.n_in;
    if constexpr (TYPE == T_Q4_0) {
        const int nb = n >> 5;
#pragma unroll 2
        for (int b = lane; b < nb; b += 32) {
            uint4 wv[R];
            float dw[R];
#pragma unroll
            for (int r = 0; r < R; r++) {
                wv[r] = ldx<WS>((const uint4 *)w[r] + b);
                dw[r] = __half2float(ldx<WS>(s[r] + b));
            }
#pragma unroll
            for (int t = 0; t < NT; t++) {
                if (t >= T) break;
                const int4 *xp = (const int4 *)(x.q + (size_t)t * n) + 2 * b;
                int4 x0 = ldx<XS>(xp), x1 = ldx<XS>(xp + 1);
                float2 ds = ldx<XS>(x.ds + (size_t)t * nb + b);
#pragma unroll
                for (int r = 0; r < R; r++) {
                    int si = dot_nib(wv[r], x1, 4, dot_nib(wv[r], x0, 0, 0));
                    acc[r][t] += dw[r] * (ds.x * (float)si - 8.0f * ds.y);
                }
            }
        }
    } else if constexpr (TYPE == T_Q8_0) {
        const int nb = n >> 5, nh = 2 * nb;
#pragma unroll U
        for (int u = lane; u < nh; u += 32) {
            const int b = u >> 1;
            int4 wv[R];
            float dw[R];
#pragma unroll
            for (int r = 0; r < R; r++) {
                wv[r] = ldx<WS>((const int4 *)w[r] + u);
                dw[r] = __half2float(ldx<WS>(s[r] + b));
            }
#pragma unroll
            for (int t = 0; t < NT; t++) {
                if (t >= T) break;
                int4 xv = ldx<XS>((const int4 *)(x.q + (size_t)t * n) + u);
                float dx = ldx<XS>(x.ds + (size_t)t * nb + b).x;
#pragma unroll
                for (int r = 0; r < R; r++) acc[r][t] += dw[r] * dx * (float)dot_i8(wv[r], xv, 0);
            }
        }
    } else if constexpr (TYPE == T_Q4_K) {
        // Lane piece u: super-block u / 4, 32-byte group g = u % 4 of its nibbles: sub-block 2g in the low
        // nibbles, 2g + 1 in the high ones.
        const int nsb = n >> 8, nu = 4 * nsb, nb = n >> 5;
        for (int u = lane; u < nu; u += 32) {
            const int sb = u >> 2, g = u & 3;
            uint4 hdr[R], q0[R], q1[R];
#pragma unroll
            for (int r = 0; r < R; r++) {
                const uint4 *B = (const uint4 *)(w[r] + (size_t)sb * BYTES_Q4_K);
                hdr[r] = ldx<WS>(B);
                q0[r] = ldx<WS>(B + 1 + 2 * g);
                q1[r] = ldx<WS>(B + 2 + 2 * g);
            }
            float sc0[R], sc1[R], mn0[R], mn1[R], dd[R], dm[R];
#pragma unroll
            for (int r = 0; r < R; r++) {
                // scales[12] are header bytes 4..15: words y (0..3), z (4..7), w (8..11). Sub-blocks 2g and
                // 2g + 1 take bytes 2(g & 1) and 2(g & 1) + 1 of them: 6-bit scales and mins in y and z for g < 2,
                // else 4 low bits from w and 2 high bits from the top of y and z. Both forms are computed and one
                // selected (no divergence between the lanes of a super-block).
                const int sh = 16 * (g & 1);
                const unsigned hy = hdr[r].y >> sh, hz = hdr[r].z >> sh, hw = hdr[r].w >> sh;
                const unsigned sp = g < 2 ? hy & 0x3F3Fu : (hw & 0x0F0Fu) | ((hy >> 2) & 0x3030u);
                const unsigned mp = g < 2 ? hz & 0x3F3Fu : ((hw >> 4) & 0x0F0Fu) | ((hz >> 2) & 0x3030u);
                sc0[r] = (float)(sp & 0xFFu), sc1[r] = (float)(sp >> 8 & 0xFFu);
                mn0[r] = (float)(mp & 0xFFu), mn1[r] = (float)(mp >> 8 & 0xFFu);
                const float2 f = h2f(hdr[r].x);
                dd[r] = f.x, dm[r] = f.y;
            }
#pragma unroll
            for (int t = 0; t < NT; t++) {
                if (t >= T) break;
                const int4 *xp = (const int4 *)(x.q + (size_t)t * n + (size_t)sb * 256 + 64 * g);
                int4 x0a = ldx<XS>(xp), x0b = ldx<XS>(xp + 1), x1a = ldx<XS>(xp + 2), x1b = ldx<XS>(xp + 3);
                const float2 *dsp = x.ds + (size_t)t * nb + 8 * sb + 2 * g;
                float2 ds0 = ldx<XS>(dsp), ds1 = ldx<XS>(dsp + 1);
#pragma unroll
                for (int r = 0; r < R; r++) {
                    int s0 = dot_nib(q1[r], x0b, 0, dot_nib(q0[r], x0a, 0, 0));
                    int s1 = dot_nib(q1[r], x1b, 4, dot_nib(q0[r], x1a, 4, 0));
                    acc[r][t] += dd[r] * (sc0[r] * ds0.x * (float)s0 + sc1[r] * ds1.x * (float)s1) -
                                 dm[r] * (mn0[r] * ds0.y + mn1[r] * ds1.y);
                }
            }
        }
    } else if constexpr (TYPE == T_Q6_K) {
        // Lane piece u: super-block u / 4, half n = (u % 4) / 2 (128 values), l in [l0, l0 + 16) with
        // l0 = 16 * (u % 2): values 128n + 32k + l for k = 0..3, scale sc[8n + l0 / 16 + 2k].
        const int nsb = n >> 8, nu = 4 * nsb, nb = n >> 5;
        for (int u = lane; u < nu; u += 32) {
            const int sb = u >> 2, v = u & 3, hn = v >> 1, is = v & 1, l0 = 16 * is;
            uint4 qa[R], qb[R], qh[R];
            uint2 scw[R];
            float dw[R];
#pragma unroll
            for (int r = 0; r < R; r++) {
                const uint8_t *B = w[r] + (size_t)sb * QBYTES_Q6_K;
                qa[r] = ldx<WS>((const uint4 *)(B + 64 * hn + l0));
                qb[r] = ldx<WS>((const uint4 *)(B + 64 * hn + 32 + l0));
                qh[r] = ldx<WS>((const uint4 *)(B + 128 + 32 * hn + l0));
                scw[r] = ldx<WS>((const uint2 *)(B + 192 + 8 * hn));
                dw[r] = __half2float(ldx<WS>(s[r] + sb));
            }
#pragma unroll
            for (int t = 0; t < NT; t++) {
                if (t >= T) break;
                const int8_t *xb = x.q + (size_t)t * n + (size_t)sb * 256 + 128 * hn + l0;
                const float2 *dsp = x.ds + (size_t)t * nb + 8 * sb + 4 * hn;
                int4 xv[4];
                float dx[4];
                int xs32[4]; // 32 times the sum of each group's 16 activations
#pragma unroll
                for (int k = 0; k < 4; k++) {
                    xv[k] = ldx<XS>((const int4 *)(xb + 32 * k));
                    dx[k] = ldx<XS>(dsp + k).x;
                    xs32[k] = 32 * dot_i8(make_int4(0x01010101, 0x01010101, 0x01010101, 0x01010101), xv[k], 0);
                }
#pragma unroll
                for (int r = 0; r < R; r++) {
                    float a = 0.0f;
#pragma unroll
                    for (int k = 0; k < 4; k++) {
                        const unsigned word = k < 2 ? scw[r].x : scw[r].y;
                        const int sc = (int)(int8_t)(word >> (8 * (is + 2 * (k & 1))));
                        a += dx[k] * (float)(sc * (dot_i8(q6_group(qa[r], qb[r], qh[r], k), xv[k], 0) - xs32[k]));
                    }
                    acc[r][t] += dw[r] * a;
                }
            }
        }
    } else if constexpr (TYPE == T_F16) {
        if ((n & 7) == 0) {
            const int ng = n >> 3;
#pragma unroll U
            for (int g = lane; g < ng; g += 32) {
                uint4 wv[R];
#pragma unroll
                for (int r = 0; r < R; r++) wv[r] = ldx<WS>((const uint4 *)w[r] + g);
#pragma unroll
                for (int t = 0; t < NT; t++) {
                    if (t >= T) break;
                    const float4 *xp = (const float4 *)(x.f + (size_t)t * n) + 2 * g;
                    float4 xa = ldx<XS>(xp), xb = ldx<XS>(xp + 1);
#pragma unroll
                    for (int r = 0; r < R; r++) {
                        float2 f0 = h2f(wv[r].x), f1 = h2f(wv[r].y), f2 = h2f(wv[r].z), f3 = h2f(wv[r].w);
                        acc[r][t] += f0.x * xa.x + f0.y * xa.y + f1.x * xa.z + f1.y * xa.w + f2.x * xb.x + f2.y * xb.y +
                                     f3.x * xb.z + f3.y * xb.w;
                    }
                }
            }
        } else {
            for (int i = lane; i < n; i += 32)
#pragma unroll
                for (int r = 0; r < R; r++) {
                    float wv = __half2float(((const __half *)w[r])[i]);
#pragma unroll
                    for (int t = 0; t < NT; t++) {
                        if (t >= T) break;
                        acc[r][t] += wv * x.f[(size_t)t * n + i];
                    }
                }
        }
    } else { // T_F32
        if ((n & 3) == 0) {
            const int ng = n >> 2;
#pragma unroll 2
            for (int g = lane; g < ng; g += 32) {
                float4 wv[R];
#pragma unroll
                for (int r = 0; r < R; r++) wv[r] = ldx<WS>((const float4 *)w[r] + g);
#pragma unroll
                for (int t = 0; t < NT; t++) {
                    if (t >= T) break;
                    float4 xv = ldx<XS>((const float4 *)(x.f + (size_t)t * n) + g);
#pragma unroll
                    for (int r = 0; r < R; r++)
                        acc[r][t] += wv[r].x * xv.x + wv[r].y * xv.y + wv[r].z * xv.z + wv[r].w * xv.w;
                }
            }
        } else {
            for (int i = lane; i < n; i += 32)
#pragma unroll
                for (int r = 0; r < R; r++) {
                    float wv = ((const float *)w[r])[i];
#pragma unroll
                    for (int t = 0; t < NT; t++) {
                        if (t >= T) break;
                        acc[r][t] += wv * x.f[(size_t)t * n + i];
                    }
                }
        }
    }
}

// Local pair index p of matrix mat (0 q, 1 k, 2 v) -> its two rows and the RoPE pair it rotates (-1: none).
// Pair p of q or k: rows (2p, 2p + 1) of a head (normal RoPE), or (p, p + n_rot / 2) (NeoX) with the
// unrotated tail in consecutive pairs; so whoever takes a pair owns both values of its rotation. v: (2p, 2p + 1).
__device__ __forceinline__ void qkv_pair_rows(int hd, int n_rot, bool neox, int mat, int local, int &r0, int &r1,
                                              int &rot) {
    rot = -1;
    if (mat < 2) {
        const int half = hd >> 1, hh = local / half, p = local - hh * half, hr = n_rot >> 1;
        if (neox && p < hr) r0 = hh * hd + p, r1 = r0 + hr;
        else if (neox) r0 = hh * hd + n_rot + 2 * (p - hr), r1 = r0 + 1;
        else r0 = hh * hd + 2 * p, r1 = r0 + 1;
        if (p < hr) rot = p;
    } else {
        r0 = 2 * local, r1 = r0 + 1;
    }
}

// One warp's online softmax over the keys jb0 + slot, jb0 + step + slot, ... below j1 of a sequence (cells:
// its position -> cell table): hd / 8 lanes a key (each 8 values of q, K and V at head_off), 32 / lpk keys an
// iteration, each lane group with its own (m, l, acc). Every lane runs the same iterations (the shuffles need
// the whole warp); lanes past the end take part in the shuffles only. K and V are read through L2 (the
// persistent kernel reads rows written in the same launch).
__device__ __forceinline__ void attend_keys(const float (&qv)[8], const __half *kc, const __half *vc,
                                            const int32_t *cells, int KV, size_t head_off, int jb0, int j1,
                                            int step, int lpk, int slot, float &m, float &l, float (&acc)[8]) {
    for (int jb = jb0; jb < j1; jb += step) {
        const int j = jb + slot;
        const bool valid = j < j1;
        float s = 0.0f;
        uint4 vraw = make_uint4(0, 0, 0, 0);
        if (valid) {
            const size_t off = (size_t)cells[j] * KV + head_off;
            const uint4 kraw = __ldcg((const uint4 *)(kc + off));
            vraw = __ldcg((const uint4 *)(vc + off));
            const unsigned kw[4] = {kraw.x, kraw.y, kraw.z, kraw.w};
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const float2 kf = h2f(kw[i]);
                s += qv[2 * i] * kf.x + qv[2 * i + 1] * kf.y;
            }
        }
        for (int o = lpk >> 1; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o, lpk);
        if (!valid) continue;
        const unsigned vw[4] = {vraw.x, vraw.y, vraw.z, vraw.w};
        const float m_new = fmaxf(m, s), corr = expf(m - m_new), p = expf(s - m_new);
        l = l * corr + p;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const float2 vf = h2f(vw[i]);
            acc[2 * i] = acc[2 * i] * corr + p * vf.x;
            acc[2 * i + 1] = acc[2 * i + 1] * corr + p * vf.y;
        }
        m = m_new;
    }
}

__device__ __forceinline__ unsigned half2_bits(float x, float y) {
    __half2 h = __floats2half2_rn(x, y);
    return *(unsigned *)&h;
}

// c (16 x 8, F32) += a (16 x 16, F16, row-major fragments) . b (16 x 8, F16, column fragments)
__device__ __forceinline__ void mma_16816(float (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

// c (16 x 8, F32) += a (16 x 8, F16, row-major fragments) . b (8 x 8, F16, column fragment)
__device__ __forceinline__ void mma_1688(float (&c)[4], unsigned a0, unsigned a1, unsigned b0) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a0), "r"(a1), "r"(b0));
#endif
}
