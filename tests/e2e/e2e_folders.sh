#!/usr/bin/env bash
# e2e_folders.sh RELATE: image folders as custom data arrives, through every command that opens a
# dataset: a folder of unlabelled real images (Fashion-MNIST written as PNGs) with a corrupt file
# pretrains, with a [WARN] that counts it, or stops under --strict_images; stages that need labels
# say which layout gives them; a class-per-folder tree without test/ gets its test split from
# --val_fraction in stage 1, stage 2, test, knn and embed alike. The readers' details are in
# tests/data/test_folder_layouts.c.
set -uo pipefail
RELATE=$(realpath "$1")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
FAILS=0
expect() { # expect CODE PATTERN -- command...: the exit status and a pattern of stdout + stderr
  local code=$1 pattern=$2
  shift 3
  "$@" > out.txt 2> err.txt
  local rc=$?
  # grep reads the files itself: with pipefail, `cat ... | grep -q` fails when grep matches in
  # out.txt and exits before cat has written err.txt (SIGPIPE), as CI once saw
  if [ $rc -ne "$code" ] || ! grep -q -- "$pattern" out.txt err.txt; then
    echo "FAIL: '$*' exited $rc (want $code); stdout/stderr:"; tail -5 out.txt; cat err.txt; FAILS=$((FAILS + 1))
  else
    echo "ok: $* -> $rc"
  fi
}

# 240 real images: 200 unlabelled in flat/ (plus a truncated JPEG), and 4 classes x 10 in lab/.
/usr/bin/python3 - <<'PY' || { echo "FAIL: writing the folders needs python3-numpy, python3-pil, dataset-fashion-mnist"; exit 1; }
import gzip, os
import numpy as np
from PIL import Image
d = "/usr/share/datasets/fashion-mnist"
img = np.frombuffer(gzip.open(d + "/t10k-images-idx3-ubyte.gz").read()[16:], np.uint8).reshape(-1, 28, 28)
lab = np.frombuffer(gzip.open(d + "/t10k-labels-idx1-ubyte.gz").read()[8:], np.uint8)
os.makedirs("flat")
for i in range(200):
    Image.fromarray(img[i]).save("flat/%03d.png" % i)
open("flat/broken.jpg", "wb").write(b"\xff\xd8\xff\xe0 cut short")
count = {}
for i in range(200, 2000):
    c = int(lab[i])
    if c < 4 and count.get(c, 0) < 10:
        os.makedirs("lab/class%d" % c, exist_ok=True)
        Image.fromarray(img[i]).save("lab/class%d/%03d.png" % (c, i))
        count[c] = count.get(c, 0) + 1
PY

F=(--dataset=folder:flat@28 --seed=1 --epochs=1 --data_size=32)
expect 0 "\[WARN\] 1 of 201 image files were skipped.*broken.jpg.*--strict_images=True" -- \
  "$RELATE" train_unsupervised "${F[@]}" --method=relationnet --K=2
CK=checkpoint/relationnet/folder_flat_28/relationnet_folder_flat_28_conv4_seed_1_epoch_1.tar
[ -f $CK ] || { echo "FAIL: no checkpoint $CK"; ls -R checkpoint; FAILS=$((FAILS + 1)); }
grep -qE '"train_images": 200,?$' checkpoint/relationnet/folder_flat_28/*_args.json ||
  { echo "FAIL: the run did not train on the 200 unlabelled images"; FAILS=$((FAILS + 1)); }
expect 1 "broken.jpg" -- "$RELATE" train_unsupervised "${F[@]}" --method=relationnet --K=2 --id=strict \
  --strict_images=True
expect 2 "standard needs labelled images" -- "$RELATE" train_unsupervised "${F[@]}" --method=standard --id=std
expect 2 "needs a labelled training split.*flat/train/CLASS/.*flat/test/CLASS/" -- \
  "$RELATE" train_linear_evaluation "${F[@]}" --checkpoint=$CK
expect 2 "kNN needs labelled training and test splits" -- "$RELATE" knn --dataset=folder:flat@28 --checkpoint=$CK
expect 0 "200 x 64 float32 features" -- "$RELATE" embed --dataset=folder:flat@28 --checkpoint=$CK --split=unlabeled \
  --out=flat.npy

L=(--dataset=folder:lab@28 --seed=1 --data_size=8)
expect 2 "needs a labelled test split.*--val_fraction" -- "$RELATE" knn --dataset=folder:lab@28 --checkpoint=$CK
expect 0 "Validation split: 8 of 40 labelled images" -- "$RELATE" train_unsupervised "${L[@]}" --method=standard \
  --epochs=2 --val_fraction=0.2
SK=checkpoint/standard/folder_lab_28/standard_folder_lab_28_conv4_seed_1_epoch_2.tar
grep -qE '"train_images": 32,?$' checkpoint/standard/folder_lab_28/*_args.json ||
  { echo "FAIL: stage 1 trained on the validation images too"; FAILS=$((FAILS + 1)); }
expect 0 "Test accuracy" -- "$RELATE" train_linear_evaluation "${L[@]}" --epochs=2 --val_fraction=0.2 --checkpoint=$SK
LE=$(ls checkpoint/standard/folder_lab_28/*_linear_evaluation.tar | head -1)
expect 0 "Test accuracy" -- "$RELATE" test "${L[@]}" --val_fraction=0.2 --checkpoint="$LE"
expect 0 "kNN (k=200, T=0.1) top-1" -- "$RELATE" knn --dataset=folder:lab@28 --val_fraction=0.2 --checkpoint=$SK
expect 0 "8 x 64 float32 features" -- "$RELATE" embed --dataset=folder:lab@28 --val_fraction=0.2 --checkpoint=$SK \
  --out=val.npy
expect 2 "fraction in \[0, 1)" -- "$RELATE" knn --dataset=folder:lab@28 --val_fraction=abc --checkpoint=$SK
expect 2 "folder:PATH datasets only" -- "$RELATE" knn --dataset=fashionmnist --val_fraction=0.1 --checkpoint=$SK
expect 2 "strict_images expects True or False" -- "$RELATE" knn --dataset=folder:lab@28 --strict_images=maybe \
  --checkpoint=$SK

if [ $FAILS -ne 0 ]; then echo "$FAILS FAILED"; exit 1; fi
echo "PASS: e2e_folders"
