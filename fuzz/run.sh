#!/usr/bin/env bash
# fuzz/run.sh: runs every libFuzzer harness of fuzz/ for SECONDS each, one after the other, from
# a fresh seed corpus that each harness writes itself (fuzz_<name> --write-seeds DIR), and prints
# one line per harness: name, executions, executions per second, coverage (libFuzzer's cov:
# edges), corpus size, result.
# Exits 1 when any harness found something (crash, leak, timeout, out-of-memory), 2 on a usage
# or setup error, 0 otherwise. Builds nothing: configure and build first (fuzz/README.md):
#
#   CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRELATE_SANITIZE=ON \
#       -DRELATE_FUZZ=ON -DRELATE_BUILD_BENCH=OFF -DBUILD_TESTING=OFF
#   cmake --build build-fuzz -j2
#   bash fuzz/run.sh 30 build-fuzz
#
# Environment:
#   RELATE_FUZZ_ONLY="pickle zip"  run only these harnesses (names without fuzz_)
#   RELATE_FUZZ_OUT=DIR            keep logs, corpora and findings there (default: a fresh
#                                  folder under /tmp, printed at the end, kept)
# Findings are left in OUT/<name>/findings/ (libFuzzer's crash-*, leak-*, timeout-*, oom-*;
# slow-unit-* files, inputs that took about the timeout, are listed but do not fail the run);
# reproduce one with: BUILD_DIR/fuzz/fuzz_<name> FILE
set -u

usage() {
    echo "usage: bash fuzz/run.sh SECONDS [BUILD_DIR]   (BUILD_DIR defaults to build-fuzz)" >&2
    exit 2
}
[ $# -ge 1 ] && [ $# -le 2 ] || usage
SECONDS_EACH=$1
case "$SECONDS_EACH" in '' | *[!0-9]*) usage ;; esac
[ "$SECONDS_EACH" -ge 1 ] || usage

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BUILD_DIR=${2:-build-fuzz}
# a relative BUILD_DIR: from the current folder when it is there, else from the repository root
if [ -d "$BUILD_DIR" ]; then
    BUILD_DIR=$(cd "$BUILD_DIR" && pwd)
else
    case "$BUILD_DIR" in /*) ;; *) BUILD_DIR=$ROOT/$BUILD_DIR ;; esac
fi
BIN=$BUILD_DIR/fuzz

ALL="pickle zip checkpoint_zip checkpoint_legacy safetensors image cifar_bin cifar_pickle stl10 idx tiny folder plot_log"
NAMES=${RELATE_FUZZ_ONLY:-$ALL}

missing=""
for n in $NAMES; do
    [ -x "$BIN/fuzz_$n" ] || missing="$missing fuzz_$n"
done
if [ -n "$missing" ]; then
    echo "fuzz/run.sh: not built in $BIN:$missing" >&2
    echo "build with: CC=clang cmake -S . -B $BUILD_DIR -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRELATE_SANITIZE=ON -DRELATE_FUZZ=ON && cmake --build $BUILD_DIR -j2" >&2
    exit 2
fi

OUT=${RELATE_FUZZ_OUT:-}
if [ -z "$OUT" ]; then
    OUT=$(mktemp -d /tmp/relate-fuzz.XXXXXX) || exit 2
fi
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)

# Scratch folders of the path-based readers (checkpoints, datasets): RAM when there is some.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    SCRATCH=$(mktemp -d /dev/shm/relate-fuzz.XXXXXX) || exit 2
else
    SCRATCH=$(mktemp -d "$OUT/scratch.XXXXXX") || exit 2
fi
trap 'rm -rf "$SCRATCH"' EXIT

# UBSan findings abort (the build also has -fno-sanitize-recover=undefined); leaks are
# reported (LeakSanitizer, libFuzzer's -detect_leaks defaults to 1 under ASan).
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:allocator_may_return_null=0:detect_stack_use_after_return=0:symbolize=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:report_error_type=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-}"
export OMP_NUM_THREADS=1   # the folder readers decode with OpenMP; one core per harness
unset RELATE_FUZZ_DEBUG

dict_of() {
    case "$1" in
    pickle | cifar_pickle) echo pickle ;;
    zip) echo zip ;;
    checkpoint_zip | checkpoint_legacy) echo checkpoint ;;
    safetensors) echo safetensors ;;
    image | tiny | folder) echo image ;;
    idx) echo idx ;;
    *) echo "" ;;
    esac
}

summary=$OUT/summary.txt
printf '%-18s %12s %8s %6s %7s  %s\n' harness execs exec/s cov corpus result | tee "$summary"
failed=0
for n in $NAMES; do
    h=$BIN/fuzz_$n
    d=$OUT/$n
    rm -rf "$d"
    mkdir -p "$d/corpus" "$d/findings" "$d/seeds"
    export RELATE_FUZZ_TMP=$SCRATCH/$n
    mkdir -p "$RELATE_FUZZ_TMP"
    if ! "$h" --write-seeds "$d/seeds" >"$d/seeds.log" 2>&1; then
        printf '%-18s %12s %8s %6s %7s  %s\n' "$n" - - - - "SETUP FAILED (seeds, see $d/seeds.log)" | tee -a "$summary"
        failed=1
        continue
    fi
    dict=$(dict_of "$n")
    dict_arg=()
    [ -n "$dict" ] && [ -f "$HERE/dict/$dict.dict" ] && dict_arg=(-dict="$HERE/dict/$dict.dict")
    # -malloc_limit_mb=2048 catches any single allocation over 2 GB (the bombs); the RSS limit is
    # higher because ASan's quarantine and allocator caches grow over a long run (a CI run stopped
    # at 2 GB RSS on an input that alone runs in 1 ms with 24 MB live).
    # exec in a subshell: the harness keeps the subshell's pid, recorded for the cleanup below
    (
        echo "$BASHPID" >"$d/pid"
        exec "$h" -max_total_time="$SECONDS_EACH" -rss_limit_mb=4096 -malloc_limit_mb=2048 -timeout=10 -print_final_stats=1 \
            -artifact_prefix="$d/findings/" ${dict_arg[@]+"${dict_arg[@]}"} "$d/corpus" "$d/seeds"
    ) >"$d/fuzz.log" 2>&1
    rc=$?
    # libFuzzer leaves with _exit, so LLVM's OpenMP runtime cannot remove its registration file
    pid=$(cat "$d/pid" 2>/dev/null)
    [ -n "$pid" ] && rm -f "/dev/shm/__KMP_REGISTERED_LIB_${pid}_"*
    rm -rf "$RELATE_FUZZ_TMP"
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$d/fuzz.log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$d/fuzz.log" | tail -1)
    if [ -z "$execs" ]; then # killed before the final stats: the last status line
        execs=$(grep -oE '^#[0-9]+' "$d/fuzz.log" | tail -1 | tr -d '#')
        rate=$(grep -oE 'exec/s: [0-9]+' "$d/fuzz.log" | tail -1 | grep -oE '[0-9]+')
    fi
    # coverage and corpus size from libFuzzer's last status line ("#N DONE cov: C ft: F corp: K/S ...")
    status=$(grep -E '^#[0-9]+.*cov: ' "$d/fuzz.log" | tail -1)
    cov=$(echo "$status" | grep -oE 'cov: [0-9]+' | grep -oE '[0-9]+')
    corpus=$(echo "$status" | grep -oE 'corp: [0-9]+' | grep -oE '[0-9]+')
    findings=$(find "$d/findings" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
    slow=$(find "$d/findings" -type f -name 'slow-unit-*' | wc -l)
    if [ "$rc" -eq 0 ] && [ "$findings" -eq 0 ]; then
        result=ok
        # inputs that took about -timeout seconds without exceeding it: reported, not failed
        [ "$slow" -gt 0 ] && result="ok, but $slow slow input(s) (about 10 s each) in $d/findings"
    else
        failed=1
        what=$(grep -m1 -oE 'ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer): [a-zA-Z0-9_ -]+|runtime error: [^:]*' "$d/fuzz.log" | head -1)
        result="FOUND ($findings file(s), rc $rc${what:+: $what}) see $d/fuzz.log"
    fi
    printf '%-18s %12s %8s %6s %7s  %s\n' "$n" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${corpus:-?}" "$result" | tee -a "$summary"
done
echo "logs, corpora and findings: $OUT (summary: $summary)"
exit $failed
