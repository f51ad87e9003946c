// engine_int.h: the engine's limits and the session calls it uses that the public header does not declare
// yet. Shared only by runtime/engine.c and tests/unit/test_engine.c; not part of the API.
#ifndef INFERNO_ENGINE_INT_H
#define INFERNO_ENGINE_INT_H

#include "inferno.h"

#define ENGINE_MAX_SEQ 4096          // the session's own cap on n_seq_max
#define ENGINE_MAX_QUEUE (1 << 16)   // most waiting requests an engine may be configured for
#define ENGINE_MAX_TOP_LOGPROBS 20   // n_top_logprobs range is [0, 20]
#define ENGINE_MAX_STOPS 16          // stop strings per request (the stop matcher's own limit)
#define ENGINE_DEFAULT_CTX_CAP 8192  // n_ctx 0: n_seq_max x training context, at most max(this, training)

// Session embeddings (defined in runtime/session.c): with embeddings on, every token that asks for logits
// also keeps its final-norm hidden state, readable by batch index like the logits (NULL when off or when
// that token asked for none). Valid until the next decode.
void inf_session_set_embeddings(inf_session *s, bool on);
const float *inf_session_embedding(const inf_session *s, int i);

#endif // INFERNO_ENGINE_INT_H
