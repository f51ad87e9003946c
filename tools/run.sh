#!/usr/bin/env bash
# run.sh: installs what is missing, builds Inferno (Release) and generates text with a small real model.
# Extra arguments go to `inferno run` (e.g. --prompt "..." -n 64).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
model="${INFERNO_MODEL:-../shared/models/stories260K.gguf}"
if [ $# -eq 0 ]; then set -- --prompt "Once upon a time" -n 64 --temp 0; fi
exec ./build/inferno run --model "$model" "$@"
