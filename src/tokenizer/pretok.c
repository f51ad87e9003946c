// pretok.c: the BPE pre-tokenizer: the regexes chosen by tokenizer.ggml.pre (the same table llama.cpp
// keeps in llama-vocab.cpp; the patterns themselves come from each model's tokenizer.json), their PCRE2
// compilation, and the splitting of text into words. Also the GPT-2 byte <-> unicode mapping and UTF-8
// helpers the BPE path needs.
//
// Splitting rule (llama.cpp's unicode_regex_split): the regexes run in order; each one runs separately
// inside every piece the previous ones produced (lookarounds cannot see past a piece), and the text
// between matches is kept as a piece of its own. Empty matches only mark split points.
//
// Regex engine: PCRE2 with UTF and UCP, so \s, \p{L}, \p{N}, \p{P} follow Unicode. Where llama.cpp rewrote a
// pattern for std::regex (case-insensitive contractions spelled out, \p{Lu}-style classes emulated with
// lookaheads) we use its rewritten form, which PCRE2 runs with the same meaning llama.cpp gives it.
//
// Leaves out: pre-tokenizers llama.cpp implements by hand (kimi-k2, afmoe) or that skip the byte-level
// encoding (gemma4, sarvam-moe, whitespace, hybriddna), and a few rare families (jais-2, spark2_5, youtu,
// tiny_aya, granite-embed-multi): those names are reported as unsupported.
#include "tokenizer/tokenizer_int.h"

#include <string.h>

// ---------------------------------------------------------------------------------------------------------
// Patterns
// ---------------------------------------------------------------------------------------------------------
#define RX_CONTRACT "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RX_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RX_LLAMA3                                                                                          \
    RX_CONTRACT "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|" \
                "\\s+(?!\\S)|\\s+"
#define RX_QWEN2                                                                                           \
    RX_CONTRACT "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"     \
                "\\s+(?!\\S)|\\s+"
#define RX_QWEN35                                                                                          \
    RX_CONTRACT "|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|"     \
                "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RX_DEEPSEEK3                                                                                       \
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"     \
    " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"
#define RX_PORO " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{ff0c}\\x{3001}\\x{964}\\x{6d4}\\x{60c})]+"
// "Uppercase-ish then lowercase-ish letters", as llama.cpp emulates [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}] and
// [\p{Ll}\p{Lm}\p{Lo}\p{M}]: a letter other than a-z, then letters other than A-Z. llama.cpp spells them
// ((?=[\p{L}])([^a-z])); the single classes below mean the same and, unlike a repeated group, need no
// backtracking stack per character on long words.
#define RX_UPPER "[^\\P{L}a-z]"
#define RX_LOWER "[^\\P{L}A-Z]"
#define RX_TEKKEN                                                                                          \
    "[^\\r\\n\\p{L}\\p{N}]?" RX_UPPER "*" RX_LOWER "+|[^\\r\\n\\p{L}\\p{N}]?" RX_UPPER "+" RX_LOWER "*|"     \
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RX_GPT4O                                                                                           \
    "[^\\r\\n\\p{L}\\p{N}]?" RX_UPPER "*" RX_LOWER "+" RX_CONTRACT "?|[^\\r\\n\\p{L}\\p{N}]?" RX_UPPER "+"  \
    RX_LOWER "*" RX_CONTRACT "?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RX_CJK "[\\x{4e00}-\\x{9fa5}\\x{800}-\\x{4e00}\\x{ac00}-\\x{d7ff}]+"

#define NAMES(...) (const char *const[]){__VA_ARGS__, NULL}

// DeepSeek LLM's words of cased letters. Written as escapes on purpose: several of these code points (U+1F7D,
// U+1FBE, U+1FD3, U+1FDB, U+2126, U+212A) are folded by Unicode normalisation into others, and a
// normalised copy of the class no longer compiles (U+1F5F-U+03CE is an inverted range).
#define RX_DSLLM_WORD                                                                                       \
    "\\s?[A-Za-z\\x{b5}\\x{c0}-\\x{d6}\\x{d8}-\\x{f6}\\x{f8}-\\x{1ba}\\x{1bc}-\\x{1bf}\\x{1c4}-"            \
    "\\x{293}\\x{295}-\\x{2af}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37b}-\\x{37d}\\x{37f}\\x{386}"           \
    "\\x{388}-\\x{38a}\\x{38c}\\x{38e}-\\x{3a1}\\x{3a3}-\\x{3f5}\\x{3f7}-\\x{481}\\x{48a}-"                 \
    "\\x{52f}\\x{531}-\\x{556}\\x{10a0}-\\x{10c5}\\x{13a0}-\\x{13f5}\\x{13f8}-\\x{13fd}\\x{1c90}-"          \
    "\\x{1cba}\\x{1cbd}-\\x{1cbf}\\x{1d00}-\\x{1d2b}\\x{1d6b}-\\x{1d77}\\x{1d79}-\\x{1d9a}"                 \
    "\\x{1e00}-\\x{1f15}\\x{1f18}-\\x{1f1d}\\x{1f20}-\\x{1f45}\\x{1f48}-\\x{1f4d}\\x{1f50}-"                \
    "\\x{1f57}\\x{1f59}\\x{1f5b}\\x{1f5d}\\x{1f5f}-\\x{1f7d}\\x{1f80}-\\x{1fb4}\\x{1fb6}-"                  \
    "\\x{1fbc}\\x{1fbe}\\x{1fc2}-\\x{1fc4}\\x{1fc6}-\\x{1fcc}\\x{1fd0}-\\x{1fd3}\\x{1fd6}-"                 \
    "\\x{1fdb}\\x{1fe0}-\\x{1fec}\\x{1ff2}-\\x{1ff4}\\x{1ff6}-\\x{1ffc}\\x{2102}\\x{2107}"                  \
    "\\x{210a}-\\x{2113}\\x{2115}\\x{2119}-\\x{211d}\\x{2124}\\x{2126}\\x{2128}\\x{212a}-"                  \
    "\\x{212d}\\x{212f}-\\x{2134}\\x{2139}\\x{213c}-\\x{213f}\\x{2145}-\\x{2149}\\x{214e}"                  \
    "\\x{2183}\\x{2184}\\x{2c00}-\\x{2c7b}\\x{2c7e}-\\x{2ce4}\\x{2ceb}-\\x{2cee}\\x{2cf2}"                  \
    "\\x{2cf3}\\x{a640}-\\x{a66d}\\x{a680}-\\x{a69b}\\x{a722}-\\x{a76f}\\x{a771}-\\x{a787}"                 \
    "\\x{a78b}-\\x{a78e}\\x{ab70}-\\x{abbf}\\x{fb00}-\\x{fb06}\\x{fb13}-\\x{fb17}\\x{ff21}-"                \
    "\\x{ff3a}\\x{ff41}-\\x{ff5a}\\x{10400}-\\x{1044f}\\x{104b0}-\\x{104d3}\\x{104d8}-\\x{104fb}"           \
    "\\x{10c80}-\\x{10cb2}\\x{10cc0}-\\x{10cf2}\\x{118a0}-\\x{118df}\\x{1e900}-\\x{1e943}]+"
#define RX_DSLLM_PUNCT                                                                                     \
    "\\s?[!-/:-~\\x{ff01}-\\x{ff0f}\\x{ff1a}-\\x{ff5e}\\x{2018}-\\x{201f}\\x{3000}-\\x{3002}]+"
#define RX_KANA "[\\x{4e00}-\\x{9fa5}\\x{3040}-\\x{309f}\\x{30a0}-\\x{30ff}]+"
#define RX_SEED_CODER                                                                                      \
    RX_CONTRACT "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|"      \
                "\\s+(?!\\S)|\\s+"
#define RX_BAILINGMOE                                                                                      \
    "'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|"                     \
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"
#define RX_MINICPM5                                                                                        \
    RX_CONTRACT "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}+| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"     \
                "\\s+(?!\\S)|\\s+"
#define RX_UFAKZEKA                                                                                        \
    "[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RX_EXAONE_MOE                                                                                      \
    RX_CONTRACT "|[^\\r\\n\\p{L}\\p{N}]?(?:\\p{L}\\p{M}*(?: \\p{L}\\p{M}*)*)+|\\p{N}|"                     \
                " ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]?|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"

// clang-format off
static const vocab_pretok k_pretoks[] = {
    {.names = NAMES("default"),
     .regex = {"[\\p{P}\\$\\+<=>\\^~\\|]+", RX_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"},
     .clean_spaces = true},
    {.names = NAMES("llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
                    "jina-v5-nano"),
     .regex = {RX_LLAMA3}, .clean_spaces = true, .ignore_merges = true, .add_bos = true},
    {.names = NAMES("dbrx", "smaug-bpe"), .regex = {RX_LLAMA3}, .clean_spaces = true},
    {.names = NAMES("deepseek-llm"),
     .regex = {"[\r\n]", RX_DSLLM_WORD, RX_DSLLM_PUNCT, "\\s+$", RX_CJK, "\\p{N}+"}},
    {.names = NAMES("deepseek-coder"), .regex = {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RX_CJK, "\\p{N}"}},
    {.names = NAMES("deepseek-v3", "hunyuan-dense", "hy_v4", "joyai-llm"),
     .regex = {"\\p{N}{1,3}", RX_KANA, RX_DEEPSEEK3}},
    {.names = NAMES("falcon"),
     .regex = {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RX_GPT2, "[0-9][0-9][0-9]"}, .clean_spaces = true},
    {.names = NAMES("starcoder", "refact", "codeshell", "exaone", "minerva-7b", "mellum2"),
     .regex = {"\\p{N}", RX_GPT2}, .clean_spaces = true},
    {.names = NAMES("command-r", "smollm"), .regex = {"\\p{N}", RX_GPT2}},
    {.names = NAMES("gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0",
                    "mellum", "modern-bert", "jina-v1-en", "jina-v2-code", "roberta-bpe", "mpt", "olmo", "jais",
                    "exaone4"),
     .regex = {RX_GPT2}, .clean_spaces = true},
    {.names = NAMES("trillion", "granite-docling"), .regex = {RX_GPT2}},
    {.names = NAMES("qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "hunyuan", "solar-open", "grok-2"),
     .regex = {RX_QWEN2}},
    {.names = NAMES("stablelm2", "megrez"), .regex = {RX_QWEN2}, .clean_spaces = true},
    {.names = NAMES("qwen35"), .regex = {RX_QWEN35}},
    {.names = NAMES("poro-chat"), .regex = {RX_PORO}},
    {.names = NAMES("bloom", "gpt3-finnish"), .regex = {RX_PORO}, .clean_spaces = true},
    {.names = NAMES("glm4", "chatglm-bpe"), .regex = {RX_LLAMA3}, .clean_spaces = true, .no_bos = true},
    {.names = NAMES("viking"), .regex = {RX_PORO, "\\p{N}"}},
    {.names = NAMES("tekken"), .regex = {RX_TEKKEN}, .ignore_merges = true, .add_bos = true},
    {.names = NAMES("chameleon"),
     .regex = {"<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )", "\\p{N}",
               "[\\p{P}!-/:-@\\[-`{-~]", RX_GPT2},
     .add_bos = true},
    {.names = NAMES("gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"), .regex = {RX_GPT4O}},
    {.names = NAMES("seed-coder"), .regex = {RX_SEED_CODER}},
    {.names = NAMES("bailingmoe", "bailingmoe2", "llada-moe"), .regex = {RX_BAILINGMOE}},
    {.names = NAMES("superbpe"), .regex = {"\\p{N}+", "(?=(\\d{3})+(?!\\d))"}},
    {.names = NAMES("minicpm5"),
     .regex = {"\\p{N}{1,3}", RX_MINICPM5}, .clean_spaces = true, .ignore_merges = true},
    {.names = NAMES("ufakzeka"), .regex = {RX_UFAKZEKA}},
    {.names = NAMES("laguna"), .regex = {"[^\\n]+|[\\n]+", RX_QWEN2}},
    {.names = NAMES("exaone-moe"), .regex = {RX_EXAONE_MOE}, .clean_spaces = true},
};
// clang-format on

const vocab_pretok *vocab_pretok_find(const char *pre) {
    for (size_t i = 0; i < INF_ARRAY_LEN(k_pretoks); i++) {
        for (const char *const *n = k_pretoks[i].names; *n; n++) {
            if (strcmp(*n, pre) == 0) {
                return &k_pretoks[i];
            }
        }
    }
    return NULL;
}

inf_status vocab_pretok_compile(inf_vocab *v) {
    assert(v->pretok && v->n_re == 0);
    for (int i = 0; i < VOCAB_MAX_REGEX && v->pretok->regex[i]; i++) {
        int err = 0;
        PCRE2_SIZE at = 0;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)v->pretok->regex[i], PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_UCP, &err, &at, NULL);
        if (!re) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(err, msg, sizeof msg);
            return inf_fail(INF_ERR_INTERNAL, "tokenizer.ggml.pre '%s': regex %d does not compile at %zu: %s",
                            v->pre, i, (size_t)at, (const char *)msg);
        }
        // JIT is an optimisation only; the interpreter gives the same matches.
        int jrc = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
        if (jrc != 0) {
            inf_log(INF_LOG_DEBUG, "tokenizer: PCRE2 JIT unavailable for regex %d (%d)", i, jrc);
        }
        v->re[v->n_re++] = re;
    }
    return INF_OK;
}

// ---------------------------------------------------------------------------------------------------------
// UTF-8 and the GPT-2 byte mapping
// ---------------------------------------------------------------------------------------------------------
size_t vocab_utf8_put(uint32_t c, char *o) {
    if (c < 0x80) {
        o[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (char)(0xc0 | (c >> 6));
        o[1] = (char)(0x80 | (c & 0x3f));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (char)(0xe0 | (c >> 12));
        o[1] = (char)(0x80 | ((c >> 6) & 0x3f));
        o[2] = (char)(0x80 | (c & 0x3f));
        return 3;
    }
    assert(c <= 0x10ffff);
    o[0] = (char)(0xf0 | (c >> 18));
    o[1] = (char)(0x80 | ((c >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3f));
    o[3] = (char)(0x80 | (c & 0x3f));
    return 4;
}

// GPT-2's bytes_to_unicode: printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') map to themselves; the
// other 68 bytes map, in increasing order, to U+0100.. U+0143.
static bool byte_is_printable(unsigned b) {
    return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
}

uint32_t vocab_byte_to_cpt(uint8_t b) {
    if (byte_is_printable(b)) {
        return b;
    }
    if (b <= 0x20) {
        return 256u + b; // 0x00..0x20: 33 bytes
    }
    if (b >= 0x7f && b <= 0xa0) {
        return 256u + 33u + (b - 0x7fu); // 34 bytes
    }
    assert(b == 0xad);
    return 256u + 67u;
}

int vocab_cpt_to_byte(uint32_t c) {
    if (c < 256) {
        return byte_is_printable(c) ? (int)c : -1;
    }
    if (c < 256 + 33) {
        return (int)(c - 256);
    }
    if (c < 256 + 67) {
        return (int)(0x7f + (c - 256 - 33));
    }
    return c == 256 + 67 ? 0xad : -1;
}

// Length of the well-formed UTF-8 sequence at s (n bytes available), or 0 when it is not one
// (overlong forms, surrogates and code points past U+10FFFF included).
static size_t utf8_wellformed(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) {
        return 1;
    }
    size_t need;
    unsigned lo = 0x80, hi = 0xbf; // allowed range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
        need = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
    } else {
        return 0;
    }
    if (n < need || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < need; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
    }
    return need;
}

inf_status vocab_utf8_sanitize(const char *text, size_t len, char **out, size_t *out_len) {
    const unsigned char *s = (const unsigned char *)text;
    size_t bad = 0;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_wellformed(s + i, len - i);
        bad += k == 0;
        i += k ? k : 1;
    }
    *out = NULL;
    *out_len = len;
    if (bad == 0) {
        return INF_OK; // the caller uses text as is
    }
    char *o = inf_malloc(len + 2 * bad); // each bad byte (1) becomes U+FFFD (3)
    if (!o) {
        return inf_fail(INF_ERR_NOMEM, "tokenizer: out of memory");
    }
    size_t w = 0;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_wellformed(s + i, len - i);
        if (k) {
            memcpy(o + w, s + i, k);
            w += k;
            i += k;
        } else {
            w += vocab_utf8_put(0xfffd, o + w);
            i++;
        }
    }
    assert(w == len + 2 * bad);
    *out = o;
    *out_len = w;
    return INF_OK;
}

// ---------------------------------------------------------------------------------------------------------
// Splitting
// ---------------------------------------------------------------------------------------------------------
typedef struct {
    size_t *v;
    size_t n, cap, cap_max;
} offs_vec;

static inf_status offs_push(offs_vec *o, size_t x) {
    if (o->n == o->cap) {
        assert(o->cap < o->cap_max); // a piece is never empty, so there are at most len + 1 boundaries
        size_t cap = INF_MIN(INF_MAX(o->cap * 2, (size_t)64), o->cap_max);
        size_t *nv = realloc(o->v, cap * sizeof *nv);
        if (!nv) {
            return inf_fail(INF_ERR_NOMEM, "tokenizer: out of memory splitting text");
        }
        o->v = nv;
        o->cap = cap;
    }
    o->v[o->n++] = x;
    return INF_OK;
}

// Appends to out the boundaries of the pieces that regex re makes of text[a..b) (a itself excluded: it is
// already the last boundary in out).
static inf_status split_piece(const pcre2_code *re, const char *text, size_t a, size_t b, pcre2_match_data *md,
                              pcre2_match_context *mc, offs_vec *out, int ri) {
    const PCRE2_SPTR subj = (PCRE2_SPTR)(text + a);
    const size_t n = b - a;
    size_t pos = 0, last = 0;
    uint32_t opts = 0;
    inf_status st = INF_OK;
    while (pos <= n) {
        int rc = pcre2_match(re, subj, n, pos, opts | PCRE2_NO_UTF_CHECK, md, mc);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
            // Patterns that repeat groups keep a backtrack frame per iteration; on a very long word the JIT
            // stack runs out. The interpreter keeps its frames on the heap.
            rc = pcre2_match(re, subj, n, pos, opts | PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, mc);
        }
        if (rc == PCRE2_ERROR_NOMATCH) {
            if (opts == 0 || pos >= n) {
                break;
            }
            // An empty match was found at pos and no longer one starts there: move one character on.
            pos += INF_MIN(vocab_utf8_len((unsigned char)text[a + pos]), n - pos);
            opts = 0;
            continue;
        }
        if (rc < 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return inf_fail(INF_ERR_INVALID_ARG, "tokenizer: pre-tokenizer regex %d failed at byte %zu: %s", ri,
                            a + pos, (const char *)msg);
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        assert(ms >= pos && me >= ms && me <= n);
        if (ms > last && (st = offs_push(out, a + ms)) != INF_OK) { // the gap before the match
            return st;
        }
        if (me > ms && (st = offs_push(out, a + me)) != INF_OK) {
            return st;
        }
        if (me > last) {
            last = me;
        }
        // After an empty match, first try a non-empty one at the same place (as std::regex_iterator does).
        opts = me == ms ? PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED : 0;
        pos = me;
    }
    if (last < n) {
        st = offs_push(out, b);
    }
    return st;
}

inf_status vocab_pretok_split(const inf_vocab *v, const char *text, size_t len, size_t **offs, size_t *n_out) {
    *offs = NULL;
    *n_out = 0;
    offs_vec cur = {.cap_max = len + 1}, nxt = {.cap_max = len + 1};
    inf_status st = offs_push(&cur, 0);
    if (st == INF_OK && len > 0) {
        st = offs_push(&cur, len);
    }
    pcre2_match_data *md = pcre2_match_data_create(8, NULL);
    pcre2_match_context *mc = pcre2_match_context_create(NULL);
    // A larger JIT stack than the 32 KiB default, for long words; NULL (no JIT in this PCRE2) is fine: the
    // interpreter is used then.
    pcre2_jit_stack *js = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
    if (!md || !mc) {
        st = inf_fail(INF_ERR_NOMEM, "tokenizer: out of memory for the regex matcher");
    } else if (js) {
        pcre2_jit_stack_assign(mc, NULL, js);
    }
    for (int r = 0; st == INF_OK && r < v->n_re; r++) {
        nxt.n = 0;
        st = offs_push(&nxt, 0);
        for (size_t i = 0; st == INF_OK && i + 1 < cur.n; i++) {
            st = split_piece(v->re[r], text, cur.v[i], cur.v[i + 1], md, mc, &nxt, r);
        }
        offs_vec t = cur;
        cur = nxt;
        nxt = t;
    }
    pcre2_jit_stack_free(js);
    pcre2_match_context_free(mc);
    pcre2_match_data_free(md);
    free(nxt.v);
    if (st != INF_OK) {
        free(cur.v);
        return st;
    }
    assert(cur.n >= 1 && cur.v[cur.n - 1] == len);
    *offs = cur.v;
    *n_out = cur.n - 1;
    return INF_OK;
}
