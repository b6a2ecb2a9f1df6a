"""compare_runs.py ONE MANY: the stage-1 run in folder MANY (N processes) computed what the run in
folder ONE (one process) computed (issue 12): the same files and recorded arguments; each epoch's
loss within 1e-5 (relative) and score within 1 point; in every checkpoint the same keys, and every
tensor (parameters, batch-norm running statistics, optimizer moments) within 5e-3 of the
one-process value, relative to the tensor's largest magnitude (measured: at most 2.4e-4, and one
process differs from itself by as much when only OpenBLAS's sgemm kernel changes, docs/scaling.md;
a gradient off by a factor, or batch norm on a share only, moves them by tens of percent). It
prints the largest difference of the parameters and BN statistics and of the optimizer state.

Not compared: a bias straight before a batch norm and that norm's running mean, which adds the
bias in: the bias's gradient is zero but for rounding (1e-17), so Adam moves it by +-lr either
way; nor that bias's Adam moments. Needs python3-torch."""
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


def compare(x, y, where, tol, bad):
    if isinstance(x, dict):
        if not isinstance(y, dict) or list(x.keys()) != list(y.keys()):
            bad.append("%s: keys %s vs %s" % (where, list(x.keys())[:8], list(y.keys())[:8] if isinstance(y, dict) else type(y)))
            return
        for k in x:
            compare(x[k], y[k], "%s.%s" % (where, k), tol, bad)
    elif isinstance(x, (list, tuple)):
        if not isinstance(y, (list, tuple)) or len(x) != len(y):
            bad.append("%s: lengths differ" % where)
            return
        for i, (a, b) in enumerate(zip(x, y)):
            compare(a, b, "%s[%d]" % (where, i), tol, bad)
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
        key = where.split(".tar.", 1)[-1]
        if key in ZERO_GRADIENT or ".".join(key.split(".")[:3]) in compare.zero_states:
            compare.skipped += 1
            return
        if not err <= TENSOR_TOL:
            bad.append("%s: relative difference %.3g > %g" % (where, err, TENSOR_TOL))
        part = "optimizer" if key.startswith("optimizer.") else "model"
        if err >= compare.worst_of[part][0]:
            compare.worst_of[part] = (err, key)
        compare.worst = max(compare.worst, err)
    elif isinstance(x, float):
        if not isinstance(y, float) or not close(x, y, tol):
            bad.append("%s: %r vs %r" % (where, x, y))
    elif x != y:
        bad.append("%s: %r vs %r" % (where, x, y))


# Biases straight before a batch norm, and that batch norm's running mean, which adds the bias in.
TENSOR_TOL = 5e-3
ZERO_GRADIENT = {h + t for h in ("relation.", "head.", "classifier.") for t in ("linear1.bias", "bn1.running_mean")}
compare.worst = 0.0
compare.worst_of = {"model": (0.0, ""), "optimizer": (0.0, "")}
compare.zero_states = set()


def zero_gradient_states(ckpt):
    """optimizer.state.<i> of the ZERO_GRADIENT parameters: relate's Adam holds the backbone's
    trainable tensors, then the head's, in state-dict order."""
    if not isinstance(ckpt, dict) or "optimizer" not in ckpt or "backbone" not in ckpt:
        return set()
    heads = [k for k, v in ckpt.items() if k not in ("backbone", "optimizer") and isinstance(v, dict)]
    names = []
    for part in ["backbone"] + heads[:1]:
        names += ["%s.%s" % (part, k) for k in ckpt[part]
                  if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    return {"optimizer.state.%d" % i for i, n in enumerate(names) if n in ZERO_GRADIENT}
compare.skipped = 0


def main():
    one, many = sys.argv[1], sys.argv[2]
    tol = 1e-5
    fa, fb = files(one), files(many)
    bad = []
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
            compare.zero_states = zero_gradient_states(a)
            compare(a, b, rel, tol, bad)
    for b in bad[:20]:
        print("DIFFERENT:", b)
    print("%s vs %s: %d files; largest relative difference of a tensor %.3g (%d not compared); "
          "parameters and BN statistics %.3g (%s), optimizer state %.3g (%s)"
          % (one, many, len(fa), compare.worst, compare.skipped, *compare.worst_of["model"],
             *compare.worst_of["optimizer"]))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
