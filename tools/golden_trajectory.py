"""golden_trajectory: writes tests/golden/trajectory.safetensors, multi-step training trajectories of every stage-1
method and of stage 2 (linear evaluation, finetuning) computed with the reference's own PyTorch step, for relate to
follow step by step, with envelopes that say how far other correct float32 computations of the same steps drift
from it (see "Envelopes").
Not a test (tests/trajectory/test_trajectory.c compares) and not a data set: the inputs are not stored, both sides
generate them from the integer formula below. Run alone: /usr/bin/python3 tools/make_golden.py --only trajectory
(one to three minutes: every run is computed ten times, see "Envelopes").

The reference's step (spec 3, 3.9, 5.1, 5.2), every step: model.train() (linear evaluation: backbone.eval() and
features under no_grad), optimizer.zero_grad(), forward, loss, backward, optimizer.step(). The losses, pair
construction, rotations, interleaving and discriminators are the ones tools/golden_{relationnet,simclr,rotationnet,
deepinfomax}.py transcribe from the reference (imported, not rewritten). torch.optim.SGD / Adam with foreach=False
(PyTorch 1.13's single-tensor path) and the reference's groups, learning rates, momentum, betas and weight decays:
  standard     SGD (backbone; classifier) lr 0.1, momentum 0.9; x0.1 at the start of epochs int(0.5 E), int(0.75 E)
  rotationnet, relationnet (cat, K = 4), simclr, deepcluster   Adam (backbone; head) lr 1e-3
  deepinfomax  Adam (encoder; discriminators) lr 1e-4
  lineval      Adam (classifier) lr 1e-3; backbone frozen in eval mode
  finetune     Adam (backbone lr 1e-3 wd 1e-5; classifier lr 1e-4 wd 1e-5), x0.1 at epochs 100 and 150 of the
               reference's hard-coded 200: the run visits epochs 99, 100, 101, 149, 150, 151 (nothing else depends on
               the epoch number there, so leaving the others out changes nothing but the count)
Stage-1 runs are 4 epochs (E = 4: standard decays at epochs 2 and 3) of 5 steps; finetune 6 epochs of 4 steps.

Inputs (conv4, S = 32, B = 8 images; documented identically in the C test). For global step s (0-based over the
run) the batch is the float array [V * B, 3, S, S], view-major as relate's loader gives it (rows k*B .. k*B+B-1 =
view k), and its element i (flat index) is
    u = (uint32)(i * 2654435761 + s * 40503 + SALT),   x = (float)(u >> 8) / 16777216 * 4 - 2
(every operation exact in float32: x is a multiple of 2^-22 in [-2, 2)); SALT is per run. Label of image n:
(7 n + s) % C. deepcluster: image n of step s is dataset index (11 n + 8 s) % 40, and the pseudo-labels of epoch e
are label[j] = (7 j + 3 e) % (k - 3), j < 40 (k = 10 C = 20; clusters k-3 .. k-1 stay empty).

Where relate's random streams replace torch's (they cannot be matched), this script transcribes relate's RNG
(Philox4x32-10, src/base/rng.c; stream key (seed; counter words a, b, c)):
    deepinfomax's prior samples (torch.rand_like(y) in the reference) = relate_deepinfomax_prior_samples:
        stream (seed, epoch, batch number, RELATE_PURPOSE_METHOD = 4), u = (w >> 8) / 2^24 per 32-bit word w;
    deepcluster's per-epoch re-initialisation of linear2 (normal_(0, 0.01), bias 0 in the reference) =
        relate_deepcluster_reset_last_layer: stream (seed, epoch, 0, 4 << 24 | 2), float32(0.01 * n) with
        relate_rng_normal's Box-Muller. The clustering is replaced by the fixed pseudo-labels above (it is tested
        on its own in tests/deepcluster).

Initial state. Backbone (shared by every run): conv weights He-normal (fan-out, spec 2.5) from torch.manual_seed(1234)
rounded to int8 codes times a power of two (exact in float32; stored I8), BatchNorm gamma 1, beta 0, running 0 / 1.
Heads: PyTorch's default init distribution U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for every Linear / Conv weight and bias,
drawn by the integer hash golden_deepinfomax.param_fill(tag, numel, fan_in) that the C test rebuilds bit for bit
(stored as its tag and fan_in, 16 bytes per tensor instead of 4 per element); head BatchNorm as PyTorch's.

Envelopes. Float32 results of two correct implementations differ by rounding, and training amplifies that: a ReLU
input within rounding of zero flips its mask in one computation and not in the other (an "event": with ~10^6 ReLU
inputs per step, some run meets one at some step), the gradients of the first layer's BatchNorm parameters are small
sums of large terms, Adam's first moment passes through zero, SGD at lr 0.1 amplifies differences; and a bias right
before a BatchNorm (linear1 of the MLP heads) has a gradient that is exactly zero, so Adam steps on the rounding of
zero there (noise_tensors: those hold noise only, on both sides). Two envelopes are measured against the golden, as
the C test measures relate:
  rounding envelope (per step: the worst so far, and per tensor): float64; float32 with PyTorch's other convolution
      path (mkldnn off: im2col + BLAS); with two threads; both; and from initial parameters perturbed by about two
      roundings (two seeds) -- computations that differ from the golden by rounding only;
  event envelope (per tensor, whole run): float32 from initial parameters perturbed by x (1 + r 2^-18) (three seeds),
      which meet events early -- how far a computation drifts once it has met one.
The C test allows relate max(floor, 8 x rounding envelope) in the first `strict` steps of a run and, after them, also
4 x the event envelope (test_trajectory.c). Every salt is the calmest of 12 candidates (search_salts: the smallest
worst drift of the first four rounding computations outside the noise tensors), as the backbone goldens redraw inputs
that sit on a ReLU kink.

trajectory.safetensors:
  init.backbone/<key>                     shared initial backbone: F32, or initq.backbone/<key> I8 +
                                          initscale.backbone/<key> F32 [1] (value = code * scale)
  <run>.init.<path> F32 | <run>.initfill.<path> I64 [2] = (tag, fan_in)   head tensors (<path> = checkpoint key /
                                          state-dict name, e.g. relation/linear1.weight)
  <run>.loss [N] F64, <run>.acc [N, A] F64 (A = 1 or 3 meters, in %, absent for simclr and deepinfomax),
  <run>.lr [N, G] F64 (the lr each group used in step n), <run>.adamstep [N] I64 (Adam's step count; not for SGD)
  <run>.sums [N, T, 2] F64                for every tracked tensor after step n: sum and sum of squares in float64
  <run>.final.<path> (numel <= 512) or <run>.finalsample.<path> [512] at flat indices (j * numel) // 512: tensors
                                          after the last step (I64 for num_batches_tracked)
  <run>.noise.loss [N], <run>.noise.sums [N, T], <run>.noise.acc [N, A], <run>.noise.final [T] (F32)
                                          the rounding envelope: loss relative error, checksum error of each tensor
                                          (sums_err), accuracy difference in points (per step, the worst so far), and
                                          final norm-wise relative error of each tensor
  <run>.event.loss [1], <run>.event.sums [T], <run>.event.acc [A], <run>.event.final [T] (F32)
                                          the event envelope (whole run)
  <run>.dcreinit [E, 2] F64               deepcluster: sum and sum of squares of linear2.weight after each reset
  <run>.priorsums [N, 2] F64              deepinfomax: sum_i u_i and sum_i (i + 1) u_i of each step's prior samples
                                          (exact in float64: the C test compares them exactly)
  __metadata__: runs (comma-separated); per run <run>.method, .K (views), .C, .salt, .epochs (comma-separated
  epoch numbers), .steps_per_epoch, .state (comma-separated tracked paths: the order of sums' second axis),
  .init (head init paths), .noise (the tracked tensors that hold rounding noise only, see noise_tensors),
  .strict_steps; B, S, seed, generator
"""
import math
import os
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from golden_common import save_safetensors
import golden_backbones
import golden_deepinfomax
import golden_relationnet
import golden_rotationnet
import golden_simclr

S, B, D = 32, 8, 64
SAMPLE = 512
EVENT_AMPLITUDE = 2.0 ** -18
SEED = 1
INIT_SEED = 1234
N_DC = 40

# name: method, views (K), classes (C), epoch numbers, steps per epoch, salt of the inputs (the calmest of 12
# candidates, search_salts), strict (the first steps, compared against the rounding envelope alone)
RUNS = OrderedDict([
    ("standard", dict(method="standard", views=1, C=10, epochs=[0, 1, 2, 3], steps=5, salt=0x01ED0001, strict=2)),
    ("rotationnet", dict(method="rotationnet", views=1, C=10, epochs=[0, 1, 2, 3], steps=5, salt=0x03ED0002,
                         strict=2)),
    ("relationnet", dict(method="relationnet", views=4, C=10, epochs=[0, 1, 2, 3], steps=5, salt=0x06ED0003,
                         strict=2)),
    ("simclr", dict(method="simclr", views=2, C=10, epochs=[0, 1, 2, 3], steps=5, salt=0x01ED0004, strict=2)),
    ("lineval", dict(method="lineval", views=1, C=10, epochs=[0, 1, 2, 3], steps=5, salt=0x0BED0005, strict=2)),
    ("finetune", dict(method="finetune", views=1, C=10, epochs=[99, 100, 101, 149, 150, 151], steps=4,
                      salt=0x04ED0006, strict=2)),
    ("deepinfomax", dict(method="deepinfomax", views=1, C=10, epochs=[0, 1, 2, 3], steps=5, salt=0x08ED0007,
                         strict=0)),
    ("deepcluster", dict(method="deepcluster", views=1, C=2, epochs=[0, 1, 2, 3], steps=5, salt=0x03ED0008,
                         strict=2)),
])


# ------------------------------------------------------------------------- inputs

def batch_images(step, views, salt):
    n = views * B * 3 * S * S
    i = np.arange(n, dtype=np.uint64)
    u = (i * np.uint64(2654435761) + np.uint64(step * 40503) + np.uint64(salt)) & np.uint64(0xFFFFFFFF)
    x = (u >> np.uint64(8)).astype(np.float32) / np.float32(16777216.0) * np.float32(4.0) - np.float32(2.0)
    return torch.from_numpy(x.reshape(views * B, 3, S, S))


def batch_labels(step, C):
    return torch.tensor([(n * 7 + step) % C for n in range(B)], dtype=torch.int64)


def dc_indices(step):
    return [(11 * n + 8 * step) % N_DC for n in range(B)]


def dc_pseudo(epoch, k):
    return torch.tensor([(7 * j + 3 * epoch) % (k - 3) for j in range(N_DC)], dtype=torch.int64)


# ------------------------------------------------------------------------- relate's RNG (src/base/rng.c)

M32 = 0xFFFFFFFF
PURPOSE_METHOD = 4


def philox4x32(ctr, key):
    c0, c1, c2, c3 = ctr
    k0, k1 = key
    for _ in range(10):
        p0 = 0xD2511F53 * c0
        p1 = 0xCD9E8D57 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0) & M32, p1 & M32, ((p0 >> 32) ^ c3 ^ k1) & M32, p0 & M32
        k0 = (k0 + 0x9E3779B9) & M32
        k1 = (k1 + 0xBB67AE85) & M32
    return [c0, c1, c2, c3]


# Random123's known-answer vectors for Philox4x32-10 (also tests/unit/test_base.c)
assert philox4x32([0, 0, 0, 0], [0, 0]) == [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
assert philox4x32([M32] * 4, [M32, M32]) == [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]


class RelateRng:
    """relate_rng: relate_rng_init(seed, a, b, c), relate_rng_u32 / _uniform / _uniform_f64 / _normal."""

    def __init__(self, seed, a, b, c):
        self.key = [seed & M32, (seed >> 32) & M32]
        self.ctr = [0, a & M32, b & M32, c & M32]
        self.buf, self.pos = [], 4

    def u32(self):
        if self.pos >= 4:
            self.buf = philox4x32(self.ctr, self.key)
            self.ctr[0] = (self.ctr[0] + 1) & M32
            self.pos = 0
        w = self.buf[self.pos]
        self.pos += 1
        return w

    def uniform(self):
        return np.float32(self.u32() >> 8) * np.float32(1.0 / 16777216.0)

    def uniform_f64(self):
        hi = self.u32() >> 5
        lo = self.u32() >> 6
        return float(hi * 67108864 + lo) * (1.0 / 9007199254740992.0)

    def normal(self):
        u1 = 1.0 - self.uniform_f64()
        u2 = self.uniform_f64()
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(6.283185307179586 * u2)


def prior_samples(seed, epoch, batch_number, count):
    r = RelateRng(seed, epoch, batch_number, PURPOSE_METHOD)
    return torch.tensor(np.array([r.uniform() for _ in range(count)], dtype=np.float32))


def dc_linear2_init(seed, epoch, numel):
    r = RelateRng(seed, epoch, 0, (PURPOSE_METHOD << 24) | 2)
    return torch.tensor(np.array([np.float32(0.01 * r.normal()) for _ in range(numel)], dtype=np.float32))


# ------------------------------------------------------------------------- models and initial state

def quantise_(t):
    """t <- code * 2^-e with int8 codes (|code| <= 127), e as large as the range allows."""
    m = t.abs().max().item()
    e = 0 if m == 0 else int(math.floor(math.log2(127.0 / m)))
    scale = 2.0 ** -e
    codes = torch.clamp(torch.round(t / scale), -127, 127).to(torch.int8)
    t.copy_(codes.float() * scale)
    return codes, torch.tensor([scale], dtype=torch.float32)


def conv4_backbone():
    """conv4 with the reference's init (spec 2.5), conv weights rounded to int8 codes; and its golden entries."""
    torch.manual_seed(INIT_SEED)
    model, d = golden_backbones.build("conv4")
    assert d == D
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):  # N(0, sqrt(2 / (k*k*out)))
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.normal_(0, math.sqrt(2.0 / n))
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()
    entries = OrderedDict()
    with torch.no_grad():
        for name, t in model.state_dict().items():
            path = "backbone/" + name
            if name.endswith("conv.weight"):
                codes, scale = quantise_(t)
                entries["initq." + path] = codes
                entries["initscale." + path] = scale
            else:
                entries["init." + path] = t.clone()
    return model, entries


def mlp_head(inp, out):
    return nn.Sequential(OrderedDict([
        ("linear1", nn.Linear(inp, 256)),
        ("bn1", nn.BatchNorm1d(256)),
        ("relu", nn.LeakyReLU()),
        ("linear2", nn.Linear(256, out)),
    ]))


def fill_head(run_index, key, head):
    """Every Linear / Conv weight and bias <- param_fill (PyTorch's default init distribution); golden entries."""
    entries = OrderedDict()
    params = dict(head.named_parameters())
    weights = {}
    for mname, m in head.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            for pname in ("weight", "bias"):
                weights["%s.%s" % (mname, pname) if mname else pname] = m.weight[0].numel()
    with torch.no_grad():
        for name, t in head.state_dict().items():
            path = "%s/%s" % (key, name)
            if name in weights:
                tag = 1000 * (run_index + 1) + list(params).index(name)
                fan_in = weights[name]
                params[name].copy_(golden_deepinfomax.param_fill(tag, t.numel(), fan_in).reshape(t.shape))
                entries["initfill." + path] = torch.tensor([tag, fan_in], dtype=torch.int64)
            else:
                entries["init." + path] = t.clone()
    return entries


def build(run_index, run):
    method = run["method"]
    backbone, _ = conv4_backbone()
    mods = OrderedDict(backbone=backbone)
    if method in ("standard", "lineval", "finetune"):
        mods["classifier"] = nn.Linear(D, run["C"])
    elif method == "rotationnet":
        mods["classifier"] = nn.Linear(D, 4)
    elif method == "relationnet":
        mods["relation"] = mlp_head(2 * D, 1)
    elif method == "simclr":
        mods["head"] = mlp_head(D, 64)
    elif method == "deepinfomax":
        mods["loss_fn"] = golden_deepinfomax.DeepInfoMaxLoss(D, 8)
    elif method == "deepcluster":
        mods["classifier"] = mlp_head(D, 10 * run["C"])
    init = OrderedDict()
    for key, mod in mods.items():
        if key != "backbone":
            init.update(fill_head(run_index, key, mod))
    bb = list(backbone.parameters())
    if method == "standard":
        opt = torch.optim.SGD([{"params": bb}, {"params": mods["classifier"].parameters()}], lr=0.1, momentum=0.9,
                              dampening=0, nesterov=False, weight_decay=0, foreach=False)
        okey = "optimizer"
    elif method == "lineval":
        opt = torch.optim.Adam(mods["classifier"].parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                               weight_decay=0, foreach=False)
        okey = "optimizer_lineval"
    elif method == "finetune":
        opt = torch.optim.Adam([{"params": bb, "lr": 1e-3, "weight_decay": 1e-5},
                                {"params": mods["classifier"].parameters(), "lr": 1e-4, "weight_decay": 1e-5}],
                               betas=(0.9, 0.999), eps=1e-8, foreach=False)
        okey = "optimizer_finetune"
    else:
        lr = 1e-4 if method == "deepinfomax" else 1e-3
        head = [m for k, m in mods.items() if k != "backbone"][0]
        opt = torch.optim.Adam([{"params": bb}, {"params": head.parameters()}], lr=lr, betas=(0.9, 0.999),
                               eps=1e-8, weight_decay=0, foreach=False)
        okey = "optimizer"
    return mods, opt, okey, init


def flatten_state(ckpt):
    """{path: tensor} of a reference checkpoint dict: module state dicts and optimizer states (not 'step')."""
    out = OrderedDict()
    for key, value in ckpt.items():
        if isinstance(value, torch.optim.Optimizer):
            sd = value.state_dict()
            for pid in sorted(sd["state"].keys()):
                for name, t in sd["state"][pid].items():
                    if name != "step":
                        out["%s/state/%d/%s" % (key, pid, name)] = t
        else:
            for name, t in value.state_dict().items():
                out["%s/%s" % (key, name)] = t
    return out


def adam_steps(opt):
    steps = set(int(s["step"]) for s in opt.state.values())
    assert len(steps) == 1, steps
    return steps.pop()


# ------------------------------------------------------------------------- the reference's step

def step(run, mods, opt, s, epoch, j, pseudo, weights, dtype):
    """One reference step; returns (loss, [meters])."""
    method = run["method"]
    backbone = mods["backbone"]
    x = batch_images(s, run["views"], run["salt"]).to(dtype)
    for m in mods.values():
        m.train()
    opt.zero_grad()
    if method in ("standard", "finetune"):
        y = batch_labels(s, run["C"])
        logits = mods["classifier"](backbone(x))
        loss = F.cross_entropy(logits, y)
        acc = [100.0 * int(logits.argmax(1).eq(y).sum()) / float(B)]
    elif method == "lineval":
        y = batch_labels(s, run["C"])
        backbone.eval()
        with torch.no_grad():
            f = backbone(x)
        logits = mods["classifier"](f.detach())
        loss = F.cross_entropy(logits, y)
        acc = [100.0 * int(logits.argmax(1).eq(y).sum()) / float(B)]
    elif method == "rotationnet":
        data, target = golden_rotationnet.rotate_reference(x)
        logits = mods["classifier"](backbone(data))
        loss = F.cross_entropy(logits, target)
        acc = [100.0 * int(logits.argmax(-1).eq(target).sum()) / float(len(target))]
    elif method == "relationnet":
        assert golden_relationnet.K == run["views"]
        features = backbone(x)  # view-major, as torch.cat(data_augmented, 0)
        pairs, targets = golden_relationnet.aggregate(features, "cat")
        logits = mods["relation"](pairs).squeeze()
        loss = golden_relationnet.focal_loss(logits, targets)
        pred = torch.round(torch.sigmoid(logits.detach()))
        half = logits.shape[0] // 2
        acc = [100.0 * int(pred.eq(targets).sum()) / float(len(targets)),
               100.0 * int(pred[:half].eq(targets[:half]).sum()) / float(half),
               100.0 * int(pred[half:].eq(targets[half:]).sum()) / float(len(targets) - half)]
    elif method == "simclr":
        v = x.reshape(2, B, 3, S, S)
        data = torch.stack([v[0], v[1]], 1).reshape(2 * B, 3, S, S)  # rows 2n, 2n+1: views 0, 1 of image n
        z = mods["head"](backbone(data))
        loss = golden_simclr.return_loss_fn(z)
        acc = []
    elif method == "deepinfomax":
        y, M = golden_deepinfomax.encode_conv4(backbone, x)
        M_prime = torch.cat((M[1:], M[0].unsqueeze(0)), dim=0)
        u = prior_samples(SEED, epoch, j, B * D).reshape(B, D).to(dtype)
        loss = mods["loss_fn"](y, M, M_prime, prior=u)
        acc = []
    elif method == "deepcluster":
        target = pseudo[dc_indices(s)]
        ce = torch.nn.CrossEntropyLoss(weights)
        logits = mods["classifier"](backbone(x))
        loss = ce(logits, target)
        acc = [100.0 * int(logits.argmax(1).eq(target).sum()) / float(B)]
    else:
        raise ValueError(method)
    loss.backward()
    opt.step()
    return loss.item(), acc


def trajectory(run_index, run, dtype=torch.float32, mkldnn=True, perturb=None, amplitude=2.0 ** -22):
    """The reference's steps of one run: per-step loss, meters, lrs, Adam step, checksums; the final state.
    Other computations of the same steps (noise envelope): dtype float64; mkldnn=False (PyTorch's other convolution
    path, im2col + BLAS instead of oneDNN); perturb = a seed: every initial parameter times (1 + r 2^-22),
    r ~ U(-1, 1), about two roundings."""
    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = mkldnn
    mods, opt, okey, init = build(run_index, run)
    if perturb is not None:
        gen = torch.Generator().manual_seed(perturb)
        with torch.no_grad():
            for m in mods.values():
                for p in m.parameters():
                    p.mul_(1 + (torch.rand(p.shape, generator=gen) * 2 - 1) * amplitude)
    if dtype != torch.float32:
        for m in mods.values():
            m.to(dtype)  # in place: the optimizer's groups hold the same (converted) parameters
    method = run["method"]
    ckpt = OrderedDict(list(mods.items()) + [(okey, opt)])
    k = 10 * run["C"]
    out = dict(loss=[], acc=[], lr=[], adamstep=[], sums=[], reinit=[], init=init, paths=None)
    s = 0
    E = len(run["epochs"])
    for epoch in run["epochs"]:
        pseudo = weights = None
        if method == "standard":
            # the reference's train(): if epoch == int(E*0.5) or epoch == int(E*0.75): lr *= 0.1
            if epoch == int(E * 0.5) or epoch == int(E * 0.75):
                for g in opt.param_groups:
                    g["lr"] *= 0.1
        elif method == "finetune":  # the same with the model's default E = 200
            if epoch == int(200 * 0.5) or epoch == int(200 * 0.75):
                for g in opt.param_groups:
                    g["lr"] *= 0.1
        elif method == "deepcluster":
            head = mods["classifier"]
            with torch.no_grad():
                w = head.linear2.weight
                w.copy_(dc_linear2_init(SEED, epoch, w.numel()).reshape(w.shape))
                head.linear2.bias.zero_()
            w64 = head.linear2.weight.detach().double()
            out["reinit"].append([w64.sum().item(), (w64 * w64).sum().item()])
            pseudo = dc_pseudo(epoch, k)
            weights = torch.zeros(k, dtype=torch.float32)
            for value in pseudo:  # the reference's weight code
                weights[value] += 1.0
            weights = (1.0 - (weights / len(pseudo))).to(dtype)
        for j in range(run["steps"]):
            out["lr"].append([g["lr"] for g in opt.param_groups])
            loss, acc = step(run, mods, opt, s, epoch, j, pseudo, weights, dtype)
            out["loss"].append(loss)
            out["acc"].append(acc)
            if isinstance(opt, torch.optim.Adam):
                out["adamstep"].append(adam_steps(opt))
            flat = flatten_state(ckpt)
            if out["paths"] is None:
                out["paths"] = list(flat.keys())
            assert list(flat.keys()) == out["paths"]
            out["sums"].append([[flat[p].double().sum().item(), flat[p].double().pow(2).sum().item()]
                                for p in out["paths"]])
            s += 1
    out["final"] = OrderedDict((p, t.detach().clone()) for p, t in flatten_state(ckpt).items())
    torch.backends.mkldnn.enabled = True
    return out


# ------------------------------------------------------------------------- noise envelope

def sums_err(got, want, n, scale_sums=None):
    """The C test's checksum error of one tensor (test_trajectory.c: sums_err): the sum against sqrt(n * S) (the
    largest the sum can be, by Cauchy-Schwarz), the sum of squares relative to S, where S is the golden sum of
    squares; absolute where the golden tensor is all zeros. Adam's exp_avg is measured with S = the sum of its own
    parameter's exp_avg_sq instead (scale_sums = (_, S)): the update divides one by the other's square root, and
    exp_avg passes through zero where a gradient changes sign, so against itself a rounding difference could look
    arbitrarily large."""
    ref = scale_sums if scale_sums is not None else want
    scale = math.sqrt(n * ref[1])
    e1 = abs(got[0] - want[0]) / scale if scale > 0 else abs(got[0] - want[0])
    e2 = abs(got[1] - want[1]) / ref[1] if ref[1] > 0 else abs(got[1] - want[1])
    return max(e1, e2)


def state_errs(r, ref, n):
    """sums_err of every tracked tensor of trajectory r against ref after step n."""
    paths = ref["paths"]
    index = {p: i for i, p in enumerate(paths)}
    out = []
    for i, p in enumerate(paths):
        # exp_avg: against sum(exp_avg_sq), the sum of squares of the gradient scale Adam divides by
        scale = (0.0, ref["sums"][n][index[p + "_sq"]][0]) if p.endswith("/exp_avg") else None
        out.append(sums_err(r["sums"][n][i], ref["sums"][n][i], ref["final"][p].numel(), scale))
    return out


def rel_err(got, want):
    """Norm-wise relative error (tests/common/test_util.h)."""
    num = (got.double() - want.double()).abs().max().item()
    den = want.double().abs().max().item()
    return 0.0 if num == 0 else (num / den if den > 0 else float("inf"))


def noise_tensors(run_index, run, paths):
    """Tracked tensors that hold rounding noise only: linear1.bias of an MLP head (BatchNorm1d follows, so its
    gradient is exactly zero and Adam steps on the rounding of zero), its Adam moments, and bn1.running_mean
    (which averages linear1's output, bias included)."""
    mods, opt, okey, _ = build(run_index, run)
    out = set()
    for key, mod in mods.items():
        if key == "backbone" or not hasattr(mod, "bn1") or not hasattr(mod, "linear1"):
            continue
        out |= {"%s/linear1.bias" % key, "%s/bn1.running_mean" % key}
        pid = [id(q) for g in opt.param_groups for q in g["params"]].index(id(mod.linear1.bias))
        out |= {"%s/state/%d/exp_avg" % (okey, pid), "%s/state/%d/exp_avg_sq" % (okey, pid)}
    assert out <= set(paths), out - set(paths)
    return out


def realisations(run_index, run):
    """Other computations of the golden's steps at rounding level: float64; float32 with PyTorch's other
    convolution path (mkldnn off: im2col + BLAS) and / or two threads (other reduction orders); float32 from initial
    parameters perturbed by about two roundings (x (1 + r 2^-22))."""
    def threads(n, **kw):
        old = torch.set_num_threads
        torch.set_num_threads = lambda _: old(n)
        try:
            return trajectory(run_index, run, **kw)
        finally:
            torch.set_num_threads = old
    return [trajectory(run_index, run, torch.float64), trajectory(run_index, run, mkldnn=False), threads(2),
            threads(2, mkldnn=False), trajectory(run_index, run, perturb=1), trajectory(run_index, run, perturb=2)]


def event_realisations(run_index, run):
    """Computations that have diverged: initial parameters perturbed by x (1 + r 2^-18), which puts ReLU inputs on
    the other side of zero early, as a rounding difference does at some step of some runs."""
    return [trajectory(run_index, run, perturb=100 + k, amplitude=EVENT_AMPLITUDE) for k in range(1, 4)]


def cummax(rows):
    out, best = [], None
    for r in rows:
        best = list(r) if best is None else [max(a, b) for a, b in zip(best, r)]
        out.append(best)
    return out


def envelope(run_index, run, ref, others=None, cumulative=True):
    """How far other computations of the same steps are from the golden trajectory ref, measured as the C test
    measures relate: per step (the worst so far over the steps up to it; cumulative=False: over the whole run) for
    the loss, every tracked tensor's checksum and every accuracy meter; and for the final tensors."""
    others = others if others is not None else realisations(run_index, run)
    paths = ref["paths"]
    steps = range(len(ref["loss"]))
    loss = [[max(abs(r["loss"][n] - ref["loss"][n]) / abs(ref["loss"][n]) for r in others)] for n in steps]
    errs = [[state_errs(r, ref, n) for n in steps] for r in others]
    sums = [[max(e[n][i] for e in errs) for i in range(len(paths))] for n in steps]
    acc = [[max(abs(r["acc"][n][a] - ref["acc"][n][a]) for r in others) for a in range(len(ref["acc"][0]))]
           for n in steps]
    final = [max(rel_err(r["final"][p], ref["final"][p]) for r in others) for p in paths]
    loss, sums, acc = cummax(loss), cummax(sums), cummax(acc)
    if not cumulative:
        loss, sums, acc = loss[-1:], sums[-1:], acc[-1:]
    return dict(loss=[x[0] for x in loss], sums=sums, acc=acc, final=final)


def calmness(run_index, run):
    """How far the other computations drift from the golden, at worst, outside the noise tensors (salt search)."""
    ref = trajectory(run_index, run)
    env = envelope(run_index, run, ref, realisations(run_index, run)[:4], cumulative=False)
    noise = noise_tensors(run_index, run, ref["paths"])
    return max(e for p, e in zip(ref["paths"], env["sums"][0]) if p not in noise), env["loss"][0]


def search_salts(names=None, candidates=12):
    """Prints, per run, the calmness of candidate salts (SALT + k << 24); RUNS holds the calmest."""
    for run_index, (name, run) in enumerate(RUNS.items()):
        if names and name not in names:
            continue
        base = run["salt"] & 0x00FFFFFF
        for k in range(candidates):
            r = dict(run, salt=base | (k << 24))  # candidates 0x00ED000r, 0x01ED000r, ...
            c, l = calmness(run_index, r)
            print("%-12s salt 0x%08X: worst checksum drift %.1e, loss %.1e" % (name, r["salt"], c, l), flush=True)


# ------------------------------------------------------------------------- the golden file

def make(out_dir):
    torch.set_num_threads(1)
    _, t = conv4_backbone()
    meta = OrderedDict(runs=",".join(RUNS), B=B, S=S, seed=SEED,
                       generator="torch %s, numpy %s" % (torch.__version__, np.__version__))
    for run_index, (name, run) in enumerate(RUNS.items()):
        r = trajectory(run_index, run)
        env = envelope(run_index, run, r)
        event = envelope(run_index, run, r, event_realisations(run_index, run), cumulative=False)
        paths = r["paths"]
        noise = noise_tensors(run_index, run, paths)
        for k, v in r["init"].items():
            t["%s.%s" % (name, k)] = v
        t[name + ".loss"] = torch.tensor(r["loss"], dtype=torch.float64)
        if r["acc"][0]:
            t[name + ".acc"] = torch.tensor(r["acc"], dtype=torch.float64)
        t[name + ".lr"] = torch.tensor(r["lr"], dtype=torch.float64)
        if r["adamstep"]:
            t[name + ".adamstep"] = torch.tensor(r["adamstep"], dtype=torch.int64)
        t[name + ".sums"] = torch.tensor(r["sums"], dtype=torch.float64)
        if r["reinit"]:
            t[name + ".dcreinit"] = torch.tensor(r["reinit"], dtype=torch.float64)
        if run["method"] == "deepinfomax":  # the transcription of relate's prior samples, checked on its own
            u = [prior_samples(SEED, e, j, B * D).double() for e in run["epochs"] for j in range(run["steps"])]
            w = torch.arange(1, B * D + 1, dtype=torch.float64)  # both sums are exact in float64, in any order
            t[name + ".priorsums"] = torch.tensor([[x.sum().item(), (x * w).sum().item()] for x in u],
                                                  dtype=torch.float64)
        for p in paths:
            v = r["final"][p]
            if v.numel() > SAMPLE:
                flat = v.reshape(-1)
                t["%s.finalsample.%s" % (name, p)] = flat[[(j * flat.numel()) // SAMPLE for j in range(SAMPLE)]]
            else:
                t["%s.final.%s" % (name, p)] = v
        # envelopes above float32's range (Adam moments of a zero-gradient bias) are stored as +inf
        f32 = lambda x: torch.tensor(x, dtype=torch.float64).clamp(max=3e38).float()
        for kind, e in (("noise", env), ("event", event)):
            t["%s.%s.loss" % (name, kind)] = f32(e["loss"])
            t["%s.%s.sums" % (name, kind)] = f32(e["sums"] if kind == "noise" else e["sums"][0])
            if r["acc"][0]:
                t["%s.%s.acc" % (name, kind)] = f32(e["acc"] if kind == "noise" else e["acc"][0])
            t["%s.%s.final" % (name, kind)] = f32(e["final"])
        meta.update({name + ".method": run["method"], name + ".K": run["views"], name + ".C": run["C"],
                     name + ".salt": run["salt"], name + ".epochs": ",".join(str(e) for e in run["epochs"]),
                     name + ".steps_per_epoch": run["steps"], name + ".state": ",".join(paths),
                     name + ".init": ",".join(k.split(".", 1)[1] for k in r["init"]),
                     name + ".noise": ",".join(p for p in paths if p in noise),
                     name + ".strict_steps": run["strict"]})
        worst = max((i for i in range(len(paths)) if paths[i] not in noise), key=lambda i: env["sums"][-1][i])
        print("trajectory %-12s %2d steps, loss %.6f -> %.6f, %d tensors; rounding envelope at the end: loss %.1e, "
              "checksums %.1e (%s); event envelope: loss %.1e" % (name, len(r["loss"]), r["loss"][0], r["loss"][-1],
                                                                 len(paths), env["loss"][-1], env["sums"][-1][worst],
                                                                 paths[worst], event["loss"][0]))
    path = os.path.join(out_dir, "trajectory.safetensors")
    save_safetensors(path, t, meta)
    print("%s: %d tensors, %d bytes" % (path, len(t), os.path.getsize(path)))
    return path


if __name__ == "__main__":
    import sys
    if sys.argv[1:2] == ["--search-salts"]:  # /usr/bin/python3 tools/golden_trajectory.py --search-salts [run ...]
        search_salts(sys.argv[2:] or None)
    else:
        sys.exit("usage: /usr/bin/python3 tools/make_golden.py --only trajectory, or tools/golden_trajectory.py "
                 "--search-salts [run ...]")
