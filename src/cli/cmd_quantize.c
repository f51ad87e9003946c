// cmd_quantize.c: `inferno quantize IN.gguf OUT.gguf TYPE`: converts an F32/F16/BF16 model to another type
// with llama-quantize's per-tensor rules (or --pure), through inf_quantize_file. Progress and the summary
// come through the library log (stderr); -v shows one line per tensor.
// Left out: requantizing, importance matrices, per-tensor overrides (see src/model/quantize.c).
#include "cli.h"

#include <stdio.h>
#include <string.h>

static void quantize_usage(FILE *out) {
    fprintf(out,
            "usage: inferno quantize [options] IN.gguf OUT.gguf TYPE\n\n"
            "Converts an F32, F16 or BF16 GGUF model to TYPE, choosing each tensor's type as llama-quantize\n"
            "does (Q6_K output, more bits for some attn_v/ffn_down layers, norms kept F32).\n\n"
            "types: F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S\n"
            "       Q5_K_M Q6_K (Q3_K, Q4_K and Q5_K mean the _M mixes)\n\n"
            "  -t, --threads N   threads (default: config threads; 0 = all cores)\n"
            "      --pure        give every quantizable 2-D tensor TYPE (llama-quantize --pure)\n"
            "  -v, --verbose     one line per tensor\n"
            "  -q, --quiet       errors only\n");
}

int cmd_quantize(int argc, char **argv) {
    const char *cmd = "quantize";
    inf_config *cfg = cli_config_load(cmd);
    if (!cfg) return 1;
    long threads = inf_config_get_int(cfg, "backend_config.threads");
    inf_config_free(cfg);
    inf_quantize_params p = inf_quantize_default_params();
    inf_log_level level = INF_LOG_INFO;
    const char *pos[3];
    int n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            quantize_usage(stdout);
            return 0;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!(v = cli_flag_value(cmd, argc, argv, &i)) || !cli_parse_int(cmd, a, v, 0, 256, &threads))
                return 2;
        } else if (!strcmp(a, "--pure")) {
            p.pure = true;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            level = INF_LOG_DEBUG;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            level = INF_LOG_ERROR;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "inferno %s: unknown option '%s' (see 'inferno %s --help')\n", cmd, a, cmd);
            return 2;
        } else if (n_pos < 3) {
            pos[n_pos++] = a;
        } else {
            fprintf(stderr, "inferno %s: unexpected argument '%s'\n", cmd, a);
            return 2;
        }
    }
    if (n_pos != 3) {
        fprintf(stderr, "inferno %s: expected IN.gguf OUT.gguf TYPE\n\n", cmd);
        quantize_usage(stderr);
        return 2;
    }
    p.type = pos[2];
    p.n_threads = (int)threads;
    inf_log_set_level(level);
    if (inf_quantize_file(pos[0], pos[1], &p) != INF_OK) {
        fprintf(stderr, "inferno %s: %s\n", cmd, inf_last_error());
        return 1;
    }
    return 0;
}
