#!/usr/bin/env bash
# e2e_runs.sh RELATE: runs a user can trust, on real Fashion-MNIST (issue 13):
# - a second run with the same name is refused and leaves the first run's files untouched;
# - a run stopped at a random step (RELATE_STOP_AFTER_STEPS, the Ctrl-C/SIGTERM path) saves that
#   step in HEADER_last.tar and, resumed with --resume=auto, ends with checkpoints and log equal
#   byte for byte to an uninterrupted run's;
# - a real SIGTERM (Slurm's preemption) or SIGKILL (a crash) at a random moment leads to the same
#   bytes;
# - resuming into a run with other arguments is refused; --resume=auto with no last.tar starts;
# - --save_every decides which epochs rewrite HEADER_last.tar.
# The step and the moments are drawn afresh each run and printed; E2E_STOP_STEP, E2E_KILL_MS and
# E2E_KILL9_MS replay a given draw.
set -euo pipefail
RELATE=$(realpath "$1")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
fail() { echo "FAIL: $*"; exit 1; }

C=(--dataset=fashionmnist --backbone=conv4 --seed=1 --num_workers=2 --method=relationnet --K=4 --data_size=32
   --epochs=3 --limit_train_batches=8)
D=checkpoint/relationnet/fashionmnist
name() { echo "relationnet_$1_fashionmnist_conv4_seed_1"; }
same_run() { # the files two runs named $1 and $2 end with are equal byte for byte
  local a b f
  a=$(name "$1"); b=$(name "$2")
  for f in _epoch_1.tar _epoch_2.tar _epoch_3.tar _last.tar; do
    cmp "$D/$a$f" "$D/$b$f" || fail "$2: ${b}$f differs from the uninterrupted run's"
  done
  cmp "$D/log_$a.csv" "$D/log_$b.csv" || fail "$2: its log differs from the uninterrupted run's"
}

# The uninterrupted run (3 epochs of 8 steps).
"$RELATE" train_unsupervised "${C[@]}" --id=straight > straight.txt 2> straight.err
S=$(name straight)
for f in _epoch_1.tar _epoch_2.tar _epoch_3.tar _last.tar _args.json; do
  [ -f "$D/$S$f" ] || fail "straight run: $S$f missing"
done
grep -q '"limit_train_batches": 8' "$D/${S}_args.json" || fail "args.json lacks the run's flags"
grep -q '"command": "relate train_unsupervised .*--id=straight"' "$D/${S}_args.json" || fail "args.json lacks the command"

# Progress off a terminal: a plain line on stderr at least at the end of every epoch (stdout keeps
# the reference's lines), whose img/s counts images, not views: img/s x s/step = the 32 images of
# a step (the K=4 views would make it 128).
for e in 0 1 2; do
  grep -q "^\[relate\] Epoch \[$e/3\] step 8/8 | [0-9]* img/s | [0-9.]* s/step | loss [0-9.]* | epoch ETA 00:00:00 | run ETA" \
    straight.err || fail "no progress line for epoch $e on stderr: $(cat straight.err)"
done
grep -q '^\[relate\]' straight.txt && fail "progress lines on stdout"
awk -F'|' '/step 8\/8/ { split($2, a, " "); split($3, b, " "); p = a[1] * b[1];
  if (p < 24 || p > 40) { print "img/s x s/step = " p; bad = 1 } } END { exit bad }' straight.err \
  || fail "img/s does not count images"
grep -q "^\[INFO\] --limit_train_batches=8: each epoch runs 8 of its 1875 batches$" straight.txt \
  || fail "--limit_train_batches not announced"

# A second run with the same name: refused (exit 2), nothing of the first run changes.
md5sum $D/* > before.md5
set +e
"$RELATE" train_unsupervised "${C[@]}" --id=straight > again.txt 2> again.err
rc=$?
set -e
[ $rc = 2 ] || fail "a second run over the first one's files exited $rc, expected 2"
grep -q "does not overwrite another run's files" again.err || fail "refusal message: $(cat again.err)"
md5sum $D/* | cmp - before.md5 || fail "the refused run changed the first run's files"
grep -q '^Epoch' again.txt && fail "the refused run trained"

# Stopped at a random step of the 24 (the path of Ctrl-C and SIGTERM), then --resume=auto.
STEP=${E2E_STOP_STEP:-$((RANDOM % 23 + 1))}
echo "stopping after step $STEP of 24 (E2E_STOP_STEP=$STEP replays it)"
set +e
RELATE_STOP_AFTER_STEPS=$STEP "$RELATE" train_unsupervised "${C[@]}" --id=stopped > stopped.txt 2> stopped.err
rc=$?
set -e
[ $rc = 130 ] || fail "stopped run exited $rc, expected 130: $(cat stopped.err)"
grep -q "saved in ./$D/$(name stopped)_last.tar; the same command with --resume=auto continues" stopped.err \
  || fail "stop message: $(cat stopped.err)"
"$RELATE" train_unsupervised "${C[@]}" --id=stopped --resume=auto > resumed.txt 2> resumed.err \
  || fail "resume: $(cat resumed.err)"
grep -q "^\[INFO\] --resume=auto: resuming from ./$D/$(name stopped)_last.tar" resumed.txt || fail "resume not announced"
if [ $((STEP % 8)) != 0 ]; then
  grep -q "^\[INFO\] Resuming epoch $((STEP / 8)) after step $((STEP % 8)) of 8$" resumed.txt \
    || fail "resumed at the wrong step: $(grep Resuming resumed.txt)"
fi
same_run straight stopped
# The console's epoch lines (less the elapsed time) are the uninterrupted run's too.
ep() { sed -n 's/^\(Epoch \[[0-9]*\]\)\[[0-9:]*\]/\1/p' "$@"; }
[ "$(ep stopped.txt resumed.txt)" = "$(ep straight.txt)" ] || fail "epoch lines differ after the resume"

# A real SIGTERM at a random moment (Slurm's preemption); whether it lands while the data loads,
# in a step or after the run ended, the run ends with the same bytes.
MS=${E2E_KILL_MS:-$((RANDOM % 700 + 150))}
echo "SIGTERM after $MS ms (E2E_KILL_MS=$MS replays it)"
set +e
timeout --preserve-status -s TERM "$(awk -v m="$MS" 'BEGIN { printf "%.3f", m / 1000 }')" \
  "$RELATE" train_unsupervised "${C[@]}" --id=term > term.txt 2> term.err
rc=$?
set -e
case $rc in
  0) echo "the run ended before the signal" ;;
  143) echo "stopped by SIGTERM: $(cat term.err)"
       "$RELATE" train_unsupervised "${C[@]}" --id=term --resume=auto > term2.txt 2> term2.err \
         || fail "resume after SIGTERM: $(cat term2.err)" ;;
  *) fail "SIGTERM: exit $rc, expected 143 (or 0): $(cat term.err)" ;;
esac
same_run straight term

# SIGKILL at a random moment (a crash, the OOM killer): nothing is torn, and --resume=auto
# continues from the last save or, before the first one, starts the run again.
MS9=${E2E_KILL9_MS:-$((RANDOM % 700 + 150))}
echo "SIGKILL after $MS9 ms (E2E_KILL9_MS=$MS9 replays it)"
set +e
timeout -s KILL "$(awk -v m="$MS9" 'BEGIN { printf "%.3f", m / 1000 }')" \
  "$RELATE" train_unsupervised "${C[@]}" --id=crash > crash.txt 2> crash.err
set -e
if [ -f "$D/$(name crash)_last.tar" ]; then echo "killed after a save"; else echo "killed before the first save"; fi
"$RELATE" train_unsupervised "${C[@]}" --id=crash --resume=auto > crash2.txt 2> crash2.err \
  || fail "resume after SIGKILL: $(cat crash2.err)"
same_run straight crash

# Resuming into a run with other arguments is refused.
set +e
"$RELATE" train_unsupervised "${C[@]/--epochs=3/--epochs=4}" --id=straight --checkpoint=$D/${S}_epoch_1.tar \
  > other.txt 2> other.err
rc=$?
set -e
[ $rc = 2 ] || fail "resuming into a run with other arguments exited $rc, expected 2"
grep -q "whose arguments differ" other.err || fail "other-arguments message: $(cat other.err)"
md5sum $D/*$S* | cmp - <(grep "$S" before.md5) || fail "the refused resume changed files"

# --resume=auto and --checkpoint together: refused; --resume=other: refused.
"$RELATE" train_unsupervised "${C[@]}" --id=both --resume=auto --checkpoint=$D/${S}_epoch_1.tar \
  > /dev/null 2> both.err && fail "--resume=auto with --checkpoint accepted"
grep -q "pass one of them" both.err || fail "both message: $(cat both.err)"
"$RELATE" train_unsupervised "${C[@]}" --resume=$D/${S}_epoch_1.tar > /dev/null 2> r.err && fail "--resume=FILE accepted"
grep -q -- "--resume takes 'auto'" r.err || fail "--resume message: $(cat r.err)"

# --save_every: which epochs rewrite HEADER_last.tar (8 epochs of 1 step; the quarter points are
# epochs 2, 4, 6 and 8 and always save).
E8=("${C[@]/--epochs=3/--epochs=8}")
E8=("${E8[@]/--limit_train_batches=8/--limit_train_batches=1}")
saved() { sed -n 's/^\[relate\] epoch \([0-9]*\) saved in .*_last.tar$/\1/p' "$1" | tr '\n' ' '; }
"$RELATE" train_unsupervised "${E8[@]}" --id=every1 > /dev/null 2> every1.err
[ "$(saved every1.err)" = "1 2 3 4 5 6 7 8 " ] || fail "--save_every=1 saved after epochs $(saved every1.err)"
"$RELATE" train_unsupervised "${E8[@]}" --id=every3 --save_every=3 > /dev/null 2> every3.err
[ "$(saved every3.err)" = "2 3 4 6 8 " ] || fail "--save_every=3 saved after epochs $(saved every3.err)"
"$RELATE" train_unsupervised "${E8[@]}" --id=every0 --save_every=0 --log_every=0 > /dev/null 2> every0.err
[ "$(saved every0.err)" = "2 4 6 8 " ] || fail "--save_every=0 saved after epochs $(saved every0.err)"
grep -q "^\[relate\] Epoch" every0.err && fail "--log_every=0 printed progress"

# --resume=auto with nothing to resume starts the run, and says so.
"$RELATE" train_unsupervised "${E8[@]}" --id=fresh --resume=auto > fresh.txt 2> /dev/null
grep -q "^\[INFO\] --resume=auto: no .*_last.tar yet: starting the run" fresh.txt || fail "fresh --resume=auto"
ls -R checkpoint | grep -q tmp && fail "temporary file left behind"
echo "e2e_runs: all checks passed"
