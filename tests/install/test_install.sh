#!/bin/bash
# Installs relate into a temporary prefix and uses it as a library user would: pkg-config,
# the public headers, librelate.so through its soname, librelate.a with --static. The example
# must print the same features `relate embed` writes for the same checkpoint.
set -euo pipefail
CMAKE=$1 BUILD=$2 SRC=$3 RELATE=$4 CC=$5
fail() { echo "FAIL: $*"; exit 1; }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
P=$W/prefix

"$CMAKE" --install "$BUILD" --prefix "$P" > "$W/install.log" || { cat "$W/install.log"; fail "cmake --install"; }
LIB=$P/lib
[ -d "$LIB" ] || LIB=$(dirname "$(find "$P" -name librelate.so -print -quit)")
for f in "$P/bin/relate" "$LIB/librelate.a" "$LIB/librelate.so" "$LIB/pkgconfig/relate.pc" \
         "$P/include/relate/train.h"; do
  [ -e "$f" ] || fail "$f was not installed"
done
soname=$(readelf -d "$LIB/librelate.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = librelate.so.0 ] || fail "soname is '$soname', expected librelate.so.0"
[ -e "$LIB/$soname" ] || fail "$LIB/$soname is missing"

# The library exports the functions of the public headers and nothing else.
nm -D --defined-only "$LIB/librelate.so" | awk '$2 == "T" {print $3}' | sed 's/@.*//' | sort -u > "$W/exported"
[ "$(wc -l < "$W/exported")" -gt 100 ] || fail "only $(wc -l < "$W/exported") functions exported"
while read -r sym; do
  grep -qw "$sym" "$P"/include/relate/*.h || fail "librelate.so exports $sym, which no public header declares"
done < "$W/exported"
grep -qx relate_backbone_from_file "$W/exported" || fail "relate_backbone_from_file is not exported"
! grep -qx relate_read_folder "$W/exported" || fail "an internal function (relate_read_folder) is exported"

export PKG_CONFIG_PATH=$LIB/pkgconfig
[ "$(pkg-config --modversion relate)" = "$(sed -n 's/^project(relate VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")" ] ||
  fail "pkg-config --modversion relate: $(pkg-config --modversion relate)"
# shellcheck disable=SC2046
"$CC" -std=c17 -Wall -Wextra -Werror "$SRC/examples/embed.c" $(pkg-config --cflags --libs relate) \
  -Wl,-rpath,"$LIB" -o "$W/embed_shared" || fail "examples/embed.c does not build against librelate.so"
readelf -d "$W/embed_shared" | grep -q "NEEDED.*librelate.so.0" || fail "the example does not load librelate.so.0"
# librelate.a with the dependencies relate.pc lists as private (shared, as Debian ships them;
# `pkg-config --static` would also ask for the static archives of libcurl's own dependencies).
# shellcheck disable=SC2046
"$CC" -std=c17 -Wall -Wextra -Werror "$SRC/examples/embed.c" $(pkg-config --cflags relate) -L"$LIB" \
  -Wl,-Bstatic -lrelate -Wl,-Bdynamic $(pkg-config --libs $(pkg-config --print-requires-private relate)) \
  $(sed -n 's/^Libs.private: //p' "$LIB/pkgconfig/relate.pc") -o "$W/embed_static" ||
  fail "examples/embed.c does not link librelate.a with the dependencies relate.pc names"
! readelf -d "$W/embed_static" | grep -q "librelate" || fail "the static example still needs librelate.so"

# A real checkpoint, its features by the example and by `relate embed`.
cd "$W"
"$RELATE" train_unsupervised --dataset=fashionmnist --backbone=conv4 --method=standard --seed=1 --epochs=1 \
  --limit_train_batches=3 --data_size=64 > train.log 2>&1 || { cat train.log; fail "training the checkpoint"; }
CK=$(find checkpoint -name 'standard_fashionmnist_conv4_seed_1_epoch_1.tar' -print -quit)
[ -n "$CK" ] || { find checkpoint; fail "no checkpoint"; }
"$W/embed_shared" "$CK" fashionmnist ./data 5 > shared.txt || fail "the example (shared) failed"
"$W/embed_static" "$CK" fashionmnist ./data 5 > static.txt || fail "the example (static) failed"
cmp -s shared.txt static.txt || fail "the shared and static examples print different features"
[ "$(grep -vc '^#' shared.txt)" = 5 ] || { cat shared.txt; fail "expected 5 feature lines"; }
"$RELATE" embed --checkpoint="$CK" --dataset=fashionmnist --split=test --out=feats.npy > embed.log ||
  fail "relate embed"
/usr/bin/python3 - <<'PY' || fail "the example's features differ from relate embed's"
import numpy as np
want = np.load("feats.npy")[:5]
labels = np.load("feats_labels.npy")[:5]
rows = [l.split() for l in open("shared.txt") if not l.startswith("#")]
got = np.array([[float(v) for v in r[2:]] for r in rows], dtype=np.float32)
assert [int(r[1]) for r in rows] == labels.tolist(), ([r[1] for r in rows], labels)
assert got.shape == want.shape, (got.shape, want.shape)
# The same computation, in batches of 64 here and 256 there: equal up to the batch's effect on
# the convolution's blocking (measured: 0 on this machine).
err = np.abs(got - want).max() / max(1.0, np.abs(want).max())
print("max relative difference", err)
assert err <= 1e-6, err
PY
# A wrong checkpoint is a clear error, not a crash.
echo "not a checkpoint" > foreign.tar
if "$W/embed_shared" foreign.tar fashionmnist ./data 2 > /dev/null 2> err.txt; then fail "a foreign file was accepted"; fi
grep -q foreign.tar err.txt || { cat err.txt; fail "the error does not name the file"; }
echo "PASS: install_library"
