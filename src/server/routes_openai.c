// routes_openai.c: OpenAI's routes: GET /v1/models, POST /v1/completions, /v1/chat/completions and
// /v1/embeddings.
//
// Each route first reads and checks every field it knows (wrong types and ranges are a 400 naming the
// field; unknown fields are ignored), then takes a reference on the model (which may load it), builds the
// token prompts (chat: the model's template through inf_chat_render), submits one engine request per
// choice, and either streams (sse.c) or waits and answers with the whole object.
//
// Choices: a completions request may give several prompts, and n asks for several choices of each; choice
// index = prompt index x n + k, as OpenAI numbers them. Every choice is an engine request of its own, run
// concurrently (at most SRV_MAX_JOBS per HTTP request).
// Left out: tools and function calls, response_format, logit_bias, echo, best_of, suffix, images and audio.
#include "server/server_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SRV_MAX_CHOICES 16 // n

typedef struct {
    inf_token *toks; // malloc'd
    int n;
} srv_prompt;

// What completions and chat requests share, read from the body.
typedef struct {
    const char *model;      // NULL: the default model
    bool has_keep_alive;
    double keep_alive;
    bool stream, include_usage;
    inf_sampler_params sp;
    bool seed_set;
    int max_tokens;
    const char *stops[SRV_MAX_STOPS];
    int n_stops;
    bool ignore_eos;
    int n;                  // choices per prompt
    bool logprobs;
    int n_top;
} srv_gen_params;

static void srv_prompts_free(srv_prompt *p, int n) {
    for (int i = 0; i < n; i++) free(p[i].toks);
}

// keep_alive as Ollama takes it: seconds as a number, or a string with a unit ("30s", "5m", "1h", "-1");
// negative keeps the model loaded for good.
static int srv_parse_keep_alive(json_object *body, double *out, srv_error *err) {
    json_object *v = NULL;
    if (!json_object_object_get_ex(body, "keep_alive", &v) || json_object_is_type(v, json_type_null)) return 0;
    double x;
    if (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)) {
        x = json_object_get_double(v);
    } else if (json_object_is_type(v, json_type_string)) {
        const char *s = json_object_get_string(v);
        char *end;
        errno = 0;
        x = strtod(s, &end);
        if (errno || end == s) goto bad;
        if (!strcmp(end, "h")) x *= 3600;
        else if (!strcmp(end, "m")) x *= 60;
        else if (!strcmp(end, "ms")) x /= 1000;
        else if (strcmp(end, "s") && *end) goto bad;
    } else {
        goto bad;
    }
    if (!isfinite(x)) goto bad;
    *out = x < 0 ? -1 : x;
    return 1;
bad:
    srv_error_param(err, "keep_alive", "'keep_alive' must be seconds as a number or a duration such as \"5m\"");
    return -1;
}

// "stop": a string or an array of strings (empty strings are ignored), at most max of them.
static bool srv_parse_stop(json_object *body, int max, srv_gen_params *p, srv_error *err) {
    json_object *v = NULL;
    if (!json_object_object_get_ex(body, "stop", &v) || json_object_is_type(v, json_type_null)) return true;
    size_t n = 1;
    bool array = json_object_is_type(v, json_type_array);
    if (array) n = json_object_array_length(v);
    if (n > (size_t)max) {
        srv_error_param(err, "stop", "'stop' has %zu strings; at most %d are allowed", n, max);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        json_object *s = array ? json_object_array_get_idx(v, i) : v;
        if (!json_object_is_type(s, json_type_string)) {
            srv_error_param(err, "stop", "'stop' must be a string or an array of strings, not %s%s",
                            array ? "an array holding " : "", srv_json_type_name(s));
            return false;
        }
        size_t len = (size_t)json_object_get_string_len(s);
        if (len > SRV_MAX_STOP_BYTES || memchr(json_object_get_string(s), '\0', len)) {
            srv_error_param(err, "stop", "a stop string is longer than %d bytes or holds a NUL", SRV_MAX_STOP_BYTES);
            return false;
        }
        if (len) p->stops[p->n_stops++] = json_object_get_string(s);
    }
    return true;
}

// Reads the fields completions and chat share. kind decides how logprobs is spelled.
static bool srv_parse_gen(srv_server *srv, json_object *body, srv_task_kind kind, srv_gen_params *p, srv_error *err) {
    *p = (srv_gen_params){.sp = inf_sampler_default_params(), .max_tokens = srv->opt.max_tokens, .n = 1};
    int64_t iv;
    double dv;
    int r;
    if (srv_json_string(body, "model", &p->model, NULL, err) < 0) return false;
    if ((r = srv_parse_keep_alive(body, &p->keep_alive, err)) < 0) return false;
    p->has_keep_alive = r > 0;
    if (srv_json_bool(body, "stream", &p->stream, err) < 0) return false;
    json_object *so = NULL;
    if (json_object_object_get_ex(body, "stream_options", &so) && !json_object_is_type(so, json_type_null)) {
        if (!json_object_is_type(so, json_type_object)) {
            srv_error_param(err, "stream_options", "'stream_options' must be an object, not %s", srv_json_type_name(so));
            return false;
        }
        if (srv_json_bool(so, "include_usage", &p->include_usage, err) < 0) {
            snprintf(err->param, sizeof err->param, "stream_options.include_usage");
            return false;
        }
    }
    if ((r = srv_json_number(body, "temperature", 0, 100, &dv, err)) < 0) return false;
    if (r) p->sp.temperature = (float)dv;
    if ((r = srv_json_number(body, "top_p", 0, 1, &dv, err)) < 0) return false;
    if (r) p->sp.top_p = (float)dv;
    if ((r = srv_json_number(body, "min_p", 0, 1, &dv, err)) < 0) return false;
    if (r) p->sp.min_p = (float)dv;
    if ((r = srv_json_int(body, "top_k", 0, 1 << 30, &iv, err)) < 0) return false;
    if (r) p->sp.top_k = (int)iv;
    if ((r = srv_json_number(body, "presence_penalty", -100, 100, &dv, err)) < 0) return false;
    if (r) p->sp.presence_penalty = (float)dv;
    if ((r = srv_json_number(body, "frequency_penalty", -100, 100, &dv, err)) < 0) return false;
    if (r) p->sp.frequency_penalty = (float)dv;
    if ((r = srv_json_number(body, "repeat_penalty", 0, 100, &dv, err)) < 0) return false;
    if (r) p->sp.repeat_penalty = (float)dv;
    if ((r = srv_json_int(body, "repeat_last_n", -1, 1 << 30, &iv, err)) < 0) return false;
    if (r) p->sp.repeat_last_n = (int)iv;
    if ((r = srv_json_int(body, "seed", INT64_MIN, INT64_MAX, &iv, err)) < 0) return false;
    if (r) {
        p->sp.seed = (uint64_t)iv;
        p->seed_set = true;
    }
    const char *mt_keys[2] = {"max_tokens", "max_completion_tokens"};
    for (int k = 0; k < (kind == SRV_TASK_CHAT ? 2 : 1); k++) {
        if ((r = srv_json_int(body, mt_keys[k], 0, INT64_MAX, &iv, err)) < 0) return false;
        if (!r) continue;
        if (iv > srv->opt.max_tokens) {
            srv_error_set(err, 400, "invalid_request_error", "max_tokens_too_large", mt_keys[k],
                          "'%s' is %lld; this server allows at most %d (--max-tokens)", mt_keys[k], (long long)iv,
                          srv->opt.max_tokens);
            return false;
        }
        p->max_tokens = (int)iv;
    }
    // Chat keeps one stop string for the template's end-of-turn marker.
    if (!srv_parse_stop(body, kind == SRV_TASK_CHAT ? SRV_MAX_STOPS - 1 : SRV_MAX_STOPS, p, err)) return false;
    if (srv_json_bool(body, "ignore_eos", &p->ignore_eos, err) < 0) return false;
    if ((r = srv_json_int(body, "n", 1, SRV_MAX_CHOICES, &iv, err)) < 0) return false;
    if (r) p->n = (int)iv;
    if (kind == SRV_TASK_CHAT) {
        if (srv_json_bool(body, "logprobs", &p->logprobs, err) < 0) return false;
        if ((r = srv_json_int(body, "top_logprobs", 0, SRV_MAX_TOP_LOGPROBS, &iv, err)) < 0) return false;
        if (r) p->n_top = (int)iv;
        if (p->n_top > 0 && !p->logprobs) {
            srv_error_param(err, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
            return false;
        }
    } else {
        if ((r = srv_json_int(body, "logprobs", 0, SRV_MAX_TOP_LOGPROBS, &iv, err)) < 0) return false;
        if (r) {
            p->logprobs = true;
            p->n_top = (int)iv;
        }
        bool echo = false;
        if (srv_json_bool(body, "echo", &echo, err) < 0) return false;
        if (echo) {
            srv_error_param(err, "echo", "'echo' is not supported by this server");
            return false;
        }
    }
    return true;
}

// Tokenizes text into *p (malloc'd). Fails with a 400 naming param when the result is empty.
static bool srv_tokenize_prompt(const inf_model *model, const char *text, size_t len, const char *param,
                                srv_prompt *p, srv_error *err) {
    int n = 0;
    p->toks = NULL;
    p->n = 0;
    if (inf_tokenize(model, text, len, true, true, NULL, 0, &n) != INF_OK) {
        srv_error_param(err, param, "cannot tokenize '%s': %s", param, inf_last_error());
        return false;
    }
    if (n <= 0) {
        srv_error_param(err, param, "'%s' is empty and the model adds no BOS token", param);
        return false;
    }
    if (!(p->toks = malloc(sizeof *p->toks * (size_t)n)) ||
        inf_tokenize(model, text, len, true, true, p->toks, n, &p->n) != INF_OK || p->n != n) {
        free(p->toks);
        p->toks = NULL;
        srv_error_set(err, 500, "server_error", NULL, NULL, "tokenizing '%s' failed: %s", param, inf_last_error());
        return false;
    }
    return true;
}

// A prompt given as token ids: an array of integers in [0, n_vocab).
static bool srv_token_array(json_object *arr, int n_vocab, const char *param, srv_prompt *p, srv_error *err) {
    size_t n = json_object_array_length(arr);
    p->toks = NULL;
    p->n = 0;
    if (n == 0 || n > SRV_MAX_TOKENS_IN) {
        srv_error_param(err, param, "'%s' holds %zu token ids; 1 to %d are allowed", param, n, SRV_MAX_TOKENS_IN);
        return false;
    }
    if (!(p->toks = malloc(sizeof *p->toks * n))) {
        srv_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        json_object *v = json_object_array_get_idx(arr, i);
        int64_t id = json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : -1;
        if (id < 0 || id >= n_vocab) {
            srv_error_param(err, param, "'%s[%zu]' must be a token id in [0, %d)", param, i, n_vocab);
            free(p->toks);
            p->toks = NULL;
            return false;
        }
        p->toks[i] = (inf_token)id;
    }
    p->n = (int)n;
    return true;
}

static bool srv_check_prompt_len(srv_server *srv, const srv_prompt *p, const char *param, srv_error *err) {
    if (srv->opt.max_prompt_tokens > 0 && p->n > srv->opt.max_prompt_tokens) {
        srv_error_set(err, 400, "invalid_request_error", "context_length_exceeded", param,
                      "the prompt has %d tokens; this server allows at most %d (--max-prompt-tokens)", p->n,
                      srv->opt.max_prompt_tokens);
        return false;
    }
    return true;
}

static uint64_t srv_random_seed(srv_server *srv) {
    char id[40];
    srv_make_id(srv, "s", id, sizeof id);
    return strtoull(id + 2, NULL, 16) ^ (uint64_t)(inf_time_now() * 1e9);
}

// The whole (non-streamed) object for a finished generation task.
static json_object *srv_gen_object(srv_task *t) {
    json_object *o = json_object_new_object(), *choices = json_object_new_array();
    json_object_object_add(o, "id", json_object_new_string(t->id));
    json_object_object_add(o, "object",
                           json_object_new_string(t->kind == SRV_TASK_CHAT ? "chat.completion" : "text_completion"));
    json_object_object_add(o, "created", json_object_new_int64(t->created));
    json_object_object_add(o, "model", json_object_new_string(t->model->name));
    json_object_object_add(o, "system_fingerprint", json_object_new_string("inferno-" INFERNO_VERSION));
    for (int i = 0; i < t->n_jobs; i++) {
        srv_job *j = &t->jobs[i];
        json_object *ch = json_object_new_object();
        json_object *text = srv_json_text(j->text.data ? j->text.data : "", j->text.len);
        json_object_object_add(ch, "index", json_object_new_int(i));
        if (t->kind == SRV_TASK_CHAT) {
            json_object *msg = json_object_new_object();
            json_object_object_add(msg, "role", json_object_new_string("assistant"));
            json_object_object_add(msg, "content", text);
            json_object_object_add(msg, "refusal", NULL);
            json_object_object_add(ch, "message", msg);
        } else {
            json_object_object_add(ch, "text", text);
        }
        json_object_object_add(ch, "logprobs", t->logprobs ? srv_logprobs_json(t, j, j->ev, j->n_ev) : NULL);
        // A job cut at its text cap was cancelled by us: to the client it is a length limit.
        inf_finish_reason f = j->res.finish == INF_FINISH_CANCELLED && j->text.failed ? INF_FINISH_LENGTH : j->res.finish;
        json_object_object_add(ch, "finish_reason", json_object_new_string(srv_finish_str(f)));
        json_object_array_add(choices, ch);
    }
    json_object_object_add(o, "choices", choices);
    json_object_object_add(o, "usage", srv_task_usage(t));
    return o;
}

// Whether a finished task failed as a whole: an engine error (500), or cancelled by the server closing (503).
static bool srv_task_failed(const srv_task *t, srv_error *err) {
    for (int i = 0; i < t->n_jobs; i++) {
        const srv_job *j = &t->jobs[i];
        if (j->res.finish == INF_FINISH_ERROR) {
            srv_error_set(err, 500, "server_error", NULL, NULL, "generation failed: %s",
                          j->res.error[0] ? j->res.error : "unknown error");
            return true;
        }
        if (j->res.finish == INF_FINISH_CANCELLED && !j->text.failed) {
            srv_error_set(err, 503, "server_error", "shutting_down", NULL, "the request was cancelled: the server is "
                                                                            "shutting down");
            return true;
        }
    }
    return false;
}

// Runs n_prompts x p->n generation requests on m and answers (the task takes the model reference; the
// prompts stay the caller's).
static void srv_generate(srv_req *rq, srv_reply *out, srv_task_kind kind, srv_model *m, const srv_gen_params *p,
                         const srv_prompt *prompts, int n_prompts) {
    srv_server *srv = rq->srv;
    srv_error err;
    int n_jobs = n_prompts * p->n;
    assert(n_jobs > 0 && n_jobs <= SRV_MAX_JOBS);
    srv_task *t = srv_task_new(srv, m, kind, n_jobs, p->logprobs, p->n_top);
    if (!t) {
        srv_registry_release(srv->reg, m);
        srv_error_set(&err, 500, "server_error", NULL, NULL, "out of memory");
        srv_reply_error(out, &err);
        return;
    }
    t->stream = p->stream;
    t->include_usage = p->stream && p->include_usage;
    uint64_t seed = p->seed_set ? p->sp.seed : srv_random_seed(srv);
    for (int i = 0; i < n_jobs; i++) {
        const srv_prompt *pr = &prompts[i / p->n];
        inf_request req = {.prompt = pr->toks,
                           .n_prompt = pr->n,
                           .sampling = p->sp,
                           .max_tokens = p->max_tokens,
                           .stops = p->stops,
                           .n_stops = p->n_stops,
                           .ignore_eos = p->ignore_eos,
                           .timeout_seconds = srv->opt.timeout};
        req.sampling.seed = seed + (uint64_t)i; // choices of one request differ, and repeat with the same seed
        if (!srv_task_submit(t, i, &req, &err)) {
            srv_task_finish(t);
            srv_reply_error(out, &err);
            return;
        }
    }
    if (t->stream) {
        struct MHD_Response *r = srv_sse_response(t, rq->conn);
        if (!r) {
            srv_task_finish(t);
            srv_error_set(&err, 500, "server_error", NULL, NULL, "out of memory");
            srv_reply_error(out, &err);
            return;
        }
        out->status = 200;
        out->resp = r;
        return;
    }
    if (!srv_task_wait_all(t, rq->conn)) {
        srv_task_finish(t);
        srv_error_set(&err, 499, "invalid_request_error", "client_closed_request", NULL, "the client closed the "
                                                                                          "connection");
        srv_reply_error(out, &err);
        return;
    }
    if (srv_task_failed(t, &err)) srv_reply_error(out, &err);
    else srv_reply_json(out, 200, srv_gen_object(t));
    srv_task_finish(t);
}

// ---------------------------------------------------------------------------------------------------------
// POST /v1/completions
// ---------------------------------------------------------------------------------------------------------
// Tokenizes the items of a "prompt" / "input" field (strings or arrays of token ids) into prompts[], checking
// each against the prompt cap; the error names the item ("prompt[2]"). On failure the caller frees prompts.
static bool srv_prompt_items(srv_server *srv, srv_model *m, json_object **items, int n_items, const char *field,
                             srv_prompt *prompts, srv_error *err) {
    for (int i = 0; i < n_items; i++) {
        char param[48];
        if (n_items > 1) snprintf(param, sizeof param, "%s[%d]", field, i);
        else snprintf(param, sizeof param, "%s", field);
        bool ok = json_object_is_type(items[i], json_type_string)
                      ? srv_tokenize_prompt(m->model, json_object_get_string(items[i]),
                                            (size_t)json_object_get_string_len(items[i]), param, &prompts[i], err)
                      : srv_token_array(items[i], m->info.n_vocab, param, &prompts[i], err);
        if (!ok || !srv_check_prompt_len(srv, &prompts[i], param, err)) return false;
    }
    return true;
}

void srv_route_completions(srv_req *rq, srv_reply *out) {
    srv_server *srv = rq->srv;
    srv_error err;
    srv_gen_params p;
    if (!srv_parse_gen(srv, rq->body, SRV_TASK_COMPLETION, &p, &err)) {
        srv_reply_error(out, &err);
        return;
    }
    // "prompt": a string, an array of strings, an array of token ids, or an array of arrays of token ids.
    json_object *pv = NULL;
    if (!json_object_object_get_ex(rq->body, "prompt", &pv) || json_object_is_type(pv, json_type_null)) {
        srv_error_param(&err, "prompt", "'prompt' is required");
        srv_reply_error(out, &err);
        return;
    }
    json_object *items[SRV_MAX_JOBS];
    int n_items = 0;
    if (json_object_is_type(pv, json_type_string)) {
        items[n_items++] = pv;
    } else if (json_object_is_type(pv, json_type_array)) {
        size_t n = json_object_array_length(pv);
        json_object *first = n ? json_object_array_get_idx(pv, 0) : NULL;
        if (first && json_object_is_type(first, json_type_int)) {
            items[n_items++] = pv; // one prompt of token ids
        } else {
            if (n == 0 || n * (size_t)p.n > SRV_MAX_JOBS) {
                srv_error_param(&err, "prompt", "'prompt' holds %zu prompts; with n = %d at most %d choices are allowed",
                                n, p.n, SRV_MAX_JOBS);
                srv_reply_error(out, &err);
                return;
            }
            for (size_t i = 0; i < n; i++) {
                json_object *it = json_object_array_get_idx(pv, i);
                if (!json_object_is_type(it, json_type_string) && !json_object_is_type(it, json_type_array)) {
                    srv_error_param(&err, "prompt", "'prompt[%zu]' must be a string or an array of token ids, not %s",
                                    i, srv_json_type_name(it));
                    srv_reply_error(out, &err);
                    return;
                }
                items[n_items++] = it;
            }
        }
    } else {
        srv_error_param(&err, "prompt", "'prompt' must be a string or an array, not %s", srv_json_type_name(pv));
        srv_reply_error(out, &err);
        return;
    }
    if (n_items * p.n > SRV_MAX_JOBS) {
        srv_error_param(&err, "n", "n = %d gives more than %d choices", p.n, SRV_MAX_JOBS);
        srv_reply_error(out, &err);
        return;
    }
    for (int i = 0; i < n_items; i++) {
        if (json_object_is_type(items[i], json_type_string) &&
            memchr(json_object_get_string(items[i]), '\0', (size_t)json_object_get_string_len(items[i]))) {
            srv_error_param(&err, "prompt", "'prompt' contains a NUL character");
            srv_reply_error(out, &err);
            return;
        }
    }

    srv_model *m = srv_registry_acquire(srv->reg, p.model, p.has_keep_alive ? &p.keep_alive : NULL, &err);
    if (!m) {
        srv_reply_error(out, &err);
        return;
    }
    srv_prompt prompts[SRV_MAX_JOBS] = {{0}};
    if (!srv_prompt_items(srv, m, items, n_items, "prompt", prompts, &err)) {
        srv_prompts_free(prompts, n_items);
        srv_registry_release(srv->reg, m);
        srv_reply_error(out, &err);
        return;
    }
    srv_generate(rq, out, SRV_TASK_COMPLETION, m, &p, prompts, n_items);
    srv_prompts_free(prompts, n_items);
}

// ---------------------------------------------------------------------------------------------------------
// POST /v1/chat/completions
// ---------------------------------------------------------------------------------------------------------
// Reads messages[]: each {"role", "content"} with content a string, null, or an array of {"type": "text",
// "text"} parts (joined with newlines into a malloc'd string kept in owned[]).
static bool srv_parse_messages(json_object *body, size_t max_bytes, inf_chat_message *msgs, char **owned, int *n_out,
                               srv_error *err) {
    json_object *arr = NULL;
    *n_out = 0;
    if (!json_object_object_get_ex(body, "messages", &arr) || json_object_is_type(arr, json_type_null)) {
        srv_error_param(err, "messages", "'messages' is required");
        return false;
    }
    if (!json_object_is_type(arr, json_type_array)) {
        srv_error_param(err, "messages", "'messages' must be an array, not %s", srv_json_type_name(arr));
        return false;
    }
    size_t n = json_object_array_length(arr);
    if (n == 0 || n > SRV_MAX_MESSAGES) {
        srv_error_param(err, "messages", "'messages' holds %zu messages; 1 to %d are allowed", n, SRV_MAX_MESSAGES);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        json_object *mo = json_object_array_get_idx(arr, i), *content = NULL;
        char param[48];
        snprintf(param, sizeof param, "messages[%zu]", i);
        if (!json_object_is_type(mo, json_type_object)) {
            srv_error_param(err, param, "'%s' must be an object, not %s", param, srv_json_type_name(mo));
            return false;
        }
        const char *role = NULL;
        srv_error e2;
        if (srv_json_string(mo, "role", &role, NULL, &e2) <= 0) {
            char rparam[64];
            snprintf(rparam, sizeof rparam, "%s.role", param);
            srv_error_param(err, rparam, "'%s' is required and must be a string", rparam);
            return false;
        }
        if (!strcmp(role, "developer")) role = "system";
        if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant")) {
            snprintf(param, sizeof param, "messages[%zu].role", i);
            srv_error_param(err, param, "'%s' is '%.40s'; use system, developer, user or assistant", param, role);
            return false;
        }
        msgs[i].role = role;
        msgs[i].content = "";
        snprintf(param, sizeof param, "messages[%zu].content", i);
        if (!json_object_object_get_ex(mo, "content", &content) || json_object_is_type(content, json_type_null)) {
            *n_out = (int)i + 1;
            continue;
        }
        if (json_object_is_type(content, json_type_string)) {
            const char *s = json_object_get_string(content);
            if (memchr(s, '\0', (size_t)json_object_get_string_len(content))) {
                srv_error_param(err, param, "'%s' contains a NUL character", param);
                return false;
            }
            msgs[i].content = s;
        } else if (json_object_is_type(content, json_type_array)) {
            srv_buf joined;
            srv_buf_init(&joined, max_bytes); // parts come from a body of at most max_bytes
            srv_buf_puts(&joined, "");
            size_t np = json_object_array_length(content);
            for (size_t k = 0; k < np; k++) {
                json_object *part = json_object_array_get_idx(content, k);
                const char *type = NULL, *text = NULL;
                size_t tlen = 0;
                if (!json_object_is_type(part, json_type_object) || srv_json_string(part, "type", &type, NULL, &e2) <= 0 ||
                    strcmp(type, "text") || srv_json_string(part, "text", &text, &tlen, &e2) <= 0) {
                    srv_buf_free(&joined);
                    srv_error_param(err, param, "'%s[%zu]' must be {\"type\": \"text\", \"text\": string} (only text "
                                    "parts are supported)", param, k);
                    return false;
                }
                if (k) srv_buf_puts(&joined, "\n");
                srv_buf_put(&joined, text, tlen);
            }
            if (joined.failed) {
                srv_buf_free(&joined);
                srv_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
                return false;
            }
            owned[i] = joined.data;
            msgs[i].content = joined.data;
        } else {
            srv_error_param(err, param, "'%s' must be a string or an array of text parts, not %s", param,
                            srv_json_type_name(content));
            return false;
        }
        *n_out = (int)i + 1;
    }
    return true;
}

void srv_route_chat(srv_req *rq, srv_reply *out) {
    srv_server *srv = rq->srv;
    srv_error err;
    srv_gen_params p;
    if (!srv_parse_gen(srv, rq->body, SRV_TASK_CHAT, &p, &err)) {
        srv_reply_error(out, &err);
        return;
    }
    size_t cap = SRV_MAX_MESSAGES;
    inf_chat_message *msgs = calloc(cap, sizeof *msgs);
    char **owned = calloc(cap, sizeof *owned);
    int n_msgs = 0;
    srv_model *m = NULL;
    char *rendered = NULL;
    srv_prompt prompt = {0};
    if (!msgs || !owned) {
        srv_error_set(&err, 500, "server_error", NULL, NULL, "out of memory");
        goto fail;
    }
    if (!srv_parse_messages(rq->body, srv->opt.max_body, msgs, owned, &n_msgs, &err)) goto fail;
    if (!(m = srv_registry_acquire(srv->reg, p.model, p.has_keep_alive ? &p.keep_alive : NULL, &err))) goto fail;
    inf_status st = inf_chat_render(m->model, srv->chat_template, msgs, n_msgs, true, &rendered);
    if (st != INF_OK) {
        srv_error_param(&err, "messages", "cannot render the chat with template '%s': %s", m->chat_template,
                        inf_last_error());
        goto fail;
    }
    if (!srv_tokenize_prompt(m->model, rendered, strlen(rendered), "messages", &prompt, &err) ||
        !srv_check_prompt_len(srv, &prompt, "messages", &err))
        goto fail;
    // Models without the end-of-turn marker as a special token would print it and go on: stop there.
    const char *marker = inf_chat_end_marker(m->model, srv->chat_template);
    if (marker && *marker) p.stops[p.n_stops++] = marker;
    srv_generate(rq, out, SRV_TASK_CHAT, m, &p, &prompt, 1);
    m = NULL; // the task took it
    goto done;
fail:
    if (m) srv_registry_release(srv->reg, m);
    srv_reply_error(out, &err);
done:
    free(prompt.toks);
    free(rendered);
    if (owned)
        for (int i = 0; i < n_msgs; i++) free(owned[i]);
    free(owned);
    free(msgs);
}

// ---------------------------------------------------------------------------------------------------------
// POST /v1/embeddings
// ---------------------------------------------------------------------------------------------------------
void srv_route_embeddings(srv_req *rq, srv_reply *out) {
    srv_server *srv = rq->srv;
    srv_error err;
    const char *model_name = NULL, *format = "float";
    double keep_alive = 0;
    int r;
    if (srv_json_string(rq->body, "model", &model_name, NULL, &err) < 0 ||
        srv_json_string(rq->body, "encoding_format", &format, NULL, &err) < 0 ||
        (r = srv_parse_keep_alive(rq->body, &keep_alive, &err)) < 0) {
        srv_reply_error(out, &err);
        return;
    }
    bool base64 = !strcmp(format, "base64");
    if (!base64 && strcmp(format, "float")) {
        srv_error_param(&err, "encoding_format", "'encoding_format' must be \"float\" or \"base64\"");
        srv_reply_error(out, &err);
        return;
    }
    json_object *iv = NULL;
    if (!json_object_object_get_ex(rq->body, "input", &iv) || json_object_is_type(iv, json_type_null)) {
        srv_error_param(&err, "input", "'input' is required");
        srv_reply_error(out, &err);
        return;
    }
    json_object *items[SRV_MAX_JOBS];
    int n_items = 0;
    if (json_object_is_type(iv, json_type_string)) {
        items[n_items++] = iv;
    } else if (json_object_is_type(iv, json_type_array)) {
        size_t n = json_object_array_length(iv);
        json_object *first = n ? json_object_array_get_idx(iv, 0) : NULL;
        if (first && json_object_is_type(first, json_type_int)) {
            items[n_items++] = iv;
        } else {
            if (n == 0 || n > SRV_MAX_JOBS) {
                srv_error_param(&err, "input", "'input' holds %zu inputs; 1 to %d are allowed", n, SRV_MAX_JOBS);
                srv_reply_error(out, &err);
                return;
            }
            for (size_t i = 0; i < n; i++) {
                json_object *it = json_object_array_get_idx(iv, i);
                bool is_str = json_object_is_type(it, json_type_string);
                if ((!is_str && !json_object_is_type(it, json_type_array)) ||
                    (is_str && memchr(json_object_get_string(it), '\0', (size_t)json_object_get_string_len(it)))) {
                    srv_error_param(&err, "input", "'input[%zu]' must be a string (without NUL) or an array of token "
                                    "ids, not %s", i, srv_json_type_name(it));
                    srv_reply_error(out, &err);
                    return;
                }
                items[n_items++] = it;
            }
        }
    } else {
        srv_error_param(&err, "input", "'input' must be a string or an array, not %s", srv_json_type_name(iv));
        srv_reply_error(out, &err);
        return;
    }

    srv_model *m = srv_registry_acquire(srv->reg, model_name, r > 0 ? &keep_alive : NULL, &err);
    if (!m) {
        srv_reply_error(out, &err);
        return;
    }
    srv_prompt prompts[SRV_MAX_JOBS] = {{0}};
    if (!srv_prompt_items(srv, m, items, n_items, "input", prompts, &err)) {
        srv_prompts_free(prompts, n_items);
        srv_registry_release(srv->reg, m);
        srv_reply_error(out, &err);
        return;
    }
    srv_task *t = srv_task_new(srv, m, SRV_TASK_EMBEDDING, n_items, false, 0);
    if (!t) {
        srv_prompts_free(prompts, n_items);
        srv_registry_release(srv->reg, m);
        srv_error_set(&err, 500, "server_error", NULL, NULL, "out of memory");
        srv_reply_error(out, &err);
        return;
    }
    bool ok = true;
    for (int i = 0; i < n_items && ok; i++) {
        inf_request req = {.prompt = prompts[i].toks, .n_prompt = prompts[i].n, .sampling = inf_sampler_default_params(),
                           .max_tokens = 0, .timeout_seconds = srv->opt.timeout};
        ok = srv_task_submit(t, i, &req, &err);
    }
    srv_prompts_free(prompts, n_items);
    if (ok && !srv_task_wait_all(t, rq->conn)) {
        srv_error_set(&err, 499, "invalid_request_error", "client_closed_request", NULL, "the client closed the "
                                                                                          "connection");
        ok = false;
    }
    if (ok && srv_task_failed(t, &err)) ok = false;
    if (!ok) {
        srv_task_finish(t);
        srv_reply_error(out, &err);
        return;
    }
    json_object *o = json_object_new_object(), *data = json_object_new_array();
    json_object_object_add(o, "object", json_object_new_string("list"));
    for (int i = 0; i < n_items; i++) {
        const srv_job *j = &t->jobs[i];
        json_object *e = json_object_new_object();
        json_object_object_add(e, "object", json_object_new_string("embedding"));
        json_object_object_add(e, "index", json_object_new_int(i));
        if (base64) {
            // Little-endian float32, as OpenAI's base64 encoding is (this build targets little-endian x86-64).
            char *b = srv_base64(j->embedding, sizeof(float) * (size_t)j->res.n_embd);
            json_object_object_add(e, "embedding", json_object_new_string(b ? b : ""));
            free(b);
        } else {
            json_object *vec = json_object_new_array_ext(j->res.n_embd);
            for (int k = 0; k < j->res.n_embd; k++) json_object_array_add(vec, srv_json_float(j->embedding[k]));
            json_object_object_add(e, "embedding", vec);
        }
        json_object_array_add(data, e);
    }
    json_object_object_add(o, "data", data);
    json_object_object_add(o, "model", json_object_new_string(m->name));
    json_object_object_add(o, "usage", srv_task_usage(t));
    srv_task_finish(t);
    srv_reply_json(out, 200, o);
}

// ---------------------------------------------------------------------------------------------------------
// GET /v1/models: loaded models first, then the files in models_dir that are not loaded.
// ---------------------------------------------------------------------------------------------------------
typedef struct {
    json_object *data;
} srv_models_ctx;

static json_object *srv_model_entry(const char *name, long created, const char *state) {
    json_object *e = json_object_new_object();
    json_object_object_add(e, "id", json_object_new_string(name));
    json_object_object_add(e, "object", json_object_new_string("model"));
    json_object_object_add(e, "created", json_object_new_int64(created));
    json_object_object_add(e, "owned_by", json_object_new_string("inferno"));
    json_object_object_add(e, "status", json_object_new_string(state));
    return e;
}

static void srv_models_each(void *user, const srv_model *m, int refs) {
    srv_models_ctx *c = user;
    (void)refs;
    json_object_array_add(c->data, srv_model_entry(m->name, m->state == SRV_MODEL_READY ? m->created : 0,
                                                   m->state == SRV_MODEL_READY ? "loaded" : "loading"));
}

void srv_route_models(srv_req *rq, srv_reply *out) {
    srv_models_ctx c = {.data = json_object_new_array()};
    srv_registry_each(rq->srv->reg, srv_models_each, &c);
    enum { SRV_MAX_LISTED = 1024 };
    char **names = calloc(SRV_MAX_LISTED, sizeof *names);
    int n = names ? srv_registry_list_dir(rq->srv->reg, names, SRV_MAX_LISTED) : 0;
    for (int i = 0; i < n; i++) {
        bool listed = false;
        for (size_t k = 0; k < json_object_array_length(c.data) && !listed; k++) {
            json_object *id = NULL;
            json_object_object_get_ex(json_object_array_get_idx(c.data, k), "id", &id);
            listed = !strcmp(json_object_get_string(id), names[i]);
        }
        if (!listed) json_object_array_add(c.data, srv_model_entry(names[i], 0, "available"));
        free(names[i]);
    }
    free(names);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "object", json_object_new_string("list"));
    json_object_object_add(o, "data", c.data);
    srv_reply_json(out, 200, o);
}
