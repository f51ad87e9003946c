#!/usr/bin/env bash
# test_bench.sh: end-to-end tests of `inferno bench` on stories260K and the micro Q4_K_M model with tiny
# -p/-n/-r so it stays fast: the Markdown table's shape and cells, --output json parsed (python3, else node,
# else grep) with llama-bench's keys and figures that agree with each other (avg_ts is the mean of
# samples_ts, stddev_ts their sample standard deviation, one sample per repetition, t/s = tokens / ns),
# parameter counts against the model READMEs, every model x thread count x test in order, CSV, the logits
# fingerprint repeating across runs, -d (depth), the -ngl note, and bad flags named in errors.
# usage: test_bench.sh INFERNO_BINARY SHARED_DIR
set -u
bin="$1"; shared="${INFERNO_SHARED:-$2}"
m1="$shared/models/stories260K.gguf"
m2="$shared/models/synthetic/micro-Q4_K_M.gguf"
[ -x "$bin" ] || { echo "SKIP: $bin not built"; exit 77; }
[ -f "$m1" ] || { echo "SKIP: $m1 not found"; exit 77; }
[ -f "$m2" ] || { echo "SKIP: $m2 not found"; exit 77; }
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export HOME="$tmp" XDG_CONFIG_HOME="$tmp/xdg"; cd "$tmp" || exit 1
unset INFERNO_THREADS INFERNO_BATCH_SIZE INFERNO_CONTEXT_SIZE
pass=0; fail=0
ok() { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*" >&2; }
expect_eq() { if [ "$1" == "$2" ]; then ok; else bad "$3: got [$1] want [$2]"; fi; }
expect_grep() { if grep -Eq -- "$1" "$2"; then ok; else bad "$3: /$1/ not in $(head -c 600 "$2")"; fi; }

# --- Markdown: two models x two thread counts x (pp, tg) = 8 rows, in llama-bench's order.
"$bin" bench -m "$m1,$m2" -p 8 -n 4 -r 2 -t 1,2 >md.txt 2>md.err; rc=$?
expect_eq "$rc" 0 "markdown exit code"
expect_grep '^\| model +\| +size \| +params \| backend +\| threads \| +test \| +t/s \| +GB/s \|$' md.txt "header"
expect_grep '^\| -+ \| -+: \| -+: \| -+ \| -+: \| -+: \| -+: \| -+: \|$' md.txt "separator"
rows=$(grep '^|' md.txt | tail -n +3 | wc -l | tr -d ' ')
expect_eq "$rows" 8 "row count"
# Every header, separator and row line has the same number of cells.
cells=$(grep '^|' md.txt | awk -F'|' '{print NF}' | sort -u | tr '\n' ' ')
expect_eq "$cells" "10 " "cells per line"
# Cells, in order: model, size, params, backend, threads, test, "mean +- sd", GB/s (tg only).
got=$(grep '^|' md.txt | tail -n +3 | awk -F'|' '{for (i = 2; i <= 7; i++) {gsub(/^ +| +$/, "", $i)}; print $2 "/" $3 "/" $4 "/" $6 "/" $7}' | tr '\n' ' ')
want="stories260K F32/1.12 MiB/0.29 M/1/pp8 stories260K F32/1.12 MiB/0.29 M/1/tg4 "
want+="stories260K F32/1.12 MiB/0.29 M/2/pp8 stories260K F32/1.12 MiB/0.29 M/2/tg4 "
want+="micro-Q4_K_M Q4_K/1.84 MiB/3.41 M/1/pp8 micro-Q4_K_M Q4_K/1.84 MiB/3.41 M/1/tg4 "
want+="micro-Q4_K_M Q4_K/1.84 MiB/3.41 M/2/pp8 micro-Q4_K_M Q4_K/1.84 MiB/3.41 M/2/tg4 "
expect_eq "$got" "$want" "table cells"
n_ts=$(grep '^|' md.txt | tail -n +3 | grep -Ec '\| +[0-9]+\.[0-9]{2} \+- [0-9]+\.[0-9]{2} \|')
expect_eq "$n_ts" 8 "t/s cells are 'mean +- sd'"
expect_grep '^\| stories260K F32 .*\| +CPU[ a-z0-9]* +\| +1 \| +tg4 \| .* \| +[0-9]+\.[0-9]{2} \|$' md.txt "tg row has GB/s"
expect_grep '^\| stories260K F32 .*\| +pp8 \| .* \| +- \|$' md.txt "pp row has no GB/s"
expect_grep '^build: .* \| load average [0-9.]+ [0-9.]+ [0-9.]+ before' md.txt "footer"

# --- JSON: the same run plus a pp+tg test and --bandwidth; checked by a real parser where there is one.
"$bin" bench -m "$m1" -m "$m2" -p 8 -n 4 -pg 4,2 -r 3 -t 1,2 --bandwidth 10 -o json >j.json 2>j.err; rc=$?
expect_eq "$rc" 0 "json exit code"
expected=""
for m in "$m1" "$m2"; do for t in 1 2; do for x in pp8 tg4 pp4+tg2; do expected+="$m|$t|$x;"; done; done; done
# Parameter counts from shared/models/README.md and shared/models/synthetic/README.md.
params="$m1=292800;$m2=3410176"
py_check='
import json, math, re, sys
data = json.load(open(sys.argv[1])); reps = int(sys.argv[2]); bw = float(sys.argv[5])
want = [tuple(x.split("|")) for x in sys.argv[3].split(";") if x]
params = dict(x.split("=") for x in sys.argv[4].split(";"))
errs = []
def need(c, msg):
    if not c: errs.append(msg)
need(isinstance(data, list) and len(data) == len(want), "want %d objects, got %s" % (len(want), len(data)))
keys = ["model", "model_filename", "model_type", "model_size", "model_n_params", "n_batch", "n_prompt", "n_gen",
        "threads", "n_threads", "n_gpu_layers", "test", "avg_ts", "stddev_ts", "samples_ts", "samples_ns", "avg_ns",
        "stddev_ns", "build_commit", "test_time", "backend", "weights_gbps", "logits_hash"]
for i, o in enumerate(data):
    miss = [k for k in keys if k not in o]
    if miss: errs.append("object %d lacks %s" % (i, miss)); continue
    tag = "%s/%s/%s" % (o["model_filename"], o["threads"], o["test"])
    if i < len(want): need((o["model_filename"], str(o["threads"]), o["test"]) == want[i], "object %d is %s" % (i, tag))
    p, g = o["n_prompt"], o["n_gen"]
    need(o["test"] == ("pp%d" % p if g == 0 else "tg%d" % g if p == 0 else "pp%d+tg%d" % (p, g)), tag + ": test name")
    need(str(o["model_n_params"]) == params.get(o["model_filename"]), tag + ": model_n_params")
    need(o["model_size"] > 0 and o["n_batch"] == 512 and o["n_gpu_layers"] == 0, tag + ": size/batch/ngl")
    need(o["n_threads"] == o["threads"], tag + ": n_threads")
    ts, ns = o["samples_ts"], o["samples_ns"]
    need(len(ts) == reps and len(ns) == reps, tag + ": %d/%d samples, want %d" % (len(ts), len(ns), reps))
    need(o["avg_ts"] > 0 and o["stddev_ts"] >= 0 and all(t > 0 for t in ts), tag + ": avg_ts/stddev_ts")
    if len(ts) == reps and reps > 1:
        mean = sum(ts) / reps; sd = math.sqrt(sum((t - mean) ** 2 for t in ts) / (reps - 1))
        need(abs(mean - o["avg_ts"]) <= 1e-4 * mean, tag + ": avg_ts %g is not the mean %g" % (o["avg_ts"], mean))
        need(abs(sd - o["stddev_ts"]) <= 1e-3 * mean, tag + ": stddev_ts %g, want %g" % (o["stddev_ts"], sd))
        for t, n in zip(ts, ns):
            need(abs(t - (p + g) * 1e9 / n) <= 1e-3 * t, tag + ": sample %g t/s is not tokens/%d ns" % (t, n))
        need(abs(sum(ns) / reps - o["avg_ns"]) <= 1 + 1e-6 * o["avg_ns"], tag + ": avg_ns")
    if p == 0:
        gb = o["model_size"] * o["avg_ts"] / 1e9
        need(o["weights_gbps"] is not None and abs(o["weights_gbps"] - gb) <= 1e-3 * gb + 1e-4, tag + ": weights_gbps")
        need(abs(o["bandwidth_pct"] - 100 * gb / bw) <= 1e-2 * (100 * gb / bw) + 0.01, tag + ": bandwidth_pct")
    else:
        need(o["weights_gbps"] is None, tag + ": weights_gbps only for tg")
    need(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", o["test_time"]) is not None, tag + ": test_time")
    need(re.fullmatch(r"[0-9a-f]{16}", o["logits_hash"]) is not None, tag + ": logits_hash")
for e in errs: print(e)
'
# shellcheck disable=SC2016 # JavaScript template literals, not shell expansions
js_check='
const [file, reps, wantS, paramS, bwS] = process.argv.slice(1);
const data = JSON.parse(require("fs").readFileSync(file, "utf8")), R = +reps, bw = +bwS;
const want = wantS.split(";").filter(Boolean), params = Object.fromEntries(paramS.split(";").map(x => x.split("=")));
const errs = [], need = (c, m) => { if (!c) errs.push(m); };
need(Array.isArray(data) && data.length === want.length, `want ${want.length} objects, got ${data.length}`);
data.forEach((o, i) => {
  const tag = `${o.model_filename}/${o.threads}/${o.test}`, p = o.n_prompt, g = o.n_gen;
  need(`${o.model_filename}|${o.threads}|${o.test}` === want[i], `object ${i} is ${tag}`);
  need(o.test === (g === 0 ? `pp${p}` : p === 0 ? `tg${g}` : `pp${p}+tg${g}`), tag + ": test name");
  need(String(o.model_n_params) === params[o.model_filename], tag + ": model_n_params");
  need(o.n_gpu_layers === 0 && o.n_batch === 512 && o.model_size > 0 && typeof o.build_commit === "string", tag);
  const ts = o.samples_ts || [], ns = o.samples_ns || [];
  need(ts.length === R && ns.length === R, tag + ": sample count");
  need(o.avg_ts > 0 && o.stddev_ts >= 0, tag + ": avg_ts/stddev_ts");
  const mean = ts.reduce((a, b) => a + b, 0) / R;
  const sd = Math.sqrt(ts.reduce((a, t) => a + (t - mean) ** 2, 0) / (R - 1));
  need(Math.abs(mean - o.avg_ts) <= 1e-4 * mean && Math.abs(sd - o.stddev_ts) <= 1e-3 * mean, tag + ": stats");
  ts.forEach((t, k) => need(Math.abs(t - (p + g) * 1e9 / ns[k]) <= 1e-3 * t, tag + ": sample vs ns"));
  if (p === 0) need(Math.abs(o.weights_gbps - o.model_size * o.avg_ts / 1e9) <= 1e-3 * o.weights_gbps + 1e-4 &&
                    o.bandwidth_pct !== null, tag + ": weights_gbps");
  else need(o.weights_gbps === null, tag + ": weights_gbps only for tg");
  need(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(o.test_time) && /^[0-9a-f]{16}$/.test(o.logits_hash), tag);
});
errs.forEach(e => console.log(e));
'
json_check() { # file reps expected params bandwidth: prints one line per problem
  if command -v python3 >/dev/null && python3 -c 'import json' 2>/dev/null; then
    python3 -c "$py_check" "$@" 2>&1
  elif command -v node >/dev/null; then
    node -e "$js_check" "$@" 2>&1
  else # no parser: the keys and counts by grep
    local n; n=$(grep -c '"avg_ts": [0-9]' "$1"); [ "$n" -eq "$(echo "$3" | tr ';' '\n' | grep -c .)" ] ||
      echo "grep: $n avg_ts"
    for k in model test threads n_gpu_layers stddev_ts samples_ts build_commit test_time; do
      grep -q "\"$k\": " "$1" || echo "grep: no $k"
    done
  fi
}
problems=$(json_check j.json 3 "$expected" "$params" 10)
expect_eq "$problems" "" "json contents"

# Every repetition decodes the same tokens, so the engine's logits agree across them (no warning), and
# the same test run twice gives the same fingerprint.
if grep -q "not deterministic" j.err; then bad "repetitions differ: $(cat j.err)"; else ok; fi
"$bin" bench -m "$m1" -p 0 -n 4 -r 2 -t 2 -o json >h1.json 2>/dev/null
"$bin" bench -m "$m1" -p 0 -n 4 -r 2 -t 2 -o json >h2.json 2>/dev/null
h1=$(grep -o '"logits_hash": "[0-9a-f]*"' h1.json); h2=$(grep -o '"logits_hash": "[0-9a-f]*"' h2.json)
expect_eq "$h1" "$h2" "logits hash repeats"
if [ -n "$h1" ]; then ok; else bad "no logits hash in $(head -c 300 h1.json)"; fi

# -d: the tests after N tokens already in the cache. Rows per depth in order, labelled "@ dN", n_depth in
# JSON; and the depth's tokens are really there: tg4 after a depth of 16 decodes the very tokens of pp16+tg4
# (BOS, then the same random stream), so its last logits are the same.
"$bin" bench -m "$m1" -p 8 -n 4 -d 0,16 -r 2 -t 1 >d.txt 2>d.err; rc=$?
expect_eq "$rc" 0 "depth exit code"
got=$(grep '^|' d.txt | tail -n +3 | awk -F'|' '{gsub(/^ +| +$/, "", $7); print $7}' | tr '\n' ',')
expect_eq "$got" "pp8,tg4,pp8 @ d16,tg4 @ d16," "depth rows"
"$bin" bench -m "$m1" -p 0 -n 4 -d 16 -pg 16,4 -r 2 -t 1 -o json >d.json 2>d.err; rc=$?
expect_eq "$rc" 0 "depth json exit code"
expect_eq "$(grep -o '"n_depth": [0-9]*' d.json | tr '\n' ',')" '"n_depth": 16,"n_depth": 16,' "n_depth fields"
expect_eq "$(grep -o '"test": "[^"]*"' d.json | tr '\n' ',')" '"test": "tg4 @ d16","test": "pp16+tg4 @ d16",' "depth test names"
"$bin" bench -m "$m1" -p 0 -n 0 -pg 16,4 -r 1 -t 1 -o json >d0.json 2>/dev/null
hd=$(grep -o '"logits_hash": "[0-9a-f]*"' d.json | head -1); hp=$(grep -o '"logits_hash": "[0-9a-f]*"' d0.json)
expect_eq "$hd" "$hp" "tg4 @ d16 decodes what pp16+tg4 does"
if [ -n "$hd" ]; then ok; else bad "no logits hash in $(head -c 300 d.json)"; fi

# -np: several sequences at once. Per depth, per sequence count: pp then tg, named "xN" above 1; JSON carries
# n_parallel; t/s counts every sequence's tokens (samples_ts = N x tokens / ns), and tg's GB/s counts the
# weights once a step (model_size x avg_ts / N).
"$bin" bench -m "$m1" -p 4 -n 2 -np 1,3 -r 2 -t 1 -o json >np.json 2>np.err; rc=$?
expect_eq "$rc" 0 "-np exit code"
expect_eq "$(grep -o '"test": "[^"]*"' np.json | tr '\n' ',')" '"test": "pp4","test": "tg2","test": "pp4 x3","test": "tg2 x3",' "-np test names"
expect_eq "$(grep -o '"n_parallel": [0-9]*' np.json | tr '\n' ',')" '"n_parallel": 1,"n_parallel": 1,"n_parallel": 3,"n_parallel": 3,' "n_parallel fields"
# One line per test: np, tokens per sequence, avg_ns, avg_ts, weights_gbps, model_size, the first sample's ns and t/s.
np_rows=$(tr -d '\n ' <np.json | sed 's/},{/}\n{/g' | sed -E 's/.*"model_size":([0-9]+).*"n_prompt":([0-9]+),"n_gen":([0-9]+).*"avg_ts":([0-9.]+).*"weights_gbps":([0-9.null]+).*"n_parallel":([0-9]+),"samples_ns":\[([0-9]+).*"samples_ts":\[([0-9.]+).*/\6 \2 \3 \4 \5 \1 \7 \8/')
bad_np=$(echo "$np_rows" | awk '{ np = $1; tok = $2 + $3; want = np * tok * 1e9 / $7;
  if ($8 < want * 0.999 || $8 > want * 1.001) print "sample " $8 " t/s is not " np " x " tok " tokens / " $7 " ns";
  if ($2 == 0) { gb = $6 * $4 / np / 1e9; if ($5 < gb * 0.999 - 1e-4 || $5 > gb * 1.001 + 1e-4) print "weights_gbps " $5 " is not " gb }
  n++ } END { if (n != 4) print n " rows" }')
expect_eq "$bad_np" "" "-np figures"
"$bin" bench -m "$m1" -p 0 -n 2 -np 2 -d 4 -r 1 -t 1 >npd.txt 2>&1; rc=$?
expect_eq "$rc" 0 "-np with -d exit code"
expect_grep '^\| stories260K F32 .*\| +tg2 x2 @ d4 \|' npd.txt "-np with -d row"

# CSV: a header naming llama-bench's fields, then one line per test.
"$bin" bench -m "$m1" -p 8 -n 4 -r 2 -t 1 -o csv >c.csv 2>/dev/null; rc=$?
expect_eq "$rc" 0 "csv exit code"
expect_eq "$(wc -l <c.csv | tr -d ' ')" 3 "csv lines"
expect_grep '^build_commit,.*,model_filename,.*,avg_ts,stddev_ts,.*samples_ts$' c.csv "csv header"
expect_grep '^"[0-9a-z]*",.*,"tg4",' c.csv "csv row"

# -ngl above 0: the model is loaded with that many GPU layers. Without a usable GPU (or CUDA backend) the
# load says why and the row records the layers actually placed: 0, on the CPU backend.
"$bin" bench -m "$m1" -p 0 -n 2 -r 1 -ngl 99 >g.txt 2>g.err; rc=$?
expect_eq "$rc" 0 "-ngl exit code"
expect_grep '^\| model .*\| ngl \|' g.txt "ngl column"
if grep -q '| CUDA ' g.txt; then
  expect_grep '^\| stories260K F32 .*\| CUDA .*\| +5 \| .*tg2 \|' g.txt "ngl recorded as 5"
else
  expect_grep 'GPU' g.err "why the GPU is not used"
  expect_grep '^\| stories260K F32 .*\| CPU.*\| +0 \| .*tg2 \|' g.txt "ngl recorded as 0"
fi

# Bad flags and files are named, with exit code 2 (usage) or 1 (run).
check_err() { # want_rc pattern args...
  local want_rc="$1" pat="$2"; shift 2
  "$bin" "$@" >/dev/null 2>e.txt; local rc=$?
  expect_eq "$rc" "$want_rc" "exit code of: $*"
  expect_grep "$pat" e.txt "error of: $*"
}
check_err 2 "unknown option '--bogus'" bench -m "$m1" --bogus
check_err 2 "\-p: 'abc' is not an integer" bench -m "$m1" -p 8,abc
check_err 2 "\-t: '' is not an integer" bench -m "$m1" -t 1,
check_err 2 "\-r: 0 is out of range" bench -m "$m1" -r 0
check_err 2 "\-\-output: 'xml' is not one of md, json, csv" bench -m "$m1" --output xml
check_err 2 "\-pg: '5' is not a pair PP,TG" bench -m "$m1" -pg 5
check_err 2 "\-m is required" bench -p 8
check_err 2 "\-n needs a value" bench -m "$m1" -n
check_err 2 "nothing to run" bench -m "$m1" -p 0 -n 0
check_err 2 "\-\-ctx-size 8 is smaller than the largest test \(16 tokens\)" bench -m "$m1" -p 16 -n 4 -c 8
check_err 2 "\-\-ctx-size 20 is smaller than the largest test \(24 tokens, with the largest depth\)" bench -m "$m1" -p 0 -n 8 -d 4,16 -c 20
check_err 2 "\-d: 'x' is not an integer" bench -m "$m1" -d x
check_err 2 "\-np: 0 is out of range" bench -m "$m1" -np 0
check_err 2 "\-np: 257 is out of range" bench -m "$m1" -np 2,257
check_err 2 "\-\-ctx-size 20 is smaller than the largest test \(32 tokens, over the most parallel sequences\)" bench -m "$m1" -p 0 -n 8 -np 4 -c 20
check_err 1 "nope.gguf: cannot open" bench -m "$m1,nope.gguf" -p 4 -n 0 -r 1
"$bin" bench --help >h.txt; expect_grep "\-\-repetitions" h.txt "bench help"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
