// test.h: a minimal test harness. Each test program runs its cases, prints one line per failure with
// file:line, and ends with "N passed, N failed"; the exit code is 1 on any failure, 77 when skipped.
#ifndef INFERNO_TEST_H
#define INFERNO_TEST_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_passed, t_failed;

// A xorshift64 generator for test data: the same sequence on every machine. rng_state may be reseeded.
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static inline uint32_t rng_u32(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}

// Uniform in [-1, 1).
static inline float rng_unit(void) { return (float)((double)rng_u32() / 2147483648.0 - 1.0); }

#define CHECK(cond)                                                                                        \
    do {                                                                                                   \
        if (cond) {                                                                                        \
            t_passed++;                                                                                    \
        } else {                                                                                           \
            t_failed++;                                                                                    \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                      \
        }                                                                                                  \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                               \
    do {                                                                                                   \
        if (cond) {                                                                                        \
            t_passed++;                                                                                    \
        } else {                                                                                           \
            t_failed++;                                                                                    \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);                      \
            fprintf(stderr, __VA_ARGS__);                                                                  \
            fputc('\n', stderr);                                                                           \
        }                                                                                                  \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                                 \
    do {                                                                                                   \
        long long _a = (long long)(a), _b = (long long)(b);                                                \
        CHECK_MSG(_a == _b, "%lld != %lld", _a, _b);                                                       \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                              \
    do {                                                                                                   \
        double _a = (double)(a), _b = (double)(b);                                                         \
        CHECK_MSG(fabs(_a - _b) <= (tol), "%.9g vs %.9g (tol %g)", _a, _b, (double)(tol));                 \
    } while (0)

#define CHECK_STR(a, b)                                                                                    \
    do {                                                                                                   \
        const char *_a = (a), *_b = (b);                                                                   \
        CHECK_MSG(_a && _b && strcmp(_a, _b) == 0, "\"%s\" != \"%s\"", _a ? _a : "(null)", _b ? _b : "(null)"); \
    } while (0)

// Path of the shared test material (models, goldens): $INFERNO_SHARED or the build-time default.
static inline const char *test_shared_dir(void) {
    const char *e = getenv("INFERNO_SHARED");
    return e && *e ? e : INFERNO_SHARED_DIR;
}

static inline int test_summary(void) {
    printf("%d passed, %d failed\n", t_passed, t_failed);
    return t_failed ? 1 : 0;
}

#define TEST_SKIP(...)                                                                                     \
    do {                                                                                                   \
        printf("SKIP: ");                                                                                  \
        printf(__VA_ARGS__);                                                                               \
        printf("\n");                                                                                      \
        exit(77);                                                                                          \
    } while (0)

#endif // INFERNO_TEST_H
