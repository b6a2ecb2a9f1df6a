#!/usr/bin/env bash
# dist_cli.sh MPIEXEC RELATE: the relate command started as 2 and 3 MPI processes refuses every
# command that would run N times over (all but train_unsupervised, train_linear_evaluation and
# test, which dist_train and dist_stage2 check, and knn) in one line from rank 0, exit 2; `info`
# still works; one process under mpirun runs as usual; `knn` runs across the processes (each
# extracts a share of the features) and prints, once, what one process prints.
set -uo pipefail
MPIEXEC=$1 RELATE=$(realpath "$2")
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
fail() { echo "FAIL: $*"; exit 1; }
for np in 2 3; do
  "$MPIEXEC" --oversubscribe -np $np "$RELATE" export --checkpoint=x.tar --out=y.safetensors > out.txt 2> err.txt &&
    fail "np=$np: export ran"
  [ "$(grep -c 'this command runs in one process' err.txt)" = 1 ] || { cat err.txt; fail "np=$np: export's refusal"; }
  grep -q "started as $np MPI processes" err.txt || { cat err.txt; fail "np=$np: the count"; }
  "$MPIEXEC" --oversubscribe -np $np "$RELATE" info > out.txt 2> err.txt || { cat err.txt; fail "np=$np: info"; }
  [ "$(grep -c '^conv4' out.txt)" = $np ] || fail "np=$np: info did not run on every rank"
done
# knn on a small image folder (write_folder.py) and a checkpoint of random weights
/usr/bin/python3 "$HERE/write_folder.py" fold 40 17 1 || fail "writing the folder needs python3-numpy and python3-pil"
"$RELATE" train_unsupervised --dataset=folder:fold@16 --method=randomweights > /dev/null 2>&1 || fail "randomweights"
CK=$(find checkpoint -name '*.tar' | head -1)
"$RELATE" knn --dataset=folder:fold@16 --checkpoint="$CK" --k=5 > one.txt 2>&1 || { cat one.txt; fail "knn, one process"; }
grep -q "top-1" one.txt || { cat one.txt; fail "knn printed no accuracy"; }
for np in 2 3; do
  "$MPIEXEC" --oversubscribe -np $np "$RELATE" knn --dataset=folder:fold@16 --checkpoint="$CK" --k=5 > many.txt 2>&1 ||
    { cat many.txt; fail "knn on $np processes"; }
  cmp -s one.txt many.txt || { diff one.txt many.txt; fail "knn on $np processes printed otherwise than one process"; }
done
"$MPIEXEC" --oversubscribe -np 1 "$RELATE" data --dataset=fashionmnist > out.txt 2> err.txt ||
  { cat err.txt; fail "one process under mpirun"; }
grep -q "split train" out.txt || fail "relate data under mpirun -np 1"
echo "PASS: dist_cli"
