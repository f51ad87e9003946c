// test_sampler.c: the sampler chain and the stop-string matcher against hand-computed values and brute-force
// references: parameter validation, greedy choice (ties, bans), exact penalised logits, the sets top-k,
// top-p and min-p keep, the one-pass paths bit for bit against the reference chain on random logits,
// reproducibility by seed, draw frequencies at two temperatures, and stop matching across pieces and UTF-8
// characters.
//
// Not covered here: sampling on real model logits (the CLI golden tests do greedy runs end to end).
#include "sampler/sampler_int.h"
#include "test.h"

#include <stdint.h>

// ---------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------
static uint64_t t_rng_state = 0x12345678abcdefull;

static uint32_t t_rand(void) { // xorshift64*: test data only, independent of the sampler's generator
    t_rng_state ^= t_rng_state >> 12;
    t_rng_state ^= t_rng_state << 25;
    t_rng_state ^= t_rng_state >> 27;
    return (uint32_t)((t_rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

static float t_rand_logit(void) { return (float)(t_rand() % 2000) / 100.0f - 10.0f; }

// Parameters with every filter off; tests switch on what they check.
static inf_sampler_params t_plain_params(float temperature) {
    inf_sampler_params p = inf_sampler_default_params();
    p.temperature = temperature;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repeat_penalty = 1.0f;
    p.seed = 7;
    return p;
}

static inf_sampler *t_sampler(const inf_sampler_params *p, int n_vocab) {
    inf_sampler *smp = NULL;
    inf_status st = inf_sampler_init(p, n_vocab, &smp);
    CHECK_MSG(st == INF_OK, "init failed: %s", inf_last_error());
    if (!smp) exit(1);
    return smp;
}

// Bit mask of the ids that survive the chain.
static unsigned t_kept_mask(const inf_sampler_params *p, const float *logits, int n_vocab) {
    inf_sampler *smp = t_sampler(p, n_vocab);
    const sampler_candidate *c;
    int n = sampler_filter_candidates(smp, logits, NULL, &c);
    unsigned mask = 0;
    for (int i = 0; i < n; i++) mask |= 1u << c[i].id;
    inf_sampler_free(smp);
    return mask;
}

// ---------------------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------------------
static void t_expect_invalid(const inf_sampler_params *p, int n_vocab, const char *field) {
    inf_sampler *smp = (inf_sampler *)&smp; // must be reset to NULL on failure
    inf_status st = inf_sampler_init(p, n_vocab, &smp);
    CHECK_EQ_INT(st, INF_ERR_INVALID_ARG);
    CHECK(smp == NULL);
    CHECK_MSG(strstr(inf_last_error(), field) != NULL, "message \"%s\" does not name %s", inf_last_error(),
              field);
}

static void test_params(void) {
    inf_sampler_params d = inf_sampler_default_params();
    CHECK_NEAR(d.temperature, 0.8, 1e-6);
    CHECK_EQ_INT(d.top_k, 40);
    CHECK_NEAR(d.top_p, 0.95, 1e-6);
    CHECK_NEAR(d.min_p, 0.05, 1e-6);
    CHECK_NEAR(d.repeat_penalty, 1.0, 0);

    inf_sampler_params p = d;
    p.temperature = NAN;
    t_expect_invalid(&p, 10, "temperature");
    p = d, p.temperature = INFINITY;
    t_expect_invalid(&p, 10, "temperature");
    p = d, p.top_p = 1.5f;
    t_expect_invalid(&p, 10, "top_p");
    p = d, p.top_p = -0.1f;
    t_expect_invalid(&p, 10, "top_p");
    p = d, p.top_p = NAN;
    t_expect_invalid(&p, 10, "top_p");
    p = d, p.min_p = 1.01f;
    t_expect_invalid(&p, 10, "min_p");
    p = d, p.min_p = -0.5f;
    t_expect_invalid(&p, 10, "min_p");
    p = d, p.repeat_penalty = 0.0f;
    t_expect_invalid(&p, 10, "repeat_penalty");
    p = d, p.repeat_penalty = -1.1f;
    t_expect_invalid(&p, 10, "repeat_penalty");
    p = d, p.repeat_penalty = NAN;
    t_expect_invalid(&p, 10, "repeat_penalty");
    p = d, p.frequency_penalty = NAN;
    t_expect_invalid(&p, 10, "frequency_penalty");
    p = d, p.presence_penalty = INFINITY;
    t_expect_invalid(&p, 10, "presence_penalty");
    p = d, p.repeat_last_n = -2;
    t_expect_invalid(&p, 10, "repeat_last_n");
    p = d, p.repeat_last_n = SAMPLER_MAX_WINDOW + 1;
    t_expect_invalid(&p, 10, "repeat_last_n");
    t_expect_invalid(&d, 0, "n_vocab");
    t_expect_invalid(&d, SAMPLER_MAX_VOCAB + 1, "n_vocab");
    inf_sampler *smp = NULL;
    CHECK_EQ_INT(inf_sampler_init(NULL, 10, &smp), INF_ERR_INVALID_ARG);

    // Accepted: negative temperature (greedy), the bounds of top_p/min_p, negative frequency and presence
    // penalties (llama.cpp and the OpenAI API allow them), a whole-history window.
    p = d, p.temperature = -1.0f, p.top_p = 0.0f, p.min_p = 1.0f, p.frequency_penalty = -0.5f,
    p.presence_penalty = -2.0f, p.repeat_last_n = -1;
    CHECK_EQ_INT(inf_sampler_init(&p, 10, &smp), INF_OK);
    inf_sampler_free(smp);
    inf_sampler_free(NULL);
}

// ---------------------------------------------------------------------------------------------------------
// Greedy
// ---------------------------------------------------------------------------------------------------------
static void test_greedy(void) {
    inf_sampler_params p = t_plain_params(0.0f);
    inf_sampler *smp = t_sampler(&p, 6);
    const float logits[6] = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f, NAN};
    CHECK_EQ_INT(inf_sampler_sample(smp, logits, NULL), 1); // tie 1 vs 3: lower id
    uint8_t banned[6] = {0, 1, 0, 0, 0, 0};
    CHECK_EQ_INT(inf_sampler_sample(smp, logits, banned), 3);
    banned[3] = 1;
    CHECK_EQ_INT(inf_sampler_sample(smp, logits, banned), 2);
    memset(banned, 1, sizeof banned);
    banned[4] = 0;
    CHECK_EQ_INT(inf_sampler_sample(smp, logits, banned), 4); // the only one left, however bad
    banned[4] = 1;
    CHECK_EQ_INT(inf_sampler_sample(smp, logits, banned), -1); // everything banned (5 is NaN anyway)
    const float low[3] = {-INFINITY, -INFINITY, -INFINITY};
    inf_sampler_free(smp);
    smp = t_sampler(&p, 3);
    CHECK_EQ_INT(inf_sampler_sample(smp, low, NULL), 0);
    inf_sampler_free(smp);

    // Negative temperature is greedy too.
    p.temperature = -0.5f;
    smp = t_sampler(&p, 6);
    CHECK_EQ_INT(inf_sampler_sample(smp, logits, NULL), 1);
    inf_sampler_free(smp);

    // Banned tokens are skipped by the sampling path as well, every time.
    p = t_plain_params(1.0f);
    smp = t_sampler(&p, 6);
    const float flat[6] = {0, 0, 0, 0, 0, 0};
    const uint8_t ban_even[6] = {1, 0, 1, 0, 1, 0};
    int bad = 0;
    for (int i = 0; i < 300; i++) bad += inf_sampler_sample(smp, flat, ban_even) % 2 == 0;
    CHECK_EQ_INT(bad, 0);
    inf_sampler_free(smp);
}

// top_k = 1 leaves one candidate, so any temperature gives the greedy token (ties to the lower id).
static void test_top_k_one_is_greedy(void) {
    enum { N = 64 };
    inf_sampler_params pg = t_plain_params(0.0f);
    inf_sampler *greedy = t_sampler(&pg, N);
    const float temps[3] = {0.3f, 1.0f, 7.0f};
    int mismatches = 0;
    for (int t = 0; t < 3; t++) {
        inf_sampler_params pk = t_plain_params(temps[t]);
        pk.top_k = 1;
        pk.seed = 100 + (uint64_t)t;
        inf_sampler *k1 = t_sampler(&pk, N);
        for (int trial = 0; trial < 40; trial++) {
            float logits[N];
            // Coarse values so ties for the maximum are common.
            for (int i = 0; i < N; i++) logits[i] = (float)(t_rand() % 8);
            mismatches += inf_sampler_sample(k1, logits, NULL) != inf_sampler_sample(greedy, logits, NULL);
        }
        inf_sampler_free(k1);
    }
    CHECK_EQ_INT(mismatches, 0);
    inf_sampler_free(greedy);
}

// ---------------------------------------------------------------------------------------------------------
// Penalties
// ---------------------------------------------------------------------------------------------------------
static void test_penalties(void) {
    inf_sampler_params p = t_plain_params(0.0f);
    p.repeat_penalty = 1.5f;
    p.frequency_penalty = 0.25f;
    p.presence_penalty = 0.5f;
    p.repeat_last_n = 4;
    inf_sampler *smp = t_sampler(&p, 6);
    const float logits[6] = {2.0f, -1.0f, 0.5f, 3.0f, -2.0f, 0.0f};
    const inf_token history[5] = {0, 1, 3, 1, 5};
    for (int i = 0; i < 5; i++) inf_sampler_accept(smp, history[i]);
    // The window holds the last 4: {1, 3, 1, 5}; token 0 has left it.
    CHECK_EQ_INT(sampler_token_count(smp, 0), 0);
    CHECK_EQ_INT(sampler_token_count(smp, 1), 2);
    CHECK_EQ_INT(sampler_token_count(smp, 3), 1);
    CHECK_EQ_INT(sampler_token_count(smp, 5), 1);
    float out[6];
    memcpy(out, logits, sizeof out);
    sampler_apply_penalties(smp, out);
    CHECK_NEAR(out[0], 2.0, 0);             // not in the window
    CHECK_NEAR(out[1], -1.5 - 1.0, 0);      // -1 * 1.5, then - (2 * 0.25 + 0.5)
    CHECK_NEAR(out[2], 0.5, 0);             // never seen
    CHECK_NEAR(out[3], 3.0 / 1.5 - 0.75, 0); // 3 / 1.5, then - (0.25 + 0.5)
    CHECK_NEAR(out[4], -2.0, 0);
    CHECK_NEAR(out[5], 0.0 - 0.75, 0); // a zero logit is multiplied (stays 0), then shifted
    // Without penalties token 3 wins; with them token 0 (2.0 > 1.25).
    CHECK_EQ_INT(inf_sampler_sample(smp, logits, NULL), 0);

    // The sampling path sees the same penalised logits.
    inf_sampler_params ps = p;
    ps.temperature = 1.0f;
    inf_sampler *smp2 = t_sampler(&ps, 6);
    for (int i = 0; i < 5; i++) inf_sampler_accept(smp2, history[i]);
    const sampler_candidate *c;
    int n = sampler_filter_candidates(smp2, logits, NULL, &c);
    CHECK_EQ_INT(n, 6);
    for (int i = 0; i < n; i++) CHECK_NEAR(c[i].logit, out[c[i].id], 0);
    inf_sampler_free(smp2);

    // Out-of-range ids are ignored (with a warning) rather than corrupting the counts.
    inf_log_set_level(INF_LOG_NONE);
    inf_sampler_accept(smp, -1);
    inf_sampler_accept(smp, 6);
    inf_log_set_level(INF_LOG_INFO);
    CHECK_EQ_INT(sampler_token_count(smp, 1), 2);

    // reset forgets the history.
    inf_sampler_reset(smp);
    memcpy(out, logits, sizeof out);
    sampler_apply_penalties(smp, out);
    CHECK(memcmp(out, logits, sizeof out) == 0);
    CHECK_EQ_INT(inf_sampler_sample(smp, logits, NULL), 3);
    inf_sampler_free(smp);

    // Whole-history window: counts never expire.
    p.repeat_last_n = -1;
    smp = t_sampler(&p, 6);
    for (int i = 0; i < 100; i++) inf_sampler_accept(smp, 2);
    CHECK_EQ_INT(sampler_token_count(smp, 2), 100);
    memcpy(out, logits, sizeof out);
    sampler_apply_penalties(smp, out);
    CHECK_NEAR(out[2], 0.5 / 1.5 - (100 * 0.25 + 0.5), 1e-5);
    inf_sampler_free(smp);

    // repeat_last_n = 0 switches every penalty off.
    p.repeat_last_n = 0;
    smp = t_sampler(&p, 6);
    inf_sampler_accept(smp, 3);
    CHECK_EQ_INT(sampler_token_count(smp, 3), 0);
    CHECK_EQ_INT(inf_sampler_sample(smp, logits, NULL), 3);
    inf_sampler_free(smp);

    // The single-token function against hand values, including a negative frequency penalty.
    inf_sampler_params q = t_plain_params(1.0f);
    q.repeat_penalty = 2.0f;
    q.frequency_penalty = -0.5f;
    q.presence_penalty = 1.0f;
    CHECK_NEAR(sampler_penalize_logit(&q, 4.0f, 0), 4.0, 0);
    CHECK_NEAR(sampler_penalize_logit(&q, 4.0f, 3), 2.0 - (-1.5 + 1.0), 0);
    CHECK_NEAR(sampler_penalize_logit(&q, -4.0f, 1), -8.0 - (-0.5 + 1.0), 0);
}

// ---------------------------------------------------------------------------------------------------------
// Filters on a hand-made distribution: ids 2, 0, 3, 1 have probabilities 0.5, 0.3, 0.15, 0.05.
// ---------------------------------------------------------------------------------------------------------
#define ID_A (1u << 2) // 0.50
#define ID_B (1u << 0) // 0.30
#define ID_C (1u << 3) // 0.15
#define ID_D (1u << 1) // 0.05

static void t_hand_logits(float *logits) {
    logits[2] = logf(0.5f);
    logits[0] = logf(0.3f);
    logits[3] = logf(0.15f);
    logits[1] = logf(0.05f);
}

static void test_filters(void) {
    float logits[4];
    t_hand_logits(logits);
    const unsigned all = ID_A | ID_B | ID_C | ID_D;
    inf_sampler_params p = t_plain_params(1.0f);
    CHECK_EQ_INT(t_kept_mask(&p, logits, 4), all);

    p.top_k = 1;
    CHECK_EQ_INT(t_kept_mask(&p, logits, 4), ID_A);
    p.top_k = 2;
    CHECK_EQ_INT(t_kept_mask(&p, logits, 4), ID_A | ID_B);
    p.top_k = 3;
    CHECK_EQ_INT(t_kept_mask(&p, logits, 4), ID_A | ID_B | ID_C);
    p.top_k = 10;
    CHECK_EQ_INT(t_kept_mask(&p, logits, 4), all);

    p = t_plain_params(1.0f);
    const struct {
        float top_p;
        unsigned kept;
    } tp[] = {{0.0f, ID_A},         {0.49f, ID_A},       {0.5f, ID_A},       {0.51f, ID_A | ID_B},
              {0.8f, ID_A | ID_B},  {0.81f, ID_A | ID_B | ID_C},  {0.95f, ID_A | ID_B | ID_C},
              {0.96f, all},         {1.0f, all}};
    for (size_t i = 0; i < sizeof tp / sizeof tp[0]; i++) {
        p.top_p = tp[i].top_p;
        unsigned got = t_kept_mask(&p, logits, 4);
        CHECK_MSG(got == tp[i].kept, "top_p %g kept 0x%x, expected 0x%x", tp[i].top_p, got, tp[i].kept);
    }

    p = t_plain_params(1.0f);
    const struct {
        float min_p;
        unsigned kept;
    } mp[] = {{0.01f, all}, {0.09f, all}, {0.11f, ID_A | ID_B | ID_C}, {0.25f, ID_A | ID_B | ID_C},
              {0.35f, ID_A | ID_B}, {0.59f, ID_A | ID_B}, {0.61f, ID_A}, {1.0f, ID_A}};
    for (size_t i = 0; i < sizeof mp / sizeof mp[0]; i++) {
        p.min_p = mp[i].min_p;
        unsigned got = t_kept_mask(&p, logits, 4);
        CHECK_MSG(got == mp[i].kept, "min_p %g kept 0x%x, expected 0x%x", mp[i].min_p, got, mp[i].kept);
    }

    // top-p works on what top-k left, renormalised: among the top 3, A and B carry 0.8/0.95 = 0.842,
    // so top_p 0.84 keeps 2 after top_k 3 but 3 without it.
    p = t_plain_params(1.0f);
    p.top_p = 0.84f;
    CHECK_EQ_INT(t_kept_mask(&p, logits, 4), ID_A | ID_B | ID_C);
    p.top_k = 3;
    CHECK_EQ_INT(t_kept_mask(&p, logits, 4), ID_A | ID_B);
    // min-p after top-p: top_p 0.9 keeps A, B, C; min_p 0.4 then drops C (0.15 < 0.2) and B stays.
    p = t_plain_params(1.0f);
    p.top_p = 0.9f;
    p.min_p = 0.4f;
    CHECK_EQ_INT(t_kept_mask(&p, logits, 4), ID_A | ID_B);

    // The probabilities handed to the draw are the renormalised survivors.
    p = t_plain_params(1.0f);
    p.top_k = 3;
    inf_sampler *smp = t_sampler(&p, 4);
    const sampler_candidate *c;
    int n = sampler_filter_candidates(smp, logits, NULL, &c);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(c[0].id, 2); // sorted best first after top-k
    CHECK_EQ_INT(c[1].id, 0);
    CHECK_EQ_INT(c[2].id, 3);
    CHECK_NEAR(c[0].p, 0.5 / 0.95, 1e-6);
    CHECK_NEAR(c[1].p, 0.3 / 0.95, 1e-6);
    CHECK_NEAR(c[2].p, 0.15 / 0.95, 1e-6);
    inf_sampler_free(smp);

    // Ties in top-k go to the lower ids.
    const float flat[6] = {1, 2, 2, 2, 2, 0};
    p = t_plain_params(1.0f);
    p.top_k = 2;
    CHECK_EQ_INT(t_kept_mask(&p, flat, 6), (1u << 1) | (1u << 2));

    // Banned tokens never enter the candidate set.
    smp = t_sampler(&p, 4);
    const uint8_t banned[4] = {0, 0, 1, 0};
    n = sampler_filter_candidates(smp, logits, banned, &c);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(c[0].id, 0);
    CHECK_EQ_INT(c[1].id, 3);
    inf_sampler_free(smp);
}

// ---------------------------------------------------------------------------------------------------------
// Selection on large vocabularies against a full sort (exercises the partial-selection paths).
// ---------------------------------------------------------------------------------------------------------
typedef struct {
    int id;
    float logit;
} t_ref;

static int t_ref_cmp(const void *pa, const void *pb) {
    const t_ref *a = pa, *b = pb;
    if (a->logit != b->logit) return a->logit > b->logit ? -1 : 1;
    return a->id - b->id;
}

// Compares the chain's survivors with a sorted reference: top_k by order, then top_p by cumulative mass.
static void t_check_large(const float *logits, int n_vocab, int top_k, float top_p) {
    t_ref *ref = malloc((size_t)n_vocab * sizeof *ref);
    for (int i = 0; i < n_vocab; i++) ref[i] = (t_ref){i, logits[i]};
    qsort(ref, (size_t)n_vocab, sizeof *ref, t_ref_cmp);
    int n_ref = top_k > 0 && top_k < n_vocab ? top_k : n_vocab;
    if (top_p < 1.0f) {
        double sum = 0.0, cum = 0.0;
        for (int i = 0; i < n_ref; i++) sum += exp((double)ref[i].logit - ref[0].logit);
        for (int i = 0; i < n_ref; i++) {
            cum += exp((double)ref[i].logit - ref[0].logit) / sum;
            if (cum >= top_p - SAMPLER_TOP_P_SLACK) { // the documented slack, see sampler_int.h
                n_ref = i + 1;
                break;
            }
        }
    }
    inf_sampler_params p = t_plain_params(1.0f);
    p.top_k = top_k;
    p.top_p = top_p;
    inf_sampler *smp = t_sampler(&p, n_vocab);
    const sampler_candidate *c;
    int n = sampler_filter_candidates(smp, logits, NULL, &c);
    CHECK_MSG(n == n_ref, "top_k %d top_p %g: kept %d, reference %d", top_k, top_p, n, n_ref);
    int diff = 0;
    for (int i = 0; i < n && i < n_ref; i++) diff += c[i].id != ref[i].id;
    CHECK_MSG(diff == 0, "top_k %d top_p %g: %d ids differ from the reference order", top_k, top_p, diff);
    inf_sampler_free(smp);
    free(ref);
}

static void test_large_vocab(void) {
    enum { N = 20000 };
    float *logits = malloc(N * sizeof *logits);
    int *perm = malloc(N * sizeof *perm);
    for (int i = 0; i < N; i++) perm[i] = i;
    for (int i = N - 1; i > 0; i--) {
        int j = (int)(t_rand() % (uint32_t)(i + 1)), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    // Coarse random logits (many ties): top-k by heap selection.
    for (int i = 0; i < N; i++) logits[i] = (float)(t_rand() % 64) * 0.25f;
    t_check_large(logits, N, 50, 1.0f);
    t_check_large(logits, N, 3000, 1.0f);
    t_check_large(logits, N, 50, 0.5f);
    // Geometric distributions placed at shuffled ids; 90% of the mass lies in ~46, ~460 and ~all tokens,
    // which takes the first selection, a grown selection, and the full sort.
    const float scales[3] = {20.0f, 200.0f, 200000.0f};
    for (int s = 0; s < 3; s++) {
        for (int i = 0; i < N; i++) logits[perm[i]] = -(float)i / scales[s];
        t_check_large(logits, N, 0, 0.9f);
    }
    free(perm);
    free(logits);
}

// ---------------------------------------------------------------------------------------------------------
// The one-pass paths against the reference chain (sampler_sample_ref, sampler_filter_candidates_ref: every
// candidate built, then filtered, as the sampler did before the one-pass paths): on random logits of many
// shapes (ties, NaN, infinities, odd vocabulary sizes), with bans and penalty histories, the candidates
// (ids, logits, probabilities, bit for bit) and the drawn tokens must be the same, step after step.
// ---------------------------------------------------------------------------------------------------------
typedef enum { T_UNIFORM, T_GAUSS, T_TIES, T_NAN, T_INF, T_MOSTLY_NAN, T_PEAKED, T_DIST_COUNT } t_dist;

static void t_fill_logits(float *x, int n, t_dist d) {
    for (int i = 0; i < n; i++) {
        float u = (float)(t_rand() % 1000000) / 1e6f, g = 0.0f;
        for (int k = 0; k < 4; k++) g += (float)(t_rand() % 10000) / 1e4f;
        g = (g - 2.0f) * 3.0f;
        switch (d) {
        case T_UNIFORM: x[i] = u * 20.0f - 10.0f; break;
        case T_GAUSS: x[i] = g; break;
        case T_TIES: x[i] = (float)(t_rand() % 8) * 0.5f; break; // a few values, thousands of ties
        case T_NAN: x[i] = t_rand() % 50 == 0 ? NAN : g; break;
        case T_INF: {
            uint32_t r = t_rand() % 200;
            x[i] = r == 0 ? INFINITY : r < 20 ? -INFINITY : g;
            break;
        }
        case T_MOSTLY_NAN: x[i] = t_rand() % 100 == 0 ? g : NAN; break;
        case T_PEAKED: x[i] = t_rand() % 3000 == 0 ? 30.0f + g : g - 5.0f; break;
        default: x[i] = 0.0f;
        }
    }
    // Now and then the best at the very end (the tail of the vector loops); otherwise thousands of ties for
    // the best, spread over the stretches between special ids.
    if (d == T_TIES && n > 10 && t_rand() % 2) x[n - 1] = 100.0f;
    if (d == T_MOSTLY_NAN) {
        x[0] = -INFINITY; // a -inf candidate among the few valid ones
        x[n - 1] = NAN;
    }
}

static int g_fast_mismatch;

// Runs `steps` sampling steps with two samplers of the same parameters and history, the one-pass paths in
// one and the reference in the other, and compares everything they produce.
static void t_fast_vs_ref(const inf_sampler_params *p, int n_vocab, t_dist d, int n_banned, int n_history,
                          int steps) {
    inf_sampler *fast = t_sampler(p, n_vocab), *ref = t_sampler(p, n_vocab);
    float *x = malloc((size_t)n_vocab * sizeof *x);
    uint8_t *banned = n_banned > 0 ? calloc((size_t)n_vocab, 1) : NULL;
    for (int i = 0; i < n_banned; i++) banned[t_rand() % (uint32_t)n_vocab] = 1;
    if (banned && n_banned >= n_vocab) memset(banned, 1, (size_t)n_vocab);
    for (int i = 0; i < n_history; i++) {
        // Repeats and near-by ids, so that the window holds duplicates and special ids share blocks.
        inf_token t = (inf_token)(t_rand() % (uint32_t)(i % 3 == 0 && n_vocab > 64 ? 64 : n_vocab));
        inf_sampler_accept(fast, t);
        inf_sampler_accept(ref, t);
    }
    int bad = 0;
    for (int step = 0; step < steps && !bad; step++) {
        t_fill_logits(x, n_vocab, d);
        if (p->temperature > 0.0f) {
            const sampler_candidate *cf, *cr;
            int nf = sampler_filter_candidates(fast, x, banned, &cf);
            int nr = sampler_filter_candidates_ref(ref, x, banned, &cr);
            if (nf != nr) {
                bad = 1;
                CHECK_MSG(false, "filter: %d candidates, reference %d (vocab %d, dist %d, top_k %d, top_p %g, "
                                 "min_p %g, banned %d, history %d)",
                          nf, nr, n_vocab, d, p->top_k, (double)p->top_p, (double)p->min_p, n_banned, n_history);
                break;
            }
            for (int i = 0; i < nf && !bad; i++) {
                if (cf[i].id != cr[i].id || memcmp(&cf[i].logit, &cr[i].logit, sizeof(float)) != 0 ||
                    memcmp(&cf[i].p, &cr[i].p, sizeof(float)) != 0) {
                    bad = 1;
                    CHECK_MSG(false, "filter: candidate %d is (%d, %a, %a), reference (%d, %a, %a) (vocab %d, "
                                     "dist %d, top_k %d)",
                              i, cf[i].id, (double)cf[i].logit, (double)cf[i].p, cr[i].id, (double)cr[i].logit,
                              (double)cr[i].p, n_vocab, d, p->top_k);
                }
            }
        }
        inf_token tf = inf_sampler_sample(fast, x, banned), tr = sampler_sample_ref(ref, x, banned);
        if (tf != tr) {
            bad = 1;
            CHECK_MSG(false, "sample: token %d, reference %d (vocab %d, dist %d, temperature %g, top_k %d, "
                             "banned %d, history %d, step %d)",
                      tf, tr, n_vocab, d, (double)p->temperature, p->top_k, n_banned, n_history, step);
        }
        if (tf >= 0) {
            inf_sampler_accept(fast, tf);
            inf_sampler_accept(ref, tr);
        }
    }
    g_fast_mismatch += bad;
    if (!bad) CHECK(true);
    free(banned);
    free(x);
    inf_sampler_free(fast);
    inf_sampler_free(ref);
}

static void test_fast_matches_reference(void) {
    const int vocabs[] = {32000, 1000, 77, 130, 5};
    const int top_ks[] = {0, 1, 2, 40, 100, 999, 1000, 5000};
    const float temps[] = {0.0f, 0.8f, 1.5f};
    const int n_bans[] = {0, 3, 200, 5000, 1 << 30}; // 5000 > SAMPLER_MAX_SPECIAL: the fallback; all banned
    uint64_t seed = 1;
    for (size_t v = 0; v < sizeof vocabs / sizeof vocabs[0]; v++) {
        int n_vocab = vocabs[v];
        for (int d = 0; d < T_DIST_COUNT; d++) {
            for (size_t ti = 0; ti < sizeof temps / sizeof temps[0]; ti++) {
                // Not every combination: a pseudo-random walk over them keeps the test fast.
                for (int rep = 0; rep < (n_vocab >= 32000 ? 3 : 5); rep++) {
                    inf_sampler_params p = inf_sampler_default_params();
                    p.temperature = temps[ti];
                    p.top_k = top_ks[t_rand() % (sizeof top_ks / sizeof top_ks[0])];
                    if (t_rand() % 4 == 0) p.top_k = n_vocab - (int)(t_rand() % 3); // at and around n_vocab
                    p.top_p = (const float[]){1.0f, 0.95f, 0.5f}[t_rand() % 3];
                    p.min_p = (const float[]){0.0f, 0.05f, 0.3f}[t_rand() % 3];
                    // Penalties: none, repeat, negative frequency, whole history, short window, and one that
                    // leaves a token seen once at its raw logit (special ids that tie with the rest).
                    int pen = (int)(t_rand() % 6);
                    p.repeat_penalty = pen == 1 || pen == 3 ? 1.1f : pen == 4 ? 0.9f : 1.0f;
                    p.frequency_penalty = pen == 2 ? -0.5f : pen == 3 ? 0.3f : pen == 5 ? 0.5f : 0.0f;
                    p.presence_penalty = pen == 2 ? 0.4f : pen == 5 ? -0.5f : 0.0f;
                    p.repeat_last_n = pen == 3 ? -1 : pen == 4 ? 3 : 64;
                    p.seed = seed++;
                    int n_banned = n_bans[t_rand() % (sizeof n_bans / sizeof n_bans[0])];
                    if (n_banned > n_vocab) n_banned = t_rand() % 8 == 0 ? n_vocab : 0;
                    int n_history = (int)(t_rand() % 100);
                    t_fast_vs_ref(&p, n_vocab, (t_dist)d, n_banned, n_history, n_vocab >= 32000 ? 3 : 6);
                }
            }
        }
    }
    // A whole-history window (repeat_last_n -1) with more distinct tokens than SAMPLER_MAX_SPECIAL: the
    // list of seen ids is incomplete and the reference path must take over.
    inf_sampler_params p = inf_sampler_default_params();
    p.repeat_last_n = -1;
    p.frequency_penalty = 0.2f;
    for (int t = 0; t < 2; t++) {
        p.temperature = t ? 0.7f : 0.0f;
        t_fast_vs_ref(&p, 32000, T_GAUSS, 0, SAMPLER_MAX_SPECIAL + 500, 4);
    }
    CHECK_EQ_INT(g_fast_mismatch, 0);
}

// ---------------------------------------------------------------------------------------------------------
// Reproducibility
// ---------------------------------------------------------------------------------------------------------
enum { SEQ_VOCAB = 50, SEQ_LEN = 200 };

static void t_generate(inf_sampler *smp, const float *logit_table, inf_token *out) {
    for (int t = 0; t < SEQ_LEN; t++) {
        out[t] = inf_sampler_sample(smp, logit_table + (size_t)(t % 7) * SEQ_VOCAB, NULL);
        inf_sampler_accept(smp, out[t]);
    }
}

static void test_reproducible(void) {
    float table[7 * SEQ_VOCAB];
    for (int i = 0; i < 7 * SEQ_VOCAB; i++) table[i] = t_rand_logit() * 0.3f;
    inf_sampler_params p = inf_sampler_default_params(); // every stage on, penalties too
    p.top_k = 30;
    p.top_p = 0.97f;
    p.min_p = 0.01f;
    p.repeat_penalty = 1.1f;
    p.frequency_penalty = 0.1f;
    p.presence_penalty = 0.1f;
    p.seed = 1234;
    inf_sampler *a = t_sampler(&p, SEQ_VOCAB), *b = t_sampler(&p, SEQ_VOCAB);
    p.seed = 1235;
    inf_sampler *other = t_sampler(&p, SEQ_VOCAB);
    inf_token sa[SEQ_LEN], sb[SEQ_LEN], so[SEQ_LEN], sr[SEQ_LEN];
    t_generate(a, table, sa);
    t_generate(b, table, sb);
    t_generate(other, table, so);
    CHECK(memcmp(sa, sb, sizeof sa) == 0);
    int differ = 0, distinct = 0;
    for (int i = 0; i < SEQ_LEN; i++) differ += sa[i] != so[i];
    for (int i = 1; i < SEQ_LEN; i++) distinct += sa[i] != sa[0];
    CHECK_MSG(differ > SEQ_LEN / 4, "seeds 1234 and 1235 differ in only %d of %d tokens", differ, SEQ_LEN);
    CHECK(distinct > 0); // really sampling, not stuck on one token
    inf_sampler_reset(a);
    t_generate(a, table, sr);
    CHECK(memcmp(sa, sr, sizeof sa) == 0);
    inf_sampler_free(a);
    inf_sampler_free(b);
    inf_sampler_free(other);
}

// ---------------------------------------------------------------------------------------------------------
// Distribution of draws
// ---------------------------------------------------------------------------------------------------------
static void t_check_frequencies(float temperature, const double *expect) {
    enum { DRAWS = 20000 };
    float logits[4];
    t_hand_logits(logits);
    inf_sampler_params p = t_plain_params(temperature);
    p.seed = 99;
    inf_sampler *smp = t_sampler(&p, 4);
    const sampler_candidate *c;
    int n = sampler_filter_candidates(smp, logits, NULL, &c);
    CHECK_EQ_INT(n, 4);
    for (int i = 0; i < n; i++) CHECK_NEAR(c[i].p, expect[c[i].id], 1e-6);
    int counts[4] = {0}, out_of_range = 0;
    for (int i = 0; i < DRAWS; i++) {
        inf_token t = inf_sampler_sample(smp, logits, NULL);
        if (t >= 0 && t < 4)
            counts[t]++;
        else
            out_of_range++;
    }
    CHECK_EQ_INT(out_of_range, 0);
    for (int i = 0; i < 4; i++)
        CHECK_MSG(fabs((double)counts[i] / DRAWS - expect[i]) <= 0.02, "temp %g token %d: %.4f vs %.4f",
                  temperature, i, (double)counts[i] / DRAWS, expect[i]);
    inf_sampler_free(smp);
}

static void test_distribution(void) {
    // Temperature 1: the probabilities themselves (by id: 0.3, 0.05, 0.5, 0.15).
    const double t1[4] = {0.3, 0.05, 0.5, 0.15};
    t_check_frequencies(1.0f, t1);
    // Temperature 0.5 squares them before renormalising: 0.09, 0.0025, 0.25, 0.0225 over 0.365.
    const double t05[4] = {0.09 / 0.365, 0.0025 / 0.365, 0.25 / 0.365, 0.0225 / 0.365};
    t_check_frequencies(0.5f, t05);

    // The generator's uniforms stay in [0, 1) and fill it evenly enough.
    inf_sampler_params p = t_plain_params(1.0f);
    inf_sampler *smp = t_sampler(&p, 4);
    double sum = 0.0, lo = 1.0, hi = 0.0;
    for (int i = 0; i < 10000; i++) {
        double u = sampler_rng_uniform(smp);
        sum += u;
        lo = u < lo ? u : lo;
        hi = u > hi ? u : hi;
    }
    CHECK(lo >= 0.0 && lo < 0.01);
    CHECK(hi < 1.0 && hi > 0.99);
    CHECK_NEAR(sum / 10000, 0.5, 0.01);
    inf_sampler_free(smp);
}

// ---------------------------------------------------------------------------------------------------------
// Stop matcher
// ---------------------------------------------------------------------------------------------------------
typedef struct {
    char text[8192]; // everything emitted so far
    size_t len;
    bool matched;
} t_stream;

static bool t_feed(inf_stop_matcher *m, t_stream *s, const char *piece, size_t len) {
    const char *emit;
    size_t n;
    bool stop = inf_stop_matcher_feed(m, piece, len, &emit, &n);
    CHECK(s->len + n < sizeof s->text);
    if (s->len + n < sizeof s->text) {
        memcpy(s->text + s->len, emit, n);
        s->len += n;
        s->text[s->len] = '\0';
    }
    s->matched = stop;
    return stop;
}

static bool t_feed_str(inf_stop_matcher *m, t_stream *s, const char *piece) {
    return t_feed(m, s, piece, strlen(piece));
}

static void t_flush(inf_stop_matcher *m, t_stream *s) {
    const char *emit;
    size_t n;
    inf_stop_matcher_flush(m, &emit, &n);
    CHECK(s->len + n < sizeof s->text);
    if (s->len + n < sizeof s->text) {
        memcpy(s->text + s->len, emit, n);
        s->len += n;
        s->text[s->len] = '\0';
    }
}

static inf_stop_matcher *t_matcher(const char *const *stops, int n) {
    inf_stop_matcher *m = NULL;
    inf_status st = inf_stop_matcher_init(stops, n, &m);
    CHECK_MSG(st == INF_OK, "stop matcher init failed: %s", inf_last_error());
    if (!m) exit(1);
    return m;
}

static void test_stop_basic(void) {
    const char *abc[] = {"abc"};
    inf_stop_matcher *m = t_matcher(abc, 1);
    t_stream s = {0};
    CHECK(!t_feed_str(m, &s, "xyz"));
    CHECK_STR(s.text, "xyz");
    CHECK(!t_feed_str(m, &s, "12ab"));
    CHECK_STR(s.text, "xyz12"); // "ab" held back
    CHECK(t_feed_str(m, &s, "c!!"));
    CHECK_STR(s.text, "xyz12");
    CHECK(t_feed_str(m, &s, "more")); // stays matched, emits nothing
    CHECK_STR(s.text, "xyz12");
    t_flush(m, &s);
    CHECK_STR(s.text, "xyz12");
    inf_stop_matcher_free(m);

    // Split over three pieces.
    m = t_matcher(abc, 1);
    memset(&s, 0, sizeof s);
    CHECK(!t_feed_str(m, &s, "hi a"));
    CHECK(!t_feed_str(m, &s, "b"));
    CHECK_STR(s.text, "hi ");
    CHECK(t_feed_str(m, &s, "cdef"));
    CHECK_STR(s.text, "hi ");
    inf_stop_matcher_free(m);

    // False start: "ab" then "ac" is not "abc"; the held text comes out once it cannot match.
    m = t_matcher(abc, 1);
    memset(&s, 0, sizeof s);
    CHECK(!t_feed_str(m, &s, "ab"));
    CHECK_STR(s.text, "");
    CHECK(!t_feed_str(m, &s, "ac"));
    CHECK_STR(s.text, "abac");
    CHECK(!t_feed_str(m, &s, "a"));
    CHECK(!t_feed_str(m, &s, "ab"));
    CHECK_STR(s.text, "abaca"); // "ab" held
    CHECK(t_feed_str(m, &s, "c"));
    CHECK_STR(s.text, "abaca");
    inf_stop_matcher_free(m);

    // Overlapping restart: "aab" inside "aaab".
    const char *aab[] = {"aab"};
    m = t_matcher(aab, 1);
    memset(&s, 0, sizeof s);
    CHECK(!t_feed_str(m, &s, "a"));
    CHECK(!t_feed_str(m, &s, "a"));
    CHECK(!t_feed_str(m, &s, "a"));
    CHECK_STR(s.text, "a");
    CHECK(t_feed_str(m, &s, "b"));
    CHECK_STR(s.text, "a");
    inf_stop_matcher_free(m);

    // A stop at the very start.
    m = t_matcher(abc, 1);
    memset(&s, 0, sizeof s);
    CHECK(t_feed_str(m, &s, "abcdef"));
    CHECK_EQ_INT(s.len, 0);
    inf_stop_matcher_free(m);

    // Flush returns what was held.
    m = t_matcher(abc, 1);
    memset(&s, 0, sizeof s);
    CHECK(!t_feed_str(m, &s, "the ab"));
    CHECK_STR(s.text, "the ");
    t_flush(m, &s);
    CHECK_STR(s.text, "the ab");
    inf_stop_matcher_free(m);

    // Empty pieces change nothing.
    m = t_matcher(abc, 1);
    memset(&s, 0, sizeof s);
    CHECK(!t_feed(m, &s, NULL, 0));
    CHECK(!t_feed_str(m, &s, "a"));
    CHECK(!t_feed(m, &s, "", 0));
    CHECK_EQ_INT(s.len, 0);
    inf_stop_matcher_free(m);
}

static void test_stop_multiple(void) {
    const char *stops[] = {"</s>", "\n\nUser:"};
    inf_stop_matcher *m = t_matcher(stops, 2);
    t_stream s = {0};
    CHECK(!t_feed_str(m, &s, "Hello\n"));
    CHECK_STR(s.text, "Hello");
    CHECK(!t_feed_str(m, &s, "\nUs"));
    CHECK_STR(s.text, "Hello");
    CHECK(t_feed_str(m, &s, "er: hi"));
    CHECK_STR(s.text, "Hello");
    inf_stop_matcher_free(m);

    m = t_matcher(stops, 2);
    memset(&s, 0, sizeof s);
    CHECK(!t_feed_str(m, &s, "a<"));
    CHECK(!t_feed_str(m, &s, "/"));
    CHECK_STR(s.text, "a");
    CHECK(t_feed_str(m, &s, "s>"));
    CHECK_STR(s.text, "a");
    inf_stop_matcher_free(m);

    // The earliest match wins, whatever the order of the list.
    const char *two[] = {"cd", "bc"};
    m = t_matcher(two, 2);
    memset(&s, 0, sizeof s);
    CHECK(t_feed_str(m, &s, "xabcd"));
    CHECK_STR(s.text, "xa");
    inf_stop_matcher_free(m);
}

static void test_stop_utf8(void) {
    // No stop strings: only incomplete characters are held.
    inf_stop_matcher *m = t_matcher(NULL, 0);
    t_stream s = {0};
    CHECK(!t_feed_str(m, &s, "caf\xC3"));
    CHECK_STR(s.text, "caf");
    CHECK(!t_feed_str(m, &s, "\xA9!"));
    CHECK_STR(s.text, "caf\xC3\xA9!");
    // A 4-byte character in three pieces.
    CHECK(!t_feed_str(m, &s, "\xF0"));
    CHECK(!t_feed_str(m, &s, "\x9F"));
    CHECK(!t_feed_str(m, &s, "\x98"));
    CHECK_STR(s.text, "caf\xC3\xA9!");
    CHECK(!t_feed_str(m, &s, "\x80"));
    CHECK_STR(s.text, "caf\xC3\xA9!\xF0\x9F\x98\x80");
    // Invalid bytes are not held for ever: a lead byte followed by ASCII, stray continuation bytes.
    memset(&s, 0, sizeof s);
    CHECK(!t_feed_str(m, &s, "\xE2"));
    CHECK_EQ_INT(s.len, 0);
    CHECK(!t_feed_str(m, &s, "A"));
    CHECK_STR(s.text, "\xE2" "A");
    CHECK(!t_feed_str(m, &s, "\x80\x80\x80\x80"));
    CHECK_STR(s.text, "\xE2" "A\x80\x80\x80\x80");
    // Flush hands over an unfinished character as is.
    CHECK(!t_feed_str(m, &s, "\xE2\x82"));
    CHECK_STR(s.text, "\xE2" "A\x80\x80\x80\x80");
    t_flush(m, &s);
    CHECK_STR(s.text, "\xE2" "A\x80\x80\x80\x80\xE2\x82");
    inf_stop_matcher_free(m);

    // A multi-byte stop string split inside its characters; and a near miss that must come out whole.
    const char *stops[] = {"\xE2\x82\xAC!"}; // "€!"
    m = t_matcher(stops, 1);
    memset(&s, 0, sizeof s);
    CHECK(!t_feed_str(m, &s, "5 \xE2\x82"));
    CHECK_STR(s.text, "5 ");
    CHECK(!t_feed_str(m, &s, "\xAC"));
    CHECK_STR(s.text, "5 ");
    CHECK(!t_feed_str(m, &s, "?"));
    CHECK_STR(s.text, "5 \xE2\x82\xAC?");
    CHECK(!t_feed_str(m, &s, "\xE2\x82\xAC"));
    CHECK(t_feed_str(m, &s, "!x"));
    CHECK_STR(s.text, "5 \xE2\x82\xAC?");
    inf_stop_matcher_free(m);

    // A stop prefix right after a multi-byte character does not hold the character back.
    const char *xy[] = {"xy"};
    m = t_matcher(xy, 1);
    memset(&s, 0, sizeof s);
    CHECK(!t_feed_str(m, &s, "\xC3"));
    CHECK(!t_feed_str(m, &s, "\xA9x"));
    CHECK_STR(s.text, "\xC3\xA9");
    CHECK(t_feed_str(m, &s, "y"));
    CHECK_STR(s.text, "\xC3\xA9");
    inf_stop_matcher_free(m);

    // The two holds combine: a stop that begins with a continuation byte would split "é"; the whole
    // character is held instead, and emitted once the stop cannot match.
    const char *odd[] = {"\xA9z"};
    m = t_matcher(odd, 1);
    memset(&s, 0, sizeof s);
    CHECK(!t_feed_str(m, &s, "a\xC3\xA9"));
    CHECK_STR(s.text, "a");
    CHECK(!t_feed_str(m, &s, "y"));
    CHECK_STR(s.text, "a\xC3\xA9y");
    inf_stop_matcher_free(m);
}

static void test_stop_caps(void) {
    char big[300];
    memset(big, 'q', sizeof big);
    big[256] = '\0';
    const char *sixteen[16];
    for (int i = 0; i < 16; i++) sixteen[i] = big;
    inf_stop_matcher *m = NULL;
    CHECK_EQ_INT(inf_stop_matcher_init(sixteen, 16, &m), INF_OK); // 16 stops of 256 bytes: the limit
    inf_stop_matcher_free(m);
    m = (inf_stop_matcher *)&m;
    const char *seventeen[17];
    for (int i = 0; i < 17; i++) seventeen[i] = "s";
    CHECK_EQ_INT(inf_stop_matcher_init(seventeen, 17, &m), INF_ERR_INVALID_ARG);
    CHECK(m == NULL);
    CHECK(strstr(inf_last_error(), "17") != NULL);
    big[256] = 'q';
    big[257] = '\0';
    const char *too_long[] = {"ok", big};
    CHECK_EQ_INT(inf_stop_matcher_init(too_long, 2, &m), INF_ERR_INVALID_ARG);
    CHECK(strstr(inf_last_error(), "stop string 1") != NULL);
    const char *empty[] = {""};
    CHECK_EQ_INT(inf_stop_matcher_init(empty, 1, &m), INF_ERR_INVALID_ARG);
    const char *null_entry[] = {"a", NULL};
    CHECK_EQ_INT(inf_stop_matcher_init(null_entry, 2, &m), INF_ERR_INVALID_ARG);
    CHECK_EQ_INT(inf_stop_matcher_init(NULL, 1, &m), INF_ERR_INVALID_ARG);
    CHECK_EQ_INT(inf_stop_matcher_init(NULL, -1, &m), INF_ERR_INVALID_ARG);
    inf_stop_matcher_free(NULL);

    // A 256-byte stop: 255 bytes of its prefix are held, then the last byte completes it.
    big[255] = 'z';
    big[256] = '\0';
    const char *one[] = {big};
    m = t_matcher(one, 1);
    t_stream s = {0};
    char run[300];
    memset(run, 'q', sizeof run);
    CHECK(!t_feed(m, &s, run, sizeof run));
    CHECK_EQ_INT(s.len, 300 - 255);
    CHECK(t_feed_str(m, &s, "z"));
    CHECK_EQ_INT(s.len, 300 - 255);
    inf_stop_matcher_free(m);

    // A piece larger than the initial buffer passes through whole.
    m = t_matcher(one, 1);
    memset(&s, 0, sizeof s);
    char *huge = malloc(6000);
    memset(huge, 'h', 6000);
    CHECK(!t_feed(m, &s, huge, 6000));
    CHECK_EQ_INT(s.len, 6000);
    free(huge);
    inf_stop_matcher_free(m);
}

// Random texts over a small alphabet cut into random pieces, against the earliest occurrence found by
// searching the whole text: the emitted text must always be a prefix of the expected output, and all of it
// once the stream ends.
static void test_stop_random(void) {
    const char *stops[] = {"abc", "cab", "bb"};
    int failures = 0;
    for (int trial = 0; trial < 300; trial++) {
        char text[64];
        size_t len = 1 + t_rand() % 60;
        for (size_t i = 0; i < len; i++) text[i] = "abcd"[t_rand() % 4];
        text[len] = '\0';
        size_t expect_len = len;
        bool expect_match = false;
        for (size_t pos = 0; pos < len && !expect_match; pos++)
            for (int k = 0; k < 3; k++)
                if (strncmp(text + pos, stops[k], strlen(stops[k])) == 0) {
                    expect_len = pos;
                    expect_match = true;
                    break;
                }
        inf_stop_matcher *m = t_matcher(stops, 3);
        t_stream s = {0};
        bool ok = true;
        for (size_t at = 0; at < len && !s.matched;) {
            size_t piece = 1 + t_rand() % 4;
            if (piece > len - at) piece = len - at;
            t_feed(m, &s, text + at, piece);
            at += piece;
            ok = ok && s.len <= expect_len && memcmp(s.text, text, s.len) == 0;
        }
        if (!s.matched) t_flush(m, &s);
        ok = ok && s.matched == expect_match && s.len == expect_len && memcmp(s.text, text, s.len) == 0;
        if (!ok && failures++ < 3) fprintf(stderr, "stop random: text \"%s\" emitted \"%s\"\n", text, s.text);
        inf_stop_matcher_free(m);
    }
    CHECK_EQ_INT(failures, 0);
}

int main(void) {
    test_params();
    test_greedy();
    test_top_k_one_is_greedy();
    test_penalties();
    test_filters();
    test_large_vocab();
    test_fast_matches_reference();
    test_reproducible();
    test_distribution();
    test_stop_basic();
    test_stop_multiple();
    test_stop_utf8();
    test_stop_caps();
    test_stop_random();
    return test_summary();
}
