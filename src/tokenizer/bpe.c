// bpe.c: byte-level BPE tokenization of one text fragment, as llama.cpp's llm_tokenizer_bpe_session does it:
// the text is made valid UTF-8 (bad bytes -> U+FFFD), split into words by the pre-tokenizer regexes, and
// each word, seen as GPT-2 byte characters, is merged pair by pair in merge-rank order (ties: leftmost
// first). A final piece that is not a token falls back to single-byte tokens where they exist.
//
// Symbols are slices of the raw word bytes: byte i of a word is GPT-2 character i of its encoded form, so
// encoding is needed only to look whole words up (ignore_merges) and for the rare fallback.
//
// Leaves out: SPM-style BPE without byte encoding (gemma4), and the per-model sessions llama.cpp has for
// non-gpt2 models (whitespace, hybriddna).
#include "tokenizer/heap.h"
#include "tokenizer/tokenizer_int.h"

#include <string.h>

typedef struct {
    int32_t left, right;
    int32_t rank;
    int32_t result;           // token the pair becomes (-1: not a token)
    uint32_t left_n, right_n; // symbol sizes when queued; a change means the entry is stale
} bpe_bigram;

// Min-heap order: lowest rank first, then the leftmost pair.
static bool bpe_before(const bpe_bigram *a, const bpe_bigram *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

TOK_HEAP_DEFINE(bpe_heap, bpe_bigram, bpe_before)

typedef struct {
    uint32_t start, n; // word bytes [start, start + n); n == 0 once merged into the left neighbour
    int32_t prev, next;
    int32_t id; // token of this piece, -1 if none
} bpe_sym;

// Scratch reused across the words of one call; sized for the longest word.
typedef struct {
    bpe_sym *sym;
    bpe_heap heap;
    char *enc; // GPT-2 encoding of a word: at most 2 bytes per byte
    size_t cap;
} bpe_work;

static inf_status work_reserve(bpe_work *w, size_t n) {
    if (n <= w->cap) {
        return INF_OK;
    }
    bpe_sym *s = realloc(w->sym, n * sizeof *s);
    if (s) {
        w->sym = s;
    }
    char *e = realloc(w->enc, 2 * n);
    if (e) {
        w->enc = e;
    }
    if (!s || !e) {
        return inf_fail(INF_ERR_NOMEM, "tokenizer: out of memory for a %zu-byte word", n);
    }
    w->cap = n;
    return INF_OK;
}

static size_t encode_bytes(const char *s, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        o += vocab_utf8_put(vocab_byte_to_cpt((uint8_t)s[i]), out + o);
    }
    return o;
}

static inf_status add_bigram(const inf_vocab *v, bpe_work *w, int32_t l, int32_t r) {
    if (l < 0 || r < 0 || w->sym[l].id < 0 || w->sym[r].id < 0) {
        return INF_OK;
    }
    const vocab_merge *m = vocab_find_merge(v, w->sym[l].id, w->sym[r].id);
    if (!m) {
        return INF_OK;
    }
    return bpe_heap_push(&w->heap, (bpe_bigram){l, r, m->rank, m->result, w->sym[l].n, w->sym[r].n});
}

static inf_status emit_fallback(const inf_vocab *v, bpe_work *w, const char *s, size_t n, vocab_ids *out) {
    // llama.cpp looks each byte of the encoded piece up as a one-byte token.
    size_t ne = encode_bytes(s, n, w->enc);
    inf_status st = INF_OK;
    for (size_t j = 0; st == INF_OK && j < ne; j++) {
        int32_t id = vocab_find(v, w->enc + j, 1);
        if (id >= 0) {
            st = vocab_ids_push(out, id);
        }
    }
    return st;
}

static inf_status bpe_word(const inf_vocab *v, bpe_work *w, const char *s, size_t n, vocab_ids *out) {
    inf_status st = work_reserve(w, n);
    if (st != INF_OK) {
        return st;
    }
    if (v->ignore_merges) {
        size_t ne = encode_bytes(s, n, w->enc);
        int32_t id = vocab_find(v, w->enc, ne);
        if (id >= 0) {
            return vocab_ids_push(out, id);
        }
    }
    bpe_sym *sym = w->sym;
    for (size_t i = 0; i < n; i++) {
        sym[i] = (bpe_sym){(uint32_t)i, 1, (int32_t)i - 1, i + 1 == n ? -1 : (int32_t)i + 1,
                           v->byte_token[(uint8_t)s[i]]};
    }
    w->heap.n = 0;
    w->heap.cap_max = 3 * n + 1; // n - 1 initial pairs, at most two more per merge
    for (size_t i = 1; st == INF_OK && i < n; i++) {
        st = add_bigram(v, w, (int32_t)i - 1, (int32_t)i);
    }
    while (st == INF_OK && w->heap.n > 0) {
        bpe_bigram b = bpe_heap_pop(&w->heap);
        bpe_sym *l = &sym[b.left], *r = &sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n != b.left_n || r->n != b.right_n) {
            continue; // outdated
        }
        l->n += r->n;
        l->id = b.result;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) {
            sym[r->next].prev = b.left;
        }
        st = add_bigram(v, w, l->prev, b.left);
        if (st == INF_OK) {
            st = add_bigram(v, w, b.left, l->next);
        }
    }
    for (int32_t i = 0; st == INF_OK && i != -1; i = sym[i].next) {
        if (sym[i].id >= 0) {
            st = vocab_ids_push(out, sym[i].id);
        } else {
            st = emit_fallback(v, w, s + sym[i].start, sym[i].n, out);
        }
    }
    return st;
}

inf_status vocab_bpe_encode(const inf_vocab *v, const char *text, size_t len, vocab_ids *out) {
    char *clean = NULL;
    size_t clean_len = 0;
    inf_status st = vocab_utf8_sanitize(text, len, &clean, &clean_len);
    if (st != INF_OK) {
        return st;
    }
    const char *t = clean ? clean : text;
    size_t *offs = NULL, n = 0;
    st = vocab_pretok_split(v, t, clean_len, &offs, &n);
    bpe_work w = {0};
    for (size_t i = 0; st == INF_OK && i < n; i++) {
        assert(offs[i + 1] > offs[i]);
        st = bpe_word(v, &w, t + offs[i], offs[i + 1] - offs[i], out);
    }
    free(w.sym);
    free(w.enc);
    free(w.heap.v);
    free(offs);
    free(clean);
    return st;
}
