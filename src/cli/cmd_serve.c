// cmd_serve.c: `inferno serve`: flags and configuration into server options, then the process's life:
// SIGINT and SIGTERM are blocked in every thread and taken here with sigtimedwait, so the main thread owns
// shutdown; between signals it runs the server's upkeep once a second.
//
// Shutdown: the first signal stops accepting connections and gives in-flight requests --shutdown-grace
// seconds to finish; a second signal, or the end of the grace, cancels what is left. Then everything is
// freed and the exit status is 0. A signal that comes while the preloaded models load is acted on once
// they are in.
// Left out: daemonizing and pid files (a service manager does that), reloading on SIGHUP.
#include "cli.h"
#include "server/server.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void serve_usage(FILE *out) {
    fprintf(out,
            "usage: inferno serve [--model [NAME=]FILE]... [options]\n\n"
            "OpenAI-compatible HTTP server: /v1/models, /v1/completions, /v1/chat/completions, /v1/embeddings,\n"
            "plus /health, /tokenize, /detokenize, /metrics and /v1/status (see docs/SERVER.md).\n\n"
            "  -m, --model [NAME=]FILE  preload a model (repeatable, up to %d); its API name is NAME, or the file\n"
            "                           name without .gguf\n"
            "      --models-dir DIR     load other models on demand from DIR/<name>.gguf (config models_dir)\n"
            "      --host HOST          bind address (config server.host, default 127.0.0.1)\n"
            "      --port N             port (config server.port, default 8080; 0 = any free port)\n"
            "  -c, --ctx-size N         KV cells per model, shared by its sequences (default: config\n"
            "                           context_size when set, else parallel x the training context, capped)\n"
            "  -np, --parallel N        sequences each model runs at once (default 4)\n"
            "  -b, --batch-size N       most tokens per forward step (config batch_size, default 512)\n"
            "  -t, --threads N          CPU threads per model (config threads; 0 = all cores)\n"
            "  -ngl, --gpu-layers N     layers on the GPU: 0..999 (999 = all) or auto (config gpu_layers; CUDA\n"
            "                           builds; config gpu_enabled = false keeps everything on the CPU)\n"
            "      --max-queue N        requests waiting per model before 429 (default 64)\n"
            "      --chat-template NAME chatml, llama2, llama3, zephyr, mistral, phi3, gemma (default: the model's)\n"
            "      --api-key KEY        require 'Authorization: Bearer KEY' (default: env INFERNO_API_KEY)\n"
            "      --cors-origin O      send CORS headers: '*' or a comma-separated list of origins\n"
            "      --max-body BYTES     largest request body (default 8M; K, M, G suffixes)\n"
            "      --max-json-depth N   deepest JSON nesting of a body (default 64)\n"
            "      --max-prompt-tokens N  longest prompt (default 0: the context)\n"
            "      --max-tokens N       most tokens a request may generate, and the default (default 4096)\n"
            "      --timeout S          seconds a request may take, queueing included (default 600; 0 = none)\n"
            "      --max-models N       most models loaded at once (default 0: no limit)\n"
            "      --max-memory BYTES   most bytes of loaded models, files and KV caches (default 0: no limit)\n"
            "      --keep-alive S       seconds an idle on-demand model stays loaded (default 300; -1 = forever)\n"
            "      --max-connections N  open connections, one thread each (default 256)\n"
            "      --shutdown-grace S   seconds in-flight requests get after SIGTERM/SIGINT (default 10)\n"
            "  -v, --verbose            log every request and each model's load log\n"
            "  -h, --help               this help\n",
            SRV_MAX_PRELOAD);
}

// A byte count with an optional K, M or G suffix (powers of 1024).
static bool serve_parse_bytes(const char *flag, const char *s, uint64_t min, uint64_t *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    double mul = 1;
    if (*end == 'k' || *end == 'K') mul = 1024.0, end++;
    else if (*end == 'm' || *end == 'M') mul = 1024.0 * 1024, end++;
    else if (*end == 'g' || *end == 'G') mul = 1024.0 * 1024 * 1024, end++;
    if (*end == 'i' && mul > 1) end++;
    if (*end == 'b' || *end == 'B') end++;
    if (errno || end == s || *end || !(v >= 0) || v * mul > 1.8e19 || v * mul < (double)min) {
        fprintf(stderr, "inferno serve: %s: '%s' is not a byte count of at least %llu (K, M, G suffixes)\n", flag, s,
                (unsigned long long)min);
        return false;
    }
    *out = (uint64_t)(v * mul);
    return true;
}

// "[NAME=]FILE": NAME= is taken when what precedes '=' has no '/', so paths with '=' still work.
static bool serve_model_spec(const char *arg, srv_model_spec *spec, char *name_buf, size_t cap) {
    const char *eq = strchr(arg, '=');
    if (eq && eq > arg && !memchr(arg, '/', (size_t)(eq - arg))) {
        if ((size_t)(eq - arg) >= cap) return false;
        memcpy(name_buf, arg, (size_t)(eq - arg));
        name_buf[eq - arg] = '\0';
        spec->path = eq + 1;
    } else {
        const char *base = strrchr(arg, '/');
        base = base ? base + 1 : arg;
        size_t n = strlen(base);
        if (n > 5 && !strcmp(base + n - 5, ".gguf")) n -= 5;
        if (n == 0 || n >= cap) return false;
        memcpy(name_buf, base, n);
        name_buf[n] = '\0';
        spec->path = arg;
    }
    spec->name = name_buf;
    return *spec->path != '\0';
}

typedef struct {
    srv_options opt;
    char names[SRV_MAX_PRELOAD][SRV_MAX_NAME + 1];
    double grace;
    bool verbose;
} serve_opts;

static bool serve_parse(int argc, char **argv, inf_config *cfg, serve_opts *o) {
    const char *cmd = "serve";
    o->opt = srv_default_options();
    o->grace = 10;
    srv_options *p = &o->opt;
    p->host = inf_config_get_str(cfg, "server.host");
    p->port = (int)inf_config_get_int(cfg, "server.port");
    p->models_dir = inf_config_get_str(cfg, "models_dir");
    p->engine.n_batch = (int)inf_config_get_int(cfg, "backend_config.batch_size");
    p->engine.n_threads = (int)inf_config_get_int(cfg, "backend_config.threads");
    p->gpu_enabled = inf_config_get_bool(cfg, "backend_config.gpu_enabled");
    p->n_gpu_layers = (int)inf_config_get_int(cfg, "backend_config.gpu_layers"); // -1: auto
    // The configured context applies only when someone set it; otherwise the engine sizes it by --parallel.
    if (strcmp(inf_config_source(cfg, "backend_config.context_size"), "default") != 0)
        p->engine.n_ctx = (int)inf_config_get_int(cfg, "backend_config.context_size");
    const char *env_key = getenv("INFERNO_API_KEY");
    if (env_key && *env_key) p->api_key = env_key;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        long l;
        double d;
        uint64_t u;
#define VALUE() if (!(v = cli_flag_value(cmd, argc, argv, &i))) return false
#define IS(s1, s2) (!strcmp(a, s1) || !strcmp(a, s2))
#define IS1(s1) (!strcmp(a, s1))
#define INT(lo, hi, dst) do { VALUE(); if (!cli_parse_int(cmd, a, v, lo, hi, &l)) return false; dst = (int)l; } while (0)
#define NUM(lo, hi, dst) do { VALUE(); if (!cli_parse_float(cmd, a, v, lo, hi, &d)) return false; dst = d; } while (0)
        if (IS("-h", "--help")) {
            serve_usage(stdout);
            exit(0);
        } else if (IS("-m", "--model")) {
            VALUE();
            if (p->n_preload == SRV_MAX_PRELOAD) {
                fprintf(stderr, "inferno serve: --model: at most %d models\n", SRV_MAX_PRELOAD);
                return false;
            }
            if (!serve_model_spec(v, &p->preload[p->n_preload], o->names[p->n_preload], sizeof o->names[0])) {
                fprintf(stderr, "inferno serve: --model: '%s' is not [NAME=]FILE with a name of at most %d bytes\n",
                        v, SRV_MAX_NAME);
                return false;
            }
            p->n_preload++;
        } else if (IS1("--models-dir")) { VALUE(); p->models_dir = v; }
        else if (IS1("--host")) { VALUE(); p->host = v; }
        else if (IS1("--port")) INT(0, 65535, p->port);
        else if (IS("-c", "--ctx-size")) INT(1, 1L << 22, p->engine.n_ctx);
        else if (IS("-np", "--parallel")) INT(1, 4096, p->engine.n_seq_max);
        else if (IS("-b", "--batch-size")) INT(1, 65536, p->engine.n_batch);
        else if (IS("-t", "--threads")) INT(0, 4096, p->engine.n_threads);
        else if (IS("-ngl", "--gpu-layers")) {
            VALUE();
            if (inf_config_set(cfg, "backend_config.gpu_layers", v, a) != INF_OK) {
                fprintf(stderr, "inferno serve: %s\n", inf_last_error());
                return false;
            }
            p->n_gpu_layers = (int)inf_config_get_int(cfg, "backend_config.gpu_layers");
        }
        else if (IS1("--max-queue")) INT(0, 65536, p->engine.max_queue);
        else if (IS1("--chat-template")) { VALUE(); p->chat_template = v; }
        else if (IS1("--api-key")) { VALUE(); p->api_key = v; }
        else if (IS1("--cors-origin")) { VALUE(); p->cors_origin = v; }
        else if (IS1("--max-body")) {
            VALUE();
            if (!serve_parse_bytes(a, v, 64, &u)) return false;
            p->max_body = (size_t)u;
        } else if (IS1("--max-json-depth")) INT(2, 10000, p->max_json_depth);
        else if (IS1("--max-prompt-tokens")) INT(0, 1L << 30, p->max_prompt_tokens);
        else if (IS1("--max-tokens")) INT(1, 1L << 30, p->max_tokens);
        else if (IS1("--timeout")) NUM(0, 1e9, p->timeout);
        else if (IS1("--max-models")) INT(0, 100000, p->max_models);
        else if (IS1("--max-memory")) {
            VALUE();
            if (!serve_parse_bytes(a, v, 0, &p->max_memory)) return false;
        } else if (IS1("--keep-alive")) NUM(-1, 1e9, p->keep_alive);
        else if (IS1("--max-connections")) INT(1, 65536, p->max_connections);
        else if (IS1("--shutdown-grace")) NUM(0, 1e6, o->grace);
        else if (IS("-v", "--verbose")) o->verbose = true;
        else {
            fprintf(stderr, "inferno serve: unknown option '%s' (see 'inferno serve --help')\n", a);
            return false;
        }
#undef VALUE
#undef IS
#undef IS1
#undef INT
#undef NUM
    }
    p->access_log = o->verbose;
    if (p->n_preload == 0 && (!p->models_dir || !*p->models_dir)) {
        fprintf(stderr, "inferno serve: give --model FILE (or --models-dir DIR for on-demand models)\n");
        return false;
    }
    return true;
}

// Waits up to ms for SIGINT or SIGTERM; returns the signal or 0.
static int serve_wait_signal(const sigset_t *set, long ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    int sig = sigtimedwait(set, NULL, &ts);
    return sig > 0 ? sig : 0;
}

int cmd_serve(int argc, char **argv) {
    inf_config *cfg = cli_config_load("serve");
    if (!cfg) return 1;
    serve_opts o;
    memset(&o, 0, sizeof o);
    if (!serve_parse(argc, argv, cfg, &o)) {
        inf_config_free(cfg);
        return 2;
    }
    inf_log_set_level(o.verbose ? INF_LOG_DEBUG : INF_LOG_INFO);

    // Every thread started from here on inherits the blocked set; only sigtimedwait below takes them.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    srv_server *srv = NULL;
    if (srv_start(&o.opt, &srv) != INF_OK) {
        fprintf(stderr, "inferno serve: %s\n", inf_last_error());
        inf_config_free(cfg);
        return 1;
    }
    bool v6 = strchr(o.opt.host, ':') != NULL;
    fprintf(stderr, "inferno serve: listening on http://%s%s%s:%d\n", v6 ? "[" : "", o.opt.host, v6 ? "]" : "",
            srv_port(srv));
    if (srv_load_preloaded(srv) != INF_OK) {
        fprintf(stderr, "inferno serve: %s\n", inf_last_error());
        srv_free(srv);
        inf_config_free(cfg);
        return 1;
    }
    bool on_demand = o.opt.models_dir && *o.opt.models_dir;
    fprintf(stderr, "inferno serve: ready (%d model%s preloaded%s%s)\n", o.opt.n_preload, o.opt.n_preload == 1 ? "" : "s",
            on_demand ? "; others on demand from " : "", on_demand ? o.opt.models_dir : "");

    int sig = 0;
    while (!(sig = serve_wait_signal(&set, 1000))) srv_maintain(srv);
    fprintf(stderr, "inferno serve: %s: shutting down (in-flight requests get %g s; signal again to stop now)\n",
            strsignal(sig), o.grace);
    srv_drain(srv);
    double deadline = inf_time_now() + o.grace;
    while (srv_active_requests(srv) > 0 && inf_time_now() < deadline)
        if (serve_wait_signal(&set, 50)) break;
    if (srv_active_requests(srv) > 0)
        fprintf(stderr, "inferno serve: cancelling %d requests\n", srv_active_requests(srv));
    srv_free(srv);
    inf_config_free(cfg); // after the server: o.opt borrows its strings
    fprintf(stderr, "inferno serve: stopped\n");
    return 0;
}
