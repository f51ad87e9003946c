// fuzz_gguf.c: libFuzzer target for the GGUF reader. Each input is opened with gguf_open_memory from an
// exact-size heap copy (so a read one byte past the end is an AddressSanitizer report even when the
// fuzzer's own buffer has slack); on success every kv and tensor is walked through every accessor and
// the views are checked to lie inside the input. A failure must come with a message that starts with
// the label. Violations abort, which the fuzzer records as a crash.
//
// Left out: gguf_open (the mmap path differs only in how the bytes arrive).
#include "gguf/gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_LABEL "fuzz.gguf"

static void fuzz_require(int cond, const char *what) {
    if (!cond) {
        fprintf(stderr, "fuzz_gguf: invariant failed: %s (%s)\n", what, inf_last_error());
        abort();
    }
}

static int in_input(const void *p, uint64_t n, const uint8_t *base, uint64_t size) {
    const uint8_t *q = p;
    return q >= base && (uint64_t)(q - base) <= size && n <= size - (uint64_t)(q - base);
}

static uint64_t walk_kv(const gguf_file *f, const gguf_kv *kv, const uint8_t *base, uint64_t size) {
    uint64_t sink = 0;
    uint32_t u;
    int64_t i;
    float x;
    bool b;
    const char *s;
    const gguf_kv *arr;
    fuzz_require(gguf_find_kv(f, kv->key) == kv, "find_kv returns the entry");
    fuzz_require(kv->key[0] != '\0', "non-empty key");
    if (gguf_get_u32(f, kv->key, &u, NULL) == INF_OK) sink += u;
    if (gguf_get_i64(f, kv->key, &i, NULL) == INF_OK) sink += (uint64_t)i;
    if (gguf_get_f32(f, kv->key, &x, NULL) == INF_OK) sink += x > 0;
    if (gguf_get_bool(f, kv->key, &b, NULL) == INF_OK) sink += b;
    if (gguf_get_str(f, kv->key, &s, NULL) == INF_OK) sink += strlen(s);
    sink += strlen(gguf_type_name(kv->type));
    if (kv->type == GGUF_TYPE_STRING)
        fuzz_require(in_input(kv->v.str.ptr, kv->v.str.len, base, size), "string view");
    if (kv->type != GGUF_TYPE_ARRAY) return sink;
    fuzz_require(gguf_get_arr(f, kv->key, kv->arr_type, &arr, NULL) == INF_OK && arr == kv, "get_arr");
    for (uint64_t j = 0; j < kv->arr_n; j++) {
        switch (kv->arr_type) {
        case GGUF_TYPE_UINT8:
        case GGUF_TYPE_UINT16:
        case GGUF_TYPE_UINT32:
        case GGUF_TYPE_UINT64:
        case GGUF_TYPE_BOOL: sink += gguf_arr_u64(kv, j); break;
        case GGUF_TYPE_INT8:
        case GGUF_TYPE_INT16:
        case GGUF_TYPE_INT32:
        case GGUF_TYPE_INT64: sink += (uint64_t)gguf_arr_i64(kv, j); break;
        case GGUF_TYPE_FLOAT32:
        case GGUF_TYPE_FLOAT64: sink += gguf_arr_f64(kv, j) > 0; break;
        case GGUF_TYPE_STRING:
            fuzz_require(in_input(kv->arr_strs[j].ptr, kv->arr_strs[j].len, base, size), "array string view");
            sink += kv->arr_strs[j].len;
            break;
        default: return sink; // nested arrays: contents skipped by design
        }
    }
    return sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    gguf_file *f = NULL;
    inf_status st = gguf_open_memory(copy, size, FUZZ_LABEL, &f);
    if (st != INF_OK) {
        fuzz_require(f == NULL, "no handle on failure");
        fuzz_require(st == INF_ERR_FORMAT || st == INF_ERR_UNSUPPORTED, "failure status");
        fuzz_require(strncmp(inf_last_error(), FUZZ_LABEL ": ", strlen(FUZZ_LABEL) + 2) == 0,
                     "message label");
        free(copy);
        return 0;
    }
    volatile uint64_t sink = gguf_version(f) + gguf_alignment(f) + gguf_data_offset(f);
    fuzz_require(gguf_data_offset(f) <= size, "data offset inside the input");
    for (int64_t i = 0; i < gguf_n_kv(f); i++) sink += walk_kv(f, gguf_kv_at(f, i), copy, size);
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        fuzz_require(gguf_find_tensor(f, t->name) == t, "find_tensor returns the tensor");
        fuzz_require(t->n_dims >= 1 && t->n_dims <= GGUF_MAX_DIMS && t->n_bytes > 0, "tensor shape");
        fuzz_require(in_input(t->data, t->n_bytes, copy, size), "tensor data inside the input");
        fuzz_require(t->offset % gguf_alignment(f) == 0, "tensor offset aligned");
        const uint8_t *d = t->data;
        sink += d[0] + d[t->n_bytes - 1];
    }
    (void)sink;
    gguf_close(f);
    free(copy);
    return 0;
}
