// toml.c: the TOML 1.0 reader declared in toml.h.
//
// One pass of recursive descent over the text, after a pre-pass that rejects invalid UTF-8, control
// characters and lone carriage returns everywhere (none of them can appear anywhere in a valid document,
// so the parser proper never has to think about them). Key/value lines resolve their target table before
// the value is parsed, so every node knows its depth when it is created and the depth cap bounds both the
// recursion of the parser and that of toml_free. Leaves out arrays of tables and dates/times (rejected
// with a message naming them), and CRLF inside multi-line strings is stored as LF.
#include "core/toml.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name; // prefix of error messages
    const char *p;    // next byte to read
    const char *end;
    int line; // line of p, 1-based
} toml_parser;

// A key as written: up to TOML_MAX_DEPTH parts, each owned.
typedef struct {
    char *part[TOML_MAX_DEPTH];
    int n;
} toml_key;

// Bytes of a string being decoded; len never exceeds TOML_MAX_STRING.
typedef struct {
    char *ptr;
    size_t len, cap;
} toml_buf;

// ---------------------------------------------------------------------------------------------------------
// Errors and small readers
// ---------------------------------------------------------------------------------------------------------

static inf_status toml_error_at(const toml_parser *ps, int line, const char *fmt, ...) INF_PRINTF(3, 4);

static inf_status toml_error_at(const toml_parser *ps, int line, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return inf_fail(INF_ERR_FORMAT, "%s:%d: %s", ps->name, line, msg);
}

#define toml_error(ps, ...) toml_error_at((ps), (ps)->line, __VA_ARGS__)

static inf_status toml_nomem(const toml_parser *ps) {
    return inf_fail(INF_ERR_NOMEM, "%s:%d: out of memory", ps->name, ps->line);
}

// Byte at p + k, or -1 past the end.
static int toml_peek(const toml_parser *ps, size_t k) {
    return (size_t)(ps->end - ps->p) > k ? (unsigned char)ps->p[k] : -1;
}

// The pre-pass guarantees that '\r' is always followed by '\n'.
static bool toml_at_newline(const toml_parser *ps) {
    int c = toml_peek(ps, 0);
    return c == '\n' || c == '\r';
}

static void toml_eat_newline(toml_parser *ps) {
    if (toml_peek(ps, 0) == '\r') ps->p++;
    ps->p++;
    ps->line++;
}

static void toml_skip_ws(toml_parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t')) ps->p++;
}

static void toml_skip_comment(toml_parser *ps) {
    if (toml_peek(ps, 0) != '#') return;
    while (ps->p < ps->end && !toml_at_newline(ps)) ps->p++;
}

// Whitespace, comments and newlines, as allowed between array elements.
static void toml_skip_ws_nl_comments(toml_parser *ps) {
    for (;;) {
        toml_skip_ws(ps);
        toml_skip_comment(ps);
        if (!toml_at_newline(ps)) return;
        toml_eat_newline(ps);
    }
}

// Describes the next byte for a message: "end of file", "end of line", "'x'" or "byte 0xE2".
static const char *toml_describe_next(const toml_parser *ps, char *buf, size_t cap) {
    int c = toml_peek(ps, 0);
    if (c < 0) return "end of file";
    if (c == '\n' || c == '\r') return "end of line";
    if (c > 0x20 && c < 0x7f)
        snprintf(buf, cap, "'%c'", c);
    else if (c == ' ' || c == '\t')
        snprintf(buf, cap, "whitespace");
    else
        snprintf(buf, cap, "byte 0x%02X", (unsigned)c);
    return buf;
}

static bool toml_is_bare(int c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

// Joins the first n parts of a key with '.' for messages (truncated to cap).
static const char *toml_key_text(const toml_key *k, int n, char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && len + 1 < cap; i++) {
        int w = snprintf(buf + len, cap - len, "%s%s", i ? "." : "", k->part[i]);
        if (w < 0) break;
        len += (size_t)w;
    }
    return buf;
}

static void toml_key_clear(toml_key *k) {
    for (int i = 0; i < k->n; i++) free(k->part[i]);
    k->n = 0;
}

// ---------------------------------------------------------------------------------------------------------
// Pre-pass: UTF-8 and control characters
// ---------------------------------------------------------------------------------------------------------

// TOML allows tab and newline (LF, CRLF) but no other control character anywhere: not in strings, not
// in comments. Every byte sequence must be UTF-8 without overlongs or surrogates.
static inf_status toml_check_text(const toml_parser *ps) {
    const unsigned char *s = (const unsigned char *)ps->p, *e = (const unsigned char *)ps->end;
    int line = 1;
    while (s < e) {
        unsigned c = *s;
        if (c == '\n') {
            line++;
            s++;
            continue;
        }
        if (c == '\r') {
            if (s + 1 < e && s[1] == '\n') {
                s++;
                continue;
            }
            return toml_error_at(ps, line, "carriage return not followed by a line feed");
        }
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return toml_error_at(ps, line, "control character U+%04X is not allowed (write it as an escape)",
                                 c);
        if (c < 0x80) {
            s++;
            continue;
        }
        size_t n;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) {
            n = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return toml_error_at(ps, line, "invalid UTF-8 (byte 0x%02X)", c);
        }
        if ((size_t)(e - s) <= n) return toml_error_at(ps, line, "invalid UTF-8 (truncated sequence)");
        for (size_t i = 1; i <= n; i++) {
            if ((s[i] & 0xC0) != 0x80) return toml_error_at(ps, line, "invalid UTF-8 (byte 0x%02X)", s[i]);
            cp = (cp << 6) | (s[i] & 0x3F);
        }
        if (cp < min) return toml_error_at(ps, line, "invalid UTF-8 (overlong encoding)");
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return toml_error_at(ps, line, "invalid UTF-8 (U+%04X is not a Unicode scalar value)",
                                 (unsigned)cp);
        s += n + 1;
    }
    return INF_OK;
}

// ---------------------------------------------------------------------------------------------------------
// Tree building
// ---------------------------------------------------------------------------------------------------------

void toml_free(toml_value *v) {
    if (!v) return;
    if (v->type == TOML_STRING) {
        free(v->u.str.ptr);
    } else if (v->type == TOML_ARRAY) {
        for (int i = 0; i < v->u.arr.n; i++) toml_free(v->u.arr.items[i]);
        free(v->u.arr.items);
    } else if (v->type == TOML_TABLE) {
        for (int i = 0; i < v->u.tab.n; i++) {
            free(v->u.tab.entries[i].key);
            toml_free(v->u.tab.entries[i].value);
        }
        free(v->u.tab.entries);
    }
    free(v);
}

// A new node one level below parent. Its type is TOML_BOOL (owning nothing) until the caller fills it,
// so a tree abandoned half-built frees cleanly.
static inf_status toml_new_child(toml_parser *ps, int parent_depth, toml_value **out) {
    *out = NULL;
    if (parent_depth + 1 > TOML_MAX_DEPTH)
        return toml_error(ps, "nesting deeper than %d levels of tables and arrays", TOML_MAX_DEPTH);
    toml_value *v = inf_calloc(1, sizeof *v);
    if (!v) return toml_nomem(ps);
    v->type = TOML_BOOL;
    v->line = ps->line;
    v->depth = parent_depth + 1;
    *out = v;
    return INF_OK;
}

static toml_value *toml_find(const toml_value *table, const char *key) {
    for (int i = 0; i < table->u.tab.n; i++)
        if (!strcmp(table->u.tab.entries[i].key, key)) return table->u.tab.entries[i].value;
    return NULL;
}

// Appends key (copied) to table with a fresh node; the caller has checked that key is not there yet.
static inf_status toml_table_add(toml_parser *ps, toml_value *table, const char *key, toml_value **out) {
    *out = NULL;
    if (table->u.tab.n >= TOML_MAX_KEYS) return toml_error(ps, "table has more than %d keys", TOML_MAX_KEYS);
    if (table->u.tab.n == table->u.tab.cap) {
        int ncap = table->u.tab.cap ? table->u.tab.cap * 2 : 8;
        toml_entry *ne = realloc(table->u.tab.entries, (size_t)ncap * sizeof *ne);
        if (!ne) return toml_nomem(ps);
        table->u.tab.entries = ne;
        table->u.tab.cap = ncap;
    }
    toml_value *v;
    inf_status st = toml_new_child(ps, table->depth, &v);
    if (st != INF_OK) return st;
    char *k = inf_strdup(key);
    if (!k) {
        free(v);
        return toml_nomem(ps);
    }
    table->u.tab.entries[table->u.tab.n++] = (toml_entry){k, v};
    *out = v;
    return INF_OK;
}

static void toml_make_table(toml_value *v, toml_table_kind kind) {
    v->type = TOML_TABLE;
    v->u.tab.entries = NULL;
    v->u.tab.n = v->u.tab.cap = 0;
    v->u.tab.kind = kind;
}

// ---------------------------------------------------------------------------------------------------------
// Strings
// ---------------------------------------------------------------------------------------------------------

static inf_status toml_buf_push(toml_parser *ps, toml_buf *b, const char *s, size_t n) {
    if (n > TOML_MAX_STRING - b->len) return toml_error(ps, "string longer than %u bytes", TOML_MAX_STRING);
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 32;
        while (ncap < b->len + n + 1) ncap *= 2;
        char *np = realloc(b->ptr, ncap);
        if (!np) return toml_nomem(ps);
        b->ptr = np;
        b->cap = ncap;
    }
    memcpy(b->ptr + b->len, s, n);
    b->len += n;
    b->ptr[b->len] = '\0';
    return INF_OK;
}

static int toml_hex_digit(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Decodes \uXXXX or \UXXXXXXXX (p at the 'u' or 'U') into UTF-8.
static inf_status toml_unicode_escape(toml_parser *ps, toml_buf *b) {
    int n = *ps->p == 'u' ? 4 : 8;
    uint32_t cp = 0;
    for (int i = 1; i <= n; i++) {
        int d = toml_hex_digit(toml_peek(ps, (size_t)i));
        if (d < 0) return toml_error(ps, "\\%c escape needs %d hex digits", *ps->p, n);
        cp = cp << 4 | (uint32_t)d;
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return toml_error(ps, "escape \\%c%0*X is not a Unicode scalar value", *ps->p, n, (unsigned)cp);
    ps->p += n + 1;
    char u[4];
    size_t len;
    if (cp < 0x80) {
        u[0] = (char)cp, len = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3F)), len = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | cp >> 12), u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F)), len = 3;
    } else {
        u[0] = (char)(0xF0 | cp >> 18), u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), u[3] = (char)(0x80 | (cp & 0x3F)), len = 4;
    }
    return toml_buf_push(ps, b, u, len);
}

// One escape sequence of a basic string; p is just past the backslash.
static inf_status toml_escape(toml_parser *ps, toml_buf *b, bool multi) {
    int c = toml_peek(ps, 0);
    const char *rep = NULL;
    switch (c) {
    case 'b': rep = "\b"; break;
    case 't': rep = "\t"; break;
    case 'n': rep = "\n"; break;
    case 'f': rep = "\f"; break;
    case 'r': rep = "\r"; break;
    case '"': rep = "\""; break;
    case '\\': rep = "\\"; break;
    case 'u':
    case 'U': return toml_unicode_escape(ps, b);
    default: break;
    }
    if (rep) {
        ps->p++;
        return toml_buf_push(ps, b, rep, 1);
    }
    if (multi && (c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
        // Line-ending backslash: drops the newline and all whitespace up to the next visible character.
        toml_skip_ws(ps);
        if (!toml_at_newline(ps)) return toml_error(ps, "only whitespace may follow a line-ending backslash");
        while (ps->p < ps->end && (toml_at_newline(ps) || *ps->p == ' ' || *ps->p == '\t')) {
            if (toml_at_newline(ps))
                toml_eat_newline(ps);
            else
                ps->p++;
        }
        return INF_OK;
    }
    if (c < 0) return toml_error(ps, "unterminated string");
    if (c > 0x20 && c < 0x7f) return toml_error(ps, "invalid escape '\\%c' in string", c);
    return toml_error(ps, "invalid escape in string (backslash followed by byte 0x%02X)", (unsigned)c);
}

// Parses a basic ("...") or literal ('...') string starting at its opening quote; multi-line forms
// ("""...""", '''...''') only when allow_multi (values, not keys). *out is owned by the caller.
static inf_status toml_parse_string(toml_parser *ps, bool allow_multi, char **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    int q = toml_peek(ps, 0);
    bool multi = allow_multi && toml_peek(ps, 1) == q && toml_peek(ps, 2) == q;
    int start_line = ps->line;
    ps->p += multi ? 3 : 1;
    if (multi && toml_at_newline(ps)) toml_eat_newline(ps); // a newline right after the opening is trimmed
    toml_buf b = {0};
    inf_status st = toml_buf_push(ps, &b, "", 0); // so that an empty string has a buffer
    while (st == INF_OK) {
        int c = toml_peek(ps, 0);
        if (c < 0) {
            st = toml_error_at(ps, start_line, "unterminated string");
        } else if (c == q) {
            if (!multi) {
                ps->p++;
                break;
            }
            // Up to two quotes may sit right before the closing three.
            size_t k = 0;
            while (toml_peek(ps, k) == q) k++;
            if (k > 5) {
                st = toml_error(ps, "too many quotes at the end of a multi-line string");
            } else if (k >= 3) {
                st = toml_buf_push(ps, &b, ps->p, k - 3);
                ps->p += k;
                break;
            } else {
                st = toml_buf_push(ps, &b, ps->p, k);
                ps->p += k;
            }
        } else if (c == '\n' || c == '\r') {
            if (!multi) {
                st = toml_error(ps, "unterminated string (newline before the closing quote)");
            } else {
                toml_eat_newline(ps);
                st = toml_buf_push(ps, &b, "\n", 1);
            }
        } else if (c == '\\' && q == '"') {
            ps->p++;
            st = toml_escape(ps, &b, multi);
        } else {
            // Copy a run of ordinary bytes at once (UTF-8 was checked by the pre-pass). The first byte is
            // ordinary by the tests above (a backslash is ordinary in a literal string).
            const char *s = ps->p++;
            while (ps->p < ps->end && *ps->p != q && *ps->p != '\\' && *ps->p != '\n' && *ps->p != '\r')
                ps->p++;
            st = toml_buf_push(ps, &b, s, (size_t)(ps->p - s));
        }
    }
    if (st != INF_OK) {
        free(b.ptr);
        return st;
    }
    *out = b.ptr;
    *out_len = b.len;
    return INF_OK;
}

// ---------------------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------------------

// Parses a (possibly dotted) key and the whitespace after it. On failure k is cleared.
static inf_status toml_parse_key(toml_parser *ps, toml_key *k) {
    k->n = 0;
    for (;;) {
        if (k->n == TOML_MAX_DEPTH) {
            toml_key_clear(k);
            return toml_error(ps, "key has more than %d dotted parts", TOML_MAX_DEPTH);
        }
        int c = toml_peek(ps, 0);
        char *s = NULL;
        if (c == '"' || c == '\'') {
            size_t len;
            inf_status st = toml_parse_string(ps, false, &s, &len);
            if (st != INF_OK) {
                toml_key_clear(k);
                return st;
            }
            if (memchr(s, '\0', len)) {
                free(s);
                toml_key_clear(k);
                return toml_error(ps, "key contains a NUL character");
            }
        } else if (toml_is_bare(c)) {
            const char *start = ps->p;
            while (toml_is_bare(toml_peek(ps, 0))) ps->p++;
            s = inf_strndup(start, (size_t)(ps->p - start));
            if (!s) {
                toml_key_clear(k);
                return toml_nomem(ps);
            }
        } else {
            char d[32];
            const char *what = toml_describe_next(ps, d, sizeof d);
            toml_key_clear(k);
            return toml_error(ps, "expected a key, found %s", what);
        }
        k->part[k->n++] = s;
        toml_skip_ws(ps);
        if (toml_peek(ps, 0) != '.') return INF_OK;
        ps->p++;
        toml_skip_ws(ps);
    }
}

// ---------------------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------------------

static inf_status toml_parse_value(toml_parser *ps, toml_value *v);
static inf_status toml_parse_keyval(toml_parser *ps, toml_value *table, char *keybuf, size_t keycap);

// s[0..n) is digits of base with single '_' between digits (TOML: each underscore between two digits).
static bool toml_digits_ok(const char *s, size_t n, int base) {
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '_') {
            if (i == 0 || i + 1 == n || s[i + 1] == '_') return false;
            continue;
        }
        int d = toml_hex_digit((unsigned char)s[i]);
        if (d < 0 || d >= base) return false;
    }
    return true;
}

// Accumulates the digits (underscores skipped) into *out; false when the value exceeds limit.
static bool toml_digits_value(const char *s, size_t n, int base, uint64_t limit, uint64_t *out) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '_') continue;
        uint64_t d = (uint64_t)toml_hex_digit((unsigned char)s[i]);
        if (v > (limit - d) / (uint64_t)base) return false;
        v = v * (uint64_t)base + d;
    }
    *out = v;
    return true;
}

static size_t toml_span(const char *s, size_t n, const char *set) {
    size_t i = 0;
    while (i < n && s[i] != '\0' && strchr(set, s[i]) != NULL) i++;
    return i;
}

// Converts one number token. Returns NULL on success, or why the token is not a TOML number.
static const char *toml_number(const char *s, size_t n, toml_value *v) {
    static const char *const digits10 = "0123456789_";
    size_t i = 0;
    bool neg = false, has_sign = false;
    if (n > 0 && (s[0] == '+' || s[0] == '-')) {
        neg = s[0] == '-';
        has_sign = true;
        i = 1;
    }
    const char *r = s + i;
    size_t rn = n - i;
    if (rn == 3 && (!memcmp(r, "inf", 3) || !memcmp(r, "nan", 3))) {
        double x = r[0] == 'i' ? INFINITY : NAN;
        v->type = TOML_FLOAT;
        v->u.f = neg ? -x : x;
        return NULL;
    }
    if (rn >= 2 && r[0] == '0' && (r[1] == 'x' || r[1] == 'o' || r[1] == 'b')) {
        int base = r[1] == 'x' ? 16 : r[1] == 'o' ? 8 : 2;
        if (has_sign) return "a sign is not allowed on a hexadecimal, octal or binary integer";
        if (!toml_digits_ok(r + 2, rn - 2, base)) return "bad digits or misplaced '_'";
        uint64_t u;
        if (!toml_digits_value(r + 2, rn - 2, base, (uint64_t)INT64_MAX, &u))
            return "does not fit in 64 bits";
        v->type = TOML_INT;
        v->u.i = (int64_t)u;
        return NULL;
    }
    size_t ni = toml_span(r, rn, digits10);
    if (!toml_digits_ok(r, ni, 10)) return ni ? "misplaced '_'" : "not a number";
    if (ni > 1 && r[0] == '0') return "leading zeros are not allowed";
    size_t j = ni;
    bool is_float = false;
    if (j < rn && r[j] == '.') {
        is_float = true;
        size_t nf = toml_span(r + j + 1, rn - j - 1, digits10);
        if (!toml_digits_ok(r + j + 1, nf, 10)) return "a '.' must have digits on both sides";
        j += 1 + nf;
    }
    if (j < rn && (r[j] == 'e' || r[j] == 'E')) {
        is_float = true;
        j++;
        if (j < rn && (r[j] == '+' || r[j] == '-')) j++;
        size_t ne = toml_span(r + j, rn - j, digits10);
        if (!toml_digits_ok(r + j, ne, 10)) return "an exponent needs digits";
        j += ne;
    }
    if (j != rn) return "unexpected character";
    if (is_float) {
        char buf[128];
        size_t len = 0;
        for (size_t k = 0; k < n; k++)
            if (s[k] != '_') {
                if (len + 1 >= sizeof buf) return "too long";
                buf[len++] = s[k];
            }
        buf[len] = '\0';
        errno = 0;
        double x = strtod(buf, NULL);
        if (errno == ERANGE && isinf(x)) return "out of the range of a 64-bit float";
        v->type = TOML_FLOAT;
        v->u.f = x;
        return NULL;
    }
    uint64_t u;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    if (!toml_digits_value(r, ni, 10, limit, &u)) return "does not fit in 64 bits";
    v->type = TOML_INT;
    v->u.i = neg ? (u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u) : (int64_t)u;
    return NULL;
}

// True when the token starts like a date (1979-05-27) or a time (07:32), which TOML has and we do not.
static bool toml_looks_like_datetime(const char *s, size_t n) {
    size_t d = 0;
    while (d < n && s[d] >= '0' && s[d] <= '9') d++;
    return (d == 4 && n > 4 && s[4] == '-') || (d == 2 && n > 2 && s[2] == ':');
}

// A bare token: true, false, a number, or something to reject with a clear message.
static inf_status toml_parse_scalar(toml_parser *ps, toml_value *v) {
    const char *s = ps->p;
    while (ps->p < ps->end && (toml_is_bare(*ps->p) || *ps->p == '+' || *ps->p == '.' || *ps->p == ':'))
        ps->p++;
    size_t n = (size_t)(ps->p - s);
    if (n == 0) {
        char d[32];
        return toml_error(ps, "expected a value, found %s", toml_describe_next(ps, d, sizeof d));
    }
    if ((n == 4 && !memcmp(s, "true", 4)) || (n == 5 && !memcmp(s, "false", 5))) {
        v->type = TOML_BOOL;
        v->u.b = n == 4;
        return INF_OK;
    }
    int shown = n > 40 ? 40 : (int)n;
    if (toml_looks_like_datetime(s, n))
        return toml_error(ps, "dates and times are not supported ('%.*s')", shown, s);
    if (n > 100) return toml_error(ps, "invalid value '%.*s...'", shown, s);
    const char *why = toml_number(s, n, v);
    if (why) {
        bool numeric = (s[0] >= '0' && s[0] <= '9') || s[0] == '+' || s[0] == '-' || s[0] == '.';
        if (numeric) return toml_error(ps, "invalid number '%.*s': %s", shown, s, why);
        return toml_error(ps, "invalid value '%.*s' (strings need quotes)", shown, s);
    }
    return INF_OK;
}

static inf_status toml_parse_array(toml_parser *ps, toml_value *v) {
    int start_line = ps->line;
    v->type = TOML_ARRAY;
    v->u.arr.items = NULL;
    v->u.arr.n = v->u.arr.cap = 0;
    ps->p++; // '['
    for (;;) {
        toml_skip_ws_nl_comments(ps);
        int c = toml_peek(ps, 0);
        if (c < 0) return toml_error_at(ps, start_line, "unterminated array");
        if (c == ']') {
            ps->p++;
            return INF_OK;
        }
        if (v->u.arr.n >= TOML_MAX_ARRAY)
            return toml_error(ps, "array has more than %d elements", TOML_MAX_ARRAY);
        if (v->u.arr.n == v->u.arr.cap) {
            int ncap = v->u.arr.cap ? v->u.arr.cap * 2 : 8;
            toml_value **ni = realloc(v->u.arr.items, (size_t)ncap * sizeof *ni);
            if (!ni) return toml_nomem(ps);
            v->u.arr.items = ni;
            v->u.arr.cap = ncap;
        }
        toml_value *item;
        inf_status st = toml_new_child(ps, v->depth, &item);
        if (st != INF_OK) return st;
        v->u.arr.items[v->u.arr.n++] = item;
        st = toml_parse_value(ps, item);
        if (st != INF_OK) return st;
        toml_skip_ws_nl_comments(ps);
        c = toml_peek(ps, 0);
        if (c == ',') {
            ps->p++;
            continue;
        }
        if (c == ']') {
            ps->p++;
            return INF_OK;
        }
        if (c < 0) return toml_error_at(ps, start_line, "unterminated array");
        char d[32];
        return toml_error(ps, "expected ',' or ']' after an array element, found %s",
                          toml_describe_next(ps, d, sizeof d));
    }
}

// { key = value, ... } on one line, no trailing comma (TOML 1.0).
static inf_status toml_parse_inline_table(toml_parser *ps, toml_value *v) {
    toml_make_table(v, TOML_TABLE_INLINE);
    ps->p++; // '{'
    toml_skip_ws(ps);
    if (toml_peek(ps, 0) == '}') {
        ps->p++;
        return INF_OK;
    }
    char key[256];
    for (;;) {
        toml_skip_ws(ps);
        if (toml_at_newline(ps)) return toml_error(ps, "an inline table must be on one line");
        inf_status st = toml_parse_keyval(ps, v, key, sizeof key);
        if (st != INF_OK) return st;
        toml_skip_ws(ps);
        int c = toml_peek(ps, 0);
        if (c == ',') {
            ps->p++;
            toml_skip_ws(ps);
            if (toml_peek(ps, 0) == '}') return toml_error(ps, "trailing comma in an inline table");
            continue;
        }
        if (c == '}') {
            ps->p++;
            return INF_OK;
        }
        if (c < 0 || c == '\n' || c == '\r')
            return toml_error(ps, "unterminated inline table (must be on one line)");
        char d[32];
        return toml_error(ps, "expected ',' or '}' after the value of '%s', found %s", key,
                          toml_describe_next(ps, d, sizeof d));
    }
}

static inf_status toml_parse_value(toml_parser *ps, toml_value *v) {
    v->line = ps->line;
    int c = toml_peek(ps, 0);
    if (c == '"' || c == '\'') {
        char *s;
        size_t len;
        inf_status st = toml_parse_string(ps, true, &s, &len);
        if (st != INF_OK) return st;
        v->type = TOML_STRING;
        v->u.str.ptr = s;
        v->u.str.len = len;
        return INF_OK;
    }
    if (c == '[') return toml_parse_array(ps, v);
    if (c == '{') return toml_parse_inline_table(ps, v);
    return toml_parse_scalar(ps, v);
}

// ---------------------------------------------------------------------------------------------------------
// Key/value lines and table headers
// ---------------------------------------------------------------------------------------------------------

// key = value, added to table (the current [table] or an inline table). The dotted parts before the last
// walk into (or create) sub-tables, which the key thereby defines. keybuf gets the key's text for the
// caller's messages.
static inf_status toml_parse_keyval(toml_parser *ps, toml_value *table, char *keybuf, size_t keycap) {
    toml_key k;
    inf_status st = toml_parse_key(ps, &k);
    if (st != INF_OK) return st;
    toml_key_text(&k, k.n, keybuf, keycap);
    char prefix[256];
    if (toml_peek(ps, 0) != '=') {
        st = toml_error(ps, "expected '=' after key '%s'", keybuf);
        goto done;
    }
    ps->p++;
    toml_skip_ws(ps);
    toml_value *t = table;
    for (int i = 0; i + 1 < k.n; i++) {
        toml_value *child = toml_find(t, k.part[i]);
        toml_key_text(&k, i + 1, prefix, sizeof prefix);
        if (!child) {
            st = toml_table_add(ps, t, k.part[i], &child);
            if (st != INF_OK) goto done;
            toml_make_table(child, TOML_TABLE_DOTTED);
        } else if (child->type != TOML_TABLE) {
            st = toml_error(ps, "'%s' already holds a%s %s, not a table", prefix,
                            child->type == TOML_INT || child->type == TOML_ARRAY ? "n" : "",
                            toml_type_name(child->type));
            goto done;
        } else if (child->u.tab.kind == TOML_TABLE_INLINE) {
            st = toml_error(ps, "cannot add keys to inline table '%s'", prefix);
            goto done;
        } else if (child->u.tab.kind == TOML_TABLE_HEADER) {
            st =
                toml_error(ps, "cannot add to table '%s' with dotted keys: it has its own [header] (line %d)",
                           prefix, child->line);
            goto done;
        } else if (child->u.tab.kind == TOML_TABLE_IMPLICIT) {
            child->u.tab.kind = TOML_TABLE_DOTTED;
        }
        t = child;
    }
    toml_value *prev = toml_find(t, k.part[k.n - 1]);
    if (prev) {
        st = toml_error(ps, "duplicate key '%s' (first defined on line %d)", keybuf, prev->line);
        goto done;
    }
    toml_value *v;
    st = toml_table_add(ps, t, k.part[k.n - 1], &v);
    if (st != INF_OK) goto done;
    st = toml_parse_value(ps, v);
done:
    toml_key_clear(&k);
    return st;
}

// [a.b.c]: walks from the root, creating missing tables, and makes the last one current.
// name gets the table's name for the caller's messages.
static inf_status toml_parse_header(toml_parser *ps, toml_value *root, toml_value **cur, char *name,
                                    size_t cap) {
    name[0] = '\0';
    ps->p++; // '['
    if (toml_peek(ps, 0) == '[') return toml_error(ps, "arrays of tables ([[...]]) are not supported");
    toml_skip_ws(ps);
    toml_key k;
    inf_status st = toml_parse_key(ps, &k);
    if (st != INF_OK) return st;
    toml_key_text(&k, k.n, name, cap);
    if (toml_peek(ps, 0) != ']') {
        char d[32];
        st = toml_error(ps, "expected ']' after table name '%s', found %s", name,
                        toml_describe_next(ps, d, sizeof d));
        goto done;
    }
    ps->p++;
    toml_value *t = root;
    for (int i = 0; i < k.n; i++) {
        bool last = i + 1 == k.n;
        char prefix[256];
        toml_key_text(&k, i + 1, prefix, sizeof prefix);
        toml_value *child = toml_find(t, k.part[i]);
        if (!child) {
            st = toml_table_add(ps, t, k.part[i], &child);
            if (st != INF_OK) goto done;
            toml_make_table(child, last ? TOML_TABLE_HEADER : TOML_TABLE_IMPLICIT);
        } else if (child->type != TOML_TABLE) {
            st = toml_error(ps, "'%s' already holds a%s %s (line %d), not a table", prefix,
                            child->type == TOML_INT || child->type == TOML_ARRAY ? "n" : "",
                            toml_type_name(child->type), child->line);
            goto done;
        } else if (child->u.tab.kind == TOML_TABLE_INLINE) {
            st = toml_error(ps, "cannot extend inline table '%s' (line %d)", prefix, child->line);
            goto done;
        } else if (last) {
            if (child->u.tab.kind == TOML_TABLE_HEADER) {
                st = toml_error(ps, "duplicate table [%s] (first defined on line %d)", name, child->line);
                goto done;
            }
            if (child->u.tab.kind == TOML_TABLE_DOTTED) {
                st = toml_error(ps, "table [%s] was already defined by dotted keys (line %d)", name,
                                child->line);
                goto done;
            }
            child->u.tab.kind = TOML_TABLE_HEADER;
            child->line = ps->line;
        }
        t = child;
    }
    *cur = t;
done:
    toml_key_clear(&k);
    return st;
}

// After a key/value or a header only a comment may follow on the line.
static inf_status toml_expect_eol(toml_parser *ps, const char *what, const char *name) {
    toml_skip_ws(ps);
    toml_skip_comment(ps);
    if (ps->p >= ps->end || toml_at_newline(ps)) return INF_OK;
    char d[32];
    return toml_error(ps, "expected end of line after %s '%s', found %s", what, name,
                      toml_describe_next(ps, d, sizeof d));
}

inf_status toml_parse(const char *name, const char *text, size_t len, toml_value **out) {
    *out = NULL;
    toml_parser ps = {.name = name, .p = text, .end = text + len, .line = 1};
    if (len > TOML_MAX_BYTES)
        return inf_fail(INF_ERR_FORMAT, "%s: larger than %u bytes", name, TOML_MAX_BYTES);
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) ps.p += 3;
    inf_status st = toml_check_text(&ps);
    if (st != INF_OK) return st;
    toml_value *root = inf_calloc(1, sizeof *root);
    if (!root) return toml_nomem(&ps);
    toml_make_table(root, TOML_TABLE_HEADER);
    root->line = 1;
    toml_value *cur = root;
    char key[256];
    while (st == INF_OK) {
        toml_skip_ws(&ps);
        toml_skip_comment(&ps);
        if (ps.p >= ps.end) break;
        if (toml_at_newline(&ps)) {
            toml_eat_newline(&ps);
            continue;
        }
        if (*ps.p == '[') {
            st = toml_parse_header(&ps, root, &cur, key, sizeof key);
            if (st == INF_OK) st = toml_expect_eol(&ps, "table header", key);
        } else {
            st = toml_parse_keyval(&ps, cur, key, sizeof key);
            if (st == INF_OK) st = toml_expect_eol(&ps, "the value of", key);
        }
    }
    if (st != INF_OK) {
        toml_free(root);
        return st;
    }
    *out = root;
    return INF_OK;
}

// ---------------------------------------------------------------------------------------------------------
// Lookups
// ---------------------------------------------------------------------------------------------------------

const toml_value *toml_table_get(const toml_value *table, const char *key) {
    if (!table || table->type != TOML_TABLE) return NULL;
    return toml_find(table, key);
}

const toml_value *toml_table_get_path(const toml_value *table, const char *path) {
    char part[256];
    while (table) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (n >= sizeof part) return NULL;
        memcpy(part, path, n);
        part[n] = '\0';
        table = toml_table_get(table, part);
        if (!dot) return table;
        path = dot + 1;
    }
    return NULL;
}

const char *toml_type_name(toml_type type) {
    switch (type) {
    case TOML_STRING: return "string";
    case TOML_INT: return "integer";
    case TOML_FLOAT: return "float";
    case TOML_BOOL: return "boolean";
    case TOML_ARRAY: return "array";
    case TOML_TABLE: return "table";
    }
    return "?";
}
