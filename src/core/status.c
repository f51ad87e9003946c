// status.c: status names and the per-thread last-error message.
#include "core.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char g_last_error[1024];

const char *inf_status_str(inf_status st) {
    switch (st) {
    case INF_OK: return "ok";
    case INF_ERR_INVALID_ARG: return "invalid argument";
    case INF_ERR_IO: return "i/o error";
    case INF_ERR_FORMAT: return "malformed file";
    case INF_ERR_UNSUPPORTED: return "unsupported";
    case INF_ERR_NOMEM: return "out of memory";
    case INF_ERR_CONTEXT_FULL: return "context full";
    case INF_ERR_CONFIG: return "configuration error";
    case INF_ERR_INTERNAL: return "internal error";
    case INF_ERR_BUSY: return "busy";
    case INF_ERR_CLOSED: return "shutting down";
    }
    return "unknown status";
}

const char *inf_last_error(void) { return g_last_error; }

void inf_error_clear(void) { g_last_error[0] = '\0'; }

inf_status inf_fail(inf_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_last_error, sizeof g_last_error, fmt, ap);
    va_end(ap);
    return st;
}

void inf_error_prefix(const char *fmt, ...) {
    char prefix[256];
    char old[sizeof g_last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_last_error, sizeof old);
    snprintf(g_last_error, sizeof g_last_error, "%s: %.*s", prefix, (int)(sizeof g_last_error - sizeof prefix - 4), old);
}
