#!/usr/bin/env bash
# test.sh: installs what is missing, then builds and runs every test twice: a Release build, and a build
# with AddressSanitizer + UndefinedBehaviorSanitizer. ctest prints the summary of each.
# INFERNO_TEST_QUICK=1 skips the sanitizer pass.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
jobs=$(nproc)
echo "== Release build and tests"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
# The server's end-to-end tests (tests/cli/test_server.sh) drive it with the openai npm package.
[ -d tests/server/node_modules ] || npm ci --prefix tests/server --no-audit --no-fund
ctest --test-dir build --output-on-failure -j"$jobs"
if [ "${INFERNO_TEST_QUICK:-0}" != 1 ]; then
  echo "== AddressSanitizer + UBSan build and tests"
  # clang: its sanitizer runtime is the reference one (and gcc 12 crashes on one AVX-512 kernel with
  # sanitizers on). The CUDA backend is left out here: the Release pass compiles it, and there is no GPU.
  CC=clang cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DINFERNO_SANITIZE=ON -DINFERNO_CUDA=OFF \
    >/dev/null
  cmake --build build-asan -j"$jobs"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j"$jobs"
fi
