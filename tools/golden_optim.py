"""golden_optim: writes tests/golden/optim.safetensors, torch.optim.Adam/SGD trajectories that src/optim/ must reproduce.
Not a test and not a schedule library: it only records PyTorch 1.13's single-tensor (foreach=False) updates; tests/optim/ compares.

Parameters (shared by every case, two groups):
  group 0: w0 [7,5], b0 [13];  group 1: w1 [3,4,2], w2 [37,29] (long enough for the vectorised path)
Tensors:
  init.<p>                      initial values
  grads.<k>.<p>                 gradient of step k = 1..5; grads.1.b0 and grads.2.b0 are absent: b0 has
                                grad None there, so its state is created late (lazy state, own step count)
  <case>.step<k>.<p>            values after step k
  <case>.exp_avg.<p>, <case>.exp_avg_sq.<p>, <case>.step.<p> (I64 [1])   Adam state after step 5
  <case>.momentum_buffer.<p>    SGD state after step 5 (momentum cases)
  standard.grads.<i>.<p>, standard.epoch<e>.<p>, standard.lr (F64 [E, 2])
                                the reference's `standard` schedule: SGD lr 0.1, momentum 0.9, E = 8 epochs of
                                2 steps, lr *= 0.1 at the start of epochs int(0.5E) and int(0.75E); lr as used in
                                each epoch; values after each epoch
__metadata__[<case>] is the case's settings as JSON (optimizer, lr and weight_decay per group, ...).
"""
import json
import os
import zlib

import torch

from golden_common import save_safetensors

PARAMS = [("w0", (7, 5), 0), ("b0", (13,), 0), ("w1", (3, 4, 2), 1), ("w2", (37, 29), 1)]
STEPS = 5
GRAD_SCALES = [1.0, 0.5, 2.0, 0.1, 1.0]  # varying magnitudes exercise the bias corrections
LATE = {(1, "b0"), (2, "b0")}            # (step, param) pairs whose grad is None

ADAM_CASES = {
    # large learning rates so the 1e-6 comparison sees the update, not just the initial values
    "adam": dict(lr=[0.05, 0.02], weight_decay=[0.0, 0.0]),
    "adam_wd": dict(lr=[0.05, 0.02], weight_decay=[1e-5, 1e-5]),
    "adam_wd_large": dict(lr=[0.05, 0.02], weight_decay=[0.1, 0.3]),
    "adam_finetune": dict(lr=[1e-3, 1e-4], weight_decay=[1e-5, 1e-5]),  # spec 5.2
}
SGD_CASES = {
    "sgd": dict(lr=[0.1, 0.05], weight_decay=[0.0, 0.0], momentum=0.9, dampening=0.0, nesterov=False),
    "sgd_wd": dict(lr=[0.1, 0.05], weight_decay=[1e-5, 1e-5], momentum=0.9, dampening=0.0, nesterov=False),
    "sgd_nesterov": dict(lr=[0.1, 0.05], weight_decay=[0.0, 0.0], momentum=0.9, dampening=0.0, nesterov=True),
    "sgd_nesterov_wd": dict(lr=[0.1, 0.05], weight_decay=[1e-5, 1e-5], momentum=0.9, dampening=0.0,
                            nesterov=True),
    "sgd_wd_large": dict(lr=[0.1, 0.05], weight_decay=[0.2, 0.05], momentum=0.9, dampening=0.0, nesterov=False),
    "sgd_dampening": dict(lr=[0.1, 0.05], weight_decay=[0.0, 0.0], momentum=0.9, dampening=0.3, nesterov=False),
    "sgd_plain": dict(lr=[0.1, 0.05], weight_decay=[0.01, 0.0], momentum=0.0, dampening=0.0, nesterov=False),
}
STANDARD = dict(epochs=8, steps_per_epoch=2, lr=0.1, momentum=0.9)


def _gen(name):
    # Per-purpose generator so adding a case leaves the other tensors unchanged.
    return torch.Generator().manual_seed(zlib.crc32(name.encode()) & 0x7FFFFFFF)


def _init():
    g = _gen("init")
    return {n: torch.randn(shape, generator=g) for n, shape, _ in PARAMS}


def _grads(prefix, count):
    g = _gen(prefix)
    out = []
    for k in range(1, count + 1):
        scale = GRAD_SCALES[(k - 1) % len(GRAD_SCALES)]
        out.append({n: torch.randn(shape, generator=g) * scale for n, shape, _ in PARAMS})
    return out


def _leaves(init):
    return {n: init[n].clone().requires_grad_(True) for n, _, _ in PARAMS}


def _groups(leaves, cfg):
    groups = []
    for gi in range(2):
        groups.append({"params": [leaves[n] for n, _, grp in PARAMS if grp == gi],
                       "lr": cfg["lr"][gi], "weight_decay": cfg["weight_decay"][gi]})
    return groups


def _run(case, opt, leaves, grads, out):
    for k, gset in enumerate(grads, start=1):
        for n, _, _ in PARAMS:
            leaves[n].grad = None if (k, n) in LATE else gset[n].clone()
        opt.step()
        for n, _, _ in PARAMS:
            out["%s.step%d.%s" % (case, k, n)] = leaves[n].detach().clone()


def _standard(init, out):
    cfg = STANDARD
    E, S = cfg["epochs"], cfg["steps_per_epoch"]
    leaves = _leaves(init)
    groups = [{"params": [leaves[n] for n, _, grp in PARAMS if grp == gi]} for gi in range(2)]
    opt = torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg["momentum"], dampening=0,
                          weight_decay=0, nesterov=False, foreach=False)
    grads = _grads("standard", E * S)
    lrs = torch.zeros(E, 2, dtype=torch.float64)
    for epoch in range(E):
        # the reference's train(): decay by hand at the start of the epoch
        if epoch == int(E * 0.5) or epoch == int(E * 0.75):
            for g in opt.param_groups:
                g["lr"] *= 0.1
        for gi, g in enumerate(opt.param_groups):
            lrs[epoch, gi] = g["lr"]
        for s in range(S):
            gset = grads[epoch * S + s]
            for n, _, _ in PARAMS:
                leaves[n].grad = gset[n].clone()
            opt.step()
        for n, _, _ in PARAMS:
            out["standard.epoch%d.%s" % (epoch, n)] = leaves[n].detach().clone()
    for i, gset in enumerate(grads):
        for n, _, _ in PARAMS:
            out["standard.grads.%d.%s" % (i, n)] = gset[n]
    out["standard.lr"] = lrs
    return dict(cfg, milestones=[int(E * 0.5), int(E * 0.75)])


def build():
    init = _init()
    grads = _grads("grads", STEPS)
    out, meta = {}, {}
    for n, _, _ in PARAMS:
        out["init." + n] = init[n]
    for k, gset in enumerate(grads, start=1):
        for n, _, _ in PARAMS:
            if (k, n) not in LATE:
                out["grads.%d.%s" % (k, n)] = gset[n]

    for case, cfg in ADAM_CASES.items():
        leaves = _leaves(init)
        opt = torch.optim.Adam(_groups(leaves, cfg), betas=(0.9, 0.999), eps=1e-8, amsgrad=False,
                               foreach=False)
        _run(case, opt, leaves, grads, out)
        for n, _, _ in PARAMS:
            st = opt.state[leaves[n]]
            out["%s.exp_avg.%s" % (case, n)] = st["exp_avg"]
            out["%s.exp_avg_sq.%s" % (case, n)] = st["exp_avg_sq"]
            out["%s.step.%s" % (case, n)] = torch.tensor([int(st["step"].item())], dtype=torch.int64)
        meta[case] = dict(cfg, optimizer="adam", betas=[0.9, 0.999], eps=1e-8)

    for case, cfg in SGD_CASES.items():
        leaves = _leaves(init)
        opt = torch.optim.SGD(_groups(leaves, cfg), lr=cfg["lr"][0], momentum=cfg["momentum"],
                              dampening=cfg["dampening"], nesterov=cfg["nesterov"], foreach=False)
        _run(case, opt, leaves, grads, out)
        if cfg["momentum"] != 0:
            for n, _, _ in PARAMS:
                out["%s.momentum_buffer.%s" % (case, n)] = opt.state[leaves[n]]["momentum_buffer"]
        meta[case] = dict(cfg, optimizer="sgd")

    meta["standard"] = _standard(init, out)
    meta = {k: json.dumps(v, sort_keys=True, separators=(",", ":")) for k, v in meta.items()}
    meta["__cases__"] = ",".join(list(ADAM_CASES) + list(SGD_CASES))
    meta["__generator__"] = "tools/golden_optim.py, torch %s" % torch.__version__
    return out, meta


def make(out_dir):
    torch.set_num_threads(1)
    out, meta = build()
    path = os.path.join(out_dir, "optim.safetensors")
    save_safetensors(path, out, meta)
    print("%s: %d tensors, %d bytes" % (path, len(out), os.path.getsize(path)))
    return path


if __name__ == "__main__":
    make(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "golden"))
