#!/usr/bin/env bash
# run_backbones.sh: forward+backward images/s of every backbone, relate and PyTorch side by side
# in the same run (alternating), as a markdown table with ratios.
# Not part of the test suite (CI never runs it); needs Debian's python3-torch for the PyTorch column.
#
# usage: bash bench/run_backbones.sh [ROUNDS]   (default 2: ~3 minutes on a quiet 2-core machine,
#        up to twice that when other processes compete; 3 rounds took 9 minutes on a busy one)
# Each round runs relate then PyTorch for every case; a side's figure is its best per-round
# median, so a burst of load from another process during one round does not decide the ratio.
# OPENBLAS_* variables are left as the environment has them. Other processes on the machine skew
# both sides (OpenMP barriers spin while a core is taken): the load averages are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-2}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build -j"$(nproc)" --target relate_bench_backbones > /dev/null
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
PY=/usr/bin/python3
# case: backbone batch image-size timed-steps (2 warm-up steps come on top)
CASES=("conv4 128 32 20" "resnet8 128 32 10" "resnet32 128 32 10" "resnet56 128 32 6"
       "resnet34 128 32 6" "conv4 2048 32 4")

echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores;" \
     "OMP_NUM_THREADS=$OMP_NUM_THREADS OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}" \
     "OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-unset}; rounds: $ROUNDS; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
declare -A R T
for ((round = 1; round <= ROUNDS; round++)); do
  for i in "${!CASES[@]}"; do
    read -r b n s k <<< "${CASES[$i]}"
    R[$round,$i]=$(./build/bench/relate_bench_backbones "$b" "$n" "$s" "$k")
    T[$round,$i]=$($PY bench/bench_backbones_torch.py "$b" "$n" "$s" "$k")
  done
done

# best: the line (of one side, over the rounds) with the highest images/s (field 8)
best() { printf '%s\n' "$@" | sort -k8,8 -g | tail -1; }
echo "| case | relate img/s | PyTorch img/s | ratio | relate ms median (min-max) | PyTorch ms median (min-max) | relate peak arena MiB | relate peak RSS MiB | PyTorch peak RSS MiB |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for i in "${!CASES[@]}"; do
  rs=(); ts=()
  for ((round = 1; round <= ROUNDS; round++)); do rs+=("${R[$round,$i]}"); ts+=("${T[$round,$i]}"); done
  read -r _ b n s rmed rmin rmax rips rarena rrss <<< "$(best "${rs[@]}")"
  read -r _ _ _ _ tmed tmin tmax tips _ trss <<< "$(best "${ts[@]}")"
  ratio=$(awk -v a="$rips" -v b="$tips" 'BEGIN { printf "%.2f", a / b }')
  echo "| $b B=$n ${s}x$s | $rips | $tips | ${ratio}x | $rmed ($rmin-$rmax) | $tmed ($tmin-$tmax) | $rarena | $rrss | $trss |"
done
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
