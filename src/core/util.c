// util.c: logging, checked allocation, whole-file reads, time and system information.
#include "core.h"

#include "backend/cpu/cpu_kernels.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>
#include <time.h>

static inf_log_level g_log_level = INF_LOG_INFO;
static inf_log_fn g_log_fn;
static void *g_log_user;

void inf_log_set_level(inf_log_level min_level) { g_log_level = min_level; }

void inf_log_set_callback(inf_log_fn fn, void *user) {
    g_log_fn = fn;
    g_log_user = user;
}

bool inf_log_enabled(inf_log_level level) { return level >= g_log_level && level != INF_LOG_NONE; }

void inf_log(inf_log_level level, const char *fmt, ...) {
    if (!inf_log_enabled(level)) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (g_log_fn) {
        g_log_fn(level, msg, g_log_user);
        return;
    }
    static const char *const prefix[] = {"debug: ", "", "warning: ", "error: ", ""};
    fprintf(stderr, "%s%s\n", prefix[level], msg);
}

void *inf_malloc(size_t n) { return malloc(n ? n : 1); }

void *inf_calloc(size_t count, size_t size) { return calloc(count ? count : 1, size ? size : 1); }

void *inf_malloc_array(size_t count, size_t size) {
    size_t n;
    if (__builtin_mul_overflow(count, size, &n)) return NULL;
    return inf_malloc(n);
}

void *inf_aligned_alloc(size_t alignment, size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, alignment, n ? n : alignment) != 0) return NULL;
    return p;
}

void inf_aligned_free(void *p) { free(p); }

char *inf_strdup(const char *s) { return inf_strndup(s, strlen(s)); }

char *inf_strndup(const char *s, size_t n) {
    char *r = inf_malloc(n + 1);
    if (!r) return NULL;
    memcpy(r, s, n);
    r[n] = '\0';
    return r;
}

inf_status inf_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return inf_fail(INF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = inf_malloc(cap);
    if (!buf) {
        fclose(f);
        return inf_fail(INF_ERR_NOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (len + 1 >= cap) {
            if (cap >= max_bytes + 1) {
                free(buf);
                fclose(f);
                return inf_fail(INF_ERR_NOMEM, "%s: larger than %zu bytes", path, max_bytes);
            }
            size_t ncap = INF_MIN(cap * 2, max_bytes + 1);
            char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                fclose(f);
                return inf_fail(INF_ERR_NOMEM, "%s: out of memory", path);
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - 1 - len, f);
        len += got;
        if (got == 0) break;
    }
    bool err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return inf_fail(INF_ERR_IO, "%s: read error", path);
    }
    if (len > max_bytes) {
        free(buf);
        return inf_fail(INF_ERR_NOMEM, "%s: larger than %zu bytes", path, max_bytes);
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return INF_OK;
}

static char system_info_buf[256];

// One line for logs and benchmark tables: version, the CPU kernel set in use, build options.
static void system_info_init(void) {
    snprintf(system_info_buf, sizeof system_info_buf, "inferno %s | CPU: %s kernels | CUDA: %s | %s",
             INFERNO_VERSION, inf_cpu_kernels_get()->isa,
#ifdef INFERNO_CUDA
             "built",
#else
             "not built",
#endif
#if defined(__OPTIMIZE__)
             "optimized build"
#else
             "debug build"
#endif
    );
}

double inf_time_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

const char *inf_system_info(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, system_info_init);
    return system_info_buf;
}
