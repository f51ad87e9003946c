// metrics.c: the server's counters and histograms and their Prometheus text form (exposition format 0.0.4).
//
// Families kept here: HTTP requests by route and status, request latency by inference route, time to first
// token, prompt and generated tokens, finished engine requests by reason, and the generation rate over the
// last ten seconds. Gauges that belong to loaded models (queue depth, running sequences, KV cells) are read
// from the engines when /metrics is asked and appended by its route.
// Left out: per-model counters and label escaping (routes and reasons are fixed strings; model names are
// restricted to [A-Za-z0-9._:-] when they enter the registry).
#include "server/server_int.h"

#include <stdlib.h>
#include <string.h>

#define SRV_N_BUCKETS 14
#define SRV_STATUS_MIN 100
#define SRV_STATUS_N 500 // statuses 100..599
#define SRV_RATE_WINDOW 11 // samples, one a second: a ten-second window

static const double srv_buckets[SRV_N_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                  1,     2.5,  5,     10,   30,  60,   120};

typedef struct {
    uint64_t counts[SRV_N_BUCKETS + 1]; // per bucket (not cumulative); the last is +Inf
    uint64_t n;
    double sum;
} srv_histogram;

struct srv_metrics {
    pthread_mutex_t mu;
    uint64_t requests[SRV_ROUTE_COUNT][SRV_STATUS_N];
    srv_histogram latency[3]; // completions, chat, embeddings
    srv_histogram ttft;       // generation requests that produced a token
    uint64_t prompt_tokens, generated_tokens;
    uint64_t finished[INF_FINISH_ERROR + 1];
    double win_t[SRV_RATE_WINDOW];
    uint64_t win_v[SRV_RATE_WINDOW];
    int win_n, win_next;
    double tok_per_s;
};

static const char *const srv_route_labels[SRV_ROUTE_COUNT] = {
    [SRV_ROUTE_HEALTH] = "/health",
    [SRV_ROUTE_MODELS] = "/v1/models",
    [SRV_ROUTE_COMPLETIONS] = "/v1/completions",
    [SRV_ROUTE_CHAT] = "/v1/chat/completions",
    [SRV_ROUTE_EMBEDDINGS] = "/v1/embeddings",
    [SRV_ROUTE_TOKENIZE] = "/tokenize",
    [SRV_ROUTE_DETOKENIZE] = "/detokenize",
    [SRV_ROUTE_METRICS] = "/metrics",
    [SRV_ROUTE_STATUS] = "/v1/status",
    [SRV_ROUTE_OTHER] = "other",
};

const char *srv_route_label(srv_route_id r) {
    assert(r >= 0 && r < SRV_ROUTE_COUNT);
    return srv_route_labels[r];
}

srv_metrics *srv_metrics_new(void) {
    srv_metrics *mt = calloc(1, sizeof *mt);
    if (mt) pthread_mutex_init(&mt->mu, NULL);
    return mt;
}

void srv_metrics_free(srv_metrics *mt) {
    if (!mt) return;
    pthread_mutex_destroy(&mt->mu);
    free(mt);
}

static void srv_histogram_add(srv_histogram *h, double v) {
    int i = 0;
    while (i < SRV_N_BUCKETS && v > srv_buckets[i]) i++;
    h->counts[i]++;
    h->n++;
    h->sum += v;
}

void srv_metrics_request(srv_metrics *mt, srv_route_id route, int status, double seconds) {
    pthread_mutex_lock(&mt->mu);
    if (status >= SRV_STATUS_MIN && status < SRV_STATUS_MIN + SRV_STATUS_N)
        mt->requests[route][status - SRV_STATUS_MIN]++;
    int h = route == SRV_ROUTE_COMPLETIONS ? 0 : route == SRV_ROUTE_CHAT ? 1 : route == SRV_ROUTE_EMBEDDINGS ? 2 : -1;
    if (h >= 0) srv_histogram_add(&mt->latency[h], seconds);
    pthread_mutex_unlock(&mt->mu);
}

void srv_metrics_finish(srv_metrics *mt, const inf_request_result *res, bool embeddings) {
    pthread_mutex_lock(&mt->mu);
    if (res->finish >= 0 && res->finish <= INF_FINISH_ERROR) mt->finished[res->finish]++;
    if (res->n_prompt > 0) mt->prompt_tokens += (uint64_t)res->n_prompt;
    if (res->n_generated > 0) mt->generated_tokens += (uint64_t)res->n_generated;
    if (!embeddings && res->n_generated > 0 && res->ttft_seconds >= 0) srv_histogram_add(&mt->ttft, res->ttft_seconds);
    pthread_mutex_unlock(&mt->mu);
}

void srv_metrics_tick(srv_metrics *mt, uint64_t generated_total, double now) {
    pthread_mutex_lock(&mt->mu);
    mt->win_t[mt->win_next] = now;
    mt->win_v[mt->win_next] = generated_total;
    mt->win_next = (mt->win_next + 1) % SRV_RATE_WINDOW;
    if (mt->win_n < SRV_RATE_WINDOW) mt->win_n++;
    // Oldest sample against the newest; totals only grow (unloaded engines' tokens are kept by the registry).
    int newest = (mt->win_next + SRV_RATE_WINDOW - 1) % SRV_RATE_WINDOW;
    int oldest = (mt->win_next + SRV_RATE_WINDOW - mt->win_n) % SRV_RATE_WINDOW;
    double dt = mt->win_t[newest] - mt->win_t[oldest];
    mt->tok_per_s = dt > 0 && mt->win_v[newest] >= mt->win_v[oldest]
                        ? (double)(mt->win_v[newest] - mt->win_v[oldest]) / dt
                        : 0;
    pthread_mutex_unlock(&mt->mu);
}

static void srv_histogram_render(srv_buf *b, const char *name, const char *labels, const srv_histogram *h) {
    uint64_t cum = 0;
    const char *sep = labels[0] ? "," : "";
    for (int i = 0; i <= SRV_N_BUCKETS; i++) {
        cum += h->counts[i];
        if (i < SRV_N_BUCKETS)
            srv_buf_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, srv_buckets[i], (unsigned long long)cum);
        else
            srv_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)cum);
    }
    if (labels[0]) {
        srv_buf_printf(b, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", name, labels, h->sum, name, labels,
                       (unsigned long long)h->n);
    } else {
        srv_buf_printf(b, "%s_sum %.6f\n%s_count %llu\n", name, h->sum, name, (unsigned long long)h->n);
    }
}

void srv_metrics_render(srv_metrics *mt, srv_buf *b) {
    pthread_mutex_lock(&mt->mu);
    srv_buf_puts(b, "# HELP inferno_http_requests_total HTTP requests answered, by route and status.\n"
                    "# TYPE inferno_http_requests_total counter\n");
    for (int r = 0; r < SRV_ROUTE_COUNT; r++)
        for (int s = 0; s < SRV_STATUS_N; s++)
            if (mt->requests[r][s])
                srv_buf_printf(b, "inferno_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n", srv_route_labels[r],
                               s + SRV_STATUS_MIN, (unsigned long long)mt->requests[r][s]);

    srv_buf_puts(b, "# HELP inferno_request_duration_seconds Time from a request's arrival to the end of its "
                    "response, by inference route.\n# TYPE inferno_request_duration_seconds histogram\n");
    static const srv_route_id lat_routes[3] = {SRV_ROUTE_COMPLETIONS, SRV_ROUTE_CHAT, SRV_ROUTE_EMBEDDINGS};
    for (int i = 0; i < 3; i++) {
        char labels[64];
        snprintf(labels, sizeof labels, "route=\"%s\"", srv_route_labels[lat_routes[i]]);
        srv_histogram_render(b, "inferno_request_duration_seconds", labels, &mt->latency[i]);
    }
    srv_buf_puts(b, "# HELP inferno_time_to_first_token_seconds Time from submission to the first generated "
                    "token.\n# TYPE inferno_time_to_first_token_seconds histogram\n");
    srv_histogram_render(b, "inferno_time_to_first_token_seconds", "", &mt->ttft);

    srv_buf_printf(b,
                   "# HELP inferno_prompt_tokens_total Prompt tokens of finished engine requests.\n"
                   "# TYPE inferno_prompt_tokens_total counter\ninferno_prompt_tokens_total %llu\n"
                   "# HELP inferno_generated_tokens_total Tokens generated by finished engine requests.\n"
                   "# TYPE inferno_generated_tokens_total counter\ninferno_generated_tokens_total %llu\n",
                   (unsigned long long)mt->prompt_tokens, (unsigned long long)mt->generated_tokens);
    srv_buf_puts(b, "# HELP inferno_requests_finished_total Engine requests finished, by reason.\n"
                    "# TYPE inferno_requests_finished_total counter\n");
    for (int f = 0; f <= INF_FINISH_ERROR; f++)
        srv_buf_printf(b, "inferno_requests_finished_total{reason=\"%s\"} %llu\n",
                       inf_finish_reason_str((inf_finish_reason)f), (unsigned long long)mt->finished[f]);
    srv_buf_printf(b,
                   "# HELP inferno_tokens_per_second Tokens generated per second over the last ten seconds, all "
                   "models.\n# TYPE inferno_tokens_per_second gauge\ninferno_tokens_per_second %.3f\n",
                   mt->tok_per_s);
    pthread_mutex_unlock(&mt->mu);
}
