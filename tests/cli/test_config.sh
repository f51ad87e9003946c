#!/usr/bin/env bash
# test_config.sh: `inferno config show` and `inferno config path`, run as a user would, in a private
# temporary HOME with config files at every standard place, an extra --config file and INFERNO_*
# variables: checks each value and its source in the output, the unknown-key warning, and that bad
# values and bad files exit non-zero with file:line in the message.
# Usage: bash test_config.sh INFERNO_BINARY [SHARED_DIR]. Exits 77 when the binary is missing.
set -u

BIN=${1:-}
if [ -z "$BIN" ] || [ ! -x "$BIN" ]; then
    echo "SKIP: inferno binary not found: '$BIN'"
    exit 77
fi
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")

T=$(mktemp -d /tmp/inferno-cli-config-XXXXXX)
trap 'chmod -R u+rwx "$T" 2>/dev/null; rm -rf "$T"' EXIT
mkdir -p "$T/home/.config/inferno" "$T/xdg/inferno" "$T/work"
export HOME="$T/home"
unset XDG_CONFIG_HOME INFERNO_MODELS_DIR INFERNO_GPU_ENABLED INFERNO_GPU_LAYERS INFERNO_CONTEXT_SIZE \
    INFERNO_BATCH_SIZE INFERNO_THREADS INFERNO_HOST INFERNO_PORT
cd "$T/work" || exit 1

passed=0
failed=0
OUT="$T/out"
ERR="$T/err"

# run ARGS...: runs the binary, keeping stdout, stderr and the exit code.
run() {
    "$BIN" "$@" >"$OUT" 2>"$ERR"
    rc=$?
}

ok() { passed=$((passed + 1)); }
bad() {
    failed=$((failed + 1))
    echo "FAIL: $1"
    echo "--- stdout:"; cat "$OUT"
    echo "--- stderr:"; cat "$ERR"
}

# expect_rc WHAT CODE
expect_rc() { if [ "$rc" -eq "$2" ]; then ok; else bad "$1: exit code $rc, want $2"; fi; }
# expect_line WHAT FILE REGEX: some line of FILE matches the extended regex.
expect_line() { if grep -Eq -- "$3" "$2"; then ok; else bad "$1: no line matching /$3/"; fi; }
# expect_fixed WHAT FILE TEXT: FILE contains TEXT literally.
expect_fixed() { if grep -Fq -- "$3" "$2"; then ok; else bad "$1: no '$3'"; fi; }

# --- defaults: no file, no variable
run config show
expect_rc "defaults" 0
expect_line "defaults" "$OUT" '^backend_config\.context_size +=  *2048 +# default$'
expect_line "defaults" "$OUT" '^backend_config\.batch_size +=  *512 +# default$'
expect_line "defaults" "$OUT" '^backend_config\.threads +=  *0 +# default$'
expect_line "defaults" "$OUT" '^backend_config\.gpu_layers +=  *"auto" +# default$'
expect_line "defaults" "$OUT" '^backend_config\.gpu_enabled +=  *true +# default$'
expect_line "defaults" "$OUT" '^server\.host +=  *"127\.0\.0\.1" +# default$'
expect_line "defaults" "$OUT" '^server\.port +=  *8080 +# default$'
expect_fixed "defaults: ~ expanded" "$OUT" "models_dir                   = \"$HOME/.local/share/inferno/models\""
if [ "$(wc -l <"$OUT")" -eq 8 ]; then ok; else bad "defaults: $(wc -l <"$OUT") lines, want 8"; fi
if [ ! -s "$ERR" ]; then ok; else bad "defaults: unexpected stderr"; fi
run config # show is the default action
expect_rc "config without action" 0
expect_line "config without action" "$OUT" '^server\.port +=  *8080 +# default$'

# --- every layer: ~/.config file, ~/.inferno.toml, ./.inferno.toml, --config, environment
cat >"$HOME/.config/inferno/config.toml" <<'EOF'
[backend_config]
threads = 2
context_size = 1024
batch_size = 16
EOF
cat >"$HOME/.inferno.toml" <<'EOF'
# home file
[backend_config]
context_size = 4096
gpu_layers = 20
EOF
cat >"$T/work/.inferno.toml" <<'EOF'
backend_config.batch_size = 64
models_dir = "~/models"
EOF
cat >"$T/extra.toml" <<'EOF'
[server]
host = "0.0.0.0"
port = 1234
EOF
INFERNO_PORT=9090 INFERNO_GPU_ENABLED=no run config show --config "$T/extra.toml"
expect_rc "layers" 0
expect_line "layers: xdg fallback file" "$OUT" '^backend_config\.threads +=  *2 +# ~/\.config/inferno/config\.toml:2$'
expect_line "layers: home file wins" "$OUT" '^backend_config\.context_size +=  *4096 +# ~/\.inferno\.toml:3$'
expect_line "layers: home file" "$OUT" '^backend_config\.gpu_layers +=  *20 +# ~/\.inferno\.toml:4$'
expect_line "layers: cwd file wins" "$OUT" '^backend_config\.batch_size +=  *64 +# \./\.inferno\.toml:1$'
expect_fixed "layers: cwd models_dir" "$OUT" "models_dir                   = \"$HOME/models\""
expect_fixed "layers: --config" "$OUT" "\"0.0.0.0\""
expect_fixed "layers: --config source" "$OUT" "# $T/extra.toml:2"
expect_line "layers: env beats --config" "$OUT" '^server\.port +=  *9090 +# env INFERNO_PORT$'
expect_line "layers: env bool" "$OUT" '^backend_config\.gpu_enabled +=  *false +# env INFERNO_GPU_ENABLED$'

# --- XDG_CONFIG_HOME replaces ~/.config
cat >"$T/xdg/inferno/config.toml" <<'EOF'
backend_config.threads = 5
EOF
XDG_CONFIG_HOME="$T/xdg" run config show
expect_rc "xdg" 0
expect_fixed "xdg" "$OUT" "# $T/xdg/inferno/config.toml:1"
expect_line "xdg value" "$OUT" '^backend_config\.threads +=  *5 '

# --- config path lists the files in order and marks which exist
rm "$T/work/.inferno.toml"
XDG_CONFIG_HOME="$T/xdg" run config path --config "$T/nope.toml"
expect_rc "path" 0
expect_fixed "path: xdg" "$OUT" "$T/xdg/inferno/config.toml (exists)"
expect_fixed "path: home" "$OUT" "$HOME/.inferno.toml (exists)"
expect_fixed "path: cwd" "$OUT" "./.inferno.toml (missing)"
expect_fixed "path: --config" "$OUT" "$T/nope.toml (missing) --config"
if [ "$(head -n1 "$OUT")" = "$T/xdg/inferno/config.toml (exists)" ]; then ok; else bad "path: order"; fi
run config path
expect_fixed "path without xdg" "$OUT" "$HOME/.config/inferno/config.toml (exists)"

# --- unknown key: a warning with file:line and a suggestion, and the run goes on
cat >"$HOME/.inferno.toml" <<'EOF'
# home file
[backend_config]
gpu_layer = 5
threads = 3
EOF
run config show
expect_rc "unknown key" 0
expect_fixed "unknown key" "$ERR" \
    "~/.inferno.toml:3: unknown key 'backend_config.gpu_layer' (ignored); did you mean 'backend_config.gpu_layers'?"
expect_line "unknown key: rest applied" "$OUT" '^backend_config\.threads +=  *3 +# ~/\.inferno\.toml:4$'

# --- errors exit non-zero with the message
cat >"$HOME/.inferno.toml" <<'EOF'
[server]

port = 0
EOF
run config show
if [ "$rc" -ne 0 ]; then ok; else bad "bad range: exit 0"; fi
expect_fixed "bad range" "$ERR" "~/.inferno.toml:3: server.port: expected an integer in [1, 65535], got 0"

printf '[backend_config]\nthreads = "four"\n' >"$HOME/.inferno.toml"
run config show
if [ "$rc" -ne 0 ]; then ok; else bad "bad type: exit 0"; fi
expect_fixed "bad type" "$ERR" "~/.inferno.toml:2: backend_config.threads: expected an integer in [0, 4096], got the string \"four\""

printf 'a = 1\nthreads 4\n' >"$HOME/.inferno.toml"
run config show
if [ "$rc" -ne 0 ]; then ok; else bad "syntax: exit 0"; fi
expect_fixed "syntax" "$ERR" "~/.inferno.toml:2: expected '=' after key 'threads'"
rm "$HOME/.inferno.toml"

INFERNO_THREADS=abc run config show
if [ "$rc" -ne 0 ]; then ok; else bad "bad env: exit 0"; fi
expect_fixed "bad env" "$ERR" "env INFERNO_THREADS: backend_config.threads: expected an integer in [0, 4096], got 'abc'"

run config show --config "$T/nope.toml"
if [ "$rc" -ne 0 ]; then ok; else bad "missing --config: exit 0"; fi
expect_fixed "missing --config" "$ERR" "$T/nope.toml: cannot open"

mkdir "$HOME/.inferno.toml"
run config show
if [ "$rc" -ne 0 ]; then ok; else bad "directory as file: exit 0"; fi
expect_fixed "directory as file" "$ERR" "~/.inferno.toml: not a regular file"
rmdir "$HOME/.inferno.toml"

# --- usage
run config --help
expect_rc "--help" 0
expect_fixed "--help" "$OUT" "usage: inferno config"
run config --bogus
expect_rc "unknown option" 2
expect_fixed "unknown option" "$ERR" "unknown option '--bogus'"
run config frobnicate
expect_rc "unknown action" 2
run config show --config
expect_rc "--config without value" 2
expect_fixed "--config without value" "$ERR" "--config needs a value"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
