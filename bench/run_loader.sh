#!/usr/bin/env bash
# run_loader.sh: views/s of the data loader on the relationnet headline setting (T1, K = 32 views,
# B = 64, 32x32 images), relate (0, 1, 2 worker threads) and a PyTorch DataLoader with torchvision
# transforms (num_workers 0 and 2) side by side in the same run (alternating), as a markdown table.
# Not part of the test suite (CI never runs it); needs Debian's python3-torch and
# python3-torchvision for the PyTorch column.
#
# usage: bash bench/run_loader.sh [ROUNDS]   (default 3: about 2 minutes on a quiet 2-core machine)
# Each round runs every relate case, then every PyTorch case; a side's figure is its best round,
# so a burst of load from another process during one round does not decide the ratio. The data
# are a synthetic CIFAR-like split of 50,000 random 32x32 images on both sides (see the programs'
# headers). The load averages are printed: other processes slow both sides.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
BUILD=${RELATE_BUILD_DIR:-build}   # another Release build folder, if ./build is busy
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build "$BUILD" -j"$(nproc)" --target relate_bench_loader > /dev/null
PY=/usr/bin/python3
K=32
B=64
# case: side workers timed-batches (2 warm-up batches come on top)
CASES=("relate 0 30" "relate 1 30" "relate 2 40" "torch 0 6" "torch 2 10")

echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores;" \
     "torch $($PY -c 'import torch, torchvision; print(torch.__version__ + ", torchvision " + torchvision.__version__)');" \
     "K=$K B=$B; rounds: $ROUNDS; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
declare -A OUT
for ((round = 1; round <= ROUNDS; round++)); do
  for i in "${!CASES[@]}"; do
    read -r side w n <<< "${CASES[$i]}"
    if [ "$side" = relate ]; then
      OUT[$round,$i]=$("$BUILD"/bench/relate_bench_loader "$w" "$n" "$K" "$B")
    else
      OUT[$round,$i]=$($PY bench/bench_loader_torch.py "$w" "$n" "$K" "$B")
    fi
  done
done

# best: the line (of one case, over the rounds) with the highest views/s (field 9)
best() { printf '%s\n' "$@" | sort -k9,9 -g | tail -1; }
declare -A VIEWS IMGS MS RSS
for i in "${!CASES[@]}"; do
  read -r side w _ <<< "${CASES[$i]}"
  ls=()
  for ((round = 1; round <= ROUNDS; round++)); do ls+=("${OUT[$round,$i]}"); done
  read -r _ _ _ _ _ _ ms ips vps rss <<< "$(best "${ls[@]}")"
  VIEWS[$side,$w]=$vps; IMGS[$side,$w]=$ips; MS[$side,$w]=$ms; RSS[$side,$w]=$rss
done
echo "| workers (relate threads / PyTorch num_workers) | relate views/s | PyTorch views/s | ratio | relate images/s | PyTorch images/s | relate ms/batch | PyTorch ms/batch | relate peak RSS MiB | PyTorch main-process peak RSS MiB |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for w in 0 1 2; do
  rv=${VIEWS[relate,$w]}
  if [ -n "${VIEWS[torch,$w]:-}" ]; then
    tv=${VIEWS[torch,$w]}
    ratio=$(awk -v a="$rv" -v b="$tv" 'BEGIN { printf "%.1fx", a / b }')
    echo "| $w | $rv | $tv | $ratio | ${IMGS[relate,$w]} | ${IMGS[torch,$w]} | ${MS[relate,$w]} | ${MS[torch,$w]} | ${RSS[relate,$w]} | ${RSS[torch,$w]} |"
  else
    echo "| $w | $rv | - | - | ${IMGS[relate,$w]} | - | ${MS[relate,$w]} | - | ${RSS[relate,$w]} | - |"
  fi
done
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
