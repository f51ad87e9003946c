// cmd_chat.c: `inferno chat`: an interactive chat in the terminal. Each user message is added to the
// history, the whole conversation is rendered with the model's chat template (inf_chat_render) and
// tokenized, and only the tokens after the longest prefix the KV cache already holds are decoded (the
// cache is truncated at the first difference: re-tokenized answers and templates that move the system
// prompt change earlier tokens). The answer streams token by token until an end-of-generation token, the
// template's end-of-turn marker (a stop string, for models that spell it as plain text), -n tokens, the
// context limit or Ctrl-C.
//
// Input: a line is a message; a line ending in a backslash continues on the next line. /reset forgets the
// conversation and the cache, /exit (or end of input) quits. Ctrl-C during an answer stops it; Ctrl-C at
// the prompt quits. With standard input not a terminal there are no prompts or banner: each answer is
// printed on stdout followed by a newline, so scripts can pipe messages in.
//
// Uses include/inferno.h only. Leaves out: line editing and history recall (no readline), saving and
// loading conversations, and trimming old turns when the context fills (the user is told to /reset).
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHAT_MAX_INPUT_BYTES (1u << 20)   // one user message
#define CHAT_MAX_ANSWER_BYTES (16u << 20) // one answer's text
#define CHAT_MAX_HISTORY 8192             // messages in a conversation

static void chat_usage(FILE *out) {
    fprintf(out,
            "usage: inferno chat --model FILE [options]\n\n"
            "Type a message and press Enter; end a line with '\\' to continue on the next one.\n"
            "/reset starts a new conversation, /exit or end of input quits; Ctrl-C stops an answer,\n"
            "and quits when pressed at the prompt.\n\n"
            "      --chat-template NAME chat format instead of the model's own: chatml, llama2, llama3,\n"
            "                           zephyr, mistral, mistral-v1, mistral-v3, mistral-v3-tekken,\n"
            "                           mistral-v7, mistral-v7-tekken, phi3, gemma\n"
            "      --system TEXT        system message at the start of every conversation\n"
            "  -h, --help               this help\n");
    cli_gen_usage(out);
    fprintf(out, "(--max-tokens is per answer and defaults to -1, until the end of the turn; --verbose also\n"
                 "prints tokens and speed after each answer)\n");
}

typedef struct {
    cli_gen_opts g;
    const char *tmpl_name, *system;
} chat_opts;

static bool chat_parse(int argc, char **argv, inf_config *cfg, chat_opts *o) {
    const char *cmd = "chat";
    *o = (chat_opts){0};
    cli_gen_defaults(&o->g, cfg, -1);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int shared = cli_gen_flag(cmd, argc, argv, &i, cfg, &o->g);
        if (shared < 0) return false;
        if (shared > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            chat_usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--chat-template")) {
            if (!(o->tmpl_name = cli_flag_value(cmd, argc, argv, &i))) return false;
        } else if (!strcmp(a, "--system")) {
            if (!(o->system = cli_flag_value(cmd, argc, argv, &i))) return false;
        } else {
            fprintf(stderr, "inferno chat: unknown option '%s' (see 'inferno chat --help')\n", a);
            return false;
        }
    }
    if (!o->g.model) {
        fprintf(stderr, "inferno chat: --model is required (see 'inferno chat --help')\n");
        return false;
    }
    cli_gen_finish(&o->g);
    return true;
}

// ---------------------------------------------------------------------------------------------------------
// Ctrl-C: the handler only sets a flag. It is installed without SA_RESTART, so a read blocked at the prompt
// returns with EINTR; the prompt and generation loops poll the flag between batches and tokens. The flag is
// cleared only where an answer consumes it, so a Ctrl-C that lands between an answer's end and the next
// read still counts as one at the prompt.
// ---------------------------------------------------------------------------------------------------------
static volatile sig_atomic_t chat_interrupted;

static void chat_on_sigint(int sig) {
    (void)sig;
    chat_interrupted = 1;
}

// ---------------------------------------------------------------------------------------------------------
// Text buffers with a cap
// ---------------------------------------------------------------------------------------------------------
typedef struct {
    char *p;
    size_t len, cap, max;
} chat_text;

// Appends n bytes; false (nothing appended) when the text would pass its max or memory runs out.
static bool chat_text_add(chat_text *t, const char *s, size_t n) {
    if (n > t->max - t->len) return false;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->len + n + 1) cap *= 2;
        char *p = realloc(t->p, cap);
        if (!p) return false;
        t->p = p;
        t->cap = cap;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
    return true;
}

typedef enum { CHAT_READ_OK, CHAT_READ_EOF, CHAT_READ_INTERRUPT, CHAT_READ_TOO_LONG } chat_read_result;

// Reads one message into t (reset first): lines joined while they end in a backslash (the backslash
// becomes the newline). The final newline is dropped. A message over the cap is read to its end and
// reported as CHAT_READ_TOO_LONG.
static chat_read_result chat_read_message(bool tty, chat_text *t) {
    char chunk[4096];
    bool too_long = false, any = false;
    t->len = 0;
    if (t->p) t->p[0] = '\0';
    if (tty) {
        fputs("> ", stdout);
        fflush(stdout);
    }
    for (;;) {
        if (chat_interrupted) return CHAT_READ_INTERRUPT; // Ctrl-C after the answer, before the read
        errno = 0;
        if (!fgets(chunk, sizeof chunk, stdin)) {
            if (chat_interrupted || (ferror(stdin) && errno == EINTR)) {
                clearerr(stdin);
                return CHAT_READ_INTERRUPT;
            }
            if (!any) return CHAT_READ_EOF;
            break; // the last line had no newline
        }
        any = true;
        size_t n = strlen(chunk);
        bool eol = n > 0 && chunk[n - 1] == '\n';
        if (eol) n--;
        if (eol && n > 0 && chunk[n - 1] == '\r') n--;
        bool more = eol && n > 0 && chunk[n - 1] == '\\';
        if (more) n--;
        if (!too_long && !chat_text_add(t, chunk, n)) too_long = true;
        if (!eol) continue; // a line longer than the chunk: read on
        if (!more) break;
        if (!too_long && !chat_text_add(t, "\n", 1)) too_long = true;
        if (tty) {
            fputs("... ", stdout);
            fflush(stdout);
        }
    }
    if (!t->p && !chat_text_add(t, "", 0)) too_long = true;
    return too_long ? CHAT_READ_TOO_LONG : CHAT_READ_OK;
}

// ---------------------------------------------------------------------------------------------------------
// The conversation
// ---------------------------------------------------------------------------------------------------------
typedef struct {
    inf_model *model;
    inf_session *sess;
    inf_sampler *smp;
    const chat_opts *o;
    const char *tmpl_name; // NULL: the model's template
    const char *end_marker; // the template's end-of-turn text, a stop string
    inf_chat_message *msgs; // (CHAT_MAX_HISTORY); contents malloc'd, roles static
    int n_msgs;
    inf_token *cache;       // (n_ctx) what the KV cache of sequence 0 holds, position by position
    int n_cache;
    inf_token *toks;        // (n_ctx + 1) the rendered conversation's tokens
    int32_t *pos, *seq;     // (n_batch) batch scratch
    int n_ctx, n_batch;
} chat_state;

static bool chat_push(chat_state *c, const char *role, const char *content, size_t len) {
    if (c->n_msgs == CHAT_MAX_HISTORY) return false;
    char *copy = malloc(len + 1);
    if (!copy) return false;
    memcpy(copy, content, len);
    copy[len] = '\0';
    c->msgs[c->n_msgs++] = (inf_chat_message){.role = role, .content = copy};
    return true;
}

static void chat_pop(chat_state *c) {
    free((char *)c->msgs[--c->n_msgs].content);
}

// Forgets the conversation (the system message stays) and the cache.
static void chat_reset(chat_state *c) {
    int keep = c->o->system ? 1 : 0;
    while (c->n_msgs > keep) chat_pop(c);
    inf_session_seq_clear(c->sess, 0);
    c->n_cache = 0;
    inf_sampler_reset(c->smp);
}

typedef enum { CHAT_TURN_DONE, CHAT_TURN_SKIPPED, CHAT_TURN_FATAL } chat_turn_result;

// Prints a piece of the answer and keeps it; false when the answer reached its cap.
static bool chat_emit(chat_text *answer, const char *s, size_t n) {
    if (!n) return true;
    fwrite(s, 1, n, stdout);
    fflush(stdout);
    return chat_text_add(answer, s, n);
}

// Runs one turn: the user message is already in the history. Renders, decodes the new tokens, streams the
// answer and adds it to the history. CHAT_TURN_SKIPPED: the message was dropped (too long for the context,
// or interrupted before the answer began), with the reason printed.
static chat_turn_result chat_turn(chat_state *c) {
    const chat_opts *o = c->o;
    char *prompt = NULL;
    if (inf_chat_render(c->model, c->tmpl_name, c->msgs, c->n_msgs, true, &prompt) != INF_OK) {
        fprintf(stderr, "inferno chat: %s\n", inf_last_error());
        return CHAT_TURN_FATAL;
    }
    int n_toks = 0;
    inf_status st = inf_tokenize(c->model, prompt, strlen(prompt), true, true, c->toks, c->n_ctx + 1, &n_toks);
    free(prompt);
    if (st != INF_OK) {
        fprintf(stderr, "inferno chat: %s\n", inf_last_error());
        return CHAT_TURN_FATAL;
    }
    if (n_toks >= c->n_ctx) {
        fprintf(stderr,
                "inferno chat: the conversation needs %d tokens and the context holds %d: type /reset to start "
                "a new conversation (or raise --ctx-size)\n",
                n_toks, c->n_ctx);
        chat_pop(c);
        return CHAT_TURN_SKIPPED;
    }
    if (n_toks == 0) { // only possible for a model without BOS and an empty render
        chat_pop(c);
        return CHAT_TURN_SKIPPED;
    }

    // Reuse the cached prefix; at least the last token is decoded again, for its logits.
    int keep = 0;
    while (keep < c->n_cache && keep < n_toks && c->cache[keep] == c->toks[keep]) keep++;
    if (keep == n_toks) keep--;
    inf_session_seq_truncate(c->sess, 0, keep);
    c->n_cache = keep;
    int n_reused = keep;

    double t0 = inf_time_now();
    while (c->n_cache < n_toks) {
        if (chat_interrupted) {
            chat_interrupted = 0; // consumed: the next Ctrl-C is at the prompt
            fputc('\n', stdout);
            chat_pop(c);
            return CHAT_TURN_SKIPPED;
        }
        int nb = n_toks - c->n_cache < c->n_batch ? n_toks - c->n_cache : c->n_batch;
        for (int i = 0; i < nb; i++) c->pos[i] = c->n_cache + i;
        inf_batch b = {.n_tokens = nb, .tokens = c->toks + c->n_cache, .pos = c->pos, .seq_id = c->seq};
        if (inf_session_decode(c->sess, &b) != INF_OK) {
            fprintf(stderr, "inferno chat: %s\n", inf_last_error());
            return CHAT_TURN_FATAL;
        }
        for (int i = 0; i < nb; i++) {
            c->cache[c->n_cache + i] = c->toks[c->n_cache + i];
            inf_sampler_accept(c->smp, c->toks[c->n_cache + i]);
        }
        c->n_cache += nb;
    }
    double t_prompt = inf_time_now() - t0;

    // The answer.
    inf_stop_matcher *stop = NULL;
    if (inf_stop_matcher_init(&c->end_marker, 1, &stop) != INF_OK) {
        fprintf(stderr, "inferno chat: %s\n", inf_last_error());
        return CHAT_TURN_FATAL;
    }
    chat_text answer = {.max = CHAT_MAX_ANSWER_BYTES};
    char piece_buf[256], *big = NULL;
    const char *emit, *finish = "length";
    size_t n_emit;
    bool stop_hit = false, fatal = false;
    long n_gen = 0;
    double t1 = inf_time_now();
    for (;;) {
        if (chat_interrupted) {
            chat_interrupted = 0; // consumed: the next Ctrl-C is at the prompt
            finish = "interrupted";
            break;
        }
        if (o->g.max_tokens >= 0 && n_gen >= o->g.max_tokens) break;
        inf_token tok = inf_sampler_sample(c->smp, inf_session_logits(c->sess, -1), NULL);
        if (tok < 0) {
            fprintf(stderr, "\ninferno chat: no token can be sampled (every logit is NaN)\n");
            finish = "error";
            break;
        }
        if (inf_token_is_eog(c->model, tok)) {
            finish = "stop";
            break;
        }
        inf_sampler_accept(c->smp, tok);
        n_gen++;
        int np = inf_token_to_piece(c->model, tok, false, piece_buf, (int)sizeof piece_buf);
        const char *piece = piece_buf;
        if (np > (int)sizeof piece_buf) { // a long piece: fetch it whole
            free(big);
            big = malloc((size_t)np);
            if (!big) {
                fprintf(stderr, "\ninferno chat: out of memory\n");
                fatal = true;
                break;
            }
            np = inf_token_to_piece(c->model, tok, false, big, np);
            piece = big;
        }
        bool stopped = inf_stop_matcher_feed(stop, piece, (size_t)(np > 0 ? np : 0), &emit, &n_emit);
        if (!chat_emit(&answer, emit, n_emit)) {
            fprintf(stderr, "\ninferno chat: the answer passed %u bytes; stopping it\n", CHAT_MAX_ANSWER_BYTES);
            break;
        }
        if (stopped) {
            finish = "stop";
            stop_hit = true;
            break;
        }
        if (o->g.max_tokens >= 0 && n_gen >= o->g.max_tokens) break;
        // The sampled token needs a cell before the next one can be predicted.
        if (c->n_cache >= c->n_ctx) {
            fprintf(stderr, "\n[context full (%d tokens): type /reset to start a new conversation]\n", c->n_ctx);
            finish = "context";
            break;
        }
        int32_t p = c->n_cache;
        inf_batch b = {.n_tokens = 1, .tokens = &tok, .pos = &p, .seq_id = c->seq};
        st = inf_session_decode(c->sess, &b);
        if (st == INF_ERR_CONTEXT_FULL) {
            fprintf(stderr, "\n[context full: type /reset to start a new conversation]\n");
            finish = "context";
            break;
        }
        if (st != INF_OK) {
            fprintf(stderr, "\ninferno chat: %s\n", inf_last_error());
            fatal = true;
            break;
        }
        c->cache[c->n_cache++] = tok;
    }
    free(big);
    if (!stop_hit && !fatal) { // text held back as a possible marker prefix is part of the answer
        inf_stop_matcher_flush(stop, &emit, &n_emit);
        chat_emit(&answer, emit, n_emit);
    }
    inf_stop_matcher_free(stop);
    fputc('\n', stdout);
    fflush(stdout);
    double t_gen = inf_time_now() - t1;
    if (o->g.verbose) {
        fprintf(stderr, "[prompt: %d tokens, %d from the cache, %d decoded in %.3f s | answer: %ld tokens in %.3f s "
                        "= %.2f tok/s | finish: %s | context: %d/%d]\n",
                n_toks, n_reused, n_toks - n_reused, t_prompt, n_gen, t_gen, t_gen > 0 ? n_gen / t_gen : 0.0,
                finish, c->n_cache, c->n_ctx);
    }
    bool kept = chat_push(c, "assistant", answer.p ? answer.p : "", answer.len);
    free(answer.p);
    if (fatal) return CHAT_TURN_FATAL;
    if (!kept) {
        fprintf(stderr, "inferno chat: the conversation is too long to keep: type /reset\n");
        chat_pop(c); // the user message: the history keeps alternating
    }
    return CHAT_TURN_DONE;
}

static bool chat_is_command(const char *line, const char *cmd) {
    while (*line == ' ' || *line == '\t') line++;
    size_t n = strlen(cmd);
    if (strncmp(line, cmd, n) != 0) return false;
    for (line += n; *line; line++)
        if (*line != ' ' && *line != '\t' && *line != '\r' && *line != '\n') return false;
    return true;
}

static bool chat_is_blank(const char *s) {
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n') return false;
    return true;
}

int cmd_chat(int argc, char **argv) {
    inf_config *cfg = cli_config_load("chat");
    if (!cfg) return 1;
    chat_opts o;
    if (!chat_parse(argc, argv, cfg, &o)) {
        inf_config_free(cfg);
        return 2;
    }
    inf_config_free(cfg);
    if (!o.g.verbose) inf_log_set_level(INF_LOG_WARN);
    bool tty = isatty(STDIN_FILENO);

    int rc = 1;
    chat_state c = {.o = &o, .tmpl_name = o.tmpl_name};
    chat_text line = {.max = CHAT_MAX_INPUT_BYTES};
    inf_model_params mp = inf_model_default_params();
    mp.n_threads = (int)o.g.threads;
    mp.verbose = o.g.verbose;
    mp.gpu_enabled = o.g.gpu_enabled;
    mp.n_gpu_layers = (int)o.g.gpu_layers;
    if (inf_model_load(o.g.model, &mp, &c.model) != INF_OK) {
        fprintf(stderr, "inferno chat: %s\n", inf_last_error());
        goto done;
    }
    inf_model_info info;
    inf_model_get_info(c.model, &info);

    // The template must render before the first message is typed.
    char *probe = NULL;
    if (inf_chat_render(c.model, o.tmpl_name, NULL, 0, true, &probe) != INF_OK) {
        if (o.tmpl_name) {
            fprintf(stderr, "inferno chat: --chat-template: %s\n", inf_last_error());
            rc = 2;
        } else {
            fprintf(stderr, "inferno chat: %s\n(choose a format with --chat-template NAME)\n", inf_last_error());
        }
        goto done;
    }
    free(probe);
    const char *family = o.tmpl_name ? o.tmpl_name : inf_chat_template_detect(c.model);
    c.end_marker = inf_chat_end_marker(c.model, family);

    if (o.g.ctx_default && o.g.ctx > info.n_ctx_train) o.g.ctx = info.n_ctx_train;
    inf_session_params sp = {.n_ctx = (int)o.g.ctx, .n_batch = (int)o.g.batch, .n_seq_max = 1, .n_threads = (int)o.g.threads};
    inf_sampler_params smp_p = o.g.sampling;
    if (inf_session_init(c.model, &sp, &c.sess) != INF_OK || inf_sampler_init(&smp_p, info.n_vocab, &c.smp) != INF_OK) {
        fprintf(stderr, "inferno chat: %s\n", inf_last_error());
        goto done;
    }
    c.n_ctx = inf_session_n_ctx(c.sess);
    c.n_batch = (int)(o.g.batch < c.n_ctx ? o.g.batch : c.n_ctx);
    c.msgs = calloc(CHAT_MAX_HISTORY, sizeof *c.msgs);
    c.cache = malloc(sizeof *c.cache * (size_t)c.n_ctx);
    c.toks = malloc(sizeof *c.toks * ((size_t)c.n_ctx + 1));
    c.pos = malloc(sizeof *c.pos * (size_t)c.n_batch);
    c.seq = calloc((size_t)c.n_batch, sizeof *c.seq);
    if (!c.msgs || !c.cache || !c.toks || !c.pos || !c.seq) {
        fprintf(stderr, "inferno chat: out of memory\n");
        goto done;
    }
    if (o.system && !chat_push(&c, "system", o.system, strlen(o.system))) {
        fprintf(stderr, "inferno chat: out of memory\n");
        goto done;
    }

    struct sigaction sa = {0}, old_sa;
    sa.sa_handler = chat_on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; // no SA_RESTART: Ctrl-C must interrupt a read at the prompt
    sigaction(SIGINT, &sa, &old_sa);

    if (tty) {
        fprintf(stderr, "inferno chat: %s, %s template, context %d tokens\n"
                        "/reset starts over, /exit quits; Ctrl-C stops an answer (at the prompt: quits)\n",
                info.name[0] ? info.name : info.arch, family ? family : "?", c.n_ctx);
    }
    rc = 0;
    for (;;) {
        chat_read_result r = chat_read_message(tty, &line);
        if (r == CHAT_READ_EOF) {
            if (tty) fputc('\n', stdout);
            break;
        }
        if (r == CHAT_READ_INTERRUPT) {
            fputc('\n', stdout);
            break;
        }
        if (r == CHAT_READ_TOO_LONG) {
            fprintf(stderr, "inferno chat: a message is limited to %u bytes; this one was ignored\n",
                    CHAT_MAX_INPUT_BYTES);
            continue;
        }
        if (chat_is_blank(line.p)) continue;
        if (chat_is_command(line.p, "/exit") || chat_is_command(line.p, "/quit")) break;
        if (chat_is_command(line.p, "/reset")) {
            chat_reset(&c);
            if (tty) fprintf(stderr, "[new conversation]\n");
            continue;
        }
        if (c.n_msgs + 2 > CHAT_MAX_HISTORY) {
            fprintf(stderr, "inferno chat: the conversation has %d messages, the most kept: type /reset\n",
                    c.n_msgs);
            continue;
        }
        if (!chat_push(&c, "user", line.p, line.len)) {
            fprintf(stderr, "inferno chat: out of memory\n");
            rc = 1;
            break;
        }
        if (chat_turn(&c) == CHAT_TURN_FATAL) {
            rc = 1;
            break;
        }
    }
    fflush(stdout);
    sigaction(SIGINT, &old_sa, NULL);
done:
    free(line.p);
    while (c.msgs && c.n_msgs > 0) chat_pop(&c);
    free(c.msgs);
    free(c.cache);
    free(c.toks);
    free(c.pos);
    free(c.seq);
    inf_sampler_free(c.smp);
    inf_session_free(c.sess);
    inf_model_free(c.model);
    return rc;
}
