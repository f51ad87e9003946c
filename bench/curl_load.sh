#!/usr/bin/env bash
# curl_load.sh: a server load run that needs only curl (for machines without Node.js, where
# bench/loadgen.mjs cannot run): against an `inferno serve` already listening at URL, for each stream count
# S it runs S concurrent curl streams, each sending REQUESTS streamed /v1/completions back to back
# (temperature TEMP, max_tokens MAX_TOKENS, ignore_eos, a request-unique "[s-k] " prefix on one story
# opening), and prints a Markdown table: aggregate tok/s, and the engine's forward steps with its scheduler
# time per step by part, all from the server's /metrics before and after the level (generated tokens from
# inferno_generated_tokens_total; steps and parts from inferno_engine_steps_total and
# inferno_engine_step_seconds_total, summed over models).
#
# Left out: TTFT and latency percentiles (loadgen.mjs measures them), chat, checking what the text says.
#
# usage: bench/curl_load.sh URL MODEL [STREAMS]      (STREAMS default 1,8,32)
# environment: MAX_TOKENS (default 128), REQUESTS (per stream, default 4), TEMP (default 0)
set -euo pipefail
url=${1:?usage: bench/curl_load.sh URL MODEL [STREAMS]}
model=${2:?usage: bench/curl_load.sh URL MODEL [STREAMS]}
streams=${3:-1,8,32}
max_tokens=${MAX_TOKENS:-128}
requests=${REQUESTS:-4}
temp=${TEMP:-0}
command -v curl >/dev/null || { echo "curl_load.sh: curl is needed" >&2; exit 1; }

# generated_tokens steps forward sample output other, from /metrics
counters() {
    curl -sf --max-time 10 "$url/metrics" | awk '
        /^inferno_generated_tokens_total /             { gen += $2 }
        /^inferno_engine_steps_total\{/                { steps += $2 }
        /^inferno_engine_step_seconds_total\{.*part="forward"/ { f += $2 }
        /^inferno_engine_step_seconds_total\{.*part="sample"/  { s += $2 }
        /^inferno_engine_step_seconds_total\{.*part="output"/  { o += $2 }
        /^inferno_engine_step_seconds_total\{.*part="other"/   { x += $2 }
        END { printf "%d %d %.6f %.6f %.6f %.6f\n", gen, steps, f, s, o, x }'
}

one_stream() { # stream index
    for ((k = 0; k < requests; k++)); do
        local body="{\"model\":\"$model\",\"prompt\":\"[$1-$k] Once upon a time, in a small village by the sea,\","
        body+="\"max_tokens\":$max_tokens,\"temperature\":$temp,\"stream\":true,\"ignore_eos\":true}"
        curl -sN --max-time 600 "$url/v1/completions" -H 'Content-Type: application/json' -d "$body" >/dev/null ||
            echo "curl_load.sh: stream $1 request $k failed" >&2
    done
}

echo "curl_load: $url model=$model max_tokens=$max_tokens temperature=$temp $requests requests per stream"
echo "| streams | tokens | wall s | agg tok/s | vs 1 | steps | forward ms/step | sample us/step |" \
     "output us/step | other us/step | non-forward us/step |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
base=
IFS=, read -ra levels <<<"$streams"
for S in "${levels[@]}"; do
    read -r g0 n0 f0 s0 o0 x0 < <(counters)
    t0=$(date +%s.%N)
    for ((i = 0; i < S; i++)); do one_stream "$i" & done
    wait
    t1=$(date +%s.%N)
    read -r g1 n1 f1 s1 o1 x1 < <(counters)
    awk -v S="$S" -v g=$((g1 - g0)) -v n=$((n1 - n0)) -v t0="$t0" -v t1="$t1" -v f="$f1" -v F="$f0" \
        -v s="$s1" -v Sx="$s0" -v o="$o1" -v O="$o0" -v x="$x1" -v X="$x0" -v base="$base" 'BEGIN {
        w = t1 - t0; tps = w > 0 ? g / w : 0; m = n > 0 ? n : 1
        vs = base > 0 ? sprintf("%.2fx", tps / base) : "1.00x"
        printf "| %d | %d | %.2f | %.1f | %s | %d | %.3f | %.1f | %.1f | %.1f | %.1f |\n", S, g, w, tps, vs, n,
            (f - F) / m * 1e3, (s - Sx) / m * 1e6, (o - O) / m * 1e6, (x - X) / m * 1e6,
            ((s - Sx) + (o - O) + (x - X)) / m * 1e6 }'
    [ -z "$base" ] && base=$(awk -v g=$((g1 - g0)) -v t0="$t0" -v t1="$t1" 'BEGIN { print g / (t1 - t0) }')
done
