#!/usr/bin/env bash
# e2e_simclr_rotationnet.sh RELATE: simclr and rotationnet through the three stages on real
# Fashion-MNIST with fixed seeds: pretraining (2 short epochs, the console line of spec 1.5, the
# log, the checkpoint keys), resume from the epoch-1 checkpoint (bit-identical to the straight
# run), linear evaluation and test (same accuracy), each against randomweights under the same
# evaluation. Not the other methods: tests/e2e covers relationnet, standard and randomweights.
# Learning checks (every build type): each method beats randomweights, measured here under the same
# linear evaluation, by a stated margin. Regression checks (RELATE_E2E_EXACT=1, Release only):
# figures recorded from relate's own runs.
set -euo pipefail
RELATE=$(realpath "$1")
. "$(dirname "${BASH_SOURCE[0]}")/../common/e2e_checks.sh"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

COMMON=(--dataset=fashionmnist --backbone=conv4 --seed=1 --num_workers=2)
# The linear evaluation of tests/e2e/e2e_relationnet.sh, run without the feature cache (the same
# accuracy, checked there) so that only the 60 batches used go through the backbone.
LIN=(--epochs=2 --data_size=128 --limit_train_batches=60 --feature_cache=False)

"$RELATE" train_unsupervised "${COMMON[@]}" --method=randomweights > rw.txt
R=checkpoint/randomweights/fashionmnist/randomweights_fashionmnist_conv4_seed_1.tar
"$RELATE" lineval "${COMMON[@]}" "${LIN[@]}" --method=randomweights --checkpoint=$R > rwlin.txt
ACC_RW=$(field "Test accuracy:" rwlin.txt)
[ -n "$ACC_RW" ] || fail "randomweights printed no accuracy"

# run_method METHOD BATCH LINE_REGEX: stage 1 twice (straight, resumed), stage 2, stage 3.
run_method() {
  local M=$1 BS=$2 LINE=$3
  local D=checkpoint/$M/fashionmnist H=${M}_fashionmnist_conv4_seed_1
  local PRE=("${COMMON[@]}" --method=$M --data_size=$BS --epochs=2 --limit_train_batches=20)
  "$RELATE" train_unsupervised "${PRE[@]}" > $M.pre.txt
  cat $M.pre.txt
  [ -f $D/${H}_epoch_1.tar ] && [ -f $D/${H}_epoch_2.tar ] || fail "$M: stage-1 checkpoints missing"
  [ "$(head -1 $D/log_$H.csv)" = "epoch,loss,score" ] || fail "$M: log header"
  [ "$(wc -l < $D/log_$H.csv)" = 3 ] || fail "$M: log lines"
  for e in 0 1; do
    grep -Eq "^Epoch \[$e\]\[[0-9]{2}:[0-9]{2}:[0-9]{2}\] $LINE\$" $M.pre.txt || fail "$M: epoch $e line format"
  done
  # The log's score is -loss (simclr) or the rotation accuracy (rotationnet), in full precision.
  local LOSS1 SCORE1
  LOSS1=$(sed -n 's/^Epoch \[1\]\[[0-9:]*\] loss: \([^;]*\);.*/\1/p' $M.pre.txt)
  [ "$(tail -1 $D/log_$H.csv | cut -d, -f2)" = "$LOSS1" ] || fail "$M: log loss differs from the console"
  SCORE1=$(tail -1 $D/log_$H.csv | cut -d, -f3)
  if [ $M = simclr ]; then
    [ "$SCORE1" = "-$LOSS1" ] || fail "simclr: score $SCORE1 is not -loss"
  else
    [ "$(sed -n 's/^Epoch \[1\]\[[0-9:]*\] loss: .*; acc\.: \(.*\)$/\1/p' $M.pre.txt)" = "$SCORE1" ] \
      || fail "rotationnet: log score differs from the console accuracy"
  fi
  # (The checkpoint keys and their order are checked by test_simclr_rotationnet.) Export finds
  # the backbone in this method's file.
  "$RELATE" export --checkpoint=$D/${H}_epoch_2.tar --format=safetensors --out=$M.safetensors > $M.export.txt \
    || fail "$M: export"
  grep -q "conv4 backbone (24 tensors)" $M.export.txt || fail "$M: export: $(cat $M.export.txt)"

  # Resume: 1 + 1 epochs equal 2 straight epochs, bit for bit.
  "$RELATE" pretrain "${PRE[@]}" --id=resumed --checkpoint=$D/${H}_epoch_1.tar > $M.resume.txt
  grep -q "Loading checkpoint: Done!" $M.resume.txt || fail "$M: resume did not load"
  grep -q '^Epoch \[0\]' $M.resume.txt && fail "$M: resumed run repeated epoch 0"
  cmp $D/${H}_epoch_2.tar $D/${M}_resumed_fashionmnist_conv4_seed_1_epoch_2.tar \
    || fail "$M: resumed checkpoint differs from the uninterrupted run"
  [ "$(tail -1 $D/log_$H.csv)" = "$(tail -1 $D/log_${M}_resumed_fashionmnist_conv4_seed_1.csv)" ] \
    || fail "$M: resumed log line differs"

  # Stage 2, then stage 3 reproduces its accuracy.
  "$RELATE" train_linear_evaluation "${COMMON[@]}" "${LIN[@]}" --method=$M --checkpoint=$D/${H}_epoch_2.tar \
    > $M.lin.txt
  tail -2 $M.lin.txt
  local L=$D/${H}_epoch_2_linear_evaluation.tar
  [ -f $L ] || fail "$M: stage-2 checkpoint missing"
  "$RELATE" test --dataset=fashionmnist --backbone=conv4 --seed=1 --checkpoint=$L > $M.test.txt
  [ "$(field "Test accuracy:" $M.test.txt)" = "$(field "Test accuracy:" $M.lin.txt)" ] \
    || fail "$M: stage 3 accuracy differs from stage 2"
}

run_method simclr 64 'loss: [0-9.e-]+; batch-size: 64; tot-pairs: 16384'
run_method rotationnet 32 'loss: [0-9.e-]+; acc\.: [0-9.e-]+'

ACC_SC=$(field "Test accuracy:" simclr.lin.txt)
ACC_ROT=$(field "Test accuracy:" rotationnet.lin.txt)
echo "accuracies: simclr $ACC_SC, rotationnet $ACC_ROT, randomweights $ACC_RW"
loss_falls simclr simclr.pre.txt
loss_falls rotationnet rotationnet.pre.txt
beats_random simclr "$ACC_SC" "$ACC_RW"
beats_random rotationnet "$ACC_ROT" "$ACC_RW"
if [ "${RELATE_E2E_EXACT:-0}" = 1 ]; then
  recorded "randomweights accuracy (as tests/e2e)" "$ACC_RW" 17.0 17.0 0.5
  recorded "simclr linear-evaluation accuracy" "$ACC_SC" 53.1 53.19 0.5
  recorded "rotationnet linear-evaluation accuracy" "$ACC_ROT" 48.43 48.89 0.5
fi
echo "e2e_simclr_rotationnet: all checks passed"
