#!/usr/bin/env bash
# e2e_tsne.sh RELATE: `relate embed --tsne` on real Fashion-MNIST (Debian's dataset-fashion-mnist):
# a checkpoint from a short relationnet run, the t-SNE map of 300 evenly spaced test images as a
# PNG that PIL decodes at the stated size with every class's legend colour; the same command twice
# gives the same bytes; an existing map is never overwritten (nor is anything else written then);
# --tsne together with --out; bad --perplexity values are refused.
set -uo pipefail
RELATE=$(realpath "$1")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
FAILS=0
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
# expect CODE PATTERN -- command...: the exit status and a stderr pattern.
expect() {
  local code=$1 pattern=$2
  shift 3
  "$@" > out.txt 2> err.txt
  local rc=$?
  if [ $rc -ne "$code" ] || ! grep -q -- "$pattern" err.txt; then
    fail "'$*' exited $rc (want $code), stderr: $(cat err.txt)"
  else
    echo "ok: $* -> $rc: $(head -1 err.txt)"
  fi
}
if ! "$RELATE" data --dataset=fashionmnist > /dev/null 2>&1; then
  if [ "${RELATE_REQUIRE_ALL:-0}" = 1 ]; then
    echo "FAIL: Fashion-MNIST is missing (RELATE_REQUIRE_ALL=1): apt-get install dataset-fashion-mnist"; exit 1
  fi
  echo "SKIP: e2e_tsne needs Fashion-MNIST (apt-get install dataset-fashion-mnist)"; exit 0
fi

"$RELATE" train_unsupervised --dataset=fashionmnist --backbone=conv4 --seed=1 --num_workers=2 --method=relationnet \
  --K=4 --data_size=32 --epochs=1 --limit_train_batches=12 > pre.txt 2>&1 || { cat pre.txt; fail "pretraining"; exit 1; }
CK=checkpoint/relationnet/fashionmnist/relationnet_fashionmnist_conv4_seed_1_epoch_1.tar
EMB=(embed --dataset=fashionmnist --checkpoint=$CK --max_points=300)

# The map: one line naming the points, the method and the KL divergence (below 2 for 300 points
# of a briefly trained conv4: 0.30 measured).
"$RELATE" "${EMB[@]}" --tsne=map.png > map.txt 2> map.err || fail "relate embed --tsne: $(cat map.err)"
cat map.txt
LINE='^map.png: t-SNE of 300 points (exact, evenly spaced over the split), perplexity 30, 1000 iterations, '
LINE+='[0-9.]* s: KL divergence [0-9.]*; 1000 x 810 pixels$'
grep -q "$LINE" map.txt || fail "the embed --tsne line: $(cat map.txt)"
KL=$(sed -n 's/.*KL divergence \([0-9.]*\);.*/\1/p' map.txt)
awk -v k="$KL" 'BEGIN { exit !(k > 0 && k < 2) }' && echo "ok: KL divergence $KL (bound 2)" \
  || fail "KL divergence '$KL' not in (0, 2)"
[ -e map.png.tmp ] && fail "a temporary file was left behind"
if /usr/bin/python3 -c "import PIL" 2> /dev/null; then
  /usr/bin/python3 -c "
from PIL import Image
im = Image.open('map.png'); im.load()
assert im.size == (1000, 810) and im.mode == 'RGB', (im.size, im.mode)
colours = set(im.getdata())
tab10 = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
         (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
missing = [c for c in tab10 if not any(max(abs(a - b) for a, b in zip(c, k)) <= 2 for k in colours)]
assert not missing, missing  # every class's legend disc
assert len(colours) > 200, len(colours)  # dots, anti-aliased text: not a blank image
" && echo "ok: map.png decodes (PIL): 1000 x 810 RGB with the ten classes' colours" || fail "the map PNG"
elif [ "${RELATE_REQUIRE_ALL:-0}" = 1 ]; then
  fail "python3-pil is missing (RELATE_REQUIRE_ALL=1)"
else
  echo "SKIP: the PNG check needs python3-pil"
fi

# Deterministic: the same command gives the same bytes.
"$RELATE" "${EMB[@]}" --tsne=map2.png > /dev/null 2>&1 && cmp -s map.png map2.png \
  && echo "ok: the same command draws the same PNG, byte for byte" || fail "a second map differs from the first"

# Never overwritten: refused with exit 2 before any work, the file unchanged, nothing else written.
SUM=$(md5sum < map.png)
expect 2 "map.png exists: relate does not overwrite it" -- "$RELATE" "${EMB[@]}" --tsne=map.png
expect 2 "map.png exists: relate does not overwrite it" -- "$RELATE" "${EMB[@]}" --tsne=map.png --out=f.npy
[ "$(md5sum < map.png)" = "$SUM" ] || fail "the refused run changed map.png"
[ -e f.npy ] && fail "a refused run wrote f.npy"

# With --out: the features and labels as before, and the map from the same features.
"$RELATE" "${EMB[@]}" --tsne=map3.png --out=f.npy > both.txt 2> both.err || fail "--out with --tsne: $(cat both.err)"
grep -q "^f.npy: 10000 x 64 float32 features" both.txt && grep -q "^map3.png: t-SNE of 300 points" both.txt \
  && [ -s f_labels.npy ] && echo "ok: --out and --tsne together: $(tail -1 both.txt)" || fail "--out with --tsne: $(cat both.txt)"

expect 2 "perplexity expects a positive number, got 'abc'" -- "$RELATE" "${EMB[@]}" --tsne=x.png --perplexity=abc
expect 2 "perplexity 300 needs more points than that: --tsne would map 300" -- "$RELATE" "${EMB[@]}" --tsne=x.png \
  --perplexity=300
expect 2 "out or --tsne are required" -- "$RELATE" embed --dataset=fashionmnist --checkpoint=$CK
expect 2 "tsne names the same file as --out" -- "$RELATE" "${EMB[@]}" --tsne=g.npy --out=g.npy
[ -e x.png ] && fail "a refused map was written"

[ $FAILS -eq 0 ] && echo "e2e_tsne: all checks passed" || echo "e2e_tsne: $FAILS check(s) failed"
exit $((FAILS > 0))
