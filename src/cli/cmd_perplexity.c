// cmd_perplexity.c: `inferno perplexity --model M --file F --ctx N`: perplexity over a text, chunked as
// llama.cpp's perplexity tool does so the figures compare (see inf_perplexity in inferno.h).
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void ppl_usage(FILE *out) {
    fprintf(out, "usage: inferno perplexity --model FILE --file TEXT [--ctx N] [--batch-size N] [--threads N]\n\n"
                 "  -m, --model FILE     GGUF model\n"
                 "  -f, --file FILE      text to score\n"
                 "  -c, --ctx N          chunk length in tokens (default 512); the second half of each is scored\n"
                 "  -b, --batch-size N   tokens per forward pass (default: the chunk length)\n"
                 "  -t, --threads N      CPU threads (default: config threads)\n");
}

static void on_chunk(int chunk, int n_chunks, double ppl, void *user) {
    (void)n_chunks;
    (void)user;
    printf("[%d]%.4f,", chunk + 1, ppl);
    fflush(stdout);
}

int cmd_perplexity(int argc, char **argv) {
    inf_config *cfg = cli_config_load("perplexity");
    if (!cfg) return 1;
    long threads = inf_config_get_int(cfg, "backend_config.threads");
    inf_config_free(cfg);
    const char *model = NULL, *file = NULL;
    long ctx = 512, batch = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            ppl_usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(model = cli_flag_value("perplexity", argc, argv, &i))) return 2;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (!(file = cli_flag_value("perplexity", argc, argv, &i))) return 2;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx") || !strcmp(a, "--ctx-size")) {
            if (!(v = cli_flag_value("perplexity", argc, argv, &i)) || !cli_parse_int("perplexity", a, v, 4, 1L << 20, &ctx)) return 2;
        } else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) {
            if (!(v = cli_flag_value("perplexity", argc, argv, &i)) || !cli_parse_int("perplexity", a, v, 1, 1L << 16, &batch)) return 2;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!(v = cli_flag_value("perplexity", argc, argv, &i)) || !cli_parse_int("perplexity", a, v, 0, 4096, &threads)) return 2;
        } else {
            fprintf(stderr, "inferno perplexity: unknown option '%s' (see 'inferno perplexity --help')\n", a);
            return 2;
        }
    }
    if (!model || !file) {
        fprintf(stderr, "inferno perplexity: --model and --file are required\n");
        return 2;
    }
    char *text;
    size_t len;
    if (!cli_read_file("perplexity", file, 256u << 20, &text, &len)) return 1;
    inf_log_set_level(INF_LOG_WARN);
    inf_model_params mp = inf_model_default_params();
    mp.n_threads = (int)threads;
    inf_model *m = NULL;
    if (inf_model_load(model, &mp, &m) != INF_OK) {
        fprintf(stderr, "inferno perplexity: %s\n", inf_last_error());
        free(text);
        return 1;
    }
    inf_perplexity_result r;
    inf_status st = inf_perplexity(m, text, len, (int)ctx, (int)(batch ? batch : ctx), (int)threads, on_chunk, NULL, &r);
    free(text);
    if (st != INF_OK) {
        fprintf(stderr, "\ninferno perplexity: %s\n", inf_last_error());
        inf_model_free(m);
        return 1;
    }
    printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_stderr);
    fflush(stdout);
    fprintf(stderr, "%d tokens, %d chunks of %ld, %d predictions scored, %.2f s (%.1f tok/s)\n", r.n_tokens,
            r.n_chunks, ctx, r.n_scored, r.seconds, r.seconds > 0 ? r.n_chunks * ctx / r.seconds : 0.0);
    inf_model_free(m);
    return 0;
}
