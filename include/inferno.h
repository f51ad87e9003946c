// inferno.h: the public C API of the Inferno inference engine.
//
// Everything a program needs to load a GGUF model, tokenize, run forward passes over batches of tokens
// (one or many sequences), sample, and read the layered configuration. The CLI and the server use this
// header only; internals live in src/*/ and are not part of the API.
//
// Conventions
// - Opaque handles come in init/free pairs; free(NULL) is a no-op.
// - Functions that can fail return inf_status. On failure, inf_last_error() holds a one-line message
//   naming the problem (file, key, tensor, field); it is per thread and valid until the next failing
//   call on that thread.
// - Borrowed pointers (getters returning const char * or const float *) are valid for as long as the
//   handle they came from, unless the getter's comment says otherwise.
#ifndef INFERNO_H
#define INFERNO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define INFERNO_VERSION "0.1.0"

// ---------------------------------------------------------------------------------------------------------
// Status and errors
// ---------------------------------------------------------------------------------------------------------
typedef enum {
    INF_OK = 0,
    INF_ERR_INVALID_ARG,  // a caller passed a bad value (flag, parameter, request field)
    INF_ERR_IO,           // a file could not be opened, read, mapped or written
    INF_ERR_FORMAT,       // a file is malformed (GGUF, TOML, ...)
    INF_ERR_UNSUPPORTED,  // well-formed but not something this build can run
    INF_ERR_NOMEM,        // an allocation or a size cap failed
    INF_ERR_CONTEXT_FULL, // the session's context has no room for the batch
    INF_ERR_CONFIG,       // a configuration value has the wrong type or an impossible value
    INF_ERR_INTERNAL,     // a backend failed in a way that is not the caller's fault
    INF_ERR_BUSY,         // a queue or pool is full; try again later
    INF_ERR_CLOSED,       // the engine (or server) is shutting down and takes no more work
} inf_status;

// Static English name of a status ("ok", "invalid argument", ...). Never NULL.
const char *inf_status_str(inf_status st);

// Message of the last failing call on this thread ("" if none).
const char *inf_last_error(void);

// ---------------------------------------------------------------------------------------------------------
// Logging: the library writes its load log and warnings through this hook (default: stderr, level >= INFO).
// ---------------------------------------------------------------------------------------------------------
typedef enum { INF_LOG_DEBUG = 0, INF_LOG_INFO, INF_LOG_WARN, INF_LOG_ERROR, INF_LOG_NONE } inf_log_level;
typedef void (*inf_log_fn)(inf_log_level level, const char *msg, void *user);
void inf_log_set_level(inf_log_level min_level);
void inf_log_set_callback(inf_log_fn fn, void *user); // fn NULL restores the stderr default

// ---------------------------------------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------------------------------------
typedef struct inf_model inf_model;

typedef struct {
    int n_threads; // threads for the CPU backend (0 = all online cores)
    bool verbose;  // print the load log at INFO level (otherwise DEBUG)
    // GPU placement (CUDA builds). The last n_gpu_layers layers run on the GPU, with the final norm and the
    // output head; the first ones and the token embedding on the CPU (one hand-over of the hidden state per
    // step). 0 = CPU only; >= n_layer (999) = all; -1 = auto: as many as fit in free VRAM, planned from
    // exact buffer sizes with room for a session of min(n_ctx_train, 4096) tokens and a batch of 512.
    // When CUDA is missing or fails, the load log says why and the model runs on the CPU.
    bool gpu_enabled;  // false: CPU only, whatever n_gpu_layers says
    int n_gpu_layers;
} inf_model_params;

// n_threads 0, verbose false, gpu_enabled true, n_gpu_layers 0 (CPU unless the caller asks).
inf_model_params inf_model_default_params(void);

// Opens and maps the GGUF at path, checks it, binds the tensors of its architecture.
inf_status inf_model_load(const char *path, const inf_model_params *params, inf_model **out);
void inf_model_free(inf_model *model);

typedef struct {
    const char *arch;          // general.architecture
    const char *name;          // general.name or ""
    const char *tokenizer;     // "llama" (SentencePiece), "gpt2" (BPE), ...
    const char *tokenizer_pre; // tokenizer.ggml.pre or "default"
    uint32_t gguf_version;
    int n_vocab, n_ctx_train, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_rot;
    float rope_freq_base, rope_freq_scale, rms_eps;
    bool tied_output;       // output head shares token_embd
    uint64_t n_params;      // elements of all tensors
    uint64_t file_size;     // bytes
    uint64_t weights_bytes; // bytes of tensor data
    const char *file_type;  // dominant tensor type name, e.g. "Q4_K"
    int bos, eos;           // -1 when absent
    bool add_bos;
    int n_gpu_layers;       // layers placed on the GPU (0: CPU only)
    const char *gpu;        // "CUDA0: <name> (cc X.Y, N MiB)", or why the GPU is not used ("" when not asked)
} inf_model_info;

// Fills *info with borrowed strings valid while the model lives.
void inf_model_get_info(const inf_model *model, inf_model_info *info);

// Tensor-type histogram: for i in [0, n) the name of a type and how many tensors use it.
int inf_model_type_histogram(const inf_model *model, const char **names, int *counts, int cap);

// Metadata access for tools (`inferno info`): the i-th key and its value rendered as text
// (arrays are summarised as "[type x N]"). Returns false when i is out of range.
bool inf_model_meta_at(const inf_model *model, int i, const char **key, char *value, size_t value_cap);

// Bytes a session with this context would allocate (KV cache + compute scratch + logits).
uint64_t inf_model_session_bytes(const inf_model *model, int n_ctx, int n_batch, int n_seq);

// ---------------------------------------------------------------------------------------------------------
// Tokenizer
// ---------------------------------------------------------------------------------------------------------
typedef int32_t inf_token;

// Tokenizes text[0..len). add_special adds BOS (and EOS where the vocabulary asks) per the model's rules;
// parse_special turns control-token text such as "<s>" into its id instead of plain text.
// Writes at most cap ids; *n_out gets the full count (call again with a larger buffer if *n_out > cap).
inf_status inf_tokenize(const inf_model *model, const char *text, size_t len, bool add_special,
                        bool parse_special, inf_token *out, int cap, int *n_out);

// Appends the bytes of token's piece to buf (at most cap bytes, not NUL-terminated) and returns the
// number of bytes the piece has (may exceed cap). Control tokens render as "" unless render_special.
// The SentencePiece leading space of the first piece is kept; callers that detokenize a whole sequence
// should use inf_detokenize, which applies the leading-space rule.
int inf_token_to_piece(const inf_model *model, inf_token token, bool render_special, char *buf, int cap);

// Turns ids back into text; remove_leading_space drops the space SentencePiece adds before the first word.
// Returns bytes written (NUL-terminated if room), or the needed size + 1 negated if cap is too small.
int inf_detokenize(const inf_model *model, const inf_token *tokens, int n, bool remove_leading_space,
                   bool render_special, char *buf, int cap);

bool inf_token_is_eog(const inf_model *model, inf_token token); // EOS, EOT, end-of-generation tokens
int inf_token_bos(const inf_model *model);                         // -1 if none
int inf_token_eos(const inf_model *model);                         // -1 if none
const char *inf_token_text(const inf_model *model, inf_token token); // raw vocab string, NULL if invalid

// ---------------------------------------------------------------------------------------------------------
// Session: a KV cache plus scratch for forward passes over batches of tokens.
// ---------------------------------------------------------------------------------------------------------
typedef struct inf_session inf_session;

typedef struct {
    int n_ctx;     // KV cells shared by all sequences (0 = model's training context)
    int n_batch;   // most tokens per forward pass (the caller may pass more; they are split)
    int n_seq_max; // most concurrent sequences (seq ids are 0..n_seq_max-1)
    int n_threads; // 0 = the model's
} inf_session_params;

inf_session_params inf_session_default_params(void);
inf_status inf_session_init(inf_model *model, const inf_session_params *params, inf_session **out);
void inf_session_free(inf_session *s);

// A batch of tokens, each at its own position in its own sequence. want_logits[i] nonzero asks for the
// logits of token i (NULL: only the last token). Tokens of one sequence must be in increasing position
// order and follow that sequence's cached positions.
typedef struct {
    int n_tokens;
    const inf_token *tokens;
    const int32_t *pos;
    const int32_t *seq_id;
    const int8_t *want_logits;
} inf_batch;

// Runs the forward pass over at most n_batch tokens (callers split longer prompts). INF_ERR_CONTEXT_FULL
// (with nothing changed) when the KV cache lacks room; INF_ERR_INVALID_ARG for a bad batch.
inf_status inf_session_decode(inf_session *s, const inf_batch *batch);

// Logits of token i of the last batch (n_vocab floats), or NULL if that token did not ask for them;
// i = -1 means the last token that asked. Valid until the next decode.
const float *inf_session_logits(const inf_session *s, int i);

int inf_session_n_ctx(const inf_session *s);
int inf_session_seq_len(const inf_session *s, int seq_id); // positions cached for the sequence
int inf_session_cells_used(const inf_session *s);
void inf_session_seq_clear(inf_session *s, int seq_id); // forget a sequence; its cells become free
// Drops the positions >= pos of a sequence (to rewind after a partial match, say).
void inf_session_seq_truncate(inf_session *s, int seq_id, int pos);

// Embeddings: when on, decode also keeps the final-norm hidden state (n_embd floats) of every token that asks
// for logits; inf_session_embedding returns it (same indexing and lifetime as inf_session_logits).
void inf_session_set_embeddings(inf_session *s, bool on);
const float *inf_session_embedding(const inf_session *s, int i);
int inf_model_n_embd(const inf_model *model);

// Perplexity exactly as llama.cpp's perplexity tool computes it: the text is tokenized with BOS, cut into
// n_tokens / n_ctx chunks of n_ctx tokens; each chunk starts with BOS (replacing its first token), goes
// through a fresh cache in batches of n_batch, and only the second half is scored (n_ctx/2 - 1 predictions
// per chunk). chunk_fn (may be NULL) is called after each chunk with the running perplexity.
typedef struct {
    double ppl;        // exp(mean negative log-likelihood)
    double ppl_stderr; // llama.cpp's "+/-" figure
    int n_chunks;
    int n_scored;      // predictions scored
    int n_tokens;      // tokens in the whole text
    double seconds;
} inf_perplexity_result;
typedef void (*inf_perplexity_chunk_fn)(int chunk, int n_chunks, double running_ppl, void *user);
inf_status inf_perplexity(inf_model *model, const char *text, size_t len, int n_ctx, int n_batch, int n_threads,
                          inf_perplexity_chunk_fn chunk_fn, void *user, inf_perplexity_result *out);

// ---------------------------------------------------------------------------------------------------------
// Sampler: penalties, then top-k, top-p, min-p, temperature; greedy when temperature <= 0.
// ---------------------------------------------------------------------------------------------------------
typedef struct inf_sampler inf_sampler;

typedef struct {
    float temperature;       // <= 0: greedy (argmax)
    int top_k;               // <= 0: off
    float top_p;             // >= 1: off
    float min_p;             // <= 0: off
    float repeat_penalty;    // 1: off (llama.cpp semantics: divide positive logits, multiply negative)
    int repeat_last_n;       // window for all penalties (0: off, -1: whole history)
    float frequency_penalty; // 0: off
    float presence_penalty;  // 0: off
    uint64_t seed;           // same seed, same choices
} inf_sampler_params;

inf_sampler_params inf_sampler_default_params(void);
inf_status inf_sampler_init(const inf_sampler_params *params, int n_vocab, inf_sampler **out);
void inf_sampler_free(inf_sampler *smp);
// Chooses a token from logits (n_vocab floats; not modified). Tokens for which banned[i] is nonzero are
// never chosen (banned may be NULL). Returns -1 when every token is banned or NaN.
inf_token inf_sampler_sample(inf_sampler *smp, const float *logits, const uint8_t *banned);
void inf_sampler_accept(inf_sampler *smp, inf_token token); // record a token in the penalty history
void inf_sampler_reset(inf_sampler *smp);                    // clear history; the RNG restarts from seed

// Stop strings: feed generated text piece by piece; the matcher holds back text that could be the start
// of a stop string and says when one has matched.
typedef struct inf_stop_matcher inf_stop_matcher;
inf_status inf_stop_matcher_init(const char *const *stops, int n_stops, inf_stop_matcher **out);
void inf_stop_matcher_free(inf_stop_matcher *m);
// Appends piece; *emit/*n_emit get the text that is now safe to show (borrowed, valid until the next call).
// Returns true when a stop string matched (the stop string itself and what follows are not emitted).
bool inf_stop_matcher_feed(inf_stop_matcher *m, const char *piece, size_t len, const char **emit,
                           size_t *n_emit);
// At the end of generation: the text still held back.
void inf_stop_matcher_flush(inf_stop_matcher *m, const char **emit, size_t *n_emit);

// ---------------------------------------------------------------------------------------------------------
// Engine: one model serving many concurrent requests. A scheduler thread owns a session and builds every
// forward step from all running sequences (each one's next token plus a chunk of pending prompt), so
// concurrent requests share the weight reads (continuous batching).
//
// Context: the pool has n_ctx KV cells; one sequence holds at most min(n_ctx, the model's training context)
// positions (its prompt plus what it generates; longer prompts are refused, and reaching the limit ends a
// generation with INF_FINISH_LENGTH). A request leaves the queue when a sequence slot is free and the
// unreserved free cells cover its whole prompt (FIFO: the head waits, the others behind it too). A running
// sequence that finds no cell for its next token is finished with INF_FINISH_LENGTH; when several lack
// cells, the one holding the most goes first (its cells may let the others go on). Finished, cancelled and
// timed-out sequences free their cells before the next step.
// ---------------------------------------------------------------------------------------------------------
typedef struct inf_engine inf_engine;

typedef struct {
    int n_ctx;         // KV cells shared by all sequences (0 = n_seq_max x the model's training context, capped
                       // at the larger of 8192 and the training context)
    int n_batch;       // most tokens per forward step (prompt chunks are cut to fit; may be < n_seq_max, then
                       // the running sequences take turns)
    int n_seq_max;     // most sequences running at once (1..4096)
    int max_queue;     // most requests waiting to start (0..65536): submit returns INF_ERR_BUSY when running +
                       // queued requests already number n_seq_max + max_queue
    int n_threads;     // CPU threads (0 = the model's)
} inf_engine_params;

// n_ctx 0, n_batch 512, n_seq_max 4, max_queue 64, n_threads 0.
inf_engine_params inf_engine_default_params(void);

typedef enum {
    INF_FINISH_STOP,      // end-of-generation token or stop string
    INF_FINISH_LENGTH,    // max_tokens or the context limit
    INF_FINISH_CANCELLED, // inf_engine_cancel, or the engine shutting down
    INF_FINISH_TIMEOUT,   // the request's timeout passed
    INF_FINISH_ERROR,     // see result.error
} inf_finish_reason;

const char *inf_finish_reason_str(inf_finish_reason r); // "stop", "length", "cancelled", "timeout", "error"

typedef struct {
    inf_finish_reason finish;
    int n_prompt;          // prompt tokens
    int n_generated;       // tokens generated
    double queue_seconds;  // submit to first scheduled step
    double ttft_seconds;   // submit to first generated token (or to the embedding)
    double total_seconds;  // submit to done
    const float *embedding; // embeddings requests: mean-pooled, L2-normalized, n_embd floats (valid in on_done)
    int n_embd;
    char error[256];
} inf_request_result;

typedef struct {
    const inf_token *prompt; // copied at submit
    int n_prompt;
    inf_sampler_params sampling;
    int max_tokens;          // -1: until the context limit
    const char *const *stops; // copied at submit (at most 16)
    int n_stops;
    bool ignore_eos;
    bool embeddings;         // run the prompt and return its pooled embedding instead of generating
    bool logprobs;           // report each token's log-probability (a pass over the vocabulary per token;
                             // off: on_token gets NaN); implied by n_top_logprobs > 0
    int n_top_logprobs;      // 0..20: alternatives reported with each token's log-probability
    double timeout_seconds;  // 0 = none; counted from submit (queue time included), checked before every step
    // Callbacks run on the scheduler thread and must not block. on_token gets each token's text as it becomes
    // safe to show (stop strings held back; may be empty), its log-probability and the top alternatives
    // (n_top entries). on_done is called exactly once, last; after it the request is forgotten.
    // Details: log-probabilities come from the softmax of the raw logits (temperature 1, no penalties); the
    // top alternatives are best first and may include the chosen token. The token that completes a stop
    // string is reported with the text before the stop string. End-of-generation tokens are not reported.
    // When generation ends other than by a stop string, cancellation or an error, text still held back (a
    // stop-string prefix that never completed, an unfinished UTF-8 character) comes in one last on_token
    // call with token -1, logprob 0 and no alternatives. text, top_ids and top_logprobs are borrowed for
    // the call; the result (and its embedding) for on_done. Callbacks may call submit, cancel and
    // get_stats, never inf_engine_free. Embeddings requests finish with INF_FINISH_STOP.
    void (*on_token)(void *user, inf_token token, const char *text, size_t len, float logprob,
                     const inf_token *top_ids, const float *top_logprobs, int n_top);
    void (*on_done)(void *user, const inf_request_result *result);
    void *user;
} inf_request;

inf_status inf_engine_init(inf_model *model, const inf_engine_params *params, inf_engine **out);
// Cancels what is running or queued (each gets on_done with INF_FINISH_CANCELLED) and stops the thread.
void inf_engine_free(inf_engine *e);
// Queues a request; *id (may be NULL) gets its id, never 0. With nothing queued, fails with INF_ERR_BUSY
// when the queue is full, INF_ERR_CLOSED while the engine shuts down, INF_ERR_CONTEXT_FULL for a prompt
// longer than a sequence's context, INF_ERR_INVALID_ARG for another bad request (too many stops, ...).
inf_status inf_engine_submit(inf_engine *e, const inf_request *req, uint64_t *id);
// Cancels a request (queued or running); its cells are freed at once. No-op for unknown or finished ids.
// The scheduler acts on it before its next step: tokens of a step already in progress may still reach
// on_token, and a request that finishes in that step keeps its own finish reason.
void inf_engine_cancel(inf_engine *e, uint64_t id);

typedef struct {
    int running, queued;
    int cells_used, cells_total;
    uint64_t prompt_tokens, generated_tokens, steps, requests_done; // totals since init
    // Scheduler thread time since init, in seconds, by part. forward: the forward passes; sample: choosing
    // tokens (the sampler, and log-probabilities where asked); output: detokenizing, stop strings and the
    // on_token/on_done callbacks; other: the rest of the time it was awake (admission, sweeps, batch
    // building, cell accounting, locking). (sample + output + other) / steps is the per-step overhead.
    double forward_seconds, sample_seconds, output_seconds, other_seconds;
} inf_engine_stats;
// A snapshot taken at the start and end of each step (and at each submit for queued).
void inf_engine_get_stats(inf_engine *e, inf_engine_stats *st);
const inf_model *inf_engine_model(const inf_engine *e);

// ---------------------------------------------------------------------------------------------------------
// Chat templates: the model's tokenizer.chat_template is recognised as one of the common families and
// rendered by Inferno's own code (no Jinja interpreter).
// ---------------------------------------------------------------------------------------------------------
typedef struct {
    const char *role;    // "system", "user", "assistant"
    const char *content;
} inf_chat_message;

// Renders messages into a prompt. template_name NULL: detect from the model's template (ChatML when the model
// has none); otherwise one of "chatml", "llama2", "llama3", "zephyr", "mistral", "mistral-v1", "mistral-v3",
// "mistral-v3-tekken", "mistral-v7", "mistral-v7-tekken", "phi3", "gemma" (another name: INF_ERR_INVALID_ARG).
// add_assistant_prefix ends the prompt with the assistant turn's opening. *out is malloc'd (caller frees).
// INF_ERR_UNSUPPORTED names a model template it cannot recognise.
inf_status inf_chat_render(const inf_model *model, const char *template_name, const inf_chat_message *msgs, int n,
                           bool add_assistant_prefix, char **out);
// The family detected for the model ("chatml", ...), or NULL when its template is not recognised.
const char *inf_chat_template_detect(const inf_model *model);
// The text that ends an assistant turn in that template (template_name NULL: the detected one), e.g.
// "<|im_end|>" for ChatML; the EOS token's text for families that end turns with EOS. Use it as a stop
// string: models that lack it as a special token would otherwise print it. Static or model-owned string.
const char *inf_chat_end_marker(const inf_model *model, const char *template_name);

// ---------------------------------------------------------------------------------------------------------
// Configuration: defaults < config files < INFERNO_* environment < flags. Each value remembers its source.
//
// Keys (type, default, environment variable):
//   models_dir                  string, "~/.local/share/inferno/models" ("~" = $HOME)  INFERNO_MODELS_DIR
//   backend_config.gpu_enabled  bool, true                                             INFERNO_GPU_ENABLED
//   backend_config.gpu_layers   0..999 (999 = all) or "auto"; "auto"                   INFERNO_GPU_LAYERS
//   backend_config.context_size 1..1048576, 2048                                       INFERNO_CONTEXT_SIZE
//   backend_config.batch_size   1..65536, 512                                          INFERNO_BATCH_SIZE
//   backend_config.threads      0..4096 (0 = all cores), 0                             INFERNO_THREADS
//   server.host                 string, "127.0.0.1"                                    INFERNO_HOST
//   server.port                 1..65535, 8080                                         INFERNO_PORT
// In files a key "a.b" is key b of table [a]. From text (environment, flags) a bool is true/false/1/0/
// yes/no and gpu_layers takes "auto" or an integer.
// ---------------------------------------------------------------------------------------------------------
typedef struct inf_config inf_config;

// A fresh configuration with the defaults (context_size 2048, batch_size 512, ...).
inf_status inf_config_init(inf_config **out);
void inf_config_free(inf_config *cfg);

// Layers the standard files in order: $XDG_CONFIG_HOME/inferno/config.toml (or ~/.config/inferno/
// config.toml), ~/.inferno.toml, ./.inferno.toml; missing files are skipped. Unknown keys warn with
// file:line through the log; a wrong type or bad value fails with file:line in the message. A file that
// fails changes nothing (files before it stay applied).
inf_status inf_config_load_standard_files(inf_config *cfg);
inf_status inf_config_load_file(inf_config *cfg, const char *path); // one file, must exist
// INFERNO_* variables; empty ones are ignored. A bad value fails naming the variable and changes nothing.
inf_status inf_config_load_env(inf_config *cfg);
// Sets key ("backend_config.context_size", "models_dir", ...) from a string, as a flag would;
// source names where it came from ("--ctx-size") and starts the error message of a bad value.
inf_status inf_config_set(inf_config *cfg, const char *key, const char *value, const char *source);

// Typed getters; the key must be a known key (asserts otherwise).
// inf_config_get_int returns -1 for backend_config.gpu_layers = "auto". get_float reads integer keys
// as doubles (there are no float keys yet). get_str works for every key: strings as they are (models_dir
// with "~" expanded), other values as text ("2048", "auto", "true").
int64_t inf_config_get_int(const inf_config *cfg, const char *key);
double inf_config_get_float(const inf_config *cfg, const char *key);
bool inf_config_get_bool(const inf_config *cfg, const char *key);
const char *inf_config_get_str(const inf_config *cfg, const char *key); // borrowed
// "default", "<path>:<line>" (a path under $HOME shown as "~/..."), "env INFERNO_THREADS", or the
// source given to inf_config_set. Borrowed, valid until the key is set again or cfg is freed.
const char *inf_config_source(const inf_config *cfg, const char *key);

// Prints every key, its value and its source, one per line, as TOML ("key = value  # source").
void inf_config_print(const inf_config *cfg, FILE *out);

// The i-th standard file in load order, as inf_config_load_standard_files would read it now (a file is
// left out when $HOME is unknown). Writes it to buf like snprintf and returns its length; 0 past the last.
size_t inf_config_standard_path(int i, char *buf, size_t cap);

// ---------------------------------------------------------------------------------------------------------
// Misc
// ---------------------------------------------------------------------------------------------------------
double inf_time_now(void); // monotonic seconds
const char *inf_system_info(void); // CPU features and build options, one line

// ---------------------------------------------------------------------------------------------------------
// Model files: quantize an F32/F16/BF16 GGUF, or synthesize a random-weight llama model (benchmarks).
// Both write "<out>.tmp" and rename it onto out at the end, so a failure never leaves a partial file.
// Type names (case-insensitive, as llama-quantize takes them): F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
// Q2_K, Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K; Q3_K, Q4_K and Q5_K mean the _M mixes.
// ---------------------------------------------------------------------------------------------------------
typedef struct {
    const char *type; // target type name, e.g. "Q4_K_M"
    int n_threads;    // 0 = all online cores
    bool pure;        // every quantizable 2-D tensor gets the base type (llama-quantize --pure); otherwise
                      // llama.cpp's per-tensor rules (Q6_K output, more bits in some attn_v/ffn_down, ...)
} inf_quantize_params;

inf_quantize_params inf_quantize_default_params(void); // Q4_K_M, all cores, not pure

// Converts the model at in to out. The input must hold only F32, F16 and BF16 tensors (no requantizing).
// Metadata is copied, general.file_type set to llama.cpp's id for the type, tensor order kept; 1-D tensors
// and norms stay as they are. Fails with a message naming the file (and tensor) for a missing or malformed
// input, an unknown type, rows that do not fit the type's blocks, out naming the input, or a write error.
inf_status inf_quantize_file(const char *in, const char *out, const inf_quantize_params *params);

// Writes a llama model of a named shape with random weights: every 2-D weight N(0, 0.02^2), norms 1.0,
// quantized on the fly to type (NULL: "F16") with the same per-tensor rules as inf_quantize_file. The
// tokenizer (every tokenizer.* key) is copied from the GGUF at vocab_path, and the vocabulary size is its
// token count. The same seed gives the same file. Shapes: see inf_synth_shape_at.
inf_status inf_synth_model(const char *shape, const char *vocab_path, const char *out, const char *type,
                           uint64_t seed);

// The i-th known shape (name and a one-line description, both static); false past the last.
bool inf_synth_shape_at(int i, const char **name, const char **description);

#ifdef __cplusplus
}
#endif
#endif // INFERNO_H
