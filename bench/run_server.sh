#!/usr/bin/env bash
# run_server.sh: the server load benchmark quoted in the README and bench/NOTES.md ("Server load"). Starts
# `inferno serve` on MODEL with --parallel PARALLEL on a free port of 127.0.0.1, waits for /health to say
# the model is ready, runs bench/loadgen.mjs at CONCURRENCY streams (default 1,8,32) and prints its table,
# then stops the server (a trap stops it on every exit path, Ctrl-C included).
#
# It also records what distorts the figures on a shared machine: the load average and the busiest other
# processes before and after the run. Figures taken while other processes held the cores are not comparable.
#
# Left out: building (give a Release binary), making models (`inferno synth` does that), llama.cpp (run its
# llama-server yourself and point bench/loadgen.mjs at it: see bench/NOTES.md).
#
# usage: bench/run_server.sh MODEL [INFERNO_BINARY] [loadgen flags...]
#   INFERNO_BINARY   default build/inferno beside this script (must be a Release build for real figures)
#   loadgen flags    passed on after the defaults below, so they win (e.g. --chat, --duration 30)
# environment:
#   PARALLEL     sequences the server runs at once (default 32)
#   CONCURRENCY  stream counts (default 1,8,32)      MAX_TOKENS  tokens per request (default 32)
#   REQUESTS     requests per stream (default 4)     DURATION    instead: seconds each stream keeps sending
#   THREADS      server threads (default: the server's)
#   CTX          KV cells shared by all sequences (default: the server's)
#   NGL          GPU layers (--gpu-layers N, 999 = all; default: the server's)
#   SERVE_ARGS   more `inferno serve` flags          JSON_OUT    also write loadgen's JSON report there
#   LOG          the server's log (default a temporary file, shown when something fails)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)

die() { echo "run_server.sh: $*" >&2; exit 1; }
[ $# -ge 1 ] || die "usage: bench/run_server.sh MODEL [INFERNO_BINARY] [loadgen flags...]"
model=$1; shift
bin=$repo/build/inferno
if [ $# -ge 1 ] && [[ $1 != -* ]]; then bin=$1; shift; fi
parallel=${PARALLEL:-32}
concurrency=${CONCURRENCY:-1,8,32}
max_tokens=${MAX_TOKENS:-32}
requests=${REQUESTS:-4}
per_stream=(--requests-per-stream "$requests")
[ -n "${DURATION:-}" ] && per_stream=(--duration "$DURATION")

[ -f "$model" ] || die "$model: model file not found"
[ -x "$bin" ] || die "$bin: no inferno binary (build a Release one: cmake -B build -DCMAKE_BUILD_TYPE=Release)"
command -v node >/dev/null || die "node (Node.js 20 or newer) is needed for bench/loadgen.mjs"
command -v curl >/dev/null || die "curl is needed to poll /health"
"$bin" serve --help >/dev/null 2>&1 || die "$bin has no working 'serve' command"

busy() { # the load average and the three busiest processes other than this benchmark and its server
    echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
    # One awk reads all of ps's output: a `head` here would end the pipe early, and pipefail with set -e
    # would then end this script on ps's SIGPIPE.
    ps -eo pcpu=,pid=,comm= --sort=-pcpu 2>/dev/null | awk -v me=$$ -v srv="${server_pid:-0}" '
        $2 != me && $2 != srv && n < 3 { n++; printf "  busy: %5s%% cpu  pid %s  %s\n", $1, $2, $3 }' || true
}

# A free port: bind port 0, read what the kernel gave, release it. Another process could take it before the
# server binds; the server then fails to start and this script says so.
port=$(node -e 'const s = require("net").createServer();
    s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });')

log=${LOG:-$(mktemp /tmp/inferno-serve-XXXXXX.log)}
server_pid=
stop_server() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        # A clean shutdown drains in-flight requests; give it a few seconds before the hard stop.
        for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=
}
trap stop_server EXIT
trap 'exit 130' INT TERM

args=(serve --model "$model" --host 127.0.0.1 --port "$port" --parallel "$parallel")
[ -n "${THREADS:-}" ] && args+=(--threads "$THREADS")
[ -n "${CTX:-}" ] && args+=(--ctx-size "$CTX")
if [ -n "${NGL:-}" ]; then
    serve_help=$("$bin" serve --help 2>&1 || true)
    [[ $serve_help == *--gpu-layers* ]] ||
        die "NGL=$NGL: this inferno serve has no --gpu-layers flag (it runs every layer on the CPU)"
    args+=(--gpu-layers "$NGL")
fi
# shellcheck disable=SC2206 # SERVE_ARGS is split on spaces on purpose
[ -n "${SERVE_ARGS:-}" ] && args+=(${SERVE_ARGS})

echo "== inferno server load: $(basename "$model"), --parallel $parallel, streams $concurrency," \
     "max_tokens $max_tokens, ${per_stream[*]}"
echo "binary: $bin"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | sed 's/^/gpu: /' || true
fi
busy
echo "server: ${args[*]}"
"$bin" "${args[@]}" >"$log" 2>&1 &
server_pid=$!

# Ready means /health answers 200 (the server says "loading" with 503 until the model is in).
ready=0
for _ in $(seq 3000); do # up to 5 minutes: a large model uploading to a GPU
    kill -0 "$server_pid" 2>/dev/null || break
    if curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$port/health"; then ready=1; break; fi
    sleep 0.1
done
if [ "$ready" != 1 ]; then
    echo "run_server.sh: the server did not become ready on port $port; its log ($log):" >&2
    tail -n 30 "$log" >&2
    exit 1
fi
echo "ready on port $port after $SECONDS s"

json_args=()
[ -n "${JSON_OUT:-}" ] && json_args=(--json-out "$JSON_OUT")
set +e
node "$here/loadgen.mjs" --url "http://127.0.0.1:$port" --model "$(basename "$model" .gguf)" \
    --concurrency "$concurrency" --max-tokens "$max_tokens" "${per_stream[@]}" "${json_args[@]}" "$@"
rc=$?
# The server's own view, to set beside the client's: finished requests by reason, its mean TTFT (sum and
# count of its histogram; it starts at arrival, the client's at sending, so the client's is the larger), and
# its engine's forward steps and scheduler time by part (totals over every level; the table has them per
# level).
curl -sf --max-time 5 "http://127.0.0.1:$port/metrics" 2>/dev/null |
    grep -E '^inferno_(requests_finished_total|time_to_first_token_seconds_(sum|count)|engine_step)' |
    sed 's/^/metrics: /'
set -e
busy
if [ "$rc" != 0 ]; then
    echo "run_server.sh: loadgen exited with $rc; the server's log ($log), last lines:" >&2
    tail -n 20 "$log" >&2
fi
stop_server
[ -z "${LOG:-}" ] && rm -f "$log"
exit "$rc"
