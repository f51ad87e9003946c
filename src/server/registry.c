// registry.c: the models the server answers for, each loaded with its own engine, found by API name.
//
// Two kinds of entries: preloaded models (--model; loaded at start, never unloaded) and on-demand models
// (<models_dir>/<name>.gguf, loaded by the first request that names them). On-demand models are unloaded
// when idle past their keep-alive, or earlier, least recently used first, when a load needs room under the
// budget (--max-models, --max-memory). A model in use (refs > 0) is never unloaded.
//
// Budget: an entry's bytes are its file size until it is loaded, then file plus session (KV cache and
// scratch, inf_model_session_bytes). Room is made for the file size before loading; a session that then
// takes the total past the budget evicts more idle models if there are any, and is otherwise tolerated.
//
// Locking: one mutex guards the list and every entry's refs, last_used, keep_alive and state. Loading and
// unloading (slow: file mapping, thread start and join) happen outside it: a loading entry is in the list in
// state LOADING, and requests for it wait on the condition variable.
// Left out: unloading a busy model to make room (the request gets 503 instead), reloading a changed file.
#include "server/server_int.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define SRV_MAX_DIR_ENTRIES 100000 // directory entries looked at by /v1/models

struct srv_registry {
    pthread_mutex_t mu;
    pthread_cond_t cv; // an entry left state LOADING
    srv_model *head;   // in insertion order (preloaded first)
    char *models_dir;
    char *chat_template;
    inf_engine_params ep;
    bool gpu_enabled;
    int n_gpu_layers;
    int max_models;
    uint64_t max_memory;
    double keep_alive;
    uint64_t retired_generated; // generated tokens of engines already freed
    uint64_t loads, unloads;
};

// API names double as file names under models_dir and as Prometheus label values.
static bool srv_name_valid(const char *name) {
    size_t n = strlen(name);
    if (n == 0 || n > SRV_MAX_NAME || name[0] == '.' || strstr(name, "..")) return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '_' || c == '-' || c == ':';
        if (!ok) return false;
    }
    return true;
}

inf_status srv_registry_init(const srv_options *opt, srv_registry **out) {
    *out = NULL;
    srv_registry *reg = calloc(1, sizeof *reg);
    if (!reg) return inf_fail(INF_ERR_NOMEM, "registry: out of memory");
    pthread_mutex_init(&reg->mu, NULL);
    pthread_cond_init(&reg->cv, NULL);
    reg->ep = opt->engine;
    reg->gpu_enabled = opt->gpu_enabled;
    reg->n_gpu_layers = opt->n_gpu_layers;
    reg->max_models = opt->max_models;
    reg->max_memory = opt->max_memory;
    reg->keep_alive = opt->keep_alive;
    if ((opt->models_dir && *opt->models_dir && !(reg->models_dir = strdup(opt->models_dir))) ||
        (opt->chat_template && *opt->chat_template && !(reg->chat_template = strdup(opt->chat_template)))) {
        srv_registry_free(reg);
        return inf_fail(INF_ERR_NOMEM, "registry: out of memory");
    }
    *out = reg;
    return INF_OK;
}

static srv_model *srv_model_new(const char *name, const char *path, bool preloaded, double keep_alive) {
    srv_model *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(path))) {
        free(m);
        return NULL;
    }
    snprintf(m->name, sizeof m->name, "%s", name);
    m->state = SRV_MODEL_LOADING;
    m->preloaded = preloaded;
    m->keep_alive = keep_alive;
    m->last_used = inf_time_now();
    struct stat stt;
    if (stat(path, &stt) == 0) m->bytes = (uint64_t)stt.st_size;
    return m;
}

// Frees what srv_model_open made; the entry must be out of the list.
static void srv_model_close(srv_registry *reg, srv_model *m) {
    if (!m) return;
    if (m->engine) {
        inf_engine_stats st;
        inf_engine_get_stats(m->engine, &st);
        inf_engine_free(m->engine);
        pthread_mutex_lock(&reg->mu);
        reg->retired_generated += st.generated_tokens;
        reg->unloads++;
        pthread_mutex_unlock(&reg->mu);
        inf_log(INF_LOG_INFO, "serve: model '%s' unloaded", m->name);
    }
    inf_model_free(m->model);
    free(m->path);
    free(m);
}

// Loads the file and starts its engine (outside the registry lock). The message names the model.
static inf_status srv_model_open(srv_registry *reg, srv_model *m) {
    double t0 = inf_time_now();
    inf_model_params mp = inf_model_default_params();
    mp.n_threads = reg->ep.n_threads;
    mp.gpu_enabled = reg->gpu_enabled;
    mp.n_gpu_layers = reg->n_gpu_layers;
    inf_status st = inf_model_load(m->path, &mp, &m->model);
    inf_engine_params ep = reg->ep;
    if (st == INF_OK && ep.n_threads == 0) {
        inf_model_info mi;
        inf_model_get_info(m->model, &mi);
        if (mi.n_layer > 0 && mi.n_gpu_layers >= mi.n_layer) {
            ep.n_threads = SRV_GPU_HOST_THREADS;
            inf_log(INF_LOG_INFO, "serve: model '%s' runs on the GPU: its engine uses %d CPU threads (--threads sets "
                                  "another count)", m->name, ep.n_threads);
        }
    }
    if (st == INF_OK) st = inf_engine_init(m->model, &ep, &m->engine);
    if (st == INF_OK && reg->chat_template) {
        // An explicit template must be one this build renders; say so at load rather than at every chat.
        inf_chat_message probe = {.role = "user", .content = "hi"};
        char *text = NULL;
        st = inf_chat_render(m->model, reg->chat_template, &probe, 1, true, &text);
        free(text);
    }
    if (st != INF_OK) {
        inf_error_prefix("model '%s'", m->name);
        inf_engine_free(m->engine);
        inf_model_free(m->model);
        m->engine = NULL;
        m->model = NULL;
        return st;
    }
    inf_model_get_info(m->model, &m->info);
    inf_engine_stats es;
    inf_engine_get_stats(m->engine, &es);
    m->n_ctx = es.cells_total;
    m->session_bytes = inf_model_session_bytes(m->model, m->n_ctx, reg->ep.n_batch, reg->ep.n_seq_max);
    m->bytes = m->info.file_size + m->session_bytes;
    m->chat_template = reg->chat_template ? reg->chat_template : inf_chat_template_detect(m->model);
    if (!m->chat_template) m->chat_template = "none";
    m->loaded_at = inf_time_now();
    m->created = (long)time(NULL);
    inf_log(INF_LOG_INFO, "serve: model '%s' loaded from %s in %.2f s (%s, %llu parameters, %d KV cells, %.1f MiB)",
            m->name, m->path, m->loaded_at - t0, m->info.file_type, (unsigned long long)m->info.n_params, m->n_ctx,
            (double)m->bytes / (1024.0 * 1024.0));
    return INF_OK;
}

static void srv_registry_unlink_locked(srv_registry *reg, srv_model *m) {
    for (srv_model **pp = &reg->head; *pp; pp = &(*pp)->next) {
        if (*pp == m) {
            *pp = m->next;
            m->next = NULL;
            return;
        }
    }
    assert(!"model not in the registry");
}

void srv_registry_free(srv_registry *reg) {
    if (!reg) return;
    srv_model *m = reg->head;
    reg->head = NULL;
    while (m) {
        srv_model *next = m->next;
        assert(m->refs == 0);
        srv_model_close(reg, m);
        m = next;
    }
    pthread_cond_destroy(&reg->cv);
    pthread_mutex_destroy(&reg->mu);
    free(reg->models_dir);
    free(reg->chat_template);
    free(reg);
}

static srv_model *srv_registry_find_locked(srv_registry *reg, const char *name) {
    for (srv_model *m = reg->head; m; m = m->next)
        if (!strcmp(m->name, name)) return m;
    return NULL;
}

inf_status srv_registry_preload(srv_registry *reg, const char *name, const char *path) {
    if (!srv_name_valid(name))
        return inf_fail(INF_ERR_INVALID_ARG, "model name '%s': use 1 to %d of A-Z a-z 0-9 . _ - : (no '..')", name,
                        SRV_MAX_NAME);
    pthread_mutex_lock(&reg->mu);
    bool dup = srv_registry_find_locked(reg, name) != NULL;
    pthread_mutex_unlock(&reg->mu);
    if (dup) return inf_fail(INF_ERR_INVALID_ARG, "model name '%s' is given twice", name);
    srv_model *m = srv_model_new(name, path, true, -1);
    if (!m) return inf_fail(INF_ERR_NOMEM, "registry: out of memory");
    pthread_mutex_lock(&reg->mu);
    srv_model **pp = &reg->head;
    while (*pp) pp = &(*pp)->next;
    *pp = m;
    pthread_mutex_unlock(&reg->mu);
    return INF_OK;
}

// Moves idle on-demand models to *victims, least recently used first, until one more model of need bytes
// fits. Returns whether it fits.
static bool srv_registry_make_room_locked(srv_registry *reg, uint64_t need, const srv_model *self,
                                          srv_model **victims) {
    for (;;) {
        int n = 0;
        uint64_t bytes = 0;
        for (srv_model *m = reg->head; m; m = m->next) {
            if (m == self) continue;
            n++;
            bytes += m->bytes;
        }
        bool fits = (reg->max_models <= 0 || n + 1 <= reg->max_models) &&
                    (reg->max_memory == 0 || bytes + need <= reg->max_memory);
        if (fits) return true;
        srv_model *lru = NULL;
        for (srv_model *m = reg->head; m; m = m->next)
            if (m != self && !m->preloaded && m->state == SRV_MODEL_READY && m->refs == 0 &&
                (!lru || m->last_used < lru->last_used))
                lru = m;
        if (!lru) return false;
        srv_registry_unlink_locked(reg, lru);
        lru->next = *victims;
        *victims = lru;
    }
}

static void srv_registry_close_list(srv_registry *reg, srv_model *list) {
    while (list) {
        srv_model *next = list->next;
        inf_log(INF_LOG_INFO, "serve: unloading idle model '%s' to make room", list->name);
        srv_model_close(reg, list);
        list = next;
    }
}

// The model a request without "model" gets: the first preloaded one, else the only one loaded.
static srv_model *srv_registry_default_locked(srv_registry *reg) {
    int n = 0;
    for (srv_model *m = reg->head; m; m = m->next) {
        if (m->preloaded) return m;
        n++;
    }
    return n == 1 ? reg->head : NULL;
}

srv_model *srv_registry_acquire(srv_registry *reg, const char *name, const double *keep_alive, srv_error *err) {
    pthread_mutex_lock(&reg->mu);
    for (;;) {
        srv_model *m = name ? srv_registry_find_locked(reg, name) : srv_registry_default_locked(reg);
        if (!m) break;
        if (m->state == SRV_MODEL_LOADING) {
            pthread_cond_wait(&reg->cv, &reg->mu);
            continue;
        }
        m->refs++;
        if (keep_alive && !m->preloaded) m->keep_alive = *keep_alive;
        pthread_mutex_unlock(&reg->mu);
        return m;
    }
    if (!name) {
        pthread_mutex_unlock(&reg->mu);
        srv_error_param(err, "model", "'model' is required: this server has no default model");
        return NULL;
    }
    // Not loaded: look for <models_dir>/<name>.gguf.
    char path[4096];
    struct stat stt;
    if (!reg->models_dir || !srv_name_valid(name) ||
        (size_t)snprintf(path, sizeof path, "%s/%s.gguf", reg->models_dir, name) >= sizeof path ||
        stat(path, &stt) != 0 || !S_ISREG(stt.st_mode)) {
        pthread_mutex_unlock(&reg->mu);
        srv_error_set(err, 404, "invalid_request_error", "model_not_found", "model",
                      "The model '%.200s' does not exist or you do not have access to it.", name);
        return NULL;
    }
    srv_model *victims = NULL;
    if (!srv_registry_make_room_locked(reg, (uint64_t)stt.st_size, NULL, &victims)) {
        pthread_mutex_unlock(&reg->mu);
        srv_registry_close_list(reg, victims);
        srv_error_set(err, 503, "server_error", "model_budget_full", "model",
                      "cannot load '%.200s': the model budget (--max-models %d, --max-memory %llu bytes) is taken by "
                      "models in use; try again later", name, reg->max_models, (unsigned long long)reg->max_memory);
        err->retry_after = 5;
        return NULL;
    }
    srv_model *m = srv_model_new(name, path, false, keep_alive ? *keep_alive : reg->keep_alive);
    if (!m) {
        pthread_mutex_unlock(&reg->mu);
        srv_registry_close_list(reg, victims);
        srv_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
        return NULL;
    }
    srv_model **pp = &reg->head;
    while (*pp) pp = &(*pp)->next;
    *pp = m;
    pthread_mutex_unlock(&reg->mu);
    srv_registry_close_list(reg, victims);
    victims = NULL;

    inf_status st = srv_model_open(reg, m);
    pthread_mutex_lock(&reg->mu);
    if (st != INF_OK) {
        srv_registry_unlink_locked(reg, m);
        pthread_cond_broadcast(&reg->cv);
        pthread_mutex_unlock(&reg->mu);
        srv_error_set(err, 500, "server_error", "model_load_failed", "model", "%s", inf_last_error());
        inf_log(INF_LOG_WARN, "serve: %s", inf_last_error());
        srv_model_close(reg, m);
        return NULL;
    }
    m->state = SRV_MODEL_READY;
    m->refs = 1;
    reg->loads++;
    // The session is known now; make room for it too if idle models can go.
    srv_registry_make_room_locked(reg, m->bytes, m, &victims);
    pthread_cond_broadcast(&reg->cv);
    pthread_mutex_unlock(&reg->mu);
    srv_registry_close_list(reg, victims);
    return m;
}

inf_status srv_registry_load_preloaded(srv_registry *reg) {
    for (;;) {
        pthread_mutex_lock(&reg->mu);
        srv_model *m = reg->head;
        while (m && !(m->preloaded && m->state == SRV_MODEL_LOADING)) m = m->next;
        pthread_mutex_unlock(&reg->mu);
        if (!m) return INF_OK;
        inf_status st = srv_model_open(reg, m);
        pthread_mutex_lock(&reg->mu);
        if (st != INF_OK) {
            srv_registry_unlink_locked(reg, m);
        } else {
            m->state = SRV_MODEL_READY;
            reg->loads++;
        }
        pthread_cond_broadcast(&reg->cv);
        pthread_mutex_unlock(&reg->mu);
        if (st != INF_OK) {
            srv_model_close(reg, m);
            return st;
        }
    }
}

void srv_registry_release(srv_registry *reg, srv_model *m) {
    if (!m) return;
    pthread_mutex_lock(&reg->mu);
    assert(m->refs > 0);
    m->refs--;
    m->last_used = inf_time_now();
    pthread_mutex_unlock(&reg->mu);
}

void srv_registry_maintain(srv_registry *reg, double now) {
    srv_model *expired = NULL;
    pthread_mutex_lock(&reg->mu);
    for (srv_model *m = reg->head, *next; m; m = next) {
        next = m->next;
        if (m->preloaded || m->state != SRV_MODEL_READY || m->refs > 0 || m->keep_alive < 0) continue;
        if (now - m->last_used < m->keep_alive) continue;
        srv_registry_unlink_locked(reg, m);
        m->next = expired;
        expired = m;
    }
    pthread_mutex_unlock(&reg->mu);
    while (expired) {
        srv_model *next = expired->next;
        inf_log(INF_LOG_INFO, "serve: model '%s' idle past its keep-alive of %g s", expired->name, expired->keep_alive);
        srv_model_close(reg, expired);
        expired = next;
    }
}

void srv_registry_each(srv_registry *reg, void (*fn)(void *user, const srv_model *m, int refs), void *user) {
    pthread_mutex_lock(&reg->mu);
    for (srv_model *m = reg->head; m; m = m->next) fn(user, m, m->refs);
    pthread_mutex_unlock(&reg->mu);
}

int srv_registry_list_dir(srv_registry *reg, char **names, int cap) {
    if (!reg->models_dir) return 0;
    DIR *d = opendir(reg->models_dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *de;
    for (int seen = 0; n < cap && seen < SRV_MAX_DIR_ENTRIES && (de = readdir(d)); seen++) {
        size_t len = strlen(de->d_name);
        if (len <= 5 || len - 5 > SRV_MAX_NAME || strcmp(de->d_name + len - 5, ".gguf")) continue;
        char name[SRV_MAX_NAME + 1];
        memcpy(name, de->d_name, len - 5);
        name[len - 5] = '\0';
        if (!srv_name_valid(name) || !(names[n] = strdup(name))) continue;
        n++;
    }
    closedir(d);
    return n;
}

uint64_t srv_registry_generated_total(srv_registry *reg) {
    pthread_mutex_lock(&reg->mu);
    uint64_t total = reg->retired_generated;
    for (srv_model *m = reg->head; m; m = m->next) {
        if (m->state != SRV_MODEL_READY) continue;
        inf_engine_stats st;
        inf_engine_get_stats(m->engine, &st);
        total += st.generated_tokens;
    }
    pthread_mutex_unlock(&reg->mu);
    return total;
}

void srv_registry_counts(srv_registry *reg, uint64_t *loads, uint64_t *unloads, uint64_t *bytes, int *n_loaded) {
    pthread_mutex_lock(&reg->mu);
    *loads = reg->loads;
    *unloads = reg->unloads;
    *bytes = 0;
    *n_loaded = 0;
    for (srv_model *m = reg->head; m; m = m->next) {
        if (m->state != SRV_MODEL_READY) continue;
        *bytes += m->bytes;
        (*n_loaded)++;
    }
    pthread_mutex_unlock(&reg->mu);
}
