// main.c: the `inferno` command: dispatches to subcommands and prints the top-level help.
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
