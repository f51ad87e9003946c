#!/usr/bin/env bash
# test_tools.sh: end-to-end tests of `inferno quantize` and `inferno synth` through the real binary:
# quantized micro files the size of llama-quantize's and loadable by `inferno info` with the same type
# histogram, deterministic synth output that runs, and clear errors (non-zero exit, the problem named, no
# file left behind) for bad flags, quantized or missing inputs, unwritable outputs and input == output.
# A tinyllama-1.1b Q4_K_M synth (about 640 MB) runs only when a micro synth predicts it takes under 60 s and
# /tmp has room; otherwise that part is skipped with a note (Debug and sanitizer builds are too slow).
# INFERNO_TEST_TINYLLAMA=1 runs it anyway, =0 never.
# usage: test_tools.sh INFERNO_BINARY SHARED_DIR
set -u
bin="$1"; shared="$2"
syn="$shared/models/synthetic"
vocab="$shared/models/vocab/ggml-vocab-llama-spm.gguf"
[ -x "$bin" ] || { echo "SKIP: $bin not built"; exit 77; }
[ -f "$syn/micro-F32.gguf" ] || { echo "SKIP: $syn/micro-F32.gguf not found"; exit 77; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export HOME="$tmp" XDG_CONFIG_HOME="$tmp/xdg"; cd "$tmp"
pass=0; fail=0
ok() { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*" >&2; }
expect_eq() { if [ "$1" == "$2" ]; then ok; else bad "$3: got [$1] want [$2]"; fi; }
expect_grep() { if grep -q -- "$1" "$2"; then ok; else bad "$3: '$1' not in $(head -c 400 "$2")"; fi; }
expect_none() { if [ ! -e "$1" ] && [ ! -e "$1.tmp" ]; then ok; else bad "$2: $1 or $1.tmp left behind"; fi; }
size_of() { stat -c %s "$1" 2>/dev/null || echo 0; }

# Help and usage.
"$bin" quantize --help >help.txt; expect_eq "$?" 0 "quantize --help exit code"
expect_grep "Q4_K_M" help.txt "quantize --help lists types"
"$bin" quantize >/dev/null 2>u.err; expect_eq "$?" 2 "quantize without arguments"
expect_grep "expected IN.gguf OUT.gguf TYPE" u.err "quantize usage message"
"$bin" synth --help >help.txt; expect_eq "$?" 0 "synth --help exit code"
expect_grep "tinyllama-1.1b" help.txt "synth --help lists shapes"
"$bin" quantize --bogus a b c >/dev/null 2>u.err; expect_eq "$?" 2 "quantize unknown option"
expect_grep "unknown option '--bogus'" u.err "quantize unknown option message"

# --pure quantization of micro-F32 gives files the size of llama-quantize's, with its tensor types.
for t in Q8_0 Q4_0 Q5_1 Q2_K Q6_K; do
    "$bin" quantize -q --pure "$syn/micro-F32.gguf" "p-$t.gguf" "$t"; expect_eq "$?" 0 "quantize --pure $t"
    expect_eq "$(size_of "p-$t.gguf")" "$(size_of "$syn/micro-$t.gguf")" "size of --pure $t"
    "$bin" info "p-$t.gguf" >info.txt 2>&1
    expect_grep "tensor types *F32 x9 $t x30" info.txt "info histogram of --pure $t"
done
# The Q4_K_M mix: 25 Q4_K and 5 Q6_K like micro-Q4_K_M-mix.gguf, and the same size.
"$bin" quantize -t 2 "$syn/micro-F32.gguf" mix.gguf Q4_K_M >q.out 2>q.err; expect_eq "$?" 0 "quantize Q4_K_M"
expect_grep "quantize: .*micro-F32.gguf -> mix.gguf (Q4_K_M, 2 threads)" q.err "quantize summary line"
expect_eq "$(size_of mix.gguf)" "$(size_of "$syn/micro-Q4_K_M-mix.gguf")" "size of the Q4_K_M mix"
"$bin" info mix.gguf >info.txt 2>&1
expect_grep "tensor types *F32 x9 Q4_K x25 Q6_K x5" info.txt "info histogram of the Q4_K_M mix"
"$bin" quantize -v "$syn/micro-F32.gguf" mix2.gguf q4_k >/dev/null 2>v.err
expect_grep "blk.3.ffn_down.weight *F32 *-> Q6_K" v.err "--verbose tensor lines"
cmp -s mix.gguf mix2.gguf && ok || bad "Q4_K alias and thread count change the output"

# Errors: a status, the problem named, nothing left behind.
"$bin" quantize "$syn/micro-Q4_0.gguf" e.gguf Q8_0 >/dev/null 2>e.err; expect_eq "$?" 1 "quantized input exit code"
expect_grep "micro-Q4_0.gguf: tensor '.*' is Q4_0" e.err "quantized input message"
expect_none e.gguf "quantized input"
"$bin" quantize "$syn/micro-F32.gguf" e.gguf Q4_X >/dev/null 2>e.err; expect_eq "$?" 1 "unknown type exit code"
expect_grep "unknown type 'Q4_X'" e.err "unknown type message"
expect_none e.gguf "unknown type"
"$bin" quantize "$tmp/nope.gguf" e.gguf Q8_0 >/dev/null 2>e.err; expect_eq "$?" 1 "missing input exit code"
expect_grep "nope.gguf" e.err "missing input message"
expect_none e.gguf "missing input"
"$bin" quantize "$syn/micro-F32.gguf" "$tmp/no/dir/e.gguf" Q8_0 >/dev/null 2>e.err; expect_eq "$?" 1 "unwritable output exit code"
expect_grep "no/dir/e.gguf" e.err "unwritable output message"
cp p-Q8_0.gguf self.gguf; before=$(cksum <self.gguf)
"$bin" quantize self.gguf self.gguf Q4_0 >/dev/null 2>e.err; expect_eq "$?" 1 "input == output exit code"
expect_grep "would overwrite the input" e.err "input == output message"
"$bin" quantize self.gguf ./../$(basename "$tmp")/self.gguf Q4_0 >/dev/null 2>e.err
expect_eq "$?" 1 "input == output by another path"
expect_eq "$(cksum <self.gguf)" "$before" "input untouched"
echo keep >kept.gguf
"$bin" quantize "$syn/micro-Q4_0.gguf" kept.gguf Q8_0 >/dev/null 2>&1
expect_eq "$(cat kept.gguf)" "keep" "failed run leaves an existing output alone"

# synth micro: deterministic per seed, runs, and its tensors are micro-F32's.
"$bin" synth -q --shape micro --vocab "$shared/models/stories260K.gguf" --out s1.gguf --type Q8_0 --seed 5
expect_eq "$?" 0 "synth micro exit code"
"$bin" synth -q --shape micro --vocab "$shared/models/stories260K.gguf" --out s2.gguf --type Q8_0 --seed 5
"$bin" synth -q --shape micro --vocab "$shared/models/stories260K.gguf" --out s3.gguf --type Q8_0 --seed 6
cmp -s s1.gguf s2.gguf && ok || bad "same seed gave different files"
cmp -s s1.gguf s3.gguf && bad "different seeds gave the same file" || ok
"$bin" info s1.gguf >info.txt 2>&1; expect_eq "$?" 0 "info on a synth model"
expect_grep "tensor types *F32 x9 Q8_0 x30" info.txt "synth Q8_0 histogram"
expect_grep "layers *4" info.txt "synth micro layers"
"$bin" run -m s1.gguf -p "Once upon a time" -n 8 --temp 0 >run.out 2>run.err; expect_eq "$?" 0 "run on a synth model"
expect_grep "generation: *8 tokens" run.err "synth model generates"
# The tests' head-size-128 shape (test_cuda runs it on the GPU against the CPU): its header and a CPU run.
"$bin" synth -q --shape micro-hd128 --vocab "$shared/models/stories260K.gguf" --out h1.gguf --type Q8_0
expect_eq "$?" 0 "synth micro-hd128 exit code"
"$bin" info h1.gguf >info.txt 2>&1; expect_grep "attention heads *4 (kv 1, head dim 128)" info.txt "micro-hd128 heads"
"$bin" run -m h1.gguf -p "Once upon a time" -n 8 --temp 0 >run.out 2>run.err; expect_eq "$?" 0 "run on micro-hd128"
expect_grep "generation: *8 tokens" run.err "micro-hd128 generates"
# The micro shape with the Llama vocabulary: 32000 rows, the count comes from the vocabulary.
"$bin" synth --shape micro --vocab "$vocab" --out sv.gguf --type Q4_0 >/dev/null 2>sv.err
expect_eq "$?" 0 "synth with a 32000-token vocabulary"
expect_grep "has 32000 tokens" sv.err "synth reports the vocabulary size"
"$bin" info sv.gguf >info.txt 2>&1; expect_grep "32000 tokens" info.txt "synth vocabulary in info"

"$bin" synth --shape gpt-9 --vocab "$vocab" --out e.gguf >/dev/null 2>e.err; expect_eq "$?" 1 "unknown shape exit code"
expect_grep "unknown shape 'gpt-9' (known: micro, tinyllama-1.1b" e.err "unknown shape message"
expect_none e.gguf "unknown shape"
"$bin" synth --shape micro --out e.gguf >/dev/null 2>e.err; expect_eq "$?" 2 "synth without --vocab"
"$bin" synth --shape micro --vocab "$vocab" --out e.gguf --seed -3 >/dev/null 2>e.err; expect_eq "$?" 2 "negative seed"
expect_grep "seed: '-3'" e.err "negative seed message"
"$bin" synth --shape micro --vocab "$tmp/none.gguf" --out e.gguf >/dev/null 2>e.err; expect_eq "$?" 1 "missing vocabulary"
expect_grep "none.gguf" e.err "missing vocabulary message"
expect_none e.gguf "missing vocabulary"

# tinyllama-1.1b Q4_K_M, when this build is fast enough: predicted from the time of a micro Q4_K_M synth
# (3.4M of tinyllama's 1100M parameters, same mix of types; its fixed costs make the guess pessimistic).
free_kb=$(df -Pk "$tmp" | awk 'NR==2 {print $4}')
t0=$(date +%s.%N)
"$bin" synth -q --shape micro --vocab "$shared/models/stories260K.gguf" --out pred.gguf --type Q4_K_M
t1=$(date +%s.%N)
predict=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%d", (b - a) * 1100 / 3.4 }')
force="${INFERNO_TEST_TINYLLAMA:-}" # 1: run whatever the prediction; 0: never
if [ "$free_kb" -lt 2000000 ] || [ "$force" == "0" ]; then
    echo "note: tinyllama-1.1b synth skipped: ${free_kb} KB free in $tmp, INFERNO_TEST_TINYLLAMA='$force'"
elif [ "$predict" -gt 60 ] && [ "$force" != "1" ]; then
    echo "note: tinyllama-1.1b synth skipped: predicted ${predict} s (over 60 s) for this build"
else
    start=$(date +%s)
    "$bin" synth --shape tinyllama-1.1b --vocab "$vocab" --out tiny.gguf --type Q4_K_M >/dev/null 2>tiny.err
    expect_eq "$?" 0 "synth tinyllama-1.1b Q4_K_M"
    echo "note: tinyllama-1.1b Q4_K_M synth took $(( $(date +%s) - start )) s (predicted ${predict} s)"
    "$bin" info tiny.gguf >info.txt 2>&1
    expect_grep "tensor types *F32 x45 Q4_K x135 Q6_K x21" info.txt "tinyllama Q4_K_M histogram (llama.cpp's)"
    expect_grep "embedding *2048" info.txt "tinyllama n_embd"
    expect_grep "layers *22" info.txt "tinyllama layers"
    expect_grep "attention heads *32 (kv 4" info.txt "tinyllama heads"
    expect_grep "feed-forward *5632" info.txt "tinyllama n_ff"
    printf 'Once upon a time there was a little girl who liked to play in the park.' >text.txt
    "$bin" perplexity -m tiny.gguf -f text.txt -c 8 >ppl.out 2>&1; expect_eq "$?" 0 "tinyllama perplexity"
    if grep -Eq "PPL = [0-9]+\.[0-9]+" ppl.out; then ok; else bad "tinyllama perplexity not finite: $(tail -2 ppl.out)"; fi
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
