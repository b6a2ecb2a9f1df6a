#!/usr/bin/env bash
# e2e_relationnet.sh RELATE: the three stages on real Fashion-MNIST with fixed seeds:
# relationnet pretraining (2 short epochs), resume from the epoch-1 checkpoint (bit-identical to
# the straight run), linear evaluation with and without the feature cache (same result), test
# (same accuracy as stage 2 printed), finetuning, the cross-domain protocol (stages 2 and 3 on
# another dataset), randomweights and standard.
# Two kinds of accuracy checks: learning checks (every build type) that relationnet and standard
# beat randomweights, measured here under the same linear evaluation, by a stated margin; and
# regression checks (RELATE_E2E_EXACT=1: Release builds only) against figures recorded from
# relate's own runs, which catch any change of the numbers but say nothing on their own about
# whether a method learns.
set -euo pipefail
RELATE=$(realpath "$1")
. "$(dirname "${BASH_SOURCE[0]}")/../common/e2e_checks.sh"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

COMMON=(--dataset=fashionmnist --backbone=conv4 --seed=1 --num_workers=2)
"$RELATE" train_unsupervised "${COMMON[@]}" --method=relationnet --K=4 --data_size=32 --epochs=2 \
  --limit_train_batches=12 > pre.txt
cat pre.txt
D=checkpoint/relationnet/fashionmnist
H=relationnet_fashionmnist_conv4_seed_1
[ -f $D/${H}_epoch_1.tar ] && [ -f $D/${H}_epoch_2.tar ] || fail "stage-1 checkpoints missing"
[ "$(head -1 $D/log_$H.csv)" = "epoch,loss,score" ] || fail "log header"
[ "$(wc -l < $D/log_$H.csv)" = 3 ] || fail "log lines"
grep -q '^Epoch \[1\]\[[0-9:]*\] loss: .*; acc: .*%; acc+: .*%; acc-: .*%; batch-size: 32; tot-pairs: 384$' pre.txt \
  || fail "epoch line format"
ls $D | grep -q tmp && fail "temporary file left behind"

# Resume: 1 + 1 epochs equal 2 straight epochs, bit for bit.
"$RELATE" pretrain "${COMMON[@]}" --method=relationnet --K=4 --data_size=32 --epochs=2 \
  --limit_train_batches=12 --id=resumed --checkpoint=$D/${H}_epoch_1.tar > resume.txt
grep -q "Loading checkpoint: Done!" resume.txt || fail "resume did not load"
grep -q '^Epoch \[0\]' resume.txt && fail "resumed run repeated epoch 0"
cmp $D/${H}_epoch_2.tar $D/relationnet_resumed_fashionmnist_conv4_seed_1_epoch_2.tar \
  || fail "resumed checkpoint differs from the uninterrupted run"
[ "$(tail -1 $D/log_$H.csv)" = "$(tail -1 $D/log_relationnet_resumed_fashionmnist_conv4_seed_1.csv)" ] \
  || fail "resumed log line differs"

# kNN during pretraining (--knn_every): on the console and in the log's knn_top1 column, and the
# training is unchanged: the same checkpoint bytes as the run without it.
"$RELATE" pretrain "${COMMON[@]}" --method=relationnet --K=4 --data_size=32 --epochs=2 \
  --limit_train_batches=12 --id=knn --knn_every=1 > knn.txt
[ "$(grep -c '^\[INFO\] kNN (k=200, T=0.1) after epoch [01]: top-1 [0-9.]*%; top-5 [0-9.]*%$' knn.txt)" = 2 ] \
  || fail "--knn_every=1 printed no kNN line per epoch: $(grep kNN knn.txt)"
KL=$D/log_relationnet_knn_fashionmnist_conv4_seed_1.csv
[ "$(head -1 $KL)" = "epoch,loss,score,knn_top1" ] && tail -1 $KL | grep -q ',[0-9][0-9]*\.[0-9][0-9]$' \
  || fail "knn_top1 column: $(cat $KL)"
cmp $D/${H}_epoch_2.tar $D/relationnet_knn_fashionmnist_conv4_seed_1_epoch_2.tar \
  || fail "--knn_every changed the training"
KNN_TOP1=$(tail -1 $KL | cut -d, -f4)

# Stage 2 with the feature cache, and the literal way (backbone on every batch): same classifier.
# EVAL: the linear evaluation every method and randomweights get in this script.
EVAL=(--epochs=2 --data_size=128 --limit_train_batches=60)
LIN=(--method=relationnet "${EVAL[@]}")
"$RELATE" train_linear_evaluation "${COMMON[@]}" "${LIN[@]}" \
  --checkpoint=$D/${H}_epoch_2.tar > lin.txt
cat lin.txt
L=$D/${H}_epoch_2_linear_evaluation.tar
[ -f $L ] || fail "stage-2 checkpoint missing"
ACC_LIN=$(field "Test accuracy:" lin.txt)
"$RELATE" lineval "${COMMON[@]}" "${LIN[@]}" --id=nocache \
  --feature_cache=False --checkpoint=$D/${H}_epoch_2.tar > lin2.txt
ACC_LIN2=$(field "Test accuracy:" lin2.txt)
[ "$ACC_LIN" = "$ACC_LIN2" ] || fail "feature cache changed the accuracy: $ACC_LIN vs $ACC_LIN2"

# Export: the backbone (detected from the file) as safetensors with its state-dict names.
"$RELATE" export --checkpoint=$D/${H}_epoch_2.tar --format=safetensors --out=backbone.safetensors > export.txt
grep -q "conv4 backbone (24 tensors)" export.txt || fail "export: $(cat export.txt)"
[ "$(stat -c %s backbone.safetensors)" -gt $((24648 * 4)) ] || fail "export: file too small"
head -c 2000 backbone.safetensors | grep -q '"layer1.conv.weight":{"dtype":"F32","shape":\[8,3,3,3\]' \
  || fail "export: layer1.conv.weight entry"
"$RELATE" export --checkpoint=$D/${H}_epoch_2.tar --backbone=resnet8 --out=x.safetensors 2> export_err.txt \
  && fail "export accepted a conv4 file as resnet8"

# Stage 3 reproduces the stage-2 accuracy.
"$RELATE" test --dataset=fashionmnist --backbone=conv4 --seed=1 --checkpoint=$L > test.txt
cat test.txt
ACC_TEST=$(field "Test accuracy:" test.txt)
[ "$ACC_TEST" = "$ACC_LIN" ] || fail "stage 3 accuracy $ACC_TEST != stage 2 accuracy $ACC_LIN"
[ "$(grep -c '^===========================$' test.txt)" = 2 ] || fail "test block"

# Finetuning: the whole network, T5, Adam with the reference's two learning rates.
"$RELATE" lineval "${COMMON[@]}" --method=relationnet --epochs=1 --data_size=128 --limit_train_batches=20 \
  --finetune=True --id=ft --checkpoint=$D/${H}_epoch_2.tar > ft.txt
grep -q "Finetune set to True" ft.txt || fail "finetune not announced"
ACC_FT=$(field "Test accuracy:" ft.txt)
[ -n "$ACC_FT" ] || fail "finetune printed no accuracy"

# Cross-domain: stage 1 on Fashion-MNIST, stages 2 and 3 on another dataset (an image folder of
# 32x32 PNGs with two classes, made from bare preview grids, --labels=False).
for cls in a b; do
  mkdir -p folder/train/$cls folder/test/$cls
  for s in 1 2 3 4 5 6; do
    m=relationnet; [ $cls = b ] && m=standard
    "$RELATE" data --dataset=fashionmnist --preview=folder/train/$cls/$s.png --method=$m --rows=1 --views=1 \
      --labels=False --seed=$s > /dev/null
  done
  cp folder/train/$cls/1.png folder/test/$cls/1.png
  cp folder/train/$cls/2.png folder/test/$cls/2.png
done
"$RELATE" lineval --dataset=folder:folder@32 --backbone=conv4 --seed=1 --method=relationnet --epochs=3 \
  --data_size=4 --checkpoint=$D/${H}_epoch_2.tar > cross.txt
ACC_CROSS=$(field "Test accuracy:" cross.txt)
"$RELATE" test --dataset=folder:folder@32 --backbone=conv4 \
  --checkpoint=checkpoint/relationnet/folder_folder_32/relationnet_folder_folder_32_conv4_seed_1_epoch_3_linear_evaluation.tar \
  > cross_test.txt || fail "cross-domain test"
[ "$(field "Test accuracy:" cross_test.txt)" = "$ACC_CROSS" ] || fail "cross-domain stage 3 differs from stage 2"

# Lower bound: random weights, then the same linear evaluation.
"$RELATE" train_unsupervised "${COMMON[@]}" --method=randomweights > rw.txt
R=checkpoint/randomweights/fashionmnist/randomweights_fashionmnist_conv4_seed_1.tar
[ -f $R ] || fail "randomweights checkpoint missing"
"$RELATE" lineval "${COMMON[@]}" --method=randomweights "${EVAL[@]}" --checkpoint=$R > rwlin.txt
ACC_RW=$(field "Test accuracy:" rwlin.txt)
[ -n "$ACC_RW" ] || fail "randomweights printed no accuracy"

# Upper bound: standard, one short epoch, prints its own test accuracy.
"$RELATE" train_unsupervised "${COMMON[@]}" --method=standard --epochs=1 --limit_train_batches=30 > std.txt
cat std.txt
ACC_STD=$(field "Test accuracy:" std.txt)
# With --epochs=1 both step decays fall on epoch 0; the reference prints each group's new rate
# there too, in Python's repr (0.1 * 0.1).
[ "$(grep -c '^Group\[[01]\] learning rate: 0.010000000000000002$' std.txt)" = 2 ] \
  || fail "standard: the epoch-0 learning-rate lines are missing"
S=checkpoint/standard/fashionmnist/standard_fashionmnist_conv4_seed_1_epoch_1.tar
[ -f $S ] || fail "standard checkpoint"
# The standard backbone under the same linear evaluation as the others (a few seconds).
"$RELATE" lineval "${COMMON[@]}" --method=standard "${EVAL[@]}" --checkpoint=$S > stdlin.txt
ACC_STD_LIN=$(field "Test accuracy:" stdlin.txt)

echo "kNN top-1 of the relationnet backbone after 2 epochs: $KNN_TOP1%"
echo "accuracies: relationnet $ACC_LIN, finetuned $ACC_FT, cross-domain $ACC_CROSS, randomweights $ACC_RW, standard $ACC_STD (linear evaluation of its backbone $ACC_STD_LIN)"
loss_falls relationnet pre.txt
beats_random relationnet "$ACC_LIN" "$ACC_RW"
beats_random standard "$ACC_STD_LIN" "$ACC_RW"
if [ "${RELATE_E2E_EXACT:-0}" = 1 ]; then
  recorded "relationnet linear-evaluation accuracy" "$ACC_LIN" 41.49 41.61 0.5
  recorded "randomweights accuracy" "$ACC_RW" 17.0 17.0 0.5
  recorded "standard accuracy" "$ACC_STD" 42.22 42.27 0.5
  recorded "finetuned accuracy" "$ACC_FT" 39.48 39.44 0.5
fi
echo "e2e_relationnet: all checks passed"
