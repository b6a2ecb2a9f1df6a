#!/usr/bin/env bash
# profile_step.sh: where one training step's time goes, by `perf record` over steady steps, with
# oneDNN's JIT kernels named. Without ONEDNN_JIT_PROFILE, perf sees oneDNN's generated code as
# anonymous addresses ("[JIT] tid N"), and oneDNN's own timings (ONEDNN_VERBOSE) add a stream
# wait after every primitive, which inflates the short ones (reorders above all): on resnet32
# they put reorders at a third of oneDNN's time, where the named profile below finds a fifth.
# ONEDNN_JIT_PROFILE=2 makes oneDNN write /tmp/perf-PID.map, which perf reads to name them.
#
# Prints the step's median time (relate_bench_steps), then a markdown table of categories
# (oneDNN's convolution forward / backward-data / backward-weights, its reorders, relate's own
# kernels, OpenBLAS, the OpenMP runtime, libc, libm, the kernel) with their share of the
# samples and the milliseconds per step that share stands for, then the top symbols.
# Not part of the test suite; needs perf (Debian's linux-perf).
#
# usage: bash bench/profile_step.sh METHOD BACKBONE K BATCH STEPS full|compute
#   e.g. bash bench/profile_step.sh standard resnet32 1 128 30 compute
# environment: BENCH_BUILD (build folder, default build-bench), PROFILE_DELAY_MS (start-up left
# out of the recording, default 3000), PROFILE_FREQ (samples per second, default 2000),
# PROFILE_TOP (symbols listed, default 25), OMP_NUM_THREADS (default 2).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
if [[ $# -ne 6 ]]; then
  echo "usage: bash bench/profile_step.sh METHOD BACKBONE K BATCH STEPS full|compute" >&2
  exit 2
fi
command -v perf > /dev/null || { echo "profile_step.sh: perf is not installed (Debian: linux-perf)" >&2; exit 1; }
BUILD=${BENCH_BUILD:-build-bench}
DELAY=${PROFILE_DELAY_MS:-3000}
FREQ=${PROFILE_FREQ:-2000}
TOP=${PROFILE_TOP:-25}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DRELATE_BUILD_BENCH=ON > /dev/null
cmake --build "$BUILD" -j2 --target relate_bench_steps > /dev/null
STEPS=$BUILD/bench/relate_bench_steps

TMP=$(mktemp -d "${TMPDIR:-/tmp}/relate-profile.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# The program's own line (median min max img/s ...) comes from the same run that is sampled.
ONEDNN_JIT_PROFILE=2 perf record -q -o "$TMP/perf.data" -D "$DELAY" -F "$FREQ" -- \
  "$STEPS" "$@" > "$TMP/steps.out" 2> "$TMP/perf.err" || { cat "$TMP/perf.err" >&2; exit 1; }
LINE=$(grep '^relate ' "$TMP/steps.out")
MEDIAN=$(awk '{print $7}' <<< "$LINE")
echo "- case: $* ($OMP_NUM_THREADS threads), $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD)"
echo "- cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); ISA $(grep -o -m1 -w avx512f /proc/cpuinfo || echo avx2)"
echo "- step: median $MEDIAN s (relate_bench_steps: $LINE)"
perf report -i "$TMP/perf.data" --no-children --sort dso,sym --stdio -t '@' 2> /dev/null |
  grep -v '^#' | grep -v '^$' > "$TMP/report"
rm -f /tmp/perf-*.map 2> /dev/null || true

awk -F'@' -v median="$MEDIAN" -v top="$TOP" '
  function category(dso, sym) {
    if (dso ~ /JIT/ || dso ~ /libdnnl/) {
      if (sym ~ /conv_bwd_data|bwd_data/) return "oneDNN convolution backward-data"
      if (sym ~ /bwd_weights|bwd_w/) return "oneDNN convolution backward-weights"
      if (sym ~ /conv_fwd/) return "oneDNN convolution forward"
      if (sym ~ /1x1_conv|rtus/) return "oneDNN 1x1 convolution (any direction)"
      if (sym ~ /reorder|single_blk/) return "oneDNN reorders"
      return "oneDNN other"
    }
    if (dso ~ /relate/) return "relate kernels and graph"
    if (dso ~ /openblas/) return "OpenBLAS"
    if (dso ~ /gomp/) return "OpenMP runtime (mostly waiting)"
    if (dso ~ /^libc/) return "libc (copies, fills, malloc)"
    if (dso ~ /^libm/) return "libm"
    if (dso ~ /kernel/) return "operating system"
    return "other"
  }
  {
    pct = $1; gsub(/[% ]/, "", pct)
    dso = $2; gsub(/^ +| +$/, "", dso)
    sym = $3; sub(/^ *\[[.k]\] */, "", sym); gsub(/ +$/, "", sym)
    c = category(dso, sym); share[c] += pct; total += pct
    key = sym " (" (dso ~ /JIT/ ? "oneDNN JIT" : dso) ")"; bysym[key] += pct
  }
  END {
    print ""
    print "| category | share of samples | ms per step |"
    print "|---|---:|---:|"
    n = 0
    for (c in share) names[n++] = c
    for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (share[names[j]] > share[names[i]]) { t = names[i]; names[i] = names[j]; names[j] = t }
    for (i = 0; i < n; i++) printf "| %s | %.1f%% | %.1f |\n", names[i], share[names[i]], share[names[i]] / 100 * median * 1000
    printf "| all | %.1f%% | %.1f |\n", total, total / 100 * median * 1000
    print ""
    print "Top symbols (same-named JIT kernels of different shapes summed):"
    m = 0
    for (s in bysym) syms[m++] = s
    for (i = 0; i < m; i++) for (j = i + 1; j < m; j++) if (bysym[syms[j]] > bysym[syms[i]]) { t = syms[i]; syms[i] = syms[j]; syms[j] = t }
    for (i = 0; i < m && i < top; i++) printf "- %5.2f%%  %s\n", bysym[syms[i]], syms[i]
  }' "$TMP/report"
