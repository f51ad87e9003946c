// engine_int.h: the engine's limits. Shared only by runtime/engine.c and tests/unit/test_engine.c;
// not part of the API.
#ifndef INFERNO_ENGINE_INT_H
#define INFERNO_ENGINE_INT_H

#include "inferno.h"

#define ENGINE_MAX_SEQ 4096          // the session's own cap on n_seq_max
#define ENGINE_MAX_QUEUE (1 << 16)   // most waiting requests an engine may be configured for
#define ENGINE_MAX_TOP_LOGPROBS 20   // n_top_logprobs range is [0, 20]
#define ENGINE_MAX_STOPS 16          // stop strings per request (the stop matcher's own limit)
#define ENGINE_DEFAULT_CTX_CAP 8192  // n_ctx 0: n_seq_max x training context, at most max(this, training)
// Sampling helper threads: at most this many, and at most online CPUs - 1 (they run only between forward
// passes, when the compute threads are idle). A step wakes one helper per ENGINE_JOBS_PER_THREAD requests
// to sample beyond the scheduler's own share: a wake costs a few microseconds, a sample 5-40.
#define ENGINE_MAX_HELPERS 3
#define ENGINE_JOBS_PER_THREAD 4

#endif // INFERNO_ENGINE_INT_H
