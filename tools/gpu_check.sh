#!/usr/bin/env bash
# gpu_check.sh: the GPU machine's check, in one command: a Release build with the CUDA backend, the GPU
# tests (test_cuda) plus the CPU golden and CLI tests, then a benchmark on a TinyLlama-1.1B-shaped model made
# on the spot with `inferno synth` (Q4_K, Q8_0 and F16 by default): prompt and generation speed through
# `inferno run -ngl 999` (and `inferno bench -ngl 999` once bench places layers on the GPU).
# Leaves out: installing anything system-wide. When the -dev packages are missing, set INFERNO_DEB_DIR to
# a folder of .deb files (libpcre2-dev, libjson-c-dev, libmicrohttpd-dev and their libraries): they are
# unpacked into a private prefix and the build is pointed at it.
#
# usage: tools/gpu_check.sh [OUT_DIR]      (environment: INFERNO_SHARED, INFERNO_DEB_DIR, GPU_CHECK_TYPES,
#                                           GPU_CHECK_SKIP_TESTS=1, GPU_CHECK_SKIP_BENCH=1)
set -u -o pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-${OUT:-/tmp/gpu_check}}
shared=${INFERNO_SHARED:-$root/../shared}
build=$root/build-gpu
types=${GPU_CHECK_TYPES:-Q4_K Q4_0 Q8_0 F16}
mkdir -p "$out"
log() { echo "== $*" | tee -a "$out/summary.txt"; }

nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader | tee "$out/device.txt"

if [ -n "${INFERNO_DEB_DIR:-}" ]; then
    prefix=/tmp/inferno-debs
    mkdir -p "$prefix"
    for f in "$INFERNO_DEB_DIR"/*.deb; do dpkg -x "$f" "$prefix"; done
    pcdir="$prefix/usr/lib/x86_64-linux-gnu/pkgconfig"
    sed -i "s|=/usr|=$prefix/usr|" "$pcdir"/*.pc
    # Private requirements (gnutls for libmicrohttpd) matter only to static links; their .pc files are absent.
    sed -i '/^Requires.private/d' "$pcdir"/*.pc
    export PKG_CONFIG_PATH="$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    export LD_LIBRARY_PATH="$prefix/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
export PATH=/usr/local/cuda/bin:$PATH

t0=$(date +%s)
rm -f "$build/CMakeCache.txt" # pkg-config results are cached; configure afresh
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DINFERNO_SHARED_DIR="$shared" >"$out/configure.txt" 2>&1 ||
    { tail -30 "$out/configure.txt"; log "configure FAILED"; exit 1; }
grep "CUDA backend" "$out/configure.txt" | tee -a "$out/summary.txt"
cmake --build "$build" -j"$(nproc)" >"$out/build.txt" 2>&1 || { grep -E "error|Error" "$out/build.txt" | head -40; log "build FAILED"; exit 1; }
log "build: $(( $(date +%s) - t0 )) s"
bin=$build/inferno

if [ "${GPU_CHECK_SKIP_TESTS:-0}" != 1 ]; then
    INFERNO_SHARED=$shared timeout 300 "$build/test_cuda" 2>&1 | tee "$out/test_cuda.txt"
    log "test_cuda: $(tail -1 "$out/test_cuda.txt")"
    # The tests that run whole models (the CLI's on the GPU through the default auto placement).
    (cd "$build" && INFERNO_SHARED=$shared ctest -j8 --timeout 200 -R "${GPU_CHECK_CTEST:-test_session|test_engine|cli_test_run}" \
        --output-on-failure >"$out/ctest.txt" 2>&1)
    log "ctest: $(grep 'tests passed' "$out/ctest.txt")"
    grep -E "Failed|\*\*\*" "$out/ctest.txt" | tee -a "$out/summary.txt"
fi

[ "${GPU_CHECK_SKIP_BENCH:-0}" = 1 ] && exit 0
vocab=$shared/models/vocab/ggml-vocab-llama-spm.gguf
"$bin" synth --help >/dev/null 2>&1 || { log "bench skipped: this inferno has no synth command"; exit 0; }
story=$shared/golden/story.txt
for ty in $types; do
    model=/tmp/tinyllama-$ty.gguf
    t1=$(date +%s)
    "$bin" synth --shape tinyllama-1.1b --vocab "$vocab" --out "$model" --type "$ty" -q >"$out/synth-$ty.txt" 2>&1 ||
        { log "synth $ty FAILED: $(tail -2 "$out/synth-$ty.txt")"; continue; }
    log "synth tinyllama-1.1b $ty: $(( $(date +%s) - t1 )) s, $(du -m "$model" | cut -f1) MiB"
    # Prompt: story.txt (~500 tokens), then 128 greedy tokens; once with graphs, once without.
    for graph in 1 0; do
        INFERNO_CUDA_GRAPH=$graph timeout 120 "$bin" run -m "$model" -f "$story" -n 128 --temp 0 --ignore-eos -ngl 999 -v \
            >/dev/null 2>"$out/run-$ty-graph$graph.txt"
        log "run $ty ngl 999 graph=$graph: $(grep -E '^(prompt|generation): ' "$out/run-$ty-graph$graph.txt" | grep -v 'tokens:' | tr -s ' ' | tr '\n' ' ')"
    done
    grep -E "GPU|offloaded|buffer" "$out/run-$ty-graph1.txt" | head -8 >>"$out/summary.txt"
    # Per-op GPU time (events after every op; graphs off): a decode-heavy run, then a prompt-only run.
    INFERNO_CUDA_PROFILE=1 timeout 120 "$bin" run -m "$model" -p "Once upon a time" -n 64 --temp 0 --ignore-eos -ngl 999 -v \
        2>&1 >/dev/null | grep "GPU profile" | sed "s/^/decode $ty: /" | tee -a "$out/summary.txt"
    INFERNO_CUDA_PROFILE=1 timeout 120 "$bin" run -m "$model" -f "$story" -n 1 --temp 0 -ngl 999 -v \
        2>&1 >/dev/null | grep "GPU profile" | sed "s/^/prompt $ty: /" | tee -a "$out/summary.txt"
    if ! "$bin" bench --help 2>&1 | grep -q "no GPU backend"; then
        "$bin" bench -m "$model" -ngl 999 -p 512 -n 128 -r 3 2>&1 | tee "$out/bench-$ty.txt" | tail -4 >>"$out/summary.txt"
    fi
    rm -f "$model"
done
cat "$out/summary.txt"
