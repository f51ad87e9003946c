// test_chat_template.c: chat templates against the real templates' texts.
// - Rendering: for every family the same conversation (system, user, assistant, user, then the assistant
//   prefix) is compared with the exact string its reference Jinja template gives, worked out by hand from
//   that template (quoted beside each case); BOS emitted or not by the add_bos rule.
// - Detection: excerpts of real tokenizer.chat_template texts (Qwen2, OpenHermes, Llama 2/3/3.1, TinyLlama,
//   Zephyr, Mistral v0.2/v1/v3/v3-tekken/v7/v7-tekken, Phi-3 mini/small, Gemma 1/3) and the template stored
//   in shared/models/vocab/ggml-vocab-phi-3.gguf are recognised as their family; other families' and
//   garbage templates are not.
// - The public API on models: stories260K (no template: ChatML), name overrides, the Phi-3 vocabulary's
//   real template and BOS rule, an unrecognised template (INF_ERR_UNSUPPORTED naming it), bad roles, and
//   the caps.
#include "gguf_build.h"
#include "test.h"
#include "model/model.h"
#include "tokenizer/chat_template.h"

#define SYS "You are a helpful assistant."
#define U1 "Hello!"
#define A1 " Hi there! " // spaces on both sides: the templates that trim show it
#define U2 "Tell me a joke."

static const inf_chat_message conv[] = {
    {"system", SYS}, {"user", U1}, {"assistant", A1}, {"user", U2},
};
static const int n_conv = 4;

// ---------------------------------------------------------------------------------------------------------
// Real template texts (excerpts where the original is long; tool branches cut).
// ---------------------------------------------------------------------------------------------------------
// Qwen/Qwen2-7B-Instruct
static const char *const tmpl_qwen2 =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' "
    "}}{% endif %}";
// teknium/OpenHermes-2.5-Mistral-7B
static const char *const tmpl_openhermes =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
// meta-llama/Meta-Llama-3-8B-Instruct
static const char *const tmpl_llama3 =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 "
    "%}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";
// meta-llama/Llama-3.1-8B-Instruct (excerpt)
static const char *const tmpl_llama31 =
    "{{- bos_token }}\n{%- if custom_tools is defined %}\n    {%- set tools = custom_tools %}\n{%- endif %}\n"
    "{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}\n{{- \"Cutting Knowledge Date: December 2023\\n\" }}\n"
    "{{- \"Today Date: \" + date_string + \"\\n\\n\" }}\n{{- system_message }}\n{{- \"<|eot_id|>\" }}\n"
    "{%- if add_generation_prompt %}\n    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n{%- endif %}\n";
// TinyLlama/TinyLlama-1.1B-Chat-v1.0 (the same text as HuggingFaceH4/zephyr-7b-beta)
static const char *const tmpl_tinyllama =
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + "
    "eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
    "{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";
// meta-llama/Llama-2-7b-chat-hf
static const char *const tmpl_llama2 =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
    "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif "
    "%}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
    "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
    "loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
    "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if "
    "message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] "
    "== 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";
// mistralai/Mistral-7B-Instruct-v0.2 (original)
static const char *const tmpl_mistral =
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
    "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
    "message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == "
    "'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles "
    "are supported!') }}{% endif %}{% endfor %}";
// Mistral's "v1" template (mistralai cookbook; Mistral-7B-Instruct-v0.1/v0.2 updated)
static const char *const tmpl_mistral_v1 =
    "{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = messages[0]['content'] %}\n    {%- set "
    "loop_messages = messages[1:] %}\n{%- else %}\n    {%- set loop_messages = messages %}\n{%- endif %}\n\n{{- "
    "bos_token }}\n{%- for message in loop_messages %}\n    {%- if message['role'] == 'user' %}\n        {%- if "
    "loop.first and system_message is defined %}\n            {{- ' [INST] ' + system_message + '\\n\\n' + "
    "message['content'] + ' [/INST]' }}\n        {%- else %}\n            {{- ' [INST] ' + message['content'] + ' "
    "[/INST]' }}\n        {%- endif %}\n    {%- elif message['role'] == 'assistant' %}\n        {{- ' ' + "
    "message['content'] + eos_token}}\n    {%- endif %}\n{%- endfor %}\n";
// mistralai/Mistral-7B-Instruct-v0.3 / Mistral-Large-2407 "v3" (excerpt: tool branches cut)
static const char *const tmpl_mistral_v3 =
    "{{- bos_token }}\n{%- for message in loop_messages %}\n    {%- if message[\"role\"] == \"user\" %}\n        {%- if "
    "tools is not none and (message == user_messages[-1]) %}\n            {{- \"[AVAILABLE_TOOLS] [\" }}\n        "
    "{%- endif %}\n        {%- if loop.last and system_message is defined %}\n            {{- \"[INST] \" + "
    "system_message + \"\\n\\n\" + message[\"content\"] + \"[/INST]\" }}\n        {%- else %}\n            {{- \"[INST] "
    "\" + message[\"content\"] + \"[/INST]\" }}\n        {%- endif %}\n    {%- elif message[\"role\"] == "
    "\"assistant\" %}\n        {{- \" \" + message[\"content\"]|trim + eos_token}}\n    {%- endif %}\n{%- endfor %}\n";
// mistralai/Mistral-Nemo-Instruct-2407 "v3-tekken" (excerpt)
static const char *const tmpl_mistral_v3_tekken =
    "{{- bos_token }}\n{%- for message in loop_messages %}\n    {%- if message[\"role\"] == \"user\" %}\n        {%- if "
    "tools is not none and (message == user_messages[-1]) %}\n            {{- \"[AVAILABLE_TOOLS][\" }}\n        {%- "
    "endif %}\n        {%- if loop.last and system_message is defined %}\n            {{- \"[INST]\" + system_message + "
    "\"\\n\\n\" + message[\"content\"] + \"[/INST]\" }}\n        {%- else %}\n            {{- \"[INST]\" + "
    "message[\"content\"] + \"[/INST]\" }}\n        {%- endif %}\n    {%- elif message[\"role\"] == \"assistant\" %}\n  "
    "      {{- message[\"content\"] + eos_token}}\n    {%- endif %}\n{%- endfor %}\n";
// mistralai/Mistral-Large-Instruct-2411 "v7"
static const char *const tmpl_mistral_v7 =
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] "
    "+ '[/INST]' }}{% elif message['role'] == 'system' %}{{ '[SYSTEM_PROMPT] ' + message['content'] + "
    "'[/SYSTEM_PROMPT]' }}{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + eos_token }}{% else "
    "%}{{ raise_exception('Only user, system and assistant roles are supported!') }}{% endif %}{% endfor %}";
// mistralai/Mistral-Small-24B-Instruct-2501 "v7-tekken" (excerpt; default system prompt cut)
static const char *const tmpl_mistral_v7_tekken =
    "{{- bos_token }}\n\n{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = "
    "messages[0]['content'] %}\n    {%- set loop_messages = messages[1:] %}\n{%- endif %}\n\n{{- '[SYSTEM_PROMPT]' + "
    "system_message + '[/SYSTEM_PROMPT]' }}\n\n{%- for message in loop_messages %}\n    {%- if message['role'] == "
    "'user' %}\n        {{- '[INST]' + message['content'] + '[/INST]' }}\n    {%- elif message['role'] == 'system' "
    "%}\n        {{- '[SYSTEM_PROMPT]' + message['content'] + '[/SYSTEM_PROMPT]' }}\n    {%- elif message['role'] == "
    "'assistant' %}\n        {{- message['content'] + eos_token }}\n    {%- endif %}\n{%- endfor %}";
// microsoft/Phi-3-mini-4k-instruct (first release; the text in ggml-vocab-phi-3.gguf)
static const char *const tmpl_phi3_mini =
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') %}{{'<|user|>' + '\n' + "
    "message['content'] + '<|end|>' + '\n' + '<|assistant|>' + '\n'}}{% elif (message['role'] == 'assistant') "
    "%}{{message['content'] + '<|end|>' + '\n'}}{% endif %}{% endfor %}";
// microsoft/Phi-3-small-8k-instruct
static const char *const tmpl_phi3_small =
    "{{ bos_token }}{% for message in messages %}{{'<|' + message['role'] + '|>' + '\n' + message['content'] + "
    "'<|end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% "
    "endif %}";
// microsoft/Phi-3.5-mini-instruct
static const char *const tmpl_phi35 =
    "{% for message in messages %}{% if message['role'] == 'system' and message['content'] %}{{'<|system|>\n' + "
    "message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + "
    "'<|end|>\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + "
    "'<|end|>\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ "
    "eos_token }}{% endif %}";
// google/gemma-7b-it
static const char *const tmpl_gemma =
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% "
    "endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
    "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
    "(message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif "
    "%}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if "
    "add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";
// google/gemma-3-4b-it (excerpt: multimodal branches cut)
static const char *const tmpl_gemma3 =
    "{{ bos_token }}\n{%- if messages[0]['role'] == 'system' -%}\n    {%- set first_user_prefix = "
    "messages[0]['content'] + '\\n\\n' -%}\n    {%- set loop_messages = messages[1:] -%}\n{%- else -%}\n    {%- set "
    "first_user_prefix = \"\" -%}\n    {%- set loop_messages = messages -%}\n{%- endif -%}\n{%- for message in "
    "loop_messages -%}\n    {%- if (message['role'] == 'assistant') -%}\n        {%- set role = \"model\" -%}\n    {%- "
    "else -%}\n        {%- set role = message['role'] -%}\n    {%- endif -%}\n    {{ '<start_of_turn>' + role + '\\n' + "
    "(first_user_prefix if loop.first else \"\") }}\n    {{ message['content'] | trim }}\n    {{ '<end_of_turn>\\n' "
    "}}\n{%- endfor -%}\n{%- if add_generation_prompt -%}\n    {{'<start_of_turn>model\\n'}}\n{%- endif -%}\n";

// Templates of families Inferno does not render.
// microsoft/phi-4
static const char *const tmpl_phi4 =
    "{% for message in messages %}{% if (message['role'] == 'system') %}{{'<|im_start|>system<|im_sep|>' + "
    "message['content'] + '<|im_end|>'}}{% elif (message['role'] == 'user') %}{{'<|im_start|>user<|im_sep|>' + "
    "message['content'] + '<|im_end|><|im_start|>assistant<|im_sep|>'}}{% elif (message['role'] == 'assistant') "
    "%}{{message['content'] + '<|im_end|>'}}{% endif %}{% endfor %}";
// THUDM GLM-Edge: <|user|> and <|assistant|> without an end-of-turn token
static const char *const tmpl_glmedge =
    "{% for item in messages %}{% if item['role'] == 'system' %}<|system|>\n{{ item['content'] }}{% elif "
    "item['role'] == 'user' %}<|user|>\n{{ item['content'] }}{% elif item['role'] == 'assistant' %}<|assistant|>\n{{ "
    "item['content'] }}{% endif %}{% endfor %}<|assistant|>";
// deepseek-ai/deepseek-coder-33b-instruct (excerpt)
static const char *const tmpl_deepseek =
    "{%- for message in messages %}\n    {%- if message['role'] == 'system' %}\n{{ message['content'] }}\n    {%- "
    "else %}\n        {%- if message['role'] == 'user' %}\n{{'### Instruction:\\n' + message['content'] + '\\n'}}\n   "
    "     {%- else %}\n{{'### Response:\\n' + message['content'] + '\\n<|EOT|>\\n'}}\n        {%- endif %}\n    {%- "
    "endif %}\n{%- endfor %}\n";

// ---------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------
static const chat_special_tokens sp_llama = {.bos_text = "<s>", .eos_text = "</s>", .add_bos = true};
static const chat_special_tokens sp_llama_nobos = {.bos_text = "<s>", .eos_text = "</s>", .add_bos = false};

// Renders conv (with the assistant prefix) as fam with template text tmpl and compares with want.
static void check_render(chat_family fam, const char *tmpl, const chat_special_tokens *sp, const inf_chat_message *msgs,
                         int n, const char *want, int line) {
    char *got = NULL;
    inf_status st = chat_render(fam, tmpl, sp, msgs, n, true, &got);
    CHECK_MSG(st == INF_OK, "line %d: %s: %s", line, chat_family_name(fam), inf_last_error());
    CHECK_MSG(got && !strcmp(got, want), "line %d: %s:\n got  [%s]\n want [%s]", line, chat_family_name(fam),
              got ? got : "(null)", want);
    free(got);
}
#define RENDER(fam, tmpl, sp, want) check_render(fam, tmpl, sp, conv, n_conv, want, __LINE__)

// ---------------------------------------------------------------------------------------------------------
// Rendering, family by family. Each expected string follows the template quoted above it by hand.
// ---------------------------------------------------------------------------------------------------------
static void test_render_families(void) {
    // Qwen2: '<|im_start|>' + role + '\n' + content + '<|im_end|>' + '\n', then '<|im_start|>assistant\n'.
    // The template has no bos_token, so nothing is added even when the tokenizer adds no BOS.
    const char *chatml = "<|im_start|>system\n" SYS "<|im_end|>\n<|im_start|>user\n" U1 "<|im_end|>\n"
                         "<|im_start|>assistant\n" A1 "<|im_end|>\n<|im_start|>user\n" U2 "<|im_end|>\n"
                         "<|im_start|>assistant\n";
    RENDER(CHAT_FAMILY_CHATML, tmpl_qwen2, &sp_llama, chatml);
    RENDER(CHAT_FAMILY_CHATML, tmpl_qwen2, &sp_llama_nobos, chatml);
    RENDER(CHAT_FAMILY_CHATML, NULL, &sp_llama_nobos, chatml);

    // Llama 3: bos_token before the first turn; '<|start_header_id|>' + role + '<|end_header_id|>\n\n' +
    // content|trim + '<|eot_id|>'.
    const char *llama3 = "<|start_header_id|>system<|end_header_id|>\n\n" SYS "<|eot_id|>"
                         "<|start_header_id|>user<|end_header_id|>\n\n" U1 "<|eot_id|>"
                         "<|start_header_id|>assistant<|end_header_id|>\n\nHi there!<|eot_id|>"
                         "<|start_header_id|>user<|end_header_id|>\n\n" U2 "<|eot_id|>"
                         "<|start_header_id|>assistant<|end_header_id|>\n\n";
    chat_special_tokens sp3 = {.bos_text = "<|begin_of_text|>", .eos_text = "<|end_of_text|>", .add_bos = true};
    RENDER(CHAT_FAMILY_LLAMA3, tmpl_llama3, &sp3, llama3);
    sp3.add_bos = false; // the tokenizer will not add it: the template's bos_token is emitted
    char buf[1024];
    snprintf(buf, sizeof buf, "<|begin_of_text|>%s", llama3);
    RENDER(CHAT_FAMILY_LLAMA3, tmpl_llama3, &sp3, buf);

    // TinyLlama / Zephyr: '<|role|>\n' + content + eos_token, and the newline after each "}}" survives
    // trim_blocks; the prefix is '<|assistant|>' plus that newline. No bos_token in the template.
    const char *zephyr = "<|system|>\n" SYS "</s>\n<|user|>\n" U1 "</s>\n<|assistant|>\n" A1 "</s>\n"
                         "<|user|>\n" U2 "</s>\n<|assistant|>\n";
    RENDER(CHAT_FAMILY_ZEPHYR, tmpl_tinyllama, &sp_llama, zephyr);
    RENDER(CHAT_FAMILY_ZEPHYR, tmpl_tinyllama, &sp_llama_nobos, zephyr);
    chat_special_tokens sp_stablelm = {.bos_text = "<|endoftext|>", .eos_text = "<|endoftext|>", .add_bos = false};
    RENDER(CHAT_FAMILY_ZEPHYR, tmpl_tinyllama, &sp_stablelm,
           "<|system|>\n" SYS "<|endoftext|>\n<|user|>\n" U1 "<|endoftext|>\n<|assistant|>\n" A1 "<|endoftext|>\n"
           "<|user|>\n" U2 "<|endoftext|>\n<|assistant|>\n");

    // Llama 2: first content = '<<SYS>>\n' + system + '\n<</SYS>>\n\n' + content; user: bos_token + '[INST] '
    // + content.strip() + ' [/INST]'; assistant: ' ' + content.strip() + ' ' + eos_token. The first BOS is
    // the tokenizer's; the one inside the history is text.
    const char *llama2 = "[INST] <<SYS>>\n" SYS "\n<</SYS>>\n\n" U1 " [/INST] Hi there! </s><s>[INST] " U2 " [/INST]";
    RENDER(CHAT_FAMILY_LLAMA2, tmpl_llama2, &sp_llama, llama2);
    snprintf(buf, sizeof buf, "<s>%s", llama2);
    RENDER(CHAT_FAMILY_LLAMA2, tmpl_llama2, &sp_llama_nobos, buf);

    // Mistral v0.2 original: bos_token; '[INST] ' + content + ' [/INST]'; content + eos_token. The template
    // refuses a system message; it goes before the first user message with a blank line, as Mistral's
    // later templates for the same model do.
    RENDER(CHAT_FAMILY_MISTRAL, tmpl_mistral, &sp_llama, "[INST] " SYS "\n\n" U1 " [/INST]" A1 "</s>[INST] " U2 " [/INST]");
    RENDER(CHAT_FAMILY_MISTRAL, tmpl_mistral, &sp_llama_nobos,
           "<s>[INST] " SYS "\n\n" U1 " [/INST]" A1 "</s>[INST] " U2 " [/INST]");

    // v1: ' [INST] ' + system_message + '\n\n' + content + ' [/INST]' on the first turn; ' ' + content +
    // eos_token.
    RENDER(CHAT_FAMILY_MISTRAL_V1, tmpl_mistral_v1, &sp_llama,
           " [INST] " SYS "\n\n" U1 " [/INST] " A1 "</s> [INST] " U2 " [/INST]");

    // v3: the system message joins the last user turn ("loop.last"); "[INST] " + content + "[/INST]";
    // " " + content|trim + eos_token.
    RENDER(CHAT_FAMILY_MISTRAL_V3, tmpl_mistral_v3, &sp_llama,
           "[INST] " U1 "[/INST] Hi there!</s>[INST] " SYS "\n\n" U2 "[/INST]");
    // v3-tekken: "[INST]" + content + "[/INST]"; content + eos_token (no trim).
    RENDER(CHAT_FAMILY_MISTRAL_V3_TEKKEN, tmpl_mistral_v3_tekken, &sp_llama,
           "[INST]" U1 "[/INST]" A1 "</s>[INST]" SYS "\n\n" U2 "[/INST]");
    // v7: '[SYSTEM_PROMPT] ' + content + '[/SYSTEM_PROMPT]'; '[INST] ' + content + '[/INST]'; ' ' + content +
    // eos_token.
    RENDER(CHAT_FAMILY_MISTRAL_V7, tmpl_mistral_v7, &sp_llama,
           "[SYSTEM_PROMPT] " SYS "[/SYSTEM_PROMPT][INST] " U1 "[/INST] " A1 "</s>[INST] " U2 "[/INST]");
    // v7-tekken: the same without the spaces.
    RENDER(CHAT_FAMILY_MISTRAL_V7_TEKKEN, tmpl_mistral_v7_tekken, &sp_llama,
           "[SYSTEM_PROMPT]" SYS "[/SYSTEM_PROMPT][INST]" U1 "[/INST]" A1 "</s>[INST]" U2 "[/INST]");

    // Phi-3.5 / Phi-3-small: '<|' + role + '|>\n' + content + '<|end|>\n', prefix '<|assistant|>\n'.
    const char *phi3 = "<|system|>\n" SYS "<|end|>\n<|user|>\n" U1 "<|end|>\n<|assistant|>\n" A1 "<|end|>\n"
                       "<|user|>\n" U2 "<|end|>\n<|assistant|>\n";
    chat_special_tokens sp_phi = {.bos_text = "<s>", .eos_text = "<|endoftext|>", .add_bos = false};
    RENDER(CHAT_FAMILY_PHI3, tmpl_phi35, &sp_phi, phi3); // no bos_token in Phi-3.5's template
    snprintf(buf, sizeof buf, "<s>%s", phi3);
    RENDER(CHAT_FAMILY_PHI3, tmpl_phi3_small, &sp_phi, buf); // Phi-3-small's starts with bos_token

    // Gemma 3: bos_token; '<start_of_turn>' + role ('model' for assistant) + '\n' + (system + '\n\n' on the
    // first turn) + content|trim + '<end_of_turn>\n'; prefix '<start_of_turn>model\n'.
    const char *gemma = "<start_of_turn>user\n" SYS "\n\n" U1 "<end_of_turn>\n<start_of_turn>model\nHi there!"
                        "<end_of_turn>\n<start_of_turn>user\n" U2 "<end_of_turn>\n<start_of_turn>model\n";
    chat_special_tokens sp_gemma = {.bos_text = "<bos>", .eos_text = "<eos>", .add_bos = true};
    RENDER(CHAT_FAMILY_GEMMA, tmpl_gemma3, &sp_gemma, gemma);
    sp_gemma.add_bos = false;
    snprintf(buf, sizeof buf, "<bos>%s", gemma);
    RENDER(CHAT_FAMILY_GEMMA, tmpl_gemma3, &sp_gemma, buf);

    // Without the assistant prefix, the families that have one end after the last user turn.
    char *got = NULL;
    CHECK(chat_render(CHAT_FAMILY_CHATML, NULL, &sp_llama, conv, 2, false, &got) == INF_OK);
    CHECK_STR(got, "<|im_start|>system\n" SYS "<|im_end|>\n<|im_start|>user\n" U1 "<|im_end|>\n");
    free(got);
    got = NULL;
    CHECK(chat_render(CHAT_FAMILY_GEMMA, NULL, &sp_llama, conv, 2, false, &got) == INF_OK);
    CHECK_STR(got, "<start_of_turn>user\n" SYS "\n\n" U1 "<end_of_turn>\n");
    free(got);
    // An empty conversation renders to the prefix alone (or to "").
    got = NULL;
    CHECK(chat_render(CHAT_FAMILY_LLAMA3, NULL, &sp_llama, NULL, 0, true, &got) == INF_OK);
    CHECK_STR(got, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    free(got);
    got = NULL;
    CHECK(chat_render(CHAT_FAMILY_LLAMA2, NULL, &sp_llama, NULL, 0, true, &got) == INF_OK);
    CHECK_STR(got, "");
    free(got);

    // No system message: Llama 2 has no <<SYS>> block, Gemma no prefix, Mistral v3 nothing before the turn.
    check_render(CHAT_FAMILY_LLAMA2, tmpl_llama2, &sp_llama, conv + 1, 3,
                 "[INST] " U1 " [/INST] Hi there! </s><s>[INST] " U2 " [/INST]", __LINE__);
    check_render(CHAT_FAMILY_GEMMA, tmpl_gemma, &sp_gemma, conv + 1, 1,
                 "<bos><start_of_turn>user\n" U1 "<end_of_turn>\n<start_of_turn>model\n", __LINE__);
    check_render(CHAT_FAMILY_MISTRAL_V3, tmpl_mistral_v3, &sp_llama, conv + 1, 1, "[INST] " U1 "[/INST]", __LINE__);
    // Llama 2 strips the whole first content, the <<SYS>> block included: trailing space of the user text.
    inf_chat_message spaced[] = {{"system", SYS}, {"user", "  " U1 "  \n"}};
    check_render(CHAT_FAMILY_LLAMA2, NULL, &sp_llama, spaced, 2,
                 "[INST] <<SYS>>\n" SYS "\n<</SYS>>\n\n  " U1 " [/INST]", __LINE__);
    // Families with a system turn render a later system message where it stands.
    inf_chat_message late_sys[] = {{"user", U1}, {"system", SYS}};
    check_render(CHAT_FAMILY_CHATML, NULL, &sp_llama, late_sys, 2,
                 "<|im_start|>user\n" U1 "<|im_end|>\n<|im_start|>system\n" SYS "<|im_end|>\n<|im_start|>assistant\n",
                 __LINE__);
}

// ---------------------------------------------------------------------------------------------------------
// Detection
// ---------------------------------------------------------------------------------------------------------
static void check_detect(const char *tmpl, chat_family want, const char *what) {
    chat_family got = chat_family_detect(tmpl);
    CHECK_MSG(got == want, "%s: detected %s, want %s", what, got >= 0 ? chat_family_name(got) : "unknown",
              want >= 0 ? chat_family_name(want) : "unknown");
}

static void test_detect(void) {
    check_detect(tmpl_qwen2, CHAT_FAMILY_CHATML, "Qwen2");
    check_detect(tmpl_openhermes, CHAT_FAMILY_CHATML, "OpenHermes");
    check_detect(tmpl_llama3, CHAT_FAMILY_LLAMA3, "Llama 3");
    check_detect(tmpl_llama31, CHAT_FAMILY_LLAMA3, "Llama 3.1");
    check_detect(tmpl_tinyllama, CHAT_FAMILY_ZEPHYR, "TinyLlama");
    check_detect(tmpl_llama2, CHAT_FAMILY_LLAMA2, "Llama 2");
    check_detect(tmpl_mistral, CHAT_FAMILY_MISTRAL, "Mistral v0.2");
    check_detect(tmpl_mistral_v1, CHAT_FAMILY_MISTRAL_V1, "Mistral v1");
    check_detect(tmpl_mistral_v3, CHAT_FAMILY_MISTRAL_V3, "Mistral v3");
    check_detect(tmpl_mistral_v3_tekken, CHAT_FAMILY_MISTRAL_V3_TEKKEN, "Mistral v3-tekken");
    check_detect(tmpl_mistral_v7, CHAT_FAMILY_MISTRAL_V7, "Mistral v7");
    check_detect(tmpl_mistral_v7_tekken, CHAT_FAMILY_MISTRAL_V7_TEKKEN, "Mistral v7-tekken");
    check_detect(tmpl_phi3_mini, CHAT_FAMILY_PHI3, "Phi-3 mini");
    check_detect(tmpl_phi3_small, CHAT_FAMILY_PHI3, "Phi-3 small");
    check_detect(tmpl_phi35, CHAT_FAMILY_PHI3, "Phi-3.5");
    check_detect(tmpl_gemma, CHAT_FAMILY_GEMMA, "Gemma");
    check_detect(tmpl_gemma3, CHAT_FAMILY_GEMMA, "Gemma 3");
    // Zephyr with the end token spelled out (stabilityai/stablelm-zephyr-3b style).
    check_detect("{{ '<|user|>\n' + message['content'] + '<|endoftext|>' }}{{ '<|assistant|>\n' }}",
                 CHAT_FAMILY_ZEPHYR, "Zephyr <|endoftext|>");

    check_detect(tmpl_phi4, CHAT_FAMILY_UNKNOWN, "Phi-4");
    check_detect(tmpl_glmedge, CHAT_FAMILY_UNKNOWN, "GLM-Edge");
    check_detect(tmpl_deepseek, CHAT_FAMILY_UNKNOWN, "DeepSeek Coder");
    check_detect("{{ messages }} garbage <|assistant|>", CHAT_FAMILY_UNKNOWN, "garbage");
    check_detect("", CHAT_FAMILY_UNKNOWN, "empty");
    check_detect(NULL, CHAT_FAMILY_UNKNOWN, "NULL");

    // Names: every family by its name, and back.
    for (int f = 0; f < CHAT_FAMILY_COUNT; f++) {
        CHECK_EQ_INT(chat_family_from_name(chat_family_name((chat_family)f)), f);
        CHECK(strstr(chat_family_names(), chat_family_name((chat_family)f)) != NULL);
    }
    CHECK_EQ_INT(chat_family_from_name("ChatML"), CHAT_FAMILY_UNKNOWN); // names are exact
    CHECK_EQ_INT(chat_family_from_name("vicuna"), CHAT_FAMILY_UNKNOWN);
    CHECK_EQ_INT(chat_family_from_name(NULL), CHAT_FAMILY_UNKNOWN);
}

// ---------------------------------------------------------------------------------------------------------
// Bad messages and caps
// ---------------------------------------------------------------------------------------------------------
static void test_errors(void) {
    char *out = (char *)"sentinel";
    inf_chat_message tool[] = {{"user", U1}, {"tool", "42"}};
    CHECK_EQ_INT(chat_render(CHAT_FAMILY_CHATML, NULL, &sp_llama, tool, 2, true, &out), INF_ERR_INVALID_ARG);
    CHECK(out == NULL);
    CHECK_MSG(strstr(inf_last_error(), "'tool'") && strstr(inf_last_error(), "message 1"), "%s", inf_last_error());
    inf_chat_message no_content[] = {{"user", NULL}};
    CHECK_EQ_INT(chat_render(CHAT_FAMILY_CHATML, NULL, &sp_llama, no_content, 1, true, &out), INF_ERR_INVALID_ARG);
    inf_chat_message no_role[] = {{NULL, U1}};
    CHECK_EQ_INT(chat_render(CHAT_FAMILY_CHATML, NULL, &sp_llama, no_role, 1, true, &out), INF_ERR_INVALID_ARG);
    // A second system message where the template takes only a leading one.
    inf_chat_message late_sys[] = {{"user", U1}, {"system", SYS}};
    CHECK_EQ_INT(chat_render(CHAT_FAMILY_GEMMA, NULL, &sp_llama, late_sys, 2, true, &out), INF_ERR_INVALID_ARG);
    CHECK_MSG(strstr(inf_last_error(), "gemma") != NULL, "%s", inf_last_error());
    CHECK_EQ_INT(chat_render(CHAT_FAMILY_CHATML, NULL, &sp_llama, conv, -1, true, &out), INF_ERR_INVALID_ARG);
    CHECK_EQ_INT(chat_render(CHAT_FAMILY_CHATML, NULL, &sp_llama, conv, CHAT_MAX_MESSAGES + 1, true, &out),
                 INF_ERR_INVALID_ARG);

    // The size cap: 65 messages of 1 MiB exceed 64 MiB.
    size_t big_len = (size_t)1 << 20;
    char *big = malloc(big_len + 1);
    if (big) {
        memset(big, 'x', big_len);
        big[big_len] = '\0';
        enum { N_BIG = 65 };
        inf_chat_message *many = calloc(N_BIG, sizeof *many);
        if (many) {
            for (int i = 0; i < N_BIG; i++) many[i] = (inf_chat_message){"user", big};
            out = (char *)"sentinel";
            CHECK_EQ_INT(chat_render(CHAT_FAMILY_CHATML, NULL, &sp_llama, many, N_BIG, true, &out), INF_ERR_NOMEM);
            CHECK(out == NULL);
            CHECK_MSG(strstr(inf_last_error(), "exceeds") != NULL, "%s", inf_last_error());
            // 60 of them fit.
            CHECK_EQ_INT(chat_render(CHAT_FAMILY_CHATML, NULL, &sp_llama, many, 60, true, &out), INF_OK);
            CHECK(out && strlen(out) == 60 * (big_len + strlen("<|im_start|>user\n<|im_end|>\n")) +
                                            strlen("<|im_start|>assistant\n"));
            free(out);
            free(many);
        }
        free(big);
    }
}

// ---------------------------------------------------------------------------------------------------------
// The public API on models
// ---------------------------------------------------------------------------------------------------------
static void test_model_stories(const char *shared) {
    char path[1024];
    snprintf(path, sizeof path, "%s/models/stories260K.gguf", shared);
    inf_log_set_level(INF_LOG_WARN);
    inf_model *m = NULL;
    if (inf_model_load(path, NULL, &m) != INF_OK) {
        CHECK_MSG(false, "load %s: %s", path, inf_last_error());
        return;
    }
    // No tokenizer.chat_template: ChatML.
    CHECK_STR(inf_chat_template_detect(m), "chatml");
    char *out = NULL;
    CHECK(inf_chat_render(m, NULL, conv, n_conv, true, &out) == INF_OK);
    CHECK_STR(out, "<|im_start|>system\n" SYS "<|im_end|>\n<|im_start|>user\n" U1 "<|im_end|>\n"
                   "<|im_start|>assistant\n" A1 "<|im_end|>\n<|im_start|>user\n" U2 "<|im_end|>\n"
                   "<|im_start|>assistant\n");
    free(out);
    // Overrides by name, with this vocabulary's BOS "<s>" (added by the tokenizer) and EOS "</s>".
    out = NULL;
    CHECK(inf_chat_render(m, "llama2", conv, n_conv, true, &out) == INF_OK);
    CHECK_STR(out, "[INST] <<SYS>>\n" SYS "\n<</SYS>>\n\n" U1 " [/INST] Hi there! </s><s>[INST] " U2 " [/INST]");
    free(out);
    out = NULL;
    CHECK(inf_chat_render(m, "zephyr", conv + 1, 1, true, &out) == INF_OK);
    CHECK_STR(out, "<|user|>\n" U1 "</s>\n<|assistant|>\n");
    free(out);
    out = NULL;
    CHECK(inf_chat_render(m, "gemma", conv, 2, true, &out) == INF_OK);
    CHECK_STR(out, "<start_of_turn>user\n" SYS "\n\n" U1 "<end_of_turn>\n<start_of_turn>model\n");
    free(out);
    out = (char *)"sentinel";
    CHECK_EQ_INT(inf_chat_render(m, "vicuna", conv, n_conv, true, &out), INF_ERR_INVALID_ARG);
    CHECK(out == NULL);
    CHECK_MSG(strstr(inf_last_error(), "'vicuna'") && strstr(inf_last_error(), "chatml"), "%s", inf_last_error());
    inf_chat_message bad[] = {{"user", U1}, {"function", "x"}};
    CHECK_EQ_INT(inf_chat_render(m, NULL, bad, 2, true, &out), INF_ERR_INVALID_ARG);
    CHECK_MSG(strstr(inf_last_error(), "'function'") != NULL, "%s", inf_last_error());
    CHECK_EQ_INT(inf_chat_render(NULL, NULL, conv, n_conv, true, &out), INF_ERR_INVALID_ARG);
    CHECK_EQ_INT(inf_chat_render(m, NULL, conv, n_conv, true, NULL), INF_ERR_INVALID_ARG);
    CHECK(inf_chat_template_detect(NULL) == NULL);
    inf_model_free(m);
}

// A model assembled by hand from the Phi-3 vocabulary file (the real template and tokenizer; no weights:
// the chat code reads only the GGUF metadata and the vocabulary), and with a GGUF holding another template.
static void test_model_phi3_vocab(const char *shared) {
    char path[1024];
    snprintf(path, sizeof path, "%s/models/vocab/ggml-vocab-phi-3.gguf", shared);
    gguf_file *f = NULL;
    inf_vocab *v = NULL;
    if (gguf_open(path, &f) != INF_OK || vocab_load(f, &v) != INF_OK) {
        CHECK_MSG(false, "%s: %s", path, inf_last_error());
        gguf_close(f);
        return;
    }
    struct inf_model m = {.gguf = f, .vocab = v};
    const char *tmpl = NULL;
    CHECK(gguf_get_str(f, "tokenizer.chat_template", &tmpl, NULL) == INF_OK);
    CHECK(tmpl && !strcmp(tmpl, tmpl_phi3_mini)); // the copy above is the file's text
    CHECK_STR(inf_chat_template_detect(&m), "phi3");
    // The template: bos_token (the tokenizer adds BOS: add_bos_token is true), then per user
    // '<|user|>' + '\n' + content + '<|end|>' + '\n' + '<|assistant|>' + '\n' and per answer
    // content + '<|end|>' + '\n'. (It drops system messages; Inferno renders them as Phi-3.5 does.)
    char *out = NULL;
    CHECK(inf_chat_render(&m, NULL, conv + 1, 3, true, &out) == INF_OK);
    CHECK_STR(out, "<|user|>\n" U1 "<|end|>\n<|assistant|>\n" A1 "<|end|>\n<|user|>\n" U2 "<|end|>\n<|assistant|>\n");
    // Its special tokens are real tokens of this vocabulary: <|user|> is one id, not text.
    if (out) {
        int32_t ids[256];
        int n_ids = 0;
        CHECK(vocab_tokenize(v, out, strlen(out), true, true, ids, 256, &n_ids) == INF_OK);
        CHECK(n_ids > 2 && ids[0] == vocab_bos(v) && !strcmp(vocab_token_text(v, ids[1]), "<|user|>"));
    }
    free(out);

    // The same vocabulary under an unrecognised template: INF_ERR_UNSUPPORTED with its first 60 bytes.
    gguf_build b;
    gb_init(&b, 3);
    gb_header(&b, 0, 1);
    gb_kv_str(&b, "tokenizer.chat_template",
              "{% for m in messages %}\n### {{ m['role'] }}: {{ m['content'] }}\n{% endfor %} and more text after sixty");
    gguf_file *f2 = NULL;
    if (gguf_open_memory(b.data, b.len, "mem.gguf", &f2) == INF_OK) {
        struct inf_model m2 = {.gguf = f2, .vocab = v};
        CHECK(inf_chat_template_detect(&m2) == NULL);
        out = (char *)"sentinel";
        CHECK_EQ_INT(inf_chat_render(&m2, NULL, conv, n_conv, true, &out), INF_ERR_UNSUPPORTED);
        CHECK(out == NULL);
        const char *e = inf_last_error();
        CHECK_MSG(strstr(e, "\"{% for m in messages %} ### {{ m['role'] }}: {{ m['content']...\"") != NULL,
                  "%s", e);
        CHECK_MSG(strstr(e, "sixty") == NULL && strstr(e, "mistral-v3") != NULL, "%s", e);
        // A name still overrides it.
        out = NULL;
        CHECK(inf_chat_render(&m2, "phi3", conv + 1, 1, true, &out) == INF_OK);
        CHECK_STR(out, "<|user|>\n" U1 "<|end|>\n<|assistant|>\n"); // BOS is the tokenizer's
        free(out);
        gguf_close(f2);
    } else {
        CHECK_MSG(false, "gguf_open_memory: %s", inf_last_error());
    }
    gb_free(&b);
    vocab_free(v);
    gguf_close(f);
}

int main(void) {
    test_render_families();
    test_detect();
    test_errors();
    const char *shared = test_shared_dir();
    char probe[1024];
    snprintf(probe, sizeof probe, "%s/models/stories260K.gguf", shared);
    FILE *pf = fopen(probe, "rb");
    if (pf) {
        fclose(pf);
        test_model_stories(shared);
        test_model_phi3_vocab(shared);
    } else {
        printf("shared material not found at %s: model tests skipped\n", shared);
    }
    return test_summary();
}
