// spm.c: SentencePiece-style tokenization of one text fragment, as llama.cpp does it (llm_tokenizer_spm):
// start from UTF-8 characters, repeatedly merge the adjacent pair whose concatenation is the token with the
// highest score (ties: leftmost first), then emit each final piece as its token, or as byte tokens
// (<0xNN>) when the piece is not in the vocabulary.
//
// The caller has already escaped the text (spaces -> U+2581, the leading "▁" added). Leaves out: the
// Unigram (Viterbi) algorithm of real SentencePiece models; llama.cpp uses this greedy bigram scheme for
// "llama" vocabularies too, and matching it is the goal.
#include "tokenizer/heap.h"
#include "tokenizer/tokenizer_int.h"

#include <string.h>

typedef struct {
    int32_t left, right;
    float score;
    uint32_t size; // bytes of the concatenation when the pair was queued (stale-entry check)
} spm_bigram;

// Max-heap order: higher score first, then the leftmost pair.
static bool spm_before(const spm_bigram *a, const spm_bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

TOK_HEAP_DEFINE(spm_heap, spm_bigram, spm_before)

typedef struct {
    uint32_t start, n; // bytes text[start .. start + n); n == 0 once merged into its left neighbour
    int32_t prev, next;
} spm_sym;

static inf_status try_add(const inf_vocab *v, const char *text, const spm_sym *sym, int32_t l, int32_t r,
                          spm_heap *h) {
    if (l < 0 || r < 0) {
        return INF_OK;
    }
    uint32_t size = sym[l].n + sym[r].n;
    int32_t id = vocab_find(v, text + sym[l].start, size);
    if (id < 0) {
        return INF_OK;
    }
    return spm_heap_push(h, (spm_bigram){l, r, v->tokens[id].score, size});
}

inf_status vocab_spm_encode(const inf_vocab *v, const char *text, size_t len, vocab_ids *out) {
    if (len == 0) {
        return INF_OK;
    }
    assert(len <= UINT32_MAX / 2);
    spm_sym *sym = inf_malloc_array(len, sizeof *sym);
    if (!sym) {
        return inf_fail(INF_ERR_NOMEM, "tokenizer: out of memory for %zu bytes of text", len);
    }
    int32_t n = 0;
    for (size_t off = 0; off < len; n++) {
        size_t k = INF_MIN(vocab_utf8_len((unsigned char)text[off]), len - off);
        sym[n] = (spm_sym){(uint32_t)off, (uint32_t)k, n - 1, off + k == len ? -1 : n + 1};
        off += k;
    }

    // Each merge queues at most two pairs, on top of the n - 1 initial ones.
    spm_heap h = {.cap_max = 3 * (size_t)n + 1};
    inf_status st = INF_OK;
    for (int32_t i = 1; st == INF_OK && i < n; i++) {
        st = try_add(v, text, sym, i - 1, i, &h);
    }
    while (st == INF_OK && h.n > 0) {
        spm_bigram b = spm_heap_pop(&h);
        spm_sym *l = &sym[b.left], *r = &sym[b.right];
        // Stale when either side has changed since the pair was queued.
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) {
            continue;
        }
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) {
            sym[r->next].prev = b.left;
        }
        st = try_add(v, text, sym, l->prev, b.left, &h);
        if (st == INF_OK) {
            st = try_add(v, text, sym, b.left, l->next, &h);
        }
    }
    free(h.v);

    for (int32_t i = 0; st == INF_OK && i != -1; i = sym[i].next) {
        const spm_sym *s = &sym[i];
        int32_t id = vocab_find(v, text + s->start, s->n);
        if (id >= 0) {
            st = vocab_ids_push(out, id);
            continue;
        }
        for (uint32_t j = 0; st == INF_OK && j < s->n; j++) {
            unsigned char c = (unsigned char)text[s->start + j];
            int32_t bt = v->byte_token[c] >= 0 ? v->byte_token[c] : v->unk;
            if (bt < 0) {
                st = inf_fail(INF_ERR_UNSUPPORTED,
                              "tokenizer: byte 0x%02X has no token (no <0x%02X> byte token "
                              "and no unknown token)",
                              c, c);
                break;
            }
            st = vocab_ids_push(out, bt);
        }
    }
    free(sym);
    return st;
}
