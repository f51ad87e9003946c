// sse.c: streamed replies as server-sent events, the way OpenAI streams them: `data: {json}\n\n` chunks,
// for chat first a chunk whose delta has role "assistant", then content deltas, then a chunk with the
// finish_reason (and, with stream_options.include_usage, one with the usage), then `data: [DONE]\n\n`.
//
// The response is libmicrohttpd's content-reader kind. The reader runs on the connection's own thread
// (thread-per-connection mode), so it may block: it waits on the task's condition variable for what the
// engine callbacks deliver, in slices, and between slices checks that the client is still there (a closed
// socket cancels the engine requests at once) and that the server is not closing. Each token is a chunk of
// its own (clients count chunks as tokens), whatever number arrived since the last wake-up.
// A job that ends in an error (or is cancelled by the server closing) ends its choice with an error event
// {"error": {...}} instead of a finish_reason chunk.
// Left out: resuming streams, event ids, keep-alive comments.
#include "server/server_int.h"

#include <stdlib.h>
#include <string.h>

#define SRV_SSE_BLOCK (16 * 1024) // bytes libmicrohttpd asks the reader for at a time

typedef struct {
    srv_task *t;
    struct MHD_Connection *conn;
    double next_check;
} srv_stream;

// What one job delivered since the last fill, copied under the task mutex.
typedef struct {
    char *text;        // the text since the last take
    size_t len;
    size_t text_base;  // offset of text[0] in the job's text
    srv_tok_event *ev; // the events since the last take
    int n_ev, ev_base;
    srv_piece *pieces; // the tokens since the last take
    int n_pieces;
    bool done;
    bool overflow;     // the job's text passed its cap (we cancelled it)
    inf_request_result res;
} srv_delta;

static void srv_sse_put_json(srv_task *t, json_object *obj) {
    size_t n = 0;
    char *s = srv_json_take_string(obj, &n);
    if (!s) return;
    srv_buf_puts(&t->out, "data: ");
    srv_buf_put(&t->out, s, n);
    srv_buf_puts(&t->out, "\n\n");
    free(s);
}

// The envelope shared by every chunk of the task; choices is added by the caller.
static json_object *srv_sse_chunk(const srv_task *t) {
    json_object *c = json_object_new_object();
    json_object_object_add(c, "id", json_object_new_string(t->id));
    json_object_object_add(c, "object",
                           json_object_new_string(t->kind == SRV_TASK_CHAT ? "chat.completion.chunk" : "text_completion"));
    json_object_object_add(c, "created", json_object_new_int64(t->created));
    json_object_object_add(c, "model", json_object_new_string(t->model->name));
    json_object_object_add(c, "system_fingerprint", json_object_new_string("inferno-" INFERNO_VERSION));
    return c;
}

// One chunk for one choice: text (may be empty), logprobs (may be NULL) and finish (NULL: not finished).
static void srv_sse_choice(srv_task *t, int index, const char *text, size_t len, bool with_text,
                           json_object *logprobs, const char *finish) {
    json_object *c = srv_sse_chunk(t), *choices = json_object_new_array(), *ch = json_object_new_object();
    json_object_object_add(ch, "index", json_object_new_int(index));
    if (t->kind == SRV_TASK_CHAT) {
        json_object *delta = json_object_new_object();
        if (!t->role_sent) json_object_object_add(delta, "role", json_object_new_string("assistant"));
        if (with_text) json_object_object_add(delta, "content", srv_json_text(text, len));
        json_object_object_add(ch, "delta", delta);
    } else {
        json_object_object_add(ch, "text", srv_json_text(text, with_text ? len : 0));
    }
    json_object_object_add(ch, "logprobs", logprobs);
    json_object_object_add(ch, "finish_reason", finish ? json_object_new_string(finish) : NULL);
    json_object_array_add(choices, ch);
    json_object_object_add(c, "choices", choices);
    if (t->include_usage) json_object_object_add(c, "usage", NULL);
    srv_sse_put_json(t, c);
}

static void srv_sse_error(srv_task *t, const inf_request_result *res) {
    json_object *e = json_object_new_object(), *body = json_object_new_object();
    bool closing = res->finish == INF_FINISH_CANCELLED;
    json_object_object_add(body, "message",
                           json_object_new_string(closing ? "the server is shutting down"
                                                  : res->error[0] ? res->error : "generation failed"));
    json_object_object_add(body, "type", json_object_new_string("server_error"));
    json_object_object_add(body, "param", NULL);
    json_object_object_add(body, "code", closing ? json_object_new_string("shutting_down") : NULL);
    json_object_object_add(e, "error", body);
    srv_sse_put_json(t, e);
}

static void *srv_copy(const void *p, size_t n) {
    void *c = n ? malloc(n) : NULL;
    if (c) memcpy(c, p, n);
    return c;
}

// Copies what each job delivered since the last call. Returns whether anything is new.
static bool srv_sse_take(srv_task *t, srv_delta *d) {
    bool any = false;
    pthread_mutex_lock(&t->mu);
    for (int i = 0; i < t->n_jobs; i++) {
        srv_job *j = &t->jobs[i];
        d[i] = (srv_delta){.text_base = j->sent, .ev_base = j->ev_sent};
        if (j->text.len > j->sent && (d[i].text = srv_copy(j->text.data + j->sent, j->text.len - j->sent))) {
            d[i].len = j->text.len - j->sent;
            j->sent = j->text.len;
        }
        if (j->n_ev > j->ev_sent && (d[i].ev = srv_copy(j->ev + j->ev_sent, sizeof *j->ev * (size_t)(j->n_ev - j->ev_sent)))) {
            d[i].n_ev = j->n_ev - j->ev_sent;
            j->ev_sent = j->n_ev;
        }
        if (j->n_pieces > j->pieces_sent &&
            (d[i].pieces = srv_copy(j->pieces + j->pieces_sent, sizeof *j->pieces * (size_t)(j->n_pieces - j->pieces_sent)))) {
            d[i].n_pieces = j->n_pieces - j->pieces_sent;
            j->pieces_sent = j->n_pieces;
        }
        // Done only once everything before it is taken, so the finish chunk comes last.
        d[i].done = j->done && j->sent == j->text.len && j->ev_sent == j->n_ev;
        d[i].res = j->res;
        d[i].overflow = j->text.failed;
        any = any || d[i].len || d[i].n_ev || (d[i].done && !j->final_sent);
    }
    pthread_mutex_unlock(&t->mu);
    return any;
}

// One chunk per token of job i's delta; text that came without a piece (out of memory) goes in one more.
static void srv_sse_tokens(srv_task *t, int i, const srv_delta *d) {
    srv_job *j = &t->jobs[i];
    size_t prev = 0;
    for (int k = 0; k < d->n_pieces; k++) {
        const srv_piece *p = &d->pieces[k];
        size_t end = p->text_end - d->text_base;
        if (end > d->len || end < prev) end = prev; // cannot happen: pieces and text are taken together
        int e = p->ev - d->ev_base;
        json_object *lp = p->ev >= 0 && e >= 0 && e < d->n_ev ? srv_logprobs_json(t, j, &d->ev[e], 1) : NULL;
        srv_sse_choice(t, i, d->text + prev, end - prev, true, lp, NULL);
        prev = end;
    }
    if (prev < d->len) srv_sse_choice(t, i, d->text + prev, d->len - prev, true, NULL, NULL);
}

// Turns what arrived into chunks in t->out. Returns whether it wrote anything.
static bool srv_sse_fill(srv_task *t) {
    srv_delta d[SRV_MAX_JOBS];
    bool any = srv_sse_take(t, d);
    size_t before = t->out.len;
    if (t->kind == SRV_TASK_CHAT && !t->role_sent) {
        for (int i = 0; i < t->n_jobs; i++) srv_sse_choice(t, i, "", 0, true, NULL, NULL);
        t->role_sent = true;
    }
    int n_final = 0;
    for (int i = 0; i < t->n_jobs; i++) {
        srv_job *j = &t->jobs[i];
        if (any) {
            srv_sse_tokens(t, i, &d[i]);
            if (d[i].done && !j->final_sent) {
                inf_finish_reason f = d[i].res.finish;
                if (f == INF_FINISH_ERROR || (f == INF_FINISH_CANCELLED && !d[i].overflow)) srv_sse_error(t, &d[i].res);
                else srv_sse_choice(t, i, "", 0, false, NULL, srv_finish_str(f == INF_FINISH_CANCELLED ? INF_FINISH_LENGTH : f));
                j->final_sent = true;
            }
        }
        n_final += j->final_sent;
        free(d[i].text);
        free(d[i].ev);
        free(d[i].pieces);
    }
    if (any && n_final == t->n_jobs) {
        if (t->include_usage) {
            json_object *c = srv_sse_chunk(t);
            json_object_object_add(c, "choices", json_object_new_array());
            json_object_object_add(c, "usage", srv_task_usage(t));
            srv_sse_put_json(t, c);
        }
        srv_buf_puts(&t->out, "data: [DONE]\n\n");
        t->end_queued = true;
    }
    return t->out.len > before;
}

static ssize_t srv_sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
    srv_stream *s = cls;
    srv_task *t = s->t;
    for (;;) {
        if (t->out_off < t->out.len) {
            size_t n = t->out.len - t->out_off < max ? t->out.len - t->out_off : max;
            memcpy(buf, t->out.data + t->out_off, n);
            t->out_off += n;
            return (ssize_t)n;
        }
        t->out.len = 0;
        t->out_off = 0;
        if (t->out.failed) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (t->end_queued) return MHD_CONTENT_READER_END_OF_STREAM;
        if (srv_sse_fill(t)) continue;

        // Nothing new: wait for the engine, and look at the client and the server between waits.
        pthread_mutex_lock(&t->mu);
        bool pending = false;
        for (int i = 0; i < t->n_jobs && !pending; i++) {
            const srv_job *j = &t->jobs[i];
            pending = j->text.len > j->sent || j->n_ev > j->ev_sent || (j->done && !j->final_sent);
        }
        if (!pending) {
            struct timespec ts;
            srv_deadline_in(&ts, SRV_WAIT_SLICE_MS);
            pthread_cond_timedwait(&t->cv, &t->mu, &ts);
        }
        double now = inf_time_now();
        bool check = now >= s->next_check; // the checks cost a system call: a few per second are enough
        bool stop = check && !t->cancelled && srv_task_must_stop_locked(t);
        if (check) s->next_check = now + SRV_WAIT_SLICE_MS / 1000.0;
        pthread_mutex_unlock(&t->mu);
        if (check && srv_conn_closed(s->conn)) {
            inf_log(INF_LOG_DEBUG, "serve: %s: the client went away mid-stream; cancelled", t->id);
            srv_task_cancel(t);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (stop) srv_task_cancel(t);
    }
}

static void srv_sse_free(void *cls) {
    srv_stream *s = cls;
    srv_task_finish(s->t); // cancels what is still running when the client went away
    free(s);
}

struct MHD_Response *srv_sse_response(srv_task *t, struct MHD_Connection *conn) {
    srv_stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->t = t;
    s->conn = conn;
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, SRV_SSE_BLOCK, srv_sse_read, s,
                                                               srv_sse_free);
    if (!r) {
        free(s);
        return NULL;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    return r;
}
