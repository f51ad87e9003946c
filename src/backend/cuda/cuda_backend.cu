// cuda_backend.cu: the NVIDIA GPU backend: device probe, weight upload, the memory planner's exact sizes,
// and the llama layers placed on the GPU (RMSNorm, quantized matrix-vector products, RoPE with the KV-cache
// write, grouped-query attention, SwiGLU), the final norm and the output head. A decode step of one token
// is captured once in a CUDA graph and replayed.
//
// Numerics: activations stay F32 (no 8-bit activation quantization as on the CPU), weights are dequantized
// in registers, 32 elements at a time; the KV cache is F16 (as llama.cpp's default). Logits therefore
// differ from the CPU backend's by rounding only; tests bound the difference.
//
// Leaves out (for now): tensor-core prefill (a batch runs as repeated 8-token matrix-vector products),
// flash attention with tiles, repacked weight layouts, a persistent decode kernel, multi-GPU.
#include "backend/cuda/cuda_backend.h"

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ggml type ids (quant/quant.h, which is C11 and not included here).
enum { T_F32 = 0, T_F16 = 1, T_Q4_0 = 2, T_Q8_0 = 8, T_Q4_K = 12, T_Q6_K = 14 };

// Block layouts, bit-exact with quant/quant.h (ggml-common.h); read bytewise on the device.
//   Q4_0 (18 B / 32): f16 d, 16 B nibbles (low nibble = element i, high = i + 16); w = (q - 8) * d
//   Q8_0 (34 B / 32): f16 d, 32 int8; w = q * d
//   Q4_K (144 B / 256): f16 d, f16 dmin, 12 B packed 6-bit scales/mins (8 of each), 128 B nibbles
//   Q6_K (210 B / 256): 128 B low nibbles, 64 B high 2-bit pairs, 16 int8 scales, f16 d
#define BYTES_Q4_0 18
#define BYTES_Q8_0 34
#define BYTES_Q4_K 144
#define BYTES_Q6_K 210

#define MV_WARPS 8     // rows per matrix-vector block (one warp per row)
#define MV_MAX_T 8     // tokens per matrix-vector launch; longer batches loop
#define ATT_WARPS 4    // warps per attention block
#define ATT_MAX_HD 256 // head_dim limit of the attention kernel (8 values per lane, 32 lanes)
#define ALIGN 256      // sub-allocation alignment inside device buffers

static bool cu_ok(cudaError_t e, const char *what, char *err, size_t cap) {
    if (e == cudaSuccess) return true;
    snprintf(err, cap, "%s failed: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
    cudaGetLastError(); // clear a sticky-free error so later calls report their own
    return false;
}

static uint64_t align_up(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

// ---------------------------------------------------------------------------------------------------------
// Device probe and type table
// ---------------------------------------------------------------------------------------------------------
extern "C" bool cuda_device_probe(cuda_device_info *info, char *err, size_t cap) {
    memset(info, 0, sizeof *info);
    cudaDriverGetVersion(&info->driver_version);
    cudaRuntimeGetVersion(&info->runtime_version);
    int n = 0;
    if (!cu_ok(cudaGetDeviceCount(&n), "cudaGetDeviceCount", err, cap)) return false;
    if (n <= 0) {
        snprintf(err, cap, "cudaGetDeviceCount found no CUDA device");
        return false;
    }
    cudaDeviceProp p;
    if (!cu_ok(cudaSetDevice(0), "cudaSetDevice(0)", err, cap) ||
        !cu_ok(cudaGetDeviceProperties(&p, 0), "cudaGetDeviceProperties(0)", err, cap))
        return false;
    size_t free_b = 0, total_b = 0;
    if (!cu_ok(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo", err, cap)) return false;
    snprintf(info->name, sizeof info->name, "%s", p.name);
    info->cc_major = p.major;
    info->cc_minor = p.minor;
    info->vram_total = total_b;
    info->vram_free = free_b;
    return true;
}

extern "C" bool cuda_type_native(int t) {
    return t == T_F32 || t == T_F16 || t == T_Q4_0 || t == T_Q8_0 || t == T_Q4_K || t == T_Q6_K;
}

// Bytes of one row of n elements of a native type (0 for others).
static uint64_t row_bytes_of(int t, int64_t n) {
    switch (t) {
    case T_F32: return (uint64_t)n * 4;
    case T_F16: return (uint64_t)n * 2;
    case T_Q4_0: return (uint64_t)(n / 32) * BYTES_Q4_0;
    case T_Q8_0: return (uint64_t)(n / 32) * BYTES_Q8_0;
    case T_Q4_K: return (uint64_t)(n / 256) * BYTES_Q4_K;
    case T_Q6_K: return (uint64_t)(n / 256) * BYTES_Q6_K;
    default: return 0;
    }
}

static uint64_t row_pitch_of(int t, int64_t n) { return align_up(row_bytes_of(t, n), 16); }

extern "C" uint64_t cuda_matrix_bytes(int t, int64_t n_in, int64_t n_out) {
    return row_pitch_of(t, n_in) * (uint64_t)n_out;
}

// ---------------------------------------------------------------------------------------------------------
// Model: one device buffer holding every GPU weight, sub-allocated in a fixed walk order so that the planner
// (count only) and the upload (count and copy) agree to the byte.
// ---------------------------------------------------------------------------------------------------------
typedef struct {
    int type;
    int n_in, n_out;
    uint64_t pitch; // bytes between rows on the device
    const uint8_t *d;
} dmat;

typedef struct {
    const float *attn_norm, *ffn_norm, *bq, *bk, *bv;
    dmat wq, wk, wv, wo, gate, up, down;
} dlayer;

struct cuda_model {
    int n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_rot, n_vocab, layer0;
    float rms_eps;
    bool rope_neox;
    dlayer *layers; // (n_layer - layer0)
    const float *output_norm;
    dmat output;
    void *buf;
    uint64_t buf_bytes;
};

typedef struct {
    uint8_t *base; // NULL: count only
    uint64_t used;
    bool ok;
    char *err;
    size_t cap;
} walker;

static const void *walk_copy(walker *w, const void *src, uint64_t bytes) {
    if (!src) return NULL;
    uint64_t off = w->used;
    w->used = align_up(w->used + bytes, ALIGN);
    if (!w->base || !w->ok) return NULL;
    w->ok = cu_ok(cudaMemcpy(w->base + off, src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy (weights)", w->err,
                  w->cap);
    return w->base + off;
}

static dmat walk_matrix(walker *w, const cuda_matrix *m) {
    dmat d = {m->type, (int)m->n_in, (int)m->n_out, row_pitch_of(m->type, m->n_in), NULL};
    uint64_t off = w->used, width = row_bytes_of(m->type, m->n_in);
    w->used = align_up(w->used + d.pitch * (uint64_t)m->n_out, ALIGN);
    if (!w->base || !w->ok) return d;
    d.d = w->base + off;
    w->ok = cu_ok(cudaMemcpy2D(w->base + off, d.pitch, m->data, m->row_bytes, width, (size_t)m->n_out,
                               cudaMemcpyHostToDevice),
                  "cudaMemcpy2D (weights)", w->err, w->cap);
    return d;
}

static void walk_model(walker *w, const cuda_model_desc *d, cuda_model *m) {
    uint64_t E = (uint64_t)d->n_embd * 4, Q = (uint64_t)d->n_head * d->head_dim * 4,
             KV = (uint64_t)d->n_head_kv * d->head_dim * 4;
    for (int l = 0; l < d->n_layer - d->layer0; l++) {
        const cuda_layer_desc *L = &d->layers[l];
        dlayer D;
        D.attn_norm = (const float *)walk_copy(w, L->attn_norm, E);
        D.ffn_norm = (const float *)walk_copy(w, L->ffn_norm, E);
        D.bq = (const float *)walk_copy(w, L->bq, Q);
        D.bk = (const float *)walk_copy(w, L->bk, KV);
        D.bv = (const float *)walk_copy(w, L->bv, KV);
        D.wq = walk_matrix(w, &L->wq);
        D.wk = walk_matrix(w, &L->wk);
        D.wv = walk_matrix(w, &L->wv);
        D.wo = walk_matrix(w, &L->wo);
        D.gate = walk_matrix(w, &L->gate);
        D.up = walk_matrix(w, &L->up);
        D.down = walk_matrix(w, &L->down);
        if (m) m->layers[l] = D;
    }
    const float *on = (const float *)walk_copy(w, d->output_norm, E);
    dmat out = walk_matrix(w, &d->output);
    if (m) {
        m->output_norm = on;
        m->output = out;
    }
}

extern "C" uint64_t cuda_model_bytes(const cuda_model_desc *d) {
    walker w = {NULL, 0, true, NULL, 0};
    walk_model(&w, d, NULL);
    return w.used;
}

extern "C" bool cuda_model_upload(const cuda_model_desc *d, cuda_model **out, char *err, size_t cap) {
    *out = NULL;
    cuda_model *m = (cuda_model *)calloc(1, sizeof *m);
    int n_gpu = d->n_layer - d->layer0;
    if (!m || !(m->layers = (dlayer *)calloc((size_t)(n_gpu > 0 ? n_gpu : 1), sizeof *m->layers))) {
        free(m);
        snprintf(err, cap, "out of host memory for the GPU model");
        return false;
    }
    m->n_embd = d->n_embd;
    m->n_layer = d->n_layer;
    m->n_head = d->n_head;
    m->n_head_kv = d->n_head_kv;
    m->head_dim = d->head_dim;
    m->n_ff = d->n_ff;
    m->n_rot = d->n_rot;
    m->n_vocab = d->n_vocab;
    m->layer0 = d->layer0;
    m->rms_eps = d->rms_eps;
    m->rope_neox = d->rope_neox;
    for (int l = 0; l < n_gpu; l++)
        if (d->layers[l].gate.type != d->layers[l].up.type) {
            snprintf(err, cap, "layer %d: ffn_gate and ffn_up differ in type (the GPU pairs them)", d->layer0 + l);
            cuda_model_free(m);
            return false;
        }
    int hd8 = d->head_dim / 8;
    if (d->head_dim > ATT_MAX_HD || d->head_dim % 8 || (hd8 & (hd8 - 1))) {
        snprintf(err, cap, "head_dim %d is not one the GPU attention kernel takes (8 x a power of two, <= %d)",
                 d->head_dim, ATT_MAX_HD);
        cuda_model_free(m);
        return false;
    }
    m->buf_bytes = cuda_model_bytes(d);
    char what[96];
    snprintf(what, sizeof what, "cudaMalloc model buffer (%.1f MiB)", (double)m->buf_bytes / (1024.0 * 1024.0));
    if (!cu_ok(cudaMalloc(&m->buf, m->buf_bytes), what, err, cap)) {
        m->buf = NULL;
        cuda_model_free(m);
        return false;
    }
    walker w = {(uint8_t *)m->buf, 0, true, err, cap};
    walk_model(&w, d, m);
    if (!w.ok) {
        cuda_model_free(m);
        return false;
    }
    *out = m;
    return true;
}

extern "C" void cuda_model_free(cuda_model *m) {
    if (!m) return;
    if (m->buf) cudaFree(m->buf);
    free(m->layers);
    free(m);
}

// ---------------------------------------------------------------------------------------------------------
// Kernels
// ---------------------------------------------------------------------------------------------------------
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float ld_half(const uint8_t *p) { return __half2float(*(const __half *)p); }

// Dequantizes elements [32c, 32c + 32) of a row into w.
template <int TYPE> __device__ __forceinline__ void load_chunk(const uint8_t *row, int c, float w[32]) {
    if (TYPE == T_F32) {
        const float4 *p = (const float4 *)row + c * 8;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            float4 v = __ldg(p + i);
            w[4 * i] = v.x, w[4 * i + 1] = v.y, w[4 * i + 2] = v.z, w[4 * i + 3] = v.w;
        }
    } else if (TYPE == T_F16) {
        const uint4 *p = (const uint4 *)(row + (size_t)c * 64);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint4 v = __ldg(p + i);
            const __half2 *h = (const __half2 *)&v;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                float2 f = __half22float2(h[j]);
                w[8 * i + 2 * j] = f.x, w[8 * i + 2 * j + 1] = f.y;
            }
        }
    } else if (TYPE == T_Q4_0) {
        const uint8_t *b = row + (size_t)c * BYTES_Q4_0;
        float d = ld_half(b);
        const uint16_t *q = (const uint16_t *)(b + 2);
#pragma unroll
        for (int i = 0; i < 8; i++) {
            uint16_t v = q[i];
            w[2 * i] = (float)((v & 15) - 8) * d;
            w[2 * i + 1] = (float)(((v >> 8) & 15) - 8) * d;
            w[2 * i + 16] = (float)(((v >> 4) & 15) - 8) * d;
            w[2 * i + 17] = (float)((v >> 12) - 8) * d;
        }
    } else if (TYPE == T_Q8_0) {
        const uint8_t *b = row + (size_t)c * BYTES_Q8_0;
        float d = ld_half(b);
        const uint16_t *q = (const uint16_t *)(b + 2);
#pragma unroll
        for (int i = 0; i < 16; i++) {
            uint16_t v = q[i];
            w[2 * i] = (float)(int8_t)(v & 0xff) * d;
            w[2 * i + 1] = (float)(int8_t)(v >> 8) * d;
        }
    } else if (TYPE == T_Q4_K) {
        const uint8_t *sb = row + (size_t)(c >> 3) * BYTES_Q4_K;
        int j = c & 7;
        float d = ld_half(sb), dmin = ld_half(sb + 2);
        const uint8_t *s = sb + 4;
        int sc, mn;
        if (j < 4) {
            sc = s[j] & 63;
            mn = s[j + 4] & 63;
        } else {
            sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
            mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
        }
        float d1 = d * (float)sc, m1 = dmin * (float)mn;
        const uint32_t *q = (const uint32_t *)(sb + 16 + 32 * (j >> 1));
        int shift = (j & 1) * 4;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            uint32_t v = q[i] >> shift;
#pragma unroll
            for (int k = 0; k < 4; k++) w[4 * i + k] = d1 * (float)((v >> (8 * k)) & 0xF) - m1;
        }
    } else if (TYPE == T_Q6_K) {
        const uint8_t *sb = row + (size_t)(c >> 3) * BYTES_Q6_K;
        int j = c & 7, h = j >> 2, k = j & 3;
        const uint8_t *ql = sb + 64 * h + (k & 1) * 32, *qh = sb + 128 + 32 * h;
        const int8_t *sc = (const int8_t *)(sb + 192) + 8 * h + 2 * k;
        float d = ld_half(sb + 208);
        float d0 = d * (float)sc[0], d1 = d * (float)sc[1];
        int lshift = (k >> 1) * 4, hshift = 2 * k;
#pragma unroll
        for (int l = 0; l < 32; l++) {
            int q = (((ql[l] >> lshift) & 0xF) | (((qh[l] >> hshift) & 3) << 4)) - 32;
            w[l] = (l < 16 ? d0 : d1) * (float)q;
        }
    }
}

// Up to three matrices of one type and one input width, computed in one launch: global row r belongs to the
// first matrix whose row count it is below. y[i] is (T, n_out[i]); x is (T, n_in). accumulate adds into y
// (the residual stream); swiglu pairs matrix 0 (gate) and 1 (up) row by row and writes silu(g) * u to y[0].
typedef struct {
    const uint8_t *w[3];
    uint64_t pitch[3];
    int n_out[3];
    float *y[3];
    const float *bias[3];
    int n_mats, n_in, T;
    const float *x;
    bool accumulate, swiglu;
} mv_args;

template <int TYPE> __global__ void __launch_bounds__(MV_WARPS * 32) k_matvec(mv_args a) {
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int r = blockIdx.x * MV_WARPS + warp;
    int mi = 0;
    if (!a.swiglu)
        while (mi < a.n_mats - 1 && r >= a.n_out[mi]) r -= a.n_out[mi++];
    if (r >= a.n_out[mi]) return;
    const uint8_t *row = a.w[mi] + (uint64_t)r * a.pitch[mi];
    const uint8_t *row2 = a.swiglu ? a.w[1] + (uint64_t)r * a.pitch[1] : NULL;
    float acc[MV_MAX_T], acc2[MV_MAX_T];
#pragma unroll
    for (int t = 0; t < MV_MAX_T; t++) acc[t] = acc2[t] = 0.0f;
    // Rows whose width is not a multiple of 32 (F32/F16 only; stories260K's n_ff = 172) take the scalar
    // path below for every element, which also keeps the float4 loads of x aligned.
    int n_chunks = (a.n_in & 31) ? 0 : a.n_in >> 5;
    if (TYPE == T_F32 || TYPE == T_F16) {
        for (int i = (n_chunks << 5) + lane; i < a.n_in; i += 32) {
            float wv = TYPE == T_F32 ? ((const float *)row)[i] : __half2float(((const __half *)row)[i]);
            float wu = 0.0f;
            if (a.swiglu) wu = TYPE == T_F32 ? ((const float *)row2)[i] : __half2float(((const __half *)row2)[i]);
#pragma unroll
            for (int t = 0; t < MV_MAX_T; t++) {
                if (t >= a.T) break;
                float xv = a.x[(size_t)t * a.n_in + i];
                acc[t] += wv * xv;
                acc2[t] += wu * xv;
            }
        }
    }
    for (int c = lane; c < n_chunks; c += 32) {
        float w[32];
        load_chunk<TYPE>(row, c, w);
#pragma unroll
        for (int t = 0; t < MV_MAX_T; t++) {
            if (t >= a.T) break;
            const float4 *xp = (const float4 *)(a.x + (size_t)t * a.n_in) + c * 8;
            float s = 0.0f;
#pragma unroll
            for (int i = 0; i < 8; i++) {
                float4 v = __ldg(xp + i);
                s += w[4 * i] * v.x + w[4 * i + 1] * v.y + w[4 * i + 2] * v.z + w[4 * i + 3] * v.w;
            }
            acc[t] += s;
        }
        if (a.swiglu) {
            load_chunk<TYPE>(row2, c, w);
#pragma unroll
            for (int t = 0; t < MV_MAX_T; t++) {
                if (t >= a.T) break;
                const float4 *xp = (const float4 *)(a.x + (size_t)t * a.n_in) + c * 8;
                float s = 0.0f;
#pragma unroll
                for (int i = 0; i < 8; i++) {
                    float4 v = __ldg(xp + i);
                    s += w[4 * i] * v.x + w[4 * i + 1] * v.y + w[4 * i + 2] * v.z + w[4 * i + 3] * v.w;
                }
                acc2[t] += s;
            }
        }
    }
#pragma unroll
    for (int t = 0; t < MV_MAX_T; t++) {
        if (t >= a.T) break;
        float s = warp_sum(acc[t]);
        if (a.swiglu) {
            float u = warp_sum(acc2[t]);
            if (lane == 0) a.y[0][(size_t)t * a.n_out[0] + r] = s / (1.0f + expf(-s)) * u;
            continue;
        }
        if (lane != 0) continue;
        if (a.bias[mi]) s += a.bias[mi][r];
        float *y = a.y[mi] + (size_t)t * a.n_out[mi] + r;
        *y = a.accumulate ? *y + s : s;
    }
}

// out[row] = x[t] / sqrt(mean(x[t]^2) + eps) * w, with row = t, or out_row[t] when out_row is given
// (skipping tokens without an output row). One block per token.
__global__ void k_rmsnorm(const float *x, const float *w, float *out, int n, float eps, const int32_t *out_row) {
    int t = blockIdx.x;
    int row = out_row ? out_row[t] : t;
    if (row < 0) return;
    const float *xr = x + (size_t)t * n;
    float s = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += xr[i] * xr[i];
    __shared__ float part[32];
    s = warp_sum(s);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = s;
    __syncthreads();
    if (threadIdx.x < 32) {
        s = threadIdx.x < (blockDim.x >> 5) ? part[threadIdx.x] : 0.0f;
        s = warp_sum(s);
        if (threadIdx.x == 0) part[0] = s;
    }
    __syncthreads();
    float scale = 1.0f / sqrtf(part[0] / (float)n + eps);
    float *o = out + (size_t)row * n;
    for (int i = threadIdx.x; i < n; i += blockDim.x) o[i] = (xr[i] * scale) * w[i];
}

// Writes each batch token's cell into its sequence's position table.
__global__ void k_scatter_cells(const int32_t *ints, int T, int32_t *seq_cells, int n_ctx) {
    const int32_t *pos = ints, *seq = ints + T, *cell = ints + 2 * T;
    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < T; t += gridDim.x * blockDim.x)
        seq_cells[(size_t)seq[t] * n_ctx + pos[t]] = cell[t];
}

// RoPE on q and k of token blockIdx.x (cos/sin pairs from the CPU's table), then K and V into the cache.
__global__ void k_rope_kv(float *q, const float *k, const float *v, const float *rope, const int32_t *ints, int T,
                          __half *kc, __half *vc, int n_head, int n_head_kv, int hd, int n_rot, bool neox) {
    int t = blockIdx.x;
    int Q = n_head * hd, KV = n_head_kv * hd;
    const float *cs = rope + (size_t)t * n_rot;
    int cell = ints[2 * T + t];
    float *qt = q + (size_t)t * Q;
    const float *kt = k + (size_t)t * KV, *vt = v + (size_t)t * KV;
    __half *kd = kc + (size_t)cell * KV, *vd = vc + (size_t)cell * KV;
    int half_rot = n_rot / 2;
    // q: rotate pairs in place
    for (int p = threadIdx.x; p < n_head * half_rot; p += blockDim.x) {
        int h = p / half_rot, i = p % half_rot;
        int a = neox ? i : 2 * i, b = neox ? i + half_rot : 2 * i + 1;
        float c = cs[2 * i], s = cs[2 * i + 1];
        float *x = qt + h * hd;
        float x0 = x[a], x1 = x[b];
        x[a] = x0 * c - x1 * s;
        x[b] = x0 * s + x1 * c;
    }
    // k: each element written once, rotated or not
    for (int e = threadIdx.x; e < KV; e += blockDim.x) {
        int d = e % hd;
        const float *x = kt + (e - d);
        float val = x[d];
        if (d < n_rot) {
            int i = neox ? (d < half_rot ? d : d - half_rot) : d / 2;
            int a = neox ? i : 2 * i, b = neox ? i + half_rot : 2 * i + 1;
            float c = cs[2 * i], s = cs[2 * i + 1];
            val = d == a ? x[a] * c - x[b] * s : x[a] * s + x[b] * c;
        }
        kd[e] = __float2half(val);
        vd[e] = __float2half(vt[e]);
    }
}

// Causal attention, phase 1: query head blockIdx.x of token blockIdx.y over split blockIdx.z of the positions
// 0..pos of its sequence (S splits of equal length, computed from pos so a captured graph stays valid).
// A key is handled by lpk = head_dim / 8 lanes holding 8 dimensions each (one 16-byte load of K and of V),
// so a warp works on 32 / lpk keys at once, each group with its own online softmax; the groups are merged
// in shared memory and the split's (max, sum, unnormalized output) goes to part.
__global__ void __launch_bounds__(ATT_WARPS * 32)
    k_attention(const float *q, const __half *kc, const __half *vc, const int32_t *seq_cells, const int32_t *ints,
                int T, float *part, int n_head, int n_head_kv, int hd, int n_ctx, float scale) {
    int h = blockIdx.x, t = blockIdx.y, split = blockIdx.z, S = gridDim.z;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int lpk = hd >> 3, gpw = 32 / lpk, sub = lane % lpk, gid = warp * gpw + lane / lpk, G = ATT_WARPS * gpw;
    int pos = ints[t], seq = ints[T + t];
    int n_kv = pos + 1, chunk = (n_kv + S - 1) / S, j0 = split * chunk, j1 = min(j0 + chunk, n_kv);
    int KV = n_head_kv * hd;
    size_t head_off = (size_t)(h / (n_head / n_head_kv)) * hd + 8 * sub;
    const float *qh = q + (size_t)t * n_head * hd + (size_t)h * hd + 8 * sub;
    const int32_t *cells = seq_cells + (size_t)seq * n_ctx;
    float qv[8], acc[8];
#pragma unroll
    for (int i = 0; i < 8; i++) qv[i] = qh[i] * scale, acc[i] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    // Every lane of a warp runs the same iterations (the shuffles need the whole warp); lanes past the
    // split's end take part in the shuffles only.
    for (int jb = j0 + warp * gpw; jb < j1; jb += G) {
        int j = jb + lane / lpk;
        bool valid = j < j1;
        float s = 0.0f;
        uint4 vraw = make_uint4(0, 0, 0, 0);
        if (valid) {
            size_t off = (size_t)cells[j] * KV + head_off;
            uint4 kraw = *(const uint4 *)(kc + off);
            vraw = *(const uint4 *)(vc + off);
            const __half2 *k2 = (const __half2 *)&kraw;
#pragma unroll
            for (int i = 0; i < 4; i++) {
                float2 kf = __half22float2(k2[i]);
                s += qv[2 * i] * kf.x + qv[2 * i + 1] * kf.y;
            }
        }
        for (int o = lpk >> 1; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o, lpk);
        if (!valid) continue;
        const __half2 *v2 = (const __half2 *)&vraw;
        float m_new = fmaxf(m, s);
        float corr = expf(m - m_new), p = expf(s - m_new);
        l = l * corr + p;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            float2 vf = __half22float2(v2[i]);
            acc[2 * i] = acc[2 * i] * corr + p * vf.x;
            acc[2 * i + 1] = acc[2 * i + 1] * corr + p * vf.y;
        }
        m = m_new;
    }
    // G * hd = ATT_WARPS * 32 * 8 for every head size
    __shared__ float sm_m[ATT_WARPS * 32], sm_l[ATT_WARPS * 32], sm_acc[ATT_WARPS * 32 * 8];
    if (sub == 0) sm_m[gid] = m, sm_l[gid] = l;
#pragma unroll
    for (int i = 0; i < 8; i++) sm_acc[gid * hd + 8 * sub + i] = acc[i];
    __syncthreads();
    float *o = part + (((size_t)t * n_head + h) * S + split) * (size_t)(hd + 2);
    float M = -INFINITY;
    for (int g = 0; g < G; g++) M = fmaxf(M, sm_m[g]);
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float v = 0.0f, L = 0.0f;
        for (int g = 0; g < G; g++)
            if (sm_l[g] > 0.0f) {
                float e = expf(sm_m[g] - M);
                v += sm_acc[g * hd + d] * e;
                L += sm_l[g] * e;
            }
        o[2 + d] = v;
        if (d == 0) o[0] = M, o[1] = L;
    }
}

// Attention, phase 2: merges the S splits of head blockIdx.x of token blockIdx.y into out (hd threads).
__global__ void k_attn_combine(const float *part, int S, float *out, int n_head, int hd) {
    int h = blockIdx.x, t = blockIdx.y, d = threadIdx.x;
    const float *p = part + ((size_t)t * n_head + h) * S * (size_t)(hd + 2);
    float M = -INFINITY;
    for (int k = 0; k < S; k++)
        if (p[k * (hd + 2) + 1] > 0.0f) M = fmaxf(M, p[k * (hd + 2)]);
    float v = 0.0f, L = 0.0f;
    for (int k = 0; k < S; k++) {
        const float *pk = p + k * (hd + 2);
        if (pk[1] > 0.0f) {
            float e = expf(pk[0] - M);
            v += pk[2 + d] * e;
            L += pk[1] * e;
        }
    }
    if (d < hd) out[(size_t)t * n_head * hd + (size_t)h * hd + d] = v / L;
}

// Key splits per (token, head): many for a decode step (few blocks otherwise), one for long batches.
// T * att_splits(T) <= max(32, T) bounds the partials buffer.
static int att_splits(int T) { return T == 1 ? 16 : T <= 8 ? 4 : 1; }

// ---------------------------------------------------------------------------------------------------------
// Session
// ---------------------------------------------------------------------------------------------------------
enum { OP_START, OP_UPLOAD, OP_NORM, OP_QKV, OP_ROPE_KV, OP_ATTENTION, OP_WO, OP_GATE_UP, OP_DOWN, OP_HEAD,
       OP_COUNT };
static const char *const op_names[OP_COUNT] = {"start", "upload", "norm", "qkv", "rope+kv", "attention", "wo",
                                               "gate/up", "down", "head"};
#define PROF_MAX_EVENTS 2048

struct cuda_session {
    cuda_model *m;
    int n_ctx, n_batch, n_seq;
    cudaStream_t stream;
    void *kv_buf, *buf;  // device: KV cache; compute buffers
    void *host;          // pinned staging: x, rope, ints of one batch
    __half *k_cache, *v_cache; // (gpu layers, n_ctx, kv_dim)
    float *x, *xb, *q, *k, *v, *hb, *rope, *logits, *att;
    int32_t *ints, *seq_cells;
    float *h_x, *h_rope;
    int32_t *h_ints;
    cudaGraphExec_t graph; // decode step of one token with one output row
    bool graph_tried, use_graph;
    // INFERNO_CUDA_PROFILE=1: an event after every op of every step (graphs off), summed per op
    bool prof;
    cudaEvent_t ev[PROF_MAX_EVENTS];
    int ev_op[PROF_MAX_EVENTS], n_ev;
    double op_ms[OP_COUNT];
    long prof_steps;
};

static void prof_mark(cuda_session *s, int op) {
    if (!s->prof || s->n_ev >= PROF_MAX_EVENTS) return;
    if (!s->ev[s->n_ev]) cudaEventCreate(&s->ev[s->n_ev]);
    s->ev_op[s->n_ev] = op;
    cudaEventRecord(s->ev[s->n_ev++], s->stream);
}

// After a synchronized step: adds each op's time (from the previous event to its own).
static void prof_collect(cuda_session *s) {
    for (int i = 1; i < s->n_ev; i++) {
        float ms = 0.0f;
        if (cudaEventElapsedTime(&ms, s->ev[i - 1], s->ev[i]) == cudaSuccess) s->op_ms[s->ev_op[i]] += ms;
    }
    s->n_ev = 0;
    s->prof_steps++;
}

extern "C" bool cuda_session_profile(const cuda_session *s, char *buf, size_t cap) {
    if (!s || !s->prof || !s->prof_steps) return false;
    double total = 0.0;
    for (int i = 0; i < OP_COUNT; i++) total += s->op_ms[i];
    int n = snprintf(buf, cap, "GPU profile, %ld steps, %.3f ms:", s->prof_steps, total);
    for (int i = 1; i < OP_COUNT && n > 0 && (size_t)n < cap; i++)
        n += snprintf(buf + n, cap - (size_t)n, " %s %.3f ms (%.1f%%)%s", op_names[i], s->op_ms[i],
                      total > 0 ? 100.0 * s->op_ms[i] / total : 0.0, i + 1 < OP_COUNT ? "," : "");
    return true;
}

// Sizes of the compute buffers, in the order session_init lays them out.
typedef struct {
    uint64_t x, xb, q, kv, hb, rope, logits, ints, seq_cells, att;
} compute_sizes;

static compute_sizes compute_sizes_of(const cuda_model_desc *d, int n_ctx, int n_batch, int n_seq) {
    uint64_t B = (uint64_t)n_batch, E = (uint64_t)d->n_embd, Q = (uint64_t)d->n_head * d->head_dim,
             KV = (uint64_t)d->n_head_kv * d->head_dim;
    compute_sizes c;
    c.x = align_up(B * E * 4, ALIGN);
    c.xb = align_up(B * (E > Q ? E : Q) * 4, ALIGN);
    c.q = align_up(B * Q * 4, ALIGN);
    c.kv = align_up(B * KV * 4, ALIGN);
    c.hb = align_up(B * (uint64_t)d->n_ff * 4, ALIGN);
    c.rope = align_up(B * (uint64_t)d->n_rot * 4, ALIGN);
    c.logits = align_up(B * (uint64_t)d->n_vocab * 4, ALIGN);
    c.ints = align_up(B * 4 * 4, ALIGN);
    c.seq_cells = align_up((uint64_t)n_seq * (uint64_t)n_ctx * 4, ALIGN);
    c.att = align_up((B > 32 ? B : 32) * (uint64_t)d->n_head * ((uint64_t)d->head_dim + 2) * 4, ALIGN);
    return c;
}

static uint64_t compute_total(const compute_sizes *c) {
    return c->x + c->xb + c->q + 2 * c->kv + c->hb + c->rope + c->logits + c->ints + c->seq_cells + c->att;
}

extern "C" void cuda_session_bytes(const cuda_model_desc *d, int n_ctx, int n_batch, int n_seq, uint64_t *kv_bytes,
                                   uint64_t *compute_bytes) {
    uint64_t KV = (uint64_t)d->n_head_kv * d->head_dim;
    *kv_bytes = 2 * align_up((uint64_t)(d->n_layer - d->layer0) * (uint64_t)n_ctx * KV * 2, ALIGN);
    compute_sizes c = compute_sizes_of(d, n_ctx, n_batch, n_seq);
    *compute_bytes = compute_total(&c);
}

extern "C" void cuda_session_free(cuda_session *s) {
    if (!s) return;
    if (s->graph) cudaGraphExecDestroy(s->graph);
    for (int i = 0; i < PROF_MAX_EVENTS; i++)
        if (s->ev[i]) cudaEventDestroy(s->ev[i]);
    if (s->stream) cudaStreamDestroy(s->stream);
    if (s->kv_buf) cudaFree(s->kv_buf);
    if (s->buf) cudaFree(s->buf);
    if (s->host) cudaFreeHost(s->host);
    free(s);
}

extern "C" bool cuda_session_init(cuda_model *m, int n_ctx, int n_batch, int n_seq, cuda_session **out, char *err,
                                  size_t cap) {
    *out = NULL;
    cuda_session *s = (cuda_session *)calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, cap, "out of host memory for the GPU session");
        return false;
    }
    s->m = m;
    s->n_ctx = n_ctx;
    s->n_batch = n_batch;
    s->n_seq = n_seq;
    const char *g = getenv("INFERNO_CUDA_GRAPH"), *pr = getenv("INFERNO_CUDA_PROFILE");
    s->prof = pr && !strcmp(pr, "1");
    s->use_graph = !(g && !strcmp(g, "0")) && !s->prof;
    cuda_model_desc d = {};
    d.n_embd = m->n_embd, d.n_layer = m->n_layer, d.n_head = m->n_head, d.n_head_kv = m->n_head_kv;
    d.head_dim = m->head_dim, d.n_ff = m->n_ff, d.n_rot = m->n_rot, d.n_vocab = m->n_vocab, d.layer0 = m->layer0;
    uint64_t kv_bytes, compute_bytes;
    cuda_session_bytes(&d, n_ctx, n_batch, n_seq, &kv_bytes, &compute_bytes);
    compute_sizes c = compute_sizes_of(&d, n_ctx, n_batch, n_seq);
    uint64_t B = (uint64_t)n_batch;
    uint64_t host_bytes = B * ((uint64_t)m->n_embd + (uint64_t)m->n_rot + 4) * 4;
    char what[96];
    snprintf(what, sizeof what, "cudaMalloc KV cache (%.1f MiB)", (double)kv_bytes / (1024.0 * 1024.0));
    if (!cu_ok(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking), "cudaStreamCreate", err, cap) ||
        !cu_ok(cudaMalloc(&s->kv_buf, kv_bytes), what, err, cap)) {
        cuda_session_free(s);
        return false;
    }
    snprintf(what, sizeof what, "cudaMalloc compute buffer (%.1f MiB)", (double)compute_bytes / (1024.0 * 1024.0));
    if (!cu_ok(cudaMalloc(&s->buf, compute_bytes), what, err, cap) ||
        !cu_ok(cudaMallocHost(&s->host, host_bytes), "cudaMallocHost (staging)", err, cap)) {
        cuda_session_free(s);
        return false;
    }
    s->k_cache = (__half *)s->kv_buf;
    s->v_cache = (__half *)((uint8_t *)s->kv_buf + kv_bytes / 2);
    uint8_t *p = (uint8_t *)s->buf;
    s->x = (float *)p, p += c.x;
    s->xb = (float *)p, p += c.xb;
    s->q = (float *)p, p += c.q;
    s->k = (float *)p, p += c.kv;
    s->v = (float *)p, p += c.kv;
    s->hb = (float *)p, p += c.hb;
    s->rope = (float *)p, p += c.rope;
    s->logits = (float *)p, p += c.logits;
    s->ints = (int32_t *)p, p += c.ints;
    s->seq_cells = (int32_t *)p, p += c.seq_cells;
    s->att = (float *)p, p += c.att;
    s->h_x = (float *)s->host;
    s->h_rope = s->h_x + B * (uint64_t)m->n_embd;
    s->h_ints = (int32_t *)(s->h_rope + B * (uint64_t)m->n_rot);
    // Unwritten table entries are never read (a token reads positions its sequence has written), but a
    // defined value keeps a bad index visible as cell 0 instead of garbage.
    if (!cu_ok(cudaMemset(s->seq_cells, 0, c.seq_cells), "cudaMemset", err, cap)) {
        cuda_session_free(s);
        return false;
    }
    *out = s;
    return true;
}

// ---------------------------------------------------------------------------------------------------------
// Forward step
// ---------------------------------------------------------------------------------------------------------
// y[i] = W[i] x (+ bias[i]) for n matrices of one type; T tokens in chunks of MV_MAX_T.
static void matvec(cudaStream_t st, const dmat *const *w, float *const *y, const float *const *bias, int n,
                   const float *x, int T, bool accumulate, bool swiglu) {
    mv_args a;
    memset(&a, 0, sizeof a);
    a.n_mats = n;
    a.n_in = w[0]->n_in;
    a.accumulate = accumulate;
    a.swiglu = swiglu;
    int rows = 0;
    for (int i = 0; i < n; i++) {
        a.w[i] = w[i]->d;
        a.pitch[i] = w[i]->pitch;
        a.n_out[i] = w[i]->n_out;
        a.bias[i] = bias ? bias[i] : NULL;
        rows += w[i]->n_out;
    }
    if (swiglu) rows = w[0]->n_out;
    dim3 grid((unsigned)((rows + MV_WARPS - 1) / MV_WARPS)), block(MV_WARPS * 32);
    for (int t0 = 0; t0 < T; t0 += MV_MAX_T) {
        a.T = T - t0 < MV_MAX_T ? T - t0 : MV_MAX_T;
        a.x = x + (size_t)t0 * a.n_in;
        for (int i = 0; i < n; i++) a.y[i] = y[i] + (size_t)t0 * w[i]->n_out;
        switch (w[0]->type) {
        case T_F32: k_matvec<T_F32><<<grid, block, 0, st>>>(a); break;
        case T_F16: k_matvec<T_F16><<<grid, block, 0, st>>>(a); break;
        case T_Q4_0: k_matvec<T_Q4_0><<<grid, block, 0, st>>>(a); break;
        case T_Q8_0: k_matvec<T_Q8_0><<<grid, block, 0, st>>>(a); break;
        case T_Q4_K: k_matvec<T_Q4_K><<<grid, block, 0, st>>>(a); break;
        case T_Q6_K: k_matvec<T_Q6_K><<<grid, block, 0, st>>>(a); break;
        default: break; // the upload accepts native types only
        }
    }
}

static void matvec1(cudaStream_t st, const dmat *w, float *y, const float *bias, const float *x, int T,
                    bool accumulate) {
    matvec(st, &w, &y, &bias, 1, x, T, accumulate, false);
}

// Enqueues the whole step (everything after the uploads of x, rope and ints).
static void enqueue_step(cuda_session *s, int T, int n_out) {
    const cuda_model *m = s->m;
    cudaStream_t st = s->stream;
    int E = m->n_embd, hd = m->head_dim, KV = m->n_head_kv * hd;
    k_scatter_cells<<<(T + 255) / 256, 256, 0, st>>>(s->ints, T, s->seq_cells, s->n_ctx);
    prof_mark(s, OP_UPLOAD);
    for (int l = m->layer0; l < m->n_layer; l++) {
        const dlayer *L = &m->layers[l - m->layer0];
        size_t layer_off = (size_t)(l - m->layer0) * (size_t)s->n_ctx * (size_t)KV;
        k_rmsnorm<<<T, 256, 0, st>>>(s->x, L->attn_norm, s->xb, E, m->rms_eps, NULL);
        prof_mark(s, OP_NORM);
        if (L->wq.type == L->wk.type && L->wq.type == L->wv.type) {
            const dmat *w[3] = {&L->wq, &L->wk, &L->wv};
            float *y[3] = {s->q, s->k, s->v};
            const float *b[3] = {L->bq, L->bk, L->bv};
            matvec(st, w, y, b, 3, s->xb, T, false, false);
        } else {
            matvec1(st, &L->wq, s->q, L->bq, s->xb, T, false);
            matvec1(st, &L->wk, s->k, L->bk, s->xb, T, false);
            matvec1(st, &L->wv, s->v, L->bv, s->xb, T, false);
        }
        prof_mark(s, OP_QKV);
        k_rope_kv<<<T, 128, 0, st>>>(s->q, s->k, s->v, s->rope, s->ints, T, s->k_cache + layer_off,
                                     s->v_cache + layer_off, m->n_head, m->n_head_kv, hd, m->n_rot, m->rope_neox);
        prof_mark(s, OP_ROPE_KV);
        int S = att_splits(T);
        k_attention<<<dim3((unsigned)m->n_head, (unsigned)T, (unsigned)S), ATT_WARPS * 32, 0, st>>>(
            s->q, s->k_cache + layer_off, s->v_cache + layer_off, s->seq_cells, s->ints, T, s->att, m->n_head,
            m->n_head_kv, hd, s->n_ctx, 1.0f / sqrtf((float)hd));
        k_attn_combine<<<dim3((unsigned)m->n_head, (unsigned)T), (unsigned)hd, 0, st>>>(s->att, S, s->xb, m->n_head,
                                                                                       hd);
        prof_mark(s, OP_ATTENTION);
        matvec1(st, &L->wo, s->x, NULL, s->xb, T, true);
        prof_mark(s, OP_WO);
        k_rmsnorm<<<T, 256, 0, st>>>(s->x, L->ffn_norm, s->xb, E, m->rms_eps, NULL);
        prof_mark(s, OP_NORM);
        const dmat *gu[2] = {&L->gate, &L->up}; // one type: the upload checked
        float *hy[2] = {s->hb, s->hb};
        matvec(st, gu, hy, NULL, 2, s->xb, T, false, true);
        prof_mark(s, OP_GATE_UP);
        matvec1(st, &L->down, s->x, NULL, s->hb, T, true);
        prof_mark(s, OP_DOWN);
    }
    if (n_out > 0) {
        k_rmsnorm<<<T, 256, 0, st>>>(s->x, m->output_norm, s->xb, E, m->rms_eps, s->ints + 3 * T);
        matvec1(st, &m->output, s->logits, NULL, s->xb, n_out, false);
        prof_mark(s, OP_HEAD);
    }
}

static bool upload_batch(cuda_session *s, const cuda_batch *b) {
    const cuda_model *m = s->m;
    int T = b->n_tokens;
    memcpy(s->h_x, b->x, (size_t)T * m->n_embd * sizeof(float));
    memcpy(s->h_rope, b->rope, (size_t)T * m->n_rot * sizeof(float));
    memcpy(s->h_ints, b->pos, (size_t)T * 4);
    memcpy(s->h_ints + T, b->seq, (size_t)T * 4);
    memcpy(s->h_ints + 2 * T, b->cell, (size_t)T * 4);
    memcpy(s->h_ints + 3 * T, b->out_row, (size_t)T * 4);
    return true;
}

static void enqueue_uploads(cuda_session *s, int T) {
    const cuda_model *m = s->m;
    cudaMemcpyAsync(s->x, s->h_x, (size_t)T * m->n_embd * sizeof(float), cudaMemcpyHostToDevice, s->stream);
    cudaMemcpyAsync(s->rope, s->h_rope, (size_t)T * m->n_rot * sizeof(float), cudaMemcpyHostToDevice, s->stream);
    cudaMemcpyAsync(s->ints, s->h_ints, (size_t)T * 16, cudaMemcpyHostToDevice, s->stream);
}

extern "C" bool cuda_forward(cuda_session *s, const cuda_batch *b, float *logits, float *embd, char *err,
                             size_t cap) {
    const cuda_model *m = s->m;
    int T = b->n_tokens;
    if (T <= 0 || T > s->n_batch) {
        snprintf(err, cap, "GPU step of %d tokens exceeds the session's batch %d", T, s->n_batch);
        return false;
    }
    upload_batch(s, b);
    bool graphable = s->use_graph && T == 1 && b->n_out == 1;
    if (graphable && !s->graph_tried) {
        // Capture once: every kernel reads the changing values (position, cell, sequence) from device memory,
        // and the uploads read the pinned staging buffers, so the same graph serves every decode step.
        s->graph_tried = true;
        cudaGraph_t g = NULL;
        bool ok = cudaStreamBeginCapture(s->stream, cudaStreamCaptureModeThreadLocal) == cudaSuccess;
        if (ok) {
            enqueue_uploads(s, 1);
            enqueue_step(s, 1, 1);
            ok = cudaStreamEndCapture(s->stream, &g) == cudaSuccess && g;
        }
        if (ok) ok = cudaGraphInstantiate(&s->graph, g, 0) == cudaSuccess;
        if (g) cudaGraphDestroy(g);
        if (!ok) {
            s->graph = NULL;
            cudaGetLastError();
        }
    }
    if (graphable && s->graph) {
        if (!cu_ok(cudaGraphLaunch(s->graph, s->stream), "cudaGraphLaunch", err, cap)) return false;
    } else {
        prof_mark(s, OP_START);
        enqueue_uploads(s, T);
        enqueue_step(s, T, b->n_out);
        if (!cu_ok(cudaGetLastError(), "kernel launch", err, cap)) return false;
    }
    if (b->n_out > 0) {
        if (!cu_ok(cudaMemcpyAsync(logits, s->logits, (size_t)b->n_out * m->n_vocab * sizeof(float),
                                   cudaMemcpyDeviceToHost, s->stream),
                   "cudaMemcpy (logits)", err, cap))
            return false;
        if (embd && !cu_ok(cudaMemcpyAsync(embd, s->xb, (size_t)b->n_out * m->n_embd * sizeof(float),
                                           cudaMemcpyDeviceToHost, s->stream),
                           "cudaMemcpy (embeddings)", err, cap))
            return false;
    }
    if (!cu_ok(cudaStreamSynchronize(s->stream), "GPU forward step", err, cap)) return false;
    if (s->prof) prof_collect(s);
    return true;
}
