// chat_template.c: inf_chat_render and inf_chat_template_detect. The model's tokenizer.chat_template (a
// Jinja program) is not interpreted: it is recognised as one of a few common families by markers it
// carries, and each family is rendered by code written from that family's reference template, giving the
// text that template gives for a conversation (as Hugging Face renders it: trim_blocks, lstrip_blocks).
//
// BOS: the tokenizer adds BOS when add_bos is set, so a template's leading bos_token is then not emitted
// (as llama.cpp's chat code does); when add_bos is clear and the template starts with bos_token, its text
// is emitted and the tokenizer (parse_special) turns it into the token. BOS or EOS inside the history
// (Llama 2's per-turn BOS, EOS after answers) is always emitted as the vocabulary's token text.
//
// System messages: families with a system turn (ChatML, Llama 3, Zephyr, Phi-3, Mistral v7) render every
// system message where it stands. The others accept one system message, first: Llama 2 wraps it in
// <<SYS>> inside the first turn, Gemma and the Mistral v0.1/v0.2/v1 forms put it before the first user
// message with a blank line, Mistral v3 before the last message when that one is a user's (as its template
// does). A system message anywhere else is an error for them.
//
// Leaves out: what the real templates do beyond plain user/assistant/system text: tools and tool calls,
// multimodal parts, Qwen's and Mistral Small's built-in default system prompts, Llama 3.1's "Cutting
// Knowledge Date" preamble, Phi-3.5's trailing EOS when no generation prompt is asked for, raising on
// non-alternating roles. trim / strip remove ASCII whitespace only (Python also strips Unicode spaces).
#include "tokenizer/chat_template.h"

#include "model/model.h"
#include "tokenizer/tokenizer.h"

#include <string.h>

// ---------------------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------------------
static const char *const chat_family_name_table[CHAT_FAMILY_COUNT] = {
    [CHAT_FAMILY_CHATML] = "chatml",
    [CHAT_FAMILY_LLAMA2] = "llama2",
    [CHAT_FAMILY_LLAMA3] = "llama3",
    [CHAT_FAMILY_ZEPHYR] = "zephyr",
    [CHAT_FAMILY_MISTRAL] = "mistral",
    [CHAT_FAMILY_MISTRAL_V1] = "mistral-v1",
    [CHAT_FAMILY_MISTRAL_V3] = "mistral-v3",
    [CHAT_FAMILY_MISTRAL_V3_TEKKEN] = "mistral-v3-tekken",
    [CHAT_FAMILY_MISTRAL_V7] = "mistral-v7",
    [CHAT_FAMILY_MISTRAL_V7_TEKKEN] = "mistral-v7-tekken",
    [CHAT_FAMILY_PHI3] = "phi3",
    [CHAT_FAMILY_GEMMA] = "gemma",
};

const char *chat_family_name(chat_family fam) {
    assert(fam >= 0 && fam < CHAT_FAMILY_COUNT);
    return chat_family_name_table[fam];
}

const char *chat_family_names(void) {
    return "chatml, llama2, llama3, zephyr, mistral, mistral-v1, mistral-v3, mistral-v3-tekken, mistral-v7, "
           "mistral-v7-tekken, phi3, gemma";
}

chat_family chat_family_from_name(const char *name) {
    if (!name) return CHAT_FAMILY_UNKNOWN;
    for (int i = 0; i < CHAT_FAMILY_COUNT; i++) {
        if (!strcmp(name, chat_family_name_table[i])) return (chat_family)i;
    }
    return CHAT_FAMILY_UNKNOWN;
}

// ---------------------------------------------------------------------------------------------------------
// Detection
// ---------------------------------------------------------------------------------------------------------
static bool has(const char *s, const char *marker) { return strstr(s, marker) != NULL; }

// Zephyr closes every turn, the user's included, with the end-of-sequence token; Falcon 3 and GLM use the
// same <|user|> tag without it. So: some "<|user|>" is followed, before its expression closes ("}}"), by
// an end-of-sequence marker.
static bool chat_user_turn_ends_with_eos(const char *tmpl) {
    for (const char *p = strstr(tmpl, "<|user|>"); p; p = strstr(p + 1, "<|user|>")) {
        const char *end = strstr(p, "}}");
        size_t n = end ? (size_t)(end - p) : strlen(p);
        static const char *const eos_markers[] = {"eos_token", "</s>", "<|endoftext|>"};
        for (size_t k = 0; k < INF_ARRAY_LEN(eos_markers); k++) {
            const char *q = strstr(p, eos_markers[k]);
            if (q && (size_t)(q - p) < n) return true;
        }
    }
    return false;
}

// The [INST] family. Markers, strongest first: Mistral's v7 templates have [SYSTEM_PROMPT] (v7 writes it
// with a space after the tag, v7-tekken without); the v3 templates carry the tool tags ([AVAILABLE_TOOLS]),
// v3-tekken writing "[INST]" straight against the quote; v1 opens user turns with " [INST] " (a space
// first, inside the string literal); Llama 2 has <<SYS>>; the rest is the original Mistral form.
static chat_family chat_detect_inst(const char *tmpl) {
    if (has(tmpl, "[SYSTEM_PROMPT]")) {
        return has(tmpl, "[SYSTEM_PROMPT] ") ? CHAT_FAMILY_MISTRAL_V7 : CHAT_FAMILY_MISTRAL_V7_TEKKEN;
    }
    if (has(tmpl, "[AVAILABLE_TOOLS]")) {
        return has(tmpl, "[INST]\"") || has(tmpl, "[INST]'") ? CHAT_FAMILY_MISTRAL_V3_TEKKEN : CHAT_FAMILY_MISTRAL_V3;
    }
    if (has(tmpl, "' [INST]") || has(tmpl, "\" [INST]")) return CHAT_FAMILY_MISTRAL_V1;
    if (has(tmpl, "<<SYS>>")) return CHAT_FAMILY_LLAMA2;
    return CHAT_FAMILY_MISTRAL;
}

chat_family chat_family_detect(const char *tmpl) {
    if (!tmpl) return CHAT_FAMILY_UNKNOWN;
    if (has(tmpl, "<|im_start|>")) {
        // Phi-4 (<|im_sep|>) and SmolVLM (<end_of_utterance>) borrow the tag but are not ChatML: better
        // unsupported than rendered wrong.
        if (has(tmpl, "<|im_sep|>") || has(tmpl, "<end_of_utterance>")) return CHAT_FAMILY_UNKNOWN;
        return CHAT_FAMILY_CHATML;
    }
    if (has(tmpl, "<|start_header_id|>") && has(tmpl, "<|end_header_id|>")) return CHAT_FAMILY_LLAMA3;
    if (has(tmpl, "<start_of_turn>")) return CHAT_FAMILY_GEMMA;
    if (has(tmpl, "[INST]")) return chat_detect_inst(tmpl);
    // Phi-3 writes <|user|> / <|assistant|> literally or builds them from the role; <|end|> closes turns.
    if (has(tmpl, "<|end|>") && (has(tmpl, "<|assistant|>") || has(tmpl, "<|user|>"))) return CHAT_FAMILY_PHI3;
    if (has(tmpl, "<|assistant|>") && chat_user_turn_ends_with_eos(tmpl)) return CHAT_FAMILY_ZEPHYR;
    return CHAT_FAMILY_UNKNOWN;
}

// ---------------------------------------------------------------------------------------------------------
// Output buffer: grows up to CHAT_MAX_PROMPT_BYTES; the first failure sticks and is reported at the end.
// ---------------------------------------------------------------------------------------------------------
typedef struct {
    char *p;
    size_t len, cap;
    inf_status st; // INF_OK, or the first failure (NOMEM for allocation or the size cap)
} chat_buf;

static void cb_put_n(chat_buf *b, const char *s, size_t n) {
    if (b->st != INF_OK || n == 0) return;
    if (n > CHAT_MAX_PROMPT_BYTES - b->len) {
        b->st = inf_fail(INF_ERR_NOMEM, "chat template: the rendered prompt exceeds %zu bytes",
                         CHAT_MAX_PROMPT_BYTES);
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        if (cap > CHAT_MAX_PROMPT_BYTES + 1) cap = CHAT_MAX_PROMPT_BYTES + 1;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->st = inf_fail(INF_ERR_NOMEM, "chat template: out of memory (%zu bytes)", cap);
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void cb_put(chat_buf *b, const char *s) { cb_put_n(b, s, strlen(s)); }

static bool chat_is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

// Appends s without leading and trailing whitespace (Jinja's trim, Python's strip()).
static void cb_put_trimmed(chat_buf *b, const char *s) {
    size_t n = strlen(s);
    while (n > 0 && chat_is_space(*s)) s++, n--;
    while (n > 0 && chat_is_space(s[n - 1])) n--;
    cb_put_n(b, s, n);
}

// ---------------------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------------------
typedef struct {
    chat_buf *b;
    const char *bos, *eos; // "" when absent (eos: "</s>")
    bool lead_bos;         // the template opens with bos_token and the tokenizer will not add it
    bool tmpl_bos;         // the template uses bos_token at all
} chat_ctx;

static bool chat_role_is(const inf_chat_message *m, const char *role) { return !strcmp(m->role, role); }

static void chat_put_lead_bos(chat_ctx *c) {
    if (c->lead_bos) cb_put(c->b, c->bos);
}

// Families whose templates only take one system message, first (see the file comment).
static bool chat_family_leading_system_only(chat_family fam) {
    switch (fam) {
    case CHAT_FAMILY_LLAMA2:
    case CHAT_FAMILY_MISTRAL:
    case CHAT_FAMILY_MISTRAL_V1:
    case CHAT_FAMILY_MISTRAL_V3:
    case CHAT_FAMILY_MISTRAL_V3_TEKKEN:
    case CHAT_FAMILY_GEMMA:
        return true;
    default:
        return false;
    }
}

// Whether the family's reference template starts with bos_token (used when no template text is at hand).
static bool chat_family_default_bos(chat_family fam) {
    return fam != CHAT_FAMILY_CHATML && fam != CHAT_FAMILY_ZEPHYR;
}

// <|im_start|>role\ncontent<|im_end|>\n ... <|im_start|>assistant\n
static void chat_render_chatml(chat_ctx *c, const inf_chat_message *msgs, int n, bool prefix) {
    chat_put_lead_bos(c);
    for (int i = 0; i < n; i++) {
        cb_put(c->b, "<|im_start|>");
        cb_put(c->b, msgs[i].role);
        cb_put(c->b, "\n");
        cb_put(c->b, msgs[i].content);
        cb_put(c->b, "<|im_end|>\n");
    }
    if (prefix) cb_put(c->b, "<|im_start|>assistant\n");
}

// BOS <|start_header_id|>role<|end_header_id|>\n\ntrim(content)<|eot_id|> ... (Meta-Llama-3-8B-Instruct)
static void chat_render_llama3(chat_ctx *c, const inf_chat_message *msgs, int n, bool prefix) {
    chat_put_lead_bos(c);
    for (int i = 0; i < n; i++) {
        cb_put(c->b, "<|start_header_id|>");
        cb_put(c->b, msgs[i].role);
        cb_put(c->b, "<|end_header_id|>\n\n");
        cb_put_trimmed(c->b, msgs[i].content);
        cb_put(c->b, "<|eot_id|>");
    }
    if (prefix) cb_put(c->b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

// <|role|>\ncontent EOS \n ... <|assistant|>\n (the newline after each "}}" survives trim_blocks)
static void chat_render_zephyr(chat_ctx *c, const inf_chat_message *msgs, int n, bool prefix) {
    chat_put_lead_bos(c);
    for (int i = 0; i < n; i++) {
        cb_put(c->b, "<|");
        cb_put(c->b, msgs[i].role);
        cb_put(c->b, "|>\n");
        cb_put(c->b, msgs[i].content);
        cb_put(c->b, c->eos);
        cb_put(c->b, "\n");
    }
    if (prefix) cb_put(c->b, "<|assistant|>\n");
}

// BOS <|role|>\ncontent<|end|>\n ... <|assistant|>\n
static void chat_render_phi3(chat_ctx *c, const inf_chat_message *msgs, int n, bool prefix) {
    chat_put_lead_bos(c);
    for (int i = 0; i < n; i++) {
        cb_put(c->b, "<|");
        cb_put(c->b, msgs[i].role);
        cb_put(c->b, "|>\n");
        cb_put(c->b, msgs[i].content);
        cb_put(c->b, "<|end|>\n");
    }
    if (prefix) cb_put(c->b, "<|assistant|>\n");
}

// BOS <start_of_turn>user\n[system\n\n]trim(content)<end_of_turn>\n<start_of_turn>model\n... (Gemma 3 folds
// the system message into the first turn; Gemma 1/2 refuse one, so the same form serves them).
static void chat_render_gemma(chat_ctx *c, const char *sys, const inf_chat_message *msgs, int n, bool prefix) {
    chat_put_lead_bos(c);
    for (int i = 0; i < n; i++) {
        cb_put(c->b, "<start_of_turn>");
        cb_put(c->b, chat_role_is(&msgs[i], "assistant") ? "model" : msgs[i].role);
        cb_put(c->b, "\n");
        if (i == 0 && sys) {
            cb_put(c->b, sys);
            cb_put(c->b, "\n\n");
        }
        cb_put_trimmed(c->b, msgs[i].content);
        cb_put(c->b, "<end_of_turn>\n");
    }
    if (prefix) cb_put(c->b, "<start_of_turn>model\n");
}

// Llama-2-chat: the first message's content gets "<<SYS>>\nsys\n<</SYS>>\n\n" in front, then user turns
// are BOS "[INST] " strip(content) " [/INST]" and answers " " strip(content) " " EOS. No generation
// prompt: the model continues after "[/INST]".
static void chat_render_llama2(chat_ctx *c, const char *sys, const inf_chat_message *msgs, int n) {
    chat_buf tmp = {0};
    for (int i = 0; i < n && c->b->st == INF_OK; i++) {
        tmp.len = 0;
        if (i == 0 && sys) {
            cb_put(&tmp, "<<SYS>>\n");
            cb_put(&tmp, sys);
            cb_put(&tmp, "\n<</SYS>>\n\n");
        }
        cb_put(&tmp, msgs[i].content);
        if (tmp.st != INF_OK) {
            c->b->st = tmp.st;
            break;
        }
        const char *content = tmp.p ? tmp.p : "";
        if (chat_role_is(&msgs[i], "user")) {
            if (c->b->len == 0) {
                chat_put_lead_bos(c);
            } else if (c->tmpl_bos) {
                cb_put(c->b, c->bos);
            }
            cb_put(c->b, "[INST] ");
            cb_put_trimmed(c->b, content);
            cb_put(c->b, " [/INST]");
        } else {
            cb_put(c->b, " ");
            cb_put_trimmed(c->b, content);
            cb_put(c->b, " ");
            cb_put(c->b, c->eos);
        }
    }
    free(tmp.p);
}

// The Mistral [INST] forms without a system tag. sys goes before the first user message (original, v1) or
// before the last message when it is a user's (v3, v3-tekken).
static void chat_render_mistral(chat_ctx *c, chat_family fam, const char *sys, const inf_chat_message *msgs,
                                int n) {
    const char *open = "[INST] ", *close = " [/INST]", *answer_lead = "";
    bool sys_last = false, trim_answer = false;
    switch (fam) {
    case CHAT_FAMILY_MISTRAL: // {{ '[INST] ' + content + ' [/INST]' }} / {{ content + eos_token }}
        break;
    case CHAT_FAMILY_MISTRAL_V1: // ' [INST] ' + content + ' [/INST]' / ' ' + content + eos_token
        open = " [INST] ";
        answer_lead = " ";
        break;
    case CHAT_FAMILY_MISTRAL_V3: // "[INST] " + content + "[/INST]" / " " + content|trim + eos_token
        close = "[/INST]";
        answer_lead = " ";
        sys_last = true;
        trim_answer = true;
        break;
    case CHAT_FAMILY_MISTRAL_V3_TEKKEN: // "[INST]" + content + "[/INST]" / content + eos_token
        open = "[INST]";
        close = "[/INST]";
        sys_last = true;
        break;
    default:
        assert(!"not a Mistral [INST] family");
    }
    chat_put_lead_bos(c);
    bool sys_done = false;
    for (int i = 0; i < n; i++) {
        if (chat_role_is(&msgs[i], "user")) {
            cb_put(c->b, open);
            if (sys && !sys_done && (!sys_last || i == n - 1)) {
                cb_put(c->b, sys);
                cb_put(c->b, "\n\n");
                sys_done = true;
            }
            cb_put(c->b, msgs[i].content);
            cb_put(c->b, close);
        } else {
            cb_put(c->b, answer_lead);
            if (trim_answer) {
                cb_put_trimmed(c->b, msgs[i].content);
            } else {
                cb_put(c->b, msgs[i].content);
            }
            cb_put(c->b, c->eos);
        }
    }
}

// Mistral v7: [SYSTEM_PROMPT] sys[/SYSTEM_PROMPT][INST] user[/INST] answer EOS (tekken: no spaces).
static void chat_render_mistral_v7(chat_ctx *c, bool tekken, const inf_chat_message *msgs, int n) {
    const char *sp = tekken ? "" : " ";
    chat_put_lead_bos(c);
    for (int i = 0; i < n; i++) {
        if (chat_role_is(&msgs[i], "system")) {
            cb_put(c->b, "[SYSTEM_PROMPT]");
            cb_put(c->b, sp);
            cb_put(c->b, msgs[i].content);
            cb_put(c->b, "[/SYSTEM_PROMPT]");
        } else if (chat_role_is(&msgs[i], "user")) {
            cb_put(c->b, "[INST]");
            cb_put(c->b, sp);
            cb_put(c->b, msgs[i].content);
            cb_put(c->b, "[/INST]");
        } else {
            cb_put(c->b, sp);
            cb_put(c->b, msgs[i].content);
            cb_put(c->b, c->eos);
        }
    }
}

// Checks roles and contents: every message needs both, roles are system/user/assistant, and families
// that take a single leading system message get no other.
static inf_status chat_check_messages(chat_family fam, const inf_chat_message *msgs, int n) {
    if (n < 0 || n > CHAT_MAX_MESSAGES) {
        return inf_fail(INF_ERR_INVALID_ARG, "chat template: %d messages (expected 0..%d)", n, CHAT_MAX_MESSAGES);
    }
    if (n > 0 && !msgs) return inf_fail(INF_ERR_INVALID_ARG, "chat template: %d messages but no array", n);
    for (int i = 0; i < n; i++) {
        const inf_chat_message *m = &msgs[i];
        if (!m->role) return inf_fail(INF_ERR_INVALID_ARG, "chat message %d has no role", i);
        if (!m->content) return inf_fail(INF_ERR_INVALID_ARG, "chat message %d (%.32s) has no content", i, m->role);
        if (!chat_role_is(m, "system") && !chat_role_is(m, "user") && !chat_role_is(m, "assistant")) {
            return inf_fail(INF_ERR_INVALID_ARG,
                            "chat message %d has role '%.64s': only system, user and assistant are supported", i,
                            m->role);
        }
        if (i > 0 && chat_role_is(m, "system") && chat_family_leading_system_only(fam)) {
            return inf_fail(INF_ERR_INVALID_ARG,
                            "chat message %d is a system message: the %s template takes one only as the first "
                            "message",
                            i, chat_family_name(fam));
        }
    }
    return INF_OK;
}

inf_status chat_render(chat_family fam, const char *tmpl, const chat_special_tokens *sp, const inf_chat_message *msgs,
                       int n, bool add_assistant_prefix, char **out) {
    assert(fam >= 0 && fam < CHAT_FAMILY_COUNT && sp && out);
    *out = NULL;
    inf_status st = chat_check_messages(fam, msgs, n);
    if (st != INF_OK) return st;

    chat_buf b = {0};
    chat_ctx c = {.b = &b,
                  .bos = sp->bos_text ? sp->bos_text : "",
                  .eos = sp->eos_text && sp->eos_text[0] ? sp->eos_text : "</s>",
                  .tmpl_bos = tmpl ? strstr(tmpl, "bos_token") != NULL : chat_family_default_bos(fam)};
    c.lead_bos = c.tmpl_bos && !sp->add_bos;

    // The leading system message of the families that fold it into a turn.
    const char *sys = NULL;
    const inf_chat_message *loop = msgs;
    int n_loop = n;
    if (chat_family_leading_system_only(fam) && n > 0 && chat_role_is(&msgs[0], "system")) {
        sys = msgs[0].content;
        loop = msgs + 1;
        n_loop = n - 1;
    }
    switch (fam) {
    case CHAT_FAMILY_CHATML: chat_render_chatml(&c, msgs, n, add_assistant_prefix); break;
    case CHAT_FAMILY_LLAMA3: chat_render_llama3(&c, msgs, n, add_assistant_prefix); break;
    case CHAT_FAMILY_ZEPHYR: chat_render_zephyr(&c, msgs, n, add_assistant_prefix); break;
    case CHAT_FAMILY_PHI3: chat_render_phi3(&c, msgs, n, add_assistant_prefix); break;
    case CHAT_FAMILY_GEMMA: chat_render_gemma(&c, sys, loop, n_loop, add_assistant_prefix); break;
    case CHAT_FAMILY_LLAMA2: chat_render_llama2(&c, sys, loop, n_loop); break;
    case CHAT_FAMILY_MISTRAL:
    case CHAT_FAMILY_MISTRAL_V1:
    case CHAT_FAMILY_MISTRAL_V3:
    case CHAT_FAMILY_MISTRAL_V3_TEKKEN: chat_render_mistral(&c, fam, sys, loop, n_loop); break;
    case CHAT_FAMILY_MISTRAL_V7: chat_render_mistral_v7(&c, false, msgs, n); break;
    case CHAT_FAMILY_MISTRAL_V7_TEKKEN: chat_render_mistral_v7(&c, true, msgs, n); break;
    default: assert(!"unhandled chat family");
    }
    if (b.st == INF_OK && !b.p) b.p = inf_strdup(""); // nothing was rendered (no messages, no prefix)
    if (b.st == INF_OK && !b.p) b.st = inf_fail(INF_ERR_NOMEM, "chat template: out of memory");
    if (b.st != INF_OK) {
        free(b.p);
        return b.st;
    }
    *out = b.p;
    return INF_OK;
}

// ---------------------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------------------

// The model's template text: *tmpl NULL when it has none (or an empty one). Fails when the key has a
// type other than string.
static inf_status chat_model_template(const inf_model *model, const char **tmpl) {
    const char *s = NULL;
    bool found = false;
    inf_status st = gguf_get_str(model->gguf, "tokenizer.chat_template", &s, &found);
    if (st != INF_OK) return st;
    *tmpl = found && s && s[0] ? s : NULL;
    return INF_OK;
}

// The first 60 bytes of a template on one line (controls shown as spaces, no cut UTF-8 sequence), for
// error messages.
static void chat_template_excerpt(const char *tmpl, char *buf, size_t cap) {
    assert(cap > 4);
    size_t n = strlen(tmpl), max = INF_MIN((size_t)60, cap - 4);
    bool cut = n > max;
    if (cut) {
        n = max;
        while (n > 0 && ((unsigned char)tmpl[n] & 0xC0) == 0x80) n--; // back to a character boundary
    }
    for (size_t i = 0; i < n; i++) buf[i] = (unsigned char)tmpl[i] < 0x20 || tmpl[i] == 0x7f ? ' ' : tmpl[i];
    strcpy(buf + n, cut ? "..." : "");
}

inf_status inf_chat_render(const inf_model *model, const char *template_name, const inf_chat_message *msgs, int n,
                           bool add_assistant_prefix, char **out) {
    if (!out) return inf_fail(INF_ERR_INVALID_ARG, "inf_chat_render: out is NULL");
    *out = NULL;
    if (!model) return inf_fail(INF_ERR_INVALID_ARG, "inf_chat_render: model is NULL");

    chat_family fam;
    const char *tmpl = NULL;
    if (template_name) {
        fam = chat_family_from_name(template_name);
        if (fam == CHAT_FAMILY_UNKNOWN) {
            return inf_fail(INF_ERR_INVALID_ARG, "unknown chat template name '%.64s' (supported: %s)", template_name,
                            chat_family_names());
        }
    } else {
        inf_status st = chat_model_template(model, &tmpl);
        if (st != INF_OK) return st;
        fam = tmpl ? chat_family_detect(tmpl) : CHAT_FAMILY_CHATML;
        if (fam == CHAT_FAMILY_UNKNOWN) {
            char excerpt[72];
            chat_template_excerpt(tmpl, excerpt, sizeof excerpt);
            return inf_fail(INF_ERR_UNSUPPORTED,
                            "the model's chat template is not one Inferno can render: \"%s\" (supported: %s; pick "
                            "one by name)",
                            excerpt, chat_family_names());
        }
    }
    const inf_vocab *v = model->vocab;
    int bos = vocab_bos(v), eos = vocab_eos(v);
    chat_special_tokens sp = {.bos_text = bos >= 0 ? vocab_token_text(v, bos) : NULL,
                              .eos_text = eos >= 0 ? vocab_token_text(v, eos) : NULL,
                              .add_bos = vocab_add_bos(v)};
    return chat_render(fam, tmpl, &sp, msgs, n, add_assistant_prefix, out);
}

const char *inf_chat_template_detect(const inf_model *model) {
    if (!model) return NULL;
    const char *tmpl = NULL;
    if (chat_model_template(model, &tmpl) != INF_OK) return NULL;
    if (!tmpl) return chat_family_name(CHAT_FAMILY_CHATML);
    chat_family fam = chat_family_detect(tmpl);
    return fam == CHAT_FAMILY_UNKNOWN ? NULL : chat_family_name(fam);
}

// The end-of-turn text of a family, for the families whose answers end with one; the others end answers with
// EOS, which is an end-of-generation token anyway, so its text serves for models that render it as text.
const char *inf_chat_end_marker(const inf_model *model, const char *template_name) {
    static const struct {
        const char *family, *marker;
    } markers[] = {
        {"chatml", "<|im_end|>"}, {"llama3", "<|eot_id|>"}, {"phi3", "<|end|>"}, {"gemma", "<end_of_turn>"},
    };
    const char *family = template_name ? template_name : inf_chat_template_detect(model);
    for (size_t i = 0; family && i < sizeof markers / sizeof markers[0]; i++)
        if (!strcmp(family, markers[i].family)) return markers[i].marker;
    int eos = inf_token_eos(model);
    const char *text = eos >= 0 ? inf_token_text(model, eos) : NULL;
    return text && text[0] ? text : "</s>";
}
