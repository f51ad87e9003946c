// gguf.c: parses and validates a GGUF file (v1, v2, v3) held in a read-only mmap or a caller's buffer,
// exposing keys, values and tensors as views into it.
//
// Parsing is one forward pass with a bounds-checked cursor: every length or count is compared with the
// bytes left before it is used, and allocations are sized by counts that already passed that check.
// Keys and tensor names are validated and copied; lookups and duplicate detection use name-sorted
// pointer arrays (O(n log n) worst case, so a crafted file cannot make the reader quadratic the way a
// hash table with a known hash function could be made to). Values, string-array elements and tensor
// data stay in the mapping.
//
// Left out: writing, big-endian files (detected and refused), endianness conversion of tensor data,
// and any interpretation of keys beyond general.alignment. A file that shrinks while mapped raises
// SIGBUS; that is outside what a reader can defend against.
#include "gguf/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf.c reads little-endian fields and exposes little-endian views in place"
#endif

typedef struct {
    gguf_kv kv;
    uint64_t pos; // file offset of the entry (its key length field)
    char *cstr;   // STRING values: NUL-terminated copy inside the handle's string arena
    bool has_nul; // STRING values holding a NUL byte (gguf_get_str refuses them)
} kv_entry;

typedef struct {
    gguf_tensor t;
    uint64_t pos; // file offset of the tensor info
} tensor_entry;

struct gguf_file {
    char *label; // file name for messages
    const uint8_t *base;
    uint64_t size;
    void *map; // gguf_open's mapping (NULL for gguf_open_memory)
    size_t map_len;
    uint32_t version;
    uint64_t alignment;
    uint64_t data_offset;
    int64_t n_kv;
    kv_entry *kvs;        // [n_kv], file order
    kv_entry **kv_sorted; // [n_kv], by key
    int64_t n_tensors;
    tensor_entry *tensors;        // [n_tensors], file order
    tensor_entry **tensor_sorted; // [n_tensors], by name
    char *str_arena;              // NUL-terminated copies of scalar string values
};

// Bounded reader over the file. The entry being parsed (kind, index, name) is kept for messages and
// only formatted when one is needed ("kv 3 'a.b'").
typedef struct {
    const uint8_t *p;
    uint64_t size;
    uint64_t pos;
    uint32_t version;
    const char *label;
    const char *kind; // "header", "kv", "tensor"
    int64_t index;    // entry index, -1 for the header
    const char *name; // key or tensor name once read (not NUL-terminated), else NULL
    uint64_t name_len;
    char where[112]; // formatted by cur_where
} cursor;

static const uint64_t gguf_type_size[GGUF_TYPE_COUNT] = {
    [GGUF_TYPE_UINT8] = 1,   [GGUF_TYPE_INT8] = 1,  [GGUF_TYPE_UINT16] = 2,  [GGUF_TYPE_INT16] = 2,
    [GGUF_TYPE_UINT32] = 4,  [GGUF_TYPE_INT32] = 4, [GGUF_TYPE_FLOAT32] = 4, [GGUF_TYPE_BOOL] = 1,
    [GGUF_TYPE_STRING] = 0,  [GGUF_TYPE_ARRAY] = 0, [GGUF_TYPE_UINT64] = 8,  [GGUF_TYPE_INT64] = 8,
    [GGUF_TYPE_FLOAT64] = 8,
};

const char *gguf_type_name(gguf_type t) {
    static const char *const names[GGUF_TYPE_COUNT] = {
        "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
    };
    return (unsigned)t < GGUF_TYPE_COUNT ? names[t] : "unknown";
}

static bool type_is_uint(gguf_type t) {
    return t == GGUF_TYPE_UINT8 || t == GGUF_TYPE_UINT16 || t == GGUF_TYPE_UINT32 || t == GGUF_TYPE_UINT64;
}

static bool type_is_sint(gguf_type t) {
    return t == GGUF_TYPE_INT8 || t == GGUF_TYPE_INT16 || t == GGUF_TYPE_INT32 || t == GGUF_TYPE_INT64;
}

static bool type_is_float(gguf_type t) { return t == GGUF_TYPE_FLOAT32 || t == GGUF_TYPE_FLOAT64; }

// Copies up to about 64 bytes of s into dst for a message: non-printable bytes become '?', and a cut
// is marked with "...", so a hostile name can neither break the one-line message nor flood it.
static void name_printable(char *dst, size_t cap, const char *s, uint64_t n) {
    assert(cap >= 8);
    size_t limit = INF_MIN(cap - 4, (size_t)64);
    size_t j = 0;
    for (uint64_t i = 0; i < n && j < limit; i++) {
        unsigned char ch = (unsigned char)s[i];
        dst[j++] = (ch >= 0x20 && ch < 0x7f && ch != '\'') ? (char)ch : '?';
    }
    if (n > limit) {
        memcpy(dst + j, "...", 3);
        j += 3;
    }
    dst[j] = '\0';
}

// ---- cursor reads: each checks the bytes left first and reports where it stopped ----

static void cur_enter(cursor *c, const char *kind, int64_t index) {
    c->kind = kind;
    c->index = index;
    c->name = NULL;
    c->name_len = 0;
}

// The entry being parsed, for a message: "header", "kv 3", "kv 3 'a.b'".
static const char *cur_where(cursor *c) {
    if (c->index < 0) {
        snprintf(c->where, sizeof c->where, "%s", c->kind);
    } else if (!c->name) {
        snprintf(c->where, sizeof c->where, "%s %" PRId64, c->kind, c->index);
    } else {
        char shown[80];
        name_printable(shown, sizeof shown, c->name, c->name_len);
        snprintf(c->where, sizeof c->where, "%s %" PRId64 " '%s'", c->kind, c->index, shown);
    }
    return c->where;
}

static uint64_t cur_left(const cursor *c) { return c->size - c->pos; }

static inf_status cur_need(cursor *c, uint64_t n, const char *what) {
    if (cur_left(c) >= n) return INF_OK;
    return inf_fail(INF_ERR_FORMAT,
                    "%s: %s: truncated %s at byte %" PRIu64 " (needs %" PRIu64 " bytes, %" PRIu64 " left)",
                    c->label, cur_where(c), what, c->pos, n, cur_left(c));
}

static uint32_t load_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static uint64_t load_u64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inf_status cur_u32(cursor *c, const char *what, uint32_t *out) {
    inf_status st = cur_need(c, 4, what);
    if (st != INF_OK) return st;
    *out = load_u32(c->p + c->pos);
    c->pos += 4;
    return INF_OK;
}

static inf_status cur_u64(cursor *c, const char *what, uint64_t *out) {
    inf_status st = cur_need(c, 8, what);
    if (st != INF_OK) return st;
    *out = load_u64(c->p + c->pos);
    c->pos += 8;
    return INF_OK;
}

// Bytes of a count / length field: v1 used u32 everywhere the later versions use u64.
static uint64_t cur_len_size(const cursor *c) { return c->version == 1 ? 4 : 8; }

static inf_status cur_len(cursor *c, const char *what, uint64_t *out) {
    if (c->version == 1) {
        uint32_t v = 0;
        inf_status st = cur_u32(c, what, &v);
        *out = v;
        return st;
    }
    return cur_u64(c, what, out);
}

// Reads a length-prefixed string of at most max_len bytes as a view into the file.
static inf_status cur_str(cursor *c, const char *what, uint64_t max_len, gguf_str *out) {
    uint64_t at = c->pos;
    uint64_t len = 0;
    inf_status st = cur_len(c, what, &len);
    if (st != INF_OK) return st;
    if (len > cur_left(c)) {
        return inf_fail(INF_ERR_FORMAT,
                        "%s: %s: %s length %" PRIu64 " at byte %" PRIu64
                        " runs past the end of the file (%" PRIu64 " bytes left)",
                        c->label, cur_where(c), what, len, at, cur_left(c));
    }
    if (len > max_len) {
        return inf_fail(INF_ERR_FORMAT,
                        "%s: %s: %s length %" PRIu64 " at byte %" PRIu64 " exceeds the limit of %" PRIu64
                        " bytes",
                        c->label, cur_where(c), what, len, at, max_len);
    }
    out->ptr = (const char *)(c->p + c->pos);
    out->len = len;
    c->pos += len;
    return INF_OK;
}

// Keys and tensor names become C strings, so they must be non-empty and free of NUL bytes.
static inf_status check_name(cursor *c, const char *what, gguf_str s, uint64_t at) {
    if (s.len == 0) {
        return inf_fail(INF_ERR_FORMAT, "%s: %s: empty %s at byte %" PRIu64, c->label, cur_where(c), what,
                        at);
    }
    if (memchr(s.ptr, '\0', s.len) != NULL) {
        return inf_fail(INF_ERR_FORMAT, "%s: %s: %s contains a NUL byte at byte %" PRIu64, c->label,
                        cur_where(c), what, at);
    }
    return INF_OK;
}

// ---- metadata values ----

static inf_status check_bools(cursor *c, const uint8_t *p, uint64_t n, uint64_t at) {
    for (uint64_t i = 0; i < n; i++) {
        if (p[i] > 1) {
            return inf_fail(INF_ERR_FORMAT, "%s: %s: bool value %u at byte %" PRIu64 " is neither 0 nor 1",
                            c->label, cur_where(c), p[i], at + i);
        }
    }
    return INF_OK;
}

// Parses one value of the given type at the cursor. e is the top-level entry to fill, or NULL for the
// contents of a nested array, which are validated and skipped. Each element consumes at least one byte,
// so the work is bounded by the file size; depth is capped so the recursion is too.
static inf_status parse_value(cursor *c, gguf_type type, int depth, kv_entry *e) {
    inf_status st;
    uint64_t at = c->pos;
    if (type != GGUF_TYPE_STRING && type != GGUF_TYPE_ARRAY) {
        uint64_t n = gguf_type_size[type];
        if ((st = cur_need(c, n, "value")) != INF_OK) return st;
        const uint8_t *p = c->p + c->pos;
        if (type == GGUF_TYPE_BOOL && (st = check_bools(c, p, 1, at)) != INF_OK) return st;
        c->pos += n;
        if (!e) return INF_OK;
        switch (type) {
        case GGUF_TYPE_UINT8: e->kv.v.u64 = p[0]; break;
        case GGUF_TYPE_BOOL: e->kv.v.u64 = p[0]; break;
        case GGUF_TYPE_INT8: e->kv.v.i64 = (int8_t)p[0]; break;
        case GGUF_TYPE_UINT16: {
            uint16_t v;
            memcpy(&v, p, 2);
            e->kv.v.u64 = v;
            break;
        }
        case GGUF_TYPE_INT16: {
            int16_t v;
            memcpy(&v, p, 2);
            e->kv.v.i64 = v;
            break;
        }
        case GGUF_TYPE_UINT32: e->kv.v.u64 = load_u32(p); break;
        case GGUF_TYPE_INT32: e->kv.v.i64 = (int32_t)load_u32(p); break;
        case GGUF_TYPE_UINT64: e->kv.v.u64 = load_u64(p); break;
        case GGUF_TYPE_INT64: e->kv.v.i64 = (int64_t)load_u64(p); break;
        case GGUF_TYPE_FLOAT32: {
            float v;
            memcpy(&v, p, 4);
            e->kv.v.f64 = v;
            break;
        }
        case GGUF_TYPE_FLOAT64: memcpy(&e->kv.v.f64, p, 8); break;
        default: assert(!"unreachable value type");
        }
        return INF_OK;
    }
    if (type == GGUF_TYPE_STRING) {
        gguf_str s;
        if ((st = cur_str(c, "string value", GGUF_MAX_STRING_LEN, &s)) != INF_OK) return st;
        if (e) e->kv.v.str = s;
        return INF_OK;
    }

    // Array: element type, count, then the elements.
    if (depth >= GGUF_MAX_ARRAY_DEPTH) {
        return inf_fail(INF_ERR_FORMAT, "%s: %s: arrays nested deeper than %d at byte %" PRIu64, c->label,
                        cur_where(c), GGUF_MAX_ARRAY_DEPTH, at);
    }
    uint32_t et = 0;
    uint64_t n = 0;
    if ((st = cur_u32(c, "array element type", &et)) != INF_OK) return st;
    if (et >= GGUF_TYPE_COUNT) {
        return inf_fail(INF_ERR_FORMAT, "%s: %s: unknown array element type %" PRIu32 " at byte %" PRIu64,
                        c->label, cur_where(c), et, at);
    }
    uint64_t count_at = c->pos;
    if ((st = cur_len(c, "array length", &n)) != INF_OK) return st;
    gguf_type elem = (gguf_type)et;
    // The least each element can occupy, to bound the count by the bytes left before any work.
    uint64_t min_elem = gguf_type_size[elem];
    if (elem == GGUF_TYPE_STRING) min_elem = cur_len_size(c);
    if (elem == GGUF_TYPE_ARRAY) min_elem = 4 + cur_len_size(c);
    if (n > cur_left(c) / min_elem) {
        return inf_fail(INF_ERR_FORMAT,
                        "%s: %s: array of %" PRIu64 " %s elements at byte %" PRIu64
                        " cannot fit in the %" PRIu64 " bytes left",
                        c->label, cur_where(c), n, gguf_type_name(elem), count_at, cur_left(c));
    }
    if (e) {
        e->kv.arr_type = elem;
        e->kv.arr_n = n;
        e->kv.arr_data = c->p + c->pos;
    }
    if (elem == GGUF_TYPE_STRING) {
        if (e && n > GGUF_MAX_ARRAY_STRINGS) {
            return inf_fail(INF_ERR_FORMAT,
                            "%s: %s: string array of %" PRIu64 " elements at byte %" PRIu64
                            " exceeds the limit of %u",
                            c->label, cur_where(c), n, count_at, GGUF_MAX_ARRAY_STRINGS);
        }
        gguf_str *strs = NULL;
        if (e && n > 0) {
            strs = inf_malloc_array((size_t)n, sizeof *strs);
            if (!strs) {
                return inf_fail(INF_ERR_NOMEM, "%s: %s: out of memory for %" PRIu64 " strings", c->label,
                                cur_where(c), n);
            }
            e->kv.arr_strs = strs;
        }
        // Vocabularies hold hundreds of thousands of strings: this loop does the same checks as
        // cur_str inline and falls back to it only to word the error.
        uint64_t lw = cur_len_size(c);
        for (uint64_t i = 0; i < n; i++) {
            uint64_t left = c->size - c->pos, len;
            if (left < lw) return cur_str(c, "array string", GGUF_MAX_STRING_LEN, &(gguf_str){0});
            len = lw == 4 ? load_u32(c->p + c->pos) : load_u64(c->p + c->pos);
            if (len > left - lw || len > GGUF_MAX_STRING_LEN) {
                st = cur_str(c, "array string", GGUF_MAX_STRING_LEN, &(gguf_str){0});
                assert(st != INF_OK);
                return st;
            }
            if (strs) strs[i] = (gguf_str){(const char *)(c->p + c->pos + lw), len};
            c->pos += lw + len;
        }
        return INF_OK;
    }
    if (elem == GGUF_TYPE_ARRAY) {
        for (uint64_t i = 0; i < n; i++) {
            if ((st = parse_value(c, GGUF_TYPE_ARRAY, depth + 1, NULL)) != INF_OK) return st;
        }
        return INF_OK;
    }
    uint64_t bytes = n * min_elem; // cannot overflow: n <= left / min_elem
    if (elem == GGUF_TYPE_BOOL && (st = check_bools(c, c->p + c->pos, n, c->pos)) != INF_OK) return st;
    c->pos += bytes;
    return INF_OK;
}

// ---- sorting and lookup by name ----

static int cmp_kv_key(const void *a, const void *b) {
    const kv_entry *x = *(const kv_entry *const *)a, *y = *(const kv_entry *const *)b;
    int r = strcmp(x->kv.key, y->kv.key);
    return r ? r : (x < y ? -1 : x > y); // file order among equal keys, so messages are deterministic
}

static int cmp_tensor_name(const void *a, const void *b) {
    const tensor_entry *x = *(const tensor_entry *const *)a, *y = *(const tensor_entry *const *)b;
    int r = strcmp(x->t.name, y->t.name);
    return r ? r : (x < y ? -1 : x > y);
}

static int cmp_tensor_offset(const void *a, const void *b) {
    const tensor_entry *x = *(const tensor_entry *const *)a, *y = *(const tensor_entry *const *)b;
    if (x->t.offset != y->t.offset) return x->t.offset < y->t.offset ? -1 : 1;
    return x < y ? -1 : x > y;
}

static const kv_entry *find_kv_entry(const gguf_file *f, const char *key) {
    int64_t lo = 0, hi = f->n_kv;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int r = strcmp(f->kv_sorted[mid]->kv.key, key);
        if (r == 0) return f->kv_sorted[mid];
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

// ---- the parse ----

static inf_status parse_kvs(gguf_file *f, cursor *c) {
    inf_status st;
    for (int64_t i = 0; i < f->n_kv; i++) {
        kv_entry *e = &f->kvs[i];
        e->pos = c->pos;
        cur_enter(c, "kv", i);
        gguf_str key;
        if ((st = cur_str(c, "key", GGUF_MAX_KEY_LEN, &key)) != INF_OK) return st;
        if ((st = check_name(c, "key", key, e->pos)) != INF_OK) return st;
        e->kv.key = inf_strndup(key.ptr, (size_t)key.len);
        if (!e->kv.key) return inf_fail(INF_ERR_NOMEM, "%s: out of memory", c->label);
        c->name = key.ptr;
        c->name_len = key.len;
        uint64_t type_at = c->pos;
        uint32_t type = 0;
        if ((st = cur_u32(c, "value type", &type)) != INF_OK) return st;
        if (type >= GGUF_TYPE_COUNT) {
            return inf_fail(INF_ERR_FORMAT, "%s: %s: unknown value type %" PRIu32 " at byte %" PRIu64,
                            c->label, cur_where(c), type, type_at);
        }
        e->kv.type = (gguf_type)type;
        if ((st = parse_value(c, e->kv.type, 0, e)) != INF_OK) return st;
    }

    for (int64_t i = 0; i < f->n_kv; i++) f->kv_sorted[i] = &f->kvs[i];
    qsort(f->kv_sorted, (size_t)f->n_kv, sizeof *f->kv_sorted, cmp_kv_key);
    for (int64_t i = 1; i < f->n_kv; i++) {
        const kv_entry *a = f->kv_sorted[i - 1], *b = f->kv_sorted[i];
        if (strcmp(a->kv.key, b->kv.key) == 0) {
            char shown[80];
            name_printable(shown, sizeof shown, a->kv.key, strlen(a->kv.key));
            return inf_fail(INF_ERR_FORMAT,
                            "%s: duplicate key '%s' (kv %td at byte %" PRIu64
                            ", first as kv %td at byte %" PRIu64 ")",
                            c->label, shown, b - f->kvs, b->pos, a - f->kvs, a->pos);
        }
    }

    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const kv_entry *al = find_kv_entry(f, "general.alignment");
    if (al) {
        if (al->kv.type != GGUF_TYPE_UINT32) {
            return inf_fail(INF_ERR_FORMAT,
                            "%s: general.alignment has type %s, expected u32 (kv %td at byte %" PRIu64 ")",
                            c->label, gguf_type_name(al->kv.type), al - f->kvs, al->pos);
        }
        uint64_t a = al->kv.v.u64;
        if (a == 0 || (a & (a - 1)) != 0) {
            return inf_fail(INF_ERR_FORMAT,
                            "%s: general.alignment %" PRIu64 " is not a non-zero power of two "
                            "(kv %td at byte %" PRIu64 ")",
                            c->label, a, al - f->kvs, al->pos);
        }
        f->alignment = a;
    }
    return INF_OK;
}

static inf_status parse_tensor_info(gguf_file *f, cursor *c, int64_t i) {
    inf_status st;
    tensor_entry *e = &f->tensors[i];
    gguf_tensor *t = &e->t;
    e->pos = c->pos;
    cur_enter(c, "tensor", i);
    gguf_str name;
    if ((st = cur_str(c, "tensor name", GGUF_MAX_NAME_LEN, &name)) != INF_OK) return st;
    if ((st = check_name(c, "tensor name", name, e->pos)) != INF_OK) return st;
    t->name = inf_strndup(name.ptr, (size_t)name.len);
    if (!t->name) return inf_fail(INF_ERR_NOMEM, "%s: out of memory", c->label);
    c->name = name.ptr;
    c->name_len = name.len;

    uint64_t at = c->pos;
    if ((st = cur_u32(c, "n_dims", &t->n_dims)) != INF_OK) return st;
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS) {
        return inf_fail(INF_ERR_FORMAT, "%s: %s: n_dims %" PRIu32 " at byte %" PRIu64 " is outside 1..%d",
                        c->label, cur_where(c), t->n_dims, at, GGUF_MAX_DIMS);
    }
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        at = c->pos;
        uint64_t ne = 0;
        if ((st = cur_len(c, "dimension", &ne)) != INF_OK) return st;
        if (ne == 0 || ne > (uint64_t)INT64_MAX) {
            return inf_fail(INF_ERR_FORMAT,
                            "%s: %s: dimension %" PRIu32 " is %" PRIu64 " at byte %" PRIu64
                            " (must be 1..INT64_MAX)",
                            c->label, cur_where(c), d, ne, at);
        }
        t->ne[d] = (int64_t)ne;
    }

    at = c->pos;
    uint32_t type = 0;
    if ((st = cur_u32(c, "tensor type", &type)) != INF_OK) return st;
    const inf_type_traits *tr = inf_type_get(type);
    if (!tr) {
        const char *tn = inf_type_name(type);
        if (strcmp(tn, "unknown") == 0) {
            return inf_fail(INF_ERR_UNSUPPORTED, "%s: %s: unknown tensor type %" PRIu32 " at byte %" PRIu64,
                            c->label, cur_where(c), type, at);
        }
        return inf_fail(INF_ERR_UNSUPPORTED,
                        "%s: %s: unsupported tensor type %s (%" PRIu32 ") at byte %" PRIu64, c->label,
                        cur_where(c), tn, type, at);
    }
    t->type = (inf_type)type;
    uint64_t off_at = c->pos;
    if ((st = cur_u64(c, "tensor offset", &t->offset)) != INF_OK) return st;

    bool flat = false;
    if (t->ne[0] % tr->block_size != 0) {
        // Legacy converters (GGUF v1/v2) quantized some tensors as one flat run of blocks.
        uint64_t total = 1;
        bool fits = true;
        for (int d = 0; d < GGUF_MAX_DIMS && fits; d++) fits = inf_mul_u64(total, (uint64_t)t->ne[d], &total);
        flat = f->version < 3 && fits && total % (uint64_t)tr->block_size == 0;
        if (!flat)
            return inf_fail(INF_ERR_FORMAT,
                            "%s: %s: row length %" PRId64 " is not a multiple of the %s block size %" PRId64
                            " (tensor info at byte %" PRIu64 ")",
                            c->label, cur_where(c), t->ne[0], tr->name, tr->block_size, e->pos);
    }
    // Elements and bytes, with every product checked; n_elements must also fit int64 for callers.
    uint64_t n_el = 1, n_bytes = 0;
    bool ok = inf_mul_u64((uint64_t)(t->ne[0] / tr->block_size), tr->type_size, &n_bytes);
    for (int d = 0; d < GGUF_MAX_DIMS && ok; d++) ok = inf_mul_u64(n_el, (uint64_t)t->ne[d], &n_el);
    for (int d = 1; d < GGUF_MAX_DIMS && ok; d++) ok = inf_mul_u64(n_bytes, (uint64_t)t->ne[d], &n_bytes);
    if (!ok || n_el > (uint64_t)INT64_MAX) {
        return inf_fail(INF_ERR_FORMAT,
                        "%s: %s: shape [%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64
                        "] overflows 64-bit sizes (tensor info at byte %" PRIu64 ")",
                        c->label, cur_where(c), t->ne[0], t->ne[1], t->ne[2], t->ne[3], e->pos);
    }
    if (flat) ok = inf_mul_u64(n_el / (uint64_t)tr->block_size, tr->type_size, &n_bytes);
    t->n_elements = n_el;
    t->n_bytes = n_bytes;
    t->flat_blocks = flat;
    if (t->offset % f->alignment != 0) {
        return inf_fail(INF_ERR_FORMAT,
                        "%s: %s: offset %" PRIu64 " at byte %" PRIu64
                        " is not a multiple of the alignment %" PRIu64,
                        c->label, cur_where(c), t->offset, off_at, f->alignment);
    }
    return INF_OK;
}

static inf_status parse_tensors(gguf_file *f, cursor *c) {
    inf_status st;
    for (int64_t i = 0; i < f->n_tensors; i++) {
        if ((st = parse_tensor_info(f, c, i)) != INF_OK) return st;
    }

    for (int64_t i = 0; i < f->n_tensors; i++) f->tensor_sorted[i] = &f->tensors[i];
    qsort(f->tensor_sorted, (size_t)f->n_tensors, sizeof *f->tensor_sorted, cmp_tensor_name);
    for (int64_t i = 1; i < f->n_tensors; i++) {
        const tensor_entry *a = f->tensor_sorted[i - 1], *b = f->tensor_sorted[i];
        if (strcmp(a->t.name, b->t.name) == 0) {
            char shown[80];
            name_printable(shown, sizeof shown, a->t.name, strlen(a->t.name));
            return inf_fail(INF_ERR_FORMAT,
                            "%s: duplicate tensor name '%s' (tensor %td at byte %" PRIu64
                            ", first as tensor %td at byte %" PRIu64 ")",
                            c->label, shown, b - f->tensors, b->pos, a - f->tensors, a->pos);
        }
    }

    // The data section starts at the end of the infos rounded up to the alignment (a power of two).
    uint64_t start = 0;
    if (!inf_add_u64(c->pos, f->alignment - 1, &start)) start = UINT64_MAX;
    start &= ~(f->alignment - 1);
    if (f->n_tensors == 0) {
        f->data_offset = INF_MIN(start, f->size);
        return INF_OK;
    }
    if (start > f->size) {
        return inf_fail(INF_ERR_FORMAT,
                        "%s: tensor data would start at byte %" PRIu64 ", past the end of the file (%" PRIu64
                        " bytes)",
                        f->label, start, f->size);
    }
    f->data_offset = start;
    for (int64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i].t;
        uint64_t begin = 0, end = 0;
        if (!inf_add_u64(start, t->offset, &begin) || !inf_add_u64(begin, t->n_bytes, &end) ||
            end > f->size) {
            char shown[80];
            name_printable(shown, sizeof shown, t->name, strlen(t->name));
            return inf_fail(INF_ERR_FORMAT,
                            "%s: tensor '%s': data extends past end of file (data start %" PRIu64
                            " + offset %" PRIu64 " + %" PRIu64 " bytes > file size %" PRIu64 ")",
                            f->label, shown, start, t->offset, t->n_bytes, f->size);
        }
        t->data = f->base + begin;
    }

    // Overlap check over the ranges sorted by offset; tensor_sorted is reused as scratch and re-sorted
    // by name afterwards.
    qsort(f->tensor_sorted, (size_t)f->n_tensors, sizeof *f->tensor_sorted, cmp_tensor_offset);
    for (int64_t i = 1; i < f->n_tensors; i++) {
        const gguf_tensor *a = &f->tensor_sorted[i - 1]->t, *b = &f->tensor_sorted[i]->t;
        if (a->offset + a->n_bytes > b->offset) { // no overflow: both ranges end inside the file
            char sa[80], sb[80];
            name_printable(sa, sizeof sa, a->name, strlen(a->name));
            name_printable(sb, sizeof sb, b->name, strlen(b->name));
            return inf_fail(INF_ERR_FORMAT,
                            "%s: tensors '%s' (offset %" PRIu64 ", %" PRIu64 " bytes) and '%s' "
                            "(offset %" PRIu64 ") overlap",
                            f->label, sa, a->offset, a->n_bytes, sb, b->offset);
        }
    }
    qsort(f->tensor_sorted, (size_t)f->n_tensors, sizeof *f->tensor_sorted, cmp_tensor_name);
    return INF_OK;
}

// Copies every scalar string value into one arena so gguf_get_str can hand out C strings. The total is
// bounded by the file size, since each value is a view into it.
static inf_status build_string_arena(gguf_file *f) {
    uint64_t total = 0;
    for (int64_t i = 0; i < f->n_kv; i++) {
        if (f->kvs[i].kv.type == GGUF_TYPE_STRING) total += f->kvs[i].kv.v.str.len + 1;
    }
    if (total == 0) return INF_OK;
    f->str_arena = inf_malloc((size_t)total);
    if (!f->str_arena) return inf_fail(INF_ERR_NOMEM, "%s: out of memory for string values", f->label);
    char *p = f->str_arena;
    for (int64_t i = 0; i < f->n_kv; i++) {
        kv_entry *e = &f->kvs[i];
        if (e->kv.type != GGUF_TYPE_STRING) continue;
        size_t n = (size_t)e->kv.v.str.len;
        if (n) memcpy(p, e->kv.v.str.ptr, n);
        p[n] = '\0';
        e->cstr = p;
        e->has_nul = memchr(p, '\0', n) != NULL;
        p += n + 1;
    }
    return INF_OK;
}

static inf_status parse_file(gguf_file *f) {
    inf_status st;
    cursor c = {.p = f->base, .size = f->size, .label = f->label};
    cur_enter(&c, "header", -1);
    if (f->size < 4) {
        return inf_fail(INF_ERR_FORMAT, "%s: file too small for a GGUF header (%" PRIu64 " bytes)", f->label,
                        f->size);
    }
    if (memcmp(f->base, "GGUF", 4) != 0) {
        char shown[16];
        name_printable(shown, sizeof shown, (const char *)f->base, 4);
        return inf_fail(INF_ERR_FORMAT, "%s: bad magic '%s' at byte 0 (expected 'GGUF')", f->label, shown);
    }
    c.pos = 4;
    uint32_t version = 0;
    if ((st = cur_u32(&c, "version", &version)) != INF_OK) return st;
    if (version < 1 || version > 3) {
        uint32_t swapped = __builtin_bswap32(version);
        if (swapped >= 1 && swapped <= 3) {
            return inf_fail(INF_ERR_UNSUPPORTED, "%s: big-endian GGUF (version %" PRIu32 ") is not supported",
                            f->label, swapped);
        }
        return inf_fail(INF_ERR_UNSUPPORTED,
                        "%s: unsupported GGUF version %" PRIu32 " at byte 4 (supported: 1, 2, 3)", f->label,
                        version);
    }
    f->version = c.version = version;

    uint64_t n_tensors = 0, n_kv = 0;
    if ((st = cur_len(&c, "tensor count", &n_tensors)) != INF_OK) return st;
    if ((st = cur_len(&c, "metadata count", &n_kv)) != INF_OK) return st;
    // Smallest possible entries: a kv is a 1-byte key, a type and a 1-byte value; a tensor info a 1-byte
    // name, one dimension, a type and an offset. Both counts are bounded by the bytes left before
    // anything is allocated for them.
    uint64_t ls = cur_len_size(&c);
    uint64_t min_kv = ls + 1 + 4 + 1, min_tensor = ls + 1 + 4 + ls + 4 + 8;
    if (n_kv > GGUF_MAX_KV || n_kv > cur_left(&c) / min_kv) {
        return inf_fail(INF_ERR_FORMAT,
                        "%s: header claims %" PRIu64 " metadata entries, more than the %" PRIu64
                        " bytes after byte %" PRIu64 " can hold (limit %u)",
                        f->label, n_kv, cur_left(&c), c.pos, GGUF_MAX_KV);
    }
    if (n_tensors > GGUF_MAX_TENSORS || n_tensors > cur_left(&c) / min_tensor) {
        return inf_fail(INF_ERR_FORMAT,
                        "%s: header claims %" PRIu64 " tensors, more than the %" PRIu64
                        " bytes after byte %" PRIu64 " can hold (limit %u)",
                        f->label, n_tensors, cur_left(&c), c.pos, GGUF_MAX_TENSORS);
    }
    f->n_kv = (int64_t)n_kv;
    f->kvs = inf_calloc((size_t)n_kv, sizeof *f->kvs);
    f->kv_sorted = inf_calloc((size_t)n_kv, sizeof *f->kv_sorted);
    if (!f->kvs || !f->kv_sorted) return inf_fail(INF_ERR_NOMEM, "%s: out of memory", f->label);
    if ((st = parse_kvs(f, &c)) != INF_OK) return st;

    // Re-check the tensor count now that the metadata has used its share of the bytes.
    if (n_tensors > cur_left(&c) / min_tensor) {
        return inf_fail(INF_ERR_FORMAT,
                        "%s: header claims %" PRIu64 " tensors, but the tensor infos at byte %" PRIu64
                        " have only %" PRIu64 " bytes left",
                        f->label, n_tensors, c.pos, cur_left(&c));
    }
    f->n_tensors = (int64_t)n_tensors;
    f->tensors = inf_calloc((size_t)n_tensors, sizeof *f->tensors);
    f->tensor_sorted = inf_calloc((size_t)n_tensors, sizeof *f->tensor_sorted);
    if (!f->tensors || !f->tensor_sorted) return inf_fail(INF_ERR_NOMEM, "%s: out of memory", f->label);
    if ((st = parse_tensors(f, &c)) != INF_OK) return st;
    return build_string_arena(f);
}

// ---- open / close ----

static inf_status open_common(const void *data, uint64_t size, const char *label, void *map, size_t map_len,
                              gguf_file **out) {
    gguf_file *f = inf_calloc(1, sizeof *f);
    if (!f) {
        if (map) munmap(map, map_len);
        return inf_fail(INF_ERR_NOMEM, "%s: out of memory", label);
    }
    f->label = inf_strdup(label);
    f->base = data;
    f->size = size;
    f->map = map;
    f->map_len = map_len;
    if (!f->label) {
        gguf_close(f);
        return inf_fail(INF_ERR_NOMEM, "%s: out of memory", label);
    }
    inf_status st = parse_file(f);
    if (st != INF_OK) {
        gguf_close(f);
        return st;
    }
    *out = f;
    return INF_OK;
}

inf_status gguf_open_memory(const void *data, size_t size, const char *label, gguf_file **out) {
    assert(out && label && (data || size == 0));
    *out = NULL;
    return open_common(data, size, label, NULL, 0, out);
}

inf_status gguf_open(const char *path, gguf_file **out) {
    assert(path && out);
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return inf_fail(INF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int err = errno;
        close(fd);
        return inf_fail(INF_ERR_IO, "%s: cannot stat: %s", path, strerror(err));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return inf_fail(INF_ERR_IO, "%s: not a regular file", path);
    }
    if (sb.st_size == 0) {
        close(fd);
        return open_common(NULL, 0, path, NULL, 0, out); // mmap refuses length 0; the parser reports it
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        close(fd);
        return inf_fail(INF_ERR_IO, "%s: file too large to map", path);
    }
    size_t len = (size_t)sb.st_size;
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd); // the mapping keeps the file referenced
    if (map == MAP_FAILED) return inf_fail(INF_ERR_IO, "%s: cannot mmap: %s", path, strerror(err));
    return open_common(map, len, path, map, len, out);
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    for (int64_t i = 0; i < f->n_kv && f->kvs; i++) {
        free(f->kvs[i].kv.key);
        free(f->kvs[i].kv.arr_strs);
    }
    for (int64_t i = 0; i < f->n_tensors && f->tensors; i++) free(f->tensors[i].t.name);
    free(f->kvs);
    free(f->kv_sorted);
    free(f->tensors);
    free(f->tensor_sorted);
    free(f->str_arena);
    free(f->label);
    if (f->map) munmap(f->map, f->map_len);
    free(f);
}

// ---- accessors ----

uint32_t gguf_version(const gguf_file *f) { return f->version; }
uint64_t gguf_file_size(const gguf_file *f) { return f->size; }
uint64_t gguf_alignment(const gguf_file *f) { return f->alignment; }
uint64_t gguf_data_offset(const gguf_file *f) { return f->data_offset; }
const void *gguf_base(const gguf_file *f) { return f->base; }
int64_t gguf_n_kv(const gguf_file *f) { return f->n_kv; }
int64_t gguf_n_tensors(const gguf_file *f) { return f->n_tensors; }

const gguf_kv *gguf_kv_at(const gguf_file *f, int64_t i) {
    return (i >= 0 && i < f->n_kv) ? &f->kvs[i].kv : NULL;
}

const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key) {
    assert(f && key);
    const kv_entry *e = find_kv_entry(f, key);
    return e ? &e->kv : NULL;
}

const gguf_tensor *gguf_tensor_at(const gguf_file *f, int64_t i) {
    return (i >= 0 && i < f->n_tensors) ? &f->tensors[i].t : NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    assert(f && name);
    int64_t lo = 0, hi = f->n_tensors;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int r = strcmp(f->tensor_sorted[mid]->t.name, name);
        if (r == 0) return &f->tensor_sorted[mid]->t;
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

// ---- typed lookups ----

// Shared front half of the getters: finds key, sets *found_out, and returns NULL when absent.
static const kv_entry *getter_find(const gguf_file *f, const char *key, bool *found_out) {
    assert(f && key);
    const kv_entry *e = find_kv_entry(f, key);
    if (found_out) *found_out = e != NULL;
    return e;
}

static inf_status getter_type_error(const gguf_file *f, const kv_entry *e, const char *expected) {
    char shown[80];
    name_printable(shown, sizeof shown, e->kv.key, strlen(e->kv.key));
    return inf_fail(INF_ERR_FORMAT, "%s: key '%s' has type %s, expected %s", f->label, shown,
                    gguf_type_name(e->kv.type), expected);
}

static inf_status getter_range_error(const gguf_file *f, const kv_entry *e, const char *expected) {
    char shown[80], value[32];
    name_printable(shown, sizeof shown, e->kv.key, strlen(e->kv.key));
    if (type_is_sint(e->kv.type))
        snprintf(value, sizeof value, "%" PRId64, e->kv.v.i64);
    else
        snprintf(value, sizeof value, "%" PRIu64, e->kv.v.u64);
    return inf_fail(INF_ERR_FORMAT, "%s: key '%s' value %s does not fit %s", f->label, shown, value,
                    expected);
}

inf_status gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, bool *found_out) {
    const kv_entry *e = getter_find(f, key, found_out);
    if (!e) return INF_OK;
    if (type_is_uint(e->kv.type)) {
        if (e->kv.v.u64 > UINT32_MAX) return getter_range_error(f, e, "u32");
        *out = (uint32_t)e->kv.v.u64;
        return INF_OK;
    }
    if (type_is_sint(e->kv.type)) {
        if (e->kv.v.i64 < 0 || e->kv.v.i64 > (int64_t)UINT32_MAX) return getter_range_error(f, e, "u32");
        *out = (uint32_t)e->kv.v.i64;
        return INF_OK;
    }
    return getter_type_error(f, e, "an integer");
}

inf_status gguf_get_i64(const gguf_file *f, const char *key, int64_t *out, bool *found_out) {
    const kv_entry *e = getter_find(f, key, found_out);
    if (!e) return INF_OK;
    if (type_is_uint(e->kv.type)) {
        if (e->kv.v.u64 > (uint64_t)INT64_MAX) return getter_range_error(f, e, "i64");
        *out = (int64_t)e->kv.v.u64;
        return INF_OK;
    }
    if (type_is_sint(e->kv.type)) {
        *out = e->kv.v.i64;
        return INF_OK;
    }
    return getter_type_error(f, e, "an integer");
}

inf_status gguf_get_f32(const gguf_file *f, const char *key, float *out, bool *found_out) {
    const kv_entry *e = getter_find(f, key, found_out);
    if (!e) return INF_OK;
    if (!type_is_float(e->kv.type)) return getter_type_error(f, e, "f32 or f64");
    *out = (float)e->kv.v.f64;
    return INF_OK;
}

inf_status gguf_get_bool(const gguf_file *f, const char *key, bool *out, bool *found_out) {
    const kv_entry *e = getter_find(f, key, found_out);
    if (!e) return INF_OK;
    if (e->kv.type != GGUF_TYPE_BOOL) return getter_type_error(f, e, "bool");
    *out = e->kv.v.u64 != 0;
    return INF_OK;
}

inf_status gguf_get_str(const gguf_file *f, const char *key, const char **out, bool *found_out) {
    const kv_entry *e = getter_find(f, key, found_out);
    if (!e) return INF_OK;
    if (e->kv.type != GGUF_TYPE_STRING) return getter_type_error(f, e, "string");
    if (e->has_nul) {
        char shown[80];
        name_printable(shown, sizeof shown, e->kv.key, strlen(e->kv.key));
        return inf_fail(INF_ERR_FORMAT, "%s: key '%s': string value contains a NUL byte", f->label, shown);
    }
    *out = e->cstr;
    return INF_OK;
}

inf_status gguf_get_arr(const gguf_file *f, const char *key, gguf_type elem_type, const gguf_kv **out,
                        bool *found_out) {
    const kv_entry *e = getter_find(f, key, found_out);
    if (!e) return INF_OK;
    if (e->kv.type != GGUF_TYPE_ARRAY || e->kv.arr_type != elem_type) {
        char shown[80], expected[40];
        name_printable(shown, sizeof shown, e->kv.key, strlen(e->kv.key));
        snprintf(expected, sizeof expected, "array of %s", gguf_type_name(elem_type));
        if (e->kv.type != GGUF_TYPE_ARRAY) {
            return inf_fail(INF_ERR_FORMAT, "%s: key '%s' has type %s, expected %s", f->label, shown,
                            gguf_type_name(e->kv.type), expected);
        }
        return inf_fail(INF_ERR_FORMAT, "%s: key '%s' is an array of %s, expected %s", f->label, shown,
                        gguf_type_name(e->kv.arr_type), expected);
    }
    *out = &e->kv;
    return INF_OK;
}

// Element i of a fixed-size array as raw little-endian bytes, widened to 64 bits by the caller.
static const uint8_t *arr_elem(const gguf_kv *kv, uint64_t i) {
    assert(kv && kv->type == GGUF_TYPE_ARRAY && i < kv->arr_n);
    assert(kv->arr_type < GGUF_TYPE_COUNT && gguf_type_size[kv->arr_type] > 0);
    return (const uint8_t *)kv->arr_data + i * gguf_type_size[kv->arr_type];
}

uint64_t gguf_arr_u64(const gguf_kv *kv, uint64_t i) {
    const uint8_t *p = arr_elem(kv, i);
    switch (kv->arr_type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_BOOL: return p[0];
    case GGUF_TYPE_UINT16: {
        uint16_t v;
        memcpy(&v, p, 2);
        return v;
    }
    case GGUF_TYPE_UINT32: return load_u32(p);
    case GGUF_TYPE_UINT64: return load_u64(p);
    default: assert(!"gguf_arr_u64 on a non-unsigned array"); return 0;
    }
}

int64_t gguf_arr_i64(const gguf_kv *kv, uint64_t i) {
    const uint8_t *p = arr_elem(kv, i);
    switch (kv->arr_type) {
    case GGUF_TYPE_INT8: return (int8_t)p[0];
    case GGUF_TYPE_INT16: {
        int16_t v;
        memcpy(&v, p, 2);
        return v;
    }
    case GGUF_TYPE_INT32: return (int32_t)load_u32(p);
    case GGUF_TYPE_INT64: return (int64_t)load_u64(p);
    default: assert(!"gguf_arr_i64 on a non-signed array"); return 0;
    }
}

double gguf_arr_f64(const gguf_kv *kv, uint64_t i) {
    const uint8_t *p = arr_elem(kv, i);
    switch (kv->arr_type) {
    case GGUF_TYPE_FLOAT32: {
        float v;
        memcpy(&v, p, 4);
        return v;
    }
    case GGUF_TYPE_FLOAT64: {
        double v;
        memcpy(&v, p, 8);
        return v;
    }
    default: assert(!"gguf_arr_f64 on a non-float array"); return 0;
    }
}
