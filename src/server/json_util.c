// json_util.c: request-body parsing and typed field readers on json-c, plus small output helpers.
//
// Request bodies are hostile: the tokener is given a depth cap, strict mode (no trailing commas, single
// quotes or bare words) and UTF-8 validation, and anything but one object followed by whitespace is a 400.
// Readers check each field's type and range and name the field in the error's param.
// Left out: JSON Schema; fields this server does not know are ignored by the routes, not here.
#include "server/server_int.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool srv_json_parse_body(const char *body, size_t len, int max_depth, json_object **out, srv_error *err) {
    *out = NULL;
    if (len == 0) {
        srv_error_param(err, NULL, "the request body is empty; a JSON object is expected");
        return false;
    }
    if (len > INT_MAX) {
        srv_error_set(err, 413, "invalid_request_error", "request_too_large", NULL, "the request body is too large");
        return false;
    }
    struct json_tokener *tok = json_tokener_new_ex(max_depth);
    if (!tok) {
        srv_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
        return false;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *obj = json_tokener_parse_ex(tok, body, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (!obj) {
        if (jerr == json_tokener_continue)
            srv_error_param(err, NULL, "malformed JSON: the body ends inside a value");
        else if (jerr == json_tokener_error_depth)
            srv_error_param(err, NULL, "malformed JSON: nested deeper than %d levels", max_depth);
        else
            srv_error_param(err, NULL, "malformed JSON at byte %zu: %s", end, json_tokener_error_desc(jerr));
        return false;
    }
    for (size_t i = end; i < len; i++) {
        char c = body[i];
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
            json_object_put(obj);
            srv_error_param(err, NULL, "malformed JSON: unexpected text after the object at byte %zu", i);
            return false;
        }
    }
    if (!json_object_is_type(obj, json_type_object)) {
        srv_error_param(err, NULL, "the request body must be a JSON object, not %s", srv_json_type_name(obj));
        json_object_put(obj);
        return false;
    }
    *out = obj;
    return true;
}

const char *srv_json_type_name(json_object *v) {
    switch (json_object_get_type(v)) {
    case json_type_null: return "null";
    case json_type_boolean: return "a boolean";
    case json_type_double:
    case json_type_int: return "a number";
    case json_type_object: return "an object";
    case json_type_array: return "an array";
    case json_type_string: return "a string";
    }
    return "a value";
}

// The field's value, or NULL when it is absent or JSON null.
static json_object *srv_json_field(json_object *obj, const char *key) {
    json_object *v = NULL;
    if (!json_object_object_get_ex(obj, key, &v)) return NULL;
    return json_object_is_type(v, json_type_null) ? NULL : v;
}

int srv_json_int(json_object *obj, const char *key, int64_t min, int64_t max, int64_t *out, srv_error *err) {
    json_object *v = srv_json_field(obj, key);
    if (!v) return 0;
    int64_t x;
    if (json_object_is_type(v, json_type_int)) {
        x = json_object_get_int64(v); // json-c clamps integers past the int64 range to its ends
    } else if (json_object_is_type(v, json_type_double)) {
        double d = json_object_get_double(v);
        if (!(d == floor(d)) || d < -9.2e18 || d > 9.2e18) {
            srv_error_param(err, key, "'%s' must be an integer, not %g", key, d);
            return -1;
        }
        x = (int64_t)d;
    } else {
        srv_error_param(err, key, "'%s' must be an integer, not %s", key, srv_json_type_name(v));
        return -1;
    }
    if (x < min || x > max) {
        srv_error_param(err, key, "'%s' is %lld; it must be in [%lld, %lld]", key, (long long)x, (long long)min,
                        (long long)max);
        return -1;
    }
    *out = x;
    return 1;
}

int srv_json_number(json_object *obj, const char *key, double min, double max, double *out, srv_error *err) {
    json_object *v = srv_json_field(obj, key);
    if (!v) return 0;
    if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double)) {
        srv_error_param(err, key, "'%s' must be a number, not %s", key, srv_json_type_name(v));
        return -1;
    }
    double d = json_object_get_double(v);
    if (!isfinite(d) || d < min || d > max) {
        srv_error_param(err, key, "'%s' is %g; it must be in [%g, %g]", key, d, min, max);
        return -1;
    }
    *out = d;
    return 1;
}

int srv_json_bool(json_object *obj, const char *key, bool *out, srv_error *err) {
    json_object *v = srv_json_field(obj, key);
    if (!v) return 0;
    if (!json_object_is_type(v, json_type_boolean)) {
        srv_error_param(err, key, "'%s' must be a boolean, not %s", key, srv_json_type_name(v));
        return -1;
    }
    *out = json_object_get_boolean(v);
    return 1;
}

int srv_json_string(json_object *obj, const char *key, const char **s, size_t *len, srv_error *err) {
    json_object *v = srv_json_field(obj, key);
    if (!v) return 0;
    if (!json_object_is_type(v, json_type_string)) {
        srv_error_param(err, key, "'%s' must be a string, not %s", key, srv_json_type_name(v));
        return -1;
    }
    size_t n = (size_t)json_object_get_string_len(v);
    const char *p = json_object_get_string(v);
    if (memchr(p, '\0', n)) {
        srv_error_param(err, key, "'%s' contains a NUL character", key);
        return -1;
    }
    *s = p;
    if (len) *len = n;
    return 1;
}

json_object *srv_json_float(double v) {
    if (isnan(v)) return json_object_new_null();
    if (v > 1e38) v = 1e38;
    if (v < -1e38) v = -1e38;
    char s[32];
    snprintf(s, sizeof s, "%.7g", v);
    return json_object_new_double_s(v, s);
}

char *srv_json_take_string(json_object *obj, size_t *len) {
    size_t n = 0;
    const char *s = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
    char *copy = s ? malloc(n + 1) : NULL;
    if (copy) {
        memcpy(copy, s, n);
        copy[n] = '\0';
    }
    json_object_put(obj);
    if (len) *len = copy ? n : 0;
    return copy;
}

char *srv_base64(const void *p, size_t n) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *s = p;
    if (n > (SIZE_MAX - 1) / 4 * 3 - 3) return NULL;
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (!out) return NULL;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = tab[(v >> 6) & 63];
        *o++ = tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)s[i] << 16;
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = tab[(v >> 6) & 63];
        *o++ = '=';
    }
    *o = '\0';
    return out;
}

// Length of the valid UTF-8 sequence at s[0..n), or 0 when it is not one (RFC 3629: no overlongs, no
// surrogates, nothing past U+10FFFF).
static size_t srv_utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) len = 3, lo = 0xA0;
    else if (c >= 0xE1 && c <= 0xEC) len = 3;
    else if (c == 0xED) len = 3, hi = 0x9F;
    else if (c >= 0xEE && c <= 0xEF) len = 3;
    else if (c == 0xF0) len = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else if (c == 0xF4) len = 4, hi = 0x8F;
    else return 0;
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return len;
}

json_object *srv_json_text(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, bad = 0;
    for (size_t k; i < n; i += k ? k : 1) {
        k = srv_utf8_seq(u + i, n - i);
        if (!k) bad++;
    }
    if (!bad) return json_object_new_string_len(s, (int)n);
    // Each bad byte becomes the 3-byte replacement character.
    char *fixed = malloc(n + 2 * bad + 1), *o = fixed;
    if (!fixed) return json_object_new_string("");
    for (size_t j = 0, k; j < n; j += k ? k : 1) {
        k = srv_utf8_seq(u + j, n - j);
        if (k) {
            memcpy(o, s + j, k);
            o += k;
        } else {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
        }
    }
    json_object *v = json_object_new_string_len(fixed, (int)(o - fixed));
    free(fixed);
    return v;
}
