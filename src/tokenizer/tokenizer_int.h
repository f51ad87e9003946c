// tokenizer_int.h: internals shared by the tokenizer sources (vocab.c, pretok.c, spm.c, bpe.c, tokenize.c,
// piece.c): the vocabulary layout, its hash tables, token attributes and the helpers each algorithm needs.
// Not part of any public contract; only the tokenizer module and its unit test include it.
// Leaves out: anything model-specific beyond what tokenizer.ggml.* says.
#ifndef INFERNO_TOKENIZER_INT_H
#define INFERNO_TOKENIZER_INT_H

#include "tokenizer/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

// Caps. Inputs above them are refused with a message rather than tried.
#define VOCAB_MAX_TOKENS (16 * 1024 * 1024)          // tokens in a vocabulary
#define VOCAB_MAX_TEXT_BYTES ((size_t)1 << 30)       // all token texts together
#define VOCAB_MAX_TOKEN_BYTES (64 * 1024)            // one token's text
#define VOCAB_MAX_INPUT_BYTES ((size_t)16 << 20)     // text handed to vocab_tokenize
#define VOCAB_MAX_REGEX 6                             // pre-tokenizer regexes applied in sequence

// Token attributes (bit set), after llama.cpp's llama_token_attr: the GGUF token_type chooses one of the
// type bits; loading may add CONTROL (end-of-turn style tokens), UNUSED, and the strip bits.
enum {
    VOCAB_ATTR_UNDEFINED = 0,
    VOCAB_ATTR_UNKNOWN = 1 << 0,
    VOCAB_ATTR_UNUSED = 1 << 1,
    VOCAB_ATTR_NORMAL = 1 << 2,
    VOCAB_ATTR_CONTROL = 1 << 3,
    VOCAB_ATTR_USER_DEFINED = 1 << 4,
    VOCAB_ATTR_BYTE = 1 << 5,
    VOCAB_ATTR_LSTRIP = 1 << 7, // special token eats the whitespace to its left in the text
    VOCAB_ATTR_RSTRIP = 1 << 8, // ... and to its right
    VOCAB_ATTR_EOG = 1 << 12,   // ends generation (not a llama.cpp attribute: its EOG set, folded in)
};

// GGUF tokenizer.ggml.token_type values.
enum {
    VOCAB_TYPE_UNDEFINED = 0,
    VOCAB_TYPE_NORMAL = 1,
    VOCAB_TYPE_UNKNOWN = 2,
    VOCAB_TYPE_CONTROL = 3,
    VOCAB_TYPE_USER_DEFINED = 4,
    VOCAB_TYPE_UNUSED = 5,
    VOCAB_TYPE_BYTE = 6,
};

typedef struct {
    uint32_t off; // text at v->pool + off, NUL-terminated (a text with an embedded NUL is cut there by C
                  // string readers; the tokenizer itself always uses len)
    uint32_t len;
    float score;
    uint32_t attr;
} vocab_token;

// A BPE merge: (left, right) -> rank, and the token the pair becomes (-1 when the concatenation is not
// itself a token; llama.cpp tolerates that and so do we: the merged piece falls back to bytes).
typedef struct {
    int32_t left, right; // -1 marks an empty slot
    int32_t rank;
    int32_t result;
} vocab_merge;

// How tokenizer.ggml.pre shapes BPE tokenization. Regexes run in order; each splits every piece left by
// the previous one, and the text between matches is kept as pieces of its own (llama.cpp's rule).
typedef struct {
    const char *const *names; // tokenizer.ggml.pre values that select this entry, NULL-terminated
    const char *regex[VOCAB_MAX_REGEX];
    bool clean_spaces;        // detokenize drops the space before . , ! ? and some contractions
    bool ignore_merges;       // a word that is already a token is emitted whole
    bool add_bos;             // default for add_bos_token
    bool no_bos;              // the family has no BOS (chatglm)
} vocab_pretok;

struct inf_vocab {
    inf_vocab_kind kind;
    char *model; // tokenizer.ggml.model
    char *pre;   // tokenizer.ggml.pre, or "default"

    int n_tokens;
    vocab_token *tokens; // (n_tokens)
    char *pool;          // token texts, each NUL-terminated
    int max_token_len;

    int32_t *tok_hash; // open addressing over token texts, -1 empty; (tok_hash_mask + 1)
    uint32_t tok_hash_mask;

    vocab_merge *merges; // open addressing over (left, right); (merge_mask + 1), NULL for SPM
    uint32_t merge_mask;
    int n_merges;

    // Special ids, -1 when absent.
    int bos, eos, eot, eom, unk, sep, pad, mask;
    int fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;

    bool add_bos, add_eos;
    bool add_space_prefix;   // SPM: "▁" before the text (and after each special token)
    bool clean_spaces;       // detokenize post-pass (BPE families)
    bool ignore_merges;

    // Tokens matched in raw text before tokenizing: control, user-defined and unknown, longest first.
    int32_t *special; // (n_special)
    int n_special;

    // Trie over the special texts, to find in one pass which of them occur in a text at all.
    // Node i: first child, next sibling, the byte leading to it, the special[] index ending there (-1).
    struct vocab_trie_node {
        int32_t child, sibling, special_index;
        uint8_t byte;
    } *trie;
    int32_t trie_root[256]; // node of each first byte, -1 when no special text starts with it
    int n_trie;

    // Byte fallbacks. SPM: the <0xNN> token (or the 1-byte token, or -1). BPE: the token of the byte's
    // GPT-2 unicode character (-1 if the vocabulary lacks it).
    int32_t byte_token[256];

    // BPE pre-tokenizer: the table entry and its compiled regexes.
    const vocab_pretok *pretok;
    pcre2_code *re[VOCAB_MAX_REGEX];
    int n_re;
};

// Growable token list with a hard cap (the caller derives the cap from the input size, so running into
// it is a broken invariant, not bad input).
typedef struct {
    int32_t *ids;
    size_t n, cap_alloc, cap_max;
} vocab_ids;

inf_status vocab_ids_push(vocab_ids *o, int32_t id);

// ---- vocab.c ----
uint64_t vocab_hash_bytes(const char *s, size_t n);
// Token whose text is exactly s[0..n), or -1.
int32_t vocab_find(const inf_vocab *v, const char *s, size_t n);
static inline const char *vocab_text(const inf_vocab *v, int32_t id) { return v->pool + v->tokens[id].off; }
// Merge of (left, right), or NULL.
const vocab_merge *vocab_find_merge(const inf_vocab *v, int32_t left, int32_t right);

// ---- pretok.c ----
// Entry of the table for a tokenizer.ggml.pre value (NULL when unknown).
const vocab_pretok *vocab_pretok_find(const char *pre);
inf_status vocab_pretok_compile(inf_vocab *v);
// Splits text[0..len) (valid UTF-8) into words: *offs gets n+1 boundaries (offs[0] = 0, offs[n] = len).
// The caller frees *offs.
inf_status vocab_pretok_split(const inf_vocab *v, const char *text, size_t len, size_t **offs, size_t *n);
// Copies text to valid UTF-8, each byte that does not start a well-formed sequence replaced by U+FFFD
// (as llama.cpp's decoder does). *out is allocated.
inf_status vocab_utf8_sanitize(const char *text, size_t len, char **out, size_t *out_len);

// GPT-2 byte <-> unicode mapping.
uint32_t vocab_byte_to_cpt(uint8_t b);
int vocab_cpt_to_byte(uint32_t cpt); // -1 when cpt is not the image of a byte
// UTF-8 length of the sequence starting with byte c, by its high bits (1 for stray continuation bytes).
static inline size_t vocab_utf8_len(unsigned char c) {
    static const unsigned char lut[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lut[c >> 4];
}
size_t vocab_utf8_put(uint32_t cpt, char *out); // writes 1..4 bytes

// ---- spm.c / bpe.c ----
// Tokenize one raw-text fragment (already escaped for SPM) and append to out.
inf_status vocab_spm_encode(const inf_vocab *v, const char *text, size_t len, vocab_ids *out);
inf_status vocab_bpe_encode(const inf_vocab *v, const char *text, size_t len, vocab_ids *out);

#endif // INFERNO_TOKENIZER_INT_H
