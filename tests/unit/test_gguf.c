// test_gguf.c: the GGUF reader against real files and handcrafted broken ones.
//
// References: shared/golden/*.json (llama.cpp's view of each model's metadata and tensors), the
// synthetic manifest, and the tables of shared/models/README.md (versions, hyper-parameters, tensor
// type counts, parameter counts, vocabulary and merge counts), plus tokenizer pieces from the goldens
// looked up in the token arrays. Broken files are built byte by byte with tests/gguf_build.h, one table
// row per problem, each checking the status and a piece of the message. Not covered here: exhaustive
// truncation and byte garbling (test_gguf_truncate.c) and random inputs (tests/fuzz/fuzz_gguf.c).
#include "gguf/gguf.h"
#include "gguf_build.h"
#include "test.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LABEL "bad.gguf"

static void shared_path(char *buf, size_t cap, const char *rel) {
    snprintf(buf, cap, "%s/%s", test_shared_dir(), rel);
}

static bool file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static uint64_t file_size_of(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

static bool str_eq(gguf_str s, const char *c) { return s.len == strlen(c) && memcmp(s.ptr, c, s.len) == 0; }

// Structural invariants every successfully opened file must satisfy; returns the number of parameters.
static uint64_t check_structure(const gguf_file *f, const char *what) {
    uint64_t align = gguf_alignment(f);
    CHECK_MSG(align > 0 && (align & (align - 1)) == 0, "%s: alignment %llu", what, (unsigned long long)align);
    uint64_t data = gguf_data_offset(f), end_max = 0, n_params = 0;
    const uint8_t *base = gguf_base(f);
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        CHECK(t->offset % align == 0);
        CHECK((const uint8_t *)t->data == base + data + t->offset);
        CHECK(gguf_find_tensor(f, t->name) == t);
        uint64_t n = 1;
        for (int d = 0; d < GGUF_MAX_DIMS; d++) n *= (uint64_t)t->ne[d];
        CHECK_EQ_INT(t->n_elements, n);
        CHECK_EQ_INT(t->n_bytes, inf_row_size(t->type, t->ne[0]) * (n / (uint64_t)t->ne[0]));
        end_max = INF_MAX(end_max, t->offset + t->n_bytes);
        n_params += t->n_elements;
    }
    if (gguf_n_tensors(f) > 0) {
        CHECK(data % align == 0);
        CHECK_MSG(data + end_max == gguf_file_size(f), "%s: data %llu + end %llu != size %llu", what,
                  (unsigned long long)data, (unsigned long long)end_max,
                  (unsigned long long)gguf_file_size(f));
    }
    for (int64_t i = 0; i < gguf_n_kv(f); i++) {
        const gguf_kv *kv = gguf_kv_at(f, i);
        CHECK(gguf_find_kv(f, kv->key) == kv);
    }
    CHECK(gguf_kv_at(f, gguf_n_kv(f)) == NULL && gguf_kv_at(f, -1) == NULL);
    CHECK(gguf_tensor_at(f, gguf_n_tensors(f)) == NULL && gguf_tensor_at(f, -1) == NULL);
    CHECK(gguf_find_kv(f, "no.such.key") == NULL && gguf_find_tensor(f, "no.such.tensor") == NULL);
    return n_params;
}

static gguf_file *open_shared(const char *rel) {
    char path[4096];
    shared_path(path, sizeof path, rel);
    gguf_file *f = NULL;
    inf_status st = gguf_open(path, &f);
    CHECK_MSG(st == INF_OK, "%s: %s", rel, inf_last_error());
    if (f) CHECK_EQ_INT(gguf_file_size(f), file_size_of(path));
    return f;
}

static int64_t get_i64_or(const gguf_file *f, const char *key, int64_t dflt) {
    int64_t v = dflt;
    bool found = false;
    CHECK(gguf_get_i64(f, key, &v, &found) == INF_OK);
    return found ? v : dflt;
}

static int64_t count_type(const gguf_file *f, inf_type type) {
    int64_t n = 0;
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) n += gguf_tensor_at(f, i)->type == type;
    return n;
}

// ---- the model files, against shared/models/README.md ----

typedef struct {
    const char *file;
    uint32_t version;
    int64_t ctx, n_embd, n_layer, n_head, n_head_kv, n_ff, rope_dims;
    float rms_eps;
    int64_t vocab;
    bool has_output;
    int64_t n_f32, n_f16, n_q8_0;
    uint64_t n_params;
} model_row;

static const model_row k_models[] = {
    {"stories260K.gguf", 3, 2048, 64, 5, 8, 4, 172, 8, 1e-5f, 512, true, 48, 0, 0, 292800},
    {"tinyllamas-stories-260k-f32.gguf", 1, 512, 64, 5, 8, 4, 172, 8, 1e-5f, 512, true, 48, 0, 0, 292800},
    {"TinyStories-656K.f16.gguf", 3, 512, 128, 2, 8, 4, 384, 16, 1e-6f, 2048, false, 5, 15, 0, 656000},
    {"tinystories-656k-q8_0.gguf", 3, 512, 128, 2, 8, 4, 384, 16, 1e-6f, 2048, false, 5, 0, 15, 656000},
    {"llama-2-tiny-random.gguf", 3, 4096, 8, 1, 2, 2, 32, 4, 1e-5f, 32000, true, 3, 9, 0, 513048},
};

static void test_models(void) {
    for (size_t m = 0; m < INF_ARRAY_LEN(k_models); m++) {
        const model_row *r = &k_models[m];
        char rel[256];
        snprintf(rel, sizeof rel, "models/%s", r->file);
        gguf_file *f = open_shared(rel);
        if (!f) continue;
        CHECK_EQ_INT(gguf_version(f), r->version);
        CHECK_EQ_INT(gguf_alignment(f), 32);
        uint64_t n_params = check_structure(f, r->file);
        CHECK_EQ_INT(n_params, r->n_params);
        CHECK_EQ_INT(gguf_n_tensors(f), r->n_f32 + r->n_f16 + r->n_q8_0);
        CHECK_EQ_INT(count_type(f, INF_TYPE_F32), r->n_f32);
        CHECK_EQ_INT(count_type(f, INF_TYPE_F16), r->n_f16);
        CHECK_EQ_INT(count_type(f, INF_TYPE_Q8_0), r->n_q8_0);
        CHECK_EQ_INT(get_i64_or(f, "llama.context_length", -1), r->ctx);
        CHECK_EQ_INT(get_i64_or(f, "llama.embedding_length", -1), r->n_embd);
        CHECK_EQ_INT(get_i64_or(f, "llama.block_count", -1), r->n_layer);
        CHECK_EQ_INT(get_i64_or(f, "llama.attention.head_count", -1), r->n_head);
        CHECK_EQ_INT(get_i64_or(f, "llama.attention.head_count_kv", -1), r->n_head_kv);
        CHECK_EQ_INT(get_i64_or(f, "llama.feed_forward_length", -1), r->n_ff);
        CHECK_EQ_INT(get_i64_or(f, "llama.rope.dimension_count", -1), r->rope_dims);
        CHECK_EQ_INT(get_i64_or(f, "tokenizer.ggml.bos_token_id", -1), 1);
        CHECK_EQ_INT(get_i64_or(f, "tokenizer.ggml.eos_token_id", -1), 2);
        float eps = 0;
        bool found = false;
        CHECK(gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &eps, &found) == INF_OK && found);
        CHECK_EQ_INT(eps == r->rms_eps, 1);
        const char *arch = NULL;
        CHECK(gguf_get_str(f, "general.architecture", &arch, &found) == INF_OK && found);
        CHECK_STR(arch, "llama");
        const gguf_kv *tokens = NULL, *scores = NULL;
        CHECK(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &tokens, &found) == INF_OK && found);
        CHECK(gguf_get_arr(f, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, &scores, &found) == INF_OK &&
              found);
        if (tokens) CHECK_EQ_INT(tokens->arr_n, r->vocab);
        if (scores) CHECK_EQ_INT(scores->arr_n, r->vocab);
        if (tokens) CHECK(tokens->arr_strs != NULL && str_eq(tokens->arr_strs[r->vocab - 1], "") == false);
        CHECK_EQ_INT(gguf_find_tensor(f, "output.weight") != NULL, r->has_output);
        const gguf_tensor *emb = gguf_find_tensor(f, "token_embd.weight");
        CHECK(emb != NULL);
        if (emb) {
            CHECK_EQ_INT(emb->n_dims, 2);
            CHECK_EQ_INT(emb->ne[0], r->n_embd);
            CHECK_EQ_INT(emb->ne[1], r->vocab);
        }
        gguf_close(f);
    }

    // The v2 Q8_0 file quantizes ffn_down ([172, 64]) over the flattened tensor, so its rows are not whole
    // Q8_0 blocks. The reader accepts that in v1/v2 files only, marks the tensor flat_blocks and sizes it as
    // a flat run of blocks (the loader dequantizes it whole); v3 files with such rows are refused (table).
    {
        gguf_file *f = open_shared("models/tinyllamas-stories-260k-q8_0.gguf");
        CHECK(f != NULL);
        if (f) {
            const gguf_tensor *t = gguf_find_tensor(f, "blk.0.ffn_down.weight");
            CHECK(t != NULL && t->flat_blocks);
            if (t) CHECK_EQ_INT(t->n_bytes, 172 * 64 / 32 * 34);
            const gguf_tensor *q = gguf_find_tensor(f, "blk.0.attn_q.weight");
            CHECK(q != NULL && !q->flat_blocks);
            const gguf_tensor *last = gguf_tensor_at(f, gguf_n_tensors(f) - 1);
            uint64_t end = 0;
            for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
                const gguf_tensor *ti = gguf_tensor_at(f, i);
                if (ti->offset + ti->n_bytes > end) end = ti->offset + ti->n_bytes;
            }
            (void)last;
            CHECK_EQ_INT(gguf_data_offset(f) + end, gguf_file_size(f));
            gguf_close(f);
        }
    }

    // The 260K files hold the same weights: the v1 F32 tensors are byte-identical to the v3 ones, which
    // checks v1 dimension and offset decoding end to end.
    gguf_file *v3 = open_shared("models/stories260K.gguf");
    gguf_file *v1 = open_shared("models/tinyllamas-stories-260k-f32.gguf");
    if (v3 && v1) {
        const char *layout = NULL;
        CHECK(gguf_get_str(v1, "llama.tensor_data_layout", &layout, NULL) == INF_OK);
        CHECK_STR(layout, "Meta AI original pth");
        for (int64_t i = 0; i < gguf_n_tensors(v3); i++) {
            const gguf_tensor *a = gguf_tensor_at(v3, i);
            const gguf_tensor *b = gguf_find_tensor(v1, a->name);
            CHECK_MSG(b != NULL, "tensor %s missing", a->name);
            if (!b) continue;
            CHECK_EQ_INT(b->n_dims, a->n_dims);
            for (int d = 0; d < GGUF_MAX_DIMS; d++) CHECK_EQ_INT(b->ne[d], a->ne[d]);
            CHECK_MSG(b->n_bytes == a->n_bytes && memcmp(a->data, b->data, a->n_bytes) == 0,
                      "tensor %s differs between v1 and v3", a->name);
        }
        // Same vocabulary, through the v1 u32 string lengths too.
        const gguf_kv *t3 = gguf_find_kv(v3, "tokenizer.ggml.tokens"),
                      *t1 = gguf_find_kv(v1, "tokenizer.ggml.tokens");
        CHECK(t3 && t1 && t3->arr_n == t1->arr_n);
        for (uint64_t i = 0; t3 && t1 && i < t3->arr_n; i++) {
            CHECK(t3->arr_strs[i].len == t1->arr_strs[i].len &&
                  memcmp(t3->arr_strs[i].ptr, t1->arr_strs[i].ptr, t1->arr_strs[i].len) == 0);
        }
        const gguf_kv *s1 = gguf_find_kv(v1, "tokenizer.ggml.scores"),
                      *s3 = gguf_find_kv(v3, "tokenizer.ggml.scores");
        for (uint64_t i = 0; s1 && s3 && i < s3->arr_n; i++)
            CHECK(gguf_arr_f64(s1, i) == gguf_arr_f64(s3, i));
    }
    gguf_close(v1);
    gguf_close(v3);
}

// ---- vocab-only files, against the README table ----

typedef struct {
    const char *file, *arch, *model, *pre; // pre NULL: no tokenizer.ggml.pre key
    int64_t vocab, merges;                 // merges 0: no merges key
} vocab_row;

static const vocab_row k_vocabs[] = {
    {"ggml-vocab-baichuan.gguf", "baichuan", "llama", NULL, 64000, 0},
    {"ggml-vocab-bert-bge.gguf", "bert", "bert", "bert-bge", 30522, 0},
    {"ggml-vocab-deepseek-coder.gguf", "llama", "gpt2", "deepseek-coder", 32256, 31757},
    {"ggml-vocab-deepseek-llm.gguf", "llama", "gpt2", "deepseek-llm", 102400, 99757},
    {"ggml-vocab-falcon.gguf", "falcon", "gpt2", "falcon", 65024, 64784},
    {"ggml-vocab-gpt-2.gguf", "gpt2", "gpt2", "gpt-2", 50257, 50000},
    {"ggml-vocab-gpt-neox.gguf", "gptneox", "gpt2", NULL, 50432, 50009},
    {"ggml-vocab-llama-spm.gguf", "llama", "llama", "default", 32000, 0},
    {"ggml-vocab-mpt.gguf", "mpt", "gpt2", "mpt", 50432, 50009},
    {"ggml-vocab-phi-3.gguf", "phi3", "llama", "default", 32064, 0},
    {"ggml-vocab-refact.gguf", "refact", "gpt2", "refact", 49216, 48891},
    {"ggml-vocab-starcoder.gguf", "starcoder2", "gpt2", "starcoder", 49152, 48872},
};

static void test_vocabs(void) {
    for (size_t v = 0; v < INF_ARRAY_LEN(k_vocabs); v++) {
        const vocab_row *r = &k_vocabs[v];
        char rel[256];
        snprintf(rel, sizeof rel, "models/vocab/%s", r->file);
        gguf_file *f = open_shared(rel);
        if (!f) continue;
        CHECK_EQ_INT(gguf_version(f), 3);
        CHECK_EQ_INT(gguf_n_tensors(f), 0);
        check_structure(f, r->file);
        // No tensors and no padding: the data section is empty and starts at the end of the file.
        CHECK_EQ_INT(gguf_data_offset(f), gguf_file_size(f));
        const char *s = NULL;
        bool found = false;
        CHECK(gguf_get_str(f, "general.architecture", &s, &found) == INF_OK && found);
        CHECK_STR(s, r->arch);
        CHECK(gguf_get_str(f, "tokenizer.ggml.model", &s, &found) == INF_OK && found);
        CHECK_STR(s, r->model);
        s = NULL;
        CHECK(gguf_get_str(f, "tokenizer.ggml.pre", &s, &found) == INF_OK);
        CHECK_EQ_INT(found, r->pre != NULL);
        if (r->pre) CHECK_STR(s, r->pre);
        const gguf_kv *kv = NULL;
        CHECK(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &kv, &found) == INF_OK && found);
        if (kv) CHECK_EQ_INT(kv->arr_n, r->vocab);
        kv = NULL;
        CHECK(gguf_get_arr(f, "tokenizer.ggml.merges", GGUF_TYPE_STRING, &kv, &found) == INF_OK);
        CHECK_EQ_INT(found, r->merges > 0);
        if (kv) {
            CHECK_EQ_INT(kv->arr_n, r->merges);
            // Every merge is "left right": exactly one separating space, inside the string.
            int64_t bad = 0;
            for (uint64_t i = 0; i < kv->arr_n; i++) {
                gguf_str m = kv->arr_strs[i];
                const char *sp = memchr(m.ptr, ' ', m.len);
                bad += !sp || sp == m.ptr || sp == m.ptr + m.len - 1;
            }
            CHECK_EQ_INT(bad, 0);
        }
        gguf_close(f);
    }
}

// ---- goldens ----

static json_object *load_json(const char *rel) {
    char path[4096];
    shared_path(path, sizeof path, rel);
    json_object *j = json_object_from_file(path);
    CHECK_MSG(j != NULL, "cannot parse %s", path);
    return j;
}

static json_object *jget(json_object *o, const char *key) {
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

// Compares one golden metadata value with the file's entry of the same key.
static void check_golden_value(const gguf_file *f, const char *key, json_object *jv, const char *what) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    CHECK_MSG(kv != NULL, "%s: key %s missing", what, key);
    if (!kv) return;
    switch (json_object_get_type(jv)) {
    case json_type_string: {
        const char *s = NULL;
        CHECK(gguf_get_str(f, key, &s, NULL) == INF_OK);
        CHECK_STR(s, json_object_get_string(jv));
        break;
    }
    case json_type_int: {
        int64_t v = 0;
        CHECK_MSG(gguf_get_i64(f, key, &v, NULL) == INF_OK, "%s: %s", what, inf_last_error());
        CHECK_EQ_INT(v, json_object_get_int64(jv));
        break;
    }
    case json_type_double: {
        float v = 0;
        CHECK_MSG(gguf_get_f32(f, key, &v, NULL) == INF_OK, "%s: %s", what, inf_last_error());
        CHECK_MSG((double)v == json_object_get_double(jv), "%s: %s %.17g vs %.17g", what, key, (double)v,
                  json_object_get_double(jv));
        break;
    }
    case json_type_boolean: {
        bool v = false;
        CHECK(gguf_get_bool(f, key, &v, NULL) == INF_OK);
        CHECK_EQ_INT(v, json_object_get_boolean(jv));
        break;
    }
    default: CHECK_MSG(false, "%s: unexpected golden value type for %s", what, key);
    }
}

// Metadata and tensor list of one golden file against its model. The golden leaves out the big
// tokenizer arrays, so every non-array key must match one to one.
static void check_golden(const char *golden_rel, const char *model_rel) {
    json_object *j = load_json(golden_rel);
    gguf_file *f = open_shared(model_rel);
    if (!j || !f) {
        json_object_put(j);
        gguf_close(f);
        return;
    }
    CHECK_EQ_INT(json_object_get_int64(jget(j, "model_size_bytes")), gguf_file_size(f));
    json_object *meta = jget(j, "metadata");
    int64_t n_golden = 0;
    json_object_object_foreach(meta, gkey, gval) {
        check_golden_value(f, gkey, gval, golden_rel);
        n_golden++;
    }
    int64_t n_scalar = 0;
    for (int64_t i = 0; i < gguf_n_kv(f); i++) n_scalar += gguf_kv_at(f, i)->type != GGUF_TYPE_ARRAY;
    CHECK_EQ_INT(n_scalar, n_golden);

    json_object *tensors = jget(j, "tensors");
    size_t n = tensors ? json_object_array_length(tensors) : 0;
    CHECK_EQ_INT(n, gguf_n_tensors(f));
    for (size_t i = 0; i < n && (int64_t)i < gguf_n_tensors(f); i++) {
        json_object *jt = json_object_array_get_idx(tensors, i);
        const gguf_tensor *t = gguf_tensor_at(f, (int64_t)i);
        CHECK_STR(t->name, json_object_get_string(jget(jt, "name")));
        CHECK_STR(inf_type_name(t->type), json_object_get_string(jget(jt, "type")));
        json_object *ne = jget(jt, "ne");
        CHECK_EQ_INT(json_object_array_length(ne), t->n_dims);
        for (size_t d = 0; d < json_object_array_length(ne) && d < GGUF_MAX_DIMS; d++) {
            CHECK_EQ_INT(t->ne[d], json_object_get_int64(json_object_array_get_idx(ne, d)));
        }
    }
    json_object *counts = jget(j, "tensor_type_counts");
    json_object_object_foreach(counts, tname, tcount) {
        int64_t c = 0;
        for (int64_t i = 0; i < gguf_n_tensors(f); i++)
            c += strcmp(inf_type_name(gguf_tensor_at(f, i)->type), tname) == 0;
        CHECK_EQ_INT(c, json_object_get_int64(tcount));
    }

    // Tokenizer pieces in the golden are the vocabulary strings of the ids: look them up.
    const gguf_kv *tokens = gguf_find_kv(f, "tokenizer.ggml.tokens");
    json_object *cases = jget(jget(j, "tokenization"), "cases");
    for (size_t c = 0; tokens && cases && c < json_object_array_length(cases); c++) {
        json_object *jc = json_object_array_get_idx(cases, c);
        json_object *ids = jget(jc, "ids_without_bos"), *pieces = jget(jc, "pieces_without_bos");
        for (size_t k = 0; ids && pieces && k < json_object_array_length(ids); k++) {
            int64_t id = json_object_get_int64(json_object_array_get_idx(ids, k));
            CHECK(id >= 0 && (uint64_t)id < tokens->arr_n);
            if (id >= 0 && (uint64_t)id < tokens->arr_n) {
                CHECK(str_eq(tokens->arr_strs[id],
                             json_object_get_string(json_object_array_get_idx(pieces, k))));
            }
        }
    }
    gguf_close(f);
    json_object_put(j);
}

static const char *const k_micro[] = {
    "F32",  "F16",  "BF16",   "Q8_0",   "Q4_0",   "Q4_1", "Q5_0",
    "Q5_1", "Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K", "Q4_K_M-mix",
};

static void test_goldens(void) {
    check_golden("golden/stories260K.json", "models/stories260K.gguf");
    for (size_t i = 0; i < INF_ARRAY_LEN(k_micro); i++) {
        char g[256], m[256];
        snprintf(g, sizeof g, "golden/micro-%s.json", k_micro[i]);
        snprintf(m, sizeof m, "models/synthetic/micro-%s.gguf", k_micro[i]);
        check_golden(g, m);
    }

    // Pieces of the llama-spm vocab golden, looked up in the vocab-only file.
    json_object *j = load_json("golden/vocab-llama-spm.json");
    gguf_file *f = open_shared("models/vocab/ggml-vocab-llama-spm.gguf");
    const gguf_kv *tokens = f ? gguf_find_kv(f, "tokenizer.ggml.tokens") : NULL;
    json_object *cases = j ? jget(jget(j, "tokenization"), "cases") : NULL;
    int64_t looked_up = 0;
    for (size_t c = 0; tokens && cases && c < json_object_array_length(cases); c++) {
        json_object *jc = json_object_array_get_idx(cases, c);
        json_object *ids = jget(jc, "ids_without_bos"), *pieces = jget(jc, "pieces_without_bos");
        for (size_t k = 0; k < json_object_array_length(ids); k++) {
            int64_t id = json_object_get_int64(json_object_array_get_idx(ids, k));
            CHECK(id >= 0 && (uint64_t)id < tokens->arr_n);
            if (id < 0 || (uint64_t)id >= tokens->arr_n) continue;
            CHECK(str_eq(tokens->arr_strs[id], json_object_get_string(json_object_array_get_idx(pieces, k))));
            looked_up++;
        }
    }
    CHECK(looked_up > 20);
    gguf_close(f);
    json_object_put(j);
}

// The synthetic manifest: sizes, file types, per-tensor types and hyper-parameters.
static void test_manifest(void) {
    json_object *man = load_json("models/synthetic/manifest.json");
    if (!man) return;
    int files = 0;
    json_object_object_foreach(man, fname, entry) {
        char rel[256];
        snprintf(rel, sizeof rel, "models/synthetic/%s", fname);
        gguf_file *f = open_shared(rel);
        if (!f) continue;
        files++;
        CHECK_EQ_INT(gguf_file_size(f), json_object_get_int64(jget(entry, "size_bytes")));
        CHECK_EQ_INT(get_i64_or(f, "general.file_type", -1),
                     json_object_get_int64(jget(entry, "general.file_type")));
        CHECK_EQ_INT(get_i64_or(f, "llama.embedding_length", -1),
                     json_object_get_int64(jget(entry, "n_embd")));
        CHECK_EQ_INT(get_i64_or(f, "llama.block_count", -1), json_object_get_int64(jget(entry, "n_layer")));
        CHECK_EQ_INT(get_i64_or(f, "llama.attention.head_count_kv", -1),
                     json_object_get_int64(jget(entry, "n_head_kv")));
        CHECK_EQ_INT(get_i64_or(f, "llama.feed_forward_length", -1),
                     json_object_get_int64(jget(entry, "n_ff")));
        const gguf_kv *tokens = gguf_find_kv(f, "tokenizer.ggml.tokens");
        CHECK(tokens && (int64_t)tokens->arr_n == json_object_get_int64(jget(entry, "n_vocab")));
        float eps = 0;
        CHECK(gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &eps, NULL) == INF_OK);
        CHECK((double)eps == json_object_get_double(jget(entry, "rms_eps")));
        uint64_t n_params = check_structure(f, fname);
        CHECK_EQ_INT(n_params, json_object_get_int64(jget(entry, "n_params")));
        json_object *types = jget(entry, "tensor_types");
        int64_t listed = 0;
        json_object_object_foreach(types, tname, ttype) {
            const gguf_tensor *t = gguf_find_tensor(f, tname);
            CHECK_MSG(t != NULL, "%s: tensor %s missing", fname, tname);
            if (t) CHECK_STR(inf_type_name(t->type), json_object_get_string(ttype));
            listed++;
        }
        CHECK_EQ_INT(listed, gguf_n_tensors(f));
        gguf_close(f);
    }
    CHECK_EQ_INT(files, 14);
    json_object_put(man);
}

// ---- handcrafted files ----

// A small valid file: 3 kvs (string, alignment, string array), tensors "a" F32 [4, 2] at 0 and
// "b" Q8_0 [32] at 32, data section with 32 + 34 bytes of recognizable content.
static void build_valid(gguf_build *b, uint32_t version) {
    gb_init(b, version);
    gb_header(b, 2, 3);
    gb_kv_str(b, "general.architecture", "llama");
    gb_kv_u32(b, "general.alignment", 32);
    const char *toks[] = {"<unk>", "a", "", "\xe2\x96\x81the"};
    gb_kv_arr_str(b, "tokenizer.ggml.tokens", toks, 4);
    gb_tensor_info(b, "a", 2, (int64_t[]){4, 2}, INF_TYPE_F32, 0);
    gb_tensor_info(b, "b", 1, (int64_t[]){32}, INF_TYPE_Q8_0, 32);
    gb_pad(b, 32);
    for (int i = 0; i < 8; i++) gb_f32(b, (float)i);
    gb_zeros(b, 34);
}

static void test_valid_handcrafted(void) {
    for (uint32_t v = 1; v <= 3; v++) {
        gguf_build b;
        build_valid(&b, v);
        gguf_file *f = NULL;
        inf_status st = gguf_open_memory(b.data, b.len, "valid.gguf", &f);
        CHECK_MSG(st == INF_OK, "v%u: %s", v, inf_last_error());
        if (f) {
            CHECK_EQ_INT(gguf_version(f), v);
            CHECK_EQ_INT(gguf_n_kv(f), 3);
            CHECK_EQ_INT(gguf_n_tensors(f), 2);
            CHECK(gguf_base(f) == b.data);
            const gguf_kv *kv = gguf_kv_at(f, 2);
            CHECK_STR(kv->key, "tokenizer.ggml.tokens");
            CHECK(kv->type == GGUF_TYPE_ARRAY && kv->arr_type == GGUF_TYPE_STRING && kv->arr_n == 4);
            CHECK(str_eq(kv->arr_strs[0], "<unk>") && str_eq(kv->arr_strs[2], "") &&
                  str_eq(kv->arr_strs[3], "\xe2\x96\x81the"));
            const gguf_tensor *a = gguf_find_tensor(f, "a"), *bt = gguf_find_tensor(f, "b");
            CHECK(a && bt);
            if (a && bt) {
                CHECK_EQ_INT(a->n_elements, 8);
                CHECK_EQ_INT(a->n_bytes, 32);
                CHECK_EQ_INT(a->ne[2], 1);
                CHECK_EQ_INT(bt->n_bytes, 34);
                float x;
                memcpy(&x, (const float *)a->data + 7, 4);
                CHECK_EQ_INT(x, 7);
                CHECK_EQ_INT(gguf_data_offset(f) + 32 + 34, b.len);
            }
            check_structure(f, "valid");
            gguf_close(f);
        }
        gb_free(&b);
    }

    // Minimal: no tensors, no kvs. The data section is empty and at the end of the 24 bytes.
    {
        gguf_build b;
        gb_init(&b, 3);
        gb_header(&b, 0, 0);
        gguf_file *f = NULL;
        CHECK(gguf_open_memory(b.data, b.len, "min.gguf", &f) == INF_OK);
        if (f) {
            CHECK_EQ_INT(gguf_data_offset(f), 24);
            CHECK_EQ_INT(gguf_alignment(f), GGUF_DEFAULT_ALIGNMENT);
            gguf_close(f);
        }
        gb_free(&b);
    }

    // Alignment 64, 4-D Q4_K tensor, a 64-byte name, nested arrays, a string with a NUL byte, empty
    // arrays, bool arrays, trailing bytes after the data: all valid.
    {
        gguf_build b;
        gb_init(&b, 3);
        gb_header(&b, 2, 7);
        gb_kv_u32(&b, "general.alignment", 64);
        gb_kv_head(&b, "nested", GB_ARRAY);
        gb_arr_head(&b, GB_ARRAY, 2);
        gb_arr_head(&b, GB_I32, 2);
        gb_u32(&b, 1);
        gb_u32(&b, 2);
        gb_arr_head(&b, GB_STRING, 1);
        gb_str(&b, "x");
        gb_kv_head(&b, "with.nul", GB_STRING);
        gb_strn(&b, "a\0b", 3);
        gb_kv_head(&b, "empty.arr", GB_ARRAY);
        gb_arr_head(&b, GB_STRING, 0);
        gb_kv_head(&b, "bools", GB_ARRAY);
        gb_arr_head(&b, GB_BOOL, 3);
        gb_u8(&b, 1);
        gb_u8(&b, 0);
        gb_u8(&b, 1);
        gb_kv_str(&b, "empty.str", "");
        gb_kv_u64(&b, "v64", 5);
        char name64[65];
        memset(name64, 'n', 64);
        name64[64] = '\0';
        gb_tensor_info(&b, name64, 4, (int64_t[]){256, 3, 2, 1}, INF_TYPE_Q4_K, 0);
        gb_tensor_info(&b, "f16", 1, (int64_t[]){3}, INF_TYPE_F16, 6 * 144 + 32); // 896 = 14 * 64
        gb_pad(&b, 64);
        gb_zeros(&b, 6 * 144 + 32 + 6 + 100);
        gguf_file *f = NULL;
        inf_status st = gguf_open_memory(b.data, b.len, "edge.gguf", &f);
        CHECK_MSG(st == INF_OK, "%s", inf_last_error());
        if (f) {
            CHECK_EQ_INT(gguf_alignment(f), 64);
            CHECK_EQ_INT(gguf_data_offset(f) % 64, 0);
            const gguf_kv *n = gguf_find_kv(f, "nested");
            CHECK(n && n->arr_type == GGUF_TYPE_ARRAY && n->arr_n == 2 && n->arr_strs == NULL);
            const gguf_kv *s = gguf_find_kv(f, "with.nul");
            CHECK(s && s->v.str.len == 3 && memcmp(s->v.str.ptr, "a\0b", 3) == 0);
            const char *cs = NULL;
            bool found = false;
            CHECK(gguf_get_str(f, "with.nul", &cs, &found) == INF_ERR_FORMAT && found && cs == NULL);
            CHECK(strstr(inf_last_error(), "NUL") != NULL);
            CHECK(gguf_get_str(f, "empty.str", &cs, &found) == INF_OK && found);
            CHECK_STR(cs, "");
            const gguf_kv *e = gguf_find_kv(f, "empty.arr");
            CHECK(e && e->arr_n == 0 && e->arr_strs == NULL);
            const gguf_kv *bo = NULL;
            CHECK(gguf_get_arr(f, "bools", GGUF_TYPE_BOOL, &bo, NULL) == INF_OK && bo);
            if (bo) CHECK(gguf_arr_u64(bo, 0) == 1 && gguf_arr_u64(bo, 1) == 0 && gguf_arr_u64(bo, 2) == 1);
            const gguf_tensor *t = gguf_find_tensor(f, name64);
            CHECK(t && t->n_dims == 4 && t->n_elements == 1536 && t->n_bytes == 6 * 144 &&
                  t->type == INF_TYPE_Q4_K);
            const gguf_tensor *h = gguf_find_tensor(f, "f16");
            CHECK(h && h->n_bytes == 6 && h->offset == 896);
            gguf_close(f);
        }
        gb_free(&b);
    }
}

// Opens a built file that must fail; checks the status, the "bad.gguf: " prefix and a message piece.
static void expect_fail(const gguf_build *b, inf_status want, const char *piece, const char *row) {
    gguf_file *f = (gguf_file *)1;
    inf_status st = gguf_open_memory(b->data, b->len, LABEL, &f);
    const char *msg = inf_last_error();
    CHECK_MSG(st == want, "%s: status %s, want %s (%s)", row, inf_status_str(st), inf_status_str(want), msg);
    CHECK_MSG(f == NULL, "%s: handle not cleared", row);
    CHECK_MSG(strncmp(msg, LABEL ": ", strlen(LABEL) + 2) == 0, "%s: message '%s' lacks the label", row, msg);
    CHECK_MSG(strstr(msg, piece) != NULL, "%s: message '%s' lacks '%s'", row, msg, piece);
    CHECK_MSG(strchr(msg, '\n') == NULL, "%s: message has a newline", row);
    if (st == INF_OK) gguf_close(f);
}

// One kv of the given key and u32 value, after a header claiming n_tensors tensors and n_kv kvs.
static void start(gguf_build *b, uint64_t n_tensors, uint64_t n_kv) {
    gb_init(b, 3);
    gb_header(b, n_tensors, n_kv);
}

// A file with one kv ("general.architecture") and one tensor of the given shape, type and offset, with
// data padding and n_data data bytes.
static void one_tensor(gguf_build *b, const char *name, uint32_t n_dims, const int64_t *ne, uint32_t type,
                       uint64_t offset, size_t n_data) {
    start(b, 1, 1);
    gb_kv_str(b, "general.architecture", "llama");
    gb_tensor_info(b, name, n_dims, ne, type, offset);
    gb_pad(b, 32);
    gb_zeros(b, n_data);
}

static void row_bad_magic(gguf_build *b) {
    build_valid(b, 3);
    gb_patch(b, 0, "GGML", 4);
}
static void row_empty(gguf_build *b) { gb_init(b, 3); }
static void row_short_magic(gguf_build *b) {
    gb_init(b, 3);
    gb_bytes(b, "GGU", 3);
}
static void row_version4(gguf_build *b) {
    gb_init(b, 4);
    gb_header(b, 0, 0);
}
static void row_version0(gguf_build *b) {
    gb_init(b, 0);
    gb_header(b, 0, 0);
}
static void row_big_endian(gguf_build *b) {
    gb_init(b, 0x03000000u);
    gb_header(b, 0, 0);
}
static void row_trunc_header(gguf_build *b) {
    gb_init(b, 3);
    gb_bytes(b, "GGUF", 4);
    gb_u32(b, 3);
    gb_u32(b, 0);
}
static void row_absurd_kv(gguf_build *b) {
    start(b, 0, (uint64_t)1 << 40);
    gb_kv_u32(b, "a", 1);
}
static void row_absurd_tensors(gguf_build *b) { start(b, UINT64_MAX, 0); }
static void row_too_few_kv(gguf_build *b) {
    start(b, 0, 3);
    gb_kv_u32(b, "a", 1);
    gb_kv_u32(b, "b", 2);
}
static void row_kv_truncated(gguf_build *b) {
    start(b, 0, 3);
    gb_kv_u32(b, "a", 1);
    gb_kv_str(b, "b", "0123456789abcdef0123");
    gb_u32(b, 0);
}
static void row_key_len_huge(gguf_build *b) {
    start(b, 0, 1);
    gb_u64(b, (uint64_t)1 << 62);
    gb_zeros(b, 16);
}
static void row_key_len_cap(gguf_build *b) {
    start(b, 0, 1);
    gb_u64(b, 70000);
    for (int i = 0; i < 70000; i++) gb_u8(b, 'k');
    gb_u32(b, GB_U8);
    gb_u8(b, 0);
}
static void row_key_empty(gguf_build *b) {
    start(b, 0, 1);
    gb_kv_u32(b, "", 1);
}
static void row_key_nul(gguf_build *b) {
    start(b, 0, 1);
    gb_strn(b, "ab\0c", 4);
    gb_u32(b, GB_U32);
    gb_u32(b, 1);
}
static void row_value_type(gguf_build *b) {
    start(b, 0, 1);
    gb_kv_head(b, "x.y", 13);
    gb_u32(b, 0);
}
static void row_value_type_huge(gguf_build *b) {
    start(b, 0, 1);
    gb_kv_head(b, "x.y", 0x80000000u);
    gb_u32(b, 0);
}
static void row_str_len_huge(gguf_build *b) {
    start(b, 0, 1);
    gb_kv_head(b, "s", GB_STRING);
    gb_u64(b, UINT64_MAX);
    gb_zeros(b, 8);
}
static void row_str_truncated(gguf_build *b) {
    start(b, 0, 1);
    gb_kv_head(b, "s", GB_STRING);
    gb_u64(b, 10);
    gb_bytes(b, "abc", 3);
}
static void row_value_truncated(gguf_build *b) {
    start(b, 0, 1);
    gb_kv_head(b, "v", GB_U64);
    gb_u32(b, 7);
}
static void row_arr_count_huge(gguf_build *b) {
    start(b, 0, 1);
    gb_kv_head(b, "arr", GB_ARRAY);
    gb_arr_head(b, GB_U32, (uint64_t)1 << 61);
    gb_zeros(b, 16);
}
static void row_arr_count_short(gguf_build *b) {
    start(b, 0, 1);
    gb_kv_head(b, "arr", GB_ARRAY);
    gb_arr_head(b, GB_F32, 5);
    gb_zeros(b, 16);
}
static void row_arr_str_count_huge(gguf_build *b) {
    start(b, 0, 1);
    gb_kv_head(b, "toks", GB_ARRAY);
    gb_arr_head(b, GB_STRING, UINT64_MAX / 2);
    gb_zeros(b, 64);
}
static void row_arr_str_elem_huge(gguf_build *b) {
    start(b, 0, 1);
    gb_kv_head(b, "toks", GB_ARRAY);
    gb_arr_head(b, GB_STRING, 2);
    gb_str(b, "ok");
    gb_u64(b, (uint64_t)1 << 40);
    gb_zeros(b, 8);
}
static void row_arr_elem_type(gguf_build *b) {
    start(b, 0, 1);
    gb_kv_head(b, "arr", GB_ARRAY);
    gb_arr_head(b, 99, 1);
    gb_zeros(b, 8);
}
static void row_arr_nested_deep(gguf_build *b) {
    start(b, 0, 1);
    gb_kv_head(b, "deep", GB_ARRAY);
    for (int i = 0; i < 20; i++) gb_arr_head(b, GB_ARRAY, 1);
    gb_arr_head(b, GB_U8, 0);
}
static void row_arr_nested_huge(gguf_build *b) {
    start(b, 0, 1);
    gb_kv_head(b, "nest", GB_ARRAY);
    gb_arr_head(b, GB_ARRAY, 1);
    gb_arr_head(b, GB_ARRAY, UINT64_MAX);
    gb_zeros(b, 32);
}
static void row_bool_value(gguf_build *b) {
    start(b, 0, 1);
    gb_kv_head(b, "flag", GB_BOOL);
    gb_u8(b, 2);
}
static void row_bool_array(gguf_build *b) {
    start(b, 0, 1);
    gb_kv_head(b, "flags", GB_ARRAY);
    gb_arr_head(b, GB_BOOL, 3);
    gb_u8(b, 0);
    gb_u8(b, 5);
    gb_u8(b, 1);
}
static void row_dup_key(gguf_build *b) {
    start(b, 0, 3);
    gb_kv_u32(b, "a.b", 1);
    gb_kv_u32(b, "c", 1);
    gb_kv_str(b, "a.b", "x");
}
static void row_align_u64(gguf_build *b) {
    start(b, 0, 1);
    gb_kv_u64(b, "general.alignment", 32);
}
static void row_align_str(gguf_build *b) {
    start(b, 0, 1);
    gb_kv_str(b, "general.alignment", "32");
}
static void row_align_zero(gguf_build *b) {
    start(b, 0, 1);
    gb_kv_u32(b, "general.alignment", 0);
}
static void row_align_48(gguf_build *b) {
    start(b, 0, 1);
    gb_kv_u32(b, "general.alignment", 48);
}
static void row_name_empty(gguf_build *b) { one_tensor(b, "", 1, (int64_t[]){4}, INF_TYPE_F32, 0, 16); }
static void row_name_nul(gguf_build *b) {
    start(b, 1, 0);
    gb_strn(b, "w\0x", 3);
    gb_u32(b, 1);
    gb_u64(b, 4);
    gb_u32(b, INF_TYPE_F32);
    gb_u64(b, 0);
    gb_pad(b, 32);
    gb_zeros(b, 16);
}
static void row_name_long(gguf_build *b) {
    char name[66];
    memset(name, 'x', 65);
    name[65] = '\0';
    one_tensor(b, name, 1, (int64_t[]){4}, INF_TYPE_F32, 0, 16);
}
static void row_dup_tensor(gguf_build *b) {
    start(b, 2, 0);
    gb_tensor_info(b, "w", 1, (int64_t[]){8}, INF_TYPE_F32, 0);
    gb_tensor_info(b, "w", 1, (int64_t[]){8}, INF_TYPE_F32, 32);
    gb_pad(b, 32);
    gb_zeros(b, 64);
}
static void row_ndims0(gguf_build *b) { one_tensor(b, "w", 0, (int64_t[]){4}, INF_TYPE_F32, 0, 16); }
static void row_ndims5(gguf_build *b) {
    one_tensor(b, "w", 5, (int64_t[]){4, 1, 1, 1, 1}, INF_TYPE_F32, 0, 16);
}
static void row_ne_zero(gguf_build *b) { one_tensor(b, "w", 2, (int64_t[]){4, 0}, INF_TYPE_F32, 0, 16); }
static void row_ne_negative(gguf_build *b) { one_tensor(b, "w", 2, (int64_t[]){4, -3}, INF_TYPE_F32, 0, 16); }
static void row_ne_overflow(gguf_build *b) {
    int64_t big = (int64_t)1 << 32;
    one_tensor(b, "w", 3, (int64_t[]){big, big, big}, INF_TYPE_F32, 0, 16);
}
static void row_bytes_overflow(gguf_build *b) {
    one_tensor(b, "w", 1, (int64_t[]){(int64_t)1 << 62}, INF_TYPE_F32, 0, 16);
}
static void row_row_block(gguf_build *b) { one_tensor(b, "w", 2, (int64_t[]){33, 2}, INF_TYPE_Q8_0, 0, 128); }
static void row_type_iq2(gguf_build *b) { one_tensor(b, "w", 1, (int64_t[]){256}, 16, 0, 256); }
static void row_type_removed(gguf_build *b) { one_tensor(b, "w", 1, (int64_t[]){32}, 4, 0, 256); }
static void row_type_unknown(gguf_build *b) { one_tensor(b, "w", 1, (int64_t[]){32}, 77, 0, 256); }
static void row_offset_unaligned(gguf_build *b) {
    one_tensor(b, "w", 1, (int64_t[]){4}, INF_TYPE_F32, 4, 32);
}
static void row_offset_past_end(gguf_build *b) {
    one_tensor(b, "w", 1, (int64_t[]){4}, INF_TYPE_F32, 64, 32);
}
static void row_offset_overflow(gguf_build *b) {
    one_tensor(b, "w", 1, (int64_t[]){4}, INF_TYPE_F32, UINT64_MAX - 31, 32);
}
static void row_data_short(gguf_build *b) { one_tensor(b, "w", 1, (int64_t[]){8}, INF_TYPE_F32, 0, 31); }
static void row_data_start_past_end(gguf_build *b) {
    start(b, 1, 0);
    gb_tensor_info(b, "w", 1, (int64_t[]){1}, INF_TYPE_F32, 0);
}
static void row_overlap(gguf_build *b) {
    start(b, 2, 0);
    gb_tensor_info(b, "first", 1, (int64_t[]){16}, INF_TYPE_F32, 0);  // bytes [0, 64)
    gb_tensor_info(b, "second", 1, (int64_t[]){8}, INF_TYPE_F32, 32); // bytes [32, 64)
    gb_pad(b, 32);
    gb_zeros(b, 64);
}
static void row_tensor_count_short(gguf_build *b) {
    start(b, 2, 1);
    gb_kv_str(b, "general.name", "a name long enough that the header's tensor count passes its first check");
    gb_tensor_info(b, "w", 1, (int64_t[]){8}, INF_TYPE_F32, 0);
}
static void row_tensor_truncated(gguf_build *b) {
    start(b, 1, 0);
    gb_str(b, "w");
    gb_u32(b, 2);
    gb_u64(b, 8);
    gb_u64(b, 8);
    gb_u32(b, INF_TYPE_F32);
    gb_u32(b, 0); // half an offset
    gb_zeros(b, 0);
}
static void row_v1_key_len(gguf_build *b) {
    gb_init(b, 1);
    gb_header(b, 0, 1);
    gb_u32(b, 0xFFFFFFF0u);
    gb_zeros(b, 8);
}
static void row_v1_dims(gguf_build *b) {
    gb_init(b, 1);
    gb_header(b, 1, 0);
    gb_tensor_info(b, "w", 2, (int64_t[]){4, 0}, INF_TYPE_F32, 0);
    gb_pad(b, 32);
    gb_zeros(b, 16);
}
static void row_control_chars(gguf_build *b) {
    start(b, 0, 2);
    gb_kv_u32(b, "bad\nkey", 1);
    gb_kv_u32(b, "bad\nkey", 2);
}

typedef struct {
    const char *name;
    void (*build)(gguf_build *b);
    inf_status status;
    const char *piece;
} broken_row;

static const broken_row k_broken[] = {
    {"bad magic", row_bad_magic, INF_ERR_FORMAT, "bad magic 'GGML' at byte 0"},
    {"empty file", row_empty, INF_ERR_FORMAT, "file too small for a GGUF header (0 bytes)"},
    {"3-byte file", row_short_magic, INF_ERR_FORMAT, "file too small"},
    {"version 4", row_version4, INF_ERR_UNSUPPORTED, "unsupported GGUF version 4 at byte 4"},
    {"version 0", row_version0, INF_ERR_UNSUPPORTED, "unsupported GGUF version 0"},
    {"big-endian", row_big_endian, INF_ERR_UNSUPPORTED, "big-endian GGUF (version 3)"},
    {"truncated header", row_trunc_header, INF_ERR_FORMAT, "header: truncated tensor count at byte 8"},
    {"absurd kv count", row_absurd_kv, INF_ERR_FORMAT, "header claims 1099511627776 metadata entries"},
    {"absurd tensor count", row_absurd_tensors, INF_ERR_FORMAT, "header claims 18446744073709551615 tensors"},
    {"more kvs than bytes", row_too_few_kv, INF_ERR_FORMAT,
     "header claims 3 metadata entries, more than the 34 bytes"},
    {"fewer kvs than claimed", row_kv_truncated, INF_ERR_FORMAT,
     "kv 2: truncated key at byte 82 (needs 8 bytes, 4 left)"},
    {"absurd key length", row_key_len_huge, INF_ERR_FORMAT,
     "kv 0: key length 4611686018427387904 at byte 24 runs past"},
    {"key over the cap", row_key_len_cap, INF_ERR_FORMAT,
     "key length 70000 at byte 24 exceeds the limit of 65535"},
    {"empty key", row_key_empty, INF_ERR_FORMAT, "kv 0: empty key at byte 24"},
    {"key with NUL", row_key_nul, INF_ERR_FORMAT, "kv 0: key contains a NUL byte at byte 24"},
    {"unknown value type", row_value_type, INF_ERR_FORMAT, "kv 0 'x.y': unknown value type 13 at byte 35"},
    {"huge value type", row_value_type_huge, INF_ERR_FORMAT, "unknown value type 2147483648"},
    {"absurd string length", row_str_len_huge, INF_ERR_FORMAT,
     "kv 0 's': string value length 18446744073709551615"},
    {"string past end", row_str_truncated, INF_ERR_FORMAT,
     "string value length 10 at byte 37 runs past the end"},
    {"truncated u64 value", row_value_truncated, INF_ERR_FORMAT,
     "kv 0 'v': truncated value at byte 37 (needs 8 bytes, 4 left)"},
    {"absurd array count", row_arr_count_huge, INF_ERR_FORMAT, "array of 2305843009213693952 u32 elements"},
    {"array count past end", row_arr_count_short, INF_ERR_FORMAT,
     "array of 5 f32 elements at byte 43 cannot fit in the 16"},
    {"absurd string array", row_arr_str_count_huge, INF_ERR_FORMAT, "string elements"},
    {"array string past end", row_arr_str_elem_huge, INF_ERR_FORMAT, "array string length 1099511627776"},
    {"unknown array type", row_arr_elem_type, INF_ERR_FORMAT, "kv 0 'arr': unknown array element type 99"},
    {"arrays nested too deep", row_arr_nested_deep, INF_ERR_FORMAT, "arrays nested deeper than 8"},
    {"absurd nested count", row_arr_nested_huge, INF_ERR_FORMAT, "array elements at byte"},
    {"bool value 2", row_bool_value, INF_ERR_FORMAT,
     "kv 0 'flag': bool value 2 at byte 40 is neither 0 nor 1"},
    {"bool array value 5", row_bool_array, INF_ERR_FORMAT, "bool value 5 at byte"},
    {"duplicate key", row_dup_key, INF_ERR_FORMAT, "duplicate key 'a.b' (kv 2 at byte"},
    {"alignment as u64", row_align_u64, INF_ERR_FORMAT, "general.alignment has type u64, expected u32"},
    {"alignment as string", row_align_str, INF_ERR_FORMAT, "general.alignment has type string, expected u32"},
    {"alignment 0", row_align_zero, INF_ERR_FORMAT, "general.alignment 0 is not a non-zero power of two"},
    {"alignment 48", row_align_48, INF_ERR_FORMAT, "general.alignment 48 is not a non-zero power of two"},
    {"empty tensor name", row_name_empty, INF_ERR_FORMAT, "tensor 0: empty tensor name at byte"},
    {"tensor name with NUL", row_name_nul, INF_ERR_FORMAT,
     "tensor 0: tensor name contains a NUL byte at byte 24"},
    {"tensor name too long", row_name_long, INF_ERR_FORMAT, "tensor name length 65 at byte"},
    {"duplicate tensor", row_dup_tensor, INF_ERR_FORMAT, "duplicate tensor name 'w' (tensor 1 at byte"},
    {"n_dims 0", row_ndims0, INF_ERR_FORMAT, "tensor 0 'w': n_dims 0 at byte"},
    {"n_dims 5", row_ndims5, INF_ERR_FORMAT, "n_dims 5 at byte"},
    {"zero dimension", row_ne_zero, INF_ERR_FORMAT, "tensor 0 'w': dimension 1 is 0 at byte"},
    {"negative dimension", row_ne_negative, INF_ERR_FORMAT, "dimension 1 is 18446744073709551613"},
    {"element count overflow", row_ne_overflow, INF_ERR_FORMAT, "overflows 64-bit sizes"},
    {"byte size overflow", row_bytes_overflow, INF_ERR_FORMAT, "overflows 64-bit sizes"},
    {"row not whole blocks", row_row_block, INF_ERR_FORMAT,
     "row length 33 is not a multiple of the Q8_0 block size 32"},
    {"unsupported type", row_type_iq2, INF_ERR_UNSUPPORTED,
     "tensor 0 'w': unsupported tensor type IQ2_XXS (16) at byte"},
    {"removed type", row_type_removed, INF_ERR_UNSUPPORTED, "unsupported tensor type Q4_2 (4)"},
    {"unknown type", row_type_unknown, INF_ERR_UNSUPPORTED, "unknown tensor type 77 at byte"},
    {"unaligned offset", row_offset_unaligned, INF_ERR_FORMAT, "offset 4 at byte"},
    {"offset past end", row_offset_past_end, INF_ERR_FORMAT, "tensor 'w': data extends past end of file"},
    {"offset overflow", row_offset_overflow, INF_ERR_FORMAT, "tensor 'w': data extends past end of file"},
    {"data one byte short", row_data_short, INF_ERR_FORMAT, "+ 32 bytes > file size"},
    {"data start past end", row_data_start_past_end, INF_ERR_FORMAT,
     "tensor data would start at byte 64, past the end"},
    {"overlapping tensors", row_overlap, INF_ERR_FORMAT,
     "tensors 'first' (offset 0, 64 bytes) and 'second' (offset 32) overlap"},
    {"fewer tensors than claimed", row_tensor_count_short, INF_ERR_FORMAT,
     "header claims 2 tensors, but the tensor infos"},
    {"truncated tensor offset", row_tensor_truncated, INF_ERR_FORMAT,
     "tensor 0 'w': truncated tensor offset at byte"},
    {"v1 absurd key length", row_v1_key_len, INF_ERR_FORMAT, "key length 4294967280 at byte 16 runs past"},
    {"v1 zero dimension", row_v1_dims, INF_ERR_FORMAT, "dimension 1 is 0"},
    {"control characters in a key", row_control_chars, INF_ERR_FORMAT, "duplicate key 'bad?key'"},
};

static void test_broken(void) {
    for (size_t i = 0; i < INF_ARRAY_LEN(k_broken); i++) {
        gguf_build b;
        gb_init(&b, 3);
        k_broken[i].build(&b);
        expect_fail(&b, k_broken[i].status, k_broken[i].piece, k_broken[i].name);
        gb_free(&b);
    }
}

static void test_open_errors(void) {
    gguf_file *f = NULL;
    CHECK(gguf_open("/nonexistent/dir/model.gguf", &f) == INF_ERR_IO && f == NULL);
    CHECK(strstr(inf_last_error(), "/nonexistent/dir/model.gguf: cannot open") == inf_last_error());
    CHECK(gguf_open("/", &f) == INF_ERR_IO && f == NULL);
    CHECK(strstr(inf_last_error(), "not a regular file") != NULL);

    // A real file: empty, then a valid one through mmap.
    char path[] = "/tmp/test_gguf_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) return;
    CHECK(gguf_open(path, &f) == INF_ERR_FORMAT && f == NULL);
    CHECK(strstr(inf_last_error(), "file too small") != NULL);
    gguf_build b;
    build_valid(&b, 2);
    CHECK(write(fd, b.data, b.len) == (ssize_t)b.len);
    close(fd);
    CHECK(gguf_open(path, &f) == INF_OK && f != NULL);
    if (f) {
        CHECK_EQ_INT(gguf_file_size(f), b.len);
        CHECK(memcmp(gguf_base(f), b.data, b.len) == 0);
        const gguf_tensor *t = gguf_find_tensor(f, "a");
        CHECK(t && memcmp(t->data, b.data + gguf_data_offset(f), 32) == 0);
        gguf_close(f);
    }
    gb_free(&b);
    unlink(path);
    gguf_close(NULL);
}

// ---- typed getters ----

static void test_getters(void) {
    gguf_build b;
    gb_init(&b, 3);
    gb_header(&b, 0, 20);
    gb_kv_u8(&b, "u8", 200);
    gb_kv_i8(&b, "i8", -5);
    gb_kv_u16(&b, "u16", 65535);
    gb_kv_i16(&b, "i16", -300);
    gb_kv_u32(&b, "u32", 4000000000u);
    gb_kv_i32(&b, "i32", -7);
    gb_kv_u64(&b, "u64", (uint64_t)1 << 40);
    gb_kv_u64(&b, "u64.big", ((uint64_t)1 << 63) + 1);
    gb_kv_i64(&b, "i64", -((int64_t)1 << 40));
    gb_kv_i32(&b, "i32.pos", 12345);
    gb_kv_f32(&b, "f32", 0.5f);
    gb_kv_f64(&b, "f64", 0.25);
    gb_kv_bool(&b, "yes", true);
    gb_kv_bool(&b, "no", false);
    gb_kv_str(&b, "s", "hello");
    const int32_t iv[] = {1, -2, 3};
    gb_kv_arr_i32(&b, "ai32", iv, 3);
    const float fv[] = {1.5f, -2.25f};
    gb_kv_arr_f32(&b, "af32", fv, 2);
    const char *sv[] = {"x", "yz"};
    gb_kv_arr_str(&b, "astr", sv, 2);
    gb_kv_head(&b, "au16", GB_ARRAY);
    gb_arr_head(&b, GB_U16, 2);
    gb_u16(&b, 7);
    gb_u16(&b, 65000);
    gb_kv_head(&b, "af64", GB_ARRAY);
    gb_arr_head(&b, GB_F64, 1);
    gb_f64(&b, -1e300);
    gguf_file *f = NULL;
    inf_status st = gguf_open_memory(b.data, b.len, "get.gguf", &f);
    CHECK_MSG(st == INF_OK, "%s", inf_last_error());
    if (!f) {
        gb_free(&b);
        return;
    }
    CHECK_EQ_INT(gguf_n_kv(f), 20);
    CHECK(gguf_find_kv(f, "u8")->type == GGUF_TYPE_UINT8 && gguf_find_kv(f, "u8")->v.u64 == 200);
    CHECK(gguf_find_kv(f, "i16")->v.i64 == -300);
    CHECK(gguf_find_kv(f, "yes")->v.u64 == 1);

    uint32_t u = 77;
    bool found = false;
    CHECK(gguf_get_u32(f, "u8", &u, &found) == INF_OK && found && u == 200);
    CHECK(gguf_get_u32(f, "u16", &u, NULL) == INF_OK && u == 65535);
    CHECK(gguf_get_u32(f, "u32", &u, NULL) == INF_OK && u == 4000000000u);
    CHECK(gguf_get_u32(f, "i32.pos", &u, NULL) == INF_OK && u == 12345);
    u = 77;
    CHECK(gguf_get_u32(f, "i8", &u, &found) == INF_ERR_FORMAT && found && u == 77);
    CHECK_STR(inf_last_error(), "get.gguf: key 'i8' value -5 does not fit u32");
    CHECK(gguf_get_u32(f, "u64", &u, NULL) == INF_ERR_FORMAT && u == 77);
    CHECK_STR(inf_last_error(), "get.gguf: key 'u64' value 1099511627776 does not fit u32");
    CHECK(gguf_get_u32(f, "f32", &u, NULL) == INF_ERR_FORMAT && u == 77);
    CHECK_STR(inf_last_error(), "get.gguf: key 'f32' has type f32, expected an integer");
    CHECK(gguf_get_u32(f, "yes", &u, NULL) == INF_ERR_FORMAT);
    CHECK(gguf_get_u32(f, "s", &u, NULL) == INF_ERR_FORMAT);
    CHECK(gguf_get_u32(f, "ai32", &u, NULL) == INF_ERR_FORMAT);
    CHECK_STR(inf_last_error(), "get.gguf: key 'ai32' has type array, expected an integer");
    CHECK(gguf_get_u32(f, "absent", &u, &found) == INF_OK && !found && u == 77);
    CHECK(gguf_get_u32(f, "absent", &u, NULL) == INF_OK && u == 77);

    int64_t i = 0;
    CHECK(gguf_get_i64(f, "i8", &i, NULL) == INF_OK && i == -5);
    CHECK(gguf_get_i64(f, "i16", &i, NULL) == INF_OK && i == -300);
    CHECK(gguf_get_i64(f, "i32", &i, NULL) == INF_OK && i == -7);
    CHECK(gguf_get_i64(f, "i64", &i, NULL) == INF_OK && i == -((int64_t)1 << 40));
    CHECK(gguf_get_i64(f, "u32", &i, NULL) == INF_OK && i == 4000000000LL);
    CHECK(gguf_get_i64(f, "u64", &i, NULL) == INF_OK && i == (int64_t)1 << 40);
    i = 9;
    CHECK(gguf_get_i64(f, "u64.big", &i, &found) == INF_ERR_FORMAT && found && i == 9);
    CHECK_STR(inf_last_error(), "get.gguf: key 'u64.big' value 9223372036854775809 does not fit i64");
    CHECK(gguf_get_i64(f, "f64", &i, NULL) == INF_ERR_FORMAT && i == 9);
    CHECK(gguf_get_i64(f, "absent", &i, &found) == INF_OK && !found && i == 9);

    float x = 3;
    CHECK(gguf_get_f32(f, "f32", &x, NULL) == INF_OK && x == 0.5f);
    CHECK(gguf_get_f32(f, "f64", &x, NULL) == INF_OK && x == 0.25f);
    x = 3;
    CHECK(gguf_get_f32(f, "u32", &x, &found) == INF_ERR_FORMAT && found && x == 3);
    CHECK_STR(inf_last_error(), "get.gguf: key 'u32' has type u32, expected f32 or f64");
    CHECK(gguf_get_f32(f, "absent", &x, &found) == INF_OK && !found && x == 3);

    bool yes = false, no = true;
    CHECK(gguf_get_bool(f, "yes", &yes, NULL) == INF_OK && yes);
    CHECK(gguf_get_bool(f, "no", &no, NULL) == INF_OK && !no);
    CHECK(gguf_get_bool(f, "u8", &yes, &found) == INF_ERR_FORMAT && found && yes);
    CHECK_STR(inf_last_error(), "get.gguf: key 'u8' has type u8, expected bool");

    const char *s = NULL;
    CHECK(gguf_get_str(f, "s", &s, &found) == INF_OK && found);
    CHECK_STR(s, "hello");
    const char *s2 = NULL;
    CHECK(gguf_get_str(f, "s", &s2, NULL) == INF_OK && s2 == s); // same handle-owned buffer
    s = "unchanged";
    CHECK(gguf_get_str(f, "i32", &s, &found) == INF_ERR_FORMAT && found);
    CHECK_STR(s, "unchanged");
    CHECK_STR(inf_last_error(), "get.gguf: key 'i32' has type i32, expected string");
    CHECK(gguf_get_str(f, "astr", &s, NULL) == INF_ERR_FORMAT);

    const gguf_kv *a = NULL;
    CHECK(gguf_get_arr(f, "ai32", GGUF_TYPE_INT32, &a, &found) == INF_OK && found && a);
    if (a)
        CHECK(a->arr_n == 3 && gguf_arr_i64(a, 0) == 1 && gguf_arr_i64(a, 1) == -2 &&
              gguf_arr_i64(a, 2) == 3);
    CHECK(gguf_get_arr(f, "af32", GGUF_TYPE_FLOAT32, &a, NULL) == INF_OK && a);
    if (a) CHECK(gguf_arr_f64(a, 0) == 1.5 && gguf_arr_f64(a, 1) == -2.25);
    CHECK(gguf_get_arr(f, "af64", GGUF_TYPE_FLOAT64, &a, NULL) == INF_OK && a &&
          gguf_arr_f64(a, 0) == -1e300);
    CHECK(gguf_get_arr(f, "au16", GGUF_TYPE_UINT16, &a, NULL) == INF_OK && a);
    if (a) CHECK(gguf_arr_u64(a, 0) == 7 && gguf_arr_u64(a, 1) == 65000);
    CHECK(gguf_get_arr(f, "astr", GGUF_TYPE_STRING, &a, NULL) == INF_OK && a);
    if (a) CHECK(a->arr_n == 2 && str_eq(a->arr_strs[0], "x") && str_eq(a->arr_strs[1], "yz"));
    a = NULL;
    CHECK(gguf_get_arr(f, "ai32", GGUF_TYPE_FLOAT32, &a, &found) == INF_ERR_FORMAT && found && a == NULL);
    CHECK_STR(inf_last_error(), "get.gguf: key 'ai32' is an array of i32, expected array of f32");
    CHECK(gguf_get_arr(f, "u32", GGUF_TYPE_STRING, &a, NULL) == INF_ERR_FORMAT && a == NULL);
    CHECK_STR(inf_last_error(), "get.gguf: key 'u32' has type u32, expected array of string");
    CHECK(gguf_get_arr(f, "absent", GGUF_TYPE_STRING, &a, &found) == INF_OK && !found && a == NULL);

    CHECK_STR(gguf_type_name(GGUF_TYPE_UINT8), "u8");
    CHECK_STR(gguf_type_name(GGUF_TYPE_STRING), "string");
    CHECK_STR(gguf_type_name(GGUF_TYPE_ARRAY), "array");
    CHECK_STR(gguf_type_name(GGUF_TYPE_FLOAT64), "f64");
    CHECK_STR(gguf_type_name((gguf_type)99), "unknown");
    gguf_close(f);
    gb_free(&b);
}

int main(void) {
    test_valid_handcrafted();
    test_broken();
    test_getters();
    test_open_errors();
    char probe[4096];
    shared_path(probe, sizeof probe, "models/stories260K.gguf");
    if (!file_exists(probe)) {
        printf("shared models missing (%s): real-file tests skipped\n", probe);
    } else {
        test_models();
        test_vocabs();
        test_goldens();
        test_manifest();
    }
    return test_summary();
}
