#!/usr/bin/env bash
# test_loadgen.sh: smoke test of bench/loadgen.mjs against a real `inferno serve` on stories260K: 1 and 4
# streams, 2 requests each, 4 tokens per request. Checks the JSON report's fields and that its figures agree
# with each other and with what was asked (every request finished by length, so the usage counts must be
# exactly 4 per request; aggregate tok/s = tokens / wall; TTFT <= latency; p50 <= p99), the Markdown table,
# and that flag errors and a model the server does not have end with exit status 2.
# Skips (77) without node, without the binary, or when the binary has no working `serve`.
# usage: test_loadgen.sh INFERNO_BINARY SHARED_DIR
set -u
bin="$1"; shared="${INFERNO_SHARED:-$2}"
here=$(cd "$(dirname "$0")" && pwd)
loadgen="$here/../../bench/loadgen.mjs"
model="$shared/models/stories260K.gguf"
command -v node >/dev/null || { echo "SKIP: node not installed"; exit 77; }
command -v curl >/dev/null || { echo "SKIP: curl not installed"; exit 77; }
[ -x "$bin" ] || { echo "SKIP: $bin not built"; exit 77; }
[ -f "$model" ] || { echo "SKIP: $model not found"; exit 77; }
[ -f "$loadgen" ] || { echo "SKIP: $loadgen not found"; exit 77; }
"$bin" serve --help >/dev/null 2>&1 || { echo "SKIP: $bin has no working serve"; exit 77; }
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
tmp=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill -TERM "$server_pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
export HOME="$tmp" XDG_CONFIG_HOME="$tmp/xdg"; cd "$tmp" || exit 1
unset INFERNO_THREADS INFERNO_BATCH_SIZE INFERNO_CONTEXT_SIZE INFERNO_PORT INFERNO_HOST
pass=0; fail=0
ok() { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*" >&2; }
expect_eq() { if [ "$1" == "$2" ]; then ok; else bad "$3: got [$1] want [$2]"; fi; }
expect_grep() { if grep -Eq -- "$1" "$2"; then ok; else bad "$3: /$1/ not in $(head -c 600 "$2")"; fi; }

port=$(node -e 'const s = require("net").createServer();
    s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });')
"$bin" serve --model "$model" --host 127.0.0.1 --port "$port" --parallel 4 --threads 1 >server.log 2>&1 &
server_pid=$!
ready=0
for _ in $(seq 300); do
    kill -0 "$server_pid" 2>/dev/null || break
    if curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$port/health"; then ready=1; break; fi
    sleep 0.1
done
if [ "$ready" != 1 ]; then
    echo "FAIL: the server did not become ready; its log:" >&2; tail -n 20 server.log >&2
    echo "0 passed, 1 failed"; exit 1
fi
url="http://127.0.0.1:$port"

# --- JSON report: two levels, every figure consistent with the others.
node "$loadgen" --url "$url" --model stories260K --concurrency 1,4 --requests-per-stream 2 --max-tokens 4 \
    --json >report.json 2>report.err; rc=$?
expect_eq "$rc" 0 "json run exit code ($(head -c 300 report.err))"
# shellcheck disable=SC2016 # the single-quoted text is JavaScript
checks=$(node -e '
    const r = JSON.parse(require("fs").readFileSync("report.json", "utf8"));
    const out = [];
    const check = (name, cond) => out.push(`${cond ? "ok" : "FAIL"} ${name}`);
    check("endpoint", r.endpoint === "completions" && r.max_tokens === 4 && r.model === "stories260K");
    check("two levels", r.levels.length === 2 && r.levels[0].concurrency === 1 &&
        r.levels[1].concurrency === 4);
    for (const l of r.levels) {
        const c = l.concurrency, want = 2 * c;
        const fields = ["requests", "errors", "completion_tokens", "tokens_from", "wall_s", "aggregate_tps",
            "per_stream_tps_p50", "decode_tps_p50", "ttft_ms", "latency_ms", "finish_reasons", "speedup",
            "loadavg_1m"];
        check(`c${c} fields`, fields.every((f) => f in l));
        check(`c${c} requests`, l.requests === want && l.errors === 0);
        check(`c${c} all finished by length`, l.finish_reasons.length === want);
        check(`c${c} tokens from usage`, l.tokens_from === "usage");
        check(`c${c} tokens = 4 x requests`, l.completion_tokens === 4 * want);
        const agg = l.completion_tokens / l.wall_s;
        check(`c${c} aggregate = tokens / wall`, Math.abs(agg - l.aggregate_tps) <= 0.01 * agg + 0.02);
        check(`c${c} ttft p50 <= p99 <= max`, l.ttft_ms.p50 > 0 && l.ttft_ms.p50 <= l.ttft_ms.p99 &&
            l.ttft_ms.p99 <= l.ttft_ms.max);
        check(`c${c} ttft <= latency`, l.ttft_ms.max <= l.latency_ms.max && l.ttft_ms.p50 <= l.latency_ms.p50);
        check(`c${c} latency within wall`, l.latency_ms.max <= l.wall_s * 1000 + 1);
        check(`c${c} per-stream <= aggregate`, l.per_stream_tps_p50 > 0 &&
            l.per_stream_tps_p50 <= l.aggregate_tps * 1.5);
    }
    check("speedup of level 1", r.levels[0].speedup === 1);
    console.log(out.join("\n"));
' 2>&1)
while IFS= read -r line; do
    case "$line" in ok\ *) ok ;; *) bad "json: $line" ;; esac
done <<<"$checks"

# --- Chat endpoint and the Markdown table.
node "$loadgen" --url "$url" --model stories260K --chat --concurrency 2 --requests-per-stream 1 --max-tokens 4 \
    >table.txt 2>table.err; rc=$?
expect_eq "$rc" 0 "table run exit code ($(head -c 300 table.err))"
expect_grep '^\| streams \| reqs \| errors \| tokens \| wall s \| agg tok/s \|' table.txt "table header"
expect_grep '^\| 2 +\| +2 \| +0 \| +8 \|' table.txt "table row: 2 streams, 2 requests, 0 errors, 8 tokens"

# --- Errors: a bad flag, and a model the server does not have (the warm-up request fails).
node "$loadgen" --url "$url" --concurrency 1,zero >flag.txt 2>&1; rc=$?
expect_eq "$rc" 2 "bad flag exit code"
expect_grep 'concurrency: "zero" is not a positive integer' flag.txt "bad flag message"
node "$loadgen" --url "$url" --model no-such-model --concurrency 1 --max-tokens 2 >nomodel.txt 2>&1; rc=$?
expect_eq "$rc" 2 "unknown model exit code"
expect_grep 'warm-up request .* failed: HTTP 4[0-9][0-9]' nomodel.txt "unknown model message"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
