// chat_template.h: the chat-template families behind inf_chat_render, for unit tests: recognising a
// family from a Jinja template's text, looking one up by name, and rendering with explicit BOS/EOS texts
// so no model is needed. inf_chat_render (inferno.h) is the public entry; this header adds no behaviour.
#ifndef INFERNO_CHAT_TEMPLATE_H
#define INFERNO_CHAT_TEMPLATE_H

#include "core/core.h"

typedef enum {
    CHAT_FAMILY_UNKNOWN = -1,
    CHAT_FAMILY_CHATML = 0,        // <|im_start|>role\n...<|im_end|>\n (Qwen, OpenHermes, ...)
    CHAT_FAMILY_LLAMA2,            // Llama-2-chat: [INST] <<SYS>>...<</SYS>> ... [/INST], BOS on every turn
    CHAT_FAMILY_LLAMA3,            // <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>
    CHAT_FAMILY_ZEPHYR,            // <|role|>\n...EOS\n (Zephyr, TinyLlama-Chat)
    CHAT_FAMILY_MISTRAL,           // Mistral-7B-Instruct v0.1/v0.2 original: [INST] ... [/INST]...EOS
    CHAT_FAMILY_MISTRAL_V1,        // Mistral's "v1" template: " [INST] ... [/INST] ...EOS"
    CHAT_FAMILY_MISTRAL_V3,        // "v3": "[INST] ...[/INST] ...EOS", system before the last user turn
    CHAT_FAMILY_MISTRAL_V3_TEKKEN, // "v3-tekken" (Mistral Nemo): no spaces around the tags
    CHAT_FAMILY_MISTRAL_V7,        // "v7" (Mistral Large 2411): [SYSTEM_PROMPT] ...[/SYSTEM_PROMPT]
    CHAT_FAMILY_MISTRAL_V7_TEKKEN, // "v7-tekken" (Mistral Small 3): as v7 without the spaces
    CHAT_FAMILY_PHI3,              // <|role|>\n...<|end|>\n
    CHAT_FAMILY_GEMMA,             // <start_of_turn>role\n...<end_of_turn>\n, system folded into the first turn
    CHAT_FAMILY_COUNT
} chat_family;

// Texts of the vocabulary's special tokens as the templates' bos_token / eos_token see them.
typedef struct {
    const char *bos_text; // NULL or "" when the vocabulary has no BOS token
    const char *eos_text; // NULL or "" when it has no EOS token ("</s>" is used, as llama.cpp does)
    bool add_bos;         // the tokenizer adds BOS itself, so the template's leading BOS is not emitted
} chat_special_tokens;

// The family whose markers the Jinja text carries, or CHAT_FAMILY_UNKNOWN (also for NULL).
chat_family chat_family_detect(const char *tmpl);
// By name ("chatml", "mistral-v3", ...), or CHAT_FAMILY_UNKNOWN.
chat_family chat_family_from_name(const char *name);
const char *chat_family_name(chat_family fam); // static string; asserts on a bad value
// The supported names, comma-separated (static string), for error messages.
const char *chat_family_names(void);

// Renders msgs as fam does. tmpl is the model's template text when it was the source of fam (it decides
// whether the template emits BOS at all: some family members do not), or NULL for the family's usual form.
// Same errors and ownership as inf_chat_render.
inf_status chat_render(chat_family fam, const char *tmpl, const chat_special_tokens *sp, const inf_chat_message *msgs,
                       int n, bool add_assistant_prefix, char **out);

#define CHAT_MAX_MESSAGES (1 << 20)
#define CHAT_MAX_PROMPT_BYTES ((size_t)64 << 20) // the rendered prompt, all messages together

#endif // INFERNO_CHAT_TEMPLATE_H
