// quantize_int.h: internals shared by the model writers (quantize.c, synth.c): llama.cpp's file-type
// names and per-tensor type rules, and the threaded engine that turns rows of F32 into the chosen tensor
// types and streams them into a gguf_writer. Not part of the public API (see inf_quantize_file and
// inf_synth_model in inferno.h).
#ifndef INFERNO_MODEL_QUANTIZE_INT_H
#define INFERNO_MODEL_QUANTIZE_INT_H

#include "gguf/gguf_write.h"

// llama.cpp's llama_ftype ids (written to general.file_type).
enum {
    QUANT_FTYPE_ALL_F32 = 0,
    QUANT_FTYPE_F16 = 1,
    QUANT_FTYPE_Q4_0 = 2,
    QUANT_FTYPE_Q4_1 = 3,
    QUANT_FTYPE_Q8_0 = 7,
    QUANT_FTYPE_Q5_0 = 8,
    QUANT_FTYPE_Q5_1 = 9,
    QUANT_FTYPE_Q2_K = 10,
    QUANT_FTYPE_Q3_K_S = 11,
    QUANT_FTYPE_Q3_K_M = 12,
    QUANT_FTYPE_Q3_K_L = 13,
    QUANT_FTYPE_Q4_K_S = 14,
    QUANT_FTYPE_Q4_K_M = 15,
    QUANT_FTYPE_Q5_K_S = 16,
    QUANT_FTYPE_Q5_K_M = 17,
    QUANT_FTYPE_Q6_K = 18,
    QUANT_FTYPE_BF16 = 32,
};

typedef struct {
    const char *name; // canonical name, e.g. "Q4_K_M"
    uint32_t ftype;   // QUANT_FTYPE_*
    inf_type base;    // type of the tensors the rules leave alone
} quant_ftype;

// Looks up a type name, case-insensitively, as llama-quantize accepts it: the canonical names and the
// aliases Q3_K, Q4_K, Q5_K (= the _M mixes). NULL when unknown.
const quant_ftype *quant_ftype_find(const char *name);
// "F32, F16, BF16, Q4_0, ..." for error messages and help. Static.
const char *quant_ftype_list(void);

// What the type rules need to know about the model (from its metadata or its shape).
typedef struct {
    const char *arch; // general.architecture ("" if unknown)
    int n_layer;      // {arch}.block_count
    int n_head;       // {arch}.attention.head_count
    int n_head_kv;    // {arch}.attention.head_count_kv
    int n_expert;     // {arch}.expert_count (0 when absent)
} quant_hparams;

typedef struct {
    const char *name;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS]; // ggml order, unused dimensions 1
    inf_type type;             // type of the source data
} quant_tensor;

// Chooses each tensor's output type as llama-quantize does (llama_model_quantize_impl and
// llama_tensor_get_type, without an importance matrix or user overrides): out[i] == t[i].type means the
// tensor is kept as it is. Fails (naming the tensor) when a converted tensor's rows do not fit the chosen
// type's blocks and no fallback applies (always the case with pure), or when the rules need hp->n_layer
// and it is unknown.
inf_status quant_choose_types(const quant_ftype *ft, bool pure, const quant_hparams *hp,
                              const quant_tensor *t, int64_t n, inf_type *out);

// Rows [row0, row0 + nrows) of tensor i as F32 (ne[0] floats per row): a pointer into the source's own
// storage, or scratch (room for nrows * ne[0] floats) after filling it. Called by several threads at once
// for disjoint rows, so it must not touch shared mutable state.
typedef const float *(*quant_rows_fn)(void *user, int64_t i, int64_t row0, int64_t nrows, float *scratch);

typedef struct {
    quant_rows_fn rows;
    void *user;
    // raw[i]: tensor i's bytes in its source type, copied as they are when out[i] == t[i].type. NULL (the
    // whole array, or an entry) means the tensor always goes through rows() and the quantizer.
    const void *const *raw;
    int n_threads;     // >= 1
    const char *label; // names the source in error messages (the input path, "synth micro", ...)
} quant_source;

typedef struct {
    uint64_t bytes_in;  // source bytes (F32 for generated tensors)
    uint64_t bytes_out; // tensor bytes written, without padding
} quant_stats;

// Adds every tensor info to w, then writes all tensor data: rows converted by n_threads threads, chunk by
// chunk (at most a few tens of MiB in memory at a time), so no tensor is ever held whole. Source rows with
// NaN or infinity are an error naming the tensor and row (llama.cpp refuses such files too). stats may be
// NULL. The metadata must be complete before this is called.
inf_status quant_write_tensors(gguf_writer *w, const quant_tensor *t, const inf_type *out, int64_t n,
                               const quant_source *src, quant_stats *stats);

// Online cores, or n when n > 0; capped at 256.
int quant_thread_count(int n);

#endif // INFERNO_MODEL_QUANTIZE_INT_H
