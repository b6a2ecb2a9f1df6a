#!/usr/bin/env bash
# run_steps.sh: seconds per training step of the paper's settings, relate and the reference's
# PyTorch code side by side in the same run (alternating), as a markdown table with ratios.
# Not part of the test suite; needs Debian's python3-torch and python3-torchvision.
#
# usage: bash bench/run_steps.sh [ROUNDS]   (default 1; the PyTorch headline step takes ~7 s)
# Cases: relationnet conv4 K=32 B=64 (full step with augmentation, and compute only),
# relationnet resnet32 K=4 B=64, standard resnet32 B=128, and each baseline's step on conv4 with
# B=128 (deepcluster's step is standard's plus a head; its per-epoch k-means has bench_kmeans).
# Synthetic 32x32 data (no CIFAR here).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-1}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DRELATE_BUILD_BENCH=ON > /dev/null
cmake --build build -j"$(nproc)" --target relate_bench_steps > /dev/null
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
PY=/usr/bin/python3
# method backbone K batch steps mode relate-loader-threads torch-workers
CASES=("relationnet conv4 32 64 5 full 2 2" "relationnet conv4 32 64 5 compute 2 0"
       "relationnet resnet32 4 64 5 compute 2 0" "standard resnet32 1 128 5 compute 2 0"
       "simclr conv4 2 128 5 compute 2 0" "rotationnet conv4 1 128 5 compute 2 0"
       "deepinfomax conv4 1 128 3 compute 2 0" "standard conv4 1 128 5 compute 2 0")
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores;" \
     "OMP_NUM_THREADS=$OMP_NUM_THREADS OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; rounds: $ROUNDS;" \
     "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
declare -A R T
for ((round = 1; round <= ROUNDS; round++)); do
  for i in "${!CASES[@]}"; do
    read -r m b k n s mode lt tw <<< "${CASES[$i]}"
    R[$round,$i]=$(./build/bench/relate_bench_steps "$m" "$b" "$k" "$n" "$s" "$mode" "$lt")
    T[$round,$i]=$($PY bench/bench_steps_torch.py "$m" "$b" "$k" "$n" "$s" "$mode" "$tw")
  done
done
# best: the line with the lowest median seconds (field 7)
best() { printf '%s\n' "$@" | sort -k7,7 -g | head -1; }
echo "| case | relate s/step median (min-max) | PyTorch s/step median (min-max) | speed-up | relate peak RSS MiB | PyTorch peak RSS MiB |"
echo "|---|---:|---:|---:|---:|---:|"
for i in "${!CASES[@]}"; do
  rs=(); ts=()
  for ((round = 1; round <= ROUNDS; round++)); do rs+=("${R[$round,$i]}"); ts+=("${T[$round,$i]}"); done
  read -r _ m b k n mode rmed rmin rmax _ rrss <<< "$(best "${rs[@]}")"
  read -r _ _ _ _ _ _ tmed tmin tmax _ trss <<< "$(best "${ts[@]}")"
  ratio=$(awk -v a="$rmed" -v b="$tmed" 'BEGIN { printf "%.1f", b / a }')
  echo "| $m $b K=$k B=$n $mode | $rmed ($rmin-$rmax) | $tmed ($tmin-$tmax) | ${ratio}x | $rrss | $trss |"
done
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
