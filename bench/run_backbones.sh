#!/usr/bin/env bash
# run_backbones.sh: forward+backward images/s of every backbone, relate and PyTorch side by side
# in the same run (alternating), as a markdown table with ratios.
# Not part of the test suite; needs Debian's python3-torch for the PyTorch column.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build -j"$(nproc)" --target relate_bench_backbones > /dev/null
export OMP_NUM_THREADS=2
PY=/usr/bin/python3
# case: backbone batch size steps
CASES=("conv4 128 32 20" "resnet8 128 32 10" "resnet32 128 32 6" "resnet56 128 32 4"
       "resnet34 128 32 4" "conv4 2048 32 4")
echo "| case | relate img/s | PyTorch img/s | ratio | relate ms (min-max) | PyTorch ms (min-max) | relate peak RSS MB | PyTorch peak RSS MB |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for c in "${CASES[@]}"; do
  set -- $c
  r=$(./build/bench/relate_bench_backbones "$1" "$2" "$3" "$4")
  t=$($PY bench/bench_backbones_torch.py "$1" "$2" "$3" "$4")
  read -r _ _ _ _ rmed rmin rmax rips _ rrss <<< "$r"
  read -r _ _ _ _ tmed tmin tmax tips _ trss <<< "$t"
  ratio=$(awk -v a="$rips" -v b="$tips" 'BEGIN { printf "%.2f", a / b }')
  echo "| $1 B=$2 ${3}x$3 | $rips | $tips | ${ratio}x | $rmed ($rmin-$rmax) | $tmed ($tmin-$tmax) | $rrss | $trss |"
done
