// decode_persistent.cuh: the persistent decode kernel (its host-side declarations: decode_persistent.h; its
// device helpers, dmat and dlayer: cuda_common.cuh), included by the translation units that instantiate it
// (decode_persistent_*.cu: PD_KSET, below). A decode step of one token runs as ONE launch: every block of a grid
// that fills the card (co-resident, launched cooperatively) walks all GPU layers and the output head, and
// the phases of a layer are separated by grid-wide barriers instead of kernel boundaries.
//
// Why: a decode step of a 1B model is ~100-180 small kernels; each boundary costs a drain, a launch and a
// ramp-up of a few microseconds, which is most of a step (bench/NOTES.md, CUDA). Here a boundary is a
// barrier (one release-add a block, acquire polls) and nothing drains between phases of one block.
//
// Phases of a layer (5 grid barriers):
//   qkv:       each block RMSNorms the residual x into its shared memory (8-bit blocks and F32, every block
//              redundantly: one L2 round trip instead of a barrier), then its warps take RoPE pairs of q/k/v
//              rows (bias, RoPE, q to global, k and v into the F16 cache)                          | barrier
//   attention: a block per (head, key split): one split a head while the cache holds <= 128 positions (the
//              head's output is then final), else as many as the grid holds, each a partial (max, sum,
//              unnormalized output) merged by every block as it stages the wo input            | barrier
//   wo:        each block stages the attention output (or merges the partials) in shared memory; warps take
//              rows, x += wo . a                                                                | barrier
//   gate/up:   each block RMSNorms x (ffn_norm) into shared memory; warps take 2-row pairs of gate and up,
//              h = silu(g) * u to global (F32)                                                  | barrier
//   down:      each block quantizes h into shared memory; warps take rows, x += down . h        | barrier
// then the output norm (every block) and the head's rows over all warps.
// Split-K (the default where the model's column copies of wo and down exist, cmat in cuda_backend.cu; off with
// INFERNO_CUDA_PD_SPLITK=0 or the ring): 3 grid barriers a layer instead of 5.
//   qkv:       as above                                                                         | barrier
//   attention and wo: a block per (head, part of wo's rows); each computes the head's output (while the cache
//              holds <= 128 positions), quantizes it in units of 16 and adds wo[rows, head's columns] . output
//              to x atomically                                                                | barrier
//   past 128 positions the session launches the LONG form (its own decode graph; LONG 2 for head size 128,
//              1 else): up to a.tc_fuse (384; 0 for head size 128) positions as above with the head's attention
//              on tensor cores; past that the attention a block per (KV head, key split) on tensor cores
//              (pd_attention_tc; else per (head, key split))                                | barrier;
//              then each block of (head, part of wo's rows) merges that head's splits and multiplies as above
//                                                                                               | barrier
//   gate/up and down: each block RMSNorms x, computes h for its own 16-row units of gate and up (kept in
//              shared memory), then adds down[:, its units] . h to the next layer's residual buffer atomically
//              (x and x2 alternate; the owner of each quad zeroed it at the layer's start and adds the residual) | barrier
//   L2 prefetches where DRAM would idle (pd_args.sk_pf): the blocks without an attention item stream wo's
//   copy; the qkv phase's warps without a pair fetch their block's cached keys and values; each warp fetches
//   its first gate and up rows while its block waits at the wo barrier. The qkv phase's warps without a pair
//   also copy the gate/up stage's norm weights into shared memory (else the wo barrier's wait does).
// Opt-in variants (measured within a few per cent on an H100): INFERNO_CUDA_PD_FLAGS=1 replaces the barrier
// after qkv with per-KV-head counters the attention blocks wait on; INFERNO_CUDA_PD_PREFETCH=1 has the warps
// a phase leaves idle stream the next phase's weights into L2; INFERNO_CUDA_PD_RING=1 (sm_90) streams every
// block's weights into a ring of shared memory ahead of the phases (k_decode_persistent<true>, below).
//
// Memory ordering: data written inside the launch by other blocks (x, q, the new K/V rows, partials, h) is
// read with ld.global.cg (L2), never through L1 or the read-only path; the weights, norms, RoPE table and
// cell table are read-only for the launch. Barriers and counters are release/acquire pairs at GPU scope.
//
// Leaves out: batches of more than one token (the dp4a kernels take them), head sizes that are not a
// multiple of 32, widths not a multiple of 32 or above PD_STAGE_MAX (the caller falls back to the per-op
// kernels).

#pragma once

#include "backend/cuda/decode_persistent.h"

// Block 0 records its clock at phase edge k (PD_T_*) of layer l (INFERNO_CUDA_PROFILE=3).
#define PD_MARK(l, k) \
    do { \
        if (pd_trace_ && blockIdx.x == 0 && threadIdx.x == 0) pd_trace_[(l) * PD_EDGES + (k)] = clock64(); \
    } while (0)

// Block's point k (PD_TL_*) of layer l into the timeline (INFERNO_CUDA_PROFILE=4; thread 0).
__device__ __forceinline__ void pd_tl(long long *tl, int n_layers, int l, int k) {
    if (!tl || threadIdx.x != 0) return;
    unsigned long long g;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(g));
    long long *p = tl + 2 * (((size_t)blockIdx.x * (n_layers + 1) + l) * PD_TL_ALL + k);
    p[0] = (long long)g, p[1] = clock64();
}
#define PD_TLM(l, k) pd_tl(pd_tl_, a.n_layers, l, k)

// Grid-wide barrier over co-resident blocks. *epoch counts the arrivals this block expects before it may go
// on (every block keeps the same count). Thread 0 publishes the block's writes (fence, then the arrival),
// waits with acquire loads, and the block's barrier passes the ordering on to its other threads.
// Split in two so that thread 0 can issue the weight ring's next copies between its arrival and its wait.
// tl (INFERNO_CUDA_PROFILE=4): the block's arrival is recorded at point k of layer l, once its threads are done.
__device__ __forceinline__ void pd_arrive(unsigned *bar, unsigned *epoch, long long *tl = nullptr, int nl = 0, int l = 0,
                                          int k = 0) {
    __syncthreads();
    pd_tl(tl, nl, l, k);
    *epoch += gridDim.x;
    // The release add publishes what the block wrote before the __syncthreads (cumulativity); the acquire
    // load that sees every arrival (pd_await) makes the other blocks' writes visible to this one.
    if (threadIdx.x == 0) asm volatile("red.release.gpu.global.add.u32 [%0], %1;" ::"l"(bar), "r"(1u) : "memory");
}

__device__ __forceinline__ void pd_await(unsigned *bar, unsigned epoch) {
    if (threadIdx.x == 0) {
        unsigned v;
        do {
            asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(bar) : "memory");
        } while (v < epoch);
    }
    __syncthreads();
}

// acc[r][0] += row r of a matrix of the given type . x (x in shared memory); the switch is warp-uniform.
// WS: the rows are in shared memory (the weight ring).
// TM: the weight types the kernel is built for (a bit per ggml id); a type outside it adds nothing. The host
// picks the smallest instantiation that holds the model's types (pd_kernel_for): every call site inlines the
// code of each type it may meet, and a kernel built for two types instead of six ran ~2% faster (CUDA step
// 12).
// Q8_0 and F16 rows take 4 (of a 2,048 row: all) of a lane's 16-byte pieces in flight at once in this kernel,
// the other types 2 (dot_rows' default; bench/NOTES.md CUDA step 13).
#define PD_U8 4
#define PD_U16 4
template <unsigned TM, int R, bool WS = false>
__device__ __forceinline__ void pd_dot(int type, const uint8_t *const (&w)[R], const __half *const (&s)[R],
                                       const xop &x, int lane, float (&acc)[R][1]) {
    switch (type) {
    case T_Q4_K: if constexpr (PD_HAS(TM, T_Q4_K)) dot_rows<T_Q4_K, R, 1, true, WS>(w, s, x, 1, lane, acc); break;
    case T_Q6_K: if constexpr (PD_HAS(TM, T_Q6_K)) dot_rows<T_Q6_K, R, 1, true, WS>(w, s, x, 1, lane, acc); break;
    case T_Q4_0: if constexpr (PD_HAS(TM, T_Q4_0)) dot_rows<T_Q4_0, R, 1, true, WS>(w, s, x, 1, lane, acc); break;
    case T_Q8_0: if constexpr (PD_HAS(TM, T_Q8_0)) dot_rows<T_Q8_0, R, 1, true, WS, PD_U8>(w, s, x, 1, lane, acc); break;
    case T_F16: if constexpr (PD_HAS(TM, T_F16)) dot_rows<T_F16, R, 1, true, WS, PD_U16>(w, s, x, 1, lane, acc); break;
    default: if constexpr (PD_HAS(TM, T_F32)) dot_rows<T_F32, R, 1, true, WS>(w, s, x, 1, lane, acc); break;
    }
}

__device__ __forceinline__ const uint8_t *pd_row(const dmat &w, int r) { return w.d + (uint64_t)r * w.pitch; }
__device__ __forceinline__ const __half *pd_srow(const dmat &w, int r) {
    return w.s ? w.s + (size_t)r * w.spitch : nullptr;
}

// y[r] = (y[r] +) W[r] . x for every row r, rows spread over all warps of the grid.
template <unsigned TM> __device__ void pd_matvec(const dmat &w, const xop &x, float *y, bool accumulate, int gw, int nw, int lane) {
    for (int r = gw; r < w.n_out; r += nw) {
        const uint8_t *const wr[1] = {pd_row(w, r)};
        const __half *const sr[1] = {pd_srow(w, r)};
        float acc[1][1] = {{0.0f}};
        const float y0 = accumulate && lane == 0 ? __ldcg(y + r) : 0.0f; // in flight during the dot product
        pd_dot<TM, 1>(w.type, wr, sr, x, lane, acc);
        const float v = warp_sum(acc[0][0]);
        if (lane == 0) y[r] = y0 + v;
    }
}

// Rows r and r1 of W . x (both rows' loads in flight), summed over the warp: every lane gets (row r, row r1).
template <unsigned TM>
__device__ __forceinline__ float2 pd_rows2(const dmat &w, const xop &x, int r, int r1, int lane) {
    const uint8_t *const wr[2] = {pd_row(w, r), pd_row(w, r1)};
    const __half *const sr[2] = {pd_srow(w, r), pd_srow(w, r1)};
    float acc[2][1] = {{0.0f}, {0.0f}};
    pd_dot<TM, 2>(w.type, wr, sr, x, lane, acc);
    return make_float2(warp_sum(acc[0][0]), warp_sum(acc[1][0]));
}

// y[r] = W[r] . x for every row r, two rows a warp at a time (r and r + nw: both loads in flight), rows spread
// over all warps of the grid: the head, ~15 rows a warp for a 32k vocabulary.
template <unsigned TM> __device__ void pd_matvec2(const dmat &w, const xop &x, float *y, int gw, int nw, int lane) {
    for (int r = gw; r < w.n_out; r += 2 * nw) {
        const float2 v = pd_rows2<TM>(w, x, r, min(r + nw, w.n_out - 1), lane);
        if (lane == 0) {
            y[r] = v.x;
            if (r + nw < w.n_out) y[r + nw] = v.y;
        }
    }
}

// The head for logits in pinned host memory: the block's contiguous rows [h0, h1) (two a warp in flight, as
// pd_matvec2) into stage (shared), then written out by all threads at once: whole lines across the bus instead
// of one transaction a row.
template <unsigned TM> __device__ void pd_head_block(const dmat &w, const xop &x, float *y, float *stage, int warp, int lane) {
    const int n = w.n_out;
    const int h0 = (int)((long long)n * blockIdx.x / gridDim.x), h1 = (int)((long long)n * (blockIdx.x + 1) / gridDim.x);
    for (int r = h0 + warp; r < h1; r += 2 * PD_WARPS) {
        const float2 v = pd_rows2<TM>(w, x, r, min(r + PD_WARPS, h1 - 1), lane);
        if (lane == 0) {
            stage[r - h0] = v.x;
            if (r + PD_WARPS < h1) stage[r + PD_WARPS - h0] = v.y;
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < h1 - h0; i += PD_THREADS) y[h0 + i] = stage[i];
}

// ---- Split-K products over column copies (cmat, cuda_backend.cu) ----
// wo and down as sums over column slices: the block that has a slice of the input (a head's attention output,
// its rows of h) multiplies the matching columns of every row and adds the results to the residual with vector
// atomics. No barrier and no stage of the whole input before them; the price is a copy of the two matrices
// in column order and float additions in arrival order (results vary in the last bits from run to run).

// The input of a split-K product: per unit of 16 values, their 8-bit values, scale and the sum of the values
// (the quantized types), and the values themselves (F32, for F16 weights).
typedef struct {
    const int4 *q;
    const float *s;
    const int *sum;
    const float *f;
} skop;

__device__ __forceinline__ void pd_red4(float *p, float4 v) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("red.global.add.v4.f32 [%0], {%1, %2, %3, %4};" ::"l"(p), "f"(v.x), "f"(v.y), "f"(v.z), "f"(v.w)
                 : "memory");
#else
    atomicAdd(p, v.x), atomicAdd(p + 1, v.y), atomicAdd(p + 2, v.z), atomicAdd(p + 3, v.w);
#endif
}

// dp4a of a unit's 16 nibbles (two words: byte j = value j | value j + 8 << 4) with its 16 activations.
__device__ __forceinline__ int sk_nib(unsigned w0, unsigned w1, int4 a) {
    return dot_nib(make_uint4(w0, w1, w0 >> 4, w1 >> 4), a, 0, 0);
}

// acc[j] += row r + j, unit u of W . the unit's activations (a: 8-bit values, hs: scale, hsum: their sum).
template <int TYPE>
__device__ __forceinline__ void sk_quad(const cmat &W, int r, int u, int4 a, float hs, int hsum, float (&acc)[4]) {
    const size_t R = (size_t)W.n_out, at = (size_t)u * R + (size_t)r;
    if constexpr (TYPE == T_Q4_K || TYPE == T_Q4_0) {
        const uint4 *qp = (const uint4 *)(W.q + at * 8);
        const uint4 q01 = __ldg(qp), q23 = __ldg(qp + 1);
        const int dot[4] = {sk_nib(q01.x, q01.y, a), sk_nib(q01.z, q01.w, a), sk_nib(q23.x, q23.y, a),
                            sk_nib(q23.z, q23.w, a)};
        if constexpr (TYPE == T_Q4_K) {
            const uint2 sm = __ldg((const uint2 *)(W.sub + ((size_t)(u >> 1) * R + (size_t)r) * 2));
            const uint4 dd = __ldg((const uint4 *)(W.d + ((size_t)(u >> 4) * R + (size_t)r) * 2));
            const unsigned dw[4] = {dd.x, dd.y, dd.z, dd.w};
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const unsigned pair = ((j < 2 ? sm.x : sm.y) >> (16 * (j & 1))) & 0xffffu;
                const float2 dm = h2f(dw[j]);
                acc[j] += hs * (dm.x * (float)(pair & 0xffu) * (float)dot[j] - dm.y * (float)(pair >> 8) * (float)hsum);
            }
        } else {
            const uint2 dv = __ldg((const uint2 *)(W.d + (size_t)(u >> 1) * R + (size_t)r));
            const float2 d01 = h2f(dv.x), d23 = h2f(dv.y);
            const float d[4] = {d01.x, d01.y, d23.x, d23.y};
#pragma unroll
            for (int j = 0; j < 4; j++) acc[j] += hs * d[j] * (float)(dot[j] - 8 * hsum);
        }
    } else if constexpr (TYPE == T_Q6_K) {
        const uint4 *qp = (const uint4 *)(W.q + at * 12);
        const uint4 x0 = __ldg(qp), x1 = __ldg(qp + 1), x2 = __ldg(qp + 2);
        const unsigned w[12] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w, x2.x, x2.y, x2.z, x2.w};
        const unsigned sc = __ldg((const unsigned *)(W.sub + at));
        const uint2 dv = __ldg((const uint2 *)(W.d + (size_t)(u >> 4) * R + (size_t)r));
        const float2 d01 = h2f(dv.x), d23 = h2f(dv.y);
        const float d[4] = {d01.x, d01.y, d23.x, d23.y};
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const unsigned w0 = w[3 * j], w1 = w[3 * j + 1], h = w[3 * j + 2];
            // The same bit layout as the row format's lane pieces: q6_word builds values 4k .. 4k + 3.
            const int4 q = make_int4(q6_word(w0, w1, h, 0), q6_word(w0, w1, h, 1), q6_word(w0, w1, h, 2),
                                     q6_word(w0, w1, h, 3));
            const int s = dot_i8(q, a, 0);
            acc[j] += hs * d[j] * (float)(int8_t)(sc >> (8 * j)) * (float)(s - 32 * hsum);
        }
    } else { // Q8_0
        const uint4 *qp = (const uint4 *)(W.q + at * 16);
        const uint2 dv = __ldg((const uint2 *)(W.d + (size_t)(u >> 1) * R + (size_t)r));
        const float2 d01 = h2f(dv.x), d23 = h2f(dv.y);
        const float d[4] = {d01.x, d01.y, d23.x, d23.y};
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const uint4 q = __ldg(qp + j);
            acc[j] += hs * d[j] * (float)dot_i8(make_int4((int)q.x, (int)q.y, (int)q.z, (int)q.w), a, 0);
        }
    }
}

// acc[j] += row r + j, unit u of an F16 column copy . the unit's 16 activations (f: F32, shared memory).
__device__ __forceinline__ void sk_quad_f16(const cmat &W, int r, int u, const float *f, float (&acc)[4]) {
    const uint4 *qp = (const uint4 *)(W.q + ((size_t)u * (size_t)W.n_out + (size_t)r) * 32);
    uint4 w[8];
#pragma unroll
    for (int i = 0; i < 8; i++) w[i] = __ldg(qp + i);
    float x[16];
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const float4 v = ((const float4 *)f)[i];
        x[4 * i] = v.x, x[4 * i + 1] = v.y, x[4 * i + 2] = v.z, x[4 * i + 3] = v.w;
    }
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const unsigned h[8] = {w[2 * j].x, w[2 * j].y, w[2 * j].z, w[2 * j].w,
                               w[2 * j + 1].x, w[2 * j + 1].y, w[2 * j + 1].z, w[2 * j + 1].w};
        float sum = 0.0f;
#pragma unroll
        for (int k = 0; k < 8; k++) {
            const float2 p = h2f(h[k]);
            sum = fmaf(p.x, x[2 * k], fmaf(p.y, x[2 * k + 1], sum));
        }
        acc[j] += sum;
    }
}

// y[4 q0 .. 4 (q0 + nq)) += rows 4 q0 .. of W, units [u0, u0 + nu) . x (x's units 0 .. nu), added atomically;
// the block's own quads [o0, o1) also add xadd's values (the residual the product goes on from). Threads
// take (quad, unit) items: a quad's units over TU threads (a power of two, TU * nq <= PD_THREADS) summed in
// red (PD_THREADS float4 of shared memory). Every thread of the block calls it.
template <int TYPE>
static __device__ void pd_splitk_t(const cmat &W, int q0, int nq, int u0, int nu, const skop &x, float *y, float4 *red,
                            const float *xadd, int o0, int o1) {
    int TU = 1;
    while (TU < nu && 2 * TU * nq <= PD_THREADS) TU <<= 1;
    const int TQ = PD_THREADS / TU, tq = (int)threadIdx.x % TQ, tu = (int)threadIdx.x / TQ;
    for (int qq = tq; qq < nq; qq += TQ) { // one pass when TU > 1 (TQ >= nq)
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll 2
        for (int u = tu; u < nu; u += TU) {
            if constexpr (TYPE == T_F16) sk_quad_f16(W, 4 * (q0 + qq), u0 + u, x.f + 16 * u, acc);
            else sk_quad<TYPE>(W, 4 * (q0 + qq), u0 + u, x.q[u], x.s[u], x.sum[u], acc);
        }
        float4 v = make_float4(acc[0], acc[1], acc[2], acc[3]);
        if (TU > 1) {
            red[threadIdx.x] = v;
            continue;
        }
        const int q = q0 + qq;
        const bool own = xadd && q >= o0 && q < o1;
        if (own) {
            const float4 o = __ldcg((const float4 *)xadd + q);
            v.x += o.x, v.y += o.y, v.z += o.z, v.w += o.w;
        }
        if (nu > 0 || own) pd_red4(y + 4 * q, v);
    }
    if (TU > 1) {
        __syncthreads();
        if (tu == 0 && tq < nq) {
            float4 v = red[tq];
            for (int k = 1; k < TU; k++) {
                const float4 w = red[tq + k * TQ];
                v.x += w.x, v.y += w.y, v.z += w.z, v.w += w.w;
            }
            const int q = q0 + tq;
            if (xadd && q >= o0 && q < o1) {
                const float4 o = __ldcg((const float4 *)xadd + q);
                v.x += o.x, v.y += o.y, v.z += o.z, v.w += o.w;
            }
            pd_red4(y + 4 * q, v);
        }
        __syncthreads(); // red is reused
    }
}

template <unsigned TM>
__device__ __forceinline__ void pd_splitk(const cmat &W, int q0, int nq, int u0, int nu, const skop &x, float *y,
                                          float4 *red, const float *xadd, int o0, int o1) {
    switch (W.type) {
    case T_Q4_K: if constexpr (PD_HAS(TM, T_Q4_K)) pd_splitk_t<T_Q4_K>(W, q0, nq, u0, nu, x, y, red, xadd, o0, o1); break;
    case T_Q6_K: if constexpr (PD_HAS(TM, T_Q6_K)) pd_splitk_t<T_Q6_K>(W, q0, nq, u0, nu, x, y, red, xadd, o0, o1); break;
    case T_Q4_0: if constexpr (PD_HAS(TM, T_Q4_0)) pd_splitk_t<T_Q4_0>(W, q0, nq, u0, nu, x, y, red, xadd, o0, o1); break;
    case T_F16: if constexpr (PD_HAS(TM, T_F16)) pd_splitk_t<T_F16>(W, q0, nq, u0, nu, x, y, red, xadd, o0, o1); break;
    default: if constexpr (PD_HAS(TM, T_Q8_0)) pd_splitk_t<T_Q8_0>(W, q0, nq, u0, nu, x, y, red, xadd, o0, o1); break;
    }
}

// Quantizes n values of v (shared memory, n % 16 == 0, n <= PD_THREADS) in units of 16: q = round(v / s) with
// s = max|v| / 127 over the unit, into q (n bytes), s and sum (n / 16 each). Ends with a __syncthreads.
static __device__ void pd_sk_quant(const float *v, int n, int8_t *q, float *s, int *sum) {
    const int t = (int)threadIdx.x;
    if (t < ((n + 31) & ~31)) { // whole warps (the shuffles); units are 16-lane halves of a warp
        const float x = t < n ? v[t] : 0.0f;
        float amax = fabsf(x);
#pragma unroll
        for (int o = 8; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
        const int qi = __float2int_rn(x * (amax > 0.0f ? 127.0f / amax : 0.0f));
        int sm = qi;
#pragma unroll
        for (int o = 8; o > 0; o >>= 1) sm += __shfl_xor_sync(0xffffffffu, sm, o);
        if (t < n) {
            q[t] = (int8_t)qi;
            if ((t & 15) == 0) s[t >> 4] = amax / 127.0f, sum[t >> 4] = sm;
        }
    }
    __syncthreads();
}

// Issues an L2 prefetch of bytes at p (no data comes back; a hint the memory system may drop). sm_90: one
// bulk prefetch (16-byte aligned start and size); older cards: a prefetch per 128-byte line.
__device__ __forceinline__ void pd_prefetch(const void *p, uint64_t bytes) {
    const uintptr_t a0 = (uintptr_t)p & ~(uintptr_t)15, a1 = ((uintptr_t)p + bytes + 15) & ~(uintptr_t)15;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    for (uintptr_t q = a0; q < a1; q += 65536) {
        const unsigned n = (unsigned)(a1 - q < 65536 ? a1 - q : 65536);
        asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(q), "r"(n) : "memory");
    }
#else
    for (uintptr_t q = a0 & ~(uintptr_t)127; q < a1; q += 128) asm volatile("prefetch.global.L2 [%0];" ::"l"(q));
#endif
}

// Row r of w (its quant and scale planes) prefetched into L2, a 128-byte line a lane at a time: a warp's row of
// the next phase, issued while its block waits at a barrier.
__device__ __forceinline__ void pd_pf_row(const dmat &w, int r, int lane) {
    const uint8_t *const ps[2] = {pd_row(w, r), (const uint8_t *)pd_srow(w, r)};
    const uint64_t bytes[2] = {w.pitch, (uint64_t)w.spitch * 2};
#pragma unroll
    for (int i = 0; i < 2; i++) {
        if (!ps[i]) continue;
        const uintptr_t p = (uintptr_t)ps[i], end = p + bytes[i];
        for (uintptr_t q = (p & ~(uintptr_t)127) + 128 * (uintptr_t)lane; q < end; q += 32 * 128)
            asm volatile("prefetch.global.L2 [%0];" ::"l"(q));
    }
}

// Unit u of n_units of an L2 prefetch of the nm matrices (quant and scale planes in PD_PF_CHUNK pieces): the
// warps a phase leaves idle stream the next phase's weights into L2 with it.
#define PD_PF_CHUNK 65536
static __device__ void pd_prefetch_share(const dmat *const *ms, int nm, int u, int n_units) {
    for (int v = u;; v += n_units) {
        int base = 0;
        bool found = false;
        for (int i = 0; i < nm && !found; i++)
            for (int plane = 0; plane < 2 && !found; plane++) {
                const uint8_t *p = plane ? (const uint8_t *)ms[i]->s : ms[i]->d;
                if (!p) continue;
                const uint64_t bytes = plane ? (uint64_t)ms[i]->n_out * (uint64_t)ms[i]->spitch * 2
                                             : (uint64_t)ms[i]->n_out * ms[i]->pitch;
                const int nch = (int)((bytes + PD_PF_CHUNK - 1) / PD_PF_CHUNK);
                if (v < base + nch) {
                    const uint64_t off = (uint64_t)(v - base) * PD_PF_CHUNK;
                    pd_prefetch(p + off, min((uint64_t)PD_PF_CHUNK, bytes - off));
                    found = true;
                }
                base += nch;
            }
        if (!found) return;
    }
}

// Piece u of n (PD_PF_CHUNK each) of an L2 prefetch of a column copy (its planes, one span).
static __device__ void pd_prefetch_cmat(const cmat &W, int u, int n) {
    uint64_t q, sub, d;
    col_planes(W.type, W.n_in, W.n_out, &q, &sub, &d);
    const uint64_t bytes = q + sub + d;
    for (uint64_t off = (uint64_t)u * PD_PF_CHUNK; off < bytes; off += (uint64_t)n * PD_PF_CHUNK)
        pd_prefetch(W.q + off, min((uint64_t)PD_PF_CHUNK, bytes - off));
}

// The block's share of the attention of head h: keys [k0, k1) of the token's sequence, spread over the
// block's warps (hd / 8 lanes a key, 8 values a lane), merged in shared memory (sm: PD_WARPS * (hd + 2)
// floats) into one partial (max, sum, unnormalized output) at part, or, when out is not NULL (the head has
// one split), into the head's normalized output at out (hd values). hd % 32 == 0.
static __device__ void pd_attention_block(const pd_args &a, int l, int h, int k0, int k1, float *part, float *out,
                                   float *sm) {
    const int hd = a.hd, lpk = hd >> 3, kpi = 32 / lpk, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int sub = lane % lpk, slot = lane / lpk;
    const size_t layer_off = (size_t)l * (size_t)a.n_ctx * (size_t)a.KV;
    const __half *kc = a.kc + layer_off, *vc = a.vc + layer_off;
    const size_t head_off = (size_t)(h / (a.n_head / a.n_head_kv)) * hd + 8 * sub;
    const int32_t *cells = a.seq_cells + (size_t)a.ints[1] * a.n_ctx;
    float qv[8], acc[8];
    const float4 *qp = (const float4 *)(a.q + (size_t)h * hd + 8 * sub);
    const float4 q0 = __ldcg(qp), q1 = __ldcg(qp + 1);
    qv[0] = q0.x, qv[1] = q0.y, qv[2] = q0.z, qv[3] = q0.w, qv[4] = q1.x, qv[5] = q1.y, qv[6] = q1.z, qv[7] = q1.w;
#pragma unroll
    for (int i = 0; i < 8; i++) qv[i] *= a.att_scale, acc[i] = 0.0f;
    float m = -INFINITY, lsum = 0.0f;
    attend_keys(qv, kc, vc, cells, a.KV, head_off, k0 + warp * kpi, k1, PD_WARPS * kpi, lpk, slot, m, lsum, acc);
    // The warp's key slots (lanes lpk apart), then the warps through shared memory.
    float M = m;
    for (int o = lpk; o < 32; o <<= 1) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, o));
    const float e = lsum > 0.0f ? expf(m - M) : 0.0f;
    float Lw = lsum * e;
#pragma unroll
    for (int i = 0; i < 8; i++) acc[i] *= e;
    for (int o = lpk; o < 32; o <<= 1) {
        Lw += __shfl_xor_sync(0xffffffffu, Lw, o);
#pragma unroll
        for (int i = 0; i < 8; i++) acc[i] += __shfl_xor_sync(0xffffffffu, acc[i], o);
    }
    float *sm_m = sm, *sm_l = sm + PD_WARPS, *sm_acc = sm + 2 * PD_WARPS;
    if (lane == 0) sm_m[warp] = M, sm_l[warp] = Lw;
    if (slot == 0)
#pragma unroll
        for (int i = 0; i < 8; i++) sm_acc[warp * hd + 8 * sub + i] = acc[i];
    __syncthreads();
    for (int d = threadIdx.x; d < hd; d += PD_THREADS) {
        float Mx = -INFINITY;
        for (int w = 0; w < PD_WARPS; w++)
            if (sm_l[w] > 0.0f) Mx = fmaxf(Mx, sm_m[w]);
        float v = 0.0f, Lt = 0.0f;
        for (int w = 0; w < PD_WARPS; w++)
            if (sm_l[w] > 0.0f) {
                const float ex = expf(sm_m[w] - Mx);
                v += sm_acc[w * hd + d] * ex;
                Lt += sm_l[w] * ex;
            }
        if (out) { // the head's only split: its output, normalized
            out[d] = v / Lt;
            continue;
        }
        part[2 + d] = v;
        if (d == 0) part[0] = Mx, part[1] = Lt;
    }
    __syncthreads(); // sm is reused by the block's next item
}

// Merges the SB partials of every head (written by the attention phase) into the attention output in shared
// memory: F32 in xf, 8-bit blocks in xq/xds. First the (max, sum) pairs of all partials (n_head * SB <=
// PD_THREADS, one load each) become per-partial weights in wts (shared, n_head * SB floats); then each
// output sums its SB values (independent loads). A warp covers 32 consecutive outputs (Q % 32 == 0).
static __device__ void pd_attention_merge(const pd_args &a, int SB, float *wts, float *xf, int8_t *xq, float2 *xds) {
    const int hd = a.hd, Q = a.Q, lane = threadIdx.x & 31, np = a.n_head * SB;
    for (int i = threadIdx.x; i < np; i += PD_THREADS) {
        const float *p = a.att + (size_t)i * (size_t)(hd + 2);
        wts[2 * i] = __ldcg(p), wts[2 * i + 1] = __ldcg(p + 1);
    }
    __syncthreads();
    for (int i = threadIdx.x; i < np; i += PD_THREADS) { // weight of partial i: exp(m_i - M) / L over its head
        const int h = i / SB;
        float Mx = -INFINITY;
        for (int k = h * SB; k < (h + 1) * SB; k++)
            if (wts[2 * k + 1] > 0.0f) Mx = fmaxf(Mx, wts[2 * k]);
        float Lt = 0.0f;
        for (int k = h * SB; k < (h + 1) * SB; k++)
            if (wts[2 * k + 1] > 0.0f) Lt += wts[2 * k + 1] * expf(wts[2 * k] - Mx);
        const float w = wts[2 * i + 1] > 0.0f ? expf(wts[2 * i] - Mx) / Lt : 0.0f;
        wts[2 * np + i] = w;
    }
    __syncthreads();
    const float *wt = wts + 2 * np;
    for (int e = threadIdx.x; e < Q; e += PD_THREADS) {
        const int h = e / hd, d = e - h * hd;
        const float *p = a.att + (size_t)h * SB * (size_t)(hd + 2) + 2 + d;
        float v = 0.0f;
#pragma unroll 4
        for (int k = 0; k < SB; k++) v += __ldcg(p + (size_t)k * (hd + 2)) * wt[h * SB + k];
        xf[e] = v;
        warp_quant(v, xq + (e - lane), xds + (e >> 5), lane);
    }
    __syncthreads();
}

// Head h's attention output from its SB partials (a.att, written in this launch; SB <= 64), normalized, into
// out (hd floats of shared memory); sm: PD_WARPS * (hd + 2) floats of scratch. Ends with a __syncthreads.
static __device__ void pd_head_merge(const pd_args &a, int h, int SB, float *out, float *sm) {
    // ng groups of hd threads, each summing every ng-th split (sm holds PD_WARPS * (hd + 2) floats)
    const int hd = a.hd, ng = min(min(PD_THREADS / hd, SB), (PD_WARPS * (hd + 2) - SB) / hd);
    const float *p0 = a.att + (size_t)h * SB * (size_t)(hd + 2);
    float *wt = sm, *acc = sm + SB; // SB weights, then ng * hd partial sums
    if (threadIdx.x < 32) {
        float mk[2], lk[2], Mx = -INFINITY; // SB <= 64
#pragma unroll
        for (int i = 0; i < 2; i++) {
            const int k = (int)threadIdx.x + 32 * i;
            mk[i] = k < SB ? __ldcg(p0 + (size_t)k * (hd + 2)) : -INFINITY;
            lk[i] = k < SB ? __ldcg(p0 + (size_t)k * (hd + 2) + 1) : 0.0f;
            if (lk[i] > 0.0f) Mx = fmaxf(Mx, mk[i]);
        }
        Mx = warp_max(Mx);
        float e[2], Lt = 0.0f;
#pragma unroll
        for (int i = 0; i < 2; i++) e[i] = lk[i] > 0.0f ? expf(mk[i] - Mx) : 0.0f, Lt += lk[i] * e[i];
        Lt = warp_sum(Lt);
#pragma unroll
        for (int i = 0; i < 2; i++)
            if ((int)threadIdx.x + 32 * i < SB) wt[threadIdx.x + 32 * i] = e[i] / Lt;
    }
    __syncthreads();
    const int grp = (int)threadIdx.x / hd, d = (int)threadIdx.x - grp * hd;
    if (grp < ng) {
        float v = 0.0f;
        for (int k = grp; k < SB; k += ng) v += __ldcg(p0 + (size_t)k * (hd + 2) + 2 + d) * wt[k];
        acc[grp * hd + d] = v;
    }
    __syncthreads();
    for (int t = threadIdx.x; t < hd; t += PD_THREADS) {
        float v = 0.0f;
        for (int k = 0; k < ng; k++) v += acc[k * hd + t];
        out[t] = v;
    }
    __syncthreads();
}

// The attention of KV head g's G query heads (G = n_head / n_head_kv <= 8) over keys [k0, k1) on tensor cores
// (a.att_tc; sm_80+, HD 32, 64 or 128): the KV head's keys and values are read once for all its query heads (GQA),
// and a key costs a few instructions instead of a lane group's dot product, shuffles and exponentials (the
// SIMT form's rounds were issue-bound past ~1,000 keys: bench/NOTES.md CUDA step 17). Each warp takes tiles
// of 8 keys of [k0, k1) (warp w: tiles w, w + PD_WARPS, ...; head size 128: a pair of warps a tile, see below)
// through mma.sync with F32 sums. Scores
// S = Q . K^T (m16n8k16 over the head's dimensions), the G query heads as fragment rows (the other rows zero);
// an online softmax on the score fragment (log2 units: q is scaled by scale * log2 e); then O^T += V^T . P^T
// (m16n8k8), the head's dimensions as rows (no padding) and the probabilities, as the score fragment holds
// them, as the B fragment. No shared memory in the loop: lane (r, t) = (lane / 4, lane % 4) loads its
// fragments' bytes straight from the cache: HD / 4 halves from t * HD / 4 of key r (the query fragments take
// the head's dimensions in the same order, a permutation the dot product does not see), and HD / 8 halves
// from r * HD / 8 of keys 2t and 2t + 1, paired into A fragments with byte permutes; its output (c0..c3 of
// tile i) is dimensions r * HD / 8 + 2i (+1 for c2, c3) of heads 2t (c0, c2) and 2t + 1 (c1, c3). The block's
// warps merge in passes of PD_WARPS / G warps through sm (PD_WARPS * (HD + 2) floats) into each query head's
// partial (max in natural-log units, sum, unnormalized output): split `split` of SB of head h at
// a.att + (h * SB + split) * (HD + 2), as pd_attention_block's partials.
// ONE: query head hq alone (of KV head g), its normalized output into out (HD floats of shared memory).
template <int HD, bool ONE>
static __device__ void pd_attention_tc(const pd_args &a, int l, int g, int k0, int k1, int SB, int split, float *sm,
                                int hq, float *out) {
    // Head size 128: warps in pairs, both of a pair compute a tile's scores, each the output of half the
    // dimensions (OD of them), so that a warp's registers stay those of head size 64.
    constexpr bool PAIR = HD == 128;
    constexpr int OD = PAIR ? HD / 2 : HD, NCH = HD / 16, NKW = HD / 8, NVW = OD / 16, NWT = PAIR ? PD_WARPS / 2 : PD_WARPS;
    const int G = ONE ? 1 : a.n_head / a.n_head_kv, h0 = ONE ? hq : g * G, KV = a.KV, warp = threadIdx.x >> 5,
              lane = threadIdx.x & 31, wt = PAIR ? warp >> 1 : warp, hf = PAIR ? warp & 1 : 0;
    const int r = lane >> 2, t = lane & 3;
    const size_t layer_off = (size_t)l * (size_t)a.n_ctx * (size_t)KV + (size_t)g * HD;
    const __half *kc = a.kc + layer_off + t * (HD / 4), *vc = a.vc + layer_off + hf * OD + r * (OD / 8);
    const int32_t *cells = a.seq_cells + (size_t)a.ints[1] * a.n_ctx;
    // The group's queries (written in this launch) through sm once a block: a load from L2 by every warp of
    // every block at once queues on the same few lines. Head size 128 keeps them there through the loop as
    // F16 A fragments, a lane's QW words apart (conflict-free 16-byte loads): in registers they made the LONG
    // kernel spill around the attention, and its other phases slower.
    constexpr bool QSM = HD == 128;
    constexpr int QW = 2 * NCH + 4;
    const float sc = a.att_scale * 1.4426950408889634f;
    unsigned qa[QSM ? 1 : 2 * NCH]; // query head g * G + r: words 2j, 2j + 1 are chunk j's A fragments (a0a1, a4a5)
    const uint4 *qs = (const uint4 *)((unsigned *)sm + (r * 4 + t) * QW);
    if constexpr (QSM) {
        for (int i = threadIdx.x; i < G * 4 * NCH; i += PD_THREADS) { // (head rr, lane t, chunk j)
            const int rr = i / (4 * NCH), tt = (i / NCH) & 3, j = i % NCH;
            const float4 v = __ldcg((const float4 *)(a.q + (size_t)(h0 + rr) * HD + tt * (HD / 4)) + j);
            ((uint2 *)sm)[((rr * 4 + tt) * QW + 2 * j) / 2] = make_uint2(half2_bits(v.x * sc, v.y * sc),
                                                                       half2_bits(v.z * sc, v.w * sc));
        }
        __syncthreads();
    } else {
        for (int i = threadIdx.x; i < G * HD / 4; i += PD_THREADS)
            ((float4 *)sm)[i] = __ldcg((const float4 *)(a.q + (size_t)h0 * HD) + i);
        __syncthreads();
        if (r < G) {
            const float4 *qp = (const float4 *)(sm + r * HD + t * (HD / 4));
#pragma unroll
            for (int i = 0; i < NCH; i++) {
                const float4 v = qp[i];
                qa[2 * i] = half2_bits(v.x * sc, v.y * sc), qa[2 * i + 1] = half2_bits(v.z * sc, v.w * sc);
            }
        } else {
#pragma unroll
            for (int i = 0; i < 2 * NCH; i++) qa[i] = 0;
        }
        __syncthreads(); // sm is the merge's next
    }
    float o[NVW][4];
#pragma unroll
    for (int i = 0; i < NVW; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    float m = -INFINITY, lsum = 0.0f; // head r's
    const int n_tiles = (k1 - k0 + 7) >> 3;
    for (int tile = wt; tile < n_tiles; tile += NWT) {
        const int kb = k0 + tile * 8, nk = k1 - kb; // keys kb + i, i < nk, of the tile are real
        const int cl = lane < 8 && lane < nk ? cells[kb + lane] : 0;
        const int ck = __shfl_sync(0xffffffffu, cl, r), cv0 = __shfl_sync(0xffffffffu, cl, 2 * t),
                  cv1 = __shfl_sync(0xffffffffu, cl, 2 * t + 1);
        unsigned kw[NKW], vw[2][NVW];
#pragma unroll
        for (int i = 0; i < NKW / 4; i++) {
            const uint4 x = r < nk ? __ldcg((const uint4 *)(kc + (size_t)ck * KV) + i) : make_uint4(0, 0, 0, 0);
            kw[4 * i] = x.x, kw[4 * i + 1] = x.y, kw[4 * i + 2] = x.z, kw[4 * i + 3] = x.w;
        }
#pragma unroll
        for (int q = 0; q < 2; q++) {
            const bool ok = 2 * t + q < nk;
            const __half *p = vc + (size_t)(q ? cv1 : cv0) * KV;
            if constexpr (NVW >= 4) {
#pragma unroll
                for (int i = 0; i < NVW / 4; i++) {
                    const uint4 x = ok ? __ldcg((const uint4 *)p + i) : make_uint4(0, 0, 0, 0);
                    vw[q][4 * i] = x.x, vw[q][4 * i + 1] = x.y, vw[q][4 * i + 2] = x.z, vw[q][4 * i + 3] = x.w;
                }
            } else {
                const uint2 x = ok ? __ldcg((const uint2 *)p) : make_uint2(0, 0);
                vw[q][0] = x.x, vw[q][1] = x.y;
            }
        }
        float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        if constexpr (QSM) {
#pragma unroll
            for (int j = 0; j < NCH; j += 2) {
                const uint4 q4 = r < G ? qs[j / 2] : make_uint4(0, 0, 0, 0);
                const unsigned A0[4] = {q4.x, 0u, q4.y, 0u}, A1[4] = {q4.z, 0u, q4.w, 0u};
                mma_16816(s, A0, kw[2 * j], kw[2 * j + 1]);
                mma_16816(s, A1, kw[2 * j + 2], kw[2 * j + 3]);
            }
        } else {
#pragma unroll
            for (int j = 0; j < NCH; j++) {
                const unsigned A[4] = {qa[2 * j], 0u, qa[2 * j + 1], 0u};
                mma_16816(s, A, kw[2 * j], kw[2 * j + 1]);
            }
        }
        // Head r's scores of keys 2t and 2t + 1 of the tile.
        const float s0 = 2 * t < nk ? s[0] : -INFINITY, s1 = 2 * t + 1 < nk ? s[1] : -INFINITY;
        float mx = fmaxf(s0, s1);
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float mn = fmaxf(m, mx), corr = exp2f(m - mn), p0 = exp2f(s0 - mn), p1 = exp2f(s1 - mn);
        lsum = lsum * corr + p0 + p1;
        m = mn;
        // The output columns are heads 2t and 2t + 1: their rescales from lanes 8t and 8t + 4.
        const float c0 = __shfl_sync(0xffffffffu, corr, 8 * t), c1 = __shfl_sync(0xffffffffu, corr, 8 * t + 4);
        const unsigned b0 = half2_bits(p0, p1);
#pragma unroll
        for (int i = 0; i < NVW; i++) {
            o[i][0] *= c0, o[i][1] *= c1, o[i][2] *= c0, o[i][3] *= c1;
            mma_1688(o[i], __byte_perm(vw[0][i], vw[1][i], 0x5410u), __byte_perm(vw[0][i], vw[1][i], 0x7632u), b0);
        }
    }
    lsum += __shfl_xor_sync(0xffffffffu, lsum, 1);
    lsum += __shfl_xor_sync(0xffffffffu, lsum, 2);
    if constexpr (QSM) __syncthreads(); // the queries' sm is the merge's next
    // The warps' (max, sum, output) of each query head merged in passes of WPP warps; a thread keeps the
    // running (max, sum, value) of NE (query head, dimension) entries, entry threadIdx.x + e * PD_THREADS.
    constexpr int NE = (8 * HD + PD_THREADS - 1) / PD_THREADS;
    const int WPP = NWT / G, n_act = min(NWT, n_tiles);
    float Mr[NE], Lr[NE], Vr[NE];
    int hh[NE], dd[NE];
#pragma unroll
    for (int e = 0; e < NE; e++) {
        Mr[e] = -INFINITY, Lr[e] = 0.0f, Vr[e] = 0.0f;
        hh[e] = ((int)threadIdx.x + e * PD_THREADS) / HD, dd[e] = (int)threadIdx.x + e * PD_THREADS - hh[e] * HD;
    }
    for (int pass = 0; pass * WPP < n_act; pass++) {
        if (wt / WPP == pass) {
            float *e = sm + (wt - pass * WPP) * G * (HD + 2);
            if (t == 0 && r < G && hf == 0) e[r * (HD + 2)] = m, e[r * (HD + 2) + 1] = lsum;
#pragma unroll
            for (int c = 0; c < 2; c++)
                if (2 * t + c < G) {
                    float *ec = e + (2 * t + c) * (HD + 2) + 2 + hf * OD + r * (OD / 8);
#pragma unroll
                    for (int i = 0; i < NVW; i++) ec[2 * i] = o[i][c], ec[2 * i + 1] = o[i][2 + c];
                }
        }
        __syncthreads();
#pragma unroll
        for (int e = 0; e < NE; e++)
            if (hh[e] < G)
                for (int w = 0; w < WPP && pass * WPP + w < n_act; w++) {
                    const float *ew = sm + (w * G + hh[e]) * (HD + 2);
                    const float lw = ew[1];
                    if (lw > 0.0f) {
                        const float mw = ew[0], Mn = fmaxf(Mr[e], mw), e1 = exp2f(Mr[e] - Mn), e2 = exp2f(mw - Mn);
                        Vr[e] = Vr[e] * e1 + ew[2 + dd[e]] * e2, Lr[e] = Lr[e] * e1 + lw * e2, Mr[e] = Mn;
                    }
                }
        __syncthreads();
    }
#pragma unroll
    for (int e = 0; e < NE; e++) {
        if (ONE) {
            if (hh[e] == 0) out[dd[e]] = Vr[e] / Lr[e];
        } else if (hh[e] < G) {
            float *part = a.att + ((size_t)(g * G + hh[e]) * SB + split) * (size_t)(HD + 2);
            part[2 + dd[e]] = Vr[e];
            if (dd[e] == 0) part[0] = Mr[e] * 0.6931471805599453f, part[1] = Lr[e];
        }
    }
    if (ONE) __syncthreads();
}

// The LONG kernels' tensor-core attention for the model's head size: LONG 2 is built for head size 128 alone,
// LONG 1 for 32 and 64. Beside them in one kernel, or called from it (__noinline__), head size 128 made every
// LONG kernel spill 300-550 bytes and head size 64's decode at depth lose up to 25% (bench/NOTES.md CUDA step 18).
template <int LONG, bool ONE>
__device__ __forceinline__ void pd_attention_tc_hd(const pd_args &a, int l, int g, int k0, int k1, int SB,
                                                   int split, float *sm, int hq, float *out) {
    if constexpr (LONG == 2) pd_attention_tc<128, ONE>(a, l, g, k0, k1, SB, split, sm, hq, out);
    else if (a.hd == 64) pd_attention_tc<64, ONE>(a, l, g, k0, k1, SB, split, sm, hq, out);
    else pd_attention_tc<32, ONE>(a, l, g, k0, k1, SB, split, sm, hq, out);
}

// Copies n values (n % 32 == 0, n <= PD_STAGE_MAX) of a global F32 vector written in this launch into shared
// memory as F32 and 8-bit blocks, RMSNormed with w first when w is not NULL: one pass (each thread keeps its
// chunks of 8 in registers), one L2 round trip.
static __device__ void pd_stage(const float *src, const float *w, int n, float eps, float *xf, int8_t *xq, float2 *xds) {
    const int nc = n >> 3;
    float v[PD_STAGE_CHUNKS][8];
    float4 wv[PD_STAGE_CHUNKS][2]; // the norm weights, loaded with x (one round trip for both)
    float ss = 0.0f;
#pragma unroll
    for (int k = 0; k < PD_STAGE_CHUNKS; k++) {
        const int c = (int)threadIdx.x + k * PD_THREADS;
        if (c < nc) {
            const float4 x0 = __ldcg((const float4 *)src + 2 * c), x1 = __ldcg((const float4 *)src + 2 * c + 1);
            if (w) wv[k][0] = ((const float4 *)w)[2 * c], wv[k][1] = ((const float4 *)w)[2 * c + 1]; // global or shared
            v[k][0] = x0.x, v[k][1] = x0.y, v[k][2] = x0.z, v[k][3] = x0.w;
            v[k][4] = x1.x, v[k][5] = x1.y, v[k][6] = x1.z, v[k][7] = x1.w;
#pragma unroll
            for (int i = 0; i < 8; i++) ss += v[k][i] * v[k][i];
        } else {
#pragma unroll
            for (int i = 0; i < 8; i++) v[k][i] = 0.0f;
        }
    }
    float scale = 1.0f;
    if (w) scale = 1.0f / sqrtf(block_sum(ss) / (float)n + eps);
#pragma unroll
    for (int k = 0; k < PD_STAGE_CHUNKS; k++) {
        const int c0 = k * PD_THREADS;
        if (c0 >= nc) break; // uniform over the block
        const int c = (int)threadIdx.x + c0;
        const bool ok = c < nc; // nc % 4 == 0: the 4 lanes of a 32-value block agree
        if (ok && w) {
            const float4 w0 = wv[k][0], w1 = wv[k][1];
            const float ww[8] = {w0.x, w0.y, w0.z, w0.w, w1.x, w1.y, w1.z, w1.w};
#pragma unroll
            for (int i = 0; i < 8; i++) v[k][i] = (v[k][i] * scale) * ww[i];
        }
        if (ok) {
            ((float4 *)xf)[2 * c] = make_float4(v[k][0], v[k][1], v[k][2], v[k][3]);
            ((float4 *)xf)[2 * c + 1] = make_float4(v[k][4], v[k][5], v[k][6], v[k][7]);
        }
        quant8_group(v[k], ok, c, xq, xds);
    }
    __syncthreads();
}

// ---- q/k/v pairs: the epilogue, shared by both forms of the kernel (rows: qkv_pair_rows) ----
// Lane 0's part of a q/k/v pair: bias, RoPE, then q to global or k/v into the token's cache cell.
// rope: the token's cos/sin pairs; cell: its cache cell.
__device__ __forceinline__ void pd_pair_out(const pd_args &a, const dlayer &L, int l, int mat, int r0, int r1,
                                            int rot, float y0, float y1, const float *rope, int cell) {
    const float *bias = mat == 0 ? L.bq : mat == 1 ? L.bk : L.bv;
    if (bias) y0 += bias[r0], y1 += bias[r1];
    if (rot >= 0) {
        const float c = rope[2 * rot], sn = rope[2 * rot + 1];
        const float u0 = y0 * c - y1 * sn, u1 = y0 * sn + y1 * c;
        y0 = u0, y1 = u1;
    }
    if (mat == 0) {
        a.q[r0] = y0;
        a.q[r1] = y1;
    } else {
        const size_t layer_off = (size_t)l * (size_t)a.n_ctx * (size_t)a.KV;
        __half *dst = (mat == 1 ? a.kc : a.vc) + layer_off + (size_t)cell * a.KV;
        dst[r0] = __float2half(y0);
        dst[r1] = __float2half(y1);
    }
}

// ---- The weight ring (sm_90) ----
// Every block owns a contiguous run of rows of each matrix (its units of the phase, split into jobs of at
// most job_units units). Thread 0 copies the rows of the block's upcoming jobs into a ring of shared memory
// with bulk asynchronous copies (one request per run of rows of each plane), as far ahead as the ring holds,
// each job completing on its own mbarrier; the warps wait on the job's mbarrier and read the weights from
// shared memory. Copies are issued when a job's space is freed (after the block has finished reading it), so
// the memory system keeps streaming the next phases' weights through the grid barriers, the stages and the
// attention, and a phase starts with its weights already on the SM. (The job table, pd_jobd, and the ring's
// sizes: decode_persistent.h.)

// Segment m of a job: rows [r0, r0 + n) of a matrix (n may be 0), quant and scale planes.
typedef struct {
    const __half *s;       // the matrix's scale plane (NULL: none; the rows come from the ring)
    unsigned pitch, bytes; // quant bytes a row; both planes' bytes of the segment
    int spitch, type, r0, n;
} pd_seg;

typedef struct {
    uint64_t mbar[PD_SLOTS];
    int next;         // thread 0's: the next job of the table to issue
    long long clk[6]; // INFERNO_CUDA_PROFILE=3: thread 0's clocks waiting for each phase's jobs, issuing
} pd_ring;

__device__ __forceinline__ pd_seg pd_seg_of(const dmat &w, int r0, int n) {
    return pd_seg{w.s, (unsigned)w.pitch, (unsigned)n * ((unsigned)w.pitch + 2u * (unsigned)w.spitch),
                  w.spitch, w.type, r0, n};
}

// Segment m of job J (m < 3; segments the phase does not have are empty).
__device__ __forceinline__ pd_seg pd_job_seg(const pd_args &a, const dlayer *layers, const pd_jobd &J, int m) {
    if (J.ph == PD_PH_HEAD) return pd_seg_of(a.output, J.r0[m], J.n[m]);
    const dlayer &L = layers[J.l];
    if (J.ph == PD_PH_QKV) return pd_seg_of(m == 0 ? L.wq : m == 1 ? L.wk : L.wv, J.r0[m], J.n[m]);
    if (J.ph == PD_PH_GU) return pd_seg_of(m == 0 ? L.gate : L.up, J.r0[m], J.n[m]);
    return pd_seg_of(J.ph == PD_PH_WO ? L.wo : L.down, J.r0[m], J.n[m]);
}

__device__ __forceinline__ unsigned pd_smem_addr(const void *p) { return (unsigned)__cvta_generic_to_shared(p); }

// Thread 0: issues the copies of the jobs whose space and slot the block's reads (`consumed` jobs) have freed.
static __device__ void pd_issue(const pd_args &a, const pd_jobd *jobs, int n_jobs, pd_ring &rg, uint8_t *ring, int consumed) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    int j = rg.next;
    if (j < n_jobs && jobs[j].after <= consumed) // the block's generic reads of the space come before the copies
        asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    for (; j < n_jobs && jobs[j].after <= consumed; j++) {
        const pd_jobd &J = jobs[j];
        const unsigned mb = pd_smem_addr(&rg.mbar[j % PD_SLOTS]);
        asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(mb), "r"(J.bytes) : "memory");
        unsigned dst = pd_smem_addr(ring) + J.off;
#pragma unroll
        for (int k = 0; k < 6; k++)
            if (J.cb[k]) {
                asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                                 dst),
                             "l"(J.src[k]), "r"(J.cb[k]), "r"(mb)
                             : "memory");
                dst += J.cb[k];
            }
    }
    rg.next = j;
#else
    __trap(); // the host takes the ring only where the kernel was built for sm_90 or later
#endif
}

// Every thread: waits until job k's rows are in the ring; returns where they start.
__device__ __forceinline__ const uint8_t *pd_wait_job(const pd_jobd *jobs, pd_ring &rg, const uint8_t *ring, int k) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    const unsigned mb = pd_smem_addr(&rg.mbar[k % PD_SLOTS]), parity = (unsigned)(k / PD_SLOTS) & 1u;
    unsigned ok;
    do {
        asm volatile("{\n\t.reg .pred p;\n\tmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n\t"
                     "selp.u32 %0, 1, 0, p;\n\t}"
                     : "=r"(ok)
                     : "r"(mb), "r"(parity)
                     : "memory");
    } while (!ok);
#endif
    return ring + jobs[k].off;
}

// The block's warps over the rows of one matrix (wo, down, the head) from the ring: y[r] (+)= W[r] . x, two
// rows a warp at a time. res (accumulate): the block's own copy of y's rows from res0 on (the residual rows
// it owns in both wo and down), so that adding does not wait for an L2 read.
__device__ __forceinline__ void pd_ring_rows(const pd_seg &g, const uint8_t *q, const xop &x, float *y,
                                             float *res, int res0, int warp, int lane) {
    const __half *sc = g.s ? (const __half *)(q + (size_t)g.n * g.pitch) : nullptr;
    for (int i = 2 * warp; i < g.n; i += 2 * PD_WARPS) {
        const int i1 = min(i + 1, g.n - 1);
        const uint8_t *const wr[2] = {q + (size_t)i * g.pitch, q + (size_t)i1 * g.pitch};
        const __half *const sr[2] = {sc ? sc + (size_t)i * g.spitch : nullptr, sc ? sc + (size_t)i1 * g.spitch : nullptr};
        float acc[2][1] = {{0.0f}, {0.0f}};
        pd_dot<PD_ALL, 2, true>(g.type, wr, sr, x, lane, acc);
        const float v0 = warp_sum(acc[0][0]), v1 = warp_sum(acc[1][0]);
        if (lane == 0) {
            float *yr = y + g.r0 + i;
            if (res) {
                float *rr = res + (g.r0 + i - res0);
                yr[0] = rr[0] = rr[0] + v0;
                if (i + 1 < g.n) yr[1] = rr[1] = rr[1] + v1;
            } else {
                yr[0] = v0;
                if (i + 1 < g.n) yr[1] = v1;
            }
        }
    }
}

// gate/up rows from the ring: h = silu(gate . x) * (up . x), a row of each a warp at a time (two of each
// spill registers).
__device__ __forceinline__ void pd_ring_gu(const pd_seg &g, const pd_seg &u, const uint8_t *qg, const xop &x,
                                           float *hb, int warp, int lane) {
    const uint8_t *qu = qg + g.bytes;
    const __half *sg = g.s ? (const __half *)(qg + (size_t)g.n * g.pitch) : nullptr;
    const __half *su = u.s ? (const __half *)(qu + (size_t)u.n * u.pitch) : nullptr;
    for (int i = warp; i < g.n; i += PD_WARPS) {
        const uint8_t *const wr[2] = {qg + (size_t)i * g.pitch, qu + (size_t)i * u.pitch};
        const __half *const sr[2] = {sg ? sg + (size_t)i * g.spitch : nullptr, su ? su + (size_t)i * u.spitch : nullptr};
        float acc[2][1] = {{0.0f}, {0.0f}};
        pd_dot<PD_ALL, 2, true>(g.type, wr, sr, x, lane, acc);
        const float g0 = warp_sum(acc[0][0]), u0 = warp_sum(acc[1][0]);
        if (lane == 0) hb[g.r0 + i] = g0 / (1.0f + expf(-g0)) * u0;
    }
}

// q/k/v pairs of a job from the ring: segment m holds matrix m's rows (its pairs in local pair order); the
// job's pairs are dealt to the warps in turn across the segments. The loop over m is not unrolled (one copy
// of the dot products).
__device__ __forceinline__ void pd_ring_qkv(const pd_args &a, const dlayer *layers, const pd_jobd &J, const uint8_t *base,
                                            const xop &x, const float *rope, int cell, int warp, int lane) {
    int first = 0; // the job's index of the segment's first pair
#pragma unroll 1
    for (int m = 0; m < 3; m++) {
        const pd_seg g = pd_job_seg(a, layers, J, m);
        const int np = g.n >> 1;
        const __half *sc = g.s ? (const __half *)(base + (size_t)g.n * g.pitch) : nullptr;
        for (int idx = (warp - first) & (PD_WARPS - 1); idx < np; idx += PD_WARPS) {
            int r0, r1, rot;
            qkv_pair_rows(a.hd, a.n_rot, a.neox, m, (g.r0 >> 1) + idx, r0, r1, rot);
            const int i0 = r0 - g.r0, i1 = r1 - g.r0;
            const uint8_t *const wr[2] = {base + (size_t)i0 * g.pitch, base + (size_t)i1 * g.pitch};
            const __half *const sr[2] = {sc ? sc + (size_t)i0 * g.spitch : nullptr, sc ? sc + (size_t)i1 * g.spitch : nullptr};
            float acc[2][1] = {{0.0f}, {0.0f}};
            pd_dot<PD_ALL, 2, true>(g.type, wr, sr, x, lane, acc);
            const float y0 = warp_sum(acc[0][0]), y1 = warp_sum(acc[1][0]);
            if (lane == 0) pd_pair_out(a, layers[J.l], J.l, m, r0, r1, rot, y0, y1, rope, cell);
        }
        first += np;
        base += g.bytes;
    }
}

// RING: the weights come through the shared-memory ring (sm_90); else every warp reads its rows from global
// memory as it gets to them.
// SK: built for split-K wo and down (a.sk set; the by-rows code left out), else by rows (a.sk clear). PROF:
// with the trace and timeline points (INFERNO_CUDA_PROFILE=3 / 4); without, they compile to nothing. LONG: 0
// the short form, 1 the form past PD_ONE_SPLIT_MAX cached positions, 2 the same for head size 128.
template <bool RING, unsigned TM, bool SK, bool PROF, int LONG>
__global__ void __launch_bounds__(PD_THREADS, 1) k_decode_persistent(const pd_args a) {
    long long *const pd_trace_ = PROF ? a.trace : nullptr, *const pd_tl_ = PROF ? a.tl : nullptr;
    extern __shared__ __align__(128) uint8_t pd_smem[];
    __shared__ pd_ring rg;
    __shared__ float rope_s[PD_ROPE_MAX], xres[PD_XRES_MAX]; // ring: the token's RoPE pairs; the block's x rows
    float *xs_f = (float *)pd_smem;
    int8_t *xs_q = (int8_t *)(pd_smem + (size_t)a.max_in * 4);
    float2 *xs_ds = (float2 *)(pd_smem + (size_t)a.max_in * 5);
    float *pd_wts = (float *)(pd_smem + a.wts_at); // the attention merge's per-partial weights (3 n_head SB)
    uint8_t *ring = pd_smem + a.ring_at;
    // With the ring the layer table is copied into shared memory: thread 0 reads it for every job it issues,
    // and the ring leaves the SM little L1.
    // So is the block's job table (every thread reads the job it works on).
    const dlayer *layers = a.layers;
    const pd_jobd *jobs = nullptr;
    // The residual rows the block owns in wo and down (the same split of E rows; pd_plan).
    const int res0 = (int)((unsigned)a.E * blockIdx.x / gridDim.x), res1 = (int)((unsigned)a.E * (blockIdx.x + 1) / gridDim.x);
    const int cell = a.ints[2];
    if (threadIdx.x == 0) a.seq_cells[(size_t)a.ints[1] * a.n_ctx + a.ints[0]] = cell; // read after a __syncthreads
    int n_jobs = 0;
    if constexpr (RING) {
        dlayer *tab = (dlayer *)(pd_smem + a.tab_at);
        const int nw8 = a.n_layers * (int)(sizeof(dlayer) / 8);
        for (int i = threadIdx.x; i < nw8; i += PD_THREADS) ((uint64_t *)tab)[i] = ((const uint64_t *)a.layers)[i];
        layers = tab;
        n_jobs = a.job_count[blockIdx.x];
        pd_jobd *jt = (pd_jobd *)(pd_smem + a.jobs_at);
        const uint64_t *src = (const uint64_t *)(a.jobs + (size_t)blockIdx.x * a.job_stride);
        const int jw8 = n_jobs * (int)(sizeof(pd_jobd) / 8);
        for (int i = threadIdx.x; i < jw8; i += PD_THREADS) ((uint64_t *)jt)[i] = src[i];
        jobs = jt;
        for (int i = threadIdx.x; i < a.n_rot; i += PD_THREADS) rope_s[i] = a.rope[i];
        for (int i = res0 + (int)threadIdx.x; i < res1; i += PD_THREADS) xres[i - res0] = a.x[i];
        __syncthreads();
    }
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int gw = blockIdx.x * PD_WARPS + warp, nw = gridDim.x * PD_WARPS;
    unsigned epoch = 0;
    const int E = a.E, Q = a.Q, KV = a.KV, hd = a.hd;
    const int pos = a.ints[0], n_kv = pos + 1;
    // Key splits per head: one block a head while the cache is short (its output is then final: no merge),
    // else as many splits as the grid holds.
    // The LONG kernels (split-K, for caches past PD_ONE_SPLIT_MAX; the session takes them by the step's position)
    // with a.att_tc: a block per (KV head, key split) on tensor cores instead.
    // Up to a.tc_fuse positions the LONG form keeps the short form's fused attention and wo (one block a head
    // and part of wo's rows, no barrier between them) with each block's attention on tensor cores.
    const bool tc = LONG && SK && !RING && a.att_tc && n_kv > PD_ONE_SPLIT_MAX && (int)gridDim.x / a.n_head_kv > 1;
    const bool fuse = tc && n_kv <= a.tc_fuse;
    const int SB = n_kv <= PD_ONE_SPLIT_MAX || fuse ? 1
                   : tc                    ? min(a.max_splits, (int)gridDim.x / a.n_head_kv)
                                           : max(1, min(a.max_splits, (int)gridDim.x / a.n_head));
    const bool pf = !RING && !SK && a.prefetch && lane == 0; // (by rows only: split-K leaves it out)
    const int n_pairs = (Q >> 1) + (KV >> 1) * 2;
    // Pairs of q/k/v rows a KV head waits for in a layer (its q heads' and its own k and v rows).
    const unsigned kv_pairs = (unsigned)((a.n_head / a.n_head_kv) * (hd >> 1) + hd);
    int consumed = 0; // the ring's jobs the block has read (the same count in every thread)
    // Split-K (a.sk, never with the ring): the residual alternates between x and x2 (each layer's down adds into
    // the other one, which the quads' owners zeroed at the layer's start and add the layer's residual to); the
    // block owns quads [oq0, oq1) of it and units [su0, su1) of down's columns (its rows of gate and up).
    // (Computed where used, from the arguments: kept live across the layer they spill registers.)
    constexpr bool sk = !RING && SK;
    // sk_pf 128: where the block has warps without a q/k/v pair, they copy the gate/up stage's norm weights into
    // shared memory (free from the qkv stage to the gate/up stage), and the wo barrier's wait does not.
    const bool nw_early = sk && (a.sk_pf & 128) && a.nw_at && SB == 1 &&
                          (PD_WARPS - 1) * (int)gridDim.x + (int)blockIdx.x >= n_pairs;
#define SK_XC(l_) (sk && ((l_) & 1) ? a.x2 : a.x) /* layer l_'s residual */
#define SK_XN(l_) ((l_) & 1 ? a.x : a.x2)         /* the one its down adds into */
#define SK_SPLIT(n_, i_) ((int)((unsigned)(n_) * (unsigned)(i_) / gridDim.x)) /* block i_'s first of n_ items */
    // The split-K shared area: the reduction's float4s, then the block's input slice as F32 (sk_umax * 16), its
    // 8-bit values, scales and sums.
#define SK_RED ((float4 *)(pd_smem + a.sk_at))
#define SK_F ((float *)(pd_smem + a.sk_at + PD_THREADS * 16))
#define SK_Q ((int8_t *)(SK_F + a.sk_umax * 16))
#define SK_S ((float *)(SK_Q + a.sk_umax * 16))
#define SK_SUM ((int *)(SK_S + a.sk_umax))
#define SK_OP (skop{(const int4 *)SK_Q, SK_S, SK_SUM, SK_F})
    if constexpr (RING) {
        if (threadIdx.x == 0) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
            for (int i = 0; i < PD_SLOTS; i++)
                asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(pd_smem_addr(&rg.mbar[i])) : "memory");
            asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
#endif
            rg.next = 0;
            for (int i = 0; i < 6; i++) rg.clk[i] = 0;
            pd_issue(a, jobs, n_jobs, rg, ring, 0);
        }
        __syncthreads();
    }
    // The block's jobs of phase ph (RING): wait for each, run fn on it, and let thread 0 refill the ring after
    // every job but the phase's last (the grid barrier that follows does it then).
#define PD_ISSUE() \
    do { \
        const long long c0_ = a.trace ? clock64() : 0; \
        pd_issue(a, jobs, n_jobs, rg, ring, consumed); \
        if (a.trace) rg.clk[5] += clock64() - c0_; \
    } while (0)
#define PD_JOBS(l_, ph_, fn) \
    do { \
        while (consumed < n_jobs && jobs[consumed].l == (l_) && jobs[consumed].ph == (ph_)) { \
            if (rg.next <= consumed) { /* not issued yet: its space is freed by this phase's jobs */ \
                __syncthreads(); \
                if (threadIdx.x == 0) PD_ISSUE(); \
                __syncthreads(); \
            } \
            const pd_jobd &J = jobs[consumed]; \
            const long long c0_ = a.trace && threadIdx.x == 0 ? clock64() : 0; \
            const uint8_t *base = pd_wait_job(jobs, rg, ring, consumed); \
            if (a.trace && threadIdx.x == 0) rg.clk[ph_] += clock64() - c0_; \
            fn; \
            consumed++; \
        } \
    } while (0)
    // A grid barrier; with the ring, thread 0 refills it between its arrival and its wait. Timeline: arrival
    // at point k_ of layer l_, posted at barrier i_'s slot, release at point rk_ of layer rl_.
#define PD_SYNC(l_, k_, i_, rl_, rk_) \
    do { \
        pd_arrive(a.bar, &epoch, pd_tl_, a.n_layers, l_, k_); \
        PD_TLM(l_, PD_TL_POSTED + (i_)); \
        if constexpr (RING) \
            if (threadIdx.x == 0) PD_ISSUE(); \
        pd_await(a.bar, epoch); \
        PD_TLM(rl_, rk_); \
    } while (0)
    // A grid barrier during which the block's threads other than the waiting one copy the norm weights nw_ (E
    // floats) of the stage after it into shared memory (a.nw_at): the stage then reads them there instead of
    // from global memory (evicted since the previous step: a DRAM round trip in every stage otherwise). pf_
    // (every thread) issues prefetches before that copy (sk_pf 64) or after it (32).
#define PD_SYNC_NW(l_, k_, i_, rl_, rk_, nw_, pf_, copy_) \
    do { \
        pd_arrive(a.bar, &epoch, pd_tl_, a.n_layers, l_, k_); \
        PD_TLM(l_, PD_TL_POSTED + (i_)); \
        if (a.sk_pf & 64) pf_; \
        if (a.nw_at && (copy_) && threadIdx.x != 0) \
            for (int i = (int)threadIdx.x - 1; i < (E >> 2); i += PD_THREADS - 1) \
                ((float4 *)(pd_smem + a.nw_at))[i] = __ldg((const float4 *)(nw_) + i); \
        if (a.sk_pf & 32) pf_; \
        pd_await(a.bar, epoch); \
        PD_TLM(rl_, rk_); \
    } while (0)
#define PD_NW(w_) (a.nw_at ? (const float *)(pd_smem + a.nw_at) : (w_)) /* where the stage reads its norm weights */
    // The warp's first gate and up rows of layer N's split-K gate/up into L2 (sk_pf 64: before the barrier's
    // copy of the norm weights, 32: after it).
#define PD_GUPF(N_) \
    do { \
        const int su0_ = SK_SPLIT(a.F >> 4, blockIdx.x), nr_ = (SK_SPLIT(a.F >> 4, blockIdx.x + 1) - su0_) * 16; \
        if (sk && warp < nr_) pd_pf_row((N_).gate, su0_ * 16 + warp, lane), pd_pf_row((N_).up, su0_ * 16 + warp, lane); \
    } while (0)
    for (int l = 0; l < a.n_layers; l++) {
        const dlayer &L = layers[l];
        // ---- q, k, v with RoPE; k and v into the cache ----
        PD_MARK(l, PD_T_START);
        if (l == 0) PD_TLM(0, PD_TL_START);
        if (sk) // nobody reads it until this layer's down adds to it (after two barriers)
            for (int q = SK_SPLIT(E >> 2, blockIdx.x) + (int)threadIdx.x; q < SK_SPLIT(E >> 2, blockIdx.x + 1);
                 q += PD_THREADS)
                __stcg((float4 *)SK_XN(l) + q, make_float4(0.0f, 0.0f, 0.0f, 0.0f));
        pd_stage(SK_XC(l), l > 0 ? PD_NW(L.attn_norm) : L.attn_norm, E, a.eps, xs_f, xs_q, xs_ds);
        PD_MARK(l, PD_T_QKV_STAGE);
        PD_TLM(l, PD_TL_QKV_STAGED);
        {
            const xop xs = {xs_q, xs_ds, xs_f, E};
            if constexpr (RING) {
                PD_JOBS(l, PD_PH_QKV, pd_ring_qkv(a, layers, J, base, xs, rope_s, cell, warp, lane));
            } else {
                // Warps without a pair stream the layer's other weights into L2 meanwhile.
                // Pairs are dealt to every block's warp 0, then every block's warp 1, ...: all SMs share the
                // reads (dealt warp by warp, the first 80 of 132 blocks took them all: ~0.25 us a layer more).
                const int qw = warp * (int)gridDim.x + (int)blockIdx.x;
                // A warp without a pair: its threads are it_ of the block's nit_ such.
                const int it_ = (qw - n_pairs) / (int)gridDim.x * 32 + lane,
                          nit_ = (PD_WARPS - max(0, n_pairs - (int)blockIdx.x + (int)gridDim.x - 1) / (int)gridDim.x) * 32;
                if (sk && (a.sk_pf & 16) && SB == 1 && qw >= n_pairs) {
                    // Warps without a pair: the cached keys and values of the block's attention item (all but
                    // the token's own, written in this phase) into L2.
                    const int NQ = max(1, (int)gridDim.x / a.n_head);
                    if ((int)blockIdx.x < a.n_head * NQ) {
                        const int h = (int)blockIdx.x / NQ;
                        const size_t off = (size_t)l * (size_t)a.n_ctx * (size_t)KV + (size_t)(h / (a.n_head / a.n_head_kv)) * hd;
                        const int32_t *cells = a.seq_cells + (size_t)a.ints[1] * a.n_ctx;
                        for (int j = it_; j < 2 * (n_kv - 1); j += nit_) {
                            const __half *p = ((j & 1) ? a.vc : a.kc) + off + (size_t)cells[j >> 1] * KV;
                            for (int b = 0; b < hd * 2; b += 128) asm volatile("prefetch.global.L2 [%0];" ::"l"((const uint8_t *)p + b));
                        }
                    }
                }
                if (nw_early && qw >= n_pairs)
                    for (int i = it_; i < (E >> 2); i += nit_)
                        ((float4 *)(pd_smem + a.nw_at))[i] = __ldg((const float4 *)L.ffn_norm + i);
                if (pf && qw >= n_pairs) {
                    const dmat *const ms[4] = {&L.wo, &L.gate, &L.up, &L.down};
                    pd_prefetch_share(ms, 4, qw - n_pairs, nw - n_pairs);
                }
                const int hq = Q >> 1, hk = KV >> 1;
                for (int gp = qw; gp < n_pairs; gp += nw) {
                    const int mat = gp < hq ? 0 : gp < hq + hk ? 1 : 2;
                    const int local = gp - (mat == 0 ? 0 : mat == 1 ? hq : hq + hk);
                    int r0, r1, rot;
                    qkv_pair_rows(a.hd, a.n_rot, a.neox, mat, local, r0, r1, rot);
                    const dmat &w = mat == 0 ? L.wq : mat == 1 ? L.wk : L.wv;
                    const uint8_t *const wr[2] = {pd_row(w, r0), pd_row(w, r1)};
                    const __half *const sr[2] = {pd_srow(w, r0), pd_srow(w, r1)};
                    float acc[2][1] = {{0.0f}, {0.0f}};
                    pd_dot<TM, 2>(w.type, wr, sr, xs, lane, acc);
                    const float y0 = warp_sum(acc[0][0]), y1 = warp_sum(acc[1][0]);
                    if (lane != 0) continue;
                    pd_pair_out(a, L, l, mat, r0, r1, rot, y0, y1, a.rope, cell);
                    if (!SK && a.kv_ready) { // this pair is in place (release: the stores above come first)
                        const int kvh = mat == 0 ? r0 / hd / (a.n_head / a.n_head_kv) : r0 / hd;
                        asm volatile("red.release.gpu.global.add.u32 [%0], %1;" ::"l"(a.kv_ready + kvh), "r"(1u)
                                     : "memory");
                    }
                }
            }
        }
        PD_MARK(l, PD_T_QKV);
        // Attention waits for its KV head's pairs only (a.kv_ready), or for the whole grid.
        if (RING || SK || !a.kv_ready) {
            PD_SYNC(l, PD_TL_QKV_ARRIVE, 0, l, PD_TL_QKV_RELEASE);
        } else { // no barrier: the timeline's three points are thread 0's time here
            PD_TLM(l, PD_TL_QKV_ARRIVE);
            PD_TLM(l, PD_TL_POSTED);
            PD_TLM(l, PD_TL_QKV_RELEASE);
        }
        PD_MARK(l, PD_T_QKV_SYNC);
        if (sk && SB == 1) {
            // ---- attention and x += wo . output: a block per (head, part of wo's rows); the parts of a head
            // each compute its output (short caches: cheaper than a barrier) and multiply their rows' columns ----
            const int NQ = max(1, (int)gridDim.x / a.n_head), hu = hd >> 4;
            for (int it = blockIdx.x; it < a.n_head * NQ; it += gridDim.x) {
                const int h = it / NQ, part = it - h * NQ;
                if ((a.sk_pf & 8) && threadIdx.x == PD_THREADS - 32) { // the item's wo slice into L2
                    const uint64_t qb = (uint64_t)col_qb(L.wo_c.type);
                    const int p0 = (E >> 2) * part / NQ, p1 = (E >> 2) * (part + 1) / NQ;
                    for (int k = 0; k < hu; k++)
                        pd_prefetch(L.wo_c.q + ((uint64_t)(h * hu + k) * (uint64_t)L.wo_c.n_out + 4 * (uint64_t)p0) * qb,
                                    4 * (uint64_t)(p1 - p0) * qb);
                }
                if (LONG && fuse) {
                    pd_attention_tc_hd<LONG, true>(a, l, h / (a.n_head / a.n_head_kv), 0, n_kv, 1, 0, xs_f, h, SK_F);
                } else pd_attention_block(a, l, h, 0, n_kv, nullptr, SK_F, xs_f);
                PD_TLM(l, PD_TL_ATT_ARRIVE); // (the timeline's points: the block's last item's)
                PD_TLM(l, PD_TL_POSTED + 1);
                pd_sk_quant(SK_F, hd, SK_Q, SK_S, SK_SUM);
                PD_TLM(l, PD_TL_ATT_RELEASE);
                const int q0 = (E >> 2) * part / NQ, q1 = (E >> 2) * (part + 1) / NQ;
                pd_splitk<TM>(L.wo_c, q0, q1 - q0, h * hu, hu, SK_OP, SK_XC(l), SK_RED, nullptr, 0, 0);
                __syncthreads(); // sk_f, sk_q are the next item's
                PD_TLM(l, PD_TL_WO_STAGED);
            }
            if ((a.sk_pf & 1) && (int)blockIdx.x >= a.n_head * NQ && lane == 0) {
                // The blocks without an item stream wo's column copy into L2 for the others.
                const int n_idle = (int)gridDim.x - a.n_head * NQ;
                pd_prefetch_cmat(L.wo_c, warp * n_idle + (int)blockIdx.x - a.n_head * NQ, n_idle * PD_WARPS);
            }
            if ((int)blockIdx.x >= a.n_head * NQ) { // no item: the points here
                PD_TLM(l, PD_TL_ATT_ARRIVE);
                PD_TLM(l, PD_TL_POSTED + 1);
                PD_TLM(l, PD_TL_ATT_RELEASE);
                PD_TLM(l, PD_TL_WO_STAGED);
            }
            PD_MARK(l, PD_T_ATT);
            PD_MARK(l, PD_T_ATT_SYNC);
            PD_MARK(l, PD_T_WO_COPY);

        } else {
        // ---- attention: a block per (head, key split), one partial each; or per (KV head, key split) ----
        if constexpr (LONG)
            if (tc)
                for (int it = blockIdx.x; it < a.n_head_kv * SB; it += gridDim.x) {
                    const int g = it / SB, split = it - g * SB, chunk = (n_kv + SB - 1) / SB;
                    const int k0 = split * chunk, k1 = min(k0 + chunk, n_kv);
                    pd_attention_tc_hd<LONG, false>(a, l, g, k0, k1, SB, split, xs_f, 0, nullptr);
                }
        for (int it = blockIdx.x; !tc && it < a.n_head * SB; it += gridDim.x) {
            const int h = it / SB, split = it - h * SB, chunk = (n_kv + SB - 1) / SB;
            const int k0 = split * chunk, k1 = min(k0 + chunk, n_kv);
            if (!RING && !SK && a.kv_ready) {
                if (threadIdx.x == 0) {
                    const unsigned *c = a.kv_ready + h / (a.n_head / a.n_head_kv), want = (unsigned)(l + 1) * kv_pairs;
                    unsigned v;
                    do {
                        asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(c) : "memory");
                    } while (v < want);
                }
                __syncthreads();
            }
            pd_attention_block(a, l, h, k0, k1, a.att + (size_t)it * (size_t)(hd + 2),
                               SB == 1 ? a.xb + (size_t)h * hd : nullptr, xs_f);
        }
        PD_MARK(l, PD_T_ATT);
        PD_SYNC(l, PD_TL_ATT_ARRIVE, 1, l, PD_TL_ATT_RELEASE);
        PD_MARK(l, PD_T_ATT_SYNC);
        if (LONG && sk && SB > 1) {
            // ---- x += wo . attention output, split-K as for short caches: a block per (head, part of wo's
            // rows) merges that head's partials only, then multiplies wo's columns of the head ----
            const int NQ = max(1, (int)gridDim.x / a.n_head), hu = hd >> 4;
            for (int it = blockIdx.x; it < a.n_head * NQ; it += gridDim.x) {
                const int h = it / NQ, part = it - h * NQ;
                pd_head_merge(a, h, SB, SK_F, xs_f);
                pd_sk_quant(SK_F, hd, SK_Q, SK_S, SK_SUM);
                const int q0 = (E >> 2) * part / NQ, q1 = (E >> 2) * (part + 1) / NQ;
                pd_splitk<TM>(L.wo_c, q0, q1 - q0, h * hu, hu, SK_OP, SK_XC(l), SK_RED, nullptr, 0, 0);
                __syncthreads(); // sk_f, sk_q are the next item's
            }
            PD_MARK(l, PD_T_WO_COPY);
            PD_TLM(l, PD_TL_WO_STAGED);
        } else {
        // ---- x += wo . attention output (each block merges the partials itself) ----
        if (SB == 1) pd_stage(a.xb, nullptr, Q, 0.0f, xs_f, xs_q, xs_ds);
        else pd_attention_merge(a, SB, pd_wts, xs_f, xs_q, xs_ds);
        PD_MARK(l, PD_T_WO_COPY);
        PD_TLM(l, PD_TL_WO_STAGED);
        if constexpr (RING) PD_JOBS(l, PD_PH_WO, pd_ring_rows(pd_job_seg(a, layers, J, 0), base, xop{xs_q, xs_ds, xs_f, Q}, a.x, xres, res0, warp, lane));
        else pd_matvec<TM>(L.wo, xop{xs_q, xs_ds, xs_f, Q}, SK_XC(l), true, gw, nw, lane);
        }
        }
        PD_MARK(l, PD_T_WO);
        PD_SYNC_NW(l, PD_TL_WO_ARRIVE, 2, l, PD_TL_WO_RELEASE, L.ffn_norm, PD_GUPF(L), !nw_early);
        PD_MARK(l, PD_T_WO_SYNC);
        // ---- h = silu(gate . x) * (up . x), two rows of each a warp ----
        pd_stage(SK_XC(l), PD_NW(L.ffn_norm), E, a.eps, xs_f, xs_q, xs_ds);
        PD_MARK(l, PD_T_GU_STAGE);
        PD_TLM(l, PD_TL_GU_STAGED);
        if (sk) {
            // ---- the block's rows of h = silu(gate . x) * (up . x), then x' = x + down[:, rows] . h ----
            const xop xs = {xs_q, xs_ds, xs_f, E};
            const int su0 = SK_SPLIT(a.F >> 4, blockIdx.x), nu = SK_SPLIT(a.F >> 4, blockIdx.x + 1) - su0;
            const int r0 = su0 * 16, nr = nu * 16;
            for (int i = warp; i < nr; i += PD_WARPS) {
                const uint8_t *const wr[2] = {pd_row(L.gate, r0 + i), pd_row(L.up, r0 + i)};
                const __half *const sr[2] = {pd_srow(L.gate, r0 + i), pd_srow(L.up, r0 + i)};
                float acc[2][1] = {{0.0f}, {0.0f}};
                pd_dot<TM, 2>(L.gate.type, wr, sr, xs, lane, acc);
                const float g0 = warp_sum(acc[0][0]), u0 = warp_sum(acc[1][0]);
                if (lane == 0) SK_F[i] = g0 / (1.0f + expf(-g0)) * u0;
            }
            __syncthreads();
            PD_MARK(l, PD_T_GU);
            PD_MARK(l, PD_T_GU_SYNC);
            PD_TLM(l, PD_TL_GU_ARRIVE);
            PD_TLM(l, PD_TL_POSTED + 3);
            PD_TLM(l, PD_TL_GU_RELEASE);
            pd_sk_quant(SK_F, nr, SK_Q, SK_S, SK_SUM);
            PD_MARK(l, PD_T_DOWN_STAGE);
            PD_TLM(l, PD_TL_DOWN_STAGED);
            pd_splitk<TM>(L.down_c, 0, E >> 2, su0, nu, SK_OP, SK_XN(l), SK_RED, SK_XC(l), SK_SPLIT(E >> 2, blockIdx.x),
                      SK_SPLIT(E >> 2, blockIdx.x + 1));
            PD_MARK(l, PD_T_DOWN);
            PD_SYNC_NW(l, PD_TL_DOWN_ARRIVE, 4, l + 1, PD_TL_START,
                       l + 1 < a.n_layers ? layers[l + 1].attn_norm : a.output_norm, (void)0, true);
            continue;
        }
        {
            const xop xs = {xs_q, xs_ds, xs_f, E};
            const int F = a.F;
            if constexpr (RING) {
                PD_JOBS(l, PD_PH_GU, pd_ring_gu(pd_job_seg(a, layers, J, 0), pd_job_seg(a, layers, J, 1), base, xs, a.hb, warp, lane));
            } else {
                for (int r = 2 * gw; r < F; r += 2 * nw) {
                    const int r1 = min(r + 1, F - 1);
                    const uint8_t *const wr[4] = {pd_row(L.gate, r), pd_row(L.gate, r1), pd_row(L.up, r),
                                                  pd_row(L.up, r1)};
                    const __half *const sr[4] = {pd_srow(L.gate, r), pd_srow(L.gate, r1), pd_srow(L.up, r),
                                                 pd_srow(L.up, r1)};
                    float acc[4][1] = {{0.0f}, {0.0f}, {0.0f}, {0.0f}};
                    pd_dot<TM, 4>(L.gate.type, wr, sr, xs, lane, acc);
                    const float g0 = warp_sum(acc[0][0]), g1 = warp_sum(acc[1][0]);
                    const float u0 = warp_sum(acc[2][0]), u1 = warp_sum(acc[3][0]);
                    if (lane == 0) {
                        a.hb[r] = g0 / (1.0f + expf(-g0)) * u0;
                        if (r + 1 < F) a.hb[r + 1] = g1 / (1.0f + expf(-g1)) * u1;
                    }
                }
            }
        }
        PD_MARK(l, PD_T_GU);
        PD_SYNC(l, PD_TL_GU_ARRIVE, 3, l, PD_TL_GU_RELEASE);
        PD_MARK(l, PD_T_GU_SYNC);
        // ---- x += down . h ----
        pd_stage(a.hb, nullptr, a.F, 0.0f, xs_f, xs_q, xs_ds);
        if (pf && l + 1 < a.n_layers && gw >= L.down.n_out) { // idle warps: the next layer's q, k, v
            const dlayer &N = layers[l + 1];
            const dmat *const ms[3] = {&N.wq, &N.wk, &N.wv};
            pd_prefetch_share(ms, 3, gw - L.down.n_out, nw - L.down.n_out);
        }
        PD_MARK(l, PD_T_DOWN_STAGE);
        PD_TLM(l, PD_TL_DOWN_STAGED);
        if constexpr (RING)
            PD_JOBS(l, PD_PH_DOWN, pd_ring_rows(pd_job_seg(a, layers, J, 0), base, xop{xs_q, xs_ds, xs_f, a.F}, a.x, xres, res0, warp, lane));
        else pd_matvec<TM>(L.down, xop{xs_q, xs_ds, xs_f, a.F}, SK_XC(l), true, gw, nw, lane);
        PD_MARK(l, PD_T_DOWN);
        // The release of the down barrier starts the next layer (or the head).
        PD_SYNC(l, PD_TL_DOWN_ARRIVE, 4, l + 1, PD_TL_START);
    }
    // ---- output norm and head ----
    PD_MARK(a.n_layers, 0);

    pd_stage(SK_XC(a.n_layers), sk ? PD_NW(a.output_norm) : a.output_norm, E, a.eps, xs_f, xs_q, xs_ds);
    PD_MARK(a.n_layers, 1);
    PD_TLM(a.n_layers, 1);
    if (blockIdx.x == 0)
        for (int i = threadIdx.x; i < E; i += PD_THREADS) a.xb[i] = xs_f[i];
    if constexpr (RING)
        PD_JOBS(a.n_layers, PD_PH_HEAD, pd_ring_rows(pd_job_seg(a, layers, J, 0), base, xop{xs_q, xs_ds, xs_f, E}, a.logits, nullptr, 0, warp, lane));
    else if (a.head_stage) pd_head_block<TM>(a.output, xop{xs_q, xs_ds, xs_f, E}, a.logits, xs_f + E, warp, lane);
    else pd_matvec2<TM>(a.output, xop{xs_q, xs_ds, xs_f, E}, a.logits, gw, nw, lane);
#undef PD_JOBS
#undef PD_SYNC
#undef PD_SYNC_NW
#undef PD_GUPF
#undef PD_NW
#undef SK_XC
#undef SK_XN
#undef SK_SPLIT
#undef SK_RED
#undef SK_F
#undef SK_Q
#undef SK_S
#undef SK_SUM
#undef SK_OP
#undef PD_ISSUE
    if (RING && a.trace && threadIdx.x == 0) // summed over the blocks after the head's two edges
        for (int i = 0; i < 6; i++)
            atomicAdd((unsigned long long *)&a.trace[a.n_layers * PD_EDGES + 3 + i], (unsigned long long)rg.clk[i]);
    PD_MARK(a.n_layers, 2);
    __syncthreads();
    PD_TLM(a.n_layers, 2);
    // The last block out resets the barrier for the next launch (launches on the stream never overlap).
    __syncthreads();
    if (threadIdx.x == 0) {
        __threadfence();
        if (atomicAdd(a.bar + 1, 1u) == gridDim.x - 1) {
            a.bar[0] = 0;
            a.bar[1] = 0;
            if (a.kv_ready)
                for (int i = 0; i < a.n_head_kv; i++) a.kv_ready[i] = 0;
            __threadfence();
        }
    }
}

// The instantiations of one weight-type set (decode_persistent.h: pd_kset), for a translation unit of its own.
#define PD_KL(tm_, long_) {k_decode_persistent<false, tm_, true, false, long_>, k_decode_persistent<false, tm_, true, true, long_>}
#define PD_KSET(name_, tm_) const pd_kset name_ = {tm_, {PD_KL(tm_, 0), PD_KL(tm_, 1)}, k_decode_persistent<false, tm_, true, false, 2>};
