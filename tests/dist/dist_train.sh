#!/usr/bin/env bash
# dist_train.sh MPIEXEC RELATE [METHOD...]: the first step of stage 1 of every method, run as 2
# and 3 MPI processes (RELATE_EXPERIMENTAL_DIST=1), computes what one process computes (issue 12;
# tests/dist/compare_runs.py says how closely): its loss, and the parameters, batch-norm running
# statistics and optimizer moments (the step's gradient) after it, on a 60-image labelled folder
# (3 classes, 16x16), --data_size=16: shares of 8/8 and 5/5/6 images.
# Also: rank 0 alone prints (one "Epoch" line) and writes (the same files as one process).
# Not checked, because it does not hold yet: later steps (docs/scaling.md, "Status").
set -uo pipefail
MPIEXEC=$1 RELATE=$(realpath "$2")
shift 2
METHODS=("$@")
[ ${#METHODS[@]} -gt 0 ] || METHODS=(relationnet simclr rotationnet deepinfomax deepcluster standard)
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
fail() { echo "FAIL: $*"; exit 1; }
/usr/bin/python3 - <<'PY' || fail "writing the folder needs python3-numpy and python3-pil"
import os
import numpy as np
from PIL import Image
rng = np.random.default_rng(7)
for split, n in (("train", 60), ("test", 12)):
    for i in range(n):
        c = i % 3
        os.makedirs("fold/%s/c%d" % (split, c), exist_ok=True)
        img = (rng.integers(0, 256, (16, 16, 3)) // (c + 1)).astype(np.uint8)
        Image.fromarray(img).save("fold/%s/c%d/%02d.png" % (split, c, i))
PY
backbone_of() { case $1 in rotationnet|standard) echo resnet8 ;; *) echo conv4 ;; esac; }
run() { # NAME NP THREADS FLAGS...: one run in folder NAME
  local name=$1 np=$2 threads=$3
  shift 3
  mkdir -p "$name"
  local launch=()
  [ "$np" = 0 ] || launch=("$MPIEXEC" --oversubscribe -np "$np")
  (cd "$name" && OMP_NUM_THREADS=$threads RELATE_EXPERIMENTAL_DIST=1 "${launch[@]}" "$RELATE" train_unsupervised --dataset=folder:../fold@16 \
     --num_workers=0 --threads="$threads" "$@" > out.txt 2> err.txt) ||
    { tail -20 "$name/err.txt"; fail "$name"; }
}
for method in "${METHODS[@]}"; do
  bb=$(backbone_of "$method")
  for cfg in A; do
    flags=(--epochs=1 --limit_train_batches=1 --data_size=16)
    flags+=(--method="$method" --backbone="$bb" --K=4)
    dir=$method-$cfg
    run "$dir-one" 0 1 "${flags[@]}"
    run "$dir-threads" 0 2 "${flags[@]}"
    epochs=$(grep -c '^Epoch \[' "$dir-one/out.txt")
    for np in 2 3; do
      run "$dir-np$np" $np 1 "${flags[@]}"
      [ "$(grep -c '^Epoch \[' "$dir-np$np/out.txt")" = "$epochs" ] ||
        { cat "$dir-np$np/out.txt"; fail "$dir on $np processes: expected $epochs epoch lines, once each (rank 0)"; }
      diff <(grep '^Epoch' "$dir-one/out.txt" | sed 's/\]\[[0-9:]*\]/]/; s/loss: [^;]*//') \
           <(grep '^Epoch' "$dir-np$np/out.txt" | sed 's/\]\[[0-9:]*\]/]/; s/loss: [^;]*//') > /dev/null ||
        echo "note: $dir on $np processes: an epoch line's score differs (a prediction at the threshold)"
      (cd "$dir-one" && /usr/bin/python3 "$HERE/compare_runs.py" checkpoint "../$dir-threads/checkpoint" \
         "../$dir-np$np/checkpoint") || fail "$dir: $np processes computed otherwise than one"
    done
  done
done
echo "PASS: dist_train (${METHODS[*]})"
