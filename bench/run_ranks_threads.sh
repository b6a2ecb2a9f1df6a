#!/usr/bin/env bash
# bench/run_ranks_threads.sh [BUILD_DIR] [STEPS]: on this machine's 2 cores, one process with 2
# compute threads against 2 MPI processes with 1 thread each (data-parallel: each process its
# half of every batch, synchronised batch norm, the heads on the gathered batch, summed
# gradients), for the headline step and the resnet32 steps of docs/benchmarks.md. Prints
# relate_bench_steps' line for each (median seconds per step in column 7) and the ratio.
# docs/scaling.md quotes the figures. mpirun reads stdin, so each command gets /dev/null
# (the cases come from a here-document). Needs a build with MPI (openmpi-bin, libopenmpi-dev).
set -eu
BUILD=${1:-build}
STEPS=${2:-8}
BIN=$BUILD/bench/relate_bench_steps
[ -x "$BIN" ] || { echo "build $BIN first (cmake --build $BUILD)"; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell}
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(getconf _NPROCESSORS_ONLN) cores, OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE"
echo "# case | 1 process x 2 threads s/step | 2 processes x 1 thread s/step | ratio"
while read -r method backbone K B mode steps; do
  one=$(OMP_NUM_THREADS=2 "$BIN" "$method" "$backbone" "$K" "$B" "$steps" "$mode" 1 </dev/null | awk '{print $7}')
  two=$(mpirun -np 2 --bind-to core -x OMP_NUM_THREADS=1 -x OPENBLAS_CORETYPE \
        "$BIN" "$method" "$backbone" "$K" "$B" "$steps" "$mode" 1 </dev/null | awk '{print $7}')
  printf '%s %s K=%s B=%s %s | %s | %s | %.2f\n' "$method" "$backbone" "$K" "$B" "$mode" "$one" "$two" \
    "$(echo "$one / $two" | bc -l)"
done <<CASES
relationnet conv4 32 64 compute $STEPS
relationnet conv4 32 64 full $STEPS
relationnet resnet32 4 64 compute $((STEPS / 2 > 2 ? STEPS / 2 : 2))
standard resnet32 1 128 compute $((STEPS / 2 > 2 ? STEPS / 2 : 2))
CASES
