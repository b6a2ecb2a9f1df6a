#!/usr/bin/env bash
# dist_stage2.sh MPIEXEC RELATE: stage 2 and the test stage, started as 2 and 3 MPI processes,
# compute what one process computes (issue 12), on a 44-image labelled folder (tests/dist/
# write_folder.py) and a short relationnet stage 1 on conv4 (one process):
#   linear evaluation on cached features (the features extracted in shares, the linear layer on
#   every process alike), with --feature_cache=False (the frozen backbone data-parallel), and
#   --finetune=True (data-parallel with synchronised batch norm). 2 epochs of --data_size=16:
#   batches 16, 16, 12, shares down to 4/4/4. compare_runs.py compares the files: the log's
#   losses within 1e-5, the checkpoints' tensors within 5e-3 of their largest magnitude;
#   the printed test accuracy must be the same.
#   relate test on the finetuned checkpoint: the same accuracy, the loss within 1e-5.
# Every run uses the BLAS convolution (RELATE_CONV=blas; docs/scaling.md says why).
set -uo pipefail
MPIEXEC=$1 RELATE=$(realpath "$2")
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
fail() { echo "FAIL: $*"; exit 1; }
/usr/bin/python3 "$HERE/write_folder.py" fold 44 21 5 || fail "writing the folder needs python3-numpy and python3-pil"
export RELATE_CONV=blas OMP_NUM_THREADS=1
DS=(--dataset=folder:"$WORK/fold@16" --num_workers=0 --threads=1)
mkdir stage1
(cd stage1 && "$RELATE" train_unsupervised "${DS[@]}" --method=relationnet --backbone=conv4 --K=4 --epochs=1 \
   --limit_train_batches=2 --data_size=16 > out.txt 2>&1) || { cat stage1/out.txt; fail "stage 1"; }
CK=$(find "$WORK/stage1/checkpoint" -name '*.tar' | head -1)
[ -n "$CK" ] || fail "stage 1 wrote no checkpoint"
run() { # NAME NP FLAGS...: stage 2 in folder NAME on NP processes (0: no mpirun)
  local name=$1 np=$2
  shift 2
  local launch=()
  [ "$np" = 0 ] || launch=("$MPIEXEC" --oversubscribe -np "$np")
  mkdir -p "$name"
  (cd "$name" && "${launch[@]}" "$RELATE" "$@" > out.txt 2> err.txt) || { tail -20 "$name/err.txt"; fail "$name"; }
}
accuracy() { grep -E '^(Test accuracy|Test loss)' "$1/out.txt"; }
for cfg in cached loader finetune; do
  case $cfg in
    cached) flags=() ;;
    loader) flags=(--feature_cache=False) ;;
    finetune) flags=(--finetune=True) ;;
  esac
  flags=(train_linear_evaluation "${DS[@]}" --checkpoint="$CK" --epochs=2 --data_size=16 "${flags[@]}")
  run "$cfg-one" 0 "${flags[@]}"
  [ "$(grep -c '^Test accuracy' "$cfg-one/out.txt")" = 1 ] || { cat "$cfg-one/out.txt"; fail "$cfg: no test accuracy"; }
  for np in 2 3; do
    run "$cfg-np$np" $np "${flags[@]}"
    [ "$(grep -c '^(Epoch' "$cfg-np$np/out.txt")" = 2 ] ||
      { cat "$cfg-np$np/out.txt"; fail "$cfg on $np processes: expected 2 epoch lines, once each (rank 0)"; }
    [ "$(accuracy "$cfg-one")" = "$(accuracy "$cfg-np$np")" ] ||
      fail "$cfg on $np processes: $(accuracy "$cfg-np$np") where one process has $(accuracy "$cfg-one")"
    (cd "$cfg-one" && /usr/bin/python3 "$HERE/compare_runs.py" checkpoint "../$cfg-np$np/checkpoint") ||
      fail "$cfg: $np processes computed otherwise than one"
  done
done
# A share that would be empty is refused before anything is written: 44 % 21 leaves 2 images.
mkdir refused
(cd refused && "$MPIEXEC" --oversubscribe -np 3 "$RELATE" train_linear_evaluation "${DS[@]}" --checkpoint="$CK" \
   --feature_cache=False --data_size=21 > out.txt 2> err.txt) && fail "a last batch of 2 images on 3 processes ran"
grep -q "fewer than the 3 processes sharing it" refused/err.txt || { cat refused/err.txt; fail "the refusal"; }
# The test stage on the finetuned checkpoint (its backbone differs from stage 1's).
S2=$(find "$WORK/finetune-one/checkpoint" -name '*linear_evaluation.tar' | head -1)
[ -n "$S2" ] || fail "no stage-2 checkpoint"
for np in 0 2 3; do
  run "test-$np" $np test --dataset=folder:"$WORK/fold@16" --threads=1 --checkpoint="$S2" --data_size=8
done
for np in 2 3; do
  /usr/bin/python3 - "test-0/out.txt" "test-$np/out.txt" <<'PY' || fail "test on $np processes printed otherwise than one process"
import re, sys
a, b = (dict(re.findall(r"^Test (loss|accuracy): ([0-9.e+-]+)", open(p).read(), re.M)) for p in sys.argv[1:])
assert a.keys() == {"loss", "accuracy"} and a.keys() == b.keys(), (a, b)
assert a["accuracy"] == b["accuracy"], (a, b)
assert abs(float(a["loss"]) - float(b["loss"])) <= 1e-5 * abs(float(a["loss"])), (a, b)
PY
  [ "$(grep -c '^Seed:' "test-$np/out.txt")" = 1 ] || fail "test on $np processes: not printed once"
done
echo "PASS: dist_stage2"
