// util.c: the server's small shared pieces: OpenAI-shaped errors, the capped byte buffer, response ids.
// Left out: anything that knows about HTTP or the engine.
#include "server/server_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void srv_error_set(srv_error *err, int status, const char *type, const char *code, const char *param,
                   const char *fmt, ...) {
    err->status = status;
    err->type = type;
    err->code = code;
    err->retry_after = 0;
    snprintf(err->param, sizeof err->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

void srv_error_param(srv_error *err, const char *param, const char *fmt, ...) {
    srv_error_set(err, 400, "invalid_request_error", NULL, param, "%s", "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

void srv_buf_init(srv_buf *b, size_t max) { *b = (srv_buf){.max = max}; }

void srv_buf_free(srv_buf *b) {
    free(b->data);
    *b = (srv_buf){.max = b->max};
}

// Grows to hold n more bytes plus a NUL; doubling, never past max + 1.
static bool srv_buf_reserve(srv_buf *b, size_t n) {
    if (b->failed) return false;
    if (n > b->max || b->len > b->max - n) {
        b->failed = true;
        return false;
    }
    size_t need = b->len + n + 1;
    if (need <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > b->max + 1) cap = b->max + 1;
    char *p = realloc(b->data, cap);
    if (!p) {
        b->failed = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

bool srv_buf_put(srv_buf *b, const void *p, size_t n) {
    if (!srv_buf_reserve(b, n)) return false;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return true;
}

bool srv_buf_puts(srv_buf *b, const char *s) { return srv_buf_put(b, s, strlen(s)); }

bool srv_buf_printf(srv_buf *b, const char *fmt, ...) {
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return false;
    if ((size_t)n < sizeof small) return srv_buf_put(b, small, (size_t)n);
    if (!srv_buf_reserve(b, (size_t)n)) return false;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return true;
}

// splitmix64: ids are unique per process (a counter) and differ between runs (the salt).
static uint64_t srv_mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void srv_make_id(srv_server *srv, const char *prefix, char *out, size_t cap) {
    uint64_t n = atomic_fetch_add(&srv->id_seq, 1);
    snprintf(out, cap, "%s-%016llx", prefix, (unsigned long long)srv_mix64(srv->id_salt ^ n));
}
