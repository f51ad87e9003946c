// main.c: the `inferno` command: dispatches to subcommands and prints the top-level help.
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} commands[] = {
    {"run", cmd_run, "generate text from a prompt and report the speed"},
    {"info", cmd_info, "describe a GGUF model: architecture, hyperparameters, tensors, memory"},
    {"perplexity", cmd_perplexity, "measure perplexity over a text file (llama.cpp's method)"},
    {"chat", cmd_chat, "interactive chat in the terminal, using the model's chat template"},
    {"serve", cmd_serve, "OpenAI-compatible HTTP server with continuous batching"},
    {"bench", cmd_bench, "measure prompt processing and generation speed (llama-bench style)"},
    {"quantize", cmd_quantize, "convert an F32/F16/BF16 GGUF to a quantized type"},
    {"synth", cmd_synth, "generate a random-weight llama model of a named shape (for benchmarks)"},
    {"config", cmd_config, "show the merged configuration and where each value came from"},
};

static void print_help(FILE *out) {
    fprintf(out, "inferno %s: local LLM inference for GGUF models\n\n", INFERNO_VERSION);
    fprintf(out, "usage: inferno <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].help);
    fprintf(out, "\n'inferno <command> --help' shows a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_help(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        print_help(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("inferno %s\n", INFERNO_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "inferno: unknown command '%s' (see 'inferno --help')\n", argv[1]);
    return 2;
}

bool cli_parse_int(const char *cmd, const char *flag, const char *s, long min, long max, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end) {
        fprintf(stderr, "inferno %s: %s: '%s' is not an integer\n", cmd, flag, s);
        return false;
    }
    if (v < min || v > max) {
        fprintf(stderr, "inferno %s: %s: %ld is out of range [%ld, %ld]\n", cmd, flag, v, min, max);
        return false;
    }
    *out = v;
    return true;
}

bool cli_parse_float(const char *cmd, const char *flag, const char *s, double min, double max, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v != v) {
        fprintf(stderr, "inferno %s: %s: '%s' is not a number\n", cmd, flag, s);
        return false;
    }
    if (v < min || v > max) {
        fprintf(stderr, "inferno %s: %s: %g is out of range [%g, %g]\n", cmd, flag, v, min, max);
        return false;
    }
    *out = v;
    return true;
}

const char *cli_flag_value(const char *cmd, int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "inferno %s: %s needs a value\n", cmd, argv[*i]);
        return NULL;
    }
    *i += 1;
    return argv[*i];
}

inf_config *cli_config_load(const char *cmd) {
    inf_config *cfg = NULL;
    if (inf_config_init(&cfg) != INF_OK || inf_config_load_standard_files(cfg) != INF_OK ||
        inf_config_load_env(cfg) != INF_OK) {
        fprintf(stderr, "inferno %s: %s\n", cmd, inf_last_error());
        inf_config_free(cfg);
        return NULL;
    }
    return cfg;
}

bool cli_read_file(const char *cmd, const char *path, size_t max, char **out, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "inferno %s: %s: cannot open: %s\n", cmd, path, strerror(errno));
        return false;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 1 == cap) {
            if (cap > max) {
                fprintf(stderr, "inferno %s: %s: larger than %zu bytes\n", cmd, path, max);
                free(buf);
                fclose(f);
                return false;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                fclose(f);
                fprintf(stderr, "inferno %s: %s: out of memory\n", cmd, path);
                return false;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, f);
        if (!got) break;
        n += got;
    }
    bool err = ferror(f);
    fclose(f);
    if (err) {
        fprintf(stderr, "inferno %s: %s: read error\n", cmd, path);
        free(buf);
        return false;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return true;
}

void cli_gen_defaults(cli_gen_opts *o, inf_config *cfg, long max_tokens) {
    *o = (cli_gen_opts){
        .max_tokens = max_tokens,
        .ctx = inf_config_get_int(cfg, "backend_config.context_size"),
        .batch = inf_config_get_int(cfg, "backend_config.batch_size"),
        .threads = inf_config_get_int(cfg, "backend_config.threads"),
        .gpu_layers = inf_config_get_int(cfg, "backend_config.gpu_layers"),
        .gpu_enabled = inf_config_get_bool(cfg, "backend_config.gpu_enabled"),
        .ctx_default = !strcmp(inf_config_source(cfg, "backend_config.context_size"), "default"),
        .sampling = inf_sampler_default_params(),
    };
}

void cli_gen_usage(FILE *out) {
    fprintf(out,
            "  -m, --model FILE         GGUF model (required)\n"
            "  -n, --max-tokens N       tokens to generate (-1 = until the end or the context limit)\n"
            "      --temp T             temperature (default 0.8; 0 = greedy)\n"
            "      --top-k N            keep the N most likely tokens (default 40; 0 = off)\n"
            "      --top-p P            nucleus sampling threshold (default 0.95; 1 = off)\n"
            "      --min-p P            drop tokens below P x the top probability (default 0.05; 0 = off)\n"
            "      --repeat-penalty R   penalty for repeated tokens (default 1.0 = off)\n"
            "      --repeat-last-n N    window of the penalties (default 64)\n"
            "      --frequency-penalty F, --presence-penalty F   (default 0 = off)\n"
            "      --seed N             random seed (default: from the clock; printed with --verbose)\n"
            "  -c, --ctx-size N         context size in tokens (default: config context_size, 2048, at most\n"
            "                           the model's training context unless given)\n"
            "  -b, --batch-size N       prompt tokens per forward pass (default: config batch_size, 512)\n"
            "  -t, --threads N          CPU threads (default: config threads; 0 = all cores)\n"
            "  -ngl, --gpu-layers N     layers on the GPU: 0..999 (999 = all) or auto (default: config)\n"
            "  -v, --verbose            print the load log, the prompt tokens and the seed\n");
}

int cli_gen_flag(const char *cmd, int argc, char **argv, int *i, inf_config *cfg, cli_gen_opts *o) {
    const char *a = argv[*i], *v = NULL;
    long n;
    double d;
    inf_sampler_params *sp = &o->sampling;
#define IS(s1, s2) (!strcmp(a, s1) || !strcmp(a, s2))
#define IS1(s1) (!strcmp(a, s1))
#define VALUE() if (!(v = cli_flag_value(cmd, argc, argv, i))) return -1
#define INT(lo, hi, dst) do { VALUE(); if (!cli_parse_int(cmd, a, v, lo, hi, &n)) return -1; dst = n; } while (0)
#define FLT(lo, hi, dst) do { VALUE(); if (!cli_parse_float(cmd, a, v, lo, hi, &d)) return -1; dst = (float)d; } while (0)
    if (IS("-m", "--model")) { VALUE(); o->model = v; }
    else if (IS("-n", "--max-tokens")) INT(-1, 1L << 30, o->max_tokens);
    else if (IS("-c", "--ctx-size")) { INT(1, 1L << 22, o->ctx); o->ctx_default = false; }
    else if (IS("-b", "--batch-size")) INT(1, 1L << 16, o->batch);
    else if (IS("-t", "--threads")) INT(0, 4096, o->threads);
    else if (IS("-ngl", "--gpu-layers")) {
        VALUE();
        if (inf_config_set(cfg, "backend_config.gpu_layers", v, a) != INF_OK) {
            fprintf(stderr, "inferno %s: %s\n", cmd, inf_last_error());
            return -1;
        }
        o->gpu_layers = inf_config_get_int(cfg, "backend_config.gpu_layers");
    }
    else if (IS1("--top-k")) INT(0, 1L << 30, sp->top_k);
    else if (IS1("--repeat-last-n")) INT(-1, 1L << 30, sp->repeat_last_n);
    else if (IS("--temp", "--temperature")) FLT(0, 100, sp->temperature);
    else if (IS1("--top-p")) FLT(0, 1, sp->top_p);
    else if (IS1("--min-p")) FLT(0, 1, sp->min_p);
    else if (IS1("--repeat-penalty")) FLT(0, 100, sp->repeat_penalty);
    else if (IS1("--frequency-penalty")) FLT(-100, 100, sp->frequency_penalty);
    else if (IS1("--presence-penalty")) FLT(-100, 100, sp->presence_penalty);
    else if (IS1("--seed")) {
        VALUE();
        char *end;
        errno = 0;
        unsigned long long seed = strtoull(v, &end, 10);
        if (errno || end == v || *end || v[0] == '-') {
            fprintf(stderr, "inferno %s: --seed: '%s' is not a non-negative integer\n", cmd, v);
            return -1;
        }
        sp->seed = seed;
        o->seed_set = true;
    } else if (IS("-v", "--verbose")) o->verbose = true;
    else return 0;
    return 1;
#undef IS
#undef IS1
#undef VALUE
#undef INT
#undef FLT
}

void cli_gen_finish(cli_gen_opts *o) {
    if (!o->seed_set) o->sampling.seed = (uint64_t)(inf_time_now() * 1e6) ^ (uint64_t)getpid();
}
