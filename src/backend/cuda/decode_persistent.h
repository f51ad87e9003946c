// decode_persistent.h: what the host side (cuda_backend.cu) needs of the persistent decode kernel: its
// arguments, sizes, profiling points, weight-type sets and job descriptors, and the tables of its
// instantiations. The kernel itself is decode_persistent.cuh, instantiated in decode_persistent_*.cu (one
// translation unit a weight-type set, so that they compile in parallel).
#pragma once

#include "backend/cuda/cuda_common.cuh"

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
    int tc_fuse;               // the LONG kernels' fused attention and wo on tensor cores up to this many positions
    int att_tc;                // past PD_ONE_SPLIT_MAX cached positions (the LONG kernels): a block per (KV head,
                               // key split) on tensor cores (pd_attention_tc), else per (head, key split)
    int wts_at;                // byte offset of the merge's weights in the dynamic shared memory
    int prefetch;              // idle warps prefetch the next phase's weights into L2 (INFERNO_CUDA_PD_PREFETCH=1)
    int sk_pf;                 // split-K: L2 prefetches (INFERNO_CUDA_PD_SKPF bits; 1: wo by the blocks without an
                               // attention item, 8: each item its wo slice, 16: the items' cached K/V by the qkv
                               // phase's idle warps, 64 / 32: each warp's first gate/up rows at the wo barrier,
                               // 128: the qkv phase's idle warps copy the gate/up norm weights to a.nw_at)
    float eps, att_scale;
    float *x;                  // residual stream (E), updated in place (split-K: alternately with x2)
    float *x2;                 // split-K: the second residual buffer (E)
    int sk;                    // split-K wo and down over the layers' column copies (pd_splitk)
    int sk_at, sk_umax;        // split-K: byte offset of its shared area; units of 16 a block multiplies at most
    int nw_at;                 // split-K: byte offset of the next stage's norm weights in shared memory (0: read
                               // from global memory by the stage)
    const float *rope;         // (n_rot) cos/sin pairs of the token's position
    const int32_t *ints;       // pos, seq, cell, out_row of the one token
    int32_t *seq_cells;        // (n_seq, n_ctx) cell of each position; every block enters the token's own at
                               // its start (the same value: no ordering between blocks needed)
    __half *kc, *vc;           // layer 0 of the GPU layers' cache; layer l at + l * n_ctx * KV
    float *q;                  // (Q)
    float *att;                // partials (n_head, splits, hd + 2)
    float *xb;                 // the attention output (Q) of one-split steps; at the end the final-norm state (E)
    float *hb;                 // SwiGLU output (F)
    float *logits;             // (n_vocab); pinned host memory when head_stage (written once, in whole lines)
    int head_stage;            // the block's head rows gathered in shared memory after the output norm's input
                               // (xs_f + E) and written out together
    unsigned *bar;             // [0] barrier arrivals, [1] blocks done; zero between launches
    unsigned *kv_ready;        // (n_head_kv) q/k/v pairs written a KV head over the step's layers, zero
                               // between launches (INFERNO_CUDA_PD_FLAGS=1); NULL: a grid barrier after qkv
    long long *trace;          // INFERNO_CUDA_PROFILE=3: block 0's clock at each phase edge, else NULL
    long long *tl;             // INFERNO_CUDA_PROFILE=4: every block's (global timer, clock) at each PD_TL_ point
    // The weight ring (sm_90, k_decode_persistent<true>): ring_bytes of dynamic shared memory at ring_at; the
    // blocks' job tables (made by the host, job_stride jobs a block, job_count[b] of them for block b) are
    // copied to jobs_at, the layer table to tab_at.
    unsigned ring_at, ring_bytes, tab_at, jobs_at;
    const struct pd_jobd *jobs;
    const int *job_count;
    int job_stride;
} pd_args;

// Phase edges block 0 records with INFERNO_CUDA_PROFILE=3: PD_EDGES a layer, then 3 for the head.
enum { PD_T_START, PD_T_QKV_STAGE, PD_T_QKV, PD_T_QKV_SYNC, PD_T_ATT, PD_T_ATT_SYNC, PD_T_WO_COPY, PD_T_WO,
       PD_T_WO_SYNC, PD_T_GU_STAGE, PD_T_GU, PD_T_GU_SYNC, PD_T_DOWN_STAGE, PD_T_DOWN, PD_EDGES };

// Points of the per-block timeline (INFERNO_CUDA_PROFILE=4), PD_TL a layer (the head: start, staged, done).
// Stages end with a __syncthreads and arrivals follow one, so each point is the whole block's.
enum { PD_TL_START, PD_TL_QKV_STAGED, PD_TL_QKV_ARRIVE, PD_TL_QKV_RELEASE, PD_TL_ATT_ARRIVE, PD_TL_ATT_RELEASE,
       PD_TL_WO_STAGED, PD_TL_WO_ARRIVE, PD_TL_WO_RELEASE, PD_TL_GU_STAGED, PD_TL_GU_ARRIVE, PD_TL_GU_RELEASE,
       PD_TL_DOWN_STAGED, PD_TL_DOWN_ARRIVE, PD_TL,
       PD_TL_POSTED = PD_TL, PD_TL_ALL = PD_TL + 5 }; // then each barrier's posted arrival (after the release add)

// Sets of weight types, a bit per ggml type id (the TM an instantiation is built for).
#define PD_T(t) (1u << (t))
#define PD_HAS(TM, t) (((TM) >> (t)) & 1u)
#define PD_ALL (PD_T(T_F32) | PD_T(T_F16) | PD_T(T_Q4_0) | PD_T(T_Q8_0) | PD_T(T_Q4_K) | PD_T(T_Q6_K))
// The instantiations besides PD_ALL: Q8_0 files, Q4_K_M-style files, Q8_0 with a Q6_K head, Q4_0 with a Q8_0
// or Q6_K head, F16 (also the files the GPU converts to F16 at upload, their Q6_K matrices kept).
#define PD_TS_Q8 PD_T(T_Q8_0)
#define PD_TS_K (PD_T(T_Q4_K) | PD_T(T_Q6_K))
#define PD_TS_Q8_0 (PD_T(T_Q8_0) | PD_T(T_Q6_K))
#define PD_TS_Q4_0 (PD_T(T_Q4_0) | PD_T(T_Q8_0) | PD_T(T_Q6_K))
#define PD_TS_F16 (PD_T(T_F16) | PD_T(T_Q6_K))

// The stage (pd_stage) holds PD_STAGE_CHUNKS chunks of 8 values a thread: widths up to PD_STAGE_MAX.
#define PD_STAGE_CHUNKS 4
#define PD_STAGE_MAX (PD_STAGE_CHUNKS * PD_THREADS * 8)

// The weight ring (decode_persistent.cuh):
#define PD_SLOTS 16 // jobs in flight at most (one mbarrier each)
#define PD_ROPE_MAX 256 // RoPE values (n_rot) the ring kernel keeps in shared memory
#define PD_XRES_MAX 64  // residual rows a block owns, at most
enum { PD_PH_QKV, PD_PH_WO, PD_PH_GU, PD_PH_DOWN, PD_PH_HEAD };

// A job of a block's table, planned by the host (pd_plan in cuda_backend.cu): the rows of segment m (q, k, v;
// gate, up; or the phase's one matrix) are [r0[m], r0[m] + n[m]); the copies bring, one after the other
// from the job's ring offset, the quant then the scale plane of each non-empty segment. The job may be
// issued once the block has read `after` of its jobs (its space and its mbarrier slot are free then).
typedef struct pd_jobd {
    const void *src[6]; // NULL: no copy
    unsigned cb[6];     // bytes of each copy
    unsigned off, bytes;
    int after, l, ph;   // the head: l = n_layers, ph = PD_PH_HEAD
    int r0[3], n[3];
} pd_jobd;

// The kernel's instantiations (k_decode_persistent<RING, TM, SK, PROF, LONG>, decode_persistent.cuh).
typedef void (*pd_fn_t)(const pd_args);
// Split-K for the weight types tm: fn[LONG][PROF] (LONG 0: up to PD_ONE_SPLIT_MAX cached positions, 1: past
// them, head sizes 32 and 64); hd128: the long form for head size 128 (profiled: pd_k_hd128_prof, built for
// every type only). pd_kernel_for picks the smallest set that holds a model's types.
typedef struct {
    unsigned tm;
    pd_fn_t fn[2][2], hd128;
} pd_kset;
extern const pd_kset pd_kset_q8, pd_kset_k, pd_kset_q8_0, pd_kset_q4_0, pd_kset_f16, pd_kset_all;
// Every type, by rows (no split-K) or with the weight ring: pd_k_rows[RING][PROF].
extern const pd_fn_t pd_k_rows[2][2];
extern const pd_fn_t pd_k_hd128_prof;
