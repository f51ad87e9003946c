// test_quantize.c: inf_quantize_file, inf_synth_model and the per-tensor type rules (src/model/quantize.c,
// src/model/synth.c).
//
// References:
// - shared/models/synthetic/micro-<TYPE>.gguf, made by llama.cpp's llama-quantize --pure from
//   micro-F32.gguf: our --pure output of every type must have the same metadata (keys, values, order),
//   the same tensors (names, types, shapes) and the same tensor bytes, block for block (>= 99.9% of blocks
//   required; the figure is printed). micro-Q4_K_M-mix.gguf (llama-quantize without --pure) checks the
//   Q4_K_M rules on the same input, types and bytes.
// - Type counts llama.cpp reports when loading its own quantizations of well-known shapes (TinyLlama 1.1B
//   Q4_K_M: 45 F32, 135 Q4_K, 21 Q6_K; Llama-2 7B Q4_K_M and Q5_K_M: 193 + 33 Q6_K; Q3_K_M: 129 Q3_K,
//   92 Q4_K, 4 Q5_K, 1 Q6_K), and layer lists computed by hand from llama.cpp's use_more_bits rule.
// - F16/BF16 inputs: widening is exact, so F16 -> F32 -> F16 must give back micro-F16.gguf's bytes.
// - synth: micro-F32.gguf's metadata and tensor list (same shape and tokenizer), the moments of N(0, 0.02^2),
//   and quantize-after-synth giving the same bytes as synth-with-type.
// Hostile inputs: quantized input, unknown type, missing file, unwritable output, input == output, NaN
// weights, rows that do not fit a type: a status, a message naming the problem, and no file left behind.
#include "gguf/gguf.h"
#include "gguf/gguf_write.h"
#include "inferno.h"
#include "model/quantize_int.h"
#include "test.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];
static char shared[512];

static void tmp_path(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", tmpdir, name); }

static bool file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static bool no_output(const char *path) {
    char t[600];
    snprintf(t, sizeof t, "%s.tmp", path);
    return !file_exists(path) && !file_exists(t);
}

static bool msg_has(const char *piece) {
    bool ok = strstr(inf_last_error(), piece) != NULL;
    if (!ok) fprintf(stderr, "  message: %s (wanted '%s')\n", inf_last_error(), piece);
    return ok;
}

static bool kv_equal(const gguf_kv *a, const gguf_kv *b) {
    if (strcmp(a->key, b->key) || a->type != b->type) return false;
    if (a->type == GGUF_TYPE_STRING)
        return a->v.str.len == b->v.str.len && !memcmp(a->v.str.ptr, b->v.str.ptr, a->v.str.len);
    if (a->type == GGUF_TYPE_FLOAT32 || a->type == GGUF_TYPE_FLOAT64) return a->v.f64 == b->v.f64;
    if (a->type != GGUF_TYPE_ARRAY) return a->v.u64 == b->v.u64;
    if (a->arr_type != b->arr_type || a->arr_n != b->arr_n) return false;
    for (uint64_t i = 0; i < a->arr_n; i++) {
        if (a->arr_type == GGUF_TYPE_STRING) {
            if (a->arr_strs[i].len != b->arr_strs[i].len ||
                memcmp(a->arr_strs[i].ptr, b->arr_strs[i].ptr, a->arr_strs[i].len))
                return false;
        } else if (a->arr_type == GGUF_TYPE_FLOAT32 || a->arr_type == GGUF_TYPE_FLOAT64) {
            if (gguf_arr_f64(a, i) != gguf_arr_f64(b, i)) return false;
        } else if (a->arr_type == GGUF_TYPE_INT32 || a->arr_type == GGUF_TYPE_INT8 ||
                   a->arr_type == GGUF_TYPE_INT16 || a->arr_type == GGUF_TYPE_INT64) {
            if (gguf_arr_i64(a, i) != gguf_arr_i64(b, i)) return false;
        } else if (gguf_arr_u64(a, i) != gguf_arr_u64(b, i)) {
            return false;
        }
    }
    return true;
}

typedef struct {
    uint64_t blocks, same;
    int tensor_mismatch; // tensors missing, or with another type or shape
    int kv_mismatch;     // keys differing in name, type, value or position
} cmp_result;

// Compares ours against a reference file: metadata in order, and each tensor (looked up by name, since
// llama-quantize reorders tensors) block by block.
static cmp_result compare_files(const char *ours, const char *ref, bool compare_kv) {
    cmp_result r = {0, 0, 0, 0};
    gguf_file *a = NULL, *b = NULL;
    if (gguf_open(ours, &a) != INF_OK || gguf_open(ref, &b) != INF_OK) {
        fprintf(stderr, "  cannot open %s or %s: %s\n", ours, ref, inf_last_error());
        r.tensor_mismatch = 1000;
        gguf_close(a);
        gguf_close(b);
        return r;
    }
    if (compare_kv) {
        if (gguf_n_kv(a) != gguf_n_kv(b)) r.kv_mismatch++;
        for (int64_t i = 0; i < gguf_n_kv(a) && i < gguf_n_kv(b); i++)
            if (!kv_equal(gguf_kv_at(a, i), gguf_kv_at(b, i))) {
                fprintf(stderr, "  kv %lld: %s vs %s\n", (long long)i, gguf_kv_at(a, i)->key,
                        gguf_kv_at(b, i)->key);
                r.kv_mismatch++;
            }
    }
    if (gguf_n_tensors(a) != gguf_n_tensors(b)) r.tensor_mismatch++;
    for (int64_t i = 0; i < gguf_n_tensors(a); i++) {
        const gguf_tensor *x = gguf_tensor_at(a, i), *y = gguf_find_tensor(b, x->name);
        if (!y || x->type != y->type || x->n_dims != y->n_dims || memcmp(x->ne, y->ne, sizeof x->ne)) {
            fprintf(stderr, "  tensor %s: %s vs %s\n", x->name, inf_type_name(x->type),
                    y ? inf_type_name(y->type) : "missing");
            r.tensor_mismatch++;
            continue;
        }
        const inf_type_traits *tr = inf_type_get(x->type);
        uint64_t nb = x->n_bytes / tr->type_size;
        for (uint64_t k = 0; k < nb; k++) {
            r.blocks++;
            r.same += !memcmp((const uint8_t *)x->data + k * tr->type_size,
                              (const uint8_t *)y->data + k * tr->type_size, tr->type_size);
        }
    }
    gguf_close(a);
    gguf_close(b);
    return r;
}

// ---- against llama-quantize's files ----

static void test_pure_types(void) {
    static const struct {
        const char *arg, *ref;
    } types[] = {
        {"F16", "F16"},     {"BF16", "BF16"},     {"Q8_0", "Q8_0"},     {"Q4_0", "Q4_0"},
        {"Q4_1", "Q4_1"},   {"Q5_0", "Q5_0"},     {"Q5_1", "Q5_1"},     {"Q2_K", "Q2_K"},
        {"Q3_K", "Q3_K_M"}, {"q4_k_m", "Q4_K_M"}, {"Q5_K_M", "Q5_K_M"}, {"Q6_K", "Q6_K"},
    };
    char in[600], ref[600], out[512];
    snprintf(in, sizeof in, "%s/models/synthetic/micro-F32.gguf", shared);
    tmp_path(out, sizeof out, "pure.gguf");
    for (size_t i = 0; i < INF_ARRAY_LEN(types); i++) {
        snprintf(ref, sizeof ref, "%s/models/synthetic/micro-%s.gguf", shared, types[i].ref);
        inf_quantize_params p = {.type = types[i].arg, .n_threads = 2, .pure = true};
        CHECK_EQ_INT(inf_quantize_file(in, out, &p), INF_OK);
        cmp_result r = compare_files(out, ref, true);
        printf("pure %-7s vs llama-quantize: %llu/%llu blocks identical (%.4f%%), %d tensor and %d kv "
               "mismatches\n",
               types[i].arg, (unsigned long long)r.same, (unsigned long long)r.blocks,
               r.blocks ? 100.0 * (double)r.same / (double)r.blocks : 0.0, r.tensor_mismatch, r.kv_mismatch);
        CHECK_EQ_INT(r.tensor_mismatch, 0);
        CHECK_EQ_INT(r.kv_mismatch, 0);
        CHECK(r.blocks > 0 && (double)r.same >= 0.999 * (double)r.blocks);
    }
    unlink(out);
}

static void test_mix_q4_k_m(void) {
    char in[600], ref[600], out[512];
    snprintf(in, sizeof in, "%s/models/synthetic/micro-F32.gguf", shared);
    snprintf(ref, sizeof ref, "%s/models/synthetic/micro-Q4_K_M-mix.gguf", shared);
    tmp_path(out, sizeof out, "mix.gguf");
    inf_quantize_params p = inf_quantize_default_params();
    CHECK_STR(p.type, "Q4_K_M");
    CHECK(!p.pure);
    p.n_threads = 2;
    CHECK_EQ_INT(inf_quantize_file(in, out, &p), INF_OK);
    cmp_result r = compare_files(out, ref, true);
    printf("Q4_K_M mix vs llama-quantize: %llu/%llu blocks identical, %d tensor and %d kv mismatches\n",
           (unsigned long long)r.same, (unsigned long long)r.blocks, r.tensor_mismatch, r.kv_mismatch);
    CHECK_EQ_INT(r.tensor_mismatch, 0);
    CHECK_EQ_INT(r.kv_mismatch, 0);
    CHECK(r.blocks > 0 && (double)r.same >= 0.999 * (double)r.blocks);
    // The README's description, independently of the reference file.
    gguf_file *f = NULL;
    CHECK_EQ_INT(gguf_open(out, &f), INF_OK);
    if (f) {
        int q4 = 0, q6 = 0, f32 = 0;
        for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
            const gguf_tensor *t = gguf_tensor_at(f, i);
            q4 += t->type == INF_TYPE_Q4_K;
            f32 += t->type == INF_TYPE_F32;
            if (t->type == INF_TYPE_Q6_K) {
                q6++;
                CHECK_MSG(!strcmp(t->name, "output.weight") || !strcmp(t->name, "blk.2.attn_v.weight") ||
                              !strcmp(t->name, "blk.3.attn_v.weight") ||
                              !strcmp(t->name, "blk.2.ffn_down.weight") ||
                              !strcmp(t->name, "blk.3.ffn_down.weight"),
                          "unexpected Q6_K tensor %s", t->name);
            }
        }
        CHECK_EQ_INT(q4, 25);
        CHECK_EQ_INT(q6, 5);
        CHECK_EQ_INT(f32, 9);
        CHECK_EQ_INT(gguf_find_tensor(f, "token_embd.weight")->type, INF_TYPE_Q4_K);
        // Tensor order is the input's.
        CHECK_STR(gguf_tensor_at(f, 0)->name, "token_embd.weight");
        CHECK_STR(gguf_tensor_at(f, gguf_n_tensors(f) - 1)->name, "output.weight");
        gguf_close(f);
    }
    unlink(out);
}

// F16 and BF16 inputs: widening is exact, so a round trip through F32 gives the same bytes back.
static void test_half_inputs(void) {
    const char *types[] = {"F16", "BF16"};
    for (int k = 0; k < 2; k++) {
        char in[600], f32[512], back[512];
        snprintf(in, sizeof in, "%s/models/synthetic/micro-%s.gguf", shared, types[k]);
        tmp_path(f32, sizeof f32, "wide.gguf");
        tmp_path(back, sizeof back, "back.gguf");
        inf_quantize_params p = {.type = "F32", .n_threads = 3, .pure = false};
        CHECK_EQ_INT(inf_quantize_file(in, f32, &p), INF_OK);
        p.type = types[k];
        CHECK_EQ_INT(inf_quantize_file(f32, back, &p), INF_OK);
        cmp_result r = compare_files(back, in, true);
        CHECK_EQ_INT(r.tensor_mismatch, 0);
        CHECK_EQ_INT(r.kv_mismatch, 0);
        CHECK_MSG(r.blocks == 3410176 && r.same == r.blocks, "%s round trip: %llu/%llu", types[k],
                  (unsigned long long)r.same, (unsigned long long)r.blocks);
        // And the widened values are exactly the half values.
        gguf_file *a = NULL, *b = NULL;
        CHECK_EQ_INT(gguf_open(f32, &a), INF_OK);
        CHECK_EQ_INT(gguf_open(in, &b), INF_OK);
        if (a && b) {
            const gguf_tensor *x = gguf_find_tensor(a, "blk.1.ffn_down.weight"),
                              *y = gguf_find_tensor(b, "blk.1.ffn_down.weight");
            CHECK(x && y && x->type == INF_TYPE_F32);
            int bad = 0;
            for (uint64_t i = 0; x && y && i < x->n_elements; i++) {
                uint16_t h = ((const uint16_t *)y->data)[i];
                float want = k == 0 ? inf_fp16_to_fp32(h) : inf_bf16_to_fp32(h);
                bad += memcmp(&want, (const float *)x->data + i, 4) != 0;
            }
            CHECK_EQ_INT(bad, 0);
        }
        gguf_close(a);
        gguf_close(b);
        unlink(f32);
        unlink(back);
    }
}

// ---- type rules on known shapes ----

typedef struct {
    quant_tensor t[3 + 9 * 80];
    char names[3 + 9 * 80][64];
    int n;
} shape_list;

static void add_tensor(shape_list *s, const char *name, int64_t ne0, int64_t ne1) {
    snprintf(s->names[s->n], 64, "%s", name);
    s->t[s->n] = (quant_tensor){.name = s->names[s->n],
                                .n_dims = ne1 ? 2 : 1,
                                .ne = {ne0, ne1 ? ne1 : 1, 1, 1},
                                .type = INF_TYPE_F16};
    s->n++;
}

// A llama model's tensor list in converter order.
static void llama_tensors(shape_list *s, int n_layer, int64_t n_embd, int64_t n_kv_dim, int64_t n_ff,
                          int64_t n_vocab) {
    s->n = 0;
    char b[64];
    add_tensor(s, "token_embd.weight", n_embd, n_vocab);
    for (int l = 0; l < n_layer; l++) {
        static const char *const names[] = {"attn_norm", "attn_q",   "attn_k", "attn_v",  "attn_output",
                                            "ffn_norm",  "ffn_gate", "ffn_up", "ffn_down"};
        for (int k = 0; k < 9; k++) {
            snprintf(b, sizeof b, "blk.%d.%s.weight", l, names[k]);
            bool norm = k == 0 || k == 5;
            int64_t ne0 = k == 8 ? n_ff : k == 4 ? n_embd : n_embd;
            int64_t ne1 = norm ? 0 : k == 2 || k == 3 ? n_kv_dim : k == 6 || k == 7 ? n_ff : n_embd;
            add_tensor(s, b, ne0, ne1);
        }
    }
    add_tensor(s, "output_norm.weight", n_embd, 0);
    add_tensor(s, "output.weight", n_embd, n_vocab);
}

static int count_type(const inf_type *types, int n, inf_type t) {
    int c = 0;
    for (int i = 0; i < n; i++) c += types[i] == t;
    return c;
}

static void test_rules_known_shapes(void) {
    static shape_list s;
    static inf_type types[3 + 9 * 80];
    // TinyLlama 1.1B: llama.cpp's Q4_K_M reports 45 f32, 135 q4_K, 21 q6_K.
    llama_tensors(&s, 22, 2048, 256, 5632, 32000);
    quant_hparams tiny = {.arch = "llama", .n_layer = 22, .n_head = 32, .n_head_kv = 4};
    CHECK_EQ_INT(quant_choose_types(quant_ftype_find("Q4_K_M"), false, &tiny, s.t, s.n, types), INF_OK);
    CHECK_EQ_INT(count_type(types, s.n, INF_TYPE_F32), 0); // norms stay as they are (F16 in this list)
    CHECK_EQ_INT(count_type(types, s.n, INF_TYPE_F16), 45);
    CHECK_EQ_INT(count_type(types, s.n, INF_TYPE_Q4_K), 135);
    CHECK_EQ_INT(count_type(types, s.n, INF_TYPE_Q6_K), 21);
    // use_more_bits(i, 22): i < 2, i >= 19, or (i - 2) % 3 == 2.
    static const int more22[] = {0, 1, 4, 7, 10, 13, 16, 19, 20, 21};
    for (int l = 0, k = 0; l < 22; l++) {
        bool more = k < 10 && more22[k] == l;
        if (more) k++;
        CHECK_EQ_INT(types[1 + 9 * l + 3], more ? INF_TYPE_Q6_K : INF_TYPE_Q4_K); // attn_v
        CHECK_EQ_INT(types[1 + 9 * l + 8], more ? INF_TYPE_Q6_K : INF_TYPE_Q4_K); // ffn_down
    }
    // The choice depends on the tensor set, not its order: reversed, every tensor keeps its type.
    static shape_list r;
    static inf_type rtypes[3 + 9 * 80];
    r.n = s.n;
    for (int i = 0; i < s.n; i++) {
        memcpy(r.names[i], s.names[s.n - 1 - i], 64);
        r.t[i] = s.t[s.n - 1 - i];
        r.t[i].name = r.names[i];
    }
    CHECK_EQ_INT(quant_choose_types(quant_ftype_find("Q4_K_M"), false, &tiny, r.t, r.n, rtypes), INF_OK);
    int moved = 0;
    for (int i = 0; i < s.n; i++) moved += rtypes[i] != types[s.n - 1 - i];
    CHECK_EQ_INT(moved, 0);

    // Llama-2 7B (32 layers, no GQA): Q4_K_M and Q5_K_M have 33 Q6_K; Q3_K_M 129/92/4/1.
    llama_tensors(&s, 32, 4096, 4096, 11008, 32000);
    quant_hparams l7 = {.arch = "llama", .n_layer = 32, .n_head = 32, .n_head_kv = 32};
    CHECK_EQ_INT(quant_choose_types(quant_ftype_find("Q4_K_M"), false, &l7, s.t, s.n, types), INF_OK);
    CHECK_EQ_INT(count_type(types, s.n, INF_TYPE_Q4_K), 193);
    CHECK_EQ_INT(count_type(types, s.n, INF_TYPE_Q6_K), 33);
    CHECK_EQ_INT(quant_choose_types(quant_ftype_find("Q5_K_M"), false, &l7, s.t, s.n, types), INF_OK);
    CHECK_EQ_INT(count_type(types, s.n, INF_TYPE_Q5_K), 193);
    CHECK_EQ_INT(count_type(types, s.n, INF_TYPE_Q6_K), 33);
    CHECK_EQ_INT(quant_choose_types(quant_ftype_find("Q3_K_M"), false, &l7, s.t, s.n, types), INF_OK);
    CHECK_EQ_INT(count_type(types, s.n, INF_TYPE_Q3_K), 129);
    CHECK_EQ_INT(count_type(types, s.n, INF_TYPE_Q4_K), 92);
    CHECK_EQ_INT(count_type(types, s.n, INF_TYPE_Q5_K), 4);
    CHECK_EQ_INT(count_type(types, s.n, INF_TYPE_Q6_K), 1);
    // Q4_0 and Q8_0: only the output changes (to Q6_K; Q8_0 keeps Q8_0).
    CHECK_EQ_INT(quant_choose_types(quant_ftype_find("Q4_0"), false, &l7, s.t, s.n, types), INF_OK);
    CHECK_EQ_INT(count_type(types, s.n, INF_TYPE_Q4_0), 225);
    CHECK_EQ_INT(types[s.n - 1], INF_TYPE_Q6_K);
    CHECK_EQ_INT(quant_choose_types(quant_ftype_find("Q8_0"), false, &l7, s.t, s.n, types), INF_OK);
    CHECK_EQ_INT(count_type(types, s.n, INF_TYPE_Q8_0), 226);
    // F16 target: every 2-D tensor F16 (the mix rules apply to quantized targets only).
    CHECK_EQ_INT(quant_choose_types(quant_ftype_find("bf16"), false, &l7, s.t, s.n, types), INF_OK);
    CHECK_EQ_INT(count_type(types, s.n, INF_TYPE_BF16), 226);

    // 12 layers: the layer counter runs in numeric order (blk.10 after blk.9), as llama.cpp sorts them.
    // use_more_bits(i, 12): i < 1, i >= 10, or (i - 1) % 3 == 2: layers 0, 3, 6, 9, 10, 11.
    llama_tensors(&s, 12, 256, 256, 768, 512);
    quant_hparams l12 = {.arch = "llama", .n_layer = 12, .n_head = 8, .n_head_kv = 8};
    CHECK_EQ_INT(quant_choose_types(quant_ftype_find("Q5_K_M"), false, &l12, s.t, s.n, types), INF_OK);
    for (int l = 0; l < 12; l++) {
        bool more = l == 0 || l == 3 || l == 6 || l == 9 || l == 10 || l == 11;
        CHECK_EQ_INT(types[1 + 9 * l + 3], more ? INF_TYPE_Q6_K : INF_TYPE_Q5_K);
        CHECK_EQ_INT(types[1 + 9 * l + 8], more ? INF_TYPE_Q6_K : INF_TYPE_Q5_K);
    }
    // Q2_K with GQA >= 4: attn_v Q4_K; ffn_down and attn_output Q3_K.
    CHECK_EQ_INT(quant_choose_types(quant_ftype_find("Q2_K"), false, &tiny, s.t, s.n, types), INF_OK);
    CHECK_EQ_INT(types[1 + 3], INF_TYPE_Q4_K);
    CHECK_EQ_INT(types[1 + 4], INF_TYPE_Q3_K);
    CHECK_EQ_INT(types[1 + 8], INF_TYPE_Q3_K);
    CHECK_EQ_INT(types[1 + 1], INF_TYPE_Q2_K);
    // Without the layer count the mixes cannot be chosen; --pure does without.
    quant_hparams none = {.arch = ""};
    CHECK_EQ_INT(quant_choose_types(quant_ftype_find("Q4_K_M"), false, &none, s.t, s.n, types),
                 INF_ERR_FORMAT);
    CHECK(msg_has("block_count"));
    CHECK_EQ_INT(quant_choose_types(quant_ftype_find("Q4_K_M"), true, &none, s.t, s.n, types), INF_OK);
    CHECK_EQ_INT(count_type(types, s.n, INF_TYPE_Q4_K), 12 * 7 + 2);

    CHECK(quant_ftype_find("Q4_K") && quant_ftype_find("Q4_K")->ftype == 15);
    CHECK(quant_ftype_find("Q5_K") && quant_ftype_find("Q5_K")->ftype == 17);
    CHECK(quant_ftype_find("bf16") && quant_ftype_find("bf16")->ftype == 32);
    CHECK(quant_ftype_find("Q4_K_X") == NULL && quant_ftype_find("IQ2_XXS") == NULL &&
          quant_ftype_find("") == NULL);
}

// stories260K (n_embd 64, n_ff 172): rows that do not fit K-quant blocks fall back as llama.cpp does, and
// the model still loads and gives logits close to the F32 model's.
static void test_fallback_model(void) {
    char in[600], out[512];
    snprintf(in, sizeof in, "%s/models/stories260K.gguf", shared);
    tmp_path(out, sizeof out, "fallback.gguf");
    inf_quantize_params p = {.type = "Q4_K_M", .n_threads = 2};
    CHECK_EQ_INT(inf_quantize_file(in, out, &p), INF_OK);
    gguf_file *f = NULL;
    CHECK_EQ_INT(gguf_open(out, &f), INF_OK);
    if (!f) return;
    // n_layer 5: use_more_bits for layers 2 and 4.
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        int layer = -1;
        sscanf(t->name, "blk.%d.", &layer);
        inf_type want;
        if (t->n_dims == 1)
            want = INF_TYPE_F32;
        else if (!strcmp(t->name, "output.weight"))
            want = INF_TYPE_Q8_0; // 64 % 256: Q8_0
        else if (strstr(t->name, "ffn_down"))
            want = INF_TYPE_F16; // 172 fits neither 256 nor 32
        else if (strstr(t->name, "attn_v") && (layer == 2 || layer == 4))
            want = INF_TYPE_Q8_0; // Q6_K -> Q8_0
        else
            want = INF_TYPE_Q5_0; // Q4_K -> Q5_0
        CHECK_MSG(t->type == want, "%s: %s, want %s", t->name, inf_type_name(t->type), inf_type_name(want));
    }
    gguf_close(f);

    // Pure Q4_K cannot fit these rows: an error naming the tensor, and no file.
    char pure_out[512];
    tmp_path(pure_out, sizeof pure_out, "fallback-pure.gguf");
    p.pure = true;
    CHECK_EQ_INT(inf_quantize_file(in, pure_out, &p), INF_ERR_UNSUPPORTED);
    CHECK(msg_has("stories260K.gguf") && msg_has(".weight': row length 64") && msg_has("not a multiple"));
    CHECK(no_output(pure_out));

    // Q2_K: llama.cpp would write IQ4_NL, which this build cannot; Q4_0 is used.
    char q2[512];
    tmp_path(q2, sizeof q2, "fallback-q2.gguf");
    p.type = "Q2_K";
    p.pure = false;
    inf_log_set_level(INF_LOG_ERROR);
    CHECK_EQ_INT(inf_quantize_file(in, q2, &p), INF_OK);
    inf_log_set_level(INF_LOG_WARN);
    CHECK_EQ_INT(gguf_open(q2, &f), INF_OK);
    if (f) {
        CHECK_EQ_INT(gguf_find_tensor(f, "blk.0.attn_q.weight")->type, INF_TYPE_Q4_0);
        gguf_close(f);
    }
    unlink(q2);

    // The Q4_K_M file runs: the first logits after BOS stay close to the F32 model's.
    inf_model *m32 = NULL, *mq = NULL;
    inf_model_params mp = inf_model_default_params();
    mp.n_threads = 2;
    inf_log_set_level(INF_LOG_ERROR);
    CHECK_EQ_INT(inf_model_load(in, &mp, &m32), INF_OK);
    CHECK_EQ_INT(inf_model_load(out, &mp, &mq), INF_OK);
    inf_log_set_level(INF_LOG_WARN);
    if (m32 && mq) {
        float l32[512], lq[512];
        inf_model *ms[2] = {m32, mq};
        float *ls[2] = {l32, lq};
        for (int k = 0; k < 2; k++) {
            inf_session_params sp = inf_session_default_params();
            sp.n_ctx = 16;
            sp.n_threads = 2;
            inf_session *s = NULL;
            CHECK_EQ_INT(inf_session_init(ms[k], &sp, &s), INF_OK);
            inf_token tok[2] = {1, 403};
            int32_t pos[2] = {0, 1}, seq[2] = {0, 0};
            inf_batch b = {.n_tokens = 2, .tokens = tok, .pos = pos, .seq_id = seq};
            CHECK(s && inf_session_decode(s, &b) == INF_OK);
            const float *l = s ? inf_session_logits(s, -1) : NULL;
            if (l) memcpy(ls[k], l, sizeof l32);
            inf_session_free(s);
        }
        double d2 = 0, n2 = 0;
        for (int i = 0; i < 512; i++) {
            d2 += (lq[i] - l32[i]) * (lq[i] - l32[i]);
            n2 += l32[i] * l32[i];
        }
        printf("stories260K Q4_K_M (fallback mix) vs F32 logits: relative RMS error %.4f\n", sqrt(d2 / n2));
        CHECK(isfinite(d2) && sqrt(d2 / n2) < 0.25); // random weights would give about 1.4
    }
    inf_model_free(m32);
    inf_model_free(mq);
    unlink(out);
}

// ---- synth ----

static void test_synth_micro(void) {
    char vocab[600], ref[600], a[512], b[512], c[512], q[512];
    snprintf(vocab, sizeof vocab, "%s/models/stories260K.gguf", shared);
    snprintf(ref, sizeof ref, "%s/models/synthetic/micro-F32.gguf", shared);
    tmp_path(a, sizeof a, "synth-a.gguf");
    tmp_path(b, sizeof b, "synth-b.gguf");
    tmp_path(c, sizeof c, "synth-c.gguf");
    tmp_path(q, sizeof q, "synth-q.gguf");
    CHECK_EQ_INT(inf_synth_model("micro", vocab, a, "F32", 7), INF_OK);
    CHECK_EQ_INT(inf_synth_model("micro", vocab, b, "F32", 7), INF_OK);
    CHECK_EQ_INT(inf_synth_model("micro", vocab, c, "F32", 8), INF_OK);

    gguf_file *fa = NULL, *fb = NULL, *fc = NULL, *fr = NULL;
    CHECK_EQ_INT(gguf_open(a, &fa), INF_OK);
    CHECK_EQ_INT(gguf_open(b, &fb), INF_OK);
    CHECK_EQ_INT(gguf_open(c, &fc), INF_OK);
    CHECK_EQ_INT(gguf_open(ref, &fr), INF_OK);
    if (!fa || !fb || !fc || !fr) goto out;
    // Same seed, same bytes; another seed, other weights (norms stay 1).
    CHECK(gguf_file_size(fa) == gguf_file_size(fb) &&
          !memcmp(gguf_base(fa), gguf_base(fb), gguf_file_size(fa)));
    CHECK_EQ_INT(gguf_file_size(fa) - gguf_data_offset(fa), gguf_file_size(fr) - gguf_data_offset(fr));
    // Same tensors as micro-F32 (names, order, shapes, types) and every one of its keys but the name.
    CHECK_EQ_INT(gguf_n_tensors(fa), gguf_n_tensors(fr));
    for (int64_t i = 0; i < gguf_n_tensors(fa) && i < gguf_n_tensors(fr); i++) {
        const gguf_tensor *x = gguf_tensor_at(fa, i), *y = gguf_tensor_at(fr, i);
        CHECK_MSG(!strcmp(x->name, y->name) && x->type == y->type && !memcmp(x->ne, y->ne, sizeof x->ne),
                  "tensor %lld: %s vs %s", (long long)i, x->name, y->name);
    }
    for (int64_t i = 0; i < gguf_n_kv(fr); i++) {
        const gguf_kv *y = gguf_kv_at(fr, i), *x = gguf_find_kv(fa, y->key);
        if (!strcmp(y->key, "general.name")) continue;
        CHECK_MSG(x && kv_equal(x, y), "key %s missing or different", y->key);
    }
    // Weights: mean 0, std 0.02, 68.3% within one std (a normal's share); norms exactly 1.
    double sum = 0, sum2 = 0, n = 0, in1 = 0;
    int ones = 0, n_norm = 0, differ = 0;
    for (int64_t i = 0; i < gguf_n_tensors(fa); i++) {
        const gguf_tensor *t = gguf_tensor_at(fa, i), *u = gguf_tensor_at(fc, i);
        const float *x = t->data;
        if (t->n_dims == 1) {
            for (uint64_t k = 0; k < t->n_elements; k++) ones += x[k] == 1.0f;
            n_norm += (int)t->n_elements;
            CHECK(!memcmp(t->data, u->data, t->n_bytes));
            continue;
        }
        differ += memcmp(t->data, u->data, t->n_bytes) != 0;
        for (uint64_t k = 0; k < t->n_elements; k++) {
            sum += x[k];
            sum2 += (double)x[k] * x[k];
            in1 += fabsf(x[k]) < 0.02f;
            n++;
        }
    }
    double mean = sum / n, sd = sqrt(sum2 / n - mean * mean);
    printf("synth micro seed 7: %.0f weights, mean %.2e, std %.6f, %.4f within 1 std\n", n, mean, sd,
           in1 / n);
    CHECK(fabs(mean) < 1e-4);
    CHECK_NEAR(sd, 0.02, 0.0002);
    CHECK_NEAR(in1 / n, 0.6827, 0.003);
    CHECK_EQ_INT(ones, n_norm);
    CHECK_EQ_INT(differ, 30);
out:
    gguf_close(fa);
    gguf_close(fb);
    gguf_close(fc);
    gguf_close(fr);
    unlink(b);
    unlink(c);

    // Quantized straight from synth equals synth F32 then quantize (same rows, same quantizer, same rules;
    // Q5_0 keeps the Debug build quick and still has a Q6_K output); the thread count does not matter.
    char q2[512];
    tmp_path(q2, sizeof q2, "synth-q2.gguf");
    CHECK_EQ_INT(inf_synth_model("micro", vocab, q, "Q5_0", 7), INF_OK);
    inf_quantize_params p = {.type = "Q5_0", .n_threads = 1};
    CHECK_EQ_INT(inf_quantize_file(a, q2, &p), INF_OK);
    cmp_result r = compare_files(q, q2, false);
    CHECK_EQ_INT(r.tensor_mismatch, 0);
    CHECK(r.blocks > 0 && r.same == r.blocks);
    unlink(q2);
    // Q4_K_M from synth has the micro-Q4_K_M-mix types.
    CHECK_EQ_INT(inf_synth_model("micro", vocab, q, "Q4_K_M", 7), INF_OK);
    char mix[600];
    snprintf(mix, sizeof mix, "%s/models/synthetic/micro-Q4_K_M-mix.gguf", shared);
    r = compare_files(q, mix, false);
    CHECK_EQ_INT(r.tensor_mismatch, 0); // types and shapes; the weights differ of course
    uint32_t ft = 0;
    gguf_file *fq = NULL;
    CHECK_EQ_INT(gguf_open(q, &fq), INF_OK);
    if (fq) {
        CHECK_EQ_INT(gguf_get_u32(fq, "general.file_type", &ft, NULL), INF_OK);
        CHECK_EQ_INT(ft, 15);
        gguf_close(fq);
    }

    // It loads and gives finite logits.
    inf_model *m = NULL;
    inf_model_params mp = inf_model_default_params();
    mp.n_threads = 2;
    inf_log_set_level(INF_LOG_ERROR);
    CHECK_EQ_INT(inf_model_load(q, &mp, &m), INF_OK);
    inf_log_set_level(INF_LOG_WARN);
    if (m) {
        inf_model_info info;
        inf_model_get_info(m, &info);
        CHECK_EQ_INT(info.n_vocab, 512);
        CHECK_EQ_INT(info.n_layer, 4);
        CHECK_EQ_INT(info.n_head_kv, 4);
        inf_session_params sp = inf_session_default_params();
        sp.n_ctx = 32;
        sp.n_threads = 2;
        inf_session *s = NULL;
        CHECK_EQ_INT(inf_session_init(m, &sp, &s), INF_OK);
        inf_token tok[4] = {1, 300, 301, 302};
        int32_t pos[4] = {0, 1, 2, 3}, seq[4] = {0, 0, 0, 0};
        inf_batch bt = {.n_tokens = 4, .tokens = tok, .pos = pos, .seq_id = seq};
        CHECK(s && inf_session_decode(s, &bt) == INF_OK);
        const float *l = s ? inf_session_logits(s, -1) : NULL;
        int finite = 0;
        for (int i = 0; l && i < 512; i++) finite += isfinite(l[i]);
        CHECK_EQ_INT(finite, 512);
        inf_session_free(s);
        inf_model_free(m);
    }
    unlink(a);
    unlink(q);
}

// ---- hostile input ----

static void test_errors(void) {
    char in[600], q4[600], out[512], copy[512];
    snprintf(in, sizeof in, "%s/models/synthetic/micro-F32.gguf", shared);
    snprintf(q4, sizeof q4, "%s/models/synthetic/micro-Q4_0.gguf", shared);
    tmp_path(out, sizeof out, "err.gguf");
    inf_quantize_params p = {.type = "Q8_0", .n_threads = 2};

    CHECK_EQ_INT(inf_quantize_file(q4, out, &p), INF_ERR_UNSUPPORTED);
    CHECK(msg_has("micro-Q4_0.gguf") && msg_has("is Q4_0") && msg_has("F32, F16 and BF16"));
    CHECK(no_output(out));

    p.type = "Q9_X";
    CHECK_EQ_INT(inf_quantize_file(in, out, &p), INF_ERR_INVALID_ARG);
    CHECK(msg_has("unknown type 'Q9_X'") && msg_has("Q4_K_M"));
    p.type = NULL;
    CHECK_EQ_INT(inf_quantize_file(in, out, &p), INF_ERR_INVALID_ARG);
    CHECK(no_output(out));
    p.type = "Q8_0";

    char missing[512];
    tmp_path(missing, sizeof missing, "missing.gguf");
    CHECK(inf_quantize_file(missing, out, &p) != INF_OK);
    CHECK(msg_has("missing.gguf"));
    CHECK(no_output(out));

    char nodir[600];
    snprintf(nodir, sizeof nodir, "%s/no/such/dir/o.gguf", tmpdir);
    CHECK_EQ_INT(inf_quantize_file(in, nodir, &p), INF_ERR_IO);
    CHECK(msg_has(nodir));

    // Input == output, by the same or another spelling: refused, the input untouched.
    tmp_path(copy, sizeof copy, "self.gguf");
    CHECK_EQ_INT(inf_quantize_file(in, copy, &(inf_quantize_params){.type = "F32", .n_threads = 1}), INF_OK);
    struct stat before, after;
    stat(copy, &before);
    CHECK_EQ_INT(inf_quantize_file(copy, copy, &p), INF_ERR_INVALID_ARG);
    CHECK(msg_has("overwrite the input"));
    char other[600];
    snprintf(other, sizeof other, "%s/../%s/self.gguf", tmpdir, strrchr(tmpdir, '/') + 1);
    CHECK_EQ_INT(inf_quantize_file(copy, other, &p), INF_ERR_INVALID_ARG);
    stat(copy, &after);
    CHECK(before.st_size == after.st_size && before.st_mtime == after.st_mtime);
    char tmpname[600];
    snprintf(tmpname, sizeof tmpname, "%s.tmp", copy);
    CHECK(!file_exists(tmpname));

    // A failing run leaves an existing output as it was.
    FILE *fp = fopen(out, "wb");
    fputs("keep", fp);
    fclose(fp);
    CHECK_EQ_INT(inf_quantize_file(q4, out, &p), INF_ERR_UNSUPPORTED);
    struct stat sb;
    CHECK(stat(out, &sb) == 0 && sb.st_size == 4);
    // ... and a successful one replaces it.
    CHECK_EQ_INT(inf_quantize_file(in, out, &p), INF_OK);
    CHECK(stat(out, &sb) == 0 && sb.st_size == 3643872);
    unlink(out);
    unlink(copy);

    // NaN in a weight: refused, naming the tensor and row.
    char nan_path[512];
    tmp_path(nan_path, sizeof nan_path, "nan.gguf");
    gguf_writer *w = NULL;
    CHECK_EQ_INT(gguf_writer_open(nan_path, &w), INF_OK);
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_u32(w, "llama.block_count", 1);
    float rows[4 * 32];
    for (int i = 0; i < 4 * 32; i++) rows[i] = (float)i / 100.0f;
    rows[2 * 32 + 5] = NAN;
    gguf_writer_add_tensor(w, "blk.0.attn_q.weight", 2, (int64_t[]){32, 4}, INF_TYPE_F32);
    gguf_writer_write(w, rows, sizeof rows);
    CHECK_EQ_INT(gguf_writer_finish(w), INF_OK);
    CHECK_EQ_INT(inf_quantize_file(nan_path, out, &p), INF_ERR_FORMAT);
    CHECK(msg_has("nan.gguf") && msg_has("blk.0.attn_q.weight") && msg_has("row 2"));
    CHECK(no_output(out));
    unlink(nan_path);

    // A vocabulary-only file has nothing to quantize.
    char voc[600];
    snprintf(voc, sizeof voc, "%s/models/vocab/ggml-vocab-llama-spm.gguf", shared);
    CHECK_EQ_INT(inf_quantize_file(voc, out, &p), INF_ERR_FORMAT);
    CHECK(msg_has("no tensors"));
    CHECK(no_output(out));

    // synth: unknown shape and type, missing vocabulary, a file without tokens.
    CHECK_EQ_INT(inf_synth_model("gpt-5", voc, out, "Q4_0", 1), INF_ERR_INVALID_ARG);
    CHECK(msg_has("unknown shape 'gpt-5'") && msg_has("tinyllama-1.1b") && msg_has("micro"));
    CHECK_EQ_INT(inf_synth_model("micro", voc, out, "Q7", 1), INF_ERR_INVALID_ARG);
    CHECK(msg_has("unknown type 'Q7'"));
    CHECK(inf_synth_model("micro", missing, out, "Q4_0", 1) != INF_OK);
    CHECK(msg_has("missing.gguf"));
    CHECK_EQ_INT(inf_synth_model("micro", q4, out, NULL, 1), INF_OK); // a model file has tokens too
    unlink(out);
    CHECK_EQ_INT(gguf_writer_open(nan_path, &w), INF_OK);
    CHECK_EQ_INT(gguf_writer_finish(w), INF_OK);
    CHECK_EQ_INT(inf_synth_model("micro", nan_path, out, "Q4_0", 1), INF_ERR_FORMAT);
    CHECK(msg_has("tokenizer.ggml.tokens"));
    CHECK(no_output(out));
    unlink(nan_path);
    const char *name = NULL, *desc = NULL;
    CHECK(inf_synth_shape_at(0, &name, &desc) && name && desc);
    CHECK(!inf_synth_shape_at(99, &name, &desc));
}

int main(void) {
    snprintf(shared, sizeof shared, "%s", test_shared_dir());
    char probe[600];
    snprintf(probe, sizeof probe, "%s/models/synthetic/micro-F32.gguf", shared);
    if (!file_exists(probe)) TEST_SKIP("%s not found", probe);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/inferno_test_quantize_%d", (int)getpid());
    if (mkdir(tmpdir, 0700) != 0) TEST_SKIP("cannot create %s", tmpdir);
    inf_log_set_level(INF_LOG_WARN);
    double t0 = inf_time_now();
    test_rules_known_shapes();
    test_pure_types();
    test_mix_q4_k_m();
    test_half_inputs();
    test_fallback_model();
    test_synth_micro();
    test_errors();
    printf("(%.2f s)\n", inf_time_now() - t0);
    rmdir(tmpdir);
    return test_summary();
}
