#!/usr/bin/env bash
# gpu_check.sh: the GPU machine's check, in one command: a Release build with the CUDA backend, the GPU
# tests (test_cuda; on a failure again with the GEMM path off and with the legacy matvec, to say which path
# broke) plus the CPU golden and CLI tests, then `inferno bench -p 512 -n 128 -r 3 -ngl 999` on
# TinyLlama-1.1B-shaped models made on the spot with `inferno synth` (Q4_K_M, Q4_0, Q8_0 and F16 by default,
# made in parallel), for each type a tg128 line with the per-op decode kernels (INFERNO_CUDA_PERSIST=0)
# beside the persistent kernel's, for the first type a per-op GPU profile, a pp512 line without the F16
# weight copies, tg128 at depths 256, 1,024 and 4,096 and a -t 4 line, one `-ngl 0` line for the CPU on the same
# machine (GPU_CHECK_CPU=0: none), pp512 and tg128 at depths 0, 1,024 and 4,096 of a Mistral-7B-shaped Q4_K_M
# model (head size 128; GPU_CHECK_HD128=0: none),
# and the table of all of it last.
# Leaves out: installing anything system-wide. When the -dev packages are missing, set INFERNO_DEB_DIR to
# a folder of .deb files (libpcre2-dev, libjson-c-dev, libmicrohttpd-dev and their libraries): they are
# unpacked into a private prefix and the build is pointed at it.
#
# usage: tools/gpu_check.sh [OUT_DIR]      (environment: INFERNO_SHARED, INFERNO_DEB_DIR, GPU_CHECK_TYPES,
#                                           GPU_CHECK_SKIP_TESTS=1, GPU_CHECK_SKIP_BENCH=1, GPU_CHECK_CPU=0,
#                                           GPU_CHECK_BUILD=DIR, GPU_CHECK_HD128=0,
#                                           GPU_CHECK_ARCHS=90-real: the card's code only, a faster build)
set -u -o pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-${OUT:-/tmp/gpu_check}}
shared=${INFERNO_SHARED:-$root/../shared}
build=${GPU_CHECK_BUILD:-$root/build-gpu}
types=${GPU_CHECK_TYPES:-Q4_K_M Q4_0 Q8_0 F16}
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
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DINFERNO_SHARED_DIR="$shared" \
    ${GPU_CHECK_ARCHS:+-DINFERNO_CUDA_ARCHS=$GPU_CHECK_ARCHS} >"$out/configure.txt" 2>&1 ||
    { tail -30 "$out/configure.txt"; log "configure FAILED"; exit 1; }
grep "CUDA backend" "$out/configure.txt" | tee -a "$out/summary.txt"
cmake --build "$build" -j"$(nproc)" >"$out/build.txt" 2>&1 || { grep -E "error|Error" "$out/build.txt" | head -40; log "build FAILED"; exit 1; }
log "build: $(( $(date +%s) - t0 )) s"
bin=$build/inferno
vocab=$shared/models/vocab/ggml-vocab-llama-spm.gguf
bench_on=1
[ "${GPU_CHECK_SKIP_BENCH:-0}" = 1 ] && bench_on=0
"$bin" synth --help >/dev/null 2>&1 || { log "bench skipped: this inferno has no synth command"; bench_on=0; }

# The models are made in the background while the tests run (the machine has cores to spare).
if [ "$bench_on" = 1 ]; then
    for ty in $types; do
        ( t1=$(date +%s)
          if "$bin" synth --shape tinyllama-1.1b --vocab "$vocab" --out "/tmp/tinyllama-$ty.gguf" --type "$ty" -q \
              >"$out/synth-$ty.txt" 2>&1; then
              echo "synth tinyllama-1.1b $ty: $(( $(date +%s) - t1 )) s, $(du -m "/tmp/tinyllama-$ty.gguf" | cut -f1) MiB" >>"$out/synth-$ty.txt"
          else echo "FAILED" >>"$out/synth-$ty.txt"; fi ) &
    done
fi

if [ "${GPU_CHECK_SKIP_TESTS:-0}" != 1 ]; then
    INFERNO_SHARED=$shared timeout 300 "$build/test_cuda" >"$out/test_cuda.txt" 2>&1
    log "test_cuda: $(tail -1 "$out/test_cuda.txt")"
    if ! tail -1 "$out/test_cuda.txt" | grep -q " 0 failed"; then
        grep -E "FAIL|nmse|greedy" "$out/test_cuda.txt" | head -60
        # Which path broke: the same tests with batches off the GEMM path, then with the legacy matvec too.
        INFERNO_CUDA_GEMM_MIN=0 INFERNO_SHARED=$shared timeout 300 "$build/test_cuda" >"$out/test_cuda_nogemm.txt" 2>&1
        log "test_cuda, GEMM path off: $(tail -1 "$out/test_cuda_nogemm.txt")"
        INFERNO_CUDA_GEMM_MIN=0 INFERNO_CUDA_MMVQ=0 INFERNO_SHARED=$shared timeout 300 "$build/test_cuda" \
            >"$out/test_cuda_legacy.txt" 2>&1
        log "test_cuda, GEMM off, legacy matvec: $(tail -1 "$out/test_cuda_legacy.txt")"
    fi
    # The tests that run whole models (the CLI's on the GPU through the default auto placement).
    (cd "$build" && INFERNO_SHARED=$shared ctest -j8 --timeout 200 -R "${GPU_CHECK_CTEST:-test_session|test_engine|cli_test_run|cli_test_bench}" \
        --output-on-failure >"$out/ctest.txt" 2>&1)
    log "ctest: $(grep 'tests passed' "$out/ctest.txt")"
    grep -E "Failed|\*\*\*" "$out/ctest.txt" | tee -a "$out/summary.txt"
fi

[ "$bench_on" = 1 ] || { cat "$out/summary.txt"; exit 0; }
wait
story=$shared/golden/story.txt
first=1
for ty in $types; do
    model=/tmp/tinyllama-$ty.gguf
    log "$(tail -1 "$out/synth-$ty.txt")"
    [ -f "$model" ] || continue
    timeout 200 "$bin" bench -m "$model" -p 512 -n 128 -r 3 -ngl 999 --output md >"$out/bench-$ty.md" 2>"$out/bench-$ty.err" ||
        log "bench $ty FAILED: $(tail -3 "$out/bench-$ty.err")"
    # The A/B of the decode path: the per-op kernels instead of the persistent one.
    INFERNO_CUDA_PERSIST=0 timeout 120 "$bin" bench -m "$model" -p 0 -n 128 -r 3 -ngl 999 --output md 2>/dev/null |
        grep 'tg128' | sed "s/^/PERSIST=0 /" >>"$out/bench-$ty-ab.md"
    if [ "$first" = 1 ]; then
        # Per-op GPU time (events after every op; graphs off): a decode-heavy run, then a prompt-only run.
        INFERNO_CUDA_PROFILE=1 timeout 120 "$bin" run -m "$model" -p "Once upon a time" -n 64 --temp 0 --ignore-eos \
            -ngl 999 -v 2>&1 >/dev/null | grep "GPU profile" | sed "s/^/decode $ty: /" | tee -a "$out/summary.txt"
        INFERNO_CUDA_PROFILE=1 timeout 120 "$bin" run -m "$model" -f "$story" -n 1 --temp 0 -ngl 999 -v \
            2>&1 >/dev/null | grep "GPU profile" | sed "s/^/prompt $ty: /" | tee -a "$out/summary.txt"
        # GPU time of a decode step (graph replays timed with events), against the step time the CLI sees.
        INFERNO_CUDA_PROFILE=2 timeout 120 "$bin" run -m "$model" -p "Once upon a time" -n 128 --temp 0 --ignore-eos \
            -ngl 999 -v 2>&1 >/dev/null | grep -E "GPU profile|^generation: " | grep -v 'tokens:' | tr -s ' ' |
            sed "s/^/graph $ty: /" | tee -a "$out/summary.txt"
        # Prompt processing without the model's F16 weight copies (dequantized per batch instead).
        INFERNO_CUDA_F16_CACHE=0 timeout 120 "$bin" bench -m "$model" -p 512 -n 0 -r 3 -ngl 999 --output md 2>/dev/null |
            grep 'pp512' | sed "s/^/F16_CACHE=0 /" >>"$out/bench-$ty-ab.md"
        # Decode deeper into a context (the attention's share grows with the cache).
        timeout 200 "$bin" bench -m "$model" -p 0 -n 128 -d 256,1024,4096 -r 3 -ngl 999 --output md 2>/dev/null |
            grep 'tg128 @' >>"$out/bench-$ty-ab.md"
        # Parallel decoding, as a server steps its running requests (a token of each sequence a step).
        timeout 200 "$bin" bench -m "$model" -p 0 -n 64 -np 2,4,8,16,32 -r 3 -ngl 999 --output md 2>/dev/null |
            grep -E 'tg64 x' >>"$out/bench-$ty-ab.md"
        # Fewer CPU threads (the GPU rows use the CPU for the embedding rows only).
        timeout 120 "$bin" bench -m "$model" -p 512 -n 128 -r 3 -t 4 -ngl 999 --output md 2>/dev/null |
            grep -E 'pp512|tg128' >>"$out/bench-$ty-ab.md"
        if [ "${GPU_CHECK_CPU:-1}" = 1 ]; then
            timeout 200 "$bin" bench -m "$model" -p 512 -n 128 -r 3 -ngl 0 --output md >"$out/bench-$ty-cpu.md" \
                2>"$out/bench-$ty-cpu.err" || log "bench $ty -ngl 0 FAILED: $(tail -3 "$out/bench-$ty-cpu.err")"
        fi
        first=0
    fi
    rm -f "$model"
done
# Head size 128 (the long form's kernel of its own): a Mistral-7B-shaped Q4_K_M model, decode at depths.
if [ "${GPU_CHECK_HD128:-1}" = 1 ]; then
    m7=/tmp/mistral-7b-Q4_K_M.gguf
    if "$bin" synth --shape mistral-7b --vocab "$vocab" --out "$m7" --type Q4_K_M -q >"$out/synth-m7.txt" 2>&1; then
        timeout 300 "$bin" bench -m "$m7" -p 512 -n 128 -d 0,1024,4096 -r 2 -ngl 999 --output md 2>/dev/null |
            grep -E 'pp512|tg128' >>"$out/bench-mistral-7b.md"
    else log "synth mistral-7b FAILED: $(tail -3 "$out/synth-m7.txt")"; fi
    rm -f "$m7"
fi
cat "$out/summary.txt"
# The table: one header, then every row (GPU rows per type, then the CPU line).
echo
f=$(ls "$out"/bench-*.md 2>/dev/null | head -1)
[ -n "$f" ] && grep -m2 '^|' "$f"
for ty in $types; do [ -f "$out/bench-$ty.md" ] && grep '^|' "$out/bench-$ty.md" | tail -n +3; done
for ty in $types; do [ -f "$out/bench-$ty-ab.md" ] && cat "$out/bench-$ty-ab.md"; done
[ -f "$out/bench-mistral-7b.md" ] && cat "$out/bench-mistral-7b.md"
for ty in $types; do [ -f "$out/bench-$ty-cpu.md" ] && grep '^|' "$out/bench-$ty-cpu.md" | tail -n +3; done
[ -n "$f" ] && grep '^build:' "$f"
exit 0
