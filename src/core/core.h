// core.h: internal helpers shared by every module: error reporting, logging, checked allocation,
// overflow-safe arithmetic, timers. Not part of the public API.
#ifndef INFERNO_CORE_H
#define INFERNO_CORE_H

#include "inferno.h"

#include <assert.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__GNUC__)
#define INF_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define INF_UNUSED __attribute__((unused))
#else
#define INF_PRINTF(a, b)
#define INF_UNUSED
#endif

#define INF_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define INF_MIN(a, b) ((a) < (b) ? (a) : (b))
#define INF_MAX(a, b) ((a) > (b) ? (a) : (b))

// Records a one-line message for inf_last_error() and returns st, so a failing path reads
// `return inf_fail(INF_ERR_FORMAT, "%s: bad magic", path);`.
inf_status inf_fail(inf_status st, const char *fmt, ...) INF_PRINTF(2, 3);
// Prefixes the current error message with "prefix: " (to add the file name at an outer level).
void inf_error_prefix(const char *fmt, ...) INF_PRINTF(1, 2);
void inf_error_clear(void);

void inf_log(inf_log_level level, const char *fmt, ...) INF_PRINTF(2, 3);
bool inf_log_enabled(inf_log_level level);

// Checked allocation: NULL on overflow or failure (never aborts). Callers report INF_ERR_NOMEM.
void *inf_malloc(size_t n);
void *inf_calloc(size_t count, size_t size);
void *inf_malloc_array(size_t count, size_t size);
void *inf_aligned_alloc(size_t alignment, size_t n); // free with inf_aligned_free
void inf_aligned_free(void *p);
char *inf_strdup(const char *s);
char *inf_strndup(const char *s, size_t n);

// Overflow-safe arithmetic: return false when the result does not fit.
static inline bool inf_add_u64(uint64_t a, uint64_t b, uint64_t *r) { return !__builtin_add_overflow(a, b, r); }
static inline bool inf_mul_u64(uint64_t a, uint64_t b, uint64_t *r) { return !__builtin_mul_overflow(a, b, r); }

// Reads a whole file into a NUL-terminated buffer of at most max_bytes (INF_ERR_NOMEM beyond it).
inf_status inf_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len);

#endif // INFERNO_CORE_H
