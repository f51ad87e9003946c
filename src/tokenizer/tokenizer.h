// tokenizer.h: vocabularies read from GGUF metadata (tokenizer.ggml.*) and the tokenizers that use them:
// SentencePiece ("llama": score-driven bigram merges with byte fallback) and byte-level BPE ("gpt2":
// merges ranked by tokenizer.ggml.merges, pre-tokenizer regexes chosen by tokenizer.ggml.pre).
// Special (control / user-defined) tokens are matched in the text first when parse_special is set.
// Leaves out: chat templates (server), WordPiece/Unigram vocabularies (reported as unsupported).
#ifndef INFERNO_TOKENIZER_H
#define INFERNO_TOKENIZER_H

#include "gguf/gguf.h"

typedef struct inf_vocab inf_vocab;

typedef enum { INF_VOCAB_SPM, INF_VOCAB_BPE } inf_vocab_kind;

// Reads the vocabulary of f. Errors name the key ("tokenizer.ggml.tokens: expected array of strings").
// The vocab copies what it needs; f may be closed afterwards.
inf_status vocab_load(const gguf_file *f, inf_vocab **out);
void vocab_free(inf_vocab *v);

inf_vocab_kind vocab_kind(const inf_vocab *v);
const char *vocab_model_name(const inf_vocab *v); // "llama", "gpt2"
const char *vocab_pre_name(const inf_vocab *v);   // tokenizer.ggml.pre or "default"
int vocab_n_tokens(const inf_vocab *v);
int vocab_bos(const inf_vocab *v); // -1 when absent
int vocab_eos(const inf_vocab *v);
bool vocab_add_bos(const inf_vocab *v);
bool vocab_add_eos(const inf_vocab *v);
bool vocab_is_eog(const inf_vocab *v, inf_token t);
bool vocab_is_control(const inf_vocab *v, inf_token t);
const char *vocab_token_text(const inf_vocab *v, inf_token t); // NULL when out of range
// Additions beyond the first contract:
int vocab_eot(const inf_vocab *v);                            // end-of-turn id, -1 when absent
int vocab_unk(const inf_vocab *v);                            // unknown-token id, -1 when absent
int vocab_n_merges(const inf_vocab *v);                       // BPE merges (0 for SentencePiece)
float vocab_token_score(const inf_vocab *v, inf_token t);     // SentencePiece score, 0 when out of range

// Same contracts as inf_tokenize / inf_token_to_piece / inf_detokenize in inferno.h.
inf_status vocab_tokenize(const inf_vocab *v, const char *text, size_t len, bool add_special,
                          bool parse_special, inf_token *out, int cap, int *n_out);
int vocab_token_to_piece(const inf_vocab *v, inf_token t, bool render_special, char *buf, int cap);
int vocab_detokenize(const inf_vocab *v, const inf_token *tokens, int n, bool remove_leading_space,
                     bool render_special, char *buf, int cap);

#endif // INFERNO_TOKENIZER_H
