// decode_persistent.cuh: the persistent decode kernel, included by cuda_backend.cu (it uses that file's
// device helpers, dmat and dlayer). A decode step of one token runs as ONE launch: every block of a grid
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
// Opt-in variants (measured within noise on an H100): INFERNO_CUDA_PD_FLAGS=1 replaces the barrier after
// qkv with per-KV-head counters the attention blocks wait on; INFERNO_CUDA_PD_PREFETCH=1 has the warps a
// phase leaves idle stream the next phase's weights into L2.
//
// Memory ordering: data written inside the launch by other blocks (x, q, the new K/V rows, partials, h) is
// read with ld.global.cg (L2), never through L1 or the read-only path; the weights, norms, RoPE table and
// cell table are read-only for the launch. Barriers and counters are release/acquire pairs at GPU scope.
//
// Leaves out: batches of more than one token (the dp4a kernels take them), head sizes that are not a
// multiple of 32, widths not a multiple of 32 or above PD_STAGE_MAX (the caller falls back to the per-op
// kernels).

#define PD_THREADS 512
#define PD_WARPS (PD_THREADS / 32)
#define PD_ONE_SPLIT_MAX 128 // cache lengths up to this take one attention block a head (no merge)

typedef struct {
    const dlayer *layers; // device copy of the GPU layers' table, (n_layers)
    int n_layers;
    const float *output_norm;
    dmat output;
    int E, Q, KV, F, hd, n_head, n_head_kv, n_rot, neox, n_vocab, n_ctx, max_in;
    int max_splits;            // key splits a head the partials buffer and the merge's weights hold
    int wts_at;                // byte offset of the merge's weights in the dynamic shared memory
    int prefetch;              // idle warps prefetch the next phase's weights into L2 (INFERNO_CUDA_PD_PREFETCH=1)
    float eps, att_scale;
    float *x;                  // residual stream (E), updated in place
    const float *rope;         // (n_rot) cos/sin pairs of the token's position
    const int32_t *ints;       // pos, seq, cell, out_row of the one token
    const int32_t *seq_cells;  // (n_seq, n_ctx) cell of each position
    __half *kc, *vc;           // layer 0 of the GPU layers' cache; layer l at + l * n_ctx * KV
    float *q;                  // (Q)
    float *att;                // partials (n_head, splits, hd + 2)
    float *xb;                 // the attention output (Q) of one-split steps; at the end the final-norm state (E)
    float *hb;                 // SwiGLU output (F)
    float *logits;             // (n_vocab)
    unsigned *bar;             // [0] barrier arrivals, [1] blocks done; zero between launches
    unsigned *kv_ready;        // (n_head_kv) q/k/v pairs written a KV head over the step's layers, zero
                               // between launches (INFERNO_CUDA_PD_FLAGS=1); NULL: a grid barrier after qkv
    long long *trace;          // INFERNO_CUDA_PROFILE=3: block 0's clock at each phase edge, else NULL
} pd_args;

// Phase edges block 0 records with INFERNO_CUDA_PROFILE=3: PD_EDGES a layer, then 3 for the head.
enum { PD_T_START, PD_T_QKV_STAGE, PD_T_QKV, PD_T_QKV_SYNC, PD_T_ATT, PD_T_ATT_SYNC, PD_T_WO_COPY, PD_T_WO,
       PD_T_WO_SYNC, PD_T_GU_STAGE, PD_T_GU, PD_T_GU_SYNC, PD_T_DOWN_STAGE, PD_T_DOWN, PD_EDGES };
#define PD_MARK(l, k) \
    do { \
        if (a.trace && blockIdx.x == 0 && threadIdx.x == 0) a.trace[(l) * PD_EDGES + (k)] = clock64(); \
    } while (0)

// Grid-wide barrier over co-resident blocks. *epoch counts the arrivals this block expects before it may go
// on (every block keeps the same count). Thread 0 publishes the block's writes (fence, then the arrival),
// waits with acquire loads, and the block's barrier passes the ordering on to its other threads.
__device__ __forceinline__ void pd_sync(unsigned *bar, unsigned *epoch) {
    __syncthreads();
    *epoch += gridDim.x;
    if (threadIdx.x == 0) {
        // The release add publishes what the block wrote before the __syncthreads (cumulativity); the
        // acquire load that sees every arrival makes the other blocks' writes visible to this one.
        asm volatile("red.release.gpu.global.add.u32 [%0], %1;" ::"l"(bar), "r"(1u) : "memory");
        unsigned v;
        do {
            asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(bar) : "memory");
        } while (v < *epoch);
    }
    __syncthreads();
}

// acc[r][0] += row r of a matrix of the given type . x (x in shared memory); the switch is warp-uniform.
template <int R>
__device__ __forceinline__ void pd_dot(int type, const uint8_t *const (&w)[R], const __half *const (&s)[R],
                                       const xop &x, int lane, float (&acc)[R][1]) {
    switch (type) {
    case T_Q4_K: dot_rows<T_Q4_K, R, 1, true>(w, s, x, 1, lane, acc); break;
    case T_Q6_K: dot_rows<T_Q6_K, R, 1, true>(w, s, x, 1, lane, acc); break;
    case T_Q4_0: dot_rows<T_Q4_0, R, 1, true>(w, s, x, 1, lane, acc); break;
    case T_Q8_0: dot_rows<T_Q8_0, R, 1, true>(w, s, x, 1, lane, acc); break;
    case T_F16: dot_rows<T_F16, R, 1, true>(w, s, x, 1, lane, acc); break;
    default: dot_rows<T_F32, R, 1, true>(w, s, x, 1, lane, acc); break;
    }
}

__device__ __forceinline__ const uint8_t *pd_row(const dmat &w, int r) { return w.d + (uint64_t)r * w.pitch; }
__device__ __forceinline__ const __half *pd_srow(const dmat &w, int r) {
    return w.s ? w.s + (size_t)r * w.spitch : nullptr;
}

// y[r] = (y[r] +) W[r] . x for every row r, rows spread over all warps of the grid.
__device__ void pd_matvec(const dmat &w, const xop &x, float *y, bool accumulate, int gw, int nw, int lane) {
    for (int r = gw; r < w.n_out; r += nw) {
        const uint8_t *const wr[1] = {pd_row(w, r)};
        const __half *const sr[1] = {pd_srow(w, r)};
        float acc[1][1] = {{0.0f}};
        pd_dot<1>(w.type, wr, sr, x, lane, acc);
        const float v = warp_sum(acc[0][0]);
        if (lane == 0) y[r] = accumulate ? __ldcg(y + r) + v : v;
    }
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

// Unit u of n_units of an L2 prefetch of the nm matrices (quant and scale planes in PD_PF_CHUNK pieces): the
// warps a phase leaves idle stream the next phase's weights into L2 with it.
#define PD_PF_CHUNK 65536
__device__ void pd_prefetch_share(const dmat *const *ms, int nm, int u, int n_units) {
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

// The block's share of the attention of head h: keys [k0, k1) of the token's sequence, spread over the
// block's warps (hd / 8 lanes a key, 8 values a lane), merged in shared memory (sm: PD_WARPS * (hd + 2)
// floats) into one partial (max, sum, unnormalized output) at part, or, when out is not NULL (the head has
// one split), into the head's normalized output at out + h * hd. hd % 32 == 0.
__device__ void pd_attention_block(const pd_args &a, int l, int h, int k0, int k1, float *part, float *out,
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
            out[(size_t)h * hd + d] = v / Lt;
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
__device__ void pd_attention_merge(const pd_args &a, int SB, float *wts, float *xf, int8_t *xq, float2 *xds) {
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

// Copies n values (n % 32 == 0, n <= PD_STAGE_MAX) of a global F32 vector written in this launch into shared
// memory as F32 and 8-bit blocks, RMSNormed with w first when w is not NULL: one pass (each thread keeps its
// chunks of 8 in registers), one L2 round trip.
#define PD_STAGE_CHUNKS 4
#define PD_STAGE_MAX (PD_STAGE_CHUNKS * PD_THREADS * 8)
__device__ void pd_stage(const float *src, const float *w, int n, float eps, float *xf, int8_t *xq, float2 *xds) {
    const int nc = n >> 3;
    float v[PD_STAGE_CHUNKS][8];
    float4 wv[PD_STAGE_CHUNKS][2]; // the norm weights, loaded with x (one round trip for both)
    float ss = 0.0f;
#pragma unroll
    for (int k = 0; k < PD_STAGE_CHUNKS; k++) {
        const int c = (int)threadIdx.x + k * PD_THREADS;
        if (c < nc) {
            const float4 x0 = __ldcg((const float4 *)src + 2 * c), x1 = __ldcg((const float4 *)src + 2 * c + 1);
            if (w) wv[k][0] = __ldg((const float4 *)w + 2 * c), wv[k][1] = __ldg((const float4 *)w + 2 * c + 1);
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

__global__ void __launch_bounds__(PD_THREADS, 1) k_decode_persistent(const pd_args a) {
    extern __shared__ __align__(16) uint8_t pd_smem[];
    float *xs_f = (float *)pd_smem;
    int8_t *xs_q = (int8_t *)(pd_smem + (size_t)a.max_in * 4);
    float2 *xs_ds = (float2 *)(pd_smem + (size_t)a.max_in * 5);
    float *pd_wts = (float *)(pd_smem + a.wts_at); // the attention merge's per-partial weights (3 n_head SB)
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int gw = blockIdx.x * PD_WARPS + warp, nw = gridDim.x * PD_WARPS;
    unsigned epoch = 0;
    const int E = a.E, Q = a.Q, KV = a.KV, hd = a.hd;
    const int pos = a.ints[0], cell = a.ints[2], n_kv = pos + 1;
    // Key splits per head: one block a head while the cache is short (its output is then final: no merge),
    // else as many splits as the grid holds.
    const int SB = n_kv <= PD_ONE_SPLIT_MAX ? 1 : max(1, min(a.max_splits, (int)gridDim.x / a.n_head));
    const bool pf = a.prefetch && lane == 0;
    const int n_pairs = (Q >> 1) + (KV >> 1) * 2;
    // Pairs of q/k/v rows a KV head waits for in a layer (its q heads' and its own k and v rows).
    const unsigned kv_pairs = (unsigned)((a.n_head / a.n_head_kv) * (hd >> 1) + hd);
    for (int l = 0; l < a.n_layers; l++) {
        const dlayer &L = a.layers[l];
        const size_t layer_off = (size_t)l * (size_t)a.n_ctx * (size_t)KV;
        // ---- q, k, v with RoPE; k and v into the cache ----
        PD_MARK(l, PD_T_START);
        pd_stage(a.x, L.attn_norm, E, a.eps, xs_f, xs_q, xs_ds);
        PD_MARK(l, PD_T_QKV_STAGE);
        {
            const xop xs = {xs_q, xs_ds, xs_f, E};
            const int hq = Q >> 1, hk = KV >> 1;
            // Warps without a pair stream the layer's other weights into L2 meanwhile.
            if (pf && gw >= n_pairs) {
                const dmat *const ms[4] = {&L.wo, &L.gate, &L.up, &L.down};
                pd_prefetch_share(ms, 4, gw - n_pairs, nw - n_pairs);
            }
            for (int gp = gw; gp < n_pairs; gp += nw) {
                const int mat = gp < hq ? 0 : gp < hq + hk ? 1 : 2;
                const int local = gp - (mat == 0 ? 0 : mat == 1 ? hq : hq + hk);
                int r0, r1, rot = -1;
                if (mat < 2) {
                    const int half = hd >> 1, hh = local / half, p = local - hh * half, hr = a.n_rot >> 1;
                    if (a.neox && p < hr) r0 = hh * hd + p, r1 = r0 + hr;
                    else if (a.neox) r0 = hh * hd + a.n_rot + 2 * (p - hr), r1 = r0 + 1;
                    else r0 = hh * hd + 2 * p, r1 = r0 + 1;
                    if (p < hr) rot = p;
                } else {
                    r0 = 2 * local, r1 = r0 + 1;
                }
                const dmat &w = mat == 0 ? L.wq : mat == 1 ? L.wk : L.wv;
                const float *bias = mat == 0 ? L.bq : mat == 1 ? L.bk : L.bv;
                const uint8_t *const wr[2] = {pd_row(w, r0), pd_row(w, r1)};
                const __half *const sr[2] = {pd_srow(w, r0), pd_srow(w, r1)};
                float acc[2][1] = {{0.0f}, {0.0f}};
                pd_dot<2>(w.type, wr, sr, xs, lane, acc);
                float y0 = warp_sum(acc[0][0]), y1 = warp_sum(acc[1][0]);
                if (lane != 0) continue;
                if (bias) y0 += bias[r0], y1 += bias[r1];
                if (rot >= 0) {
                    const float c = a.rope[2 * rot], sn = a.rope[2 * rot + 1];
                    const float u0 = y0 * c - y1 * sn, u1 = y0 * sn + y1 * c;
                    y0 = u0, y1 = u1;
                }
                if (mat == 0) {
                    a.q[r0] = y0;
                    a.q[r1] = y1;
                } else {
                    __half *dst = (mat == 1 ? a.kc : a.vc) + layer_off + (size_t)cell * KV;
                    dst[r0] = __float2half(y0);
                    dst[r1] = __float2half(y1);
                }
                if (a.kv_ready) { // this pair is in place (release: the stores above come first)
                    const int kvh = mat == 0 ? r0 / hd / (a.n_head / a.n_head_kv) : r0 / hd;
                    asm volatile("red.release.gpu.global.add.u32 [%0], %1;" ::"l"(a.kv_ready + kvh), "r"(1u)
                                 : "memory");
                }
            }
        }
        PD_MARK(l, PD_T_QKV);
        // Attention waits for its KV head's pairs only (a.kv_ready), or for the whole grid.
        if (!a.kv_ready) pd_sync(a.bar, &epoch);
        PD_MARK(l, PD_T_QKV_SYNC);
        // ---- attention: a block per (head, key split), one partial each ----
        for (int it = blockIdx.x; it < a.n_head * SB; it += gridDim.x) {
            const int h = it / SB, split = it - h * SB, chunk = (n_kv + SB - 1) / SB;
            const int k0 = split * chunk, k1 = min(k0 + chunk, n_kv);
            if (a.kv_ready) {
                if (threadIdx.x == 0) {
                    const unsigned *c = a.kv_ready + h / (a.n_head / a.n_head_kv), want = (unsigned)(l + 1) * kv_pairs;
                    unsigned v;
                    do {
                        asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(c) : "memory");
                    } while (v < want);
                }
                __syncthreads();
            }
            pd_attention_block(a, l, h, k0, k1, a.att + (size_t)it * (size_t)(hd + 2), SB == 1 ? a.xb : nullptr,
                               xs_f);
        }
        PD_MARK(l, PD_T_ATT);
        pd_sync(a.bar, &epoch);
        PD_MARK(l, PD_T_ATT_SYNC);
        // ---- x += wo . attention output (each block merges the partials itself) ----
        if (SB == 1) pd_stage(a.xb, nullptr, Q, 0.0f, xs_f, xs_q, xs_ds);
        else pd_attention_merge(a, SB, pd_wts, xs_f, xs_q, xs_ds);
        PD_MARK(l, PD_T_WO_COPY);
        pd_matvec(L.wo, xop{xs_q, xs_ds, xs_f, Q}, a.x, true, gw, nw, lane);
        PD_MARK(l, PD_T_WO);
        pd_sync(a.bar, &epoch);
        PD_MARK(l, PD_T_WO_SYNC);
        // ---- h = silu(gate . x) * (up . x), two rows of each a warp ----
        pd_stage(a.x, L.ffn_norm, E, a.eps, xs_f, xs_q, xs_ds);
        PD_MARK(l, PD_T_GU_STAGE);
        {
            const xop xs = {xs_q, xs_ds, xs_f, E};
            const int F = a.F;
            for (int r = 2 * gw; r < F; r += 2 * nw) {
                const int r1 = min(r + 1, F - 1);
                const uint8_t *const wr[4] = {pd_row(L.gate, r), pd_row(L.gate, r1), pd_row(L.up, r), pd_row(L.up, r1)};
                const __half *const sr[4] = {pd_srow(L.gate, r), pd_srow(L.gate, r1), pd_srow(L.up, r),
                                             pd_srow(L.up, r1)};
                float acc[4][1] = {{0.0f}, {0.0f}, {0.0f}, {0.0f}};
                pd_dot<4>(L.gate.type, wr, sr, xs, lane, acc);
                const float g0 = warp_sum(acc[0][0]), g1 = warp_sum(acc[1][0]);
                const float u0 = warp_sum(acc[2][0]), u1 = warp_sum(acc[3][0]);
                if (lane == 0) {
                    a.hb[r] = g0 / (1.0f + expf(-g0)) * u0;
                    if (r + 1 < F) a.hb[r + 1] = g1 / (1.0f + expf(-g1)) * u1;
                }
            }
        }
        PD_MARK(l, PD_T_GU);
        pd_sync(a.bar, &epoch);
        PD_MARK(l, PD_T_GU_SYNC);
        // ---- x += down . h ----
        pd_stage(a.hb, nullptr, a.F, 0.0f, xs_f, xs_q, xs_ds);
        if (pf && l + 1 < a.n_layers && gw >= L.down.n_out) { // idle warps: the next layer's q, k, v
            const dlayer &N = a.layers[l + 1];
            const dmat *const ms[3] = {&N.wq, &N.wk, &N.wv};
            pd_prefetch_share(ms, 3, gw - L.down.n_out, nw - L.down.n_out);
        }
        PD_MARK(l, PD_T_DOWN_STAGE);
        pd_matvec(L.down, xop{xs_q, xs_ds, xs_f, a.F}, a.x, true, gw, nw, lane);
        PD_MARK(l, PD_T_DOWN);
        pd_sync(a.bar, &epoch);
    }
    // ---- output norm and head ----
    PD_MARK(a.n_layers, 0);

    pd_stage(a.x, a.output_norm, E, a.eps, xs_f, xs_q, xs_ds);
    PD_MARK(a.n_layers, 1);
    if (blockIdx.x == 0)
        for (int i = threadIdx.x; i < E; i += PD_THREADS) a.xb[i] = xs_f[i];
    pd_matvec(a.output, xop{xs_q, xs_ds, xs_f, E}, a.logits, false, gw, nw, lane);
    PD_MARK(a.n_layers, 2);
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
