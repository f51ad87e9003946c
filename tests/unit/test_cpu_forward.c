// test_cpu_forward.c: the CPU kernels the forward pass uses besides vec_dot and gemm, in every variant this
// machine supports, against their scalar references: attention (grouped queries over scattered cache cells,
// the online softmax of the SIMD variants against the two-pass reference; one position or a causal tile of
// several), the single-row fast path
// (vec_prep + vec_dot_prep against the reference vec_dot of src/quant), and SwiGLU. Outputs start as NaN so
// an element a kernel forgot to write shows. Also the load-time copy of the CPU's weights into huge pages
// (src/model/model.c): a model loaded with and without it holds the same bytes in every matrix and gives
// bit-identical logits. Leaves out the correctness of the forward pass itself (test_golden, test_session).
#include "backend/cpu/cpu_kernels.h"
#include "model/model.h"
#include "test.h"

#include <stdio.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const variant_names[] = {"scalar", "avx2", "avx512"};

// ---- attention ----

// hd, G and n cover the unrolled head sizes (64, 128), a head size the SIMD path hands to the reference (8),
// query groups above the SIMD group size (9), key counts around the block size, and one sharp softmax (a
// large q, so most weights underflow) where the running maximum moves late.
static void test_attention(const inf_cpu_kernels *k) {
    static const int hds[] = {8, 32, 64, 128};
    static const int gs[] = {1, 2, 8, 9};
    static const int ns[] = {1, 5, 16, 17, 100};
    enum { MAX_HD = 128, MAX_G = 9, MAX_N = 100, CELLS = 128, STRIDE = 2 * MAX_HD + 16 };
    static float kc[CELLS * STRIDE], vc[CELLS * STRIDE], q[MAX_G * MAX_HD], got[MAX_G * MAX_HD], want[MAX_G * MAX_HD];
    int32_t cells[MAX_N];
    for (size_t i = 0; i < CELLS * STRIDE; i++) {
        kc[i] = rng_unit();
        vc[i] = rng_unit();
    }
    int cases = 0;
    for (size_t a = 0; a < sizeof hds / sizeof hds[0]; a++)
        for (size_t b = 0; b < sizeof gs / sizeof gs[0]; b++)
            for (size_t c = 0; c < sizeof ns / sizeof ns[0]; c++)
                for (int sharp = 0; sharp < 2; sharp++) {
                    int hd = hds[a], G = gs[b], n = ns[c];
                    // distinct cells in random order, as a cache holding several sequences would
                    for (int j = 0; j < n; j++) {
                        int cell;
                        bool dup;
                        do {
                            cell = (int)(rng_u32() % CELLS);
                            dup = false;
                            for (int i = 0; i < j; i++) dup |= cells[i] == cell;
                        } while (dup);
                        cells[j] = cell;
                    }
                    for (int i = 0; i < G * hd; i++) q[i] = rng_unit() * (sharp ? 40.0f : 1.0f);
                    if (sharp) // the largest score late: the running maximum jumps in the last block
                        for (int i = 0; i < hd; i++) kc[(size_t)cells[n - 1] * STRIDE + (size_t)i] = q[i] / 40.0f;
                    for (int i = 0; i < G * hd; i++) got[i] = NAN;
                    float scale = 1.0f / sqrtf((float)hd);
                    inf_attn_f32_ref(hd, G, q, kc, vc, STRIDE, cells, n, scale, want);
                    k->attn(hd, G, q, kc, vc, STRIDE, cells, n, scale, got);
                    // Scores are rounded in a different order; an error e in a score moves its weight by a
                    // relative e, and the sharp cases' scores are ~100 (errors ~1e-5) against ~1 otherwise.
                    float tol = sharp ? 1e-4f : 2e-6f;
                    int bad = 0, worst = 0;
                    for (int i = 0; i < G * hd; i++) {
                        float d = fabsf(got[i] - want[i]);
                        if (!(d <= tol + 2e-5f * fabsf(want[i]))) bad++;
                        if (!(d <= fabsf(got[worst] - want[worst]))) worst = i;
                    }
                    CHECK_MSG(bad == 0, "%s attention hd %d G %d n %d sharp %d: %d of %d differ (worst %.9g vs %.9g)",
                              k->isa, hd, G, n, sharp, bad, G * hd, (double)got[worst], (double)want[worst]);
                    cases++;
                }
    CHECK_EQ_INT(cases, 160);
}

// The output of a single position is its value row exactly: softmax of one score is 1.
static void test_attention_single(const inf_cpu_kernels *k) {
    float kc[64], vc[64], q[64], out[64];
    for (int i = 0; i < 64; i++) {
        kc[i] = rng_unit();
        vc[i] = rng_unit();
        q[i] = rng_unit();
        out[i] = NAN;
    }
    int32_t cell = 0;
    k->attn(64, 1, q, kc, vc, 64, &cell, 1, 0.125f, out);
    int bad = 0;
    for (int i = 0; i < 64; i++) bad += out[i] != vc[i];
    CHECK_MSG(bad == 0, "%s attention of one position: %d values differ from the value row", k->isa, bad);
}

// A tile of positions against one call per position of the reference: Tq around the kernels' rows per pass
// (32 / G positions), positions that start at the first key (n0 = 1) and later, scattered cells.
static void test_attention_tile(const inf_cpu_kernels *k) {
    static const int hds[] = {8, 64, 128};
    static const int gs[] = {1, 8, 9};
    static const int tqs[] = {1, 3, 4, 5, 9};
    static const int n0s[] = {1, 17, 40};
    enum { MAX_HD = 128, MAX_G = 9, MAX_TQ = 9, CELLS = 64, STRIDE = MAX_HD + 8 };
    enum { MAX_Q = MAX_TQ * (MAX_G * MAX_HD + 16) };
    static float kc[CELLS * STRIDE], vc[CELLS * STRIDE], q[MAX_Q], got[MAX_Q], want[MAX_Q];
    int32_t cells[CELLS];
    for (size_t i = 0; i < CELLS * STRIDE; i++) {
        kc[i] = rng_unit();
        vc[i] = rng_unit();
    }
    for (int i = 0; i < CELLS; i++) cells[i] = (i * 37 + 11) % CELLS; // a permutation (37 is odd)
    for (size_t a = 0; a < sizeof hds / sizeof hds[0]; a++)
        for (size_t b = 0; b < sizeof gs / sizeof gs[0]; b++)
            for (size_t c = 0; c < sizeof tqs / sizeof tqs[0]; c++)
                for (size_t d = 0; d < sizeof n0s / sizeof n0s[0]; d++) {
                    int hd = hds[a], G = gs[b], Tq = tqs[c], n0 = n0s[d];
                    size_t qs = (size_t)G * (size_t)hd + 16; // rows of a batch are wider than one KV group
                    size_t total = (size_t)Tq * qs;
                    for (size_t i = 0; i < total; i++) {
                        q[i] = rng_unit() * 2.0f;
                        got[i] = NAN;
                        want[i] = NAN;
                    }
                    float scale = 1.0f / sqrtf((float)hd);
                    for (int j = 0; j < Tq; j++)
                        inf_attn_f32_ref(hd, G, q + (size_t)j * qs, kc, vc, STRIDE, cells, n0 + j, scale,
                                         want + (size_t)j * qs);
                    k->attn_tile(hd, G, Tq, q, qs, kc, vc, STRIDE, cells, n0, scale, got);
                    int bad = 0, stray = 0;
                    for (int j = 0; j < Tq; j++)
                        for (size_t i = 0; i < qs; i++) {
                            float gv = got[(size_t)j * qs + i], wv = want[(size_t)j * qs + i];
                            if (i >= (size_t)G * (size_t)hd) stray += !isnan(gv); // the gap between rows
                            else if (!(fabsf(gv - wv) <= 2e-6f + 2e-5f * fabsf(wv))) bad++;
                        }
                    CHECK_MSG(bad == 0 && stray == 0, "%s attention tile hd %d G %d Tq %d n0 %d: %d differ, %d stray",
                              k->isa, hd, G, Tq, n0, bad, stray);
                }
}

// ---- single-row fast path ----

static void test_prep(const inf_cpu_kernels *k) {
    static const int64_t ns[] = {256, 512, 2048, 5632};
    enum { ROWS = 24, MAX_N = 5632 };
    static float src[MAX_N];
    static _Alignas(64) uint8_t w[ROWS * MAX_N * 2], x[MAX_N * 2], prep[INF_PREP_BYTES];
    for (int t = 0; t < INF_TYPE_COUNT; t++) {
        if (!k->vec_prep[t]) continue;
        CHECK_MSG(k->vec_dot_prep[t] != NULL, "%s type %d: vec_prep without vec_dot_prep", k->isa, t);
        const inf_type_traits *tr = inf_type_get((inf_type)t);
        const inf_type_traits *xt = inf_type_get(tr->vec_dot_type);
        for (size_t c = 0; c < sizeof ns / sizeof ns[0]; c++) {
            int64_t n = ns[c];
            size_t w_row = inf_row_size((inf_type)t, n);
            for (int r = 0; r < ROWS; r++) {
                float mag = r % 5 == 0 ? 0.0f : 0.01f + 3.0f * (float)(rng_u32() % 1000) / 1000.0f;
                for (int64_t i = 0; i < n; i++) src[i] = rng_unit() * mag;
                inf_type_weight_quantizer((inf_type)t)(src, w + (size_t)r * w_row, n);
            }
            for (int64_t i = 0; i < n; i++) src[i] = rng_unit() * (i % 97 == 0 ? 30.0f : 1.0f);
            xt->quantize(src, x, n);
            CHECK_MSG(k->vec_prep[t](n, x, prep, sizeof prep), "%s %s n=%lld: prep refused", k->isa, tr->name,
                      (long long)n);
            int bad = 0;
            for (int r = 0; r < ROWS; r++) {
                float want = tr->vec_dot(n, w + (size_t)r * w_row, x);
                float got = k->vec_dot_prep[t](n, w + (size_t)r * w_row, prep);
                // relative to the sum of |terms|, bounded here by |w|max * |x|sum scales
                float tol = 1e-5f * (1.0f + fabsf(want)) + 1e-4f;
                if (!(fabsf(got - want) <= tol)) {
                    if (bad++ == 0)
                        fprintf(stderr, "%s %s n=%lld row %d: %.9g vs %.9g\n", k->isa, tr->name, (long long)n, r,
                                (double)got, (double)want);
                }
            }
            CHECK_MSG(bad == 0, "%s vec_dot_prep %s n=%lld: %d of %d rows differ", k->isa, tr->name, (long long)n,
                      bad, ROWS);
        }
        // What it cannot lay out, it refuses: a row length off its group, a buffer too small.
        CHECK(!k->vec_prep[t](224, x, prep, sizeof prep));
        CHECK(!k->vec_prep[t](2048, x, prep, 64));
    }
}

// ---- SwiGLU ----

static void swiglu_want(float *h, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) h[i] = h[i] / (1.0f + expf(-h[i])) * u[i];
}

static void test_swiglu(const inf_cpu_kernels *k) {
    enum { N = 333 };
    float g[N], u[N], got[N], want[N];
    for (int i = 0; i < N; i++) {
        g[i] = rng_unit() * (i % 7 == 0 ? 120.0f : 8.0f); // saturated and underflowing exponents too
        u[i] = rng_unit() * 3.0f;
    }
    for (int64_t n = 1; n <= N; n += 41) {
        memcpy(got, g, sizeof g);
        memcpy(want, g, sizeof g);
        got[n] = NAN; // past the end: must stay untouched
        k->swiglu(got, u, n);
        swiglu_want(want, u, n);
        int bad = 0;
        for (int64_t i = 0; i < n; i++)
            if (!(fabsf(got[i] - want[i]) <= 1e-6f * (1.0f + fabsf(want[i])))) bad++;
        CHECK_MSG(bad == 0, "%s swiglu n=%lld: %d differ", k->isa, (long long)n, bad);
        CHECK(isnan(got[n]));
    }
}

// ---- the huge-page weight copy ----

// The decode logits of a few tokens, one at a time (the single-row path), into out (n_tok * n_vocab).
static bool decode_logits(inf_model *m, const inf_token *tok, int n_tok, float *out, int n_vocab) {
    inf_session_params sp = inf_session_default_params();
    sp.n_ctx = 64;
    sp.n_threads = 2;
    inf_session *s = NULL;
    if (inf_session_init(m, &sp, &s) != INF_OK) return false;
    bool ok = true;
    for (int i = 0; i < n_tok && ok; i++) {
        int32_t pos = i, seq = 0;
        inf_batch b = {.n_tokens = 1, .tokens = &tok[i], .pos = &pos, .seq_id = &seq, .want_logits = NULL};
        const float *l = NULL;
        ok = inf_session_decode(s, &b) == INF_OK && (l = inf_session_logits(s, -1)) != NULL;
        if (ok) memcpy(out + (size_t)i * (size_t)n_vocab, l, sizeof(float) * (size_t)n_vocab);
    }
    inf_session_free(s);
    return ok;
}

static void test_weight_copy(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/models/synthetic/micro-Q4_K_M-mix.gguf", test_shared_dir());
    inf_model *plain = NULL, *copied = NULL;
    setenv("INFERNO_WEIGHT_COPY", "0", 1);
    inf_status st = inf_model_load(path, NULL, &plain);
    unsetenv("INFERNO_WEIGHT_COPY");
    if (st != INF_OK) {
        printf("note: %s not loadable; weight copy not tested\n", path);
        return;
    }
    CHECK(inf_model_load(path, NULL, &copied) == INF_OK);
    if (!copied) {
        inf_model_free(plain);
        return;
    }
    CHECK(plain->cpu_weights == NULL && plain->n_cpu_tensors == 0);
    CHECK_MSG(copied->cpu_weights != NULL, "no huge-page copy made for %s", path);
    // Every layer matrix and the output head: a distinct view inside the copy, same metadata, same bytes.
    const uint8_t *lo = copied->cpu_weights, *hi = lo + copied->cpu_weights_bytes;
    int n = 0, bad = 0;
    for (int l = 0; l < copied->hp.n_layer; l++) {
        const inf_layer *A = &plain->layers[l], *B = &copied->layers[l];
        const gguf_tensor *a[] = {A->wq, A->wk, A->wv, A->wo, A->ffn_gate, A->ffn_up, A->ffn_down};
        const gguf_tensor *b[] = {B->wq, B->wk, B->wv, B->wo, B->ffn_gate, B->ffn_up, B->ffn_down};
        for (int i = 0; i < 7; i++, n++) {
            const uint8_t *d = b[i]->data;
            bool ok = d >= lo && d + b[i]->n_bytes <= hi && b[i]->type == a[i]->type &&
                      b[i]->ne[0] == a[i]->ne[0] && b[i]->ne[1] == a[i]->ne[1] && b[i]->n_bytes == a[i]->n_bytes &&
                      memcmp(d, a[i]->data, (size_t)a[i]->n_bytes) == 0;
            bad += !ok;
        }
    }
    CHECK_MSG(bad == 0, "%d of %d copied layer matrices differ from the file's", bad, n);
    CHECK(copied->n_cpu_tensors == n + 1);
    CHECK((const uint8_t *)copied->output->data >= lo && (const uint8_t *)copied->output->data < hi &&
          memcmp(copied->output->data, plain->output->data, (size_t)plain->output->n_bytes) == 0);
    const uint8_t *e = copied->token_embd->data; // the embedding rows stay in the file's mapping
    CHECK(e < lo || e >= hi);

    enum { N_TOK = 5 };
    const inf_token tok[N_TOK] = {1, 450, 4996, 17354, 1701};
    int nv = copied->hp.n_vocab;
    float *la = malloc(sizeof(float) * N_TOK * (size_t)nv), *lb = malloc(sizeof(float) * N_TOK * (size_t)nv);
    CHECK(la && lb);
    if (la && lb) {
        inf_token t2[N_TOK]; // folded into the vocabulary, whatever its size
        for (int i = 0; i < N_TOK; i++) t2[i] = tok[i] % nv;
        CHECK(decode_logits(plain, t2, N_TOK, la, nv));
        CHECK(decode_logits(copied, t2, N_TOK, lb, nv));
        CHECK_MSG(memcmp(la, lb, sizeof(float) * N_TOK * (size_t)nv) == 0,
                  "logits differ with the huge-page weight copy");
    }
    free(la);
    free(lb);
    inf_model_free(plain);
    inf_model_free(copied);
}

int main(void) {
    for (size_t v = 0; v < sizeof variant_names / sizeof variant_names[0]; v++) {
        const inf_cpu_kernels *k = inf_cpu_kernels_variant(variant_names[v]);
        if (!k) {
            printf("note: %s kernels not available on this CPU or build; skipped\n", variant_names[v]);
            continue;
        }
        CHECK(k->attn != NULL && k->attn_tile != NULL && k->swiglu != NULL);
        test_attention(k);
        test_attention_tile(k);
        test_attention_single(k);
        test_prep(k);
        test_swiglu(k);
    }
    test_weight_copy();
    return test_summary();
}
