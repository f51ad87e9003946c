// sampler.c: token sampling with llama.cpp's default chain: penalties (repeat, frequency, presence over the
// last repeat_last_n accepted tokens), top-k, top-p, min-p, temperature, then a draw from the renormalised
// distribution; greedy argmax when temperature <= 0.
//
// Deliberately left out: mirostat, typical-p, DRY, XTC, top-n-sigma, grammars and logit biases (callers ban
// tokens through the banned[] mask instead), and llama.cpp's min_keep (always 1 here). The generator is our
// own xoshiro256** seeded through splitmix64, so sampled (non-greedy) sequences are reproducible run to run
// but are not the ones llama.cpp's mt19937 would draw.
//
// Memory: every buffer is sized at init (candidates and counts per vocabulary entry, one ring slot per
// window token); sample/accept/reset never allocate.
#include "sampler/sampler_int.h"

#include "core/core.h"

#include <math.h>
#include <string.h>

struct inf_sampler {
    inf_sampler_params params;
    int n_vocab;
    sampler_candidate *cand; // (n_vocab) scratch for the chain, rebuilt on every sample
    uint32_t *counts;        // (n_vocab) occurrences of each token in the window; NULL when penalties are off
    inf_token *ring;         // (window) last accepted tokens; once full, ring[ring_head] is the oldest.
                             // NULL unless window > 0
    int window;              // > 0: ring size; -1: whole history (counts only, never evicted)
    int ring_len, ring_head;
    uint64_t rng[4]; // xoshiro256** state
};

// ---------------------------------------------------------------------------------------------------------
// Random numbers: splitmix64 expands the 64-bit seed into the 256-bit xoshiro256** state (the seeding its
// authors recommend: it mixes a counter bijectively, so four consecutive outputs are distinct and the state
// can never be all zero).
// ---------------------------------------------------------------------------------------------------------
static uint64_t sampler_splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t sampler_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static void sampler_rng_seed(inf_sampler *smp) {
    uint64_t x = smp->params.seed;
    for (int i = 0; i < 4; i++) smp->rng[i] = sampler_splitmix64(&x);
}

static uint64_t sampler_rng_next(inf_sampler *smp) {
    uint64_t *s = smp->rng;
    uint64_t result = sampler_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = sampler_rotl(s[3], 45);
    return result;
}

double sampler_rng_uniform(inf_sampler *smp) {
    // The top 53 bits fill a double's mantissa exactly: values k * 2^-53, k in [0, 2^53), so never 1.0.
    return (double)(sampler_rng_next(smp) >> 11) * 0x1.0p-53;
}

// ---------------------------------------------------------------------------------------------------------
// Parameters and lifetime
// ---------------------------------------------------------------------------------------------------------
inf_sampler_params inf_sampler_default_params(void) {
    // llama.cpp's common defaults; penalties are off because repeat_penalty is 1.
    return (inf_sampler_params){
        .temperature = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .repeat_last_n = 64,
        .frequency_penalty = 0.0f,
        .presence_penalty = 0.0f,
        .seed = 0,
    };
}

static inf_status sampler_check_params(const inf_sampler_params *p) {
    if (!isfinite(p->temperature))
        return inf_fail(INF_ERR_INVALID_ARG, "sampler: temperature %g is not a finite number",
                        p->temperature);
    if (!(p->top_p >= 0.0f && p->top_p <= 1.0f)) // also rejects NaN
        return inf_fail(INF_ERR_INVALID_ARG, "sampler: top_p %g is outside [0, 1]", p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return inf_fail(INF_ERR_INVALID_ARG, "sampler: min_p %g is outside [0, 1]", p->min_p);
    if (!(p->repeat_penalty > 0.0f) || !isfinite(p->repeat_penalty))
        return inf_fail(INF_ERR_INVALID_ARG, "sampler: repeat_penalty %g must be a finite number > 0",
                        p->repeat_penalty);
    // Frequency and presence penalties may be negative (to encourage repetition), as in llama.cpp and the
    // OpenAI API (-2..2); only non-finite values are nonsense.
    if (!isfinite(p->frequency_penalty))
        return inf_fail(INF_ERR_INVALID_ARG, "sampler: frequency_penalty %g is not a finite number",
                        p->frequency_penalty);
    if (!isfinite(p->presence_penalty))
        return inf_fail(INF_ERR_INVALID_ARG, "sampler: presence_penalty %g is not a finite number",
                        p->presence_penalty);
    if (p->repeat_last_n < -1 || p->repeat_last_n > SAMPLER_MAX_WINDOW)
        return inf_fail(INF_ERR_INVALID_ARG, "sampler: repeat_last_n %d is outside [-1, %d]",
                        p->repeat_last_n, SAMPLER_MAX_WINDOW);
    return INF_OK;
}

static bool sampler_penalties_active(const inf_sampler_params *p) {
    return p->repeat_last_n != 0 &&
           (p->repeat_penalty != 1.0f || p->frequency_penalty != 0.0f || p->presence_penalty != 0.0f);
}

inf_status inf_sampler_init(const inf_sampler_params *params, int n_vocab, inf_sampler **out) {
    assert(out);
    *out = NULL;
    if (!params) return inf_fail(INF_ERR_INVALID_ARG, "sampler: params is NULL");
    if (n_vocab <= 0 || n_vocab > SAMPLER_MAX_VOCAB)
        return inf_fail(INF_ERR_INVALID_ARG, "sampler: n_vocab %d is outside [1, %d]", n_vocab,
                        SAMPLER_MAX_VOCAB);
    inf_status st = sampler_check_params(params);
    if (st != INF_OK) return st;

    inf_sampler *smp = inf_calloc(1, sizeof *smp);
    if (!smp) return inf_fail(INF_ERR_NOMEM, "sampler: out of memory");
    smp->params = *params;
    smp->n_vocab = n_vocab;
    smp->cand = inf_malloc_array((size_t)n_vocab, sizeof *smp->cand);
    bool ok = smp->cand != NULL;
    if (ok && sampler_penalties_active(params)) {
        smp->window = params->repeat_last_n;
        smp->counts = inf_calloc((size_t)n_vocab, sizeof *smp->counts);
        ok = smp->counts != NULL;
        if (ok && smp->window > 0) {
            smp->ring = inf_malloc_array((size_t)smp->window, sizeof *smp->ring);
            ok = smp->ring != NULL;
        }
    }
    if (!ok) {
        inf_sampler_free(smp);
        return inf_fail(INF_ERR_NOMEM, "sampler: out of memory for a vocabulary of %d tokens", n_vocab);
    }
    sampler_rng_seed(smp);
    *out = smp;
    return INF_OK;
}

void inf_sampler_free(inf_sampler *smp) {
    if (!smp) return;
    free(smp->cand);
    free(smp->counts);
    free(smp->ring);
    free(smp);
}

void inf_sampler_reset(inf_sampler *smp) {
    assert(smp);
    smp->ring_len = 0;
    smp->ring_head = 0;
    if (smp->counts) memset(smp->counts, 0, (size_t)smp->n_vocab * sizeof *smp->counts);
    sampler_rng_seed(smp);
}

void inf_sampler_accept(inf_sampler *smp, inf_token token) {
    assert(smp);
    if (!smp->counts) return; // penalties off: no history needed
    if (token < 0 || token >= smp->n_vocab) {
        // A void API cannot report it; a bad id must not corrupt the counts either.
        inf_log(INF_LOG_WARN, "sampler: ignoring accepted token %d outside the vocabulary [0, %d)", token,
                smp->n_vocab);
        return;
    }
    if (smp->window < 0) {
        if (smp->counts[token] < UINT32_MAX) smp->counts[token]++;
        return;
    }
    if (smp->ring_len == smp->window) {
        inf_token old = smp->ring[smp->ring_head];
        assert(smp->counts[old] > 0);
        smp->counts[old]--;
    } else {
        smp->ring_len++;
    }
    smp->ring[smp->ring_head] = token;
    smp->ring_head = (smp->ring_head + 1) % smp->window;
    smp->counts[token]++;
}

// ---------------------------------------------------------------------------------------------------------
// Penalties
// ---------------------------------------------------------------------------------------------------------
float sampler_penalize_logit(const inf_sampler_params *params, float logit, uint32_t count) {
    if (count == 0) return logit;
    // Dividing a negative logit would make the token more likely; multiplying pushes it further down.
    if (logit <= 0.0f)
        logit *= params->repeat_penalty;
    else
        logit /= params->repeat_penalty;
    return logit - ((float)count * params->frequency_penalty + params->presence_penalty);
}

uint32_t sampler_token_count(const inf_sampler *smp, inf_token token) {
    assert(token >= 0 && token < smp->n_vocab);
    return smp->counts ? smp->counts[token] : 0;
}

void sampler_apply_penalties(const inf_sampler *smp, float *logits) {
    if (!smp->counts) return;
    for (int i = 0; i < smp->n_vocab; i++)
        logits[i] = sampler_penalize_logit(&smp->params, logits[i], smp->counts[i]);
}

// ---------------------------------------------------------------------------------------------------------
// Ordering and selection. "Better" is a total order (logit descending, then id ascending) so that ties, and
// therefore every stage that sorts or selects, are deterministic. NaN logits never reach these functions.
// ---------------------------------------------------------------------------------------------------------
static bool sampler_cand_better(const sampler_candidate *a, const sampler_candidate *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int sampler_cand_cmp(const void *pa, const void *pb) {
    const sampler_candidate *a = pa, *b = pb;
    return sampler_cand_better(a, b) ? -1 : sampler_cand_better(b, a) ? 1 : 0;
}

static void sampler_sort(sampler_candidate *c, int n) { qsort(c, (size_t)n, sizeof *c, sampler_cand_cmp); }

// Restores the heap property below slot i of a heap whose root c[0] is the worst of c[0..k).
static void sampler_heap_sift_down(sampler_candidate *c, int k, int i) {
    for (;;) {
        int worst = i, l = 2 * i + 1, r = l + 1;
        if (l < k && sampler_cand_better(&c[worst], &c[l])) worst = l;
        if (r < k && sampler_cand_better(&c[worst], &c[r])) worst = r;
        if (worst == i) return;
        sampler_candidate t = c[i];
        c[i] = c[worst];
        c[worst] = t;
        i = worst;
    }
}

// Moves the k best of c[0..n) to c[0..k), sorted best first; c[k..n) keeps the others in some order.
// O(n log k) with a bounded heap, and nearly O(n) in practice: most candidates lose to the heap's root at
// the first comparison.
static void sampler_select_top(sampler_candidate *c, int n, int k) {
    assert(k >= 1 && k <= n);
    for (int i = k / 2 - 1; i >= 0; i--) sampler_heap_sift_down(c, k, i);
    for (int i = k; i < n; i++) {
        if (sampler_cand_better(&c[i], &c[0])) {
            sampler_candidate t = c[0];
            c[0] = c[i];
            c[i] = t;
            sampler_heap_sift_down(c, k, 0);
        }
    }
    sampler_sort(c, k);
}

// ---------------------------------------------------------------------------------------------------------
// The chain
// ---------------------------------------------------------------------------------------------------------
static float sampler_max_logit(const sampler_candidate *c, int n) {
    float m = c[0].logit;
    for (int i = 1; i < n; i++)
        if (c[i].logit > m) m = c[i].logit;
    return m;
}

// Fills c[i].p with the softmax of the logits (float exponentials as llama.cpp, summed in double). Weights
// are 1 for logits equal to the maximum, so an infinite maximum still gives a distribution: the +inf tokens
// share it, or every token gets an equal share when all are -inf.
static void sampler_softmax(sampler_candidate *c, int n) {
    const float max = sampler_max_logit(c, n);
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        c[i].p = c[i].logit == max ? 1.0f : expf(c[i].logit - max);
        sum += c[i].p;
    }
    const double inv = 1.0 / sum; // sum >= 1: the maximum contributes 1
    for (int i = 0; i < n; i++) c[i].p = (float)(c[i].p * inv);
}

// Keeps the smallest best-first prefix whose probability reaches top_p (at least one token). Unsorted input
// is not fully sorted up front: the best 256, then 2048, ... are selected until their mass reaches top_p,
// since for a peaked distribution a few hundred tokens out of 100k+ usually carry it.
static int sampler_apply_top_p(sampler_candidate *c, int n, bool *sorted, float top_p) {
    sampler_softmax(c, n);
    const double target = (double)top_p - SAMPLER_TOP_P_SLACK;
    int m = *sorted ? n : INF_MIN(n, 256);
    for (;;) {
        if (!*sorted) {
            if (m >= n / 2) {
                m = n;
                sampler_sort(c, n);
                *sorted = true;
            } else {
                sampler_select_top(c, n, m);
            }
        }
        double cum = 0.0;
        for (int i = 0; i < m; i++) {
            cum += c[i].p;
            if (cum >= target) {
                *sorted = true;
                return i + 1;
            }
        }
        if (m == n) return n; // rounding left the total just under top_p: keep everything
        m = m > n / 8 ? n : m * 8;
    }
}

// Keeps the tokens with p >= min_p * p_max, compared as logits (logit >= max + log(min_p)) like llama.cpp.
// Order is preserved; the best token always survives.
static int sampler_apply_min_p(sampler_candidate *c, int n, bool sorted, float min_p) {
    const float threshold = (sorted ? c[0].logit : sampler_max_logit(c, n)) + logf(min_p);
    int kept = 0;
    for (int i = 0; i < n; i++)
        if (c[i].logit >= threshold) c[kept++] = c[i];
    assert(kept >= 1);
    return kept;
}

int sampler_filter_candidates(inf_sampler *smp, const float *logits, const uint8_t *banned,
                              const sampler_candidate **out) {
    const inf_sampler_params *p = &smp->params;
    assert(p->temperature > 0.0f);
    sampler_candidate *c = smp->cand;
    int n = 0;
    for (int i = 0; i < smp->n_vocab; i++) {
        if ((banned && banned[i]) || isnan(logits[i])) continue;
        float l = smp->counts ? sampler_penalize_logit(p, logits[i], smp->counts[i]) : logits[i];
        c[n++] = (sampler_candidate){.id = i, .logit = l, .p = 0.0f};
    }
    *out = c;
    if (n == 0) return 0;

    bool sorted = false;
    if (p->top_k > 0 && p->top_k < n) {
        sampler_select_top(c, n, p->top_k);
        n = p->top_k;
        sorted = true;
    }
    if (p->top_p < 1.0f && n > 1) n = sampler_apply_top_p(c, n, &sorted, p->top_p);
    if (p->min_p > 0.0f && n > 1) n = sampler_apply_min_p(c, n, sorted, p->min_p);
    for (int i = 0; i < n; i++) c[i].logit /= p->temperature;
    sampler_softmax(c, n);
    return n;
}

// Argmax of the penalised logits over the tokens not banned; ties go to the lower id; -1 if none.
static inf_token sampler_pick_greedy(const inf_sampler *smp, const float *logits, const uint8_t *banned) {
    inf_token best = -1;
    float best_logit = 0.0f;
    for (int i = 0; i < smp->n_vocab; i++) {
        if ((banned && banned[i]) || isnan(logits[i])) continue;
        float l = smp->counts ? sampler_penalize_logit(&smp->params, logits[i], smp->counts[i]) : logits[i];
        if (best < 0 || l > best_logit) {
            best = i;
            best_logit = l;
        }
    }
    return best;
}

inf_token inf_sampler_sample(inf_sampler *smp, const float *logits, const uint8_t *banned) {
    assert(smp && logits);
    if (smp->params.temperature <= 0.0f) return sampler_pick_greedy(smp, logits, banned);

    const sampler_candidate *c;
    int n = sampler_filter_candidates(smp, logits, banned, &c);
    // Draw even when the choice is forced, so the generator's position depends only on the number of
    // sampling calls, not on the logits.
    double u = sampler_rng_uniform(smp);
    if (n == 0) return -1;
    double cum = 0.0;
    for (int i = 0; i < n; i++) {
        cum += c[i].p;
        if (u < cum) return c[i].id;
    }
    // The float probabilities summed just under u: take the last token that has any probability.
    for (int i = n - 1; i > 0; i--)
        if (c[i].p > 0.0f) return c[i].id;
    return c[0].id;
}
