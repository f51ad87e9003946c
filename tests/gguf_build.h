// gguf_build.h: a small in-memory GGUF writer for tests, so any test can craft valid or deliberately
// broken files byte by byte (header-only; every function is static inline so unused ones cost nothing).
//
// It writes exactly what it is told: counts in the header are the caller's claim and are not checked
// against what follows, which is the point when building broken files. Counts, string lengths, array
// lengths and dimensions are u32 when the version is 1 and u64 otherwise, as in the format.
// Left out: any validation, and computing tensor offsets or sizes (tests know their shapes).
//
// Typical valid file:
//   gguf_build b; gb_init(&b, 3);
//   gb_header(&b, 1, 1);                      // 1 tensor, 1 kv
//   gb_kv_str(&b, "general.architecture", "llama");
//   gb_tensor_info(&b, "w", 1, (int64_t[]){8}, 0 /* F32 */, 0);
//   gb_pad(&b, 32); gb_zeros(&b, 8 * 4);
//   ... gguf_open_memory(b.data, b.len, "t.gguf", &f) ...; gb_free(&b);
#ifndef INFERNO_TESTS_GGUF_BUILD_H
#define INFERNO_TESTS_GGUF_BUILD_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Value type ids as written in files (same numbers as gguf_type in src/gguf/gguf.h).
enum {
    GB_U8 = 0,
    GB_I8 = 1,
    GB_U16 = 2,
    GB_I16 = 3,
    GB_U32 = 4,
    GB_I32 = 5,
    GB_F32 = 6,
    GB_BOOL = 7,
    GB_STRING = 8,
    GB_ARRAY = 9,
    GB_U64 = 10,
    GB_I64 = 11,
    GB_F64 = 12,
};

#define GB_MAX_BYTES ((size_t)64 << 20) // cap on a built file; tests never need more

typedef struct {
    uint8_t *data;
    size_t len;
    size_t cap;
    uint32_t version; // 1, 2 or 3 (or anything, to write an unsupported version)
} gguf_build;

static inline void gb_init(gguf_build *b, uint32_t version) {
    memset(b, 0, sizeof *b);
    b->version = version;
}

static inline void gb_free(gguf_build *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

// Appends n bytes; aborts the test program on allocation failure or past GB_MAX_BYTES (test code only).
static inline void gb_bytes(gguf_build *b, const void *p, size_t n) {
    if (n > GB_MAX_BYTES - b->len) {
        fprintf(stderr, "gguf_build: file larger than %zu bytes\n", GB_MAX_BYTES);
        abort();
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        uint8_t *d = realloc(b->data, cap);
        if (!d) abort();
        b->data = d;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
}

static inline void gb_u8(gguf_build *b, uint8_t v) { gb_bytes(b, &v, 1); }
static inline void gb_u16(gguf_build *b, uint16_t v) { gb_bytes(b, &v, 2); } // little-endian hosts only
static inline void gb_u32(gguf_build *b, uint32_t v) { gb_bytes(b, &v, 4); }
static inline void gb_u64(gguf_build *b, uint64_t v) { gb_bytes(b, &v, 8); }
static inline void gb_f32(gguf_build *b, float v) { gb_bytes(b, &v, 4); }
static inline void gb_f64(gguf_build *b, double v) { gb_bytes(b, &v, 8); }

static inline void gb_zeros(gguf_build *b, size_t n) {
    static const uint8_t z[256];
    while (n) {
        size_t k = n < sizeof z ? n : sizeof z;
        gb_bytes(b, z, k);
        n -= k;
    }
}

// A count or length field: u32 in v1 (truncating, so tests can also write wrapped values), u64 after.
static inline void gb_len(gguf_build *b, uint64_t n) {
    if (b->version == 1)
        gb_u32(b, (uint32_t)n);
    else
        gb_u64(b, n);
}

static inline void gb_strn(gguf_build *b, const char *s, size_t n) {
    gb_len(b, n);
    gb_bytes(b, s, n);
}

static inline void gb_str(gguf_build *b, const char *s) { gb_strn(b, s, strlen(s)); }

static inline void gb_header(gguf_build *b, uint64_t n_tensors, uint64_t n_kv) {
    gb_bytes(b, "GGUF", 4);
    gb_u32(b, b->version);
    gb_len(b, n_tensors);
    gb_len(b, n_kv);
}

// Key and value type; the caller writes the value.
static inline void gb_kv_head(gguf_build *b, const char *key, uint32_t type) {
    gb_str(b, key);
    gb_u32(b, type);
}

static inline void gb_kv_u8(gguf_build *b, const char *k, uint8_t v) {
    gb_kv_head(b, k, GB_U8);
    gb_u8(b, v);
}
static inline void gb_kv_i8(gguf_build *b, const char *k, int8_t v) {
    gb_kv_head(b, k, GB_I8);
    gb_u8(b, (uint8_t)v);
}
static inline void gb_kv_u16(gguf_build *b, const char *k, uint16_t v) {
    gb_kv_head(b, k, GB_U16);
    gb_u16(b, v);
}
static inline void gb_kv_i16(gguf_build *b, const char *k, int16_t v) {
    gb_kv_head(b, k, GB_I16);
    gb_u16(b, (uint16_t)v);
}
static inline void gb_kv_u32(gguf_build *b, const char *k, uint32_t v) {
    gb_kv_head(b, k, GB_U32);
    gb_u32(b, v);
}
static inline void gb_kv_i32(gguf_build *b, const char *k, int32_t v) {
    gb_kv_head(b, k, GB_I32);
    gb_u32(b, (uint32_t)v);
}
static inline void gb_kv_u64(gguf_build *b, const char *k, uint64_t v) {
    gb_kv_head(b, k, GB_U64);
    gb_u64(b, v);
}
static inline void gb_kv_i64(gguf_build *b, const char *k, int64_t v) {
    gb_kv_head(b, k, GB_I64);
    gb_u64(b, (uint64_t)v);
}
static inline void gb_kv_f32(gguf_build *b, const char *k, float v) {
    gb_kv_head(b, k, GB_F32);
    gb_f32(b, v);
}
static inline void gb_kv_f64(gguf_build *b, const char *k, double v) {
    gb_kv_head(b, k, GB_F64);
    gb_f64(b, v);
}
static inline void gb_kv_bool(gguf_build *b, const char *k, bool v) {
    gb_kv_head(b, k, GB_BOOL);
    gb_u8(b, v);
}
static inline void gb_kv_str(gguf_build *b, const char *k, const char *v) {
    gb_kv_head(b, k, GB_STRING);
    gb_str(b, v);
}

// Array header (element type and count); the caller writes the elements.
static inline void gb_arr_head(gguf_build *b, uint32_t elem_type, uint64_t n) {
    gb_u32(b, elem_type);
    gb_len(b, n);
}

static inline void gb_kv_arr_str(gguf_build *b, const char *k, const char *const *v, size_t n) {
    gb_kv_head(b, k, GB_ARRAY);
    gb_arr_head(b, GB_STRING, n);
    for (size_t i = 0; i < n; i++) gb_str(b, v[i]);
}

static inline void gb_kv_arr_f32(gguf_build *b, const char *k, const float *v, size_t n) {
    gb_kv_head(b, k, GB_ARRAY);
    gb_arr_head(b, GB_F32, n);
    for (size_t i = 0; i < n; i++) gb_f32(b, v[i]);
}

static inline void gb_kv_arr_i32(gguf_build *b, const char *k, const int32_t *v, size_t n) {
    gb_kv_head(b, k, GB_ARRAY);
    gb_arr_head(b, GB_I32, n);
    for (size_t i = 0; i < n; i++) gb_u32(b, (uint32_t)v[i]);
}

// One tensor info: name, n_dims, ne[0..n_dims), ggml type id, offset relative to the data section.
static inline void gb_tensor_info(gguf_build *b, const char *name, uint32_t n_dims, const int64_t *ne,
                                  uint32_t type, uint64_t offset) {
    gb_str(b, name);
    gb_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) gb_len(b, (uint64_t)ne[d]);
    gb_u32(b, type);
    gb_u64(b, offset);
}

// Zero padding up to the next multiple of alignment (the start of the data section).
static inline void gb_pad(gguf_build *b, size_t alignment) {
    size_t rem = b->len % alignment;
    if (rem) gb_zeros(b, alignment - rem);
}

// Overwrites bytes already written (to corrupt a field at a known position).
static inline void gb_patch(gguf_build *b, size_t pos, const void *p, size_t n) {
    if (pos > b->len || n > b->len - pos) abort();
    memcpy(b->data + pos, p, n);
}

#endif // INFERNO_TESTS_GGUF_BUILD_H
