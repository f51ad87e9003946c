#!/usr/bin/env bash
# run_cpu.sh: the reproducible CPU benchmark quoted in the README. Synthesizes TinyLlama-1.1B-shaped
# random-weight models (Q4_K_M, Q4_0, Q8_0; same shape and tensor types as the real model, so the speed is
# the real model's) into a scratch directory, measures the machine's read bandwidth with THREADS threads,
# runs `inferno bench -p 512 -n 128 -r 5 -t THREADS` on each model, and prints a summary table next to
# llama.cpp's figures from the 2-core development machine (see bench/NOTES.md).
#
# It also records what distorts CPU figures: the CPU time other processes took during each model's run (the
# machine's busy time from /proc/stat minus the benchmark's own), steal time, the load average and the busiest
# processes. Figures taken while other processes held the cores are not comparable: it warns; re-run.
#
# Left out: building (give a Release binary), downloading real models (the synthesized ones are enough for
# speed), GPU runs.
#
# usage: bench/run_cpu.sh [INFERNO_BINARY]            (default build/inferno; must be a Release build)
# environment:
#   BENCH_DIR   scratch directory for models and results (default /tmp/inferno-bench)
#   THREADS     threads (default 2)        REPS  repetitions (default 5)
#   PP, TG      prompt and generation sizes (default 512, 128)
#   TYPES       model types (default "Q4_K_M Q4_0 Q8_0")
#   SYNTH       inferno binary that synthesizes missing models (default: the benchmarked one)
#   VOCAB       vocabulary GGUF (default ../shared/models/vocab/ggml-vocab-llama-spm.gguf beside the repo)
#   BANDWIDTH   read bandwidth in GB/s; when unset it is measured with a small C probe (needs cc), before
#               the models and again after them; the summary's % uses the higher reading (the ceiling)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
bin=${1:-$repo/build/inferno}
synth=${SYNTH:-$bin}
dir=${BENCH_DIR:-/tmp/inferno-bench}
threads=${THREADS:-2}
reps=${REPS:-5}
pp=${PP:-512}
tg=${TG:-128}
types=${TYPES:-Q4_K_M Q4_0 Q8_0}
vocab=${VOCAB:-$repo/../shared/models/vocab/ggml-vocab-llama-spm.gguf}

die() { echo "run_cpu.sh: $*" >&2; exit 1; }
[ -x "$bin" ] || die "$bin: no inferno binary (build a Release one: cmake -B build -DCMAKE_BUILD_TYPE=Release)"
command -v python3 >/dev/null || die "python3 is needed for the summary table"
mkdir -p "$dir"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out="$dir/results-$stamp"
mkdir -p "$out"

# llama.cpp's figures on the 2-core development machine (llama-bench -p 512 -n 128 -r 5 -t 2, same shapes):
# type:pp512:tg128 in t/s.
refs="Q4_K_M:111:42.6 Q4_0:118:46.4 Q8_0:98:22.5"

busy_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8, $9}' /proc/stat; } # busy (no idle/iowait), steal
busiest() { # the three busiest processes over half a second (5% of a core or more), as top sees them
    top -b -n 2 -d 0.5 -w 200 2>/dev/null | awk '/^ *PID/{f++; next} f == 2 && NF >= 12 && $9 >= 5' | head -3 |
        awk '{printf "  busy: %5s%% cpu  pid %s  %s\n", $9, $1, $12}'
}

{
    echo "# inferno CPU benchmark, $stamp"
    echo "host: $(uname -srm), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores"
    echo "binary: $bin (repository HEAD $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown))"
    echo "settings: -p $pp -n $tg -r $reps -t $threads, models in $dir"
} | tee "$out/env.txt"

# Synthesize the models once; a partial file from an interrupted run is never taken for a finished one.
models=()
for t in $types; do
    f="$dir/tinyllama-1.1b-$t.gguf"
    if [ ! -s "$f" ]; then
        "$synth" synth --help >/dev/null 2>&1 || die "$f is missing and $synth has no working 'synth' command"
        [ -f "$vocab" ] || die "$vocab: vocabulary GGUF not found (set VOCAB)"
        echo "synthesizing $f ..."
        "$synth" synth --shape tinyllama-1.1b --vocab "$vocab" --out "$f.part" --type "$t" -q || die "synth $t failed"
        mv "$f.part" "$f"
    fi
    models+=("$f")
done

# Read bandwidth with the same thread count: each thread sums its half of a 512 MiB buffer (far past any
# cache); best of 7 passes. This is the ceiling a memory-bound tg step can reach. On the shared VM a reading
# moves by +-10% from one minute to the next, so it is taken again after the models.
probe=""
if [ -z "${BANDWIDTH:-}" ] && command -v cc >/dev/null; then
    cat >"$dir/readbw.c" <<'EOF'
// readbw.c: read bandwidth of N threads summing disjoint parts of a 512 MiB buffer; best of 7, GB/s. The
// buffer is in transparent huge pages, as the engine's weights are (4 KiB pages read ~10% slower on the VM).
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#define BYTES (512ull << 20)
static uint64_t *buf;
static size_t per;
static volatile uint64_t sink;
static void *sum(void *arg) {
    const uint64_t *p = buf + (size_t)(uintptr_t)arg * per;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i < per; i += 4) { s0 += p[i]; s1 += p[i + 1]; s2 += p[i + 2]; s3 += p[i + 3]; }
    sink += s0 + s1 + s2 + s3;
    return NULL;
}
int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1;
    if (n < 1 || n > 256) return 1;
    buf = aligned_alloc(2u << 20, BYTES);
    if (!buf) return 1;
    madvise(buf, BYTES, MADV_HUGEPAGE); // best effort: without it the probe reads 4 KiB pages
    for (size_t i = 0; i < BYTES / 8; i++) buf[i] = i;
    per = BYTES / 8 / (size_t)n / 4 * 4;
    double best = 0;
    for (int rep = 0; rep < 7; rep++) {
        pthread_t th[256];
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (int t = 0; t < n; t++) pthread_create(&th[t], NULL, sum, (void *)(uintptr_t)t);
        for (int t = 0; t < n; t++) pthread_join(th[t], NULL);
        clock_gettime(CLOCK_MONOTONIC, &b);
        double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
        double gbps = (double)(per * 8 * (size_t)n) / s / 1e9;
        if (gbps > best) best = gbps;
    }
    printf("%.2f\n", best);
    return 0;
}
EOF
    cc -O3 -march=native -pthread -o "$dir/readbw" "$dir/readbw.c" && probe="$dir/readbw" &&
        BANDWIDTH=$("$probe" "$threads")
fi
bw_flag=()
if [ -n "${BANDWIDTH:-}" ]; then
    echo "read bandwidth, $threads threads: $BANDWIDTH GB/s" | tee -a "$out/env.txt"
    bw_flag=(--bandwidth "$BANDWIDTH")
fi

# Each run is timed by the shell (its own user + system CPU time) between two reads of /proc/stat: the busy
# CPU time of the whole machine minus the benchmark's own is what other processes took meanwhile.
tck=$(getconf CLK_TCK)
for f in "${models[@]}"; do
    name=$(basename "$f" .gguf)
    { echo "== $name: load average $(cut -d' ' -f1-3 /proc/loadavg) before"; busiest; } | tee -a "$out/env.txt"
    read -r b0 st0 < <(busy_ticks)
    TIMEFORMAT='%R %U %S'
    { time "$bin" bench -m "$f" -p "$pp" -n "$tg" -r "$reps" -t "$threads" "${bw_flag[@]}" -o json \
        >"$out/$name.json" 2>"$out/$name.err"; } 2>"$out/$name.time" || die "bench $name failed: $(cat "$out/$name.err")"
    read -r b1 st1 < <(busy_ticks)
    read -r wall usr sys <"$out/$name.time"
    awk -v b0="$b0" -v b1="$b1" -v s0="$st0" -v s1="$st1" -v t="$tck" -v w="$wall" -v u="$usr" -v s="$sys" \
        'BEGIN { o = ((b1 - b0) / t - u - s) / w; printf "%.2f %.2f\n", o < 0 ? 0 : o, (s1 - s0) / t / w }' \
        >"$out/$name.others"
    read -r others steal <"$out/$name.others"
    { echo "== $name: $wall s; other processes used $others cores on average, steal $steal cores;" \
           "load average $(cut -d' ' -f1-3 /proc/loadavg) after"; busiest; } | tee -a "$out/env.txt"
    if awk -v o="$others" -v s="$steal" 'BEGIN { exit !(o + s > 0.2) }'; then
        echo "WARNING: $name: other processes took $others cores (+ $steal steal) during the run: its figures" \
             "are distorted; re-run when the machine is idle" | tee -a "$out/env.txt"
    fi
done

bw_after=""
if [ -n "$probe" ]; then
    bw_after=$("$probe" "$threads")
    echo "read bandwidth after the models, $threads threads: $bw_after GB/s" | tee -a "$out/env.txt"
fi
bw_max=$(awk -v a="${BANDWIDTH:-0}" -v b="${bw_after:-0}" 'BEGIN { print (a > b ? a : b) }')

# Summary: one line per model, next to llama.cpp's figures on the development machine.
python3 - "$out" "$bw_max" "$refs" >"$out/summary.md" <<'EOF'
import json, os, sys
out, bw, refs = sys.argv[1], float(sys.argv[2]), sys.argv[3]
ref = {t: (float(p), float(g)) for t, p, g in (x.split(":") for x in refs.split())}
pct_head = f"% of {bw:.1f} GB/s" if bw > 0 else "% of bw"
builds = set()
print(f"| model | size | test | inferno t/s | llama.cpp t/s | ratio | weights GB/s | {pct_head} | others (cores) |")
print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for fn in sorted(os.listdir(out)):
    if not fn.endswith(".json"):
        continue
    typ = fn[len("tinyllama-1.1b-"):-len(".json")]
    others = open(os.path.join(out, fn[:-5] + ".others")).read().split()[0]
    for o in json.load(open(os.path.join(out, fn))):
        builds.add(f"{o['build_commit']} ({o['cpu_info']})")
        r = 0.0
        if o["n_gen"] == 0 and o["n_prompt"] == 512: # the reference figures are pp512 and tg128
            r = ref.get(typ, (0, 0))[0]
        elif o["n_prompt"] == 0 and o["n_gen"] == 128:
            r = ref.get(typ, (0, 0))[1]
        gb = o["weights_gbps"]
        pct = None if gb is None or bw <= 0 else 100 * gb / bw
        ref_s = f"{r:g}" if r else "-"
        ratio = f"{o['avg_ts'] / r:.2f}" if r else "-"
        gb_s = "-" if gb is None else f"{gb:.1f}"
        pct_s = "-" if pct is None else f"{pct:.0f}%"
        print(f"| {o['model']} | {o['model_size'] / 2**30:.2f} GiB | {o['test']} | "
              f"{o['avg_ts']:.2f} +- {o['stddev_ts']:.2f} | {ref_s} | {ratio} | {gb_s} | {pct_s} | {others} |")
print()
print("build: " + "; ".join(sorted(builds)))
EOF
cat "$out/summary.md"
echo
echo "llama.cpp figures: the 2-core development machine (bench/NOTES.md); compare the ratio only there."
echo "results: $out"
