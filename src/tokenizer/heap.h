// heap.h: a binary heap over a value type, for the tokenizers' merge queues (SentencePiece orders bigrams by
// score, BPE by merge rank). TOK_HEAP_DEFINE(name, type, before) defines the struct `name` and its static
// push/pop functions; before(a, b) is true when a must come out first. The backing array grows up to cap_max
// elements (set by the caller from the input size); growing past it is a broken invariant.
#ifndef INFERNO_TOKENIZER_HEAP_H
#define INFERNO_TOKENIZER_HEAP_H

#include "core/core.h"

#include <assert.h>
#include <stdlib.h>

#define TOK_HEAP_DEFINE(name, type, before)                                                                 \
    typedef struct {                                                                                        \
        type *v;                                                                                            \
        size_t n, cap, cap_max;                                                                             \
    } name;                                                                                                 \
                                                                                                            \
    static inf_status name##_push(name *h, type x) {                                                        \
        if (h->n == h->cap) {                                                                               \
            assert(h->cap < h->cap_max);                                                                    \
            size_t cap = INF_MIN(INF_MAX(h->cap * 2, (size_t)64), h->cap_max);                              \
            type *nv = realloc(h->v, cap * sizeof *nv);                                                     \
            if (!nv) return inf_fail(INF_ERR_NOMEM, "tokenizer: out of memory");                            \
            h->v = nv;                                                                                      \
            h->cap = cap;                                                                                   \
        }                                                                                                   \
        size_t i = h->n++;                                                                                  \
        while (i > 0) {                                                                                     \
            size_t p = (i - 1) / 2;                                                                         \
            if (!before(&x, &h->v[p])) break;                                                               \
            h->v[i] = h->v[p];                                                                              \
            i = p;                                                                                          \
        }                                                                                                   \
        h->v[i] = x;                                                                                        \
        return INF_OK;                                                                                      \
    }                                                                                                       \
                                                                                                            \
    static type name##_pop(name *h) {                                                                       \
        assert(h->n > 0);                                                                                   \
        type top = h->v[0], x = h->v[--h->n];                                                               \
        size_t i = 0;                                                                                       \
        for (;;) {                                                                                          \
            size_t c = 2 * i + 1;                                                                           \
            if (c >= h->n) break;                                                                           \
            if (c + 1 < h->n && before(&h->v[c + 1], &h->v[c])) c++;                                        \
            if (!before(&h->v[c], &x)) break;                                                               \
            h->v[i] = h->v[c];                                                                              \
            i = c;                                                                                          \
        }                                                                                                   \
        if (h->n > 0) h->v[i] = x;                                                                          \
        return top;                                                                                         \
    }

#endif // INFERNO_TOKENIZER_HEAP_H
