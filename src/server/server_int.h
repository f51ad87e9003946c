// server_int.h: what the server's files share: the server object, OpenAI-shaped errors, the bounded text
// buffer, JSON field readers, the model registry, metrics, and the task that carries one HTTP request's
// engine requests. Not part of any API; only src/server/*.c include it.
//
// Threads: libmicrohttpd runs one thread per connection; route handlers run on it and may block (a
// non-streaming request waits for its result there, a stream's reader waits for tokens there). Engine
// callbacks run on each model's scheduler thread and only touch a task under its mutex and the metrics.
#ifndef INFERNO_SERVER_INT_H
#define INFERNO_SERVER_INT_H

#include "server/server.h"

#include "core/core.h" // inf_fail, inf_log: errors and logging as the rest of Inferno does them

#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#include <microhttpd.h>

#define SRV_MAX_STOPS 16         // stop strings per request (the engine's limit)
#define SRV_MAX_STOP_BYTES 256   // bytes of one stop string
#define SRV_MAX_TOP_LOGPROBS 20  // the engine's limit
#define SRV_MAX_JOBS 64          // engine requests per HTTP request (prompts x n, or embedding inputs)
#define SRV_MAX_MESSAGES 4096    // chat messages per request
#define SRV_MAX_TEXT (16u << 20) // bytes of generated text kept per engine request
#define SRV_MAX_TOKENS_IN 1048576 // tokens of one prompt given as ids, or of /detokenize
// CPU threads of an engine whose model has every layer on the GPU, when no thread count is configured: the
// host only makes the embedding rows, and a pool of every core then fights the connection threads at each
// step's barriers (H100, 32 streams: the forward step took 8.2 ms with 16 threads, 4.95 ms with 4 or 1).
#define SRV_GPU_HOST_THREADS 4

// ---------------------------------------------------------------------------------------------------------
// Errors in OpenAI's shape: {"error": {"message", "type", "param", "code"}}.
// ---------------------------------------------------------------------------------------------------------
typedef struct {
    int status;        // HTTP status
    const char *type;  // "invalid_request_error", "authentication_error", "server_error", ...
    const char *code;  // NULL: JSON null
    char param[96];    // "": JSON null
    char message[512];
    int retry_after;   // seconds for a Retry-After header (0: none)
} srv_error;

void srv_error_set(srv_error *err, int status, const char *type, const char *code, const char *param,
                   const char *fmt, ...) __attribute__((format(printf, 6, 7)));
// 400 invalid_request_error naming param.
void srv_error_param(srv_error *err, const char *param, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

// ---------------------------------------------------------------------------------------------------------
// A growable byte buffer with a hard maximum; once a put would pass it, the buffer is marked failed and
// later puts do nothing.
// ---------------------------------------------------------------------------------------------------------
typedef struct {
    char *data; // NUL-terminated while len < cap
    size_t len, cap, max;
    bool failed;
} srv_buf;

void srv_buf_init(srv_buf *b, size_t max);
bool srv_buf_put(srv_buf *b, const void *p, size_t n);
bool srv_buf_puts(srv_buf *b, const char *s);
bool srv_buf_printf(srv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void srv_buf_free(srv_buf *b);

// ---------------------------------------------------------------------------------------------------------
// JSON (json_util.c). Readers return 1 when the field is present, 0 when absent or null, -1 after setting
// a 400 error that names the field (param is the field's path, e.g. "messages[2].content").
// ---------------------------------------------------------------------------------------------------------
// Parses a request body: at most max_depth deep, valid UTF-8, one JSON object and nothing after it.
bool srv_json_parse_body(const char *body, size_t len, int max_depth, json_object **out, srv_error *err);
int srv_json_int(json_object *obj, const char *key, int64_t min, int64_t max, int64_t *out, srv_error *err);
int srv_json_number(json_object *obj, const char *key, double min, double max, double *out, srv_error *err);
int srv_json_bool(json_object *obj, const char *key, bool *out, srv_error *err);
// A string without NUL bytes; *s is borrowed from obj.
int srv_json_string(json_object *obj, const char *key, const char **s, size_t *len, srv_error *err);
// The value's type name for messages ("string", "number", ...).
const char *srv_json_type_name(json_object *v);
// A double as JSON with 7 significant digits (json-c's default prints 17); infinities become +-1e38.
json_object *srv_json_float(double v);
// Serializes and frees obj into a malloc'd string.
char *srv_json_take_string(json_object *obj, size_t *len);
// Standard base64 of n bytes, NUL-terminated, malloc'd.
char *srv_base64(const void *p, size_t n);

// ---------------------------------------------------------------------------------------------------------
// Model registry (registry.c): loaded models, each with its engine, by API name.
// ---------------------------------------------------------------------------------------------------------
typedef enum { SRV_MODEL_LOADING, SRV_MODEL_READY } srv_model_state;

typedef struct srv_model {
    char name[SRV_MAX_NAME + 1];
    char *path;
    inf_model *model;      // valid while state is READY
    inf_engine *engine;
    inf_model_info info;   // strings borrowed from model
    const char *chat_template; // the template used for this model ("chatml", ...)
    srv_model_state state;
    bool preloaded;
    int refs;              // requests using it (registry mutex)
    double last_used;      // inf_time_now() of the last release (registry mutex)
    double keep_alive;     // seconds idle before unloading (negative: never) (registry mutex)
    double loaded_at;      // inf_time_now()
    long created;          // wall clock of the load, for /v1/models
    uint64_t bytes;        // file plus session
    uint64_t session_bytes;
    int n_ctx;             // KV cells of the engine
    struct srv_model *next;
} srv_model;

typedef struct srv_registry srv_registry;

inf_status srv_registry_init(const srv_options *opt, srv_registry **out);
// Unloads every model. No request may hold one.
void srv_registry_free(srv_registry *reg);
// Registers a preloaded model (state LOADING) so requests can name it while it loads.
inf_status srv_registry_preload(srv_registry *reg, const char *name, const char *path);
// Loads the registered preloaded models in order; stops at the first that fails (and drops it).
inf_status srv_registry_load_preloaded(srv_registry *reg);
// Takes a reference on the model named, loading it from models_dir when it is not loaded. name NULL: the
// default model (the first preloaded one, else the only one loaded). keep_alive (may be NULL) sets an
// on-demand model's keep-alive in seconds. Fills *err (400, 404, 500, 503) and returns NULL on failure.
srv_model *srv_registry_acquire(srv_registry *reg, const char *name, const double *keep_alive, srv_error *err);
void srv_registry_release(srv_registry *reg, srv_model *m);
// Unloads idle on-demand models whose keep-alive has passed.
void srv_registry_maintain(srv_registry *reg, double now);
// Calls fn for each model under the registry lock (fn must not call the registry). Loading models too.
void srv_registry_each(srv_registry *reg, void (*fn)(void *user, const srv_model *m, int refs), void *user);
// Names of *.gguf files in models_dir, for /v1/models (at most cap; malloc'd strings the caller frees).
int srv_registry_list_dir(srv_registry *reg, char **names, int cap);
// Generated tokens of every engine ever loaded (live ones read now).
uint64_t srv_registry_generated_total(srv_registry *reg);
void srv_registry_counts(srv_registry *reg, uint64_t *loads, uint64_t *unloads, uint64_t *bytes, int *n_loaded);

// ---------------------------------------------------------------------------------------------------------
// Metrics (metrics.c): counters and histograms, rendered as Prometheus text.
// ---------------------------------------------------------------------------------------------------------
typedef enum {
    SRV_ROUTE_HEALTH,
    SRV_ROUTE_MODELS,
    SRV_ROUTE_COMPLETIONS,
    SRV_ROUTE_CHAT,
    SRV_ROUTE_EMBEDDINGS,
    SRV_ROUTE_TOKENIZE,
    SRV_ROUTE_DETOKENIZE,
    SRV_ROUTE_METRICS,
    SRV_ROUTE_STATUS,
    SRV_ROUTE_OTHER, // unknown paths, OPTIONS
    SRV_ROUTE_COUNT
} srv_route_id;

typedef struct srv_metrics srv_metrics;
srv_metrics *srv_metrics_new(void);
void srv_metrics_free(srv_metrics *mt);
const char *srv_route_label(srv_route_id r);
void srv_metrics_request(srv_metrics *mt, srv_route_id route, int status, double seconds);
// One engine request finished (called from engine callbacks).
void srv_metrics_finish(srv_metrics *mt, const inf_request_result *res, bool embeddings);
// Once a second: generated-token total for the tok/s gauge.
void srv_metrics_tick(srv_metrics *mt, uint64_t generated_total, double now);
// Appends the server's own metric families to b; the registry's gauges are appended by the route.
void srv_metrics_render(srv_metrics *mt, srv_buf *b);

// ---------------------------------------------------------------------------------------------------------
// The server object.
// ---------------------------------------------------------------------------------------------------------
typedef enum { SRV_LOADING, SRV_READY, SRV_DRAINING, SRV_CLOSING } srv_state;

struct srv_server {
    srv_options opt;          // strings below are owned copies
    char *host, *models_dir, *chat_template, *api_key, *cors_origin;
    srv_model_spec preload[SRV_MAX_PRELOAD];
    struct MHD_Daemon *mhd;
    int port;
    srv_registry *reg;
    srv_metrics *metrics;
    struct srv_notifier *notifier; // wakes stream readers for the engine callbacks (task.c)
    _Atomic int state;        // srv_state
    _Atomic int active;       // tasks (generation requests) not yet answered
    _Atomic uint64_t id_seq;  // for response ids
    uint64_t id_salt;
    double t_start;
};

// A unique id such as "chatcmpl-3f9c0e1a2b4d5e6f".
void srv_make_id(srv_server *srv, const char *prefix, char *out, size_t cap);

// ---------------------------------------------------------------------------------------------------------
// HTTP requests and replies (http.c).
// ---------------------------------------------------------------------------------------------------------
typedef struct {
    srv_server *srv;
    struct MHD_Connection *conn;
    const char *method, *path;
    json_object *body; // POST routes: the parsed object (owned by http.c)
    double t_start;
} srv_req;

// What a route answers: a status and a response ready to queue (http.c adds CORS headers and queues it).
typedef struct {
    unsigned status;
    struct MHD_Response *resp;
} srv_reply;

void srv_reply_json(srv_reply *out, unsigned status, json_object *obj); // takes obj
void srv_reply_text(srv_reply *out, unsigned status, const char *content_type, const char *text, size_t len);
void srv_reply_error(srv_reply *out, const srv_error *err);
// Whether the client has closed its connection (checked without reading any request bytes).
bool srv_conn_closed(struct MHD_Connection *conn);

inf_status srv_http_start(srv_server *srv);
void srv_http_quiesce(srv_server *srv);
void srv_http_stop(srv_server *srv);

// Routes (routes_openai.c, routes_misc.c).
void srv_route_models(srv_req *rq, srv_reply *out);
void srv_route_completions(srv_req *rq, srv_reply *out);
void srv_route_chat(srv_req *rq, srv_reply *out);
void srv_route_embeddings(srv_req *rq, srv_reply *out);
void srv_route_health(srv_req *rq, srv_reply *out);
void srv_route_tokenize(srv_req *rq, srv_reply *out);
void srv_route_detokenize(srv_req *rq, srv_reply *out);
void srv_route_metrics(srv_req *rq, srv_reply *out);
void srv_route_status(srv_req *rq, srv_reply *out);

// ---------------------------------------------------------------------------------------------------------
// Tasks (task.c): the engine requests of one HTTP request and what their callbacks delivered.
//
// Ownership: a task is shared by its HTTP thread and the engine; refs counts the HTTP side (1) plus every
// submitted job whose on_done has not run. The last to drop its reference frees the task. The model
// reference is the HTTP side's: it is released when the HTTP side is finished (srv_task_finish).
// ---------------------------------------------------------------------------------------------------------
typedef enum { SRV_TASK_COMPLETION, SRV_TASK_CHAT, SRV_TASK_EMBEDDING } srv_task_kind;

typedef struct {
    inf_token token;
    float logprob;
    int n_top;
    inf_token top_ids[SRV_MAX_TOP_LOGPROBS];
    float top_lp[SRV_MAX_TOP_LOGPROBS];
} srv_tok_event;

// Streams: one per on_token call that brought text or a log-probability, so each token is its own chunk.
typedef struct {
    size_t text_end; // the job's text length after this token
    int ev;          // its event in srv_job.ev, or -1
} srv_piece;

typedef struct srv_job {
    struct srv_task *task;
    int index;                 // choice or embedding index
    uint64_t id;               // engine id, valid once submitted
    bool submitted;
    // Filled by the callbacks, under task->mu.
    srv_buf text;              // generated text (at most SRV_MAX_TEXT)
    srv_tok_event *ev;         // logprobs requests: one per reported token
    int n_ev, cap_ev, max_ev;
    srv_piece *pieces;         // streams only (at most max_ev; past that the last one grows)
    int n_pieces, cap_pieces;
    bool done;
    inf_request_result res;    // a copy (res.embedding NULL)
    float *embedding;          // (n_embd) embeddings requests
    // Stream progress, HTTP thread only.
    size_t sent;
    int ev_sent, pieces_sent;
    size_t piece_off;          // completions logprobs: text_offset of the next reported token
    bool final_sent;
} srv_job;

typedef struct srv_task {
    srv_server *srv;
    srv_model *model;          // referenced until srv_task_finish
    srv_task_kind kind;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    int n_jobs, n_submitted, n_done;
    srv_job *jobs;             // (n_jobs)
    bool logprobs;             // record token events
    int n_top;
    bool stream, include_usage;
    char id[48];
    long created;
    // Stream output (HTTP thread only).
    srv_buf out;
    size_t out_off;
    bool role_sent, end_queued;
    bool cancelled;            // cancel sent to the engine
    bool wake_queued;          // in the notifier's queue, holding a reference (task mutex)
} srv_task;

// A task for n_jobs engine requests on model m (the task takes over the caller's reference to m).
srv_task *srv_task_new(srv_server *srv, srv_model *m, srv_task_kind kind, int n_jobs, bool logprobs, int n_top);
// Submits job i's request (callbacks, user and logprobs are filled in here). On failure fills *err (429 when
// the queue is full, 503 while shutting down, 400 for a bad request).
bool srv_task_submit(srv_task *t, int i, inf_request *req, srv_error *err);
// Cancels every job not done yet (safe to call more than once).
void srv_task_cancel(srv_task *t);
// Blocks until every submitted job is done; cancels them if the client goes away, the server closes or
// the request's text grows past its cap. Returns false when the client went away.
bool srv_task_wait_all(srv_task *t, struct MHD_Connection *conn);
// The HTTP side is finished with the task: cancels unfinished jobs, releases the model, drops its ref.
void srv_task_finish(srv_task *t);

// The notifier: a thread that wakes the tasks' waiters (signals task->cv) on behalf of the engine callbacks,
// so that a model's scheduler thread pays for one wake a step (the notifier's) instead of one per token (a
// futex call, and where cores are short, the woken reader taking the scheduler's core). A task waits in its
// bounded queue at most once, holding a reference; when the queue is full the callback signals itself.
// srv_notifier_free stops the thread and wakes what is left; call it after every engine is freed.
typedef struct srv_notifier srv_notifier;
srv_notifier *srv_notifier_new(void); // NULL when out of memory or no thread: callbacks then signal directly
void srv_notifier_free(srv_notifier *n);
bool srv_notifier_push(srv_notifier *n, srv_task *t); // t->wake_queued set and a reference taken; false: full

// Streams (sse.c): a response that sends the task's chunks as server-sent events.
struct MHD_Response *srv_sse_response(srv_task *t, struct MHD_Connection *conn);
// Builds the JSON of the usage object from the task's results.
json_object *srv_task_usage(const srv_task *t);
const char *srv_finish_str(inf_finish_reason r); // OpenAI's finish_reason for the engine's
// The logprobs of n events of job j in the task kind's shape (HTTP thread; ev is a copy taken under the
// task mutex or, once the job is done, j->ev itself). Advances j->piece_off.
json_object *srv_logprobs_json(srv_task *t, srv_job *j, const srv_tok_event *ev, int n);
// Task internals shared with sse.c: the wait slice, an absolute CLOCK_MONOTONIC deadline ms from now, and
// whether the task must be cancelled now (server closing, a job past its text cap; task mutex held).
#define SRV_WAIT_SLICE_MS 100
void srv_deadline_in(struct timespec *ts, int ms);
bool srv_task_must_stop_locked(const srv_task *t);
// A JSON string of n bytes of model text, invalid UTF-8 replaced by U+FFFD.
json_object *srv_json_text(const char *s, size_t n);

#endif // INFERNO_SERVER_INT_H
