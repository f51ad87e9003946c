// test_tokenizer.c: the SentencePiece and BPE tokenizers against independent references:
// - llama.cpp's vocabulary test vectors (shared/models/vocab/*.gguf.inp/.out, made with Hugging Face
//   tokenizers): llama-spm, phi-3 and gpt-2 must match every case; the other vocabularies print their pass
//   counts and must not fall below the floor recorded here;
// - the tokenization cases of shared/golden/stories260K.json and vocab-llama-spm.json (llama-tokenize),
//   with and without BOS and with parse_special;
// - detokenization round trips, BOS/EOS/EOG rules, buffer contracts and caps;
// - small hand-made vocabularies (built in memory) whose results are worked out by hand, and broken
//   metadata that must fail cleanly with a message naming the key.
#include "gguf_build.h"
#include "test.h"
#include "tokenizer/tokenizer_int.h"

#include <json-c/json.h>
#include <limits.h>

#define MAX_IDS 4096

static char *read_all(const char *path, size_t *len) {
    char *data = NULL;
    if (inf_read_file(path, 64u << 20, &data, len) != INF_OK) {
        return NULL;
    }
    return data;
}

static inf_vocab *load_path(const char *path, inf_status *st_out) {
    gguf_file *f = NULL;
    inf_vocab *v = NULL;
    inf_status st = gguf_open(path, &f);
    if (st == INF_OK) {
        st = vocab_load(f, &v);
        gguf_close(f); // the vocabulary keeps its own copies
    }
    if (st_out) {
        *st_out = st;
    }
    if (st != INF_OK && !st_out) { // callers that pass st_out expect failures and check them
        fprintf(stderr, "load %s: %s\n", path, inf_last_error());
    }
    return v;
}

static int tok(const inf_vocab *v, const char *s, size_t n, bool add_special, bool parse_special,
               int32_t *ids) {
    int n_out = -1;
    inf_status st = vocab_tokenize(v, s, n, add_special, parse_special, ids, MAX_IDS, &n_out);
    if (st != INF_OK) {
        fprintf(stderr, "tokenize failed: %s\n", inf_last_error());
        return -1;
    }
    return n_out;
}

static int tok_str(const inf_vocab *v, const char *s, bool add_special, bool parse_special, int32_t *ids) {
    return tok(v, s, strlen(s), add_special, parse_special, ids);
}

static bool ids_equal(const int32_t *a, int na, const int32_t *b, int nb) {
    return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof *a) == 0);
}

static void print_ids(const char *label, const int32_t *ids, int n) {
    fprintf(stderr, "  %s:", label);
    for (int i = 0; i < n; i++) {
        fprintf(stderr, " %d", ids[i]);
    }
    fprintf(stderr, "\n");
}

// ---------------------------------------------------------------------------------------------------------
// llama.cpp's vocabulary test vectors
// ---------------------------------------------------------------------------------------------------------
typedef struct {
    const char *name;
    bool must_pass;  // every case asserted
    int floor;       // otherwise: at least this many cases must pass (what this implementation achieves)
    bool round_trip; // check detokenize(tokenize(s)) == s where llama.cpp's rules give s back
} vocab_case;

// Splits data at "\n__ggml_vocab_test__\n"; returns the number of strings (the empty tail is dropped).
static int split_inputs(char *data, size_t len, char **strs, size_t *lens, int max) {
    static const char sep[] = "\n__ggml_vocab_test__\n";
    const size_t nsep = sizeof sep - 1;
    int n = 0;
    char *p = data, *end = data + len;
    while (p <= end && n < max) {
        char *q = memmem(p, (size_t)(end - p), sep, nsep);
        if (!q) {
            break; // what follows the last separator is the empty 47th element
        }
        strs[n] = p;
        lens[n] = (size_t)(q - p);
        n++;
        p = q + nsep;
    }
    return n;
}

static int parse_ids(const char *line, int32_t *ids) {
    int n = 0;
    const char *p = line;
    while (*p && *p != '\n') {
        while (*p == ' ') {
            p++;
        }
        if (!*p || *p == '\n') {
            break;
        }
        ids[n++] = (int32_t)strtol(p, (char **)&p, 10);
    }
    return n;
}

// llama.cpp's detokenizer cleans " ?", " !", " .", " ," and " '" sequences for gpt-2; such strings cannot
// come back unchanged, everything else must.
static bool bpe_round_trips(const char *s, size_t n) {
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] == ' ' && strchr("?!.,'", s[i + 1])) {
            return false;
        }
    }
    return true;
}

static void test_vocab_vectors(const char *dir) {
    static const vocab_case cases[] = {
        {"llama-spm", true, 46, true},      {"phi-3", true, 46, true},
        {"gpt-2", true, 46, true},          {"deepseek-coder", false, 46, false},
        {"deepseek-llm", false, 46, false}, {"falcon", false, 46, false},
        {"mpt", false, 46, false},          {"refact", false, 46, false},
        {"starcoder", false, 46, false},    {"bert-bge", false, 0, false},
    };
    static int32_t got[MAX_IDS], want[MAX_IDS];
    for (size_t c = 0; c < INF_ARRAY_LEN(cases); c++) {
        const vocab_case *vc = &cases[c];
        char path[1024], pin[1100], pout[1100];
        snprintf(path, sizeof path, "%s/models/vocab/ggml-vocab-%s.gguf", dir, vc->name);
        snprintf(pin, sizeof pin, "%s.inp", path);
        snprintf(pout, sizeof pout, "%s.out", path);
        size_t lin = 0, lout = 0;
        char *inp = read_all(pin, &lin), *outp = read_all(pout, &lout);
        CHECK_MSG(inp && outp, "%s: cannot read test vectors", vc->name);
        if (!inp || !outp) {
            free(inp);
            free(outp);
            continue;
        }
        char *strs[64];
        size_t lens[64];
        int n = split_inputs(inp, lin, strs, lens, 64);
        CHECK_EQ_INT(n, 46);

        inf_status st = INF_OK;
        inf_vocab *v = load_path(path, &st);
        if (!v && strcmp(vc->name, "bert-bge") != 0) {
            fprintf(stderr, "load %s: %s\n", path, inf_last_error());
        }
        if (strcmp(vc->name, "bert-bge") == 0) {
            // WordPiece is not supported: a clean error naming the tokenizer model.
            CHECK_EQ_INT(st, INF_ERR_UNSUPPORTED);
            CHECK(strstr(inf_last_error(), "'bert'") != NULL);
            CHECK(v == NULL);
            printf("vocab %-15s  0/%d cases pass (WordPiece unsupported)\n", vc->name, n);
            free(inp);
            free(outp);
            continue;
        }
        CHECK(v != NULL);
        if (!v) {
            free(inp);
            free(outp);
            continue;
        }
        const char *line = outp;
        int pass = 0, rt_checked = 0, rt_pass = 0;
        for (int i = 0; i < n; i++) {
            int nw = parse_ids(line, want);
            const char *nl = strchr(line, '\n');
            line = nl ? nl + 1 : line + strlen(line);
            int ng = tok(v, strs[i], lens[i], false, false, got);
            bool ok = ids_equal(got, ng, want, nw);
            pass += ok;
            if (vc->must_pass) {
                CHECK_MSG(ok, "%s case %d ('%.*s')", vc->name, i, (int)lens[i], strs[i]);
                if (!ok) {
                    print_ids("want", want, nw);
                    print_ids("got ", got, ng);
                }
            }
            if (vc->round_trip && (vocab_kind(v) == INF_VOCAB_SPM || bpe_round_trips(strs[i], lens[i]))) {
                // Detokenize the reference ids (independent of our tokenizer) and our own.
                char buf[8192];
                int nb = vocab_detokenize(v, want, nw, true, false, buf, sizeof buf);
                bool ok1 = nb == (int)lens[i] && memcmp(buf, strs[i], lens[i]) == 0;
                nb = vocab_detokenize(v, got, ng, true, false, buf, sizeof buf);
                bool ok2 = nb == (int)lens[i] && memcmp(buf, strs[i], lens[i]) == 0;
                CHECK_MSG(ok1 && ok2, "%s case %d: round trip", vc->name, i);
                rt_checked++;
                rt_pass += ok1 && ok2;
            }
        }
        printf("vocab %-15s %2d/%d cases pass", vc->name, pass, n);
        if (vc->round_trip) {
            printf(", round trip %d/%d", rt_pass, rt_checked);
        }
        printf("\n");
        CHECK_MSG(pass >= vc->floor, "%s: %d cases pass, floor %d", vc->name, pass, vc->floor);
        vocab_free(v);
        free(inp);
        free(outp);
    }
}

// ---------------------------------------------------------------------------------------------------------
// Golden tokenization cases from llama-tokenize
// ---------------------------------------------------------------------------------------------------------
static int json_ids(json_object *arr, int32_t *ids) {
    int n = (int)json_object_array_length(arr);
    for (int i = 0; i < n && i < MAX_IDS; i++) {
        ids[i] = (int32_t)json_object_get_int(json_object_array_get_idx(arr, (size_t)i));
    }
    return n;
}

static size_t unhex(const char *hex, char *out) {
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned b = 0;
        sscanf(hex + 2 * i, "%2x", &b);
        out[i] = (char)b;
    }
    return n;
}

static void test_golden(const char *dir, const char *json_name, const char *model_rel) {
    char path[1024], mpath[1024];
    snprintf(path, sizeof path, "%s/golden/%s", dir, json_name);
    snprintf(mpath, sizeof mpath, "%s/%s", dir, model_rel);
    json_object *root = json_object_from_file(path);
    CHECK_MSG(root != NULL, "cannot parse %s", path);
    inf_vocab *v = load_path(mpath, NULL);
    CHECK(v != NULL);
    if (!root || !v) {
        json_object_put(root);
        vocab_free(v);
        return;
    }
    json_object *tk = NULL, *cases = NULL;
    CHECK(json_object_object_get_ex(root, "tokenization", &tk) &&
          json_object_object_get_ex(tk, "cases", &cases));
    int n_cases = cases ? (int)json_object_array_length(cases) : 0;
    CHECK(n_cases >= 12);
    static int32_t want[MAX_IDS], got[MAX_IDS];
    int n_special = 0;
    for (int c = 0; c < n_cases; c++) {
        json_object *cs = json_object_array_get_idx(cases, (size_t)c), *x = NULL;
        json_object_object_get_ex(cs, "name", &x);
        const char *name = json_object_get_string(x);
        json_object_object_get_ex(cs, "text_utf8_hex", &x);
        char text[4096];
        size_t len = unhex(json_object_get_string(x), text);

        struct {
            const char *key;
            bool add_special, parse_special;
        } forms[] = {
            {"ids_with_bos", true, false},
            {"ids_without_bos", false, false},
            {"parse_special_ids_with_bos", true, true},
            {"parse_special_ids_without_bos", false, true},
        };
        for (size_t k = 0; k < INF_ARRAY_LEN(forms); k++) {
            if (!json_object_object_get_ex(cs, forms[k].key, &x)) {
                continue;
            }
            n_special += forms[k].parse_special;
            int nw = json_ids(x, want);
            int ng = tok(v, text, len, forms[k].add_special, forms[k].parse_special, got);
            bool ok = ids_equal(got, ng, want, nw);
            CHECK_MSG(ok, "%s %s %s", json_name, name, forms[k].key);
            if (!ok) {
                print_ids("want", want, nw);
                print_ids("got ", got, ng);
            }
        }
        // Pieces are the raw vocabulary strings of the ids.
        const char *pkeys[] = {"pieces_without_bos", "parse_special_pieces_without_bos"};
        const char *ikeys[] = {"ids_without_bos", "parse_special_ids_without_bos"};
        for (int k = 0; k < 2; k++) {
            json_object *pieces = NULL, *ids = NULL;
            if (!json_object_object_get_ex(cs, pkeys[k], &pieces) ||
                !json_object_object_get_ex(cs, ikeys[k], &ids)) {
                continue;
            }
            int np = (int)json_object_array_length(pieces);
            int ni = json_ids(ids, want);
            CHECK_EQ_INT(np, ni);
            for (int i = 0; i < np && i < ni; i++) {
                const char *p = json_object_get_string(json_object_array_get_idx(pieces, (size_t)i));
                CHECK_STR(vocab_token_text(v, want[i]), p);
            }
        }
        // Round trip: the text comes back from the reference ids, with or without the BOS.
        json_object_object_get_ex(cs, "ids_without_bos", &x);
        int nw = json_ids(x, want);
        char buf[8192];
        int nb = vocab_detokenize(v, want, nw, true, false, buf, sizeof buf);
        CHECK_MSG(nb == (int)len && memcmp(buf, text, len) == 0, "%s %s: detokenize", json_name, name);
        json_object_object_get_ex(cs, "ids_with_bos", &x);
        nw = json_ids(x, want);
        nb = vocab_detokenize(v, want + 1, nw - 1, true, false, buf, sizeof buf);
        CHECK_MSG(nb == (int)len && memcmp(buf, text, len) == 0, "%s %s: detokenize after BOS", json_name,
                  name);
    }
    CHECK(n_special >= 2); // the special_like case carries parse_special forms
    json_object_put(root);
    vocab_free(v);
}

// ---------------------------------------------------------------------------------------------------------
// Rules checked on the shared vocabularies
// ---------------------------------------------------------------------------------------------------------
static void test_rules(const char *dir) {
    char path[1024];
    static int32_t ids[MAX_IDS], ids2[MAX_IDS];

    // stories260K: no add_bos_token key -> BOS added; separator/padding ids 0xFFFFFFFF are ignored.
    snprintf(path, sizeof path, "%s/models/stories260K.gguf", dir);
    inf_vocab *v = load_path(path, NULL);
    CHECK(v != NULL);
    if (v) {
        CHECK_EQ_INT(vocab_kind(v), INF_VOCAB_SPM);
        CHECK_STR(vocab_model_name(v), "llama");
        CHECK_STR(vocab_pre_name(v), "default");
        CHECK_EQ_INT(vocab_n_tokens(v), 512);
        CHECK_EQ_INT(vocab_bos(v), 1);
        CHECK_EQ_INT(vocab_eos(v), 2);
        CHECK_EQ_INT(vocab_unk(v), 0);
        CHECK(vocab_add_bos(v));
        CHECK(!vocab_add_eos(v));
        CHECK(vocab_is_eog(v, 2));
        CHECK(!vocab_is_eog(v, 1));
        CHECK(!vocab_is_eog(v, 0));
        CHECK(!vocab_is_eog(v, -1));
        CHECK(!vocab_is_eog(v, 512));
        CHECK(vocab_is_control(v, 1));
        CHECK(!vocab_is_control(v, 261));
        CHECK(vocab_token_text(v, 512) == NULL);
        CHECK(vocab_token_text(v, -1) == NULL);
        // Empty text: BOS alone with add_special, nothing without.
        CHECK_EQ_INT(tok_str(v, "", true, false, ids), 1);
        CHECK_EQ_INT(ids[0], 1);
        CHECK_EQ_INT(tok_str(v, "", false, false, ids), 0);

        // Pieces: "▁a" renders " a"; control tokens only with render_special; bytes as raw bytes.
        char buf[64];
        CHECK_EQ_INT(vocab_token_to_piece(v, 261, false, buf, sizeof buf), 2);
        CHECK(memcmp(buf, " a", 2) == 0);
        CHECK_EQ_INT(vocab_token_to_piece(v, 1, false, buf, sizeof buf), 0);
        CHECK_EQ_INT(vocab_token_to_piece(v, 1, true, buf, sizeof buf), 3);
        CHECK(memcmp(buf, "<s>", 3) == 0);
        CHECK_EQ_INT(vocab_token_to_piece(v, 13, false, buf, sizeof buf), 1); // <0x0A>
        CHECK_EQ_INT(buf[0], '\n');
        CHECK_EQ_INT(vocab_token_to_piece(v, 9999, true, buf, sizeof buf), 0);
        // A piece longer than the buffer: full size returned, only cap bytes written.
        memset(buf, 'x', sizeof buf);
        CHECK_EQ_INT(vocab_token_to_piece(v, 403, false, buf, 2), 5); // "▁Once" -> " Once"
        CHECK(buf[0] == ' ' && buf[1] == 'O' && buf[2] == 'x');

        // Detokenize: BOS keeps the leading space (llama.cpp), no BOS drops it; render_special shows <s>.
        int32_t seq[] = {1, 346, 306, 414}; // <s> ▁He ll o
        CHECK_EQ_INT(vocab_detokenize(v, seq + 1, 3, true, false, buf, sizeof buf), 5);
        CHECK_STR(buf, "Hello");
        CHECK_EQ_INT(vocab_detokenize(v, seq + 1, 3, false, false, buf, sizeof buf), 6);
        CHECK_STR(buf, " Hello");
        CHECK_EQ_INT(vocab_detokenize(v, seq, 4, true, false, buf, sizeof buf), 6);
        CHECK_STR(buf, " Hello");
        CHECK_EQ_INT(vocab_detokenize(v, seq, 4, true, true, buf, sizeof buf), 9);
        CHECK_STR(buf, "<s> Hello");
        // Too small: needed size + 1, negated; exact fit: no terminator but the full count.
        CHECK_EQ_INT(vocab_detokenize(v, seq + 1, 3, true, false, buf, 4), -6);
        memset(buf, 'x', sizeof buf);
        CHECK_EQ_INT(vocab_detokenize(v, seq + 1, 3, true, false, buf, 5), 5);
        CHECK_EQ_INT(buf[5], 'x');
        CHECK_EQ_INT(vocab_detokenize(v, seq, 0, true, false, buf, sizeof buf), 0);

        // Output cap: the full count comes back, at most cap ids are written.
        int32_t small[4] = {-7, -7, -7, -7};
        int n_out = 0;
        CHECK_EQ_INT(vocab_tokenize(v, "Hello world", 11, true, false, small, 3, &n_out), INF_OK);
        CHECK_EQ_INT(n_out, 7);
        CHECK(small[0] == 1 && small[1] == 346 && small[2] == 306 && small[3] == -7);
        CHECK_EQ_INT(vocab_tokenize(v, "Hello", 5, true, false, NULL, 0, &n_out), INF_OK);
        CHECK_EQ_INT(n_out, 4);
        // Caps and bad arguments.
        CHECK_EQ_INT(vocab_tokenize(v, "x", VOCAB_MAX_INPUT_BYTES + 1, false, false, ids, MAX_IDS, &n_out),
                     INF_ERR_INVALID_ARG);
        CHECK(strstr(inf_last_error(), "bytes") != NULL);
        CHECK_EQ_INT(vocab_tokenize(v, NULL, 3, false, false, ids, MAX_IDS, &n_out), INF_ERR_INVALID_ARG);
        CHECK_EQ_INT(vocab_tokenize(v, "x", 1, false, false, NULL, 5, &n_out), INF_ERR_INVALID_ARG);
        CHECK_EQ_INT(vocab_tokenize(v, "x", 1, false, false, ids, -1, &n_out), INF_ERR_INVALID_ARG);

        // Invalid UTF-8 goes through byte fallback and comes back unchanged.
        const char bad[] = "a\xff\xc3(b\xe2\x82";
        int n = tok(v, bad, sizeof bad - 1, false, false, ids);
        CHECK(n > 0);
        CHECK_EQ_INT(vocab_detokenize(v, ids, n, true, false, buf, sizeof buf), (int)sizeof bad - 1);
        CHECK(memcmp(buf, bad, sizeof bad - 1) == 0);
        vocab_free(v);
    }

    // gpt-2: BPE adds no BOS by default; <|endoftext|> is BOS, EOS and EOG.
    snprintf(path, sizeof path, "%s/models/vocab/ggml-vocab-gpt-2.gguf", dir);
    v = load_path(path, NULL);
    CHECK(v != NULL);
    if (v) {
        CHECK_EQ_INT(vocab_kind(v), INF_VOCAB_BPE);
        CHECK_STR(vocab_pre_name(v), "gpt-2");
        CHECK_EQ_INT(vocab_n_merges(v), 50000);
        CHECK(!vocab_add_bos(v));
        CHECK_EQ_INT(vocab_bos(v), 50256);
        CHECK(vocab_is_eog(v, 50256));
        CHECK_EQ_INT(tok_str(v, "Hello world", true, false, ids), 2); // no BOS even with add_special
        CHECK(ids[0] == 15496 && ids[1] == 995);
        // <|endoftext|> is plain text unless parse_special.
        CHECK_EQ_INT(tok_str(v, "a<|endoftext|>b", true, true, ids), 3);
        CHECK(ids[0] == 64 && ids[1] == 50256 && ids[2] == 65);
        CHECK(tok_str(v, "a<|endoftext|>b", true, false, ids) > 3);
        // Invalid UTF-8: each bad byte becomes U+FFFD (llama.cpp's decoder), so it reads back as EF BF BD.
        int n = tok_str(v, "a\377b", false, false, ids);
        char buf[64];
        CHECK_EQ_INT(vocab_detokenize(v, ids, n, true, false, buf, sizeof buf), 5);
        CHECK_STR(buf, "a\357\277\275b");
        // clean_spaces: " ." and " 's" lose the space, " 't" keeps it.
        n = tok_str(v, "Hello . It 's it 't", false, false, ids);
        CHECK_EQ_INT(vocab_detokenize(v, ids, n, true, false, buf, sizeof buf), 17);
        CHECK_STR(buf, "Hello. It's it 't");
        // Byte-level pieces.
        CHECK_EQ_INT(vocab_token_to_piece(v, 995, false, buf, sizeof buf), 6); // "Ġworld"
        CHECK(memcmp(buf, " world", 6) == 0);
        vocab_free(v);
    }

    // deepseek-coder: add_bos_token true is honoured.
    snprintf(path, sizeof path, "%s/models/vocab/ggml-vocab-deepseek-coder.gguf", dir);
    v = load_path(path, NULL);
    CHECK(v != NULL);
    if (v) {
        CHECK(vocab_add_bos(v));
        CHECK_EQ_INT(vocab_bos(v), 32013);
        CHECK(vocab_is_eog(v, 32014));
        int n = tok_str(v, "hi", true, false, ids);
        CHECK(n >= 2 && ids[0] == 32013);
        vocab_free(v);
    }

    // phi-3: <|end|> and <|endoftext|> end generation; special tokens strip the whitespace on their right
    // (llama.cpp's rule for models named phi-3).
    snprintf(path, sizeof path, "%s/models/vocab/ggml-vocab-phi-3.gguf", dir);
    v = load_path(path, NULL);
    CHECK(v != NULL);
    if (v) {
        CHECK(vocab_is_eog(v, 32007));
        CHECK(vocab_is_eog(v, 32000));
        CHECK(vocab_is_eog(v, 2)); // "</s>"
        CHECK_EQ_INT(vocab_eot(v), 32000);
        CHECK(!vocab_is_eog(v, 32010));
        int n = tok_str(v, "<|user|>\n  Hi<|end|>", false, true, ids);
        int m = tok_str(v, "Hi", false, false, ids2);
        CHECK_EQ_INT(n, m + 2);
        CHECK_EQ_INT(ids[0], 32010);
        CHECK(n == m + 2 && memcmp(ids + 1, ids2, (size_t)m * sizeof *ids) == 0);
        CHECK_EQ_INT(ids[n - 1], 32007);
        vocab_free(v);
    }

    // mpt: user-defined tokens (runs of spaces) are cut out even without parse_special.
    snprintf(path, sizeof path, "%s/models/vocab/ggml-vocab-mpt.gguf", dir);
    v = load_path(path, NULL);
    CHECK(v != NULL);
    if (v) {
        int n = tok_str(v, "a    b", false, false, ids);
        CHECK_EQ_INT(n, 3);
        CHECK_EQ_INT(ids[1], 50274); // "    "
        vocab_free(v);
    }
}

// ---------------------------------------------------------------------------------------------------------
// Hand-made vocabularies, built in memory
// ---------------------------------------------------------------------------------------------------------
typedef struct {
    const char *model, *pre, *name; // NULL: key absent
    const char *const *tokens;      // NULL: key absent
    int n_tokens;
    const float *scores;
    int n_scores;
    const int32_t *types;
    int n_types;
    const char *const *merges;
    int n_merges;
    void (*extra)(gguf_build *b); // writes n_extra more keys
    int n_extra;
} vspec;

static inf_status open_spec(const vspec *s, inf_vocab **out) {
    gguf_build b;
    gb_init(&b, 3);
    int n_kv = (s->model != NULL) + (s->pre != NULL) + (s->name != NULL) + (s->tokens != NULL) +
               (s->scores != NULL) + (s->types != NULL) + (s->merges != NULL) + s->n_extra;
    gb_header(&b, 0, (uint64_t)n_kv);
    if (s->model) {
        gb_kv_str(&b, "tokenizer.ggml.model", s->model);
    }
    if (s->pre) {
        gb_kv_str(&b, "tokenizer.ggml.pre", s->pre);
    }
    if (s->name) {
        gb_kv_str(&b, "general.name", s->name);
    }
    if (s->tokens) {
        gb_kv_arr_str(&b, "tokenizer.ggml.tokens", s->tokens, (size_t)s->n_tokens);
    }
    if (s->scores) {
        gb_kv_arr_f32(&b, "tokenizer.ggml.scores", s->scores, (size_t)s->n_scores);
    }
    if (s->types) {
        gb_kv_arr_i32(&b, "tokenizer.ggml.token_type", s->types, (size_t)s->n_types);
    }
    if (s->merges) {
        gb_kv_arr_str(&b, "tokenizer.ggml.merges", s->merges, (size_t)s->n_merges);
    }
    if (s->extra) {
        s->extra(&b);
    }
    gguf_file *f = NULL;
    *out = NULL;
    inf_status st = gguf_open_memory(b.data, b.len, "mem.gguf", &f);
    if (st == INF_OK) {
        st = vocab_load(f, out);
        gguf_close(f);
    } else {
        fprintf(stderr, "gguf_open_memory: %s\n", inf_last_error());
    }
    gb_free(&b);
    return st;
}

// SPM: ids 0 <unk>, 1 <s>, 2 </s>, 3 ▁, 4 a, 5 b, 6 ab, 7 ▁a, 8 ▁ab, 9 aa, 10 <x> (user-defined),
// 11 <c> (control).
static const char *const k_spm_tokens[] = {"<unk>", "<s>", "</s>",          "\xe2\x96\x81",   "a",
                                           "b",     "ab",  "\342\226\201a", "\342\226\201ab", "aa",
                                           "<x>",   "<c>"};
static const float k_spm_scores[] = {0, 0, 0, -10, -10, -10, -1, -2, -3, -1, 0, 0};
static const int32_t k_spm_types[] = {2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 4, 3};

static vspec spm_spec(void) {
    return (vspec){.model = "llama",
                   .tokens = k_spm_tokens,
                   .n_tokens = 12,
                   .scores = k_spm_scores,
                   .n_scores = 12,
                   .types = k_spm_types,
                   .n_types = 12};
}

static void expect_ids(const inf_vocab *v, const char *text, bool add_special, bool parse_special,
                       const int32_t *want, int nw, const char *what) {
    static int32_t got[MAX_IDS];
    int ng = tok_str(v, text, add_special, parse_special, got);
    bool ok = ids_equal(got, ng, want, nw);
    CHECK_MSG(ok, "%s: '%s'", what, text);
    if (!ok) {
        print_ids("want", want, nw);
        print_ids("got ", got, ng);
    }
}

static void test_spm_handmade(void) {
    vspec s = spm_spec();
    inf_vocab *v = NULL;
    CHECK_EQ_INT(open_spec(&s, &v), INF_OK);
    if (!v) {
        return;
    }
    // "▁ab": (a,b) scores -1, beats (▁,a) at -2; then ▁ + ab = ▁ab.
    expect_ids(v, "ab", false, false, (int32_t[]){8}, 1, "merge by score");
    expect_ids(v, "ab", true, false, (int32_t[]){1, 8}, 2, "BOS");
    // "▁aaa": (a,a) at -1 twice beats (▁,a) at -2; the leftmost "aa" wins the tie; ▁+aa and aa+a are
    // not tokens.
    expect_ids(v, "aaa", false, false, (int32_t[]){3, 9, 4}, 3, "leftmost of equal scores");
    // No pair is a token: single characters.
    expect_ids(v, "ba", false, false, (int32_t[]){3, 5, 4}, 3, "no merges");
    // 'c' is not a token and there are no byte tokens: the unknown token.
    expect_ids(v, "c", false, false, (int32_t[]){3, 0}, 2, "unknown token");
    // A user-defined token is cut out even without parse_special, a control token only with it; the text
    // after a special token gets the "▁" prefix again.
    expect_ids(v, "a<x>b", false, false, (int32_t[]){7, 10, 3, 5}, 4, "user-defined");
    expect_ids(v, "a<c>b", false, true, (int32_t[]){7, 11, 3, 5}, 4, "control with parse_special");
    int32_t ids[MAX_IDS];
    int n = tok_str(v, "a<c>b", false, false, ids);
    CHECK(n > 4 && ids[1] != 11);
    // Special token text at the very start: no prefix before it, one after.
    expect_ids(v, "<s>ab", false, true, (int32_t[]){1, 8}, 2, "BOS text");
    vocab_free(v);
}

// Byte fallback through <0xNN> tokens: ids 0 <unk>, 1 <s>, 2 </s>, 3 ▁, 4 <0x63> ('c'), 5 <0xC3>, 6 <0xA9>.
static void test_spm_bytes(void) {
    static const char *const tokens[] = {"<unk>",  "<s>",    "</s>",  "\xe2\x96\x81",
                                         "<0x63>", "<0xC3>", "<0xA9>"};
    static const float scores[] = {0, 0, 0, -1, 0, 0, 0};
    static const int32_t types[] = {2, 3, 3, 1, 6, 6, 6};
    vspec s = {.model = "llama",
               .tokens = tokens,
               .n_tokens = 7,
               .scores = scores,
               .n_scores = 7,
               .types = types,
               .n_types = 7};
    inf_vocab *v = NULL;
    CHECK_EQ_INT(open_spec(&s, &v), INF_OK);
    if (!v) {
        return;
    }
    expect_ids(v, "c\xc3\xa9", false, false, (int32_t[]){3, 4, 5, 6}, 4, "byte fallback");
    expect_ids(v, "d", false, false, (int32_t[]){3, 0}, 2, "byte fallback to unk");
    char buf[16];
    int32_t seq[] = {3, 4, 5, 6};
    CHECK_EQ_INT(vocab_detokenize(v, seq, 4, false, false, buf, sizeof buf), 4);
    CHECK_STR(buf, " c\xc3\xa9");
    CHECK_EQ_INT(vocab_token_to_piece(v, 0, false, buf, sizeof buf), 0); // unknown: special
    CHECK_EQ_INT(vocab_token_to_piece(v, 0, true, buf, sizeof buf), 5);
    vocab_free(v);
}

// BPE with GPT-2 byte characters: ids 0 a, 1 b, 2 c, 3 ab, 4 abc, 5 Ġ (space), 6 Ġa, 7 <|end|> (control).
static const char *const k_bpe_tokens[] = {"a", "b", "c", "ab", "abc", "\304\240", "\304\240a", "<|end|>"};
static const int32_t k_bpe_types[] = {1, 1, 1, 1, 1, 1, 1, 3};
static const char *const k_bpe_merges[] = {"a b", "ab c", "\xc4\xa0 a"};

static void test_bpe_handmade(void) {
    vspec s = {.model = "gpt2",
               .pre = "gpt-2",
               .tokens = k_bpe_tokens,
               .n_tokens = 8,
               .types = k_bpe_types,
               .n_types = 8,
               .merges = k_bpe_merges,
               .n_merges = 3};
    inf_vocab *v = NULL;
    CHECK_EQ_INT(open_spec(&s, &v), INF_OK);
    if (!v) {
        return;
    }
    CHECK_EQ_INT(vocab_n_merges(v), 3);
    CHECK(vocab_is_eog(v, 7)); // "<|end|>" by its text
    CHECK_EQ_INT(vocab_eot(v), 7);
    CHECK_EQ_INT(vocab_bos(v), -1); // default 11 is out of range
    expect_ids(v, "abc", false, false, (int32_t[]){4}, 1, "merges by rank");
    // " ab": (a,b) rank 0 beats (Ġ,a) rank 2, and Ġ + ab is no merge.
    expect_ids(v, " ab", false, false, (int32_t[]){5, 3}, 2, "rank order");
    // Words split by the gpt-2 regex; 'd' has no token and no byte fallback: dropped, as llama.cpp does.
    expect_ids(v, "abc ab", false, false, (int32_t[]){4, 5, 3}, 3, "two words");
    expect_ids(v, "d", false, false, NULL, 0, "unknown byte dropped");
    expect_ids(v, "ab<|end|>c", false, true, (int32_t[]){3, 7, 2}, 3, "control with parse_special");
    char buf[32];
    int32_t seq[] = {4, 5, 3, 7};
    CHECK_EQ_INT(vocab_detokenize(v, seq, 4, true, false, buf, sizeof buf), 6);
    CHECK_STR(buf, "abc ab");
    CHECK_EQ_INT(vocab_detokenize(v, seq, 4, true, true, buf, sizeof buf), 13);
    CHECK_STR(buf, "abc ab<|end|>");
    vocab_free(v);

    // A merge whose result is not a token is tolerated (llama.cpp does): the pair stays split.
    static const char *const merges2[] = {"a b", "ab c", "\xc4\xa0 a", "b c"};
    s.merges = merges2;
    s.n_merges = 4;
    CHECK_EQ_INT(open_spec(&s, &v), INF_OK);
    if (v) {
        // "bc" merges into a piece that is no token: it falls back to the one-byte tokens "b" and "c".
        expect_ids(v, "bc", false, false, (int32_t[]){1, 2}, 2, "merge result not a token");
        vocab_free(v);
    }
}

// Families such as llama3 add a BOS by default, so the hand-made BPE vocabulary names one.
static void extra_bos_zero(gguf_build *b) { gb_kv_u32(b, "tokenizer.ggml.bos_token_id", 0); }

// Word boundaries from the pre-tokenizer of `pre`, worked out by hand from the regexes.
static void expect_split(const char *pre, const char *text, const size_t *want, int nw) {
    vspec s = {.model = "gpt2",
               .pre = pre,
               .tokens = k_bpe_tokens,
               .n_tokens = 8,
               .types = k_bpe_types,
               .n_types = 8,
               .merges = k_bpe_merges,
               .n_merges = 3,
               .extra = extra_bos_zero,
               .n_extra = 1};
    inf_vocab *v = NULL;
    CHECK_EQ_INT(open_spec(&s, &v), INF_OK);
    if (!v) {
        return;
    }
    size_t *offs = NULL, n = 0;
    CHECK_EQ_INT(vocab_pretok_split(v, text, strlen(text), &offs, &n), INF_OK);
    bool ok = (int)n + 1 == nw && memcmp(offs, want, (size_t)nw * sizeof *want) == 0;
    CHECK_MSG(ok, "split %s '%s'", pre, text);
    if (!ok) {
        for (size_t i = 0; offs && i <= n; i++) {
            fprintf(stderr, " %zu", offs[i]);
        }
        fprintf(stderr, "\n");
    }
    free(offs);
    vocab_free(v);
}

static void test_pretok(void) {
    // gpt-2: "\s+(?!\S)" leaves the last space of a run to the next word.
    expect_split("gpt-2", "Hello world  foo's 123", (size_t[]){0, 5, 11, 12, 16, 18, 22}, 7);
    // llama3: digits in groups of three, newlines with their leading whitespace.
    expect_split("llama-bpe", "12345 abc\n\nx", (size_t[]){0, 3, 5, 9, 11, 12}, 6);
    // qwen2: single digits.
    expect_split("qwen2", "12345", (size_t[]){0, 1, 2, 3, 4, 5}, 6);
    // deepseek-coder: a sequence of regexes, unmatched text kept as pieces of its own.
    expect_split("deepseek-coder", "ab 12\n", (size_t[]){0, 2, 3, 4, 5, 6}, 6);
    // superbpe: an empty-match lookahead only marks split points: 1 | 234 | 567.
    expect_split("superbpe", "1234567", (size_t[]){0, 1, 4, 7}, 4);
    // Empty text: no words.
    expect_split("gpt-2", "", (size_t[]){0}, 1);

    // Every supported pre-tokenizer compiles and runs (one name per family and a few aliases).
    static const char *const names[] = {
        "default",     "llama3",     "llama-bpe",   "dbrx",     "smaug-bpe", "deepseek-llm", "deepseek-coder",
        "deepseek-v3", "falcon",     "starcoder",   "refact",   "command-r", "smollm",       "gpt-2",
        "mpt",         "olmo",       "jais",        "trillion", "qwen2",     "stablelm2",    "qwen35",
        "poro-chat",   "bloom",      "chatglm-bpe", "viking",   "tekken",    "chameleon",    "gpt-4o",
        "llama4",      "seed-coder", "bailingmoe",  "superbpe", "minicpm5",  "ufakzeka",     "laguna",
        "exaone-moe",  "grok-2",     "hunyuan",     "exaone4",  "megrez",    "minerva-7b",   "codeshell",
        "exaone",
    };
    static const char text[] = "Hello, World! It's 12345 \xc3\x84\xc3\x96 \xe4\xbd\xa0\xe5\xa5\xbd\n\n  x\t"
                               "<sentinel:12> I'LL \xe2\x80\xa6 3.14 \xf0\x9f\x99\x82\xff";
    for (size_t i = 0; i < INF_ARRAY_LEN(names); i++) {
        vspec s = {.model = "gpt2",
                   .pre = names[i],
                   .tokens = k_bpe_tokens,
                   .n_tokens = 8,
                   .types = k_bpe_types,
                   .n_types = 8,
                   .merges = k_bpe_merges,
                   .n_merges = 3,
                   .extra = extra_bos_zero,
                   .n_extra = 1};
        inf_vocab *v = NULL;
        inf_status st = open_spec(&s, &v);
        CHECK_MSG(st == INF_OK, "pre '%s': %s", names[i], inf_last_error());
        if (!v) {
            continue;
        }
        char *clean = NULL;
        size_t clean_len = 0, *offs = NULL, n = 0;
        CHECK_EQ_INT(vocab_utf8_sanitize(text, sizeof text - 1, &clean, &clean_len), INF_OK);
        st = vocab_pretok_split(v, clean ? clean : text, clean_len, &offs, &n);
        CHECK_MSG(st == INF_OK && n > 3 && offs[n] == clean_len, "pre '%s': split", names[i]);
        free(offs);
        free(clean);
        int32_t ids[MAX_IDS];
        CHECK_MSG(tok(v, text, sizeof text - 1, true, true, ids) >= 0, "pre '%s': tokenize", names[i]);
        vocab_free(v);
    }

    // UTF-8 repair: overlong forms, surrogates, stray and truncated bytes each become U+FFFD per byte.
    struct {
        const char *in, *out;
    } u[] = {
        {"ok \xc3\xa9", NULL},                                                    // valid: no copy
        {"\xc0\x80", "\xef\xbf\xbd\xef\xbf\xbd"},                                 // overlong NUL
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},                 // surrogate
        {"a\200b", "a\357\277\275b"},                                             // stray continuation
        {"\xe4\xbd", "\xef\xbf\xbd\xef\xbf\xbd"},                                 // truncated
        {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, // past U+10FFFF
    };
    for (size_t i = 0; i < INF_ARRAY_LEN(u); i++) {
        char *o = NULL;
        size_t ol = 0;
        CHECK_EQ_INT(vocab_utf8_sanitize(u[i].in, strlen(u[i].in), &o, &ol), INF_OK);
        if (!u[i].out) {
            CHECK(o == NULL && ol == strlen(u[i].in));
        } else {
            CHECK_MSG(o && ol == strlen(u[i].out) && memcmp(o, u[i].out, ol) == 0, "sanitize case %zu", i);
        }
        free(o);
    }
    // The GPT-2 byte map is a bijection onto its 256 characters.
    int seen[324] = {0};
    for (int b = 0; b < 256; b++) {
        uint32_t c = vocab_byte_to_cpt((uint8_t)b);
        CHECK(c < 324 && vocab_cpt_to_byte(c) == b);
        seen[c < 324 ? c : 0]++;
    }
    CHECK_EQ_INT(vocab_byte_to_cpt(' '), 0x120);  // "Ġ"
    CHECK_EQ_INT(vocab_byte_to_cpt('\n'), 0x10a); // "Ċ"
    CHECK_EQ_INT(vocab_cpt_to_byte(' '), -1);
    CHECK_EQ_INT(vocab_cpt_to_byte(0x144), -1);
}

// A long text (the golden story repeated) through both tokenizers: linear enough to be quick, and exact
// round trips.
static void test_long(const char *dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/golden/story.txt", dir);
    size_t n_story = 0;
    char *story = read_all(path, &n_story);
    CHECK(story != NULL);
    if (!story) {
        return;
    }
    const int reps = 100;
    size_t len = n_story * (size_t)reps;
    char *text = malloc(len + 1), *back = malloc(len + 16);
    int32_t *ids = malloc((len + 8) * sizeof *ids);
    for (int r = 0; r < reps; r++) {
        memcpy(text + (size_t)r * n_story, story, n_story);
    }
    text[len] = '\0';
    const char *names[] = {"llama-spm", "gpt-2", "deepseek-llm"};
    for (int k = 0; k < 3; k++) {
        snprintf(path, sizeof path, "%s/models/vocab/ggml-vocab-%s.gguf", dir, names[k]);
        inf_vocab *v = load_path(path, NULL);
        CHECK(v != NULL);
        if (!v) {
            continue;
        }
        double t0 = inf_time_now();
        int n = 0;
        CHECK_EQ_INT(vocab_tokenize(v, text, len, false, false, ids, (int)len + 8, &n), INF_OK);
        double t1 = inf_time_now();
        CHECK(n > (int)(len / 8) && n < (int)len);
        int nb = vocab_detokenize(v, ids, n, true, false, back, (int)len + 16);
        bool exact = nb == (int)len && memcmp(back, text, len) == 0;
        if (vocab_kind(v) == INF_VOCAB_SPM || bpe_round_trips(text, len)) {
            CHECK_MSG(exact, "%s: long round trip", names[k]);
        }
        printf("long text %-12s %zu bytes -> %d tokens in %.3f s\n", names[k], len, n, t1 - t0);
        vocab_free(v);
    }
    free(ids);
    free(back);
    free(text);
    free(story);
}

static void extra_add_bos_str(gguf_build *b) { gb_kv_str(b, "tokenizer.ggml.add_bos_token", "yes"); }
static void extra_bos_str(gguf_build *b) { gb_kv_str(b, "tokenizer.ggml.bos_token_id", "1"); }
static void extra_bos_big(gguf_build *b) { gb_kv_u32(b, "tokenizer.ggml.bos_token_id", 0xFFFFFFFFu); }
static void extra_eos_neg(gguf_build *b) { gb_kv_i32(b, "tokenizer.ggml.eos_token_id", -1); }
static void extra_add_bos_true(gguf_build *b) { gb_kv_bool(b, "tokenizer.ggml.add_bos_token", true); }
static void extra_tokens_i32(gguf_build *b) {
    gb_kv_arr_i32(b, "tokenizer.ggml.tokens", (int32_t[]){1, 2, 3}, 3);
}
static void extra_tokens_str(gguf_build *b) { gb_kv_str(b, "tokenizer.ggml.tokens", "a b c"); }
static void extra_scores_str(gguf_build *b) {
    gb_kv_arr_str(b, "tokenizer.ggml.scores", (const char *const[]){"1"}, 1);
}
static void extra_types_f32(gguf_build *b) {
    gb_kv_arr_f32(b, "tokenizer.ggml.token_type", (float[]){1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, 12);
}
static void extra_model_u32(gguf_build *b) { gb_kv_u32(b, "tokenizer.ggml.model", 1); }

typedef struct {
    const char *what;
    vspec spec;
    inf_status want;
    const char *msg; // substring of the message
} broken_case;

static void test_broken(void) {
    static const int32_t bad_types[] = {2, 3, 9, 1, 1, 1, 1, 1, 1, 1, 4, 3};
    static const int32_t neg_types[] = {2, 3, 3, 1, 1, -1, 1, 1, 1, 1, 4, 3};
    static const char *const dup_tokens[] = {"<unk>", "<s>", "</s>",          "\xe2\x96\x81",   "a",
                                             "b",     "ab",  "\342\226\201a", "\342\226\201ab", "a",
                                             "<x>",   "<c>"};
    static const char *const merges_unknown[] = {"a b", "a zz"};
    static const char *const merges_unknown_left[] = {"qq b"};
    static const char *const merges_nospace[] = {"ab"};
    vspec spm = spm_spec();
    vspec bpe = {.model = "gpt2",
                 .pre = "gpt-2",
                 .tokens = k_bpe_tokens,
                 .n_tokens = 8,
                 .types = k_bpe_types,
                 .n_types = 8,
                 .merges = k_bpe_merges,
                 .n_merges = 3};
    broken_case cases[32];
    int n = 0;
#define CASE(w, mod, st, m)                                                                                  \
    do {                                                                                                     \
        cases[n] = (broken_case){w, spm, st, m};                                                             \
        vspec *sp = &cases[n].spec;                                                                          \
        (void)sp;                                                                                            \
        mod;                                                                                                 \
        n++;                                                                                                 \
    } while (0)
    CASE("missing model", sp->model = NULL, INF_ERR_FORMAT, "tokenizer.ggml.model: missing");
    CASE("model not a string", (sp->model = NULL, sp->extra = extra_model_u32, sp->n_extra = 1),
         INF_ERR_FORMAT, "tokenizer.ggml.model: expected string");
    CASE("bert", sp->model = "bert", INF_ERR_UNSUPPORTED, "'bert'");
    CASE("t5", sp->model = "t5", INF_ERR_UNSUPPORTED, "'t5'");
    CASE("missing tokens", sp->tokens = NULL, INF_ERR_FORMAT, "tokenizer.ggml.tokens: missing");
    CASE("tokens of i32", (sp->tokens = NULL, sp->extra = extra_tokens_i32, sp->n_extra = 1), INF_ERR_FORMAT,
         "tokenizer.ggml.tokens: expected array of string");
    CASE("tokens a string", (sp->tokens = NULL, sp->extra = extra_tokens_str, sp->n_extra = 1),
         INF_ERR_FORMAT, "tokenizer.ggml.tokens: expected array");
    CASE("empty tokens", sp->n_tokens = 0, INF_ERR_FORMAT, "tokenizer.ggml.tokens: empty");
    CASE("short scores", sp->n_scores = 11, INF_ERR_FORMAT,
         "tokenizer.ggml.scores: 11 entries for 12 tokens");
    CASE("scores of strings", (sp->scores = NULL, sp->extra = extra_scores_str, sp->n_extra = 1),
         INF_ERR_FORMAT, "tokenizer.ggml.scores: expected array of f32");
    CASE("short token_type", sp->n_types = 5, INF_ERR_FORMAT, "tokenizer.ggml.token_type: 5 entries");
    CASE("token_type 9", sp->types = bad_types, INF_ERR_FORMAT, "tokenizer.ggml.token_type[2] = 9");
    CASE("token_type -1", sp->types = neg_types, INF_ERR_FORMAT, "tokenizer.ggml.token_type[5] = -1");
    CASE("token_type of f32", (sp->types = NULL, sp->extra = extra_types_f32, sp->n_extra = 1),
         INF_ERR_FORMAT, "tokenizer.ggml.token_type: expected array of i32");
    CASE("duplicate token", sp->tokens = dup_tokens, INF_ERR_FORMAT, "duplicate token 'a' at ids 4 and 9");
    CASE("add_bos_token a string", (sp->extra = extra_add_bos_str, sp->n_extra = 1), INF_ERR_FORMAT,
         "tokenizer.ggml.add_bos_token: expected bool");
    CASE("bos id a string", (sp->extra = extra_bos_str, sp->n_extra = 1), INF_ERR_FORMAT,
         "tokenizer.ggml.bos_token_id: expected an integer");
#define BCASE(w, mod, st, m)                                                                                 \
    do {                                                                                                     \
        cases[n] = (broken_case){w, bpe, st, m};                                                             \
        vspec *sp = &cases[n].spec;                                                                          \
        (void)sp;                                                                                            \
        mod;                                                                                                 \
        n++;                                                                                                 \
    } while (0)
    BCASE("missing merges", sp->merges = NULL, INF_ERR_FORMAT, "tokenizer.ggml.merges: missing");
    BCASE("merge of unknown token", (sp->merges = merges_unknown, sp->n_merges = 2), INF_ERR_FORMAT,
          "tokenizer.ggml.merges[1] = 'a zz': right part is not a token");
    BCASE("merge of unknown left", (sp->merges = merges_unknown_left, sp->n_merges = 1), INF_ERR_FORMAT,
          "tokenizer.ggml.merges[0] = 'qq b': left part");
    BCASE("merge without space", (sp->merges = merges_nospace, sp->n_merges = 1), INF_ERR_FORMAT,
          "tokenizer.ggml.merges[0] = 'ab': expected 'left right'");
    BCASE("unknown pre", sp->pre = "no-such-pre", INF_ERR_UNSUPPORTED, "'no-such-pre'");
    BCASE("add_bos without bos", (sp->extra = extra_add_bos_true, sp->n_extra = 1), INF_ERR_FORMAT,
          "add_bos_token is true, but tokenizer.ggml.bos_token_id is not set");
    assert(n <= (int)INF_ARRAY_LEN(cases));

    for (int i = 0; i < n; i++) {
        inf_vocab *v = (inf_vocab *)1;
        inf_status st = open_spec(&cases[i].spec, &v);
        CHECK_MSG(st == cases[i].want, "%s: status %d, want %d (%s)", cases[i].what, (int)st,
                  (int)cases[i].want, inf_last_error());
        CHECK_MSG(strstr(inf_last_error(), cases[i].msg) != NULL, "%s: message '%s' lacks '%s'",
                  cases[i].what, inf_last_error(), cases[i].msg);
        CHECK(v == NULL);
        vocab_free(v);
    }

    // Out-of-range special ids are ignored (the default stays): 0xFFFFFFFF, -1.
    vspec s = spm_spec();
    s.extra = extra_bos_big;
    s.n_extra = 1;
    inf_vocab *v = NULL;
    CHECK_EQ_INT(open_spec(&s, &v), INF_OK);
    if (v) {
        CHECK_EQ_INT(vocab_bos(v), 1);
        vocab_free(v);
    }
    s.extra = extra_eos_neg;
    CHECK_EQ_INT(open_spec(&s, &v), INF_OK);
    if (v) {
        CHECK_EQ_INT(vocab_eos(v), 2);
        vocab_free(v);
    }
    // A longer scores array than tokens is accepted (llama.cpp reads the first n).
    s = spm_spec();
    static const float more_scores[] = {0, 0, 0, -10, -10, -10, -1, -2, -3, -1, 0, 0, 5, 5};
    s.scores = more_scores;
    s.n_scores = 14;
    CHECK_EQ_INT(open_spec(&s, &v), INF_OK);
    vocab_free(v);
}

int main(void) {
    const char *dir = test_shared_dir();
    char probe[1024];
    snprintf(probe, sizeof probe, "%s/models/vocab/ggml-vocab-llama-spm.gguf", dir);
    FILE *fp = fopen(probe, "rb");
    if (!fp) {
        TEST_SKIP("shared vocabularies not found under %s", dir);
    }
    fclose(fp);
    inf_log_set_level(INF_LOG_ERROR);

    test_spm_handmade();
    test_spm_bytes();
    test_bpe_handmade();
    test_broken();
    test_pretok();
    test_rules(dir);
    test_golden(dir, "stories260K.json", "models/stories260K.gguf");
    test_golden(dir, "vocab-llama-spm.json", "models/vocab/ggml-vocab-llama-spm.gguf");
    test_vocab_vectors(dir);
    test_long(dir);
    return test_summary();
}
