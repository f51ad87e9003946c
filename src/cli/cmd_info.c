// cmd_info.c: `inferno info MODEL`: what a GGUF file holds and what running it costs: architecture,
// hyperparameters, tokenizer, tensor-type histogram, sizes, and the memory of a session of a given context.
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void info_usage(FILE *out) {
    fprintf(out, "usage: inferno info MODEL [--ctx-size N] [--batch-size N] [--metadata]\n\n"
                 "  -c, --ctx-size N    context for the session memory estimate (default: config context_size)\n"
                 "  -b, --batch-size N  batch for the estimate (default: config batch_size)\n"
                 "      --metadata      also print every metadata key and value\n");
}

static void print_bytes(const char *label, uint64_t b) {
    printf("%-22s %llu bytes (%.2f MiB)\n", label, (unsigned long long)b, (double)b / (1024.0 * 1024.0));
}

int cmd_info(int argc, char **argv) {
    inf_config *cfg = cli_config_load("info");
    if (!cfg) return 1;
    long ctx = inf_config_get_int(cfg, "backend_config.context_size");
    long batch = inf_config_get_int(cfg, "backend_config.batch_size");
    inf_config_free(cfg);
    const char *path = NULL;
    bool meta = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            info_usage(stdout);
            return 0;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            if (!(v = cli_flag_value("info", argc, argv, &i)) || !cli_parse_int("info", a, v, 1, 1L << 22, &ctx)) return 2;
        } else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) {
            if (!(v = cli_flag_value("info", argc, argv, &i)) || !cli_parse_int("info", a, v, 1, 1L << 16, &batch)) return 2;
        } else if (!strcmp(a, "--metadata")) {
            meta = true;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(path = cli_flag_value("info", argc, argv, &i))) return 2;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "inferno info: unknown option '%s' (see 'inferno info --help')\n", a);
            return 2;
        } else if (!path) {
            path = a;
        } else {
            fprintf(stderr, "inferno info: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!path) {
        info_usage(stderr);
        return 2;
    }
    inf_log_set_level(INF_LOG_WARN);
    inf_model *m = NULL;
    if (inf_model_load(path, NULL, &m) != INF_OK) {
        fprintf(stderr, "inferno info: %s\n", inf_last_error());
        return 1;
    }
    inf_model_info in;
    inf_model_get_info(m, &in);
    printf("%-22s %s\n", "file", path);
    printf("%-22s %u\n", "gguf version", in.gguf_version);
    printf("%-22s %s\n", "name", in.name[0] ? in.name : "(none)");
    printf("%-22s %s\n", "architecture", in.arch);
    printf("%-22s %llu (%.2f M)\n", "parameters", (unsigned long long)in.n_params, (double)in.n_params / 1e6);
    printf("%-22s %s\n", "main tensor type", in.file_type);
    printf("%-22s %d\n", "context (training)", in.n_ctx_train);
    printf("%-22s %d\n", "embedding", in.n_embd);
    printf("%-22s %d\n", "layers", in.n_layer);
    printf("%-22s %d (kv %d, head dim %d)\n", "attention heads", in.n_head, in.n_head_kv, in.head_dim);
    printf("%-22s %d\n", "feed-forward", in.n_ff);
    printf("%-22s %d dims, base %g, scale %g\n", "rope", in.n_rot, in.rope_freq_base, in.rope_freq_scale);
    printf("%-22s %g\n", "rms norm eps", in.rms_eps);
    printf("%-22s %s\n", "output head", in.tied_output ? "tied to token_embd" : "output.weight");
    printf("%-22s %s (pre-tokenizer %s), %d tokens, bos %d, eos %d, add bos %s\n", "tokenizer",
           !strcmp(in.tokenizer, "llama") ? "SentencePiece (llama)" : !strcmp(in.tokenizer, "gpt2") ? "BPE (gpt2)" : in.tokenizer,
           in.tokenizer_pre, in.n_vocab, in.bos, in.eos, in.add_bos ? "yes" : "no");
    const char *names[64];
    int counts[64];
    int n = inf_model_type_histogram(m, names, counts, 64);
    printf("%-22s", "tensor types");
    for (int i = 0; i < n && i < 64; i++) printf(" %s x%d", names[i], counts[i]);
    printf("\n");
    print_bytes("file size", in.file_size);
    print_bytes("weights", in.weights_bytes);
    char label[64];
    snprintf(label, sizeof label, "session (ctx %ld)", ctx);
    print_bytes(label, inf_model_session_bytes(m, (int)ctx, (int)batch, 1));
    print_bytes("total (weights+session)", in.weights_bytes + inf_model_session_bytes(m, (int)ctx, (int)batch, 1));
    if (meta) {
        printf("\nmetadata:\n");
        const char *key;
        char value[256];
        for (int i = 0; inf_model_meta_at(m, i, &key, value, sizeof value); i++) printf("  %-40s %s\n", key, value);
    }
    inf_model_free(m);
    return 0;
}
