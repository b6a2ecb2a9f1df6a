#!/usr/bin/env bash
# bench/run_allreduce.sh [BUILD_DIR] [REPS]: times the sum of each backbone's gradients across
# 2 and 3 MPI processes on this machine (shared memory between the ranks: a lower bound of what a
# network costs), one thread per rank. docs/scaling.md uses these figures. Needs a build with
# MPI (openmpi-bin, libopenmpi-dev).
set -eu
BUILD=${1:-build}
REPS=${2:-30}
BIN=$BUILD/bench/relate_bench_allreduce
[ -x "$BIN" ] || { echo "build $BIN first (cmake --build $BUILD)"; exit 2; }
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(getconf _NPROCESSORS_ONLN) cores"
for np in 2 3; do
  mpirun --oversubscribe -np $np "$BIN" "$REPS"
done
