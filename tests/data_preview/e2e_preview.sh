#!/usr/bin/env bash
# e2e_preview.sh RELATE: the labelled `relate data --preview` (src/cli/draw_preview.c) on real
# Fashion-MNIST (Debian's dataset-fashion-mnist) and on image folders (with classes, and
# unlabelled): the page size the layout of src/cli/draw.h gives for the rows, views and
# magnification; decoded by PIL (/usr/bin/python3, python3-pil): every cell equal to the bare grid
# (--labels=False) at the same zoom, pixel for pixel; dark text in the title, heading and row-label
# bands; the rows' classes ("unlabelled" without labels); determinism; the flag errors.
set -uo pipefail
RELATE=$(realpath "$1")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
FAILS=0
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
ok() { echo "ok: $*"; }
# expect CODE PATTERN -- command...: the exit status and a stderr pattern.
expect() {
  local code=$1 pattern=$2
  shift 3
  "$@" > out.txt 2> err.txt
  local rc=$?
  if [ $rc -ne "$code" ] || ! grep -q -- "$pattern" err.txt; then
    fail "'$*' exited $rc (want $code), stderr: $(cat err.txt)"
  else
    ok "$* -> $rc: $(head -1 err.txt)"
  fi
}
# The layout of src/cli/draw.h: grid at (LEFT, TOP), page max(MIN_WIDTH, LEFT + gw z + MARGIN) x
# (TOP + gh z + MARGIN); the library's grid is 2 + columns (S + 2) by 2 + rows (S + 2) (GAP 2).
LEFT=132 TOP=76 MARGIN=12 MIN_WIDTH=560
page() { # S rows columns z -> "W x H"
  local gw=$((2 + $3 * ($1 + 2))) gh=$((2 + $2 * ($1 + 2)))
  local w=$((LEFT + gw * $4 + MARGIN))
  [ $w -lt $MIN_WIDTH ] && w=$MIN_WIDTH
  echo "$w x $((TOP + gh * $4 + MARGIN))"
}
HAVE_PIL=0
if /usr/bin/python3 -c "import PIL" 2> /dev/null; then
  HAVE_PIL=1
elif [ "${RELATE_REQUIRE_ALL:-0}" = 1 ]; then
  fail "python3-pil is missing (RELATE_REQUIRE_ALL=1)"
else
  echo "SKIP: the PNG checks need python3-pil (/usr/bin/python3)"
fi
# check_png LABELLED BARE S ROWS COLUMNS Z: sizes, cells equal to the bare grid's, text bands.
check_png() {
  [ $HAVE_PIL = 1 ] || return 0
  /usr/bin/python3 - "$@" << 'EOF'
import sys
from PIL import Image
lab_path, bare_path = sys.argv[1], sys.argv[2]
S, rows, cols, z = map(int, sys.argv[3:7])
LEFT, TOP, MARGIN, MIN_WIDTH, GAP = 132, 76, 12, 560, 2
lab, bare = Image.open(lab_path), Image.open(bare_path)
lab.load(), bare.load()
gw, gh = GAP + cols * (S + GAP), GAP + rows * (S + GAP)
assert lab.mode == 'RGB' and bare.mode == 'RGB', (lab.mode, bare.mode)
assert bare.size == (gw * z, gh * z), (bare.size, gw * z, gh * z)
assert lab.size == (max(MIN_WIDTH, LEFT + gw * z + MARGIN), TOP + gh * z + MARGIN), lab.size
# Every cell of the labelled page is the bare grid's cell at the same zoom, pixel for pixel.
side, pitch = S * z, (S + GAP) * z
for r in range(rows):
    for c in range(cols):
        x, y = GAP * z + c * pitch, GAP * z + r * pitch
        a = lab.crop((LEFT + x, TOP + y, LEFT + x + side, TOP + y + side)).tobytes()
        b = bare.crop((x, y, x + side, y + side)).tobytes()
        assert a == b, ('cell', r, c)
def dark(box):  # pixels of text: all three channels under 100
    return sum(1 for p in lab.crop(box).getdata() if max(p) < 100)
W = lab.size[0]
assert dark((0, 0, W, 30)) > 150, ('title', dark((0, 0, W, 30)))
assert dark((0, 30, W, 52)) > 100, ('subtitle', dark((0, 30, W, 52)))
for c in range(cols):  # a heading over every column
    x = LEFT + GAP * z + c * pitch
    assert dark((x - GAP * z, 52, x + side + GAP * z, TOP)) > 5, ('heading', c)
for r in range(rows):  # a label left of every row
    y = TOP + GAP * z + r * pitch
    assert dark((0, y, LEFT, y + side)) > 10, ('row label', r)
# Nothing but the frames and white between the labels and the grid, and right of the grid.
assert set(lab.crop((LEFT - 8 + GAP * z, TOP, LEFT + GAP * z - 1, TOP + gh * z)).getdata()) == {(255, 255, 255)}
if W > LEFT + gw * z:
    assert set(lab.crop((LEFT + gw * z, TOP, W, lab.size[1])).getdata()) == {(255, 255, 255)}
print(f'{lab_path}: {lab.size[0]} x {lab.size[1]} RGB; {rows} x {cols} cells of {side} px equal to the bare grid')
EOF
}

# preview NAME S ROWS COLUMNS Z CLASSES_PATTERN ARGS...: the labelled preview and the bare grid at
# the same zoom; the printed size, the layout line and the rows' classes; the PNG checks.
preview() {
  local name=$1 S=$2 rows=$3 cols=$4 z=$5 classes=$6
  shift 6
  if ! "$RELATE" data "$@" --preview=$name.png > $name.txt 2> $name.err; then
    fail "$name: $(cat $name.err)"; return
  fi
  "$RELATE" data "$@" --preview=${name}_bare.png --labels=False --zoom=$z > ${name}_bare.txt 2>&1 \
    || { fail "$name bare: $(cat ${name}_bare.txt)"; return; }
  grep -q "^wrote $name.png: $(page $S $rows $cols $z) pixels$" $name.txt \
    && ok "$name: $(head -1 $name.txt)" || fail "$name: want $(page $S $rows $cols $z): $(cat $name.txt)"
  local grid="$((2 + cols * (S + 2))) x $((2 + rows * (S + 2)))"
  grep -q "^labelled: the grid ($grid at zoom 1) magnified ${z}x at (132, 76)" $name.txt || fail "$name: the layout line: $(cat $name.txt)"
  grep -qE "^rows show images( [0-9]+ \(($classes)\)){$rows}$" $name.txt \
    && ok "$name: $(tail -1 $name.txt)" || fail "$name: the rows' classes: $(tail -1 $name.txt)"
  [ -e $name.png.tmp ] && fail "$name: a temporary file was left behind"
  check_png $name.png ${name}_bare.png $S $rows $cols $z && ok "$name.png decodes (PIL), cells equal the bare grid's" \
    || fail "$name.png"
}

# Image folders: 48x40 PNGs of two grey levels (a bar whose height depends on the image, written
# with Python's zlib), a class with a name too long for the label column, and a folder of
# unlabelled images.
PY=/usr/bin/python3; [ -x $PY ] || PY=python3
png() { # FILE TOP_GREY BOTTOM_GREY SPLIT_ROW
  $PY -c '
import struct, sys, zlib
path, a, b, split = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
raw = b"".join(b"\0" + bytes([a if y < split else b]) * 48 * 3 for y in range(40))
chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 48, 40, 8, 2, 0, 0, 0))
                       + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
' "$@"
}
LONG=a_class_whose_name_is_much_too_long_for_the_label_column
for split in train test; do
  shift_row=0; [ $split = test ] && shift_row=4
  for cls in dark light $LONG; do
    mkdir -p folder/$split/$cls
    for k in 1 2 3; do
      case $cls in dark) a=30 b=90 ;; light) a=220 b=160 ;; *) a=255 b=0 ;; esac
      png folder/$split/$cls/$k.png $a $b $((8 * k + shift_row))
    done
  done
done
mkdir -p unl
for k in 1 2 3 4; do png unl/$k.png $((40 * k)) 250 $((6 * k)); done

# 64 and over: no magnification; a grid narrower than the page's minimum width.
preview folder 64 4 3 1 "dark|light|$LONG" --dataset=folder:folder --method=simclr --rows=4
# 32: magnified twice; rotationnet's headings; an unlabelled stage-1 split.
preview unl 32 3 5 2 "unlabelled" --dataset=folder:unl@32 --method=rotationnet --rows=3
# 20 (more than 3x to reach 64 pixels), the test split with T6.
preview small 20 2 2 4 "dark|light|$LONG" --dataset=folder:folder@20 --method=test --rows=2

if ! "$RELATE" data --dataset=fashionmnist > /dev/null 2>&1; then
  if [ "${RELATE_REQUIRE_ALL:-0}" = 1 ]; then
    fail "Fashion-MNIST is missing (RELATE_REQUIRE_ALL=1): apt-get install dataset-fashion-mnist"
  else
    echo "SKIP: the Fashion-MNIST previews need it (apt-get install dataset-fashion-mnist)"
  fi
else
  FM="T-shirt/top|Trouser|Pullover|Dress|Coat|Sandal|Shirt|Sneaker|Bag|Ankle boot"
  # 28: magnified 3 times; relationnet's 8 views.
  preview fm 28 3 9 3 "$FM" --dataset=fashionmnist --rows=3
  # An explicit --zoom=1: the labels on one line beside 28-pixel cells.
  preview fm1 28 2 4 1 "$FM" --dataset=fashionmnist --rows=2 --views=3 --zoom=1 --epoch=2
  # Deterministic: the same command gives the same bytes.
  "$RELATE" data --dataset=fashionmnist --rows=3 --preview=fm_again.png > /dev/null 2>&1 \
    && cmp -s fm.png fm_again.png && ok "the same command draws the same PNG, byte for byte" \
    || fail "a second preview differs from the first"
  # A page larger than cairo draws is refused with what to change, and nothing is written.
  expect 2 "use fewer rows or views, a smaller --zoom, or --labels=False" -- "$RELATE" data --dataset=fashionmnist \
    --preview=huge.png --rows=256 --views=64 --zoom=16
  [ -e huge.png ] || [ -e huge.png.tmp ] && fail "the refused preview wrote a file"
fi

expect 2 "--labels must be True or False, got 'maybe'" -- "$RELATE" data --dataset=folder:folder \
  --preview=x.png --labels=maybe
expect 2 "--labels only applies with --preview FILE.png" -- "$RELATE" data --dataset=folder:folder --labels=False
expect 2 "--zoom must be between 0 and 16, got 17" -- "$RELATE" data --dataset=folder:folder --preview=x.png --zoom=17
[ -e x.png ] && fail "a refused preview wrote x.png"

[ $FAILS = 0 ] && echo "e2e_preview: all checks passed" || { echo "e2e_preview: $FAILS failure(s)"; exit 1; }
