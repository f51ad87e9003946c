// server.h: the `inferno serve` HTTP server as the CLI sees it: options, start, periodic upkeep, draining
// and shutdown. The server speaks OpenAI's API (models, completions, chat completions, embeddings) plus
// /health, /tokenize, /detokenize, /metrics and /v1/status, and is built on include/inferno.h only.
//
// Left out here: flag parsing and signal handling (src/cli/cmd_serve.c owns both), TLS (run it behind a
// proxy for that).
#ifndef INFERNO_SERVER_H
#define INFERNO_SERVER_H

#include "inferno.h"

#define SRV_MAX_PRELOAD 16 // --model flags
#define SRV_MAX_NAME 128   // bytes of a model's API name

typedef struct {
    const char *name; // API name ([A-Za-z0-9._:-], at most SRV_MAX_NAME bytes)
    const char *path; // GGUF file
} srv_model_spec;

// Every string is copied by srv_start; the caller may free its own copies afterwards.
typedef struct {
    const char *host;          // bind address: an IPv4 or IPv6 literal or a host name
    int port;                  // 0: any free port (srv_port says which)
    srv_model_spec preload[SRV_MAX_PRELOAD];
    int n_preload;             // loaded by srv_load_preloaded and never unloaded
    const char *models_dir;    // on-demand models are <models_dir>/<name>.gguf (NULL or "": none)
    inf_engine_params engine;  // for every model (n_ctx 0: the engine's default)
    bool gpu_enabled;          // inf_model_params.gpu_enabled for every model
    int n_gpu_layers;          // inf_model_params.n_gpu_layers (-1: as many as fit)
    const char *chat_template; // NULL: each model's own (inf_chat_template_detect)
    const char *api_key;       // NULL or "": no authentication
    const char *cors_origin;   // NULL or "": no CORS headers; "*" or a comma-separated list of origins
    size_t max_body;           // most bytes of a request body (413 beyond)
    int max_json_depth;        // most nesting of a request body
    int max_prompt_tokens;     // 0: only the context limits prompts
    int max_tokens;            // most tokens a request may ask for; also what it gets when it asks nothing
    double timeout;            // seconds a request may take, queueing included (0: no limit)
    int max_models;            // most models loaded at once, preloaded included (0: no limit)
    uint64_t max_memory;       // most bytes of loaded models (files + sessions) (0: no limit)
    double keep_alive;         // seconds an idle on-demand model stays loaded (negative: forever)
    int max_connections;       // open connections (each has a thread)
    bool access_log;           // one INFO line per request
} srv_options;

typedef struct srv_server srv_server;

// Defaults: 127.0.0.1:8080, engine defaults, the model defaults' GPU settings, 8 MiB bodies, depth 64,
// max_tokens 4096, timeout 600 s, keep_alive 300 s, 256 connections.
srv_options srv_default_options(void);

// Checks the options, binds the socket and starts answering (/health says "loading" until
// srv_load_preloaded returns). Nothing is loaded yet.
inf_status srv_start(const srv_options *opt, srv_server **out);
int srv_port(const srv_server *srv); // the bound port

// Loads the preloaded models in order; the server is "ready" once all are. Fails on the first model that
// does not load (the server keeps running; the caller decides to stop).
inf_status srv_load_preloaded(srv_server *srv);

// Upkeep, about once a second: unloads on-demand models idle past their keep_alive and updates the tok/s
// gauge. Called from the CLI's main loop.
void srv_maintain(srv_server *srv);

// Stops accepting connections; requests on connections already open get 503. In-flight requests go on.
void srv_drain(srv_server *srv);
int srv_active_requests(srv_server *srv); // generation requests not yet answered

// Cancels what is still running (streams end with an error event, others get 503), closes every
// connection, unloads every model and frees everything. srv_free(NULL) is a no-op.
void srv_free(srv_server *srv);

#endif // INFERNO_SERVER_H
