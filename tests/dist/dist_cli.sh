#!/usr/bin/env bash
# dist_cli.sh MPIEXEC RELATE: the relate command started as 2 and 3 MPI processes refuses every
# command that would run N times over, in one line from rank 0, exit 2, writing nothing; `info`
# still works; one process under mpirun runs as usual.
set -uo pipefail
MPIEXEC=$1 RELATE=$(realpath "$2")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
fail() { echo "FAIL: $*"; exit 1; }
for np in 2 3; do
  "$MPIEXEC" --oversubscribe -np $np "$RELATE" train_unsupervised --dataset=fashionmnist --epochs=1 \
    > out.txt 2> err.txt && fail "np=$np: train_unsupervised ran"
  [ "$(grep -c 'data-parallel training across processes is not built yet' err.txt)" = 1 ] ||
    { cat err.txt; fail "np=$np: expected the refusal once (rank 0)"; }
  grep -q "started as $np MPI processes" err.txt || { cat err.txt; fail "np=$np: the count"; }
  [ ! -e checkpoint ] || fail "np=$np: files were written"
  "$MPIEXEC" --oversubscribe -np $np "$RELATE" info > out.txt 2> err.txt || { cat err.txt; fail "np=$np: info"; }
  [ "$(grep -c '^conv4' out.txt)" = $np ] || fail "np=$np: info did not run on every rank"
done
"$MPIEXEC" --oversubscribe -np 1 "$RELATE" data --dataset=fashionmnist > out.txt 2> err.txt ||
  { cat err.txt; fail "one process under mpirun"; }
grep -q "split train" out.txt || fail "relate data under mpirun -np 1"
echo "PASS: dist_cli"
