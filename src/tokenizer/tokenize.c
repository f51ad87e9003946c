// tokenize.c: the tokenizer entry points: special-token partitioning, BOS/EOS handling, dispatch to the
// SentencePiece or BPE algorithm, and the reverse direction (token pieces, detokenization with llama.cpp's
// leading-space and clean-up rules).
//
// Special tokens (llama.cpp's tokenizer_st_partition): the control, user-defined and unknown tokens are
// taken longest first; each one's occurrences are cut out of the raw text still left, left to right.
// User-defined tokens are always cut out (as Hugging Face does); control and unknown ones only with
// parse_special. The pieces between them are tokenized normally.
//
// Leaves out: llama.cpp's remove_special flag of detokenize (callers drop BOS/EOS themselves) and the
// token-to-piece cache (pieces are rendered on the fly; they are short).
#include "tokenizer/tokenizer_int.h"

#include <ctype.h>
#include <limits.h>
#include <string.h>

inf_status vocab_ids_push(vocab_ids *o, int32_t id) {
    if (o->n == o->cap_alloc) {
        assert(o->cap_alloc < o->cap_max); // the cap comes from the input size: more tokens is a bug
        size_t cap = INF_MIN(INF_MAX(o->cap_alloc * 2, (size_t)256), o->cap_max);
        int32_t *nv = realloc(o->ids, cap * sizeof *nv);
        if (!nv) {
            return inf_fail(INF_ERR_NOMEM, "tokenizer: out of memory for %zu tokens", cap);
        }
        o->ids = nv;
        o->cap_alloc = cap;
    }
    o->ids[o->n++] = id;
    return INF_OK;
}

// ---------------------------------------------------------------------------------------------------------
// Special-token partition
// ---------------------------------------------------------------------------------------------------------
typedef struct {
    int32_t token; // -1: raw text [off, off + len)
    uint32_t off, len;
} fragment;

typedef struct {
    fragment *v;
    size_t n, cap, cap_max;
} frag_vec;

static inf_status frag_push(frag_vec *f, fragment x) {
    if (f->n == f->cap) {
        assert(f->cap < f->cap_max); // each cut adds at most two pieces; bounded by 2 * len + 1
        size_t cap = INF_MIN(INF_MAX(f->cap * 2, (size_t)16), f->cap_max);
        fragment *nv = realloc(f->v, cap * sizeof *nv);
        if (!nv) {
            return inf_fail(INF_ERR_NOMEM, "tokenizer: out of memory");
        }
        f->v = nv;
        f->cap = cap;
    }
    f->v[f->n++] = x;
    return INF_OK;
}

// Cuts every occurrence of special token id out of the raw fragments of in, writing the result to out.
static inf_status cut_token(const inf_vocab *v, const char *text, int32_t id, const frag_vec *in,
                            frag_vec *out) {
    const vocab_token *tk = &v->tokens[id];
    const char *needle = vocab_text(v, id);
    const size_t nl = tk->len;
    inf_status st = INF_OK;
    out->n = 0;
    for (size_t i = 0; st == INF_OK && i < in->n; i++) {
        fragment fr = in->v[i];
        if (fr.token >= 0 || fr.len < nl) {
            st = frag_push(out, fr);
            continue;
        }
        size_t pos = fr.off, end = (size_t)fr.off + fr.len;
        while (st == INF_OK && pos < end) {
            const char *m = memmem(text + pos, end - pos, needle, nl);
            if (!m) {
                break;
            }
            size_t at = (size_t)(m - text);
            size_t left_len = at - pos;
            if (tk->attr & VOCAB_ATTR_LSTRIP) {
                while (left_len > 0 && isspace((unsigned char)text[pos + left_len - 1])) {
                    left_len--;
                }
            }
            if (left_len > 0) {
                st = frag_push(out, (fragment){-1, (uint32_t)pos, (uint32_t)left_len});
            }
            if (st == INF_OK) {
                st = frag_push(out, (fragment){id, 0, 0});
            }
            pos = at + nl;
            if (tk->attr & VOCAB_ATTR_RSTRIP) {
                while (pos < end && isspace((unsigned char)text[pos])) {
                    pos++;
                }
            }
        }
        if (st == INF_OK && pos < end) {
            st = frag_push(out, (fragment){-1, (uint32_t)pos, (uint32_t)(end - pos)});
        }
    }
    return st;
}

// Marks in present[] (indexed like v->special) the special texts that occur somewhere in text: one pass
// over the text walking the trie, instead of one search per special token (vocabularies carry thousands
// of user-defined tokens).
static void find_present(const inf_vocab *v, const char *text, size_t len, uint8_t *present) {
    const uint8_t *s = (const uint8_t *)text;
    for (size_t pos = 0; pos < len; pos++) {
        int32_t node = v->trie_root[s[pos]];
        for (size_t k = pos + 1; node >= 0; k++) {
            if (v->trie[node].special_index >= 0) {
                present[v->trie[node].special_index] = 1;
            }
            if (k >= len) {
                break;
            }
            node = v->trie[node].child;
            while (node >= 0 && v->trie[node].byte != s[k]) {
                node = v->trie[node].sibling;
            }
        }
    }
}

static inf_status partition(const inf_vocab *v, const char *text, size_t len, bool parse_special,
                            frag_vec *out) {
    frag_vec a = {.cap_max = 2 * len + 1}, b = {.cap_max = 2 * len + 1};
    inf_status st = INF_OK;
    uint8_t *present = NULL;
    if (len > 0 && v->n_special > 0) {
        present = inf_calloc((size_t)v->n_special, 1);
        if (!present) {
            return inf_fail(INF_ERR_NOMEM, "tokenize: out of memory");
        }
        find_present(v, text, len, present);
    }
    if (len > 0) {
        st = frag_push(&a, (fragment){-1, 0, (uint32_t)len});
    }
    for (int k = 0; st == INF_OK && present && k < v->n_special; k++) {
        int32_t id = v->special[k];
        const vocab_token *tk = &v->tokens[id];
        if (!present[k] || (!parse_special && (tk->attr & (VOCAB_ATTR_CONTROL | VOCAB_ATTR_UNKNOWN)))) {
            continue;
        }
        st = cut_token(v, text, id, &a, &b);
        frag_vec t = a;
        a = b;
        b = t;
    }
    free(b.v);
    free(present);
    if (st != INF_OK) {
        free(a.v);
        return st;
    }
    *out = a;
    return INF_OK;
}

// ---------------------------------------------------------------------------------------------------------
// Tokenize
// ---------------------------------------------------------------------------------------------------------

// SPM text for one fragment: the optional "▁" prefix, then the fragment with every ' ' as "▁" (U+2581).
static char *spm_escape(const char *s, size_t n, bool prefix, size_t *out_len) {
    size_t spaces = 0;
    for (size_t i = 0; i < n; i++) {
        spaces += s[i] == ' ';
    }
    size_t len = n + 2 * spaces + (prefix ? 3 : 0);
    char *o = inf_malloc(len ? len : 1);
    if (!o) {
        return NULL;
    }
    size_t w = 0;
    if (prefix) {
        memcpy(o, "\xe2\x96\x81", 3);
        w = 3;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') {
            memcpy(o + w, "\xe2\x96\x81", 3);
            w += 3;
        } else {
            o[w++] = s[i];
        }
    }
    assert(w == len);
    *out_len = len;
    return o;
}

inf_status vocab_tokenize(const inf_vocab *v, const char *text, size_t len, bool add_special,
                          bool parse_special, inf_token *out, int cap, int *n_out) {
    *n_out = 0;
    if (!text && len > 0) {
        return inf_fail(INF_ERR_INVALID_ARG, "tokenize: text is NULL");
    }
    if (len > VOCAB_MAX_INPUT_BYTES) {
        return inf_fail(INF_ERR_INVALID_ARG, "tokenize: text is %zu bytes (at most %zu)", len,
                        VOCAB_MAX_INPUT_BYTES);
    }
    if (cap < 0 || (cap > 0 && !out)) {
        return inf_fail(INF_ERR_INVALID_ARG, "tokenize: bad output buffer (cap %d)", cap);
    }

    frag_vec frags = {0};
    inf_status st = partition(v, text, len, parse_special, &frags);
    if (st != INF_OK) {
        return st;
    }
    // Upper bound on the ids: a BPE fallback piece yields at most one id per byte of its GPT-2 encoding
    // (2 per input byte, 6 after U+FFFD replacement); SPM adds a 3-byte prefix per fragment.
    vocab_ids ids = {.cap_max = 6 * len + 4 * frags.n + 4};

    if (add_special && v->add_bos) {
        assert(v->bos >= 0); // checked at load
        st = vocab_ids_push(&ids, v->bos);
    }
    bool prev_special = true; // SPM: the text after a special token (or at the start) gets the "▁" prefix
    for (size_t i = 0; st == INF_OK && i < frags.n; i++) {
        const fragment *fr = &frags.v[i];
        if (fr->token >= 0) {
            st = vocab_ids_push(&ids, fr->token);
            prev_special = true;
            continue;
        }
        if (v->kind == INF_VOCAB_SPM) {
            size_t elen = 0;
            char *esc = spm_escape(text + fr->off, fr->len, v->add_space_prefix && prev_special, &elen);
            if (!esc) {
                st = inf_fail(INF_ERR_NOMEM, "tokenize: out of memory");
                break;
            }
            st = vocab_spm_encode(v, esc, elen, &ids);
            free(esc);
            prev_special = false;
        } else {
            st = vocab_bpe_encode(v, text + fr->off, fr->len, &ids);
        }
    }
    if (st == INF_OK && add_special && v->add_bos && ids.n >= 2 && ids.ids[1] == v->bos) {
        inf_log(INF_LOG_WARN, "tokenize: the text starts with a BOS token and another was added: two BOS");
    }
    if (st == INF_OK && add_special && v->add_eos) {
        st = vocab_ids_push(&ids, v->eos);
    }
    free(frags.v);
    if (st == INF_OK) {
        if (ids.n > (size_t)INT_MAX) {
            st = inf_fail(INF_ERR_INVALID_ARG, "tokenize: %zu tokens do not fit an int", ids.n);
        } else {
            size_t k = INF_MIN(ids.n, (size_t)cap);
            if (k > 0) {
                memcpy(out, ids.ids, k * sizeof *out);
            }
            *n_out = (int)ids.n;
        }
    }
    free(ids.ids);
    return st;
}

// ---------------------------------------------------------------------------------------------------------
// Pieces and detokenization
// ---------------------------------------------------------------------------------------------------------

// Output sink: counts every byte, stores what fits, and drops up to `strip` leading spaces.
typedef struct {
    char *buf;
    size_t cap, n;
    int strip;
} sink;

static void sink_put(sink *s, const char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (s->strip > 0) {
            if (p[i] == ' ') {
                s->strip--;
                continue;
            }
            s->strip = 0;
        }
        if (s->n < s->cap) {
            s->buf[s->n] = p[i];
        }
        s->n++;
    }
}

static uint8_t token_byte(const inf_vocab *v, int32_t id) {
    // "<0xNN>": the hex digits at 3..4 (llama.cpp reads them with strtol).
    const char *t = vocab_text(v, id);
    unsigned val = 0;
    for (uint32_t i = 3; i < 5 && i < v->tokens[id].len && isxdigit((unsigned char)t[i]); i++) {
        val = val * 16 + (unsigned)(isdigit((unsigned char)t[i]) ? t[i] - '0'
                                                                 : (tolower((unsigned char)t[i]) - 'a' + 10));
    }
    return (uint8_t)val;
}

// Renders the piece of token id into s (lstrip leading spaces dropped, as llama.cpp's token_to_piece).
static void piece_render(const inf_vocab *v, int32_t id, bool special, sink *s) {
    if (id < 0 || id >= v->n_tokens) {
        return;
    }
    const vocab_token *tk = &v->tokens[id];
    const char *text = vocab_text(v, id);
    if (!special && (tk->attr & (VOCAB_ATTR_UNKNOWN | VOCAB_ATTR_CONTROL))) {
        return;
    }
    if (tk->attr & (VOCAB_ATTR_UNKNOWN | VOCAB_ATTR_CONTROL | VOCAB_ATTR_USER_DEFINED)) {
        sink_put(s, text, tk->len);
    } else if (tk->attr & VOCAB_ATTR_NORMAL) {
        if (v->kind == INF_VOCAB_SPM) {
            for (uint32_t i = 0; i < tk->len;) { // "▁" -> ' '
                if (i + 3 <= tk->len && memcmp(text + i, "\xe2\x96\x81", 3) == 0) {
                    sink_put(s, " ", 1);
                    i += 3;
                } else {
                    sink_put(s, text + i, 1);
                    i++;
                }
            }
        } else {
            // GPT-2 characters back to bytes. Characters outside the mapping are rendered the way llama.cpp
            // does ("[UNK_BYTE_0x<utf8 hex><token text>]") so output stays comparable.
            for (uint32_t i = 0; i < tk->len;) {
                const unsigned char *p = (const unsigned char *)text + i;
                size_t k = INF_MIN(vocab_utf8_len(p[0]), (size_t)(tk->len - i));
                uint32_t c = p[0];
                if (k == 2) {
                    c = ((p[0] & 0x1fu) << 6) | (p[1] & 0x3fu);
                } else if (k == 3) {
                    c = ((p[0] & 0x0fu) << 12) | ((p[1] & 0x3fu) << 6) | (p[2] & 0x3fu);
                } else if (k == 4) {
                    c = ((p[0] & 0x07u) << 18) | ((p[1] & 0x3fu) << 12) | ((p[2] & 0x3fu) << 6) |
                        (p[3] & 0x3fu);
                }
                int b = vocab_cpt_to_byte(c);
                if (b >= 0) {
                    char ch = (char)b;
                    sink_put(s, &ch, 1);
                } else {
                    char hex[16];
                    sink_put(s, "[UNK_BYTE_0x", 12);
                    for (size_t j = 0; j < k; j++) {
                        snprintf(hex, sizeof hex, "%02x", p[j]);
                        sink_put(s, hex, 2);
                    }
                    sink_put(s, text, tk->len);
                    sink_put(s, "]", 1);
                }
                i += (uint32_t)k;
            }
        }
    } else if (tk->attr & VOCAB_ATTR_BYTE) {
        char ch = (char)token_byte(v, id);
        sink_put(s, &ch, 1);
    }
    // UNUSED / UNDEFINED tokens render as nothing.
}

int vocab_token_to_piece(const inf_vocab *v, inf_token t, bool render_special, char *buf, int cap) {
    sink s = {buf, buf && cap > 0 ? (size_t)cap : 0, 0, 0};
    piece_render(v, t, render_special, &s);
    return s.n > (size_t)INT_MAX ? INT_MAX : (int)s.n;
}

// llama.cpp's clean_up_tokenization_spaces passes, in place; returns the new length.
static size_t clean_spaces(char *t, size_t n) {
    if (n == 0) {
        return 0;
    }
    // 1: " ?", " !", " .", " ," lose the space.
    size_t w = 1;
    for (size_t i = 1; i < n; i++) {
        char x = t[i];
        if (t[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) {
            w--;
        }
        t[w++] = x;
    }
    n = w;
    // 2: " ' " becomes "'" (both spaces go).
    w = 1;
    for (size_t i = 1; i < n; i++) {
        char x = t[i];
        if (x == '\'' && i + 1 < n && t[i - 1] == ' ' && t[i + 1] == ' ') {
            w--;
            t[w++] = x;
            t[i + 1] = '\0'; // the skipped space no longer counts as one (llama.cpp overwrites it too)
            i++;
            continue;
        }
        t[w++] = x;
    }
    n = w;
    // 3: " 's", " 'm", " 're", " 've" lose the space (" 't", " 'd", " 'll" keep it).
    w = 1;
    for (size_t i = 1; i < n; i++) {
        char x = t[i];
        if (t[i - 1] == ' ' && x == '\'' && i + 1 < n) {
            char x1 = t[i + 1];
            if (x1 == 's' || x1 == 'm') {
                w--;
            } else if (i + 2 < n && ((x1 == 'r' && t[i + 2] == 'e') || (x1 == 'v' && t[i + 2] == 'e'))) {
                w--;
            }
        }
        t[w++] = x;
    }
    return w;
}

int vocab_detokenize(const inf_vocab *v, const inf_token *tokens, int n, bool remove_leading_space,
                     bool render_special, char *buf, int cap) {
    if (n <= 0 || !tokens) {
        if (buf && cap > 0) {
            buf[0] = '\0';
        }
        return 0;
    }
    if (!buf || cap < 0) {
        cap = 0;
    }
    // The first token consumes the leading-space removal even when it renders as nothing (a BOS), which is
    // how llama.cpp keeps " Hello" after <s>.
    const int strip = remove_leading_space && v->add_space_prefix ? 1 : 0;
    sink count = {NULL, 0, 0, 0};
    for (int i = 0; i < n; i++) {
        count.strip = i == 0 ? strip : 0;
        piece_render(v, tokens[i], render_special, &count);
    }
    if (count.n >= (size_t)INT_MAX) {
        return INT_MIN;
    }
    if (count.n > (size_t)cap) {
        return -(int)(count.n + 1);
    }
    sink out = {buf, (size_t)cap, 0, 0};
    for (int i = 0; i < n; i++) {
        out.strip = i == 0 ? strip : 0;
        piece_render(v, tokens[i], render_special, &out);
    }
    assert(out.n == count.n);
    size_t total = v->clean_spaces ? clean_spaces(buf, out.n) : out.n;
    if (total < (size_t)cap) {
        buf[total] = '\0';
    }
    return (int)total;
}
