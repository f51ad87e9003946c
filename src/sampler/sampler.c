// sampler.c: token sampling with llama.cpp's default chain: penalties (repeat, frequency, presence over the
// last repeat_last_n accepted tokens), top-k, top-p, min-p, temperature, then a draw from the renormalised
// distribution; greedy argmax when temperature <= 0.
//
// Deliberately left out: mirostat, typical-p, DRY, XTC, top-n-sigma, grammars and logit biases (callers ban
// tokens through the banned[] mask instead), and llama.cpp's min_keep (always 1 here). The generator is our
// own xoshiro256** seeded through splitmix64, so sampled (non-greedy) sequences are reproducible run to run
// but are not the ones llama.cpp's mt19937 would draw.
//
// Speed: a call does one pass over the logits. The tokens whose logit is not the raw one (banned tokens and,
// with penalties, those in the penalty window: the "special" ids) are collected and sorted first; the
// vocabulary between them is scanned in blocks with no per-token branches (greedy: a running maximum per
// lane; top-k: a block is looked at only when some logit in it beats the heap's worst). The result is
// exactly the reference chain's (sampler_sample_ref: every candidate built, then filtered), which the unit
// test checks on random logits; calls with too many special ids, or where top-k does not apply, take the
// reference path.
//
// Memory: every buffer is sized at init (candidates and counts per vocabulary entry, one ring slot per
// window token, the special-id list); sample/accept/reset never allocate.
#include "sampler/sampler_int.h"

#include "core/core.h"

#include <math.h>
#include <string.h>

#define SAMPLER_LANES 16 // floats per step of the vector loops: four vectors of 4, a cache line
#define SAMPLER_BLOCK 64 // logits per block of the top-k bound

struct inf_sampler {
    inf_sampler_params params;
    int n_vocab;
    sampler_candidate *cand; // (n_vocab) scratch for the chain, rebuilt on every sample
    uint32_t *counts;        // (n_vocab) occurrences of each token in the window; NULL when penalties are off
    inf_token *ring;         // (window) last accepted tokens; once full, ring[ring_head] is the oldest.
                             // NULL unless window > 0
    int window;              // > 0: ring size; -1: whole history (counts only, never evicted)
    int ring_len, ring_head;
    inf_token *seen;         // (SAMPLER_MAX_SPECIAL) window -1 only: distinct accepted tokens, in order
    int n_seen;              // may pass SAMPLER_MAX_SPECIAL (then the list is incomplete: reference path)
    inf_token *special;      // (SAMPLER_MAX_SPECIAL) scratch: sorted distinct ids not taking their raw logit
    float *bmax;             // (8 * (n_vocab / SAMPLER_BLOCK) + 1) top-k scratch: group maxima, then a heap
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
    smp->special = inf_malloc_array(SAMPLER_MAX_SPECIAL, sizeof *smp->special);
    smp->bmax = inf_malloc_array(8 * (size_t)(n_vocab / SAMPLER_BLOCK) + 1, sizeof *smp->bmax);
    bool ok = smp->cand != NULL && smp->special != NULL && smp->bmax != NULL;
    if (ok && sampler_penalties_active(params)) {
        smp->window = params->repeat_last_n;
        smp->counts = inf_calloc((size_t)n_vocab, sizeof *smp->counts);
        ok = smp->counts != NULL;
        if (ok && smp->window > 0) {
            smp->ring = inf_malloc_array((size_t)smp->window, sizeof *smp->ring);
            ok = smp->ring != NULL;
        } else if (ok) {
            smp->seen = inf_malloc_array(SAMPLER_MAX_SPECIAL, sizeof *smp->seen);
            ok = smp->seen != NULL;
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
    free(smp->seen);
    free(smp->special);
    free(smp->bmax);
    free(smp);
}

void inf_sampler_reset(inf_sampler *smp) {
    assert(smp);
    smp->ring_len = 0;
    smp->ring_head = 0;
    smp->n_seen = 0;
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
        if (smp->counts[token] == 0) {
            if (smp->n_seen < SAMPLER_MAX_SPECIAL) smp->seen[smp->n_seen] = token;
            if (smp->n_seen <= SAMPLER_MAX_SPECIAL) smp->n_seen++; // one past the cap marks "incomplete"
        }
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

// The stages after top-k, on c[0..n) (sorted best first when `sorted`): top-p, min-p, temperature, softmax.
static int sampler_filter_rest(const inf_sampler_params *p, sampler_candidate *c, int n, bool sorted) {
    if (p->top_p < 1.0f && n > 1) n = sampler_apply_top_p(c, n, &sorted, p->top_p);
    if (p->min_p > 0.0f && n > 1) n = sampler_apply_min_p(c, n, sorted, p->min_p);
    for (int i = 0; i < n; i++) c[i].logit /= p->temperature;
    sampler_softmax(c, n);
    return n;
}

int sampler_filter_candidates_ref(inf_sampler *smp, const float *logits, const uint8_t *banned,
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
    return sampler_filter_rest(p, c, n, sorted);
}

// ---------------------------------------------------------------------------------------------------------
// The one-pass paths. Ids are visited in ascending order: the stretches between special ids in blocks, the
// special ids one by one with their own logit. Ascending order is what makes a plain "greater than" test
// exact under the total order: an equal logit met later always has the higher id, so it never wins.
// ---------------------------------------------------------------------------------------------------------

// GCC/clang vector extensions: SSE2 on any x86-64, NEON on arm64, plain code elsewhere; no intrinsics and
// no per-ISA files. A comparison gives -1 (true) or 0 per lane.
typedef float sampler_v4f __attribute__((vector_size(16)));
typedef int32_t sampler_v4i __attribute__((vector_size(16)));

static sampler_v4f sampler_v4f_load(const float *x) {
    sampler_v4f v;
    memcpy(&v, x, sizeof v); // unaligned load
    return v;
}

static bool sampler_v4i_any(sampler_v4i m) { return (m[0] | m[1] | m[2] | m[3]) != 0; }

static int sampler_int_cmp(const void *pa, const void *pb) {
    inf_token a = *(const inf_token *)pa, b = *(const inf_token *)pb;
    return (a > b) - (a < b);
}

// Fills smp->special with the sorted distinct ids whose logit is not the raw one: banned ids and, with
// penalties, ids accepted within the window. Returns their count, or -1 when there are more than
// SAMPLER_MAX_SPECIAL (the caller then takes the reference path).
static int sampler_collect_special(inf_sampler *smp, const uint8_t *banned) {
    inf_token *sp = smp->special;
    int n = 0;
    if (banned) {
        // Bans are few (end-of-generation ids): test 64 mask bytes at a time.
        int i = 0;
        for (; i + 64 <= smp->n_vocab; i += 64) {
            uint64_t w[8];
            memcpy(w, banned + i, sizeof w);
            if (!(w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7])) continue;
            for (int j = i; j < i + 64; j++) {
                if (!banned[j]) continue;
                if (n == SAMPLER_MAX_SPECIAL) return -1;
                sp[n++] = j;
            }
        }
        for (; i < smp->n_vocab; i++) {
            if (!banned[i]) continue;
            if (n == SAMPLER_MAX_SPECIAL) return -1;
            sp[n++] = i;
        }
    }
    if (!smp->counts) return n; // the scan above is already sorted
    const inf_token *hist = smp->window > 0 ? smp->ring : smp->seen;
    int n_hist = smp->window > 0 ? smp->ring_len : smp->n_seen;
    if (n_hist > SAMPLER_MAX_SPECIAL - n) return -1;
    memcpy(sp + n, hist, (size_t)n_hist * sizeof *sp);
    n += n_hist;
    qsort(sp, (size_t)n, sizeof *sp, sampler_int_cmp);
    int w = 0;
    for (int i = 0; i < n; i++)
        if (w == 0 || sp[i] != sp[w - 1]) sp[w++] = sp[i];
    return w;
}

// The logit a special id takes into the chain, or NaN when it is out (banned, or a NaN logit).
static float sampler_special_logit(const inf_sampler *smp, const float *logits, const uint8_t *banned,
                                   inf_token id) {
    if ((banned && banned[id]) || isnan(logits[id])) return NAN;
    return smp->counts ? sampler_penalize_logit(&smp->params, logits[id], smp->counts[id]) : logits[id];
}

// v where v > m, else m (so m where v is NaN): the running maximum that skips NaN. This is exactly SSE's
// maxps(v, m), one instruction; other targets get the same select from three bit operations.
static sampler_v4f sampler_v4f_max(sampler_v4f v, sampler_v4f m) {
#if defined(__SSE__)
    return __builtin_ia32_maxps(v, m);
#else
    sampler_v4i gt = v > m;
    return (sampler_v4f)(((sampler_v4i)v & gt) | ((sampler_v4i)m & ~gt));
#endif
}

// First index of the largest non-NaN value of x[lo, hi), or -1 when all are NaN (or the range is empty).
// Two passes with no branches per value: the maximum (16 lanes), then the first block of 16 holding it.
static int sampler_range_argmax(const float *x, int lo, int hi) {
    const sampler_v4f ninf = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    sampler_v4f m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;
    int i = lo;
    for (; i + SAMPLER_LANES <= hi; i += SAMPLER_LANES) {
        m0 = sampler_v4f_max(sampler_v4f_load(x + i), m0);
        m1 = sampler_v4f_max(sampler_v4f_load(x + i + 4), m1);
        m2 = sampler_v4f_max(sampler_v4f_load(x + i + 8), m2);
        m3 = sampler_v4f_max(sampler_v4f_load(x + i + 12), m3);
    }
    m0 = sampler_v4f_max(sampler_v4f_max(m0, m1), sampler_v4f_max(m2, m3));
    float best = -INFINITY;
    for (int j = 0; j < 4; j++)
        if (m0[j] > best) best = m0[j];
    for (int k = i; k < hi; k++)
        if (x[k] > best) best = x[k];
    // The first value equal to it (NaN never is); when nothing is above -inf, the first -inf, if any.
    i = lo;
    for (; i + SAMPLER_LANES <= hi; i += SAMPLER_LANES) {
        sampler_v4i eq = (sampler_v4f_load(x + i) == best) | (sampler_v4f_load(x + i + 4) == best) |
                         (sampler_v4f_load(x + i + 8) == best) | (sampler_v4f_load(x + i + 12) == best);
        if (sampler_v4i_any(eq)) break;
    }
    for (; i < hi; i++)
        if (x[i] == best) return i;
    return -1;
}

// Argmax of the penalised logits over the tokens not banned; ties go to the lower id; -1 if none.
static inf_token sampler_pick_greedy_fast(inf_sampler *smp, const float *logits, const uint8_t *banned, int n_sp) {
    inf_token best = -1;
    float best_logit = 0.0f;
    int lo = 0;
    for (int s = 0; s <= n_sp; s++) {
        int hi = s < n_sp ? smp->special[s] : smp->n_vocab;
        int i = sampler_range_argmax(logits, lo, hi);
        if (i >= 0 && (best < 0 || logits[i] > best_logit)) best = i, best_logit = logits[i];
        if (s == n_sp) break;
        float l = sampler_special_logit(smp, logits, banned, hi);
        if (!isnan(l) && (best < 0 || l > best_logit)) best = hi, best_logit = l;
        lo = hi + 1;
    }
    return best;
}

// Offers candidate (id, l) to the bounded heap c[0..k) (root: the worst) while it fills, then against its
// root. *n_heap counts the candidates held (k once full).
static void sampler_heap_offer(sampler_candidate *c, int k, int *n_heap, inf_token id, float l) {
    if (*n_heap < k) {
        c[(*n_heap)++] = (sampler_candidate){.id = id, .logit = l, .p = 0.0f};
        if (*n_heap == k)
            for (int i = k / 2 - 1; i >= 0; i--) sampler_heap_sift_down(c, k, i);
        return;
    }
    if (!(l > c[0].logit)) return; // ascending ids: an equal logit loses; NaN never gets here
    c[0] = (sampler_candidate){.id = id, .logit = l, .p = 0.0f};
    sampler_heap_sift_down(c, k, 0);
}

// The k-th largest of the non-NaN values v[0..n), or -inf when there are fewer than k (a min-heap of k in
// scratch[0..k)).
static float sampler_kth_largest(const float *v, int n, int k, float *scratch) {
    int h = 0;
    for (int i = 0; i < n; i++) {
        float x = v[i];
        if (isnan(x)) continue;
        if (h < k) {
            int j = h++; // sift up
            while (j > 0 && scratch[(j - 1) / 2] > x) {
                scratch[j] = scratch[(j - 1) / 2];
                j = (j - 1) / 2;
            }
            scratch[j] = x;
            continue;
        }
        if (!(x > scratch[0])) continue;
        int j = 0; // replace the root, sift down
        for (;;) {
            int l = 2 * j + 1, r = l + 1, m = j;
            float mv = x;
            if (l < k && scratch[l] < mv) m = l, mv = scratch[l];
            if (r < k && scratch[r] < mv) m = r, mv = scratch[r];
            if (m == j) break;
            scratch[j] = scratch[m];
            j = m;
        }
        scratch[j] = x;
    }
    return h < k ? -INFINITY : scratch[0];
}

// Top-k straight from the logits, then the rest of the chain. Returns -1 when top-k would not apply (k at
// least the number of candidates): the reference path then runs the chain without it.
//
// Pass 1 splits every block of SAMPLER_BLOCK logits into 4 groups (the vector lanes: positions modulo 4),
// keeps each group's maximum and counts NaN. The k-th largest group maximum over blocks without special
// ids, T, bounds the answer from below: k disjoint groups each hold a candidate >= T, so the k-th best
// candidate is >= T and nothing below T can be in the top k. Pass 2 offers the candidates >= T to a bounded
// heap in id order, looking only into blocks with a group maximum that reaches T (and, once the heap is
// full, its worst) and into blocks holding special ids. The heap ends with exactly the k best under the
// total order; sorting them gives what the reference's selection gives.
// Offers the raw logits x[lo, hi) that are >= T to the heap, in id order; stretches of 16 where none
// reaches T (or, once the heap is full, its worst, which is >= T) are passed over by one vector test.
static void sampler_offer_range(const float *x, int lo, int hi, float T, sampler_candidate *c, int k,
                                int *n_heap) {
    int j = lo;
    for (; j + 16 <= hi; j += 16) {
        const float t = *n_heap < k ? T : c[0].logit;
        sampler_v4f v0 = sampler_v4f_load(x + j), v1 = sampler_v4f_load(x + j + 4);
        sampler_v4f v2 = sampler_v4f_load(x + j + 8), v3 = sampler_v4f_load(x + j + 12);
        if (!sampler_v4i_any((v0 >= t) | (v1 >= t) | (v2 >= t) | (v3 >= t))) continue;
        for (int q = j; q < j + 16; q++)
            if (x[q] >= T) sampler_heap_offer(c, k, n_heap, q, x[q]);
    }
    for (; j < hi; j++)
        if (x[j] >= T) sampler_heap_offer(c, k, n_heap, j, x[j]);
}

static int sampler_filter_top_k_fast(inf_sampler *smp, const float *x, const uint8_t *banned, int n_sp) {
    const inf_sampler_params *p = &smp->params;
    const int k = p->top_k, V = smp->n_vocab, nb = V / SAMPLER_BLOCK;
    const inf_token *sp = smp->special;
    float *bmax = smp->bmax;
    sampler_candidate *c = smp->cand;

    const sampler_v4f ninf = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    sampler_v4i nan4 = {0, 0, 0, 0};
    for (int b = 0; b < nb; b++) {
        const float *xb = x + (size_t)b * SAMPLER_BLOCK;
        sampler_v4f m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;
        for (int q = 0; q < SAMPLER_BLOCK; q += 16) {
            sampler_v4f v0 = sampler_v4f_load(xb + q), v1 = sampler_v4f_load(xb + q + 4);
            sampler_v4f v2 = sampler_v4f_load(xb + q + 8), v3 = sampler_v4f_load(xb + q + 12);
            m0 = sampler_v4f_max(v0, m0);
            m1 = sampler_v4f_max(v1, m1);
            m2 = sampler_v4f_max(v2, m2);
            m3 = sampler_v4f_max(v3, m3);
            nan4 += (v0 != v0) + (v1 != v1) + (v2 != v2) + (v3 != v3); // -1 per NaN
        }
        sampler_v4f m = sampler_v4f_max(sampler_v4f_max(m0, m1), sampler_v4f_max(m2, m3));
        memcpy(bmax + 4 * b, &m, sizeof m);
    }
    int n_nan = -(nan4[0] + nan4[1] + nan4[2] + nan4[3]);
    for (int i = nb * SAMPLER_BLOCK; i < V; i++) n_nan += isnan(x[i]);
    int n_valid = V - n_nan;
    for (int s = 0; s < n_sp; s++) {
        if (sp[s] < nb * SAMPLER_BLOCK) // left out of T; always visited
            for (int j = 0; j < 4; j++) bmax[4 * (sp[s] / SAMPLER_BLOCK) + j] = NAN;
        if (banned && banned[sp[s]] && !isnan(x[sp[s]])) n_valid--;
    }
    if (n_valid <= k) return -1;
    const float T = k <= 4 * nb ? sampler_kth_largest(bmax, 4 * nb, k, smp->bmax + 4 * nb) : -INFINITY;

    int n_heap = 0, s = 0;
    for (int b = 0; b <= nb; b++) {
        const int lo = b * SAMPLER_BLOCK, hi = b < nb ? lo + SAMPLER_BLOCK : V;
        if (lo >= hi) break;
        if (s < n_sp && sp[s] < hi) {
            // A block with special ids: the stretches between them, then each on its own.
            int j = lo;
            for (; s < n_sp && sp[s] < hi; s++) {
                sampler_offer_range(x, j, sp[s], T, c, k, &n_heap);
                float l = sampler_special_logit(smp, x, banned, sp[s]);
                if (l >= T) sampler_heap_offer(c, k, &n_heap, sp[s], l); // false for NaN
                j = sp[s] + 1;
            }
            sampler_offer_range(x, j, hi, T, c, k, &n_heap);
            continue;
        }
        if (b < nb) {
            const float t = n_heap < k ? T : c[0].logit;
            if (!sampler_v4i_any(sampler_v4f_load(bmax + 4 * b) >= t)) continue;
        }
        sampler_offer_range(x, lo, hi, T, c, k, &n_heap);
    }
    assert(n_heap == k);
    sampler_sort(c, k);
    return sampler_filter_rest(p, c, k, true);
}

int sampler_filter_candidates(inf_sampler *smp, const float *logits, const uint8_t *banned,
                              const sampler_candidate **out) {
    const inf_sampler_params *p = &smp->params;
    assert(p->temperature > 0.0f);
    *out = smp->cand;
    if (p->top_k > 0 && p->top_k < smp->n_vocab) {
        int n_sp = sampler_collect_special(smp, banned);
        if (n_sp >= 0) {
            int n = sampler_filter_top_k_fast(smp, logits, banned, n_sp);
            if (n >= 0) return n;
        }
    }
    return sampler_filter_candidates_ref(smp, logits, banned, out);
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

// The draw from the filtered candidates c[0..n).
static inf_token sampler_draw(inf_sampler *smp, const sampler_candidate *c, int n) {
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

inf_token inf_sampler_sample(inf_sampler *smp, const float *logits, const uint8_t *banned) {
    assert(smp && logits);
    if (smp->params.temperature <= 0.0f) {
        int n_sp = sampler_collect_special(smp, banned);
        if (n_sp >= 0) return sampler_pick_greedy_fast(smp, logits, banned, n_sp);
        return sampler_pick_greedy(smp, logits, banned);
    }
    const sampler_candidate *c;
    int n = sampler_filter_candidates(smp, logits, banned, &c);
    return sampler_draw(smp, c, n);
}

inf_token sampler_sample_ref(inf_sampler *smp, const float *logits, const uint8_t *banned) {
    assert(smp && logits);
    if (smp->params.temperature <= 0.0f) return sampler_pick_greedy(smp, logits, banned);
    const sampler_candidate *c;
    int n = sampler_filter_candidates_ref(smp, logits, banned, &c);
    return sampler_draw(smp, c, n);
}
