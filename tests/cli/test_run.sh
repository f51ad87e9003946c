#!/usr/bin/env bash
# test_run.sh: end-to-end tests of `inferno run`, `info` and `perplexity` through the real binary:
# greedy output equal to llama.cpp's golden text, streaming and --no-stream agree, stdin and --file prompts,
# seeds reproduce, stop strings, the context limit, and clear errors for bad flags, values and files.
# usage: test_run.sh INFERNO_BINARY SHARED_DIR
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
expect_grep() { if grep -q -- "$1" "$2"; then ok; else bad "$3: '$1' not in $(head -c 400 "$2")"; fi; }

# Greedy text equals the golden continuation (32 tokens; EOS cannot win here, see golden/README.md).
want=", there was a little girl named Lily. She loved to play outside in the park. One day, she saw"
"$bin" run -m "$model" -p "Once upon a time" -n 32 --temp 0 >out.txt 2>err.txt; rc=$?
expect_eq "$rc" 0 "run exit code"
expect_eq "$(cat out.txt)" "$want" "greedy text"
expect_grep "prompt: *5 tokens" err.txt "report prompt tokens"
expect_grep "generation: *32 tokens" err.txt "report generated tokens"
expect_grep "tok/s" err.txt "report tok/s"
expect_grep "ms/token" err.txt "report ms/token"
expect_grep "finish reason: length" err.txt "finish reason"

"$bin" run -m "$model" -p "Once upon a time" -n 32 --temp 0 --no-stream >out2.txt 2>/dev/null
expect_eq "$(cat out2.txt)" "$want" "--no-stream text"
printf 'Once upon a time' | "$bin" run -m "$model" -n 32 --temp 0 >out3.txt 2>/dev/null
expect_eq "$(cat out3.txt)" "$want" "stdin prompt"
printf 'Once upon a time' >prompt.txt
"$bin" run -m "$model" -f prompt.txt -n 32 --temp 0 >out4.txt 2>/dev/null
expect_eq "$(cat out4.txt)" "$want" "--file prompt"

# Seeds: same seed, same text; sampling at temperature 1 differs from greedy somewhere over 64 tokens.
"$bin" run -m "$model" -p "Once upon a time" -n 64 --temp 1 --seed 42 >s1.txt 2>/dev/null
"$bin" run -m "$model" -p "Once upon a time" -n 64 --temp 1 --seed 42 >s2.txt 2>/dev/null
"$bin" run -m "$model" -p "Once upon a time" -n 64 --temp 1 --seed 7 >s3.txt 2>/dev/null
expect_eq "$(cat s1.txt)" "$(cat s2.txt)" "same seed same text"
if [ "$(cat s1.txt)" != "$(cat s3.txt)" ]; then ok; else bad "different seeds gave the same 64 tokens"; fi

# A stop string ends generation before it and reports finish reason stop.
"$bin" run -m "$model" -p "Once upon a time" -n 32 --temp 0 --stop "Lily" >st.txt 2>st.err
expect_eq "$(cat st.txt)" ", there was a little girl named " "stop string"
expect_grep "finish reason: stop" st.err "stop finish reason"

# The context limit stops generation with a clear message.
"$bin" run -m "$model" -p "Once upon a time" -n 100 --temp 0 -c 16 >cl.txt 2>cl.err; rc=$?
expect_eq "$rc" 0 "context limit exit code"
expect_grep "context limit reached (16 tokens)" cl.err "context limit message"
expect_grep "generation: *12 tokens" cl.err "context limit token count"
expect_grep "finish reason: length" cl.err "context limit finish reason"
"$bin" run -m "$model" -p "Once upon a time" -c 4 >/dev/null 2>cl2.err; rc=$?
expect_eq "$rc" 1 "prompt longer than context exit code"
expect_grep "does not fit in a context of 4" cl2.err "prompt too long message"

# Bad flags, values and files are named in the error, with a non-zero exit.
check_err() { # want_rc pattern args...
  local want_rc="$1" pat="$2"; shift 2
  "$bin" "$@" >/dev/null 2>e.txt; local rc=$?
  expect_eq "$rc" "$want_rc" "exit code of: $*"
  expect_grep "$pat" e.txt "error of: $*"
}
check_err 2 "unknown option '--bogus'" run -m "$model" -p hi --bogus
check_err 2 "\-\-temp: 'abc' is not a number" run -m "$model" -p hi --temp abc
check_err 2 "\-\-top-p: 2 is out of range" run -m "$model" -p hi --top-p 2
check_err 2 "\-n needs a value" run -m "$model" -p hi -n
check_err 2 "\-\-model is required" run -p hi
check_err 1 "nope.gguf: cannot open" run -m nope.gguf -p hi
head -c 1000 "$model" >trunc.gguf
check_err 1 "trunc.gguf" run -m trunc.gguf -p hi
printf 'GGUX\3\0\0\0' >magic.gguf
check_err 1 "magic" info magic.gguf
check_err 2 "unknown command 'frobnicate'" frobnicate
"$bin" --help >h.txt; expect_grep "perplexity" h.txt "top-level help"
"$bin" run --help >h.txt; expect_grep "\-\-max-tokens" h.txt "run help"

# info describes the model.
"$bin" info "$model" -c 512 >info.txt 2>&1; rc=$?
expect_eq "$rc" 0 "info exit code"
expect_grep "architecture *llama" info.txt "info arch"
expect_grep "layers *5" info.txt "info layers"
expect_grep "512 tokens" info.txt "info vocab"
expect_grep "F32 x48" info.txt "info histogram"
expect_grep "session (ctx 512)" info.txt "info session memory"

# perplexity matches llama.cpp's figure for this file (6.1408 at ctx 128).
"$bin" perplexity -m "$model" -f "$shared/golden/story.txt" -c 128 >ppl.txt 2>/dev/null
expect_grep "Final estimate: PPL = 6.14" ppl.txt "perplexity"
expect_grep "\[8\]6.14" ppl.txt "perplexity chunks"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
