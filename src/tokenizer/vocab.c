// vocab.c: builds an inf_vocab from the tokenizer.ggml.* metadata of a GGUF file, following llama.cpp's
// loader (llama-vocab.cpp) for defaults, special ids, end-of-generation tokens and per-token attributes.
//
// What is read: tokenizer.ggml.model ("llama" = SentencePiece, "gpt2" = byte-level BPE), .pre, .tokens,
// .scores, .token_type, .merges, the *_token_id keys, add_bos_token / add_eos_token / add_space_prefix.
// Metadata is treated as hostile: wrong types, short arrays, unknown token types, duplicate tokens and
// merges naming unknown tokens are errors that name the key (and index). Where llama.cpp is lenient in a
// way real files rely on (longer-than-needed arrays, special ids out of range, a merge whose result is
// not a token) we are lenient too, with a log line.
//
// Leaves out: WordPiece ("bert"), Unigram ("t5"), RWKV and the other tokenizer models (reported as
// unsupported), and BPE pre-tokenizers that llama.cpp implements by hand (kimi-k2, afmoe) or that work on
// raw UTF-8 (gemma4, sarvam-moe): see pretok.c.
#include "tokenizer/tokenizer_int.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------------------
// Hash tables
// ---------------------------------------------------------------------------------------------------------
uint64_t vocab_hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; // FNV-1a
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static uint64_t hash_pair(int32_t a, int32_t b) {
    uint64_t x = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; // splitmix64 finaliser
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

int32_t vocab_find(const inf_vocab *v, const char *s, size_t n) {
    uint32_t i = (uint32_t)vocab_hash_bytes(s, n) & v->tok_hash_mask;
    for (;;) {
        int32_t id = v->tok_hash[i];
        if (id < 0) {
            return -1;
        }
        const vocab_token *t = &v->tokens[id];
        if (t->len == n && memcmp(v->pool + t->off, s, n) == 0) {
            return id;
        }
        i = (i + 1) & v->tok_hash_mask;
    }
}

// Inserts id; returns the id already holding the same text, or -1 when it was new.
static int32_t vocab_insert(inf_vocab *v, int32_t id) {
    const vocab_token *t = &v->tokens[id];
    const char *s = v->pool + t->off;
    uint32_t i = (uint32_t)vocab_hash_bytes(s, t->len) & v->tok_hash_mask;
    for (;;) {
        int32_t other = v->tok_hash[i];
        if (other < 0) {
            v->tok_hash[i] = id;
            return -1;
        }
        const vocab_token *o = &v->tokens[other];
        if (o->len == t->len && memcmp(v->pool + o->off, s, t->len) == 0) {
            return other;
        }
        i = (i + 1) & v->tok_hash_mask;
    }
}

const vocab_merge *vocab_find_merge(const inf_vocab *v, int32_t left, int32_t right) {
    if (!v->merges) {
        return NULL;
    }
    uint32_t i = (uint32_t)hash_pair(left, right) & v->merge_mask;
    for (;;) {
        const vocab_merge *m = &v->merges[i];
        if (m->left < 0) {
            return NULL;
        }
        if (m->left == left && m->right == right) {
            return m;
        }
        i = (i + 1) & v->merge_mask;
    }
}

// Smallest power of two >= 2n (load factor <= 1/2), at least 16.
static uint32_t table_size_for(uint64_t n) {
    uint64_t size = 16;
    while (size < 2 * n) {
        size <<= 1;
    }
    return (uint32_t)size;
}

// ---------------------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------------------

// Printable, truncated rendering of token text for messages.
static const char *show(const char *s, size_t n, char *buf, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
        } else {
            buf[o++] = (char)c;
        }
    }
    if (o + 5 >= cap && n > 0) {
        memcpy(buf + o, "...", 4);
        return buf;
    }
    buf[o] = '\0';
    return buf;
}

static int32_t find_cstr(const inf_vocab *v, const char *s) { return vocab_find(v, s, strlen(s)); }

static bool text_is(const inf_vocab *v, int32_t id, const char *s) {
    size_t n = strlen(s);
    return v->tokens[id].len == n && memcmp(vocab_text(v, id), s, n) == 0;
}

static bool text_in(const inf_vocab *v, int32_t id, const char *const *list) {
    for (; *list; list++) {
        if (text_is(v, id, *list)) {
            return true;
        }
    }
    return false;
}

// Reads an optional integer key as a token id. Absent: *found = false. Present but not an integer: error.
static inf_status read_id_key(const gguf_file *f, const char *key, int64_t *out, bool *found) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    *found = false;
    if (!kv) {
        return INF_OK;
    }
    switch (kv->type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_UINT64:
        *out = kv->v.u64 > (uint64_t)INT64_MAX ? -1 : (int64_t)kv->v.u64;
        break;
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_INT16:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_INT64:
        *out = kv->v.i64;
        break;
    default:
        return inf_fail(INF_ERR_FORMAT, "%s: expected an integer token id, got %s", key,
                        gguf_type_name(kv->type));
    }
    *found = true;
    return INF_OK;
}

static inf_status read_bool_key(const gguf_file *f, const char *key, bool *out) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (kv && kv->type != GGUF_TYPE_BOOL) {
        return inf_fail(INF_ERR_FORMAT, "%s: expected bool, got %s", key, gguf_type_name(kv->type));
    }
    return gguf_get_bool(f, key, out, NULL);
}

static inf_status read_str_key(const gguf_file *f, const char *key, const char **out) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (kv && kv->type != GGUF_TYPE_STRING) {
        return inf_fail(INF_ERR_FORMAT, "%s: expected string, got %s", key, gguf_type_name(kv->type));
    }
    return gguf_get_str(f, key, out, NULL);
}

// Array value with the given element type(s); NULL kv when absent.
static inf_status find_array(const gguf_file *f, const char *key, gguf_type t1, gguf_type t2,
                             const gguf_kv **out) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    *out = NULL;
    if (!kv) {
        return INF_OK;
    }
    if (kv->type != GGUF_TYPE_ARRAY || (kv->arr_type != t1 && kv->arr_type != t2)) {
        const char *got =
            kv->type == GGUF_TYPE_ARRAY ? gguf_type_name(kv->arr_type) : gguf_type_name(kv->type);
        return inf_fail(INF_ERR_FORMAT, "%s: expected array of %s%s%s, got %s%s", key, gguf_type_name(t1),
                        t2 != t1 ? " or " : "", t2 != t1 ? gguf_type_name(t2) : "",
                        kv->type == GGUF_TYPE_ARRAY ? "array of " : "", got);
    }
    *out = kv;
    return INF_OK;
}

static int32_t read_i32(const void *base, uint64_t i) {
    int32_t x;
    memcpy(&x, (const char *)base + 4 * i, 4);
    return x;
}

static float read_f32(const void *base, uint64_t i) {
    float x;
    memcpy(&x, (const char *)base + 4 * i, 4);
    return x;
}

// ---------------------------------------------------------------------------------------------------------
// Loading steps
// ---------------------------------------------------------------------------------------------------------

static inf_status load_kind(const gguf_file *f, inf_vocab *v) {
    const char *model = NULL, *pre = NULL;
    inf_status st = read_str_key(f, "tokenizer.ggml.model", &model);
    if (st != INF_OK) {
        return st;
    }
    if (!model) {
        return inf_fail(INF_ERR_FORMAT, "tokenizer.ggml.model: missing");
    }
    if ((st = read_str_key(f, "tokenizer.ggml.pre", &pre)) != INF_OK) {
        return st;
    }
    v->model = inf_strdup(model);
    v->pre = inf_strdup(pre && *pre ? pre : "default");
    if (!v->model || !v->pre) {
        return inf_fail(INF_ERR_NOMEM, "tokenizer: out of memory");
    }

    if (strcmp(model, "llama") == 0) {
        v->kind = INF_VOCAB_SPM;
        v->bos = 1;
        v->eos = 2;
        v->unk = 0;
        v->add_space_prefix = true;
        v->add_bos = true;
        v->add_eos = false;
        v->clean_spaces = false;
    } else if (strcmp(model, "gpt2") == 0) {
        v->kind = INF_VOCAB_BPE;
        if (!pre || !*pre) {
            inf_log(INF_LOG_WARN, "tokenizer.ggml.pre missing: using the 'default' BPE pre-tokenizer "
                                  "(generation quality may suffer; consider regenerating the model)");
        }
        v->pretok = vocab_pretok_find(v->pre);
        if (!v->pretok) {
            return inf_fail(INF_ERR_UNSUPPORTED,
                            "tokenizer.ggml.pre '%s': unknown or unsupported BPE "
                            "pre-tokenizer",
                            v->pre);
        }
        v->bos = v->pretok->no_bos ? -1 : 11; // llama.cpp's BPE defaults (Falcon's ids)
        v->eos = 11;
        v->add_space_prefix = false;
        v->add_bos = v->pretok->add_bos;
        v->add_eos = false;
        v->clean_spaces = v->pretok->clean_spaces;
        v->ignore_merges = v->pretok->ignore_merges;
    } else {
        return inf_fail(INF_ERR_UNSUPPORTED,
                        "tokenizer.ggml.model '%s': unsupported tokenizer (supported: "
                        "'llama' SentencePiece, 'gpt2' BPE)",
                        model);
    }
    return read_bool_key(f, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix);
}

static inf_status load_tokens(const gguf_file *f, inf_vocab *v) {
    const gguf_kv *tk = NULL, *sc = NULL, *ty = NULL;
    inf_status st = find_array(f, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, GGUF_TYPE_STRING, &tk);
    if (st != INF_OK) {
        return st;
    }
    if (!tk) {
        return inf_fail(INF_ERR_FORMAT, "tokenizer.ggml.tokens: missing");
    }
    if (tk->arr_n == 0) {
        return inf_fail(INF_ERR_FORMAT, "tokenizer.ggml.tokens: empty");
    }
    if (tk->arr_n > VOCAB_MAX_TOKENS) {
        return inf_fail(INF_ERR_FORMAT, "tokenizer.ggml.tokens: %llu tokens (most supported: %d)",
                        (unsigned long long)tk->arr_n, VOCAB_MAX_TOKENS);
    }
    const int n = (int)tk->arr_n;

    if ((st = find_array(f, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, GGUF_TYPE_INT32, &sc)) != INF_OK) {
        return st;
    }
    if (sc && sc->arr_n < (uint64_t)n) {
        return inf_fail(INF_ERR_FORMAT, "tokenizer.ggml.scores: %llu entries for %d tokens",
                        (unsigned long long)sc->arr_n, n);
    }
    if ((st = find_array(f, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, GGUF_TYPE_INT32, &ty)) != INF_OK) {
        return st;
    }
    if (ty && ty->arr_n < (uint64_t)n) {
        return inf_fail(INF_ERR_FORMAT, "tokenizer.ggml.token_type: %llu entries for %d tokens",
                        (unsigned long long)ty->arr_n, n);
    }
    if ((sc && sc->arr_n > (uint64_t)n) || (ty && ty->arr_n > (uint64_t)n)) {
        inf_log(INF_LOG_WARN,
                "tokenizer: scores/token_type arrays are longer than tokens (%d); extra entries "
                "ignored",
                n);
    }

    // Pool size first: empty texts become "[EMPTY_<id>]" as in llama.cpp, so every token has text.
    uint64_t pool = 0;
    for (int i = 0; i < n; i++) {
        uint64_t len = tk->arr_strs[i].len;
        if (len == 0) {
            len = 24;
        }
        if (len > VOCAB_MAX_TOKEN_BYTES) {
            return inf_fail(INF_ERR_FORMAT, "tokenizer.ggml.tokens[%d]: %llu bytes (most supported: %d)", i,
                            (unsigned long long)len, VOCAB_MAX_TOKEN_BYTES);
        }
        pool += len + 1;
    }
    if (pool > VOCAB_MAX_TEXT_BYTES) {
        return inf_fail(INF_ERR_FORMAT, "tokenizer.ggml.tokens: %llu bytes of text (most supported: %zu)",
                        (unsigned long long)pool, VOCAB_MAX_TEXT_BYTES);
    }
    v->n_tokens = n;
    v->tokens = inf_calloc((size_t)n, sizeof *v->tokens);
    v->pool = inf_malloc((size_t)pool);
    uint32_t hsize = table_size_for((uint64_t)n);
    v->tok_hash = inf_malloc_array(hsize, sizeof *v->tok_hash);
    if (!v->tokens || !v->pool || !v->tok_hash) {
        return inf_fail(INF_ERR_NOMEM, "tokenizer: out of memory for %d tokens", n);
    }
    memset(v->tok_hash, 0xff, (size_t)hsize * sizeof *v->tok_hash);
    v->tok_hash_mask = hsize - 1;

    size_t off = 0;
    for (int i = 0; i < n; i++) {
        vocab_token *t = &v->tokens[i];
        const gguf_str *s = &tk->arr_strs[i];
        t->off = (uint32_t)off;
        if (s->len == 0) {
            inf_log(INF_LOG_WARN, "tokenizer.ggml.tokens[%d]: empty token", i);
            int w = snprintf(v->pool + off, 24, "[EMPTY_%d]", i);
            t->len = (uint32_t)w;
        } else {
            memcpy(v->pool + off, s->ptr, (size_t)s->len);
            v->pool[off + s->len] = '\0';
            t->len = (uint32_t)s->len;
        }
        off += t->len + 1;
        v->max_token_len = INF_MAX(v->max_token_len, (int)t->len);

        t->score = 0.0f;
        if (sc) {
            t->score = sc->arr_type == GGUF_TYPE_FLOAT32 ? read_f32(sc->arr_data, (uint64_t)i)
                                                         : (float)read_i32(sc->arr_data, (uint64_t)i);
        }
        t->attr = VOCAB_ATTR_NORMAL;
        if (ty) {
            int32_t type = read_i32(ty->arr_data, (uint64_t)i);
            switch (type) {
            case VOCAB_TYPE_UNDEFINED:
                t->attr = VOCAB_ATTR_UNDEFINED;
                break;
            case VOCAB_TYPE_NORMAL:
                t->attr = VOCAB_ATTR_NORMAL;
                break;
            case VOCAB_TYPE_UNKNOWN:
                t->attr = VOCAB_ATTR_UNKNOWN;
                break;
            case VOCAB_TYPE_CONTROL:
                t->attr = VOCAB_ATTR_CONTROL;
                break;
            case VOCAB_TYPE_USER_DEFINED:
                t->attr = VOCAB_ATTR_USER_DEFINED;
                break;
            case VOCAB_TYPE_UNUSED:
                t->attr = VOCAB_ATTR_UNUSED;
                break;
            case VOCAB_TYPE_BYTE:
                t->attr = VOCAB_ATTR_BYTE;
                break;
            default:
                return inf_fail(INF_ERR_FORMAT, "tokenizer.ggml.token_type[%d] = %d: not a token type (0..6)",
                                i, (int)type);
            }
        }
        int32_t dup = vocab_insert(v, i);
        if (dup >= 0) {
            char buf[64];
            return inf_fail(INF_ERR_FORMAT, "tokenizer.ggml.tokens: duplicate token '%s' at ids %d and %d",
                            show(vocab_text(v, i), t->len, buf, sizeof buf), (int)dup, i);
        }
    }
    assert(off == pool);
    return INF_OK;
}

static inf_status load_merges(const gguf_file *f, inf_vocab *v) {
    const gguf_kv *mk = NULL;
    inf_status st = find_array(f, "tokenizer.ggml.merges", GGUF_TYPE_STRING, GGUF_TYPE_STRING, &mk);
    if (st != INF_OK) {
        return st;
    }
    if (!mk) {
        return inf_fail(INF_ERR_FORMAT, "tokenizer.ggml.merges: missing (required by the 'gpt2' tokenizer)");
    }
    if (mk->arr_n > (uint64_t)VOCAB_MAX_TOKENS) {
        return inf_fail(INF_ERR_FORMAT, "tokenizer.ggml.merges: %llu merges (most supported: %d)",
                        (unsigned long long)mk->arr_n, VOCAB_MAX_TOKENS);
    }
    uint32_t size = table_size_for(mk->arr_n);
    v->merges = inf_malloc_array(size, sizeof *v->merges);
    if (!v->merges) {
        return inf_fail(INF_ERR_NOMEM, "tokenizer.ggml.merges: out of memory");
    }
    for (uint32_t i = 0; i < size; i++) {
        v->merges[i] = (vocab_merge){-1, -1, -1, -1};
    }
    v->merge_mask = size - 1;

    int n_no_result = 0;
    for (uint64_t i = 0; i < mk->arr_n; i++) {
        const char *s = mk->arr_strs[i].ptr;
        size_t len = (size_t)mk->arr_strs[i].len;
        // Split at the first space after the first byte (so a left part may itself be a space).
        const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        char buf[64];
        if (!sp) {
            return inf_fail(INF_ERR_FORMAT, "tokenizer.ggml.merges[%llu] = '%s': expected 'left right'",
                            (unsigned long long)i, show(s, len, buf, sizeof buf));
        }
        size_t nl = (size_t)(sp - s), nr = len - nl - 1;
        int32_t left = vocab_find(v, s, nl), right = vocab_find(v, sp + 1, nr);
        if (left < 0 || right < 0) {
            return inf_fail(INF_ERR_FORMAT, "tokenizer.ggml.merges[%llu] = '%s': %s part is not a token",
                            (unsigned long long)i, show(s, len, buf, sizeof buf),
                            left < 0 ? "left" : "right");
        }
        int32_t result = -1;
        if (nl + nr <= (size_t)v->max_token_len) {
            char tmp[2 * 64];
            char *joined = nl + nr <= sizeof tmp ? tmp : inf_malloc(nl + nr);
            if (!joined) {
                return inf_fail(INF_ERR_NOMEM, "tokenizer.ggml.merges: out of memory");
            }
            memcpy(joined, s, nl);
            memcpy(joined + nl, sp + 1, nr);
            result = vocab_find(v, joined, nl + nr);
            if (joined != tmp) {
                free(joined);
            }
        }
        n_no_result += result < 0;

        uint32_t h = (uint32_t)hash_pair(left, right) & v->merge_mask;
        for (;;) {
            vocab_merge *m = &v->merges[h];
            if (m->left < 0) {
                *m = (vocab_merge){left, right, (int32_t)i, result};
                v->n_merges++;
                break;
            }
            if (m->left == left && m->right == right) {
                break; // duplicate pair: the first (lowest) rank wins, as in llama.cpp
            }
            h = (h + 1) & v->merge_mask;
        }
    }
    if (n_no_result > 0) {
        inf_log(INF_LOG_WARN, "tokenizer.ggml.merges: %d merges produce text that is not a token",
                n_no_result);
    }
    return INF_OK;
}

static inf_status load_special_ids(const gguf_file *f, inf_vocab *v) {
    static const struct {
        const char *key;
        size_t field;
    } keys[] = {
        {"tokenizer.ggml.bos_token_id", offsetof(inf_vocab, bos)},
        {"tokenizer.ggml.eos_token_id", offsetof(inf_vocab, eos)},
        {"tokenizer.ggml.eot_token_id", offsetof(inf_vocab, eot)},
        {"tokenizer.ggml.eom_token_id", offsetof(inf_vocab, eom)},
        {"tokenizer.ggml.unknown_token_id", offsetof(inf_vocab, unk)},
        {"tokenizer.ggml.seperator_token_id", offsetof(inf_vocab, sep)}, // sic: the GGUF key's spelling
        {"tokenizer.ggml.padding_token_id", offsetof(inf_vocab, pad)},
        {"tokenizer.ggml.mask_token_id", offsetof(inf_vocab, mask)},
        {"tokenizer.ggml.fim_pre_token_id", offsetof(inf_vocab, fim_pre)},
        {"tokenizer.ggml.fim_suf_token_id", offsetof(inf_vocab, fim_suf)},
        {"tokenizer.ggml.fim_mid_token_id", offsetof(inf_vocab, fim_mid)},
        {"tokenizer.ggml.fim_pad_token_id", offsetof(inf_vocab, fim_pad)},
        {"tokenizer.ggml.fim_rep_token_id", offsetof(inf_vocab, fim_rep)},
        {"tokenizer.ggml.fim_sep_token_id", offsetof(inf_vocab, fim_sep)},
        {"tokenizer.ggml.prefix_token_id", offsetof(inf_vocab, fim_pre)}, // deprecated spellings
        {"tokenizer.ggml.suffix_token_id", offsetof(inf_vocab, fim_suf)},
        {"tokenizer.ggml.middle_token_id", offsetof(inf_vocab, fim_mid)},
    };
    for (size_t k = 0; k < INF_ARRAY_LEN(keys); k++) {
        int *id = (int *)((char *)v + keys[k].field);
        if (*id >= v->n_tokens) {
            inf_log(INF_LOG_DEBUG, "%s: default id %d is out of vocab range, disabled", keys[k].key, *id);
            *id = -1;
        }
        int64_t val = 0;
        bool found = false;
        inf_status st = read_id_key(f, keys[k].key, &val, &found);
        if (st != INF_OK) {
            return st;
        }
        if (!found) {
            continue;
        }
        if (val < 0 || val >= v->n_tokens) {
            inf_log(INF_LOG_DEBUG, "%s = %lld: out of vocab range (%d tokens), ignored", keys[k].key,
                    (long long)val, v->n_tokens);
            continue;
        }
        *id = (int)val;
    }

    inf_status st = read_bool_key(f, "tokenizer.ggml.add_bos_token", &v->add_bos);
    if (st == INF_OK) {
        st = read_bool_key(f, "tokenizer.ggml.add_eos_token", &v->add_eos);
    }
    if (st != INF_OK) {
        return st;
    }
    if (v->add_bos && v->bos < 0) {
        return inf_fail(INF_ERR_FORMAT,
                        "tokenizer.ggml.add_bos_token is true, but tokenizer.ggml.bos_token_id "
                        "is not set");
    }
    if (v->add_eos && v->eos < 0) {
        return inf_fail(INF_ERR_FORMAT,
                        "tokenizer.ggml.add_eos_token is true, but tokenizer.ggml.eos_token_id "
                        "is not set");
    }
    return INF_OK;
}

// Adds CONTROL to a token recognised by its text (converters sometimes forget to mark them).
static void force_control(inf_vocab *v, int32_t id) {
    if (!(v->tokens[id].attr & VOCAB_ATTR_CONTROL)) {
        inf_log(INF_LOG_DEBUG, "tokenizer: token %d '%s' looks like a control token; marking it control", id,
                vocab_text(v, id));
        v->tokens[id].attr |= VOCAB_ATTR_CONTROL;
    }
}

// End-of-turn / FIM tokens by text, the EOG set, and the other attribute fix-ups llama.cpp applies.
static void detect_special_tokens(inf_vocab *v) {
    // Octal escapes spell DeepSeek's tokens: "\357\275\234" is U+FF5C (fullwidth '|'), "\342\226\201" is
    // U+2581 ('▁'), e.g. "<｜end▁of▁sentence｜>".
    static const char *const eot_texts[] = {"<|eot_id|>",
                                            "<|im_end|>",
                                            "<|end|>",
                                            "<end_of_turn>",
                                            "<|endoftext|>",
                                            "<|end_of_text|>",
                                            "<EOT>",
                                            "_<EOT>",
                                            "[EOT]",
                                            "<\357\275\234end\342\226\201of\342\226\201sentence\357\275\234>",
                                            "<end_of_utterance>",
                                            NULL};
    static const char *const eom_texts[] = {"<|eom_id|>", NULL};
    static const char *const fim_pre_texts[] = {"<|fim_prefix|>",
                                                "<fim-prefix>",
                                                "<fim_prefix>",
                                                "<\357\275\234fim\342\226\201begin\357\275\234>",
                                                "<PRE>",
                                                "\xe2\x96\x81<PRE>",
                                                "<|code_prefix|>",
                                                "<|prefix|>",
                                                NULL};
    static const char *const fim_suf_texts[] = {"<|fim_suffix|>",
                                                "<fim-suffix>",
                                                "<fim_suffix>",
                                                "<\357\275\234fim\342\226\201hole\357\275\234>",
                                                "<SUF>",
                                                "\xe2\x96\x81<SUF>",
                                                "<|code_suffix|>",
                                                "<|suffix|>",
                                                NULL};
    static const char *const fim_mid_texts[] = {"<|fim_middle|>",
                                                "<fim-middle>",
                                                "<fim_middle>",
                                                "<\357\275\234fim\342\226\201end\357\275\234>",
                                                "<MID>",
                                                "\xe2\x96\x81<MID>",
                                                "<|code_middle|>",
                                                "<|middle|>",
                                                NULL};
    static const char *const fim_pad_texts[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>",
                                                "<PAD>",       "[PAD]",     NULL};
    static const char *const fim_rep_texts[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>",
                                                "<REPO>",       "<reponame>",    NULL};
    static const char *const fim_sep_texts[] = {"<|file_sep|>", NULL};
    static const char *const eog_texts[] = {"<|eot_id|>",
                                            "<|im_end|>",
                                            "<|end|>",
                                            "<|return|>",
                                            "<|call|>",
                                            "<|flush|>",
                                            "<|calls|>",
                                            "<end_of_turn>",
                                            "<|endoftext|>",
                                            "</s>",
                                            "<|eom_id|>",
                                            "<EOT>",
                                            "_<EOT>",
                                            "[EOT]",
                                            "[EOS]",
                                            "<|end_of_text|>",
                                            "<end_of_utterance>",
                                            "<eos>",
                                            "<turn|>",
                                            "<|tool_response>",
                                            "<\357\275\234end\342\226\201of\342\226\201sentence\357\275\234>",
                                            "[e~[",
                                            NULL};
    static const char *const always_render[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>",
                                                NULL};

    struct {
        int *id;
        const char *const *texts;
    } detect[] = {
        {&v->eot, eot_texts},         {&v->eom, eom_texts},         {&v->fim_pre, fim_pre_texts},
        {&v->fim_suf, fim_suf_texts}, {&v->fim_mid, fim_mid_texts}, {&v->fim_pad, fim_pad_texts},
        {&v->fim_rep, fim_rep_texts}, {&v->fim_sep, fim_sep_texts},
    };
    // llama.cpp walks a hash map (no defined order); we walk ids upwards, so the lowest id wins a tie.
    for (int32_t id = 0; id < v->n_tokens; id++) {
        if (v->tokens[id].len > 32) {
            continue; // every text in these lists is shorter
        }
        for (size_t k = 0; k < INF_ARRAY_LEN(detect); k++) {
            if (*detect[k].id < 0 && text_in(v, id, detect[k].texts)) {
                *detect[k].id = id;
                force_control(v, id);
            }
        }
    }

    // Control tokens whose text says "unused".
    for (int32_t id = 0; id < v->n_tokens; id++) {
        vocab_token *t = &v->tokens[id];
        if ((t->attr & VOCAB_ATTR_CONTROL) && strstr(vocab_text(v, id), "unused")) {
            t->attr |= VOCAB_ATTR_UNUSED;
        }
    }

    // End-of-generation set.
    const int fim_eog[] = {v->fim_pad, v->fim_rep, v->fim_sep};
    for (size_t k = 0; k < INF_ARRAY_LEN(fim_eog); k++) {
        if (fim_eog[k] >= 0) {
            v->tokens[fim_eog[k]].attr |= VOCAB_ATTR_EOG;
        }
    }
    for (int32_t id = 0; id < v->n_tokens; id++) {
        if (v->tokens[id].len <= 32 && text_in(v, id, eog_texts)) {
            v->tokens[id].attr |= VOCAB_ATTR_EOG;
            force_control(v, id);
        }
    }
    for (int32_t id = 0; id < v->n_tokens; id++) {
        if (v->tokens[id].len <= 16 && text_in(v, id, always_render)) {
            v->tokens[id].attr = VOCAB_ATTR_USER_DEFINED; // gpt-oss: these are always rendered
        }
    }
    const int ids_eog[] = {v->eos, v->eot, v->eom};
    for (size_t k = 0; k < INF_ARRAY_LEN(ids_eog); k++) {
        if (ids_eog[k] >= 0) {
            v->tokens[ids_eog[k]].attr |= VOCAB_ATTR_EOG;
        }
    }

    // o200k_harmony / solar-open: "<|end|>" separates messages there and does not end generation.
    // gemma4 / paddleocr: "</s>" is ordinary text when "<|tool_response>" exists.
    int32_t end_id = -1, s_id = -1;
    bool has_return = false, has_call = false, has_flush = false, has_tool_response = false;
    for (int32_t id = 0; id < v->n_tokens; id++) {
        if (!(v->tokens[id].attr & VOCAB_ATTR_EOG)) {
            continue;
        }
        has_return |= text_is(v, id, "<|return|>");
        has_call |= text_is(v, id, "<|call|>") || text_is(v, id, "<|calls|>");
        has_flush |= text_is(v, id, "<|flush|>");
        has_tool_response |= text_is(v, id, "<|tool_response>");
        if (text_is(v, id, "<|end|>")) {
            end_id = id;
        }
        if (text_is(v, id, "</s>")) {
            s_id = id;
        }
    }
    if (end_id >= 0 && ((has_return && has_call) || (has_call && has_flush))) {
        v->tokens[end_id].attr = VOCAB_ATTR_USER_DEFINED;
    }
    if (s_id >= 0 && has_tool_response) {
        v->tokens[s_id].attr = VOCAB_ATTR_NORMAL;
    }
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static inf_status build_special_cache(inf_vocab *v) {
    const uint32_t mask = VOCAB_ATTR_CONTROL | VOCAB_ATTR_USER_DEFINED | VOCAB_ATTR_UNKNOWN;
    int n = 0;
    for (int32_t id = 0; id < v->n_tokens; id++) {
        n += (v->tokens[id].attr & mask) != 0;
    }
    v->special = inf_malloc_array((size_t)INF_MAX(n, 1), sizeof *v->special);
    uint64_t *keys = inf_malloc_array((size_t)INF_MAX(n, 1), sizeof *keys);
    if (!v->special || !keys) {
        free(keys);
        return inf_fail(INF_ERR_NOMEM, "tokenizer: out of memory");
    }
    // Sort key: longest text first, then lowest id, so the order is deterministic (llama.cpp's std::sort
    // leaves ties unordered).
    for (int32_t id = 0; id < v->n_tokens; id++) {
        if (v->tokens[id].attr & mask) {
            keys[v->n_special++] = ((uint64_t)(UINT32_MAX - v->tokens[id].len) << 32) | (uint32_t)id;
        }
    }
    qsort(keys, (size_t)v->n_special, sizeof *keys, cmp_u64);
    for (int i = 0; i < v->n_special; i++) {
        v->special[i] = (int32_t)(keys[i] & 0xffffffffu);
    }
    free(keys);
    return INF_OK;
}

static inf_status build_special_trie(inf_vocab *v) {
    size_t total = 0;
    for (int i = 0; i < v->n_special; i++) {
        total += v->tokens[v->special[i]].len;
    }
    assert(total < INT32_MAX);
    v->trie = inf_malloc_array(INF_MAX(total, (size_t)1), sizeof *v->trie);
    if (!v->trie) {
        return inf_fail(INF_ERR_NOMEM, "tokenizer: out of memory");
    }
    memset(v->trie_root, 0xff, sizeof v->trie_root);
    for (int i = 0; i < v->n_special; i++) {
        const vocab_token *t = &v->tokens[v->special[i]];
        const uint8_t *s = (const uint8_t *)vocab_text(v, v->special[i]);
        int32_t *link = &v->trie_root[s[0]]; // where the node for s[k] hangs (a root slot or a child list)
        int32_t node = -1;
        for (uint32_t k = 0; k < t->len; k++) {
            int32_t at = *link;
            if (k > 0) {
                while (at >= 0 && v->trie[at].byte != s[k]) {
                    at = v->trie[at].sibling;
                }
            }
            if (at < 0) {
                at = v->n_trie++;
                v->trie[at] = (struct vocab_trie_node){-1, k > 0 ? *link : -1, -1, s[k]};
                *link = at;
            }
            node = at;
            link = &v->trie[node].child;
        }
        if (v->trie[node].special_index < 0) {
            v->trie[node].special_index = i;
        }
    }
    return INF_OK;
}

// Strip attributes that llama.cpp sets by model / pre-tokenizer / architecture name.
static inf_status apply_name_attrs(const gguf_file *f, inf_vocab *v) {
    const char *name = NULL, *arch = NULL;
    inf_status st = read_str_key(f, "general.name", &name);
    if (st == INF_OK) {
        st = read_str_key(f, "general.architecture", &arch);
    }
    if (st != INF_OK) {
        return st;
    }
    char lname[256] = "";
    if (name) {
        size_t i = 0;
        for (; name[i] && i + 1 < sizeof lname; i++) {
            lname[i] = (char)tolower((unsigned char)name[i]);
        }
        lname[i] = '\0';
    }
    const char *pre = v->pre;
    if (strstr(pre, "jina-v2-de") || strstr(pre, "jina-v2-es") || strstr(pre, "jina-v2-code") ||
        (arch && (strstr(arch, "nomic-bert-moe") || strstr(arch, "jina-bert-v3")))) {
        int32_t id = find_cstr(v, "<mask>");
        if (id >= 0) {
            v->tokens[id].attr |= VOCAB_ATTR_LSTRIP;
        }
    } else if (strstr(lname, "phi-3") || strstr(lname, "phi3")) {
        for (int i = 0; i < v->n_special; i++) {
            v->tokens[v->special[i]].attr |= VOCAB_ATTR_RSTRIP;
        }
        int32_t id = find_cstr(v, "</s>");
        if (id >= 0) {
            v->tokens[id].attr |= VOCAB_ATTR_RSTRIP;
        }
        const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
        for (size_t k = 0; k < INF_ARRAY_LEN(keep); k++) {
            if ((id = find_cstr(v, keep[k])) >= 0) {
                v->tokens[id].attr &= ~(uint32_t)VOCAB_ATTR_RSTRIP;
            }
        }
    } else if (strstr(lname, "modern-bert")) {
        int32_t id = find_cstr(v, "[MASK]");
        if (id >= 0) {
            v->tokens[id].attr |= VOCAB_ATTR_LSTRIP;
        }
    }
    return INF_OK;
}

static void build_byte_tokens(inf_vocab *v) {
    for (int b = 0; b < 256; b++) {
        char buf[8];
        int32_t id;
        if (v->kind == INF_VOCAB_SPM) {
            snprintf(buf, sizeof buf, "<0x%02X>", b);
            id = find_cstr(v, buf);
            if (id < 0) {
                buf[0] = (char)b;
                id = vocab_find(v, buf, 1);
            }
        } else {
            size_t n = vocab_utf8_put(vocab_byte_to_cpt((uint8_t)b), buf);
            id = vocab_find(v, buf, n);
        }
        v->byte_token[b] = id;
    }
}

inf_status vocab_load(const gguf_file *f, inf_vocab **out) {
    *out = NULL;
    inf_vocab *v = inf_calloc(1, sizeof *v);
    if (!v) {
        return inf_fail(INF_ERR_NOMEM, "tokenizer: out of memory");
    }
    v->bos = v->eos = v->eot = v->eom = v->unk = v->sep = v->pad = v->mask = -1;
    v->fim_pre = v->fim_suf = v->fim_mid = v->fim_pad = v->fim_rep = v->fim_sep = -1;

    inf_status st = load_kind(f, v);
    if (st == INF_OK) {
        st = load_tokens(f, v);
    }
    if (st == INF_OK && v->kind == INF_VOCAB_BPE) {
        st = load_merges(f, v);
    }
    if (st == INF_OK) {
        st = load_special_ids(f, v);
    }
    if (st == INF_OK) {
        detect_special_tokens(v);
        st = build_special_cache(v);
    }
    if (st == INF_OK) {
        st = build_special_trie(v);
    }
    if (st == INF_OK) {
        st = apply_name_attrs(f, v);
    }
    if (st == INF_OK) {
        build_byte_tokens(v);
        if (v->kind == INF_VOCAB_BPE) {
            st = vocab_pretok_compile(v);
        }
    }
    if (st != INF_OK) {
        vocab_free(v);
        return st;
    }
    inf_log(INF_LOG_DEBUG, "tokenizer: %s (%s), %d tokens, %d merges, %d special, bos %d eos %d add_bos %d",
            v->model, v->pre, v->n_tokens, v->n_merges, v->n_special, v->bos, v->eos, (int)v->add_bos);
    *out = v;
    return INF_OK;
}

void vocab_free(inf_vocab *v) {
    if (!v) {
        return;
    }
    for (int i = 0; i < v->n_re; i++) {
        pcre2_code_free(v->re[i]);
    }
    free(v->model);
    free(v->pre);
    free(v->tokens);
    free(v->pool);
    free(v->tok_hash);
    free(v->merges);
    free(v->special);
    free(v->trie);
    free(v);
}

// ---------------------------------------------------------------------------------------------------------
// Getters
// ---------------------------------------------------------------------------------------------------------
inf_vocab_kind vocab_kind(const inf_vocab *v) { return v->kind; }
const char *vocab_model_name(const inf_vocab *v) { return v->model; }
const char *vocab_pre_name(const inf_vocab *v) { return v->pre; }
int vocab_n_tokens(const inf_vocab *v) { return v->n_tokens; }
int vocab_bos(const inf_vocab *v) { return v->bos; }
int vocab_eos(const inf_vocab *v) { return v->eos; }
int vocab_eot(const inf_vocab *v) { return v->eot; }
int vocab_unk(const inf_vocab *v) { return v->unk; }
int vocab_n_merges(const inf_vocab *v) { return v->n_merges; }
bool vocab_add_bos(const inf_vocab *v) { return v->add_bos; }
bool vocab_add_eos(const inf_vocab *v) { return v->add_eos; }

bool vocab_is_eog(const inf_vocab *v, inf_token t) {
    return t >= 0 && t < v->n_tokens && (v->tokens[t].attr & VOCAB_ATTR_EOG);
}

bool vocab_is_control(const inf_vocab *v, inf_token t) {
    return t >= 0 && t < v->n_tokens && (v->tokens[t].attr & VOCAB_ATTR_CONTROL);
}

const char *vocab_token_text(const inf_vocab *v, inf_token t) {
    return t >= 0 && t < v->n_tokens ? vocab_text(v, t) : NULL;
}

float vocab_token_score(const inf_vocab *v, inf_token t) {
    return t >= 0 && t < v->n_tokens ? v->tokens[t].score : 0.0f;
}
