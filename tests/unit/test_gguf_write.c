// test_gguf_write.c: the streaming GGUF writer (src/gguf/gguf_write.c).
//
// References: tests/gguf_build.h, an independent byte-by-byte builder, gives the exact bytes a small file
// must have (header, every value type, tensor infos, padding); the reader (gguf.h) reads back a file with
// every metadata type and tensors written in awkward pieces; real files (a vocabulary, a model) are copied
// key by key and compared value by value. Failure paths check the status, a piece of the message (which
// must name the path), and that neither the output nor its .tmp is left behind, with an existing output
// left untouched. A write error is provoked with RLIMIT_FSIZE.
#include "gguf/gguf.h"
#include "gguf/gguf_write.h"
#include "gguf_build.h"
#include "test.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

static void tmp_path(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", tmpdir, name); }

static bool file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static bool tmp_exists(const char *path) {
    char t[600];
    snprintf(t, sizeof t, "%s.tmp", path);
    return file_exists(t);
}

static uint8_t *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)n + 1);
    *len = fread(p, 1, (size_t)n, f);
    fclose(f);
    return p;
}

static bool msg_has(const char *piece) { return strstr(inf_last_error(), piece) != NULL; }

// ---- exact bytes against gguf_build.h ----

static void test_exact_bytes(void) {
    char path[512];
    tmp_path(path, sizeof path, "exact.gguf");
    gguf_writer *w = NULL;
    CHECK_EQ_INT(gguf_writer_open(path, &w), INF_OK);
    const int32_t ints[3] = {-1, 2, 70000};
    const gguf_str strs[2] = {{"ab", 2}, {"", 0}};
    CHECK_EQ_INT(gguf_writer_set_str(w, "general.architecture", "llama"), INF_OK);
    CHECK_EQ_INT(gguf_writer_set_u8(w, "k.u8", 200), INF_OK);
    CHECK_EQ_INT(gguf_writer_set_i8(w, "k.i8", -100), INF_OK);
    CHECK_EQ_INT(gguf_writer_set_u16(w, "k.u16", 60000), INF_OK);
    CHECK_EQ_INT(gguf_writer_set_i16(w, "k.i16", -30000), INF_OK);
    CHECK_EQ_INT(gguf_writer_set_u32(w, "k.u32", 4000000000u), INF_OK);
    CHECK_EQ_INT(gguf_writer_set_i32(w, "k.i32", -2000000000), INF_OK);
    CHECK_EQ_INT(gguf_writer_set_u64(w, "k.u64", 1ull << 40), INF_OK);
    CHECK_EQ_INT(gguf_writer_set_i64(w, "k.i64", -(1ll << 40)), INF_OK);
    CHECK_EQ_INT(gguf_writer_set_f32(w, "k.f32", 1.5f), INF_OK);
    CHECK_EQ_INT(gguf_writer_set_f64(w, "k.f64", -2.25), INF_OK);
    CHECK_EQ_INT(gguf_writer_set_bool(w, "k.bool", true), INF_OK);
    CHECK_EQ_INT(gguf_writer_set_arr(w, "k.ai32", GGUF_TYPE_INT32, ints, 3), INF_OK);
    CHECK_EQ_INT(gguf_writer_set_arr_str(w, "k.astr", strs, 2), INF_OK);
    CHECK_EQ_INT(gguf_writer_add_tensor(w, "a", 1, (int64_t[]){3}, INF_TYPE_F32), INF_OK);      // 12 bytes
    CHECK_EQ_INT(gguf_writer_add_tensor(w, "b", 2, (int64_t[]){32, 2}, INF_TYPE_Q8_0), INF_OK); // 68 bytes
    CHECK_EQ_INT(gguf_writer_tensor_bytes(w, 0), 12);
    CHECK_EQ_INT(gguf_writer_tensor_bytes(w, 1), 68);
    uint8_t data[80];
    for (int i = 0; i < 80; i++) data[i] = (uint8_t)(i * 7 + 1);
    // Pieces that cross the boundary between the tensors.
    CHECK_EQ_INT(gguf_writer_write(w, data, 5), INF_OK);
    CHECK_EQ_INT(gguf_writer_write(w, data + 5, 0), INF_OK);
    CHECK_EQ_INT(gguf_writer_write(w, data + 5, 40), INF_OK);
    CHECK_EQ_INT(gguf_writer_write(w, data + 45, 35), INF_OK);
    CHECK_EQ_INT(gguf_writer_finish(w), INF_OK);

    gguf_build b;
    gb_init(&b, 3);
    gb_header(&b, 2, 14);
    gb_kv_str(&b, "general.architecture", "llama");
    gb_kv_u8(&b, "k.u8", 200);
    gb_kv_i8(&b, "k.i8", -100);
    gb_kv_u16(&b, "k.u16", 60000);
    gb_kv_i16(&b, "k.i16", -30000);
    gb_kv_u32(&b, "k.u32", 4000000000u);
    gb_kv_i32(&b, "k.i32", -2000000000);
    gb_kv_u64(&b, "k.u64", 1ull << 40);
    gb_kv_i64(&b, "k.i64", -(1ll << 40));
    gb_kv_f32(&b, "k.f32", 1.5f);
    gb_kv_f64(&b, "k.f64", -2.25);
    gb_kv_bool(&b, "k.bool", true);
    gb_kv_arr_i32(&b, "k.ai32", ints, 3);
    gb_kv_arr_str(&b, "k.astr", (const char *const[]){"ab", ""}, 2);
    gb_tensor_info(&b, "a", 1, (int64_t[]){3}, 0, 0);
    gb_tensor_info(&b, "b", 2, (int64_t[]){32, 2}, 8, 32);
    gb_pad(&b, 32);
    gb_bytes(&b, data, 12);
    gb_zeros(&b, 20);
    gb_bytes(&b, data + 12, 68);
    gb_zeros(&b, 28);
    size_t len = 0;
    uint8_t *got = slurp(path, &len);
    CHECK(got != NULL);
    CHECK_EQ_INT(len, b.len);
    CHECK_MSG(got && len == b.len && memcmp(got, b.data, len) == 0, "written bytes differ from gguf_build's");
    CHECK(!tmp_exists(path));
    free(got);
    gb_free(&b);
    unlink(path);
}

// ---- read back everything through the reader ----

static void test_read_back(void) {
    char path[512];
    tmp_path(path, sizeof path, "all.gguf");
    gguf_writer *w = NULL;
    CHECK_EQ_INT(gguf_writer_open(path, &w), INF_OK);
    const uint8_t u8s[4] = {0, 1, 255, 7};
    const int8_t i8s[3] = {-128, 0, 127};
    const uint16_t u16s[2] = {0, 65535};
    const int16_t i16s[2] = {-32768, 32767};
    const uint32_t u32s[2] = {0, 4294967295u};
    const uint64_t u64s[2] = {0, UINT64_MAX};
    const int64_t i64s[2] = {INT64_MIN, INT64_MAX};
    const float f32s[3] = {0.5f, -1e30f, 3.25f};
    const double f64s[2] = {1e300, -0.125};
    const uint8_t bools[3] = {1, 0, 1};
    CHECK_EQ_INT(gguf_writer_set_arr(w, "a.u8", GGUF_TYPE_UINT8, u8s, 4), INF_OK);
    CHECK_EQ_INT(gguf_writer_set_arr(w, "a.i8", GGUF_TYPE_INT8, i8s, 3), INF_OK);
    CHECK_EQ_INT(gguf_writer_set_arr(w, "a.u16", GGUF_TYPE_UINT16, u16s, 2), INF_OK);
    CHECK_EQ_INT(gguf_writer_set_arr(w, "a.i16", GGUF_TYPE_INT16, i16s, 2), INF_OK);
    CHECK_EQ_INT(gguf_writer_set_arr(w, "a.u32", GGUF_TYPE_UINT32, u32s, 2), INF_OK);
    CHECK_EQ_INT(gguf_writer_set_arr(w, "a.u64", GGUF_TYPE_UINT64, u64s, 2), INF_OK);
    CHECK_EQ_INT(gguf_writer_set_arr(w, "a.i64", GGUF_TYPE_INT64, i64s, 2), INF_OK);
    CHECK_EQ_INT(gguf_writer_set_arr(w, "a.f32", GGUF_TYPE_FLOAT32, f32s, 3), INF_OK);
    CHECK_EQ_INT(gguf_writer_set_arr(w, "a.f64", GGUF_TYPE_FLOAT64, f64s, 2), INF_OK);
    CHECK_EQ_INT(gguf_writer_set_arr(w, "a.bool", GGUF_TYPE_BOOL, bools, 3), INF_OK);
    CHECK_EQ_INT(gguf_writer_set_arr(w, "a.empty", GGUF_TYPE_FLOAT32, NULL, 0), INF_OK);
    CHECK_EQ_INT(gguf_writer_set_strn(w, "s.nul", "a\0b", 3), INF_OK);
    CHECK_EQ_INT(gguf_writer_set_str(w, "s.utf8", "h\xc3\xa9llo"), INF_OK);
    // Replacing a key moves it to the end (ggml's gguf_set_* behaviour).
    CHECK_EQ_INT(gguf_writer_set_u32(w, "general.file_type", 1), INF_OK);
    CHECK_EQ_INT(gguf_writer_set_str(w, "general.name", "t"), INF_OK);
    CHECK_EQ_INT(gguf_writer_set_u32(w, "general.file_type", 15), INF_OK);
    CHECK_EQ_INT(gguf_writer_n_kv(w), 15);
    CHECK(gguf_writer_remove_kv(w, "a.u8"));
    CHECK(!gguf_writer_remove_kv(w, "a.u8"));
    CHECK_EQ_INT(gguf_writer_set_arr(w, "a.u8", GGUF_TYPE_UINT8, u8s, 4), INF_OK);
    CHECK_EQ_INT(gguf_writer_set_u32(w, "general.alignment", 64), INF_OK);

    // Tensors: a 1-D F32, a 3-D Q4_0, a 2-D F16 and a Q6_K; data is a byte pattern per tensor.
    const struct {
        const char *name;
        uint32_t n_dims;
        int64_t ne[4];
        inf_type type;
    } ts[] = {
        {"norm.weight", 1, {5, 1, 1, 1}, INF_TYPE_F32},
        {"blk.0.experts", 3, {64, 3, 2, 1}, INF_TYPE_Q4_0},
        {"half", 2, {7, 3, 1, 1}, INF_TYPE_F16},
        {"k6", 2, {256, 2, 1, 1}, INF_TYPE_Q6_K},
    };
    uint64_t total = 0;
    for (size_t i = 0; i < 4; i++) {
        CHECK_EQ_INT(gguf_writer_add_tensor(w, ts[i].name, ts[i].n_dims, ts[i].ne, ts[i].type), INF_OK);
        total += gguf_writer_tensor_bytes(w, (int64_t)i);
    }
    CHECK_EQ_INT(gguf_writer_tensor_bytes(w, 1), 6 * 2 * sizeof(block_q4_0));
    CHECK_EQ_INT(total, 20 + 6 * 36 + 42 + 2 * 210);
    uint8_t *data = malloc(total);
    for (uint64_t i = 0; i < total; i++) data[i] = (uint8_t)(i * 13 + 5);
    // Write in pieces of 1, 2, 3, ... bytes.
    for (uint64_t at = 0, k = 1; at < total; at += k, k++)
        CHECK_EQ_INT(gguf_writer_write(w, data + at, (size_t)INF_MIN(k, total - at)), INF_OK);
    CHECK_EQ_INT(gguf_writer_finish(w), INF_OK);
    CHECK(!tmp_exists(path));

    gguf_file *f = NULL;
    CHECK_EQ_INT(gguf_open(path, &f), INF_OK);
    if (!f) {
        free(data);
        return;
    }
    CHECK_EQ_INT(gguf_version(f), 3);
    CHECK_EQ_INT(gguf_alignment(f), 64);
    // Order: arrays (a.u8 removed and re-added later), strings, general.name, file_type moved after it.
    const char *order[] = {"a.i8",         "a.u16",
                           "a.i16",        "a.u32",
                           "a.u64",        "a.i64",
                           "a.f32",        "a.f64",
                           "a.bool",       "a.empty",
                           "s.nul",        "s.utf8",
                           "general.name", "general.file_type",
                           "a.u8",         "general.alignment"};
    CHECK_EQ_INT(gguf_n_kv(f), 16);
    for (int i = 0; i < 16 && i < gguf_n_kv(f); i++) CHECK_STR(gguf_kv_at(f, i)->key, order[i]);
    const gguf_kv *kv;
    CHECK((kv = gguf_find_kv(f, "a.u8")) && kv->arr_n == 4 && gguf_arr_u64(kv, 2) == 255 &&
          gguf_arr_u64(kv, 3) == 7);
    CHECK((kv = gguf_find_kv(f, "a.i8")) && kv->arr_n == 3 && gguf_arr_i64(kv, 0) == -128);
    CHECK((kv = gguf_find_kv(f, "a.u16")) && gguf_arr_u64(kv, 1) == 65535);
    CHECK((kv = gguf_find_kv(f, "a.i16")) && gguf_arr_i64(kv, 0) == -32768 && gguf_arr_i64(kv, 1) == 32767);
    CHECK((kv = gguf_find_kv(f, "a.u32")) && gguf_arr_u64(kv, 1) == 4294967295u);
    CHECK((kv = gguf_find_kv(f, "a.u64")) && gguf_arr_u64(kv, 1) == UINT64_MAX);
    CHECK((kv = gguf_find_kv(f, "a.i64")) && gguf_arr_i64(kv, 0) == INT64_MIN &&
          gguf_arr_i64(kv, 1) == INT64_MAX);
    CHECK((kv = gguf_find_kv(f, "a.f32")) && gguf_arr_f64(kv, 1) == (double)-1e30f &&
          gguf_arr_f64(kv, 2) == 3.25);
    CHECK((kv = gguf_find_kv(f, "a.f64")) && gguf_arr_f64(kv, 0) == 1e300 && gguf_arr_f64(kv, 1) == -0.125);
    CHECK((kv = gguf_find_kv(f, "a.bool")) && kv->arr_type == GGUF_TYPE_BOOL && gguf_arr_u64(kv, 0) == 1 &&
          gguf_arr_u64(kv, 1) == 0);
    CHECK((kv = gguf_find_kv(f, "a.empty")) && kv->type == GGUF_TYPE_ARRAY && kv->arr_n == 0);
    CHECK((kv = gguf_find_kv(f, "s.nul")) && kv->v.str.len == 3 && memcmp(kv->v.str.ptr, "a\0b", 3) == 0);
    const char *s = NULL;
    CHECK_EQ_INT(gguf_get_str(f, "s.utf8", &s, NULL), INF_OK);
    CHECK_STR(s, "h\xc3\xa9llo");
    uint32_t ft = 0;
    CHECK_EQ_INT(gguf_get_u32(f, "general.file_type", &ft, NULL), INF_OK);
    CHECK_EQ_INT(ft, 15);
    CHECK_EQ_INT(gguf_n_tensors(f), 4);
    uint64_t at = 0;
    for (int64_t i = 0; i < 4 && i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        CHECK_STR(t->name, ts[i].name);
        CHECK_EQ_INT(t->n_dims, ts[i].n_dims);
        for (int d = 0; d < 4; d++) CHECK_EQ_INT(t->ne[d], ts[i].ne[d]);
        CHECK_EQ_INT(t->type, ts[i].type);
        CHECK_EQ_INT(t->offset % 64, 0);
        CHECK(memcmp(t->data, data + at, t->n_bytes) == 0);
        at += t->n_bytes;
    }
    // Every tensor is padded, the last one too: the file ends at the padded end of the last tensor.
    const gguf_tensor *last = gguf_tensor_at(f, 3);
    CHECK_EQ_INT(gguf_file_size(f), gguf_data_offset(f) + (last->offset + last->n_bytes + 63) / 64 * 64);
    gguf_close(f);
    free(data);
    unlink(path);
}

// ---- copy real files key by key ----

static bool kv_equal(const gguf_kv *a, const gguf_kv *b) {
    if (strcmp(a->key, b->key) || a->type != b->type) return false;
    switch (a->type) {
    case GGUF_TYPE_STRING:
        return a->v.str.len == b->v.str.len && !memcmp(a->v.str.ptr, b->v.str.ptr, a->v.str.len);
    case GGUF_TYPE_FLOAT32:
    case GGUF_TYPE_FLOAT64: return a->v.f64 == b->v.f64;
    case GGUF_TYPE_ARRAY:
        if (a->arr_type != b->arr_type || a->arr_n != b->arr_n) return false;
        if (a->arr_type == GGUF_TYPE_STRING) {
            for (uint64_t i = 0; i < a->arr_n; i++)
                if (a->arr_strs[i].len != b->arr_strs[i].len ||
                    memcmp(a->arr_strs[i].ptr, b->arr_strs[i].ptr, a->arr_strs[i].len))
                    return false;
            return true;
        } else {
            size_t es = a->arr_type == GGUF_TYPE_UINT8 || a->arr_type == GGUF_TYPE_INT8 ||
                                a->arr_type == GGUF_TYPE_BOOL
                            ? 1
                        : a->arr_type == GGUF_TYPE_UINT16 || a->arr_type == GGUF_TYPE_INT16 ? 2
                        : a->arr_type == GGUF_TYPE_UINT64 || a->arr_type == GGUF_TYPE_INT64 ||
                                a->arr_type == GGUF_TYPE_FLOAT64
                            ? 8
                            : 4;
            return !memcmp(a->arr_data, b->arr_data, es * a->arr_n);
        }
    default: return a->v.u64 == b->v.u64;
    }
}

static void test_copy_real(const char *rel, bool with_tensors) {
    char src_path[512], path[512];
    snprintf(src_path, sizeof src_path, "%s/%s", test_shared_dir(), rel);
    tmp_path(path, sizeof path, "copy.gguf");
    gguf_file *src = NULL;
    if (gguf_open(src_path, &src) != INF_OK) {
        printf("note: %s not available, copy test skipped\n", src_path);
        return;
    }
    gguf_writer *w = NULL;
    CHECK_EQ_INT(gguf_writer_open(path, &w), INF_OK);
    for (int64_t i = 0; i < gguf_n_kv(src); i++)
        CHECK_EQ_INT(gguf_writer_copy_kv(w, gguf_kv_at(src, i)), INF_OK);
    int64_t nt = with_tensors ? gguf_n_tensors(src) : 0;
    for (int64_t i = 0; i < nt; i++) {
        const gguf_tensor *t = gguf_tensor_at(src, i);
        CHECK_EQ_INT(gguf_writer_add_tensor(w, t->name, t->n_dims, t->ne, t->type), INF_OK);
    }
    for (int64_t i = 0; i < nt; i++) {
        const gguf_tensor *t = gguf_tensor_at(src, i);
        CHECK_EQ_INT(gguf_writer_write(w, t->data, t->n_bytes), INF_OK);
    }
    CHECK_EQ_INT(gguf_writer_finish(w), INF_OK);
    gguf_file *f = NULL;
    CHECK_EQ_INT(gguf_open(path, &f), INF_OK);
    if (f) {
        CHECK_EQ_INT(gguf_n_kv(f), gguf_n_kv(src));
        int bad = 0;
        for (int64_t i = 0; i < gguf_n_kv(src) && i < gguf_n_kv(f); i++)
            if (!kv_equal(gguf_kv_at(src, i), gguf_kv_at(f, i))) bad++;
        CHECK_MSG(bad == 0, "%s: %d keys differ after the copy", rel, bad);
        CHECK_EQ_INT(gguf_n_tensors(f), nt);
        for (int64_t i = 0; i < nt && i < gguf_n_tensors(f); i++) {
            const gguf_tensor *a = gguf_tensor_at(src, i), *b = gguf_tensor_at(f, i);
            CHECK(!strcmp(a->name, b->name) && a->type == b->type && a->n_bytes == b->n_bytes &&
                  !memcmp(a->data, b->data, a->n_bytes));
        }
        gguf_close(f);
    }
    // A v3 file with the default alignment, copied whole, is byte-identical.
    if (with_tensors && gguf_version(src) == 3) {
        size_t la = 0, lb = 0;
        uint8_t *a = slurp(src_path, &la), *b = slurp(path, &lb);
        CHECK_MSG(a && b && la == lb && !memcmp(a, b, la), "%s: copy is not byte-identical", rel);
        free(a);
        free(b);
    }
    gguf_close(src);
    unlink(path);
}

// ---- errors ----

static void test_errors(void) {
    char path[512], bad[600];
    tmp_path(path, sizeof path, "err.gguf");
    gguf_writer *w = NULL;

    snprintf(bad, sizeof bad, "%s/no/such/dir/x.gguf", tmpdir);
    CHECK_EQ_INT(gguf_writer_open(bad, &w), INF_ERR_IO);
    CHECK(w == NULL);
    CHECK(msg_has(bad) && msg_has("x.gguf.tmp"));

    // An existing output survives an abandoned writer, and the .tmp goes away.
    FILE *fp = fopen(path, "wb");
    fputs("precious", fp);
    fclose(fp);
    CHECK_EQ_INT(gguf_writer_open(path, &w), INF_OK);
    CHECK(tmp_exists(path));
    gguf_writer_set_u32(w, "a", 1);
    gguf_writer_add_tensor(w, "t", 1, (int64_t[]){4}, INF_TYPE_F32);
    gguf_writer_write(w, "12345678", 8);
    gguf_writer_free(w);
    CHECK(!tmp_exists(path));
    size_t len = 0;
    uint8_t *got = slurp(path, &len);
    CHECK(got && len == 8 && !memcmp(got, "precious", 8));
    free(got);

    // Bad tensor infos and keys.
    CHECK_EQ_INT(gguf_writer_open(path, &w), INF_OK);
    CHECK_EQ_INT(gguf_writer_add_tensor(w, "t", 1, (int64_t[]){4}, INF_TYPE_F32), INF_OK);
    CHECK_EQ_INT(gguf_writer_add_tensor(w, "t", 1, (int64_t[]){4}, INF_TYPE_F32), INF_ERR_INVALID_ARG);
    CHECK(msg_has("duplicate tensor 't'") && msg_has(path));
    char longname[80];
    memset(longname, 'n', 64);
    longname[64] = 0;
    CHECK_EQ_INT(gguf_writer_add_tensor(w, longname, 1, (int64_t[]){4}, INF_TYPE_F32), INF_ERR_INVALID_ARG);
    longname[63] = 0;
    CHECK_EQ_INT(gguf_writer_add_tensor(w, longname, 1, (int64_t[]){4}, INF_TYPE_F32), INF_OK);
    CHECK_EQ_INT(gguf_writer_add_tensor(w, "q", 2, (int64_t[]){48, 2}, INF_TYPE_Q4_0), INF_ERR_INVALID_ARG);
    CHECK(msg_has("not a multiple"));
    CHECK_EQ_INT(gguf_writer_add_tensor(w, "z", 2, (int64_t[]){32, 0}, INF_TYPE_Q4_0), INF_ERR_INVALID_ARG);
    CHECK_EQ_INT(gguf_writer_add_tensor(w, "d", 5, (int64_t[]){1, 1, 1, 1, 1}, INF_TYPE_F32),
                 INF_ERR_INVALID_ARG);
    CHECK_EQ_INT(gguf_writer_add_tensor(w, "u", 1, (int64_t[]){32}, (inf_type)16 /* IQ2_XXS */),
                 INF_ERR_UNSUPPORTED);
    CHECK_EQ_INT(gguf_writer_set_u32(w, "", 1), INF_ERR_INVALID_ARG);
    CHECK_EQ_INT(gguf_writer_set_u32(w, "general.alignment", 48), INF_ERR_INVALID_ARG);
    CHECK_EQ_INT(gguf_writer_set_u16(w, "general.alignment", 64), INF_ERR_INVALID_ARG);
    CHECK_EQ_INT(gguf_writer_set_arr(w, "s", GGUF_TYPE_STRING, NULL, 0), INF_ERR_INVALID_ARG);
    CHECK_EQ_INT(gguf_writer_set_arr(w, "b", GGUF_TYPE_BOOL, (const uint8_t[]){2}, 1), INF_ERR_INVALID_ARG);
    // Finishing with a tensor short of bytes fails, names it, and leaves nothing behind.
    CHECK_EQ_INT(gguf_writer_write(w, "abcd", 4), INF_OK);
    CHECK_EQ_INT(gguf_writer_set_u32(w, "late", 1), INF_ERR_INVALID_ARG); // metadata after data
    CHECK_EQ_INT(gguf_writer_add_tensor(w, "late", 1, (int64_t[]){4}, INF_TYPE_F32), INF_ERR_INVALID_ARG);
    unlink(path);
    CHECK_EQ_INT(gguf_writer_finish(w), INF_ERR_INVALID_ARG);
    CHECK(msg_has("tensor 't' got 4 of 16 bytes"));
    CHECK(!file_exists(path) && !tmp_exists(path));

    // Too many bytes: the error is sticky and finish reports it.
    CHECK_EQ_INT(gguf_writer_open(path, &w), INF_OK);
    CHECK_EQ_INT(gguf_writer_add_tensor(w, "t", 1, (int64_t[]){1}, INF_TYPE_F32), INF_OK);
    CHECK_EQ_INT(gguf_writer_write(w, "123456", 6), INF_ERR_INVALID_ARG);
    CHECK(msg_has("past the last tensor"));
    CHECK_EQ_INT(gguf_writer_set_u32(w, "x", 1), INF_ERR_INVALID_ARG);
    CHECK_EQ_INT(gguf_writer_finish(w), INF_ERR_INVALID_ARG);
    CHECK(msg_has("past the last tensor"));
    CHECK(!file_exists(path) && !tmp_exists(path));

    // A file without tensors or keys is valid.
    CHECK_EQ_INT(gguf_writer_open(path, &w), INF_OK);
    CHECK_EQ_INT(gguf_writer_finish(w), INF_OK);
    gguf_file *f = NULL;
    CHECK_EQ_INT(gguf_open(path, &f), INF_OK);
    CHECK(f && gguf_n_kv(f) == 0 && gguf_n_tensors(f) == 0);
    gguf_close(f);
    unlink(path);
}

// A write error (file size limit) fails with the path and errno text, and removes the .tmp.
static void test_write_error(void) {
    char path[512];
    tmp_path(path, sizeof path, "big.gguf");
    struct rlimit old;
    if (getrlimit(RLIMIT_FSIZE, &old) != 0) return;
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = old;
    lim.rlim_cur = 1 << 16;
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0) {
        printf("note: cannot lower RLIMIT_FSIZE, write-error test skipped\n");
        return;
    }
    gguf_writer *w = NULL;
    CHECK_EQ_INT(gguf_writer_open(path, &w), INF_OK);
    CHECK_EQ_INT(gguf_writer_add_tensor(w, "t", 1, (int64_t[]){1 << 20}, INF_TYPE_F32), INF_OK);
    float *buf = calloc(1 << 20, sizeof(float));
    inf_status st = INF_OK;
    for (int i = 0; i < 4 && st == INF_OK; i++)
        st = gguf_writer_write(w, buf + i * (1 << 18), (1 << 18) * sizeof(float));
    if (st == INF_OK)
        st = gguf_writer_finish(w);
    else
        gguf_writer_free(w);
    CHECK_EQ_INT(st, INF_ERR_IO);
    CHECK(msg_has(path) && msg_has("too large"));
    CHECK(!file_exists(path) && !tmp_exists(path));
    free(buf);
    setrlimit(RLIMIT_FSIZE, &old);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/inferno_test_gguf_write_%d", (int)getpid());
    if (mkdir(tmpdir, 0700) != 0) TEST_SKIP("cannot create %s", tmpdir);
    test_exact_bytes();
    test_read_back();
    test_copy_real("models/vocab/ggml-vocab-llama-spm.gguf", false);
    test_copy_real("models/stories260K.gguf", true);
    test_copy_real("models/tinyllamas-stories-260k-f32.gguf", true); // v1 input, written as v3
    test_errors();
    test_write_error();
    rmdir(tmpdir);
    return test_summary();
}
