#!/usr/bin/env bash
# test_chat.sh: end-to-end tests of `inferno chat` with messages piped in (standard input not a terminal).
# stories260K has no chat template, so the conversation is ChatML. The reference for every answer is
# `inferno run` (greedy, same -n) on the ChatML text of the conversation so far, rendered by hand here: the
# chat's first answer, its second (decoded on top of the reused KV cache), answers after /reset, with
# --system, with --chat-template llama2 and for a message continued with a backslash must all equal it.
# Also: the KV cache is reused between turns and dropped by /reset (from the --verbose report), /exit,
# the context-full messages, Ctrl-C at the prompt, and bad flags named in errors.
# usage: test_chat.sh INFERNO_BINARY SHARED_DIR
set -u
bin="$1"; shared="${INFERNO_SHARED:-$2}"
model="$shared/models/stories260K.gguf"
[ -x "$bin" ] || { echo "SKIP: $bin not built"; exit 77; }
[ -f "$model" ] || { echo "SKIP: $model not found"; exit 77; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export HOME="$tmp" XDG_CONFIG_HOME="$tmp/xdg"; cd "$tmp"
pass=0; fail=0
ok() { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*" >&2; }
expect_eq() { if [ "$1" == "$2" ]; then ok; else bad "$3: got [$1] want [$2]"; fi; }
expect_grep() { if grep -q -- "$1" "$2"; then ok; else bad "$3: '$1' not in $(head -c 600 "$2")"; fi; }
expect_same_file() { if cmp -s "$1" "$2"; then ok; else bad "$3: $(cat -A "$1" | head -c 600) vs $(cat -A "$2" | head -c 600)"; fi; }

# The greedy answer of `inferno run` to a prompt, exactly, in $ans (run ends its output with one newline;
# command substitution would also eat the answer's own trailing newlines).
answer() { # prompt [max tokens, default 16]
  "$bin" run -m "$model" -p "$1" -n "${2:-16}" --temp 0 >ans.txt 2>/dev/null || bad "run failed on [$1]"
  ans=$(cat ans.txt; printf x); ans=${ans%x}; ans=${ans%$'\n'}
}
nl=$'\n'
turn() { printf '<|im_start|>%s\n%s<|im_end|>\n' "$1" "$2"; } # one ChatML message
prefix='<|im_start|>assistant'"$nl"

# Two messages: two answers, the second on top of the first.
p1="$(turn user 'Hello there')$nl$prefix"
answer "$p1"; a1=$ans
p2="$p1$a1<|im_end|>$nl$(turn user 'How are you?')$nl$prefix"
answer "$p2"; a2=$ans
[ -n "$a1" ] && [ -n "$a2" ] && ok || bad "empty reference answers [$a1] [$a2]"
printf 'Hello there\nHow are you?\n' | "$bin" chat --model "$model" --temp 0 -n 16 -v >out.txt 2>err.txt; rc=$?
expect_eq "$rc" 0 "chat exit code"
printf '%s\n%s\n' "$a1" "$a2" >want.txt
expect_same_file out.txt want.txt "two answers"
# The second turn decodes only the new tokens: the first prompt and answer come from the cache.
expect_eq "$(grep -c 'from the cache' err.txt)" 2 "one report per answer"
expect_grep "0 from the cache" err.txt "first turn starts empty"
reused=$(grep 'from the cache' err.txt | sed -n '2s/.*tokens, \([0-9]*\) from the cache.*/\1/p')
[ "${reused:-0}" -gt 20 ] && ok || bad "second turn reused ${reused:-no} cached tokens"

# /reset forgets the conversation and the cache: the same message gets the first answer again.
printf 'Hello there\n/reset\nHello there\n' | "$bin" chat --model "$model" --temp 0 -n 16 -v >out.txt 2>err.txt; rc=$?
expect_eq "$rc" 0 "reset exit code"
printf '%s\n%s\n' "$a1" "$a1" >want.txt
expect_same_file out.txt want.txt "answers around /reset"
expect_eq "$(grep -c ' 0 from the cache' err.txt)" 2 "/reset clears the cache"

# /exit quits; blank lines are skipped; a backslash continues a message on the next line.
printf '\n  \nHello\\\nthere\n/exit\nnever answered\n' | "$bin" chat --model "$model" --temp 0 -n 16 >out.txt 2>err.txt
rc=$?
expect_eq "$rc" 0 "/exit exit code"
answer "$(turn user "Hello${nl}there")$nl$prefix"
printf '%s\n' "$ans" >want.txt
expect_same_file out.txt want.txt "multi-line message, then /exit"

# --system starts every conversation; --chat-template picks another format (Llama 2: BOS is the tokenizer's).
printf 'Hi\n' | "$bin" chat -m "$model" --system "Be brief." --temp 0 -n 16 >out.txt 2>/dev/null
answer "$(turn system 'Be brief.')$nl$(turn user Hi)$nl$prefix"
printf '%s\n' "$ans" >want.txt
expect_same_file out.txt want.txt "--system"
printf 'Hi\n' | "$bin" chat -m "$model" --chat-template llama2 --temp 0 -n 16 >out.txt 2>/dev/null
answer '[INST] Hi [/INST]'
printf '%s\n' "$ans" >want.txt
expect_same_file out.txt want.txt "--chat-template llama2"

# Mistral v3 puts the system message before the last user message, so the second turn differs from the
# first a few tokens in: the cache is cut back there and the rest decoded again.
trim() { local s="$1"; s="${s#"${s%%[![:space:]]*}"}"; printf '%s' "${s%"${s##*[![:space:]]}"}"; }
answer '[INST] Be brief.'"$nl$nl"'Hello there[/INST]'; m1=$ans
answer '[INST] Hello there[/INST] '"$(trim "$m1")"'</s>[INST] Be brief.'"$nl$nl"'How are you?[/INST]'; m2=$ans
printf 'Hello there\nHow are you?\n' |
  "$bin" chat -m "$model" --chat-template mistral-v3 --system "Be brief." --temp 0 -n 16 -v >out.txt 2>err.txt
rc=$?
expect_eq "$rc" 0 "mistral-v3 exit code"
printf '%s\n%s\n' "$m1" "$m2" >want.txt
expect_same_file out.txt want.txt "mistral-v3: the system message moves"
reused=$(grep 'from the cache' err.txt | sed -n '2s/.*tokens, \([0-9]*\) from the cache.*/\1/p')
first=$(grep 'from the cache' err.txt | sed -n '1s/.*prompt: \([0-9]*\) tokens.*/\1/p')
[ -n "$reused" ] && [ -n "$first" ] && [ "$reused" -lt "$first" ] && ok ||
  bad "mistral-v3 second turn reused ${reused:-no} tokens, want fewer than the first prompt's ${first:-?}"

# The context: a conversation that no longer fits is refused with a hint; an answer that fills it stops.
printf 'Hello there\nHow are you today, my friend?\n/reset\nHello there\n' |
  "$bin" chat -m "$model" --temp 0 -n 16 -c 64 >out.txt 2>err.txt; rc=$?
expect_eq "$rc" 0 "context refusal exit code"
expect_grep "context holds 64: type /reset" err.txt "conversation too long for the context"
printf '%s\n%s\n' "$a1" "$a1" >want.txt
expect_same_file out.txt want.txt "answers around a refused message"
printf 'Hello there\n' | "$bin" chat -m "$model" --temp 0 -n -1 -c 50 >out.txt 2>err.txt; rc=$?
expect_eq "$rc" 0 "context full exit code"
expect_grep "context full (50 tokens): type /reset" err.txt "context full during an answer"

# Ctrl-C at the prompt quits cleanly (messages come from a pipe that stays open). Once the answer is out
# the chat is back at the prompt; if Ctrl-C does not end it, closing the pipe does (and the check fails).
answer "$(turn user Hello)$nl$prefix" 4; printf '%s\n' "$ans" >want.txt
mkfifo in.fifo
"$bin" chat -m "$model" --temp 0 -n 4 <in.fifo >out.txt 2>err.txt &
pid=$!
exec 3>in.fifo
printf 'Hello\n' >&3
for _ in $(seq 100); do cmp -s out.txt want.txt && break; sleep 0.1; done
sleep 0.3
kill -INT "$pid"
for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && bad "Ctrl-C at the prompt did not quit"
exec 3>&-
wait "$pid"; rc=$?
expect_eq "$rc" 0 "Ctrl-C at the prompt exit code"
printf '%s\n\n' "$ans" >want.txt # the answer, then the newline that ends the prompt line
expect_same_file out.txt want.txt "Ctrl-C at the prompt: the answer, then quit"

# Bad flags and values are named; a template name that does not exist is refused.
check_err() { # want_rc pattern args...
  local want_rc="$1" pat="$2"; shift 2
  "$bin" "$@" </dev/null >/dev/null 2>e.txt; local rc=$?
  expect_eq "$rc" "$want_rc" "exit code of: $*"
  expect_grep "$pat" e.txt "error of: $*"
}
check_err 2 "unknown option '--bogus'" chat -m "$model" --bogus
check_err 2 "\-\-temp: 'abc' is not a number" chat -m "$model" --temp abc
check_err 2 "\-\-top-k: 'x' is not an integer" chat -m "$model" --top-k x
check_err 2 "\-n needs a value" chat -m "$model" -n
check_err 2 "\-\-system needs a value" chat -m "$model" --system
check_err 2 "\-\-model is required" chat --temp 0
check_err 2 "\-\-chat-template: unknown chat template name 'nope'" chat -m "$model" --chat-template nope
check_err 1 "nope.gguf: cannot open" chat -m nope.gguf
"$bin" chat --help >h.txt; expect_grep "\-\-chat-template" h.txt "chat help"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
