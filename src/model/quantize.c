// quantize.c: `inferno quantize` on the library side: converts an F32/F16/BF16 GGUF model to another type,
// choosing the type of each tensor as llama-quantize does, and streams the result into a new GGUF file.
// Also the shared machinery of the model writers (quantize_int.h): the file-type table, the per-tensor
// type rules, and the threaded row converter.
//
// Rules followed (llama.cpp's llama_model_quantize_impl and llama_tensor_get_type, no importance matrix):
// - Only tensors whose name ends in "weight", with at least 2 dimensions that are not 1, and not a norm,
//   expert gate, positional or token-type embedding (and a few small 2-D tensors of other architectures)
//   are converted; everything else is copied as it is.
// - F32/F16/BF16 targets and --pure give every converted tensor the base type.
// - Quantized targets: output.weight (or token_embd.weight when there is no output.weight) gets Q6_K
//   (Q8_0 when the base type is Q8_0, or when its rows do not fit the base type's blocks); attn_v, ffn_down,
//   attn_output and attn_qkv get more bits in the layers and file types llama.cpp names. The layer counters
//   follow llama.cpp's processing order (tensors sorted by layer number, then by name), whatever the order
//   of the file, so the choice depends only on the tensor set.
// - A K-quant whose rows are not a multiple of 256 falls back as llama.cpp does (Q4_K -> Q5_0,
//   Q5_K -> Q5_1, Q6_K -> Q8_0, then F16 if the row still does not fit). Q2_K and Q3_K fall back to IQ4_NL
//   in llama.cpp, a type this build cannot write: Q4_0 (same size, same 32-element blocks) is used instead,
//   with a warning.
// - The metadata is copied in order; general.quantization_version (2) and general.file_type (llama.cpp's
//   ftype id) are removed and appended last, as llama-quantize's gguf_set does. The output keeps the input's
//   tensor order (llama-quantize sorts tensors by layer and name; readers do not care).
//
// Left out: requantizing (quantized inputs are refused), importance matrices and the IQ types, per-tensor
// overrides, split files, and the model-type rule for 70B models of architectures other than llama.
#include "model/quantize_int.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define QUANT_CHUNK_OUT_BYTES ((size_t)16 << 20) // output bytes converted per round of threads
#define QUANT_SCRATCH_FLOATS  ((int64_t)1 << 16) // F32 rows a worker converts at a time (256 KiB)
#define QUANT_MAX_ROW         ((int64_t)1 << 26) // longest row accepted (64M elements, 256 MiB as F32)
#define QUANT_MAX_THREADS     256

// ---------------------------------------------------------------------------------------------------------
// File types
// ---------------------------------------------------------------------------------------------------------

static const quant_ftype quant_ftypes[] = {
    {"F32", QUANT_FTYPE_ALL_F32, INF_TYPE_F32},    {"F16", QUANT_FTYPE_F16, INF_TYPE_F16},
    {"BF16", QUANT_FTYPE_BF16, INF_TYPE_BF16},     {"Q4_0", QUANT_FTYPE_Q4_0, INF_TYPE_Q4_0},
    {"Q4_1", QUANT_FTYPE_Q4_1, INF_TYPE_Q4_1},     {"Q5_0", QUANT_FTYPE_Q5_0, INF_TYPE_Q5_0},
    {"Q5_1", QUANT_FTYPE_Q5_1, INF_TYPE_Q5_1},     {"Q8_0", QUANT_FTYPE_Q8_0, INF_TYPE_Q8_0},
    {"Q2_K", QUANT_FTYPE_Q2_K, INF_TYPE_Q2_K},     {"Q3_K_S", QUANT_FTYPE_Q3_K_S, INF_TYPE_Q3_K},
    {"Q3_K_M", QUANT_FTYPE_Q3_K_M, INF_TYPE_Q3_K}, {"Q3_K_L", QUANT_FTYPE_Q3_K_L, INF_TYPE_Q3_K},
    {"Q4_K_S", QUANT_FTYPE_Q4_K_S, INF_TYPE_Q4_K}, {"Q4_K_M", QUANT_FTYPE_Q4_K_M, INF_TYPE_Q4_K},
    {"Q5_K_S", QUANT_FTYPE_Q5_K_S, INF_TYPE_Q5_K}, {"Q5_K_M", QUANT_FTYPE_Q5_K_M, INF_TYPE_Q5_K},
    {"Q6_K", QUANT_FTYPE_Q6_K, INF_TYPE_Q6_K},
};

// llama-quantize's aliases: the bare K-quant names mean the _M mixes.
static const struct {
    const char *alias, *name;
} quant_aliases[] = {{"Q3_K", "Q3_K_M"}, {"Q4_K", "Q4_K_M"}, {"Q5_K", "Q5_K_M"}};

const quant_ftype *quant_ftype_find(const char *name) {
    if (!name) return NULL;
    for (size_t i = 0; i < INF_ARRAY_LEN(quant_aliases); i++)
        if (!strcasecmp(name, quant_aliases[i].alias)) name = quant_aliases[i].name;
    for (size_t i = 0; i < INF_ARRAY_LEN(quant_ftypes); i++)
        if (!strcasecmp(name, quant_ftypes[i].name)) return &quant_ftypes[i];
    return NULL;
}

const char *quant_ftype_list(void) {
    return "F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K_S, Q3_K_M (Q3_K), Q3_K_L, Q4_K_S, "
           "Q4_K_M (Q4_K), Q5_K_S, Q5_K_M (Q5_K), Q6_K";
}

int quant_thread_count(int n) {
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    return n > QUANT_MAX_THREADS ? QUANT_MAX_THREADS : n;
}

// ---------------------------------------------------------------------------------------------------------
// Per-tensor types
// ---------------------------------------------------------------------------------------------------------

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !memcmp(s + n - k, suffix, k);
}

static bool is_quantized(inf_type t) { return t != INF_TYPE_F32 && t != INF_TYPE_F16 && t != INF_TYPE_BF16; }

static int64_t block_size(inf_type t) {
    const inf_type_traits *tr = inf_type_get((uint32_t)t);
    assert(tr);
    return tr->block_size;
}

// ggml_n_dims: dimensions up to the last one larger than 1 (at least 1).
static int effective_dims(const quant_tensor *t) {
    int n = 1;
    for (int d = 1; d < GGUF_MAX_DIMS; d++)
        if (t->ne[d] > 1) n = d + 1;
    return n;
}

// Whether llama-quantize converts the tensor at all (otherwise it is copied as it is).
static bool is_convertible(const quant_tensor *t) {
    static const char *const keep[] = {
        "_norm.weight", "ffn_gate_inp.weight", "altup", "laurel", "per_layer_model_proj", "ssm_conv1d.weight",
        "shortconv.conv.weight", "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight",
        "time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight",
        "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight",
        "time_mix_g2.weight", "time_mix_decay_w1.weight", "time_mix_decay_w2.weight",
        "time_mix_lerp_fused.weight", "attn_rel_b.weight",
    };
    if (!ends_with(t->name, "weight") || effective_dims(t) < 2) return false;
    for (size_t i = 0; i < INF_ARRAY_LEN(keep); i++)
        if (strstr(t->name, keep[i])) return false;
    return strcmp(t->name, "position_embd.weight") != 0 && strcmp(t->name, "token_types.weight") != 0;
}

// llama.cpp's use_more_bits: the first and last eighth of the layers, and every third one between.
static bool use_more_bits(int i_layer, int n_layers) {
    return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2;
}

typedef struct {
    const quant_hparams *hp;
    uint32_t ftype;
    bool falcon, is_70b, has_output;
    int n_attention_wv, i_attention_wv, i_ffn_down;
} mix_state;

// llama_tensor_get_type for the file types of quant_ftypes (no IQ types, no imatrix, no overrides).
static inf_status mix_type(mix_state *s, const quant_tensor *t, inf_type *type) {
    const char *name = t->name;
    const uint32_t f = s->ftype;
    const int n_gqa = s->hp->n_head_kv > 0 ? s->hp->n_head / s->hp->n_head_kv : 0;
    inf_type nt = *type;
    if (!strcmp(name, "output.weight") || (!s->has_output && !strcmp(name, "token_embd.weight"))) {
        if (s->falcon || t->ne[0] % block_size(nt) != 0)
            nt = INF_TYPE_Q8_0;
        else if (nt != INF_TYPE_Q8_0)
            nt = INF_TYPE_Q6_K;
    } else if (!strcmp(name, "token_embd.weight") || !strcmp(name, "per_layer_token_embd.weight")) {
        // Only the IQ and TQ file types change the token embedding.
    } else if (strstr(name, "attn_v.weight")) {
        int i = s->i_attention_wv;
        if (f == QUANT_FTYPE_Q2_K)
            nt = n_gqa >= 4 ? INF_TYPE_Q4_K : INF_TYPE_Q3_K;
        else if (f == QUANT_FTYPE_Q3_K_M)
            nt = i < 2 ? INF_TYPE_Q5_K : INF_TYPE_Q4_K;
        else if (f == QUANT_FTYPE_Q3_K_L)
            nt = INF_TYPE_Q5_K;
        else if ((f == QUANT_FTYPE_Q4_K_M || f == QUANT_FTYPE_Q5_K_M) && use_more_bits(i, s->n_attention_wv))
            nt = INF_TYPE_Q6_K;
        else if (f == QUANT_FTYPE_Q4_K_S && i < 4)
            nt = INF_TYPE_Q5_K;
        if (s->is_70b && (nt == INF_TYPE_Q3_K || nt == INF_TYPE_Q4_K)) nt = INF_TYPE_Q5_K;
        if (s->hp->n_expert == 8) nt = INF_TYPE_Q8_0;
        s->i_attention_wv++;
    } else if (strstr(name, "attn_k.weight")) {
        if (s->hp->n_expert == 8) nt = INF_TYPE_Q8_0;
    } else if (strstr(name, "attn_q.weight")) {
        // Only the IQ file types change attn_q.
    } else if (strstr(name, "ffn_down")) {
        int i_layer = s->i_ffn_down, n_layer = s->hp->n_layer;
        if (s->hp->n_expert > 1) {
            // Experts' tensors are not consecutive: llama.cpp takes the layer from the name.
            if (sscanf(name, "blk.%d.", &i_layer) != 1 || i_layer < 0 || i_layer >= n_layer)
                return inf_fail(INF_ERR_FORMAT, "tensor '%s': cannot tell its layer (of %d)", name, n_layer);
        }
        bool more = use_more_bits(i_layer, n_layer);
        if (f == QUANT_FTYPE_Q2_K)
            nt = INF_TYPE_Q3_K;
        else if (f == QUANT_FTYPE_Q3_K_M)
            nt = i_layer < n_layer / 16 ? INF_TYPE_Q5_K : !s->falcon || more ? INF_TYPE_Q4_K : INF_TYPE_Q3_K;
        else if (f == QUANT_FTYPE_Q3_K_L)
            nt = s->falcon ? INF_TYPE_Q4_K : INF_TYPE_Q5_K;
        else if (f == QUANT_FTYPE_Q4_K_M) {
            if (s->falcon)
                nt = i_layer < n_layer / 16 ? INF_TYPE_Q6_K : more ? INF_TYPE_Q5_K : INF_TYPE_Q4_K;
            else if (more)
                nt = INF_TYPE_Q6_K;
        } else if (f == QUANT_FTYPE_Q5_K_M && more)
            nt = INF_TYPE_Q6_K;
        else if (f == QUANT_FTYPE_Q4_K_S && !s->falcon && i_layer < n_layer / 8)
            nt = INF_TYPE_Q5_K;
        s->i_ffn_down++;
    } else if (strstr(name, "attn_output.weight")) {
        if (!s->falcon) {
            if (s->hp->n_expert == 8) {
                if (f == QUANT_FTYPE_Q2_K || f == QUANT_FTYPE_Q3_K_S || f == QUANT_FTYPE_Q3_K_M ||
                    f == QUANT_FTYPE_Q4_K_S || f == QUANT_FTYPE_Q4_K_M)
                    nt = INF_TYPE_Q5_K;
            } else if (f == QUANT_FTYPE_Q2_K)
                nt = INF_TYPE_Q3_K;
            else if (f == QUANT_FTYPE_Q3_K_M)
                nt = INF_TYPE_Q4_K;
            else if (f == QUANT_FTYPE_Q3_K_L)
                nt = INF_TYPE_Q5_K;
        } else if (f == QUANT_FTYPE_Q3_K_L)
            nt = INF_TYPE_Q4_K;
    } else if (strstr(name, "attn_qkv.weight")) {
        if (f == QUANT_FTYPE_Q3_K_M || f == QUANT_FTYPE_Q3_K_L)
            nt = INF_TYPE_Q4_K;
        else if (f == QUANT_FTYPE_Q4_K_M)
            nt = INF_TYPE_Q5_K;
        else if (f == QUANT_FTYPE_Q5_K_M)
            nt = INF_TYPE_Q6_K;
    }
    // (ffn_gate and ffn_up change only for the IQ file types.)

    if (t->ne[0] % block_size(nt) != 0) {
        inf_type fb;
        switch (nt) {
        case INF_TYPE_Q2_K:
        case INF_TYPE_Q3_K: fb = INF_TYPE_Q4_0; break; // llama.cpp: IQ4_NL (not writable here)
        case INF_TYPE_Q4_K: fb = INF_TYPE_Q5_0; break;
        case INF_TYPE_Q5_K: fb = INF_TYPE_Q5_1; break;
        case INF_TYPE_Q6_K: fb = INF_TYPE_Q8_0; break;
        default:
            return inf_fail(INF_ERR_UNSUPPORTED,
                            "tensor '%s': row length %" PRId64 " does not fit %s blocks of %" PRId64, name,
                            t->ne[0], inf_type_name((uint32_t)nt), block_size(nt));
        }
        if (t->ne[0] % block_size(fb) != 0) fb = INF_TYPE_F16;
        if (nt == INF_TYPE_Q2_K || nt == INF_TYPE_Q3_K)
            inf_log(INF_LOG_WARN,
                    "tensor '%s': rows of %" PRId64 " do not fit %s; using %s (llama.cpp would use IQ4_NL)",
                    name, t->ne[0], inf_type_name((uint32_t)nt), inf_type_name((uint32_t)fb));
        else
            inf_log(INF_LOG_INFO, "tensor '%s': rows of %" PRId64 " do not fit %s; falling back to %s", name,
                    t->ne[0], inf_type_name((uint32_t)nt), inf_type_name((uint32_t)fb));
        nt = fb;
    }
    *type = nt;
    return INF_OK;
}

typedef struct {
    int layer; // from "blk.%d.", -1 when absent
    const char *name;
    int64_t idx;
} order_key;

// llama.cpp's weight_name_comparer: layer number first (non-layer tensors first), then the name.
static int order_cmp(const void *a, const void *b) {
    const order_key *x = a, *y = b;
    if (x->layer != y->layer) return x->layer < y->layer ? -1 : 1;
    return strcmp(x->name, y->name);
}

inf_status quant_choose_types(const quant_ftype *ft, bool pure, const quant_hparams *hp,
                              const quant_tensor *t, int64_t n, inf_type *out) {
    bool mix = !pure && is_quantized(ft->base);
    mix_state s = {.hp = hp, .ftype = ft->ftype, .falcon = !strcmp(hp->arch, "falcon")};
    s.is_70b = !strcmp(hp->arch, "llama") && hp->n_layer == 80 && hp->n_head != hp->n_head_kv;
    for (int64_t i = 0; i < n; i++) {
        if (strstr(t[i].name, "attn_v.weight") || strstr(t[i].name, "attn_qkv.weight") ||
            strstr(t[i].name, "attn_kv_b.weight"))
            s.n_attention_wv++;
        else if (!strcmp(t[i].name, "output.weight"))
            s.has_output = true;
    }
    if (mix && hp->n_layer <= 0)
        return inf_fail(INF_ERR_FORMAT,
                        "the %s rules need the layer count ({arch}.block_count), which the "
                        "model lacks (--pure does without)",
                        ft->name);
    order_key *order = inf_malloc_array((size_t)n, sizeof *order);
    if (!order && n > 0) return inf_fail(INF_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        order[i] = (order_key){.layer = -1, .name = t[i].name, .idx = i};
        if (sscanf(t[i].name, "blk.%d.", &order[i].layer) != 1) order[i].layer = -1;
    }
    if (n > 1) qsort(order, (size_t)n, sizeof *order, order_cmp);
    inf_status st = INF_OK;
    for (int64_t k = 0; k < n && !st; k++) {
        const quant_tensor *ti = &t[order[k].idx];
        inf_type nt = ti->type;
        if (is_convertible(ti)) {
            nt = ft->base;
            if (mix) st = mix_type(&s, ti, &nt);
            if (!st && nt != ti->type && ti->ne[0] % block_size(nt) != 0)
                st = inf_fail(INF_ERR_UNSUPPORTED,
                              "tensor '%s': row length %" PRId64 " is not a multiple of %s's "
                              "block size %" PRId64,
                              ti->name, ti->ne[0], inf_type_name((uint32_t)nt), block_size(nt));
        }
        out[order[k].idx] = nt;
    }
    free(order);
    return st;
}

// ---------------------------------------------------------------------------------------------------------
// Row converter
// ---------------------------------------------------------------------------------------------------------

typedef struct {
    const quant_source *src;
    int64_t tensor;
    int64_t ne0;
    size_t row_out; // bytes of one output row
    inf_quantize_fn quantize;
    int64_t row0, nrows; // rows of this job
    uint8_t *dst;        // output of row0
    float *scratch;      // QUANT_SCRATCH_FLOATS or one row, whichever is larger
    int64_t bad_row;     // first row with NaN/inf, or -1
} quant_job;

static void *quant_job_run(void *arg) {
    quant_job *j = arg;
    int64_t per = QUANT_SCRATCH_FLOATS / j->ne0;
    if (per < 1) per = 1;
    for (int64_t r = 0; r < j->nrows; r += per) {
        int64_t k = INF_MIN(per, j->nrows - r);
        const float *x = j->src->rows(j->src->user, j->tensor, j->row0 + r, k, j->scratch);
        int64_t n = k * j->ne0;
        for (int64_t e = 0; e < n; e++) {
            if (!isfinite(x[e])) {
                j->bad_row = j->row0 + r + e / j->ne0;
                return NULL;
            }
        }
        j->quantize(x, j->dst + (size_t)r * j->row_out, n);
    }
    return NULL;
}

// Whether the raw bytes of a float tensor hold NaN or infinity (other types are not checked).
static bool raw_has_nonfinite(const void *data, inf_type type, uint64_t n) {
    if (type == INF_TYPE_F32) {
        const uint32_t *u = data;
        for (uint64_t i = 0; i < n; i++)
            if ((u[i] & 0x7f800000u) == 0x7f800000u) return true;
    } else if (type == INF_TYPE_F16 || type == INF_TYPE_BF16) {
        const uint16_t *h = data;
        uint16_t e = type == INF_TYPE_F16 ? 0x7c00u : 0x7f80u;
        for (uint64_t i = 0; i < n; i++)
            if ((h[i] & e) == e) return true;
    }
    return false;
}

static inf_status quant_convert_tensor(gguf_writer *w, const quant_tensor *t, int64_t i, inf_type out,
                                       const quant_source *src, quant_job *jobs, uint8_t *chunk,
                                       size_t chunk_cap) {
    int64_t ne0 = t->ne[0], rows = 1;
    for (int d = 1; d < GGUF_MAX_DIMS; d++) rows *= t->ne[d];
    size_t row_out = inf_row_size(out, ne0);
    assert(row_out > 0 && row_out <= chunk_cap);
    inf_quantize_fn q = inf_type_weight_quantizer((uint32_t)out);
    if (!q)
        return inf_fail(INF_ERR_UNSUPPORTED, "%s: tensor '%s': no quantizer for %s", src->label, t->name,
                        inf_type_name(out));
    int64_t per_chunk = (int64_t)(chunk_cap / row_out);
    for (int64_t c0 = 0; c0 < rows; c0 += per_chunk) {
        int64_t cn = INF_MIN(per_chunk, rows - c0);
        int nt = (int)INF_MIN((int64_t)src->n_threads, cn);
        pthread_t tid[QUANT_MAX_THREADS];
        bool started[QUANT_MAX_THREADS] = {false};
        for (int k = 0; k < nt; k++) {
            int64_t a = cn * k / nt, b = cn * (k + 1) / nt;
            quant_job *j = &jobs[k];
            j->src = src;
            j->tensor = i;
            j->ne0 = ne0;
            j->row_out = row_out;
            j->quantize = q;
            j->row0 = c0 + a;
            j->nrows = b - a;
            j->dst = chunk + (size_t)a * row_out;
            j->bad_row = -1;
            // Job 0 runs on this thread; if a thread cannot start, its job runs here too.
            if (k > 0 && pthread_create(&tid[k], NULL, quant_job_run, j) == 0) started[k] = true;
        }
        quant_job_run(&jobs[0]);
        for (int k = 1; k < nt; k++) {
            if (started[k])
                pthread_join(tid[k], NULL);
            else
                quant_job_run(&jobs[k]);
        }
        for (int k = 0; k < nt; k++)
            if (jobs[k].bad_row >= 0)
                return inf_fail(INF_ERR_FORMAT, "%s: tensor '%s': row %" PRId64 " holds NaN or infinity",
                                src->label, t->name, jobs[k].bad_row);
        inf_status st = gguf_writer_write(w, chunk, (size_t)cn * row_out);
        if (st) return st;
    }
    return INF_OK;
}

inf_status quant_write_tensors(gguf_writer *w, const quant_tensor *t, const inf_type *out, int64_t n,
                               const quant_source *src, quant_stats *stats) {
    assert(src->n_threads >= 1 && src->n_threads <= QUANT_MAX_THREADS);
    inf_status st = INF_OK;
    quant_stats acc = {0, 0};
    int64_t max_ne0 = 1;
    size_t max_row_out = 1;
    for (int64_t i = 0; i < n; i++) {
        if ((st = gguf_writer_add_tensor(w, t[i].name, t[i].n_dims, t[i].ne, out[i]))) return st;
        bool copy = out[i] == t[i].type && src->raw && src->raw[i];
        if (!copy) {
            if (t[i].ne[0] > QUANT_MAX_ROW)
                return inf_fail(INF_ERR_UNSUPPORTED,
                                "%s: tensor '%s': rows of %" PRId64 " elements (at most %" PRId64 ")",
                                src->label, t[i].name, t[i].ne[0], QUANT_MAX_ROW);
            max_ne0 = INF_MAX(max_ne0, t[i].ne[0]);
            max_row_out = INF_MAX(max_row_out, inf_row_size(out[i], t[i].ne[0]));
        }
    }
    // One chunk buffer (at least a row) and one scratch per thread (at least a row).
    size_t chunk_cap = INF_MAX(QUANT_CHUNK_OUT_BYTES, max_row_out);
    int64_t scratch_floats = INF_MAX(QUANT_SCRATCH_FLOATS, max_ne0);
    uint8_t *chunk = inf_malloc(chunk_cap);
    quant_job *jobs = inf_calloc((size_t)src->n_threads, sizeof *jobs);
    float *scratch = inf_malloc_array((size_t)src->n_threads * (size_t)scratch_floats, sizeof(float));
    if (!chunk || !jobs || !scratch) {
        st = inf_fail(INF_ERR_NOMEM, "%s: out of memory for conversion buffers", src->label);
        goto done;
    }
    for (int k = 0; k < src->n_threads; k++) jobs[k].scratch = scratch + (size_t)k * (size_t)scratch_floats;
    for (int64_t i = 0; i < n && !st; i++) {
        uint64_t n_el = 1;
        for (int d = 0; d < GGUF_MAX_DIMS; d++) n_el *= (uint64_t)t[i].ne[d];
        uint64_t in_bytes =
            n_el / (uint64_t)block_size(t[i].type) * inf_type_get((uint32_t)t[i].type)->type_size;
        uint64_t out_bytes = gguf_writer_tensor_bytes(w, i);
        double t0 = inf_time_now();
        if (out[i] == t[i].type && src->raw && src->raw[i]) {
            if (raw_has_nonfinite(src->raw[i], t[i].type, n_el))
                st = inf_fail(INF_ERR_FORMAT, "%s: tensor '%s' holds NaN or infinity", src->label, t[i].name);
            else
                st = gguf_writer_write(w, src->raw[i], (size_t)out_bytes);
        } else {
            st = quant_convert_tensor(w, &t[i], i, out[i], src, jobs, chunk, chunk_cap);
        }
        acc.bytes_in += in_bytes;
        acc.bytes_out += out_bytes;
        if (!st && inf_log_enabled(INF_LOG_DEBUG))
            inf_log(INF_LOG_DEBUG,
                    "[%4" PRId64 "/%4" PRId64 "] %-32s %-6s -> %-6s %9.3f MiB -> %8.3f MiB %6.2f s", i + 1, n,
                    t[i].name, inf_type_name(t[i].type), inf_type_name(out[i]), (double)in_bytes / 1048576.0,
                    (double)out_bytes / 1048576.0, inf_time_now() - t0);
    }
done:
    free(chunk);
    free(jobs);
    free(scratch);
    if (stats) *stats = acc;
    return st;
}

// ---------------------------------------------------------------------------------------------------------
// inf_quantize_file
// ---------------------------------------------------------------------------------------------------------

inf_quantize_params inf_quantize_default_params(void) {
    return (inf_quantize_params){.type = "Q4_K_M", .n_threads = 0, .pure = false};
}

// A count from the metadata: a u32-compatible scalar, or the first element of an integer array (per-layer
// values such as head_count_kv in some models). *out is left alone when the key is absent.
static inf_status meta_int(const gguf_file *f, const char *path, const char *arch, const char *suffix,
                           int *out) {
    char key[256];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return INF_OK;
    if (kv->type == GGUF_TYPE_ARRAY && kv->arr_n > 0 &&
        (kv->arr_type == GGUF_TYPE_UINT32 || kv->arr_type == GGUF_TYPE_INT32)) {
        int64_t v = kv->arr_type == GGUF_TYPE_UINT32 ? (int64_t)gguf_arr_u64(kv, 0) : gguf_arr_i64(kv, 0);
        if (v < 0 || v > INT32_MAX)
            return inf_fail(INF_ERR_FORMAT, "%s: key '%s': value %" PRId64 " out of range", path, key, v);
        *out = (int)v;
        return INF_OK;
    }
    uint32_t v = 0;
    inf_status st = gguf_get_u32(f, key, &v, NULL);
    if (st) return st;
    if (v > INT32_MAX) return inf_fail(INF_ERR_FORMAT, "%s: key '%s': value %u out of range", path, key, v);
    *out = (int)v;
    return INF_OK;
}

typedef struct {
    const gguf_file *f;
    const gguf_tensor *const *tensors;
} quantize_input;

// Rows of an input tensor as F32: F32 rows are read in place; F16 and BF16 are widened (exactly).
static const float *quantize_rows(void *user, int64_t i, int64_t row0, int64_t nrows, float *scratch) {
    const quantize_input *in = user;
    const gguf_tensor *t = in->tensors[i];
    int64_t ne0 = t->ne[0];
    if (t->type == INF_TYPE_F32) return (const float *)t->data + row0 * ne0;
    const uint16_t *h = (const uint16_t *)t->data + row0 * ne0;
    if (t->type == INF_TYPE_F16)
        dequantize_row_f16_ref(h, scratch, nrows * ne0);
    else
        dequantize_row_bf16_ref(h, scratch, nrows * ne0);
    return scratch;
}

// Whether two paths name the same existing file.
static bool same_file(const char *a, const char *b) {
    struct stat sa, sb;
    if (stat(a, &sa) != 0 || stat(b, &sb) != 0) return false;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

inf_status inf_quantize_file(const char *in_path, const char *out_path, const inf_quantize_params *p) {
    inf_quantize_params defaults = inf_quantize_default_params();
    if (!p) p = &defaults;
    if (!in_path || !*in_path || !out_path || !*out_path)
        return inf_fail(INF_ERR_INVALID_ARG, "quantize: input and output paths are required");
    const quant_ftype *ft = quant_ftype_find(p->type);
    if (!ft)
        return inf_fail(INF_ERR_INVALID_ARG, "quantize: unknown type '%s' (known: %s)",
                        p->type ? p->type : "(null)", quant_ftype_list());
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", out_path) >= (int)sizeof tmp)
        return inf_fail(INF_ERR_INVALID_ARG, "%s: output path too long", out_path);
    if (!strcmp(in_path, out_path) || same_file(in_path, out_path) || same_file(in_path, tmp))
        return inf_fail(INF_ERR_INVALID_ARG, "%s: the output would overwrite the input", out_path);

    double t_start = inf_time_now();
    gguf_file *f = NULL;
    inf_status st = gguf_open(in_path, &f);
    if (st) return st;
    gguf_writer *w = NULL;
    int64_t n = gguf_n_tensors(f);
    quant_tensor *ts = inf_calloc((size_t)(n > 0 ? n : 1), sizeof *ts);
    inf_type *out = inf_calloc((size_t)(n > 0 ? n : 1), sizeof *out);
    const gguf_tensor **gt = inf_calloc((size_t)(n > 0 ? n : 1), sizeof *gt);
    const void **raw = inf_calloc((size_t)(n > 0 ? n : 1), sizeof *raw);
    if (!ts || !out || !gt || !raw) {
        st = inf_fail(INF_ERR_NOMEM, "%s: out of memory", in_path);
        goto done;
    }
    if (n == 0) {
        st = inf_fail(INF_ERR_FORMAT, "%s: no tensors to quantize (a vocabulary-only file?)", in_path);
        goto done;
    }
    for (int64_t i = 0; i < n; i++) {
        const gguf_tensor *g = gguf_tensor_at(f, i);
        if (g->type != INF_TYPE_F32 && g->type != INF_TYPE_F16 && g->type != INF_TYPE_BF16) {
            st = inf_fail(INF_ERR_UNSUPPORTED,
                          "%s: tensor '%s' is %s: quantize reads only F32, F16 and BF16 models", in_path,
                          g->name, inf_type_name(g->type));
            goto done;
        }
        gt[i] = g;
        raw[i] = g->data;
        ts[i] = (quant_tensor){.name = g->name, .n_dims = g->n_dims, .type = g->type};
        memcpy(ts[i].ne, g->ne, sizeof ts[i].ne);
    }
    uint32_t split_count = 0;
    if ((st = gguf_get_u32(f, "split.count", &split_count, NULL))) goto done;
    if (split_count > 1) {
        st = inf_fail(INF_ERR_UNSUPPORTED, "%s: split GGUF files (split.count %u) are not supported", in_path,
                      split_count);
        goto done;
    }

    quant_hparams hp = {.arch = ""};
    const char *arch = NULL;
    if ((st = gguf_get_str(f, "general.architecture", &arch, NULL))) goto done;
    if (arch) {
        hp.arch = arch;
        if ((st = meta_int(f, in_path, arch, "block_count", &hp.n_layer)) ||
            (st = meta_int(f, in_path, arch, "attention.head_count", &hp.n_head)))
            goto done;
        hp.n_head_kv = hp.n_head;
        if ((st = meta_int(f, in_path, arch, "attention.head_count_kv", &hp.n_head_kv)) ||
            (st = meta_int(f, in_path, arch, "expert_count", &hp.n_expert)))
            goto done;
    }
    if ((st = quant_choose_types(ft, p->pure, &hp, ts, n, out))) {
        inf_error_prefix("%s", in_path);
        goto done;
    }

    if ((st = gguf_writer_open(out_path, &w))) goto done;
    for (int64_t i = 0; i < gguf_n_kv(f) && !st; i++) st = gguf_writer_copy_kv(w, gguf_kv_at(f, i));
    if (st) goto done;
    gguf_writer_remove_kv(w, "split.no");
    gguf_writer_remove_kv(w, "split.count");
    gguf_writer_remove_kv(w, "split.tensors.count");
    if ((st = gguf_writer_set_u32(w, "general.quantization_version", 2)) ||
        (st = gguf_writer_set_u32(w, "general.file_type", ft->ftype)))
        goto done;

    quantize_input qin = {.f = f, .tensors = gt};
    quant_source src = {.rows = quantize_rows,
                        .user = &qin,
                        .raw = raw,
                        .n_threads = quant_thread_count(p->n_threads),
                        .label = in_path};
    quant_stats stats;
    if ((st = quant_write_tensors(w, ts, out, n, &src, &stats))) goto done;
    st = gguf_writer_finish(w);
    w = NULL;
    if (!st)
        inf_log(INF_LOG_INFO, "quantize: %s -> %s (%s, %d threads): %.2f MiB -> %.2f MiB in %.2f s", in_path,
                out_path, ft->name, src.n_threads, (double)stats.bytes_in / 1048576.0,
                (double)stats.bytes_out / 1048576.0, inf_time_now() - t_start);
done:
    gguf_writer_free(w);
    free(ts);
    free(out);
    free(gt);
    free(raw);
    gguf_close(f);
    return st;
}
