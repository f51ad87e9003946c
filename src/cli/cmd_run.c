// cmd_run.c: `inferno run`: tokenize a prompt, run it through a session in batches, then sample and stream
// tokens until an end-of-generation token, a stop string, --max-tokens or the context limit; finish with a
// report on stderr (prompt tokens and tok/s, generated tokens, seconds, tok/s, ms/token, finish reason).
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RUN_MAX_PROMPT_BYTES (16u << 20)
#define RUN_MAX_STOPS 16

static void run_usage(FILE *out) {
    fprintf(out, "usage: inferno run --model FILE [--prompt TEXT | --file FILE | < stdin] [options]\n\n"
                 "  -p, --prompt TEXT        prompt text\n"
                 "  -f, --file FILE          read the prompt from FILE ('-' for standard input)\n"
                 "      --stop TEXT          stop when TEXT is generated (repeatable, up to 16)\n"
                 "      --ignore-eos         keep generating past end-of-generation tokens\n"
                 "      --no-stream          print the text once generation ends instead of token by token\n"
                 "      --echo               print the prompt before the generated text\n"
                 "  -h, --help               this help\n");
    cli_gen_usage(out);
    fprintf(out, "(--max-tokens defaults to 128)\n");
}

typedef struct {
    cli_gen_opts g;
    const char *prompt, *file;
    bool no_stream, echo, ignore_eos;
    const char *stops[RUN_MAX_STOPS];
    int n_stops;
} run_opts;

static bool run_parse(int argc, char **argv, inf_config *cfg, run_opts *o) {
    const char *cmd = "run";
    *o = (run_opts){0};
    cli_gen_defaults(&o->g, cfg, 128);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int shared = cli_gen_flag(cmd, argc, argv, &i, cfg, &o->g);
        if (shared < 0) return false;
        if (shared > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            run_usage(stdout);
            exit(0);
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            if (!(o->prompt = cli_flag_value(cmd, argc, argv, &i))) return false;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (!(o->file = cli_flag_value(cmd, argc, argv, &i))) return false;
        } else if (!strcmp(a, "--stop")) {
            const char *v = cli_flag_value(cmd, argc, argv, &i);
            if (!v) return false;
            if (o->n_stops == RUN_MAX_STOPS) {
                fprintf(stderr, "inferno run: --stop: at most %d stop strings\n", RUN_MAX_STOPS);
                return false;
            }
            o->stops[o->n_stops++] = v;
        } else if (!strcmp(a, "--ignore-eos")) {
            o->ignore_eos = true;
        } else if (!strcmp(a, "--no-stream")) {
            o->no_stream = true;
        } else if (!strcmp(a, "--echo")) {
            o->echo = true;
        } else {
            fprintf(stderr, "inferno run: unknown option '%s' (see 'inferno run --help')\n", a);
            return false;
        }
    }
    if (!o->g.model) {
        fprintf(stderr, "inferno run: --model is required (see 'inferno run --help')\n");
        return false;
    }
    if (o->prompt && o->file) {
        fprintf(stderr, "inferno run: give either --prompt or --file, not both\n");
        return false;
    }
    cli_gen_finish(&o->g);
    return true;
}

// Reads the prompt from --prompt, --file or standard input into a malloc'd buffer.
static char *run_read_prompt(const run_opts *o, size_t *len) {
    if (o->prompt) {
        *len = strlen(o->prompt);
        return strdup(o->prompt);
    }
    if (o->file && strcmp(o->file, "-") != 0) {
        char *buf;
        if (!cli_read_file("run", o->file, RUN_MAX_PROMPT_BYTES, &buf, len)) {
            return NULL;
        }
        return buf;
    }
    if (!o->file && isatty(STDIN_FILENO)) {
        fprintf(stderr, "inferno run: no prompt: give --prompt, --file or pipe text on standard input\n");
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 1 == cap) {
            if (cap > RUN_MAX_PROMPT_BYTES) {
                fprintf(stderr, "inferno run: standard input is larger than %u bytes\n", RUN_MAX_PROMPT_BYTES);
                free(buf);
                return NULL;
            }
            buf = realloc(buf, cap *= 2);
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, stdin);
        if (!got) break;
        n += got;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

typedef struct {
    bool stream;
    char *text; // --no-stream buffer
    size_t len, cap;
} run_out;

static void run_emit(run_out *out, const char *s, size_t n) {
    if (!n) return;
    if (out->stream) {
        fwrite(s, 1, n, stdout);
        fflush(stdout);
        return;
    }
    if (out->len + n + 1 > out->cap) {
        out->cap = (out->len + n + 1) * 2;
        out->text = realloc(out->text, out->cap);
    }
    memcpy(out->text + out->len, s, n);
    out->len += n;
}

int cmd_run(int argc, char **argv) {
    inf_config *cfg = cli_config_load("run");
    if (!cfg) return 1;
    run_opts o;
    if (!run_parse(argc, argv, cfg, &o)) {
        inf_config_free(cfg);
        return 2;
    }
    inf_config_free(cfg);
    if (!o.g.verbose) inf_log_set_level(INF_LOG_WARN);

    size_t prompt_len = 0;
    char *prompt = run_read_prompt(&o, &prompt_len);
    if (!prompt) return 1;

    int rc = 1;
    inf_model *model = NULL;
    inf_session *sess = NULL;
    inf_sampler *smp = NULL;
    inf_stop_matcher *stop = NULL;
    inf_token *toks = NULL;
    run_out out = {.stream = !o.no_stream};
    inf_model_params mp = inf_model_default_params();
    mp.n_threads = (int)o.g.threads;
    mp.verbose = o.g.verbose;
    mp.gpu_enabled = o.g.gpu_enabled;
    mp.n_gpu_layers = (int)o.g.gpu_layers;
    double t_load = inf_time_now();
    if (inf_model_load(o.g.model, &mp, &model) != INF_OK) {
        fprintf(stderr, "inferno run: %s\n", inf_last_error());
        goto done;
    }
    t_load = inf_time_now() - t_load;
    inf_model_info info;
    inf_model_get_info(model, &info);

    // The default context never exceeds what the model was trained for; an explicit one may (with a warning).
    if (o.g.ctx_default && o.g.ctx > info.n_ctx_train) o.g.ctx = info.n_ctx_train;
    int n_prompt = 0;
    if (inf_tokenize(model, prompt, prompt_len, true, true, NULL, 0, &n_prompt) != INF_OK ||
        !(toks = malloc(sizeof *toks * (size_t)(n_prompt + 1))) ||
        inf_tokenize(model, prompt, prompt_len, true, true, toks, n_prompt, &n_prompt) != INF_OK) {
        fprintf(stderr, "inferno run: %s\n", inf_last_error());
        goto done;
    }
    if (n_prompt == 0) {
        fprintf(stderr, "inferno run: the prompt is empty and the model adds no BOS token\n");
        goto done;
    }
    if (n_prompt >= o.g.ctx) {
        fprintf(stderr, "inferno run: the prompt has %d tokens, which does not fit in a context of %ld "
                        "(raise --ctx-size)\n", n_prompt, o.g.ctx);
        goto done;
    }
    inf_session_params sp = {.n_ctx = (int)o.g.ctx, .n_batch = (int)o.g.batch, .n_seq_max = 1, .n_threads = (int)o.g.threads};
    inf_sampler_params smp_p = o.g.sampling;
    if (inf_session_init(model, &sp, &sess) != INF_OK || inf_sampler_init(&smp_p, info.n_vocab, &smp) != INF_OK ||
        inf_stop_matcher_init(o.stops, o.n_stops, &stop) != INF_OK) {
        fprintf(stderr, "inferno run: %s\n", inf_last_error());
        goto done;
    }
    if (o.g.verbose) {
        fprintf(stderr, "%s\n", inf_system_info());
        fprintf(stderr, "prompt: %d tokens:", n_prompt);
        for (int i = 0; i < n_prompt && i < 64; i++) fprintf(stderr, " %d", toks[i]);
        fprintf(stderr, "%s\nseed: %llu\n", n_prompt > 64 ? " ..." : "", (unsigned long long)o.g.sampling.seed);
    }
    if (o.echo) run_emit(&out, prompt, prompt_len);

    // Prompt, in batches of n_batch.
    double t0 = inf_time_now();
    int n_batch = (int)(o.g.batch < o.g.ctx ? o.g.batch : o.g.ctx);
    int32_t *pos = malloc(sizeof *pos * (size_t)n_batch), *seq = calloc((size_t)n_batch, sizeof *seq);
    for (int b0 = 0; b0 < n_prompt; b0 += n_batch) {
        int nb = n_prompt - b0 < n_batch ? n_prompt - b0 : n_batch;
        for (int i = 0; i < nb; i++) pos[i] = b0 + i;
        inf_batch b = {.n_tokens = nb, .tokens = toks + b0, .pos = pos, .seq_id = seq};
        if (inf_session_decode(sess, &b) != INF_OK) {
            fprintf(stderr, "inferno run: %s\n", inf_last_error());
            free(pos);
            free(seq);
            goto done;
        }
    }
    free(pos);
    free(seq);
    for (int i = 0; i < n_prompt; i++) inf_sampler_accept(smp, toks[i]);
    double t_prompt = inf_time_now() - t0;

    // Generation.
    const char *finish = "length";
    bool stop_hit = false;
    long n_gen = 0;
    int n_ctx = inf_session_n_ctx(sess);
    double t1 = inf_time_now();
    char piece[256];
    const char *emit;
    size_t n_emit;
    uint8_t *banned = NULL;
    if (o.ignore_eos) {
        banned = calloc((size_t)info.n_vocab, 1);
        for (int t = 0; t < info.n_vocab; t++) banned[t] = inf_token_is_eog(model, t);
    }
    for (;;) {
        if (o.g.max_tokens >= 0 && n_gen >= o.g.max_tokens) break;
        inf_token tok = inf_sampler_sample(smp, inf_session_logits(sess, -1), banned);
        if (tok < 0) {
            fprintf(stderr, "\ninferno run: no token can be sampled (every logit is banned or NaN)\n");
            finish = "error";
            break;
        }
        if (inf_token_is_eog(model, tok)) {
            finish = "stop";
            break;
        }
        inf_sampler_accept(smp, tok);
        n_gen++;
        int np = inf_token_to_piece(model, tok, false, piece, (int)sizeof piece);
        if (np > (int)sizeof piece) np = (int)sizeof piece;
        bool stopped = inf_stop_matcher_feed(stop, piece, (size_t)(np > 0 ? np : 0), &emit, &n_emit);
        run_emit(&out, emit, n_emit);
        if (stopped) {
            finish = "stop";
            stop_hit = true;
            break;
        }
        // The token just sampled needs a KV cell to be decoded; stop when none is left.
        if (o.g.max_tokens >= 0 && n_gen >= o.g.max_tokens) break;
        if (n_prompt + n_gen > n_ctx) {
            fprintf(stderr, "\ninferno run: context limit reached (%d tokens); stopping\n", n_ctx);
            break;
        }
        int32_t p = n_prompt + (int32_t)n_gen - 1, sq = 0;
        inf_batch b = {.n_tokens = 1, .tokens = &tok, .pos = &p, .seq_id = &sq};
        if (inf_session_decode(sess, &b) != INF_OK) {
            fprintf(stderr, "\ninferno run: %s\n", inf_last_error());
            free(banned);
            goto done;
        }
    }
    free(banned);
    if (!stop_hit) { // text held back as a possible stop-string prefix is real output
        inf_stop_matcher_flush(stop, &emit, &n_emit);
        run_emit(&out, emit, n_emit);
    }
    double t_gen = inf_time_now() - t1;
    if (!out.stream && out.text) fwrite(out.text, 1, out.len, stdout);
    fputc('\n', stdout);
    fflush(stdout);

    fprintf(stderr, "\n--- %s | %s | %d threads", info.name[0] ? info.name : info.arch, info.file_type,
            o.g.threads > 0 ? (int)o.g.threads : (int)sysconf(_SC_NPROCESSORS_ONLN));
    if (info.n_gpu_layers > 0) fprintf(stderr, " | GPU %s: %d/%d layers", info.gpu, info.n_gpu_layers, info.n_layer);
    else fprintf(stderr, " | CPU only");
    fputc('\n', stderr);
    fprintf(stderr, "load:       %8.1f ms\n", t_load * 1e3);
    fprintf(stderr, "prompt:     %8d tokens in %8.3f s = %9.2f tok/s\n", n_prompt, t_prompt,
            t_prompt > 0 ? n_prompt / t_prompt : 0.0);
    fprintf(stderr, "generation: %8ld tokens in %8.3f s = %9.2f tok/s, %.2f ms/token\n", n_gen, t_gen,
            t_gen > 0 ? n_gen / t_gen : 0.0, n_gen ? t_gen * 1e3 / (double)n_gen : 0.0);
    fprintf(stderr, "total:      %8.3f s, finish reason: %s\n", t_prompt + t_gen, finish);
    rc = 0;
done:
    free(out.text);
    free(toks);
    free(prompt);
    inf_stop_matcher_free(stop);
    inf_sampler_free(smp);
    inf_session_free(sess);
    inf_model_free(model);
    return rc;
}
