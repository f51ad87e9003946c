// server.c: the server's life: options, start (socket first, so /health answers "loading" while models
// load), upkeep, draining and shutdown.
//
// Shutdown order (srv_drain, then srv_free): stop accepting connections and answer 503 on open ones; let
// in-flight requests finish while the caller waits; then mark the server closing, which makes every
// waiting handler and stream reader cancel its engine requests and answer; wait for them; stop the HTTP
// daemon (joining its threads); unload the models (engines cancel anything left); free the rest.
// Left out: reloading configuration on a signal.
#include "server/server_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SRV_CLOSE_WAIT_S 10.0 // most seconds srv_free waits for cancelled requests to answer

srv_options srv_default_options(void) {
    inf_model_params mp = inf_model_default_params();
    return (srv_options){.host = "127.0.0.1",
                         .port = 8080,
                         .engine = inf_engine_default_params(),
                         .gpu_enabled = mp.gpu_enabled,
                         .n_gpu_layers = mp.n_gpu_layers,
                         .max_body = 8u << 20,
                         .max_json_depth = 64,
                         .max_tokens = 4096,
                         .timeout = 600,
                         .keep_alive = 300,
                         .max_connections = 256};
}

static char *srv_dup_or_null(const char *s) { return s && *s ? strdup(s) : NULL; }

static inf_status srv_check_options(const srv_options *o) {
    if (o->port < 0 || o->port > 65535) return inf_fail(INF_ERR_INVALID_ARG, "port %d out of range [0, 65535]", o->port);
    if (o->n_preload < 0 || o->n_preload > SRV_MAX_PRELOAD)
        return inf_fail(INF_ERR_INVALID_ARG, "at most %d preloaded models", SRV_MAX_PRELOAD);
    if (o->max_body < 64) return inf_fail(INF_ERR_INVALID_ARG, "max_body %zu is below 64 bytes", o->max_body);
    if (o->max_json_depth < 2 || o->max_json_depth > 10000)
        return inf_fail(INF_ERR_INVALID_ARG, "max_json_depth %d out of range [2, 10000]", o->max_json_depth);
    if (o->max_tokens < 1) return inf_fail(INF_ERR_INVALID_ARG, "max_tokens %d is below 1", o->max_tokens);
    if (o->max_prompt_tokens < 0) return inf_fail(INF_ERR_INVALID_ARG, "max_prompt_tokens %d is negative", o->max_prompt_tokens);
    if (!(o->timeout >= 0)) return inf_fail(INF_ERR_INVALID_ARG, "timeout %g is negative", o->timeout);
    if (o->max_connections < 1) return inf_fail(INF_ERR_INVALID_ARG, "max_connections %d is below 1", o->max_connections);
    if (!o->host || !*o->host) return inf_fail(INF_ERR_INVALID_ARG, "empty host");
    return INF_OK;
}

inf_status srv_start(const srv_options *opt, srv_server **out) {
    *out = NULL;
    inf_status st = srv_check_options(opt);
    if (st != INF_OK) return st;
    srv_server *srv = calloc(1, sizeof *srv);
    if (!srv) return inf_fail(INF_ERR_NOMEM, "server: out of memory");
    srv->opt = *opt;
    srv->host = strdup(opt->host);
    srv->models_dir = srv_dup_or_null(opt->models_dir);
    srv->chat_template = srv_dup_or_null(opt->chat_template);
    srv->api_key = srv_dup_or_null(opt->api_key);
    srv->cors_origin = srv_dup_or_null(opt->cors_origin);
    srv->opt.host = srv->host;
    srv->opt.models_dir = srv->models_dir;
    srv->opt.chat_template = srv->chat_template;
    srv->opt.api_key = srv->api_key;
    srv->opt.cors_origin = srv->cors_origin;
    for (int i = 0; i < opt->n_preload; i++) {
        srv->preload[i].name = strdup(opt->preload[i].name);
        srv->preload[i].path = strdup(opt->preload[i].path);
        srv->opt.preload[i] = srv->preload[i];
        if (!srv->preload[i].name || !srv->preload[i].path) st = INF_ERR_NOMEM;
    }
    srv->t_start = inf_time_now();
    srv->id_salt = (uint64_t)(inf_time_now() * 1e9) ^ ((uint64_t)getpid() << 32);
    atomic_store(&srv->state, SRV_LOADING);
    if (st != INF_OK || !srv->host || !(srv->metrics = srv_metrics_new())) {
        srv_free(srv);
        return inf_fail(INF_ERR_NOMEM, "server: out of memory");
    }
    srv->notifier = srv_notifier_new(); // before any engine; without it the callbacks signal themselves
    if ((st = srv_registry_init(&srv->opt, &srv->reg)) != INF_OK) {
        srv_free(srv);
        return st;
    }
    for (int i = 0; i < opt->n_preload; i++) {
        if ((st = srv_registry_preload(srv->reg, srv->preload[i].name, srv->preload[i].path)) != INF_OK) {
            srv_free(srv);
            return st;
        }
    }
    if ((st = srv_http_start(srv)) != INF_OK) {
        srv_free(srv);
        return st;
    }
    *out = srv;
    return INF_OK;
}

int srv_port(const srv_server *srv) { return srv->port; }

inf_status srv_load_preloaded(srv_server *srv) {
    inf_status st = srv_registry_load_preloaded(srv->reg);
    if (st != INF_OK) return st;
    int expect = SRV_LOADING;
    atomic_compare_exchange_strong(&srv->state, &expect, SRV_READY);
    return INF_OK;
}

void srv_maintain(srv_server *srv) {
    double now = inf_time_now();
    srv_registry_maintain(srv->reg, now);
    srv_metrics_tick(srv->metrics, srv_registry_generated_total(srv->reg), now);
}

void srv_drain(srv_server *srv) {
    if (atomic_load(&srv->state) >= SRV_DRAINING) return;
    atomic_store(&srv->state, SRV_DRAINING);
    srv_http_quiesce(srv);
}

int srv_active_requests(srv_server *srv) { return atomic_load(&srv->active); }

void srv_free(srv_server *srv) {
    if (!srv) return;
    if (srv->mhd) {
        srv_drain(srv);
        atomic_store(&srv->state, SRV_CLOSING);
        // Waiting handlers and stream readers see SRV_CLOSING within a wait slice and cancel their requests.
        double t0 = inf_time_now();
        while (atomic_load(&srv->active) > 0 && inf_time_now() - t0 < SRV_CLOSE_WAIT_S) usleep(10 * 1000);
        if (atomic_load(&srv->active) > 0)
            inf_log(INF_LOG_WARN, "serve: %d requests still open after %.0f s; closing anyway",
                    atomic_load(&srv->active), SRV_CLOSE_WAIT_S);
        srv_http_stop(srv);
    }
    srv_registry_free(srv->reg);
    srv_notifier_free(srv->notifier); // after the engines: no callback can queue a task any more
    srv_metrics_free(srv->metrics);
    for (int i = 0; i < SRV_MAX_PRELOAD; i++) {
        free((char *)srv->preload[i].name);
        free((char *)srv->preload[i].path);
    }
    free(srv->host);
    free(srv->models_dir);
    free(srv->chat_template);
    free(srv->api_key);
    free(srv->cors_origin);
    free(srv);
}
