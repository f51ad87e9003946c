// test_config.c: the layered configuration in a private temporary HOME, XDG_CONFIG_HOME and working
// directory: defaults, precedence of the three standard files, the environment and inf_config_set, the
// source of every value, unknown-key warnings (captured through the log hook, with file:line and the
// suggested key), wrong types and ranges as errors with file:line, gpu_layers "auto", and that a failing
// layer changes nothing. The printed configuration is parsed back as TOML to check it is valid.
#include "core/toml.h"
#include "inferno.h"
#include "test.h"

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_root[256], g_home[300], g_xdg[300], g_cwd[300], g_orig_cwd[4096];

// Warnings captured from the library's log.
static char g_log[8192];
static int g_n_warn;

static void capture_log(inf_log_level level, const char *msg, void *user) {
    (void)user;
    if (level != INF_LOG_WARN) return;
    g_n_warn++;
    size_t n = strlen(g_log);
    snprintf(g_log + n, sizeof g_log - n, "%s\n", msg);
}

static void log_reset(void) {
    g_log[0] = '\0';
    g_n_warn = 0;
}

static const char *const env_names[] = {"INFERNO_MODELS_DIR",   "INFERNO_GPU_ENABLED", "INFERNO_GPU_LAYERS",
                                        "INFERNO_CONTEXT_SIZE", "INFERNO_BATCH_SIZE",  "INFERNO_THREADS",
                                        "INFERNO_HOST",         "INFERNO_PORT"};

static void env_clear(void) {
    for (size_t i = 0; i < INF_ARRAY_LEN(env_names); i++) unsetenv(env_names[i]);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

static void path_in(char *buf, size_t cap, const char *dir, const char *name) {
    snprintf(buf, cap, "%s/%s", dir, name);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    chmod(path, 0700);
    return remove(path);
}

// Removes every config file of the previous test and restores the environment the tests start from.
static void reset_files(void) {
    char p[512];
    path_in(p, sizeof p, g_xdg, "inferno/config.toml");
    unlink(p);
    path_in(p, sizeof p, g_home, ".config/inferno/config.toml");
    unlink(p);
    path_in(p, sizeof p, g_home, ".inferno.toml");
    chmod(p, 0600);
    if (remove(p) != 0 && errno != ENOENT) nftw(p, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    path_in(p, sizeof p, g_cwd, ".inferno.toml");
    unlink(p);
    setenv("HOME", g_home, 1);
    setenv("XDG_CONFIG_HOME", g_xdg, 1);
    if (chdir(g_cwd) != 0) exit(1);
    env_clear();
    log_reset();
}

static void setup(void) {
    if (!getcwd(g_orig_cwd, sizeof g_orig_cwd)) exit(1);
    snprintf(g_root, sizeof g_root, "/tmp/inferno-test-config-XXXXXX");
    if (!mkdtemp(g_root)) {
        perror("mkdtemp");
        exit(1);
    }
    path_in(g_home, sizeof g_home, g_root, "home");
    path_in(g_xdg, sizeof g_xdg, g_root, "xdg");
    path_in(g_cwd, sizeof g_cwd, g_root, "work");
    char p[512];
    mkdir(g_home, 0700);
    path_in(p, sizeof p, g_home, ".config");
    mkdir(p, 0700);
    path_in(p, sizeof p, g_home, ".config/inferno");
    mkdir(p, 0700);
    mkdir(g_xdg, 0700);
    path_in(p, sizeof p, g_xdg, "inferno");
    mkdir(p, 0700);
    mkdir(g_cwd, 0700);
    inf_log_set_callback(capture_log, NULL);
    reset_files();
}

static void teardown(void) {
    inf_log_set_callback(NULL, NULL);
    if (chdir(g_orig_cwd) != 0) return;
    nftw(g_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static inf_config *fresh(void) {
    inf_config *cfg = NULL;
    CHECK(inf_config_init(&cfg) == INF_OK);
    if (!cfg) exit(1);
    return cfg;
}

#define CHECK_CONTAINS(hay, needle)                                                                          \
    do {                                                                                                     \
        const char *_h = (hay), *_n = (needle);                                                              \
        CHECK_MSG(strstr(_h, _n) != NULL, "\"%s\" does not contain \"%s\"", _h, _n);                         \
    } while (0)

static void test_defaults(void) {
    reset_files();
    inf_config *cfg = fresh();
    char want[512];
    path_in(want, sizeof want, g_home, ".local/share/inferno/models");
    CHECK_STR(inf_config_get_str(cfg, "models_dir"), want);
    CHECK(inf_config_get_bool(cfg, "backend_config.gpu_enabled") == true);
    CHECK_EQ_INT(inf_config_get_int(cfg, "backend_config.gpu_layers"), -1);
    CHECK_STR(inf_config_get_str(cfg, "backend_config.gpu_layers"), "auto");
    CHECK_EQ_INT(inf_config_get_int(cfg, "backend_config.context_size"), 2048);
    CHECK_EQ_INT(inf_config_get_int(cfg, "backend_config.batch_size"), 512);
    CHECK_EQ_INT(inf_config_get_int(cfg, "backend_config.threads"), 0);
    CHECK_STR(inf_config_get_str(cfg, "server.host"), "127.0.0.1");
    CHECK_EQ_INT(inf_config_get_int(cfg, "server.port"), 8080);
    CHECK_STR(inf_config_get_str(cfg, "server.port"), "8080");
    CHECK_STR(inf_config_get_str(cfg, "backend_config.gpu_enabled"), "true");
    CHECK_NEAR(inf_config_get_float(cfg, "backend_config.context_size"), 2048.0, 0);
    CHECK_STR(inf_config_source(cfg, "server.port"), "default");
    CHECK_STR(inf_config_source(cfg, "models_dir"), "default");
    // No files anywhere: loading them is a no-op.
    CHECK(inf_config_load_standard_files(cfg) == INF_OK);
    CHECK(inf_config_load_env(cfg) == INF_OK);
    CHECK_STR(inf_config_source(cfg, "backend_config.threads"), "default");
    CHECK_EQ_INT(g_n_warn, 0);
    inf_config_free(cfg);
    inf_config_free(NULL);
}

static void test_precedence(void) {
    reset_files();
    char p[512], xdg_file[512];
    path_in(xdg_file, sizeof xdg_file, g_xdg, "inferno/config.toml");
    write_file(xdg_file, "[backend_config]\n"
                         "threads = 1\n"
                         "context_size = 100\n"
                         "batch_size = 10\n"
                         "[server]\n"
                         "port = 1000\n");
    path_in(p, sizeof p, g_home, ".inferno.toml");
    write_file(p, "# home\n"
                  "[backend_config]\n"
                  "context_size = 200\n"
                  "batch_size = 20\n");
    path_in(p, sizeof p, g_cwd, ".inferno.toml");
    write_file(p, "backend_config.batch_size = 30\nmodels_dir = \"~/models\"\n");
    // A file in the non-XDG location is not read while XDG_CONFIG_HOME is set.
    path_in(p, sizeof p, g_home, ".config/inferno/config.toml");
    write_file(p, "server.host = \"should-not-be-read\"\n");

    inf_config *cfg = fresh();
    CHECK_MSG(inf_config_load_standard_files(cfg) == INF_OK, "%s", inf_last_error());
    char src[600];
    CHECK_EQ_INT(inf_config_get_int(cfg, "backend_config.threads"), 1);
    snprintf(src, sizeof src, "%s:2", xdg_file); // the XDG directory is outside HOME: shown in full
    CHECK_STR(inf_config_source(cfg, "backend_config.threads"), src);
    CHECK_EQ_INT(inf_config_get_int(cfg, "server.port"), 1000);
    snprintf(src, sizeof src, "%s:6", xdg_file);
    CHECK_STR(inf_config_source(cfg, "server.port"), src);
    CHECK_EQ_INT(inf_config_get_int(cfg, "backend_config.context_size"), 200);
    CHECK_STR(inf_config_source(cfg, "backend_config.context_size"), "~/.inferno.toml:3");
    CHECK_EQ_INT(inf_config_get_int(cfg, "backend_config.batch_size"), 30);
    CHECK_STR(inf_config_source(cfg, "backend_config.batch_size"), "./.inferno.toml:1");
    path_in(p, sizeof p, g_home, "models");
    CHECK_STR(inf_config_get_str(cfg, "models_dir"), p);
    CHECK_STR(inf_config_source(cfg, "models_dir"), "./.inferno.toml:2");
    CHECK_STR(inf_config_get_str(cfg, "server.host"), "127.0.0.1");
    CHECK_STR(inf_config_source(cfg, "server.host"), "default");

    // The environment beats the files, flags beat the environment.
    setenv("INFERNO_BATCH_SIZE", "40", 1);
    setenv("INFERNO_HOST", "0.0.0.0", 1);
    setenv("INFERNO_THREADS", "", 1); // empty: ignored
    CHECK_MSG(inf_config_load_env(cfg) == INF_OK, "%s", inf_last_error());
    CHECK_EQ_INT(inf_config_get_int(cfg, "backend_config.batch_size"), 40);
    CHECK_STR(inf_config_source(cfg, "backend_config.batch_size"), "env INFERNO_BATCH_SIZE");
    CHECK_STR(inf_config_get_str(cfg, "server.host"), "0.0.0.0");
    CHECK_STR(inf_config_source(cfg, "server.host"), "env INFERNO_HOST");
    CHECK_EQ_INT(inf_config_get_int(cfg, "backend_config.threads"), 1);
    CHECK(inf_config_set(cfg, "backend_config.batch_size", "50", "--batch-size") == INF_OK);
    CHECK_EQ_INT(inf_config_get_int(cfg, "backend_config.batch_size"), 50);
    CHECK_STR(inf_config_source(cfg, "backend_config.batch_size"), "--batch-size");
    // An extra file (--config) after the standard ones.
    path_in(p, sizeof p, g_home, "extra.toml");
    write_file(p, "\n\nserver.port = 2000\n");
    CHECK_MSG(inf_config_load_file(cfg, p) == INF_OK, "%s", inf_last_error());
    CHECK_EQ_INT(inf_config_get_int(cfg, "server.port"), 2000);
    CHECK_STR(inf_config_source(cfg, "server.port"), "~/extra.toml:3");
    CHECK_EQ_INT(g_n_warn, 0);
    inf_config_free(cfg);

    // XDG_CONFIG_HOME unset, empty or relative: $HOME/.config/inferno/config.toml instead.
    const char *xdg_values[] = {NULL, "", "relative/dir"};
    for (int i = 0; i < 3; i++) {
        if (xdg_values[i])
            setenv("XDG_CONFIG_HOME", xdg_values[i], 1);
        else
            unsetenv("XDG_CONFIG_HOME");
        cfg = fresh();
        CHECK_MSG(inf_config_load_standard_files(cfg) == INF_OK, "%s", inf_last_error());
        CHECK_STR(inf_config_get_str(cfg, "server.host"), "should-not-be-read");
        CHECK_STR(inf_config_source(cfg, "server.host"), "~/.config/inferno/config.toml:1");
        CHECK_EQ_INT(inf_config_get_int(cfg, "backend_config.threads"), 0); // the XDG file was not read
        inf_config_free(cfg);
    }
}

static void test_standard_paths(void) {
    reset_files();
    char buf[512], want[512];
    size_t n = inf_config_standard_path(0, buf, sizeof buf);
    path_in(want, sizeof want, g_xdg, "inferno/config.toml");
    CHECK_STR(buf, want);
    CHECK_EQ_INT(n, strlen(want));
    inf_config_standard_path(1, buf, sizeof buf);
    path_in(want, sizeof want, g_home, ".inferno.toml");
    CHECK_STR(buf, want);
    inf_config_standard_path(2, buf, sizeof buf);
    CHECK_STR(buf, "./.inferno.toml");
    CHECK_EQ_INT(inf_config_standard_path(3, buf, sizeof buf), 0);
    CHECK_EQ_INT(inf_config_standard_path(-1, buf, sizeof buf), 0);
    // Too small a buffer: truncated like snprintf, the full length returned.
    char small[8];
    CHECK_EQ_INT(inf_config_standard_path(2, small, sizeof small), strlen("./.inferno.toml"));
    CHECK_STR(small, "./.infe");
    unsetenv("XDG_CONFIG_HOME");
    inf_config_standard_path(0, buf, sizeof buf);
    path_in(want, sizeof want, g_home, ".config/inferno/config.toml");
    CHECK_STR(buf, want);
    // A trailing slash on HOME does not double the separator.
    snprintf(want, sizeof want, "%s/", g_home);
    setenv("HOME", want, 1);
    inf_config_standard_path(1, buf, sizeof buf);
    path_in(want, sizeof want, g_home, ".inferno.toml");
    CHECK_STR(buf, want);
}

static void test_home_is_cwd(void) {
    reset_files();
    char p[512];
    path_in(p, sizeof p, g_home, ".inferno.toml");
    write_file(p, "bogus_key = 1\nbackend_config.threads = 3\n");
    if (chdir(g_home) != 0) exit(1);
    inf_config *cfg = fresh();
    CHECK(inf_config_load_standard_files(cfg) == INF_OK);
    // Read once (one warning, not two), and credited to the home file.
    CHECK_EQ_INT(g_n_warn, 1);
    CHECK_STR(inf_config_source(cfg, "backend_config.threads"), "~/.inferno.toml:2");
    inf_config_free(cfg);
}

static void test_unknown_keys(void) {
    reset_files();
    char p[512];
    path_in(p, sizeof p, g_home, ".inferno.toml");
    write_file(p, "# settings\n"                          // 1
                  "[backend_config]\n"                    // 2
                  "gpu_layer = 5\n"                       // 3
                  "threads = 2\n"                         // 4
                  "[sever]\n"                             // 5
                  "port = 1\n"                            // 6
                  "[server]\n"                            // 7
                  "completely_unrelated_setting = true\n" // 8
                  "[root]\n"                              // 9
                  "[server.tls]\n"                        // 10
                  "cert = \"x\"\n");                      // 11
    path_in(p, sizeof p, g_cwd, ".inferno.toml");
    write_file(p, "context_size = 4096\n\"backend_config.threads\" = 9\n");
    inf_config *cfg = fresh();
    CHECK_MSG(inf_config_load_standard_files(cfg) == INF_OK, "%s", inf_last_error());
    CHECK_CONTAINS(g_log, "~/.inferno.toml:3: unknown key 'backend_config.gpu_layer' (ignored); did you mean "
                          "'backend_config.gpu_layers'?\n");
    CHECK_CONTAINS(g_log, "~/.inferno.toml:5: unknown table 'sever' (ignored); did you mean 'server'?\n");
    CHECK_CONTAINS(g_log, "~/.inferno.toml:8: unknown key 'server.completely_unrelated_setting' (ignored)\n");
    CHECK_CONTAINS(g_log, "~/.inferno.toml:9: unknown table 'root' (ignored)\n");
    CHECK_CONTAINS(g_log, "~/.inferno.toml:10: unknown table 'server.tls' (ignored)\n");
    // A known key in the wrong table: suggested where it belongs.
    CHECK_CONTAINS(g_log, "./.inferno.toml:1: unknown key 'context_size' (ignored); did you mean "
                          "'backend_config.context_size'?\n");
    // A quoted key with a dot is one key, not backend_config.threads.
    CHECK_CONTAINS(g_log, "./.inferno.toml:2: unknown key '\"backend_config.threads\"' (ignored)");
    CHECK_EQ_INT(g_n_warn, 7);
    // Far-off names get no suggestion.
    CHECK(strstr(g_log, "completely_unrelated_setting' (ignored);") == NULL);
    // The known keys of the same file still apply.
    CHECK_EQ_INT(inf_config_get_int(cfg, "backend_config.threads"), 2);
    CHECK_STR(inf_config_source(cfg, "backend_config.threads"), "~/.inferno.toml:4");
    CHECK_EQ_INT(inf_config_get_int(cfg, "backend_config.context_size"), 2048);
    inf_config_free(cfg);
}

typedef struct {
    const char *doc;
    const char *msg; // expected message after "<path>:"
} bad_value;

static const bad_value bad_values[] = {
    {"[server]\nport = \"80\"\n", "2: server.port: expected an integer in [1, 65535], got the string \"80\""},
    {"[server]\nport = 0\n", "2: server.port: expected an integer in [1, 65535], got 0"},
    {"server.port = 65536\n", "1: server.port: expected an integer in [1, 65535], got 65536"},
    {"\n[backend_config]\ncontext_size = 2048.0\n",
     "3: backend_config.context_size: expected an integer in [1, 1048576], got a float (2048)"},
    {"backend_config.context_size = 0\n",
     "1: backend_config.context_size: expected an integer in [1, 1048576]"},
    {"backend_config.context_size = 1048577\n", "got 1048577"},
    {"backend_config.batch_size = 65537\n",
     "1: backend_config.batch_size: expected an integer in [1, 65536], got 65537"},
    {"backend_config.threads = -1\n", "1: backend_config.threads: expected an integer in [0, 4096], got -1"},
    {"backend_config.gpu_enabled = 1\n", "1: backend_config.gpu_enabled: expected true or false, got 1"},
    {"backend_config.gpu_enabled = \"yes\"\n", "expected true or false, got the string \"yes\""},
    {"backend_config.gpu_layers = 1000\n",
     "1: backend_config.gpu_layers: expected an integer in [0, 999] or \"auto\", got 1000"},
    {"backend_config.gpu_layers = -1\n", "got -1"},
    {"backend_config.gpu_layers = \"all\"\n", "got the string \"all\""},
    {"backend_config.gpu_layers = \"AUTO\"\n", "got the string \"AUTO\""},
    {"models_dir = \"\"\n",
     "1: models_dir: expected a non-empty string of at most 4095 bytes, got an empty string"},
    {"models_dir = 5\n", "1: models_dir: expected a non-empty string of at most 4095 bytes, got 5"},
    {"models_dir = [\"a\"]\n", "got an array"},
    {"models_dir = \"a\\u0000b\"\n", "got a string containing a NUL character"},
    {"server.host = true\n", "1: server.host: expected a non-empty string of at most 255 bytes, got true"},
    {"backend_config = 3\n", "1: backend_config: expected a table, got 3"},
    {"[server.port]\nx = 1\n", "1: server.port: expected an integer in [1, 65535], got a table"},
    // TOML syntax errors carry the line too.
    {"[server]\nport 80\n", "2: expected '=' after key 'port'"},
};

static void test_bad_values(void) {
    for (size_t i = 0; i < INF_ARRAY_LEN(bad_values); i++) {
        reset_files();
        char p[512];
        path_in(p, sizeof p, g_home, ".inferno.toml");
        // The first line of every file is valid, so a failing file must leave it unapplied too.
        char doc[512];
        snprintf(doc, sizeof doc, "%s", bad_values[i].doc);
        write_file(p, doc);
        path_in(p, sizeof p, g_cwd, ".inferno.toml");
        write_file(p, "backend_config.threads = 7\n");
        inf_config *cfg = fresh();
        inf_status st = inf_config_load_standard_files(cfg);
        bool syntax = strstr(bad_values[i].msg, "expected '='") != NULL;
        CHECK_MSG(st == (syntax ? INF_ERR_FORMAT : INF_ERR_CONFIG), "case %zu: status %s", i,
                  inf_status_str(st));
        char want[512];
        snprintf(want, sizeof want, "~/.inferno.toml:%s", bad_values[i].msg);
        if (!strchr(bad_values[i].msg, ':')) snprintf(want, sizeof want, "%s", bad_values[i].msg);
        CHECK_CONTAINS(inf_last_error(), want);
        // The cwd file comes after the failing one and was not read.
        CHECK_EQ_INT(inf_config_get_int(cfg, "backend_config.threads"), 0);
        inf_config_free(cfg);
    }

    // A file that fails half-way applies nothing of itself.
    reset_files();
    char p[512];
    path_in(p, sizeof p, g_home, "half.toml");
    write_file(p, "backend_config.threads = 3\nserver.port = 0\n");
    inf_config *cfg = fresh();
    CHECK(inf_config_load_file(cfg, p) == INF_ERR_CONFIG);
    CHECK_CONTAINS(inf_last_error(), "~/half.toml:2: server.port");
    CHECK_EQ_INT(inf_config_get_int(cfg, "backend_config.threads"), 0);
    CHECK_STR(inf_config_source(cfg, "backend_config.threads"), "default");
    // A missing --config file is an error; a path outside HOME is shown as given.
    CHECK(inf_config_load_file(cfg, "/nonexistent/inferno.toml") == INF_ERR_IO);
    CHECK_CONTAINS(inf_last_error(), "/nonexistent/inferno.toml: cannot open");
    inf_config_free(cfg);
}

static void test_unreadable(void) {
    reset_files();
    char p[512];
    path_in(p, sizeof p, g_home, ".inferno.toml");
    // A directory where a file should be is an error, not a missing file.
    mkdir(p, 0700);
    inf_config *cfg = fresh();
    CHECK(inf_config_load_standard_files(cfg) == INF_ERR_IO);
    CHECK_CONTAINS(inf_last_error(), "~/.inferno.toml: not a regular file");
    inf_config_free(cfg);
    rmdir(p);
    // So is a file without read permission (root reads it anyway, so that case is skipped).
    write_file(p, "backend_config.threads = 1\n");
    chmod(p, 0);
    if (geteuid() != 0) {
        cfg = fresh();
        CHECK(inf_config_load_standard_files(cfg) == INF_ERR_IO);
        CHECK_CONTAINS(inf_last_error(), "cannot open");
        inf_config_free(cfg);
    }
    chmod(p, 0600);
    // A file over the size cap is refused.
    FILE *f = fopen(p, "wb");
    for (unsigned i = 0; i < TOML_MAX_BYTES / 64 + 1; i++)
        fputs("# padding padding padding padding padding padding padding paddin\n", f);
    fclose(f);
    cfg = fresh();
    CHECK(inf_config_load_standard_files(cfg) != INF_OK);
    CHECK_CONTAINS(inf_last_error(), "larger than 1048576 bytes");
    inf_config_free(cfg);
}

static void test_gpu_layers(void) {
    reset_files();
    char p[512];
    path_in(p, sizeof p, g_cwd, ".inferno.toml");
    const struct {
        const char *doc;
        int64_t want;
        const char *text;
    } cases[] = {
        {"[backend_config]\ngpu_layers = \"auto\"\n", -1, "auto"},
        {"[backend_config]\ngpu_layers = 35\n", 35, "35"},
        {"[backend_config]\ngpu_layers = 0\n", 0, "0"},
        {"[backend_config]\ngpu_layers = 999\n", 999, "999"},
    };
    for (size_t i = 0; i < INF_ARRAY_LEN(cases); i++) {
        write_file(p, cases[i].doc);
        inf_config *cfg = fresh();
        CHECK_MSG(inf_config_load_standard_files(cfg) == INF_OK, "%s", inf_last_error());
        CHECK_EQ_INT(inf_config_get_int(cfg, "backend_config.gpu_layers"), cases[i].want);
        CHECK_STR(inf_config_get_str(cfg, "backend_config.gpu_layers"), cases[i].text);
        CHECK_STR(inf_config_source(cfg, "backend_config.gpu_layers"), "./.inferno.toml:2");
        inf_config_free(cfg);
    }
    // From text: "auto" in any case, or an integer.
    inf_config *cfg = fresh();
    setenv("INFERNO_GPU_LAYERS", "12", 1);
    CHECK(inf_config_load_env(cfg) == INF_OK);
    CHECK_EQ_INT(inf_config_get_int(cfg, "backend_config.gpu_layers"), 12);
    CHECK_STR(inf_config_source(cfg, "backend_config.gpu_layers"), "env INFERNO_GPU_LAYERS");
    setenv("INFERNO_GPU_LAYERS", "AUTO", 1);
    CHECK(inf_config_load_env(cfg) == INF_OK);
    CHECK_EQ_INT(inf_config_get_int(cfg, "backend_config.gpu_layers"), -1);
    setenv("INFERNO_GPU_LAYERS", "-1", 1);
    CHECK(inf_config_load_env(cfg) == INF_ERR_CONFIG);
    CHECK_CONTAINS(inf_last_error(),
                   "env INFERNO_GPU_LAYERS: backend_config.gpu_layers: expected an integer in "
                   "[0, 999] or \"auto\", got '-1'");
    CHECK(inf_config_set(cfg, "backend_config.gpu_layers", "all", "--n-gpu-layers") == INF_ERR_CONFIG);
    CHECK_CONTAINS(inf_last_error(), "--n-gpu-layers: backend_config.gpu_layers:");
    CHECK(inf_config_set(cfg, "backend_config.gpu_layers", "999", "--n-gpu-layers") == INF_OK);
    CHECK_EQ_INT(inf_config_get_int(cfg, "backend_config.gpu_layers"), 999);
    inf_config_free(cfg);
}

static void test_env_values(void) {
    reset_files();
    inf_config *cfg = fresh();
    const struct {
        const char *value;
        bool want;
    } bools[] = {{"true", true}, {"false", false}, {"1", true},    {"0", false},
                 {"yes", true},  {"no", false},    {"TRUE", true}, {"No", false}};
    for (size_t i = 0; i < INF_ARRAY_LEN(bools); i++) {
        setenv("INFERNO_GPU_ENABLED", bools[i].value, 1);
        CHECK_MSG(inf_config_load_env(cfg) == INF_OK, "%s", inf_last_error());
        CHECK_MSG(inf_config_get_bool(cfg, "backend_config.gpu_enabled") == bools[i].want, "%s",
                  bools[i].value);
        CHECK_STR(inf_config_get_str(cfg, "backend_config.gpu_enabled"), bools[i].want ? "true" : "false");
    }
    setenv("INFERNO_GPU_ENABLED", "maybe", 1);
    CHECK(inf_config_load_env(cfg) == INF_ERR_CONFIG);
    CHECK_CONTAINS(inf_last_error(),
                   "env INFERNO_GPU_ENABLED: backend_config.gpu_enabled: expected true, false, "
                   "1, 0, yes or no, got 'maybe'");
    unsetenv("INFERNO_GPU_ENABLED");

    const struct {
        const char *var, *value;
    } bad[] = {{"INFERNO_THREADS", "12abc"},
               {"INFERNO_THREADS", " 12"},
               {"INFERNO_THREADS", "1.5"},
               {"INFERNO_THREADS", "-"},
               {"INFERNO_PORT", "99999999999999999999"},
               {"INFERNO_PORT", "0"},
               {"INFERNO_CONTEXT_SIZE", "0x10"}};
    for (size_t i = 0; i < INF_ARRAY_LEN(bad); i++) {
        setenv(bad[i].var, bad[i].value, 1);
        CHECK_MSG(inf_config_load_env(cfg) == INF_ERR_CONFIG, "%s=%s accepted", bad[i].var, bad[i].value);
        char want[128];
        snprintf(want, sizeof want, "env %s: ", bad[i].var);
        CHECK_CONTAINS(inf_last_error(), want);
        unsetenv(bad[i].var);
    }
    // A failing environment changes nothing, even the variables that were fine.
    setenv("INFERNO_THREADS", "6", 1);
    setenv("INFERNO_PORT", "http", 1);
    CHECK(inf_config_load_env(cfg) == INF_ERR_CONFIG);
    CHECK_EQ_INT(inf_config_get_int(cfg, "backend_config.threads"), 0);
    CHECK_STR(inf_config_source(cfg, "backend_config.threads"), "default");
    setenv("INFERNO_PORT", "+443", 1);
    setenv("INFERNO_MODELS_DIR", "~", 1);
    CHECK(inf_config_load_env(cfg) == INF_OK);
    CHECK_EQ_INT(inf_config_get_int(cfg, "server.port"), 443);
    CHECK_EQ_INT(inf_config_get_int(cfg, "backend_config.threads"), 6);
    CHECK_STR(inf_config_get_str(cfg, "models_dir"), g_home);
    CHECK_STR(inf_config_source(cfg, "models_dir"), "env INFERNO_MODELS_DIR");
    env_clear();
    inf_config_free(cfg);
}

static void test_set(void) {
    reset_files();
    inf_config *cfg = fresh();
    CHECK(inf_config_set(cfg, "backend_config.context_size", "4096", "--ctx-size") == INF_OK);
    CHECK_EQ_INT(inf_config_get_int(cfg, "backend_config.context_size"), 4096);
    CHECK_STR(inf_config_source(cfg, "backend_config.context_size"), "--ctx-size");
    CHECK(inf_config_set(cfg, "backend_config.context_size", "abc", "--ctx-size") == INF_ERR_CONFIG);
    CHECK_STR(inf_last_error(),
              "--ctx-size: backend_config.context_size: expected an integer in [1, 1048576], got 'abc'");
    CHECK_EQ_INT(inf_config_get_int(cfg, "backend_config.context_size"), 4096); // unchanged
    CHECK(inf_config_set(cfg, "backend_config.ctx_size", "1", "--ctx") == INF_ERR_CONFIG);
    CHECK_CONTAINS(inf_last_error(), "--ctx: unknown configuration key 'backend_config.ctx_size'");
    CHECK(inf_config_set(cfg, "threads", "1", "-t") == INF_ERR_CONFIG);
    CHECK_CONTAINS(inf_last_error(), "did you mean 'backend_config.threads'?");
    CHECK(inf_config_set(cfg, "server.host", "", "--host") == INF_ERR_CONFIG);
    CHECK_CONTAINS(inf_last_error(), "--host: server.host: expected a non-empty string");
    char longhost[300];
    memset(longhost, 'h', 256);
    longhost[256] = '\0';
    CHECK(inf_config_set(cfg, "server.host", longhost, "--host") == INF_ERR_CONFIG);
    CHECK_CONTAINS(inf_last_error(), "got a string that is too long");
    longhost[255] = '\0';
    CHECK(inf_config_set(cfg, "server.host", longhost, "--host") == INF_OK);
    // "~" expands only alone or before a slash.
    char want[512];
    CHECK(inf_config_set(cfg, "models_dir", "~/m", "--models") == INF_OK);
    path_in(want, sizeof want, g_home, "m");
    CHECK_STR(inf_config_get_str(cfg, "models_dir"), want);
    CHECK(inf_config_set(cfg, "models_dir", "~other/m", "--models") == INF_OK);
    CHECK_STR(inf_config_get_str(cfg, "models_dir"), "~other/m");
    CHECK(inf_config_set(cfg, "models_dir", "/abs/~/m", NULL) == INF_OK);
    CHECK_STR(inf_config_get_str(cfg, "models_dir"), "/abs/~/m");
    CHECK_STR(inf_config_source(cfg, "models_dir"), "inf_config_set");
    inf_config_free(cfg);
}

// The printed configuration is TOML whose values are those of the configuration.
static void test_print(void) {
    reset_files();
    inf_config *cfg = fresh();
    CHECK(inf_config_set(cfg, "server.host", "a \"quoted\"\\host", "--host") == INF_OK);
    CHECK(inf_config_set(cfg, "backend_config.threads", "8", "--threads") == INF_OK);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    inf_config_print(cfg, f);
    fclose(f);
    CHECK_CONTAINS(text, "backend_config.threads       = 8                        # --threads\n");
    CHECK_CONTAINS(text, "backend_config.gpu_layers    = \"auto\"                   # default\n");
    CHECK_CONTAINS(text, "backend_config.context_size  = 2048                     # default\n");
    CHECK_CONTAINS(text, "server.host                  = \"a \\\"quoted\\\"\\\\host\"");
    int lines = 0;
    for (const char *c = text; *c; c++) lines += *c == '\n';
    CHECK_EQ_INT(lines, 8);
    toml_value *doc = NULL;
    CHECK_MSG(toml_parse("print", text, len, &doc) == INF_OK, "%s", inf_last_error());
    if (doc) {
        const toml_value *v = toml_table_get_path(doc, "backend_config.threads");
        CHECK(v && v->type == TOML_INT && v->u.i == 8);
        v = toml_table_get_path(doc, "server.host");
        CHECK(v && v->type == TOML_STRING && !strcmp(v->u.str.ptr, "a \"quoted\"\\host"));
        v = toml_table_get_path(doc, "models_dir");
        CHECK(v && v->type == TOML_STRING && !strcmp(v->u.str.ptr, inf_config_get_str(cfg, "models_dir")));
        v = toml_table_get_path(doc, "backend_config.gpu_enabled");
        CHECK(v && v->type == TOML_BOOL && v->u.b);
        toml_free(doc);
    }
    free(text);
    inf_config_free(cfg);
}

int main(void) {
    setup();
    test_defaults();
    test_precedence();
    test_standard_paths();
    test_home_is_cwd();
    test_unknown_keys();
    test_bad_values();
    test_unreadable();
    test_gpu_layers();
    test_env_values();
    test_set();
    test_print();
    teardown();
    return test_summary();
}
