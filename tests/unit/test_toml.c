// test_toml.c: the TOML reader against hand-written documents: every construct with its exact decoded
// value and line, a table of broken documents each with the line and message it must report, and the
// size, depth, string, key and array caps at and just past their limits.
#include "core/toml.h"
#include "test.h"

#include <math.h>
#include <stdint.h>

static toml_value *parse_ok(const char *text) {
    toml_value *root = NULL;
    inf_status st = toml_parse("t.toml", text, strlen(text), &root);
    CHECK_MSG(st == INF_OK, "parse failed: %s\n--- document:\n%s", inf_last_error(), text);
    return root;
}

static const toml_value *get(const toml_value *root, const char *path, toml_type type) {
    const toml_value *v = toml_table_get_path(root, path);
    CHECK_MSG(v != NULL, "missing %s", path);
    if (!v) return NULL;
    CHECK_MSG(v->type == type, "%s is a %s, not a %s", path, toml_type_name(v->type), toml_type_name(type));
    return v->type == type ? v : NULL;
}

static void check_str(const toml_value *root, const char *path, const char *want, size_t want_len) {
    const toml_value *v = get(root, path, TOML_STRING);
    if (!v) return;
    CHECK_MSG(v->u.str.len == want_len && !memcmp(v->u.str.ptr, want, want_len), "%s = \"%s\" (len %zu)",
              path, v->u.str.ptr, v->u.str.len);
}
#define CHECK_TSTR(root, path, lit) check_str(root, path, lit, sizeof(lit) - 1)

static void check_int(const toml_value *root, const char *path, int64_t want) {
    const toml_value *v = get(root, path, TOML_INT);
    if (v) CHECK_MSG(v->u.i == want, "%s = %lld, want %lld", path, (long long)v->u.i, (long long)want);
}

static void check_float(const toml_value *root, const char *path, double want) {
    const toml_value *v = get(root, path, TOML_FLOAT);
    if (v) CHECK_MSG(v->u.f == want, "%s = %.17g, want %.17g", path, v->u.f, want);
}

static void check_line(const toml_value *root, const char *path, int line) {
    const toml_value *v = toml_table_get_path(root, path);
    CHECK_MSG(v && v->line == line, "%s on line %d, want %d", path, v ? v->line : -1, line);
}

static void test_tables_and_keys(void) {
    const char *doc = "# leading comment\n"                  // 1
                      "title = \"top\" # trailing comment\n" // 2
                      "\n"                                   // 3
                      "[backend_config]\n"                   // 4
                      "threads = 4\n"                        // 5
                      "  gpu_layers=\t35   \n"               // 6
                      "[server . http]\n"                    // 7
                      "\"quoted key\" = 1\n"                 // 8
                      "'literal.key' = 2\n"                  // 9
                      "dotted.inner.x = 3\n"                 // 10
                      "dotted . inner . y = 4\n"             // 11
                      "\"\" = 5\n"                           // 12
                      "1234 = 6\n"                           // 13
                      "-_- = 7\n"                            // 14
                      "[server]\n"                           // 15
                      "port = 8080\n";                       // 16
    toml_value *r = parse_ok(doc);
    if (!r) return;
    CHECK_TSTR(r, "title", "top");
    check_int(r, "backend_config.threads", 4);
    check_int(r, "backend_config.gpu_layers", 35);
    check_line(r, "backend_config", 4);
    check_line(r, "backend_config.threads", 5);
    check_line(r, "backend_config.gpu_layers", 6);
    const toml_value *http = get(r, "server.http", TOML_TABLE);
    if (http) {
        const toml_value *q = toml_table_get(http, "quoted key");
        CHECK(q && q->type == TOML_INT && q->u.i == 1 && q->line == 8);
        const toml_value *l = toml_table_get(http, "literal.key");
        CHECK(l && l->type == TOML_INT && l->u.i == 2);
        const toml_value *e = toml_table_get(http, "");
        CHECK(e && e->type == TOML_INT && e->u.i == 5);
        CHECK_EQ_INT(http->line, 7);
        CHECK_EQ_INT(http->u.tab.kind, TOML_TABLE_HEADER);
    }
    check_int(r, "server.http.dotted.inner.x", 3);
    check_int(r, "server.http.dotted.inner.y", 4);
    check_line(r, "server.http.dotted.inner.y", 11);
    check_int(r, "server.http.1234", 6);
    check_int(r, "server.http.-_-", 7);
    check_int(r, "server.port", 8080);
    // server was created implicitly by [server.http] on line 7 and defined by its own header on line 15.
    check_line(r, "server", 15);
    const toml_value *server = get(r, "server", TOML_TABLE);
    if (server) {
        CHECK_EQ_INT(server->u.tab.kind, TOML_TABLE_HEADER);
        // Entries keep document order: http was added first, then port.
        CHECK_EQ_INT(server->u.tab.n, 2);
        CHECK_STR(server->u.tab.entries[0].key, "http");
        CHECK_STR(server->u.tab.entries[1].key, "port");
    }
    CHECK_EQ_INT(r->u.tab.n, 3);
    CHECK(toml_table_get_path(r, "server.nope") == NULL);
    CHECK(toml_table_get_path(r, "title.x") == NULL);
    toml_free(r);

    // Sub-tables may follow tables defined by dotted keys, and a header may define a table that an
    // earlier header created implicitly (TOML 1.0 examples).
    r = parse_ok(
        "[fruit]\napple.color = \"red\"\napple.taste.sweet = true\n[fruit.apple.texture]\nsmooth = true\n"
        "[a.b.c]\nz = 1\n[a]\nw = 2\n");
    if (r) {
        CHECK_TSTR(r, "fruit.apple.color", "red");
        CHECK(get(r, "fruit.apple.taste.sweet", TOML_BOOL) &&
              toml_table_get_path(r, "fruit.apple.taste.sweet")->u.b);
        CHECK(get(r, "fruit.apple.texture.smooth", TOML_BOOL) != NULL);
        check_int(r, "a.b.c.z", 1);
        check_int(r, "a.w", 2);
        check_line(r, "a", 8);
        toml_free(r);
    }
    // An empty document is an empty table.
    r = parse_ok("");
    if (r) {
        CHECK(r->type == TOML_TABLE && r->u.tab.n == 0);
        toml_free(r);
    }
}

static void test_strings(void) {
    const char *doc = "esc = \"q\\\" b\\\\ n\\n t\\t r\\r f\\f b\\b\"\n"
                      "uni = \"\\u00E9\\u20AC\\U0001F600\"\n"
                      "nul = \"a\\u0000b\"\n"
                      "raw = 'C:\\Users\\x \"quoted\"'\n"
                      "utf8 = \"h\xC3\xA9llo \xE2\x82\xAC\"\n"
                      "tab = \"a\tb\"\n"
                      "empty = \"\"\n"
                      "empty_lit = ''\n"
                      "ml = \"\"\"\n"                // 9: first newline trimmed
                      "one\n"                        // 10
                      "two \\\n"                     // 11: line-ending backslash
                      "     three \\  \n"            // 12: backslash, spaces, newline
                      "\n"                           // 13
                      "  four\"\"\"\n"               // 14
                      "after = 1\n"                  // 15
                      "mll = '''\n"                  // 16
                      "raw \\n 'x' ''\n"             // 17
                      "end'''\n"                     // 18
                      "q2 = \"\"\"a\"\"\"\"\"\n"     // 19: two quotes before the closing three
                      "q1 = '''b''''\n"              // 20
                      "crlf = \"\"\"x\r\ny\"\"\"\n"; // 21
    toml_value *r = parse_ok(doc);
    if (!r) return;
    CHECK_TSTR(r, "esc", "q\" b\\ n\n t\t r\r f\f b\b");
    CHECK_TSTR(r, "uni", "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
    CHECK_TSTR(r, "nul", "a\0b");
    CHECK_TSTR(r, "raw", "C:\\Users\\x \"quoted\"");
    CHECK_TSTR(r, "utf8", "h\xC3\xA9llo \xE2\x82\xAC");
    CHECK_TSTR(r, "tab", "a\tb");
    CHECK_TSTR(r, "empty", "");
    CHECK_TSTR(r, "empty_lit", "");
    CHECK_TSTR(r, "ml", "one\ntwo three four");
    check_line(r, "ml", 9);
    check_line(r, "after", 15);
    CHECK_TSTR(r, "mll", "raw \\n 'x' ''\nend");
    CHECK_TSTR(r, "q2", "a\"\"");
    CHECK_TSTR(r, "q1", "b'");
    CHECK_TSTR(r, "crlf", "x\ny");
    const toml_value *e = toml_table_get(r, "empty");
    CHECK(e && e->u.str.ptr && e->u.str.ptr[0] == '\0');
    toml_free(r);
}

static void test_numbers_and_bools(void) {
    const char *doc =
        "i0 = 0\ni1 = +17\ni2 = -17\ni3 = 1_000_000\ni4 = -0\n"
        "imax = 9223372036854775807\nimin = -9223372036854775808\n"
        "hex = 0xDEAD_beef\noct = 0o755\nbin = 0b1101_0110\nhexmax = 0x7FFFFFFFFFFFFFFF\nhex0 = 0x00\n"
        "f1 = 1.5\nf2 = -0.25\nf3 = 5e+22\nf4 = 1e06\nf5 = 6.626E-34\nf6 = 9_224_617.445_991\n"
        "f7 = 0.0\nf8 = -2E-2\nf9 = 3.1415e0\n"
        "pinf = inf\nninf = -inf\npinf2 = +inf\nnan1 = nan\nnan2 = -nan\n"
        "t = true\nf = false\n";
    toml_value *r = parse_ok(doc);
    if (!r) return;
    check_int(r, "i0", 0);
    check_int(r, "i1", 17);
    check_int(r, "i2", -17);
    check_int(r, "i3", 1000000);
    check_int(r, "i4", 0);
    check_int(r, "imax", INT64_MAX);
    check_int(r, "imin", INT64_MIN);
    check_int(r, "hex", 0xDEADBEEF);
    check_int(r, "oct", 0755);
    check_int(r, "bin", 0xD6);
    check_int(r, "hexmax", INT64_MAX);
    check_int(r, "hex0", 0);
    check_float(r, "f1", 1.5);
    check_float(r, "f2", -0.25);
    check_float(r, "f3", 5e22);
    check_float(r, "f4", 1e6);
    check_float(r, "f5", 6.626e-34);
    check_float(r, "f6", 9224617.445991);
    check_float(r, "f7", 0.0);
    check_float(r, "f8", -0.02);
    check_float(r, "f9", 3.1415);
    check_float(r, "pinf", INFINITY);
    check_float(r, "ninf", -INFINITY);
    check_float(r, "pinf2", INFINITY);
    const toml_value *n1 = get(r, "nan1", TOML_FLOAT), *n2 = get(r, "nan2", TOML_FLOAT);
    CHECK(n1 && isnan(n1->u.f));
    CHECK(n2 && isnan(n2->u.f));
    const toml_value *t = get(r, "t", TOML_BOOL), *f = get(r, "f", TOML_BOOL);
    CHECK(t && t->u.b == true);
    CHECK(f && f->u.b == false);
    check_line(r, "f", 28);
    toml_free(r);
}

static void test_arrays_and_inline_tables(void) {
    const char *doc = "a = [1, 2, 3]\n"                                               // 1
                      "empty = []\n"                                                  // 2
                      "nested = [[1, 2], [\"x\"], [], [[true]]]\n"                    // 3
                      "trail = [1, 2,]\n"                                             // 4
                      "multi = [ # comment after the bracket\n"                       // 5
                      "  \"one\",  # first\n"                                         // 6
                      "\n"                                                            // 7
                      "  'two'\n"                                                     // 8
                      "  , 3.5,\n"                                                    // 9
                      "]\n"                                                           // 10
                      "after = 1\n"                                                   // 11
                      "it = { x = 1, y.z = \"deep\", arr = [1, {k = 2}], in = {} }\n" // 12
                      "emptyt = {}\n";                                                // 13
    toml_value *r = parse_ok(doc);
    if (!r) return;
    const toml_value *a = get(r, "a", TOML_ARRAY);
    if (a) {
        CHECK_EQ_INT(a->u.arr.n, 3);
        for (int i = 0; i < a->u.arr.n && i < 3; i++)
            CHECK(a->u.arr.items[i]->type == TOML_INT && a->u.arr.items[i]->u.i == i + 1);
    }
    const toml_value *e = get(r, "empty", TOML_ARRAY);
    CHECK(e && e->u.arr.n == 0);
    const toml_value *n = get(r, "nested", TOML_ARRAY);
    if (n && n->u.arr.n == 4) {
        const toml_value *n0 = n->u.arr.items[0], *n1 = n->u.arr.items[1], *n3 = n->u.arr.items[3];
        CHECK(n0->type == TOML_ARRAY && n0->u.arr.n == 2 && n0->u.arr.items[1]->u.i == 2);
        CHECK(n1->type == TOML_ARRAY && n1->u.arr.n == 1 && n1->u.arr.items[0]->type == TOML_STRING &&
              !strcmp(n1->u.arr.items[0]->u.str.ptr, "x"));
        CHECK(n->u.arr.items[2]->type == TOML_ARRAY && n->u.arr.items[2]->u.arr.n == 0);
        CHECK(n3->type == TOML_ARRAY && n3->u.arr.items[0]->type == TOML_ARRAY &&
              n3->u.arr.items[0]->u.arr.items[0]->type == TOML_BOOL && n3->depth == 2 &&
              n3->u.arr.items[0]->u.arr.items[0]->depth == 4);
    } else {
        CHECK_MSG(0, "nested has %d elements", n ? n->u.arr.n : -1);
    }
    const toml_value *t = get(r, "trail", TOML_ARRAY);
    CHECK(t && t->u.arr.n == 2);
    const toml_value *m = get(r, "multi", TOML_ARRAY);
    if (m && m->u.arr.n == 3) {
        CHECK(!strcmp(m->u.arr.items[0]->u.str.ptr, "one") && m->u.arr.items[0]->line == 6);
        CHECK(!strcmp(m->u.arr.items[1]->u.str.ptr, "two") && m->u.arr.items[1]->line == 8);
        CHECK(m->u.arr.items[2]->type == TOML_FLOAT && m->u.arr.items[2]->u.f == 3.5 &&
              m->u.arr.items[2]->line == 9);
        CHECK_EQ_INT(m->line, 5);
    } else {
        CHECK_MSG(0, "multi has %d elements", m ? m->u.arr.n : -1);
    }
    check_line(r, "after", 11);
    check_int(r, "it.x", 1);
    CHECK_TSTR(r, "it.y.z", "deep");
    const toml_value *it = get(r, "it", TOML_TABLE);
    CHECK(it && it->u.tab.kind == TOML_TABLE_INLINE && it->u.tab.n == 4);
    const toml_value *arr = get(r, "it.arr", TOML_ARRAY);
    if (arr && arr->u.arr.n == 2) {
        const toml_value *k = toml_table_get(arr->u.arr.items[1], "k");
        CHECK(k && k->type == TOML_INT && k->u.i == 2);
    }
    const toml_value *in = get(r, "it.in", TOML_TABLE);
    CHECK(in && in->u.tab.n == 0);
    const toml_value *et = get(r, "emptyt", TOML_TABLE);
    CHECK(et && et->u.tab.n == 0);
    toml_free(r);
}

static void test_line_endings_and_bom(void) {
    toml_value *r = parse_ok("\xEF\xBB\xBFx = 1\r\n# c\r\n[t]\r\ny = \"a\"\r\nz = [\r\n1,\r\n2]\r\nw = 3");
    if (!r) return;
    check_int(r, "x", 1);
    CHECK_TSTR(r, "t.y", "a");
    check_line(r, "t.y", 4);
    check_line(r, "t.w", 8);
    check_int(r, "t.w", 3); // no newline at the end of the file
    toml_free(r);
}

typedef struct {
    const char *doc;
    int line;
    const char *msg;
} bad_doc;

static const bad_doc bad_docs[] = {
    // structure
    {"a = 1\nthreads 4\n", 2, "expected '=' after key 'threads'"},
    {"[backend_config]\nthreads: 4\n", 2, "expected '=' after key 'threads'"},
    {"= 1\n", 1, "expected a key, found '='"},
    {"a = 1 b = 2\n", 1, "expected end of line after the value of 'a', found 'b'"},
    {"a =\n", 1, "expected a value, found end of line"},
    {"a = # nothing\n", 1, "expected a value, found '#'"},
    {"[a] x = 1\n", 1, "expected end of line after table header 'a'"},
    {"[a\nx = 1\n", 1, "expected ']' after table name 'a'"},
    {"[]\n", 1, "expected a key, found ']'"},
    {"[a.]\n", 1, "expected a key"},
    {"x = 1\n[[arr]]\n", 2, "arrays of tables ([[...]]) are not supported"},
    // duplicates and table rules
    {"a = 1\nb = 2\na = 3\n", 3, "duplicate key 'a' (first defined on line 1)"},
    {"[t]\nx = 1\n\n[t]\n", 4, "duplicate table [t] (first defined on line 1)"},
    {"[t]\nx = 1\nx = 2\n", 3, "duplicate key 'x'"},
    {"a.b = 1\na.b = 2\n", 2, "duplicate key 'a.b'"},
    {"a.b = 1\n[a]\n", 2, "table [a] was already defined by dotted keys"},
    {"[a.b]\nx = 1\n[a]\nb.y = 2\n", 4,
     "cannot add to table 'b' with dotted keys: it has its own [header] (line 1)"},
    {"a = 1\n[a]\n", 2, "'a' already holds an integer"},
    {"a = 1\na.b = 2\n", 2, "'a' already holds an integer"},
    {"a = [1]\n[a.b]\n", 2, "'a' already holds an array"},
    {"x = {a = 1}\n[x]\n", 2, "cannot extend inline table 'x'"},
    {"x = {a = 1}\nx.b = 2\n", 2, "cannot add keys to inline table 'x'"},
    {"x = {a = {b = 1}, a.c = 2}\n", 1, "cannot add keys to inline table 'a'"},
    {"x = {a = 1, a = 2}\n", 1, "duplicate key 'a'"},
    // strings
    {"s = \"abc\n", 1, "unterminated string"},
    {"s = 'abc\nt = 1\n", 1, "unterminated string"},
    {"\n\ns = \"\"\"abc\n\n", 3, "unterminated string"},
    {"s = \"a\\qb\"\n", 1, "invalid escape '\\q'"},
    {"s = \"a\\ b\"\n", 1, "invalid escape"},
    {"s = \"\\u12\"\n", 1, "\\u escape needs 4 hex digits"},
    {"s = \"\\U0001F60\"\n", 1, "\\U escape needs 8 hex digits"},
    {"s = \"\\uD800\"\n", 1, "not a Unicode scalar value"},
    {"s = \"\\U00110000\"\n", 1, "not a Unicode scalar value"},
    {"s = \"\"\"a\\ b\"\"\"\n", 1, "only whitespace may follow a line-ending backslash"},
    {"s = \"\"\"x\"\"\"\"\"\"\n", 1, "too many quotes"},
    {"\"a\\u0000b\" = 1\n", 1, "key contains a NUL character"},
    {"\"\"\"a\"\"\" = 1\n", 1, "expected '=' after key ''"},
    // numbers and bare words
    {"n = 01\n", 1, "invalid number '01': leading zeros are not allowed"},
    {"n = -007\n", 1, "leading zeros are not allowed"},
    {"n = 1__0\n", 1, "misplaced '_'"},
    {"n = 1_\n", 1, "misplaced '_'"},
    {"n = _1\n", 1, "invalid value '_1'"},
    {"n = 9223372036854775808\n", 1, "does not fit in 64 bits"},
    {"n = -9223372036854775809\n", 1, "does not fit in 64 bits"},
    {"n = 0x8000000000000000\n", 1, "does not fit in 64 bits"},
    {"n = +0x10\n", 1, "a sign is not allowed"},
    {"n = 0x\n", 1, "bad digits"},
    {"n = 0b102\n", 1, "bad digits"},
    {"n = 0o8\n", 1, "bad digits"},
    {"n = 0X10\n", 1, "invalid number '0X10'"},
    {"n = 1.\n", 1, "a '.' must have digits on both sides"},
    {"n = .5\n", 1, "invalid number '.5'"},
    {"n = 1._5\n", 1, "a '.' must have digits on both sides"},
    {"n = 1e\n", 1, "an exponent needs digits"},
    {"n = 1e_5\n", 1, "an exponent needs digits"},
    {"n = 1.5.5\n", 1, "unexpected character"},
    {"n = 1e400\n", 1, "out of the range of a 64-bit float"},
    {"n = infinity\n", 1, "invalid value 'infinity'"},
    {"d = 1979-05-27\n", 1, "dates and times are not supported"},
    {"d = 07:32:00\n", 1, "dates and times are not supported"},
    {"b = True\n", 1, "invalid value 'True' (strings need quotes)"},
    {"s = bare\n", 1, "strings need quotes"},
    {"b = truex\n", 1, "invalid value 'truex'"},
    // arrays and inline tables
    {"a = [1, 2\n", 1, "unterminated array"},
    {"x = 1\na = [\n1,\n2\n", 2, "unterminated array"},
    {"a = [1 2]\n", 1, "expected ',' or ']' after an array element, found '2'"},
    {"a = [\n1,\n2\nx = 3\n", 4, "expected ',' or ']' after an array element, found 'x'"},
    {"a = [,]\n", 1, "expected a value, found ','"},
    {"a = [1,,2]\n", 1, "expected a value, found ','"},
    {"t = {a = 1,}\n", 1, "trailing comma in an inline table"},
    {"t = {a = 1\n}\n", 1, "unterminated inline table"},
    {"t = {\na = 1}\n", 1, "an inline table must be on one line"},
    {"t = {a = 1 b = 2}\n", 1, "expected ',' or '}' after the value of 'a', found 'b'"},
    {"t = {a}\n", 1, "expected '=' after key 'a'"},
    // bytes
    {"a = 1\n# comment \x01\n", 2, "control character U+0001 is not allowed"},
    {"a = \"x\x7f\"\n", 1, "control character U+007F"},
    {"a = \"x\x1b[0m\"\n", 1, "control character U+001B"},
    {"a = 1\rb = 2\n", 1, "carriage return not followed by a line feed"},
    {"a = 1\n\nb = \"\xff\"\n", 3, "invalid UTF-8 (byte 0xFF)"},
    {"a = \"\xc0\xaf\"\n", 1, "invalid UTF-8 (overlong encoding)"},
    {"a = \"\xe0\x80\xaf\"\n", 1, "invalid UTF-8 (overlong encoding)"},
    {"a = \"\xed\xa0\x80\"\n", 1, "U+D800 is not a Unicode scalar value"},
    {"a = \"\xf4\x90\x80\x80\"\n", 1, "is not a Unicode scalar value"},
    {"a = \"\xe2\x82\"\n", 1, "invalid UTF-8 (byte 0x22)"},
    {"a = 1 # \xe2\x82", 1, "invalid UTF-8 (truncated sequence)"},
    {"a = \"\x80\"\n", 1, "invalid UTF-8 (byte 0x80)"},
    // line counting through multi-line constructs and CRLF
    {"s = \"\"\"\none\ntwo\n\"\"\"\nx = @\n", 5, "expected a value, found '@'"},
    {"a = [\r\n1,\r\n]\r\nb = @\r\n", 4, "expected a value, found '@'"},
    {"s = '''\r\n\r\n'''\r\nb = 1\r\nb = 2\r\n", 5, "duplicate key 'b' (first defined on line 4)"},
};

static void check_bad(const char *doc, size_t len, int line, const char *msg) {
    toml_value *root = (toml_value *)(uintptr_t)1; // must be reset to NULL on failure
    inf_status st = toml_parse("bad.toml", doc, len, &root);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "bad.toml:%d: ", line);
    const char *err = inf_last_error();
    CHECK_MSG(st == INF_ERR_FORMAT, "status %s for document:\n%s", inf_status_str(st), doc);
    CHECK_MSG(root == NULL, "*out not NULL after failure");
    CHECK_MSG(!strncmp(err, prefix, strlen(prefix)) && strstr(err, msg), "got \"%s\", want \"%s%s\"", err,
              prefix, msg);
    if (st == INF_OK && root) toml_free(root);
}

static void test_bad_documents(void) {
    for (size_t i = 0; i < INF_ARRAY_LEN(bad_docs); i++)
        check_bad(bad_docs[i].doc, strlen(bad_docs[i].doc), bad_docs[i].line, bad_docs[i].msg);
    // A NUL byte is a control character too (the text is length-delimited, not NUL-terminated).
    check_bad("a = 1\nb = \"x\0y\"\n", 16, 2, "control character U+0000");
    // The text need not be NUL-terminated: parse only the first 5 bytes of "a = 1junk".
    toml_value *r = NULL;
    CHECK(toml_parse("t.toml", "a = 1junk", 5, &r) == INF_OK);
    if (r) {
        check_int(r, "a", 1);
        toml_free(r);
    }
}

// Builds a document in a heap buffer; the caller frees it.
static char *repeat_doc(const char *head, const char *unit, int count, const char *tail, size_t *len) {
    size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
    size_t n = hl + ul * (size_t)count + tl;
    char *s = malloc(n + 1);
    memcpy(s, head, hl);
    for (int i = 0; i < count; i++) memcpy(s + hl + ul * (size_t)i, unit, ul);
    memcpy(s + hl + ul * (size_t)count, tail, tl);
    s[n] = '\0';
    *len = n;
    return s;
}

static bool parses(const char *doc, size_t len) {
    toml_value *r = NULL;
    inf_status st = toml_parse("cap.toml", doc, len, &r);
    toml_free(r);
    return st == INF_OK;
}

static void test_caps(void) {
    size_t len;
    char *s;
    // Arrays nested exactly TOML_MAX_DEPTH deep (root 0, the value of a is depth 1) parse; one more fails.
    s = repeat_doc("a = ", "[", TOML_MAX_DEPTH, "", &len);
    char *doc = malloc(len + TOML_MAX_DEPTH + 8);
    memcpy(doc, s, len);
    memset(doc + len, ']', TOML_MAX_DEPTH);
    memcpy(doc + len + TOML_MAX_DEPTH, "\n", 2);
    CHECK_MSG(parses(doc, strlen(doc)), "%s", inf_last_error());
    free(s);
    free(doc);
    s = repeat_doc("a = ", "[", TOML_MAX_DEPTH + 1, "", &len);
    doc = malloc(len + TOML_MAX_DEPTH + 8);
    memcpy(doc, s, len);
    memset(doc + len, ']', TOML_MAX_DEPTH + 1);
    memcpy(doc + len + TOML_MAX_DEPTH + 1, "\n", 2);
    CHECK(!parses(doc, strlen(doc)));
    CHECK(strstr(inf_last_error(), "cap.toml:1: nesting deeper than 32 levels") != NULL);
    free(s);
    free(doc);
    // Tables: a header of 31 parts holds keys at depth 32; a header of 32 parts cannot hold any.
    s = repeat_doc("[t", ".t", TOML_MAX_DEPTH - 2, "]\nx = 1\n", &len);
    CHECK_MSG(parses(s, len), "%s", inf_last_error());
    free(s);
    s = repeat_doc("[t", ".t", TOML_MAX_DEPTH - 1, "]\nx = 1\n", &len);
    CHECK(!parses(s, len));
    CHECK(strstr(inf_last_error(), "cap.toml:2: nesting deeper") != NULL);
    free(s);
    // Inline tables nest like arrays.
    s = repeat_doc("a = ", "{b = ", TOML_MAX_DEPTH + 1, "1", &len);
    CHECK(!parses(s, len));
    CHECK(strstr(inf_last_error(), "nesting deeper") != NULL);
    free(s);
    // A key has at most TOML_MAX_DEPTH parts.
    s = repeat_doc("k", ".k", TOML_MAX_DEPTH, " = 1\n", &len);
    CHECK(!parses(s, len));
    CHECK(strstr(inf_last_error(), "key has more than 32 dotted parts") != NULL);
    free(s);
    // Strings: TOML_MAX_STRING bytes parse, one more fails (also when escapes make it longer).
    s = repeat_doc("s = \"", "x", TOML_MAX_STRING, "\"\n", &len);
    CHECK_MSG(parses(s, len), "%s", inf_last_error());
    free(s);
    s = repeat_doc("s = '", "x", TOML_MAX_STRING + 1, "'\n", &len);
    CHECK(!parses(s, len));
    CHECK(strstr(inf_last_error(), "string longer than 65536 bytes") != NULL);
    free(s);
    s = repeat_doc("s = \"", "\\u00e9", TOML_MAX_STRING / 2 + 1, "\"\n", &len);
    CHECK(!parses(s, len));
    CHECK(strstr(inf_last_error(), "string longer than") != NULL);
    free(s);
    // Documents: TOML_MAX_BYTES bytes parse, one more byte fails before anything is read.
    s = repeat_doc("#", " ", TOML_MAX_BYTES - 1, "", &len);
    CHECK_EQ_INT(len, TOML_MAX_BYTES);
    CHECK_MSG(parses(s, len), "%s", inf_last_error());
    free(s);
    s = repeat_doc("#", " ", TOML_MAX_BYTES, "", &len);
    CHECK(!parses(s, len));
    CHECK(strstr(inf_last_error(), "cap.toml: larger than 1048576 bytes") != NULL);
    free(s);
    // Arrays: TOML_MAX_ARRAY elements parse, one more fails.
    s = repeat_doc("a = [", "0,", TOML_MAX_ARRAY, "]\n", &len);
    CHECK_MSG(parses(s, len), "%s", inf_last_error());
    free(s);
    s = repeat_doc("a = [", "0,", TOML_MAX_ARRAY + 1, "]\n", &len);
    CHECK(!parses(s, len));
    CHECK(strstr(inf_last_error(), "array has more than 65536 elements") != NULL);
    free(s);
    // Tables: TOML_MAX_KEYS keys parse, one more fails with the line of the extra key.
    char *keys = malloc((size_t)(TOML_MAX_KEYS + 1) * 16);
    size_t kl = 0;
    for (int i = 0; i <= TOML_MAX_KEYS; i++) kl += (size_t)sprintf(keys + kl, "k%d = 1\n", i);
    size_t all_but_last = kl - strlen("k4096 = 1\n");
    CHECK_MSG(parses(keys, all_but_last), "%s", inf_last_error());
    CHECK(!parses(keys, kl));
    CHECK(strstr(inf_last_error(), "cap.toml:4097: table has more than 4096 keys") != NULL);
    free(keys);
}

static void test_type_names(void) {
    CHECK_STR(toml_type_name(TOML_STRING), "string");
    CHECK_STR(toml_type_name(TOML_INT), "integer");
    CHECK_STR(toml_type_name(TOML_FLOAT), "float");
    CHECK_STR(toml_type_name(TOML_BOOL), "boolean");
    CHECK_STR(toml_type_name(TOML_ARRAY), "array");
    CHECK_STR(toml_type_name(TOML_TABLE), "table");
    toml_free(NULL);
}

int main(void) {
    test_tables_and_keys();
    test_strings();
    test_numbers_and_bools();
    test_arrays_and_inline_tables();
    test_line_endings_and_bom();
    test_bad_documents();
    test_caps();
    test_type_names();
    return test_summary();
}
