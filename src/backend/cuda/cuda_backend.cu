// cuda_backend.cu: the NVIDIA GPU backend: device probe, weight upload (with the repacked layouts), the memory
// planner's exact sizes, and the llama layers placed on the GPU, the final norm and the output head.
//
// Three paths through a step, chosen per batch:
// - GEMM (batches of >= gemm_min tokens, default 16, or 8 once the F16 copies exist: gemm_step): each quantized
//   weight matrix is read as F16 from the
//   model's F16 copies (made once, at the first such batch, when free VRAM allows: f16_cache_acquire) or
//   else dequantized into a scratch buffer, and multiplied by the F16 activations with cuBLAS on the tensor
//   cores (F32 accumulation and output; F32 weights stay F32 and take SGEMM); attention is a tiled
//   flash-style kernel over the sequence's cells when the batch holds one sequence.
// - dp4a matrix-vector products (smaller batches and decode): the activations are quantized once per matrix
//   input to 8-bit blocks of 32 with an F32 scale and scaled sum (as ggml's Q8_1), by the kernel that makes
//   them (RMSNorm, attention combine, SwiGLU); the weights are read with 16-byte loads and multiplied with
//   __dp4a. QKV runs with RoPE and the KV-cache write in its epilogue; gate and up run in one launch with
//   SwiGLU and the quantization of their output. A decode step of one token is captured in a CUDA graph.
// - legacy (INFERNO_CUDA_MMVQ=0): F32 activations against weights dequantized in registers.
//
// Numerics: the GEMM path rounds activations to F16 (as the CPU does for F16 weights); the dp4a path rounds
// them to 8 bits (as the CPU does for quantized weights); F16 and F32 weights keep F32 activations in the
// matrix-vector path. The KV cache is F16. Logits differ from the CPU backend's by rounding; tests bound it.
//
// A single-token step with one output row of a model with quantized layers takes the persistent kernel
// (decode_persistent.cuh) where the card allows: the whole step in one cooperative launch with grid-wide
// barriers between phases, on the same dp4a dot products.
//
// Leaves out (for now): MMA kernels of our own (cuBLAS does the GEMM), multi-GPU.
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/decode_persistent.h"

#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MV_WARPS 8     // rows per matrix-vector block of the legacy path (one warp per row)
#define MV_MAX_T 8     // tokens per matrix-vector launch (both paths); longer batches loop
#define ATT_WARPS 4    // warps per attention block
#define ATT_MAX_HD 256 // head_dim limit of the attention kernel (8 values per lane, 32 lanes)
#define FA_BQ 32       // flash attention: queries per block (4 warps of 8)
#define FA_BK 32       // flash attention: keys per tile (one per lane)
#define NORM_THREADS 256
#define GEMM_MIN_DEFAULT 16
#define GEMM_MIN_F16 8 // with the model's F16 weight copies made, batches from this size take the GEMM path too

static bool cu_ok(cudaError_t e, const char *what, char *err, size_t cap) {
    if (e == cudaSuccess) return true;
    snprintf(err, cap, "%s failed: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
    cudaGetLastError(); // clear a sticky-free error so later calls report their own
    return false;
}

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

static bool is_quant(int t) { return t == T_Q4_0 || t == T_Q8_0 || t == T_Q4_K || t == T_Q6_K; }

// Bytes of one row of n elements in the file (0 for types the GPU does not take).
static uint64_t file_row_bytes(int t, int64_t n) {
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

// Device layout: bytes of one row in the quant plane, and f16 scales per row in the scale plane (0: none).
static uint64_t quant_row_bytes(int t, int64_t n) {
    switch (t) {
    case T_Q4_0: return (uint64_t)(n / 32) * 16;
    case T_Q8_0: return (uint64_t)(n / 32) * 32;
    case T_Q6_K: return (uint64_t)(n / 256) * QBYTES_Q6_K;
    default: return file_row_bytes(t, n);
    }
}

static int scales_per_row(int t, int64_t n) {
    return t == T_Q4_0 || t == T_Q8_0 ? (int)(n / 32) : t == T_Q6_K ? (int)(n / 256) : 0;
}

static uint64_t row_pitch_of(int t, int64_t n) { return align_up(quant_row_bytes(t, n), 16); }

// Scales between rows of the scale plane: a multiple of 8 (16 bytes), so that any run of rows of either plane
// is one 16-byte aligned piece (the persistent kernel copies such runs into shared memory in one request).
static int scale_pitch_of(int t, int64_t n) { return (int)align_up((uint64_t)scales_per_row(t, n), 8); }

extern "C" uint64_t cuda_matrix_bytes(int t, int64_t n_in, int64_t n_out) {
    uint64_t quants = align_up(row_pitch_of(t, n_in) * (uint64_t)n_out, 16);
    return quants + (uint64_t)scale_pitch_of(t, n_in) * 2 * (uint64_t)n_out;
}

// ---------------------------------------------------------------------------------------------------------
// Model: one device buffer holding every GPU weight, sub-allocated in a fixed walk order so that the planner
// (count only) and the upload (count and copy) agree to the byte.
// ---------------------------------------------------------------------------------------------------------
struct cuda_model {
    int n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_rot, n_vocab, layer0;
    float rms_eps;
    bool rope_neox;
    dlayer *layers; // (n_layer - layer0)
    const float *output_norm;
    dmat output;
    void *buf;
    uint64_t buf_bytes;
    // F16 copies of the quantized matrices for the GEMM path, made at the first large batch when free VRAM
    // allows (f16_cache_acquire); f16_state 0: not tried, 1: made (the dmat h pointers are set), 2: declined.
    pthread_mutex_t f16_lock;
    int f16_state;
    bool f16_native; // its GEMM matrices are all F16 or F32 (nothing to copy), known once f16_state is not 0
    void *f16_buf;
    uint64_t f16_bytes;
    // Column copies of wo and down for the persistent decode kernel (col_acquire, at the first session that takes
    // the kernel); col_state as f16_state, under f16_lock.
    int col_state;
    void *col_buf;
    uint64_t col_bytes;
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

// Splits the file's blocks of a repacked type into the quant and scale planes (host side).
static void repack_rows(const cuda_matrix *m, uint64_t pitch, int spitch, uint8_t *quants, uint16_t *scales) {
    const int spr = scales_per_row(m->type, m->n_in);
    int fb = m->type == T_Q4_0 ? BYTES_Q4_0 : m->type == T_Q8_0 ? BYTES_Q8_0 : BYTES_Q6_K;
    int qb = m->type == T_Q4_0 ? 16 : m->type == T_Q8_0 ? 32 : QBYTES_Q6_K;
    int d_at = m->type == T_Q6_K ? QBYTES_Q6_K : 0, q_at = m->type == T_Q6_K ? 0 : 2;
    for (int64_t r = 0; r < m->n_out; r++) {
        const uint8_t *src = (const uint8_t *)m->data + (size_t)r * m->row_bytes;
        for (int b = 0; b < spr; b++) {
            const uint8_t *blk = src + (size_t)b * fb;
            memcpy(quants + (size_t)r * pitch + (size_t)b * qb, blk + q_at, (size_t)qb);
            memcpy(&scales[(size_t)r * spitch + b], blk + d_at, 2);
        }
    }
}

static dmat walk_matrix(walker *w, const cuda_matrix *m) {
    dmat d = {m->type, (int)m->n_in, (int)m->n_out, row_pitch_of(m->type, m->n_in), NULL, NULL,
              scale_pitch_of(m->type, m->n_in), NULL};
    uint64_t off = w->used, bytes = cuda_matrix_bytes(m->type, m->n_in, m->n_out);
    uint64_t quants = align_up(d.pitch * (uint64_t)m->n_out, 16);
    w->used = align_up(w->used + bytes, ALIGN);
    if (!w->base || !w->ok) return d;
    d.d = w->base + off;
    if (d.spitch) d.s = (const __half *)(w->base + off + quants);
    if (!d.spitch) {
        w->ok = cu_ok(cudaMemcpy2D(w->base + off, d.pitch, m->data, m->row_bytes, quant_row_bytes(m->type, m->n_in),
                                   (size_t)m->n_out, cudaMemcpyHostToDevice),
                      "cudaMemcpy2D (weights)", w->err, w->cap);
        return d;
    }
    uint8_t *host = (uint8_t *)calloc(1, bytes);
    if (!host) {
        snprintf(w->err, w->cap, "out of host memory repacking a %d x %d weight (%.1f MiB)", d.n_out, d.n_in,
                 (double)bytes / (1024.0 * 1024.0));
        w->ok = false;
        return d;
    }
    repack_rows(m, d.pitch, d.spitch, host, (uint16_t *)(host + quants));
    w->ok = cu_ok(cudaMemcpy(w->base + off, host, bytes, cudaMemcpyHostToDevice), "cudaMemcpy (weights)", w->err,
                  w->cap);
    free(host);
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
        D.wo_c = D.down_c = cmat{};
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
    pthread_mutex_init(&m->f16_lock, NULL);
    for (int l = 0; l < n_gpu; l++)
        if (d->layers[l].gate.type != d->layers[l].up.type) {
            snprintf(err, cap, "layer %d: ffn_gate and ffn_up differ in type (the GPU pairs them)", d->layer0 + l);
            cuda_model_free(m);
            return false;
        }
    int hd8 = d->head_dim / 8;
    if (d->head_dim > ATT_MAX_HD || d->head_dim % 8 || (hd8 & (hd8 - 1)) || d->n_rot % 2 || d->n_rot > d->head_dim) {
        snprintf(err, cap, "head_dim %d / n_rot %d is not one the GPU attention kernels take (head_dim 8 x a power "
                 "of two, <= %d; n_rot even, <= head_dim)", d->head_dim, d->n_rot, ATT_MAX_HD);
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

extern "C" bool cuda_model_f16_bytes(cuda_model *m, uint64_t *bytes) {
    pthread_mutex_lock(&m->f16_lock);
    const int st = m->f16_state;
    *bytes = st == 1 ? m->f16_bytes : 0;
    pthread_mutex_unlock(&m->f16_lock);
    return st != 0;
}

extern "C" void cuda_model_free(cuda_model *m) {
    if (!m) return;
    if (m->buf) cudaFree(m->buf);
    if (m->f16_buf) cudaFree(m->f16_buf);
    if (m->col_buf) cudaFree(m->col_buf);
    pthread_mutex_destroy(&m->f16_lock);
    free(m->layers);
    free(m);
}

// Dequantizes elements [32c, 32c + 32) of a row into w (device layouts above; srow: the row's scales).
template <int TYPE>
__device__ __forceinline__ void load_chunk(const uint8_t *row, const __half *srow, int c, float w[32]) {
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
        uint4 v = __ldg((const uint4 *)row + c);
        float d = __half2float(__ldg(srow + c));
        const uint32_t q[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int k = 0; k < 4; k++) {
                w[4 * i + k] = (float)((int)((q[i] >> (8 * k)) & 15) - 8) * d;
                w[16 + 4 * i + k] = (float)((int)((q[i] >> (8 * k + 4)) & 15) - 8) * d;
            }
    } else if (TYPE == T_Q8_0) {
        const uint4 *p = (const uint4 *)row + 2 * c;
        float d = __half2float(__ldg(srow + c));
#pragma unroll
        for (int i = 0; i < 2; i++) {
            uint4 v = __ldg(p + i);
            const uint32_t q[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
            for (int j = 0; j < 4; j++)
#pragma unroll
                for (int k = 0; k < 4; k++) w[16 * i + 4 * j + k] = (float)(int8_t)(q[j] >> (8 * k)) * d;
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
        const uint8_t *sb = row + (size_t)(c >> 3) * QBYTES_Q6_K;
        int j = c & 7, h = j >> 2, k = j & 3;
        const uint32_t *ql = (const uint32_t *)(sb + 64 * h + (k & 1) * 32), *qh = (const uint32_t *)(sb + 128 + 32 * h);
        const int8_t *sc = (const int8_t *)(sb + 192) + 8 * h + 2 * k;
        float d = __half2float(__ldg(srow + (c >> 3)));
        float d0 = d * (float)sc[0], d1 = d * (float)sc[1];
        int lshift = (k >> 1) * 4, hshift = 2 * k;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            uint32_t lo = ql[i] >> lshift, hi = qh[i] >> hshift;
#pragma unroll
            for (int b = 0; b < 4; b++) {
                int q = (int)(((lo >> (8 * b)) & 0xF) | (((hi >> (8 * b)) & 3) << 4)) - 32;
                w[4 * i + b] = (4 * i + b < 16 ? d0 : d1) * (float)q;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Kernels: legacy matrix-vector product (F32 activations; INFERNO_CUDA_MMVQ=0)
// ---------------------------------------------------------------------------------------------------------
// Up to three matrices of one type and one input width, computed in one launch: global row r belongs to the
// first matrix whose row count it is below. y[i] is (T, n_out[i]); x is (T, n_in). accumulate adds into y
// (the residual stream); swiglu pairs matrix 0 (gate) and 1 (up) row by row and writes silu(g) * u to y[0].
typedef struct {
    const uint8_t *w[3];
    const __half *s[3];
    uint64_t pitch[3];
    int spitch[3];
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
    const __half *srow = a.s[mi] ? a.s[mi] + (size_t)r * a.spitch[mi] : NULL;
    const uint8_t *row2 = a.swiglu ? a.w[1] + (uint64_t)r * a.pitch[1] : NULL;
    const __half *srow2 = a.swiglu && a.s[1] ? a.s[1] + (size_t)r * a.spitch[1] : NULL;
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
        load_chunk<TYPE>(row, srow, c, w);
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
            load_chunk<TYPE>(row2, srow2, c, w);
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
    float scale = 1.0f / sqrtf(block_sum(s) / (float)n + eps);
    float *o = out + (size_t)row * n;
    for (int i = threadIdx.x; i < n; i += blockDim.x) o[i] = (xr[i] * scale) * w[i];
}

// ---------------------------------------------------------------------------------------------------------
// Kernels: 8-bit activations and dp4a matrix-vector products
// ---------------------------------------------------------------------------------------------------------
// RMSNorm (w != NULL; w == NULL: no norm) of token blockIdx.x into output row out_row[t] (or t), written as
// F32 (xf), F16 (xh) and 8-bit blocks (xq, xds; n % 32 == 0), each when not NULL. With n % 8 == 0 a thread
// takes 8 consecutive values (two float4 loads), and the 4 lanes of a 32-value block quantize it together.
// The whole block (blockDim.x a multiple of 32) normalizes xr into output row `row`. xr is read around L1
// (__ldcg): in the fused use other blocks of the same kernel have just written it.
__device__ void norm_q_row(const float *xr, const float *w, int n, float eps, int row, float *xf, __half *xh,
                           int8_t *xq, float2 *xds) {
    float scale = 1.0f;
    if (w) {
        float s = 0.0f;
        if ((n & 3) == 0)
            for (int i = threadIdx.x; i < (n >> 2); i += blockDim.x) {
                float4 v = __ldcg((const float4 *)xr + i);
                s += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
            }
        else
            for (int i = threadIdx.x; i < n; i += blockDim.x) {
                const float v = __ldcg(xr + i);
                s += v * v;
            }
        scale = 1.0f / sqrtf(block_sum(s) / (float)n + eps);
    }
    size_t o = (size_t)row * n;
    if ((n & 7) == 0) {
        const int nc = n >> 3;
        // Every thread runs the same iterations (the 4-lane shuffles need whole warps); n % 32 == 0 whenever
        // xq is set, so a block's 4 chunks are all valid or all not.
        for (int c0 = 0; c0 < nc; c0 += blockDim.x) {
            const int c = c0 + threadIdx.x;
            const bool ok = c < nc;
            float v[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
            if (ok) {
                const float4 a = __ldcg((const float4 *)xr + 2 * c), b = __ldcg((const float4 *)xr + 2 * c + 1);
                v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
                if (w) {
                    const float4 wa = ((const float4 *)w)[2 * c], wb = ((const float4 *)w)[2 * c + 1];
                    const float ww[8] = {wa.x, wa.y, wa.z, wa.w, wb.x, wb.y, wb.z, wb.w};
#pragma unroll
                    for (int i = 0; i < 8; i++) v[i] = (v[i] * scale) * ww[i];
                }
                if (xf) {
                    ((float4 *)(xf + o))[2 * c] = make_float4(v[0], v[1], v[2], v[3]);
                    ((float4 *)(xf + o))[2 * c + 1] = make_float4(v[4], v[5], v[6], v[7]);
                }
                if (xh) {
                    __half2 h[4];
#pragma unroll
                    for (int i = 0; i < 4; i++) h[i] = __floats2half2_rn(v[2 * i], v[2 * i + 1]);
                    ((uint4 *)(xh + o))[c] =
                        make_uint4(*(unsigned *)&h[0], *(unsigned *)&h[1], *(unsigned *)&h[2], *(unsigned *)&h[3]);
                }
            }
            if (xq) quant8_group(v, ok, c, xq + o, xds + (size_t)row * (n >> 5));
        }
        return;
    }
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float xv = __ldcg(xr + i);
        float v = w ? (xv * scale) * w[i] : xv;
        if (xf) xf[o + i] = v;
        if (xh) xh[o + i] = __float2half(v);
    }
}

__global__ void __launch_bounds__(NORM_THREADS)
    k_norm_q(const float *x, const float *w, int n, float eps, const int32_t *out_row, float *xf, __half *xh,
             int8_t *xq, float2 *xds) {
    pdl_wait();
    pdl_trigger();
    int t = blockIdx.x;
    int row = out_row ? out_row[t] : t;
    if (row < 0) return; // the whole block leaves together
    norm_q_row(x + (size_t)t * n, w, n, eps, row, xf, xh, xq, xds);
}

// The last block of a grid to arrive: every block calls this once after its writes (all threads); true in
// the last one, which then sees every block's writes (read them with __ldcg) and resets the counter for the
// next launch. The launches that share a counter never overlap (stream order; PDL kernels wait first).
__device__ bool last_block(unsigned *counter, unsigned n_blocks) {
    __shared__ bool is_last;
    __syncthreads();
    if (threadIdx.x == 0) {
        __threadfence();
        const unsigned ticket = atomicAdd(counter, 1u);
        is_last = ticket == n_blocks - 1;
        if (is_last) *counter = 0;
    }
    __syncthreads();
    if (is_last) __threadfence();
    return is_last;
}

enum { MODE_MV, MODE_QKV, MODE_SWIGLU };

// One launch of the dp4a matrix-vector kernel. Matrices: MV uses w[0]; QKV w[0..2] = q, k, v (the launch
// covers the row pairs [pair0, pair1), which span matrices of this launch's type only); SWIGLU w[0] = gate,
// w[1] = up. x: T (<= NT) tokens.
typedef struct {
    const uint8_t *w[3];
    const __half *s[3];
    uint64_t pitch[3];
    int spitch[3];
    int n_out[3];
    xop x;
    int T;
    // MV: y[t * ldy + r] = (y +) W x; with counter set, the grid's last block then RMSNorms the T rows of y
    // (ldy == norm_n) with norm_w into norm_xf and 8-bit blocks norm_xq/norm_xds (the next matrix input)
    float *y;
    int ldy, accumulate;
    unsigned *counter;
    const float *norm_w;
    float norm_eps;
    float *norm_xf;
    int8_t *norm_xq;
    float2 *norm_xds;
    // QKV: q into q_out (t * Q + r), k and v into the F16 cache rows cells[t], biases first, RoPE from rope
    int pair0, pair1, Q, KV, hd, n_rot, neox;
    const float *bias[3];
    const float *rope;
    const int32_t *cells;
    float *q_out;
    __half *kc, *vc;
    // SWIGLU: h = silu(gate x) * up x into h_out (t * n_out + r), and as 8-bit blocks into hq/hds when set
    float *h_out;
    int8_t *hq;
    float2 *hds;
} mmvq_args;

template <int TYPE, int NT, int MODE> __global__ void __launch_bounds__(256) k_mmvq(const mmvq_args a) {
    pdl_wait();
    pdl_trigger();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if constexpr (MODE == MODE_MV) {
        const int r = blockIdx.x * 8 + warp;
        if (r < a.n_out[0]) { // no early return: the fused norm below needs every thread
            const uint8_t *const w[1] = {a.w[0] + (uint64_t)r * a.pitch[0]};
            const __half *const s[1] = {a.s[0] ? a.s[0] + (size_t)r * a.spitch[0] : nullptr};
            float acc[1][NT] = {};
            dot_rows<TYPE, 1, NT>(w, s, a.x, a.T, lane, acc);
#pragma unroll
            for (int t = 0; t < NT; t++) {
                if (t >= a.T) break;
                float v = warp_sum(acc[0][t]);
                if (lane == t) {
                    float *y = a.y + (size_t)t * a.ldy + r;
                    *y = a.accumulate ? *y + v : v;
                }
            }
        }
        if (a.counter && last_block(a.counter, gridDim.x))
            for (int t = 0; t < a.T; t++)
                norm_q_row(a.y + (size_t)t * a.ldy, a.norm_w, a.ldy, a.norm_eps, t, a.norm_xf, nullptr, a.norm_xq,
                           a.norm_xds);
    } else if constexpr (MODE == MODE_QKV) {
        // Pair p of q or k: rows (2p, 2p + 1) of a head (normal RoPE), or (p, p + n_rot / 2) (NeoX) with the
        // unrotated tail in consecutive pairs; so each warp owns both values of its rotation.
        const int gp = a.pair0 + blockIdx.x * 8 + warp;
        if (gp >= a.pair1) return;
        const int hq = a.Q >> 1, hk = a.KV >> 1;
        const int mat = gp < hq ? 0 : gp < hq + hk ? 1 : 2;
        const int local = gp - (mat == 0 ? 0 : mat == 1 ? hq : hq + hk);
        int r0, r1, rot;
        qkv_pair_rows(a.hd, a.n_rot, a.neox, mat, local, r0, r1, rot);
        const uint8_t *base = mat == 0 ? a.w[0] : mat == 1 ? a.w[1] : a.w[2];
        const __half *sbase = mat == 0 ? a.s[0] : mat == 1 ? a.s[1] : a.s[2];
        const uint64_t pitch = mat == 0 ? a.pitch[0] : mat == 1 ? a.pitch[1] : a.pitch[2];
        const int spitch = mat == 0 ? a.spitch[0] : mat == 1 ? a.spitch[1] : a.spitch[2];
        const float *bias = mat == 0 ? a.bias[0] : mat == 1 ? a.bias[1] : a.bias[2];
        const uint8_t *const w[2] = {base + (uint64_t)r0 * pitch, base + (uint64_t)r1 * pitch};
        const __half *const s[2] = {sbase ? sbase + (size_t)r0 * spitch : nullptr,
                                    sbase ? sbase + (size_t)r1 * spitch : nullptr};
        float acc[2][NT] = {};
        dot_rows<TYPE, 2, NT>(w, s, a.x, a.T, lane, acc);
#pragma unroll
        for (int t = 0; t < NT; t++) {
            if (t >= a.T) break;
            float y0 = warp_sum(acc[0][t]), y1 = warp_sum(acc[1][t]);
            if (lane != t) continue;
            if (bias) y0 += bias[r0], y1 += bias[r1];
            if (rot >= 0) {
                const float c = a.rope[(size_t)t * a.n_rot + 2 * rot], sn = a.rope[(size_t)t * a.n_rot + 2 * rot + 1];
                const float u0 = y0 * c - y1 * sn, u1 = y0 * sn + y1 * c;
                y0 = u0, y1 = u1;
            }
            if (mat == 0) {
                a.q_out[(size_t)t * a.Q + r0] = y0;
                a.q_out[(size_t)t * a.Q + r1] = y1;
            } else {
                __half *dst = (mat == 1 ? a.kc : a.vc) + (size_t)a.cells[t] * a.KV;
                dst[r0] = __float2half(y0);
                dst[r1] = __float2half(y1);
            }
        }
    } else {
        // 32 consecutive rows per block, 4 per warp, gate and up together (8 dot products a warp); for 4 tokens
        // or more in two passes of 2 rows (8 rows' accumulators for 8 tokens spilled).
        __shared__ float hs[NT][32];
        constexpr int RP = NT >= 4 ? 2 : 4; // rows a pass
        const int n_out = a.n_out[0];
#pragma unroll 1
        for (int p = 0; p < 4 / RP; p++) {
            const int rb = blockIdx.x * 32 + warp * 4 + p * RP;
            const uint8_t *w[2 * RP];
            const __half *s[2 * RP];
#pragma unroll
            for (int i = 0; i < RP; i++) {
                const int r = min(rb + i, n_out - 1);
                w[i] = a.w[0] + (uint64_t)r * a.pitch[0];
                w[RP + i] = a.w[1] + (uint64_t)r * a.pitch[1];
                s[i] = a.s[0] ? a.s[0] + (size_t)r * a.spitch[0] : nullptr;
                s[RP + i] = a.s[1] ? a.s[1] + (size_t)r * a.spitch[1] : nullptr;
            }
            float acc[2 * RP][NT] = {};
            dot_rows<TYPE, 2 * RP, NT>(w, s, a.x, a.T, lane, acc);
#pragma unroll
            for (int t = 0; t < NT; t++) {
                if (t >= a.T) break;
#pragma unroll
                for (int i = 0; i < RP; i++) {
                    const float g = warp_sum(acc[i][t]), u = warp_sum(acc[RP + i][t]);
                    const float h = g / (1.0f + expf(-g)) * u;
                    if (lane == 0) {
                        hs[t][warp * 4 + p * RP + i] = h;
                        if (rb + i < n_out) a.h_out[(size_t)t * n_out + rb + i] = h;
                    }
                }
            }
        }
        if (a.hq) { // n_out % 32 == 0: every block is full
            __syncthreads();
            if (warp < a.T)
                warp_quant(hs[warp][lane], a.hq + (size_t)warp * n_out + 32 * blockIdx.x,
                           a.hds + (size_t)warp * (n_out >> 5) + blockIdx.x, lane);
        }
    }
}

// Writes each batch token's cell into its sequence's position table.
__global__ void k_scatter_cells(const int32_t *ints, int T, int32_t *seq_cells, int n_ctx) {
    pdl_wait();
    pdl_trigger();
    const int32_t *pos = ints, *seq = ints + T, *cell = ints + 2 * T;
    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < T; t += gridDim.x * blockDim.x)
        seq_cells[(size_t)seq[t] * n_ctx + pos[t]] = cell[t];
}

// Biases (when given) and RoPE on q and k of token blockIdx.x (cos/sin pairs from the CPU's table), then K
// and V into the cache. q, k, v rows are ldq / ldkv floats apart; q is rotated in place.
__global__ void k_rope_kv(float *q, float *k, float *v, int ldq, int ldkv, const float *bq, const float *bk,
                          const float *bv, const float *rope, const int32_t *ints, int T, __half *kc, __half *vc,
                          int n_head, int n_head_kv, int hd, int n_rot, bool neox) {
    int t = blockIdx.x;
    int Q = n_head * hd, KV = n_head_kv * hd;
    const float *cs = rope + (size_t)t * n_rot;
    int cell = ints[2 * T + t];
    float *qt = q + (size_t)t * ldq, *kt = k + (size_t)t * ldkv, *vt = v + (size_t)t * ldkv;
    if (bq || bk || bv) {
        for (int i = threadIdx.x; i < Q; i += blockDim.x)
            if (bq) qt[i] += bq[i];
        for (int i = threadIdx.x; i < KV; i += blockDim.x) {
            if (bk) kt[i] += bk[i];
            if (bv) vt[i] += bv[i];
        }
        __syncthreads();
    }
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

// ---------------------------------------------------------------------------------------------------------
// Kernels: attention
// ---------------------------------------------------------------------------------------------------------
// Causal attention, phase 1: query head blockIdx.y of token blockIdx.x over split blockIdx.z of the positions
// 0..pos of its sequence (S splits of equal length, computed from pos so a captured graph stays valid).
// A key is handled by lpk = head_dim / 8 lanes holding 8 dimensions each (one 16-byte load of K and of V),
// so a warp works on 32 / lpk keys at once, each group with its own online softmax; the groups are merged
// in shared memory and the split's (max, sum, unnormalized output) goes to part. q rows are ldq apart.
// With counters set (hd % 32 == 0), the last of the S blocks of (token, head) also merges the splits into
// out (F32, rows of n_head * hd) and 8-bit blocks oq/ods, as k_attn_combine would.
__global__ void __launch_bounds__(ATT_WARPS * 32)
    k_attention(const float *q, int ldq, const __half *kc, const __half *vc, const int32_t *seq_cells,
                const int32_t *ints, int T, float *part, int n_head, int n_head_kv, int hd, int n_ctx, float scale,
                unsigned *counters, float *out, int8_t *oq, float2 *ods) {
    pdl_wait();
    pdl_trigger();
    int t = blockIdx.x, h = blockIdx.y, split = blockIdx.z, S = gridDim.z; // tokens in x: a batch may exceed y's 65,535
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int lpk = hd >> 3, gpw = 32 / lpk, sub = lane % lpk, gid = warp * gpw + lane / lpk, G = ATT_WARPS * gpw;
    int pos = ints[t], seq = ints[T + t];
    int n_kv = pos + 1, chunk = (n_kv + S - 1) / S, j0 = split * chunk, j1 = min(j0 + chunk, n_kv);
    int KV = n_head_kv * hd;
    size_t head_off = (size_t)(h / (n_head / n_head_kv)) * hd + 8 * sub;
    const float *qh = q + (size_t)t * ldq + (size_t)h * hd + 8 * sub;
    const int32_t *cells = seq_cells + (size_t)seq * n_ctx;
    float qv[8], acc[8];
#pragma unroll
    for (int i = 0; i < 8; i++) qv[i] = qh[i] * scale, acc[i] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    attend_keys(qv, kc, vc, cells, KV, head_off, j0 + warp * gpw, j1, G, lpk, lane / lpk, m, l, acc);
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
    if (!counters || !last_block(counters + (size_t)t * n_head + h, (unsigned)S)) return;
    const float *p = part + ((size_t)t * n_head + h) * S * (size_t)(hd + 2);
    const int Q = n_head * hd;
    for (int d0 = 0; d0 < hd; d0 += blockDim.x) { // whole warps of 32 outputs (hd % 32 == 0)
        const int d = d0 + (int)threadIdx.x;
        if (d0 + (int)(threadIdx.x & ~31u) >= hd) break;
        float Mx = -INFINITY;
        for (int k = 0; k < S; k++)
            if (__ldcg(p + k * (hd + 2) + 1) > 0.0f) Mx = fmaxf(Mx, __ldcg(p + k * (hd + 2)));
        float v = 0.0f, L = 0.0f;
        for (int k = 0; k < S; k++) {
            const float *pk = p + k * (hd + 2);
            const float lk = __ldcg(pk + 1);
            if (lk > 0.0f) {
                const float ex = expf(__ldcg(pk) - Mx);
                v += __ldcg(pk + 2 + d) * ex;
                L += lk * ex;
            }
        }
        const float val = v / L;
        const size_t e = (size_t)t * Q + (size_t)h * hd + d;
        out[e] = val;
        if (oq) warp_quant(val, oq + e - (threadIdx.x & 31), ods + (e >> 5), threadIdx.x & 31);
    }
}

// Attention, phase 2: merges the S splits of token blockIdx.x, element e = blockIdx.y * blockDim.x +
// threadIdx.x of its n_head * hd outputs, into out (F32), outh (F16) and 8-bit blocks oq/ods (each when not
// NULL; oq needs n_head * hd % 32 == 0 and blockDim.x % 32 == 0, so a warp is one block).
__global__ void k_attn_combine(const float *part, int S, float *out, __half *outh, int8_t *oq, float2 *ods, int n_head,
                               int hd) {
    pdl_wait();
    pdl_trigger();
    const int t = blockIdx.x, e = blockIdx.y * blockDim.x + threadIdx.x, Q = n_head * hd, lane = threadIdx.x & 31;
    float val = 0.0f;
    if (e < Q) {
        const int h = e / hd, d = e - h * hd;
        const float *p = part + ((size_t)t * n_head + h) * S * (size_t)(hd + 2);
        float M = -INFINITY;
        for (int k = 0; k < S; k++)
            if (p[k * (hd + 2) + 1] > 0.0f) M = fmaxf(M, p[k * (hd + 2)]);
        float v = 0.0f, L = 0.0f;
        for (int k = 0; k < S; k++) {
            const float *pk = p + k * (hd + 2);
            if (pk[1] > 0.0f) {
                float ex = expf(pk[0] - M);
                v += pk[2 + d] * ex;
                L += pk[1] * ex;
            }
        }
        val = v / L;
        out[(size_t)t * Q + e] = val;
        if (outh) outh[(size_t)t * Q + e] = __float2half(val);
    }
    if (oq && e - lane < Q) warp_quant(val, oq + (size_t)t * Q + (e - lane), ods + (size_t)t * (Q >> 5) + (e >> 5), lane);
}

// Key splits per (token, head): many for a decode step (few blocks otherwise), one for long batches.
// T * att_splits(T) <= max(32, T) bounds the partials buffer.
static int att_splits(int T) { return T == 1 ? 16 : T <= 8 ? 4 : 1; }

__device__ __forceinline__ float f4_get(float4 v, int i) { return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w; }

// Flash-style causal attention for a batch of one sequence: block (tile of FA_BQ queries, head). Each of the 4
// warps owns 8 queries; the block walks key tiles of FA_BK cells (positions 0 .. the tile's last query
// position) through shared memory, a lane per key for the scores (Q·K from padded rows, float4 reads) and
// a lane per output dimension for P·V, with an online softmax per query. F32 arithmetic, F16 cache.
static size_t flash_smem_bytes(int hd) {
    return (size_t)(FA_BQ * (hd + 4) + FA_BK * (hd + 4) + FA_BK * hd + 4 * 8 * FA_BK) * 4 + FA_BQ * 4;
}

template <int HD>
__global__ void __launch_bounds__(128)
    k_flash(const float *q, int ldq, const __half *kc, const __half *vc, const int32_t *seq_cells, const int32_t *ints,
            int T, float *out, __half *outh, int n_head, int n_head_kv, int n_ctx, float scale) {
    constexpr int KP = HD + 4;           // padded rows: float4 reads of a lane's key hit distinct banks
    constexpr int ND = (HD + 31) / 32;   // output dimensions per lane
    constexpr int CPK = HD / 8;          // 16-byte pieces per key row
    extern __shared__ float4 fa_smem[];
    float *Qs = (float *)fa_smem;        // [FA_BQ][KP]
    float *Ks = Qs + FA_BQ * KP;         // [FA_BK][KP]
    float *Vs = Ks + FA_BK * KP;         // [FA_BK][HD]
    float *Ps = Vs + FA_BK * HD;         // [4 warps][8][FA_BK]
    int *qpos = (int *)(Ps + 4 * 8 * FA_BK);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, tid = threadIdx.x;
    const int t0 = blockIdx.x * FA_BQ, h = blockIdx.y, KV = n_head_kv * HD, Q = n_head * HD;
    const int kvh = h / (n_head / n_head_kv);
    for (int i = tid; i < FA_BQ * HD; i += 128) {
        const int qi = i / HD, d = i - qi * HD, t = t0 + qi;
        Qs[qi * KP + d] = t < T ? q[(size_t)t * ldq + (size_t)h * HD + d] * scale : 0.0f;
    }
    if (tid < FA_BQ) qpos[tid] = t0 + tid < T ? ints[t0 + tid] : -1;
    __syncthreads();
    int maxpos = -1, qp[8];
    for (int i = 0; i < FA_BQ; i++) maxpos = max(maxpos, qpos[i]);
#pragma unroll
    for (int i = 0; i < 8; i++) qp[i] = qpos[warp * 8 + i];
    const int32_t *cells = seq_cells + (size_t)ints[T + t0] * n_ctx;
    float m[8], l[8], o[8][ND];
#pragma unroll
    for (int i = 0; i < 8; i++) {
        m[i] = -INFINITY, l[i] = 0.0f;
#pragma unroll
        for (int k = 0; k < ND; k++) o[i][k] = 0.0f;
    }
    float *P = Ps + warp * 8 * FA_BK;
    for (int j0 = 0; j0 <= maxpos; j0 += FA_BK) {
        __syncthreads(); // the previous tile is consumed
        for (int c = tid; c < FA_BK * CPK; c += 128) {
            const int j = c / CPK, dd = (c - j * CPK) * 8;
            uint4 kr = make_uint4(0, 0, 0, 0), vr = make_uint4(0, 0, 0, 0);
            if (j0 + j <= maxpos) {
                const size_t off = (size_t)cells[j0 + j] * KV + (size_t)kvh * HD + dd;
                kr = *(const uint4 *)(kc + off);
                vr = *(const uint4 *)(vc + off);
            }
            const unsigned kw[4] = {kr.x, kr.y, kr.z, kr.w}, vw[4] = {vr.x, vr.y, vr.z, vr.w};
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const float2 kf = h2f(kw[i]), vf = h2f(vw[i]);
                Ks[j * KP + dd + 2 * i] = kf.x, Ks[j * KP + dd + 2 * i + 1] = kf.y;
                Vs[j * HD + dd + 2 * i] = vf.x, Vs[j * HD + dd + 2 * i + 1] = vf.y;
            }
        }
        __syncthreads();
        float sc[8];
#pragma unroll
        for (int i = 0; i < 8; i++) sc[i] = 0.0f;
        const float *kr = Ks + lane * KP;
#pragma unroll
        for (int d = 0; d < HD; d += 4) {
            const float4 kv = *(const float4 *)(kr + d);
#pragma unroll
            for (int i = 0; i < 8; i++) {
                const float4 qv = *(const float4 *)(Qs + (warp * 8 + i) * KP + d);
                sc[i] += qv.x * kv.x + qv.y * kv.y + qv.z * kv.z + qv.w * kv.w;
            }
        }
        const int kpos = j0 + lane;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const float s = kpos <= qp[i] ? sc[i] : -INFINITY;
            const float m_new = fmaxf(m[i], warp_max(s));
            const float p = m_new == -INFINITY ? 0.0f : expf(s - m_new);
            const float corr = m_new == -INFINITY ? 1.0f : expf(m[i] - m_new);
            l[i] = l[i] * corr + warp_sum(p);
            m[i] = m_new;
            P[i * FA_BK + lane] = p;
#pragma unroll
            for (int k = 0; k < ND; k++) o[i][k] *= corr;
        }
        __syncwarp();
        const int jn = min(FA_BK, maxpos - j0 + 1);
        for (int j = 0; j < jn; j += 4) {
            float4 pv[8];
#pragma unroll
            for (int i = 0; i < 8; i++) pv[i] = *(const float4 *)(P + i * FA_BK + j);
#pragma unroll
            for (int jj = 0; jj < 4; jj++)
#pragma unroll
                for (int k = 0; k < ND; k++) {
                    const int d = lane + 32 * k;
                    if (d < HD) {
                        const float v = Vs[(j + jj) * HD + d];
#pragma unroll
                        for (int i = 0; i < 8; i++) o[i][k] += f4_get(pv[i], jj) * v;
                    }
                }
        }
        __syncwarp();
    }
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const int t = t0 + warp * 8 + i;
        if (t >= T) continue;
        const float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
#pragma unroll
        for (int k = 0; k < ND; k++) {
            const int d = lane + 32 * k;
            if (d >= HD) continue;
            const float v = o[i][k] * inv;
            out[(size_t)t * Q + (size_t)h * HD + d] = v;
            if (outh) outh[(size_t)t * Q + (size_t)h * HD + d] = __float2half(v);
        }
    }
}

// The same attention on tensor cores (sm_80 and later, head sizes a multiple of 16 up to 128): block (tile of
// FT_BQ queries, head), each of the 4 warps owning 16 queries; with runs (a batch of several sequences) block
// x takes tokens [runs[2x], runs[2x] + runs[2x + 1]), consecutive tokens of one sequence. Key and value tiles of FT_BK cells are gathered
// into shared memory with asynchronous copies, the next tile's while the warps work on this one. Scores are
// mma.sync products of F16 queries (scaled by scale * log2 e, kept as fragments for the whole kernel) and F16
// keys with F32 sums; the online softmax runs on the score fragments (a lane holds two query rows, reduced
// over the 4 lanes that share them), whose F16 probabilities are the next product's A fragments as they lie;
// values come in with transposing ldmatrix loads. Output: F16 into outh, F32 into out unless NULL.
// INFERNO_CUDA_FLASH_TC=0 takes k_flash instead.
#define FT_BQ 64
#define FT_BK 64
static size_t flash_tc_smem_bytes(int hd) { return (size_t)2 * 2 * FT_BK * (size_t)(hd + 8) * sizeof(__half); }

// 16 bytes global -> shared without registers; ok false fills zeros (nothing is read).
__device__ __forceinline__ void cp_async16(void *dst, const void *src, bool ok) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"((unsigned)__cvta_generic_to_shared(dst)),
                 "l"(src), "r"(ok ? 16 : 0)
                 : "memory");
#endif
}

template <int N> __device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
#endif
}

template <int HD>
__global__ void __launch_bounds__(128)
    k_flash_tc(const float *q, int ldq, const __half *kc, const __half *vc, const int32_t *seq_cells,
               const int32_t *ints, const int32_t *runs, int T, float *out, __half *outh, int n_head, int n_head_kv,
               int n_ctx, float scale) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    static_assert(HD % 16 == 0 && HD <= 128, "head size");
    constexpr int LD = HD + 8;                         // halves a shared row: the lanes' loads hit distinct banks
    constexpr int NC = HD / 16, ND = HD / 8, NS = FT_BK / 8, CPR = HD / 8;
    extern __shared__ float4 ft_smem[];
    __half *Ks = (__half *)ft_smem, *Vs = Ks + 2 * FT_BK * LD; // [2 stages][FT_BK][LD] each
    __shared__ int s_max;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
    const int t0 = runs ? runs[2 * blockIdx.x] : (int)blockIdx.x * FT_BQ;
    const int te = runs ? t0 + runs[2 * blockIdx.x + 1] : min(t0 + FT_BQ, T); // the block's tokens: [t0, te)
    const int h = blockIdx.y, KV = n_head_kv * HD, Q = n_head * HD;
    const int kvh = h / (n_head / n_head_kv);
    if (threadIdx.x == 0) s_max = -1;
    __syncthreads();
    if (threadIdx.x < FT_BQ && t0 + (int)threadIdx.x < te) atomicMax(&s_max, ints[t0 + threadIdx.x]);
    const int r0 = t0 + warp * 16 + g, r1 = r0 + 8; // the lane's two query rows
    const int p0 = r0 < te ? ints[r0] : -1, p1 = r1 < te ? ints[r1] : -1;
    int wmax = max(p0, p1);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) wmax = max(wmax, __shfl_xor_sync(0xffffffffu, wmax, o));
    unsigned qa[NC][4];
    const float qs = scale * 1.4426950408889634f;
#pragma unroll
    for (int c = 0; c < NC; c++)
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int r = i & 1 ? r1 : r0, d = 16 * c + 2 * tq + (i >= 2 ? 8 : 0);
            const float2 v = r < te ? *(const float2 *)(q + (size_t)r * ldq + (size_t)h * HD + d) : make_float2(0.0f, 0.0f);
            qa[c][i] = half2_bits(v.x * qs, v.y * qs);
        }
    __syncthreads();
    const int maxpos = s_max, n_tiles = (maxpos + FT_BK) / FT_BK;
    const int32_t *cells = seq_cells + (size_t)ints[T + t0] * n_ctx;
    float o[ND][4], m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
#pragma unroll
    for (int n = 0; n < ND; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    for (int it = 0; it <= n_tiles; it++) {
        if (it < n_tiles) { // tile it into stage it & 1 (its previous tile was consumed before the last barrier)
            const int j0 = it * FT_BK;
            __half *kd = Ks + (it & 1) * FT_BK * LD, *vd = Vs + (it & 1) * FT_BK * LD;
            for (int c = threadIdx.x; c < FT_BK * CPR; c += 128) {
                const int j = c / CPR, dd = (c - j * CPR) * 8;
                const bool ok = j0 + j <= maxpos;
                const size_t off = ok ? (size_t)cells[j0 + j] * KV + (size_t)kvh * HD + dd : 0;
                cp_async16(kd + j * LD + dd, kc + off, ok);
                cp_async16(vd + j * LD + dd, vc + off, ok);
            }
            asm volatile("cp.async.commit_group;" ::: "memory");
        }
        if (it == 0) continue;
        if (it < n_tiles) cp_async_wait<1>();
        else cp_async_wait<0>();
        __syncthreads(); // tile it - 1 is in place for every warp
        const int j0 = (it - 1) * FT_BK;
        if (j0 <= wmax) { // (warp-uniform) a key of the tile is visible to one of the warp's queries
            const __half *K = Ks + ((it - 1) & 1) * FT_BK * LD, *V = Vs + ((it - 1) & 1) * FT_BK * LD;
            float sc[NS][4];
#pragma unroll
            for (int n = 0; n < NS; n++) {
                sc[n][0] = sc[n][1] = sc[n][2] = sc[n][3] = 0.0f;
                const __half *kr = K + (8 * n + g) * LD + 2 * tq;
#pragma unroll
                for (int c = 0; c < NC; c++)
                    mma_16816(sc[n], qa[c], *(const unsigned *)(kr + 16 * c), *(const unsigned *)(kr + 16 * c + 8));
            }
            float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
            for (int n = 0; n < NS; n++) {
                const int kp = j0 + 8 * n + 2 * tq;
                if (kp > p0) sc[n][0] = -INFINITY;
                if (kp + 1 > p0) sc[n][1] = -INFINITY;
                if (kp > p1) sc[n][2] = -INFINITY;
                if (kp + 1 > p1) sc[n][3] = -INFINITY;
                mx0 = fmaxf(mx0, fmaxf(sc[n][0], sc[n][1]));
                mx1 = fmaxf(mx1, fmaxf(sc[n][2], sc[n][3]));
            }
#pragma unroll
            for (int o_ = 1; o_ <= 2; o_ <<= 1) {
                mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, o_));
                mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, o_));
            }
            const float n0 = fmaxf(m0, mx0), n1 = fmaxf(m1, mx1);
            // A row with no visible key yet keeps m = -inf: its probabilities are 0 and nothing is rescaled.
            const float b0 = n0 == -INFINITY ? 0.0f : n0, b1 = n1 == -INFINITY ? 0.0f : n1;
            const float c0 = exp2f(m0 - b0), c1 = exp2f(m1 - b1);
            m0 = n0, m1 = n1;
            l0 *= c0, l1 *= c1;
#pragma unroll
            for (int n = 0; n < ND; n++) o[n][0] *= c0, o[n][1] *= c0, o[n][2] *= c1, o[n][3] *= c1;
            unsigned pa[NS / 2][4];
#pragma unroll
            for (int n = 0; n < NS; n++) {
                const float e0 = exp2f(sc[n][0] - b0), e1 = exp2f(sc[n][1] - b0);
                const float e2 = exp2f(sc[n][2] - b1), e3 = exp2f(sc[n][3] - b1);
                l0 += e0 + e1, l1 += e2 + e3;
                pa[n >> 1][(n & 1) * 2] = half2_bits(e0, e1);
                pa[n >> 1][(n & 1) * 2 + 1] = half2_bits(e2, e3);
            }
            // o += P . V: per 16 keys, the value fragments of two 8-dimension blocks from one ldmatrix.
            const int mi = lane >> 3, rr = lane & 7;
#pragma unroll
            for (int kb = 0; kb < NS / 2; kb++)
#pragma unroll
                for (int n = 0; n < ND; n += 2) {
                    const __half *vp = V + (16 * kb + (mi & 1) * 8 + rr) * LD + 8 * n + (mi >> 1) * 8;
                    unsigned v0, v1, v2, v3;
                    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                                 : "=r"(v0), "=r"(v1), "=r"(v2), "=r"(v3)
                                 : "r"((unsigned)__cvta_generic_to_shared(vp)));
                    mma_16816(o[n], pa[kb], v0, v1);
                    mma_16816(o[n + 1], pa[kb], v2, v3);
                }
        }
        __syncthreads(); // every warp is done with the stage the next iteration's copies overwrite
    }
#pragma unroll
    for (int o_ = 1; o_ <= 2; o_ <<= 1) {
        l0 += __shfl_xor_sync(0xffffffffu, l0, o_);
        l1 += __shfl_xor_sync(0xffffffffu, l1, o_);
    }
    const float i0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, i1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
#pragma unroll
    for (int n = 0; n < ND; n++) {
        const int d = (int)h * HD + 8 * n + 2 * tq;
        if (r0 < te) {
            if (out) *(float2 *)(out + (size_t)r0 * Q + d) = make_float2(o[n][0] * i0, o[n][1] * i0);
            *(__half2 *)(outh + (size_t)r0 * Q + d) = __floats2half2_rn(o[n][0] * i0, o[n][1] * i0);
        }
        if (r1 < te) {
            if (out) *(float2 *)(out + (size_t)r1 * Q + d) = make_float2(o[n][2] * i1, o[n][3] * i1);
            *(__half2 *)(outh + (size_t)r1 * Q + d) = __floats2half2_rn(o[n][2] * i1, o[n][3] * i1);
        }
    }
#endif
}

// ---------------------------------------------------------------------------------------------------------
// Kernels: GEMM path helpers
// ---------------------------------------------------------------------------------------------------------
// Rows [0, nr) of a quantized matrix (w, s: its first row) to F16, row-major with n_in columns; a thread per
// 32-element chunk.
template <int TYPE>
__global__ void k_dequant(const uint8_t *w, const __half *s, uint64_t pitch, int spitch, int n_in, int nr,
                          __half *out) {
    const int nch = n_in >> 5;
    const size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)nr * nch) return;
    const int r = (int)(idx / nch), c = (int)(idx - (size_t)r * nch);
    float v[32];
    load_chunk<TYPE>(w + (uint64_t)r * pitch, s ? s + (size_t)r * spitch : nullptr, c, v);
    uint4 *o = (uint4 *)(out + (size_t)r * n_in + 32 * c);
#pragma unroll
    for (int k = 0; k < 4; k++) {
        __half2 h[4];
#pragma unroll
        for (int j = 0; j < 4; j++) h[j] = __floats2half2_rn(v[8 * k + 2 * j], v[8 * k + 2 * j + 1]);
        o[k] = make_uint4(*(unsigned *)&h[0], *(unsigned *)&h[1], *(unsigned *)&h[2], *(unsigned *)&h[3]);
    }
}

// A device buffer of `need` bytes when free VRAM exceeds it by a margin (min_margin or a frac-th of the card,
// whichever is larger), else NULL (the error state cleared): for the copies a model makes only when room allows.
static void *vram_reserve(uint64_t need, uint64_t min_margin, unsigned frac) {
    size_t free_b = 0, total_b = 0;
    void *p = NULL;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) return NULL;
    const uint64_t margin = total_b / frac > min_margin ? total_b / frac : min_margin;
    if ((uint64_t)free_b < need + margin || cudaMalloc(&p, need) != cudaSuccess) {
        cudaGetLastError();
        return NULL;
    }
    return p;
}

// ---- Column copies (cmat, above) ----
static bool col_type(int t) { return t == T_Q4_0 || t == T_Q8_0 || t == T_Q4_K || t == T_Q6_K || t == T_F16; }

// Integer value of column c of row r of a device matrix (layouts above), for the column copy.
template <int TYPE> __device__ __forceinline__ int native_q(const uint8_t *row, int c) {
    if constexpr (TYPE == T_Q4_0) {
        const uint8_t b = row[(c >> 5) * 16 + (c & 15)];
        return (c & 16) ? b >> 4 : b & 15;
    } else if constexpr (TYPE == T_Q8_0) {
        return (int8_t)row[c];
    } else if constexpr (TYPE == T_Q4_K) {
        const int v = c & 255, w = v & 63;
        const uint8_t b = row[(c >> 8) * BYTES_Q4_K + 16 + (v >> 6) * 32 + (w & 31)];
        return w < 32 ? b & 15 : b >> 4;
    } else { // Q6_K: ql[128], qh[64], scales[16] a super-block
        const uint8_t *blk = row + (c >> 8) * QBYTES_Q6_K;
        const int v = c & 255, half = v >> 7, l = v & 127, g = l >> 5, l32 = l & 31;
        const uint8_t lo = blk[half * 64 + (g & 1) * 32 + l32];
        const int nib = g >= 2 ? lo >> 4 : lo & 15;
        return nib | (((blk[128 + half * 32 + l32] >> (2 * g)) & 3) << 4);
    }
}

// One thread a (row, unit): packs the unit's 16 values and, on the first unit of their span, the row's scales.
template <int TYPE> __global__ void k_colcopy(const dmat w, uint8_t *q, uint8_t *sub, __half *d) {
    const int R = w.n_out, U = w.n_in / 16;
    const size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)R * U) return;
    const int u = (int)(idx / R), r = (int)(idx - (size_t)u * R);
    const uint8_t *row = w.d + (uint64_t)r * w.pitch;
    int v[16];
#pragma unroll
    for (int j = 0; j < 16; j++) v[j] = native_q<TYPE>(row, 16 * u + j);
    uint8_t *o = q + ((size_t)u * R + r) * col_qb(TYPE);
    if constexpr (TYPE == T_Q8_0) {
#pragma unroll
        for (int j = 0; j < 16; j++) o[j] = (uint8_t)v[j];
    } else {
#pragma unroll
        for (int j = 0; j < 8; j++) o[j] = (uint8_t)((v[j] & 15) | ((v[j + 8] & 15) << 4));
    }
    if constexpr (TYPE == T_Q6_K) {
        unsigned h = 0;
#pragma unroll
        for (int k = 0; k < 4; k++)
#pragma unroll
            for (int i = 0; i < 4; i++) h |= (unsigned)(v[4 * k + i] >> 4) << (8 * i + 2 * k);
        memcpy(o + 8, &h, 4);
        const uint8_t *blk = row + (u >> 4) * QBYTES_Q6_K;
        sub[(size_t)u * R + r] = blk[192 + (u & 15)]; // the scale of values 16 (u % 16) .. + 15 of the super-block
        if ((u & 15) == 0) d[(size_t)(u >> 4) * R + r] = w.s[(size_t)r * w.spitch + (u >> 4)];
    } else if constexpr (TYPE == T_Q4_K) {
        const uint8_t *blk = row + (u >> 4) * BYTES_Q4_K, *sc = blk + 4;
        const int is = (u & 15) >> 1; // the 32-column sub-block
        if ((u & 1) == 0) {
            int s, m;
            if (is < 4) s = sc[is] & 63, m = sc[is + 4] & 63;
            else s = (sc[is + 4] & 15) | ((sc[is - 4] >> 6) << 4), m = (sc[is + 4] >> 4) | ((sc[is] >> 6) << 4);
            sub[((size_t)(u >> 1) * R + r) * 2] = (uint8_t)s;
            sub[((size_t)(u >> 1) * R + r) * 2 + 1] = (uint8_t)m;
        }
        if ((u & 15) == 0) {
            __half *dd = d + ((size_t)(u >> 4) * R + r) * 2;
            memcpy(dd, blk, 4); // d, dmin
        }
    } else if ((u & 1) == 0) {
        d[(size_t)(u >> 1) * R + r] = w.s[(size_t)r * w.spitch + (u >> 1)];
    }
}

// The F16 form: a (row, unit)'s 32 bytes as they are.
__global__ void k_colcopy_f16(const dmat w, uint8_t *q) {
    const int R = w.n_out, U = w.n_in / 16;
    const size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)R * U) return;
    const int u = (int)(idx / R), r = (int)(idx - (size_t)u * R);
    const uint4 *src = (const uint4 *)(w.d + (uint64_t)r * w.pitch + (size_t)u * 32);
    uint4 *dst = (uint4 *)(q + ((size_t)u * R + r) * 32);
    dst[0] = src[0], dst[1] = src[1];
}

// h = silu(gate) * up from the GEMM's (T, 2F) output (gate in columns [0, F), up in [F, 2F)), as F32 and F16.
// h = silu(gate) * up for the rows of gu (gate | up, 2F apart): block (token, chunk of F), 4 values a thread
// when F % 4 == 0. hf (F32: only F32 down weights read it) may be NULL.
__global__ void k_swiglu(const float *gu, int F, float *hf, __half *hh) {
    const int t = blockIdx.x;
    const float *g = gu + (size_t)t * 2 * F, *u = g + F;
    const size_t o = (size_t)t * F;
    if ((F & 3) == 0) {
        const int j = 4 * (int)(blockIdx.y * blockDim.x + threadIdx.x);
        if (j >= F) return;
        const float4 a = *(const float4 *)(g + j), b = *(const float4 *)(u + j);
        const float v[4] = {a.x / (1.0f + expf(-a.x)) * b.x, a.y / (1.0f + expf(-a.y)) * b.y,
                            a.z / (1.0f + expf(-a.z)) * b.z, a.w / (1.0f + expf(-a.w)) * b.w};
        if (hf) *(float4 *)(hf + o + j) = make_float4(v[0], v[1], v[2], v[3]);
        __half2 *h2 = (__half2 *)(hh + o + j);
        h2[0] = __floats2half2_rn(v[0], v[1]);
        h2[1] = __floats2half2_rn(v[2], v[3]);
        return;
    }
    for (int j = (int)(blockIdx.y * blockDim.x + threadIdx.x); j < F; j += (int)(gridDim.y * blockDim.x)) {
        const float v = g[j] / (1.0f + expf(-g[j])) * u[j];
        if (hf) hf[o + j] = v;
        hh[o + j] = __float2half(v);
    }
}

__global__ void k_to_half(const float *x, size_t n, __half *y) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] = __float2half(x[i]);
}

// ---------------------------------------------------------------------------------------------------------
// Session
// ---------------------------------------------------------------------------------------------------------
enum { OP_START, OP_UPLOAD, OP_NORM, OP_QKV, OP_ROPE_KV, OP_ATTENTION, OP_WO, OP_GATE_UP, OP_DOWN, OP_HEAD,
       OP_COUNT };
static const char *const op_names[OP_COUNT] = {"start", "upload", "norm", "qkv", "rope+kv", "attention", "wo",
                                               "gate/up", "down", "head"};
#define PROF_MAX_EVENTS 2048
#define MG_SLOTS 16 // multi-token step graphs kept per session
#define MG_MAX_T 64 // the most tokens of a step that runs as a graph (decode steps of that many sequences)

typedef struct {
    int T, n_out, att_blocks;
    bool f16;
    int seen;                // steps of this shape since it took the slot
    bool failed;             // capture or instantiation failed: launch directly
    cudaGraphExec_t exec;
    unsigned long long used; // mg_clock at its last use
} mgraph;

struct cuda_session {
    cuda_model *m;
    int n_ctx, n_batch, n_seq;
    cudaStream_t stream;
    void *kv_buf, *buf;  // device: KV cache; compute buffers
    void *host;          // pinned staging: x, rope, ints of one batch
    __half *k_cache, *v_cache; // (gpu layers, n_ctx, kv_dim)
    float *x, *xb, *q, *k, *v, *hb, *rope, *logits, *att;
    float *x2; // the persistent kernel's second residual buffer (split-K), after x's n_batch rows
    int32_t *ints, *seq_cells;
    // dp4a path: 8-bit activations of the E/Q-wide inputs (xq, xds) and of the F-wide one (hq, hds)
    int8_t *xq, *hq;
    float2 *xds, *hds;
    // GEMM path: q|k|v and gate|up outputs, F16 activations, the F16 weight scratch (scratch_elems values)
    float *qkv, *gu;
    __half *xh, *scratch;
    uint64_t scratch_elems;
    cublasHandle_t cublas; // made at the first GEMM batch
    bool f16_checked;      // f16_cache_acquire ran for this session
    bool f16_ready;        // this session has seen the model's F16 copies made (read them without the lock)
    bool gemm_f16;         // ... or knows the GEMM path reads every matrix as it is (F16 or F32 weights)
    int gemm_min;          // batches of >= gemm_min tokens take the GEMM path (0: never)
    int gemm_min_f16;      // ... and of >= gemm_min_f16 where the F16 copies exist (0: no such rule)
    bool mmvq_nt8;         // INFERNO_CUDA_MMVQ_NT=8: the matrix-vector kernel for 8 tokens for any batch of several
    bool gemm_side;        // q|k|v and gate|up as one GEMM each where their F16 rows are contiguous (gemm_side)
    long gemm_calls, gemm_sides; // GEMM products enqueued; those of them over side-by-side matrices (profile)
    bool mmvq, flash;      // dp4a matvec (else legacy); flash attention kernel for this head size
    bool flash_tc;         // the flash attention on tensor cores (k_flash_tc) for this head size and card
    int att_blocks;        // the batch's runs for it (upload_batch): blocks of one sequence's consecutive tokens
    bool pdl;              // decode-path kernels launched with programmatic dependent launch
    bool fuse;             // INFERNO_CUDA_FUSE=1: norms in the wo/down kernels' last block, attention combine
                           // in the split kernel's last block (fewer launches, but a serialized tail)
    unsigned *counters;    // [0]: the matvec's; then one per (token, head) for the attention; then the
                           // persistent kernel's: its barrier's two, then one per KV head
    // The persistent decode kernel (decode_persistent.cuh) for single-token steps, unless INFERNO_CUDA_PERSIST=0
    bool persist;
    bool pd_prefetch;      // INFERNO_CUDA_PD_PREFETCH=1: idle warps prefetch the next phase's weights into L2
    int pd_skpf;           // INFERNO_CUDA_PD_SKPF: split-K's L2 prefetches (pd_args.sk_pf)
    bool pd_flags;         // INFERNO_CUDA_PD_FLAGS=1: per-KV-head counters instead of a grid barrier after qkv
    int pd_max_splits;     // key splits a head (the partials buffer and the merge's shared weights hold them)
    size_t pd_wts_at;      // byte offset of the merge's weights in the kernel's shared memory
    int pd_grid;           // co-resident blocks (a multiple of the SM count)
    bool pd_ring;          // the weights through the shared-memory ring (sm_90; INFERNO_CUDA_PD_RING=0: off)
    bool pd_sk;            // wo and down as split-K products over the model's column copies (col_acquire)
    int pd_sk_at, pd_sk_umax; // the split-K shared area's offset; units of 16 columns a block takes at most
    int pd_nw_at;          // split-K: the offset of the next stage's norm weights in shared memory (0: none)
    unsigned pd_ring_at, pd_ring_bytes, pd_tab_at, pd_jobs_at;
    pd_jobd *d_jobs, *pd_jobs_h; // the blocks' job tables (pd_job_stride jobs a block), device / host while planned
    int *d_job_count, *pd_count_h;
    int pd_job_stride;
    size_t pd_smem;        // dynamic shared memory a block
    dlayer *d_layers;      // device copy of the GPU layers' table
    // INFERNO_CUDA_PROFILE=3: block 0's clock at the persistent kernel's phase edges, summed per edge kind
    bool pd_prof;
    long long *pd_trace, *h_trace; // device / host: (n_gpu_layers + 1) * PD_EDGES clocks of the last step
    double pd_cycles[PD_EDGES + 9]; // the edges, head stage, head, total; the ring's waits (5 phases), issuing
    long pd_steps;
    int clock_khz;
    // INFERNO_CUDA_PROFILE=4: every block's (global timer, clock) at the PD_TL_ points of each layer; per point
    // (PD_TL + 1: the down barrier's release) sums over layers and steps of the min / median / max over blocks
    // of the global time since the layer's first start, and of the median / max block's own clock time in the
    // interval that ends at the point; the head's three points in the last row.
    bool pd_timeline;
    long long *pd_tl, *h_tl;
    double tl_at[PD_TL + 1][3], tl_own[PD_TL + 1][2], tl_head[3][3], tl_post[2];
    long tl_n;
    long tl_n_long; // of them, steps of the LONG form
    cudaError_t launch_err; // the first failed cudaLaunchKernelEx of a step
    // INFERNO_CUDA_PROFILE=2: graphs stay on; each graph replay is timed with two events
    bool prof_graph;
    double graph_ms;
    long graph_steps;
    // and the host's share of each replayed step (us): from entering cuda_forward to the launch's return, the
    // wait for the step, and the caller's own time from the previous step's return to this one's entry
    double host_launch, host_wait, host_between, host_prev;
    long host_gaps;
    float *h_x, *h_rope;
    float *h_logits; // pinned: one row of logits (steps with one output row copy through it: a DMA, not a staged
                     // copy; H100 tg128 Q4_K_M +1%)
    int32_t *h_ints;
    // The persistent kernel's one-token steps: x, RoPE pairs and ints packed (in1_floats) in pinned memory
    // (h_in1) and on the device (d_in1): one upload; the kernel enters the token's cell itself (no scatter
    // kernel) and, with pd_host_logits, writes the logits straight into h_logits (no download).
    float *h_in1, *d_in1;
    void (*pd_fn)(const pd_args); // the persistent kernel's instantiation for the model's types (pd_kernel_for)
    void (*pd_fn_long)(const pd_args); // its form for caches past PD_ONE_SPLIT_MAX positions (LONG)
    bool pd_att_tc;               // the LONG form's attention on tensor cores (pd_args.att_tc; INFERNO_CUDA_PD_GQA=0: off)
    bool pd_long_now;             // the step being enqueued takes pd_fn_long
    int pd_tc_fuse;               // pd_args.tc_fuse (INFERNO_CUDA_PD_TC_FUSE=N)
    unsigned pd_tm;               // its weight types
    bool pd_host_logits;
    float *d_h_logits; // h_logits as the device sees it
    cudaGraphExec_t graph[2]; // decode step of one token with one output row (1: the LONG kernel's)
    bool graph_tried[2], use_graph;
    // Steps of several sequences' tokens on either batch path (a server's decode steps: a token of each running
    // sequence), as graphs keyed by their shape (mgraph_slot); least recently used out.
    mgraph mg[MG_SLOTS];
    unsigned long long mg_clock;
    long mg_replays, mg_captures;
    // INFERNO_CUDA_PROFILE=1: an event after every op of every step (graphs off), summed per op
    bool prof;
    cudaEvent_t ev[PROF_MAX_EVENTS];
    int ev_op[PROF_MAX_EVENTS], n_ev;
    double op_ms[OP_COUNT];
    long prof_steps;
};

// A multi-token step's graph: every kernel reads the batch (positions, sequences, cells, output rows, the
// attention's runs) from device memory and the uploads read the pinned staging buffers, so the launches
// depend only on the token count, the output rows, whether the batch is one sequence (only batches of several
// are captured: cuda_forward), the attention's blocks (the GEMM path's runs of one sequence's tokens) and
// whether the GEMM path reads F16 weight copies. A shape is captured the second time it is seen (a one-off
// shape never pays for a capture).
static void mgraph_drop(mgraph *g) {
    if (g->exec) cudaGraphExecDestroy(g->exec);
    memset(g, 0, sizeof *g);
}

// The slot of a step's shape: its own, else the least recently used one, reset for it.
static mgraph *mgraph_slot(cuda_session *s, int T, int n_out) {
    mgraph *lru = &s->mg[0];
    for (int i = 0; i < MG_SLOTS; i++) {
        mgraph *g = &s->mg[i];
        if (g->seen && g->T == T && g->n_out == n_out && g->att_blocks == s->att_blocks &&
            g->f16 == s->gemm_f16) {
            g->used = ++s->mg_clock;
            return g;
        }
        if (g->used < lru->used) lru = g;
    }
    mgraph_drop(lru);
    lru->T = T, lru->n_out = n_out, lru->att_blocks = s->att_blocks, lru->f16 = s->gemm_f16;
    lru->used = ++s->mg_clock;
    return lru;
}

static void prof_mark(cuda_session *s, int op) {
    if (!s->prof || s->n_ev >= PROF_MAX_EVENTS) return;
    if (!s->ev[s->n_ev]) cudaEventCreate(&s->ev[s->n_ev]);
    s->ev_op[s->n_ev] = op;
    cudaEventRecord(s->ev[s->n_ev++], s->stream);
}

static double host_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec * 1e-3;
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

extern "C" void cuda_session_graph_stats(const cuda_session *s, long *captured, long *replayed) {
    *captured = s ? s->mg_captures : 0;
    *replayed = s ? s->mg_replays : 0;
}

extern "C" bool cuda_session_profile(const cuda_session *s, char *buf, size_t cap) {
    if (s && s->prof_graph && s->graph_steps) {
        const double n = (double)s->graph_steps;
        snprintf(buf, cap,
                 "GPU profile: %ld decode graph replays, %.1f us of GPU time each; host a replay: %.1f us to launch "
                 "it, %.1f us waiting for it, %.1f us in the caller between steps",
                 s->graph_steps, 1e3 * s->graph_ms / n, s->host_launch / n, (s->host_wait - s->host_launch) / n,
                 s->host_gaps ? s->host_between / (double)s->host_gaps : 0.0);
        return true;
    }
    if (s && s->pd_timeline && s->tl_n) {
        static const char *const names[PD_TL + 1] = {
            "start", "qkv staged", "qkv arrive", "qkv release", "att arrive", "att release", "wo staged",
            "wo arrive", "wo release", "gu staged", "gu arrive", "gu release", "down staged", "down arrive",
            "down release"};
        const int n_l = s->m->n_layer - s->m->layer0;
        const double per = 1.0 / ((double)s->tl_n * n_l);
        int n = snprintf(buf, cap,
                         "persistent kernel timeline, %d blocks, %ld steps x %d layers; us since the layer's first "
                         "start over the blocks (min / median / max), then each block's own time since the point "
                         "before (median / max):",
                         s->pd_grid, s->tl_n, n_l);
        for (int k = 0; k <= PD_TL && n > 0 && (size_t)n < cap; k++)
            n += snprintf(buf + n, cap - (size_t)n, "\n  %-13s %7.2f %7.2f %7.2f   %6.2f %6.2f", names[k],
                          s->tl_at[k][0] * per, s->tl_at[k][1] * per, s->tl_at[k][2] * per, s->tl_own[k][0] * per,
                          s->tl_own[k][1] * per);
        if (n > 0 && (size_t)n < cap)
            n += snprintf(buf + n, cap - (size_t)n, "\n  posting an arrival (release add): %.2f / %.2f us (median / max)",
                          s->tl_post[0] * per, s->tl_post[1] * per);
        const double ph = 1.0 / (double)s->tl_n;
        if (n > 0 && (size_t)n < cap)
            n += snprintf(buf + n, cap - (size_t)n, "\n  steps of the long form (past %d positions): %ld of %ld",
                          PD_ONE_SPLIT_MAX, s->tl_n_long, s->tl_n);
        if (n > 0 && (size_t)n < cap)
            n += snprintf(buf + n, cap - (size_t)n, "\n  head: staged %.2f / %.2f / %.2f, done %.2f / %.2f / %.2f us",
                          s->tl_head[1][0] * ph, s->tl_head[1][1] * ph, s->tl_head[1][2] * ph, s->tl_head[2][0] * ph,
                          s->tl_head[2][1] * ph, s->tl_head[2][2] * ph);
        // With split-K the attention's and gate/up's barriers are gone: their points are then the block's own
        // times (attention done, its output quantized, wo done; gate/up done).
        if (n > 0 && (size_t)n < cap)
            n += snprintf(buf + n, cap - (size_t)n, "\n  wo and down: %s",
                          s->pd_sk ? "split-K over column copies (attention and wo one phase up to 128 cached "
                                     "positions, gate/up and down one phase)"
                                   : "by rows after grid barriers");
        if (n > 0 && (size_t)n < cap && s->pd_sk)
            n += snprintf(buf + n, cap - (size_t)n, "; past %d positions the attention %s, wo split-K a head",
                          PD_ONE_SPLIT_MAX,
                          !s->pd_att_tc          ? "a block per (head, key split)"
                          : s->m->head_dim == 128 ? "on tensor cores a block per (KV head, key split), head size 128 a "
                                                    "pair of warps a tile"
                                                  : "on tensor cores a block per (KV head, key split)");
        if (n > 0 && (size_t)n < cap && s->pd_sk && s->pd_att_tc && s->pd_tc_fuse > PD_ONE_SPLIT_MAX)
            n += snprintf(buf + n, cap - (size_t)n, " (up to %d positions fused with wo, a block a head)", s->pd_tc_fuse);
        if (n > 0 && (size_t)n < cap && s->pd_sk)
            n += snprintf(buf + n, cap - (size_t)n, "; L2 prefetch of wo: %s%s",
                          s->pd_skpf & 1 ? "by the blocks without an attention item" : "off",
                          s->pd_skpf & 8 ? ", each item its slice" : "");
        if (n > 0 && (size_t)n < cap && (s->pd_skpf & (16 | 32 | 64)))
            n += snprintf(buf + n, cap - (size_t)n, "; L2 prefetch of %s%s%s",
                          s->pd_skpf & 16 ? "the attention's cached K/V by the qkv phase's idle warps" : "",
                          s->pd_skpf & 16 && s->pd_skpf & 96 ? " and " : "",
                          s->pd_skpf & 64   ? "each warp's first gate/up rows at the wo barrier"
                          : s->pd_skpf & 32 ? "each warp's first gate/up rows at the wo barrier, after the norm weights"
                                            : "");
        if (n > 0 && (size_t)n < cap && s->pd_sk && (s->pd_skpf & 128))
            n += snprintf(buf + n, cap - (size_t)n, "; the gate/up norm weights copied by the qkv phase's idle warps");
        // The weight types the kernel was built for (pd_kernel_for).
        static const struct { int t; const char *name; } tn[] = {{T_Q4_K, "Q4_K"}, {T_Q6_K, "Q6_K"}, {T_Q4_0, "Q4_0"},
                                                                 {T_Q8_0, "Q8_0"}, {T_F16, "F16"}, {T_F32, "F32"}};
        if (n > 0 && (size_t)n < cap) n += snprintf(buf + n, cap - (size_t)n, "\n  kernel built for:");
        for (size_t i = 0; i < sizeof tn / sizeof tn[0]; i++)
            if (n > 0 && (size_t)n < cap && PD_HAS(s->pd_tm, tn[i].t))
                n += snprintf(buf + n, cap - (size_t)n, " %s", tn[i].name);
        return true;
    }
    if (s && s->pd_prof && s->pd_steps) {
        static const char *const names[PD_EDGES + 3] = {
            "down sync", "qkv stage", "qkv", "qkv sync", "attention", "attention sync", "wo copy", "wo", "wo sync",
            "gate/up stage", "gate/up", "gate/up sync", "down stage", "down", "head stage", "head", "total"};
        static const char *const ring_names[6] = {"waiting qkv", "waiting wo", "waiting gate/up", "waiting down",
                                                   "waiting head", "issuing"};
        const double us = 1e3 / (double)s->clock_khz / (double)s->pd_steps; // cycles -> us a step
        int n = snprintf(buf, cap, "persistent kernel, block 0, %ld steps, us a step:", s->pd_steps);
        for (int i = 0; i < PD_EDGES + 3 && n > 0 && (size_t)n < cap; i++)
            n += snprintf(buf + n, cap - (size_t)n, " %s %.1f%s", names[i], s->pd_cycles[i] * us,
                          i + 1 < PD_EDGES + 3 ? "," : "");
        if (s->pd_ring) {
            n += snprintf(buf + n, cap - (size_t)n, "; weight ring, thread 0 of a block on average, us a step:");
            for (int i = 0; i < 6 && n > 0 && (size_t)n < cap; i++)
                n += snprintf(buf + n, cap - (size_t)n, " %s %.1f%s", ring_names[i], s->pd_cycles[PD_EDGES + 3 + i] * us,
                              i < 5 ? "," : "");
        }
        return true;
    }
    if (!s || !s->prof || !s->prof_steps) return false;
    double total = 0.0;
    for (int i = 0; i < OP_COUNT; i++) total += s->op_ms[i];
    int n = snprintf(buf, cap, "GPU profile, %ld steps, %.3f ms:", s->prof_steps, total);
    for (int i = 1; i < OP_COUNT && n > 0 && (size_t)n < cap; i++)
        n += snprintf(buf + n, cap - (size_t)n, " %s %.3f ms (%.1f%%)%s", op_names[i], s->op_ms[i],
                      total > 0 ? 100.0 * s->op_ms[i] / total : 0.0, i + 1 < OP_COUNT ? "," : "");
    if (n > 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, "; GEMM path: %ld products, %ld of them over side-by-side matrices; "
                 "GEMM-path attention: %s", s->gemm_calls, s->gemm_sides,
                 s->flash_tc ? "flash on tensor cores"
                 : s->flash  ? "flash (F32; batches of several sequences: split kernel)"
                             : "split kernel");
    return true;
}

// The persistent kernel's inputs of a one-token step, packed for one upload: x (E), the RoPE pairs (n_rot), then
// pos, seq, cell, out_row as int32.
static uint64_t in1_floats(int E, int n_rot) { return (uint64_t)E + (uint64_t)n_rot + 4; }

// Sizes of the compute buffers, in the order session_init lays them out.
typedef struct {
    uint64_t x, xb, q, kv, hb, rope, logits, ints, seq_cells, att, xq, xds, hq, hds, qkv, gu, xh, scratch, cnt, in1;
} compute_sizes;

static uint64_t max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }

static compute_sizes compute_sizes_of(const cuda_model_desc *d, int n_ctx, int n_batch, int n_seq) {
    uint64_t B = (uint64_t)n_batch, E = (uint64_t)d->n_embd, Q = (uint64_t)d->n_head * d->head_dim,
             KV = (uint64_t)d->n_head_kv * d->head_dim, F = (uint64_t)d->n_ff, EQ = max_u64(E, Q);
    compute_sizes c;
    c.x = align_up((B + 1) * E * 4, ALIGN); // a row more: the persistent kernel's second residual (split-K)
    c.xb = align_up(B * EQ * 4, ALIGN);
    c.q = align_up(B * Q * 4, ALIGN);
    c.kv = align_up(B * KV * 4, ALIGN);
    c.hb = align_up(B * F * 4, ALIGN);
    c.rope = align_up(B * (uint64_t)d->n_rot * 4, ALIGN);
    c.logits = align_up(B * (uint64_t)d->n_vocab * 4, ALIGN);
    c.ints = align_up(B * 6 * 4, ALIGN); // pos, seq, cell, out_row a token; the attention's runs (2 a block)
    c.seq_cells = align_up((uint64_t)n_seq * (uint64_t)n_ctx * 4, ALIGN);
    c.att = align_up((B > 32 ? B : 32) * (uint64_t)d->n_head * ((uint64_t)d->head_dim + 2) * 4, ALIGN);
    c.xq = align_up(B * EQ, ALIGN);
    c.xds = align_up(B * (EQ / 32) * 8, ALIGN);
    c.hq = align_up(B * F, ALIGN);
    c.hds = align_up(B * (F / 32) * 8, ALIGN);
    c.qkv = align_up(B * (Q + 2 * KV) * 4, ALIGN);
    c.gu = align_up(B * 2 * F * 4, ALIGN);
    c.xh = align_up(B * max_u64(EQ, F) * 2, ALIGN);
    c.scratch = align_up(E * max_u64(Q, F) * 2, ALIGN); // the largest layer matrix; the head goes in row chunks
    c.cnt = align_up((1 + B * (uint64_t)d->n_head + 2 + (uint64_t)d->n_head_kv) * 4, ALIGN);
    c.in1 = align_up(in1_floats(d->n_embd, d->n_rot) * 4, ALIGN);
    return c;
}

static uint64_t compute_total(const compute_sizes *c) {
    return c->x + c->xb + c->q + 2 * c->kv + c->hb + c->rope + c->logits + c->ints + c->seq_cells + c->att + c->xq +
           c->xds + c->hq + c->hds + c->qkv + c->gu + c->xh + c->scratch + c->cnt + c->in1;
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
    for (int i = 0; i < 2; i++)
        if (s->graph[i]) cudaGraphExecDestroy(s->graph[i]);
    for (int i = 0; i < MG_SLOTS; i++) mgraph_drop(&s->mg[i]);
    if (s->cublas) cublasDestroy(s->cublas);
    if (s->d_layers) cudaFree(s->d_layers);
    if (s->d_jobs) cudaFree(s->d_jobs);
    if (s->d_job_count) cudaFree(s->d_job_count);
    free(s->pd_jobs_h);
    free(s->pd_count_h);
    if (s->pd_trace) cudaFree(s->pd_trace);
    free(s->h_trace);
    if (s->pd_tl) cudaFree(s->pd_tl);
    free(s->h_tl);
    for (int i = 0; i < PROF_MAX_EVENTS; i++)
        if (s->ev[i]) cudaEventDestroy(s->ev[i]);
    if (s->stream) cudaStreamDestroy(s->stream);
    if (s->kv_buf) cudaFree(s->kv_buf);
    if (s->buf) cudaFree(s->buf);
    if (s->host) cudaFreeHost(s->host);
    free(s);
}

// The flash kernel's head sizes; others take the split kernel.
static bool flash_supported(int hd) { return hd == 8 || hd == 16 || hd == 32 || hd == 64 || hd == 128; }

template <int HD> static cudaError_t flash_prepare() {
    return cudaFuncSetAttribute(k_flash<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)flash_smem_bytes(HD));
}

// The tensor-core kernel's head sizes (it needs sm_80: mma.sync on F16, asynchronous copies).
static bool flash_tc_supported(int hd, int cc_major) { return cc_major >= 8 && hd % 16 == 0 && hd <= 128; }

template <int HD> static cudaError_t flash_tc_prepare() {
    return cudaFuncSetAttribute(k_flash_tc<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                (int)flash_tc_smem_bytes(HD));
}

// Bytes of one row of a matrix in the weight ring (both planes).
static uint64_t ring_row_bytes(const dmat *w) { return w->pitch + 2ull * (uint64_t)w->spitch; }

// One segment of a planned job: rows [r0, r0 + n) of w, its copies appended to the job.
static void plan_seg(pd_jobd *d, int k, int *nc, const dmat *w, int r0, int n) {
    d->r0[k] = r0, d->n[k] = n;
    if (n <= 0) return;
    d->src[*nc] = w->d + (uint64_t)r0 * w->pitch, d->cb[*nc] = (unsigned)((uint64_t)n * w->pitch), (*nc)++;
    if (w->spitch) d->src[*nc] = w->s + (size_t)r0 * w->spitch, d->cb[*nc] = (unsigned)((uint64_t)n * w->spitch * 2), (*nc)++;
}

// Plans the weight ring's jobs for a grid of G blocks and a ring of R bytes (decode_persistent.cuh, pd_jobd):
// block b owns the units [U b / G, U (b + 1) / G) of each phase (q/k/v row pairs, in whole heads for NeoX
// RoPE; rows of the others), split evenly into jobs of at most a third of the ring; each job's ring offset
// follows the last one's (starting over at the base when it would cross the end), and it may be issued once
// the jobs it would overwrite have been read and its mbarrier slot is free. Fills the session's host tables;
// *need: the bytes of one block's table. False when a unit does not fit a third of the ring.
static bool pd_plan(cuda_session *s, int G, unsigned R, uint64_t *need) {
    const cuda_model *m = s->m;
    const int n_gpu = m->n_layer - m->layer0, E = m->n_embd, Q = m->n_head * m->head_dim,
              KV = m->n_head_kv * m->head_dim, F = m->n_ff, V = m->n_vocab;
    const int pu = m->rope_neox ? m->head_dim / 2 : 1, hq = Q / 2, hk = KV / 2;
    const uint64_t job_max = R / 3;
    uint64_t unit[5] = {0, 0, 0, 0, 0};
    for (int l = 0; l < n_gpu; l++) {
        const dlayer *L = &m->layers[l];
        const dmat *qkv[3] = {&L->wq, &L->wk, &L->wv};
        for (int i = 0; i < 3; i++) unit[0] = max_u64(unit[0], 2ull * (uint64_t)pu * ring_row_bytes(qkv[i]));
        unit[1] = max_u64(unit[1], ring_row_bytes(&L->wo));
        unit[2] = max_u64(unit[2], ring_row_bytes(&L->gate) + ring_row_bytes(&L->up));
        unit[3] = max_u64(unit[3], ring_row_bytes(&L->down));
    }
    unit[4] = ring_row_bytes(&m->output);
    int K[5];
    for (int p = 0; p < 5; p++) {
        if (unit[p] == 0 || unit[p] > job_max) return false;
        K[p] = (int)(job_max / unit[p]);
    }
    const uint64_t U[5] = {(uint64_t)(hq + 2 * hk) / (uint64_t)pu, (uint64_t)E, (uint64_t)F, (uint64_t)E, (uint64_t)V};
    // Jobs a block: the same walk as below, counted.
    int stride = 0;
    for (int b = 0; b < G; b++) {
        int c = 0;
        for (int p = 0; p < 5; p++) {
            const int len = (int)(U[p] * (uint64_t)(b + 1) / (uint64_t)G - U[p] * (uint64_t)b / (uint64_t)G);
            c += (p < 4 ? n_gpu : 1) * ((len + K[p] - 1) / K[p]);
        }
        if (c > stride) stride = c;
    }
    free(s->pd_jobs_h);
    free(s->pd_count_h);
    s->pd_jobs_h = (pd_jobd *)calloc((size_t)G * (size_t)stride, sizeof(pd_jobd));
    s->pd_count_h = (int *)calloc((size_t)G, sizeof(int));
    unsigned *start = (unsigned *)calloc((size_t)stride, sizeof(unsigned));
    if (!s->pd_jobs_h || !s->pd_count_h || !start) {
        free(start);
        return false;
    }
    for (int b = 0; b < G; b++) {
        pd_jobd *tab = s->pd_jobs_h + (size_t)b * stride;
        int j = 0, after = 0;
        unsigned head = 0;
        for (int l = 0; l <= n_gpu; l++)
            for (int p = l < n_gpu ? PD_PH_QKV : PD_PH_HEAD; p <= (l < n_gpu ? PD_PH_DOWN : PD_PH_HEAD); p++) {
                const int u0 = (int)(U[p] * (uint64_t)b / (uint64_t)G), u1 = (int)(U[p] * (uint64_t)(b + 1) / (uint64_t)G);
                const int len = u1 - u0, nj = (len + K[p] - 1) / K[p];
                for (int i = 0; i < nj; i++, j++) {
                    const int ua = u0 + len * i / nj, ub = u0 + len * (i + 1) / nj;
                    pd_jobd *d = &tab[j];
                    int nc = 0;
                    d->l = l, d->ph = p;
                    if (p == PD_PH_QKV) {
                        const dlayer *L = &m->layers[l];
                        const dmat *w3[3] = {&L->wq, &L->wk, &L->wv};
                        const int lo[3] = {0, hq, hq + hk}, hi[3] = {hq, hq + hk, hq + 2 * hk};
                        for (int k = 0; k < 3; k++) {
                            const int x0 = ua * pu > lo[k] ? ua * pu : lo[k];
                            int x1 = ub * pu < hi[k] ? ub * pu : hi[k];
                            if (x1 < x0) x1 = x0;
                            plan_seg(d, k, &nc, w3[k], 2 * (x0 - lo[k]), 2 * (x1 - x0));
                        }
                    } else if (p == PD_PH_GU) {
                        plan_seg(d, 0, &nc, &m->layers[l].gate, ua, ub - ua);
                        plan_seg(d, 1, &nc, &m->layers[l].up, ua, ub - ua);
                    } else {
                        const dmat *w = p == PD_PH_HEAD ? &m->output : p == PD_PH_WO ? &m->layers[l].wo : &m->layers[l].down;
                        plan_seg(d, 0, &nc, w, ua, ub - ua);
                    }
                    unsigned bytes = 0;
                    for (int k = 0; k < nc; k++) bytes += d->cb[k];
                    unsigned at = head;
                    if (at % R + bytes > R) at += R - at % R;
                    d->off = at % R, d->bytes = bytes;
                    start[j] = at;
                    head = at + bytes;
                    while (after < j && at + bytes > start[after] + R) after++;
                    d->after = after > j - PD_SLOTS + 1 ? after : j - PD_SLOTS + 1;
                }
            }
        s->pd_count_h[b] = j;
    }
    free(start);
    s->pd_job_stride = stride;
    *need = (uint64_t)stride * sizeof(pd_jobd);
    return true;
}

// The column copies of every GPU layer's wo and down (cmat) for the persistent kernel's split-K products: made
// once a model, at the first session that takes the kernel, when every layer's two matrices have a type the
// copies take and free VRAM exceeds their size by a margin (256 MiB or a twentieth of the card, whichever is
// larger); otherwise declined for the model's lifetime (the kernel then runs wo and down by rows). True when
// the copies exist.
static bool col_acquire(cuda_session *s) {
    cuda_model *m = s->m;
    pthread_mutex_lock(&m->f16_lock);
    if (m->col_state == 0) {
        m->col_state = 2;
        const int n_gpu = m->n_layer - m->layer0;
        bool ok = n_gpu > 0;
        uint64_t need = 0;
        for (int l = 0; l < n_gpu && ok; l++) {
            const dmat *ws[2] = {&m->layers[l].wo, &m->layers[l].down};
            for (int i = 0; i < 2; i++) {
                uint64_t q, sub, d;
                if (!col_type(ws[i]->type) || ws[i]->n_in % 32 || ws[i]->n_out % 4) ok = false;
                col_planes(ws[i]->type, ws[i]->n_in, ws[i]->n_out, &q, &sub, &d);
                need += q + sub + d;
            }
        }
        if (ok) m->col_buf = vram_reserve(need, 256ull << 20, 20);
        if (m->col_buf) {
            uint8_t *p = (uint8_t *)m->col_buf;
            for (int l = 0; l < n_gpu; l++) {
                dlayer *L = &m->layers[l];
                const dmat *ws[2] = {&L->wo, &L->down};
                cmat *cs[2] = {&L->wo_c, &L->down_c};
                for (int i = 0; i < 2; i++) {
                    const dmat *w = ws[i];
                    uint64_t q, sub, d;
                    col_planes(w->type, w->n_in, w->n_out, &q, &sub, &d);
                    uint8_t *qp = p, *sp = sub ? p + q : NULL;
                    __half *dp = (__half *)(p + q + sub);
                    p += q + sub + d;
                    const size_t n = (size_t)w->n_out * (size_t)(w->n_in / 16);
                    const unsigned grid = (unsigned)((n + 255) / 256);
                    switch (w->type) {
                    case T_Q4_K: k_colcopy<T_Q4_K><<<grid, 256, 0, s->stream>>>(*w, qp, sp, dp); break;
                    case T_Q6_K: k_colcopy<T_Q6_K><<<grid, 256, 0, s->stream>>>(*w, qp, sp, dp); break;
                    case T_Q4_0: k_colcopy<T_Q4_0><<<grid, 256, 0, s->stream>>>(*w, qp, sp, dp); break;
                    case T_F16: k_colcopy_f16<<<grid, 256, 0, s->stream>>>(*w, qp); break;
                    default: k_colcopy<T_Q8_0><<<grid, 256, 0, s->stream>>>(*w, qp, sp, dp); break;
                    }
                    *cs[i] = cmat{w->type, w->n_in, w->n_out, qp, sp, dp};
                }
            }
            if (cudaStreamSynchronize(s->stream) == cudaSuccess && cudaGetLastError() == cudaSuccess) {
                m->col_state = 1;
                m->col_bytes = need;
            } else {
                for (int l = 0; l < n_gpu; l++) m->layers[l].wo_c = m->layers[l].down_c = cmat{};
                cudaFree(m->col_buf);
                m->col_buf = NULL;
            }
        }
    }
    const bool made = m->col_state == 1;
    pthread_mutex_unlock(&m->f16_lock);
    return made;
}

extern "C" bool cuda_model_col_bytes(cuda_model *m, uint64_t *bytes) {
    pthread_mutex_lock(&m->f16_lock);
    const int st = m->col_state;
    *bytes = st == 1 ? m->col_bytes : 0;
    pthread_mutex_unlock(&m->f16_lock);
    return st != 0;
}

// Decides whether single-token steps take the persistent kernel and sizes its grid: every block must be
// resident at once (the grid-wide barriers), so the grid is the occupancy calculator's blocks per SM (at most
// INFERNO_CUDA_PD_BLOCKS, default 1) times the SM count, launched cooperatively. False only on a CUDA error;
// a model or card the kernel does not take just leaves it off.
// The persistent kernel's instantiation for a session: with split-K, the smallest that takes every weight
// type in mask (a bit per type); by rows (the fallback when the column copies are declined), the one for all
// types; the ring's.
// Each with (prof) and without its profiling points.
static pd_fn_t pd_kernel_for(unsigned mask, bool sk, bool ring, bool prof, int head_dim, unsigned *tm,
                             pd_fn_t *long_fn) {
    static const pd_kset *const ks[] = {&pd_kset_q8, &pd_kset_k, &pd_kset_q8_0, &pd_kset_q4_0, &pd_kset_f16, &pd_kset_all};
    *tm = PD_ALL;
    if (ring || !sk) return *long_fn = pd_k_rows[ring][prof];
    size_t i = 0;
    while (i + 1 < sizeof ks / sizeof ks[0] && (mask & ~ks[i]->tm)) i++;
    *tm = ks[i]->tm;
    *long_fn = head_dim != 128 ? ks[i]->fn[1][prof] : prof ? pd_k_hd128_prof : ks[i]->hd128;
    return ks[i]->fn[0][prof];
}

static bool persist_prepare(cuda_session *s, char *err, size_t cap) {
    const cuda_model *m = s->m;
    const char *pe = getenv("INFERNO_CUDA_PERSIST"), *pb = getenv("INFERNO_CUDA_PD_BLOCKS");
    const int E = m->n_embd, Q = m->n_head * m->head_dim, F = m->n_ff;
    s->persist = false;
    const char *pp = getenv("INFERNO_CUDA_PD_PREFETCH");
    // Both measured within noise of off on an H100 (bench/NOTES.md, CUDA step 7): opt-in, kept for other cards.
    s->pd_prefetch = pp && !strcmp(pp, "1");
    const char *pfl = getenv("INFERNO_CUDA_PD_FLAGS");
    s->pd_flags = pfl && !strcmp(pfl, "1");
    if ((pe && !strcmp(pe, "0")) || !s->mmvq || E % 32 || Q % 32 || F % 32 || m->head_dim % 32 ||
        m->n_layer - m->layer0 <= 0 || E > PD_STAGE_MAX || F > PD_STAGE_MAX)
        return true;
    // The layers' weight types (a bit per type). F32 layer weights go through the per-op kernels unless
    // INFERNO_CUDA_PERSIST=1 (F16 did too until the kernel beat them: H100 tg128 F16 796 against 745 t/s by
    // rows, bench/NOTES.md CUDA step 12).
    unsigned mask = 0;
    for (int l = 0; l < m->n_layer - m->layer0; l++) {
        const dlayer *L = &m->layers[l];
        const dmat *ws[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down};
        for (int i = 0; i < 7; i++) mask |= 1u << ws[i]->type;
    }
    if (!(pe && !strcmp(pe, "1")) && (mask & ~(PD_ALL & ~PD_T(T_F32)))) return true;
    mask |= 1u << m->output.type; // the instantiation's types include the head's
    int dev = 0, coop = 0, n_sm = 0, per_sm = 0;
    if (!cu_ok(cudaGetDevice(&dev), "cudaGetDevice", err, cap) ||
        !cu_ok(cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, dev), "cudaDeviceGetAttribute", err, cap) ||
        !cu_ok(cudaDeviceGetAttribute(&n_sm, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute", err,
               cap))
        return false;
    if (!coop) return true;
    int max_in = E > Q ? E : Q;
    if (F > max_in) max_in = F;
    if (2 * PD_WARPS + PD_WARPS * m->head_dim > max_in) return true; // the attention's merge area in xs_f
    // Key splits a head: at most what the grid can run at once and the partials buffer holds.
    s->pd_max_splits = s->n_batch > 32 ? s->n_batch : 32;
    if (s->pd_max_splits > 64) s->pd_max_splits = 64;
    s->pd_wts_at = align_up(align_up((uint64_t)max_in * 5, 16) + (uint64_t)(max_in / 32) * 8, 16);
    s->pd_smem = s->pd_wts_at + (size_t)3 * (size_t)m->n_head * (size_t)s->pd_max_splits * 4;
    int smem_optin = 0;
    if (!cu_ok(cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev),
               "cudaDeviceGetAttribute", err, cap))
        return false;
    // The attribute is the kernel's, not the session's: every session sets the card's largest, so sessions
    // with different needs do not undo each other.
    cudaFuncAttributes fa, far;
    // (The instantiations' static shared memory is the same: the by-rows one's sizes the checks below.)
    if (!cu_ok(cudaFuncGetAttributes(&fa, pd_k_rows[0][1]), "cudaFuncGetAttributes",
               err, cap) ||
        !cu_ok(cudaFuncGetAttributes(&far, pd_k_rows[1][1]), "cudaFuncGetAttributes",
               err, cap))
        return false;
    // Split-K wo and down (the default; INFERNO_CUDA_PD_SPLITK=0 or the ring: by rows): its shared area holds
    // the reduction's PD_THREADS float4 and a block's input slice, at most sk_umax units of 16 (F32, 8-bit,
    // scale, sum; a slice is one pass of the quantizer's threads), then the next stage's norm weights, copied
    // during the barrier before it (INFERNO_CUDA_PD_NW=0: the stage reads them from global memory). The
    // model's column copies are asked for only when that fits.
    const char *psk = getenv("INFERNO_CUDA_PD_SPLITK"), *pr = getenv("INFERNO_CUDA_PD_RING"),
               *pnw = getenv("INFERNO_CUDA_PD_NW");
    const int sk_units = (F / 16 + n_sm - 1) / n_sm; // of down's columns a block takes at most (or a head's of wo)
    const int sk_umax = sk_units > m->head_dim / 16 ? sk_units : m->head_dim / 16;
    const bool nw = !(pnw && !strcmp(pnw, "0"));
    const size_t sk_at = align_up(s->pd_smem, 16), sk_end = sk_at + PD_THREADS * 16 + (size_t)sk_umax * (64 + 16 + 8),
                 nw_at = align_up(sk_end, 16), sk_smem = nw ? nw_at + (size_t)E * 4 : sk_end;
    s->pd_sk = !(psk && !strcmp(psk, "0")) && !(pr && !strcmp(pr, "1")) && sk_umax * 16 <= PD_THREADS &&
               sk_smem + fa.sharedSizeBytes <= (size_t)smem_optin && col_acquire(s);
    if (s->pd_sk) {
        s->pd_sk_umax = sk_umax;
        s->pd_sk_at = (int)sk_at;
        s->pd_nw_at = nw ? (int)nw_at : 0;
        s->pd_smem = sk_smem;
    }
    if (s->pd_smem + fa.sharedSizeBytes > (size_t)smem_optin) return true;
    // The weight ring (INFERNO_CUDA_PD_RING=1, opt-in: on an H100 within a few per cent of the kernel without
    // it, bench/NOTES.md CUDA step 9) takes the rest of the SM's shared memory; it needs the kernel built for
    // sm_90 or later (bulk copies, transaction mbarriers) and every job's unit to fit a third of it.
    s->pd_ring = pr && !strcmp(pr, "1") && far.binaryVersion >= 90 && m->n_rot <= PD_ROPE_MAX &&
                 (E + n_sm - 1) / n_sm <= PD_XRES_MAX;
    if (s->pd_ring) {
        // Layout after the kernel's fixed part: the layer table, the job tables, the ring. The ring's size sets
        // the jobs' size and so the table's: plan, and plan again with the table's room grown if it fell short.
        s->pd_tab_at = (unsigned)align_up(s->pd_smem, 16);
        s->pd_jobs_at = (unsigned)align_up(s->pd_tab_at + (uint64_t)(m->n_layer - m->layer0) * sizeof(dlayer), 16);
        uint64_t jobs_room = 8192;
        bool planned = false;
        for (int attempt = 0; attempt < 4 && !planned; attempt++) {
            s->pd_ring_at = (unsigned)align_up(s->pd_jobs_at + jobs_room, 128);
            const long long room = (long long)smem_optin - (long long)far.sharedSizeBytes - (long long)s->pd_ring_at;
            s->pd_ring_bytes = room > 0 ? (unsigned)(room & ~127LL) : 0u;
            const char *rk = getenv("INFERNO_CUDA_PD_RING_KB"); // a smaller ring leaves the SM more L1
            if (rk && atoi(rk) > 0 && (unsigned)atoi(rk) * 1024u < s->pd_ring_bytes)
                s->pd_ring_bytes = (unsigned)atoi(rk) * 1024u;
            uint64_t need = 0;
            if (s->pd_ring_bytes < 16384 || !pd_plan(s, n_sm, s->pd_ring_bytes, &need)) break;
            if (need <= jobs_room) planned = true;
            else jobs_room = align_up(need + need / 8, 1024);
        }
        if (!planned) {
            free(s->pd_jobs_h);
            free(s->pd_count_h);
            s->pd_jobs_h = NULL, s->pd_count_h = NULL;
            s->pd_ring = false;
        }
    }
    if (s->pd_ring) s->pd_smem = s->pd_ring_at + s->pd_ring_bytes;
    else s->pd_ring_at = 0, s->pd_ring_bytes = 0, s->pd_tab_at = 0, s->pd_jobs_at = 0;
    s->pd_fn = pd_kernel_for(mask, s->pd_sk, s->pd_ring, s->pd_prof || s->pd_timeline, m->head_dim, &s->pd_tm,
                             &s->pd_fn_long);
    cudaFuncAttributes fk;
    for (int k = 0; k < 2; k++) { // the grid must fit both forms (the same sizes in practice)
        int per = 0;
        pd_fn_t fn = k ? s->pd_fn_long : s->pd_fn;
        if (!cu_ok(cudaFuncGetAttributes(&fk, fn), "cudaFuncGetAttributes", err, cap) ||
            !cu_ok(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        smem_optin - (int)fk.sharedSizeBytes),
                   "cudaFuncSetAttribute (persistent decode shared memory)", err, cap) ||
            !cu_ok(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per, fn, PD_THREADS, s->pd_smem),
                   "cudaOccupancyMaxActiveBlocksPerMultiprocessor", err, cap))
            return false;
        per_sm = k == 0 || per < per_sm ? per : per_sm;
    }
    if (s->pd_smem + fk.sharedSizeBytes > (size_t)smem_optin) return true;
    int want = pb ? atoi(pb) : 1;
    if (want < 1 || s->pd_ring) want = 1;
    if (per_sm < 1) return true;
    s->pd_grid = n_sm * (per_sm < want ? per_sm : want);
    // Split-K: the blocks left without an attention item stream the layer's wo copy into L2 while the others
    // compute attention, where that is at most 1.25 MiB a block (H100: Q8_0's 1.06 MiB +2%, F16's 2 MiB -4%:
    // the issue outlasts the attention; bench/NOTES.md CUDA step 13). INFERNO_CUDA_PD_SKPF sets the bits
    // instead (pd_args.sk_pf: 1 that prefetch, 8 each attention item its own wo slice as well, 16 and 64 below).
    const char *pskpf = getenv("INFERNO_CUDA_PD_SKPF");
    s->pd_skpf = 0;
    if (pskpf) s->pd_skpf = atoi(pskpf);
    else if (s->pd_sk) {
        const int nq = s->pd_grid / m->n_head > 1 ? s->pd_grid / m->n_head : 1, idle = s->pd_grid - m->n_head * nq;
        uint64_t most = 0;
        for (int il = 0; il < m->n_layer - m->layer0; il++) {
            const cmat *c = &m->layers[il].wo_c;
            if (!c->type) continue;
            uint64_t q, sub, d;
            col_planes(c->type, c->n_in, c->n_out, &q, &sub, &d);
            if (q + sub + d > most) most = q + sub + d;
        }
        s->pd_skpf = idle > 0 && most <= (uint64_t)idle * (5u << 18) ? 1 : 0;
    }
    // The two prefetches into L2 of DRAM's idle moments, on by default (H100, bench/NOTES.md CUDA step 16):
    // 16, the qkv phase's warps without a pair fetch the cached keys and values their block's attention item
    // reads next (a DRAM round trip less in the attention); 64, at the wo barrier each warp fetches the first
    // gate and up rows it multiplies after it (32: after the barrier's copy of the norm weights, for Q8_0
    // gate/up: +2.5% there, -1% to -2% for the other types). 128: the qkv phase's warps without a pair also copy
    // the gate/up stage's norm weights into shared memory, so that the wo barrier's wait (the last block's to
    // arrive is on the critical path) does not: +1-2% (Q4_0 +2-4%; bench/NOTES.md CUDA step 19; models whose
    // q/k/v pairs keep every warp busy, as 7B ones, copy at the barrier as before).
    // INFERNO_CUDA_PD_SKPF_XOR=N flips bits of the default.
    if (!pskpf && s->pd_sk) {
        bool q8 = true;
        for (int il = 0; il < m->n_layer - m->layer0; il++) q8 = q8 && m->layers[il].gate.type == T_Q8_0;
        s->pd_skpf |= 16 | (q8 ? 32 : 64) | 128;
    }
    const char *pskx = getenv("INFERNO_CUDA_PD_SKPF_XOR");
    if (pskx) s->pd_skpf ^= atoi(pskx);
    // Past PD_ONE_SPLIT_MAX cached positions the attention runs on tensor cores, a block per (KV head, key
    // split) (bench/NOTES.md CUDA step 17): sm_80+, head size 32, 64 or 128, at most 8 query heads a KV head;
    // INFERNO_CUDA_PD_GQA=0 keeps the per-head splits.
    const char *pgq = getenv("INFERNO_CUDA_PD_GQA");
    int cc_major = 0;
    if (!cu_ok(cudaDeviceGetAttribute(&cc_major, cudaDevAttrComputeCapabilityMajor, dev), "cudaDeviceGetAttribute",
               err, cap))
        return false;
    s->pd_att_tc = s->pd_sk && !(pgq && !strcmp(pgq, "0")) && cc_major >= 8 &&
                   (m->head_dim == 32 || m->head_dim == 64 || m->head_dim == 128) && m->n_head / m->n_head_kv <= 8;
    // Up to 384 positions the long form keeps the short form's fused attention and wo, its attention on tensor
    // cores (one block a head; H100: +3% / +7% tg128 at depth 256 for Q4_K_M / Q8_0, equal at 512, -10% at
    // 768); not for head size 128 (a head's 128 dimensions in one block: -7% at depth 256 for a Mistral 7B
    // shape against the splits); INFERNO_CUDA_PD_TC_FUSE=N moves the limit (0: off).
    const char *ptf = getenv("INFERNO_CUDA_PD_TC_FUSE");
    s->pd_tc_fuse = ptf ? atoi(ptf) : m->head_dim == 128 ? 0 : 384;
    if (s->pd_ring) { // the job tables, planned for one block an SM
        const size_t tb = (size_t)n_sm * (size_t)s->pd_job_stride * sizeof(pd_jobd);
        if (!cu_ok(cudaMalloc(&s->d_jobs, tb), "cudaMalloc (weight ring jobs)", err, cap) ||
            !cu_ok(cudaMalloc(&s->d_job_count, (size_t)n_sm * sizeof(int)), "cudaMalloc (weight ring jobs)", err, cap) ||
            !cu_ok(cudaMemcpy(s->d_jobs, s->pd_jobs_h, tb, cudaMemcpyHostToDevice), "cudaMemcpy (weight ring jobs)", err,
                   cap) ||
            !cu_ok(cudaMemcpy(s->d_job_count, s->pd_count_h, (size_t)n_sm * sizeof(int), cudaMemcpyHostToDevice),
                   "cudaMemcpy (weight ring jobs)", err, cap))
            return false;
        free(s->pd_jobs_h);
        free(s->pd_count_h);
        s->pd_jobs_h = NULL, s->pd_count_h = NULL;
    }
    int n_gpu = m->n_layer - m->layer0;
    if (!cu_ok(cudaMalloc(&s->d_layers, (size_t)n_gpu * sizeof(dlayer)), "cudaMalloc (layer table)", err, cap))
        return false;
    pthread_mutex_lock(&s->m->f16_lock); // another session may be setting the F16 copies' pointers
    const bool copied = cu_ok(cudaMemcpy(s->d_layers, m->layers, (size_t)n_gpu * sizeof(dlayer),
                                         cudaMemcpyHostToDevice), "cudaMemcpy (layer table)", err, cap);
    pthread_mutex_unlock(&s->m->f16_lock);
    if (!copied) return false;
    if ((s->pd_prof || s->pd_timeline) &&
        !cu_ok(cudaDeviceGetAttribute(&s->clock_khz, cudaDevAttrClockRate, dev), "cudaDeviceGetAttribute", err, cap))
        return false;
    if (s->pd_prof) {
        const size_t tb = (size_t)(n_gpu + 1) * PD_EDGES * sizeof(long long);
        if (!cu_ok(cudaMalloc(&s->pd_trace, tb), "cudaMalloc (trace)", err, cap)) return false;
        s->h_trace = (long long *)calloc(1, tb);
        if (!s->h_trace) {
            snprintf(err, cap, "out of host memory for the trace");
            return false;
        }
    }
    if (s->pd_timeline) {
        const size_t tb = (size_t)s->pd_grid * (n_gpu + 1) * PD_TL_ALL * 2 * sizeof(long long);
        if (!cu_ok(cudaMalloc(&s->pd_tl, tb), "cudaMalloc (timeline)", err, cap)) return false;
        s->h_tl = (long long *)malloc(tb);
        if (!s->h_tl) {
            snprintf(err, cap, "out of host memory for the timeline");
            return false;
        }
    }
    // The head's rows of a block gathered after the output norm's input in xs_f (max_in - E floats there), then
    // written straight into the pinned logits row.
    const int head_rows = (m->n_vocab + s->pd_grid - 1) / s->pd_grid;
    void *dh = NULL;
    s->pd_host_logits = !s->pd_ring && head_rows <= max_in - E &&
                        cudaHostGetDevicePointer(&dh, s->h_logits, 0) == cudaSuccess && dh;
    s->d_h_logits = (float *)dh;
    cudaGetLastError();
    s->persist = true;
    return true;
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
    const char *g = getenv("INFERNO_CUDA_GRAPH"), *pr = getenv("INFERNO_CUDA_PROFILE"),
               *gm = getenv("INFERNO_CUDA_GEMM_MIN"), *mq = getenv("INFERNO_CUDA_MMVQ"), *pd = getenv("INFERNO_CUDA_PDL");
    s->prof = pr && !strcmp(pr, "1");
    s->prof_graph = pr && !strcmp(pr, "2");
    s->pd_prof = pr && !strcmp(pr, "3");
    s->pd_timeline = pr && !strcmp(pr, "4");
    s->pdl = !(pd && !strcmp(pd, "0"));
    const char *gs = getenv("INFERNO_CUDA_GEMM_SIDE");
    s->gemm_side = !(gs && !strcmp(gs, "0"));
    const char *fu = getenv("INFERNO_CUDA_FUSE");
    s->fuse = fu && !strcmp(fu, "1"); // measured slower in the graph (bench/NOTES.md, CUDA step 6): opt-in
    s->use_graph = !(g && !strcmp(g, "0")) && !s->prof;
    s->mmvq = !(mq && !strcmp(mq, "0"));
    const char *mn = getenv("INFERNO_CUDA_MMVQ_NT");
    s->mmvq_nt8 = mn && !strcmp(mn, "8");
    s->gemm_min = GEMM_MIN_DEFAULT;
    s->gemm_min_f16 = gm ? 0 : GEMM_MIN_F16; // a threshold set by hand is the threshold
    if (gm) {
        long v = strtol(gm, NULL, 10);
        s->gemm_min = v <= 0 ? 0 : v < 2 ? 2 : v > (1 << 20) ? (1 << 20) : (int)v; // one token never: the graph
    }
    cuda_model_desc d = {};
    d.n_embd = m->n_embd, d.n_layer = m->n_layer, d.n_head = m->n_head, d.n_head_kv = m->n_head_kv;
    d.head_dim = m->head_dim, d.n_ff = m->n_ff, d.n_rot = m->n_rot, d.n_vocab = m->n_vocab, d.layer0 = m->layer0;
    uint64_t kv_bytes, compute_bytes;
    cuda_session_bytes(&d, n_ctx, n_batch, n_seq, &kv_bytes, &compute_bytes);
    compute_sizes c = compute_sizes_of(&d, n_ctx, n_batch, n_seq);
    uint64_t B = (uint64_t)n_batch;
    uint64_t host_bytes = B * ((uint64_t)m->n_embd + (uint64_t)m->n_rot + 6) * 4 + (uint64_t)m->n_vocab * 4 +
                          in1_floats(m->n_embd, m->n_rot) * 4;
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
    s->x2 = s->x + B * (uint64_t)m->n_embd;
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
    s->xq = (int8_t *)p, p += c.xq;
    s->xds = (float2 *)p, p += c.xds;
    s->hq = (int8_t *)p, p += c.hq;
    s->hds = (float2 *)p, p += c.hds;
    s->qkv = (float *)p, p += c.qkv;
    s->gu = (float *)p, p += c.gu;
    s->xh = (__half *)p, p += c.xh;
    s->scratch = (__half *)p, p += c.scratch;
    s->scratch_elems = c.scratch / 2;
    s->counters = (unsigned *)p, p += c.cnt;
    s->d_in1 = (float *)p, p += c.in1;
    s->h_x = (float *)s->host;
    s->h_rope = s->h_x + B * (uint64_t)m->n_embd;
    s->h_ints = (int32_t *)(s->h_rope + B * (uint64_t)m->n_rot);
    s->h_logits = (float *)(s->h_ints + B * 6);
    s->h_in1 = s->h_logits + m->n_vocab;
    // Unwritten table entries are never read (a token reads positions its sequence has written), but a
    // defined value keeps a bad index visible as cell 0 instead of garbage.
    if (!cu_ok(cudaMemset(s->seq_cells, 0, c.seq_cells), "cudaMemset", err, cap) ||
        !cu_ok(cudaMemset(s->counters, 0, c.cnt), "cudaMemset", err, cap)) {
        cuda_session_free(s);
        return false;
    }
    s->flash = flash_supported(m->head_dim);
    cudaError_t fe = cudaSuccess;
    switch (s->flash ? m->head_dim : 0) {
    case 8: fe = flash_prepare<8>(); break;
    case 16: fe = flash_prepare<16>(); break;
    case 32: fe = flash_prepare<32>(); break;
    case 64: fe = flash_prepare<64>(); break;
    case 128: fe = flash_prepare<128>(); break;
    default: break;
    }
    int cc_major = 0, dev = 0;
    const char *ftc = getenv("INFERNO_CUDA_FLASH_TC");
    if (cudaGetDevice(&dev) == cudaSuccess &&
        cudaDeviceGetAttribute(&cc_major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess && fe == cudaSuccess)
        s->flash_tc = s->flash && flash_tc_supported(m->head_dim, cc_major) && !(ftc && !strcmp(ftc, "0"));
    switch (s->flash_tc ? m->head_dim : 0) {
    case 16: fe = flash_tc_prepare<16>(); break;
    case 32: fe = flash_tc_prepare<32>(); break;
    case 64: fe = flash_tc_prepare<64>(); break;
    case 128: fe = flash_tc_prepare<128>(); break;
    default: break;
    }
    if (!cu_ok(fe, "cudaFuncSetAttribute (flash attention shared memory)", err, cap)) {
        cuda_session_free(s);
        return false;
    }
    if (!persist_prepare(s, err, cap)) {
        cuda_session_free(s);
        return false;
    }
    *out = s;
    return true;
}

// A kernel launch of the decode path: with the programmatic-dependent-launch attribute unless INFERNO_CUDA_PDL=0
// (the kernel must begin with pdl_wait). The first failure of a step is kept in launch_err.
template <typename... K, typename... A>
static void launch(cuda_session *s, void (*kern)(K...), dim3 grid, dim3 block, A... args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = 0;
    cfg.stream = s->stream;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = at;
    cfg.numAttrs = s->pdl ? 1 : 0;
    cudaError_t e = cudaLaunchKernelEx(&cfg, kern, args...);
    if (e != cudaSuccess && s->launch_err == cudaSuccess) s->launch_err = e;
}

// ---------------------------------------------------------------------------------------------------------
// Forward step: legacy path
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
        a.s[i] = w[i]->s;
        a.pitch[i] = w[i]->pitch;
        a.spitch[i] = w[i]->spitch;
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

static void enqueue_legacy(cuda_session *s, int T, int n_out) {
    const cuda_model *m = s->m;
    cudaStream_t st = s->stream;
    int E = m->n_embd, hd = m->head_dim, KV = m->n_head_kv * hd, Q = m->n_head * hd;
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
        k_rope_kv<<<T, 128, 0, st>>>(s->q, s->k, s->v, Q, KV, NULL, NULL, NULL, s->rope, s->ints, T,
                                     s->k_cache + layer_off, s->v_cache + layer_off, m->n_head, m->n_head_kv, hd,
                                     m->n_rot, m->rope_neox);
        prof_mark(s, OP_ROPE_KV);
        int S = att_splits(T);
        k_attention<<<dim3((unsigned)T, (unsigned)m->n_head, (unsigned)S), ATT_WARPS * 32, 0, st>>>(
            s->q, Q, s->k_cache + layer_off, s->v_cache + layer_off, s->seq_cells, s->ints, T, s->att, m->n_head,
            m->n_head_kv, hd, s->n_ctx, 1.0f / sqrtf((float)hd), nullptr, nullptr, nullptr, nullptr);
        k_attn_combine<<<dim3((unsigned)T, (unsigned)((Q + 255) / 256)), 256, 0, st>>>(s->att, S, s->xb, NULL, NULL,
                                                                                      NULL, m->n_head, hd);
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

// ---------------------------------------------------------------------------------------------------------
// Forward step: dp4a matrix-vector path
// ---------------------------------------------------------------------------------------------------------
static xop xop_at(xop x, int t0) {
    if (x.q) x.q += (size_t)t0 * x.n_in;
    if (x.ds) x.ds += (size_t)t0 * (x.n_in >> 5);
    if (x.f) x.f += (size_t)t0 * x.n_in;
    return x;
}

static void mmvq_set(mmvq_args *a, int i, const dmat *w) {
    a->w[i] = w->d;
    a->s[i] = w->s;
    a->pitch[i] = w->pitch;
    a->spitch[i] = w->spitch;
    a->n_out[i] = w->n_out;
}

template <int NT, int MODE> static void mmvq_go(cuda_session *s, int type, unsigned grid, const mmvq_args &a) {
    switch (type) {
    case T_F32: launch(s, k_mmvq<T_F32, NT, MODE>, dim3(grid), dim3(256), a); break;
    case T_F16: launch(s, k_mmvq<T_F16, NT, MODE>, dim3(grid), dim3(256), a); break;
    case T_Q4_0: launch(s, k_mmvq<T_Q4_0, NT, MODE>, dim3(grid), dim3(256), a); break;
    case T_Q8_0: launch(s, k_mmvq<T_Q8_0, NT, MODE>, dim3(grid), dim3(256), a); break;
    case T_Q4_K: launch(s, k_mmvq<T_Q4_K, NT, MODE>, dim3(grid), dim3(256), a); break;
    case T_Q6_K: launch(s, k_mmvq<T_Q6_K, NT, MODE>, dim3(grid), dim3(256), a); break;
    default: break; // the upload accepts native types only
    }
}

// The kernel for a.T tokens: built for 1, 2, 4 or 8 (the smallest that holds them; each token's loads and
// dot products are unrolled, so a kernel for 8 running 2 tokens keeps 8 tokens' registers and loses occupancy).
// INFERNO_CUDA_MMVQ_NT=8: the one for 8 for every batch of several tokens.
template <int MODE> static void mmvq_pick(cuda_session *s, int type, unsigned grid, const mmvq_args &a) {
    const int T = s->mmvq_nt8 && a.T > 1 ? MV_MAX_T : a.T;
    if (T <= 1) mmvq_go<1, MODE>(s, type, grid, a);
    else if (T <= 2) mmvq_go<2, MODE>(s, type, grid, a);
    else if (T <= 4) mmvq_go<4, MODE>(s, type, grid, a);
    else mmvq_go<MV_MAX_T, MODE>(s, type, grid, a);
}

static void mmvq_launch(int type, int mode, unsigned grid, cuda_session *s, const mmvq_args &a) {
    if (mode == MODE_MV) mmvq_pick<MODE_MV>(s, type, grid, a);
    else if (mode == MODE_QKV) mmvq_pick<MODE_QKV>(s, type, grid, a);
    else mmvq_pick<MODE_SWIGLU>(s, type, grid, a);
}

// y (T rows, ldy apart) = (y +) W x; with norm_w, then y's rows RMSNormed into s->xb / s->xq / s->xds by the
// last block (ldy == n_embd).
static void mmvq_mv(cuda_session *s, const dmat *w, xop x, int T, float *y, int ldy, bool accumulate,
                    const float *norm_w = nullptr) {
    const int nt = T == 1 ? 1 : MV_MAX_T;
    for (int t0 = 0; t0 < T; t0 += nt) {
        mmvq_args a;
        memset(&a, 0, sizeof a);
        mmvq_set(&a, 0, w);
        a.x = xop_at(x, t0);
        a.T = T - t0 < nt ? T - t0 : nt;
        a.y = y + (size_t)t0 * ldy;
        a.ldy = ldy;
        a.accumulate = accumulate;
        if (norm_w) {
            a.counter = s->counters;
            a.norm_w = norm_w;
            a.norm_eps = s->m->rms_eps;
            a.norm_xf = s->xb + (size_t)t0 * ldy;
            a.norm_xq = s->xq + (size_t)t0 * ldy;
            a.norm_xds = s->xds + (size_t)t0 * (ldy / 32);
        }
        mmvq_launch(w->type, MODE_MV, (unsigned)((w->n_out + 7) / 8), s, a);
    }
}

// Q, K, V of layer L from s->xq: q into s->q, k and v (with RoPE) into the layer's cache rows. One launch per
// run of equal types among wq, wk, wv.
static void mmvq_qkv(cuda_session *s, const dlayer *L, int T, __half *kc, __half *vc) {
    const cuda_model *m = s->m;
    const int hd = m->head_dim, Q = m->n_head * hd, KV = m->n_head_kv * hd;
    const dmat *mats[3] = {&L->wq, &L->wk, &L->wv};
    const int starts[4] = {0, Q / 2, Q / 2 + KV / 2, Q / 2 + KV};
    const xop x = {s->xq, s->xds, s->xb, m->n_embd};
    const int nt = T == 1 ? 1 : MV_MAX_T;
    for (int t0 = 0; t0 < T; t0 += nt) {
        mmvq_args a;
        memset(&a, 0, sizeof a);
        for (int i = 0; i < 3; i++) mmvq_set(&a, i, mats[i]);
        a.bias[0] = L->bq, a.bias[1] = L->bk, a.bias[2] = L->bv;
        a.x = xop_at(x, t0);
        a.T = T - t0 < nt ? T - t0 : nt;
        a.Q = Q, a.KV = KV, a.hd = hd, a.n_rot = m->n_rot, a.neox = m->rope_neox;
        a.rope = s->rope + (size_t)t0 * m->n_rot;
        a.cells = s->ints + 2 * T + t0;
        a.q_out = s->q + (size_t)t0 * Q;
        a.kc = kc, a.vc = vc;
        for (int i = 0; i < 3;) {
            int j = i + 1;
            while (j < 3 && mats[j]->type == mats[i]->type) j++;
            a.pair0 = starts[i], a.pair1 = starts[j];
            mmvq_launch(mats[i]->type, MODE_QKV, (unsigned)((a.pair1 - a.pair0 + 7) / 8), s, a);
            i = j;
        }
    }
}

// silu(gate x) * up x from s->xq into s->hb, and as 8-bit blocks into s->hq when n_ff % 32 == 0.
static void mmvq_gate_up(cuda_session *s, const dlayer *L, int T) {
    const cuda_model *m = s->m;
    const int F = m->n_ff;
    const xop x = {s->xq, s->xds, s->xb, m->n_embd};
    const int nt = T == 1 ? 1 : MV_MAX_T;
    for (int t0 = 0; t0 < T; t0 += nt) {
        mmvq_args a;
        memset(&a, 0, sizeof a);
        mmvq_set(&a, 0, &L->gate);
        mmvq_set(&a, 1, &L->up);
        a.x = xop_at(x, t0);
        a.T = T - t0 < nt ? T - t0 : nt;
        a.h_out = s->hb + (size_t)t0 * F;
        if (F % 32 == 0) {
            a.hq = s->hq + (size_t)t0 * F;
            a.hds = s->hds + (size_t)t0 * (F / 32);
        }
        mmvq_launch(L->gate.type, MODE_SWIGLU, (unsigned)((F + 31) / 32), s, a);
    }
}

// Per layer: norm, qkv (RoPE, KV write), attention, combine, wo, norm, gate/up (SwiGLU, quantized output),
// down: 8 launches; with s->fuse the norms and the combine ride in the last block of wo, down and attention
// (5 launches), which measured slower: the serialized tail outweighs the launches once PDL overlaps them.
static void enqueue_mmvq(cuda_session *s, int T, int n_out) {
    const cuda_model *m = s->m;
    const int E = m->n_embd, hd = m->head_dim, KV = m->n_head_kv * hd, Q = m->n_head * hd, F = m->n_ff;
    int8_t *xqE = E % 32 == 0 ? s->xq : NULL, *xqQ = Q % 32 == 0 ? s->xq : NULL;
    const bool fuse_norm = s->fuse && E % 32 == 0, fuse_att = s->fuse && hd % 32 == 0;
    for (int l = m->layer0; l < m->n_layer; l++) {
        const dlayer *L = &m->layers[l - m->layer0];
        size_t layer_off = (size_t)(l - m->layer0) * (size_t)s->n_ctx * (size_t)KV;
        if (l == m->layer0 || !fuse_norm) {
            launch(s, k_norm_q, dim3(T), dim3(NORM_THREADS), s->x, L->attn_norm, E, m->rms_eps, nullptr, s->xb, nullptr,
                   xqE, s->xds);
            prof_mark(s, OP_NORM);
        }
        mmvq_qkv(s, L, T, s->k_cache + layer_off, s->v_cache + layer_off);
        prof_mark(s, OP_QKV);
        int S = att_splits(T);
        launch(s, k_attention, dim3((unsigned)T, (unsigned)m->n_head, (unsigned)S), dim3(ATT_WARPS * 32), s->q, Q,
               s->k_cache + layer_off, s->v_cache + layer_off, s->seq_cells, s->ints, T, s->att, m->n_head,
               m->n_head_kv, hd, s->n_ctx, 1.0f / sqrtf((float)hd), fuse_att ? s->counters + 1 : nullptr, s->xb, xqQ,
               s->xds);
        if (!fuse_att)
            launch(s, k_attn_combine, dim3((unsigned)T, (unsigned)((Q + 255) / 256)), dim3(256), s->att, S, s->xb,
                   nullptr, xqQ, s->xds, m->n_head, hd);
        prof_mark(s, OP_ATTENTION);
        mmvq_mv(s, &L->wo, xop{s->xq, s->xds, s->xb, Q}, T, s->x, E, true, fuse_norm ? L->ffn_norm : nullptr);
        prof_mark(s, OP_WO);
        if (!fuse_norm) {
            launch(s, k_norm_q, dim3(T), dim3(NORM_THREADS), s->x, L->ffn_norm, E, m->rms_eps, nullptr, s->xb, nullptr,
                   xqE, s->xds);
            prof_mark(s, OP_NORM);
        }
        mmvq_gate_up(s, L, T);
        prof_mark(s, OP_GATE_UP);
        const float *next_norm = fuse_norm && l + 1 < m->n_layer ? m->layers[l + 1 - m->layer0].attn_norm : nullptr;
        mmvq_mv(s, &L->down, xop{s->hq, s->hds, s->hb, F}, T, s->x, E, true, next_norm);
        prof_mark(s, OP_DOWN);
    }
    if (n_out > 0) {
        launch(s, k_norm_q, dim3(T), dim3(NORM_THREADS), s->x, m->output_norm, E, m->rms_eps, s->ints + 3 * T, s->xb,
               nullptr, xqE, s->xds);
        mmvq_mv(s, &m->output, xop{s->xq, s->xds, s->xb, E}, n_out, s->logits, m->n_vocab, false);
        prof_mark(s, OP_HEAD);
    }
}

// ---------------------------------------------------------------------------------------------------------
// Forward step: GEMM path (tensor cores through cuBLAS)
// ---------------------------------------------------------------------------------------------------------
static void dequant(cudaStream_t st, const dmat *w, int r0, int nr, __half *out) {
    const uint8_t *d = w->d + (uint64_t)r0 * w->pitch;
    const __half *sc = w->s ? w->s + (size_t)r0 * w->spitch : NULL;
    const size_t n = (size_t)nr * (size_t)(w->n_in / 32);
    const unsigned grid = (unsigned)((n + 255) / 256);
    switch (w->type) {
    case T_Q4_0: k_dequant<T_Q4_0><<<grid, 256, 0, st>>>(d, sc, w->pitch, w->spitch, w->n_in, nr, out); break;
    case T_Q8_0: k_dequant<T_Q8_0><<<grid, 256, 0, st>>>(d, sc, w->pitch, w->spitch, w->n_in, nr, out); break;
    case T_Q4_K: k_dequant<T_Q4_K><<<grid, 256, 0, st>>>(d, sc, w->pitch, w->spitch, w->n_in, nr, out); break;
    case T_Q6_K: k_dequant<T_Q6_K><<<grid, 256, 0, st>>>(d, sc, w->pitch, w->spitch, w->n_in, nr, out); break;
    default: break;
    }
}

// y (T rows, ldy apart) = W x + beta y. F32 weights: SGEMM on xf; F16: the weights as they are against xh;
// quantized: rows dequantized to F16 into the scratch (in chunks that fit) against xh.
static bool gemm(cuda_session *s, const dmat *w, const float *xf, const __half *xh, int T, float *y, int ldy,
                 float beta, char *err, size_t cap) {
    const float alpha = 1.0f;
    const int n_in = w->n_in, n_out = w->n_out;
    int chunk = n_out;
    if (is_quant(w->type) && !(s->f16_ready && w->h)) {
        uint64_t rows = s->scratch_elems / (uint64_t)n_in;
        chunk = rows < (uint64_t)n_out ? (int)rows : n_out;
    }
    for (int r0 = 0; r0 < n_out && chunk > 0; r0 += chunk) {
        const int nr = n_out - r0 < chunk ? n_out - r0 : chunk;
        const void *A = w->d + (uint64_t)r0 * w->pitch, *B = xh;
        cudaDataType_t at = CUDA_R_16F, bt = CUDA_R_16F;
        int lda = (int)(w->pitch / 2);
        if (w->type == T_F32) {
            at = bt = CUDA_R_32F;
            lda = (int)(w->pitch / 4);
            B = xf;
        } else if (w->type != T_F16 && s->f16_ready && w->h) {
            A = w->h + (size_t)r0 * (size_t)n_in;
            lda = n_in;
        } else if (w->type != T_F16) {
            dequant(s->stream, w, r0, nr, s->scratch);
            A = s->scratch;
            lda = n_in;
        }
        s->gemm_calls++;
        cublasStatus_t st = cublasGemmEx(s->cublas, CUBLAS_OP_T, CUBLAS_OP_N, nr, T, n_in, &alpha, A, at, lda, B, bt,
                                         n_in, &beta, y + r0, CUDA_R_32F, ldy, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        if (st != CUBLAS_STATUS_SUCCESS) {
            snprintf(err, cap, "cublasGemmEx (%d x %d x %d) failed: %s", nr, T, n_in, cublasGetStatusString(st));
            return false;
        }
    }
    if (chunk <= 0) {
        snprintf(err, cap, "GEMM scratch of %llu values holds no row of %d", (unsigned long long)s->scratch_elems, n_in);
        return false;
    }
    return true;
}

// Whether a GEMM over one of ws reads its input's F32 rows (SGEMM on F32 weights) rather than only the F16 ones.
static bool reads_f32(const dmat *const *ws, int n) {
    for (int i = 0; i < n; i++)
        if (ws[i]->type == T_F32) return true;
    return false;
}

// The F16 rows a GEMM reads for w without a dequantization (F16 weights, or the model's F16 copy of a quantized
// matrix); NULL for the others.
static const __half *f16_rows(const cuda_session *s, const dmat *w) {
    if (w->type == T_F16 && w->pitch == (uint64_t)w->n_in * 2) return (const __half *)w->d;
    if (is_quant(w->type) && s->f16_ready && w->h) return w->h;
    return NULL;
}

// Matrices that share an input and write side by side (q|k|v, gate|up: matrix i at column y + the rows of the
// ones before it): one GEMM over all their rows when their F16 rows follow each other in memory (the upload and
// the F16 copies lay them out in this order), else one each. One call instead of three turns wk's and wv's
// small products (256 rows for a 2,048-wide model) into part of a product that fills the card.
static bool gemm_side(cuda_session *s, const dmat *const *ws, int n, const float *xf, const __half *xh, int T, float *y,
                      int ldy, char *err, size_t cap) {
    bool one = s->gemm_side && n > 1;
    int rows = 0;
    for (int i = 0; i < n && one; i++) {
        const __half *a = f16_rows(s, ws[i]);
        one = a && ws[i]->n_in == ws[0]->n_in && a == f16_rows(s, ws[0]) + (size_t)rows * (size_t)ws[0]->n_in;
        rows += ws[i]->n_out;
    }
    if (one) {
        dmat all = *ws[0];
        all.type = T_F16;
        all.d = (const uint8_t *)f16_rows(s, ws[0]);
        all.pitch = (uint64_t)all.n_in * 2;
        all.n_out = rows;
        s->gemm_sides++;
        return gemm(s, &all, xf, xh, T, y, ldy, 0.0f, err, cap);
    }
    for (int i = 0, r = 0; i < n; r += ws[i]->n_out, i++)
        if (!gemm(s, ws[i], xf, xh, T, y + r, ldy, 0.0f, err, cap)) return false;
    return true;
}

// xf: where the tensor-core kernel writes the F32 output as well (NULL: the F16 one only; k_flash writes both).
// runs: the tensor-core kernel's blocks for a batch of several sequences (upload_batch), NULL for one sequence.
static void flash(cuda_session *s, int T, const float *q, int ldq, const __half *kc, const __half *vc, float *xf,
                  const int32_t *runs) {
    const cuda_model *m = s->m;
    if (s->flash_tc) {
        dim3 grid((unsigned)(runs ? s->att_blocks : (T + FT_BQ - 1) / FT_BQ), (unsigned)m->n_head);
        size_t sm = flash_tc_smem_bytes(m->head_dim);
        float sc = 1.0f / sqrtf((float)m->head_dim);
#define FLASH_TC_GO(HD)                                                                                           \
    k_flash_tc<HD><<<grid, 128, sm, s->stream>>>(q, ldq, kc, vc, s->seq_cells, s->ints, runs, T, xf, s->xh,       \
                                                 m->n_head, m->n_head_kv, s->n_ctx, sc)
        switch (m->head_dim) {
        case 16: FLASH_TC_GO(16); break;
        case 32: FLASH_TC_GO(32); break;
        case 64: FLASH_TC_GO(64); break;
        case 128: FLASH_TC_GO(128); break;
        default: break; // flash_tc_supported
        }
#undef FLASH_TC_GO
        return;
    }
    dim3 grid((unsigned)((T + FA_BQ - 1) / FA_BQ), (unsigned)m->n_head);
    size_t sm = flash_smem_bytes(m->head_dim);
    float sc = 1.0f / sqrtf((float)m->head_dim);
#define FLASH_GO(HD)                                                                                              \
    k_flash<HD><<<grid, 128, sm, s->stream>>>(q, ldq, kc, vc, s->seq_cells, s->ints, T, s->xb, s->xh, m->n_head,  \
                                              m->n_head_kv, s->n_ctx, sc)
    switch (m->head_dim) {
    case 8: FLASH_GO(8); break;
    case 16: FLASH_GO(16); break;
    case 32: FLASH_GO(32); break;
    case 64: FLASH_GO(64); break;
    case 128: FLASH_GO(128); break;
    default: break; // flash_supported
    }
#undef FLASH_GO
}

// Whether a batch of T tokens (or output rows) takes the GEMM path: from gemm_min tokens (16), and from
// gemm_min_f16 (8) once the model's F16 weight copies exist (or it needs none: F16 and F32 weights), where
// cuBLAS over them outruns the matrix-vector kernels' 8 tokens (a server's parallel decode steps, bench/NOTES.md).
static bool gemm_step(const cuda_session *s, int T) {
    return s->gemm_min > 0 && (T >= s->gemm_min || (s->gemm_min_f16 > 0 && s->gemm_f16 && T >= s->gemm_min_f16));
}

static bool enqueue_gemm(cuda_session *s, int T, int n_out, bool one_seq, char *err, size_t cap) {
    const cuda_model *m = s->m;
    cudaStream_t st = s->stream;
    const int E = m->n_embd, hd = m->head_dim, KV = m->n_head_kv * hd, Q = m->n_head * hd, F = m->n_ff;
    const int ld = Q + 2 * KV;
    for (int l = m->layer0; l < m->n_layer; l++) {
        const dlayer *L = &m->layers[l - m->layer0];
        size_t layer_off = (size_t)(l - m->layer0) * (size_t)s->n_ctx * (size_t)KV;
        __half *kc = s->k_cache + layer_off, *vc = s->v_cache + layer_off;
        // (each kernel writes its output's F32 rows only where an F32 matrix reads them)
        const dmat *const qkv[3] = {&L->wq, &L->wk, &L->wv}, *const gu[2] = {&L->gate, &L->up};
        k_norm_q<<<T, NORM_THREADS, 0, st>>>(s->x, L->attn_norm, E, m->rms_eps, NULL, reads_f32(qkv, 3) ? s->xb : NULL,
                                              s->xh, NULL, NULL);
        prof_mark(s, OP_NORM);
        if (!gemm_side(s, qkv, 3, s->xb, s->xh, T, s->qkv, ld, err, cap)) return false;
        prof_mark(s, OP_QKV);
        k_rope_kv<<<T, 128, 0, st>>>(s->qkv, s->qkv + Q, s->qkv + Q + KV, ld, ld, L->bq, L->bk, L->bv, s->rope, s->ints,
                                     T, kc, vc, m->n_head, m->n_head_kv, hd, m->n_rot, m->rope_neox);
        prof_mark(s, OP_ROPE_KV);
        if (s->flash_tc || (one_seq && s->flash)) {
            flash(s, T, s->qkv, ld, kc, vc, L->wo.type == T_F32 ? s->xb : NULL,
                  one_seq ? NULL : s->ints + 4 * T);
        } else {
            k_attention<<<dim3((unsigned)T, (unsigned)m->n_head, 1), ATT_WARPS * 32, 0, st>>>(
                s->qkv, ld, kc, vc, s->seq_cells, s->ints, T, s->att, m->n_head, m->n_head_kv, hd, s->n_ctx,
                1.0f / sqrtf((float)hd), nullptr, nullptr, nullptr, nullptr);
            k_attn_combine<<<dim3((unsigned)T, (unsigned)((Q + 255) / 256)), 256, 0, st>>>(s->att, 1, s->xb, s->xh,
                                                                                          NULL, NULL, m->n_head, hd);
        }
        prof_mark(s, OP_ATTENTION);
        if (!gemm(s, &L->wo, s->xb, s->xh, T, s->x, E, 1.0f, err, cap)) return false;
        prof_mark(s, OP_WO);
        k_norm_q<<<T, NORM_THREADS, 0, st>>>(s->x, L->ffn_norm, E, m->rms_eps, NULL, reads_f32(gu, 2) ? s->xb : NULL,
                                              s->xh, NULL, NULL);
        prof_mark(s, OP_NORM);
        if (!gemm_side(s, gu, 2, s->xb, s->xh, T, s->gu, 2 * F, err, cap)) return false;
        k_swiglu<<<dim3((unsigned)T, (unsigned)((F + 1023) / 1024)), 256, 0, st>>>(
            s->gu, F, L->down.type == T_F32 ? s->hb : NULL, s->xh);
        prof_mark(s, OP_GATE_UP);
        if (!gemm(s, &L->down, s->hb, s->xh, T, s->x, E, 1.0f, err, cap)) return false;
        prof_mark(s, OP_DOWN);
    }
    if (n_out > 0) {
        k_norm_q<<<T, NORM_THREADS, 0, st>>>(s->x, m->output_norm, E, m->rms_eps, s->ints + 3 * T, s->xb, s->xh,
                                              E % 32 == 0 ? s->xq : NULL, s->xds);
        if (gemm_step(s, n_out)) {
            if (!gemm(s, &m->output, s->xb, s->xh, n_out, s->logits, m->n_vocab, 0.0f, err, cap)) return false;
        } else {
            mmvq_mv(s, &m->output, xop{s->xq, s->xds, s->xb, E}, n_out, s->logits, m->n_vocab, false);
        }
        prof_mark(s, OP_HEAD);
    }
    return true;
}

// The model's F16 copies of its quantized matrices, so GEMM batches skip the per-batch dequantization (a
// 1.1B model's weights are ~2.2 GB of F16: written and read back by every batch otherwise). Made once, on
// the first GEMM batch of any session, when free VRAM exceeds their size by a margin (1 GiB or a tenth of the
// card, whichever is larger), unless INFERNO_CUDA_F16_CACHE=0; otherwise declined for the model's lifetime.
// The dequantization is the GEMM path's own kernel, so results are bit-identical either way.
static void f16_cache_acquire(cuda_session *s) {
    cuda_model *m = s->m;
    pthread_mutex_lock(&m->f16_lock);
    if (m->f16_state == 0) {
        m->f16_state = 2;
        const char *env = getenv("INFERNO_CUDA_F16_CACHE");
        const int n_gpu = m->n_layer - m->layer0;
        uint64_t need = 0;
        for (int pass = 0; pass < 2; pass++) {
            uint64_t off = 0;
            for (int l = 0; l <= n_gpu; l++) {
                dmat *ws[7];
                int nw = 0;
                if (l < n_gpu) {
                    dlayer *L = &m->layers[l];
                    dmat *all[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down};
                    for (int i = 0; i < 7; i++) ws[nw++] = all[i];
                } else {
                    ws[nw++] = &m->output;
                }
                for (int i = 0; i < nw; i++) {
                    if (!is_quant(ws[i]->type)) continue;
                    const uint64_t bytes = align_up((uint64_t)ws[i]->n_out * (uint64_t)ws[i]->n_in * 2, ALIGN);
                    if (pass == 1) {
                        __half *dst = (__half *)((uint8_t *)m->f16_buf + off);
                        dequant(s->stream, ws[i], 0, ws[i]->n_out, dst);
                        ws[i]->h = dst;
                    }
                    off += bytes;
                }
            }
            need = off;
            m->f16_native = need == 0;
            if (pass == 1) break;
            if ((env && !strcmp(env, "0")) || need == 0 || !(m->f16_buf = vram_reserve(need, 1ull << 30, 10))) break;
            m->f16_bytes = need;
        }
        if (m->f16_buf) {
            if (cudaStreamSynchronize(s->stream) == cudaSuccess && cudaGetLastError() == cudaSuccess) {
                m->f16_state = 1;
            } else { // leave the copies unused; the per-batch path still works
                for (int l = 0; l < n_gpu; l++) {
                    dlayer *L = &m->layers[l];
                    L->wq.h = L->wk.h = L->wv.h = L->wo.h = L->gate.h = L->up.h = L->down.h = NULL;
                }
                m->output.h = NULL;
            }
        }
    }
    s->f16_ready = m->f16_state == 1;
    s->gemm_f16 = s->f16_ready || m->f16_native;
    pthread_mutex_unlock(&m->f16_lock);
}

// After a synchronized persistent step with the trace on: adds each phase's clocks (edge to edge).
static void pd_collect(cuda_session *s) {
    const int n = s->m->n_layer - s->m->layer0;
    if (cudaMemcpy(s->h_trace, s->pd_trace, (size_t)(n + 1) * PD_EDGES * sizeof(long long), cudaMemcpyDeviceToHost) !=
        cudaSuccess)
        return;
    const long long *t = s->h_trace;
    for (int l = 0; l < n; l++) {
        for (int k = 1; k < PD_EDGES; k++) s->pd_cycles[k] += (double)(t[l * PD_EDGES + k] - t[l * PD_EDGES + k - 1]);
        s->pd_cycles[0] += (double)(t[(l + 1) * PD_EDGES] - t[l * PD_EDGES + PD_EDGES - 1]); // the down barrier
    }
    s->pd_cycles[PD_EDGES] += (double)(t[n * PD_EDGES + 1] - t[n * PD_EDGES]);
    s->pd_cycles[PD_EDGES + 1] += (double)(t[n * PD_EDGES + 2] - t[n * PD_EDGES + 1]);
    s->pd_cycles[PD_EDGES + 2] += (double)(t[n * PD_EDGES + 2] - t[0]);
    for (int i = 0; i < 6; i++) s->pd_cycles[PD_EDGES + 3 + i] += (double)t[n * PD_EDGES + 3 + i] / (double)s->pd_grid;
    s->pd_steps++;
}

static int cmp_ll(const void *x, const void *y) {
    const long long a = *(const long long *)x, b = *(const long long *)y;
    return a < b ? -1 : a > b;
}

// min / median / max of v[0..n) (sorted in place) into out[0..3) as sums.
static void add_spread(long long *v, int n, double scale, double *out, int parts) {
    qsort(v, (size_t)n, sizeof *v, cmp_ll);
    if (parts == 3) out[0] += (double)v[0] * scale, out[1] += (double)v[n / 2] * scale, out[2] += (double)v[n - 1] * scale;
    else out[0] += (double)v[n / 2] * scale, out[1] += (double)v[n - 1] * scale;
}

// After a synchronized persistent step with the timeline on (INFERNO_CUDA_PROFILE=4).
static void tl_collect(cuda_session *s) {
    const int n = s->m->n_layer - s->m->layer0, G = s->pd_grid;
    const size_t tb = (size_t)G * (n + 1) * PD_TL_ALL * 2 * sizeof(long long);
    if (cudaMemcpy(s->h_tl, s->pd_tl, tb, cudaMemcpyDeviceToHost) != cudaSuccess) return;
    long long *v = (long long *)malloc((size_t)G * sizeof *v);
    if (!v) return;
    const double us_gt = 1e-3, us_clk = 1e3 / (double)s->clock_khz;
#define TL_AT(b, l, k, c) s->h_tl[2 * (((size_t)(b) * (n + 1) + (l)) * PD_TL_ALL + (k)) + (c)]
    for (int l = 0; l <= n; l++) {
        long long base = TL_AT(0, l, 0, 0);
        for (int b = 1; b < G; b++) base = TL_AT(b, l, 0, 0) < base ? TL_AT(b, l, 0, 0) : base;
        const int np = l < n ? PD_TL + 1 : 3;
        for (int k = 0; k < np; k++) {
            const int lk = k == PD_TL ? l + 1 : l, kk = k == PD_TL ? 0 : k;
            for (int b = 0; b < G; b++) v[b] = TL_AT(b, lk, kk, 0) - base;
            add_spread(v, G, us_gt, l < n ? s->tl_at[k] : s->tl_head[k], 3);
            if (k == 0 || l == n) continue;
            // The block's own time in the interval that ends at point k (from point k - 1 of layer l).
            for (int b = 0; b < G; b++) v[b] = TL_AT(b, lk, kk, 1) - TL_AT(b, l, k - 1, 1);
            add_spread(v, G, us_clk, s->tl_own[k], 2);
        }
    }
    // Posting an arrival: the release add after the block's last write (the wait for its stores), over the
    // five barriers of every layer.
    static const int arrive[5] = {PD_TL_QKV_ARRIVE, PD_TL_ATT_ARRIVE, PD_TL_WO_ARRIVE, PD_TL_GU_ARRIVE, PD_TL_DOWN_ARRIVE};
    for (int l = 0; l < n; l++)
        for (int i = 0; i < 5; i++) {
            for (int b = 0; b < G; b++) v[b] = TL_AT(b, l, PD_TL_POSTED + i, 1) - TL_AT(b, l, arrive[i], 1);
            add_spread(v, G, us_clk / 5.0, s->tl_post, 2);
        }
#undef TL_AT
    free(v);
    s->tl_n++;
    s->tl_n_long += s->pd_long_now;
}

// A single-token step with one output row as one cooperative launch (decode_persistent.cuh).
static void launch_persistent(cuda_session *s) {
    const cuda_model *m = s->m;
    const unsigned B = (unsigned)s->n_batch;
    pd_args a;
    memset(&a, 0, sizeof a);
    a.layers = s->d_layers;
    a.n_layers = m->n_layer - m->layer0;
    a.output_norm = m->output_norm;
    a.output = m->output;
    a.E = m->n_embd, a.Q = m->n_head * m->head_dim, a.KV = m->n_head_kv * m->head_dim, a.F = m->n_ff;
    a.hd = m->head_dim, a.n_head = m->n_head, a.n_head_kv = m->n_head_kv, a.n_rot = m->n_rot;
    a.neox = m->rope_neox, a.n_vocab = m->n_vocab, a.n_ctx = s->n_ctx;
    a.max_in = a.E > a.Q ? a.E : a.Q;
    if (a.F > a.max_in) a.max_in = a.F;
    a.eps = m->rms_eps, a.att_scale = 1.0f / sqrtf((float)m->head_dim);
    a.x = s->d_in1, a.rope = s->d_in1 + a.E, a.ints = (const int32_t *)(s->d_in1 + a.E + a.n_rot);
    a.seq_cells = s->seq_cells;
    a.x2 = s->x2, a.sk = s->pd_sk, a.sk_at = s->pd_sk_at, a.sk_umax = s->pd_sk_umax, a.nw_at = s->pd_nw_at;
    a.kc = s->k_cache, a.vc = s->v_cache;
    a.q = s->q, a.att = s->att, a.xb = s->xb, a.hb = s->hb;
    a.logits = s->pd_host_logits ? s->d_h_logits : s->logits, a.head_stage = s->pd_host_logits;
    a.max_splits = s->pd_max_splits;
    a.att_tc = s->pd_att_tc;
    a.tc_fuse = s->pd_tc_fuse;
    a.wts_at = (int)s->pd_wts_at;
    a.prefetch = s->pd_prefetch;
    a.sk_pf = s->pd_skpf;
    a.bar = s->counters + 1 + B * (unsigned)m->n_head;
    a.trace = s->pd_trace;
    a.tl = s->pd_tl;
    a.kv_ready = s->pd_flags && !s->pd_ring && !s->pd_sk ? a.bar + 2 : nullptr;
    a.ring_at = s->pd_ring_at, a.ring_bytes = s->pd_ring_bytes, a.tab_at = s->pd_tab_at, a.jobs_at = s->pd_jobs_at;
    a.jobs = s->d_jobs, a.job_count = s->d_job_count, a.job_stride = s->pd_job_stride;
    if (s->pd_trace && s->pd_ring) // the ring's clocks are summed over the blocks
        cudaMemsetAsync(s->pd_trace + (size_t)a.n_layers * PD_EDGES + 3, 0, 6 * sizeof(long long), s->stream);
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3((unsigned)s->pd_grid);
    cfg.blockDim = dim3(PD_THREADS);
    cfg.dynamicSmemBytes = s->pd_smem;
    cfg.stream = s->stream;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeCooperative;
    at[0].val.cooperative = 1;
    cfg.attrs = at;
    cfg.numAttrs = 1;
    cudaError_t e = cudaLaunchKernelEx(&cfg, s->pd_long_now ? s->pd_fn_long : s->pd_fn, a);
    if (e != cudaSuccess && s->launch_err == cudaSuccess) s->launch_err = e;
    prof_mark(s, OP_HEAD);
}

// Enqueues the whole step (everything after the uploads of x, rope and ints).
// Steps the persistent kernel takes: one token, one output row.
static bool persistent_step(const cuda_session *s, int T, int n_out) { return s->persist && T == 1 && n_out == 1; }

static bool enqueue_step(cuda_session *s, int T, int n_out, bool one_seq, char *err, size_t cap) {
    if (persistent_step(s, T, n_out)) { // the kernel enters the token's cell itself
        prof_mark(s, OP_UPLOAD);
        launch_persistent(s);
        return true;
    }
    k_scatter_cells<<<(T + 255) / 256, 256, 0, s->stream>>>(s->ints, T, s->seq_cells, s->n_ctx);
    prof_mark(s, OP_UPLOAD);
    if (gemm_step(s, T)) return enqueue_gemm(s, T, n_out, one_seq, err, cap);
    if (s->mmvq) enqueue_mmvq(s, T, n_out);
    else enqueue_legacy(s, T, n_out);
    return true;
}

static bool upload_batch(cuda_session *s, const cuda_batch *b, bool one_seq) {
    const cuda_model *m = s->m;
    int T = b->n_tokens;
    if (persistent_step(s, T, b->n_out)) {
        float *x = s->h_in1, *rope = x + m->n_embd;
        int32_t *ints = (int32_t *)(rope + m->n_rot);
        memcpy(x, b->x, (size_t)m->n_embd * sizeof(float));
        memcpy(rope, b->rope, (size_t)m->n_rot * sizeof(float));
        ints[0] = b->pos[0], ints[1] = b->seq[0], ints[2] = b->cell[0], ints[3] = b->out_row[0];
        return true;
    }
    memcpy(s->h_x, b->x, (size_t)T * m->n_embd * sizeof(float));
    memcpy(s->h_rope, b->rope, (size_t)T * m->n_rot * sizeof(float));
    memcpy(s->h_ints, b->pos, (size_t)T * 4);
    memcpy(s->h_ints + T, b->seq, (size_t)T * 4);
    memcpy(s->h_ints + 2 * T, b->cell, (size_t)T * 4);
    memcpy(s->h_ints + 3 * T, b->out_row, (size_t)T * 4);
    // A batch of several sequences for the tensor-core attention: its blocks' (first token, tokens), each
    // block at most FT_BQ consecutive tokens of one sequence.
    s->att_blocks = 0;
    if (s->flash_tc && !one_seq && gemm_step(s, T)) {
        int32_t *runs = s->h_ints + 4 * T;
        for (int t = 0; t < T;) {
            int n = 1;
            while (t + n < T && n < FT_BQ && b->seq[t + n] == b->seq[t]) n++;
            runs[2 * s->att_blocks] = t, runs[2 * s->att_blocks + 1] = n, s->att_blocks++;
            t += n;
        }
    }
    return true;
}

static void enqueue_uploads(cuda_session *s, int T, int n_out) {
    const cuda_model *m = s->m;
    if (persistent_step(s, T, n_out)) {
        cudaMemcpyAsync(s->d_in1, s->h_in1, in1_floats(m->n_embd, m->n_rot) * 4, cudaMemcpyHostToDevice, s->stream);
        return;
    }
    cudaMemcpyAsync(s->x, s->h_x, (size_t)T * m->n_embd * sizeof(float), cudaMemcpyHostToDevice, s->stream);
    cudaMemcpyAsync(s->rope, s->h_rope, (size_t)T * m->n_rot * sizeof(float), cudaMemcpyHostToDevice, s->stream);
    cudaMemcpyAsync(s->ints, s->h_ints, (size_t)T * 16 + (size_t)s->att_blocks * 8, cudaMemcpyHostToDevice, s->stream);
}

extern "C" bool cuda_forward(cuda_session *s, const cuda_batch *b, float *logits, const float **row, float *embd,
                             char *err, size_t cap) {
    const cuda_model *m = s->m;
    const double t_enter = s->prof_graph ? host_us() : 0.0;
    if (row) *row = NULL;
    int T = b->n_tokens;
    if (T <= 0 || T > s->n_batch) {
        snprintf(err, cap, "GPU step of %d tokens exceeds the session's batch %d", T, s->n_batch);
        return false;
    }
    bool one_seq = true;
    for (int t = 1; t < T; t++) one_seq = one_seq && b->seq[t] == b->seq[0];
    if (s->gemm_min > 0 && T >= (s->gemm_min_f16 ? s->gemm_min_f16 : s->gemm_min) && !s->f16_checked) {
        s->f16_checked = true;
        f16_cache_acquire(s);
    }
    if (gemm_step(s, T) && !s->cublas) {
        cublasStatus_t cs = cublasCreate(&s->cublas);
        if (cs == CUBLAS_STATUS_SUCCESS) cs = cublasSetStream(s->cublas, s->stream);
        if (cs != CUBLAS_STATUS_SUCCESS) {
            if (s->cublas) cublasDestroy(s->cublas);
            s->cublas = NULL;
            snprintf(err, cap, "cuBLAS could not start: %s", cublasGetStatusString(cs));
            return false;
        }
    }
    upload_batch(s, b, one_seq);
    s->launch_err = cudaSuccess;
    bool graphable = s->use_graph && T == 1 && b->n_out == 1;
    // A single-token step past PD_ONE_SPLIT_MAX cached positions takes the persistent kernel's LONG form (and
    // its own graph).
    // (Not for the per-op kernels, the ring or the by-rows kernel, which have no second form.)
    s->pd_long_now = persistent_step(s, T, b->n_out) && s->pd_fn_long != s->pd_fn && b->pos[0] + 1 > PD_ONE_SPLIT_MAX;
    const int gi = s->pd_long_now;
    if (graphable && !s->graph_tried[gi]) {
        // Capture once: every kernel reads the changing values (position, cell, sequence) from device memory,
        // and the uploads read the pinned staging buffers, so the same graph serves every decode step.
        s->graph_tried[gi] = true;
        cudaGraph_t g = NULL;
        bool ok = cudaStreamBeginCapture(s->stream, cudaStreamCaptureModeThreadLocal) == cudaSuccess;
        if (ok) {
            enqueue_uploads(s, 1, 1);
            char cerr[8];
            bool enq = enqueue_step(s, 1, 1, true, cerr, sizeof cerr);
            ok = cudaStreamEndCapture(s->stream, &g) == cudaSuccess && g && enq && s->launch_err == cudaSuccess;
            s->launch_err = cudaSuccess;
        }
        if (ok) ok = cudaGraphInstantiate(&s->graph[gi], g, 0) == cudaSuccess;
        if (g) cudaGraphDestroy(g);
        if (!ok) {
            if (s->graph[gi]) cudaGraphExecDestroy(s->graph[gi]);
            s->graph[gi] = NULL;
            cudaGetLastError();
        }
    }
    // Steps of several sequences' tokens (up to MG_MAX_T): a graph per shape, captured at its second step. A
    // batch of one sequence (a prompt's chunk) is launched directly: its shapes seldom repeat, and a capture
    // costs more than the launches it saves (one stream's server runs measured 2% slower with them captured).
    mgraph *mg = NULL;
    if (s->use_graph && !one_seq && !persistent_step(s, T, b->n_out) && T <= MG_MAX_T) {
        mg = mgraph_slot(s, T, b->n_out);
        if (++mg->seen == 2 && !mg->failed) {
            cudaGraph_t g = NULL;
            bool ok = cudaStreamBeginCapture(s->stream, cudaStreamCaptureModeThreadLocal) == cudaSuccess;
            if (ok) {
                enqueue_uploads(s, T, b->n_out);
                char cerr[8];
                bool enq = enqueue_step(s, T, b->n_out, one_seq, cerr, sizeof cerr);
                ok = cudaStreamEndCapture(s->stream, &g) == cudaSuccess && g && enq && s->launch_err == cudaSuccess;
                s->launch_err = cudaSuccess;
            }
            if (ok) ok = cudaGraphInstantiate(&mg->exec, g, 0) == cudaSuccess;
            if (g) cudaGraphDestroy(g);
            if (!ok) {
                if (mg->exec) cudaGraphExecDestroy(mg->exec);
                mg->exec = NULL, mg->failed = true;
                cudaGetLastError();
            } else {
                s->mg_captures++;
            }
        }
    }
    bool timed = false;
    if (mg && mg->exec) {
        if (!cu_ok(cudaGraphLaunch(mg->exec, s->stream), "cudaGraphLaunch", err, cap)) return false;
        s->mg_replays++;
    } else if (graphable && s->graph[gi]) {
        if (s->prof_graph) {
            for (int i = 0; i < 2; i++)
                if (!s->ev[i]) cudaEventCreate(&s->ev[i]);
            timed = s->ev[0] && s->ev[1] && cudaEventRecord(s->ev[0], s->stream) == cudaSuccess;
        }
        if (!cu_ok(cudaGraphLaunch(s->graph[gi], s->stream), "cudaGraphLaunch", err, cap)) return false;
        if (timed) timed = cudaEventRecord(s->ev[1], s->stream) == cudaSuccess;
        if (timed) s->host_launch += host_us() - t_enter;
    } else {
        prof_mark(s, OP_START);
        enqueue_uploads(s, T, b->n_out);
        if (!enqueue_step(s, T, b->n_out, one_seq, err, cap)) {
            cudaStreamSynchronize(s->stream);
            return false;
        }
        if (!cu_ok(s->launch_err, "cudaLaunchKernelEx", err, cap) || !cu_ok(cudaGetLastError(), "kernel launch", err, cap))
            return false;
    }
    // One row of logits comes back through the pinned buffer (a DMA; the persistent kernel writes it there
    // itself), and the caller reads it there when it asks to.
    const bool via_pinned = b->n_out == 1, written = via_pinned && s->pd_host_logits && persistent_step(s, T, 1);
    if (b->n_out > 0) {
        if (!written && !cu_ok(cudaMemcpyAsync(via_pinned ? s->h_logits : logits, s->logits,
                                               (size_t)b->n_out * m->n_vocab * sizeof(float), cudaMemcpyDeviceToHost,
                                               s->stream),
                               "cudaMemcpy (logits)", err, cap))
            return false;
        if (embd && !cu_ok(cudaMemcpyAsync(embd, s->xb, (size_t)b->n_out * m->n_embd * sizeof(float),
                                           cudaMemcpyDeviceToHost, s->stream),
                           "cudaMemcpy (embeddings)", err, cap))
            return false;
    }
    if (!cu_ok(cudaStreamSynchronize(s->stream), "GPU forward step", err, cap)) return false;
    if (via_pinned && row) *row = s->h_logits;
    else if (via_pinned) memcpy(logits, s->h_logits, (size_t)m->n_vocab * sizeof(float));
    if (s->prof) prof_collect(s);
    if (s->pd_trace && persistent_step(s, T, b->n_out)) pd_collect(s);
    if (s->pd_tl && persistent_step(s, T, b->n_out)) tl_collect(s);
    float ms = 0.0f;
    if (timed && cudaEventElapsedTime(&ms, s->ev[0], s->ev[1]) == cudaSuccess) {
        const double t_end = host_us();
        s->graph_ms += ms, s->graph_steps++;
        s->host_wait += t_end - t_enter; // the launch's share is taken off when printed
        if (s->host_prev > 0.0) s->host_between += t_enter - s->host_prev, s->host_gaps++;
        s->host_prev = t_end;
    } else if (s->prof_graph) {
        s->host_prev = 0.0; // not a replay: the next gap is not the caller's between two steps
    }
    return true;
}
