#!/usr/bin/env bash
# run_deepinfomax.sh: one deepinfomax training step (conv4, B 32x32 images) in relate (fused and
# literal local term) and in PyTorch as the reference writes it, alternating for ROUNDS rounds; each
# side's figure is its best per-round median (a burst of load in one round does not decide it). PyTorch
# runs twice: as is, and with glibc's malloc keeping freed memory (see bench_deepinfomax_torch.py).
# Not part of the test suite; needs Debian's python3-torch for the PyTorch lines.
#
# usage: bash bench/run_deepinfomax.sh [ROUNDS [BATCH [THREADS]]]   (defaults 2 128 2)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-2}
B=${2:-128}
export OMP_NUM_THREADS=${3:-2}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build -j2 --target relate_bench_deepinfomax > /dev/null
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; threads $OMP_NUM_THREADS;" \
     "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((round = 1; round <= ROUNDS; round++)); do
  ./build/bench/relate_bench_deepinfomax "$B" 32 5 1
  /usr/bin/python3 bench/bench_deepinfomax_torch.py "$B" 32 3 "$OMP_NUM_THREADS"
  # The same with glibc told to keep freed memory (no mmap, no trim): PyTorch's fresh 134 MB
  # intermediates then stop page-faulting, which is most of its time on this VM.
  echo -n "(malloc kept) "
  GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736 \
    /usr/bin/python3 bench/bench_deepinfomax_torch.py "$B" 32 5 "$OMP_NUM_THREADS"
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
