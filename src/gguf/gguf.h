// gguf.h: reader for GGUF files, versions 1, 2 and 3, as borrowed views into a read-only mmap.
//
// File layout (all little-endian):
//   magic "GGUF" (4 bytes) | version u32 | n_tensors | n_kv         (v1: u32 counts, v2/v3: u64)
//   n_kv x { key: string, value_type u32, value }                   (string = length + bytes, no NUL;
//                                                                     v1: u32 length, v2/v3: u64)
//   n_tensors x { name: string, n_dims u32, ne[n_dims] (v1: u32, v2/v3: u64), type u32, offset u64 }
//   padding to general.alignment (default 32) | tensor data; each tensor at data_start + offset,
//   offsets multiples of the alignment.
// Array value: elem_type u32, count (u32 in v1, u64 after), then count elements (nested arrays allowed
// by the spec; this reader accepts them and skips their contents).
//
// The reader treats the file as hostile: every count and length is checked against the bytes left
// before anything is allocated; tensor extents are checked against the file size with overflow-safe
// arithmetic; duplicate keys and tensor names, unknown value or tensor types, bad alignment and
// offsets past the end are errors. Stricter than ggml, and never produced by its writers: zero
// dimensions (the spec gives no meaning to them), overlapping tensor data, and bool bytes other than
// 0/1 (the spec calls them invalid) are errors too. It leaves out writing (see gguf_writer, later) and
// any notion of model architecture.
#ifndef INFERNO_GGUF_H
#define INFERNO_GGUF_H

#include "core/core.h"
#include "quant/quant.h"

typedef enum {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT
} gguf_type;

#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32

// Caps on hostile input (each also bounded by the bytes left in the file). Keys and tensor names follow
// the spec's limits; string values allow a whole embedded tokenizer.json; string arrays allow any real
// vocabulary or merge list (a few hundred thousand) with room to spare.
#define GGUF_MAX_KEY_LEN 65535u           // bytes, spec limit
#define GGUF_MAX_NAME_LEN 64u             // tensor name bytes, spec limit
#define GGUF_MAX_STRING_LEN (16u << 20)   // bytes of one string value or array element
#define GGUF_MAX_ARRAY_STRINGS (1u << 22) // elements of a top-level string array (views allocated)
#define GGUF_MAX_ARRAY_DEPTH 8            // nesting of arrays inside arrays
#define GGUF_MAX_KV (1u << 16)            // metadata entries (real files have under 100)
#define GGUF_MAX_TENSORS (1u << 20)       // tensor infos

// A string inside the mapping: not NUL-terminated.
typedef struct {
    const char *ptr;
    uint64_t len;
} gguf_str;

typedef struct {
    char *key;       // NUL-terminated copy (keys with embedded NUL are rejected)
    gguf_type type;  // value type
    union {
        uint64_t u64;  // UINT8/16/32/64 and BOOL (0/1), zero-extended
        int64_t i64;   // INT8/16/32/64, sign-extended
        double f64;    // FLOAT32/64
        gguf_str str;  // STRING
    } v;
    // ARRAY only:
    gguf_type arr_type;     // element type
    uint64_t arr_n;         // element count
    const void *arr_data;   // first element in the mapping, unaligned (read with gguf_arr_* or memcpy)
    gguf_str *arr_strs;     // STRING arrays: arr_n views, owned by the file handle
} gguf_kv;

typedef struct {
    char *name;                   // NUL-terminated copy
    uint32_t n_dims;              // 1..GGUF_MAX_DIMS
    int64_t ne[GGUF_MAX_DIMS];    // elements per dimension, ggml order (ne[0] = row length); unused = 1
    inf_type type;                // tensor type (see quant.h)
    uint64_t offset;              // relative to the start of the data section
    uint64_t n_elements;
    uint64_t n_bytes;
    const void *data;             // view into the mapping
    // Legacy v1/v2 files may quantize a tensor as one flat run of blocks whose rows are not whole blocks
    // (ne[0] % block_size != 0, n_elements % block_size == 0). Row-wise kernels cannot run such a tensor;
    // the model loader dequantizes it whole. Never set for v3 files, which must have whole-block rows.
    bool flat_blocks;
} gguf_tensor;

typedef struct gguf_file gguf_file;

// Opens and maps path, parses and validates everything. On failure the message names the file and the
// problem ("m.gguf: tensor 'blk.0.attn_q.weight': data extends past end of file (offset ...)").
inf_status gguf_open(const char *path, gguf_file **out);
// Same over a caller-owned buffer (tests, fuzzing); the buffer must outlive the handle.
inf_status gguf_open_memory(const void *data, size_t size, const char *label, gguf_file **out);
void gguf_close(gguf_file *f);

uint32_t gguf_version(const gguf_file *f);
uint64_t gguf_file_size(const gguf_file *f);
uint64_t gguf_alignment(const gguf_file *f);
// Start of the tensor data section in the file: the end of the tensor infos rounded up to the alignment.
// A file without tensors may end before that point (vocab-only files carry no padding); then this is
// the file size.
uint64_t gguf_data_offset(const gguf_file *f);
const void *gguf_base(const gguf_file *f);     // start of the mapping

// Entries in file order; *_at returns NULL for an index out of range. Pointers live until gguf_close.
int64_t gguf_n_kv(const gguf_file *f);
const gguf_kv *gguf_kv_at(const gguf_file *f, int64_t i);
const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key); // NULL if absent

// Typed lookups. Return INF_OK and set *out; INF_ERR_FORMAT (key named in the message) when the key
// exists with a type that cannot represent the request without loss (integers convert between widths
// when the value fits; floats accept float32/float64); found_out (may be NULL) says whether it existed.
// An absent key leaves *out unchanged and returns INF_OK with *found_out = false.
inf_status gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, bool *found_out);
inf_status gguf_get_i64(const gguf_file *f, const char *key, int64_t *out, bool *found_out);
inf_status gguf_get_f32(const gguf_file *f, const char *key, float *out, bool *found_out);
inf_status gguf_get_bool(const gguf_file *f, const char *key, bool *out, bool *found_out);
// String value copied into a NUL-terminated buffer owned by the file handle (*out borrowed, valid until
// gguf_close). A value with an embedded NUL byte is INF_ERR_FORMAT here (use kv->v.str for raw bytes).
inf_status gguf_get_str(const gguf_file *f, const char *key, const char **out, bool *found_out);
// Array lookup: *out is the entry when key is an array of elem_type; INF_ERR_FORMAT (key named) when it
// exists as anything else. Same found_out contract as above.
inf_status gguf_get_arr(const gguf_file *f, const char *key, gguf_type elem_type, const gguf_kv **out,
                        bool *found_out);
// Element i (< arr_n) of a fixed-size array, widened like scalar values; arr_data is not aligned, so
// read elements through these (or memcpy). u64: unsigned and bool arrays; i64: signed; f64: float32/64.
// Wrong kind or index out of range asserts.
uint64_t gguf_arr_u64(const gguf_kv *kv, uint64_t i);
int64_t gguf_arr_i64(const gguf_kv *kv, uint64_t i);
double gguf_arr_f64(const gguf_kv *kv, uint64_t i);

int64_t gguf_n_tensors(const gguf_file *f);
const gguf_tensor *gguf_tensor_at(const gguf_file *f, int64_t i);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name); // NULL if absent

const char *gguf_type_name(gguf_type t); // "u8", "string", "array", ...

#endif // INFERNO_GGUF_H
