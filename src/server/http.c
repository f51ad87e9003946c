// http.c: the libmicrohttpd glue: the daemon, routing, CORS, API keys, body and depth caps, replies, and
// per-request metrics.
//
// Mode: one thread per connection (MHD_USE_THREAD_PER_CONNECTION), so a route handler may block while
// the engine works and a stream's reader may wait for tokens. MHD_USE_ITC lets srv_http_quiesce stop
// accepting while open connections go on.
//
// A request's life: the first call of the access handler finds its route and checks the declared length;
// later calls append the body (at most max_body bytes; past that the rest is read and dropped so the client
// can read the 413, and past SRV_DISCARD_FACTOR x max_body the connection is closed); the last call checks
// method, API key, server state and JSON, then runs the route, which returns a response for us to queue.
// The completion callback counts the request by route and status and frees its state.
// Left out: HTTP/2, TLS, compression, rate limiting per client.
#include "server/server_int.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SRV_DISCARD_FACTOR 16      // an oversized body is drained up to this many times max_body
#define SRV_CONNECTION_TIMEOUT 120 // seconds an idle connection stays open

typedef void (*srv_route_fn)(srv_req *rq, srv_reply *out);

static const struct {
    const char *path;
    const char *method; // "GET" also answers HEAD
    srv_route_id id;
    srv_route_fn fn;
} srv_routes[] = {
    {"/health", "GET", SRV_ROUTE_HEALTH, srv_route_health},
    {"/v1/models", "GET", SRV_ROUTE_MODELS, srv_route_models},
    {"/models", "GET", SRV_ROUTE_MODELS, srv_route_models},
    {"/v1/completions", "POST", SRV_ROUTE_COMPLETIONS, srv_route_completions},
    {"/completions", "POST", SRV_ROUTE_COMPLETIONS, srv_route_completions},
    {"/v1/chat/completions", "POST", SRV_ROUTE_CHAT, srv_route_chat},
    {"/chat/completions", "POST", SRV_ROUTE_CHAT, srv_route_chat},
    {"/v1/embeddings", "POST", SRV_ROUTE_EMBEDDINGS, srv_route_embeddings},
    {"/embeddings", "POST", SRV_ROUTE_EMBEDDINGS, srv_route_embeddings},
    {"/tokenize", "POST", SRV_ROUTE_TOKENIZE, srv_route_tokenize},
    {"/detokenize", "POST", SRV_ROUTE_DETOKENIZE, srv_route_detokenize},
    {"/metrics", "GET", SRV_ROUTE_METRICS, srv_route_metrics},
    {"/v1/status", "GET", SRV_ROUTE_STATUS, srv_route_status},
};
#define SRV_N_ROUTES ((int)(sizeof srv_routes / sizeof srv_routes[0]))

// Per-request state, from the first call of the access handler to the completion callback.
typedef struct {
    int route;         // index into srv_routes, -1 for an unknown path
    srv_buf body;
    bool too_big;
    uint64_t discarded; // bytes of an oversized body read and dropped
    bool answered;
    unsigned status;
    double t_start;
    char line[160];    // "METHOD /path" for the access log
} srv_conn_ctx;

// ---------------------------------------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------------------------------------
void srv_reply_text(srv_reply *out, unsigned status, const char *content_type, const char *text, size_t len) {
    char *copy = malloc(len + 1);
    if (copy) memcpy(copy, text, len);
    out->status = status;
    out->resp = copy ? MHD_create_response_from_buffer(len, copy, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!out->resp) {
        free(copy);
        return;
    }
    MHD_add_response_header(out->resp, "Content-Type", content_type);
}

void srv_reply_json(srv_reply *out, unsigned status, json_object *obj) {
    size_t len = 0;
    char *s = srv_json_take_string(obj, &len);
    out->status = status;
    out->resp = s ? MHD_create_response_from_buffer(len, s, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!out->resp) {
        free(s);
        return;
    }
    MHD_add_response_header(out->resp, "Content-Type", "application/json");
}

void srv_reply_error(srv_reply *out, const srv_error *err) {
    json_object *e = json_object_new_object(), *body = json_object_new_object();
    json_object_object_add(body, "message", json_object_new_string(err->message));
    json_object_object_add(body, "type", json_object_new_string(err->type ? err->type : "server_error"));
    json_object_object_add(body, "param", err->param[0] ? json_object_new_string(err->param) : NULL);
    json_object_object_add(body, "code", err->code ? json_object_new_string(err->code) : NULL);
    json_object_object_add(e, "error", body);
    srv_reply_json(out, (unsigned)err->status, e);
    if (out->resp && err->retry_after > 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", err->retry_after);
        MHD_add_response_header(out->resp, "Retry-After", v);
    }
    if (out->resp && err->status == 401) MHD_add_response_header(out->resp, "WWW-Authenticate", "Bearer");
}

bool srv_conn_closed(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return false;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) return true;
    if (!(p.revents & (POLLIN | POLLRDHUP))) return false;
    // Readable: either the peer closed (recv sees end of file) or it pipelined its next request.
    char c;
    ssize_t n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

// ---------------------------------------------------------------------------------------------------------
// Access checks
// ---------------------------------------------------------------------------------------------------------
// Constant-time comparison, so response timing does not reveal how much of a key matched.
static bool srv_key_equal(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    unsigned char diff = (unsigned char)(na != nb);
    for (size_t i = 0; i < na; i++) diff |= (unsigned char)(a[i] ^ b[i % (nb ? nb : 1)]);
    return diff == 0;
}

static bool srv_auth_ok(srv_server *srv, struct MHD_Connection *conn) {
    if (!srv->api_key) return true;
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return false;
    h += 7;
    while (*h == ' ') h++;
    return srv_key_equal(h, srv->api_key);
}

// Whether origin is one of the comma-separated allowed origins.
static bool srv_origin_allowed(const char *list, const char *origin) {
    size_t n = strlen(origin);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',') p++;
        const char *e = p;
        while (*e && *e != ',') e++;
        const char *t = e;
        while (t > p && t[-1] == ' ') t--;
        if ((size_t)(t - p) == n && n && !strncmp(p, origin, n)) return true;
        p = e;
    }
    return false;
}

static void srv_add_cors(srv_server *srv, struct MHD_Connection *conn, struct MHD_Response *r, bool preflight) {
    if (!srv->cors_origin) return;
    const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    if (!strcmp(srv->cors_origin, "*")) {
        MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
    } else {
        MHD_add_response_header(r, "Vary", "Origin");
        if (!origin || !srv_origin_allowed(srv->cors_origin, origin)) return;
        MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
    }
    if (preflight) {
        const char *req_headers = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Access-Control-Request-Headers");
        MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        MHD_add_response_header(r, "Access-Control-Allow-Headers",
                                req_headers && strlen(req_headers) < 1024 ? req_headers : "Authorization, Content-Type");
        MHD_add_response_header(r, "Access-Control-Max-Age", "86400");
    }
}

// ---------------------------------------------------------------------------------------------------------
// Dispatch
// ---------------------------------------------------------------------------------------------------------
static bool srv_route_needs_model(srv_route_id id) {
    return id == SRV_ROUTE_COMPLETIONS || id == SRV_ROUTE_CHAT || id == SRV_ROUTE_EMBEDDINGS ||
           id == SRV_ROUTE_TOKENIZE || id == SRV_ROUTE_DETOKENIZE;
}

static void srv_http_dispatch(srv_server *srv, struct MHD_Connection *conn, srv_conn_ctx *c, const char *url,
                              const char *method, srv_reply *out) {
    srv_error err;
    if (!strcmp(method, "OPTIONS")) {
        // CORS preflight (answered without an API key: browsers send none with it).
        srv_reply_text(out, 204, "text/plain", "", 0);
        if (out->resp) {
            MHD_add_response_header(out->resp, "Allow", "GET, POST, OPTIONS");
            srv_add_cors(srv, conn, out->resp, true);
        }
        return;
    }
    if (c->route < 0) {
        srv_error_set(&err, 404, "invalid_request_error", "not_found", NULL, "no route for %s %.200s", method, url);
        srv_reply_error(out, &err);
        return;
    }
    const char *want = srv_routes[c->route].method;
    bool method_ok = !strcmp(method, want) || (!strcmp(want, "GET") && !strcmp(method, "HEAD"));
    if (!method_ok) {
        srv_error_set(&err, 405, "invalid_request_error", "method_not_allowed", NULL, "%s takes %s, not %s",
                      srv_routes[c->route].path, want, method);
        srv_reply_error(out, &err);
        if (out->resp) MHD_add_response_header(out->resp, "Allow", want);
        return;
    }
    srv_route_id id = srv_routes[c->route].id;
    if (id != SRV_ROUTE_HEALTH && !srv_auth_ok(srv, conn)) {
        srv_error_set(&err, 401, "invalid_request_error", "invalid_api_key", NULL,
                      "missing or invalid API key: send 'Authorization: Bearer <key>'");
        srv_reply_error(out, &err);
        return;
    }
    int state = atomic_load(&srv->state);
    if (id != SRV_ROUTE_HEALTH && state >= SRV_DRAINING) {
        srv_error_set(&err, 503, "server_error", "shutting_down", NULL, "the server is shutting down");
        srv_reply_error(out, &err);
        return;
    }
    if (c->too_big) {
        srv_error_set(&err, 413, "invalid_request_error", "request_too_large", NULL,
                      "the request body is larger than %zu bytes (--max-body)", srv->opt.max_body);
        srv_reply_error(out, &err);
        return;
    }
    if (srv_route_needs_model(id) && state == SRV_LOADING) {
        srv_error_set(&err, 503, "server_error", "loading", NULL, "the server is loading its models");
        err.retry_after = 1;
        srv_reply_error(out, &err);
        return;
    }
    srv_req rq = {.srv = srv, .conn = conn, .method = method, .path = url, .t_start = c->t_start};
    if (!strcmp(want, "POST") &&
        !srv_json_parse_body(c->body.data, c->body.len, srv->opt.max_json_depth, &rq.body, &err)) {
        srv_reply_error(out, &err);
        return;
    }
    srv_routes[c->route].fn(&rq, out);
    json_object_put(rq.body);
}

static enum MHD_Result srv_http_handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                       const char *version, const char *upload_data, size_t *upload_size,
                                       void **req_cls) {
    srv_server *srv = cls;
    srv_conn_ctx *c = *req_cls;
    if (!c) {
        if (!(c = calloc(1, sizeof *c))) return MHD_NO;
        c->t_start = inf_time_now();
        c->route = -1;
        for (int i = 0; i < SRV_N_ROUTES; i++)
            if (!strcmp(url, srv_routes[i].path)) c->route = i;
        srv_buf_init(&c->body, srv->opt.max_body);
        snprintf(c->line, sizeof c->line, "%s %.120s", method, url);
        *req_cls = c;
        // A declared length far past the cap is refused before its body is read (the client may or may not
        // read the reply before it sees the connection close).
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) / SRV_DISCARD_FACTOR > srv->opt.max_body) {
            c->too_big = true;
            c->answered = true;
            srv_error err;
            srv_error_set(&err, 413, "invalid_request_error", "request_too_large", NULL,
                          "the request body is larger than %zu bytes (--max-body)", srv->opt.max_body);
            srv_reply rep = {0};
            srv_reply_error(&rep, &err);
            if (!rep.resp) return MHD_NO;
            MHD_add_response_header(rep.resp, "Connection", "close");
            srv_add_cors(srv, conn, rep.resp, false);
            c->status = rep.status;
            enum MHD_Result r = MHD_queue_response(conn, rep.status, rep.resp);
            MHD_destroy_response(rep.resp);
            return r;
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!c->too_big && !srv_buf_put(&c->body, upload_data, *upload_size)) {
            c->too_big = true;
            srv_buf_free(&c->body);
        }
        if (c->too_big) {
            c->discarded += *upload_size;
            if (c->discarded / SRV_DISCARD_FACTOR > srv->opt.max_body) return MHD_NO; // stop reading: close
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (c->answered) return MHD_YES;
    c->answered = true;
    srv_reply rep = {0};
    srv_http_dispatch(srv, conn, c, url, method, &rep);
    if (!rep.resp) {
        static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,"
                                  "\"code\":null}}";
        rep.status = 500;
        rep.resp = MHD_create_response_from_buffer(sizeof oom - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
        if (!rep.resp) return MHD_NO;
        MHD_add_response_header(rep.resp, "Content-Type", "application/json");
    }
    if (strcmp(method, "OPTIONS")) srv_add_cors(srv, conn, rep.resp, false);
    if (atomic_load(&srv->state) >= SRV_DRAINING) MHD_add_response_header(rep.resp, "Connection", "close");
    c->status = rep.status;
    enum MHD_Result r = MHD_queue_response(conn, rep.status, rep.resp);
    MHD_destroy_response(rep.resp);
    return r;
}

static void srv_http_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                               enum MHD_RequestTerminationCode toe) {
    srv_server *srv = cls;
    srv_conn_ctx *c = *req_cls;
    if (!c) return;
    *req_cls = NULL;
    double dt = inf_time_now() - c->t_start;
    unsigned status = c->status;
    // A reply the client did not take to the end (it closed the connection) counts as nginx's 499.
    if (status && toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) status = 499;
    srv_route_id id = c->route >= 0 ? srv_routes[c->route].id : SRV_ROUTE_OTHER;
    if (status) {
        srv_metrics_request(srv->metrics, id, (int)status, dt);
        inf_log(srv->opt.access_log ? INF_LOG_INFO : INF_LOG_DEBUG, "serve: %s %u %.3f s", c->line, status, dt);
    }
    srv_buf_free(&c->body);
    free(c);
}

static void srv_http_log(void *cls, const char *fmt, va_list ap) {
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
    inf_log(INF_LOG_DEBUG, "serve: libmicrohttpd: %s", msg);
}

inf_status srv_http_start(srv_server *srv) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", srv->opt.port);
    int rc = getaddrinfo(srv->host, port, &hints, &ai);
    if (rc != 0 || !ai)
        return inf_fail(INF_ERR_INVALID_ARG, "host '%s': %s", srv->host, rc ? gai_strerror(rc) : "no address");
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    srv->mhd = MHD_start_daemon(flags, (uint16_t)srv->opt.port, NULL, NULL, srv_http_handle, srv,
                                MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                MHD_OPTION_CONNECTION_LIMIT, (unsigned)srv->opt.max_connections,
                                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)SRV_CONNECTION_TIMEOUT,
                                MHD_OPTION_NOTIFY_COMPLETED, srv_http_completed, srv,
                                MHD_OPTION_EXTERNAL_LOGGER, srv_http_log, srv,
                                MHD_OPTION_END);
    int saved = errno;
    freeaddrinfo(ai);
    if (!srv->mhd)
        return inf_fail(INF_ERR_IO, "cannot listen on %s:%d: %s", srv->host, srv->opt.port,
                        saved ? strerror(saved) : "libmicrohttpd refused to start");
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = di && di->port ? di->port : srv->opt.port;
    return INF_OK;
}

void srv_http_quiesce(srv_server *srv) {
    if (!srv->mhd) return;
    MHD_socket fd = MHD_quiesce_daemon(srv->mhd);
    if (fd != MHD_INVALID_SOCKET) close(fd);
}

void srv_http_stop(srv_server *srv) {
    if (!srv->mhd) return;
    MHD_stop_daemon(srv->mhd);
    srv->mhd = NULL;
}
