// task.c: one HTTP request's engine requests ("jobs"): submitting them, the engine callbacks that record
// their text, token log-probabilities and results, waiting for them, cancelling them, and the pieces of
// the OpenAI reply that depend only on results (usage, finish_reason, logprobs).
//
// The callbacks run on the model's scheduler thread and must not block it: they append to the job's
// buffers under the task's mutex and queue the task for the notifier thread, which wakes its waiter;
// formatting happens on the HTTP thread. A job whose text
// passes SRV_MAX_TEXT stops recording and is cancelled by the waiting HTTP thread.
// Left out: the HTTP framing (sse.c, routes_openai.c).
#include "server/server_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


srv_task *srv_task_new(srv_server *srv, srv_model *m, srv_task_kind kind, int n_jobs, bool logprobs, int n_top) {
    assert(n_jobs > 0 && n_jobs <= SRV_MAX_JOBS);
    srv_task *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->jobs = calloc((size_t)n_jobs, sizeof *t->jobs);
    if (!t->jobs) {
        free(t);
        return NULL;
    }
    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    t->srv = srv;
    t->model = m;
    t->kind = kind;
    t->refs = 1;
    t->n_jobs = n_jobs;
    t->logprobs = logprobs;
    t->n_top = n_top;
    for (int i = 0; i < n_jobs; i++) {
        t->jobs[i].task = t;
        t->jobs[i].index = i;
        srv_buf_init(&t->jobs[i].text, SRV_MAX_TEXT);
    }
    srv_buf_init(&t->out, 4 * (size_t)SRV_MAX_TEXT);
    srv_make_id(srv, kind == SRV_TASK_CHAT ? "chatcmpl" : kind == SRV_TASK_COMPLETION ? "cmpl" : "embd", t->id,
                sizeof t->id);
    t->created = (long)time(NULL);
    atomic_fetch_add(&srv->active, 1); // until srv_task_finish
    return t;
}

static void srv_task_destroy(srv_task *t) {
    for (int i = 0; i < t->n_jobs; i++) {
        srv_buf_free(&t->jobs[i].text);
        free(t->jobs[i].ev);
        free(t->jobs[i].pieces);
        free(t->jobs[i].embedding);
    }
    srv_buf_free(&t->out);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t->jobs);
    free(t);
}

// ---------------------------------------------------------------------------------------------------------
// The notifier (see server_int.h): a ring of tasks to wake, one thread.
// ---------------------------------------------------------------------------------------------------------
#define SRV_NOTIFY_CAP 4096 // tasks waiting for their wake (a task is queued at most once)

struct srv_notifier {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    srv_task *ring[SRV_NOTIFY_CAP];
    int head, count;
    bool idle; // the thread waits on cv: the next push signals it
    bool stop;
};

// Wakes t's waiters and drops the queue's reference (t may be freed here).
static void srv_notifier_wake(srv_task *t) {
    pthread_mutex_lock(&t->mu);
    t->wake_queued = false;
    pthread_mutex_unlock(&t->mu);
    pthread_cond_signal(&t->cv);
    pthread_mutex_lock(&t->mu);
    bool last = --t->refs == 0;
    pthread_mutex_unlock(&t->mu);
    if (last) srv_task_destroy(t);
}

static void *srv_notifier_main(void *arg) {
    srv_notifier *n = arg;
    srv_task *batch[64];
    pthread_mutex_lock(&n->mu);
    for (;;) {
        while (!n->stop && n->count == 0) {
            n->idle = true;
            pthread_cond_wait(&n->cv, &n->mu);
        }
        n->idle = false;
        if (n->count == 0) break; // stopping, and nothing left
        int k = 0;
        for (; k < 64 && n->count > 0; k++) {
            batch[k] = n->ring[n->head];
            n->head = (n->head + 1) % SRV_NOTIFY_CAP;
            n->count--;
        }
        pthread_mutex_unlock(&n->mu);
        for (int i = 0; i < k; i++) srv_notifier_wake(batch[i]);
        pthread_mutex_lock(&n->mu);
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

srv_notifier *srv_notifier_new(void) {
    srv_notifier *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cv, NULL);
    if (pthread_create(&n->thread, NULL, srv_notifier_main, n) != 0) {
        pthread_cond_destroy(&n->cv);
        pthread_mutex_destroy(&n->mu);
        free(n);
        return NULL;
    }
    return n;
}

void srv_notifier_free(srv_notifier *n) {
    if (!n) return;
    pthread_mutex_lock(&n->mu);
    n->stop = true;
    pthread_cond_signal(&n->cv);
    pthread_mutex_unlock(&n->mu);
    pthread_join(n->thread, NULL); // it empties the ring before it returns
    assert(n->count == 0);
    pthread_cond_destroy(&n->cv);
    pthread_mutex_destroy(&n->mu);
    free(n);
}

// Queues t (its wake_queued set and a reference taken by the caller); false when the ring is full.
bool srv_notifier_push(srv_notifier *n, srv_task *t) {
    pthread_mutex_lock(&n->mu);
    if (n->count == SRV_NOTIFY_CAP) {
        pthread_mutex_unlock(&n->mu);
        return false;
    }
    n->ring[(n->head + n->count) % SRV_NOTIFY_CAP] = t;
    n->count++;
    bool wake = n->idle;
    n->idle = false; // one signal is enough until it waits again
    pthread_mutex_unlock(&n->mu);
    if (wake) pthread_cond_signal(&n->cv);
    return true;
}

// Appends to a capped array that doubles; false when full or out of memory.
static bool srv_grow(void **arr, int *cap, int n, int max, size_t elem) {
    if (n < *cap) return true;
    if (n >= max) return false;
    int nc = *cap ? *cap * 2 : 32;
    if (nc > max) nc = max;
    void *p = realloc(*arr, elem * (size_t)nc);
    if (!p) return false;
    *arr = p;
    *cap = nc;
    return true;
}

static void srv_job_on_token(void *user, inf_token token, const char *text, size_t len, float logprob,
                             const inf_token *top_ids, const float *top_lp, int n_top) {
    srv_job *j = user;
    srv_task *t = j->task;
    pthread_mutex_lock(&t->mu);
    if (len) srv_buf_put(&j->text, text, len); // past the cap the buffer fails; the HTTP side cancels
    int ev = -1;
    if (t->logprobs && token >= 0 && srv_grow((void **)&j->ev, &j->cap_ev, j->n_ev, j->max_ev, sizeof *j->ev)) {
        srv_tok_event *e = &j->ev[ev = j->n_ev++];
        e->token = token;
        e->logprob = logprob;
        e->n_top = n_top < SRV_MAX_TOP_LOGPROBS ? n_top : SRV_MAX_TOP_LOGPROBS;
        for (int k = 0; k < e->n_top; k++) {
            e->top_ids[k] = top_ids[k];
            e->top_lp[k] = top_lp[k];
        }
    }
    if (t->stream && (len || ev >= 0)) {
        if (srv_grow((void **)&j->pieces, &j->cap_pieces, j->n_pieces, j->max_ev, sizeof *j->pieces)) {
            j->pieces[j->n_pieces++] = (srv_piece){.text_end = j->text.len, .ev = ev};
        } else if (j->n_pieces > 0) {
            // Full: the last piece takes this token's text too (its log-probability is dropped).
            j->pieces[j->n_pieces - 1].text_end = j->text.len;
        }
    }
    // The waiter's wake goes through the notifier: once per task until the notifier has woken it (a token
    // that comes meanwhile is covered by that wake), the queued reference keeping the task alive.
    srv_notifier *nt = t->srv->notifier;
    bool pending = nt && t->wake_queued, queue = nt && !t->wake_queued;
    if (queue) {
        t->wake_queued = true;
        t->refs++;
    }
    pthread_mutex_unlock(&t->mu);
    if (pending || (queue && srv_notifier_push(nt, t))) return;
    if (queue) { // the queue is full: undo, and wake the waiter from here
        pthread_mutex_lock(&t->mu);
        t->wake_queued = false;
        t->refs--; // never the last: the engine's reference lasts until on_done, which runs on this thread
        pthread_mutex_unlock(&t->mu);
    }
    // After the unlock, so that the woken reader does not wake only to wait for the mutex this thread held.
    // t stays alive: the engine's reference is dropped in on_done, which runs on this thread after this.
    pthread_cond_signal(&t->cv);
}

static void srv_job_on_done(void *user, const inf_request_result *res) {
    srv_job *j = user;
    srv_task *t = j->task;
    srv_metrics_finish(t->srv->metrics, res, t->kind == SRV_TASK_EMBEDDING);
    float *emb = NULL;
    if (res->embedding && res->n_embd > 0 && (emb = malloc(sizeof *emb * (size_t)res->n_embd)))
        memcpy(emb, res->embedding, sizeof *emb * (size_t)res->n_embd);
    pthread_mutex_lock(&t->mu);
    j->res = *res;
    j->res.embedding = NULL;
    j->embedding = emb;
    if (!emb) j->res.n_embd = 0;
    j->done = true;
    t->n_done++;
    bool last = --t->refs == 0;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    if (last) srv_task_destroy(t);
}

bool srv_task_submit(srv_task *t, int i, inf_request *req, srv_error *err) {
    assert(i >= 0 && i < t->n_jobs && !t->jobs[i].submitted);
    srv_job *j = &t->jobs[i];
    req->on_token = srv_job_on_token;
    req->on_done = srv_job_on_done;
    req->user = j;
    req->embeddings = t->kind == SRV_TASK_EMBEDDING;
    req->logprobs = t->logprobs;
    req->n_top_logprobs = t->logprobs ? t->n_top : 0;
    // One event per generated token plus the final flush; a request without a limit has the text cap.
    j->max_ev = req->max_tokens >= 0 && req->max_tokens < (1 << 20) ? req->max_tokens + 2 : 1 << 20;
    pthread_mutex_lock(&t->mu);
    t->refs++; // the engine's, until on_done
    pthread_mutex_unlock(&t->mu);
    uint64_t id = 0;
    inf_status st = inf_engine_submit(t->model->engine, req, &id);
    if (st != INF_OK) {
        pthread_mutex_lock(&t->mu);
        t->refs--; // never the last: the HTTP side holds one
        pthread_mutex_unlock(&t->mu);
        const char *msg = inf_last_error();
        if (st == INF_ERR_CLOSED) {
            srv_error_set(err, 503, "server_error", "shutting_down", NULL, "the server is shutting down");
        } else if (st == INF_ERR_BUSY) {
            srv_error_set(err, 429, "rate_limit_error", "queue_full", NULL, "the server is busy: %s", msg);
            err->retry_after = 1;
        } else if (st == INF_ERR_INVALID_ARG || st == INF_ERR_CONTEXT_FULL) {
            bool ctx = st == INF_ERR_CONTEXT_FULL;
            srv_error_set(err, 400, "invalid_request_error", ctx ? "context_length_exceeded" : NULL,
                          t->kind == SRV_TASK_CHAT ? "messages" : t->kind == SRV_TASK_EMBEDDING ? "input" : "prompt",
                          "%s", msg);
        } else {
            srv_error_set(err, 500, "server_error", NULL, NULL, "%s", msg);
        }
        return false;
    }
    pthread_mutex_lock(&t->mu);
    j->id = id;
    j->submitted = true;
    t->n_submitted++;
    pthread_mutex_unlock(&t->mu);
    return true;
}

void srv_task_cancel(srv_task *t) {
    uint64_t ids[SRV_MAX_JOBS];
    int n = 0;
    pthread_mutex_lock(&t->mu);
    for (int i = 0; i < t->n_jobs; i++)
        if (t->jobs[i].submitted && !t->jobs[i].done) ids[n++] = t->jobs[i].id;
    t->cancelled = true;
    pthread_mutex_unlock(&t->mu);
    // Outside the task mutex: the engine's callbacks take it while the engine may hold its own.
    for (int i = 0; i < n; i++) inf_engine_cancel(t->model->engine, ids[i]);
}

void srv_deadline_in(struct timespec *ts, int ms) {
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_nsec += (long)ms * 1000000L;
    while (ts->tv_nsec >= 1000000000L) {
        ts->tv_nsec -= 1000000000L;
        ts->tv_sec++;
    }
}

// Whether the task must be cancelled now (task mutex held): the server is closing or a job overflowed.
bool srv_task_must_stop_locked(const srv_task *t) {
    if (atomic_load(&t->srv->state) == SRV_CLOSING) return true;
    for (int i = 0; i < t->n_jobs; i++)
        if (t->jobs[i].text.failed && !t->jobs[i].done) return true;
    return false;
}

bool srv_task_wait_all(srv_task *t, struct MHD_Connection *conn) {
    bool gone = false;
    double next_check = inf_time_now() + SRV_WAIT_SLICE_MS / 1000.0;
    pthread_mutex_lock(&t->mu);
    while (t->n_done < t->n_submitted) {
        struct timespec ts;
        srv_deadline_in(&ts, SRV_WAIT_SLICE_MS);
        pthread_cond_timedwait(&t->cv, &t->mu, &ts);
        if (t->n_done == t->n_submitted || t->cancelled) continue;
        double now = inf_time_now();
        if (now < next_check) continue; // tokens arrive far more often than the checks are needed
        next_check = now + SRV_WAIT_SLICE_MS / 1000.0;
        bool stop = srv_task_must_stop_locked(t);
        pthread_mutex_unlock(&t->mu);
        if (!stop && conn && srv_conn_closed(conn)) stop = gone = true;
        if (stop) srv_task_cancel(t);
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    if (gone) inf_log(INF_LOG_DEBUG, "serve: %s: the client went away; cancelled", t->id);
    return !gone;
}

void srv_task_finish(srv_task *t) {
    if (!t) return;
    srv_server *srv = t->srv;
    srv_model *m = t->model;
    pthread_mutex_lock(&t->mu);
    bool pending = t->n_done < t->n_submitted;
    pthread_mutex_unlock(&t->mu);
    if (pending) srv_task_cancel(t);
    pthread_mutex_lock(&t->mu);
    bool last = --t->refs == 0;
    pthread_mutex_unlock(&t->mu);
    if (last) srv_task_destroy(t);
    // After this the registry may unload the model; jobs still running get on_done from inf_engine_free.
    srv_registry_release(srv->reg, m);
    atomic_fetch_sub(&srv->active, 1);
}

json_object *srv_task_usage(const srv_task *t) {
    long prompt = 0, gen = 0;
    for (int i = 0; i < t->n_jobs; i++) {
        prompt += t->jobs[i].res.n_prompt;
        gen += t->jobs[i].res.n_generated;
    }
    json_object *u = json_object_new_object();
    json_object_object_add(u, "prompt_tokens", json_object_new_int64(prompt));
    if (t->kind != SRV_TASK_EMBEDDING) json_object_object_add(u, "completion_tokens", json_object_new_int64(gen));
    json_object_object_add(u, "total_tokens", json_object_new_int64(prompt + gen));
    return u;
}

const char *srv_finish_str(inf_finish_reason r) {
    switch (r) {
    case INF_FINISH_STOP: return "stop";
    case INF_FINISH_LENGTH:
    case INF_FINISH_TIMEOUT: return "length"; // a request that runs out of time ends as if cut by max_tokens
    case INF_FINISH_CANCELLED: return "cancelled";
    case INF_FINISH_ERROR: return "error";
    }
    return "error";
}

// A token's text as the vocabulary spells it (what the logprobs "token" fields show).
static json_object *srv_piece_json(const inf_model *model, inf_token tok, size_t *len, json_object **bytes) {
    char small[256];
    char *buf = small;
    int n = inf_token_to_piece(model, tok, false, small, (int)sizeof small);
    if (n > (int)sizeof small && (buf = malloc((size_t)n))) inf_token_to_piece(model, tok, false, buf, n);
    if (!buf) {
        buf = small;
        n = 0;
    }
    if (n < 0) n = 0;
    if (bytes) {
        *bytes = json_object_new_array_ext(n);
        for (int i = 0; i < n; i++) json_object_array_add(*bytes, json_object_new_int((unsigned char)buf[i]));
    }
    json_object *s = srv_json_text(buf, (size_t)n);
    if (len) *len = (size_t)n;
    if (buf != small) free(buf);
    return s;
}

json_object *srv_logprobs_json(srv_task *t, srv_job *j, const srv_tok_event *ev, int n) {
    const inf_model *model = t->model->model;
    json_object *lp = json_object_new_object();
    if (t->kind == SRV_TASK_CHAT) {
        // {"content": [{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}]}]}
        json_object *content = json_object_new_array();
        for (int i = 0; i < n; i++) {
            const srv_tok_event *e = &ev[i];
            json_object *item = json_object_new_object(), *bytes = NULL;
            json_object_object_add(item, "token", srv_piece_json(model, e->token, NULL, &bytes));
            json_object_object_add(item, "logprob", srv_json_float(e->logprob));
            json_object_object_add(item, "bytes", bytes);
            json_object *tops = json_object_new_array();
            for (int k = 0; k < e->n_top; k++) {
                json_object *alt = json_object_new_object(), *ab = NULL;
                json_object_object_add(alt, "token", srv_piece_json(model, e->top_ids[k], NULL, &ab));
                json_object_object_add(alt, "logprob", srv_json_float(e->top_lp[k]));
                json_object_object_add(alt, "bytes", ab);
                json_object_array_add(tops, alt);
            }
            json_object_object_add(item, "top_logprobs", tops);
            json_object_array_add(content, item);
        }
        json_object_object_add(lp, "content", content);
        json_object_object_add(lp, "refusal", NULL);
        return lp;
    }
    // Completions: {"tokens", "token_logprobs", "top_logprobs": [{piece: logprob}], "text_offset"}.
    json_object *tokens = json_object_new_array(), *lps = json_object_new_array(), *tops = json_object_new_array(),
                *offs = json_object_new_array();
    for (int i = 0; i < n; i++) {
        const srv_tok_event *e = &ev[i];
        size_t plen = 0;
        json_object_array_add(tokens, srv_piece_json(model, e->token, &plen, NULL));
        json_object_array_add(lps, srv_json_float(e->logprob));
        json_object_array_add(offs, json_object_new_int64((int64_t)j->piece_off));
        j->piece_off += plen;
        json_object *alt = json_object_new_object();
        for (int k = 0; k < e->n_top; k++) {
            json_object *key = srv_piece_json(model, e->top_ids[k], NULL, NULL);
            json_object_object_add(alt, json_object_get_string(key), srv_json_float(e->top_lp[k]));
            json_object_put(key);
        }
        json_object_array_add(tops, alt);
    }
    json_object_object_add(lp, "tokens", tokens);
    json_object_object_add(lp, "token_logprobs", lps);
    json_object_object_add(lp, "top_logprobs", tops);
    json_object_object_add(lp, "text_offset", offs);
    return lp;
}
