// sampler_int.h: internals of the sampler shared between sampler.c and its unit test.
//
// The public API (include/inferno.h, "Sampler") hides these; they are exposed only so that tests can check
// each stage of the chain (penalties, top-k, top-p, min-p, temperature) on hand-computed examples instead of
// only through random draws. Nothing outside src/sampler/ and tests/unit/test_sampler.c should include this.
#ifndef INFERNO_SAMPLER_INT_H
#define INFERNO_SAMPLER_INT_H

#include "inferno.h"

#include <stdint.h>

// Largest vocabulary a sampler accepts; init fails with INF_ERR_INVALID_ARG above it (the scratch
// buffers are sized n_vocab and we refuse to let a bogus count allocate gigabytes).
#define SAMPLER_MAX_VOCAB (1 << 22)
// Largest penalty window (repeat_last_n); a window is one ring-buffer slot per token.
#define SAMPLER_MAX_WINDOW (1 << 20)
// Slack for the top-p comparison: the cumulative probability only has to reach top_p - slack, so a p that
// equals a decimal sum of probabilities (0.8 for 0.5 + 0.3) is not defeated by float rounding of p and of
// the logits. Far below any probability difference a caller could mean.
#define SAMPLER_TOP_P_SLACK 1e-6
// Most "special" ids (banned, or in the penalty window) a call takes the one-pass path with; more (a huge
// ban list, a long penalty window) fall back to the reference path.
#define SAMPLER_MAX_SPECIAL 4096

// One token still in the running: its id, its logit after the stages applied so far, and (after the
// chain has run) its probability in the renormalised distribution the draw uses.
typedef struct {
    inf_token id;
    float logit;
    float p;
} sampler_candidate;

// The penalised logit of a token seen `count` times in the penalty window (count 0: unchanged).
// llama.cpp semantics: the repeat penalty divides a positive logit and multiplies a non-positive one,
// then count * frequency_penalty + presence_penalty is subtracted in one step.
float sampler_penalize_logit(const inf_sampler_params *params, float logit, uint32_t count);

// Applies the penalties of the current history to logits[0..n_vocab) in place.
void sampler_apply_penalties(const inf_sampler *smp, float *logits);

// Times token has been accepted within the current penalty window (0 when penalties are off).
uint32_t sampler_token_count(const inf_sampler *smp, inf_token token);

// Runs the chain up to the draw for a temperature > 0: penalties, top-k, top-p, min-p, temperature, then
// the softmax that fills each candidate's p. Returns how many candidates survive (0 when every token is
// banned or NaN) and points *out at them (borrowed from the sampler, valid until its next call). The
// candidates are ordered best first whenever top-k or top-p had to sort them; otherwise by id.
// Asserts the sampler's temperature is > 0.
int sampler_filter_candidates(inf_sampler *smp, const float *logits, const uint8_t *banned,
                              const sampler_candidate **out);

// The reference paths, kept for the tests that hold the one-pass paths to them: the chain with every
// candidate built first (a full pass per stage), and inf_sampler_sample on top of it with a plain argmax
// for temperature <= 0. Same results, same generator use, bit for bit.
int sampler_filter_candidates_ref(inf_sampler *smp, const float *logits, const uint8_t *banned,
                                  const sampler_candidate **out);
inf_token sampler_sample_ref(inf_sampler *smp, const float *logits, const uint8_t *banned);

// The next uniform double in [0, 1) from the sampler's generator (53 random bits).
double sampler_rng_uniform(inf_sampler *smp);

#endif // INFERNO_SAMPLER_INT_H
