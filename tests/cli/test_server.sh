#!/usr/bin/env bash
# test_server.sh: end-to-end tests of `inferno serve`: the Node.js suite in tests/server (the official openai
# client against the real binary), then curl checks of what the suite leaves out: /health while loading and
# after, --chat-template, --timeout, the port from a config file, on-demand models from --models-dir with
# --max-models and --keep-alive, a request during shutdown, SIGTERM and SIGINT exiting 0, start-up errors.
# The Node part is skipped when node or tests/server/node_modules is missing (tools/test.sh installs them
# with `npm ci --prefix tests/server`); the script then exits 77 if the curl checks passed.
# usage: test_server.sh INFERNO_BINARY SHARED_DIR   (KEEP_TMP=1 keeps the logs and replies for a look)
set -u
bin="$1"; shared="${INFERNO_SHARED:-$2}"
here=$(cd "$(dirname "$0")" && pwd)
suite="$here/../server"
model="$shared/models/stories260K.gguf"
[ -x "$bin" ] || { echo "SKIP: $bin not built"; exit 77; }
[ -f "$model" ] || { echo "SKIP: $model not found"; exit 77; }
command -v curl >/dev/null || { echo "SKIP: curl not installed"; exit 77; }
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
shared=$(cd "$shared" && pwd)
model="$shared/models/stories260K.gguf"
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    [ -n "${KEEP_TMP:-}" ] && echo "kept $tmp" >&2 || rm -rf "$tmp"
}
trap cleanup EXIT
export HOME="$tmp" XDG_CONFIG_HOME="$tmp/xdg"; cd "$tmp"
unset INFERNO_THREADS INFERNO_BATCH_SIZE INFERNO_CONTEXT_SIZE INFERNO_PORT INFERNO_HOST INFERNO_API_KEY INFERNO_MODELS_DIR
pass=0; fail=0; skipped=0
ok() { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*" >&2; }
expect_eq() { if [ "$1" == "$2" ]; then ok; else bad "$3: got [$1] want [$2]"; fi; }
expect_grep() { if grep -Eq -- "$1" "$2"; then ok; else bad "$3: /$1/ not in $(head -c 600 "$2")"; fi; }

# ---- The Node.js suite.
if ! command -v node >/dev/null; then
    echo "SKIP (node suite): node not installed"; skipped=1
elif [ ! -d "$suite/node_modules/openai" ]; then
    echo "SKIP (node suite): $suite/node_modules missing (npm ci --prefix tests/server)"; skipped=1
else
    INFERNO_BINARY="$bin" INFERNO_SHARED="$shared" node --test "$suite/" >node.txt 2>&1; rc=$?
    expect_eq "$rc" 0 "node suite exit code"
    [ "$rc" == 0 ] || tail -n 80 node.txt >&2
    grep -E '^# (tests|pass|fail|skipped) ' node.txt
fi

# start_server LOG ARGS...: starts `inferno serve ARGS --port 0` (unless ARGS has --port), sets $pid and $port
# once the log says where it listens. Returns 1 if it does not.
start_server() {
    local log=$1; shift
    local args=("$@")
    [[ " ${args[*]} " == *" --port "* ]] || args+=(--port 0)
    "$bin" serve --host 127.0.0.1 --threads 1 "${args[@]}" >"$log" 2>&1 &
    pid=$!; pids+=("$pid"); port=
    for _ in $(seq 300); do
        port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$log")
        [ -n "$port" ] && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
# wait_ready URL: until /health answers 200 (at most 15 s).
wait_ready() {
    for _ in $(seq 150); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$1/health")" == 200 ] && return 0
        sleep 0.1
    done
    return 1
}
# stop_server PID [SIGNAL]: SIGTERM (or SIGNAL); sets $stop_rc to the exit code, 124 if it took over 30 s.
stop_server() {
    kill -"${2:-TERM}" "$1" 2>/dev/null
    for _ in $(seq 300); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$1" 2>/dev/null; then kill -KILL "$1"; wait "$1" 2>/dev/null; stop_rc=124; return; fi
    wait "$1"; stop_rc=$?
}
completion() { # URL MODEL: a short greedy completion; prints the HTTP status, the body goes to body.json
    curl -s -o body.json -w '%{http_code}' "$1/v1/completions" \
        -d "{\"model\":\"$2\",\"prompt\":\"Once upon a time\",\"max_tokens\":8,\"temperature\":0}"
}

# ---- /health, --chat-template, --timeout, SIGINT.
if start_server s1.log --model "$model" --chat-template llama2 --timeout 1; then
    url="http://127.0.0.1:$port"
    wait_ready "$url" || bad "server 1 not ready"
    expect_eq "$(curl -s "$url/health")" '{"status":"ok"}' "/health body"
    expect_eq "$(curl -s -o /dev/null -w '%{http_code}' -X OPTIONS "$url/v1/models")" 204 "OPTIONS without CORS"
    expect_eq "$(completion "$url" stories260K)" 200 "completion on server 1"
    curl -s "$url/v1/status" >st0.json
    expect_grep '"chat_template":"llama2"' st0.json "--chat-template in /v1/status"
    code=$(curl -s -o chat.json -w '%{http_code}' "$url/v1/chat/completions" \
        -d '{"messages":[{"role":"user","content":"Hi"}],"max_tokens":4,"temperature":0}')
    expect_eq "$code" 200 "chat with the llama2 template"
    expect_grep '"completion_tokens":4' chat.json "chat with the llama2 template: usage"
    # --timeout 1: a long request ends as if cut by max_tokens (unless it reached the context limit first).
    curl -s -o long.json "$url/v1/completions" -d '{"prompt":"Once","max_tokens":4000,"ignore_eos":true}'
    expect_grep '"finish_reason":"length"' long.json "timed-out request's finish_reason"
    n_gen=$(sed -n 's/.*"completion_tokens":\([0-9]*\).*/\1/p' long.json)
    timeouts=$(curl -s "$url/metrics" | sed -n 's/^inferno_requests_finished_total{reason="timeout"} //p')
    if [ "$timeouts" == 1 ] || [ "${n_gen:-0}" -ge 2000 ]; then ok; else bad "timeout: $timeouts timeouts, $n_gen tokens"; fi
    stop_server "$pid" INT; expect_eq "$stop_rc" 0 "exit code after SIGINT"
    expect_grep 'Interrupt: shutting down' s1.log "SIGINT message"
    expect_grep 'stopped' s1.log "stopped message"
else
    bad "server 1 did not start: $(tail -n 5 s1.log)"
fi

# ---- /health while loading: a FIFO as the model holds the load in open() until a writer comes.
mkfifo slow.gguf
if start_server s0.log --model "$tmp/slow.gguf"; then
    url="http://127.0.0.1:$port"
    code=$(curl -s -o h0.json -D h0.hdr -w '%{http_code}' "$url/health")
    expect_eq "$code" 503 "/health while loading"
    expect_eq "$(cat h0.json)" '{"status":"loading"}' "/health body while loading"
    expect_grep '^Retry-After: 1' h0.hdr "/health Retry-After while loading"
    expect_eq "$(completion "$url" slow)" 503 "a completion while loading"
    expect_grep '"code":"loading"' body.json "loading error code"
    : >slow.gguf # the load goes on, finds no regular file, and the server gives up
    wait "$pid"; rc=$?
    expect_eq "$rc" 1 "exit code when a preloaded model fails"
    expect_grep 'slow.gguf' s0.log "the failing model is named"
else
    bad "server 0 did not start: $(tail -n 5 s0.log)"
fi

# ---- [server] port from a config file (./.inferno.toml), host from the environment.
cfg_port=$(( 20000 + RANDOM % 40000 ))
printf '[server]\nport = %d\n' "$cfg_port" >.inferno.toml
INFERNO_HOST=127.0.0.1 "$bin" serve --model "$model" --threads 1 >s2.log 2>&1 &
pid=$!; pids+=("$pid")
for _ in $(seq 100); do grep -Eq 'listening|cannot listen' s2.log 2>/dev/null && break; sleep 0.05; done
if grep -q 'cannot listen' s2.log; then
    echo "note: port $cfg_port was taken; the config-port check was not run"
    wait "$pid"
else
    expect_grep "listening on http://127.0.0.1:$cfg_port" s2.log "port from .inferno.toml"
    stop_server "$pid"; expect_eq "$stop_rc" 0 "exit code of the config-port server"
fi
rm -f .inferno.toml

# ---- On-demand models: --models-dir, --max-models 1 (least recently used goes), --keep-alive.
mkdir -p models
ln -s "$model" models/alpha.gguf
ln -s "$model" models/beta.gguf
if start_server s3.log --models-dir "$tmp/models" --max-models 1 --keep-alive 2; then
    url="http://127.0.0.1:$port"
    wait_ready "$url" || bad "server 3 not ready"
    curl -s "$url/v1/models" >models.json
    expect_grep '"id":"alpha","object":"model","created":0,"owned_by":"inferno","status":"available"' models.json \
        "alpha listed as available"
    expect_eq "$(completion "$url" alpha)" 200 "on-demand alpha"
    expect_grep '"text":", there was a little girl"' body.json "alpha's text"
    curl -s "$url/v1/status" >st1.json
    expect_grep '"name":"alpha","path":"[^"]*/models/alpha.gguf","state":"ready","preloaded":false' st1.json "alpha loaded"
    expect_eq "$(completion "$url" beta)" 200 "on-demand beta"
    curl -s "$url/v1/status" >st2.json
    expect_grep '"name":"beta"' st2.json "beta loaded"
    if grep -q '"name":"alpha"' st2.json; then bad "alpha still loaded past --max-models 1"; else ok; fi
    expect_eq "$(completion "$url" gamma)" 404 "a model that is not in models_dir"
    expect_grep '"code":"model_not_found"' body.json "404 code"
    expect_eq "$(completion "$url" ../models/alpha)" 404 "a name with a path in it"
    # keep_alive from the request: 0 unloads beta at the next upkeep (about a second).
    curl -s -o /dev/null "$url/v1/completions" -d '{"model":"beta","prompt":"x","max_tokens":1,"keep_alive":0}'
    gone=0
    for _ in $(seq 40); do
        curl -s "$url/v1/status" | grep -q '"models":\[\]' && { gone=1; break; }
        sleep 0.1
    done
    expect_eq "$gone" 1 "beta unloaded after keep_alive 0"
    curl -s "$url/metrics" >m3.txt
    expect_grep '^inferno_model_loads_total 2$' m3.txt "two loads"
    expect_grep '^inferno_model_unloads_total 2$' m3.txt "two unloads"
    expect_eq "$(completion "$url" alpha)" 200 "alpha loads again"
    sleep 3.5 # past --keep-alive 2
    curl -s "$url/v1/status" >st3.json
    expect_grep '"models":\[\]' st3.json "alpha unloaded after --keep-alive 2"
    stop_server "$pid"; expect_eq "$stop_rc" 0 "exit code of the on-demand server"
else
    bad "server 3 did not start: $(tail -n 5 s3.log)"
fi

# ---- Shutdown: a request in flight finishes or is cancelled cleanly, a new one is refused, exit 0.
if start_server s4.log --model "$model" --shutdown-grace 1; then
    url="http://127.0.0.1:$port"
    wait_ready "$url" || bad "server 4 not ready"
    curl -sN "$url/v1/completions" -o stream.txt \
        -d '{"prompt":"Once upon a time","max_tokens":4000,"ignore_eos":true,"stream":true}' &
    cpid=$!
    for _ in $(seq 100); do grep -q '^data: ' stream.txt 2>/dev/null && break; sleep 0.02; done
    kill -TERM "$pid"
    sleep 0.2
    code=$(curl -s -o during.txt -w '%{http_code}' --max-time 5 "$url/v1/models"); crc=$?
    # Refused at connect (curl 7) once the listening socket is closed, or 503 on a connection still open.
    if [ "$crc" == 7 ] || [ "$code" == 503 ]; then ok; else bad "request during shutdown: curl $crc, HTTP $code"; fi
    wait "$cpid"
    expect_eq "$(tail -n 1 stream.txt | tr -d '\r')" "" "stream ends with a blank line"
    expect_eq "$(grep -c '^data: \[DONE\]' stream.txt)" 1 "stream ends with [DONE]"
    # Either it finished (finish_reason) or the grace ran out and it was cancelled (an error event).
    expect_grep '"finish_reason":"length"|"code":"shutting_down"' stream.txt "stream's last event"
    stop_server "$pid"; expect_eq "$stop_rc" 0 "exit code after SIGTERM with a request in flight"
    expect_grep 'Terminated: shutting down' s4.log "SIGTERM message"
else
    bad "server 4 did not start: $(tail -n 5 s4.log)"
fi

# ---- Start-up errors: a missing model file, a bad flag, a port already taken.
"$bin" serve --model "$tmp/nope.gguf" --port 0 >e1.log 2>&1; rc=$?
expect_eq "$rc" 1 "missing model exit code"
expect_grep 'nope.gguf' e1.log "missing model names the file"
"$bin" serve --model "$model" --port 70000 >e2.log 2>&1; rc=$?
expect_eq "$rc" 2 "bad port exit code"
expect_grep 'port: 70000 is out of range' e2.log "bad port message"
"$bin" serve --model "$model" --max-body 1Q >e3.log 2>&1; rc=$?
expect_eq "$rc" 2 "bad --max-body exit code"
"$bin" serve --model "$model" --port 0 --chat-template nope >e5.log 2>&1; rc=$?
expect_eq "$rc" 1 "unknown --chat-template exit code"
expect_grep "nope" e5.log "unknown --chat-template names it"
if start_server s5.log --model "$model"; then
    "$bin" serve --model "$model" --host 127.0.0.1 --port "$port" >e4.log 2>&1; rc=$?
    expect_eq "$rc" 1 "port in use exit code"
    expect_grep "cannot listen on 127.0.0.1:$port" e4.log "port in use message"
    stop_server "$pid"; expect_eq "$stop_rc" 0 "exit code of server 5"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] || exit 1
[ "$skipped" -eq 0 ] || exit 77
exit 0
