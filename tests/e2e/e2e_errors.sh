#!/usr/bin/env bash
# e2e_errors.sh RELATE: bad input gets a clear message and a non-zero exit, and nothing already
# written is damaged: wrong flags and out-of-range values, unknown methods, a missing dataset,
# missing, foreign, truncated and mismatched checkpoints, malformed stored epochs, a file-size
# limit, stale temporary files, and Ctrl-C in the middle of an epoch. Also the commands' contracts
# on small image folders: stages 2 and 3 taking the checkpoint's backbone, refusing to overwrite,
# warning on another dataset; knn, embed (read back by numpy), retrieve and plot (PNGs read by PIL).
set -uo pipefail
RELATE=$(realpath "$1")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
FAILS=0
# expect CODE PATTERN -- command...: the exit status and a stderr pattern.
expect() {
  local code=$1 pattern=$2
  shift 3
  "$@" > out.txt 2> err.txt
  local rc=$?
  if [ $rc -ne "$code" ] || ! grep -q -- "$pattern" err.txt; then
    echo "FAIL: '$*' exited $rc (want $code), stderr:"; cat err.txt; FAILS=$((FAILS + 1))
  else
    echo "ok: $* -> $rc: $(head -1 err.txt)"
  fi
}
FM=(--dataset=fashionmnist --backbone=conv4 --seed=1 --num_workers=2)

expect 2 "unknown flag '--epoch' (did you mean '--epochs'?)" -- "$RELATE" train_unsupervised --epoch=3
expect 2 "unknown flag '--finetun' (did you mean '--finetune'?)" -- "$RELATE" lineval --finetun=True
expect 2 "expects an integer" -- "$RELATE" train_unsupervised --K=four
expect 2 "unknown --method 'relnet'; valid: relationnet" -- "$RELATE" train_unsupervised "${FM[@]}" --method=relnet
expect 2 "unknown --method 'simlcr' (did you mean 'simclr'?)" -- "$RELATE" train_unsupervised "${FM[@]}" --method=simlcr
expect 2 "aggregation 'concat'" -- "$RELATE" train_unsupervised "${FM[@]}" --aggregation=concat
expect 2 "aggregation 'mena' (did you mean 'mean'?)" -- "$RELATE" train_unsupervised "${FM[@]}" --aggregation=mena
expect 2 "unknown dataset 'fashionmnst' (did you mean 'fashionmnist'?)" -- "$RELATE" train_unsupervised --dataset=fashionmnst
# A wrong backbone is named as such before any data is looked for (it once said "CIFAR-10 not found").
expect 2 "unknown --backbone 'resnet18' (did you mean 'resnet8'?)" -- "$RELATE" train_unsupervised --backbone=resnet18 \
  --data_root=nowhere
expect 2 "unknown --backbone 'resnet99'" -- "$RELATE" lineval --backbone=resnet99 --data_root=nowhere --checkpoint=x.tar
expect 2 "unknown --backbone 'resnet99'" -- "$RELATE" test --backbone=resnet99 --data_root=nowhere --checkpoint=x.tar
expect 1 "relate download cifar10" -- "$RELATE" train_unsupervised --dataset=cifar10 --data_root=nowhere
expect 1 "nothing.tar" -- "$RELATE" train_linear_evaluation "${FM[@]}" --checkpoint=nothing.tar
# Every integer flag is range-checked before anything is loaded or allocated.
expect 2 "K must be between 1 and 1024, got 1000000" -- "$RELATE" train_unsupervised "${FM[@]}" --K=1000000
expect 2 "data_size must be between 1 and 65536" -- "$RELATE" train_unsupervised "${FM[@]}" --data_size=100000000
expect 2 "views per step" -- "$RELATE" train_unsupervised "${FM[@]}" --K=1024 --data_size=65536
expect 2 "threads must be between 0 and 1024, got -1" -- "$RELATE" train_unsupervised "${FM[@]}" --threads -1
expect 2 "threads must be between" -- "$RELATE" train_linear_evaluation "${FM[@]}" --threads=100000
expect 2 "epoch_start must be between -1" -- "$RELATE" train_unsupervised "${FM[@]}" --epoch_start=-7
expect 2 "limit_train_batches must be between 0" -- "$RELATE" train_unsupervised "${FM[@]}" --limit_train_batches=-1
expect 2 "limit_train_batches must be between 0" -- "$RELATE" lineval "${FM[@]}" --limit_train_batches=-1
expect 2 "num_workers must be between 0 and 256" -- "$RELATE" train_unsupervised "${FM[@]}" --num_workers=-2
expect 2 "image_size must be between" -- "$RELATE" info --image_size=0
# Booleans take what argparse-era scripts write, and nothing else.
expect 2 "finetune expects True or False" -- "$RELATE" lineval "${FM[@]}" --finetune=maybe --checkpoint=x.tar
expect 2 "feature_cache expects True or False" -- "$RELATE" lineval "${FM[@]}" --feature_cache=Flase --checkpoint=x.tar
# A missing --checkpoint is named as such (it once said "checkpoint './': is a folder").
expect 2 "checkpoint is required" -- "$RELATE" test --dataset=fashionmnist
expect 2 "checkpoint is required" -- "$RELATE" train_linear_evaluation "${FM[@]}"

echo "not a checkpoint" > foreign.tar
expect 1 "foreign.tar" -- "$RELATE" train_linear_evaluation "${FM[@]}" --checkpoint=foreign.tar

# A real checkpoint, then a truncated copy and a mismatched use of it.
"$RELATE" train_unsupervised "${FM[@]}" --method=randomweights > /dev/null || { echo "FAIL: randomweights"; exit 1; }
R=checkpoint/randomweights/fashionmnist/randomweights_fashionmnist_conv4_seed_1.tar
head -c 5000 $R > truncated.tar
expect 1 "truncated.tar" -- "$RELATE" train_linear_evaluation "${FM[@]}" --checkpoint=truncated.tar
expect 2 "holds a conv4 backbone, but --backbone=resnet8: pass --backbone=conv4 or leave --backbone out" -- \
  "$RELATE" train_linear_evaluation --dataset=fashionmnist --backbone=resnet8 --checkpoint=$R
expect 1 "classifier" -- "$RELATE" test --dataset=fashionmnist --checkpoint=$R
expect 2 "method randomweights" -- "$RELATE" train_unsupervised "${FM[@]}" --K=4 --checkpoint=$R

# Stages 2 and 3 take the backbone the checkpoint records (no --backbone), refuse to overwrite an
# earlier stage 2, and warn when the test set is not the one the classifier was trained on. On two
# small image folders of 32x32 PNGs, so that resnet8 runs in a moment even under the sanitizers.
for d in small small2; do
  for cls in 1 2; do
    mkdir -p $d/train/$cls $d/test/$cls
    for k in 1 2 3; do
      "$RELATE" data --dataset=fashionmnist --preview=$d/train/$cls/$k.png --method=standard --rows=1 --views=1 \
        --labels=False --seed=$k$cls > /dev/null || { echo "FAIL: preview"; FAILS=$((FAILS + 1)); }
    done
    cp $d/train/$cls/1.png $d/test/$cls/1.png
  done
done
"$RELATE" train_unsupervised --dataset=folder:small@32 --backbone=resnet8 --method=randomweights > /dev/null \
  || { echo "FAIL: randomweights resnet8"; FAILS=$((FAILS + 1)); }
R8=checkpoint/randomweights/folder_small_32/randomweights_folder_small_32_resnet8_seed_1.tar
S2=(--dataset=folder:small@32 --epochs=2 --data_size=2 --method=randomweights --checkpoint=$R8)
if "$RELATE" lineval "${S2[@]}" > s2.txt 2> s2.err && grep -q "^\[INFO\] Backbone resnet8, as $R8 records" s2.txt; then
  echo "ok: stage 2 takes resnet8 from the checkpoint"
else
  echo "FAIL: stage 2 without --backbone"; cat s2.txt s2.err; FAILS=$((FAILS + 1))
fi
L8=checkpoint/randomweights/folder_small_32/randomweights_folder_small_32_resnet8_seed_1_epoch_2_linear_evaluation.tar
grep -q "^(Epoch 1) training loss (epoch mean): [0-9.e-]*; training accuracy: [0-9.]*%$" s2.txt \
  || { echo "FAIL: stage-2 epoch line"; cat s2.txt; FAILS=$((FAILS + 1)); }
LOG8=checkpoint/randomweights/folder_small_32/log_randomweights_folder_small_32_resnet8_seed_1_epoch_2_linear_evaluation.csv
[ "$(head -1 $LOG8)" = "epoch,loss,accuracy" ] && [ "$(wc -l < $LOG8)" = 3 ] \
  || { echo "FAIL: stage-2 log"; cat $LOG8; FAILS=$((FAILS + 1)); }
md5sum $L8 > l8.md5
expect 2 "exists (a stage 2 of $R8): relate does not overwrite" -- "$RELATE" lineval "${S2[@]}"
md5sum -c --quiet l8.md5 || { echo "FAIL: the refused stage 2 changed $L8"; FAILS=$((FAILS + 1)); }
# The stage 2 of another stage-1 file takes a name that carries that file's, and says so.
"$RELATE" train_unsupervised --dataset=folder:small@32 --backbone=resnet8 --method=randomweights --id=two > /dev/null
R8B=checkpoint/randomweights/folder_small_32/randomweights_two_folder_small_32_resnet8_seed_1.tar
L8B=${L8%.tar}_of_randomweights_two_folder_small_32_resnet8_seed_1.tar
if "$RELATE" lineval "${S2[@]/--checkpoint=$R8/--checkpoint=$R8B}" > s2c.txt 2> s2c.err \
  && grep -q "holds the stage 2 of $R8; this one goes to ./$L8B" s2c.txt && [ -f "$L8B" ]; then
  echo "ok: a second stage-1 file's stage 2 gets its own name"
else
  echo "FAIL: stage 2 of a second checkpoint"; cat s2c.txt s2c.err; FAILS=$((FAILS + 1))
fi
md5sum -c --quiet l8.md5 || { echo "FAIL: the second stage 2 changed $L8"; FAILS=$((FAILS + 1)); }
expect 2 "exists (a stage 2 of $R8B)" -- "$RELATE" lineval "${S2[@]/--checkpoint=$R8/--checkpoint=$R8B}"
if "$RELATE" test --dataset=folder:small@32 --checkpoint=$L8 > t8.txt 2> t8.err \
  && grep -q "^Test loss: [0-9.e-]*$" t8.txt && ! grep -q WARN t8.err; then
  echo "ok: test takes resnet8 from the stage-2 file; its loss has no percent sign"
else
  echo "FAIL: test without --backbone"; cat t8.txt t8.err; FAILS=$((FAILS + 1))
fi
"$RELATE" test --dataset=folder:small2@32 --checkpoint=$L8 > /dev/null 2> t8b.err \
  && grep -q "classifier was trained on folder:small@32; testing on folder:small2@32" t8b.err \
  && echo "ok: test on another dataset warns" \
  || { echo "FAIL: cross-dataset test warning"; cat t8b.err; FAILS=$((FAILS + 1)); }
expect 2 "holds a resnet8 backbone, but --backbone=conv4" -- "$RELATE" test --dataset=folder:small@32 --backbone=conv4 \
  --checkpoint=$L8
"$RELATE" lineval "${S2[@]/--dataset=folder:small@32/--dataset=folder:small2@32}" > /dev/null 2> s2b.err \
  && grep -q "was pretrained on folder:small@32; this evaluation uses folder:small2@32 (cross-domain)" s2b.err \
  && echo "ok: stage 2 on another dataset warns" \
  || { echo "FAIL: cross-domain stage-2 warning"; cat s2b.err; FAILS=$((FAILS + 1)); }

# kNN evaluation of a checkpoint's frozen features (the backbone from the file), and its flags.
"$RELATE" knn --dataset=folder:small@32 --checkpoint=$R8 --k=3 > knn.txt 2> knn.err \
  && grep -q "^kNN (k=3, T=0.1) top-1: [0-9.]*%; top-5: 100.00%$" knn.txt \
  && echo "ok: relate knn: $(tail -1 knn.txt)" || { echo "FAIL: relate knn"; cat knn.txt knn.err; FAILS=$((FAILS + 1)); }
expect 2 "checkpoint is required" -- "$RELATE" knn --dataset=folder:small@32
expect 2 "temperature expects a positive number, got '-1'" -- "$RELATE" knn --checkpoint=$R8 --temperature=-1
expect 2 "k must be between 1" -- "$RELATE" knn --checkpoint=$R8 --k=0

# Embeddings as NumPy files, read back by numpy.load (python3-numpy, as CI installs it): shape,
# dtypes, labels; an existing file is not overwritten.
"$RELATE" embed --dataset=folder:small@32 --checkpoint=$R8 --out=feats.npy > emb.txt 2> emb.err \
  || { echo "FAIL: relate embed"; cat emb.err; FAILS=$((FAILS + 1)); }
if /usr/bin/python3 -c "import numpy" 2> /dev/null; then
  /usr/bin/python3 -c "
import numpy as np
f, l = np.load('feats.npy'), np.load('feats_labels.npy')
assert f.dtype == np.float32 and f.shape == (2, 64) and np.isfinite(f).all() and f.std() > 0, (f.dtype, f.shape)
assert l.dtype == np.int64 and sorted(l.tolist()) == [0, 1], l
" && echo "ok: relate embed: numpy.load reads 2 x 64 float32 features and int64 labels" \
    || { echo "FAIL: numpy.load of relate embed's files"; FAILS=$((FAILS + 1)); }
elif [ "${RELATE_REQUIRE_ALL:-0}" = 1 ]; then
  echo "FAIL: python3-numpy is missing (RELATE_REQUIRE_ALL=1): apt-get install python3-numpy"; FAILS=$((FAILS + 1))
else
  echo "SKIP: the numpy.load check needs python3-numpy"
fi
expect 2 "feats.npy exists: relate does not overwrite it" -- "$RELATE" embed --dataset=folder:small@32 \
  --checkpoint=$R8 --out=feats.npy
expect 2 "split is train, test or unlabeled" -- "$RELATE" embed --checkpoint=$R8 --out=x.npy --split=val

# Retrieval: metrics and the grid PNG (2 queries, 3 neighbours, 32x32 images drawn at 2x in 2-pixel
# frames: 4 + 4 x (68 + 4) + 4 = 296 by 4 + 2 x (68 + 4) = 148 pixels), decoded by PIL.
"$RELATE" retrieve --dataset=folder:small@32 --checkpoint=$R8 --top=3 --queries=2 --out=grid.png > ret.txt 2> ret.err \
  && grep -q "^retrieval over 2 test queries in 6 training images (resnet8 backbone): precision@3 [0-9.]*%; mAP@3 [0-9.]*%$" ret.txt \
  && echo "ok: relate retrieve: $(head -1 ret.txt)" || { echo "FAIL: relate retrieve"; cat ret.txt ret.err; FAILS=$((FAILS + 1)); }
if /usr/bin/python3 -c "import PIL" 2> /dev/null; then
  /usr/bin/python3 -c "
from PIL import Image
im = Image.open('grid.png'); im.load()
assert im.size == (296, 148) and im.mode == 'RGB', (im.size, im.mode)
frames = {im.getpixel((4 + 72 * (j + 1) + 4, 4)) for j in range(3)}  # each neighbour's top frame
assert frames <= {(0, 200, 0), (230, 0, 0)}, frames
" && echo "ok: the retrieval grid decodes, 296 x 148, green/red frames" \
    || { echo "FAIL: the retrieval grid"; FAILS=$((FAILS + 1)); }
elif [ "${RELATE_REQUIRE_ALL:-0}" = 1 ]; then
  echo "FAIL: python3-pil is missing (RELATE_REQUIRE_ALL=1)"; FAILS=$((FAILS + 1))
fi
expect 2 "grid.png exists: relate does not overwrite it" -- "$RELATE" retrieve --dataset=folder:small@32 \
  --checkpoint=$R8 --out=grid.png
expect 2 "top=7, but the training split holds 6 images" -- "$RELATE" retrieve --dataset=folder:small@32 \
  --checkpoint=$R8 --top=7

# Plots of epoch logs (cairo): two stage-1 logs, one with a sparse kNN column, overlaid; the PNG is
# decoded by PIL and holds both logs' colours; a malformed log is refused with its line number.
printf 'epoch,loss,score,knn_top1\n0,0.09,55.5,\n1,0.08,60.25,71.5\n2,0.075,63.0,73.25\n' > log_a.csv
printf 'epoch,loss,score\n0,0.085,58.0\n1,0.079,62.5\n2,0.07,66.0\n' > log_b.csv
"$RELATE" plot log_a.csv log_b.csv --out=curves.png > plot.txt 2> plot.err \
  && grep -q "^curves.png: 2 log(s), 1000 x 466 pixels$" plot.txt \
  || { echo "FAIL: relate plot"; cat plot.txt plot.err; FAILS=$((FAILS + 1)); }
if /usr/bin/python3 -c "import PIL" 2> /dev/null; then
  /usr/bin/python3 -c "
from PIL import Image
im = Image.open('curves.png').convert('RGB')
assert im.size == (1000, 466), im.size
colours = set(im.getdata())
for c in [(31, 120, 181), (214, 38, 41)]:  # the first two palette entries (0.12/0.47/0.71, 0.84/0.15/0.16)
    assert any(max(abs(a - b) for a, b in zip(c, k)) <= 2 for k in colours), c
assert len(colours) > 50, len(colours)  # anti-aliased text and curves, not a blank image
" && echo "ok: relate plot: 1000 x 466 PNG with both logs' colours" \
    || { echo "FAIL: the plot PNG"; FAILS=$((FAILS + 1)); }
elif [ "${RELATE_REQUIRE_ALL:-0}" = 1 ]; then
  echo "FAIL: python3-pil is missing (RELATE_REQUIRE_ALL=1)"; FAILS=$((FAILS + 1))
fi
printf 'epoch,loss,score\n0,0.085,58.0\n1,abc,62.5\n' > log_bad.csv
expect 1 "log_bad.csv line 3 is not a line of numbers" -- "$RELATE" plot log_bad.csv --out=bad.png
expect 1 "is not an epoch log of relate" -- "$RELATE" plot foreign.tar --out=bad.png
expect 2 "curves.png exists: relate does not overwrite it" -- "$RELATE" plot log_a.csv --out=curves.png
[ -e bad.png ] || [ -e bad.png.tmp ] && { echo "FAIL: a refused plot left a file"; FAILS=$((FAILS + 1)); }

# Past a file-size limit a save fails with a message (EFBIG), not a silent SIGXFSZ death, and
# leaves no temporary file.
(ulimit -f 40; "$RELATE" train_unsupervised "${FM[@]}" --method=randomweights --id=fsize > /dev/null 2> fsize_err.txt)
rc=$?
if [ $rc -ne 1 ] || ! grep -q "File too large" fsize_err.txt; then
  echo "FAIL: ulimit -f: exit $rc"; cat fsize_err.txt; FAILS=$((FAILS + 1))
else
  echo "ok: ulimit -f -> 1: $(head -1 fsize_err.txt)"
fi
if find checkpoint -name '*tmp*' | grep -q .; then echo "FAIL: ulimit -f left a temporary file"; FAILS=$((FAILS + 1)); fi

# A temporary file left by a killed save has one name per target, and the next save replaces it.
S=checkpoint/randomweights/fashionmnist/randomweights_stale_fashionmnist_conv4_seed_1.tar
echo "half a checkpoint" > $S.tmp
"$RELATE" train_unsupervised "${FM[@]}" --method=randomweights --id=stale > /dev/null || { echo "FAIL: stale"; FAILS=$((FAILS + 1)); }
if [ -e $S.tmp ] || [ ! -s $S ]; then echo "FAIL: stale temporary file not replaced"; FAILS=$((FAILS + 1)); else echo "ok: stale $S.tmp replaced"; fi

# A checkpoint's epoch must be a count of finished epochs: 2^32 + 1 once resumed at epoch 1, and
# negative, string or float values restarted at 0 without a word. The files are the real
# checkpoint with only its epoch changed by torch (python3-torch, as CI installs it).
"$RELATE" train_unsupervised "${FM[@]}" --K=4 --data_size=16 --epochs=1 --limit_train_batches=1 --id=ep > /dev/null \
  || { echo "FAIL: short run"; FAILS=$((FAILS + 1)); }
E=checkpoint/relationnet/fashionmnist/relationnet_ep_fashionmnist_conv4_seed_1_epoch_1.tar
PY=/usr/bin/python3 # Debian's, whatever python3 comes first on PATH
if $PY -c "import torch" 2> /dev/null; then
  for v in 4294967297 -3 "'one'" 1.5; do
    $PY -c "import torch, sys; d = torch.load(sys.argv[1]); d['epoch'] = $v; torch.save(d, sys.argv[2])" $E bad_epoch.tar
    expect 1 "epoch" -- "$RELATE" train_unsupervised "${FM[@]}" --K=4 --data_size=16 --epochs=3 --checkpoint=bad_epoch.tar
  done
  # With --epoch_start the stored epoch is not needed.
  "$RELATE" train_unsupervised "${FM[@]}" --K=4 --data_size=16 --epochs=1 --epoch_start=1 \
    --checkpoint=bad_epoch.tar --id=ep2 > out.txt 2>&1 && grep -q "Nothing to do" out.txt \
    && echo "ok: --epoch_start overrides a malformed stored epoch" \
    || { echo "FAIL: --epoch_start with a bad stored epoch"; cat out.txt; FAILS=$((FAILS + 1)); }
elif [ "${RELATE_REQUIRE_ALL:-0}" = 1 ]; then
  echo "FAIL: python3-torch is missing (RELATE_REQUIRE_ALL=1): apt-get install python3-torch"; FAILS=$((FAILS + 1))
else
  echo "SKIP: the checkpoint-epoch checks need python3-torch (apt-get install python3-torch)"
fi

# Ctrl-C mid-epoch: the step finishes, nothing half-made is written, exit 130.
cp $R before.tar
"$RELATE" train_unsupervised "${FM[@]}" --K=4 --data_size=32 --epochs=4 > sigint.txt 2> sigint_err.txt &
PID=$!
for _ in $(seq 1 100); do grep -q "Aggregation" sigint.txt 2>/dev/null && break; sleep 0.1; done
sleep 1
kill -INT $PID
wait $PID
rc=$?
if [ $rc -ne 130 ] || ! grep -q "interrupted" sigint_err.txt; then
  echo "FAIL: SIGINT exit $rc"; cat sigint_err.txt; FAILS=$((FAILS + 1))
else
  echo "ok: SIGINT -> 130: $(head -1 sigint_err.txt)"
fi
if find checkpoint -name '*tmp*' | grep -q .; then echo "FAIL: temporary files left"; FAILS=$((FAILS + 1)); fi
cmp -s $R before.tar || { echo "FAIL: an existing checkpoint changed"; FAILS=$((FAILS + 1)); }

[ $FAILS -eq 0 ] && echo "e2e_errors: all checks passed"
exit $FAILS
