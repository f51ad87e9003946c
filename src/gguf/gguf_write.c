// gguf_write.c: the streaming GGUF v3 writer declared in gguf_write.h.
//
// Metadata values are serialized when they are set (value type u32 followed by the payload, exactly as in
// the file), so writing the header is a sequence of copies. Keys and tensor names are looked up through a
// small open-addressing hash index, so copying a file with tens of thousands of entries stays linear.
// Tensor offsets are computed when the header is written, because general.alignment may be set after the
// tensors were added.
//
// Left out: everything gguf_write.h lists (versions 1/2, nested arrays, fsync, rewriting the header).
#include "gguf/gguf_write.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define GW_IO_BUFFER ((size_t)1 << 20) // stdio buffer: large sequential writes

typedef struct {
    char *key;
    uint8_t *val; // value type (u32) + payload, as in the file
    size_t val_len;
} gw_kv;

typedef struct {
    char *name;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    inf_type type;
    uint64_t n_bytes; // unpadded
    uint64_t offset;  // set when the header is written
} gw_tensor;

// Hash index from a name to its position in an array; slots hold borrowed name pointers.
typedef struct {
    const char **names;
    int64_t *idx;
    size_t cap; // power of two, or 0
    size_t used;
} gw_index;

struct gguf_writer {
    char *path;
    char *tmp_path;
    FILE *fp;
    char *iobuf;

    gw_kv *kvs;
    int64_t n_kv, cap_kv;
    size_t meta_bytes; // serialized keys and values (bounded by GGUF_WRITER_MAX_META_BYTES)
    gw_index kv_index;

    gw_tensor *tensors;
    int64_t n_tensors, cap_tensors;
    gw_index tensor_index;

    uint64_t alignment;
    bool header_done;
    uint64_t pos;         // bytes written to the file so far
    int64_t cur;          // tensor whose bytes are being written
    uint64_t cur_written; // bytes of that tensor written so far

    inf_status failed; // sticky failure: INF_OK while healthy
    char *fail_msg;
};

// ---- hash index ----

static uint64_t gw_hash(const char *s) {
    uint64_t h = 1469598103934665603ull; // FNV-1a
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static int64_t gw_index_find(const gw_index *ix, const char *name) {
    if (ix->cap == 0) return -1;
    for (size_t i = (size_t)gw_hash(name) & (ix->cap - 1);; i = (i + 1) & (ix->cap - 1)) {
        if (!ix->names[i]) return -1;
        if (!strcmp(ix->names[i], name)) return ix->idx[i];
    }
}

static void gw_index_put_slot(gw_index *ix, const char *name, int64_t idx) {
    size_t i = (size_t)gw_hash(name) & (ix->cap - 1);
    while (ix->names[i]) i = (i + 1) & (ix->cap - 1);
    ix->names[i] = name;
    ix->idx[i] = idx;
    ix->used++;
}

static void gw_index_free(gw_index *ix) {
    free(ix->names);
    free(ix->idx);
    memset(ix, 0, sizeof *ix);
}

// Empties the index and sizes it for n entries (load factor <= 1/2).
static bool gw_index_reset(gw_index *ix, size_t n) {
    size_t cap = 16;
    while (cap < 2 * n + 2) cap *= 2;
    const char **names = inf_calloc(cap, sizeof *names);
    int64_t *idx = inf_calloc(cap, sizeof *idx);
    if (!names || !idx) {
        free(names);
        free(idx);
        return false;
    }
    gw_index_free(ix);
    ix->names = names;
    ix->idx = idx;
    ix->cap = cap;
    return true;
}

// Adds name -> idx, growing (and rehashing the existing entries) as needed.
static bool gw_index_add(gw_index *ix, const char *name, int64_t idx) {
    if (2 * (ix->used + 1) > ix->cap) {
        gw_index old = *ix;
        memset(ix, 0, sizeof *ix);
        if (!gw_index_reset(ix, old.used + 1 > 8 ? 2 * (old.used + 1) : 8)) {
            *ix = old;
            return false;
        }
        for (size_t i = 0; i < old.cap; i++)
            if (old.names[i]) gw_index_put_slot(ix, old.names[i], old.idx[i]);
        gw_index_free(&old);
    }
    gw_index_put_slot(ix, name, idx);
    return true;
}

// ---- failure handling ----

// Records the current error (set by inf_fail) as the writer's sticky failure and returns it.
static inf_status gw_failed(gguf_writer *w, inf_status st) {
    if (w->failed == INF_OK) {
        w->failed = st;
        w->fail_msg = inf_strdup(inf_last_error());
    }
    return st;
}

static inf_status gw_check(gguf_writer *w) {
    if (w->failed == INF_OK) return INF_OK;
    return inf_fail(w->failed, "%s", w->fail_msg ? w->fail_msg : "earlier write failed");
}

static inf_status gw_io_error(gguf_writer *w, const char *what) {
    int e = errno;
    inf_status st =
        inf_fail(INF_ERR_IO, "%s: %s '%s': %s", w->path, what, w->tmp_path, e ? strerror(e) : "write error");
    return gw_failed(w, st);
}

static inf_status gw_write_raw(gguf_writer *w, const void *p, size_t n) {
    if (n == 0) return INF_OK;
    errno = 0;
    if (fwrite(p, 1, n, w->fp) != n) return gw_io_error(w, "cannot write");
    w->pos += n;
    return INF_OK;
}

static inf_status gw_write_zeros(gguf_writer *w, size_t n) {
    static const uint8_t zeros[64];
    while (n > 0) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        inf_status st = gw_write_raw(w, zeros, k);
        if (st) return st;
        n -= k;
    }
    return INF_OK;
}

static uint64_t gw_pad(uint64_t x, uint64_t align) { return (x + align - 1) / align * align; }

// ---- open / free ----

inf_status gguf_writer_open(const char *path, gguf_writer **out) {
    *out = NULL;
    if (!path || !*path) return inf_fail(INF_ERR_INVALID_ARG, "gguf writer: empty output path");
    gguf_writer *w = inf_calloc(1, sizeof *w);
    if (!w) return inf_fail(INF_ERR_NOMEM, "%s: out of memory", path);
    size_t len = strlen(path);
    w->path = inf_strdup(path);
    w->tmp_path = inf_malloc(len + 5);
    w->iobuf = inf_malloc(GW_IO_BUFFER);
    if (!w->path || !w->tmp_path || !w->iobuf) {
        gguf_writer_free(w);
        return inf_fail(INF_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(w->tmp_path, path, len);
    memcpy(w->tmp_path + len, ".tmp", 5);
    w->alignment = GGUF_DEFAULT_ALIGNMENT;
    errno = 0;
    w->fp = fopen(w->tmp_path, "wb");
    if (!w->fp) {
        inf_status st = inf_fail(INF_ERR_IO, "%s: cannot create '%s': %s", path, w->tmp_path,
                                 errno ? strerror(errno) : "unknown error");
        gguf_writer_free(w);
        return st;
    }
    setvbuf(w->fp, w->iobuf, _IOFBF, GW_IO_BUFFER);
    *out = w;
    return INF_OK;
}

static void gw_release(gguf_writer *w, bool remove_tmp) {
    if (w->fp) {
        fclose(w->fp);
        w->fp = NULL;
    }
    if (remove_tmp && w->tmp_path) unlink(w->tmp_path);
    for (int64_t i = 0; i < w->n_kv; i++) {
        free(w->kvs[i].key);
        free(w->kvs[i].val);
    }
    for (int64_t i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->kvs);
    free(w->tensors);
    gw_index_free(&w->kv_index);
    gw_index_free(&w->tensor_index);
    free(w->iobuf);
    free(w->path);
    free(w->tmp_path);
    free(w->fail_msg);
    free(w);
}

void gguf_writer_free(gguf_writer *w) {
    if (w) gw_release(w, true);
}

// ---- metadata ----

static inf_status gw_meta_open(gguf_writer *w, const char *key) {
    inf_status st = gw_check(w);
    if (st) return st;
    if (w->header_done)
        return inf_fail(INF_ERR_INVALID_ARG, "%s: key '%s' set after tensor data was written", w->path, key);
    size_t len = key ? strlen(key) : 0;
    if (len == 0 || len > GGUF_MAX_KEY_LEN)
        return inf_fail(INF_ERR_INVALID_ARG, "%s: metadata key of %zu bytes (must be 1..%u)", w->path, len,
                        GGUF_MAX_KEY_LEN);
    return INF_OK;
}

bool gguf_writer_remove_kv(gguf_writer *w, const char *key) {
    int64_t i = gw_index_find(&w->kv_index, key);
    if (i < 0) return false;
    w->meta_bytes -= strlen(w->kvs[i].key) + 8 + w->kvs[i].val_len;
    free(w->kvs[i].key);
    free(w->kvs[i].val);
    memmove(&w->kvs[i], &w->kvs[i + 1], (size_t)(w->n_kv - i - 1) * sizeof *w->kvs);
    w->n_kv--;
    if (!strcmp(key, "general.alignment")) w->alignment = GGUF_DEFAULT_ALIGNMENT;
    // Positions after i moved: rebuild the index (removal is rare: one per replaced key).
    if (gw_index_reset(&w->kv_index, (size_t)w->n_kv)) {
        for (int64_t k = 0; k < w->n_kv; k++) gw_index_put_slot(&w->kv_index, w->kvs[k].key, k);
    } else {
        // Out of memory while shrinking: fall back to an empty index and fail the writer, since lookups
        // would now miss keys.
        gw_index_free(&w->kv_index);
        gw_failed(w, inf_fail(INF_ERR_NOMEM, "%s: out of memory", w->path));
    }
    return true;
}

// Takes ownership of val (serialized type + payload). Replaces an existing key by remove + append.
static inf_status gw_meta_put(gguf_writer *w, const char *key, uint8_t *val, size_t val_len) {
    size_t klen = strlen(key);
    // Caps are checked before the old entry goes (conservatively), so a refused value changes nothing.
    if (w->n_kv >= (int64_t)GGUF_MAX_KV || val_len > GGUF_WRITER_MAX_META_BYTES ||
        w->meta_bytes + klen + 8 + val_len > GGUF_WRITER_MAX_META_BYTES) {
        free(val);
        return inf_fail(INF_ERR_NOMEM, "%s: metadata too large at key '%s' (caps: %u keys, %zu bytes)",
                        w->path, key, GGUF_MAX_KV, GGUF_WRITER_MAX_META_BYTES);
    }
    gguf_writer_remove_kv(w, key);
    inf_status st = gw_check(w);
    if (st) {
        free(val);
        return st;
    }
    if (w->n_kv == w->cap_kv) {
        int64_t cap = w->cap_kv ? 2 * w->cap_kv : 32;
        gw_kv *kvs = realloc(w->kvs, (size_t)cap * sizeof *kvs);
        if (!kvs) {
            free(val);
            return inf_fail(INF_ERR_NOMEM, "%s: out of memory", w->path);
        }
        w->kvs = kvs;
        w->cap_kv = cap;
    }
    char *k = inf_strdup(key);
    if (!k || !gw_index_add(&w->kv_index, k, w->n_kv)) {
        free(k);
        free(val);
        return inf_fail(INF_ERR_NOMEM, "%s: out of memory", w->path);
    }
    w->kvs[w->n_kv++] = (gw_kv){.key = k, .val = val, .val_len = val_len};
    w->meta_bytes += klen + 8 + val_len;
    return INF_OK;
}

static inf_status gw_set_scalar(gguf_writer *w, const char *key, gguf_type type, const void *v, size_t size) {
    inf_status st = gw_meta_open(w, key);
    if (st) return st;
    bool is_alignment = !strcmp(key, "general.alignment");
    uint32_t a = 0;
    if (is_alignment) {
        if (type == GGUF_TYPE_UINT32) memcpy(&a, v, 4);
        if (type != GGUF_TYPE_UINT32 || a == 0 || (a & (a - 1)) != 0)
            return inf_fail(INF_ERR_INVALID_ARG, "%s: general.alignment must be a u32 power of two", w->path);
    }
    uint8_t *val = inf_malloc(4 + size);
    if (!val) return inf_fail(INF_ERR_NOMEM, "%s: out of memory", w->path);
    uint32_t t = (uint32_t)type;
    memcpy(val, &t, 4);
    memcpy(val + 4, v, size);
    // After the put: replacing the key first removes the old entry, which resets the alignment.
    if ((st = gw_meta_put(w, key, val, 4 + size))) return st;
    if (is_alignment) w->alignment = a;
    return INF_OK;
}

inf_status gguf_writer_set_u8(gguf_writer *w, const char *key, uint8_t v) {
    return gw_set_scalar(w, key, GGUF_TYPE_UINT8, &v, 1);
}
inf_status gguf_writer_set_i8(gguf_writer *w, const char *key, int8_t v) {
    return gw_set_scalar(w, key, GGUF_TYPE_INT8, &v, 1);
}
inf_status gguf_writer_set_u16(gguf_writer *w, const char *key, uint16_t v) {
    return gw_set_scalar(w, key, GGUF_TYPE_UINT16, &v, 2);
}
inf_status gguf_writer_set_i16(gguf_writer *w, const char *key, int16_t v) {
    return gw_set_scalar(w, key, GGUF_TYPE_INT16, &v, 2);
}
inf_status gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v) {
    return gw_set_scalar(w, key, GGUF_TYPE_UINT32, &v, 4);
}
inf_status gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v) {
    return gw_set_scalar(w, key, GGUF_TYPE_INT32, &v, 4);
}
inf_status gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v) {
    return gw_set_scalar(w, key, GGUF_TYPE_UINT64, &v, 8);
}
inf_status gguf_writer_set_i64(gguf_writer *w, const char *key, int64_t v) {
    return gw_set_scalar(w, key, GGUF_TYPE_INT64, &v, 8);
}
inf_status gguf_writer_set_f32(gguf_writer *w, const char *key, float v) {
    return gw_set_scalar(w, key, GGUF_TYPE_FLOAT32, &v, 4);
}
inf_status gguf_writer_set_f64(gguf_writer *w, const char *key, double v) {
    return gw_set_scalar(w, key, GGUF_TYPE_FLOAT64, &v, 8);
}
inf_status gguf_writer_set_bool(gguf_writer *w, const char *key, bool v) {
    uint8_t b = v ? 1 : 0;
    return gw_set_scalar(w, key, GGUF_TYPE_BOOL, &b, 1);
}

inf_status gguf_writer_set_strn(gguf_writer *w, const char *key, const char *v, size_t len) {
    inf_status st = gw_meta_open(w, key);
    if (st) return st;
    if (len > GGUF_MAX_STRING_LEN)
        return inf_fail(INF_ERR_INVALID_ARG, "%s: key '%s': string of %zu bytes exceeds %u", w->path, key,
                        len, GGUF_MAX_STRING_LEN);
    uint8_t *val = inf_malloc(12 + len);
    if (!val) return inf_fail(INF_ERR_NOMEM, "%s: out of memory", w->path);
    uint32_t t = GGUF_TYPE_STRING;
    uint64_t n = len;
    memcpy(val, &t, 4);
    memcpy(val + 4, &n, 8);
    if (len) memcpy(val + 12, v, len);
    return gw_meta_put(w, key, val, 12 + len);
}

inf_status gguf_writer_set_str(gguf_writer *w, const char *key, const char *v) {
    return gguf_writer_set_strn(w, key, v, strlen(v));
}

// Bytes of one element of a fixed-size type; 0 for STRING, ARRAY and unknown ids.
static size_t gw_elem_size(gguf_type t) {
    switch (t) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64:
    case GGUF_TYPE_INT64:
    case GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

inf_status gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_type elem_type, const void *data,
                               uint64_t n) {
    inf_status st = gw_meta_open(w, key);
    if (st) return st;
    size_t es = gw_elem_size(elem_type);
    if (es == 0)
        return inf_fail(INF_ERR_INVALID_ARG, "%s: key '%s': arrays of %s need their own setter", w->path, key,
                        gguf_type_name(elem_type));
    uint64_t bytes;
    if (!inf_mul_u64(n, es, &bytes) || bytes > GGUF_WRITER_MAX_META_BYTES)
        return inf_fail(INF_ERR_NOMEM, "%s: key '%s': array of %" PRIu64 " elements is too large", w->path,
                        key, n);
    if (elem_type == GGUF_TYPE_BOOL) {
        for (uint64_t i = 0; i < n; i++)
            if (((const uint8_t *)data)[i] > 1)
                return inf_fail(INF_ERR_INVALID_ARG, "%s: key '%s': bool element %" PRIu64 " is not 0 or 1",
                                w->path, key, i);
    }
    // Value layout: type u32 | elem type u32 | count u64 | elements.
    uint8_t *val = inf_malloc(16 + (size_t)bytes);
    if (!val) return inf_fail(INF_ERR_NOMEM, "%s: out of memory", w->path);
    uint32_t t = GGUF_TYPE_ARRAY, et = (uint32_t)elem_type;
    memcpy(val, &t, 4);
    memcpy(val + 4, &et, 4);
    memcpy(val + 8, &n, 8);
    if (bytes) memcpy(val + 16, data, (size_t)bytes);
    return gw_meta_put(w, key, val, 16 + (size_t)bytes);
}

inf_status gguf_writer_set_arr_str(gguf_writer *w, const char *key, const gguf_str *strs, uint64_t n) {
    inf_status st = gw_meta_open(w, key);
    if (st) return st;
    if (n > GGUF_MAX_ARRAY_STRINGS)
        return inf_fail(INF_ERR_NOMEM, "%s: key '%s': %" PRIu64 " strings exceed %u", w->path, key, n,
                        GGUF_MAX_ARRAY_STRINGS);
    uint64_t bytes = 16;
    for (uint64_t i = 0; i < n; i++) {
        if (strs[i].len > GGUF_MAX_STRING_LEN)
            return inf_fail(INF_ERR_INVALID_ARG, "%s: key '%s': string %" PRIu64 " is too long", w->path, key,
                            i);
        bytes += 8 + strs[i].len;
        if (bytes > GGUF_WRITER_MAX_META_BYTES)
            return inf_fail(INF_ERR_NOMEM, "%s: key '%s': string array larger than %zu bytes", w->path, key,
                            GGUF_WRITER_MAX_META_BYTES);
    }
    uint8_t *val = inf_malloc((size_t)bytes);
    if (!val) return inf_fail(INF_ERR_NOMEM, "%s: out of memory", w->path);
    uint32_t t = GGUF_TYPE_ARRAY, et = GGUF_TYPE_STRING;
    memcpy(val, &t, 4);
    memcpy(val + 4, &et, 4);
    memcpy(val + 8, &n, 8);
    size_t at = 16;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len = strs[i].len;
        memcpy(val + at, &len, 8);
        if (len) memcpy(val + at + 8, strs[i].ptr, (size_t)len);
        at += 8 + (size_t)len;
    }
    assert(at == bytes);
    return gw_meta_put(w, key, val, (size_t)bytes);
}

inf_status gguf_writer_copy_kv(gguf_writer *w, const gguf_kv *kv) {
    switch (kv->type) {
    case GGUF_TYPE_UINT8: return gguf_writer_set_u8(w, kv->key, (uint8_t)kv->v.u64);
    case GGUF_TYPE_INT8: return gguf_writer_set_i8(w, kv->key, (int8_t)kv->v.i64);
    case GGUF_TYPE_UINT16: return gguf_writer_set_u16(w, kv->key, (uint16_t)kv->v.u64);
    case GGUF_TYPE_INT16: return gguf_writer_set_i16(w, kv->key, (int16_t)kv->v.i64);
    case GGUF_TYPE_UINT32: return gguf_writer_set_u32(w, kv->key, (uint32_t)kv->v.u64);
    case GGUF_TYPE_INT32: return gguf_writer_set_i32(w, kv->key, (int32_t)kv->v.i64);
    case GGUF_TYPE_UINT64: return gguf_writer_set_u64(w, kv->key, kv->v.u64);
    case GGUF_TYPE_INT64: return gguf_writer_set_i64(w, kv->key, kv->v.i64);
    case GGUF_TYPE_FLOAT32:
        return gguf_writer_set_f32(w, kv->key, (float)kv->v.f64); // exact: read from a float
    case GGUF_TYPE_FLOAT64: return gguf_writer_set_f64(w, kv->key, kv->v.f64);
    case GGUF_TYPE_BOOL: return gguf_writer_set_bool(w, kv->key, kv->v.u64 != 0);
    case GGUF_TYPE_STRING: return gguf_writer_set_strn(w, kv->key, kv->v.str.ptr, (size_t)kv->v.str.len);
    case GGUF_TYPE_ARRAY:
        if (kv->arr_type == GGUF_TYPE_STRING)
            return gguf_writer_set_arr_str(w, kv->key, kv->arr_strs, kv->arr_n);
        if (kv->arr_type == GGUF_TYPE_ARRAY)
            return inf_fail(INF_ERR_UNSUPPORTED, "%s: key '%s': arrays of arrays cannot be written", w->path,
                            kv->key);
        return gguf_writer_set_arr(w, kv->key, kv->arr_type, kv->arr_data, kv->arr_n);
    default:
        return inf_fail(INF_ERR_INVALID_ARG, "%s: key '%s': unknown value type %d", w->path, kv->key,
                        (int)kv->type);
    }
}

int64_t gguf_writer_n_kv(const gguf_writer *w) { return w->n_kv; }

// ---- tensors ----

inf_status gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t n_dims, const int64_t *ne,
                                  inf_type type) {
    inf_status st = gw_check(w);
    if (st) return st;
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > GGUF_WRITER_MAX_NAME_LEN)
        return inf_fail(INF_ERR_INVALID_ARG, "%s: tensor name of %zu bytes (must be 1..%u)", w->path, len,
                        GGUF_WRITER_MAX_NAME_LEN);
    if (w->header_done)
        return inf_fail(INF_ERR_INVALID_ARG, "%s: tensor '%s' added after tensor data was written", w->path,
                        name);
    if (gw_index_find(&w->tensor_index, name) >= 0)
        return inf_fail(INF_ERR_INVALID_ARG, "%s: duplicate tensor '%s'", w->path, name);
    if (w->n_tensors >= (int64_t)GGUF_MAX_TENSORS)
        return inf_fail(INF_ERR_NOMEM, "%s: more than %u tensors", w->path, GGUF_MAX_TENSORS);
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return inf_fail(INF_ERR_INVALID_ARG, "%s: tensor '%s': %u dimensions (must be 1..%d)", w->path, name,
                        n_dims, GGUF_MAX_DIMS);
    const inf_type_traits *tr = inf_type_get((uint32_t)type);
    if (!tr)
        return inf_fail(INF_ERR_UNSUPPORTED, "%s: tensor '%s': type %s has no known size", w->path, name,
                        inf_type_name((uint32_t)type));
    gw_tensor t = {.n_dims = n_dims, .type = type};
    uint64_t rows = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
        if (t.ne[d] < 1)
            return inf_fail(INF_ERR_INVALID_ARG, "%s: tensor '%s': dimension %u is %" PRId64, w->path, name,
                            d, t.ne[d]);
        if (d > 0 && !inf_mul_u64(rows, (uint64_t)t.ne[d], &rows))
            return inf_fail(INF_ERR_INVALID_ARG, "%s: tensor '%s': size overflows", w->path, name);
    }
    if (t.ne[0] % tr->block_size != 0)
        return inf_fail(INF_ERR_INVALID_ARG,
                        "%s: tensor '%s': row length %" PRId64 " is not a multiple of %s's block "
                        "size %" PRId64,
                        w->path, name, t.ne[0], tr->name, tr->block_size);
    uint64_t row_bytes = (uint64_t)(t.ne[0] / tr->block_size) * tr->type_size;
    if (!inf_mul_u64(rows, row_bytes, &t.n_bytes) || t.n_bytes > (UINT64_MAX >> 2))
        return inf_fail(INF_ERR_INVALID_ARG, "%s: tensor '%s': size overflows", w->path, name);
    if (w->n_tensors == w->cap_tensors) {
        int64_t cap = w->cap_tensors ? 2 * w->cap_tensors : 64;
        gw_tensor *ts = realloc(w->tensors, (size_t)cap * sizeof *ts);
        if (!ts) return inf_fail(INF_ERR_NOMEM, "%s: out of memory", w->path);
        w->tensors = ts;
        w->cap_tensors = cap;
    }
    t.name = inf_strdup(name);
    if (!t.name || !gw_index_add(&w->tensor_index, t.name, w->n_tensors)) {
        free(t.name);
        return inf_fail(INF_ERR_NOMEM, "%s: out of memory", w->path);
    }
    w->tensors[w->n_tensors++] = t;
    return INF_OK;
}

int64_t gguf_writer_n_tensors(const gguf_writer *w) { return w->n_tensors; }

uint64_t gguf_writer_tensor_bytes(const gguf_writer *w, int64_t i) {
    assert(i >= 0 && i < w->n_tensors);
    return w->tensors[i].n_bytes;
}

// ---- header and data ----

static inf_status gw_write_u32(gguf_writer *w, uint32_t v) { return gw_write_raw(w, &v, 4); }
static inf_status gw_write_u64(gguf_writer *w, uint64_t v) { return gw_write_raw(w, &v, 8); }

static inf_status gw_write_header(gguf_writer *w) {
    assert(!w->header_done);
    uint64_t off = 0;
    for (int64_t i = 0; i < w->n_tensors; i++) {
        w->tensors[i].offset = off;
        if (!inf_add_u64(off, gw_pad(w->tensors[i].n_bytes, w->alignment), &off))
            return gw_failed(w, inf_fail(INF_ERR_INVALID_ARG, "%s: tensor data overflows", w->path));
    }
    inf_status st;
    if ((st = gw_write_raw(w, "GGUF", 4)) || (st = gw_write_u32(w, 3)) ||
        (st = gw_write_u64(w, (uint64_t)w->n_tensors)) || (st = gw_write_u64(w, (uint64_t)w->n_kv)))
        return st;
    for (int64_t i = 0; i < w->n_kv; i++) {
        const gw_kv *kv = &w->kvs[i];
        size_t klen = strlen(kv->key);
        if ((st = gw_write_u64(w, klen)) || (st = gw_write_raw(w, kv->key, klen)) ||
            (st = gw_write_raw(w, kv->val, kv->val_len)))
            return st;
    }
    for (int64_t i = 0; i < w->n_tensors; i++) {
        const gw_tensor *t = &w->tensors[i];
        size_t nlen = strlen(t->name);
        if ((st = gw_write_u64(w, nlen)) || (st = gw_write_raw(w, t->name, nlen)) ||
            (st = gw_write_u32(w, t->n_dims)))
            return st;
        for (uint32_t d = 0; d < t->n_dims; d++)
            if ((st = gw_write_u64(w, (uint64_t)t->ne[d]))) return st;
        if ((st = gw_write_u32(w, (uint32_t)t->type)) || (st = gw_write_u64(w, t->offset))) return st;
    }
    if ((st = gw_write_zeros(w, (size_t)(gw_pad(w->pos, w->alignment) - w->pos)))) return st;
    w->header_done = true;
    w->cur = 0;
    w->cur_written = 0;
    return INF_OK;
}

inf_status gguf_writer_write(gguf_writer *w, const void *data, size_t n) {
    inf_status st = gw_check(w);
    if (st) return st;
    if (!w->header_done && (st = gw_write_header(w))) return st;
    const uint8_t *p = data;
    while (n > 0) {
        if (w->cur >= w->n_tensors)
            return gw_failed(
                w, inf_fail(INF_ERR_INVALID_ARG, "%s: %zu bytes written past the last tensor", w->path, n));
        gw_tensor *t = &w->tensors[w->cur];
        uint64_t left = t->n_bytes - w->cur_written;
        size_t take = n < left ? n : (size_t)left;
        if ((st = gw_write_raw(w, p, take))) return st;
        p += take;
        n -= take;
        w->cur_written += take;
        if (w->cur_written == t->n_bytes) {
            if ((st = gw_write_zeros(w, (size_t)(gw_pad(t->n_bytes, w->alignment) - t->n_bytes)))) return st;
            w->cur++;
            w->cur_written = 0;
        }
    }
    return INF_OK;
}

inf_status gguf_writer_finish(gguf_writer *w) {
    inf_status st = gw_check(w);
    if (!st && !w->header_done) st = gw_write_header(w);
    if (!st && w->cur < w->n_tensors) {
        const gw_tensor *t = &w->tensors[w->cur];
        st = inf_fail(INF_ERR_INVALID_ARG, "%s: tensor '%s' got %" PRIu64 " of %" PRIu64 " bytes", w->path,
                      t->name, w->cur_written, t->n_bytes);
    }
    if (!st) {
        errno = 0;
        if (fflush(w->fp) != 0 || ferror(w->fp)) st = gw_io_error(w, "cannot write");
    }
    if (!st) {
        FILE *fp = w->fp;
        w->fp = NULL;
        errno = 0;
        if (fclose(fp) != 0) st = gw_io_error(w, "cannot close");
    }
    if (!st) {
        errno = 0;
        if (rename(w->tmp_path, w->path) != 0) {
            int e = errno;
            st =
                inf_fail(INF_ERR_IO, "%s: cannot rename '%s' onto it: %s", w->path, w->tmp_path, strerror(e));
        }
    }
    gw_release(w, st != INF_OK);
    return st;
}
