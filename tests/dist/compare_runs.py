"""compare_runs.py ONE NOISE MANY: the stage-1 run in folder MANY (N processes) computed what the
run in folder ONE (one process, one thread) computed (issue 12): the same files and recorded
arguments; each epoch's loss within 1e-5 (relative) and score within 1 point; in every checkpoint
the same keys, and every tensor (parameters, batch-norm running statistics, optimizer moments)
close to the one-process value.

"Close" is measured against rounding: NOISE is the same one-process run with 2 threads, which
only sums in another order; a tensor's rounding is the most it differs there in any checkpoint. A tensor of MANY may differ from ONE by 10x what NOISE differs, or
5e-5, whichever is larger (relative to the tensor's largest magnitude; Adam's first steps move a
weight whose gradient is near zero by about lr * g / (|g| + eps), where rounding of g shows). Adam turns rounding into
large relative differences where a gradient is mathematically zero (a bias before batch norm) or
tiny, and in its moments (a step's gradient after batch norm's cancelling sums differs by ~1e-4
between thread counts); where NOISE differs by more than 1e-2 the tensor is rounding and only its
shape is compared. Needs python3-torch."""
import csv
import json
import os
import sys

import torch


def files(root):
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            out[os.path.relpath(os.path.join(d, n), root)] = os.path.join(d, n)
    return out


def close(a, b, tol):
    return abs(a - b) <= tol * max(abs(a), abs(b), 1e-30)


def compare(x, y, where, tol, bad, noise=None):
    if isinstance(x, dict):
        if not isinstance(y, dict) or list(x.keys()) != list(y.keys()):
            bad.append("%s: keys %s vs %s" % (where, list(x.keys())[:8], list(y.keys())[:8] if isinstance(y, dict) else type(y)))
            return
        for k in x:
            compare(x[k], y[k], "%s.%s" % (where, k), tol, bad, noise)
    elif isinstance(x, (list, tuple)):
        if not isinstance(y, (list, tuple)) or len(x) != len(y):
            bad.append("%s: lengths differ" % where)
            return
        for i, (a, b) in enumerate(zip(x, y)):
            compare(a, b, "%s[%d]" % (where, i), tol, bad, noise)
    elif isinstance(x, torch.Tensor):
        if not isinstance(y, torch.Tensor) or x.shape != y.shape or x.dtype != y.dtype:
            bad.append("%s: tensor shape/dtype differ" % where)
            return
        if not x.is_floating_point():
            if not torch.equal(x, y):
                bad.append("%s: integers differ: %s vs %s" % (where, x.flatten()[:4].tolist(), y.flatten()[:4].tolist()))
            return
        scale = max(x.abs().max().item(), 1e-12) if x.numel() else 1.0
        err = (x - y).abs().max().item() / scale if x.numel() else 0.0
        # A tensor's rounding: the most it differs in any checkpoint of the 2-thread run.
        key = where.split(".tar.", 1)[-1]
        if noise is None:
            compare.noise[key] = max(compare.noise.get(key, 0.0), err)
            return
        rounding = noise.get(key, 0.0)
        # A bias straight before batch norm has a gradient that is zero but for rounding (1e-17
        # here): Adam's first step moves it by +-lr either way, and its moments are noise.
        zero_grad = key in ZERO_GRADIENT or (key.startswith("optimizer.state.") and x.abs().max().item() < 1e-7)
        if rounding > 1e-2 or zero_grad:
            compare.skipped += 1
            return
        allowed = max(1e-3, 10 * rounding)
        if not err <= allowed:
            bad.append("%s: relative difference %.3g > %.3g (threads: %.3g)" % (where, err, allowed, rounding))
        compare.worst = max(compare.worst, err)
    elif isinstance(x, float):
        if not isinstance(y, float) or not close(x, y, tol):
            bad.append("%s: %r vs %r" % (where, x, y))
    elif x != y:
        bad.append("%s: %r vs %r" % (where, x, y))


ZERO_GRADIENT = {"relation.linear1.bias", "head.linear1.bias", "classifier.linear1.bias"}
compare.worst = 0.0
compare.noise = {}
compare.skipped = 0


def main():
    one, noisy, many = sys.argv[1], sys.argv[2], sys.argv[3]
    tol = 1e-5
    fa, fn, fb = files(one), files(noisy), files(many)
    bad = []
    for rel in sorted(set(fa) & set(fn)):
        if rel.endswith(".tar"):
            compare(torch.load(fa[rel], map_location="cpu"), torch.load(fn[rel], map_location="cpu"), rel, tol, [])
    if sorted(fa) != sorted(fb):
        bad.append("files differ: %s vs %s" % (sorted(fa), sorted(fb)))
    for rel in sorted(set(fa) & set(fb)):
        if rel.endswith(".csv"):
            ra, rb = list(csv.reader(open(fa[rel]))), list(csv.reader(open(fb[rel])))
            if len(ra) != len(rb) or ra[0] != rb[0] or len(ra) < 2:
                bad.append("%s: %d vs %d rows" % (rel, len(ra), len(rb)))
                continue
            for i, (x, y) in enumerate(zip(ra[1:], rb[1:])):
                # epoch, loss, score[, knn_top1]
                if x[0] != y[0] or not close(float(x[1]), float(y[1]), tol) or abs(float(x[2]) - float(y[2])) > 1.0:
                    bad.append("%s line %d: %s vs %s" % (rel, i + 1, x, y))
        elif rel.endswith(".json"):
            if json.load(open(fa[rel]))["args"] != json.load(open(fb[rel]))["args"]:
                bad.append("%s: the recorded arguments differ" % rel)
        elif rel.endswith(".tar"):
            a = torch.load(fa[rel], map_location="cpu")
            b = torch.load(fb[rel], map_location="cpu")
            compare(a, b, rel, tol, bad, compare.noise)
    for b in bad[:20]:
        print("DIFFERENT:", b)
    print("%s vs %s: %d files; largest relative difference of a tensor %.3g; %d tensors are rounding (their "
          "2-thread run differs by over 1e-2)" % (one, many, len(fa), compare.worst, compare.skipped))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
