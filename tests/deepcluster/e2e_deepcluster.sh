#!/usr/bin/env bash
# e2e_deepcluster.sh RELATE: deepcluster end to end on real Fashion-MNIST with fixed seeds: 2 short
# pretraining epochs (each clusters all 60,000 images), resume from the epoch-1 checkpoint
# (bit-identical to the straight run: the clustering is keyed by seed and epoch), linear
# evaluation and test, compared with randomweights under the same stage-2 settings.
# Learning check (every build type): deepcluster beats randomweights, measured here under the same
# linear evaluation, by a stated margin. Regression checks (RELATE_E2E_EXACT=1, Release only):
# figures recorded from relate's own runs.
set -euo pipefail
RELATE=$(realpath "$1")
. "$(dirname "${BASH_SOURCE[0]}")/../common/e2e_checks.sh"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
lap() { echo "[time] $1: $((SECONDS - T0)) s"; T0=$SECONDS; }
T0=$SECONDS

COMMON=(--dataset=fashionmnist --backbone=conv4 --seed=1 --num_workers=2)
PRE=(--method=deepcluster --data_size=128 --epochs=2 --limit_train_batches=20)
"$RELATE" train_unsupervised "${COMMON[@]}" "${PRE[@]}" > pre.txt
cat pre.txt
lap "pretrain, 2 epochs"
D=checkpoint/deepcluster/fashionmnist
H=deepcluster_fashionmnist_conv4_seed_1
[ -f $D/${H}_epoch_1.tar ] && [ -f $D/${H}_epoch_2.tar ] || fail "stage-1 checkpoints missing"
[ "$(head -1 $D/log_$H.csv)" = "epoch,loss,score" ] || fail "log header"
[ "$(wc -l < $D/log_$H.csv)" = 3 ] || fail "log lines"
# Spec 1.5: "Epoch [e][time] loss: L; acc: A%" with A the accuracy w.r.t. the pseudo-labels.
for e in 0 1; do
  grep -Eq "^Epoch \[$e\]\[[0-9]{2}:[0-9]{2}:[0-9]{2}\] loss: [0-9.e+-]+; acc: [0-9.e+-]+%\$" pre.txt \
    || fail "epoch $e line format"
done
LOSS0=$(sed -n 's/^Epoch \[0\].* loss: \([0-9.e+-]*\);.*/\1/p' pre.txt)
awk -v l="$LOSS0" 'BEGIN { exit !(l > 3.0 && l < 4.7) }' || fail "epoch-0 loss $LOSS0 is not near ln 100 = 4.61"
for k in classifier backbone optimizer linear2.weight bn1.running_var; do
  grep -aq "$k" $D/${H}_epoch_2.tar || fail "checkpoint lacks '$k'"
done
ls $D | grep -q tmp && fail "temporary file left behind"

# Resume: 1 + 1 epochs equal 2 straight epochs, bit for bit.
"$RELATE" pretrain "${COMMON[@]}" "${PRE[@]}" --id=resumed --checkpoint=$D/${H}_epoch_1.tar > resume.txt
lap "resume, 1 epoch"
grep -q "Loading checkpoint: Done!" resume.txt || fail "resume did not load"
grep -q '^Epoch \[0\]' resume.txt && fail "resumed run repeated epoch 0"
cmp $D/${H}_epoch_2.tar $D/deepcluster_resumed_fashionmnist_conv4_seed_1_epoch_2.tar \
  || fail "resumed checkpoint differs from the uninterrupted run"
[ "$(tail -1 $D/log_$H.csv)" = "$(tail -1 $D/log_deepcluster_resumed_fashionmnist_conv4_seed_1.csv)" ] \
  || fail "resumed log line differs"

# Stage 2 and stage 3 on the deepcluster backbone (e2e_relationnet.sh's stage-2 settings).
LIN=(--epochs=2 --data_size=128 --limit_train_batches=60)
"$RELATE" train_linear_evaluation "${COMMON[@]}" --method=deepcluster "${LIN[@]}" \
  --checkpoint=$D/${H}_epoch_2.tar > lin.txt
cat lin.txt
lap "linear evaluation"
L=$D/${H}_epoch_2_linear_evaluation.tar
[ -f $L ] || fail "stage-2 checkpoint missing"
ACC_DC=$(field "Test accuracy:" lin.txt)
"$RELATE" test --dataset=fashionmnist --backbone=conv4 --seed=1 --checkpoint=$L > test.txt
ACC_TEST=$(field "Test accuracy:" test.txt)
[ "$ACC_TEST" = "$ACC_DC" ] || fail "stage 3 accuracy $ACC_TEST != stage 2 accuracy $ACC_DC"

# Lower bound under the same settings.
"$RELATE" train_unsupervised "${COMMON[@]}" --method=randomweights > rw.txt
R=checkpoint/randomweights/fashionmnist/randomweights_fashionmnist_conv4_seed_1.tar
"$RELATE" lineval "${COMMON[@]}" --method=randomweights "${LIN[@]}" --checkpoint=$R > rwlin.txt
ACC_RW=$(field "Test accuracy:" rwlin.txt)
lap "test + randomweights"

echo "accuracies: deepcluster $ACC_DC, randomweights $ACC_RW"
beats_random deepcluster "$ACC_DC" "$ACC_RW"
if [ "${RELATE_E2E_EXACT:-0}" = 1 ]; then
  recorded "deepcluster linear-evaluation accuracy" "$ACC_DC" 49.28 49.28 3
  recorded "randomweights accuracy" "$ACC_RW" 17.0 17.0 0.5
fi
echo "e2e_deepcluster: all checks passed"
