// toml.h: a small TOML 1.0 reader for the configuration files, returning a tree of values that each
// remember the line they start on.
//
// Reads comments, [tables] and [dotted.tables], bare, quoted and dotted keys, basic and literal strings
// (single- and multi-line, every TOML 1.0 escape), integers (decimal, 0x, 0o, 0b, '_' separators), floats
// (fraction, exponent, inf, nan), booleans, arrays (nested, mixed, multi-line, trailing comma) and inline
// tables. Leaves out arrays of tables ([[name]]) and dates/times: both are rejected with a message that
// says so. Does not write TOML.
//
// Input is hostile: the text is checked for UTF-8 and control characters before parsing, and every
// growth has a cap (the TOML_MAX_* below). Errors are INF_ERR_FORMAT (INF_ERR_NOMEM when memory runs
// out) with a message "<name>:<line>: <what is wrong>".
#ifndef INFERNO_TOML_H
#define INFERNO_TOML_H

#include "core/core.h"

#define TOML_MAX_BYTES (1u << 20)  // whole document
#define TOML_MAX_DEPTH 32          // tables and arrays inside one another, the root table being depth 0
#define TOML_MAX_STRING (1u << 16) // bytes of one string or key after escapes are decoded
#define TOML_MAX_KEYS 4096         // entries of one table (lookups are linear)
#define TOML_MAX_ARRAY 65536       // elements of one array

typedef enum { TOML_STRING, TOML_INT, TOML_FLOAT, TOML_BOOL, TOML_ARRAY, TOML_TABLE } toml_type;

// How a table came to exist; decides whether a later [header] or dotted key may add to it (TOML 1.0):
// a table gets one [header] at most, none once dotted keys have defined it, and nothing after an inline
// table closes.
typedef enum {
    TOML_TABLE_IMPLICIT, // created as the parent of a [header] or of a dotted key's table, not yet defined
    TOML_TABLE_HEADER,   // defined by its own [header]
    TOML_TABLE_DOTTED,   // defined by dotted keys (a.b = 1 defines table a)
    TOML_TABLE_INLINE,   // { ... }: closed once parsed
} toml_table_kind;

typedef struct toml_value toml_value;

typedef struct {
    char *key; // NUL-terminated, never contains NUL (keys with \u0000 are rejected)
    toml_value *value;
} toml_entry;

// One node of the tree. Every node is owned by its parent; toml_free(root) frees them all.
struct toml_value {
    toml_type type;
    int line;  // 1-based line where the value starts (for tables: the [header] or the first key defining it)
    int depth; // root table 0, its children 1, ...; never above TOML_MAX_DEPTH
    union {
        struct {
            char *ptr; // NUL-terminated; may contain NUL bytes written as \u0000, hence len
            size_t len;
        } str;
        int64_t i;
        double f;
        bool b;
        struct {
            toml_value **items;
            int n, cap;
        } arr;
        struct {
            toml_entry *entries; // in document order
            int n, cap;
            toml_table_kind kind;
        } tab;
    } u;
};

// Parses text[0..len) (need not be NUL-terminated; a leading UTF-8 BOM is skipped). name prefixes the
// error messages ("config.toml:7: expected '=' after key 'threads'"). On success *out is the root table,
// to be freed with toml_free; on failure *out is NULL.
inf_status toml_parse(const char *name, const char *text, size_t len, toml_value **out);
void toml_free(toml_value *v);

// The value of key in table (a TOML_TABLE), or NULL.
const toml_value *toml_table_get(const toml_value *table, const char *key);
// Follows a dotted path of bare keys ("server.port") from table; NULL if any part is missing.
const toml_value *toml_table_get_path(const toml_value *table, const char *path);
// "string", "integer", "float", "boolean", "array", "table".
const char *toml_type_name(toml_type type);

#endif // INFERNO_TOML_H
