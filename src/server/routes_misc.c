// routes_misc.c: the routes that are not OpenAI's: GET /health, POST /tokenize and /detokenize (llama.cpp's
// shapes), GET /metrics (Prometheus text) and GET /v1/status (models, devices, memory, limits).
// Left out: slot inspection, props, and changing anything at run time through HTTP.
#include "server/server_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SRV_MAX_GAUGE_MODELS 4096 // models listed by /metrics

void srv_route_health(srv_req *rq, srv_reply *out) {
    int state = atomic_load(&rq->srv->state);
    json_object *o = json_object_new_object();
    const char *s = state == SRV_LOADING ? "loading" : state == SRV_READY ? "ok" : "shutting_down";
    json_object_object_add(o, "status", json_object_new_string(s));
    srv_reply_json(out, state == SRV_READY ? 200 : 503, o);
    if (out->resp && state == SRV_LOADING) MHD_add_response_header(out->resp, "Retry-After", "1");
}

// The model a /tokenize or /detokenize body names ("model" is optional there).
static srv_model *srv_misc_model(srv_req *rq, srv_error *err) {
    const char *name = NULL;
    if (srv_json_string(rq->body, "model", &name, NULL, err) < 0) return NULL;
    return srv_registry_acquire(rq->srv->reg, name, NULL, err);
}

// POST /tokenize {"content", "add_special" (false), "parse_special" (true), "with_pieces" (false), "model"}
// -> {"tokens": [ids]} or, with pieces, {"tokens": [{"id", "piece"}]}.
void srv_route_tokenize(srv_req *rq, srv_reply *out) {
    srv_error err;
    const char *content = NULL;
    size_t len = 0;
    bool add_special = false, parse_special = true, with_pieces = false;
    int r = srv_json_string(rq->body, "content", &content, &len, &err);
    if (r == 0) srv_error_param(&err, "content", "'content' is required");
    if (r <= 0 || srv_json_bool(rq->body, "add_special", &add_special, &err) < 0 ||
        srv_json_bool(rq->body, "parse_special", &parse_special, &err) < 0 ||
        srv_json_bool(rq->body, "with_pieces", &with_pieces, &err) < 0) {
        srv_reply_error(out, &err);
        return;
    }
    srv_model *m = srv_misc_model(rq, &err);
    if (!m) {
        srv_reply_error(out, &err);
        return;
    }
    int n = 0;
    inf_token *toks = NULL;
    if (inf_tokenize(m->model, content, len, add_special, parse_special, NULL, 0, &n) != INF_OK ||
        (n > 0 && !(toks = malloc(sizeof *toks * (size_t)n))) ||
        (n > 0 && inf_tokenize(m->model, content, len, add_special, parse_special, toks, n, &n) != INF_OK)) {
        srv_error_param(&err, "content", "cannot tokenize 'content': %s", inf_last_error());
        free(toks);
        srv_registry_release(rq->srv->reg, m);
        srv_reply_error(out, &err);
        return;
    }
    json_object *arr = json_object_new_array_ext(n);
    for (int i = 0; i < n; i++) {
        if (!with_pieces) {
            json_object_array_add(arr, json_object_new_int(toks[i]));
            continue;
        }
        char piece[256];
        int pl = inf_token_to_piece(m->model, toks[i], true, piece, (int)sizeof piece);
        json_object *e = json_object_new_object();
        json_object_object_add(e, "id", json_object_new_int(toks[i]));
        json_object_object_add(e, "piece", srv_json_text(piece, pl < 0 ? 0 : pl > (int)sizeof piece ? sizeof piece : (size_t)pl));
        json_object_array_add(arr, e);
    }
    free(toks);
    srv_registry_release(rq->srv->reg, m);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "tokens", arr);
    srv_reply_json(out, 200, o);
}

// POST /detokenize {"tokens": [ids], "model"} -> {"content"}.
void srv_route_detokenize(srv_req *rq, srv_reply *out) {
    srv_error err;
    json_object *arr = NULL;
    if (!json_object_object_get_ex(rq->body, "tokens", &arr) || !json_object_is_type(arr, json_type_array)) {
        srv_error_param(&err, "tokens", "'tokens' is required and must be an array of token ids");
        srv_reply_error(out, &err);
        return;
    }
    size_t n = json_object_array_length(arr);
    if (n > SRV_MAX_TOKENS_IN) {
        srv_error_param(&err, "tokens", "'tokens' holds %zu ids; at most %d are allowed", n, SRV_MAX_TOKENS_IN);
        srv_reply_error(out, &err);
        return;
    }
    srv_model *m = srv_misc_model(rq, &err);
    if (!m) {
        srv_reply_error(out, &err);
        return;
    }
    inf_token *toks = malloc(sizeof *toks * (n ? n : 1));
    char *text = NULL;
    if (!toks) {
        srv_error_set(&err, 500, "server_error", NULL, NULL, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        json_object *v = json_object_array_get_idx(arr, i);
        int64_t id = json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : -1;
        if (id < 0 || id >= m->info.n_vocab) {
            char param[32];
            snprintf(param, sizeof param, "tokens[%zu]", i);
            srv_error_param(&err, param, "'%s' must be a token id in [0, %d)", param, m->info.n_vocab);
            goto fail;
        }
        toks[i] = (inf_token)id;
    }
    int need = inf_detokenize(m->model, toks, (int)n, true, false, NULL, 0);
    int cap = need < 0 ? -need : need + 1;
    if (!(text = malloc((size_t)cap + 1))) {
        srv_error_set(&err, 500, "server_error", NULL, NULL, "out of memory");
        goto fail;
    }
    int got = inf_detokenize(m->model, toks, (int)n, true, false, text, cap);
    if (got < 0) {
        srv_error_set(&err, 500, "server_error", NULL, NULL, "detokenize: the text did not fit %d bytes", cap);
        goto fail;
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "content", srv_json_text(text, (size_t)got));
    free(text);
    free(toks);
    srv_registry_release(rq->srv->reg, m);
    srv_reply_json(out, 200, o);
    return;
fail:
    free(text);
    free(toks);
    srv_registry_release(rq->srv->reg, m);
    srv_reply_error(out, &err);
}

// ---------------------------------------------------------------------------------------------------------
// GET /metrics
// ---------------------------------------------------------------------------------------------------------
typedef struct {
    char name[SRV_MAX_NAME + 1];
    bool ready;
    inf_engine_stats st;
} srv_gauge_row;

typedef struct {
    srv_gauge_row *rows;
    int n, cap;
} srv_gauge_ctx;

static void srv_gauge_each(void *user, const srv_model *m, int refs) {
    srv_gauge_ctx *c = user;
    (void)refs;
    if (c->n == c->cap) return;
    srv_gauge_row *r = &c->rows[c->n++];
    snprintf(r->name, sizeof r->name, "%s", m->name);
    r->ready = m->state == SRV_MODEL_READY;
    memset(&r->st, 0, sizeof r->st);
    if (r->ready) inf_engine_get_stats(m->engine, &r->st);
}

void srv_route_metrics(srv_req *rq, srv_reply *out) {
    srv_server *srv = rq->srv;
    srv_buf b;
    srv_buf_init(&b, 4u << 20);
    srv_metrics_render(srv->metrics, &b);
    srv_gauge_ctx c = {.rows = calloc(SRV_MAX_GAUGE_MODELS, sizeof(srv_gauge_row)), .cap = SRV_MAX_GAUGE_MODELS};
    if (c.rows) srv_registry_each(srv->reg, srv_gauge_each, &c);
    static const struct {
        const char *name, *help;
        size_t off;
    } gauges[] = {
        {"inferno_queue_depth", "Requests waiting for a sequence slot.", offsetof(inf_engine_stats, queued)},
        {"inferno_running_sequences", "Sequences generating or reading their prompt.", offsetof(inf_engine_stats, running)},
        {"inferno_kv_cells_used", "KV cache cells holding a token.", offsetof(inf_engine_stats, cells_used)},
        {"inferno_kv_cells_total", "KV cache cells of the model's engine.", offsetof(inf_engine_stats, cells_total)},
    };
    for (size_t g = 0; g < sizeof gauges / sizeof gauges[0]; g++) {
        srv_buf_printf(&b, "# HELP %s %s\n# TYPE %s gauge\n", gauges[g].name, gauges[g].help, gauges[g].name);
        for (int i = 0; i < c.n; i++) {
            if (!c.rows[i].ready) continue;
            int v;
            memcpy(&v, (const char *)&c.rows[i].st + gauges[g].off, sizeof v);
            srv_buf_printf(&b, "%s{model=\"%s\"} %d\n", gauges[g].name, c.rows[i].name, v);
        }
    }
    // Where each engine's scheduler thread spends its time (counters since the model's load; a reload
    // starts them again, which Prometheus treats as a counter reset).
    srv_buf_puts(&b, "# HELP inferno_engine_steps_total Forward steps of the model's engine.\n"
                     "# TYPE inferno_engine_steps_total counter\n");
    for (int i = 0; i < c.n; i++)
        if (c.rows[i].ready)
            srv_buf_printf(&b, "inferno_engine_steps_total{model=\"%s\"} %llu\n", c.rows[i].name,
                           (unsigned long long)c.rows[i].st.steps);
    srv_buf_puts(&b, "# HELP inferno_engine_step_seconds_total Scheduler thread time of the model's engine by "
                     "part: forward pass, sample (sampler, logprobs), output (detokenizing, stop strings, "
                     "callbacks), other (batch building, admission, locking).\n"
                     "# TYPE inferno_engine_step_seconds_total counter\n");
    for (int i = 0; i < c.n; i++) {
        if (!c.rows[i].ready) continue;
        const inf_engine_stats *st = &c.rows[i].st;
        const struct {
            const char *part;
            double v;
        } parts[] = {{"forward", st->forward_seconds},
                     {"sample", st->sample_seconds},
                     {"output", st->output_seconds},
                     {"other", st->other_seconds}};
        for (size_t k = 0; k < sizeof parts / sizeof parts[0]; k++)
            srv_buf_printf(&b, "inferno_engine_step_seconds_total{model=\"%s\",part=\"%s\"} %.6f\n",
                           c.rows[i].name, parts[k].part, parts[k].v);
    }
    free(c.rows);
    uint64_t loads, unloads, bytes;
    int n_loaded;
    srv_registry_counts(srv->reg, &loads, &unloads, &bytes, &n_loaded);
    srv_buf_printf(&b,
                   "# HELP inferno_models_loaded Models loaded now.\n# TYPE inferno_models_loaded gauge\n"
                   "inferno_models_loaded %d\n"
                   "# HELP inferno_models_bytes Bytes of loaded models (files and sessions).\n"
                   "# TYPE inferno_models_bytes gauge\ninferno_models_bytes %llu\n"
                   "# HELP inferno_model_loads_total Model loads.\n# TYPE inferno_model_loads_total counter\n"
                   "inferno_model_loads_total %llu\n"
                   "# HELP inferno_model_unloads_total Model unloads.\n# TYPE inferno_model_unloads_total counter\n"
                   "inferno_model_unloads_total %llu\n"
                   "# HELP inferno_requests_active Generation and embedding requests not yet answered.\n"
                   "# TYPE inferno_requests_active gauge\ninferno_requests_active %d\n",
                   n_loaded, (unsigned long long)bytes, (unsigned long long)loads, (unsigned long long)unloads,
                   atomic_load(&srv->active));
    if (b.failed) {
        srv_error err;
        srv_error_set(&err, 500, "server_error", NULL, NULL, "the metrics text passed its cap");
        srv_buf_free(&b);
        srv_reply_error(out, &err);
        return;
    }
    srv_reply_text(out, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    srv_buf_free(&b);
}

// ---------------------------------------------------------------------------------------------------------
// GET /v1/status
// ---------------------------------------------------------------------------------------------------------
typedef struct {
    json_object *models;
    json_object *gpus; // distinct GPU descriptions of loaded models
    srv_server *srv;
    double now;
} srv_status_ctx;

static void srv_status_each(void *user, const srv_model *m, int refs) {
    srv_status_ctx *c = user;
    json_object *e = json_object_new_object();
    json_object_object_add(e, "name", json_object_new_string(m->name));
    json_object_object_add(e, "path", json_object_new_string(m->path));
    json_object_object_add(e, "state", json_object_new_string(m->state == SRV_MODEL_READY ? "ready" : "loading"));
    json_object_object_add(e, "preloaded", json_object_new_boolean(m->preloaded));
    json_object_object_add(e, "requests", json_object_new_int(refs));
    if (m->state == SRV_MODEL_READY) {
        const inf_model_info *in = &m->info;
        const srv_options *o = &c->srv->opt;
        json_object_object_add(e, "arch", json_object_new_string(in->arch));
        json_object_object_add(e, "file_type", json_object_new_string(in->file_type));
        json_object_object_add(e, "n_params", json_object_new_int64((int64_t)in->n_params));
        json_object_object_add(e, "file_bytes", json_object_new_int64((int64_t)in->file_size));
        json_object_object_add(e, "session_bytes", json_object_new_int64((int64_t)m->session_bytes));
        json_object_object_add(e, "n_vocab", json_object_new_int(in->n_vocab));
        json_object_object_add(e, "n_ctx_train", json_object_new_int(in->n_ctx_train));
        json_object_object_add(e, "n_embd", json_object_new_int(in->n_embd));
        json_object_object_add(e, "n_layer", json_object_new_int(in->n_layer));
        json_object_object_add(e, "n_head", json_object_new_int(in->n_head));
        json_object_object_add(e, "n_head_kv", json_object_new_int(in->n_head_kv));
        json_object_object_add(e, "chat_template", json_object_new_string(m->chat_template));
        json_object_object_add(e, "n_gpu_layers", json_object_new_int(in->n_gpu_layers));
        json_object_object_add(e, "gpu", json_object_new_string(in->gpu ? in->gpu : ""));
        json_object_object_add(e, "n_ctx", json_object_new_int(m->n_ctx));
        json_object_object_add(e, "n_batch", json_object_new_int(o->engine.n_batch));
        json_object_object_add(e, "n_parallel", json_object_new_int(o->engine.n_seq_max));
        json_object_object_add(e, "max_queue", json_object_new_int(o->engine.max_queue));
        json_object_object_add(e, "keep_alive", m->preloaded ? NULL : srv_json_float(m->keep_alive));
        json_object_object_add(e, "idle_seconds", srv_json_float(refs ? 0 : c->now - m->last_used));
        inf_engine_stats st;
        inf_engine_get_stats(m->engine, &st);
        json_object_object_add(e, "running", json_object_new_int(st.running));
        json_object_object_add(e, "queued", json_object_new_int(st.queued));
        json_object_object_add(e, "kv_cells_used", json_object_new_int(st.cells_used));
        json_object_object_add(e, "kv_cells_total", json_object_new_int(st.cells_total));
        json_object_object_add(e, "prompt_tokens", json_object_new_int64((int64_t)st.prompt_tokens));
        json_object_object_add(e, "generated_tokens", json_object_new_int64((int64_t)st.generated_tokens));
        json_object_object_add(e, "requests_done", json_object_new_int64((int64_t)st.requests_done));
        bool seen = !in->gpu || !in->gpu[0] || in->n_gpu_layers <= 0;
        for (size_t k = 0; k < json_object_array_length(c->gpus) && !seen; k++) {
            json_object *info = NULL;
            json_object_object_get_ex(json_object_array_get_idx(c->gpus, k), "info", &info);
            seen = !strcmp(json_object_get_string(info), in->gpu);
        }
        if (!seen) {
            json_object *g = json_object_new_object();
            json_object_object_add(g, "type", json_object_new_string("gpu"));
            json_object_object_add(g, "info", json_object_new_string(in->gpu));
            json_object_array_add(c->gpus, g);
        }
    }
    json_object_array_add(c->models, e);
}

// Resident set size from /proc/self/statm (0 where it cannot be read).
static uint64_t srv_rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, rss = 0;
    if (!f) return 0;
    if (fscanf(f, "%llu %llu", &size, &rss) != 2) rss = 0;
    fclose(f);
    return rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

void srv_route_status(srv_req *rq, srv_reply *out) {
    srv_server *srv = rq->srv;
    int state = atomic_load(&srv->state);
    srv_status_ctx c = {.models = json_object_new_array(), .gpus = json_object_new_array(), .srv = srv,
                        .now = inf_time_now()};
    srv_registry_each(srv->reg, srv_status_each, &c);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "version", json_object_new_string(INFERNO_VERSION));
    json_object_object_add(o, "state", json_object_new_string(state == SRV_LOADING ? "loading"
                                                              : state == SRV_READY ? "ready" : "shutting_down"));
    json_object_object_add(o, "uptime_seconds", srv_json_float(c.now - srv->t_start));
    json_object_object_add(o, "models", c.models);

    json_object *devices = json_object_new_array(), *cpu = json_object_new_object();
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    json_object_object_add(cpu, "type", json_object_new_string("cpu"));
    json_object_object_add(cpu, "cores", json_object_new_int((int)cores));
    json_object_object_add(cpu, "threads", json_object_new_int(srv->opt.engine.n_threads ? srv->opt.engine.n_threads
                                                                                         : (int)cores));
    json_object_object_add(cpu, "info", json_object_new_string(inf_system_info()));
    json_object_array_add(devices, cpu);
    for (size_t k = 0; k < json_object_array_length(c.gpus); k++)
        json_object_array_add(devices, json_object_get(json_object_array_get_idx(c.gpus, k)));
    json_object_put(c.gpus);
    json_object_object_add(o, "devices", devices);

    uint64_t loads, unloads, bytes;
    int n_loaded;
    srv_registry_counts(srv->reg, &loads, &unloads, &bytes, &n_loaded);
    long page = sysconf(_SC_PAGESIZE), phys = sysconf(_SC_PHYS_PAGES), avail = sysconf(_SC_AVPHYS_PAGES);
    json_object *mem = json_object_new_object();
    json_object_object_add(mem, "rss_bytes", json_object_new_int64((int64_t)srv_rss_bytes()));
    json_object_object_add(mem, "system_total_bytes", json_object_new_int64(phys > 0 ? (int64_t)phys * page : 0));
    json_object_object_add(mem, "system_available_bytes", json_object_new_int64(avail > 0 ? (int64_t)avail * page : 0));
    json_object_object_add(mem, "models_bytes", json_object_new_int64((int64_t)bytes));
    json_object_object_add(mem, "models_loaded", json_object_new_int(n_loaded));
    json_object_object_add(mem, "max_memory_bytes", json_object_new_int64((int64_t)srv->opt.max_memory));
    json_object_object_add(mem, "max_models", json_object_new_int(srv->opt.max_models));
    json_object_object_add(o, "memory", mem);

    json_object *lim = json_object_new_object();
    json_object_object_add(lim, "max_body_bytes", json_object_new_int64((int64_t)srv->opt.max_body));
    json_object_object_add(lim, "max_json_depth", json_object_new_int(srv->opt.max_json_depth));
    json_object_object_add(lim, "max_prompt_tokens", json_object_new_int(srv->opt.max_prompt_tokens));
    json_object_object_add(lim, "max_tokens", json_object_new_int(srv->opt.max_tokens));
    json_object_object_add(lim, "timeout_seconds", srv_json_float(srv->opt.timeout));
    json_object_object_add(lim, "max_connections", json_object_new_int(srv->opt.max_connections));
    json_object_object_add(lim, "requests_active", json_object_new_int(atomic_load(&srv->active)));
    json_object_object_add(o, "limits", lim);
    srv_reply_json(out, 200, o);
}
