// test_gguf_truncate.c: the GGUF reader on real files cut short at many points and with bytes garbled
// at many positions. Every truncated file must fail with INF_ERR_FORMAT and a one-line message that
// starts with the file's label; a garbled file may fail (cleanly, the same way) or open, and when it
// opens every entry is walked through every accessor. Nothing may crash or read outside the buffer.
//
// Out-of-bounds reads are made visible by placing each truncated copy at the very end of its heap
// buffer, so the AddressSanitizer build catches a read one byte past the cut. Every byte of the
// metadata region is a cut point where that region is small (up to 16 KiB); larger regions get their
// first 4 KiB and their tensor infos (plus the end of the last kv) byte by byte and evenly spread points
// in between; cuts inside tensor data are spread too (there the reader only does arithmetic). Garbling
// is budgeted by bytes parsed so the whole program stays within a few seconds in a Debug build. The
// vocab-only files are left to test_gguf.c and the fuzzer: their metadata is megabytes, so each cut
// would cost a full re-parse of it.
#include "gguf/gguf.h"
#include "test.h"

#include <stdio.h>
#include <string.h>

#define SMALL_META    (16u << 10) // metadata regions up to this size are cut at every byte
#define EDGE_BYTES    4096u       // otherwise: every byte of the first EDGE_BYTES and of the tensor infos
#define SPREAD_POINTS 600u        // plus up to this many evenly spread cuts in between,
#define SPREAD_BUDGET (64u << 20) // fewer where they would parse more than this many bytes
#define DATA_POINTS   200u        // cuts inside the tensor data
#define GARBLE_BUDGET (32u << 20) // bytes of metadata parsed for garbling, per file
#define GARBLE_MIN    100u
#define GARBLE_MAX    3000u

typedef struct {
    const char *rel;
    size_t refused_meta; // 0: the file opens. Else the reader refuses it
                         // and this bounds its metadata region.
} test_file;

static const test_file k_files[] = {
    {"models/stories260K.gguf", 0},
    {"models/tinyllamas-stories-260k-f32.gguf", 0},
    {"models/tinyllamas-stories-260k-q8_0.gguf", 0},
    {"models/TinyStories-656K.f16.gguf", 0},
    {"models/tinystories-656k-q8_0.gguf", 0},
    {"models/llama-2-tiny-random.gguf", 0},
    {"models/synthetic/micro-Q8_0.gguf", 0},
    {"models/synthetic/micro-Q4_K_M-mix.gguf", 0},
};

static uint64_t g_opened, g_failed, g_walked, g_parsed;
static size_t g_meta_end; // of the file under test: the most bytes the reader parses

// Reads every accessor of an opened file; checks the views stay inside [base, base + size).
static void walk(const gguf_file *f, const char *label) {
    const uint8_t *base = gguf_base(f);
    uint64_t size = gguf_file_size(f);
    uint64_t sink = 0;
    for (int64_t i = 0; i < gguf_n_kv(f); i++) {
        const gguf_kv *kv = gguf_kv_at(f, i);
        CHECK(gguf_find_kv(f, kv->key) == kv);
        uint32_t u;
        int64_t s;
        float x;
        bool b;
        const char *str;
        const gguf_kv *arr;
        gguf_get_u32(f, kv->key, &u, NULL);
        gguf_get_i64(f, kv->key, &s, NULL);
        gguf_get_f32(f, kv->key, &x, NULL);
        gguf_get_bool(f, kv->key, &b, NULL);
        if (gguf_get_str(f, kv->key, &str, NULL) == INF_OK) sink += strlen(str);
        if (kv->type == GGUF_TYPE_STRING) {
            CHECK((const uint8_t *)kv->v.str.ptr >= base &&
                  (const uint8_t *)kv->v.str.ptr + kv->v.str.len <= base + size);
        }
        if (kv->type != GGUF_TYPE_ARRAY) continue;
        CHECK(gguf_get_arr(f, kv->key, kv->arr_type, &arr, NULL) == INF_OK && arr == kv);
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
            case GGUF_TYPE_STRING: {
                gguf_str e = kv->arr_strs[j];
                CHECK((const uint8_t *)e.ptr >= base && (const uint8_t *)e.ptr + e.len <= base + size);
                sink += e.len ? (uint8_t)e.ptr[e.len - 1] : 0;
                break;
            }
            default: j = kv->arr_n; break; // nested arrays: no element views
            }
        }
    }
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        CHECK(gguf_find_tensor(f, t->name) == t);
        const uint8_t *d = t->data;
        CHECK_MSG(d >= base && t->n_bytes <= size && (uint64_t)(d - base) <= size - t->n_bytes,
                  "%s: tensor %s outside the buffer", label, t->name);
        sink += d[0] + d[t->n_bytes - 1];
    }
    g_walked += sink != 1; // keep the reads
}

// Opens data[0..size) and checks the outcome: must_fail demands INF_ERR_FORMAT (truncation).
static void try_open(const void *data, size_t size, const char *label, bool must_fail, const char *what,
                     uint64_t at) {
    gguf_file *f = NULL;
    g_parsed += INF_MIN(size, g_meta_end);
    inf_error_clear();
    inf_status st = gguf_open_memory(data, size, label, &f);
    if (st == INF_OK) {
        g_opened++;
        CHECK_MSG(!must_fail, "%s: %s at %llu opened", label, what, (unsigned long long)at);
        walk(f, label);
        gguf_close(f);
        return;
    }
    g_failed++;
    const char *msg = inf_last_error();
    CHECK(f == NULL);
    if (must_fail) {
        CHECK_MSG(st == INF_ERR_FORMAT, "%s: %s at %llu: %s: %s", label, what, (unsigned long long)at,
                  inf_status_str(st), msg);
    } else {
        CHECK_MSG(st == INF_ERR_FORMAT || st == INF_ERR_UNSUPPORTED, "%s: %s at %llu: %s: %s", label, what,
                  (unsigned long long)at, inf_status_str(st), msg);
    }
    size_t ll = strlen(label);
    CHECK_MSG(strncmp(msg, label, ll) == 0 && msg[ll] == ':' && strlen(msg) > ll + 8 && !strchr(msg, '\n'),
              "%s: %s at %llu: bad message '%s'", label, what, (unsigned long long)at, msg);
}

// A deterministic generator for garbling (xorshift64).
static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static uint64_t rng_next(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}

static void cut_at(const uint8_t *full, uint8_t *tail_buf, size_t meta_end, size_t t, const char *label) {
    // The first t bytes, placed so that they end exactly at the end of tail_buf's allocation.
    uint8_t *p = tail_buf + (meta_end - t);
    memcpy(p, full, t);
    try_open(p, t, label, true, "cut", t);
}

// Start of the tensor infos: the last place the first tensor's length-prefixed name occurs before the
// data section. Without tensors, the last 512 bytes of metadata stand in.
static size_t find_infos_start(const uint8_t *full, size_t meta_end, const gguf_file *f) {
    size_t fallback = meta_end > 512 ? meta_end - 512 : 0;
    if (gguf_n_tensors(f) == 0) return fallback;
    const char *name = gguf_tensor_at(f, 0)->name;
    uint8_t pat[8 + GGUF_MAX_NAME_LEN];
    uint64_t len = strlen(name);
    size_t lw = gguf_version(f) == 1 ? 4 : 8;
    memcpy(pat, &len, lw); // little-endian host, as the reader
    memcpy(pat + lw, name, len);
    size_t n = lw + len, found = fallback;
    for (size_t p = 0; p + n <= meta_end; p++) {
        if (full[p] == pat[0] && memcmp(full + p, pat, n) == 0) found = p;
    }
    return found;
}

static void test_file_cuts(const test_file *tf) {
    double t0 = inf_time_now();
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", test_shared_dir(), tf->rel);
    char *raw = NULL;
    size_t size = 0;
    if (inf_read_file(path, (size_t)64 << 20, &raw, &size) != INF_OK) {
        CHECK_MSG(false, "cannot read %s: %s", path, inf_last_error());
        return;
    }
    // An exact-size copy, so a read past the end of the whole file is caught too.
    uint8_t *full = inf_malloc(size);
    memcpy(full, raw, size);
    free(raw);
    const char *label = strrchr(tf->rel, '/') + 1;

    gguf_file *f = NULL;
    inf_status st = gguf_open_memory(full, size, label, &f);
    CHECK_MSG((st == INF_OK) == (tf->refused_meta == 0), "%s: %s", label, inf_last_error());
    size_t meta_end = f ? (size_t)gguf_data_offset(f) : INF_MIN(size, tf->refused_meta);
    size_t infos = f ? find_infos_start(full, meta_end, f) : 0;
    g_meta_end = meta_end;
    if (f) walk(f, label);
    gguf_close(f);

    // Cuts inside the metadata: copies ending at the end of their allocation.
    uint8_t *tail_buf = inf_malloc(meta_end);
    uint64_t cuts = 0;
    if (meta_end <= SMALL_META) {
        for (size_t t = 0; t < meta_end; t++, cuts++) cut_at(full, tail_buf, meta_end, t, label);
    } else {
        size_t tail = INF_MAX(infos > 128 ? infos - 128 : 0, (size_t)EDGE_BYTES); // last kv's end, infos
        for (size_t t = 0; t < EDGE_BYTES; t++, cuts++) cut_at(full, tail_buf, meta_end, t, label);
        for (size_t t = tail; t < meta_end; t++, cuts++) cut_at(full, tail_buf, meta_end, t, label);
        size_t spread = INF_MIN((size_t)SPREAD_POINTS, SPREAD_BUDGET / (meta_end / 2));
        for (size_t k = 0; k < spread; k++, cuts++) {
            cut_at(full, tail_buf, meta_end, EDGE_BYTES + (tail - EDGE_BYTES) * k / spread, label);
        }
    }
    free(tail_buf);
    // Cuts inside the tensor data: the reader parses the whole metadata and then only compares
    // extents, so the full buffer serves.
    if (size > meta_end) {
        for (size_t k = 0; k < DATA_POINTS; k++, cuts++) {
            size_t t = meta_end + (size - meta_end) * k / DATA_POINTS;
            try_open(full, t, label, true, "cut", t);
        }
        try_open(full, size - 1, label, true, "cut", size - 1);
    }

    // Garbling: every byte of the first (up to) 512 and the last (up to) 1024 of the metadata (header,
    // tensor infos), then spread and random positions, with a rotating set of corruptions. The number
    // of garbles follows the budget, so files with big metadata get fewer of each.
    uint64_t n_garble = GARBLE_BUDGET / (meta_end + 1);
    n_garble = n_garble < GARBLE_MIN ? GARBLE_MIN : n_garble > GARBLE_MAX ? GARBLE_MAX : n_garble;
    uint64_t n_head = INF_MIN((uint64_t)512, n_garble / 3), n_tail = INF_MIN((uint64_t)1024, n_garble / 3);
    n_tail = INF_MIN(n_tail, (uint64_t)meta_end);
    for (uint64_t k = 0; k < n_garble; k++) {
        size_t pos;
        if (k < n_head)
            pos = (size_t)k;
        else if (k < n_head + n_tail)
            pos = meta_end - (size_t)n_tail + (size_t)(k - n_head);
        else if (k % 2)
            pos = (size_t)(meta_end * k / n_garble);
        else
            pos = (size_t)(rng_next() % meta_end);
        assert(pos < meta_end);
        uint8_t old = full[pos], v;
        switch (k % 6) {
        case 0: v = old ^ 0xFF; break;
        case 1: v = old ^ 0x01; break;
        case 2: v = old ^ 0x80; break;
        case 3: v = 0x00; break;
        case 4: v = 0xFF; break;
        default: v = (uint8_t)rng_next(); break;
        }
        full[pos] = v;
        try_open(full, size, label, false, "garble", pos);
        full[pos] = old;
    }
    // Multi-byte garbles: runs of 0xFF or 0x7F (absurd lengths and counts) at random positions.
    for (int k = 0; k < 200; k++) {
        size_t pos = (size_t)(rng_next() % meta_end), n = INF_MIN((size_t)8, meta_end - pos);
        uint8_t saved[8];
        memcpy(saved, full + pos, n);
        memset(full + pos, k % 2 ? 0xFF : 0x7F, n);
        try_open(full, size, label, false, "garble run", pos);
        memcpy(full + pos, saved, n);
    }
    printf("%-36s size %8zu meta %7zu: %6llu cuts, %5llu garbles, %.2f s\n", label, size, meta_end,
           (unsigned long long)cuts, (unsigned long long)n_garble + 200, inf_time_now() - t0);
    free(full);
}

int main(void) {
    char probe[4096];
    snprintf(probe, sizeof probe, "%s/models/stories260K.gguf", test_shared_dir());
    FILE *pf = fopen(probe, "rb");
    if (!pf) TEST_SKIP("shared models missing (%s)", probe);
    fclose(pf);
    double t0 = inf_time_now();
    for (size_t i = 0; i < INF_ARRAY_LEN(k_files); i++) test_file_cuts(&k_files[i]);
    printf("opened %llu, failed cleanly %llu, %.0f MB of input, in %.2f s\n", (unsigned long long)g_opened,
           (unsigned long long)g_failed, g_parsed / 1e6, inf_time_now() - t0);
    CHECK(g_walked > 0);
    return test_summary();
}
