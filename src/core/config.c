// config.c: the layered configuration of include/inferno.h: one schema table, defaults, TOML files, the
// INFERNO_* environment and flags, each value remembering where it came from.
//
// Layers apply in the order the caller calls them; later ones win. A file or the environment is
// validated as a whole before anything is applied, so a failing layer leaves the configuration as it
// was. Unknown keys and tables in files only warn (with file:line and the closest known key), because a
// newer config file must not break an older binary; a known key with a wrong type or range is an error.
// Leaves out: writing files, float keys (add a kind with the first one), unknown INFERNO_* variables (other
// tools of the project use that prefix too, so they are not warned about).
#include "core/toml.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

typedef enum {
    CFG_INT,      // integer in [min, max]
    CFG_INT_AUTO, // integer in [min, max] or the string "auto" (stored as -1)
    CFG_BOOL,
    CFG_STR,  // string of min..max bytes
    CFG_PATH, // CFG_STR with a leading "~" expanded to the home directory
} cfg_kind;

typedef struct {
    const char *key; // "<table>.<key>" or a root key
    cfg_kind kind;
    const char *def; // default, written as an environment value would be
    int64_t min, max;
    const char *env;
} cfg_key;

// The schema: one line per key. Ranges keep every integer within int, so callers may cast.
static const cfg_key cfg_schema[] = {
    {"models_dir", CFG_PATH, "~/.local/share/inferno/models", 1, 4095, "INFERNO_MODELS_DIR"},
    {"backend_config.gpu_enabled", CFG_BOOL, "true", 0, 1, "INFERNO_GPU_ENABLED"},
    {"backend_config.gpu_layers", CFG_INT_AUTO, "auto", 0, 999, "INFERNO_GPU_LAYERS"},
    {"backend_config.context_size", CFG_INT, "2048", 1, 1 << 20, "INFERNO_CONTEXT_SIZE"},
    {"backend_config.batch_size", CFG_INT, "512", 1, 1 << 16, "INFERNO_BATCH_SIZE"},
    {"backend_config.threads", CFG_INT, "0", 0, 4096, "INFERNO_THREADS"},
    {"server.host", CFG_STR, "127.0.0.1", 1, 255, "INFERNO_HOST"},
    {"server.port", CFG_INT, "8080", 1, 65535, "INFERNO_PORT"},
};

#define CFG_N_KEYS ((int)INF_ARRAY_LEN(cfg_schema))
#define CFG_PATH_CAP 4096 // bytes of a config file path
#define CFG_N_STANDARD 3  // standard files

typedef struct {
    int64_t i;    // CFG_INT and CFG_INT_AUTO (-1 = "auto"); CFG_BOOL as 0/1
    char *text;   // the value as text: "2048", "auto", "true", the string itself; owned
    char *source; // "default", "<path>:<line>", "env INFERNO_X", flag text; owned
} cfg_slot;

struct inf_config {
    cfg_slot slot[CFG_N_KEYS];
};

// Values of one layer before they are applied.
typedef struct {
    bool set[CFG_N_KEYS];
    cfg_slot val[CFG_N_KEYS];
} cfg_pending;

// ---------------------------------------------------------------------------------------------------------
// Schema lookups and messages
// ---------------------------------------------------------------------------------------------------------

static int cfg_find(const char *key) {
    for (int k = 0; k < CFG_N_KEYS; k++)
        if (!strcmp(cfg_schema[k].key, key)) return k;
    return -1;
}

// True when name is the table part of some key ("backend_config").
static bool cfg_is_table(const char *name) {
    size_t n = strlen(name);
    for (int k = 0; k < CFG_N_KEYS; k++)
        if (!strncmp(cfg_schema[k].key, name, n) && cfg_schema[k].key[n] == '.') return true;
    return false;
}

// What key k accepts, for messages. from_text: the value came from the environment or a flag.
static const char *cfg_expected(int k, bool from_text, char *buf, size_t cap) {
    const cfg_key *c = &cfg_schema[k];
    switch (c->kind) {
    case CFG_INT:
        snprintf(buf, cap, "an integer in [%lld, %lld]", (long long)c->min, (long long)c->max);
        break;
    case CFG_INT_AUTO:
        snprintf(buf, cap, "an integer in [%lld, %lld] or \"auto\"", (long long)c->min, (long long)c->max);
        break;
    case CFG_BOOL:
        snprintf(buf, cap, "%s", from_text ? "true, false, 1, 0, yes or no" : "true or false");
        break;
    case CFG_STR:
    case CFG_PATH: snprintf(buf, cap, "a non-empty string of at most %lld bytes", (long long)c->max); break;
    }
    return buf;
}

static int cfg_edit_distance(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    int row[64];
    if (na >= INF_ARRAY_LEN(row) || nb >= INF_ARRAY_LEN(row)) return INT_MAX;
    for (size_t j = 0; j <= nb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int up = row[j];
            int best = INF_MIN(up, row[j - 1]) + 1;
            row[j] = INF_MIN(best, diag + (a[i - 1] != b[j - 1]));
            diag = up;
        }
    }
    return row[nb];
}

static const char *cfg_leaf(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot ? dot + 1 : name;
}

// The known key or table closest to an unknown name, or NULL when none is close. A key put in the wrong
// table ("gpu_layers" at the root) counts as one edit away from where it belongs.
static const char *cfg_suggest(const char *name, char *buf, size_t cap) {
    int best = INT_MAX;
    buf[0] = '\0';
    for (int k = 0; k < CFG_N_KEYS; k++) {
        const char *key = cfg_schema[k].key;
        const char *dot = strrchr(key, '.');
        for (int pass = 0; pass < 2; pass++) {
            char cand[128];
            if (pass == 0)
                snprintf(cand, sizeof cand, "%s", key);
            else if (dot)
                snprintf(cand, sizeof cand, "%.*s", (int)(dot - key), key);
            else
                continue;
            int d = cfg_edit_distance(name, cand);
            if (!strcmp(cfg_leaf(name), cfg_leaf(cand))) d = INF_MIN(d, 1);
            if (d < best) {
                best = d;
                snprintf(buf, cap, "%s", cand);
            }
        }
    }
    if (best == INT_MAX || !(best <= 2 || (size_t)best * 4 <= strlen(name))) return NULL;
    return buf;
}

// ---------------------------------------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------------------------------------

// The home directory: $HOME, else the password database; false when neither is known.
static bool cfg_home(char *buf, size_t cap) {
    const char *home = getenv("HOME");
    if (!home || !*home) {
        struct passwd *pw = getpwuid(getuid());
        home = pw && pw->pw_dir && *pw->pw_dir ? pw->pw_dir : NULL;
    }
    if (!home) return false;
    size_t n = strlen(home);
    while (n > 1 && home[n - 1] == '/') n--; // "/home/u/" and "/home/u" name the same place
    if (n >= cap) return false;
    memcpy(buf, home, n);
    buf[n] = '\0';
    return true;
}

// "~" and "~/x" become the home directory; "~user" and everything else stay as written.
static char *cfg_expand_home(const char *s) {
    char home[CFG_PATH_CAP];
    if (s[0] != '~' || (s[1] != '\0' && s[1] != '/') || !cfg_home(home, sizeof home)) return inf_strdup(s);
    const char *rest = s + 1;
    if (!strcmp(home, "/") && rest[0] == '/') home[0] = '\0';
    size_t n = strlen(home) + strlen(rest) + 1;
    char *r = inf_malloc(n);
    if (r) snprintf(r, n, "%s%s", home, rest);
    return r;
}

// The path as messages and sources show it: a leading home directory becomes "~".
static char *cfg_display_path(const char *path) {
    char home[CFG_PATH_CAP];
    if (cfg_home(home, sizeof home) && strcmp(home, "/") != 0) {
        size_t n = strlen(home);
        if (!strncmp(path, home, n) && path[n] == '/') {
            size_t len = strlen(path + n) + 2;
            char *r = inf_malloc(len);
            if (r) snprintf(r, len, "~%s", path + n);
            return r;
        }
    }
    return inf_strdup(path);
}

// The standard files in load order; returns how many (a file whose directory is unknown is left out).
static int cfg_standard_paths(char paths[CFG_N_STANDARD][CFG_PATH_CAP]) {
    char home[CFG_PATH_CAP];
    bool have_home = cfg_home(home, sizeof home);
    if (have_home && !strcmp(home, "/")) home[0] = '\0';
    const char *xdg = getenv("XDG_CONFIG_HOME");
    int n = 0, w = -1;
    // The XDG spec says a relative XDG_CONFIG_HOME is invalid and must be ignored.
    if (xdg && xdg[0] == '/') {
        size_t len = strlen(xdg);
        while (len > 1 && xdg[len - 1] == '/') len--;
        w = snprintf(paths[n], CFG_PATH_CAP, "%.*s/inferno/config.toml", (int)len, xdg);
    } else if (have_home) {
        w = snprintf(paths[n], CFG_PATH_CAP, "%s/.config/inferno/config.toml", home);
    }
    if (w > 0 && w < CFG_PATH_CAP) n++;
    if (have_home) {
        w = snprintf(paths[n], CFG_PATH_CAP, "%s/.inferno.toml", home);
        if (w > 0 && w < CFG_PATH_CAP) n++;
    }
    snprintf(paths[n++], CFG_PATH_CAP, "./.inferno.toml");
    return n;
}

size_t inf_config_standard_path(int i, char *buf, size_t cap) {
    char paths[CFG_N_STANDARD][CFG_PATH_CAP];
    int n = cfg_standard_paths(paths);
    if (i < 0 || i >= n) return 0;
    size_t len = strlen(paths[i]);
    if (cap > 0) snprintf(buf, cap, "%s", paths[i]);
    return len;
}

// ---------------------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------------------

static void cfg_slot_clear(cfg_slot *s) {
    free(s->text);
    free(s->source);
    *s = (cfg_slot){0};
}

// Fills out->i and out->text for key k from an integer (CFG_INT, CFG_INT_AUTO) or a bool.
static inf_status cfg_set_number(int k, int64_t v, cfg_slot *out) {
    char buf[32];
    if (cfg_schema[k].kind == CFG_BOOL)
        snprintf(buf, sizeof buf, "%s", v ? "true" : "false");
    else if (cfg_schema[k].kind == CFG_INT_AUTO && v < 0)
        snprintf(buf, sizeof buf, "auto");
    else
        snprintf(buf, sizeof buf, "%lld", (long long)v);
    out->i = v;
    out->text = inf_strdup(buf);
    return out->text ? INF_OK : inf_fail(INF_ERR_NOMEM, "%s: out of memory", cfg_schema[k].key);
}

// Fills out->text for a string key from s[0..len), expanding "~" for paths; NULL why on success.
static const char *cfg_set_string(int k, const char *s, size_t len, cfg_slot *out, inf_status *st) {
    const cfg_key *c = &cfg_schema[k];
    *st = INF_ERR_CONFIG;
    if (memchr(s, '\0', len)) return "a string containing a NUL character";
    if ((int64_t)len < c->min) return "an empty string";
    char *v = c->kind == CFG_PATH ? cfg_expand_home(s) : inf_strdup(s);
    if (!v) {
        *st = INF_ERR_NOMEM;
        return "(out of memory)";
    }
    if ((int64_t)strlen(v) > c->max) {
        free(v);
        return "a string that is too long";
    }
    out->i = 0;
    out->text = v;
    *st = INF_OK;
    return NULL;
}

static bool cfg_text_int(const char *s, int64_t *out) {
    const char *p = s + (s[0] == '+' || s[0] == '-');
    if (!*p) return false;
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q)) return false;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno) return false;
    *out = v;
    return true;
}

// The value of key k from text (environment, flag, default); where names the origin for messages.
static inf_status cfg_parse_text(int k, const char *s, const char *where, cfg_slot *out) {
    const cfg_key *c = &cfg_schema[k];
    char exp[96];
    *out = (cfg_slot){0};
    int64_t v = 0;
    switch (c->kind) {
    case CFG_INT_AUTO:
        if (!strcasecmp(s, "auto")) return cfg_set_number(k, -1, out);
        // fall through
    case CFG_INT:
        if (cfg_text_int(s, &v) && v >= c->min && v <= c->max) return cfg_set_number(k, v, out);
        break;
    case CFG_BOOL:
        if (!strcasecmp(s, "true") || !strcmp(s, "1") || !strcasecmp(s, "yes"))
            return cfg_set_number(k, 1, out);
        if (!strcasecmp(s, "false") || !strcmp(s, "0") || !strcasecmp(s, "no"))
            return cfg_set_number(k, 0, out);
        break;
    case CFG_STR:
    case CFG_PATH: {
        inf_status st;
        const char *why = cfg_set_string(k, s, strlen(s), out, &st);
        if (!why) return INF_OK;
        if (st != INF_ERR_CONFIG) return inf_fail(st, "%s: %s: out of memory", where, c->key);
        return inf_fail(INF_ERR_CONFIG, "%s: %s: expected %s, got %s", where, c->key,
                        cfg_expected(k, true, exp, sizeof exp), why);
    }
    }
    return inf_fail(INF_ERR_CONFIG, "%s: %s: expected %s, got '%.60s'", where, c->key,
                    cfg_expected(k, true, exp, sizeof exp), s);
}

// Describes a TOML value for messages ("-3", "a float (2.5)", "the string \"four\"", "a table").
static const char *cfg_describe_toml(const toml_value *v, char *buf, size_t cap) {
    switch (v->type) {
    case TOML_INT: snprintf(buf, cap, "%lld", (long long)v->u.i); break;
    case TOML_FLOAT: snprintf(buf, cap, "a float (%g)", v->u.f); break;
    case TOML_BOOL: snprintf(buf, cap, "%s", v->u.b ? "true" : "false"); break;
    case TOML_STRING: snprintf(buf, cap, "the string \"%.60s\"", v->u.str.ptr); break;
    case TOML_ARRAY: snprintf(buf, cap, "an array"); break;
    case TOML_TABLE: snprintf(buf, cap, "a table"); break;
    }
    return buf;
}

// The value of key k from a TOML value; where is "<path>:<line>".
static inf_status cfg_parse_toml(int k, const toml_value *v, const char *where, cfg_slot *out) {
    const cfg_key *c = &cfg_schema[k];
    char exp[96], got[96];
    *out = (cfg_slot){0};
    switch (c->kind) {
    case CFG_INT_AUTO:
        if (v->type == TOML_STRING && !strcmp(v->u.str.ptr, "auto")) return cfg_set_number(k, -1, out);
        // fall through
    case CFG_INT:
        if (v->type == TOML_INT && v->u.i >= c->min && v->u.i <= c->max)
            return cfg_set_number(k, v->u.i, out);
        break;
    case CFG_BOOL:
        if (v->type == TOML_BOOL) return cfg_set_number(k, v->u.b, out);
        break;
    case CFG_STR:
    case CFG_PATH:
        if (v->type == TOML_STRING) {
            inf_status st;
            const char *why = cfg_set_string(k, v->u.str.ptr, v->u.str.len, out, &st);
            if (!why) return INF_OK;
            if (st != INF_ERR_CONFIG) return inf_fail(st, "%s: %s: out of memory", where, c->key);
            return inf_fail(INF_ERR_CONFIG, "%s: %s: expected %s, got %s", where, c->key,
                            cfg_expected(k, false, exp, sizeof exp), why);
        }
        break;
    }
    return inf_fail(INF_ERR_CONFIG, "%s: %s: expected %s, got %s", where, c->key,
                    cfg_expected(k, false, exp, sizeof exp), cfg_describe_toml(v, got, sizeof got));
}

// ---------------------------------------------------------------------------------------------------------
// Layers
// ---------------------------------------------------------------------------------------------------------

static void cfg_pending_free(cfg_pending *p) {
    for (int k = 0; k < CFG_N_KEYS; k++)
        if (p->set[k]) cfg_slot_clear(&p->val[k]);
}

// Records value (text already set) with its source; takes ownership of val's strings either way.
static inf_status cfg_pending_put(cfg_pending *p, int k, cfg_slot *val, const char *source) {
    assert(!p->set[k]);
    val->source = inf_strdup(source);
    if (!val->source) {
        cfg_slot_clear(val);
        return inf_fail(INF_ERR_NOMEM, "%s: out of memory", source);
    }
    p->val[k] = *val;
    p->set[k] = true;
    return INF_OK;
}

static void cfg_commit(inf_config *cfg, cfg_pending *p) {
    for (int k = 0; k < CFG_N_KEYS; k++) {
        if (!p->set[k]) continue;
        cfg_slot_clear(&cfg->slot[k]);
        cfg->slot[k] = p->val[k];
        p->set[k] = false;
    }
}

static void cfg_warn_unknown(const char *disp, int line, const char *name, bool is_table) {
    char near[128];
    const char *s = cfg_suggest(name, near, sizeof near);
    inf_log(INF_LOG_WARN, "%s:%d: unknown %s '%s' (ignored)%s%s%s", disp, line, is_table ? "table" : "key",
            name, s ? "; did you mean '" : "", s ? s : "", s ? "'?" : "");
}

// Collects the known keys of table (whose dotted name is prefix, "" for the root) into p and warns
// about the rest.
static inf_status cfg_walk(const toml_value *table, const char *prefix, const char *disp, cfg_pending *p) {
    for (int e = 0; e < table->u.tab.n; e++) {
        const toml_entry *en = &table->u.tab.entries[e];
        const toml_value *v = en->value;
        char name[256], where[CFG_PATH_CAP + 32];
        // A quoted key with a dot in it is one key, not a path, and cannot be a known one.
        bool quoted = strchr(en->key, '.') != NULL;
        int w = snprintf(name, sizeof name, "%s%s%s%s%s", prefix, *prefix ? "." : "", quoted ? "\"" : "",
                         en->key, quoted ? "\"" : "");
        bool fits = w > 0 && (size_t)w < sizeof name;
        snprintf(where, sizeof where, "%s:%d", disp, v->line);
        int k = fits && !quoted ? cfg_find(name) : -1;
        if (k >= 0) {
            cfg_slot val;
            inf_status st = cfg_parse_toml(k, v, where, &val);
            if (st == INF_OK) st = cfg_pending_put(p, k, &val, where);
            if (st != INF_OK) return st;
            continue;
        }
        if (fits && !quoted && cfg_is_table(name)) {
            if (v->type != TOML_TABLE) {
                char got[96];
                return inf_fail(INF_ERR_CONFIG, "%s: %s: expected a table, got %s", where, name,
                                cfg_describe_toml(v, got, sizeof got));
            }
            inf_status st = cfg_walk(v, name, disp, p);
            if (st != INF_OK) return st;
            continue;
        }
        cfg_warn_unknown(disp, v->line, name, v->type == TOML_TABLE);
    }
    return INF_OK;
}

// Reads one file; disp is the path as messages show it.
static inf_status cfg_load_path(inf_config *cfg, const char *path, const char *disp) {
    struct stat sb;
    if (stat(path, &sb) != 0) return inf_fail(INF_ERR_IO, "%s: cannot open: %s", disp, strerror(errno));
    if (!S_ISREG(sb.st_mode)) return inf_fail(INF_ERR_IO, "%s: not a regular file", disp);
    char *text;
    size_t len;
    inf_status st = inf_read_file(path, TOML_MAX_BYTES, &text, &len);
    if (st != INF_OK) return st;
    toml_value *doc;
    st = toml_parse(disp, text, len, &doc);
    free(text);
    if (st != INF_OK) return st;
    cfg_pending p = {0};
    st = cfg_walk(doc, "", disp, &p);
    toml_free(doc);
    if (st == INF_OK) {
        cfg_commit(cfg, &p);
        inf_log(INF_LOG_DEBUG, "config: read %s", disp);
    }
    cfg_pending_free(&p);
    return st;
}

// ---------------------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------------------

inf_status inf_config_init(inf_config **out) {
    *out = NULL;
    inf_config *cfg = inf_calloc(1, sizeof *cfg);
    if (!cfg) return inf_fail(INF_ERR_NOMEM, "configuration: out of memory");
    for (int k = 0; k < CFG_N_KEYS; k++) {
        cfg_slot *s = &cfg->slot[k];
        inf_status st = cfg_parse_text(k, cfg_schema[k].def, "default", s);
        assert(st == INF_OK || st == INF_ERR_NOMEM); // the schema's defaults are valid values
        if (st == INF_OK) {
            s->source = inf_strdup("default");
            if (!s->source) st = inf_fail(INF_ERR_NOMEM, "configuration: out of memory");
        }
        if (st != INF_OK) {
            inf_config_free(cfg);
            return st;
        }
    }
    *out = cfg;
    return INF_OK;
}

void inf_config_free(inf_config *cfg) {
    if (!cfg) return;
    for (int k = 0; k < CFG_N_KEYS; k++) cfg_slot_clear(&cfg->slot[k]);
    free(cfg);
}

inf_status inf_config_load_standard_files(inf_config *cfg) {
    char paths[CFG_N_STANDARD][CFG_PATH_CAP];
    int n = cfg_standard_paths(paths);
    struct stat seen[CFG_N_STANDARD];
    int n_seen = 0;
    for (int i = 0; i < n; i++) {
        char *disp = cfg_display_path(paths[i]);
        if (!disp) return inf_fail(INF_ERR_NOMEM, "%s: out of memory", paths[i]);
        struct stat sb;
        inf_status st = INF_OK;
        bool skip = false;
        if (stat(paths[i], &sb) != 0) {
            if (errno == ENOENT || errno == ENOTDIR)
                skip = true;
            else
                st = inf_fail(INF_ERR_IO, "%s: cannot access: %s", disp, strerror(errno));
        } else {
            // ~/.inferno.toml and ./.inferno.toml are one file when run from the home directory.
            for (int j = 0; j < n_seen; j++)
                if (seen[j].st_dev == sb.st_dev && seen[j].st_ino == sb.st_ino) skip = true;
            if (!skip) {
                seen[n_seen++] = sb;
                st = cfg_load_path(cfg, paths[i], disp);
            }
        }
        free(disp);
        if (st != INF_OK) return st;
    }
    return INF_OK;
}

inf_status inf_config_load_file(inf_config *cfg, const char *path) {
    char *disp = cfg_display_path(path);
    if (!disp) return inf_fail(INF_ERR_NOMEM, "%s: out of memory", path);
    inf_status st = cfg_load_path(cfg, path, disp);
    free(disp);
    return st;
}

inf_status inf_config_load_env(inf_config *cfg) {
    cfg_pending p = {0};
    for (int k = 0; k < CFG_N_KEYS; k++) {
        const char *s = getenv(cfg_schema[k].env);
        if (!s || !*s) continue; // VAR= on a command line means "not set", as for most tools
        char where[64];
        snprintf(where, sizeof where, "env %s", cfg_schema[k].env);
        cfg_slot val;
        inf_status st = cfg_parse_text(k, s, where, &val);
        if (st == INF_OK) st = cfg_pending_put(&p, k, &val, where);
        if (st != INF_OK) {
            cfg_pending_free(&p);
            return st;
        }
    }
    cfg_commit(cfg, &p);
    return INF_OK;
}

inf_status inf_config_set(inf_config *cfg, const char *key, const char *value, const char *source) {
    if (!source) source = "inf_config_set";
    if (!key || !value)
        return inf_fail(INF_ERR_INVALID_ARG, "%s: inf_config_set needs a key and a value", source);
    int k = cfg_find(key);
    if (k < 0) {
        char near[128];
        const char *s = cfg_suggest(key, near, sizeof near);
        return inf_fail(INF_ERR_CONFIG, "%s: unknown configuration key '%s'%s%s%s", source, key,
                        s ? "; did you mean '" : "", s ? s : "", s ? "'?" : "");
    }
    cfg_pending p = {0};
    cfg_slot val;
    inf_status st = cfg_parse_text(k, value, source, &val);
    if (st == INF_OK) st = cfg_pending_put(&p, k, &val, source);
    if (st == INF_OK) cfg_commit(cfg, &p);
    cfg_pending_free(&p);
    return st;
}

// Index of a key a caller names in code: unknown keys are a programming error.
static int cfg_find_known(const char *key) {
    int k = cfg_find(key);
    assert(k >= 0 && "unknown configuration key");
    return k;
}

int64_t inf_config_get_int(const inf_config *cfg, const char *key) {
    int k = cfg_find_known(key);
    if (k < 0) return 0;
    assert(cfg_schema[k].kind == CFG_INT || cfg_schema[k].kind == CFG_INT_AUTO);
    return cfg->slot[k].i;
}

double inf_config_get_float(const inf_config *cfg, const char *key) {
    int k = cfg_find_known(key);
    if (k < 0) return 0;
    assert(cfg_schema[k].kind == CFG_INT || cfg_schema[k].kind == CFG_INT_AUTO);
    return (double)cfg->slot[k].i;
}

bool inf_config_get_bool(const inf_config *cfg, const char *key) {
    int k = cfg_find_known(key);
    if (k < 0) return false;
    assert(cfg_schema[k].kind == CFG_BOOL);
    return cfg->slot[k].i != 0;
}

const char *inf_config_get_str(const inf_config *cfg, const char *key) {
    int k = cfg_find_known(key);
    return k < 0 ? "" : cfg->slot[k].text;
}

const char *inf_config_source(const inf_config *cfg, const char *key) {
    int k = cfg_find_known(key);
    return k < 0 ? "" : cfg->slot[k].source;
}

// Writes s as a TOML basic string; returns the characters written.
static int cfg_print_quoted(FILE *out, const char *s) {
    int w = 0;
    w += fprintf(out, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            w += fprintf(out, "\\%c", *p);
        else if (*p == '\n')
            w += fprintf(out, "\\n");
        else if (*p == '\t')
            w += fprintf(out, "\\t");
        else if (*p < 0x20 || *p == 0x7f)
            w += fprintf(out, "\\u%04X", *p);
        else
            w += fprintf(out, "%c", *p);
    }
    w += fprintf(out, "\"");
    return w;
}

void inf_config_print(const inf_config *cfg, FILE *out) {
    for (int k = 0; k < CFG_N_KEYS; k++) {
        const cfg_slot *s = &cfg->slot[k];
        fprintf(out, "%-28s = ", cfg_schema[k].key);
        bool quote = cfg_schema[k].kind == CFG_STR || cfg_schema[k].kind == CFG_PATH ||
                     (cfg_schema[k].kind == CFG_INT_AUTO && s->i < 0);
        int w = quote ? cfg_print_quoted(out, s->text) : fprintf(out, "%s", s->text);
        fprintf(out, "%*s # %s\n", w < 24 ? 24 - w : 0, "", s->source);
    }
}
