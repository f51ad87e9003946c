// cmd_config.c: `inferno config`: prints the merged configuration with the source of every value
// (`show`, the default action) or the files it is read from (`path`).
//
// Layers: the standard files, then --config FILE, then the INFERNO_* environment (the same order as the
// other commands, with --config added). Leaves out editing files: the output of `show` is valid TOML, so
// it can be saved and edited by hand.
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void config_usage(FILE *out) {
    fprintf(out,
            "usage: inferno config [show] [--config FILE]\n"
            "       inferno config path [--config FILE]\n"
            "\n"
            "  show           print every key = value and where it came from (default, file:line, env)\n"
            "  path           print the configuration files in the order they are read, and which exist\n"
            "\n"
            "options:\n"
            "  --config FILE  also read FILE, after the standard files and before the environment\n"
            "  -h, --help     show this help\n"
            "\n"
            "Later layers win: defaults, $XDG_CONFIG_HOME/inferno/config.toml (or\n"
            "~/.config/inferno/config.toml), ~/.inferno.toml, ./.inferno.toml, --config FILE, then the\n"
            "INFERNO_* environment variables (INFERNO_MODELS_DIR, INFERNO_GPU_ENABLED, INFERNO_GPU_LAYERS,\n"
            "INFERNO_CONTEXT_SIZE, INFERNO_BATCH_SIZE, INFERNO_THREADS, INFERNO_HOST, INFERNO_PORT).\n");
}

static int config_show(const char *extra) {
    inf_config *cfg = NULL;
    inf_status st = inf_config_init(&cfg);
    if (st == INF_OK) st = inf_config_load_standard_files(cfg);
    if (st == INF_OK && extra) st = inf_config_load_file(cfg, extra);
    if (st == INF_OK) st = inf_config_load_env(cfg);
    if (st != INF_OK) {
        fprintf(stderr, "inferno config: %s\n", inf_last_error());
        inf_config_free(cfg);
        return 1;
    }
    inf_config_print(cfg, stdout);
    inf_config_free(cfg);
    return 0;
}

// One line per file: its path and whether a run would read it.
static void config_print_path(const char *path, const char *note) {
    struct stat sb;
    const char *state;
    char buf[128];
    if (stat(path, &sb) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) {
            state = "missing";
        } else {
            snprintf(buf, sizeof buf, "error: %s", strerror(errno));
            state = buf;
        }
    } else if (!S_ISREG(sb.st_mode)) {
        state = "error: not a regular file";
    } else if (access(path, R_OK) != 0) {
        snprintf(buf, sizeof buf, "error: %s", strerror(errno));
        state = buf;
    } else {
        state = "exists";
    }
    printf("%s (%s)%s\n", path, state, note);
}

static int config_path(const char *extra) {
    char path[4096];
    for (int i = 0; inf_config_standard_path(i, path, sizeof path) > 0; i++) config_print_path(path, "");
    if (extra) config_print_path(extra, " --config");
    return 0;
}

int cmd_config(int argc, char **argv) {
    const char *action = NULL, *extra = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            config_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--config")) {
            extra = cli_flag_value("config", argc, argv, &i);
            if (!extra) return 2;
        } else if (!strncmp(a, "--config=", 9)) {
            extra = a + 9;
        } else if (a[0] == '-') {
            fprintf(stderr, "inferno config: unknown option '%s' (see 'inferno config --help')\n", a);
            return 2;
        } else if (action) {
            fprintf(stderr, "inferno config: unexpected argument '%s' (see 'inferno config --help')\n", a);
            return 2;
        } else {
            action = a;
        }
    }
    if (!action || !strcmp(action, "show")) return config_show(extra);
    if (!strcmp(action, "path")) return config_path(extra);
    fprintf(stderr, "inferno config: unknown action '%s' (show or path)\n", action);
    return 2;
}
