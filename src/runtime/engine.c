// engine.c: the serving engine. One scheduler thread per engine runs many requests at once with continuous
// batching: every forward step holds each running sequence's next token plus chunks of pending prompts
// (chunked prefill), cut so the step has at most n_batch tokens, so concurrent requests share the weight
// reads. Requests wait in a FIFO queue for a sequence slot and for the KV cells of their whole prompt.
//
// Deliberately left out: prefix caching (sequences never share cells), preemption or swapping (a sequence
// that runs out of cells is finished with LENGTH instead), priorities, speculative decoding, and logits
// beyond the chosen token's log-probability and its top alternatives.
//
// Threads: submit, cancel and get_stats take the mutex. The session, stop matchers, the batch arrays and
// every callback belong to the scheduler thread. Samplers too, except while a step's tokens are chosen:
// then up to ENGINE_MAX_HELPERS helper threads take some of the step's requests (each request's sampler and
// logits row on one thread at a time; see engine_sample_all) and the scheduler waits for them before it
// reports anything. Callbacks never run with the mutex held, so they may call submit, cancel and get_stats
// (not inf_engine_free, which joins the threads).
//
// Context: the pool has n_ctx cells; one sequence holds at most n_ctx_seq = min(n_ctx, training context)
// positions, since positions past the training context are not what the model was trained for.
//
// KV cells: a request leaves the queue only when the free cells, less those reserved for prompts already
// admitted but not yet prefilled, cover its whole prompt. Prefill chunks therefore never wait for cells, and
// two half-prefilled prompts can never hold each other up. Decode tokens take unreserved cells; when too few
// are left, the decoding sequence holding the most cells is finished with LENGTH (context limit) and its
// cells go back to the pool, until the others fit.
//
// Memory: per request, what submit allocates (prompt copy, sampler, stop matcher, embedding sums); per
// engine, the batch arrays (n_batch), the slot table and the step's sampling list (n_seq_max) and the done
// list (n_seq_max + max_queue). A step allocates nothing here; the session grows its logits rows up to
// n_batch once.
//
// Time: the scheduler's time is counted by part (inf_engine_stats): the forward pass, sampling, output
// (detokenizing, stop strings, callbacks) and the rest, so that the work outside the forward pass, which
// caps what batching gains on a fast GPU, can be watched (/metrics shows it).
#include "runtime/engine_int.h"

#include "core/core.h"

#include <math.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

typedef enum { REQ_QUEUED, REQ_PREFILL, REQ_DECODE } engine_req_state;

// What the end of a step does with a request that had tokens in it.
enum { ENGINE_ACT_NONE, ENGINE_ACT_SAMPLE, ENGINE_ACT_EMBEDDING, ENGINE_ACT_LENGTH };

typedef struct engine_req {
    uint64_t id;
    inf_request r;     // the caller's request; r.prompt and r.stops are not read after submit
    inf_token *prompt; // (n_prompt) our copy
    int n_prompt;
    inf_sampler *smp;       // generation requests only
    inf_stop_matcher *stop; // generation requests only
    double *emb_sum;        // (n_embd) embeddings requests: sum of the prompt's final-norm hidden states
    float *emb;             // (n_embd) embeddings requests: the pooled, normalized result
    engine_req_state state;
    int seq;              // sequence id (slot), -1 while queued
    int n_past;           // positions of the sequence in the KV cache
    int n_gen;            // tokens generated (EOG not counted)
    inf_token pending;    // REQ_DECODE: sampled token still to be decoded, at position n_past
    int b_first, b_count; // this request's tokens in the current step (b_count 0: none)
    // This step's ending, set by the scheduler after the forward pass. ENGINE_ACT_SAMPLE: s_logits is the
    // row to sample from, and the thread that samples it fills s_tok, s_lp and the alternatives.
    uint8_t s_action;
    const float *s_logits;
    inf_token s_tok;
    float s_lp;
    int s_n_top;
    inf_token top_ids[ENGINE_MAX_TOP_LOGPROBS];
    float top_lp[ENGINE_MAX_TOP_LOGPROBS];
    bool cancelled;       // set by inf_engine_cancel; read and written under the mutex only
    bool done;            // finished; waits in the done list for on_done
    bool stop_matched;    // a stop string ended it: the held text is the stop string, never shown
    double t_submit, t_sched, t_first, t_done;
    inf_finish_reason finish;
    char error[256];
    struct engine_req *next; // queue link
} engine_req;

struct inf_engine {
    inf_model *model;
    inf_session *sess;
    int n_ctx, n_batch, n_seq_max, max_queue;
    int n_ctx_seq; // most positions of one sequence: min(n_ctx, the model's training context)
    int n_vocab, n_embd;

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv; // signalled on submit, cancel and shutdown

    // Under mu. The scheduler is the only writer of active/n_active (always under mu), so it may read them
    // without the lock.
    bool stopping;
    uint64_t next_id;
    engine_req *q_head, *q_tail; // requests waiting for a slot, oldest first
    int n_queued;
    engine_req **active; // (n_seq_max) running requests in admission order
    int n_active;
    inf_engine_stats stats; // published by the scheduler at the start and end of each step

    // Scheduler thread only.
    bool *seq_used;      // (n_seq_max) sequence ids held by running requests
    uint8_t *banned_eog; // (n_vocab) end-of-generation tokens, banned for ignore_eos requests
    char *piece;         // (piece_cap) one token's text; piece_cap is the longest in the vocabulary
    int piece_cap;
    inf_token *b_tok;       // (n_batch) the step's batch
    int32_t *b_pos, *b_seq; // (n_batch)
    int8_t *b_want;         // (n_batch)
    engine_req **done;      // (n_seq_max + max_queue) finished requests whose on_done is pending
    int n_done;
    int rr; // where the decode round robin starts when decoders outnumber n_batch
    engine_req **s_reqs; // (n_seq_max) this step's requests to sample, in admission order

    // Sampling helpers: threads that sample some of a step's requests while the scheduler samples others
    // (each request's sampler is used by one thread at a time; nothing else is shared). jobs, n_jobs,
    // next_job, jobs_done and h_stop are under hmu; a job is claimed by taking next_job.
    pthread_t helpers[ENGINE_MAX_HELPERS];
    int n_helpers;
    bool hsync_ok; // hmu and the condition variables exist
    pthread_mutex_t hmu;
    pthread_cond_t h_work, h_done;
    engine_req **jobs;
    int n_jobs, next_job, jobs_done;
    bool h_stop;
    uint64_t n_prompt_tokens, n_generated_tokens, n_steps, n_requests_done;
    // Scheduler seconds since init, by part (see inf_engine_stats): busy is every loop iteration that had
    // work, from waking to the end of its deliveries; the parts are disjoint intervals inside it, so
    // busy - parts ("other") only grows. t_iter: when the current iteration began (0 between them).
    double t_busy, t_forward, t_sample, t_output, t_iter;
};

inf_engine_params inf_engine_default_params(void) {
    inf_engine_params p = {.n_ctx = 0, .n_batch = 512, .n_seq_max = 4, .max_queue = 64, .n_threads = 0};
    return p;
}

const char *inf_finish_reason_str(inf_finish_reason r) {
    switch (r) {
    case INF_FINISH_STOP: return "stop";
    case INF_FINISH_LENGTH: return "length";
    case INF_FINISH_CANCELLED: return "cancelled";
    case INF_FINISH_TIMEOUT: return "timeout";
    case INF_FINISH_ERROR: return "error";
    }
    return "unknown";
}

const inf_model *inf_engine_model(const inf_engine *e) { return e ? e->model : NULL; }

static void engine_req_free(engine_req *q) {
    if (!q) return;
    free(q->prompt);
    inf_sampler_free(q->smp);
    inf_stop_matcher_free(q->stop);
    free(q->emb_sum);
    free(q->emb);
    free(q);
}

// ---------------------------------------------------------------------------------------------------------
// Scheduler helpers
// ---------------------------------------------------------------------------------------------------------

// Records how q ended, gives its cells back at once and puts it on the done list. q stays in the active
// table (marked done) until engine_compact_locked; the caller holds the mutex or is between lock phases.
static void engine_finish(inf_engine *e, engine_req *q, inf_finish_reason reason, const char *error) {
    assert(!q->done);
    q->done = true;
    q->finish = reason;
    q->t_done = inf_time_now();
    if (error) snprintf(q->error, sizeof q->error, "%s", error);
    if (q->seq >= 0) {
        inf_session_seq_clear(e->sess, q->seq);
        e->seq_used[q->seq] = false;
    }
    e->n_requests_done++;
    assert(e->n_done < e->n_seq_max + e->max_queue);
    e->done[e->n_done++] = q;
}

// Removes finished requests from the active table, keeping admission order. Caller holds the mutex.
static void engine_compact_locked(inf_engine *e) {
    int w = 0;
    for (int i = 0; i < e->n_active; i++)
        if (!e->active[i]->done) e->active[w++] = e->active[i];
    e->n_active = w;
}

static void engine_publish_locked(inf_engine *e) {
    inf_engine_stats *st = &e->stats;
    st->running = e->n_active;
    st->queued = e->n_queued;
    st->cells_used = inf_session_cells_used(e->sess);
    st->cells_total = e->n_ctx;
    st->prompt_tokens = e->n_prompt_tokens;
    st->generated_tokens = e->n_generated_tokens;
    st->steps = e->n_steps;
    st->requests_done = e->n_requests_done;
    st->forward_seconds = e->t_forward;
    st->sample_seconds = e->t_sample;
    st->output_seconds = e->t_output;
    double busy = e->t_busy + (e->t_iter > 0 ? inf_time_now() - e->t_iter : 0.0);
    st->other_seconds = INF_MAX(0.0, busy - e->t_forward - e->t_sample - e->t_output);
}

// Calls on_done for every finished request (first emitting text the stop matcher still holds, where that
// text is real output) and frees them. Runs without the mutex.
static void engine_deliver(inf_engine *e) {
    if (e->n_done == 0) return;
    double t0 = inf_time_now();
    for (int i = 0; i < e->n_done; i++) {
        engine_req *q = e->done[i];
        bool flush = q->stop && !q->stop_matched &&
                     (q->finish == INF_FINISH_STOP || q->finish == INF_FINISH_LENGTH ||
                      q->finish == INF_FINISH_TIMEOUT);
        if (flush) {
            const char *text;
            size_t n_text;
            inf_stop_matcher_flush(q->stop, &text, &n_text);
            if (n_text > 0 && q->r.on_token) q->r.on_token(q->r.user, -1, text, n_text, 0.0f, NULL, NULL, 0);
        }
        inf_request_result res;
        memset(&res, 0, sizeof res);
        res.finish = q->finish;
        res.n_prompt = q->n_prompt;
        res.n_generated = q->n_gen;
        res.queue_seconds = (q->t_sched > 0 ? q->t_sched : q->t_done) - q->t_submit;
        res.ttft_seconds = q->t_first > 0 ? q->t_first - q->t_submit : 0.0;
        res.total_seconds = q->t_done - q->t_submit;
        if (q->emb && q->finish == INF_FINISH_STOP) {
            res.embedding = q->emb;
            res.n_embd = e->n_embd;
        }
        memcpy(res.error, q->error, sizeof res.error);
        if (q->r.on_done) q->r.on_done(q->r.user, &res);
        engine_req_free(q);
    }
    e->n_done = 0;
    e->t_output += inf_time_now() - t0;
}

// Finishes queued and running requests that were cancelled or whose timeout passed (all of them when
// shutting down). Caller holds the mutex.
static void engine_sweep_locked(inf_engine *e, bool all) {
    double now = inf_time_now();
    engine_req *prev = NULL, *q = e->q_head;
    while (q) {
        engine_req *nx = q->next;
        bool expired = q->r.timeout_seconds > 0 && now - q->t_submit >= q->r.timeout_seconds;
        if (all || q->cancelled || expired) {
            if (prev)
                prev->next = nx;
            else
                e->q_head = nx;
            if (e->q_tail == q) e->q_tail = prev;
            e->n_queued--;
            engine_finish(e, q, all || q->cancelled ? INF_FINISH_CANCELLED : INF_FINISH_TIMEOUT, NULL);
        } else {
            prev = q;
        }
        q = nx;
    }
    for (int i = 0; i < e->n_active; i++) {
        engine_req *a = e->active[i];
        if (a->done) continue;
        bool expired = a->r.timeout_seconds > 0 && now - a->t_submit >= a->r.timeout_seconds;
        if (all || a->cancelled)
            engine_finish(e, a, INF_FINISH_CANCELLED, NULL);
        else if (expired)
            engine_finish(e, a, INF_FINISH_TIMEOUT, NULL);
    }
    engine_compact_locked(e);
}

// Cells that admitted prompts still need for their unprefilled tokens.
static int engine_reserved_cells(const inf_engine *e) {
    int r = 0;
    for (int i = 0; i < e->n_active; i++) {
        const engine_req *a = e->active[i];
        if (!a->done && a->state == REQ_PREFILL) r += a->n_prompt - a->n_past;
    }
    return r;
}

static int engine_free_cells(const inf_engine *e) { return e->n_ctx - inf_session_cells_used(e->sess); }

// Moves requests from the head of the queue into free slots while their whole prompt fits in the cells
// nobody has reserved. FIFO: a head that does not fit holds back the requests behind it, so a long prompt
// is not starved by short ones. Caller holds the mutex.
static void engine_admit_locked(inf_engine *e) {
    int avail = engine_free_cells(e) - engine_reserved_cells(e);
    assert(avail >= 0);
    while (e->q_head && e->n_active < e->n_seq_max && e->q_head->n_prompt <= avail) {
        engine_req *q = e->q_head;
        e->q_head = q->next;
        if (!e->q_head) e->q_tail = NULL;
        q->next = NULL;
        e->n_queued--;
        int seq = 0;
        while (e->seq_used[seq]) seq++;
        assert(seq < e->n_seq_max && inf_session_seq_len(e->sess, seq) == 0);
        e->seq_used[seq] = true;
        q->seq = seq;
        q->state = REQ_PREFILL;
        q->n_past = 0;
        e->active[e->n_active++] = q;
        avail -= q->n_prompt;
    }
    // With nothing running every cell is free and submit checked that each prompt fits the context, so the
    // head always gets in; otherwise the scheduler would spin on a queue it can never serve.
    assert(e->n_active > 0 || e->n_queued == 0);
}

// Log-probability of token tok under softmax(logits) at temperature 1 without penalties, and the n_top best
// tokens with theirs (best first; equal logits: lower id first), written to top_ids / top_lp; *n_found gets
// how many there are (fewer than n_top only when the vocabulary is smaller or logits are NaN).
static float engine_logprobs(int n_vocab, const float *logits, inf_token tok, int n_top, inf_token *top_ids,
                             float *top_lp, int *n_found) {
    float mx = -INFINITY;
    for (int i = 0; i < n_vocab; i++)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0.0;
    for (int i = 0; i < n_vocab; i++)
        if (logits[i] > -INFINITY) sum += exp((double)logits[i] - (double)mx); // NaN logits count as nothing
    double lse = (double)mx + log(sum);
    int n = 0;
    for (int i = 0; i < n_vocab && n_top > 0; i++) {
        float l = logits[i];
        if (!(l > -INFINITY)) continue;
        if (n == n_top && !(l > top_lp[n - 1])) continue;
        int j = n < n_top ? n++ : n - 1;
        while (j > 0 && top_lp[j - 1] < l) {
            top_lp[j] = top_lp[j - 1];
            top_ids[j] = top_ids[j - 1];
            j--;
        }
        top_lp[j] = l;
        top_ids[j] = i;
    }
    for (int j = 0; j < n; j++) top_lp[j] = (float)((double)top_lp[j] - lse);
    *n_found = n;
    return (float)((double)logits[tok] - lse);
}

// Chooses q's next token from q->s_logits into q->s_tok, with its log-probability and alternatives where
// asked (not for end-of-generation tokens, which are never reported). Touches q and read-only engine
// state only, so any thread may run it for any request of the step.
static void engine_sample_one(const inf_engine *e, engine_req *q) {
    q->s_tok = inf_sampler_sample(q->smp, q->s_logits, q->r.ignore_eos ? e->banned_eog : NULL);
    q->s_lp = NAN; // only requests that ask pay for the pass over the vocabulary
    q->s_n_top = 0;
    if (q->s_tok >= 0 && (q->r.logprobs || q->r.n_top_logprobs > 0) && !inf_token_is_eog(e->model, q->s_tok))
        q->s_lp = engine_logprobs(e->n_vocab, q->s_logits, q->s_tok, q->r.n_top_logprobs, q->top_ids, q->top_lp,
                                  &q->s_n_top);
}

static void *engine_helper_main(void *arg) {
    inf_engine *e = arg;
    pthread_mutex_lock(&e->hmu);
    for (;;) {
        while (!e->h_stop && e->next_job >= e->n_jobs) pthread_cond_wait(&e->h_work, &e->hmu);
        if (e->h_stop) break;
        engine_req *q = e->jobs[e->next_job++];
        pthread_mutex_unlock(&e->hmu);
        engine_sample_one(e, q);
        pthread_mutex_lock(&e->hmu);
        if (++e->jobs_done == e->n_jobs) pthread_cond_signal(&e->h_done);
    }
    pthread_mutex_unlock(&e->hmu);
    return NULL;
}

// Samples the n requests of reqs[] (their s_logits set). With helpers and enough requests, the helpers are
// woken (one per ENGINE_JOBS_PER_THREAD requests beyond the scheduler's share) and everyone takes jobs until
// none is left; the scheduler then waits only for the jobs already taken. A helper that wakes late finds
// nothing to do and sleeps again, so a busy machine never makes the scheduler wait for a thread to start.
static void engine_sample_all(inf_engine *e, engine_req **reqs, int n) {
    int wake = INF_MIN(e->n_helpers, n / ENGINE_JOBS_PER_THREAD - 1);
    if (wake <= 0) {
        for (int i = 0; i < n; i++) engine_sample_one(e, reqs[i]);
        return;
    }
    pthread_mutex_lock(&e->hmu);
    e->jobs = reqs;
    e->n_jobs = n;
    e->next_job = 0;
    e->jobs_done = 0;
    for (int k = 0; k < wake; k++) pthread_cond_signal(&e->h_work);
    while (e->next_job < e->n_jobs) {
        engine_req *q = e->jobs[e->next_job++];
        pthread_mutex_unlock(&e->hmu);
        engine_sample_one(e, q);
        pthread_mutex_lock(&e->hmu);
        e->jobs_done++;
    }
    while (e->jobs_done < e->n_jobs) pthread_cond_wait(&e->h_done, &e->hmu);
    e->jobs = NULL;
    e->n_jobs = e->next_job = e->jobs_done = 0;
    pthread_mutex_unlock(&e->hmu);
}

// Reports q's sampled token (q->s_tok) and finishes q on EOG, a stop string or max_tokens.
static void engine_emit(inf_engine *e, engine_req *q) {
    inf_token tok = q->s_tok;
    if (q->t_first <= 0) q->t_first = inf_time_now();
    if (tok < 0) {
        engine_finish(e, q, INF_FINISH_ERROR, "no token can be sampled (every logit is banned or NaN)");
        return;
    }
    if (inf_token_is_eog(e->model, tok)) {
        engine_finish(e, q, INF_FINISH_STOP, NULL);
        return;
    }
    inf_sampler_accept(q->smp, tok);
    q->n_gen++;
    e->n_generated_tokens++;
    int np = inf_token_to_piece(e->model, tok, false, e->piece, e->piece_cap);
    assert(np <= e->piece_cap);
    const char *text;
    size_t n_text;
    bool matched = inf_stop_matcher_feed(q->stop, e->piece, (size_t)INF_MAX(np, 0), &text, &n_text);
    if (q->r.on_token) q->r.on_token(q->r.user, tok, text, n_text, q->s_lp, q->top_ids, q->top_lp, q->s_n_top);
    if (matched) {
        q->stop_matched = true;
        engine_finish(e, q, INF_FINISH_STOP, NULL);
    } else if (q->r.max_tokens >= 0 && q->n_gen >= q->r.max_tokens) {
        engine_finish(e, q, INF_FINISH_LENGTH, NULL);
    } else {
        q->pending = tok;
        q->state = REQ_DECODE;
    }
}

// Mean of the prompt's hidden states, L2-normalized, into q->emb.
static void engine_embedding_finish(inf_engine *e, engine_req *q) {
    double norm = 0.0;
    for (int j = 0; j < e->n_embd; j++) {
        double m = q->emb_sum[j] / q->n_prompt;
        q->emb_sum[j] = m;
        norm += m * m;
    }
    norm = sqrt(norm);
    for (int j = 0; j < e->n_embd; j++) q->emb[j] = (float)(norm > 0 ? q->emb_sum[j] / norm : 0.0);
}

// Finishes decoders whose next token would pass the sequence context, then those that cannot get a cell
// for it, the one holding the most cells first (ties: the newest), until the decoders of this step (at most
// dec_cap of them) fit in the cells nobody has reserved.
static void engine_reclaim_cells(inf_engine *e, int dec_cap) {
    for (int i = 0; i < e->n_active; i++) {
        engine_req *a = e->active[i];
        if (!a->done && a->state == REQ_DECODE && a->n_past >= e->n_ctx_seq)
            engine_finish(e, a, INF_FINISH_LENGTH, NULL);
    }
    int reserved = engine_reserved_cells(e);
    for (;;) {
        int n_dec = 0;
        engine_req *victim = NULL;
        for (int i = 0; i < e->n_active; i++) {
            engine_req *a = e->active[i];
            if (a->done || a->state != REQ_DECODE) continue;
            n_dec++;
            if (!victim || a->n_past >= victim->n_past) victim = a;
        }
        int avail = engine_free_cells(e) - reserved;
        assert(avail >= 0);
        if (INF_MIN(n_dec, dec_cap) <= avail) return;
        engine_finish(e, victim, INF_FINISH_LENGTH, NULL);
    }
}

// One forward step: each decoder's pending token (round robin when they outnumber the room), then prompt
// chunks in admission order in the room left; then sampling, embeddings and finishing. While prompts wait,
// decoders leave a quarter of the batch to them, so a full set of decoders cannot starve a new request.
static void engine_step(inf_engine *e) {
    bool prefill_waiting = false;
    for (int i = 0; i < e->n_active; i++) prefill_waiting |= e->active[i]->state == REQ_PREFILL;
    int dec_cap = prefill_waiting && e->n_batch >= 2 ? e->n_batch - INF_MAX(1, e->n_batch / 4) : e->n_batch;
    engine_reclaim_cells(e, dec_cap);
    for (int i = 0; i < e->n_active; i++) e->active[i]->b_count = 0;
    int n = 0, na = e->n_active;
    double now = inf_time_now();
    if (na > 0) {
        int start = e->rr % na, k = 0;
        for (; k < na && n < dec_cap; k++) {
            engine_req *a = e->active[(start + k) % na];
            if (a->done || a->state != REQ_DECODE) continue;
            a->b_first = n;
            a->b_count = 1;
            e->b_tok[n] = a->pending;
            e->b_pos[n] = a->n_past;
            e->b_seq[n] = a->seq;
            e->b_want[n] = 1;
            n++;
        }
        e->rr = (start + k) % na;
    }
    for (int i = 0; i < na && n < e->n_batch; i++) {
        engine_req *a = e->active[i];
        if (a->done || a->state != REQ_PREFILL) continue;
        int chunk = INF_MIN(a->n_prompt - a->n_past, e->n_batch - n);
        a->b_first = n;
        a->b_count = chunk;
        if (a->t_sched <= 0) a->t_sched = now;
        for (int j = 0; j < chunk; j++) {
            int p = a->n_past + j;
            e->b_tok[n] = a->prompt[p];
            e->b_pos[n] = p;
            e->b_seq[n] = a->seq;
            e->b_want[n] = a->emb ? 1 : p == a->n_prompt - 1;
            n++;
        }
    }
    if (n == 0) return; // every decoder was finished for want of cells
    inf_batch b = {
        .n_tokens = n, .tokens = e->b_tok, .pos = e->b_pos, .seq_id = e->b_seq, .want_logits = e->b_want};
    double t0 = inf_time_now();
    inf_status st = inf_session_decode(e->sess, &b);
    e->t_forward += inf_time_now() - t0;
    e->n_steps++;
    if (st != INF_OK) {
        // Not expected (cells were counted and the batch was built valid): a memory failure, most likely.
        // The decode changed nothing, so the requests of this step end with the message and others go on.
        char msg[256];
        snprintf(msg, sizeof msg, "forward step failed: %s", inf_last_error());
        inf_log(INF_LOG_ERROR, "engine: %s", msg);
        for (int i = 0; i < na; i++)
            if (!e->active[i]->done && e->active[i]->b_count > 0)
                engine_finish(e, e->active[i], INF_FINISH_ERROR, msg);
        return;
    }
    // The step's results, in three passes: bookkeeping, which says what ends each request's part of the
    // step; the sampling, spread over the helpers; then, in admission order as before, the reports and
    // finishes (callbacks run on this thread only).
    int n_smp = 0;
    for (int i = 0; i < na; i++) {
        engine_req *a = e->active[i];
        a->s_action = ENGINE_ACT_NONE;
        if (a->done || a->b_count == 0) continue;
        int last = a->b_first + a->b_count - 1;
        if (a->state == REQ_DECODE) {
            a->n_past++;
        } else {
            if (a->emb) {
                for (int t = a->b_first; t <= last; t++) {
                    const float *h = inf_session_embedding(e->sess, t);
                    assert(h);
                    for (int j = 0; j < e->n_embd; j++) a->emb_sum[j] += h[j];
                }
            }
            a->n_past += a->b_count;
            e->n_prompt_tokens += (uint64_t)a->b_count;
            if (a->n_past < a->n_prompt) continue;
            if (a->emb) {
                a->s_action = ENGINE_ACT_EMBEDDING;
                continue;
            }
            if (a->r.max_tokens == 0) {
                a->s_action = ENGINE_ACT_LENGTH;
                continue;
            }
            a->state = REQ_DECODE; // engine_emit sets pending, or finishes
        }
        a->s_action = ENGINE_ACT_SAMPLE;
        a->s_logits = inf_session_logits(e->sess, last);
        assert(a->s_logits);
        e->s_reqs[n_smp++] = a;
    }
    double t1 = inf_time_now();
    engine_sample_all(e, e->s_reqs, n_smp);
    double t2 = inf_time_now();
    e->t_sample += t2 - t1;
    for (int i = 0; i < na; i++) {
        engine_req *a = e->active[i];
        switch (a->s_action) {
        case ENGINE_ACT_SAMPLE: engine_emit(e, a); break;
        case ENGINE_ACT_EMBEDDING:
            engine_embedding_finish(e, a);
            a->t_first = inf_time_now();
            engine_finish(e, a, INF_FINISH_STOP, NULL);
            break;
        case ENGINE_ACT_LENGTH: engine_finish(e, a, INF_FINISH_LENGTH, NULL); break;
        default: break;
        }
        a->s_action = ENGINE_ACT_NONE;
    }
    e->t_output += inf_time_now() - t2;
}

static void *engine_main(void *arg) {
    inf_engine *e = arg;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->stopping && e->n_active == 0 && e->n_queued == 0) pthread_cond_wait(&e->cv, &e->mu);
        e->t_iter = inf_time_now();
        bool stop = e->stopping;
        engine_sweep_locked(e, stop);
        if (!stop) engine_admit_locked(e);
        engine_publish_locked(e);
        pthread_mutex_unlock(&e->mu);
        engine_deliver(e);
        if (stop) break;
        if (e->n_active > 0) {
            engine_step(e);
            pthread_mutex_lock(&e->mu);
            engine_compact_locked(e);
            engine_publish_locked(e);
            pthread_mutex_unlock(&e->mu);
            engine_deliver(e);
        }
        // Going to sleep: publish once more, so that an idle engine's times include its last deliveries.
        e->t_busy += inf_time_now() - e->t_iter;
        e->t_iter = 0.0;
        if (e->n_active == 0) {
            pthread_mutex_lock(&e->mu);
            engine_publish_locked(e);
            pthread_mutex_unlock(&e->mu);
        }
    }
    return NULL;
}

// ---------------------------------------------------------------------------------------------------------
// Public entry points
// ---------------------------------------------------------------------------------------------------------

inf_status inf_engine_init(inf_model *model, const inf_engine_params *params, inf_engine **out) {
    if (!out) return inf_fail(INF_ERR_INVALID_ARG, "engine: out pointer is NULL");
    *out = NULL;
    if (!model) return inf_fail(INF_ERR_INVALID_ARG, "engine: model is NULL");
    inf_engine_params p = params ? *params : inf_engine_default_params();
    if (p.n_seq_max < 1 || p.n_seq_max > ENGINE_MAX_SEQ)
        return inf_fail(INF_ERR_INVALID_ARG, "engine: n_seq_max %d out of range [1, %d]", p.n_seq_max,
                        ENGINE_MAX_SEQ);
    if (p.max_queue < 0 || p.max_queue > ENGINE_MAX_QUEUE)
        return inf_fail(INF_ERR_INVALID_ARG, "engine: max_queue %d out of range [0, %d]", p.max_queue,
                        ENGINE_MAX_QUEUE);
    if (p.n_batch < 1 || p.n_batch > (1 << 16))
        return inf_fail(INF_ERR_INVALID_ARG, "engine: n_batch %d out of range [1, 65536]", p.n_batch);
    if (p.n_ctx < 0 || p.n_threads < 0)
        return inf_fail(INF_ERR_INVALID_ARG, "engine: negative n_ctx %d or n_threads %d", p.n_ctx,
                        p.n_threads);
    inf_model_info info;
    inf_model_get_info(model, &info);
    if (p.n_ctx == 0) {
        int64_t want = (int64_t)p.n_seq_max * info.n_ctx_train;
        p.n_ctx = (int)INF_MIN(want, (int64_t)INF_MAX(info.n_ctx_train, ENGINE_DEFAULT_CTX_CAP));
    }
    p.n_batch = INF_MIN(p.n_batch, p.n_ctx);

    inf_engine *e = inf_calloc(1, sizeof *e);
    if (!e) return inf_fail(INF_ERR_NOMEM, "engine: out of memory");
    e->model = model;
    e->n_ctx = p.n_ctx;
    e->n_batch = p.n_batch;
    e->n_seq_max = p.n_seq_max;
    e->max_queue = p.max_queue;
    e->n_ctx_seq = INF_MIN(p.n_ctx, info.n_ctx_train);
    e->n_vocab = info.n_vocab;
    e->n_embd = info.n_embd;
    e->next_id = 1;
    inf_session_params sp = {
        .n_ctx = p.n_ctx, .n_batch = p.n_batch, .n_seq_max = p.n_seq_max, .n_threads = p.n_threads};
    inf_status st = inf_session_init(model, &sp, &e->sess);
    if (st != INF_OK) {
        inf_error_prefix("engine");
        free(e);
        return st;
    }
    // Embeddings stay on: they cost one row copy per output token, and a step may mix both kinds of request.
    inf_session_set_embeddings(e->sess, true);

    e->piece_cap = 64;
    for (int t = 0; t < e->n_vocab; t++)
        e->piece_cap = INF_MAX(e->piece_cap, inf_token_to_piece(model, t, false, NULL, 0));
    size_t B = (size_t)e->n_batch;
    e->active = inf_calloc((size_t)e->n_seq_max, sizeof *e->active);
    e->seq_used = inf_calloc((size_t)e->n_seq_max, sizeof *e->seq_used);
    e->banned_eog = inf_calloc((size_t)e->n_vocab, 1);
    e->piece = inf_malloc((size_t)e->piece_cap);
    e->b_tok = inf_malloc_array(B, sizeof *e->b_tok);
    e->b_pos = inf_malloc_array(B, sizeof *e->b_pos);
    e->b_seq = inf_malloc_array(B, sizeof *e->b_seq);
    e->b_want = inf_malloc_array(B, sizeof *e->b_want);
    e->done = inf_malloc_array((size_t)e->n_seq_max + (size_t)e->max_queue, sizeof *e->done);
    e->s_reqs = inf_malloc_array((size_t)e->n_seq_max, sizeof *e->s_reqs);
    if (!e->active || !e->seq_used || !e->banned_eog || !e->piece || !e->b_tok || !e->b_pos || !e->b_seq ||
        !e->b_want || !e->done || !e->s_reqs) {
        inf_engine_free(e);
        return inf_fail(INF_ERR_NOMEM, "engine: out of memory for %d sequences and batches of %d",
                        p.n_seq_max, p.n_batch);
    }
    for (int t = 0; t < e->n_vocab; t++) e->banned_eog[t] = inf_token_is_eog(model, t);
    if (pthread_mutex_init(&e->mu, NULL) != 0 || pthread_cond_init(&e->cv, NULL) != 0) {
        inf_engine_free(e); // the thread never started, so free leaves the mutex alone
        return inf_fail(INF_ERR_INTERNAL, "engine: cannot create its mutex");
    }
    // Sampling helpers, where a step can have enough requests to share out (none is an answer too: the
    // scheduler then samples alone).
    long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    int want = INF_MIN(ENGINE_MAX_HELPERS, e->n_seq_max / ENGINE_JOBS_PER_THREAD - 1);
    want = (int)INF_MIN((long)want, n_cpu - 1);
    if (want > 0 && pthread_mutex_init(&e->hmu, NULL) == 0) {
        if (pthread_cond_init(&e->h_work, NULL) == 0) {
            if (pthread_cond_init(&e->h_done, NULL) == 0) {
                e->hsync_ok = true;
            } else {
                pthread_cond_destroy(&e->h_work);
                pthread_mutex_destroy(&e->hmu);
            }
        } else {
            pthread_mutex_destroy(&e->hmu);
        }
    }
    for (int k = 0; e->hsync_ok && k < want; k++) {
        if (pthread_create(&e->helpers[k], NULL, engine_helper_main, e) != 0) break; // fewer helpers is fine
        e->n_helpers++;
    }
    if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
        pthread_cond_destroy(&e->cv);
        pthread_mutex_destroy(&e->mu);
        inf_engine_free(e);
        return inf_fail(INF_ERR_INTERNAL, "engine: cannot start the scheduler thread");
    }
    e->thread_started = true;
    pthread_mutex_lock(&e->mu);
    engine_publish_locked(e); // before any submit, so get_stats is right from the start
    pthread_mutex_unlock(&e->mu);
    inf_log(INF_LOG_DEBUG, "engine: n_ctx %d, n_batch %d, n_seq_max %d, max_queue %d", e->n_ctx, e->n_batch,
            e->n_seq_max, e->max_queue);
    *out = e;
    return INF_OK;
}

// Stops and joins the sampling helpers (after the scheduler, which is the only one to give them work).
static void engine_helpers_stop(inf_engine *e) {
    if (!e->hsync_ok) return;
    pthread_mutex_lock(&e->hmu);
    e->h_stop = true;
    pthread_cond_broadcast(&e->h_work);
    pthread_mutex_unlock(&e->hmu);
    for (int k = 0; k < e->n_helpers; k++) pthread_join(e->helpers[k], NULL);
    e->n_helpers = 0;
    pthread_cond_destroy(&e->h_done);
    pthread_cond_destroy(&e->h_work);
    pthread_mutex_destroy(&e->hmu);
    e->hsync_ok = false;
}

void inf_engine_free(inf_engine *e) {
    if (!e) return;
    if (e->thread_started) {
        // The scheduler cancels everything queued or running (on_done for each) before it returns.
        pthread_mutex_lock(&e->mu);
        e->stopping = true;
        pthread_cond_signal(&e->cv);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->thread, NULL);
        assert(e->n_active == 0 && e->n_queued == 0 && e->n_done == 0);
        pthread_cond_destroy(&e->cv);
        pthread_mutex_destroy(&e->mu);
    }
    engine_helpers_stop(e);
    inf_session_free(e->sess);
    free(e->active);
    free(e->seq_used);
    free(e->banned_eog);
    free(e->piece);
    free(e->b_tok);
    free(e->b_pos);
    free(e->b_seq);
    free(e->b_want);
    free(e->done);
    free(e->s_reqs);
    free(e);
}

// Checks a request against the engine's limits; nothing is allocated.
static inf_status engine_request_check(const inf_engine *e, const inf_request *r) {
    if (!r->prompt || r->n_prompt <= 0)
        return inf_fail(INF_ERR_INVALID_ARG, "request: empty prompt (%d tokens)", r->n_prompt);
    if (r->n_prompt > e->n_ctx_seq)
        return inf_fail(INF_ERR_CONTEXT_FULL,
                        "request: prompt of %d tokens is longer than the context of %d tokens", r->n_prompt,
                        e->n_ctx_seq);
    for (int i = 0; i < r->n_prompt; i++)
        if (r->prompt[i] < 0 || r->prompt[i] >= e->n_vocab)
            return inf_fail(INF_ERR_INVALID_ARG,
                            "request: prompt token %d at index %d is outside the vocabulary (%d)",
                            r->prompt[i], i, e->n_vocab);
    if (r->n_top_logprobs < 0 || r->n_top_logprobs > ENGINE_MAX_TOP_LOGPROBS)
        return inf_fail(INF_ERR_INVALID_ARG, "request: n_top_logprobs %d out of range [0, %d]",
                        r->n_top_logprobs, ENGINE_MAX_TOP_LOGPROBS);
    if (r->n_stops < 0 || r->n_stops > ENGINE_MAX_STOPS)
        return inf_fail(INF_ERR_INVALID_ARG, "request: %d stop strings, at most %d allowed", r->n_stops,
                        ENGINE_MAX_STOPS);
    if (r->max_tokens < -1)
        return inf_fail(INF_ERR_INVALID_ARG, "request: max_tokens %d below -1", r->max_tokens);
    if (!(r->timeout_seconds >= 0) || isinf(r->timeout_seconds))
        return inf_fail(INF_ERR_INVALID_ARG, "request: timeout_seconds %g is not a finite number >= 0",
                        r->timeout_seconds);
    return INF_OK;
}

inf_status inf_engine_submit(inf_engine *e, const inf_request *req, uint64_t *id) {
    if (id) *id = 0;
    if (!e || !req) return inf_fail(INF_ERR_INVALID_ARG, "submit: engine or request is NULL");
    inf_status st = engine_request_check(e, req);
    if (st != INF_OK) return st;
    engine_req *q = inf_calloc(1, sizeof *q);
    if (!q) return inf_fail(INF_ERR_NOMEM, "request: out of memory");
    q->r = *req;
    q->r.prompt = NULL;
    q->r.stops = NULL;
    q->n_prompt = req->n_prompt;
    q->seq = -1;
    q->state = REQ_QUEUED;
    q->prompt = inf_malloc_array((size_t)req->n_prompt, sizeof(inf_token));
    if (!q->prompt) {
        engine_req_free(q);
        return inf_fail(INF_ERR_NOMEM, "request: out of memory for %d prompt tokens", req->n_prompt);
    }
    memcpy(q->prompt, req->prompt, (size_t)req->n_prompt * sizeof(inf_token));
    if (req->embeddings) {
        q->emb_sum = inf_calloc((size_t)e->n_embd, sizeof(double));
        q->emb = inf_calloc((size_t)e->n_embd, sizeof(float));
        if (!q->emb_sum || !q->emb) {
            engine_req_free(q);
            return inf_fail(INF_ERR_NOMEM, "request: out of memory for an embedding of %d", e->n_embd);
        }
    } else {
        st = inf_sampler_init(&req->sampling, e->n_vocab, &q->smp);
        if (st == INF_OK) st = inf_stop_matcher_init(req->stops, req->n_stops, &q->stop);
        if (st != INF_OK) {
            inf_error_prefix("request");
            engine_req_free(q);
            return st;
        }
        // The prompt is part of the penalty history, as in `inferno run` and llama.cpp.
        for (int i = 0; i < q->n_prompt; i++) inf_sampler_accept(q->smp, q->prompt[i]);
    }
    q->t_submit = inf_time_now();

    pthread_mutex_lock(&e->mu);
    int running = e->n_active, queued = e->n_queued;
    if (e->stopping || running + queued >= e->n_seq_max + e->max_queue) {
        bool stopping = e->stopping;
        pthread_mutex_unlock(&e->mu);
        engine_req_free(q);
        if (stopping) return inf_fail(INF_ERR_CLOSED, "engine: shutting down");
        return inf_fail(INF_ERR_BUSY,
                        "engine: busy: %d running and %d queued (at most %d running and %d queued)", running,
                        queued, e->n_seq_max, e->max_queue);
    }
    q->id = e->next_id++;
    if (e->q_tail)
        e->q_tail->next = q;
    else
        e->q_head = q;
    e->q_tail = q;
    e->n_queued++;
    e->stats.queued = e->n_queued;
    uint64_t qid = q->id; // q may be finished and freed by the scheduler once the mutex is released
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    if (id) *id = qid;
    return INF_OK;
}

void inf_engine_cancel(inf_engine *e, uint64_t id) {
    if (!e || id == 0) return;
    pthread_mutex_lock(&e->mu);
    bool found = false;
    for (engine_req *q = e->q_head; q && !found; q = q->next)
        if (q->id == id) found = q->cancelled = true;
    for (int i = 0; i < e->n_active && !found; i++)
        if (e->active[i]->id == id) found = e->active[i]->cancelled = true;
    if (found) pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

void inf_engine_get_stats(inf_engine *e, inf_engine_stats *st) {
    if (!st) return;
    memset(st, 0, sizeof *st);
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    *st = e->stats;
    pthread_mutex_unlock(&e->mu);
}
