#!/usr/bin/env bash
# e2e_deepinfomax.sh RELATE: deepinfomax's three stages on real Fashion-MNIST with fixed seeds: pretraining
# (2 short epochs, the spec 1.5 console line, the log, checkpoints with the spec 1.4 keys), resume from the
# epoch-1 checkpoint (bit-identical to the straight run), linear evaluation and test (same accuracy), compared
# with randomweights under the same evaluation.
# Learning check (every build type): deepinfomax beats randomweights, measured here under the same linear
# evaluation, by a stated margin. Regression checks (RELATE_E2E_EXACT=1, Release only): figures recorded
# from relate's own runs.
set -euo pipefail
RELATE=$(realpath "$1")
. "$(dirname "${BASH_SOURCE[0]}")/../common/e2e_checks.sh"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

COMMON=(--dataset=fashionmnist --backbone=conv4 --seed=1 --num_workers=2)
PRE=(--method=deepinfomax --data_size=32 --epochs=2 --limit_train_batches=12)
"$RELATE" train_unsupervised "${COMMON[@]}" "${PRE[@]}" > pre.txt
cat pre.txt
D=checkpoint/deepinfomax/fashionmnist
H=deepinfomax_fashionmnist_conv4_seed_1
[ -f $D/${H}_epoch_1.tar ] && [ -f $D/${H}_epoch_2.tar ] || fail "stage-1 checkpoints missing"
[ "$(head -1 $D/log_$H.csv)" = "epoch,loss,score" ] || fail "log header"
[ "$(wc -l < $D/log_$H.csv)" = 3 ] || fail "log lines"
# Spec 1.5: "Epoch [{epoch}][{time}] loss: {L}" and nothing more; score = -loss in the log.
grep -q '^Epoch \[0\]\[[0-9][0-9]:[0-9][0-9]:[0-9][0-9]\] loss: [0-9.e-]*$' pre.txt || fail "epoch line format"
grep -q '^Epoch \[1\]\[[0-9:]*\] loss: [0-9.e-]*$' pre.txt || fail "epoch 1 line"
LOSS0=$(sed -n 's/^Epoch \[0\]\[[0-9:]*\] loss: \(.*\)$/\1/p' pre.txt)
awk -v l="$LOSS0" 'BEGIN { exit !(l > 1.3 && l < 1.6) }' || fail "epoch-0 loss $LOSS0 is not near the initial 1.525"
IFS=, read -r E L S < <(sed -n 2p $D/log_$H.csv)
[ "$E" = 0 ] && [ "$L" = "$LOSS0" ] || fail "log line 0: $E,$L,$S (console loss $LOSS0)"
awk -v l="$L" -v s="$S" 'BEGIN { exit !(l + s == 0) }' || fail "score $S is not -loss $L"
ls $D | grep -q tmp && fail "temporary file left behind"
# The checkpoint holds the reference's keys (relate's own epoch/method/backbone_name extras aside); its
# pickle is stored uncompressed, so the key strings are visible in the file.
for k in backbone loss_fn optimizer local_d.c0.weight local_d.c2.bias prior_d.l0.weight prior_d.l2.bias; do
  grep -aq "$k" $D/${H}_epoch_2.tar || fail "checkpoint lacks $k"
done
"$RELATE" export --checkpoint=$D/${H}_epoch_2.tar --format=safetensors --out=bb.safetensors > export.txt \
  || fail "export: $(cat export.txt)"
grep -q "conv4 backbone (24 tensors)" export.txt || fail "export: $(cat export.txt)"

# Resume: 1 + 1 epochs equal 2 straight epochs, bit for bit (weights, Adam state, prior samples).
"$RELATE" pretrain "${COMMON[@]}" "${PRE[@]}" --id=resumed --checkpoint=$D/${H}_epoch_1.tar > resume.txt
grep -q "Loading checkpoint: Done!" resume.txt || fail "resume did not load"
grep -q '^Epoch \[0\]' resume.txt && fail "resumed run repeated epoch 0"
cmp $D/${H}_epoch_2.tar $D/deepinfomax_resumed_fashionmnist_conv4_seed_1_epoch_2.tar \
  || fail "resumed checkpoint differs from the uninterrupted run"
[ "$(tail -1 $D/log_$H.csv)" = "$(tail -1 $D/log_deepinfomax_resumed_fashionmnist_conv4_seed_1.csv)" ] \
  || fail "resumed log line differs"

# Stage 2 (the same settings as e2e_relationnet.sh) and stage 3. Without the feature cache the backbone
# sees only the 2 x 60 batches it trains on instead of all 60,000 images first (several times faster
# here); e2e_relationnet.sh checks that both ways give the same classifier.
LIN=(--epochs=2 --data_size=128 --limit_train_batches=60 --feature_cache=False)
"$RELATE" train_linear_evaluation "${COMMON[@]}" --method=deepinfomax "${LIN[@]}" \
  --checkpoint=$D/${H}_epoch_2.tar > lin.txt
cat lin.txt
L2=$D/${H}_epoch_2_linear_evaluation.tar
[ -f $L2 ] || fail "stage-2 checkpoint missing"
ACC_LIN=$(field "Test accuracy:" lin.txt)
[ -n "$ACC_LIN" ] || fail "stage 2 printed no accuracy"
"$RELATE" test --dataset=fashionmnist --backbone=conv4 --seed=1 --checkpoint=$L2 > test.txt
cat test.txt
[ "$(field "Test accuracy:" test.txt)" = "$ACC_LIN" ] || fail "stage 3 accuracy differs from stage 2 ($ACC_LIN)"

# Lower bound: random weights, measured here under the same evaluation (same flags, seed, threads).
"$RELATE" train_unsupervised "${COMMON[@]}" --method=randomweights > rw.txt
R=checkpoint/randomweights/fashionmnist/randomweights_fashionmnist_conv4_seed_1.tar
[ -f $R ] || fail "randomweights checkpoint missing"
"$RELATE" lineval "${COMMON[@]}" --method=randomweights "${LIN[@]}" --checkpoint=$R > rwlin.txt
ACC_RW=$(field "Test accuracy:" rwlin.txt)
[ -n "$ACC_RW" ] || fail "randomweights printed no accuracy"

echo "accuracies: deepinfomax $ACC_LIN, randomweights $ACC_RW (epoch-0 loss $LOSS0)"
loss_falls deepinfomax pre.txt
beats_random deepinfomax "$ACC_LIN" "$ACC_RW"
if [ "${RELATE_E2E_EXACT:-0}" = 1 ]; then
  recorded "deepinfomax linear-evaluation accuracy" "$ACC_LIN" 39.88 39.91 0.5
  recorded "randomweights accuracy" "$ACC_RW" 17.0 17.0 0.5
fi
echo "e2e_deepinfomax: all checks passed"
