#!/usr/bin/env bash
# run_suite.sh: the benchmark suite (issues 6 and 11). relate and the reference's PyTorch code do
# the same work in the same run, alternating relate / PyTorch per case and round, under two
# OpenBLAS environments (as this machine sets them, and with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE
# unset). PyTorch runs as a careful user runs it, in every configuration below, and the fastest
# one is "PyTorch" in the ratios:
#   deb1.13+glibc, deb1.13+tcmalloc   Debian's python3-torch 1.13 (the reference's era), with
#                                     glibc's malloc and with tcmalloc preloaded (Debian's
#                                     libtcmalloc-minimal4: glibc returns big tensors to the
#                                     kernel, and a page fault costs ~11 us on these VMs)
#   pypiX+glibc, pypiX+tcmalloc,      the newest torch/torchvision from PyPI, in a virtual
#   pypiX+compile+tcmalloc            environment used only by the benchmarks (created when
#                                     missing, unless BENCH_NO_PIP=1), eager and under
#                                     torch.compile
# Prints one markdown table with times, images/s, peak RSS, the ratios, the fastest PyTorch
# configuration, and each case's floors: FLOPs / the machine's measured FMA peak (2 threads, the
# widest vector unit the CPU has; relate_bench_floor peak) and minimum bytes / measured bandwidth;
# OpenBLAS's sgemm rate is printed as information. Not part of the test suite; needs Debian's
# python3-torch and python3-torchvision. One round with every configuration: about 25 minutes
# on an idle 2-core machine.
#
# usage: bash bench/run_suite.sh [ROUNDS]      (default 1)
# environment: BENCH_BUILD (build folder, default build-bench), LINEVAL_MEASURE (PyTorch linear
# evaluation epochs actually timed, default 2; the 100-epoch figure is extrapolated from them),
# BENCH_ONLY (an extended regex: run only the cases of CASES below that match it, for quick checks),
# BENCH_ENVS (default "set unset"), BENCH_VENV (default ~/.cache/relate-bench-venv), BENCH_NO_PIP.
#
# Cases: relationnet conv4 K=32 B=64 (the paper's step, full with augmentation and compute only),
# relationnet resnet32 K=4 B=64, standard resnet32 B=128, linear evaluation of conv4 (the real
# `relate train_linear_evaluation` against the reference's stage 2), and each baseline's step on
# conv4 B=128. Data: synthetic 32x32 CIFAR-like images (no CIFAR copy here); docs in
# docs/benchmarks.md ("Performance suite").
set -euo pipefail
shopt -s inherit_errexit # a failing program inside $(...) stops the suite too
cd "$(dirname "$0")/.."
ROUNDS=${1:-1}
BUILD=${BENCH_BUILD:-build-bench}
LINEVAL_MEASURE=${LINEVAL_MEASURE:-2}
ONLY=${BENCH_ONLY:-.}
LINEVAL_EPOCHS=100
PY=/usr/bin/python3
export OMP_NUM_THREADS=2 # PyTorch's side calls torch.set_num_threads(2) itself
TCMALLOC=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
VENV=${BENCH_VENV:-$HOME/.cache/relate-bench-venv}
NEWPY=$VENV/bin/python

cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DRELATE_BUILD_BENCH=ON > /dev/null
cmake --build "$BUILD" -j2 --target relate_cli relate_bench_steps relate_bench_floor > /dev/null
BUILD=$(cd "$BUILD" && pwd) # absolute: the linear evaluation runs in a temporary folder
RELATE=$BUILD/relate
STEPS=$BUILD/bench/relate_bench_steps
FLOOR=$BUILD/bench/relate_bench_floor

TMP=$(mktemp -d "${TMPDIR:-/tmp}/relate-suite.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
RESULTS=$TMP/results

read -r -a ENVS <<< "${BENCH_ENVS:-set unset}"
declare -A ENV_LABEL=([set]="as set" [unset]="unset")
# Runs "$@" in environment $1: as the caller has it, or without the two OpenBLAS overrides.
in_env() {
  local e=$1
  shift
  if [[ $e == unset ]]; then env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$@"; else "$@"; fi
}
# Runs "$@" with stderr to a log; on failure shows the log's tail and stops the suite.
checked() {
  local log=$TMP/last.log
  if ! "$@" 2> "$log"; then
    echo "run_suite: failed: $*" >&2
    tail -20 "$log" >&2
    exit 1
  fi
}
note() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

# PyTorch configurations (see the top of this file); a missing allocator or venv is said, not fatal.
VARIANTS=("deb1.13+glibc")
if [[ -f $TCMALLOC ]]; then
  VARIANTS+=("deb1.13+tcmalloc")
else
  echo "run_suite: no $TCMALLOC: PyTorch runs with glibc's malloc only (apt-get install libtcmalloc-minimal4)" >&2
fi
if [[ ! -x $NEWPY && -z ${BENCH_NO_PIP:-} ]]; then
  note "creating $VENV with the newest torch and torchvision from PyPI (once; a few minutes)"
  $PY -m venv "$VENV" && "$NEWPY" -m pip install -q torch torchvision >&2 || rm -rf "$VENV"
fi
NEWVER=$([[ -x $NEWPY ]] && "$NEWPY" -c 'import torch, torchvision; print(torch.__version__.split("+")[0])' 2> /dev/null || true)
if [[ -n $NEWVER ]]; then
  VARIANTS+=("pypi$NEWVER+glibc")
  [[ -f $TCMALLOC ]] && VARIANTS+=("pypi$NEWVER+tcmalloc" "pypi$NEWVER+compile+tcmalloc")
else
  echo "run_suite: no newest torch in $VENV (BENCH_NO_PIP or PyPI unreachable): Debian's 1.13 only" >&2
fi
# Runs a PyTorch script ("$@") in configuration $1 and OpenBLAS environment $2.
torch_in() {
  local v=$1 e=$2 py=$PY preload="" compile=0
  shift 2
  [[ $v == pypi* ]] && py=$NEWPY
  [[ $v == *tcmalloc* ]] && preload=$TCMALLOC
  [[ $v == *compile* ]] && compile=1
  in_env "$e" env LD_PRELOAD="$preload" BENCH_TORCH_COMPILE=$compile "$py" "$@"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "# relate vs PyTorch: benchmark suite (bench/run_suite.sh $ROUNDS)"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "- cpu: $(lscpu | sed -n 's/^Model name: *//p'); nproc $(nproc); $(lscpu | sed -n 's/^Thread(s) per core: *//p') thread(s) per core"
echo "- rounds: $ROUNDS; OMP_NUM_THREADS=2 (relate), torch.set_num_threads(2) (PyTorch)"
echo "- environment as set: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-(unset)}"
echo "- $($PY -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__)' 2> /dev/null) (Debian)"
[[ -n $NEWVER ]] && echo "- $("$NEWPY" -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__)' 2> /dev/null) (PyPI, $VENV)"
echo "- PyTorch configurations: ${VARIANTS[*]}; the fastest per case is the ratios' PyTorch"
echo "- load average at start: $LOAD_START"

# Floors' rates per environment (OPENBLAS_CORETYPE picks OpenBLAS's sgemm kernel), measured at the
# start and at the end of the run; the floors use the higher of the two, the machine's best.
declare -A SGEMM=() BW=()
PEAK=0
floor_rates() {
  local when=$1 e line sg copy triad bw a1 a2 z1 z2 p
  note "FMA peak at $when"
  line=$(checked "$FLOOR" peak)
  read -r _ a1 a2 z1 z2 <<< "$line"
  p=$a2
  [[ $z2 != - ]] && p=$z2
  awk -v a="$p" -v b="$PEAK" 'BEGIN { exit !(a > b) }' && PEAK=$p
  echo "- FMA peak at $when: AVX2 $a1 GFLOP/s (1 thread), $a2 (2 threads); AVX-512 $z1 (1 thread), $z2 (2 threads)" \
       "(\"-\": the CPU has none)"
  for e in "${ENVS[@]}"; do
    note "floor rates at $when, environment ${ENV_LABEL[$e]}"
    line=$(checked in_env "$e" "$FLOOR" rates)
    read -r _ sg copy triad bw <<< "$line"
    awk -v a="$sg" -v b="${SGEMM[$e]:-0}" 'BEGIN { exit !(a > b) }' && SGEMM[$e]=$sg
    awk -v a="$bw" -v b="${BW[$e]:-0}" 'BEGIN { exit !(a > b) }' && BW[$e]=$bw
    echo "- floor rates at $when, environment ${ENV_LABEL[$e]}: sgemm $sg GFLOP/s (best of 3, N = 4096, 2 threads);" \
         "bandwidth $bw GB/s (the better of copy $copy and triad $triad; ~1 GiB of arrays, 2 threads)"
  done
}
floor_rates start

# Linear evaluation's data (CIFAR-10 binary files of the synthetic split) and its randomweights
# checkpoint, made once; relate writes ./checkpoint/... under its working directory.
note "linear evaluation: writing the synthetic CIFAR-10 files and a randomweights checkpoint"
mkdir -p "$TMP/data" "$TMP/run"
line=$(checked "$FLOOR" lineval "$TMP/data" "$LINEVAL_EPOCHS")
read -r _ _ _ _ _ _ LV_FLOPS LV_BYTES _ <<< "$line"
(cd "$TMP/run" && checked "$RELATE" train_unsupervised --method=randomweights --backbone=conv4 --dataset=cifar10 \
  --data_root="$TMP/data" --seed=1 > "$TMP/randomweights.log")
CKPT=$TMP/run/checkpoint/randomweights/cifar10/randomweights_cifar10_conv4_seed_1.tar
[[ -f $CKPT ]] || { echo "run_suite: no $CKPT; relate said:" >&2; cat "$TMP/randomweights.log" >&2; exit 1; }

# The end-to-end CLI run under /usr/bin/time; prints a line shaped like relate_bench_steps'
# (seconds three times, images/s, max RSS), then the case's FLOPs and minimum bytes.
relate_lineval() {
  local e=$1 t=$TMP/time.txt
  (cd "$TMP/run" && checked in_env "$e" /usr/bin/time -v -o "$t" "$RELATE" train_linear_evaluation \
    --dataset=cifar10 --data_root="$TMP/data" --checkpoint="$CKPT" --epochs=$LINEVAL_EPOCHS --data_size=128 \
    --backbone=conv4 --seed=1 --threads 2 --num_workers=2 > "$TMP/lineval.log")
  grep -q '^Test accuracy' "$TMP/lineval.log" || { echo "run_suite: relate printed no test accuracy" >&2; exit 1; }
  awk -F': ' -v epochs=$LINEVAL_EPOCHS -v flops="$LV_FLOPS" -v bytes="$LV_BYTES" '
    /Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i] }
    /Maximum resident set size/ { rss = $2 / 1024 }
    END { printf "relate lineval conv4 %d 128 lineval %.4f %.4f %.4f %.1f %.0f %.0f %.0f\n",
          epochs, s, s, s, epochs * 50000 / s, rss, flops, bytes }' "$t"
}

# method backbone K batch relate-steps torch-steps torch-warmup mode; "lineval" is the CLI case.
CASES=("relationnet conv4 32 64 10 3 2 full" "relationnet conv4 32 64 10 3 2 compute"
       "relationnet resnet32 4 64 5 3 2 compute" "standard resnet32 1 128 10 5 2 compute"
       "lineval"
       "simclr conv4 2 128 20 5 2 compute" "rotationnet conv4 1 128 20 5 2 compute"
       "deepinfomax conv4 1 128 5 2 1 compute" "standard conv4 1 128 20 5 2 compute")
: > "$RESULTS"
: > "$TMP/notes"
for ((round = 1; round <= ROUNDS; round++)); do
  for i in "${!CASES[@]}"; do
    [[ ${CASES[$i]} =~ $ONLY ]] || continue
    for e in "${ENVS[@]}"; do
      note "round $round/$ROUNDS, case $((i + 1))/${#CASES[@]} (${CASES[$i]}), environment ${ENV_LABEL[$e]}"
      if [[ ${CASES[$i]} == lineval ]]; then
        line=$(relate_lineval "$e")
        echo "$i $e relate $line" >> "$RESULTS"
        for v in "${VARIANTS[@]}"; do
          [[ $v == *compile* ]] && continue # a frozen backbone and one Linear: nothing to compile
          for w in 0 2; do
            line=$(checked torch_in "$v" "$e" bench/bench_lineval_torch.py --data_root "$TMP/data" \
              --workers $w --measure "$LINEVAL_MEASURE" --epochs $LINEVAL_EPOCHS)
            echo "$i $e torch $line $v" >> "$RESULTS"
          done
        done
        continue
      fi
      read -r m b k n rs ts tw mode <<< "${CASES[$i]}"
      # relate's loader threads: 2 to feed the full step, none for compute (one fixed batch, as
      # PyTorch's compute case uses no DataLoader workers).
      lt=0
      [[ $mode == full ]] && lt=2
      line=$(checked in_env "$e" "$STEPS" "$m" "$b" "$k" "$n" "$rs" "$mode" $lt)
      echo "$i $e relate $line" >> "$RESULTS"
      # "full" feeds PyTorch from a DataLoader: both worker counts run, the faster one counts.
      workers=(0)
      [[ $mode == full ]] && workers=(0 2)
      for v in "${VARIANTS[@]}"; do
        for w in "${workers[@]}"; do
          if [[ $v == *compile* ]]; then
            # torch.compile counts where it works on the step; where it fails, that is reported.
            line=$(torch_in "$v" "$e" bench/bench_steps_torch.py "$m" "$b" "$k" "$n" "$ts" "$mode" "$w" "$tw" \
              2> "$TMP/compile.log") || {
              echo "- torch.compile failed on ${CASES[$i]} ($v, $w workers): $(grep -v '^ ' "$TMP/compile.log" | tail -1)" \
                >> "$TMP/notes"
              continue
            }
          else
            line=$(checked torch_in "$v" "$e" bench/bench_steps_torch.py "$m" "$b" "$k" "$n" "$ts" "$mode" "$w" "$tw")
          fi
          echo "$i $e torch $line $v" >> "$RESULTS"
        done
      done
    done
  done
done

LABELS=$TMP/labels
for i in "${!CASES[@]}"; do
  if [[ ${CASES[$i]} == lineval ]]; then
    echo "$i linear evaluation conv4 $LINEVAL_EPOCHS epochs B=128 (s: whole run)"
  else
    read -r m b k n _ _ _ mode <<< "${CASES[$i]}"
    if [[ $m == relationnet ]]; then echo "$i $m $b K=$k B=$n $mode"; else echo "$i $m $b B=$n $mode"; fi
  fi
done > "$LABELS"

floor_rates end
echo "- floors use: FLOPs / the FMA peak $PEAK GFLOP/s (2 threads); bytes / ${BW[set]:-${BW[unset]:-?}} GB/s" \
     "(as set) or ${BW[unset]:-?} GB/s (unset). OpenBLAS's sgemm (information): ${SGEMM[set]:-?} GFLOP/s (as set)," \
     "${SGEMM[unset]:-?} GFLOP/s (unset)"
echo
# Fields of a result line: case env side, then the program's line (relate|torch method backbone
# K batch mode median min max images/s rss ...): median is field 10. relate steps add flops,
# layer_bytes, input_bytes, backbone params (15-18); PyTorch steps add params, backbone params,
# workers (15-17); relate's lineval line carries flops and the minimum bytes (15-16), PyTorch's
# workers, measured epochs and the median epoch (15-17). Each side's figure is its best round
# (lowest median); for PyTorch, also its best worker count.
awk -v ncases=${#CASES[@]} -v peak="$PEAK" \
    -v bw_set="${BW[set]:-1}" -v bw_unset="${BW[unset]:-1}" -v measure="$LINEVAL_MEASURE" '
  function f(x) { return x < 10 ? sprintf("%.4f", x) : sprintf("%.1f", x) }
  FILENAME == ARGV[1] { label[$1] = substr($0, index($0, " ") + 1); next }
  {
    key = $1 " " $2
    if (!((key, $3) in best) || $10 < med[key, $3]) { best[key, $3] = $0; med[key, $3] = $10 }
    if ($3 == "torch") {
      cfg = $NF " " ($9 == "lineval" ? $15 : $17) "w"
      if (!((key, cfg) in cmed)) { ncfg[key]++; cfgs[key, ncfg[key]] = cfg }
      if (!((key, cfg) in cmed) || $10 < cmed[key, cfg]) cmed[key, cfg] = $10
    }
  }
  END {
    bw["set"] = bw_set; bw["unset"] = bw_unset
    el["set"] = "as set"; el["unset"] = "unset"
    print "| case | env | relate s/step median (min-max) | PyTorch s/step median (min-max) | speed ratio PyTorch/relate | relate img/s | PyTorch img/s | relate peak RSS MiB | PyTorch peak RSS MiB | memory ratio relate/PyTorch | GFLOP | min MB moved | FLOP floor s | bandwidth floor s | relate / floor | fastest PyTorch (DataLoader workers) |"
    print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    for (i = 0; i < ncases; i++) {
      for (j = 1; j <= 2; j++) {
        e = j == 1 ? "set" : "unset"
        key = i " " e
        if (!((key, "relate") in best) || !((key, "torch") in best)) continue
        split(best[key, "relate"], r, " ")
        n_t = split(best[key, "torch"], t, " ")
        if (r[9] == "lineval") {
          flops = r[15]; bytes = r[16]; workers = t[n_t] " (" t[15] ")"; lineval = 1
        } else {
          # minimum bytes: the input batch read once; every layer output written and read in the
          # forward pass and its gradient written and read in the backward pass; each parameter
          # with its gradient and two Adam moments read and written once (PyTorch counts the
          # parameters: relate/method.h does not expose the heads).
          flops = r[15]; bytes = r[17] + 4 * r[16] + 32 * t[15]; workers = t[n_t] " (" t[17] ")"
          if (r[18] != t[16]) warn = warn sprintf("\nwarning: %s: backbone parameters relate %s, PyTorch %s", label[i], r[18], t[16])
        }
        ff = flops / (peak * 1e9); bf = bytes / (bw[e] * 1e9); fl = ff > bf ? ff : bf
        printf "| %s | %s | %s (%s-%s) | %s (%s-%s) | %.1fx | %.1f | %.1f | %d | %d | %.2f | %.2f | %.1f | %s | %s | %.1fx | %s |\n",
               label[i], el[e], f(r[10]), f(r[11]), f(r[12]), f(t[10]), f(t[11]), f(t[12]), t[10] / r[10], r[13], t[13],
               r[14], t[14], r[14] / t[14], flops / 1e9, bytes / 1e6, f(ff), f(bf), r[10] / fl, workers
        for (c = 1; c <= ncfg[key]; c++)
          wl[i, e] = wl[i, e] sprintf("%s%s %s s (%.1fx)", c == 1 ? "" : ", ", cfgs[key, c], f(cmed[key, cfgs[key, c]]),
                                      cmed[key, cfgs[key, c]] / r[10])
      }
    }
    head = "\nEvery PyTorch configuration (and DataLoader worker count, w) tried: best median s/step over rounds, and its ratio to relate (the table keeps the fastest):"
    for (i = 0; i < ncases; i++)
      for (j = 1; j <= 2; j++) {
        e = j == 1 ? "set" : "unset"
        if (wl[i, e] != "") { if (head != "") print head; head = ""; printf "- %s, env %s: %s\n", label[i], el[e], wl[i, e] }
      }
    if (lineval)
      printf "\nLinear evaluation: PyTorch'"'"'s 100 epochs are extrapolated from %d measured epochs (100 x median epoch + the measured test pass); relate'"'"'s figure is the whole CLI run, measured (/usr/bin/time).\n", measure
    if (warn != "") print warn
  }' "$LABELS" "$RESULTS"
cat "$TMP/notes"
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
