// cmd_synth.c: `inferno synth --shape NAME --vocab V.gguf --out F.gguf [--type T] [--seed S]`: writes a
// random-weight llama model of a named shape, with the tokenizer of a vocabulary GGUF, through
// inf_synth_model. For benchmarks that need a model of a real size without downloading one.
// Left out: custom shapes from the command line (add a named shape in src/model/synth.c instead).
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void synth_usage(FILE *out) {
    fprintf(out,
            "usage: inferno synth --shape NAME --vocab V.gguf --out F.gguf [--type T] [--seed S]\n\n"
            "Writes a llama model with random weights (N(0, 0.02^2), norms 1.0) of a named shape, with the\n"
            "tokenizer copied from a vocabulary GGUF (its token count sets the vocabulary size).\n\n"
            "  --shape NAME    model shape (below)\n"
            "  --vocab FILE    GGUF holding tokenizer.* keys, e.g. models/vocab/ggml-vocab-llama-spm.gguf\n"
            "  --out FILE      output GGUF\n"
            "  --type T        tensor type, as for 'inferno quantize' (default F16)\n"
            "  --seed S        random seed, 0..2^64-1 (default 42); the same seed gives the same file\n"
            "  -q, --quiet     errors only\n\n"
            "shapes:\n");
    const char *name, *desc;
    for (int i = 0; inf_synth_shape_at(i, &name, &desc); i++) fprintf(out, "  %-16s %s\n", name, desc);
}

static bool parse_seed(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    if (!*s || *s == '-' || *s == '+' || *s == ' ') return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return false;
    *out = v;
    return true;
}

int cmd_synth(int argc, char **argv) {
    const char *cmd = "synth";
    const char *shape = NULL, *vocab = NULL, *out = NULL, *type = "F16";
    uint64_t seed = 42;
    inf_log_level level = INF_LOG_INFO;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            synth_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--shape")) {
            if (!(shape = cli_flag_value(cmd, argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--vocab")) {
            if (!(vocab = cli_flag_value(cmd, argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--out") || !strcmp(a, "-o")) {
            if (!(out = cli_flag_value(cmd, argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--type")) {
            if (!(type = cli_flag_value(cmd, argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--seed")) {
            if (!(v = cli_flag_value(cmd, argc, argv, &i))) return 2;
            if (!parse_seed(v, &seed)) {
                fprintf(stderr, "inferno %s: --seed: '%s' is not an integer in 0..2^64-1\n", cmd, v);
                return 2;
            }
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            level = INF_LOG_ERROR;
        } else {
            fprintf(stderr, "inferno %s: unknown argument '%s' (see 'inferno %s --help')\n", cmd, a, cmd);
            return 2;
        }
    }
    if (!shape || !vocab || !out) {
        fprintf(stderr, "inferno %s: --shape, --vocab and --out are required\n\n", cmd);
        synth_usage(stderr);
        return 2;
    }
    inf_log_set_level(level);
    if (inf_synth_model(shape, vocab, out, type, seed) != INF_OK) {
        fprintf(stderr, "inferno %s: %s\n", cmd, inf_last_error());
        return 1;
    }
    return 0;
}
