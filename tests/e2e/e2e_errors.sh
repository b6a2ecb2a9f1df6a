#!/usr/bin/env bash
# e2e_errors.sh RELATE: bad input gets a clear message and a non-zero exit, and nothing already
# written is damaged: wrong flags, unknown or unbuilt methods, a missing dataset, missing,
# foreign, truncated and mismatched checkpoints, and Ctrl-C in the middle of an epoch.
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

expect 2 "unknown flag '--epoch'" -- "$RELATE" train_unsupervised --epoch=3
expect 2 "expects an integer" -- "$RELATE" train_unsupervised --K=four
expect 2 "unknown method 'relnet'" -- "$RELATE" train_unsupervised "${FM[@]}" --method=relnet
expect 2 "aggregation" -- "$RELATE" train_unsupervised "${FM[@]}" --aggregation=concat
expect 2 "backbone" -- "$RELATE" train_unsupervised "${FM[@]}" --backbone=resnet99
expect 1 "relate download cifar10" -- "$RELATE" train_unsupervised --dataset=cifar10 --data_root=nowhere
expect 1 "nothing.tar" -- "$RELATE" train_linear_evaluation "${FM[@]}" --checkpoint=nothing.tar

echo "not a checkpoint" > foreign.tar
expect 1 "foreign.tar" -- "$RELATE" train_linear_evaluation "${FM[@]}" --checkpoint=foreign.tar

# A real checkpoint, then a truncated copy and a mismatched use of it.
"$RELATE" train_unsupervised "${FM[@]}" --method=randomweights > /dev/null || { echo "FAIL: randomweights"; exit 1; }
R=checkpoint/randomweights/fashionmnist/randomweights_fashionmnist_conv4_seed_1.tar
head -c 5000 $R > truncated.tar
expect 1 "truncated.tar" -- "$RELATE" train_linear_evaluation "${FM[@]}" --checkpoint=truncated.tar
expect 1 "resnet8" -- "$RELATE" train_linear_evaluation --dataset=fashionmnist --backbone=resnet8 --checkpoint=$R
expect 1 "classifier" -- "$RELATE" test --dataset=fashionmnist --checkpoint=$R
expect 2 "method randomweights" -- "$RELATE" train_unsupervised "${FM[@]}" --K=4 --checkpoint=$R

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
