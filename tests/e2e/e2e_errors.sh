#!/usr/bin/env bash
# e2e_errors.sh RELATE: bad input gets a clear message and a non-zero exit, and nothing already
# written is damaged: wrong flags and out-of-range values, unknown methods, a missing dataset,
# missing, foreign, truncated and mismatched checkpoints, malformed stored epochs, a file-size
# limit, stale temporary files, and Ctrl-C in the middle of an epoch.
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
expect 1 "resnet8" -- "$RELATE" train_linear_evaluation --dataset=fashionmnist --backbone=resnet8 --checkpoint=$R
expect 1 "classifier" -- "$RELATE" test --dataset=fashionmnist --checkpoint=$R
expect 2 "method randomweights" -- "$RELATE" train_unsupervised "${FM[@]}" --K=4 --checkpoint=$R

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
