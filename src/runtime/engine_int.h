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

#endif // INFERNO_ENGINE_INT_H
