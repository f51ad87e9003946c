// stop.c: the stop-string matcher. Generated text arrives piece by piece; the matcher emits what can no
// longer become part of a stop string, holds back the longest tail that is a prefix of some stop string, and
// reports a full match (emitting only the text before it). It never emits a partial UTF-8 character: an
// incomplete sequence at the end of the safe text is held until its last byte arrives.
//
// Deliberately left out: token-level stops (callers check EOG tokens themselves), regular expressions,
// case-insensitive matching, and validation of UTF-8 beyond finding character boundaries (invalid bytes pass
// through as they are). After a match the matcher stays matched: it is one per generation.
//
// Memory: stop strings live inline (at most STOP_MAX_STRINGS of STOP_MAX_LEN bytes); held text is at most
// STOP_MAX_LEN - 1 + 3 bytes; the output buffer grows to the held text plus the largest piece fed, capped
// at STOP_OUT_MAX.
#include "core/core.h"

#include <string.h>

#define STOP_MAX_STRINGS 16
#define STOP_MAX_LEN 256
// A held tail is a proper prefix of a stop string (< STOP_MAX_LEN bytes) widened by at most 3 bytes so as
// not to split a UTF-8 character.
#define STOP_HELD_MAX (STOP_MAX_LEN - 1 + 3)
#define STOP_OUT_INITIAL 4096
#define STOP_OUT_MAX ((size_t)64 << 20)

struct inf_stop_matcher {
    char stops[STOP_MAX_STRINGS][STOP_MAX_LEN];
    size_t stop_len[STOP_MAX_STRINGS]; // each in [1, STOP_MAX_LEN]
    int n_stops;
    char held[STOP_HELD_MAX]; // text fed but not yet emitted; contains no complete stop string
    size_t n_held;
    char *out; // held text followed by the latest piece; what feed/flush emit points into it
    size_t out_cap;
    bool matched;
};

inf_status inf_stop_matcher_init(const char *const *stops, int n_stops, inf_stop_matcher **out) {
    assert(out);
    *out = NULL;
    if (n_stops < 0 || n_stops > STOP_MAX_STRINGS)
        return inf_fail(INF_ERR_INVALID_ARG, "stop strings: %d given, at most %d allowed", n_stops,
                        STOP_MAX_STRINGS);
    if (n_stops > 0 && !stops) return inf_fail(INF_ERR_INVALID_ARG, "stop strings: list is NULL");
    for (int i = 0; i < n_stops; i++) {
        if (!stops[i]) return inf_fail(INF_ERR_INVALID_ARG, "stop string %d is NULL", i);
        size_t len = strnlen(stops[i], STOP_MAX_LEN + 1);
        // An empty stop string would match before any text and end every generation at once.
        if (len == 0) return inf_fail(INF_ERR_INVALID_ARG, "stop string %d is empty", i);
        if (len > STOP_MAX_LEN)
            return inf_fail(INF_ERR_INVALID_ARG, "stop string %d is longer than %d bytes", i, STOP_MAX_LEN);
    }

    inf_stop_matcher *m = inf_calloc(1, sizeof *m);
    if (!m) return inf_fail(INF_ERR_NOMEM, "stop strings: out of memory");
    m->out = inf_malloc(STOP_OUT_INITIAL);
    if (!m->out) {
        free(m);
        return inf_fail(INF_ERR_NOMEM, "stop strings: out of memory");
    }
    m->out_cap = STOP_OUT_INITIAL;
    m->n_stops = n_stops;
    for (int i = 0; i < n_stops; i++) {
        m->stop_len[i] = strlen(stops[i]);
        memcpy(m->stops[i], stops[i], m->stop_len[i]);
    }
    *out = m;
    return INF_OK;
}

void inf_stop_matcher_free(inf_stop_matcher *m) {
    if (!m) return;
    free(m->out);
    free(m);
}

// Grows out to hold need bytes; false beyond STOP_OUT_MAX or when memory runs out (out is then unchanged,
// and still holds at least STOP_HELD_MAX bytes since it starts larger).
static bool stop_reserve(inf_stop_matcher *m, size_t need) {
    if (need <= m->out_cap) return true;
    if (need > STOP_OUT_MAX) return false;
    size_t cap = m->out_cap;
    while (cap < need) cap *= 2;
    if (cap > STOP_OUT_MAX) cap = STOP_OUT_MAX;
    char *p = realloc(m->out, cap);
    if (!p) return false;
    m->out = p;
    m->out_cap = cap;
    return true;
}

// Start of the first occurrence of needle[0..k) in hay[0..n) that ends after byte `after`, or -1.
// Occurrences ending at or before `after` lie wholly in text already checked.
static ptrdiff_t stop_find(const char *hay, size_t n, size_t after, const char *needle, size_t k) {
    if (k > n) return -1;
    size_t pos = after + 1 > k ? after + 1 - k : 0;
    while (pos + k <= n) {
        const char *hit = memchr(hay + pos, (unsigned char)needle[0], n - k + 1 - pos);
        if (!hit) return -1;
        pos = (size_t)(hit - hay);
        if (memcmp(hit, needle, k) == 0) return (ptrdiff_t)pos;
        pos++;
    }
    return -1;
}

// Where to end the emitted text buf[0..e) so that it does not split a UTF-8 character: if the last
// character starting before e needs more bytes than there are before e, the end moves back to its first
// byte. Only the last 3 bytes can hold such a start; continuation bytes with no lead in reach pass through.
static size_t stop_utf8_safe_end(const char *buf, size_t e) {
    size_t lo = e >= 3 ? e - 3 : 0;
    for (size_t j = e; j > lo; j--) {
        unsigned char b = (unsigned char)buf[j - 1];
        if ((b & 0xC0) == 0x80) continue; // continuation byte: keep looking for the lead
        size_t need = (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 1;
        return j - 1 + need > e ? j - 1 : e;
    }
    return e;
}

bool inf_stop_matcher_feed(inf_stop_matcher *m, const char *piece, size_t len, const char **emit,
                           size_t *n_emit) {
    assert(m && emit && n_emit && (piece || len == 0));
    *emit = m->out;
    *n_emit = 0;
    if (m->matched) return true;
    // From here on *emit is set only after out may have moved.

    if (len > STOP_OUT_MAX || !stop_reserve(m, m->n_held + len)) {
        // Cannot buffer the piece: show what is held and end the generation rather than drop text silently
        // in the middle of it.
        inf_log(INF_LOG_ERROR, "stop strings: cannot buffer a %zu-byte piece (limit %zu); stopping", len,
                STOP_OUT_MAX);
        memcpy(m->out, m->held, m->n_held);
        *emit = m->out;
        *n_emit = m->n_held;
        m->n_held = 0;
        m->matched = true;
        return true;
    }
    char *buf = m->out;
    *emit = buf;
    memcpy(buf, m->held, m->n_held);
    if (len) memcpy(buf + m->n_held, piece, len);
    size_t n = m->n_held + len;

    // Earliest complete stop string; the held text contains none, so only matches ending in the piece count.
    ptrdiff_t first = -1;
    for (int i = 0; i < m->n_stops; i++) {
        ptrdiff_t at = stop_find(buf, n, m->n_held, m->stops[i], m->stop_len[i]);
        if (at >= 0 && (first < 0 || at < first)) first = at;
    }
    if (first >= 0) {
        *n_emit = (size_t)first;
        m->n_held = 0;
        m->matched = true;
        return true;
    }

    // Longest tail of the text that is a proper prefix of some stop string.
    size_t hold = 0;
    for (int i = 0; i < m->n_stops; i++) {
        size_t k = INF_MIN(m->stop_len[i] - 1, n);
        for (; k > hold; k--) {
            if (memcmp(buf + n - k, m->stops[i], k) == 0) {
                hold = k;
                break;
            }
        }
    }
    size_t e = stop_utf8_safe_end(buf, n - hold);
    assert(n - e <= STOP_HELD_MAX);
    m->n_held = n - e;
    memcpy(m->held, buf + e, m->n_held);
    *n_emit = e;
    return false;
}

void inf_stop_matcher_flush(inf_stop_matcher *m, const char **emit, size_t *n_emit) {
    assert(m && emit && n_emit);
    // The end of generation: a held prefix of a stop string (or an unfinished UTF-8 character) is now just
    // text. After a match nothing is held.
    memcpy(m->out, m->held, m->n_held);
    *emit = m->out;
    *n_emit = m->n_held;
    m->n_held = 0;
}
